#include <errno.h>
#include <string.h>

#include <hvpatch/area.h>

#include "common/error.h"
#include "common/util.h"

#define PAGE_SIZE 4096u
#define SLOT_SIZE (2ull << 20)
#define KERNEL_RANGE_START 0xffffffff80000000ull
#define KERNEL_RANGE_END 0xffffffffc0000000ull  /* MODULES_VADDR */

/* PDE bits: present, page size (2 MiB), global. Not writable, not user, executable. */
#define PDE_P (1ull << 0)
#define PDE_PS (1ull << 7)
#define PDE_G (1ull << 8)
#define PDE_ADDR_MASK 0x000fffffffe00000ull

int hvp_area_find_slack(struct hvp_mmu *mmu, const struct hvp_kernel *k, struct hvp_area *ret_area)
{
        uint64_t start = k->text_end, end = (start + PAGE_SIZE - 1) & ~(uint64_t)(PAGE_SIZE - 1);
        struct hvp_translation tr;
        uint8_t last;
        int r;

        if (start == 0 || end - start < 16)
                return hvp_fail(-ENOSPC, "no slack after _etext (0x%llx) in this kernel build",
                                (unsigned long long)start);
        r = hvp_mmu_translate(mmu, start, &tr);
        if (r < 0)
                return hvp_fail_context(-EFAULT, "the page of _etext");
        if (tr.flags & HVP_PF_NX)
                return hvp_fail(-EFAULT, "the page of _etext is not executable");
        /* The linker fills the tail with one byte (0xcc for text, or 0): the page's last one. */
        r = hvp_guest_read_phys(hvp_mmu_guest(mmu), tr.pa + (end - start - 1), &last, 1);
        if (r < 0)
                return r;
        *ret_area = (struct hvp_area){ .kind = "slack", .start = start, .gpa = tr.pa, .len = end - start,
                                       .filler = last };
        return 0;
}

int hvp_area_find_device(struct hvp_mmu *mmu, const struct hvp_kernel *k, struct hvp_area *ret_area)
{
        struct hvp_guest *g = hvp_mmu_guest(mmu);
        uint64_t gpa, size, slot, pde_gpa, pde, free_slot = 0, free_pde_gpa = 0, free_pde = 0;
        uint64_t image_start = k->base & ~(SLOT_SIZE - 1);
        uint64_t image_end = (k->image_end + SLOT_SIZE - 1) & ~(SLOT_SIZE - 1);
        int r;

        r = hvp_guest_area_device(g, &gpa, &size);
        if (r < 0)
                return r;
        if (size < SLOT_SIZE || (gpa & (SLOT_SIZE - 1)))
                return hvp_fail(-EINVAL, "the patch-area device's BAR (0x%llx+0x%llx) is not a 2 MiB-aligned 2 MiB region",
                                (unsigned long long)gpa, (unsigned long long)size);
        if (!k->image_end || image_end <= image_start)
                return hvp_fail(-EINVAL, "the kernel image's extent (_end) is unknown");
        /* Every slot outside the image: reuse one mapping the BAR, else note the first empty one. */
        for (slot = KERNEL_RANGE_START; slot < KERNEL_RANGE_END; slot += SLOT_SIZE) {
                if (slot >= image_start && slot < image_end)
                        continue;
                r = hvp_mmu_entry(mmu, slot, 2, &pde_gpa, &pde);
                if (r < 0)
                        continue;       /* no page directory there: not a candidate */
                if ((pde & PDE_P) && (pde & PDE_PS) && (pde & PDE_ADDR_MASK) == gpa) {
                        *ret_area = (struct hvp_area){ .kind = "device", .start = slot, .gpa = gpa,
                                                       .len = SLOT_SIZE, .filler = 0 };
                        return 0;
                }
                if (pde == 0 && !free_slot && slot >= image_end) {
                        free_slot = slot;
                        free_pde_gpa = pde_gpa;
                        free_pde = pde;
                }
        }
        if (!free_slot)
                return hvp_fail(-EEXIST, "no free 2 MiB slot after the kernel image to map the patch-area device");
        *ret_area = (struct hvp_area){ .kind = "device", .start = free_slot, .gpa = gpa, .len = SLOT_SIZE,
                                       .filler = 0, .map_needed = true, .pde_gpa = free_pde_gpa,
                                       .pde_old = free_pde, .pde_new = gpa | PDE_P | PDE_PS | PDE_G };
        return 0;
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
        return a < b + blen && b < a + alen;
}

uint64_t hvp_area_room(const struct hvp_area *area, const struct hvp_area_use *used, size_t nr_used)
{
        uint64_t taken = 0, end = area->start + area->len;

        /* Ranges in use never overlap one another (each was placed avoiding the others). */
        for (size_t i = 0; i < nr_used; i++) {
                uint64_t lo = HVP_MAX(used[i].start, area->start), hi = HVP_MIN(used[i].start + used[i].len, end);

                if (lo < hi)
                        taken += hi - lo;
        }
        return taken < area->len ? area->len - taken : 0;
}

int hvp_area_alloc(struct hvp_guest *g, const struct hvp_area *area, const struct hvp_area_use *used,
                   size_t nr_used, size_t size, size_t align, uint64_t *ret_addr)
{
        uint8_t buf[PAGE_SIZE];
        uint64_t addr;
        int r;

        if (align == 0 || (align & (align - 1)) || size == 0)
                return hvp_fail(-EINVAL, "bad placement request (%zu bytes, align %zu)", size, align);
        if (size > area->len)
                return hvp_fail(-ENOSPC, "%zu bytes of code do not fit in the %s area (%llu bytes)", size,
                                area->kind, (unsigned long long)area->len);
        for (addr = (area->start + align - 1) & ~(uint64_t)(align - 1);
             addr + size <= area->start + area->len; addr += align) {
                bool free_range = true;
                size_t u;

                for (u = 0; u < nr_used && free_range; u++)
                        free_range = !overlaps(addr, size, used[u].start, used[u].len);
                if (!free_range) {
                        /* next candidate: the first aligned address past the range in the way */
                        uint64_t past = used[u - 1].start + used[u - 1].len;

                        addr = ((past + align - 1) & ~(uint64_t)(align - 1)) - align;
                        continue;
                }
                for (size_t off = 0; off < size; off += sizeof(buf)) {
                        size_t n = HVP_MIN(sizeof(buf), size - off);

                        r = hvp_guest_read_phys(g, area->gpa + (addr - area->start) + off, buf, n);
                        if (r < 0)
                                return r;
                        for (size_t i = 0; i < n; i++)
                                if (buf[i] != area->filler)
                                        return hvp_fail(-EEXIST,
                                                        "the %s area holds foreign bytes at 0x%llx: refusing to overwrite",
                                                        area->kind, (unsigned long long)(addr + off + i));
                }
                *ret_addr = addr;
                return 0;
        }
        return hvp_fail(-ENOSPC,
                        "no room for %zu bytes in the %s area: %llu bytes left of %llu (%zu ranges in use or "
                        "retired; retired code is released when the guest boots again)",
                        size, area->kind, (unsigned long long)hvp_area_room(area, used, nr_used),
                        (unsigned long long)area->len, nr_used);
}

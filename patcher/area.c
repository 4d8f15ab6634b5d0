#include <errno.h>
#include <string.h>

#include <hvpatch/area.h>

#include "common/error.h"
#include "common/util.h"
#include "vmi/x86.h"

#define GUARD 16u       /* filler bytes kept before new code in an append-only area */

int hvp_area_find_slack(struct hvp_mmu *mmu, const struct hvp_kernel *k, struct hvp_area *ret_area)
{
        uint64_t start = k->text_end, end = (start + HVP_PAGE_SIZE - 1) & ~(uint64_t)(HVP_PAGE_SIZE - 1);
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
        uint64_t image_start = k->base & ~(HVP_SIZE_2M - 1);
        uint64_t image_end = (k->image_end + HVP_SIZE_2M - 1) & ~(HVP_SIZE_2M - 1);
        const char *kind;
        bool append_only;
        uint8_t filler = 0;
        int r;

        r = hvp_guest_area_device(g, &gpa, &size);
        if (r < 0)
                return r;
        if (size < HVP_SIZE_2M || (gpa & (HVP_SIZE_2M - 1)))
                return hvp_fail(-EINVAL, "the patch-area device's BAR (0x%llx+0x%llx) is not a 2 MiB-aligned 2 MiB region",
                                (unsigned long long)gpa, (unsigned long long)size);
        append_only = hvp_guest_append_only(g, gpa, HVP_SIZE_2M, &filler);
        kind = append_only ? "nvdimm" : "device";
        if (!k->image_end || image_end <= image_start)
                return hvp_fail(-EINVAL, "the kernel image's extent (_end) is unknown");
        /* Every slot outside the image: reuse one mapping the BAR, else note the first empty one. */
        for (slot = HVP_KERNEL_MAP_START; slot < HVP_KERNEL_MAP_END; slot += HVP_SIZE_2M) {
                if (slot >= image_start && slot < image_end)
                        continue;
                r = hvp_mmu_entry(mmu, slot, 2, &pde_gpa, &pde);
                if (r < 0)
                        continue;       /* no page directory there: not a candidate */
                if ((pde & HVP_PTE_P) && (pde & HVP_PTE_PS) && (pde & HVP_PDE_2M_ADDR_MASK) == gpa) {
                        *ret_area = (struct hvp_area){ .kind = kind, .start = slot, .gpa = gpa,
                                                       .len = HVP_SIZE_2M, .filler = filler,
                                                       .append_only = append_only };
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
        *ret_area = (struct hvp_area){ .kind = kind, .start = free_slot, .gpa = gpa, .len = HVP_SIZE_2M,
                                       .filler = filler, .append_only = append_only, .map_needed = true, .pde_gpa = free_pde_gpa,
                                       .pde_old = free_pde, .pde_new = gpa | HVP_PTE_P | HVP_PTE_PS | HVP_PTE_G };
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
        uint8_t buf[HVP_PAGE_SIZE];
        uint64_t addr, next, lo;
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
                /*
                 * Append-only: also GUARD filler bytes before addr, so that addr is never inside
                 * an instruction of older code that ends in 0xcc bytes (an x86 instruction is at
                 * most 15 bytes and its opcode is not 0xcc).
                 */
                lo = area->append_only ? HVP_MAX(area->start, addr - HVP_MIN(addr, (uint64_t)GUARD)) : addr;
                next = 0;
                for (uint64_t at = lo; at < addr + size && !next;) {
                        size_t n = (size_t)HVP_MIN((uint64_t)sizeof(buf), addr + size - at);

                        r = hvp_guest_read_phys(g, area->gpa + (at - area->start), buf, n);
                        if (r < 0)
                                return r;
                        for (size_t i = 0; i < n && !next; i++) {
                                if (buf[i] == area->filler)
                                        continue;
                                if (!area->append_only)
                                        return hvp_fail(-EEXIST,
                                                        "the %s area holds foreign bytes at 0x%llx: refusing to overwrite",
                                                        area->kind, (unsigned long long)(at + i));
                                next = at + i + 1 + GUARD;      /* taken: (retired) code */
                        }
                        at += n;
                }
                if (next) {
                        /* Go on at the first aligned address past the taken byte and its guard. */
                        addr = ((next + align - 1) & ~(uint64_t)(align - 1)) - align;
                        continue;
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

/* Every kind of patch area, in order of preference: a new kind is one more line here. */
static const struct {
        const char *kind;
        int (*find)(struct hvp_mmu *mmu, const struct hvp_kernel *k, struct hvp_area *ret_area);
} area_kinds[] = {
        { "slack", hvp_area_find_slack },
        { "device", hvp_area_find_device },
};

int hvp_area_list(struct hvp_mmu *mmu, const struct hvp_kernel *k, struct hvp_area *ret_areas, size_t max,
                  size_t *ret_n)
{
        size_t n = 0;

        _Static_assert(HVP_ARRAY_SIZE(area_kinds) <= HVP_AREA_MAX_KINDS, "HVP_AREA_MAX_KINDS");
        for (size_t i = 0; i < HVP_ARRAY_SIZE(area_kinds) && n < max; i++) {
                struct hvp_area a;
                int r = area_kinds[i].find(mmu, k, &a);

                if (r == -ENOSPC || r == -ENODEV || r == -EFAULT || r == -EEXIST || r == -EINVAL) {
                        hvp_debug("no %s patch area: %s", area_kinds[i].kind, hvp_last_error());
                        continue;
                }
                if (r < 0)
                        return hvp_fail_context(r, "looking for the %s patch area", area_kinds[i].kind);
                ret_areas[n++] = a;
        }
        *ret_n = n;
        return 0;
}

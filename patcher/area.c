#include <errno.h>
#include <string.h>

#include <hvpatch/area.h>

#include "common/error.h"
#include "common/util.h"

#define PAGE_SIZE 4096u

int hvp_area_find_slack(struct hvp_mmu *mmu, const struct hvp_kernel *k, struct hvp_area *ret_area)
{
        uint64_t start = k->text_end, end = (start + PAGE_SIZE - 1) & ~(uint64_t)(PAGE_SIZE - 1);
        uint8_t page[PAGE_SIZE];
        struct hvp_translation tr;
        int r;

        if (start == 0 || end - start < 16)
                return hvp_fail(-ENOSPC, "no slack after _etext (0x%llx) in this kernel build",
                                (unsigned long long)start);
        r = hvp_mmu_translate(mmu, start, &tr);
        if (r < 0)
                return hvp_fail_context(-EFAULT, "the page of _etext");
        if (tr.flags & HVP_PF_NX)
                return hvp_fail(-EFAULT, "the page of _etext is not executable");
        r = hvp_mmu_read(mmu, start, page, end - start);
        if (r < 0)
                return r;
        /* The linker fills the tail with one byte (0xcc for text, or 0). */
        *ret_area = (struct hvp_area){ .kind = "slack", .start = start, .len = end - start,
                                       .filler = page[end - start - 1] };
        return 0;
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
        return a < b + blen && b < a + alen;
}

int hvp_area_alloc(struct hvp_mmu *mmu, const struct hvp_area *area, const struct hvp_area_use *used,
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

                for (size_t i = 0; i < nr_used && free_range; i++)
                        free_range = !overlaps(addr, size, used[i].start, used[i].len);
                if (!free_range)
                        continue;
                for (size_t off = 0; off < size; off += sizeof(buf)) {
                        size_t n = HVP_MIN(sizeof(buf), size - off);

                        r = hvp_mmu_read(mmu, addr + off, buf, n);
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
        return hvp_fail(-ENOSPC, "no room for %zu bytes in the %s area (%llu bytes, %zu ranges in use)", size,
                        area->kind, (unsigned long long)area->len, nr_used);
}

/*
 * Finding the running Linux kernel through the guest's page tables.
 *
 * x86-64 maps the kernel image at __START_KERNEL_map (0xffffffff80000000), in a
 * 1 GiB area (KERNEL_IMAGE_SIZE with KASLR). KASLR moves _text by multiples of
 * CONFIG_PHYSICAL_ALIGN (2 MiB) inside it. Early in boot, cleanup_highmap() clears
 * every 2 MiB entry of that area below _text and above the end of the image, so the
 * first mapped 2 MiB slot is _text. That guess is then checked against the symbol
 * _text in the kallsyms tables found above it (the relative base in the tables is
 * relocated by KASLR, so a wrong guess cannot pass).
 */
#include <errno.h>

#include <hvpatch/kernel.h>

#include "common/error.h"
#include "common/util.h"
#include "vmi/x86.h"
#include "vmi/scan-budget.h"

static int mmu_kmem_read(void *ctx, uint64_t va, void *buf, size_t len)
{
        return hvp_mmu_read(ctx, va, buf, len);
}

void hvp_kmem_from_mmu(struct hvp_mmu *mmu, struct hvp_kmem *ret)
{
        *ret = (struct hvp_kmem){ .read = mmu_kmem_read, .ctx = mmu };
}

/* Bytes mapped by one entry at each level of the walk: 4 KiB (PTE) .. 256 TiB (PML5E). */
static uint64_t level_span(int level)
{
        return level >= 1 && level <= 5 ? 1ull << (12 + 9 * (level - 1)) : 4096;
}

static uint64_t mmu_hole_end(void *ctx, uint64_t va)
{
        struct hvp_translation t = { 0 };
        uint64_t span;

        if (hvp_mmu_translate(ctx, va, &t) == 0 || t.error != HVP_WALK_NOT_PRESENT)
                return 0;
        span = level_span(t.error_level);
        /* The last top-level entry (the kernel's own) ends the address space: nothing after it. */
        return (va | (span - 1)) + 1 ? (va | (span - 1)) + 1 : UINT64_MAX;
}

/* Each walk is charged to the budget as a read: a root is walked 512 times at most. */
static int find_text_slot(struct hvp_mmu *mmu, struct hvp_scan_budget *b, uint64_t *ret_base)
{
        for (uint64_t va = HVP_KERNEL_MAP_START; va < HVP_KERNEL_MAP_END; va += HVP_SIZE_2M) {
                struct hvp_translation t = { 0 };

                if (!hvp_scan_take(b, HVP_SCAN_READS, 1))
                        return hvp_scan_budget_fail(b, "looking for the kernel image");

                if (hvp_mmu_translate(mmu, va, &t) == 0) {
                        *ret_base = va;
                        return 0;
                }
                /* A missing PDPTE or higher: the whole area is unmapped. */
                if (t.error == HVP_WALK_NOT_PRESENT && t.error_level >= 3)
                        break;
        }
        return hvp_fail(-ENOENT, "nothing mapped in the kernel image area 0x%llx..0x%llx",
                        HVP_KERNEL_MAP_START, HVP_KERNEL_MAP_END);
}

int hvp_kernel_find(struct hvp_mmu *mmu, struct hvp_kernel **ret_kernel)
{
        return hvp_kernel_find_budget(mmu, NULL, ret_kernel);
}

int hvp_kernel_find_budget(struct hvp_mmu *mmu, struct hvp_scan_budget *budget, struct hvp_kernel **ret_kernel)
{
        struct hvp_kmem km = {
                .read = mmu_kmem_read,
                .ctx = mmu,
                .end = HVP_KERNEL_MAP_END,
                .hole_end = mmu_hole_end,
                .budget = budget,
        };
        struct hvp_scan_budget local;
        struct hvp_kernel *k;
        uint64_t base = 0;
        int r;

        if (!mmu || !ret_kernel)
                return hvp_fail(-EINVAL, "hvp_kernel_find: bad arguments");
        if (!km.budget) {
                hvp_scan_budget_init(&local);
                km.budget = &local;
        }
        r = find_text_slot(mmu, km.budget, &base);
        if (r < 0)
                return r;
        km.start = base;
        r = hvp_kernel_from_kmem(&km, base, &k);
        if (r < 0)
                return hvp_fail_context(r, "kernel image at 0x%llx", (unsigned long long)base);
        *ret_kernel = k;
        return 0;
}

/*
 * Patch areas on synthetic page tables: the slack after _etext, the allocator
 * (alignment, ranges in use, foreign bytes, no room), and hvp_mmu_entry(), which
 * the device area uses to find the PDE of a free kernel slot.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <hvpatch/area.h>

#include "common/util.h"

#define RAM (4u << 20)
#define P 0x1ull
#define RW 0x2ull
#define NX (1ull << 63)
#define TEXT_PAGE_VA 0xffffffff81e00000ull     /* the page holding _etext */
#define TEXT_PAGE_PA 0x200000ull

struct img {
        uint8_t *ram;
        struct hvp_guest *g;
        struct hvp_mmu *mmu;
        struct hvp_kernel k;
};

static void put64(uint8_t *p, uint64_t v)
{
        hvp_put_le64(p, v);
}

/* PML4 at 0x1000, PDPT 0x2000, PD 0x3000, PT 0x4000: one 4 KiB page mapped at TEXT_PAGE_VA. */
static void img_open(struct img *im, uint64_t etext, uint64_t pte_flags)
{
        struct hvp_mem_region region;
        struct hvp_vcpu_regs regs = { .cr0 = 0x80050033, .cr3 = 0x1000, .cr4 = 0x6f0, .efer = 0xd01 };

        memset(im, 0, sizeof(*im));
        im->ram = calloc(1, RAM);
        assert_non_null(im->ram);
        put64(im->ram + 0x1000 + ((TEXT_PAGE_VA >> 39) & 511) * 8, 0x2000 | P | RW);
        put64(im->ram + 0x2000 + ((TEXT_PAGE_VA >> 30) & 511) * 8, 0x3000 | P | RW);
        put64(im->ram + 0x3000 + ((TEXT_PAGE_VA >> 21) & 511) * 8, 0x4000 | P | RW);
        put64(im->ram + 0x4000 + ((TEXT_PAGE_VA >> 12) & 511) * 8, TEXT_PAGE_PA | P | pte_flags);
        memset(im->ram + TEXT_PAGE_PA, 0xcc, 4096);     /* the linker's fill for text */
        memset(im->ram + TEXT_PAGE_PA, 0x90, etext - TEXT_PAGE_VA);
        region = (struct hvp_mem_region){ 0, RAM, im->ram };
        assert_int_equal(hvp_guest_open_memory(&region, 1, &regs, 1, true, &im->g), 0);
        assert_int_equal(hvp_mmu_new_from_vcpu(im->g, 0, &im->mmu), 0);
        im->k.text_end = etext;
}

static void img_close(struct img *im)
{
        hvp_mmu_free(im->mmu);
        hvp_guest_free(im->g);
        free(im->ram);
}

static void test_slack(void **state)
{
        struct img im;
        struct hvp_area a;
        uint64_t at;

        (void)state;
        img_open(&im, TEXT_PAGE_VA + 0xd32, 0);
        assert_int_equal(hvp_area_find_slack(im.mmu, &im.k, &a), 0);
        assert_string_equal(a.kind, "slack");
        assert_int_equal(a.start, TEXT_PAGE_VA + 0xd32);
        assert_int_equal(a.len, 0x1000 - 0xd32);
        assert_int_equal(a.gpa, TEXT_PAGE_PA + 0xd32);
        assert_int_equal(a.filler, 0xcc);

        /* First fit, aligned. */
        assert_int_equal(hvp_area_alloc(im.g, &a, NULL, 0, 100, 16, &at), 0);
        assert_int_equal(at, TEXT_PAGE_VA + 0xd40);
        /* A range in use is skipped. */
        struct hvp_area_use used = { TEXT_PAGE_VA + 0xd40, 100 };
        assert_int_equal(hvp_area_alloc(im.g, &a, &used, 1, 100, 16, &at), 0);
        assert_int_equal(at, TEXT_PAGE_VA + 0xdb0);
        /* Too big. */
        assert_int_equal(hvp_area_alloc(im.g, &a, NULL, 0, 0x1000, 16, &at), -ENOSPC);
        assert_int_equal(hvp_area_alloc(im.g, &a, &used, 1, 0x2ce - 0x10, 16, &at), -ENOSPC);
        /* Someone else's bytes in the slack: refused, not overwritten. */
        im.ram[TEXT_PAGE_PA + 0xd45] = 0x00;
        assert_int_equal(hvp_area_alloc(im.g, &a, NULL, 0, 100, 16, &at), -EEXIST);
        assert_non_null(strstr(hvp_last_error(), "foreign bytes"));
        assert_int_equal(hvp_area_alloc(im.g, &a, NULL, 0, 100, 12, &at), -EINVAL);
        img_close(&im);
}

static void test_slack_refused(void **state)
{
        struct img im;
        struct hvp_area a;

        (void)state;
        img_open(&im, TEXT_PAGE_VA + 0xd32, NX);
        assert_int_equal(hvp_area_find_slack(im.mmu, &im.k, &a), -EFAULT);
        img_close(&im);
        img_open(&im, TEXT_PAGE_VA + 0xffc, 0);         /* 4 bytes left: no room worth having */
        assert_int_equal(hvp_area_find_slack(im.mmu, &im.k, &a), -ENOSPC);
        img_close(&im);
}

static void test_mmu_entry(void **state)
{
        struct img im;
        uint64_t gpa, e, slot = TEXT_PAGE_VA + (2u << 20);

        (void)state;
        img_open(&im, TEXT_PAGE_VA + 0xd32, 0);
        /* The PDE of the next 2 MiB slot: in the same page directory, not present. */
        assert_int_equal(hvp_mmu_entry(im.mmu, slot, 2, &gpa, &e), 0);
        assert_int_equal(gpa, 0x3000 + ((slot >> 21) & 511) * 8);
        assert_int_equal(e, 0);
        assert_int_equal(hvp_mmu_entry(im.mmu, TEXT_PAGE_VA, 2, &gpa, &e), 0);
        assert_int_equal(e, 0x4000 | P | RW);
        assert_int_equal(hvp_mmu_entry(im.mmu, TEXT_PAGE_VA, 1, &gpa, &e), 0);
        assert_int_equal(gpa, 0x4000 + ((TEXT_PAGE_VA >> 12) & 511) * 8);
        /* A slot under a missing PDPT entry has no PDE. */
        assert_int_equal(hvp_mmu_entry(im.mmu, 0xffff888000000000ull, 2, &gpa, &e), -EFAULT);
        assert_int_equal(hvp_mmu_entry(im.mmu, TEXT_PAGE_VA, 5, &gpa, &e), -EINVAL);
        img_close(&im);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_slack),
                cmocka_unit_test(test_slack_refused),
                cmocka_unit_test(test_mmu_entry),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}

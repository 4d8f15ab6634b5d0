/*
 * x86-64 page walker over synthetic page tables. The tables are built here, by a
 * helper that knows nothing of vmi/paging-x86.c: the expected answers come from the
 * mappings the test asked for and the Intel SDM's entry formats, not from hvpatch.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <hvpatch/hvpatch.h>
#include <hvpatch/paging.h>

#include "common/util.h"

#define KIB 1024ull
#define MIB (1024ull * KIB)
#define GIB (1024ull * MIB)

#define P  (1ull << 0)
#define RW (1ull << 1)
#define US (1ull << 2)
#define PS (1ull << 7)
#define G  (1ull << 8)
#define NX (1ull << 63)

/* Low RAM holds the tables and 4K/2M data; high RAM sits at 1 GiB for a 1 GiB page. */
#define LOW_SIZE   (16 * MIB)
#define TABLES_END (2 * MIB)            /* tables are allocated from 0x1000 up to here */
#define HIGH_GPA   (1 * GIB)
#define HIGH_SIZE  (2 * MIB)

struct img {
        uint8_t *low, *high;
        uint64_t next_table;
        int levels;
        uint64_t root;
        struct hvp_guest *g;
        struct hvp_mmu *mmu;
};

static uint8_t *phys(struct img *im, uint64_t gpa)
{
        if (gpa < LOW_SIZE)
                return im->low + gpa;
        assert_true(gpa >= HIGH_GPA && gpa < HIGH_GPA + HIGH_SIZE);
        return im->high + (gpa - HIGH_GPA);
}

static void put64(uint8_t *p, uint64_t v)
{
        hvp_put_le64(p, v);
}

static uint64_t get64(const uint8_t *p)
{
        uint64_t v = 0;

        for (int i = 7; i >= 0; i--)
                v = v << 8 | p[i];
        return v;
}

static uint64_t alloc_table(struct img *im)
{
        uint64_t pa = im->next_table;

        assert_true(pa + 4096 <= TABLES_END);
        im->next_table += 4096;
        memset(phys(im, pa), 0, 4096);
        return pa;
}

static unsigned index_of(uint64_t va, int level)
{
        return (unsigned)(va >> (12 + 9 * (level - 1))) & 511;
}

/*
 * The physical address of va's entry at level (levels..1), creating the tables above
 * it (entries P|RW|US) as needed. Stops with an assertion if a large page is in the way.
 */
static uint64_t entry_addr(struct img *im, uint64_t va, int level)
{
        uint64_t table = im->root;

        for (int l = im->levels; l > level; l--) {
                uint64_t ea = table + index_of(va, l) * 8, e = get64(phys(im, ea));

                if (!(e & P)) {
                        e = alloc_table(im) | P | RW | US;
                        put64(phys(im, ea), e);
                }
                assert_false(l <= 3 && (e & PS));
                table = e & 0x000ffffffffff000ull;
        }
        return table + index_of(va, level) * 8;
}

static uint64_t get_entry(struct img *im, uint64_t va, int level)
{
        return get64(phys(im, entry_addr(im, va, level)));
}

static void set_entry(struct img *im, uint64_t va, int level, uint64_t e)
{
        put64(phys(im, entry_addr(im, va, level)), e);
}

/* Map va -> pa with a page of size (4K, 2M, 1G) and the given flags in the final entry. */
static void map(struct img *im, uint64_t va, uint64_t pa, uint64_t size, uint64_t flags)
{
        int level = size == 4 * KIB ? 1 : size == 2 * MIB ? 2 : 3;

        assert_true(size == 4 * KIB || size == 2 * MIB || size == GIB);
        set_entry(im, va, level, pa | flags | (level > 1 ? PS : 0));
}

static void img_open(struct img *im, int levels, bool nxe)
{
        struct hvp_mem_region regions[2];

        memset(im, 0, sizeof(*im));
        im->low = calloc(1, LOW_SIZE);
        im->high = calloc(1, HIGH_SIZE);
        assert_non_null(im->low);
        assert_non_null(im->high);
        /* Recognizable contents: every 8-byte word holds its own guest-physical address. */
        for (uint64_t a = TABLES_END; a < LOW_SIZE; a += 8)
                put64(im->low + a, a);
        for (uint64_t a = 0; a < HIGH_SIZE; a += 8)
                put64(im->high + a, HIGH_GPA + a);
        im->levels = levels;
        im->next_table = 0x1000;
        im->root = alloc_table(im);
        regions[0] = (struct hvp_mem_region){ 0, LOW_SIZE, im->low };
        regions[1] = (struct hvp_mem_region){ HIGH_GPA, HIGH_SIZE, im->high };
        assert_int_equal(hvp_guest_open_memory(regions, 2, NULL, 0, true, &im->g), 0);
        assert_int_equal(hvp_mmu_new(im->g, im->root, levels == 5 ? HVP_PAGING_5LEVEL : HVP_PAGING_4LEVEL,
                                     nxe, &im->mmu), 0);
}

static void img_close(struct img *im)
{
        hvp_mmu_free(im->mmu);
        hvp_guest_free(im->g);
        free(im->low);
        free(im->high);
}

static void assert_error_contains(const char *needle)
{
        const char *e = hvp_last_error();

        if (!strstr(e, needle))
                fail_msg("reason \"%s\" does not contain \"%s\"", e, needle);
}

/* Translate and check against the expected mapping. */
static void expect_pa(struct img *im, uint64_t va, uint64_t pa, uint64_t size)
{
        struct hvp_translation tr;
        int r = hvp_mmu_translate(im->mmu, va, &tr);

        if (r != 0)
                fail_msg("0x%llx: %d %s", (unsigned long long)va, r, hvp_last_error());
        assert_int_equal(tr.error, HVP_WALK_OK);
        assert_int_equal(tr.va, va);
        assert_int_equal(tr.pa, pa);
        assert_int_equal(tr.page_size, size);
        assert_int_equal(tr.level, size == 4 * KIB ? 1 : size == 2 * MIB ? 2 : 3);
        assert_true(tr.flags & HVP_PF_PRESENT);
}

static void expect_fail(struct img *im, uint64_t va, int err, enum hvp_walk_error we, int level)
{
        struct hvp_translation tr;
        int r;

        memset(&tr, 0xa5, sizeof(tr));
        r = hvp_mmu_translate(im->mmu, va, &tr);
        if (r != err)
                fail_msg("0x%llx: expected %d, got %d (%s)", (unsigned long long)va, err, r,
                         hvp_last_error());
        assert_int_equal(tr.error, we);
        assert_int_equal(tr.error_level, level);
        assert_int_equal(tr.va, va);
        assert_string_not_equal(hvp_last_error(), "");
}

/* ---- paging mode from registers ---- */

static struct hvp_vcpu_regs regs_of(uint64_t cr0, uint64_t cr4, uint64_t efer)
{
        return (struct hvp_vcpu_regs){ .cr0 = cr0, .cr4 = cr4, .efer = efer, .cr3 = 0x1000 };
}

static void test_mode_real_registers(void **state)
{
        /* Seen on a Debian 6.1 guest with <cpu mode='maximum'/> (LA57) under TCG. */
        struct hvp_vcpu_regs r = regs_of(0x80050033, 0x00751ef0, 0xd01);
        enum hvp_paging_mode m = 0;

        assert_int_equal(hvp_paging_mode(&r, &m), 0);
        assert_int_equal(m, HVP_PAGING_5LEVEL);
        r.cr4 &= ~(1ull << 12);
        assert_int_equal(hvp_paging_mode(&r, &m), 0);
        assert_int_equal(m, HVP_PAGING_4LEVEL);
        /* A register source that reports LME but drops LMA still describes long mode. */
        r.efer = 0x901;
        assert_int_equal(hvp_paging_mode(&r, &m), 0);
        assert_int_equal(m, HVP_PAGING_4LEVEL);
}

static void test_mode_bad_registers(void **state)
{
        static const struct {
                uint64_t cr0, cr4, efer;
                const char *why;
        } bad[] = {
                { 0x00000011, 0x00000000, 0x000, "CR0.PG" },    /* real mode / no paging */
                { 0x00050033, 0x00751ef0, 0xd01, "CR0.PG" },    /* PG cleared */
                { 0x80000000, 0x00000020, 0xd01, "CR0.PE" },    /* PG without PE */
                { 0x80050033, 0x00000000, 0x000, "CR4.PAE" },   /* 32-bit paging */
                { 0x80050033, 0x00751ed0, 0xd01, "CR4.PAE" },   /* PAE cleared */
                { 0x80050033, 0x000006f0, 0x800, "LMA and LME clear" },       /* PAE paging, 32-bit */
                { 0x80050033, 0x000006f0, 0xc01, "LMA set without EFER.LME" },       /* LMA without LME */
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct hvp_vcpu_regs r = regs_of(bad[i].cr0, bad[i].cr4, bad[i].efer);
                enum hvp_paging_mode m = 77;

                assert_int_equal(hvp_paging_mode(&r, &m), -ENOTSUP);
                assert_int_equal(m, 77);
                assert_error_contains(bad[i].why);
        }
}

static void test_mmu_from_vcpu(void **state)
{
        struct hvp_vcpu_regs v[2] = {
                regs_of(0x80050033, 0x00751ef0, 0xd01),
                regs_of(0x80050033, 0x00000020, 0x000),
        };
        uint8_t *mem = calloc(1, 64 * KIB);
        struct hvp_mem_region reg = { 0, 64 * KIB, mem };
        struct hvp_guest *g;
        struct hvp_mmu *mmu;

        v[0].cr3 = 0x8000 | 0x5a5 | 1ull << 63;
        assert_int_equal(hvp_guest_open_memory(&reg, 1, v, 2, false, &g), 0);
        assert_int_equal(hvp_mmu_new_from_vcpu(g, 0, &mmu), 0);
        assert_int_equal(hvp_mmu_mode(mmu), HVP_PAGING_5LEVEL);
        assert_int_equal(hvp_mmu_root(mmu), 0x8000);
        assert_ptr_equal(hvp_mmu_guest(mmu), g);
        hvp_mmu_free(mmu);
        mmu = NULL;
        assert_int_equal(hvp_mmu_new_from_vcpu(g, 1, &mmu), -ENOTSUP);
        assert_null(mmu);
        assert_error_contains("vCPU 1");
        assert_int_equal(hvp_mmu_new_from_vcpu(g, 2, &mmu), -ENOENT);
        hvp_guest_free(g);
        free(mem);
}

/* ---- translations ---- */

static void check_page_sizes(int levels)
{
        const uint64_t ktext = 0xffffffff81000000ull, user = 0x400000ull;
        const uint64_t big = levels == 5 ? 0xff11000000000000ull : 0xffff888000000000ull;
        struct img im;

        img_open(&im, levels, true);
        map(&im, ktext, 0x300000, 4 * KIB, P | RW);
        map(&im, ktext + 0x1000, 0x7ff000, 4 * KIB, P);                 /* not contiguous */
        map(&im, user, 0x400000, 2 * MIB, P | RW | US);
        map(&im, big, HIGH_GPA, GIB, P | RW);
        /* PAT (bit 12) of a large page is not an address bit. */
        map(&im, user + 2 * MIB, 0x800000 | 1ull << 12, 2 * MIB, P);
        map(&im, big + GIB, HIGH_GPA | 1ull << 12, GIB, P);
        /* Bits 52-62 are ignored (software bits, protection keys) with MAXPHYADDR 52. */
        map(&im, ktext + 0x2000, 0x301000 | 0x7ffull << 52, 4 * KIB, P);

        expect_pa(&im, ktext, 0x300000, 4 * KIB);
        expect_pa(&im, ktext + 0xfff, 0x300fff, 4 * KIB);
        expect_pa(&im, ktext + 0x1234, 0x7ff234, 4 * KIB);
        expect_pa(&im, ktext + 0x2008, 0x301008, 4 * KIB);
        expect_pa(&im, user, 0x400000, 2 * MIB);
        expect_pa(&im, user + 0x1abcde, 0x5abcde, 2 * MIB);
        expect_pa(&im, user + 2 * MIB + 0x10, 0x800010, 2 * MIB);
        expect_pa(&im, user + 2 * MIB + 0x1000, 0x801000, 2 * MIB);
        expect_pa(&im, big + 0x123456, HIGH_GPA + 0x123456, GIB);
        expect_pa(&im, big + 0x1ffff8, HIGH_GPA + 0x1ffff8, GIB);
        expect_pa(&im, big + GIB + 0x10, HIGH_GPA + 0x10, GIB);
        /* The same, from the TLB. */
        expect_pa(&im, ktext + 0x10, 0x300010, 4 * KIB);
        expect_pa(&im, user + 0x1ffff0, 0x5ffff0, 2 * MIB);
        expect_pa(&im, big + 8, HIGH_GPA + 8, GIB);
        img_close(&im);
}

static void test_4level_page_sizes(void **state)
{
        check_page_sizes(4);
}

static void test_5level_page_sizes(void **state)
{
        check_page_sizes(5);
}

static void test_5level_uses_bits_48_to_56(void **state)
{
        /* Two addresses that differ only in PML5 index: 4-level would alias them. */
        const uint64_t a = 0x0000800000000000ull, b = 0x0001000000000000ull;
        struct img im;

        img_open(&im, 5, true);
        map(&im, a, 0x300000, 4 * KIB, P | RW);
        map(&im, b, 0x301000, 4 * KIB, P | RW);
        expect_pa(&im, a + 5, 0x300005, 4 * KIB);
        expect_pa(&im, b + 5, 0x301005, 4 * KIB);
        expect_fail(&im, 0x0000400000000000ull, -EFAULT, HVP_WALK_NOT_PRESENT, 4);
        img_close(&im);
}

static void check_not_present(int levels)
{
        const uint64_t va = 0xffffffff81234000ull;

        for (int level = levels; level >= 1; level--) {
                struct img im;
                char want[64];

                img_open(&im, levels, true);
                map(&im, va, 0x300000, 4 * KIB, P | RW);
                expect_pa(&im, va, 0x300000, 4 * KIB);
                hvp_mmu_flush(im.mmu);
                set_entry(&im, va, level, get_entry(&im, va, level) & ~P);
                expect_fail(&im, va + 0x10, -EFAULT, HVP_WALK_NOT_PRESENT, level);
                snprintf(want, sizeof(want), "[%u] not present (level %d)", index_of(va, level), level);
                assert_error_contains(want);
                assert_error_contains("0xffffffff81234010");
                img_close(&im);
        }
}

static void test_not_present_each_level(void **state)
{
        check_not_present(4);
        check_not_present(5);
}

static void test_not_present_message(void **state)
{
        struct img im;

        img_open(&im, 4, true);
        expect_fail(&im, 0xffffffff81000000ull, -EFAULT, HVP_WALK_NOT_PRESENT, 4);
        assert_string_equal(hvp_last_error(), "0xffffffff81000000: PML4E[511] not present (level 4)");
        img_close(&im);
}

/* Set bits in va's entry at level and expect a reserved-bit failure there. */
static void expect_reserved(int levels, bool nxe, uint64_t size, int level, uint64_t bits)
{
        const uint64_t va = 0xffffc90000000000ull;
        struct img im;
        char want[32];

        img_open(&im, levels, nxe);
        map(&im, va, size == GIB ? HIGH_GPA : 0x400000, size, P | RW);
        expect_pa(&im, va, size == GIB ? HIGH_GPA : 0x400000, size);
        hvp_mmu_flush(im.mmu);
        set_entry(&im, va, level, get_entry(&im, va, level) | bits);
        expect_fail(&im, va, -EINVAL, HVP_WALK_RESERVED_BITS, level);
        assert_error_contains("reserved bits");
        snprintf(want, sizeof(want), "(level %d)", level);
        assert_error_contains(want);
        img_close(&im);
}

static void test_reserved_bits_each_level(void **state)
{
        /* PS is reserved in PML5E and PML4E. */
        expect_reserved(5, true, 4 * KIB, 5, PS);
        expect_reserved(5, true, 4 * KIB, 4, PS);
        expect_reserved(4, true, 4 * KIB, 4, PS);
        /* 1 GiB page: bits 13..29 (bit 12 is PAT). */
        expect_reserved(4, true, GIB, 3, 1ull << 13);
        expect_reserved(4, true, GIB, 3, 1ull << 20);
        expect_reserved(4, true, GIB, 3, 1ull << 29);
        /* 2 MiB page: bits 13..20. */
        expect_reserved(4, true, 2 * MIB, 2, 1ull << 13);
        expect_reserved(5, true, 2 * MIB, 2, 1ull << 20);
        /* NX is reserved at every level when EFER.NXE is clear. */
        for (int level = 5; level >= 1; level--)
                expect_reserved(5, false, 4 * KIB, level, NX);
        expect_reserved(4, false, 2 * MIB, 2, NX);
        expect_reserved(4, false, GIB, 3, NX);
}

static void test_maxphyaddr(void **state)
{
        const uint64_t va = 0xffffc90000000000ull;
        struct img im;

        img_open(&im, 4, true);
        map(&im, va, 0x400000, 4 * KIB, P | RW);
        /* Bit 45 in a table pointer: beyond RAM with MAXPHYADDR 52, reserved with 40. */
        set_entry(&im, va, 2, get_entry(&im, va, 2) | 1ull << 45);
        expect_fail(&im, va, -ERANGE, HVP_WALK_OUTSIDE_RAM, 1);
        assert_int_equal(hvp_mmu_set_maxphyaddr(im.mmu, 40), 0);
        expect_fail(&im, va, -EINVAL, HVP_WALK_RESERVED_BITS, 2);
        assert_error_contains("0x200000000000");
        set_entry(&im, va, 2, get_entry(&im, va, 2) & ~(1ull << 45));
        expect_pa(&im, va, 0x400000, 4 * KIB);
        /* Bit 39 is still an address bit with 40. */
        hvp_mmu_flush(im.mmu);
        set_entry(&im, va, 1, get_entry(&im, va, 1) | 1ull << 39);
        expect_fail(&im, va, -ERANGE, HVP_WALK_OUTSIDE_RAM, 1);
        assert_int_equal(hvp_mmu_set_maxphyaddr(im.mmu, 39), 0);
        expect_fail(&im, va, -EINVAL, HVP_WALK_RESERVED_BITS, 1);
        assert_int_equal(hvp_mmu_set_maxphyaddr(im.mmu, 31), -EINVAL);
        assert_int_equal(hvp_mmu_set_maxphyaddr(im.mmu, 53), -EINVAL);
        img_close(&im);
}

static void test_cr3_flag_bits_ignored(void **state)
{
        const uint64_t va = 0xffffffff81000000ull;
        const uint64_t junk[] = { 0xfff, 0x001, 0x018, 1ull << 63, 1ull << 62, 1ull << 61,
                                  7ull << 61 | 0xabc };
        struct img im;

        img_open(&im, 4, true);
        map(&im, va, 0x300000, 4 * KIB, P | RW);
        for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
                struct hvp_translation tr;
                struct hvp_mmu *mmu;

                assert_int_equal(hvp_mmu_new(im.g, im.root | junk[i], HVP_PAGING_4LEVEL, true, &mmu), 0);
                assert_int_equal(hvp_mmu_root(mmu), im.root);
                assert_int_equal(hvp_mmu_translate(mmu, va + 7, &tr), 0);
                assert_int_equal(tr.pa, 0x300007);
                hvp_mmu_free(mmu);
        }
        /* Bits 52..60 of CR3 are reserved. */
        for (int bit = 52; bit <= 60; bit++) {
                struct hvp_mmu *mmu = NULL;

                assert_int_equal(hvp_mmu_new(im.g, im.root | 1ull << bit, HVP_PAGING_4LEVEL, true, &mmu),
                                 -EINVAL);
                assert_null(mmu);
        }
        img_close(&im);
}

static void test_table_beyond_ram(void **state)
{
        const uint64_t va = 0xffffffff81000000ull;
        struct hvp_mmu *mmu;
        struct img im;

        img_open(&im, 4, true);
        map(&im, va, 0x300000, 4 * KIB, P | RW);
        /* The page directory pointer leads to the hole between low and high RAM. */
        set_entry(&im, va, 3, 0x10000000 | P | RW);
        expect_fail(&im, va, -ERANGE, HVP_WALK_OUTSIDE_RAM, 2);
        assert_error_contains("page directory at 0x10000000");
        assert_error_contains("outside guest RAM (level 2)");
        /* A root outside RAM fails at the top level. */
        assert_int_equal(hvp_mmu_new(im.g, 0x20000000, HVP_PAGING_5LEVEL, true, &mmu), 0);
        assert_int_equal(hvp_mmu_translate(mmu, va, NULL), -ERANGE);
        assert_error_contains("(level 5)");
        hvp_mmu_free(mmu);
        /* Just past the end of low RAM: the last table slot straddles nothing, it is outside. */
        set_entry(&im, va, 3, LOW_SIZE | P | RW);
        expect_fail(&im, va, -ERANGE, HVP_WALK_OUTSIDE_RAM, 2);
        img_close(&im);
}

static void test_final_frame_beyond_ram(void **state)
{
        const uint64_t va = 0xffffffff81000000ull, big = 0xffff888000000000ull;
        struct img im;

        img_open(&im, 4, true);
        map(&im, va, 0x20000000, 4 * KIB, P | RW);
        map(&im, va + 0x1000, LOW_SIZE - 4 * KIB, 4 * KIB, P | RW);
        map(&im, big, HIGH_GPA, GIB, P | RW);
        map(&im, va + 2 * MIB, 14 * MIB, 2 * MIB, P | RW);
        expect_fail(&im, va, -ERANGE, HVP_WALK_OUTSIDE_RAM, 1);
        assert_error_contains("page frame 0x20000000");
        expect_pa(&im, va + 2 * MIB + 0x1ff008, 14 * MIB + 0x1ff008, 2 * MIB);
        expect_pa(&im, va + 0x1fff, LOW_SIZE - 1, 4 * KIB);
        /* A 1 GiB page only partly backed by RAM: each frame is judged on its own. */
        expect_pa(&im, big + HIGH_SIZE - 1, HIGH_GPA + HIGH_SIZE - 1, GIB);
        expect_fail(&im, big + HIGH_SIZE, -ERANGE, HVP_WALK_OUTSIDE_RAM, 3);
        /* ...also when the first translation came from the TLB. */
        expect_pa(&im, big, HIGH_GPA, GIB);
        expect_fail(&im, big + 512 * MIB, -ERANGE, HVP_WALK_OUTSIDE_RAM, 3);
        img_close(&im);
}

static void test_non_canonical(void **state)
{
        static const uint64_t bad4[] = { 0x0000800000000000ull, 0xffff7fffffffffffull,
                                         0x8000000000000000ull, 0x00ff000000000000ull };
        static const uint64_t bad5[] = { 0x0100000000000000ull, 0xfeffffffffffffffull,
                                         0x8000000000000000ull, 0x7fffffffffffffffull };
        struct img im4, im5;

        img_open(&im4, 4, true);
        img_open(&im5, 5, true);
        for (size_t i = 0; i < 4; i++) {
                expect_fail(&im4, bad4[i], -EINVAL, HVP_WALK_NON_CANONICAL, 0);
                assert_error_contains("canonical");
                expect_fail(&im5, bad5[i], -EINVAL, HVP_WALK_NON_CANONICAL, 0);
        }
        /* Canonical at the edges: these reach the (empty) tables. */
        expect_fail(&im4, 0x00007fffffffffffull, -EFAULT, HVP_WALK_NOT_PRESENT, 4);
        expect_fail(&im4, 0xffff800000000000ull, -EFAULT, HVP_WALK_NOT_PRESENT, 4);
        expect_fail(&im5, 0x00ffffffffffffffull, -EFAULT, HVP_WALK_NOT_PRESENT, 5);
        expect_fail(&im5, 0xff00000000000000ull, -EFAULT, HVP_WALK_NOT_PRESENT, 5);
        expect_fail(&im5, 0x0000800000000000ull, -EFAULT, HVP_WALK_NOT_PRESENT, 5);
        img_close(&im4);
        img_close(&im5);
}

static uint32_t flags_of(struct img *im, uint64_t va)
{
        struct hvp_translation tr;

        hvp_mmu_flush(im->mmu);
        if (hvp_mmu_translate(im->mmu, va, &tr) != 0)
                fail_msg("0x%llx: %s", (unsigned long long)va, hvp_last_error());
        return tr.flags;
}

static void test_flags(void **state)
{
        const uint64_t va = 0x7f0000001000ull, lva = 0x7f0000400000ull;
        struct img im;

        img_open(&im, 5, true);
        map(&im, va, 0x300000, 4 * KIB, P | RW | US);
        map(&im, lva, 0x400000, 2 * MIB, P | RW | US);
        assert_int_equal(flags_of(&im, va), HVP_PF_PRESENT | HVP_PF_WRITE | HVP_PF_USER);
        /* W and U are ANDed over all levels: clear them in different ones. */
        set_entry(&im, va, 5, get_entry(&im, va, 5) & ~RW);
        assert_int_equal(flags_of(&im, va), HVP_PF_PRESENT | HVP_PF_USER);
        assert_int_equal(flags_of(&im, lva), HVP_PF_PRESENT | HVP_PF_USER);
        set_entry(&im, va, 5, get_entry(&im, va, 5) | RW);
        set_entry(&im, va, 2, get_entry(&im, va, 2) & ~US);
        assert_int_equal(flags_of(&im, va), HVP_PF_PRESENT | HVP_PF_WRITE);
        assert_int_equal(flags_of(&im, lva), HVP_PF_PRESENT | HVP_PF_WRITE | HVP_PF_USER);
        set_entry(&im, va, 1, get_entry(&im, va, 1) & ~RW);
        assert_int_equal(flags_of(&im, va), HVP_PF_PRESENT);
        /* NX is ORed: set at one upper level only. */
        set_entry(&im, va, 3, get_entry(&im, va, 3) | NX);
        assert_int_equal(flags_of(&im, va), HVP_PF_PRESENT | HVP_PF_NX);
        assert_int_equal(flags_of(&im, lva), HVP_PF_PRESENT | HVP_PF_WRITE | HVP_PF_USER | HVP_PF_NX);
        set_entry(&im, va, 3, get_entry(&im, va, 3) & ~NX);
        set_entry(&im, lva, 2, get_entry(&im, lva, 2) | NX);
        assert_int_equal(flags_of(&im, va), HVP_PF_PRESENT);
        assert_int_equal(flags_of(&im, lva), HVP_PF_PRESENT | HVP_PF_WRITE | HVP_PF_USER | HVP_PF_NX);
        /* G counts in the final entry only (bit 8 of a non-leaf entry is ignored). */
        set_entry(&im, va, 2, get_entry(&im, va, 2) | G);
        assert_int_equal(flags_of(&im, va), HVP_PF_PRESENT);
        set_entry(&im, va, 1, get_entry(&im, va, 1) | G);
        assert_int_equal(flags_of(&im, va), HVP_PF_PRESENT | HVP_PF_GLOBAL);
        set_entry(&im, lva, 2, get_entry(&im, lva, 2) | G);
        assert_int_equal(flags_of(&im, lva) & HVP_PF_GLOBAL, HVP_PF_GLOBAL);
        img_close(&im);
}

/* ---- reads and writes ---- */

static void test_read_across_pages(void **state)
{
        const uint64_t va = 0xffffffffa0000000ull;
        uint8_t buf[3 * 4096 + 100], want[sizeof(buf)];
        struct img im;

        img_open(&im, 4, true);
        /* Three pages, deliberately out of physical order, then a 2 MiB page. */
        map(&im, va, 0x900000, 4 * KIB, P);
        map(&im, va + 0x1000, 0x300000, 4 * KIB, P);
        map(&im, va + 0x2000, 0x301000, 4 * KIB, P);
        map(&im, va + 0x200000, 0x600000, 2 * MIB, P);
        map(&im, va + 0x3000, 0x700000, 4 * KIB, P);
        memcpy(want, phys(&im, 0x900010), 4096 - 0x10);
        memcpy(want + 4096 - 0x10, phys(&im, 0x300000), 4096);
        memcpy(want + 2 * 4096 - 0x10, phys(&im, 0x301000), 4096);
        memcpy(want + 3 * 4096 - 0x10, phys(&im, 0x700000), 0x10 + 100);
        assert_int_equal(hvp_mmu_read(im.mmu, va + 0x10, buf, sizeof(buf)), 0);
        assert_memory_equal(buf, want, sizeof(buf));
        /* Inside a large page. */
        assert_int_equal(hvp_mmu_read(im.mmu, va + 0x200000 + 0x1ff000, buf, 4096), 0);
        assert_memory_equal(buf, phys(&im, 0x7ff000), 4096);
        /* Zero bytes: nothing to translate. */
        assert_int_equal(hvp_mmu_read(im.mmu, 0x8000000000000000ull, buf, 0), 0);
        img_close(&im);
}

/*
 * A long read over 4 KiB pages (the walker copies a page table it walks twice within
 * one read): every byte right, across two page tables; and the copy does not outlive
 * the read: a later translation of another page under the same table sees a PTE
 * changed since.
 */
static void test_read_many_4k_pages(void **state)
{
        const uint64_t va = 0xff11000000000000ull + 0x1ff000;       /* one page below a PT boundary */
        const unsigned pages = 600;
        uint64_t *buf = malloc(pages * 4096ull);
        struct img im;

        (void)state;
        assert_non_null(buf);
        img_open(&im, 5, true);
        /* physically in reverse order, so no two pages merge into one run */
        for (unsigned i = 0; i < pages + 2; i++)
                map(&im, va + i * 4096ull, 0x400000 + (pages + 1 - i) * 4096ull, 4 * KIB, P);
        assert_int_equal(hvp_mmu_read(im.mmu, va, buf, pages * 4096ull), 0);
        for (unsigned i = 0; i < pages; i++)
                for (unsigned w = 0; w < 512; w++)
                        if (buf[i * 512 + w] != 0x400000 + (pages + 1 - i) * 4096ull + w * 8)
                                fail_msg("page %u word %u: 0x%llx", i, w, (unsigned long long)buf[i * 512 + w]);
        /* the page after the read, under the same page table, remapped without a flush */
        set_entry(&im, va + pages * 4096ull, 1, 0x300000 | P);
        expect_pa(&im, va + pages * 4096ull, 0x300000, 4 * KIB);
        set_entry(&im, va + (pages + 1) * 4096ull, 1, 0);
        expect_fail(&im, va + (pages + 1) * 4096ull, -EFAULT, HVP_WALK_NOT_PRESENT, 1);
        img_close(&im);
        free(buf);
}

static void test_read_into_unmapped_fails_whole(void **state)
{
        const uint64_t va = 0xffffffffa0000000ull;
        uint8_t buf[8192], sentinel[sizeof(buf)];
        struct img im;

        img_open(&im, 4, true);
        map(&im, va, 0x300000, 4 * KIB, P);
        map(&im, va + 0x1000, 0x301000, 4 * KIB, P);
        memset(buf, 0xcc, sizeof(buf));
        memcpy(sentinel, buf, sizeof(buf));
        assert_int_equal(hvp_mmu_read(im.mmu, va + 0x1800, buf, 4096), -EFAULT);
        assert_memory_equal(buf, sentinel, sizeof(buf));
        assert_error_contains("0xffffffffa0002000: PTE[2] not present");
        /* Into a frame outside RAM, and across the top of a 1 GiB page's RAM. */
        map(&im, va + 0x2000, 0x20000000, 4 * KIB, P);
        assert_int_equal(hvp_mmu_read(im.mmu, va + 0x1800, buf, 4096), -ERANGE);
        assert_memory_equal(buf, sentinel, sizeof(buf));
        map(&im, 0xffff888000000000ull, HIGH_GPA, GIB, P);
        assert_int_equal(hvp_mmu_read(im.mmu, 0xffff888000000000ull + HIGH_SIZE - 16, buf, 32), -ERANGE);
        assert_memory_equal(buf, sentinel, sizeof(buf));
        assert_int_equal(hvp_mmu_read(im.mmu, 0xffff888000000000ull + HIGH_SIZE - 16, buf, 16), 0);
        assert_int_equal(get64(buf + 8), HIGH_GPA + HIGH_SIZE - 8);
        /* Wrapping around the top of the address space. */
        assert_int_equal(hvp_mmu_read(im.mmu, 0xfffffffffffff000ull, buf, 8192), -EINVAL);
        img_close(&im);
}

static void test_read_spanning_adjacent_ram_ranges(void **state)
{
        /* Two RAM regions back to back: one 2 MiB page spans both. */
        uint8_t *a = calloc(1, MIB), *b = calloc(1, MIB), *t = calloc(1, 64 * KIB), buf[64];
        struct hvp_mem_region regs[3] = {
                { 0, 64 * KIB, t }, { 4 * MIB, MIB, a }, { 5 * MIB, MIB, b },
        };
        struct hvp_guest *g;
        struct hvp_mmu *mmu;

        /* PML4 at 0x1000, PDPT at 0x2000, PD at 0x3000; va 0 -> 2 MiB page at 4 MiB. */
        put64(t + 0x1000, 0x2000 | P | RW);
        put64(t + 0x2000, 0x3000 | P | RW);
        put64(t + 0x3000 + 2 * 8, 4 * MIB | P | RW | PS);
        memset(a + MIB - 32, 0x11, 32);
        memset(b, 0x22, 32);
        assert_int_equal(hvp_guest_open_memory(regs, 3, NULL, 0, true, &g), 0);
        assert_int_equal(hvp_mmu_new(g, 0x1000, HVP_PAGING_4LEVEL, true, &mmu), 0);
        assert_int_equal(hvp_mmu_read(mmu, 4 * MIB + MIB - 32, buf, 64), 0);
        for (int i = 0; i < 64; i++)
                assert_int_equal(buf[i], i < 32 ? 0x11 : 0x22);
        memset(buf, 0x33, sizeof(buf));
        assert_int_equal(hvp_mmu_write(mmu, 4 * MIB + MIB - 8, buf, 16), 0);
        assert_int_equal(a[MIB - 1], 0x33);
        assert_int_equal(b[7], 0x33);
        assert_int_equal(b[8], 0x22);
        hvp_mmu_free(mmu);
        hvp_guest_free(g);
        free(a);
        free(b);
        free(t);
}

static void test_partial_frame_at_ram_end(void **state)
{
        /* RAM ending 2 KiB into a frame: that frame is not usable, through a large page too. */
        uint8_t *t = calloc(1, 64 * KIB), *d = calloc(1, 0x1800), buf[32];
        struct hvp_mem_region regs[2] = { { 0, 64 * KIB, t }, { 4 * MIB, 0x1800, d } };
        struct hvp_translation tr;
        struct hvp_guest *g;
        struct hvp_mmu *mmu;

        put64(t + 0x1000, 0x2000 | P | RW);
        put64(t + 0x2000, 0x3000 | P | RW);
        put64(t + 0x3000 + 2 * 8, 4 * MIB | P | RW | PS);
        assert_int_equal(hvp_guest_open_memory(regs, 2, NULL, 0, true, &g), 0);
        assert_int_equal(hvp_mmu_new(g, 0x1000, HVP_PAGING_4LEVEL, true, &mmu), 0);
        assert_int_equal(hvp_mmu_translate(mmu, 4 * MIB + 0xff8, &tr), 0);
        assert_int_equal(hvp_mmu_translate(mmu, 4 * MIB + 0x1000, &tr), -ERANGE);
        assert_int_equal(tr.error, HVP_WALK_OUTSIDE_RAM);
        assert_int_equal(hvp_mmu_read(mmu, 4 * MIB + 0xff0, buf, 16), 0);
        assert_int_equal(hvp_mmu_read(mmu, 4 * MIB + 0xff0, buf, 32), -ERANGE);
        hvp_mmu_free(mmu);
        hvp_guest_free(g);
        free(t);
        free(d);
}

static void test_write_lands_in_physical_bytes(void **state)
{
        const uint64_t va = 0xffffffff81000000ull;
        uint8_t data[6000], before[4096], before2[4096];
        struct img im;

        img_open(&im, 5, true);
        map(&im, va, 0x500000, 4 * KIB, P);     /* read-only to the guest: hvpatch still writes */
        map(&im, va + 0x1000, 0x310000, 4 * KIB, P);
        for (size_t i = 0; i < sizeof(data); i++)
                data[i] = (uint8_t)(i * 7 + 1);
        memcpy(before, phys(&im, 0x500000), 4096);
        memcpy(before2, phys(&im, 0x310000), 4096);
        assert_int_equal(hvp_mmu_write(im.mmu, va + 100, data, sizeof(data)), 0);
        assert_memory_equal(phys(&im, 0x500000), before, 100);
        assert_memory_equal(phys(&im, 0x500000 + 100), data, 4096 - 100);
        assert_memory_equal(phys(&im, 0x310000), data + 4096 - 100, 2004);
        assert_memory_equal(phys(&im, 0x310000 + 2004), before2 + 2004, 4096 - 2004);
        /* The physically adjacent page after the first is untouched. */
        assert_int_equal(get64(phys(&im, 0x501000)), 0x501000);
        /* All or nothing: a write that runs into an unmapped page writes nothing. */
        memcpy(before, phys(&im, 0x310000), 4096);
        assert_int_equal(hvp_mmu_write(im.mmu, va + 0x1800, data, 4096), -EFAULT);
        assert_memory_equal(phys(&im, 0x310000), before, 4096);
        img_close(&im);
}

static void test_write_read_only_guest(void **state)
{
        uint8_t *mem = calloc(1, 64 * KIB), b = 1;
        struct hvp_mem_region reg = { 0, 64 * KIB, mem };
        struct hvp_guest *g;
        struct hvp_mmu *mmu;

        put64(mem + 0x1000, 0x2000 | P);
        put64(mem + 0x2000, 0x3000 | P);
        put64(mem + 0x3000, 0x4000 | P);
        put64(mem + 0x4000, 0x5000 | P);
        assert_int_equal(hvp_guest_open_memory(&reg, 1, NULL, 0, false, &g), 0);
        assert_int_equal(hvp_mmu_new(g, 0x1000, HVP_PAGING_4LEVEL, false, &mmu), 0);
        assert_int_equal(hvp_mmu_read(mmu, 0x10, &b, 1), 0);
        assert_int_equal(b, 0);
        b = 9;
        assert_int_equal(hvp_mmu_write(mmu, 0x10, &b, 1), -EROFS);
        assert_int_equal(mem[0x5010], 0);
        hvp_mmu_free(mmu);
        hvp_guest_free(g);
        free(mem);
}

/* ---- TLB ---- */

static void expect_stats(struct img *im, uint64_t hits, uint64_t misses)
{
        uint64_t h, m;

        hvp_mmu_tlb_stats(im->mmu, &h, &m);
        assert_int_equal(h, hits);
        assert_int_equal(m, misses);
}

static void test_tlb_no_stale_after_flush(void **state)
{
        const uint64_t va = 0xffffffff81000000ull, lva = 0xffffffff82000000ull;
        struct img im;

        img_open(&im, 4, true);
        map(&im, va, 0x300000, 4 * KIB, P | RW);
        map(&im, lva, 0x400000, 2 * MIB, P | RW);
        expect_pa(&im, va, 0x300000, 4 * KIB);
        expect_pa(&im, lva + 0x1000, 0x401000, 2 * MIB);
        /* Change the PTE: the cached answer stays until a flush, then never again. */
        set_entry(&im, va, 1, 0x301000 | P);
        expect_pa(&im, va, 0x300000, 4 * KIB);
        hvp_mmu_flush(im.mmu);
        expect_pa(&im, va, 0x301000, 4 * KIB);
        expect_pa(&im, va, 0x301000, 4 * KIB);
        /* Unmap: after a flush the page is gone. */
        set_entry(&im, va, 1, 0);
        hvp_mmu_flush(im.mmu);
        expect_fail(&im, va, -EFAULT, HVP_WALK_NOT_PRESENT, 1);
        /* A 2 MiB page split into 4 KiB pages: the large entry must not shadow them. */
        {
                uint64_t pt = alloc_table(&im);

                for (unsigned i = 0; i < 512; i++)
                        put64(phys(&im, pt + i * 8), (0x800000 + (511 - i) * 4096ull) | P);
                set_entry(&im, lva, 2, pt | P | RW);
        }
        hvp_mmu_flush(im.mmu);
        expect_pa(&im, lva + 0x1000, 0x800000 + 510 * 4096ull, 4 * KIB);
        expect_pa(&im, lva, 0x800000 + 511 * 4096ull, 4 * KIB);
        /* Many flushes in a row. */
        for (int i = 0; i < 1000; i++)
                hvp_mmu_flush(im.mmu);
        expect_pa(&im, lva + 0x1ff000, 0x800000, 4 * KIB);
        img_close(&im);
}

static void test_tlb_flushed_by_write(void **state)
{
        const uint64_t va = 0xffffffff81000000ull;
        struct img im;
        uint8_t e[8];
        uint64_t pte_va = 0xffff888000000000ull;

        img_open(&im, 4, true);
        map(&im, va, 0x300000, 4 * KIB, P | RW);
        /* Map the tables' RAM so that the PTE can be written through the mmu itself. */
        map(&im, pte_va, 0, 2 * MIB, P | RW);
        expect_pa(&im, va, 0x300000, 4 * KIB);
        put64(e, 0x302000 | P | RW);
        assert_int_equal(hvp_mmu_write(im.mmu, pte_va + entry_addr(&im, va, 1), e, 8), 0);
        expect_pa(&im, va + 4, 0x302004, 4 * KIB);
        img_close(&im);
}

static void test_tlb_counters(void **state)
{
        const uint64_t va = 0xffffffff81000000ull, lva = 0xffffffff82000000ull;
        const uint64_t gva = 0xffff888000000000ull;
        struct img im;

        img_open(&im, 4, true);
        for (unsigned i = 0; i < 8; i++)
                map(&im, va + i * 4096ull, 0x300000 + i * 8192ull, 4 * KIB, P);
        map(&im, lva, 0x400000, 2 * MIB, P);
        map(&im, gva, HIGH_GPA, GIB, P);
        expect_stats(&im, 0, 0);
        for (unsigned i = 0; i < 8; i++)
                expect_pa(&im, va + i * 4096ull + i, 0x300000 + i * 8192ull + i, 4 * KIB);
        expect_stats(&im, 0, 8);
        for (unsigned i = 0; i < 8; i++)
                expect_pa(&im, va + i * 4096ull + 8, 0x300000 + i * 8192ull + 8, 4 * KIB);
        expect_stats(&im, 8, 8);
        /* A large page is one entry: every address inside it hits. */
        expect_pa(&im, lva, 0x400000, 2 * MIB);
        expect_pa(&im, lva + 0x1fffff, 0x5fffff, 2 * MIB);
        expect_pa(&im, lva + 0x123456, 0x523456, 2 * MIB);
        expect_stats(&im, 10, 9);
        expect_pa(&im, gva + 0x100000, HIGH_GPA + 0x100000, GIB);
        expect_pa(&im, gva + 0x1000, HIGH_GPA + 0x1000, GIB);
        expect_stats(&im, 11, 10);
        /* Failed walks are not cached: each one walks again. */
        expect_fail(&im, va + 8 * 4096ull, -EFAULT, HVP_WALK_NOT_PRESENT, 1);
        expect_fail(&im, va + 8 * 4096ull, -EFAULT, HVP_WALK_NOT_PRESENT, 1);
        expect_stats(&im, 11, 12);
        /* Non-canonical addresses never reach the TLB. */
        expect_fail(&im, 0x8000000000000000ull, -EINVAL, HVP_WALK_NON_CANONICAL, 0);
        expect_stats(&im, 11, 12);
        /* After a flush, everything misses once again. */
        hvp_mmu_flush(im.mmu);
        expect_pa(&im, va, 0x300000, 4 * KIB);
        expect_pa(&im, va, 0x300000, 4 * KIB);
        expect_pa(&im, lva, 0x400000, 2 * MIB);
        expect_stats(&im, 12, 14);
        /* A read of 8 pages is 8 translations: misses after a flush, hits after that. */
        {
                uint8_t buf[8 * 4096];

                hvp_mmu_flush(im.mmu);
                assert_int_equal(hvp_mmu_read(im.mmu, va, buf, sizeof(buf)), 0);
                expect_stats(&im, 12, 22);
                assert_int_equal(hvp_mmu_read(im.mmu, va, buf, sizeof(buf)), 0);
                expect_stats(&im, 20, 22);
                for (unsigned i = 0; i < 8; i++)
                        assert_int_equal(get64(buf + i * 4096), 0x300000 + i * 8192ull);
        }
        img_close(&im);
}

static void test_tlb_conflicts(void **state)
{
        /* More pages than TLB entries, in several passes: answers stay right. */
        const uint64_t va = 0xffffc90000000000ull;
        const unsigned n = 3000;
        struct img im;

        img_open(&im, 5, true);
        for (unsigned i = 0; i < n; i++)
                map(&im, va + i * 4096ull, TABLES_END + ((i * 37u) % 3584) * 4096ull, 4 * KIB, P);
        for (int pass = 0; pass < 3; pass++)
                for (unsigned i = 0; i < n; i += 1 + (unsigned)pass)
                        expect_pa(&im, va + i * 4096ull + 8, TABLES_END + ((i * 37u) % 3584) * 4096ull + 8,
                                  4 * KIB);
        img_close(&im);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_mode_real_registers),
                cmocka_unit_test(test_mode_bad_registers),
                cmocka_unit_test(test_mmu_from_vcpu),
                cmocka_unit_test(test_4level_page_sizes),
                cmocka_unit_test(test_5level_page_sizes),
                cmocka_unit_test(test_5level_uses_bits_48_to_56),
                cmocka_unit_test(test_not_present_each_level),
                cmocka_unit_test(test_not_present_message),
                cmocka_unit_test(test_reserved_bits_each_level),
                cmocka_unit_test(test_maxphyaddr),
                cmocka_unit_test(test_cr3_flag_bits_ignored),
                cmocka_unit_test(test_table_beyond_ram),
                cmocka_unit_test(test_final_frame_beyond_ram),
                cmocka_unit_test(test_non_canonical),
                cmocka_unit_test(test_flags),
                cmocka_unit_test(test_read_across_pages),
                cmocka_unit_test(test_read_many_4k_pages),
                cmocka_unit_test(test_read_into_unmapped_fails_whole),
                cmocka_unit_test(test_read_spanning_adjacent_ram_ranges),
                cmocka_unit_test(test_partial_frame_at_ram_end),
                cmocka_unit_test(test_write_lands_in_physical_bytes),
                cmocka_unit_test(test_write_read_only_guest),
                cmocka_unit_test(test_tlb_no_stale_after_flush),
                cmocka_unit_test(test_tlb_flushed_by_write),
                cmocka_unit_test(test_tlb_counters),
                cmocka_unit_test(test_tlb_conflicts),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}

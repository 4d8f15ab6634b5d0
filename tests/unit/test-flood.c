/*
 * Guest memory made to stall hvpatch (flood-gen.h): every kernel search ends within its
 * budget with a reason that says so, identical roots are searched once (but a root freed
 * under its search does not hide its twins, and moved registers are read again), the KPTI retry
 * keeps the first cause, and symbol names made to collide under the old hash cost what
 * random names cost. Time bounds here are generous (10 s for work that takes well under
 * a second): the counters the library keeps are what is checked exactly.
 *
 * HVP_FLOOD_WRITE_SEEDS=DIR writes the cores as fuzz seeds (tests/fuzz/corpus/attach)
 * and two kallsyms images (tests/fuzz/corpus/kallsyms).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <hvpatch/hvpatch.h>
#include <hvpatch/kernel.h>
#include <hvpatch/windows.h>

#include "flood-gen.h"
#include "kallsyms-gen.h"
#include "common/util.h"
#include "vmi/backend.h"
#include "vmi/core.h"

#define TEXT 0xffffffff81000000ull
#define GENEROUS_MS 10000.0

static void assert_error_has(const char *what)
{
        if (!strstr(hvp_last_error(), what))
                fail_msg("the reason \"%s\" does not say \"%s\"", hvp_last_error(), what);
}

static void assert_within(const struct hvp_scan_budget *b)
{
        assert_true(b->candidates <= b->max_candidates);
        assert_true(b->tables <= b->max_tables);
        assert_true(b->reads <= b->max_reads);
        assert_true(b->bytes <= b->max_bytes);
        assert_true(b->records <= b->max_records);
}

static void print_budget(const char *what, const struct hvp_scan_budget *b, double ms)
{
        print_message("%s: %.1f ms, spent %s; %llu candidates, %llu tables, %llu reads, %.1f MiB, %llu records\n",
                      what, ms, b->spent ? b->spent : "-", (unsigned long long)b->candidates,
                      (unsigned long long)b->tables, (unsigned long long)b->reads, b->bytes / 1048576.0,
                      (unsigned long long)b->records);
}

static struct hvp_guest *open_flood(enum flood_kind kind, struct cb_core *c)
{
        struct hvp_guest *g = NULL;

        assert_true(flood_core(kind, c));
        if (hvp_guest_open_core_buffer(c->buf, c->size, "flood.core", &g) < 0)
                fail_msg("open: %s", hvp_last_error());
        return g;
}

/* A Linux attach on a flood core: -E2BIG naming the limit, within the budget and 10 s. */
static void linux_flood(enum flood_kind kind, const char *name, const char *limit)
{
        struct cb_core c;
        struct hvp_guest *g = open_flood(kind, &c);
        struct hvp_scan_budget b;
        struct hvp_mmu *mmu = NULL;
        struct hvp_kernel *k = NULL;
        double t0, ms;

        hvp_scan_budget_init(&b);
        t0 = hvp_now_ms();
        assert_int_equal(hvp_linux_attach_budget(g, &b, &mmu, &k, NULL), -E2BIG);
        ms = hvp_now_ms() - t0;
        print_budget(name, &b, ms);
        assert_null(mmu);
        assert_null(k);
        assert_error_has("no Linux kernel found");
        assert_error_has("search budget");
        assert_error_has("ran out");
        assert_non_null(b.spent);
        assert_string_equal(b.spent, limit);
        assert_within(&b);
        assert_true(ms < GENEROUS_MS);
        assert_true(b.start_ms > 0);

        /* the default budget of hvp_linux_attach() stops it the same way */
        assert_int_equal(hvp_linux_attach(g, &mmu, &k, NULL), -E2BIG);
        assert_error_has(limit);
        hvp_guest_free(g);
        free(c.buf);
}

/* Issue 8's case: one page of digit runs in every 2 MiB slot (13 s a slot before, under ASan). */
static void test_digits_sparse(void **state)
{
        (void)state;
        linux_flood(FLOOD_DIGITS_SPARSE, "digits, one page per 2 MiB", "candidates");
}

/* Every page of the 1 GiB area is digit runs: 53 M candidates. */
static void test_digits_dense(void **state)
{
        (void)state;
        linux_flood(FLOOD_DIGITS_DENSE, "digits, every page", "candidates");
}

/* A token table that passes its own checks on every page: each one is checked in depth. */
static void test_token_tables(void **state)
{
        (void)state;
        linux_flood(FLOOD_TOKENS, "token tables, every page", "token tables");
}

/* The cheap first checks: a flood of digit runs reads no window per run. */
static void test_cheap_checks_first(void **state)
{
        struct cb_core c;
        struct hvp_guest *g = open_flood(FLOOD_DIGITS_DENSE, &c);
        struct hvp_scan_budget b;
        struct hvp_mmu *mmu = NULL;
        struct hvp_kernel *k = NULL;

        (void)state;
        hvp_scan_budget_init(&b);
        assert_int_equal(hvp_linux_attach_budget(g, &b, &mmu, &k, NULL), -E2BIG);
        assert_int_equal(b.candidates, b.max_candidates);
        /* 1024 runs lie in the first 20 KiB: the first 1 MiB chunk and the walk, nothing per run */
        assert_int_equal(b.tables, 0);
        assert_true(b.reads < 600);
        assert_true(b.bytes <= (2u << 20));
        hvp_guest_free(g);
        free(c.buf);
}

/* Windows: an "MZ" header with 60 KiB of PE headers on every page below 16 handlers. */
static void test_mz_flood(void **state)
{
        struct cb_core c;
        struct hvp_guest *g = open_flood(FLOOD_MZ, &c);
        struct hvp_scan_budget b;
        struct hvp_windows_kernel w;
        struct hvp_mmu *mmu = NULL;
        struct hvp_kernel *k = NULL;
        double t0, ms;

        (void)state;
        hvp_scan_budget_init(&b);
        t0 = hvp_now_ms();
        assert_int_equal(hvp_windows_attach_budget(g, &b, &w, NULL), -E2BIG);
        ms = hvp_now_ms() - t0;
        print_budget("MZ headers, every page", &b, ms);
        assert_error_has("Windows kernel search");
        assert_error_has("ran out");
        assert_non_null(b.spent);
        assert_within(&b);
        assert_true(b.candidates > 100);        /* it did parse headers until the budget stopped it */
        assert_true(ms < GENEROUS_MS);
        assert_int_equal(hvp_windows_attach(g, &w, NULL), -E2BIG);
        /* and the Linux search on the same core finds nothing mapped, quickly */
        assert_int_equal(hvp_linux_attach(g, &mmu, &k, NULL), -ENOENT);
        assert_error_has("nothing mapped");
        hvp_guest_free(g);
        free(c.buf);
}

/*
 * vCPU 0's CR3 has bit 12 set: its root maps a page of zeros (no token table), the
 * kernel half of the would-be KPTI pair maps nothing. The reason is the first root's.
 */
static void test_kpti_first_cause(void **state)
{
        struct cb_core c;
        struct hvp_guest *g = open_flood(FLOOD_KPTI_CAUSE, &c);
        struct hvp_mmu *mmu = NULL;
        struct hvp_kernel *k = NULL;
        const char *first, *second;

        (void)state;
        assert_int_equal(hvp_linux_attach(g, &mmu, &k, NULL), -ENOENT);
        first = strstr(hvp_last_error(), "no kallsyms token table");
        second = strstr(hvp_last_error(), "nothing mapped");
        if (!first || !second || first > second)
                fail_msg("the first cause does not lead: %s", hvp_last_error());
        assert_error_has("KPTI");
        hvp_guest_free(g);
        free(c.buf);
}

/* Two vCPUs whose roots share the kernel half: one search, not two. */
static void test_same_root_searched_once(void **state)
{
        struct cb_core c;
        struct hvp_guest *g;
        struct hvp_scan_budget both, one;
        struct hvp_mmu *mmu = NULL;
        struct hvp_kernel *k = NULL;

        (void)state;
        /* the KPTI core with a second vCPU whose CR3 is a copy of the first's root */
        assert_true(flood_core(FLOOD_KPTI_CAUSE, &c));
        {
                struct cb_spec s = { .nr_vcpus = 2, .prstatus = true, .qemu_size = 440, .nr_loads = 1 };
                struct cb_core c2;

                s.load[0].gpa = FLOOD_BASE;
                s.load[0].size = FLOOD_PAGES * 4096;
                assert_true(cb_build(&s, &c2));
                memcpy(c2.buf + c2.load_off[0], c.buf + c.load_off[0], FLOOD_PAGES * 4096);
                /* root0 := root1 (vCPU 0 has CR3 0x1000000, vCPU 1 0x1001000) */
                memcpy(c2.buf + c2.load_off[0], c2.buf + c2.load_off[0] + 4096, 4096);
                free(c.buf);
                c = c2;
        }
        assert_int_equal(hvp_guest_open_core_buffer(c.buf, c.size, "twins.core", &g), 0);
        hvp_scan_budget_init(&both);
        assert_int_equal(hvp_linux_attach_budget(g, &both, &mmu, &k, NULL), -ENOENT);
        assert_error_has("no kallsyms token table");
        assert_error_has("1 of them map the kernel image area as one searched before");
        /* the cost of one search of that root */
        assert_int_equal(hvp_mmu_new_from_vcpu(g, 0, &mmu), 0);
        hvp_scan_budget_init(&one);
        assert_int_equal(hvp_kernel_find_budget(mmu, &one, &k), -ENOENT);
        hvp_mmu_free(mmu);
        print_message("two vCPUs: %llu reads; one root: %llu reads\n", (unsigned long long)both.reads,
                      (unsigned long long)one.reads);
        assert_true(one.reads > 100);
        assert_int_equal(both.reads, one.reads);
        assert_int_equal(both.bytes, one.bytes);
        hvp_guest_free(g);
        free(c.buf);
}

/*
 * A process exits while its root is searched: vCPU 0's top-level table is freed (zeroed)
 * once the search reads the kernel area. That failure says nothing of the entry vCPU 1
 * still holds, so vCPU 1's root, which shares it, is searched too. Without the exit the
 * twin is skipped (the control).
 */
#define EX_RAM 0x1000000ull
#define EX_ROOT0 (EX_RAM + 0x0000)     /* both roots with bit 12 clear: no KPTI pair */
#define EX_ROOT1 (EX_RAM + 0x2000)
#define EX_PDPT (EX_RAM + 0x1000)
#define EX_PD (EX_RAM + 0x3000)
#define EX_PT (EX_RAM + 0x4000)
#define EX_PAGE (EX_RAM + 0x5000)
#define EX_SIZE 0x6000u

struct exiting {
        uint8_t mem[EX_SIZE];
        bool armed, fired;
        unsigned reg_reads;
        uint64_t cr3_now;       /* what read_regs reports for both vCPUs */
};

static void ex_entry(struct exiting *x, uint64_t table, unsigned idx, uint64_t val)
{
        memcpy(x->mem + (table - EX_RAM) + idx * 8u, &val, 8);
}

static int ex_read(void *be, uint64_t gpa, void *buf, size_t len)
{
        struct exiting *x = be;

        if (x->armed && !x->fired && gpa < EX_PAGE + 4096 && gpa + len > EX_PAGE) {
                ex_entry(x, EX_ROOT0, 511, 0);          /* the process's PGD went away */
                x->fired = true;
        }
        memcpy(buf, x->mem + (gpa - EX_RAM), len);
        return 0;
}

static void ex_close(void *be)
{
        (void)be;
}

static struct hvp_vcpu_regs ex_regs(uint64_t cr3)
{
        return (struct hvp_vcpu_regs){ .cr0 = 0x80050033, .cr4 = 0x3506f0, .efer = 0xd00, .cr3 = cr3,
                                       .rip = 0xffffffff81000000 };
}

static int ex_read_regs(void *be, struct hvp_vcpu_regs *regs, unsigned max, unsigned *ret_n)
{
        struct exiting *x = be;

        assert_true(max >= 2);
        x->reg_reads++;
        regs[0] = regs[1] = ex_regs(x->cr3_now);
        *ret_n = 2;
        return 0;
}

static const struct hvp_backend_ops exiting_ops = { .name = "exiting", .read_phys = ex_read, .close = ex_close };
static const struct hvp_backend_ops moving_ops = { .name = "moving", .read_phys = ex_read, .read_regs = ex_read_regs,
                                                   .close = ex_close };

static unsigned long long exiting_search(struct exiting *x, bool armed)
{
        struct hvp_ram_range range = { EX_RAM, EX_SIZE };
        struct hvp_vcpu_regs regs[2] = { ex_regs(EX_ROOT0), ex_regs(EX_ROOT1) };
        struct hvp_scan_budget b;
        struct hvp_guest *g = NULL;
        struct hvp_mmu *mmu = NULL;
        struct hvp_kernel *k = NULL;

        memset(x, 0, sizeof(*x));
        x->armed = armed;
        ex_entry(x, EX_ROOT0, 511, EX_PDPT | 3);
        ex_entry(x, EX_ROOT1, 511, EX_PDPT | 3);
        ex_entry(x, EX_PDPT, 510, EX_PD | 3);
        ex_entry(x, EX_PD, 0, EX_PT | 3);
        for (unsigned i = 0; i < 512; i++)     /* 2 MiB of zeros: no token table */
                ex_entry(x, EX_PT, i, EX_PAGE | 3);
        assert_int_equal(hvp_guest_new(&exiting_ops, x, "exiting", &range, 1, regs, 2, &g), 0);
        hvp_scan_budget_init(&b);
        if (hvp_linux_attach_budget(g, &b, &mmu, &k, NULL) != -ENOENT)
                fail_msg("attach: %s", hvp_last_error());
        assert_int_equal(x->fired, armed);
        hvp_guest_free(g);
        return (unsigned long long)b.bytes;
}

static void test_root_freed_under_search(void **state)
{
        struct exiting *x = malloc(sizeof(*x));
        unsigned long long once, exited;

        (void)state;
        assert_non_null(x);
        once = exiting_search(x, false);
        assert_error_has("1 of them map the kernel image area as one searched before");
        exited = exiting_search(x, true);
        if (strstr(hvp_last_error(), "searched before"))
                fail_msg("vCPU 1 was skipped after vCPU 0's root went away: %s", hvp_last_error());
        assert_error_has("no kallsyms token table");
        print_message("bytes searched: twins %llu, vCPU 0's root freed under the search %llu\n", once, exited);
        assert_true(once > 0);
        assert_true(exited > once);
        free(x);
}

/*
 * Both vCPUs were on one process's root when the guest was opened; it exits during the
 * search. The registers are read again and the new root (vCPU now on ROOT1) searched;
 * a backend whose registers did not move is not searched twice (the control).
 */
static unsigned long long moving_search(struct exiting *x, uint64_t cr3_later)
{
        struct hvp_ram_range range = { EX_RAM, EX_SIZE };
        struct hvp_vcpu_regs regs[2] = { ex_regs(EX_ROOT0), ex_regs(EX_ROOT0) };
        struct hvp_scan_budget b;
        struct hvp_guest *g = NULL;
        struct hvp_mmu *mmu = NULL;
        struct hvp_kernel *k = NULL;

        memset(x, 0, sizeof(*x));
        x->armed = true;
        x->cr3_now = cr3_later;
        ex_entry(x, EX_ROOT0, 511, EX_PDPT | 3);
        ex_entry(x, EX_ROOT1, 511, EX_PDPT | 3);
        ex_entry(x, EX_PDPT, 510, EX_PD | 3);
        ex_entry(x, EX_PD, 0, EX_PT | 3);
        for (unsigned i = 0; i < 512; i++)
                ex_entry(x, EX_PT, i, EX_PAGE | 3);
        assert_int_equal(hvp_guest_new(&moving_ops, x, "moving", &range, 1, regs, 2, &g), 0);
        hvp_scan_budget_init(&b);
        if (hvp_linux_attach_budget(g, &b, &mmu, &k, NULL) != -ENOENT)
                fail_msg("attach: %s", hvp_last_error());
        assert_true(x->fired);
        assert_int_equal(x->reg_reads, 1);
        hvp_guest_free(g);
        return (unsigned long long)b.bytes;
}

static void test_registers_read_again(void **state)
{
        struct exiting *x = malloc(sizeof(*x));
        unsigned long long stayed, moved;

        (void)state;
        assert_non_null(x);
        stayed = moving_search(x, EX_ROOT0);
        assert_error_has("nothing mapped");
        moved = moving_search(x, EX_ROOT1);
        assert_error_has("no kallsyms token table");
        print_message("bytes searched: registers stayed %llu, moved to a live root %llu\n", stayed, moved);
        assert_true(moved > stayed);
        free(x);
}

/* A budget that is already spent stops the next search at once, with its reason. */
static void test_budget_shared(void **state)
{
        struct cb_core c;
        struct hvp_guest *g = open_flood(FLOOD_KPTI_CAUSE, &c);
        struct hvp_scan_budget b;
        struct hvp_mmu *mmu = NULL;
        struct hvp_kernel *k = NULL;

        (void)state;
        hvp_scan_budget_init(&b);
        b.max_reads = 10;
        assert_int_equal(hvp_linux_attach_budget(g, &b, &mmu, &k, NULL), -E2BIG);
        assert_string_equal(b.spent, "reads");
        assert_int_equal(b.reads, 10);
        assert_error_has("10 of 10 reads");
        assert_int_equal(hvp_linux_attach_budget(g, &b, &mmu, &k, NULL), -E2BIG);
        assert_int_equal(b.reads, 10);
        hvp_guest_free(g);
        free(c.buf);
}

/* ------------------------------------------------------------------------ */
/* Symbol names colliding under FNV-1a                                      */

static void check_fnv_collide(char **names, unsigned k)
{
        uint32_t h0 = flood_fnv32(FLOOD_FNV_BASIS32, names[0], strlen(names[0]));

        for (size_t i = 1; i < (size_t)1 << k; i++) {
                assert_int_equal(flood_fnv32(FLOOD_FNV_BASIS32, names[i], strlen(names[i])), h0);
                assert_string_not_equal(names[i], names[i - 1]);
        }
}

/* kallsyms tables of "_text" and the names, one per 16 bytes. */
static void names_image(char **names, size_t n, struct ksgen *out)
{
        struct ksgen_sym *syms = calloc(n + 1, sizeof(*syms));
        struct ksgen_opts o = { .layout = KSGEN_SEQS, .va = TEXT, .tables_off = 0x1000, .tail = 64 };

        assert_non_null(syms);
        syms[0] = (struct ksgen_sym){ TEXT, 'T', "_text", false };
        for (size_t i = 0; i < n; i++)
                syms[i + 1] = (struct ksgen_sym){ TEXT + 16 * (i + 1), 't', names[i], false };
        ksgen_build(syms, n + 1, &o, out);
        free(syms);
}

static double decode_names(char **names, unsigned k)
{
        size_t n = (size_t)1 << k;
        struct ksgen g;
        struct ksgen_mem m;
        struct hvp_kmem km;
        struct hvp_symtab *st = NULL;
        double t0, ms;

        names_image(names, n, &g);
        m = (struct ksgen_mem){ g.data, g.size, g.va };
        km = (struct hvp_kmem){ .read = ksgen_mem_read, .ctx = &m, .start = g.va, .end = g.va + g.size };
        t0 = hvp_now_ms();
        if (hvp_kallsyms_decode(&km, TEXT, &st) < 0)
                fail_msg("decode: %s", hvp_last_error());
        for (size_t i = 0; i < n; i++) {
                const struct hvp_symbol *s = hvp_symtab_lookup(st, names[i]);

                assert_non_null(s);
                assert_int_equal(s->addr, TEXT + 16 * (i + 1));
        }
        ms = hvp_now_ms() - t0;
        assert_int_equal(hvp_symtab_count(st), n + 1);
        assert_null(hvp_symtab_lookup(st, "fnv_absent"));
        hvp_symtab_free(st);
        ksgen_free(&g);
        return ms;
}

/* 2^16 names with one FNV-1a bucket: 71 s to index before, random names 0.2 s. */
static void test_symbol_hash_flood(void **state)
{
        enum { K = 16 };
        char **bad = flood_names(K, true, 1), **rnd = flood_names(K, false, 1);
        double t_bad, t_rnd;

        (void)state;
        check_fnv_collide(bad, K);
        t_bad = decode_names(bad, K);
        t_rnd = decode_names(rnd, K);
        print_message("2^%d names: colliding %.1f ms, random %.1f ms (decode and look up each)\n", K, t_bad, t_rnd);
        assert_true(t_bad < GENEROUS_MS);
        flood_names_free(bad, K);
        flood_names_free(rnd, K);
}

/* ------------------------------------------------------------------------ */
/* Fuzz seeds                                                               */

static void write_file(const char *dir, const char *name, const void *data, size_t size)
{
        char path[4096];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, size, f), size);
        assert_int_equal(fclose(f), 0);
}

static void test_write_seeds(void **state)
{
        const char *dir = getenv("HVP_FLOOD_WRITE_SEEDS");
        static const struct {
                enum flood_kind kind;
                const char *name;
        } cores[] = {
                { FLOOD_DIGITS_SPARSE, "attach/digits-sparse" },
                { FLOOD_DIGITS_DENSE, "attach/digits-dense" },
                { FLOOD_TOKENS, "attach/token-tables" },
                { FLOOD_MZ, "attach/mz-headers" },
                { FLOOD_KPTI_CAUSE, "attach/kpti-first-cause" },
        };
        uint8_t page[64 << 10];
        struct ksgen g;
        char **names;

        (void)state;
        if (!dir)
                return;
        for (size_t i = 0; i < HVP_ARRAY_SIZE(cores); i++) {
                struct cb_core c;

                assert_true(flood_core(cores[i].kind, &c));
                write_file(dir, cores[i].name, c.buf, c.size);
                free(c.buf);
        }
        for (size_t o = 0; o < sizeof(page); o += 4096)
                flood_digits(page + o);
        write_file(dir, "kallsyms/digits-flood", page, sizeof(page));
        names = flood_names(10, true, 1);
        names_image(names, 1024, &g);
        write_file(dir, "kallsyms/fnv-collide-1024", g.data, g.size);
        ksgen_free(&g);
        flood_names_free(names, 10);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_digits_sparse),
                cmocka_unit_test(test_digits_dense),
                cmocka_unit_test(test_token_tables),
                cmocka_unit_test(test_cheap_checks_first),
                cmocka_unit_test(test_mz_flood),
                cmocka_unit_test(test_kpti_first_cause),
                cmocka_unit_test(test_same_root_searched_once),
                cmocka_unit_test(test_root_freed_under_search),
                cmocka_unit_test(test_registers_read_again),
                cmocka_unit_test(test_budget_shared),
                cmocka_unit_test(test_symbol_hash_flood),
                cmocka_unit_test(test_write_seeds),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}

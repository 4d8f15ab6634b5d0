/*
 * Page-walker benchmark.
 *   bench-translate            a synthetic memory image: 64 MiB mapped with 4 KiB pages
 *                              (physically shuffled, as vmalloc'd memory is) and with
 *                              2 MiB pages
 *   bench-translate DOMAIN     a running guest (live backend): 1,000+ kernel addresses
 *                              taken from its symbol table (text, rodata, data, bss)
 * Prints uncached (TLB flushed before each) and cached translations per second, their
 * ratio, and hvp_mmu_read of 16 MiB (of the kernel image, for a guest) against memcpy
 * of the same size on this machine.
 *
 * The memory backend reads with memcpy: on the live backend each table read is a
 * syscall (about 2 µs), so the uncached figure there is far lower and the TLB's
 * speed-up far higher.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hvpatch/guest.h>
#include <hvpatch/hvpatch.h>
#include <hvpatch/kernel.h>
#include <hvpatch/paging.h>

#include "common/util.h"

#define MIB (1024ull * 1024)
#define MAPPED (64 * MIB)
#define BULK (16 * MIB)
#define TABLES_SIZE (1 * MIB)
#define DATA_GPA (16 * MIB)     /* tables at 0, data above */
#define VA_BASE 0xffffc90000000000ull
#define HVP_BENCH_MAX(a, b) ((a) > (b) ? (a) : (b))
#define HVP_BENCH_MIN(a, b) ((a) < (b) ? (a) : (b))
#define NVAS 4096               /* synthetic: addresses cycled through per run */
#define LIVE_MAX_VAS 1500

struct bench {
        uint8_t *tables, *data;
        uint64_t next_table;
        struct hvp_guest *g;
        struct hvp_mmu *mmu;
};

/* Seconds. */
static double now(void)
{
        return hvp_now_ms() / 1e3;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

static uint64_t get64(const uint8_t *p)
{
        uint64_t v;

        memcpy(&v, p, 8);
        return v;
}

static uint64_t new_table(struct bench *b)
{
        uint64_t pa = b->next_table;

        if (pa + 4096 > TABLES_SIZE) {
                fprintf(stderr, "out of table space\n");
                exit(1);
        }
        b->next_table += 4096;
        return pa;
}

/* Set the entry of va at level (4..1), creating the tables above it. */
static void set_entry(struct bench *b, uint64_t va, int level, uint64_t e)
{
        uint64_t table = 0;     /* the PML4 is the first table */

        for (int l = 4; l > level; l--) {
                uint8_t *p = b->tables + table + ((va >> (12 + 9 * (l - 1))) & 511) * 8;

                if (!(get64(p) & 1))
                        hvp_put_le64(p, new_table(b) | 3);
                table = get64(p) & 0x000ffffffffff000ull;
        }
        hvp_put_le64(b->tables + table + ((va >> (12 + 9 * (level - 1))) & 511) * 8, e);
}

static void setup(struct bench *b, uint64_t page_size)
{
        struct hvp_mem_region regions[2];
        size_t pages = MAPPED / page_size;
        uint64_t *perm = malloc(pages * sizeof(*perm));

        memset(b, 0, sizeof(*b));
        b->tables = calloc(1, TABLES_SIZE);
        b->data = malloc(MAPPED);
        if (!perm || !b->tables || !b->data) {
                fprintf(stderr, "out of memory\n");
                exit(1);
        }
        for (size_t i = 0; i < MAPPED; i += 4096)
                memset(b->data + i, (int)(i >> 12), 4096);
        b->next_table = 4096;
        for (size_t i = 0; i < pages; i++)
                perm[i] = i;
        if (page_size == 4096)
                for (size_t i = pages - 1; i > 0; i--) {
                        size_t j = rng() % (i + 1);
                        uint64_t t = perm[i];

                        perm[i] = perm[j];
                        perm[j] = t;
                }
        for (size_t i = 0; i < pages; i++)
                set_entry(b, VA_BASE + i * page_size, page_size == 4096 ? 1 : 2,
                          (DATA_GPA + perm[i] * page_size) | 3 | (page_size == 4096 ? 0 : 0x80));
        free(perm);
        regions[0] = (struct hvp_mem_region){ 0, TABLES_SIZE, b->tables };
        regions[1] = (struct hvp_mem_region){ DATA_GPA, MAPPED, b->data };
        if (hvp_guest_open_memory(regions, 2, NULL, 0, false, &b->g) < 0 ||
            hvp_mmu_new(b->g, 0, HVP_PAGING_4LEVEL, true, &b->mmu) < 0) {
                fprintf(stderr, "setup: %s\n", hvp_last_error());
                exit(1);
        }
}

static void teardown(struct bench *b)
{
        hvp_mmu_free(b->mmu);
        hvp_guest_free(b->g);
        free(b->tables);
        free(b->data);
}

static void translate_or_die(struct hvp_mmu *mmu, uint64_t va, uint64_t *sum)
{
        struct hvp_translation tr;

        if (hvp_mmu_translate(mmu, va, &tr) < 0) {
                fprintf(stderr, "translate: %s\n", hvp_last_error());
                exit(1);
        }
        *sum += tr.pa;
}

/* Best of three runs of ops translations cycling through va[0..n), in operations per second. */
static double uncached_rate(struct hvp_mmu *mmu, const uint64_t *va, size_t n, size_t ops, uint64_t *sum)
{
        double best = 0;

        for (int rep = 0; rep < 3; rep++) {
                double t0 = now(), t;

                for (size_t i = 0; i < ops; i++) {
                        hvp_mmu_flush(mmu);
                        translate_or_die(mmu, va[i % n], sum);
                }
                t = now() - t0;
                best = HVP_BENCH_MAX(best, (double)ops / t);
        }
        return best;
}

/* The same with the TLB warmed by one pass over va[]. */
static double cached_rate(struct hvp_mmu *mmu, const uint64_t *va, size_t n, size_t ops, uint64_t *sum)
{
        double best = 0;

        hvp_mmu_flush(mmu);
        for (size_t i = 0; i < n; i++)
                translate_or_die(mmu, va[i], sum);
        for (int rep = 0; rep < 3; rep++) {
                double t0 = now(), t;

                for (size_t i = 0; i < ops; i++)
                        translate_or_die(mmu, va[i % n], sum);
                t = now() - t0;
                best = HVP_BENCH_MAX(best, (double)ops / t);
        }
        return best;
}

/* Best of five, GB/s, each with a cold TLB. */
static double bulk_read_rate(struct hvp_mmu *mmu, uint64_t va, uint8_t *buf)
{
        double best = 0;

        for (int rep = 0; rep < 5; rep++) {
                double t0, t;

                hvp_mmu_flush(mmu);
                t0 = now();
                if (hvp_mmu_read(mmu, va, buf, BULK) < 0) {
                        fprintf(stderr, "read: %s\n", hvp_last_error());
                        exit(1);
                }
                t = now() - t0;
                best = HVP_BENCH_MAX(best, (double)BULK / t / 1e9);
        }
        return best;
}

static double memcpy_rate(const uint8_t *src, uint8_t *buf)
{
        double best = 0;

        for (int rep = 0; rep < 5; rep++) {
                double t0 = now(), t;

                memcpy(buf, src, BULK);
                __asm__ volatile("" : : "r"(buf) : "memory");
                t = now() - t0;
                best = HVP_BENCH_MAX(best, (double)BULK / t / 1e9);
        }
        return best;
}

static void print_rates(const char *name, double unc, double cac, double rd, double mc)
{
        printf("%s: uncached translations/s: %.3g\n", name, unc);
        printf("%s: cached translations/s: %.3g\n", name, cac);
        printf("%s: TLB speed-up: %.1fx\n", name, cac / unc);
        printf("%s: hvp_mmu_read 16 MiB (cold TLB): %.2f GB/s\n", name, rd);
        printf("%s: memcpy 16 MiB: %.2f GB/s\n", name, mc);
        printf("%s: read/memcpy: %.2f (memcpy is %.2fx faster)\n", name, rd / mc, mc / rd);
        fflush(stdout);
}

static void run(uint64_t page_size, const char *name, uint8_t *buf)
{
        /* A working set that fits the TLB for the cached rate: 256 pages (or all 2 MiB pages). */
        uint64_t span = HVP_BENCH_MIN(256 * page_size, MAPPED);
        static uint64_t all[NVAS], few[NVAS];
        uint64_t sum = 0, hits, misses;
        double unc, cac, rd, mc;
        char label[32];
        struct bench b;

        setup(&b, page_size);
        for (size_t i = 0; i < NVAS; i++) {
                all[i] = VA_BASE + rng() % MAPPED;
                few[i] = VA_BASE + rng() % span;
        }
        unc = uncached_rate(b.mmu, all, NVAS, 200000, &sum);
        cac = cached_rate(b.mmu, few, NVAS, 5000000, &sum);
        rd = bulk_read_rate(b.mmu, VA_BASE + 8 * MIB, buf);
        /* Check the bulk read against the image: the first byte of every page says which page. */
        for (size_t i = 0; i < BULK; i += 4096) {
                struct hvp_translation tr;

                if (hvp_mmu_translate(b.mmu, VA_BASE + 8 * MIB + i, &tr) < 0 ||
                    buf[i] != b.data[tr.pa - DATA_GPA]) {
                        fprintf(stderr, "bulk read mismatch at +0x%zx\n", i);
                        exit(1);
                }
        }
        mc = memcpy_rate(b.data + 8 * MIB, buf);
        hvp_mmu_tlb_stats(b.mmu, &hits, &misses);
        snprintf(label, sizeof(label), "%s pages", name);
        print_rates(label, unc, cac, rd, mc);
        fprintf(stderr, "(%s: %llu hits, %llu misses, checksum %llx)\n", name, (unsigned long long)hits,
                (unsigned long long)misses, (unsigned long long)sum);
        teardown(&b);
}

static const struct hvp_symbol *need_symbol(const struct hvp_kernel *k, const char *name)
{
        const struct hvp_symbol *s = hvp_symtab_lookup(k->symtab, name);

        if (!s) {
                fprintf(stderr, "bench-translate: no symbol %s in the guest kernel\n", name);
                exit(1);
        }
        return s;
}

/*
 * Kernel addresses of a running guest: every k-th symbol of text, rodata, data and
 * bss (so about LIVE_MAX_VAS in all), each checked to translate.
 */
static size_t live_addresses(struct hvp_mmu *mmu, const struct hvp_kernel *k, uint64_t *va)
{
        static const char *const ranges[][2] = {
                { "_stext", "_etext" }, { "__start_rodata", "__end_rodata" },
                { "_sdata", "_edata" }, { "__bss_start", "__bss_stop" },
        };
        size_t nsym = hvp_symtab_count(k->symtab), inside = 0, n = 0, stride;
        uint64_t sum = 0;

        for (size_t r = 0; r < 4; r++) {
                uint64_t lo = need_symbol(k, ranges[r][0])->addr, hi = need_symbol(k, ranges[r][1])->addr;

                for (size_t i = 0; i < nsym; i++) {
                        uint64_t a = hvp_symtab_get(k->symtab, i)->addr;

                        inside += a >= lo && a < hi;
                }
        }
        stride = HVP_BENCH_MAX(inside / (LIVE_MAX_VAS - 8), 1);
        for (size_t r = 0; r < 4; r++) {
                uint64_t lo = need_symbol(k, ranges[r][0])->addr, hi = need_symbol(k, ranges[r][1])->addr;
                size_t seen = 0;

                for (size_t i = 0; i < nsym && n < LIVE_MAX_VAS; i++) {
                        uint64_t a = hvp_symtab_get(k->symtab, i)->addr;

                        if (a >= lo && a < hi && seen++ % stride == 0)
                                va[n++] = a;
                }
        }
        for (size_t i = 0; i < n; i++)
                translate_or_die(mmu, va[i], &sum);
        return n;
}

static int run_live(const char *domain, uint8_t *buf)
{
        static uint64_t va[LIVE_MAX_VAS];
        struct hvp_live_options o = { 0 };
        struct hvp_guest *g = NULL;
        struct hvp_mmu *mmu = NULL;
        struct hvp_kernel *k = NULL;
        uint64_t sum = 0, hits, misses;
        uint8_t *src = malloc(BULK);
        double unc, cac, rd, mc;
        size_t n;
        int r = 1;

        if (!src) {
                fprintf(stderr, "bench-translate: out of memory\n");
                return 1;
        }
        if (hvp_guest_open_live(domain, &o, &g) < 0 || hvp_linux_attach(g, &mmu, &k, NULL) < 0) {
                fprintf(stderr, "bench-translate: %s: %s\n", domain, hvp_last_error());
                goto out;
        }
        n = live_addresses(mmu, k, va);
        printf("live %s: %s paging, %zu kernel addresses (text, rodata, data, bss)\n", domain,
               hvp_mmu_mode(mmu) == HVP_PAGING_5LEVEL ? "5-level" : "4-level", n);
        unc = uncached_rate(mmu, va, n, 20000, &sum);
        cac = cached_rate(mmu, va, n, 2000000, &sum);
        rd = bulk_read_rate(mmu, k->base, buf);
        /* the bulk path (batched vectors) against small single reads, every 64 KiB */
        for (size_t off = 0; off < BULK; off += 64 * 1024) {
                uint8_t small[64];

                if (hvp_mmu_read(mmu, k->base + off, small, sizeof(small)) < 0 ||
                    memcmp(small, buf + off, sizeof(small)) != 0) {
                        fprintf(stderr, "bench-translate: the 16 MiB read differs at _text+0x%zx\n", off);
                        goto out;
                }
        }
        memset(src, 0x5a, BULK);
        mc = memcpy_rate(src, buf);
        hvp_mmu_tlb_stats(mmu, &hits, &misses);
        print_rates("live", unc, cac, rd, mc);
        fprintf(stderr, "(live: %llu hits, %llu misses, checksum %llx)\n", (unsigned long long)hits,
                (unsigned long long)misses, (unsigned long long)sum);
        r = 0;
out:
        hvp_kernel_free(k);
        hvp_mmu_free(mmu);
        hvp_guest_free(g);
        free(src);
        return r;
}

int main(int argc, char **argv)
{
        uint8_t *buf = malloc(BULK);
        int r = 0;

        if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
                fprintf(stderr, "usage: bench-translate [DOMAIN]\n");
                return 2;
        }
        if (!buf)
                return 1;
        memset(buf, 0, BULK);
        if (argc == 2) {
                r = run_live(argv[1], buf);
        } else {
                run(4096, "4K", buf);
                run(2 * MIB, "2M", buf);
        }
        free(buf);
        return r;
}

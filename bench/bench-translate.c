/*
 * Page-walker benchmark on a synthetic memory image: 64 MiB mapped with 4 KiB pages
 * (physically shuffled, as vmalloc'd memory is) and with 2 MiB pages. Prints
 * uncached (TLB flushed before each) and cached translations per second, their
 * ratio, and hvp_mmu_read of 16 MiB against memcpy of the same size.
 *
 * The memory backend reads with memcpy: on the live backend each table read is a
 * syscall (about 2 µs), so the uncached figure there is far lower and the TLB's
 * speed-up far higher.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hvpatch/hvpatch.h>
#include <hvpatch/paging.h>

#define MIB (1024ull * 1024)
#define MAPPED (64 * MIB)
#define BULK (16 * MIB)
#define TABLES_SIZE (1 * MIB)
#define DATA_GPA (16 * MIB)     /* tables at 0, data above */
#define VA_BASE 0xffffc90000000000ull
#define HVP_BENCH_MAX(a, b) ((a) > (b) ? (a) : (b))
#define HVP_BENCH_MIN(a, b) ((a) < (b) ? (a) : (b))

struct bench {
        uint8_t *tables, *data;
        uint64_t next_table;
        struct hvp_guest *g;
        struct hvp_mmu *mmu;
};

static double now(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

static void put64(uint8_t *p, uint64_t v)
{
        memcpy(p, &v, 8);       /* x86-64 host: little-endian */
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
                        put64(p, new_table(b) | 3);
                table = get64(p) & 0x000ffffffffff000ull;
        }
        put64(b->tables + table + ((va >> (12 + 9 * (level - 1))) & 511) * 8, e);
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

static void translate_or_die(struct bench *b, uint64_t va, uint64_t *sum)
{
        struct hvp_translation tr;

        if (hvp_mmu_translate(b->mmu, va, &tr) < 0) {
                fprintf(stderr, "translate: %s\n", hvp_last_error());
                exit(1);
        }
        *sum += tr.pa;
}

/* Best of three runs of n operations, in operations per second. */
static double uncached_rate(struct bench *b, size_t n, uint64_t *sum)
{
        double best = 0;

        for (int rep = 0; rep < 3; rep++) {
                double t0 = now(), t;

                for (size_t i = 0; i < n; i++) {
                        hvp_mmu_flush(b->mmu);
                        translate_or_die(b, VA_BASE + rng() % MAPPED, sum);
                }
                t = now() - t0;
                best = HVP_BENCH_MAX(best, (double)n / t);
        }
        return best;
}

static double cached_rate(struct bench *b, size_t n, uint64_t page_size, uint64_t *sum)
{
        /* A working set that fits the TLB: 256 pages (or all 2 MiB pages). */
        uint64_t span = HVP_BENCH_MIN(256 * page_size, MAPPED);
        double best = 0;

        for (uint64_t off = 0; off < span; off += page_size)
                translate_or_die(b, VA_BASE + off, sum);
        for (int rep = 0; rep < 3; rep++) {
                double t0 = now(), t;

                for (size_t i = 0; i < n; i++)
                        translate_or_die(b, VA_BASE + rng() % span, sum);
                t = now() - t0;
                best = HVP_BENCH_MAX(best, (double)n / t);
        }
        return best;
}

static double bulk_read_rate(struct bench *b, uint8_t *buf)
{
        double best = 0;

        for (int rep = 0; rep < 5; rep++) {
                double t0, t;

                hvp_mmu_flush(b->mmu);
                t0 = now();
                if (hvp_mmu_read(b->mmu, VA_BASE + 8 * MIB, buf, BULK) < 0) {
                        fprintf(stderr, "read: %s\n", hvp_last_error());
                        exit(1);
                }
                t = now() - t0;
                best = HVP_BENCH_MAX(best, (double)BULK / t / 1e9);
        }
        return best;
}

static double memcpy_rate(struct bench *b, uint8_t *buf)
{
        double best = 0;

        for (int rep = 0; rep < 5; rep++) {
                double t0 = now(), t;

                memcpy(buf, b->data + 8 * MIB, BULK);
                __asm__ volatile("" : : "r"(buf) : "memory");
                t = now() - t0;
                best = HVP_BENCH_MAX(best, (double)BULK / t / 1e9);
        }
        return best;
}

static void run(uint64_t page_size, const char *name, uint8_t *buf)
{
        struct bench b;
        uint64_t sum = 0, hits, misses;
        double unc, cac, rd, mc;

        setup(&b, page_size);
        unc = uncached_rate(&b, 200000, &sum);
        cac = cached_rate(&b, 5000000, page_size, &sum);
        rd = bulk_read_rate(&b, buf);
        /* Check the bulk read against the image: the first byte of every page says which page. */
        for (size_t i = 0; i < BULK; i += 4096) {
                struct hvp_translation tr;

                if (hvp_mmu_translate(b.mmu, VA_BASE + 8 * MIB + i, &tr) < 0 ||
                    buf[i] != b.data[tr.pa - DATA_GPA]) {
                        fprintf(stderr, "bulk read mismatch at +0x%zx\n", i);
                        exit(1);
                }
        }
        mc = memcpy_rate(&b, buf);
        hvp_mmu_tlb_stats(b.mmu, &hits, &misses);
        printf("%s pages: uncached translations/s: %.3g\n", name, unc);
        printf("%s pages: cached translations/s: %.3g\n", name, cac);
        printf("%s pages: TLB speed-up: %.1fx\n", name, cac / unc);
        printf("%s pages: hvp_mmu_read 16 MiB (cold TLB): %.2f GB/s\n", name, rd);
        printf("%s pages: memcpy 16 MiB: %.2f GB/s\n", name, mc);
        printf("%s pages: read/memcpy: %.2f\n", name, rd / mc);
        fflush(stdout);
        fprintf(stderr, "(%s: %llu hits, %llu misses, checksum %llx)\n", name, (unsigned long long)hits,
                (unsigned long long)misses, (unsigned long long)sum);
        teardown(&b);
}

int main(void)
{
        uint8_t *buf = malloc(BULK);

        if (!buf)
                return 1;
        memset(buf, 0, BULK);
        run(4096, "4K", buf);
        run(2 * MIB, "2M", buf);
        free(buf);
        return 0;
}

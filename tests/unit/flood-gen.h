/*
 * Test helper: guest memory made to stall hvpatch (docs/security.md, "Hostile guest
 * memory"). Builds ELF cores (core-builder.h) whose page tables map one small set of
 * pages over and over into the areas the kernel searches walk:
 *
 *   FLOOD_DIGITS_SPARSE  one page of "0\0" .. "9\0" runs (the anchor of the kallsyms
 *                        search) in every 2 MiB slot of the 1 GiB kernel image area
 *                        (the rest of each slot unmapped): issue 8's measured case
 *   FLOOD_DIGITS_DENSE   that page at every 4 KiB of the area
 *   FLOOD_TOKENS         a token table with its index, good enough for every first
 *                        check, at every 4 KiB of the area
 *   FLOOD_MZ             for Windows: 16 interrupt gates into a 1 GiB region where every
 *                        page starts "MZ" with PE headers that claim 60 KiB
 *   FLOOD_KPTI_CAUSE     one vCPU whose CR3 has bit 12 set: that root maps a page of
 *                        zeros (no token table), the other half of the pair nothing
 *
 * and symbol names that collide under the 64-bit FNV-1a hash (the table's old hash)
 * in their low 32 bits, for any table size up to 2^32: a chain of 6-char blocks, two
 * per link, whose two choices lead to the same low 32 bits of the state (FNV-1a's low
 * bits depend only on low bits), so 2^k names of k blocks all collide.
 * Shared by the unit tests, the fuzz seeds and bench-symhash.
 */
#ifndef HVP_TESTS_FLOOD_GEN_H
#define HVP_TESTS_FLOOD_GEN_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core-builder.h"

enum flood_kind {
        FLOOD_DIGITS_SPARSE,
        FLOOD_DIGITS_DENSE,
        FLOOD_TOKENS,
        FLOOD_MZ,
        FLOOD_KPTI_CAUSE,
};

#define FLOOD_BASE 0x1000000ull         /* cb_cr3(0): the tables start at the first root */
#define FLOOD_PAGES 12
#define FLOOD_P 0x3ull                  /* present, writable */
#define FLOOD_MZ_REGION 0xfffff80000000000ull   /* PML4 index 496 */
#define FLOOD_MZ_HINTS 16

static inline uint8_t *flood_page(struct cb_core *c, uint64_t gpa)
{
        return c->buf + c->load_off[0] + (gpa - FLOOD_BASE);
}

static inline void flood_entry(struct cb_core *c, uint64_t table, unsigned index, uint64_t value)
{
        cb_put64(flood_page(c, table) + 8 * index, value);
}

/* Every entry of a table points at the same next-level table or page. */
static inline void flood_fill(struct cb_core *c, uint64_t table, uint64_t value)
{
        for (unsigned i = 0; i < 512; i++)
                flood_entry(c, table, i, value);
}

/* A page of 204 digit runs. */
static inline void flood_digits(uint8_t *page)
{
        static const char run[] = "0\0" "1\0" "2\0" "3\0" "4\0" "5\0" "6\0" "7\0" "8\0" "9";

        memset(page, 0, 4096);
        for (size_t o = 0; o + sizeof(run) <= 4096; o += sizeof(run))
                memcpy(page + o, run, sizeof(run));
}

/*
 * A token table as scripts/kallsyms writes it, with one-char tokens for the printable
 * codes and empty strings for the rest, followed by its index: it passes every check
 * of the token table itself; no names or markers lie before it.
 */
static inline void flood_tokens(uint8_t *page)
{
        size_t p = 8, idx;
        uint16_t off[256];

        memset(page, 0, 4096);
        for (unsigned c = 0; c < 256; c++) {
                off[c] = (uint16_t)(p - 8);
                if (c > 0x20 && c < 0x7f)
                        page[p++] = (uint8_t)c;
                page[p++] = 0;
        }
        idx = (p + 7) & ~(size_t)7;
        for (unsigned c = 0; c < 256; c++)
                cb_put16(page + idx + 2 * c, off[c]);
}

/* "MZ", then PE32+ headers whose optional header claims 60 KiB: the parser reads them all. */
static inline void flood_mz(uint8_t *page)
{
        memset(page, 0, 4096);
        page[0] = 'M';
        page[1] = 'Z';
        cb_put32(page + 0x3c, 0x40);
        memcpy(page + 0x40, "PE\0\0", 4);
        cb_put16(page + 0x44, 0x8664);          /* machine */
        cb_put16(page + 0x54, 0xf000);          /* SizeOfOptionalHeader */
        cb_put16(page + 0x58, 0x20b);           /* PE32+ */
}

static inline uint64_t flood_mz_hint(unsigned i)
{
        return FLOOD_MZ_REGION + (40ull << 20) * (i + 1) + 0x123;
}

/* Build the core; false on allocation failure. Free c->buf. */
static inline bool flood_core(enum flood_kind kind, struct cb_core *c)
{
        struct cb_spec s = { .nr_vcpus = kind == FLOOD_KPTI_CAUSE ? 1 : 2, .prstatus = true, .qemu_size = 440,
                             .nr_loads = 1 };
        /* page numbers from FLOOD_BASE: 0, 1 roots; 2 PDPT; 3 PD; 4 PT; 5 the page; 6.. IDT tables */
        uint64_t root0 = FLOOD_BASE, root1 = FLOOD_BASE + 0x1000, pdpt = FLOOD_BASE + 0x2000,
                 pd = FLOOD_BASE + 0x3000, pt = FLOOD_BASE + 0x4000, page = FLOOD_BASE + 0x5000;

        s.load[0].gpa = FLOOD_BASE;
        s.load[0].size = FLOOD_PAGES * 4096;
        if (!cb_build(&s, c))
                return false;
        memset(flood_page(c, FLOOD_BASE), 0, FLOOD_PAGES * 4096);
        switch (kind) {
        case FLOOD_DIGITS_SPARSE:
        case FLOOD_DIGITS_DENSE:
        case FLOOD_TOKENS:
                /* 0xffffffff80000000: PML4 511, PDPT 510; the whole PD, one PT */
                flood_entry(c, root0, 511, pdpt | FLOOD_P);
                flood_entry(c, pdpt, 510, pd | FLOOD_P);
                flood_fill(c, pd, pt | FLOOD_P);
                if (kind == FLOOD_DIGITS_SPARSE)
                        flood_entry(c, pt, 0, page | FLOOD_P);
                else
                        flood_fill(c, pt, page | FLOOD_P);
                if (kind == FLOOD_TOKENS)
                        flood_tokens(flood_page(c, page));
                else
                        flood_digits(flood_page(c, page));
                /* vCPU 1 (CR3 0x1001000: bit 12 set) runs another process: the same kernel half */
                memcpy(flood_page(c, root1), flood_page(c, root0), 4096);
                break;
        case FLOOD_MZ: {
                uint64_t idt_pdpt = FLOOD_BASE + 0x6000, idt_pd = FLOOD_BASE + 0x7000,
                         idt_pt = FLOOD_BASE + 0x8000, idt = FLOOD_BASE + 0x9000;

                /* a 1 GiB region of "MZ" pages, then the IDT at CB_IDT (PML4 508) */
                flood_entry(c, root0, (FLOOD_MZ_REGION >> 39) & 511, pdpt | FLOOD_P);
                flood_fill(c, pdpt, pd | FLOOD_P);
                flood_fill(c, pd, pt | FLOOD_P);
                flood_fill(c, pt, page | FLOOD_P);
                flood_mz(flood_page(c, page));
                flood_entry(c, root0, (CB_IDT >> 39) & 511, idt_pdpt | FLOOD_P);
                flood_entry(c, idt_pdpt, (CB_IDT >> 30) & 511, idt_pd | FLOOD_P);
                flood_entry(c, idt_pd, (CB_IDT >> 21) & 511, idt_pt | FLOOD_P);
                flood_entry(c, idt_pt, (CB_IDT >> 12) & 511, idt | FLOOD_P);
                for (unsigned v = 0; v < FLOOD_MZ_HINTS; v++) {
                        uint8_t *e = flood_page(c, idt) + 16 * v;
                        uint64_t h = flood_mz_hint(v);

                        cb_put16(e, (uint16_t)h);
                        cb_put16(e + 2, 0x10);
                        e[5] = 0x8e;
                        cb_put16(e + 6, (uint16_t)(h >> 16));
                        cb_put32(e + 8, (uint32_t)(h >> 32));
                }
                memcpy(flood_page(c, root1), flood_page(c, root0), 4096);
                break;
        }
        case FLOOD_KPTI_CAUSE:
                /* vCPU 0's CR3 is root1 (bit 12): a kernel area with one page of zeros */
                cb_put64(c->buf + c->qemu_off[0] + 20 + 8 + 16 * 8 + 16 + 10 * 24 + 24, root1);
                flood_entry(c, root1, 511, pdpt | FLOOD_P);
                flood_entry(c, pdpt, 510, pd | FLOOD_P);
                flood_entry(c, pd, 0, pt | FLOOD_P);
                flood_entry(c, pt, 0, page | FLOOD_P);
                break;
        }
        return true;
}

/* ------------------------------------------------------------------------ */
/* Names that collide under FNV-1a (64-bit) in their low 32 bits            */

#define FLOOD_FNV_PRIME32 0x1b3u        /* 0x100000001b3 mod 2^32 */
#define FLOOD_FNV_BASIS32 0x84222325u   /* 0xcbf29ce484222325 mod 2^32 */
#define FLOOD_BLOCK 6                   /* 4 chars would not do: they map one-to-one */

static inline uint32_t flood_fnv32(uint32_t h, const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++)
                h = (h ^ (uint8_t)s[i]) * FLOOD_FNV_PRIME32;
        return h;
}

static inline void flood_block(uint64_t x, char out[FLOOD_BLOCK])
{
        static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789_";

        for (int i = 0; i < FLOOD_BLOCK; i++) {
                out[i] = alphabet[x % 37];
                x /= 37;
        }
}

/*
 * 2^k names "fnv_" + k blocks (k <= 24) that all have the same low 32 bits of
 * FNV-1a-64; random: as many names of the same length, random blocks. Returns a
 * malloc'ed array of 2^k malloc'ed strings (sorted by nothing), or NULL.
 */
static inline char **flood_names(unsigned k, bool colliding, uint32_t seed)
{
        size_t n = (size_t)1 << k, len = 4 + (size_t)k * FLOOD_BLOCK;
        char (*pair)[2][FLOOD_BLOCK] = calloc(k ? k : 1, sizeof(*pair));
        char **names = calloc(n, sizeof(*names));
        uint32_t h = flood_fnv32(FLOOD_FNV_BASIS32, "fnv_", 4), x = seed | 1;

        if (!pair || !names)
                abort();
        for (unsigned b = 0; b < k && colliding; b++) {
                /* birthday search over random blocks for two with the same next state */
                enum { SLOTS = 1 << 20, TRIES = 1 << 19 };
                uint32_t *key = calloc(SLOTS, sizeof(*key));
                uint64_t *val = calloc(SLOTS, sizeof(*val)), y = 0x9e3779b97f4a7c15ull * (b + 1) ^ seed;
                bool found = false;

                if (!key || !val)
                        abort();
                for (uint32_t t = 1; t < TRIES && !found; t++) {
                        char blk[FLOOD_BLOCK], other[FLOOD_BLOCK];
                        uint64_t id;
                        uint32_t next, at;

                        y = y * 6364136223846793005ull + 1442695040888963407ull;
                        id = (y >> 16) % (37ull * 37 * 37 * 37 * 37 * 37);
                        flood_block(id, blk);
                        next = flood_fnv32(h, blk, FLOOD_BLOCK);
                        for (at = next & (SLOTS - 1); val[at]; at = (at + 1) & (SLOTS - 1)) {
                                if (key[at] != next)
                                        continue;
                                flood_block(val[at] - 1, other);
                                if (memcmp(other, blk, FLOOD_BLOCK) != 0) {
                                        memcpy(pair[b][0], other, FLOOD_BLOCK);
                                        memcpy(pair[b][1], blk, FLOOD_BLOCK);
                                        h = next;
                                        found = true;
                                }
                                break;
                        }
                        if (!found && !val[at]) {
                                key[at] = next;
                                val[at] = id + 1;
                        }
                }
                free(key);
                free(val);
                if (!found)
                        abort();
        }
        for (size_t i = 0; i < n; i++) {
                char *s = malloc(len + 1);

                if (!s)
                        abort();
                memcpy(s, "fnv_", 4);
                for (unsigned b = 0; b < k; b++) {
                        if (colliding) {
                                memcpy(s + 4 + FLOOD_BLOCK * b, pair[b][(i >> b) & 1], FLOOD_BLOCK);
                        } else {
                                x = x * 1103515245u + 12345u;
                                flood_block(x >> 4, s + 4 + FLOOD_BLOCK * b);
                        }
                }
                s[len] = '\0';
                names[i] = s;
        }
        free(pair);
        return names;
}

static inline void flood_names_free(char **names, unsigned k)
{
        for (size_t i = 0; names && i < (size_t)1 << k; i++)
                free(names[i]);
        free(names);
}

#endif

/*
 * Test helper: build kallsyms tables in the format scripts/kallsyms writes, from a
 * list of symbols, inside a memory image. Written from the format description (see
 * vmi/kallsyms.c), independently of the decoder: the token compression is a
 * simple greedy pair replacement, like the kernel tool's, so tokens have more than
 * one char and several levels of nesting.
 */
#ifndef HVP_TESTS_KALLSYMS_GEN_H
#define HVP_TESTS_KALLSYMS_GEN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ksgen_sym {
        uint64_t addr;          /* per-cpu symbols: the offset in the per-cpu area */
        char type;
        const char *name;
        bool percpu;
};

enum ksgen_layout {
        KSGEN_OLD,              /* up to 6.1: offsets, base, num, names, markers, tokens */
        KSGEN_SEQS,             /* 6.2, 6.3 and Debian's 6.1: seqs_of_names before the tokens */
        KSGEN_NEW,              /* 6.4 on: num, names, markers, tokens, offsets, base, seqs */
        KSGEN_PREL,             /* 7.0 on: as 6.4 but 4-aligned, no base: offsets place-relative */
};

struct ksgen_opts {
        enum ksgen_layout layout;
        bool absolute_percpu;
        unsigned pair_tokens;   /* how many pair tokens to make (0: one char per code) */
        uint64_t va;            /* address of the image's first byte (8-aligned) */
        size_t tables_off;      /* where the tables start in the image (8-aligned) */
        size_t tail;            /* bytes of filler after the tables */
};

struct ksgen {
        uint8_t *data;
        size_t size;
        uint64_t va;
        /* addresses of each table, for tests that corrupt one */
        uint64_t offsets, relative_base, num_syms, names, markers, seqs, token_table, token_index;
        uint64_t relative_base_value;
        unsigned big_records;   /* names written with a two-byte length */
};

struct ksgen_buf {
        uint8_t *p;
        size_t len, cap;
};

static inline void ksgen_put(struct ksgen_buf *b, const void *data, size_t len)
{
        if (b->len + len > b->cap) {
                b->cap = (b->len + len) * 2 + 4096;
                b->p = realloc(b->p, b->cap);
                if (!b->p)
                        abort();
        }
        memcpy(b->p + b->len, data, len);
        b->len += len;
}

static inline void ksgen_put_le(struct ksgen_buf *b, uint64_t v, unsigned bytes)
{
        uint8_t t[8];

        for (unsigned i = 0; i < bytes; i++)
                t[i] = (uint8_t)(v >> (8 * i));
        ksgen_put(b, t, bytes);
}

static inline void ksgen_align_to(struct ksgen_buf *b, unsigned a)
{
        static const uint8_t zero[8];

        ksgen_put(b, zero, (a - b->len % a) % a);
}

/* Encoded symbol strings (type char + name) as arrays of codes. */
struct ksgen_enc {
        uint8_t *codes;
        size_t len;
};

static inline void ksgen_compress(struct ksgen_enc *enc, size_t n, unsigned pairs, char tokens[256][600])
{
        bool used[256] = { false };

        for (size_t i = 0; i < n; i++)
                for (size_t k = 0; k < enc[i].len; k++)
                        used[enc[i].codes[k]] = true;
        for (unsigned c = 0; c < 256; c++) {
                tokens[c][0] = used[c] ? (char)c : '\0';
                tokens[c][1] = '\0';
        }
        for (unsigned round = 0; round < pairs; round++) {
                static unsigned count[65536];
                unsigned best = 0, code;

                memset(count, 0, sizeof(count));
                for (size_t i = 0; i < n; i++)
                        for (size_t k = 0; k + 1 < enc[i].len; k++)
                                count[enc[i].codes[k] | enc[i].codes[k + 1] << 8]++;
                for (unsigned p = 0; p < 65536; p++)
                        if (count[p] > count[best])
                                best = p;
                if (count[best] < 2)
                        break;
                for (code = 255; code > 0 && used[code]; code--)
                        ;
                if (used[code])
                        break;
                if (strlen(tokens[best & 0xff]) + strlen(tokens[best >> 8]) >= 600)
                        break;
                used[code] = true;
                {
                        size_t la = strlen(tokens[best & 0xff]), lb = strlen(tokens[best >> 8]);
                        char joined[600];

                        memcpy(joined, tokens[best & 0xff], la);
                        memcpy(joined + la, tokens[best >> 8], lb + 1);
                        memcpy(tokens[code], joined, la + lb + 1);
                }
                for (size_t i = 0; i < n; i++) {
                        size_t w = 0;

                        for (size_t k = 0; k < enc[i].len; k++) {
                                if (k + 1 < enc[i].len &&
                                    (unsigned)(enc[i].codes[k] | enc[i].codes[k + 1] << 8) == best) {
                                        enc[i].codes[w++] = (uint8_t)code;
                                        k++;
                                } else {
                                        enc[i].codes[w++] = enc[i].codes[k];
                                }
                        }
                        enc[i].len = w;
                }
        }
}

static const struct ksgen_sym *ksgen_sort_syms;

static inline int ksgen_cmp_name(const void *a, const void *b)
{
        uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
        int r = strcmp(ksgen_sort_syms[x].name, ksgen_sort_syms[y].name);

        if (r)
                return r;
        return x < y ? -1 : x > y;
}

/* syms must be sorted by address as scripts/kallsyms sorts them (per-cpu first). */
static inline void ksgen_build(const struct ksgen_sym *syms, size_t n, const struct ksgen_opts *o,
                               struct ksgen *out)
{
        static char tokens[256][600];
        struct ksgen_enc *enc = calloc(n, sizeof(*enc));
        struct ksgen_buf names = { 0 }, offsets = { 0 }, b = { 0 };
        uint32_t *markers = calloc((n + 255) / 256 + 1, sizeof(uint32_t));
        uint32_t *order = calloc(n, sizeof(uint32_t));
        uint64_t rb = 0;
        uint16_t index[256];
        size_t pos = 0;

        if (!enc || !markers || !order)
                abort();
        memset(out, 0, sizeof(*out));
        for (size_t i = 0; i < n; i++) {
                size_t l = strlen(syms[i].name) + 1;

                enc[i].codes = malloc(l);
                enc[i].codes[0] = (uint8_t)(o->absolute_percpu && syms[i].percpu ? 'A' : syms[i].type);
                memcpy(enc[i].codes + 1, syms[i].name, l - 1);
                enc[i].len = l;
        }
        ksgen_compress(enc, n, o->pair_tokens, tokens);

        for (size_t i = 0; i < n; i++)
                if (!(o->absolute_percpu && syms[i].percpu)) {
                        rb = syms[i].addr;
                        break;
                }
        for (size_t i = 0; i < n && o->layout != KSGEN_PREL; i++) {
                int64_t v;

                if (o->absolute_percpu)
                        v = syms[i].percpu ? (int64_t)syms[i].addr : (int64_t)(rb - syms[i].addr - 1);
                else
                        v = (int64_t)(syms[i].addr - rb);
                ksgen_put_le(&offsets, (uint64_t)v, 4);
        }
        for (size_t i = 0; i < n; i++) {
                if (i % 256 == 0)
                        markers[i / 256] = (uint32_t)names.len;
                if (enc[i].len > 0x7f) {
                        ksgen_put_le(&names, (enc[i].len & 0x7f) | 0x80, 1);
                        ksgen_put_le(&names, enc[i].len >> 7, 1);
                        out->big_records++;
                } else {
                        ksgen_put_le(&names, enc[i].len, 1);
                }
                ksgen_put(&names, enc[i].codes, enc[i].len);
        }
        for (uint32_t i = 0; i < n; i++)
                order[i] = i;
        ksgen_sort_syms = syms;
        qsort(order, n, sizeof(*order), ksgen_cmp_name);

        /* the image: filler up to the tables; ".balign 8" before each table, ".balign 4" from 7.0 */
#define ksgen_align(b) ksgen_align_to((b), o->layout == KSGEN_PREL ? 4 : 8)
        for (size_t i = 0; i < o->tables_off; i++)
                ksgen_put_le(&b, 0xcc, 1);
#define KSGEN_AT() (o->va + b.len)
        if (o->layout < KSGEN_NEW) {
                out->offsets = KSGEN_AT();
                ksgen_put(&b, offsets.p, offsets.len);
                ksgen_align(&b);
                out->relative_base = KSGEN_AT();
                ksgen_put_le(&b, rb, 8);
        }
        out->num_syms = KSGEN_AT();
        ksgen_put_le(&b, n, 4);
        ksgen_align(&b);
        out->names = KSGEN_AT();
        ksgen_put(&b, names.p, names.len);
        ksgen_align(&b);
        out->markers = KSGEN_AT();
        for (size_t i = 0; i < (n + 255) / 256; i++)
                ksgen_put_le(&b, markers[i], 4);
        ksgen_align(&b);
        if (o->layout == KSGEN_SEQS) {
                out->seqs = KSGEN_AT();
                for (size_t i = 0; i < n; i++) {
                        uint8_t t[3] = { (uint8_t)(order[i] >> 16), (uint8_t)(order[i] >> 8), (uint8_t)order[i] };
                        ksgen_put(&b, t, 3);
                }
                ksgen_align(&b);
        }
        out->token_table = KSGEN_AT();
        for (unsigned c = 0; c < 256; c++) {
                index[c] = (uint16_t)pos;
                ksgen_put(&b, tokens[c], strlen(tokens[c]) + 1);
                pos += strlen(tokens[c]) + 1;
        }
        ksgen_align(&b);
        out->token_index = KSGEN_AT();
        for (unsigned c = 0; c < 256; c++)
                ksgen_put_le(&b, index[c], 2);
        ksgen_align(&b);
        if (o->layout >= KSGEN_NEW) {
                out->offsets = KSGEN_AT();
                if (o->layout == KSGEN_PREL) {
                        /* _text - . + (addr - _text): the address minus the entry's own */
                        for (size_t i = 0; i < n; i++)
                                ksgen_put_le(&b, (uint64_t)(int64_t)(syms[i].addr - KSGEN_AT()), 4);
                } else {
                        ksgen_put(&b, offsets.p, offsets.len);
                        ksgen_align(&b);
                        out->relative_base = KSGEN_AT();
                        ksgen_put_le(&b, rb, 8);
                }
                out->seqs = KSGEN_AT();
                for (size_t i = 0; i < n; i++) {
                        uint8_t t[3] = { (uint8_t)(order[i] >> 16), (uint8_t)(order[i] >> 8), (uint8_t)order[i] };
                        ksgen_put(&b, t, 3);
                }
                ksgen_align(&b);
        }
#undef KSGEN_AT
#undef ksgen_align
        for (size_t i = 0; i < o->tail; i++)
                ksgen_put_le(&b, 0xcc, 1);
        out->data = b.p;
        out->size = b.len;
        out->va = o->va;
        out->relative_base_value = o->layout == KSGEN_PREL ? 0 : rb;
        for (size_t i = 0; i < n; i++)
                free(enc[i].codes);
        free(enc);
        free(names.p);
        free(offsets.p);
        free(markers);
        free(order);
}

static inline void ksgen_free(struct ksgen *g)
{
        free(g->data);
        g->data = NULL;
}

/* Little-endian stores into the image at a virtual address. */
static inline void ksgen_poke(struct ksgen *g, uint64_t va, uint64_t v, unsigned bytes)
{
        for (unsigned i = 0; i < bytes; i++)
                g->data[va - g->va + i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t ksgen_peek(const struct ksgen *g, uint64_t va, unsigned bytes)
{
        uint64_t v = 0;

        for (unsigned i = 0; i < bytes; i++)
                v |= (uint64_t)g->data[va - g->va + i] << (8 * i);
        return v;
}

/* An hvp_kmem over a buffer mapped at va. */
struct ksgen_mem {
        const uint8_t *data;
        size_t size;
        uint64_t va;
};

static inline int ksgen_mem_read(void *ctx, uint64_t va, void *buf, size_t len)
{
        const struct ksgen_mem *m = ctx;

        if (va < m->va || va - m->va > m->size || len > m->size - (va - m->va))
                return -14;     /* -EFAULT */
        memcpy(buf, m->data + (va - m->va), len);
        return 0;
}

#endif

/*
 * kallsyms: the kernel's own compressed symbol table, found and decoded from memory
 * with no symbol file.
 *
 * scripts/kallsyms writes these tables into .rodata, each one starting 8-aligned
 * (".balign 8" before every label on 64-bit) up to 6.x, 4-aligned from 7.0:
 *
 *   up to 6.3   offsets s32[n] | relative_base u64 | num_syms u32 | names |
 *               markers u32[(n + 255) / 256] | [seqs_of_names] | token_table |
 *               token_index u16[256]
 *   6.4 on      num_syms | names | markers | token_table | token_index |
 *               offsets | relative_base | seqs_of_names
 *   7.0 on      num_syms | names | markers | token_table | token_index |
 *               offsets | seqs_of_names   (no relative_base: each offset is
 *               place-relative, the symbol's address minus the entry's own)
 *
 * seqs_of_names (6.2 on, and backported into Debian's 6.1) is 3 bytes per symbol.
 * names: per symbol a length, one byte or (6.1 on, when the top bit is set) two
 * bytes of ULEB128, then that many token indices. The expansion's first char is the
 * nm type that /proc/kallsyms prints for core-kernel symbols unchanged; the rest is
 * the name. markers[i] is the offset in names of symbol 256 * i.
 * token_table: 256 NUL-terminated strings; token_index[i] is the offset of string i.
 * Every char used in a name stays a one-char token at its own code, so the table
 * holds the 20 bytes "0\0" "1\0" ... "9\0" at codes '0'..'9': the anchor we search.
 * From there everything is checked against everything else: the token index
 * against the strings, every name record, every marker, the position of each table
 * relative to the others, the sortedness of the addresses.
 *
 * /proc/kallsyms prints a core-kernel symbol's stored type unchanged (s_show()
 * changes the case only for module symbols), so hvp_symbol.type is that char.
 * Not handled: kernels without CONFIG_KALLSYMS_BASE_RELATIVE (before 4.6 on
 * x86-64): -EINVAL "no sorted address table".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <hvpatch/kernel.h>

#include "common/error.h"
#include "common/util.h"
#include "vmi/x86.h"
#include "vmi/scan-budget.h"

#define KS_ALIGN 8u                     /* the largest table alignment (6.x; 7.0 on: 4) */
#define KS_TOKENS 256u
#define KS_NAME_MAX 512u                /* KSYM_NAME_LEN: type char + name */
#define KS_SCAN_CHUNK (1u << 20)
/* token_index is u16: the table ends at most one token past 64 KiB. */
#define KS_TOKEN_SPAN (0x10000u + KS_NAME_MAX + 2 * KS_TOKENS + 2 * KS_ALIGN)
/* How far from the token table the other tables may lie (names of 4 Mi symbols). */
#define KS_TABLE_SPAN (64ull << 20)
#define KS_WINDOW_START (2u << 20)
#define KS_NAMES_BYTES_MAX (64u << 20)  /* decoded names, all symbols */
/* Name records taken from the budget at a time, and loop steps between looks at the clock. */
#define KS_RECORD_BATCH 4096u
#define KS_CHECK_EVERY 4096u
#define KS_KERNEL_HALF 0xffff800000000000ull

static const char digit_run[] = "0\0" "1\0" "2\0" "3\0" "4\0" "5\0" "6\0" "7\0" "8\0" "9";
#define DIGIT_RUN_LEN sizeof(digit_run)         /* 20: includes the last NUL */

/*
 * Name lookup: open addressing over a keyed hash (SipHash-2-4, libsodium's
 * crypto_shorthash) with a random key per table, so that names chosen by the guest
 * cannot be made to collide; probes are bounded, and a table whose longest probe
 * passes the bound (by chance: it does not happen with a random key) is rebuilt
 * with a new key.
 */
#define SYMTAB_MAX_PROBE 64u
#define SYMTAB_REKEYS 4

struct symtab_slot {
        uint32_t index;                 /* index + 1 of the name's first symbol; 0: empty slot */
        uint32_t tag;                   /* high half of the hash: most misses skip strcmp */
        uint32_t last;                  /* index + 1 of its last symbol (dup_next chains them) */
};

struct hvp_symtab {
        size_t count;
        struct hvp_symbol *syms;
        char *names;
        struct symtab_slot *hash;       /* one slot per distinct name */
        uint32_t *dup_next;             /* per symbol: index + 1 of the next one of the same name */
        size_t hash_mask;
        unsigned max_probe;             /* longest probe of any name in the table */
        uint8_t key[crypto_shorthash_KEYBYTES];
};

struct ks_tokens {
        uint64_t table, index;          /* addresses of token_table, token_index */
        uint8_t *data;                  /* a copy of the strings */
        uint16_t off[KS_TOKENS];
        uint16_t len[KS_TOKENS];
};

/* A buffer over [lo, hi) of kernel memory that grows on demand within [min, max). */
struct ks_window {
        const struct hvp_kmem *km;
        uint64_t lo, hi, min, max;
        uint8_t *buf;
};

struct ks_layout {
        uint32_t n;
        uint64_t names, markers, offsets, relative_base_at;
        size_t names_size;
        size_t decoded_size;            /* sum over symbols of type char + name + NUL */
        unsigned marker_size;
        bool seqs_before_tokens;
        uint64_t relative_base;
        bool absolute_percpu;
        bool place_relative;            /* 7.0 on: address = &offsets[i] + offsets[i] */
};

struct ks_search {
        struct ks_window w;
        struct ks_tokens tk;
        uint32_t *marks;                /* offsets of every 256th record seen in a walk */
        size_t marks_cap;
        struct hvp_scan_budget *budget;
};

static inline uint64_t align_up(uint64_t v)
{
        return (v + KS_ALIGN - 1) & ~(uint64_t)(KS_ALIGN - 1);
}

static inline uint64_t align4_up(uint64_t v)
{
        return (v + 3) & ~(uint64_t)3;
}

/* A table that starts at `at` may follow one that ends at `end`: padded to 8 or to 4. */
static inline bool follows(uint64_t end, uint64_t at)
{
        return at == align_up(end) || at == align4_up(end);
}

static inline uint64_t align_down(uint64_t v)
{
        return v & ~(uint64_t)(KS_ALIGN - 1);
}

/*
 * Read [va, va + len) into buf, zero-filling what cannot be read (holes in the
 * kernel mapping). A hole is skipped in one step where km->hole_end says how big
 * it is.
 */
static void read_span(const struct hvp_kmem *km, uint64_t va, uint8_t *buf, size_t len)
{
        size_t off = 0;

        if (len == 0 || km->read(km->ctx, va, buf, len) == 0)
                return;
        while (off < len) {
                uint64_t a = va + off;
                size_t n = HVP_MIN(HVP_PAGE_SIZE - (size_t)(a & (HVP_PAGE_SIZE - 1)), len - off);

                if (km->read(km->ctx, a, buf + off, n) < 0) {
                        uint64_t e = km->hole_end ? km->hole_end(km->ctx, a) : 0;

                        if (e > a + n)
                                n = (size_t)HVP_MIN(e - a, (uint64_t)(len - off));
                        memset(buf + off, 0, n);
                }
                off += n;
        }
}

static void window_init(struct ks_window *w, const struct hvp_kmem *km, uint64_t min, uint64_t max)
{
        *w = (struct ks_window){ .km = km, .min = min, .max = max };
}

static void window_free(struct ks_window *w)
{
        free(w->buf);
        w->buf = NULL;
        w->lo = w->hi = 0;
}

/*
 * Make the window cover [lo, hi). Growing at least doubles the window on the side
 * that grows, so a scan that extends it step by step reads each byte once or twice.
 * -ERANGE if [lo, hi) leaves the bounds. Pointers from window_at() are invalidated.
 */
static int window_cover(struct ks_window *w, uint64_t lo, uint64_t hi)
{
        uint64_t nlo, nhi, size;
        uint8_t *nb;

        if (lo > hi || lo < w->min || hi > w->max)
                return -ERANGE;
        if (w->buf && lo >= w->lo && hi <= w->hi)
                return 0;
        if (!w->buf) {
                w->lo = w->hi = lo;
        }
        size = HVP_MAX(w->hi - w->lo, (uint64_t)KS_WINDOW_START);
        nlo = w->lo;
        nhi = w->hi;
        if (lo < w->lo)
                nlo = HVP_MIN(lo, w->lo - HVP_MIN(size, w->lo - w->min));
        if (hi > w->hi)
                nhi = HVP_MAX(hi, w->hi + HVP_MIN(size, w->max - w->hi));
        if (nhi - nlo > SIZE_MAX / 2)
                return -E2BIG;
        nb = malloc(nhi - nlo ? nhi - nlo : 1);
        if (!nb)
                return -ENOMEM;
        if (w->buf)
                memcpy(nb + (w->lo - nlo), w->buf, w->hi - w->lo);
        read_span(w->km, nlo, nb, w->lo - nlo);
        read_span(w->km, w->hi, nb + (w->hi - nlo), nhi - w->hi);
        free(w->buf);
        w->buf = nb;
        w->lo = nlo;
        w->hi = nhi;
        return 0;
}

/* A pointer to [va, va + len) if the window holds all of it, else NULL. */
static const uint8_t *window_at(const struct ks_window *w, uint64_t va, uint64_t len)
{
        if (!w->buf || !hvp_range_within(va, len, w->lo, w->hi - w->lo))
                return NULL;
        return w->buf + (va - w->lo);
}

static bool token_char_ok(uint8_t c)
{
        return c > 0x20 && c < 0x7f;
}

/* The nm type letter stored as a name's first char ('?' for unknown types). */
static bool type_char_ok(uint8_t c)
{
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '?';
}

/*
 * Strings from p: count of them, each NUL-terminated, made of symbol chars and at
 * most KS_NAME_MAX long. Returns the address past the last NUL, or 0.
 */
static uint64_t skip_strings(const struct ks_window *w, uint64_t p, unsigned count)
{
        for (unsigned i = 0; i < count; i++) {
                size_t l = 0;
                const uint8_t *s;

                for (;;) {
                        s = window_at(w, p + l, 1);
                        if (!s || l > KS_NAME_MAX)
                                return 0;
                        if (*s == 0)
                                break;
                        if (!token_char_ok(*s))
                                return 0;
                        l++;
                }
                p += l + 1;
        }
        return p;
}

/*
 * The token table whose index would lie at `index`, given the digit run at d and
 * the end of the strings: index[i] must be the offset of the i-th string, for all
 * 256, and the table 4-aligned. Returns the table's address, or 0.
 */
static uint64_t index_check(const struct ks_window *w, uint64_t d, uint64_t end, uint64_t index,
                            struct ks_tokens *tk)
{
        const uint8_t *idx = window_at(w, index, 2 * KS_TOKENS);
        uint64_t table, p;

        if (!idx || hvp_le16(idx) != 0 || hvp_le16(idx + 2 * '0') > d - w->lo)
                return 0;
        table = d - hvp_le16(idx + 2 * '0');
        if (table % 4)
                return 0;
        p = table;
        for (unsigned i = 0; i < KS_TOKENS; i++) {
                uint64_t next;

                if (p - table != hvp_le16(idx + 2 * i))
                        return 0;
                next = skip_strings(w, p, 1);
                if (!next)
                        return 0;
                tk->off[i] = (uint16_t)(p - table);
                tk->len[i] = (uint16_t)(next - p - 1);
                p = next;
        }
        return p == end ? table : 0;
}

/*
 * Given the digit run at d, find and check the whole token table and token index:
 * the index follows the table (8-aligned, or 4-aligned from 7.0).
 */
static int tokens_at(const struct hvp_kmem *km, uint64_t d, struct ks_tokens *tk)
{
        struct ks_window w;
        uint64_t lo, hi, end, index, table = 0;
        int r;

        lo = d - km->start > KS_TOKEN_SPAN ? d - KS_TOKEN_SPAN : km->start;
        hi = km->end - d > KS_TOKEN_SPAN ? d + KS_TOKEN_SPAN : km->end;
        window_init(&w, km, lo, hi);
        r = window_cover(&w, lo, hi);
        if (r < 0)
                goto out;
        r = -EINVAL;
        /* The strings '0' (code 0x30) .. 0xff, then the index. */
        end = skip_strings(&w, d, KS_TOKENS - '0');
        if (!end)
                goto out;
        index = align_up(end);
        table = index_check(&w, d, end, index, tk);
        if (!table && align4_up(end) != index) {
                index = align4_up(end);
                table = index_check(&w, d, end, index, tk);
        }
        if (!table)
                goto out;
        tk->data = malloc(end - table);
        if (!tk->data) {
                r = -ENOMEM;
                goto out;
        }
        memcpy(tk->data, window_at(&w, table, end - table), end - table);
        tk->table = table;
        tk->index = index;
        r = 0;
out:
        window_free(&w);
        return r;
}

/*
 * One names record at p (avail bytes): its size in bytes and the length of its
 * expansion (type char + name). false if it is not a record scripts/kallsyms
 * could have written.
 */
static bool record_parse(const struct ks_tokens *tk, const uint8_t *p, size_t avail,
                         size_t *ret_size, size_t *ret_dlen)
{
        size_t len, hdr = 1, dlen = 0;

        if (avail < 1)
                return false;
        len = p[0];
        if (len & 0x80) {
                if (avail < 2 || (p[1] & 0x80))
                        return false;
                len = (len & 0x7f) | (size_t)p[1] << 7;
                hdr = 2;
                if (len < 0x80)         /* the tool writes short lengths in one byte */
                        return false;
        }
        if (len == 0 || len > avail - hdr)
                return false;
        for (size_t i = 0; i < len; i++) {
                size_t tl = tk->len[p[hdr + i]];

                if (tl == 0)            /* an unused code */
                        return false;
                dlen += tl;
                if (dlen > KS_NAME_MAX)
                        return false;
        }
        if (dlen < 2 || !type_char_ok(tk->data[tk->off[p[hdr]]]))
                return false;
        *ret_size = hdr + len;
        *ret_dlen = dlen;
        return true;
}

static int marks_reserve(struct ks_search *s, size_t count)
{
        uint32_t *m;

        if (count <= s->marks_cap)
                return 0;
        count = HVP_MAX(count, 2 * s->marks_cap);
        m = realloc(s->marks, count * sizeof(*m));
        if (!m)
                return -ENOMEM;
        s->marks = m;
        s->marks_cap = count;
        return 0;
}

/*
 * Walk n name records from lay->names up to the token table; on success
 * lay->names_size, decoded_size and s->marks are set. -EINVAL: not names.
 */
static int names_walk(struct ks_search *s, struct ks_layout *lay)
{
        const uint8_t *names = window_at(&s->w, lay->names, s->tk.table - lay->names);
        size_t avail = s->tk.table - lay->names, off = 0, decoded = 0;
        int r;

        if (!names)
                return -EINVAL;
        for (uint32_t i = 0; i < lay->n; i++) {
                size_t size, dlen;

                if (i % KS_RECORD_BATCH == 0 &&
                    !hvp_scan_take(s->budget, HVP_SCAN_RECORDS, HVP_MIN(lay->n - i, KS_RECORD_BATCH)))
                        return -E2BIG;
                if (!record_parse(&s->tk, names + off, avail - off, &size, &dlen))
                        return -EINVAL;
                if ((i & 0xff) == 0) {
                        r = marks_reserve(s, (size_t)i / 256 + 1);
                        if (r < 0)
                                return r;
                        s->marks[i >> 8] = (uint32_t)off;
                }
                off += size;
                decoded += dlen;
        }
        lay->names_size = off;
        lay->decoded_size = decoded;
        return 0;
}

/*
 * The markers follow the names: one per 256 symbols, u32 (or, in old kernels,
 * unsigned long), each the offset of its record. Then the token table, directly or
 * after seqs_of_names.
 */
static bool markers_check(struct ks_search *s, struct ks_layout *lay)
{
        uint64_t m = ((uint64_t)lay->n + 255) / 256, names_end = lay->names + lay->names_size;
        uint64_t starts[2] = { align_up(names_end), align4_up(names_end) };

        for (unsigned k = 0; k < 2; k++) {
                uint64_t at = starts[k];

                if (k == 1 && at == starts[0])
                        break;
                for (unsigned size = 4; size <= 8; size += 4) {
                        const uint8_t *p = window_at(&s->w, at, m * size);
                        uint64_t end = at + m * size, i;

                        if (!p || end > s->tk.table)
                                continue;
                        for (i = 0; i < m; i++)
                                if ((size == 4 ? hvp_le32(p + 4 * i) : hvp_le64(p + 8 * i)) != s->marks[i])
                                        break;
                        if (i < m)
                                continue;
                        lay->markers = at;
                        lay->marker_size = size;
                        if (follows(end, s->tk.table)) {
                                lay->seqs_before_tokens = false;
                                return true;
                        }
                        /* seqs_of_names (3 or 4 bytes a symbol) between them */
                        for (unsigned a = 0; a < 2; a++) {
                                uint64_t seqs = a ? align4_up(end) : align_up(end);

                                if (follows(seqs + 3ull * lay->n, s->tk.table) ||
                                    follows(seqs + 4ull * lay->n, s->tk.table)) {
                                        lay->seqs_before_tokens = true;
                                        return true;
                                }
                        }
                }
        }
        return false;
}

/*
 * kallsyms_sym_address(): with CONFIG_KALLSYMS_ABSOLUTE_PERCPU a non-negative
 * offset is an absolute value (per-cpu symbols) and a negative one means
 * relative_base - 1 - offset; without it every offset is unsigned from
 * relative_base. The relative base is the first relative symbol, so its offset is
 * -1 (or 0), and the table is sorted by address. From 7.0 every offset is
 * place-relative: the address of its own entry plus the offset (s32). false if the
 * sum overflows.
 */
static bool offset_address(const struct ks_layout *lay, uint32_t i, int32_t off, uint64_t *ret)
{
        if (lay->place_relative) {
                uint64_t at = lay->offsets + 4ull * i;

                if (off >= 0)
                        return !__builtin_add_overflow(at, (uint64_t)off, ret);
                if (at < (uint64_t)(-(int64_t)off))
                        return false;
                *ret = at - (uint64_t)(-(int64_t)off);
                return true;
        }
        if (!lay->absolute_percpu)
                return !__builtin_add_overflow(lay->relative_base, (uint64_t)(uint32_t)off, ret);
        if (off >= 0) {
                *ret = (uint64_t)off;
                return true;
        }
        return !__builtin_add_overflow(lay->relative_base, (uint64_t)(-(int64_t)off - 1), ret);
}

static bool offsets_check(struct ks_search *s, struct ks_layout *lay, uint64_t offsets, uint64_t rb_at)
{
        const uint8_t *o, *rb;
        bool seen_relative = false;
        uint64_t prev = 0;
        uint32_t n = lay->n;

        if (window_cover(&s->w, offsets, rb_at + 8) < 0)
                return false;
        o = window_at(&s->w, offsets, 4ull * n);
        rb = window_at(&s->w, rb_at, 8);
        if (!o || !rb)
                return false;
        lay->relative_base = hvp_le64(rb);
        if (lay->relative_base < KS_KERNEL_HALF)
                return false;
        /* Relative offsets span the image (< 1 GiB): only absolute per-cpu mode stores negatives. */
        lay->absolute_percpu = false;
        for (uint32_t i = 0; i < n; i++)
                if ((int32_t)hvp_le32(o + 4ull * i) < 0) {
                        lay->absolute_percpu = true;
                        break;
                }
        for (uint32_t i = 0; i < n; i++) {
                int32_t off = (int32_t)hvp_le32(o + 4ull * i);
                bool relative = !lay->absolute_percpu || off < 0;
                uint64_t a;

                if (!offset_address(lay, i, off, &a))
                        return false;
                if (relative && !seen_relative) {
                        if (off != (lay->absolute_percpu ? -1 : 0))
                                return false;
                        seen_relative = true;
                }
                if (i > 0 && a < prev)
                        return false;
                prev = a;
        }
        lay->offsets = offsets;
        lay->relative_base_at = rb_at;
        return seen_relative;
}

/* 7.0 on: place-relative offsets at `offsets`, no relative base: sorted kernel addresses. */
static bool offsets_check_prel(struct ks_search *s, struct ks_layout *lay, uint64_t offsets)
{
        const uint8_t *o;
        uint64_t prev = 0;

        if (window_cover(&s->w, offsets, offsets + 4ull * lay->n) < 0)
                return false;
        o = window_at(&s->w, offsets, 4ull * lay->n);
        if (!o)
                return false;
        lay->offsets = offsets;
        lay->place_relative = true;
        lay->absolute_percpu = false;
        lay->relative_base = 0;
        for (uint32_t i = 0; i < lay->n; i++) {
                uint64_t a;

                if (!offset_address(lay, i, (int32_t)hvp_le32(o + 4ull * i), &a) || a < KS_KERNEL_HALF ||
                    (i > 0 && a < prev)) {
                        lay->place_relative = false;
                        return false;
                }
                prev = a;
        }
        lay->relative_base_at = 0;
        return true;
}

/*
 * Where the offsets lie: with the relative base before num_syms (to 6.3), after the
 * token index (6.4 on), or after the token index and place-relative (7.0 on).
 */
static bool addresses_find(struct ks_search *s, struct ks_layout *lay, uint64_t num_syms_at)
{
        uint64_t table_bytes = 4ull * lay->n, after, at[2];

        if (num_syms_at - s->w.min >= 8 + table_bytes &&
            offsets_check(s, lay, align_down(num_syms_at - 8 - table_bytes), num_syms_at - 8))
                return true;
        if (lay->seqs_before_tokens)
                return false;
        after = s->tk.index + 2 * KS_TOKENS;
        at[0] = align_up(after);
        at[1] = align4_up(after);
        for (unsigned k = 0; k < 2; k++) {
                if (k == 1 && at[1] == at[0])
                        break;
                if (offsets_check(s, lay, at[k], align_up(at[k] + table_bytes)) ||
                    offsets_check_prel(s, lay, at[k]))
                        return true;
        }
        return false;
}

/*
 * Scan down from the token table for kallsyms_num_syms: a count followed by the
 * names (after zero padding to 8 bytes up to 6.x, directly from 7.0) that walk
 * exactly into markers that point back at them.
 */
static int layout_find(struct ks_search *s, struct ks_layout *lay)
{
        uint64_t t = s->tk.table, p = t & ~(uint64_t)3;
        unsigned steps = 0;
        int r;

        while (p - s->w.min >= 8) {
                const uint8_t *q;
                uint64_t names[2];
                uint32_t n;

                if (++steps % KS_CHECK_EVERY == 0 && !hvp_scan_left(s->budget))
                        return -E2BIG;
                p -= 4;
                if (p < s->w.lo) {
                        r = window_cover(&s->w, p, s->tk.index + 2 * KS_TOKENS);
                        if (r < 0)
                                return r == -ERANGE ? -ENOENT : r;
                        if (s->budget->spent)   /* the reads that grew it were refused */
                                return -E2BIG;
                }
                q = window_at(&s->w, p, 8);
                n = hvp_le32(q);
                if (n == 0 || n > HVP_KALLSYMS_MAX_SYMS)
                        continue;
                /* 6.x: 8-aligned, zero padding; 7.0 on: names at once (a record never starts with 0) */
                names[0] = p % 8 == 0 && hvp_le32(q + 4) == 0 ? p + 8 : 0;
                names[1] = q[4] != 0 ? p + 4 : 0;
                for (unsigned k = 0; k < 2; k++) {
                        if (!names[k])
                                continue;
                        /* room for n records of 2 bytes at least, and their markers */
                        if (t - names[k] < 2ull * n + 4ull * ((n + 255) / 256))
                                continue;
                        *lay = (struct ks_layout){ .n = n, .names = names[k] };
                        r = names_walk(s, lay);
                        if (r == -EINVAL)
                                continue;
                        if (r < 0)
                                return r;
                        if (!markers_check(s, lay))
                                continue;
                        if (!addresses_find(s, lay, p))
                                return hvp_fail(-EINVAL, "kallsyms: %u names at 0x%llx but no sorted address table",
                                                n, (unsigned long long)lay->names);
                        return 0;
                }
        }
        return -ENOENT;
}

static uint64_t name_hash(const struct hvp_symtab *st, const char *name)
{
        uint8_t out[crypto_shorthash_BYTES];

        crypto_shorthash(out, (const unsigned char *)name, strlen(name), st->key);
        return hvp_le64(out);
}

void hvp_symtab_free(struct hvp_symtab *st)
{
        if (!st)
                return;
        free(st->syms);
        free(st->names);
        free(st->hash);
        free(st->dup_next);
        free(st);
}

/* Fill the table under the current key; false if a probe passed SYMTAB_MAX_PROBE. */
static bool symtab_fill(struct hvp_symtab *st)
{
        memset(st->hash, 0, (st->hash_mask + 1) * sizeof(*st->hash));
        memset(st->dup_next, 0, st->count * sizeof(*st->dup_next));
        st->max_probe = 0;
        for (size_t i = 0; i < st->count; i++) {
                uint64_t h = name_hash(st, st->syms[i].name);
                size_t at = h & st->hash_mask;
                unsigned probe;

                for (probe = 0; st->hash[at].index; probe++, at = (at + 1) & st->hash_mask) {
                        const struct symtab_slot *e = &st->hash[at];

                        if (probe >= SYMTAB_MAX_PROBE)
                                return false;
                        if (e->tag == (uint32_t)(h >> 32) && !strcmp(st->syms[e->index - 1].name, st->syms[i].name))
                                break;
                }
                if (!st->hash[at].index) {
                        st->hash[at] = (struct symtab_slot){ (uint32_t)i + 1, (uint32_t)(h >> 32), (uint32_t)i + 1 };
                } else {                /* a repeated name: chained after its earlier copies, in kallsyms order */
                        st->dup_next[st->hash[at].last - 1] = (uint32_t)i + 1;
                        st->hash[at].last = (uint32_t)i + 1;
                }
                st->max_probe = HVP_MAX(st->max_probe, probe);
        }
        return true;
}

static int symtab_index(struct hvp_symtab *st)
{
        size_t size = 16;

        if (sodium_init() < 0)
                return hvp_fail(-EIO, "kallsyms: libsodium failed to initialize");
        while (size < 2 * st->count)
                size *= 2;
        st->hash = calloc(size, sizeof(*st->hash));
        st->dup_next = calloc(st->count ? st->count : 1, sizeof(*st->dup_next));
        if (!st->hash || !st->dup_next)
                return -ENOMEM;
        st->hash_mask = size - 1;
        for (int k = 0; k < SYMTAB_REKEYS; k++) {
                crypto_shorthash_keygen(st->key);
                if (symtab_fill(st))
                        return 0;
                hvp_debug("kallsyms: a name probed past %u slots under key %d, new key", SYMTAB_MAX_PROBE, k);
        }
        return hvp_fail(-E2BIG, "kallsyms: %zu names: a lookup would probe more than %u slots under %d random keys",
                        st->count, SYMTAB_MAX_PROBE, SYMTAB_REKEYS);
}

static int symtab_build(struct ks_search *s, const struct ks_layout *lay, struct hvp_symtab **ret)
{
        const uint8_t *names = window_at(&s->w, lay->names, lay->names_size);
        const uint8_t *offs = window_at(&s->w, lay->offsets, 4ull * lay->n);
        struct hvp_symtab *st;
        size_t off = 0, pos = 0;
        int r = -ENOMEM;

        if (!names || !offs)
                return hvp_fail(-EINVAL, "kallsyms: tables left the window");
        if (lay->decoded_size > KS_NAMES_BYTES_MAX)
                return hvp_fail(-E2BIG, "kallsyms: %zu bytes of names (at most %u)", lay->decoded_size,
                                KS_NAMES_BYTES_MAX);
        st = calloc(1, sizeof(*st));
        if (!st)
                return hvp_fail(-ENOMEM, "out of memory");
        st->count = lay->n;
        st->syms = calloc(lay->n, sizeof(*st->syms));
        st->names = malloc(lay->decoded_size);
        if (!st->syms || !st->names)
                goto fail;
        for (uint32_t i = 0; i < lay->n; i++) {
                size_t size, dlen, hdr;
                bool first = true;

                /* checked by names_walk(); parsed again for the lengths */
                if (!record_parse(&s->tk, names + off, lay->names_size - off, &size, &dlen)) {
                        r = hvp_fail(-EINVAL, "kallsyms: record %u changed", i);
                        goto fail;
                }
                hdr = (names[off] & 0x80) ? 2 : 1;
                /* checked by offsets_check() */
                offset_address(lay, i, (int32_t)hvp_le32(offs + 4ull * i), &st->syms[i].addr);
                st->syms[i].name = st->names + pos;
                for (size_t k = hdr; k < size; k++) {
                        uint8_t t = names[off + k];
                        const uint8_t *tok = s->tk.data + s->tk.off[t];
                        size_t tl = s->tk.len[t];

                        if (first) {
                                st->syms[i].type = (char)tok[0];
                                tok++;
                                tl--;
                                first = false;
                        }
                        memcpy(st->names + pos, tok, tl);
                        pos += tl;
                }
                st->names[pos++] = '\0';
                off += size;
        }
        r = symtab_index(st);
        if (r < 0)
                goto fail;
        *ret = st;
        return 0;
fail:
        hvp_symtab_free(st);
        return r == -ENOMEM ? hvp_fail(-ENOMEM, "out of memory") : r;
}

static void search_free(struct ks_search *s)
{
        window_free(&s->w);
        free(s->tk.data);
        s->tk.data = NULL;
        free(s->marks);
        s->marks = NULL;
        s->marks_cap = 0;
}

/* Everything else, given a checked token table. */
static int decode_from_tokens(struct ks_search *s, const struct hvp_kmem *km, struct hvp_symtab **ret)
{
        struct ks_layout lay;
        uint64_t t = s->tk.table, min, max;
        int r;

        min = t - km->start > KS_TABLE_SPAN ? t - KS_TABLE_SPAN : km->start;
        max = km->end - t > KS_TABLE_SPAN ? t + KS_TABLE_SPAN : km->end;
        window_init(&s->w, km, min, max);
        r = window_cover(&s->w, t - HVP_MIN(t - min, (uint64_t)KS_WINDOW_START),
                         s->tk.index + 2 * KS_TOKENS);
        if (r < 0)
                return r == -ERANGE ? hvp_fail(-EINVAL, "kallsyms: token index past the image") :
                                      hvp_fail(r, "out of memory");
        r = layout_find(s, &lay);
        if (r == -E2BIG && s->budget->spent)
                return r;
        if (r == -ENOENT)
                return hvp_fail(-EINVAL, "kallsyms: token table at 0x%llx but no names and markers before it",
                                (unsigned long long)t);
        if (r == -ENOMEM)
                return hvp_fail(r, "out of memory");
        if (r < 0)
                return r;
        hvp_debug("kallsyms: %u symbols, names at 0x%llx, markers (%u bytes each) at 0x%llx, "
                  "token table at 0x%llx, offsets at 0x%llx (%s), %s 0x%llx%s",
                  lay.n, (unsigned long long)lay.names, lay.marker_size, (unsigned long long)lay.markers,
                  (unsigned long long)t, (unsigned long long)lay.offsets,
                  lay.offsets < t ? "before the names" : "after the token index",
                  lay.place_relative ? "place-relative, no relative base; tables at" : "relative base",
                  (unsigned long long)(lay.place_relative ? lay.names - 4 : lay.relative_base),
                  lay.absolute_percpu ? ", absolute per-cpu" : "");
        return symtab_build(s, &lay, ret);
}

static int check_text(struct hvp_symtab *st, uint64_t text_base)
{
        const struct hvp_symbol *text = hvp_symtab_lookup(st, "_text");

        if (!text)
                return hvp_fail(-EINVAL, "kallsyms: no _text symbol");
        if (text_base && text->addr != text_base)
                return hvp_fail(-EINVAL, "kallsyms: _text is 0x%llx, expected 0x%llx",
                                (unsigned long long)text->addr, (unsigned long long)text_base);
        return 0;
}

/*
 * The first checks of a digit run at buf[o] (address d), on bytes already read: the
 * strings from '0' to 0xff, then the token index after them, whose entries for those
 * codes must be exactly the offsets of those strings, and below '0' rising from 0.
 * buf must hold [d, d + KS_TOKEN_SPAN) or end where the kernel image ends (a token
 * table and its index need no more). Only what passes is read again and checked whole
 * by tokens_at(): a page of "0\0" ... "9\0" repeated costs a few hundred byte
 * compares per run, not a window read per run.
 */
static bool tokens_plausible(const uint8_t *buf, size_t len, size_t o, uint64_t d, uint64_t start)
{
        uint32_t rel[KS_TOKENS - '0'];
        size_t p = o, span = HVP_MIN(len - o, (size_t)KS_TOKEN_SPAN), index;
        const uint8_t *idx;
        uint16_t base;

        for (unsigned i = 0; i < KS_TOKENS - '0'; i++) {
                size_t l = 0;

                rel[i] = (uint32_t)(p - o);
                while (p + l < o + span && l <= KS_NAME_MAX && buf[p + l] && token_char_ok(buf[p + l]))
                        l++;
                if (p + l >= o + span || buf[p + l] != 0)
                        return false;
                p += l + 1;
        }
        /* the index: 8-aligned (6.x) or 4-aligned (7.0 on) */
        for (unsigned k = 0; k < 2; k++) {
                uint64_t end = d + (p - o), at = k ? align4_up(end) : align_up(end);
                unsigned i;

                if (k == 1 && at == align_up(end))
                        break;
                index = (size_t)(at - d) + o;
                if (index + 2 * KS_TOKENS > o + span)
                        continue;
                idx = buf + index;
                base = hvp_le16(idx + 2 * '0');
                if (hvp_le16(idx) != 0 || base > d - start || (d - base) % 4)
                        continue;
                for (i = 1; i <= '0'; i++)
                        if (hvp_le16(idx + 2 * i) <= hvp_le16(idx + 2 * (i - 1)))
                                break;
                if (i <= '0')
                        continue;
                for (i = '0'; i < KS_TOKENS; i++)
                        if (hvp_le16(idx + 2 * i) != base + rel[i - '0'])
                                break;
                if (i == KS_TOKENS)
                        return true;
        }
        return false;
}

/* One candidate that passed tokens_plausible(): 1 decoded (*ret set), 0 not it, < 0 stop. */
static int try_candidate(const struct hvp_kmem *km, struct hvp_scan_budget *b, uint64_t d, uint64_t text_base,
                         struct hvp_symtab **ret, char *reason, size_t reason_size, int *last)
{
        struct ks_search s = { .budget = b };
        struct hvp_symtab *st = NULL;
        int r;

        if (!hvp_scan_take(b, HVP_SCAN_TABLES, 1))
                return -E2BIG;
        r = tokens_at(km, d, &s.tk);
        if (r == -ENOMEM)
                return hvp_fail(r, "out of memory");
        if (r < 0)
                return b->spent ? -E2BIG : 0;
        r = decode_from_tokens(&s, km, &st);
        search_free(&s);
        if (r == 0)
                r = check_text(st, text_base);
        if (r == 0) {
                *ret = st;
                return 1;
        }
        hvp_symtab_free(st);
        if (b->spent)
                return -E2BIG;
        if (r == -ENOMEM || r == -E2BIG)
                return r;
        /* kept: later failing reads overwrite the last error */
        snprintf(reason, reason_size, "%s", hvp_last_error());
        hvp_debug("%s", reason);
        *last = r;
        return 0;
}

/*
 * The scan reads the image in chunks that overlap by KS_TOKEN_SPAN: a digit run is
 * examined in the chunk where all it needs is present (the last chunk: up to the end).
 */
static int kallsyms_scan(const struct hvp_kmem *km, struct hvp_scan_budget *b, uint64_t text_base,
                         struct hvp_symtab **ret_symtab)
{
        _cleanup_free_ uint8_t *chunk = NULL;
        char reason[512] = "";
        int last = 0, r;

        chunk = malloc((size_t)HVP_MIN((uint64_t)KS_SCAN_CHUNK, km->end - km->start));
        if (!chunk)
                return hvp_fail(-ENOMEM, "out of memory");
        for (uint64_t a = km->start; km->end - a >= DIGIT_RUN_LEN;) {
                size_t len = (size_t)HVP_MIN((uint64_t)KS_SCAN_CHUNK, km->end - a);
                bool final = len == km->end - a;
                size_t limit = final ? len : len - KS_TOKEN_SPAN;       /* runs starting before it */
                const uint8_t *p = chunk, *end = chunk + len;

                read_span(km, a, chunk, len);
                if (b->spent)
                        return -E2BIG;
                while ((p = memmem(p, (size_t)(end - p), digit_run, DIGIT_RUN_LEN)) && (size_t)(p - chunk) < limit) {
                        size_t o = (size_t)(p - chunk);

                        p++;
                        if (!hvp_scan_take(b, HVP_SCAN_CANDIDATES, 1))
                                return -E2BIG;
                        if (!tokens_plausible(chunk, len, o, a + o, km->start))
                                continue;
                        r = try_candidate(km, b, a + o, text_base, ret_symtab, reason, sizeof(reason), &last);
                        if (r != 0)
                                return r < 0 ? r : 0;
                }
                if (final)
                        break;
                a += limit;
        }
        if (last)
                return hvp_fail(last, "%s", reason);
        return hvp_fail(-ENOENT, "no kallsyms token table in 0x%llx..0x%llx",
                        (unsigned long long)km->start, (unsigned long long)km->end);
}

int hvp_kallsyms_decode(const struct hvp_kmem *km, uint64_t text_base, struct hvp_symtab **ret_symtab)
{
        struct hvp_scan_budget local, *b;
        struct hvp_scan_kmem sk;
        int r;

        if (!km || !km->read || km->start >= km->end || !ret_symtab)
                return hvp_fail(-EINVAL, "kallsyms: bad arguments");
        b = km->budget;
        if (!b) {
                hvp_scan_budget_init(&local);
                b = &local;
        }
        hvp_scan_kmem_init(&sk, km, b);
        r = kallsyms_scan(&sk.km, b, text_base, ret_symtab);
        if (r < 0 && b->spent)
                return hvp_scan_budget_fail(b, "kallsyms search");
        return r;
}

size_t hvp_symtab_count(const struct hvp_symtab *st)
{
        return st ? st->count : 0;
}

const struct hvp_symbol *hvp_symtab_get(const struct hvp_symtab *st, size_t index)
{
        if (!st || index >= st->count)
                return NULL;
        return &st->syms[index];
}

/* The slot of name, or NULL. */
static const struct symtab_slot *symtab_slot_of(const struct hvp_symtab *st, const char *name)
{
        uint64_t h;
        size_t at;

        if (!st || !name || !st->hash)
                return NULL;
        h = name_hash(st, name);
        at = h & st->hash_mask;
        for (unsigned probe = 0; probe <= st->max_probe && st->hash[at].index; probe++) {
                const struct symtab_slot *e = &st->hash[at];

                if (e->tag == (uint32_t)(h >> 32) && !strcmp(st->syms[e->index - 1].name, name))
                        return e;
                at = (at + 1) & st->hash_mask;
        }
        return NULL;
}

const struct hvp_symbol *hvp_symtab_lookup(const struct hvp_symtab *st, const char *name)
{
        const struct symtab_slot *e = symtab_slot_of(st, name);

        return e ? &st->syms[e->index - 1] : NULL;
}

size_t hvp_symtab_lookup_all(const struct hvp_symtab *st, const char *name, const struct hvp_symbol **ret,
                             size_t max)
{
        const struct symtab_slot *e = symtab_slot_of(st, name);
        size_t n = 0;

        /* dup_next only points forward, so the chain ends within count steps */
        for (uint32_t i = e ? e->index : 0; i && n < st->count; i = st->dup_next[i - 1]) {
                if (n < max)
                        ret[n] = &st->syms[i - 1];
                n++;
        }
        return n;
}

const struct hvp_symbol *hvp_symtab_find_addr(const struct hvp_symtab *st, uint64_t addr)
{
        size_t lo = 0, hi;

        if (!st || st->count == 0 || st->syms[0].addr > addr)
                return NULL;
        /* the last symbol at or below addr ... */
        hi = st->count;
        while (hi - lo > 1) {
                size_t mid = lo + (hi - lo) / 2;

                if (st->syms[mid].addr <= addr)
                        lo = mid;
                else
                        hi = mid;
        }
        /* ... and of those at its address, the first, as the kernel's lookup picks */
        while (lo > 0 && st->syms[lo - 1].addr == st->syms[lo].addr)
                lo--;
        return &st->syms[lo];
}

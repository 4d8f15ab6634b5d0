/*
 * Parsers for QEMU human-monitor output. The formats are those of QEMU's
 * system/memory.c (mtree_print_mr, mtree_print_flatview), monitor/hmp-cmds
 * (gpa2hva) and target/i386/cpu-dump.c (x86_cpu_dump_state), as seen from
 * QEMU 7.2 through libvirt 9 (lines end in "\r\n").
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "common/util.h"
#include "vmi/hmp.h"

struct lines {
        const char *p, *end;
        unsigned no;
        char buf[HVP_HMP_MAX_LINE + 1];
};

static int lines_init(struct lines *l, const char *text, const char *what)
{
        size_t n = strnlen(text, HVP_HMP_MAX_OUTPUT + 1);

        if (n > HVP_HMP_MAX_OUTPUT)
                return hvp_fail(-E2BIG, "%s: monitor output longer than %u bytes", what,
                                HVP_HMP_MAX_OUTPUT);
        l->p = text;
        l->end = text + n;
        l->no = 0;
        return 0;
}

/* 1: l->buf holds the next line (without "\r\n"), 0: end of text, <0: error. */
static int lines_next(struct lines *l, const char *what)
{
        const char *nl;
        size_t n;

        if (l->p >= l->end)
                return 0;
        nl = memchr(l->p, '\n', (size_t)(l->end - l->p));
        n = nl ? (size_t)(nl - l->p) : (size_t)(l->end - l->p);
        l->no++;
        if (n > HVP_HMP_MAX_LINE)
                return hvp_fail(-EIO, "%s: line %u longer than %d bytes", what, l->no, HVP_HMP_MAX_LINE);
        memcpy(l->buf, l->p, n);
        while (n > 0 && (l->buf[n - 1] == '\r' || l->buf[n - 1] == ' '))
                n--;
        l->buf[n] = '\0';
        l->p = nl ? nl + 1 : l->end;
        return 1;
}

static bool starts_with(const char *s, const char *prefix)
{
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* At most 16 hex digits (leading zeros beyond that are refused too: QEMU never prints them). */
static bool parse_hex(const char **p, uint64_t *ret)
{
        const char *s = *p;
        uint64_t v = 0;
        int n = 0;

        while (hvp_hex_digit(*s) >= 0) {
                if (++n > 16)
                        return false;
                v = v << 4 | (uint64_t)hvp_hex_digit(*s);
                s++;
        }
        if (n == 0)
                return false;
        *p = s;
        *ret = v;
        return true;
}

static bool skip(const char **p, const char *lit)
{
        size_t n = strlen(lit);

        if (strncmp(*p, lit, n) != 0)
                return false;
        *p += n;
        return true;
}

/* A name token: up to the next space (or end), bounded. */
static bool parse_token(const char **p, char *out, size_t max)
{
        size_t n = strcspn(*p, " ");

        if (n == 0 || n >= max)
                return false;
        memcpy(out, *p, n);
        out[n] = '\0';
        *p += n;
        return true;
}

/* ------------------------------------------------------------------ mtree */

struct mtree_entry {
        unsigned indent;
        uint64_t start, end;            /* inclusive, as printed */
        char type[8];                   /* "ram", "rom", "romd", "ramd", "i/o" */
        bool nv;
        char name[HVP_HMP_MAX_NAME];
        bool alias, disabled, has_offset;
        char target[HVP_HMP_MAX_NAME];
        uint64_t target_start, offset;
};

/*
 * "  START-END (prio P, [nv-]TYPE): NAME[ @OFF][ accel]" (flat) or
 * "  START-END (prio P, TYPE): alias NAME @TARGET TS-TE[ [disabled]]" (tree).
 * Names with spaces (they exist: "usb3 port #1") keep their first word only; the
 * names that matter here are QOM ids and fixed region names without spaces.
 * Returns false for anything else.
 */
static bool parse_mtree_entry(const char *line, struct mtree_entry *e)
{
        const char *p = line;
        uint64_t te;
        size_t n;

        memset(e, 0, sizeof(*e));
        while (*p == ' ')
                p++;
        e->indent = (unsigned)(p - line);
        if (e->indent == 0 || !parse_hex(&p, &e->start) || !skip(&p, "-") || !parse_hex(&p, &e->end) ||
            e->end < e->start || !skip(&p, " (prio "))
                return false;
        if (*p == '-')
                p++;
        if (*p < '0' || *p > '9')
                return false;
        while (*p >= '0' && *p <= '9')
                p++;
        if (!skip(&p, ", "))
                return false;
        if (skip(&p, "nv-"))
                e->nv = true;
        n = strcspn(p, ")");
        if (n == 0 || n >= sizeof(e->type))
                return false;
        memcpy(e->type, p, n);
        e->type[n] = '\0';
        p += n;
        if (!skip(&p, "): "))
                return false;
        if (skip(&p, "alias ")) {
                e->alias = true;
                if (!parse_token(&p, e->name, sizeof(e->name)) || !skip(&p, " @") ||
                    !parse_token(&p, e->target, sizeof(e->target)) || !skip(&p, " ") ||
                    !parse_hex(&p, &e->target_start) || !skip(&p, "-") || !parse_hex(&p, &te))
                        return false;
        } else {
                if (!parse_token(&p, e->name, sizeof(e->name)))
                        return false;
                if (skip(&p, " @")) {
                        if (!parse_hex(&p, &e->offset))
                                return false;
                        e->has_offset = true;
                }
        }
        e->disabled = strstr(p, "[disabled]") != NULL;
        return true;
}

#define MAX_WINDOWS 4
#define MAX_MEMBERS 64

/* What the tree says: where main RAM appears in "memory", and what it is made of. */
struct ram_layout {
        struct { uint64_t start, end, target_start; } win[MAX_WINDOWS];
        size_t nr_win;
        char target[HVP_HMP_MAX_NAME];
        struct { char name[HVP_HMP_MAX_NAME]; uint64_t base, size; } member[MAX_MEMBERS];
        size_t nr_members;
        unsigned target_sections;
};

static bool is_main_ram_alias(const char *name)
{
        return strcmp(name, "ram-below-4g") == 0 || strcmp(name, "ram-above-4g") == 0;
}

static int tree_add_window(struct ram_layout *lay, const struct mtree_entry *e, unsigned line)
{
        if (lay->nr_win == 0)
                strcpy(lay->target, e->target);
        else if (strcmp(lay->target, e->target) != 0)
                return hvp_fail(-EIO, "info mtree line %u: %s points at %s, not %s", line, e->name,
                                e->target, lay->target);
        if (lay->nr_win >= MAX_WINDOWS)
                return hvp_fail(-EIO, "info mtree: more than %d main RAM aliases", MAX_WINDOWS);
        lay->win[lay->nr_win].start = e->start;
        lay->win[lay->nr_win].end = e->end;
        lay->win[lay->nr_win].target_start = e->target_start;
        lay->nr_win++;
        return 0;
}

static int tree_add_member(struct ram_layout *lay, const struct mtree_entry *e, uint64_t root_start,
                           unsigned line)
{
        if (e->start < root_start)
                return hvp_fail(-EIO, "info mtree line %u: %s lies before its container", line, e->name);
        for (size_t i = 0; i < lay->nr_members; i++)
                if (strcmp(lay->member[i].name, e->name) == 0)
                        return hvp_fail(-EIO, "info mtree: RAM region name %s is ambiguous", e->name);
        if (lay->nr_members >= MAX_MEMBERS)
                return hvp_fail(-E2BIG, "info mtree: more than %d RAM regions in %s", MAX_MEMBERS,
                                lay->target);
        strcpy(lay->member[lay->nr_members].name, e->name);
        lay->member[lay->nr_members].base = e->start - root_start;
        lay->member[lay->nr_members].size = e->end - e->start + 1;  /* end < UINT64_MAX: see caller */
        lay->nr_members++;
        return 0;
}

static int parse_tree(const char *tree, struct ram_layout *lay)
{
        enum { NONE, MEMORY_AS, TARGET_MR, OTHER } sect = NONE;
        struct mtree_entry e;
        struct lines l;
        uint64_t root_start = 0;
        bool have_root = false;
        int r;

        r = lines_init(&l, tree, "info mtree");
        if (r < 0)
                return r;
        while ((r = lines_next(&l, "info mtree")) > 0) {
                if (l.buf[0] == '\0') {
                        sect = NONE;
                        continue;
                }
                if (starts_with(l.buf, "address-space: ")) {
                        sect = strcmp(l.buf + 15, "memory") == 0 ? MEMORY_AS : OTHER;
                        continue;
                }
                if (starts_with(l.buf, "memory-region: ")) {
                        sect = OTHER;
                        if (lay->nr_win > 0 && strcmp(l.buf + 15, lay->target) == 0) {
                                sect = TARGET_MR;
                                have_root = false;
                                lay->target_sections++;
                        }
                        continue;
                }
                if (sect == NONE || sect == OTHER || !parse_mtree_entry(l.buf, &e))
                        continue;
                if (sect == MEMORY_AS) {
                        if (e.alias && !e.disabled && is_main_ram_alias(e.name)) {
                                r = tree_add_window(lay, &e, l.no);
                                if (r < 0)
                                        return r;
                        }
                        continue;
                }
                /* TARGET_MR: the main RAM region and its subregions. */
                if (!have_root) {
                        root_start = e.start;
                        have_root = true;
                }
                if (e.alias || e.disabled || e.nv || strcmp(e.type, "ram") != 0)
                        continue;
                if (e.end == UINT64_MAX)
                        return hvp_fail(-EIO, "info mtree line %u: RAM region %s ends at 2^64", l.no,
                                        e.name);
                r = tree_add_member(lay, &e, root_start, l.no);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        if (lay->nr_win == 0)
                return hvp_fail(-EIO, "info mtree: no ram-below-4g/ram-above-4g alias in address space memory");
        if (lay->target_sections != 1)
                return hvp_fail(-EIO, "info mtree: %u sections describe main RAM region %s",
                                lay->target_sections, lay->target);
        if (lay->nr_members == 0)
                return hvp_fail(-EIO, "info mtree: main RAM region %s has no RAM", lay->target);
        return 0;
}

/* Is this flat range main RAM? 1 yes, 0 no (device RAM), <0 inconsistent. */
static int flat_is_main_ram(const struct ram_layout *lay, const struct mtree_entry *e,
                            uint64_t *ret_offset_in_target)
{
        size_t m, w;
        uint64_t want;

        for (m = 0; m < lay->nr_members; m++)
                if (strcmp(lay->member[m].name, e->name) == 0)
                        break;
        if (m == lay->nr_members)
                return 0;
        for (w = 0; w < lay->nr_win; w++)
                if (e->start >= lay->win[w].start && e->end <= lay->win[w].end)
                        break;
        if (w == lay->nr_win)
                return 0;       /* main RAM mapped outside its aliases: not ours to touch */
        want = lay->win[w].target_start + (e->start - lay->win[w].start);
        if (want < lay->member[m].base || want - lay->member[m].base != e->offset ||
            !hvp_range_within(e->offset, e->end - e->start + 1, 0, lay->member[m].size))
                return hvp_fail(-EIO, "info mtree -f: %s at 0x%llx has offset 0x%llx, the aliases say 0x%llx",
                                e->name, (unsigned long long)e->start, (unsigned long long)e->offset,
                                (unsigned long long)(want - lay->member[m].base));
        *ret_offset_in_target = e->offset;
        return 1;
}

int hvp_hmp_find_flat_ram(const char *flat, const char *name, uint64_t *ret_gpa, uint64_t *ret_size)
{
        bool block_is_memory = false, found = false;
        struct mtree_entry e;
        struct lines l;
        int r;

        r = lines_init(&l, flat, "info mtree -f");
        if (r < 0)
                return r;
        while ((r = lines_next(&l, "info mtree -f")) > 0) {
                if (starts_with(l.buf, "FlatView #")) {
                        block_is_memory = false;
                        continue;
                }
                if (starts_with(l.buf, " AS \"memory\", ")) {
                        block_is_memory = true;
                        continue;
                }
                if (!block_is_memory || !parse_mtree_entry(l.buf, &e) || strcmp(e.name, name) != 0)
                        continue;
                if (strcmp(e.type, "ram") != 0 || e.has_offset || found || e.end == UINT64_MAX)
                        return hvp_fail(-EIO, "info mtree -f line %u: %s is not one whole RAM range", l.no, name);
                *ret_gpa = e.start;
                *ret_size = e.end - e.start + 1;
                found = true;
        }
        if (r < 0)
                return r;
        if (!found)
                return hvp_fail(-ENOENT, "%s is not mapped in the guest's address space (BAR not enabled?)", name);
        return 0;
}

int hvp_hmp_parse_ram(const char *tree, const char *flat, struct hvp_hmp_ram *ret_ram, size_t max,
                      size_t *ret_n)
{
        struct ram_layout lay = { 0 };
        struct mtree_entry e;
        struct lines l;
        bool in_block = false, block_is_memory = false, in_ranges = false;
        unsigned memory_views = 0;
        size_t n = 0;
        int r;

        r = parse_tree(tree, &lay);
        if (r < 0)
                return r;
        r = lines_init(&l, flat, "info mtree -f");
        if (r < 0)
                return r;
        while ((r = lines_next(&l, "info mtree -f")) > 0) {
                uint64_t off = 0;

                if (starts_with(l.buf, "FlatView #")) {
                        in_block = true;
                        block_is_memory = false;
                        in_ranges = false;
                        continue;
                }
                if (!in_block)
                        continue;
                if (starts_with(l.buf, " AS \"")) {
                        if (in_ranges)
                                return hvp_fail(-EIO, "info mtree -f line %u: AS after ranges", l.no);
                        if (starts_with(l.buf, " AS \"memory\", ")) {
                                block_is_memory = true;
                                memory_views++;
                        }
                        continue;
                }
                if (starts_with(l.buf, " Root memory region: ")) {
                        in_ranges = true;
                        continue;
                }
                if (!block_is_memory || !in_ranges || !parse_mtree_entry(l.buf, &e))
                        continue;
                if (strcmp(e.type, "ram") != 0 || e.nv)
                        continue;
                if (e.end == UINT64_MAX)
                        return hvp_fail(-EIO, "info mtree -f line %u: RAM ends at 2^64", l.no);
                r = flat_is_main_ram(&lay, &e, &off);
                if (r < 0)
                        return r;
                if (r == 0)
                        continue;
                if (n > 0 && e.start <= ret_ram[n - 1].gpa + ret_ram[n - 1].size - 1)
                        return hvp_fail(-EIO, "info mtree -f line %u: ranges out of order", l.no);
                if (n >= max)
                        return hvp_fail(-E2BIG, "more than %zu guest RAM ranges", max);
                ret_ram[n].gpa = e.start;
                ret_ram[n].size = e.end - e.start + 1;
                strcpy(ret_ram[n].region, e.name);
                ret_ram[n].region_offset = off;
                n++;
        }
        if (r < 0)
                return r;
        if (memory_views != 1)
                return hvp_fail(-EIO, "info mtree -f: %u flat views of address space memory", memory_views);
        if (n == 0)
                return hvp_fail(-EIO, "info mtree -f: no main RAM (%s) in address space memory", lay.target);
        *ret_n = n;
        return 0;
}

/* ---------------------------------------------------------------- gpa2hva */

int hvp_hmp_parse_gpa2hva(const char *out, uint64_t gpa, const char *region, uint64_t *ret_hva)
{
        char name[HVP_HMP_MAX_NAME];
        const char *p = out;
        uint64_t a, hva;
        size_t n;

        if (strnlen(out, HVP_HMP_MAX_LINE + 1) > HVP_HMP_MAX_LINE)
                return hvp_fail(-EIO, "gpa2hva: reply too long");
        while (*p == '\r' || *p == '\n' || *p == ' ')
                p++;
        if (!skip(&p, "Host virtual address for 0x") || !parse_hex(&p, &a) || !skip(&p, " ("))
                goto bad;
        n = strcspn(p, ")\r\n");
        if (p[n] != ')' || n == 0 || n >= sizeof(name))
                goto bad;
        memcpy(name, p, n);
        name[n] = '\0';
        p += n;
        if (!skip(&p, ") is 0x") || !parse_hex(&p, &hva))
                goto bad;
        while (*p == '\r' || *p == '\n' || *p == ' ')
                p++;
        if (*p)
                goto bad;
        if (a != gpa || strcmp(name, region) != 0)
                return hvp_fail(-EIO, "gpa2hva 0x%llx answered for 0x%llx (%s), expected region %s",
                                (unsigned long long)gpa, (unsigned long long)a, name, region);
        *ret_hva = hva;
        return 0;
bad:
        n = strcspn(out + strspn(out, "\r\n "), "\r\n");
        return hvp_fail(-EIO, "gpa2hva 0x%llx: unexpected reply \"%.*s\"", (unsigned long long)gpa,
                        (int)HVP_MIN(n, 200), out + strspn(out, "\r\n "));
}

/* -------------------------------------------------------------- registers */

enum reg_field {
        F_RIP, F_RSP, F_RFL, F_HLT, F_CR0, F_CR2, F_CR3, F_CR4, F_EFER,
        F_CS, F_FS, F_GS, F_GDT, F_IDT, F_COUNT
};

static const char *const field_name[F_COUNT] = {
        "RIP", "RSP", "RFL", "HLT", "CR0", "CR2", "CR3", "CR4", "EFER",
        "CS", "FS", "GS", "GDT", "IDT",
};

struct cpu_block {
        struct hvp_vcpu_regs *regs;
        unsigned seen;          /* bit per enum reg_field */
        unsigned index;
};

static int set_field(struct cpu_block *c, enum reg_field f, unsigned line)
{
        if (c->seen & (1u << f))
                return hvp_fail(-EIO, "info registers line %u: CPU#%u has %s twice", line, c->index,
                                field_name[f]);
        c->seen |= 1u << f;
        return 0;
}

static int key_value(struct cpu_block *c, const char *key, uint64_t v, unsigned line)
{
        static const struct { const char *key; enum reg_field f; } keys[] = {
                { "RIP", F_RIP }, { "EIP", F_RIP }, { "RSP", F_RSP }, { "ESP", F_RSP },
                { "RFL", F_RFL }, { "EFL", F_RFL }, { "HLT", F_HLT }, { "CR0", F_CR0 },
                { "CR2", F_CR2 }, { "CR3", F_CR3 }, { "CR4", F_CR4 }, { "EFER", F_EFER },
        };
        struct hvp_vcpu_regs *r = c->regs;
        int e;

        for (size_t i = 0; i < HVP_ARRAY_SIZE(keys); i++) {
                if (strcmp(key, keys[i].key) != 0)
                        continue;
                e = set_field(c, keys[i].f, line);
                if (e < 0)
                        return e;
                switch (keys[i].f) {
                case F_RIP: r->rip = v; break;
                case F_RSP: r->rsp = v; break;
                case F_RFL: r->rflags = v; break;
                case F_HLT: r->halted = v != 0; break;
                case F_CR0: r->cr0 = v; break;
                case F_CR2: r->cr2 = v; break;
                case F_CR3: r->cr3 = v; break;
                case F_CR4: r->cr4 = v; break;
                case F_EFER: r->efer = v; break;
                default: break;
                }
                return 0;
        }
        return 0;       /* a register hvpatch does not need */
}

/* "CS =0010 0000000000000000 ffffffff 00af9b00 DPL=0 CS64 [-RA]": selector, base, limit, flags. */
static int parse_segment(struct cpu_block *c, const char *line, unsigned no)
{
        uint64_t sel, base, limit, flags;
        const char *p = line;
        char name[4];
        size_t n = strcspn(p, " =");
        int r;

        if (n == 0 || n >= sizeof(name))
                return 0;
        memcpy(name, p, n);
        name[n] = '\0';
        p += n;
        while (*p == ' ')
                p++;
        if (!skip(&p, "=") || !parse_hex(&p, &sel) || !skip(&p, " ") || !parse_hex(&p, &base) ||
            !skip(&p, " ") || !parse_hex(&p, &limit) || !skip(&p, " ") || !parse_hex(&p, &flags))
                return hvp_fail(-EIO, "info registers line %u: bad segment line", no);
        if (sel > 0xffff || limit > 0xffffffff)
                return hvp_fail(-EIO, "info registers line %u: bad %s selector or limit", no, name);
        if (strcmp(name, "CS") == 0) {
                r = set_field(c, F_CS, no);
                c->regs->cs_sel = sel;
        } else if (strcmp(name, "FS") == 0) {
                r = set_field(c, F_FS, no);
                c->regs->fs_base = base;
        } else if (strcmp(name, "GS") == 0) {
                r = set_field(c, F_GS, no);
                c->regs->gs_base = base;
        } else {
                r = 0;
        }
        return r;
}

/* "GDT=     fffffe0000001000 0000007f" */
static int parse_table(struct cpu_block *c, const char *line, unsigned no)
{
        bool gdt = line[0] == 'G';
        const char *p = line + 4;
        uint64_t base, limit;
        int r;

        while (*p == ' ')
                p++;
        if (!parse_hex(&p, &base) || !skip(&p, " ") || !parse_hex(&p, &limit) || limit > 0xffffffff)
                return hvp_fail(-EIO, "info registers line %u: bad %.3s line", no, line);
        r = set_field(c, gdt ? F_GDT : F_IDT, no);
        if (r < 0)
                return r;
        if (gdt) {
                c->regs->gdt_base = base;
                c->regs->gdt_limit = (uint32_t)limit;
        } else {
                c->regs->idt_base = base;
                c->regs->idt_limit = (uint32_t)limit;
        }
        return 0;
}

/* "RIP=ffffffffafc592eb RFL=00000246 [---Z-P-] CPL=0 ...": KEY=HEX pairs ("R8 =" too). */
static int parse_pairs(struct cpu_block *c, const char *line, unsigned no)
{
        const char *p = line;
        char key[8];
        uint64_t v;
        int r;

        while (*p) {
                size_t n;

                while (*p == ' ')
                        p++;
                n = 0;
                while ((p[n] >= 'A' && p[n] <= 'Z') || (p[n] >= '0' && p[n] <= '9'))
                        n++;
                if (n > 0 && n < sizeof(key)) {
                        const char *q = p + n;

                        memcpy(key, p, n);
                        key[n] = '\0';
                        while (*q == ' ')
                                q++;
                        if (*q == '=') {
                                q++;
                                if (!parse_hex(&q, &v))
                                        return hvp_fail(-EIO, "info registers line %u: bad value of %s",
                                                        no, key);
                                r = key_value(c, key, v, no);
                                if (r < 0)
                                        return r;
                                p = q;
                                continue;
                        }
                }
                p += strcspn(p, " ");
        }
        return 0;
}

static bool is_segment_line(const char *s)
{
        static const char *const segs[] = { "ES", "CS", "SS", "DS", "FS", "GS", "LDT", "TR" };

        for (size_t i = 0; i < HVP_ARRAY_SIZE(segs); i++) {
                size_t n = strlen(segs[i]);
                const char *p = s + n;

                if (strncmp(s, segs[i], n) != 0)
                        continue;
                while (*p == ' ')
                        p++;
                if (*p == '=')
                        return true;
        }
        return false;
}

static int finish_cpu(const struct cpu_block *c)
{
        for (int f = 0; f < F_COUNT; f++)
                if (!(c->seen & (1u << f)))
                        return hvp_fail(-EIO, "info registers: CPU#%u shows no %s", c->index, field_name[f]);
        return 0;
}

int hvp_hmp_parse_registers(const char *out, struct hvp_vcpu_regs *regs, unsigned max, unsigned *ret_n)
{
        struct cpu_block c = { 0 };
        struct lines l;
        unsigned n = 0;
        bool have_index = false;
        int r;

        r = lines_init(&l, out, "info registers");
        if (r < 0)
                return r;
        while ((r = lines_next(&l, "info registers")) > 0) {
                const char *s = l.buf;

                if (starts_with(s, "CPU#")) {
                        const char *p = s + 4;
                        unsigned idx = 0;
                        int digits = 0;

                        while (*p >= '0' && *p <= '9' && digits < 7) {
                                idx = idx * 10 + (unsigned)(*p++ - '0');
                                digits++;
                        }
                        if (digits == 0 || (*p >= '0' && *p <= '9'))
                                return hvp_fail(-EIO, "info registers line %u: bad CPU header", l.no);
                        if (n > 0) {
                                r = finish_cpu(&c);
                                if (r < 0)
                                        return r;
                        }
                        if (have_index && idx <= c.index)
                                return hvp_fail(-EIO, "info registers line %u: CPU#%u after CPU#%u",
                                                l.no, idx, c.index);
                        if (n >= max)
                                return hvp_fail(-E2BIG, "info registers: more than %u vCPUs", max);
                        c.regs = &regs[n++];
                        memset(c.regs, 0, sizeof(*c.regs));
                        c.seen = 0;
                        c.index = idx;
                        have_index = true;
                        continue;
                }
                if (n == 0 || s[0] == '\0')
                        continue;
                if (is_segment_line(s))
                        r = parse_segment(&c, s, l.no);
                else if (starts_with(s, "GDT=") || starts_with(s, "IDT="))
                        r = parse_table(&c, s, l.no);
                else
                        r = parse_pairs(&c, s, l.no);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        if (n == 0)
                return hvp_fail(-EIO, "info registers: no CPU in the output");
        r = finish_cpu(&c);
        if (r < 0)
                return r;
        *ret_n = n;
        return 0;
}

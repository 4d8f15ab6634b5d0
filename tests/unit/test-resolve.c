/*
 * Symbols a bundle names, resolved against kallsyms (hvp_manifest_resolve): a name
 * the kernel defines at several addresses is refused with every address unless the
 * manifest pins one (<pin symbol= near= offset=>), and a pin must land on one of them.
 *
 * 1. Synthetic tables in the real kallsyms format (kallsyms-gen.h).
 * 2. Debian's real kernel (the vmlinux images/fetch-kernel.sh leaves, found as
 *    test-kallsyms finds it; missing is a failure): a real static function name the
 *    kernel defines twice, checked against the kernel's own /proc/kallsyms as a guest
 *    listed it (kallsyms-offsets.txt, images/capture-kallsyms.sh).
 * 3. The manifest's <pin> element: schema, offsets, bounds.
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
#include <hvpatch/patch.h>

#include "fixture-dir.h"
#include "kallsyms-gen.h"
#include "vmlinux-kmem.h"
#include "patcher/manifest.h"

#define TEXT 0xffffffff81000000ull

/* ------------------------------------------------------------- synthetic -- */

struct synth {
        struct ksgen_sym syms[256];
        char names[256][32];
        size_t n;
        struct ksgen g;
        struct ksgen_mem mem;
        struct hvp_symtab *st;
};

static void add(struct synth *s, uint64_t off, char type, const char *name)
{
        assert_true(s->n < 256);
        snprintf(s->names[s->n], sizeof(s->names[s->n]), "%s", name);
        s->syms[s->n] = (struct ksgen_sym){ TEXT + off, type, s->names[s->n], false };
        s->n++;
}

/*
 * _text; show_info three times (static functions of three files), alias_fn twice at
 * one address, near_twice twice, many_copies 20 times (more than a refusal lists).
 */
static struct synth *synth_open(void)
{
        struct synth *s = calloc(1, sizeof(*s));
        struct ksgen_opts o = { .layout = KSGEN_SEQS, .pair_tokens = 40, .va = TEXT, .tables_off = 0x1000, .tail = 64 };
        struct hvp_kmem km;

        assert_non_null(s);
        add(s, 0, 'T', "_text");
        add(s, 0x40, 'T', "_stext");
        add(s, 0x100000, 't', "show_info");
        add(s, 0x100100, 'T', "anchor_a");
        add(s, 0x100200, 't', "alias_fn");
        add(s, 0x100200, 't', "alias_fn");
        add(s, 0x100300, 't', "near_twice");
        add(s, 0x200000, 'T', "anchor_b");
        add(s, 0x200040, 't', "show_info");
        add(s, 0x200300, 't', "near_twice");
        for (unsigned i = 0; i < 20; i++)
                add(s, 0x250000 + 0x40ull * i, 't', "many_copies");
        add(s, 0x300000, 't', "show_info");
        add(s, 0x300100, 'T', "unique_fn");
        /* ordinary functions: every digit occurs, as in a real table (the decoder looks for them) */
        for (unsigned i = 0; i < 150; i++) {
                char name[32];

                snprintf(name, sizeof(name), "do_thing_%u", i * 7919);
                add(s, 0x380000 + 0x20ull * i, "tT"[i % 2], name);
        }
        add(s, 0x400000, 'T', "_etext");
        ksgen_build(s->syms, s->n, &o, &s->g);
        s->mem = (struct ksgen_mem){ s->g.data, s->g.size, s->g.va };
        km = (struct hvp_kmem){ .read = ksgen_mem_read, .ctx = &s->mem, .start = s->g.va, .end = s->g.va + s->g.size };
        if (hvp_kallsyms_decode(&km, TEXT, &s->st) < 0)
                fail_msg("decoding the synthetic tables: %s", hvp_last_error());
        return s;
}

static void synth_close(struct synth *s)
{
        hvp_symtab_free(s->st);
        ksgen_free(&s->g);
        free(s);
}

static void test_lookup_all(void **state)
{
        struct synth *s = synth_open();
        const struct hvp_symbol *all[8];

        (void)state;
        assert_int_equal(hvp_symtab_lookup_all(s->st, "show_info", all, 8), 3);
        /* in kallsyms order; the plain lookup still gives the first */
        assert_int_equal(all[0]->addr, TEXT + 0x100000);
        assert_int_equal(all[1]->addr, TEXT + 0x200040);
        assert_int_equal(all[2]->addr, TEXT + 0x300000);
        assert_ptr_equal(hvp_symtab_lookup(s->st, "show_info"), all[0]);
        assert_int_equal(hvp_symtab_lookup_all(s->st, "unique_fn", all, 8), 1);
        assert_int_equal(all[0]->addr, TEXT + 0x300100);
        assert_int_equal(hvp_symtab_lookup_all(s->st, "no_such", all, 8), 0);
        /* max bounds what is stored, not the count */
        assert_int_equal(hvp_symtab_lookup_all(s->st, "many_copies", all, 2), 20);
        assert_int_equal(all[1]->addr, TEXT + 0x250040);
        assert_int_equal(hvp_symtab_lookup_all(s->st, "many_copies", NULL, 0), 20);
        synth_close(s);
}

static void test_unique_and_missing(void **state)
{
        struct synth *s = synth_open();
        struct hvp_manifest m = { 0 };
        uint64_t a = 0;

        (void)state;
        assert_int_equal(hvp_manifest_resolve(&m, s->st, "unique_fn", &a), 0);
        assert_int_equal(a, TEXT + 0x300100);
        /* two names at one address are one function, not an ambiguity */
        assert_int_equal(hvp_manifest_resolve(&m, s->st, "alias_fn", &a), 0);
        assert_int_equal(a, TEXT + 0x100200);
        assert_int_equal(hvp_manifest_resolve(&m, s->st, "no_such_fn", &a), -ENOENT);
        assert_non_null(strstr(hvp_last_error(), "no_such_fn"));
        assert_int_equal(hvp_manifest_resolve(NULL, s->st, "unique_fn", &a), 0);
        synth_close(s);
}

/* consistency="function": a function's range is [its symbol, the next symbol at a greater address). */
static void test_function_bounds(void **state)
{
        struct synth *s = synth_open();
        uint64_t start = 0, len = 0;

        (void)state;
        /* two names at one address: the end is the next address, not the alias */
        assert_int_equal(manifest_function_bounds(s->st, TEXT + 0x100200, &start, &len), 0);
        assert_int_equal(start, TEXT + 0x100200);
        assert_int_equal(len, 0x100);
        /* an address inside the body gives the same function */
        assert_int_equal(manifest_function_bounds(s->st, TEXT + 0x20003f, &start, &len), 0);
        assert_int_equal(start, TEXT + 0x200000);
        assert_int_equal(len, 0x40);
        /* the next symbol further than 64 KiB: refused, naming the symbol */
        start = len = 7;
        assert_int_equal(manifest_function_bounds(s->st, TEXT + 0x100300, &start, &len), -ERANGE);
        assert_non_null(strstr(hvp_last_error(), "the end of near_twice (0xffffffff81100300) cannot be determined"));
        assert_int_equal(start, 7);
        assert_int_equal(len, 7);
        /* the last symbol has no next one; below the first there is no symbol */
        assert_int_equal(manifest_function_bounds(s->st, TEXT + 0x400000, &start, &len), -ERANGE);
        assert_non_null(strstr(hvp_last_error(), "_etext"));
        assert_int_equal(manifest_function_bounds(s->st, TEXT - 1, &start, &len), -ERANGE);
        assert_non_null(strstr(hvp_last_error(), "no symbol holds"));
        synth_close(s);
}

static void test_ambiguous_refused(void **state)
{
        struct synth *s = synth_open();
        struct hvp_manifest m = { 0 };
        uint64_t a = 0x1234;
        const char *e;

        (void)state;
        assert_int_equal(hvp_manifest_resolve(&m, s->st, "show_info", &a), -ENOTUNIQ);
        assert_int_equal(a, 0x1234);                    /* untouched */
        e = hvp_last_error();
        print_message("%s\n", e);
        assert_non_null(strstr(e, "show_info is defined 3 times"));
        assert_non_null(strstr(e, "0xffffffff81100000 (_text+0x100000)"));
        assert_non_null(strstr(e, "0xffffffff81200040 (_text+0x200040)"));
        assert_non_null(strstr(e, "0xffffffff81300000 (_text+0x300000)"));
        assert_non_null(strstr(e, "<pin symbol=\"show_info\""));
        /* more copies than a message lists: the first ones and how many more */
        assert_int_equal(hvp_manifest_resolve(&m, s->st, "many_copies", &a), -ENOTUNIQ);
        assert_non_null(strstr(hvp_last_error(), "defined 20 times"));
        assert_non_null(strstr(hvp_last_error(), "and 4 more"));
        synth_close(s);
}

static void test_pins(void **state)
{
        struct synth *s = synth_open();
        struct hvp_pin pins[] = {
                { "show_info", "anchor_b", 0x40, 7 },           /* the second copy */
                { "many_copies", "_text", 0x250000 + 0x40 * 19, 8 },    /* the 20th: past the listed ones */
                { "unique_fn", "anchor_a", 0x200000, 9 },       /* a pin of a unique name is checked too */
        };
        struct hvp_manifest m = { .pins = pins, .nr_pins = 3 };
        uint64_t a = 0;

        (void)state;
        assert_int_equal(hvp_manifest_resolve(&m, s->st, "show_info", &a), 0);
        assert_int_equal(a, TEXT + 0x200040);
        pins[0] = (struct hvp_pin){ "show_info", "anchor_a", -0x100, 7 };       /* the first, from above */
        assert_int_equal(hvp_manifest_resolve(&m, s->st, "show_info", &a), 0);
        assert_int_equal(a, TEXT + 0x100000);
        assert_int_equal(hvp_manifest_resolve(&m, s->st, "many_copies", &a), 0);
        assert_int_equal(a, TEXT + 0x250000 + 0x40 * 19);
        assert_int_equal(hvp_manifest_resolve(&m, s->st, "unique_fn", &a), 0);
        assert_int_equal(a, TEXT + 0x300100);

        /* a pin never invents an address: one byte off is refused, naming the real ones */
        a = 0x55;
        pins[0].offset = -0xff;
        assert_int_equal(hvp_manifest_resolve(&m, s->st, "show_info", &a), -EINVAL);
        assert_int_equal(a, 0x55);
        assert_non_null(strstr(hvp_last_error(), "manifest line 7"));
        assert_non_null(strstr(hvp_last_error(), "anchor_a-0xff"));
        assert_non_null(strstr(hvp_last_error(), "not one of its addresses"));
        pins[2].offset = 0;
        assert_int_equal(hvp_manifest_resolve(&m, s->st, "unique_fn", &a), -EINVAL);
        /* near= must itself be unique, and known */
        pins[0] = (struct hvp_pin){ "show_info", "near_twice", 0x100000 - 0x100300, 7 };
        assert_int_equal(hvp_manifest_resolve(&m, s->st, "show_info", &a), -EINVAL);
        assert_non_null(strstr(hvp_last_error(), "near=near_twice is itself defined more than once"));
        pins[0] = (struct hvp_pin){ "show_info", "no_anchor", 0, 7 };
        assert_int_equal(hvp_manifest_resolve(&m, s->st, "show_info", &a), -ENOENT);
        assert_non_null(strstr(hvp_last_error(), "no_anchor"));
        assert_int_equal(a, 0x55);
        synth_close(s);
}

/* --------------------------------------------------------- real kernel -- */

/* The kernel's own /proc/kallsyms offsets of name (kallsyms-offsets.txt), up to max. */
static size_t oracle_offsets(const char *dir, const char *name, uint64_t *out, size_t max)
{
        char path[4200], line[700], sym[600], type;
        unsigned long long off;
        size_t n = 0;
        FILE *f;

        snprintf(path, sizeof(path), "%s/kallsyms-offsets.txt", dir);
        f = fopen(path, "r");
        if (!f)
                fail_msg("%s: missing: images/capture-kallsyms.sh %s writes it (scripts/test.sh runs it)", path, dir);
        while (fgets(line, sizeof(line), f))
                if (line[0] != '#' && sscanf(line, "%llx %c %599s", &off, &type, sym) == 3 && strcmp(sym, name) == 0 &&
                    n < max)
                        out[n++] = off;
        fclose(f);
        return n;
}

static void test_real_kernel_duplicate_static(void **state)
{
        char dir[4096], path[4200], want[64];
        struct vmlinux v;
        struct hvp_kmem km;
        struct hvp_symtab *st = NULL;
        const struct hvp_symbol *copies[4], *text, *dup = NULL, *anchor = NULL;
        uint64_t text_va = 0, oracle[4], a = 0;
        size_t n = 0, n_oracle, names_twice = 0;
        const char *why;

        (void)state;
        if (!hvp_fixture_kernel_dir(dir, sizeof(dir)))
                fail_msg("no Debian kernel: set HVP_KERNEL_DIR or run images/fetch-kernel.sh");
        snprintf(path, sizeof(path), "%s/vmlinux", dir);
        why = vmlinux_open(path, &v);
        if (why)
                fail_msg("%s: %s (images/fetch-kernel.sh extracts it)", path, why);
        assert_true(vmlinux_section_addr(&v, ".text", &text_va));
        km = vmlinux_kmem(&v);
        if (hvp_kallsyms_decode(&km, text_va, &st) < 0)
                fail_msg("decoding %s: %s", path, hvp_last_error());
        text = hvp_symtab_lookup(st, "_text");
        assert_non_null(text);

        /* Static functions ('t') defined exactly twice, at two addresses: the first found is the test's. */
        for (size_t i = 0; i < hvp_symtab_count(st); i++) {
                const struct hvp_symbol *s = hvp_symtab_get(st, i);

                if (s->type != 't' || hvp_symtab_lookup_all(st, s->name, copies, 4) != 2 ||
                    copies[0]->addr == copies[1]->addr || copies[0] != s)
                        continue;
                names_twice++;
                if (!dup)
                        dup = s;
        }
        print_message("%s: %zu static function names defined twice; testing %s\n", dir, names_twice,
                      dup ? dup->name : "(none)");
        assert_true(names_twice > 10);          /* Debian's 6.1 has hundreds */
        assert_non_null(dup);
        n = hvp_symtab_lookup_all(st, dup->name, copies, 4);
        assert_int_equal(n, 2);
        /* The oracle: the kernel's own /proc/kallsyms lists the name at the same two offsets. */
        n_oracle = oracle_offsets(dir, dup->name, oracle, 4);
        assert_int_equal(n_oracle, 2);
        assert_int_equal(copies[0]->addr - text->addr, oracle[0]);
        assert_int_equal(copies[1]->addr - text->addr, oracle[1]);

        {
                struct hvp_manifest m = { 0 };

                assert_int_equal(hvp_manifest_resolve(&m, st, dup->name, &a), -ENOTUNIQ);
                print_message("%s\n", hvp_last_error());
                assert_non_null(strstr(hvp_last_error(), dup->name));
                for (size_t i = 0; i < 2; i++) {
                        snprintf(want, sizeof(want), "0x%llx (_text+0x%llx)", (unsigned long long)copies[i]->addr,
                                 (unsigned long long)oracle[i]);
                        assert_non_null(strstr(hvp_last_error(), want));
                }
        }
        /* Pinned: the second copy, relative to _text and to the unique symbol just before it. */
        for (size_t i = 0; i < hvp_symtab_count(st); i++) {
                const struct hvp_symbol *s = hvp_symtab_get(st, i);

                if (s->addr >= copies[1]->addr)
                        break;
                if (hvp_symtab_lookup_all(st, s->name, NULL, 0) == 1)
                        anchor = s;
        }
        assert_non_null(anchor);
        {
                struct hvp_pin pin = { dup->name, "_text", (int64_t)oracle[1], 3 };
                struct hvp_manifest m = { .pins = &pin, .nr_pins = 1 };

                assert_int_equal(hvp_manifest_resolve(&m, st, dup->name, &a), 0);
                assert_int_equal(a, copies[1]->addr);
                pin = (struct hvp_pin){ dup->name, anchor->name, (int64_t)(copies[1]->addr - anchor->addr), 3 };
                assert_int_equal(hvp_manifest_resolve(&m, st, dup->name, &a), 0);
                assert_int_equal(a, copies[1]->addr);
                pin.offset += 1;
                assert_int_equal(hvp_manifest_resolve(&m, st, dup->name, &a), -EINVAL);
        }
        hvp_symtab_free(st);
        vmlinux_close(&v);
}

/* ------------------------------------------------------------ manifest -- */

#define HEAD "<patch xmlns=\"urn:hvpatch:manifest:1\" id=\"p\" series=\"s\" sequence=\"1\">" \
             "<target os=\"linux\"><build-id>0102030405</build-id></target>"
#define SITES "<sites><replace symbol=\"show_info\" offset=\"0\" expected=\"90\" new=\"cc\"/></sites></patch>"

static int open_manifest(const char *xml, struct hvp_bundle **ret)
{
        struct hvp_bundle_input in = { HVP_BUNDLE_MANIFEST, xml, strlen(xml) };
        uint8_t *buf;
        size_t len;
        int r;

        assert_int_equal(hvp_bundle_write(&in, 1, &buf, &len), 0);
        r = hvp_bundle_open_mem(buf, len, ret);
        free(buf);
        return r;
}

static void test_manifest_pins(void **state)
{
        static const struct { const char *pins; int want; const char *reason; } bad[] = {
                { "<pin symbol=\"a\" near=\"b\" offset=\"0x\"/>", -EINVAL, "schema" },
                { "<pin symbol=\"a\" near=\"b\" offset=\"--4\"/>", -EINVAL, "schema" },
                { "<pin symbol=\"a\" offset=\"4\"/>", -EINVAL, "schema" },
                { "<pin symbol=\"a\" near=\"b\" offset=\"0x40000001\"/>", -EINVAL, "within" },
                { "<pin symbol=\"a\" near=\"b\" offset=\"-1073741825\"/>", -EINVAL, "within" },
                { "<pin symbol=\"a\" near=\"b\" offset=\"1\"/><pin symbol=\"a\" near=\"c\" offset=\"2\"/>", -EINVAL,
                  "pinned twice" },
                /* a pin must name a symbol the bundle uses (a site here; imports: tests/live/test_defects.py) */
                { "<pin symbol=\"not_used\" near=\"b\" offset=\"1\"/>", -EINVAL, "no site or patch code uses it" },
        };
        struct hvp_bundle *b = NULL;
        char xml[1024];

        (void)state;
        snprintf(xml, sizeof(xml), "%s%s%s", HEAD,
                 "<pin symbol=\"show_info\" near=\"anchor_b\" offset=\"+0x40\"/>"
                 "<pin symbol=\"x.constprop.0\" near=\"_text\" offset=\"-256\"/>"
                 "<pin symbol=\"y\" near=\"_text\" offset=\"0x40000000\"/>",
                 "<sites><replace symbol=\"show_info\" offset=\"0\" expected=\"90\" new=\"cc\"/>"
                 "<replace symbol=\"x.constprop.0\" offset=\"0\" expected=\"90\" new=\"cc\"/>"
                 "<replace symbol=\"y\" offset=\"0\" expected=\"90\" new=\"cc\"/></sites></patch>");
        if (open_manifest(xml, &b) < 0)
                fail_msg("%s", hvp_last_error());
        assert_int_equal(b->manifest.nr_pins, 3);
        assert_string_equal(b->manifest.pins[0].symbol, "show_info");
        assert_string_equal(b->manifest.pins[0].near, "anchor_b");
        assert_int_equal(b->manifest.pins[0].offset, 0x40);
        assert_string_equal(b->manifest.pins[1].symbol, "x.constprop.0");
        assert_int_equal(b->manifest.pins[1].offset, -256);
        assert_int_equal(b->manifest.pins[2].offset, 0x40000000);
        assert_true(b->manifest.pins[0].line > 0);
        hvp_bundle_free(b);

        /* no pins: none */
        snprintf(xml, sizeof(xml), "%s%s", HEAD, SITES);
        assert_int_equal(open_manifest(xml, &b), 0);
        assert_int_equal(b->manifest.nr_pins, 0);
        hvp_bundle_free(b);

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                b = NULL;
                snprintf(xml, sizeof(xml), "%s%s%s", HEAD, bad[i].pins, SITES);
                assert_int_equal(open_manifest(xml, &b), bad[i].want);
                assert_null(b);
                print_message("%s -> %s\n", bad[i].pins, hvp_last_error());
                assert_non_null(strstr(hvp_last_error(), bad[i].reason));
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_lookup_all),
                cmocka_unit_test(test_unique_and_missing),
                cmocka_unit_test(test_function_bounds),
                cmocka_unit_test(test_ambiguous_refused),
                cmocka_unit_test(test_pins),
                cmocka_unit_test(test_real_kernel_duplicate_static),
                cmocka_unit_test(test_manifest_pins),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}

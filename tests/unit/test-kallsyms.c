/*
 * kallsyms decoding and kernel discovery from an image.
 *
 * 1. Debian's real kernel (the decompressed vmlinux that images/fetch-kernel.sh
 *    leaves in HVP_KERNEL_DIR, default the newest /var/lib/hvpatch-test/kernel-*).
 *    The oracle for the symbols is this kernel's own /proc/kallsyms, as a guest
 *    running it listed them: kallsyms-offsets.txt in the same folder, written by
 *    images/capture-kallsyms.sh (which scripts/test.sh runs), every core-kernel
 *    symbol as an offset from _text. Every decoded symbol (count, order, address,
 *    type, name) must equal it. The build id is checked against the ELF's .notes
 *    section, the banner against the bzImage's kernel_version string. A missing
 *    kernel or offsets file is a failure, not a skip. Debian's System.map is a
 *    one-line placeholder; when the real one is there (fetch-kernel.sh --dbg-map)
 *    the tables are also checked against it, else that one test is skipped.
 * 2. Synthetic tables in the real format (kallsyms-gen.h), for every layout, and
 *    broken in the ways hostile memory can break them.
 */
#include <errno.h>
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <hvpatch/hvpatch.h>
#include <hvpatch/kernel.h>

#include "fixture-dir.h"
#include "kallsyms-gen.h"
#include "vmlinux-kmem.h"
#include "common/util.h"

#define TEXT 0xffffffff81000000ull

/* ------------------------------------------------------------------------ */
/* Debian's kernel                                                          */

#define OFFSETS_FILE "kallsyms-offsets.txt"
#define KSYM_NAME_MAX 512               /* KSYM_NAME_LEN of 6.1, with the NUL */

/* One line of kallsyms-offsets.txt (format: images/capture-kallsyms.sh --help). */
struct oracle_sym {
        uint64_t value;                 /* offset from _text; for type 'A' the value itself */
        char type;
        char *name;
};

struct mapsym {
        uint64_t addr;
        char type;
        char *name;
};

struct kernel_files {
        char dir[4096];
        struct vmlinux v;
        uint64_t text;                  /* _text as linked: the ELF's .text section address */
        struct oracle_sym *ks;          /* /proc/kallsyms of a guest of this kernel, in order */
        size_t nks;
        char ks_release[256], ks_build_id[160];
        struct mapsym *map;             /* the real System.map, or none (nmap 0) */
        size_t nmap;
        char release_part[512];         /* "6.1.0-NN-amd64 (who@where)" from the bzImage */
        char uts_version[512];          /* "#1 SMP PREEMPT_DYNAMIC Debian ..." */
        bool absolute_percpu, kallsyms_all;
};

static struct kernel_files *kf;

static char *path_in(const char *dir, const char *file)
{
        static char buf[8192];

        snprintf(buf, sizeof(buf), "%s/%s", dir, file);
        return buf;
}

/*
 * Reads kallsyms-offsets.txt into k->ks. Returns NULL, or why the file is unusable
 * (in err). The "# symbols N" line guards against a file cut short.
 */
static const char *load_kallsyms_offsets(const char *path, struct kernel_files *k, char *err, size_t errsize)
{
        FILE *f = fopen(path, "r");
        char line[KSYM_NAME_MAX + 64];
        size_t cap = 0, lineno = 0, declared = 0;
        bool have_count = false;

        if (!f)
                return "missing";
        while (fgets(line, sizeof(line), f)) {
                char name[KSYM_NAME_MAX], type, extra;
                unsigned long long value;

                lineno++;
                if (!strchr(line, '\n')) {
                        snprintf(err, errsize, "line %zu is longer than %zu bytes", lineno, sizeof(line) - 1);
                        goto bad;
                }
                if (line[0] == '#') {
                        if (sscanf(line, "# symbols %zu", &declared) == 1)
                                have_count = true;
                        sscanf(line, "# release %255s", k->ks_release);
                        sscanf(line, "# build-id %159s", k->ks_build_id);
                        continue;
                }
                if (sscanf(line, "%llx %c %511s %c", &value, &type, name, &extra) != 3) {
                        snprintf(err, errsize, "line %zu is not \"%%x %%c %%s\": %.80s", lineno, line);
                        goto bad;
                }
                if (k->nks == cap) {
                        cap = cap ? 2 * cap : 131072;
                        k->ks = realloc(k->ks, cap * sizeof(*k->ks));
                        assert_non_null(k->ks);
                }
                k->ks[k->nks] = (struct oracle_sym){ value, type, strdup(name) };
                assert_non_null(k->ks[k->nks].name);
                k->nks++;
        }
        fclose(f);
        if (!have_count)
                return "no \"# symbols N\" line";
        if (declared != k->nks) {
                snprintf(err, errsize, "says it holds %zu symbols but has %zu lines of them", declared, k->nks);
                return err;
        }
        return NULL;
bad:
        fclose(f);
        return err;
}

static bool load_system_map(const char *path, struct kernel_files *k)
{
        FILE *f = fopen(path, "r");
        char line[1024];
        size_t cap = 0;

        if (!f)
                return false;
        while (fgets(line, sizeof(line), f)) {
                char name[600], type;
                unsigned long long addr;

                if (sscanf(line, "%llx %c %599s", &addr, &type, name) != 3)
                        continue;
                if (k->nmap == cap) {
                        cap = cap ? 2 * cap : 65536;
                        k->map = realloc(k->map, cap * sizeof(*k->map));
                        assert_non_null(k->map);
                }
                k->map[k->nmap++] = (struct mapsym){ addr, type, strdup(name) };
        }
        fclose(f);
        return true;
}

static void free_system_map(struct kernel_files *k)
{
        for (size_t i = 0; i < k->nmap; i++)
                free(k->map[i].name);
        free(k->map);
        k->map = NULL;
        k->nmap = 0;
}

static bool config_has(const char *path, const char *option)
{
        FILE *f = fopen(path, "r");
        char line[512];
        size_t l = strlen(option);
        bool found = false;

        if (!f)
                return false;
        while (fgets(line, sizeof(line), f))
                if (!strncmp(line, option, l) && !strcmp(line + l, "=y\n"))
                        found = true;
        fclose(f);
        return found;
}

/* kernel_version in the bzImage setup header: "RELEASE (BY@HOST) UTS_VERSION". */
static bool load_kernel_version(const char *path, struct kernel_files *k)
{
        uint8_t hdr[0x210], text[512];
        FILE *f = fopen(path, "rb");
        unsigned kv;
        char *sep;
        bool ok = false;

        if (!f)
                return false;
        if (fread(hdr, 1, sizeof(hdr), f) == sizeof(hdr) && !memcmp(hdr + 0x202, "HdrS", 4)) {
                kv = hdr[0x20e] | hdr[0x20f] << 8;
                memset(text, 0, sizeof(text));
                if (fseek(f, kv + 0x200, SEEK_SET) == 0 && fread(text, 1, sizeof(text) - 1, f) > 0) {
                        sep = strstr((char *)text, ") ");
                        if (sep) {
                                snprintf(k->release_part, sizeof(k->release_part), "%.*s",
                                         (int)(sep + 1 - (char *)text), (char *)text);
                                snprintf(k->uts_version, sizeof(k->uts_version), "%s", sep + 2);
                                ok = true;
                        }
                }
        }
        fclose(f);
        return ok;
}

static const struct oracle_sym *ks_find(const char *name)
{
        for (size_t i = 0; i < kf->nks; i++)
                if (!strcmp(kf->ks[i].name, name))
                        return &kf->ks[i];
        return NULL;
}

/* The address a line of the offsets file stands for in the vmlinux as linked. */
static uint64_t ks_addr(const struct oracle_sym *s)
{
        return s->type == 'A' ? s->value : kf->text + s->value;
}

static uint64_t ks_addr_of(const char *name)
{
        const struct oracle_sym *s = ks_find(name);

        if (!s)
                fail_msg("%s is not in %s", name, path_in(kf->dir, OFFSETS_FILE));
        return ks_addr(s);
}

/* The build id of the vmlinux ELF as lowercase hex (empty if none). */
static void vmlinux_build_id_hex(char *out, size_t size)
{
        uint8_t id[64];
        size_t n = vmlinux_section_build_id(&kf->v, id, sizeof(id));

        out[0] = '\0';
        for (size_t i = 0; i < n && 2 * i + 2 < size; i++)
                sprintf(out + 2 * i, "%02x", id[i]);
}

static int kernel_setup(void **state)
{
        char err[256], elf_id[160];
        const char *why;

        kf = calloc(1, sizeof(*kf));
        assert_non_null(kf);
        if (!hvp_fixture_kernel_dir(kf->dir, sizeof(kf->dir)))
                fail_msg("no Debian kernel: set HVP_KERNEL_DIR or run images/fetch-kernel.sh, which leaves "
                         "vmlinux, config and vmlinuz in /var/lib/hvpatch-test/kernel-<version>/");
        why = vmlinux_open(path_in(kf->dir, "vmlinux"), &kf->v);
        if (why)
                fail_msg("%s: %s (images/fetch-kernel.sh extracts it from the bzImage)",
                         path_in(kf->dir, "vmlinux"), why);
        if (!vmlinux_section_addr(&kf->v, ".text", &kf->text))
                fail_msg("%s: no .text section (its address is _text as linked)", path_in(kf->dir, "vmlinux"));
        why = load_kallsyms_offsets(path_in(kf->dir, OFFSETS_FILE), kf, err, sizeof(err));
        if (why)
                fail_msg("%s: %s. This file is the test's oracle: the kernel's own /proc/kallsyms, captured "
                         "from a guest by `images/capture-kallsyms.sh %s` (scripts/test.sh runs it)",
                         path_in(kf->dir, OFFSETS_FILE), why, kf->dir);
        vmlinux_build_id_hex(elf_id, sizeof(elf_id));
        if (strcmp(kf->ks_build_id, elf_id))
                fail_msg("%s was captured from a kernel with build id '%s', %s/vmlinux has '%s': delete it "
                         "and rerun images/capture-kallsyms.sh", path_in(kf->dir, OFFSETS_FILE), kf->ks_build_id,
                         kf->dir, elf_id);
        if (!ks_find("_text") || ks_find("_text")->value != 0)
                fail_msg("%s: no _text at offset 0", path_in(kf->dir, OFFSETS_FILE));
        if (!load_kernel_version(path_in(kf->dir, "vmlinuz"), kf))
                fail_msg("%s: no bzImage kernel_version string", path_in(kf->dir, "vmlinuz"));
        kf->absolute_percpu = config_has(path_in(kf->dir, "config"), "CONFIG_KALLSYMS_ABSOLUTE_PERCPU");
        kf->kallsyms_all = config_has(path_in(kf->dir, "config"), "CONFIG_KALLSYMS_ALL");
        /* optional: Debian ships a one-line placeholder */
        if (!load_system_map(path_in(kf->dir, "System.map"), kf) || kf->nmap < 1000)
                free_system_map(kf);
        *state = kf;
        return 0;
}

static int kernel_teardown(void **state)
{
        (void)state;
        if (kf) {
                vmlinux_close(&kf->v);
                for (size_t i = 0; i < kf->nks; i++)
                        free(kf->ks[i].name);
                free(kf->ks);
                free_system_map(kf);
                free(kf);
                kf = NULL;
        }
        return 0;
}

static struct hvp_symtab *decode_real(double *ret_ms)
{
        struct hvp_kmem km = vmlinux_kmem(&kf->v);
        struct hvp_symtab *st = NULL;
        double t0;
        int r;

        t0 = hvp_now_ms();
        r = hvp_kallsyms_decode(&km, kf->text, &st);
        if (ret_ms)
                *ret_ms = hvp_now_ms() - t0;
        if (r < 0)
                fail_msg("decoding %s/vmlinux: %d %s", kf->dir, r, hvp_last_error());
        return st;
}

/*
 * The whole table, in order: /proc/kallsyms prints the kernel's table index by
 * index, and the decoder keeps that order, so line i of the guest's listing is
 * symbol i. Absolute per-cpu symbols ('A') are not moved by KASLR; every other
 * one is _text + its offset, whatever base the capturing guest had.
 */
static void test_real_symbols_match_proc_kallsyms(void **state)
{
        struct hvp_symtab *st;
        size_t n;
        double ms;

        (void)state;
        st = decode_real(&ms);
        n = hvp_symtab_count(st);
        print_message("decoded %zu symbols from %s/vmlinux in %.1f ms; the guest's /proc/kallsyms listed %zu\n", n,
                      kf->dir, ms, kf->nks);
        for (size_t i = 0; i < n && i < kf->nks; i++) {
                const struct hvp_symbol *s = hvp_symtab_get(st, i);
                const struct oracle_sym *o = &kf->ks[i];

                assert_non_null(s);
                if (s->addr != ks_addr(o) || s->type != o->type || strcmp(s->name, o->name))
                        fail_msg("symbol %zu: /proc/kallsyms listed %016llx %c %s (%s %llx), decoded %016llx %c %s", i,
                                 (unsigned long long)ks_addr(o), o->type, o->name,
                                 o->type == 'A' ? "absolute" : "_text +", (unsigned long long)o->value,
                                 (unsigned long long)s->addr, s->type, s->name);
                if (i > 0)
                        assert_true(hvp_symtab_get(st, i - 1)->addr <= s->addr);
        }
        if (n != kf->nks)
                fail_msg("decoded %zu symbols, /proc/kallsyms listed %zu (the first %zu agree)", n, kf->nks,
                         n < kf->nks ? n : kf->nks);
        assert_null(hvp_symtab_get(st, n));
        hvp_symtab_free(st);
}

static void test_real_lookups(void **state)
{
        static const char *const known[] = {
                "_text", "_stext", "startup_64", "version_proc_show", "linux_banner", "__start_notes",
                "__stop_notes", "_etext", "_end", "kallsyms_lookup_name",
        };
        struct hvp_symtab *st = decode_real(NULL);
        size_t n = hvp_symtab_count(st);

        (void)state;
        for (size_t i = 0; i < sizeof(known) / sizeof(*known); i++) {
                const struct oracle_sym *o = ks_find(known[i]);
                const struct hvp_symbol *s = hvp_symtab_lookup(st, known[i]);

                if (!o)
                        fail_msg("%s is not in the guest's /proc/kallsyms (%s)", known[i],
                                 path_in(kf->dir, OFFSETS_FILE));
                if (!s)
                        fail_msg("%s is in the guest's /proc/kallsyms but not decoded", known[i]);
                if (s->addr != ks_addr(o) || s->type != o->type)
                        fail_msg("%s: decoded %016llx %c, /proc/kallsyms %016llx %c", known[i],
                                 (unsigned long long)s->addr, s->type, (unsigned long long)ks_addr(o), o->type);
        }
        /* every name finds the first symbol of that name; every address its first symbol */
        for (size_t i = 0; i < n; i++) {
                const struct hvp_symbol *s = hvp_symtab_get(st, i), *l = hvp_symtab_lookup(st, s->name);
                const struct hvp_symbol *a = hvp_symtab_find_addr(st, s->addr);

                assert_non_null(l);
                assert_string_equal(l->name, s->name);
                assert_true(l <= s);            /* the first of that name: no later one */
                assert_non_null(a);
                assert_true(a->addr == s->addr && a <= s);
                assert_true(a == hvp_symtab_get(st, 0) || (a - 1)->addr < a->addr);
        }
        {
                const struct hvp_symbol *v = hvp_symtab_lookup(st, "version_proc_show");
                const struct hvp_symbol *in = hvp_symtab_find_addr(st, v->addr + 1);

                assert_ptr_equal(in, v);
        }
        assert_null(hvp_symtab_lookup(st, "no_such_symbol_in_any_kernel"));
        hvp_symtab_free(st);
}

static void test_real_kernel_info(void **state)
{
        struct hvp_kmem km = vmlinux_kmem(&kf->v);
        struct hvp_kernel *k = NULL;
        uint8_t id[64];
        size_t idlen = vmlinux_section_build_id(&kf->v, id, sizeof(id));
        char prefix[1100], suffix[600];
        size_t bl;
        int r;

        (void)state;
        r = hvp_kernel_from_kmem(&km, kf->text, &k);
        if (r < 0)
                fail_msg("hvp_kernel_from_kmem: %d %s", r, hvp_last_error());
        assert_int_equal(k->base, ks_addr_of("_text"));
        assert_int_equal(k->kaslr_offset, (int64_t)(ks_addr_of("_text") - HVP_LINUX_DEFAULT_TEXT));
        assert_int_equal(k->text_start, ks_addr_of("_stext"));
        assert_int_equal(k->text_end, ks_addr_of("_etext"));
        assert_int_equal(k->image_end, ks_addr_of("_end"));

        /* linux_banner = "Linux version " RELEASE " (BY@HOST) (" COMPILER ") " UTS_VERSION "\n" */
        print_message("banner: %s\n", k->banner);
        snprintf(prefix, sizeof(prefix), "Linux version %s (", kf->release_part);
        snprintf(suffix, sizeof(suffix), ") %s", kf->uts_version);
        bl = strlen(k->banner);
        if (strncmp(k->banner, prefix, strlen(prefix)) || bl < strlen(suffix) ||
            strcmp(k->banner + bl - strlen(suffix), suffix))
                fail_msg("banner \"%s\" does not match the bzImage's \"%s ... %s\"", k->banner, prefix, suffix);
        if (strncmp(k->banner + strlen("Linux version "), kf->ks_release, strlen(kf->ks_release)))
                fail_msg("banner \"%s\" is not of release %s (uname -r in the capturing guest)", k->banner,
                         kf->ks_release);

        if (idlen == 0)
                fail_msg("the vmlinux ELF has no .notes section with a GNU build id");
        assert_int_equal(k->build_id_len, idlen);
        assert_memory_equal(k->build_id, id, idlen);
        {
                char hex[129];

                for (size_t i = 0; i < idlen; i++)
                        sprintf(hex + 2 * i, "%02x", id[i]);
                print_message("build id: %s\n", hex);
        }
        hvp_kernel_free(k);
}

/* The wrong _text is refused: a KASLR base guessed wrong cannot pass. */
static void test_real_wrong_text_base(void **state)
{
        struct hvp_kmem km = vmlinux_kmem(&kf->v);
        struct hvp_symtab *st = NULL;

        (void)state;
        assert_int_equal(hvp_kallsyms_decode(&km, kf->text + 0x200000, &st), -EINVAL);
        assert_null(st);
        assert_non_null(strstr(hvp_last_error(), "_text"));
}

/* ---- optional: the real System.map (fetch-kernel.sh --dbg-map) ---------- */

static const struct mapsym *map_find(const char *name)
{
        for (size_t i = 0; i < kf->nmap; i++)
                if (!strcmp(kf->map[i].name, name))
                        return &kf->map[i];
        return NULL;
}

static bool has_prefix(const char *s, const char *p)
{
        return !strncmp(s, p, strlen(p));
}

static bool has_suffix(const char *s, const char *x)
{
        size_t a = strlen(s), b = strlen(x);

        return a >= b && !strcmp(s + a - b, x);
}

/*
 * Which System.map symbols kallsyms holds, and with which type. System.map and the
 * input of scripts/kallsyms are both the output of scripts/mksysmap, so the
 * difference is what scripts/kallsyms itself drops or changes (is_ignored_symbol()
 * and make_percpus_absolute() in 6.1):
 *  - types U/u/N/n, and A/a except four names kept for ia64 and others;
 *  - its own tables (kallsyms_offsets ... kallsyms_token_index): they only exist
 *    after the first link pass, and the lists of both passes must be equal;
 *  - names of linker thunks and stubs of other architectures (prefix/suffix lists);
 *  - with CONFIG_KALLSYMS_ABSOLUTE_PERCPU, symbols in [__per_cpu_start,
 *    __per_cpu_end] (inclusive) get type 'A' (System.map keeps their d/D/b).
 * Everything else is kept with its System.map type (CONFIG_KALLSYMS_ALL=y).
 */
static bool kallsyms_keeps(const struct mapsym *s, char *ret_type, uint64_t pcpu_start, uint64_t pcpu_end)
{
        static const char *const tables[] = {
                "kallsyms_addresses", "kallsyms_offsets", "kallsyms_relative_base", "kallsyms_num_syms",
                "kallsyms_names", "kallsyms_markers", "kallsyms_seqs_of_names", "kallsyms_token_table",
                "kallsyms_token_index", "_SDA_BASE_", "_SDA2_BASE_",
        };
        static const char *const prefixes[] = {
                "__efistub_", "__kvm_nvhe_$", "__kvm_nvhe_.L", "__AArch64ADRPThunk_", "__ARMV5PILongThunk_",
                "__ARMV7PILongThunk_", "__ThumbV7PILongThunk_", "__LA25Thunk_", "__microLA25Thunk_",
                "__kcfi_typeid_",
        };
        static const char *const suffixes[] = { "_from_arm", "_from_thumb", "_veneer" };
        static const char *const kept_absolute[] = {
                "__kernel_syscall_via_break", "__kernel_syscall_via_epc", "__kernel_sigtramp", "__gp",
        };
        bool keep_abs = false;

        for (size_t i = 0; i < sizeof(tables) / sizeof(*tables); i++)
                if (!strcmp(s->name, tables[i]))
                        return false;
        for (size_t i = 0; i < sizeof(prefixes) / sizeof(*prefixes); i++)
                if (has_prefix(s->name, prefixes[i]))
                        return false;
        for (size_t i = 0; i < sizeof(suffixes) / sizeof(*suffixes); i++)
                if (has_suffix(s->name, suffixes[i]))
                        return false;
        if (strstr(s->name, ".long_branch.") || strstr(s->name, ".plt_branch."))
                return false;
        if (strchr("UuNn", s->type))
                return false;
        for (size_t i = 0; i < sizeof(kept_absolute) / sizeof(*kept_absolute); i++)
                if (!strcmp(s->name, kept_absolute[i]))
                        keep_abs = true;
        if ((s->type == 'A' || s->type == 'a') && !keep_abs)
                return false;
        *ret_type = s->type;
        if (kf->absolute_percpu && s->addr >= pcpu_start && s->addr <= pcpu_end)
                *ret_type = 'A';
        return true;
}

struct triple {
        const char *name;
        uint64_t addr;
        char type;
};

static int cmp_triple(const void *a, const void *b)
{
        const struct triple *x = a, *y = b;
        int r = strcmp(x->name, y->name);

        if (r)
                return r;
        if (x->addr != y->addr)
                return x->addr < y->addr ? -1 : 1;
        return (x->type > y->type) - (x->type < y->type);
}


/* Optional extra: the tables against the real System.map, through scripts/kallsyms' rules. */
static void test_real_symbols_match_system_map(void **state)
{
        const struct mapsym *ps = map_find("__per_cpu_start"), *pe = map_find("__per_cpu_end");
        struct triple *want, *got;
        size_t nwant = 0, n;
        struct hvp_symtab *st;
        double ms;

        (void)state;
        if (!kf->nmap || !kf->kallsyms_all) {
                print_message("%s: %s; not compared (optional)\n", path_in(kf->dir, "System.map"),
                              kf->nmap ? "CONFIG_KALLSYMS_ALL is not y" :
                                         "Debian's placeholder (fetch-kernel.sh --dbg-map gets the real one)");
                skip();
        }
        assert_non_null(ps);
        assert_non_null(pe);
        assert_non_null(map_find("_text"));
        assert_int_equal(map_find("_text")->addr, kf->text);
        st = decode_real(&ms);
        print_message("decoded %zu symbols from %s/vmlinux in %.1f ms\n", hvp_symtab_count(st), kf->dir, ms);
        want = calloc(kf->nmap, sizeof(*want));
        assert_non_null(want);
        for (size_t i = 0; i < kf->nmap; i++) {
                char type;

                if (kallsyms_keeps(&kf->map[i], &type, ps->addr, pe->addr))
                        want[nwant++] = (struct triple){ kf->map[i].name, kf->map[i].addr, type };
        }
        n = hvp_symtab_count(st);
        assert_int_equal(n, nwant);
        got = calloc(n, sizeof(*got));
        assert_non_null(got);
        for (size_t i = 0; i < n; i++) {
                const struct hvp_symbol *s = hvp_symtab_get(st, i);

                assert_non_null(s);
                /* /proc/kallsyms order: by address */
                if (i > 0)
                        assert_true(hvp_symtab_get(st, i - 1)->addr <= s->addr);
                got[i] = (struct triple){ s->name, s->addr, s->type };
        }
        assert_null(hvp_symtab_get(st, n));
        qsort(want, nwant, sizeof(*want), cmp_triple);
        qsort(got, n, sizeof(*got), cmp_triple);
        for (size_t i = 0; i < n; i++)
                if (cmp_triple(&want[i], &got[i]))
                        fail_msg("symbol %zu (by name): System.map says %016llx %c %s, kallsyms %016llx %c %s", i,
                                 (unsigned long long)want[i].addr, want[i].type, want[i].name,
                                 (unsigned long long)got[i].addr, got[i].type, got[i].name);
        free(want);
        free(got);
        hvp_symtab_free(st);
}

/* ------------------------------------------------------------------------ */
/* Synthetic tables                                                         */

#define SYN_MAX 2000

struct synth {
        struct ksgen_sym syms[SYN_MAX];
        char names[SYN_MAX][320];
        size_t n;
        struct ksgen g;
        struct ksgen_mem mem;
        struct hvp_kmem km;
        uint64_t banner_va, notes_va, notes_end;
};

static const uint8_t synth_build_id[20] = {
        0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
};
#define SYN_BANNER "Linux version 9.9.9-test (tester@host) (gcc 12) #1 SMP Test\n"
#define SYN_BANNER_OFF 0x800
#define SYN_NOTES_OFF 0xa00
#define SYN_TABLES_OFF 0x1000

static void add_sym(struct synth *s, uint64_t addr, char type, const char *name, bool percpu)
{
        assert_true(s->n < SYN_MAX);
        snprintf(s->names[s->n], sizeof(s->names[s->n]), "%s", name);
        s->syms[s->n] = (struct ksgen_sym){ addr, type, s->names[s->n], percpu };
        s->n++;
}

/* Sort by address keeping the order of equal ones (as scripts/kallsyms does, in the end). */
static void sort_syms(struct ksgen_sym *v, size_t n)
{
        for (size_t i = 1; i < n; i++) {
                struct ksgen_sym t = v[i];
                size_t j = i;

                for (; j > 0 && v[j - 1].addr > t.addr; j--)
                        v[j] = v[j - 1];
                v[j] = t;
        }
}

static size_t put_note(uint8_t *p, const char *name, uint32_t type, const void *desc, uint32_t descsz)
{
        uint32_t namesz = (uint32_t)strlen(name) + 1;
        size_t off = 12;

        memcpy(p, &namesz, 4);
        memcpy(p + 4, &descsz, 4);
        memcpy(p + 8, &type, 4);
        memcpy(p + off, name, namesz);
        off += (namesz + 3) & ~3u;
        memcpy(p + off, desc, descsz);
        off += (descsz + 3) & ~3u;
        return off;
}

static void synth_mem(struct synth *s)
{
        s->mem = (struct ksgen_mem){ s->g.data, s->g.size, s->g.va };
        s->km = (struct hvp_kmem){ .read = ksgen_mem_read, .ctx = &s->mem, .start = s->g.va,
                                   .end = s->g.va + s->g.size };
}

/*
 * A small kernel: per-cpu symbols, text, one "big" name, and inside the image the
 * banner and the notes (Xen, GNU build id, Linux, then empty notes as padding).
 */
static struct synth *synth_kernel(enum ksgen_layout layout, bool abs_percpu, unsigned pairs, unsigned nfunc,
                                  bool big)
{
        struct synth *s = calloc(1, sizeof(*s));
        struct ksgen_opts o = {
                .layout = layout, .absolute_percpu = abs_percpu, .pair_tokens = pairs,
                .va = TEXT, .tables_off = SYN_TABLES_OFF, .tail = 64,
        };
        uint8_t notes[512] = { 0 };
        size_t off;
        char name[320];

        assert_non_null(s);
        off = put_note(notes, "Xen", 6, "linux", 6);
        off += put_note(notes + off, "GNU", 3, synth_build_id, sizeof(synth_build_id));
        off += put_note(notes + off, "Linux", 0x100, "9.9.9", 6);
        off += 96;
        s->banner_va = TEXT + SYN_BANNER_OFF;
        s->notes_va = TEXT + SYN_NOTES_OFF;
        s->notes_end = s->notes_va + off;
        if (abs_percpu) {
                add_sym(s, 0, 'D', "__per_cpu_start", true);
                add_sym(s, 0, 'D', "fixed_percpu_data", true);
                add_sym(s, 0x1000, 'd', "cpu_number", true);
                add_sym(s, 0x2000, 'D', "__per_cpu_end", true);
        }
        add_sym(s, TEXT, 'T', "_text", false);
        add_sym(s, TEXT, 'T', "startup_64", false);
        add_sym(s, TEXT + 0x40, 'T', "_stext", false);
        add_sym(s, s->banner_va, 'D', "linux_banner", false);
        add_sym(s, s->notes_va, 'R', "__start_notes", false);
        add_sym(s, s->notes_end, 'R', "__stop_notes", false);
        for (unsigned i = 0; i < nfunc; i++) {
                snprintf(name, sizeof(name), "%s_%u_fn%c", i % 3 ? "do_thing" : "__helper", i * 7919,
                         'a' + i % 26);
                add_sym(s, TEXT + 0x100000 + 0x20ull * i, "tTWr"[i % 4], name, false);
        }
        add_sym(s, TEXT + 0x100000 + 0x20ull * nfunc, 'T', "dup_name", false);
        add_sym(s, TEXT + 0x100000 + 0x20ull * nfunc + 0x10, 't', "dup_name", false);
        if (big) {
                uint32_t x = 12345;
                size_t i;

                for (i = 0; i < 300; i++) {
                        x = x * 1103515245 + 12345;
                        name[i] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_."[(x >> 16) % 64];
                }
                name[i] = '\0';
                add_sym(s, TEXT + 0x200000, 't', name, false);
        }
        add_sym(s, TEXT + 0x300000, 'T', "_etext", false);
        add_sym(s, TEXT + 0x400000, 'B', "_end", false);
        sort_syms(s->syms, s->n);

        ksgen_build(s->syms, s->n, &o, &s->g);
        memcpy(s->g.data + SYN_BANNER_OFF, SYN_BANNER, sizeof(SYN_BANNER));
        memcpy(s->g.data + SYN_NOTES_OFF, notes, off);
        synth_mem(s);
        return s;
}

static void synth_free(struct synth *s)
{
        if (!s)
                return;
        ksgen_free(&s->g);
        free(s);
}

static char expected_type(const struct synth *s, size_t i, bool abs_percpu)
{
        return abs_percpu && s->syms[i].percpu ? 'A' : s->syms[i].type;
}

static void check_roundtrip(enum ksgen_layout layout, bool abs_percpu, unsigned pairs, bool big)
{
        struct synth *s = synth_kernel(layout, abs_percpu, pairs, 600, big);
        struct hvp_symtab *st = NULL;
        int r;

        if (big)
                assert_true(s->g.big_records > 0);
        r = hvp_kallsyms_decode(&s->km, TEXT, &st);
        if (r < 0)
                fail_msg("layout %d abs %d pairs %u: %d %s", layout, abs_percpu, pairs, r, hvp_last_error());
        assert_int_equal(hvp_symtab_count(st), s->n);
        for (size_t i = 0; i < s->n; i++) {
                const struct hvp_symbol *d = hvp_symtab_get(st, i);

                assert_string_equal(d->name, s->syms[i].name);
                assert_int_equal(d->addr, s->syms[i].addr);
                assert_int_equal(d->type, expected_type(s, i, abs_percpu));
        }
        hvp_symtab_free(st);
        synth_free(s);
}

static void test_synth_layouts(void **state)
{
        (void)state;
        for (int layout = KSGEN_OLD; layout <= KSGEN_PREL; layout++)
                for (int abs = 0; abs <= (layout == KSGEN_PREL ? 0 : 1); abs++)   /* 7.0: no absolute per-cpu */
                        for (unsigned pairs = 0; pairs <= 100; pairs += 100)
                                for (int big = 0; big <= 1; big++)
                                        check_roundtrip(layout, abs, pairs, big);
}

static void test_synth_symtab_api(void **state)
{
        struct synth *s = synth_kernel(KSGEN_SEQS, true, 50, 300, false);
        struct hvp_symtab *st = NULL;
        const struct hvp_symbol *a, *b;

        (void)state;
        assert_int_equal(hvp_kallsyms_decode(&s->km, 0, &st), 0);
        a = hvp_symtab_lookup(st, "dup_name");
        assert_non_null(a);
        assert_int_equal(a->type, 'T');         /* the first of the two, in address order */
        b = hvp_symtab_find_addr(st, a->addr + 0x10);
        assert_string_equal(b->name, "dup_name");
        assert_int_equal(b->type, 't');
        /* several symbols at TEXT: the first in kallsyms order */
        assert_ptr_equal(hvp_symtab_find_addr(st, TEXT + 5), hvp_symtab_lookup(st, "_text"));
        assert_int_equal(hvp_symtab_find_addr(st, 0x1fff)->addr, 0x1000);
        assert_int_equal(hvp_symtab_find_addr(st, ~0ull)->addr, TEXT + 0x400000);
        assert_null(hvp_symtab_lookup(st, "dup"));
        assert_null(hvp_symtab_lookup(st, ""));
        assert_null(hvp_symtab_lookup(st, NULL));
        assert_null(hvp_symtab_get(st, s->n));
        assert_null(hvp_symtab_get(NULL, 0));
        assert_int_equal(hvp_symtab_count(NULL), 0);
        assert_null(hvp_symtab_find_addr(NULL, 1));
        hvp_symtab_free(st);
        hvp_symtab_free(NULL);
        st = NULL;

        /* without per-cpu symbols nothing lies below _text */
        synth_free(s);
        s = synth_kernel(KSGEN_SEQS, false, 50, 300, false);
        assert_int_equal(hvp_kallsyms_decode(&s->km, 0, &st), 0);
        assert_null(hvp_symtab_find_addr(st, TEXT - 1));
        hvp_symtab_free(st);
        synth_free(s);
}

static void test_synth_kernel_info(void **state)
{
        struct synth *s = synth_kernel(KSGEN_SEQS, true, 50, 300, false);
        struct hvp_kernel *k = NULL;

        (void)state;
        assert_int_equal(hvp_kernel_from_kmem(&s->km, TEXT, &k), 0);
        assert_int_equal(k->base, TEXT);
        assert_int_equal(k->kaslr_offset, 0);
        assert_int_equal(k->text_start, TEXT + 0x40);
        assert_int_equal(k->text_end, TEXT + 0x300000);
        assert_int_equal(k->image_end, TEXT + 0x400000);
        assert_string_equal(k->banner, "Linux version 9.9.9-test (tester@host) (gcc 12) #1 SMP Test");
        assert_int_equal(k->build_id_len, sizeof(synth_build_id));
        assert_memory_equal(k->build_id, synth_build_id, sizeof(synth_build_id));
        hvp_kernel_free(k);
        hvp_kernel_free(NULL);
        synth_free(s);
}

/* Each case breaks one thing in an otherwise good image and expects the error. */
static void expect_decode(struct synth *s, int err, const char *reason)
{
        struct hvp_symtab *st = NULL;
        int r = hvp_kallsyms_decode(&s->km, TEXT, &st);

        if (r != err)
                fail_msg("expected %d (%s), got %d: %s", err, reason, r, hvp_last_error());
        assert_null(st);
        if (reason && !strstr(hvp_last_error(), reason))
                fail_msg("reason \"%s\" does not say \"%s\"", hvp_last_error(), reason);
}

static void test_synth_absurd_num_syms(void **state)
{
        static const uint64_t bad[] = { 0xffffffffu, HVP_KALLSYMS_MAX_SYMS + 1u, 0 };

        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
                struct synth *s = synth_kernel(KSGEN_SEQS, true, 50, 600, false);

                ksgen_poke(&s->g, s->g.num_syms, bad[i], 4);
                expect_decode(s, -EINVAL, "no names");
                synth_free(s);
        }
        /* one more or one fewer than there are names: they walk into the markers or stop short */
        for (int d = -1; d <= 1; d += 2) {
                struct synth *s = synth_kernel(KSGEN_SEQS, true, 50, 600, false);

                ksgen_poke(&s->g, s->g.num_syms, s->n + d, 4);
                expect_decode(s, -EINVAL, "no names");
                synth_free(s);
        }
}

/* The offset of record i in names, walking the lengths as written. */
static uint64_t record_at(const struct synth *s, size_t i)
{
        uint64_t p = s->g.names;

        while (i--) {
                uint64_t len = ksgen_peek(&s->g, p, 1);

                if (len & 0x80) {
                        len = (len & 0x7f) | ksgen_peek(&s->g, p + 1, 1) << 7;
                        p++;
                }
                p += 1 + len;
        }
        return p;
}

static void test_synth_names_past_end(void **state)
{
        struct synth *s;

        (void)state;
        /* the last record claims more bytes than are left before the markers/tokens */
        s = synth_kernel(KSGEN_SEQS, true, 50, 600, false);
        ksgen_poke(&s->g, record_at(s, s->n - 1), 0x7f, 1);
        expect_decode(s, -EINVAL, "no names");
        synth_free(s);

        /* a two-byte length running past everything */
        s = synth_kernel(KSGEN_NEW, true, 50, 600, false);
        ksgen_poke(&s->g, record_at(s, s->n - 1), 0xff, 1);
        ksgen_poke(&s->g, record_at(s, s->n - 1) + 1, 0x7f, 1);
        expect_decode(s, -EINVAL, "no names");
        synth_free(s);

        /* a zero length */
        s = synth_kernel(KSGEN_OLD, false, 0, 600, false);
        ksgen_poke(&s->g, record_at(s, 10), 0, 1);
        expect_decode(s, -EINVAL, "no names");
        synth_free(s);

        /* a code whose token is empty (unused) */
        s = synth_kernel(KSGEN_SEQS, true, 0, 600, false);
        ksgen_poke(&s->g, record_at(s, 5) + 2, 0x01, 1);
        expect_decode(s, -EINVAL, "no names");
        synth_free(s);
}

static void test_synth_token_index_out_of_order(void **state)
{
        struct synth *s = synth_kernel(KSGEN_SEQS, true, 50, 600, false);
        uint64_t a = s->g.token_index + 2 * 'A', b = a + 2;
        uint64_t va = ksgen_peek(&s->g, a, 2), vb = ksgen_peek(&s->g, b, 2);

        (void)state;
        ksgen_poke(&s->g, a, vb, 2);
        ksgen_poke(&s->g, b, va, 2);
        expect_decode(s, -ENOENT, "no kallsyms token table");
        synth_free(s);

        /* an index entry off by one */
        s = synth_kernel(KSGEN_NEW, false, 50, 600, false);
        ksgen_poke(&s->g, s->g.token_index + 2 * 200, ksgen_peek(&s->g, s->g.token_index + 2 * 200, 2) + 1, 2);
        expect_decode(s, -ENOENT, "no kallsyms token table");
        synth_free(s);

        /* a control char inside a token */
        s = synth_kernel(KSGEN_OLD, true, 50, 600, false);
        ksgen_poke(&s->g, s->g.token_table + ksgen_peek(&s->g, s->g.token_index + 2 * 'z', 2), 0x07, 1);
        expect_decode(s, -ENOENT, "no kallsyms token table");
        synth_free(s);
}

static void test_synth_markers_and_offsets(void **state)
{
        struct synth *s;

        (void)state;
        s = synth_kernel(KSGEN_SEQS, true, 50, 600, false);
        ksgen_poke(&s->g, s->g.markers + 4, ksgen_peek(&s->g, s->g.markers + 4, 4) + 1, 4);
        expect_decode(s, -EINVAL, "no names");
        synth_free(s);

        /* two addresses out of order */
        s = synth_kernel(KSGEN_SEQS, true, 50, 600, false);
        {
                uint64_t a = s->g.offsets + 4 * 100, b = a + 4 * 50;
                uint64_t va = ksgen_peek(&s->g, a, 4), vb = ksgen_peek(&s->g, b, 4);

                ksgen_poke(&s->g, a, vb, 4);
                ksgen_poke(&s->g, b, va, 4);
        }
        expect_decode(s, -EINVAL, "no sorted address table");
        synth_free(s);

        /* a relative base that is no kernel address */
        s = synth_kernel(KSGEN_NEW, true, 50, 600, false);
        ksgen_poke(&s->g, s->g.relative_base, 0x1000, 8);
        expect_decode(s, -EINVAL, "no sorted address table");
        synth_free(s);

        /* the wrong _text */
        s = synth_kernel(KSGEN_OLD, false, 50, 600, false);
        ksgen_poke(&s->g, s->g.relative_base, TEXT + 0x200000, 8);
        expect_decode(s, -EINVAL, "_text");
        synth_free(s);

        /* 7.0's place-relative offsets: the tables are 4-aligned, not 8 */
        s = synth_kernel(KSGEN_PREL, false, 50, 600, false);
        assert_int_equal(s->g.names, s->g.num_syms + 4);
        assert_true(s->g.offsets % 8 == 4 || s->g.markers % 8 == 4 || s->g.token_index % 8 == 4 ||
                    s->g.token_table % 8 == 4);
        {
                struct hvp_symtab *st = NULL;

                assert_int_equal(hvp_kallsyms_decode(&s->km, TEXT, &st), 0);
                hvp_symtab_free(st);
        }
        /* ... one out of order */
        {
                uint64_t a = s->g.offsets + 4 * 100;

                ksgen_poke(&s->g, a, ksgen_peek(&s->g, a, 4) + 0x100000, 4);
        }
        expect_decode(s, -EINVAL, "no sorted address table");
        synth_free(s);

        /* ... the first 2 GiB below the image: still sorted, but _text is not where it must be */
        s = synth_kernel(KSGEN_PREL, false, 50, 600, false);
        ksgen_poke(&s->g, s->g.offsets, 0x80000000u, 4);
        expect_decode(s, -EINVAL, "_text");
        synth_free(s);

        /* ... all shifted by 4 bytes (the decoder must not take the entry's neighbour for its own) */
        s = synth_kernel(KSGEN_PREL, false, 50, 600, false);
        for (uint64_t i = 0; i < s->n; i++)
                ksgen_poke(&s->g, s->g.offsets + 4 * i, ksgen_peek(&s->g, s->g.offsets + 4 * i, 4) + 4, 4);
        expect_decode(s, -EINVAL, "_text");
        synth_free(s);
}

/* Every truncation of the image either fails cleanly or, once all read tables are in, succeeds. */
static void test_synth_truncated(void **state)
{
        (void)state;
        for (int layout = KSGEN_OLD; layout <= KSGEN_PREL; layout++) {
                struct synth *s = synth_kernel(layout, layout != KSGEN_PREL, 50, 300, true);
                uint64_t tables_end = layout == KSGEN_PREL ? s->g.offsets + 4 * s->n : s->g.relative_base + 8;
                uint64_t need = (s->g.token_index + 512 > tables_end ? s->g.token_index + 512 : tables_end) - s->g.va;

                for (uint64_t cut = SYN_TABLES_OFF; cut <= s->g.size; cut += (cut < need - 64 ? 61 : 1)) {
                        struct hvp_symtab *st = NULL;
                        int r;

                        s->km.end = s->g.va + cut;
                        r = hvp_kallsyms_decode(&s->km, TEXT, &st);
                        if (cut < need && r == 0)
                                fail_msg("layout %d: decoded an image cut at %llu of %llu", layout,
                                         (unsigned long long)cut, (unsigned long long)need);
                        if (cut >= need && r != 0)
                                fail_msg("layout %d: cut at %llu (need %llu): %s", layout,
                                         (unsigned long long)cut, (unsigned long long)need, hvp_last_error());
                        if (r < 0)
                                assert_true(r == -ENOENT || r == -EINVAL);
                        hvp_symtab_free(st);
                }
                /* and cut from the front: the start of the tables missing */
                s->km.end = s->g.va + s->g.size;
                s->km.start = s->g.num_syms < s->g.offsets ? s->g.num_syms + 8 : s->g.offsets + 8;
                {
                        struct hvp_symtab *st = NULL;
                        int r = hvp_kallsyms_decode(&s->km, TEXT, &st);

                        assert_true(r == -EINVAL || r == -ENOENT);
                        assert_null(st);
                }
                synth_free(s);
        }
}

/* Unreadable pages in the image: skipped with and without a hole_end callback. */
struct holey {
        struct ksgen_mem mem;
        uint64_t hole_lo, hole_hi;
        unsigned reads_in_hole;
};

static int holey_read(void *ctx, uint64_t va, void *buf, size_t len)
{
        struct holey *h = ctx;

        if (va < h->hole_hi && va + len > h->hole_lo) {
                h->reads_in_hole++;
                return -EFAULT;
        }
        return ksgen_mem_read(&h->mem, va, buf, len);
}

static uint64_t holey_end(void *ctx, uint64_t va)
{
        struct holey *h = ctx;

        return va >= h->hole_lo && va < h->hole_hi ? h->hole_hi : 0;
}

static void test_synth_holes(void **state)
{
        struct synth *s = synth_kernel(KSGEN_SEQS, true, 50, 300, false);
        uint8_t *img;
        size_t size;
        struct holey h;
        struct hvp_kmem km;
        struct hvp_symtab *st = NULL;
        unsigned without;

        (void)state;
        /* 64 KiB of unreadable memory in front of the image */
        size = s->g.size + 0x10000;
        img = calloc(1, size);
        assert_non_null(img);
        memcpy(img + 0x10000, s->g.data, s->g.size);
        h = (struct holey){ { img, size, TEXT - 0x10000 }, TEXT - 0x10000, TEXT, 0 };
        km = (struct hvp_kmem){ .read = holey_read, .ctx = &h, .start = TEXT - 0x10000, .end = TEXT + s->g.size };
        assert_int_equal(hvp_kallsyms_decode(&km, TEXT, &st), 0);
        assert_int_equal(hvp_symtab_count(st), s->n);
        hvp_symtab_free(st);
        st = NULL;
        assert_true(h.reads_in_hole >= 16);     /* page by page */
        without = h.reads_in_hole;
        h.reads_in_hole = 0;
        km.hole_end = holey_end;
        assert_int_equal(hvp_kallsyms_decode(&km, TEXT, &st), 0);
        assert_int_equal(hvp_symtab_count(st), s->n);
        /* each buffer that overlaps the hole skips it in one step */
        print_message("reads in the hole: %u page by page, %u with hole_end\n", without, h.reads_in_hole);
        assert_true(h.reads_in_hole < 16 && h.reads_in_hole * 4 < without);
        hvp_symtab_free(st);
        free(img);
        synth_free(s);
}

static const char *digit_decoy(void)
{
        return "0\0" "1\0" "2\0" "3\0" "4\0" "5\0" "6\0" "7\0" "8\0" "9";
}

/* A decoy digit run before the real table, as the real kernel has several. */
static void test_synth_decoy(void **state)
{
        struct synth *s = synth_kernel(KSGEN_SEQS, true, 50, 300, false);
        struct hvp_symtab *st = NULL;

        (void)state;
        memcpy(s->g.data + 0x100, digit_decoy(), 20);
        memcpy(s->g.data + 0x300, digit_decoy(), 20);
        memcpy(s->g.data + 0x300 + 20, "abc\0def", 8);
        assert_int_equal(hvp_kallsyms_decode(&s->km, TEXT, &st), 0);
        assert_int_equal(hvp_symtab_count(st), s->n);
        hvp_symtab_free(st);
        synth_free(s);
}

static void test_synth_kernel_info_errors(void **state)
{
        struct synth *s;
        struct hvp_kernel *k = NULL;

        (void)state;
        /* a banner that is not one */
        s = synth_kernel(KSGEN_SEQS, true, 50, 300, false);
        memcpy(s->g.data + SYN_BANNER_OFF, "Linux versi0n", 13);
        assert_int_equal(hvp_kernel_from_kmem(&s->km, TEXT, &k), -EINVAL);
        assert_non_null(strstr(hvp_last_error(), "Linux version"));
        synth_free(s);

        /* a note whose descsz runs past __stop_notes */
        s = synth_kernel(KSGEN_SEQS, true, 50, 300, false);
        ksgen_poke(&s->g, s->notes_va + 4, 0x1000, 4);
        assert_int_equal(hvp_kernel_from_kmem(&s->km, TEXT, &k), -EINVAL);
        assert_non_null(strstr(hvp_last_error(), "overruns"));
        synth_free(s);

        /* namesz near 4 GiB: no overflow */
        s = synth_kernel(KSGEN_SEQS, true, 50, 300, false);
        ksgen_poke(&s->g, s->notes_va, 0xfffffffe, 4);
        assert_int_equal(hvp_kernel_from_kmem(&s->km, TEXT, &k), -EINVAL);
        synth_free(s);

        /* a build id longer than 64 bytes: the GNU note is the second */
        s = synth_kernel(KSGEN_SEQS, true, 50, 300, false);
        {
                uint64_t gnu = s->notes_va + 12 + 4 + 8;        /* Xen note: name 4, desc 6 -> 8 */

                assert_int_equal(ksgen_peek(&s->g, gnu + 8, 4), 3);
                ksgen_poke(&s->g, gnu, 4, 4);
                ksgen_poke(&s->g, gnu + 4, 68, 4);
                ksgen_poke(&s->g, gnu + 8, 3, 4);
        }
        assert_int_equal(hvp_kernel_from_kmem(&s->km, TEXT, &k), -E2BIG);
        synth_free(s);

        /* no GNU note at all: no build id, not an error */
        s = synth_kernel(KSGEN_SEQS, true, 50, 300, false);
        ksgen_poke(&s->g, s->notes_va + 12 + 4 + 8 + 8, 4, 4);        /* type 3 -> 4 */
        assert_int_equal(hvp_kernel_from_kmem(&s->km, TEXT, &k), 0);
        assert_int_equal(k->build_id_len, 0);
        hvp_kernel_free(k);
        k = NULL;
        synth_free(s);
}

/* Random corruption of the tables: any result, never a crash (run under ASan too). */
static void test_synth_random_corruption(void **state)
{
        struct synth *s = synth_kernel(KSGEN_SEQS, true, 50, 300, true);
        uint8_t *orig = malloc(s->g.size);
        uint32_t x = 1;
        unsigned ok = 0;

        (void)state;
        assert_non_null(orig);
        memcpy(orig, s->g.data, s->g.size);
        for (unsigned iter = 0; iter < 1500; iter++) {
                struct hvp_kernel *k = NULL;
                unsigned flips;

                memcpy(s->g.data, orig, s->g.size);
                x = x * 1103515245 + 12345;
                flips = 1 + (x >> 16) % 4;
                for (unsigned f = 0; f < flips; f++) {
                        size_t at;

                        x = x * 1103515245 + 12345;
                        at = SYN_TABLES_OFF + (x >> 8) % (s->g.size - SYN_TABLES_OFF);
                        x = x * 1103515245 + 12345;
                        s->g.data[at] ^= (uint8_t)(1u << ((x >> 16) % 8));
                }
                if (hvp_kernel_from_kmem(&s->km, 0, &k) == 0) {
                        ok++;
                        assert_true(hvp_symtab_count(k->symtab) <= HVP_KALLSYMS_MAX_SYMS);
                        for (size_t i = 0; i < hvp_symtab_count(k->symtab); i++)
                                assert_non_null(hvp_symtab_lookup(k->symtab, hvp_symtab_get(k->symtab, i)->name));
                        hvp_kernel_free(k);
                }
        }
        print_message("%u of 1500 corrupted images still decoded\n", ok);
        free(orig);
        synth_free(s);
}

/* HVP_KALLSYMS_WRITE_SEEDS=DIR writes the fuzz seeds (tests/fuzz/corpus/kallsyms). */
static void test_write_seeds(void **state)
{
        const char *dir = getenv("HVP_KALLSYMS_WRITE_SEEDS");
        static const struct {
                const char *name;
                enum ksgen_layout layout;
                bool abs;
                unsigned pairs, nfunc;
                bool big;
        } seeds[] = {
                { "seqs-abs", KSGEN_SEQS, true, 40, 40, false },
                { "old-rel", KSGEN_OLD, false, 0, 20, false },
                { "new-abs-big", KSGEN_NEW, true, 40, 30, true },
                { "seqs-300", KSGEN_SEQS, true, 60, 300, false },
        };

        (void)state;
        if (!dir)
                return;
        for (size_t i = 0; i < sizeof(seeds) / sizeof(*seeds); i++) {
                struct synth *s = synth_kernel(seeds[i].layout, seeds[i].abs, seeds[i].pairs, seeds[i].nfunc,
                                               seeds[i].big);
                FILE *f = fopen(path_in(dir, seeds[i].name), "wb");

                assert_non_null(f);
                assert_int_equal(fwrite(s->g.data, 1, s->g.size, f), s->g.size);
                fclose(f);
                synth_free(s);
        }
}

int main(void)
{
        const struct CMUnitTest real[] = {
                cmocka_unit_test(test_real_symbols_match_proc_kallsyms),
                cmocka_unit_test(test_real_lookups),
                cmocka_unit_test(test_real_kernel_info),
                cmocka_unit_test(test_real_wrong_text_base),
                cmocka_unit_test(test_real_symbols_match_system_map),
        };
        const struct CMUnitTest synthetic[] = {
                cmocka_unit_test(test_synth_layouts),
                cmocka_unit_test(test_synth_symtab_api),
                cmocka_unit_test(test_synth_kernel_info),
                cmocka_unit_test(test_synth_absurd_num_syms),
                cmocka_unit_test(test_synth_names_past_end),
                cmocka_unit_test(test_synth_token_index_out_of_order),
                cmocka_unit_test(test_synth_markers_and_offsets),
                cmocka_unit_test(test_synth_truncated),
                cmocka_unit_test(test_synth_holes),
                cmocka_unit_test(test_synth_decoy),
                cmocka_unit_test(test_synth_kernel_info_errors),
                cmocka_unit_test(test_synth_random_corruption),
                cmocka_unit_test(test_write_seeds),
        };
        int failed = cmocka_run_group_tests_name("synthetic", synthetic, NULL, NULL);

        failed += cmocka_run_group_tests_name("debian-kernel", real, kernel_setup, kernel_teardown);
        return failed;
}

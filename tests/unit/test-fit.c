/*
 * Patch objects against target kernel builds (hvpatch/fit.h) and the flags that make
 * them fit (images/kernel-cflags.sh).
 *
 * Real parts: the configs of Debian's kernels, fetched at test time by
 * images/fetch-kernel-config.sh (bookworm 6.1, trixie 6.12, sid 7.x; cached under
 * /var/lib/hvpatch-test/kconfigs/), the demo's images/demo/version_hotpatch.c and
 * tests/unit/data/fit-callback.c compiled by the system gcc with the flags
 * images/kernel-cflags.sh derives from each config, and with wrong ones; `hvpatch pack`
 * run on a manifest of them. Synthetic configs beside them for the parser's corners.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "tests/unit/prereq.h"

#include <hvpatch/fit.h>
#include <hvpatch/hvpatch.h>
#include <hvpatch/patch.h>

#include "common/file.h"

static char tmpdir[] = "/tmp/hvp-test-fit-XXXXXX";
static const char *srcdir;
static bool have_gcc;
static char cfg61[512], cfg612[512], cfg7[512], cfg_nomit[600];
static char why_missing[1024];

/* ---- helpers ------------------------------------------------------------------------ */

static char *path_in_tmp(const char *name)
{
        static char buf[8][600];
        static int k;
        char *p = buf[k++ % 8];

        snprintf(p, sizeof(buf[0]), "%s/%s", tmpdir, name);
        return p;
}

/* Run cmd and keep its first line of stdout in out; exit status. */
static int run_line(const char *cmd, char *out, size_t size)
{
        FILE *f = popen(cmd, "r");
        int st;

        out[0] = '\0';
        if (!f)
                return -1;
        if (fgets(out, (int)size, f))
                out[strcspn(out, "\n")] = '\0';
        while (fgetc(f) != EOF)
                ;
        st = pclose(f);
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
        char cmd[8192];
        va_list ap;
        int st;

        va_start(ap, fmt);
        vsnprintf(cmd, sizeof(cmd), fmt, ap);
        va_end(ap);
        st = system(cmd);
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The config of SUITE's current kernel, through images/fetch-kernel-config.sh. */
static bool fetch_config(const char *suite, char *out, size_t size)
{
        char cmd[1024];

        snprintf(cmd, sizeof(cmd), "%s/images/fetch-kernel-config.sh %s 2>/dev/null | tail -n1", srcdir, suite);
        if (run_line(cmd, out, size) != 0 || access(out, R_OK) != 0) {
                snprintf(why_missing, sizeof(why_missing),
                         "images/fetch-kernel-config.sh %s failed (needs root and deb.debian.org the first time)",
                         suite);
                out[0] = '\0';
                return false;
        }
        return true;
}

/* Compile src (relative to the source tree) with the flags kernel-cflags.sh gives for config. */
static void compile_for(const char *config, const char *src, const char *out)
{
        static struct {
                char config[600];
                char flags[4096];
        } cache[8];
        static size_t nr_cache;
        const char *flags = NULL;
        char cmd[1024];

        for (size_t i = 0; i < nr_cache && !flags; i++)
                if (strcmp(cache[i].config, config) == 0)
                        flags = cache[i].flags;
        if (!flags) {
                size_t k = nr_cache < 8 ? nr_cache++ : 7;

                snprintf(cmd, sizeof(cmd), "%s/images/kernel-cflags.sh %s", srcdir, config);
                assert_int_equal(run_line(cmd, cache[k].flags, sizeof(cache[k].flags)), 0);
                snprintf(cache[k].config, sizeof(cache[k].config), "%s", config);
                flags = cache[k].flags;
        }
        assert_non_null(strstr(flags, "-mcmodel=kernel"));
        assert_int_equal(run("gcc %s -c %s/%s -o %s", flags, srcdir, src, out), 0);
}

static void compile_with(const char *flags, const char *src, const char *out)
{
        assert_int_equal(run("gcc %s -c %s/%s -o %s", flags, srcdir, src, out), 0);
}

struct loaded {
        void *data;
        size_t len;
};

static struct loaded load(const char *path)
{
        struct loaded l = { 0 };

        assert_int_equal(hvp_read_file_bounded(path, HVP_RELOC_MAX_OBJECT, &l.data, &l.len), 0);
        return l;
}

static struct hvp_kconfig kconfig(const char *path)
{
        struct hvp_kconfig kc;

        assert_int_equal(hvp_kconfig_load(path, &kc), 0);
        return kc;
}

/* Warnings of function in the object at path against config (NULL: no config). */
static size_t check(const char *path, const char *function, const char *config, struct hvp_fit_warning **ret)
{
        struct loaded l = load(path);
        struct hvp_kconfig kc;
        size_t n = 0;

        *ret = NULL;
        if (config)
                kc = kconfig(config);
        assert_int_equal(hvp_reloc_check_fit(l.data, l.len, "obj.o", function, config ? &kc : NULL, ret, &n), 0);
        free(l.data);
        for (size_t i = 0; i < n; i++)
                print_message("    [%s] %s: %s\n", hvp_fit_kind_name((*ret)[i].kind), (*ret)[i].where,
                              (*ret)[i].message);
        return n;
}

static const struct hvp_fit_warning *find(const struct hvp_fit_warning *w, size_t n, enum hvp_fit_kind kind,
                                          const char *text)
{
        for (size_t i = 0; i < n; i++)
                if (w[i].kind == kind && (!text || strstr(w[i].message, text)))
                        return &w[i];
        return NULL;
}

/* find() that fails the test when there is none */
static const struct hvp_fit_warning *must_find(const struct hvp_fit_warning *w, size_t n, enum hvp_fit_kind kind,
                                               const char *text)
{
        const struct hvp_fit_warning *x = find(w, n, kind, text);

        if (!x) {
                fail_msg("no %s warning with \"%s\"", hvp_fit_kind_name(kind), text ? text : "");
                abort();        /* not reached */
        }
        return x;
}

static void require_all(void)
{
        hvp_test_require(have_gcc, "gcc is not installed (apt-get install gcc)");
        hvp_test_require(cfg61[0] && cfg612[0] && cfg7[0], "%s", why_missing);
}

/* ---- fixtures -------------------------------------------------------------------------- */

static int setup(void **state)
{
        (void)state;
        srcdir = getenv("HVP_SOURCE_DIR");
        if (!srcdir)
                srcdir = ".";
        if (!mkdtemp(tmpdir))
                return -1;
        have_gcc = run("gcc --version >/dev/null 2>&1") == 0;
        if (fetch_config("bookworm", cfg61, sizeof(cfg61)) && fetch_config("trixie", cfg612, sizeof(cfg612)))
                fetch_config("sid", cfg7, sizeof(cfg7));
        if (cfg61[0]) {
                /* Debian's 6.1 config with its mitigations off: a kernel built without them */
                snprintf(cfg_nomit, sizeof(cfg_nomit), "%s", path_in_tmp("config-nomit"));
                if (run("sed -e 's/^CONFIG_RETPOLINE=y/# CONFIG_RETPOLINE is not set/' "
                        "-e 's/^CONFIG_RETHUNK=y/# CONFIG_RETHUNK is not set/' "
                        "-e 's/^CONFIG_SLS=y/# CONFIG_SLS is not set/' %s > %s", cfg61, cfg_nomit) != 0)
                        return -1;
        }
        return 0;
}

static int teardown(void **state)
{
        (void)state;
        return run("rm -rf %s", tmpdir) == 0 ? 0 : -1;
}

/* ---- configs ----------------------------------------------------------------------------- */

static void test_kconfig_parse_synthetic(void **state)
{
        static const char old_names[] = "#\n# Linux/x86 6.1.192 Kernel Configuration\n#\nCONFIG_X86_64=y\n"
                                        "CONFIG_RETPOLINE=y\nCONFIG_RETHUNK=y\nCONFIG_SLS=y\n"
                                        "# CONFIG_X86_KERNEL_IBT is not set\nCONFIG_STACKPROTECTOR=y\n";
        static const char new_names[] = "# Linux/x86 7.2.13 Kernel Configuration\r\nCONFIG_X86_64=y\r\n"
                                        "CONFIG_MITIGATION_RETPOLINE=y\nCONFIG_MITIGATION_RETHUNK=y\n"
                                        "CONFIG_MITIGATION_SLS=y\nCONFIG_X86_KERNEL_IBT=y\n"
                                        "CONFIG_MITIGATION_CALL_DEPTH_TRACKING=y\n"
                                        "CONFIG_FUNCTION_PADDING_BYTES=16\nCONFIG_CALL_PADDING=y";
        static const char modules[] = "CONFIG_X86_64=y\nCONFIG_RETPOLINE=m\nCONFIG_RETHUNKX=y\n"
                                      "CONFIG_FUNCTION_PADDING_BYTES=16\n# CONFIG_CALL_PADDING is not set\n";
        static const char arm[] = "# Linux/arm64 6.1.0 Kernel Configuration\nCONFIG_ARM64=y\nCONFIG_RETPOLINE=y\n";
        static const char with_nul[] = "CONFIG_X86_64=y\n\0CONFIG_RETHUNK=y\n";
        struct hvp_kconfig kc;

        (void)state;
        assert_int_equal(hvp_kconfig_parse(old_names, strlen(old_names), &kc), 0);
        assert_string_equal(kc.release, "6.1.192");
        assert_true(kc.retpoline && kc.rethunk && kc.sls && kc.stackprotector);
        assert_false(kc.ibt || kc.call_depth_tracking);
        assert_int_equal(kc.padding_bytes, 0);

        assert_int_equal(hvp_kconfig_parse(new_names, strlen(new_names), &kc), 0);
        assert_string_equal(kc.release, "7.2.13");
        assert_true(kc.retpoline && kc.rethunk && kc.sls && kc.ibt && kc.call_depth_tracking);
        assert_false(kc.stackprotector);
        assert_int_equal(kc.padding_bytes, 16);         /* the last line has no newline */

        /* =m is not =y, a longer name is another option, padding counts only with CALL_PADDING */
        assert_int_equal(hvp_kconfig_parse(modules, strlen(modules), &kc), 0);
        assert_false(kc.retpoline || kc.rethunk);
        assert_int_equal(kc.padding_bytes, 0);
        assert_string_equal(kc.release, "");

        kc.release[0] = 'x';
        assert_int_equal(hvp_kconfig_parse(arm, strlen(arm), &kc), -EINVAL);
        assert_int_equal(kc.release[0], 'x');           /* untouched on failure */
        assert_non_null(strstr(hvp_last_error(), "CONFIG_X86_64"));
        assert_int_equal(hvp_kconfig_parse(with_nul, sizeof(with_nul) - 1, &kc), -EINVAL);
        assert_int_equal(hvp_kconfig_parse(old_names, HVP_KCONFIG_MAX_SIZE + 1ul, &kc), -E2BIG);
}

static void test_kconfig_load_gzip(void **state)
{
        struct hvp_kconfig plain, gz;
        char *bomb = path_in_tmp("bomb.gz"), *bad = path_in_tmp("bad.gz");

        (void)state;
        require_all();
        /* /proc/config.gz is the same text, gzip'd */
        assert_int_equal(run("gzip -c %s > %s", cfg612, path_in_tmp("config.gz")), 0);
        plain = kconfig(cfg612);
        gz = kconfig(path_in_tmp("config.gz"));
        assert_memory_equal(&plain, &gz, sizeof(plain));
        /* inflating past the bound stops there; a broken stream is an error, not a crash */
        assert_int_equal(run("head -c %u /dev/zero | gzip -c > %s", HVP_KCONFIG_MAX_SIZE + 4096u, bomb), 0);
        assert_int_equal(hvp_kconfig_load(bomb, &gz), -E2BIG);
        assert_int_equal(run("gzip -c %s | head -c 4000 > %s", cfg612, bad), 0);
        assert_int_equal(hvp_kconfig_load(bad, &gz), -EINVAL);
        assert_int_equal(hvp_kconfig_load(path_in_tmp("missing"), &gz), -ENOENT);
}

/* What Debian's real configs say (the facts the checks below rely on). */
static void test_kconfig_debian(void **state)
{
        struct hvp_kconfig k61, k612, k7;

        (void)state;
        require_all();
        k61 = kconfig(cfg61);
        k612 = kconfig(cfg612);
        k7 = kconfig(cfg7);
        assert_true(strncmp(k61.release, "6.1.", 4) == 0);
        assert_true(strncmp(k612.release, "6.12.", 5) == 0);
        assert_true(strncmp(k7.release, "7.", 2) == 0);
        assert_true(k61.retpoline && k61.rethunk && k61.sls && !k61.ibt && !k61.call_depth_tracking);
        assert_int_equal(k61.padding_bytes, 0);
        for (int i = 0; i < 2; i++) {
                const struct hvp_kconfig *k = i ? &k7 : &k612;

                assert_true(k->retpoline && k->rethunk && k->sls && k->ibt && k->call_depth_tracking);
                assert_int_equal(k->padding_bytes, 16);
        }
}

/* kernel-cflags.sh: the flags that differ between the kernels, and refusals. */
static void test_cflags_script(void **state)
{
        char flags[4096], cmd[2048];

        (void)state;
        require_all();
        snprintf(cmd, sizeof(cmd), "%s/images/kernel-cflags.sh %s", srcdir, cfg61);
        assert_int_equal(run_line(cmd, flags, sizeof(flags)), 0);
        assert_non_null(strstr(flags, "-mfunction-return=thunk-extern"));
        assert_non_null(strstr(flags, "-mindirect-branch=thunk-extern -mindirect-branch-register"));
        assert_non_null(strstr(flags, "-mharden-sls=all"));
        assert_non_null(strstr(flags, "-fcf-protection=none"));
        assert_null(strstr(flags, "-fcf-protection=branch"));

        snprintf(cmd, sizeof(cmd), "%s/images/kernel-cflags.sh %s", srcdir, cfg612);
        assert_int_equal(run_line(cmd, flags, sizeof(flags)), 0);
        assert_non_null(strstr(flags, "-fcf-protection=branch"));
        assert_non_null(strstr(flags, "-fno-jump-tables"));
        assert_null(strstr(flags, "-fpatchable-function-entry"));

        snprintf(cmd, sizeof(cmd), "%s/images/kernel-cflags.sh %s", srcdir, cfg_nomit);
        assert_int_equal(run_line(cmd, flags, sizeof(flags)), 0);
        assert_null(strstr(flags, "thunk-extern"));
        assert_null(strstr(flags, "-mharden-sls"));

        /* gzip'd configs give the same flags; other architectures and compilers without a
           needed flag are refused */
        {
                char a[4096], b[4096];

                snprintf(cmd, sizeof(cmd), "%s/images/kernel-cflags.sh %s", srcdir, cfg612);
                assert_int_equal(run_line(cmd, a, sizeof(a)), 0);
                assert_int_equal(run("gzip -c %s > %s", cfg612, path_in_tmp("c612.gz")), 0);
                snprintf(cmd, sizeof(cmd), "%s/images/kernel-cflags.sh %s", srcdir, path_in_tmp("c612.gz"));
                assert_int_equal(run_line(cmd, b, sizeof(b)), 0);
                assert_string_equal(a, b);
        }
        /* a kernel image with its config embedded (CONFIG_IKCONFIG), and one without */
        {
                char a[4096], b[4096], *img = path_in_tmp("vmlinux-ikconfig");

                assert_int_equal(run("{ printf '\\177ELF\\2\\1\\1'; head -c 3000 /dev/urandom | tr -d I; "
                                     "printf IKCFG_ST; gzip -c %s; printf IKCFG_ED; head -c 100 /dev/zero; } > %s",
                                     cfg612, img), 0);
                snprintf(cmd, sizeof(cmd), "%s/images/kernel-cflags.sh %s", srcdir, cfg612);
                assert_int_equal(run_line(cmd, a, sizeof(a)), 0);
                snprintf(cmd, sizeof(cmd), "%s/images/kernel-cflags.sh %s", srcdir, img);
                assert_int_equal(run_line(cmd, b, sizeof(b)), 0);
                assert_string_equal(a, b);
                assert_int_equal(run("{ printf '\\177ELF\\2\\1\\1'; head -c 3000 /dev/zero; } > %s", img), 0);
                assert_int_equal(run("%s/images/kernel-cflags.sh %s >/dev/null 2>&1", srcdir, img), 1);
        }
        assert_int_equal(run("printf 'CONFIG_ARM64=y\\n' > %s", path_in_tmp("arm")), 0);
        assert_int_equal(run("%s/images/kernel-cflags.sh %s >/dev/null 2>&1", srcdir, path_in_tmp("arm")), 1);
        /* a "compiler" that accepts nothing but -O2 cannot build for a retpoline kernel */
        assert_int_equal(run("printf '#!/bin/sh\\ncase \" $* \" in *\" -O2 \"*) exit 0;; esac\\nexit 1\\n' > %s"
                             " && chmod +x %s", path_in_tmp("oldcc"), path_in_tmp("oldcc")), 0);
        assert_int_equal(run("%s/images/kernel-cflags.sh --cc %s %s >/dev/null 2>&1", srcdir, path_in_tmp("oldcc"),
                             cfg61), 1);
}

/* ---- objects against kernels ---------------------------------------------------------------- */

#define DEMO "images/demo/version_hotpatch.c"
#define DEMO_FN "hvp_version_proc_show"
#define CB "tests/unit/data/fit-callback.c"
#define CB_FN "hvp_fit_release"

/* Built for the kernel it runs on: nothing to say, for 6.1, 6.12 and 7.x alike. */
static void test_matching_objects_do_not_warn(void **state)
{
        const char *cfgs[] = { cfg61, cfg612, cfg7 };
        struct hvp_fit_warning *w;

        (void)state;
        require_all();
        for (size_t i = 0; i < 3; i++) {
                char *demo = path_in_tmp("demo-match.o"), *cb = path_in_tmp("cb-match.o");

                compile_for(cfgs[i], DEMO, demo);
                compile_for(cfgs[i], CB, cb);
                assert_int_equal(check(demo, DEMO_FN, cfgs[i], &w), 0);
                free(w);
                assert_int_equal(check(cb, CB_FN, cfgs[i], &w), 0);
                free(w);
        }
}

/*
 * The 6.12 build of either object on 6.1: the only difference is endbr64 at function
 * entries (-fcf-protection=branch), a NOP on a kernel without IBT: no warning. The 6.1
 * build of the demo on 6.12: no endbr64, but the redirect function is entered by
 * hvpatch's direct jmp, never indirectly: no warning either.
 */
static void test_harmless_cross_builds(void **state)
{
        char *d61 = path_in_tmp("demo61.o"), *d612 = path_in_tmp("demo612.o"), *c612 = path_in_tmp("cb612.o");
        struct hvp_fit_warning *w;

        (void)state;
        require_all();
        compile_for(cfg61, DEMO, d61);
        compile_for(cfg612, DEMO, d612);
        compile_for(cfg612, CB, c612);
        assert_int_equal(check(d612, DEMO_FN, cfg61, &w), 0);
        free(w);
        assert_int_equal(check(c612, CB_FN, cfg61, &w), 0);
        free(w);
        assert_int_equal(check(d61, DEMO_FN, cfg612, &w), 0);
        free(w);
}

/* The 6.1 build of fit-callback.c on 6.12: hvp_fit_free is handed to call_rcu() and has no endbr64. */
static void test_ibt_landing_pad_missing(void **state)
{
        char *c61 = path_in_tmp("cb61.o"), *pie = path_in_tmp("cb-pie.o");
        const struct hvp_fit_warning *x;
        struct hvp_fit_warning *w;
        size_t n;

        (void)state;
        require_all();
        compile_for(cfg61, CB, c61);
        n = check(c61, CB_FN, cfg612, &w);
        assert_int_equal(n, 1);
        x = must_find(w, n, HVP_FIT_IBT, "hvp_fit_free");
        assert_non_null(strstr(x->message, "-fcf-protection=branch"));
        assert_non_null(strstr(x->where, "hvp_fit_release+0x"));        /* where the address is taken */
        assert_int_equal(x->count, 1);
        assert_string_equal(x->object, "obj.o");
        assert_string_equal(x->function, CB_FN);
        free(w);
        n = check(c61, CB_FN, cfg7, &w);
        assert_non_null(find(w, n, HVP_FIT_IBT, "hvp_fit_free"));
        free(w);

        /* position-independent code takes the address with lea rip+disp, which the assembler
           resolves without a relocation (same section) */
        compile_with("-O2 -fpie -fno-stack-protector -fcf-protection=none -mno-red-zone -ffreestanding", CB, pie);
        n = check(pie, CB_FN, cfg612, &w);
        x = must_find(w, n, HVP_FIT_IBT, "hvp_fit_free");
        assert_non_null(strstr(x->where, "hvp_fit_release+0x"));
        free(w);
        compile_with("-O2 -fpie -fno-stack-protector -fcf-protection=branch -mno-red-zone -ffreestanding", CB, pie);
        n = check(pie, CB_FN, cfg612, &w);
        assert_null(find(w, n, HVP_FIT_IBT, "hvp_fit_free"));
        free(w);
}

/* Without the mitigation flags (as plain `gcc -mcmodel=kernel` builds): every mitigation is named. */
static void test_plain_object_on_mitigated_kernels(void **state)
{
        static const char plain[] = "-O2 -mcmodel=kernel -fno-pic -ffreestanding -nostdlib -mno-red-zone -mno-sse "
                                    "-fno-asynchronous-unwind-tables -fno-stack-protector -fcf-protection=none";
        char *cb = path_in_tmp("cb-plain.o"), *demo = path_in_tmp("demo-plain.o");
        struct hvp_fit_warning *w;
        size_t n;

        (void)state;
        require_all();
        compile_with(plain, CB, cb);
        n = check(cb, CB_FN, cfg61, &w);
        assert_non_null(find(w, n, HVP_FIT_RETURN_THUNK, "plain ret"));
        assert_non_null(find(w, n, HVP_FIT_INDIRECT_BRANCH, "CONFIG_MITIGATION_RETPOLINE"));
        assert_non_null(find(w, n, HVP_FIT_SLS, "int3"));
        assert_null(find(w, n, HVP_FIT_IBT, NULL));             /* 6.1 has no IBT */
        assert_int_equal(n, 3);
        free(w);
        n = check(cb, CB_FN, cfg612, &w);
        assert_non_null(find(w, n, HVP_FIT_IBT, "hvp_fit_free"));
        assert_int_equal(n, 4);
        free(w);
        /* no config: only what holds for every kernel, and this object has none of it */
        assert_int_equal(check(cb, CB_FN, NULL, &w), 0);
        free(w);

        compile_with(plain, DEMO, demo);
        n = check(demo, DEMO_FN, cfg61, &w);
        assert_non_null(find(w, n, HVP_FIT_RETURN_THUNK, "plain ret"));
        assert_null(find(w, n, HVP_FIT_INDIRECT_BRANCH, NULL)); /* the demo has no indirect branch */
        free(w);
}

/* The 6.1 build on a kernel built without retpolines, return thunks and SLS. */
static void test_thunks_on_unmitigated_kernel(void **state)
{
        char *cb = path_in_tmp("cb61-nomit.o");
        struct hvp_fit_warning *w;
        size_t n;

        (void)state;
        require_all();
        compile_for(cfg61, CB, cb);
        n = check(cb, CB_FN, cfg_nomit, &w);
        assert_non_null(find(w, n, HVP_FIT_RETURN_THUNK, "jmp __x86_return_thunk"));
        assert_non_null(find(w, n, HVP_FIT_INDIRECT_BRANCH, "__x86_indirect_thunk_"));
        assert_null(find(w, n, HVP_FIT_SLS, NULL));
        assert_int_equal(n, 2);
        free(w);
        /* and built for that kernel, it fits */
        compile_for(cfg_nomit, CB, cb);
        assert_int_equal(check(cb, CB_FN, cfg_nomit, &w), 0);
        free(w);
}

/* IBT without -fno-jump-tables: gcc emits a notrack jmp through the jump table. */
static void test_notrack_jump_table(void **state)
{
        static const char flags[] = "-O2 -mcmodel=kernel -fno-pic -ffreestanding -nostdlib -mno-red-zone -mno-sse "
                                    "-fno-asynchronous-unwind-tables -fno-stack-protector -fcf-protection=branch "
                                    "-mfunction-return=thunk-extern -mharden-sls=all";
        char *cb = path_in_tmp("cb-notrack.o");
        const struct hvp_fit_warning *x;
        struct hvp_fit_warning *w;
        size_t n;

        (void)state;
        require_all();
        compile_with(flags, CB, cb);
        n = check(cb, CB_FN, cfg612, &w);
        x = must_find(w, n, HVP_FIT_IBT, "notrack");
        assert_non_null(strstr(x->message, "-fno-jump-tables"));
        assert_non_null(find(w, n, HVP_FIT_INDIRECT_BRANCH, NULL));
        assert_null(find(w, n, HVP_FIT_IBT, "hvp_fit_free"));  /* endbr64 is there */
        free(w);
}

/* Checks that need no config: the small code model and stack protector code. */
static void test_code_model_and_stack_protector(void **state)
{
        char *small = path_in_tmp("demo-small.o"), *sp = path_in_tmp("cb-sp.o"), *pie = path_in_tmp("cb-pie.o");
        struct hvp_fit_warning *w;
        struct loaded l;
        size_t n = 0;

        (void)state;
        require_all();
        compile_with("-O2 -mcmodel=small -fno-pic -fno-stack-protector -fcf-protection=none", DEMO, small);
        n = check(small, DEMO_FN, NULL, &w);
        assert_int_equal(n, 1);
        assert_int_equal(w[0].kind, HVP_FIT_CODE_MODEL);
        assert_non_null(strstr(w[0].message, "-mcmodel=kernel"));
        assert_true(w[0].count >= 2);           /* linux_banner twice, the format string */
        free(w);

        compile_with("-O2 -mcmodel=kernel -fno-pic -fstack-protector-all -fcf-protection=none", CB, sp);
        n = check(sp, CB_FN, NULL, &w);
        assert_non_null(find(w, n, HVP_FIT_STACK_PROTECTOR, "-fno-stack-protector"));
        free(w);

        /* -fpic reaches kernel data through the GOT: refused, with a hint */
        compile_with("-O2 -fpic -fno-stack-protector", DEMO, pie);
        l = load(pie);
        w = NULL;
        n = 0;
        assert_int_equal(hvp_reloc_check_fit(l.data, l.len, "pie.o", DEMO_FN, NULL, &w, &n), -ENOTSUP);
        assert_non_null(strstr(hvp_last_error(), "GOT"));
        assert_non_null(strstr(hvp_last_error(), "-fno-pic"));
        assert_null(w);
        free(l.data);
}

/* Hostile input: a truncated object is an error, appended warnings stay as they were. */
static void test_bad_object(void **state)
{
        char *demo = path_in_tmp("demo-trunc.o");
        struct hvp_fit_warning *w = NULL;
        struct loaded l;
        size_t n = 0;

        (void)state;
        require_all();
        compile_for(cfg61, DEMO, demo);
        l = load(demo);
        for (size_t cut = 0; cut < l.len; cut += 97)
                assert_true(hvp_reloc_check_fit(l.data, cut, "t.o", DEMO_FN, NULL, &w, &n) < 0);
        assert_null(w);
        assert_int_equal(n, 0);
        assert_int_equal(hvp_reloc_check_fit(l.data, l.len, "t.o", "no_such_fn", NULL, &w, &n), -ENOENT);
        free(l.data);
}

/* ---- hvpatch pack ------------------------------------------------------------------------------ */

static void write_manifest(const char *path, const char *obj, const char *fn, const char *banner)
{
        FILE *f = fopen(path, "w");

        assert_non_null(f);
        fprintf(f,
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                "<patch xmlns=\"urn:hvpatch:manifest:1\" id=\"fit-1\" series=\"fit\" sequence=\"1\">\n"
                "  <target os=\"linux\">\n    <build-id>00112233445566778899aabbccddeeff00112233</build-id>\n"
                "%s%s%s"
                "  </target>\n"
                "  <object name=\"cb.o\" file=\"%s\"/>\n"
                "  <sites>\n    <redirect symbol=\"some_kernel_function\" object=\"cb.o\" function=\"%s\"/>\n"
                "  </sites>\n</patch>\n",
                banner ? "    <banner>" : "", banner ? banner : "", banner ? "</banner>\n" : "", obj, fn);
        assert_int_equal(fclose(f), 0);
}

static json_object *pack_json(const char *args, int *ret_exit, char *err, size_t err_size)
{
        const char *hvpatch = getenv("HVPATCH");
        char cmd[4096], out[65536];
        json_object *o;
        size_t n;
        FILE *f;
        int st;

        snprintf(cmd, sizeof(cmd), "%s --json pack %s 2>%s", hvpatch, args, path_in_tmp("stderr"));
        f = popen(cmd, "r");
        assert_non_null(f);
        n = fread(out, 1, sizeof(out) - 1, f);
        out[n] = '\0';
        st = pclose(f);
        *ret_exit = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        f = fopen(path_in_tmp("stderr"), "r");
        assert_non_null(f);
        n = fread(err, 1, err_size - 1, f);
        err[n] = '\0';
        fclose(f);
        o = json_tokener_parse(out);
        if (*ret_exit != 0)
                print_message("    hvpatch pack %s: exit %d, %s\n", args, *ret_exit, err);
        assert_non_null(o);
        return o;
}

static void test_pack_warns(void **state)
{
        char c61[600], c612[600], man[600], out[600], args[2048], err[8192];
        json_object *o, *ws, *w, *v;
        int code;

        (void)state;
        /* own copies: path_in_tmp() reuses its buffers */
        snprintf(c61, sizeof(c61), "%s", path_in_tmp("pack-cb61.o"));
        snprintf(c612, sizeof(c612), "%s", path_in_tmp("pack-cb612.o"));
        snprintf(man, sizeof(man), "%s", path_in_tmp("manifest.xml"));
        snprintf(out, sizeof(out), "%s", path_in_tmp("fit.hvp"));
        require_all();
        hvp_test_require(getenv("HVPATCH") && access(getenv("HVPATCH"), X_OK) == 0,
                         "HVPATCH does not name the built hvpatch (run through ctest)");
        compile_for(cfg61, CB, c61);
        compile_for(cfg612, CB, c612);

        /* the 6.1 build against 6.12's config: one IBT warning, on stderr and in the JSON */
        write_manifest(man, c61, CB_FN, NULL);
        snprintf(args, sizeof(args), "--kernel-config %s %s -o %s", cfg612, man, out);
        o = pack_json(args, &code, err, sizeof(err));
        assert_int_equal(code, 0);
        assert_true(json_object_object_get_ex(o, "warnings", &ws));
        assert_int_equal(json_object_array_length(ws), 1);
        w = json_object_array_get_idx(ws, 0);
        assert_true(json_object_object_get_ex(w, "kind", &v));
        assert_string_equal(json_object_get_string(v), "ibt");
        assert_true(json_object_object_get_ex(w, "function", &v));
        assert_string_equal(json_object_get_string(v), CB_FN);
        assert_true(json_object_object_get_ex(o, "kernel_config_release", &v));
        assert_true(strncmp(json_object_get_string(v), "6.12.", 5) == 0);
        assert_non_null(strstr(err, "hvpatch: warning: " CB_FN " (cb.o, ibt)"));
        assert_int_equal(access(out, F_OK), 0);         /* a warning does not stop the pack */
        json_object_put(o);

        /* --strict: the same warning fails, nothing is written */
        unlink(out);
        snprintf(args, sizeof(args), "--strict --kernel-config %s %s -o %s", cfg612, man, out);
        o = pack_json(args, &code, err, sizeof(err));
        assert_int_equal(code, 1);
        assert_true(json_object_object_get_ex(o, "error", &v));
        assert_non_null(strstr(json_object_get_string(v), "--strict"));
        assert_int_equal(access(out, F_OK), -1);
        json_object_put(o);

        /* the matching pair: an empty array; a banner of another release: a release warning */
        write_manifest(man, c612, CB_FN, "Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org) #1 SMP "
                                         "PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-11-26)");
        snprintf(args, sizeof(args), "--strict --kernel-config %s %s -o %s", cfg612, man, out);
        o = pack_json(args, &code, err, sizeof(err));
        assert_int_equal(code, 1);
        json_object_put(o);
        snprintf(args, sizeof(args), "--kernel-config %s %s -o %s", cfg612, man, out);
        o = pack_json(args, &code, err, sizeof(err));
        assert_int_equal(code, 0);
        assert_true(json_object_object_get_ex(o, "warnings", &ws));
        assert_int_equal(json_object_array_length(ws), 1);
        w = json_object_array_get_idx(ws, 0);
        assert_true(json_object_object_get_ex(w, "kind", &v));
        assert_string_equal(json_object_get_string(v), "release");
        json_object_put(o);

        write_manifest(man, c612, CB_FN, NULL);
        snprintf(args, sizeof(args), "--strict --kernel-config %s %s -o %s", cfg612, man, out);
        o = pack_json(args, &code, err, sizeof(err));
        assert_int_equal(code, 0);
        assert_true(json_object_object_get_ex(o, "warnings", &ws));
        assert_int_equal(json_object_array_length(ws), 0);
        assert_null(strstr(err, "warning"));
        json_object_put(o);

        /* a config that is not one: an error before anything is packed */
        snprintf(args, sizeof(args), "--kernel-config %s %s -o %s", man, man, out);
        o = pack_json(args, &code, err, sizeof(err));
        assert_int_equal(code, 1);
        assert_true(json_object_object_get_ex(o, "error", &v));
        assert_non_null(strstr(json_object_get_string(v), "CONFIG_X86_64"));
        json_object_put(o);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_kconfig_parse_synthetic),
                cmocka_unit_test(test_kconfig_load_gzip),
                cmocka_unit_test(test_kconfig_debian),
                cmocka_unit_test(test_cflags_script),
                cmocka_unit_test(test_matching_objects_do_not_warn),
                cmocka_unit_test(test_harmless_cross_builds),
                cmocka_unit_test(test_ibt_landing_pad_missing),
                cmocka_unit_test(test_plain_object_on_mitigated_kernels),
                cmocka_unit_test(test_thunks_on_unmitigated_kernel),
                cmocka_unit_test(test_notrack_jump_table),
                cmocka_unit_test(test_code_model_and_stack_protector),
                cmocka_unit_test(test_bad_object),
                cmocka_unit_test(test_pack_warns),
        };

        return hvp_test_exit(cmocka_run_group_tests(tests, setup, teardown));
}

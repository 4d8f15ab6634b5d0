/*
 * Bad marks (include/hvpatch/health.h): the store under a scratch state folder, with the
 * files a hostile or broken folder can hold (oversized, not JSON, naming another patch,
 * symlinks, a folder others can write, too many entries, stray names), the taint
 * flags' names, the audit action of a failed gate and the `hvpatch bad` command.
 */
#include <errno.h>
#include <fcntl.h>
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

#include "tests/unit/shell.h"

#include <hvpatch/health.h>
#include <hvpatch/hvpatch.h>

#define BID "6a2b4ac77585b8cf102cba771300e573c8489b69"
#define BID2 "00112233445566778899aabbccddeeff00112233"

static char tmpdir[] = "/tmp/hvp-test-badmark-XXXXXX";
static char state[600];

static int setup(void **st)
{
        (void)st;
        if (!mkdtemp(tmpdir))
                return -1;
        return 0;
}

static int teardown(void **st)
{
        (void)st;
        return run("rm -rf '%s'", tmpdir) == 0 ? 0 : -1;
}

/* A fresh state folder for each test. */
static int fresh(void **st)
{
        static unsigned n;

        (void)st;
        snprintf(state, sizeof(state), "%s/state%u", tmpdir, n++);
        return mkdir(state, 0700);
}

static struct hvp_bad_mark mark(const char *bid, const char *id)
{
        struct hvp_bad_mark m = { .seq = 4, .at = 1700000000 };

        snprintf(m.build_id, sizeof(m.build_id), "%s", bid);
        snprintf(m.patch_id, sizeof(m.patch_id), "%s", id);
        snprintf(m.series, sizeof(m.series), "cve");
        snprintf(m.domain, sizeof(m.domain), "web1");
        snprintf(m.kind, sizeof(m.kind), "taint");
        snprintf(m.reason, sizeof(m.reason), "the guest kernel set the taint flag W (warn)");
        return m;
}

static void write_file(const char *rel, const void *data, size_t len)
{
        char p[900];
        int fd;

        snprintf(p, sizeof(p), "%s/%s", state, rel);
        fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, data, len), (ssize_t)len);
        close(fd);
}

static void test_roundtrip(void **st)
{
        struct hvp_bad_mark m = mark(BID, "cve-4"), got;
        struct hvp_bad_list *l = NULL;
        size_t n;

        (void)st;
        /* no folder yet: nothing marked, an empty list */
        assert_int_equal(hvp_bad_mark_find(state, BID, "cve-4", &got), 0);
        assert_int_equal(hvp_bad_list_load(state, NULL, &l), 0);
        assert_int_equal(l->n, 0);
        hvp_bad_list_free(l);

        assert_int_equal(hvp_bad_mark_add(state, &m), 0);
        assert_int_equal(hvp_bad_mark_find(state, BID, "cve-4", &got), 1);
        assert_string_equal(got.build_id, BID);
        assert_string_equal(got.patch_id, "cve-4");
        assert_string_equal(got.series, "cve");
        assert_int_equal(got.seq, 4);
        assert_string_equal(got.domain, "web1");
        assert_int_equal(got.at, 1700000000);
        assert_string_equal(got.kind, "taint");
        assert_string_equal(got.reason, m.reason);
        /* another patch, another build: not marked; the build id in capitals is the same build */
        assert_int_equal(hvp_bad_mark_find(state, BID, "cve-5", NULL), 0);
        assert_int_equal(hvp_bad_mark_find(state, BID2, "cve-4", NULL), 0);
        {
                char upper[sizeof(BID)];

                for (size_t i = 0; i < sizeof(BID); i++)
                        upper[i] = BID[i] >= 'a' && BID[i] <= 'f' ? (char)(BID[i] - 'a' + 'A') : BID[i];
                assert_int_equal(hvp_bad_mark_find(state, upper, "cve-4", NULL), 1);
        }
        /* added again: replaced, not doubled */
        snprintf(m.reason, sizeof(m.reason), "the domain is crashed (panicked)");
        assert_int_equal(hvp_bad_mark_add(state, &m), 0);
        m = mark(BID2, "lab-1");
        assert_int_equal(hvp_bad_mark_add(state, &m), 0);
        m = mark(BID, "cve-2");
        assert_int_equal(hvp_bad_mark_add(state, &m), 0);
        assert_int_equal(hvp_bad_list_load(state, NULL, &l), 0);
        assert_int_equal(l->n, 3);
        /* sorted by build, then patch */
        assert_string_equal(l->marks[0].build_id, BID2);
        assert_string_equal(l->marks[1].patch_id, "cve-2");
        assert_string_equal(l->marks[2].patch_id, "cve-4");
        assert_string_equal(l->marks[2].reason, "the domain is crashed (panicked)");
        assert_non_null(hvp_bad_list_find(l, BID, "cve-2"));
        assert_null(hvp_bad_list_find(l, BID, "cve-3"));
        assert_null(hvp_bad_list_find(l, BID2, "cve-2"));
        hvp_bad_list_free(l);
        assert_int_equal(hvp_bad_list_load(state, BID, &l), 0);
        assert_int_equal(l->n, 2);
        hvp_bad_list_free(l);

        /* clear one, a missing one, a build, everything */
        assert_int_equal(hvp_bad_mark_clear(state, BID, "cve-2", &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(hvp_bad_mark_find(state, BID, "cve-2", NULL), 0);
        assert_int_equal(hvp_bad_mark_clear(state, BID, "cve-2", &n), -ENOENT);
        assert_non_null(strstr(hvp_last_error(), "no mark of cve-2"));
        assert_int_equal(hvp_bad_mark_clear(state, NULL, "cve-4", &n), -EINVAL);
        assert_int_equal(hvp_bad_mark_clear(state, BID, NULL, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(hvp_bad_mark_find(state, BID, "cve-4", NULL), 0);
        assert_int_equal(hvp_bad_mark_find(state, BID2, "lab-1", NULL), 1);
        assert_int_equal(hvp_bad_mark_clear(state, NULL, NULL, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(hvp_bad_list_load(state, NULL, &l), 0);
        assert_int_equal(l->n, 0);
        hvp_bad_list_free(l);
}

/* Names that would leave the folder or are not a build or a patch id are refused, changing nothing. */
static void test_bad_names(void **st)
{
        static const char *const ids[] = { "", "../x", "a/b", ".", "..x/y", "a b", "x\n" };
        static const char *const bids[] = { "", "a", "xyz0", "../00", "00/11", "0g" };
        struct hvp_bad_mark m;
        struct hvp_bad_list *l = NULL;
        char longid[300];

        (void)st;
        for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
                m = mark(BID, "x");
                snprintf(m.patch_id, sizeof(m.patch_id), "%s", ids[i]);
                if (strcmp(ids[i], ".") == 0)
                        continue;       /* a valid token: "..json" is a plain file name */
                assert_int_equal(hvp_bad_mark_add(state, &m), -EINVAL);
                assert_int_equal(hvp_bad_mark_find(state, BID, ids[i], NULL), 0);
        }
        for (size_t i = 0; i < sizeof(bids) / sizeof(bids[0]); i++) {
                m = mark(bids[i], "x");
                assert_int_equal(hvp_bad_mark_add(state, &m), -EINVAL);
                assert_int_equal(hvp_bad_mark_find(state, bids[i], "x", NULL), -EINVAL);
                assert_int_equal(hvp_bad_mark_clear(state, bids[i], "x", NULL), -EINVAL);
        }
        memset(longid, 'a', sizeof(longid) - 1);
        longid[sizeof(longid) - 1] = '\0';
        assert_int_equal(hvp_bad_mark_find(state, longid, "x", NULL), -EINVAL);
        assert_int_equal(hvp_bad_list_load(state, NULL, &l), 0);
        assert_int_equal(l->n, 0);
        hvp_bad_list_free(l);
        /* "." and ".." as patch ids are plain tokens: their files stay inside the folder */
        m = mark(BID, "..");
        assert_int_equal(hvp_bad_mark_add(state, &m), 0);
        assert_int_equal(hvp_bad_mark_find(state, BID, "..", NULL), 1);
        assert_int_equal(run("test -f '%s/bad/" BID "/...json'", state), 0);
}

/* Broken files count as marks (never let a bundle through) and are listed as unreadable. */
static void test_hostile_files(void **st)
{
        struct hvp_bad_mark m = mark(BID, "ok-1"), got;
        struct hvp_bad_list *l = NULL;
        char *big;

        (void)st;
        assert_int_equal(hvp_bad_mark_add(state, &m), 0);
        /* over the bound */
        big = malloc(HVP_BAD_FILE_MAX + 10);
        assert_non_null(big);
        memset(big, ' ', HVP_BAD_FILE_MAX + 10);
        big[0] = '{';
        big[HVP_BAD_FILE_MAX + 9] = '}';
        write_file("bad/" BID "/big-1.json", big, HVP_BAD_FILE_MAX + 10);
        free(big);
        write_file("bad/" BID "/notjson-1.json", "not json", 8);
        write_file("bad/" BID "/array-1.json", "[1,2]", 5);
        write_file("bad/" BID "/nul-1.json", "{\"a\":1}\0{}", 10);
        /* a file that names another patch (copied from elsewhere) */
        {
                static const char other[] = "{\"build_id\":\"" BID "\",\"patch_id\":\"ok-1\",\"reason\":\"x\"}";

                write_file("bad/" BID "/other-1.json", other, strlen(other));
        }
        /* stray names: skipped, counted */
        write_file("bad/" BID "/README", "x", 1);
        write_file("bad/" BID "/a b.json", "{}", 2);
        assert_int_equal(run("mkdir '%s/bad/not-a-build' && touch '%s/bad/stray'", state, state), 0);
        /* a symlink where a mark should be: not followed */
        assert_int_equal(run("ln -s /etc/passwd '%s/bad/" BID "/link-1.json'", state), 0);

        assert_int_equal(hvp_bad_mark_find(state, BID, "big-1", &got), 1);
        assert_string_equal(got.kind, "unreadable");
        assert_non_null(strstr(got.reason, "unreadable mark"));
        assert_int_equal(hvp_bad_mark_find(state, BID, "notjson-1", &got), 1);
        assert_non_null(strstr(got.reason, "not a JSON object"));
        assert_int_equal(hvp_bad_mark_find(state, BID, "array-1", &got), 1);
        assert_int_equal(hvp_bad_mark_find(state, BID, "nul-1", &got), 1);
        assert_non_null(strstr(got.reason, "NUL"));
        assert_int_equal(hvp_bad_mark_find(state, BID, "other-1", &got), 1);
        assert_non_null(strstr(got.reason, "not its own"));
        assert_int_equal(hvp_bad_mark_find(state, BID, "link-1", &got), 1);
        assert_non_null(strstr(got.reason, "symlink"));
        assert_int_equal(hvp_bad_mark_find(state, BID, "ok-1", &got), 1);
        assert_string_equal(got.kind, "taint");

        assert_int_equal(hvp_bad_list_load(state, NULL, &l), 0);
        assert_int_equal(l->n, 7);      /* ok-1 and six unreadable */
        assert_int_equal(l->n_skipped, 4);
        for (size_t i = 0; i < l->n; i++)
                assert_string_equal(l->marks[i].kind, strcmp(l->marks[i].patch_id, "ok-1") ? "unreadable" : "taint");
        hvp_bad_list_free(l);
        /* clearing a broken one by name works */
        assert_int_equal(hvp_bad_mark_clear(state, BID, "notjson-1", NULL), 0);
        assert_int_equal(hvp_bad_mark_find(state, BID, "notjson-1", NULL), 0);
        /* the symlink's target is untouched by a clear-all */
        assert_int_equal(hvp_bad_mark_clear(state, BID, NULL, NULL), 0);
        assert_int_equal(access("/etc/passwd", F_OK), 0);
        assert_int_equal(hvp_bad_mark_find(state, BID, "link-1", NULL), 0);
}

/* Folders others can write, or symlinked, are refused: -EPERM, nothing read or written. */
static void test_unsafe_folders(void **st)
{
        struct hvp_bad_mark m = mark(BID, "x-1");
        struct hvp_bad_list *l = NULL;

        (void)st;
        assert_int_equal(hvp_bad_mark_add(state, &m), 0);
        assert_int_equal(run("chmod 0777 '%s/bad'", state), 0);
        assert_int_equal(hvp_bad_mark_find(state, BID, "x-1", NULL), -EPERM);
        assert_non_null(strstr(hvp_last_error(), "writable by"));
        assert_int_equal(hvp_bad_list_load(state, NULL, &l), -EPERM);
        assert_int_equal(hvp_bad_mark_add(state, &m), -EPERM);
        assert_int_equal(run("chmod 0700 '%s/bad' && chmod 0770 '%s/bad/" BID "'", state, state), 0);
        assert_int_equal(hvp_bad_mark_find(state, BID, "x-1", NULL), -EPERM);
        assert_int_equal(run("chmod 0700 '%s/bad/" BID "'", state), 0);
        assert_int_equal(hvp_bad_mark_find(state, BID, "x-1", NULL), 1);
        /* a build folder that is a symlink to somewhere else */
        assert_int_equal(run("mkdir '%s/elsewhere' && ln -s ../elsewhere '%s/bad/" BID2 "'", state, state), 0);
        assert_int_equal(hvp_bad_mark_find(state, BID2, "x-1", NULL), -EPERM);
        m = mark(BID2, "x-1");
        assert_int_equal(hvp_bad_mark_add(state, &m), -EPERM);
        assert_int_equal(run("test -z \"$(ls -A '%s/elsewhere')\"", state), 0);
        assert_int_equal(hvp_bad_list_load(state, NULL, &l), -EPERM);
}

/* More entries than the bound: -E2BIG, not an endless read. */
static void test_count_bound(void **st)
{
        struct hvp_bad_mark m = mark(BID, "x-1");
        struct hvp_bad_list *l = NULL;

        (void)st;
        assert_int_equal(hvp_bad_mark_add(state, &m), 0);
        assert_int_equal(run("cd '%s/bad/" BID "' && i=0; while [ $i -le %u ]; do : > m$i.json; i=$((i+1)); done",
                             state, HVP_BAD_MAX_MARKS),
                         0);
        assert_int_equal(hvp_bad_list_load(state, BID, &l), -E2BIG);
        assert_non_null(strstr(hvp_last_error(), "more than"));
        /* find reads one file: not affected */
        assert_int_equal(hvp_bad_mark_find(state, BID, "x-1", NULL), 1);
        assert_int_equal(hvp_bad_mark_clear(state, BID, "x-1", NULL), 0);
}

static void test_taint_names(void **st)
{
        char buf[256], small[12];

        (void)st;
        assert_string_equal(hvp_taint_names(0, buf, sizeof(buf)), "none");
        assert_string_equal(hvp_taint_names(1u << 9, buf, sizeof(buf)), "W (warn)");
        assert_string_equal(hvp_taint_names((1u << 7) | (1u << 9) | (1ull << 40), buf, sizeof(buf)),
                            "D (die), W (warn), bit 40");
        assert_string_equal(hvp_taint_names((1u << 7) | (1u << 9), small, sizeof(small)), "D (die), W ");
        assert_int_equal(hvp_taint_letter(12), 'O');
        assert_null(hvp_taint_name(63));
        assert_int_equal(HVP_TAINT_FAILING, (1u << HVP_TAINT_WARN) | (1u << HVP_TAINT_DIE) | (1u << HVP_TAINT_BAD_PAGE) |
                                                    (1u << HVP_TAINT_SOFTLOCKUP) | (1u << HVP_TAINT_MACHINE_CHECK));
        assert_true(HVP_TAINT_FAILING & (1u << HVP_TAINT_WARN));
        assert_true(HVP_TAINT_FAILING & (1u << HVP_TAINT_DIE));
        assert_false(HVP_TAINT_FAILING & (1u << 12));   /* an out-of-tree module is not the patch's doing */
        assert_string_equal(hvp_health_result_name(HVP_HEALTH_FAIL), "fail");
}

/* A failed gate is audited under its own action name. */
static void test_audit_action(void **st)
{
        struct hvp_audit_event ev = { .action = HVP_AUDIT_HEALTH, .domain = "web1", .bundle_id = "cve-4", .seq = 4,
                                      .result = -EIO, .reason = "the guest kernel set the taint flag W (warn)",
                                      .pause_ms = -1 };
        char line[512];

        (void)st;
        hvp_audit_format(&ev, line, sizeof(line));
        assert_non_null(strstr(line, "action=health-fail "));
        assert_non_null(strstr(line, "bundle=\"cve-4\""));
        assert_non_null(strstr(line, "reason=\"the guest kernel set the taint flag W (warn)\""));
}

/* Read a whole small file (the CLI's stdout) into buf. */
static void slurp(const char *path, char *buf, size_t size)
{
        FILE *f = fopen(path, "r");
        size_t n;

        assert_non_null(f);
        n = fread(buf, 1, size - 1, f);
        buf[n] = '\0';
        fclose(f);
}

/* hvpatch bad: list and clear with --json, usage and errors (exit codes per README). */
static void test_cli(void **st)
{
        const char *hv = getenv("HVPATCH");
        struct hvp_bad_mark m = mark(BID, "cve-4");
        char out[sizeof(state) + 16], text[8192];
        json_object *o, *e;

        (void)st;
        if (!hv || access(hv, X_OK) != 0) {
                /* ctest sets HVPATCH; the binary is built with the tests */
                fail_msg("hvpatch not built or HVPATCH unset (%s)", hv ? hv : "unset");
        }
        snprintf(out, sizeof(out), "%s/cli.out", state);
        assert_int_equal(hvp_bad_mark_add(state, &m), 0);
        write_file("bad/" BID "/broken-1.json", "{", 1);
#define HV(args) run("HVPATCH_STATE_DIR='%s' '%s' " args " >'%s' 2>/dev/null", state, hv, out)
        assert_int_equal(HV("--json bad list"), 0);
        slurp(out, text, sizeof(text));
        o = json_tokener_parse(text);
        assert_non_null(o);
        assert_true(json_object_is_type(o, json_type_array));
        assert_int_equal(json_object_array_length(o), 2);
        e = json_object_array_get_idx(o, 0);
        assert_string_equal(json_object_get_string(json_object_object_get(e, "patch_id")), "broken-1");
        assert_string_equal(json_object_get_string(json_object_object_get(e, "kind")), "unreadable");
        e = json_object_array_get_idx(o, 1);
        assert_string_equal(json_object_get_string(json_object_object_get(e, "patch_id")), "cve-4");
        assert_string_equal(json_object_get_string(json_object_object_get(e, "at")), "2023-11-14T22:13:20Z");
        json_object_put(o);
        /* text: one line per mark */
        assert_int_equal(HV("bad list " BID), 0);
        slurp(out, text, sizeof(text));
        assert_non_null(strstr(text, BID " cve-4 (series cve, seq 4): taint on web1 at 2023-11-14T22:13:20Z"));
        /* errors: no such mark (1), a bad build id (1), usage (2) */
        assert_int_equal(HV("--json bad clear " BID " cve-9"), 1);
        slurp(out, text, sizeof(text));
        assert_non_null(strstr(text, "no mark of cve-9"));
        assert_non_null(strstr(text, "\"code\":1"));
        assert_int_equal(HV("--json bad list not-hex"), 1);
        assert_int_equal(HV("--json bad frob"), 2);
        assert_int_equal(HV("--json bad clear"), 2);
        assert_int_equal(HV("--json bad clear " BID), 0);
        slurp(out, text, sizeof(text));
        o = json_tokener_parse(text);
        assert_non_null(o);
        assert_int_equal(json_object_get_int(json_object_object_get(o, "cleared")), 2);
        json_object_put(o);
        assert_int_equal(HV("bad list"), 0);
        slurp(out, text, sizeof(text));
        assert_string_equal(text, "no bundle is marked bad\n");
#undef HV
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup(test_roundtrip, fresh),
                cmocka_unit_test_setup(test_bad_names, fresh),
                cmocka_unit_test_setup(test_hostile_files, fresh),
                cmocka_unit_test_setup(test_unsafe_folders, fresh),
                cmocka_unit_test_setup(test_count_bound, fresh),
                cmocka_unit_test(test_taint_names),
                cmocka_unit_test(test_audit_action),
                cmocka_unit_test_setup(test_cli, fresh),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}

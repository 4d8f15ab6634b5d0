/*
 * hvpatch rollout's rings (sizes, percentages, the last ring taking the rest) and
 * its state file (cli/rollout-state.c): a round trip, and hostile files refused
 * with a clear error, bounded in size and count, changing nothing.
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

#include "cli/rollout.h"
#include "shell.h"

static const char hash[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

static size_t layout(const char *spec, size_t n, size_t ends[ROLLOUT_MAX_RINGS])
{
        struct rollout_rings r;
        char why[256];

        assert_int_equal(rollout_rings_parse(spec, &r, why, sizeof(why)), 0);
        return rollout_rings_layout(&r, n, ends);
}

static void test_rings(void **state)
{
        size_t e[ROLLOUT_MAX_RINGS];

        (void)state;
        /* 1, 10% of 100 = 10, the rest */
        assert_int_equal(layout("1,10%,100%", 100, e), 3);
        assert_int_equal(e[0], 1);
        assert_int_equal(e[1], 10);
        assert_int_equal(e[2], 100);
        /* 3 guests: 10% rounds up to 1, which adds nobody after ring 1: dropped */
        assert_int_equal(layout("1,10%,100%", 3, e), 2);
        assert_int_equal(e[0], 1);
        assert_int_equal(e[1], 3);
        /* 1, 50% of 3 = 2, the rest */
        assert_int_equal(layout("1,50%,100%", 3, e), 3);
        assert_int_equal(e[0], 1);
        assert_int_equal(e[1], 2);
        assert_int_equal(e[2], 3);
        /* the last ring takes the rest even when it asks for less */
        assert_int_equal(layout("1,2", 10, e), 2);
        assert_int_equal(e[0], 1);
        assert_int_equal(e[1], 10);
        /* sizes over the guests are clamped; shrinking sizes add nobody */
        assert_int_equal(layout("5,2,7", 4, e), 1);
        assert_int_equal(e[0], 4);
        assert_int_equal(layout("100%", 1, e), 1);
        assert_int_equal(e[0], 1);
        /* no guest: no ring */
        assert_int_equal(layout("1,100%", 0, e), 0);
}

static void test_rings_bad(void **state)
{
        static const char *const bad[] = { "", "0", "1,,2", "1,", ",1", "101%", "0%", "-1", "1x", "1%%",
                                           "99999", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17", " 1",
                                           "18446744073709551617", "@", "@a,", "@a,,@b", "@a,1", "1,@a",
                                           "@a,@b,@a", "@a,b" };
        struct rollout_rings r;
        char why[256];

        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                why[0] = '\0';
                assert_int_equal(rollout_rings_parse(bad[i], &r, why, sizeof(why)), -EINVAL);
                assert_non_null(strstr(why, "--rings"));
        }
        assert_int_equal(rollout_rings_parse("1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16", &r, why, sizeof(why)), 0);
        assert_int_equal(r.n, 16);
        assert_false(r.by_group);
        /* rings by policy group, in the order given */
        assert_int_equal(rollout_rings_parse("@canary,@web-1,@rest", &r, why, sizeof(why)), 0);
        assert_true(r.by_group);
        assert_int_equal(r.n, 3);
        assert_string_equal(r.spec[0].group, "canary");
        assert_string_equal(r.spec[1].group, "web-1");
        assert_string_equal(r.spec[2].group, "rest");
}

static void test_state_round_trip(void **state)
{
        char dir[] = "/tmp/hvp-test-rollout-XXXXXX", path[256], why[512];
        struct rollout_guest g[3] = {
                { .domain = "a", .ring = 0, .status = RO_DONE, .detail = "applied p: \"pause\" 1 ms" },
                { .domain = "b", .ring = 1, .status = RO_FAILED, .exit_class = 6, .code = "health" },
                { .domain = "c\\d", .ring = 1, .status = RO_RUNNING },
        };
        struct rollout_state st = { .patch_id = "p1", .halted = true, .halt_exit = 6, .n_rings = 2, .n_guests = 3,
                                    .guests = g }, back;

        (void)state;
        memcpy(st.bundle_sha256, hash, sizeof(hash));
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/s.json", dir);
        assert_int_equal(rollout_state_load(path, &back, why, sizeof(why)), -ENOENT);
        assert_int_equal(rollout_state_save(path, &st), 0);
        assert_int_equal(rollout_state_load(path, &back, why, sizeof(why)), 0);
        assert_string_equal(back.bundle_sha256, hash);
        assert_string_equal(back.patch_id, "p1");
        assert_true(back.halted);
        assert_int_equal(back.halt_exit, 6);
        assert_int_equal(back.n_rings, 2);
        assert_int_equal(back.n_guests, 3);
        for (size_t i = 0; i < 3; i++) {
                assert_string_equal(back.guests[i].domain, g[i].domain);
                assert_int_equal(back.guests[i].ring, g[i].ring);
                assert_int_equal(back.guests[i].status, g[i].status);
                assert_int_equal(back.guests[i].exit_class, g[i].exit_class);
                assert_string_equal(back.guests[i].code, g[i].code);
                assert_string_equal(back.guests[i].detail, g[i].detail);
        }
        rollout_state_free(&back);
        /* no temporary file left behind */
        snprintf(why, sizeof(why), "%s.tmp", path);
        assert_int_equal(access(why, F_OK), -1);
        unlink(path);
        rmdir(dir);
}

#define GOOD_HEAD "{\"version\":1,\"bundle_sha256\":\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"," \
                  "\"patch_id\":\"p\",\"halted\":false,\"halt_exit\":0,\"rings\":2,\"guests\":"
#define G(d, r, s) "{\"domain\":\"" d "\",\"ring\":" #r ",\"status\":\"" s "\",\"exit\":0}"

static void test_state_hostile(void **state)
{
        static const struct {
                const char *text, *why;
        } bad[] = {
                { "", "not one JSON" },
                { "[]", "not a JSON object" },
                { GOOD_HEAD "[" G("a", 0, "done") "]} trailing", "not one JSON" },
                { "{\"version\":2}", "version" },
                { "{\"version\":1,\"bundle_sha256\":\"zz\"}", "bundle_sha256" },
                { GOOD_HEAD "[]}", "entries" },
                { GOOD_HEAD "{}}", "not an array" },
                { GOOD_HEAD "[" G("a", 2, "done") "]}", "guest 0" },
                { GOOD_HEAD "[" G("a", -1, "done") "]}", "guest 0" },
                { GOOD_HEAD "[" G("a", 0, "finished") "]}", "unknown status" },
                { GOOD_HEAD "[" G("", 0, "done") "]}", "guest 0" },
                { GOOD_HEAD "[" G("a\\u0001", 0, "done") "]}", "guest 0" },
                { GOOD_HEAD "[" G("a\\u0000b", 0, "done") "]}", "guest 0" },
                { GOOD_HEAD "[" G("a", 1, "done") "," G("b", 0, "done") "]}", "out of order" },
                { GOOD_HEAD "[" G("a", 0, "done") "," G("a", 1, "done") "]}", "twice" },
                { GOOD_HEAD "[{\"domain\":\"a\",\"ring\":0,\"status\":\"done\",\"exit\":256}]}", "exit" },
                { GOOD_HEAD "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}", "nested" },
                { "{\"version\":1,\"bundle_sha256\":\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\","
                  "\"patch_id\":\"p\",\"halted\":false,\"halt_exit\":0,\"rings\":17,\"guests\":[]}", "rings" },
        };
        struct rollout_state st;
        char why[512];

        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                why[0] = '\0';
                assert_int_equal(rollout_state_parse(bad[i].text, strlen(bad[i].text), &st, why, sizeof(why)), -EINVAL);
                if (!strstr(why, bad[i].why))
                        fail_msg("case %zu: '%s' does not say '%s'", i, why, bad[i].why);
                assert_null(st.guests);
                assert_int_equal(st.n_guests, 0);
        }
        /* the good form of the same document parses */
        {
                static const char ok[] = GOOD_HEAD "[" G("a", 0, "done") "," G("b", 1, "running") "]}";

                assert_int_equal(rollout_state_parse(ok, strlen(ok), &st, why, sizeof(why)), 0);
                assert_int_equal(st.n_guests, 2);
                assert_int_equal(st.guests[1].status, RO_RUNNING);
                rollout_state_free(&st);
        }
}

/* Too many guests, too large a file, a file that is not a regular file: refused, bounded. */
static void test_state_bounds(void **state)
{
        char dir[] = "/tmp/hvp-test-rollout-XXXXXX", path[256], why[512];
        struct rollout_state st;
        size_t cap = 64u << 20, len = 0;
        char *big = malloc(cap);
        FILE *f;

        (void)state;
        assert_non_null(big);
        len += (size_t)snprintf(big + len, cap - len, GOOD_HEAD "[");
        for (size_t i = 0; i <= ROLLOUT_MAX_GUESTS; i++)
                len += (size_t)snprintf(big + len, cap - len, "%s{\"domain\":\"g%zu\",\"ring\":0,\"status\":\"done\",\"exit\":0}",
                                        i ? "," : "", i);
        len += (size_t)snprintf(big + len, cap - len, "]}");
        assert_int_equal(rollout_state_parse(big, len, &st, why, sizeof(why)), -EINVAL);
        assert_non_null(strstr(why, "entries"));

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/big.json", dir);
        f = fopen(path, "w");
        assert_non_null(f);
        memset(big, ' ', ROLLOUT_STATE_MAX + 1);
        assert_int_equal(fwrite(big, 1, ROLLOUT_STATE_MAX + 1, f), ROLLOUT_STATE_MAX + 1);
        fclose(f);
        assert_int_equal(rollout_state_load(path, &st, why, sizeof(why)), -E2BIG);
        assert_non_null(strstr(why, "over"));
        unlink(path);
        assert_int_equal(rollout_state_load(dir, &st, why, sizeof(why)), -EINVAL);
        assert_non_null(strstr(why, "not a regular file"));
        /* a symlink is not followed */
        snprintf(path, sizeof(path), "%s/link.json", dir);
        assert_int_equal(symlink("/etc/passwd", path), 0);
        assert_true(rollout_state_load(path, &st, why, sizeof(why)) < 0);
        unlink(path);
        rmdir(dir);
        free(big);
}

static void slurp(const char *path, char *buf, size_t size)
{
        FILE *f = fopen(path, "r");
        size_t n;

        assert_non_null(f);
        n = fread(buf, 1, size - 1, f);
        buf[n] = '\0';
        fclose(f);
}

/*
 * The command, before it reaches libvirt: usage errors (2), a state file of another
 * bundle (2, the file unchanged), a hostile state file (1, the reason in the JSON error).
 */
static void test_cli(void **state)
{
        const char *hv = getenv("HVPATCH");
        char dir[] = "/tmp/hvp-test-rollout-XXXXXX", out[128], st[128], bundle[128], text[8192], before[8192];
        struct rollout_guest g = { .domain = "a", .status = RO_DONE };
        struct rollout_state other = { .patch_id = "p", .n_rings = 1, .n_guests = 1, .guests = &g };
        FILE *f;

        (void)state;
        if (!hv || access(hv, X_OK) != 0)
                fail_msg("hvpatch not built or HVPATCH unset (%s)", hv ? hv : "unset");
        assert_non_null(mkdtemp(dir));
        snprintf(out, sizeof(out), "%s/out", dir);
        snprintf(st, sizeof(st), "%s/st.json", dir);
        snprintf(bundle, sizeof(bundle), "%s/b.hvp", dir);
        f = fopen(bundle, "w");
        assert_non_null(f);
        fputs("not a bundle", f);
        fclose(f);
#define HV(args) run("HVPATCH_STATE_DIR='%s' '%s' " args " >'%s' 2>&1", dir, hv, out)
        assert_int_equal(HV("rollout"), 2);
        assert_int_equal(HV("rollout --rings 0 x.hvp"), 2);
        assert_int_equal(HV("rollout --parallel 0 x.hvp"), 2);
        assert_int_equal(HV("rollout --soak -1 x.hvp"), 2);
        assert_int_equal(HV("rollout --bogus x.hvp"), 2);
        assert_int_equal(run("HVPATCH_STATE_DIR='%s' '%s' rollout --json '%s/none.hvp' >'%s' 2>&1", dir, hv, dir, out),
                         1);
        slurp(out, text, sizeof(text));
        assert_non_null(strstr(text, "No such file"));

        /* another bundle's state: refused, untouched */
        memcpy(other.bundle_sha256, hash, sizeof(hash));
        assert_int_equal(rollout_state_save(st, &other), 0);
        slurp(st, before, sizeof(before));
        assert_int_equal(run("HVPATCH_STATE_DIR='%s' '%s' --json rollout --state '%s' '%s' >'%s' 2>&1", dir, hv, st,
                             bundle, out),
                         2);
        slurp(out, text, sizeof(text));
        assert_non_null(strstr(text, "another bundle"));
        slurp(st, text, sizeof(text));
        assert_string_equal(text, before);

        /* a hostile state file: refused with the reason, untouched */
        f = fopen(st, "w");
        assert_non_null(f);
        fputs("{\"version\":1,\"bundle_sha256\":\"0\"}", f);
        fclose(f);
        assert_int_equal(run("HVPATCH_STATE_DIR='%s' '%s' --json rollout --state '%s' '%s' >'%s' 2>&1", dir, hv, st,
                             bundle, out),
                         1);
        slurp(out, text, sizeof(text));
        assert_non_null(strstr(text, "not a rollout state file"));
        assert_non_null(strstr(text, "bundle_sha256"));
        assert_non_null(strstr(text, "\"code\":1"));
        slurp(st, text, sizeof(text));
        assert_string_equal(text, "{\"version\":1,\"bundle_sha256\":\"0\"}");
#undef HV
        run("rm -rf '%s'", dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_rings),          cmocka_unit_test(test_rings_bad),
                cmocka_unit_test(test_state_round_trip), cmocka_unit_test(test_state_hostile),
                cmocka_unit_test(test_state_bounds),     cmocka_unit_test(test_cli),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Desired state: the catalog folder (signed by the real minisign, unsigned, badly
 * signed, corrupt, untrusted, over the file bound) and the desired set and action per
 * series for synthetic guests (hvp_desired_compute), against a real policy file.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "tests/unit/prereq.h"
#include "tests/unit/shell.h"

#include <hvpatch/catalog.h>
#include <hvpatch/hvpatch.h>
#include <hvpatch/patch.h>

#define CUR "aaaaaaaa00000000000000000000000000000001"
#define OLD "bbbbbbbb00000000000000000000000000000001"
#define OTHER "cccccccc00000000000000000000000000000001"

static char tmpdir[] = "/tmp/hvp-test-catalog-XXXXXX";
static char cat_dir[512];
static struct hvp_policy *policy, *policy_closed;
static struct hvp_catalog *cat;
static bool have_minisign;

static void put(const char *name, const void *data, size_t len)
{
        char p[700];
        FILE *f;

        snprintf(p, sizeof(p), "%s/%s", cat_dir, name);
        f = fopen(p, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, len, f), len);
        fclose(f);
}

/* A bundle of one replace site for build id bid, written as catalog/NAME. */
static void bundle(const char *name, const char *id, const char *series, unsigned seq, const char *bid)
{
        char xml[1024];
        uint8_t *buf;
        size_t len;
        struct hvp_bundle_input in = { HVP_BUNDLE_MANIFEST, xml, 0 };

        snprintf(xml, sizeof(xml),
                 "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                 "<patch xmlns=\"urn:hvpatch:manifest:1\" id=\"%s\" series=\"%s\" sequence=\"%u\">\n"
                 "  <target os=\"linux\"><build-id>%s</build-id></target>\n"
                 "  <sites>\n"
                 "    <replace symbol=\"cmdline_proc_show\" offset=\"0x1b\" expected=\"be 0a 00 00 00\" new=\"be21000000\"/>\n"
                 "  </sites>\n"
                 "</patch>\n",
                 id, series, seq, bid);
        in.size = strlen(xml);
        assert_int_equal(hvp_bundle_write(&in, 1, &buf, &len), 0);
        put(name, buf, len);
        free(buf);
}

static void sign(const char *key, const char *name)
{
        assert_int_equal(run("cd '%s' && minisign -S -s ../%s.key -m '%s' -t t </dev/null >/dev/null 2>&1", cat_dir,
                             key, name),
                         0);
}

static struct hvp_policy *write_policy(const char *name, const char *window)
{
        char p[600], xml[2048];
        struct hvp_policy *pol = NULL;
        FILE *f;

        snprintf(xml, sizeof(xml),
                 "<policy version='1'>\n"
                 "  <key name='rel'><public-key-file>rel.pub</public-key-file><may-sign series='demo*'/></key>\n"
                 "  <group name='g'><select name='guest-*'/>%s\n"
                 "    <baseline name='new' current='yes'><kernel build-id='" CUR "'/></baseline>\n"
                 "    <baseline name='old'><kernel build-id='" OLD "'/></baseline>\n"
                 "  </group>\n"
                 "</policy>\n",
                 window);
        snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
        f = fopen(p, "w");
        assert_non_null(f);
        fputs(xml, f);
        fclose(f);
        if (hvp_policy_load(p, &pol) < 0)
                fail_msg("policy: %s", hvp_last_error());
        return pol;
}

static int setup(void **state)
{
        (void)state;
        if (!mkdtemp(tmpdir))
                return -1;
        snprintf(cat_dir, sizeof(cat_dir), "%s/catalog", tmpdir);
        have_minisign = system("minisign -v >/dev/null 2>&1") == 0;
        return 0;
}

static int teardown(void **state)
{
        (void)state;
        hvp_catalog_free(cat);
        hvp_policy_free(policy);
        hvp_policy_free(policy_closed);
        return run("rm -rf '%s'", tmpdir) == 0 ? 0 : -1;
}

static const struct hvp_catalog_entry *entry(const char *file)
{
        for (size_t i = 0; i < cat->n_entries; i++)
                if (strcmp(cat->entries[i].file, file) == 0)
                        return &cat->entries[i];
        fail_msg("no catalog entry %s", file);
        return NULL;
}

/* Build the catalog once: every kind of file. */
static void test_catalog_load(void **state)
{
        uint8_t junk[300];

        (void)state;
        hvp_test_require(have_minisign, "minisign is not installed (images/setup-host.sh installs it)");
        assert_int_equal(run("cd '%s' && mkdir catalog && minisign -G -W -p rel.pub -s rel.key </dev/null >/dev/null 2>&1"
                             " && minisign -G -W -p evil.pub -s evil.key </dev/null >/dev/null 2>&1",
                             tmpdir),
                         0);
        policy = write_policy("policy.xml", "<window/>");
        policy_closed = write_policy("closed.xml", "<window days='sat' tz='UTC'/>");

        bundle("a-s1.hvp", "demo-1", "demo", 1, CUR);
        sign("rel", "a-s1.hvp");
        bundle("b-s3.hvp", "demo-3", "demo", 3, CUR);
        sign("rel", "b-s3.hvp");
        bundle("c-s2.hvp", "demo-2", "demo", 2, CUR);
        sign("rel", "c-s2.hvp");
        bundle("d-other.hvp", "demo-9", "demo", 9, OTHER);      /* another kernel build */
        sign("rel", "d-other.hvp");
        bundle("e-unsigned.hvp", "demo-7", "demo", 7, CUR);     /* no .minisig */
        memset(junk, 0x5a, sizeof(junk));
        put("f-corrupt.hvp", junk, sizeof(junk));               /* signed garbage */
        sign("rel", "f-corrupt.hvp");
        bundle("g-badsig.hvp", "demo-8", "demo", 8, CUR);       /* the signature of another file */
        assert_int_equal(run("cp '%s/a-s1.hvp.minisig' '%s/g-badsig.hvp.minisig'", cat_dir, cat_dir), 0);
        bundle("h-evil.hvp", "demo-6", "demo", 6, CUR);         /* an untrusted key */
        sign("evil", "h-evil.hvp");
        bundle("i-lab.hvp", "lab-1", "lab", 1, CUR);            /* rel may not sign series lab */
        sign("rel", "i-lab.hvp");
        put("notes.txt", "x", 1);                               /* not a bundle: ignored */

        assert_int_equal(hvp_catalog_load(cat_dir, policy, &cat), 0);
        assert_int_equal(cat->n_entries, 9);
        assert_int_equal(cat->n_usable, 5);
        assert_string_equal(cat->entries[0].file, "a-s1.hvp");  /* sorted */
        assert_int_equal(entry("a-s1.hvp")->error, 0);
        assert_string_equal(entry("b-s3.hvp")->patch_id, "demo-3");
        assert_int_equal(entry("b-s3.hvp")->seq, 3);
        assert_string_equal(entry("b-s3.hvp")->target_build_id, CUR);
        assert_string_equal(entry("b-s3.hvp")->key_name, "rel");
        assert_int_equal(entry("e-unsigned.hvp")->error, -ENOKEY);
        assert_non_null(strstr(entry("e-unsigned.hvp")->reason, "not signed"));
        assert_int_not_equal(entry("f-corrupt.hvp")->error, 0);
        assert_non_null(strstr(entry("f-corrupt.hvp")->reason, "not a valid bundle"));
        assert_int_equal(entry("g-badsig.hvp")->error, -EKEYREJECTED);
        assert_int_equal(entry("h-evil.hvp")->error, -ENOKEY);
        assert_non_null(strstr(entry("h-evil.hvp")->reason, "signature refused"));
        assert_int_equal(entry("i-lab.hvp")->error, 0);
        assert_int_equal(entry("d-other.hvp")->error, 0);

        {
                struct hvp_catalog *none = NULL;
                char missing[600];

                snprintf(missing, sizeof(missing), "%s/nothing-here", tmpdir);
                assert_int_equal(hvp_catalog_load(missing, policy, &none), -ENOENT);
                assert_null(none);
                assert_int_equal(hvp_catalog_load(cat_dir, NULL, &none), -EINVAL);
        }
}

static struct hvp_guest_facts facts(const char *name, const char *bid)
{
        struct hvp_guest_facts f = { .os = HVP_OS_LINUX, .patch_area = true, .kernel_build_id = bid };
        struct tm tm = { .tm_year = 2024 - 1900, .tm_mon = 5, .tm_mday = 3, .tm_hour = 12 };    /* a Monday */

        snprintf(f.name, sizeof(f.name), "%s", name);
        f.now = timegm(&tm);
        return f;
}

static const struct hvp_series_plan *series(const struct hvp_desired_plan *p, const char *s)
{
        for (size_t i = 0; i < p->n_series; i++)
                if (strcmp(p->series[i].series, s) == 0)
                        return &p->series[i];
        return NULL;
}

static struct hvp_desired_plan *compute(const struct hvp_policy *pol, const char *name, const char *bid,
                                        const struct hvp_actual_patch *actual, size_t n)
{
        struct hvp_guest_facts f = facts(name, bid);
        struct hvp_desired_plan *p = NULL;

        assert_int_equal(hvp_desired_compute(cat, pol, &f, actual, n, &p), 0);
        assert_non_null(p);
        return p;
}

static void test_desired_selection(void **state)
{
        struct hvp_desired_plan *p;
        const struct hvp_series_plan *s;

        (void)state;
        hvp_test_require(cat != NULL, "no catalog (minisign missing)");
        /* Nothing applied: the highest allowed sequence for this kernel, not the other build's 9. */
        p = compute(policy, "guest-1", CUR, NULL, 0);
        assert_int_equal(p->compliance.verdict, HVP_VERDICT_ALLOW);
        assert_int_equal(p->n_series, 2);
        s = series(p, "demo");
        assert_non_null(s);
        assert_non_null(s->desired);
        assert_string_equal(s->desired->file, "b-s3.hvp");
        assert_int_equal(s->action, HVP_SYNC_APPLY);
        assert_false(s->outside_window);
        assert_false(s->has_actual);
        /* A series the signer may not sign: nothing desired, the refusal said. */
        s = series(p, "lab");
        assert_non_null(s);
        assert_null(s->desired);
        assert_int_equal(s->action, HVP_SYNC_NOTHING);
        assert_non_null(strstr(s->note, "i-lab.hvp refused"));
        hvp_desired_plan_free(p);

        /* Applied older, same, newer, dropped (the guest rebooted). */
        {
                static const struct {
                        uint64_t seq;
                        enum hvp_patch_state st;
                        enum hvp_sync_action want;
                        const char *note;
                } rows[] = {
                        { 1, HVP_PATCH_APPLIED, HVP_SYNC_REPLACE, "" },
                        { 3, HVP_PATCH_APPLIED, HVP_SYNC_NOTHING, "" },
                        { 5, HVP_PATCH_APPLIED, HVP_SYNC_NOTHING, "newer than the catalog" },
                        { 3, HVP_PATCH_DROPPED, HVP_SYNC_APPLY, "" },
                        { 1, HVP_PATCH_NOT_APPLIED, HVP_SYNC_APPLY, "" },
                        { 1, HVP_PATCH_FOREIGN, HVP_SYNC_NOTHING, "not touched" },
                };

                for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
                        struct hvp_actual_patch a = { "demo-x", "demo", rows[i].seq, rows[i].st };

                        p = compute(policy, "guest-1", CUR, &a, 1);
                        s = series(p, "demo");
                        assert_non_null(s);
                        if (s->action != rows[i].want)
                                fail_msg("row %zu: action %s, want %s", i, hvp_sync_action_name(s->action),
                                         hvp_sync_action_name(rows[i].want));
                        assert_non_null(strstr(s->note, rows[i].note));
                        assert_int_equal(s->has_actual,
                                         rows[i].st == HVP_PATCH_APPLIED || rows[i].st == HVP_PATCH_FOREIGN);
                        hvp_desired_plan_free(p);
                }
        }

        /* A patch applied by hand that the catalog does not hold: reported, kept. */
        {
                struct hvp_actual_patch a = { "hand-1", "hand", 4, HVP_PATCH_APPLIED };

                p = compute(policy, "guest-1", CUR, &a, 1);
                assert_int_equal(p->n_series, 3);
                s = series(p, "hand");
                assert_non_null(s);
                assert_int_equal(s->action, HVP_SYNC_UNMANAGED);
                assert_non_null(strstr(s->note, "kept"));
                assert_int_equal(series(p, "demo")->action, HVP_SYNC_APPLY);
                hvp_desired_plan_free(p);
        }

        /* An older baseline: reboot required for every series; no group: unmanaged. */
        p = compute(policy, "guest-1", OLD, NULL, 0);
        assert_int_equal(p->compliance.verdict, HVP_VERDICT_REBOOT_REQUIRED);
        assert_int_equal(series(p, "demo")->action, HVP_SYNC_REBOOT_REQUIRED);
        assert_null(series(p, "demo")->desired);
        hvp_desired_plan_free(p);
        p = compute(policy, "stranger", CUR, NULL, 0);
        assert_int_equal(p->compliance.verdict, HVP_VERDICT_UNMANAGED);
        assert_int_equal(series(p, "demo")->action, HVP_SYNC_UNMANAGED);
        hvp_desired_plan_free(p);

        /* The window is closed (Saturdays only, and it is a Monday): desired, but it waits. */
        p = compute(policy_closed, "guest-1", CUR, NULL, 0);
        s = series(p, "demo");
        assert_non_null(s->desired);
        assert_string_equal(s->desired->file, "b-s3.hvp");
        assert_int_equal(s->action, HVP_SYNC_APPLY);
        assert_true(s->outside_window);
        assert_non_null(strstr(s->note, "window"));
        hvp_desired_plan_free(p);

        /* A kernel no baseline knows: unmanaged; nothing is desired. */
        p = compute(policy, "guest-1", OTHER, NULL, 0);
        assert_int_equal(series(p, "demo")->action, HVP_SYNC_UNMANAGED);
        assert_null(series(p, "demo")->desired);
        hvp_desired_plan_free(p);
}

static struct hvp_desired_plan *compute_marked(const struct hvp_policy *pol, const char *bid,
                                               const struct hvp_actual_patch *actual, size_t n,
                                               const struct hvp_bad_list *bad)
{
        struct hvp_guest_facts f = facts("guest-1", bid);
        struct hvp_desired_plan *p = NULL;

        assert_int_equal(hvp_desired_compute_marked(cat, pol, &f, actual, n, bad, &p), 0);
        assert_non_null(p);
        return p;
}

/* Bundles the health gate marked bad for the build are left out; a newer marked one is named. */
static void test_desired_marked(void **state)
{
        struct hvp_bad_mark marks[3] = { 0 };
        struct hvp_bad_list bad = { .marks = marks };
        struct hvp_desired_plan *p;
        const struct hvp_series_plan *s;
        struct hvp_actual_patch two = { "demo-2", "demo", 2, HVP_PATCH_APPLIED };

        (void)state;
        hvp_test_require(cat != NULL, "no catalog (minisign missing)");
        snprintf(marks[0].build_id, sizeof(marks[0].build_id), "%s", CUR);
        snprintf(marks[0].patch_id, sizeof(marks[0].patch_id), "demo-3");
        snprintf(marks[0].reason, sizeof(marks[0].reason), "the guest kernel set the taint flag W (warn)");
        bad.n = 1;
        /* the newest is marked: the one below it is desired */
        p = compute_marked(policy, CUR, NULL, 0, &bad);
        s = series(p, "demo");
        assert_non_null(s->desired);
        assert_string_equal(s->desired->patch_id, "demo-2");
        assert_int_equal(s->action, HVP_SYNC_APPLY);
        assert_non_null(s->marked);
        assert_string_equal(s->marked->patch_id, "demo-3");
        assert_non_null(strstr(s->note, "demo-3 (seq 3) is marked bad"));
        assert_non_null(strstr(s->note, "taint flag W"));
        assert_non_null(strstr(s->note, "desired instead: demo-2"));
        hvp_desired_plan_free(p);
        /* ... and already applied: nothing to do but to say the newest is held back */
        p = compute_marked(policy, CUR, &two, 1, &bad);
        s = series(p, "demo");
        assert_int_equal(s->action, HVP_SYNC_MARKED_BAD);
        assert_string_equal(hvp_sync_action_name(s->action), "marked-bad");
        assert_string_equal(s->desired->patch_id, "demo-2");
        hvp_desired_plan_free(p);
        /* the same without marks (hvp_desired_compute): the newest replaces it */
        p = compute(policy, "guest-1", CUR, &two, 1);
        assert_int_equal(series(p, "demo")->action, HVP_SYNC_REPLACE);
        assert_null(series(p, "demo")->marked);
        hvp_desired_plan_free(p);
        /* every one of the series marked: nothing desired */
        snprintf(marks[1].build_id, sizeof(marks[1].build_id), "%s", CUR);
        snprintf(marks[1].patch_id, sizeof(marks[1].patch_id), "demo-2");
        snprintf(marks[2].build_id, sizeof(marks[2].build_id), "%s", CUR);
        snprintf(marks[2].patch_id, sizeof(marks[2].patch_id), "demo-1");
        bad.n = 3;
        p = compute_marked(policy, CUR, NULL, 0, &bad);
        s = series(p, "demo");
        assert_null(s->desired);
        assert_int_equal(s->action, HVP_SYNC_MARKED_BAD);
        assert_string_equal(s->marked->patch_id, "demo-3");
        hvp_desired_plan_free(p);
        /* only an older one marked: it holds nothing back */
        bad.marks = &marks[2];
        bad.n = 1;
        p = compute_marked(policy, CUR, NULL, 0, &bad);
        s = series(p, "demo");
        assert_string_equal(s->desired->patch_id, "demo-3");
        assert_int_equal(s->action, HVP_SYNC_APPLY);
        assert_null(s->marked);
        assert_null(strstr(s->note, "marked"));
        hvp_desired_plan_free(p);
        /* a mark for another build does not count */
        snprintf(marks[2].build_id, sizeof(marks[2].build_id), "%s", OTHER);
        snprintf(marks[2].patch_id, sizeof(marks[2].patch_id), "demo-3");
        p = compute_marked(policy, CUR, NULL, 0, &bad);
        assert_string_equal(series(p, "demo")->desired->patch_id, "demo-3");
        hvp_desired_plan_free(p);
        /* closed window: the unmarked one is desired and waits */
        bad.marks = marks;
        bad.n = 1;
        p = compute_marked(policy_closed, CUR, NULL, 0, &bad);
        s = series(p, "demo");
        assert_string_equal(s->desired->patch_id, "demo-2");
        assert_int_equal(s->action, HVP_SYNC_APPLY);
        assert_true(s->outside_window);
        assert_non_null(strstr(s->note, "window"));
        hvp_desired_plan_free(p);
}

/* More .hvp files than the bound: the rest are entries with -E2BIG, never read. */
static void test_file_bound(void **state)
{
        struct hvp_catalog *big = NULL;
        size_t over = 0;

        (void)state;
        hvp_test_require(policy != NULL, "no policy (minisign missing)");
        assert_int_equal(run("cd '%s' && mkdir big && cd big && i=0; while [ $i -lt %u ]; do "
                             "echo junk > f$i.hvp; i=$((i+1)); done",
                             tmpdir, HVP_CATALOG_MAX_FILES + 20),
                         0);
        snprintf(cat_dir, sizeof(cat_dir), "%s/big", tmpdir);
        assert_int_equal(hvp_catalog_load(cat_dir, policy, &big), 0);
        assert_int_equal(big->n_entries, HVP_CATALOG_MAX_FILES + 20);
        assert_int_equal(big->n_usable, 0);
        for (size_t i = 0; i < big->n_entries; i++)
                if (big->entries[i].error == -E2BIG && strstr(big->entries[i].reason, "more than"))
                        over++;
        assert_int_equal(over, 20);
        hvp_catalog_free(big);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_catalog_load),
                cmocka_unit_test(test_desired_selection),
                cmocka_unit_test(test_desired_marked),
                cmocka_unit_test(test_file_bound),
        };

        return hvp_test_exit(cmocka_run_group_tests(tests, setup, teardown));
}

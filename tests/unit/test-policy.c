/*
 * The policy file and the authorization decision: table-driven decisions, schema and
 * semantic rejections, maintenance windows across midnight and daylight-saving edges
 * (tz database), and the domain-XML facts extractor on XML that libvirt itself wrote
 * (virsh's test:///default driver, no daemon needed).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>

#include "tests/unit/shell.h"
#include <sodium.h>

#include <hvpatch/hvpatch.h>
#include <hvpatch/policy.h>

/* Rows start from a good guest and override what they test. */
#pragma GCC diagnostic ignored "-Woverride-init"
#pragma GCC diagnostic ignored "-Woverride-init-side-effects"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

#define CUR "aaaaaaaa00000000000000000000000000000001"
#define CUR2 "aaaaaaaa00000000000000000000000000000002"
#define OLD "bbbbbbbb00000000000000000000000000000001"
#define DBK "cccccccc00000000000000000000000000000001"
#define WINK "dddddddd00000000000000000000000000000001"
#define UNKNOWN "eeeeeeee00000000000000000000000000000001"
#define DB_UUID "6f1c2d3e-0000-4000-8000-00000000abcd"

static char key_release[64], key_lab[64];
static struct hvp_policy *policy;
static char tmpdir[256];

static const char policy_fmt[] =
        "<?xml version='1.0'?>\n"
        "<policy version='1'>\n"
        "  <key name='release'>\n"
        "    <public-key>%s</public-key>\n"
        "    <may-sign series='cve-*'/>\n"
        "  </key>\n"
        "  <key name='lab'>\n"
        "    <public-key>\n      %s\n    </public-key>\n"
        "    <may-sign patch-id='lab-*' series='lab'/>\n"
        "  </key>\n"
        "  <group name='web'>\n"
        "    <select name='web-*'/>\n"
        "    <select metadata='web'/>\n"
        "    <require uefi='yes' secure-boot='yes' os='linux' patch-area='yes'/>\n"
        "    <window days='mon-fri' start='02:00' end='04:00' tz='Europe/Berlin'/>\n"
        "    <pause max-ms='50'/>\n"
        "    <baseline name='2024-06' current='yes'>\n"
        "      <kernel build-id='" CUR "'/>\n"
        "      <kernel build-id='" CUR2 "' description='cloud flavour'/>\n"
        "    </baseline>\n"
        "    <baseline name='2024-03'><kernel build-id='" OLD "'/></baseline>\n"
        "  </group>\n"
        "  <group name='db'>\n"
        "    <select uuid='6F1C2D3E-0000-4000-8000-00000000ABCD'/>\n"
        "    <window days='sat' start='22:00' end='02:00' tz='America/New_York'/>\n"
        "    <baseline name='db-1' current='yes'><kernel build-id='" DBK "'/></baseline>\n"
        "  </group>\n"
        "  <group name='dst'>\n"
        "    <select name='dst-*'/>\n"
        "    <window start='02:00' end='03:00' tz='Europe/Berlin'/>\n"
        "    <baseline name='b' current='yes'><kernel build-id='" CUR "'/></baseline>\n"
        "  </group>\n"
        "  <group name='win'>\n"
        "    <select name='win-*'/>\n"
        "    <require os='windows'/>\n"
        "    <window/>\n"
        "    <baseline name='w' current='yes'><kernel build-id='" WINK "'/></baseline>\n"
        "  </group>\n"
        "  <group name='win-allowed'>\n"
        "    <select metadata='win-ok'/>\n"
        "    <patchguard allow='yes'/>\n"
        "    <window days='sun-mon' tz='UTC'/>\n"
        "    <baseline name='w' current='yes'><kernel build-id='" WINK "'/></baseline>\n"
        "  </group>\n"
        "  <group name='catch-all'>\n"
        "    <select name='*'/>\n"
        "    <window/>\n"
        "    <baseline name='none' current='yes'><kernel build-id='ffffffffffffffff'/></baseline>\n"
        "  </group>\n"
        "</policy>\n";

static char policy_xml[8192];

/* The base64 line of a minisign public key for a fresh Ed25519 key. */
static void make_key(char out[64])
{
        uint8_t pk[32], sk[64], blob[42];

        crypto_sign_keypair(pk, sk);
        memcpy(blob, "Ed", 2);
        randombytes_buf(blob + 2, 8);
        memcpy(blob + 10, pk, 32);
        sodium_bin2base64(out, 64, blob, sizeof(blob), sodium_base64_VARIANT_ORIGINAL);
}

static time_t utc(int y, int mon, int d, int h, int min)
{
        struct tm tm = { .tm_year = y - 1900, .tm_mon = mon - 1, .tm_mday = d, .tm_hour = h, .tm_min = min };

        return timegm(&tm);
}

static int setup(void **state)
{
        const char *t = getenv("TMPDIR");
        int r;

        if (sodium_init() < 0)
                return -1;
        make_key(key_release);
        make_key(key_lab);
        snprintf(policy_xml, sizeof(policy_xml), policy_fmt, key_release, key_lab);
        r = hvp_policy_parse(policy_xml, strlen(policy_xml), NULL, &policy);
        if (r < 0) {
                fprintf(stderr, "policy: %s\n", hvp_last_error());
                return -1;
        }
        snprintf(tmpdir, sizeof(tmpdir), "%s/hvp-policy-XXXXXX", t && t[0] ? t : "/tmp");
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
        hvp_policy_free(policy);
        run("rm -rf '%s'", tmpdir);
        return 0;
}

/* ---- decisions ---- */

struct row {
        const char *what;
        /* guest */
        const char *name, *uuid, *meta;
        bool uefi, sb, pa, direct;
        enum hvp_kernel_secure_boot ksb;        /* the guest kernel's own view */
        enum hvp_os os;
        enum hvp_patchguard pg;
        const char *build;
        time_t now;
        const char *applied_series;
        uint64_t applied_seq;
        /* bundle */
        const char *patch_id, *series, *target, *signer;
        uint64_t seq;
        /* expected */
        enum hvp_verdict verdict;
        const char *group;
        enum hvp_reason_code reasons[8];
};

/* Tuesday 2024-06-04 00:30 UTC is 02:30 in Berlin (CEST): inside web's window. */
#define T_WEB_IN utc(2024, 6, 4, 0, 30)
#define GOOD_WEB .name = "web-1", .uefi = true, .sb = true, .pa = true, .os = HVP_OS_LINUX, .build = CUR, \
                 .now = T_WEB_IN, .patch_id = "cve-2024-1-p2", .series = "cve-2024-1", .seq = 2,          \
                 .target = CUR, .signer = "release", .group = "web"

static void check_row(const struct row *row)
{
        struct hvp_applied_series applied = { row->applied_series, row->applied_seq };
        struct hvp_guest_facts f = {
                .firmware_uefi = row->uefi,
                .secure_boot = row->sb,
                .direct_kernel = row->direct,
                .kernel_secure_boot = row->ksb,
                .os = row->os,
                .patchguard = row->pg,
                .patch_area = row->pa,
                .kernel_build_id = row->build,
                .applied = row->applied_series ? &applied : NULL,
                .n_applied = row->applied_series ? 1 : 0,
                .now = row->now,
        };
        struct hvp_bundle_facts b = {
                .patch_id = row->patch_id,
                .series = row->series,
                .seq = row->seq,
                .target_build_id = row->target,
                .signer = row->signer,
        };
        struct hvp_decision d;
        size_t expected = 0;
        int r;

        snprintf(f.name, sizeof(f.name), "%s", row->name ? row->name : "");
        snprintf(f.uuid, sizeof(f.uuid), "%s", row->uuid ? row->uuid : "");
        if (row->meta) {
                snprintf(f.groups[0], sizeof(f.groups[0]), "%s", row->meta);
                f.n_groups = 1;
        }
        r = hvp_policy_authorize(policy, &f, &b, &d);
        if (d.verdict != row->verdict)
                fail_msg("%s: verdict %s, expected %s (%s)", row->what, hvp_verdict_name(d.verdict),
                         hvp_verdict_name(row->verdict), d.n_reasons ? d.reasons[0].text : "no reason");
        assert_int_equal(r, row->verdict == HVP_VERDICT_ALLOW ? 0 : -EPERM);
        if (row->group && strcmp(d.group, row->group) != 0)
                fail_msg("%s: group \"%s\", expected \"%s\"", row->what, d.group, row->group);
        for (; expected < N_ELEMS(row->reasons) && row->reasons[expected]; expected++) {
                bool found = false;

                for (size_t i = 0; i < d.n_reasons; i++)
                        found |= d.reasons[i].code == row->reasons[expected];
                if (!found)
                        fail_msg("%s: reason %s missing", row->what, hvp_reason_name(row->reasons[expected]));
        }
        if (d.n_reasons != expected) {
                for (size_t i = 0; i < d.n_reasons; i++)
                        print_message("  %s: %s\n", hvp_reason_name(d.reasons[i].code), d.reasons[i].text);
                fail_msg("%s: %zu reasons, expected %zu", row->what, d.n_reasons, expected);
        }
        for (size_t i = 0; i < d.n_reasons; i++)
                assert_true(d.reasons[i].text[0] != '\0');
}

static void test_decisions(void **state)
{
        const struct row rows[] = {
        { "all good", GOOD_WEB, .verdict = HVP_VERDICT_ALLOW },
        { "second current kernel", GOOD_WEB, .build = CUR2, .target = CUR2, .verdict = HVP_VERDICT_ALLOW },
        { "selected by metadata", GOOD_WEB, .name = "frontend", .meta = "web", .verdict = HVP_VERDICT_ALLOW },
        { "build ids compare case-insensitively", GOOD_WEB, .build = "AAAAAAAA00000000000000000000000000000001",
          .verdict = HVP_VERDICT_ALLOW },
        { "selected by uuid (any case)", GOOD_WEB, .name = "x", .uuid = DB_UUID, .build = DBK, .target = DBK,
          .now = utc(2024, 6, 9, 3, 0), .group = "db", .verdict = HVP_VERDICT_ALLOW },
        { "no uefi", GOOD_WEB, .uefi = false, .sb = false, .verdict = HVP_VERDICT_REFUSE,
          .reasons = { HVP_REASON_NOT_UEFI, HVP_REASON_NO_SECURE_BOOT } },
        { "uefi without secure boot", GOOD_WEB, .sb = false, .verdict = HVP_VERDICT_REFUSE,
          .reasons = { HVP_REASON_NO_SECURE_BOOT } },
        { "the guest kernel saw Secure Boot on", GOOD_WEB, .ksb = HVP_KERNEL_SB_ENABLED,
          .verdict = HVP_VERDICT_ALLOW },
        { "the XML enables Secure Boot, the guest kernel booted without it", GOOD_WEB,
          .ksb = HVP_KERNEL_SB_DISABLED, .verdict = HVP_VERDICT_REFUSE, .reasons = { HVP_REASON_NO_SECURE_BOOT } },
        { "Secure Boot firmware, but QEMU loads the kernel (OVMF's unverified fallback)", GOOD_WEB,
          .direct = true, .ksb = HVP_KERNEL_SB_ENABLED, .verdict = HVP_VERDICT_REFUSE,
          .reasons = { HVP_REASON_NO_SECURE_BOOT } },
        { "no patch area", GOOD_WEB, .pa = false, .verdict = HVP_VERDICT_REFUSE, .reasons = { HVP_REASON_NO_PATCH_AREA } },
        { "wrong os", GOOD_WEB, .os = HVP_OS_UNKNOWN, .verdict = HVP_VERDICT_REFUSE, .reasons = { HVP_REASON_WRONG_OS } },
        { "outside window (04:30 Berlin)", GOOD_WEB, .now = utc(2024, 6, 4, 2, 30), .verdict = HVP_VERDICT_REFUSE,
          .reasons = { HVP_REASON_OUTSIDE_WINDOW } },
        { "window start is inclusive (02:00 Berlin)", GOOD_WEB, .now = utc(2024, 6, 4, 0, 0),
          .verdict = HVP_VERDICT_ALLOW },
        { "window end is exclusive (04:00 Berlin)", GOOD_WEB, .now = utc(2024, 6, 4, 2, 0),
          .verdict = HVP_VERDICT_REFUSE, .reasons = { HVP_REASON_OUTSIDE_WINDOW } },
        { "02:30 UTC is not 02:30 Berlin", GOOD_WEB, .now = utc(2024, 6, 4, 2, 30) - 0, .verdict = HVP_VERDICT_REFUSE,
          .reasons = { HVP_REASON_OUTSIDE_WINDOW } },
        { "winter time: 01:30 UTC is 02:30 CET", GOOD_WEB, .now = utc(2024, 1, 9, 1, 30), .verdict = HVP_VERDICT_ALLOW },
        { "winter time: 00:30 UTC is 01:30 CET", GOOD_WEB, .now = utc(2024, 1, 9, 0, 30),
          .verdict = HVP_VERDICT_REFUSE, .reasons = { HVP_REASON_OUTSIDE_WINDOW } },
        { "saturday is not mon-fri", GOOD_WEB, .now = utc(2024, 6, 8, 0, 30), .verdict = HVP_VERDICT_REFUSE,
          .reasons = { HVP_REASON_OUTSIDE_WINDOW } },
        { "old baseline", GOOD_WEB, .build = OLD, .target = OLD, .verdict = HVP_VERDICT_REBOOT_REQUIRED,
          .reasons = { HVP_REASON_OLD_BASELINE } },
        { "old baseline, bundle for current", GOOD_WEB, .build = OLD, .verdict = HVP_VERDICT_REBOOT_REQUIRED,
          .reasons = { HVP_REASON_OLD_BASELINE, HVP_REASON_TARGET_MISMATCH } },
        { "unknown kernel", GOOD_WEB, .build = UNKNOWN, .target = UNKNOWN, .verdict = HVP_VERDICT_UNMANAGED,
          .reasons = { HVP_REASON_UNKNOWN_KERNEL } },
        { "kernel build id not known", GOOD_WEB, .build = NULL, .verdict = HVP_VERDICT_UNMANAGED,
          .reasons = { HVP_REASON_UNKNOWN_KERNEL, HVP_REASON_TARGET_MISMATCH } },
        { "bundle for another kernel", GOOD_WEB, .target = CUR2, .verdict = HVP_VERDICT_REFUSE,
          .reasons = { HVP_REASON_TARGET_MISMATCH } },
        { "newer sequence replaces", GOOD_WEB, .applied_series = "cve-2024-1", .applied_seq = 1,
          .verdict = HVP_VERDICT_ALLOW },
        { "same sequence", GOOD_WEB, .applied_series = "cve-2024-1", .applied_seq = 2, .verdict = HVP_VERDICT_REFUSE,
          .reasons = { HVP_REASON_NOT_NEWER } },
        { "older sequence", GOOD_WEB, .applied_series = "cve-2024-1", .applied_seq = 7, .verdict = HVP_VERDICT_REFUSE,
          .reasons = { HVP_REASON_ROLLBACK } },
        { "other series does not matter", GOOD_WEB, .applied_series = "cve-2023-9", .applied_seq = 99,
          .verdict = HVP_VERDICT_ALLOW },
        { "signer unknown", GOOD_WEB, .signer = "mallory", .verdict = HVP_VERDICT_REFUSE,
          .reasons = { HVP_REASON_SIGNER_UNKNOWN } },
        { "signer may not sign this series", GOOD_WEB, .signer = "lab", .verdict = HVP_VERDICT_REFUSE,
          .reasons = { HVP_REASON_SIGNER_NOT_ALLOWED } },
        { "lab key: patch id and series both match", GOOD_WEB, .signer = "lab", .patch_id = "lab-7", .series = "lab",
          .verdict = HVP_VERDICT_ALLOW },
        { "lab key: series matches, patch id not", GOOD_WEB, .signer = "lab", .patch_id = "prod-7", .series = "lab",
          .verdict = HVP_VERDICT_REFUSE, .reasons = { HVP_REASON_SIGNER_NOT_ALLOWED } },
        { "release key: glob on series", GOOD_WEB, .series = "hotfix-1", .verdict = HVP_VERDICT_REFUSE,
          .reasons = { HVP_REASON_SIGNER_NOT_ALLOWED } },
        { "no group", GOOD_WEB, .name = "", .verdict = HVP_VERDICT_UNMANAGED, .group = "",
          .reasons = { HVP_REASON_NO_GROUP } },
        { "first matching group wins (catch-all last)", GOOD_WEB, .name = "mail-1", .group = "catch-all",
          .verdict = HVP_VERDICT_UNMANAGED, .reasons = { HVP_REASON_UNKNOWN_KERNEL } },
        { "everything wrong at once", GOOD_WEB, .uefi = false, .sb = false, .pa = false,
          .now = utc(2024, 6, 8, 12, 0), .target = CUR2, .signer = "lab", .applied_series = "cve-2024-1",
          .applied_seq = 3, .verdict = HVP_VERDICT_REFUSE,
          .reasons = { HVP_REASON_NOT_UEFI, HVP_REASON_NO_SECURE_BOOT, HVP_REASON_NO_PATCH_AREA,
                       HVP_REASON_OUTSIDE_WINDOW, HVP_REASON_TARGET_MISMATCH, HVP_REASON_SIGNER_NOT_ALLOWED,
                       HVP_REASON_ROLLBACK } },
        /* Across midnight: Saturday 22:00 to Sunday 02:00 New York (EDT, UTC-4 in June). */
        { "db: saturday 23:00", GOOD_WEB, .name = "db", .uuid = DB_UUID, .build = DBK, .target = DBK,
          .now = utc(2024, 6, 9, 3, 0), .group = "db", .verdict = HVP_VERDICT_ALLOW },
        { "db: sunday 01:59 belongs to saturday's window", GOOD_WEB, .name = "db", .uuid = DB_UUID, .build = DBK,
          .target = DBK, .now = utc(2024, 6, 9, 5, 59), .group = "db", .verdict = HVP_VERDICT_ALLOW },
        { "db: sunday 02:00 is past it", GOOD_WEB, .name = "db", .uuid = DB_UUID, .build = DBK, .target = DBK,
          .now = utc(2024, 6, 9, 6, 0), .group = "db", .verdict = HVP_VERDICT_REFUSE,
          .reasons = { HVP_REASON_OUTSIDE_WINDOW } },
        { "db: saturday 21:59", GOOD_WEB, .name = "db", .uuid = DB_UUID, .build = DBK, .target = DBK,
          .now = utc(2024, 6, 9, 1, 59), .group = "db", .verdict = HVP_VERDICT_REFUSE,
          .reasons = { HVP_REASON_OUTSIDE_WINDOW } },
        { "db: friday 23:00 (not saturday)", GOOD_WEB, .name = "db", .uuid = DB_UUID, .build = DBK, .target = DBK,
          .now = utc(2024, 6, 8, 3, 0), .group = "db", .verdict = HVP_VERDICT_REFUSE,
          .reasons = { HVP_REASON_OUTSIDE_WINDOW } },
        { "db: saturday 01:00 (friday night) is not in", GOOD_WEB, .name = "db", .uuid = DB_UUID, .build = DBK,
          .target = DBK, .now = utc(2024, 6, 8, 5, 0), .group = "db", .verdict = HVP_VERDICT_REFUSE,
          .reasons = { HVP_REASON_OUTSIDE_WINDOW } },
        /* PatchGuard */
        { "windows guarded by patchguard", GOOD_WEB, .name = "win-1", .os = HVP_OS_WINDOWS, .build = WINK,
          .target = WINK, .group = "win", .verdict = HVP_VERDICT_REFUSE, .reasons = { HVP_REASON_PATCHGUARD } },
        { "windows, patchguard state unknown counts as present", GOOD_WEB, .name = "win-1", .os = HVP_OS_WINDOWS,
          .pg = HVP_PATCHGUARD_UNKNOWN, .build = WINK, .target = WINK, .group = "win",
          .verdict = HVP_VERDICT_REFUSE, .reasons = { HVP_REASON_PATCHGUARD } },
        { "windows without patchguard", GOOD_WEB, .name = "win-1", .os = HVP_OS_WINDOWS,
          .pg = HVP_PATCHGUARD_ABSENT, .build = WINK, .target = WINK, .group = "win", .verdict = HVP_VERDICT_ALLOW },
        { "patchguard explicitly allowed (monday)", GOOD_WEB, .name = "w", .meta = "win-ok", .os = HVP_OS_WINDOWS,
          .now = utc(2024, 6, 3, 12, 0), .pg = HVP_PATCHGUARD_PRESENT, .build = WINK, .target = WINK, .group = "win-allowed",
          .verdict = HVP_VERDICT_ALLOW },
        { "linux guest in the windows group", GOOD_WEB, .name = "win-2", .os = HVP_OS_LINUX, .build = WINK,
          .target = WINK, .group = "win", .verdict = HVP_VERDICT_REFUSE, .reasons = { HVP_REASON_WRONG_OS } },
        /* sun-mon window in UTC, checked on a Tuesday. */
        { "days range sun-mon excludes tuesday", GOOD_WEB, .name = "w", .meta = "win-ok", .os = HVP_OS_WINDOWS,
          .pg = HVP_PATCHGUARD_PRESENT, .build = WINK, .target = WINK, .group = "win-allowed",
          .verdict = HVP_VERDICT_REFUSE, .reasons = { HVP_REASON_OUTSIDE_WINDOW } },
        { "missing bundle facts", GOOD_WEB, .series = NULL, .verdict = HVP_VERDICT_REFUSE,
          .reasons = { HVP_REASON_BAD_FACTS } },
};

        for (size_t i = 0; i < N_ELEMS(rows); i++)
                check_row(&rows[i]);
}

static void test_decision_details(void **state)
{
        struct hvp_guest_facts f = { .name = "web-9", .firmware_uefi = true, .secure_boot = true,
                                     .os = HVP_OS_LINUX, .patch_area = true, .kernel_build_id = OLD,
                                     .now = T_WEB_IN };
        struct hvp_bundle_facts b = { "cve-1", "cve-1", 1, OLD, "release" };
        struct hvp_decision d;

        assert_int_equal(hvp_policy_authorize(policy, &f, &b, &d), -EPERM);
        assert_string_equal(d.group, "web");
        assert_string_equal(d.baseline, "2024-03");
        assert_int_equal(d.max_pause_ms, 50);
        assert_non_null(strstr(hvp_last_error(), "reboot-required"));
        /* A group with no <pause> gets the default bound. */
        strcpy(f.name, "dst-1");
        f.kernel_build_id = CUR;
        b.target_build_id = CUR;
        hvp_policy_authorize(policy, &f, &b, &d);
        assert_string_equal(d.group, "dst");
        assert_int_equal(d.max_pause_ms, HVP_POLICY_DEFAULT_MAX_PAUSE_MS);
        /* Bad arguments leave ret untouched. */
        memset(&d, 0x5a, sizeof(d));
        assert_int_equal(hvp_policy_authorize(policy, NULL, &b, &d), -EINVAL);
        assert_int_equal(((unsigned char *)&d)[0], 0x5a);
}

/* Minutes inside the dst group's window (02:00-03:00 Berlin, every day) on one UTC day span. */
static int minutes_in_window(time_t from)
{
        struct hvp_guest_facts f = { .name = "dst-1", .kernel_build_id = CUR };
        struct hvp_bundle_facts b = { "cve-1", "cve-1", 1, CUR, "release" };
        struct hvp_decision d;
        int n = 0;

        for (time_t t = from; t < from + 24 * 3600; t += 60) {
                f.now = t;
                n += hvp_policy_authorize(policy, &f, &b, &d) == 0;
        }
        return n;
}

static void test_dst_edges(void **state)
{
        /* Local days in Berlin run from 23:00 or 22:00 UTC of the day before. */
        assert_int_equal(minutes_in_window(utc(2024, 3, 29, 23, 0)), 60);   /* Saturday 30 March, CET */
        assert_int_equal(minutes_in_window(utc(2024, 3, 30, 23, 0)), 0);    /* 31 March: 02:00-03:00 skipped */
        assert_int_equal(minutes_in_window(utc(2024, 4, 1, 22, 0)), 60);    /* CEST */
        assert_int_equal(minutes_in_window(utc(2024, 10, 26, 22, 0)), 120); /* 27 Oct: 02:00-03:00 twice */
        /* The instants themselves: 02:30 local happens twice on 27 October. */
        {
                struct hvp_guest_facts f = { .name = "dst-1", .kernel_build_id = CUR, .now = utc(2024, 10, 27, 0, 30) };
                struct hvp_bundle_facts b = { "cve-1", "cve-1", 1, CUR, "release" };
                struct hvp_decision d;

                assert_int_equal(hvp_policy_authorize(policy, &f, &b, &d), 0);    /* 02:30 CEST */
                f.now = utc(2024, 10, 27, 1, 30);
                assert_int_equal(hvp_policy_authorize(policy, &f, &b, &d), 0);    /* 02:30 CET */
                f.now = utc(2024, 10, 27, 2, 30);
                assert_int_equal(hvp_policy_authorize(policy, &f, &b, &d), -EPERM); /* 03:30 CET */
        }
        /* TZ of the process is left as it was. */
        setenv("TZ", "Asia/Tokyo", 1);
        minutes_in_window(utc(2024, 3, 29, 23, 0));
        assert_string_equal(getenv("TZ"), "Asia/Tokyo");
        unsetenv("TZ");
        minutes_in_window(utc(2024, 3, 29, 23, 0));
        assert_null(getenv("TZ"));
}

/* ---- policy files that must be refused ---- */

static char *policy_with(const char *from, const char *to)
{
        static char out[16384];
        const char *p = strstr(policy_xml, from);
        size_t n;

        assert_non_null(p);
        n = (size_t)(p - policy_xml);
        memcpy(out, policy_xml, n);
        snprintf(out + n, sizeof(out) - n, "%s%s", to, p + strlen(from));
        return out;
}

static void expect_refused(const char *what, const char *xml, const char *in_reason)
{
        struct hvp_policy *p = NULL;
        int r = hvp_policy_parse(xml, strlen(xml), NULL, &p);

        if (r != -EINVAL && r != -E2BIG)
                fail_msg("%s: returned %d (%s)", what, r, r ? hvp_last_error() : "accepted");
        assert_null(p);
        if (in_reason && !strstr(hvp_last_error(), in_reason))
                fail_msg("%s: reason \"%s\" lacks \"%s\"", what, hvp_last_error(), in_reason);
}

static void test_bad_policies(void **state)
{
        char key_with_bad_char[64];

        expect_refused("no version", policy_with("<policy version='1'>", "<policy>"), "schema");
        expect_refused("version 2", policy_with("version='1'", "version='2'"), "schema");
        expect_refused("unknown element", policy_with("<pause max-ms='50'/>", "<pause max-ms='50'/><x/>"), "schema");
        expect_refused("unknown attribute", policy_with("<select name='web-*'/>", "<select name='web-*' x='1'/>"),
                       "schema");
        expect_refused("bad day", policy_with("days='mon-fri'", "days='mon-fry'"), "schema");
        expect_refused("bad hour", policy_with("start='02:00'", "start='25:00'"), "schema");
        expect_refused("24:30", policy_with("end='04:00'", "end='24:30'"), "schema");
        expect_refused("empty window", policy_with("end='04:00'", "end='02:00'"), "starts when it ends");
        expect_refused("unknown zone", policy_with("tz='Europe/Berlin'", "tz='Mars/Olympus_Mons'"), "unknown time zone");
        expect_refused("zone path escape", policy_with("tz='Europe/Berlin'", "tz='../../etc/passwd'"), "schema");
        expect_refused("zone that is a folder", policy_with("tz='Europe/Berlin'", "tz='Europe'"), "time zone");
        expect_refused("max-ms 0", policy_with("max-ms='50'", "max-ms='0'"), "schema");
        expect_refused("max-ms huge", policy_with("max-ms='50'", "max-ms='99999999999'"), "schema");
        expect_refused("two current baselines",
                       policy_with("<baseline name='2024-03'>", "<baseline name='2024-03' current='yes'>"),
                       "current baselines");
        expect_refused("no current baseline",
                       policy_with("<baseline name='db-1' current='yes'>", "<baseline name='db-1'>"), "current");
        expect_refused("build id not hex", policy_with("build-id='" OLD "'", "build-id='xyz'"), "schema");
        expect_refused("build id in two baselines", policy_with("build-id='" OLD "'", "build-id='" CUR "'"),
                       "listed twice");
        expect_refused("duplicate group", policy_with("<group name='db'>", "<group name='web'>"), "second group");
        expect_refused("duplicate baseline",
                       policy_with("<baseline name='2024-03'>", "<baseline name='2024-06'>"), "second baseline");
        expect_refused("duplicate key name", policy_with("<key name='lab'>", "<key name='release'>"), "second key");
        expect_refused("duplicate key id", policy_with(key_lab, key_release), "same key id");
        strcpy(key_with_bad_char, key_release);
        key_with_bad_char[5] = '*';
        expect_refused("key not base64", policy_with(key_release, key_with_bad_char), NULL);
        key_with_bad_char[5] = key_release[5];
        key_with_bad_char[0] = key_release[0] == 'R' ? 'Q' : 'R';   /* algorithm bytes no longer "Ed" */
        expect_refused("key algorithm", policy_with(key_release, key_with_bad_char), "algorithm");
        expect_refused("key without may-sign", policy_with("<may-sign series='cve-*'/>", ""), "schema");
        expect_refused("group without window",
                       policy_with("<window days='sat' start='22:00' end='02:00' tz='America/New_York'/>", ""),
                       "schema");
        expect_refused("relative key file without a folder",
                       "<policy version='1'><key name='k'><public-key-file>k.pub</public-key-file>"
                       "<may-sign series='*'/></key></policy>",
                       "relative key file");
        expect_refused("bad uuid", policy_with("6F1C2D3E-0000", "6F1C2D3X-0000"), "schema");
        expect_refused("not well-formed", policy_with("</policy>", "</polic>"), "well-formed");
        expect_refused("entity bomb",
                       "<?xml version='1.0'?><!DOCTYPE policy [<!ENTITY a 'aaaaaaaaaa'>"
                       "<!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'>]><policy version='1'>&b;</policy>",
                       "DOCTYPE");
        expect_refused("external entity",
                       "<?xml version='1.0'?><!DOCTYPE policy SYSTEM 'file:///etc/passwd'><policy version='1'/>",
                       "DOCTYPE");
        expect_refused("namespaced root", "<policy xmlns='urn:x' version='1'/>", NULL);
        expect_refused("empty", "", NULL);
        expect_refused("group selecting nothing", policy_with("<select name='dst-*'/>", ""), "schema");
}

static void test_minimal_and_empty_policies(void **state)
{
        static const char empty[] = "<policy version='1'/>";
        struct hvp_guest_facts f = { .name = "web-1", .kernel_build_id = CUR };
        struct hvp_bundle_facts b = { "cve-1", "cve-1", 1, CUR, "release" };
        const struct hvp_minisign_key *keys;
        struct hvp_policy *p;
        struct hvp_decision d;

        assert_int_equal(hvp_policy_parse(empty, strlen(empty), NULL, &p), 0);
        assert_int_equal(hvp_policy_keys(p, &keys), 0);
        assert_int_equal(hvp_policy_authorize(p, &f, &b, &d), -EPERM);
        assert_int_equal(d.verdict, HVP_VERDICT_UNMANAGED);
        hvp_policy_free(p);
        assert_int_equal(hvp_policy_keys(policy, &keys), 2);
        assert_string_equal(keys[0].name, "release");
        assert_string_equal(keys[1].name, "lab");
        hvp_policy_free(NULL);
}

/* A policy on disk with a relative key file, and a bundle signed by the real minisign. */
static void test_policy_file_and_verify(void **state)
{
        char path[512], xml[1024];
        struct hvp_signature_info info;
        struct hvp_policy *p = NULL;
        void *msg, *sig;
        size_t mlen, slen;
        FILE *f;

        assert_int_equal(run("cd '%s' && mkdir keys && minisign -G -W -p keys/rel.pub -s rel.key </dev/null >/dev/null 2>&1 "
                             "&& head -c 5000 /dev/urandom > b.hvp && minisign -S -s rel.key -m b.hvp -t 'tc' "
                             "</dev/null >/dev/null",
                             tmpdir),
                         0);
        snprintf(xml, sizeof(xml),
                 "<policy version='1'><key name='rel'><public-key-file>keys/rel.pub</public-key-file>"
                 "<may-sign series='*'/></key></policy>");
        snprintf(path, sizeof(path), "%s/policy.xml", tmpdir);
        f = fopen(path, "w");
        assert_non_null(f);
        fputs(xml, f);
        fclose(f);
        assert_int_equal(hvp_policy_load(path, &p), 0);
        snprintf(path, sizeof(path), "%s/b.hvp", tmpdir);
        assert_int_equal(hvp_read_file_bounded(path, HVP_BUNDLE_MAX, &msg, &mlen), 0);
        snprintf(path, sizeof(path), "%s/b.hvp.minisig", tmpdir);
        assert_int_equal(hvp_read_file_bounded(path, HVP_MINISIGN_SIG_FILE_MAX, &sig, &slen), 0);
        assert_int_equal(hvp_policy_verify(p, msg, mlen, sig, slen, 0, &info), 0);
        assert_string_equal(info.key_name, "rel");
        assert_string_equal(info.trusted_comment, "tc");
        ((char *)msg)[100] ^= 1;
        assert_int_equal(hvp_policy_verify(p, msg, mlen, sig, slen, 0, &info), -EKEYREJECTED);
        /* The test policy's keys did not sign it. */
        ((char *)msg)[100] ^= 1;
        assert_int_equal(hvp_policy_verify(policy, msg, mlen, sig, slen, 0, &info), -ENOKEY);
        free(msg);
        free(sig);
        hvp_policy_free(p);
        assert_int_equal(hvp_policy_load("/nonexistent/policy.xml", &p), -ENOENT);
        /* A key file that is missing makes the policy invalid. */
        snprintf(path, sizeof(path), "%s/policy.xml", tmpdir);
        run("rm '%s/keys/rel.pub'", tmpdir);
        assert_int_equal(hvp_policy_load(path, &p), -EINVAL);
        assert_non_null(strstr(hvp_last_error(), "rel.pub"));
}

/* The example in docs/policy.md parses, and means what the text says. */
static void test_documented_example(void **state)
{
        const char *src = getenv("HVP_SOURCE_DIR");
        char path[512];
        char *doc, *start, *end;
        size_t len;
        struct hvp_policy *p = NULL;
        struct hvp_guest_facts f = { .name = "web-3", .firmware_uefi = true, .secure_boot = true,
                                     .os = HVP_OS_LINUX, .patch_area = true,
                                     .kernel_build_id = "0123456789abcdef0123456789abcdef01234567",
                                     .now = utc(2024, 6, 8, 21, 0) };   /* Saturday 23:00 CEST */
        struct hvp_bundle_facts b = { "cve-9-p1", "cve-9", 1, "0123456789abcdef0123456789abcdef01234567",
                                      "release" };
        struct hvp_decision d;

        assert_non_null(src);
        snprintf(path, sizeof(path), "%s/docs/policy.md", src);
        assert_int_equal(hvp_read_file_bounded(path, 1 << 20, (void **)&doc, &len), 0);
        start = strstr(doc, "```xml\n");
        assert_non_null(start);
        start += 7;
        end = strstr(start, "```");
        assert_non_null(end);
        *end = '\0';
        assert_int_equal(run("mkdir -p '%s/keys' && minisign -G -W -p '%s/keys/lab.pub' -s '%s/lab.key' "
                             "</dev/null >/dev/null 2>&1", tmpdir, tmpdir, tmpdir), 0);
        if (hvp_policy_parse(start, strlen(start), tmpdir, &p) != 0)
                fail_msg("docs/policy.md example: %s", hvp_last_error());
        /* An older baseline in the Saturday-night window: reboot required. */
        assert_int_equal(hvp_policy_authorize(p, &f, &b, &d), -EPERM);
        assert_int_equal(d.verdict, HVP_VERDICT_REBOOT_REQUIRED);
        /* Only that: the window is open and the release key may sign cve-* series. */
        assert_int_equal(d.n_reasons, 1);
        assert_int_equal(d.reasons[0].code, HVP_REASON_OLD_BASELINE);
        assert_int_equal(d.max_pause_ms, 50);
        free(doc);
        hvp_policy_free(p);
}


/* ---- baseline moves: boot images and reboot windows ---- */

static const char move_policy[] =
        "<policy version='1'>\n"
        "  <group name='farm'>\n"
        "    <select name='farm-*'/>\n"
        "    <window days='mon-fri' start='08:00' end='18:00' tz='UTC'/>\n"
        "    <window days='sun' start='02:00' end='04:00' tz='Europe/Berlin' reboot='yes'/>\n"
        "    <baseline name='b2' current='yes' kernel='/srv/k/6.12/vmlinuz' initrd='/srv/k/initrd &amp; co'\n"
        "              cmdline='console=ttyS0 quiet'>\n"
        "      <kernel build-id='" CUR "'/>\n"
        "    </baseline>\n"
        "    <baseline name='b1' kernel='/srv/k/6.1/vmlinuz'><kernel build-id='" OLD "'/></baseline>\n"
        "  </group>\n"
        "  <group name='lab'>\n"
        "    <select name='lab-*'/>\n"
        "    <window start='00:00' end='12:00'/>\n"
        "    <window start='12:00' end='24:00' reboot='no'/>\n"
        "    <reboot allow='yes' shutdown-timeout='0'/>\n"
        "    <baseline name='l2' current='yes' kernel='/srv/k/l2'><kernel build-id='" CUR2 "'/></baseline>\n"
        "  </group>\n"
        "  <group name='plain'>\n"
        "    <select name='plain-*'/>\n"
        "    <window/>\n"
        "    <baseline name='p' current='yes'><kernel build-id='" DBK "'/></baseline>\n"
        "  </group>\n"
        "</policy>\n";

static void boot_of(const struct hvp_policy *p, const char *name, time_t now, struct hvp_baseline_boot *b)
{
        struct hvp_guest_facts f = { .now = now };

        snprintf(f.name, sizeof(f.name), "%s", name);
        assert_int_equal(hvp_policy_baseline_boot(p, &f, b), 0);
}

static void test_baseline_boot(void **state)
{
        struct hvp_policy *p = NULL;
        struct hvp_baseline_boot b;

        if (hvp_policy_parse(move_policy, strlen(move_policy), NULL, &p) != 0)
                fail_msg("move policy: %s", hvp_last_error());
        /* Sunday 2024-06-09 01:30 UTC is 03:30 in Berlin: the reboot window is open */
        boot_of(p, "farm-1", utc(2024, 6, 9, 1, 30), &b);
        assert_string_equal(b.group, "farm");
        assert_string_equal(b.baseline, "b2");
        assert_string_equal(b.kernel, "/srv/k/6.12/vmlinuz");
        assert_string_equal(b.initrd, "/srv/k/initrd & co");
        assert_true(b.has_cmdline);
        assert_string_equal(b.cmdline, "console=ttyS0 quiet");
        assert_true(b.reboot_windows);
        assert_true(b.reboot_now);
        assert_string_equal(b.reboot_when, "sun 02:00-04:00 Europe/Berlin");
        assert_int_equal(b.shutdown_timeout_s, HVP_POLICY_DEFAULT_SHUTDOWN_TIMEOUT_S);
        /* Monday 10:00 UTC: a hotpatch window, but not one for reboots */
        boot_of(p, "farm-1", utc(2024, 6, 10, 10, 0), &b);
        assert_true(b.reboot_windows);
        assert_false(b.reboot_now);
        /* the group's <reboot allow>, and a window that says no */
        boot_of(p, "lab-1", utc(2024, 6, 10, 10, 0), &b);
        assert_true(b.reboot_now);
        assert_int_equal(b.shutdown_timeout_s, 0);
        assert_false(b.has_cmdline);
        assert_string_equal(b.initrd, "");
        assert_string_equal(b.reboot_when, "daily 00:00-12:00 UTC");
        boot_of(p, "lab-1", utc(2024, 6, 10, 13, 0), &b);
        assert_false(b.reboot_now);
        /* no reboot anywhere, no image */
        boot_of(p, "plain-1", utc(2024, 6, 10, 13, 0), &b);
        assert_string_equal(b.group, "plain");
        assert_false(b.reboot_windows);
        assert_false(b.reboot_now);
        assert_string_equal(b.kernel, "");
        assert_string_equal(b.reboot_when, "none");
        /* no group */
        boot_of(p, "other", utc(2024, 6, 10, 13, 0), &b);
        assert_string_equal(b.group, "");
        assert_false(b.reboot_now);
        assert_int_equal(hvp_policy_baseline_boot(p, NULL, &b), -EINVAL);
        hvp_policy_free(p);
}

static char *move_policy_with(const char *from, const char *to)
{
        static char out[16384];
        const char *p = strstr(move_policy, from);
        size_t n;

        assert_non_null(p);
        n = (size_t)(p - move_policy);
        memcpy(out, move_policy, n);
        snprintf(out + n, sizeof(out) - n, "%s%s", to, p + strlen(from));
        return out;
}

static void test_baseline_boot_bad(void **state)
{
        static char big[4096];

        expect_refused("relative kernel", move_policy_with("kernel='/srv/k/l2'", "kernel='vmlinuz'"),
                       "not an absolute path");
        expect_refused("kernel /", move_policy_with("kernel='/srv/k/l2'", "kernel='/'"), "schema");
        expect_refused("relative initrd", move_policy_with("initrd='/srv/k/initrd &amp; co'", "initrd='./i'"),
                       "not an absolute path");
        expect_refused("control character", move_policy_with("kernel='/srv/k/l2'", "kernel='/srv/k&#10;l2'"),
                       "control character");
        expect_refused("cmdline control character",
                       move_policy_with("cmdline='console=ttyS0 quiet'", "cmdline='a&#9;b'"), "control character");
        expect_refused("initrd without kernel",
                       move_policy_with("kernel='/srv/k/l2'", "initrd='/srv/k/i'"), "no kernel image");
        expect_refused("cmdline without kernel",
                       move_policy_with("kernel='/srv/k/l2'", "cmdline='quiet'"), "no kernel image");
        memset(big, 'a', sizeof(big) - 1);
        big[0] = '/';
        expect_refused("kernel path too long", move_policy_with("/srv/k/l2", big), "schema");
        expect_refused("reboot twice in a group",
                       move_policy_with("<reboot allow='yes' shutdown-timeout='0'/>",
                                        "<reboot allow='yes'/><reboot allow='no'/>"), "schema");
        expect_refused("shutdown-timeout too long",
                       move_policy_with("shutdown-timeout='0'", "shutdown-timeout='3601'"), "schema");
        expect_refused("shutdown-timeout not a number",
                       move_policy_with("shutdown-timeout='0'", "shutdown-timeout='-1'"), "schema");
        expect_refused("reboot allow maybe", move_policy_with("allow='yes'", "allow='maybe'"), "schema");
        expect_refused("window reboot maybe", move_policy_with("reboot='no'", "reboot='maybe'"), "schema");
        expect_refused("reboot before the windows",
                       move_policy_with("<window start='00:00' end='12:00'/>",
                                        "<reboot allow='yes'/><window start='00:00' end='12:00'/>"), "schema");
}

/* ---- domain XML, as libvirt writes it ---- */

/* Define a domain in virsh's test driver, optionally set hvpatch metadata, dump its XML. */
static char *libvirt_xml(const char *input, const char *metadata)
{
        char in[512], out[512], cmd[2048];
        char *buf = malloc(65536);
        size_t n;
        FILE *f;

        snprintf(in, sizeof(in), "%s/dom-in.xml", tmpdir);
        snprintf(out, sizeof(out), "%s/dom-out.xml", tmpdir);
        f = fopen(in, "w");
        assert_non_null(f);
        fputs(input, f);
        fclose(f);
        if (metadata)
                snprintf(cmd, sizeof(cmd),
                         "virsh -q -c test:///default \"define '%s'; metadata d --config --uri " HVP_METADATA_NS
                         " --key hvpatch --set '%s'; dumpxml d\" > '%s' 2>/dev/null",
                         in, metadata, out);
        else
                snprintf(cmd, sizeof(cmd), "virsh -q -c test:///default \"define '%s'; dumpxml d\" > '%s' 2>/dev/null",
                         in, out);
        assert_int_equal(run("%s", cmd), 0);
        f = fopen(out, "r");
        assert_non_null(f);
        n = fread(buf, 1, 65535, f);
        fclose(f);
        buf[n] = '\0';
        /* virsh prints its own lines ("Domain 'd' defined", "Metadata modified") before the XML. */
        memmove(buf, strstr(buf, "<domain"), strlen(strstr(buf, "<domain")) + 1);
        return buf;
}

#define DOM_HEAD "<domain type='qemu'><name>d</name><uuid>6F1C2D3E-0000-4000-8000-00000000ABCD</uuid>" \
                 "<memory unit='MiB'>256</memory><vcpu>2</vcpu>"

static void test_domain_xml(void **state)
{
        static const struct {
                const char *what, *xml, *metadata;
                bool uefi, sb;
                enum hvp_os os;
                const char *group;
                bool direct;
        } cases[] = {
                { "UEFI, Secure Boot (loader secure='yes')",
                  DOM_HEAD "<metadata><libosinfo:libosinfo xmlns:libosinfo='http://libosinfo.org/xmlns/libvirt/domain/1.0'>"
                           "<libosinfo:os id='http://debian.org/debian/12'/></libosinfo:libosinfo></metadata>"
                           "<os><type arch='x86_64' machine='q35'>hvm</type>"
                           "<loader readonly='yes' secure='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.ms.fd</loader>"
                           "<nvram template='/usr/share/OVMF/OVMF_VARS_4M.ms.fd'>/var/lib/d_VARS.fd</nvram></os>"
                           "<features><acpi/><apic/><smm state='on'/></features></domain>",
                  "<group>web</group>", true, true, HVP_OS_LINUX, "web", false },
                { "UEFI without Secure Boot (LAB.md's guest)",
                  DOM_HEAD "<os><type arch='x86_64' machine='q35'>hvm</type>"
                           "<loader readonly='yes' secure='no' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>"
                           "<nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>/var/lib/d_VARS.fd</nvram>"
                           "<kernel>/boot/vmlinuz</kernel><cmdline>console=ttyS0</cmdline></os></domain>",
                  NULL, true, false, HVP_OS_UNKNOWN, NULL, true },
                { "Secure Boot firmware with a kernel QEMU loads",
                  DOM_HEAD "<os><type arch='x86_64' machine='q35'>hvm</type>"
                           "<loader readonly='yes' secure='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.ms.fd</loader>"
                           "<kernel> /boot/vmlinuz </kernel></os><features><smm state='on'/></features></domain>",
                  NULL, true, true, HVP_OS_UNKNOWN, NULL, true },
                { "an empty <kernel/> loads nothing",
                  DOM_HEAD "<os><type arch='x86_64' machine='q35'>hvm</type>"
                           "<loader readonly='yes' secure='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.ms.fd</loader>"
                           "<kernel/></os><features><smm state='on'/></features></domain>",
                  NULL, true, true, HVP_OS_UNKNOWN, NULL, false },
                { "firmware autoselection, secure boot off",
                  DOM_HEAD "<os firmware='efi'><type arch='x86_64' machine='q35'>hvm</type><firmware>"
                           "<feature enabled='no' name='secure-boot'/></firmware></os></domain>",
                  NULL, true, false, HVP_OS_UNKNOWN, NULL, false },
                { "firmware autoselection, secure boot on",
                  DOM_HEAD "<os firmware='efi'><type arch='x86_64' machine='q35'>hvm</type><firmware>"
                           "<feature enabled='yes' name='secure-boot'/><feature enabled='yes' name='enrolled-keys'/>"
                           "</firmware></os><features><smm state='on'/></features></domain>",
                  "<group>db</group>", true, true, HVP_OS_UNKNOWN, "db", false },
                { "BIOS",
                  DOM_HEAD "<metadata><libosinfo:libosinfo xmlns:libosinfo='http://libosinfo.org/xmlns/libvirt/domain/1.0'>"
                           "<libosinfo:os id='http://microsoft.com/win/2k22'/></libosinfo:libosinfo></metadata>"
                           "<os><type arch='x86_64' machine='pc'>hvm</type></os></domain>",
                  NULL, false, false, HVP_OS_WINDOWS, NULL, false },
                { "BIOS with secure='yes' on a rom loader is not Secure Boot",
                  DOM_HEAD "<os><type arch='x86_64' machine='pc'>hvm</type>"
                           "<loader readonly='yes' secure='yes' type='rom'>/usr/share/seabios/bios.bin</loader></os></domain>",
                  "<os>windows</os>", false, false, HVP_OS_WINDOWS, NULL, false },
        };

        for (size_t i = 0; i < N_ELEMS(cases); i++) {
                char *xml = libvirt_xml(cases[i].xml, cases[i].metadata);
                struct hvp_guest_facts f = { .kernel_build_id = "keep", .patch_area = true };
                int r = hvp_guest_facts_from_domain_xml(xml, strlen(xml), &f);

                if (r != 0)
                        fail_msg("%s: %d %s\n%s", cases[i].what, r, hvp_last_error(), xml);
                assert_string_equal(f.name, "d");
                assert_string_equal(f.uuid, DB_UUID);
                if (f.firmware_uefi != cases[i].uefi || f.secure_boot != cases[i].sb || f.os != cases[i].os ||
                    f.direct_kernel != cases[i].direct)
                        fail_msg("%s: uefi %d secure boot %d os %d direct kernel %d\n%s", cases[i].what,
                                 f.firmware_uefi, f.secure_boot, f.os, f.direct_kernel, xml);
                assert_int_equal(f.n_groups, cases[i].group ? 1 : 0);
                if (cases[i].group)
                        assert_string_equal(f.groups[0], cases[i].group);
                /* Facts that do not come from the XML are left alone. */
                assert_string_equal(f.kernel_build_id, "keep");
                assert_true(f.patch_area);
                free(xml);
        }
}

static void test_domain_xml_bad(void **state)
{
        struct hvp_guest_facts f;
        char big[600];
        static const char several[] =
                "<domain><name>x</name><metadata><h:hvpatch xmlns:h='" HVP_METADATA_NS "'>"
                "<h:group>a</h:group><h:group>b</h:group></h:hvpatch>"
                "<group>not ours</group></metadata></domain>";

        memset(&f, 0x5a, sizeof(f));
        assert_int_equal(hvp_guest_facts_from_domain_xml("<network/>", 10, &f), -EINVAL);
        assert_int_equal(hvp_guest_facts_from_domain_xml("<domain>", 8, &f), -EINVAL);
        assert_int_equal(((unsigned char *)&f)[0], 0x5a);
        assert_int_equal(hvp_guest_facts_from_domain_xml("<domain><uuid>1234</uuid></domain>", 34, &f), -EINVAL);
        snprintf(big, sizeof(big), "<domain><name>%0300d</name></domain>", 0);
        assert_int_equal(hvp_guest_facts_from_domain_xml(big, strlen(big), &f), -E2BIG);
        memset(&f, 0, sizeof(f));
        assert_int_equal(hvp_guest_facts_from_domain_xml(several, strlen(several), &f), 0);
        assert_int_equal(f.n_groups, 2);
        assert_string_equal(f.groups[0], "a");
        assert_string_equal(f.groups[1], "b");
        assert_false(f.firmware_uefi);
}

/* ---- audit ---- */

static char audit_line[2048];
static int audit_prio;

static void capture(int prio, const char *line, void *userdata)
{
        audit_prio = prio;
        snprintf(audit_line, sizeof(audit_line), "%s", line);
}

static void test_audit(void **state)
{
        struct hvp_audit_event ev = { HVP_AUDIT_APPLY, "web-1", "cve-1", 3, "release", 0, NULL, 12.5 };
        char small[16];

        hvp_audit_set_fn(capture, NULL);
        hvp_audit(&ev);
        assert_string_equal(audit_line, "hvpatch-audit action=apply domain=\"web-1\" bundle=\"cve-1\" seq=3 "
                                        "key=\"release\" result=ok pause_ms=12.500");
        assert_int_equal(audit_prio & 7, 5);            /* LOG_NOTICE */
        assert_int_equal(audit_prio & ~7, 10 << 3);     /* LOG_AUTHPRIV */
        /* A hostile domain name cannot add fields or lines. */
        ev = (struct hvp_audit_event){ HVP_AUDIT_REFUSE, "x\" result=ok\nfake", NULL, 0, NULL, -EPERM,
                                       "outside window", -1 };
        hvp_audit(&ev);
        assert_null(strchr(audit_line, '\n'));
        assert_non_null(strstr(audit_line, "domain=\"x\\\" result=ok\\x0afake\""));
        assert_non_null(strstr(audit_line, "bundle=- seq=0 key=- result=error errno=1 reason=\"outside window\""));
        assert_null(strstr(audit_line, "pause_ms"));
        assert_int_equal(audit_prio & 7, 4);            /* LOG_WARNING */
        /* Formatting into a short buffer truncates and tells the length needed. */
        assert_int_equal(hvp_audit_format(&ev, small, sizeof(small)), strlen(audit_line));
        assert_int_equal(strlen(small), sizeof(small) - 1);
        hvp_audit_set_fn(NULL, NULL);
        hvp_audit(&ev);         /* to syslog: must not crash without /dev/log */
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_decisions),
                cmocka_unit_test(test_decision_details),
                cmocka_unit_test(test_dst_edges),
                cmocka_unit_test(test_bad_policies),
                cmocka_unit_test(test_minimal_and_empty_policies),
                cmocka_unit_test(test_policy_file_and_verify),
                cmocka_unit_test(test_documented_example),
                cmocka_unit_test(test_baseline_boot),
                cmocka_unit_test(test_baseline_boot_bad),
                cmocka_unit_test(test_domain_xml),
                cmocka_unit_test(test_domain_xml_bad),
                cmocka_unit_test(test_audit),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}

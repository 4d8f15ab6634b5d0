/*
 * hvpatch report's renderers (cli/report-render.c) and its bad-mark reader
 * (cli/report-health.c) on synthetic reports: hostile domain names, banners and error
 * texts must not inject markup into the HTML page nor break the Prometheus text; the
 * escaping helpers (common/escape.c) byte for byte; counts and exit codes.
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

#include <hvpatch/health.h>

#include "cli/report.h"
#include "common/escape.h"

static char *capture(void (*fn)(FILE *f, const void *arg), const void *arg)
{
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        assert_non_null(f);
        fn(f, arg);
        assert_int_equal(fclose(f), 0);
        return buf;
}

static void html_of(FILE *f, const void *s)
{
        hvp_html_escape(f, s);
}

static void prom_of(FILE *f, const void *s)
{
        hvp_prom_label_escape(f, s);
}

static void check_escape(void (*fn)(FILE *, const void *), const char *in, const char *want)
{
        char *got = capture(fn, in);

        assert_string_equal(got, want);
        free(got);
}

static void test_html_escape(void **state)
{
        (void)state;
        check_escape(html_of, "<script>alert(\"x\")</script>", "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;");
        check_escape(html_of, "a&b 'c'", "a&amp;b &#39;c&#39;");
        check_escape(html_of, "caf\xc3\xa9 \xe2\x82\xac", "caf\xc3\xa9 \xe2\x82\xac");    /* valid UTF-8 kept */
        check_escape(html_of, "x\xff\xc3(y", "x?" "?(y");                                      /* invalid bytes */
        check_escape(html_of, "\xed\xa0\x80", "???");                                       /* a surrogate */
        check_escape(html_of, "\xc0\xbc", "??");                                            /* overlong '<' */
        check_escape(html_of, "a\x01\x1b[31mb\x7f", "a??[31mb?");                           /* controls */
        check_escape(html_of, "\xc2\x85", "?");                                             /* C1 control */
}

static void test_prom_escape(void **state)
{
        (void)state;
        check_escape(prom_of, "a\"b\\c\nd", "a\\\"b\\\\c\\nd");
        check_escape(prom_of, "x\xfe\ty\r", "x?\ty?");
        check_escape(prom_of, "\xe6\x97\xa5", "\xe6\x97\xa5");
}

static void test_sanitize(void **state)
{
        char s[] = "ok\xff<\x01\xc3\xa9\xe2\x82";

        (void)state;
        hvp_text_sanitize(s);
        assert_string_equal(s, "ok?<?\xc3\xa9??");
        assert_int_equal(hvp_utf8_seq_len("\xf0\x9f\x98\x80"), 4);
        assert_int_equal(hvp_utf8_seq_len("\xf4\x90\x80\x80"), 0);      /* beyond U+10FFFF */
        assert_int_equal(hvp_utf8_seq_len(""), 0);
}

#define EVIL_NAME "<img src=x onerror=alert(1)>\"'&"
#define EVIL_BANNER "Linux version 6.1</td><script>alert(2)</script> \x01\xff"
#define EVIL_ERROR "cannot open: <b>bold</b>\nsecond line"

static struct report *sample_report(void)
{
        static struct report rep;
        static struct report_row rows[4];
        struct report_row *r;

        memset(&rep, 0, sizeof(rep));
        memset(rows, 0, sizeof(rows));
        snprintf(rep.host, sizeof(rep.host), "host<1>");
        snprintf(rep.policy, sizeof(rep.policy), "/etc/p<o>licy.xml");
        rep.at = 1700000000;
        rep.parallel = 4;
        rep.have_policy = true;
        rep.rows = rows;
        rep.n_rows = 4;

        r = &rows[0];
        snprintf(r->domain, sizeof(r->domain), "%s", EVIL_NAME);
        snprintf(r->uuid, sizeof(r->uuid), "11111111-2222-3333-4444-555555555555");
        snprintf(r->libvirt_state, sizeof(r->libvirt_state), "running");
        r->verdict = REPORT_COMPLIANT;
        snprintf(r->os, sizeof(r->os), "linux");
        snprintf(r->kernel, sizeof(r->kernel), "6.1</td>");
        snprintf(r->banner, sizeof(r->banner), "%s", EVIL_BANNER);
        snprintf(r->build_id, sizeof(r->build_id), "00112233445566778899aabbccddeeff00112233");
        snprintf(r->group, sizeof(r->group), "web<s>");
        snprintf(r->baseline, sizeof(r->baseline), "2024-06");
        r->n_patches = r->n_patches_total = 2;
        snprintf(r->patches[0].id, sizeof(r->patches[0].id), "demo-version-1");
        snprintf(r->patches[0].series, sizeof(r->patches[0].series), "demo-version");
        snprintf(r->patches[0].key, sizeof(r->patches[0].key), "rel\"ease");
        snprintf(r->patches[0].state, sizeof(r->patches[0].state), "applied");
        r->patches[0].seq = 1;
        r->patches[0].applied_at = 1700000000;
        r->patches[0].pause_ms = 2.5;
        snprintf(r->patches[1].id, sizeof(r->patches[1].id), "demo-cmdline-1");
        snprintf(r->patches[1].series, sizeof(r->patches[1].series), "demo-cmdline");
        snprintf(r->patches[1].state, sizeof(r->patches[1].state), "foreign");
        r->patches[1].seq = 3;
        r->n_applied = 1;
        r->n_foreign = 1;

        r = &rows[1];
        snprintf(r->domain, sizeof(r->domain), "b\nc\\d");
        r->verdict = REPORT_ERROR;
        r->error_code = 1;
        snprintf(r->error, sizeof(r->error), "%s", EVIL_ERROR);

        r = &rows[2];
        snprintf(r->domain, sizeof(r->domain), "old");
        r->verdict = REPORT_REBOOT_REQUIRED;
        snprintf(r->build_id, sizeof(r->build_id), "aa");
        r->n_reasons = 1;
        snprintf(r->reasons[0], sizeof(r->reasons[0]), "runs baseline <old>: reboot");
        snprintf(r->reason_codes[0], sizeof(r->reason_codes[0]), "old-baseline");

        r = &rows[3];
        snprintf(r->domain, sizeof(r->domain), "off");
        r->verdict = REPORT_SHUT_OFF;
        report_count(&rep);
        return &rep;
}

static void html_cb(FILE *f, const void *rep)
{
        assert_int_equal(report_html(f, rep), 0);
}

static void prom_cb(FILE *f, const void *rep)
{
        assert_int_equal(report_prometheus(f, rep), 0);
}

static void table_cb(FILE *f, const void *rep)
{
        report_table(f, rep);
}

static size_t count(const char *hay, const char *needle)
{
        size_t n = 0;

        for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
                n++;
        return n;
}

static void test_html_hostile(void **state)
{
        struct report *rep = sample_report();
        char *html = capture(html_cb, rep);

        (void)state;
        /* nothing a guest or a definition provided opens an element */
        assert_null(strstr(html, "<img"));
        assert_null(strstr(html, "<b>"));
        assert_null(strstr(html, "<o>"));
        assert_null(strstr(html, "<s>"));
        assert_null(strstr(html, "alert(2)</script>"));
        assert_int_equal(count(html, "<script"), 1);            /* ours, only */
        assert_int_equal(count(html, "</script>"), 1);
        assert_int_equal(count(html, "<tr class="), 4);         /* one row per domain */
        assert_int_equal(count(html, "</td></tr>"), 4);
        assert_int_equal(count(html, "</td>"), 4 * 9);          /* the banner's </td> stayed text */
        assert_non_null(strstr(html, "&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;"));
        assert_non_null(strstr(html, "&lt;b&gt;bold&lt;/b&gt;"));
        assert_non_null(strstr(html, "rel&quot;ease"));
        assert_null(strstr(html, "\xff"));
        assert_null(strstr(html, "\x01"));
        /* the counts, written as text */
        assert_non_null(strstr(html, "id=\"count-compliant\">1<"));
        assert_non_null(strstr(html, "id=\"count-error\">1<"));
        assert_non_null(strstr(html, "id=\"count-reboot-required\">1<"));
        assert_non_null(strstr(html, "id=\"count-shut-off\">1<"));
        assert_non_null(strstr(html, "id=\"count-refused\">0<"));
        assert_non_null(strstr(html, "class=\"bar-count\" data-verdict=\"compliant\""));
        /* no network: nothing is loaded from elsewhere */
        assert_int_equal(count(html, "http://"), 1);            /* the SVG namespace, a name, not a load */
        assert_null(strstr(html, "https://"));
        assert_null(strstr(html, "<link"));
        assert_null(strstr(html, "<iframe"));
        free(html);
}

static void test_prometheus_hostile(void **state)
{
        struct report *rep = sample_report();
        char *text = capture(prom_cb, rep), *save = NULL;

        (void)state;
        /* every line is a comment or a sample of a hvpatch_report_ metric: no name broke one */
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                if (line[0] == '#') {
                        assert_true(strncmp(line, "# HELP hvpatch_report_", 22) == 0 ||
                                    strncmp(line, "# TYPE hvpatch_report_", 22) == 0);
                        continue;
                }
                assert_true(strncmp(line, "hvpatch_report_", 15) == 0);
        }
        free(text);
        text = capture(prom_cb, rep);
        assert_non_null(strstr(text, "hvpatch_report_domain_verdict{domain=\"b\\nc\\\\d\",verdict=\"error\"} 1\n"));
        assert_non_null(strstr(text, "hvpatch_report_domain_verdict{domain=\"<img src=x onerror=alert(1)>\\\"'&\","
                                     "verdict=\"compliant\"} 1\n"));
        assert_non_null(strstr(text, "hvpatch_report_domain_tampered{domain=\"<img src=x onerror=alert(1)>\\\"'&\"} 1\n"));
        assert_non_null(strstr(text, "hvpatch_report_domains{verdict=\"compliant\"} 1\n"));
        assert_non_null(strstr(text, "hvpatch_report_domains{verdict=\"refused\"} 0\n"));
        assert_non_null(strstr(text, "key=\"rel\\\"ease\""));
        /* the error row has no tamper sample: nothing was read */
        assert_null(strstr(text, "hvpatch_report_domain_tampered{domain=\"b"));
        free(text);
}

static void test_counts_exit_table(void **state)
{
        struct report *rep = sample_report();
        char *table;

        (void)state;
        assert_int_equal(rep->counts[REPORT_COMPLIANT], 1);
        assert_int_equal(rep->counts[REPORT_ERROR], 1);
        assert_int_equal(report_exit_code(rep), 1);             /* an unreadable guest */
        rep->rows[1].verdict = REPORT_UNMANAGED;
        report_count(rep);
        assert_int_equal(report_exit_code(rep), 3);             /* reboot-required */
        rep->rows[2].verdict = REPORT_UNMANAGED;
        report_count(rep);
        assert_int_equal(report_exit_code(rep), 0);             /* unmanaged, shut-off: not counted */
        assert_string_equal(report_tamper(&rep->rows[0]), "tampered");
        assert_string_equal(report_tamper(&rep->rows[2]), "-");
        table = capture(table_cb, rep);
        assert_non_null(strstr(table, "counts: 1 compliant, 0 reboot-required, 2 unmanaged, 0 refused, 0 error, 1 shut-off"));
        assert_non_null(strstr(table, "patch demo-cmdline-1: series demo-cmdline, seq 3, key -, applied -, pause 0.000 ms: foreign"));
        free(table);
}

static void put(const char *dir, const char *name, const char *text)
{
        char p[512];
        FILE *f;

        snprintf(p, sizeof(p), "%s/%s", dir, name);
        f = fopen(p, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
}

static void test_marks(void **state)
{
        char tmp[] = "/tmp/hvp-test-report-XXXXXX", dir[256], cmd[600];
        struct report_row row;

        (void)state;
        assert_non_null(mkdtemp(tmp));
        memset(&row, 0, sizeof(row));
        snprintf(row.build_id, sizeof(row.build_id), "abcdef01");
        row.n_patches = 2;
        snprintf(row.patches[0].id, sizeof(row.patches[0].id), "good-1");
        snprintf(row.patches[1].id, sizeof(row.patches[1].id), "warn-1");

        report_read_marks(tmp, &row);           /* no folder: no mark, no note */
        assert_int_equal(row.n_marks, 0);
        assert_string_equal(row.health_note, "");
        assert_string_equal(report_health(&row), "-");

        snprintf(dir, sizeof(dir), "%s/bad", tmp);
        assert_int_equal(mkdir(dir, 0700), 0);
        snprintf(dir, sizeof(dir), "%s/bad/abcdef01", tmp);
        assert_int_equal(mkdir(dir, 0700), 0);
        {       /* as the health gate writes it */
                struct hvp_bad_mark m = { .seq = 1, .at = 1700000000 };

                snprintf(m.build_id, sizeof(m.build_id), "abcdef01");
                snprintf(m.patch_id, sizeof(m.patch_id), "warn-1");
                snprintf(m.series, sizeof(m.series), "warn");
                snprintf(m.domain, sizeof(m.domain), "web-1");
                snprintf(m.kind, sizeof(m.kind), "taint");
                snprintf(m.reason, sizeof(m.reason), "W");
                if (hvp_bad_mark_add(tmp, &m) < 0)
                        fail_msg("hvp_bad_mark_add: %s", hvp_last_error());
        }
        put(dir, "broken-1.json", "not json");
        put(dir, "README", "not a mark");
        put(dir, "a b.json", "{}");
        snprintf(cmd, sizeof(cmd), "ln -s /etc/passwd '%s/link-1.json'", dir);
        assert_int_equal(system(cmd), 0);
        snprintf(dir, sizeof(dir), "%s/bad/other", tmp);     /* another build: not ours */
        assert_int_equal(mkdir(dir, 0700), 0);
        put(dir, "good-1.json", "{\"kind\":\"log\"}");

        report_read_marks(tmp, &row);
        assert_int_equal(row.n_marks, 3);
        assert_string_equal(row.marks[0].patch_id, "broken-1");
        assert_string_equal(row.marks[0].kind, "unreadable");
        assert_string_equal(row.marks[1].patch_id, "link-1");
        assert_string_equal(row.marks[1].kind, "unreadable");   /* a symlink is not followed */
        assert_string_equal(row.marks[2].patch_id, "warn-1");
        assert_string_equal(row.marks[2].kind, "taint");
        assert_int_equal(row.marks[2].at, 1700000000);
        assert_false(row.patches[0].marked_bad);
        assert_true(row.patches[1].marked_bad);
        assert_string_equal(report_health(&row), "marked-bad");

        snprintf(row.build_id, sizeof(row.build_id), "../bad");  /* never a path out of the folder */
        report_read_marks(tmp, &row);
        assert_int_equal(row.n_marks, 0);

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
        assert_int_equal(system(cmd), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_html_escape),      cmocka_unit_test(test_prom_escape),
                cmocka_unit_test(test_sanitize),         cmocka_unit_test(test_html_hostile),
                cmocka_unit_test(test_prometheus_hostile), cmocka_unit_test(test_counts_exit_table),
                cmocka_unit_test(test_marks),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}

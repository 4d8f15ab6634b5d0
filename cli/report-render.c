/*
 * hvpatch report's outputs (cli/report.h): a table, JSON, Prometheus text and one
 * self-contained HTML page. Every string that came from a guest or a domain
 * definition goes through the escaping of its format (common/escape.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hvpatch/hvpatch.h>

#include "cli/report.h"
#include "common/escape.h"

static const char *const verdict_names[REPORT_N_VERDICTS] = {
        [REPORT_COMPLIANT] = "compliant", [REPORT_REBOOT_REQUIRED] = "reboot-required",
        [REPORT_UNMANAGED] = "unmanaged", [REPORT_REFUSED] = "refused",
        [REPORT_ERROR] = "error",         [REPORT_SHUT_OFF] = "shut-off",
};

const char *report_verdict_name(enum report_verdict v)
{
        return (unsigned)v < REPORT_N_VERDICTS ? verdict_names[v] : "?";
}

const char *report_tamper(const struct report_row *r)
{
        if (r->n_foreign)
                return "tampered";
        return r->n_applied ? "intact" : "-";
}

const char *report_health(const struct report_row *r)
{
        return r->n_marks ? "marked-bad" : "-";
}

void report_count(struct report *rep)
{
        memset(rep->counts, 0, sizeof(rep->counts));
        for (size_t i = 0; i < rep->n_rows; i++)
                if ((unsigned)rep->rows[i].verdict < REPORT_N_VERDICTS)
                        rep->counts[rep->rows[i].verdict]++;
}

int report_exit_code(const struct report *rep)
{
        if (rep->counts[REPORT_ERROR])
                return 1;
        if (rep->counts[REPORT_REBOOT_REQUIRED] || rep->counts[REPORT_REFUSED])
                return 3;
        return 0;
}

static void utc(long long t, char *buf, size_t size)
{
        time_t at = (time_t)t;
        struct tm tm;

        if (t <= 0 || !gmtime_r(&at, &tm) || !strftime(buf, size, "%Y-%m-%d %H:%M:%SZ", &tm))
                snprintf(buf, size, "-");
}

/* ---- table ------------------------------------------------------------------------ */

void report_table(FILE *f, const struct report *rep)
{
        char when[32];

        fprintf(f, "%-24s %-15s %-22s %-12s %-8s %-8s %-10s %s\n", "DOMAIN", "VERDICT", "KERNEL", "BUILD ID",
                "PATCHES", "TAMPER", "HEALTH", "GROUP/BASELINE");
        for (size_t i = 0; i < rep->n_rows; i++) {
                const struct report_row *r = &rep->rows[i];
                char gb[2 * HVP_NAME_MAX + 4];

                snprintf(gb, sizeof(gb), "%s/%s", r->group[0] ? r->group : "-", r->baseline[0] ? r->baseline : "-");
                fprintf(f, "%-24s %-15s %-22s %-12.12s %-8zu %-8s %-10s %s\n", r->domain,
                        report_verdict_name(r->verdict), r->kernel[0] ? r->kernel : "-",
                        r->build_id[0] ? r->build_id : "-", r->n_applied, report_tamper(r), report_health(r), gb);
                for (size_t j = 0; j < r->n_patches; j++) {
                        const struct report_patch *p = &r->patches[j];

                        utc(p->applied_at, when, sizeof(when));
                        fprintf(f, "    patch %s: series %s, seq %llu, key %s, applied %s, pause %.3f ms: %s%s\n", p->id,
                                p->series, (unsigned long long)p->seq, p->key[0] ? p->key : "-", when, p->pause_ms,
                                p->state, p->marked_bad ? ", marked bad" : "");
                }
                if (r->n_patches_total > r->n_patches)
                        fprintf(f, "    ... and %zu more patches\n", r->n_patches_total - r->n_patches);
                for (size_t j = 0; j < r->n_marks; j++) {
                        utc(r->marks[j].at, when, sizeof(when));
                        fprintf(f, "    marked bad: %s (%s, %s)\n", r->marks[j].patch_id,
                                r->marks[j].kind[0] ? r->marks[j].kind : "?", when);
                }
                if (r->health_note[0])
                        fprintf(f, "    health: %s\n", r->health_note);
                if (r->verdict != REPORT_COMPLIANT)
                        for (size_t j = 0; j < r->n_reasons; j++)
                                fprintf(f, "    - %s\n", r->reasons[j]);
                if (r->interrupted)
                        fprintf(f, "    INTERRUPTED: a transaction did not finish: run 'hvpatch recover %s'\n", r->domain);
                if (r->verdict == REPORT_ERROR)
                        fprintf(f, "    error (exit %d): %s\n", r->error_code, r->error);
        }
        fprintf(f, "counts:");
        for (unsigned v = 0; v < REPORT_N_VERDICTS; v++)
                fprintf(f, "%s %zu %s", v ? "," : "", rep->counts[v], verdict_names[v]);
        fprintf(f, " (%zu domains, read in %.2f s, %u at once)\n", rep->n_rows, rep->seconds, rep->parallel);
}

/* ---- JSON -------------------------------------------------------------------------- */

static json_object *str_or_null(const char *s)
{
        return s[0] ? json_object_new_string(s) : NULL;
}

static json_object *row_json(const struct report_row *r)
{
        json_object *o = json_object_new_object(), *arr = json_object_new_array(), *codes, *marks;

        json_object_object_add(o, "domain", json_object_new_string(r->domain));
        json_object_object_add(o, "uuid", json_object_new_string(r->uuid));
        json_object_object_add(o, "state", json_object_new_string(r->libvirt_state));
        json_object_object_add(o, "verdict", json_object_new_string(report_verdict_name(r->verdict)));
        json_object_object_add(o, "os", str_or_null(r->os));
        json_object_object_add(o, "kernel", str_or_null(r->kernel));
        json_object_object_add(o, "banner", str_or_null(r->banner));
        json_object_object_add(o, "build_id", str_or_null(r->build_id));
        json_object_object_add(o, "group", str_or_null(r->group));
        json_object_object_add(o, "baseline", str_or_null(r->baseline));
        codes = json_object_new_array();
        for (size_t i = 0; i < r->n_reasons; i++) {
                json_object *x = json_object_new_object();

                json_object_object_add(x, "code", json_object_new_string(r->reason_codes[i]));
                json_object_object_add(x, "reason", json_object_new_string(r->reasons[i]));
                json_object_array_add(codes, x);
        }
        json_object_object_add(o, "reasons", codes);
        for (size_t i = 0; i < r->n_patches; i++) {
                const struct report_patch *p = &r->patches[i];
                json_object *x = json_object_new_object();

                json_object_object_add(x, "id", json_object_new_string(p->id));
                json_object_object_add(x, "series", json_object_new_string(p->series));
                json_object_object_add(x, "seq", json_object_new_int64((int64_t)p->seq));
                json_object_object_add(x, "key", json_object_new_string(p->key));
                json_object_object_add(x, "applied_at", json_object_new_int64(p->applied_at));
                json_object_object_add(x, "pause_ms", json_object_new_double(p->pause_ms));
                json_object_object_add(x, "state", json_object_new_string(p->state));
                json_object_object_add(x, "marked_bad", json_object_new_boolean(p->marked_bad));
                json_object_array_add(arr, x);
        }
        json_object_object_add(o, "patches", arr);
        json_object_object_add(o, "patches_total", json_object_new_int64((int64_t)r->n_patches_total));
        json_object_object_add(o, "applied", json_object_new_int64((int64_t)r->n_applied));
        json_object_object_add(o, "tamper", json_object_new_string(report_tamper(r)));
        json_object_object_add(o, "health", json_object_new_string(report_health(r)));
        marks = json_object_new_array();
        for (size_t i = 0; i < r->n_marks; i++) {
                json_object *x = json_object_new_object();

                json_object_object_add(x, "patch_id", json_object_new_string(r->marks[i].patch_id));
                json_object_object_add(x, "kind", json_object_new_string(r->marks[i].kind));
                json_object_object_add(x, "at", r->marks[i].at ? json_object_new_int64(r->marks[i].at) : NULL);
                json_object_array_add(marks, x);
        }
        json_object_object_add(o, "bad_marks", marks);
        if (r->health_note[0])
                json_object_object_add(o, "health_note", json_object_new_string(r->health_note));
        json_object_object_add(o, "interrupted", json_object_new_boolean(r->interrupted));
        if (r->verdict == REPORT_ERROR) {
                json_object_object_add(o, "error", json_object_new_string(r->error));
                json_object_object_add(o, "code", json_object_new_int(r->error_code));
        }
        json_object_object_add(o, "read_ms", json_object_new_double(r->read_ms));
        return o;
}

json_object *report_json(const struct report *rep)
{
        json_object *o = json_object_new_object(), *doms = json_object_new_array(), *counts = json_object_new_object();

        json_object_object_add(o, "host", json_object_new_string(rep->host));
        json_object_object_add(o, "generated_at", json_object_new_int64((int64_t)rep->at));
        json_object_object_add(o, "seconds", json_object_new_double(rep->seconds));
        json_object_object_add(o, "parallel", json_object_new_int((int)rep->parallel));
        json_object_object_add(o, "policy", rep->have_policy ? json_object_new_string(rep->policy) : NULL);
        for (size_t i = 0; i < rep->n_rows; i++)
                json_object_array_add(doms, row_json(&rep->rows[i]));
        json_object_object_add(o, "domains", doms);
        for (unsigned v = 0; v < REPORT_N_VERDICTS; v++)
                json_object_object_add(counts, verdict_names[v], json_object_new_int64((int64_t)rep->counts[v]));
        json_object_object_add(o, "counts", counts);
        json_object_object_add(o, "exit_code", json_object_new_int(report_exit_code(rep)));
        return o;
}

/* ---- Prometheus text exposition (format 0.0.4) --------------------------------------------- */

static void family(FILE *f, const char *name, const char *type, const char *help)
{
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{domain="..."[,k="v"...]}: the opening of one sample's line. */
static void sample(FILE *f, const char *name, const struct report_row *r)
{
        fprintf(f, "%s{domain=\"", name);
        hvp_prom_label_escape(f, r->domain);
        fputc('"', f);
}

static void label(FILE *f, const char *k, const char *v)
{
        fprintf(f, ",%s=\"", k);
        hvp_prom_label_escape(f, v);
        fputc('"', f);
}

int report_prometheus(FILE *f, const struct report *rep)
{
        family(f, "hvpatch_report_domain_verdict", "gauge",
               "The report's verdict on the domain (1 for its verdict, 0 for the others).");
        for (size_t i = 0; i < rep->n_rows; i++)
                for (unsigned v = 0; v < REPORT_N_VERDICTS; v++) {
                        sample(f, "hvpatch_report_domain_verdict", &rep->rows[i]);
                        label(f, "verdict", verdict_names[v]);
                        fprintf(f, "} %d\n", rep->rows[i].verdict == (enum report_verdict)v);
                }
        family(f, "hvpatch_report_domain_info", "gauge", "The kernel the domain runs and its policy group (always 1).");
        for (size_t i = 0; i < rep->n_rows; i++) {
                const struct report_row *r = &rep->rows[i];

                if (!r->build_id[0])
                        continue;
                sample(f, "hvpatch_report_domain_info", r);
                label(f, "uuid", r->uuid);
                label(f, "os", r->os);
                label(f, "kernel", r->kernel);
                label(f, "build_id", r->build_id);
                label(f, "group", r->group);
                label(f, "baseline", r->baseline);
                fputs("} 1\n", f);
        }
        family(f, "hvpatch_report_domain_patch_info", "gauge",
               "One recorded patch of the domain and what memory says of it (always 1).");
        for (size_t i = 0; i < rep->n_rows; i++)
                for (size_t j = 0; j < rep->rows[i].n_patches; j++) {
                        const struct report_patch *p = &rep->rows[i].patches[j];
                        char seq[24];

                        snprintf(seq, sizeof(seq), "%llu", (unsigned long long)p->seq);
                        sample(f, "hvpatch_report_domain_patch_info", &rep->rows[i]);
                        label(f, "patch_id", p->id);
                        label(f, "series", p->series);
                        label(f, "seq", seq);
                        label(f, "key", p->key);
                        label(f, "state", p->state);
                        label(f, "marked_bad", p->marked_bad ? "yes" : "no");
                        fputs("} 1\n", f);
                }
        family(f, "hvpatch_report_domain_patch_applied_timestamp_seconds", "gauge", "When the patch was applied.");
        for (size_t i = 0; i < rep->n_rows; i++)
                for (size_t j = 0; j < rep->rows[i].n_patches; j++) {
                        sample(f, "hvpatch_report_domain_patch_applied_timestamp_seconds", &rep->rows[i]);
                        label(f, "patch_id", rep->rows[i].patches[j].id);
                        fprintf(f, "} %lld\n", rep->rows[i].patches[j].applied_at);
                }
        family(f, "hvpatch_report_domain_patch_pause_seconds", "gauge", "The pause window of the patch's apply.");
        for (size_t i = 0; i < rep->n_rows; i++)
                for (size_t j = 0; j < rep->rows[i].n_patches; j++) {
                        sample(f, "hvpatch_report_domain_patch_pause_seconds", &rep->rows[i]);
                        label(f, "patch_id", rep->rows[i].patches[j].id);
                        fprintf(f, "} %.6f\n", rep->rows[i].patches[j].pause_ms / 1000.0);
                }
#define PER_READ_ROW(metric, help, fmt, expr)                                          \
        do {                                                                           \
                family(f, metric, "gauge", help);                                      \
                for (size_t i = 0; i < rep->n_rows; i++) {                             \
                        const struct report_row *r = &rep->rows[i];                    \
                        if (!r->build_id[0] || r->verdict == REPORT_ERROR)             \
                                continue;                                              \
                        sample(f, metric, r);                                          \
                        fprintf(f, "} " fmt "\n", expr);                               \
                }                                                                      \
        } while (0)
        PER_READ_ROW("hvpatch_report_domain_applied_patches", "Recorded patches memory holds.", "%zu", r->n_applied);
        PER_READ_ROW("hvpatch_report_domain_tampered",
                     "1 when a recorded patch holds neither its own nor the original bytes (foreign).", "%d",
                     r->n_foreign > 0);
        PER_READ_ROW("hvpatch_report_domain_bad_marks", "Health-gate bad marks on the domain's kernel build.", "%zu",
                     r->n_marks);
        PER_READ_ROW("hvpatch_report_domain_interrupted", "1 when a transaction did not finish (hvpatch recover).",
                     "%d", r->interrupted ? 1 : 0);
#undef PER_READ_ROW
        family(f, "hvpatch_report_domain_read_seconds", "gauge", "How long reading the domain took.");
        for (size_t i = 0; i < rep->n_rows; i++) {
                sample(f, "hvpatch_report_domain_read_seconds", &rep->rows[i]);
                fprintf(f, "} %.6f\n", rep->rows[i].read_ms / 1000.0);
        }
        family(f, "hvpatch_report_domains", "gauge", "Domains per verdict.");
        for (unsigned v = 0; v < REPORT_N_VERDICTS; v++)
                fprintf(f, "hvpatch_report_domains{verdict=\"%s\"} %zu\n", verdict_names[v], rep->counts[v]);
        family(f, "hvpatch_report_timestamp_seconds", "gauge", "When the report was made.");
        fprintf(f, "hvpatch_report_timestamp_seconds %lld\n", (long long)rep->at);
        family(f, "hvpatch_report_duration_seconds", "gauge", "How long the report took.");
        fprintf(f, "hvpatch_report_duration_seconds %.6f\n", rep->seconds);
        return ferror(f) ? -EIO : 0;
}

/* ---- HTML ------------------------------------------------------------------------------ */

static void h(FILE *f, const char *s)
{
        hvp_html_escape(f, s);
}

/* Severity order for sorting the verdict column. */
static const int verdict_rank[REPORT_N_VERDICTS] = {
        [REPORT_ERROR] = 0, [REPORT_REFUSED] = 1, [REPORT_REBOOT_REQUIRED] = 2,
        [REPORT_UNMANAGED] = 3, [REPORT_SHUT_OFF] = 4, [REPORT_COMPLIANT] = 5,
};

static const char *const verdict_colors[REPORT_N_VERDICTS] = {
        [REPORT_COMPLIANT] = "#2e7d32", [REPORT_REBOOT_REQUIRED] = "#ef6c00", [REPORT_UNMANAGED] = "#607d8b",
        [REPORT_REFUSED] = "#c62828",   [REPORT_ERROR] = "#6a1b9a",           [REPORT_SHUT_OFF] = "#9e9e9e",
};

static const char css[] =
        "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d2330;background:#f4f6f9}\n"
        "header{background:#1d2b3a;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px;font-weight:600}\n"
        "header p{margin:4px 0 0;color:#c5d0dc}main{padding:20px 28px}\n"
        ".summary{display:flex;gap:28px;flex-wrap:wrap;align-items:center;background:#fff;border-radius:8px;"
        "padding:16px 20px;box-shadow:0 1px 3px rgba(0,0,0,.12)}\n"
        ".counts{display:flex;gap:10px;flex-wrap:wrap;list-style:none;margin:0;padding:0}\n"
        ".counts li{min-width:92px;padding:8px 12px;border-radius:6px;background:#f4f6f9;border-left:5px solid}\n"
        ".counts .n{display:block;font-size:24px;font-weight:700}\n"
        "table{border-collapse:collapse;width:100%;margin-top:20px;background:#fff;box-shadow:0 1px 3px rgba(0,0,0,.12)}\n"
        "th,td{text-align:left;vertical-align:top;padding:7px 10px;border-bottom:1px solid #e3e7ed}\n"
        "th{background:#e9edf3;cursor:pointer;user-select:none;white-space:nowrap}th:hover{background:#dce3ec}\n"
        "th[aria-sort=ascending]::after{content:' \\25B2'}th[aria-sort=descending]::after{content:' \\25BC'}\n"
        ".badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;font-weight:600;"
        "white-space:nowrap}\n"
        "tr.v-compliant{background:#f1f8f2}tr.v-reboot-required{background:#fff4e5}tr.v-unmanaged{background:#f5f7f8}\n"
        "tr.v-refused{background:#fdecea}tr.v-error{background:#f5ecf8}tr.v-shut-off{background:#fafafa;color:#757575}\n"
        "code{font-size:12px}.sub{color:#5f6b7a;font-size:12px}.bad{color:#c62828;font-weight:600}\n"
        "ul.p{margin:0;padding-left:16px}.err{color:#6a1b9a;font-weight:600}footer{padding:0 28px 20px;color:#5f6b7a}\n";

/* Sorting by a click on a header (again: the other way), or on load by #sort=N[-desc]; the counts recomputed from the rows. */
static const char js[] =
        "(function(){\n"
        "var t=document.getElementById('report'),tb=t.tBodies[0],hs=t.tHead.rows[0].cells;\n"
        "function key(r,i){var c=r.cells[i];var k=c.getAttribute('data-sort');return k!==null?k:c.textContent.trim();}\n"
        "function cmp(a,b){var x=Number(a),y=Number(b);if(a!==''&&b!==''&&!isNaN(x)&&!isNaN(y))return x-y;"
        "return a.localeCompare(b);}\n"
        "function sortBy(i,desc){var rows=Array.prototype.slice.call(tb.rows);"
        "rows.sort(function(a,b){var r=cmp(key(a,i),key(b,i));return desc?-r:r;});"
        "rows.forEach(function(r){tb.appendChild(r);});"
        "for(var j=0;j<hs.length;j++)hs[j].removeAttribute('aria-sort');"
        "hs[i].setAttribute('aria-sort',desc?'descending':'ascending');}\n"
        "Array.prototype.forEach.call(hs,function(h,i){h.addEventListener('click',function(){"
        "sortBy(i,h.getAttribute('aria-sort')==='ascending');});});\n"
        "var m=/^#sort=(\\d+)(-desc)?$/.exec(location.hash);if(m&&+m[1]<hs.length)sortBy(+m[1],!!m[2]);\n"
        "var n={};Array.prototype.forEach.call(tb.rows,function(r){var v=r.getAttribute('data-verdict');"
        "n[v]=(n[v]||0)+1;});\n"
        "var out=document.getElementById('row-counts');Object.keys(n).sort().forEach(function(v){"
        "var s=document.createElement('span');s.className='rc';s.setAttribute('data-verdict',v);"
        "s.textContent=v+'='+n[v];out.appendChild(s);out.appendChild(document.createTextNode(' '));});\n"
        "document.body.setAttribute('data-ready','1');\n"
        "})();\n";

static void chart(FILE *f, const struct report *rep)
{
        const unsigned bar_x = 130, bar_max = 300, row_h = 28;
        size_t max = 1;

        for (unsigned v = 0; v < REPORT_N_VERDICTS; v++)
                if (rep->counts[v] > max)
                        max = rep->counts[v];
        fprintf(f, "<svg id=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%u\" height=\"%u\" role=\"img\" "
                   "aria-label=\"domains per verdict\">\n",
                bar_x + bar_max + 60, REPORT_N_VERDICTS * row_h + 4);
        for (unsigned v = 0; v < REPORT_N_VERDICTS; v++) {
                unsigned y = v * row_h + 2;
                unsigned w = (unsigned)(rep->counts[v] * bar_max / max);

                fprintf(f, "<text x=\"0\" y=\"%u\" font-size=\"13\" dominant-baseline=\"middle\">%s</text>", y + 11,
                        verdict_names[v]);
                fprintf(f, "<rect x=\"%u\" y=\"%u\" width=\"%u\" height=\"22\" rx=\"3\" fill=\"%s\"/>", bar_x, y,
                        w ? w : 2, verdict_colors[v]);
                fprintf(f, "<text class=\"bar-count\" data-verdict=\"%s\" x=\"%u\" y=\"%u\" font-size=\"13\" "
                           "font-weight=\"700\" dominant-baseline=\"middle\">%zu</text>\n",
                        verdict_names[v], bar_x + (w ? w : 2) + 8, y + 11, rep->counts[v]);
        }
        fputs("</svg>\n", f);
}

static void row_html(FILE *f, const struct report_row *r)
{
        const char *vn = report_verdict_name(r->verdict);
        char when[32];

        fprintf(f, "<tr class=\"v-%s\" data-verdict=\"%s\">", vn, vn);
        /* domain */
        fputs("<td data-sort=\"", f);
        h(f, r->domain);
        fputs("\"><strong>", f);
        h(f, r->domain);
        fputs("</strong><div class=\"sub\">", f);
        h(f, r->uuid);
        fputs(" &middot; ", f);
        h(f, r->libvirt_state);
        fputs("</div></td>", f);
        /* verdict */
        fprintf(f, "<td data-sort=\"%d\"><span class=\"badge\" style=\"background:%s\">%s</span></td>",
                verdict_rank[r->verdict], verdict_colors[r->verdict], vn);
        /* OS and kernel */
        fputs("<td>", f);
        h(f, r->os[0] ? r->os : "-");
        fputs("<div class=\"sub\" title=\"", f);
        h(f, r->banner);
        fputs("\">", f);
        h(f, r->kernel[0] ? r->kernel : "");
        fputs("</div></td>", f);
        /* build id */
        fputs("<td data-sort=\"", f);
        h(f, r->build_id);
        fputs("\"><code title=\"", f);
        h(f, r->build_id);
        fprintf(f, "\">%.12s</code></td>", r->build_id[0] ? r->build_id : "-");
        /* group and baseline */
        fputs("<td>", f);
        h(f, r->group[0] ? r->group : "-");
        fputs("<div class=\"sub\">baseline ", f);
        h(f, r->baseline[0] ? r->baseline : "-");
        fputs("</div></td>", f);
        /* patches */
        fprintf(f, "<td data-sort=\"%zu\">", r->n_applied);
        if (r->n_patches == 0)
                fputs("none", f);
        else
                fputs("<ul class=\"p\">", f);
        for (size_t j = 0; j < r->n_patches; j++) {
                const struct report_patch *p = &r->patches[j];

                utc(p->applied_at, when, sizeof(when));
                fputs("<li><strong>", f);
                h(f, p->id);
                fputs("</strong> ", f);
                h(f, p->state);
                fputs("<div class=\"sub\">series ", f);
                h(f, p->series);
                fprintf(f, ", seq %llu, key ", (unsigned long long)p->seq);
                h(f, p->key[0] ? p->key : "-");
                fprintf(f, ", applied %s, pause %.3f ms%s</div></li>", when, p->pause_ms,
                        p->marked_bad ? ", <span class=\"bad\">marked bad</span>" : "");
        }
        if (r->n_patches)
                fputs("</ul>", f);
        if (r->n_patches_total > r->n_patches)
                fprintf(f, "<div class=\"sub\">and %zu more</div>", r->n_patches_total - r->n_patches);
        fputs("</td>", f);
        /* tamper, health */
        fprintf(f, "<td%s>%s</td>", r->n_foreign ? " class=\"bad\"" : "", report_tamper(r));
        fprintf(f, "<td>%s", r->n_marks ? "<span class=\"bad\">marked bad</span>" : "-");
        for (size_t j = 0; j < r->n_marks; j++) {
                utc(r->marks[j].at, when, sizeof(when));
                fputs("<div class=\"sub\">", f);
                h(f, r->marks[j].patch_id);
                fputs(" (", f);
                h(f, r->marks[j].kind[0] ? r->marks[j].kind : "?");
                fprintf(f, ", %s)</div>", when);
        }
        if (r->health_note[0]) {
                fputs("<div class=\"sub\">", f);
                h(f, r->health_note);
                fputs("</div>", f);
        }
        fputs("</td>", f);
        /* notes: the reasons, the error */
        fputs("<td>", f);
        if (r->verdict == REPORT_ERROR) {
                fprintf(f, "<div class=\"err\">error (exit %d): ", r->error_code);
                h(f, r->error);
                fputs("</div>", f);
        }
        if (r->verdict == REPORT_SHUT_OFF)
                fputs("not running: nothing in memory to report", f);
        if (r->interrupted)
                fputs("<div class=\"err\">a transaction did not finish: hvpatch recover</div>", f);
        if (r->verdict != REPORT_COMPLIANT)
                for (size_t j = 0; j < r->n_reasons; j++) {
                        fputs("<div>", f);
                        h(f, r->reasons[j]);
                        fputs("</div>", f);
                }
        fputs("</td></tr>\n", f);
}

int report_html(FILE *f, const struct report *rep)
{
        char when[32];

        utc(rep->at, when, sizeof(when));
        fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
              "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n"
              "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
              "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n<title>Hotpatch compliance: ",
              f);
        h(f, rep->host);
        fprintf(f, "</title>\n<style>\n%s</style></head>\n<body>\n<header><h1>Hotpatch compliance: ", css);
        h(f, rep->host);
        fprintf(f, "</h1><p>%s &middot; hvpatch %s &middot; policy ", when, hvp_version());
        h(f, rep->policy);
        fprintf(f, " &middot; %zu domains read in %.2f s (%u at once)</p></header>\n<main>\n", rep->n_rows,
                rep->seconds, rep->parallel);
        fputs("<section class=\"summary\" aria-label=\"counts per verdict\">\n", f);
        chart(f, rep);
        fputs("<ul class=\"counts\">\n", f);
        for (unsigned v = 0; v < REPORT_N_VERDICTS; v++)
                fprintf(f, "<li style=\"border-color:%s\"><span class=\"n\" id=\"count-%s\">%zu</span>%s</li>\n",
                        verdict_colors[v], verdict_names[v], rep->counts[v], verdict_names[v]);
        fputs("</ul></section>\n", f);
        fputs("<table id=\"report\"><thead><tr><th>Domain</th><th>Verdict</th><th>OS / kernel</th><th>Build id</th>"
              "<th>Group / baseline</th><th>Patches</th><th>Tamper</th><th>Health</th><th>Notes</th></tr></thead>\n"
              "<tbody>\n",
              f);
        for (size_t i = 0; i < rep->n_rows; i++)
                row_html(f, &rep->rows[i]);
        fputs("</tbody></table>\n</main>\n", f);
        fputs("<footer>Rows counted in the page: <span id=\"row-counts\"></span><br>Click a column's header to sort "
              "by it (again: the other way). Tamper: a patch memory holds neither its own nor the original bytes. "
              "Health: the health gate's bad marks for the running kernel build.</footer>\n",
              f);
        fprintf(f, "<script>\n%s</script>\n</body></html>\n", js);
        return ferror(f) ? -EIO : 0;
}

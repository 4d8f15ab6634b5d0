/*
 * report: every domain of the host (running, paused or shut off) with its compliance,
 * patches, tamper and health state, read in parallel through the calls status uses
 * (open, attach, hvp_op_state), written as a table, JSON, Prometheus text or HTML
 * (cli/report-render.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hvpatch/catalog.h>
#include <hvpatch/kernel.h>
#include <hvpatch/ops.h>

#include "cli/commands.h"
#include "cli/compliance.h"
#include "cli/patching.h"
#include "cli/report.h"
#include "common/escape.h"
#include "common/util.h"

static const char help[] =
        "Reports every domain of the connection: OS, kernel release and build id, the\n"
        "policy's verdict (compliant, reboot-required, unmanaged, refused), the patches\n"
        "applied (series, sequence, signing key, when, pause window) and what memory says\n"
        "of each, tamper state (a patch memory no longer holds: 'tampered'), the health\n"
        "gate's bad marks for the running kernel build, and the counts per verdict.\n"
        "Each guest is read as 'hvpatch status' reads it, several at once; a guest that\n"
        "cannot be read is a row with its error (verdict 'error'), a defined domain that\n"
        "is not running a row 'shut-off'. Without a policy every guest is 'unmanaged'.\n"
        "Nothing in the guests is changed, and no guest is paused.\n\n"
        "Options:\n"
        "  --policy FILE          the policy (as hvpatch --policy; default\n"
        "                         " HVP_POLICY_DEFAULT_PATH " if it exists)\n"
        "  --domains GLOB[,GLOB]  only domains whose name (or UUID) matches\n"
        "  --parallel N           guests read at once (default 4, at most 64)\n"
        "  --json                 one JSON document: {\"domains\": [...], \"counts\": {...}}\n"
        "  --prometheus           Prometheus text exposition (metrics hvpatch_report_*)\n"
        "  --html FILE            also write one self-contained HTML page to FILE\n"
        "                         (chart of the counts, the table sortable by column)\n"
        "Exit code: 0 when every guest read is compliant (unmanaged and shut-off domains\n"
        "do not count), 3 when one the policy manages is reboot-required or refused, 1 when\n"
        "a guest could not be read; 2 usage. The report is written in every case.\n";

#define MAX_DOMAINS 4096
#define DEFAULT_PARALLEL 4
#define MAX_PARALLEL 64

struct args {
        const char *domains;
        const char *html;
        bool prometheus, json;
        unsigned parallel;
};

struct work {
        struct cli *c;
        const struct hvp_policy *policy;
        const char *state_dir;
        const struct hvp_domain_info *info;     /* one per row */
        struct report_row *rows;
        size_t n;
        size_t next;                            /* under lock */
        pthread_mutex_t lock;
};

static int parse_args(struct cli *c, int argc, char **argv, struct args *a)
{
        a->parallel = DEFAULT_PARALLEL;
        for (int i = 0; i < argc; i++) {
                uint64_t v;

                if (strcmp(argv[i], "--domains") == 0 && i + 1 < argc)
                        a->domains = argv[++i];
                else if (strcmp(argv[i], "--policy") == 0 && i + 1 < argc)
                        c->policy = argv[++i];
                else if (strcmp(argv[i], "--html") == 0 && i + 1 < argc)
                        a->html = argv[++i];
                else if (strcmp(argv[i], "--parallel") == 0 && i + 1 < argc) {
                        if (!cli_parse_u64(argv[++i], &v) || v < 1 || v > MAX_PARALLEL)
                                return cli_error(c, EXIT_USAGE, "--parallel takes 1..%d", MAX_PARALLEL);
                        a->parallel = (unsigned)v;
                } else if (strcmp(argv[i], "--prometheus") == 0)
                        a->prometheus = true;
                else if (strcmp(argv[i], "--json") == 0)
                        a->json = true;
                else
                        return cli_usage(c, cli_find_command("report"));
        }
        if (a->json)
                c->json = true;
        if (a->prometheus && c->json)
                return cli_error(c, EXIT_USAGE, "--json and --prometheus exclude each other");
        return EXIT_OK;
}

/* Whether name or uuid matches one of the comma-separated globs (NULL: all). */
static bool selected(const char *globs, const struct hvp_domain_info *d)
{
        char pat[512];
        const char *p = globs;

        if (!globs)
                return true;
        while (*p) {
                size_t len = strcspn(p, ",");

                if (len > 0 && len < sizeof(pat)) {
                        memcpy(pat, p, len);
                        pat[len] = '\0';
                        if (fnmatch(pat, d->name, 0) == 0 || fnmatch(pat, d->uuid, FNM_CASEFOLD) == 0)
                                return true;
                }
                p += len;
                if (*p == ',')
                        p++;
        }
        return false;
}

/* "Linux version 6.1.0-18-amd64 (...)" -> "6.1.0-18-amd64". */
static void kernel_release(const char *banner, char *out, size_t size)
{
        static const char prefix[] = "Linux version ";
        size_t len;

        out[0] = '\0';
        if (strncmp(banner, prefix, sizeof(prefix) - 1) != 0)
                return;
        banner += sizeof(prefix) - 1;
        len = strcspn(banner, " ");
        snprintf(out, size, "%.*s", (int)HVP_MIN(len, size - 1), banner);
}

static void row_error(struct report_row *row, int err, const char *what)
{
        const char *why = hvp_last_error();

        row->verdict = REPORT_ERROR;
        row->error_code = cli_exit_code(err);
        snprintf(row->error, sizeof(row->error), "%s: %s", what, why[0] ? why : strerror(-err));
        hvp_text_sanitize(row->error);
}

static void row_compliance(struct report_row *row, const struct hvp_guest_state *st)
{
        const struct hvp_decision *d = &st->compliance;

        if (!st->have_policy) {
                row->verdict = REPORT_UNMANAGED;
                row->n_reasons = 1;
                snprintf(row->reasons[0], sizeof(row->reasons[0]), "no policy");
                snprintf(row->reason_codes[0], sizeof(row->reason_codes[0]), "no-policy");
                return;
        }
        switch (d->verdict) {
        case HVP_VERDICT_ALLOW:
                row->verdict = REPORT_COMPLIANT;
                break;
        case HVP_VERDICT_REBOOT_REQUIRED:
                row->verdict = REPORT_REBOOT_REQUIRED;
                break;
        case HVP_VERDICT_UNMANAGED:
                row->verdict = REPORT_UNMANAGED;
                break;
        default:
                row->verdict = REPORT_REFUSED;
                break;
        }
        snprintf(row->group, sizeof(row->group), "%s", d->group);
        snprintf(row->baseline, sizeof(row->baseline), "%s", d->baseline);
        hvp_text_sanitize(row->group);
        hvp_text_sanitize(row->baseline);
        for (size_t i = 0; i < d->n_reasons && row->n_reasons < REPORT_MAX_REASONS; i++) {
                size_t j = row->n_reasons++;

                snprintf(row->reasons[j], sizeof(row->reasons[j]), "%s", d->reasons[i].text);
                snprintf(row->reason_codes[j], sizeof(row->reason_codes[j]), "%s", hvp_reason_name(d->reasons[i].code));
                hvp_text_sanitize(row->reasons[j]);
        }
}

static void row_patches(struct report_row *row, const struct hvp_guest_state *st)
{
        row->n_patches_total = st->n_patches;
        for (size_t i = 0; i < st->n_patches; i++) {
                const struct hvp_record_entry *e = st->patches[i].entry;
                enum hvp_patch_state s = st->patches[i].state;
                struct report_patch *p;

                row->n_applied += s == HVP_PATCH_APPLIED;
                row->n_foreign += s == HVP_PATCH_FOREIGN;
                row->n_dropped += s == HVP_PATCH_DROPPED;
                row->n_not_applied += s == HVP_PATCH_NOT_APPLIED;
                if (row->n_patches == REPORT_MAX_PATCHES)
                        continue;
                p = &row->patches[row->n_patches++];
                snprintf(p->id, sizeof(p->id), "%s", e->plan->patch_id);
                snprintf(p->series, sizeof(p->series), "%s", e->plan->series);
                snprintf(p->key, sizeof(p->key), "%s", e->plan->key_name);
                snprintf(p->state, sizeof(p->state), "%s", hvp_patch_state_name(s));
                p->seq = e->plan->seq;
                p->applied_at = e->applied_at;
                p->pause_ms = e->pause_ms;
                hvp_text_sanitize(p->id);
                hvp_text_sanitize(p->series);
                hvp_text_sanitize(p->key);
        }
}

/* One guest, read as status reads it; never fails: a failure is the row's error. */
static void read_guest(const struct work *w, const struct hvp_domain_info *info, struct report_row *row)
{
        struct hvp_live_options live = { .uri = w->c->uri };
        struct hvp_guest *g = NULL;
        struct hvp_mmu *mmu = NULL;
        struct hvp_kernel *k = NULL;
        struct hvp_guest_state *st = NULL;
        double t0 = hvp_now_ms();
        int r;

        snprintf(row->domain, sizeof(row->domain), "%s", info->name);
        snprintf(row->uuid, sizeof(row->uuid), "%s", info->uuid);
        snprintf(row->libvirt_state, sizeof(row->libvirt_state), "%s", info->state);
        hvp_text_sanitize(row->domain);
        if (!info->active) {
                row->verdict = REPORT_SHUT_OFF;
                goto out;
        }
        cli_progress(w->c, "%s: reading", info->name);
        r = hvp_guest_open_live(info->name, &live, &g);
        if (r < 0) {
                row_error(row, r, "opening the domain");
                goto out;
        }
        r = hvp_linux_attach(g, &mmu, &k, NULL);
        if (r < 0) {
                row_error(row, r, "finding the kernel");
                goto out;
        }
        snprintf(row->os, sizeof(row->os), "linux");
        snprintf(row->banner, sizeof(row->banner), "%s", k->banner);
        hvp_text_sanitize(row->banner);
        kernel_release(row->banner, row->kernel, sizeof(row->kernel));
        r = hvp_op_state(g, mmu, k, w->state_dir, w->policy, &st);
        if (r < 0) {
                hvp_hex_encode(k->build_id, HVP_MIN(k->build_id_len, sizeof(k->build_id)), row->build_id);
                row_error(row, r, "reading the patch state");
                goto out;
        }
        snprintf(row->build_id, sizeof(row->build_id), "%s", st->build_id);
        row->interrupted = st->interrupted;
        row_patches(row, st);
        row_compliance(row, st);
        report_read_marks(w->state_dir, row);
out:
        hvp_guest_state_free(st);
        hvp_kernel_free(k);
        hvp_mmu_free(mmu);
        hvp_guest_free(g);
        row->read_ms = hvp_now_ms() - t0;
}

static void *worker(void *arg)
{
        struct work *w = arg;

        for (;;) {
                size_t i;

                pthread_mutex_lock(&w->lock);
                i = w->next++;
                pthread_mutex_unlock(&w->lock);
                if (i >= w->n)
                        return NULL;
                read_guest(w, &w->info[i], &w->rows[i]);
        }
}

/* Write the page whole or not at all: a temporary file beside it, renamed over it. */
static int write_html(struct cli *c, const char *path, const struct report *rep)
{
        char tmp[4096];
        FILE *f;
        int fd, r;

        if ((size_t)snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid()) >= sizeof(tmp))
                return cli_error(c, EXIT_USAGE, "%s: name too long", path);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
                return cli_error(c, EXIT_ERROR, "%s: %s", tmp, strerror(errno));
        f = fdopen(fd, "w");
        if (!f) {
                close(fd);
                unlink(tmp);
                return cli_error(c, EXIT_ERROR, "%s: %s", tmp, strerror(errno));
        }
        r = report_html(f, rep);
        if (fflush(f) != 0 || fsync(fileno(f)) != 0)
                r = r ? r : -errno;
        if (fclose(f) != 0)
                r = r ? r : -errno;
        if (r == 0 && rename(tmp, path) != 0)
                r = -errno;
        if (r < 0) {
                unlink(tmp);
                return cli_error(c, EXIT_ERROR, "writing %s: %s", path, strerror(-r));
        }
        return EXIT_OK;
}

int cmd_report(struct cli *c, int argc, char **argv)
{
        struct args a = { 0 };
        struct hvp_policy *policy = NULL;
        struct hvp_domain_info *all = NULL, *info = NULL;
        struct report rep = { 0 };
        struct work w = { .lock = PTHREAD_MUTEX_INITIALIZER };
        pthread_t threads[MAX_PARALLEL];
        unsigned started = 0;
        size_t n_all = 0, n = 0;
        char why[1024];
        double t0 = hvp_now_ms();
        int r;

        if (cli_wants_help(c, "report", argc, argv, help))
                return EXIT_OK;
        r = parse_args(c, argc, argv, &a);
        if (r)
                return r;
        r = cli_open_policy(c, false, &policy, why, sizeof(why));
        if (r)
                return cli_error(c, r, "%s", why);
        rep.have_policy = policy != NULL;
        snprintf(rep.policy, sizeof(rep.policy), "%s",
                 policy ? (c->policy ? c->policy : HVP_POLICY_DEFAULT_PATH) : "none");
        r = hvp_list_domains(c->uri, MAX_DOMAINS, &all, &n_all);
        if (r < 0) {
                r = cli_lib_error(c, r, "listing the domains");
                goto out;
        }
        info = calloc(HVP_MAX(n_all, 1), sizeof(*info));
        rep.rows = calloc(HVP_MAX(n_all, 1), sizeof(*rep.rows));
        if (!info || !rep.rows) {
                r = cli_error(c, EXIT_ERROR, "out of memory");
                goto out;
        }
        for (size_t i = 0; i < n_all; i++)
                if (selected(a.domains, &all[i]))
                        info[n++] = all[i];
        rep.n_rows = n;
        rep.parallel = a.parallel;
        rep.at = time(NULL);
        if (gethostname(rep.host, sizeof(rep.host) - 1) < 0)
                snprintf(rep.host, sizeof(rep.host), "?");
        hvp_text_sanitize(rep.host);

        w = (struct work){ .c = c, .policy = policy, .state_dir = cli_state_dir(), .info = info, .rows = rep.rows,
                           .n = n, .lock = PTHREAD_MUTEX_INITIALIZER };
        for (unsigned i = 0; i < a.parallel && i < n; i++) {
                if (pthread_create(&threads[i], NULL, worker, &w) != 0)
                        break;
                started++;
        }
        if (started == 0)
                worker(&w);     /* no thread could start (or no domain): read them here */
        for (unsigned i = 0; i < started; i++)
                pthread_join(threads[i], NULL);
        rep.seconds = (hvp_now_ms() - t0) / 1000.0;
        report_count(&rep);

        if (a.html) {
                r = write_html(c, a.html, &rep);
                if (r)
                        goto out;
        }
        if (a.prometheus) {
                if (report_prometheus(stdout, &rep) < 0) {
                        r = cli_error(c, EXIT_ERROR, "writing the metrics: %s", strerror(errno));
                        goto out;
                }
        } else if (c->json) {
                json_object *o = report_json(&rep);

                if (a.html)
                        json_object_object_add(o, "html", json_object_new_string(a.html));
                cli_json_print(o);
        } else {
                report_table(stdout, &rep);
                if (a.html)
                        printf("html:        %s\n", a.html);
        }
        r = report_exit_code(&rep);
out:
        free(rep.rows);
        free(info);
        free(all);
        hvp_policy_free(policy);
        return r;
}

/*
 * What the daemon is doing: JSON for `hvpatch daemon-status` (the control socket) and
 * Prometheus text (exposition format 0.0.4) for node_exporter's textfile collector
 * (--metrics-file) and the HTTP endpoint (--metrics-listen, http.c): one generator.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include <hvpatch/catalog.h>

#include "common/escape.h"
#include "daemon/hvpatchd.h"

/* Upper bounds of the apply latency buckets, seconds: a pause of ms to a sync of a minute under TCG. */
const double hvpd_apply_le[HVPD_APPLY_BUCKETS - 1] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                       1, 2.5, 5, 10, 30, 60 };

/*
 * A sync that attempted a step (changed something, or tried to): its duration, counted.
 * After a boot, if every step succeeded, also how long from "kernel up" (the boot event plus
 * kernel_up_s) to its end: how long a rebooted guest ran without its patches once its kernel
 * was seen up.
 */
void hvpd_apply_observe(struct hvpd *d, struct hvpd_domain *dom, bool boot, const struct hvp_sync_result *res,
                        double seconds)
{
        struct timespec now;
        size_t i = 0;
        bool attempted = false;

        for (size_t k = 0; k < res->n_steps; k++)
                attempted |= res->steps[k].attempted;
        if (!attempted || !(seconds >= 0))
                return;
        while (i < HVPD_APPLY_BUCKETS - 1 && seconds > hvpd_apply_le[i])
                i++;
        clock_gettime(CLOCK_MONOTONIC, &now);
        pthread_mutex_lock(&d->lock);
        if (boot && dom->kernel_up_s > 0 && res->exit_class == 0)      /* patched, not only tried */
                dom->up_to_patched_s = (double)(now.tv_sec - dom->boot_event.tv_sec) +
                                       (double)(now.tv_nsec - dom->boot_event.tv_nsec) / 1e9 - dom->kernel_up_s;
        d->apply_buckets[i]++;
        d->apply_count++;
        d->apply_sum += seconds;
        pthread_mutex_unlock(&d->lock);
}

static const char *phase_name(enum hvpd_phase p)
{
        switch (p) {
        case HVPD_IDLE:
                return "idle";
        case HVPD_QUEUED:
                return "queued";
        case HVPD_WAITING_KERNEL:
                return "waiting-for-kernel";
        case HVPD_WORKING:
                return "working";
        }
        return "unknown";
}

/* The domain's last health gate (jobs.c), null before its first. */
static json_object *health_json(const struct hvpd_domain *m)
{
        json_object *h;

        if (!m->health_result[0])
                return NULL;
        h = json_object_new_object();
        json_object_object_add(h, "result", json_object_new_string(m->health_result));
        json_object_object_add(h, "patch_id", json_object_new_string(m->health_patch));
        json_object_object_add(h, "reason", json_object_new_string(m->health_reason));
        json_object_object_add(h, "at", json_object_new_int64((int64_t)m->health_at));
        return h;
}

char *hvpd_status_json(struct hvpd *d)
{
        json_object *o = json_object_new_object(), *doms = json_object_new_array();
        char *out;

        pthread_mutex_lock(&d->lock);
        json_object_object_add(o, "pid", json_object_new_int((int)getpid()));
        json_object_object_add(o, "started", json_object_new_int64((int64_t)d->started));
        json_object_object_add(o, "stopping", json_object_new_boolean(d->stopping));
        json_object_object_add(o, "catalog", json_object_new_string(d->opt.catalog_dir));
        json_object_object_add(o, "policy", json_object_new_string(d->opt.policy_path));
        json_object_object_add(o, "catalog_bundles", json_object_new_int64((int64_t)d->config->catalog->n_entries));
        json_object_object_add(o, "catalog_usable", json_object_new_int64((int64_t)d->config->catalog->n_usable));
        json_object_object_add(o, "config_loaded", json_object_new_int64((int64_t)d->config->loaded));
        json_object_object_add(o, "verify_interval", json_object_new_int((int)d->opt.verify_interval));
        json_object_object_add(o, "tamper", json_object_new_string(d->opt.repair ? "repair" : "report"));
        json_object_object_add(o, "health_seconds", json_object_new_int((int)d->opt.health_seconds));
        json_object_object_add(o, "workers", json_object_new_int((int)d->opt.workers));
        json_object_object_add(o, "busy_workers", json_object_new_int((int)d->busy_workers));
        json_object_object_add(o, "queued", json_object_new_int((int)d->q_len));
        json_object_object_add(o, "checks", json_object_new_int64((int64_t)d->checks));
        json_object_object_add(o, "metrics_listen", d->metrics_addr[0] ? json_object_new_string(d->metrics_addr) : NULL);
        for (size_t i = 0; i < d->n_domains; i++) {
                const struct hvpd_domain *m = &d->domains[i];
                json_object *x = json_object_new_object();

                json_object_object_add(x, "domain", json_object_new_string(m->name));
                json_object_object_add(x, "phase", json_object_new_string(phase_name(m->phase)));
                json_object_object_add(x, "jobs", json_object_new_int64(m->jobs));
                json_object_object_add(x, "last_done", m->last_done ? json_object_new_int64((int64_t)m->last_done) : NULL);
                json_object_object_add(x, "last_exit", json_object_new_int(m->last_exit));
                json_object_object_add(x, "last_result", json_object_new_string(m->last_result));
                json_object_object_add(x, "build_id", json_object_new_string(m->build_id));
                json_object_object_add(x, "verdict", json_object_new_string(m->verdict));
                json_object_object_add(x, "applied", json_object_new_int64(m->n_applied));
                json_object_object_add(x, "applies", json_object_new_int64(m->applies));
                json_object_object_add(x, "failures", json_object_new_int64(m->failures));
                json_object_object_add(x, "tampered", json_object_new_int64(m->tampered));
                json_object_object_add(x, "health_failures", json_object_new_int64(m->health_failures));
                json_object_object_add(x, "last_pause_ms", json_object_new_double(m->last_pause_ms));
                json_object_object_add(x, "kernel_up_seconds", json_object_new_double(m->kernel_up_s));
                json_object_object_add(x, "kernel_up_to_patched_seconds", json_object_new_double(m->up_to_patched_s));
                json_object_object_add(x, "health_failures", json_object_new_int64(m->health_failures));
                json_object_object_add(x, "health", health_json(m));
                json_object_array_add(doms, x);
        }
        pthread_mutex_unlock(&d->lock);
        json_object_object_add(o, "domains", doms);
        out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
        return out;
}

/* A float sample value as Go's strconv parses it (%g may print "inf"; the format wants +Inf). */
static void value(FILE *f, double v)
{
        if (isnan(v))
                fputs("NaN", f);
        else if (isinf(v))
                fputs(v > 0 ? "+Inf" : "-Inf", f);
        else if (fabs(v) < 9e15 && v == (double)(long long)v)
                fprintf(f, "%lld", (long long)v);       /* counters stay exact */
        else
                fprintf(f, "%.9g", v);
}

char *hvpd_metrics_text(struct hvpd *d)
{
        static const char *const verdicts[] = { "allow", "refuse", "reboot-required", "unmanaged" };
        char *buf = NULL;
        size_t len = 0;
        uint64_t cum = 0;
        FILE *f = open_memstream(&buf, &len);

        if (!f)
                return NULL;
        pthread_mutex_lock(&d->lock);
        fprintf(f, "# HELP hvpatch_domain_compliance The policy's verdict on the domain (1 for its verdict, "
                   "0 for the others).\n"
                   "# TYPE hvpatch_domain_compliance gauge\n");
        for (size_t i = 0; i < d->n_domains; i++)
                for (size_t v = 0; v < sizeof(verdicts) / sizeof(verdicts[0]); v++) {
                        if (!d->domains[i].verdict[0])
                                continue;
                        fputs("hvpatch_domain_compliance{domain=\"", f);
                        hvp_prom_label_escape(f, d->domains[i].name);
                        fprintf(f, "\",verdict=\"%s\"} %d\n", verdicts[v],
                                strcmp(d->domains[i].verdict, verdicts[v]) == 0);
                }
        /* metric names are literals: only label values come from outside */
#define PER_DOMAIN(metric, type, help, cond, val)                                     \
        do {                                                                          \
                fprintf(f, "# HELP " metric " " help "\n# TYPE " metric " " type "\n"); \
                for (size_t i = 0; i < d->n_domains; i++) {                           \
                        const struct hvpd_domain *m = &d->domains[i];                 \
                        if (!(cond))                                                  \
                                continue;                                             \
                        fputs(metric "{domain=\"", f);                                \
                        hvp_prom_label_escape(f, m->name);                            \
                        fputs("\"} ", f);                                             \
                        value(f, (double)(val));                                      \
                        fputc('\n', f);                                               \
                }                                                                     \
        } while (0)
        PER_DOMAIN("hvpatch_domain_applied_patches", "gauge", "Patches memory holds after the last job.",
                   m->verdict[0], m->n_applied);
        PER_DOMAIN("hvpatch_domain_applies_total", "counter", "Patches the daemon applied.", true, m->applies);
        PER_DOMAIN("hvpatch_domain_failures_total", "counter", "Jobs or steps that failed.", true, m->failures);
        PER_DOMAIN("hvpatch_domain_tamper_events_total", "counter",
                   "Recorded patches found lost from memory (tampering).", true, m->tampered);
        PER_DOMAIN("hvpatch_health_failures_total", "counter",
                   "Applies the health gate judged to have hurt the guest (reverted).", true, m->health_failures);
        PER_DOMAIN("hvpatch_domain_last_pause_seconds", "gauge",
                   "The last apply's pause window (domains with an apply since the daemon started).",
                   m->last_pause_ms > 0, m->last_pause_ms / 1000.0);
        PER_DOMAIN("hvpatch_domain_kernel_up_seconds", "gauge",
                   "From the last boot event to the guest kernel's SYSTEM_RUNNING (boots the daemon saw).",
                   m->kernel_up_s > 0, m->kernel_up_s);
        PER_DOMAIN("hvpatch_domain_kernel_up_to_patched_seconds", "gauge",
                   "From the guest kernel's SYSTEM_RUNNING to the end of the sync that applied its patches, last boot.",
                   m->up_to_patched_s > 0, m->up_to_patched_s);
#undef PER_DOMAIN
        fprintf(f, "# HELP hvpatch_apply_duration_seconds Syncs that applied or replaced a patch (or tried to), "
                   "timed around the whole sync.\n# TYPE hvpatch_apply_duration_seconds histogram\n");
        for (size_t i = 0; i < HVPD_APPLY_BUCKETS; i++) {
                cum += d->apply_buckets[i];
                fputs("hvpatch_apply_duration_seconds_bucket{le=\"", f);
                value(f, i < HVPD_APPLY_BUCKETS - 1 ? hvpd_apply_le[i] : INFINITY);
                fprintf(f, "\"} %llu\n", (unsigned long long)cum);
        }
        fputs("hvpatch_apply_duration_seconds_sum ", f);
        value(f, d->apply_sum);
        fprintf(f, "\nhvpatch_apply_duration_seconds_count %llu\n", (unsigned long long)d->apply_count);
        fprintf(f, "# HELP hvpatch_daemon_checks_total Periodic checks run.\n# TYPE hvpatch_daemon_checks_total counter\n"
                   "hvpatch_daemon_checks_total %llu\n", (unsigned long long)d->checks);
        fprintf(f, "# HELP hvpatch_daemon_start_time_seconds When the daemon started, seconds since the epoch.\n"
                   "# TYPE hvpatch_daemon_start_time_seconds gauge\nhvpatch_daemon_start_time_seconds %lld\n",
                (long long)d->started);
        pthread_mutex_unlock(&d->lock);
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

/* Write the metrics file whole or not at all: a temporary file renamed over it. */
int hvpd_metrics_write(struct hvpd *d)
{
        static pthread_mutex_t one_writer = PTHREAD_MUTEX_INITIALIZER;
        char tmp[4096];
        char *text = hvpd_metrics_text(d);
        size_t len;
        int fd, r = 0;

        if (!text)
                return -1;
        if ((size_t)snprintf(tmp, sizeof(tmp), "%s.%d.tmp", d->opt.metrics_file, (int)getpid()) >= sizeof(tmp)) {
                free(text);
                errno = ENAMETOOLONG;
                return -1;
        }
        pthread_mutex_lock(&one_writer);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0) {
                pthread_mutex_unlock(&one_writer);
                free(text);
                return -1;
        }
        len = strlen(text);
        if (write(fd, text, len) != (ssize_t)len || fsync(fd) != 0)
                r = -1;
        if (close(fd) != 0)
                r = -1;
        if (r == 0 && rename(tmp, d->opt.metrics_file) != 0)
                r = -1;
        if (r < 0) {
                int e = errno;

                unlink(tmp);
                errno = e;
        }
        pthread_mutex_unlock(&one_writer);
        free(text);
        return r;
}

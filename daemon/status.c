/*
 * What the daemon is doing: JSON for `hvpatch daemon-status` (the control socket) and
 * Prometheus text for node_exporter's textfile collector (--metrics-file).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "daemon/hvpatchd.h"

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
                json_object_object_add(x, "last_pause_ms", json_object_new_double(m->last_pause_ms));
                json_object_object_add(x, "kernel_up_seconds", json_object_new_double(m->kernel_up_s));
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

/* A label value as the text format wants it: backslash, quote and newline escaped. */
static void label(FILE *f, const char *v)
{
        for (; *v; v++) {
                if (*v == '\\' || *v == '"')
                        fprintf(f, "\\%c", *v);
                else if (*v == '\n')
                        fputs("\\n", f);
                else
                        fputc(*v, f);
        }
}

char *hvpd_metrics_text(struct hvpd *d)
{
        static const char *const verdicts[] = { "allow", "refuse", "reboot-required", "unmanaged" };
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        if (!f)
                return NULL;
        pthread_mutex_lock(&d->lock);
        fprintf(f, "# HELP hvpatch_domain_compliance The policy's verdict on the domain (1 for its verdict).\n"
                   "# TYPE hvpatch_domain_compliance gauge\n");
        for (size_t i = 0; i < d->n_domains; i++)
                for (size_t v = 0; v < sizeof(verdicts) / sizeof(verdicts[0]); v++) {
                        if (!d->domains[i].verdict[0])
                                continue;
                        fputs("hvpatch_domain_compliance{domain=\"", f);
                        label(f, d->domains[i].name);
                        fprintf(f, "\",verdict=\"%s\"} %d\n", verdicts[v],
                                strcmp(d->domains[i].verdict, verdicts[v]) == 0);
                }
#define PER_DOMAIN(metric, type, help, fmt, expr)                                     \
        do {                                                                          \
                fprintf(f, "# HELP " metric " " help "\n# TYPE " metric " " type "\n"); \
                for (size_t i = 0; i < d->n_domains; i++) {                           \
                        const struct hvpd_domain *m = &d->domains[i];                 \
                        fputs(metric "{domain=\"", f);                                \
                        label(f, m->name);                                            \
                        fprintf(f, "\"} " fmt "\n", expr);                            \
                }                                                                     \
        } while (0)
        PER_DOMAIN("hvpatch_domain_applied_patches", "gauge", "Patches memory holds after the last job.", "%u",
                   m->n_applied);
        PER_DOMAIN("hvpatch_domain_applies_total", "counter", "Patches the daemon applied.", "%u", m->applies);
        PER_DOMAIN("hvpatch_domain_failures_total", "counter", "Jobs or steps that failed.", "%u", m->failures);
        PER_DOMAIN("hvpatch_domain_tamper_events_total", "counter",
                   "Recorded patches found lost from memory (tampering).", "%u", m->tampered);
        PER_DOMAIN("hvpatch_domain_last_pause_seconds", "gauge", "The last apply's pause window.", "%.6f",
                   m->last_pause_ms / 1000.0);
        PER_DOMAIN("hvpatch_domain_kernel_up_seconds", "gauge",
                   "From the last boot event to the guest kernel's SYSTEM_RUNNING.", "%.3f", m->kernel_up_s);
#undef PER_DOMAIN
        fprintf(f, "# HELP hvpatch_daemon_checks_total Periodic checks run.\n# TYPE hvpatch_daemon_checks_total counter\n"
                   "hvpatch_daemon_checks_total %llu\n", (unsigned long long)d->checks);
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

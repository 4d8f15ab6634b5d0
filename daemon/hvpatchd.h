/*
 * hvpatchd: keeps every guest of a host at its desired patch state (the catalog under
 * the policy, include/hvpatch/catalog.h) across boots, reboots, restores and tampering.
 *
 * Threads: the main thread runs libvirt's event loop (domain lifecycle and reboot
 * events, the periodic check's timer, signals through a signalfd, the control socket);
 * a fixed pool of workers runs the jobs, one domain at a time per domain. Every change
 * goes through the library's operations (hvp_op_sync, hvp_op_state): the daemon never
 * re-implements a step of verify/authorize/plan/write/record.
 */
#ifndef HVPATCHD_H
#define HVPATCHD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include <hvpatch/catalog.h>
#include <hvpatch/policy.h>

#define HVPD_MAX_DOMAINS 1024
#define HVPD_NAME_MAX 256
#define HVPD_RESULT_MAX 512
#define HVPD_APPLY_BUCKETS 14           /* hvpd_apply_le[] and +Inf */

/* Why a domain is queued (bits: several reasons coalesce into one job). */
enum {
        HVPD_WHY_BOOT = 1u << 0,        /* started or rebooted: wait for its kernel, then sync */
        HVPD_WHY_CHECK = 1u << 1,       /* the periodic check, a restore, SIGHUP, start-up */
};

enum hvpd_phase {
        HVPD_IDLE,
        HVPD_QUEUED,
        HVPD_WAITING_KERNEL,            /* booting: its kernel is not up yet */
        HVPD_WORKING,
};

struct hvpd_options {
        const char *catalog_dir;
        const char *policy_path;
        const char *uri;                /* NULL: qemu:///system */
        const char *state_dir;          /* NULL: HVPATCH_STATE_DIR or HVP_STATE_DIR */
        const char *socket_path;
        const char *metrics_file;       /* NULL: none */
        const char *metrics_listen;     /* ADDR:PORT of the HTTP metrics endpoint; NULL: none */
        bool metrics_remote;            /* a non-loopback metrics_listen is allowed */
        const char *domains;            /* fnmatch pattern of the domains looked after; NULL: all */
        unsigned verify_interval;       /* seconds; 0: no periodic check */
        unsigned boot_timeout;          /* seconds from a (re)start to "kernel up" */
        unsigned workers;
        bool repair;                    /* re-apply a tampered patch (else only report it) */
        unsigned health_seconds;        /* the health gate after every apply (0: none) */
};

/* The policy and catalog in force: replaced whole on SIGHUP, freed when the last job is done. */
struct hvpd_config {
        unsigned refs;                  /* under hvpd.lock */
        struct hvp_policy *policy;
        struct hvp_catalog *catalog;
        time_t loaded;
};

struct hvpd_domain {
        char name[HVPD_NAME_MAX];
        enum hvpd_phase phase;
        unsigned pending;               /* HVPD_WHY_* not yet taken by a worker */
        /* results, for daemon-status and the metrics */
        time_t last_done;
        int last_exit;                  /* the last job's exit class (HVP_EXIT_*) */
        char last_result[HVPD_RESULT_MAX];
        char build_id[2 * 64 + 1];
        char verdict[32];
        unsigned n_applied;             /* patches memory holds, after the last job */
        unsigned jobs, applies, failures, tampered;
        unsigned health_failures;       /* applies the health gate failed (reverted, marked bad) */
        double last_pause_ms;
        char tamper_seen[512];          /* the lost patches last reported, "id:state;..." */
        double kernel_up_s;             /* seconds from the boot event to "kernel up", last boot */
        struct timespec boot_event;     /* when the last boot/reboot was seen */
        double up_to_patched_s;         /* from "kernel up" to the end of the sync that applied, last boot */
        /* the last health gate (jobs.c), for daemon-status */
        char health_result[16];         /* "pass", "fail", "" before the first */
        char health_patch[128];
        char health_reason[HVPD_RESULT_MAX];
        time_t health_at;
};

struct hvpd {
        struct hvpd_options opt;
        const char *state_dir;
        pthread_mutex_t lock;
        pthread_cond_t work;            /* a domain was queued, or stopping */
        pthread_cond_t stop_cond;       /* for waits that stop early when stopping */
        bool stopping;
        bool reloading;
        struct hvpd_config *config;
        struct hvpd_domain domains[HVPD_MAX_DOMAINS];
        size_t n_domains;
        unsigned queue[HVPD_MAX_DOMAINS];       /* indices into domains[], FIFO */
        size_t q_head, q_len;
        unsigned busy_workers;
        time_t started;
        uint64_t checks;                /* periodic checks run */
        /* the apply latency histogram: syncs that attempted a step, timed around hvp_op_sync */
        uint64_t apply_buckets[HVPD_APPLY_BUCKETS];     /* not cumulative: [i] counts le[i-1] < x <= le[i] */
        uint64_t apply_count;
        double apply_sum;
        char metrics_addr[64];          /* the metrics endpoint as bound ("127.0.0.1:9477"), or "" */
};

/* jobs.c */
int hvpd_config_load(struct hvpd *d, struct hvpd_config **ret, char *why, size_t why_size);
void hvpd_config_put(struct hvpd *d, struct hvpd_config *c);
void hvpd_enqueue(struct hvpd *d, const char *name, unsigned why);
void *hvpd_worker(void *arg);

/* status.c: the daemon's state as JSON (control socket) and Prometheus text (metrics file and endpoint) */
struct hvp_sync_result;
extern const double hvpd_apply_le[HVPD_APPLY_BUCKETS - 1];
char *hvpd_status_json(struct hvpd *d);
char *hvpd_metrics_text(struct hvpd *d);
int hvpd_metrics_write(struct hvpd *d);
void hvpd_apply_observe(struct hvpd *d, struct hvpd_domain *dom, bool boot, const struct hvp_sync_result *res,
                        double seconds);

/* http.c: the metrics endpoint (--metrics-listen), on the main thread's event loop */
#define HVPD_HTTP_MAX_REQUEST 4096      /* bytes of a request head; more: 431 */
#define HVPD_HTTP_MAX_CONNS 8           /* connections at once; more are closed at once */
#define HVPD_HTTP_TIMEOUT_MS 5000       /* from accept to the last byte of the answer */
extern unsigned hvpd_http_timeout_ms;   /* HVPD_HTTP_TIMEOUT_MS; tests shorten it */
int hvpd_http_parse(const char *buf, size_t len, bool *ret_head_only);
int hvpd_http_listen_parse(const char *spec, bool allow_remote, struct sockaddr_storage *ret, socklen_t *ret_len,
                           char *why, size_t why_size);
int hvpd_http_start(struct hvpd *d, char *why, size_t why_size);
void hvpd_http_stop(void);

/* log.c */
void hvpd_log(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hvpd_log_init(unsigned verbose);
bool hvpd_log_stderr(void);

#endif

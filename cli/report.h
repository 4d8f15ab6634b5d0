/*
 * hvpatch report: every domain of the host with its compliance, patches, tamper and
 * health state (cli/cmd-report.c gathers it, cli/report-render.c writes it as a table,
 * JSON, Prometheus text or one HTML page).
 *
 * The report holds plain copies: nothing in it points into a guest or a record, so the
 * renderers (and their unit test) need no guest. Every string read from a guest or a
 * domain definition is sanitized when copied in (common/escape.h: invalid UTF-8 and
 * control characters become '?'); each renderer still escapes for its own format.
 */
#ifndef HVP_CLI_REPORT_H
#define HVP_CLI_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <json-c/json.h>

#include <hvpatch/apply.h>
#include <hvpatch/policy.h>

enum report_verdict {
        REPORT_COMPLIANT,       /* the policy's group manages it, current baseline, requirements met */
        REPORT_REBOOT_REQUIRED, /* an older baseline: a reboot, not a hotpatch */
        REPORT_UNMANAGED,       /* no group selects it, its kernel is unknown, or no policy */
        REPORT_REFUSED,         /* its group's requirements refuse it (e.g. no Secure Boot) */
        REPORT_ERROR,           /* it could not be read: the row says why */
        REPORT_SHUT_OFF,        /* defined, not running: nothing in memory to report */
        REPORT_N_VERDICTS
};
/* "compliant", "reboot-required", "unmanaged", "refused", "error", "shut-off". */
const char *report_verdict_name(enum report_verdict v);

#define REPORT_MAX_PATCHES 64           /* per domain; more are counted, not listed */
#define REPORT_MAX_MARKS 16             /* bad marks listed per domain */
#define REPORT_TEXT_MAX 1024
#define REPORT_MAX_REASONS 8

struct report_patch {
        char id[HVP_ID_MAX];
        char series[HVP_ID_MAX];
        uint64_t seq;
        char key[HVP_ID_MAX];
        long long applied_at;           /* unix time */
        double pause_ms;
        char state[16];                 /* hvp_patch_state_name(): applied, not-applied, foreign, dropped */
        bool marked_bad;                /* a bad mark for this patch on the running build */
};

/* A bad mark of the health gate for the domain's running kernel build (cli/report-health.c). */
struct report_mark {
        char patch_id[HVP_ID_MAX];
        char kind[24];                  /* what failed: taint, log, crashed, ... ("" unknown) */
        long long at;                   /* unix time, 0 unknown */
};

struct report_row {
        char domain[HVP_DOMAIN_NAME_MAX + 1];
        char uuid[HVP_UUID_STRING_LEN + 1];
        char libvirt_state[16];         /* libvirt's word: running, paused, shut-off, ... */
        enum report_verdict verdict;
        char os[16];                    /* "linux", "" unknown */
        char kernel[128];               /* the release, from the banner ("6.1.0-18-amd64") */
        char banner[512];
        char build_id[2 * 64 + 1];
        char group[HVP_NAME_MAX + 1];
        char baseline[HVP_NAME_MAX + 1];
        size_t n_reasons;               /* why not compliant (none when compliant) */
        char reasons[REPORT_MAX_REASONS][256];
        char reason_codes[REPORT_MAX_REASONS][32];      /* hvp_reason_name()s */
        int error_code;                 /* REPORT_ERROR: the exit code the error has (1, 3, 4, 5) */
        char error[REPORT_TEXT_MAX];    /* REPORT_ERROR: why the guest could not be read */
        bool interrupted;               /* a transaction did not finish: hvpatch recover */
        size_t n_patches;               /* listed (at most REPORT_MAX_PATCHES) */
        size_t n_patches_total;
        struct report_patch patches[REPORT_MAX_PATCHES];
        size_t n_applied, n_foreign, n_dropped, n_not_applied;
        size_t n_marks;
        struct report_mark marks[REPORT_MAX_MARKS];
        char health_note[256];          /* the bad marks could not be read: why ("" otherwise) */
        double read_ms;                 /* how long this guest took */
};

/* "tampered" (a patch memory holds neither old nor new bytes), "intact", "-" (nothing applied). */
const char *report_tamper(const struct report_row *r);
/* "marked-bad" (a bad mark on the running build), "-" (none: health9's gate has no other record here). */
const char *report_health(const struct report_row *r);

struct report {
        char host[256];
        time_t at;                      /* when the report was made */
        double seconds;                 /* how long it took */
        unsigned parallel;
        bool have_policy;
        char policy[1024];              /* the file, or why there is none */
        struct report_row *rows;        /* sorted by domain */
        size_t n_rows;
        size_t counts[REPORT_N_VERDICTS];
};

void report_count(struct report *rep);
/*
 * The exit code of a report: 1 if a guest could not be read, else 3 if a guest the
 * policy manages is not compliant (reboot-required or refused), else 0. Unmanaged and
 * shut-off domains do not change it.
 */
int report_exit_code(const struct report *rep);

/* The renderers: 0, or -errno of the stream. */
void report_table(FILE *f, const struct report *rep);
json_object *report_json(const struct report *rep);
int report_prometheus(FILE *f, const struct report *rep);
int report_html(FILE *f, const struct report *rep);

/*
 * The bad marks of the health gate for build_id under state_dir (STATE_DIR/bad/BUILD/
 * PATCH.json, health9's format), into row->marks; the row's patches get marked_bad.
 * A missing folder is no mark. Never fails the row: a folder that cannot be read puts
 * its reason into row->health_note.
 */
void report_read_marks(const char *state_dir, struct report_row *row);

#endif

/*
 * The health gate: after an apply, watch the guest for a while and undo a patch that
 * hurts it (docs/operations.md, "Health gate").
 *
 * What is watched, every HVP_HEALTH_POLL_MS until the time is up or a failure is seen:
 *   - libvirt's state of the domain: crashed (a pvpanic device reports a guest panic
 *     that way), paused on an error (I/O error, panic, watchdog), shut off;
 *   - the guest kernel's own taint flags, tainted_mask read from its memory, against
 *     their value before the apply: a WARN sets TAINT_WARN, an oops TAINT_DIE (the
 *     flags in HVP_TAINT_FAILING fail the gate; others are reported);
 *   - the guest kernel's log (its printk ring, read with its BTF): a new WARN or oops
 *     report ("WARNING: CPU:", "Oops:", "BUG: ", ...) fails, also in a guest whose taint
 *     flags were already set (a second WARN adds no flag);
 *   - the patch itself, when given: a patch memory no longer holds because the guest
 *     runs another kernel instance (it rebooted, e.g. after a panic) fails.
 * A failure quotes the guest kernel's new warning-level lines (its printk ring, read
 * with its BTF, include/hvpatch/linux.h), the WARN or oops report among them.
 *
 * hvp_op_apply runs the gate itself when asked (hvp_apply_request.health_seconds) and,
 * on a failure, reverts the patch if the guest still runs, audits (HVP_AUDIT_HEALTH)
 * and marks the bundle bad for the kernel build (below); front ends only print.
 *
 * Bad marks: STATE_DIR/bad/BUILD-ID/PATCH-ID.json, one small JSON file per bundle and
 * kernel build (folders of ours, writable by nobody else, as the rest of the state
 * folder). A marked bundle is refused by apply and check (HVP_EXIT_REFUSED, reason
 * code "marked-bad") and skipped by the desired state (plan, sync, hvpatchd) until an
 * operator clears the mark (`hvpatch bad clear`).
 *
 * Errors of this module: -EINVAL bad arguments or a malformed mark (the reason names
 * the file), -ENOENT no such mark, -E2BIG more marks or bytes than the bounds below,
 * -EPERM a state folder or file others could have written, -ENOMEM, -EIO.
 */
#ifndef HVPATCH_HEALTH_H
#define HVPATCH_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <hvpatch/apply.h>
#include <hvpatch/guest.h>
#include <hvpatch/policy.h>

#ifdef __cplusplus
extern "C" {
#endif

struct hvp_kernel;
struct hvp_mmu;

/* ---- taint flags (include/linux/panic.h; the letters of /proc/sys/kernel/tainted's decoders) ---- */

#define HVP_TAINT_BAD_PAGE 5
#define HVP_TAINT_DIE 7
#define HVP_TAINT_WARN 9
#define HVP_TAINT_SOFTLOCKUP 14
#define HVP_TAINT_MACHINE_CHECK 4
/* The flags a bad patch can raise: a new one fails the gate. */
#define HVP_TAINT_FAILING 0x42b0ull         /* bits 4 M, 5 B, 7 D, 9 W, 14 L */

/*
 * The kernel's tainted_mask (an unsigned long) read from guest memory through mmu.
 * -ENOENT the kernel has no such symbol (CONFIG_KALLSYMS_ALL off), else the reader's error.
 */
int hvp_linux_taint(struct hvp_mmu *mmu, const struct hvp_kernel *k, uint64_t *ret);

/*
 * The names of the flags set in mask, as "W (warn), D (die)", into buf (always
 * NUL-terminated, truncated to size); "none" for 0. Returns buf.
 */
char *hvp_taint_names(uint64_t mask, char *buf, size_t size);
/* One flag's letter ('W') and name ("warn"); '?' and "bit N" style for unknown bits (name NULL). */
char hvp_taint_letter(unsigned bit);
const char *hvp_taint_name(unsigned bit);

/* ---- the gate ------------------------------------------------------------------------- */

#define HVP_HEALTH_POLL_MS 250
#define HVP_HEALTH_MAX_SECONDS 3600
#define HVP_HEALTH_MAX_LINES 32
#define HVP_HEALTH_LINE_MAX 240
#define HVP_HEALTH_REASON_MAX 512

enum hvp_health_result {
        HVP_HEALTH_NOT_RUN = 0,
        HVP_HEALTH_PASS,
        HVP_HEALTH_FAIL,
        HVP_HEALTH_INTERRUPTED, /* the watch ended early, nothing seen: stop(), or the domain was
                                   destroyed, saved or migrated away (reason says which) */
};
/* "not-run", "pass", "fail", "interrupted". */
const char *hvp_health_result_name(enum hvp_health_result r);

struct hvp_health_report {
        enum hvp_health_result result;
        char kind[24];                  /* fail: "taint", "log", "crashed", "paused", "shutoff", "rebooted", "unreadable" */
        char reason[HVP_HEALTH_REASON_MAX];     /* fail, interrupted: in words; pass: "" */
        double seconds;                 /* how long the guest was watched */
        unsigned polls;
        /* taint, when readable (taint_known) */
        bool taint_known;
        uint64_t taint_before, taint_after;
        uint64_t taint_new;             /* after & ~before */
        /* libvirt's view at the last poll ("" when the guest is not a live domain) */
        char state[32], state_reason[32];
        bool pvpanic;                   /* the domain has a <panic> device */
        /* fail: the guest kernel's new warning-level lines (oldest first) */
        size_t n_lines;
        char lines[HVP_HEALTH_MAX_LINES][HVP_HEALTH_LINE_MAX];
        char log_note[160];             /* why no lines were quoted, "" otherwise */
        /* what hvp_op_apply did after a failure */
        bool reverted;
        char revert_error[HVP_HEALTH_REASON_MAX];       /* "" if reverted or not tried */
        bool marked_bad;
        char mark_error[HVP_HEALTH_REASON_MAX];
};

struct hvp_health_watch;

/*
 * Take what the gate compares with, before the apply: the taint flags and the kernel
 * log's last sequence number (the BTF is loaded here, once). Never fails for a
 * missing piece (no tainted_mask, no BTF: watched without it); -ENOMEM, -EINVAL.
 * The guest, mmu and kernel must outlive the watch.
 */
int hvp_health_begin(struct hvp_guest *g, struct hvp_mmu *mmu, const struct hvp_kernel *k,
                     struct hvp_health_watch **ret);
/*
 * Watch for seconds (1..HVP_HEALTH_MAX_SECONDS) after the apply of plan p (may be
 * NULL: the patch is not checked). Returns 0 with ret filled (PASS, FAIL or
 * INTERRUPTED); it returns early on a failure. stop (may be NULL) is polled: when it
 * returns true the watch ends early, INTERRUPTED (a daemon shutting down).
 */
int hvp_health_run(struct hvp_health_watch *w, const struct hvp_plan *p, unsigned seconds,
                   bool (*stop)(void *userdata), void *userdata, struct hvp_health_report *ret);
void hvp_health_end(struct hvp_health_watch *w);

/* ---- bad marks --------------------------------------------------------------------------- */

#define HVP_BAD_DIR "bad"
#define HVP_BAD_MAX_MARKS 4096          /* listed in all */
#define HVP_BAD_MAX_BUILDS 1024         /* build folders looked at */
#define HVP_BAD_FILE_MAX (16u << 10)

struct hvp_bad_mark {
        char build_id[2 * 64 + 1];      /* hex, lower case */
        char patch_id[HVP_ID_MAX];
        char series[HVP_ID_MAX];
        uint64_t seq;
        char domain[HVP_DOMAIN_NAME_MAX + 1];   /* where the gate failed */
        time_t at;
        char kind[24];                  /* hvp_health_report.kind */
        char reason[HVP_HEALTH_REASON_MAX];
};

struct hvp_bad_list {
        struct hvp_bad_mark *marks;     /* sorted by build id, then patch id */
        size_t n;
        size_t n_skipped;               /* files not named PATCH-ID.json, not taken (each hvp_warn()ed) */
};

/*
 * Record a mark (replacing one for the same build and patch). The build id must be
 * 2..128 hex digits, the patch id a manifest token ([A-Za-z0-9._-], 1..127): -EINVAL.
 */
int hvp_bad_mark_add(const char *state_dir, const struct hvp_bad_mark *m);
/*
 * The mark of patch_id for build_id: 1 and *ret filled (ret may be NULL), 0 none.
 * A malformed mark file counts as a mark (1, reason says so): a file in the folder
 * never lets a bundle through by being broken.
 */
int hvp_bad_mark_find(const char *state_dir, const char *build_id, const char *patch_id, struct hvp_bad_mark *ret);
/*
 * Every mark (build_id NULL) or those of one build. A missing folder is an empty
 * list; an unreadable mark file is listed as a mark of kind "unreadable", as find
 * counts it. Free with hvp_bad_list_free().
 */
int hvp_bad_list_load(const char *state_dir, const char *build_id, struct hvp_bad_list **ret);
void hvp_bad_list_free(struct hvp_bad_list *l);
/* Whether l holds patch_id for build_id (NULL if not). */
const struct hvp_bad_mark *hvp_bad_list_find(const struct hvp_bad_list *l, const char *build_id,
                                             const char *patch_id);
/*
 * Remove marks: of patch_id for build_id, of every patch for build_id (patch_id
 * NULL), or every mark (both NULL). *ret_removed: how many. -ENOENT when a named
 * mark does not exist.
 */
int hvp_bad_mark_clear(const char *state_dir, const char *build_id, const char *patch_id, size_t *ret_removed);

#ifdef __cplusplus
}
#endif

#endif

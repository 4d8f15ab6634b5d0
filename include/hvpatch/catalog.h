/*
 * Desired state: a catalog folder of signed bundles and, for one guest, what should
 * be applied (docs/operations.md, "Desired state: plan and sync").
 *
 * The catalog is a folder of NAME.hvp files, each signed beside it as NAME.hvp.minisig
 * (minisign). Loading it reads every bundle once, verifies its signature with the
 * policy's trusted keys and parses it from the verified bytes; a file that fails any
 * step (unsigned, bad signature, corrupt, over a bound) is kept as an entry with its
 * error and reason, and never stops the others. Other files are ignored.
 *
 * For a guest, the desired set is, per series, the highest sequence among the usable
 * entries whose target build id is the guest's running kernel and which the policy
 * allows for it (group, requirements, baseline, signer, series), ignoring what is
 * applied and the maintenance window: a desired bundle outside the window is marked
 * so, and waits. Each series gets an action against what memory holds:
 *   apply            nothing of the series applied: apply the desired bundle
 *   replace          an older sequence applied: the desired one replaces it
 *   nothing          the desired sequence (or a newer one) is applied, or the catalog
 *                    has nothing for this kernel that the policy allows
 *   reboot-required  the guest runs an older baseline (policy): no hotpatch, a reboot
 *   unmanaged        the policy manages no such guest (no group, unknown kernel), or a
 *                    patch applied by hand whose series the catalog does not hold:
 *                    reported, never removed
 *   marked-bad       the series' newest bundle for this kernel failed the health gate
 *                    (hvpatch/health.h): it is skipped until an operator clears its
 *                    mark, and nothing else is to be done (an older unmarked bundle of
 *                    the series is desired instead: then the action is that one's)
 *
 * Errors of this module: -EINVAL bad arguments or not a folder, -ENOENT no folder,
 * -ENOMEM, -EIO a read error of the folder itself.
 */
#ifndef HVPATCH_CATALOG_H
#define HVPATCH_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hvpatch/apply.h>
#include <hvpatch/health.h>
#include <hvpatch/ops.h>
#include <hvpatch/policy.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HVP_CATALOG_DEFAULT_DIR "/var/lib/hvpatch/catalog"
/* Bounds: .hvp files taken (further ones are entries with -E2BIG), folder entries
 * looked at, bytes of bundles read in all (each bundle is at most HVP_BUNDLE_MAX). */
#define HVP_CATALOG_MAX_FILES 512
#define HVP_CATALOG_MAX_DIRENTS 16384
#define HVP_CATALOG_MAX_BYTES (1024ull << 20)
#define HVP_CATALOG_NAME_MAX 255

struct hvp_catalog_entry {
        char file[HVP_CATALOG_NAME_MAX + 1];    /* NAME.hvp, in the folder */
        char *path;                             /* folder/NAME.hvp (owned by the catalog) */
        int error;                              /* 0: usable; else why not (negative errno) */
        char reason[512];                       /* "" when usable */
        /* usable entries only: */
        char patch_id[HVP_ID_MAX];
        char series[HVP_ID_MAX];
        uint64_t seq;
        char target_build_id[2 * 64 + 1];       /* hex, lower case */
        char key_name[HVP_NAME_MAX + 1];        /* the trusted key that signed it */
};

struct hvp_catalog {
        char *dir;
        struct hvp_catalog_entry *entries;      /* sorted by file name */
        size_t n_entries;
        size_t n_usable;
};

/*
 * Read the catalog folder dir with the trusted keys of policy (required). Returns 0
 * with every .hvp file an entry (usable or with its error), or -ENOENT/-EINVAL/-EIO
 * for the folder itself.
 */
int hvp_catalog_load(const char *dir, const struct hvp_policy *policy, struct hvp_catalog **ret);
void hvp_catalog_free(struct hvp_catalog *c);

enum hvp_sync_action {
        HVP_SYNC_NOTHING,
        HVP_SYNC_APPLY,
        HVP_SYNC_REPLACE,
        HVP_SYNC_REBOOT_REQUIRED,
        HVP_SYNC_UNMANAGED,
        HVP_SYNC_MARKED_BAD,
};
/* "nothing", "apply", "replace", "reboot-required", "unmanaged", "marked-bad". */
const char *hvp_sync_action_name(enum hvp_sync_action a);

/* What memory holds of a series (from hvp_op_state): its record entry and state. */
struct hvp_actual_patch {
        const char *patch_id;
        const char *series;
        uint64_t seq;
        enum hvp_patch_state state;
};

struct hvp_series_plan {
        char series[HVP_ID_MAX];
        const struct hvp_catalog_entry *desired;        /* in the catalog; NULL: none */
        bool outside_window;            /* desired, but not now: the window is closed */
        bool has_actual;                /* applied (or foreign) in memory */
        struct hvp_actual_patch actual; /* strings point into the caller's state */
        enum hvp_sync_action action;
        char note[512];                 /* why, in words ("" if plain) */
        const struct hvp_catalog_entry *marked; /* newer than desired, but marked bad; NULL: none */
};

struct hvp_desired_plan {
        struct hvp_decision compliance; /* hvp_policy_assess(); ALLOW: compliant */
        struct hvp_series_plan *series; /* sorted by series */
        size_t n_series;
};

/*
 * The desired set and the action per series for a guest with facts (its kernel build
 * id must be set; facts->applied is ignored) and actual (what memory holds, any
 * order). Pure: reads only its arguments, the policy and the clock in facts->now.
 * The plan points into catalog and actual, which must outlive it.
 */
int hvp_desired_compute(const struct hvp_catalog *catalog, const struct hvp_policy *policy,
                        const struct hvp_guest_facts *facts, const struct hvp_actual_patch *actual,
                        size_t n_actual, struct hvp_desired_plan **ret);
/*
 * The same, leaving out the bundles bad (may be NULL) marks for the guest's kernel
 * build: per series the highest unmarked sequence is desired, and a newer marked one
 * is named in the series' marked (action marked-bad when nothing else is to be done).
 */
int hvp_desired_compute_marked(const struct hvp_catalog *catalog, const struct hvp_policy *policy,
                               const struct hvp_guest_facts *facts, const struct hvp_actual_patch *actual,
                               size_t n_actual, const struct hvp_bad_list *bad, struct hvp_desired_plan **ret);
void hvp_desired_plan_free(struct hvp_desired_plan *p);

/*
 * Plan (and unless dry_run, converge) an attached guest: hvp_op_state, the facts,
 * hvp_desired_compute, then for each series to apply or replace whose window is open,
 * hvp_op_apply of the desired bundle (the whole pipeline, its own lock and audit),
 * one after another; a failed step does not stop the others. Nothing is ever
 * reverted or removed.
 */
struct hvp_move_plan;
struct hvp_sync_step {
        const struct hvp_series_plan *plan;     /* in result->plan */
        bool attempted;                         /* false: dry run, or waiting for the window */
        struct hvp_apply_outcome *outcome;      /* attempted only (owned) */
};
struct hvp_sync_result {
        struct hvp_guest_state *state;          /* before the sync (owned) */
        struct hvp_actual_patch *actual;        /* from state (owned) */
        struct hvp_desired_plan *plan;          /* owned */
        struct hvp_sync_step *steps;            /* one per series with apply or replace */
        size_t n_steps;
        int exit_class;                         /* the first failed step's, else HVP_EXIT_OK */
        /* a reboot-required guest: its baseline move (include/hvpatch/move.h); NULL
           otherwise. sync never moves: the caller runs hvp_op_move_baseline (owned) */
        struct hvp_move_plan *move;
        struct hvp_bad_list *bad;               /* the marks of the guest's kernel build (owned) */
};
int hvp_op_sync(struct hvp_guest *g, struct hvp_mmu *mmu, const struct hvp_kernel *k, const char *state_dir,
                const struct hvp_policy *policy, const struct hvp_catalog *catalog, bool dry_run,
                struct hvp_sync_result **ret);
/*
 * hvp_op_sync with options: the bad marks of the guest's kernel build are read from
 * state_dir (hvp_bad_list_load; an unusable marks folder fails the sync, as an unsafe
 * state folder does), and every apply runs the health gate for health_seconds (0: none;
 * a failure reverts, marks the bundle bad and is that step's HVP_EXIT_HEALTH).
 */
struct hvp_sync_options {
        bool dry_run;
        unsigned health_seconds;
        bool (*health_stop)(void *userdata);    /* as hvp_apply_request's */
        void *health_userdata;
};
int hvp_op_sync_ex(struct hvp_guest *g, struct hvp_mmu *mmu, const struct hvp_kernel *k, const char *state_dir,
                   const struct hvp_policy *policy, const struct hvp_catalog *catalog,
                   const struct hvp_sync_options *opts, struct hvp_sync_result **ret);
void hvp_sync_result_free(struct hvp_sync_result *r);

/*
 * The names of the running domains of the libvirt connection uri (NULL: qemu:///system),
 * sorted, at most max (-E2BIG if more). Free each and the array with free().
 */
int hvp_list_running_domains(const char *uri, size_t max, char ***ret_names, size_t *ret_n);

/*
 * Every domain of the connection uri (NULL: qemu:///system), running or not, sorted by
 * name, at most max (-E2BIG if more). state is libvirt's, as a word: "running",
 * "blocked", "paused", "shutting-down", "shut-off", "crashed", "pmsuspended" or
 * "unknown". Free the array with free(). -EIO no connection or no listing.
 */
struct hvp_domain_info {
        char name[HVP_DOMAIN_NAME_MAX + 1];
        char uuid[HVP_UUID_STRING_LEN + 1];
        bool active;                    /* a QEMU process runs it (running, paused, ...) */
        char state[16];
};
int hvp_list_domains(const char *uri, size_t max, struct hvp_domain_info **ret, size_t *ret_n);

#ifdef __cplusplus
}
#endif

#endif

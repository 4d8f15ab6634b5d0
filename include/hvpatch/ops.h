/*
 * Operations: the whole apply, check, revert and state paths as single calls, for
 * every front end (the hvpatch CLI, a daemon, rollouts, Ansible or Cockpit plugins).
 *
 * Each operation runs every step the CLI's command of the same name runs, in the same
 * order, with the same audit records, and returns a structured outcome: what was done,
 * every reason why not, the pause window and an exit class (the CLI's exit codes,
 * README "Exit codes"). Nothing here prints: progress goes to the log callback
 * (hvpatch.h), failures into the outcome (and hvp_last_error()).
 *
 * Return value: 0 when the operation ran to an outcome (which may be a failure or a
 * refusal: look at exit_class), a negative errno only for bad arguments (-EINVAL).
 * Outcomes are caller-allocated and always filled (zeroed first).
 *
 * Locking: hvp_op_apply (not check) and hvp_op_revert take the domain's lock
 * (hvp_domain_lock) themselves for the time of the call; a caller must not hold it.
 */
#ifndef HVPATCH_OPS_H
#define HVPATCH_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hvpatch/apply.h>
#include <hvpatch/guest.h>
#include <hvpatch/health.h>
#include <hvpatch/policy.h>

#ifdef __cplusplus
extern "C" {
#endif

struct hvp_kernel;
struct hvp_mmu;

/* Exit classes: the same numbers as the CLI's exit codes. */
enum hvp_exit_class {
        HVP_EXIT_OK = 0,
        HVP_EXIT_ERROR = 1,
        HVP_EXIT_REFUSED = 3,   /* refused by policy or signature */
        HVP_EXIT_BUSY = 4,      /* guest busy: retry */
        HVP_EXIT_MISMATCH = 5,  /* a patch site does not match */
        HVP_EXIT_HEALTH = 6,    /* applied, then the health gate failed: reverted (if the guest runs), marked bad */
};

/*
 * The class of a library error code: -EPERM, -EKEYREJECTED, -EKEYREVOKED, -ENOKEY,
 * -EACCES refused; -EBUSY, -EAGAIN busy; -ESTALE, -EILSEQ mismatch; else error.
 */
int hvp_exit_class(int err);

#define HVP_OP_MAX_REASONS 32
#define HVP_OP_REASON_MAX 1024

/* One reason why not: the stage that failed, a stable code where one exists. */
struct hvp_op_reason {
        char stage[16];         /* bundle, policy, signature, guest, lock, record, plan, apply */
        char code[32];          /* hvp_reason_name() of a policy reason, else "" */
        int exit_class;
        char text[HVP_OP_REASON_MAX];
};

/*
 * The stack check (hvpatch/stackcheck.h) of apply and revert: AUTO runs it when the
 * guest kernel has BTF, else warns and goes on without it (the outcome says it was
 * off, and why); REQUIRE refuses to write without it (exit class error); OFF skips it.
 */
enum hvp_stack_check_mode {
        HVP_STACK_CHECK_AUTO = 0,
        HVP_STACK_CHECK_REQUIRE,
        HVP_STACK_CHECK_OFF,
};

/*
 * What to apply where. bundle_path is read once (at most HVP_BUNDLE_MAX bytes); the
 * bytes verified are the bytes parsed. The signature is sig_path (NULL:
 * bundle_path + ".minisig"). The policy is `policy` if given, else it is loaded from
 * policy_path (NULL: HVP_POLICY_DEFAULT_PATH); a missing or unusable policy refuses.
 * The guest is `guest`/`mmu`/`kernel` if all three are given (attached by the caller,
 * who keeps them), else the live domain `domain` is opened with `live` and attached.
 */
struct hvp_apply_request {
        const char *domain;             /* name or UUID (also names refusals before opening) */
        const struct hvp_live_options *live;    /* NULL: defaults */
        struct hvp_guest *guest;        /* optional: an attached guest ... */
        struct hvp_mmu *mmu;
        const struct hvp_kernel *kernel;
        const char *bundle_path;
        const char *sig_path;
        const struct hvp_policy *policy;
        const char *policy_path;
        const char *state_dir;          /* NULL: HVP_STATE_DIR */
        enum hvp_area_choice area;
        bool check_only;                /* check: run every stage, collect every reason, write nothing */
        bool insecure_unsigned;         /* FOR TESTS: no signature and no policy check */
        /*
         * The health gate (hvpatch/health.h): after the apply, watch the guest this many
         * seconds (0: no gate; at most HVP_HEALTH_MAX_SECONDS). On a failure the patch is
         * reverted if the guest still runs, the failure audited (HVP_AUDIT_HEALTH) and the
         * bundle marked bad for the kernel build: exit class HVP_EXIT_HEALTH.
         * health_stop (may be NULL) ends the watch early as a pass (a daemon stopping).
         */
        unsigned health_seconds;
        bool (*health_stop)(void *userdata);
        void *health_userdata;
        enum hvp_stack_check_mode stack_check;
};

struct hvp_apply_outcome {
        int exit_class;                 /* HVP_EXIT_OK: applied (check: would apply) */
        char first_error[HVP_OP_REASON_MAX]; /* the first failure's text, "" if none */
        size_t n_reasons;               /* apply stops at its first failed stage; check collects */
        struct hvp_op_reason reasons[HVP_OP_MAX_REASONS];
        bool applied;                   /* memory holds the patch and the record says so */
        /* what is known of the bundle, once parsed (has_bundle) */
        bool has_bundle;
        char patch_id[HVP_ID_MAX];
        char series[HVP_ID_MAX];
        uint64_t seq;
        size_t nr_sites;
        bool signed_ok;
        char key_name[HVP_NAME_MAX + 1];        /* the trusted key that signed it */
        /* the guest, once opened ("" before) */
        char domain[HVP_DOMAIN_NAME_MAX + 1];
        /* the plan, once made (planned) */
        bool planned;
        size_t nr_writes;
        char replaced[HVP_ID_MAX];      /* the patch of the series it replaces, "" if none */
        /* the pause window, once applied */
        struct hvp_apply_report report;
        enum hvp_write_path write_path;
        uint32_t max_pause_ms;          /* the policy group's bound (0: none known) */
        bool pause_exceeded;            /* the window took longer than that bound */
        /* the health gate, when asked for and applied (health.result != HVP_HEALTH_NOT_RUN) */
        struct hvp_health_report health;
        /* refused because the bundle is marked bad for this kernel build (bad_mark filled) */
        bool marked_bad;
        struct hvp_bad_mark bad_mark;
        /* the stack check: on (report.stack holds its figures) or off and why */
        bool stack_check_on;
        char stack_check_off[512];      /* "" when on */
        bool stack_busy;                /* refused: stack_hit names the task (exit class busy) */
        struct hvp_stack_hit stack_hit;
};

/*
 * Apply (or with check_only, check) a signed bundle: read it, verify its signature
 * under the policy, parse it, open and attach the guest (a Windows guest is refused:
 * PatchGuard), lock, refuse if a transaction is pending (hvp_recover), load the
 * record and drop what memory no longer holds, authorize (group, requirements,
 * baseline, window, signer, sequence), check the vCPUs are idle, plan while the guest
 * runs, then one pause window (hvp_plan_apply). Every apply and every refusal is
 * audited (hvp_audit); check audits nothing and, instead of the window, takes the
 * stack check's look while the guest runs: a task inside a range now is a reason of
 * stage "stack" (HVP_EXIT_BUSY, stack_busy and stack_hit set). A bundle marked bad
 * for the guest's kernel build (hvp_bad_mark_find) is refused: HVP_EXIT_REFUSED,
 * stage "health", code "marked-bad". With health_seconds, the health gate runs after
 * the apply, under the domain's lock.
 */
int hvp_op_apply(const struct hvp_apply_request *req, struct hvp_apply_outcome *ret);

/*
 * Revert an applied patch: its sites back to the original bytes in one pause window,
 * dropped from the record, its area code retired. A patch memory no longer holds (the
 * guest rebooted) is dropped from the record: exit_class HVP_EXIT_ERROR with
 * dropped true. Memory holding neither the patch nor the original: HVP_EXIT_MISMATCH,
 * nothing touched. Audited (HVP_AUDIT_REVERT) when a window was attempted.
 */
struct hvp_revert_outcome {
        int exit_class;
        char error[HVP_OP_REASON_MAX];  /* "" on success */
        bool reverted;
        bool dropped;                   /* not in memory any more: record entry dropped */
        size_t nr_writes;
        struct hvp_apply_report report;
        bool stack_check_on;            /* as in hvp_apply_outcome (revert's mode is AUTO) */
        char stack_check_off[512];
        bool stack_busy;
        struct hvp_stack_hit stack_hit;
};
int hvp_op_revert(struct hvp_guest *g, const struct hvp_kernel *k, const char *state_dir, const char *patch_id,
                  struct hvp_revert_outcome *ret);

/* What memory says of an applied patch (memory is compared; the record is not trusted). */
enum hvp_patch_state {
        HVP_PATCH_APPLIED,      /* every write holds the patch's bytes */
        HVP_PATCH_NOT_APPLIED,  /* every write holds the original bytes */
        HVP_PATCH_FOREIGN,      /* some writes hold neither, or a mix, or area code remapped */
        HVP_PATCH_DROPPED,      /* the guest runs another kernel instance (rebooted) */
};
/* "applied", "not-applied", "foreign", "dropped". */
const char *hvp_patch_state_name(enum hvp_patch_state s);
/*
 * The state of plan p in guest g running kernel k. With mmu given, an applied patch
 * whose area code no longer translates to where it was placed is FOREIGN.
 */
enum hvp_patch_state hvp_patch_state(struct hvp_guest *g, struct hvp_mmu *mmu, const struct hvp_kernel *k,
                                     const struct hvp_plan *p);

/*
 * Drop the record entries memory no longer holds (DROPPED or NOT_APPLIED) and the
 * retired ranges a new boot released. ret_changed: whether anything was dropped.
 */
int hvp_record_prune(struct hvp_guest *g, const struct hvp_kernel *k, struct hvp_record *rec, bool *ret_changed);

/*
 * The facts of an attached Linux guest for the policy: domain XML, kernel build id,
 * patch areas, the applied series of rec (may be NULL), now. The applied list points
 * into rec, which must outlive the facts; ret->kernel_build_id points into
 * build_id_hex (2 * 64 + 1 bytes, the caller's).
 */
int hvp_guest_facts_gather(struct hvp_guest *g, struct hvp_mmu *mmu, const struct hvp_kernel *k,
                           const struct hvp_record *rec, char *build_id_hex,
                           struct hvp_applied_series **ret_applied, struct hvp_guest_facts *ret);

/* A guest's patch state and compliance: what `hvpatch status` reports. */
struct hvp_patch_status {
        const struct hvp_record_entry *entry;   /* in rec */
        enum hvp_patch_state state;
};
struct hvp_guest_state {
        struct hvp_record *rec;                 /* the domain's record (owned) */
        struct hvp_patch_status *patches;       /* rec->nr_entries, in record order */
        size_t n_patches;
        bool interrupted;                       /* a journal: hvp_recover() is due */
        char build_id[2 * 64 + 1];              /* hex of the running kernel's */
        bool have_policy;                       /* compliance filled (policy given) */
        struct hvp_decision compliance;         /* hvp_policy_assess(); ALLOW means compliant */
};
/*
 * Read the record (nothing is pruned; an empty local record adopts the one the
 * domain's metadata carries: hvp_record_adopt), each patch's state from
 * memory, and, with a policy (may be NULL), the guest's compliance.
 * Errors: -EINVAL corrupt record, -EPERM unsafe state folder, others from the areas
 * and the domain XML; hvp_last_error() says which step.
 */
int hvp_op_state(struct hvp_guest *g, struct hvp_mmu *mmu, const struct hvp_kernel *k, const char *state_dir,
                 const struct hvp_policy *policy, struct hvp_guest_state **ret);
void hvp_guest_state_free(struct hvp_guest_state *s);

/*
 * The records travel with the guest: a copy of the domain's record lives in its live
 * libvirt metadata (namespace HVP_METADATA_NS, element <hvpatch:state> holding
 * <hvpatch:records>, the record's JSON; whatever else the element held, such as the
 * operator's <hvpatch:group>, is kept), so that virsh save/restore, managedsave and
 * migration carry it and `virsh metadata DOMAIN --live --uri urn:hvpatch:libvirt-metadata:1`
 * shows it. Live only: a new boot starts without it. The local record stays the truth
 * (and the journal the crash recovery).
 *
 * hvp_record_publish: write rec there (hvp_op_apply and hvp_op_revert do after each
 * change). -E2BIG a record over HVP_METADATA_RECORDS_MAX (then the copy is removed, never
 * left stale), -ENOTSUP not a live domain.
 * hvp_record_from_metadata: the record carried there, *ret NULL if none.
 * hvp_record_adopt: when rec (the local record) is empty, take in the carried entries
 * that memory holds (hvp_patch_state applied) and the retired ranges still in force,
 * and save rec; ret_adopted says whether anything was taken. The caller holds the lock.
 */
/* The domain XML the policy reads is bounded at 1 MiB (hvp_guest_facts_from_domain_xml). */
#define HVP_METADATA_RECORDS_MAX (512u << 10)
int hvp_record_publish(struct hvp_guest *g, const struct hvp_record *rec);
int hvp_record_from_metadata(struct hvp_guest *g, struct hvp_record **ret);
int hvp_record_adopt(struct hvp_guest *g, const struct hvp_kernel *k, const char *state_dir, struct hvp_record *rec,
                     bool *ret_adopted);

/*
 * One audit record (hvp_audit) for an action on plan p (may be NULL) in guest g; the
 * reason is hvp_last_error() when result < 0.
 */
void hvp_audit_op(enum hvp_audit_action action, struct hvp_guest *g, const struct hvp_plan *p, int result,
                  double pause_ms);

#ifdef __cplusplus
}
#endif

#endif

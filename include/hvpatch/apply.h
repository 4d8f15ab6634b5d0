/*
 * The pause-window transaction and the records of what is applied.
 *
 * A plan is a plain list of writes, made while the guest runs (patcher/plan.c).
 * hvp_plan_apply() then pauses the guest, re-reads and re-checks every write's
 * old bytes, makes sure no vCPU is inside a range being replaced, writes, reads
 * back and resumes. A failure inside the window restores what was written before
 * resuming; no error path leaves the guest paused.
 *
 * Before the pause, the transaction is journaled beside the domain's record, so
 * that after a crash of hvpatch itself hvp_recover() can bring every site to
 * all-old or all-new and resume the guest.
 *
 * Errors:
 *   -ESTALE    a site's bytes changed since the plan was made (nothing written)
 *   -EBUSY     a vCPU stayed inside a range after the retries, or a task kept an address
 *              inside one on its stack (the stack check), a libvirt job runs,
 *              or another hvpatch holds the domain's lock
 *   -EIO       a write or read-back failed (what was written has been restored)
 *   -ENOENT    no such applied patch (revert)
 */
#ifndef HVPATCH_APPLY_H
#define HVPATCH_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hvpatch/guest.h>
#include <hvpatch/stackcheck.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bounds of a plan. */
#define HVP_PLAN_MAX_WRITES 4096
#define HVP_WRITE_MAX_LEN 4096          /* one write never crosses a guest page */
#define HVP_ID_MAX 128

struct hvp_write {
        uint64_t va;            /* guest-virtual (for reports and re-attachment) */
        uint64_t gpa;           /* guest-physical, where the bytes go */
        uint32_t len;
        uint8_t *old;           /* len bytes expected before (owned by the plan) */
        uint8_t *new;           /* len bytes after (owned by the plan) */
        bool check_rip;         /* the range holds more than one instruction: no vCPU's
                                 * RIP may lie strictly inside it while we write */
        bool area;              /* patch-area code, not a kernel site */
        unsigned site;          /* index of the manifest site it belongs to */
        /*
         * The range the stack check guards for this write (consistency="function": the
         * whole function the site lies in, [guard_start, guard_start + guard_len));
         * guard_len 0: the written bytes. Not set by hvp_plan_add_write(): set it on the
         * write it added. Kept by hvp_plan_copy() and hvp_plan_inverse().
         */
        uint64_t guard_start, guard_len;
};

struct hvp_plan {
        char patch_id[HVP_ID_MAX];
        char series[HVP_ID_MAX];
        uint64_t seq;
        char key_name[HVP_ID_MAX];      /* who signed it ("" for an unsigned test bundle) */
        uint8_t build_id[64];
        size_t build_id_len;
        uint64_t kernel_base;           /* _text of the kernel the plan was made for */
        struct hvp_write *writes;
        size_t nr_writes;
        /* Patch-area bytes in use by this patch: [area_start, area_start + area_len). */
        uint64_t area_start, area_len;
        /* For a cumulative replacement: the patch it replaces ("" if none). */
        char replaces[HVP_ID_MAX];
};

struct hvp_plan *hvp_plan_new(void);
/* Append a write (bytes copied). -E2BIG past the bounds, -EINVAL if it crosses a page. */
int hvp_plan_add_write(struct hvp_plan *p, uint64_t va, uint64_t gpa, const void *old, const void *new,
                       size_t len, bool check_rip, bool area, unsigned site);
void hvp_plan_free(struct hvp_plan *p);
/* The inverse of a plan: every write with old and new swapped, in reverse order. */
int hvp_plan_inverse(const struct hvp_plan *p, struct hvp_plan **ret_plan);
/* A deep copy. */
int hvp_plan_copy(const struct hvp_plan *p, struct hvp_plan **ret_plan);
/* A new plan with p's identity (ids, build, area) and no writes; NULL on ENOMEM. */
struct hvp_plan *hvp_plan_new_like(const struct hvp_plan *p);

/*
 * What a transaction changes in the domain's record once memory holds the new bytes:
 * add an applied patch (its plan's old bytes are the original kernel bytes) and/or
 * drop one (revert, or the patch a cumulative bundle replaces).
 */
struct hvp_commit {
        const struct hvp_plan *add;     /* NULL: nothing added */
        const char *remove_id;          /* NULL: nothing removed */
};

/* How the transaction went. */
struct hvp_apply_report {
        double pause_ms;                /* from the pause request to the resume's return */
        double total_ms;                /* from hvp_plan_apply's start to the resume's return */
        unsigned attempts;              /* attempts made (a vCPU or a task inside a range forces a retry) */
        size_t bytes_written;
        bool stack_checked;             /* the stack check ran (options.stack_check) */
        struct hvp_stack_stats stack;   /* its figures, of the last attempt */
        bool stack_busy;                /* the last attempt found a task inside a range: */
        struct hvp_stack_hit stack_hit; /* who, and where */
};

struct hvp_apply_options {
        const char *state_dir;          /* NULL: HVP_STATE_DIR */
        unsigned max_attempts;          /* 0: default 5 */
        unsigned retry_delay_ms;        /* 0: default 20 */
        /*
         * NULL: no stack check. Else, at every attempt, hvp_stack_check_prepare() before
         * the pause and hvp_stack_check_paused() inside it, over the ranges of the kernel
         * writes (patch-area code is new: no task is in it). A hit is retried like a vCPU
         * inside a range; -EBUSY after the last attempt, naming the task.
         */
        struct hvp_stack_check *stack_check;
};

#define HVP_STATE_DIR "/var/lib/hvpatch"

/*
 * Carry out txn (expected-now -> new bytes) in one pause window, then apply commit
 * to the record. The caller holds the domain's lock. Journaled first in
 * STATE_DIR/domains/UUID.journal so that hvp_recover() can finish or undo it.
 */
int hvp_plan_apply(struct hvp_guest *g, const struct hvp_plan *txn, const struct hvp_commit *commit,
                   const struct hvp_apply_options *opts, struct hvp_apply_report *ret_report);

/*
 * Plan a bundle against the running kernel, while the guest runs: resolve every
 * site, check the live bytes against the expected ones and instruction boundaries
 * (capstone), place and relocate redirect code in the patch area, translate every
 * address. A newer bundle of a series already applied replaces it (cumulative).
 *
 * ret_txn: the writes of the pause window (expected-now -> new).
 * ret_pure: what the record keeps (original kernel bytes -> new).
 * ret_replaces: the patch id it replaces ("" if none), HVP_ID_MAX bytes.
 * Errors: -EPERM bundle for another kernel build, or not newer than the applied one
 * of its series; -EEXIST already applied, or a site held by another patch;
 * -ESTALE a site's bytes differ from the expected ones; -EILSEQ a range that splits
 * an instruction; -ENOENT a missing symbol; -ENOSPC no room in the patch area;
 * -ENODEV the device area was asked for and the domain has none;
 * others from patch.h.
 */
struct hvp_bundle;
struct hvp_kernel;
struct hvp_mmu;
struct hvp_record;

/* Where redirect code goes (include/hvpatch/area.h). */
enum hvp_area_choice {
        HVP_AREA_AUTO = 0,      /* the slack when the code fits, else the device area */
        HVP_AREA_SLACK,
        HVP_AREA_DEVICE,
};

int hvp_plan_build(struct hvp_mmu *mmu, const struct hvp_kernel *k, const struct hvp_bundle *b,
                   const char *key_name, const struct hvp_record *rec, enum hvp_area_choice area,
                   struct hvp_plan **ret_txn, struct hvp_plan **ret_pure, char *ret_replaces);

/* --- Records: what is applied to a domain, in STATE_DIR/domains/UUID.json ------- */

struct hvp_record_entry {
        struct hvp_plan *plan;          /* old bytes: the original kernel's */
        long long applied_at;           /* unix time */
        double pause_ms;
};

/*
 * Retired patch-area code (docs/design-notes.md, "Retirement"). A patch leaving the
 * record (revert, or replaced by a newer sequence of its series) gives back its
 * entry jumps only: its code stays in the area, byte for byte, because a task may
 * still run it or return into it (it called out of it before the jump went away).
 * Such a range is retired: never written, erased or reused while it is in force.
 *
 * A range is in force while the guest runs the boot it was retired in. Without a
 * proof that no task is inside it (a later stack check fills `released_by`), only
 * a new boot releases it: another kernel build or KASLR base than `boot`'s, or, for
 * the slack area (reloaded with the kernel image at every boot), the area's bytes
 * back to the filler under the same base (a boot without KASLR).
 */
struct hvp_retired {
        char patch_id[HVP_ID_MAX];      /* the patch that placed the code */
        uint64_t va, gpa;               /* start: area ranges are physically contiguous */
        uint32_t len;                   /* 1 .. HVP_RETIRED_MAX_LEN */
        uint8_t *code;                  /* len bytes: what the patch placed (owned) */
        uint8_t filler;                 /* what the area held before */
        uint8_t build_id[64];           /* the boot it was retired in: kernel build ... */
        size_t build_id_len;
        uint64_t kernel_base;           /* ... and its KASLR base */
        long long retired_at;           /* unix time */
        char released_by[64];           /* "" while in force; a proof's name once released */
};
#define HVP_RETIRED_MAX_LEN (2u << 20)  /* the largest area */
#define HVP_RETIRED_MAX 65536           /* ranges in one record */

struct hvp_record {
        char uuid[64];
        struct hvp_record_entry *entries;
        size_t nr_entries;
        struct hvp_retired *retired;    /* retired area ranges, oldest first */
        size_t nr_retired;
};

/* Load the record of a domain (an empty one if none). -EINVAL if the file is corrupt. */
int hvp_record_load(const char *state_dir, const char *uuid, struct hvp_record **ret);
/* Write it atomically (temporary file, fsync, rename, fsync of the folder). */
int hvp_record_save(const char *state_dir, const struct hvp_record *rec);
void hvp_record_free(struct hvp_record *rec);
/* The entry of a patch id, or NULL. */
struct hvp_record_entry *hvp_record_find(const struct hvp_record *rec, const char *patch_id);
/* The entry of a series, or NULL. */
struct hvp_record_entry *hvp_record_find_series(const struct hvp_record *rec, const char *series);
/*
 * Apply a commit to a record in memory (the plan added is copied). The area code of
 * the entry removed becomes retired (hvp_record_retire), never erased.
 */
int hvp_record_commit(struct hvp_record *rec, const struct hvp_commit *commit, double pause_ms);

/*
 * Retire the patch-area writes of p (contiguous writes merged into one range) as of
 * the boot p was made for. Idempotent: a range already retired is not added twice.
 * -E2BIG past HVP_RETIRED_MAX ranges.
 */
int hvp_record_retire(struct hvp_record *rec, const struct hvp_plan *p);

/*
 * Is a retired range still in force in the guest as it runs now (kernel k)? False
 * when released (another boot, or released_by set). ret_state (may be NULL) gets
 * what memory holds there: HVP_SITE_NEW the code, HVP_SITE_OLD the filler,
 * HVP_SITE_FOREIGN anything else, HVP_SITE_UNREADABLE.
 */
bool hvp_retired_in_force(struct hvp_guest *g, const struct hvp_kernel *k, const struct hvp_retired *r,
                          int *ret_state);

/* Drop the retired ranges that a new boot released. ret_changed: whether any was dropped. */
int hvp_record_release_retired(struct hvp_guest *g, const struct hvp_kernel *k, struct hvp_record *rec,
                               bool *ret_changed);

/*
 * A revert's transaction: every kernel-site write of p undone (old and new swapped,
 * last first); its patch-area writes are left alone (they become retired).
 */
int hvp_plan_revert_txn(const struct hvp_plan *p, struct hvp_plan **ret_txn);

/* JSON (de)serialisation of plans, used by records and journals. */
struct json_object;
struct json_object *hvp_plan_to_json(const struct hvp_plan *p);
int hvp_plan_from_json(struct json_object *o, struct hvp_plan **ret_plan);

/*
 * Per-domain lock: one hvpatch at a time. Non-blocking: -EBUSY if held. The lock
 * dies with the process that holds it (flock), so a killed hvpatch never blocks
 * recovery. Returns a descriptor to pass to hvp_domain_unlock().
 */
int hvp_domain_lock(const char *state_dir, const char *uuid, int *ret_fd);
void hvp_domain_unlock(int fd);

/*
 * 1 if the domain has the journal of an unfinished transaction (hvp_recover() is
 * due), 0 if not. Does not create the state folder.
 *
 * The state folder (STATE_DIR and STATE_DIR/domains) must belong to the running user
 * and be writable by nobody else, and records, journals and locks are never read
 * or written through a symlink: every call on the state folder refuses otherwise
 * with -EPERM, naming the path (a journal says what hvp_recover() writes into guest
 * RAM). Missing folders are created with mode 0700.
 */
int hvp_journal_exists(const char *state_dir, const char *uuid);

/*
 * Site states as memory shows them (memory is compared, not the record trusted).
 */
enum hvp_site_state {
        HVP_SITE_NEW,           /* every byte is the patch's */
        HVP_SITE_OLD,           /* every byte is the original */
        HVP_SITE_FOREIGN,       /* neither: someone else changed it, or a torn write */
        HVP_SITE_UNREADABLE,
};
int hvp_write_state(struct hvp_guest *g, const struct hvp_write *w, enum hvp_site_state *ret);

/*
 * After a crash of hvpatch: if the domain has a journal, bring every write of its
 * transaction to all-new (when all of them are new: then commit it) or all-old, drop
 * the journal, and resume the guest if the dead hvpatch left it paused inside its
 * window. The journal's phase (docs/operations.md) says which: "window" (written
 * before the pause: take the pause over, repair) or "resumed" (written after the
 * window closed: record it without pausing when memory holds the patch). The caller
 * holds the domain's lock. ret_summary (may be NULL) gets a malloc'd account of what
 * was done. -ENOENT: nothing to recover; -EINVAL: a journal with an unknown phase or
 * none (nothing touched).
 */
int hvp_recover(struct hvp_guest *g, const char *state_dir, char **ret_summary);

/*
 * Test-only fault hook: with HVPATCH_FAULT_AT=STEP in the environment, the process
 * kills itself with SIGKILL when it reaches STEP. Steps, in order: journaled (phase
 * window), paused, checked, written-1 (after the first write), written, resumed
 * (after the journal says resumed), recorded.
 */
void hvp_fault_point(const char *step);
/*
 * Test-only error injection: with HVPATCH_FAULT_AT=error:STEP, returns -EIO (reason
 * "injected fault ...") at STEP, else 0. Steps: record-save (hvp_record_save, before
 * it writes anything).
 */
int hvp_fault_error(const char *step);

#ifdef __cplusplus
}
#endif

#endif

/* Internal: shared by patcher/ops.c and patcher/ops-state.c. */
#ifndef HVP_PATCHER_OPS_INTERNAL_H
#define HVP_PATCHER_OPS_INTERNAL_H

#include <stdbool.h>

#include <hvpatch/kernel.h>
#include <hvpatch/ops.h>
#include <hvpatch/stackcheck.h>

struct hvp_guest;
struct hvp_kernel;
struct hvp_revert_outcome;
struct hvp_btf;
struct hvp_mmu;

/* Copy the domain's saved record into its live metadata (hvp_record_publish); warns on failure. */
void hvp_ops_publish(struct hvp_guest *g, const char *state_dir);

/* hvp_op_revert for a caller that holds the domain's lock (the health gate in hvp_op_apply). */
void hvp_ops_revert_locked(struct hvp_guest *g, const struct hvp_kernel *k, const char *state_dir, const char *id,
                           struct hvp_revert_outcome *o);
/* The stack check of one operation and what it needs (hvp_ops_stack_free() frees all of it). */
struct hvp_ops_stack {
        struct hvp_stack_check *sc;     /* NULL: off (off_reason says why) */
        struct hvp_btf *btf;
        struct hvp_mmu *mmu;
        bool own_mmu;
        struct hvp_kmem km;
        char off_reason[512];
};

/*
 * Set up the stack check for guest g running k (mmu may be NULL: one is made from the
 * vCPUs, then the kernel's own table, init_top_pgt, as an attach gives: a process's
 * table may be freed while the check reads). Off (s->sc NULL, s->off_reason) under
 * HVP_STACK_CHECK_OFF or when it cannot run (no BTF): a warning in AUTO, an error
 * under REQUIRE.
 */
int hvp_ops_stack_setup(struct hvp_guest *g, struct hvp_mmu *mmu, const struct hvp_kernel *k,
                        enum hvp_stack_check_mode mode, struct hvp_ops_stack *s);
void hvp_ops_stack_free(struct hvp_ops_stack *s);

/*
 * check's stack check: one look, while the guest runs, at whether a task's stack holds a
 * return address inside what txn would change (the ranges apply guards). 0 none now,
 * -EBUSY a task does (*ret_hit names it; apply would wait and retry), < 0 an error.
 * stats (may be NULL) gets the look's figures.
 */
int hvp_plan_stack_probe(const struct hvp_plan *txn, struct hvp_stack_check *sc, struct hvp_stack_hit *ret_hit,
                         struct hvp_stack_stats *stats);

#endif

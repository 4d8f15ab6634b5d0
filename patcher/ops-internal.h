/* Internal: shared by patcher/ops.c and patcher/ops-state.c. */
#ifndef HVP_PATCHER_OPS_INTERNAL_H
#define HVP_PATCHER_OPS_INTERNAL_H

struct hvp_guest;
struct hvp_kernel;
struct hvp_revert_outcome;

/* Copy the domain's saved record into its live metadata (hvp_record_publish); warns on failure. */
void hvp_ops_publish(struct hvp_guest *g, const char *state_dir);

/* hvp_op_revert for a caller that holds the domain's lock (the health gate in hvp_op_apply). */
void hvp_ops_revert_locked(struct hvp_guest *g, const struct hvp_kernel *k, const char *state_dir, const char *id,
                           struct hvp_revert_outcome *o);

#endif

/* Internal: shared by patcher/ops.c and patcher/ops-state.c. */
#ifndef HVP_PATCHER_OPS_INTERNAL_H
#define HVP_PATCHER_OPS_INTERNAL_H

struct hvp_guest;

/* Copy the domain's saved record into its live metadata (hvp_record_publish); warns on failure. */
void hvp_ops_publish(struct hvp_guest *g, const char *state_dir);

#endif

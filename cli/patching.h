/* Shared by the commands that change or report patches: apply, check, revert, status, recover. */
#ifndef HVP_CLI_PATCHING_H
#define HVP_CLI_PATCHING_H

#include <hvpatch/apply.h>
#include <hvpatch/kernel.h>
#include <hvpatch/ops.h>
#include <hvpatch/policy.h>

#include "cli/cli.h"

/* The state folder: $HVPATCH_STATE_DIR or HVP_STATE_DIR. */
const char *cli_state_dir(void);

/* The stack check's figures for --json ({"enabled": false, "reason": ...} when off). */
json_object *cli_stack_check_json(bool on, const char *off_reason, const struct hvp_apply_report *rep);
/* An error naming the task that kept the stack check busy (--json: a "busy_task" object). */
json_object *cli_busy_task_json(const struct hvp_stack_hit *hit);
int cli_busy_task_error(struct cli *c, int exit_code, const char *msg, const struct hvp_stack_hit *hit);

#endif

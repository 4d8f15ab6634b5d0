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

#endif

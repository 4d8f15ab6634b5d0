/* Shared by the commands that change or report patches: apply, check, revert, status, recover. */
#ifndef HVP_CLI_PATCHING_H
#define HVP_CLI_PATCHING_H

#include <hvpatch/apply.h>
#include <hvpatch/kernel.h>
#include <hvpatch/policy.h>

#include "cli/cli.h"

/* The state folder: $HVPATCH_STATE_DIR or HVP_STATE_DIR. */
const char *cli_state_dir(void);

/* What memory says of an applied patch. */
enum cli_patch_state {
        CLI_PATCH_APPLIED,      /* every write holds the patch's bytes */
        CLI_PATCH_NOT_APPLIED,  /* every write holds the original bytes */
        CLI_PATCH_FOREIGN,      /* some writes hold neither, or a mix */
        CLI_PATCH_DROPPED,      /* the guest runs another kernel instance (rebooted) */
};
const char *cli_patch_state_name(enum cli_patch_state s);
enum cli_patch_state cli_patch_state(struct hvp_guest *g, const struct hvp_kernel *k, const struct hvp_plan *p);

/*
 * Drop record entries that memory no longer holds (guest rebooted, or reverted behind our
 * back; their area code is retired), and retired ranges a new boot released.
 */
int cli_prune_record(struct hvp_guest *g, const struct hvp_kernel *k, struct hvp_record *rec, bool *ret_changed);

/* Is there an interrupted transaction (a journal) for this domain? */
bool cli_has_journal(const char *uuid);

/* One audit record (syslog) for an action on a patch; the reason is hvp_last_error() on failure. */
void cli_audit(enum hvp_audit_action action, struct hvp_guest *g, const struct hvp_plan *p, int result,
               double pause_ms);

#endif

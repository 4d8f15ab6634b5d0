/* Policy facts and decisions for the CLI: apply, check and status share them. */
#ifndef HVP_CLI_COMPLIANCE_H
#define HVP_CLI_COMPLIANCE_H

#include <hvpatch/apply.h>
#include <hvpatch/policy.h>

#include "cli/cli.h"

/*
 * The policy: --policy FILE, else the default path. With required false a missing
 * default file is not an error (*ret_policy NULL). Prints errors; returns an exit code.
 */
int cli_load_policy(struct cli *c, bool required, struct hvp_policy **ret_policy);
/*
 * The same without printing: on failure the reason goes to why and the exit code is
 * returned (3 when required: a missing or unusable policy refuses the apply).
 */
int cli_open_policy(struct cli *c, bool required, struct hvp_policy **ret_policy, char *why, size_t why_size);

/*
 * The patch areas the guest has (hvp_area_list): *ret_n of them in ret_areas.
 * Returns 0, or prints the error and returns the exit code.
 */
struct hvp_area;
int cli_patch_areas(struct cli *c, const struct cli_target *t, struct hvp_area *ret_areas, size_t max,
                    size_t *ret_n);

struct cli_compliance {
        bool have_policy;
        struct hvp_decision decision;
};
/* The guest's compliance (hvp_op_state) as status shows it; have_policy false: no policy. */
json_object *cli_compliance_json(const struct cli_compliance *comp);
void cli_compliance_print(const struct cli_compliance *comp);

/* The reasons of a decision as a JSON array of {"code", "reason"}. */
json_object *cli_reasons_json(const struct hvp_decision *d);

#endif

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

/* Facts of the guest for the policy: domain XML, kernel, record, clock. */
struct cli_facts {
        struct hvp_guest_facts facts;
        char build_id[2 * 64 + 1];
        struct hvp_applied_series applied[64];
};
int cli_gather_facts(struct cli *c, const struct cli_target *t, const struct hvp_record *rec,
                     struct cli_facts *ret);

struct cli_compliance {
        bool have_policy;
        struct hvp_decision decision;
};
/* Assess the guest under the policy if one is there (none: have_policy false). Exit code. */
int cli_compliance(struct cli *c, const struct cli_target *t, const struct hvp_record *rec,
                   struct cli_compliance *ret);
json_object *cli_compliance_json(const struct cli_compliance *comp);
void cli_compliance_print(const struct cli_compliance *comp);

/* The reasons of a decision as a JSON array of {"code", "reason"}. */
json_object *cli_reasons_json(const struct hvp_decision *d);

#endif

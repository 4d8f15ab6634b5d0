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
 * Facts of the guest for the policy: domain XML, kernel, patch areas, record, clock.
 * Every applied series of the record is there (no bound but the record's own);
 * free with cli_facts_free() (also after a failed gather).
 */
struct cli_facts {
        struct hvp_guest_facts facts;
        char build_id[2 * 64 + 1];
        struct hvp_applied_series *applied;     /* rec->nr_entries of them, malloc'ed */
};
int cli_gather_facts(struct cli *c, const struct cli_target *t, const struct hvp_record *rec,
                     struct cli_facts *ret);
void cli_facts_free(struct cli_facts *f);

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
/* Assess the guest under the policy if one is there (none: have_policy false). Exit code. */
int cli_compliance(struct cli *c, const struct cli_target *t, const struct hvp_record *rec,
                   struct cli_compliance *ret);
json_object *cli_compliance_json(const struct cli_compliance *comp);
void cli_compliance_print(const struct cli_compliance *comp);

/* The reasons of a decision as a JSON array of {"code", "reason"}. */
json_object *cli_reasons_json(const struct hvp_decision *d);

#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hvpatch/area.h>

#include "cli/compliance.h"
#include "common/util.h"

int cli_open_policy(struct cli *c, bool required, struct hvp_policy **ret_policy, char *why, size_t why_size)
{
        const char *path = c->policy ? c->policy : HVP_POLICY_DEFAULT_PATH;
        int r;

        *ret_policy = NULL;
        if (!c->policy && !required && access(path, F_OK) != 0)
                return EXIT_OK;
        r = hvp_policy_load(path, ret_policy);
        if (r == -ENOENT) {
                snprintf(why, why_size, "no policy at %s: nothing may be applied without one (--policy FILE)", path);
                return EXIT_REFUSED;
        }
        if (r < 0) {
                /* The library's reason names the file. A policy that does not load allows nothing. */
                snprintf(why, why_size, "unusable policy, nothing may be applied: %s",
                         hvp_last_error()[0] ? hvp_last_error() : strerror(-r));
                return required ? EXIT_REFUSED : cli_exit_code(r);
        }
        return EXIT_OK;
}

int cli_load_policy(struct cli *c, bool required, struct hvp_policy **ret_policy)
{
        char why[1024];
        int r = cli_open_policy(c, required, ret_policy, why, sizeof(why));

        return r ? cli_error(c, r, "%s", why) : EXIT_OK;
}

int cli_patch_areas(struct cli *c, const struct cli_target *t, struct hvp_area *ret_areas, size_t max,
                    size_t *ret_n)
{
        int r = hvp_area_list(t->mmu, t->kernel, ret_areas, max, ret_n);

        return r < 0 ? cli_lib_error(c, r, "looking for patch areas") : EXIT_OK;
}

json_object *cli_reasons_json(const struct hvp_decision *d)
{
        json_object *arr = json_object_new_array();

        for (size_t i = 0; i < d->n_reasons; i++) {
                json_object *o = json_object_new_object();

                json_object_object_add(o, "code", json_object_new_string(hvp_reason_name(d->reasons[i].code)));
                json_object_object_add(o, "reason", json_object_new_string(d->reasons[i].text));
                json_object_array_add(arr, o);
        }
        return arr;
}

json_object *cli_compliance_json(const struct cli_compliance *comp)
{
        const struct hvp_decision *d = &comp->decision;
        json_object *o;

        if (!comp->have_policy)
                return NULL;
        o = json_object_new_object();
        json_object_object_add(o, "verdict", json_object_new_string(
                d->verdict == HVP_VERDICT_ALLOW ? "compliant" : hvp_verdict_name(d->verdict)));
        json_object_object_add(o, "group", json_object_new_string(d->group));
        json_object_object_add(o, "baseline", json_object_new_string(d->baseline));
        json_object_object_add(o, "reboot_required", json_object_new_boolean(d->verdict == HVP_VERDICT_REBOOT_REQUIRED));
        json_object_object_add(o, "reasons", cli_reasons_json(d));
        return o;
}

void cli_compliance_print(const struct cli_compliance *comp)
{
        const struct hvp_decision *d = &comp->decision;

        if (!comp->have_policy) {
                printf("compliance:  no policy (--policy FILE, or %s)\n", HVP_POLICY_DEFAULT_PATH);
                return;
        }
        printf("compliance:  %s (group %s, baseline %s)%s\n",
               d->verdict == HVP_VERDICT_ALLOW ? "compliant" : hvp_verdict_name(d->verdict),
               d->group[0] ? d->group : "-", d->baseline[0] ? d->baseline : "-",
               d->verdict == HVP_VERDICT_REBOOT_REQUIRED ? ": REBOOT REQUIRED into the current baseline" : "");
        for (size_t i = 0; i < d->n_reasons; i++)
                printf("             - %s\n", d->reasons[i].text);
}

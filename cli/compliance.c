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

int cli_gather_facts(struct cli *c, const struct cli_target *t, const struct hvp_record *rec,
                     struct cli_facts *ret)
{
        const char *xml = hvp_guest_domain_xml(t->guest);
        struct hvp_area areas[HVP_AREA_MAX_KINDS];
        size_t n_areas = 0;
        int r;

        memset(ret, 0, sizeof(*ret));
        if (xml) {
                r = hvp_guest_facts_from_domain_xml(xml, strlen(xml), &ret->facts);
                if (r < 0)
                        return cli_lib_error(c, r, "reading the domain XML");
        } else {
                snprintf(ret->facts.name, sizeof(ret->facts.name), "%s", hvp_guest_name(t->guest));
        }
        ret->facts.os = HVP_OS_LINUX;   /* what kernel discovery found, whatever the XML declares */
        hvp_hex_encode(t->kernel->build_id, t->kernel->build_id_len, ret->build_id);
        ret->facts.kernel_build_id = ret->build_id;
        /* any usable kind counts: the slack, the device, whatever hvp_area_list() knows */
        r = cli_patch_areas(c, t, areas, HVP_ARRAY_SIZE(areas), &n_areas);
        if (r)
                return r;
        ret->facts.patch_area = n_areas > 0;
        if (rec && rec->nr_entries) {
                ret->applied = calloc(rec->nr_entries, sizeof(*ret->applied));
                if (!ret->applied)
                        return cli_lib_error(c, -ENOMEM, "gathering the guest's facts");
                for (size_t i = 0; i < rec->nr_entries; i++)
                        ret->applied[i] = (struct hvp_applied_series){ rec->entries[i].plan->series,
                                                                       rec->entries[i].plan->seq };
        }
        ret->facts.applied = ret->applied;
        ret->facts.n_applied = rec ? rec->nr_entries : 0;
        ret->facts.now = time(NULL);
        return EXIT_OK;
}

void cli_facts_free(struct cli_facts *f)
{
        free(f->applied);
        f->applied = NULL;
        f->facts.applied = NULL;
        f->facts.n_applied = 0;
}

int cli_patch_areas(struct cli *c, const struct cli_target *t, struct hvp_area *ret_areas, size_t max,
                    size_t *ret_n)
{
        int r = hvp_area_list(t->mmu, t->kernel, ret_areas, max, ret_n);

        return r < 0 ? cli_lib_error(c, r, "looking for patch areas") : EXIT_OK;
}

int cli_compliance(struct cli *c, const struct cli_target *t, const struct hvp_record *rec,
                   struct cli_compliance *ret)
{
        struct hvp_policy *policy = NULL;
        struct cli_facts f;
        int r;

        memset(ret, 0, sizeof(*ret));
        r = cli_load_policy(c, false, &policy);
        if (r || !policy)
                return r;
        r = cli_gather_facts(c, t, rec, &f);
        if (r == 0) {
                hvp_policy_assess(policy, &f.facts, &ret->decision);
                ret->have_policy = true;
        }
        cli_facts_free(&f);
        hvp_policy_free(policy);
        return r;
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

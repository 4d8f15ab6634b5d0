#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/patching.h"

const char *cli_state_dir(void)
{
        const char *d = getenv("HVPATCH_STATE_DIR");

        return d && *d ? d : HVP_STATE_DIR;
}

const char *cli_patch_state_name(enum cli_patch_state s)
{
        switch (s) {
        case CLI_PATCH_APPLIED:
                return "applied";
        case CLI_PATCH_NOT_APPLIED:
                return "not-applied";
        case CLI_PATCH_FOREIGN:
                return "foreign";
        case CLI_PATCH_DROPPED:
                return "dropped";
        }
        return "?";
}

enum cli_patch_state cli_patch_state(struct hvp_guest *g, const struct hvp_kernel *k, const struct hvp_plan *p)
{
        size_t n_new = 0, n_old = 0;

        /* A reboot brings a new kernel instance: another KASLR base or another build. */
        if (p->kernel_base != k->base || p->build_id_len != k->build_id_len ||
            memcmp(p->build_id, k->build_id, k->build_id_len) != 0)
                return CLI_PATCH_DROPPED;
        for (size_t i = 0; i < p->nr_writes; i++) {
                enum hvp_site_state st;

                if (hvp_write_state(g, &p->writes[i], &st) < 0)
                        return CLI_PATCH_FOREIGN;
                n_new += st == HVP_SITE_NEW;
                n_old += st == HVP_SITE_OLD;
        }
        if (n_new == p->nr_writes)
                return CLI_PATCH_APPLIED;
        if (n_old == p->nr_writes)
                return CLI_PATCH_NOT_APPLIED;
        return CLI_PATCH_FOREIGN;
}

int cli_prune_record(struct hvp_guest *g, const struct hvp_kernel *k, struct hvp_record *rec, bool *ret_changed)
{
        bool changed = false;

        for (size_t i = 0; i < rec->nr_entries;) {
                enum cli_patch_state s = cli_patch_state(g, k, rec->entries[i].plan);

                if (s == CLI_PATCH_DROPPED || s == CLI_PATCH_NOT_APPLIED) {
                        struct hvp_commit drop = { .remove_id = rec->entries[i].plan->patch_id };
                        int r = hvp_record_commit(rec, &drop, 0);

                        if (r < 0)
                                return r;
                        changed = true;
                        continue;
                }
                i++;
        }
        {
                /* Retired area code of an earlier boot is history too (apply.h). */
                bool released = false;
                int r = hvp_record_release_retired(g, k, rec, &released);

                if (r < 0)
                        return r;
                changed |= released;
        }
        *ret_changed = changed;
        return 0;
}

bool cli_has_journal(const char *uuid)
{
        return hvp_journal_exists(cli_state_dir(), uuid) == 1;
}

void cli_audit(enum hvp_audit_action action, struct hvp_guest *g, const struct hvp_plan *p, int result,
               double pause_ms)
{
        struct hvp_audit_event ev = {
                .action = action,
                .domain = hvp_guest_name(g),
                .bundle_id = p ? p->patch_id : NULL,
                .seq = p ? p->seq : 0,
                .key_name = p && p->key_name[0] ? p->key_name : NULL,
                .result = result,
                .reason = result < 0 ? hvp_last_error() : NULL,
                .pause_ms = pause_ms,
        };

        hvp_audit(&ev);
}

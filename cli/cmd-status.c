#include <stdio.h>
#include <string.h>
#include <time.h>

#include <hvpatch/area.h>

#include "cli/commands.h"
#include "cli/compliance.h"
#include "cli/patching.h"
#include "common/util.h"

static const char help[] =
        "Reports the patches recorded for a domain and what guest memory says of each:\n"
        "applied (every site holds the patch), not-applied (every site is original),\n"
        "foreign (neither: someone else changed it, or the guest's page tables no\n"
        "longer map patch-area code where it was placed) or dropped (the guest rebooted into\n"
        "a new kernel instance). Memory is compared; the record is not trusted. With a\n"
        "policy (--policy, or the default file if it exists) also the guest's compliance:\n"
        "group, baseline, and whether a reboot is required. Also the patch areas the\n"
        "guest has (slack, device: where redirect code can go; docs/operations.md).\n";

/*
 * Patch-area code is reached through the guest's own page tables, which the guest
 * can change: an area write whose address no longer translates to the area's
 * guest-physical bytes (the slot was pointed at other memory) is not in effect.
 */
static bool remapped(struct hvp_mmu *mmu, const struct hvp_write *w)
{
        struct hvp_translation tr;

        return w->area && (hvp_mmu_translate(mmu, w->va, &tr) < 0 || tr.pa != w->gpa);
}

static enum cli_patch_state patch_state(const struct cli_target *t, const struct hvp_plan *p)
{
        enum cli_patch_state s = cli_patch_state(t->guest, t->kernel, p);

        for (size_t i = 0; s == CLI_PATCH_APPLIED && i < p->nr_writes; i++)
                if (remapped(t->mmu, &p->writes[i]))
                        s = CLI_PATCH_FOREIGN;
        return s;
}

static json_object *plan_json(const struct cli_target *t, const struct hvp_record_entry *e)
{
        json_object *o = json_object_new_object(), *sites = json_object_new_array();
        const struct hvp_plan *p = e->plan;
        struct hvp_guest *g = t->guest;
        enum cli_patch_state state = patch_state(t, p);

        json_object_object_add(o, "id", json_object_new_string(p->patch_id));
        json_object_object_add(o, "series", json_object_new_string(p->series));
        json_object_object_add(o, "seq", json_object_new_int64((int64_t)p->seq));
        json_object_object_add(o, "key", json_object_new_string(p->key_name));
        json_object_object_add(o, "state", json_object_new_string(cli_patch_state_name(state)));
        json_object_object_add(o, "applied_at", json_object_new_int64(e->applied_at));
        json_object_object_add(o, "pause_ms", json_object_new_double(e->pause_ms));
        for (size_t i = 0; i < p->nr_writes; i++) {
                json_object *s = json_object_new_object();
                enum hvp_site_state st = HVP_SITE_UNREADABLE;
                static const char *const names[] = { "new", "old", "foreign", "unreadable" };

                hvp_write_state(g, &p->writes[i], &st);
                json_object_object_add(s, "va", cli_json_addr(p->writes[i].va));
                json_object_object_add(s, "len", json_object_new_int((int)p->writes[i].len));
                json_object_object_add(s, "kind", json_object_new_string(p->writes[i].area ? "area" : "site"));
                json_object_object_add(s, "state", json_object_new_string(names[st]));
                if (state != CLI_PATCH_DROPPED && remapped(t->mmu, &p->writes[i]))
                        json_object_object_add(s, "remapped", json_object_new_boolean(true));
                json_object_array_add(sites, s);
        }
        json_object_object_add(o, "writes", sites);
        return o;
}

int cmd_status(struct cli *c, int argc, char **argv)
{
        struct hvp_record *rec = NULL;
        struct cli_compliance comp;
        struct cli_target t;
        char build_id[129];
        struct hvp_area areas[HVP_AREA_MAX_KINDS];
        size_t n_areas = 0;
        bool journal;
        int r;

        if (cli_wants_help(c, "status", argc, argv, help))
                return EXIT_OK;
        r = cli_attach(c, &argc, &argv, &t);
        if (r)
                return r;
        if (argc != 0) {
                cli_target_close(&t);
                return cli_usage(c, cli_find_command("status"));
        }
        r = hvp_record_load(cli_state_dir(), hvp_guest_uuid(t.guest), &rec);
        if (r < 0) {
                r = cli_lib_error(c, r, "reading the record");
                goto out;
        }
        r = cli_compliance(c, &t, rec, &comp);
        if (r)
                goto out;
        r = cli_patch_areas(c, &t, areas, HVP_ARRAY_SIZE(areas), &n_areas);
        if (r)
                goto out;
        journal = cli_has_journal(hvp_guest_uuid(t.guest));
        hvp_hex_encode(t.kernel->build_id, t.kernel->build_id_len, build_id);

        if (c->json) {
                json_object *o = json_object_new_object(), *arr = json_object_new_array();

                json_object_object_add(o, "domain", json_object_new_string(hvp_guest_name(t.guest)));
                json_object_object_add(o, "uuid", json_object_new_string(hvp_guest_uuid(t.guest)));
                json_object_object_add(o, "build_id", json_object_new_string(build_id));
                json_object_object_add(o, "kernel_base", cli_json_addr(t.kernel->base));
                json_object_object_add(o, "interrupted", json_object_new_boolean(journal));
                json_object *pa = json_object_new_array();

                for (size_t i = 0; i < n_areas; i++) {
                        json_object *a = json_object_new_object();

                        json_object_object_add(a, "kind", json_object_new_string(areas[i].kind));
                        json_object_object_add(a, "start", cli_json_addr(areas[i].start));
                        json_object_object_add(a, "len", json_object_new_int64((int64_t)areas[i].len));
                        json_object_object_add(a, "mapped", json_object_new_boolean(!areas[i].map_needed));
                        json_object_array_add(pa, a);
                }
                json_object_object_add(o, "patch_areas", pa);
                for (size_t i = 0; i < rec->nr_entries; i++)
                        json_object_array_add(arr, plan_json(&t, &rec->entries[i]));
                json_object_object_add(o, "patches", arr);
                json_object_object_add(o, "compliance", cli_compliance_json(&comp));
                cli_json_print(o);
        } else {
                printf("domain:      %s (%s)\n", hvp_guest_name(t.guest), hvp_guest_uuid(t.guest));
                printf("kernel:      %s\n", t.kernel->banner);
                printf("build id:    %s\n", build_id);
                cli_compliance_print(&comp);
                printf("patch areas:");
                for (size_t i = 0; i < n_areas; i++)
                        printf("%s %s (%llu bytes%s)", i ? "," : "", areas[i].kind, (unsigned long long)areas[i].len,
                               areas[i].map_needed ? ", mapped at the first patch that needs it" : "");
                printf("%s\n", n_areas ? "" : " none (replace sites only)");
                if (journal)
                        printf("INTERRUPTED: a transaction did not finish: run 'hvpatch recover %s'\n",
                               hvp_guest_name(t.guest));
                if (rec->nr_entries == 0)
                        printf("patches:     none\n");
                for (size_t i = 0; i < rec->nr_entries; i++) {
                        const struct hvp_record_entry *e = &rec->entries[i];
                        enum cli_patch_state s = patch_state(&t, e->plan);
                        char when[32] = "?";
                        time_t at = (time_t)e->applied_at;
                        struct tm tm;

                        if (gmtime_r(&at, &tm))
                                strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%SZ", &tm);
                        printf("patch:       %s (series %s, seq %llu, key %s): %s%s\n", e->plan->patch_id,
                               e->plan->series, (unsigned long long)e->plan->seq,
                               e->plan->key_name[0] ? e->plan->key_name : "-", cli_patch_state_name(s),
                               s == CLI_PATCH_DROPPED ? " (the guest rebooted since: not in memory)" : "");
                        printf("             applied %s, pause window %.3f ms, %zu writes\n", when, e->pause_ms,
                               e->plan->nr_writes);
                }
        }
        r = EXIT_OK;
out:
        hvp_record_free(rec);
        cli_target_close(&t);
        return r;
}

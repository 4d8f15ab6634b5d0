#include <stdio.h>
#include <string.h>
#include <time.h>

#include <hvpatch/area.h>
#include <hvpatch/ops.h>
#include <hvpatch/paging.h>

#include "cli/commands.h"
#include "cli/compliance.h"
#include "cli/kstate.h"
#include "cli/patching.h"
#include "common/util.h"

static const char help[] =
        "Reports the patches recorded for a domain and what guest memory says of each:\n"
        "applied (every site holds the patch), not-applied (every site is original),\n"
        "foreign (neither: someone else changed it, or the guest's page tables no\n"
        "longer map patch-area code where it was placed) or dropped (the guest rebooted into\n"
        "a new kernel instance). Memory is compared; the record is not trusted. With a\n"
        "policy (--policy, or the default file if it exists) also the guest's compliance:\n"
        "group, baseline, and whether a reboot is required; and Secure Boot and lockdown\n"
        "as the guest kernel recorded them in its memory.\n"
        "Then each patch area (slack, device): its size, the bytes left, and its retired\n"
        "ranges: code of reverted or replaced patches that stays in place because a task\n"
        "may still run it. Retired code is never reused or erased while the guest runs the\n"
        "boot it was retired in; a new boot of the guest releases it (docs/operations.md).\n"
        "The records are also kept in the domain's live libvirt metadata (namespace\n"
        "urn:hvpatch:libvirt-metadata:1), so that save/restore and migration carry them: when\n"
        "the local record is empty, the patches memory confirms are taken from there.\n";

/* An area write whose address no longer translates to where it was placed (hvp_patch_state). */
static bool remapped(struct hvp_mmu *mmu, const struct hvp_write *w)
{
        struct hvp_translation tr;

        return w->area && (hvp_mmu_translate(mmu, w->va, &tr) < 0 || tr.pa != w->gpa);
}

static json_object *plan_json(const struct cli_target *t, const struct hvp_patch_status *ps)
{
        json_object *o = json_object_new_object(), *sites = json_object_new_array();
        const struct hvp_record_entry *e = ps->entry;
        const struct hvp_plan *p = e->plan;
        struct hvp_guest *g = t->guest;
        enum hvp_patch_state state = ps->state;

        json_object_object_add(o, "id", json_object_new_string(p->patch_id));
        json_object_object_add(o, "series", json_object_new_string(p->series));
        json_object_object_add(o, "seq", json_object_new_int64((int64_t)p->seq));
        json_object_object_add(o, "key", json_object_new_string(p->key_name));
        json_object_object_add(o, "state", json_object_new_string(hvp_patch_state_name(state)));
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
                if (state != HVP_PATCH_DROPPED && remapped(t->mmu, &p->writes[i]))
                        json_object_object_add(s, "remapped", json_object_new_boolean(true));
                json_object_array_add(sites, s);
        }
        json_object_object_add(o, "writes", sites);
        return o;
}

/* One patch area as status reports it: size, room left, retired ranges in force. */
struct area_view {
        struct hvp_area a;
        uint64_t room;
        size_t nr_retired;
};

static bool in_area(const struct hvp_area *a, uint64_t va)
{
        return va >= a->start && va < a->start + a->len;
}

static void area_view(struct cli_target *t, const struct hvp_record *rec, struct area_view *v)
{
        struct hvp_area_use *used = calloc(HVP_MAX(rec->nr_retired, 1), sizeof(*used));
        size_t n = 0;
        uint64_t taken = 0;

        v->nr_retired = 0;
        for (size_t i = 0; i < rec->nr_entries; i++)
                for (size_t j = 0; j < rec->entries[i].plan->nr_writes; j++) {
                        const struct hvp_write *w = &rec->entries[i].plan->writes[j];

                        if (w->area && in_area(&v->a, w->va))
                                taken += w->len;
                }
        for (size_t i = 0; used && i < rec->nr_retired; i++) {
                const struct hvp_retired *r = &rec->retired[i];

                if (in_area(&v->a, r->va) && hvp_retired_in_force(t->guest, t->kernel, r, NULL)) {
                        used[n++] = (struct hvp_area_use){ r->va, r->len };
                        v->nr_retired++;
                }
        }
        v->room = hvp_area_room(&v->a, used, n);
        v->room = v->room > taken ? v->room - taken : 0;
        free(used);
}

static json_object *areas_json(struct cli_target *t, const struct hvp_record *rec, const struct area_view *views,
                               size_t n)
{
        static const char *const states[] = { "code", "filler", "foreign", "unreadable" };
        json_object *arr = json_object_new_array();

        for (size_t i = 0; i < n; i++) {
                json_object *o = json_object_new_object(), *ret = json_object_new_array();

                json_object_object_add(o, "kind", json_object_new_string(views[i].a.kind));
                json_object_object_add(o, "start", cli_json_addr(views[i].a.start));
                json_object_object_add(o, "len", json_object_new_int64((int64_t)views[i].a.len));
                json_object_object_add(o, "mapped", json_object_new_boolean(!views[i].a.map_needed));
                json_object_object_add(o, "room", json_object_new_int64((int64_t)views[i].room));
                for (size_t j = 0; j < rec->nr_retired; j++) {
                        const struct hvp_retired *r = &rec->retired[j];
                        json_object *ro;
                        int st;

                        if (!in_area(&views[i].a, r->va) || !hvp_retired_in_force(t->guest, t->kernel, r, &st))
                                continue;
                        ro = json_object_new_object();
                        json_object_object_add(ro, "va", cli_json_addr(r->va));
                        json_object_object_add(ro, "len", json_object_new_int64(r->len));
                        json_object_object_add(ro, "patch_id", json_object_new_string(r->patch_id));
                        json_object_object_add(ro, "retired_at", json_object_new_int64(r->retired_at));
                        json_object_object_add(ro, "state", json_object_new_string(states[st]));
                        json_object_array_add(ret, ro);
                }
                json_object_object_add(o, "retired", ret);
                json_object_array_add(arr, o);
        }
        return arr;
}

int cmd_status(struct cli *c, int argc, char **argv)
{
        struct hvp_guest_state *st = NULL;
        struct hvp_policy *policy = NULL;
        struct hvp_record *rec;
        struct cli_compliance comp;
        struct cli_boot_security sec;
        char sec_text[640];
        struct cli_target t;
        struct hvp_area found[HVP_AREA_MAX_KINDS];
        struct area_view areas[HVP_AREA_MAX_KINDS];
        size_t n_areas = 0;
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
        r = cli_load_policy(c, false, &policy);
        if (r)
                goto out;
        r = hvp_op_state(t.guest, t.mmu, t.kernel, cli_state_dir(), policy, &st);
        if (r < 0) {
                r = cli_error(c, hvp_exit_class(r), "%s", hvp_last_error());
                goto out;
        }
        rec = st->rec;
        cli_boot_security(&t, &sec);
        comp = (struct cli_compliance){ .have_policy = st->have_policy, .decision = st->compliance };
        r = cli_patch_areas(c, &t, found, HVP_ARRAY_SIZE(found), &n_areas);
        if (r)
                goto out;
        for (size_t i = 0; i < n_areas; i++) {
                areas[i].a = found[i];
                area_view(&t, rec, &areas[i]);
        }

        if (c->json) {
                json_object *o = json_object_new_object(), *arr = json_object_new_array();

                json_object_object_add(o, "domain", json_object_new_string(hvp_guest_name(t.guest)));
                json_object_object_add(o, "uuid", json_object_new_string(hvp_guest_uuid(t.guest)));
                json_object_object_add(o, "build_id", json_object_new_string(st->build_id));
                json_object_object_add(o, "kernel_base", cli_json_addr(t.kernel->base));
                json_object_object_add(o, "interrupted", json_object_new_boolean(st->interrupted));
                for (size_t i = 0; i < rec->nr_entries; i++)
                        json_object_array_add(arr, plan_json(&t, &st->patches[i]));
                json_object_object_add(o, "patches", arr);
                json_object_object_add(o, "areas", areas_json(&t, rec, areas, n_areas));
                json_object_object_add(o, "compliance", cli_compliance_json(&comp));
                json_object_object_add(o, "boot_security", cli_boot_security_json(&sec));
                cli_json_print(o);
        } else {
                printf("domain:      %s (%s)\n", hvp_guest_name(t.guest), hvp_guest_uuid(t.guest));
                printf("kernel:      %s\n", t.kernel->banner);
                printf("build id:    %s\n", st->build_id);
                cli_boot_security_text(&sec, sec_text, sizeof(sec_text));
                printf("secure boot: %s\n", sec_text);
                cli_compliance_print(&comp);
                if (st->interrupted)
                        printf("INTERRUPTED: a transaction did not finish: run 'hvpatch recover %s'\n",
                               hvp_guest_name(t.guest));
                if (rec->nr_entries == 0)
                        printf("patches:     none\n");
                for (size_t i = 0; i < rec->nr_entries; i++) {
                        const struct hvp_record_entry *e = &rec->entries[i];
                        enum hvp_patch_state s = st->patches[i].state;
                        char when[32] = "?";
                        time_t at = (time_t)e->applied_at;
                        struct tm tm;

                        if (gmtime_r(&at, &tm))
                                strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%SZ", &tm);
                        printf("patch:       %s (series %s, seq %llu, key %s): %s%s\n", e->plan->patch_id,
                               e->plan->series, (unsigned long long)e->plan->seq,
                               e->plan->key_name[0] ? e->plan->key_name : "-", hvp_patch_state_name(s),
                               s == HVP_PATCH_DROPPED ? " (the guest rebooted since: not in memory)" : "");
                        printf("             applied %s, pause window %.3f ms, %zu writes\n", when, e->pause_ms,
                               e->plan->nr_writes);
                }
                if (n_areas == 0)
                        printf("areas:       none (replace sites only)\n");
                for (size_t i = 0; i < n_areas; i++)
                        printf("area:        %s at 0x%llx, %llu bytes: %llu bytes left, %zu retired ranges%s%s\n",
                               areas[i].a.kind, (unsigned long long)areas[i].a.start,
                               (unsigned long long)areas[i].a.len, (unsigned long long)areas[i].room,
                               areas[i].nr_retired, areas[i].nr_retired ? " (released at the next boot)" : "",
                               areas[i].a.map_needed ? "; mapped at the first patch that needs it" : "");
        }
        r = EXIT_OK;
out:
        hvp_guest_state_free(st);
        hvp_policy_free(policy);
        cli_target_close(&t);
        return r;
}

/*
 * plan and sync: the desired state of a guest from the catalog folder (hvp_op_sync,
 * include/hvpatch/catalog.h), shown (plan, sync --dry-run) or converged (sync).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hvpatch/catalog.h>
#include <hvpatch/kernel.h>
#include <hvpatch/move.h>

#include "cli/commands.h"
#include "cli/compliance.h"
#include "cli/health.h"
#include "cli/patching.h"

static const char plan_help[] =
        "Shows the desired patch state of a guest beside what memory holds, and what sync\n"
        "would do per series. The catalog is a folder of signed bundles, NAME.hvp with\n"
        "NAME.hvp.minisig (default " HVP_CATALOG_DEFAULT_DIR "); a file that is unsigned,\n"
        "badly signed or corrupt is listed and skipped. The desired bundle of a series is\n"
        "its highest sequence built for the guest's running kernel that the policy allows\n"
        "(group, requirements, baseline, signer, series) and the health gate has not\n"
        "marked bad for that build ('hvpatch bad'). Actions: apply, replace, nothing,\n"
        "reboot-required (the guest runs an older baseline), unmanaged (no group\n"
        "manages the guest, or a patch applied by hand whose series the catalog does not\n"
        "hold: it is kept), marked-bad (the newest bundle is marked bad, nothing else to\n"
        "do). Changes nothing in the guest; needs a policy.\n"
        "A reboot-required guest that boots a kernel the host provides (<os><kernel>)\n"
        "gets a baseline move when the current baseline names its image: shown as\n"
        "'move-baseline: FROM -> TO, reboot' inside a window that allows reboots, else\n"
        "'reboot-required (moves at the next reboot window: ...)'; a guest that boots its\n"
        "own kernel from disk is only reported.\n\n"
        "Options:\n"
        "  --catalog DIR          the catalog folder\n";

static const char sync_help[] =
        "Converges guests to their desired patch state (see 'hvpatch plan -h'): each\n"
        "series to apply or replace goes through the whole apply pipeline (signature,\n"
        "policy, plan, one pause window, audit), one after another; a failure does not\n"
        "stop the other series or guests. Outside the maintenance window a series waits.\n"
        "Nothing is ever reverted or removed (but a patch it just applied that fails the\n"
        "health gate, --health): a patch the catalog does not hold is kept.\n"
        "A baseline move (see 'hvpatch plan -h') is done inside a window that allows\n"
        "reboots: the domain's definition gets the baseline's kernel image, the domain is\n"
        "shut down (destroyed after the group's shutdown-timeout) and started again, and\n"
        "once its new kernel is up it is synced. --dry-run moves nothing.\n\n"
        "Options:\n"
        "  --catalog DIR          the catalog folder (default " HVP_CATALOG_DEFAULT_DIR ")\n"
        "  --all                  every running domain of the connection\n"
        "  --dry-run              show what would be done; change nothing\n"
        "  --health SECONDS       the health gate after every apply (as apply's --health):\n"
        "                         a failure reverts, marks the bundle bad, exits 6\n"
        "Exit code: 0 when every guest is converged (or waits for its window, or its\n"
        "newest bundle is marked bad), else the exit code of the first failure (as apply's).\n";

#define MAX_DOMAINS 1024

struct args {
        const char *catalog;
        const char *domain;
        bool all, dry_run;
        unsigned health;
};

static int parse_args(struct cli *c, const char *cmd, bool sync, int argc, char **argv, struct args *a)
{
        for (int i = 0; i < argc; i++) {
                if (strcmp(argv[i], "--catalog") == 0 && i + 1 < argc)
                        a->catalog = argv[++i];
                else if (sync && strcmp(argv[i], "--all") == 0)
                        a->all = true;
                else if (sync && strcmp(argv[i], "--dry-run") == 0)
                        a->dry_run = true;
                else if (sync && strcmp(argv[i], "--health") == 0 && i + 1 < argc) {
                        int r = cli_parse_health(c, argv[++i], &a->health);

                        if (r)
                                return r;
                }
                else if (argv[i][0] == '-' || a->domain)
                        return cli_usage(c, cli_find_command(cmd));
                else
                        a->domain = argv[i];
        }
        if (!a->domain == !a->all)
                return cli_usage(c, cli_find_command(cmd));
        if (!a->catalog)
                a->catalog = HVP_CATALOG_DEFAULT_DIR;
        return EXIT_OK;
}

static json_object *catalog_errors_json(const struct hvp_catalog *cat)
{
        json_object *arr = json_object_new_array();

        for (size_t i = 0; i < cat->n_entries; i++) {
                json_object *o;

                if (!cat->entries[i].error)
                        continue;
                o = json_object_new_object();
                json_object_object_add(o, "file", json_object_new_string(cat->entries[i].file));
                json_object_object_add(o, "error", json_object_new_string(cat->entries[i].reason));
                json_object_array_add(arr, o);
        }
        return arr;
}

static void catalog_errors_print(const struct hvp_catalog *cat)
{
        printf("catalog:     %s: %zu bundle%s, %zu usable\n", cat->dir, cat->n_entries,
               cat->n_entries == 1 ? "" : "s", cat->n_usable);
        for (size_t i = 0; i < cat->n_entries; i++)
                if (cat->entries[i].error)
                        printf("skipped:     %s: %s\n", cat->entries[i].file, cat->entries[i].reason);
}

static json_object *step_json(const struct hvp_sync_step *st)
{
        json_object *o = json_object_new_object();
        const struct hvp_apply_outcome *out = st->outcome;
        const char *result = !st->attempted ? (st->plan->outside_window ? "waiting" : "dry-run")
                             : out->exit_class ? "failed" : "applied";

        json_object_object_add(o, "series", json_object_new_string(st->plan->series));
        json_object_object_add(o, "action", json_object_new_string(hvp_sync_action_name(st->plan->action)));
        json_object_object_add(o, "patch_id", json_object_new_string(st->plan->desired->patch_id));
        json_object_object_add(o, "file", json_object_new_string(st->plan->desired->file));
        json_object_object_add(o, "result", json_object_new_string(result));
        if (st->attempted) {
                json_object_object_add(o, "code", json_object_new_int(out->exit_class));
                if (out->exit_class)
                        json_object_object_add(o, "error", json_object_new_string(out->first_error));
                else
                        json_object_object_add(o, "pause_ms", json_object_new_double(out->report.pause_ms));
                json_object_object_add(o, "replaced",
                                       out->replaced[0] ? json_object_new_string(out->replaced) : NULL);
                json_object_object_add(o, "health", out->health.result ? cli_health_json(&out->health) : NULL);
        }
        return o;
}

static json_object *str_or_null(const char *s)
{
        return s && s[0] ? json_object_new_string(s) : NULL;
}

static json_object *move_json(const struct hvp_move_plan *m)
{
        json_object *o = json_object_new_object(), *from = json_object_new_object(), *to = json_object_new_object();

        json_object_object_add(o, "action", json_object_new_string(hvp_move_action_name(m->action)));
        json_object_object_add(o, "note", json_object_new_string(m->note));
        json_object_object_add(o, "group", json_object_new_string(m->group));
        json_object_object_add(from, "baseline", json_object_new_string(m->from_baseline));
        json_object_object_add(from, "release", str_or_null(m->from_release));
        json_object_object_add(from, "kernel", str_or_null(m->from_kernel));
        json_object_object_add(o, "from", from);
        json_object_object_add(to, "baseline", json_object_new_string(m->to_baseline));
        json_object_object_add(to, "release", str_or_null(m->to_release));
        json_object_object_add(to, "kernel", str_or_null(m->to.kernel));
        json_object_object_add(to, "initrd", str_or_null(m->to.initrd));
        json_object_object_add(to, "cmdline", m->to.has_cmdline ? json_object_new_string(m->to.cmdline) : NULL);
        json_object_object_add(o, "to", to);
        json_object_object_add(o, "reboot_windows", json_object_new_string(m->to.reboot_when));
        json_object_object_add(o, "reboot_now", json_object_new_boolean(m->to.reboot_now));
        json_object_object_add(o, "shutdown_timeout_s", json_object_new_int64(m->to.shutdown_timeout_s));
        return o;
}

static void move_print(const struct hvp_move_plan *m)
{
        if (m->action == HVP_MOVE_NOW)
                printf("move:        %s\n             kernel %s -> %s\n", m->note,
                       m->from_kernel, m->to.kernel);
        else if (m->action != HVP_MOVE_NONE)
                printf("move:        reboot-required (%s)\n", m->note);
}

/* One domain's plan (and steps) as JSON. */
static json_object *domain_json(const char *name, const struct hvp_sync_result *res, bool steps)
{
        json_object *o = json_object_new_object(), *arr = json_object_new_array();
        struct cli_compliance comp = { .have_policy = true, .decision = res->plan->compliance };

        json_object_object_add(o, "domain", json_object_new_string(name));
        json_object_object_add(o, "build_id", json_object_new_string(res->state->build_id));
        json_object_object_add(o, "compliance", cli_compliance_json(&comp));
        for (size_t i = 0; i < res->plan->n_series; i++) {
                const struct hvp_series_plan *s = &res->plan->series[i];
                json_object *so = json_object_new_object(), *d = NULL, *a = NULL;

                json_object_object_add(so, "series", json_object_new_string(s->series));
                json_object_object_add(so, "action", json_object_new_string(hvp_sync_action_name(s->action)));
                if (s->desired) {
                        d = json_object_new_object();
                        json_object_object_add(d, "patch_id", json_object_new_string(s->desired->patch_id));
                        json_object_object_add(d, "seq", json_object_new_int64((int64_t)s->desired->seq));
                        json_object_object_add(d, "file", json_object_new_string(s->desired->file));
                        json_object_object_add(d, "key", json_object_new_string(s->desired->key_name));
                }
                if (s->has_actual) {
                        a = json_object_new_object();
                        json_object_object_add(a, "patch_id", json_object_new_string(s->actual.patch_id));
                        json_object_object_add(a, "seq", json_object_new_int64((int64_t)s->actual.seq));
                        json_object_object_add(a, "state",
                                               json_object_new_string(hvp_patch_state_name(s->actual.state)));
                }
                json_object_object_add(so, "desired", d);
                json_object_object_add(so, "actual", a);
                json_object_object_add(so, "outside_window", json_object_new_boolean(s->outside_window));
                if (s->marked) {
                        json_object *m = json_object_new_object();

                        json_object_object_add(m, "patch_id", json_object_new_string(s->marked->patch_id));
                        json_object_object_add(m, "seq", json_object_new_int64((int64_t)s->marked->seq));
                        json_object_object_add(m, "file", json_object_new_string(s->marked->file));
                        json_object_object_add(so, "marked_bad", m);
                } else {
                        json_object_object_add(so, "marked_bad", NULL);
                }
                json_object_object_add(so, "note", json_object_new_string(s->note));
                json_object_array_add(arr, so);
        }
        json_object_object_add(o, "series", arr);
        json_object_object_add(o, "move", res->move ? move_json(res->move) : NULL);
        if (steps) {
                arr = json_object_new_array();
                for (size_t i = 0; i < res->n_steps; i++)
                        json_object_array_add(arr, step_json(&res->steps[i]));
                json_object_object_add(o, "steps", arr);
        }
        return o;
}

static void plan_print(const char *name, const struct hvp_sync_result *res)
{
        struct cli_compliance comp = { .have_policy = true, .decision = res->plan->compliance };

        printf("domain:      %s (build id %s)\n", name, res->state->build_id);
        cli_compliance_print(&comp);
        if (res->plan->n_series == 0)
                printf("series:      none in the catalog or applied\n");
        for (size_t i = 0; i < res->plan->n_series; i++) {
                const struct hvp_series_plan *s = &res->plan->series[i];
                char desired[600] = "none", actual[300] = "none";

                if (s->desired)
                        snprintf(desired, sizeof(desired), "%s (seq %llu, %s)", s->desired->patch_id,
                                 (unsigned long long)s->desired->seq, s->desired->file);
                if (s->has_actual)
                        snprintf(actual, sizeof(actual), "%s (seq %llu, %s)", s->actual.patch_id,
                                 (unsigned long long)s->actual.seq, hvp_patch_state_name(s->actual.state));
                printf("series:      %s: %s\n             desired %s, applied %s\n", s->series,
                       hvp_sync_action_name(s->action), desired, actual);
                if (s->note[0])
                        printf("             - %s\n", s->note);
        }
        if (res->move)
                move_print(res->move);
}

static void steps_print(const char *name, const struct hvp_sync_result *res)
{
        if (res->n_steps == 0)
                printf("%s: nothing to do\n", name);
        for (size_t i = 0; i < res->n_steps; i++) {
                const struct hvp_sync_step *st = &res->steps[i];
                const struct hvp_series_plan *s = st->plan;

                if (!st->attempted)
                        printf("%s: %s: %s %s (%s): %s\n", name, s->series, hvp_sync_action_name(s->action),
                               s->desired->patch_id, s->desired->file,
                               s->outside_window ? "waits for the maintenance window" : "dry run, not done");
                else if (st->outcome->exit_class)
                        printf("%s: %s: %s %s FAILED (exit %d): %s\n", name, s->series,
                               hvp_sync_action_name(s->action), s->desired->patch_id, st->outcome->exit_class,
                               st->outcome->first_error);
                else
                        printf("%s: %s: applied %s (seq %llu%s%s): pause window %.3f ms\n", name, s->series,
                               s->desired->patch_id, (unsigned long long)s->desired->seq,
                               st->outcome->replaced[0] ? ", replacing " : "", st->outcome->replaced,
                               st->outcome->report.pause_ms);
                if (st->attempted)
                        cli_health_print(&st->outcome->health, "             ");
        }
}

static json_object *move_outcome_json(const struct hvp_move_outcome *o)
{
        json_object *j = json_object_new_object();

        json_object_object_add(j, "result", json_object_new_string(o->exit_class ? "failed" : "moved"));
        json_object_object_add(j, "code", json_object_new_int(o->exit_class));
        json_object_object_add(j, "error", str_or_null(o->error));
        json_object_object_add(j, "redefined", json_object_new_boolean(o->redefined));
        json_object_object_add(j, "restarted", json_object_new_boolean(o->restarted));
        json_object_object_add(j, "destroyed", json_object_new_boolean(o->destroyed));
        json_object_object_add(j, "rolled_back", json_object_new_boolean(o->rolled_back));
        json_object_object_add(j, "shutdown_seconds", json_object_new_double(o->shutdown_s));
        json_object_object_add(j, "kernel_up", json_object_new_boolean(o->kernel_up));
        json_object_object_add(j, "kernel_up_seconds", json_object_new_double(o->kernel_up_s));
        json_object_object_add(j, "in_baseline", json_object_new_boolean(o->in_baseline));
        json_object_object_add(j, "banner", str_or_null(o->banner));
        json_object_object_add(j, "build_id", str_or_null(o->build_id));
        return j;
}

static void move_outcome_print(const char *name, const struct hvp_move_plan *m, const struct hvp_move_outcome *o)
{
        if (o->exit_class)
                printf("%s: move-baseline %s -> %s FAILED (exit %d): %s\n", name, m->from_baseline, m->to_baseline,
                       o->exit_class, o->error);
        else
                printf("%s: moved to baseline %s (%s): %s after %.1f s, kernel up after %.1f s\n", name,
                       m->to_baseline, m->to_release, o->destroyed ? "destroyed" : "shut down", o->shutdown_s,
                       o->kernel_up_s);
}

/* Open and attach a domain; on failure the reason goes to why and an exit code is returned. */
static int attach(struct cli *c, const char *domain, struct cli_target *t, char *why, size_t why_size)
{
        struct hvp_live_options live = { .uri = c->uri };
        int r;

        memset(t, 0, sizeof(*t));
        r = hvp_guest_open_live(domain, &live, &t->guest);
        if (r >= 0)
                r = hvp_linux_attach(t->guest, &t->mmu, &t->kernel, &t->vcpu);
        if (r < 0) {
                snprintf(why, why_size, "%s: %s", domain, hvp_last_error());
                if (t->guest)
                        hvp_guest_free(t->guest);
                memset(t, 0, sizeof(*t));
                return cli_exit_code(r);
        }
        return EXIT_OK;
}

/*
 * sync's baseline move of one domain (plan m): done (then the sync after it printed
 * or added to jo as "after"), or said why not. Returns the exit code it adds.
 */
static int sync_move(struct cli *c, const char *name, const struct hvp_policy *policy, const struct hvp_catalog *cat,
                     const struct hvp_move_plan *m, bool dry_run, unsigned health, json_object *jo)
{
        struct hvp_live_options live = { .uri = c->uri };
        struct hvp_move_outcome out;
        int rc;

        if (m->action != HVP_MOVE_NOW || dry_run) {
                if (jo) {
                        json_object *r = json_object_new_object();

                        json_object_object_add(r, "result", json_object_new_string(
                                m->action == HVP_MOVE_NOW ? "dry-run" : m->action == HVP_MOVE_WAITS ? "waiting"
                                                                                                 : "not-moved"));
                        json_object_object_add(jo, "move_result", r);
                } else if (m->action == HVP_MOVE_NOW)
                        printf("%s: %s: dry run, not done\n", name, m->note);
                else
                        printf("%s: reboot-required (%s)\n", name, m->note);
                return EXIT_OK;
        }
        cli_progress(c, "%s: moving to baseline %s (%s), restarting it", name, m->to_baseline, m->to.kernel);
        hvp_op_move_baseline(&(struct hvp_move_request){ .domain = name, .live = &live, .plan = m, .policy = policy,
                                                         .catalog = cat, .state_dir = cli_state_dir(),
                                                         .health_seconds = health },
                             &out);
        rc = out.exit_class;
        if (out.sync && out.sync->exit_class && !rc)
                rc = out.sync->exit_class;
        if (jo) {
                json_object_object_add(jo, "move_result", move_outcome_json(&out));
                json_object_object_add(jo, "after", out.sync ? domain_json(name, out.sync, true) : NULL);
        } else {
                move_outcome_print(name, m, &out);
                if (out.sync) {
                        printf("after the move:\n");
                        plan_print(name, out.sync);
                        steps_print(name, out.sync);
                }
        }
        hvp_move_outcome_clear(&out);
        return rc;
}

static int run(struct cli *c, int argc, char **argv, bool sync)
{
        const char *cmd = sync ? "sync" : "plan";
        struct args a = { 0 };
        struct hvp_policy *policy = NULL;
        struct hvp_catalog *cat = NULL;
        char **names = NULL, *one[1] = { NULL };
        size_t n = 0;
        json_object *doms = NULL;
        int r, rc = EXIT_OK;

        if (cli_wants_help(c, cmd, argc, argv, sync ? sync_help : plan_help))
                return EXIT_OK;
        r = parse_args(c, cmd, sync, argc, argv, &a);
        if (r)
                return r;
        r = cli_load_policy(c, true, &policy);
        if (r)
                return r;
        r = hvp_catalog_load(a.catalog, policy, &cat);
        if (r < 0) {
                r = cli_lib_error(c, r, "reading the catalog");
                goto out;
        }
        if (a.all) {
                r = hvp_list_running_domains(c->uri, MAX_DOMAINS, &names, &n);
                if (r < 0) {
                        r = cli_lib_error(c, r, "listing the running domains");
                        goto out;
                }
        } else {
                one[0] = (char *)a.domain;
                n = 1;
        }
        if (c->json)
                doms = json_object_new_array();
        else
                catalog_errors_print(cat);
        for (size_t i = 0; i < n; i++) {
                const char *name = a.all ? names[i] : one[0];
                struct hvp_sync_result *res = NULL;
                struct cli_target t;
                char why[1024];

                cli_progress(c, "%s: %s", name, sync && !a.dry_run ? "syncing" : "planning");
                r = attach(c, name, &t, why, sizeof(why));
                if (r == EXIT_OK) {
                        name = hvp_guest_name(t.guest);
                        struct hvp_sync_options so = { .dry_run = !sync || a.dry_run, .health_seconds = a.health };

                        r = hvp_op_sync_ex(t.guest, t.mmu, t.kernel, cli_state_dir(), policy, cat, &so, &res);
                        if (r < 0) {
                                snprintf(why, sizeof(why), "%s: %s", name, hvp_last_error());
                                r = cli_exit_code(r);   /* an unsafe state folder refuses (3) */
                        }
                }
                if (r != EXIT_OK) {
                        if (!a.all || !sync) {  /* one domain: the error is the answer */
                                cli_target_close(&t);
                                rc = cli_error(c, r, "%s", why);
                                goto out;
                        }
                        if (doms) {
                                json_object *o = json_object_new_object();

                                json_object_object_add(o, "domain", json_object_new_string(name));
                                json_object_object_add(o, "error", json_object_new_string(why));
                                json_object_object_add(o, "code", json_object_new_int(r));
                                json_object_array_add(doms, o);
                        } else {
                                printf("%s: FAILED (exit %d): %s\n", name, r, why);
                        }
                        rc = rc ? rc : r;
                        cli_target_close(&t);
                        continue;
                }
                if (res->exit_class && !rc)
                        rc = res->exit_class;
                if (doms) {
                        json_object_array_add(doms, domain_json(name, res, sync));
                } else {
                        plan_print(name, res);
                        if (sync)
                                steps_print(name, res);
                }
                if (sync && res->move && res->move->action != HVP_MOVE_NONE) {
                        char copy[HVP_DOMAIN_NAME_MAX + 1];

                        snprintf(copy, sizeof(copy), "%s", name);
                        cli_target_close(&t);   /* the move replaces its QEMU process */
                        r = sync_move(c, copy, policy, cat, res->move, a.dry_run, a.health,
                                      doms ? json_object_array_get_idx(doms, json_object_array_length(doms) - 1)
                                           : NULL);
                        if (r && !rc)
                                rc = r;
                }
                hvp_sync_result_free(res);
                cli_target_close(&t);
        }
        if (doms) {
                json_object *o;

                if (!sync && n == 1) {
                        o = json_object_get(json_object_array_get_idx(doms, 0));
                        json_object_put(doms);
                } else {
                        o = json_object_new_object();
                        json_object_object_add(o, "dry_run", json_object_new_boolean(a.dry_run));
                        json_object_object_add(o, "domains", doms);
                }
                doms = NULL;
                json_object_object_add(o, "catalog", json_object_new_string(cat->dir));
                json_object_object_add(o, "catalog_errors", catalog_errors_json(cat));
                cli_json_print(o);
        }
        r = rc;
out:
        if (doms)
                json_object_put(doms);
        for (size_t i = 0; names && i < n; i++)
                free(names[i]);
        free(names);
        hvp_catalog_free(cat);
        hvp_policy_free(policy);
        return r == EXIT_OK ? rc : r;
}

int cmd_plan(struct cli *c, int argc, char **argv)
{
        return run(c, argc, argv, false);
}

int cmd_sync(struct cli *c, int argc, char **argv)
{
        return run(c, argc, argv, true);
}

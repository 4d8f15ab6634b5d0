/*
 * apply and check: parse the arguments, run the pipeline (hvp_op_apply: verify,
 * authorize, plan, one pause window; check collects every reason why not) and print.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hvpatch/ops.h>

#include "cli/commands.h"
#include "cli/health.h"
#include "cli/patching.h"

static const char apply_help[] =
        "Applies a signed hotpatch bundle to a running guest: verifies BUNDLE.minisig\n"
        "against the policy's trusted keys, authorizes (group, requirements, baseline,\n"
        "maintenance window, signer, sequence), plans every site while the guest runs,\n"
        "then pauses the vCPUs only to re-check, write and read back. Prints the pause\n"
        "window. A newer bundle of an applied series replaces it in the same window.\n\n"
        "Options:\n"
        "  --sig FILE             signature file (default BUNDLE.minisig)\n"
        "  --write-path PATH      auto (default: direct for kvm, gdbstub for TCG), direct, gdbstub\n"
        "  --area AREA            where redirect code goes: auto (default: slack if it fits,\n"
        "                         else the device), slack, device: the domain's own read-only\n"
        "                         area ('hvpatch area add DOMAIN', next boot; docs/operations.md)\n"
        "  --stack-check MODE     auto (default: on when the guest kernel has BTF, else a\n"
        "                         warning), require (refuse to write without it), off.\n"
        "                         Before each write no task may hold a return address\n"
        "                         inside a range being changed (docs/design-notes.md)\n"
        "  --insecure-unsigned    FOR TESTS: no signature and no policy check\n"
        "  --health SECONDS       the health gate: watch the guest SECONDS after the apply\n"
        "                         (libvirt state, pvpanic, the kernel's taint flags and\n"
        "                         its log: WARN, oops); on a\n"
        "                         failure revert if it still runs, audit, and mark the\n"
        "                         bundle bad for this kernel build ('hvpatch bad')\n"
        "Exit codes: 3 refused (unsigned, bad or untrusted signature; no usable policy;\n"
        "the policy's verdict; sequence; marked bad by the health gate), 4 guest busy (a\n"
        "vCPU or, by the stack check, a task inside a range: --json names it in busy_task),\n"
        "5 a site does not match (bytes, instruction boundaries, a symbol missing from\n"
        "the kernel), 6 the health gate failed (reverted, marked bad). Every apply and\n"
        "every refusal is audited to syslog (docs/policy.md).\n";

static const char check_help[] =
        "Dry run of apply: runs every check apply would (signature, bundle, policy,\n"
        "every site against live memory, patch-area room) and reports each reason why\n"
        "the bundle would not apply. Writes nothing and does not pause the guest.\n"
        "Exit code 0 if it would apply, else the code apply would exit with.\n"
        "A kernel symbol the bundle names (a site, or one its code calls) that the\n"
        "kernel defines more than once is refused with every address, unless the\n"
        "manifest pins one (<pin>, docs/bundle.md); apply refuses it the same way.\n"
        "With the stack check (--stack-check, as apply), a task whose kernel stack holds a\n"
        "return address inside what the bundle changes, now, is a reason (stage \"stack\",\n"
        "exit 4: apply would wait for it; --json names it in busy_task).\n"
        "Options as apply (--sig, --area, --stack-check, --insecure-unsigned).\n";

struct args {
        struct cli *c;
        bool dry_run;
        struct hvp_live_options live;
        struct hvp_apply_request req;
};

static int parse_args(struct args *a, int argc, char **argv)
{
        int pos = 0;
        const char *positional[2] = { NULL, NULL };

        for (int i = 0; i < argc; i++) {
                if (strcmp(argv[i], "--insecure-unsigned") == 0) {
                        a->req.insecure_unsigned = true;
                } else if (strcmp(argv[i], "--area") == 0 && i + 1 < argc) {
                        const char *s = argv[++i];

                        if (strcmp(s, "auto") == 0)
                                a->req.area = HVP_AREA_AUTO;
                        else if (strcmp(s, "slack") == 0)
                                a->req.area = HVP_AREA_SLACK;
                        else if (strcmp(s, "device") == 0)
                                a->req.area = HVP_AREA_DEVICE;
                        else
                                return cli_error(a->c, EXIT_USAGE, "--area: auto, slack or device");
                } else if (!a->dry_run && strcmp(argv[i], "--health") == 0 && i + 1 < argc) {
                        int r = cli_parse_health(a->c, argv[++i], &a->req.health_seconds);

                        if (r)
                                return r;
                } else if (strcmp(argv[i], "--stack-check") == 0 && i + 1 < argc) {
                        const char *s = argv[++i];

                        if (strcmp(s, "auto") == 0)
                                a->req.stack_check = HVP_STACK_CHECK_AUTO;
                        else if (strcmp(s, "require") == 0)
                                a->req.stack_check = HVP_STACK_CHECK_REQUIRE;
                        else if (strcmp(s, "off") == 0)
                                a->req.stack_check = HVP_STACK_CHECK_OFF;
                        else
                                return cli_error(a->c, EXIT_USAGE, "--stack-check: auto, require or off");
                } else if (strcmp(argv[i], "--sig") == 0 && i + 1 < argc) {
                        a->req.sig_path = argv[++i];
                } else if (strcmp(argv[i], "--write-path") == 0 && i + 1 < argc) {
                        const char *p = argv[++i];

                        if (strcmp(p, "auto") == 0)
                                a->live.write_path = HVP_WRITE_AUTO;
                        else if (strcmp(p, "direct") == 0)
                                a->live.write_path = HVP_WRITE_DIRECT;
                        else if (strcmp(p, "gdbstub") == 0)
                                a->live.write_path = HVP_WRITE_GDBSTUB;
                        else
                                return cli_error(a->c, EXIT_USAGE, "--write-path: auto, direct or gdbstub");
                } else if (argv[i][0] == '-' || pos >= 2) {
                        return cli_usage(a->c, cli_find_command(a->dry_run ? "check" : "apply"));
                } else {
                        positional[pos++] = argv[i];
                }
        }
        if (pos != 2)
                return cli_usage(a->c, cli_find_command(a->dry_run ? "check" : "apply"));
        a->req.bundle_path = positional[1];
        a->req.domain = positional[0];
        return 0;
}

static void print_applied(struct cli *c, const struct hvp_apply_outcome *o)
{
        const struct hvp_apply_report *rep = &o->report;

        if (c->json) {
                json_object *j = json_object_new_object();

                json_object_object_add(j, "domain", json_object_new_string(o->domain));
                json_object_object_add(j, "patch_id", json_object_new_string(o->patch_id));
                json_object_object_add(j, "series", json_object_new_string(o->series));
                json_object_object_add(j, "seq", json_object_new_int64((int64_t)o->seq));
                json_object_object_add(j, "key", o->signed_ok ? json_object_new_string(o->key_name) : NULL);
                json_object_object_add(j, "replaced", o->replaced[0] ? json_object_new_string(o->replaced) : NULL);
                json_object_object_add(j, "sites", json_object_new_int((int)o->nr_sites));
                json_object_object_add(j, "writes", json_object_new_int((int)o->nr_writes));
                json_object_object_add(j, "bytes_written", json_object_new_int64((int64_t)rep->bytes_written));
                json_object_object_add(j, "write_path", json_object_new_string(hvp_write_path_name(o->write_path)));
                json_object_object_add(j, "pause_ms", json_object_new_double(rep->pause_ms));
                json_object_object_add(j, "total_ms", json_object_new_double(rep->total_ms));
                json_object_object_add(j, "attempts", json_object_new_int((int)rep->attempts));
                json_object_object_add(j, "max_pause_ms", json_object_new_int((int)o->max_pause_ms));
                json_object_object_add(j, "pause_exceeded", json_object_new_boolean(o->pause_exceeded));
                json_object_object_add(j, "health", o->health.result ? cli_health_json(&o->health) : NULL);
                json_object_object_add(j, "stack_check", cli_stack_check_json(o->stack_check_on, o->stack_check_off, rep));
                if (!o->stack_check_on) {
                        json_object *w = json_object_new_array();
                        char text[600];

                        snprintf(text, sizeof(text), "the stack check was off: %s", o->stack_check_off);
                        json_object_array_add(w, json_object_new_string(text));
                        json_object_object_add(j, "warnings", w);
                }
                cli_json_print(j);
        } else {
                printf("applied %s (series %s, seq %llu%s%s) to %s: %zu sites, %zu bytes\n", o->patch_id, o->series,
                       (unsigned long long)o->seq, o->replaced[0] ? ", replacing " : "", o->replaced, o->domain,
                       o->nr_sites, rep->bytes_written);
                printf("pause window: %.3f ms (command start to resume: %.1f ms, %u attempt%s)\n", rep->pause_ms,
                       rep->total_ms, rep->attempts, rep->attempts == 1 ? "" : "s");
                if (o->stack_check_on)
                        printf("stack check: %zu tasks, %.1f ms before the pause, %.3f ms in it\n", rep->stack.tasks,
                               rep->stack.prepare_ms, rep->stack.paused_ms);
                cli_health_print(&o->health, "");
        }
        if (!o->stack_check_on)
                fprintf(stderr, "hvpatch: WARNING: the stack check was off: %s\n", o->stack_check_off);
        if (o->pause_exceeded)
                fprintf(stderr, "hvpatch: WARNING: the pause window (%.3f ms) exceeded the policy's %u ms\n",
                        rep->pause_ms, o->max_pause_ms);
}

/* Applied, then the health gate failed: the error, with the gate's report. */
static void print_health_failed(struct cli *c, const struct hvp_apply_outcome *o)
{
        if (c->json) {
                json_object *j = json_object_new_object();

                json_object_object_add(j, "error", json_object_new_string(o->first_error));
                json_object_object_add(j, "code", json_object_new_int(EXIT_HEALTH));
                json_object_object_add(j, "domain", json_object_new_string(o->domain));
                json_object_object_add(j, "patch_id", json_object_new_string(o->patch_id));
                json_object_object_add(j, "pause_ms", json_object_new_double(o->report.pause_ms));
                json_object_object_add(j, "health", cli_health_json(&o->health));
                cli_json_print(j);
                return;
        }
        fprintf(stderr, "hvpatch: %s\n", o->first_error);
        cli_health_print(&o->health, "");
}

/* check's report: would it apply, and every reason why not. */
static void print_check(struct cli *c, const struct hvp_apply_request *req, const struct hvp_apply_outcome *o)
{
        if (c->json) {
                json_object *j = json_object_new_object(), *reasons = json_object_new_array();

                for (size_t i = 0; i < o->n_reasons; i++) {
                        json_object *r = json_object_new_object();

                        json_object_object_add(r, "stage", json_object_new_string(o->reasons[i].stage));
                        json_object_object_add(r, "reason", json_object_new_string(o->reasons[i].text));
                        if (o->reasons[i].code[0])
                                json_object_object_add(r, "code", json_object_new_string(o->reasons[i].code));
                        json_object_array_add(reasons, r);
                }
                json_object_object_add(j, "domain", json_object_new_string(req->domain));
                json_object_object_add(j, "bundle", json_object_new_string(req->bundle_path));
                json_object_object_add(j, "would_apply", json_object_new_boolean(o->exit_class == 0));
                if (o->has_bundle)
                        json_object_object_add(j, "patch_id", json_object_new_string(o->patch_id));
                if (o->signed_ok)
                        json_object_object_add(j, "key", json_object_new_string(o->key_name));
                if (o->planned)
                        json_object_object_add(j, "writes", json_object_new_int((int)o->nr_writes));
                json_object_object_add(j, "reasons", reasons);
                if (o->planned && (o->stack_check_on || o->stack_check_off[0]))
                        json_object_object_add(j, "stack_check",
                                               cli_stack_check_json(o->stack_check_on, o->stack_check_off, &o->report));
                if (o->stack_busy)
                        json_object_object_add(j, "busy_task", cli_busy_task_json(&o->stack_hit));
                cli_json_print(j);
        } else if (o->exit_class == 0) {
                printf("%s would apply to %s: %zu writes%s%s\n", o->patch_id, req->domain, o->nr_writes,
                       o->replaced[0] ? ", replacing " : "", o->replaced);
        } else {
                printf("%s would NOT apply to %s:\n", req->bundle_path, req->domain);
                for (size_t i = 0; i < o->n_reasons; i++)
                        printf("  - [%s] %s\n", o->reasons[i].stage, o->reasons[i].text);
        }
}

static int run(struct cli *c, int argc, char **argv, bool dry_run)
{
        /* -c URI: the same connection as every other command (cli_open_guest) */
        struct args a = { .c = c, .dry_run = dry_run, .live = { .uri = c->uri } };
        struct hvp_apply_outcome *o;
        int r;

        if (cli_wants_help(c, dry_run ? "check" : "apply", argc, argv, dry_run ? check_help : apply_help))
                return EXIT_OK;
        r = parse_args(&a, argc, argv);
        if (r)
                return r;
        a.req.live = &a.live;
        a.req.check_only = dry_run;
        a.req.policy_path = c->policy;
        a.req.state_dir = cli_state_dir();
        if (a.req.insecure_unsigned)
                fprintf(stderr, "hvpatch: WARNING: --insecure-unsigned: no signature or policy check\n");
        o = calloc(1, sizeof(*o));
        if (!o)
                return cli_error(c, EXIT_ERROR, "out of memory");
        r = hvp_op_apply(&a.req, o);
        if (r < 0) {
                free(o);
                return cli_lib_error(c, r, dry_run ? "check" : "apply");
        }
        r = o->exit_class;
        if (dry_run)
                print_check(c, &a.req, o);
        else if (r == EXIT_HEALTH)
                print_health_failed(c, o);
        else if (o->marked_bad && c->json) {
                json_object *j = json_object_new_object();

                json_object_object_add(j, "error", json_object_new_string(o->first_error));
                json_object_object_add(j, "code", json_object_new_int(r));
                json_object_object_add(j, "reason_code", json_object_new_string("marked-bad"));
                json_object_object_add(j, "bad_mark", cli_bad_mark_json(&o->bad_mark));
                cli_json_print(j);
        }
        else if (r && o->stack_busy)
                cli_busy_task_error(c, r, o->first_error, &o->stack_hit);
        else if (r)
                cli_error(c, r, "%s", o->first_error);
        else
                print_applied(c, o);
        free(o);
        return r;
}

int cmd_apply(struct cli *c, int argc, char **argv)
{
        return run(c, argc, argv, false);
}

int cmd_check(struct cli *c, int argc, char **argv)
{
        return run(c, argc, argv, true);
}

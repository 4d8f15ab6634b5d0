/*
 * apply and check: verify the signature, parse the bundle from the verified bytes,
 * authorize under the policy, plan while the guest runs, then (apply) one pause
 * window. check runs every stage it can and reports every reason why not.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hvpatch/patch.h>
#include <hvpatch/windows.h>

#include "cli/commands.h"
#include "cli/compliance.h"
#include "cli/patching.h"
#include "common/util.h"

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
        "  --insecure-unsigned    FOR TESTS: no signature and no policy check\n"
        "Exit codes: 3 refused (unsigned, bad or untrusted signature; no usable policy;\n"
        "the policy's verdict; sequence), 4 guest busy, 5 a site does not match (bytes,\n"
        "instruction boundaries, a symbol missing from the kernel). Every apply and\n"
        "every refusal is audited to syslog (docs/policy.md).\n";

static const char check_help[] =
        "Dry run of apply: runs every check apply would (signature, bundle, policy,\n"
        "every site against live memory, patch-area room) and reports each reason why\n"
        "the bundle would not apply. Writes nothing and does not pause the guest.\n"
        "Exit code 0 if it would apply, else the code apply would exit with.\n"
        "A kernel symbol the bundle names (a site, or one its code calls) that the\n"
        "kernel defines more than once is refused with every address, unless the\n"
        "manifest pins one (<pin>, docs/bundle.md); apply refuses it the same way.\n"
        "Options as apply (--sig, --area, --insecure-unsigned).\n";

struct job {
        struct cli *c;
        bool dry_run, insecure;
        const char *domain, *bundle_path, *sig_path;
        struct hvp_live_options live;
        enum hvp_area_choice area;
        void *bytes;
        size_t len;
        struct hvp_policy *policy;
        struct hvp_signature_info sig;
        bool signed_ok;
        struct hvp_bundle *bundle;
        struct cli_target t;
        struct hvp_record *rec;
        int lock;
        struct hvp_decision decision;
        struct hvp_plan *txn, *pure;
        char replaces[HVP_ID_MAX];
        json_object *reasons;   /* check: every failed stage */
        int exit_code;          /* the first failure's */
        char first_error[1024];
};

/* Note a failed stage. apply stops at the first; check collects them all. */
static int stage_failed(struct job *j, const char *stage, int exit_code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static int stage_failed(struct job *j, const char *stage, int exit_code, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (!j->exit_code) {
                j->exit_code = exit_code;
                snprintf(j->first_error, sizeof(j->first_error), "%s", msg);
        }
        if (j->reasons) {
                json_object *o = json_object_new_object();

                json_object_object_add(o, "stage", json_object_new_string(stage));
                json_object_object_add(o, "reason", json_object_new_string(msg));
                json_object_array_add(j->reasons, o);
        }
        return exit_code;
}

static int lib_failed(struct job *j, const char *stage, int err)
{
        return stage_failed(j, stage, cli_exit_code(err), "%s", hvp_last_error()[0] ? hvp_last_error() : strerror(-err));
}

static int parse_args(struct job *j, int argc, char **argv)
{
        int pos = 0;
        const char *positional[2] = { NULL, NULL };

        for (int i = 0; i < argc; i++) {
                if (strcmp(argv[i], "--insecure-unsigned") == 0) {
                        j->insecure = true;
                } else if (strcmp(argv[i], "--area") == 0 && i + 1 < argc) {
                        const char *a = argv[++i];

                        if (strcmp(a, "auto") == 0)
                                j->area = HVP_AREA_AUTO;
                        else if (strcmp(a, "slack") == 0)
                                j->area = HVP_AREA_SLACK;
                        else if (strcmp(a, "device") == 0)
                                j->area = HVP_AREA_DEVICE;
                        else
                                return cli_error(j->c, EXIT_USAGE, "--area: auto, slack or device");
                } else if (strcmp(argv[i], "--sig") == 0 && i + 1 < argc) {
                        j->sig_path = argv[++i];
                } else if (strcmp(argv[i], "--write-path") == 0 && i + 1 < argc) {
                        const char *p = argv[++i];

                        if (strcmp(p, "auto") == 0)
                                j->live.write_path = HVP_WRITE_AUTO;
                        else if (strcmp(p, "direct") == 0)
                                j->live.write_path = HVP_WRITE_DIRECT;
                        else if (strcmp(p, "gdbstub") == 0)
                                j->live.write_path = HVP_WRITE_GDBSTUB;
                        else
                                return cli_error(j->c, EXIT_USAGE, "--write-path: auto, direct or gdbstub");
                } else if (argv[i][0] == '-' || pos >= 2) {
                        return cli_usage(j->c, cli_find_command(j->dry_run ? "check" : "apply"));
                } else {
                        positional[pos++] = argv[i];
                }
        }
        if (pos != 2)
                return cli_usage(j->c, cli_find_command(j->dry_run ? "check" : "apply"));
        j->bundle_path = positional[1];
        j->domain = positional[0];
        argv[0] = (char *)positional[0];
        return 0;
}

/* Signature and policy: the bytes verified are the bytes parsed. */
static int verify_stage(struct job *j)
{
        void *sig = NULL;
        size_t sig_len;
        char sig_path[HVP_PATH_MAX], why[1024];
        int r;

        r = hvp_read_file_bounded(j->bundle_path, HVP_BUNDLE_MAX, &j->bytes, &j->len);
        if (r < 0)
                return lib_failed(j, "bundle", r) ? EXIT_ERROR : 0;
        if (j->insecure) {
                fprintf(stderr, "hvpatch: WARNING: --insecure-unsigned: no signature or policy check\n");
                return 0;
        }
        r = cli_open_policy(j->c, true, &j->policy, why, sizeof(why));
        if (r)
                return stage_failed(j, "policy", r, "%s", why);
        snprintf(sig_path, sizeof(sig_path), "%s", j->sig_path ? j->sig_path : "");
        if (!j->sig_path)
                snprintf(sig_path, sizeof(sig_path), "%s.minisig", j->bundle_path);
        r = hvp_read_file_bounded(sig_path, HVP_MINISIGN_SIG_FILE_MAX, &sig, &sig_len);
        if (r == -ENOENT)
                return stage_failed(j, "signature", EXIT_REFUSED, "bundle is not signed: no %s", sig_path);
        if (r < 0)
                return lib_failed(j, "signature", r);
        r = hvp_policy_verify(j->policy, j->bytes, j->len, sig, sig_len, 0, &j->sig);
        free(sig);
        if (r < 0)
                return stage_failed(j, "signature", EXIT_REFUSED, "signature refused: %s", hvp_last_error());
        j->signed_ok = true;
        return 0;
}

/* The verdict as an operator reads it: "reboot required", not "reboot-required". */
static const char *verdict_words(enum hvp_verdict v)
{
        return v == HVP_VERDICT_REBOOT_REQUIRED ? "reboot required" : hvp_verdict_name(v);
}

/* Give the reason just noted its stable code (check's JSON). */
static void reason_code(struct job *j, const char *code)
{
        size_t n = j->reasons ? json_object_array_length(j->reasons) : 0;

        if (n)
                json_object_object_add(json_object_array_get_idx(j->reasons, n - 1), "code",
                                       json_object_new_string(code));
}

static void report_decision(struct job *j)
{
        for (size_t i = 0; i < j->decision.n_reasons; i++) {
                stage_failed(j, "policy", EXIT_REFUSED, "%s: %s", verdict_words(j->decision.verdict),
                             j->decision.reasons[i].text);
                reason_code(j, hvp_reason_name(j->decision.reasons[i].code));
        }
}

static int authorize_stage(struct job *j)
{
        const struct hvp_manifest *m = &j->bundle->manifest;
        struct hvp_bundle_facts bf;
        char target[2 * HVP_BUILD_ID_MAX + 1];
        struct cli_facts f;
        int r;

        if (j->insecure || !j->policy)  /* no policy: the policy stage has already failed */
                return 0;
        r = cli_gather_facts(j->c, &j->t, j->rec, &f);
        if (r) {
                cli_facts_free(&f);
                return stage_failed(j, "policy", r, "cannot gather the guest's facts");
        }
        hvp_hex_encode(m->build_id, m->build_id_len, target);
        bf = (struct hvp_bundle_facts){ .patch_id = m->id, .series = m->series, .seq = m->sequence,
                                        .target_build_id = target,
                                        .signer = j->signed_ok ? j->sig.key_name : "(unverified)" };
        r = hvp_policy_authorize(j->policy, &f.facts, &bf, &j->decision);
        cli_facts_free(&f);
        if (r == 0)
                return 0;
        if (r != -EPERM)
                return lib_failed(j, "policy", r);
        report_decision(j);
        return EXIT_REFUSED;
}

/*
 * The guest runs no Linux kernel: if it runs Windows, refuse as the policy would
 * (PatchGuard), and in any case, since hvpatch has no Windows patcher. 0 if not Windows.
 */
static int windows_refused(struct job *j)
{
        const struct hvp_manifest *m = &j->bundle->manifest;
        struct hvp_guest_facts facts = { 0 };
        struct hvp_bundle_facts bf;
        struct hvp_windows_kernel w;
        char target[2 * HVP_BUILD_ID_MAX + 1];
        const char *xml = hvp_guest_domain_xml(j->t.guest);
        bool patchguard = false;

        if (hvp_windows_attach(j->t.guest, &w, NULL) < 0)
                return 0;
        cli_progress(j->c, "%s runs a Windows kernel (%s)", hvp_guest_name(j->t.guest), w.identity);
        if (j->policy && !j->insecure) {
                if (!xml || hvp_guest_facts_from_domain_xml(xml, strlen(xml), &facts) < 0)
                        snprintf(facts.name, sizeof(facts.name), "%s", hvp_guest_name(j->t.guest));
                facts.os = HVP_OS_WINDOWS;
                facts.patchguard = HVP_PATCHGUARD_PRESENT;      /* unknown counts as present */
                facts.kernel_build_id = w.identity;
                facts.now = time(NULL);
                hvp_hex_encode(m->build_id, m->build_id_len, target);
                bf = (struct hvp_bundle_facts){ .patch_id = m->id, .series = m->series, .seq = m->sequence,
                                                .target_build_id = target,
                                                .signer = j->signed_ok ? j->sig.key_name : "(unverified)" };
                if (hvp_policy_authorize(j->policy, &facts, &bf, &j->decision) == -EPERM)
                        report_decision(j);
                for (size_t i = 0; i < j->decision.n_reasons; i++)
                        patchguard |= j->decision.reasons[i].code == HVP_REASON_PATCHGUARD;
        }
        if (!patchguard) {
                stage_failed(j, "policy", EXIT_REFUSED,
                             "Windows kernel images are guarded by PatchGuard: hvpatch refuses to patch them");
                reason_code(j, hvp_reason_name(HVP_REASON_PATCHGUARD));
        }
        return EXIT_REFUSED;
}

static void job_free(struct job *j)
{
        hvp_plan_free(j->txn);
        hvp_plan_free(j->pure);
        hvp_record_free(j->rec);
        hvp_domain_unlock(j->lock);
        if (j->t.guest)
                cli_target_close(&j->t);
        hvp_bundle_free(j->bundle);
        hvp_policy_free(j->policy);
        free(j->bytes);
        if (j->reasons)
                json_object_put(j->reasons);
}

static void audit_refusal(struct job *j)
{
        struct hvp_audit_event ev = {
                .action = HVP_AUDIT_REFUSE,
                /* refusals before the guest is opened (signature, policy) name it as given */
                .domain = j->t.guest ? hvp_guest_name(j->t.guest) : j->domain,
                .bundle_id = j->bundle ? j->bundle->manifest.id : NULL,
                .seq = j->bundle ? j->bundle->manifest.sequence : 0,
                .key_name = j->signed_ok ? j->sig.key_name : NULL,
                .result = -EPERM,
                .reason = j->first_error,
                .pause_ms = -1,
        };

        hvp_audit(&ev);
}

static void print_applied(struct job *j, const struct hvp_apply_report *rep)
{
        const struct hvp_manifest *m = &j->bundle->manifest;
        bool exceeded = j->decision.max_pause_ms && rep->pause_ms > j->decision.max_pause_ms;

        if (j->c->json) {
                json_object *o = json_object_new_object();

                json_object_object_add(o, "domain", json_object_new_string(hvp_guest_name(j->t.guest)));
                json_object_object_add(o, "patch_id", json_object_new_string(m->id));
                json_object_object_add(o, "series", json_object_new_string(m->series));
                json_object_object_add(o, "seq", json_object_new_int64(m->sequence));
                json_object_object_add(o, "key", j->signed_ok ? json_object_new_string(j->sig.key_name) : NULL);
                json_object_object_add(o, "replaced", j->replaces[0] ? json_object_new_string(j->replaces) : NULL);
                json_object_object_add(o, "sites", json_object_new_int((int)m->nr_sites));
                json_object_object_add(o, "writes", json_object_new_int((int)j->txn->nr_writes));
                json_object_object_add(o, "bytes_written", json_object_new_int64((int64_t)rep->bytes_written));
                json_object_object_add(o, "write_path", json_object_new_string(
                        hvp_write_path_name(hvp_guest_write_path(j->t.guest))));
                json_object_object_add(o, "pause_ms", json_object_new_double(rep->pause_ms));
                json_object_object_add(o, "total_ms", json_object_new_double(rep->total_ms));
                json_object_object_add(o, "attempts", json_object_new_int((int)rep->attempts));
                json_object_object_add(o, "max_pause_ms", json_object_new_int((int)j->decision.max_pause_ms));
                json_object_object_add(o, "pause_exceeded", json_object_new_boolean(exceeded));
                cli_json_print(o);
        } else {
                printf("applied %s (series %s, seq %u%s%s) to %s: %zu sites, %zu bytes\n", m->id, m->series,
                       m->sequence, j->replaces[0] ? ", replacing " : "", j->replaces, hvp_guest_name(j->t.guest),
                       m->nr_sites, rep->bytes_written);
                printf("pause window: %.3f ms (command start to resume: %.1f ms, %u attempt%s)\n", rep->pause_ms,
                       rep->total_ms, rep->attempts, rep->attempts == 1 ? "" : "s");
        }
        if (exceeded)
                fprintf(stderr, "hvpatch: WARNING: the pause window (%.3f ms) exceeded the policy's %u ms\n",
                        rep->pause_ms, j->decision.max_pause_ms);
}

static int run(struct cli *c, int argc, char **argv, bool dry_run)
{
        /* -c URI: the same connection as every other command (cli_open_guest) */
        struct job j = { .c = c, .dry_run = dry_run, .lock = -1, .live = { .uri = c->uri } };
        struct hvp_apply_report rep = { 0 };
        int r;

        if (cli_wants_help(c, dry_run ? "check" : "apply", argc, argv, dry_run ? check_help : apply_help))
                return EXIT_OK;
        r = parse_args(&j, argc, argv);
        if (r)
                return r;
        if (dry_run)
                j.reasons = json_object_new_array();

        r = verify_stage(&j);
        if (r && (!dry_run || !j.bytes))
                goto done;
        r = hvp_bundle_open_mem(j.bytes, j.len, &j.bundle);
        if (r < 0) {
                lib_failed(&j, "bundle", r);
                goto done;
        }
        cli_progress(c, "bundle %s (series %s, seq %u) signed by %s", j.bundle->manifest.id,
                     j.bundle->manifest.series, j.bundle->manifest.sequence,
                     j.signed_ok ? j.sig.key_name : "nobody");

        r = hvp_guest_open_live(argv[0], &j.live, &j.t.guest);
        if (r >= 0)
                r = hvp_linux_attach(j.t.guest, &j.t.mmu, &j.t.kernel, &j.t.vcpu);
        if (r < 0) {
                char why[1024];

                snprintf(why, sizeof(why), "%s", hvp_last_error());
                /* a refused patch area (shared, foreign, writable) is a refusal, exit 3 */
                if (!j.t.guest || !windows_refused(&j))
                        stage_failed(&j, "guest", cli_exit_code(r), "%s: %s", argv[0], why);
                if (j.t.guest)
                        hvp_guest_free(j.t.guest);
                j.t.guest = NULL;
                goto done;
        }
        if (!dry_run) {
                r = hvp_domain_lock(cli_state_dir(), hvp_guest_uuid(j.t.guest), &j.lock);
                if (r < 0) {
                        lib_failed(&j, "lock", r);
                        goto done;
                }
        }
        if (cli_has_journal(hvp_guest_uuid(j.t.guest))) {
                stage_failed(&j, "record", EXIT_ERROR,
                             "an interrupted transaction is pending: run 'hvpatch recover %s' first", argv[0]);
                goto done;
        }
        r = hvp_record_load(cli_state_dir(), hvp_guest_uuid(j.t.guest), &j.rec);
        if (r == 0) {
                bool changed = false;

                /* Patches the guest no longer holds (it rebooted) are history, not state. */
                r = cli_prune_record(j.t.guest, j.t.kernel, j.rec, &changed);
                if (r == 0 && changed && !dry_run)
                        r = hvp_record_save(cli_state_dir(), j.rec);
        }
        if (r < 0) {
                lib_failed(&j, "record", r);
                goto done;
        }
        r = authorize_stage(&j);
        if (r && !dry_run)
                goto done;
        r = hvp_guest_check_idle(j.t.guest);
        if (r < 0 && (lib_failed(&j, "guest", r), !dry_run))
                goto done;
        r = hvp_plan_build(j.t.mmu, j.t.kernel, j.bundle, j.signed_ok ? j.sig.key_name : "", j.rec, j.area,
                           &j.txn, &j.pure, j.replaces);
        if (r < 0) {
                /* A symbol the bundle needs is not in this kernel: the bundle does not fit it. */
                if (r == -ENOENT)
                        stage_failed(&j, "plan", EXIT_MISMATCH, "%s", hvp_last_error());
                else
                        lib_failed(&j, "plan", r);
                goto done;
        }
        if (dry_run || j.exit_code)
                goto done;

        {
                struct hvp_apply_options opts = { .state_dir = cli_state_dir() };
                struct hvp_commit commit = { .add = j.pure, .remove_id = j.replaces[0] ? j.replaces : NULL };

                cli_progress(c, "applying %zu writes", j.txn->nr_writes);
                r = hvp_plan_apply(j.t.guest, j.txn, &commit, &opts, &rep);
                cli_audit(HVP_AUDIT_APPLY, j.t.guest, j.pure, r, r == 0 ? rep.pause_ms : -1);
                if (r < 0) {
                        lib_failed(&j, "apply", r);
                        goto done;
                }
        }
        print_applied(&j, &rep);

done:
        r = j.exit_code;
        if (dry_run) {
                if (c->json) {
                        json_object *o = json_object_new_object();

                        json_object_object_add(o, "domain", json_object_new_string(argv[0]));
                        json_object_object_add(o, "bundle", json_object_new_string(j.bundle_path));
                        json_object_object_add(o, "would_apply", json_object_new_boolean(r == 0));
                        if (j.bundle)
                                json_object_object_add(o, "patch_id", json_object_new_string(j.bundle->manifest.id));
                        if (j.signed_ok)
                                json_object_object_add(o, "key", json_object_new_string(j.sig.key_name));
                        if (j.txn)
                                json_object_object_add(o, "writes", json_object_new_int((int)j.txn->nr_writes));
                        json_object_object_add(o, "reasons", j.reasons);
                        j.reasons = NULL;
                        cli_json_print(o);
                } else if (r == 0) {
                        printf("%s would apply to %s: %zu writes%s%s\n", j.bundle->manifest.id, argv[0],
                               j.txn->nr_writes, j.replaces[0] ? ", replacing " : "", j.replaces);
                } else {
                        size_t n = json_object_array_length(j.reasons);

                        printf("%s would NOT apply to %s:\n", j.bundle_path, argv[0]);
                        for (size_t i = 0; i < n; i++) {
                                json_object *o = json_object_array_get_idx(j.reasons, i), *s, *m;

                                json_object_object_get_ex(o, "stage", &s);
                                json_object_object_get_ex(o, "reason", &m);
                                printf("  - [%s] %s\n", json_object_get_string(s), json_object_get_string(m));
                        }
                }
        } else if (r) {
                if (r == EXIT_REFUSED)
                        audit_refusal(&j);
                cli_error(c, r, "%s", j.first_error);
        }
        job_free(&j);
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

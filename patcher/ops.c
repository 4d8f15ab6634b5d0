/*
 * The apply/check pipeline as one call (include/hvpatch/ops.h): verify the signature,
 * parse the bundle from the verified bytes, authorize under the policy, plan while the
 * guest runs, then one pause window. check runs every stage it can and keeps every
 * reason why not; apply stops at the first.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hvpatch/area.h>
#include <hvpatch/kernel.h>
#include <hvpatch/linux.h>
#include <hvpatch/ops.h>
#include <hvpatch/patch.h>
#include <hvpatch/windows.h>

#include "common/error.h"
#include "common/util.h"
#include "patcher/ops-internal.h"

int hvp_exit_class(int err)
{
        switch (-err) {
        case EPERM:
        case EKEYREJECTED:
        case EKEYREVOKED:
        case ENOKEY:            /* signed by no trusted key, or not signed */
        case EACCES:
                return HVP_EXIT_REFUSED;
        case EBUSY:
        case EAGAIN:
                return HVP_EXIT_BUSY;
        case ESTALE:
        case EILSEQ:
                return HVP_EXIT_MISMATCH;
        default:
                return HVP_EXIT_ERROR;
        }
}

void hvp_audit_op(enum hvp_audit_action action, struct hvp_guest *g, const struct hvp_plan *p, int result,
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

struct job {
        const struct hvp_apply_request *req;
        struct hvp_apply_outcome *out;
        const char *state_dir;
        void *bytes;
        size_t len;
        struct hvp_policy *own_policy;
        const struct hvp_policy *policy;
        struct hvp_signature_info sig;
        struct hvp_bundle *bundle;
        struct hvp_guest *guest;
        struct hvp_mmu *mmu;
        const struct hvp_kernel *kernel;
        struct hvp_kernel *own_kernel;
        bool own_guest;
        struct hvp_record *rec;
        int lock;
        struct hvp_decision decision;
        struct hvp_plan *txn, *pure;
        struct hvp_health_watch *watch;
};

/* Note a failed stage. The first failure sets the exit class and first_error. */
static int stage_failed(struct job *j, const char *stage, int exit_class, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static int stage_failed(struct job *j, const char *stage, int exit_class, const char *fmt, ...)
{
        struct hvp_apply_outcome *o = j->out;
        char msg[HVP_OP_REASON_MAX];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (!o->exit_class) {
                o->exit_class = exit_class;
                snprintf(o->first_error, sizeof(o->first_error), "%s", msg);
        }
        if (o->n_reasons < HVP_OP_MAX_REASONS) {
                struct hvp_op_reason *r = &o->reasons[o->n_reasons++];

                snprintf(r->stage, sizeof(r->stage), "%s", stage);
                r->code[0] = '\0';
                r->exit_class = exit_class;
                snprintf(r->text, sizeof(r->text), "%s", msg);
        }
        return exit_class;
}

static int lib_failed(struct job *j, const char *stage, int err)
{
        return stage_failed(j, stage, hvp_exit_class(err), "%s",
                            hvp_last_error()[0] ? hvp_last_error() : strerror(-err));
}

/* Give the reason just noted its stable code. */
static void reason_code(struct job *j, const char *code)
{
        if (j->out->n_reasons)
                snprintf(j->out->reasons[j->out->n_reasons - 1].code, sizeof(j->out->reasons[0].code), "%s", code);
}

/* The policy: the caller's, else loaded; missing or unusable refuses (HVP_EXIT_REFUSED). */
static int open_policy(struct job *j)
{
        const char *path = j->req->policy_path ? j->req->policy_path : HVP_POLICY_DEFAULT_PATH;
        int r;

        if (j->req->policy) {
                j->policy = j->req->policy;
                return 0;
        }
        r = hvp_policy_load(path, &j->own_policy);
        if (r == -ENOENT)
                return stage_failed(j, "policy", HVP_EXIT_REFUSED,
                                    "no policy at %s: nothing may be applied without one (--policy FILE)", path);
        if (r < 0)
                /* The library's reason names the file. A policy that does not load allows nothing. */
                return stage_failed(j, "policy", HVP_EXIT_REFUSED, "unusable policy, nothing may be applied: %s",
                                    hvp_last_error()[0] ? hvp_last_error() : strerror(-r));
        j->policy = j->own_policy;
        return 0;
}

/* Signature and policy: the bytes verified are the bytes parsed. */
static int verify_stage(struct job *j)
{
        const struct hvp_apply_request *req = j->req;
        void *sig = NULL;
        size_t sig_len;
        char sig_path[HVP_PATH_MAX];
        int r;

        r = hvp_read_file_bounded(req->bundle_path, HVP_BUNDLE_MAX, &j->bytes, &j->len);
        if (r < 0)
                return lib_failed(j, "bundle", r) ? HVP_EXIT_ERROR : 0;
        if (req->insecure_unsigned) {
                hvp_info("insecure: %s goes with no signature or policy check", req->bundle_path);
                return 0;
        }
        r = open_policy(j);
        if (r)
                return r;
        if (req->sig_path)
                snprintf(sig_path, sizeof(sig_path), "%s", req->sig_path);
        else
                snprintf(sig_path, sizeof(sig_path), "%s.minisig", req->bundle_path);
        r = hvp_read_file_bounded(sig_path, HVP_MINISIGN_SIG_FILE_MAX, &sig, &sig_len);
        if (r == -ENOENT)
                return stage_failed(j, "signature", HVP_EXIT_REFUSED, "bundle is not signed: no %s", sig_path);
        if (r < 0)
                return lib_failed(j, "signature", r);
        r = hvp_policy_verify(j->policy, j->bytes, j->len, sig, sig_len, 0, &j->sig);
        free(sig);
        if (r < 0)
                return stage_failed(j, "signature", HVP_EXIT_REFUSED, "signature refused: %s", hvp_last_error());
        j->out->signed_ok = true;
        snprintf(j->out->key_name, sizeof(j->out->key_name), "%s", j->sig.key_name);
        return 0;
}

/* The verdict as an operator reads it: "reboot required", not "reboot-required". */
static const char *verdict_words(enum hvp_verdict v)
{
        return v == HVP_VERDICT_REBOOT_REQUIRED ? "reboot required" : hvp_verdict_name(v);
}

static void report_decision(struct job *j)
{
        for (size_t i = 0; i < j->decision.n_reasons; i++) {
                stage_failed(j, "policy", HVP_EXIT_REFUSED, "%s: %s", verdict_words(j->decision.verdict),
                             j->decision.reasons[i].text);
                reason_code(j, hvp_reason_name(j->decision.reasons[i].code));
        }
}

static struct hvp_bundle_facts bundle_facts(struct job *j, char *target)
{
        const struct hvp_manifest *m = &j->bundle->manifest;

        hvp_hex_encode(m->build_id, m->build_id_len, target);
        return (struct hvp_bundle_facts){ .patch_id = m->id, .series = m->series, .seq = m->sequence,
                                          .target_build_id = target,
                                          .signer = j->out->signed_ok ? j->sig.key_name : "(unverified)" };
}

/*
 * Secure Boot as the guest kernel recorded it at boot (boot_params.secure_boot: two
 * symbol reads, no BTF). Not booted through the EFI stub counts as off; unreadable or
 * unknown leaves the domain XML to decide.
 */
static enum hvp_kernel_secure_boot kernel_secure_boot(struct hvp_mmu *mmu, const struct hvp_kernel *k)
{
        struct hvp_boot_security bs;
        struct hvp_kmem km;

        if (!mmu)
                return HVP_KERNEL_SB_UNKNOWN;
        hvp_kmem_from_mmu(mmu, &km);
        if (hvp_linux_boot_security(&km, k, NULL, &bs) < 0) {
                hvp_debug("Secure Boot from the kernel's memory: %s", hvp_last_error());
                return HVP_KERNEL_SB_UNKNOWN;
        }
        switch (bs.secure_boot) {
        case HVP_SECURE_BOOT_ENABLED:
                return HVP_KERNEL_SB_ENABLED;
        case HVP_SECURE_BOOT_DISABLED:
        case HVP_SECURE_BOOT_UNSET:
                return HVP_KERNEL_SB_DISABLED;
        default:
                return HVP_KERNEL_SB_UNKNOWN;
        }
}

int hvp_guest_facts_gather(struct hvp_guest *g, struct hvp_mmu *mmu, const struct hvp_kernel *k,
                           const struct hvp_record *rec, char *build_id_hex,
                           struct hvp_applied_series **ret_applied, struct hvp_guest_facts *ret)
{
        const char *xml = hvp_guest_domain_xml(g);
        struct hvp_area areas[HVP_AREA_MAX_KINDS];
        struct hvp_guest_facts f = { 0 };
        struct hvp_applied_series *applied = NULL;
        size_t n_areas = 0;
        int r;

        if (xml) {
                r = hvp_guest_facts_from_domain_xml(xml, strlen(xml), &f);
                if (r < 0)
                        return hvp_fail_context(r, "reading the domain XML");
        } else {
                snprintf(f.name, sizeof(f.name), "%s", hvp_guest_name(g));
        }
        f.os = HVP_OS_LINUX;    /* what kernel discovery found, whatever the XML declares */
        f.kernel_secure_boot = kernel_secure_boot(mmu, k);
        hvp_hex_encode(k->build_id, k->build_id_len, build_id_hex);
        f.kernel_build_id = build_id_hex;
        /* any usable kind counts: the slack, the device, whatever hvp_area_list() knows */
        r = hvp_area_list(mmu, k, areas, HVP_ARRAY_SIZE(areas), &n_areas);
        if (r < 0)
                return hvp_fail_context(r, "looking for patch areas");
        f.patch_area = n_areas > 0;
        if (rec && rec->nr_entries) {
                applied = calloc(rec->nr_entries, sizeof(*applied));
                if (!applied)
                        return hvp_fail(-ENOMEM, "gathering the guest's facts: out of memory");
                for (size_t i = 0; i < rec->nr_entries; i++)
                        applied[i] = (struct hvp_applied_series){ rec->entries[i].plan->series,
                                                                  rec->entries[i].plan->seq };
        }
        f.applied = applied;
        f.n_applied = applied ? rec->nr_entries : 0;
        f.now = time(NULL);
        *ret_applied = applied;
        *ret = f;
        return 0;
}

static int authorize_stage(struct job *j)
{
        struct hvp_applied_series *applied = NULL;
        struct hvp_bundle_facts bf;
        struct hvp_guest_facts f;
        char target[2 * HVP_BUILD_ID_MAX + 1], build_id[2 * 64 + 1];
        int r;

        if (j->req->insecure_unsigned || !j->policy)    /* no policy: the policy stage has already failed */
                return 0;
        r = hvp_guest_facts_gather(j->guest, j->mmu, j->kernel, j->rec, build_id, &applied, &f);
        if (r < 0)
                return stage_failed(j, "policy", hvp_exit_class(r), "cannot gather the guest's facts: %s",
                                    hvp_last_error());
        bf = bundle_facts(j, target);
        r = hvp_policy_authorize(j->policy, &f, &bf, &j->decision);
        free(applied);
        j->out->max_pause_ms = j->decision.max_pause_ms;
        if (r == 0)
                return 0;
        if (r != -EPERM)
                return lib_failed(j, "policy", r);
        report_decision(j);
        return HVP_EXIT_REFUSED;
}

/*
 * The guest runs no Linux kernel: if it runs Windows, refuse as the policy would
 * (PatchGuard), and in any case, since hvpatch has no Windows patcher. 0 if not Windows.
 */
static int windows_refused(struct job *j)
{
        struct hvp_guest_facts facts = { 0 };
        struct hvp_bundle_facts bf;
        struct hvp_windows_kernel w;
        char target[2 * HVP_BUILD_ID_MAX + 1];
        const char *xml = hvp_guest_domain_xml(j->guest);
        bool patchguard = false;

        if (hvp_windows_attach(j->guest, &w, NULL) < 0)
                return 0;
        hvp_info("%s runs a Windows kernel (%s)", hvp_guest_name(j->guest), w.identity);
        if (j->policy && !j->req->insecure_unsigned) {
                if (!xml || hvp_guest_facts_from_domain_xml(xml, strlen(xml), &facts) < 0)
                        snprintf(facts.name, sizeof(facts.name), "%s", hvp_guest_name(j->guest));
                facts.os = HVP_OS_WINDOWS;
                facts.patchguard = HVP_PATCHGUARD_PRESENT;      /* unknown counts as present */
                facts.kernel_build_id = w.identity;
                facts.now = time(NULL);
                bf = bundle_facts(j, target);
                if (hvp_policy_authorize(j->policy, &facts, &bf, &j->decision) == -EPERM)
                        report_decision(j);
                for (size_t i = 0; i < j->decision.n_reasons; i++)
                        patchguard |= j->decision.reasons[i].code == HVP_REASON_PATCHGUARD;
        }
        if (!patchguard) {
                stage_failed(j, "policy", HVP_EXIT_REFUSED,
                             "Windows kernel images are guarded by PatchGuard: hvpatch refuses to patch them");
                reason_code(j, hvp_reason_name(HVP_REASON_PATCHGUARD));
        }
        return HVP_EXIT_REFUSED;
}

/* Open and attach the live domain unless the caller gave an attached guest. */
static int open_guest(struct job *j)
{
        const struct hvp_apply_request *req = j->req;
        struct hvp_live_options live = { 0 };
        struct hvp_kernel *k = NULL;
        unsigned vcpu;
        int r;

        if (req->guest && req->mmu && req->kernel) {
                j->guest = req->guest;
                j->mmu = req->mmu;
                j->kernel = req->kernel;
                return 0;
        }
        if (req->live)
                live = *req->live;
        r = hvp_guest_open_live(req->domain, &live, &j->guest);
        if (r < 0) {
                j->guest = NULL;
                return stage_failed(j, "guest", hvp_exit_class(r), "%s: %s", req->domain, hvp_last_error());
        }
        j->own_guest = true;
        r = hvp_linux_attach(j->guest, &j->mmu, &k, &vcpu);
        if (r < 0) {
                char why[HVP_OP_REASON_MAX];

                snprintf(why, sizeof(why), "%s", hvp_last_error());
                /* a refused patch area (shared, foreign, writable) is a refusal, exit 3 */
                if (!windows_refused(j))
                        stage_failed(j, "guest", hvp_exit_class(r), "%s: %s", req->domain, why);
                return -1;
        }
        j->kernel = j->own_kernel = k;
        return 0;
}

static void job_free(struct job *j)
{
        hvp_health_end(j->watch);
        hvp_plan_free(j->txn);
        hvp_plan_free(j->pure);
        hvp_record_free(j->rec);
        hvp_domain_unlock(j->lock);
        if (j->own_guest) {
                hvp_kernel_free(j->own_kernel);
                hvp_mmu_free(j->mmu);
                hvp_guest_free(j->guest);
        }
        hvp_bundle_free(j->bundle);
        hvp_policy_free(j->own_policy);
        free(j->bytes);
}

static void audit_refusal(struct job *j)
{
        struct hvp_audit_event ev = {
                .action = HVP_AUDIT_REFUSE,
                /* refusals before the guest is opened (signature, policy) name it as given */
                .domain = j->guest ? hvp_guest_name(j->guest) : j->req->domain,
                .bundle_id = j->bundle ? j->bundle->manifest.id : NULL,
                .seq = j->bundle ? j->bundle->manifest.sequence : 0,
                .key_name = j->out->signed_ok ? j->sig.key_name : NULL,
                .result = -EPERM,
                .reason = j->out->first_error,
                .pause_ms = -1,
        };

        hvp_audit(&ev);
}

/* The record as saved, into the domain's live metadata; a failure only warns. */
void hvp_ops_publish(struct hvp_guest *g, const char *state_dir)
{
        struct hvp_record *rec = NULL;
        int r = hvp_record_load(state_dir, hvp_guest_uuid(g), &rec);

        if (r == 0)
                r = hvp_record_publish(g, rec);
        if (r < 0 && r != -ENOTSUP)
                hvp_warn("%s: the record was not copied to the domain's metadata: %s", hvp_guest_name(g),
                         hvp_last_error());
        hvp_record_free(rec);
}

/* A bundle the health gate marked bad for this kernel build is refused until an operator clears it. */
static int marked_bad_stage(struct job *j)
{
        struct hvp_apply_outcome *o = j->out;
        char build_id[2 * 64 + 1], when[32] = "?";
        struct tm tm;
        int r;

        hvp_hex_encode(j->kernel->build_id, j->kernel->build_id_len, build_id);
        if (!j->kernel->build_id_len)
                return 0;       /* no build id, no bundle targets it: the policy refuses */
        r = hvp_bad_mark_find(j->state_dir, build_id, j->bundle->manifest.id, &o->bad_mark);
        if (r < 0)
                return lib_failed(j, "health", r);
        if (r == 0)
                return 0;
        o->marked_bad = true;
        if (o->bad_mark.at && gmtime_r(&o->bad_mark.at, &tm))
                strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        stage_failed(j, "health", HVP_EXIT_REFUSED,
                     "%s is marked bad for kernel build %s (health gate failed on %s at %s: %s); "
                     "'hvpatch bad clear %s %s' allows it again",
                     j->bundle->manifest.id, build_id, o->bad_mark.domain[0] ? o->bad_mark.domain : "?", when,
                     o->bad_mark.reason, build_id, j->bundle->manifest.id);
        reason_code(j, "marked-bad");
        return HVP_EXIT_REFUSED;
}

/*
 * After the apply: watch the guest (the lock still held, so nothing else patches it
 * meanwhile). On a failure: revert if the guest still runs, audit, mark the bundle bad
 * for this kernel build. The outcome says what was done; its class is HVP_EXIT_HEALTH.
 */
static void health_gate(struct job *j)
{
        const struct hvp_apply_request *req = j->req;
        struct hvp_apply_outcome *o = j->out;
        struct hvp_health_report *h = &o->health;
        struct hvp_run_state rs;
        struct hvp_bad_mark mark = { 0 };
        char build_id[2 * 64 + 1], words[HVP_OP_REASON_MAX];
        bool runs;
        int r;

        r = hvp_health_run(j->watch, j->pure, HVP_MIN(req->health_seconds, (unsigned)HVP_HEALTH_MAX_SECONDS),
                           req->health_stop, req->health_userdata, h);
        if (r < 0) {
                lib_failed(j, "health", r);
                return;
        }
        if (h->result != HVP_HEALTH_FAIL)
                return;
        /* A guest that crashed, stopped or was paused on an error is not written to. */
        r = hvp_guest_run_state(j->guest, &rs);
        runs = (r == 0 && rs.kind == HVP_RUN_RUNNING) || r == -ENOTSUP;
        if (runs && strcmp(h->kind, "rebooted") != 0) {
                struct hvp_revert_outcome rev;

                hvp_ops_revert_locked(j->guest, j->kernel, j->state_dir, o->patch_id, &rev);
                h->reverted = rev.reverted;
                if (!rev.reverted)
                        snprintf(h->revert_error, sizeof(h->revert_error), "%.500s", rev.error);
        } else {
                snprintf(h->revert_error, sizeof(h->revert_error), "not reverted: %s",
                         strcmp(h->kind, "rebooted") == 0 ? "the guest rebooted: its memory no longer holds the patch"
                         : r == 0 ? "the guest does not run" : "its state cannot be read");
        }
        o->applied = !h->reverted && strcmp(h->kind, "rebooted") != 0 && runs;
        {
                struct hvp_audit_event ev = {
                        .action = HVP_AUDIT_HEALTH, .domain = hvp_guest_name(j->guest), .bundle_id = o->patch_id,
                        .seq = o->seq, .key_name = o->signed_ok ? o->key_name : NULL, .result = -EIO,
                        .reason = words, .pause_ms = -1,
                };

                snprintf(words, sizeof(words), "%.480s; %.480s; marked bad", h->reason,
                         h->reverted ? "reverted" : h->revert_error);
                hvp_audit(&ev);
        }
        hvp_hex_encode(j->kernel->build_id, j->kernel->build_id_len, build_id);
        snprintf(mark.build_id, sizeof(mark.build_id), "%s", build_id);
        snprintf(mark.patch_id, sizeof(mark.patch_id), "%s", o->patch_id);
        snprintf(mark.series, sizeof(mark.series), "%s", o->series);
        mark.seq = o->seq;
        snprintf(mark.domain, sizeof(mark.domain), "%s", hvp_guest_name(j->guest));
        mark.at = time(NULL);
        snprintf(mark.kind, sizeof(mark.kind), "%s", h->kind);
        snprintf(mark.reason, sizeof(mark.reason), "%s", h->reason);
        r = j->kernel->build_id_len ? hvp_bad_mark_add(j->state_dir, &mark)
                                    : hvp_fail(-EINVAL, "the kernel has no build id");
        h->marked_bad = r == 0;
        if (r < 0)
                snprintf(h->mark_error, sizeof(h->mark_error), "%s", hvp_last_error());
        stage_failed(j, "health", HVP_EXIT_HEALTH, "health gate failed on %s after %.1f s: %s; %s%s%s",
                     hvp_guest_name(j->guest), h->seconds, h->reason,
                     h->reverted ? "reverted" : h->revert_error,
                     h->marked_bad ? "; marked bad for this kernel build" : "; NOT marked bad: ",
                     h->marked_bad ? "" : h->mark_error);
        if (h->reverted && o->replaced[0])
                hvp_warn("%s: %s, which %s replaced, is not applied any more (sync applies it again)",
                         hvp_guest_name(j->guest), o->replaced, o->patch_id);
}

/*
 * check's stack check, the look apply takes before its pause: a task with a return
 * address inside what the bundle changes now is a "stack" reason (exit 4: apply would
 * wait for it). A check that cannot run is a reason only when required.
 */
static void stack_probe(struct job *j)
{
        struct hvp_apply_outcome *o = j->out;
        struct hvp_ops_stack stack;
        int r;

        r = hvp_ops_stack_setup(j->guest, j->mmu, j->kernel, j->req->stack_check, &stack);
        if (r < 0) {
                lib_failed(j, "stack", r);
                return;
        }
        o->stack_check_on = stack.sc != NULL;
        snprintf(o->stack_check_off, sizeof(o->stack_check_off), "%s", stack.off_reason);
        if (stack.sc) {
                o->report.stack_checked = true;
                r = hvp_plan_stack_probe(j->txn, stack.sc, &o->stack_hit, &o->report.stack);
                o->stack_busy = r == -EBUSY;
                if (r < 0)
                        lib_failed(j, "stack", r);
        }
        hvp_ops_stack_free(&stack);
}

/* Every stage after the signature; returns when apply must stop (check goes on where it can). */
static void pipeline(struct job *j)
{
        const struct hvp_apply_request *req = j->req;
        struct hvp_apply_outcome *o = j->out;
        bool check = req->check_only;
        int r;

        r = verify_stage(j);
        if (r && (!check || !j->bytes))
                return;
        r = hvp_bundle_open_mem(j->bytes, j->len, &j->bundle);
        if (r < 0) {
                lib_failed(j, "bundle", r);
                return;
        }
        o->has_bundle = true;
        snprintf(o->patch_id, sizeof(o->patch_id), "%s", j->bundle->manifest.id);
        snprintf(o->series, sizeof(o->series), "%s", j->bundle->manifest.series);
        o->seq = j->bundle->manifest.sequence;
        o->nr_sites = j->bundle->manifest.nr_sites;
        hvp_info("bundle %s (series %s, seq %u) signed by %s", j->bundle->manifest.id, j->bundle->manifest.series,
                 j->bundle->manifest.sequence, o->signed_ok ? j->sig.key_name : "nobody");

        if (open_guest(j))
                return;
        snprintf(o->domain, sizeof(o->domain), "%s", hvp_guest_name(j->guest));
        if (!check) {
                r = hvp_domain_lock(j->state_dir, hvp_guest_uuid(j->guest), &j->lock);
                if (r < 0) {
                        lib_failed(j, "lock", r);
                        return;
                }
        }
        if (hvp_journal_exists(j->state_dir, hvp_guest_uuid(j->guest)) == 1) {
                stage_failed(j, "record", HVP_EXIT_ERROR,
                             "an interrupted transaction is pending: run 'hvpatch recover %s' first", req->domain);
                return;
        }
        r = hvp_record_load(j->state_dir, hvp_guest_uuid(j->guest), &j->rec);
        if (r == 0 && !check) {
                bool adopted;

                /* Restored or migrated here: the record came with the guest's metadata. */
                if (hvp_record_adopt(j->guest, j->kernel, j->state_dir, j->rec, &adopted) < 0)
                        hvp_warn("%s: records in the domain's metadata not used: %s", hvp_guest_name(j->guest),
                                 hvp_last_error());
        }
        if (r == 0) {
                bool changed = false;

                /* Patches the guest no longer holds (it rebooted) are history, not state. */
                r = hvp_record_prune(j->guest, j->kernel, j->rec, &changed);
                if (r == 0 && changed && !check)
                        r = hvp_record_save(j->state_dir, j->rec);
        }
        if (r < 0) {
                lib_failed(j, "record", r);
                return;
        }
        r = marked_bad_stage(j);
        if (r && !check)
                return;
        r = authorize_stage(j);
        if (r && !check)
                return;
        r = hvp_guest_check_idle(j->guest);
        if (r < 0 && (lib_failed(j, "guest", r), !check))
                return;
        r = hvp_plan_build(j->mmu, j->kernel, j->bundle, o->signed_ok ? j->sig.key_name : "", j->rec, req->area,
                           &j->txn, &j->pure, o->replaced);
        if (r < 0) {
                o->replaced[0] = '\0';
                /* A symbol the bundle needs is not in this kernel: the bundle does not fit it. */
                if (r == -ENOENT)
                        stage_failed(j, "plan", HVP_EXIT_MISMATCH, "%s", hvp_last_error());
                else
                        lib_failed(j, "plan", r);
                return;
        }
        o->planned = true;
        o->nr_writes = j->txn->nr_writes;
        if (check && !o->exit_class)
                stack_probe(j);
        if (check || o->exit_class)
                return;

        {
                struct hvp_apply_options opts = { .state_dir = j->state_dir };
                struct hvp_commit commit = { .add = j->pure, .remove_id = o->replaced[0] ? o->replaced : NULL };
                struct hvp_ops_stack stack;

                if (req->health_seconds) {
                        /* what the gate compares with: taken before the apply, outside the window */
                        r = hvp_health_begin(j->guest, j->mmu, j->kernel, &j->watch);
                        if (r < 0) {
                                lib_failed(j, "health", r);
                                return;
                        }
                }
                r = hvp_ops_stack_setup(j->guest, j->mmu, j->kernel, req->stack_check, &stack);
                if (r < 0) {
                        lib_failed(j, "stack", r);
                        return;
                }
                o->stack_check_on = stack.sc != NULL;
                snprintf(o->stack_check_off, sizeof(o->stack_check_off), "%s", stack.off_reason);
                opts.stack_check = stack.sc;
                hvp_info("applying %zu writes", j->txn->nr_writes);
                r = hvp_plan_apply(j->guest, j->txn, &commit, &opts, &o->report);
                hvp_ops_stack_free(&stack);
                hvp_audit_op(HVP_AUDIT_APPLY, j->guest, j->pure, r, r == 0 ? o->report.pause_ms : -1);
                if (r < 0) {
                        o->stack_busy = r == -EBUSY && o->report.stack_busy;
                        o->stack_hit = o->report.stack_hit;
                        memset(&o->report, 0, sizeof(o->report));
                        lib_failed(j, "apply", r);
                        return;
                }
        }
        o->applied = true;
        hvp_ops_publish(j->guest, j->state_dir);
        o->write_path = hvp_guest_write_path(j->guest);
        o->pause_exceeded = j->decision.max_pause_ms && o->report.pause_ms > j->decision.max_pause_ms;
        if (j->watch)
                health_gate(j);
}

int hvp_op_apply(const struct hvp_apply_request *req, struct hvp_apply_outcome *ret)
{
        struct job j = { .req = req, .out = ret, .lock = -1 };

        if (!req || !ret || !req->bundle_path || !req->domain)
                return hvp_fail(-EINVAL, "hvp_op_apply: no request, bundle or domain");
        memset(ret, 0, sizeof(*ret));
        j.state_dir = req->state_dir ? req->state_dir : HVP_STATE_DIR;
        pipeline(&j);
        if (!req->check_only && ret->exit_class == HVP_EXIT_REFUSED)
                audit_refusal(&j);
        job_free(&j);
        return 0;
}

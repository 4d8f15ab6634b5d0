/*
 * The authorization decision: may this bundle be applied to this guest now?
 * Every check runs and every failing one adds a reason, so that `hvpatch check`
 * can tell an operator everything to fix at once.
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/error.h"
#include "common/util.h"
#include "policy/internal.h"

static const char *const verdict_names[] = {
        [HVP_VERDICT_ALLOW] = "allow",
        [HVP_VERDICT_REFUSE] = "refuse",
        [HVP_VERDICT_REBOOT_REQUIRED] = "reboot-required",
        [HVP_VERDICT_UNMANAGED] = "unmanaged",
};

static const char *const reason_names[] = {
        [HVP_REASON_NO_GROUP] = "no-group",
        [HVP_REASON_UNKNOWN_KERNEL] = "unknown-kernel",
        [HVP_REASON_OLD_BASELINE] = "old-baseline",
        [HVP_REASON_NOT_UEFI] = "not-uefi",
        [HVP_REASON_NO_SECURE_BOOT] = "no-secure-boot",
        [HVP_REASON_WRONG_OS] = "wrong-os",
        [HVP_REASON_NO_PATCH_AREA] = "no-patch-area",
        [HVP_REASON_PATCHGUARD] = "patchguard",
        [HVP_REASON_OUTSIDE_WINDOW] = "outside-window",
        [HVP_REASON_TARGET_MISMATCH] = "target-mismatch",
        [HVP_REASON_SIGNER_UNKNOWN] = "signer-unknown",
        [HVP_REASON_SIGNER_NOT_ALLOWED] = "signer-not-allowed",
        [HVP_REASON_NOT_NEWER] = "not-newer",
        [HVP_REASON_ROLLBACK] = "rollback",
        [HVP_REASON_BAD_FACTS] = "bad-facts",
};

const char *hvp_verdict_name(enum hvp_verdict v)
{
        if ((unsigned)v < HVP_ARRAY_SIZE(verdict_names) && verdict_names[v])
                return verdict_names[v];
        return "unknown";
}

const char *hvp_reason_name(enum hvp_reason_code c)
{
        if ((unsigned)c < HVP_ARRAY_SIZE(reason_names) && reason_names[c])
                return reason_names[c];
        return "unknown";
}

static const char *os_name(enum hvp_os os)
{
        return os == HVP_OS_LINUX ? "linux" : os == HVP_OS_WINDOWS ? "windows" : "unknown";
}

__attribute__((format(printf, 3, 4)))
static void add_reason(struct hvp_decision *d, enum hvp_reason_code code, const char *fmt, ...)
{
        struct hvp_reason *r;
        va_list ap;

        if (d->n_reasons >= HVP_DECISION_MAX_REASONS)
                return;
        r = &d->reasons[d->n_reasons++];
        r->code = code;
        va_start(ap, fmt);
        vsnprintf(r->text, sizeof(r->text), fmt, ap);
        va_end(ap);
}

static bool has_reason(const struct hvp_decision *d, enum hvp_reason_code code)
{
        for (size_t i = 0; i < d->n_reasons; i++)
                if (d->reasons[i].code == code)
                        return true;
        return false;
}

static bool group_selects(const struct group *g, const struct hvp_guest_facts *f)
{
        size_t n_groups = HVP_MIN(f->n_groups, (size_t)HVP_FACTS_MAX_GROUPS);

        for (size_t i = 0; i < g->name_globs.n; i++)
                if (f->name[0] && fnmatch(g->name_globs.v[i], f->name, 0) == 0)
                        return true;
        for (size_t i = 0; i < g->uuids.n; i++)
                if (f->uuid[0] && strcasecmp(g->uuids.v[i], f->uuid) == 0)
                        return true;
        for (size_t i = 0; i < g->metadata.n; i++)
                for (size_t k = 0; k < n_groups; k++)
                        if (strcmp(g->metadata.v[i], f->groups[k]) == 0)
                                return true;
        return false;
}

const struct group *hvp_policy_find_group(const struct hvp_policy *p, const struct hvp_guest_facts *f)
{
        for (size_t i = 0; i < p->n_groups; i++)
                if (group_selects(&p->groups[i], f))
                        return &p->groups[i];
        return NULL;
}

static void check_requirements(const struct group *g, const struct hvp_guest_facts *f, struct hvp_decision *d)
{
        if (g->need_uefi && !f->firmware_uefi)
                add_reason(d, HVP_REASON_NOT_UEFI, "group \"%s\" requires UEFI firmware; the guest boots BIOS",
                           g->name);
        if (g->need_secure_boot && !f->secure_boot)
                add_reason(d, HVP_REASON_NO_SECURE_BOOT, "group \"%s\" requires Secure Boot; the guest has none",
                           g->name);
        else if (g->need_secure_boot && f->direct_kernel)
                add_reason(d, HVP_REASON_NO_SECURE_BOOT,
                           "group \"%s\" requires Secure Boot; the guest's kernel is loaded by QEMU (<os><kernel>), "
                           "which OVMF starts unverified when its signature fails", g->name);
        else if (g->need_secure_boot && f->kernel_secure_boot == HVP_KERNEL_SB_DISABLED)
                add_reason(d, HVP_REASON_NO_SECURE_BOOT,
                           "group \"%s\" requires Secure Boot; the domain XML enables it, but the guest kernel "
                           "booted without it (boot_params.secure_boot in its memory)", g->name);
        if (g->need_os != HVP_OS_UNKNOWN && f->os != g->need_os)
                add_reason(d, HVP_REASON_WRONG_OS, "group \"%s\" is for %s guests; this one runs %s", g->name,
                           os_name(g->need_os), os_name(f->os));
        if (g->need_patch_area && !f->patch_area)
                add_reason(d, HVP_REASON_NO_PATCH_AREA, "group \"%s\" requires a patch area; the guest has none",
                           g->name);
        if (f->os == HVP_OS_WINDOWS && f->patchguard != HVP_PATCHGUARD_ABSENT && !g->allow_patchguard)
                add_reason(d, HVP_REASON_PATCHGUARD,
                           "the Windows kernel is guarded by PatchGuard: changing its code triggers bug check "
                           "0x109 (allow only with <patchguard allow=\"yes\"/>)");
}

static void check_baseline(const struct group *g, const struct hvp_guest_facts *f, struct hvp_decision *d)
{
        if (!f->kernel_build_id || !f->kernel_build_id[0]) {
                add_reason(d, HVP_REASON_UNKNOWN_KERNEL, "the running kernel's build id is unknown");
                return;
        }
        for (size_t i = 0; i < g->n_baselines; i++) {
                const struct baseline *b = &g->baselines[i];

                for (size_t k = 0; k < b->build_ids.n; k++) {
                        if (strcasecmp(b->build_ids.v[k], f->kernel_build_id) != 0)
                                continue;
                        memcpy(d->baseline, b->name, sizeof(d->baseline));
                        if (!b->current)
                                add_reason(d, HVP_REASON_OLD_BASELINE,
                                           "the guest runs baseline \"%s\", not the current one: reboot it into "
                                           "the current baseline",
                                           b->name);
                        return;
                }
        }
        add_reason(d, HVP_REASON_UNKNOWN_KERNEL, "kernel build id %.64s is in no baseline of group \"%s\"",
                   f->kernel_build_id, g->name);
}

static void check_windows(const struct group *g, time_t now, struct hvp_decision *d)
{
        char failure[HVP_REASON_TEXT_MAX] = "", when[32] = "?";
        struct tm tm;

        for (size_t i = 0; i < g->n_windows; i++) {
                int r = hvp_window_contains(&g->windows[i], now);

                if (r > 0)
                        return;
                if (r < 0 && !failure[0])
                        snprintf(failure, sizeof(failure), " (%s)", hvp_last_error());
        }
        if (gmtime_r(&now, &tm))
                strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm);
        add_reason(d, HVP_REASON_OUTSIDE_WINDOW, "now (%s) is outside every maintenance window of group \"%s\"%s",
                   when, g->name, failure);
}

static bool glob_ok(const char *glob, const char *s)
{
        return !glob || (s && fnmatch(glob, s, 0) == 0);
}

static void check_signer(const struct hvp_policy *p, const struct hvp_bundle_facts *b, struct hvp_decision *d)
{
        for (size_t i = 0; i < p->n_keys; i++) {
                const struct key_rules *rules = &p->rules[i];

                if (strcmp(p->keys[i].name, b->signer) != 0)
                        continue;
                for (size_t k = 0; k < rules->n_may; k++)
                        if (glob_ok(rules->may[k].patch_id, b->patch_id) && glob_ok(rules->may[k].series, b->series))
                                return;
                add_reason(d, HVP_REASON_SIGNER_NOT_ALLOWED,
                           "key \"%s\" may not sign patch \"%.64s\" of series \"%.64s\"", b->signer, b->patch_id,
                           b->series);
                return;
        }
        add_reason(d, HVP_REASON_SIGNER_UNKNOWN, "the signer \"%.64s\" is not a key of this policy", b->signer);
}

static void check_sequence(const struct hvp_guest_facts *f, const struct hvp_bundle_facts *b, struct hvp_decision *d)
{
        for (size_t i = 0; i < f->n_applied; i++) {
                const struct hvp_applied_series *a = &f->applied[i];

                if (!a->series || strcmp(a->series, b->series) != 0)
                        continue;
                if (a->seq == b->seq) {
                        add_reason(d, HVP_REASON_NOT_NEWER, "sequence %llu of series \"%.64s\" is already applied",
                                   (unsigned long long)b->seq, b->series);
                        return;
                }
                if (a->seq > b->seq) {
                        add_reason(d, HVP_REASON_ROLLBACK,
                                   "sequence %llu is older than the applied %llu of series \"%.64s\" (no rollback)",
                                   (unsigned long long)b->seq, (unsigned long long)a->seq, b->series);
                        return;
                }
        }
}

/* Group, baseline and requirements: what is true of the guest whatever the bundle. */
static void assess_guest(const struct hvp_policy *p, const struct hvp_guest_facts *facts, struct hvp_decision *d,
                         bool with_windows)
{
        const struct group *g = hvp_policy_find_group(p, facts);

        if (!g) {
                add_reason(d, HVP_REASON_NO_GROUP, "no group of the policy selects guest \"%.64s\"", facts->name);
                return;
        }
        memcpy(d->group, g->name, sizeof(d->group));
        d->max_pause_ms = g->max_pause_ms;
        check_baseline(g, facts, d);
        check_requirements(g, facts, d);
        if (with_windows)
                check_windows(g, facts->now, d);
}

/* The gravest verdict the reasons call for. */
static void set_verdict(struct hvp_decision *d)
{
        if (has_reason(d, HVP_REASON_NO_GROUP) || has_reason(d, HVP_REASON_UNKNOWN_KERNEL))
                d->verdict = HVP_VERDICT_UNMANAGED;
        else if (has_reason(d, HVP_REASON_OLD_BASELINE))
                d->verdict = HVP_VERDICT_REBOOT_REQUIRED;
        else if (d->n_reasons)
                d->verdict = HVP_VERDICT_REFUSE;
        else
                d->verdict = HVP_VERDICT_ALLOW;
}

int hvp_policy_assess(const struct hvp_policy *p, const struct hvp_guest_facts *facts, struct hvp_decision *ret)
{
        struct hvp_decision d = { 0 };

        if (!p || !facts || !ret)
                return hvp_fail(-EINVAL, "missing argument");
        assess_guest(p, facts, &d, false);
        set_verdict(&d);
        *ret = d;
        return 0;
}

int hvp_policy_authorize(const struct hvp_policy *p, const struct hvp_guest_facts *facts,
                         const struct hvp_bundle_facts *bundle, struct hvp_decision *ret)
{
        struct hvp_decision d = { 0 };
        bool bundle_ok;

        if (!p || !facts || !bundle || !ret || (facts->n_applied && !facts->applied))
                return hvp_fail(-EINVAL, "missing argument");

        bundle_ok = bundle->patch_id && bundle->series && bundle->target_build_id && bundle->signer;
        if (!bundle_ok)
                add_reason(&d, HVP_REASON_BAD_FACTS, "the bundle's patch id, series, target or signer is missing");
        assess_guest(p, facts, &d, true);
        if (bundle_ok) {
                if (!facts->kernel_build_id || strcasecmp(bundle->target_build_id, facts->kernel_build_id) != 0)
                        add_reason(&d, HVP_REASON_TARGET_MISMATCH,
                                   "the bundle is built for kernel %.64s; the guest runs %.64s",
                                   bundle->target_build_id, facts->kernel_build_id ? facts->kernel_build_id : "(unknown)");
                check_signer(p, bundle, &d);
                check_sequence(facts, bundle, &d);
        }
        set_verdict(&d);
        *ret = d;
        if (d.verdict != HVP_VERDICT_ALLOW)
                return hvp_fail(-EPERM, "%s: %s", hvp_verdict_name(d.verdict), d.reasons[0].text);
        return 0;
}

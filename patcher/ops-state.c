/*
 * A guest's patch state and compliance, record pruning and revert (include/hvpatch/ops.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hvpatch/kernel.h>
#include <hvpatch/ops.h>
#include <hvpatch/paging.h>

#include "common/error.h"
#include "common/util.h"
#include "patcher/ops-internal.h"

const char *hvp_patch_state_name(enum hvp_patch_state s)
{
        switch (s) {
        case HVP_PATCH_APPLIED:
                return "applied";
        case HVP_PATCH_NOT_APPLIED:
                return "not-applied";
        case HVP_PATCH_FOREIGN:
                return "foreign";
        case HVP_PATCH_DROPPED:
                return "dropped";
        }
        return "?";
}

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

enum hvp_patch_state hvp_patch_state(struct hvp_guest *g, struct hvp_mmu *mmu, const struct hvp_kernel *k,
                                     const struct hvp_plan *p)
{
        size_t n_new = 0, n_old = 0;

        /* A reboot brings a new kernel instance: another KASLR base or another build. */
        if (p->kernel_base != k->base || p->build_id_len != k->build_id_len ||
            memcmp(p->build_id, k->build_id, k->build_id_len) != 0)
                return HVP_PATCH_DROPPED;
        for (size_t i = 0; i < p->nr_writes; i++) {
                enum hvp_site_state st;

                if (hvp_write_state(g, &p->writes[i], &st) < 0)
                        return HVP_PATCH_FOREIGN;
                n_new += st == HVP_SITE_NEW;
                n_old += st == HVP_SITE_OLD;
        }
        if (n_old == p->nr_writes && n_new != p->nr_writes)
                return HVP_PATCH_NOT_APPLIED;
        if (n_new != p->nr_writes)
                return HVP_PATCH_FOREIGN;
        for (size_t i = 0; mmu && i < p->nr_writes; i++)
                if (remapped(mmu, &p->writes[i]))
                        return HVP_PATCH_FOREIGN;
        return HVP_PATCH_APPLIED;
}

int hvp_record_prune(struct hvp_guest *g, const struct hvp_kernel *k, struct hvp_record *rec, bool *ret_changed)
{
        bool changed = false, released = false;
        int r;

        for (size_t i = 0; i < rec->nr_entries;) {
                enum hvp_patch_state s = hvp_patch_state(g, NULL, k, rec->entries[i].plan);

                if (s == HVP_PATCH_DROPPED || s == HVP_PATCH_NOT_APPLIED) {
                        struct hvp_commit drop = { .remove_id = rec->entries[i].plan->patch_id };

                        r = hvp_record_commit(rec, &drop, 0);
                        if (r < 0)
                                return r;
                        changed = true;
                        continue;
                }
                i++;
        }
        /* Retired area code of an earlier boot is history too (apply.h). */
        r = hvp_record_release_retired(g, k, rec, &released);
        if (r < 0)
                return r;
        *ret_changed = changed || released;
        return 0;
}

int hvp_op_state(struct hvp_guest *g, struct hvp_mmu *mmu, const struct hvp_kernel *k, const char *state_dir,
                 const struct hvp_policy *policy, struct hvp_guest_state **ret)
{
        struct hvp_guest_state *s;
        int r;

        if (!g || !mmu || !k || !ret)
                return hvp_fail(-EINVAL, "hvp_op_state: no guest");
        state_dir = state_dir ? state_dir : HVP_STATE_DIR;
        s = calloc(1, sizeof(*s));
        if (!s)
                return hvp_fail(-ENOMEM, "out of memory");
        r = hvp_record_load(state_dir, hvp_guest_uuid(g), &s->rec);
        if (r < 0) {
                r = hvp_fail_context(r, "reading the record");
                goto fail;
        }
        if (s->rec->nr_entries == 0 && s->rec->nr_retired == 0) {
                struct hvp_record *meta = NULL;
                int lock = -1;
                bool adopted;

                /* Restored or migrated here: the record came with the guest's metadata. */
                if (hvp_record_from_metadata(g, &meta) == 0 && meta && (meta->nr_entries || meta->nr_retired) &&
                    hvp_domain_lock(state_dir, hvp_guest_uuid(g), &lock) == 0 &&
                    hvp_record_adopt(g, k, state_dir, s->rec, &adopted) < 0)
                        hvp_warn("%s: records in the domain's metadata not used: %s", hvp_guest_name(g),
                                 hvp_last_error());
                hvp_domain_unlock(lock);
                hvp_record_free(meta);
        }
        s->n_patches = s->rec->nr_entries;
        s->patches = calloc(HVP_MAX(s->n_patches, 1), sizeof(*s->patches));
        if (!s->patches) {
                r = hvp_fail(-ENOMEM, "out of memory");
                goto fail;
        }
        for (size_t i = 0; i < s->n_patches; i++)
                s->patches[i] = (struct hvp_patch_status){
                        &s->rec->entries[i], hvp_patch_state(g, mmu, k, s->rec->entries[i].plan) };
        s->interrupted = hvp_journal_exists(state_dir, hvp_guest_uuid(g)) == 1;
        hvp_hex_encode(k->build_id, k->build_id_len, s->build_id);
        if (policy) {
                struct hvp_applied_series *applied = NULL;
                struct hvp_guest_facts f;
                char bid[2 * 64 + 1];

                r = hvp_guest_facts_gather(g, mmu, k, s->rec, bid, &applied, &f);
                if (r < 0)
                        goto fail;
                hvp_policy_assess(policy, &f, &s->compliance);
                free(applied);
                s->have_policy = true;
        }
        *ret = s;
        return 0;
fail:
        hvp_guest_state_free(s);
        return r;
}

void hvp_guest_state_free(struct hvp_guest_state *s)
{
        if (!s)
                return;
        free(s->patches);
        hvp_record_free(s->rec);
        free(s);
}

/* Note the outcome of a revert. */
static int revert_failed(struct hvp_revert_outcome *o, int exit_class, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int revert_failed(struct hvp_revert_outcome *o, int exit_class, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(o->error, sizeof(o->error), fmt, ap);
        va_end(ap);
        o->exit_class = exit_class;
        return 0;
}

static int lib_text(int err, const char *what, struct hvp_revert_outcome *o)
{
        return revert_failed(o, hvp_exit_class(err), "%s: %s", what,
                             hvp_last_error()[0] ? hvp_last_error() : strerror(-err));
}

static int revert_locked(struct hvp_guest *g, const struct hvp_kernel *k, const char *state_dir,
                         const char *id, struct hvp_revert_outcome *o)
{
        struct hvp_apply_options opts = { .state_dir = state_dir };
        struct hvp_record *rec = NULL;
        struct hvp_record_entry *e;
        struct hvp_plan *inv = NULL;
        int r;

        if (hvp_journal_exists(state_dir, hvp_guest_uuid(g)) == 1)
                return revert_failed(o, HVP_EXIT_ERROR,
                                     "an interrupted transaction is pending: run 'hvpatch recover %s' first",
                                     hvp_guest_name(g));
        r = hvp_record_load(state_dir, hvp_guest_uuid(g), &rec);
        if (r < 0)
                return lib_text(r, "reading the record", o);
        e = hvp_record_find(rec, id);
        if (!e) {
                revert_failed(o, HVP_EXIT_ERROR, "patch '%s' is not applied to %s", id, hvp_guest_name(g));
                goto out;
        }
        switch (hvp_patch_state(g, NULL, k, e->plan)) {
        case HVP_PATCH_APPLIED:
                break;
        case HVP_PATCH_DROPPED:
        case HVP_PATCH_NOT_APPLIED: {
                struct hvp_commit drop = { .remove_id = id };

                /* Nothing to restore: the guest rebooted or the bytes are original again. */
                r = hvp_record_commit(rec, &drop, 0);
                if (r == 0)
                        r = hvp_record_save(state_dir, rec);
                if (r < 0) {
                        char what[256];

                        snprintf(what, sizeof(what),
                                 "patch '%s' is no longer in memory, but dropping its record failed", id);
                        lib_text(r, what, o);
                        goto out;
                }
                o->dropped = true;
                hvp_ops_publish(g, state_dir);
                revert_failed(o, HVP_EXIT_ERROR,
                              "patch '%s' is no longer in memory (guest rebooted?); dropped its record", id);
                goto out;
        }
        case HVP_PATCH_FOREIGN:
                revert_failed(o, HVP_EXIT_MISMATCH,
                              "patch '%s': memory holds neither the patch nor the original bytes: not touching it",
                              id);
                goto out;
        }
        r = hvp_plan_revert_txn(e->plan, &inv);        /* sites only: the area code is retired */
        if (r == 0) {
                struct hvp_commit commit = { .remove_id = id };
                struct hvp_ops_stack stack;

                /* The entry sites go back: no task may hold an address inside them either. */
                r = hvp_ops_stack_setup(g, NULL, k, HVP_STACK_CHECK_AUTO, &stack);
                o->stack_check_on = stack.sc != NULL;
                snprintf(o->stack_check_off, sizeof(o->stack_check_off), "%s", stack.off_reason);
                opts.stack_check = stack.sc;
                hvp_info("reverting %s (%zu writes)", id, inv->nr_writes);
                o->nr_writes = inv->nr_writes;
                if (r == 0)
                        r = hvp_plan_apply(g, inv, &commit, &opts, &o->report);
                hvp_ops_stack_free(&stack);
        }
        hvp_audit_op(HVP_AUDIT_REVERT, g, e->plan, r, r == 0 ? o->report.pause_ms : -1);
        if (r < 0) {
                o->stack_busy = r == -EBUSY && o->report.stack_busy;
                o->stack_hit = o->report.stack_hit;
                memset(&o->report, 0, sizeof(o->report));
                lib_text(r, "revert", o);
                goto out;
        }
        o->reverted = true;
        hvp_ops_publish(g, state_dir);
out:
        hvp_plan_free(inv);
        hvp_record_free(rec);
        return 0;
}

int hvp_op_revert(struct hvp_guest *g, const struct hvp_kernel *k, const char *state_dir, const char *patch_id,
                  struct hvp_revert_outcome *ret)
{
        int r, lock = -1;

        if (!g || !k || !patch_id || !ret)
                return hvp_fail(-EINVAL, "hvp_op_revert: no guest or patch id");
        memset(ret, 0, sizeof(*ret));
        state_dir = state_dir ? state_dir : HVP_STATE_DIR;
        r = hvp_domain_lock(state_dir, hvp_guest_uuid(g), &lock);
        if (r < 0)
                return lib_text(r, "locking the domain", ret);
        revert_locked(g, k, state_dir, patch_id, ret);
        hvp_domain_unlock(lock);
        return 0;
}

/* For the health gate (patcher/ops.c): revert with the domain's lock already held. */
void hvp_ops_revert_locked(struct hvp_guest *g, const struct hvp_kernel *k, const char *state_dir, const char *id,
                           struct hvp_revert_outcome *o)
{
        memset(o, 0, sizeof(*o));
        revert_locked(g, k, state_dir, id, o);
}

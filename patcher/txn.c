/*
 * The pause-window transaction. Everything that can be done while the guest runs
 * is done by the caller (the plan) or before the pause here (a first check of the
 * old bytes, the journal); inside the window there is one scatter read to re-check,
 * the writes, one scatter read to verify, and the resume.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include <hvpatch/apply.h>

#include "common/error.h"
#include "common/util.h"
#include "patcher/ops-internal.h"
#include "patcher/record.h"
#include "patcher/retire.h"

static void sleep_ms(unsigned ms)
{
        struct timespec t = { ms / 1000, (long)(ms % 1000) * 1000000L };

        nanosleep(&t, NULL);
}

/* A timing probe of the window (debug log): time since the previous one. */
static double probe(double since, const char *what)
{
        double now = hvp_now_ms();

        hvp_debug("window: %s %.3f ms", what, now - since);
        return now;
}

/* Read every write's current bytes in one scatter read into bufs (concatenated). */
static int read_current(struct hvp_guest *g, const struct hvp_plan *p, uint8_t *bufs)
{
        struct hvp_phys_iov *iov;
        size_t off = 0;
        int r;

        iov = calloc(p->nr_writes ? p->nr_writes : 1, sizeof(*iov));
        if (!iov)
                return -ENOMEM;
        for (size_t i = 0; i < p->nr_writes; i++) {
                iov[i] = (struct hvp_phys_iov){ p->writes[i].gpa, bufs + off, p->writes[i].len };
                off += p->writes[i].len;
        }
        r = hvp_guest_read_phys_v(g, iov, p->nr_writes);
        free(iov);
        return r;
}

static size_t plan_bytes(const struct hvp_plan *p)
{
        size_t n = 0;

        for (size_t i = 0; i < p->nr_writes; i++)
                n += p->writes[i].len;
        return n;
}

/* Compare current bytes with each write's old (want_new false) or new bytes. */
static int compare(const struct hvp_plan *p, const uint8_t *cur, bool want_new)
{
        size_t off = 0;

        for (size_t i = 0; i < p->nr_writes; i++) {
                const struct hvp_write *w = &p->writes[i];

                if (memcmp(cur + off, want_new ? w->new : w->old, w->len) != 0)
                        return hvp_fail(want_new ? -EIO : -ESTALE,
                                        want_new ? "read-back at 0x%llx does not match what was written"
                                                 : "bytes at 0x%llx changed since the plan was made",
                                        (unsigned long long)w->va);
                off += w->len;
        }
        return 0;
}

static bool rips_needed(const struct hvp_plan *p)
{
        bool needed = false;

        for (size_t i = 0; i < p->nr_writes; i++)
                needed |= p->writes[i].check_rip;
        return needed;
}

/* Is some vCPU strictly inside a multi-instruction range? Needs registers read in this pause. */
static int check_rips(struct hvp_guest *g, const struct hvp_plan *p)
{
        if (!rips_needed(p))
                return 0;
        for (unsigned v = 0; v < hvp_guest_vcpu_count(g); v++) {
                struct hvp_vcpu_regs regs;

                if (hvp_guest_vcpu_regs(g, v, &regs) < 0)
                        continue;
                for (size_t i = 0; i < p->nr_writes; i++) {
                        const struct hvp_write *w = &p->writes[i];

                        if (w->check_rip && regs.rip > w->va && regs.rip < w->va + w->len)
                                return hvp_fail(-EBUSY, "vCPU %u is at 0x%llx, inside the range being replaced",
                                                v, (unsigned long long)regs.rip);
                }
        }
        return 0;
}

/*
 * What the stack check guards: the kernel writes of the window (patch-area code is
 * new, or retired and left in place: no task can be inside what changes there).
 */
static int stack_ranges(const struct hvp_plan *p, struct hvp_stack_range **ret, size_t *ret_n)
{
        struct hvp_stack_range *rg = calloc(p->nr_writes ? p->nr_writes : 1, sizeof(*rg));
        size_t n = 0;

        if (!rg)
                return -ENOMEM;
        for (size_t i = 0; i < p->nr_writes; i++) {
                const struct hvp_write *w = &p->writes[i];

                if (w->area)
                        continue;
                if (!w->guard_len) {
                        rg[n++] = (struct hvp_stack_range){ w->va, w->va + w->len };
                        continue;
                }
                /*
                 * consistency="function": the whole function. Its range ends one byte short of
                 * the next symbol: a value equal to that address is a pointer to the next
                 * function (a callback kept on a stack), not a return into this one (only a
                 * noreturn call can end a function, and its task never comes back).
                 */
                rg[n] = (struct hvp_stack_range){ w->guard_start, w->guard_start + w->guard_len - 1 };
                /* Several writes of one site (split at a page) guard the same function once. */
                if (n == 0 || rg[n - 1].start != rg[n].start || rg[n - 1].end != rg[n].end)
                        n++;
        }
        *ret = rg;
        *ret_n = n;
        return 0;
}

/* --- append-only areas (include/hvpatch/area.h: the read-only "nvdimm" area) ----- */

/* A write into the guest's append-only range. */
static bool ao_write(const struct hvp_guest *g, const struct hvp_write *w, uint8_t *ret_filler)
{
        return w->area && hvp_guest_append_only(g, w->gpa, w->len, ret_filler);
}

static bool all_filler(const uint8_t *b, size_t len, uint8_t filler)
{
        for (size_t i = 0; i < len; i++)
                if (b[i] != filler)
                        return false;
        return true;
}

/*
 * Split txn: writes adding code to an append-only area go to *ret_ahead (written
 * before the pause: no jump reaches those bytes yet, so they never ran), the other
 * writes to *ret_window. Writes that would erase code there (a revert, the swap of
 * a cumulative patch) are dropped: the code stays, retired, unreachable once its
 * jump is gone, and a vCPU still inside it finishes safely. A write that would
 * change code there into other code is refused (-EEXIST): it would run half-old.
 */
static int split_append_only(struct hvp_guest *g, const struct hvp_plan *txn, struct hvp_plan **ret_ahead,
                             struct hvp_plan **ret_window)
{
        struct hvp_plan *ahead = hvp_plan_new_like(txn), *win = hvp_plan_new_like(txn);
        int r = ahead && win ? 0 : -ENOMEM;

        for (size_t i = 0; i < txn->nr_writes && r == 0; i++) {
                const struct hvp_write *w = &txn->writes[i];
                struct hvp_plan *to = win;
                uint8_t filler;

                if (ao_write(g, w, &filler)) {
                        if (all_filler(w->new, w->len, filler))
                                continue;               /* retire, never erase */
                        if (!all_filler(w->old, w->len, filler)) {
                                r = hvp_fail(-EEXIST, "0x%llx: code in the append-only patch area would be rewritten",
                                             (unsigned long long)w->va);
                                break;
                        }
                        to = ahead;
                }
                r = hvp_plan_add_write(to, w->va, w->gpa, w->old, w->new, w->len, w->check_rip, w->area, w->site);
                if (r == 0) {
                        to->writes[to->nr_writes - 1].guard_start = w->guard_start;
                        to->writes[to->nr_writes - 1].guard_len = w->guard_len;
                }
        }
        if (r < 0) {
                hvp_plan_free(ahead);
                hvp_plan_free(win);
                return r;
        }
        *ret_ahead = ahead;
        *ret_window = win;
        return 0;
}

/* Write the code ahead of the window (the backend refuses to overwrite code), then read it back. */
static int write_ahead(struct hvp_guest *g, const struct hvp_plan *ahead, uint8_t *cur, struct hvp_apply_report *rep)
{
        int r = 0;

        for (size_t i = 0; i < ahead->nr_writes && r == 0; i++) {
                r = hvp_guest_write_phys(g, ahead->writes[i].gpa, ahead->writes[i].new, ahead->writes[i].len);
                if (r == 0)
                        rep->bytes_written += ahead->writes[i].len;
        }
        if (r == 0)
                r = read_current(g, ahead, cur);
        if (r == 0)
                r = compare(ahead, cur, true);
        return r;
}

/* Write old bytes back over the first n writes (after a failure inside the window). */
static int restore(struct hvp_guest *g, const struct hvp_plan *p, size_t n)
{
        int r = 0, q;

        for (size_t i = n; i-- > 0;) {
                q = hvp_guest_write_phys(g, p->writes[i].gpa, p->writes[i].old, p->writes[i].len);
                if (q < 0 && r == 0)
                        r = q;
        }
        return r;
}

/*
 * Recovery: write old bytes back where memory does not hold them already (last first).
 * Kernel sites only: patch-area bytes are never erased by a recovery (they may have
 * run if someone resumed the guest); the caller retires those that are not original.
 */
static int restore_changed(struct hvp_guest *g, const struct hvp_plan *p)
{
        int r = 0, q;

        for (size_t i = p->nr_writes; i-- > 0;) {
                const struct hvp_write *w = &p->writes[i];
                enum hvp_site_state st;

                /* area code stays in place (retired), whatever the area: a task may run it */
                if (w->area || ao_write(g, w, NULL))
                        continue;
                if (hvp_write_state(g, w, &st) == 0 && st == HVP_SITE_OLD)
                        continue;
                q = hvp_guest_write_phys(g, w->gpa, w->old, w->len);
                if (q < 0 && r == 0)
                        r = q;
        }
        return r;
}

/* --- journal ----------------------------------------------------------------- */

/*
 * The journal's "phase" says what a dead hvpatch may have left (docs/operations.md):
 *   window   written before the pause: the guest may be paused by us, a gdbstub of
 *            ours may listen, any subset of the writes may have landed. Recovery
 *            takes the pause over, brings memory to all-old or all-new, resumes.
 *   resumed  written after the window closed: every write verified, the guest
 *            resumed, the stub gone; only the record update is missing. Recovery
 *            records it without pausing (a pause found now is someone else's).
 * A journal of an older hvpatch has no phase but "in_window": true, which is the
 * window phase.
 */
enum journal_phase {
        PHASE_WINDOW,
        PHASE_RESUMED,
};

static const char *const phase_names[] = { [PHASE_WINDOW] = "window", [PHASE_RESUMED] = "resumed" };

/*
 * The area ranges a transaction leaves in place and retires: the code of the patch
 * the commit removes. Written to the journal for the operator and for recovery.
 */
static json_object *journal_retires(const char *state_dir, const char *uuid, const struct hvp_commit *commit)
{
        json_object *arr = json_object_new_array();
        struct hvp_record *rec = NULL, scratch = { .nr_entries = 0 };
        const struct hvp_record_entry *e;

        if (!commit->remove_id || hvp_record_load(state_dir, uuid, &rec) < 0)
                return arr;
        e = hvp_record_find(rec, commit->remove_id);
        if (e && hvp_record_retire(&scratch, e->plan) == 0)
                for (size_t i = 0; i < scratch.nr_retired; i++)
                        json_object_array_add(arr, hvp_retired_to_json(&scratch.retired[i]));
        for (size_t i = 0; i < scratch.nr_retired; i++)
                hvp_retired_clear(&scratch.retired[i]);
        free(scratch.retired);
        hvp_record_free(rec);
        return arr;
}

static int journal_write(const char *state_dir, const char *uuid, const struct hvp_plan *txn,
                         const struct hvp_commit *commit, enum journal_phase phase)
{
        json_object *o = json_object_new_object(), *c = json_object_new_object();
        int r;

        json_object_object_add(o, "pid", json_object_new_int((int)getpid()));
        json_object_object_add(o, "phase", json_object_new_string(phase_names[phase]));
        json_object_object_add(o, "txn", hvp_plan_to_json(txn));
        json_object_object_add(c, "add", commit->add ? hvp_plan_to_json(commit->add) : NULL);
        json_object_object_add(c, "remove_id",
                               commit->remove_id ? json_object_new_string(commit->remove_id) : NULL);
        json_object_object_add(c, "retires", journal_retires(state_dir, uuid, commit));
        json_object_object_add(o, "commit", c);
        r = hvp_journal_write(state_dir, uuid, o);
        json_object_put(o);
        return r;
}

static void journal_remove(const char *state_dir, const char *uuid)
{
        (void)hvp_journal_remove(state_dir, uuid);
}

static int commit_record(const char *state_dir, const char *uuid, const struct hvp_commit *commit,
                         double pause_ms)
{
        struct hvp_record *rec;
        int r;

        r = hvp_record_load(state_dir, uuid, &rec);
        if (r < 0)
                return r;
        r = hvp_record_commit(rec, commit, pause_ms);
        if (r == 0)
                r = hvp_record_save(state_dir, rec);
        hvp_record_free(rec);
        return r;
}

/* --- the window -------------------------------------------------------------- */

/*
 * One attempt: pause, check, write, verify, resume. Returns -EAGAIN when a vCPU was
 * inside a range (nothing written, guest resumed).
 */
static int window(struct hvp_guest *g, const struct hvp_plan *p, uint8_t *cur, struct hvp_stack_check *sc,
                  struct hvp_apply_report *rep, bool *ret_tasks_came)
{
        size_t written = 0;
        double t0, t;
        int r, q;

        t0 = t = hvp_now_ms();
        r = hvp_guest_pause(g);
        if (r < 0)
                return r;
        t = probe(t, "pause");
        hvp_fault_point("paused");

        /* One register read serves both checks (the stack check starts from kernel-mode RSPs). */
        if (rips_needed(p) || sc) {
                r = hvp_guest_refresh_regs(g);
                if (r < 0)
                        goto out;
                t = probe(t, "registers");
        }
        r = check_rips(g, p);
        if (r == -EBUSY) {
                rep->stack_busy = false;
                r = -EAGAIN;
                goto out;
        }
        if (r < 0)
                goto out;
        if (sc) {
                unsigned nv = HVP_MIN(hvp_guest_vcpu_count(g), HVP_STACK_MAX_VCPUS);
                struct hvp_vcpu_regs *regs = calloc(nv ? nv : 1, sizeof(*regs));

                if (!regs) {
                        r = -ENOMEM;
                        goto out;
                }
                for (unsigned v = 0; v < nv; v++)
                        if (hvp_guest_vcpu_regs(g, v, &regs[v]) < 0)
                                regs[v] = (struct hvp_vcpu_regs){ .rsp = 0 };
                r = hvp_stack_check_paused(sc, regs, nv, &rep->stack_hit);
                free(regs);
                hvp_stack_check_stats(sc, &rep->stack);
                t = probe(t, "stack check");
                if (r == -EBUSY) {
                        rep->stack_busy = true;
                        r = -EAGAIN;
                        goto out;
                }
                if (r == -EAGAIN) {             /* tasks came: look again before the next pause */
                        *ret_tasks_came = true;
                        goto out;
                }
                if (r < 0)
                        goto out;
        }
        r = read_current(g, p, cur);
        if (r == 0)
                r = compare(p, cur, false);     /* the guest ran since the plan was made */
        if (r < 0)
                goto out;
        t = probe(t, "rip check and re-check read");
        hvp_fault_point("checked");

        for (; written < p->nr_writes; written++) {
                const struct hvp_write *w = &p->writes[written];

                r = hvp_guest_write_phys(g, w->gpa, w->new, w->len);
                if (r < 0)
                        break;
                rep->bytes_written += w->len;
                if (written == 0)
                        hvp_fault_point("written-1");
        }
        t = probe(t, "writes");
        if (r == 0) {
                hvp_fault_point("written");
                r = read_current(g, p, cur);
                if (r == 0)
                        r = compare(p, cur, true);
                t = probe(t, "verify read");
        } else {
                written++;      /* the failed write may have landed in part */
        }
        if (r < 0) {
                q = restore(g, p, HVP_MIN(written, p->nr_writes));
                if (q < 0)
                        hvp_warn("restoring the original bytes failed: %s", hvp_last_error());
        }
out:
        q = hvp_guest_resume(g);
        probe(t, "resume");
        rep->pause_ms = hvp_now_ms() - t0;
        if (q < 0 && r == 0)
                r = q;                          /* a failed resume is never hidden */
        return r;
}

int hvp_plan_stack_probe(const struct hvp_plan *txn, struct hvp_stack_check *sc, struct hvp_stack_hit *ret_hit,
                         struct hvp_stack_stats *stats)
{
        _cleanup_free_ struct hvp_stack_range *ranges = NULL;
        size_t n = 0;
        int r;

        if (!txn || !sc || !ret_hit)
                return hvp_fail(-EINVAL, "hvp_plan_stack_probe: missing argument");
        r = stack_ranges(txn, &ranges, &n);
        if (r < 0)
                return hvp_fail(r, "out of memory");
        r = hvp_stack_check_prepare(sc, ranges, n, ret_hit);
        if (stats)
                hvp_stack_check_stats(sc, stats);
        if (r == -EBUSY) {
                char what[512];
                const struct hvp_stack_range *rg = &ranges[ret_hit->range];

                hvp_stack_hit_describe(ret_hit, what, sizeof(what));
                return hvp_fail(-EBUSY, "%s, inside the range 0x%llx..0x%llx this bundle changes: apply would "
                                "wait for it (the stack check; retry when the task has left)", what,
                                (unsigned long long)rg->start, (unsigned long long)rg->end);
        }
        return r;
}

int hvp_plan_apply(struct hvp_guest *g, const struct hvp_plan *txn, const struct hvp_commit *commit,
                   const struct hvp_apply_options *opts, struct hvp_apply_report *ret_report)
{
        struct hvp_apply_options o = opts ? *opts : (struct hvp_apply_options){ 0 };
        struct hvp_apply_report rep = { 0 };
        const char *uuid = hvp_guest_uuid(g);
        struct hvp_plan *ahead = NULL, *win = NULL;
        _cleanup_free_ uint8_t *cur = NULL;
        _cleanup_free_ struct hvp_stack_range *ranges = NULL;
        size_t nr_ranges = 0;
        bool tasks_came = false;
        double t_start = hvp_now_ms();
        int r;

        if (!o.max_attempts)
                o.max_attempts = 5;
        if (!o.retry_delay_ms)
                o.retry_delay_ms = 20;
        cur = malloc(plan_bytes(txn) + 1);
        if (!cur)
                return -ENOMEM;

        /* Cheap early answer while the guest runs: nothing is journaled or paused for a stale plan. */
        r = read_current(g, txn, cur);
        if (r == 0)
                r = compare(txn, cur, false);
        if (r == 0)
                r = split_append_only(g, txn, &ahead, &win);
        if (r < 0)
                return r;

        r = journal_write(o.state_dir, uuid, txn, commit, PHASE_WINDOW);
        if (r < 0) {
                r = hvp_fail_context(r, "journaling the transaction");
                goto out;
        }
        hvp_fault_point("journaled");

        /* New code into the append-only area while the guest runs: no jump reaches it yet. */
        r = write_ahead(g, ahead, cur, &rep);
        if (r < 0) {
                journal_remove(o.state_dir, uuid);
                r = hvp_fail_context(r, "writing the patch area");
                goto out;
        }
        r = hvp_guest_prepare_window(g);
        if (r < 0) {
                journal_remove(o.state_dir, uuid);
                r = hvp_fail_context(r, "preparing the pause window");
                goto out;
        }
        r = stack_ranges(win, &ranges, &nr_ranges);
        if (r < 0) {
                journal_remove(o.state_dir, uuid);
                goto out;
        }
        rep.stack_checked = o.stack_check != NULL;
        for (rep.attempts = 1;; rep.attempts++) {
                rep.stack_busy = false;
                if (o.stack_check) {
                        /* The heavy part while the guest runs: the pause re-checks only what moved. */
                        r = hvp_stack_check_prepare(o.stack_check, ranges, nr_ranges, &rep.stack_hit);
                        hvp_stack_check_stats(o.stack_check, &rep.stack);
                        if (r == -EBUSY) {
                                rep.stack_busy = true;
                                r = -EAGAIN;
                        }
                }
                /* A walk of the list inside the pause only on the last attempt (it grows with the tasks). */
                if (o.stack_check)
                        hvp_stack_check_set_walk_in_pause(o.stack_check, rep.attempts >= o.max_attempts);
                tasks_came = false;
                if (r == 0)
                        r = window(g, win, cur, o.stack_check, &rep, &tasks_came);
                if (r != -EAGAIN || rep.attempts >= o.max_attempts)
                        break;
                if (rep.stack_busy) {
                        char what[512];

                        hvp_stack_hit_describe(&rep.stack_hit, what, sizeof(what));
                        hvp_info("%s, inside a range being changed; retrying (%u/%u)", what, rep.attempts,
                                 o.max_attempts);
                } else if (tasks_came) {
                        hvp_info("%s; retrying (%u/%u)", hvp_last_error(), rep.attempts, o.max_attempts);
                } else {
                        hvp_info("a vCPU is inside a patch range; retrying (%u/%u)", rep.attempts, o.max_attempts);
                }
                sleep_ms(o.retry_delay_ms);
        }
        rep.total_ms = hvp_now_ms() - t_start;
        if (hvp_guest_release_window(g) < 0)
                hvp_warn("after the pause window: %s", hvp_last_error());
        if (r == -EAGAIN && rep.stack_busy) {
                char what[512];
                const struct hvp_stack_range *rg = &ranges[rep.stack_hit.range];

                hvp_stack_hit_describe(&rep.stack_hit, what, sizeof(what));
                r = hvp_fail(-EBUSY, "%s, inside the range 0x%llx..0x%llx being changed, over %u attempts "
                             "(the stack check: retry when the task has left)", what,
                             (unsigned long long)rg->start, (unsigned long long)rg->end, rep.attempts);
        } else if (r == -EAGAIN) {
                r = hvp_fail(-EBUSY, "a vCPU stayed inside a patch range over %u attempts", rep.attempts);
        }
        if (r < 0) {
                /*
                 * Nothing of it stays in memory (restored; code written ahead into an append-only
                 * area stays, unreachable) unless the resume failed: keep the journal then.
                 */
                if (!hvp_guest_is_paused(g))
                        journal_remove(o.state_dir, uuid);
                goto out;
        }
        /* Outside the window: recovery must know the guest runs the new code and is not ours to pause. */
        r = journal_write(o.state_dir, uuid, txn, commit, PHASE_RESUMED);
        if (r < 0) {
                r = hvp_fail_context(r, "journaling the end of the window (memory is patched; run hvpatch recover)");
                goto out;
        }
        hvp_fault_point("resumed");

        r = commit_record(o.state_dir, uuid, commit, rep.pause_ms);
        if (r < 0) {
                r = hvp_fail_context(r, "recording the patch (memory is patched; run hvpatch recover)");
                goto out;
        }
        hvp_fault_point("recorded");
        journal_remove(o.state_dir, uuid);
        if (ret_report)
                *ret_report = rep;
out:
        if (r < 0 && ret_report)
                *ret_report = rep;              /* who kept the stack check busy, the figures */
        hvp_plan_free(ahead);
        hvp_plan_free(win);
        return r;
}

int hvp_write_state(struct hvp_guest *g, const struct hvp_write *w, enum hvp_site_state *ret)
{
        uint8_t cur[HVP_WRITE_MAX_LEN];

        if (w->len > sizeof(cur))
                return hvp_fail(-E2BIG, "write too long");
        if (hvp_guest_read_phys(g, w->gpa, cur, w->len) < 0) {
                *ret = HVP_SITE_UNREADABLE;
                return 0;
        }
        if (memcmp(cur, w->new, w->len) == 0)
                *ret = HVP_SITE_NEW;
        else if (memcmp(cur, w->old, w->len) == 0)
                *ret = HVP_SITE_OLD;
        else
                *ret = HVP_SITE_FOREIGN;
        return 0;
}

/* --- recovery ---------------------------------------------------------------- */

/*
 * After a rollback: the code of the patch being added (the commit's plan: its area
 * writes are its code, nothing else) that landed stays and is retired in the record,
 * like a revert's code. The device mapping and erasures of earlier boots' code are
 * not the patch's: left as they are (both harmless).
 */
static int retire_landed_code(struct hvp_guest *g, const char *state_dir, const char *uuid,
                              const struct hvp_plan *add)
{
        struct hvp_record *rec = NULL;
        struct hvp_plan *landed;
        int r = 0;

        if (!add)
                return 0;
        landed = hvp_plan_new_like(add);
        if (!landed)
                return -ENOMEM;
        for (size_t i = 0; i < add->nr_writes && r == 0; i++) {
                const struct hvp_write *w = &add->writes[i];
                enum hvp_site_state st;

                if (w->area && hvp_write_state(g, w, &st) == 0 && st != HVP_SITE_OLD)
                        r = hvp_plan_add_write(landed, w->va, w->gpa, w->old, w->new, w->len, false, true, w->site);
        }
        if (r == 0 && landed->nr_writes) {
                r = hvp_record_load(state_dir, uuid, &rec);
                if (r == 0)
                        r = hvp_record_retire(rec, landed);
                if (r == 0)
                        r = hvp_record_save(state_dir, rec);
                hvp_record_free(rec);
        }
        hvp_plan_free(landed);
        return r;
}

static int load_journal(const char *state_dir, const char *uuid, struct hvp_plan **ret_txn,
                        struct hvp_plan **ret_add, char *remove_id, size_t remove_size,
                        enum journal_phase *ret_phase, int *ret_pid)
{
        json_object *o, *v, *c;
        int r;

        r = hvp_journal_read(state_dir, uuid, &o);
        if (r == -ENOENT)
                return hvp_fail(-ENOENT, "no interrupted transaction for this domain");
        if (r < 0)
                return r;
        *ret_add = NULL;
        remove_id[0] = '\0';
        if (json_object_object_get_ex(o, "phase", &v)) {
                const char *name = json_object_get_string(v);
                size_t i;

                for (i = 0; i < HVP_ARRAY_SIZE(phase_names); i++)
                        if (name && strcmp(name, phase_names[i]) == 0)
                                break;
                if (i == HVP_ARRAY_SIZE(phase_names)) {
                        r = hvp_fail(-EINVAL, "the journal of %s: unknown phase '%.64s' (window or resumed): "
                                     "not touching the guest", uuid, name ? name : "");
                        json_object_put(o);
                        return r;
                }
                *ret_phase = (enum journal_phase)i;
        } else if (json_object_object_get_ex(o, "in_window", &v) && json_object_get_boolean(v)) {
                *ret_phase = PHASE_WINDOW;      /* an older hvpatch's journal */
        } else {
                r = hvp_fail(-EINVAL, "the journal of %s has no phase in it: not touching the guest", uuid);
                json_object_put(o);
                return r;
        }
        *ret_pid = json_object_object_get_ex(o, "pid", &v) ? json_object_get_int(v) : 0;
        if (!json_object_object_get_ex(o, "txn", &v) || !json_object_object_get_ex(o, "commit", &c)) {
                r = hvp_fail(-EINVAL, "the journal of %s has no transaction in it", uuid);
                goto out;
        }
        r = hvp_plan_from_json(v, ret_txn);
        if (r < 0)
                goto out;
        if (json_object_object_get_ex(c, "add", &v) && v) {
                r = hvp_plan_from_json(v, ret_add);
                if (r < 0) {
                        hvp_plan_free(*ret_txn);
                        goto out;
                }
        }
        if (json_object_object_get_ex(c, "remove_id", &v) && v)
                snprintf(remove_id, remove_size, "%s", json_object_get_string(v));
out:
        json_object_put(o);
        return r;
}

/* Where the writes of txn stand; append-only area bytes (written ahead or retired, never undone) apart. */
static void count_states(struct hvp_guest *g, const struct hvp_plan *txn, size_t *ret_new, size_t *ret_old,
                         size_t *ret_other, size_t *ret_ao)
{
        *ret_new = *ret_old = *ret_other = *ret_ao = 0;
        for (size_t i = 0; i < txn->nr_writes; i++) {
                enum hvp_site_state st;

                if (ao_write(g, &txn->writes[i], NULL)) {
                        (*ret_ao)++;
                        continue;
                }
                hvp_write_state(g, &txn->writes[i], &st);
                *ret_new += st == HVP_SITE_NEW;
                *ret_old += st == HVP_SITE_OLD;
                *ret_other += st != HVP_SITE_NEW && st != HVP_SITE_OLD;
        }
}

int hvp_recover(struct hvp_guest *g, const char *state_dir, char **ret_summary)
{
        const char *uuid = hvp_guest_uuid(g);
        struct hvp_plan *txn = NULL, *add = NULL;
        char remove_id[HVP_ID_MAX], summary[1024];
        size_t n_new, n_old, n_other, n_ao;
        enum journal_phase phase = PHASE_WINDOW;
        bool adopted = false, paused = false;
        int pid = 0, r, q;

        r = load_journal(state_dir, uuid, &txn, &add, remove_id, sizeof(remove_id), &phase, &pid);
        if (r < 0)
                return r;
        count_states(g, txn, &n_new, &n_old, &n_other, &n_ao);
        if (phase == PHASE_RESUMED && n_new + n_ao == txn->nr_writes) {
                /* The window had closed and memory holds the patch: only the record is missing. */
                struct hvp_commit commit = { add, remove_id[0] ? remove_id : NULL };

                r = commit_record(state_dir, uuid, &commit, 0);
                snprintf(summary, sizeof(summary),
                         "transaction of %s by pid %d had completed and the guest resumed: recorded it",
                         txn->patch_id, pid);
                goto done;
        }
        /*
         * The repair happens paused. In the window phase, a guest the dead process
         * left paused inside its window is taken over (adopting also clears a stub it
         * left listening on a guest that runs); a running one is paused here. After
         * the window (resumed) a paused guest is someone else's, never adopted.
         */
        r = phase == PHASE_WINDOW ? hvp_guest_adopt_pause(g) : 0;
        adopted = r > 0;
        if (r >= 0 && !hvp_guest_is_paused(g))
                r = hvp_guest_pause(g);
        if (r < 0) {
                hvp_plan_free(txn);
                hvp_plan_free(add);
                return hvp_fail_context(r, "pausing for the repair");
        }
        paused = true;
        count_states(g, txn, &n_new, &n_old, &n_other, &n_ao);  /* again, now that the guest cannot change it */
        if (n_new + n_ao == txn->nr_writes) {
                struct hvp_commit commit = { add, remove_id[0] ? remove_id : NULL };

                r = commit_record(state_dir, uuid, &commit, 0);
                snprintf(summary, sizeof(summary), "transaction of %s by pid %d had completed: recorded it",
                         txn->patch_id, pid);
        } else {
                r = restore_changed(g, txn);
                for (size_t i = 0; r == 0 && i < txn->nr_writes; i++) {
                        enum hvp_site_state st;

                        if (ao_write(g, &txn->writes[i], NULL))
                                continue;
                        hvp_write_state(g, &txn->writes[i], &st);
                        if (st != HVP_SITE_OLD && !txn->writes[i].area)
                                r = hvp_fail(-EIO, "0x%llx still not original after the rollback",
                                             (unsigned long long)txn->writes[i].va);
                }
                if (r == 0)
                        r = retire_landed_code(g, state_dir, uuid, add);
                snprintf(summary, sizeof(summary),
                         "transaction of %s by pid %d was interrupted %s (%zu of %zu writes new, %zu other): "
                         "rolled back", txn->patch_id, pid,
                         phase == PHASE_WINDOW ? "in its pause window" : "after its window",
                         n_new, txn->nr_writes - n_ao, n_other);
        }
done:
        if (paused) {
                q = hvp_guest_resume(g);
                if (q < 0 && r == 0)
                        r = q;
        }
        if (r == 0) {
                journal_remove(state_dir, uuid);
                hvp_ops_publish(g, state_dir);  /* the domain's metadata copy follows the record */
                if (adopted) {
                        size_t len = strlen(summary);

                        snprintf(summary + len, sizeof(summary) - len, "; the guest runs again");
                }
                if (ret_summary)
                        *ret_summary = strdup(summary);
        }
        hvp_plan_free(txn);
        hvp_plan_free(add);
        return r;
}

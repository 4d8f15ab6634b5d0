/*
 * The jobs: for a domain that (re)booted, wait until its kernel is up; then compare
 * what memory holds with the records (a recorded patch memory lost while the kernel
 * instance stayed the same is tampering: audited), and converge it to the catalog
 * with hvp_op_sync (which re-applies what was lost, through the whole pipeline).
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <hvpatch/hvpatch.h>
#include <hvpatch/kernel.h>
#include <hvpatch/move.h>
#include <hvpatch/ops.h>
#include <hvpatch/paging.h>

#include "daemon/hvpatchd.h"

int hvpd_config_load(struct hvpd *d, struct hvpd_config **ret, char *why, size_t why_size)
{
        struct hvpd_config *c = calloc(1, sizeof(*c));
        int r;

        if (!c)
                return -ENOMEM;
        r = hvp_policy_load(d->opt.policy_path, &c->policy);
        if (r < 0) {
                snprintf(why, why_size, "policy %s: %s", d->opt.policy_path, hvp_last_error());
                free(c);
                return r;
        }
        r = hvp_catalog_load(d->opt.catalog_dir, c->policy, &c->catalog);
        if (r < 0) {
                snprintf(why, why_size, "catalog %s: %s", d->opt.catalog_dir, hvp_last_error());
                hvp_policy_free(c->policy);
                free(c);
                return r;
        }
        for (size_t i = 0; i < c->catalog->n_entries; i++)
                if (c->catalog->entries[i].error)
                        hvpd_log(LOG_WARNING, "catalog: %s skipped: %s", c->catalog->entries[i].file,
                                 c->catalog->entries[i].reason);
        hvpd_log(LOG_INFO, "catalog %s: %zu bundles, %zu usable; policy %s", d->opt.catalog_dir,
                 c->catalog->n_entries, c->catalog->n_usable, d->opt.policy_path);
        c->refs = 1;
        c->loaded = time(NULL);
        *ret = c;
        return 0;
}

/* Drop a reference; caller holds d->lock. */
void hvpd_config_put(struct hvpd *d, struct hvpd_config *c)
{
        (void)d;
        if (!c || --c->refs)
                return;
        hvp_catalog_free(c->catalog);
        hvp_policy_free(c->policy);
        free(c);
}

static struct hvpd_config *config_get(struct hvpd *d)
{
        struct hvpd_config *c;

        pthread_mutex_lock(&d->lock);
        c = d->config;
        c->refs++;
        pthread_mutex_unlock(&d->lock);
        return c;
}

static void config_release(struct hvpd *d, struct hvpd_config *c)
{
        pthread_mutex_lock(&d->lock);
        hvpd_config_put(d, c);
        pthread_mutex_unlock(&d->lock);
}

/* The domain's slot (created if new); NULL when the table is full. Caller holds d->lock. */
static struct hvpd_domain *domain_slot(struct hvpd *d, const char *name)
{
        for (size_t i = 0; i < d->n_domains; i++)
                if (strcmp(d->domains[i].name, name) == 0)
                        return &d->domains[i];
        if (d->n_domains == HVPD_MAX_DOMAINS)
                return NULL;
        snprintf(d->domains[d->n_domains].name, HVPD_NAME_MAX, "%s", name);
        return &d->domains[d->n_domains++];
}

void hvpd_enqueue(struct hvpd *d, const char *name, unsigned why)
{
        struct hvpd_domain *dom;

        if (!name || strlen(name) >= HVPD_NAME_MAX)
                return;
        if (d->opt.domains && fnmatch(d->opt.domains, name, 0) != 0)
                return;
        pthread_mutex_lock(&d->lock);
        dom = domain_slot(d, name);
        if (!dom) {
                pthread_mutex_unlock(&d->lock);
                hvpd_log(LOG_ERR, "%s: not tracked: more than %d domains", name, HVPD_MAX_DOMAINS);
                return;
        }
        if (why & HVPD_WHY_BOOT)
                clock_gettime(CLOCK_MONOTONIC, &dom->boot_event);
        dom->pending |= why;
        /* Queued once; a domain being worked on is queued again when its job ends. */
        if (dom->phase == HVPD_IDLE && !d->stopping) {
                dom->phase = HVPD_QUEUED;
                d->queue[(d->q_head + d->q_len++) % HVPD_MAX_DOMAINS] = (unsigned)(dom - d->domains);
                pthread_cond_signal(&d->work);
        }
        pthread_mutex_unlock(&d->lock);
}

static void set_phase(struct hvpd *d, struct hvpd_domain *dom, enum hvpd_phase p)
{
        pthread_mutex_lock(&d->lock);
        dom->phase = p;
        pthread_mutex_unlock(&d->lock);
}

/*
 * A daemon told to stop ends the waits: for a booting kernel, in a baseline move, and the
 * health gate's watch (which then counts as a pass).
 */
static bool stopping(void *userdata)
{
        struct hvpd *d = userdata;
        bool r;

        pthread_mutex_lock(&d->lock);
        r = d->stopping;
        pthread_mutex_unlock(&d->lock);
        return r;
}

struct attached {
        struct hvp_guest *g;
        struct hvp_mmu *mmu;
        struct hvp_kernel *k;
};

static void detach(struct attached *a)
{
        hvp_kernel_free(a->k);
        hvp_mmu_free(a->mmu);
        hvp_guest_free(a->g);
        memset(a, 0, sizeof(*a));
}

/*
 * Open and attach. The domain itself missing or not running: its error (-ENOENT,
 * -ESRCH, ...). The domain running but no kernel found in it (yet): -EAGAIN.
 */
static int attach(struct hvpd *d, const char *name, struct attached *a)
{
        struct hvp_live_options live = { .uri = d->opt.uri };
        int r;

        memset(a, 0, sizeof(*a));
        r = hvp_guest_open_live(name, &live, &a->g);
        if (r < 0)
                return r;
        r = hvp_linux_attach(a->g, &a->mmu, &a->k, NULL);
        if (r < 0) {
                detach(a);
                return r == -ENOMEM || r == -ESRCH ? r : -EAGAIN;  /* -ESRCH: its QEMU process is gone */
        }
        return 0;
}

/*
 * Wait until name's kernel is up (attached into a), bounded by the boot timeout: the
 * library's wait (hvp_wait_kernel_up), which a stopping daemon cancels.
 */
static int wait_kernel_up(struct hvpd *d, struct hvpd_domain *dom, struct attached *a, char *why, size_t size)
{
        struct hvp_live_options live = { .uri = d->opt.uri };
        struct timespec now;
        int r;

        set_phase(d, dom, HVPD_WAITING_KERNEL);
        memset(a, 0, sizeof(*a));
        r = hvp_wait_kernel_up(dom->name, &live, d->opt.boot_timeout, stopping, d, &a->g, &a->mmu, &a->k);
        if (r < 0) {
                snprintf(why, size, "%s", hvp_last_error());
                return r;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        pthread_mutex_lock(&d->lock);
        dom->kernel_up_s = (double)(now.tv_sec - dom->boot_event.tv_sec) +
                           (double)(now.tv_nsec - dom->boot_event.tv_nsec) / 1e9;
        pthread_mutex_unlock(&d->lock);
        hvpd_log(LOG_INFO, "%s: kernel up (%s), %.1f s after the boot event", dom->name, a->k->banner,
                 dom->kernel_up_s);
        return 0;
}

/*
 * Patches the record holds that memory lost while the kernel instance stayed: tampered
 * (or written over by the guest). Audited, one record each, when the set of lost patches
 * changes (not at every check); returns how many are lost now.
 */
static unsigned tamper_check(struct hvpd *d, struct hvpd_domain *dom, const struct hvp_guest_state *s)
{
        char seen[sizeof(dom->tamper_seen)] = "";
        size_t len = 0;
        bool again;
        unsigned n = 0;

        /* What is lost now, as "id:state;"...: reported once, not at every check. */
        for (size_t i = 0; i < s->n_patches; i++) {
                enum hvp_patch_state st = s->patches[i].state;

                if (st == HVP_PATCH_NOT_APPLIED || st == HVP_PATCH_FOREIGN)
                        len += (size_t)snprintf(seen + len, len < sizeof(seen) ? sizeof(seen) - len : 0, "%s:%d;",
                                                s->patches[i].entry->plan->patch_id, (int)st);
        }
        pthread_mutex_lock(&d->lock);
        again = strcmp(seen, dom->tamper_seen) == 0;
        snprintf(dom->tamper_seen, sizeof(dom->tamper_seen), "%s", seen);
        pthread_mutex_unlock(&d->lock);
        for (size_t i = 0; i < s->n_patches; i++) {
                const struct hvp_plan *p = s->patches[i].entry->plan;
                enum hvp_patch_state st = s->patches[i].state;
                struct hvp_audit_event ev = {
                        .action = HVP_AUDIT_TAMPER, .domain = dom->name, .bundle_id = p->patch_id,
                        .seq = p->seq, .key_name = p->key_name[0] ? p->key_name : NULL, .result = -EILSEQ,
                        .pause_ms = -1,
                };
                char reason[256];

                if (st != HVP_PATCH_NOT_APPLIED && st != HVP_PATCH_FOREIGN)
                        continue;
                n++;
                if (again)
                        continue;
                /* FOREIGN (some bytes neither): nothing is written over bytes hvpatch cannot account for */
                snprintf(reason, sizeof(reason), "memory holds %s: %s",
                         st == HVP_PATCH_NOT_APPLIED ? "the original bytes again" : "neither the patch nor the original",
                         st == HVP_PATCH_NOT_APPLIED && d->opt.repair ? "applied again from the catalog"
                                                                      : "reported, not repaired");
                ev.reason = reason;
                hvp_audit(&ev);
                hvpd_log(LOG_WARNING, "%s: %s tampered with: %s", dom->name, p->patch_id, reason);
        }
        if (!again) {
                pthread_mutex_lock(&d->lock);
                dom->tampered += n;
                pthread_mutex_unlock(&d->lock);
        }
        return n;
}

/* The health gate's results of a sync's applies: the failures counted, the last one kept. */
static void record_health(struct hvpd *d, struct hvpd_domain *dom, const struct hvp_sync_result *res)
{
        for (size_t i = 0; i < res->n_steps; i++) {
                const struct hvp_apply_outcome *o = res->steps[i].outcome;
                const struct hvp_health_report *h = o ? &o->health : NULL;

                if (!h || h->result == HVP_HEALTH_NOT_RUN)
                        continue;
                if (h->result == HVP_HEALTH_FAIL) {
                        hvpd_log(LOG_ERR, "%s: health gate failed for %s: %s; %s; %s", dom->name, o->patch_id,
                                 h->reason, h->reverted ? "reverted" : h->revert_error,
                                 h->marked_bad ? "marked bad" : h->mark_error);
                        for (size_t l = 0; l < h->n_lines; l++)
                                hvpd_log(LOG_WARNING, "%s: guest: %s", dom->name, h->lines[l]);
                }
                pthread_mutex_lock(&d->lock);
                dom->health_failures += h->result == HVP_HEALTH_FAIL;
                snprintf(dom->health_result, sizeof(dom->health_result), "%s", hvp_health_result_name(h->result));
                snprintf(dom->health_patch, sizeof(dom->health_patch), "%s", o->patch_id);
                snprintf(dom->health_reason, sizeof(dom->health_reason), "%s", h->reason);
                dom->health_at = time(NULL);
                pthread_mutex_unlock(&d->lock);
        }
}

static void record_sync(struct hvpd *d, struct hvpd_domain *dom, const struct hvp_sync_result *res)
{
        unsigned applies = 0, failures = 0, held = 0;
        double pause = -1;
        char text[HVPD_RESULT_MAX] = "";
        size_t len = 0;

        for (size_t i = 0; i < res->n_steps; i++) {
                const struct hvp_sync_step *st = &res->steps[i];
                const char *what = st->plan->desired ? st->plan->desired->patch_id : st->plan->series;

                if (!st->attempted) {
                        hvpd_log(LOG_INFO, "%s: %s %s waits for the maintenance window", dom->name,
                                 hvp_sync_action_name(st->plan->action), what);
                        len += (size_t)snprintf(text + len, len < sizeof(text) ? sizeof(text) - len : 0,
                                                "%s%s waits", len ? "; " : "", what);
                } else if (st->outcome->exit_class) {
                        failures++;
                        hvpd_log(LOG_ERR, "%s: %s %s failed (exit %d): %s", dom->name,
                                 hvp_sync_action_name(st->plan->action), what, st->outcome->exit_class,
                                 st->outcome->first_error);
                        len += (size_t)snprintf(text + len, len < sizeof(text) ? sizeof(text) - len : 0,
                                                "%s%s failed: %s", len ? "; " : "", what, st->outcome->first_error);
                } else {
                        applies++;
                        pause = st->outcome->report.pause_ms;
                        hvpd_log(LOG_NOTICE, "%s: %s %s: pause window %.3f ms", dom->name,
                                 hvp_sync_action_name(st->plan->action), what, pause);
                        len += (size_t)snprintf(text + len, len < sizeof(text) ? sizeof(text) - len : 0,
                                                "%sapplied %s", len ? "; " : "", what);
                }
        }
        for (size_t i = 0; i < res->plan->n_series; i++) {
                const struct hvp_series_plan *s = &res->plan->series[i];
                bool done_now = false;

                for (size_t k = 0; k < res->n_steps; k++)
                        done_now |= res->steps[k].plan == s && res->steps[k].attempted &&
                                    !res->steps[k].outcome->exit_class;
                held += done_now || (s->has_actual && s->actual.state == HVP_PATCH_APPLIED &&
                                     s->action == HVP_SYNC_NOTHING);
        }
        record_health(d, dom, res);
        pthread_mutex_lock(&d->lock);
        dom->applies += applies;
        dom->failures += failures;
        dom->n_applied = held;
        if (pause >= 0)
                dom->last_pause_ms = pause;
        dom->last_exit = res->exit_class;
        snprintf(dom->last_result, sizeof(dom->last_result), "%s", len ? text : "converged, nothing to do");
        snprintf(dom->build_id, sizeof(dom->build_id), "%s", res->state->build_id);
        snprintf(dom->verdict, sizeof(dom->verdict), "%s", hvp_verdict_name(res->plan->compliance.verdict));
        pthread_mutex_unlock(&d->lock);
}

/* ---- baseline moves (include/hvpatch/move.h): a reboot-required host-booted guest ---- */

/*
 * The sync found the guest reboot-required with a move due now: detach (its QEMU
 * process is replaced), move, and record the sync that follows the move. The restart's
 * own lifecycle events queue one more job, which finds the guest converged.
 */
static void move_baseline(struct hvpd *d, struct hvpd_domain *dom, struct hvpd_config *cfg,
                          const struct hvp_move_plan *m, struct attached *a)
{
        struct hvp_live_options live = { .uri = d->opt.uri };
        struct hvp_move_outcome out;

        detach(a);
        hvpd_log(LOG_NOTICE, "%s: %s", dom->name, m->note);
        hvp_op_move_baseline(&(struct hvp_move_request){ .domain = dom->name, .live = &live, .plan = m,
                                                         .policy = cfg->policy, .catalog = cfg->catalog,
                                                         .state_dir = d->state_dir, .boot_timeout_s = d->opt.boot_timeout,
                                                         .cancelled = stopping, .userdata = d,
                                                         .health_seconds = d->opt.health_seconds },
                             &out);
        if (out.exit_class) {
                hvpd_log(LOG_ERR, "%s: baseline move failed: %s", dom->name, out.error);
                pthread_mutex_lock(&d->lock);
                dom->failures++;
                dom->last_exit = out.exit_class;
                snprintf(dom->last_result, sizeof(dom->last_result), "move-baseline: %.480s", out.error);
                pthread_mutex_unlock(&d->lock);
        } else {
                hvpd_log(LOG_NOTICE, "%s: moved to baseline %s (%s), kernel up after %.1f s", dom->name,
                         m->to_baseline, m->to_release, out.kernel_up_s);
        }
        if (out.sync && !out.exit_class)
                record_sync(d, dom, out.sync);
        hvp_move_outcome_clear(&out);
}

static void run_job(struct hvpd *d, struct hvpd_domain *dom, unsigned why)
{
        struct hvpd_config *cfg;
        struct hvp_sync_result *res = NULL;
        struct attached a;
        struct timespec t0, t1;
        char reason[HVPD_RESULT_MAX] = "";
        unsigned tampered = 0;
        int r;

        r = why & HVPD_WHY_BOOT ? -EAGAIN : attach(d, dom->name, &a);
        if (r == -EAGAIN) {     /* booting (or a boot we did not see): wait for its kernel */
                if (!(why & HVPD_WHY_BOOT)) {
                        pthread_mutex_lock(&d->lock);
                        clock_gettime(CLOCK_MONOTONIC, &dom->boot_event);
                        pthread_mutex_unlock(&d->lock);
                }
                why |= HVPD_WHY_BOOT;
                r = wait_kernel_up(d, dom, &a, reason, sizeof(reason));
        } else if (r < 0) {
                snprintf(reason, sizeof(reason), "%s", hvp_last_error());
        }
        set_phase(d, dom, HVPD_WORKING);
        if (r < 0) {
                pthread_mutex_lock(&d->lock);
                dom->last_exit = HVP_EXIT_ERROR;
                /* a domain that is gone or shut off is not a failure */
                if (r != -ENOENT && r != -ESRCH && r != -ECANCELED)
                        dom->failures++;
                snprintf(dom->last_result, sizeof(dom->last_result), "%s", reason);
                pthread_mutex_unlock(&d->lock);
                hvpd_log(r == -ENOENT || r == -ESRCH || r == -ECANCELED ? LOG_INFO : LOG_WARNING, "%s: %s",
                         dom->name, reason);
                return;
        }
        cfg = config_get(d);
        /*
         * Report only (--tamper report): a patch memory lost stays lost, so what memory holds
         * is read first and sync only plans if anything is lost. Repair: the state sync reads
         * before it converges is the one tampering is judged on (one read, not two).
         */
        if (!(why & HVPD_WHY_BOOT) && !d->opt.repair) {
                struct hvp_guest_state *s = NULL;

                if (hvp_op_state(a.g, a.mmu, a.k, d->state_dir, cfg->policy, &s) < 0)
                        hvpd_log(LOG_WARNING, "%s: state: %s", dom->name, hvp_last_error());
                else
                        tampered = tamper_check(d, dom, s);
                hvp_guest_state_free(s);
        }
        clock_gettime(CLOCK_MONOTONIC, &t0);
        {
                struct hvp_sync_options so = { .dry_run = !d->opt.repair && tampered,
                                               .health_seconds = d->opt.health_seconds,
                                               .health_stop = stopping, .health_userdata = d };

                r = hvp_op_sync_ex(a.g, a.mmu, a.k, d->state_dir, cfg->policy, cfg->catalog, &so, &res);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (r == 0 && !(why & HVPD_WHY_BOOT) && d->opt.repair)
                tamper_check(d, dom, res->state);
        if (r < 0) {
                pthread_mutex_lock(&d->lock);
                dom->last_exit = HVP_EXIT_ERROR;
                dom->failures++;
                snprintf(dom->last_result, sizeof(dom->last_result), "sync: %s", hvp_last_error());
                pthread_mutex_unlock(&d->lock);
                hvpd_log(LOG_ERR, "%s: sync: %s", dom->name, hvp_last_error());
        } else {
                record_sync(d, dom, res);
                hvpd_apply_observe(d, dom, why & HVPD_WHY_BOOT, res,
                                   (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
                /* not after a report-only (dry-run) sync: tampering is looked at first */
                if (res->move && res->move->action == HVP_MOVE_NOW && (d->opt.repair || !tampered))
                        move_baseline(d, dom, cfg, res->move, &a);
                else if (res->move && res->move->action != HVP_MOVE_NONE)
                        hvpd_log(LOG_INFO, "%s: reboot-required: %s", dom->name, res->move->note);
                hvp_sync_result_free(res);
        }
        config_release(d, cfg);
        detach(&a);
}

void *hvpd_worker(void *arg)
{
        struct hvpd *d = arg;

        for (;;) {
                struct hvpd_domain *dom;
                unsigned why;

                pthread_mutex_lock(&d->lock);
                while (!d->stopping && d->q_len == 0)
                        pthread_cond_wait(&d->work, &d->lock);
                if (d->stopping) {
                        pthread_mutex_unlock(&d->lock);
                        return NULL;
                }
                dom = &d->domains[d->queue[d->q_head]];
                d->q_head = (d->q_head + 1) % HVPD_MAX_DOMAINS;
                d->q_len--;
                why = dom->pending;
                dom->pending = 0;
                dom->phase = HVPD_WORKING;
                d->busy_workers++;
                pthread_mutex_unlock(&d->lock);

                run_job(d, dom, why);

                pthread_mutex_lock(&d->lock);
                d->busy_workers--;
                dom->jobs++;
                dom->last_done = time(NULL);
                dom->phase = HVPD_IDLE;
                if (dom->pending && !d->stopping) {     /* events that came in meanwhile */
                        dom->phase = HVPD_QUEUED;
                        d->queue[(d->q_head + d->q_len++) % HVPD_MAX_DOMAINS] = (unsigned)(dom - d->domains);
                        pthread_cond_signal(&d->work);
                }
                pthread_mutex_unlock(&d->lock);
                if (d->opt.metrics_file && hvpd_metrics_write(d) < 0)
                        hvpd_log(LOG_WARNING, "metrics file %s: %s", d->opt.metrics_file, strerror(errno));
        }
}

/*
 * The stack check (hvpatch/stackcheck.h): a conservative scan of every task's live
 * kernel stack for addresses inside the ranges a transaction changes.
 *
 * Why a task that ran is noticed: a task leaves a CPU only through __schedule(),
 * which counts every switch away from it in nvcsw or nivcsw (kernel/sched/core.c:
 * ++*switch_count when prev != next) and saves its stack pointer in thread.sp
 * (__switch_to_asm). So in a paused guest, a task whose sum and sp are those read
 * before its stack was scanned has not run since, unless it is on a CPU now (on_cpu);
 * a task created since moved total_forks (copy_process). Everything else is scanned
 * again.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hvpatch/linux.h>
#include <hvpatch/paging.h>
#include <hvpatch/stackcheck.h>

#include "common/error.h"
#include "common/util.h"

#define NO_OFF UINT64_MAX
#define WALK_TRIES 3

/* Disjoint, sorted: a value v hits when start < v <= end. */
struct interval {
        uint64_t start, end;
        size_t index;           /* the first range given that it holds */
};

/* What prepare saw of a task. */
struct rec {
        struct hvp_task t;
        bool pending;           /* not scanned before the pause (on a CPU, unreadable) */
        uint64_t gpa[7];        /* where each field lives (enum below); 0: not translated */
};

enum { F_SP, F_NVCSW, F_NIVCSW, F_ON_CPU, F_CPU, F_STACK, F_EXIT, NR_FIELDS };
/* The fields read for every task in the pause: the first NR_HOT (the rest only for a task that moved). */
#define NR_HOT 4

struct hvp_stack_check {
        struct hvp_stack_config cfg;
        struct hvp_kmem km;
        uint64_t off[NR_FIELDS];
        unsigned size[NR_FIELDS];
        bool have_switches;
        struct interval *iv;
        size_t nr_iv;
        struct rec *recs;               /* sorted by task address */
        size_t nr_recs;
        bool prepared;
        bool walk_in_pause;             /* prepare could not walk the list */
        bool no_walk;                   /* hvp_stack_check_set_walk_in_pause(false) */
        uint64_t forks;
        bool have_forks;
        uint8_t *buf;                   /* thread_size bytes */
        struct hvp_stack_stats st;
        /* the phase running */
        uint64_t *bytes;
        double t0;
};

static int kread(const struct hvp_stack_check *sc, uint64_t va, void *buf, size_t len)
{
        int r;

        hvp_clear_error();
        r = sc->km.read(sc->km.ctx, va, buf, len);
        if (r < 0 && !hvp_last_error()[0])
                hvp_fail(r, "%s", strerror(-r));
        return r;
}

static int field(const struct hvp_btf *btf, const char *path, const char *alt, uint64_t *ret_off, unsigned *ret_size)
{
        uint64_t off, size;
        int r = hvp_btf_member(btf, path, &off, &size);

        if (r < 0 && alt)
                r = hvp_btf_member(btf, alt, &off, &size);
        if (r < 0)
                return r;
        if (size != 4 && size != 8)
                return hvp_fail(-EINVAL, "stack check: %s has %llu bytes", path, (unsigned long long)size);
        *ret_off = off;
        *ret_size = (unsigned)size;
        return 0;
}

int hvp_stack_check_new(const struct hvp_stack_config *cfg, struct hvp_stack_check **ret)
{
        struct hvp_stack_check *sc;
        uint64_t ts;
        int r;

        if (!cfg || !cfg->km || !cfg->km->read || !cfg->btf || !ret || !cfg->init_task)
                return hvp_fail(-EINVAL, "hvp_stack_check_new: bad arguments");
        sc = calloc(1, sizeof(*sc));
        if (!sc)
                return hvp_fail(-ENOMEM, "out of memory");
        sc->cfg = *cfg;
        sc->km = *cfg->km;
        sc->cfg.km = &sc->km;
        if (!sc->cfg.max_bytes)
                sc->cfg.max_bytes = HVP_STACK_MAX_BYTES_DEFAULT;
        if (!(sc->cfg.max_ms > 0))
                sc->cfg.max_ms = HVP_STACK_MAX_MS_DEFAULT;
        ts = cfg->thread_size;
        if (!ts && hvp_btf_struct_size(cfg->btf, "thread_union", &ts) < 0)
                ts = HVP_STACK_THREAD_SIZE_DEFAULT;
        if (ts < 4096 || ts > HVP_STACK_THREAD_SIZE_MAX || (ts & (ts - 1))) {
                r = hvp_fail(-EINVAL, "stack check: THREAD_SIZE %llu is not a power of two from 4 KiB to 64 KiB",
                             (unsigned long long)ts);
                goto fail;
        }
        sc->cfg.thread_size = ts;
        if ((r = field(cfg->btf, "task_struct.thread.sp", NULL, &sc->off[F_SP], &sc->size[F_SP])) < 0 ||
            (r = field(cfg->btf, "task_struct.on_cpu", NULL, &sc->off[F_ON_CPU], &sc->size[F_ON_CPU])) < 0 ||
            (r = field(cfg->btf, "task_struct.cpu", "task_struct.thread_info.cpu", &sc->off[F_CPU],
                       &sc->size[F_CPU])) < 0 ||
            (r = field(cfg->btf, "task_struct.stack", NULL, &sc->off[F_STACK], &sc->size[F_STACK])) < 0 ||
            (r = field(cfg->btf, "task_struct.exit_state", NULL, &sc->off[F_EXIT], &sc->size[F_EXIT])) < 0) {
                r = hvp_fail_context(r, "stack check");
                goto fail;
        }
        sc->have_switches = field(cfg->btf, "task_struct.nvcsw", NULL, &sc->off[F_NVCSW], &sc->size[F_NVCSW]) == 0 &&
                            field(cfg->btf, "task_struct.nivcsw", NULL, &sc->off[F_NIVCSW], &sc->size[F_NIVCSW]) == 0;
        hvp_clear_error();
        sc->buf = malloc(ts);
        if (!sc->buf) {
                r = hvp_fail(-ENOMEM, "out of memory");
                goto fail;
        }
        *ret = sc;
        return 0;
fail:
        free(sc);
        return r;
}

void hvp_stack_check_free(struct hvp_stack_check *sc)
{
        if (!sc)
                return;
        free(sc->iv);
        free(sc->recs);
        free(sc->buf);
        free(sc);
}

void hvp_stack_check_set_walk_in_pause(struct hvp_stack_check *sc, bool allowed)
{
        sc->no_walk = !allowed;
}

void hvp_stack_check_stats(const struct hvp_stack_check *sc, struct hvp_stack_stats *ret)
{
        *ret = sc->st;
}

static int cmp_iv(const void *a, const void *b)
{
        const struct interval *x = a, *y = b;

        return x->start < y->start ? -1 : x->start > y->start;
}

static int set_ranges(struct hvp_stack_check *sc, const struct hvp_stack_range *ranges, size_t n)
{
        struct interval *iv;
        size_t m = 0;

        if (n > HVP_STACK_MAX_RANGES)
                return hvp_fail(-E2BIG, "stack check: more than %u ranges", HVP_STACK_MAX_RANGES);
        iv = calloc(n ? n : 1, sizeof(*iv));
        if (!iv)
                return hvp_fail(-ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
                if (ranges[i].end <= ranges[i].start)
                        continue;
                iv[m++] = (struct interval){ ranges[i].start, ranges[i].end, i };
        }
        qsort(iv, m, sizeof(*iv), cmp_iv);
        /* merge: (a, b] and (c, d] overlap or touch when c <= b */
        size_t k = 0;

        for (size_t i = 0; i < m; i++) {
                if (k && iv[i].start <= iv[k - 1].end) {
                        if (iv[i].end > iv[k - 1].end)
                                iv[k - 1].end = iv[i].end;
                } else {
                        iv[k++] = iv[i];
                }
        }
        free(sc->iv);
        sc->iv = iv;
        sc->nr_iv = k;
        return 0;
}

/* The interval v hits, or NULL. */
static const struct interval *lookup(const struct hvp_stack_check *sc, uint64_t v)
{
        size_t lo = 0, hi = sc->nr_iv;

        if (!hi || v <= sc->iv[0].start || v > sc->iv[hi - 1].end)
                return NULL;
        while (hi - lo > 1) {           /* the last interval with start < v */
                size_t mid = lo + (hi - lo) / 2;

                if (sc->iv[mid].start < v)
                        lo = mid;
                else
                        hi = mid;
        }
        return sc->iv[lo].start < v && v <= sc->iv[lo].end ? &sc->iv[lo] : NULL;
}

static void fill_hit(const struct hvp_stack_check *sc, const struct hvp_task *t, int vcpu, uint64_t value,
                     uint64_t where, const struct interval *iv, struct hvp_stack_hit *hit)
{
        const struct hvp_symbol *s = sc->cfg.symtab ? hvp_symtab_find_addr(sc->cfg.symtab, value) : NULL;

        *hit = (struct hvp_stack_hit){ .task = t ? t->addr : 0, .pid = t ? t->pid : -1, .vcpu = vcpu,
                                       .value = value, .where = where, .range = iv->index };
        snprintf(hit->comm, sizeof(hit->comm), "%s", t ? t->comm : "");
        if (s)
                snprintf(hit->symbol, sizeof(hit->symbol), "%.120s+0x%llx", s->name,
                         (unsigned long long)(value - s->addr));
}

void hvp_stack_hit_describe(const struct hvp_stack_hit *hit, char *buf, size_t size)
{
        char sym[200] = "";

        if (hit->symbol[0])
                snprintf(sym, sizeof(sym), " (%s)", hit->symbol);
        if (hit->task)
                snprintf(buf, size, "task %d (%s) holds 0x%llx%s at 0x%llx on its kernel stack", (int)hit->pid,
                         hit->comm, (unsigned long long)hit->value, sym, (unsigned long long)hit->where);
        else
                snprintf(buf, size, "vCPU %d's stack holds 0x%llx%s at 0x%llx", hit->vcpu,
                         (unsigned long long)hit->value, sym, (unsigned long long)hit->where);
}

static int budget(struct hvp_stack_check *sc, uint64_t len)
{
        *sc->bytes += len;
        if (*sc->bytes > sc->cfg.max_bytes)
                return hvp_fail(-E2BIG, "stack check: more than %llu bytes of kernel stacks",
                                (unsigned long long)sc->cfg.max_bytes);
        if (hvp_now_ms() - sc->t0 > sc->cfg.max_ms)
                return hvp_fail(-ETIME, "stack check: longer than %.0f ms", sc->cfg.max_ms);
        return 0;
}

/* Scan [from, to) (to - from <= thread_size). -EBUSY with *hit filled. */
static int scan(struct hvp_stack_check *sc, const struct hvp_task *t, int vcpu, uint64_t from, uint64_t to,
                struct hvp_stack_hit *hit)
{
        size_t len;
        int r;

        from = (from + 7) & ~7ull;
        if (to <= from)
                return 0;
        len = (size_t)(to - from);
        if (len > sc->cfg.thread_size)
                return hvp_fail(-EINVAL, "stack check: %zu bytes to scan on one stack", len);
        r = budget(sc, len);
        if (r < 0)
                return r;
        r = kread(sc, from, sc->buf, len);
        if (r < 0)
                return r;
        for (size_t i = 0; i + 8 <= len; i += 8) {
                const struct interval *iv = lookup(sc, hvp_le64(sc->buf + i));

                if (iv) {
                        fill_hit(sc, t, vcpu, hvp_le64(sc->buf + i), from + i, iv, hit);
                        return -EBUSY;
                }
        }
        return 0;
}

static bool kernel_va(uint64_t p)
{
        return p >> 63;
}

/* Where a task's live stack is: [*from, stack top); the whole stack when sp lies outside it. */
static bool live_part(const struct hvp_stack_check *sc, const struct hvp_task *t, uint64_t *from, uint64_t *to)
{
        uint64_t top = t->stack + sc->cfg.thread_size;

        if (!t->stack || !kernel_va(t->stack) || top < t->stack)
                return false;           /* no stack: the task is gone (or never had one) */
        *from = t->sp >= t->stack && t->sp < top ? t->sp : t->stack;
        *to = top;
        return true;
}

/* Walk the list and the idle tasks. */
static int walk(struct hvp_stack_check *sc, struct hvp_task **ret, size_t *ret_n)
{
        struct hvp_task *tasks = NULL, *idle = NULL, *all;
        size_t n = 0, n_idle = 0;
        uint32_t nr_cpus = 0;
        int r;

        r = hvp_linux_tasks(&sc->km, sc->cfg.btf, sc->cfg.init_task, sc->cfg.max_tasks, &tasks, &n);
        if (r < 0)
                return r;
        if (sc->cfg.runqueues && sc->cfg.per_cpu_offset && sc->cfg.nr_cpu_ids) {
                r = kread(sc, sc->cfg.nr_cpu_ids, &nr_cpus, sizeof(nr_cpus));
                if (r == 0)
                        r = hvp_linux_idle_tasks(&sc->km, sc->cfg.btf, sc->cfg.runqueues, sc->cfg.per_cpu_offset,
                                                 nr_cpus, sc->cfg.init_task, &idle, &n_idle);
                if (r < 0) {
                        free(tasks);
                        return r;
                }
        }
        if (n_idle) {
                all = realloc(tasks, (n + n_idle) * sizeof(*all));
                if (!all) {
                        free(tasks);
                        free(idle);
                        return hvp_fail(-ENOMEM, "out of memory");
                }
                memcpy(all + n, idle, n_idle * sizeof(*all));
                tasks = all;
                n += n_idle;
        }
        free(idle);
        *ret = tasks;
        *ret_n = n;
        return 0;
}

static int cmp_rec(const void *a, const void *b)
{
        const struct rec *x = a, *y = b;

        return x->t.addr < y->t.addr ? -1 : x->t.addr > y->t.addr;
}

static const struct rec *find_rec(const struct hvp_stack_check *sc, uint64_t addr)
{
        struct rec key = { .t.addr = addr };

        return sc->nr_recs ? bsearch(&key, sc->recs, sc->nr_recs, sizeof(key), cmp_rec) : NULL;
}

static int read_forks(struct hvp_stack_check *sc, uint64_t *ret)
{
        uint8_t b[8];
        int r = kread(sc, sc->cfg.total_forks, b, sizeof(b));

        if (r < 0)
                return hvp_fail_context(r, "stack check: reading total_forks");
        *ret = hvp_le64(b);
        return 0;
}

/* Translate where each remembered field lives, for the scatter read in the pause. */
static void translate_fields(struct hvp_stack_check *sc)
{
        for (size_t i = 0; i < sc->nr_recs && sc->cfg.mmu; i++) {
                struct rec *c = &sc->recs[i];

                for (int f = 0; f < NR_HOT; f++) {
                        struct hvp_translation tr;

                        c->gpa[f] = 0;
                        if (f == F_NVCSW || f == F_NIVCSW) {
                                if (!sc->have_switches)
                                        continue;
                        }
                        if (hvp_mmu_translate(sc->cfg.mmu, c->t.addr + sc->off[f], &tr) == 0 &&
                            ((tr.pa & 4095) + sc->size[f]) <= 4096)
                                c->gpa[f] = tr.pa;
                }
        }
        hvp_clear_error();
}

int hvp_stack_check_prepare(struct hvp_stack_check *sc, const struct hvp_stack_range *ranges, size_t n,
                            struct hvp_stack_hit *ret_hit)
{
        struct hvp_task *tasks = NULL;
        size_t nt = 0;
        int r = 0;

        if (!sc || (n && !ranges) || !ret_hit)
                return hvp_fail(-EINVAL, "hvp_stack_check_prepare: bad arguments");
        sc->t0 = hvp_now_ms();
        sc->prepared = false;
        /* The guest ran: a stack's address may map other pages now (a task gone, its area reused). */
        if (sc->cfg.mmu)
                hvp_mmu_flush(sc->cfg.mmu);
        memset(&sc->st, 0, sizeof(sc->st));
        sc->bytes = &sc->st.prepare_bytes;
        r = set_ranges(sc, ranges, n);
        if (r < 0)
                return r;
        free(sc->recs);
        sc->recs = NULL;
        sc->nr_recs = 0;
        /* The fork counter first: a task created after this read moves it. */
        sc->have_forks = false;
        if (sc->cfg.total_forks) {
                r = read_forks(sc, &sc->forks);
                if (r < 0)
                        return r;
                sc->have_forks = true;
        }
        sc->walk_in_pause = true;
        for (sc->st.prepare_walk_tries = 1; sc->st.prepare_walk_tries <= WALK_TRIES; sc->st.prepare_walk_tries++) {
                r = walk(sc, &tasks, &nt);
                if (r == 0)
                        break;
                if (r != -EINVAL && r != -ELOOP && r != -EFAULT && r != -ERANGE)
                        return r;       /* not a list torn by the running guest */
                hvp_debug("stack check: walk %u: %s", sc->st.prepare_walk_tries, hvp_last_error());
        }
        if (r < 0) {
                /* Left to the pause, where the list holds still. */
                sc->prepared = true;
                sc->st.prepare_ms = hvp_now_ms() - sc->t0;
                return 0;
        }
        sc->walk_in_pause = false;
        sc->recs = calloc(nt ? nt : 1, sizeof(*sc->recs));
        if (!sc->recs) {
                free(tasks);
                return hvp_fail(-ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < nt; i++)
                sc->recs[i].t = tasks[i];
        sc->nr_recs = nt;
        sc->st.tasks = nt;
        free(tasks);
        qsort(sc->recs, sc->nr_recs, sizeof(*sc->recs), cmp_rec);
        for (size_t i = 0; i < sc->nr_recs; i++) {
                struct rec *c = &sc->recs[i];
                uint64_t from, to;

                if (c->t.on_cpu) {
                        c->pending = true;      /* a live stack: the pause looks at it */
                        continue;
                }
                if (!live_part(sc, &c->t, &from, &to))
                        continue;
                r = scan(sc, &c->t, -1, from, to, ret_hit);
                sc->st.prepare_scanned++;
                if (r == -EBUSY)
                        return r;
                if (r == -E2BIG || r == -ETIME)
                        return r;
                if (r < 0) {
                        /* torn by the running guest (the task exited?): the pause decides */
                        c->pending = true;
                        r = 0;
                }
        }
        translate_fields(sc);
        sc->prepared = true;
        sc->st.prepare_ms = hvp_now_ms() - sc->t0;
        return 0;
}

static uint64_t get_le(const uint8_t *b, unsigned size)
{
        return size == 8 ? hvp_le64(b) : hvp_le32(b);
}

#define MERGE_GAP 256   /* fields this close in one page are one piece of the scatter read */

struct hot {
        uint64_t gpa;
        unsigned size;
        int f;
};

/*
 * The remembered tasks with their sp, switch count and on_cpu as they are now: one
 * scatter read. process_vm_readv pins a page per piece, so the fields of a task that
 * share a page are read as one piece (the pause cost at 6,000 tasks went from 28 to
 * ~10 ms). A task that moved gets its cold fields (cpu, stack, exit_state) read after.
 */
static int read_hot(struct hvp_stack_check *sc, struct hvp_task **ret, bool **ret_changed)
{
        size_t n = sc->nr_recs, ni = 0, total = 0;
        struct hvp_task *tasks = calloc(n ? n : 1, sizeof(*tasks));
        bool *changed = calloc(n ? n : 1, sizeof(*changed));
        size_t *fpos = calloc(n ? n * NR_HOT : 1, sizeof(*fpos));
        uint8_t *kvals = calloc(n ? n * NR_HOT : 1, 8);
        struct hvp_phys_iov *iov = calloc(n ? n * NR_HOT : 1, sizeof(*iov));
        size_t *ioff = calloc(n ? n * NR_HOT : 1, sizeof(*ioff));
        uint8_t *scratch = NULL;
        int r = 0;

        if (!tasks || !changed || !fpos || !kvals || !iov || !ioff) {
                r = hvp_fail(-ENOMEM, "out of memory");
                goto out;
        }
        for (size_t i = 0; i < n; i++) {
                const struct rec *c = &sc->recs[i];
                struct hot h[NR_HOT];
                int nh = 0;
                uint64_t start = 0, end = 0;

                for (int f = 0; f < NR_HOT; f++) {
                        size_t k = i * NR_HOT + (size_t)f;

                        fpos[k] = SIZE_MAX;
                        if ((f == F_NVCSW || f == F_NIVCSW) && !sc->have_switches)
                                continue;
                        if (c->gpa[f]) {
                                h[nh++] = (struct hot){ c->gpa[f], sc->size[f], f };
                        } else if ((r = kread(sc, c->t.addr + sc->off[f], kvals + k * 8, sc->size[f])) < 0) {
                                goto out;
                        }
                }
                for (int a = 1; a < nh; a++)            /* by address */
                        for (int b = a; b > 0 && h[b].gpa < h[b - 1].gpa; b--) {
                                struct hot x = h[b];

                                h[b] = h[b - 1];
                                h[b - 1] = x;
                        }
                for (int j = 0; j < nh; j++) {
                        bool join = ni && j > 0 && (h[j].gpa >> 12) == (start >> 12) && h[j].gpa <= end + MERGE_GAP;

                        if (!join) {
                                start = h[j].gpa;
                                end = start;
                                ioff[ni] = total;
                                iov[ni++] = (struct hvp_phys_iov){ .gpa = start };
                        }
                        if (h[j].gpa + h[j].size > end) {
                                total += h[j].gpa + h[j].size - end;
                                end = h[j].gpa + h[j].size;
                        }
                        iov[ni - 1].len = (size_t)(end - start);
                        fpos[i * NR_HOT + (size_t)h[j].f] = ioff[ni - 1] + (size_t)(h[j].gpa - start);
                }
        }
        scratch = malloc(total ? total : 1);
        if (!scratch) {
                r = hvp_fail(-ENOMEM, "out of memory");
                goto out;
        }
        for (size_t k = 0; k < ni; k++)
                iov[k].buf = scratch + ioff[k];
        if (ni) {
                r = hvp_guest_read_phys_v(hvp_mmu_guest(sc->cfg.mmu), iov, ni);
                if (r < 0) {
                        r = hvp_fail_context(r, "stack check: reading the tasks in the pause");
                        goto out;
                }
        }
        for (size_t i = 0; i < n; i++) {
                const struct rec *c = &sc->recs[i];
                struct hvp_task *t = &tasks[i];
                uint64_t v[NR_HOT] = { 0 };

                for (int f = 0; f < NR_HOT; f++) {
                        size_t k = i * NR_HOT + (size_t)f;

                        if ((f == F_NVCSW || f == F_NIVCSW) && !sc->have_switches)
                                continue;
                        v[f] = get_le(fpos[k] != SIZE_MAX ? scratch + fpos[k] : kvals + k * 8, sc->size[f]);
                }
                *t = c->t;
                t->sp = v[F_SP];
                t->switches = v[F_NVCSW] + v[F_NIVCSW];
                t->on_cpu = v[F_ON_CPU] != 0;
                changed[i] = c->pending || c->t.on_cpu || t->on_cpu || c->t.sp != t->sp ||
                             c->t.switches != t->switches;
                if (!changed[i])
                        continue;
                /* cold fields, for the few that moved */
                uint8_t b[3][8] = { { 0 } };

                if ((r = kread(sc, c->t.addr + sc->off[F_CPU], b[0], sc->size[F_CPU])) < 0 ||
                    (r = kread(sc, c->t.addr + sc->off[F_STACK], b[1], sc->size[F_STACK])) < 0 ||
                    (r = kread(sc, c->t.addr + sc->off[F_EXIT], b[2], sc->size[F_EXIT])) < 0) {
                        r = hvp_fail_context(r, "stack check: reading the task at 0x%llx",
                                             (unsigned long long)c->t.addr);
                        goto out;
                }
                t->cpu = (int32_t)get_le(b[0], sc->size[F_CPU]);
                t->stack = get_le(b[1], sc->size[F_STACK]);
                t->exit_state = (uint32_t)get_le(b[2], sc->size[F_EXIT]);
        }
        *ret = tasks;
        *ret_changed = changed;
        tasks = NULL;
        changed = NULL;
out:
        free(tasks);
        free(changed);
        free(fpos);
        free(kvals);
        free(iov);
        free(ioff);
        free(scratch);
        return r;
}

/*
 * The tasks as they are now, with whether each must be scanned again: by the scatter
 * read of the remembered fields, or (no fork counter, a fork since, or no list from
 * prepare) by a walk.
 */
static int current_tasks(struct hvp_stack_check *sc, bool force_walk, struct hvp_task **ret, bool **ret_changed,
                         size_t *ret_n)
{
        struct hvp_task *tasks = NULL;
        bool *changed = NULL;
        size_t n = 0;
        bool rewalk = force_walk || sc->walk_in_pause || !sc->have_forks || !sc->have_switches;
        int r;

        if (!rewalk) {
                uint64_t forks;

                r = read_forks(sc, &forks);
                if (r < 0)
                        return r;
                rewalk = forks != sc->forks;
                if (rewalk && sc->no_walk && !force_walk)
                        return hvp_fail(-EAGAIN, "stack check: tasks were created since the look before the "
                                        "pause (total_forks %llu, was %llu)", (unsigned long long)forks,
                                        (unsigned long long)sc->forks);
        }
        if (rewalk) {
                sc->st.paused_walked = true;
                r = walk(sc, &tasks, &n);
                if (r < 0)
                        return hvp_fail_context(r, "stack check, in the pause");
                changed = calloc(n ? n : 1, sizeof(*changed));
                if (!changed) {
                        free(tasks);
                        return hvp_fail(-ENOMEM, "out of memory");
                }
                for (size_t i = 0; i < n; i++) {
                        const struct rec *c = find_rec(sc, tasks[i].addr);

                        changed[i] = !c || c->pending || c->t.on_cpu || tasks[i].on_cpu ||
                                     !sc->have_switches || c->t.sp != tasks[i].sp ||
                                     c->t.switches != tasks[i].switches;
                }
                sc->st.paused_checked = n;
                *ret = tasks;
                *ret_changed = changed;
                *ret_n = n;
                return 0;
        }
        n = sc->nr_recs;
        r = read_hot(sc, &tasks, &changed);
        if (r < 0)
                return r;
        sc->st.paused_checked = n;
        *ret = tasks;
        *ret_changed = changed;
        *ret_n = n;
        return 0;
}

/* The stack read failed inside the pause: fine for a task that exited, else an error. */
static int unreadable(const struct hvp_task *t, int r)
{
        if (t && t->exit_state)
                return 0;
        if (t)
                return hvp_fail_context(r, "stack check: task %d (%s): reading its stack at 0x%llx", (int)t->pid,
                                        t->comm, (unsigned long long)t->stack);
        return hvp_fail_context(r, "stack check: reading a vCPU's stack");
}

/* From a vCPU's RSP on a stack that is no task's (an IRQ or exception stack): page by page. */
static int scan_foreign(struct hvp_stack_check *sc, unsigned v, uint64_t rsp, struct hvp_stack_hit *hit)
{
        uint64_t end = rsp + sc->cfg.thread_size, at = rsp;
        int r;

        while (at < end) {
                uint64_t next = HVP_MIN((at | 4095) + 1, end);

                r = scan(sc, NULL, (int)v, at, next, hit);
                if (r == -EBUSY || r == -E2BIG || r == -ETIME)
                        return r;
                if (r < 0)
                        break;          /* the end of the stack: its guard page */
                at = next;
        }
        hvp_clear_error();
        return 0;
}

/* One look at the paused guest; -ESRCH: a stack unreadable without a walk (a task gone?). */
static int check_paused(struct hvp_stack_check *sc, bool force_walk, const struct hvp_vcpu_regs *vcpus,
                        unsigned nr_vcpus, struct hvp_stack_hit *ret_hit)
{
        struct hvp_task *tasks = NULL;
        bool *changed = NULL, *covered = NULL;
        size_t n = 0;
        int r;

        r = current_tasks(sc, force_walk, &tasks, &changed, &n);
        if (r < 0)
                goto out;
        covered = calloc(n ? n : 1, sizeof(*covered));
        if (!covered) {
                r = hvp_fail(-ENOMEM, "out of memory");
                goto out;
        }
        /* Sleeping tasks that ran since prepare: from their new sp. */
        for (size_t i = 0; i < n; i++) {
                uint64_t from, to;

                if (!changed[i] || tasks[i].on_cpu || !live_part(sc, &tasks[i], &from, &to))
                        continue;
                sc->st.paused_scanned++;
                r = scan(sc, &tasks[i], -1, from, to, ret_hit);
                if (r == -EBUSY || r == -E2BIG || r == -ETIME)
                        goto out;
                if (r < 0 && !sc->st.paused_walked) {
                        r = -ESRCH;
                        goto out;
                }
                if (r < 0 && (r = unreadable(&tasks[i], r)) < 0)
                        goto out;
        }
        /* Stacks in use on a vCPU in kernel mode: from its RSP up. */
        for (unsigned v = 0; v < nr_vcpus; v++) {
                uint64_t rsp = vcpus[v].rsp;
                size_t owner = n;

                if ((vcpus[v].cs_sel & 3) != 0 || !kernel_va(rsp))
                        continue;
                for (size_t i = 0; i < n; i++) {
                        if (tasks[i].stack && rsp >= tasks[i].stack &&
                            rsp - tasks[i].stack < sc->cfg.thread_size) {
                                owner = i;
                                break;
                        }
                }
                sc->st.paused_scanned++;
                if (owner == n) {
                        r = scan_foreign(sc, v, rsp, ret_hit);
                        if (r < 0)
                                goto out;
                        continue;
                }
                covered[owner] = true;
                r = scan(sc, &tasks[owner], (int)v, rsp, tasks[owner].stack + sc->cfg.thread_size, ret_hit);
                if (r == -EBUSY || r == -E2BIG || r == -ETIME)
                        goto out;
                if (r < 0 && (r = unreadable(&tasks[owner], r)) < 0)
                        goto out;
        }
        /*
         * On a CPU but not found from an RSP: its vCPU is in user mode (its kernel stack
         * holds no kernel frame), or on another stack (an interrupt's): then all of it.
         */
        for (size_t i = 0; i < n; i++) {
                uint64_t from, to;

                if (!tasks[i].on_cpu || covered[i] || !live_part(sc, &tasks[i], &from, &to))
                        continue;
                if (tasks[i].cpu >= 0 && (unsigned)tasks[i].cpu < nr_vcpus &&
                    (vcpus[tasks[i].cpu].cs_sel & 3) == 3)
                        continue;
                sc->st.paused_scanned++;
                r = scan(sc, &tasks[i], -1, tasks[i].stack, to, ret_hit);
                if (r == -EBUSY || r == -E2BIG || r == -ETIME)
                        goto out;
                if (r < 0 && !sc->st.paused_walked) {
                        r = -ESRCH;
                        goto out;
                }
                if (r < 0 && (r = unreadable(&tasks[i], r)) < 0)
                        goto out;
        }
        r = 0;
out:
        free(tasks);
        free(changed);
        free(covered);
        return r;
}

int hvp_stack_check_paused(struct hvp_stack_check *sc, const struct hvp_vcpu_regs *vcpus, unsigned nr_vcpus,
                           struct hvp_stack_hit *ret_hit)
{
        int r;

        if (!sc || !ret_hit || (nr_vcpus && !vcpus))
                return hvp_fail(-EINVAL, "hvp_stack_check_paused: bad arguments");
        if (!sc->prepared)
                return hvp_fail(-EINVAL, "stack check: no prepare before the pause");
        sc->t0 = hvp_now_ms();
        sc->bytes = &sc->st.paused_bytes;
        sc->st.paused_checked = sc->st.paused_scanned = 0;
        sc->st.paused_bytes = 0;
        sc->st.paused_walked = false;
        if (sc->cfg.mmu)
                hvp_mmu_flush(sc->cfg.mmu);     /* the guest ran since prepare's translations */
        r = check_paused(sc, false, vcpus, nr_vcpus, ret_hit);
        if (r == -ESRCH) {
                /* A remembered task's stack is gone: the list says who is still there. */
                hvp_debug("stack check: %s; walking the list", hvp_last_error());
                r = check_paused(sc, true, vcpus, nr_vcpus, ret_hit);
        }
        sc->st.paused_ms = hvp_now_ms() - sc->t0;
        return r;
}

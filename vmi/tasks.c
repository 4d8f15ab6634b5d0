/*
 * The guest's tasks, walked from init_task with offsets from its BTF.
 *
 * Lists (struct list_head, circular, next then prev):
 *   init_task.tasks          every thread-group leader, init_task first (as its head);
 *   signal->thread_head      every thread of the group, linked through thread_node
 *                            (3.14 and later; Debian 12's 6.1 has it);
 *   task->thread_group       older kernels: a ring through the threads, no head.
 * A task exiting is unlinked from these under tasklist_lock, so only a paused guest
 * gives a consistent picture. Every step checks that next->prev points back at where
 * it came from; a task seen twice is a loop (-ELOOP); the total is bounded; each
 * pointer is read through the reader, which refuses anything outside guest RAM.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <hvpatch/linux.h>

#include "common/error.h"
#include "common/util.h"

#define MAX_TASK_SPAN (64u << 10)       /* the bytes read per task_struct (6.1: 5.4 KiB) */
#define NO_OFF UINT64_MAX

/* A read through the caller's reader, whose failure always leaves a reason. */
static int kread(const struct hvp_kmem *km, uint64_t va, void *buf, size_t len)
{
        int r;

        hvp_clear_error();
        r = km->read(km->ctx, va, buf, len);
        if (r < 0 && !hvp_last_error()[0])
                hvp_fail(r, "%s", strerror(-r));
        return r;
}

struct layout {
        uint64_t tasks, pid, tgid, comm, comm_size, state, state_size, exit_state, stack, on_cpu, cpu, sp;
        uint64_t signal;                /* task_struct.signal, or NO_OFF */
        uint64_t thread_node;           /* task_struct.thread_node, or NO_OFF */
        uint64_t thread_head;           /* signal_struct.thread_head, or NO_OFF */
        uint64_t thread_group;          /* task_struct.thread_group, or NO_OFF */
        uint64_t nvcsw, nivcsw;         /* task_struct context-switch counts, or NO_OFF */
        uint64_t span;                  /* bytes of task_struct read: covers every field above */
};

static int member(const struct hvp_btf *btf, const char *path, uint64_t *ret_off, uint64_t *ret_size)
{
        int r = hvp_btf_member(btf, path, ret_off, ret_size);

        if (r < 0)
                return hvp_fail_context(r, "task list");
        return 0;
}

static void cover(struct layout *l, uint64_t off, uint64_t size)
{
        if (off != NO_OFF && off + size > l->span)
                l->span = off + size;
}

static int layout_from_btf(const struct hvp_btf *btf, struct layout *l)
{
        uint64_t sz;
        int r;

        *l = (struct layout){ .signal = NO_OFF, .thread_node = NO_OFF, .thread_head = NO_OFF,
                              .thread_group = NO_OFF, .nvcsw = NO_OFF, .nivcsw = NO_OFF };
        if ((r = member(btf, "task_struct.tasks", &l->tasks, NULL)) < 0 ||
            (r = member(btf, "task_struct.pid", &l->pid, NULL)) < 0 ||
            (r = member(btf, "task_struct.tgid", &l->tgid, NULL)) < 0 ||
            (r = member(btf, "task_struct.comm", &l->comm, &l->comm_size)) < 0 ||
            (r = member(btf, "task_struct.exit_state", &l->exit_state, NULL)) < 0 ||
            (r = member(btf, "task_struct.stack", &l->stack, NULL)) < 0 ||
            (r = member(btf, "task_struct.on_cpu", &l->on_cpu, NULL)) < 0 ||
            (r = member(btf, "task_struct.thread.sp", &l->sp, NULL)) < 0)
                return r;
        /* 5.14 renamed state to __state (and made it unsigned int from long). */
        if (hvp_btf_member(btf, "task_struct.__state", &l->state, &l->state_size) < 0 &&
            (r = member(btf, "task_struct.state", &l->state, &l->state_size)) < 0)
                return r;
        /* The CPU is in thread_info (x86 until 5.15) or task_struct itself (5.16 and later). */
        if (hvp_btf_member(btf, "task_struct.cpu", &l->cpu, NULL) < 0 &&
            (r = member(btf, "task_struct.thread_info.cpu", &l->cpu, NULL)) < 0)
                return r;
        if (hvp_btf_member(btf, "task_struct.thread_node", &l->thread_node, NULL) == 0 &&
            hvp_btf_member(btf, "signal_struct.thread_head", &l->thread_head, NULL) == 0 &&
            (r = member(btf, "task_struct.signal", &l->signal, NULL)) < 0)
                return r;
        if (l->thread_head == NO_OFF || l->thread_node == NO_OFF) {
                l->thread_node = l->thread_head = l->signal = NO_OFF;
                if ((r = member(btf, "task_struct.thread_group", &l->thread_group, NULL)) < 0)
                        return r;
        }
        /* Optional: the stack check tells a task that ran since it looked (hvpatch/stackcheck.h). */
        if (hvp_btf_member(btf, "task_struct.nvcsw", &l->nvcsw, NULL) < 0 ||
            hvp_btf_member(btf, "task_struct.nivcsw", &l->nivcsw, NULL) < 0)
                l->nvcsw = l->nivcsw = NO_OFF;
        if (l->comm_size == 0 || l->comm_size > 64)
                return hvp_fail(-EINVAL, "task list: task_struct.comm has %llu bytes",
                                (unsigned long long)l->comm_size);
        if (l->state_size != 4 && l->state_size != 8)
                return hvp_fail(-EINVAL, "task list: task_struct state has %llu bytes",
                                (unsigned long long)l->state_size);
        cover(l, l->tasks, 16);
        cover(l, l->pid, 4);
        cover(l, l->tgid, 4);
        cover(l, l->comm, l->comm_size);
        cover(l, l->state, l->state_size);
        cover(l, l->exit_state, 4);
        cover(l, l->stack, 8);
        cover(l, l->on_cpu, 4);
        cover(l, l->cpu, 4);
        cover(l, l->sp, 8);
        cover(l, l->signal, 8);
        cover(l, l->thread_node, 16);
        cover(l, l->thread_group, 16);
        cover(l, l->nvcsw, 8);
        cover(l, l->nivcsw, 8);
        if (hvp_btf_struct_size(btf, "task_struct", &sz) == 0 && l->span > sz)
                return hvp_fail(-EINVAL, "task list: task_struct fields end past its size %llu",
                                (unsigned long long)sz);
        if (l->span > MAX_TASK_SPAN)
                return hvp_fail(-E2BIG, "task list: task_struct fields span %llu bytes",
                                (unsigned long long)l->span);
        return 0;
}

/* Open-addressed set of task addresses (never 0: 0 marks a free slot). */
struct seen {
        uint64_t *slot;
        size_t cap;             /* a power of two */
        size_t n;
};

static uint64_t mix(uint64_t x)
{
        x ^= x >> 33;
        x *= 0xff51afd7ed558ccdull;
        x ^= x >> 33;
        return x;
}

/* 1 if added, 0 if already there, -ENOMEM. */
static int seen_add(struct seen *s, uint64_t a)
{
        if ((s->n + 1) * 2 > s->cap) {
                size_t ncap = s->cap ? s->cap * 2 : 1024;
                uint64_t *ns = calloc(ncap, sizeof(*ns));

                if (!ns)
                        return -ENOMEM;
                for (size_t i = 0; i < s->cap; i++) {
                        if (!s->slot[i])
                                continue;
                        size_t j = mix(s->slot[i]) & (ncap - 1);

                        while (ns[j])
                                j = (j + 1) & (ncap - 1);
                        ns[j] = s->slot[i];
                }
                free(s->slot);
                s->slot = ns;
                s->cap = ncap;
        }
        size_t j = mix(a) & (s->cap - 1);

        while (s->slot[j]) {
                if (s->slot[j] == a)
                        return 0;
                j = (j + 1) & (s->cap - 1);
        }
        s->slot[j] = a;
        s->n++;
        return 1;
}

struct walk {
        const struct hvp_kmem *km;
        struct layout l;
        struct seen seen;
        struct hvp_task *tasks;
        size_t n, cap, max;
        uint8_t *buf;           /* l.span bytes */
};

/* A kernel pointer: upper half, 8-byte aligned (list_head and task_struct are). */
static bool kernel_ptr(uint64_t p)
{
        return (p >> 63) && (p & 7) == 0;
}

static int read_u64(const struct walk *w, uint64_t va, uint64_t *ret)
{
        uint8_t b[8];
        int r = kread(w->km, va, b, sizeof(b));

        if (r < 0)
                return r;
        *ret = hvp_le64(b);
        return 0;
}

/*
 * From list node cur (whose prev must be prev), read the next node, checking that it
 * is a kernel pointer. what names the list for the reason.
 */
static int list_next(const struct walk *w, uint64_t cur, uint64_t prev, const char *what, uint64_t *ret_next)
{
        uint64_t next, back;
        uint8_t node[16];
        int r;

        r = kread(w->km, cur, node, sizeof(node));      /* next, prev */
        if (r < 0)
                return hvp_fail_context(r, "%s: reading the list node at 0x%llx", what, (unsigned long long)cur);
        next = hvp_le64(node);
        back = hvp_le64(node + 8);
        if (back != prev)
                return hvp_fail(-EINVAL, "%s: the node at 0x%llx points back at 0x%llx, not 0x%llx "
                                         "(a list changing under the walk, or corrupt)",
                                what, (unsigned long long)cur, (unsigned long long)back,
                                (unsigned long long)prev);
        if (!kernel_ptr(next))
                return hvp_fail(-EINVAL, "%s: the node at 0x%llx points at 0x%llx, not a kernel address",
                                what, (unsigned long long)cur, (unsigned long long)next);
        *ret_next = next;
        return 0;
}

char hvp_task_state_char(uint32_t state, uint32_t exit_state)
{
        /* include/linux/sched.h: TASK_REPORT (0x7f) bits in order, then TASK_REPORT_IDLE. */
        static const char letters[] = "RSDTtXZPI";
        uint32_t s = (state | exit_state) & 0x7f;
        unsigned idx = 0;

        if ((state & 0x402) == 0x402)           /* TASK_IDLE: UNINTERRUPTIBLE | NOLOAD */
                s = 0x80;
        else if (state == 0x1000)               /* TASK_RTLOCK_WAIT reports as D */
                s = 0x2;
        while (s) {
                idx++;
                s >>= 1;
        }
        return letters[idx];
}

static int add_task(struct walk *w, uint64_t addr)
{
        const struct layout *l = &w->l;
        struct hvp_task *t;
        int r;

        r = seen_add(&w->seen, addr);
        if (r < 0)
                return hvp_fail(-ENOMEM, "out of memory");
        if (r == 0)
                return hvp_fail(-ELOOP, "task list: the task at 0x%llx comes up twice (the list loops)",
                                (unsigned long long)addr);
        if (w->n >= w->max)
                return hvp_fail(-E2BIG, "task list: more than %zu tasks", w->max);
        r = kread(w->km, addr, w->buf, l->span);
        if (r < 0)
                return hvp_fail_context(r, "task list: reading the task_struct at 0x%llx", (unsigned long long)addr);
        if (w->n == w->cap) {
                size_t ncap = w->cap ? w->cap * 2 : 256;
                struct hvp_task *nt = realloc(w->tasks, ncap * sizeof(*nt));

                if (!nt)
                        return hvp_fail(-ENOMEM, "out of memory");
                w->tasks = nt;
                w->cap = ncap;
        }
        t = &w->tasks[w->n++];
        *t = (struct hvp_task){ .addr = addr };
        t->pid = (int32_t)hvp_le32(w->buf + l->pid);
        t->tgid = (int32_t)hvp_le32(w->buf + l->tgid);
        memcpy(t->comm, w->buf + l->comm, HVP_MIN(l->comm_size, sizeof(t->comm) - 1));
        t->comm[HVP_MIN(l->comm_size, sizeof(t->comm) - 1)] = '\0';
        t->state = hvp_le32(w->buf + l->state);         /* the low half of an old long state */
        t->exit_state = hvp_le32(w->buf + l->exit_state);
        t->state_char = hvp_task_state_char(t->state, t->exit_state);
        t->cpu = (int32_t)hvp_le32(w->buf + l->cpu);
        t->on_cpu = hvp_le32(w->buf + l->on_cpu) != 0;
        t->stack = hvp_le64(w->buf + l->stack);
        t->sp = hvp_le64(w->buf + l->sp);
        if (l->nvcsw != NO_OFF)
                t->switches = hvp_le64(w->buf + l->nvcsw) + hvp_le64(w->buf + l->nivcsw);
        return 0;
}

/* The threads of the group led by the task at leader (already added), but the leader. */
static int walk_threads(struct walk *w, uint64_t leader)
{
        const struct layout *l = &w->l;
        uint64_t head, prev, cur, signal;
        int r;

        if (l->thread_head != NO_OFF) {
                r = read_u64(w, leader + l->signal, &signal);
                if (r < 0)
                        return hvp_fail_context(r, "task list: reading signal of the task at 0x%llx",
                                                (unsigned long long)leader);
                if (!kernel_ptr(signal))
                        return hvp_fail(-EINVAL, "task list: the task at 0x%llx has signal 0x%llx",
                                        (unsigned long long)leader, (unsigned long long)signal);
                head = signal + l->thread_head;
        } else {
                head = leader + l->thread_group;
        }
        /* The head's prev is the last node: where the walk ends, not checked from here. */
        r = read_u64(w, head, &cur);
        if (r < 0)
                return hvp_fail_context(r, "thread list: reading its head at 0x%llx", (unsigned long long)head);
        if (!kernel_ptr(cur))
                return hvp_fail(-EINVAL, "thread list: its head at 0x%llx points at 0x%llx, not a kernel address",
                                (unsigned long long)head, (unsigned long long)cur);
        prev = head;
        while (cur != head) {
                uint64_t node_off = l->thread_head != NO_OFF ? l->thread_node : l->thread_group;
                uint64_t task = cur - node_off, next;

                if (task != leader) {           /* signal->thread_head holds the leader too */
                        r = add_task(w, task);
                        if (r < 0)
                                return r;
                }
                r = list_next(w, cur, prev, "thread list", &next);
                if (r < 0)
                        return r;
                prev = cur;
                cur = next;
                /* A ring that never comes back to its head adds a task twice: -ELOOP above. */
        }
        return 0;
}

int hvp_linux_tasks(const struct hvp_kmem *km, const struct hvp_btf *btf, uint64_t init_task, size_t max_tasks,
                    struct hvp_task **ret_tasks, size_t *ret_count)
{
        struct walk w = { .km = km };
        uint64_t head, prev, cur;
        int r;

        if (!km || !km->read || !btf || !ret_tasks || !ret_count)
                return hvp_fail(-EINVAL, "hvp_linux_tasks: bad arguments");
        if (!kernel_ptr(init_task))
                return hvp_fail(-EINVAL, "task list: init_task 0x%llx is not a kernel address",
                                (unsigned long long)init_task);
        w.max = max_tasks == 0 || max_tasks > HVP_TASKS_MAX_DEFAULT ? HVP_TASKS_MAX_DEFAULT : max_tasks;
        r = layout_from_btf(btf, &w.l);
        if (r < 0)
                return r;
        w.buf = malloc(w.l.span);
        if (!w.buf)
                return hvp_fail(-ENOMEM, "out of memory");

        head = init_task + w.l.tasks;
        r = add_task(&w, init_task);
        if (r < 0)
                goto out;
        r = walk_threads(&w, init_task);
        if (r < 0)
                goto out;
        r = read_u64(&w, head, &cur);
        if (r < 0) {
                r = hvp_fail_context(r, "task list: reading init_task.tasks at 0x%llx", (unsigned long long)head);
                goto out;
        }
        if (!kernel_ptr(cur)) {
                r = hvp_fail(-EINVAL, "task list: init_task.tasks points at 0x%llx, not a kernel address",
                             (unsigned long long)cur);
                goto out;
        }
        prev = head;
        while (cur != head) {
                uint64_t task = cur - w.l.tasks, next;

                r = add_task(&w, task);
                if (r < 0)
                        goto out;
                r = walk_threads(&w, task);
                if (r < 0)
                        goto out;
                r = list_next(&w, cur, prev, "task list", &next);
                if (r < 0)
                        goto out;
                prev = cur;
                cur = next;
        }
        *ret_tasks = w.tasks;
        *ret_count = w.n;
        w.tasks = NULL;
        r = 0;
out:
        free(w.tasks);
        free(w.seen.slot);
        free(w.buf);
        return r;
}

int hvp_linux_idle_tasks(const struct hvp_kmem *km, const struct hvp_btf *btf, uint64_t runqueues,
                         uint64_t per_cpu_offset, uint32_t nr_cpus, uint64_t init_task, struct hvp_task **ret_tasks,
                         size_t *ret_count)
{
        struct walk w = { .km = km, .max = HVP_TASKS_MAX_CPUS };
        uint64_t idle_off;
        int r;

        if (!km || !km->read || !btf || !ret_tasks || !ret_count)
                return hvp_fail(-EINVAL, "hvp_linux_idle_tasks: bad arguments");
        if (nr_cpus > HVP_TASKS_MAX_CPUS)
                return hvp_fail(-E2BIG, "idle tasks: nr_cpu_ids %u is more than %u", nr_cpus, HVP_TASKS_MAX_CPUS);
        r = hvp_btf_member(btf, "rq.idle", &idle_off, NULL);
        if (r < 0)
                return hvp_fail_context(r, "idle tasks");
        r = layout_from_btf(btf, &w.l);
        if (r < 0)
                return r;
        w.buf = malloc(w.l.span);
        if (!w.buf)
                return hvp_fail(-ENOMEM, "out of memory");
        if (seen_add(&w.seen, init_task) < 0) {
                r = hvp_fail(-ENOMEM, "out of memory");
                goto out;
        }
        for (uint32_t cpu = 1; cpu < nr_cpus; cpu++) {
                uint64_t off, idle;

                r = read_u64(&w, per_cpu_offset + 8ull * cpu, &off);
                if (r == 0)
                        r = read_u64(&w, runqueues + off + idle_off, &idle);
                if (r < 0) {
                        r = hvp_fail_context(r, "idle tasks: reading CPU %u's runqueue", cpu);
                        goto out;
                }
                if (!kernel_ptr(idle)) {
                        r = hvp_fail(-EINVAL, "idle tasks: CPU %u's idle task is 0x%llx, not a kernel address", cpu,
                                     (unsigned long long)idle);
                        goto out;
                }
                r = add_task(&w, idle);
                if (r < 0)
                        goto out;
        }
        *ret_tasks = w.tasks;
        *ret_count = w.n;
        w.tasks = NULL;
        r = 0;
out:
        free(w.tasks);
        free(w.seen.slot);
        free(w.buf);
        return r;
}

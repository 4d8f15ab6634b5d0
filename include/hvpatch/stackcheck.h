/*
 * The stack check (the consistency check before every write): no task of the guest
 * may hold a saved instruction pointer or a return address inside a range that a
 * transaction changes, or it would resume into bytes that are no longer the
 * instructions it left.
 *
 * A conservative scan: every aligned 8-byte value on the live part of each task's
 * kernel stack, from its saved stack pointer (thread.sp) to the top of its stack
 * (task_struct.stack + THREAD_SIZE), is compared with the ranges. A value v hits a
 * range [start, end) when start < v <= end: a return address points just after its
 * call, so v == end means the call was the range's last instruction, and v strictly
 * inside means a task would resume mid-range. v == start is no hit: execution that
 * resumes at the first byte runs the new instructions whole, as every task entering
 * later does, and counting it would make every function pointer to a redirected
 * function (a callback kept on a stack) a hit that never goes away. Data that only
 * looks like an address is a false positive: it costs a retry, never a write.
 *
 * Two phases, so that the pause window stays short (docs/design-notes.md):
 *   hvp_stack_check_prepare()  while the guest runs: walk the task list (BTF,
 *       hvpatch/linux.h), read and scan every sleeping task's live stack, remember
 *       per task its saved sp and its switch count (nvcsw + nivcsw), and translate
 *       where those live; read the kernel's fork counter (total_forks).
 *   hvp_stack_check_paused()   inside the pause: one scatter read of every task's sp,
 *       switch count, on_cpu and cpu; only tasks that ran since (either changed, or on
 *       a CPU now or then) are scanned again; a task on a CPU is scanned from its
 *       vCPU's RSP when that vCPU is in kernel mode (nothing when it is in user mode:
 *       its kernel stack holds no kernel frame), else all of its stack. When the fork
 *       counter moved (a task was created since), the list is walked again, paused.
 * A task that exited is no hazard: it never runs again.
 *
 * Guest memory is hostile: the tasks are bounded (max_tasks, the walk's loop checks),
 * the bytes read per task by THREAD_SIZE, the total by max_bytes, the time by max_ms.
 *
 * Errors:
 *   -EBUSY     a task holds an address inside a range: *ret_hit names it (nothing is
 *              retried here: the caller retries within its bound)
 *   -EAGAIN    (paused) tasks were created since prepare and the walk was not allowed
 *   -ENOENT    the BTF lacks what the check needs (the reason names it)
 *   -E2BIG     more stack bytes than max_bytes, more tasks than max_tasks
 *   -ETIME     the check took longer than max_ms
 *   -EINVAL    bad arguments, paused() before prepare(); walk errors (hvpatch/linux.h)
 *   -EFAULT    a stack that must be scanned could not be read (inside the pause)
 */
#ifndef HVPATCH_STACKCHECK_H
#define HVPATCH_STACKCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hvpatch/btf.h>
#include <hvpatch/guest.h>
#include <hvpatch/kernel.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HVP_STACK_THREAD_SIZE_DEFAULT (16u << 10)       /* x86-64 without KASAN */
#define HVP_STACK_THREAD_SIZE_MAX (64u << 10)
#define HVP_STACK_MAX_BYTES_DEFAULT (512ull << 20)
#define HVP_STACK_MAX_MS_DEFAULT 30000.0
#define HVP_STACK_MAX_RANGES 4096
#define HVP_STACK_MAX_VCPUS 1024        /* the vCPUs looked at in the pause */

/* A range being changed: [start, end). */
struct hvp_stack_range {
        uint64_t start, end;
};

struct hvp_stack_config {
        const struct hvp_kmem *km;      /* kernel memory (copied) */
        struct hvp_mmu *mmu;            /* optional: one scatter read inside the pause */
        const struct hvp_btf *btf;
        const struct hvp_symtab *symtab;        /* optional: names addresses in reasons */
        uint64_t init_task;             /* the symbol's address */
        uint64_t runqueues, per_cpu_offset, nr_cpu_ids;  /* addresses (0: no idle tasks of other CPUs) */
        uint64_t total_forks;           /* address (0: the list is walked again in every pause) */
        uint64_t thread_size;           /* 0: the BTF's union thread_union, else 16 KiB */
        size_t max_tasks;               /* 0: HVP_TASKS_MAX_DEFAULT */
        uint64_t max_bytes;             /* 0: HVP_STACK_MAX_BYTES_DEFAULT, per phase */
        double max_ms;                  /* 0: HVP_STACK_MAX_MS_DEFAULT, per phase */
};

/* Who holds what. */
struct hvp_stack_hit {
        uint64_t task;                  /* task_struct; 0 for a vCPU's stack that is no task's */
        int32_t pid;
        char comm[32];
        int vcpu;                       /* the vCPU whose RSP the scan started from, -1 if none */
        uint64_t value;                 /* the address found */
        uint64_t where;                 /* the stack slot that holds it */
        size_t range;                   /* index into the ranges given */
        char symbol[160];               /* "name+0xoff" of value, "" if unknown */
};

struct hvp_stack_stats {
        size_t tasks;                   /* tasks known after prepare */
        size_t prepare_scanned;         /* stacks scanned before the pause */
        uint64_t prepare_bytes;
        double prepare_ms;
        size_t paused_checked;          /* tasks whose sp/switch count were re-read in the pause */
        size_t paused_scanned;          /* stacks scanned again in the pause (vCPU stacks too) */
        uint64_t paused_bytes;
        bool paused_walked;             /* the list was walked again in the pause */
        double paused_ms;
        unsigned prepare_walk_tries;
};

struct hvp_stack_check;

/* cfg is copied; km, mmu, btf and symtab must outlive the check. */
int hvp_stack_check_new(const struct hvp_stack_config *cfg, struct hvp_stack_check **ret);
void hvp_stack_check_free(struct hvp_stack_check *sc);

/*
 * Before the pause (the guest may run): remember the ranges (copied; at most
 * HVP_STACK_MAX_RANGES), walk and scan. A list torn by the running guest is walked
 * again (3 tries), then left to the pause. May be called again (a retry).
 */
int hvp_stack_check_prepare(struct hvp_stack_check *sc, const struct hvp_stack_range *ranges, size_t n,
                            struct hvp_stack_hit *ret_hit);

/*
 * Inside the pause: re-check what can have changed since prepare. vcpus: the
 * registers read inside this pause (NULL, 0: unknown; a task on a CPU is then
 * scanned whole).
 */
int hvp_stack_check_paused(struct hvp_stack_check *sc, const struct hvp_vcpu_regs *vcpus, unsigned nr_vcpus,
                           struct hvp_stack_hit *ret_hit);

/*
 * Whether the pause may walk the list when the fork counter moved (default: yes). A
 * walk costs the pause ~50 us a task: a caller with attempts left says no, and
 * hvp_stack_check_paused() then returns -EAGAIN (reason: tasks were created since),
 * having read nothing but the counter: resume, prepare again, retry.
 */
void hvp_stack_check_set_walk_in_pause(struct hvp_stack_check *sc, bool allowed);

void hvp_stack_check_stats(const struct hvp_stack_check *sc, struct hvp_stack_stats *ret);

/* A hit in words: "task 123 (sleep) holds 0x... (sym+0x..) at 0x... on its kernel stack". */
void hvp_stack_hit_describe(const struct hvp_stack_hit *hit, char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif

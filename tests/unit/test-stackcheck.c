/*
 * The stack check (vmi/stackcheck.c) on synthetic task lists and stacks: BTF from
 * btf-gen.h, task_structs and kernel stacks in a memory image. Which values hit a
 * range (the boundaries of a replace site and of a redirect's 5-byte entry), the
 * part of a stack that is live, what the pause re-checks (tasks that ran, a task
 * created since, tasks on a CPU from their vCPU's RSP), hostile stacks and bounds,
 * and hvp_plan_apply refusing and then applying once the task has left.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include <hvpatch/apply.h>
#include <hvpatch/btf.h>
#include <hvpatch/hvpatch.h>
#include <hvpatch/linux.h>
#include <hvpatch/paging.h>
#include <hvpatch/stackcheck.h>

#include "btf-gen.h"

#define BASE 0xffff888000000000ull
#define MEM_SIZE (64u << 10)
#define SBASE 0xffffc90000000000ull
#define NSTACKS 8
#define TS 0x4000ull
#define TASK_VA(i) (BASE + (uint64_t)(i) * 0x400)
#define SIG_VA(i) (BASE + 0x8000 + (uint64_t)(i) * 0x100)
#define FORKS_VA (BASE + 0xa000)
#define STACK_VA(i) (SBASE + (uint64_t)(i) * TS)
#define TOP(i) (STACK_VA(i) + TS)

/* A replace site of 6 bytes and a redirect's entry (after a 4-byte endbr64). */
#define SITE 0xffffffff81001000ull
#define FUNC 0xffffffff81002000ull

struct fx {
        struct btfgen_mem tasks, stacks;
        /* the mmu variant: both images inside guest RAM, mapped by page tables */
        uint8_t *ram;
        struct hvp_guest *g;
        struct hvp_mmu *mmu;
        struct hvp_btf *btf;
        struct hvp_kmem km;
        struct hvp_stack_check *sc;
        unsigned nr;
};

static uint64_t btfgen_get_raw(const uint8_t *p)
{
        uint64_t v = 0;

        for (int i = 7; i >= 0; i--)
                v = v << 8 | p[i];
        return v;
}

static void btfgen_put_raw(uint8_t *p, uint64_t v)
{
        for (int i = 0; i < 8; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

static int fx_read(void *ctx, uint64_t va, void *buf, size_t len)
{
        struct fx *f = ctx;

        if (va >= SBASE)
                return btfgen_mem_read(&f->stacks, va, buf, len);
        return btfgen_mem_read(&f->tasks, va, buf, len);
}

/* Task slot i: pid, comm, its stack slot s, sp at TOP(s) - live bytes. */
static void add_task(struct fx *f, unsigned i, int pid, const char *comm, unsigned s, uint64_t live)
{
        uint64_t t = TASK_VA(i), sig = SIG_VA(i);

        btfgen_task(&f->tasks, BTFGEN_NEW, t, pid, pid, comm, 1, 0, sig);
        btfgen_put(&f->tasks, t + T_STACK, STACK_VA(s), 8);
        btfgen_put(&f->tasks, t + T_SP, TOP(s) - live, 8);
        btfgen_list_init(&f->tasks, sig + SIG_THREAD_HEAD);
        btfgen_list_add_tail(&f->tasks, sig + SIG_THREAD_HEAD, t + T_THREAD_NODE);
        if (i != 0)
                btfgen_list_add_tail(&f->tasks, TASK_VA(0) + T_TASKS, t + T_TASKS);
}

static void put_stack(struct fx *f, uint64_t va, uint64_t v)
{
        btfgen_put(&f->stacks, va, v, 8);
}

static void bump(struct fx *f, unsigned i, uint64_t sp)
{
        btfgen_put(&f->tasks, TASK_VA(i) + T_NVCSW, btfgen_get(&f->tasks, TASK_VA(i) + T_NVCSW, 8) + 1, 8);
        if (sp)
                btfgen_put(&f->tasks, TASK_VA(i) + T_SP, sp, 8);
}

static struct hvp_stack_check *new_check(struct fx *f, bool forks, uint64_t max_bytes)
{
        struct hvp_stack_config cfg = { .km = &f->km, .mmu = f->mmu, .btf = f->btf, .init_task = TASK_VA(0),
                                        .total_forks = forks ? FORKS_VA : 0, .thread_size = TS,
                                        .max_bytes = max_bytes };
        struct hvp_stack_check *sc = NULL;

        assert_int_equal(hvp_stack_check_new(&cfg, &sc), 0);
        return sc;
}

/* init_task (0, swapper/0), 10 "sleep", 11 "worker": each with 0x100 live bytes of zeros. */
static void populate(struct fx *f)
{
        btfgen_list_init(&f->tasks, TASK_VA(0) + T_TASKS);
        add_task(f, 0, 0, "swapper/0", 0, 0x100);
        add_task(f, 1, 10, "sleep", 1, 0x100);
        add_task(f, 2, 11, "worker", 2, 0x100);
        btfgen_put(&f->tasks, FORKS_VA, 3, 8);
        f->sc = new_check(f, true, 0);
}

static struct fx *fx_new(void)
{
        struct fx *f = calloc(1, sizeof(*f));
        struct btf *b = btfgen_build(BTFGEN_NEW);
        size_t len;
        void *raw = btfgen_raw(b, &len);

        assert_non_null(f);
        assert_int_equal(hvp_btf_new(raw, len, &f->btf), 0);
        free(raw);
        return f;
}

static int setup(void **state)
{
        struct fx *f = fx_new();

        f->tasks = (struct btfgen_mem){ calloc(1, MEM_SIZE), MEM_SIZE, BASE, 0 };
        f->stacks = (struct btfgen_mem){ calloc(1, NSTACKS * TS), NSTACKS * TS, SBASE, 0 };
        assert_non_null(f->tasks.data);
        assert_non_null(f->stacks.data);
        f->km = (struct hvp_kmem){ .read = fx_read, .ctx = f };
        populate(f);
        *state = f;
        return 0;
}

/*
 * The same images in guest RAM behind 4-level page tables (4 KiB pages): the pause
 * then reads the tasks' fields with one scatter read of guest-physical pieces.
 */
#define RAM_SIZE (1u << 20)
#define TASKS_GPA 0x40000u
#define STACKS_GPA 0x60000u
static uint64_t next_table;

static uint64_t pt_entry(uint8_t *ram, uint64_t root, uint64_t va)
{
        uint64_t table = root;

        for (int l = 4; l > 1; l--) {
                uint64_t ea = table + ((va >> (12 + 9 * (l - 1))) & 511) * 8, e = btfgen_get_raw(ram + ea);

                if (!(e & 1)) {
                        e = next_table | 3;
                        next_table += 4096;
                        btfgen_put_raw(ram + ea, e);
                }
                table = e & ~0xfffull;
        }
        return table + ((va >> 12) & 511) * 8;
}

static int setup_mmu(void **state)
{
        struct fx *f = fx_new();
        struct hvp_mem_region region;
        uint64_t root = 0x1000;

        f->ram = calloc(1, RAM_SIZE);
        assert_non_null(f->ram);
        next_table = 0x2000;
        for (uint64_t o = 0; o < MEM_SIZE; o += 4096)
                btfgen_put_raw(f->ram + pt_entry(f->ram, root, BASE + o), (TASKS_GPA + o) | 3);
        for (uint64_t o = 0; o < NSTACKS * TS; o += 4096)
                btfgen_put_raw(f->ram + pt_entry(f->ram, root, SBASE + o), (STACKS_GPA + o) | 3);
        assert_true(next_table <= TASKS_GPA);
        f->tasks = (struct btfgen_mem){ f->ram + TASKS_GPA, MEM_SIZE, BASE, 0 };
        f->stacks = (struct btfgen_mem){ f->ram + STACKS_GPA, NSTACKS * TS, SBASE, 0 };
        region = (struct hvp_mem_region){ 0, RAM_SIZE, f->ram };
        assert_int_equal(hvp_guest_open_memory(&region, 1, NULL, 0, false, &f->g), 0);
        assert_int_equal(hvp_mmu_new(f->g, root, HVP_PAGING_4LEVEL, true, &f->mmu), 0);
        hvp_kmem_from_mmu(f->mmu, &f->km);
        populate(f);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fx *f = *state;

        hvp_stack_check_free(f->sc);
        hvp_btf_free(f->btf);
        if (f->ram) {
                hvp_mmu_free(f->mmu);
                hvp_guest_free(f->g);
                free(f->ram);
        } else {
                free(f->tasks.data);
                free(f->stacks.data);
        }
        free(f);
        return 0;
}

static int prepare(struct fx *f, const struct hvp_stack_range *rg, size_t n, struct hvp_stack_hit *hit)
{
        return hvp_stack_check_prepare(f->sc, rg, n, hit);
}

/* Which values hit a replace site [SITE, SITE+6): start < v <= end. */
static void test_replace_site_bounds(void **state)
{
        struct fx *f = *state;
        struct hvp_stack_range rg[] = { { FUNC + 0x100, FUNC + 0x110 }, { SITE, SITE + 6 } };
        struct hvp_stack_hit hit;
        static const struct {
                uint64_t v;
                bool hits;
        } cases[] = {
                { SITE - 1, false }, { SITE, false }, { SITE + 1, true }, { SITE + 5, true },
                { SITE + 6, true }, { SITE + 7, false }, { 0, false },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                put_stack(f, TOP(1) - 0x40, cases[i].v);
                memset(&hit, 0, sizeof(hit));
                assert_int_equal(prepare(f, rg, 2, &hit), cases[i].hits ? -EBUSY : 0);
                if (cases[i].hits) {
                        assert_int_equal(hit.pid, 10);
                        assert_string_equal(hit.comm, "sleep");
                        assert_int_equal(hit.task, TASK_VA(1));
                        assert_int_equal(hit.value, cases[i].v);
                        assert_int_equal(hit.where, TOP(1) - 0x40);
                        assert_int_equal(hit.range, 1);         /* the index given, not the sorted one */
                        assert_int_equal(hit.vcpu, -1);
                }
        }
        /* Below the saved sp the bytes are stale: never a hit. */
        put_stack(f, TOP(1) - 0x40, 0);
        put_stack(f, TOP(1) - 0x108, SITE + 2);
        assert_int_equal(prepare(f, rg, 2, &hit), 0);
        /* The same value on the live part is. */
        put_stack(f, TOP(2) - 0x100, SITE + 2);
        assert_int_equal(prepare(f, rg, 2, &hit), -EBUSY);
        assert_string_equal(hit.comm, "worker");
        assert_int_equal(hit.where, TOP(2) - 0x100);
}

/*
 * A redirect changes the 5-byte entry after endbr64: [FUNC+4, FUNC+9). A pointer to
 * the function (a callback on a stack) is no hit, nor FUNC+4 (resuming there runs the
 * jump whole); a return address after a call in those bytes (ftrace's) is.
 */
static void test_redirect_entry(void **state)
{
        struct fx *f = *state;
        struct hvp_stack_range rg = { FUNC + 4, FUNC + 9 };
        struct hvp_stack_hit hit;
        char text[512];

        put_stack(f, TOP(1) - 0x20, FUNC);
        put_stack(f, TOP(1) - 0x28, FUNC + 4);
        put_stack(f, TOP(1) - 0x30, FUNC + 10);
        assert_int_equal(prepare(f, &rg, 1, &hit), 0);
        put_stack(f, TOP(1) - 0x38, FUNC + 9);
        assert_int_equal(prepare(f, &rg, 1, &hit), -EBUSY);
        assert_int_equal(hit.value, FUNC + 9);
        hvp_stack_hit_describe(&hit, text, sizeof(text));
        assert_non_null(strstr(text, "task 10 (sleep) holds 0xffffffff81002009"));
}

/* The pause scans again only tasks that ran (sp or switch count moved) or were created. */
static void test_paused_rechecks_what_moved(void **state)
{
        struct fx *f = *state;
        struct hvp_stack_range rg = { SITE, SITE + 6 };
        struct hvp_stack_stats st;
        struct hvp_stack_hit hit;

        assert_int_equal(prepare(f, &rg, 1, &hit), 0);
        hvp_stack_check_stats(f->sc, &st);
        assert_int_equal(st.tasks, 3);
        assert_int_equal(st.prepare_scanned, 3);
        assert_int_equal(st.prepare_bytes, 3 * 0x100);
        assert_int_equal(hvp_stack_check_paused(f->sc, NULL, 0, &hit), 0);
        hvp_stack_check_stats(f->sc, &st);
        assert_int_equal(st.paused_checked, 3);
        assert_int_equal(st.paused_scanned, 0);
        assert_false(st.paused_walked);

        /* Not run since (same sp, same count): its stack is not read again. */
        put_stack(f, TOP(1) - 0x10, SITE + 3);
        assert_int_equal(hvp_stack_check_paused(f->sc, NULL, 0, &hit), 0);
        /* It ran and slept again, deeper: scanned from its new sp, and found. */
        bump(f, 1, TOP(1) - 0x200);
        assert_int_equal(hvp_stack_check_paused(f->sc, NULL, 0, &hit), -EBUSY);
        assert_int_equal(hit.pid, 10);
        hvp_stack_check_stats(f->sc, &st);
        assert_int_equal(st.paused_scanned, 1);
        assert_int_equal(st.paused_bytes, 0x200);
        /* Only the switch count moved (same sp): scanned again too. */
        assert_int_equal(prepare(f, &rg, 1, &hit), -EBUSY);   /* prepare sees it now */
        put_stack(f, TOP(1) - 0x10, 0);
        assert_int_equal(prepare(f, &rg, 1, &hit), 0);
        put_stack(f, TOP(1) - 0x18, SITE + 6);
        bump(f, 1, 0);
        assert_int_equal(hvp_stack_check_paused(f->sc, NULL, 0, &hit), -EBUSY);
        assert_int_equal(hit.where, TOP(1) - 0x18);
}

static void test_paused_new_task(void **state)
{
        struct fx *f = *state;
        struct hvp_stack_range rg = { SITE, SITE + 6 };
        struct hvp_stack_stats st;
        struct hvp_stack_hit hit;

        assert_int_equal(prepare(f, &rg, 1, &hit), 0);
        /* A task forked after prepare, already asleep inside the site. */
        add_task(f, 3, 12, "child", 3, 0x80);
        put_stack(f, TOP(3) - 0x8, SITE + 1);
        /* Without the fork counter moving, nothing says it exists: the counter is what tells. */
        assert_int_equal(hvp_stack_check_paused(f->sc, NULL, 0, &hit), 0);
        btfgen_put(&f->tasks, FORKS_VA, 4, 8);
        /* not allowed to walk in the pause (attempts left): -EAGAIN, nothing but the counter read */
        hvp_stack_check_set_walk_in_pause(f->sc, false);
        f->tasks.reads = f->stacks.reads = 0;
        assert_int_equal(hvp_stack_check_paused(f->sc, NULL, 0, &hit), -EAGAIN);
        assert_non_null(strstr(hvp_last_error(), "tasks were created"));
        if (!f->mmu) {
                assert_int_equal(f->tasks.reads, 1);
                assert_int_equal(f->stacks.reads, 0);
        }
        hvp_stack_check_set_walk_in_pause(f->sc, true);
        assert_int_equal(hvp_stack_check_paused(f->sc, NULL, 0, &hit), -EBUSY);
        assert_int_equal(hit.pid, 12);
        hvp_stack_check_stats(f->sc, &st);
        assert_true(st.paused_walked);
        assert_int_equal(st.paused_checked, 4);

        /* Without a fork counter the pause always walks the list. */
        hvp_stack_check_free(f->sc);
        f->sc = new_check(f, false, 0);
        put_stack(f, TOP(3) - 0x8, 0);
        assert_int_equal(prepare(f, &rg, 1, &hit), 0);
        put_stack(f, TOP(3) - 0x8, SITE + 1);
        bump(f, 3, 0);
        assert_int_equal(hvp_stack_check_paused(f->sc, NULL, 0, &hit), -EBUSY);
        hvp_stack_check_stats(f->sc, &st);
        assert_true(st.paused_walked);
}

/* A task on a CPU: its vCPU's RSP says where the live part starts, user mode says none. */
static void test_on_cpu(void **state)
{
        struct fx *f = *state;
        struct hvp_stack_range rg = { SITE, SITE + 6 };
        struct hvp_vcpu_regs vcpus[2] = { { .cs_sel = 0x33, .rsp = 0x7ffd0000 },
                                          { .cs_sel = 0x10, .rsp = TOP(2) - 0x80 } };
        struct hvp_stack_stats st;
        struct hvp_stack_hit hit;

        btfgen_put(&f->tasks, TASK_VA(2) + T_ON_CPU, 1, 4);
        btfgen_put(&f->tasks, TASK_VA(2) + TI_CPU, 1, 4);
        put_stack(f, TOP(2) - 0x10, 0);
        put_stack(f, TOP(2) - 0xc0, SITE + 2);          /* below its RSP: stale */
        put_stack(f, TOP(2) - 0x8, 0);
        /* prepare leaves a running task to the pause */
        put_stack(f, TOP(2) - 0x40, SITE + 2);
        assert_int_equal(prepare(f, &rg, 1, &hit), 0);
        hvp_stack_check_stats(f->sc, &st);
        assert_int_equal(st.prepare_scanned, 2);
        /* in the pause: from vCPU 1's RSP, where the value is live */
        assert_int_equal(hvp_stack_check_paused(f->sc, vcpus, 2, &hit), -EBUSY);
        assert_int_equal(hit.vcpu, 1);
        assert_int_equal(hit.pid, 11);
        assert_int_equal(hit.where, TOP(2) - 0x40);
        /* only the stale value left: no hit from the RSP ... */
        put_stack(f, TOP(2) - 0x40, 0);
        assert_int_equal(hvp_stack_check_paused(f->sc, vcpus, 2, &hit), 0);
        /* ... but with no registers, all of its stack is looked at (conservative) */
        assert_int_equal(hvp_stack_check_paused(f->sc, NULL, 0, &hit), -EBUSY);
        assert_int_equal(hit.where, TOP(2) - 0xc0);
        /* its vCPU in user mode: its kernel stack holds no kernel frame */
        vcpus[1] = (struct hvp_vcpu_regs){ .cs_sel = 0x33, .rsp = 0x7ffd0000 };
        assert_int_equal(hvp_stack_check_paused(f->sc, vcpus, 2, &hit), 0);
        /* a vCPU in kernel mode on a stack that is no task's (an IRQ stack) is scanned from its RSP */
        vcpus[0] = (struct hvp_vcpu_regs){ .cs_sel = 0x10, .rsp = STACK_VA(5) + 0x100 };
        put_stack(f, STACK_VA(5) + 0x180, SITE + 4);
        assert_int_equal(hvp_stack_check_paused(f->sc, vcpus, 2, &hit), -EBUSY);
        assert_int_equal(hit.task, 0);
        assert_int_equal(hit.vcpu, 0);
        assert_int_equal(hit.where, STACK_VA(5) + 0x180);
}

/* Hostile stacks: an sp outside the stack, a stack outside RAM, the byte bound. */
static void test_hostile(void **state)
{
        struct fx *f = *state;
        struct hvp_stack_range rg = { SITE, SITE + 6 };
        struct hvp_stack_hit hit;

        /* sp outside its stack: the whole stack is scanned */
        btfgen_put(&f->tasks, TASK_VA(1) + T_SP, 0xffffffffdeadbee0ull, 8);
        put_stack(f, STACK_VA(1) + 0x10, SITE + 1);
        assert_int_equal(prepare(f, &rg, 1, &hit), -EBUSY);
        assert_int_equal(hit.where, STACK_VA(1) + 0x10);
        put_stack(f, STACK_VA(1) + 0x10, 0);
        assert_int_equal(prepare(f, &rg, 1, &hit), 0);

        /* a stack outside RAM: left to the pause by prepare, an error with a reason there */
        btfgen_put(&f->tasks, TASK_VA(2) + T_STACK, SBASE + 0x100000, 8);
        btfgen_put(&f->tasks, TASK_VA(2) + T_SP, SBASE + 0x100000 + 0x3f00, 8);
        assert_int_equal(prepare(f, &rg, 1, &hit), 0);
        assert_int_equal(hvp_stack_check_paused(f->sc, NULL, 0, &hit), -EFAULT);
        assert_non_null(strstr(hvp_last_error(), "task 11 (worker)"));
        /* ... unless the task has exited */
        btfgen_put(&f->tasks, TASK_VA(2) + T_EXIT_STATE, 0x20, 4);
        assert_int_equal(prepare(f, &rg, 1, &hit), 0);
        assert_int_equal(hvp_stack_check_paused(f->sc, NULL, 0, &hit), 0);
        btfgen_put(&f->tasks, TASK_VA(2) + T_STACK, STACK_VA(2), 8);
        btfgen_put(&f->tasks, TASK_VA(2) + T_SP, TOP(2) - 0x100, 8);

        /* the byte bound */
        hvp_stack_check_free(f->sc);
        f->sc = new_check(f, true, TS + 0x100);        /* task 1's whole stack and one more 0x100 */
        assert_int_equal(prepare(f, &rg, 1, &hit), -E2BIG);
        assert_non_null(strstr(hvp_last_error(), "bytes of kernel stacks"));

        /* a list that loops: the walk's error (in the pause, where it holds still) */
        hvp_stack_check_free(f->sc);
        f->sc = new_check(f, true, 0);
        btfgen_put(&f->tasks, TASK_VA(1) + T_SP, TOP(1) - 0x100, 8);
        btfgen_put(&f->tasks, TASK_VA(2) + T_TASKS, TASK_VA(1) + T_TASKS, 8);
        assert_int_equal(prepare(f, &rg, 1, &hit), 0);          /* torn, perhaps: retried in the pause */
        assert_int_not_equal(hvp_stack_check_paused(f->sc, NULL, 0, &hit), 0);

        /* bad arguments */
        assert_int_equal(hvp_stack_check_paused(NULL, NULL, 0, &hit), -EINVAL);
        {
                struct hvp_stack_config cfg = { .km = &f->km, .mmu = f->mmu, .btf = f->btf, .init_task = TASK_VA(0),
                                                .thread_size = 3000 };
                struct hvp_stack_check *sc = NULL;

                assert_int_equal(hvp_stack_check_new(&cfg, &sc), -EINVAL);
                assert_null(sc);
        }
}

/* hvp_plan_apply with the check: refused (nothing written) while the task is inside, applied after. */
static void test_apply_refused_then_applied(void **state)
{
        static const uint8_t old6[6] = { 0x48, 0x89, 0xe5, 0x48, 0x89, 0xc7 };
        static const uint8_t new6[6] = { 0x31, 0xc0, 0x90, 0x90, 0x90, 0x90 };
        struct fx *f = *state;
        uint8_t *ram = mmap(NULL, 0x4000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        struct hvp_vcpu_regs vcpu = { .rip = 0xffffffff81000000ull, .cs_sel = 0x33 };
        struct hvp_mem_region region = { 0, 0x4000, ram };
        struct hvp_apply_options o = { .max_attempts = 3, .retry_delay_ms = 1, .stack_check = f->sc };
        struct hvp_apply_report rep = { 0 };
        struct hvp_plan *p = hvp_plan_new();
        struct hvp_commit commit = { .add = p };
        struct hvp_guest *g;
        char dir[] = "/tmp/hvp-test-stackcheck-XXXXXX", cmd[128];

        assert_true(ram != MAP_FAILED);
        assert_non_null(mkdtemp(dir));
        o.state_dir = dir;
        memcpy(ram + 0x1000, old6, 6);
        assert_int_equal(hvp_guest_open_memory(&region, 1, &vcpu, 1, true, &g), 0);
        snprintf(p->patch_id, sizeof(p->patch_id), "p1");
        snprintf(p->series, sizeof(p->series), "demo");
        p->seq = 1;
        assert_int_equal(hvp_plan_add_write(p, SITE, 0x1000, old6, new6, 6, true, false, 0), 0);

        put_stack(f, TOP(1) - 0x30, SITE + 6);          /* "sleep" returns to the site's end */
        assert_int_equal(hvp_plan_apply(g, p, &commit, &o, &rep), -EBUSY);
        assert_non_null(strstr(hvp_last_error(), "task 10 (sleep) holds 0xffffffff81001006"));
        assert_non_null(strstr(hvp_last_error(), "over 3 attempts"));
        assert_true(rep.stack_busy);
        assert_int_equal(rep.stack_hit.pid, 10);
        assert_int_equal(rep.attempts, 3);
        assert_memory_equal(ram + 0x1000, old6, 6);
        assert_false(hvp_guest_is_paused(g));

        /* the task has left: it ran on, its stack holds something else */
        put_stack(f, TOP(1) - 0x30, 0);
        bump(f, 1, 0);
        assert_int_equal(hvp_plan_apply(g, p, &commit, &o, &rep), 0);
        assert_memory_equal(ram + 0x1000, new6, 6);
        assert_true(rep.stack_checked);
        assert_false(rep.stack_busy);
        assert_int_equal(rep.stack.tasks, 3);
        assert_int_equal(rep.stack.paused_checked, 3);

        hvp_plan_free(p);
        hvp_guest_free(g);
        munmap(ram, 0x4000);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
}

/*
 * consistency="function": the write's guard is the whole function. A return address in
 * its body, outside the site's bytes, is refused; so is one at the function's last byte;
 * a pointer to the next function (the guard's end) is not; without the guard the same
 * body address lets the write through.
 */
static void test_apply_function_guard(void **state)
{
        static const uint8_t old6[6] = { 0x48, 0x89, 0xe5, 0x48, 0x89, 0xc7 };
        static const uint8_t new6[6] = { 0x31, 0xc0, 0x90, 0x90, 0x90, 0x90 };
        static const uint64_t fn = SITE - 0x40, fn_len = 0x100;
        struct fx *f = *state;
        uint8_t *ram = mmap(NULL, 0x4000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        struct hvp_vcpu_regs vcpu = { .rip = 0xffffffff81000000ull, .cs_sel = 0x33 };
        struct hvp_mem_region region = { 0, 0x4000, ram };
        struct hvp_apply_options o = { .max_attempts = 2, .retry_delay_ms = 1, .stack_check = f->sc };
        struct hvp_apply_report rep = { 0 };
        struct hvp_plan *p = hvp_plan_new();
        struct hvp_commit commit = { .add = p };
        struct hvp_guest *g;
        char dir[] = "/tmp/hvp-test-stackcheck-XXXXXX", dir2[] = "/tmp/hvp-test-stackcheck-XXXXXX", cmd[160];

        assert_true(ram != MAP_FAILED);
        assert_non_null(mkdtemp(dir));
        assert_non_null(mkdtemp(dir2));
        o.state_dir = dir;
        memcpy(ram + 0x1000, old6, 6);
        assert_int_equal(hvp_guest_open_memory(&region, 1, &vcpu, 1, true, &g), 0);
        snprintf(p->patch_id, sizeof(p->patch_id), "p1");
        snprintf(p->series, sizeof(p->series), "demo");
        p->seq = 1;
        assert_int_equal(hvp_plan_add_write(p, SITE, 0x1000, old6, new6, 6, true, false, 0), 0);
        p->writes[0].guard_start = fn;
        p->writes[0].guard_len = fn_len;

        put_stack(f, TOP(1) - 0x30, SITE + 0x80);       /* "sleep" returns into the body, past the site */
        bump(f, 1, 0);
        assert_int_equal(hvp_plan_apply(g, p, &commit, &o, &rep), -EBUSY);
        assert_non_null(strstr(hvp_last_error(), "task 10 (sleep) holds 0xffffffff81001080"));
        assert_non_null(strstr(hvp_last_error(), "inside the range 0xffffffff81000fc0..0xffffffff810010bf"));
        assert_true(rep.stack_busy);
        assert_memory_equal(ram + 0x1000, old6, 6);

        put_stack(f, TOP(1) - 0x30, fn + fn_len - 1);   /* the function's last byte */
        bump(f, 1, 0);
        assert_int_equal(hvp_plan_apply(g, p, &commit, &o, &rep), -EBUSY);
        assert_memory_equal(ram + 0x1000, old6, 6);

        put_stack(f, TOP(1) - 0x30, fn + fn_len);       /* the next function's address */
        bump(f, 1, 0);
        assert_int_equal(hvp_plan_apply(g, p, &commit, &o, &rep), 0);
        assert_memory_equal(ram + 0x1000, new6, 6);

        /* without the guard, the same body address is no hazard for the site's bytes */
        memcpy(ram + 0x1000, old6, 6);
        o.state_dir = dir2;
        p->writes[0].guard_len = 0;
        put_stack(f, TOP(1) - 0x30, SITE + 0x80);
        bump(f, 1, 0);
        assert_int_equal(hvp_plan_apply(g, p, &commit, &o, &rep), 0);
        assert_memory_equal(ram + 0x1000, new6, 6);
        assert_false(rep.stack_busy);

        hvp_plan_free(p);
        hvp_guest_free(g);
        munmap(ram, 0x4000);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", dir, dir2);
        assert_int_equal(system(cmd), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_replace_site_bounds, setup, teardown),
                cmocka_unit_test_setup_teardown(test_redirect_entry, setup, teardown),
                cmocka_unit_test_setup_teardown(test_paused_rechecks_what_moved, setup, teardown),
                /* the same through page tables: the pause's scatter read of guest-physical pieces */
                cmocka_unit_test_setup_teardown(test_paused_rechecks_what_moved, setup_mmu, teardown),
                cmocka_unit_test_setup_teardown(test_paused_new_task, setup_mmu, teardown),
                cmocka_unit_test_setup_teardown(test_on_cpu, setup_mmu, teardown),
                cmocka_unit_test_setup_teardown(test_paused_new_task, setup, teardown),
                cmocka_unit_test_setup_teardown(test_on_cpu, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
                cmocka_unit_test_setup_teardown(test_apply_refused_then_applied, setup, teardown),
                cmocka_unit_test_setup_teardown(test_apply_function_guard, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}

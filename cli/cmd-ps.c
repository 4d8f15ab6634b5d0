#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hvpatch/linux.h>
#include <hvpatch/paging.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/kstate.h"
#include "common/util.h"

static const char help[] =
        "Lists the guest kernel's tasks read from its memory: the list from init_task,\n"
        "every thread of every process (what /proc/PID/task shows), plus the CPUs' idle\n"
        "tasks (pid 0: swapper/0 is init_task, swapper/N from CPU N's runqueue). Struct\n"
        "layouts come from the kernel's own BTF (CONFIG_DEBUG_INFO_BTF): a kernel without\n"
        "it gets a clear error. Columns: PID (thread id), TGID (process id), S (state as ps\n"
        "prints it: R S D T t X Z P I), CPU (last CPU it ran on, * when running there now),\n"
        "TASK (the task_struct), STACK (its kernel stack's lowest address), COMM.\n"
        "The guest is paused while the list is walked (milliseconds), so that the list\n"
        "cannot change under the walk; --no-pause reads the running guest (a walk that\n"
        "meets a list changing under it fails: retry). A guest paused by someone else is\n"
        "read as it is and left paused. --json: an array of objects with pid, tgid, comm,\n"
        "state, state_raw, cpu, on_cpu, task, stack, sp (the saved kernel stack pointer).\n";

/*
 * The other CPUs' idle tasks, after init_task (the boot CPU's): a kernel without the
 * symbols (not SMP) has none to add. On failure *tasks is freed.
 */
static int add_idle_tasks(struct cli_target *t, const struct hvp_kmem *km, const struct hvp_btf *btf,
                          uint64_t init_task, struct hvp_task **tasks, size_t *n)
{
        const struct hvp_symbol *rq = hvp_symtab_lookup(t->kernel->symtab, "runqueues");
        const struct hvp_symbol *pco = hvp_symtab_lookup(t->kernel->symtab, "__per_cpu_offset");
        const struct hvp_symbol *nr = hvp_symtab_lookup(t->kernel->symtab, "nr_cpu_ids");
        struct hvp_task *idle = NULL, *all;
        size_t n_idle = 0;
        uint32_t nr_cpus;
        int r;

        if (!rq || !pco || !nr)
                return 0;
        r = hvp_mmu_read(t->mmu, nr->addr, &nr_cpus, sizeof(nr_cpus));
        if (r == 0)
                r = hvp_linux_idle_tasks(km, btf, rq->addr, pco->addr, nr_cpus, init_task, &idle, &n_idle);
        if (r == 0 && n_idle > 0) {
                all = malloc((*n + n_idle) * sizeof(*all));
                if (!all) {
                        r = -ENOMEM;
                } else {
                        /* swapper/0, then swapper/1.., then the rest in list order */
                        all[0] = (*tasks)[0];
                        memcpy(all + 1, idle, n_idle * sizeof(*all));
                        memcpy(all + 1 + n_idle, *tasks + 1, (*n - 1) * sizeof(*all));
                        free(*tasks);
                        *tasks = all;
                        *n += n_idle;
                }
        }
        free(idle);
        if (r < 0) {
                free(*tasks);
                *tasks = NULL;
        }
        return r;
}

/* Walk with the guest paused (unless asked not to, or it cannot be paused); never leave it paused. */
static int walk(struct cli *c, struct cli_target *t, const struct hvp_btf *btf, uint64_t init_task, bool pause,
                struct hvp_task **ret_tasks, size_t *ret_n)
{
        struct hvp_kmem km;
        struct timespec t0, t1;
        sigset_t block, old;
        bool paused = false;
        int r, q;

        cli_kmem(t, &km);
        /* No signal may end hvpatch between the pause and the resume. */
        sigemptyset(&block);
        sigaddset(&block, SIGINT);
        sigaddset(&block, SIGTERM);
        sigaddset(&block, SIGHUP);
        sigaddset(&block, SIGQUIT);
        sigprocmask(SIG_BLOCK, &block, &old);
        if (pause) {
                r = hvp_guest_pause(t->guest);
                if (r == 0)
                        paused = true;
                else if (r == -EALREADY || r == -ENOTSUP)
                        cli_progress(c, "%s: not paused by hvpatch (%s): reading it as it is",
                                     hvp_guest_name(t->guest), hvp_last_error());
                else
                        goto out;
                hvp_mmu_flush(t->mmu);          /* it ran since the kernel was found */
        }
        clock_gettime(CLOCK_MONOTONIC, &t0);
        r = hvp_linux_tasks(&km, btf, init_task, 0, ret_tasks, ret_n);
        if (r == 0)
                r = add_idle_tasks(t, &km, btf, init_task, ret_tasks, ret_n);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        cli_progress(c, "%s: walked %zu tasks in %.2f ms%s", hvp_guest_name(t->guest), r == 0 ? *ret_n : 0,
                     (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
                     paused ? " (paused)" : "");
        if (paused) {
                q = hvp_guest_resume(t->guest);
                if (r == 0 && q < 0) {
                        free(*ret_tasks);
                        *ret_tasks = NULL;
                        r = q;
                }
        }
out:
        sigprocmask(SIG_SETMASK, &old, NULL);
        return r;
}

int cmd_ps(struct cli *c, int argc, char **argv)
{
        struct cli_target t = { 0 };
        struct hvp_btf *btf = NULL;
        struct hvp_task *tasks = NULL;
        size_t n = 0;
        uint64_t init_task;
        bool pause = true;
        int r;

        if (cli_wants_help(c, "ps", argc, argv, help))
                return EXIT_OK;
        for (int i = 0; i < argc; i++) {
                if (strcmp(argv[i], "--no-pause") == 0) {
                        pause = false;
                        memmove(&argv[i], &argv[i + 1], (size_t)(argc - i - 1) * sizeof(*argv));
                        argc--;
                        break;
                }
        }
        r = cli_attach(c, &argc, &argv, &t);
        if (r)
                return r;
        if (argc != 0) {
                cli_target_close(&t);
                return cli_usage(c, cli_find_command("ps"));
        }
        r = cli_load_btf(c, &t, "ps", &btf);
        if (r)
                goto out;
        r = cli_kernel_symbol(c, &t, "init_task", "ps", &init_task);
        if (r)
                goto out;
        r = walk(c, &t, btf, init_task, pause, &tasks, &n);
        if (r < 0) {
                r = cli_lib_error(c, r, "ps");
                goto out;
        }
        if (c->json) {
                json_object *arr = json_object_new_array();

                for (size_t i = 0; i < n; i++) {
                        const struct hvp_task *k = &tasks[i];
                        json_object *o = json_object_new_object();
                        char st[2] = { k->state_char, 0 };

                        json_object_object_add(o, "pid", json_object_new_int(k->pid));
                        json_object_object_add(o, "tgid", json_object_new_int(k->tgid));
                        json_object_object_add(o, "comm", json_object_new_string(k->comm));
                        json_object_object_add(o, "state", json_object_new_string(st));
                        json_object_object_add(o, "state_raw", json_object_new_int64(k->state | k->exit_state));
                        json_object_object_add(o, "cpu", json_object_new_int(k->cpu));
                        json_object_object_add(o, "on_cpu", json_object_new_boolean(k->on_cpu));
                        json_object_object_add(o, "task", cli_json_addr(k->addr));
                        json_object_object_add(o, "stack", cli_json_addr(k->stack));
                        json_object_object_add(o, "sp", cli_json_addr(k->sp));
                        json_object_array_add(arr, o);
                }
                cli_json_print(arr);
        } else {
                printf("%7s %7s S %4s %-18s %-18s %s\n", "PID", "TGID", "CPU", "TASK", "STACK", "COMM");
                for (size_t i = 0; i < n; i++) {
                        const struct hvp_task *k = &tasks[i];

                        char comm[sizeof(k->comm)];

                        /* Guest bytes: no control characters to the terminal. */
                        for (size_t j = 0; j < sizeof(comm); j++)
                                comm[j] = k->comm[j] && (k->comm[j] < 0x20 || k->comm[j] == 0x7f) ? '?' : k->comm[j];
                        printf("%7d %7d %c %3d%c 0x%016llx 0x%016llx %s\n", k->pid, k->tgid, k->state_char, k->cpu,
                               k->on_cpu ? '*' : ' ', (unsigned long long)k->addr, (unsigned long long)k->stack,
                               comm);
                }
        }
        r = EXIT_OK;
out:
        free(tasks);
        hvp_btf_free(btf);
        cli_target_close(&t);
        return r;
}

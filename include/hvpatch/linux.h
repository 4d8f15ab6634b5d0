/*
 * Linux kernel state read from guest memory with the kernel's own BTF (hvpatch/btf.h):
 * the task list and the kernel log. No profile file, no agent in the guest.
 *
 * Both read through a kernel-memory reader (struct hvp_kmem: a live guest through its
 * page tables, or a memory image in tests), so a pointer outside guest RAM ends the
 * walk with the reader's error. Guest memory is hostile: every list walk is bounded
 * and detects loops, every size and count read is bounded.
 *
 * Errors:
 *   -ENOENT    the BTF lacks a struct or member these readers need (the reason names it)
 *   -ELOOP     a list comes back to a task already seen (a loop not through its head)
 *   -E2BIG     more tasks than max_tasks; a ring larger than its bound
 *   -EINVAL    a list is inconsistent (next->prev does not point back, a pointer that is
 *              not a kernel address), a ring's header is absurd
 *   -EFAULT / -ERANGE   the reader failed (unmapped, outside guest RAM)
 */
#ifndef HVPATCH_LINUX_H
#define HVPATCH_LINUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hvpatch/btf.h>
#include <hvpatch/kernel.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- tasks ---------------------------------------------------------------- */

/* Default and largest bound on the tasks one walk lists (PID_MAX_LIMIT is 4M). */
#define HVP_TASKS_MAX_DEFAULT (1u << 20)

struct hvp_task {
        uint64_t addr;          /* the task_struct */
        int32_t pid;            /* thread id */
        int32_t tgid;           /* process id */
        char comm[32];          /* NUL-terminated (the kernel keeps at most 15 characters) */
        uint32_t state;         /* task_struct.__state (.state before 5.14), raw */
        uint32_t exit_state;    /* EXIT_ZOMBIE 0x20, EXIT_DEAD 0x10 */
        char state_char;        /* as ps and /proc/PID/stat print it: R S D T t X Z P I */
        int32_t cpu;            /* the CPU it last ran on (thread_info.cpu or task_struct.cpu) */
        bool on_cpu;            /* task_struct.on_cpu: running there now */
        uint64_t stack;         /* task_struct.stack: lowest address of its kernel stack */
        uint64_t sp;            /* thread.sp: the kernel stack pointer saved at its last switch */
        uint64_t switches;      /* nvcsw + nivcsw: grows at every switch away from it (0 if the
                                 * BTF lacks them) */
};

/*
 * Every task reachable from init_task (the address of the symbol init_task): the
 * processes on init_task.tasks, in list order starting with init_task itself (pid 0,
 * "swapper/0"), each followed by its other threads (signal->thread_head through
 * thread_node; kernels without those: the thread_group ring). The idle tasks of the
 * other CPUs are on no list and are not listed. /proc lists the same tasks but pid 0.
 * max_tasks: 0 for HVP_TASKS_MAX_DEFAULT (larger values are capped to it).
 * The list changes while a guest runs: pause it around the walk for one consistent
 * picture (a torn read of a running guest's list fails with -EINVAL or -ELOOP).
 * *ret_tasks: an array of *ret_count tasks, free() it.
 */
int hvp_linux_tasks(const struct hvp_kmem *km, const struct hvp_btf *btf, uint64_t init_task, size_t max_tasks,
                    struct hvp_task **ret_tasks, size_t *ret_count);

/*
 * The idle tasks of CPUs 1..nr_cpus-1 ("swapper/N", pid 0), which are on no list: each
 * CPU's runqueue (the per-cpu variable runqueues, at its address plus
 * __per_cpu_offset[cpu]) points at its idle task (rq.idle). runqueues: the symbol's
 * value (a per-cpu offset); per_cpu_offset: the address of __per_cpu_offset; nr_cpus:
 * the value of nr_cpu_ids (at most 8192). The boot CPU's idle task, init_task, is left
 * out (hvp_linux_tasks() lists it). -ELOOP when two CPUs name the same task.
 */
#define HVP_TASKS_MAX_CPUS 8192u
int hvp_linux_idle_tasks(const struct hvp_kmem *km, const struct hvp_btf *btf, uint64_t runqueues,
                         uint64_t per_cpu_offset, uint32_t nr_cpus, uint64_t init_task, struct hvp_task **ret_tasks,
                         size_t *ret_count);

/* The state letter for a task's raw __state and exit_state (as get_task_state() reports). */
char hvp_task_state_char(uint32_t state, uint32_t exit_state);

/* ---- the kernel log (printk ring buffer of 5.10 and later) ------------------ */

/* Bounds on the rings read from guest memory (the kernel's largest CONFIG_LOG_BUF_SHIFT is 25). */
#define HVP_KLOG_MAX_DATA (32u << 20)
#define HVP_KLOG_MAX_DESCS (1u << 20)

struct hvp_klog_record {
        uint64_t seq;
        uint64_t ts_nsec;       /* local clock at the printk */
        uint8_t level;          /* 0 (KERN_EMERG) .. 7 (KERN_DEBUG) */
        uint8_t facility;
        uint32_t caller_id;
        const char *text;       /* the message, NUL-terminated, no trailing newline; may hold newlines */
        size_t text_len;
};

struct hvp_klog {
        struct hvp_klog_record *records;        /* in sequence order */
        size_t count;
        uint64_t dropped;       /* descriptors skipped: being written, reused, or inconsistent */
};

/*
 * The records of the printk ring buffer whose descriptor pointer is stored at
 * prb_var (the address of the symbol prb, which points at printk_rb_static or
 * printk_rb_dynamic). Reads the finalized records (what dmesg and /dev/kmsg show),
 * oldest first; the ring is lock-free, and a record overwritten while it is read is
 * dropped (counted in dropped), never returned torn. Free with hvp_klog_free().
 * Layouts (printk_ringbuffer, prb_desc_ring, prb_data_ring, prb_desc,
 * prb_data_blk_lpos, printk_info) come from the BTF: -ENOENT for kernels before 5.10.
 */
int hvp_linux_klog(const struct hvp_kmem *km, const struct hvp_btf *btf, uint64_t prb_var,
                   struct hvp_klog **ret_log);
void hvp_klog_free(struct hvp_klog *log);

/* ---- Secure Boot, EFI and lockdown as the guest kernel saw them ------------------ */

/* boot_params.secure_boot: the EFI stub's enum efi_secureboot_mode. */
enum hvp_secure_boot {
        HVP_SECURE_BOOT_NO_SYMBOL = -1, /* no boot_params symbol */
        HVP_SECURE_BOOT_UNSET = 0,      /* not booted through the EFI stub (BIOS, another loader) */
        HVP_SECURE_BOOT_UNKNOWN = 1,
        HVP_SECURE_BOOT_DISABLED = 2,
        HVP_SECURE_BOOT_ENABLED = 3,
};

/* kernel_locked_down (security/lockdown), as a level. */
enum hvp_lockdown {
        HVP_LOCKDOWN_UNSUPPORTED = -1,  /* no kernel_locked_down: built without the lockdown LSM */
        HVP_LOCKDOWN_NONE = 0,
        HVP_LOCKDOWN_INTEGRITY = 1,
        HVP_LOCKDOWN_CONFIDENTIALITY = 2,
        HVP_LOCKDOWN_OTHER = 3,         /* locked down; the level is unknown (no BTF to name it) */
};

struct hvp_boot_security {
        int secure_boot;                /* enum hvp_secure_boot */
        bool efi_boot;                  /* boot_params.efi_info.efi_loader_signature: "EL64" or "EL32" */
        int lockdown;                   /* enum hvp_lockdown */
        int64_t lockdown_raw;           /* kernel_locked_down (enum lockdown_reason), -1 if absent */
};

/*
 * Read the guest kernel's own view of how it booted: the symbol boot_params (the zero
 * page the kernel keeps: secure_boot at 0x1ec and efi_info's loader signature at 0x1c0,
 * an ABI, Documentation/arch/x86/zero-page.rst; BTF offsets when btf is given) and
 * kernel_locked_down, whose value is the largest lockdown_reason in force: 0, or
 * LOCKDOWN_INTEGRITY_MAX or LOCKDOWN_CONFIDENTIALITY_MAX, named through btf (may be
 * NULL: a nonzero value is then HVP_LOCKDOWN_OTHER). The values are the guest kernel's:
 * a compromised kernel can change them, so they say what an intact one saw at boot.
 * Errors: the reader's (the symbols' pages not mapped).
 */
int hvp_linux_boot_security(const struct hvp_kmem *km, const struct hvp_kernel *k, const struct hvp_btf *btf,
                            struct hvp_boot_security *ret);
/* "enabled", "disabled", "unknown", "unset", "no boot_params"; "none", "integrity", "confidentiality", ... */
const char *hvp_secure_boot_name(int secure_boot);
const char *hvp_lockdown_name(int lockdown);

#ifdef __cplusplus
}
#endif

#endif

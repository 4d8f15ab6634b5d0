/*
 * Baseline moves for host-booted kernels (docs/operations.md, "Baseline moves").
 *
 * A domain that boots a kernel the host provides (<os><kernel> in its XML, as test
 * farms and micro-VMs do) and runs an older baseline (verdict reboot-required) can be
 * moved to the current baseline's image: its persistent definition gets the image the
 * policy names (<baseline kernel= initrd= cmdline=>), it is restarted (a graceful
 * shutdown bounded by the group's shutdown-timeout, then a destroy; a reset inside the
 * same QEMU process would boot the old image again, see docs/operations.md), audited
 * (HVP_AUDIT_MOVE_BASELINE), awaited until its new kernel is up, and synced to the
 * catalog. Only inside a window that allows reboots (policy). A guest that boots its own
 * kernel from disk is only reported.
 *
 * Two layers:
 *   - pure: the boot elements of a domain XML (read, rewrite) and the move plan of a
 *     guest (hvp_move_plan_compute; hvp_op_sync fills one for a reboot-required guest);
 *   - hvp_op_move_baseline: the move itself, then a sync (the same one `sync` runs).
 *
 * Errors of this module (besides -ENOMEM): -EINVAL bad arguments or a domain XML that
 * is not one (or whose <os> is not as expected: the reason says how), -E2BIG an input
 * over its bound, -ENOENT/-EACCES an image file, -ENOEXEC an image that is not a bzImage.
 */
#ifndef HVPATCH_MOVE_H
#define HVPATCH_MOVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hvpatch/catalog.h>
#include <hvpatch/guest.h>
#include <hvpatch/ops.h>
#include <hvpatch/policy.h>

#ifdef __cplusplus
extern "C" {
#endif

struct hvp_kernel;
struct hvp_mmu;

/* The largest domain XML read or rewritten (as hvp_guest_facts_from_domain_xml). */
#define HVP_DOMAIN_XML_MAX (1u << 20)

/* What a domain boots: <os><kernel>, <initrd>, <cmdline>. */
struct hvp_domain_boot {
        bool host_kernel;                       /* <os><kernel> present and not empty */
        char kernel[HVP_BOOT_PATH_MAX + 1];
        char initrd[HVP_BOOT_PATH_MAX + 1];     /* "" none */
        bool has_cmdline;
        char cmdline[HVP_BOOT_CMDLINE_MAX + 1];
};

/*
 * Read the boot elements of a domain XML. -EINVAL not a <domain>, no or several <os>,
 * several <kernel>/<initrd>/<cmdline>; -E2BIG the XML over HVP_DOMAIN_XML_MAX or a value
 * over its bound. *ret untouched on failure.
 */
int hvp_domain_boot_from_xml(const char *xml, size_t len, struct hvp_domain_boot *ret);

/*
 * The same XML with <os><kernel> set to kernel, <initrd> set to initrd (NULL or "":
 * removed) and, if cmdline is not NULL, <cmdline> set to it; every other element,
 * attribute and namespace is kept. The domain must already boot a host kernel
 * (-EINVAL otherwise: a disk-booted guest is never turned into a host-booted one).
 * Values are stored as text (escaped), bounded as in the policy. *ret_xml is
 * NUL-terminated, free() it.
 */
int hvp_domain_xml_set_boot(const char *xml, size_t len, const char *kernel, const char *initrd,
                            const char *cmdline, char **ret_xml, size_t *ret_len);

/*
 * The release a bzImage names in its setup header (the kernel_version string, e.g.
 * "6.12.57+deb13-amd64"), read from the first 64 KiB + 1 KiB of the file. -ENOENT,
 * -EACCES, -EIO the file; -ENOEXEC no "HdrS" header or no printable version string.
 */
int hvp_bzimage_release(const char *path, char *ret_release, size_t size);

enum hvp_move_action {
        HVP_MOVE_NONE = 0,      /* not reboot-required: nothing to move */
        HVP_MOVE_NOW,           /* host-booted, image named, a reboot window is open: sync moves it */
        HVP_MOVE_WAITS,         /* ... but no window allows a reboot now: at the next one */
        HVP_MOVE_OWN_KERNEL,    /* boots its own kernel (no <os><kernel>): reported only */
        HVP_MOVE_NO_IMAGE,      /* the current baseline names no kernel image: reported only */
        HVP_MOVE_BLOCKED,       /* would move, but cannot (unreadable image, bad XML...): note */
};
/* "none", "move", "waits", "own-kernel", "no-image", "blocked". */
const char *hvp_move_action_name(enum hvp_move_action a);

#define HVP_RELEASE_MAX 64

struct hvp_move_plan {
        enum hvp_move_action action;
        char group[HVP_NAME_MAX + 1];
        char from_baseline[HVP_NAME_MAX + 1];   /* the baseline the guest runs */
        char to_baseline[HVP_NAME_MAX + 1];     /* the current one */
        char from_release[HVP_RELEASE_MAX + 1]; /* the running kernel's ("" unknown) */
        char to_release[HVP_RELEASE_MAX + 1];   /* from the image's header ("" unknown) */
        char from_kernel[HVP_BOOT_PATH_MAX + 1];/* what the domain boots now ("" none) */
        struct hvp_baseline_boot to;            /* the policy's image and reboot windows */
        char note[640];                         /* in words, for every action but NONE */
};

/*
 * The move of a guest: facts (name, uuid, groups, now: as the policy's), compliance
 * (hvp_policy_assess), banner (the running kernel's "Linux version ..." or NULL),
 * domain_xml (its live XML, NULL: unknown, then OWN_KERNEL cannot be told and the
 * action is BLOCKED). Reads the image's header (hvp_bzimage_release) when it would
 * move. Always fills *ret and returns 0, -EINVAL for NULL policy/facts/compliance/ret.
 */
int hvp_move_plan_compute(const struct hvp_policy *policy, const struct hvp_guest_facts *facts,
                          const struct hvp_decision *compliance, const char *banner, const char *domain_xml,
                          size_t domain_xml_len, struct hvp_move_plan *ret);

/* Defaults of a move's request. */
#define HVP_MOVE_DEFAULT_BOOT_TIMEOUT_S 300

struct hvp_move_request {
        const char *domain;                     /* name or UUID */
        const struct hvp_live_options *live;    /* NULL: defaults */
        const struct hvp_move_plan *plan;       /* action HVP_MOVE_NOW */
        const struct hvp_policy *policy;
        const struct hvp_catalog *catalog;      /* the sync after the move */
        const char *state_dir;                  /* NULL: HVP_STATE_DIR */
        unsigned boot_timeout_s;                /* restart to "kernel up"; 0: the default */
        /* polled while waiting (shutdown, kernel up); true: stop waiting (-ECANCELED) */
        bool (*cancelled)(void *userdata);
        void *userdata;
        unsigned health_seconds;                /* the health gate of the sync's applies (0: none) */
};

struct hvp_move_outcome {
        int exit_class;                         /* HVP_EXIT_OK: moved (the sync's own in sync) */
        char error[HVP_OP_REASON_MAX];          /* "" on success */
        bool redefined;                         /* the persistent definition names the new image */
        bool restarted;                         /* the domain was started again */
        bool destroyed;                         /* it did not shut down in time: destroyed */
        bool rolled_back;                       /* the new image did not start: old definition back */
        bool kernel_up;
        bool in_baseline;                       /* the new kernel's build id is the current baseline's */
        double shutdown_s;                      /* from the shutdown request to shut off */
        double kernel_up_s;                     /* from the start to the kernel's SYSTEM_RUNNING */
        char banner[512];                       /* the new kernel's */
        char build_id[2 * 64 + 1];
        struct hvp_sync_result *sync;           /* the sync after it (owned; NULL if not reached) */
};

/*
 * Move a host-booted guest to the current baseline's image, then sync it. Takes the
 * domain's lock (hvp_domain_lock) for the redefinition and restart; the caller must
 * not hold it nor keep the guest attached (the QEMU process is replaced). Checked
 * again under the lock: the plan is NOW at this moment (window, image), the domain is
 * persistent, running (not paused) and without a libvirt job, and still boots
 * plan->from_kernel. A start that fails with the new image restores the old
 * definition and starts that (rolled_back). Audited once (HVP_AUDIT_MOVE_BASELINE)
 * when the definition was touched. Returns 0 with *ret filled (exit_class says how
 * it went), -EINVAL for bad arguments. Free ret->sync with hvp_move_outcome_clear().
 */
int hvp_op_move_baseline(const struct hvp_move_request *req, struct hvp_move_outcome *ret);
void hvp_move_outcome_clear(struct hvp_move_outcome *o);

/*
 * Wait until the running domain's kernel is up: attached, and its own system_state
 * reads SYSTEM_RUNNING (a kernel without that symbol counts as up once attached).
 * The domain is opened again at every try (once a second), at most timeout_s seconds
 * (-ETIMEDOUT), cancelled may stop it (-ECANCELED); a domain gone or shut off ends it
 * with its error. On success *ret_guest, *ret_mmu, *ret_kernel are the caller's.
 */
int hvp_wait_kernel_up(const char *domain, const struct hvp_live_options *live, unsigned timeout_s,
                       bool (*cancelled)(void *userdata), void *userdata, struct hvp_guest **ret_guest,
                       struct hvp_mmu **ret_mmu, struct hvp_kernel **ret_kernel);

#ifdef __cplusplus
}
#endif

#endif

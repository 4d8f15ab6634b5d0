/*
 * Does a patch object fit the kernel build it targets? Offline checks of the code a
 * redirect places (the same sections hvp_reloc_measure() lays out) against what the
 * target kernel's config says about how its own code was compiled: code model,
 * return thunks, indirect branch thunks, straight-line-speculation padding, IBT
 * landing pads. Used by `hvpatch pack --kernel-config` (docs/bundle.md, "Building a
 * patch object for a target kernel"). Findings are warnings: a bundle that does not
 * fit still packs, since some findings only lose a mitigation; which ones would fail
 * or crash is said in each message.
 *
 * Ownership: arrays returned through ret_* are malloc'ed and owned by the caller
 * (free()). Inputs are never retained.
 *
 * Errors (besides the common ones of hvpatch.h):
 *   -EINVAL   not an x86-64 kernel config (no CONFIG_X86_64=y), a NUL byte in it,
 *             gzip data that does not inflate; a malformed object (as hvp_reloc_measure)
 *   -E2BIG    a config larger than HVP_KCONFIG_MAX_SIZE (inflated)
 *   -ENOENT   the config file is missing; a redirect function missing from its object
 *   -EIO      reading the file failed
 *   -ENOTSUP  an object hvpatch cannot place (as hvp_reloc_measure)
 */
#ifndef HVPATCH_FIT_H
#define HVPATCH_FIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hvpatch/patch.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HVP_KCONFIG_MAX_SIZE (4u << 20)         /* a config file, inflated (Debian's: ~270 KB) */

/*
 * What the target kernel's config says about the code its build generated. Option
 * names changed in 6.9 (CONFIG_RETPOLINE became CONFIG_MITIGATION_RETPOLINE, and so
 * on): either spelling counts.
 */
struct hvp_kconfig {
        char release[64];               /* "6.12.117" from "# Linux/x86 6.12.117 Kernel
                                           Configuration"; "" if the header is missing */
        bool retpoline;                 /* CONFIG_[MITIGATION_]RETPOLINE */
        bool rethunk;                   /* CONFIG_[MITIGATION_]RETHUNK */
        bool sls;                       /* CONFIG_[MITIGATION_]SLS */
        bool ibt;                       /* CONFIG_X86_KERNEL_IBT */
        bool call_depth_tracking;       /* CONFIG_[MITIGATION_]CALL_DEPTH_TRACKING */
        unsigned padding_bytes;         /* CONFIG_FUNCTION_PADDING_BYTES with CONFIG_CALL_PADDING, else 0 */
        bool stackprotector;            /* CONFIG_STACKPROTECTOR */
};

/*
 * Parse a kernel config (the text of /boot/config-*, a .config, or /proc/config.gz's
 * content inflated). Only `CONFIG_NAME=value` lines and the version header are read;
 * anything else is ignored. -EINVAL not an x86-64 config; -E2BIG over the bound.
 */
int hvp_kconfig_parse(const char *text, size_t len, struct hvp_kconfig *ret);

/* The same from a file, plain or gzip'd (/proc/config.gz), inflated to at most the bound. */
int hvp_kconfig_load(const char *path, struct hvp_kconfig *ret);

enum hvp_fit_kind {
        HVP_FIT_CODE_MODEL = 1,         /* R_X86_64_32: not -mcmodel=kernel; no kernel address fits */
        HVP_FIT_STACK_PROTECTOR,        /* canary code: reads fs: or calls __stack_chk_fail */
        HVP_FIT_RETURN_THUNK,           /* ret under RETHUNK, or jmp __x86_return_thunk without it */
        HVP_FIT_INDIRECT_BRANCH,        /* call/jmp reg under RETPOLINE, or __x86_indirect_thunk_* without */
        HVP_FIT_SLS,                    /* ret / indirect jmp without the int3 after it, under SLS */
        HVP_FIT_IBT,                    /* an address-taken function without endbr64, or a notrack
                                           jmp (a jump table), under IBT */
        HVP_FIT_RELEASE,                /* the config's release is not the one the bundle's banner names */
};

/* "code-model", "stack-protector", "return-thunk", "indirect-branch", "sls", "ibt", "release". */
const char *hvp_fit_kind_name(enum hvp_fit_kind kind);

/*
 * One finding. A kind is reported once per redirect function (the code it places),
 * with the first place in where and how many places have it in count.
 */
struct hvp_fit_warning {
        enum hvp_fit_kind kind;
        char object[HVP_BUNDLE_NAME_MAX + 1];   /* "" for bundle-level findings */
        char function[HVP_MANIFEST_MAX_NAME + 1];
        char where[192];                /* "hvp_cb+0x1a (.text+0x3a)"; "" if not about a place */
        unsigned count;
        char message[512];              /* what was found, what it does on the target, the fix */
};

/*
 * Check the code placed for function of object (an ELF relocatable, as
 * hvp_reloc_measure) against kc. With kc NULL only the checks that need no config run
 * (code model, stack protector). Appends to *ret_warnings / *ret_n (both may start
 * NULL / 0; on failure they are left as they were). At most one warning per kind.
 * Errors as hvp_reloc_measure(), -ENOMEM.
 */
int hvp_reloc_check_fit(const void *obj, size_t len, const char *object_name, const char *function,
                        const struct hvp_kconfig *kc, struct hvp_fit_warning **ret_warnings, size_t *ret_n);

/*
 * Every redirect of the bundle (each object/function pair once), plus, with kc and a
 * banner in the manifest, whether kc's release is the banner's. *ret_warnings is
 * malloc'ed (NULL when *ret_n is 0).
 */
int hvp_bundle_check_fit(const struct hvp_bundle *b, const struct hvp_kconfig *kc,
                         struct hvp_fit_warning **ret_warnings, size_t *ret_n);

#ifdef __cplusplus
}
#endif

#endif

/*
 * Trust and policy: minisign signatures, the policy file, the authorization decision
 * and the audit trail.
 *
 * This module knows nothing of libvirt or capstone. It takes facts as plain structs:
 * the caller (the apply/check path) gathers them from the bundle, the guest's kernel
 * and the domain XML, and asks for a decision. Nothing here touches a guest.
 *
 * Order of use on the apply path:
 *   1. hvp_policy_load()                     the policy (keys, groups, windows, baselines)
 *   2. hvp_read_file_bounded() the bundle and its .minisig, then
 *      hvp_policy_verify()                   signature by a trusted key; parse the manifest
 *                                            from the SAME bytes that were verified
 *   3. hvp_guest_facts_from_domain_xml()     firmware, Secure Boot, metadata groups, ...
 *      + the kernel's build id and OS from kernel discovery, the applied series from
 *      the records, now = time(NULL)
 *   4. hvp_policy_authorize()                allow / refuse / reboot-required / unmanaged,
 *                                            with every reason why not
 *   5. hvp_audit()                           one record per apply/revert/refuse/recover
 *
 * Ownership: every struct here is plain data with fixed-size arrays unless a member
 * says otherwise; const char * members of input structs are owned by the caller and
 * only read during the call. struct hvp_policy is opaque, owned by the caller of
 * hvp_policy_load()/hvp_policy_parse(), freed with hvp_policy_free() (NULL is fine).
 * On failure, ret_* outputs are left untouched.
 *
 * Error codes of this module (besides -ENOMEM):
 *   -EINVAL        malformed input: a key, signature or policy file that does not parse,
 *                  fails the schema or a semantic check; hvp_last_error() says where
 *   -E2BIG         a file exceeds its size bound, or a count its limit
 *   -ENOENT        a file (bundle, signature, key, policy, zone) does not exist
 *   -EIO           a file could not be read
 *   -EKEYREJECTED  a signature does not verify; the reason says which one: the
 *                  signature over the bundle or the one over the trusted comment
 *                  (also: a legacy signature where a prehashed one is required)
 *   -ENOKEY        the signature's key id is not among the trusted keys
 *   -EPERM         (hvp_policy_authorize only) the verdict is not "allow"; ret is filled
 */
#ifndef HVPATCH_POLICY_H
#define HVPATCH_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- files -- */

/*
 * Read a whole regular file of at most max bytes into a new buffer (NUL-terminated
 * one byte past *ret_len, so text parsers may use it as a string). Free with free().
 * -ENOENT missing, -EINVAL not a regular file, -E2BIG larger than max, -EIO read error.
 */
int hvp_read_file_bounded(const char *path, size_t max, void **ret_data, size_t *ret_len);

/* ------------------------------------------------------------- minisign -- */

#define HVP_MINISIGN_KEY_ID_BYTES 8
#define HVP_MINISIGN_PUBLIC_KEY_BYTES 32
#define HVP_MINISIGN_SIG_BYTES 64
/* Longest trusted comment minisign writes or reads (its 8192-byte line buffer). */
#define HVP_MINISIGN_TRUSTED_COMMENT_MAX 8173
/* Size bounds of the files (a signature file is four short lines). */
#define HVP_MINISIGN_SIG_FILE_MAX (16u << 10)
#define HVP_MINISIGN_KEY_FILE_MAX (4u << 10)
/* Largest signed file (a bundle) hvp_minisign_verify_file() reads. */
#define HVP_BUNDLE_MAX (64u << 20)
#define HVP_NAME_MAX 64                 /* key, group, baseline names (bytes, without NUL) */

/* Flags for the verify functions. */
#define HVP_MINISIGN_REQUIRE_PREHASHED 1u /* refuse legacy "Ed" signatures (minisign -H) */

struct hvp_minisign_key {
        char name[HVP_NAME_MAX + 1];    /* the policy's name for the key ("" if none) */
        uint8_t key_id[HVP_MINISIGN_KEY_ID_BYTES];
        uint8_t pk[HVP_MINISIGN_PUBLIC_KEY_BYTES];
};

/*
 * Parse a public key file as `minisign -G` writes it: "untrusted comment: ..." then
 * the base64 of "Ed" || key id || Ed25519 public key, then only newlines.
 * The name is left empty. -EINVAL malformed (the reason says which line).
 */
int hvp_minisign_key_parse(const void *text, size_t len, struct hvp_minisign_key *ret_key);
/* The same for the base64 line alone (minisign -P). */
int hvp_minisign_key_from_base64(const char *b64, struct hvp_minisign_key *ret_key);
/* Read and parse a public key file (at most HVP_MINISIGN_KEY_FILE_MAX bytes). */
int hvp_minisign_key_load(const char *path, struct hvp_minisign_key *ret_key);

/* A key id as minisign prints it: 16 upper-case hex digits of the little-endian u64. */
void hvp_minisign_key_id_hex(const uint8_t key_id[HVP_MINISIGN_KEY_ID_BYTES], char out[17]);

/*
 * A parsed signature file (.minisig): "untrusted comment: ..." line, base64 of
 * algorithm ("Ed" legacy: Ed25519 over the message; "ED" prehashed: Ed25519 over
 * BLAKE2b-512 of the message) || key id || signature, "trusted comment: TEXT" line,
 * base64 of the global signature (Ed25519 over signature || TEXT), then only newlines.
 * Lines end in "\n" or "\r\n"; the last one may lack its newline.
 */
struct hvp_minisig {
        bool prehashed;
        uint8_t key_id[HVP_MINISIGN_KEY_ID_BYTES];
        uint8_t sig[HVP_MINISIGN_SIG_BYTES];
        uint8_t global_sig[HVP_MINISIGN_SIG_BYTES];
        char trusted_comment[HVP_MINISIGN_TRUSTED_COMMENT_MAX + 1];
};

/* Parse only (no cryptography). -EINVAL malformed, -E2BIG over HVP_MINISIGN_SIG_FILE_MAX. */
int hvp_minisig_parse(const void *text, size_t len, struct hvp_minisig *ret_sig);

/* What a successful verification found. */
struct hvp_signature_info {
        uint8_t key_id[HVP_MINISIGN_KEY_ID_BYTES];
        char key_id_hex[17];
        char key_name[HVP_NAME_MAX + 1];        /* the matching key's name */
        size_t key_index;                       /* its index in the keys given */
        bool prehashed;
        char trusted_comment[HVP_MINISIGN_TRUSTED_COMMENT_MAX + 1];
};

/*
 * Verify msg against the signature file text sig with the key among keys[0..n_keys)
 * whose key id the signature names. Checks, in order: the file parses (-EINVAL), the
 * key id is trusted (-ENOKEY), the algorithm is allowed by flags (-EKEYREJECTED),
 * the signature over msg (-EKEYREJECTED), the global signature over the trusted
 * comment (-EKEYREJECTED). Only when all pass is *ret filled and 0 returned.
 */
int hvp_minisign_verify(const struct hvp_minisign_key *keys, size_t n_keys,
                        const void *msg, size_t msg_len, const void *sig, size_t sig_len,
                        unsigned flags, struct hvp_signature_info *ret);

/*
 * The same, reading msg_path (at most HVP_BUNDLE_MAX bytes) and sig_path (NULL:
 * msg_path + ".minisig"). A missing signature file is -ENOKEY ("not signed"): an
 * unsigned bundle is an untrusted one.
 */
int hvp_minisign_verify_file(const struct hvp_minisign_key *keys, size_t n_keys,
                             const char *msg_path, const char *sig_path, unsigned flags,
                             struct hvp_signature_info *ret);

/* --------------------------------------------------------------- policy -- */

#define HVP_POLICY_DEFAULT_PATH "/etc/hvpatch/policy.xml"
#define HVP_POLICY_FILE_MAX (1u << 20)
/* A group's bound on the pause window when its <pause max-ms> is absent. */
#define HVP_POLICY_DEFAULT_MAX_PAUSE_MS 100
/* Namespace of hvpatch's element in a libvirt domain's <metadata>. */
#define HVP_METADATA_NS "urn:hvpatch:libvirt-metadata:1"

struct hvp_policy;

/*
 * Read, validate (RelaxNG, docs/schemas/policy.rng, built in) and check a policy
 * file. Relative key file paths are resolved against the policy file's folder.
 * -ENOENT no file, -E2BIG over HVP_POLICY_FILE_MAX, -EINVAL fails the schema or a
 * semantic check (duplicate names, unknown time zone, no current baseline, bad key...),
 * with the line number in the reason.
 */
int hvp_policy_load(const char *path, struct hvp_policy **ret_policy);
/* The same from memory; base_dir resolves relative key paths (NULL: refuse them). */
int hvp_policy_parse(const void *xml, size_t len, const char *base_dir, struct hvp_policy **ret_policy);
void hvp_policy_free(struct hvp_policy *p);

/* The trusted keys, owned by the policy. */
size_t hvp_policy_keys(const struct hvp_policy *p, const struct hvp_minisign_key **ret_keys);

/* hvp_minisign_verify() with the policy's trusted keys. Flags as there. */
int hvp_policy_verify(const struct hvp_policy *p, const void *msg, size_t msg_len,
                      const void *sig, size_t sig_len, unsigned flags,
                      struct hvp_signature_info *ret);

enum hvp_os {
        HVP_OS_UNKNOWN = 0,
        HVP_OS_LINUX,
        HVP_OS_WINDOWS,
};

/* PatchGuard state of a Windows kernel. UNKNOWN counts as PRESENT (the safe side). */
enum hvp_patchguard {
        HVP_PATCHGUARD_UNKNOWN = 0,
        HVP_PATCHGUARD_PRESENT,
        HVP_PATCHGUARD_ABSENT,
};

/*
 * Secure Boot as the guest kernel recorded it (boot_params.secure_boot, read from guest
 * memory by hvp_linux_boot_security(); hvp_guest_facts_gather() fills it). UNKNOWN: not
 * read or not known; the domain XML alone decides.
 */
enum hvp_kernel_secure_boot {
        HVP_KERNEL_SB_UNKNOWN = 0,
        HVP_KERNEL_SB_DISABLED,         /* the EFI stub saw it off, or the kernel was not started by it */
        HVP_KERNEL_SB_ENABLED,
};

#define HVP_FACTS_MAX_GROUPS 16
#define HVP_DOMAIN_NAME_MAX 255
#define HVP_UUID_STRING_LEN 36

/* A series and the sequence number of the bundle of that series applied to the guest. */
struct hvp_applied_series {
        const char *series;
        uint64_t seq;
};

/*
 * What is known of one guest. The first block is what the domain XML gives
 * (hvp_guest_facts_from_domain_xml() fills it); the second comes from kernel
 * discovery, the records of applied patches and the clock.
 */
struct hvp_guest_facts {
        char name[HVP_DOMAIN_NAME_MAX + 1];
        char uuid[HVP_UUID_STRING_LEN + 1];             /* lower-case, canonical */
        char groups[HVP_FACTS_MAX_GROUPS][HVP_NAME_MAX + 1]; /* <hvpatch:group> values */
        size_t n_groups;
        bool firmware_uefi;
        bool secure_boot;
        /*
         * QEMU loads the kernel (<os><kernel>): OVMF starts it through its legacy
         * loader when the image fails the firmware's signature check, so the kernel
         * runs unverified while Secure Boot stays on. <require secure-boot="yes"/>
         * refuses such a guest.
         */
        bool direct_kernel;
        enum hvp_os os;                 /* declared in the XML; overwrite with what the kernel shows */

        enum hvp_patchguard patchguard; /* Windows only */
        /*
         * With <require secure-boot="yes"/>, a guest whose kernel says DISABLED is refused
         * even when its domain XML enables Secure Boot; the reason names both.
         */
        enum hvp_kernel_secure_boot kernel_secure_boot;
        bool patch_area;                /* a patch area exists for new code */
        const char *kernel_build_id;    /* hex of the running kernel's build id; NULL: unknown */
        const struct hvp_applied_series *applied;
        size_t n_applied;
        time_t now;
};

/* What the signed bundle says of itself, and who signed it (hvp_signature_info.key_name). */
struct hvp_bundle_facts {
        const char *patch_id;
        const char *series;
        uint64_t seq;
        const char *target_build_id;    /* hex */
        const char *signer;             /* name of the trusted key that signed it */
};

enum hvp_verdict {
        HVP_VERDICT_ALLOW = 0,
        HVP_VERDICT_REFUSE,
        HVP_VERDICT_REBOOT_REQUIRED,    /* the guest runs an older known baseline */
        HVP_VERDICT_UNMANAGED,          /* no group selects it, or its kernel is unknown */
};

/* Why not: one code per check, so callers and tests need not parse the text. */
enum hvp_reason_code {
        HVP_REASON_NO_GROUP = 1,        /* no group selects this guest */
        HVP_REASON_UNKNOWN_KERNEL,      /* build id in no baseline of the group */
        HVP_REASON_OLD_BASELINE,        /* build id in an older baseline: reboot */
        HVP_REASON_NOT_UEFI,
        HVP_REASON_NO_SECURE_BOOT,
        HVP_REASON_WRONG_OS,
        HVP_REASON_NO_PATCH_AREA,
        HVP_REASON_PATCHGUARD,
        HVP_REASON_OUTSIDE_WINDOW,
        HVP_REASON_TARGET_MISMATCH,     /* bundle built for another kernel */
        HVP_REASON_SIGNER_UNKNOWN,      /* signer is not a key of this policy */
        HVP_REASON_SIGNER_NOT_ALLOWED,  /* key may not sign this patch id / series */
        HVP_REASON_NOT_NEWER,           /* same sequence as applied: nothing to do */
        HVP_REASON_ROLLBACK,            /* older sequence than applied */
        HVP_REASON_BAD_FACTS,           /* a required fact is missing (NULL) */
};

#define HVP_DECISION_MAX_REASONS 16
#define HVP_REASON_TEXT_MAX 256

struct hvp_reason {
        enum hvp_reason_code code;
        char text[HVP_REASON_TEXT_MAX];
};

struct hvp_decision {
        enum hvp_verdict verdict;
        char group[HVP_NAME_MAX + 1];           /* "" if none matched */
        char baseline[HVP_NAME_MAX + 1];        /* the baseline the guest runs, "" if unknown */
        uint32_t max_pause_ms;                  /* the group's bound on the pause window */
        size_t n_reasons;
        struct hvp_reason reasons[HVP_DECISION_MAX_REASONS]; /* empty when allowed */
};

/*
 * Decide whether bundle may be applied to the guest now. Pure: reads only its
 * arguments and the time zone database. Every check runs; every failing one adds a
 * reason. The verdict is the gravest: UNMANAGED (no group, unknown kernel) over
 * REBOOT_REQUIRED (older baseline) over REFUSE (any other reason) over ALLOW.
 * Groups are tried in file order; the first whose selectors match is the guest's.
 * Returns 0 when allowed, -EPERM otherwise; in both cases *ret is filled.
 * -EINVAL only for NULL policy/facts/bundle/ret (ret untouched).
 * Windows are evaluated on the wall clock of their zone: this sets $TZ for the moment
 * of a localtime_r() call under a process-wide lock and restores it (docs/policy.md).
 * Safe among hvpatch's callers; another thread reading local time meanwhile may see
 * the policy's zone.
 */
int hvp_policy_authorize(const struct hvp_policy *p, const struct hvp_guest_facts *facts,
                         const struct hvp_bundle_facts *bundle, struct hvp_decision *ret);

/*
 * The guest's compliance whatever the bundle: group, baseline (current, older: reboot
 * required, unknown: unmanaged) and requirements; no window, signer or sequence
 * check. ALLOW here means "compliant". Always fills *ret and returns 0 (-EINVAL for
 * NULL arguments).
 */
int hvp_policy_assess(const struct hvp_policy *p, const struct hvp_guest_facts *facts, struct hvp_decision *ret);

/* "allow", "refuse", "reboot-required", "unmanaged". */
const char *hvp_verdict_name(enum hvp_verdict v);
/* A short stable name for a reason code, e.g. "outside-window". */
const char *hvp_reason_name(enum hvp_reason_code c);

/*
 * Fill the first block of *facts (name, uuid, groups, firmware_uefi, secure_boot, os)
 * from a libvirt domain XML document (virDomainGetXMLDesc's output); the other members
 * are left as they are. UEFI: <os firmware='efi'> or <loader type='pflash'>. Secure
 * Boot: <loader secure='yes'> on UEFI, unless <firmware><feature name='secure-boot'
 * enabled='no'/> says otherwise. Groups: every <group> element in HVP_METADATA_NS
 * under <metadata>. OS: <hvpatch:os> under <metadata> if present, else the libosinfo
 * os id (microsoft.com/win... is Windows; known Linux distributors' ids are Linux).
 * -EINVAL not a domain XML, -E2BIG over 1 MiB or a name/group too long.
 */
int hvp_guest_facts_from_domain_xml(const char *xml, size_t len, struct hvp_guest_facts *facts);

/* ------------------------------------------------------ baseline moves -- */

/*
 * A baseline may name the kernel image the host boots for it (<baseline kernel=
 * initrd= cmdline=>, docs/policy.md "Baseline moves"): a guest that boots a kernel the
 * host provides (<os><kernel> in its domain XML) and runs an older baseline is moved to
 * the current baseline's image with a restart, only in a window that allows reboots
 * (<reboot allow="yes"/> in the group, or reboot="yes" on the window).
 */
#define HVP_BOOT_PATH_MAX 1024                  /* kernel and initrd paths (bytes) */
#define HVP_BOOT_CMDLINE_MAX 2047               /* x86 COMMAND_LINE_SIZE - 1 */
#define HVP_POLICY_DEFAULT_SHUTDOWN_TIMEOUT_S 60
#define HVP_POLICY_MAX_SHUTDOWN_TIMEOUT_S 3600

struct hvp_baseline_boot {
        char group[HVP_NAME_MAX + 1];           /* "" if no group selects the guest */
        char baseline[HVP_NAME_MAX + 1];        /* the group's current baseline */
        char kernel[HVP_BOOT_PATH_MAX + 1];     /* "": the baseline names no image */
        char initrd[HVP_BOOT_PATH_MAX + 1];     /* "": none (a move removes the domain's) */
        bool has_cmdline;                       /* else a move keeps the domain's */
        char cmdline[HVP_BOOT_CMDLINE_MAX + 1];
        bool reboot_windows;                    /* some window of the group allows reboots */
        bool reboot_now;                        /* facts->now lies inside one */
        char reboot_when[256];                  /* those windows in words, "none" if none */
        uint32_t shutdown_timeout_s;            /* graceful shutdown before a destroy */
};

/*
 * The current baseline's boot image for the guest's group, and whether a reboot is
 * allowed at facts->now. Pure (reads the time zone database). Always fills *ret and
 * returns 0 (group "" when no group selects the guest); -EINVAL for NULL arguments.
 */
int hvp_policy_baseline_boot(const struct hvp_policy *p, const struct hvp_guest_facts *facts,
                             struct hvp_baseline_boot *ret);

/* ---------------------------------------------------------------- audit -- */

enum hvp_audit_action {
        HVP_AUDIT_APPLY,
        HVP_AUDIT_REVERT,
        HVP_AUDIT_REFUSE,
        HVP_AUDIT_RECOVER,
        HVP_AUDIT_TAMPER,       /* a recorded patch memory no longer holds (hvpatchd) */
        HVP_AUDIT_MOVE_BASELINE, /* a host-booted guest restarted into the current baseline's kernel */
        HVP_AUDIT_HEALTH,       /* "health-fail": the health gate failed after an apply (health.h) */
};

struct hvp_audit_event {
        enum hvp_audit_action action;
        const char *domain;             /* NULL: "-" */
        const char *bundle_id;          /* patch id; NULL: "-" */
        uint64_t seq;
        const char *key_name;           /* signer; NULL: "-" */
        int result;                     /* 0 or the negative errno of the failure */
        const char *reason;             /* why, for failures and refusals; NULL: none */
        double pause_ms;                /* measured pause window; < 0: not paused */
};

/*
 * Record an event: one line of key=value pairs (values quoted and escaped, so hostile
 * domain names cannot forge fields), e.g.
 *   hvpatch-audit action=apply domain="web1" bundle="cve-1" seq=3 key="release"
 *   result=ok pause_ms=12.500
 * sent with syslog(3) to LOG_AUTHPRIV under the ident "hvpatch" (journald collects
 * syslog where present), LOG_NOTICE on success, LOG_WARNING otherwise. Never prints.
 * hvp_audit_format() writes the same line into buf (truncated to size; returns the
 * length it needed, like snprintf). hvp_audit() calls openlog()/closelog(): a program
 * embedding libhvpatch that uses syslog itself should install its own sink below.
 */
void hvp_audit(const struct hvp_audit_event *ev);
size_t hvp_audit_format(const struct hvp_audit_event *ev, char *buf, size_t size);

/* Replace the syslog sink (NULL: back to syslog). For tests and embedding programs. */
typedef void (*hvp_audit_fn)(int syslog_priority, const char *line, void *userdata);
void hvp_audit_set_fn(hvp_audit_fn fn, void *userdata);

#ifdef __cplusplus
}
#endif

#endif

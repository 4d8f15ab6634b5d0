/* Internal to the policy module: XML helpers, time zones, the policy's data, the built-in schema. */
#ifndef HVP_POLICY_INTERNAL_H
#define HVP_POLICY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <libxml/tree.h>

#include <hvpatch/policy.h>

/* The RelaxNG schema docs/schemas/policy.rng, built into the library (policy-schema.c). */
extern const char hvp_policy_schema[];
extern const size_t hvp_policy_schema_len;

/*
 * Parse XML from memory with no network, no DTD loading and no entity substitution;
 * documents with a DOCTYPE are refused. what names the input in reasons.
 * -EINVAL not well-formed (the reason has libxml2's first error and its line).
 */
int hvp_xml_read(const void *data, size_t len, const char *what, xmlDoc **ret_doc);
/* Validate doc against a RelaxNG schema held in memory. -EINVAL with the first error. */
int hvp_xml_validate(xmlDoc *doc, const char *schema, size_t schema_len, const char *what);

/* A time zone name the tz database knows ("UTC" always). -EINVAL otherwise, with why. */
int hvp_tz_check(const char *tz);
/* Local wall-clock time of t in tz (see window.c for the thread-safety contract). */
int hvp_tz_localtime(time_t t, const char *tz, struct tm *ret);

/* ---- the parsed policy ---- */

struct hvp_strv {
        char **v;
        size_t n;
};

/* One <may-sign>: a patch id glob and/or a series glob (NULL: any); both must match. */
struct may_sign {
        char *patch_id;
        char *series;
};

struct key_rules {
        struct may_sign *may;
        size_t n_may;
};

struct window {
        uint8_t days;           /* bit d: tm_wday d (0 = Sunday) */
        uint16_t start, end;    /* minutes after local midnight; end < start crosses midnight */
        char *tz;
        int8_t reboot;          /* reboot="yes" 1, "no" 0, absent -1: the group's <reboot allow> */
};

struct baseline {
        char name[HVP_NAME_MAX + 1];
        bool current;
        struct hvp_strv build_ids;      /* lower-case hex */
        /* the kernel image the host boots for this baseline (baseline moves); NULL: none */
        char *kernel, *initrd, *cmdline;
};

struct group {
        char name[HVP_NAME_MAX + 1];
        unsigned line;
        struct hvp_strv name_globs, uuids, metadata;
        bool need_uefi, need_secure_boot, need_patch_area;
        enum hvp_os need_os;            /* HVP_OS_UNKNOWN: any */
        bool allow_patchguard;
        struct window *windows;
        size_t n_windows;
        uint32_t max_pause_ms;
        struct baseline *baselines;
        size_t n_baselines;
        bool reboot_allow;              /* <reboot allow="yes"/>: windows allow baseline moves */
        uint32_t shutdown_timeout_s;    /* <reboot shutdown-timeout> */
};

struct hvp_policy {
        struct hvp_minisign_key *keys;
        struct key_rules *rules;        /* rules[i] for keys[i] */
        size_t n_keys;
        struct group *groups;
        size_t n_groups;
};

/* The first group whose selectors match the guest (authorize.c); NULL: none. */
const struct group *hvp_policy_find_group(const struct hvp_policy *p, const struct hvp_guest_facts *f);

/* True if [t] falls inside window w (wall clock of w->tz). -errno on a tz failure. */
int hvp_window_contains(const struct window *w, time_t t);

#endif

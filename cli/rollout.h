/*
 * rollout: the rings and the state file, apart from the command (cli/cmd-rollout.c)
 * so that the unit tests reach them (tests/unit/test-rollout.c).
 */
#ifndef HVP_CLI_ROLLOUT_H
#define HVP_CLI_ROLLOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hvpatch/apply.h>
#include <hvpatch/policy.h>

#define ROLLOUT_MAX_RINGS 16
#define ROLLOUT_MAX_GUESTS 4096
#define ROLLOUT_STATE_MAX (4u << 20)    /* bytes of a state file read */
#define ROLLOUT_DETAIL_MAX 512
#define ROLLOUT_HASH_HEX (2 * 32 + 1)

/*
 * --rings: comma-separated cumulative sizes, each N (guests) or P% (of all guests,
 * rounded up), at most ROLLOUT_MAX_RINGS, each at least 1. Ring i holds the guests
 * from the previous size up to its own (a size under the previous one adds nobody:
 * the ring is dropped); the last ring always takes the rest.
 *
 * Or, each item @GROUP: one ring per policy group, in the order given, holding the
 * guests the policy puts in that group (by_group; the command asks the policy).
 */
struct rollout_rings {
        size_t n;
        bool by_group;
        struct {
                bool percent;
                unsigned value;
                char group[HVP_NAME_MAX + 1];   /* by_group */
        } spec[ROLLOUT_MAX_RINGS];
};
/* 0, or -EINVAL with why filled. */
int rollout_rings_parse(const char *s, struct rollout_rings *ret, char *why, size_t why_size);
/*
 * The rings over n_guests: ends[i] is the cumulative end (exclusive) of ring i, each
 * strictly above the previous, the last n_guests. Returns the number of rings (0 when
 * there is no guest).
 */
size_t rollout_rings_layout(const struct rollout_rings *rings, size_t n_guests, size_t ends[ROLLOUT_MAX_RINGS]);

enum rollout_status {
        RO_PENDING = 0,
        RO_RUNNING,     /* the apply had started: on resume, memory says whether it is done */
        RO_DONE,        /* applied (or found applied) */
        RO_SKIPPED,     /* not eligible: outside its window, reboot-required, unmanaged */
        RO_FAILED,      /* the apply failed: health gate, refused, busy, mismatch, error */
        RO_REVERTED,    /* applied, then reverted when its ring halted */
        RO__MAX,
};
const char *rollout_status_name(enum rollout_status s);

struct rollout_guest {
        char domain[HVP_DOMAIN_NAME_MAX + 1];
        unsigned ring;
        enum rollout_status status;
        int exit_class;                 /* of the apply, for failed */
        char code[32];                  /* the reason code ("outside-window", "health", ...) or "" */
        char detail[ROLLOUT_DETAIL_MAX];
        bool applied_now;               /* applied by this run: pause_ms holds its window */
        double pause_ms;
};

struct rollout_state {
        char bundle_sha256[ROLLOUT_HASH_HEX];
        char patch_id[HVP_ID_MAX];
        bool halted;
        int halt_exit;                  /* the exit code of a halted rollout */
        size_t n_rings;
        size_t n_guests;
        struct rollout_guest *guests;   /* ordered; ring numbers non-decreasing */
};

/* Read a state file: -ENOENT none, -EINVAL/-E2BIG with why filled (nothing trusted). */
int rollout_state_load(const char *path, struct rollout_state *ret, char *why, size_t why_size);
/* Parse a state document (len bytes, need not be NUL-terminated). */
int rollout_state_parse(const char *text, size_t len, struct rollout_state *ret, char *why, size_t why_size);
/* Write it whole or not at all (temporary file, fsync, rename). -errno. */
int rollout_state_save(const char *path, const struct rollout_state *st);
void rollout_state_free(struct rollout_state *st);

#endif

/*
 * Patch areas: executable guest memory the guest kernel never allocates, where the
 * relocated code of redirect sites goes.
 *
 * "slack": the bytes after _etext up to the end of its page. Linux frees the pages
 * between PAGE_ALIGN(_etext) and __start_rodata at boot (mark_rodata_ro), but the
 * page holding _etext stays mapped, executable and read-only, and nothing else in
 * the kernel ever uses its tail. Free, needs nothing of the guest's definition, but
 * small (0 to 4095 bytes, depending on the build).
 *
 * Errors:
 *   -ENOSPC    no area, or no room left in it for the request
 *   -EFAULT    the area's page is not mapped, or not executable
 *   -EEXIST    the area's bytes are not the filler the kernel left there: something
 *              else wrote into it (hvpatch refuses to overwrite what it did not write)
 */
#ifndef HVPATCH_AREA_H
#define HVPATCH_AREA_H

#include <stddef.h>
#include <stdint.h>

#include <hvpatch/kernel.h>

#ifdef __cplusplus
extern "C" {
#endif

struct hvp_area {
        const char *kind;       /* "slack" */
        uint64_t start;         /* guest-virtual */
        uint64_t len;
        uint8_t filler;         /* the byte the unused area holds */
};

/* A range already taken in an area (by an applied patch). */
struct hvp_area_use {
        uint64_t start, len;
};

/* Find the slack area of the kernel in the address space of mmu. */
int hvp_area_find_slack(struct hvp_mmu *mmu, const struct hvp_kernel *k, struct hvp_area *ret_area);

/*
 * First fit of size bytes aligned to align (a power of two) in the area, avoiding
 * the ranges in use. Checks that the chosen bytes still hold the filler.
 */
int hvp_area_alloc(struct hvp_mmu *mmu, const struct hvp_area *area, const struct hvp_area_use *used,
                   size_t nr_used, size_t size, size_t align, uint64_t *ret_addr);

#ifdef __cplusplus
}
#endif

#endif

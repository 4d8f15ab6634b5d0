/*
 * Patch areas: executable guest memory the guest kernel never allocates, where the
 * relocated code of redirect sites goes. Two kinds:
 *
 * "slack": the bytes after _etext up to the end of its page. Linux frees the pages
 * between PAGE_ALIGN(_etext) and __start_rodata at boot (mark_rodata_ro), but the
 * page holding _etext stays mapped, executable and read-only, and nothing else in
 * the kernel ever uses its tail. Free, needs nothing of the guest's definition, but
 * small (0 to 4095 bytes, depending on the build: 718 on Debian's 6.1.0-56).
 *
 * "device": the BAR of an ivshmem-plain device named "hvpatch-area" in the domain
 * (<shmem name='hvpatch-area'><model type='ivshmem-plain'/><size unit='M'>2</size>),
 * host memory the guest kernel has no driver for and never touches. hvpatch maps
 * its first 2 MiB read-only and executable into an unused 2 MiB slot of the kernel
 * image range ([0xffffffff80000000, 0xffffffffc0000000) outside _text.._end, which
 * Linux leaves unmapped after boot) by writing one page-directory entry from the
 * host, in the pause window of the first patch that needs it. The mapping stays
 * until the guest reboots (patches come and go; the slot keeps pointing at the BAR).
 *
 * Errors:
 *   -ENOSPC    no area, or no room left in it for the request
 *   -ENODEV    no patch-area device in the domain (or its BAR is not mapped)
 *   -EFAULT    the area's page is not mapped, or not executable
 *   -EEXIST    the area's bytes are not the filler: something else wrote into it
 *              (hvpatch refuses to overwrite what it did not write), or no free slot
 */
#ifndef HVPATCH_AREA_H
#define HVPATCH_AREA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hvpatch/kernel.h>

#ifdef __cplusplus
extern "C" {
#endif

struct hvp_area {
        const char *kind;       /* "slack" or "device" */
        uint64_t start;         /* guest-virtual */
        uint64_t gpa;           /* guest-physical of start: the area is physically contiguous */
        uint64_t len;
        uint8_t filler;         /* the byte the unused area holds */
        /* device: the PDE to write to map it, when not mapped yet (map_needed) */
        bool map_needed;
        uint64_t pde_gpa, pde_old, pde_new;
};

/* A range already taken in an area (by an applied patch, or retired code: apply.h). */
struct hvp_area_use {
        uint64_t start, len;
};

/* The slack area of the kernel in the address space of mmu. */
int hvp_area_find_slack(struct hvp_mmu *mmu, const struct hvp_kernel *k, struct hvp_area *ret_area);

/*
 * The device area: already mapped in a kernel-range slot (reused), or the first
 * free slot above _end (then map_needed and the PDE to write).
 */
int hvp_area_find_device(struct hvp_mmu *mmu, const struct hvp_kernel *k, struct hvp_area *ret_area);

/*
 * First fit of size bytes aligned to align (a power of two) in the area, avoiding
 * the ranges in use. Checks that the chosen bytes still hold the filler.
 */
int hvp_area_alloc(struct hvp_guest *g, const struct hvp_area *area, const struct hvp_area_use *used,
                   size_t nr_used, size_t size, size_t align, uint64_t *ret_addr);

/* Bytes of the area outside the ranges in use (they may be split: not one run). */
uint64_t hvp_area_room(const struct hvp_area *area, const struct hvp_area_use *used, size_t nr_used);

#ifdef __cplusplus
}
#endif

#endif

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
 * "nvdimm" (the recommended device area, `hvpatch area add DOMAIN`): 2 MiB of
 * memory the guest can execute but not write: an nvdimm on a read-only
 * memory-backend-file, one root-owned file per domain (vmi/area-live.h). Guest
 * writes are dropped by QEMU (TCG) or KVM (a read-only memory slot); hvpatch
 * writes the file with pwrite, before the pause window. Append-only: TCG keeps
 * running code it translated and nothing flushes a read-only region, so bytes that
 * hold code are never rewritten, not even by a revert (the code is left, retired,
 * unreachable once its jump is gone); new code only goes where the filler (0xcc)
 * still is. Filled at creation with 0xcc.
 *
 * "device" (deprecated: the guest can write it): the BAR of the domain's own
 * ivshmem-plain device <shmem name='hvpatch-area-UUID'>, filler 0.
 *
 * Both device kinds: hvpatch maps the first 2 MiB read-only and executable into an
 * unused 2 MiB slot of the kernel image range ([0xffffffff80000000,
 * 0xffffffffc0000000) outside _text.._end, which Linux leaves unmapped after boot)
 * by writing one page-directory entry from the host, in the pause window of the
 * first patch that needs it. The mapping stays until the guest reboots (patches
 * come and go; the slot keeps pointing at the area). The guest owns its page
 * tables: it can point the slot elsewhere; `status` compares where it points.
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
        const char *kind;       /* "slack", "nvdimm" or "device" */
        uint64_t start;         /* guest-virtual */
        uint64_t gpa;           /* guest-physical of start: the area is physically contiguous */
        uint64_t len;
        uint8_t filler;         /* the byte the unused area holds */
        bool append_only;       /* never rewrite non-filler bytes (nvdimm) */
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
 * Which patch areas does this guest have: every kind hvpatch could place code in
 * now, in the planner's order of preference (slack, then device), up to max of
 * them in ret_areas, their count in *ret_n. A kind the guest lacks (the finder
 * fails with -ENOSPC, -ENODEV, -EFAULT, -EEXIST or -EINVAL) is left out; its
 * reason goes to the debug log. Other errors (-ENOMEM, -EIO reading the guest) are
 * returned, and *ret_n is then untouched. This is the one list of area kinds: the
 * policy's patch-area fact and `status` ask it. Whether a given size still fits
 * is hvp_area_alloc()'s question.
 */
#define HVP_AREA_MAX_KINDS 8
int hvp_area_list(struct hvp_mmu *mmu, const struct hvp_kernel *k, struct hvp_area *ret_areas, size_t max,
                  size_t *ret_n);

/*
 * First fit of size bytes aligned to align (a power of two) in the area, avoiding
 * the ranges in use. Checks that the chosen bytes still hold the filler: -EEXIST
 * when not, except in an append-only area, where bytes that are not the filler
 * are skipped as taken (retired code of reverted patches).
 */
int hvp_area_alloc(struct hvp_guest *g, const struct hvp_area *area, const struct hvp_area_use *used,
                   size_t nr_used, size_t size, size_t align, uint64_t *ret_addr);

/* Bytes of the area outside the ranges in use (they may be split: not one run). */
uint64_t hvp_area_room(const struct hvp_area *area, const struct hvp_area_use *used, size_t nr_used);

#ifdef __cplusplus
}
#endif

#endif

/*
 * Internal: parsers for the text QEMU's human monitor (HMP) prints, as the live
 * backend receives it through libvirt. Pure functions over strings, so they are
 * unit-tested on real samples and fuzzed. Every parser is bounded: output size,
 * line length, number of items; anything unexpected is -EIO with the line.
 */
#ifndef HVP_VMI_HMP_H
#define HVP_VMI_HMP_H

#include <stddef.h>
#include <stdint.h>

#include <hvpatch/guest.h>

/* Longest monitor reply accepted, and longest line inside it. */
#define HVP_HMP_MAX_OUTPUT (16u << 20)
#define HVP_HMP_MAX_LINE 1024
/* Longest memory-region name kept (QOM ids and region names are short). */
#define HVP_HMP_MAX_NAME 128

/* One range of guest RAM found in `info mtree`. */
struct hvp_hmp_ram {
        uint64_t gpa, size;
        char region[HVP_HMP_MAX_NAME];  /* the RAM memory region, e.g. "pc.ram" */
        uint64_t region_offset;         /* offset of gpa inside that region */
};

/*
 * Guest RAM from `info mtree` (tree) and `info mtree -f` (flat): the flat view of
 * address space "memory", keeping only ranges of type "ram" that belong to the
 * machine's main RAM, i.e. the region that the aliases ram-below-4g/ram-above-4g
 * point at (or one of its RAM subregions, as with NUMA memdevs), at the offset those
 * aliases imply. Device RAM (a VGA buffer, an ivshmem BAR, ROMs, flash, DIMMs) is
 * left out. Sorted by gpa. -EIO with a reason when the text is not understood or
 * no RAM is found, -E2BIG over max ranges.
 */
int hvp_hmp_parse_ram(const char *tree, const char *flat, struct hvp_hmp_ram *ret_ram,
                      size_t max, size_t *ret_n);

/*
 * The one range of RAM region NAME (e.g. "shmmem-shmem0", an ivshmem BAR) in the
 * flat view of address space "memory". -ENOENT not mapped, -EIO split or not RAM.
 */
int hvp_hmp_find_flat_ram(const char *flat, const char *name, uint64_t *ret_gpa, uint64_t *ret_size);

/*
 * `gpa2hva ADDR`: "Host virtual address for 0x... (REGION) is 0x...". Checks that
 * the address and the region are the ones asked about.
 */
int hvp_hmp_parse_gpa2hva(const char *out, uint64_t gpa, const char *region, uint64_t *ret_hva);

/*
 * `info registers -a`: one block per vCPU ("CPU#N" then the register lines of
 * target/i386 x86_cpu_dump_state). Fills regs[0..*ret_n). kernel_gs_base is not
 * printed by QEMU and is left 0. -E2BIG over max vCPUs.
 */
int hvp_hmp_parse_registers(const char *out, struct hvp_vcpu_regs *regs, unsigned max,
                            unsigned *ret_n);

#endif

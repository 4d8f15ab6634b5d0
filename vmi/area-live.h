/*
 * Internal: the per-domain patch areas of live domains (include/hvpatch/area.h).
 *
 * The read-only area ("nvdimm"): a 2 MiB file, root-owned and not writable by
 * anyone else, given to QEMU as
 *     -object memory-backend-file,id=hvpatch-area-mem,mem-path=FILE,size=2M,share=on,readonly=on
 *     -device nvdimm,id=hvpatch-area,memdev=hvpatch-area-mem,unarmed=on,slot=N
 * QEMU maps the file r--s and shows it to the guest as a read-only memory region:
 * guest writes are dropped (TCG: TLB_DISCARD_WRITE; KVM: a KVM_MEM_READONLY slot,
 * the write exits to QEMU which drops it). The host writes the file with pwrite.
 *
 * The shared-memory area ("device", deprecated): an ivshmem-plain BAR backed by
 * /dev/shm/NAME; the guest can write it. Only a per-domain name is accepted.
 *
 * Both: the backing object (device, inode) must be mapped by this domain's QEMU
 * process and by no other process on the host.
 */
#ifndef HVP_VMI_AREA_LIVE_H
#define HVP_VMI_AREA_LIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HVP_AREA_RO_DEVICE_ID "hvpatch-area"
#define HVP_AREA_RO_MEMDEV_ID "hvpatch-area-mem"
#define HVP_AREA_RO_SIZE (2u << 20)
#define HVP_AREA_RO_FILLER 0xcc         /* int3: a byte no jump reaches traps if run */
#define HVP_AREA_SHMEM_PREFIX "hvpatch-area-"   /* + the domain's UUID */

struct hvp_ro_area {
        int fd;                         /* O_RDWR on the backing file; -1: none */
        uint64_t gpa, size, hva;        /* hva: QEMU's r--s mapping of the file */
        dev_t dev;
        ino_t ino;
        char path[4096];
};

/* Host-side calls the area code needs from the live backend. */
struct hvp_area_host {
        pid_t pid;                      /* this domain's QEMU */
        const char *xml;                /* the live domain XML */
        void *ctx;
        int (*hmp)(void *ctx, const char *cmd, char **ret_out);        /* malloc'ed reply */
};

/*
 * mem-path of the -object memory-backend-file,id=hvpatch-area-mem in the domain
 * XML's <qemu:commandline>. 0 found, -ENOENT none, -EINVAL malformed (not
 * readonly=on/share=on, no absolute path, several).
 */
int hvp_area_ro_xml_path(const char *xml, char *ret_path, size_t size);

/*
 * HMP `info memory-devices`: the nvdimm with id hvpatch-area on memdev
 * /objects/hvpatch-area-mem: its address and size. -ENOENT none.
 */
int hvp_area_ro_parse_memory_devices(const char *out, uint64_t *ret_gpa, uint64_t *ret_size);

/*
 * The mappings of (dev, ino) in /proc/PID/maps text: the number of them, and the
 * first one's start, end and permissions (ret_* may be NULL).
 */
size_t hvp_area_maps_find(const char *maps, dev_t dev, ino_t ino, uint64_t *ret_lo, uint64_t *ret_hi,
                          char ret_perms[5]);

/*
 * The backing object of [hva, hva+size) in /proc/PID/maps text: one mapping with
 * a device and inode. -ENOENT anonymous or not mapped.
 */
int hvp_area_maps_backing(const char *maps, uint64_t hva, uint64_t size, dev_t *ret_dev, ino_t *ret_ino);

/*
 * Refuse (-EPERM, naming the process) a backing object that a process other than
 * pid maps. Scans /proc/[0-9]*\/maps (bounded).
 */
int hvp_area_backing_exclusive(pid_t pid, dev_t dev, ino_t ino, const char *what);

/*
 * Find and open the read-only area of the domain. 0 found (ret filled, fd open),
 * -ENOENT not configured (not an error for the caller), other: configured but
 * refused (shared, wrong owner, mode, size, symlink, not mapped as expected).
 */
int hvp_area_ro_open(const struct hvp_area_host *h, struct hvp_ro_area *ret);
void hvp_area_ro_close(struct hvp_ro_area *a);

/*
 * The append-only rule: writing new over cur may only fill filler bytes (or
 * rewrite a byte with the value it already holds). false: some byte would change
 * code already there.
 */
bool hvp_area_append_only_ok(const uint8_t *cur, const uint8_t *new, size_t len, uint8_t filler);

/* pwrite into the file under the append-only rule; -EEXIST refused, nothing written. */
int hvp_area_ro_write(const struct hvp_ro_area *a, uint64_t gpa, const void *buf, size_t len);

#endif

/*
 * The per-domain read-only patch area in a domain's persistent definition
 * (`hvpatch area add|remove|show`). See include/hvpatch/area.h for what the area is.
 *
 * add writes into the persistent definition (effective at the domain's next boot;
 * a running instance keeps what it booted with):
 *   - the file STATE_DIR/areas/UUID.area: 2 MiB of 0xcc, root-owned, mode 0644,
 *     created with O_EXCL|O_NOFOLLOW (an existing valid file is kept: it may hold
 *     code a running instance executes); STATE_DIR and STATE_DIR/areas get o+x so
 *     QEMU (another user) can open it;
 *   - <maxMemory slots=...> (added: memory + 1 GiB, one slot; or one more slot and
 *     1 GiB more), a NUMA cell when there is none, and in <qemu:commandline>
 *       -machine nvdimm=on
 *       -object memory-backend-file,id=hvpatch-area-mem,mem-path=FILE,size=2097152,share=on,readonly=on
 *       -device nvdimm,id=hvpatch-area,memdev=hvpatch-area-mem,unarmed=on,slot=N
 * remove takes those arguments out (maxMemory and NUMA stay) and deletes the file
 * when the domain is not running (else it is left for its next boot to drop).
 *
 * Errors: -ENOENT no such domain; -EEXIST (add) the definition has a conflicting
 * patch area; -EPERM an existing file is not what add makes; -EIO libvirt.
 */
#ifndef HVPATCH_AREA_CONFIG_H
#define HVPATCH_AREA_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct hvp_area_config {
        char domain[256], uuid[40];
        bool configured;                /* in the persistent definition */
        char path[4096];                /* its file ("" if not configured) */
        bool file_ok;                   /* the file exists, root-owned, 0644-like, 2 MiB */
        bool running;
        bool active;                    /* the running instance has it */
        uint64_t gpa, size;             /* where QEMU put it (active) */
        bool legacy_shmem;              /* a <shmem name='hvpatch-area...'> ivshmem is defined */
        bool legacy_shared_name;        /* ... with a name that is not per-domain (unsafe) */
        bool changed;                   /* add/remove changed the definition */
};

int hvp_area_config_add(const char *uri, const char *domain, const char *state_dir, struct hvp_area_config *ret);
int hvp_area_config_remove(const char *uri, const char *domain, struct hvp_area_config *ret);
int hvp_area_config_show(const char *uri, const char *domain, struct hvp_area_config *ret);

/* The file add uses for a domain: STATE_DIR/areas/UUID.area. */
int hvp_area_config_path(const char *state_dir, const char *uuid, char *ret, size_t size);

#ifdef __cplusplus
}
#endif

#endif

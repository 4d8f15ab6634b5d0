/*
 * Internal to the live backend (backend-live.c and its live-*.c parts): the state of
 * one open domain and the calls between the parts.
 *   live-libvirt.c  libvirt: errors, domain state, monitor, XML, jobs, lookup
 *   live-qemu.c     the QEMU process: finding and checking it, its RAM map, its memory
 *   live-gdbstub.c  QEMU's gdbstub: listening, connecting (the pause), writes
 *   backend-live.c  the operations table: open/close, pause/resume, write paths
 */
#ifndef HVP_VMI_LIVE_H
#define HVP_VMI_LIVE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <libvirt/libvirt.h>

#include "vmi/area-live.h"
#include "vmi/backend.h"
#include "vmi/gdb-remote.h"

#define LIBVIRT_PID_DIR "/run/libvirt/qemu"
#define GDB_SOCK_ROOT "/run/hvpatch"
#define GDB_TIMEOUT_MS 5000
#define MAX_PROC_FILE (64u << 20)       /* /proc/PID/maps of a big QEMU */
#define MAX_CMDLINE (1u << 20)          /* /proc/PID/cmdline */

struct hva_range {
        uint64_t gpa, size, hva;
};

/* Pieces of one process_vm_readv/writev call. */
struct xfer {
        bool write;
        size_t n, total;
        struct iovec local[IOV_MAX], remote[IOV_MAX];
};

struct live_be {
        virConnectPtr conn;
        virDomainPtr dom;
        char name[256];
        char uuid[VIR_UUID_STRING_BUFLEN];
        char *xml;
        char type[16];
        enum hvp_write_path path;

        pid_t pid;
        int pidfd;              /* tells when the QEMU process is gone */
        int memfd;              /* /proc/PID/mem: fallback when process_vm_* fails */
        uid_t qemu_uid;
        gid_t qemu_gid;

        struct hva_range map[HVP_MAX_RAM_RANGES];
        size_t nr_map;

        struct xfer *xfer;      /* scratch for one process_vm_readv/writev batch */

        char area_region[64];   /* QEMU region of the patch-area device's BAR, "" if none */
        uint64_t area_gpa, area_size;
        struct hvp_ro_area ro_area;     /* the read-only patch area (vmi/area-live.h); fd -1: none */

        bool paused;            /* we paused the domain */
        bool paused_by_stub;    /* ... by connecting to the gdbstub (fast path) */
        bool stub_resumed;      /* resumed by detaching: libvirt may not have seen it yet */
        bool gdb_listening;     /* the stub listens on gdb_dir/gdb.sock */
        bool gdb_open;          /* we are connected to it */
        struct hvp_gdb gdb;
        char gdb_dir[64];
        unsigned nr_vcpus;      /* from the last info registers (0: none yet) */
};

/* backend-live.c */
double live_probe(double since, const char *what);

/* live-libvirt.c */
void live_libvirt_init(void);
int live_fail(int err, const char *what);
const char *live_state_name(int state);
const char *live_paused_reason(int reason);
int live_domain_state(struct live_be *b, int *ret_state, int *ret_reason);
void live_describe_state(int state, int reason, struct hvp_run_state *ret);
int live_monitor(struct live_be *b, const char *cmd, bool hmp, char **ret);
int live_read_domain_xml(struct live_be *b);
int live_job_check(struct live_be *b);
int live_lookup_domain(struct live_be *b, const char *domain);

/* live-qemu.c */
int live_find_qemu_process(struct live_be *b);
int live_read_ram_map(struct live_be *b, struct hvp_ram_range *ranges);
int live_transfer(struct live_be *b, bool write, const struct hvp_phys_iov *iov, size_t n);
int live_read(void *be, uint64_t gpa, void *buf, size_t len);
int live_read_v(void *be, const struct hvp_phys_iov *iov, size_t n);
int live_direct_write(struct live_be *b, uint64_t gpa, const void *buf, size_t len);

/* live-gdbstub.c */
int live_gdb_listen(struct live_be *b);
int live_gdb_unlisten(struct live_be *b);
int live_gdb_connect(struct live_be *b);
int live_gdb_session_close(struct live_be *b);
int live_gdb_write(struct live_be *b, uint64_t gpa, const void *buf, size_t len);
void live_gdb_dir_remove(struct live_be *b);
bool live_stale_stub_dir(struct live_be *b, char *dir, size_t size);

#endif

/*
 * Guest access: one handle for a running domain, a core file or a memory image.
 *
 * A struct hvp_guest knows the guest's RAM ranges (guest-physical) and refuses any
 * access that does not lie wholly inside one of them: no read or write ever leaves
 * guest RAM, whatever a page table or a pointer in guest memory says.
 *
 * Errors (besides the common ones in hvpatch.h):
 *   -ENOENT     no such domain / file
 *   -ESRCH      the domain is not running
 *   -ENOTSUP    not a QEMU domain, or the operation is not offered by this backend
 *               (writes, pause and resume on a core file)
 *   -EFAULT     the physical range is not wholly inside guest RAM
 *   -EROFS      write to a read-only backend
 *   -EBUSY      a libvirt job (migration, snapshot, dump) runs on the domain, or
 *               a gdbstub is already open on it (someone may be debugging it)
 *   -EALREADY   pause: the domain is already paused by someone else
 *   -ESTALE     resume: someone else resumed the domain inside our pause window
 *               (the handle is no longer paused afterwards)
 */
#ifndef HVPATCH_GUEST_H
#define HVPATCH_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hvpatch/hvpatch.h>

#ifdef __cplusplus
extern "C" {
#endif

struct hvp_guest;

/*
 * The architectural state hvpatch needs from one vCPU.
 * live: from HMP `info registers -a`; kernel_gs_base is not shown there and is 0.
 * core: from the per-vCPU "QEMU" notes. Those carry no EFER: the core backend
 *       derives it, LME|LMA when the core is EM_X86_64 (QEMU writes that only when
 *       it saw long mode active) and CR0.PG and CR4.PAE are set, plus NXE (every x86-64 CPU has NX and 64-bit Linux and Windows turn it on;
 *       a walk that assumed NXE wrongly would only see bit 63 as NX instead of
 *       reserved), SCE left 0. halted is false.
 */
struct hvp_vcpu_regs {
        uint64_t rip, rsp, rflags;
        uint64_t cr0, cr2, cr3, cr4, efer;
        uint64_t cs_sel;                /* CPL is cs_sel & 3 */
        uint64_t fs_base, gs_base, kernel_gs_base;
        uint64_t gdt_base, idt_base;
        uint32_t gdt_limit, idt_limit;
        bool halted;
};

struct hvp_ram_range {
        uint64_t gpa;   /* guest-physical start */
        uint64_t size;  /* bytes */
};

/* How writes reach guest memory (live backend only). */
enum hvp_write_path {
        HVP_WRITE_AUTO,         /* DIRECT for type='kvm' domains, GDBSTUB for TCG ('qemu') */
        HVP_WRITE_DIRECT,       /* process_vm_writev into the QEMU process */
        HVP_WRITE_GDBSTUB,      /* QEMU's gdbstub: coherent with TCG's translation cache */
};

struct hvp_live_options {
        const char *uri;                /* libvirt URI; NULL: "qemu:///system" */
        enum hvp_write_path write_path;
};

/*
 * Open a running libvirt/QEMU domain by name or UUID. Does not pause it.
 * -ENOENT no such domain, -ESRCH not running, -ENOTSUP not QEMU-based,
 * -EACCES cannot reach the QEMU process, -EIO libvirt or monitor failure.
 *
 * Guest RAM is the machine's main RAM only (what QEMU maps through its
 * ram-below-4g/ram-above-4g aliases): ROM, flash, device RAM (VGA, ivshmem BARs)
 * and hotplugged DIMMs are outside it. Memory is reached through the QEMU process
 * (process_vm_readv/writev; the handle refuses to work once that process is gone).
 * Uses libvirt's monitor passthrough, which marks the domain "custom-monitor"
 * tainted in libvirt's log. Installs a silent libvirt error handler (libvirt would
 * print to stderr otherwise; the reasons go to hvp_last_error()).
 *
 * Writes with HVP_WRITE_GDBSTUB open QEMU's gdbstub on a private unix socket
 * under /run/hvpatch on the first write of a pause window and close it on resume,
 * so a multi-site patch costs one attach. A write outside a pause window pauses
 * and resumes around itself. Every write is read back.
 */
int hvp_guest_open_live(const char *domain, const struct hvp_live_options *opts,
                        struct hvp_guest **ret_guest);

/*
 * Open an ELF core file written by `virsh dump --memory-only` (read-only).
 * -ENOENT no such file, -EINVAL malformed (the reason says where), -E2BIG absurd counts.
 */
int hvp_guest_open_core(const char *path, struct hvp_guest **ret_guest);

/*
 * A guest made of caller-owned buffers, for tests and fuzzers. regions[i].data
 * backs guest-physical [regions[i].gpa, +size). The buffers must outlive the guest.
 * With writable false, writes return -EROFS.
 */
struct hvp_mem_region {
        uint64_t gpa;
        uint64_t size;
        void *data;
};
int hvp_guest_open_memory(const struct hvp_mem_region *regions, size_t nr_regions,
                          const struct hvp_vcpu_regs *vcpus, unsigned nr_vcpus,
                          bool writable, struct hvp_guest **ret_guest);

void hvp_guest_free(struct hvp_guest *g);

/* A short description of the backend: "live", "core", "memory". */
const char *hvp_guest_backend(const struct hvp_guest *g);
/* Domain name (live), file path (core) or "memory". */
const char *hvp_guest_name(const struct hvp_guest *g);
/* The domain's UUID (live); for other backends a stable key derived from the name. */
const char *hvp_guest_uuid(const struct hvp_guest *g);

/* Guest-physical access; the whole range must be inside guest RAM (-EFAULT otherwise). */
int hvp_guest_read_phys(struct hvp_guest *g, uint64_t gpa, void *buf, size_t len);
int hvp_guest_write_phys(struct hvp_guest *g, uint64_t gpa, const void *buf, size_t len);

/*
 * Scatter read: several ranges in one backend call where the backend can (one
 * process_vm_readv for the live backend). All or nothing.
 */
struct hvp_phys_iov {
        uint64_t gpa;
        void *buf;
        size_t len;
};
int hvp_guest_read_phys_v(struct hvp_guest *g, const struct hvp_phys_iov *iov, size_t n);

/* The guest's RAM ranges, sorted by address; owned by the guest. */
size_t hvp_guest_ram_ranges(const struct hvp_guest *g, const struct hvp_ram_range **ret_ranges);

/* Number of vCPUs, and the registers of one (read when the guest was opened or last refreshed). */
unsigned hvp_guest_vcpu_count(const struct hvp_guest *g);
int hvp_guest_vcpu_regs(const struct hvp_guest *g, unsigned vcpu, struct hvp_vcpu_regs *ret_regs);
/*
 * Re-read every vCPU's registers from the backend (live: one monitor round trip;
 * inside a pause window taken through the gdbstub, RIP, RSP and CS only, through
 * the stub, the others keeping their last values).
 */
int hvp_guest_refresh_regs(struct hvp_guest *g);

/*
 * Pause and resume the vCPUs. Pausing a guest that the caller did not pause
 * (already paused by someone else) is an error (-EALREADY): hvpatch never resumes
 * what it did not pause.
 */
int hvp_guest_pause(struct hvp_guest *g);
int hvp_guest_resume(struct hvp_guest *g);
bool hvp_guest_is_paused(const struct hvp_guest *g);

/*
 * Around a pause window: prepare, while the guest runs, what the pause and the
 * writes need (the gdbstub path has QEMU's stub listen, so that connecting to it is
 * the pause and detaching the resume: no monitor round trip inside the window;
 * it also checks for libvirt jobs there, -EBUSY if one runs); release it after
 * the resume. Both are no-ops where a backend needs nothing.
 */
int hvp_guest_prepare_window(struct hvp_guest *g);
int hvp_guest_release_window(struct hvp_guest *g);

/*
 * Recovery only: take over the pause of a guest that a dead hvpatch left paused,
 * cleaning up what it left attached (a gdbstub), so that writes work and
 * hvp_guest_resume() resumes it. Returns 1 if adopted, 0 if the guest runs (nothing
 * adopted; a stub a dead hvpatch left listening is closed all the same),
 * -ENOTSUP for backends that cannot pause.
 */
int hvp_guest_adopt_pause(struct hvp_guest *g);

/*
 * 0 if no libvirt job (migration, snapshot, dump, ...) runs on the domain, else
 * -EBUSY naming the job. Writes made from outside QEMU's view would escape a
 * migration's dirty tracking. Backends other than live: always 0.
 */
int hvp_guest_check_idle(struct hvp_guest *g);

/*
 * The domain's own patch-area device (docs/operations.md, `hvpatch area add`):
 * - the read-only area: an nvdimm on a read-only memory-backend-file, one root-owned
 *   file per domain; the guest cannot write it, hvpatch writes the file (append-only,
 *   see hvp_guest_append_only);
 * - deprecated: an ivshmem-plain <shmem name='hvpatch-area-UUID'> (this domain's
 *   UUID; the guest can write it).
 * Either is part of the RAM ranges; opening the guest refused one whose backing
 * another process maps. -ENODEV: no such device, or it is not mapped.
 */
int hvp_guest_area_device(const struct hvp_guest *g, uint64_t *ret_gpa, uint64_t *ret_size);

/*
 * An append-only range of guest-physical memory (the read-only patch area): bytes
 * holding something other than the filler are never rewritten (the backend refuses
 * with -EEXIST). hvp_guest_append_only() is true when [gpa, gpa+len) lies inside it
 * and gives its filler byte; false for every other range and backend.
 */
void hvp_guest_set_append_only(struct hvp_guest *g, uint64_t gpa, uint64_t size, uint8_t filler);
bool hvp_guest_append_only(const struct hvp_guest *g, uint64_t gpa, size_t len, uint8_t *ret_filler);

/*
 * The live domain's run state as libvirt reports it now (virDomainGetState): kind,
 * libvirt's words for state and reason, and whether it is a failure the health gate
 * counts (crashed, paused on an I/O error, a panic or a watchdog, shut off for any
 * reason but an operator's or a job's: destroyed, saved, migrated, from a snapshot).
 * -ENOTSUP other backends, -EIO libvirt (the domain may be gone: a transient domain
 * that was destroyed).
 */
enum hvp_run_kind {
        HVP_RUN_RUNNING,
        HVP_RUN_PAUSED,
        HVP_RUN_SHUTOFF,
        HVP_RUN_CRASHED,
        HVP_RUN_OTHER,          /* blocked, shutting down, suspended by guest PM, no state */
};
struct hvp_run_state {
        enum hvp_run_kind kind;
        bool failure;
        char state[32];         /* "running", "paused", "shut off", "crashed", ... */
        char reason[32];        /* "panicked", "I/O error", "destroyed", ...; "" if none */
};
int hvp_guest_run_state(struct hvp_guest *g, struct hvp_run_state *ret);

/* The live domain XML read at open (owned by the guest), NULL for other backends. */
const char *hvp_guest_domain_xml(const struct hvp_guest *g);
/* The domain's type attribute, "kvm" or "qemu" (live), NULL for other backends. */
const char *hvp_guest_domain_type(const struct hvp_guest *g);
/* The write path in effect, AUTO resolved; HVP_WRITE_DIRECT for other backends. */
enum hvp_write_path hvp_guest_write_path(const struct hvp_guest *g);
/* "auto", "direct", "gdbstub". */
const char *hvp_write_path_name(enum hvp_write_path path);

/*
 * The live domain's libvirt metadata element in namespace ns (virDomainGetMetadata,
 * VIR_DOMAIN_AFFECT_LIVE): *ret_xml malloc'd, NULL when there is none. Set replaces it
 * (xml NULL: removes it), live only, with key as the namespace prefix. The cached
 * domain XML (hvp_guest_domain_xml) is not re-read. -ENOTSUP other backends, -EIO libvirt.
 */
int hvp_guest_get_metadata(struct hvp_guest *g, const char *ns, char **ret_xml);
int hvp_guest_set_metadata(struct hvp_guest *g, const char *ns, const char *key, const char *xml);

#ifdef __cplusplus
}
#endif

#endif

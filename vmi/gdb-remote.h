/*
 * Internal: a minimal client of the GDB remote serial protocol, enough to write
 * guest-physical memory through QEMU's gdbstub (Qqemu.PhyMemMode:1, M, m).
 * It never sends 'k' (kill: it ends the VM). 'D' (detach) is sent only by
 * hvp_gdb_detach(), whose point is that QEMU's detach resumes the VM. Every wait is bounded by a timeout; every reply by a length.
 */
#ifndef HVP_VMI_GDB_REMOTE_H
#define HVP_VMI_GDB_REMOTE_H

#include <stddef.h>
#include <stdint.h>

/* Reply packets longer than this are refused (QEMU's own limit is 4096). */
#define HVP_GDB_MAX_PACKET 8192
/* Bytes of memory per M/m packet (hex doubles it; QEMU 7.2 accepts 4096-byte packets). */
#define HVP_GDB_CHUNK 1024

struct hvp_gdb {
        int fd;
        int timeout_ms;         /* per reply */
        /* bytes received and not yet consumed (a reply of 1,200 characters took 2,400 syscalls) */
        char rbuf[2048];
        size_t rlen, rpos;
};

/* Connect to a unix socket (the stub's). -EIO with the reason on failure. */
int hvp_gdb_connect_unix(const char *path, int timeout_ms, struct hvp_gdb *ret_gdb);
/* Use an already connected descriptor (tests). Takes ownership. */
void hvp_gdb_attach_fd(int fd, int timeout_ms, struct hvp_gdb *ret_gdb);
void hvp_gdb_close(struct hvp_gdb *g);

/*
 * Send one command packet and receive its reply (acks handled, checksums checked,
 * unsolicited stop replies skipped). reply gets a NUL-terminated string.
 */
int hvp_gdb_command(struct hvp_gdb *g, const char *cmd, char *reply, size_t max);

/* Detach: QEMU continues the VM it stopped when we connected ("D" -> "OK"). */
int hvp_gdb_detach(struct hvp_gdb *g);

/* Switch the stub to guest-physical addresses ("Qqemu.PhyMemMode:1" -> "OK"). */
int hvp_gdb_phys_mode(struct hvp_gdb *g);
/* Read / write memory at the stub's current address mode, chunked. */
int hvp_gdb_read(struct hvp_gdb *g, uint64_t addr, void *buf, size_t len);
int hvp_gdb_write(struct hvp_gdb *g, uint64_t addr, const void *buf, size_t len);

/*
 * RIP, RSP and CS of vCPU index vcpu (QEMU's thread id vcpu + 1): "Hg" then "g", the
 * amd64 register block (rax rbx rcx rdx rsi rdi rbp rsp r8..r15 rip: 8 bytes each,
 * little-endian; eflags, cs: 4 bytes). -ENOENT: no such thread; -EIO a short or
 * unreadable block.
 */
int hvp_gdb_vcpu_regs(struct hvp_gdb *g, unsigned vcpu, uint64_t *ret_rip, uint64_t *ret_rsp, uint64_t *ret_cs);

#endif

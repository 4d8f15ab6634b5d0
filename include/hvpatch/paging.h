/*
 * x86-64 paging: guest-virtual to guest-physical translation through the guest's
 * own page tables. IA-32e 4-level and 5-level (LA57), 4 KiB, 2 MiB and 1 GiB pages.
 * CR3's PCID and flag bits are masked. Every failed walk says why.
 *
 * Errors:
 *   -EFAULT    not mapped (a not-present entry); the reason names the level
 *   -EINVAL    reserved bits set in an entry, or a non-canonical address
 *   -ERANGE    a table or the final page lies outside guest RAM
 *   -ENOTSUP   paging mode not handled (not in IA-32e mode)
 * A backend failure while reading a table is passed on with its own code (-EIO...).
 *
 * The walker only reads: it never sets Accessed/Dirty bits, and it reports the
 * permissions (HVP_PF_*) without enforcing them (hvp_mmu_write writes read-only
 * kernel text). An mmu is not thread-safe.
 */
#ifndef HVPATCH_PAGING_H
#define HVPATCH_PAGING_H

#include <stdint.h>

#include <hvpatch/guest.h>

#ifdef __cplusplus
extern "C" {
#endif

enum hvp_paging_mode {
        HVP_PAGING_4LEVEL = 4,
        HVP_PAGING_5LEVEL = 5,
};

/* Flags of a translation: the effective permissions along the walk. */
#define HVP_PF_PRESENT  (1u << 0)
#define HVP_PF_WRITE    (1u << 1)       /* writable at every level */
#define HVP_PF_USER     (1u << 2)       /* user-accessible at every level */
#define HVP_PF_NX       (1u << 3)       /* no-execute at some level (EFER.NXE set) */
#define HVP_PF_GLOBAL   (1u << 4)       /* G bit of the final entry */

/* Why a walk failed (also in the text of hvp_last_error()). */
enum hvp_walk_error {
        HVP_WALK_OK = 0,
        HVP_WALK_NOT_PRESENT,
        HVP_WALK_RESERVED_BITS,
        HVP_WALK_OUTSIDE_RAM,
        HVP_WALK_NON_CANONICAL,
        HVP_WALK_READ_FAILED,           /* the backend failed reading a table */
};

struct hvp_translation {
        uint64_t va;
        uint64_t pa;
        uint64_t page_size;     /* 4096, 2 MiB or 1 GiB */
        uint32_t flags;         /* HVP_PF_* */
        int level;              /* level of the final entry: 1 (PTE) .. 3 (PDPTE) */
        enum hvp_walk_error error;
        int error_level;        /* level where the walk failed (5..1), 0 if none */
};

struct hvp_mmu;

/* Paging mode from CR0/CR4/EFER; -ENOTSUP unless IA-32e paging is on. */
int hvp_paging_mode(const struct hvp_vcpu_regs *regs, enum hvp_paging_mode *ret_mode);

/*
 * An address space: the guest, a CR3 and a mode, with a software TLB.
 * nxe: EFER.NXE (whether bit 63 is NX or reserved).
 */
int hvp_mmu_new(struct hvp_guest *g, uint64_t cr3, enum hvp_paging_mode mode, bool nxe,
                struct hvp_mmu **ret_mmu);
/* The same, from a vCPU's registers. */
int hvp_mmu_new_from_vcpu(struct hvp_guest *g, unsigned vcpu, struct hvp_mmu **ret_mmu);
void hvp_mmu_free(struct hvp_mmu *mmu);

enum hvp_paging_mode hvp_mmu_mode(const struct hvp_mmu *mmu);
uint64_t hvp_mmu_root(const struct hvp_mmu *mmu);       /* CR3 with PCID/flags masked */
bool hvp_mmu_nxe(const struct hvp_mmu *mmu);            /* EFER.NXE as the walk assumes it */
struct hvp_guest *hvp_mmu_guest(const struct hvp_mmu *mmu);

/*
 * Translate va. On success fills *ret (error HVP_WALK_OK). On a failed walk, returns
 * the negative errno and, if ret is not NULL, fills ret->error and error_level too
 * (an exception to the untouched-on-failure rule, so callers can report per address).
 */
int hvp_mmu_translate(struct hvp_mmu *mmu, uint64_t va, struct hvp_translation *ret);

/*
 * The guest's physical address width (CPUID 0x80000008 EAX[7:0], 32..52; the default
 * is 52). Entry bits from it up to bit 51 are then reserved. -EINVAL if out of range
 * or if the root has bits at or above it. Flushes the TLB.
 */
int hvp_mmu_set_maxphyaddr(struct hvp_mmu *mmu, unsigned bits);

/*
 * The paging-structure entry of va at level (1 = PTE, 2 = PDE, ...): its
 * guest-physical address and value, present or not. The levels above must be present
 * tables (-EFAULT / -EINVAL otherwise). Bypasses the TLB.
 */
int hvp_mmu_entry(struct hvp_mmu *mmu, uint64_t va, int level, uint64_t *ret_entry_gpa, uint64_t *ret_entry);

/* Forget cached translations (after the guest ran, or page tables were written). */
void hvp_mmu_flush(struct hvp_mmu *mmu);

/* TLB statistics, for benchmarks. */
void hvp_mmu_tlb_stats(const struct hvp_mmu *mmu, uint64_t *ret_hits, uint64_t *ret_misses);

/*
 * Read/write guest-virtual memory, page by page. Every page of the range is
 * translated (and checked to lie in RAM) before any byte is copied, so a failure
 * leaves buf (read) or the guest (write) untouched, except for a backend I/O error
 * in the middle of the copy. hvp_mmu_write flushes the TLB afterwards: the bytes
 * written may have been page-table entries.
 */
int hvp_mmu_read(struct hvp_mmu *mmu, uint64_t va, void *buf, size_t len);
int hvp_mmu_write(struct hvp_mmu *mmu, uint64_t va, const void *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif

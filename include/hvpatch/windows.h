/*
 * Windows guests: a PE32+ header parser and discovery of the x64 Windows kernel
 * (ntoskrnl) in guest memory, without symbols.
 *
 * hvpatch does not patch Windows kernels: PatchGuard bug-checks (0x109) a guest whose
 * kernel code changed. Detection exists so that the CLI can say what runs in the guest
 * and refuse with the policy's reason instead of "no Linux kernel found".
 *
 * The parser reads hostile input: every offset, count and size is bounded against the
 * image and against the fixed limits below; a bad value is an error with a reason.
 *
 * Errors:
 *   -EINVAL    not a PE image, or a header field is inconsistent (the reason says which)
 *   -E2BIG     a count or size past its bound (sections, headers, SizeOfImage)
 *   -ENOTSUP   a PE image, but not PE32+ for AMD64 (hvp_pe_parse does not refuse other
 *              machines: it fills machine; the Windows finder does)
 *   -ENOENT    (finder) no Windows kernel image found
 *   -EFAULT    (finder) a needed page is not mapped
 */
#ifndef HVPATCH_WINDOWS_H
#define HVPATCH_WINDOWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hvpatch/kernel.h>
#include <hvpatch/paging.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HVP_PE_MACHINE_AMD64 0x8664
#define HVP_PE_MACHINE_I386 0x014c
#define HVP_PE_SUBSYSTEM_NATIVE 1               /* kernels and drivers */
#define HVP_PE_SUBSYSTEM_WINDOWS_CUI 3
#define HVP_PE_SUBSYSTEM_EFI_APPLICATION 10     /* e.g. the Linux EFI stub (vmlinuz) */

/* Bounds on what the parser accepts. */
#define HVP_PE_MAX_HEADERS (64u << 10)          /* e_lfanew + headers + section table */
#define HVP_PE_MAX_SECTIONS 96                  /* the loader's own limit */
#define HVP_PE_MAX_IMAGE (256u << 20)           /* SizeOfImage */
#define HVP_PE_MAX_DEBUG_ENTRIES 32
#define HVP_PE_MAX_CODEVIEW 1024                /* an RSDS record: 24 bytes + the PDB path */

/* Longest identity string (hvp_pe_identity), with its NUL. */
#define HVP_PE_IDENTITY_MAX 48

/* Where RVAs point: into a file (through the section table) or into a loaded image. */
enum hvp_pe_layout {
        HVP_PE_LAYOUT_FILE,
        HVP_PE_LAYOUT_MAPPED,   /* offset == RVA, as in guest memory */
};

struct hvp_pe_info {
        uint16_t machine;               /* HVP_PE_MACHINE_* */
        uint16_t characteristics;       /* COFF header */
        uint16_t subsystem;             /* HVP_PE_SUBSYSTEM_* */
        uint16_t nr_sections;
        uint32_t timestamp;             /* TimeDateStamp */
        uint32_t size_of_image;
        uint32_t size_of_headers;
        uint32_t entry_rva;
        uint64_t image_base;            /* preferred base (the header's ImageBase) */
        /*
         * The DLL name in the export directory ("ntoskrnl.exe"); "" when the image has
         * no export directory or it could not be read (it is optional: a failure here
         * does not fail the parse).
         */
        char export_name[64];
        /* The first CodeView "RSDS" debug record, when there is one that can be read. */
        bool has_codeview;
        uint8_t pdb_guid[16];           /* as stored: Data1..Data3 little-endian, Data4 bytes */
        uint32_t pdb_age;
        char pdb_name[256];             /* path as the linker wrote it, truncated if longer */
};

/*
 * A reader of the image by offset (layout FILE: file offset; MAPPED: RVA). Returns 0
 * or a negative errno and must fill all of buf.
 */
typedef int (*hvp_pe_read_fn)(void *ctx, uint64_t off, void *buf, size_t len);

/*
 * Parse the PE32+ headers of an image of size bytes (size: the file size, or for a
 * mapped image the bound the caller knows, e.g. the readable range; UINT64_MAX if
 * none), then the optional parts (export name, CodeView record). On failure *ret is
 * untouched.
 */
int hvp_pe_parse_reader(hvp_pe_read_fn read, void *ctx, uint64_t size, enum hvp_pe_layout layout,
                        struct hvp_pe_info *ret);
/* The same over a buffer. */
int hvp_pe_parse(const void *buf, size_t len, enum hvp_pe_layout layout, struct hvp_pe_info *ret);

/*
 * The image's identity, lower-case hex, as Microsoft's symbol store keys it
 * (symchk/symstore; compare case-insensitively, upper-case it for a symbol server path):
 *   with a CodeView RSDS record: the PDB key, GUID in its textual order (Data1 as 8
 *     digits, Data2 and Data3 as 4, the 8 bytes of Data4) followed by the age in hex
 *     without leading zeros: 33 to 40 digits, e.g. "3844dbb920174967be7aa4a2c20430fa1";
 *   without one: the binary's key, TimeDateStamp as 8 digits followed by SizeOfImage
 *     in hex without leading zeros, e.g. "63f14e2b12d000" (wine 8.0's ntoskrnl.exe).
 * This is what hvpatch uses as a Windows kernel's build id (DESIGN: "for Windows the
 * image's PDB GUID/TimeDateStamp"). out holds HVP_PE_IDENTITY_MAX bytes.
 */
void hvp_pe_identity(const struct hvp_pe_info *pe, char out[HVP_PE_IDENTITY_MAX]);

/*
 * Whether the parsed image looks like the x64 Windows kernel: AMD64, subsystem native,
 * and the export name is ntoskrnl.exe or the PDB file name (last path component) is
 * one of the kernel's (ntoskrnl, ntkrnlmp, ntkrnlpa, ntkrpamp .pdb), case-insensitive.
 * On false, why (may be NULL) gets a short reason.
 */
bool hvp_pe_is_windows_kernel(const struct hvp_pe_info *pe, char *why, size_t why_size);

struct hvp_windows_kernel {
        uint64_t base;                          /* where the image's "MZ" header is */
        uint32_t size;                          /* SizeOfImage */
        struct hvp_pe_info pe;
        char identity[HVP_PE_IDENTITY_MAX];     /* hvp_pe_identity() */
};

/* How far below an IDT handler the finder looks for the image's header. */
#define HVP_WINDOWS_SCAN_MAX (32ull << 20)
/* How many distinct handler addresses it tries. */
#define HVP_WINDOWS_MAX_HINTS 8

/*
 * Find the Windows kernel image that contains one of the addresses hints[0..n)
 * (interrupt handlers, which Windows places in ntoskrnl), reading through km (only
 * km->read is used). From each hint, walks down page by page (4 KiB, at most
 * HVP_WINDOWS_SCAN_MAX, unreadable pages skipped) to an "MZ" header whose PE image
 * (layout MAPPED) contains the hint; that image must pass hvp_pe_is_windows_kernel().
 * -ENOENT no such image (the reason names what was found instead, if anything);
 * -E2BIG the search budget (km->budget, or a default one) ran out.
 */
int hvp_windows_find_kmem(const struct hvp_kmem *km, const uint64_t *hints, size_t n_hints,
                          struct hvp_windows_kernel *ret);

/*
 * The same in the address space of mmu, with the hints taken from the IDT of vCPU
 * vcpu of g (idt_base/idt_limit: present interrupt gates with canonical kernel-half
 * handler addresses; vectors 0..31 first).
 */
int hvp_windows_find(struct hvp_mmu *mmu, struct hvp_guest *g, unsigned vcpu, struct hvp_windows_kernel *ret);

/*
 * Whether the guest runs a Windows x64 kernel: tries each vCPU (its CR3 and IDT) until
 * hvp_windows_find() succeeds. Separate from hvp_linux_attach(), whose contract is
 * unchanged: callers try Linux first and this when it fails. ret_vcpu may be NULL.
 * Known limit: a vCPU caught in user mode under KVA shadowing has a CR3 that maps the
 * interrupt entry code but not the kernel's header; another vCPU usually finds it.
 */
int hvp_windows_attach(struct hvp_guest *g, struct hvp_windows_kernel *ret, unsigned *ret_vcpu);
/*
 * The same, spending budget (NULL: a default one; see struct hvp_scan_budget): every
 * page read and every "MZ" header parsed, over all hints and vCPUs, counts. A hint page
 * walked already under the same top-level page-table entry is not walked again.
 * -E2BIG when the budget ran out (the reason says which limit).
 */
int hvp_windows_attach_budget(struct hvp_guest *g, struct hvp_scan_budget *budget, struct hvp_windows_kernel *ret,
                              unsigned *ret_vcpu);

#ifdef __cplusplus
}
#endif

#endif

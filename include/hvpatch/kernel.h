/*
 * Linux kernel discovery with no symbol file: from registers and guest memory only.
 *
 * hvp_kernel_find() locates the kernel image (KASLR base), decodes the in-memory
 * kallsyms tables into a symbol table, then reads the banner (linux_banner) and the
 * GNU build id (the .notes section, __start_notes..__stop_notes).
 *
 * Errors:
 *   -ENOENT    no kernel image / no kallsyms tables found
 *   -EINVAL    tables found but inconsistent (the reason says which check failed)
 *   -E2BIG     a count or size in guest memory exceeds its bound, or the search spent
 *              its budget (struct hvp_scan_budget; the reason says which limit)
 *   -EFAULT    a needed page is not mapped
 */
#ifndef HVPATCH_KERNEL_H
#define HVPATCH_KERNEL_H

#include <stddef.h>
#include <stdint.h>

#include <hvpatch/paging.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The unrandomized start of x86-64 kernel text (__START_KERNEL). */
#define HVP_LINUX_DEFAULT_TEXT 0xffffffff81000000ull

struct hvp_symbol {
        uint64_t addr;
        const char *name;       /* owned by the symbol table */
        char type;              /* as in /proc/kallsyms: 'T', 't', 'D', ... */
};

struct hvp_symtab;

/*
 * The work a kernel search may do on guest memory, which is hostile input: one budget
 * is shared by everything one attach tries (every vCPU, every KPTI root, Linux or
 * Windows), so that no guest can make a search cost more than these, whatever it maps.
 * A search that spends a limit stops with -E2BIG and a reason naming the limit.
 * The defaults cover a real kernel many times over (Debian 6.1: 3 candidates, 1 token
 * table, 23 MiB, 94,266 records; through page tables a few thousand reads, most of them
 * failing over unmapped slots; docs/security.md, "Hostile guest memory").
 */
#define HVP_SCAN_MAX_CANDIDATES 1024u   /* places looked at: kallsyms digit runs, "MZ" pages */
#define HVP_SCAN_MAX_TABLES 16u         /* token tables that pass the first checks, checked in depth */
#define HVP_SCAN_MAX_READS (32u << 10)  /* calls to the memory reader */
#define HVP_SCAN_MAX_BYTES (256ull << 20)  /* bytes asked of it; a failed read counts as 4 KiB */
#define HVP_SCAN_MAX_RECORDS (8u << 20) /* kallsyms name records parsed */
#define HVP_SCAN_MAX_MS 20000.0         /* wall clock: a backstop, the counts bound the work */

struct hvp_scan_budget {
        /* Limits (hvp_scan_budget_init() sets the defaults above; 0 means 0). */
        uint64_t max_candidates, max_tables, max_reads, max_bytes, max_records;
        double max_ms;
        /* Spent so far, by every search given this budget. */
        uint64_t candidates, tables, reads, bytes, records;
        double start_ms;                /* when the first search started (0: not yet) */
        const char *spent;              /* NULL, or the name of the limit that ran out */
};

void hvp_scan_budget_init(struct hvp_scan_budget *b);

/*
 * A reader of kernel-virtual memory: the kallsyms decoder reads through this, so it
 * works the same on a live guest (through the page tables) and on a vmlinux file.
 * read returns 0 or a negative errno and must fill all of buf.
 */
struct hvp_kmem {
        int (*read)(void *ctx, uint64_t va, void *buf, size_t len);
        void *ctx;
        uint64_t start;         /* the kernel image: [start, end) is searched for tables */
        uint64_t end;
        /*
         * Optional (NULL: every page is tried). Called after a read at va failed:
         * returns the end of the unreadable range that holds va (e.g. the end of the
         * 2 MiB or 1 GiB slot whose page-table entry is not present), so that holes
         * (freed init memory, gaps between sections) are skipped without a read per
         * page. A value <= va means "just this page".
         */
        uint64_t (*hole_end)(void *ctx, uint64_t va);
        /* Optional: the budget the search spends (NULL: a fresh default one per call). */
        struct hvp_scan_budget *budget;
};

/* Kernel memory read through a guest's page tables (read only; no bounds, no hole skipping). */
struct hvp_mmu;
void hvp_kmem_from_mmu(struct hvp_mmu *mmu, struct hvp_kmem *ret);

/*
 * Find and decode kallsyms inside km->[start, end). text_base is the address of
 * _text (used to check the result; 0 if unknown). Bounded: at most
 * HVP_KALLSYMS_MAX_SYMS symbols.
 *
 * Handles the x86-64 layouts of CONFIG_KALLSYMS_BASE_RELATIVE kernels (4.6 and
 * later): offsets and relative base before the names (up to 6.3, with or without
 * kallsyms_seqs_of_names, which 6.2 added and Debian's 6.1 has) or after the token
 * index (6.4 and later); absolute per-cpu symbols; one- and two-byte name lengths.
 * Errors: -ENOENT no tables found, -EINVAL tables found but inconsistent (or _text
 * is not text_base), -E2BIG a count or size past its bound, -ENOMEM.
 */
#define HVP_KALLSYMS_MAX_SYMS (4u << 20)
int hvp_kallsyms_decode(const struct hvp_kmem *km, uint64_t text_base, struct hvp_symtab **ret_symtab);

void hvp_symtab_free(struct hvp_symtab *st);
size_t hvp_symtab_count(const struct hvp_symtab *st);
/* Symbols in kallsyms order (sorted by address, as /proc/kallsyms lists them). */
const struct hvp_symbol *hvp_symtab_get(const struct hvp_symtab *st, size_t index);
/* Exact name lookup; NULL if absent. Where a name occurs more than once, the first. */
const struct hvp_symbol *hvp_symtab_lookup(const struct hvp_symtab *st, const char *name);
/*
 * Every symbol of that name (static functions of several files share one), in
 * kallsyms order: the first max go to ret (max may be 0); returns how many there are.
 */
size_t hvp_symtab_lookup_all(const struct hvp_symtab *st, const char *name, const struct hvp_symbol **ret,
                             size_t max);
/* The symbol containing addr (the greatest address <= addr); NULL if none. */
const struct hvp_symbol *hvp_symtab_find_addr(const struct hvp_symtab *st, uint64_t addr);

struct hvp_kernel {
        uint64_t base;                  /* _text */
        int64_t kaslr_offset;           /* base - HVP_LINUX_DEFAULT_TEXT */
        uint64_t text_start;            /* _stext */
        uint64_t text_end;              /* _etext */
        uint64_t image_end;             /* _end */
        char banner[512];               /* "Linux version ...", without the trailing newline */
        uint8_t build_id[64];
        size_t build_id_len;
        struct hvp_symtab *symtab;      /* owned */
};

/*
 * Attach to the Linux kernel of a guest: try each vCPU's CR3 (the kernel half of a
 * KPTI pair too: Linux keeps the user PGD 4 KiB above the kernel one) until the
 * kernel is found. Returns the address space and the kernel; the caller frees both.
 * ret_vcpu (may be NULL) gets the vCPU whose CR3 was used.
 */
int hvp_linux_attach(struct hvp_guest *g, struct hvp_mmu **ret_mmu, struct hvp_kernel **ret_kernel,
                     unsigned *ret_vcpu);
/*
 * The same, spending budget (NULL: a default one), which the caller can read after
 * the call. Roots whose kernel half is mapped through the same top-level entry as a
 * root already tried are not searched again in a pass. A live guest whose registers
 * moved after a failed pass gets a second pass over its current roots. When both
 * roots of a KPTI pair fail, the reason is the first root's, followed by the other's.
 */
int hvp_linux_attach_budget(struct hvp_guest *g, struct hvp_scan_budget *budget, struct hvp_mmu **ret_mmu,
                            struct hvp_kernel **ret_kernel, unsigned *ret_vcpu);
/*
 * The kernel's own top-level table (init_top_pgt, init_mm's pgd) as an address space,
 * found through via, in which k was found. It must map the kernel image as via does.
 * Unlike a process's table it is never freed, so the attach hands it out when it can:
 * the kernel half only (user addresses are not mapped in it).
 */
int hvp_linux_kernel_root(struct hvp_mmu *via, const struct hvp_kernel *k, struct hvp_mmu **ret_mmu);

/* Discover the kernel running in the address space of mmu (budget: NULL for a default one). */
int hvp_kernel_find(struct hvp_mmu *mmu, struct hvp_kernel **ret_kernel);
int hvp_kernel_find_budget(struct hvp_mmu *mmu, struct hvp_scan_budget *budget, struct hvp_kernel **ret_kernel);
void hvp_kernel_free(struct hvp_kernel *k);

/*
 * Discover the kernel in an image readable through km (a vmlinux file, or guest
 * memory): decode kallsyms (text_base: the expected _text, 0 if unknown) and read
 * the banner and the build id. base is set from the symbol _text, kaslr_offset from
 * base. Fields the kernel cannot give are left empty: without CONFIG_KALLSYMS_ALL
 * there is no linux_banner, _end or __start_notes symbol (banner "", image_end 0,
 * build_id_len 0). Errors as hvp_kallsyms_decode(), and -EINVAL for a banner not
 * starting with "Linux version " or malformed notes.
 */
int hvp_kernel_from_kmem(const struct hvp_kmem *km, uint64_t text_base, struct hvp_kernel **ret_kernel);

#ifdef __cplusplus
}
#endif

#endif

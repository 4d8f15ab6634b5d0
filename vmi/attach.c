#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <hvpatch/kernel.h>
#include <hvpatch/paging.h>

#include "common/error.h"
#include "vmi/scan-budget.h"
#include "vmi/x86.h"

/* Linux's KPTI allocates the kernel and user PGDs as one 8 KiB pair; bit 12 picks the user half. */
#define KPTI_USER_PGD_BIT (1ull << 12)
/*
 * A root's view of the kernel image area is fixed by the top-level entry that maps it
 * (PML4E, or PML5E with LA57), the paging mode and NXE: every process of a guest shares
 * that entry, so the vCPUs of a guest mostly give one root to search, not one each.
 */
struct root_key {
        uint64_t entry;
        enum hvp_paging_mode mode;
        bool nxe;
};

struct attach {
        struct hvp_guest *g;
        struct hvp_scan_budget *b;
        struct root_key *seen;
        size_t nr_seen, cap_seen;
};

static bool key_seen(const struct attach *a, const struct root_key *k)
{
        for (size_t i = 0; i < a->nr_seen; i++)
                if (a->seen[i].entry == k->entry && a->seen[i].mode == k->mode && a->seen[i].nxe == k->nxe)
                        return true;
        return false;
}

/* Remember a root whose search failed; a failure to remember only costs a repeat. */
static void key_add(struct attach *a, const struct root_key *k)
{
        if (a->nr_seen == a->cap_seen) {
                size_t cap = a->cap_seen ? 2 * a->cap_seen : 8;
                struct root_key *n = realloc(a->seen, cap * sizeof(*n));

                if (!n)
                        return;
                a->seen = n;
                a->cap_seen = cap;
        }
        a->seen[a->nr_seen++] = *k;
}

/*
 * Whether the root still holds the kernel-area entry it had when its search began.
 * The search's failure reason is kept: the re-read must not replace it.
 */
static bool entry_unchanged(struct hvp_mmu *mmu, const struct root_key *k)
{
        char reason[1024];
        uint64_t entry_gpa, entry;
        bool same;

        snprintf(reason, sizeof(reason), "%s", hvp_last_error());
        same = hvp_mmu_entry(mmu, HVP_KERNEL_MAP_START, k->mode, &entry_gpa, &entry) == 0 && entry == k->entry;
        hvp_fail(-EIO, "%s", reason);
        return same;
}

int hvp_linux_kernel_root(struct hvp_mmu *via, const struct hvp_kernel *k, struct hvp_mmu **ret_mmu)
{
        const struct hvp_symbol *s = hvp_symtab_lookup(k->symtab, "init_top_pgt");
        enum hvp_paging_mode mode = hvp_mmu_mode(via);
        uint64_t via_gpa, via_entry, root_gpa, root_entry;
        struct hvp_translation tr, text_via, text_root;
        struct hvp_mmu *root = NULL;
        int r;

        if (!s)
                return hvp_fail(-ENOENT, "the kernel has no symbol init_top_pgt");
        if (s->addr & (HVP_PAGE_SIZE - 1))
                return hvp_fail(-EINVAL, "init_top_pgt (0x%llx) is not page aligned", (unsigned long long)s->addr);
        r = hvp_mmu_translate(via, s->addr, &tr);
        if (r < 0)
                return hvp_fail_context(r, "init_top_pgt");
        r = hvp_mmu_new(hvp_mmu_guest(via), tr.pa, mode, hvp_mmu_nxe(via), &root);
        if (r < 0)
                return r;
        /* It must be the same kernel's table: the entry mapping the image, and the text's page. */
        if (hvp_mmu_entry(via, HVP_KERNEL_MAP_START, mode, &via_gpa, &via_entry) < 0 ||
            hvp_mmu_entry(root, HVP_KERNEL_MAP_START, mode, &root_gpa, &root_entry) < 0 ||
            via_entry != root_entry || hvp_mmu_translate(via, k->text_start, &text_via) < 0 ||
            hvp_mmu_translate(root, k->text_start, &text_root) < 0 || text_via.pa != text_root.pa) {
                hvp_mmu_free(root);
                return hvp_fail(-EINVAL, "init_top_pgt (table at 0x%llx) does not map the kernel as CR3 0x%llx does",
                                (unsigned long long)tr.pa, (unsigned long long)hvp_mmu_root(via));
        }
        *ret_mmu = root;
        return 0;
}

/*
 * A vCPU's root is the table of whatever process it ran: freed when that process
 * exits, its page reused while hvpatch still walks it (a busy guest). The kernel's
 * own table lives as long as the kernel, so the kernel, once found, is handed out
 * through that (the vCPU's root when the kernel has no usable init_top_pgt).
 */
static void use_kernel_root(struct hvp_mmu **mmu, const struct hvp_kernel *k)
{
        struct hvp_mmu *root = NULL;

        if (hvp_linux_kernel_root(*mmu, k, &root) < 0) {
                hvp_debug("attach: through CR3 0x%llx (%s)", (unsigned long long)hvp_mmu_root(*mmu), hvp_last_error());
                return;
        }
        hvp_debug("attach: through init_top_pgt (0x%llx), found via CR3 0x%llx", (unsigned long long)hvp_mmu_root(root),
                  (unsigned long long)hvp_mmu_root(*mmu));
        hvp_mmu_free(*mmu);
        *mmu = root;
}

/* 0 found; 1 skipped (same kernel mapping as a root already tried); < 0 error. */
static int try_root(struct attach *a, const struct hvp_vcpu_regs *regs, uint64_t cr3, struct hvp_mmu **ret_mmu,
                    struct hvp_kernel **ret_kernel)
{
        struct hvp_vcpu_regs alt = *regs;
        struct hvp_mmu *mmu = NULL;
        struct hvp_kernel *k = NULL;
        struct root_key key = { 0 };
        uint64_t entry_gpa, bytes;
        bool have_key;
        int r;

        alt.cr3 = cr3;
        r = hvp_paging_mode(&alt, &key.mode);
        if (r < 0)
                return r;
        key.nxe = alt.efer & (1u << 11);
        r = hvp_mmu_new(a->g, cr3, key.mode, key.nxe, &mmu);
        if (r < 0)
                return r;
        /* A root whose top-level table cannot be read fails fast below: no key needed. */
        have_key = hvp_mmu_entry(mmu, HVP_KERNEL_MAP_START, key.mode, &entry_gpa, &key.entry) == 0;
        if (have_key && key_seen(a, &key)) {
                hvp_mmu_free(mmu);
                return 1;
        }
        bytes = a->b->bytes;
        r = hvp_kernel_find_budget(mmu, a->b, &k);
        if (r < 0) {
                /*
                 * Only a root whose search read the kernel image (the kallsyms scan) is
                 * not searched again: a cheaper failure may be a process's page tables
                 * freed under the walk (a busy guest), where another vCPU's root with
                 * the same entry works. The same holds when the root's entry changed
                 * under the search (a process exited and its PGD page was freed and
                 * reused while it was read): that failure says nothing about the entry
                 * the other vCPUs still hold.
                 */
                if (have_key && a->b->bytes > bytes && entry_unchanged(mmu, &key))
                        key_add(a, &key);
                hvp_mmu_free(mmu);
                return r;
        }
        use_kernel_root(&mmu, k);
        *ret_mmu = mmu;
        *ret_kernel = k;
        return 0;
}

/*
 * A CR3 with bit 12 set may be the user half of a KPTI pair: then the kernel half is
 * tried too. When both fail the reason is the first root's (the CR3 the vCPU really
 * has), with the other's after it.
 */
static int try_vcpu(struct attach *a, const struct hvp_vcpu_regs *regs, struct hvp_mmu **ret_mmu,
                    struct hvp_kernel **ret_kernel)
{
        char first[1024], second[1024];
        int r, r2;

        r = try_root(a, regs, regs->cr3, ret_mmu, ret_kernel);
        if (r <= 0 && (r == 0 || a->b->spent || r == -ENOMEM))
                return r;
        if (!(regs->cr3 & KPTI_USER_PGD_BIT))
                return r;
        snprintf(first, sizeof(first), "%s", r == 1 ? "" : hvp_last_error());
        r2 = try_root(a, regs, regs->cr3 & ~KPTI_USER_PGD_BIT, ret_mmu, ret_kernel);
        if (r2 == 0 || a->b->spent || r2 == -ENOMEM)
                return r2;
        if (r == 1)                     /* the first root was a repeat: the other speaks */
                return r2;
        if (r2 == 1)
                return hvp_fail(r, "%s", first);
        snprintf(second, sizeof(second), "%s", hvp_last_error());      /* hvp_fail() rewrites it */
        return hvp_fail(r, "%s (and as the kernel half of a KPTI pair, CR3 0x%llx: %s)", first,
                        (unsigned long long)(regs->cr3 & ~KPTI_USER_PGD_BIT), second);
}

struct pass {
        unsigned skipped;
        bool failed;
        int r;
};

/* One search through every vCPU's root: 0 found, < 0 not (p says how it went). */
static int attach_pass(struct attach *a, struct pass *p, struct hvp_mmu **ret_mmu, struct hvp_kernel **ret_kernel,
                       unsigned *ret_vcpu)
{
        unsigned n = hvp_guest_vcpu_count(a->g);

        *p = (struct pass){ .r = hvp_fail(-ENOENT, "the guest has no vCPU") };
        for (unsigned i = 0; i < n; i++) {
                struct hvp_vcpu_regs regs;
                int q;

                q = hvp_guest_vcpu_regs(a->g, i, &regs);
                if (q < 0)
                        return p->r = q;
                q = try_vcpu(a, &regs, ret_mmu, ret_kernel);
                if (q == 0) {
                        if (ret_vcpu)
                                *ret_vcpu = i;
                        return 0;
                }
                if (q == 1) {
                        hvp_debug("vCPU %u: its kernel mapping was searched already (vCPU CR3 0x%llx)", i,
                                  (unsigned long long)regs.cr3);
                        p->skipped++;
                        continue;
                }
                p->r = q;
                p->failed = true;
                hvp_debug("vCPU %u: no kernel found: %s", i, hvp_last_error());
                if (a->b->spent || q == -ENOMEM)
                        break;
        }
        return p->r;
}

/*
 * The registers a live guest was opened with age while it runs: the process whose root
 * a vCPU had may have exited since. After a failed pass the registers are read again,
 * and when any vCPU's paging registers changed, the new roots are searched: all of
 * them, the ones mapping the kernel through an entry already searched too. Every
 * process's table holds the kernel's same top-level entry, so one table freed and
 * reused under a search (a guest forking fast) would otherwise rule out every root of
 * the guest: the likely cause of one attach in ~900 failing under test_revert_load's
 * load with "the guest has no vCPU" (the message of a second pass that skipped every
 * root; with nothing skipped at its start it tries at least one). The budget spans
 * both passes.
 */
static bool regs_moved(struct hvp_guest *g)
{
        unsigned n = hvp_guest_vcpu_count(g);
        struct hvp_vcpu_regs *old = calloc(n ? n : 1, sizeof(*old));
        bool moved = false;
        char reason[1024];

        if (!old)
                return false;
        snprintf(reason, sizeof(reason), "%s", hvp_last_error());
        for (unsigned i = 0; i < n; i++)
                (void)hvp_guest_vcpu_regs(g, i, &old[i]);
        if (hvp_guest_refresh_regs(g) == 0) {
                moved = hvp_guest_vcpu_count(g) != n;
                for (unsigned i = 0; i < n && !moved; i++) {
                        struct hvp_vcpu_regs now;

                        moved = hvp_guest_vcpu_regs(g, i, &now) < 0 || now.cr3 != old[i].cr3 ||
                                now.cr0 != old[i].cr0 || now.cr4 != old[i].cr4 || now.efer != old[i].efer;
                }
        }
        free(old);
        hvp_fail(-EIO, "%s", reason);           /* the pass's reason, not the refresh's */
        return moved;
}

int hvp_linux_attach_budget(struct hvp_guest *g, struct hvp_scan_budget *budget, struct hvp_mmu **ret_mmu,
                            struct hvp_kernel **ret_kernel, unsigned *ret_vcpu)
{
        struct hvp_scan_budget local;
        struct attach a = { .g = g, .b = budget };
        struct pass p;
        int r;

        if (!a.b) {
                hvp_scan_budget_init(&local);
                a.b = &local;
        }
        r = attach_pass(&a, &p, ret_mmu, ret_kernel, ret_vcpu);
        if (r < 0 && p.failed && !a.b->spent && r != -ENOMEM && regs_moved(g)) {
                hvp_debug("no kernel found with the registers of the open; searching again with the current ones");
                a.nr_seen = 0;
                r = attach_pass(&a, &p, ret_mmu, ret_kernel, ret_vcpu);
        }
        free(a.seen);
        if (r == 0 || !p.failed)
                return r;
        if (a.b->spent)
                return hvp_fail_context(r, "no Linux kernel found");
        if (p.skipped == 0)
                return hvp_fail_context(r, "no Linux kernel found through any of %u vCPUs", hvp_guest_vcpu_count(g));
        return hvp_fail_context(r, "no Linux kernel found through any of %u vCPUs (%u of them map the kernel "
                                "image area as one searched before)", hvp_guest_vcpu_count(g), p.skipped);
}

int hvp_linux_attach(struct hvp_guest *g, struct hvp_mmu **ret_mmu, struct hvp_kernel **ret_kernel,
                     unsigned *ret_vcpu)
{
        return hvp_linux_attach_budget(g, NULL, ret_mmu, ret_kernel, ret_vcpu);
}

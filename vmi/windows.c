/*
 * Finding the x64 Windows kernel without symbols: Windows points its interrupt
 * gates at entry code inside ntoskrnl (KiDivideErrorFault... or, under KVA
 * shadowing, their *Shadow twins in its KVASCODE section), and the image's headers
 * stay mapped at its base. So walk down from a handler to an "MZ" page whose PE image
 * contains the handler.
 *
 * Guest memory can hold an "MZ" on every page: each page read and each PE header
 * parsed is charged to the search budget (struct hvp_scan_budget), shared by every
 * hint and every vCPU of one attach, and a hint page already walked from under the
 * same kernel mapping is not walked again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hvpatch/windows.h>

#include "common/error.h"
#include "common/util.h"
#include "vmi/x86.h"
#include "vmi/scan-budget.h"

#define KERNEL_HALF 0xffff800000000000ull
#define IDT_GATE_SIZE 16
#define IDT_MAX_GATES 256

struct image_reader {
        const struct hvp_kmem *km;
        uint64_t base;
};

static int image_read(void *ctx, uint64_t off, void *buf, size_t len)
{
        const struct image_reader *ir = ctx;

        if (ir->base + off < ir->base)
                return hvp_fail(-EINVAL, "PE: offset 0x%llx wraps the address space", (unsigned long long)off);
        return ir->km->read(ir->km->ctx, ir->base + off, buf, len);
}

/*
 * One hint: the first MZ page below it whose image contains it. 1 found (*ret filled),
 * 0 nothing contains the hint, -ENOENT the containing image is not the kernel (why set),
 * -E2BIG the budget ran out.
 */
static int scan_down(const struct hvp_kmem *km, uint64_t hint, struct hvp_windows_kernel *ret, char *why,
                     size_t why_size)
{
        struct hvp_scan_budget *b = km->budget;

        uint64_t top = hint & ~(HVP_PAGE_SIZE - 1);
        uint64_t floor = top >= HVP_WINDOWS_SCAN_MAX ? top - HVP_WINDOWS_SCAN_MAX : 0;

        for (uint64_t va = top;; va -= HVP_PAGE_SIZE) {
                struct image_reader ir = { km, va };
                struct hvp_pe_info pe;
                char mz[2], reason[256];

                if (km->read(km->ctx, va, mz, sizeof(mz)) == 0 && mz[0] == 'M' && mz[1] == 'Z' &&
                    hvp_scan_take(b, HVP_SCAN_CANDIDATES, 1) &&
                    hvp_pe_parse_reader(image_read, &ir, UINT64_MAX - va, HVP_PE_LAYOUT_MAPPED, &pe) == 0 &&
                    hint - va < pe.size_of_image) {
                        if (!hvp_pe_is_windows_kernel(&pe, reason, sizeof(reason))) {
                                snprintf(why, why_size, "the image at 0x%llx holding the handler 0x%llx is not "
                                         "the Windows kernel: %s", (unsigned long long)va,
                                         (unsigned long long)hint, reason);
                                return -ENOENT;
                        }
                        ret->base = va;
                        ret->size = pe.size_of_image;
                        ret->pe = pe;
                        hvp_pe_identity(&pe, ret->identity);
                        return 1;
                }
                if (b->spent)
                        return -E2BIG;
                if (va < floor + HVP_PAGE_SIZE)
                        return 0;
        }
}

/*
 * Hint pages already walked, with the top-level entry that maps each (and the mode):
 * under the same entry the same walk finds the same thing. Kept over one attach.
 */
struct hint_key {
        uint64_t page, entry;
        unsigned mode;
};

struct hints_seen {
        struct hint_key *v;
        size_t n, cap;
};

/* true if key was seen; else it is added (false). */
static bool hint_seen(struct hints_seen *hs, const struct hint_key *key)
{
        for (size_t i = 0; i < hs->n; i++)
                if (hs->v[i].page == key->page && hs->v[i].entry == key->entry && hs->v[i].mode == key->mode)
                        return true;
        if (hs->n == hs->cap) {
                size_t cap = hs->cap ? 2 * hs->cap : 16;
                struct hint_key *v = realloc(hs->v, cap * sizeof(*v));

                if (!v)
                        return false;   /* not remembered: walked again, still within the budget */
                hs->v = v;
                hs->cap = cap;
        }
        hs->v[hs->n++] = *key;
        return false;
}

/* keys: per hint, or NULL (each distinct page is walked once within this call). */
static int find_kmem(const struct hvp_kmem *km, const uint64_t *hints, const struct hint_key *keys, size_t n_hints,
                     struct hints_seen *seen, struct hvp_windows_kernel *ret)
{
        struct hints_seen local_seen = { 0 };
        struct hvp_scan_budget local, *b = km->budget;
        struct hvp_scan_kmem sk;
        size_t n_tried = 0;
        char why[512] = "";

        if (!b) {
                hvp_scan_budget_init(&local);
                b = &local;
        }
        if (!seen)
                seen = &local_seen;
        hvp_scan_kmem_init(&sk, km, b);
        for (size_t i = 0; i < n_hints && n_tried < HVP_WINDOWS_MAX_HINTS; i++) {
                struct hint_key key = keys ? keys[i] : (struct hint_key){ .page = hints[i] & ~(HVP_PAGE_SIZE - 1) };
                struct hvp_windows_kernel k;
                int r;

                key.page = hints[i] & ~(HVP_PAGE_SIZE - 1);
                if (hint_seen(seen, &key))
                        continue;
                n_tried++;
                r = scan_down(&sk.km, hints[i], &k, why, sizeof(why));
                if (r == 1) {
                        free(local_seen.v);
                        *ret = k;
                        return 0;
                }
                if (r == -E2BIG)
                        break;
        }
        free(local_seen.v);
        if (b->spent)
                return hvp_scan_budget_fail(b, "Windows kernel search");
        if (why[0])
                return hvp_fail(-ENOENT, "no Windows kernel: %s", why);
        return hvp_fail(-ENOENT, "no Windows kernel: no PE image within %llu MiB below %zu handler address(es)",
                        HVP_WINDOWS_SCAN_MAX >> 20, n_tried);
}

int hvp_windows_find_kmem(const struct hvp_kmem *km, const uint64_t *hints, size_t n_hints,
                          struct hvp_windows_kernel *ret)
{
        if (!km || !km->read || (!hints && n_hints) || !ret)
                return hvp_fail(-EINVAL, "windows: bad arguments");
        return find_kmem(km, hints, NULL, n_hints, NULL, ret);
}

/* Present 64-bit interrupt/trap gates with kernel-half targets, in vector order. */
static size_t idt_handlers(const uint8_t *idt, size_t n_gates, uint64_t *out, size_t max)
{
        size_t n = 0;

        for (size_t v = 0; v < n_gates && n < max; v++) {
                const uint8_t *e = idt + v * IDT_GATE_SIZE;
                uint8_t type = e[5] & 0x0f;
                uint64_t h;

                if (!(e[5] & 0x80) || (type != 0x0e && type != 0x0f))
                        continue;
                h = hvp_le16(e) | (uint64_t)hvp_le16(e + 6) << 16 | (uint64_t)hvp_le32(e + 8) << 32;
                if (h >= KERNEL_HALF)
                        out[n++] = h;
        }
        return n;
}

static int find_in(struct hvp_mmu *mmu, struct hvp_guest *g, unsigned vcpu, struct hvp_scan_budget *b,
                   struct hints_seen *seen, struct hvp_windows_kernel *ret)
{
        uint8_t idt[IDT_MAX_GATES * IDT_GATE_SIZE];
        uint64_t hints[IDT_MAX_GATES];
        struct hint_key keys[IDT_MAX_GATES];
        struct hvp_vcpu_regs regs;
        struct hvp_kmem km;
        size_t n_gates, n;
        int r;

        hvp_kmem_from_mmu(mmu, &km);
        km.budget = b;

        r = hvp_guest_vcpu_regs(g, vcpu, &regs);
        if (r < 0)
                return r;
        n_gates = HVP_MIN(((size_t)regs.idt_limit + 1) / IDT_GATE_SIZE, (size_t)IDT_MAX_GATES);
        if (n_gates == 0)
                return hvp_fail(-ENOENT, "no Windows kernel: vCPU %u has an empty IDT (limit 0x%x)", vcpu,
                                regs.idt_limit);
        r = hvp_mmu_read(mmu, regs.idt_base, idt, n_gates * IDT_GATE_SIZE);
        if (r < 0)
                return hvp_fail_context(r, "reading the IDT of vCPU %u at 0x%llx", vcpu,
                                        (unsigned long long)regs.idt_base);
        n = idt_handlers(idt, n_gates, hints, HVP_ARRAY_SIZE(hints));
        if (n == 0)
                return hvp_fail(-ENOENT, "no Windows kernel: the IDT of vCPU %u has no kernel interrupt gate", vcpu);
        for (size_t i = 0; i < n; i++) {
                uint64_t gpa;
                int mode = hvp_mmu_mode(mmu);

                keys[i] = (struct hint_key){ .mode = (unsigned)mode };
                /* unreadable: keyed by the root, which then walks nothing twice */
                if (hvp_mmu_entry(mmu, hints[i], mode, &gpa, &keys[i].entry) < 0)
                        keys[i].entry = hvp_mmu_root(mmu) | 1ull << 63;
        }
        return find_kmem(&km, hints, keys, n, seen, ret);
}

int hvp_windows_find(struct hvp_mmu *mmu, struct hvp_guest *g, unsigned vcpu, struct hvp_windows_kernel *ret)
{
        return find_in(mmu, g, vcpu, NULL, NULL, ret);
}

int hvp_windows_attach_budget(struct hvp_guest *g, struct hvp_scan_budget *budget, struct hvp_windows_kernel *ret,
                              unsigned *ret_vcpu)
{
        unsigned n = hvp_guest_vcpu_count(g);
        int r = hvp_fail(-ENOENT, "the guest has no vCPU");
        struct hvp_scan_budget local;
        struct hints_seen seen = { 0 };

        if (!budget) {
                hvp_scan_budget_init(&local);
                budget = &local;
        }

        for (unsigned i = 0; i < n; i++) {
                struct hvp_vcpu_regs regs;
                struct hvp_mmu *mmu = NULL;
                enum hvp_paging_mode mode;

                r = hvp_guest_vcpu_regs(g, i, &regs);
                if (r < 0)
                        return r;
                r = hvp_paging_mode(&regs, &mode);
                if (r == 0)
                        r = hvp_mmu_new(g, regs.cr3, mode, regs.efer & (1u << 11), &mmu);
                if (r == 0)
                        r = find_in(mmu, g, i, budget, &seen, ret);
                hvp_mmu_free(mmu);
                if (r == 0) {
                        if (ret_vcpu)
                                *ret_vcpu = i;
                        free(seen.v);
                        return 0;
                }
                hvp_debug("vCPU %u: %s", i, hvp_last_error());
                if (budget->spent)
                        break;
        }
        free(seen.v);
        return hvp_fail_context(r, "no Windows kernel found through any of %u vCPUs", n);
}

int hvp_windows_attach(struct hvp_guest *g, struct hvp_windows_kernel *ret, unsigned *ret_vcpu)
{
        return hvp_windows_attach_budget(g, NULL, ret, ret_vcpu);
}

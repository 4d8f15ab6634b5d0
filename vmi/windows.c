/*
 * Finding the x64 Windows kernel without symbols: Windows points its interrupt
 * gates at entry code inside ntoskrnl (KiDivideErrorFault... or, under KVA
 * shadowing, their *Shadow twins in its KVASCODE section), and the image's headers
 * stay mapped at its base. So walk down from a handler to an "MZ" page whose PE image
 * contains the handler.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <hvpatch/windows.h>

#include "common/error.h"
#include "common/util.h"
#include "vmi/x86.h"

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
 * 0 nothing contains the hint, -ENOENT the containing image is not the kernel (why set).
 */
static int scan_down(const struct hvp_kmem *km, uint64_t hint, struct hvp_windows_kernel *ret, char *why,
                     size_t why_size)
{
        uint64_t top = hint & ~(HVP_PAGE_SIZE - 1);
        uint64_t floor = top >= HVP_WINDOWS_SCAN_MAX ? top - HVP_WINDOWS_SCAN_MAX : 0;

        for (uint64_t va = top;; va -= HVP_PAGE_SIZE) {
                struct image_reader ir = { km, va };
                struct hvp_pe_info pe;
                char mz[2], reason[256];

                if (km->read(km->ctx, va, mz, sizeof(mz)) == 0 && mz[0] == 'M' && mz[1] == 'Z' &&
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
                if (va < floor + HVP_PAGE_SIZE)
                        return 0;
        }
}

int hvp_windows_find_kmem(const struct hvp_kmem *km, const uint64_t *hints, size_t n_hints,
                          struct hvp_windows_kernel *ret)
{
        uint64_t tried[HVP_WINDOWS_MAX_HINTS];
        size_t n_tried = 0;
        char why[512] = "";

        if (!km || !km->read || (!hints && n_hints) || !ret)
                return hvp_fail(-EINVAL, "windows: bad arguments");
        for (size_t i = 0; i < n_hints && n_tried < HVP_WINDOWS_MAX_HINTS; i++) {
                uint64_t page = hints[i] & ~(HVP_PAGE_SIZE - 1);
                struct hvp_windows_kernel k;
                bool seen = false;
                int r;

                for (size_t j = 0; j < n_tried; j++)
                        seen |= tried[j] == page;
                if (seen)
                        continue;
                tried[n_tried++] = page;
                r = scan_down(km, hints[i], &k, why, sizeof(why));
                if (r == 1) {
                        *ret = k;
                        return 0;
                }
        }
        if (why[0])
                return hvp_fail(-ENOENT, "no Windows kernel: %s", why);
        return hvp_fail(-ENOENT, "no Windows kernel: no PE image within %llu MiB below %zu handler address(es)",
                        HVP_WINDOWS_SCAN_MAX >> 20, n_tried);
}

static int mmu_kread(void *ctx, uint64_t va, void *buf, size_t len)
{
        return hvp_mmu_read(ctx, va, buf, len);
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

int hvp_windows_find(struct hvp_mmu *mmu, struct hvp_guest *g, unsigned vcpu, struct hvp_windows_kernel *ret)
{
        uint8_t idt[IDT_MAX_GATES * IDT_GATE_SIZE];
        uint64_t hints[IDT_MAX_GATES];
        struct hvp_vcpu_regs regs;
        struct hvp_kmem km = { .read = mmu_kread, .ctx = mmu };
        size_t n_gates, n;
        int r;

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
        return hvp_windows_find_kmem(&km, hints, n, ret);
}

int hvp_windows_attach(struct hvp_guest *g, struct hvp_windows_kernel *ret, unsigned *ret_vcpu)
{
        unsigned n = hvp_guest_vcpu_count(g);
        int r = hvp_fail(-ENOENT, "the guest has no vCPU");

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
                        r = hvp_windows_find(mmu, g, i, ret);
                hvp_mmu_free(mmu);
                if (r == 0) {
                        if (ret_vcpu)
                                *ret_vcpu = i;
                        return 0;
                }
                hvp_debug("vCPU %u: %s", i, hvp_last_error());
        }
        return hvp_fail_context(r, "no Windows kernel found through any of %u vCPUs", n);
}

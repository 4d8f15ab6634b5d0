#include <errno.h>

#include <hvpatch/kernel.h>

#include "common/error.h"

/* Linux's KPTI allocates the kernel and user PGDs as one 8 KiB pair; bit 12 picks the user half. */
#define KPTI_USER_PGD_BIT (1ull << 12)

static int try_root(struct hvp_guest *g, const struct hvp_vcpu_regs *regs, uint64_t cr3,
                    struct hvp_mmu **ret_mmu, struct hvp_kernel **ret_kernel)
{
        struct hvp_vcpu_regs alt = *regs;
        struct hvp_mmu *mmu = NULL;
        struct hvp_kernel *k = NULL;
        enum hvp_paging_mode mode;
        int r;

        alt.cr3 = cr3;
        r = hvp_paging_mode(&alt, &mode);
        if (r < 0)
                return r;
        r = hvp_mmu_new(g, cr3, mode, alt.efer & (1u << 11), &mmu);
        if (r < 0)
                return r;
        r = hvp_kernel_find(mmu, &k);
        if (r < 0) {
                hvp_mmu_free(mmu);
                return r;
        }
        *ret_mmu = mmu;
        *ret_kernel = k;
        return 0;
}

int hvp_linux_attach(struct hvp_guest *g, struct hvp_mmu **ret_mmu, struct hvp_kernel **ret_kernel,
                     unsigned *ret_vcpu)
{
        unsigned n = hvp_guest_vcpu_count(g);
        int r = hvp_fail(-ENOENT, "the guest has no vCPU");

        for (unsigned i = 0; i < n; i++) {
                struct hvp_vcpu_regs regs;

                r = hvp_guest_vcpu_regs(g, i, &regs);
                if (r < 0)
                        return r;
                r = try_root(g, &regs, regs.cr3, ret_mmu, ret_kernel);
                if (r < 0 && (regs.cr3 & KPTI_USER_PGD_BIT))
                        r = try_root(g, &regs, regs.cr3 & ~KPTI_USER_PGD_BIT, ret_mmu, ret_kernel);
                if (r == 0) {
                        if (ret_vcpu)
                                *ret_vcpu = i;
                        return 0;
                }
                hvp_debug("vCPU %u: no kernel found: %s", i, hvp_last_error());
        }
        return hvp_fail_context(r, "no Linux kernel found through any of %u vCPUs", n);
}

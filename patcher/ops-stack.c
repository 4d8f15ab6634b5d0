/*
 * The stack check for the operations (apply, revert): set up from the guest kernel's
 * BTF and symbols, or off with a reason (a kernel without BTF).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hvpatch/btf.h>
#include <hvpatch/ops.h>
#include <hvpatch/paging.h>
#include <hvpatch/stackcheck.h>

#include "common/error.h"
#include "common/util.h"
#include "patcher/ops-internal.h"

static uint64_t sym(const struct hvp_kernel *k, const char *name)
{
        const struct hvp_symbol *s = hvp_symtab_lookup(k->symtab, name);

        return s ? s->addr : 0;
}

/* An address space that maps init_task: some vCPU's CR3, or the kernel half of its KPTI pair. */
static int kernel_mmu(struct hvp_guest *g, uint64_t probe, struct hvp_mmu **ret)
{
        for (unsigned v = 0; v < hvp_guest_vcpu_count(g); v++) {
                struct hvp_vcpu_regs regs;
                struct hvp_translation tr;
                struct hvp_mmu *mmu = NULL;

                if (hvp_guest_vcpu_regs(g, v, &regs) < 0 || hvp_mmu_new_from_vcpu(g, v, &mmu) < 0)
                        continue;
                if (hvp_mmu_translate(mmu, probe, &tr) == 0) {
                        *ret = mmu;
                        return 0;
                }
                if (hvp_mmu_root(mmu) & 0x1000) {
                        enum hvp_paging_mode mode = hvp_mmu_mode(mmu);
                        uint64_t root = hvp_mmu_root(mmu) & ~0x1000ull;

                        hvp_mmu_free(mmu);
                        mmu = NULL;
                        if (hvp_mmu_new(g, root, mode, (regs.efer >> 11) & 1, &mmu) == 0 &&
                            hvp_mmu_translate(mmu, probe, &tr) == 0) {
                                *ret = mmu;
                                return 0;
                        }
                }
                hvp_mmu_free(mmu);
        }
        return hvp_fail(-ENOENT, "no vCPU's address space maps init_task");
}

void hvp_ops_stack_free(struct hvp_ops_stack *s)
{
        hvp_stack_check_free(s->sc);
        hvp_btf_free(s->btf);
        if (s->own_mmu)
                hvp_mmu_free(s->mmu);
        *s = (struct hvp_ops_stack){ 0 };
}

int hvp_ops_stack_setup(struct hvp_guest *g, struct hvp_mmu *mmu, const struct hvp_kernel *k,
                        enum hvp_stack_check_mode mode, struct hvp_ops_stack *s)
{
        struct hvp_stack_config cfg = { 0 };
        uint64_t init_task = sym(k, "init_task");
        int r;

        *s = (struct hvp_ops_stack){ 0 };
        if (mode == HVP_STACK_CHECK_OFF) {
                snprintf(s->off_reason, sizeof(s->off_reason), "turned off by the caller (--stack-check off)");
                return 0;
        }
        if (!init_task) {
                r = hvp_fail(-ENOENT, "the kernel has no symbol init_task");
                goto off;
        }
        /* an attach's address space is the kernel's own table already (hvp_linux_kernel_root) */
        s->mmu = mmu;
        if (!mmu) {
                struct hvp_mmu *root = NULL;

                r = kernel_mmu(g, init_task, &s->mmu);
                if (r < 0)
                        goto off;
                s->own_mmu = true;
                if (hvp_linux_kernel_root(s->mmu, k, &root) == 0) {
                        hvp_mmu_free(s->mmu);
                        s->mmu = root;
                } else {
                        hvp_debug("stack check: through a vCPU's address space (%s)", hvp_last_error());
                }
        }
        hvp_kmem_from_mmu(s->mmu, &s->km);
        r = hvp_btf_load(&s->km, k, &s->btf);
        if (r < 0)
                goto off;
        cfg = (struct hvp_stack_config){
                .km = &s->km, .mmu = s->mmu, .btf = s->btf, .symtab = k->symtab, .init_task = init_task,
                .runqueues = sym(k, "runqueues"), .per_cpu_offset = sym(k, "__per_cpu_offset"),
                .nr_cpu_ids = sym(k, "nr_cpu_ids"), .total_forks = sym(k, "total_forks"),
        };
        r = hvp_stack_check_new(&cfg, &s->sc);
        if (r < 0)
                goto off;
        return 0;
off: {
        char why[sizeof(s->off_reason)];

        snprintf(why, sizeof(why), "%s", hvp_last_error()[0] ? hvp_last_error() : strerror(-r));
        hvp_ops_stack_free(s);
        memcpy(s->off_reason, why, sizeof(why));
}
        if (mode == HVP_STACK_CHECK_REQUIRE)
                return hvp_fail(r, "the stack check is required but cannot run: %s", s->off_reason);
        hvp_warn("the stack check is off: %s", s->off_reason);
        return 0;
}

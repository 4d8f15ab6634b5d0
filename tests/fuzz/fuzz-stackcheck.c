/*
 * Fuzz target: the stack check over hostile memory. The input is that of fuzz-tasks (a
 * layout byte, bit 0: 6.1 or old, tests/unit/btf-gen.h; then kernel memory at BASE, where
 * init_task is); total_forks is at BASE + 0xa000, stacks are 4 KiB, two vCPUs in kernel
 * mode have their RSP at BASE + 0x1000 and BASE + 0x3000. Whatever memory holds, prepare
 * and paused end, within their bounds, and a hit is inside a range.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include <hvpatch/stackcheck.h>

#include "tests/fuzz/blob.h"
#include "tests/unit/btf-gen.h"

#define BASE 0xffff888000000000ull

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct hvp_btf *layout_btf(enum btfgen_layout layout)
{
        static struct hvp_btf *cache[2];

        if (!cache[layout]) {
                size_t len;
                void *raw = btfgen_raw(btfgen_build(layout), &len);

                if (hvp_btf_new(raw, len, &cache[layout]) < 0)
                        abort();
                free(raw);
        }
        return cache[layout];
}

static void check_hit(const struct hvp_stack_range *rg, size_t n, const struct hvp_stack_hit *hit)
{
        if (hit->range >= n || hit->value <= rg[hit->range].start || hit->value > rg[hit->range].end)
                __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const struct hvp_stack_range rg[] = {
                { 0xffffffff81001000ull, 0xffffffff81001006ull },
                { 0xffff888000000100ull, 0xffff888000000200ull },       /* inside the input: values there hit */
        };
        struct blob b;
        struct hvp_kmem km = { .read = blob_read, .ctx = &b };
        struct hvp_vcpu_regs vcpus[2] = { { .cs_sel = 0x10, .rsp = BASE + 0x1000 },
                                          { .cs_sel = 0x10, .rsp = BASE + 0x3000 } };
        struct hvp_stack_config cfg = { .km = &km, .init_task = BASE, .total_forks = BASE + 0xa000,
                                        .thread_size = 4096, .max_tasks = 4096, .max_bytes = 8u << 20 };
        struct hvp_stack_check *sc = NULL;
        struct hvp_stack_hit hit;
        int r;

        if (size < 1)
                return 0;
        b = (struct blob){ data + 1, size - 1, BASE };
        cfg.btf = layout_btf(data[0] & 1 ? BTFGEN_OLD : BTFGEN_NEW);
        if (hvp_stack_check_new(&cfg, &sc) < 0)
                return 0;
        r = hvp_stack_check_prepare(sc, rg, 2, &hit);
        if (r == -EBUSY)
                check_hit(rg, 2, &hit);
        if (r == 0 || r == -EBUSY) {
                r = hvp_stack_check_paused(sc, vcpus, 2, &hit);
                if (r == -EBUSY)
                        check_hit(rg, 2, &hit);
        }
        hvp_stack_check_free(sc);
        return 0;
}

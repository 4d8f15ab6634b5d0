/*
 * Fuzz target: the task walker over hostile memory. The first input byte picks the
 * BTF layout (bit 0: 6.1 or old, tests/unit/btf-gen.h) and the CPU count of the idle
 * task walk (bits 1-7), the rest is kernel memory at BASE, where init_task is, with
 * __per_cpu_offset at BASE + 0xa000 (runqueues: 0x31c40). Whatever it holds, the walks
 * end (bounded, loop-checked).
 */
#include <stdint.h>
#include <stdlib.h>

#include <hvpatch/linux.h>

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct blob b;
        struct hvp_kmem km = { .read = blob_read, .ctx = &b };
        struct hvp_task *t = NULL;
        size_t n = 0;

        if (size < 1)
                return 0;
        b = (struct blob){ data + 1, size - 1, BASE };
        if (hvp_linux_tasks(&km, layout_btf(data[0] & 1 ? BTFGEN_OLD : BTFGEN_NEW), BASE, 4096, &t, &n) == 0) {
                if (n == 0 || n > 4096 || t[0].addr != BASE)
                        __builtin_trap();
                for (size_t i = 0; i < n; i++)
                        if (t[i].comm[sizeof(t[i].comm) - 1] != '\0')
                                __builtin_trap();
                free(t);
        }
        t = NULL;
        if (hvp_linux_idle_tasks(&km, layout_btf(data[0] & 1 ? BTFGEN_OLD : BTFGEN_NEW), 0x31c40, BASE + 0xa000,
                                 data[0] >> 1, BASE, &t, &n) == 0) {
                if (n >= (size_t)(data[0] >> 1) + 1)
                        __builtin_trap();
                free(t);
        }
        return 0;
}

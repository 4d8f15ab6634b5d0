/*
 * Fuzz target: the printk ring reader over hostile memory. The input is kernel memory
 * at BASE; the variable prb is at BASE + 0x100 (layout: tests/unit/btf-gen.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hvpatch/linux.h>

#include "tests/fuzz/blob.h"
#include "tests/unit/btf-gen.h"

#define BASE 0xffff888000000000ull

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static struct hvp_btf *btf;
        struct blob b = { data, size, BASE };
        struct hvp_kmem km = { .read = blob_read, .ctx = &b };
        struct hvp_klog *log = NULL;

        if (!btf) {
                size_t len;
                void *raw = btfgen_raw(btfgen_build(BTFGEN_NEW), &len);

                if (hvp_btf_new(raw, len, &btf) < 0)
                        abort();
                free(raw);
        }
        if (hvp_linux_klog(&km, btf, BASE + 0x100, &log) < 0)
                return 0;
        for (size_t i = 0; i < log->count; i++) {
                const struct hvp_klog_record *r = &log->records[i];

                if (strlen(r->text) > r->text_len || r->text[r->text_len] != '\0' || r->level > 7)
                        __builtin_trap();
        }
        hvp_klog_free(log);
        return 0;
}

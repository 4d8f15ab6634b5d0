/*
 * Fuzz target: the input is kernel memory mapped at the default _text, searched for
 * kallsyms tables; banner and notes are read through the symbols found. Whatever
 * decodes is then looked up every way the symtab offers.
 */
#include <stdint.h>
#include <string.h>

#include <hvpatch/kernel.h>

#include "tests/fuzz/blob.h"

#define FUZZ_VA HVP_LINUX_DEFAULT_TEXT

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct blob b = { data, size, FUZZ_VA };
        struct hvp_kmem km = { .read = blob_read, .ctx = &b, .start = FUZZ_VA, .end = FUZZ_VA + size };
        struct hvp_kernel *k = NULL;
        size_t n;

        if (size == 0 || hvp_kernel_from_kmem(&km, 0, &k) < 0)
                return 0;
        n = hvp_symtab_count(k->symtab);
        for (size_t i = 0; i < n; i++) {
                const struct hvp_symbol *s = hvp_symtab_get(k->symtab, i);

                if (!hvp_symtab_lookup(k->symtab, s->name) || !hvp_symtab_find_addr(k->symtab, s->addr))
                        __builtin_trap();
                if (i > 0 && hvp_symtab_get(k->symtab, i - 1)->addr > s->addr)
                        __builtin_trap();
        }
        if (strlen(k->banner) >= sizeof(k->banner) || k->build_id_len > sizeof(k->build_id))
                __builtin_trap();
        hvp_kernel_free(k);
        return 0;
}

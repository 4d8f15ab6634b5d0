/*
 * Fuzz target: the ELF relocatable-object loader and relocator (hostile objects).
 * Each input is measured, listed and relocated for a few function names; the
 * resolver knows every name (a hash of it, in kernel text), so the relocation
 * arithmetic is reached.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hvpatch/patch.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int resolve(void *ctx, const char *name, uint64_t *ret)
{
        uint64_t h = 1469598103934665603ull;

        for (const char *p = name; *p; p++)
                h = (h ^ (uint8_t)*p) * 1099511628211ull;
        if ((h & 0xff) == 0)
                return -ENOENT;
        *ret = 0xffffffff81000000ull + (h & 0x3ffffff);
        return 0;
}

static int count(void *ctx, const char *name)
{
        (*(size_t *)ctx) += strlen(name) + 1;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const char *const functions[] = { "patch_entry", "call_through", "hvp_version_proc_show" };

        for (size_t i = 0; i < sizeof(functions) / sizeof(functions[0]); i++) {
                struct hvp_reloc_info info;
                uint8_t *code;
                size_t len, names = 0;
                uint64_t entry;

                if (hvp_reloc_measure(data, size, functions[i], &info) < 0)
                        continue;
                hvp_reloc_imports(data, size, functions[i], count, &names);
                if (hvp_reloc_object(data, size, functions[i], 0xffffffffc0000000ull, resolve, NULL, &code, &len,
                                     &entry) == 0) {
                        if (len != info.size || entry != 0xffffffffc0000000ull + info.entry_offset)
                                abort();        /* measure and relocate disagree */
                        if (len)
                                code[len - 1] ^= 1;
                        free(code);
                }
        }
        return 0;
}

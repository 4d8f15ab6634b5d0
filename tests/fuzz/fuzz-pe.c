/*
 * Fuzz target: the first byte picks the layout (bit 0: mapped, else file), the rest is
 * a PE image. Parsed from the buffer; then, mapped at a kernel address, searched for a
 * Windows kernel from a handler address at its last byte.
 */
#include <stdint.h>
#include <string.h>

#include <hvpatch/windows.h>

#include "tests/fuzz/blob.h"

#define FUZZ_VA 0xfffff80000000000ull

static void check(const struct hvp_pe_info *pe)
{
        char id[HVP_PE_IDENTITY_MAX];

        if (strnlen(pe->export_name, sizeof(pe->export_name)) == sizeof(pe->export_name) ||
            strnlen(pe->pdb_name, sizeof(pe->pdb_name)) == sizeof(pe->pdb_name))
                __builtin_trap();
        if (pe->nr_sections > HVP_PE_MAX_SECTIONS || pe->size_of_image > HVP_PE_MAX_IMAGE)
                __builtin_trap();
        hvp_pe_identity(pe, id);
        if (strlen(id) < 9 || strlen(id) >= sizeof(id))
                __builtin_trap();
        hvp_pe_is_windows_kernel(pe, id, sizeof(id));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct hvp_pe_info pe;
        struct hvp_windows_kernel k;
        struct blob b;
        struct hvp_kmem km = { .read = blob_read, .ctx = &b };
        uint64_t hint;

        if (size < 1)
                return 0;
        b = (struct blob){ data + 1, size - 1, FUZZ_VA };
        if (hvp_pe_parse(b.data, b.size, data[0] & 1 ? HVP_PE_LAYOUT_MAPPED : HVP_PE_LAYOUT_FILE, &pe) == 0)
                check(&pe);
        hint = FUZZ_VA + (b.size ? b.size - 1 : 0);
        if (hvp_windows_find_kmem(&km, &hint, 1, &k) == 0) {
                if (k.base != FUZZ_VA || hint - k.base >= k.size)
                        __builtin_trap();
                check(&k.pe);
        }
        return 0;
}

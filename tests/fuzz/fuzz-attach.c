/*
 * Fuzz the kernel searches over a whole guest: any bytes as an ELF core, then the Linux
 * attach and, when it fails, the Windows one, as `hvpatch inspect --core` does. The seeds
 * (corpus/attach, written by test-flood) are guest memory made to stall the searches:
 * every input must end within the search budget (include/hvpatch/kernel.h).
 */
#include <stdint.h>
#include <stdlib.h>

#include <hvpatch/kernel.h>
#include <hvpatch/windows.h>

#include "vmi/core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct hvp_scan_budget b;
        struct hvp_windows_kernel w;
        struct hvp_guest *g;
        struct hvp_mmu *mmu = NULL;
        struct hvp_kernel *k = NULL;

        if (hvp_guest_open_core_buffer(data, size, "fuzz", &g) < 0)
                return 0;
        hvp_scan_budget_init(&b);
        if (hvp_linux_attach_budget(g, &b, &mmu, &k, NULL) == 0) {
                if (!k || !mmu || !k->symtab)
                        __builtin_trap();
                hvp_kernel_free(k);
                hvp_mmu_free(mmu);
        } else {
                (void)hvp_windows_attach_budget(g, &b, &w, NULL);
        }
        if (b.candidates > b.max_candidates || b.reads > b.max_reads || b.bytes > b.max_bytes ||
            b.records > b.max_records || b.tables > b.max_tables)
                __builtin_trap();
        hvp_guest_free(g);
        return 0;
}

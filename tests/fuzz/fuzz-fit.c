/*
 * Fuzz target: the checks of patch code against a kernel build (hvpatch/fit.h) over
 * hostile objects: loader, capstone walk, relocation lookups, address-taken logic.
 * Each input is checked for a few function names against a kernel with every
 * mitigation, one with none, and no config.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hvpatch/fit.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const char *const functions[] = { "hvp_fit_release", "hvp_version_proc_show", "patch_entry" };
        static const struct hvp_kconfig all = { .retpoline = true, .rethunk = true, .sls = true, .ibt = true,
                                                .call_depth_tracking = true, .padding_bytes = 16 };
        static const struct hvp_kconfig none = { 0 };
        const struct hvp_kconfig *kcs[] = { &all, &none, NULL };

        for (size_t i = 0; i < sizeof(functions) / sizeof(functions[0]); i++)
                for (size_t k = 0; k < 3; k++) {
                        struct hvp_fit_warning *w = NULL;
                        size_t n = 0;

                        if (hvp_reloc_check_fit(data, size, "fuzz.o", functions[i], kcs[k], &w, &n) < 0) {
                                if (w || n)
                                        abort();        /* a failure leaves the output alone */
                                continue;
                        }
                        for (size_t j = 0; j < n; j++)
                                if (w[j].count == 0 || !memchr(w[j].message, '\0', sizeof(w[j].message)) ||
                                    !memchr(w[j].where, '\0', sizeof(w[j].where)))
                                        abort();
                        free(w);
                }
        return 0;
}

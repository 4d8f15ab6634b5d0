/*
 * Fuzz target: the kernel config parser (hvpatch/fit.h). Whatever the text, the
 * result is a config or an error, the release string is NUL-terminated and bounded.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hvpatch/fit.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct hvp_kconfig kc;

        memset(&kc, 0xa5, sizeof(kc));
        if (hvp_kconfig_parse((const char *)data, size, &kc) == 0) {
                if (!memchr(kc.release, '\0', sizeof(kc.release)) || kc.padding_bytes > 4096)
                        abort();
        } else {
                if (kc.release[0] != (char)0xa5)
                        abort();        /* untouched on failure */
        }
        return 0;
}

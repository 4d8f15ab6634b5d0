/* Fuzz the boot elements of domain XML: read them, and rewrite them as a baseline move does. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hvpatch/move.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct hvp_domain_boot b;
        char *out = NULL;
        size_t len = 0;

        if (hvp_domain_boot_from_xml((const char *)data, size, &b) != 0 || !b.host_kernel)
                return 0;
        if (hvp_domain_xml_set_boot((const char *)data, size, "/srv/k/new/vmlinuz", b.initrd[0] ? NULL : "/srv/k/i",
                                    b.has_cmdline ? NULL : "console=ttyS0", &out, &len) == 0) {
                struct hvp_domain_boot again;

                /* what was written reads back as what was set */
                if (len <= HVP_DOMAIN_XML_MAX &&
                    (hvp_domain_boot_from_xml(out, len, &again) != 0 || strcmp(again.kernel, "/srv/k/new/vmlinuz") != 0))
                        abort();
                free(out);
        }
        return 0;
}

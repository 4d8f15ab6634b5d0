/* Fuzz the guest facts extractor on domain XML. */
#include <stddef.h>
#include <stdint.h>

#include <hvpatch/policy.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct hvp_guest_facts f = { 0 };

        hvp_guest_facts_from_domain_xml((const char *)data, size, &f);
        return 0;
}

/* Fuzz the policy parser (libxml2, RelaxNG, semantic checks) and the decision on what it accepts. */
#include <stddef.h>
#include <stdint.h>

#include <hvpatch/policy.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct hvp_policy *p = NULL;
        struct hvp_applied_series applied = { "cve-1", 1 };
        struct hvp_guest_facts f = {
                .name = "web-1",
                .uuid = "6f1c2d3e-0000-4000-8000-00000000abcd",
                .groups = { "web" },
                .n_groups = 1,
                .firmware_uefi = true,
                .os = HVP_OS_WINDOWS,
                .kernel_build_id = "aaaaaaaa00000000000000000000000000000001",
                .applied = &applied,
                .n_applied = 1,
                .now = 1717461000,
        };
        struct hvp_bundle_facts b = { "cve-1-p2", "cve-1", 2, "aaaaaaaa00000000000000000000000000000001", "release" };
        struct hvp_decision d;
        struct hvp_baseline_boot boot;

        if (hvp_policy_parse(data, size, NULL, &p) == 0) {
                hvp_policy_authorize(p, &f, &b, &d);
                hvp_policy_baseline_boot(p, &f, &boot);
                hvp_policy_free(p);
        }
        return 0;
}

/* Fuzz the core-file parser: any bytes as an ELF core, then use what it accepted. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hvpatch/guest.h>

#include "vmi/core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const struct hvp_ram_range *rr;
        struct hvp_vcpu_regs regs;
        struct hvp_guest *g;
        uint8_t buf[64];
        size_t n;

        if (hvp_guest_open_core_buffer(data, size, "fuzz", &g) < 0)
                return 0;
        n = hvp_guest_ram_ranges(g, &rr);
        for (size_t i = 0; i < n; i++) {
                size_t len = rr[i].size < sizeof(buf) ? (size_t)rr[i].size : sizeof(buf);

                /* Both ends of every range, and one byte past the end. */
                (void)hvp_guest_read_phys(g, rr[i].gpa, buf, len);
                (void)hvp_guest_read_phys(g, rr[i].gpa + rr[i].size - len, buf, len);
                (void)hvp_guest_read_phys(g, rr[i].gpa + rr[i].size - 1, buf, 2);
        }
        for (unsigned v = 0; v < hvp_guest_vcpu_count(g); v++)
                (void)hvp_guest_vcpu_regs(g, v, &regs);
        (void)hvp_guest_write_phys(g, rr[0].gpa, buf, 1);
        hvp_guest_free(g);
        return 0;
}

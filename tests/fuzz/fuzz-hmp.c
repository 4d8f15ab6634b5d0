/*
 * Fuzz the HMP parsers. Input: one selector byte, then the text; for the RAM map
 * the text is "TREE\0FLAT".
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hvpatch/guest.h>

#include "vmi/backend.h"
#include "vmi/hmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static struct hvp_vcpu_regs regs[HVP_MAX_VCPUS];
        static struct hvp_hmp_ram ram[HVP_MAX_RAM_RANGES];
        char *text, *flat;
        unsigned nv;
        uint64_t hva;
        size_t n;

        if (size < 1)
                return 0;
        text = malloc(size + 1);        /* NUL-terminated copy; a second NUL splits tree/flat */
        if (!text)
                return 0;
        memcpy(text, data + 1, size - 1);
        text[size - 1] = '\0';
        text[size] = '\0';
        switch (data[0] % 3) {
        case 0:
                (void)hvp_hmp_parse_registers(text, regs, HVP_MAX_VCPUS, &nv);
                break;
        case 1:
                flat = text + strlen(text) + (strlen(text) < size - 1 ? 1 : 0);
                (void)hvp_hmp_parse_ram(text, flat, ram, HVP_MAX_RAM_RANGES, &n);
                break;
        default:
                (void)hvp_hmp_parse_gpa2hva(text, 0x100000, "pc.ram", &hva);
                break;
        }
        free(text);
        return 0;
}

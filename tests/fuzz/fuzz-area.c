/*
 * Fuzz the patch-area parsers (vmi/area-live.c). Input: one selector byte, then
 * the text: a domain XML (the area's <qemu:commandline> backend), HMP `info
 * memory-devices`, or /proc/PID/maps.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "vmi/area-live.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *text, path[4096];
        uint64_t a, b;
        char perms[5];
        dev_t dev;
        ino_t ino;

        if (size < 1)
                return 0;
        text = malloc(size);
        if (!text)
                return 0;
        memcpy(text, data + 1, size - 1);
        text[size - 1] = '\0';
        switch (data[0] % 3) {
        case 0:
                (void)hvp_area_ro_xml_path(text, path, sizeof(path));
                break;
        case 1:
                (void)hvp_area_ro_parse_memory_devices(text, &a, &b);
                break;
        default:
                (void)hvp_area_maps_find(text, makedev(0xfe, 0), 1114114, &a, &b, perms);
                (void)hvp_area_maps_backing(text, 0x7f503273b000ull, 4096, &dev, &ino);
                break;
        }
        free(text);
        return 0;
}

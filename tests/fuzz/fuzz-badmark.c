/* Fuzz the bad-mark file parser (patcher/badmark.c: json-c and the field checks). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "patcher/badmark.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct hvp_bad_mark m;
        char *text;

        if (size > HVP_BAD_FILE_MAX + 1)
                size = HVP_BAD_FILE_MAX + 1;    /* the reader never hands over more */
        text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';
        hvp_bad_mark_parse(text, size, "6a2b4ac77585b8cf102cba771300e573c8489b69", "cve-4", "fuzz", &m);
        free(text);
        return 0;
}

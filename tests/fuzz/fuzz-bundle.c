/*
 * Fuzz target: bundle container, manifest parser (schema and rules) and, through
 * redirect sites, the ELF loader. Inputs starting with '<' are taken as a manifest
 * and wrapped into a bundle; inputs starting with the bundle magic get their entry
 * hashes recomputed first, so that mutations reach the manifest and the payloads
 * instead of stopping at the SHA-256 check (which the test suite covers).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <hvpatch/patch.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fix_hashes(uint8_t *buf, size_t size)
{
        size_t n;

        if (size < 64)
                return;
        n = buf[20] | (size_t)buf[21] << 8;
        for (size_t i = 0; i < n && i < HVP_BUNDLE_MAX_ENTRIES && 64 + (i + 1) * 128 <= size; i++) {
                uint8_t *e = buf + 64 + i * 128;
                uint64_t off = 0, len = 0;

                for (int k = 7; k >= 0; k--) {
                        off = off << 8 | e[64 + k];
                        len = len << 8 | e[72 + k];
                }
                if (off <= size && len <= size - off)
                        crypto_hash_sha256(e + 80, buf + off, len);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct hvp_bundle *b = NULL;
        uint8_t *copy;

        if (size > 0 && data[0] == '<') {
                struct hvp_bundle_input in = { HVP_BUNDLE_MANIFEST, data, size };
                size_t len;

                if (hvp_bundle_write(&in, 1, &copy, &len) == 0) {
                        if (hvp_bundle_open_mem(copy, len, &b) == 0)
                                hvp_bundle_free(b);
                        free(copy);
                }
                return 0;
        }
        copy = malloc(size ? size : 1);
        if (!copy)
                return 0;
        memcpy(copy, data, size);
        if (size >= 8 && memcmp(copy, HVP_BUNDLE_MAGIC, 8) == 0)
                fix_hashes(copy, size);
        if (hvp_bundle_open_mem(copy, size, &b) == 0) {
                /* everything the parser handed out must be readable */
                for (size_t i = 0; i < b->manifest.nr_sites; i++) {
                        const struct hvp_site *s = &b->manifest.sites[i];
                        volatile size_t sum = strlen(s->symbol);

                        if (s->kind == HVP_SITE_REPLACE)
                                sum += s->expected[s->len - 1] + s->new_bytes[s->len - 1];
                        else
                                sum += s->payload->data[s->payload->size - 1] + strlen(s->function);
                        (void)sum;
                }
                hvp_bundle_free(b);
        }
        free(copy);
        return 0;
}

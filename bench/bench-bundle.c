/*
 * Bundle figures: bench-bundle [BUNDLE [ROUNDS]]
 * - open (container, hashes, schema, rules, object measure) of BUNDLE, per round
 * - relocation of each redirect of BUNDLE (resolver: every name known)
 * - open of a synthetic bundle with the maximum of 256 replace sites
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hvpatch/hvpatch.h>
#include <hvpatch/patch.h>

#include "common/util.h"

static double now_us(void)
{
        return hvp_now_ms() * 1e3;
}

static int resolve(void *ctx, const char *name, uint64_t *ret)
{
        *ret = 0xffffffff81000000ull + (strlen(name) << 12);
        return 0;
}

static void bench_open(const char *what, const uint8_t *buf, size_t len, int rounds)
{
        double t0 = now_us();

        for (int i = 0; i < rounds; i++) {
                struct hvp_bundle *b;

                if (hvp_bundle_open_mem(buf, len, &b) < 0) {
                        fprintf(stderr, "%s: %s\n", what, hvp_last_error());
                        exit(1);
                }
                hvp_bundle_free(b);
        }
        printf("open %-28s %8zu bytes  %9.1f us\n", what, len, (now_us() - t0) / rounds);
}

int main(int argc, char **argv)
{
        int rounds = argc > 2 ? atoi(argv[2]) : 200;
        char *xml = malloc(1 << 20), *p = xml;
        struct hvp_bundle_input in;
        uint8_t *buf;
        size_t len;

        if (argc > 1) {
                struct hvp_bundle *b;

                if (hvp_bundle_open_file(argv[1], &b) < 0) {
                        fprintf(stderr, "%s: %s\n", argv[1], hvp_last_error());
                        return 1;
                }
                bench_open(argv[1], b->data, b->size, rounds);
                for (size_t i = 0; i < b->manifest.nr_sites; i++) {
                        const struct hvp_site *s = &b->manifest.sites[i];
                        double t0 = now_us();
                        uint8_t *code;
                        size_t clen;
                        uint64_t entry;

                        if (s->kind != HVP_SITE_REDIRECT)
                                continue;
                        for (int k = 0; k < rounds; k++) {
                                if (hvp_reloc_object(s->payload->data, s->payload->size, s->function,
                                                     0xffffffffc0000000ull, resolve, NULL, &code, &clen, &entry) < 0) {
                                        fprintf(stderr, "%s\n", hvp_last_error());
                                        return 1;
                                }
                                free(code);
                        }
                        printf("relocate %-24s %8zu bytes  %9.1f us\n", s->function, clen, (now_us() - t0) / rounds);
                }
                hvp_bundle_free(b);
        }
        p += sprintf(p, "<patch xmlns=\"urn:hvpatch:manifest:1\" id=\"b\" series=\"b\" sequence=\"1\">"
                        "<target os=\"linux\"><build-id>00112233</build-id></target><sites>\n");
        for (unsigned i = 0; i < HVP_MANIFEST_MAX_SITES; i++)
                p += sprintf(p, "<replace symbol=\"sym%u\" offset=\"%u\" expected=\"0f 1f 44 00 00\" "
                                "new=\"e9 00 00 00 00\"/>\n", i, i);
        sprintf(p, "</sites></patch>\n");
        in = (struct hvp_bundle_input){ HVP_BUNDLE_MANIFEST, xml, strlen(xml) };
        if (hvp_bundle_write(&in, 1, &buf, &len) < 0)
                return 1;
        bench_open("256 replace sites", buf, len, rounds);
        free(buf);
        free(xml);
        return 0;
}

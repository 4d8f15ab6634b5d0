/*
 * Fuzz hvpatchd's metrics endpoint parsers (daemon/http.c): an HTTP request head, as
 * a client sends it, and a --metrics-listen ADDR:PORT. Input: one selector byte, then
 * the bytes. The head parser is also fed every prefix's verdict rule: a verdict on a
 * prefix must not change when more bytes arrive, except from "incomplete" (0).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "daemon/hvpatchd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 1)
                return 0;
        if (data[0] & 1) {
                const char *buf = (const char *)data + 1;
                size_t len = size - 1;
                bool head;
                int first = 0;

                for (size_t n = 0; n <= len; n++) {
                        int v = hvpd_http_parse(buf, n, &head);

                        if (first && v != first)
                                abort();        /* a verdict given early was taken back */
                        if (v && !first)
                                first = v;
                        if (v < 0 || (v && v != 200 && v != 400 && v != 404 && v != 405 && v != 431 && v != 505))
                                abort();
                }
        } else {
                struct sockaddr_storage ss;
                socklen_t sl;
                char why[512], *spec = malloc(size);

                if (!spec)
                        return 0;
                memcpy(spec, data + 1, size - 1);
                spec[size - 1] = '\0';
                (void)hvpd_http_listen_parse(spec, data[0] & 2, &ss, &sl, why, sizeof(why));
                free(spec);
        }
        return 0;
}

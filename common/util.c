#include <ctype.h>
#include <errno.h>
#include <time.h>

#include "common/error.h"
#include "common/util.h"

void hvp_hex_encode(const void *data, size_t len, char *out)
{
        static const char digits[] = "0123456789abcdef";
        const uint8_t *b = data;

        for (size_t i = 0; i < len; i++) {
                out[2 * i] = digits[b[i] >> 4];
                out[2 * i + 1] = digits[b[i] & 15];
        }
        out[2 * len] = '\0';
}

int hvp_hex_digit(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

int hvp_hex_decode(const char *hex, uint8_t *out, size_t max, size_t *ret_len)
{
        size_t n = 0;

        for (const char *p = hex; *p;) {
                int hi, lo;

                if (isspace((unsigned char)*p)) {
                        p++;
                        continue;
                }
                hi = hvp_hex_digit(p[0]);
                lo = hi < 0 ? -1 : hvp_hex_digit(p[1]);
                if (lo < 0)
                        return hvp_fail(-EINVAL, "bad hex at \"%.8s\"", p);
                if (n >= max)
                        return hvp_fail(-E2BIG, "more than %zu bytes of hex", max);
                out[n++] = (uint8_t)(hi << 4 | lo);
                p += 2;
        }
        *ret_len = n;
        return 0;
}

double hvp_now_ms(void)
{
        struct timespec t;

        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

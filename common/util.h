/* Internal helpers shared by every module. */
#ifndef HVP_COMMON_UTIL_H
#define HVP_COMMON_UTIL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define HVP_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define HVP_MIN(a, b) ((a) < (b) ? (a) : (b))
#define HVP_MAX(a, b) ((a) > (b) ? (a) : (b))

/* The size of every path buffer. */
#define HVP_PATH_MAX PATH_MAX

static inline void hvp_freep(void *p)
{
        free(*(void **)p);
}
static inline void hvp_closep(int *fd)
{
        if (*fd >= 0)
                close(*fd);
}
#define _cleanup_free_ __attribute__((cleanup(hvp_freep)))
#define _cleanup_close_ __attribute__((cleanup(hvp_closep)))

/* [a, a+alen) lies inside [b, b+blen), with no overflow. */
static inline bool hvp_range_within(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
        return a >= b && alen <= blen && a - b <= blen - alen;
}

static inline uint16_t hvp_le16(const void *p)
{
        const uint8_t *b = p;
        return (uint16_t)(b[0] | b[1] << 8);
}
static inline uint32_t hvp_le32(const void *p)
{
        const uint8_t *b = p;
        return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
static inline uint64_t hvp_le64(const void *p)
{
        const uint8_t *b = p;
        return (uint64_t)hvp_le32(b) | (uint64_t)hvp_le32(b + 4) << 32;
}

static inline void hvp_put_le16(void *p, uint16_t v)
{
        uint8_t *b = p;
        b[0] = (uint8_t)v;
        b[1] = (uint8_t)(v >> 8);
}
static inline void hvp_put_le32(void *p, uint32_t v)
{
        hvp_put_le16(p, (uint16_t)v);
        hvp_put_le16((uint8_t *)p + 2, (uint16_t)(v >> 16));
}
static inline void hvp_put_le64(void *p, uint64_t v)
{
        hvp_put_le32(p, (uint32_t)v);
        hvp_put_le32((uint8_t *)p + 4, (uint32_t)(v >> 32));
}

/* CLOCK_MONOTONIC in milliseconds: for measuring, not for dates. */
double hvp_now_ms(void);

/* Value of one hex digit, -1 if c is none. */
int hvp_hex_digit(char c);

/* Lower-case hex of len bytes into out (2*len+1 bytes). */
void hvp_hex_encode(const void *data, size_t len, char *out);
/* Parse hex (whitespace allowed between bytes) into out; -EINVAL on bad input, -E2BIG if over max. */
int hvp_hex_decode(const char *hex, uint8_t *out, size_t max, size_t *ret_len);

#endif

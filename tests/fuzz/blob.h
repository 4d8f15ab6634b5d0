/* Fuzz helper: the input as kernel-virtual memory at b->va, read through a kmem-style callback. */
#ifndef HVP_FUZZ_BLOB_H
#define HVP_FUZZ_BLOB_H

#include <errno.h>
#include <stdint.h>
#include <string.h>

struct blob {
        const uint8_t *data;
        size_t size;
        uint64_t va;            /* where data starts */
};

/* 0, or -EFAULT for anything not wholly inside the input. */
static inline int blob_read(void *ctx, uint64_t va, void *buf, size_t len)
{
        const struct blob *b = ctx;

        if (va < b->va || va - b->va > b->size || len > b->size - (va - b->va))
                return -EFAULT;
        memcpy(buf, b->data + (va - b->va), len);
        return 0;
}

#endif

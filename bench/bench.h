/* Shared by the benchmarks: timing (hvp_now_ms in common/util.h) and sorting samples. */
#ifndef HVP_BENCH_H
#define HVP_BENCH_H

#include "common/util.h"

/* qsort comparator for doubles (samples, before taking medians and percentiles). */
static inline int bench_cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;

        return x < y ? -1 : x > y;
}

#endif

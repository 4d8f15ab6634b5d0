/*
 * bench-kallsyms VMLINUX [RUNS]: time hvp_kallsyms_decode() and hvp_kernel_from_kmem()
 * on a decompressed vmlinux (images/fetch-kernel.sh leaves one in
 * /var/lib/hvpatch-test/kernel-<version>/), and count the reads the decoder makes and
 * what it spends of the search budget (struct hvp_scan_budget).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <hvpatch/hvpatch.h>
#include <hvpatch/kernel.h>

#include "../tests/unit/vmlinux-kmem.h"

#include "bench/bench.h"

struct counting {
        struct vmlinux v;
        unsigned long reads, bytes;
};

static int counting_read(void *ctx, uint64_t va, void *buf, size_t len)
{
        struct counting *c = ctx;

        c->reads++;
        c->bytes += len;
        return vmlinux_read(&c->v, va, buf, len);
}

static uint64_t counting_hole_end(void *ctx, uint64_t va)
{
        return vmlinux_hole_end(&((struct counting *)ctx)->v, va);
}

int main(int argc, char **argv)
{
        struct counting c = { 0 };
        struct hvp_kmem km;
        int runs = argc > 2 ? atoi(argv[2]) : 10;
        double *t;
        const char *err;

        if (argc < 2 || runs < 1) {
                fprintf(stderr, "usage: %s VMLINUX [RUNS]\n", argv[0]);
                return 2;
        }
        err = vmlinux_open(argv[1], &c.v);
        if (err) {
                fprintf(stderr, "%s: %s\n", argv[1], err);
                return 1;
        }
        km = (struct hvp_kmem){ .read = counting_read, .ctx = &c, .start = c.v.start, .end = c.v.end,
                                .hole_end = counting_hole_end };
        t = calloc((size_t)runs, sizeof(*t));
        for (int mode = 0; mode < 2; mode++) {
                for (int i = 0; i < runs; i++) {
                        struct hvp_symtab *st = NULL;
                        struct hvp_kernel *k = NULL;
                        struct hvp_scan_budget b;
                        double t0 = hvp_now_ms();
                        int r;

                        hvp_scan_budget_init(&b);
                        km.budget = &b;
                        c.reads = c.bytes = 0;
                        r = mode == 0 ? hvp_kallsyms_decode(&km, 0, &st) : hvp_kernel_from_kmem(&km, 0, &k);
                        t[i] = hvp_now_ms() - t0;
                        if (r < 0) {
                                fprintf(stderr, "decode failed: %s\n", hvp_last_error());
                                return 1;
                        }
                        if (i == 0)
                                printf("%s: %zu symbols, %lu reads, %.1f MiB read\n",
                                       mode == 0 ? "hvp_kallsyms_decode" : "hvp_kernel_from_kmem",
                                       hvp_symtab_count(st ? st : k->symtab), c.reads, c.bytes / 1048576.0);
                        if (i == 0)
                                printf("  budget spent: %llu candidates, %llu token tables, %llu reads, %.1f MiB, "
                                       "%llu name records\n", (unsigned long long)b.candidates,
                                       (unsigned long long)b.tables, (unsigned long long)b.reads,
                                       b.bytes / 1048576.0, (unsigned long long)b.records);
                        hvp_symtab_free(st);
                        hvp_kernel_free(k);
                }
                qsort(t, (size_t)runs, sizeof(*t), bench_cmp_double);
                printf("  %d runs: min %.1f ms, median %.1f ms, max %.1f ms\n", runs, t[0], t[runs / 2],
                       t[runs - 1]);
        }
        free(t);
        vmlinux_close(&c.v);
        return 0;
}

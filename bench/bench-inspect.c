/*
 * What `hvpatch inspect DOMAIN` costs, in-process (not a test):
 *   bench-inspect DOMAIN [RUNS]
 * RUNS times (default 20): open the running domain (libvirt lookup, QEMU process,
 * RAM map, vCPU registers), attach (paging mode from the registers, kernel found
 * through the page tables, kallsyms decoded, banner and build id read), free.
 * Prints median, min and max of the whole and the median of each step, in ms.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hvpatch/guest.h>
#include <hvpatch/hvpatch.h>
#include <hvpatch/kernel.h>
#include <hvpatch/paging.h>

#include "bench/bench.h"

#define MAX_RUNS 1000

static double median(double *v, int n)
{
        qsort(v, (size_t)n, sizeof(*v), bench_cmp_double);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
        static double total[MAX_RUNS], opening[MAX_RUNS], attaching[MAX_RUNS], freeing[MAX_RUNS];
        struct hvp_live_options o = { 0 };
        size_t nsyms = 0;
        int runs = argc > 2 ? atoi(argv[2]) : 20;
        const char *mode = "?";
        double med;

        if (argc < 2 || argc > 3 || runs < 1 || runs > MAX_RUNS) {
                fprintf(stderr, "usage: bench-inspect DOMAIN [RUNS (1..%d, default 20)]\n", MAX_RUNS);
                return 2;
        }
        for (int i = 0; i < runs; i++) {
                struct hvp_guest *g = NULL;
                struct hvp_mmu *mmu = NULL;
                struct hvp_kernel *k = NULL;
                double t0 = hvp_now_ms(), t1, t2;

                if (hvp_guest_open_live(argv[1], &o, &g) < 0) {
                        fprintf(stderr, "bench-inspect: open %s: %s\n", argv[1], hvp_last_error());
                        return 1;
                }
                t1 = hvp_now_ms();
                if (hvp_linux_attach(g, &mmu, &k, NULL) < 0) {
                        fprintf(stderr, "bench-inspect: attach %s: %s\n", argv[1], hvp_last_error());
                        hvp_guest_free(g);
                        return 1;
                }
                t2 = hvp_now_ms();
                nsyms = hvp_symtab_count(k->symtab);
                mode = hvp_mmu_mode(mmu) == HVP_PAGING_5LEVEL ? "5-level" : "4-level";
                hvp_kernel_free(k);
                hvp_mmu_free(mmu);
                hvp_guest_free(g);
                freeing[i] = hvp_now_ms() - t2;
                opening[i] = t1 - t0;
                attaching[i] = t2 - t1;
                total[i] = t2 - t0;
        }
        med = median(total, runs);         /* sorts total: then [0] is the min */
        printf("inspect %s (%s paging, %zu symbols), %d runs:\n", argv[1], mode, nsyms, runs);
        printf("inspect: open+attach median %.1f ms, min %.1f ms, max %.1f ms\n", med, total[0], total[runs - 1]);
        printf("inspect: steps (medians): open %.1f ms, attach (kernel find, kallsyms) %.1f ms, free %.1f ms\n",
               median(opening, runs), median(attaching, runs), median(freeing, runs));
        return 0;
}

/*
 * bench-symhash [K...]: the symbol table's name index against names made to collide.
 *
 * For each K (default 14 16): 2^K symbol names that all share the low 32 bits of their
 * 64-bit FNV-1a hash (the table's hash before it was keyed; tests/unit/flood-gen.h),
 * and 2^K random names of the same length. Each set is written as kallsyms tables
 * (tests/unit/kallsyms-gen.h) and decoded with hvp_kallsyms_decode(), which builds the
 * index, then every name is looked up once. Best of 3 (1 when a run takes over 10 s).
 * Only public API: the same source builds against older trees for a before/after.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hvpatch/hvpatch.h>
#include <hvpatch/kernel.h>

#include "../tests/unit/flood-gen.h"
#include "../tests/unit/kallsyms-gen.h"

#include "bench/bench.h"

#define TEXT 0xffffffff81000000ull

static double run(char **names, size_t n, double *ret_lookup_ms)
{
        struct ksgen_sym *syms = calloc(n + 1, sizeof(*syms));
        struct ksgen_opts o = { .layout = KSGEN_SEQS, .va = TEXT, .tables_off = 0x1000, .tail = 64 };
        struct ksgen g;
        struct ksgen_mem m;
        struct hvp_kmem km;
        struct hvp_symtab *st = NULL;
        double t0, t1, t2;

        if (!syms)
                abort();
        syms[0] = (struct ksgen_sym){ TEXT, 'T', "_text", false };
        for (size_t i = 0; i < n; i++)
                syms[i + 1] = (struct ksgen_sym){ TEXT + 16 * (i + 1), 't', names[i], false };
        ksgen_build(syms, n + 1, &o, &g);
        m = (struct ksgen_mem){ g.data, g.size, g.va };
        km = (struct hvp_kmem){ .read = ksgen_mem_read, .ctx = &m, .start = g.va, .end = g.va + g.size };
        t0 = hvp_now_ms();
        if (hvp_kallsyms_decode(&km, TEXT, &st) < 0) {
                fprintf(stderr, "decode: %s\n", hvp_last_error());
                exit(1);
        }
        t1 = hvp_now_ms();
        for (size_t i = 0; i < n; i++)
                if (!hvp_symtab_lookup(st, names[i])) {
                        fprintf(stderr, "%s not found\n", names[i]);
                        exit(1);
                }
        t2 = hvp_now_ms();
        hvp_symtab_free(st);
        ksgen_free(&g);
        free(syms);
        *ret_lookup_ms = t2 - t1;
        return t1 - t0;
}

int main(int argc, char **argv)
{
        unsigned ks[8] = { 14, 16 }, nk = 2;

        if (argc > 1) {
                nk = 0;
                for (int i = 1; i < argc && nk < 8; i++) {
                        ks[nk] = (unsigned)atoi(argv[i]);
                        if (ks[nk] < 1 || ks[nk] > 20) {
                                fprintf(stderr, "usage: %s [K...] (1 <= K <= 20: 2^K names)\n", argv[0]);
                                return 2;
                        }
                        nk++;
                }
        }
        printf("%-6s %-10s %12s %12s\n", "names", "set", "decode ms", "lookups ms");
        for (unsigned i = 0; i < nk; i++) {
                for (int colliding = 1; colliding >= 0; colliding--) {
                        char **names = flood_names(ks[i], colliding, 1);
                        double best = 0, best_l = 0;

                        for (int r = 0; r < 3; r++) {
                                double l, d = run(names, (size_t)1 << ks[i], &l);

                                if (r == 0 || d < best) {
                                        best = d;
                                        best_l = l;
                                }
                                if (d > 10000)
                                        break;
                        }
                        printf("2^%-4u %-10s %12.1f %12.1f\n", ks[i], colliding ? "colliding" : "random", best,
                               best_l);
                        fflush(stdout);
                        flood_names_free(names, ks[i]);
                }
        }
        return 0;
}

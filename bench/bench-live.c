/*
 * Timings of the live backend on a running domain (not a test):
 *   bench-live DOMAIN [GPA]
 * open, pause/resume, reads, and a 5-byte write through each write path inside a
 * pause window. GPA (default 0xff00000) must be guest RAM; the bytes written there
 * are restored before each resume.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hvpatch/guest.h>
#include <hvpatch/hvpatch.h>

#include "bench/bench.h"

#define ROUNDS 50

static double median(double *v, int n)
{
        qsort(v, (size_t)n, sizeof(*v), bench_cmp_double);
        return v[n / 2];
}

static int check(int r, const char *what)
{
        if (r < 0) {
                fprintf(stderr, "bench-live: %s: %s (%s)\n", what, strerror(-r), hvp_last_error());
                exit(1);
        }
        return r;
}

static void bench_path(const char *dom, enum hvp_write_path path, uint64_t gpa)
{
        struct hvp_live_options o = { .write_path = path };
        static uint8_t page[64][4096];
        struct hvp_phys_iov iov[64];
        double a[ROUNDS], b[ROUNDS], c[ROUNDS], d[ROUNDS];
        uint8_t orig[8], pat[5] = { 0xcc, 0x0f, 0x1f, 0x44, 0x00 }, back[5];
        struct hvp_guest *g;
        double t;

        t = hvp_now_ms();
        check(hvp_guest_open_live(dom, &o, &g), "open");
        printf("%-8s open %.1f ms (type %s)\n", hvp_write_path_name(hvp_guest_write_path(g)), hvp_now_ms() - t,
               hvp_guest_domain_type(g));
        for (int i = 0; i < ROUNDS; i++) {
                t = hvp_now_ms();
                check(hvp_guest_pause(g), "pause");
                a[i] = hvp_now_ms() - t;
                check(hvp_guest_read_phys(g, gpa, orig, sizeof(orig)), "read");
                t = hvp_now_ms();
                check(hvp_guest_write_phys(g, gpa, pat, sizeof(pat)), "write");
                b[i] = hvp_now_ms() - t;
                t = hvp_now_ms();
                check(hvp_guest_write_phys(g, gpa, orig, sizeof(orig)), "restore");
                c[i] = hvp_now_ms() - t;
                t = hvp_now_ms();
                check(hvp_guest_resume(g), "resume");
                d[i] = hvp_now_ms() - t;
        }
        printf("%-8s pause %.2f ms, first 5-byte write %.3f ms, next write %.3f ms, resume %.2f ms (medians of %d)\n",
               hvp_write_path_name(path), median(a, ROUNDS), median(b, ROUNDS), median(c, ROUNDS),
               median(d, ROUNDS), ROUNDS);
        check(hvp_guest_read_phys(g, gpa, back, sizeof(back)), "read");
        if (path == HVP_WRITE_DIRECT) {
                for (int i = 0; i < ROUNDS; i++) {
                        t = hvp_now_ms();
                        check(hvp_guest_read_phys(g, gpa, orig, 8), "read");
                        a[i] = hvp_now_ms() - t;
                        for (int k = 0; k < 64; k++)
                                iov[k] = (struct hvp_phys_iov){ 0x1000000 + (uint64_t)k * 0x11000, page[k], 4096 };
                        t = hvp_now_ms();
                        check(hvp_guest_read_phys_v(g, iov, 64), "read_v");
                        b[i] = hvp_now_ms() - t;
                        t = hvp_now_ms();
                        check(hvp_guest_refresh_regs(g), "registers");
                        c[i] = hvp_now_ms() - t;
                }
                printf("%-8s 8-byte read %.1f us, 64 scattered pages %.1f us, all vCPU registers %.2f ms\n", "",
                       median(a, ROUNDS) * 1e3, median(b, ROUNDS) * 1e3, median(c, ROUNDS));
        }
        hvp_guest_free(g);
}

int main(int argc, char **argv)
{
        uint64_t gpa = argc > 2 ? strtoull(argv[2], NULL, 0) : 0xff00000;

        if (argc < 2) {
                fprintf(stderr, "usage: bench-live DOMAIN [GPA]\n");
                return 2;
        }
        bench_path(argv[1], HVP_WRITE_DIRECT, gpa);
        bench_path(argv[1], HVP_WRITE_GDBSTUB, gpa);
        return 0;
}

/*
 * The pause window of hvpatch against the floor of pausing a QEMU guest at all
 * (not a test; bench/run-pause-bench.sh sets it up):
 *
 *   bench-pause [-n N] [-c URI] [-B OTHER-HVPATCH] DOMAIN BUNDLE PATCH-ID
 *
 * In one run, interleaved, N rounds (default 30) of:
 *   floor   QMP {"execute":"stop"} then {"execute":"cont"}, each one
 *           virDomainQemuMonitorCommand. libvirt owns QEMU's QMP socket, so the
 *           "raw" QMP pair goes through libvirt's passthrough: the cheapest way a
 *           libvirt-managed guest can be stopped and started again from outside.
 *   apply   `hvpatch --json apply --insecure-unsigned DOMAIN BUNDLE`: its pause_ms
 *           (pause request to the resume's return) and total_ms (start of the
 *           transaction to the resume), and the command's wall time (fork to exit).
 *   revert  `hvpatch --json revert DOMAIN PATCH-ID`: the same figures.
 *   with -B, also apply and revert with OTHER-HVPATCH (an older build, say) in the
 *           same rounds, so that load on the host weighs on both alike.
 * Env: HVPATCH (the binary, default build/cli/hvpatch); HVPATCH_STATE_DIR should be
 * a scratch folder. BUNDLE must not be applied when it starts; it is not at the end.
 * Prints every sample as "sample KIND I FIELD=VALUE..." and then medians.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libvirt/libvirt.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>

#include "bench/bench.h"

#define MAX_ROUNDS 1000
#define OUT_MAX (64u << 10)

/* Median of n values (sorts a copy); the mean of the middle two for even n. */
static double median(const double *v, int n)
{
        double *c = malloc((size_t)n * sizeof(*c)), m;

        if (!c)
                exit(1);
        memcpy(c, v, (size_t)n * sizeof(*c));
        qsort(c, (size_t)n, sizeof(*c), bench_cmp_double);
        m = n % 2 ? c[n / 2] : (c[n / 2 - 1] + c[n / 2]) / 2;
        free(c);
        return m;
}

static double percentile(const double *v, int n, double p)
{
        double *c = malloc((size_t)n * sizeof(*c)), x;

        if (!c)
                exit(1);
        memcpy(c, v, (size_t)n * sizeof(*c));
        qsort(c, (size_t)n, sizeof(*c), bench_cmp_double);
        x = c[(int)(p * (n - 1) + 0.5)];
        free(c);
        return x;
}

static void qmp(virDomainPtr dom, const char *cmd)
{
        char *out = NULL;

        if (virDomainQemuMonitorCommand(dom, cmd, &out, 0) < 0) {
                fprintf(stderr, "bench-pause: %s: %s\n", cmd, virGetLastErrorMessage());
                exit(1);
        }
        if (!out || !strstr(out, "\"return\"")) {
                fprintf(stderr, "bench-pause: %s answered %s\n", cmd, out ? out : "nothing");
                exit(1);
        }
        free(out);
}

/* Run argv, capture stdout (bounded); returns the exit status, *ret_ms the wall time. */
static int run(char *const argv[], char *out, size_t max, double *ret_ms)
{
        int fds[2], status;
        size_t n = 0;
        double t = hvp_now_ms();
        pid_t pid;

        if (pipe(fds) < 0)
                return -1;
        pid = fork();
        if (pid < 0)
                return -1;
        if (pid == 0) {
                dup2(fds[1], 1);
                close(fds[0]);
                close(fds[1]);
                execv(argv[0], argv);
                _exit(127);
        }
        close(fds[1]);
        for (;;) {
                ssize_t k = read(fds[0], out + n, max - 1 - n);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                n += (size_t)k;
                if (n == max - 1)
                        break;
        }
        close(fds[0]);
        out[n] = '\0';
        if (waitpid(pid, &status, 0) < 0)
                return -1;
        *ret_ms = hvp_now_ms() - t;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static double json_ms(json_object *o, const char *key)
{
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v)) {
                fprintf(stderr, "bench-pause: no %s in %s\n", key, json_object_to_json_string(o));
                exit(1);
        }
        return json_object_get_double(v);
}

/* One hvpatch command; its pause_ms, total_ms and wall time. */
static void hvpatch(char *const argv[], double *pause, double *total, double *wall)
{
        static char out[OUT_MAX];
        json_object *o;
        int st = run(argv, out, sizeof(out), wall);

        o = json_tokener_parse(out);
        if (st != 0 || !o) {
                fprintf(stderr, "bench-pause: %s %s exited %d: %s\n", argv[0], argv[2], st, out);
                exit(1);
        }
        *pause = json_ms(o, "pause_ms");
        *total = json_ms(o, "total_ms");
        json_object_put(o);
}

static void report(const char *what, const double *v, int n)
{
        printf("%-34s median %7.3f ms  p10 %7.3f  p90 %7.3f  min %7.3f  max %7.3f\n", what, median(v, n),
               percentile(v, n, 0.1), percentile(v, n, 0.9), percentile(v, n, 0), percentile(v, n, 1));
}

int main(int argc, char **argv)
{
        static double stop[MAX_ROUNDS], cont[MAX_ROUNDS], floor_[MAX_ROUNDS];
        static double ap[MAX_ROUNDS], at[MAX_ROUNDS], aw[MAX_ROUNDS];
        static double rp[MAX_ROUNDS], rt[MAX_ROUNDS], rw[MAX_ROUNDS];
        static double bap[MAX_ROUNDS], bat[MAX_ROUNDS], baw[MAX_ROUNDS];
        static double brp[MAX_ROUNDS], brt[MAX_ROUNDS], brw[MAX_ROUNDS];
        const char *uri = "qemu:///system", *exe = getenv("HVPATCH"), *other = NULL;
        int n = 30, opt;
        virConnectPtr conn;
        virDomainPtr dom;

        while ((opt = getopt(argc, argv, "n:c:B:")) != -1) {
                if (opt == 'n')
                        n = atoi(optarg);
                else if (opt == 'c')
                        uri = optarg;
                else if (opt == 'B')
                        other = optarg;
                else
                        return 2;
        }
        if (argc - optind != 3 || n < 1 || n > MAX_ROUNDS) {
                fprintf(stderr, "usage: bench-pause [-n N (1..%d)] [-c URI] [-B OTHER-HVPATCH] DOMAIN BUNDLE "
                        "PATCH-ID\n", MAX_ROUNDS);
                return 2;
        }
        if (!exe || !*exe)
                exe = "build/cli/hvpatch";
        conn = virConnectOpen(uri);
        dom = conn ? virDomainLookupByName(conn, argv[optind]) : NULL;
        if (!dom) {
                fprintf(stderr, "bench-pause: %s: %s\n", argv[optind], virGetLastErrorMessage());
                return 1;
        }
        {
                static char json[] = "--json", cmd_apply[] = "apply", cmd_revert[] = "revert",
                            unsigned_[] = "--insecure-unsigned";
                char *apply[] = { (char *)exe, json, cmd_apply, unsigned_, argv[optind], argv[optind + 1], NULL };
                char *revert[] = { (char *)exe, json, cmd_revert, argv[optind], argv[optind + 2], NULL };
                char *bapply[] = { (char *)other, json, cmd_apply, unsigned_, argv[optind], argv[optind + 1], NULL };
                char *brevert[] = { (char *)other, json, cmd_revert, argv[optind], argv[optind + 2], NULL };

                for (int i = 0; i < n; i++) {
                        double t0 = hvp_now_ms(), t1, t2;

                        qmp(dom, "{\"execute\":\"stop\"}");
                        t1 = hvp_now_ms();
                        qmp(dom, "{\"execute\":\"cont\"}");
                        t2 = hvp_now_ms();
                        stop[i] = t1 - t0;
                        cont[i] = t2 - t1;
                        floor_[i] = t2 - t0;
                        hvpatch(apply, &ap[i], &at[i], &aw[i]);
                        hvpatch(revert, &rp[i], &rt[i], &rw[i]);
                        printf("sample %d floor=%.3f stop=%.3f cont=%.3f apply_pause=%.3f apply_total=%.3f "
                               "apply_wall=%.1f revert_pause=%.3f revert_total=%.3f revert_wall=%.1f",
                               i, floor_[i], stop[i], cont[i], ap[i], at[i], aw[i], rp[i], rt[i], rw[i]);
                        if (other) {
                                hvpatch(bapply, &bap[i], &bat[i], &baw[i]);
                                hvpatch(brevert, &brp[i], &brt[i], &brw[i]);
                                printf(" other_apply_pause=%.3f other_apply_total=%.3f other_revert_pause=%.3f "
                                       "other_revert_total=%.3f", bap[i], bat[i], brp[i], brt[i]);
                        }
                        printf("\n");
                        fflush(stdout);
                }
        }
        printf("\n%d rounds, interleaved (floor, apply, revert%s), domain %s\n", n,
               other ? ", other apply, other revert" : "", argv[optind]);
        report("floor: QMP stop + cont (pair)", floor_, n);
        report("  QMP stop", stop, n);
        report("  QMP cont", cont, n);
        report("apply: pause window (pause_ms)", ap, n);
        report("apply: start to resume (total_ms)", at, n);
        report("apply: command wall time", aw, n);
        report("revert: pause window (pause_ms)", rp, n);
        report("revert: start to resume (total_ms)", rt, n);
        report("revert: command wall time", rw, n);
        printf("ratio window/floor (medians): apply %.2f, revert %.2f\n", median(ap, n) / median(floor_, n),
               median(rp, n) / median(floor_, n));
        if (other) {
                printf("\nother hvpatch: %s\n", other);
                report("other: apply pause window", bap, n);
                report("other: apply start to resume", bat, n);
                report("other: revert pause window", brp, n);
                report("other: revert start to resume", brt, n);
                printf("ratio window/floor (medians): other apply %.2f, other revert %.2f\n",
                       median(bap, n) / median(floor_, n), median(brp, n) / median(floor_, n));
        }
        virDomainFree(dom);
        virConnectClose(conn);
        return 0;
}

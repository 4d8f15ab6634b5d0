/*
 * guest-stall: runs INSIDE a test guest (a busybox initramfs: no libc there) and spins
 * reading its own CLOCK_MONOTONIC for MS milliseconds; prints the largest gap between
 * two consecutive reads, when it happened (ms from the start), the reads done and how
 * many gaps passed 1 ms and 10 ms:
 *
 *     guest-stall 6000   ->   "reads 812345 max_gap_us 2345 at_ms 3012 over_1ms 3 over_10ms 0"
 *
 * A pause of the guest shows as a gap only as far as the guest's clock ran on while its
 * vCPUs were stopped. Built by bench/run-daemon-benches.py (static, no libc, a few KiB,
 * sent to the guest over its command channel); not part of the CMake build.
 *
 *     gcc -static -nostdlib -Os -fno-stack-protector -fno-asynchronous-unwind-tables \
 *         -fno-pie -no-pie -Wl,--build-id=none -Wl,-N -s -o guest-stall guest-stall.c
 */
#include <stdint.h>

#define SYS_write 1
#define SYS_clock_gettime 228
#define SYS_exit_group 231
#define CLOCK_MONOTONIC 1

struct ts {
        long sec, nsec;
};

static long sys3(long n, long a, long b, long c)
{
        long r;

        __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
        return r;
}

static int64_t now_ns(void)
{
        struct ts t;

        sys3(SYS_clock_gettime, CLOCK_MONOTONIC, (long)&t, 0);
        return (int64_t)t.sec * 1000000000 + t.nsec;
}

static char *put(char *p, const char *s)
{
        while (*s)
                *p++ = *s++;
        return p;
}

static char *put_u(char *p, uint64_t v)
{
        char tmp[24];
        int n = 0;

        do
                tmp[n++] = (char)('0' + v % 10);
        while ((v /= 10) != 0);
        while (n)
                *p++ = tmp[--n];
        return p;
}

__attribute__((used)) static void cmain(long *sp)
{
        long argc = sp[0];
        char **argv = (char **)(sp + 1);
        uint64_t ms = 5000, reads = 0, over1 = 0, over10 = 0;
        int64_t t0, prev, end, max_gap = 0, max_at = 0;
        char out[256], *p = out;

        if (argc > 1) {
                ms = 0;
                for (const char *s = argv[1]; *s >= '0' && *s <= '9' && ms < 1000000000; s++)
                        ms = ms * 10 + (uint64_t)(*s - '0');
        }
        t0 = prev = now_ns();
        end = t0 + (int64_t)ms * 1000000;
        for (;;) {
                int64_t t = now_ns(), gap = t - prev;

                reads++;
                if (gap > max_gap) {
                        max_gap = gap;
                        max_at = prev - t0;
                }
                over1 += gap > 1000000;
                over10 += gap > 10000000;
                prev = t;
                if (t >= end)
                        break;
        }
        p = put(p, "reads ");
        p = put_u(p, reads);
        p = put(p, " max_gap_us ");
        p = put_u(p, (uint64_t)max_gap / 1000);
        p = put(p, " at_ms ");
        p = put_u(p, (uint64_t)max_at / 1000000);
        p = put(p, " over_1ms ");
        p = put_u(p, over1);
        p = put(p, " over_10ms ");
        p = put_u(p, over10);
        p = put(p, "\n");
        sys3(SYS_write, 1, (long)out, p - out);
        sys3(SYS_exit_group, 0, 0, 0);
}

__asm__(".globl _start\n"
        "_start:\n"
        "  xor %rbp, %rbp\n"
        "  mov %rsp, %rdi\n"
        "  and $-16, %rsp\n"
        "  call cmain\n"
        "  hlt\n");

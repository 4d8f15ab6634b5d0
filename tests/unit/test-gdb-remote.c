/*
 * The GDB remote client against a fake stub on a socketpair: framing, checksums,
 * acks and retransmission, stop replies, errors, timeouts, and never a detach.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <hvpatch/hvpatch.h>

#include "vmi/gdb-remote.h"

#define MEM_BASE 0x100000u
#define MEM_SIZE 0x10000u

struct stub {
        int fd;
        pthread_t thread;
        uint8_t mem[MEM_SIZE];
        bool phys;
        unsigned hg;                    /* the thread Hg chose */
        bool short_regs;                /* a 'g' reply cut short */
        /* misbehaviours */
        int nak_first;                  /* refuse this many incoming packets with '-' */
        int corrupt_replies;            /* send this many replies with a bad checksum first */
        bool stop_reply_first;          /* an unsolicited "T05thread:01;" before the first reply */
        bool silent;                    /* never answer */
        int close_after;                /* close after this many packets (0: never) */
        /* observations */
        int packets;
        bool got_detach_or_kill;
        int naks_seen;
        char last[256];
};

static int hexv(char c)
{
        return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static void stub_send(struct stub *s, const char *payload, bool corrupt)
{
        char buf[2 * MEM_SIZE + 16];
        unsigned cs = 0;

        for (const char *p = payload; *p; p++)
                cs = (cs + (unsigned char)*p) & 0xff;
        snprintf(buf, sizeof(buf), "$%s#%02x", payload, corrupt ? (cs + 1) & 0xff : cs);
        if (write(s->fd, buf, strlen(buf)) < 0)
                return;
}

/* Reads one packet; returns false when the peer went away. */
static bool stub_recv(struct stub *s, char *out, size_t max, bool *ret_bad_cs)
{
        unsigned cs = 0;
        size_t n = 0;
        char c, h[2];

        do {
                if (read(s->fd, &c, 1) != 1)
                        return false;
        } while (c != '$');
        for (;;) {
                if (read(s->fd, &c, 1) != 1)
                        return false;
                if (c == '#')
                        break;
                cs = (cs + (unsigned char)c) & 0xff;
                if (n + 1 < max)
                        out[n++] = c;
        }
        out[n] = '\0';
        if (read(s->fd, h, 2) != 2)
                return false;
        *ret_bad_cs = (unsigned)(hexv(h[0]) << 4 | hexv(h[1])) != cs;
        return true;
}

static void stub_answer(struct stub *s, const char *pkt, char *reply)
{
        unsigned long long addr;
        size_t len;

        reply[0] = '\0';
        if (strcmp(pkt, "Qqemu.PhyMemMode:1") == 0) {
                s->phys = true;
                strcpy(reply, "OK");
        } else if ((pkt[0] == 'm' || pkt[0] == 'M') && sscanf(pkt + 1, "%llx,%zx", &addr, &len) == 2) {
                if (!s->phys || addr < MEM_BASE || addr + len > MEM_BASE + MEM_SIZE) {
                        strcpy(reply, "E14");
                } else if (pkt[0] == 'm') {
                        for (size_t i = 0; i < len; i++)
                                sprintf(reply + 2 * i, "%02x", s->mem[addr - MEM_BASE + i]);
                } else {
                        const char *hex = strchr(pkt, ':');

                        if (!hex || strlen(hex + 1) != 2 * len) {
                                strcpy(reply, "E22");
                                return;
                        }
                        for (size_t i = 0; i < len; i++)
                                s->mem[addr - MEM_BASE + i] = (uint8_t)(hexv(hex[1 + 2 * i]) << 4 |
                                                                        hexv(hex[2 + 2 * i]));
                        strcpy(reply, "OK");
                }
        } else if (pkt[0] == 'H' && pkt[1] == 'g') {
                unsigned t = (unsigned)strtoul(pkt + 2, NULL, 16);

                strcpy(reply, t >= 1 && t <= 2 ? "OK" : "E22");
                if (t >= 1 && t <= 2)
                        s->hg = t;
        } else if (strcmp(pkt, "g") == 0) {
                /* amd64: 16 GPRs, rip, eflags, cs, ... then unavailable FP registers ('x') */
                uint64_t gpr[17] = { 0 };
                char *p = reply;

                for (int i = 0; i < 16; i++)
                        gpr[i] = 0x1111111111111111ull * (uint64_t)i;
                gpr[7] = 0xffffc90000003f00ull + s->hg;             /* rsp */
                gpr[16] = 0xffffffff81000000ull + s->hg;            /* rip */
                for (int i = 0; i < 17; i++)
                        for (int b = 0; b < 8; b++)
                                p += sprintf(p, "%02x", (unsigned)(gpr[i] >> (8 * b)) & 0xff);
                p += sprintf(p, "46020000%02x000000", s->hg == 1 ? 0x10 : 0x33);   /* eflags, cs */
                for (int i = 0; i < 40; i++)
                        p += sprintf(p, "xx");
                if (s->short_regs)
                        reply[2 * (16 * 8 + 8 + 2)] = '\0';
        } else if (pkt[0] == 'D' || pkt[0] == 'k') {
                s->got_detach_or_kill = true;
                strcpy(reply, "OK");
        }
}

static void *stub_main(void *arg)
{
        struct stub *s = arg;
        static char pkt[2 * MEM_SIZE + 64], reply[2 * MEM_SIZE + 16];
        bool bad;

        while (stub_recv(s, pkt, sizeof(pkt), &bad)) {
                if (bad || s->nak_first > 0) {
                        if (!bad)
                                s->nak_first--;
                        if (write(s->fd, "-", 1) < 0)
                                break;
                        continue;
                }
                if (write(s->fd, "+", 1) < 0)
                        break;
                s->packets++;
                memcpy(s->last, pkt, sizeof(s->last) - 1);
                s->last[sizeof(s->last) - 1] = '\0';
                if (s->close_after && s->packets >= s->close_after)
                        break;
                if (s->silent)
                        continue;
                if (s->stop_reply_first) {
                        s->stop_reply_first = false;
                        stub_send(s, "T05thread:01;", false);
                }
                stub_answer(s, pkt, reply);
                while (s->corrupt_replies > 0) {
                        char c;

                        s->corrupt_replies--;
                        stub_send(s, reply, true);
                        /* the client must ask again with '-' (after acking a stop reply, maybe) */
                        do {
                                if (read(s->fd, &c, 1) != 1)
                                        return NULL;
                        } while (c == '+');
                        s->naks_seen += c == '-';
                }
                stub_send(s, reply, false);
                /* consume the client's ack */
                {
                        char c;

                        if (read(s->fd, &c, 1) != 1)
                                break;
                }
        }
        shutdown(s->fd, SHUT_RDWR);
        return NULL;
}

static struct stub *stub_start(struct hvp_gdb *g, int timeout_ms, void (*setup)(struct stub *))
{
        struct stub *s = calloc(1, sizeof(*s));
        int sv[2];

        assert_non_null(s);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        for (unsigned i = 0; i < MEM_SIZE; i++)
                s->mem[i] = (uint8_t)(i * 7);
        s->fd = sv[1];
        if (setup)
                setup(s);
        assert_int_equal(pthread_create(&s->thread, NULL, stub_main, s), 0);
        hvp_gdb_attach_fd(sv[0], timeout_ms, g);
        return s;
}

static void stub_stop(struct stub *s, struct hvp_gdb *g)
{
        hvp_gdb_close(g);
        pthread_join(s->thread, NULL);
        close(s->fd);
        assert_false(s->got_detach_or_kill);
        free(s);
}

static void test_write_read(void **state)
{
        struct hvp_gdb g;
        struct stub *s = stub_start(&g, 2000, NULL);
        uint8_t data[3000], back[3000];

        /* Before physical mode the stub refuses (it would mean virtual addresses). */
        assert_int_equal(hvp_gdb_read(&g, MEM_BASE, back, 4), -EIO);
        assert_non_null(strstr(hvp_last_error(), "answered"));
        assert_int_equal(hvp_gdb_phys_mode(&g), 0);
        for (size_t i = 0; i < sizeof(data); i++)
                data[i] = (uint8_t)(0xa5 ^ i);
        /* More than one chunk: several M packets. */
        assert_int_equal(hvp_gdb_write(&g, MEM_BASE + 0x100, data, sizeof(data)), 0);
        assert_memory_equal(s->mem + 0x100, data, sizeof(data));
        assert_int_equal(s->mem[0xff], (uint8_t)(0xff * 7));
        assert_int_equal(hvp_gdb_read(&g, MEM_BASE + 0x100, back, sizeof(back)), 0);
        assert_memory_equal(back, data, sizeof(data));
        /* The stub's error reply. */
        assert_int_equal(hvp_gdb_write(&g, MEM_BASE + MEM_SIZE - 2, data, 5), -EIO);
        assert_non_null(strstr(hvp_last_error(), "E14"));
        stub_stop(s, &g);
}

static void setup_naughty(struct stub *s)
{
        s->nak_first = 2;
        s->corrupt_replies = 1;
        s->stop_reply_first = true;
}

static void test_retransmit_and_stop_reply(void **state)
{
        struct hvp_gdb g;
        struct stub *s = stub_start(&g, 2000, setup_naughty);
        uint8_t b = 0x42, back;

        assert_int_equal(hvp_gdb_phys_mode(&g), 0);
        assert_int_equal(hvp_gdb_write(&g, MEM_BASE, &b, 1), 0);
        assert_int_equal(hvp_gdb_read(&g, MEM_BASE, &back, 1), 0);
        assert_int_equal(back, 0x42);
        assert_int_equal(s->naks_seen, 1);
        assert_int_equal(s->nak_first, 0);
        stub_stop(s, &g);
}

static void setup_nak_forever(struct stub *s)
{
        s->nak_first = 1000;
}

static void test_nak_forever(void **state)
{
        struct hvp_gdb g;
        struct stub *s = stub_start(&g, 2000, setup_nak_forever);

        assert_int_equal(hvp_gdb_phys_mode(&g), -EIO);
        assert_non_null(strstr(hvp_last_error(), "refused the packet"));
        stub_stop(s, &g);
}

static void setup_silent(struct stub *s)
{
        s->silent = true;
}

static void test_timeout(void **state)
{
        struct hvp_gdb g;
        struct stub *s = stub_start(&g, 200, setup_silent);

        assert_int_equal(hvp_gdb_phys_mode(&g), -ETIMEDOUT);
        stub_stop(s, &g);
}

static void setup_hangup(struct stub *s)
{
        s->close_after = 1;
}

static void test_hangup(void **state)
{
        struct hvp_gdb g;
        struct stub *s = stub_start(&g, 2000, setup_hangup);

        assert_int_equal(hvp_gdb_phys_mode(&g), -EIO);
        assert_non_null(strstr(hvp_last_error(), "closed"));
        stub_stop(s, &g);
}

static void test_unsupported(void **state)
{
        struct hvp_gdb g;
        struct stub *s = stub_start(&g, 2000, NULL);
        char reply[16];

        assert_int_equal(hvp_gdb_command(&g, "qFoo", reply, sizeof(reply)), 0);
        assert_string_equal(reply, "");
        assert_string_equal(s->last, "qFoo");
        /* A reply longer than the caller's buffer. */
        assert_int_equal(hvp_gdb_phys_mode(&g), 0);
        assert_int_equal(hvp_gdb_command(&g, "m100000,40", reply, sizeof(reply)), -E2BIG);
        stub_stop(s, &g);
}

static void test_connect_errors(void **state)
{
        struct hvp_gdb g;
        char path[200];

        memset(path, 'a', sizeof(path) - 1);
        path[sizeof(path) - 1] = '\0';
        assert_int_equal(hvp_gdb_connect_unix(path, 100, &g), -EINVAL);
        assert_int_equal(hvp_gdb_connect_unix("/nonexistent/hvp-gdb.sock", 100, &g), -EIO);
}

/* RIP, RSP and CS of each vCPU through Hg/g; a missing vCPU; a block cut short. */
static void test_vcpu_regs(void **state)
{
        struct hvp_gdb g;
        struct stub *s = stub_start(&g, 2000, NULL);
        uint64_t rip, rsp, cs;

        (void)state;
        assert_int_equal(hvp_gdb_vcpu_regs(&g, 0, &rip, &rsp, &cs), 0);
        assert_int_equal(rip, 0xffffffff81000001ull);
        assert_int_equal(rsp, 0xffffc90000003f01ull);
        assert_int_equal(cs, 0x10);
        assert_int_equal(hvp_gdb_vcpu_regs(&g, 1, &rip, &rsp, &cs), 0);
        assert_int_equal(rip, 0xffffffff81000002ull);
        assert_int_equal(cs, 0x33);
        rip = 7;
        assert_int_equal(hvp_gdb_vcpu_regs(&g, 2, &rip, &rsp, &cs), -ENOENT);
        assert_int_equal(rip, 7);                       /* untouched on failure */
        s->short_regs = true;
        assert_int_equal(hvp_gdb_vcpu_regs(&g, 0, &rip, &rsp, &cs), -EIO);
        assert_int_equal(rip, 7);
        stub_stop(s, &g);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_vcpu_regs),
                cmocka_unit_test(test_write_read),
                cmocka_unit_test(test_retransmit_and_stop_reply),
                cmocka_unit_test(test_nak_forever),
                cmocka_unit_test(test_timeout),
                cmocka_unit_test(test_hangup),
                cmocka_unit_test(test_unsupported),
                cmocka_unit_test(test_connect_errors),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}

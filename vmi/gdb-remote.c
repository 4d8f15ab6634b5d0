/* GDB remote serial protocol: "$payload#cs" packets, '+'/'-' acks. */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/error.h"
#include "common/util.h"
#include "vmi/gdb-remote.h"

#define MAX_RETRANSMITS 3

int hvp_gdb_connect_unix(const char *path, int timeout_ms, struct hvp_gdb *ret_gdb)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        if (strlen(path) >= sizeof(sa.sun_path))
                return hvp_fail(-EINVAL, "gdbstub socket path too long: %s", path);
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return hvp_fail(-errno, "socket: %m");
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int e = errno;

                close(fd);
                errno = e;
                return hvp_fail(-EIO, "cannot connect to the gdbstub at %s: %m", path);
        }
        hvp_gdb_attach_fd(fd, timeout_ms, ret_gdb);
        return 0;
}

void hvp_gdb_attach_fd(int fd, int timeout_ms, struct hvp_gdb *ret_gdb)
{
        ret_gdb->fd = fd;
        ret_gdb->rlen = ret_gdb->rpos = 0;
        ret_gdb->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
}

void hvp_gdb_close(struct hvp_gdb *g)
{
        if (g->fd >= 0)
                close(g->fd);
        g->fd = -1;
        g->rlen = g->rpos = 0;
}

static int send_all(struct hvp_gdb *g, const char *buf, size_t len)
{
        while (len > 0) {
                ssize_t n = send(g->fd, buf, len, MSG_NOSIGNAL);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return hvp_fail(-EIO, "gdbstub: send failed: %m");
                buf += n;
                len -= (size_t)n;
        }
        return 0;
}

/* One byte, waiting at most until deadline. */
static int recv_byte(struct hvp_gdb *g, int64_t deadline, char *ret)
{
        if (g->rpos < g->rlen) {
                *ret = g->rbuf[g->rpos++];
                return 0;
        }
        for (;;) {
                struct pollfd pfd = { .fd = g->fd, .events = POLLIN };
                int64_t left = deadline - (int64_t)hvp_now_ms();
                ssize_t n;
                int p;

                if (left <= 0)
                        return hvp_fail(-ETIMEDOUT, "gdbstub: no reply within %d ms", g->timeout_ms);
                p = poll(&pfd, 1, (int)HVP_MIN(left, 60000));
                if (p < 0 && errno == EINTR)
                        continue;
                if (p < 0)
                        return hvp_fail(-EIO, "gdbstub: poll: %m");
                if (p == 0)
                        continue;
                n = recv(g->fd, g->rbuf, sizeof(g->rbuf), 0);
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (n == 0)
                        return hvp_fail(-EIO, "gdbstub closed the connection");
                if (n < 0)
                        return hvp_fail(-EIO, "gdbstub: recv: %m");
                g->rlen = (size_t)n;
                g->rpos = 1;
                *ret = g->rbuf[0];
                return 0;
        }
}

static int send_packet(struct hvp_gdb *g, const char *payload)
{
        size_t n = strlen(payload);
        char head = '$', tail[4];
        uint8_t cs = 0;
        int r;

        for (size_t i = 0; i < n; i++)
                cs = (uint8_t)(cs + (uint8_t)payload[i]);
        snprintf(tail, sizeof(tail), "#%02x", cs);
        r = send_all(g, &head, 1);
        if (r == 0)
                r = send_all(g, payload, n);
        if (r == 0)
                r = send_all(g, tail, 3);
        return r;
}

/*
 * Receive one packet into out (NUL-terminated). *ret_nak is set when our last
 * packet was refused ('-') before any reply started: the caller retransmits.
 */
static int recv_packet(struct hvp_gdb *g, int64_t deadline, char *out, size_t max, bool *ret_nak)
{
        char c;
        int r;

        *ret_nak = false;
        for (;;) {
                size_t n = 0;
                uint8_t cs = 0;
                bool overflow = false;
                char h[2];
                int hi, lo;

                do {
                        r = recv_byte(g, deadline, &c);
                        if (r < 0)
                                return r;
                        if (c == '-') {
                                *ret_nak = true;
                                return 0;
                        }
                } while (c != '$');     /* '+' acks and noise between packets */
                for (;;) {
                        r = recv_byte(g, deadline, &c);
                        if (r < 0)
                                return r;
                        if (c == '#')
                                break;
                        cs = (uint8_t)(cs + (uint8_t)c);
                        if (n + 1 < max)
                                out[n++] = c;
                        else
                                overflow = true;
                }
                for (int i = 0; i < 2; i++) {
                        r = recv_byte(g, deadline, &h[i]);
                        if (r < 0)
                                return r;
                }
                out[n] = '\0';
                hi = hvp_hex_digit(h[0]);
                lo = hvp_hex_digit(h[1]);
                if (hi < 0 || lo < 0 || (uint8_t)(hi << 4 | lo) != cs) {
                        r = send_all(g, "-", 1);        /* ask for it again */
                        if (r < 0)
                                return r;
                        continue;
                }
                r = send_all(g, "+", 1);
                if (r < 0)
                        return r;
                if (overflow)
                        return hvp_fail(-E2BIG, "gdbstub: reply longer than %zu bytes", max - 1);
                return 0;
        }
}

/* A stop reply ("T05thread:01;", "S05") the stub may send on its own. */
static bool is_stop_reply(const char *p)
{
        return (p[0] == 'T' || p[0] == 'S') && hvp_hex_digit(p[1]) >= 0 && hvp_hex_digit(p[2]) >= 0;
}

int hvp_gdb_command(struct hvp_gdb *g, const char *cmd, char *reply, size_t max)
{
        int64_t deadline = (int64_t)hvp_now_ms() + g->timeout_ms;
        bool nak;
        int r;

        if (g->fd < 0)
                return hvp_fail(-EIO, "gdbstub: not connected");
        if (max < 2 || strlen(cmd) > HVP_GDB_MAX_PACKET)
                return hvp_fail(-EINVAL, "gdbstub: bad command buffer");
        for (int tries = 0; tries <= MAX_RETRANSMITS; tries++) {
                r = send_packet(g, cmd);
                if (r < 0)
                        return r;
                for (int skipped = 0; skipped < 16; skipped++) {
                        r = recv_packet(g, deadline, reply, max, &nak);
                        if (r < 0 || nak || !is_stop_reply(reply))
                                break;
                        hvp_debug("gdbstub: skipped stop reply %.16s", reply);
                }
                if (r < 0)
                        return r;
                if (!nak) {
                        if (is_stop_reply(reply))
                                return hvp_fail(-EIO, "gdbstub keeps sending stop replies");
                        return 0;
                }
        }
        return hvp_fail(-EIO, "gdbstub refused the packet %d times (bad checksum?)", MAX_RETRANSMITS + 1);
}

static int expect_ok(struct hvp_gdb *g, const char *cmd, const char *what)
{
        char reply[64];
        int r = hvp_gdb_command(g, cmd, reply, sizeof(reply));

        if (r < 0)
                return r;
        if (strcmp(reply, "OK") != 0)
                return hvp_fail(-EIO, "gdbstub refused %s: \"%s\"", what, reply[0] ? reply : "(not supported)");
        return 0;
}

int hvp_gdb_detach(struct hvp_gdb *g)
{
        return expect_ok(g, "D", "detach");
}

int hvp_gdb_phys_mode(struct hvp_gdb *g)
{
        return expect_ok(g, "Qqemu.PhyMemMode:1", "physical memory mode");
}

int hvp_gdb_read(struct hvp_gdb *g, uint64_t addr, void *buf, size_t len)
{
        char cmd[64], reply[2 * HVP_GDB_CHUNK + 16];
        uint8_t *out = buf;
        int r;

        while (len > 0) {
                size_t n = HVP_MIN(len, (size_t)HVP_GDB_CHUNK);

                snprintf(cmd, sizeof(cmd), "m%llx,%zx", (unsigned long long)addr, n);
                r = hvp_gdb_command(g, cmd, reply, sizeof(reply));
                if (r < 0)
                        return r;
                if (strlen(reply) != 2 * n) {
                        return hvp_fail(-EIO, "gdbstub: read of 0x%zx bytes at 0x%llx answered \"%.16s\"", n,
                                        (unsigned long long)addr, reply);
                }
                for (size_t i = 0; i < n; i++) {
                        int hi = hvp_hex_digit(reply[2 * i]), lo = hvp_hex_digit(reply[2 * i + 1]);

                        if (hi < 0 || lo < 0)
                                return hvp_fail(-EIO, "gdbstub: bad hex in memory reply");
                        out[i] = (uint8_t)(hi << 4 | lo);
                }
                out += n;
                addr += n;
                len -= n;
        }
        return 0;
}

int hvp_gdb_write(struct hvp_gdb *g, uint64_t addr, const void *buf, size_t len)
{
        static const char digits[] = "0123456789abcdef";
        char cmd[2 * HVP_GDB_CHUNK + 64];
        const uint8_t *in = buf;
        int r;

        while (len > 0) {
                size_t n = HVP_MIN(len, (size_t)HVP_GDB_CHUNK);
                int h = snprintf(cmd, sizeof(cmd), "M%llx,%zx:", (unsigned long long)addr, n);

                for (size_t i = 0; i < n; i++) {
                        cmd[h + 2 * i] = digits[in[i] >> 4];
                        cmd[h + 2 * i + 1] = digits[in[i] & 15];
                }
                cmd[h + 2 * n] = '\0';
                r = expect_ok(g, cmd, "a memory write");
                if (r < 0)
                        return r;
                in += n;
                addr += n;
                len -= n;
        }
        return 0;
}

/* n little-endian bytes from hex at p; false on a non-hex digit ('x': unavailable). */
static bool hex_le(const char *p, unsigned n, uint64_t *ret)
{
        uint64_t v = 0;

        for (unsigned i = 0; i < n; i++) {
                int hi = hvp_hex_digit(p[2 * i]), lo = hvp_hex_digit(p[2 * i + 1]);

                if (hi < 0 || lo < 0)
                        return false;
                v |= (uint64_t)(hi << 4 | lo) << (8 * i);
        }
        *ret = v;
        return true;
}

int hvp_gdb_vcpu_regs(struct hvp_gdb *g, unsigned vcpu, uint64_t *ret_rip, uint64_t *ret_rsp, uint64_t *ret_cs)
{
        enum { RSP = 7 * 8, RIP = 16 * 8, CS = 16 * 8 + 8 + 4, END = CS + 4 };
        char cmd[32], small[64];
        char *reply;
        uint64_t rip = 0, rsp = 0, cs = 0;
        int r;

        snprintf(cmd, sizeof(cmd), "Hg%x", vcpu + 1);
        r = hvp_gdb_command(g, cmd, small, sizeof(small));
        if (r < 0)
                return r;
        if (strcmp(small, "OK") != 0)
                return hvp_fail(-ENOENT, "gdbstub: no vCPU %u (\"%s\")", vcpu, small);
        reply = malloc(HVP_GDB_MAX_PACKET + 1);
        if (!reply)
                return hvp_fail(-ENOMEM, "out of memory");
        r = hvp_gdb_command(g, "g", reply, HVP_GDB_MAX_PACKET + 1);
        if (r == 0 && (strlen(reply) < 2 * END || !hex_le(reply + 2 * RSP, 8, &rsp) ||
                       !hex_le(reply + 2 * RIP, 8, &rip) || !hex_le(reply + 2 * CS, 4, &cs)))
                r = hvp_fail(-EIO, "gdbstub: vCPU %u's registers: a reply of %zu characters", vcpu, strlen(reply));
        free(reply);
        if (r < 0)
                return r;
        *ret_rip = rip;
        *ret_rsp = rsp;
        *ret_cs = cs;
        return 0;
}

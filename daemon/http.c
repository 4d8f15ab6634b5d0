/*
 * The metrics endpoint (--metrics-listen ADDR:PORT): the smallest HTTP/1.0-1.1 server that
 * Prometheus can scrape, on the main thread's libvirt event loop (no thread of its own).
 * GET or HEAD /metrics answers the same text as the metrics file (hvpd_metrics_text);
 * other paths 404, other methods 405. One request per connection (Connection: close).
 *
 * A client cannot hold the daemon: sockets are non-blocking, a request head is at most
 * HVPD_HTTP_MAX_REQUEST bytes (431 beyond), at most HVPD_HTTP_MAX_CONNS connections are
 * open (one more is closed at once, after a best-effort 503), and each has
 * HVPD_HTTP_TIMEOUT_MS from its accept to the last byte of its answer however slowly it
 * sends or reads (slowloris): then it is closed. The sweep timer runs only while a
 * connection is open, so an idle daemon is not woken by it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>

#include "daemon/hvpatchd.h"

#define SWEEP_MS 250
#define MAX_ACCEPTS 32                  /* per wake-up: a flood does not starve the event loop */

struct conn {
        int fd;                         /* -1: free slot */
        int watch;
        int64_t deadline_ms;            /* CLOCK_MONOTONIC */
        size_t in_len;
        char in[HVPD_HTTP_MAX_REQUEST];
        char *out;
        size_t out_len, out_off;
};

static struct {
        struct hvpd *d;
        int fd, watch, timer;
        size_t n_open;
        bool accept_paused;             /* out of descriptors: the listener waits for the sweep */
        struct conn c[HVPD_HTTP_MAX_CONNS];
} H = { .fd = -1, .watch = -1, .timer = -1 };

unsigned hvpd_http_timeout_ms = HVPD_HTTP_TIMEOUT_MS;   /* tests shorten it */

static int64_t now_ms(void)
{
        struct timespec t;

        clock_gettime(CLOCK_MONOTONIC, &t);
        return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static const char *reason_phrase(int status)
{
        switch (status) {
        case 200: return "OK";
        case 400: return "Bad Request";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 408: return "Request Timeout";
        case 431: return "Request Header Fields Too Large";
        case 503: return "Service Unavailable";
        case 505: return "HTTP Version Not Supported";
        default: return "Internal Server Error";
        }
}

/* The end of the head (just past its blank line), or 0. Bare LF line ends are taken too. */
static size_t head_end(const char *buf, size_t len)
{
        for (size_t i = 0; i + 1 < len; i++) {
                if (buf[i] != '\n')
                        continue;
                if (buf[i + 1] == '\n')
                        return i + 2;
                if (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n')
                        return i + 3;
        }
        return 0;
}

/*
 * The verdict on a request head held in buf[0, len): 0 while it is incomplete (more
 * bytes may make it whole), else the HTTP status to answer. A request line that is
 * complete and malformed is refused at once, before the rest of the head arrives.
 */
int hvpd_http_parse(const char *buf, size_t len, bool *ret_head_only)
{
        const char *eol, *sp1, *sp2, *path, *ver;
        size_t line_len, path_len, end;

        *ret_head_only = false;
        if (len > HVPD_HTTP_MAX_REQUEST)
                len = HVPD_HTTP_MAX_REQUEST;
        /*
         * A verdict, once due, is final whatever bytes follow: the request line is judged
         * on itself as soon as it ends, the rest of the head when the head ends.
         */
        eol = memchr(buf, '\n', len);
        if (!eol) {
                if (memchr(buf, '\0', len))
                        return 400;
                return len >= HVPD_HTTP_MAX_REQUEST ? 431 : 0;
        }
        line_len = (size_t)(eol - buf);
        if (memchr(buf, '\0', line_len))
                return 400;
        if (line_len && buf[line_len - 1] == '\r')
                line_len--;
        /* METHOD SP TARGET SP HTTP/1.x: exactly two spaces, a token, an origin-form target */
        sp1 = memchr(buf, ' ', line_len);
        if (!sp1 || sp1 == buf)
                return 400;
        for (const char *p = buf; p < sp1; p++)
                if (*p < 'A' || *p > 'Z')
                        return 400;
        path = sp1 + 1;
        sp2 = memchr(path, ' ', line_len - (size_t)(path - buf));
        if (!sp2 || sp2 == path || *path != '/')
                return 400;
        ver = sp2 + 1;
        if ((size_t)(buf + line_len - ver) != 8 || memchr(ver, ' ', 8))
                return 400;
        for (const char *p = path; p < sp2; p++)
                if ((unsigned char)*p <= ' ' || *p == 0x7f)
                        return 400;
        if (memcmp(ver, "HTTP/", 5) != 0 || ver[5] < '0' || ver[5] > '9' || ver[6] != '.' || ver[7] < '0' ||
            ver[7] > '9')
                return 400;
        if (ver[5] != '1' || (ver[7] != '0' && ver[7] != '1'))
                return 505;
        end = head_end(buf, len);
        if (!end)
                return len >= HVPD_HTTP_MAX_REQUEST ? 431 : 0;
        if (memchr(buf, '\0', end))
                return 400;
        if (!((sp1 - buf == 3 && memcmp(buf, "GET", 3) == 0) || (sp1 - buf == 4 && memcmp(buf, "HEAD", 4) == 0)))
                return 405;
        *ret_head_only = sp1 - buf == 4;
        path_len = (size_t)(sp2 - path);
        for (size_t i = 0; i < path_len; i++)
                if (path[i] == '?') {           /* a query string is ignored, as exporters do */
                        path_len = i;
                        break;
                }
        return path_len == 8 && memcmp(path, "/metrics", 8) == 0 ? 200 : 404;
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
        if (ss->ss_family == AF_INET)
                return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
        const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;

        if (IN6_IS_ADDR_LOOPBACK(a))
                return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
}

/*
 * ADDR:PORT, [IPV6]:PORT, :PORT or PORT (the last two: 127.0.0.1). Numeric addresses only
 * (no name lookups at start-up); PORT 0 lets the kernel choose. A non-loopback address is
 * -EPERM unless allow_remote: the text names every guest and the endpoint has no TLS nor
 * authentication.
 */
int hvpd_http_listen_parse(const char *spec, bool allow_remote, struct sockaddr_storage *ret, socklen_t *ret_len,
                           char *why, size_t why_size)
{
        char host[INET6_ADDRSTRLEN + 2] = "127.0.0.1";
        const char *port_s = spec, *colon = strrchr(spec, ':');
        unsigned long port;
        char *end;

        memset(ret, 0, sizeof(*ret));
        if (colon) {
                size_t hl = (size_t)(colon - spec);

                port_s = colon + 1;
                if (hl >= 2 && spec[0] == '[' && spec[hl - 1] == ']') {
                        spec++;
                        hl -= 2;
                } else if (memchr(spec, ':', hl)) {
                        snprintf(why, why_size, "'%s': an IPv6 address goes in brackets, [ADDR]:PORT", spec);
                        return -EINVAL;
                }
                if (hl >= sizeof(host)) {
                        snprintf(why, why_size, "'%.*s': not a numeric address", (int)hl, spec);
                        return -EINVAL;
                }
                if (hl) {
                        memcpy(host, spec, hl);
                        host[hl] = '\0';
                }
        }
        errno = 0;
        port = strtoul(port_s, &end, 10);
        if (!*port_s || *end || errno || port > 65535 || *port_s < '0' || *port_s > '9') {
                snprintf(why, why_size, "'%s': not a port number (0-65535)", port_s);
                return -EINVAL;
        }
        if (inet_pton(AF_INET, host, &((struct sockaddr_in *)ret)->sin_addr) == 1) {
                ret->ss_family = AF_INET;
                ((struct sockaddr_in *)ret)->sin_port = htons((uint16_t)port);
                *ret_len = sizeof(struct sockaddr_in);
        } else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)ret)->sin6_addr) == 1) {
                ret->ss_family = AF_INET6;
                ((struct sockaddr_in6 *)ret)->sin6_port = htons((uint16_t)port);
                *ret_len = sizeof(struct sockaddr_in6);
        } else {
                snprintf(why, why_size, "'%s': not a numeric IPv4 or IPv6 address", host);
                return -EINVAL;
        }
        if (!allow_remote && !is_loopback(ret)) {
                snprintf(why, why_size,
                         "%s is not a loopback address: the metrics name every guest and the endpoint has no "
                         "authentication; add --metrics-remote to listen there anyway", host);
                return -EPERM;
        }
        return 0;
}

static void close_fd(void *opaque)
{
        close((int)(intptr_t)opaque);
}

static void sweep_arm(void)
{
        virEventUpdateTimeout(H.timer, H.n_open || H.accept_paused ? SWEEP_MS : -1);
}

static void conn_close(struct conn *c)
{
        if (c->fd < 0)
                return;
        shutdown(c->fd, SHUT_WR);
        /* the descriptor is closed by close_fd once the loop lets go of it */
        if (virEventRemoveHandle(c->watch) < 0)
                close(c->fd);
        free(c->out);
        c->out = NULL;
        c->fd = c->watch = -1;
        H.n_open--;
        sweep_arm();
}

/* Send what is left; true when all of it went (or the peer is gone). */
static bool conn_flush(struct conn *c)
{
        while (c->out_off < c->out_len) {
                ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);

                if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                        return false;
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        return true;
                c->out_off += (size_t)w;
        }
        return true;
}

static char *response(int status, bool head_only, size_t *ret_len)
{
        char *body = NULL, *out = NULL;
        const char *type = "text/plain; charset=utf-8";
        int n;

        if (status == 200) {
                body = hvpd_metrics_text(H.d);
                if (!body)
                        status = 500;
                else
                        type = "text/plain; version=0.0.4; charset=utf-8";
        }
        if (status != 200 && asprintf(&body, "%d %s\n", status, reason_phrase(status)) < 0)
                return NULL;
        n = asprintf(&out,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: close\r\n\r\n%s",
                     status, reason_phrase(status), type, strlen(body), status == 405 ? "Allow: GET, HEAD\r\n" : "",
                     head_only ? "" : body);
        free(body);
        if (n < 0)
                return NULL;
        *ret_len = (size_t)n;
        return out;
}

static void conn_answer(struct conn *c, int status, bool head_only)
{
        c->out = response(status, head_only, &c->out_len);
        c->out_off = 0;
        if (!c->out || conn_flush(c)) {
                conn_close(c);
                return;
        }
        virEventUpdateHandle(c->watch, VIR_EVENT_HANDLE_WRITABLE);
}

static void on_conn(int watch, int fd, int events, void *opaque)
{
        struct conn *c = NULL;
        bool head_only;
        ssize_t n;
        int status;

        (void)opaque;
        for (size_t i = 0; i < HVPD_HTTP_MAX_CONNS; i++)
                if (H.c[i].fd == fd && H.c[i].watch == watch)
                        c = &H.c[i];
        if (!c)
                return;
        if (c->out) {                           /* answering */
                if (conn_flush(c) || (events & (VIR_EVENT_HANDLE_ERROR | VIR_EVENT_HANDLE_HANGUP)))
                        conn_close(c);
                return;
        }
        n = recv(fd, c->in + c->in_len, sizeof(c->in) - c->in_len, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                return;
        if (n <= 0) {                           /* gone before its request was whole */
                conn_close(c);
                return;
        }
        c->in_len += (size_t)n;
        status = hvpd_http_parse(c->in, c->in_len, &head_only);
        if (status)
                conn_answer(c, status, head_only);
}

static void on_accept(int watch, int fd, int events, void *opaque)
{
        (void)watch;
        (void)events;
        (void)opaque;
        for (int k = 0; k < MAX_ACCEPTS; k++) {
                struct conn *c = NULL;
                int s = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (s < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)) {
                        /* the connection stays queued and the listener readable: not a busy loop */
                        H.accept_paused = true;
                        virEventUpdateHandle(H.watch, 0);
                        sweep_arm();
                }
                if (s < 0)
                        return;
                for (size_t i = 0; i < HVPD_HTTP_MAX_CONNS && !c; i++)
                        if (H.c[i].fd < 0)
                                c = &H.c[i];
                if (!c) {
                        static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                                   "Connection: close\r\n\r\n";

                        (void)!send(s, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
                        close(s);
                        continue;
                }
                c->watch = virEventAddHandle(s, VIR_EVENT_HANDLE_READABLE, on_conn, (void *)(intptr_t)s, close_fd);
                if (c->watch < 0) {
                        close(s);
                        continue;
                }
                c->fd = s;
                c->in_len = 0;
                c->out = NULL;
                c->deadline_ms = now_ms() + hvpd_http_timeout_ms;
                H.n_open++;
                sweep_arm();
        }
}

/* Connections past their deadline: a 408 if nothing was answered yet (best effort), closed. */
static void on_sweep(int timer, void *opaque)
{
        int64_t now = now_ms();

        (void)timer;
        (void)opaque;
        if (H.accept_paused) {
                H.accept_paused = false;
                virEventUpdateHandle(H.watch, VIR_EVENT_HANDLE_READABLE);
                sweep_arm();
        }
        for (size_t i = 0; i < HVPD_HTTP_MAX_CONNS; i++) {
                struct conn *c = &H.c[i];

                if (c->fd < 0 || now < c->deadline_ms)
                        continue;
                if (!c->out) {
                        c->out = response(408, false, &c->out_len);
                        c->out_off = 0;
                        if (c->out)
                                conn_flush(c);
                }
                conn_close(c);
        }
}

/* Bind d->opt.metrics_listen and serve it from the event loop (registered already). */
int hvpd_http_start(struct hvpd *d, char *why, size_t why_size)
{
        struct sockaddr_storage ss, bound;
        socklen_t len, blen = sizeof(bound);
        char host[INET6_ADDRSTRLEN];
        int one = 1, r;

        r = hvpd_http_listen_parse(d->opt.metrics_listen, d->opt.metrics_remote, &ss, &len, why, why_size);
        if (r < 0)
                return r;
        for (size_t i = 0; i < HVPD_HTTP_MAX_CONNS; i++)
                H.c[i].fd = H.c[i].watch = -1;
        H.d = d;
        H.fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (H.fd < 0)
                goto fail;
        setsockopt(H.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(H.fd, (struct sockaddr *)&ss, len) < 0 || listen(H.fd, 16) < 0 ||
            getsockname(H.fd, (struct sockaddr *)&bound, &blen) < 0)
                goto fail;
        if (bound.ss_family == AF_INET) {
                inet_ntop(AF_INET, &((struct sockaddr_in *)&bound)->sin_addr, host, sizeof(host));
                snprintf(d->metrics_addr, sizeof(d->metrics_addr), "%s:%u", host,
                         ntohs(((struct sockaddr_in *)&bound)->sin_port));
        } else {
                inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&bound)->sin6_addr, host, sizeof(host));
                snprintf(d->metrics_addr, sizeof(d->metrics_addr), "[%s]:%u", host,
                         ntohs(((struct sockaddr_in6 *)&bound)->sin6_port));
        }
        H.timer = virEventAddTimeout(-1, on_sweep, NULL, NULL);
        H.watch = virEventAddHandle(H.fd, VIR_EVENT_HANDLE_READABLE, on_accept, NULL, NULL);
        if (H.timer < 0 || H.watch < 0) {
                snprintf(why, why_size, "--metrics-listen %s: the event loop refused it", d->opt.metrics_listen);
                hvpd_http_stop();
                return -EIO;
        }
        return 0;
fail:
        r = -errno;
        snprintf(why, why_size, "--metrics-listen %s: %s", d->opt.metrics_listen, strerror(errno));
        if (H.fd >= 0)
                close(H.fd);
        H.fd = -1;
        return r;
}

void hvpd_http_stop(void)
{
        if (!H.d)
                return;
        for (size_t i = 0; i < HVPD_HTTP_MAX_CONNS; i++)
                conn_close(&H.c[i]);
        if (H.watch >= 0)
                virEventRemoveHandle(H.watch);
        if (H.timer >= 0)
                virEventRemoveTimeout(H.timer);
        if (H.fd >= 0)
                close(H.fd);
        H.fd = H.watch = H.timer = -1;
}

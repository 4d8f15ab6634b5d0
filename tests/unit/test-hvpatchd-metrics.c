/*
 * hvpatchd's metrics (daemon/status.c, daemon/http.c): the exposition text (label
 * escaping, UTF-8, the histogram), checked by promtool where it is installed (Debian's
 * prometheus package; required under CI=true); the HTTP request parser on good and
 * hostile heads; the --metrics-listen address rules; and the server itself on libvirt's
 * event loop (a loop thread here, as the daemon's main thread): a scrape, an oversized
 * head, a head that never ends, a slowloris sender and more connections than allowed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libvirt/libvirt.h>

#include <hvpatch/catalog.h>

#include "daemon/hvpatchd.h"
#include "tests/unit/prereq.h"

static struct hvpd D;

static void domain(const char *name, const char *verdict, unsigned applied, unsigned tampered, unsigned health)
{
        struct hvpd_domain *m = &D.domains[D.n_domains++];

        memset(m, 0, sizeof(*m));
        snprintf(m->name, sizeof(m->name), "%s", name);
        snprintf(m->verdict, sizeof(m->verdict), "%s", verdict);
        m->n_applied = applied;
        m->applies = applied;
        m->tampered = tampered;
        m->health_failures = health;
        m->last_pause_ms = 2.5;
        m->kernel_up_s = 11.25;
}

static void observe(double seconds, bool attempted, size_t dom, bool boot, int exit_class)
{
        struct hvp_sync_step step = { .attempted = attempted };
        struct hvp_sync_result res = { .steps = &step, .n_steps = 1, .exit_class = exit_class };

        hvpd_apply_observe(&D, &D.domains[dom], boot, &res, seconds);
}

static int setup_daemon(void **state)
{
        (void)state;
        memset(&D, 0, sizeof(D));
        pthread_mutex_init(&D.lock, NULL);
        D.started = 1700000000;
        domain("plain", "allow", 1, 2, 3);
        domain("q\"uo\\te\nnl", "reboot-required", 0, 0, 0);
        domain("bad\xff" "utf8\xc0\xaf" "end\xe2\x82", "refuse", 0, 0, 0);
        domain("caf\xc3\xa9-\xf0\x9f\x90\xa7", "unmanaged", 0, 0, 0);
        domain("booting", "", 0, 0, 0);         /* no job done yet: no verdict */
        D.domains[4].last_pause_ms = 0;
        D.domains[4].kernel_up_s = 0;
        return 0;
}

static bool have(const char *text, const char *line)
{
        char *want;
        bool r;

        assert_true(asprintf(&want, "\n%s\n", line) > 0);
        r = strstr(text, want) != NULL;
        free(want);
        return r;
}

/* promtool check metrics on text: its exit status (0 clean), or -1 without promtool. */
static int promtool(const char *text, char *out, size_t out_size)
{
        int in[2], back[2], st;
        size_t len = strlen(text), got = 0;
        pid_t pid;

        if (system("command -v promtool >/dev/null 2>&1") != 0)
                return -1;
        assert_int_equal(pipe(in), 0);
        assert_int_equal(pipe(back), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                dup2(in[0], 0);
                dup2(back[1], 1);
                dup2(back[1], 2);
                close(in[1]);
                close(back[0]);
                execlp("promtool", "promtool", "check", "metrics", (char *)NULL);
                _exit(127);
        }
        close(in[0]);
        close(back[1]);
        assert_int_equal(write(in[1], text, len), (ssize_t)len);
        close(in[1]);
        for (ssize_t n; got + 1 < out_size && (n = read(back[0], out + got, out_size - 1 - got)) > 0;)
                got += (size_t)n;
        out[got] = '\0';
        close(back[0]);
        assert_int_equal(waitpid(pid, &st, 0), pid);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void test_exposition(void **state)
{
        char *text, out[4096];
        int r;

        (void)state;
        observe(0.003, true, 0, false, 0);
        observe(0.2, true, 0, false, 0);
        observe(100, true, 0, false, 4);        /* a failed apply is an apply's latency too */
        observe(0.05, false, 0, true, 0);       /* a sync that changed nothing: not an apply */
        /* after a boot 20 s ago whose kernel was up 11.25 s after it: 8.75 s without the patch */
        clock_gettime(CLOCK_MONOTONIC, &D.domains[1].boot_event);
        D.domains[1].boot_event.tv_sec -= 20;
        observe(0.3, true, 1, true, 0);
        /* a boot whose apply failed: not patched, no figure */
        clock_gettime(CLOCK_MONOTONIC, &D.domains[2].boot_event);
        observe(0.0, true, 2, true, 4);
        text = hvpd_metrics_text(&D);
        assert_non_null(text);

        assert_true(have(text, "hvpatch_domain_compliance{domain=\"plain\",verdict=\"allow\"} 1"));
        assert_true(have(text, "hvpatch_domain_compliance{domain=\"plain\",verdict=\"refuse\"} 0"));
        assert_true(have(text, "hvpatch_domain_applied_patches{domain=\"plain\"} 1"));
        assert_true(have(text, "hvpatch_domain_tamper_events_total{domain=\"plain\"} 2"));
        assert_true(have(text, "hvpatch_health_failures_total{domain=\"plain\"} 3"));
        assert_true(have(text, "hvpatch_domain_last_pause_seconds{domain=\"plain\"} 0.0025"));
        assert_true(have(text, "hvpatch_domain_kernel_up_seconds{domain=\"plain\"} 11.25"));
        assert_null(strstr(text, "hvpatch_domain_kernel_up_to_patched_seconds{domain=\"plain\""));
        assert_null(strstr(text, "hvpatch_domain_kernel_up_to_patched_seconds{domain=\"bad"));
        {
                const char *p = strstr(text, "\nhvpatch_domain_kernel_up_to_patched_seconds{domain=\"q");
                double v;

                assert_non_null(p);
                assert_int_equal(sscanf(strchr(p, '}') + 1, "%lf", &v), 1);
                assert_true(v >= 8.75 && v < 9.75);
        }
        /* quote, backslash and newline escaped */
        assert_true(have(text, "hvpatch_domain_compliance{domain=\"q\\\"uo\\\\te\\nnl\",verdict=\"reboot-required\"} 1"));
        /* invalid UTF-8 (a stray byte, an overlong '/', a cut sequence) replaced by '?' as in
         * `hvpatch report --prometheus` (common/escape.c), valid kept */
        assert_true(have(text, "hvpatch_domain_compliance{domain=\"bad?utf8??end??\",verdict=\"refuse\"} 1"));
        assert_true(have(text, "hvpatch_domain_compliance{domain=\"caf\xc3\xa9-\xf0\x9f\x90\xa7\",verdict=\"unmanaged\"} 1"));
        /* a domain without a job done: counters yes, verdict, patches, pause, kernel-up no */
        assert_true(have(text, "hvpatch_domain_tamper_events_total{domain=\"booting\"} 0"));
        assert_null(strstr(text, "hvpatch_domain_compliance{domain=\"booting\""));
        assert_null(strstr(text, "hvpatch_domain_applied_patches{domain=\"booting\""));
        assert_null(strstr(text, "hvpatch_domain_last_pause_seconds{domain=\"booting\""));
        assert_null(strstr(text, "hvpatch_domain_kernel_up_seconds{domain=\"booting\""));
        /* the histogram: cumulative buckets, +Inf = count, the sum */
        assert_true(have(text, "# TYPE hvpatch_apply_duration_seconds histogram"));
        assert_true(have(text, "hvpatch_apply_duration_seconds_bucket{le=\"0.005\"} 2"));
        assert_true(have(text, "hvpatch_apply_duration_seconds_bucket{le=\"0.1\"} 2"));
        assert_true(have(text, "hvpatch_apply_duration_seconds_bucket{le=\"0.25\"} 3"));
        assert_true(have(text, "hvpatch_apply_duration_seconds_bucket{le=\"0.5\"} 4"));
        assert_true(have(text, "hvpatch_apply_duration_seconds_bucket{le=\"60\"} 4"));
        assert_true(have(text, "hvpatch_apply_duration_seconds_bucket{le=\"+Inf\"} 5"));
        assert_true(have(text, "hvpatch_apply_duration_seconds_count 5"));
        assert_true(have(text, "hvpatch_apply_duration_seconds_sum 100.503"));
        assert_true(have(text, "hvpatch_daemon_start_time_seconds 1700000000"));
        /* every line a comment or NAME{...} VALUE: nothing else leaks in */
        for (const char *l = text; *l; l = strchr(l, '\n') + 1) {
                assert_non_null(strchr(l, '\n'));
                if (*l != '#')
                        assert_true(strncmp(l, "hvpatch_", 8) == 0);
        }

        r = promtool(text, out, sizeof(out));
        if (r < 0) {
                free(text);
                hvp_test_require(false, "promtool not found (apt-get install prometheus; images/setup-host.sh)");
        }
        assert_int_equal(r, 0);
        /* and promtool can fail: an unescaped quote in a label value */
        assert_int_not_equal(promtool("# TYPE x gauge\nx{domain=\"a\"b\"} 1\n", out, sizeof(out)), 0);
        free(text);
}

static void expect_parse(const char *req, size_t len, int want, bool want_head)
{
        bool head = !want_head;
        int got = hvpd_http_parse(req, len, &head);

        if (got != want)
                fail_msg("%.60s...: %d, expected %d", req, got, want);
        if (want == 200)
                assert_int_equal(head, want_head);
}

#define P(req, want) expect_parse(req, sizeof(req) - 1, want, false)

static void test_parse(void **state)
{
        static const char good[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9477\r\nAccept: */*\r\n\r\n";
        char *big;

        (void)state;
        P("GET /metrics HTTP/1.1\r\n\r\n", 200);
        P("GET /metrics HTTP/1.0\r\n\r\n", 200);
        P("GET /metrics?x=1&y HTTP/1.1\r\n\r\n", 200);
        P("GET /metrics HTTP/1.1\n\n", 200);                    /* bare LF line ends */
        expect_parse("HEAD /metrics HTTP/1.1\r\n\r\n", 26, 200, true);
        P("GET / HTTP/1.1\r\n\r\n", 404);
        P("GET /metricsX HTTP/1.1\r\n\r\n", 404);
        P("GET /metric HTTP/1.1\r\n\r\n", 404);
        P("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405);
        P("DELETE / HTTP/1.1\r\n\r\n", 405);
        P("GET /metrics HTTP/2.0\r\n\r\n", 505);
        P("GET /metrics HTTP/1.1\r\n", 0);                      /* the head goes on */
        P("GET /metrics HTTP/1.1\r\nHost: x\r\n", 0);
        P("GET /metr", 0);                                      /* the request line goes on */
        P("", 0);
        /* malformed request lines are refused at once, before the head ends */
        P("GET /metrics\r\n", 400);                             /* HTTP/0.9 */
        P("get /metrics HTTP/1.1\r\n", 400);
        P("GET  /metrics HTTP/1.1\r\n", 400);
        P("GET /metrics  HTTP/1.1\r\n", 400);
        P("GET metrics HTTP/1.1\r\n", 400);
        P("GET /metrics HTTP/1.1 x\r\n", 400);
        P("GET /metrics HTTX/1.1\r\n", 400);
        P("GET /met\x01rics HTTP/1.1\r\n", 400);
        P("\r\n\r\n", 400);
        P(" GET /metrics HTTP/1.1\r\n\r\n", 400);
        P("GET /metrics HTTP/1.1\r\nHost: a\0b\r\n\r\n", 400);  /* a NUL anywhere in the head */
        P("GET /metrics HTTP/1.1\r\nHost: a\0b\r\n", 0);        /* ...judged when the head ends */
        P("GET /metrics HTTP/2.1\r\nHost: a\0b\r\n\r\n", 505); /* a verdict due is final (fuzz-http) */
        P("GET /metrics HTTP/1.1\r\n\r\n\0\0", 200);           /* bytes after the head do not count */
        /* every proper prefix of a good request: incomplete, never a verdict */
        for (size_t n = 0; n < sizeof(good) - 1; n++)
                expect_parse(good, n, 0, false);
        expect_parse(good, sizeof(good) - 1, 200, false);
        /* too long: a request line or a head that does not end within the bound */
        big = malloc(2 * HVPD_HTTP_MAX_REQUEST);
        assert_non_null(big);
        memset(big, 'A', 2 * HVPD_HTTP_MAX_REQUEST);
        expect_parse(big, HVPD_HTTP_MAX_REQUEST - 1, 0, false);
        expect_parse(big, HVPD_HTTP_MAX_REQUEST, 431, false);
        expect_parse(big, 2 * HVPD_HTTP_MAX_REQUEST, 431, false);
        memcpy(big, "GET /metrics HTTP/1.1\r\nX: ", 26);
        expect_parse(big, HVPD_HTTP_MAX_REQUEST - 1, 0, false);
        expect_parse(big, HVPD_HTTP_MAX_REQUEST, 431, false);
        /* a complete head past the bound is not looked at beyond it */
        memcpy(big + HVPD_HTTP_MAX_REQUEST + 10, "\r\n\r\n", 4);
        expect_parse(big, HVPD_HTTP_MAX_REQUEST + 14, 431, false);
        free(big);
}

static void expect_listen(const char *spec, bool remote, int want, int family, const char *addr, unsigned port)
{
        struct sockaddr_storage ss;
        socklen_t len = 0;
        char why[512] = "", host[INET6_ADDRSTRLEN] = "";
        int r = hvpd_http_listen_parse(spec, remote, &ss, &len, why, sizeof(why));

        if (r != want)
                fail_msg("--metrics-listen %s: %d (%s), expected %d", spec, r, why, want);
        if (r < 0) {
                assert_true(why[0]);
                return;
        }
        assert_int_equal(ss.ss_family, family);
        if (family == AF_INET) {
                assert_int_equal(len, sizeof(struct sockaddr_in));
                inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof(host));
                assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), port);
        } else {
                assert_int_equal(len, sizeof(struct sockaddr_in6));
                inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof(host));
                assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), port);
        }
        assert_string_equal(host, addr);
}

static void test_listen_spec(void **state)
{
        (void)state;
        expect_listen("9477", false, 0, AF_INET, "127.0.0.1", 9477);
        expect_listen(":9477", false, 0, AF_INET, "127.0.0.1", 9477);
        expect_listen("127.0.0.1:0", false, 0, AF_INET, "127.0.0.1", 0);
        expect_listen("127.1.2.3:65535", false, 0, AF_INET, "127.1.2.3", 65535);
        expect_listen("[::1]:80", false, 0, AF_INET6, "::1", 80);
        expect_listen("[::ffff:127.0.0.1]:80", false, 0, AF_INET6, "::ffff:127.0.0.1", 80);
        /* not loopback: refused unless asked for */
        expect_listen("0.0.0.0:9477", false, -EPERM, 0, NULL, 0);
        expect_listen("192.0.2.1:9477", false, -EPERM, 0, NULL, 0);
        expect_listen("[::]:9477", false, -EPERM, 0, NULL, 0);
        expect_listen("[::ffff:10.0.0.1]:9477", false, -EPERM, 0, NULL, 0);
        expect_listen("0.0.0.0:9477", true, 0, AF_INET, "0.0.0.0", 9477);
        expect_listen("[2001:db8::1]:1", true, 0, AF_INET6, "2001:db8::1", 1);
        /* malformed */
        expect_listen("localhost:9477", false, -EINVAL, 0, NULL, 0);
        expect_listen("::1:80", false, -EINVAL, 0, NULL, 0);
        expect_listen("127.0.0.1:", false, -EINVAL, 0, NULL, 0);
        expect_listen("127.0.0.1:65536", false, -EINVAL, 0, NULL, 0);
        expect_listen("127.0.0.1:-1", false, -EINVAL, 0, NULL, 0);
        expect_listen("127.0.0.1:+80", false, -EINVAL, 0, NULL, 0);
        expect_listen("127.0.0.1:80x", false, -EINVAL, 0, NULL, 0);
        expect_listen("127.0.0.1:99999999999999999999", false, -EINVAL, 0, NULL, 0);
        expect_listen("", false, -EINVAL, 0, NULL, 0);
        expect_listen("[::1:80", false, -EINVAL, 0, NULL, 0);
        expect_listen("[0000:0000:0000:0000:0000:0000:0000:0000:0001]:80", false, -EINVAL, 0, NULL, 0);
}

/* --- the server on the event loop ------------------------------------------------------ */

static unsigned short server_port;
static int fds_at_start;

/* Descriptors this process has open: the server closes every connection's. */
static int count_fds(void)
{
        int n = 0;
        FILE *p = popen("ls /proc/$PPID/fd | wc -l", "r");

        assert_non_null(p);
        assert_int_equal(fscanf(p, "%d", &n), 1);
        pclose(p);
        return n;
}

static pid_t loop_tid;

static void *loop_thread(void *arg)
{
        (void)arg;
        loop_tid = gettid();
        for (;;)
                virEventRunDefaultImpl();
        return NULL;
}

static int setup_server(void **state)
{
        static pthread_t t;
        char why[512] = "";
        const char *colon;

        setup_daemon(state);
        if (virEventRegisterDefaultImpl() < 0)
                return -1;
        hvpd_http_timeout_ms = 600;
        D.opt.metrics_listen = "127.0.0.1:0";
        if (hvpd_http_start(&D, why, sizeof(why)) < 0) {
                fprintf(stderr, "hvpd_http_start: %s\n", why);
                return -1;
        }
        colon = strrchr(D.metrics_addr, ':');
        if (strncmp(D.metrics_addr, "127.0.0.1:", 10) != 0 || !colon)
                return -1;
        server_port = (unsigned short)atoi(colon + 1);
        if (!server_port)
                return -1;
        fds_at_start = count_fds();
        return pthread_create(&t, NULL, loop_thread, NULL) == 0 ? 0 : -1;
}

static double now_s(void)
{
        struct timespec t;

        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int dial(void)
{
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(server_port) };
        struct timeval tv = { .tv_sec = 10 };
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_true(s >= 0);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(connect(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        return s;
}

/* Everything the server sends until it closes (at most size - 1 bytes), NUL-terminated. */
static size_t read_all(int s, char *buf, size_t size)
{
        size_t got = 0;

        for (;;) {
                ssize_t n = recv(s, buf + got, size - 1 - got, 0);

                if (n < 0 && errno == ECONNRESET)
                        break;
                assert_true(n >= 0);            /* not the 10 s receive timeout: the server closes */
                if (n == 0 || got + (size_t)n == size - 1) {
                        got += (size_t)n;
                        break;
                }
                got += (size_t)n;
        }
        buf[got] = '\0';
        return got;
}

static void send_all(int s, const char *p)
{
        assert_int_equal(send(s, p, strlen(p), MSG_NOSIGNAL), (ssize_t)strlen(p));
}

static void test_server_scrape(void **state)
{
        static char buf[65536];
        char *text = hvpd_metrics_text(&D), *body, want_len[64];
        int s;

        (void)state;
        assert_non_null(text);
        s = dial();
        send_all(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        read_all(s, buf, sizeof(buf));
        close(s);
        assert_true(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
        assert_non_null(strstr(buf, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
        snprintf(want_len, sizeof(want_len), "\r\nContent-Length: %zu\r\n", strlen(text));
        assert_non_null(strstr(buf, want_len));
        body = strstr(buf, "\r\n\r\n");
        assert_non_null(body);
        assert_string_equal(body + 4, text);    /* the same text as the metrics file */
        free(text);

        s = dial();
        send_all(s, "HEAD /metrics HTTP/1.0\r\n\r\n");
        read_all(s, buf, sizeof(buf));
        close(s);
        assert_true(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
        assert_true(strlen(strstr(buf, "\r\n\r\n")) == 4);      /* no body */

        s = dial();
        send_all(s, "PUT /metrics HTTP/1.1\r\n\r\n");
        read_all(s, buf, sizeof(buf));
        close(s);
        assert_true(strncmp(buf, "HTTP/1.1 405 ", 13) == 0);
        assert_non_null(strstr(buf, "\r\nAllow: GET, HEAD\r\n"));

        s = dial();
        send_all(s, "GET /api HTTP/1.1\r\n\r\n");
        read_all(s, buf, sizeof(buf));
        close(s);
        assert_true(strncmp(buf, "HTTP/1.1 404 ", 13) == 0);
}

static void test_server_hostile(void **state)
{
        static char buf[65536], junk[64 * 1024];
        int s, held[HVPD_HTTP_MAX_CONNS];
        double t0;

        (void)state;
        /* a huge request: 431 after the bound, the connection closed */
        memset(junk, 'A', sizeof(junk));
        s = dial();
        (void)!send(s, junk, 2 * HVPD_HTTP_MAX_REQUEST, MSG_NOSIGNAL);
        read_all(s, buf, sizeof(buf));
        close(s);
        assert_true(strncmp(buf, "HTTP/1.1 431 ", 13) == 0);

        /* a head that never ends (no blank line, no CRLF at all): 408 at the deadline */
        s = dial();
        send_all(s, "GET /metrics HTTP/1.1");
        t0 = now_s();
        read_all(s, buf, sizeof(buf));
        close(s);
        assert_true(strncmp(buf, "HTTP/1.1 408 ", 13) == 0);
        assert_true(now_s() - t0 >= 0.5);       /* not before its deadline (600 ms) */

        /* slowloris: one byte every 50 ms keeps the connection busy, not open: cut at the deadline */
        s = dial();
        t0 = now_s();
        {
                const char *slow = "GET /metrics HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
                bool cut = false;

                for (const char *p = slow; *p && !cut; p++) {
                        struct pollfd pfd = { .fd = s, .events = POLLIN };

                        if (send(s, p, 1, MSG_NOSIGNAL) != 1 || poll(&pfd, 1, 50) == 1)
                                cut = true;
                }
                assert_true(cut);
        }
        read_all(s, buf, sizeof(buf));
        close(s);
        assert_true(strncmp(buf, "HTTP/1.1 408 ", 13) == 0);

        /* connections beyond the bound: answered 503 and closed at once, long before the
         * connections that fill the table time out (30 s for these) */
        hvpd_http_timeout_ms = 30000;
        for (size_t i = 0; i < HVPD_HTTP_MAX_CONNS; i++)
                held[i] = dial();
        usleep(100 * 1000);
        s = dial();
        t0 = now_s();
        read_all(s, buf, sizeof(buf));
        close(s);
        assert_true(strncmp(buf, "HTTP/1.1 503 ", 13) == 0);
        assert_true(now_s() - t0 < 10);         /* not held until the others time out */
        hvpd_http_timeout_ms = 600;
        for (size_t i = 0; i < HVPD_HTTP_MAX_CONNS; i++)
                close(held[i]);
        usleep(200 * 1000);

        /* and the server still answers */
        s = dial();
        send_all(s, "GET /metrics HTTP/1.1\r\n\r\n");
        read_all(s, buf, sizeof(buf));
        close(s);
        assert_true(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
        usleep(300 * 1000);
        assert_int_equal(count_fds(), fds_at_start);     /* no connection's descriptor is left open */
}

/* CPU seconds the event loop's thread has used, from its stat file open as fd. */
static double loop_cpu(int fd)
{
        char buf[1024], *p;
        unsigned long ut, st;
        ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

        assert_true(n > 0);
        buf[n] = '\0';
        p = strrchr(buf, ')');
        assert_non_null(p);
        assert_int_equal(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st), 2);
        return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Out of descriptors: the server cannot accept, and must not spin on a listener that stays readable. */
static void test_server_emfile(void **state)
{
        static char buf[65536];
        struct rlimit old, low;
        char path[64];
        double cpu0;
        int s, fd, stat_fd;

        (void)state;
        snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)loop_tid);
        stat_fd = open(path, O_RDONLY | O_CLOEXEC);
        assert_true(stat_fd >= 0);
        assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
        fd = dup(0);                            /* the lowest free descriptor: how many are open */
        assert_true(fd >= 0);
        close(fd);
        s = dial();                             /* takes fd */
        low = old;
        low.rlim_cur = (rlim_t)fd + 1;          /* nothing above s: the server's accept fails */
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
        send_all(s, "GET /metrics HTTP/1.1\r\n\r\n");
        cpu0 = loop_cpu(stat_fd);
        usleep(1500 * 1000);
        assert_true(loop_cpu(stat_fd) - cpu0 < 0.5);   /* a busy loop would take most of 1.5 s */
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
        close(stat_fd);
        read_all(s, buf, sizeof(buf));          /* accepted once descriptors are back */
        close(s);
        assert_true(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup(test_exposition, setup_daemon),
                cmocka_unit_test(test_parse),
                cmocka_unit_test(test_listen_spec),
        };
        const struct CMUnitTest server[] = {
                cmocka_unit_test(test_server_scrape),
                cmocka_unit_test(test_server_hostile),
                cmocka_unit_test(test_server_emfile),
        };
        int failed = cmocka_run_group_tests(tests, NULL, NULL);

        failed += cmocka_run_group_tests_name("server", server, setup_server, NULL);
        return hvp_test_exit(failed);
}

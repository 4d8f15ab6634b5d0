/*
 * hvpatchd: see hvpatchd.h and docs/operations.md ("hvpatchd"). Runs in the foreground
 * (systemd Type=notify); the main thread runs libvirt's event loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <systemd/sd-daemon.h>

#include <hvpatch/apply.h>
#include <hvpatch/hvpatch.h>

#include "daemon/hvpatchd.h"

#define DEFAULT_SOCKET "/run/hvpatchd.sock"
#define DEFAULT_INTERVAL 60u
#define DEFAULT_BOOT_TIMEOUT 300u
#define DEFAULT_WORKERS 2u
#define DEFAULT_HEALTH 10u             /* seconds of health gate after an apply */
#define MAX_WORKERS 16u
#define RECONNECT_MS 5000

static struct hvpd D;
static virConnectPtr conn;
static int cb_lifecycle = -1, cb_reboot = -1;
static bool conn_lost;

static void usage(FILE *f)
{
        fprintf(f,
                "Usage: hvpatchd [OPTIONS]\n"
                "Keeps every running guest of the host at its desired patch state: the highest\n"
                "sequence per series in the catalog that the policy allows for the guest's running\n"
                "kernel (see 'hvpatch plan'). A guest that starts or reboots is synced once its\n"
                "kernel is up (its own system_state reads SYSTEM_RUNNING); every --verify-interval\n"
                "each guest's applied patches are compared with memory: one memory lost is audited\n"
                "as tampered and applied again. Runs in the foreground (systemd Type=notify);\n"
                "SIGHUP reloads the policy and the catalog, SIGTERM finishes the work in progress\n"
                "(a pause window is never cut short) and exits.\n\n"
                "Options:\n"
                "  --catalog DIR            the catalog folder (default %s)\n"
                "  --policy FILE            the policy (default %s)\n"
                "  --verify-interval SECS   the periodic check (default %u; 0: none)\n"
                "  --boot-timeout SECS      how long a booting guest may take to be up (default %u)\n"
                "  --workers N              guests worked on at once (default %u, at most %u)\n"
                "  --tamper repair|report   re-apply a patch memory lost (default), or only report it\n"
                "  --health SECS            the health gate after every apply (default %u; 0: none):\n"
                "                           a failing patch is reverted and marked bad ('hvpatch bad')\n"
                "  --socket PATH            the status socket (default %s; 'hvpatch daemon-status')\n"
                "  --metrics-file FILE      Prometheus text, rewritten after every job\n"
                "  --metrics-listen ADDR:PORT  the same text over HTTP (GET /metrics); ADDR is numeric,\n"
                "                           IPv6 in brackets; PORT alone or :PORT: 127.0.0.1; 0: any free port\n"
                "  --metrics-remote         allow a non-loopback --metrics-listen address (no TLS, no\n"
                "                           authentication: firewall it)\n"
                "  --state-dir DIR          hvpatch's state (default $HVPATCH_STATE_DIR or %s)\n"
                "  --domains GLOB           only the domains whose name matches (fnmatch; default all)\n"
                "  -c, --connect URI        libvirt connection (default qemu:///system)\n"
                "  -v, --verbose            log to stderr too (syslog always); -vv: with debug detail\n"
                "  -h, --help\n",
                HVP_CATALOG_DEFAULT_DIR, HVP_POLICY_DEFAULT_PATH, DEFAULT_INTERVAL, DEFAULT_BOOT_TIMEOUT,
                DEFAULT_WORKERS, MAX_WORKERS, DEFAULT_HEALTH, DEFAULT_SOCKET, HVP_STATE_DIR);
}

static bool parse_uint(const char *s, unsigned max, unsigned *ret)
{
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno || end == s || *end || v > max || s[0] == '-')
                return false;
        *ret = (unsigned)v;
        return true;
}

static int parse_args(int argc, char **argv)
{
        static const struct option longopts[] = {
                { "catalog", required_argument, NULL, 'C' },
                { "policy", required_argument, NULL, 'P' },
                { "verify-interval", required_argument, NULL, 'I' },
                { "boot-timeout", required_argument, NULL, 'B' },
                { "workers", required_argument, NULL, 'W' },
                { "tamper", required_argument, NULL, 'T' },
                { "health", required_argument, NULL, 'H' },
                { "socket", required_argument, NULL, 'S' },
                { "metrics-file", required_argument, NULL, 'M' },
                { "metrics-listen", required_argument, NULL, 'L' },
                { "metrics-remote", no_argument, NULL, 'R' },
                { "state-dir", required_argument, NULL, 'D' },
                { "domains", required_argument, NULL, 'G' },
                { "connect", required_argument, NULL, 'c' },
                { "verbose", no_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },
                { 0 },
        };
        struct hvpd_options *o = &D.opt;
        unsigned verbose = 0;
        int ch;

        *o = (struct hvpd_options){
                .catalog_dir = HVP_CATALOG_DEFAULT_DIR, .policy_path = HVP_POLICY_DEFAULT_PATH,
                .socket_path = DEFAULT_SOCKET, .verify_interval = DEFAULT_INTERVAL,
                .boot_timeout = DEFAULT_BOOT_TIMEOUT, .workers = DEFAULT_WORKERS, .repair = true,
                .health_seconds = DEFAULT_HEALTH,
        };
        while ((ch = getopt_long(argc, argv, "c:vh", longopts, NULL)) != -1) {
                switch (ch) {
                case 'C': o->catalog_dir = optarg; break;
                case 'P': o->policy_path = optarg; break;
                case 'S': o->socket_path = optarg; break;
                case 'M': o->metrics_file = optarg; break;
                case 'L': o->metrics_listen = optarg; break;
                case 'R': o->metrics_remote = true; break;
                case 'D': o->state_dir = optarg; break;
                case 'c': o->uri = optarg; break;
                case 'G': o->domains = optarg; break;
                case 'v': verbose++; break;
                case 'I':
                        if (!parse_uint(optarg, 86400 * 7, &o->verify_interval))
                                goto bad;
                        break;
                case 'B':
                        if (!parse_uint(optarg, 86400, &o->boot_timeout) || !o->boot_timeout)
                                goto bad;
                        break;
                case 'W':
                        if (!parse_uint(optarg, MAX_WORKERS, &o->workers) || !o->workers)
                                goto bad;
                        break;
                case 'H':
                        if (!parse_uint(optarg, HVP_HEALTH_MAX_SECONDS, &o->health_seconds))
                                goto bad;
                        break;
                case 'T':
                        if (strcmp(optarg, "repair") && strcmp(optarg, "report"))
                                goto bad;
                        o->repair = strcmp(optarg, "repair") == 0;
                        break;
                case 'h':
                        usage(stdout);
                        exit(0);
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "hvpatchd: unexpected argument '%s'\n", argv[optind]);
                return 2;
        }
        if (strlen(o->socket_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
                fprintf(stderr, "hvpatchd: --socket path too long\n");
                return 2;
        }
        if (o->metrics_listen) {       /* refused here, before anything starts */
                struct sockaddr_storage ss;
                socklen_t len;
                char why[512];

                if (hvpd_http_listen_parse(o->metrics_listen, o->metrics_remote, &ss, &len, why, sizeof(why)) < 0) {
                        fprintf(stderr, "hvpatchd: --metrics-listen %s\n", why);
                        return 2;
                }
        }
        hvpd_log_init(verbose);
        return 0;
bad:
        for (const struct option *l = longopts; l->name; l++)
                if (l->val == ch)
                        fprintf(stderr, "hvpatchd: bad value for --%s: '%s' (see --help)\n", l->name, optarg);
        return 2;
}

/* Library progress and debug messages: into the log at debug level, warnings above. */
static void lib_log(enum hvp_log_level level, const char *msg, void *userdata)
{
        (void)userdata;
        /* failures come back to the daemon, which logs them itself: the rest is detail */
        hvpd_log(level == HVP_LOG_WARNING ? LOG_WARNING : LOG_DEBUG, "%s", msg);
}

/* Audit lines: to LOG_AUTHPRIV like the CLI's, through one lock (syslog is shared by threads). */
static void audit_sink(int priority, const char *line, void *userdata)
{
        static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;

        (void)userdata;
        pthread_mutex_lock(&m);
        syslog(LOG_AUTHPRIV | (priority & 7), "%s", line);
        pthread_mutex_unlock(&m);
        hvpd_log(LOG_DEBUG, "audit: %s", line);
}

static void notify_status(void)
{
        size_t n;
        unsigned busy;

        pthread_mutex_lock(&D.lock);
        n = D.n_domains;
        busy = D.busy_workers;
        pthread_mutex_unlock(&D.lock);
        sd_notifyf(0, "STATUS=%zu domains tracked, %u being worked on", n, busy);
}

/* Every running domain, queued with why. */
static void enqueue_running(unsigned why)
{
        virDomainPtr *doms = NULL;
        int n;

        if (!conn)
                return;
        n = virConnectListAllDomains(conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
        if (n < 0) {
                hvpd_log(LOG_WARNING, "listing the running domains: %s", virGetLastErrorMessage());
                return;
        }
        for (int i = 0; i < n; i++) {
                hvpd_enqueue(&D, virDomainGetName(doms[i]), why);
                virDomainFree(doms[i]);
        }
        free(doms);
}

/* Is the domain one the daemon looks after (--domains)? The others are not even logged. */
static bool in_scope(virDomainPtr dom)
{
        return !D.opt.domains || fnmatch(D.opt.domains, virDomainGetName(dom), 0) == 0;
}

static int on_lifecycle(virConnectPtr c, virDomainPtr dom, int event, int detail, void *opaque)
{
        (void)c;
        (void)opaque;
        if (event != VIR_DOMAIN_EVENT_STARTED || !in_scope(dom))
                return 0;
        switch (detail) {
        case VIR_DOMAIN_EVENT_STARTED_BOOTED:
                hvpd_log(LOG_INFO, "%s: started", virDomainGetName(dom));
                hvpd_enqueue(&D, virDomainGetName(dom), HVPD_WHY_BOOT);
                break;
        default:        /* restored, from a snapshot, migrated in: the patches came with the memory */
                hvpd_log(LOG_INFO, "%s: started with its memory (restore, snapshot or migration): checked",
                         virDomainGetName(dom));
                hvpd_enqueue(&D, virDomainGetName(dom), HVPD_WHY_CHECK);
                break;
        }
        return 0;
}

static void on_reboot(virConnectPtr c, virDomainPtr dom, void *opaque)
{
        (void)c;
        (void)opaque;
        if (!in_scope(dom))
                return;
        hvpd_log(LOG_INFO, "%s: rebooted", virDomainGetName(dom));
        hvpd_enqueue(&D, virDomainGetName(dom), HVPD_WHY_BOOT);
}

static void on_close(virConnectPtr c, int reason, void *opaque)
{
        (void)c;
        (void)opaque;
        hvpd_log(LOG_WARNING, "libvirt connection closed (reason %d): reconnecting", reason);
        conn_lost = true;
}

static void disconnect(void)
{
        if (!conn)
                return;
        if (cb_lifecycle >= 0)
                virConnectDomainEventDeregisterAny(conn, cb_lifecycle);
        if (cb_reboot >= 0)
                virConnectDomainEventDeregisterAny(conn, cb_reboot);
        virConnectUnregisterCloseCallback(conn, on_close);
        virConnectClose(conn);
        conn = NULL;
        cb_lifecycle = cb_reboot = -1;
}

static int connect_libvirt(void)
{
        conn = virConnectOpen(D.opt.uri ? D.opt.uri : "qemu:///system");
        if (!conn) {
                hvpd_log(LOG_ERR, "cannot connect to %s: %s", D.opt.uri ? D.opt.uri : "qemu:///system",
                         virGetLastErrorMessage());
                return -1;
        }
        conn_lost = false;
        virConnectSetKeepAlive(conn, 5, 3);
        virConnectRegisterCloseCallback(conn, on_close, NULL, NULL);
        cb_lifecycle = virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                        VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), NULL, NULL);
        cb_reboot = virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_REBOOT,
                                                     VIR_DOMAIN_EVENT_CALLBACK(on_reboot), NULL, NULL);
        if (cb_lifecycle < 0 || cb_reboot < 0) {
                hvpd_log(LOG_ERR, "cannot register for domain events: %s", virGetLastErrorMessage());
                disconnect();
                return -1;
        }
        /* Whatever runs now: checked (events before we listened are not lost this way). */
        enqueue_running(HVPD_WHY_CHECK);
        return 0;
}

static void on_reconnect_timer(int timer, void *opaque)
{
        (void)timer;
        (void)opaque;
        if (!conn_lost && conn)
                return;
        disconnect();
        if (connect_libvirt() == 0)
                hvpd_log(LOG_NOTICE, "reconnected to libvirt");
}

static void on_check_timer(int timer, void *opaque)
{
        (void)timer;
        (void)opaque;
        pthread_mutex_lock(&D.lock);
        D.checks++;
        pthread_mutex_unlock(&D.lock);
        enqueue_running(HVPD_WHY_CHECK);
        notify_status();
}

static void reload(void)
{
        struct hvpd_config *c = NULL, *old;
        char why[1024] = "";

        sd_notify(0, "RELOADING=1");
        if (hvpd_config_load(&D, &c, why, sizeof(why)) < 0) {
                hvpd_log(LOG_ERR, "SIGHUP: %s: keeping the policy and catalog in force", why);
        } else {
                pthread_mutex_lock(&D.lock);
                old = D.config;
                D.config = c;
                hvpd_config_put(&D, old);
                pthread_mutex_unlock(&D.lock);
                hvpd_log(LOG_NOTICE, "SIGHUP: policy and catalog reloaded");
                enqueue_running(HVPD_WHY_CHECK);
        }
        sd_notify(0, "READY=1");
}

static void stop(void)
{
        pthread_mutex_lock(&D.lock);
        D.stopping = true;
        pthread_cond_broadcast(&D.work);
        pthread_cond_broadcast(&D.stop_cond);
        pthread_mutex_unlock(&D.lock);
}

static void on_signal(int watch, int fd, int events, void *opaque)
{
        struct signalfd_siginfo si;

        (void)watch;
        (void)events;
        (void)opaque;
        while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                if (si.ssi_signo == SIGHUP) {
                        reload();
                } else {
                        hvpd_log(LOG_NOTICE, "signal %u: finishing the work in progress, then exiting", si.ssi_signo);
                        sd_notify(0, "STOPPING=1");
                        stop();
                }
        }
}

/* The control socket: each connection gets the status as one JSON document, then EOF. */
static void on_control(int watch, int fd, int events, void *opaque)
{
        char *json;
        int c;

        (void)watch;
        (void)events;
        (void)opaque;
        c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
                return;
        json = hvpd_status_json(&D);
        if (json) {
                size_t len = strlen(json), off = 0;
                struct timeval tv = { .tv_sec = 2 };

                setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));  /* a stuck reader cannot stall us */
                while (off < len) {
                        ssize_t w = send(c, json + off, len - off, MSG_NOSIGNAL);

                        if (w <= 0)
                                break;
                        off += (size_t)w;
                }
                free(json);
        }
        close(c);
}

static int control_open(void)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        mode_t old;

        if (fd < 0)
                return -1;
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", D.opt.socket_path);
        unlink(sa.sun_path);
        old = umask(0177);              /* root only: the status names every guest */
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
                umask(old);
                close(fd);
                return -1;
        }
        umask(old);
        return fd;
}

static const char *state_dir(void)
{
        const char *e = getenv("HVPATCH_STATE_DIR");

        if (D.opt.state_dir)
                return D.opt.state_dir;
        return e && *e ? e : HVP_STATE_DIR;
}

int main(int argc, char **argv)
{
        pthread_t workers[MAX_WORKERS];
        sigset_t mask;
        char why[1024] = "";
        int sfd, cfd, r;

        r = parse_args(argc, argv);
        if (r)
                return r;
        D.state_dir = state_dir();
        D.started = time(NULL);
        pthread_mutex_init(&D.lock, NULL);
        pthread_cond_init(&D.work, NULL);
        pthread_cond_init(&D.stop_cond, NULL);
        /* Libraries with global set-up: once, before any thread. */
        xmlInitParser();
        if (virInitialize() < 0) {
                hvpd_log(LOG_ERR, "libvirt failed to initialize");
                return 1;
        }
        hvp_set_log_fn(lib_log, NULL);
        hvp_audit_set_fn(audit_sink, NULL);
        if (hvpd_config_load(&D, &D.config, why, sizeof(why)) < 0) {
                hvpd_log(LOG_ERR, "%s", why);
                if (!hvpd_log_stderr())
                        fprintf(stderr, "hvpatchd: %s\n", why);
                return 1;
        }

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &mask, NULL);        /* workers inherit the mask */
        signal(SIGPIPE, SIG_IGN);
        sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        cfd = control_open();
        if (sfd < 0 || cfd < 0) {
                hvpd_log(LOG_ERR, "%s: %s", sfd < 0 ? "signalfd" : D.opt.socket_path, strerror(errno));
                fprintf(stderr, "hvpatchd: %s: %s\n", sfd < 0 ? "signalfd" : D.opt.socket_path, strerror(errno));
                return 1;
        }
        if (virEventRegisterDefaultImpl() < 0) {
                hvpd_log(LOG_ERR, "libvirt's event loop: %s", virGetLastErrorMessage());
                return 1;
        }
        virEventAddHandle(sfd, VIR_EVENT_HANDLE_READABLE, on_signal, NULL, NULL);
        virEventAddHandle(cfd, VIR_EVENT_HANDLE_READABLE, on_control, NULL, NULL);
        if (D.opt.metrics_listen) {
                if (hvpd_http_start(&D, why, sizeof(why)) < 0) {
                        hvpd_log(LOG_ERR, "%s", why);
                        if (!hvpd_log_stderr())
                                fprintf(stderr, "hvpatchd: %s\n", why);
                        return 1;
                }
                hvpd_log(LOG_NOTICE, "metrics on http://%s/metrics", D.metrics_addr);
        }
        if (D.opt.metrics_file && hvpd_metrics_write(&D) < 0)      /* the file exists from the start */
                hvpd_log(LOG_WARNING, "metrics file %s: %s", D.opt.metrics_file, strerror(errno));
        for (unsigned i = 0; i < D.opt.workers; i++)
                if (pthread_create(&workers[i], NULL, hvpd_worker, &D) != 0) {
                        hvpd_log(LOG_ERR, "cannot start worker %u", i);
                        return 1;
                }
        if (connect_libvirt() < 0)
                hvpd_log(LOG_WARNING, "starting without libvirt: retrying every %d s", RECONNECT_MS / 1000);
        virEventAddTimeout(RECONNECT_MS, on_reconnect_timer, NULL, NULL);
        if (D.opt.verify_interval)
                virEventAddTimeout((int)D.opt.verify_interval * 1000, on_check_timer, NULL, NULL);
        hvpd_log(LOG_NOTICE, "started: catalog %s, policy %s, state %s, %u workers, check every %u s, socket %s",
                 D.opt.catalog_dir, D.opt.policy_path, D.state_dir, D.opt.workers, D.opt.verify_interval,
                 D.opt.socket_path);
        sd_notify(0, "READY=1");
        notify_status();

        for (;;) {
                bool stopping;

                pthread_mutex_lock(&D.lock);
                stopping = D.stopping;
                pthread_mutex_unlock(&D.lock);
                if (stopping)
                        break;
                if (virEventRunDefaultImpl() < 0)
                        hvpd_log(LOG_WARNING, "event loop: %s", virGetLastErrorMessage());
        }
        /* Workers finish the job in hand: an operation's pause window always ends in a resume. */
        for (unsigned i = 0; i < D.opt.workers; i++)
                pthread_join(workers[i], NULL);
        disconnect();
        hvpd_http_stop();
        unlink(D.opt.socket_path);
        pthread_mutex_lock(&D.lock);
        hvpd_config_put(&D, D.config);
        pthread_mutex_unlock(&D.lock);
        hvpd_log(LOG_NOTICE, "stopped");
        return 0;
}

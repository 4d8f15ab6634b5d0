/*
 * daemon-status: what hvpatchd is doing, asked over its control socket (a unix socket
 * that answers every connection with one JSON document, then closes).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"

#define DEFAULT_SOCKET "/run/hvpatchd.sock"
#define STATUS_MAX (4u << 20)

static const char help[] =
        "Asks the running hvpatchd what it is doing: its catalog and policy, and per\n"
        "domain the phase (idle, queued, waiting-for-kernel, working), the last job's\n"
        "result, patches held, applies, failures and tampering seen.\n\n"
        "Options:\n"
        "  --socket PATH          hvpatchd's socket (default " DEFAULT_SOCKET ")\n"
        "Exit codes: 1 when no hvpatchd answers.\n";

static int read_status(const char *path, char **ret, char *why, size_t why_size)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct timeval tv = { .tv_sec = 5 };
        size_t len = 0, cap = 65536;
        char *buf;
        int fd;

        if (strlen(path) >= sizeof(sa.sun_path)) {
                snprintf(why, why_size, "%s: path too long", path);
                return -1;
        }
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                snprintf(why, why_size, "no hvpatchd at %s: %s", path, strerror(errno));
                if (fd >= 0)
                        close(fd);
                return -1;
        }
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        buf = malloc(cap + 1);
        while (buf) {
                ssize_t n;

                if (len == cap) {
                        char *nb = cap >= STATUS_MAX ? NULL : realloc(buf, 2 * cap + 1);

                        if (!nb) {
                                snprintf(why, why_size, "hvpatchd's answer is over %u bytes", STATUS_MAX);
                                free(buf);
                                close(fd);
                                return -1;
                        }
                        buf = nb;
                        cap *= 2;
                }
                n = read(fd, buf + len, cap - len);
                if (n < 0) {
                        snprintf(why, why_size, "reading %s: %s", path, strerror(errno));
                        free(buf);
                        close(fd);
                        return -1;
                }
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        close(fd);
        if (!buf) {
                snprintf(why, why_size, "out of memory");
                return -1;
        }
        buf[len] = '\0';
        *ret = buf;
        return 0;
}

static const char *str(json_object *o, const char *key)
{
        json_object *v;

        return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
                       ? json_object_get_string(v) : "";
}

static int64_t num(json_object *o, const char *key)
{
        json_object *v;

        return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

/* The domain's health gate: its failures and the last gate (hvpatchd's "health"). */
static void print_health(json_object *d)
{
        json_object *h;

        if (!json_object_object_get_ex(d, "health", &h) || !json_object_is_type(h, json_type_object))
                return;
        printf("             health gate: %lld failed; last: %s for %s%s%s\n", (long long)num(d, "health_failures"),
               str(h, "result"), str(h, "patch_id"), str(h, "reason")[0] ? ": " : "", str(h, "reason"));
}

int cmd_daemon_status(struct cli *c, int argc, char **argv)
{
        const char *path = DEFAULT_SOCKET;
        json_object *o, *doms;
        char why[512], *text = NULL;

        if (cli_wants_help(c, "daemon-status", argc, argv, help))
                return EXIT_OK;
        for (int i = 0; i < argc; i++) {
                if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc)
                        path = argv[++i];
                else
                        return cli_usage(c, cli_find_command("daemon-status"));
        }
        if (read_status(path, &text, why, sizeof(why)) < 0)
                return cli_error(c, EXIT_ERROR, "%s", why);
        o = json_tokener_parse(text);
        free(text);
        if (!o || !json_object_is_type(o, json_type_object))
                return cli_error(c, EXIT_ERROR, "hvpatchd at %s answered something that is not a JSON object", path);
        if (c->json) {
                cli_json_print(o);
                return EXIT_OK;
        }
        printf("hvpatchd:    pid %lld, up %llds%s, %lld of %lld workers busy, %lld queued, %lld checks\n",
               (long long)num(o, "pid"), (long long)(time(NULL) - num(o, "started")),
               num(o, "stopping") ? " (stopping)" : "", (long long)num(o, "busy_workers"),
               (long long)num(o, "workers"), (long long)num(o, "queued"), (long long)num(o, "checks"));
        printf("catalog:     %s: %lld bundles, %lld usable\n", str(o, "catalog"), (long long)num(o, "catalog_bundles"),
               (long long)num(o, "catalog_usable"));
        printf("policy:      %s; tampering: %s; check every %llds; health gate %llds\n", str(o, "policy"),
               str(o, "tamper"), (long long)num(o, "verify_interval"), (long long)num(o, "health_seconds"));
        if (*str(o, "metrics_listen"))
                printf("metrics:     http://%s/metrics\n", str(o, "metrics_listen"));
        if (json_object_object_get_ex(o, "domains", &doms) && json_object_is_type(doms, json_type_array)) {
                size_t n = json_object_array_length(doms);

                if (n == 0)
                        printf("domains:     none seen yet\n");
                for (size_t i = 0; i < n; i++) {
                        json_object *d = json_object_array_get_idx(doms, i);

                        printf("domain:      %s: %s, %s, %lld applied; %lld jobs, %lld applies, %lld failures, "
                               "%lld tampered\n             last: %s\n",
                               str(d, "domain"), str(d, "phase"), str(d, "verdict")[0] ? str(d, "verdict") : "-",
                               (long long)num(d, "applied"), (long long)num(d, "jobs"), (long long)num(d, "applies"),
                               (long long)num(d, "failures"), (long long)num(d, "tampered"), str(d, "last_result"));
                        print_health(d);
                }
        }
        json_object_put(o);
        return EXIT_OK;
}

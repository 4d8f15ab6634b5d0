/*
 * The audit trail: one structured line per apply, revert, refusal, recovery or tampering seen, to
 * syslog (LOG_AUTHPRIV, ident "hvpatch"). journald reads /dev/log where it runs, so
 * the same line lands in the journal. Values are quoted and escaped: a domain name is
 * chosen by whoever defined the domain and must not be able to forge a field.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "common/error.h"
#include "common/util.h"
#include "policy/internal.h"

static hvp_audit_fn audit_fn;
static void *audit_userdata;

void hvp_audit_set_fn(hvp_audit_fn fn, void *userdata)
{
        audit_fn = fn;
        audit_userdata = userdata;
}

static const char *action_name(enum hvp_audit_action a)
{
        switch (a) {
        case HVP_AUDIT_APPLY:
                return "apply";
        case HVP_AUDIT_REVERT:
                return "revert";
        case HVP_AUDIT_REFUSE:
                return "refuse";
        case HVP_AUDIT_RECOVER:
                return "recover";
        case HVP_AUDIT_TAMPER:
                return "tamper";
        case HVP_AUDIT_MOVE_BASELINE:
                return "move-baseline";
        case HVP_AUDIT_HEALTH:
                return "health-fail";
        }
        return "unknown";
}

/* A growing line in a caller's buffer; counts what it would need, like snprintf. */
struct line {
        char *buf;
        size_t size, len;
};

__attribute__((format(printf, 2, 3)))
static void put(struct line *l, const char *fmt, ...)
{
        size_t room = l->len < l->size ? l->size - l->len : 0;
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(room ? l->buf + l->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n > 0)
                l->len += (size_t)n;
}

/* key="value" with \" \\ and \xNN for anything that is not printable ASCII. */
static void put_quoted(struct line *l, const char *key, const char *value)
{
        const size_t max = 256;         /* a hostile name cannot flood the log */
        size_t i = 0;

        if (!value) {
                put(l, " %s=-", key);
                return;
        }
        put(l, " %s=\"", key);
        for (; value[i] && i < max; i++) {
                unsigned char c = (unsigned char)value[i];

                if (c == '"' || c == '\\')
                        put(l, "\\%c", c);
                else if (c < 0x20 || c >= 0x7f)
                        put(l, "\\x%02x", c);
                else
                        put(l, "%c", c);
        }
        put(l, "%s\"", value[i] ? "..." : "");
}

size_t hvp_audit_format(const struct hvp_audit_event *ev, char *buf, size_t size)
{
        struct line l = { .buf = buf, .size = size };

        if (buf && size)
                buf[0] = '\0';
        put(&l, "hvpatch-audit action=%s", action_name(ev->action));
        put_quoted(&l, "domain", ev->domain);
        put_quoted(&l, "bundle", ev->bundle_id);
        put(&l, " seq=%llu", (unsigned long long)ev->seq);
        put_quoted(&l, "key", ev->key_name);
        if (ev->result == 0)
                put(&l, " result=ok");
        else
                put(&l, " result=error errno=%d", -ev->result);
        if (ev->reason)
                put_quoted(&l, "reason", ev->reason);
        if (ev->pause_ms >= 0)
                put(&l, " pause_ms=%.3f", ev->pause_ms);
        return l.len;
}

void hvp_audit(const struct hvp_audit_event *ev)
{
        char line[2048];
        int prio;

        if (!ev)
                return;
        hvp_audit_format(ev, line, sizeof(line));
        prio = ev->result == 0 && ev->action != HVP_AUDIT_REFUSE ? LOG_NOTICE : LOG_WARNING;
        if (audit_fn) {
                audit_fn(LOG_AUTHPRIV | prio, line, audit_userdata);
                return;
        }
        /* openlog() sets the ident for this process; closelog() returns it to the default. */
        openlog("hvpatch", LOG_PID | LOG_NDELAY, LOG_AUTHPRIV);
        syslog(LOG_AUTHPRIV | prio, "%s", line);
        closelog();
}

/* hvpatchd's log: syslog (journald collects it), and stderr when asked (--foreground-log). */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

#include "daemon/hvpatchd.h"

static unsigned log_stderr;     /* 0: syslog only; 1: stderr too, info and above; 2: debug too */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

bool hvpd_log_stderr(void)
{
        return log_stderr > 0;
}

void hvpd_log_init(unsigned verbose)
{
        log_stderr = verbose;
        openlog("hvpatchd", LOG_PID, LOG_DAEMON);
}

void hvpd_log(int priority, const char *fmt, ...)
{
        static const char *const names[] = { "emerg", "alert", "crit", "error", "warning", "notice", "info",
                                             "debug" };
        char msg[2048];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        syslog(priority, "%s", msg);
        if (log_stderr > ((priority & 7) == LOG_DEBUG)) {
                pthread_mutex_lock(&log_lock);
                fprintf(stderr, "hvpatchd: %s: %s\n", names[priority & 7], msg);
                pthread_mutex_unlock(&log_lock);
        }
}

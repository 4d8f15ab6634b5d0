#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "common/util.h"

static _Thread_local char last_error[1024];
static hvp_log_fn log_fn;
static void *log_userdata;

void hvp_set_log_fn(hvp_log_fn fn, void *userdata)
{
        log_fn = fn;
        log_userdata = userdata;
}

const char *hvp_last_error(void)
{
        return last_error;
}

const char *hvp_version(void)
{
        return HVP_VERSION;
}

int hvp_fail(int err, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(last_error, sizeof(last_error), fmt, ap);
        va_end(ap);
        hvp_log(HVP_LOG_DEBUG, "error: %s", last_error);
        return err;
}

void hvp_clear_error(void)
{
        last_error[0] = '\0';
}

int hvp_fail_context(int err, const char *fmt, ...)
{
        char prefix[256], old[sizeof(last_error)];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(prefix, sizeof(prefix), fmt, ap);
        va_end(ap);
        memcpy(old, last_error, sizeof(old));
        /* Truncation is fine: the reason's head carries the meaning. */
        size_t n = strlen(prefix), m = strlen(old);
        memcpy(last_error, prefix, n);
        memcpy(last_error + n, ": ", 2);
        n += 2;
        m = HVP_MIN(m, sizeof(last_error) - 1 - n);
        memcpy(last_error + n, old, m);
        last_error[n + m] = '\0';
        return err;
}

void hvp_log(enum hvp_log_level level, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;

        if (!log_fn)
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        log_fn(level, msg, log_userdata);
}

/* Internal: recording failure reasons and logging. See include/hvpatch/hvpatch.h. */
#ifndef HVP_COMMON_ERROR_H
#define HVP_COMMON_ERROR_H

#include <hvpatch/hvpatch.h>

/*
 * Record the reason for a failure and return err (a negative errno), so that
 * callers can write `return hvp_fail(-EINVAL, "bad count %u", n);`.
 */
int hvp_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefix the current reason with more context: "reading kallsyms: <old reason>". */
int hvp_fail_context(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Forget the last reason (before a call whose failure may leave none, e.g. a caller's reader). */
void hvp_clear_error(void);

void hvp_log(enum hvp_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define hvp_debug(...) hvp_log(HVP_LOG_DEBUG, __VA_ARGS__)
#define hvp_info(...) hvp_log(HVP_LOG_INFO, __VA_ARGS__)
#define hvp_warn(...) hvp_log(HVP_LOG_WARNING, __VA_ARGS__)

#endif

/*
 * hvpatch: live-patch the kernels of running KVM/QEMU guests from the host.
 *
 * Conventions of the whole library:
 *  - Functions return 0 on success or a negative errno. Each module documents the
 *    meaning of each code it returns; the common ones are
 *      -EINVAL    bad argument or malformed input (file or guest memory)
 *      -ENOMEM    out of memory
 *      -ENOENT    nothing found (domain, symbol, mapping)
 *      -EFAULT    guest address not mapped / outside guest RAM
 *      -EIO       the backend (libvirt, QEMU, a file) failed
 *      -E2BIG     a size or count read from hostile input exceeds its bound
 *      -ENOTSUP   the guest uses something hvpatch does not handle
 *  - On failure, out-parameters (named ret_*) are left untouched.
 *  - The library never prints. A failing call records a human-readable reason,
 *    readable with hvp_last_error() on the same thread until the next failure.
 *    Progress and debug messages go to the callback set with hvp_set_log_fn().
 *  - Destructors (*_free) accept NULL.
 */
#ifndef HVPATCH_HVPATCH_H
#define HVPATCH_HVPATCH_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <hvpatch/version.h>

#ifdef __cplusplus
extern "C" {
#endif

enum hvp_log_level {
        HVP_LOG_ERROR,
        HVP_LOG_WARNING,
        HVP_LOG_INFO,
        HVP_LOG_DEBUG,
};

typedef void (*hvp_log_fn)(enum hvp_log_level level, const char *msg, void *userdata);

/* Install a log callback (NULL: discard). Not thread-safe against concurrent logging. */
void hvp_set_log_fn(hvp_log_fn fn, void *userdata);

/*
 * The reason for the last failure on this thread ("" if none). The string is owned
 * by the library and valid until the next failing call on this thread.
 */
const char *hvp_last_error(void);

/* Library version string, e.g. "0.1.0". */
const char *hvp_version(void);

#ifdef __cplusplus
}
#endif

#endif

/*
 * The one whole-file reader: bounded, regular files only, a file that grows while it
 * is read is caught. Bundles, keys, signatures, policies, state records and journals,
 * the QEMU process's /proc files.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/file.h"
#include "common/util.h"

int hvp_read_fd_bounded(int fd, const char *path, size_t max, void **ret_data, size_t *ret_len)
{
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t len = 0, cap;

        if (fstat(fd, &st) < 0)
                return hvp_fail(-EIO, "%s: %s", path, strerror(errno));
        /* FIFOs and devices could block or never end. */
        if (!S_ISREG(st.st_mode))
                return hvp_fail(-EINVAL, "%s: not a regular file", path);
        if ((uint64_t)st.st_size > max)
                return hvp_fail(-E2BIG, "%s: %lld bytes, more than the %zu allowed", path,
                                (long long)st.st_size, max);
        /* The file may grow while we read: read at most max + 1 bytes whatever fstat said. */
        cap = (size_t)st.st_size + 1;
        buf = malloc(cap + 1);
        if (!buf)
                return hvp_fail(-ENOMEM, "%s: out of memory", path);
        for (;;) {
                ssize_t n;

                if (len == cap) {
                        char *nbuf;

                        if (cap > max)
                                return hvp_fail(-E2BIG, "%s: more than the %zu bytes allowed", path, max);
                        cap = HVP_MIN(max + 1, cap * 2);
                        nbuf = realloc(buf, cap + 1);
                        if (!nbuf)
                                return hvp_fail(-ENOMEM, "%s: out of memory", path);
                        buf = nbuf;
                }
                n = read(fd, buf + len, cap - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return hvp_fail(-EIO, "%s: %s", path, strerror(errno));
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        if (len > max)
                return hvp_fail(-E2BIG, "%s: more than the %zu bytes allowed", path, max);
        buf[len] = '\0';
        *ret_data = buf;
        buf = NULL;
        *ret_len = len;
        return 0;
}

int hvp_read_file_bounded(const char *path, size_t max, void **ret_data, size_t *ret_len)
{
        _cleanup_close_ int fd = -1;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                int e = errno;

                return hvp_fail(e == ENOENT ? -ENOENT : -EIO, "%s: %s", path, strerror(e));
        }
        return hvp_read_fd_bounded(fd, path, max, ret_data, ret_len);
}

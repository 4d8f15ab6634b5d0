/* Internal: the one bounded whole-file reader (hvp_read_file_bounded() is public, policy.h). */
#ifndef HVP_COMMON_FILE_H
#define HVP_COMMON_FILE_H

#include <stddef.h>

/*
 * Read all of the open regular file fd (from its current offset), at most max bytes,
 * into a malloc'ed buffer with a NUL after the data. path names it in errors. The
 * caller keeps fd. -EINVAL not a regular file, -E2BIG more than max, -EIO.
 */
int hvp_read_fd_bounded(int fd, const char *path, size_t max, void **ret_data, size_t *ret_len);

/* The same for a path; -ENOENT if it is missing. Declared for users in hvpatch/policy.h. */
int hvp_read_file_bounded(const char *path, size_t max, void **ret_data, size_t *ret_len);

#endif

/* Internal: the bad-mark file parser, for patcher/badmark.c and its fuzz target. */
#ifndef HVP_PATCHER_BADMARK_H
#define HVP_PATCHER_BADMARK_H

#include <stddef.h>

#include <hvpatch/health.h>

/*
 * Parse a mark file's text (len bytes, NUL after them; at most HVP_BAD_FILE_MAX) into m,
 * which gets build_id and patch_id whatever the text says. -EINVAL (reason naming path)
 * when it is not a JSON object naming exactly that build and patch, holds a NUL byte or
 * is over the bound; the other fields are then still filled where present.
 */
int hvp_bad_mark_parse(const char *text, size_t len, const char *build_id, const char *patch_id, const char *path,
                       struct hvp_bad_mark *m);

#endif

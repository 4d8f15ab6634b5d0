/* Internal: the state folder of the patcher (records, journals, locks): patcher/record.c. */
#ifndef HVP_PATCHER_RECORD_H
#define HVP_PATCHER_RECORD_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

/*
 * The journal of a domain's transaction in flight (its layout in the state folder is
 * record.c's). Written atomically; read back (-ENOENT: none); removed (none: 0).
 * -EPERM: the state folder or the file is not safe to trust (see record.c).
 */
int hvp_journal_write(const char *state_dir, const char *uuid, json_object *o);
int hvp_journal_read(const char *state_dir, const char *uuid, json_object **ret);
int hvp_journal_remove(const char *state_dir, const char *uuid);

/*
 * The state folder's safety rules, for every file hvpatch keeps there (records,
 * journals, the health gate's bad marks):
 * - hvp_state_folder_open: dirfd's entry name (path names it in reasons) as a folder of
 *   ours that nobody else may write, never through a symlink; created (0700) when asked.
 *   -ENOENT, with no reason, when it is missing and !create; -EPERM when unsafe.
 * - hvp_state_subdir_open: STATE_DIR/sub the same way (STATE_DIR too); path gets its name.
 * - hvp_state_write_atomic: text and a newline into dfd's entry name: a new temporary
 *   file (tmp_prefix + ".tmp-" + random hex, O_EXCL), fsync, rename over, fsync of the
 *   folder. path names the folder's entry in reasons.
 */
int hvp_state_folder_open(int dirfd, const char *name, const char *path, bool create, int *ret_fd);
int hvp_state_subdir_open(const char *state_dir, const char *sub, bool create, char *path, size_t size,
                          int *ret_fd);
int hvp_state_write_atomic(int dfd, const char *name, const char *tmp_prefix, const char *path, const char *text);

/*
 * A record as JSON (the layout of STATE_DIR/domains/UUID.json), and back: path names
 * the source in reasons. -EINVAL malformed.
 */
struct hvp_record;
json_object *hvp_record_to_json(const struct hvp_record *rec);
int hvp_record_from_json(json_object *o, const char *uuid, const char *path, struct hvp_record **ret);

#endif

/* Internal: state files of the patcher (records, journals, locks). */
#ifndef HVP_PATCHER_RECORD_H
#define HVP_PATCHER_RECORD_H

#include <stddef.h>

#include <json-c/json.h>

/* STATE_DIR/domains/UUID+suffix, creating the folders (mode 0700). */
int hvp_state_path(const char *state_dir, const char *uuid, const char *suffix, char *out, size_t size);
/* Write JSON atomically: temporary file, fsync, rename, fsync of the folder. */
int hvp_json_write_atomic(const char *path, json_object *o);
/* Read a JSON file (bounded size). -ENOENT if absent. */
int hvp_json_read_file(const char *path, json_object **ret);

#endif

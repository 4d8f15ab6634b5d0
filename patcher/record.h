/* Internal: the state folder of the patcher (records, journals, locks): patcher/record.c. */
#ifndef HVP_PATCHER_RECORD_H
#define HVP_PATCHER_RECORD_H

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
 * A record as JSON (the layout of STATE_DIR/domains/UUID.json), and back: path names
 * the source in reasons. -EINVAL malformed.
 */
struct hvp_record;
json_object *hvp_record_to_json(const struct hvp_record *rec);
int hvp_record_from_json(json_object *o, const char *uuid, const char *path, struct hvp_record **ret);

#endif

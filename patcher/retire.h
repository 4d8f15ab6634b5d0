/* Internal: retired patch-area ranges in records and journals (patcher/retire.c). */
#ifndef HVP_PATCHER_RETIRE_H
#define HVP_PATCHER_RETIRE_H

#include <json-c/json.h>

#include <hvpatch/apply.h>

/* Append a copy of r (its code copied); nothing if the same range is there already. */
int hvp_record_add_retired(struct hvp_record *rec, const struct hvp_retired *r);
/* Free what r owns. */
void hvp_retired_clear(struct hvp_retired *r);
json_object *hvp_retired_to_json(const struct hvp_retired *r);
/* Parse (bounded, every field checked); ret owns a malloc'd code. */
int hvp_retired_from_json(json_object *o, struct hvp_retired *ret);

#endif

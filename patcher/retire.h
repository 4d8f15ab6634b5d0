/* Internal: retired patch-area ranges in records and journals (patcher/retire.c). */
#ifndef HVP_PATCHER_RETIRE_H
#define HVP_PATCHER_RETIRE_H

#include <json-c/json.h>

#include <hvpatch/apply.h>
#include <hvpatch/area.h>

/* Append a copy of r (its code copied); nothing if the same range is there already. */
int hvp_record_add_retired(struct hvp_record *rec, const struct hvp_retired *r);
/* Free what r owns. */
void hvp_retired_clear(struct hvp_retired *r);
/* What memory holds over r: HVP_SITE_NEW its code, HVP_SITE_OLD the filler, ... */
int hvp_retired_state(struct hvp_guest *g, const struct hvp_retired *r);
/* Does r lie in the patch-area device's BAR (host memory: it survives guest reboots)? */
bool hvp_retired_in_device(struct hvp_guest *g, const struct hvp_retired *r);
json_object *hvp_retired_to_json(const struct hvp_retired *r);
/* Parse (bounded, every field checked); ret owns a malloc'd code. */
int hvp_retired_from_json(json_object *o, struct hvp_retired *ret);

/*
 * The area ranges new code must not touch: the code of every applied patch (that of a
 * patch about to be replaced too: it becomes retired in the swap) and every retired
 * range in force. Grows *ret_used (capacity *ret_cap) as needed: no count a record can
 * hold is too many. -ENOMEM only.
 */
int hvp_area_uses_collect(struct hvp_guest *g, const struct hvp_kernel *k, const struct hvp_record *rec,
                          struct hvp_area_use **ret_used, size_t *ret_n, size_t *ret_cap);

#endif

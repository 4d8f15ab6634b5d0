/* Internal: the fields of records and journals (patcher/plan.c), shared by plan.c and retire.c. */
#ifndef HVP_PATCHER_JSON_FIELDS_H
#define HVP_PATCHER_JSON_FIELDS_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

/* Bytes as a hex string; an address or number as "0x...". NULL on no memory. */
json_object *hvp_json_hex(const void *data, size_t len);
json_object *hvp_json_addr(uint64_t v);
/*
 * Field key of o as a number (a JSON integer, or a string strtoull reads whole) or as
 * hex bytes (at most max). -EINVAL with a message naming what and key if missing or bad.
 */
int hvp_json_get_u64(json_object *o, const char *what, const char *key, uint64_t *ret);
int hvp_json_get_hex(json_object *o, const char *what, const char *key, uint8_t *out, size_t max, size_t *ret_len);

#endif

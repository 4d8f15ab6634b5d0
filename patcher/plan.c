/* Plans: plain lists of writes, their inverse, and their JSON form. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <hvpatch/apply.h>
#include <hvpatch/patch.h>

#include "common/error.h"
#include "common/util.h"
#include "patcher/json-fields.h"
#include "vmi/x86.h"

struct hvp_plan *hvp_plan_new(void)
{
        return calloc(1, sizeof(struct hvp_plan));
}

void hvp_plan_free(struct hvp_plan *p)
{
        if (!p)
                return;
        for (size_t i = 0; i < p->nr_writes; i++) {
                free(p->writes[i].old);
                free(p->writes[i].new);
        }
        free(p->writes);
        free(p);
}

int hvp_plan_add_write(struct hvp_plan *p, uint64_t va, uint64_t gpa, const void *old, const void *new,
                       size_t len, bool check_rip, bool area, unsigned site)
{
        struct hvp_write *w;

        if (len == 0 || len > HVP_WRITE_MAX_LEN)
                return hvp_fail(-E2BIG, "write of %zu bytes at 0x%llx (1 to %u allowed)", len,
                                (unsigned long long)va, HVP_WRITE_MAX_LEN);
        if ((gpa & (HVP_PAGE_SIZE - 1)) + len > HVP_PAGE_SIZE || (va & (HVP_PAGE_SIZE - 1)) + len > HVP_PAGE_SIZE)
                return hvp_fail(-EINVAL, "write at 0x%llx+%zu crosses a page", (unsigned long long)va, len);
        if (p->nr_writes >= HVP_PLAN_MAX_WRITES)
                return hvp_fail(-E2BIG, "more than %u writes in one plan", HVP_PLAN_MAX_WRITES);
        if (p->nr_writes % 16 == 0) {
                struct hvp_write *nw = realloc(p->writes, (p->nr_writes + 16) * sizeof(*nw));

                if (!nw)
                        return -ENOMEM;
                p->writes = nw;
        }
        w = &p->writes[p->nr_writes];
        *w = (struct hvp_write){ .va = va, .gpa = gpa, .len = (uint32_t)len, .check_rip = check_rip,
                                 .area = area, .site = site };
        w->old = malloc(len);
        w->new = malloc(len);
        if (!w->old || !w->new) {
                free(w->old);
                free(w->new);
                return -ENOMEM;
        }
        memcpy(w->old, old, len);
        memcpy(w->new, new, len);
        p->nr_writes++;
        return 0;
}

struct hvp_plan *hvp_plan_new_like(const struct hvp_plan *src)
{
        struct hvp_plan *p = hvp_plan_new();

        if (p) {
                *p = *src;
                p->writes = NULL;
                p->nr_writes = 0;
        }
        return p;
}

/* A copy of p (inverse false) or its inverse: writes reversed, old and new swapped. */
static int plan_transform(const struct hvp_plan *p, bool inverse, struct hvp_plan **ret_plan)
{
        struct hvp_plan *q = hvp_plan_new_like(p);
        int r;

        if (!q)
                return -ENOMEM;
        for (size_t k = 0; k < p->nr_writes; k++) {
                const struct hvp_write *w = &p->writes[inverse ? p->nr_writes - 1 - k : k];

                r = hvp_plan_add_write(q, w->va, w->gpa, inverse ? w->new : w->old, inverse ? w->old : w->new,
                                       w->len, w->check_rip, w->area, w->site);
                if (r < 0) {
                        hvp_plan_free(q);
                        return r;
                }
                /* The inverse keeps the guard too: a revert waits for tasks in the function (design-notes). */
                q->writes[q->nr_writes - 1].guard_start = w->guard_start;
                q->writes[q->nr_writes - 1].guard_len = w->guard_len;
        }
        *ret_plan = q;
        return 0;
}

int hvp_plan_inverse(const struct hvp_plan *p, struct hvp_plan **ret_plan)
{
        return plan_transform(p, true, ret_plan);
}

int hvp_plan_copy(const struct hvp_plan *p, struct hvp_plan **ret_plan)
{
        return plan_transform(p, false, ret_plan);
}

/* --- JSON ------------------------------------------------------------------- */

json_object *hvp_json_hex(const void *data, size_t len)
{
        char *buf = malloc(2 * len + 1);
        json_object *o;

        if (!buf)
                return NULL;
        hvp_hex_encode(data, len, buf);
        o = json_object_new_string(buf);
        free(buf);
        return o;
}

json_object *hvp_json_addr(uint64_t v)
{
        char buf[24];

        snprintf(buf, sizeof(buf), "0x%llx", (unsigned long long)v);
        return json_object_new_string(buf);
}

json_object *hvp_plan_to_json(const struct hvp_plan *p)
{
        json_object *o = json_object_new_object(), *arr = json_object_new_array();

        json_object_object_add(o, "patch_id", json_object_new_string(p->patch_id));
        json_object_object_add(o, "series", json_object_new_string(p->series));
        json_object_object_add(o, "seq", json_object_new_int64((int64_t)p->seq));
        json_object_object_add(o, "key_name", json_object_new_string(p->key_name));
        json_object_object_add(o, "build_id", hvp_json_hex(p->build_id, p->build_id_len));
        json_object_object_add(o, "kernel_base", hvp_json_addr(p->kernel_base));
        json_object_object_add(o, "area_start", hvp_json_addr(p->area_start));
        json_object_object_add(o, "area_len", hvp_json_addr(p->area_len));
        json_object_object_add(o, "replaces", json_object_new_string(p->replaces));
        for (size_t i = 0; i < p->nr_writes; i++) {
                const struct hvp_write *w = &p->writes[i];
                json_object *wo = json_object_new_object();

                json_object_object_add(wo, "va", hvp_json_addr(w->va));
                json_object_object_add(wo, "gpa", hvp_json_addr(w->gpa));
                json_object_object_add(wo, "old", hvp_json_hex(w->old, w->len));
                json_object_object_add(wo, "new", hvp_json_hex(w->new, w->len));
                json_object_object_add(wo, "check_rip", json_object_new_boolean(w->check_rip));
                json_object_object_add(wo, "area", json_object_new_boolean(w->area));
                json_object_object_add(wo, "site", json_object_new_int((int)w->site));
                if (w->guard_len) {
                        /* Optional: records and journals written before consistency= load as before. */
                        json_object_object_add(wo, "guard_start", hvp_json_addr(w->guard_start));
                        json_object_object_add(wo, "guard_len", hvp_json_addr(w->guard_len));
                }
                json_object_array_add(arr, wo);
        }
        json_object_object_add(o, "writes", arr);
        return o;
}

static int get_string(json_object *o, const char *key, char *out, size_t size)
{
        json_object *v;
        const char *s;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return hvp_fail(-EINVAL, "record: missing string \"%s\"", key);
        s = json_object_get_string(v);
        if (strlen(s) >= size)
                return hvp_fail(-EINVAL, "record: \"%s\" too long", key);
        memcpy(out, s, strlen(s) + 1);
        return 0;
}

int hvp_json_get_u64(json_object *o, const char *what, const char *key, uint64_t *ret)
{
        json_object *v;
        const char *s;
        char *end;

        if (!json_object_object_get_ex(o, key, &v))
                return hvp_fail(-EINVAL, "%s: missing \"%s\"", what, key);
        if (json_object_is_type(v, json_type_int)) {
                *ret = (uint64_t)json_object_get_int64(v);
                return 0;
        }
        if (!json_object_is_type(v, json_type_string))
                return hvp_fail(-EINVAL, "%s: \"%s\" is not a number", what, key);
        s = json_object_get_string(v);
        errno = 0;
        *ret = strtoull(s, &end, 0);
        if (errno || *end || !*s)
                return hvp_fail(-EINVAL, "%s: bad number \"%s\" for \"%s\"", what, s, key);
        return 0;
}

static bool get_bool(json_object *o, const char *key)
{
        json_object *v;

        return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

int hvp_json_get_hex(json_object *o, const char *what, const char *key, uint8_t *out, size_t max,
                     size_t *ret_len)
{
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return hvp_fail(-EINVAL, "%s: missing hex \"%s\"", what, key);
        if (hvp_hex_decode(json_object_get_string(v), out, max, ret_len) < 0)
                return hvp_fail(-EINVAL, "%s: bad hex \"%s\"", what, key);
        return 0;
}

int hvp_plan_from_json(json_object *o, struct hvp_plan **ret_plan)
{
        uint8_t old[HVP_WRITE_MAX_LEN], new[HVP_WRITE_MAX_LEN];
        struct hvp_plan *p = hvp_plan_new();
        json_object *arr;
        uint64_t seq;
        int r;

        if (!p)
                return -ENOMEM;
        if ((r = get_string(o, "patch_id", p->patch_id, sizeof(p->patch_id))) < 0 ||
            (r = get_string(o, "series", p->series, sizeof(p->series))) < 0 ||
            (r = get_string(o, "key_name", p->key_name, sizeof(p->key_name))) < 0 ||
            (r = get_string(o, "replaces", p->replaces, sizeof(p->replaces))) < 0 ||
            (r = hvp_json_get_u64(o, "record", "seq", &seq)) < 0 ||
            (r = hvp_json_get_u64(o, "record", "kernel_base", &p->kernel_base)) < 0 ||
            (r = hvp_json_get_u64(o, "record", "area_start", &p->area_start)) < 0 ||
            (r = hvp_json_get_u64(o, "record", "area_len", &p->area_len)) < 0 ||
            (r = hvp_json_get_hex(o, "record", "build_id", p->build_id, sizeof(p->build_id),
                                  &p->build_id_len)) < 0)
                goto fail;
        p->seq = seq;
        if (!json_object_object_get_ex(o, "writes", &arr) || !json_object_is_type(arr, json_type_array)) {
                r = hvp_fail(-EINVAL, "record: missing \"writes\"");
                goto fail;
        }
        if (json_object_array_length(arr) > HVP_PLAN_MAX_WRITES) {
                r = hvp_fail(-E2BIG, "record: too many writes");
                goto fail;
        }
        for (size_t i = 0; i < json_object_array_length(arr); i++) {
                json_object *w = json_object_array_get_idx(arr, i);
                uint64_t va, gpa, site, gs = 0, gl = 0;
                size_t lo, ln;

                if ((r = hvp_json_get_u64(w, "record", "va", &va)) < 0 ||
                    (r = hvp_json_get_u64(w, "record", "gpa", &gpa)) < 0 ||
                    (r = hvp_json_get_u64(w, "record", "site", &site)) < 0 ||
                    (r = hvp_json_get_hex(w, "record", "old", old, sizeof(old), &lo)) < 0 ||
                    (r = hvp_json_get_hex(w, "record", "new", new, sizeof(new), &ln)) < 0)
                        goto fail;
                if (lo != ln) {
                        r = hvp_fail(-EINVAL, "record: write %zu: old and new differ in length", i);
                        goto fail;
                }
                if (json_object_object_get_ex(w, "guard_len", NULL) &&
                    ((r = hvp_json_get_u64(w, "record", "guard_start", &gs)) < 0 ||
                     (r = hvp_json_get_u64(w, "record", "guard_len", &gl)) < 0))
                        goto fail;
                /* The guard holds the write and stays within the bound a function may have. */
                if (gl && (gl > HVP_FUNCTION_MAX_LEN || gs > UINT64_MAX - gl || va < gs || va + lo > gs + gl)) {
                        r = hvp_fail(-EINVAL, "record: write %zu: bad guard 0x%llx+0x%llx", i,
                                     (unsigned long long)gs, (unsigned long long)gl);
                        goto fail;
                }
                r = hvp_plan_add_write(p, va, gpa, old, new, lo, get_bool(w, "check_rip"), get_bool(w, "area"),
                                       (unsigned)site);
                if (r < 0)
                        goto fail;
                p->writes[p->nr_writes - 1].guard_start = gs;
                p->writes[p->nr_writes - 1].guard_len = gl;
        }
        *ret_plan = p;
        return 0;
fail:
        hvp_plan_free(p);
        return r;
}

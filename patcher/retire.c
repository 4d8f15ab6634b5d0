/*
 * Retired patch-area code (include/hvpatch/apply.h, docs/design-notes.md): what a
 * patch placed in an area stays there, unchanged, once no entry jumps to it, until
 * the guest boots again (or, later, a proof that no task is inside it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include <hvpatch/apply.h>
#include <hvpatch/kernel.h>

#include "common/error.h"
#include "common/util.h"
#include "patcher/json-fields.h"
#include "patcher/retire.h"
#include "vmi/x86.h"


void hvp_retired_clear(struct hvp_retired *r)
{
        free(r->code);
        r->code = NULL;
}

static bool same_range(const struct hvp_retired *r, const char *patch_id, uint64_t va, uint64_t len)
{
        return r->va == va && r->len == len && strcmp(r->patch_id, patch_id) == 0;
}

int hvp_record_add_retired(struct hvp_record *rec, const struct hvp_retired *src)
{
        struct hvp_retired *n;

        for (size_t i = 0; i < rec->nr_retired; i++)
                if (same_range(&rec->retired[i], src->patch_id, src->va, src->len))
                        return 0;       /* idempotent: recovery may commit twice */
        if (rec->nr_retired >= HVP_RETIRED_MAX)
                return hvp_fail(-E2BIG, "more than %u retired patch-area ranges in the record", HVP_RETIRED_MAX);
        if (src->len == 0 || src->len > HVP_RETIRED_MAX_LEN)
                return hvp_fail(-EINVAL, "retired range of %u bytes (1 to %u allowed)", src->len, HVP_RETIRED_MAX_LEN);
        n = realloc(rec->retired, (rec->nr_retired + 1) * sizeof(*n));
        if (!n)
                return -ENOMEM;
        rec->retired = n;
        n = &rec->retired[rec->nr_retired];
        *n = *src;
        n->code = malloc(src->len);
        if (!n->code)
                return -ENOMEM;
        memcpy(n->code, src->code, src->len);
        rec->nr_retired++;
        return 0;
}

int hvp_record_retire(struct hvp_record *rec, const struct hvp_plan *p)
{
        int r = 0;

        /* Runs of area writes contiguous in va and gpa (add_range splits one placement at pages). */
        for (size_t i = 0; i < p->nr_writes && r == 0;) {
                const struct hvp_write *w = &p->writes[i];
                size_t j = i + 1, len = w->len;
                uint8_t *code, *filler;

                if (!w->area) {
                        i++;
                        continue;
                }
                while (j < p->nr_writes && p->writes[j].area && p->writes[j].va == w->va + len &&
                       p->writes[j].gpa == w->gpa + len && len + p->writes[j].len <= HVP_RETIRED_MAX_LEN)
                        len += p->writes[j++].len;
                code = malloc(len);
                if (!code)
                        return -ENOMEM;
                for (size_t k = i, off = 0; k < j; off += p->writes[k++].len)
                        memcpy(code + off, p->writes[k].new, p->writes[k].len);
                filler = w->old;
                {
                        struct hvp_retired rt = { .va = w->va, .gpa = w->gpa, .len = (uint32_t)len, .code = code,
                                                  .filler = filler[0], .build_id_len = p->build_id_len,
                                                  .kernel_base = p->kernel_base, .retired_at = (long long)time(NULL) };

                        snprintf(rt.patch_id, sizeof(rt.patch_id), "%s", p->patch_id);
                        memcpy(rt.build_id, p->build_id, HVP_MIN(p->build_id_len, sizeof(rt.build_id)));
                        r = hvp_record_add_retired(rec, &rt);
                }
                free(code);
                i = j;
        }
        return r;
}

/* What memory holds over the range: all code, all filler, or something else. */
int hvp_retired_state(struct hvp_guest *g, const struct hvp_retired *r)
{
        uint8_t buf[HVP_PAGE_SIZE];
        bool code = true, filler = true;

        for (uint32_t off = 0; off < r->len && (code || filler); off += sizeof(buf)) {
                size_t n = HVP_MIN(sizeof(buf), (size_t)(r->len - off));

                if (hvp_guest_read_phys(g, r->gpa + off, buf, n) < 0)
                        return HVP_SITE_UNREADABLE;
                code = code && memcmp(buf, r->code + off, n) == 0;
                for (size_t i = 0; i < n && filler; i++)
                        filler = buf[i] == r->filler;
        }
        return code ? HVP_SITE_NEW : filler ? HVP_SITE_OLD : HVP_SITE_FOREIGN;
}

bool hvp_retired_in_force(struct hvp_guest *g, const struct hvp_kernel *k, const struct hvp_retired *r,
                          int *ret_state)
{
        uint64_t slack_end = (k->text_end + HVP_PAGE_SIZE - 1) & ~(uint64_t)(HVP_PAGE_SIZE - 1);
        bool slack = r->va >= k->text_end && r->va < slack_end;
        int st = HVP_SITE_UNREADABLE;
        bool same_boot = r->kernel_base == k->base && r->build_id_len == k->build_id_len &&
                         memcmp(r->build_id, k->build_id, k->build_id_len) == 0;

        if (same_boot)
                st = hvp_retired_state(g, r);
        if (ret_state)
                *ret_state = st;
        if (r->released_by[0] || !same_boot)
                return false;
        /*
         * Same build and base. The slack is part of the kernel image, loaded afresh at every
         * boot: the filler where the code was means a new boot at the same base (nokaslr).
         * Anything else (the code, foreign bytes, unreadable) keeps it in force.
         */
        return !(slack && st == HVP_SITE_OLD);
}

bool hvp_retired_in_device(struct hvp_guest *g, const struct hvp_retired *r)
{
        uint64_t gpa, size;

        return hvp_guest_area_device(g, &gpa, &size) == 0 && r->gpa >= gpa && r->gpa - gpa < size &&
               r->len <= size - (r->gpa - gpa);
}

int hvp_record_release_retired(struct hvp_guest *g, const struct hvp_kernel *k, struct hvp_record *rec,
                               bool *ret_changed)
{
        size_t kept = 0;
        bool changed = false;

        for (size_t i = 0; i < rec->nr_retired; i++) {
                struct hvp_retired *r = &rec->retired[i];

                if (hvp_retired_in_force(g, k, r, NULL)) {
                        rec->retired[kept++] = *r;
                        continue;
                }
                /*
                 * Released, but the device area is host memory and keeps its bytes over
                 * a reboot: keep the range, marked, until a patch placing code in the
                 * device erases it (planner: no task of this boot can reach it).
                 */
                if (hvp_retired_in_device(g, r) && hvp_retired_state(g, r) == HVP_SITE_NEW) {
                        if (!r->released_by[0]) {
                                snprintf(r->released_by, sizeof(r->released_by), "boot");
                                changed = true;
                        }
                        rec->retired[kept++] = *r;
                        continue;
                }
                changed = true;
                hvp_info("retired %s code at 0x%llx+%u released: the guest booted again",
                         rec->retired[i].patch_id, (unsigned long long)rec->retired[i].va, rec->retired[i].len);
                hvp_retired_clear(&rec->retired[i]);
        }
        if (ret_changed)
                *ret_changed = changed;
        rec->nr_retired = kept;
        return 0;
}

int hvp_plan_revert_txn(const struct hvp_plan *p, struct hvp_plan **ret_txn)
{
        struct hvp_plan *q = hvp_plan_new_like(p);
        int r;

        if (!q)
                return -ENOMEM;
        for (size_t k = p->nr_writes; k-- > 0;) {
                const struct hvp_write *w = &p->writes[k];

                if (w->area)
                        continue;       /* the code stays: retired by the commit */
                r = hvp_plan_add_write(q, w->va, w->gpa, w->new, w->old, w->len, w->check_rip, false, w->site);
                if (r < 0) {
                        hvp_plan_free(q);
                        return r;
                }
                /* The revert waits for tasks in a guarded function too (docs/design-notes.md). */
                q->writes[q->nr_writes - 1].guard_start = w->guard_start;
                q->writes[q->nr_writes - 1].guard_len = w->guard_len;
        }
        *ret_txn = q;
        return 0;
}

static int uses_add(struct hvp_area_use **used, size_t *n, size_t *cap, uint64_t start, uint64_t len)
{
        if (*n == *cap) {
                size_t c = *cap ? 2 * *cap : 64;
                struct hvp_area_use *u = reallocarray(*used, c, sizeof(*u));

                if (!u)
                        return hvp_fail(-ENOMEM, "no memory for %zu patch-area ranges", c);
                *used = u;
                *cap = c;
        }
        (*used)[(*n)++] = (struct hvp_area_use){ start, len };
        return 0;
}

int hvp_area_uses_collect(struct hvp_guest *g, const struct hvp_kernel *k, const struct hvp_record *rec,
                          struct hvp_area_use **ret_used, size_t *ret_n, size_t *ret_cap)
{
        int r = 0;

        *ret_n = 0;
        for (size_t i = 0; i < rec->nr_entries && r == 0; i++) {
                const struct hvp_plan *p = rec->entries[i].plan;

                for (size_t j = 0; j < p->nr_writes && r == 0; j++)
                        if (p->writes[j].area)
                                r = uses_add(ret_used, ret_n, ret_cap, p->writes[j].va, p->writes[j].len);
        }
        for (size_t i = 0; i < rec->nr_retired && r == 0; i++)
                if (hvp_retired_in_force(g, k, &rec->retired[i], NULL))
                        r = uses_add(ret_used, ret_n, ret_cap, rec->retired[i].va, rec->retired[i].len);
        return r;
}

/* --- JSON --------------------------------------------------------------------- */

json_object *hvp_retired_to_json(const struct hvp_retired *r)
{
        json_object *o = json_object_new_object();

        json_object_object_add(o, "patch_id", json_object_new_string(r->patch_id));
        json_object_object_add(o, "va", hvp_json_addr(r->va));
        json_object_object_add(o, "gpa", hvp_json_addr(r->gpa));
        json_object_object_add(o, "len", json_object_new_int64(r->len));
        json_object_object_add(o, "code", hvp_json_hex(r->code, r->len));
        json_object_object_add(o, "filler", json_object_new_int(r->filler));
        json_object_object_add(o, "build_id", hvp_json_hex(r->build_id, r->build_id_len));
        json_object_object_add(o, "kernel_base", hvp_json_addr(r->kernel_base));
        json_object_object_add(o, "retired_at", json_object_new_int64(r->retired_at));
        json_object_object_add(o, "released_by", r->released_by[0] ? json_object_new_string(r->released_by) : NULL);
        return o;
}

#define WHAT "retired range"

int hvp_retired_from_json(json_object *o, struct hvp_retired *ret)
{
        struct hvp_retired r = { 0 };
        json_object *v;
        uint64_t len;
        size_t n;
        int q;

        if (!json_object_is_type(o, json_type_object))
                return hvp_fail(-EINVAL, "retired range: not an object");
        if (!json_object_object_get_ex(o, "patch_id", &v) || !json_object_is_type(v, json_type_string) ||
            strlen(json_object_get_string(v)) >= sizeof(r.patch_id))
                return hvp_fail(-EINVAL, "retired range: bad patch_id");
        snprintf(r.patch_id, sizeof(r.patch_id), "%s", json_object_get_string(v));
        if ((q = hvp_json_get_u64(o, WHAT, "va", &r.va)) < 0 || (q = hvp_json_get_u64(o, WHAT, "gpa", &r.gpa)) < 0 ||
            (q = hvp_json_get_u64(o, WHAT, "kernel_base", &r.kernel_base)) < 0)
                return q;
        if (!json_object_object_get_ex(o, "len", &v) || (len = (uint64_t)json_object_get_int64(v)) == 0 ||
            len > HVP_RETIRED_MAX_LEN)
                return hvp_fail(-EINVAL, "retired range: bad len");
        r.len = (uint32_t)len;
        if (json_object_object_get_ex(o, "filler", &v))
                r.filler = (uint8_t)json_object_get_int(v);
        if (json_object_object_get_ex(o, "retired_at", &v))
                r.retired_at = json_object_get_int64(v);
        if (json_object_object_get_ex(o, "released_by", &v) && v &&
            json_object_is_type(v, json_type_string))
                snprintf(r.released_by, sizeof(r.released_by), "%s", json_object_get_string(v));
        if ((q = hvp_json_get_hex(o, WHAT, "build_id", r.build_id, sizeof(r.build_id), &r.build_id_len)) < 0)
                return q;
        r.code = malloc(r.len);
        if (!r.code)
                return -ENOMEM;
        q = hvp_json_get_hex(o, WHAT, "code", r.code, r.len, &n);
        if (q == 0 && n != r.len)
                q = hvp_fail(-EINVAL, "retired range: %zu bytes of code for len %u", n, r.len);
        if (q < 0) {
                free(r.code);
                return q;
        }
        *ret = r;
        return 0;
}

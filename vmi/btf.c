/*
 * The guest kernel's BTF, parsed with libbpf.
 *
 * libbpf (btf__new) checks the header, that the sections lie inside the blob, that the
 * string section ends in a NUL and that every type record fits in the type section.
 * It does not check what the records refer to: a member's type id, a name offset or a
 * typedef chain may point anywhere or loop. So every lookup here takes type ids
 * through btf__type_by_id() (NULL when out of range), names through
 * btf__name_by_offset() (NULL when out of range), and follows chains a fixed number
 * of steps.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <hvpatch/btf.h>

#include "common/error.h"
#include "common/util.h"

#define READ_CHUNK (1u << 20)
#define MAX_CHAIN 32            /* typedef/qualifier steps, as libbpf's own resolver */
#define MAX_ANON_DEPTH 8        /* nested anonymous structs/unions */
#define MAX_PATH_DEPTH 16       /* components of a member path */

/*
 * libbpf prints its warnings on stderr unless told otherwise; the library never prints.
 * Its messages go to the debug log, and the last one becomes part of the failure reason.
 */
static _Thread_local char libbpf_msg[256];

__attribute__((format(printf, 2, 0)))
static int libbpf_to_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
        size_t n;

        (void)level;
        vsnprintf(libbpf_msg, sizeof(libbpf_msg), fmt, ap);
        n = strlen(libbpf_msg);
        while (n > 0 && libbpf_msg[n - 1] == '\n')
                libbpf_msg[--n] = '\0';
        if (strncmp(libbpf_msg, "libbpf: ", 8) == 0)
                memmove(libbpf_msg, libbpf_msg + 8, n - 8 + 1);
        hvp_debug("libbpf: %s", libbpf_msg);
        return 0;
}

struct hvp_btf {
        struct btf *btf;
        size_t size;
};

int hvp_btf_new(const void *data, size_t len, struct hvp_btf **ret_btf)
{
        struct hvp_btf *b;
        struct btf *raw;

        if (!data || !ret_btf)
                return hvp_fail(-EINVAL, "hvp_btf_new: bad arguments");
        if (len > HVP_BTF_MAX_SIZE)
                return hvp_fail(-E2BIG, "BTF of %zu bytes is larger than the bound (%u MiB)", len,
                                HVP_BTF_MAX_SIZE >> 20);
        libbpf_set_print(libbpf_to_log);
        libbpf_msg[0] = '\0';
        errno = 0;
        raw = btf__new(data, (uint32_t)len);
        if (!raw) {
                int e = errno ? errno : EINVAL;

                if (e == ENOMEM)
                        return hvp_fail(-ENOMEM, "out of memory parsing BTF");
                return hvp_fail(-EINVAL, "malformed BTF (%zu bytes): libbpf: %s", len,
                                libbpf_msg[0] ? libbpf_msg : strerror(e));
        }
        b = calloc(1, sizeof(*b));
        if (!b) {
                btf__free(raw);
                return hvp_fail(-ENOMEM, "out of memory");
        }
        b->btf = raw;
        b->size = len;
        *ret_btf = b;
        return 0;
}

int hvp_btf_load(const struct hvp_kmem *km, const struct hvp_kernel *k, struct hvp_btf **ret_btf)
{
        const struct hvp_symbol *start, *stop;
        _cleanup_free_ uint8_t *buf = NULL;
        uint64_t len;
        int r;

        if (!km || !km->read || !k || !k->symtab || !ret_btf)
                return hvp_fail(-EINVAL, "hvp_btf_load: bad arguments");
        start = hvp_symtab_lookup(k->symtab, "__start_BTF");
        stop = hvp_symtab_lookup(k->symtab, "__stop_BTF");
        if (!start || !stop)
                return hvp_fail(-ENOENT, "the guest kernel has no BTF (no __start_BTF/__stop_BTF symbols: "
                                         "built without CONFIG_DEBUG_INFO_BTF)");
        if (stop->addr < start->addr)
                return hvp_fail(-EINVAL, "__stop_BTF 0x%llx lies below __start_BTF 0x%llx",
                                (unsigned long long)stop->addr, (unsigned long long)start->addr);
        len = stop->addr - start->addr;
        if (len == 0)
                return hvp_fail(-ENOENT, "the guest kernel's BTF is empty (__start_BTF == __stop_BTF)");
        if (len > HVP_BTF_MAX_SIZE)
                return hvp_fail(-E2BIG, "the guest kernel's BTF (__start_BTF..__stop_BTF) is %llu bytes, "
                                        "more than the bound (%u MiB)",
                                (unsigned long long)len, HVP_BTF_MAX_SIZE >> 20);
        buf = malloc(len);
        if (!buf)
                return hvp_fail(-ENOMEM, "out of memory for %llu bytes of BTF", (unsigned long long)len);
        for (uint64_t off = 0; off < len; off += READ_CHUNK) {
                size_t n = (size_t)HVP_MIN((uint64_t)READ_CHUNK, len - off);

                hvp_clear_error();
                r = km->read(km->ctx, start->addr + off, buf + off, n);
                if (r < 0 && !hvp_last_error()[0])
                        hvp_fail(r, "%s", strerror(-r));
                if (r < 0)
                        return hvp_fail_context(r, "reading the guest kernel's BTF at 0x%llx",
                                                (unsigned long long)(start->addr + off));
        }
        r = hvp_btf_new(buf, len, ret_btf);
        if (r < 0)
                return hvp_fail_context(r, "the guest kernel's BTF at 0x%llx", (unsigned long long)start->addr);
        return 0;
}

void hvp_btf_free(struct hvp_btf *b)
{
        if (!b)
                return;
        btf__free(b->btf);
        free(b);
}

size_t hvp_btf_size(const struct hvp_btf *b)
{
        return b ? b->size : 0;
}

size_t hvp_btf_type_count(const struct hvp_btf *b)
{
        return b ? btf__type_cnt(b->btf) : 0;
}

/* The type behind typedefs and qualifiers; NULL for a bad id or a chain too long. */
static const struct btf_type *skip_mods(const struct btf *btf, uint32_t id, uint32_t *ret_id)
{
        for (int i = 0; i < MAX_CHAIN; i++) {
                const struct btf_type *t = btf__type_by_id(btf, id);

                if (!t)
                        return NULL;
                if (!btf_is_typedef(t) && !btf_is_mod(t)) {
                        if (ret_id)
                                *ret_id = id;
                        return t;
                }
                id = t->type;
        }
        return NULL;
}

static bool is_composite(const struct btf_type *t)
{
        return btf_is_struct(t) || btf_is_union(t);
}

static int find_struct(const struct btf *btf, const char *name, uint32_t *ret_id)
{
        uint32_t n = btf__type_cnt(btf);

        for (uint32_t id = 1; id < n; id++) {
                const struct btf_type *t = btf__type_by_id(btf, id);
                const char *tn;

                if (!t || !is_composite(t) || t->name_off == 0)
                        continue;
                tn = btf__name_by_offset(btf, t->name_off);
                if (tn && strcmp(tn, name) == 0) {
                        *ret_id = id;
                        return 0;
                }
        }
        return -ENOENT;
}

/*
 * Member NAME of the composite type t (id known), searched through anonymous members
 * as C does. ret_bits: bit offset from the start of t; ret_type: the member's type id.
 */
static int find_member(const struct btf *btf, const struct btf_type *t, const char *name, int depth,
                       uint64_t *ret_bits, uint32_t *ret_type, bool *ret_bitfield)
{
        const struct btf_member *m = btf_members(t);
        uint16_t vlen = btf_vlen(t);

        if (depth > MAX_ANON_DEPTH)
                return -E2BIG;
        for (uint16_t i = 0; i < vlen; i++) {
                uint64_t bits = btf_member_bit_offset(t, i);

                if (m[i].name_off == 0) {
                        const struct btf_type *inner = skip_mods(btf, m[i].type, NULL);
                        uint64_t ib;
                        uint32_t it;
                        bool bf;
                        int r;

                        if (!inner || !is_composite(inner))
                                continue;
                        r = find_member(btf, inner, name, depth + 1, &ib, &it, &bf);
                        if (r == -E2BIG)
                                return r;
                        if (r == 0) {
                                *ret_bits = bits + ib;
                                *ret_type = it;
                                *ret_bitfield = bf;
                                return 0;
                        }
                        continue;
                }
                const char *mn = btf__name_by_offset(btf, m[i].name_off);

                if (mn && strcmp(mn, name) == 0) {
                        *ret_bits = bits;
                        *ret_type = m[i].type;
                        *ret_bitfield = btf_member_bitfield_size(t, i) != 0;
                        return 0;
                }
        }
        return -ENOENT;
}

int hvp_btf_struct_size(const struct hvp_btf *b, const char *name, uint64_t *ret_size)
{
        uint32_t id;

        if (!b || !name || !ret_size)
                return hvp_fail(-EINVAL, "hvp_btf_struct_size: bad arguments");
        if (find_struct(b->btf, name, &id) < 0)
                return hvp_fail(-ENOENT, "no struct %s in the BTF", name);
        *ret_size = btf__type_by_id(b->btf, id)->size;
        return 0;
}

int hvp_btf_member(const struct hvp_btf *b, const char *path, uint64_t *ret_offset, uint64_t *ret_size)
{
        char buf[256], *save = NULL, *comp;
        const struct btf_type *t;
        uint64_t bits = 0;
        uint32_t id = 0;
        bool bitfield = false;
        int depth = 0;

        if (!b || !path || !ret_offset)
                return hvp_fail(-EINVAL, "hvp_btf_member: bad arguments");
        if (strlen(path) >= sizeof(buf) || !strchr(path, '.'))
                return hvp_fail(-EINVAL, "bad member path '%s' (STRUCT.MEMBER[.MEMBER...])", path);
        strcpy(buf, path);
        comp = strtok_r(buf, ".", &save);
        if (!comp || find_struct(b->btf, comp, &id) < 0)
                return hvp_fail(-ENOENT, "no struct %s in the BTF", comp ? comp : "");
        t = btf__type_by_id(b->btf, id);
        while ((comp = strtok_r(NULL, ".", &save))) {
                uint64_t mbits;
                uint32_t mtype;
                int r;

                if (++depth > MAX_PATH_DEPTH)
                        return hvp_fail(-E2BIG, "member path '%s' is too deep", path);
                if (bitfield)
                        return hvp_fail(-EINVAL, "%s: a bitfield has no members", path);
                if (!t || !is_composite(t))
                        return hvp_fail(-EINVAL, "%s: '%s' is not inside a struct or union", path, comp);
                r = find_member(b->btf, t, comp, 0, &mbits, &mtype, &bitfield);
                if (r == -E2BIG)
                        return hvp_fail(r, "%s: anonymous members nested too deep", path);
                if (r < 0)
                        return hvp_fail(-ENOENT, "%s: no member '%s'", path, comp);
                bits += mbits;
                id = mtype;
                t = skip_mods(b->btf, mtype, &id);
                if (!t && !bitfield)
                        return hvp_fail(-EINVAL, "%s: member '%s' has a bad type (id %u)", path, comp, mtype);
        }
        if (depth == 0)
                return hvp_fail(-EINVAL, "bad member path '%s'", path);
        if (bitfield || bits % 8)
                return hvp_fail(-ENOTSUP, "%s is a bitfield: no byte offset", path);
        if (ret_size) {
                long long sz = btf__resolve_size(b->btf, id);

                if (sz < 0)
                        return hvp_fail(-EINVAL, "%s: the size of its type cannot be resolved", path);
                *ret_size = (uint64_t)sz;
        }
        *ret_offset = bits / 8;
        return 0;
}

int hvp_btf_enum_value(const struct hvp_btf *b, const char *name, int64_t *ret_value)
{
        uint32_t n;

        if (!b || !name || !ret_value)
                return hvp_fail(-EINVAL, "hvp_btf_enum_value: bad arguments");
        n = btf__type_cnt(b->btf);
        for (uint32_t id = 1; id < n; id++) {
                const struct btf_type *t = btf__type_by_id(b->btf, id);

                if (!t)
                        continue;
                if (btf_is_enum(t)) {
                        const struct btf_enum *e = btf_enum(t);

                        for (uint16_t i = 0; i < btf_vlen(t); i++) {
                                const char *en = btf__name_by_offset(b->btf, e[i].name_off);

                                if (en && strcmp(en, name) == 0) {
                                        *ret_value = btf_kflag(t) ? (int64_t)e[i].val : (int64_t)(uint32_t)e[i].val; /* kflag: signed */
                                        return 0;
                                }
                        }
                } else if (btf_is_enum64(t)) {
                        const struct btf_enum64 *e = btf_enum64(t);

                        for (uint16_t i = 0; i < btf_vlen(t); i++) {
                                const char *en = btf__name_by_offset(b->btf, e[i].name_off);

                                if (en && strcmp(en, name) == 0) {
                                        *ret_value = (int64_t)btf_enum64_value(e + i);
                                        return 0;
                                }
                        }
                }
        }
        return hvp_fail(-ENOENT, "no enumerator %s in the BTF", name);
}

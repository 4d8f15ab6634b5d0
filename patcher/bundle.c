/*
 * Bundles: the container (docs/bundle.md), reading, writing and packing.
 *
 * The layout is canonical: one byte sequence per content (entries in table order,
 * each at the next 8-byte boundary, zero padding, no trailing bytes, reserved fields
 * zero). A signed file therefore carries nothing that the reader does not check.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include <hvpatch/patch.h>

#include "common/error.h"
#include "common/file.h"
#include "common/util.h"
#include "patcher/manifest.h"

#define HEADER_SIZE 64u
#define ENTRY_SIZE 128u
#define NAME_FIELD 64u

/* struct hvp_bundle and what it owns. */
struct bundle {
        struct hvp_bundle pub;
        uint8_t *data;
        struct hvp_payload *entries;
        char names[HVP_BUNDLE_MAX_ENTRIES][NAME_FIELD];
        struct manifest *manifest;
};

static size_t align8(size_t v)
{
        return (v + 7) & ~(size_t)7;
}

static bool all_zero(const uint8_t *p, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (p[i])
                        return false;
        return true;
}

static void sha256(const void *data, size_t len, uint8_t out[32])
{
        /* sodium_init() is idempotent and thread-safe; the hash needs no more. */
        if (sodium_init() < 0)
                abort();
        crypto_hash_sha256(out, data, len);
}

/* Entry names: [A-Za-z0-9._+-], not starting with '.', 1..HVP_BUNDLE_NAME_MAX bytes. */
static bool valid_name(const char *name, size_t len)
{
        if (len == 0 || len > HVP_BUNDLE_NAME_MAX || name[0] == '.')
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = name[i];

                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '_' || c == '+' || c == '-'))
                        return false;
        }
        return true;
}

int hvp_bundle_write(const struct hvp_bundle_input *entries, size_t nr_entries, uint8_t **ret_buf, size_t *ret_len)
{
        size_t total, off;
        uint8_t *buf;

        if (nr_entries == 0)
                return hvp_fail(-EINVAL, "a bundle needs at least one entry");
        if (nr_entries > HVP_BUNDLE_MAX_ENTRIES)
                return hvp_fail(-E2BIG, "%zu entries exceed the bound of %u", nr_entries, HVP_BUNDLE_MAX_ENTRIES);
        total = HEADER_SIZE + nr_entries * ENTRY_SIZE;
        for (size_t i = 0; i < nr_entries; i++) {
                const char *name = entries[i].name;

                if (!name || !valid_name(name, strnlen(name, NAME_FIELD)))
                        return hvp_fail(-EINVAL, "entry %zu: bad name \"%.64s\"", i, name ? name : "");
                for (size_t k = 0; k < i; k++)
                        if (strcmp(entries[k].name, name) == 0)
                                return hvp_fail(-EINVAL, "entry %zu: name %s used twice", i, name);
                if (entries[i].size > HVP_BUNDLE_MAX_SIZE || (entries[i].size && !entries[i].data))
                        return hvp_fail(-E2BIG, "entry %s: %zu bytes exceed the bound of %u", name, entries[i].size,
                                        HVP_BUNDLE_MAX_SIZE);
                total = align8(total) + entries[i].size;
                if (total > HVP_BUNDLE_MAX_SIZE)
                        return hvp_fail(-E2BIG, "bundle would exceed %u bytes", HVP_BUNDLE_MAX_SIZE);
        }
        buf = calloc(1, total);
        if (!buf)
                return hvp_fail(-ENOMEM, "out of memory");
        memcpy(buf, HVP_BUNDLE_MAGIC, 8);
        hvp_put_le32(buf + 8, HVP_BUNDLE_VERSION);
        hvp_put_le32(buf + 12, HEADER_SIZE);
        hvp_put_le32(buf + 16, ENTRY_SIZE);
        hvp_put_le32(buf + 20, (uint32_t)nr_entries);
        hvp_put_le64(buf + 24, total);
        off = HEADER_SIZE + nr_entries * ENTRY_SIZE;
        for (size_t i = 0; i < nr_entries; i++) {
                uint8_t *e = buf + HEADER_SIZE + i * ENTRY_SIZE;

                off = align8(off);
                memcpy(e, entries[i].name, strlen(entries[i].name));
                hvp_put_le64(e + 64, off);
                hvp_put_le64(e + 72, entries[i].size);
                sha256(entries[i].data ? entries[i].data : (const void *)"", entries[i].size, e + 80);
                if (entries[i].size)
                        memcpy(buf + off, entries[i].data, entries[i].size);
                off += entries[i].size;
        }
        *ret_buf = buf;
        *ret_len = total;
        return 0;
}

static int parse_container(struct bundle *b)
{
        const uint8_t *d = b->data;
        size_t len = b->pub.size, n, next;

        if (len < HEADER_SIZE)
                return hvp_fail(-EINVAL, "bundle truncated: %zu bytes, the header alone is %u", len, HEADER_SIZE);
        if (memcmp(d, HVP_BUNDLE_MAGIC, 8) != 0)
                return hvp_fail(-EINVAL, "not a bundle (bad magic at offset 0)");
        if (hvp_le32(d + 8) != HVP_BUNDLE_VERSION)
                return hvp_fail(-EINVAL, "bundle version %u is not supported (offset 8)", hvp_le32(d + 8));
        if (hvp_le32(d + 12) != HEADER_SIZE || hvp_le32(d + 16) != ENTRY_SIZE)
                return hvp_fail(-EINVAL, "bad header or entry size (offsets 12, 16)");
        n = hvp_le32(d + 20);
        if (n == 0)
                return hvp_fail(-EINVAL, "bundle has no entries (offset 20)");
        if (n > HVP_BUNDLE_MAX_ENTRIES)
                return hvp_fail(-E2BIG, "%zu entries exceed the bound of %u (offset 20)", n, HVP_BUNDLE_MAX_ENTRIES);
        if (hvp_le64(d + 24) != len)
                return hvp_fail(-EINVAL, "bundle is %zu bytes, its header says %llu (truncated or padded)", len,
                                (unsigned long long)hvp_le64(d + 24));
        if (!all_zero(d + 32, HEADER_SIZE - 32))
                return hvp_fail(-EINVAL, "reserved header bytes are not zero (offset 32)");
        next = HEADER_SIZE + n * ENTRY_SIZE;
        if (next > len)
                return hvp_fail(-EINVAL, "entry table (%zu entries) runs past the end of the bundle", n);

        b->entries = calloc(n, sizeof(*b->entries));
        if (!b->entries)
                return hvp_fail(-ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
                const uint8_t *e = d + HEADER_SIZE + i * ENTRY_SIZE;
                size_t eoff = HEADER_SIZE + i * ENTRY_SIZE, nlen = strnlen((const char *)e, NAME_FIELD);
                uint64_t off = hvp_le64(e + 64), size = hvp_le64(e + 72);
                struct hvp_payload *p = &b->entries[i];

                if (nlen == NAME_FIELD || !valid_name((const char *)e, nlen) || !all_zero(e + nlen, NAME_FIELD - nlen))
                        return hvp_fail(-EINVAL, "entry %zu: bad name (offset %zu)", i, eoff);
                memcpy(b->names[i], e, nlen);
                p->name = b->names[i];
                for (size_t k = 0; k < i; k++)
                        if (strcmp(b->names[k], p->name) == 0)
                                return hvp_fail(-EINVAL, "entry %zu: name %s used twice", i, p->name);
                if (!all_zero(e + 112, ENTRY_SIZE - 112))
                        return hvp_fail(-EINVAL, "entry %s: reserved bytes are not zero (offset %zu)", p->name,
                                        eoff + 112);
                size_t prev_end = next;

                next = align8(next);
                if (off != next)
                        return hvp_fail(-EINVAL, "entry %s: data at %llu, expected %zu (offset %zu)", p->name,
                                        (unsigned long long)off, next, eoff + 64);
                if (!hvp_range_within(off, size, 0, len))
                        return hvp_fail(-EINVAL, "entry %s: %llu bytes at %llu run past the end of the bundle",
                                        p->name, (unsigned long long)size, (unsigned long long)off);
                if (!all_zero(d + prev_end, off - prev_end))
                        return hvp_fail(-EINVAL, "entry %s: padding before it is not zero", p->name);
                p->data = d + off;
                p->size = size;
                memcpy(p->sha256, e + 80, 32);
                next = off + size;
        }
        if (next != len)
                return hvp_fail(-EINVAL, "%zu bytes after the last entry", len - next);
        /* Hashes last: every structural error is reported as such, not as corruption. */
        for (size_t i = 0; i < n; i++) {
                uint8_t digest[32];

                sha256(b->entries[i].data, b->entries[i].size, digest);
                if (memcmp(digest, b->entries[i].sha256, 32) != 0)
                        return hvp_fail(-EBADMSG, "entry %s: SHA-256 mismatch (the bundle is corrupt)",
                                        b->entries[i].name);
        }
        b->pub.entries = b->entries;
        b->pub.nr_entries = n;
        return 0;
}

const struct hvp_payload *hvp_bundle_entry(const struct hvp_bundle *b, const char *name)
{
        if (!b || !name)
                return NULL;
        for (size_t i = 0; i < b->nr_entries; i++)
                if (strcmp(b->entries[i].name, name) == 0)
                        return &b->entries[i];
        return NULL;
}

/* Tie the manifest to the payloads and check that every redirect can be placed. */
/* Mark the pin of an import as used (hvp_reloc_imports callback). */
static int mark_pinned_import(void *ctx, const char *name)
{
        const struct manifest *m = ctx;

        for (size_t i = 0; i < m->pub.nr_pins; i++)
                if (strcmp(m->pins[i].symbol, name) == 0)
                        m->pin_used[i] = true;
        return 0;
}

/* Every <pin> names a symbol the bundle uses: a site's symbol or an import of its code. */
static int check_pins_used(struct manifest *m)
{
        for (size_t i = 0; i < m->pub.nr_sites; i++) {
                const struct hvp_site *s = &m->sites[i];
                int r;

                mark_pinned_import(m, s->symbol);
                if (s->kind != HVP_SITE_REDIRECT)
                        continue;
                r = hvp_reloc_imports(s->payload->data, s->payload->size, s->function, mark_pinned_import, m);
                if (r < 0)
                        return hvp_fail_context(r, "manifest line %u: imports of %s", s->line, s->function);
        }
        for (size_t i = 0; i < m->pub.nr_pins; i++)
                if (!m->pin_used[i])
                        return hvp_fail(-EINVAL, "manifest line %u: %s is pinned but no site or patch code uses it",
                                        m->pins[i].line, m->pins[i].symbol);
        return 0;
}

static int bind_payloads(struct bundle *b)
{
        struct manifest *m = b->manifest;

        for (size_t i = 1; i < b->pub.nr_entries; i++) {
                bool declared = false;

                for (size_t k = 0; k < m->nr_objects; k++)
                        declared |= strcmp(m->objects[k].name, b->entries[i].name) == 0;
                if (!declared)
                        return hvp_fail(-EINVAL, "entry %s is not declared by the manifest", b->entries[i].name);
        }
        for (size_t k = 0; k < m->nr_objects; k++)
                if (!hvp_bundle_entry(&b->pub, m->objects[k].name))
                        return hvp_fail(-EINVAL, "manifest line %u: object %s is not in the bundle",
                                        m->objects[k].line, m->objects[k].name);
        for (size_t i = 0; i < m->pub.nr_sites; i++) {
                struct hvp_site *s = &m->sites[i];
                struct hvp_reloc_info info;
                int r;

                if (s->kind == HVP_SITE_REPLACE) {
                        /* Lengths of x86 instructions do not depend on where they are. */
                        r = hvp_insn_check_range(s->expected, s->len, 0);
                        if (r < 0)
                                return hvp_fail_context(-EINVAL, "manifest line %u: expected= is not whole "
                                                        "instructions", s->line);
                        r = hvp_insn_check_range(s->new_bytes, s->len, 0);
                        if (r < 0)
                                return hvp_fail_context(-EINVAL, "manifest line %u: new= is not whole "
                                                        "instructions", s->line);
                        continue;
                }
                s->payload = hvp_bundle_entry(&b->pub, s->object);
                r = hvp_reloc_measure(s->payload->data, s->payload->size, s->function, &info);
                if (r < 0)
                        return hvp_fail_context(r, "manifest line %u: redirect of %s to %s in %s", s->line,
                                                s->symbol, s->function, s->object);
                s->code_size = info.size;
                s->code_align = info.align;
        }
        return check_pins_used(m);
}

void hvp_bundle_free(struct hvp_bundle *pub)
{
        struct bundle *b = (struct bundle *)pub;

        if (!b)
                return;
        manifest_free(b->manifest);
        free(b->entries);
        free(b->data);
        free(b);
}

/* Takes ownership of data (malloc'ed). */
static int bundle_open_owned(uint8_t *data, size_t len, struct hvp_bundle **ret_bundle)
{
        struct bundle *b = calloc(1, sizeof(*b));
        int r;

        if (!b) {
                free(data);
                return hvp_fail(-ENOMEM, "out of memory");
        }
        b->data = data;
        b->pub.data = data;
        b->pub.size = len;
        r = parse_container(b);
        if (r == 0 && strcmp(b->entries[0].name, HVP_BUNDLE_MANIFEST) != 0)
                r = hvp_fail(-EINVAL, "the first entry is %s, not %s", b->entries[0].name, HVP_BUNDLE_MANIFEST);
        if (r == 0)
                r = manifest_parse(b->entries[0].data, b->entries[0].size, MANIFEST_IN_BUNDLE, &b->manifest);
        if (r == 0)
                r = bind_payloads(b);
        if (r < 0) {
                hvp_bundle_free(&b->pub);
                return r;
        }
        b->pub.manifest = b->manifest->pub;
        sha256(data, len, b->pub.sha256);
        *ret_bundle = &b->pub;
        return 0;
}

int hvp_bundle_open_mem(const void *buf, size_t len, struct hvp_bundle **ret_bundle)
{
        uint8_t *copy;

        if (!buf && len)
                return hvp_fail(-EINVAL, "no buffer");
        if (len > HVP_BUNDLE_MAX_SIZE)
                return hvp_fail(-E2BIG, "bundle of %zu bytes exceeds the bound of %u", len, HVP_BUNDLE_MAX_SIZE);
        copy = malloc(len ? len : 1);
        if (!copy)
                return hvp_fail(-ENOMEM, "out of memory");
        if (len)
                memcpy(copy, buf, len);
        return bundle_open_owned(copy, len, ret_bundle);
}

int hvp_bundle_open_file(const char *path, struct hvp_bundle **ret_bundle)
{
        void *data;
        size_t len;
        int r;

        if (!path)
                return hvp_fail(-EINVAL, "no path");
        r = hvp_read_file_bounded(path, HVP_BUNDLE_MAX_SIZE, &data, &len);
        if (r < 0)
                return r;
        return bundle_open_owned(data, len, ret_bundle);
}

int hvp_bundle_pack(const char *manifest_path, uint8_t **ret_buf, size_t *ret_len)
{
        struct hvp_bundle_input in[HVP_BUNDLE_MAX_ENTRIES] = { 0 };
        uint8_t *objs[HVP_BUNDLE_MAX_ENTRIES] = { 0 };
        struct manifest *m = NULL;
        struct hvp_bundle *check = NULL;
        uint8_t *xml = NULL, *out = NULL;
        char *dircopy = NULL;
        const char *dir;
        size_t xml_len, out_len = 0, n = 0;
        int r;

        if (!manifest_path)
                return hvp_fail(-EINVAL, "no manifest path");
        r = hvp_read_file_bounded(manifest_path, HVP_MANIFEST_MAX_SIZE, (void **)&xml, &xml_len);
        if (r < 0)
                return r;
        r = manifest_parse(xml, xml_len, MANIFEST_SOURCE, &m);
        if (r < 0)
                goto out;
        dircopy = strdup(manifest_path);
        if (!dircopy) {
                r = hvp_fail(-ENOMEM, "out of memory");
                goto out;
        }
        dir = dirname(dircopy);
        in[n++] = (struct hvp_bundle_input){ HVP_BUNDLE_MANIFEST, xml, xml_len };
        for (size_t k = 0; k < m->nr_objects; k++) {
                const struct manifest_object *o = &m->objects[k];
                char *path;

                if (o->file[0] == '/')
                        path = strdup(o->file);
                else if (asprintf(&path, "%s/%s", dir, o->file) < 0)
                        path = NULL;
                if (!path) {
                        r = hvp_fail(-ENOMEM, "out of memory");
                        goto out;
                }
                r = hvp_read_file_bounded(path, HVP_RELOC_MAX_OBJECT, (void **)&objs[n], &in[n].size);
                free(path);
                if (r < 0) {
                        r = hvp_fail_context(r, "manifest line %u: object %s", o->line, o->name);
                        goto out;
                }
                in[n].name = o->name;
                in[n].data = objs[n];
                n++;
        }
        r = hvp_bundle_write(in, n, &out, &out_len);
        if (r < 0)
                goto out;
        /* What pack writes is what apply will accept: the reader's checks, objects included. */
        r = hvp_bundle_open_mem(out, out_len, &check);
        if (r < 0)
                goto out;
        *ret_buf = out;
        *ret_len = out_len;
        out = NULL;
out:
        hvp_bundle_free(check);
        free(out);
        for (size_t i = 0; i < n; i++)
                free(objs[i]);
        free(dircopy);
        manifest_free(m);
        free(xml);
        return r;
}

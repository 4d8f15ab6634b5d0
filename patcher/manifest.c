/*
 * The bundle manifest: XML validated against docs/schemas/manifest.rng (compiled into
 * the library), then read into struct hvp_manifest and checked against the rules the
 * schema cannot express (docs/bundle.md).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/relaxng.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include "common/error.h"
#include "common/util.h"
#include "patcher/manifest-rng.h"
#include "patcher/manifest.h"

#define MANIFEST_NS "urn:hvpatch:manifest:1"
/* A redirect writes at most endbr64 + jmp rel32 at the entry of its symbol. */
#define REDIRECT_SPAN 9u

/* The first libxml2 message of one parse or validation, for the failure reason. */
struct xml_errors {
        char msg[512];
        int line;
        bool have;
};

#if LIBXML_VERSION >= 21200
static void collect_error(void *ctx, const xmlError *e)
#else
static void collect_error(void *ctx, xmlErrorPtr e)
#endif
{
        struct xml_errors *errs = ctx;
        size_t n;

        if (errs->have || !e || e->level < XML_ERR_ERROR)
                return;
        snprintf(errs->msg, sizeof(errs->msg), "%s", e->message ? e->message : "unknown error");
        n = strlen(errs->msg);
        while (n > 0 && (errs->msg[n - 1] == '\n' || errs->msg[n - 1] == ' '))
                errs->msg[--n] = '\0';
        errs->line = e->line;
        errs->have = true;
}

static int xml_fail(const struct xml_errors *errs, const char *what)
{
        if (!errs->have)
                return hvp_fail(-EINVAL, "manifest: %s", what);
        if (errs->line > 0)
                return hvp_fail(-EINVAL, "manifest line %d: %s: %s", errs->line, what, errs->msg);
        return hvp_fail(-EINVAL, "manifest: %s: %s", what, errs->msg);
}

static int validate_schema(xmlDocPtr doc)
{
        struct xml_errors errs = { 0 };
        xmlRelaxNGParserCtxtPtr pctx;
        xmlRelaxNGValidCtxtPtr vctx = NULL;
        xmlRelaxNGPtr schema = NULL;
        int r;

        pctx = xmlRelaxNGNewMemParserCtxt((const char *)manifest_rng, (int)sizeof(manifest_rng));
        if (!pctx)
                return hvp_fail(-ENOMEM, "out of memory");
        xmlRelaxNGSetParserStructuredErrors(pctx, collect_error, &errs);
        schema = xmlRelaxNGParse(pctx);
        xmlRelaxNGFreeParserCtxt(pctx);
        if (!schema)
                return hvp_fail(-EINVAL, "the built-in manifest schema does not compile: %s", errs.msg);
        vctx = xmlRelaxNGNewValidCtxt(schema);
        if (!vctx) {
                xmlRelaxNGFree(schema);
                return hvp_fail(-ENOMEM, "out of memory");
        }
        xmlRelaxNGSetValidStructuredErrors(vctx, collect_error, &errs);
        r = xmlRelaxNGValidateDoc(vctx, doc);
        xmlRelaxNGFreeValidCtxt(vctx);
        xmlRelaxNGFree(schema);
        if (r != 0)
                return xml_fail(&errs, "does not match the schema");
        return 0;
}

static int parse_xml(const void *xml, size_t len, xmlDocPtr *ret_doc)
{
        struct xml_errors errs = { 0 };
        xmlDocPtr doc;

        /*
         * No DTD: no entities to expand (billion laughs) and nothing to fetch. The
         * schema is the only grammar a manifest has.
         */
        if (memmem(xml, len, "<!DOCTYPE", 9) || memmem(xml, len, "<!ENTITY", 8))
                return hvp_fail(-EINVAL, "manifest: a DOCTYPE or ENTITY declaration is not allowed");
        /* The handler is per thread in libxml2; put back the caller's afterwards. */
        xmlStructuredErrorFunc saved_fn = xmlStructuredError;
        void *saved_ctx = xmlStructuredErrorContext;

        xmlSetStructuredErrorFunc(&errs, collect_error);
        doc = xmlReadMemory(xml, (int)len, "manifest.xml", NULL, XML_PARSE_NONET | XML_PARSE_NOCDATA);
        xmlSetStructuredErrorFunc(saved_ctx, saved_fn);
        if (!doc)
                return xml_fail(&errs, "not well-formed XML");
        if (doc->intSubset || doc->extSubset) {
                xmlFreeDoc(doc);
                return hvp_fail(-EINVAL, "manifest: a DTD is not allowed");
        }
        *ret_doc = doc;
        return 0;
}

static bool is_element(xmlNodePtr n, const char *name)
{
        return n && n->type == XML_ELEMENT_NODE && n->ns && n->ns->href &&
               strcmp((const char *)n->ns->href, MANIFEST_NS) == 0 && strcmp((const char *)n->name, name) == 0;
}

static xmlNodePtr next_element(xmlNodePtr n)
{
        while (n && n->type != XML_ELEMENT_NODE)
                n = n->next;
        return n;
}

static unsigned line_of(xmlNodePtr n)
{
        long l = xmlGetLineNo(n);

        return l > 0 ? (unsigned)l : 0;
}

/* A copy of attribute name of n (malloc'ed), or NULL with the reason set. */
static char *attr(xmlNodePtr n, const char *name, bool required, int *r)
{
        xmlChar *v = xmlGetNoNsProp(n, (const xmlChar *)name);
        char *copy;

        if (!v) {
                if (required)
                        *r = hvp_fail(-EINVAL, "manifest line %u: <%s> lacks %s=", line_of(n), n->name, name);
                return NULL;
        }
        copy = strdup((const char *)v);
        xmlFree(v);
        if (!copy)
                *r = hvp_fail(-ENOMEM, "out of memory");
        return copy;
}

static char *text(xmlNodePtr n, int *r)
{
        xmlChar *v = xmlNodeGetContent(n);
        char *copy = strdup(v ? (const char *)v : "");

        xmlFree(v);
        if (!copy)
                *r = hvp_fail(-ENOMEM, "out of memory");
        return copy;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *ret)
{
        char *end;
        unsigned long long v;

        if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, strncmp(s, "0x", 2) == 0 ? 16 : 10);
        if (errno || *end || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

void manifest_free(struct manifest *m)
{
        if (!m)
                return;
        free((char *)m->pub.id);
        free((char *)m->pub.series);
        free((char *)m->pub.description);
        free((char *)m->pub.os);
        free((char *)m->pub.banner);
        for (size_t i = 0; i < m->pub.nr_sites; i++) {
                struct hvp_site *s = &m->sites[i];

                free((char *)s->symbol);
                free((uint8_t *)s->expected);
                free((uint8_t *)s->new_bytes);
                free((char *)s->object);
                free((char *)s->function);
        }
        free(m->sites);
        for (size_t i = 0; i < m->pub.nr_pins; i++) {
                free((char *)m->pins[i].symbol);
                free((char *)m->pins[i].near);
        }
        free(m->pins);
        free(m->pin_used);
        for (size_t i = 0; i < m->nr_objects; i++) {
                free(m->objects[i].name);
                free(m->objects[i].file);
        }
        free(m->objects);
        free(m);
}

static int parse_target(struct manifest *m, xmlNodePtr t)
{
        xmlNodePtr c;
        char *hex;
        int r = 0;

        m->pub.os = attr(t, "os", true, &r);
        if (r < 0)
                return r;
        for (c = next_element(t->children); c; c = next_element(c->next)) {
                if (is_element(c, "build-id")) {
                        hex = text(c, &r);
                        if (!hex)
                                return r;
                        r = hvp_hex_decode(hex, m->pub.build_id, sizeof(m->pub.build_id), &m->pub.build_id_len);
                        free(hex);
                        if (r < 0)
                                return hvp_fail_context(r, "manifest line %u: build-id", line_of(c));
                } else if (is_element(c, "banner")) {
                        free((char *)m->pub.banner);
                        m->pub.banner = text(c, &r);
                        if (r < 0)
                                return r;
                        if (strlen(m->pub.banner) > HVP_MANIFEST_MAX_TEXT)
                                return hvp_fail(-E2BIG, "manifest line %u: banner too long", line_of(c));
                }
        }
        if (m->pub.build_id_len == 0)
                return hvp_fail(-EINVAL, "manifest line %u: target has no build-id", line_of(t));
        return 0;
}

static int parse_object(struct manifest *m, xmlNodePtr n, enum manifest_mode mode)
{
        struct manifest_object *o;
        int r = 0;

        o = &m->objects[m->nr_objects];
        o->line = line_of(n);
        o->name = attr(n, "name", true, &r);
        if (r < 0)
                return r;
        m->nr_objects++;
        o->file = attr(n, "file", mode == MANIFEST_SOURCE, &r);
        if (r < 0)
                return r;
        if (strcmp(o->name, HVP_BUNDLE_MANIFEST) == 0)
                return hvp_fail(-EINVAL, "manifest line %u: object name %s is reserved", o->line, o->name);
        for (size_t i = 0; i + 1 < m->nr_objects; i++)
                if (strcmp(m->objects[i].name, o->name) == 0)
                        return hvp_fail(-EINVAL, "manifest line %u: object %s declared twice", o->line, o->name);
        return 0;
}

/* <pin symbol= near= offset=>: offset is [+-]hex or [+-]decimal (the schema's pattern). */
static int parse_pin(struct manifest *m, xmlNodePtr n)
{
        struct hvp_pin *p = &m->pins[m->pub.nr_pins];
        bool negative;
        uint64_t v = 0;
        char *off;
        int r = 0;

        p->line = line_of(n);
        p->symbol = attr(n, "symbol", true, &r);
        if (r < 0)
                return r;
        m->pub.nr_pins++;
        p->near = attr(n, "near", true, &r);
        if (r < 0)
                return r;
        off = attr(n, "offset", true, &r);
        if (!off)
                return r;
        negative = off[0] == '-';
        r = parse_u64(off + (off[0] == '-' || off[0] == '+'), (uint64_t)HVP_PIN_MAX_OFFSET, &v);
        free(off);
        if (r < 0)
                return hvp_fail(-EINVAL, "manifest line %u: pin offset= is not a number within +-0x%llx", p->line,
                                (unsigned long long)HVP_PIN_MAX_OFFSET);
        p->offset = negative ? -(int64_t)v : (int64_t)v;
        for (size_t i = 0; i + 1 < m->pub.nr_pins; i++)
                if (strcmp(m->pins[i].symbol, p->symbol) == 0)
                        return hvp_fail(-EINVAL, "manifest line %u: %s is pinned twice (line %u)", p->line, p->symbol,
                                        m->pins[i].line);
        return 0;
}

static int parse_bytes(xmlNodePtr n, const char *name, uint8_t **ret, size_t *ret_len)
{
        uint8_t buf[HVP_REPLACE_MAX_LEN];
        size_t len;
        int r = 0;
        char *hex = attr(n, name, true, &r);

        if (!hex)
                return r;
        r = hvp_hex_decode(hex, buf, sizeof(buf), &len);
        free(hex);
        if (r < 0)
                return hvp_fail_context(r, "manifest line %u: %s=", line_of(n), name);
        if (len == 0)
                return hvp_fail(-EINVAL, "manifest line %u: %s= is empty", line_of(n), name);
        *ret = malloc(len);
        if (!*ret)
                return hvp_fail(-ENOMEM, "out of memory");
        memcpy(*ret, buf, len);
        *ret_len = len;
        return 0;
}

static int parse_replace(struct hvp_site *s, xmlNodePtr n)
{
        uint8_t *expected = NULL, *new_bytes = NULL;
        size_t elen = 0, nlen = 0;
        char *off;
        int r = 0;

        s->kind = HVP_SITE_REPLACE;
        off = attr(n, "offset", true, &r);
        if (!off)
                return r;
        r = parse_u64(off, UINT32_MAX, &s->offset);
        free(off);
        if (r < 0)
                return hvp_fail(-EINVAL, "manifest line %u: bad offset=", s->line);
        r = parse_bytes(n, "expected", &expected, &elen);
        s->expected = expected;
        if (r < 0)
                return r;
        r = parse_bytes(n, "new", &new_bytes, &nlen);
        s->new_bytes = new_bytes;
        if (r < 0)
                return r;
        if (elen != nlen)
                return hvp_fail(-EINVAL, "manifest line %u: expected= has %zu bytes, new= has %zu", s->line, elen,
                                nlen);
        if (memcmp(expected, new_bytes, elen) == 0)
                return hvp_fail(-EINVAL, "manifest line %u: new= equals expected=", s->line);
        s->len = elen;
        return 0;
}

static int parse_redirect(struct hvp_site *s, xmlNodePtr n)
{
        int r = 0;

        s->kind = HVP_SITE_REDIRECT;
        s->object = attr(n, "object", true, &r);
        if (r == 0)
                s->function = attr(n, "function", true, &r);
        return r;
}

/* consistency="site|function" (default site): what the stack check guards (docs/bundle.md). */
static int parse_consistency(struct hvp_site *s, xmlNodePtr n)
{
        int r = 0;
        char *v = attr(n, "consistency", false, &r);

        if (r < 0)
                return r;
        if (!v || strcmp(v, "site") == 0)
                s->consistency = HVP_CONSISTENCY_SITE;
        else if (strcmp(v, "function") == 0)
                s->consistency = HVP_CONSISTENCY_FUNCTION;
        else
                r = hvp_fail(-EINVAL, "manifest line %u: consistency=\"%.64s\": site or function expected", s->line, v);
        free(v);
        return r;
}

static int parse_sites(struct manifest *m, xmlNodePtr sites)
{
        size_t n = 0;
        int r = 0;

        for (xmlNodePtr c = next_element(sites->children); c; c = next_element(c->next))
                n++;
        if (n == 0)
                return hvp_fail(-EINVAL, "manifest line %u: no sites", line_of(sites));
        if (n > HVP_MANIFEST_MAX_SITES)
                return hvp_fail(-E2BIG, "manifest: %zu sites exceed the bound of %u", n, HVP_MANIFEST_MAX_SITES);
        m->sites = calloc(n, sizeof(*m->sites));
        if (!m->sites)
                return hvp_fail(-ENOMEM, "out of memory");
        m->pub.sites = m->sites;
        for (xmlNodePtr c = next_element(sites->children); c && r == 0; c = next_element(c->next)) {
                struct hvp_site *s = &m->sites[m->pub.nr_sites++];

                s->line = line_of(c);
                s->symbol = attr(c, "symbol", true, &r);
                if (r < 0)
                        break;
                if (is_element(c, "replace"))
                        r = parse_replace(s, c);
                else if (is_element(c, "redirect"))
                        r = parse_redirect(s, c);
                else
                        r = hvp_fail(-EINVAL, "manifest line %u: unknown site <%s>", s->line, c->name);
                if (r == 0)
                        r = parse_consistency(s, c);
        }
        return r;
}

/* The bytes a site may write, relative to its symbol. */
static void site_span(const struct hvp_site *s, uint64_t *start, uint64_t *end)
{
        if (s->kind == HVP_SITE_REDIRECT) {
                *start = 0;
                *end = REDIRECT_SPAN;
        } else {
                *start = s->offset;
                *end = s->offset + s->len;
        }
}

static int check_rules(struct manifest *m)
{
        for (size_t i = 0; i < m->pub.nr_sites; i++) {
                struct hvp_site *s = &m->sites[i];

                if (s->kind == HVP_SITE_REDIRECT) {
                        struct manifest_object *o = NULL;

                        for (size_t k = 0; k < m->nr_objects; k++)
                                if (strcmp(m->objects[k].name, s->object) == 0)
                                        o = &m->objects[k];
                        if (!o)
                                return hvp_fail(-EINVAL, "manifest line %u: redirect names object %s, which is not "
                                                "declared", s->line, s->object);
                        o->used = true;
                }
                /* Two sites of one symbol must not write the same bytes. */
                for (size_t k = 0; k < i; k++) {
                        const struct hvp_site *t = &m->sites[k];
                        uint64_t a0, a1, b0, b1;

                        if (strcmp(s->symbol, t->symbol) != 0)
                                continue;
                        if (s->kind == HVP_SITE_REDIRECT && t->kind == HVP_SITE_REDIRECT)
                                return hvp_fail(-EINVAL, "manifest line %u: %s is redirected twice (line %u)",
                                                s->line, s->symbol, t->line);
                        site_span(s, &a0, &a1);
                        site_span(t, &b0, &b1);
                        if (a0 < b1 && b0 < a1)
                                return hvp_fail(-EINVAL, "manifest line %u: site overlaps the site of line %u in %s",
                                                s->line, t->line, s->symbol);
                }
        }
        for (size_t k = 0; k < m->nr_objects; k++)
                if (!m->objects[k].used)
                        return hvp_fail(-EINVAL, "manifest line %u: object %s is not used by any redirect",
                                        m->objects[k].line, m->objects[k].name);
        return 0;
}

static int read_manifest(struct manifest *m, xmlNodePtr root, enum manifest_mode mode)
{
        xmlNodePtr c;
        size_t nr_objects = 0, nr_pins = 0;
        char *seq;
        int r = 0;

        if (!is_element(root, "patch"))
                return hvp_fail(-EINVAL, "manifest: the root element is not <patch> of %s", MANIFEST_NS);
        m->pub.id = attr(root, "id", true, &r);
        if (r == 0)
                m->pub.series = attr(root, "series", true, &r);
        if (r < 0)
                return r;
        seq = attr(root, "sequence", true, &r);
        if (!seq)
                return r;
        uint64_t v = 0;
        r = parse_u64(seq, UINT32_MAX, &v);
        free(seq);
        if (r < 0 || v == 0)
                return hvp_fail(-EINVAL, "manifest line %u: bad sequence=", line_of(root));
        m->pub.sequence = (uint32_t)v;

        for (c = next_element(root->children); c; c = next_element(c->next)) {
                nr_objects += is_element(c, "object");
                nr_pins += is_element(c, "pin");
        }
        if (nr_pins > HVP_MANIFEST_MAX_PINS)
                return hvp_fail(-E2BIG, "manifest: %zu pins exceed the bound of %u", nr_pins, HVP_MANIFEST_MAX_PINS);
        m->pins = calloc(nr_pins ? nr_pins : 1, sizeof(*m->pins));
        m->pin_used = calloc(nr_pins ? nr_pins : 1, sizeof(*m->pin_used));
        if (!m->pins || !m->pin_used)
                return hvp_fail(-ENOMEM, "out of memory");
        m->pub.pins = m->pins;
        if (nr_objects >= HVP_BUNDLE_MAX_ENTRIES)
                return hvp_fail(-E2BIG, "manifest: %zu objects exceed the bound of %u", nr_objects,
                                HVP_BUNDLE_MAX_ENTRIES - 1);
        m->objects = calloc(nr_objects ? nr_objects : 1, sizeof(*m->objects));
        if (!m->objects)
                return hvp_fail(-ENOMEM, "out of memory");

        for (c = next_element(root->children); c && r == 0; c = next_element(c->next)) {
                if (is_element(c, "description")) {
                        free((char *)m->pub.description);
                        m->pub.description = text(c, &r);
                } else if (is_element(c, "target")) {
                        r = parse_target(m, c);
                } else if (is_element(c, "object")) {
                        r = parse_object(m, c, mode);
                } else if (is_element(c, "pin")) {
                        r = parse_pin(m, c);
                } else if (is_element(c, "sites")) {
                        if (m->sites)
                                r = hvp_fail(-EINVAL, "manifest line %u: more than one <sites>", line_of(c));
                        else
                                r = parse_sites(m, c);
                } else {
                        r = hvp_fail(-EINVAL, "manifest line %u: unknown element <%s>", line_of(c), c->name);
                }
        }
        if (r < 0)
                return r;
        if (!m->pub.description) {
                m->pub.description = strdup("");
                if (!m->pub.description)
                        return hvp_fail(-ENOMEM, "out of memory");
        }
        if (!m->pub.os || !m->sites)
                return hvp_fail(-EINVAL, "manifest: <target> and <sites> are required");
        return check_rules(m);
}

int manifest_parse(const void *xml, size_t len, enum manifest_mode mode, struct manifest **ret)
{
        struct manifest *m;
        xmlDocPtr doc;
        int r;

        if (len > HVP_MANIFEST_MAX_SIZE)
                return hvp_fail(-E2BIG, "manifest of %zu bytes exceeds the bound of %u", len, HVP_MANIFEST_MAX_SIZE);
        if (len == 0)
                return hvp_fail(-EINVAL, "manifest is empty");
        xmlInitParser();
        r = parse_xml(xml, len, &doc);
        if (r < 0)
                return r;
        r = validate_schema(doc);
        if (r < 0) {
                xmlFreeDoc(doc);
                return r;
        }
        m = calloc(1, sizeof(*m));
        if (!m) {
                xmlFreeDoc(doc);
                return hvp_fail(-ENOMEM, "out of memory");
        }
        r = read_manifest(m, xmlDocGetRootElement(doc), mode);
        xmlFreeDoc(doc);
        if (r < 0) {
                manifest_free(m);
                return r;
        }
        *ret = m;
        return 0;
}

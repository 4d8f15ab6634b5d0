/*
 * libxml2 as the policy module uses it: hostile input in, reasons out, nothing printed.
 * libxml2 reports errors through per-thread global handlers; we swap ours in for the
 * duration of one call and put the caller's back.
 */
#include <errno.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/relaxng.h>
#include <libxml/xmlerror.h>

#include "common/error.h"
#include "common/util.h"
#include "policy/internal.h"

struct xml_errors {
        char first[512];
        xmlStructuredErrorFunc old_serror;
        void *old_sctx;
        xmlGenericErrorFunc old_generic;
        void *old_gctx;
};

static void on_structured_error(void *userdata, xmlErrorPtr e)
{
        struct xml_errors *x = userdata;
        size_t n;

        if (x->first[0] || !e)
                return;
        snprintf(x->first, sizeof(x->first), "line %d: %s", e->line, e->message ? e->message : "error");
        /* libxml2's messages end in a newline. */
        n = strlen(x->first);
        while (n > 0 && (x->first[n - 1] == '\n' || x->first[n - 1] == ' '))
                x->first[--n] = '\0';
}

static void on_generic_error(void *userdata, const char *fmt, ...)
{
        /* Generic messages come in fragments without a line: the structured one says more. */
}

static void capture_begin(struct xml_errors *x)
{
        x->first[0] = '\0';
        x->old_serror = xmlStructuredError;
        x->old_sctx = xmlStructuredErrorContext;
        x->old_generic = xmlGenericError;
        x->old_gctx = xmlGenericErrorContext;
        xmlSetStructuredErrorFunc(x, on_structured_error);
        xmlSetGenericErrorFunc(x, on_generic_error);
}

static void capture_end(struct xml_errors *x)
{
        xmlSetStructuredErrorFunc(x->old_sctx, x->old_serror);
        xmlSetGenericErrorFunc(x->old_gctx, x->old_generic);
}

int hvp_xml_read(const void *data, size_t len, const char *what, xmlDoc **ret_doc)
{
        struct xml_errors x;
        xmlDoc *doc;

        if (len > INT32_MAX)
                return hvp_fail(-E2BIG, "%s: too large", what);
        /* A DTD can define entities that expand exponentially: none is needed, none is allowed. */
        if (memmem(data, len, "<!DOCTYPE", 9) || memmem(data, len, "<!ENTITY", 8))
                return hvp_fail(-EINVAL, "%s: a DOCTYPE is not allowed", what);
        xmlInitParser();
        capture_begin(&x);
        doc = xmlReadMemory(data, (int)len, NULL, NULL, XML_PARSE_NONET | XML_PARSE_NOCDATA);
        capture_end(&x);
        if (!doc)
                return hvp_fail(-EINVAL, "%s: not well-formed XML: %s", what, x.first[0] ? x.first : "unknown error");
        if (doc->intSubset || doc->extSubset) {
                xmlFreeDoc(doc);
                return hvp_fail(-EINVAL, "%s: a DOCTYPE is not allowed", what);
        }
        if (!xmlDocGetRootElement(doc)) {
                xmlFreeDoc(doc);
                return hvp_fail(-EINVAL, "%s: no root element", what);
        }
        *ret_doc = doc;
        return 0;
}

int hvp_xml_validate(xmlDoc *doc, const char *schema, size_t schema_len, const char *what)
{
        xmlRelaxNGParserCtxtPtr pctx = NULL;
        xmlRelaxNGValidCtxtPtr vctx = NULL;
        xmlRelaxNGPtr rng = NULL;
        struct xml_errors x;
        int r = 0, v;

        capture_begin(&x);
        pctx = xmlRelaxNGNewMemParserCtxt(schema, (int)schema_len);
        if (!pctx) {
                r = hvp_fail(-ENOMEM, "%s: cannot load the schema", what);
                goto out;
        }
        xmlRelaxNGSetParserStructuredErrors(pctx, on_structured_error, &x);
        rng = xmlRelaxNGParse(pctx);
        if (!rng) {
                r = hvp_fail(-EINVAL, "%s: the built-in schema does not parse: %s", what, x.first);
                goto out;
        }
        vctx = xmlRelaxNGNewValidCtxt(rng);
        if (!vctx) {
                r = hvp_fail(-ENOMEM, "%s: out of memory", what);
                goto out;
        }
        xmlRelaxNGSetValidStructuredErrors(vctx, on_structured_error, &x);
        v = xmlRelaxNGValidateDoc(vctx, doc);
        if (v != 0)
                r = hvp_fail(-EINVAL, "%s: fails the schema: %s", what, x.first[0] ? x.first : "invalid");
out:
        if (vctx)
                xmlRelaxNGFreeValidCtxt(vctx);
        if (rng)
                xmlRelaxNGFree(rng);
        if (pctx)
                xmlRelaxNGFreeParserCtxt(pctx);
        capture_end(&x);
        return r;
}

/*
 * The boot elements of a libvirt domain XML (<os><kernel>, <initrd>, <cmdline>): read
 * them, and rewrite them for a baseline move (include/hvpatch/move.h). No libvirt call
 * here: the caller hands us the text and defines what we return. The XML comes from
 * libvirt, but whoever defined the domain chose much of it: bounded, strict about the
 * shape we touch, and everything else kept as it was.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>

#include <hvpatch/move.h>

#include "common/error.h"
#include "common/util.h"
#include "policy/internal.h"

static bool named(const xmlNode *n, const char *name)
{
        return n->type == XML_ELEMENT_NODE && !n->ns && strcmp((const char *)n->name, name) == 0;
}

struct boot_nodes {
        xmlNode *os, *kernel, *initrd, *cmdline;
};

/* The one <os> of the domain and its boot children: at most one of each. */
static int find_boot_nodes(xmlDoc *doc, struct boot_nodes *b)
{
        xmlNode *root = xmlDocGetRootElement(doc);

        memset(b, 0, sizeof(*b));
        if (!root || !named(root, "domain"))
                return hvp_fail(-EINVAL, "domain XML: the root element is not <domain>");
        for (xmlNode *c = root->children; c; c = c->next) {
                if (!named(c, "os"))
                        continue;
                if (b->os)
                        return hvp_fail(-EINVAL, "domain XML: more than one <os>");
                b->os = c;
        }
        if (!b->os)
                return hvp_fail(-EINVAL, "domain XML: no <os>");
        for (xmlNode *c = b->os->children; c; c = c->next) {
                xmlNode **slot = named(c, "kernel") ? &b->kernel : named(c, "initrd") ? &b->initrd
                                 : named(c, "cmdline") ? &b->cmdline : NULL;

                if (!slot)
                        continue;
                if (*slot)
                        return hvp_fail(-EINVAL, "domain XML: more than one <os><%s>", (const char *)c->name);
                *slot = c;
        }
        return 0;
}

/* An element's text into buf (at most size - 1 bytes). */
static int node_text(xmlNode *n, char *buf, size_t size, const char *what)
{
        xmlChar *v = xmlNodeGetContent(n);
        size_t len;

        if (!v)
                return hvp_fail(-ENOMEM, "out of memory");
        len = strlen((const char *)v);
        if (len >= size) {
                xmlFree(v);
                return hvp_fail(-E2BIG, "domain XML: <os><%s> longer than %zu bytes", what, size - 1);
        }
        memcpy(buf, v, len + 1);
        xmlFree(v);
        return 0;
}

static int read_doc(const char *xml, size_t len, xmlDoc **ret)
{
        if (!xml)
                return hvp_fail(-EINVAL, "missing argument");
        if (len > HVP_DOMAIN_XML_MAX)
                return hvp_fail(-E2BIG, "domain XML larger than %u bytes", HVP_DOMAIN_XML_MAX);
        return hvp_xml_read(xml, len, "domain XML", ret);
}

int hvp_domain_boot_from_xml(const char *xml, size_t len, struct hvp_domain_boot *ret)
{
        struct hvp_domain_boot b = { 0 };
        struct boot_nodes n;
        xmlDoc *doc = NULL;
        int r;

        if (!ret)
                return hvp_fail(-EINVAL, "missing argument");
        r = read_doc(xml, len, &doc);
        if (r < 0)
                return r;
        r = find_boot_nodes(doc, &n);
        if (r == 0 && n.kernel)
                r = node_text(n.kernel, b.kernel, sizeof(b.kernel), "kernel");
        if (r == 0 && n.initrd)
                r = node_text(n.initrd, b.initrd, sizeof(b.initrd), "initrd");
        if (r == 0 && n.cmdline) {
                b.has_cmdline = true;
                r = node_text(n.cmdline, b.cmdline, sizeof(b.cmdline), "cmdline");
        }
        xmlFreeDoc(doc);
        if (r < 0)
                return r;
        b.host_kernel = b.kernel[0] != '\0';
        *ret = b;
        return 0;
}

static int check_value(const char *v, size_t max, bool path, const char *what)
{
        size_t len = strlen(v);

        if (len > max)
                return hvp_fail(-E2BIG, "%s longer than %zu bytes", what, max);
        if (path && (v[0] != '/' || len < 2))
                return hvp_fail(-EINVAL, "%s \"%.64s\" is not an absolute path to a file", what, v);
        for (size_t i = 0; i < len; i++)
                if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
                        return hvp_fail(-EINVAL, "%s holds a control character", what);
        return 0;
}

/* Set n's text to value (escaped on output), or make a new <name> after `after`. */
static int set_text(xmlNode *os, xmlNode **n, xmlNode *after, const char *name, const char *value)
{
        xmlNode *text;

        if (!*n) {
                *n = xmlNewDocNode(os->doc, NULL, (const xmlChar *)name, NULL);
                if (!*n)
                        return hvp_fail(-ENOMEM, "out of memory");
                if (!(after ? xmlAddNextSibling(after, *n) : xmlAddChild(os, *n))) {
                        xmlFreeNode(*n);
                        *n = NULL;
                        return hvp_fail(-ENOMEM, "out of memory");
                }
        }
        while ((*n)->children) {
                xmlNode *c = (*n)->children;

                xmlUnlinkNode(c);
                xmlFreeNode(c);
        }
        text = xmlNewDocText(os->doc, (const xmlChar *)value);
        if (!text || !xmlAddChild(*n, text)) {
                xmlFreeNode(text);
                return hvp_fail(-ENOMEM, "out of memory");
        }
        return 0;
}

int hvp_domain_xml_set_boot(const char *xml, size_t len, const char *kernel, const char *initrd,
                            const char *cmdline, char **ret_xml, size_t *ret_len)
{
        struct hvp_domain_boot cur;
        struct boot_nodes n;
        xmlChar *out = NULL;
        xmlDoc *doc = NULL;
        int r, out_len = 0;

        if (!kernel || !ret_xml || !ret_len)
                return hvp_fail(-EINVAL, "missing argument");
        r = check_value(kernel, HVP_BOOT_PATH_MAX, true, "kernel");
        if (r == 0 && initrd && initrd[0])
                r = check_value(initrd, HVP_BOOT_PATH_MAX, true, "initrd");
        if (r == 0 && cmdline)
                r = check_value(cmdline, HVP_BOOT_CMDLINE_MAX, false, "cmdline");
        if (r < 0)
                return r;
        /* the same checks as a read: bounded values, one of each */
        r = hvp_domain_boot_from_xml(xml, len, &cur);
        if (r < 0)
                return r;
        if (!cur.host_kernel)
                return hvp_fail(-EINVAL, "domain XML: the domain boots its own kernel (no <os><kernel>)");
        r = read_doc(xml, len, &doc);
        if (r < 0)
                return r;
        r = find_boot_nodes(doc, &n);
        if (r == 0)
                r = set_text(n.os, &n.kernel, NULL, "kernel", kernel);
        if (r == 0 && initrd && initrd[0])
                r = set_text(n.os, &n.initrd, n.kernel, "initrd", initrd);
        else if (r == 0 && n.initrd) {
                xmlUnlinkNode(n.initrd);
                xmlFreeNode(n.initrd);
                n.initrd = NULL;
        }
        if (r == 0 && cmdline)
                r = set_text(n.os, &n.cmdline, n.initrd ? n.initrd : n.kernel, "cmdline", cmdline);
        if (r == 0) {
                xmlDocDumpMemory(doc, &out, &out_len);
                if (!out || out_len <= 0)
                        r = hvp_fail(-ENOMEM, "domain XML: cannot write it out");
        }
        xmlFreeDoc(doc);
        if (r < 0) {
                xmlFree(out);
                return r;
        }
        *ret_xml = malloc((size_t)out_len + 1);
        if (!*ret_xml) {
                xmlFree(out);
                return hvp_fail(-ENOMEM, "out of memory");
        }
        memcpy(*ret_xml, out, (size_t)out_len);
        (*ret_xml)[out_len] = '\0';
        *ret_len = (size_t)out_len;
        xmlFree(out);
        return 0;
}

/*
 * Guest facts from a libvirt domain XML document (the text virDomainGetXMLDesc returns).
 * No libvirt call here: the caller hands us the string.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include "common/error.h"
#include "common/util.h"
#include "policy/internal.h"

#define DOMAIN_XML_MAX (1u << 20)
#define LIBOSINFO_NS "http://libosinfo.org/xmlns/libvirt/domain/1.0"

/* libosinfo os ids are URLs of the vendor: http://debian.org/debian/12. */
static const char *const linux_vendors[] = {
        "debian.org", "ubuntu.com", "fedoraproject.org", "redhat.com", "centos.org", "almalinux.org",
        "rockylinux.org", "opensuse.org", "suse.com", "archlinux.org", "alpinelinux.org", "oracle.com",
        "gentoo.org", "linuxmint.com", "mageia.org", "slackware.com", "voidlinux.org", "nixos.org",
        "kernel.org", "clearlinux.org", "amazon.com",
};

/* The string value of an XPath expression ("" if it selects nothing); NULL on failure. */
static xmlChar *xpath_string(xmlXPathContext *ctx, const char *expr)
{
        xmlXPathObject *o = xmlXPathEvalExpression((const xmlChar *)expr, ctx);
        xmlChar *s;

        if (!o)
                return NULL;
        s = xmlXPathCastToString(o);
        xmlXPathFreeObject(o);
        return s;
}

static int copy_string(xmlXPathContext *ctx, const char *expr, char *out, size_t size, const char *what)
{
        xmlChar *s = xpath_string(ctx, expr);
        size_t n;

        if (!s)
                return hvp_fail(-ENOMEM, "domain XML: cannot evaluate %s", what);
        n = strlen((const char *)s);
        if (n >= size) {
                xmlFree(s);
                return hvp_fail(-E2BIG, "domain XML: %s longer than %zu bytes", what, size - 1);
        }
        memcpy(out, s, n + 1);
        xmlFree(s);
        return 0;
}

static bool xpath_true(xmlXPathContext *ctx, const char *expr)
{
        xmlXPathObject *o = xmlXPathEvalExpression((const xmlChar *)expr, ctx);
        bool b;

        if (!o)
                return false;
        b = xmlXPathCastToBoolean(o) == 1;
        xmlXPathFreeObject(o);
        return b;
}

static int normalize_uuid(char *uuid)
{
        if (!uuid[0])
                return 0;
        if (strlen(uuid) != HVP_UUID_STRING_LEN)
                return hvp_fail(-EINVAL, "domain XML: malformed uuid \"%.40s\"", uuid);
        for (int i = 0; i < HVP_UUID_STRING_LEN; i++) {
                char c = uuid[i];
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;

                if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
                        return hvp_fail(-EINVAL, "domain XML: malformed uuid \"%s\"", uuid);
                if (c >= 'A' && c <= 'F')
                        uuid[i] = (char)(c - 'A' + 'a');
        }
        return 0;
}

static int collect_groups(xmlXPathContext *ctx, struct hvp_guest_facts *f)
{
        xmlXPathObject *o;
        int r = 0;

        o = xmlXPathEvalExpression((const xmlChar *)"/domain/metadata//hvp:group", ctx);
        if (!o)
                return hvp_fail(-ENOMEM, "domain XML: cannot evaluate metadata groups");
        f->n_groups = 0;
        for (int i = 0; o->nodesetval && i < o->nodesetval->nodeNr; i++) {
                xmlChar *s = xmlNodeGetContent(o->nodesetval->nodeTab[i]);
                size_t n = s ? strlen((const char *)s) : 0;

                if (!s) {
                        r = hvp_fail(-ENOMEM, "out of memory");
                } else if (f->n_groups >= HVP_FACTS_MAX_GROUPS) {
                        r = hvp_fail(-E2BIG, "domain XML: more than %d hvpatch groups", HVP_FACTS_MAX_GROUPS);
                } else if (n == 0 || n > HVP_NAME_MAX) {
                        r = hvp_fail(n ? -E2BIG : -EINVAL, "domain XML: hvpatch group of %zu bytes", n);
                } else {
                        memcpy(f->groups[f->n_groups++], s, n + 1);
                }
                xmlFree(s);
                if (r < 0)
                        break;
        }
        xmlXPathFreeObject(o);
        return r;
}

static enum hvp_os os_from_libosinfo(const char *id)
{
        const char *host = id;

        if (strncmp(host, "http://", 7) == 0)
                host += 7;
        else if (strncmp(host, "https://", 8) == 0)
                host += 8;
        else
                return HVP_OS_UNKNOWN;
        if (strncmp(host, "microsoft.com/win", 17) == 0)
                return HVP_OS_WINDOWS;
        for (size_t i = 0; i < HVP_ARRAY_SIZE(linux_vendors); i++) {
                size_t n = strlen(linux_vendors[i]);

                if (strncmp(host, linux_vendors[i], n) == 0 && host[n] == '/')
                        return HVP_OS_LINUX;
        }
        return HVP_OS_UNKNOWN;
}

static int find_os(xmlXPathContext *ctx, enum hvp_os *ret)
{
        char os[64], id[256];
        int r;

        r = copy_string(ctx, "normalize-space(/domain/metadata//hvp:os)", os, sizeof(os), "hvpatch os");
        if (r < 0)
                return r;
        if (strcasecmp(os, "linux") == 0) {
                *ret = HVP_OS_LINUX;
                return 0;
        }
        if (strcasecmp(os, "windows") == 0) {
                *ret = HVP_OS_WINDOWS;
                return 0;
        }
        if (os[0])
                return hvp_fail(-EINVAL, "domain XML: hvpatch os \"%s\" is neither linux nor windows", os);
        r = copy_string(ctx, "string(/domain/metadata/libosinfo:libosinfo/libosinfo:os/@id)", id, sizeof(id),
                        "libosinfo os id");
        if (r < 0)
                return r;
        *ret = os_from_libosinfo(id);
        return 0;
}

static int extract(xmlXPathContext *ctx, struct hvp_guest_facts *f)
{
        bool sb_off;
        int r;

        if (!xpath_true(ctx, "/domain"))
                return hvp_fail(-EINVAL, "domain XML: the root element is not <domain>");
        r = copy_string(ctx, "string(/domain/name)", f->name, sizeof(f->name), "domain name");
        if (r < 0)
                return r;
        r = copy_string(ctx, "normalize-space(/domain/uuid)", f->uuid, sizeof(f->uuid), "uuid");
        if (r < 0)
                return r;
        r = normalize_uuid(f->uuid);
        if (r < 0)
                return r;
        /* pflash is where libvirt puts UEFI firmware (OVMF); BIOS (SeaBIOS) is a rom or no loader. */
        f->firmware_uefi = xpath_true(ctx, "/domain/os[@firmware='efi'] or /domain/os/loader[@type='pflash']");
        sb_off = xpath_true(ctx, "/domain/os/firmware/feature[@name='secure-boot' and @enabled='no']");
        f->secure_boot = f->firmware_uefi && !sb_off &&
                         xpath_true(ctx, "/domain/os/loader[@secure='yes'] or "
                                         "/domain/os/firmware/feature[@name='secure-boot' and @enabled='yes']");
        f->direct_kernel = xpath_true(ctx, "/domain/os/kernel[normalize-space(.) != '']");
        r = collect_groups(ctx, f);
        if (r < 0)
                return r;
        return find_os(ctx, &f->os);
}

int hvp_guest_facts_from_domain_xml(const char *xml, size_t len, struct hvp_guest_facts *facts)
{
        struct hvp_guest_facts f;
        xmlXPathContext *ctx = NULL;
        xmlDoc *doc = NULL;
        int r;

        if (!xml || !facts)
                return hvp_fail(-EINVAL, "missing argument");
        if (len > DOMAIN_XML_MAX)
                return hvp_fail(-E2BIG, "domain XML larger than %u bytes", DOMAIN_XML_MAX);
        r = hvp_xml_read(xml, len, "domain XML", &doc);
        if (r < 0)
                return r;
        ctx = xmlXPathNewContext(doc);
        if (!ctx || xmlXPathRegisterNs(ctx, (const xmlChar *)"hvp", (const xmlChar *)HVP_METADATA_NS) != 0 ||
            xmlXPathRegisterNs(ctx, (const xmlChar *)"libosinfo", (const xmlChar *)LIBOSINFO_NS) != 0) {
                r = hvp_fail(-ENOMEM, "domain XML: out of memory");
                goto out;
        }
        f = *facts;
        r = extract(ctx, &f);
        if (r == 0)
                *facts = f;
out:
        xmlXPathFreeContext(ctx);
        xmlFreeDoc(doc);
        return r;
}

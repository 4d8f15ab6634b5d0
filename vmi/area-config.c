/*
 * The read-only patch area in a domain's persistent definition: `hvpatch area
 * add|remove|show` (include/hvpatch/area-config.h). libvirt and libxml2 only;
 * what the area is and how it is used at apply time: vmi/area-live.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include <hvpatch/apply.h>
#include <hvpatch/area-config.h>

#include "common/error.h"
#include "common/util.h"
#include "vmi/area-live.h"

#define QEMU_NS "http://libvirt.org/schemas/domain/qemu/1.0"
#define EXTRA_MAXMEM_KIB (1024ull * 1024)       /* device-memory room given for the nvdimm */

struct conf {
        virConnectPtr conn;
        virDomainPtr dom;
        xmlDocPtr doc;
};

static void silent(void *userdata, virErrorPtr err)
{
}

static int lv_fail(int err, const char *what)
{
        const char *m = virGetLastErrorMessage();

        return hvp_fail(err, "%s: %s", what, m ? m : "unknown libvirt error");
}

static void conf_close(struct conf *c)
{
        if (c->doc)
                xmlFreeDoc(c->doc);
        if (c->dom)
                virDomainFree(c->dom);
        if (c->conn)
                virConnectClose(c->conn);
}

/* Open the domain and parse its persistent (inactive) definition. */
static int conf_open(const char *uri, const char *domain, struct conf *c, struct hvp_area_config *ret)
{
        char *xml;
        const char *name;
        size_t len;

        *c = (struct conf){ 0 };
        *ret = (struct hvp_area_config){ 0 };
        virSetErrorFunc(NULL, silent);
        c->conn = virConnectOpen(uri ? uri : "qemu:///system");
        if (!c->conn)
                return lv_fail(-EIO, uri ? uri : "qemu:///system");
        c->dom = virDomainLookupByName(c->conn, domain);
        if (!c->dom && strlen(domain) == VIR_UUID_STRING_BUFLEN - 1)
                c->dom = virDomainLookupByUUIDString(c->conn, domain);
        if (!c->dom)
                return hvp_fail(-ENOENT, "no domain %s", domain);
        name = virDomainGetName(c->dom);
        if (!name || strlen(name) >= sizeof(ret->domain) || virDomainGetUUIDString(c->dom, ret->uuid) < 0)
                return lv_fail(-EIO, "reading the domain's name and UUID");
        strcpy(ret->domain, name);
        ret->running = virDomainIsActive(c->dom) == 1;
        xml = virDomainGetXMLDesc(c->dom, VIR_DOMAIN_XML_INACTIVE);
        if (!xml)
                return lv_fail(-EIO, "reading the persistent domain definition");
        len = strlen(xml);
        c->doc = len < INT_MAX ? xmlReadMemory(xml, (int)len, "domain.xml", NULL,
                                               XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING)
                               : NULL;
        free(xml);
        if (!c->doc || !xmlDocGetRootElement(c->doc))
                return hvp_fail(-EIO, "cannot parse the domain definition");
        return 0;
}

static xmlNodePtr child(xmlNodePtr parent, const char *name)
{
        for (xmlNodePtr n = parent ? parent->children : NULL; n; n = n->next)
                if (n->type == XML_ELEMENT_NODE && xmlStrcmp(n->name, BAD_CAST name) == 0)
                        return n;
        return NULL;
}

static xmlNodePtr qemu_commandline(xmlNodePtr root)
{
        for (xmlNodePtr n = root->children; n; n = n->next)
                if (n->type == XML_ELEMENT_NODE && xmlStrcmp(n->name, BAD_CAST "commandline") == 0 && n->ns &&
                    xmlStrcmp(n->ns->href, BAD_CAST QEMU_NS) == 0)
                        return n;
        return NULL;
}

static char *doc_string(xmlDocPtr doc)
{
        xmlChar *mem = NULL;
        int size = 0;
        char *s;

        xmlDocDumpMemory(doc, &mem, &size);
        if (!mem)
                return NULL;
        s = strndup((const char *)mem, (size_t)size);
        xmlFree(mem);
        return s;
}

/* Define the domain anew from c's (modified) definition; what says why, for the error. */
static int conf_define(const struct conf *c, const char *what)
{
        _cleanup_free_ char *xml = doc_string(c->doc);
        virDomainPtr d;

        if (!xml)
                return -ENOMEM;
        d = virDomainDefineXML(c->conn, xml);
        if (!d)
                return lv_fail(-EIO, what);
        virDomainFree(d);
        return 0;
}

static void legacy_shmem(xmlNodePtr root, struct hvp_area_config *ret)
{
        for (xmlNodePtr n = child(root, "devices") ? child(root, "devices")->children : NULL; n; n = n->next) {
                xmlChar *name;

                if (n->type != XML_ELEMENT_NODE || xmlStrcmp(n->name, BAD_CAST "shmem") != 0)
                        continue;
                name = xmlGetProp(n, BAD_CAST "name");
                if (name && strncmp((const char *)name, "hvpatch-area", 12) == 0) {
                        ret->legacy_shmem = true;
                        if (strncmp((const char *)name, HVP_AREA_SHMEM_PREFIX, strlen(HVP_AREA_SHMEM_PREFIX)) != 0 ||
                            strcmp((const char *)name + strlen(HVP_AREA_SHMEM_PREFIX), ret->uuid) != 0)
                                ret->legacy_shared_name = true;
                }
                xmlFree(name);
        }
}

static bool file_ok(const char *path)
{
        struct stat st;

        return lstat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == 0 &&
               !(st.st_mode & (S_IWGRP | S_IWOTH)) && st.st_size == HVP_AREA_RO_SIZE;
}

/* What the persistent definition and the running instance say. */
static void fill_status(struct conf *c, struct hvp_area_config *ret)
{
        xmlNodePtr root = xmlDocGetRootElement(c->doc);
        _cleanup_free_ char *s = doc_string(c->doc);

        ret->configured = s && hvp_area_ro_xml_path(s, ret->path, sizeof(ret->path)) == 0;
        if (!ret->configured)
                ret->path[0] = '\0';
        ret->file_ok = ret->configured && file_ok(ret->path);
        legacy_shmem(root, ret);
        if (ret->running) {
                char *out = NULL;

                if (virDomainQemuMonitorCommand(c->dom, "info memory-devices", &out,
                                                VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP) == 0 && out)
                        ret->active = hvp_area_ro_parse_memory_devices(out, &ret->gpa, &ret->size) == 0;
                free(out);
        }
}

int hvp_area_config_path(const char *state_dir, const char *uuid, char *ret, size_t size)
{
        int n = snprintf(ret, size, "%s/areas/%s.area", state_dir ? state_dir : HVP_STATE_DIR, uuid);

        if (n < 0 || (size_t)n >= size || strchr(uuid, '/'))
                return hvp_fail(-ENAMETOOLONG, "bad patch-area path for %s", uuid);
        return 0;
}

/* A folder QEMU (another user) can pass through, nobody else can write. */
static int ensure_dir(const char *path)
{
        struct stat st;

        if (mkdir(path, 0711) < 0 && errno != EEXIST)
                return hvp_fail(-errno, "cannot create %s: %m", path);
        if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
                return hvp_fail(-EPERM, "%s is not a folder", path);
        if (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)))
                return hvp_fail(-EPERM, "%s is not owned by us or is writable by others", path);
        if (!(st.st_mode & S_IXOTH) && chmod(path, (st.st_mode & 07777) | S_IXOTH) < 0)
                return hvp_fail(-errno, "cannot let QEMU pass through %s: %m", path);
        return 0;
}

/* Create the area file (2 MiB of 0xcc, 0644), or keep a valid existing one. */
static int make_file(const char *state_dir, const char *path)
{
        static uint8_t buf[1u << 16];
        char dir[4200];
        int fd, r = 0;

        if (geteuid() != 0)
                return hvp_fail(-EPERM, "the patch-area file must be owned by root: run as root");
        snprintf(dir, sizeof(dir), "%s", state_dir ? state_dir : HVP_STATE_DIR);
        r = ensure_dir(dir);
        if (r == 0) {
                snprintf(dir, sizeof(dir), "%s/areas", state_dir ? state_dir : HVP_STATE_DIR);
                r = ensure_dir(dir);
        }
        if (r < 0)
                return r;
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0 && errno == EEXIST) {
                if (!file_ok(path))
                        return hvp_fail(-EPERM, "%s exists but is not a root-owned 2 MiB file writable only by root",
                                        path);
                return 0;       /* kept: a running instance may execute code in it */
        }
        if (fd < 0)
                return hvp_fail(-errno, "cannot create %s: %m", path);
        memset(buf, HVP_AREA_RO_FILLER, sizeof(buf));
        for (size_t off = 0; off < HVP_AREA_RO_SIZE && r == 0; off += sizeof(buf))
                if (pwrite(fd, buf, sizeof(buf), (off_t)off) != (ssize_t)sizeof(buf))
                        r = hvp_fail(-EIO, "writing %s: %m", path);
        if (r == 0 && (fchmod(fd, 0644) < 0 || fsync(fd) < 0))
                r = hvp_fail(-EIO, "finishing %s: %m", path);
        close(fd);
        if (r < 0)
                unlink(path);
        return r;
}

static unsigned long long text_ull(xmlNodePtr n)
{
        xmlChar *t = n ? xmlNodeGetContent(n) : NULL;
        unsigned long long v = t ? strtoull((const char *)t, NULL, 10) : 0;

        xmlFree(t);
        return v;
}

static unsigned long long kib(xmlNodePtr n)
{
        xmlChar *unit = n ? xmlGetProp(n, BAD_CAST "unit") : NULL;
        unsigned long long v = text_ull(n), mul = 1024;         /* libvirt's default unit: KiB */

        if (unit) {
                if (!xmlStrcmp(unit, BAD_CAST "b") || !xmlStrcmp(unit, BAD_CAST "bytes"))
                        mul = 1;
                else if (!xmlStrcmp(unit, BAD_CAST "M") || !xmlStrcmp(unit, BAD_CAST "MiB"))
                        mul = 1024ull * 1024;
                else if (!xmlStrcmp(unit, BAD_CAST "G") || !xmlStrcmp(unit, BAD_CAST "GiB"))
                        mul = 1024ull * 1024 * 1024;
        }
        xmlFree(unit);
        return v * mul / 1024;
}

static void add_arg(xmlNodePtr cmdline, xmlNsPtr ns, const char *value)
{
        xmlNodePtr a = xmlNewChild(cmdline, ns, BAD_CAST "arg", NULL);

        xmlNewProp(a, BAD_CAST "value", BAD_CAST value);
}

int hvp_area_config_add(const char *uri, const char *domain, const char *state_dir, struct hvp_area_config *ret)
{
        struct conf c;
        xmlNodePtr root, mem, maxmem, cpu, numa, cmdline;
        xmlNsPtr ns;
        unsigned long long mem_kib, slots = 0;
        char value[4400], num[64];
        int r;

        r = conf_open(uri, domain, &c, ret);
        if (r < 0)
                goto out;
        fill_status(&c, ret);
        if (ret->configured) {
                r = make_file(state_dir, ret->path);    /* (re)made if missing */
                if (r == 0)
                        ret->file_ok = file_ok(ret->path);
                goto out;
        }
        r = hvp_area_config_path(state_dir, ret->uuid, ret->path, sizeof(ret->path));
        if (r == 0 && strchr(ret->path, ','))
                r = hvp_fail(-EINVAL, "the patch-area path %s holds a comma (QEMU's option separator)", ret->path);
        if (r == 0)
                r = make_file(state_dir, ret->path);
        if (r < 0)
                goto out;
        root = xmlDocGetRootElement(c.doc);
        mem = child(root, "memory");
        mem_kib = kib(mem);
        if (!mem || mem_kib == 0) {
                r = hvp_fail(-EINVAL, "the domain definition has no <memory>");
                goto out;
        }
        /* Memory-device room: QEMU needs -m ...,slots=,maxmem= for an nvdimm. */
        maxmem = child(root, "maxMemory");
        if (maxmem) {
                xmlChar *s = xmlGetProp(maxmem, BAD_CAST "slots");

                slots = s ? strtoull((const char *)s, NULL, 10) : 0;
                xmlFree(s);
                snprintf(num, sizeof(num), "%llu", kib(maxmem) + EXTRA_MAXMEM_KIB);
                xmlNodeSetContent(maxmem, BAD_CAST num);
                xmlSetProp(maxmem, BAD_CAST "unit", BAD_CAST "KiB");
        } else {
                snprintf(num, sizeof(num), "%llu", mem_kib + EXTRA_MAXMEM_KIB);
                maxmem = xmlNewNode(NULL, BAD_CAST "maxMemory");
                xmlNodeSetContent(maxmem, BAD_CAST num);
                xmlSetProp(maxmem, BAD_CAST "unit", BAD_CAST "KiB");
                xmlAddPrevSibling(mem, maxmem);
        }
        snprintf(num, sizeof(num), "%llu", slots + 1);
        xmlSetProp(maxmem, BAD_CAST "slots", BAD_CAST num);
        /* libvirt wants a NUMA topology with memory hotplug: one cell with everything. */
        cpu = child(root, "cpu");
        numa = cpu ? child(cpu, "numa") : NULL;
        if (!numa) {
                unsigned long long vcpus = text_ull(child(root, "vcpu"));
                xmlNodePtr cell;

                if (vcpus == 0)
                        vcpus = 1;
                if (!cpu)
                        cpu = xmlNewChild(root, NULL, BAD_CAST "cpu", NULL);
                numa = xmlNewChild(cpu, NULL, BAD_CAST "numa", NULL);
                cell = xmlNewChild(numa, NULL, BAD_CAST "cell", NULL);
                xmlNewProp(cell, BAD_CAST "id", BAD_CAST "0");
                snprintf(num, sizeof(num), "0-%llu", vcpus - 1);
                xmlNewProp(cell, BAD_CAST "cpus", BAD_CAST num);
                snprintf(num, sizeof(num), "%llu", mem_kib);
                xmlNewProp(cell, BAD_CAST "memory", BAD_CAST num);
                xmlNewProp(cell, BAD_CAST "unit", BAD_CAST "KiB");
        }
        ns = xmlSearchNsByHref(c.doc, root, BAD_CAST QEMU_NS);
        if (!ns)
                ns = xmlNewNs(root, BAD_CAST QEMU_NS, BAD_CAST "qemu");
        cmdline = qemu_commandline(root);
        if (!cmdline)
                cmdline = xmlNewChild(root, ns, BAD_CAST "commandline", NULL);
        add_arg(cmdline, ns, "-machine");
        add_arg(cmdline, ns, "nvdimm=on");
        add_arg(cmdline, ns, "-object");
        snprintf(value, sizeof(value),
                 "memory-backend-file,id=%s,mem-path=%s,size=%u,share=on,readonly=on", HVP_AREA_RO_MEMDEV_ID,
                 ret->path, HVP_AREA_RO_SIZE);
        add_arg(cmdline, ns, value);
        add_arg(cmdline, ns, "-device");
        snprintf(value, sizeof(value), "nvdimm,id=%s,memdev=%s,unarmed=on,slot=%llu", HVP_AREA_RO_DEVICE_ID,
                 HVP_AREA_RO_MEMDEV_ID, slots);
        add_arg(cmdline, ns, value);
        r = conf_define(&c, "defining the domain with the patch area");
        if (r < 0)
                goto out;
        ret->configured = ret->changed = true;
        ret->file_ok = file_ok(ret->path);
out:
        conf_close(&c);
        return r;
}

/* The value of <qemu:arg> n, or NULL. */
static xmlChar *arg_value(xmlNodePtr n)
{
        if (!n || n->type != XML_ELEMENT_NODE || xmlStrcmp(n->name, BAD_CAST "arg") != 0)
                return NULL;
        return xmlGetProp(n, BAD_CAST "value");
}

static xmlNodePtr next_arg(xmlNodePtr n)
{
        for (n = n ? n->next : NULL; n && n->type != XML_ELEMENT_NODE; n = n->next)
                ;
        return n;
}

/* Is the pair (opt, val) one that add wrote? */
static bool ours(const xmlChar *opt, const xmlChar *val)
{
        const char *o = (const char *)opt, *v = (const char *)val;

        if (!o || !v)
                return false;
        if (strcmp(o, "-machine") == 0)
                return strcmp(v, "nvdimm=on") == 0;
        if (strcmp(o, "-object") == 0)
                return strncmp(v, "memory-backend-file,id=" HVP_AREA_RO_MEMDEV_ID ",",
                               strlen("memory-backend-file,id=" HVP_AREA_RO_MEMDEV_ID ",")) == 0;
        if (strcmp(o, "-device") == 0)
                return strncmp(v, "nvdimm,id=" HVP_AREA_RO_DEVICE_ID ",", strlen("nvdimm,id=" HVP_AREA_RO_DEVICE_ID ",")) == 0;
        return false;
}

int hvp_area_config_remove(const char *uri, const char *domain, struct hvp_area_config *ret)
{
        struct conf c;
        xmlNodePtr root, cmdline;
        char path[4096];
        int r;

        r = conf_open(uri, domain, &c, ret);
        if (r < 0)
                goto out;
        fill_status(&c, ret);
        if (!ret->configured)
                goto out;
        snprintf(path, sizeof(path), "%s", ret->path);
        root = xmlDocGetRootElement(c.doc);
        cmdline = qemu_commandline(root);
        for (xmlNodePtr n = cmdline ? cmdline->children : NULL; n;) {
                xmlNodePtr v = next_arg(n);
                xmlChar *opt = arg_value(n), *val = arg_value(v);
                bool mine = ours(opt, val);

                xmlFree(opt);
                xmlFree(val);
                if (mine) {
                        xmlNodePtr after = next_arg(v);

                        xmlUnlinkNode(n);
                        xmlFreeNode(n);
                        xmlUnlinkNode(v);
                        xmlFreeNode(v);
                        n = after;
                } else {
                        n = next_arg(n);
                }
        }
        if (cmdline && !child(cmdline, "arg")) {
                xmlUnlinkNode(cmdline);
                xmlFreeNode(cmdline);
        }
        r = conf_define(&c, "defining the domain without the patch area");
        if (r < 0)
                goto out;
        ret->configured = false;
        ret->changed = true;
        /* A running instance still maps the file: it goes once the domain has stopped. */
        if (!ret->running && unlink(path) < 0 && errno != ENOENT)
                hvp_warn("cannot remove %s: %m", path);
out:
        conf_close(&c);
        return r;
}

int hvp_area_config_show(const char *uri, const char *domain, struct hvp_area_config *ret)
{
        struct conf c;
        int r = conf_open(uri, domain, &c, ret);

        if (r == 0)
                fill_status(&c, ret);
        conf_close(&c);
        return r;
}

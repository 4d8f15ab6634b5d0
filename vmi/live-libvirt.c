/*
 * The live backend's libvirt side: the connection's errors, the domain's state, its
 * monitor, its XML and its jobs. Only the live backend's files see libvirt.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <libvirt/libvirt.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "common/error.h"
#include "common/util.h"
#include "vmi/live.h"
#include "vmi/hmp.h"

static void silent_libvirt_error(void *userdata, virErrorPtr err)
{
}

static pthread_once_t libvirt_once = PTHREAD_ONCE_INIT;

static void libvirt_init(void)
{
        virSetErrorFunc(NULL, silent_libvirt_error);
}

void live_libvirt_init(void)
{
        pthread_once(&libvirt_once, libvirt_init);
}

int live_fail(int err, const char *what)
{
        const char *m = virGetLastErrorMessage();

        return hvp_fail(err, "%s: %s", what, m ? m : "unknown libvirt error");
}

const char *live_state_name(int state)
{
        static const char *const names[] = {
                [VIR_DOMAIN_NOSTATE] = "no state", [VIR_DOMAIN_RUNNING] = "running",
                [VIR_DOMAIN_BLOCKED] = "blocked", [VIR_DOMAIN_PAUSED] = "paused",
                [VIR_DOMAIN_SHUTDOWN] = "shutting down", [VIR_DOMAIN_SHUTOFF] = "shut off",
                [VIR_DOMAIN_CRASHED] = "crashed", [VIR_DOMAIN_PMSUSPENDED] = "suspended by guest PM",
        };

        if (state >= 0 && (size_t)state < HVP_ARRAY_SIZE(names) && names[state])
                return names[state];
        return "unknown";
}

const char *live_paused_reason(int reason)
{
        static const char *const names[] = {
                [VIR_DOMAIN_PAUSED_UNKNOWN] = "unknown", [VIR_DOMAIN_PAUSED_USER] = "user",
                [VIR_DOMAIN_PAUSED_MIGRATION] = "migration", [VIR_DOMAIN_PAUSED_SAVE] = "save",
                [VIR_DOMAIN_PAUSED_DUMP] = "dump", [VIR_DOMAIN_PAUSED_IOERROR] = "I/O error",
                [VIR_DOMAIN_PAUSED_WATCHDOG] = "watchdog", [VIR_DOMAIN_PAUSED_FROM_SNAPSHOT] = "from snapshot",
                [VIR_DOMAIN_PAUSED_SHUTTING_DOWN] = "shutting down", [VIR_DOMAIN_PAUSED_SNAPSHOT] = "snapshot",
                [VIR_DOMAIN_PAUSED_CRASHED] = "crashed", [VIR_DOMAIN_PAUSED_STARTING_UP] = "starting up",
                [VIR_DOMAIN_PAUSED_POSTCOPY] = "post-copy migration",
                [VIR_DOMAIN_PAUSED_POSTCOPY_FAILED] = "failed post-copy migration",
        };

        if (reason >= 0 && (size_t)reason < HVP_ARRAY_SIZE(names) && names[reason])
                return names[reason];
        return "unknown";
}

int live_domain_state(struct live_be *b, int *ret_state, int *ret_reason)
{
        if (virDomainGetState(b->dom, ret_state, ret_reason, 0) < 0)
                return live_fail(-EIO, "cannot read the domain state");
        return 0;
}

static const char *shutoff_reason(int reason)
{
        static const char *const names[] = {
                [VIR_DOMAIN_SHUTOFF_UNKNOWN] = "unknown", [VIR_DOMAIN_SHUTOFF_SHUTDOWN] = "shutdown",
                [VIR_DOMAIN_SHUTOFF_DESTROYED] = "destroyed", [VIR_DOMAIN_SHUTOFF_CRASHED] = "crashed",
                [VIR_DOMAIN_SHUTOFF_MIGRATED] = "migrated", [VIR_DOMAIN_SHUTOFF_SAVED] = "saved",
                [VIR_DOMAIN_SHUTOFF_FAILED] = "failed", [VIR_DOMAIN_SHUTOFF_FROM_SNAPSHOT] = "from snapshot",
                [VIR_DOMAIN_SHUTOFF_DAEMON] = "daemon",
        };

        if (reason >= 0 && (size_t)reason < HVP_ARRAY_SIZE(names) && names[reason])
                return names[reason];
        return "unknown";
}

/* libvirt's state and reason as hvp_guest_run_state() reports them. */
void live_describe_state(int state, int reason, struct hvp_run_state *ret)
{
        const char *why = "";

        memset(ret, 0, sizeof(*ret));
        switch (state) {
        case VIR_DOMAIN_RUNNING:
                ret->kind = HVP_RUN_RUNNING;
                break;
        case VIR_DOMAIN_PAUSED:
                ret->kind = HVP_RUN_PAUSED;
                why = live_paused_reason(reason);
                ret->failure = reason == VIR_DOMAIN_PAUSED_IOERROR || reason == VIR_DOMAIN_PAUSED_CRASHED ||
                               reason == VIR_DOMAIN_PAUSED_WATCHDOG;
                break;
        case VIR_DOMAIN_SHUTOFF:
                ret->kind = HVP_RUN_SHUTOFF;
                why = shutoff_reason(reason);
                /* what an operator or a job did (destroy, save, migration, snapshot) says nothing of the guest */
                ret->failure = reason != VIR_DOMAIN_SHUTOFF_DESTROYED && reason != VIR_DOMAIN_SHUTOFF_SAVED &&
                               reason != VIR_DOMAIN_SHUTOFF_MIGRATED && reason != VIR_DOMAIN_SHUTOFF_FROM_SNAPSHOT;
                break;
        case VIR_DOMAIN_CRASHED:
                ret->kind = HVP_RUN_CRASHED;
                why = reason == VIR_DOMAIN_CRASHED_PANICKED ? "panicked" : "unknown";
                ret->failure = true;
                break;
        default:
                ret->kind = HVP_RUN_OTHER;
                break;
        }
        snprintf(ret->state, sizeof(ret->state), "%s", live_state_name(state));
        snprintf(ret->reason, sizeof(ret->reason), "%s", why);
}

/* A monitor command (HMP text or QMP JSON); *ret is malloc'ed, bounded. */
int live_monitor(struct live_be *b, const char *cmd, bool hmp, char **ret)
{
        char *out = NULL;
        char what[128];

        if (virDomainQemuMonitorCommand(b->dom, cmd, &out,
                                        hmp ? VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP : 0) < 0) {
                snprintf(what, sizeof(what), "monitor command '%s'", cmd);
                return live_fail(-EIO, what);
        }
        if (!out)
                return hvp_fail(-EIO, "monitor command '%s' gave no reply", cmd);
        if (strnlen(out, HVP_HMP_MAX_OUTPUT + 1) > HVP_HMP_MAX_OUTPUT) {
                free(out);
                return hvp_fail(-E2BIG, "monitor command '%s': reply too long", cmd);
        }
        *ret = out;
        return 0;
}

/* The domain's type attribute: 'kvm' or 'qemu' decides the write path. */
static xmlNodePtr child_element(xmlNodePtr parent, const char *name)
{
        for (xmlNodePtr n = parent ? parent->children : NULL; n; n = n->next)
                if (n->type == XML_ELEMENT_NODE && xmlStrcmp(n->name, BAD_CAST name) == 0)
                        return n;
        return NULL;
}

/*
 * The patch-area device: <shmem name='hvpatch-area'> with <model type='ivshmem-plain'/>.
 * QEMU names its BAR's RAM region "shmmem-" + the device's alias.
 */
static void find_area_device(struct live_be *b, xmlNodePtr root)
{
        xmlNodePtr devices = child_element(root, "devices");

        for (xmlNodePtr n = devices ? devices->children : NULL; n; n = n->next) {
                xmlChar *name, *model_type = NULL, *alias_name = NULL;

                if (n->type != XML_ELEMENT_NODE || xmlStrcmp(n->name, BAD_CAST "shmem") != 0)
                        continue;
                name = xmlGetProp(n, BAD_CAST "name");
                if (child_element(n, "model"))
                        model_type = xmlGetProp(child_element(n, "model"), BAD_CAST "type");
                if (child_element(n, "alias"))
                        alias_name = xmlGetProp(child_element(n, "alias"), BAD_CAST "name");
                if (name && strncmp((const char *)name, HVP_AREA_SHMEM_PREFIX, strlen(HVP_AREA_SHMEM_PREFIX)) == 0 &&
                    strcmp((const char *)name + strlen(HVP_AREA_SHMEM_PREFIX), b->uuid) == 0 && model_type &&
                    xmlStrcmp(model_type, BAD_CAST "ivshmem-plain") == 0 && alias_name &&
                    xmlStrlen(alias_name) < 48)
                        snprintf(b->area_region, sizeof(b->area_region), "shmmem-%s", (const char *)alias_name);
                xmlFree(name);
                xmlFree(model_type);
                xmlFree(alias_name);
        }
}

int live_read_domain_xml(struct live_be *b)
{
        xmlDocPtr doc;
        xmlNodePtr root;
        xmlChar *type;
        size_t len;
        int r = 0;

        b->xml = virDomainGetXMLDesc(b->dom, 0);
        if (!b->xml)
                return live_fail(-EIO, "cannot read the domain XML");
        len = strlen(b->xml);
        if (len > INT_MAX)
                return hvp_fail(-E2BIG, "domain XML too large");
        doc = xmlReadMemory(b->xml, (int)len, "domain.xml", NULL,
                            XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
        if (!doc)
                return hvp_fail(-EIO, "cannot parse the domain XML");
        root = xmlDocGetRootElement(doc);
        type = root && xmlStrcmp(root->name, BAD_CAST "domain") == 0 ? xmlGetProp(root, BAD_CAST "type") : NULL;
        if (!type || xmlStrlen(type) == 0 || (size_t)xmlStrlen(type) >= sizeof(b->type))
                r = hvp_fail(-EIO, "the domain XML has no usable <domain type=...>");
        else
                snprintf(b->type, sizeof(b->type), "%s", (const char *)type);
        xmlFree(type);
        if (r == 0 && root)
                find_area_device(b, root);
        xmlFreeDoc(doc);
        return r;
}

int live_job_check(struct live_be *b)
{
        virDomainJobInfo info;
        static const char *const types[] = {
                [VIR_DOMAIN_JOB_NONE] = "none", [VIR_DOMAIN_JOB_BOUNDED] = "bounded",
                [VIR_DOMAIN_JOB_UNBOUNDED] = "unbounded", [VIR_DOMAIN_JOB_COMPLETED] = "completed",
                [VIR_DOMAIN_JOB_FAILED] = "failed", [VIR_DOMAIN_JOB_CANCELLED] = "cancelled",
        };

        if (virDomainGetJobInfo(b->dom, &info) < 0)
                return live_fail(-EIO, "cannot read the domain's job");
        if (info.type == VIR_DOMAIN_JOB_BOUNDED || info.type == VIR_DOMAIN_JOB_UNBOUNDED)
                return hvp_fail(-EBUSY, "a libvirt job (%s; migration, snapshot, save or dump) runs on %s",
                                types[info.type], b->name);
        return 0;
}

static bool looks_like_uuid(const char *s)
{
        if (strlen(s) != VIR_UUID_STRING_BUFLEN - 1)
                return false;
        for (int i = 0; s[i]; i++)
                if (i == 8 || i == 13 || i == 18 || i == 23 ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
                        return false;
        return true;
}

int live_lookup_domain(struct live_be *b, const char *domain)
{
        virErrorPtr err;

        if (looks_like_uuid(domain))
                b->dom = virDomainLookupByUUIDString(b->conn, domain);
        if (!b->dom)
                b->dom = virDomainLookupByName(b->conn, domain);
        if (b->dom)
                return 0;
        err = virGetLastError();
        if (err && err->code == VIR_ERR_NO_DOMAIN)
                return hvp_fail(-ENOENT, "no domain %s", domain);
        return live_fail(-EIO, "looking up the domain");
}

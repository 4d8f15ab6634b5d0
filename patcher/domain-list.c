/*
 * Every domain of a libvirt connection with its state (include/hvpatch/catalog.h):
 * what `hvpatch report` walks, running or not.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <hvpatch/catalog.h>

#include "common/error.h"
#include "common/util.h"

static void silent(void *userdata, virErrorPtr err)
{
        (void)userdata;
        (void)err;
}

static const char *state_name(int s)
{
        switch (s) {
        case VIR_DOMAIN_RUNNING:
                return "running";
        case VIR_DOMAIN_BLOCKED:
                return "blocked";
        case VIR_DOMAIN_PAUSED:
                return "paused";
        case VIR_DOMAIN_SHUTDOWN:
                return "shutting-down";
        case VIR_DOMAIN_SHUTOFF:
                return "shut-off";
        case VIR_DOMAIN_CRASHED:
                return "crashed";
        case VIR_DOMAIN_PMSUSPENDED:
                return "pmsuspended";
        }
        return "unknown";
}

static int cmp_domain(const void *a, const void *b)
{
        return strcmp(((const struct hvp_domain_info *)a)->name, ((const struct hvp_domain_info *)b)->name);
}

/* The domains libvirt lists under flags (0: all, or VIR_CONNECT_LIST_DOMAINS_ACTIVE). */
static int list_domains(const char *uri, unsigned int flags, size_t max, struct hvp_domain_info **ret,
                        size_t *ret_n)
{
        const char *what = flags & VIR_CONNECT_LIST_DOMAINS_ACTIVE ? "running domains" : "domains";
        virConnectPtr conn;
        virDomainPtr *doms = NULL;
        struct hvp_domain_info *out = NULL;
        int n, r = 0;

        virSetErrorFunc(NULL, silent);
        conn = virConnectOpen(uri ? uri : "qemu:///system");
        if (!conn)
                return hvp_fail(-EIO, "cannot connect to %s: %s", uri ? uri : "qemu:///system",
                                virGetLastErrorMessage());
        n = virConnectListAllDomains(conn, &doms, flags);
        if (n < 0) {
                r = hvp_fail(-EIO, "listing the domains: %s", virGetLastErrorMessage());
                goto out;
        }
        if ((size_t)n > max) {
                r = hvp_fail(-E2BIG, "%d %s: more than %zu", n, what, max);
                goto out;
        }
        out = calloc((size_t)n + 1, sizeof(*out));
        if (!out) {
                r = hvp_fail(-ENOMEM, "out of memory");
                goto out;
        }
        for (int i = 0; i < n; i++) {
                struct hvp_domain_info *d = &out[i];
                const char *name = virDomainGetName(doms[i]);
                int state = -1, reason = 0;

                snprintf(d->name, sizeof(d->name), "%s", name ? name : "");
                if (virDomainGetUUIDString(doms[i], d->uuid) < 0)
                        d->uuid[0] = '\0';
                d->active = virDomainIsActive(doms[i]) == 1;
                /* A domain that went away meanwhile keeps "unknown"; the caller's open says why. */
                if (virDomainGetState(doms[i], &state, &reason, 0) < 0)
                        state = -1;
                snprintf(d->state, sizeof(d->state), "%s", state_name(state));
        }
        qsort(out, (size_t)n, sizeof(*out), cmp_domain);
out:
        for (int i = 0; i < n; i++)
                virDomainFree(doms[i]);
        free(doms);
        virConnectClose(conn);
        if (r < 0) {
                free(out);
                return r;
        }
        *ret = out;
        *ret_n = (size_t)n;
        return 0;
}

int hvp_list_domains(const char *uri, size_t max, struct hvp_domain_info **ret, size_t *ret_n)
{
        if (!ret || !ret_n)
                return hvp_fail(-EINVAL, "hvp_list_domains: bad arguments");
        return list_domains(uri, 0, max, ret, ret_n);
}

int hvp_list_running_domains(const char *uri, size_t max, char ***ret_names, size_t *ret_n)
{
        struct hvp_domain_info *doms;
        char **names;
        size_t n;
        int r;

        if (!ret_names || !ret_n)
                return hvp_fail(-EINVAL, "hvp_list_running_domains: bad arguments");
        r = list_domains(uri, VIR_CONNECT_LIST_DOMAINS_ACTIVE, max, &doms, &n);
        if (r < 0)
                return r;
        names = calloc(n + 1, sizeof(*names));
        if (!names) {
                free(doms);
                return hvp_fail(-ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < n; i++) {
                names[i] = strdup(doms[i].name);
                if (!names[i]) {
                        for (size_t j = 0; j < i; j++)
                                free(names[j]);
                        free(names);
                        free(doms);
                        return hvp_fail(-ENOMEM, "out of memory");
                }
        }
        free(doms);
        *ret_names = names;
        *ret_n = n;
        return 0;
}

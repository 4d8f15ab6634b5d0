#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/util.h"
#include "vmi/backend.h"

struct hvp_guest {
        const struct hvp_backend_ops *ops;
        void *be;
        char *name;
        char uuid[64];
        struct hvp_ram_range *ranges;
        size_t nr_ranges;
        struct hvp_vcpu_regs *vcpus;
        unsigned nr_vcpus;
        bool paused;            /* paused by us */
        uint64_t ao_gpa, ao_size;       /* the append-only range (size 0: none) */
        uint8_t ao_filler;
};

static int range_cmp(const void *a, const void *b)
{
        const struct hvp_ram_range *x = a, *y = b;

        return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

int hvp_guest_new(const struct hvp_backend_ops *ops, void *be, const char *name,
                  const struct hvp_ram_range *ranges, size_t nr_ranges,
                  const struct hvp_vcpu_regs *vcpus, unsigned nr_vcpus,
                  struct hvp_guest **ret_guest)
{
        struct hvp_guest *g;
        int r;

        if (nr_ranges == 0 || nr_ranges > HVP_MAX_RAM_RANGES) {
                r = hvp_fail(-E2BIG, "%zu RAM ranges (1 to %d allowed)", nr_ranges, HVP_MAX_RAM_RANGES);
                goto fail_be;
        }
        g = calloc(1, sizeof(*g));
        if (!g) {
                r = -ENOMEM;
                goto fail_be;
        }
        g->ops = ops;
        g->be = be;
        g->name = strdup(name ? name : "");
        g->ranges = calloc(nr_ranges, sizeof(*g->ranges));
        g->vcpus = calloc(HVP_MAX_VCPUS, sizeof(*g->vcpus));
        if (!g->name || !g->ranges || !g->vcpus) {
                hvp_guest_free(g);
                return -ENOMEM;
        }
        snprintf(g->uuid, sizeof(g->uuid), "%s", g->name);
        memcpy(g->ranges, ranges, nr_ranges * sizeof(*ranges));
        g->nr_ranges = nr_ranges;
        qsort(g->ranges, nr_ranges, sizeof(*g->ranges), range_cmp);
        for (size_t i = 0; i < nr_ranges; i++) {
                const struct hvp_ram_range *c = &g->ranges[i];

                if (c->size == 0 || c->gpa + c->size < c->gpa) {
                        hvp_guest_free(g);
                        return hvp_fail(-EINVAL, "bad RAM range 0x%llx+0x%llx",
                                        (unsigned long long)c->gpa, (unsigned long long)c->size);
                }
                if (i > 0 && g->ranges[i - 1].gpa + g->ranges[i - 1].size > c->gpa) {
                        hvp_guest_free(g);
                        return hvp_fail(-EINVAL, "overlapping RAM ranges at 0x%llx",
                                        (unsigned long long)c->gpa);
                }
        }
        if (vcpus) {
                if (nr_vcpus == 0 || nr_vcpus > HVP_MAX_VCPUS) {
                        hvp_guest_free(g);
                        return hvp_fail(-E2BIG, "%u vCPUs (1 to %d allowed)", nr_vcpus, HVP_MAX_VCPUS);
                }
                memcpy(g->vcpus, vcpus, nr_vcpus * sizeof(*vcpus));
                g->nr_vcpus = nr_vcpus;
        } else {
                r = hvp_guest_refresh_regs(g);
                if (r < 0) {
                        hvp_guest_free(g);
                        return r;
                }
        }
        *ret_guest = g;
        return 0;

fail_be:
        if (ops->close)
                ops->close(be);
        return r;
}

void hvp_guest_free(struct hvp_guest *g)
{
        if (!g)
                return;
        if (g->paused)          /* never leave a guest paused behind us */
                (void)hvp_guest_resume(g);
        if (g->ops->close)
                g->ops->close(g->be);
        free(g->name);
        free(g->ranges);
        free(g->vcpus);
        free(g);
}

const char *hvp_guest_backend(const struct hvp_guest *g)
{
        return g->ops->name;
}

const char *hvp_guest_name(const struct hvp_guest *g)
{
        return g->name;
}

const char *hvp_guest_uuid(const struct hvp_guest *g)
{
        return g->uuid;
}

int hvp_guest_set_uuid(struct hvp_guest *g, const char *uuid)
{
        if (strlen(uuid) >= sizeof(g->uuid))
                return hvp_fail(-EINVAL, "UUID too long");
        snprintf(g->uuid, sizeof(g->uuid), "%s", uuid);
        return 0;
}

void *hvp_guest_backend_data(const struct hvp_guest *g, const struct hvp_backend_ops *ops)
{
        return g->ops == ops ? g->be : NULL;
}

int hvp_guest_area_device(const struct hvp_guest *g, uint64_t *ret_gpa, uint64_t *ret_size)
{
        if (!g->ops->area_device)
                return hvp_fail(-ENODEV, "the %s backend has no patch-area device", g->ops->name);
        return g->ops->area_device(g->be, ret_gpa, ret_size);
}

int hvp_guest_check_idle(struct hvp_guest *g)
{
        return g->ops->check_idle ? g->ops->check_idle(g->be) : 0;
}

const char *hvp_guest_domain_xml(const struct hvp_guest *g)
{
        return g->ops->domain_xml ? g->ops->domain_xml(g->be) : NULL;
}

int hvp_guest_run_state(struct hvp_guest *g, struct hvp_run_state *ret)
{
        if (!g || !ret)
                return hvp_fail(-EINVAL, "hvp_guest_run_state: no guest");
        if (!g->ops->run_state)
                return hvp_fail(-ENOTSUP, "the %s backend has no run state", g->ops->name);
        return g->ops->run_state(g->be, ret);
}

const char *hvp_guest_domain_type(const struct hvp_guest *g)
{
        return g->ops->domain_type ? g->ops->domain_type(g->be) : NULL;
}

enum hvp_write_path hvp_guest_write_path(const struct hvp_guest *g)
{
        return g->ops->write_path ? g->ops->write_path(g->be) : HVP_WRITE_DIRECT;
}

const char *hvp_write_path_name(enum hvp_write_path path)
{
        switch (path) {
        case HVP_WRITE_AUTO: return "auto";
        case HVP_WRITE_DIRECT: return "direct";
        case HVP_WRITE_GDBSTUB: return "gdbstub";
        }
        return "unknown";
}

/* Is [gpa, gpa+len) inside one RAM range? Binary search: ranges are sorted and disjoint. */
static bool in_ram(const struct hvp_guest *g, uint64_t gpa, uint64_t len)
{
        size_t lo = 0, hi = g->nr_ranges;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                const struct hvp_ram_range *c = &g->ranges[mid];

                if (gpa < c->gpa)
                        hi = mid;
                else if (gpa - c->gpa >= c->size)
                        lo = mid + 1;
                else
                        return hvp_range_within(gpa, len, c->gpa, c->size);
        }
        return false;
}

static int check_ram(const struct hvp_guest *g, uint64_t gpa, size_t len)
{
        if (len == 0 || in_ram(g, gpa, len))
                return 0;
        return hvp_fail(-EFAULT, "guest-physical 0x%llx+0x%zx is outside guest RAM",
                        (unsigned long long)gpa, len);
}

int hvp_guest_read_phys(struct hvp_guest *g, uint64_t gpa, void *buf, size_t len)
{
        int r = check_ram(g, gpa, len);

        if (r < 0 || len == 0)
                return r;
        return g->ops->read_phys(g->be, gpa, buf, len);
}

int hvp_guest_read_phys_v(struct hvp_guest *g, const struct hvp_phys_iov *iov, size_t n)
{
        int r;

        for (size_t i = 0; i < n; i++) {
                r = check_ram(g, iov[i].gpa, iov[i].len);
                if (r < 0)
                        return r;
        }
        if (g->ops->read_phys_v)
                return g->ops->read_phys_v(g->be, iov, n);
        for (size_t i = 0; i < n; i++) {
                r = g->ops->read_phys(g->be, iov[i].gpa, iov[i].buf, iov[i].len);
                if (r < 0)
                        return r;
        }
        return 0;
}

int hvp_guest_write_phys(struct hvp_guest *g, uint64_t gpa, const void *buf, size_t len)
{
        int r;

        if (!g->ops->write_phys)
                return hvp_fail(-EROFS, "the %s backend is read-only", g->ops->name);
        r = check_ram(g, gpa, len);
        if (r < 0 || len == 0)
                return r;
        return g->ops->write_phys(g->be, gpa, buf, len);
}

size_t hvp_guest_ram_ranges(const struct hvp_guest *g, const struct hvp_ram_range **ret_ranges)
{
        *ret_ranges = g->ranges;
        return g->nr_ranges;
}

unsigned hvp_guest_vcpu_count(const struct hvp_guest *g)
{
        return g->nr_vcpus;
}

int hvp_guest_vcpu_regs(const struct hvp_guest *g, unsigned vcpu, struct hvp_vcpu_regs *ret_regs)
{
        if (vcpu >= g->nr_vcpus)
                return hvp_fail(-ENOENT, "no vCPU %u (the guest has %u)", vcpu, g->nr_vcpus);
        *ret_regs = g->vcpus[vcpu];
        return 0;
}

int hvp_guest_refresh_regs(struct hvp_guest *g)
{
        unsigned n = 0;
        int r;

        if (!g->ops->read_regs)
                return 0;
        r = g->ops->read_regs(g->be, g->vcpus, HVP_MAX_VCPUS, &n);
        if (r < 0)
                return r;
        if (n == 0 || n > HVP_MAX_VCPUS)
                return hvp_fail(-E2BIG, "backend reported %u vCPUs", n);
        g->nr_vcpus = n;
        return 0;
}

int hvp_guest_pause(struct hvp_guest *g)
{
        int r;

        if (!g->ops->pause)
                return hvp_fail(-ENOTSUP, "the %s backend cannot pause", g->ops->name);
        if (g->paused)
                return hvp_fail(-EALREADY, "guest already paused by this handle");
        r = g->ops->pause(g->be);
        if (r == 0)
                g->paused = true;
        return r;
}

int hvp_guest_resume(struct hvp_guest *g)
{
        int r;

        if (!g->ops->resume)
                return hvp_fail(-ENOTSUP, "the %s backend cannot resume", g->ops->name);
        if (!g->paused)
                return 0;
        r = g->ops->resume(g->be);
        if (r == 0 || r == -ESTALE)     /* -ESTALE: someone else resumed it; it runs either way */
                g->paused = false;
        return r;
}

int hvp_guest_prepare_window(struct hvp_guest *g)
{
        return g->ops->prepare_window ? g->ops->prepare_window(g->be) : 0;
}

int hvp_guest_release_window(struct hvp_guest *g)
{
        return g->ops->release_window ? g->ops->release_window(g->be) : 0;
}

int hvp_guest_adopt_pause(struct hvp_guest *g)
{
        int r;

        if (g->paused)
                return 1;
        if (!g->ops->adopt_pause)
                return hvp_fail(-ENOTSUP, "the %s backend cannot pause", g->ops->name);
        r = g->ops->adopt_pause(g->be);
        if (r > 0)
                g->paused = true;
        return r;
}

bool hvp_guest_is_paused(const struct hvp_guest *g)
{
        return g->paused;
}

void hvp_guest_set_append_only(struct hvp_guest *g, uint64_t gpa, uint64_t size, uint8_t filler)
{
        g->ao_gpa = gpa;
        g->ao_size = size;
        g->ao_filler = filler;
}

bool hvp_guest_append_only(const struct hvp_guest *g, uint64_t gpa, size_t len, uint8_t *ret_filler)
{
        if (!g->ao_size || gpa < g->ao_gpa || gpa - g->ao_gpa >= g->ao_size || len > g->ao_size - (gpa - g->ao_gpa))
                return false;
        if (ret_filler)
                *ret_filler = g->ao_filler;
        return true;
}

int hvp_guest_get_metadata(struct hvp_guest *g, const char *ns, char **ret_xml)
{
        if (!g->ops->get_metadata)
                return hvp_fail(-ENOTSUP, "%s: no libvirt metadata (not a live domain)", g->name);
        return g->ops->get_metadata(g->be, ns, ret_xml);
}

int hvp_guest_set_metadata(struct hvp_guest *g, const char *ns, const char *key, const char *xml)
{
        if (!g->ops->set_metadata)
                return hvp_fail(-ENOTSUP, "%s: no libvirt metadata (not a live domain)", g->name);
        return g->ops->set_metadata(g->be, ns, key, xml);
}

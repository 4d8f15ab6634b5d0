/* A guest over caller-owned buffers: for unit tests and fuzzers. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/util.h"
#include "vmi/backend.h"

struct memory_be {
        struct hvp_mem_region *regions;
        size_t n;
        bool writable;
        struct hvp_memory_live live;    /* strings owned */
};

/* The generic layer guarantees the range is inside one RAM range, i.e. one region. */
static struct hvp_mem_region *region_of(struct memory_be *m, uint64_t gpa, size_t len)
{
        for (size_t i = 0; i < m->n; i++)
                if (hvp_range_within(gpa, len, m->regions[i].gpa, m->regions[i].size))
                        return &m->regions[i];
        return NULL;
}

static int memory_read(void *be, uint64_t gpa, void *buf, size_t len)
{
        struct hvp_mem_region *r = region_of(be, gpa, len);

        if (!r)
                return hvp_fail(-EFAULT, "0x%llx+0x%zx spans memory regions", (unsigned long long)gpa, len);
        memcpy(buf, (uint8_t *)r->data + (gpa - r->gpa), len);
        return 0;
}

static int memory_write(void *be, uint64_t gpa, const void *buf, size_t len)
{
        struct memory_be *m = be;
        struct hvp_mem_region *r;

        if (!m->writable)
                return hvp_fail(-EROFS, "memory image is read-only");
        r = region_of(m, gpa, len);
        if (!r)
                return hvp_fail(-EFAULT, "0x%llx+0x%zx spans memory regions", (unsigned long long)gpa, len);
        memcpy((uint8_t *)r->data + (gpa - r->gpa), buf, len);
        return 0;
}

static int memory_pause(void *be)
{
        return 0;
}

static int memory_adopt(void *be)
{
        return 1;
}

/* What tests set with hvp_guest_memory_set_live(); until then: none of it. */
static int memory_area_device(void *be, uint64_t *ret_gpa, uint64_t *ret_size)
{
        struct memory_be *m = be;

        if (!m->live.area_size)
                return hvp_fail(-ENODEV, "no patch-area device in this memory guest");
        *ret_gpa = m->live.area_gpa;
        *ret_size = m->live.area_size;
        return 0;
}

static int memory_check_idle(void *be)
{
        struct memory_be *m = be;

        return m->live.check_idle;
}

static const char *memory_domain_xml(void *be)
{
        struct memory_be *m = be;

        return m->live.domain_xml;
}

static const char *memory_domain_type(void *be)
{
        struct memory_be *m = be;

        return m->live.domain_type;
}

static enum hvp_write_path memory_write_path(void *be)
{
        struct memory_be *m = be;

        return m->live.write_path;
}

static void memory_close(void *be)
{
        struct memory_be *m = be;

        if (m) {
                free(m->regions);
                free((char *)m->live.domain_xml);
                free((char *)m->live.domain_type);
        }
        free(m);
}

static const struct hvp_backend_ops memory_ops = {
        .name = "memory",
        .read_phys = memory_read,
        .write_phys = memory_write,
        .pause = memory_pause,
        .resume = memory_pause,
        .adopt_pause = memory_adopt,
        .close = memory_close,
        .area_device = memory_area_device,
        .check_idle = memory_check_idle,
        .domain_xml = memory_domain_xml,
        .domain_type = memory_domain_type,
        .write_path = memory_write_path,
};

int hvp_guest_memory_set_live(struct hvp_guest *g, const struct hvp_memory_live *live)
{
        struct memory_be *m = hvp_guest_backend_data(g, &memory_ops);
        char *xml = NULL, *type = NULL;

        if (!m)
                return hvp_fail(-EINVAL, "not a memory guest");
        if ((live->domain_xml && !(xml = strdup(live->domain_xml))) ||
            (live->domain_type && !(type = strdup(live->domain_type)))) {
                free(xml);
                return -ENOMEM;
        }
        free((char *)m->live.domain_xml);
        free((char *)m->live.domain_type);
        m->live = *live;
        m->live.domain_xml = xml;
        m->live.domain_type = type;
        return 0;
}

int hvp_guest_open_memory(const struct hvp_mem_region *regions, size_t nr_regions,
                          const struct hvp_vcpu_regs *vcpus, unsigned nr_vcpus,
                          bool writable, struct hvp_guest **ret_guest)
{
        struct hvp_ram_range ranges[HVP_MAX_RAM_RANGES];
        struct memory_be *m;
        struct hvp_vcpu_regs none = { 0 };

        if (nr_regions == 0 || nr_regions > HVP_MAX_RAM_RANGES)
                return hvp_fail(-E2BIG, "%zu memory regions", nr_regions);
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->regions = calloc(nr_regions, sizeof(*regions));
        if (!m->regions) {
                free(m);
                return -ENOMEM;
        }
        memcpy(m->regions, regions, nr_regions * sizeof(*regions));
        m->n = nr_regions;
        m->writable = writable;
        m->live.write_path = HVP_WRITE_DIRECT;
        for (size_t i = 0; i < nr_regions; i++)
                ranges[i] = (struct hvp_ram_range){ regions[i].gpa, regions[i].size };
        if (!vcpus || nr_vcpus == 0) {
                vcpus = &none;
                nr_vcpus = 1;
        }
        return hvp_guest_new(&memory_ops, m, "memory", ranges, nr_regions, vcpus, nr_vcpus, ret_guest);
}

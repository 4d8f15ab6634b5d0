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

static void memory_close(void *be)
{
        struct memory_be *m = be;

        if (m)
                free(m->regions);
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
};

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
        for (size_t i = 0; i < nr_regions; i++)
                ranges[i] = (struct hvp_ram_range){ regions[i].gpa, regions[i].size };
        if (!vcpus || nr_vcpus == 0) {
                vcpus = &none;
                nr_vcpus = 1;
        }
        return hvp_guest_new(&memory_ops, m, "memory", ranges, nr_regions, vcpus, nr_vcpus, ret_guest);
}

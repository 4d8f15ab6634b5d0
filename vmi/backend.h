/*
 * Internal: the operations table every guest backend implements. The generic layer
 * (vmi/guest.c) checks every physical range against the RAM map before calling
 * read/write, so backends may assume the range is inside one RAM range.
 */
#ifndef HVP_VMI_BACKEND_H
#define HVP_VMI_BACKEND_H

#include <hvpatch/guest.h>

/* Bounds on what a backend may report. */
#define HVP_MAX_VCPUS 1024
#define HVP_MAX_RAM_RANGES 256

struct hvp_backend_ops {
        const char *name;
        int (*read_phys)(void *be, uint64_t gpa, void *buf, size_t len);
        /* Optional: one call for many ranges (each inside RAM). NULL: looped read_phys. */
        int (*read_phys_v)(void *be, const struct hvp_phys_iov *iov, size_t n);
        /* NULL: read-only backend (-EROFS). */
        int (*write_phys)(void *be, uint64_t gpa, const void *buf, size_t len);
        /* NULL: -ENOTSUP. */
        int (*pause)(void *be);
        int (*resume)(void *be);
        /*
         * Optional: get ready for a pause window while the guest runs (open what the
         * pause and the writes need), and release that after the resume.
         */
        int (*prepare_window)(void *be);
        int (*release_window)(void *be);
        /* Take over a pause left by a dead hvpatch: 1 adopted, 0 not paused. */
        int (*adopt_pause)(void *be);
        /* Fill regs[0..n) for every vCPU; *ret_n is the count. NULL: registers fixed at open. */
        int (*read_regs)(void *be, struct hvp_vcpu_regs *regs, unsigned max, unsigned *ret_n);
        void (*close)(void *be);

        /*
         * What only a live domain has (see include/hvpatch/guest.h). Each is optional;
         * NULL answers: no patch-area device (-ENODEV), idle (0), no domain XML or
         * type (NULL), the direct write path.
         */
        int (*area_device)(void *be, uint64_t *ret_gpa, uint64_t *ret_size);
        int (*check_idle)(void *be);
        const char *(*domain_xml)(void *be);
        const char *(*domain_type)(void *be);
        enum hvp_write_path (*write_path)(void *be);
        /* The live domain's metadata element of a namespace (NULL: -ENOTSUP). */
        int (*get_metadata)(void *be, const char *ns, char **ret_xml);
        int (*set_metadata)(void *be, const char *ns, const char *key, const char *xml);
        /* The domain's run state now (NULL: -ENOTSUP). */
        int (*run_state)(void *be, struct hvp_run_state *ret);
};

/*
 * Build a guest over a backend. Takes ownership of be (closed through ops->close,
 * also on failure). ranges are copied, sorted and checked for overlap. vcpus may be
 * NULL when ops->read_regs exists (then it is called once here).
 */
int hvp_guest_new(const struct hvp_backend_ops *ops, void *be, const char *name,
                  const struct hvp_ram_range *ranges, size_t nr_ranges,
                  const struct hvp_vcpu_regs *vcpus, unsigned nr_vcpus,
                  struct hvp_guest **ret_guest);

/* Set the UUID that hvp_guest_uuid() returns (default: the name). */
int hvp_guest_set_uuid(struct hvp_guest *g, const char *uuid);

/* The backend object of a guest, for backend-specific calls. */
void *hvp_guest_backend_data(const struct hvp_guest *g, const struct hvp_backend_ops *ops);

/*
 * For unit tests: what a memory guest (hvp_guest_open_memory) answers to the
 * live-only calls, as a live domain would. Strings are copied. -EINVAL if g is not
 * a memory guest. Until set: the answers of a backend without them.
 */
struct hvp_memory_live {
        uint64_t area_gpa, area_size;   /* patch-area device; size 0: none (-ENODEV) */
        int check_idle;                 /* hvp_guest_check_idle()'s result (0, -EBUSY) */
        const char *domain_xml;         /* NULL: none */
        const char *domain_type;        /* NULL: none */
        enum hvp_write_path write_path;
};
int hvp_guest_memory_set_live(struct hvp_guest *g, const struct hvp_memory_live *live);

#endif

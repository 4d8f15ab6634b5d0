/*
 * The generic guest layer's live-only calls (patch-area device, idle check, domain
 * XML and type, write path): dispatched to the backend's operations, with the
 * answers of a backend that has none, and the values a test sets on a memory guest.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <hvpatch/guest.h>

#include "vmi/backend.h"

#define RAM 0x10000u

static uint8_t ram[RAM];

static struct hvp_guest *memory_guest(void)
{
        struct hvp_mem_region region = { 0, RAM, ram };
        struct hvp_vcpu_regs regs = { .cr0 = 0x80050033, .cr3 = 0x1000 };
        struct hvp_guest *g = NULL;

        assert_int_equal(hvp_guest_open_memory(&region, 1, &regs, 1, true, &g), 0);
        return g;
}

static void test_memory_defaults(void **state)
{
        struct hvp_guest *g = memory_guest();
        uint64_t gpa = 1, size = 1;

        (void)state;
        assert_int_equal(hvp_guest_area_device(g, &gpa, &size), -ENODEV);
        assert_int_equal(gpa, 1);       /* untouched on failure */
        assert_int_equal(size, 1);
        assert_int_equal(hvp_guest_check_idle(g), 0);
        assert_null(hvp_guest_domain_xml(g));
        assert_null(hvp_guest_domain_type(g));
        assert_int_equal(hvp_guest_write_path(g), HVP_WRITE_DIRECT);
        hvp_guest_free(g);
}

static void test_memory_set_live(void **state)
{
        struct hvp_guest *g = memory_guest();
        char xml[] = "<domain type='qemu'/>";
        struct hvp_memory_live live = {
                .area_gpa = 0x8000, .area_size = 0x2000, .check_idle = -EBUSY,
                .domain_xml = xml, .domain_type = "qemu", .write_path = HVP_WRITE_GDBSTUB,
        };
        uint64_t gpa = 0, size = 0;

        (void)state;
        assert_int_equal(hvp_guest_memory_set_live(g, &live), 0);
        xml[1] = 'X';                   /* copied, not referenced */
        assert_int_equal(hvp_guest_area_device(g, &gpa, &size), 0);
        assert_int_equal(gpa, 0x8000);
        assert_int_equal(size, 0x2000);
        assert_int_equal(hvp_guest_check_idle(g), -EBUSY);
        assert_string_equal(hvp_guest_domain_xml(g), "<domain type='qemu'/>");
        assert_string_equal(hvp_guest_domain_type(g), "qemu");
        assert_int_equal(hvp_guest_write_path(g), HVP_WRITE_GDBSTUB);
        assert_string_equal(hvp_write_path_name(hvp_guest_write_path(g)), "gdbstub");

        /* Set again: the new answers replace the old ones. */
        live = (struct hvp_memory_live){ .write_path = HVP_WRITE_DIRECT };
        assert_int_equal(hvp_guest_memory_set_live(g, &live), 0);
        assert_int_equal(hvp_guest_area_device(g, &gpa, &size), -ENODEV);
        assert_null(hvp_guest_domain_xml(g));
        assert_int_equal(hvp_guest_check_idle(g), 0);
        hvp_guest_free(g);
}

/* A backend of the test's own: the generic layer asks it, not the live backend. */
static int fake_read(void *be, uint64_t gpa, void *buf, size_t len)
{
        (void)be;
        memcpy(buf, ram + gpa, len);
        return 0;
}

static int fake_area(void *be, uint64_t *ret_gpa, uint64_t *ret_size)
{
        (void)be;
        *ret_gpa = 0x4000;
        *ret_size = 0x1000;
        return 0;
}

static int fake_idle(void *be)
{
        return *(int *)be;
}

static const char *fake_type(void *be)
{
        (void)be;
        return "kvm";
}

static const struct hvp_backend_ops fake_ops = {
        .name = "fake",
        .read_phys = fake_read,
        .area_device = fake_area,
        .check_idle = fake_idle,
        .domain_type = fake_type,
};

static void test_backend_ops(void **state)
{
        struct hvp_ram_range range = { 0, RAM };
        struct hvp_vcpu_regs regs = { .cr3 = 0x1000 };
        struct hvp_memory_live live = { 0 };
        struct hvp_guest *g;
        int busy = -EBUSY;
        uint64_t gpa = 0, size = 0;

        (void)state;
        assert_int_equal(hvp_guest_new(&fake_ops, &busy, "fake", &range, 1, &regs, 1, &g), 0);
        assert_int_equal(hvp_guest_area_device(g, &gpa, &size), 0);
        assert_int_equal(gpa, 0x4000);
        assert_int_equal(size, 0x1000);
        assert_int_equal(hvp_guest_check_idle(g), -EBUSY);
        busy = 0;
        assert_int_equal(hvp_guest_check_idle(g), 0);
        assert_string_equal(hvp_guest_domain_type(g), "kvm");
        /* Not provided: the answers of a backend without them. */
        assert_null(hvp_guest_domain_xml(g));
        assert_int_equal(hvp_guest_write_path(g), HVP_WRITE_DIRECT);
        /* Test values are for memory guests only. */
        assert_int_equal(hvp_guest_memory_set_live(g, &live), -EINVAL);
        hvp_guest_free(g);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_memory_defaults),
                cmocka_unit_test(test_memory_set_live),
                cmocka_unit_test(test_backend_ops),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * The read-only patch area (vmi/area-live.c) and append-only placement
 * (patcher/area.c): the append-only write rule and the file write under it,
 * placement past retired code with its guard, finding the area in the domain XML
 * and in `info memory-devices`, and matching backing objects in /proc/PID/maps.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cmocka.h>

#include <hvpatch/area.h>

#include "vmi/area-live.h"

static void test_append_rule(void **state)
{
        const uint8_t filler[4] = { 0xcc, 0xcc, 0xcc, 0xcc }, code[4] = { 0x31, 0xd2, 0xc3, 0xcc };
        const uint8_t other[4] = { 0x0f, 0x0b, 0x0f, 0x0b };

        (void)state;
        assert_true(hvp_area_append_only_ok(filler, code, 4, 0xcc));    /* new code over filler */
        assert_true(hvp_area_append_only_ok(code, code, 4, 0xcc));      /* the same bytes again */
        assert_false(hvp_area_append_only_ok(code, other, 4, 0xcc));    /* rewriting code */
        assert_false(hvp_area_append_only_ok(code, filler, 4, 0xcc));   /* erasing code */
}

static void test_ro_write(void **state)
{
        char path[] = "/tmp/hvp-area-ro-XXXXXX";
        uint8_t buf[64], code[8] = { 0x55, 0x48, 0x89, 0xe5, 0x5d, 0xc3, 0xcc, 0xcc };
        struct hvp_ro_area a = { .gpa = 0x100000000ull, .size = sizeof(buf) };

        (void)state;
        a.fd = mkstemp(path);
        assert_true(a.fd >= 0);
        unlink(path);
        memset(buf, HVP_AREA_RO_FILLER, sizeof(buf));
        assert_int_equal(pwrite(a.fd, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
        assert_int_equal(hvp_area_ro_write(&a, a.gpa + 16, code, sizeof(code)), 0);
        assert_int_equal(hvp_area_ro_write(&a, a.gpa + 16, code, sizeof(code)), 0);     /* idempotent */
        /* Over code, shifted by one: refused, nothing written. */
        assert_int_equal(hvp_area_ro_write(&a, a.gpa + 12, code, sizeof(code)), -EEXIST);
        assert_int_equal(pread(a.fd, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
        assert_memory_equal(buf + 16, code, sizeof(code));
        for (size_t i = 0; i < 16; i++)
                assert_int_equal(buf[i], 0xcc);
        /* Outside the area. */
        assert_int_equal(hvp_area_ro_write(&a, a.gpa + 60, code, sizeof(code)), -EINVAL);
        assert_int_equal(hvp_area_ro_write(&a, a.gpa - 1, code, 1), -EINVAL);
        close(a.fd);
}

/* An append-only area over a memory guest: placement skips retired code and its guard. */
static void test_alloc_append_only(void **state)
{
        const size_t ram = 1u << 20;
        uint8_t *mem = calloc(1, ram);
        struct hvp_mem_region region = { 0, ram, mem };
        struct hvp_vcpu_regs regs = { .cr0 = 0x80050033, .cr3 = 0x1000, .cr4 = 0x6f0, .efer = 0xd01 };
        struct hvp_area a = { .kind = "nvdimm", .start = 0xffffffffc0000000ull - (2u << 20), .gpa = 0x10000,
                              .len = 0x1000, .filler = 0xcc, .append_only = true };
        struct hvp_guest *g;
        uint64_t at;

        (void)state;
        assert_non_null(mem);
        memset(mem + 0x10000, 0xcc, 0x1000);
        /* Retired code at [0x00, 0x23): a jmp rel32 whose last bytes are 0xcc. */
        memset(mem + 0x10000, 0x90, 0x1e);
        memcpy(mem + 0x1001e, "\xe9\x10\x20\xcc\xcc", 5);
        assert_int_equal(hvp_guest_open_memory(&region, 1, &regs, 1, true, &g), 0);
        assert_int_equal(hvp_area_alloc(g, &a, NULL, 0, 32, 16, &at), 0);
        /* Last non-filler byte at 0x20: 16 guard bytes after it, then the next 16-byte boundary. */
        assert_int_equal(at - a.start, 0x40);
        /* The same area, not append-only: foreign bytes are refused. */
        a.append_only = false;
        assert_int_equal(hvp_area_alloc(g, &a, NULL, 0, 32, 16, &at), -EEXIST);
        /* Full of code: no room. */
        a.append_only = true;
        memset(mem + 0x10000, 0x90, 0x1000);
        assert_int_equal(hvp_area_alloc(g, &a, NULL, 0, 32, 16, &at), -ENOSPC);
        hvp_guest_free(g);
        free(mem);
}

static const char xml_fmt[] =
        "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'><name>x</name>"
        "<qemu:commandline><qemu:arg value='-machine'/><qemu:arg value='nvdimm=on'/>"
        "<qemu:arg value='-object'/><qemu:arg value='%s'/>"
        "<qemu:arg value='-device'/><qemu:arg value='nvdimm,id=hvpatch-area,memdev=hvpatch-area-mem,unarmed=on,slot=0'/>"
        "</qemu:commandline></domain>";

static int xml_path(const char *object, char *path, size_t size)
{
        char xml[2048];

        snprintf(xml, sizeof(xml), xml_fmt, object);
        return hvp_area_ro_xml_path(xml, path, size);
}

static void test_xml_path(void **state)
{
        char path[256];

        (void)state;
        assert_int_equal(xml_path("memory-backend-file,id=hvpatch-area-mem,mem-path=/var/lib/hvpatch/areas/u.area,"
                                  "size=2097152,share=on,readonly=on", path, sizeof(path)), 0);
        assert_string_equal(path, "/var/lib/hvpatch/areas/u.area");
        /* Writable by the guest, not shared with the host, relative, escaped: refused. */
        assert_int_equal(xml_path("memory-backend-file,id=hvpatch-area-mem,mem-path=/a,share=on,readonly=off",
                                  path, sizeof(path)), -EINVAL);
        assert_int_equal(xml_path("memory-backend-file,id=hvpatch-area-mem,mem-path=/a,readonly=on", path,
                                  sizeof(path)), -EINVAL);
        assert_int_equal(xml_path("memory-backend-file,id=hvpatch-area-mem,mem-path=a,share=on,readonly=on", path,
                                  sizeof(path)), -EINVAL);
        assert_int_equal(xml_path("memory-backend-file,id=hvpatch-area-mem,mem-path=/a,,b,share=on,readonly=on",
                                  path, sizeof(path)), -EINVAL);
        /* Another object: not the area. */
        assert_int_equal(xml_path("memory-backend-file,id=other,mem-path=/a,share=on,readonly=on", path,
                                  sizeof(path)), -ENOENT);
        assert_int_equal(hvp_area_ro_xml_path("<domain/>", path, sizeof(path)), -ENOENT);
        assert_int_equal(hvp_area_ro_xml_path("<domain", path, sizeof(path)), -EINVAL);
}

static void test_memory_devices(void **state)
{
        static const char out[] =
                "Memory device [dimm]: \"dimm0\"\r\n  addr: 0x140000000\r\n  size: 1073741824\r\n"
                "  memdev: /objects/hvpatch-area-mem\r\n"
                "Memory device [nvdimm]: \"hvpatch-area\"\r\n  addr: 0x100000000\r\n  slot: 0\r\n  node: 0\r\n"
                "  size: 2097152\r\n  memdev: /objects/hvpatch-area-mem\r\n  hotplugged: false\r\n"
                "  hotpluggable: true\r\n";
        uint64_t gpa, size;

        (void)state;
        assert_int_equal(hvp_area_ro_parse_memory_devices(out, &gpa, &size), 0);
        assert_int_equal(gpa, 0x100000000ull);
        assert_int_equal(size, 2097152);
        assert_int_equal(hvp_area_ro_parse_memory_devices("Memory device [dimm]: \"hvpatch-area\"\n", &gpa, &size),
                         -ENOENT);
        assert_int_equal(hvp_area_ro_parse_memory_devices("Memory device [nvdimm]: \"hvpatch-area\"\n"
                                                          "  addr: 0x100000000\n  size: 2097152\n"
                                                          "  memdev: /objects/other\n", &gpa, &size), -EIO);
        assert_int_equal(hvp_area_ro_parse_memory_devices("", &gpa, &size), -ENOENT);
}

static void test_maps(void **state)
{
        static const char maps[] =
                "55d4a0000000-55d4a0100000 r-xp 00000000 fe:00 393 /usr/bin/qemu-system-x86_64\n"
                "7f5032600000-7f5032700000 rw-s 00000000 00:1a 77 /dev/shm/hvpatch-area-x\n"
                "7f503273b000-7f503293b000 r--s 00000000 fe:00 1114114 /var/lib/hvpatch/areas/u.area\n"
                "7f5040000000-7f5050000000 rw-p 00000000 00:00 0 \n"
                "garbage line\n";
        uint64_t lo, hi;
        char perms[5];
        dev_t dev;
        ino_t ino;

        (void)state;
        assert_int_equal(hvp_area_maps_find(maps, makedev(0xfe, 0), 1114114, &lo, &hi, perms), 1);
        assert_int_equal(lo, 0x7f503273b000ull);
        assert_int_equal(hi - lo, 2u << 20);
        assert_string_equal(perms, "r--s");
        assert_int_equal(hvp_area_maps_find(maps, makedev(0xfe, 1), 1114114, NULL, NULL, NULL), 0);
        assert_int_equal(hvp_area_maps_backing(maps, 0x7f5032600000ull, 0x100000, &dev, &ino), 0);
        assert_int_equal(major(dev), 0);
        assert_int_equal(minor(dev), 0x1a);
        assert_int_equal(ino, 77);
        /* Anonymous memory, a range past its mapping, nothing mapped: no backing object. */
        assert_int_equal(hvp_area_maps_backing(maps, 0x7f5040000000ull, 4096, &dev, &ino), -ENOENT);
        assert_int_equal(hvp_area_maps_backing(maps, 0x7f5032600000ull, 0x100001, &dev, &ino), -ENOENT);
        assert_int_equal(hvp_area_maps_backing(maps, 0x1000, 4096, &dev, &ino), -ENOENT);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_append_rule),   cmocka_unit_test(test_ro_write),
                cmocka_unit_test(test_alloc_append_only), cmocka_unit_test(test_xml_path),
                cmocka_unit_test(test_memory_devices), cmocka_unit_test(test_maps),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}

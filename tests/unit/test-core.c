/* The core backend over synthetic cores: a good one, and every way to break one. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <hvpatch/guest.h>
#include <hvpatch/hvpatch.h>

#include "core-builder.h"
#include "vmi/backend.h"
#include "vmi/core.h"

static struct cb_core good(void)
{
        struct cb_spec s = cb_default_spec();
        struct cb_core c;

        assert_true(cb_build(&s, &c));
        return c;
}

/* Opening c must fail with err, and the reason must mention what. */
static void expect_fail(struct cb_core *c, int err, const char *what)
{
        struct hvp_guest *g = (struct hvp_guest *)0x1;
        int r = hvp_guest_open_core_buffer(c->buf, c->size, "t.core", &g);

        if (r != err || !strstr(hvp_last_error(), what))
                fail_msg("expected %d mentioning \"%s\", got %d: %s", err, what, r, hvp_last_error());
        assert_ptr_equal(g, (struct hvp_guest *)0x1);   /* untouched on failure */
        free(c->buf);
}

static uint8_t *phdr(struct cb_core *c, unsigned i)
{
        return c->buf + c->phoff + 56 * i;
}

static void test_good_core(void **state)
{
        struct cb_spec s = cb_default_spec();
        struct cb_core c = good();
        const struct hvp_ram_range *rr;
        struct hvp_vcpu_regs r;
        struct hvp_guest *g;
        uint8_t buf[64];

        assert_int_equal(hvp_guest_open_core_buffer(c.buf, c.size, "t.core", &g), 0);
        assert_string_equal(hvp_guest_backend(g), "core");
        assert_string_equal(hvp_guest_name(g), "t.core");
        assert_int_equal(hvp_guest_ram_ranges(g, &rr), 3);
        for (unsigned i = 0; i < 3; i++) {
                assert_int_equal(rr[i].gpa, s.load[i].gpa);
                assert_int_equal(rr[i].size, s.load[i].size);
        }
        assert_int_equal(hvp_guest_vcpu_count(g), 2);
        for (unsigned v = 0; v < 2; v++) {
                assert_int_equal(hvp_guest_vcpu_regs(g, v, &r), 0);
                assert_int_equal(r.rip, cb_rip(v));
                assert_int_equal(r.rsp, cb_rsp(v));
                assert_int_equal(r.rflags, CB_RFLAGS);
                assert_int_equal(r.cr0, CB_CR0);
                assert_int_equal(r.cr2, 0xdead000);
                assert_int_equal(r.cr3, cb_cr3(v));
                assert_int_equal(r.cr4, CB_CR4);
                assert_int_equal(r.cs_sel, 0x10);
                assert_int_equal(r.gs_base, cb_gs(v));
                assert_int_equal(r.kernel_gs_base, cb_kgs(v));
                assert_int_equal(r.gdt_base, CB_GDT);
                assert_int_equal(r.gdt_limit, 0x7f);
                assert_int_equal(r.idt_base, CB_IDT);
                assert_int_equal(r.idt_limit, 0xfff);
                /* Derived: long mode (x86-64 core, PG, PAE) with NX. */
                assert_int_equal(r.efer, (1u << 8) | (1u << 10) | (1u << 11));
                assert_false(r.halted);
        }
        assert_int_equal(hvp_guest_vcpu_regs(g, 2, &r), -ENOENT);

        /* Bytes at the ends of each segment. */
        assert_int_equal(hvp_guest_read_phys(g, 0x100000 + 0x10000 - 64, buf, 64), 0);
        for (int i = 0; i < 64; i++)
                assert_int_equal(buf[i], cb_byte(0x100000 + 0x10000 - 64 + i));
        assert_int_equal(hvp_guest_read_phys(g, 0xc0000, buf, 8), 0);
        assert_int_equal(buf[7], cb_byte(0xc0007));
        /* Across a hole, past the end: outside RAM. */
        assert_int_equal(hvp_guest_read_phys(g, 0xa000 - 4, buf, 8), -EFAULT);
        assert_int_equal(hvp_guest_read_phys(g, 0x110000, buf, 1), -EFAULT);

        /* Read-only, cannot pause. */
        assert_int_equal(hvp_guest_write_phys(g, 0x1000, buf, 1), -EROFS);
        assert_int_equal(hvp_guest_pause(g), -ENOTSUP);
        assert_false(hvp_guest_is_paused(g));
        assert_int_equal(hvp_guest_check_idle(g), 0);
        assert_null(hvp_guest_domain_xml(g));
        assert_null(hvp_guest_domain_type(g));
        hvp_guest_free(g);
        free(c.buf);
}

static void test_v1_state_no_prstatus(void **state)
{
        struct cb_spec s = cb_default_spec();
        struct hvp_vcpu_regs r;
        struct hvp_guest *g;
        struct cb_core c;

        s.qemu_size = 432;      /* QEMU before kernel_gs_base */
        s.prstatus = false;
        s.nr_vcpus = 3;
        assert_true(cb_build(&s, &c));
        assert_int_equal(hvp_guest_open_core_buffer(c.buf, c.size, "t.core", &g), 0);
        assert_int_equal(hvp_guest_vcpu_count(g), 3);
        assert_int_equal(hvp_guest_vcpu_regs(g, 2, &r), 0);
        assert_int_equal(r.cr3, cb_cr3(2));
        assert_int_equal(r.kernel_gs_base, 0);
        hvp_guest_free(g);
        free(c.buf);
}

static void test_adjacent_segments(void **state)
{
        struct cb_spec s = cb_default_spec();
        const struct hvp_ram_range *rr;
        struct hvp_guest *g;
        struct cb_core c;
        uint8_t buf[32];

        /* Two NUMA nodes' RAM, back to back, listed out of order. */
        s.nr_loads = 2;
        s.load[0].gpa = 0x108000;
        s.load[0].size = 0x8000;
        s.load[1].gpa = 0x100000;
        s.load[1].size = 0x8000;
        assert_true(cb_build(&s, &c));
        assert_int_equal(hvp_guest_open_core_buffer(c.buf, c.size, "t.core", &g), 0);
        assert_int_equal(hvp_guest_ram_ranges(g, &rr), 1);
        assert_int_equal(rr[0].gpa, 0x100000);
        assert_int_equal(rr[0].size, 0x10000);
        assert_int_equal(hvp_guest_read_phys(g, 0x108000 - 16, buf, sizeof(buf)), 0);
        for (int i = 0; i < 32; i++)
                assert_int_equal(buf[i], cb_byte(0x108000 - 16 + i));
        hvp_guest_free(g);
        free(c.buf);
}

static void test_not_long_mode(void **state)
{
        struct hvp_vcpu_regs r;
        struct hvp_guest *g;
        struct cb_core c = good();

        cb_put16(c.buf + 18, EM_386);   /* QEMU's marker for "first vCPU not in long mode" */
        assert_int_equal(hvp_guest_open_core_buffer(c.buf, c.size, "t.core", &g), 0);
        assert_int_equal(hvp_guest_vcpu_regs(g, 0, &r), 0);
        assert_int_equal(r.efer, 0);
        hvp_guest_free(g);
        free(c.buf);
}

static void test_pn_xnum(void **state)
{
        struct cb_core c = good();
        struct hvp_guest *g;
        uint8_t *nb = realloc(c.buf, c.size + 64);

        /* Section header 0 appended at the end, e_phnum = PN_XNUM, count in sh_info. */
        assert_non_null(nb);
        c.buf = nb;
        memset(c.buf + c.size, 0, 64);
        cb_put32(c.buf + c.size + 44, 4);       /* sh_info */
        cb_put64(c.buf + 40, c.size);           /* e_shoff */
        cb_put16(c.buf + 58, 64);               /* e_shentsize */
        cb_put16(c.buf + 60, 1);                /* e_shnum */
        cb_put16(c.buf + 56, PN_XNUM);
        c.size += 64;
        assert_int_equal(hvp_guest_open_core_buffer(c.buf, c.size, "t.core", &g), 0);
        hvp_guest_free(g);
        /* sh_info absurd */
        cb_put32(c.buf + c.size - 64 + 44, 1000000);
        expect_fail(&c, -E2BIG, "program headers");
}

static void test_bad_pn_xnum(void **state)
{
        struct cb_core c = good();

        cb_put16(c.buf + 56, PN_XNUM);
        cb_put64(c.buf + 40, c.size - 8);       /* section header 0 past the end */
        cb_put16(c.buf + 58, 64);
        expect_fail(&c, -EINVAL, "section header 0");
}

static void test_truncated_header(void **state)
{
        struct cb_core c = good();

        c.size = 40;
        expect_fail(&c, -EINVAL, "ELF64 header needs");
}

static void test_bad_ident(void **state)
{
        struct cb_core c = good();

        c.buf[1] = 'X';
        expect_fail(&c, -EINVAL, "bad magic");
        c = good();
        c.buf[EI_CLASS] = ELFCLASS32;
        expect_fail(&c, -ENOTSUP, "ELF64");
        c = good();
        c.buf[EI_DATA] = ELFDATA2MSB;
        expect_fail(&c, -EINVAL, "little-endian");
        c = good();
        cb_put16(c.buf + 16, ET_EXEC);
        expect_fail(&c, -EINVAL, "ET_CORE");
        c = good();
        cb_put16(c.buf + 18, EM_AARCH64);
        expect_fail(&c, -ENOTSUP, "not x86");
        c = good();
        cb_put16(c.buf + 54, 32);
        expect_fail(&c, -EINVAL, "e_phentsize");
}

static void test_phdrs_past_eof(void **state)
{
        struct cb_core c = good();

        cb_put64(c.buf + 32, c.size - 56);      /* e_phoff: 4 entries do not fit */
        expect_fail(&c, -EINVAL, "program header table");
        c = good();
        cb_put64(c.buf + 32, UINT64_MAX - 8);   /* offset arithmetic must not wrap */
        expect_fail(&c, -EINVAL, "program header table");
        c = good();
        cb_put16(c.buf + 56, 0);
        expect_fail(&c, -EINVAL, "no program headers");
}

static void test_absurd_phnum(void **state)
{
        struct cb_core c = good();

        cb_put16(c.buf + 56, 0xfffe);
        expect_fail(&c, -E2BIG, "65534 program headers");
}

static void test_segment_past_eof(void **state)
{
        struct cb_core c = good();

        cb_put64(phdr(&c, 3) + 32, 0x10000 + 1);        /* p_filesz one byte too many */
        cb_put64(phdr(&c, 3) + 40, 0x10000 + 1);
        expect_fail(&c, -EINVAL, "PT_LOAD 3");
        c = good();
        cb_put64(phdr(&c, 2) + 8, UINT64_MAX - 0x100);  /* p_offset wraps */
        expect_fail(&c, -EINVAL, "run past the end");
        c = good();
        cb_put64(phdr(&c, 1) + 32, 0xa000 + 1);         /* filesz > memsz */
        expect_fail(&c, -EINVAL, "p_filesz");
        c = good();
        cb_put64(phdr(&c, 3) + 24, UINT64_MAX - 0x100); /* guest-physical range wraps */
        expect_fail(&c, -EINVAL, "wraps");
}

static void test_overlapping_segments(void **state)
{
        struct cb_core c = good();

        cb_put64(phdr(&c, 2) + 24, 0x9000);             /* ROM block now inside RAM below 640K */
        expect_fail(&c, -EINVAL, "overlap");
}

static void test_no_memory(void **state)
{
        struct cb_spec s = cb_default_spec();
        struct cb_core c;

        s.nr_loads = 0;
        assert_true(cb_build(&s, &c));
        expect_fail(&c, -EINVAL, "no PT_LOAD");
}

static void test_too_many_loads(void **state)
{
        struct cb_spec s = cb_default_spec();
        size_t extra = HVP_MAX_RAM_RANGES + 1 - s.nr_loads, nph;
        struct cb_core c;
        uint8_t *nb;

        /* Rebuild the phdr table at the end with HVP_MAX_RAM_RANGES+1 one-byte loads. */
        assert_true(cb_build(&s, &c));
        nph = 1 + s.nr_loads + extra;
        nb = realloc(c.buf, c.size + 56 * nph);
        assert_non_null(nb);
        c.buf = nb;
        memcpy(c.buf + c.size, c.buf + c.phoff, 56 * (1 + s.nr_loads));
        for (size_t i = 0; i < extra; i++) {
                uint8_t *p = c.buf + c.size + 56 * (1 + s.nr_loads + i);

                memset(p, 0, 56);
                cb_put32(p, PT_LOAD);
                cb_put64(p + 8, c.load_off[2]);
                cb_put64(p + 24, 0x200000 + 0x1000 * i);
                cb_put64(p + 32, 1);
                cb_put64(p + 40, 1);
        }
        cb_put64(c.buf + 32, c.size);
        cb_put16(c.buf + 56, (uint16_t)nph);
        c.size += 56 * nph;
        expect_fail(&c, -E2BIG, "PT_LOAD segments");
}

static void test_note_past_eof(void **state)
{
        struct cb_core c = good();

        cb_put64(phdr(&c, 0) + 32, c.size);
        expect_fail(&c, -EINVAL, "PT_NOTE 0");
}

static void test_note_bad_sizes(void **state)
{
        struct cb_core c = good();

        cb_put32(c.buf + c.qemu_off[1], 0xfffffff0);    /* namesz */
        expect_fail(&c, -EINVAL, "run past the end of PT_NOTE");
        c = good();
        cb_put32(c.buf + c.prstatus_off[0] + 4, 0xffffffff);    /* descsz, padding would wrap 32 bits */
        expect_fail(&c, -EINVAL, "run past the end of PT_NOTE");
        c = good();
        cb_put64(phdr(&c, 0) + 32, c.note_size - 4);    /* last note header cut */
        expect_fail(&c, -EINVAL, "run past the end of PT_NOTE");
        c = good();
        cb_put64(phdr(&c, 0) + 32, 8);                  /* not even one note header */
        expect_fail(&c, -EINVAL, "header cut off");
        c = good();
        cb_put32(c.buf + c.qemu_off[0] + 4, 4);         /* QEMU note too short for its header */
        expect_fail(&c, -EINVAL, "too short");
        c = good();
        cb_put32(c.buf + c.prstatus_off[1] + 4, 200);   /* prstatus too short (desc shrinks, next note misparsed) */
        expect_fail(&c, -EINVAL, "NT_PRSTATUS");
}

static void test_qemu_state_bad(void **state)
{
        struct cb_core c = good();

        cb_put32(c.buf + c.qemu_off[1] + 20, 2);        /* version */
        expect_fail(&c, -ENOTSUP, "version 2");
        c = good();
        cb_put32(c.buf + c.qemu_off[0] + 24, 100);      /* size < v1 */
        expect_fail(&c, -EINVAL, "state size 100");
        c = good();
        cb_put32(c.buf + c.qemu_off[0] + 24, 4096);     /* size > note */
        expect_fail(&c, -EINVAL, "state size 4096");
}

static void test_no_qemu_note(void **state)
{
        struct cb_core c = good();

        /* Rename the QEMU notes: the core keeps its PRSTATUS notes but loses the state. */
        memcpy(c.buf + c.qemu_off[0] + 12, "XEMU", 4);
        memcpy(c.buf + c.qemu_off[1] + 12, "XEMU", 4);
        expect_fail(&c, -EINVAL, "no QEMU CPU state note");
}

static void test_prstatus_mismatch(void **state)
{
        struct cb_core c = good();

        memcpy(c.buf + c.prstatus_off[1] + 12, "XORE", 4);
        expect_fail(&c, -EINVAL, "1 NT_PRSTATUS notes but 2 QEMU notes");
        c = good();
        cb_put64(c.buf + c.prstatus_off[1] + 20 + 112 + 16 * 8, 0x1234);
        expect_fail(&c, -EINVAL, "vCPU 1");
}

static void test_files(void **state)
{
        char dir[] = "/tmp/hvp-test-core-XXXXXX", path[64];
        struct cb_core c = good();
        struct hvp_guest *g;
        uint8_t b;
        int fd;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/none.core", dir);
        assert_int_equal(hvp_guest_open_core(path, &g), -ENOENT);
        assert_int_equal(hvp_guest_open_core(dir, &g), -EINVAL);
        snprintf(path, sizeof(path), "%s/good.core", dir);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, c.buf, c.size), (ssize_t)c.size);
        close(fd);
        free(c.buf);
        assert_int_equal(hvp_guest_open_core(path, &g), 0);
        assert_string_equal(hvp_guest_name(g), path);
        assert_int_equal(hvp_guest_read_phys(g, 0x100123, &b, 1), 0);
        assert_int_equal(b, cb_byte(0x100123));
        hvp_guest_free(g);
        /* Empty file */
        assert_int_equal(truncate(path, 0), 0);
        assert_int_equal(hvp_guest_open_core(path, &g), -EINVAL);
        assert_non_null(strstr(hvp_last_error(), "ELF64 header"));
        unlink(path);
        rmdir(dir);
}

/*
 * A core file cut short while it is open (another dump rewriting it, a full disk): reads
 * of what is gone fail with a reason, what is left still reads, and nothing crashes
 * (a mapped file raised SIGBUS here).
 */
static void test_truncated_while_open(void **state)
{
        char dir[] = "/tmp/hvp-test-core-XXXXXX", path[64];
        struct cb_core c = good();
        struct hvp_guest *g;
        uint8_t buf[64];
        int fd;

        (void)state;
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/cut.core", dir);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, c.buf, c.size), (ssize_t)c.size);
        close(fd);
        assert_int_equal(hvp_guest_open_core(path, &g), 0);
        /* keep the first PT_LOAD (guest-physical 0..0xa000) and half of it only */
        assert_int_equal(truncate(path, (off_t)(c.load_off[0] + 0x5000)), 0);
        assert_int_equal(hvp_guest_read_phys(g, 0x1000, buf, sizeof(buf)), 0);
        assert_int_equal(buf[0], cb_byte(0x1000));
        assert_int_equal(hvp_guest_read_phys(g, 0x100000, buf, sizeof(buf)), -EIO);
        assert_non_null(strstr(hvp_last_error(), "shrank after it was opened"));
        assert_int_equal(hvp_guest_read_phys(g, 0x4ff0, buf, 32), -EIO);    /* across the cut */
        /* and emptied (a page read before may still come from the cache: 0x1000 is not asked) */
        assert_int_equal(truncate(path, 0), 0);
        assert_int_equal(hvp_guest_read_phys(g, 0x3000, buf, sizeof(buf)), -EIO);
        assert_non_null(strstr(hvp_last_error(), "cut.core"));
        hvp_guest_free(g);
        free(c.buf);
        unlink(path);
        rmdir(dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_good_core),
                cmocka_unit_test(test_v1_state_no_prstatus),
                cmocka_unit_test(test_adjacent_segments),
                cmocka_unit_test(test_not_long_mode),
                cmocka_unit_test(test_pn_xnum),
                cmocka_unit_test(test_bad_pn_xnum),
                cmocka_unit_test(test_truncated_header),
                cmocka_unit_test(test_bad_ident),
                cmocka_unit_test(test_phdrs_past_eof),
                cmocka_unit_test(test_absurd_phnum),
                cmocka_unit_test(test_segment_past_eof),
                cmocka_unit_test(test_overlapping_segments),
                cmocka_unit_test(test_no_memory),
                cmocka_unit_test(test_too_many_loads),
                cmocka_unit_test(test_note_past_eof),
                cmocka_unit_test(test_note_bad_sizes),
                cmocka_unit_test(test_qemu_state_bad),
                cmocka_unit_test(test_no_qemu_note),
                cmocka_unit_test(test_prstatus_mismatch),
                cmocka_unit_test(test_files),
                cmocka_unit_test(test_truncated_while_open),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * HMP parsers on real monitor output (tests/unit/data/hmp, captured from QEMU 7.2
 * through libvirt 9, see README there) and on variants written from QEMU's formats.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <hvpatch/guest.h>
#include <hvpatch/hvpatch.h>

#include "vmi/hmp.h"

static char *load(const char *name)
{
        const char *src = getenv("HVP_SOURCE_DIR");
        char path[4096];
        char *buf;
        long n;
        FILE *f;

        snprintf(path, sizeof(path), "%s/tests/unit/data/hmp/%s", src ? src : ".", name);
        f = fopen(path, "rb");
        if (!f)
                fail_msg("cannot open %s (set HVP_SOURCE_DIR)", path);
        fseek(f, 0, SEEK_END);
        n = ftell(f);
        rewind(f);
        buf = malloc((size_t)n + 1);
        assert_non_null(buf);
        assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
        buf[n] = '\0';
        fclose(f);
        return buf;
}

/* ------------------------------------------------------------------ RAM */

static void test_ram_q35(void **state)
{
        char *tree = load("q35-tcg-info-mtree.txt"), *flat = load("q35-tcg-info-mtree-f.txt");
        struct hvp_hmp_ram ram[8];
        size_t n = 0;

        assert_int_equal(hvp_hmp_parse_ram(tree, flat, ram, 8, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(ram[0].gpa, 0);
        assert_int_equal(ram[0].size, 0xc0000);
        assert_string_equal(ram[0].region, "pc.ram");
        assert_int_equal(ram[0].region_offset, 0);
        assert_int_equal(ram[1].gpa, 0x100000);
        assert_int_equal(ram[1].size, 0x10000000 - 0x100000);
        assert_int_equal(ram[1].region_offset, 0x100000);
        /* Bounded output. */
        assert_int_equal(hvp_hmp_parse_ram(tree, flat, ram, 1, &n), -E2BIG);
        free(tree);
        free(flat);
}

static void test_ram_numa_ivshmem(void **state)
{
        char *tree = load("q35-numa-ivshmem-la57-info-mtree.txt");
        char *flat = load("q35-numa-ivshmem-la57-info-mtree-f.txt");
        struct hvp_hmp_ram ram[8];
        size_t n = 0;

        /* The sample does have the ivshmem BAR as RAM in the flat view. */
        assert_non_null(strstr(flat, "(prio 1, ram): shmmem-shmem0"));
        assert_int_equal(hvp_hmp_parse_ram(tree, flat, ram, 8, &n), 0);
        assert_int_equal(n, 3);
        assert_string_equal(ram[0].region, "ram-node0");
        assert_int_equal(ram[0].gpa, 0);
        assert_int_equal(ram[0].size, 0xc0000);
        assert_string_equal(ram[1].region, "ram-node0");
        assert_int_equal(ram[1].gpa, 0x100000);
        assert_int_equal(ram[1].size, 0x8000000 - 0x100000);
        assert_int_equal(ram[1].region_offset, 0x100000);
        assert_string_equal(ram[2].region, "ram-node1");
        assert_int_equal(ram[2].gpa, 0x8000000);
        assert_int_equal(ram[2].size, 0x8000000);
        assert_int_equal(ram[2].region_offset, 0);
        for (size_t i = 0; i < n; i++)
                assert_true(ram[i].gpa < 0xe000000000ull);
        free(tree);
        free(flat);
}

/* A KVM machine with RAM above 4 GiB and a VGA buffer, in QEMU's formats. */
static const char tree_4g[] =
        "address-space: memory\r\n"
        "  0000000000000000-ffffffffffffffff (prio 0, i/o): system\r\n"
        "    0000000000000000-000000007fffffff (prio 0, ram): alias ram-below-4g @pc.ram 0000000000000000-000000007fffffff\r\n"
        "    0000000100000000-000000017fffffff (prio 0, ram): alias ram-above-4g @pc.ram 0000000080000000-00000000ffffffff\r\n"
        "    00000000000a0000-00000000000bffff (prio 1, i/o): alias smram-region @pci 00000000000a0000-00000000000bffff [disabled]\r\n"
        "    00000000fd000000-00000000fdffffff (prio 1, ram): vga.vram\r\n"
        "\r\n"
        "address-space: I/O\r\n"
        "  0000000000000000-000000000000ffff (prio 0, i/o): io\r\n"
        "\r\n"
        "memory-region: pc.ram\r\n"
        "  0000000000000000-00000000ffffffff (prio 0, ram): pc.ram\r\n"
        "\r\n";

static const char flat_4g_fmt[] =
        "FlatView #0\r\n"
        " AS \"I/O\", root: io\r\n"
        " Root memory region: io\r\n"
        "  0000000000000000-0000000000000007 (prio 0, i/o): dma-chan\r\n"
        "\r\n"
        "FlatView #1\r\n"
        " AS \"memory\", root: system\r\n"
        " AS \"cpu-memory-0\", root: system\r\n"
        " Root memory region: system\r\n"
        "  0000000000000000-000000000009ffff (prio 0, ram): pc.ram kvm\r\n"
        "  00000000000c0000-00000000000fffff (prio 0, rom): pc.ram @00000000000c0000 kvm\r\n"
        "  0000000000100000-000000007fffffff (prio 0, ram): pc.ram @0000000000100000 kvm\r\n"
        "  00000000fd000000-00000000fdffffff (prio 1, ram): vga.vram kvm\r\n"
        "  00000000fec00000-00000000fec00fff (prio 0, i/o): kvm-ioapic\r\n"
        "  0000000100000000-000000017fffffff (prio 0, ram): pc.ram @%s kvm\r\n"
        "%s"
        "\r\n";

static int parse_4g(const char *tree, const char *above_offset, const char *extra, struct hvp_hmp_ram *ram,
                    size_t *n)
{
        char flat[4096];

        snprintf(flat, sizeof(flat), flat_4g_fmt, above_offset, extra);
        return hvp_hmp_parse_ram(tree, flat, ram, 8, n);
}

static void test_ram_above_4g(void **state)
{
        struct hvp_hmp_ram ram[8];
        size_t n = 0;

        assert_int_equal(parse_4g(tree_4g, "0000000080000000", "", ram, &n), 0);
        assert_int_equal(n, 3);         /* not the ROM-mode pc.ram at 0xc0000, not vga.vram */
        assert_int_equal(ram[0].size, 0xa0000);
        assert_int_equal(ram[1].gpa, 0x100000);
        assert_int_equal(ram[2].gpa, 0x100000000ull);
        assert_int_equal(ram[2].size, 0x80000000ull);
        assert_int_equal(ram[2].region_offset, 0x80000000ull);
}

static void test_ram_inconsistent(void **state)
{
        struct hvp_hmp_ram ram[8];
        size_t n = 0;

        /* The flat view says a different offset than the alias implies. */
        assert_int_equal(parse_4g(tree_4g, "0000000090000000", "", ram, &n), -EIO);
        assert_non_null(strstr(hvp_last_error(), "the aliases say 0x80000000"));
        /* Main RAM also mapped outside its aliases: left out, not an error. */
        assert_int_equal(parse_4g(tree_4g, "0000000080000000",
                                  "  0000000200000000-0000000200000fff (prio 0, ram): pc.ram @0000000000001000\r\n",
                                  ram, &n), 0);
        assert_int_equal(n, 3);
        /* Out of order. */
        assert_int_equal(parse_4g(tree_4g, "0000000080000000",
                                  "  0000000000000000-0000000000000fff (prio 0, ram): pc.ram\r\n", ram, &n), -EIO);
}

static void test_ram_tree_problems(void **state)
{
        struct hvp_hmp_ram ram[8];
        size_t n = 0;
        char tree[4096];

        /* No main RAM alias at all. */
        assert_int_equal(parse_4g("address-space: memory\r\n"
                                  "  0000000000000000-ffffffffffffffff (prio 0, i/o): system\r\n\r\n",
                                  "0000000080000000", "", ram, &n), -EIO);
        assert_non_null(strstr(hvp_last_error(), "ram-below-4g"));
        /* Two regions named like the target: ambiguous. */
        snprintf(tree, sizeof(tree), "%s%s", tree_4g,
                 "memory-region: pc.ram\r\n  0000000000000000-00000000ffffffff (prio 0, ram): pc.ram\r\n\r\n");
        assert_int_equal(parse_4g(tree, "0000000080000000", "", ram, &n), -EIO);
        assert_non_null(strstr(hvp_last_error(), "pc.ram"));
        /* Aliases pointing at different regions. */
        snprintf(tree, sizeof(tree), "%s",
                 "address-space: memory\r\n"
                 "  0000000000000000-ffffffffffffffff (prio 0, i/o): system\r\n"
                 "    0000000000000000-000000007fffffff (prio 0, ram): alias ram-below-4g @pc.ram 0000000000000000-000000007fffffff\r\n"
                 "    0000000100000000-000000017fffffff (prio 0, ram): alias ram-above-4g @other 0000000080000000-00000000ffffffff\r\n");
        assert_int_equal(parse_4g(tree, "0000000080000000", "", ram, &n), -EIO);
        /* A line longer than the bound. */
        {
                size_t len = HVP_HMP_MAX_LINE + 100;
                char *big = malloc(len + sizeof(tree_4g));

                assert_non_null(big);
                memset(big, 'x', len);
                strcpy(big + len, tree_4g);
                assert_int_equal(parse_4g(big, "0000000080000000", "", ram, &n), -EIO);
                assert_non_null(strstr(hvp_last_error(), "longer than"));
                free(big);
        }
}

static void test_ram_flat_problems(void **state)
{
        struct hvp_hmp_ram ram[8];
        size_t n = 0;
        char flat[2048];

        /* No flat view of "memory". */
        assert_int_equal(hvp_hmp_parse_ram(tree_4g, "FlatView #0\r\n AS \"I/O\", root: io\r\n", ram, 8, &n), -EIO);
        /* Two of them. */
        snprintf(flat, sizeof(flat),
                 "FlatView #0\r\n AS \"memory\", root: system\r\n Root memory region: system\r\n"
                 "  0000000000000000-000000007fffffff (prio 0, ram): pc.ram\r\n\r\n"
                 "FlatView #1\r\n AS \"memory\", root: system\r\n Root memory region: system\r\n\r\n");
        assert_int_equal(hvp_hmp_parse_ram(tree_4g, flat, ram, 8, &n), -EIO);
        /* Garbage lines are not ranges. */
        snprintf(flat, sizeof(flat),
                 "FlatView #0\r\n AS \"memory\", root: system\r\n Root memory region: system\r\n"
                 "  zzzz-0000 (prio 0, ram): pc.ram\r\n"
                 "  0000000000001000-0000000000000fff (prio 0, ram): pc.ram\r\n"
                 "  0000000000000000-00000000000fffff (prio x, ram): pc.ram\r\n"
                 "  00000000000000000-00000000000fffff (prio 0, ram): pc.ram\r\n\r\n");
        assert_int_equal(hvp_hmp_parse_ram(tree_4g, flat, ram, 8, &n), -EIO);
        assert_non_null(strstr(hvp_last_error(), "no main RAM"));
}

/* -------------------------------------------------------------- gpa2hva */

static void test_gpa2hva(void **state)
{
        uint64_t hva = 0;

        assert_int_equal(hvp_hmp_parse_gpa2hva("Host virtual address for 0x100000 (pc.ram) is 0x7fb43bf00000\r\n",
                                               0x100000, "pc.ram", &hva), 0);
        assert_int_equal(hva, 0x7fb43bf00000ull);
        assert_int_equal(hvp_hmp_parse_gpa2hva("\r\nHost virtual address for 0xfffffff (ram-node1) is 0x7f0000000fff\r\n\r\n",
                                               0xfffffff, "ram-node1", &hva), 0);
        assert_int_equal(hva, 0x7f0000000fffull);
        assert_int_equal(hvp_hmp_parse_gpa2hva("Memory at address 0xb0000000 is not RAM\r\n", 0xb0000000, "pc.ram",
                                               &hva), -EIO);
        assert_non_null(strstr(hvp_last_error(), "is not RAM"));
        assert_int_equal(hvp_hmp_parse_gpa2hva("No memory is mapped at address 0x10000000\r\n", 0x10000000, "pc.ram",
                                               &hva), -EIO);
        assert_int_equal(hvp_hmp_parse_gpa2hva("Host virtual address for 0xffc00000 (system.flash1) is 0x7f00\r\n",
                                               0xffc00000, "pc.ram", &hva), -EIO);
        assert_non_null(strstr(hvp_last_error(), "system.flash1"));
        assert_int_equal(hvp_hmp_parse_gpa2hva("Host virtual address for 0x1000 (pc.ram) is 0x7f00\r\n", 0x2000,
                                               "pc.ram", &hva), -EIO);
        assert_int_equal(hvp_hmp_parse_gpa2hva("Host virtual address for 0x1000 (pc.ram) is 0x7f00 and more\r\n",
                                               0x1000, "pc.ram", &hva), -EIO);
        assert_int_equal(hvp_hmp_parse_gpa2hva("Host virtual address for 0x1000 (pc.ram) is 0x11112222333344445\r\n",
                                               0x1000, "pc.ram", &hva), -EIO);
        assert_int_equal(hvp_hmp_parse_gpa2hva("", 0x1000, "pc.ram", &hva), -EIO);
}

/* ------------------------------------------------------------ registers */

/* Independent reading of the sample: the value after the n-th "KEY" (e.g. "CR3="). */
static uint64_t nth_value(const char *text, const char *key, unsigned n)
{
        const char *p = text;

        for (unsigned i = 0; i <= n; i++) {
                p = strstr(p, key);
                assert_non_null(p);
                p += strlen(key);
        }
        while (*p == ' ')
                p++;
        return strtoull(p, NULL, 16);
}

static void check_against_text(const char *text, const struct hvp_vcpu_regs *r, unsigned n)
{
        for (unsigned i = 0; i < n; i++) {
                assert_int_equal(r[i].rip, nth_value(text, "RIP=", i));
                assert_int_equal(r[i].rsp, nth_value(text, "RSP=", i));
                assert_int_equal(r[i].rflags, nth_value(text, "RFL=", i));
                assert_int_equal(r[i].cr0, nth_value(text, "CR0=", i));
                assert_int_equal(r[i].cr2, nth_value(text, "CR2=", i));
                assert_int_equal(r[i].cr3, nth_value(text, "CR3=", i));
                assert_int_equal(r[i].cr4, nth_value(text, "CR4=", i));
                assert_int_equal(r[i].efer, nth_value(text, "EFER=", i));
                assert_int_equal(r[i].cs_sel, nth_value(text, "CS =", i));
                assert_int_equal(r[i].gs_base, nth_value(text, "GS =0000 ", i));
                assert_int_equal(r[i].gdt_base, nth_value(text, "GDT=", i));
                assert_int_equal(r[i].idt_base, nth_value(text, "IDT=", i));
                assert_int_equal(r[i].halted, nth_value(text, "HLT=", i) != 0);
        }
}

static void test_registers_samples(void **state)
{
        struct hvp_vcpu_regs r[4];
        unsigned n = 0;
        char *text = load("q35-tcg-info-registers-a.txt");

        assert_int_equal(hvp_hmp_parse_registers(text, r, 4, &n), 0);
        assert_int_equal(n, 2);
        check_against_text(text, r, n);
        assert_int_equal(r[0].gdt_limit, 0x7f);
        assert_int_equal(r[0].idt_limit, 0xfff);
        assert_int_equal(r[0].kernel_gs_base, 0);
        assert_false(r[0].cr4 & (1u << 12));
        assert_int_equal(hvp_hmp_parse_registers(text, r, 1, &n), -E2BIG);
        free(text);

        text = load("q35-numa-ivshmem-la57-info-registers-a.txt");
        assert_int_equal(hvp_hmp_parse_registers(text, r, 4, &n), 0);
        assert_int_equal(n, 2);
        check_against_text(text, r, n);
        assert_true(r[0].cr4 & (1u << 12));     /* LA57 */
        free(text);
}

static const char regs32[] =
        "\r\nCPU#0\r\n"
        "EAX=00000000 EBX=00000000 ECX=00000000 EDX=00060fb1\r\n"
        "ESI=00000000 EDI=00000000 EBP=00000000 ESP=00007000\r\n"
        "EIP=0000fff0 EFL=00000002 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=0\r\n"
        "ES =0000 00000000 0000ffff 00009300\r\n"
        "CS =f000 ffff0000 0000ffff 00009b00\r\n"
        "SS =0000 00000000 0000ffff 00009300\r\n"
        "DS =0000 00000000 0000ffff 00009300\r\n"
        "FS =0000 00000000 0000ffff 00009300\r\n"
        "GS =0000 00000000 0000ffff 00009300\r\n"
        "LDT=0000 00000000 0000ffff 00008200\r\n"
        "TR =0000 00000000 0000ffff 00008b00\r\n"
        "GDT=     00000000 0000ffff\r\n"
        "IDT=     00000000 0000ffff\r\n"
        "CR0=60000010 CR2=00000000 CR3=00000000 CR4=00000000\r\n"
        "DR0=0000000000000000 DR1=0000000000000000 DR2=0000000000000000 DR3=0000000000000000 \r\n"
        "DR6=00000000ffff0ff0 DR7=0000000000000400\r\n"
        "EFER=0000000000000000\r\n"
        "FCW=037f FSW=0000 [ST=0] FTW=00 MXCSR=00001f80\r\n";

static void test_registers_real_mode(void **state)
{
        struct hvp_vcpu_regs r[2];
        unsigned n = 0;

        assert_int_equal(hvp_hmp_parse_registers(regs32, r, 2, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(r[0].rip, 0xfff0);
        assert_int_equal(r[0].rsp, 0x7000);
        assert_int_equal(r[0].rflags, 2);
        assert_int_equal(r[0].cs_sel, 0xf000);
        assert_int_equal(r[0].cr0, 0x60000010);
        assert_int_equal(r[0].gdt_limit, 0xffff);
        assert_int_equal(r[0].efer, 0);
}

static void replace_once(char *s, const char *from, const char *to)
{
        char *p = strstr(s, from);

        assert_non_null(p);
        assert_int_equal(strlen(from), strlen(to));
        memcpy(p, to, strlen(to));
}

static void test_registers_broken(void **state)
{
        struct hvp_vcpu_regs r[2];
        unsigned n = 0;
        char buf[sizeof(regs32) * 2 + 16];

        strcpy(buf, regs32);
        replace_once(buf, "CR3=", "CRX=");
        assert_int_equal(hvp_hmp_parse_registers(buf, r, 2, &n), -EIO);
        assert_non_null(strstr(hvp_last_error(), "no CR3"));

        strcpy(buf, regs32);
        replace_once(buf, "DR7=", "CR2=");      /* CR2 twice */
        assert_int_equal(hvp_hmp_parse_registers(buf, r, 2, &n), -EIO);
        assert_non_null(strstr(hvp_last_error(), "CR2 twice"));

        strcpy(buf, regs32);
        replace_once(buf, "EIP=0000fff0", "EIP=ZZZZZZZZ");
        assert_int_equal(hvp_hmp_parse_registers(buf, r, 2, &n), -EIO);

        strcpy(buf, regs32);
        replace_once(buf, "CS =f000 ffff0000", "CS =f000 ffffzzzz");
        assert_int_equal(hvp_hmp_parse_registers(buf, r, 2, &n), -EIO);

        /* CPU numbers must increase. */
        snprintf(buf, sizeof(buf), "%s%s", regs32, regs32);
        assert_int_equal(hvp_hmp_parse_registers(buf, r, 2, &n), -EIO);
        replace_once(strstr(buf, "CPU#0") + 1, "CPU#0", "CPU#1");
        assert_int_equal(hvp_hmp_parse_registers(buf, r, 2, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(hvp_hmp_parse_registers(buf, r, 1, &n), -E2BIG);

        assert_int_equal(hvp_hmp_parse_registers("", r, 2, &n), -EIO);
        assert_int_equal(hvp_hmp_parse_registers("error: no CPU\r\n", r, 2, &n), -EIO);
        assert_int_equal(hvp_hmp_parse_registers("CPU#\r\n", r, 2, &n), -EIO);
        assert_int_equal(hvp_hmp_parse_registers("CPU#0\r\nRIP=11112222333344445\r\n", r, 2, &n), -EIO);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ram_q35),
                cmocka_unit_test(test_ram_numa_ivshmem),
                cmocka_unit_test(test_ram_above_4g),
                cmocka_unit_test(test_ram_inconsistent),
                cmocka_unit_test(test_ram_tree_problems),
                cmocka_unit_test(test_ram_flat_problems),
                cmocka_unit_test(test_gpa2hva),
                cmocka_unit_test(test_registers_samples),
                cmocka_unit_test(test_registers_real_mode),
                cmocka_unit_test(test_registers_broken),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}

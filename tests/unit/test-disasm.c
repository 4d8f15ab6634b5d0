/*
 * Instruction-level checks: boundaries on hand-picked x86-64 bytes and on real code
 * (tests/unit/data/reloc-calls.c compiled by gcc, boundaries from binutils' objdump,
 * an oracle independent of capstone), entry-site recognition, jmp rel32 encoding
 * (decoded back with capstone).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <capstone/capstone.h>
#include <cmocka.h>

#include <hvpatch/hvpatch.h>
#include <hvpatch/patch.h>

#define FN 0xffffffff81234560ull

static const uint8_t endbr[] = { 0xf3, 0x0f, 0x1e, 0xfa };
static const uint8_t nop5[] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };
static const uint8_t movabs[] = { 0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8 };  /* movabs rax, imm64 */

static size_t cat(uint8_t *out, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
        memcpy(out, a, alen);
        memcpy(out + alen, b, blen);
        return alen + blen;
}

static void expect_eilseq(const uint8_t *b, size_t len, const char *needle)
{
        int r = hvp_insn_check_range(b, len, FN);

        if (r != -EILSEQ || !strstr(hvp_last_error(), needle))
                fail_msg("got %d \"%s\", want -EILSEQ with \"%s\"", r, hvp_last_error(), needle);
}

static void test_hand_picked_ranges(void **state)
{
        uint8_t b[64];
        size_t n;

        assert_int_equal(hvp_insn_check_range(nop5, 5, FN), 0);
        for (size_t cut = 1; cut < 5; cut++)
                expect_eilseq(nop5, cut, "range splits an instruction at +0");
        assert_int_equal(hvp_insn_check_range(movabs, 10, FN), 0);
        expect_eilseq(movabs, 9, "splits an instruction at +0");
        expect_eilseq(movabs, 2, "splits an instruction at +0");

        n = cat(b, endbr, 4, nop5, 5);
        assert_int_equal(hvp_insn_check_range(b, n, FN), 0);
        expect_eilseq(b, 6, "splits an instruction at +4");
        expect_eilseq(b, 3, "splits an instruction at +0");     /* endbr64 itself */

        n = cat(b, nop5, 5, movabs, 10);
        assert_int_equal(hvp_insn_check_range(b, n, FN), 0);
        expect_eilseq(b, 11, "splits an instruction at +5");

        /* 0x06 (push es) does not exist in 64-bit mode */
        n = cat(b, nop5, 5, (const uint8_t[]){ 0x06, 0x90 }, 2);
        expect_eilseq(b, n, "undecodable byte at +5");

        assert_int_equal(hvp_insn_check_range(nop5, 0, FN), -EINVAL);
}

static void test_site_boundaries(void **state)
{
        uint8_t fn[64];
        size_t n = cat(fn, endbr, 4, nop5, 5);

        n += cat(fn + n, movabs, 10, nop5, 5);  /* endbr | nop5 | movabs | nop5: starts 0 4 9 19, end 24 */
        assert_int_equal(hvp_insn_check_site(fn, n, FN, 4, 5), 0);
        assert_int_equal(hvp_insn_check_site(fn, n, FN, 9, 10), 0);
        assert_int_equal(hvp_insn_check_site(fn, n, FN, 0, 24), 0);
        assert_int_equal(hvp_insn_check_site(fn, n, FN, 5, 4), -EILSEQ);
        assert_non_null(strstr(hvp_last_error(), "site starts inside the instruction at +4"));
        assert_int_equal(hvp_insn_check_site(fn, n, FN, 9, 5), -EILSEQ);
        assert_non_null(strstr(hvp_last_error(), "site ends inside the instruction at +9"));
        assert_int_equal(hvp_insn_check_site(fn, n, FN, 20, 10), -EINVAL);     /* past the bytes given */
}

/* --- real code: gcc output, boundaries from objdump --- */

static char tmpdir[] = "/tmp/hvp-test-disasm-XXXXXX";
static char objpath[600];
static uint8_t text[8192];
static size_t text_len;
static size_t starts[2048];
static size_t nr_starts;
static bool have_tools;

static int setup(void **state)
{
        const char *src = getenv("HVP_SOURCE_DIR");
        char cmd[2048], line[1024];
        FILE *p;

        if (system("gcc --version >/dev/null 2>&1") != 0 || system("objdump --version >/dev/null 2>&1") != 0)
                return 0;
        if (!mkdtemp(tmpdir))
                return -1;
        snprintf(objpath, sizeof(objpath), "%s/calls.o", tmpdir);
        snprintf(cmd, sizeof(cmd),
                 "gcc -c -O2 -mcmodel=kernel -fno-pic -mno-red-zone -ffreestanding -fno-asynchronous-unwind-tables "
                 "-mfunction-return=thunk-extern -mindirect-branch=thunk-extern -mharden-sls=all "
                 "-o %s %s/tests/unit/data/reloc-calls.c",
                 objpath, src ? src : ".");
        if (system(cmd) != 0)
                return -1;
        /* objdump (binutils) lists each instruction's offset and bytes, one line each */
        snprintf(cmd, sizeof(cmd), "objdump -d --insn-width=16 -j .text %s", objpath);
        p = popen(cmd, "r");
        if (!p)
                return -1;
        while (fgets(line, sizeof(line), p)) {
                unsigned off, byte;
                char *q;
                int used;

                if (sscanf(line, " %x:\t%n", &off, &used) != 1 || !strchr(line, '\t'))
                        continue;
                if (off != text_len)
                        continue;       /* not an instruction line of .text in order */
                starts[nr_starts++] = off;
                for (q = line + used; q[0] != ' ' && sscanf(q, "%2x", &byte) == 1 && q[2] == ' '; q += 3)
                        text[text_len++] = (uint8_t)byte;
        }
        pclose(p);
        have_tools = nr_starts > 10;
        return have_tools ? 0 : -1;
}

static int teardown(void **state)
{
        char cmd[700];

        if (have_tools) {
                snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
                return system(cmd) == 0 ? 0 : -1;
        }
        return 0;
}

static bool is_start(size_t off)
{
        for (size_t i = 0; i < nr_starts; i++)
                if (starts[i] == off)
                        return true;
        return off == text_len;
}

static void test_real_code_boundaries(void **state)
{
        size_t inside = 0;

        if (!have_tools)
                skip();
        /* every whole-instruction prefix and every single instruction passes */
        assert_int_equal(hvp_insn_check_range(text, text_len, FN), 0);
        for (size_t i = 0; i < nr_starts; i++) {
                size_t end = i + 1 < nr_starts ? starts[i + 1] : text_len;

                assert_int_equal(hvp_insn_check_range(text, end, FN), 0);
                assert_int_equal(hvp_insn_check_site(text, text_len, FN, starts[i], end - starts[i]), 0);
        }
        /* every offset inside an instruction is refused, as start and as end */
        for (size_t off = 1; off < text_len; off++) {
                if (is_start(off))
                        continue;
                inside++;
                assert_int_equal(hvp_insn_check_range(text, off, FN), -EILSEQ);
                assert_non_null(strstr(hvp_last_error(), "splits an instruction"));
                assert_int_equal(hvp_insn_check_site(text, text_len, FN, off, 1), -EILSEQ);
        }
        assert_true(inside > text_len / 2);
}

static void test_disasm_lines(void **state)
{
        struct hvp_insn *insns;
        char line[256];
        size_t n;

        if (!have_tools)
                skip();
        assert_int_equal(hvp_disasm(text, text_len, FN, SIZE_MAX, &insns, &n), 0);
        assert_int_equal(n, nr_starts);
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(insns[i].addr, FN + starts[i]);
                assert_true(insns[i].size > 0);
        }
        free(insns);

        uint8_t b[32];
        size_t len = cat(b, nop5, 5, (const uint8_t[]){ 0x06, 0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8 }, 11);
        assert_int_equal(hvp_disasm(b, len, FN, 10, &insns, &n), 0);
        assert_int_equal(n, 3);
        assert_string_equal(insns[0].mnemonic, "nop");
        assert_int_equal(insns[1].size, 0);
        assert_string_equal(insns[1].mnemonic, "(bad)");
        assert_int_equal(insns[2].addr, FN + 6);
        assert_string_equal(insns[2].mnemonic, "movabs");
        hvp_insn_format(&insns[0], line, sizeof(line));
        assert_non_null(strstr(line, "ffffffff81234560"));
        assert_non_null(strstr(line, "0f 1f 44 00 00"));
        assert_non_null(strstr(line, "nop"));
        hvp_insn_format(&insns[2], line, 20);   /* truncation keeps the NUL */
        assert_int_equal(strlen(line), 19);
        free(insns);
        assert_int_equal(hvp_disasm(b, len, FN, 1, &insns, &n), 0);
        assert_int_equal(n, 1);
        free(insns);
}

/* --- entry sites and jmp rel32 --- */

static void decode_jmp(uint64_t from, const uint8_t bytes[5], uint64_t *ret_target)
{
        csh h;
        cs_insn *in;

        assert_int_equal(cs_open(CS_ARCH_X86, CS_MODE_64, &h), CS_ERR_OK);
        cs_option(h, CS_OPT_DETAIL, CS_OPT_ON);
        assert_int_equal(cs_disasm(h, bytes, 5, from, 1, &in), 1);
        assert_string_equal(in->mnemonic, "jmp");
        assert_int_equal(in->size, 5);
        assert_int_equal(in->detail->x86.operands[0].type, X86_OP_IMM);
        *ret_target = (uint64_t)in->detail->x86.operands[0].imm;
        cs_free(in, 1);
        cs_close(&h);
}

static void test_jmp_encoding(void **state)
{
        static const uint64_t pairs[][2] = {
                { 0xffffffff81234564ull, 0xffffffffc0001000ull },       /* kernel text -> module area */
                { 0xffffffffc0001000ull, 0xffffffff81000000ull },       /* backwards */
                { 0xffffffff81000000ull, 0xffffffff81000005ull },       /* rel32 0 */
                { 0xffffffff81000000ull, 0xffffffff81000000ull },       /* to itself: rel32 -5 */
                { 0xfffffffffffffff0ull, 0x0000000000000100ull },       /* wraps around the top */
        };
        uint8_t b[5];
        uint64_t t;

        for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
                assert_int_equal(hvp_encode_jmp_rel32(pairs[i][0], pairs[i][1], b), 0);
                decode_jmp(pairs[i][0], b, &t);
                assert_int_equal(t, pairs[i][1]);
        }
        /* the reach of rel32, both ways */
        assert_int_equal(hvp_encode_jmp_rel32(FN, FN + 5 + INT32_MAX, b), 0);
        decode_jmp(FN, b, &t);
        assert_int_equal(t, FN + 5 + INT32_MAX);
        assert_int_equal(hvp_encode_jmp_rel32(FN, FN + 5 - 0x80000000ull, b), 0);
        assert_int_equal(hvp_encode_jmp_rel32(FN, FN + 6 + INT32_MAX, b), -ERANGE);
        assert_int_equal(hvp_encode_jmp_rel32(FN, FN + 4 - 0x80000000ull, b), -ERANGE);
        assert_int_equal(hvp_encode_jmp_rel32(0xffffffff81000000ull, 0xffff888000000000ull, b), -ERANGE);
}

static void test_entry_sites(void **state)
{
        struct hvp_entry_site site, untouched;
        uint64_t fentry = 0xffffffff81e01230ull;
        uint8_t b[32];
        size_t n;

        n = cat(b, endbr, 4, nop5, 5);
        b[n++] = 0x55;
        assert_int_equal(hvp_entry_site_find(b, n, FN, fentry, &site), 0);
        assert_int_equal(site.kind, HVP_ENTRY_NOP5);
        assert_true(site.endbr);
        assert_int_equal(site.offset, 4);
        assert_int_equal(site.addr, FN + 4);
        assert_memory_equal(site.old_bytes, nop5, 5);

        assert_int_equal(hvp_entry_site_find(nop5, 5, FN, 0, &site), 0);
        assert_false(site.endbr);
        assert_int_equal(site.offset, 0);
        assert_int_equal(site.addr, FN);

        /* call __fentry__ before ftrace converted it: the rel32 must reach __fentry__ */
        b[0] = 0xe8;
        assert_int_equal(hvp_encode_jmp_rel32(FN, fentry, b), 0);
        b[0] = 0xe8;
        assert_int_equal(hvp_entry_site_find(b, 5, FN, fentry, &site), 0);
        assert_int_equal(site.kind, HVP_ENTRY_FENTRY_CALL);
        assert_memory_equal(site.old_bytes, b, 5);
        memset(&untouched, 0x5a, sizeof(untouched));
        site = untouched;
        assert_int_equal(hvp_entry_site_find(b, 5, FN, fentry + 16, &site), -EBUSY);
        assert_non_null(strstr(hvp_last_error(), "ftrace is tracing"));
        assert_int_equal(hvp_entry_site_find(b, 5, FN, 0, &site), -EBUSY);
        assert_memory_equal(&site, &untouched, sizeof(site));

        /* a function without an ftrace site: push rbp; mov rbp, rsp */
        n = cat(b, (const uint8_t[]){ 0x55, 0x48, 0x89, 0xe5 }, 4, nop5, 5);
        assert_int_equal(hvp_entry_site_find(b, n, FN, fentry, &site), -ENOTSUP);
        assert_non_null(strstr(hvp_last_error(), "not an ftrace site: push rbp"));
        n = cat(b, endbr, 4, (const uint8_t[]){ 0x55, 0x48, 0x89, 0xe5, 0x90 }, 5);
        assert_int_equal(hvp_entry_site_find(b, n, FN, fentry, &site), -ENOTSUP);

        /* too few bytes */
        assert_int_equal(hvp_entry_site_find(endbr, 4, FN, fentry, &site), -EINVAL);
        assert_int_equal(hvp_entry_site_find(nop5, 4, FN, fentry, &site), -EINVAL);

        /* the redirect, end to end: the jmp written at the site lands on the new code */
        uint8_t jmp[5];
        uint64_t t;
        n = cat(b, endbr, 4, nop5, 5);
        assert_int_equal(hvp_entry_site_find(b, n, FN, fentry, &site), 0);
        assert_int_equal(hvp_encode_jmp_rel32(site.addr, 0xffffffffc0002040ull, jmp), 0);
        decode_jmp(site.addr, jmp, &t);
        assert_int_equal(t, 0xffffffffc0002040ull);
        memcpy(b + site.offset, jmp, 5);
        assert_int_equal(hvp_insn_check_range(b, n, FN), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_hand_picked_ranges),
                cmocka_unit_test(test_site_boundaries),
                cmocka_unit_test(test_real_code_boundaries),
                cmocka_unit_test(test_disasm_lines),
                cmocka_unit_test(test_jmp_encoding),
                cmocka_unit_test(test_entry_sites),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}

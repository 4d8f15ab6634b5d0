/*
 * Relocation of real patch objects: tests/unit/data/reloc-*.c are compiled at test
 * time with the system gcc (kernel code model and the Debian 6.1 kernel's thunk
 * options), relocated by hvp_reloc_object(), and the result is checked against
 * oracles hvpatch does not control: binutils' readelf for what each relocation names
 * (offset, type, symbol, addend, section bytes) and capstone for where the relocated
 * instructions go.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <capstone/capstone.h>
#include <cmocka.h>

#include "tests/unit/prereq.h"

#include <hvpatch/hvpatch.h>
#include <hvpatch/patch.h>

#include "common/file.h"

#define TARGET 0xffffffffc0001000ull
#define KFLAGS "-O2 -mcmodel=kernel -fno-pic -fno-stack-protector -mno-red-zone -ffreestanding -nostdlib " \
               "-mno-sse -mno-mmx -fno-asynchronous-unwind-tables"
#define THUNKS "-mfunction-return=thunk-extern -mindirect-branch=thunk-extern -mindirect-branch-register"

static char tmpdir[] = "/tmp/hvp-test-reloc-XXXXXX";
static bool have_tools;

/* The guest kernel as the test imagines it. */
static const struct {
        const char *name;
        uint64_t addr;
} ksyms[] = {
        { "printk", 0xffffffff81123450 },     { "seq_printf", 0xffffffff81345670 },
        { "seq_puts", 0xffffffff81345990 },   { "op_zero", 0xffffffff81400000 },
        { "op_one", 0xffffffff81400100 },     { "op_two", 0xffffffff81400200 },
        { "op_three", 0xffffffff81400300 },   { "op_four", 0xffffffff81400400 },
        { "op_five", 0xffffffff81400500 },    { "op_six", 0xffffffff81400600 },
        { "op_seven", 0xffffffff81400700 },   { "__x86_return_thunk", 0xffffffff82005e40 },
        { "__x86_indirect_thunk_rax", 0xffffffff82005a00 },
        { "jiffies", 0xffffffff82a05000 },
};

static unsigned resolver_calls;
static const char *resolver_hide;       /* a symbol to pretend is missing */

static int resolve(void *ctx, const char *name, uint64_t *ret)
{
        resolver_calls++;
        if (resolver_hide && strcmp(name, resolver_hide) == 0)
                return -ENOENT;
        for (size_t i = 0; i < sizeof(ksyms) / sizeof(ksyms[0]); i++)
                if (strcmp(ksyms[i].name, name) == 0) {
                        *ret = ksyms[i].addr;
                        return 0;
                }
        return -ENOENT;
}

static const char *ksym_at(uint64_t addr)
{
        for (size_t i = 0; i < sizeof(ksyms) / sizeof(ksyms[0]); i++)
                if (ksyms[i].addr == addr)
                        return ksyms[i].name;
        return NULL;
}

static char *path_of(const char *name)
{
        static char buf[8][512];
        static int k;

        k = (k + 1) % 8;
        snprintf(buf[k], sizeof(buf[k]), "%s/%s", tmpdir, name);
        return buf[k];
}

/* Compile tests/unit/data/SRC.c into TMP/OUT.o with flags. */
static void compile(const char *src, const char *out, const char *flags)
{
        const char *srcdir = getenv("HVP_SOURCE_DIR");
        char cmd[2048];

        snprintf(cmd, sizeof(cmd), "gcc -c %s -o %s %s/tests/unit/data/%s.c", flags, path_of(out),
                 srcdir ? srcdir : ".", src);
        if (system(cmd) != 0)
                fail_msg("compile failed: %s", cmd);
}

static uint8_t *slurp(const char *path, size_t *len)
{
        void *buf = NULL;

        assert_int_equal(hvp_read_file_bounded(path, 64u << 20, &buf, len), 0);
        return buf;
}

/* --- readelf as the oracle --- */

struct oracle_rel {
        uint64_t offset;
        char type[40];
        char sym[128];
        int64_t addend;
};

/* Relocations readelf lists for relocation section secname (".rela.text"). */
static size_t readelf_relocs(const char *obj, const char *secname, struct oracle_rel *out, size_t max)
{
        char cmd[1024], line[1024], hdr[256];
        bool in = false;
        size_t n = 0;
        FILE *p;

        snprintf(cmd, sizeof(cmd), "readelf -rW %s", obj);
        snprintf(hdr, sizeof(hdr), "Relocation section '%s' ", secname);
        p = popen(cmd, "r");
        assert_non_null(p);
        while (fgets(line, sizeof(line), p)) {
                unsigned long long off, info, val, add;
                char type[40], sym[128], sign;

                if (strncmp(line, "Relocation section", 18) == 0) {
                        in = strncmp(line, hdr, strlen(hdr)) == 0;
                        continue;
                }
                if (!in || n >= max)
                        continue;
                if (sscanf(line, "%llx %llx %39s %llx %127s %c %llx", &off, &info, type, &val, sym, &sign, &add) == 7) {
                        out[n].offset = off;
                        snprintf(out[n].type, sizeof(out[n].type), "%s", type);
                        snprintf(out[n].sym, sizeof(out[n].sym), "%s", sym);
                        out[n].addend = sign == '-' ? -(int64_t)add : (int64_t)add;
                        n++;
                }
        }
        pclose(p);
        return n;
}

/* The bytes of a section, from readelf's hex dump. */
static size_t readelf_section(const char *obj, const char *secname, uint8_t *out, size_t max)
{
        char cmd[1024], line[1024];
        size_t n = 0;
        FILE *p;

        snprintf(cmd, sizeof(cmd), "readelf -x %s %s", secname, obj);
        p = popen(cmd, "r");
        assert_non_null(p);
        while (fgets(line, sizeof(line), p)) {
                unsigned addr;
                char *q;

                if (sscanf(line, "  0x%8x ", &addr) != 1)
                        continue;
                q = line + 13;
                for (int g = 0; g < 4; g++, q += 9) {
                        for (int b = 0; b < 4; b++) {
                                unsigned v;

                                if (q[2 * b] == ' ' || q[2 * b] == '\n' || sscanf(q + 2 * b, "%2x", &v) != 1)
                                        goto next;
                                if (n < max)
                                        out[n++] = (uint8_t)v;
                        }
                }
next:;
        }
        pclose(p);
        return n;
}

/* A symbol's value, from readelf -s (0 if absent: the test then fails on it). */
static uint64_t readelf_symbol(const char *obj, const char *name)
{
        char cmd[1024], line[1024];
        uint64_t v = UINT64_MAX;
        FILE *p;

        snprintf(cmd, sizeof(cmd), "readelf -sW %s", obj);
        p = popen(cmd, "r");
        assert_non_null(p);
        while (fgets(line, sizeof(line), p)) {
                unsigned num;
                unsigned long long val, size;
                char type[32], bind[32], vis[32], ndx[32], sym[256];

                if (sscanf(line, " %u: %llx %llu %31s %31s %31s %31s %255s", &num, &val, &size, type, bind, vis, ndx,
                           sym) == 8 &&
                    strcmp(sym, name) == 0 && strcmp(type, "FUNC") == 0)
                        v = val;
        }
        pclose(p);
        return v;
}

/* --- capstone over the output --- */

struct decoded {
        cs_insn *insn;
        size_t n;
        csh h;
};

static void decode(const uint8_t *code, size_t len, uint64_t addr, struct decoded *d)
{
        assert_int_equal(cs_open(CS_ARCH_X86, CS_MODE_64, &d->h), CS_ERR_OK);
        cs_option(d->h, CS_OPT_DETAIL, CS_OPT_ON);
        d->n = cs_disasm(d->h, code, len, addr, 0, &d->insn);
        assert_true(d->n > 0);
}

static void decoded_free(struct decoded *d)
{
        cs_free(d->insn, d->n);
        cs_close(&d->h);
}

static const cs_insn *insn_covering(const struct decoded *d, uint64_t addr)
{
        for (size_t i = 0; i < d->n; i++)
                if (d->insn[i].address <= addr && addr < d->insn[i].address + d->insn[i].size)
                        return &d->insn[i];
        return NULL;
}

static bool insn_starts_at(const struct decoded *d, uint64_t addr)
{
        for (size_t i = 0; i < d->n; i++)
                if (d->insn[i].address == addr)
                        return true;
        return false;
}

/* The value an instruction's operand carries: an immediate or a memory displacement. */
static bool operand_value(const cs_insn *in, uint64_t *ret)
{
        const cs_x86 *x = &in->detail->x86;

        for (int i = 0; i < x->op_count; i++) {
                if (x->operands[i].type == X86_OP_IMM) {
                        *ret = (uint64_t)x->operands[i].imm;
                        return true;
                }
                if (x->operands[i].type == X86_OP_MEM && x->operands[i].mem.base == X86_REG_INVALID) {
                        *ret = (uint64_t)x->operands[i].mem.disp;
                        return true;
                }
        }
        return false;
}

/*
 * Check every relocation readelf lists in .rela.text of obj against the relocated
 * code (.text is placed first, at target): calls and jumps land on the resolver's
 * address for the symbol named, string references point at the same string inside
 * the placed bytes, __fentry__ calls became NOPs. Returns how many were checked.
 */
static size_t verify_section(const char *obj, const char *rela, const char *strsec, const uint8_t *code, size_t len,
                             uint64_t target)
{
        struct oracle_rel rels[64];
        uint8_t strs[4096];
        size_t nrel = readelf_relocs(obj, rela, rels, 64);
        size_t nstr = readelf_section(obj, strsec, strs, sizeof(strs));
        struct decoded d;
        size_t checked = 0;

        assert_true(nrel > 0);
        decode(code, len, target, &d);
        for (size_t i = 0; i < nrel; i++) {
                uint64_t field = target + rels[i].offset;
                const cs_insn *in = insn_covering(&d, field);
                uint64_t v;

                assert_non_null(in);
                if (strcmp(rels[i].sym, "__fentry__") == 0) {
                        static const uint8_t nop5[5] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };

                        assert_int_equal(in->address, field - 1);
                        assert_memory_equal(in->bytes, nop5, 5);
                        checked++;
                        continue;
                }
                if (strcmp(rels[i].type, "R_X86_64_PLT32") == 0 && rels[i].sym[0] != '.') {
                        /* call/jmp rel32: the decoded target is the kernel's symbol */
                        assert_true(strcmp(in->mnemonic, "call") == 0 || strcmp(in->mnemonic, "jmp") == 0);
                        assert_true(operand_value(in, &v));
                        assert_non_null(ksym_at(v));
                        assert_string_equal(ksym_at(v), rels[i].sym);
                        assert_int_equal(rels[i].addend, -4);
                        checked++;
                } else if (strcmp(rels[i].type, "R_X86_64_32S") == 0 && strcmp(rels[i].sym, strsec) == 0) {
                        /* the address of a string literal: the same string, in the placed bytes */
                        assert_true(operand_value(in, &v));
                        assert_true(v >= target && v < target + len);
                        assert_true((size_t)rels[i].addend < nstr);
                        assert_string_equal((const char *)code + (v - target), (const char *)strs + rels[i].addend);
                        checked++;
                }
        }
        decoded_free(&d);
        return checked;
}

static size_t verify_text(const char *obj, const uint8_t *code, size_t len, uint64_t target)
{
        return verify_section(obj, ".rela.text", ".rodata.str1.1", code, len, target);
}

static int setup(void **state)
{
        if (system("gcc --version >/dev/null 2>&1") != 0 || system("readelf --version >/dev/null 2>&1") != 0)
                return 0;
        if (!mkdtemp(tmpdir))
                return -1;
        have_tools = true;
        compile("reloc-calls", "calls.o", KFLAGS);
        compile("reloc-calls", "calls-pg.o", KFLAGS " -pg -mfentry -mrecord-mcount");
        compile("reloc-calls", "calls-small.o", "-O2 -mcmodel=small -fno-pic -fno-asynchronous-unwind-tables");
        compile("reloc-calls", "calls-fs.o", KFLAGS " -ffunction-sections -fdata-sections");
        compile("reloc-thunks", "thunks.o", KFLAGS " " THUNKS);
        compile("reloc-data", "data.o", KFLAGS);
        compile("reloc-data", "data-fs.o", KFLAGS " -ffunction-sections -fdata-sections");
        compile("reloc-bss", "bss.o", KFLAGS);
        compile("reloc-extern-data", "pic.o", "-O2 -fpic -fno-asynchronous-unwind-tables");
        return 0;
}

static int teardown(void **state)
{
        char cmd[600];

        if (have_tools) {
                snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
                if (system(cmd) != 0)
                        return -1;
        }
        return 0;
}

#define NEED_TOOLS()                                                          \
        do {                                                                  \
                hvp_test_require(have_tools, "gcc or readelf is not installed: the objects "   \
                                 "are compiled at test time and readelf is the oracle "         \
                                 "(apt-get install gcc binutils)");                             \
        } while (0)

static void relocate_ok(const char *obj, const char *fn, uint64_t target, uint8_t **code, size_t *len,
                        uint64_t *entry)
{
        size_t olen;
        uint8_t *o = slurp(path_of(obj), &olen);
        int r = hvp_reloc_object(o, olen, fn, target, resolve, NULL, code, len, entry);

        if (r < 0)
                fail_msg("relocating %s:%s: %d %s", obj, fn, r, hvp_last_error());
        free(o);
}

static void test_calls_rodata_jumptable(void **state)
{
        struct oracle_rel table[16];
        struct hvp_reloc_info info;
        uint8_t *code, *obj;
        size_t len, olen, ntab;
        uint64_t entry, jt = 0;
        struct decoded d;
        const char *o = path_of("calls.o");

        NEED_TOOLS();
        relocate_ok("calls.o", "patch_entry", TARGET, &code, &len, &entry);
        assert_int_equal(entry, TARGET + readelf_symbol(o, "patch_entry"));
        assert_true(verify_text(o, code, len, TARGET) >= 15);

        obj = slurp(o, &olen);
        assert_int_equal(hvp_reloc_measure(obj, olen, "patch_entry", &info), 0);
        assert_int_equal(info.size, len);
        assert_int_equal(info.entry_offset, entry - TARGET);
        assert_int_equal(info.nr_imports, 11);  /* printk, seq_puts, seq_printf, op_zero..op_seven */
        assert_true(info.nr_sections >= 4);     /* .text, .text.unlikely, .rodata.str1.1, .rodata */
        free(obj);

        /* The jump table: the 32S against .rodata is the table's address; each entry
         * (R_X86_64_64 against .text+X) must hold TARGET+X, an instruction start. */
        ntab = readelf_relocs(o, ".rela.rodata", table, 16);
        assert_int_equal(ntab, 8);
        decode(code, len, TARGET, &d);
        for (size_t i = 0; i < d.n; i++) {
                const cs_insn *in = &d.insn[i];
                const cs_x86 *x = &in->detail->x86;

                if (strcmp(in->mnemonic, "jmp") == 0 && x->op_count == 1 && x->operands[0].type == X86_OP_MEM &&
                    x->operands[0].mem.index != X86_REG_INVALID)
                        jt = (uint64_t)x->operands[0].mem.disp;
        }
        assert_true(jt >= TARGET && jt + 8 * ntab <= TARGET + len);
        for (size_t k = 0; k < ntab; k++) {
                uint64_t v;

                memcpy(&v, code + (jt - TARGET) + table[k].offset, 8);
                assert_string_equal(table[k].sym, ".text");
                assert_int_equal(v, TARGET + (uint64_t)table[k].addend);
                assert_true(insn_starts_at(&d, v));
        }
        /* The cold part (.text.unlikely, reached by a PC32 jmp) is placed too, and jumps back
         * into .text at an instruction boundary. */
        struct oracle_rel rels[64];
        size_t nrel = readelf_relocs(o, ".rela.text", rels, 64), cold = 0;

        for (size_t i = 0; i < nrel; i++) {
                const cs_insn *in, *back;
                uint64_t v, w;

                if (strcmp(rels[i].sym, ".text.unlikely") != 0)
                        continue;
                in = insn_covering(&d, TARGET + rels[i].offset);
                assert_non_null(in);
                assert_true(operand_value(in, &v));
                assert_true(v >= TARGET && v < TARGET + len && insn_starts_at(&d, v));
                back = insn_covering(&d, v);
                for (int k = 0; k < 4 && strcmp(back->mnemonic, "jmp") != 0; k++)
                        back = insn_covering(&d, back->address + back->size);
                assert_string_equal(back->mnemonic, "jmp");
                assert_true(operand_value(back, &w));
                assert_true(w >= TARGET && w < v && insn_starts_at(&d, w));
                cold++;
        }
        assert_int_equal(cold, 1);
        decoded_free(&d);
        free(code);
}

static void test_thunks(void **state)
{
        uint8_t *code;
        size_t len;
        uint64_t entry;
        struct decoded d;
        bool ret_thunk = false, ind_thunk = false;

        NEED_TOOLS();
        relocate_ok("thunks.o", "call_through", TARGET, &code, &len, &entry);
        assert_int_equal(verify_text(path_of("thunks.o"), code, len, TARGET), 4);
        decode(code, len, TARGET, &d);
        for (size_t i = 0; i < d.n; i++) {
                uint64_t v;
                const char *s;

                assert_string_not_equal(d.insn[i].mnemonic, "ret");     /* rethunk: no plain ret */
                if (!operand_value(&d.insn[i], &v) || !(s = ksym_at(v)))
                        continue;
                if (strcmp(s, "__x86_return_thunk") == 0 && strcmp(d.insn[i].mnemonic, "jmp") == 0)
                        ret_thunk = true;
                if (strcmp(s, "__x86_indirect_thunk_rax") == 0 && strcmp(d.insn[i].mnemonic, "call") == 0)
                        ind_thunk = true;
        }
        assert_true(ret_thunk);
        assert_true(ind_thunk);
        decoded_free(&d);
        free(code);
}

/* The guest runs without a return thunk: each `jmp __x86_return_thunk` becomes ret + int3 padding. */
static int resolve_ret_inline(void *ctx, const char *name, uint64_t *ret)
{
        if (strcmp(name, "__x86_return_thunk") == 0) {
                *ret = HVP_RELOC_RET_INLINE;
                return 0;
        }
        return resolve(ctx, name, ret);
}

static void test_return_thunk_inlined(void **state)
{
        uint8_t *code, *ref;
        size_t olen, len, ref_len, rets = 0;
        uint64_t entry, ref_entry;
        uint8_t *o;
        struct decoded d;

        (void)state;
        NEED_TOOLS();
        o = slurp(path_of("thunks.o"), &olen);
        assert_int_equal(hvp_reloc_object(o, olen, "call_through", TARGET, resolve_ret_inline, NULL, &code, &len,
                                          &entry), 0);
        assert_int_equal(hvp_reloc_object(o, olen, "call_through", TARGET, resolve, NULL, &ref, &ref_len, &ref_entry),
                         0);
        assert_int_equal(len, ref_len);
        decode(code, len, TARGET, &d);
        for (size_t i = 0; i < d.n; i++) {
                uint64_t v;
                const char *s;

                if (strcmp(d.insn[i].mnemonic, "ret") == 0) {
                        rets++;
                        /* where the thunk jump was, with int3 padding after it */
                        assert_int_equal(ref[d.insn[i].address - TARGET], 0xe9);
                        assert_memory_equal(code + (d.insn[i].address - TARGET) + 1, "\xcc\xcc\xcc\xcc", 4);
                }
                if (operand_value(&d.insn[i], &v) && (s = ksym_at(v)))
                        assert_string_not_equal(s, "__x86_return_thunk");
        }
        assert_true(rets > 0);
        decoded_free(&d);
        free(code);
        free(ref);
        free(o);
}

static void test_fentry_nopped(void **state)
{
        struct oracle_rel rels[64];
        size_t n, fentries = 0;
        uint8_t *code;
        size_t len;
        uint64_t entry;
        const char *o = path_of("calls-pg.o");

        NEED_TOOLS();
        n = readelf_relocs(o, ".rela.text", rels, 64);
        for (size_t i = 0; i < n; i++)
                fentries += strcmp(rels[i].sym, "__fentry__") == 0;
        assert_true(fentries >= 2);
        relocate_ok("calls-pg.o", "patch_entry", TARGET, &code, &len, &entry);
        assert_true(verify_text(o, code, len, TARGET) >= 15 + fentries);
        free(code);
}

static void test_function_sections(void **state)
{
        uint8_t *code;
        size_t len;
        uint64_t entry;

        NEED_TOOLS();
        /* With -ffunction-sections the function is not at offset 0 of a .text; the
         * entry must still be where the symbol says, and helper is placed too. */
        relocate_ok("calls-fs.o", "patch_entry", TARGET, &code, &len, &entry);
        assert_true(entry >= TARGET && entry < TARGET + len);
        /* the function's first bytes are the object's, relocation-free part: compare */
        uint8_t sec[4096];
        size_t n = readelf_section(path_of("calls-fs.o"), ".text.patch_entry", sec, sizeof(sec));
        assert_true(n > 8 && entry - TARGET + n <= len);
        assert_memory_equal(code + (entry - TARGET), sec, 4);
        free(code);
}

static void expect_fail(const char *obj, const char *fn, uint64_t target, int err, const char *needle)
{
        uint8_t *o, *code = (uint8_t *)0x1;
        size_t olen, len = 77;
        uint64_t entry = 99;
        int r;

        o = slurp(path_of(obj), &olen);
        r = hvp_reloc_object(o, olen, fn, target, resolve, NULL, &code, &len, &entry);
        if (r != err || !strstr(hvp_last_error(), needle))
                fail_msg("%s:%s: got %d \"%s\", want %d with \"%s\"", obj, fn, r, hvp_last_error(), err, needle);
        /* outputs untouched on failure */
        assert_ptr_equal(code, (uint8_t *)0x1);
        assert_int_equal(len, 77);
        assert_int_equal(entry, 99);
        free(o);
}

static void test_refusals(void **state)
{
        NEED_TOOLS();
        expect_fail("data.o", "uses_data", TARGET, -ENOTSUP,
                    "writable data in a patch object is not supported: section .data");
        /* in one .text with uses_data, no_data needs .data too (section granularity) */
        expect_fail("data.o", "no_data", TARGET, -ENOTSUP, "section .data");
        expect_fail("data-fs.o", "uses_data", TARGET, -ENOTSUP, "section .data.hvp_counter");
        expect_fail("bss.o", "uses_bss", TARGET, -ENOTSUP, "writable data in a patch object is not supported: section .bss");
        expect_fail("pic.o", "read_jiffies", TARGET, -ENOTSUP, "R_X86_64_REX_GOTPCRELX");
        expect_fail("calls.o", "no_such_function", TARGET, -ENOENT, "no_such_function");
        expect_fail("calls.o", "patch_entry", TARGET + 4, -EINVAL, "not aligned");
        /* small code model: 32-bit absolute addresses cannot reach a kernel address */
        expect_fail("calls-small.o", "patch_entry", TARGET, -ERANGE, "R_X86_64_32 ");
        /* placed in the direct map, calls to kernel text are out of rel32 reach */
        expect_fail("calls.o", "patch_entry", 0xffff888000100000ull, -ERANGE, "does not fit");
        resolver_hide = "op_five";
        expect_fail("calls.o", "patch_entry", TARGET, -ENOENT, "undefined symbol op_five not in the guest kernel");
        resolver_hide = NULL;
}

static void test_function_sections_data_ok(void **state)
{
        uint8_t *code;
        size_t len;
        uint64_t entry;

        NEED_TOOLS();
        /* no_data alone in .text.no_data does not reach .data.hvp_counter */
        relocate_ok("data-fs.o", "no_data", TARGET, &code, &len, &entry);
        assert_int_equal(verify_section(path_of("data-fs.o"), ".rela.text.no_data", ".rodata.no_data.str1.1", code,
                                        len, TARGET),
                         2);
        free(code);
}

static int collect_import(void *ctx, const char *name)
{
        char *list = ctx;

        strcat(list, name);
        strcat(list, ",");
        return 0;
}

static void test_imports(void **state)
{
        char list[1024] = "";
        struct oracle_rel rels[64];
        uint8_t *o;
        size_t olen, n;

        NEED_TOOLS();
        o = slurp(path_of("calls.o"), &olen);
        assert_int_equal(hvp_reloc_imports(o, olen, "patch_entry", collect_import, list), 0);
        /* every undefined symbol readelf names in .rela.text is listed once */
        n = readelf_relocs(path_of("calls.o"), ".rela.text", rels, 64);
        for (size_t i = 0; i < n; i++) {
                char needle[140];

                if (rels[i].sym[0] == '.')
                        continue;
                snprintf(needle, sizeof(needle), "%s,", rels[i].sym);
                assert_non_null(strstr(list, needle));
                assert_null(strstr(strstr(list, needle) + 1, needle));
        }
        free(o);
}

static void test_truncations(void **state)
{
        uint8_t *o, *code;
        size_t olen, len;
        uint64_t entry;

        NEED_TOOLS();
        o = slurp(path_of("calls.o"), &olen);
        /* Every strict prefix is refused, never crashes (ASan builds check the reads). */
        for (size_t cut = 0; cut < olen; cut++) {
                uint8_t *p = malloc(cut ? cut : 1);

                memcpy(p, o, cut);
                assert_true(hvp_reloc_object(p, cut, "patch_entry", TARGET, resolve, NULL, &code, &len, &entry) < 0);
                free(p);
        }
        free(o);
}

static void test_corruptions(void **state)
{
        uint8_t *o, *code;
        size_t olen, len;
        uint64_t entry;
        unsigned ok = 0;

        NEED_TOOLS();
        o = slurp(path_of("calls.o"), &olen);
        /* Each byte set to 0xff in turn: errors or a result, in bounds either way. */
        for (size_t i = 0; i < olen; i++) {
                uint8_t saved = o[i];

                o[i] = 0xff;
                if (hvp_reloc_object(o, olen, "patch_entry", TARGET, resolve, NULL, &code, &len, &entry) == 0) {
                        assert_true(entry >= TARGET && entry < TARGET + len);
                        free(code);
                        ok++;
                }
                o[i] = saved;
        }
        assert_true(ok > 0 && ok < olen);
        free(o);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_calls_rodata_jumptable),
                cmocka_unit_test(test_thunks),
                cmocka_unit_test(test_return_thunk_inlined),
                cmocka_unit_test(test_fentry_nopped),
                cmocka_unit_test(test_function_sections),
                cmocka_unit_test(test_function_sections_data_ok),
                cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_imports),
                cmocka_unit_test(test_truncations),
                cmocka_unit_test(test_corruptions),
        };

        return hvp_test_exit(cmocka_run_group_tests(tests, setup, teardown));
}

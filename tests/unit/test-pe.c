/*
 * PE32+ parser and Windows kernel discovery.
 *
 * Real images: wine's x86_64 ntoskrnl.exe from Debian's libwine (HVP_PE_DIR, default the
 * folder images/fetch-pe-fixtures.sh fills) and Debian's EFI-stub vmlinuz (HVP_KERNEL_DIR,
 * default the newest kernel images/fetch-kernel.sh left): found as test-kallsyms finds
 * its kernel (fixture-dir.h); a missing one is a failure. The expected header values come
 * from tools hvpatch does not control: a few lines of python3 reading the headers, and binutils' objdump -p.
 *
 * Synthetic: an address space with the real ntoskrnl.exe loaded at a kernel address
 * and an IDT pointing into it; a PE32+ image with a CodeView record built here; corrupt
 * headers.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <hvpatch/hvpatch.h>
#include <hvpatch/paging.h>
#include <hvpatch/windows.h>
#include <json-c/json.h>

#include "core-builder.h"
#include "fixture-dir.h"

#include "common/util.h"

#define KIB 1024ull
#define MIB (1024ull * KIB)

/* ------------------------------------------------------------- fixtures -- */

struct file {
        uint8_t *data;
        size_t len;
        char path[4096];
};

/* A fixture file: env names its folder, else the fetch script's default one (fixture-dir.h). */
static void load_file(const char *env, const char *name, struct file *f)
{
        bool pe = strcmp(env, "HVP_PE_DIR") == 0;
        char dir[4096];
        FILE *fp;
        long n;

        if (!(pe ? hvp_fixture_pe_dir(dir, sizeof(dir)) : hvp_fixture_kernel_dir(dir, sizeof(dir))))
                fail_msg("no %s: set %s or run images/%s, which fills %s/%s", pe ? "PE fixtures" : "Debian kernel",
                         env, pe ? "fetch-pe-fixtures.sh" : "fetch-kernel.sh", hvp_fixture_root(),
                         pe ? "pe-fixtures/" : "kernel-<version>/");
        if (snprintf(f->path, sizeof(f->path), "%s/%s", dir, name) >= (int)sizeof(f->path))
                fail_msg("%s/%s: path too long", dir, name);
        fp = fopen(f->path, "rb");
        if (!fp)
                fail_msg("%s: missing (%s): run the fetch script", f->path, strerror(errno));
        assert_int_equal(fseek(fp, 0, SEEK_END), 0);
        n = ftell(fp);
        assert_true(n > 0);
        rewind(fp);
        f->len = (size_t)n;
        f->data = malloc(f->len);
        assert_non_null(f->data);
        assert_int_equal(fread(f->data, 1, f->len, fp), f->len);
        fclose(fp);
}

/* The oracle: machine, TimeDateStamp, SizeOfImage, subsystem, debug directory size. */
struct oracle {
        unsigned machine, timestamp, size_of_image, subsystem, debug_size;
        char export_name[128];
};

static const char oracle_py[] =
        "import struct,sys\n"
        "d=open(sys.argv[1],'rb').read()\n"
        "o=struct.unpack_from('<I',d,0x3c)[0]\n"
        "assert d[o:o+4]==b'PE\\0\\0'\n"
        "m,ns,ts,_,_,osz,_=struct.unpack_from('<HHIIIHH',d,o+4)\n"
        "h=o+24\n"
        "soi=struct.unpack_from('<I',d,h+56)[0]\n"
        "ss=struct.unpack_from('<H',d,h+68)[0]\n"
        "nd=struct.unpack_from('<I',d,h+108)[0]\n"
        "dbg=struct.unpack_from('<I',d,h+112+8*6+4)[0] if nd>6 else 0\n"
        "print(m,ts,soi,ss,dbg)\n";

static void read_oracle(const char *path, struct oracle *o)
{
        char cmd[8192], line[512];
        FILE *p;

        memset(o, 0, sizeof(*o));
        snprintf(cmd, sizeof(cmd), "python3 -c \"$HVP_ORACLE_PY\" '%s'", path);
        setenv("HVP_ORACLE_PY", oracle_py, 1);
        p = popen(cmd, "r");
        assert_non_null(p);
        if (!fgets(line, sizeof(line), p) ||
            sscanf(line, "%u %u %u %u %u", &o->machine, &o->timestamp, &o->size_of_image, &o->subsystem,
                   &o->debug_size) != 5)
                fail_msg("python3 oracle failed on %s (is python3 installed?)", path);
        assert_int_equal(pclose(p), 0);

        /* objdump's view: SizeOfImage and Subsystem must agree; the export table's DLL name. */
        snprintf(cmd, sizeof(cmd), "objdump -p '%s' 2>/dev/null", path);
        p = popen(cmd, "r");
        assert_non_null(p);
        bool saw_size = false, saw_subsystem = false;
        while (fgets(line, sizeof(line), p)) {
                unsigned v;
                char name[128];

                if (sscanf(line, "SizeOfImage %x", &v) == 1) {
                        assert_int_equal(v, o->size_of_image);
                        saw_size = true;
                } else if (sscanf(line, "Subsystem %x", &v) == 1) {
                        assert_int_equal(v, o->subsystem);
                        saw_subsystem = true;
                } else if (sscanf(line, "Name %*x %127s", name) == 1 && !o->export_name[0]) {
                        snprintf(o->export_name, sizeof(o->export_name), "%s", name);
                }
        }
        pclose(p);
        if (!saw_size || !saw_subsystem)
                fail_msg("objdump -p %s gave no SizeOfImage/Subsystem (is binutils installed?)", path);
}

static void assert_error_contains(const char *needle)
{
        if (!strstr(hvp_last_error(), needle))
                fail_msg("error \"%s\" does not contain \"%s\"", hvp_last_error(), needle);
}

/* HVP_PE_WRITE_SEEDS=DIR: write the fuzz target's seeds (layout byte + image prefix). */
static void write_seed(const char *name, bool mapped, const uint8_t *data, size_t len)
{
        const char *dir = getenv("HVP_PE_WRITE_SEEDS");
        char path[4096];
        FILE *fp;

        if (!dir)
                return;
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        fp = fopen(path, "wb");
        assert_non_null(fp);
        fputc(mapped ? 1 : 0, fp);
        assert_int_equal(fwrite(data, 1, len, fp), len);
        assert_int_equal(fclose(fp), 0);
}

/* ------------------------------------------------------------ real files -- */

static void test_wine_ntoskrnl_file(void **state)
{
        struct file f;
        struct oracle o;
        struct hvp_pe_info pe;
        char id[HVP_PE_IDENTITY_MAX], want[64], why[256];

        (void)state;
        load_file("HVP_PE_DIR", "ntoskrnl.exe", &f);
        read_oracle(f.path, &o);
        assert_int_equal(hvp_pe_parse(f.data, f.len, HVP_PE_LAYOUT_FILE, &pe), 0);
        assert_int_equal(pe.machine, o.machine);
        assert_int_equal(pe.machine, HVP_PE_MACHINE_AMD64);
        assert_int_equal(pe.timestamp, o.timestamp);
        assert_int_equal(pe.size_of_image, o.size_of_image);
        assert_int_equal(pe.subsystem, o.subsystem);
        assert_string_equal(pe.export_name, o.export_name);
        assert_string_equal(pe.export_name, "ntoskrnl.exe");
        /* mingw wrote no debug directory: the identity is TimeDateStamp + SizeOfImage */
        assert_int_equal(pe.has_codeview, o.debug_size != 0);
        hvp_pe_identity(&pe, id);
        snprintf(want, sizeof(want), "%08x%x", o.timestamp, o.size_of_image);
        if (!pe.has_codeview)
                assert_string_equal(id, want);
        /* wine's kernel is a user-mode DLL (console subsystem), not a native image */
        assert_int_equal(o.subsystem, HVP_PE_SUBSYSTEM_WINDOWS_CUI);
        assert_false(hvp_pe_is_windows_kernel(&pe, why, sizeof(why)));
        assert_non_null(strstr(why, "subsystem 3"));
        /* with the subsystem a real ntoskrnl has, the export name identifies it */
        pe.subsystem = HVP_PE_SUBSYSTEM_NATIVE;
        assert_true(hvp_pe_is_windows_kernel(&pe, NULL, 0));
        write_seed("wine-ntoskrnl-headers", false, f.data, 4096);
        free(f.data);
}

static void test_linux_efi_stub_is_not_windows(void **state)
{
        struct file f;
        struct oracle o;
        struct hvp_pe_info pe;
        char why[256];

        (void)state;
        load_file("HVP_KERNEL_DIR", "vmlinuz", &f);
        read_oracle(f.path, &o);
        assert_int_equal(hvp_pe_parse(f.data, f.len, HVP_PE_LAYOUT_FILE, &pe), 0);
        assert_int_equal(pe.machine, o.machine);
        assert_int_equal(pe.machine, HVP_PE_MACHINE_AMD64);
        assert_int_equal(pe.timestamp, o.timestamp);
        assert_int_equal(pe.size_of_image, o.size_of_image);
        assert_int_equal(pe.subsystem, o.subsystem);
        assert_int_equal(pe.subsystem, HVP_PE_SUBSYSTEM_EFI_APPLICATION);
        assert_false(hvp_pe_is_windows_kernel(&pe, why, sizeof(why)));
        assert_non_null(strstr(why, "subsystem 10"));
        /* even if it claimed to be native, nothing names it ntoskrnl */
        pe.subsystem = HVP_PE_SUBSYSTEM_NATIVE;
        assert_false(hvp_pe_is_windows_kernel(&pe, why, sizeof(why)));
        write_seed("vmlinuz-headers", false, f.data, 1024);
        free(f.data);
}

/* --------------------------------------------- a PE32+ image built here -- */

static void put16(uint8_t *p, uint16_t v) { hvp_put_le16(p, v); }
static void put32(uint8_t *p, uint32_t v) { hvp_put_le32(p, v); }
static void put64(uint8_t *p, uint64_t v) { hvp_put_le64(p, v); }

#define B_LFANEW 0x80
#define B_OPT (B_LFANEW + 24)
#define B_SIZE 0x4000

/*
 * A mapped PE32+ image (layout MAPPED: offset == RVA): one section, an export directory
 * naming export_name, a debug directory with one CodeView entry: GUID
 * {3844DBB9-2017-4967-BE7A-A4A2C20430FA}, age 0x1f, PDB pdb.
 */
static void build_image(uint8_t *img, const char *export_name, const char *pdb)
{
        static const uint8_t guid[16] = { 0xb9, 0xdb, 0x44, 0x38, 0x17, 0x20, 0x67, 0x49,
                                          0xbe, 0x7a, 0xa4, 0xa2, 0xc2, 0x04, 0x30, 0xfa };
        uint8_t *opt = img + B_OPT, *sec = opt + 240;

        memset(img, 0, B_SIZE);
        img[0] = 'M';
        img[1] = 'Z';
        put32(img + 0x3c, B_LFANEW);
        memcpy(img + B_LFANEW, "PE\0\0", 4);
        put16(img + B_LFANEW + 4, HVP_PE_MACHINE_AMD64);
        put16(img + B_LFANEW + 6, 1);                   /* sections */
        put32(img + B_LFANEW + 8, 0x5a5a1234);          /* TimeDateStamp */
        put16(img + B_LFANEW + 20, 240);                /* SizeOfOptionalHeader */
        put16(img + B_LFANEW + 22, 0x22);
        put16(opt, 0x20b);
        put32(opt + 16, 0x1000);                        /* entry */
        put64(opt + 24, 0x140000000ull);
        put32(opt + 56, B_SIZE);                        /* SizeOfImage */
        put32(opt + 60, 0x400);                         /* SizeOfHeaders */
        put16(opt + 68, HVP_PE_SUBSYSTEM_NATIVE);
        put32(opt + 108, 16);
        put32(opt + 112 + 0 * 8, 0x1000);               /* export directory */
        put32(opt + 112 + 0 * 8 + 4, 40);
        put32(opt + 112 + 6 * 8, 0x1100);               /* debug directory: one entry */
        put32(opt + 112 + 6 * 8 + 4, 28);
        memcpy(sec, ".rdata\0\0", 8);
        put32(sec + 8, 0x3000);
        put32(sec + 12, 0x1000);
        put32(sec + 16, 0x3000);
        put32(sec + 20, 0x1000);
        put32(img + 0x1000 + 12, 0x1080);               /* export Name RVA */
        strcpy((char *)img + 0x1080, export_name);
        put32(img + 0x1100 + 12, 2);                    /* IMAGE_DEBUG_TYPE_CODEVIEW */
        put32(img + 0x1100 + 16, 24 + (uint32_t)strlen(pdb) + 1);
        put32(img + 0x1100 + 20, 0x1200);
        put32(img + 0x1100 + 24, 0x1200);
        memcpy(img + 0x1200, "RSDS", 4);
        memcpy(img + 0x1204, guid, 16);
        put32(img + 0x1214, 0x1f);
        strcpy((char *)img + 0x1218, pdb);
}

static void test_codeview_identity(void **state)
{
        uint8_t *img = malloc(B_SIZE);
        struct hvp_pe_info pe;
        char id[HVP_PE_IDENTITY_MAX];

        (void)state;
        assert_non_null(img);
        build_image(img, "notakernel.sys", "D:\\build\\ntkrnlmp.pdb");
        assert_int_equal(hvp_pe_parse(img, B_SIZE, HVP_PE_LAYOUT_MAPPED, &pe), 0);
        assert_true(pe.has_codeview);
        assert_int_equal(pe.pdb_age, 0x1f);
        assert_string_equal(pe.pdb_name, "D:\\build\\ntkrnlmp.pdb");
        assert_string_equal(pe.export_name, "notakernel.sys");
        hvp_pe_identity(&pe, id);
        /* the symbol store's key: GUID text without dashes, then the age */
        assert_string_equal(id, "3844dbb920174967be7aa4a2c20430fa1f");
        assert_true(hvp_pe_is_windows_kernel(&pe, NULL, 0));    /* by its PDB name */
        write_seed("mapped-codeview", true, img, 0x1240);

        build_image(img, "hal.dll", "hal.pdb");
        assert_int_equal(hvp_pe_parse(img, B_SIZE, HVP_PE_LAYOUT_MAPPED, &pe), 0);
        assert_false(hvp_pe_is_windows_kernel(&pe, NULL, 0));

        /* a PDB name without its NUL inside the record: no CodeView, still parses */
        build_image(img, "ntoskrnl.exe", "x.pdb");
        put32(img + 0x1100 + 16, 24 + 5);
        assert_int_equal(hvp_pe_parse(img, B_SIZE, HVP_PE_LAYOUT_MAPPED, &pe), 0);
        assert_false(pe.has_codeview);
        assert_true(hvp_pe_is_windows_kernel(&pe, NULL, 0));    /* by its export name */

        /* an absurd debug directory: the optional part is dropped, not trusted */
        build_image(img, "ntoskrnl.exe", "x.pdb");
        put32(img + B_OPT + 112 + 6 * 8 + 4, 28 * 1000);
        assert_int_equal(hvp_pe_parse(img, B_SIZE, HVP_PE_LAYOUT_MAPPED, &pe), 0);
        assert_false(pe.has_codeview);
        free(img);
}

/* -------------------------------------------------------- corrupt headers -- */

static void expect_parse_error(const uint8_t *img, size_t len, int err, const char *needle)
{
        struct hvp_pe_info pe;

        memset(&pe, 0xa5, sizeof(pe));
        assert_int_equal(hvp_pe_parse(img, len, HVP_PE_LAYOUT_MAPPED, &pe), err);
        assert_error_contains(needle);
        assert_int_equal(pe.machine, 0xa5a5);   /* untouched on failure */
}

static void test_corrupt_headers(void **state)
{
        uint8_t *img = malloc(B_SIZE), *copy = malloc(B_SIZE);
        struct hvp_pe_info pe;

        (void)state;
        assert_non_null(img);
        assert_non_null(copy);
        build_image(img, "ntoskrnl.exe", "ntkrnlmp.pdb");
        assert_int_equal(hvp_pe_parse(img, B_SIZE, HVP_PE_LAYOUT_MAPPED, &pe), 0);

        /* every truncation: an error or (past the headers) a parse, never a crash */
        for (size_t len = 0; len < B_SIZE; len += len < 0x400 ? 1 : 0x80) {
                int r = hvp_pe_parse(img, len, HVP_PE_LAYOUT_MAPPED, &pe);

                if (len < 0x80 + 24 + 240 + 40)
                        assert_true(r < 0);
        }
        expect_parse_error(img, 10, -EINVAL, "past the end");

#define MUTATE(stmt, err, needle)                                       \
        do {                                                            \
                memcpy(copy, img, B_SIZE);                              \
                stmt;                                                   \
                expect_parse_error(copy, B_SIZE, err, needle);          \
        } while (0)
        MUTATE(copy[0] = 'X', -EINVAL, "no MZ");
        MUTATE(put32(copy + 0x3c, 0xfffffff0), -EINVAL, "e_lfanew");
        MUTATE(put32(copy + 0x3c, 0x3ff0), -EINVAL, "past the end");
        MUTATE(copy[B_LFANEW] = 'Q', -EINVAL, "no PE signature");
        MUTATE(put16(copy + B_LFANEW + 6, 0xffff), -E2BIG, "sections");
        MUTATE(put16(copy + B_LFANEW + 20, 0xffff), -E2BIG, "headers end");
        MUTATE(put16(copy + B_LFANEW + 20, 0), -EINVAL, "no optional header");
        MUTATE(put16(copy + B_OPT, 0x10b), -ENOTSUP, "PE32");
        MUTATE(put16(copy + B_OPT, 0x777), -EINVAL, "magic");
        MUTATE(put32(copy + B_OPT + 56, 0xffffffff), -E2BIG, "SizeOfImage");
        MUTATE(put32(copy + B_OPT + 56, 0), -EINVAL, "SizeOfImage");
        MUTATE(put32(copy + B_OPT + 60, 0x10), -EINVAL, "SizeOfHeaders");
        MUTATE(put32(copy + B_OPT + 60, 0x100000), -EINVAL, "SizeOfHeaders");
        MUTATE((put16(copy + B_LFANEW + 20, 120), put32(copy + B_OPT + 108, 0xffffffff)), -EINVAL,
               "data directories");
        MUTATE(put32(copy + B_OPT + 240 + 12, 0xfffff000), -EINVAL, "section 0");
#undef MUTATE

        /* a hostile export name RVA, and one without a NUL before the end of the image */
        memcpy(copy, img, B_SIZE);
        put32(copy + 0x1000 + 12, 0xfffffff0);
        assert_int_equal(hvp_pe_parse(copy, B_SIZE, HVP_PE_LAYOUT_MAPPED, &pe), 0);
        assert_string_equal(pe.export_name, "");
        memcpy(copy, img, B_SIZE);
        put32(copy + 0x1000 + 12, B_SIZE - 4);
        memset(copy + B_SIZE - 4, 'A', 4);
        assert_int_equal(hvp_pe_parse(copy, B_SIZE, HVP_PE_LAYOUT_MAPPED, &pe), 0);
        assert_string_equal(pe.export_name, "");
        free(img);
        free(copy);
}

/* ------------------------------------- ntoskrnl.exe in a guest address space -- */

#define P  (1ull << 0)
#define RW (1ull << 1)
#define NX (1ull << 63)
/* Tables at 16 MiB, where the core builder's vCPU 0 has its CR3 (the CLI test writes a core). */
#define RAM_SIZE (17 * MIB)
#define ROOT_PA (16 * MIB)
#define TABLES_END (ROOT_PA + 256 * KIB)
#define IMAGE_PA (1 * MIB)
#define IDT_PA (TABLES_END - 4096)
#define KBASE 0xfffff80123400000ull
#define IDT_VA 0xfffffe0000000000ull        /* CB_IDT */

struct space {
        uint8_t *ram;
        uint64_t next_table, root;
        struct hvp_guest *g;
};

static uint64_t get64(const uint8_t *p)
{
        uint64_t v = 0;

        for (int i = 7; i >= 0; i--)
                v = v << 8 | p[i];
        return v;
}

static void map4k(struct space *s, uint64_t va, uint64_t pa, uint64_t flags)
{
        uint64_t table = s->root;

        for (int level = 4; level > 1; level--) {
                uint8_t *e = s->ram + table + ((va >> (12 + 9 * (level - 1))) & 511) * 8;

                if (!(get64(e) & P)) {
                        assert_true(s->next_table + 4096 <= IDT_PA);
                        put64(e, s->next_table | P | RW);
                        s->next_table += 4096;
                }
                table = get64(e) & 0x000ffffffffff000ull;
        }
        put64(s->ram + table + ((va >> 12) & 511) * 8, pa | flags);
}

/*
 * The file loaded as the Windows loader would: headers, then each section's raw data at
 * its RVA (read from the section table here, not by hvpatch), at KBASE.
 */
static uint32_t load_image(struct space *s, const struct file *f, uint16_t subsystem)
{
        uint32_t lfanew = (uint32_t)f->data[0x3c] | (uint32_t)f->data[0x3d] << 8;
        const uint8_t *coff = f->data + lfanew + 4, *opt = coff + 20;
        unsigned nsec = coff[2] | coff[3] << 8, optsz = coff[16] | coff[17] << 8;
        uint32_t soi = (uint32_t)get64(opt + 56), soh = (uint32_t)get64(opt + 60);
        uint8_t *img = s->ram + IMAGE_PA;

        assert_true(IMAGE_PA + soi <= RAM_SIZE);
        memcpy(img, f->data, soh);
        for (unsigned i = 0; i < nsec; i++) {
                const uint8_t *sec = opt + optsz + 40 * i;
                uint32_t va = (uint32_t)get64(sec + 12), raw = (uint32_t)get64(sec + 16),
                         ptr = (uint32_t)get64(sec + 20);

                if (raw && ptr)
                        memcpy(img + va, f->data + ptr, raw < soi - va ? raw : soi - va);
        }
        put16(img + lfanew + 4 + 20 + 68, subsystem);
        for (uint32_t off = 0; off < soi; off += 4096)
                map4k(s, KBASE + off, IMAGE_PA + off, P | RW);
        return soi;
}

static void space_open(struct space *s, const struct file *f, uint16_t subsystem, const uint64_t *handlers,
                       size_t n, uint32_t *ret_soi)
{
        struct hvp_mem_region region;
        struct hvp_vcpu_regs regs = { 0 };

        memset(s, 0, sizeof(*s));
        s->ram = calloc(1, RAM_SIZE);
        assert_non_null(s->ram);
        s->root = ROOT_PA;
        s->next_table = ROOT_PA + 0x1000;
        *ret_soi = load_image(s, f, subsystem);
        /* the IDT: 64-bit interrupt gates (type 0xe, present) to the handlers */
        for (size_t v = 0; v < n; v++) {
                uint8_t *e = s->ram + IDT_PA + 16 * v;

                put16(e, (uint16_t)handlers[v]);
                put16(e + 2, 0x10);
                e[5] = 0x8e;
                put16(e + 6, (uint16_t)(handlers[v] >> 16));
                put32(e + 8, (uint32_t)(handlers[v] >> 32));
        }
        map4k(s, IDT_VA, IDT_PA, P | NX);
        regs.cr0 = 0x80050033;
        regs.cr4 = 0x000406f8 & ~(1u << 12);    /* PAE, no LA57 */
        regs.efer = 0xd01;
        regs.cr3 = s->root;
        regs.idt_base = IDT_VA;
        regs.idt_limit = 0xfff;
        region = (struct hvp_mem_region){ 0, RAM_SIZE, s->ram };
        assert_int_equal(hvp_guest_open_memory(&region, 1, &regs, 1, false, &s->g), 0);
}

static void space_close(struct space *s)
{
        hvp_guest_free(s->g);
        free(s->ram);
}

static void test_find_in_guest_memory(void **state)
{
        struct file f;
        struct oracle o;
        struct space s;
        struct hvp_windows_kernel k;
        uint32_t soi;
        unsigned vcpu = 99;
        char want[64];
        uint64_t handlers[3];

        (void)state;
        load_file("HVP_PE_DIR", "ntoskrnl.exe", &f);
        read_oracle(f.path, &o);
        /* a user-mode handler (ignored), then two inside the image's text, 0x40000 up */
        handlers[0] = 0x401000;
        handlers[1] = KBASE + 0x22410;
        handlers[2] = KBASE + 0x22500;
        space_open(&s, &f, HVP_PE_SUBSYSTEM_NATIVE, handlers, 3, &soi);
        assert_int_equal(soi, o.size_of_image);
        /* a decoy: an "MZ" page inside the image, between the base and the handler */
        memcpy(s.ram + IMAGE_PA + 0x10000, "MZ", 2);
        /* and holes below the handler: unmapped pages are skipped */
        map4k(&s, KBASE + 0x5000, 0, 0);
        map4k(&s, KBASE + 0x6000, 0, 0);

        memset(&k, 0, sizeof(k));
        assert_int_equal(hvp_windows_attach(s.g, &k, &vcpu), 0);
        assert_int_equal(vcpu, 0);
        assert_int_equal(k.base, KBASE);
        assert_int_equal(k.size, o.size_of_image);
        assert_int_equal(k.pe.timestamp, o.timestamp);
        assert_string_equal(k.pe.export_name, o.export_name);
        snprintf(want, sizeof(want), "%08x%x", o.timestamp, o.size_of_image);
        assert_string_equal(k.identity, want);
        space_close(&s);

        /* wine's own subsystem (console): the image holding the handler is not a kernel */
        space_open(&s, &f, HVP_PE_SUBSYSTEM_WINDOWS_CUI, handlers, 3, &soi);
        assert_int_equal(hvp_windows_attach(s.g, &k, NULL), -ENOENT);
        assert_error_contains("subsystem 3");
        space_close(&s);

        /* handlers above the image: no image contains them */
        handlers[1] = KBASE + soi + 0x100000;
        handlers[2] = KBASE + soi + 0x100100;
        space_open(&s, &f, HVP_PE_SUBSYSTEM_NATIVE, handlers, 3, &soi);
        assert_int_equal(hvp_windows_attach(s.g, &k, NULL), -ENOENT);
        assert_error_contains("no PE image");
        space_close(&s);

        /* the header page unmapped: nothing found, no crash */
        handlers[1] = KBASE + 0x22410;
        space_open(&s, &f, HVP_PE_SUBSYSTEM_NATIVE, handlers, 2, &soi);
        map4k(&s, KBASE, 0, 0);
        assert_int_equal(hvp_windows_attach(s.g, &k, NULL), -ENOENT);
        space_close(&s);
        free(f.data);
}

/* A plain reader over a synthetic address space: the kmem variant, with bad hints. */
struct flat {
        uint64_t base;
        const uint8_t *data;
        size_t len;
};

static int flat_read(void *ctx, uint64_t va, void *buf, size_t len)
{
        const struct flat *fl = ctx;

        if (va < fl->base || va - fl->base > fl->len || len > fl->len - (va - fl->base))
                return -EFAULT;
        memcpy(buf, fl->data + (va - fl->base), len);
        return 0;
}

static void test_find_kmem(void **state)
{
        uint8_t *img = malloc(B_SIZE);
        struct flat fl = { 0xfffff80000000000ull, img, B_SIZE };
        struct hvp_kmem km = { .read = flat_read, .ctx = &fl };
        struct hvp_windows_kernel k;
        uint64_t hints[] = { 0, 0xffffffffffffffffull, fl.base + 0x1234, fl.base + 0x1235 };

        (void)state;
        assert_non_null(img);
        build_image(img, "hal.dll", "ntkrnlmp.pdb");
        assert_int_equal(hvp_windows_find_kmem(&km, hints, 4, &k), 0);
        assert_int_equal(k.base, fl.base);
        assert_string_equal(k.identity, "3844dbb920174967be7aa4a2c20430fa1f");
        assert_string_equal(k.pe.pdb_name, "ntkrnlmp.pdb");
        /* only absurd hints */
        assert_int_equal(hvp_windows_find_kmem(&km, hints, 2, &k), -ENOENT);
        assert_int_equal(hvp_windows_find_kmem(&km, NULL, 0, &k), -ENOENT);
        assert_int_equal(hvp_windows_find_kmem(&km, NULL, 1, &k), -EINVAL);
        free(img);
}

/* ------------------------------------------------------ hvpatch inspect -- */

static json_object *run_inspect(const char *core, int *ret_status)
{
        const char *hvpatch = getenv("HVPATCH");
        char cmd[8192], out[65536];
        size_t n;
        FILE *p;

        if (!hvpatch || access(hvpatch, X_OK) != 0)
                fail_msg("HVPATCH (%s) is not an executable: build the hvpatch target", hvpatch ? hvpatch : "unset");
        snprintf(cmd, sizeof(cmd), "'%s' --json inspect --core '%s'", hvpatch, core);
        p = popen(cmd, "r");
        assert_non_null(p);
        n = fread(out, 1, sizeof(out) - 1, p);
        out[n] = '\0';
        *ret_status = pclose(p);
        return json_tokener_parse(out);
}

static const char *jstr(json_object *o, const char *a, const char *b)
{
        json_object *v;

        if (!json_object_object_get_ex(o, a, &v) || (b && !json_object_object_get_ex(v, b, &v)))
                fail_msg("no %s%s%s in the JSON output", a, b ? "." : "", b ? b : "");
        return json_object_get_string(v);
}

static void write_core(const struct space *s, const char *path)
{
        struct cb_spec spec = { .nr_vcpus = 1, .prstatus = true, .qemu_size = 440, .nr_loads = 1 };
        struct cb_core c;
        FILE *fp;

        spec.load[0].gpa = 0;
        spec.load[0].size = RAM_SIZE;
        assert_true(cb_build(&spec, &c));
        memcpy(c.buf + c.load_off[0], s->ram, RAM_SIZE);
        fp = fopen(path, "wb");
        assert_non_null(fp);
        assert_int_equal(fwrite(c.buf, 1, c.size, fp), c.size);
        assert_int_equal(fclose(fp), 0);
        free(c.buf);
}

static void test_cli_inspect_windows_core(void **state)
{
        struct file f;
        struct oracle o;
        struct space s;
        uint32_t soi;
        uint64_t handlers[2] = { KBASE + 0x22410, KBASE + 0x22500 };
        char path[] = "/tmp/hvp-test-pe-XXXXXX", want[64], base[32];
        json_object *j;
        int fd, status;

        (void)state;
        load_file("HVP_PE_DIR", "ntoskrnl.exe", &f);
        read_oracle(f.path, &o);
        space_open(&s, &f, HVP_PE_SUBSYSTEM_NATIVE, handlers, 2, &soi);
        fd = mkstemp(path);
        assert_true(fd >= 0);
        close(fd);
        write_core(&s, path);

        j = run_inspect(path, &status);
        assert_non_null(j);
        assert_int_equal(status, 0);
        assert_string_equal(jstr(j, "os", NULL), "windows");
        snprintf(base, sizeof(base), "0x%llx", (unsigned long long)KBASE);
        assert_string_equal(jstr(j, "kernel", "base"), base);
        snprintf(want, sizeof(want), "%08x%x", o.timestamp, o.size_of_image);
        assert_string_equal(jstr(j, "kernel", "build_id"), want);
        assert_int_equal(json_object_get_int64(json_object_object_get(json_object_object_get(j, "kernel"),
                                                                       "timestamp")), o.timestamp);
        json_object_put(j);

        /* not Windows either (the header page gone): Linux's error, unchanged, exit 1 */
        map4k(&s, KBASE, 0, 0);
        write_core(&s, path);
        j = run_inspect(path, &status);
        assert_non_null(j);
        assert_int_equal(WEXITSTATUS(status), 1);
        assert_non_null(strstr(jstr(j, "error", NULL), "no Linux kernel found"));
        json_object_put(j);
        unlink(path);
        space_close(&s);
        free(f.data);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_wine_ntoskrnl_file),
                cmocka_unit_test(test_linux_efi_stub_is_not_windows),
                cmocka_unit_test(test_codeview_identity),
                cmocka_unit_test(test_corrupt_headers),
                cmocka_unit_test(test_find_in_guest_memory),
                cmocka_unit_test(test_find_kmem),
                cmocka_unit_test(test_cli_inspect_windows_core),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}

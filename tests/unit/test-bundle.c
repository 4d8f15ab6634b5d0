/*
 * Bundles: pack then open round trip (hashes checked against sha256sum, the layout
 * against docs/bundle.md read by hand here), manifests the schema or the rules
 * reject, every bound, truncation at every offset, corruption.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/unit/prereq.h"

#include <hvpatch/hvpatch.h>
#include <hvpatch/patch.h>

#include "common/file.h"

static char tmpdir[] = "/tmp/hvp-test-bundle-XXXXXX";
static uint8_t *object;         /* reloc-calls.c compiled, the payload of every test bundle */
static size_t object_len;
static bool have_gcc;

static const char manifest_head[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<patch xmlns=\"urn:hvpatch:manifest:1\" id=\"test-1\" series=\"test\" sequence=\"7\">\n"
        "  <description>round trip</description>\n"
        "  <target os=\"linux\">\n"
        "    <build-id>8f1e5c0a9b3d2e4f60718293a4b5c6d7e8f90123</build-id>\n"
        "    <banner>Linux version 6.1.0-test</banner>\n"
        "  </target>\n";

static char *path_of(const char *name)
{
        static char buf[4][600];
        static int k;

        k = (k + 1) % 4;
        snprintf(buf[k], sizeof(buf[k]), "%s/%s", tmpdir, name);
        return buf[k];
}

static uint8_t *slurp(const char *path, size_t *len)
{
        void *buf = NULL;

        assert_int_equal(hvp_read_file_bounded(path, 64u << 20, &buf, len), 0);
        return buf;
}

static void spit(const char *path, const void *data, size_t len)
{
        FILE *f = fopen(path, "wb");

        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, len, f), len);
        fclose(f);
}

/* The sha256 of a file as coreutils computes it, in hex. */
static void sha256sum(const char *path, char hex[65])
{
        char cmd[700];
        FILE *p;

        snprintf(cmd, sizeof(cmd), "sha256sum %s", path);
        p = popen(cmd, "r");
        assert_non_null(p);
        assert_int_equal(fscanf(p, "%64s", hex), 1);
        pclose(p);
}

static void hex(const uint8_t *b, size_t n, char *out)
{
        for (size_t i = 0; i < n; i++)
                sprintf(out + 2 * i, "%02x", b[i]);
}

static int setup(void **state)
{
        const char *src = getenv("HVP_SOURCE_DIR");
        char cmd[2048];

        if (!mkdtemp(tmpdir))
                return -1;
        if (system("gcc --version >/dev/null 2>&1") != 0)
                return 0;
        snprintf(cmd, sizeof(cmd),
                 "gcc -c -O2 -mcmodel=kernel -fno-pic -fno-stack-protector -mno-red-zone -ffreestanding "
                 "-fno-asynchronous-unwind-tables -o %s/calls.o %s/tests/unit/data/reloc-calls.c && "
                 "gcc -c -O2 -mcmodel=kernel -fno-pic -o %s/data.o %s/tests/unit/data/reloc-data.c",
                 tmpdir, src ? src : ".", tmpdir, src ? src : ".");
        if (system(cmd) != 0)
                return -1;
        object = slurp(path_of("calls.o"), &object_len);
        have_gcc = true;
        return 0;
}

static int teardown(void **state)
{
        char cmd[700];

        free(object);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
        return system(cmd) == 0 ? 0 : -1;
}

#define NEED_GCC()                                                            \
        do {                                                                  \
                hvp_test_require(have_gcc, "gcc is not installed: the patch objects are "      \
                                 "compiled at test time (apt-get install gcc)");                \
        } while (0)

static const char good_sites[] =
        "  <object name=\"calls.o\" file=\"calls.o\"/>\n"
        "  <sites>\n"
        "    <redirect symbol=\"version_proc_show\" object=\"calls.o\" function=\"patch_entry\"/>\n"
        "    <replace symbol=\"cmdline_proc_show\" offset=\"0x1b\" expected=\"be 0a 00 00 00\" new=\"be21000000\"/>\n"
        "  </sites>\n"
        "</patch>\n";

static char *manifest_with(const char *body)
{
        char *m;

        assert_true(asprintf(&m, "%s%s", manifest_head, body) > 0);
        return m;
}

/* A bundle holding xml as its manifest and calls.o, built with the container writer. */
static void build(const char *xml, uint8_t **buf, size_t *len)
{
        struct hvp_bundle_input in[2] = {
                { HVP_BUNDLE_MANIFEST, xml, strlen(xml) },
                { "calls.o", object, object_len },
        };

        assert_int_equal(hvp_bundle_write(in, 2, buf, len), 0);
}

static void test_pack_round_trip(void **state)
{
        struct hvp_bundle *b;
        struct hvp_reloc_info info;
        char *xml = manifest_with(good_sites), want[65], got[65];
        uint8_t *buf;
        size_t len;

        NEED_GCC();
        spit(path_of("manifest.xml"), xml, strlen(xml));
        assert_int_equal(hvp_bundle_pack(path_of("manifest.xml"), &buf, &len), 0);
        spit(path_of("test.hvp"), buf, len);
        assert_int_equal(hvp_bundle_open_file(path_of("test.hvp"), &b), 0);
        free(buf);

        /* the whole file and each entry: hashes as sha256sum computes them */
        sha256sum(path_of("test.hvp"), want);
        hex(b->sha256, 32, got);
        assert_string_equal(got, want);
        assert_int_equal(b->nr_entries, 2);
        assert_string_equal(b->entries[0].name, "manifest.xml");
        assert_int_equal(b->entries[0].size, strlen(xml));
        assert_memory_equal(b->entries[0].data, xml, strlen(xml));     /* verbatim */
        assert_string_equal(b->entries[1].name, "calls.o");
        sha256sum(path_of("calls.o"), want);
        hex(b->entries[1].sha256, 32, got);
        assert_string_equal(got, want);
        assert_int_equal(b->entries[1].size, object_len);
        assert_memory_equal(b->entries[1].data, object, object_len);

        const struct hvp_manifest *m = &b->manifest;
        assert_string_equal(m->id, "test-1");
        assert_string_equal(m->series, "test");
        assert_int_equal(m->sequence, 7);
        assert_string_equal(m->description, "round trip");
        assert_string_equal(m->os, "linux");
        hex(m->build_id, m->build_id_len, got);
        assert_string_equal(got, "8f1e5c0a9b3d2e4f60718293a4b5c6d7e8f90123");
        assert_string_equal(m->banner, "Linux version 6.1.0-test");
        assert_int_equal(m->nr_sites, 2);
        assert_int_equal(m->sites[0].kind, HVP_SITE_REDIRECT);
        assert_string_equal(m->sites[0].symbol, "version_proc_show");
        assert_string_equal(m->sites[0].function, "patch_entry");
        assert_ptr_equal(m->sites[0].payload, &b->entries[1]);
        assert_int_equal(m->sites[0].line, 10);
        assert_int_equal(hvp_reloc_measure(object, object_len, "patch_entry", &info), 0);
        assert_int_equal(m->sites[0].code_size, info.size);
        assert_int_equal(m->sites[0].code_align, info.align);
        assert_int_equal(m->sites[1].kind, HVP_SITE_REPLACE);
        assert_int_equal(m->sites[1].offset, 0x1b);
        assert_int_equal(m->sites[1].len, 5);
        assert_memory_equal(m->sites[1].expected, "\xbe\x0a\x00\x00\x00", 5);
        assert_memory_equal(m->sites[1].new_bytes, "\xbe\x21\x00\x00\x00", 5);
        assert_ptr_equal(hvp_bundle_entry(b, "calls.o"), &b->entries[1]);
        assert_null(hvp_bundle_entry(b, "nope"));

        /* the layout, read by hand as docs/bundle.md describes it */
        const uint8_t *d = b->data;
        uint64_t off0, size0, off1;
        assert_memory_equal(d, "HVPBNDL1", 8);
        assert_int_equal(d[8], 1);
        assert_int_equal(d[20], 2);
        memcpy(&off0, d + 64 + 64, 8);
        memcpy(&size0, d + 64 + 72, 8);
        memcpy(&off1, d + 64 + 128 + 64, 8);
        assert_int_equal(off0, 64 + 2 * 128);
        assert_int_equal(off1, (off0 + size0 + 7) & ~7ull);
        assert_int_equal(off1 + object_len, b->size);
        hvp_bundle_free(b);
        free(xml);
}

static void test_pack_refuses(void **state)
{
        uint8_t *buf = (uint8_t *)0x1;
        size_t len = 5;
        char *xml;

        NEED_GCC();
        /* writable data in the object: pack says so before anything is written */
        xml = manifest_with("  <object name=\"data.o\" file=\"data.o\"/>\n  <sites>\n"
                            "    <redirect symbol=\"x\" object=\"data.o\" function=\"uses_data\"/>\n"
                            "  </sites>\n</patch>\n");
        spit(path_of("m-data.xml"), xml, strlen(xml));
        assert_int_equal(hvp_bundle_pack(path_of("m-data.xml"), &buf, &len), -ENOTSUP);
        assert_non_null(strstr(hvp_last_error(), "writable data in a patch object is not supported: section .data"));
        assert_non_null(strstr(hvp_last_error(), "line 10"));
        free(xml);
        /* a source manifest without file= */
        xml = manifest_with("  <object name=\"calls.o\"/>\n  <sites>\n"
                            "    <redirect symbol=\"x\" object=\"calls.o\" function=\"patch_entry\"/>\n"
                            "  </sites>\n</patch>\n");
        spit(path_of("m-nofile.xml"), xml, strlen(xml));
        assert_int_equal(hvp_bundle_pack(path_of("m-nofile.xml"), &buf, &len), -EINVAL);
        assert_non_null(strstr(hvp_last_error(), "file="));
        free(xml);
        /* a missing object file */
        xml = manifest_with("  <object name=\"calls.o\" file=\"missing.o\"/>\n  <sites>\n"
                            "    <redirect symbol=\"x\" object=\"calls.o\" function=\"patch_entry\"/>\n"
                            "  </sites>\n</patch>\n");
        spit(path_of("m-missing.xml"), xml, strlen(xml));
        assert_int_equal(hvp_bundle_pack(path_of("m-missing.xml"), &buf, &len), -ENOENT);
        free(xml);
        /* not an ELF object */
        spit(path_of("text.o"), "hello", 5);
        xml = manifest_with("  <object name=\"calls.o\" file=\"text.o\"/>\n  <sites>\n"
                            "    <redirect symbol=\"x\" object=\"calls.o\" function=\"patch_entry\"/>\n"
                            "  </sites>\n</patch>\n");
        spit(path_of("m-text.xml"), xml, strlen(xml));
        assert_int_equal(hvp_bundle_pack(path_of("m-text.xml"), &buf, &len), -EINVAL);
        assert_non_null(strstr(hvp_last_error(), "ELF"));
        free(xml);
        assert_int_equal(hvp_bundle_pack(path_of("no-such-manifest.xml"), &buf, &len), -ENOENT);
        assert_ptr_equal(buf, (uint8_t *)0x1);
        assert_int_equal(len, 5);
}

struct bad_manifest {
        const char *why;
        const char *body;       /* replaces good_sites; NULL: full document in head */
        const char *head;       /* replaces manifest_head if set */
        int err;
        const char *needle;
};

static const char obj_decl[] = "  <object name=\"calls.o\"/>\n";
#define REDIRECT "    <redirect symbol=\"f\" object=\"calls.o\" function=\"patch_entry\"/>\n"
#define SITES(x) "  <object name=\"calls.o\"/>\n  <sites>\n" REDIRECT x "  </sites>\n</patch>\n"

static const struct bad_manifest bad[] = {
        { "not XML", "<sites>", NULL, -EINVAL, "not well-formed" },
        { "no id", NULL,
          "<patch xmlns=\"urn:hvpatch:manifest:1\" series=\"s\" sequence=\"1\"><target os=\"linux\">"
          "<build-id>00</build-id></target>", -EINVAL, "schema" },
        { "sequence 0", NULL,
          "<patch xmlns=\"urn:hvpatch:manifest:1\" id=\"a\" series=\"s\" sequence=\"0\"><target os=\"linux\">"
          "<build-id>00</build-id></target>", -EINVAL, "schema" },
        { "wrong namespace", NULL,
          "<patch xmlns=\"urn:other\" id=\"a\" series=\"s\" sequence=\"1\"><target os=\"linux\">"
          "<build-id>00</build-id></target>", -EINVAL, "schema" },
        { "odd hex build id", NULL,
          "<patch xmlns=\"urn:hvpatch:manifest:1\" id=\"a\" series=\"s\" sequence=\"1\"><target os=\"linux\">"
          "<build-id>abc</build-id></target>", -EINVAL, "schema" },
        { "os windows", NULL,
          "<patch xmlns=\"urn:hvpatch:manifest:1\" id=\"a\" series=\"s\" sequence=\"1\"><target os=\"windows\">"
          "<build-id>00</build-id></target>", -EINVAL, "schema" },
        { "DOCTYPE", NULL,
          "<!DOCTYPE patch [<!ENTITY a \"aaaa\">]><patch xmlns=\"urn:hvpatch:manifest:1\" id=\"a\" series=\"s\" "
          "sequence=\"1\"><target os=\"linux\"><build-id>00</build-id></target>", -EINVAL, "DOCTYPE" },
        { "no sites", "  <sites/>\n</patch>\n", NULL, -EINVAL, "schema" },
        { "unknown element", SITES("    <poke symbol=\"f\"/>\n"), NULL, -EINVAL, "schema" },
        { "negative offset",
          SITES("    <replace symbol=\"g\" offset=\"-1\" expected=\"90\" new=\"cc\"/>\n"), NULL, -EINVAL, "schema" },
        { "bad hex", SITES("    <replace symbol=\"g\" offset=\"1\" expected=\"9g\" new=\"cc\"/>\n"), NULL, -EINVAL,
          "schema" },
        { "lengths differ",
          SITES("    <replace symbol=\"g\" offset=\"1\" expected=\"90 90\" new=\"cc\"/>\n"), NULL, -EINVAL,
          "expected= has 2 bytes, new= has 1" },
        { "no change", SITES("    <replace symbol=\"g\" offset=\"1\" expected=\"90\" new=\"90\"/>\n"), NULL, -EINVAL,
          "new= equals expected=" },
        { "replace too long",
          SITES("    <replace symbol=\"g\" offset=\"1\" "
                "expected=\"9090909090909090909090909090909090909090909090909090909090909090"
                "9090909090909090909090909090909090909090909090909090909090909090"
                "90\" new=\"cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
                "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
                "cc\"/>\n"),
          NULL, -EINVAL, "schema" },
        { "new splits an instruction",
          SITES("    <replace symbol=\"g\" offset=\"1\" expected=\"90 90 90 90 90\" new=\"48 b8 00 00 00\"/>\n"),
          NULL, -EINVAL, "new= is not whole instructions: range splits an instruction at +0" },
        { "expected undecodable",
          SITES("    <replace symbol=\"g\" offset=\"1\" expected=\"90 06\" new=\"90 90\"/>\n"), NULL, -EINVAL,
          "expected= is not whole instructions: undecodable byte at +1" },
        { "overlapping replaces",
          SITES("    <replace symbol=\"g\" offset=\"10\" expected=\"90 90 90\" new=\"cc cc cc\"/>\n"
                "    <replace symbol=\"g\" offset=\"12\" expected=\"90\" new=\"cc\"/>\n"),
          NULL, -EINVAL, "overlaps" },
        { "replace in a redirected entry",
          SITES("    <replace symbol=\"f\" offset=\"4\" expected=\"90\" new=\"cc\"/>\n"), NULL, -EINVAL,
          "overlaps" },
        { "redirected twice", SITES(REDIRECT), NULL, -EINVAL, "redirected twice" },
        { "consistency of another value",
          SITES("    <replace symbol=\"g\" offset=\"1\" expected=\"90\" new=\"cc\" consistency=\"task\"/>\n"),
          NULL, -EINVAL, "manifest line 11: consistency=\"task\": site or function expected" },
        { "consistency empty",
          SITES("    <replace symbol=\"g\" offset=\"1\" expected=\"90\" new=\"cc\" consistency=\"\"/>\n"),
          NULL, -EINVAL, "consistency=\"\": site or function expected" },
        { "consistency too long", SITES("    <replace symbol=\"g\" offset=\"1\" expected=\"90\" new=\"cc\" "
                                       "consistency=\"functionfunctionfunctionfunctionfunctionfunctionfunctionfunction"
                                       "x\"/>\n"),
          NULL, -EINVAL, "schema" },
        { "undeclared object",
          "  <object name=\"calls.o\"/>\n  <sites>\n" REDIRECT
          "    <redirect symbol=\"h\" object=\"other.o\" function=\"patch_entry\"/>\n  </sites>\n</patch>\n",
          NULL, -EINVAL, "not declared" },
        { "object declared, not in the bundle",
          "  <object name=\"calls.o\"/>\n  <object name=\"extra.o\"/>\n  <sites>\n" REDIRECT
          "    <redirect symbol=\"h\" object=\"extra.o\" function=\"patch_entry\"/>\n  </sites>\n</patch>\n",
          NULL, -EINVAL, "extra.o is not in the bundle" },
        { "object unused",
          "  <object name=\"calls.o\"/>\n  <sites>\n    <replace symbol=\"g\" offset=\"1\" expected=\"90\" "
          "new=\"cc\"/>\n  </sites>\n</patch>\n",
          NULL, -EINVAL, "not used by any redirect" },
        { "no such function",
          "  <object name=\"calls.o\"/>\n  <sites>\n"
          "    <redirect symbol=\"f\" object=\"calls.o\" function=\"nope\"/>\n  </sites>\n</patch>\n",
          NULL, -ENOENT, "nope" },
        { "payload not declared",
          "  <sites>\n    <replace symbol=\"g\" offset=\"1\" expected=\"90\" new=\"cc\"/>\n  </sites>\n</patch>\n",
          NULL, -EINVAL, "entry calls.o is not declared" },
};

static void test_bad_manifests(void **state)
{
        NEED_GCC();
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct hvp_bundle *b = (struct hvp_bundle *)0x1;
                char *xml;
                uint8_t *buf;
                size_t len;
                int r;

                if (bad[i].head)
                        assert_true(asprintf(&xml, "%s%s", bad[i].head,
                                             strcmp(bad[i].why, "no id") == 0 || !bad[i].body ?
                                                     SITES("") : bad[i].body) > 0);
                else
                        xml = manifest_with(bad[i].body);
                build(xml, &buf, &len);
                r = hvp_bundle_open_mem(buf, len, &b);
                if (r != bad[i].err || !strstr(hvp_last_error(), bad[i].needle))
                        fail_msg("%s: got %d \"%s\", want %d with \"%s\"", bad[i].why, r, hvp_last_error(), bad[i].err,
                                 bad[i].needle);
                assert_ptr_equal(b, (struct hvp_bundle *)0x1);
                free(buf);
                free(xml);
        }
        /* the reason carries the line of the offending site */
        {
                char *xml = manifest_with(SITES("    <replace symbol=\"g\" offset=\"1\" expected=\"90 90\" new=\"cc\"/>\n"));
                struct hvp_bundle *b;
                uint8_t *buf;
                size_t len;

                build(xml, &buf, &len);
                assert_int_equal(hvp_bundle_open_mem(buf, len, &b), -EINVAL);
                assert_non_null(strstr(hvp_last_error(), "manifest line 11"));
                free(buf);
                free(xml);
        }
}

/* consistency= on a site: site (the default) or function, on replace and redirect alike. */
static void test_consistency(void **state)
{
        static const char body[] =
                "  <object name=\"calls.o\"/>\n  <sites>\n"
                "    <redirect symbol=\"f\" object=\"calls.o\" function=\"patch_entry\" consistency=\"function\"/>\n"
                "    <replace symbol=\"g\" offset=\"1\" expected=\"90\" new=\"cc\"/>\n"
                "    <replace symbol=\"h\" offset=\"1\" expected=\"90\" new=\"cc\" consistency=\"site\"/>\n"
                "    <replace symbol=\"i\" offset=\"1\" expected=\"90\" new=\"cc\" consistency=\"function\"/>\n"
                "  </sites>\n</patch>\n";
        struct hvp_bundle *b = NULL;
        char *xml;
        uint8_t *buf;
        size_t len;

        NEED_GCC();
        xml = manifest_with(body);
        build(xml, &buf, &len);
        assert_int_equal(hvp_bundle_open_mem(buf, len, &b), 0);
        assert_int_equal(b->manifest.nr_sites, 4);
        assert_int_equal(b->manifest.sites[0].consistency, HVP_CONSISTENCY_FUNCTION);
        assert_int_equal(b->manifest.sites[1].consistency, HVP_CONSISTENCY_SITE);
        assert_int_equal(b->manifest.sites[2].consistency, HVP_CONSISTENCY_SITE);
        assert_int_equal(b->manifest.sites[3].consistency, HVP_CONSISTENCY_FUNCTION);
        hvp_bundle_free(b);
        free(buf);
        free(xml);
}

static void test_bounds(void **state)
{
        struct hvp_bundle_input in[HVP_BUNDLE_MAX_ENTRIES + 1];
        struct hvp_bundle *b;
        char names[HVP_BUNDLE_MAX_ENTRIES + 1][16];
        uint8_t *buf, *big;
        size_t len;
        char *xml;

        NEED_GCC();
        /* whole size */
        big = calloc(1, HVP_BUNDLE_MAX_SIZE + 1ul);
        assert_non_null(big);
        memcpy(big, "HVPBNDL1", 8);
        assert_int_equal(hvp_bundle_open_mem(big, HVP_BUNDLE_MAX_SIZE + 1ul, &b), -E2BIG);
        in[0] = (struct hvp_bundle_input){ "a", big, HVP_BUNDLE_MAX_SIZE };
        assert_int_equal(hvp_bundle_write(in, 1, &buf, &len), -E2BIG);
        free(big);

        /* entry count: writer and reader */
        for (size_t i = 0; i <= HVP_BUNDLE_MAX_ENTRIES; i++) {
                snprintf(names[i], sizeof(names[i]), "e%zu", i);
                in[i] = (struct hvp_bundle_input){ names[i], "x", 1 };
        }
        assert_int_equal(hvp_bundle_write(in, HVP_BUNDLE_MAX_ENTRIES + 1, &buf, &len), -E2BIG);
        assert_int_equal(hvp_bundle_write(in, HVP_BUNDLE_MAX_ENTRIES, &buf, &len), 0);
        buf[20] = HVP_BUNDLE_MAX_ENTRIES + 1;
        assert_int_equal(hvp_bundle_open_mem(buf, len, &b), -E2BIG);
        free(buf);

        /* names: length, charset, duplicates */
        char longname[HVP_BUNDLE_NAME_MAX + 2];
        memset(longname, 'n', sizeof(longname) - 1);
        longname[sizeof(longname) - 1] = '\0';
        in[0] = (struct hvp_bundle_input){ longname, "x", 1 };
        assert_int_equal(hvp_bundle_write(in, 1, &buf, &len), -EINVAL);
        longname[HVP_BUNDLE_NAME_MAX] = '\0';
        assert_int_equal(hvp_bundle_write(in, 1, &buf, &len), 0);
        free(buf);
        in[0].name = "../etc/passwd";
        assert_int_equal(hvp_bundle_write(in, 1, &buf, &len), -EINVAL);
        in[0].name = ".hidden";
        assert_int_equal(hvp_bundle_write(in, 1, &buf, &len), -EINVAL);
        in[0].name = in[1].name = "same";
        assert_int_equal(hvp_bundle_write(in, 2, &buf, &len), -EINVAL);

        /* manifest size */
        size_t mlen = HVP_MANIFEST_MAX_SIZE + 1;
        char *huge = malloc(mlen + 1);
        memset(huge, ' ', mlen);
        huge[mlen] = '\0';
        build(huge, &buf, &len);
        assert_int_equal(hvp_bundle_open_mem(buf, len, &b), -E2BIG);
        free(buf);
        free(huge);

        /* site count */
        size_t cap = 200 * (HVP_MANIFEST_MAX_SITES + 2);
        char *sites = malloc(cap), *p = sites;
        p += sprintf(p, "%s  <sites>\n" REDIRECT, obj_decl);
        for (unsigned i = 0; i < HVP_MANIFEST_MAX_SITES; i++)
                p += sprintf(p, "    <replace symbol=\"s%u\" offset=\"1\" expected=\"90\" new=\"cc\"/>\n", i);
        sprintf(p, "  </sites>\n</patch>\n");
        xml = manifest_with(sites);
        build(xml, &buf, &len);
        assert_int_equal(hvp_bundle_open_mem(buf, len, &b), -E2BIG);
        assert_non_null(strstr(hvp_last_error(), "sites"));
        free(buf);
        free(xml);
        /* one fewer is fine */
        p = strstr(sites, "    <replace symbol=\"s0\"");
        memmove(p, strchr(p, '\n') + 1, strlen(strchr(p, '\n') + 1) + 1);
        xml = manifest_with(sites);
        build(xml, &buf, &len);
        assert_int_equal(hvp_bundle_open_mem(buf, len, &b), 0);
        assert_int_equal(b->manifest.nr_sites, HVP_MANIFEST_MAX_SITES);
        hvp_bundle_free(b);
        free(buf);
        free(xml);
        free(sites);
}

static void test_truncations(void **state)
{
        char *xml = manifest_with(SITES(""));
        struct hvp_bundle *b;
        uint8_t *buf;
        size_t len;

        NEED_GCC();
        build(xml, &buf, &len);
        assert_int_equal(hvp_bundle_open_mem(buf, len, &b), 0);
        hvp_bundle_free(b);
        for (size_t cut = 0; cut < len; cut++) {
                int r = hvp_bundle_open_mem(buf, cut, &b);

                if (r != -EINVAL)
                        fail_msg("cut at %zu: %d %s", cut, r, hvp_last_error());
        }
        /* one byte too many */
        uint8_t *more = malloc(len + 1);
        memcpy(more, buf, len);
        more[len] = 0;
        assert_int_equal(hvp_bundle_open_mem(more, len + 1, &b), -EINVAL);
        free(more);
        free(buf);
        free(xml);
}

static void test_corruption(void **state)
{
        char *xml = manifest_with(SITES(""));
        struct hvp_bundle *b;
        uint8_t *buf;
        size_t len, hdr = 64 + 2 * 128;
        uint64_t off1;

        NEED_GCC();
        build(xml, &buf, &len);
        memcpy(&off1, buf + 64 + 128 + 64, 8);
        /* a flipped payload byte: the hash says so */
        buf[off1 + 100] ^= 1;
        assert_int_equal(hvp_bundle_open_mem(buf, len, &b), -EBADMSG);
        assert_non_null(strstr(hvp_last_error(), "calls.o: SHA-256 mismatch"));
        buf[off1 + 100] ^= 1;
        /* a flipped manifest byte */
        buf[hdr + 3] ^= 0x20;
        assert_int_equal(hvp_bundle_open_mem(buf, len, &b), -EBADMSG);
        buf[hdr + 3] ^= 0x20;
        /* header fields: magic, version, reserved, padding */
        buf[0] = 'X';
        assert_int_equal(hvp_bundle_open_mem(buf, len, &b), -EINVAL);
        buf[0] = 'H';
        buf[8] = 2;
        assert_int_equal(hvp_bundle_open_mem(buf, len, &b), -EINVAL);
        buf[8] = 1;
        buf[40] = 1;
        assert_int_equal(hvp_bundle_open_mem(buf, len, &b), -EINVAL);
        buf[40] = 0;
        if (off1 > hdr + strlen(xml)) {
                buf[off1 - 1] = 1;
                assert_int_equal(hvp_bundle_open_mem(buf, len, &b), -EINVAL);
                assert_non_null(strstr(hvp_last_error(), "padding"));
                buf[off1 - 1] = 0;
        }
        /* every single byte of the header and table changed: never accepted silently */
        for (size_t i = 0; i < hdr; i++) {
                buf[i] ^= 0x80;
                assert_true(hvp_bundle_open_mem(buf, len, &b) < 0);
                buf[i] ^= 0x80;
        }
        assert_int_equal(hvp_bundle_open_mem(buf, len, &b), 0);
        hvp_bundle_free(b);
        free(buf);
        free(xml);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_pack_round_trip),
                cmocka_unit_test(test_pack_refuses),
                cmocka_unit_test(test_bad_manifests),
                cmocka_unit_test(test_consistency),
                cmocka_unit_test(test_bounds),
                cmocka_unit_test(test_truncations),
                cmocka_unit_test(test_corruption),
        };

        return hvp_test_exit(cmocka_run_group_tests(tests, setup, teardown));
}

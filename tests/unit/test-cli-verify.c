/*
 * `hvpatch verify` end to end: exit codes and JSON, with keys and signatures made by
 * the real minisign over bundles written here with the library's container writer
 * (so a correctly signed bundle can carry a manifest the reader must refuse).
 * The oracles are minisign -V (does the signature verify?) and the manifest text
 * written here (what verify must print). Each test stands alone: the group setup
 * writes the fixtures and finds hvpatch ($HVPATCH), each test checks for it itself
 * (a loud skip when it is not built, a failure under CI=true; tests/unit/prereq.h).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/prereq.h"

#include "tests/unit/shell.h"
#include <json-c/json.h>

#include <hvpatch/patch.h>

static char dir[256];
static const char *hvpatch;

#define BUILD_ID "4b1c0e3f9d0c5a1e7f2b6c8d9e0f1a2b3c4d5e6f"
#define MANIFEST_HEAD \
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" \
        "<patch xmlns=\"urn:hvpatch:manifest:1\" id=\"fix-7\" series=\"cve-7\" sequence=\"7\">\n"
#define TARGET "  <target os=\"linux\"><build-id>" BUILD_ID "</build-id></target>\n"

static const char good_manifest[] = MANIFEST_HEAD
        "  <description>unit test</description>\n" TARGET
        "  <sites>\n"
        "    <replace symbol=\"cmdline_proc_show\" offset=\"0x18\" expected=\"be 0a 00 00 00\" new=\"be 21 00 00 00\"/>\n"
        "    <replace symbol=\"version_proc_show\" offset=\"5\" expected=\"90\" new=\"cc\" consistency=\"function\"/>\n"
        "  </sites>\n</patch>\n";

/* Manifests a correctly signed bundle may carry and verify must refuse, each with
 * words of the reason it must give. */
static const struct bad_manifest {
        const char *file, *xml, *reason;
} bad_manifests[] = {
        { "schema.hvp", MANIFEST_HEAD TARGET "</patch>\n", "does not match the schema" }, /* no <sites> */
        { "seq0.hvp", "<patch xmlns=\"urn:hvpatch:manifest:1\" id=\"a\" series=\"b\" sequence=\"0\">" TARGET
          "<sites><replace symbol=\"f\" offset=\"0\" expected=\"90\" new=\"cc\"/></sites></patch>",
          "does not match the schema" },
        { "xml.hvp", MANIFEST_HEAD TARGET "<sites>", "not well-formed" },     /* not well-formed */
        { "rule.hvp", MANIFEST_HEAD TARGET "<sites><replace symbol=\"f\" offset=\"0\" expected=\"90 90\" "
          "new=\"cc\"/></sites></patch>", "has 2 bytes, new= has 1" },         /* lengths differ */
        { "insn.hvp", MANIFEST_HEAD TARGET "<sites><replace symbol=\"f\" offset=\"0\" expected=\"0f\" "
          "new=\"90\"/></sites></patch>", "whole instructions" },             /* half an instruction */
        { "object.hvp", MANIFEST_HEAD TARGET "<sites><redirect symbol=\"f\" object=\"p.o\" function=\"g\"/>"
          "</sites></patch>", "p.o, which is not declared" },
};

static int write_file(const char *name, const void *data, size_t len)
{
        char path[512];
        FILE *f;
        size_t n;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = fopen(path, "wb");
        if (!f)
                return -1;
        n = fwrite(data, 1, len, f);
        return fclose(f) == 0 && n == len ? 0 : -1;
}

/* A bundle holding manifest xml as its only entry; corrupt != 0 flips a manifest
 * byte after the writer hashed it (the table's SHA-256 no longer matches). */
static int write_bundle(const char *name, const char *xml, int corrupt)
{
        struct hvp_bundle_input in = { HVP_BUNDLE_MANIFEST, xml, strlen(xml) };
        uint8_t *buf;
        size_t len;
        int r;

        if (hvp_bundle_write(&in, 1, &buf, &len) < 0)
                return -1;
        if (corrupt)
                buf[len - 10] ^= 0x20;
        r = write_file(name, buf, len);
        free(buf);
        return r;
}

/* Every test starts here: hvpatch must be built, whichever test runs first or alone. */
static void need_hvpatch(void)
{
        hvp_test_require(hvpatch && access(hvpatch, X_OK) == 0, "hvpatch not built (%s): build it first",
                         hvpatch ? hvpatch : "HVPATCH unset");
}

static int setup(void **state)
{
        const char *t = getenv("TMPDIR");

        hvpatch = getenv("HVPATCH");
        snprintf(dir, sizeof(dir), "%s/hvp-cli-verify-XXXXXX", t && t[0] ? t : "/tmp");
        if (!mkdtemp(dir))
                return -1;
        if (write_bundle("x.hvp", good_manifest, 0) < 0 || write_bundle("hash.hvp", good_manifest, 1) < 0)
                return -1;
        for (size_t i = 0; i < sizeof(bad_manifests) / sizeof(bad_manifests[0]); i++)
                if (write_bundle(bad_manifests[i].file, bad_manifests[i].xml, 0) < 0)
                        return -1;
        if (run("cd '%s' && head -c 70000 /dev/urandom > random.hvp && minisign -G -W -p a.pub -s a.key </dev/null >/dev/null 2>&1 && "
                "for f in hash.hvp random.hvp %s %s %s %s %s %s; do minisign -S -s a.key -m $f </dev/null >/dev/null || exit 1; done",
                dir, bad_manifests[0].file, bad_manifests[1].file, bad_manifests[2].file, bad_manifests[3].file,
                bad_manifests[4].file, bad_manifests[5].file) != 0)
                return -1;
        return run("cd '%s' && "
                   "minisign -G -W -p b.pub -s b.key </dev/null >/dev/null 2>&1 && "
                   "minisign -S -s a.key -m x.hvp -t 'tc 1' </dev/null >/dev/null && "
                   "cp x.hvp y.hvp && minisign -S -s b.key -m y.hvp </dev/null >/dev/null && "
                   "cp x.hvp unsigned.hvp && cp x.hvp flipped.hvp && cp x.hvp.minisig flipped.hvp.minisig && "
                   "printf '\\001' | dd of=flipped.hvp bs=1 seek=100 conv=notrunc 2>/dev/null && "
                   "cp x.hvp bad.hvp && head -c 50 x.hvp.minisig > bad.hvp.minisig && "
                   "printf '<policy version=\"1\"><key name=\"rel\"><public-key-file>a.pub</public-key-file>"
                   "<may-sign series=\"*\"/></key></policy>' > policy.xml",
                   dir) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
        run("rm -rf '%s'", dir);
        return 0;
}

static int verify(const char *args)
{
        return run("cd '%s' && '%s' verify %s >out.txt 2>err.txt", dir, hvpatch, args);
}

static void test_exit_codes(void **state)
{
        need_hvpatch();
        assert_int_equal(verify("--key a.pub x.hvp"), 0);
        assert_int_equal(verify("--policy policy.xml x.hvp"), 0);
        assert_int_equal(verify("--key a.pub flipped.hvp"), 3);    /* changed after signing */
        assert_int_equal(verify("--key a.pub y.hvp"), 3);          /* untrusted signer */
        assert_int_equal(verify("--policy policy.xml y.hvp"), 3);
        assert_int_equal(verify("--key a.pub unsigned.hvp"), 3);   /* no .minisig */
        assert_int_equal(verify("--key a.pub bad.hvp"), 1);        /* truncated .minisig */
        assert_int_equal(verify("--key a.pub --sig y.hvp.minisig x.hvp"), 3);
        assert_int_equal(verify("--key a.pub missing.hvp"), 1);
        assert_int_equal(verify("--key b.pub --policy policy.xml x.hvp"), 2);
        assert_int_equal(verify("--key a.pub"), 2);
        assert_int_equal(verify("--bogus x.hvp"), 2);
        assert_int_equal(verify("--policy x.hvp x.hvp"), 1);       /* not a policy */
}

static void test_json(void **state)
{
        char path[512];
        json_object *o, *v;

        need_hvpatch();
        assert_int_equal(run("cd '%s' && '%s' --json verify --policy policy.xml x.hvp >out.json", dir, hvpatch), 0);
        snprintf(path, sizeof(path), "%s/out.json", dir);
        o = json_object_from_file(path);
        assert_non_null(o);
        assert_true(json_object_object_get_ex(o, "key_name", &v));
        assert_string_equal(json_object_get_string(v), "rel");
        assert_true(json_object_object_get_ex(o, "trusted_comment", &v));
        assert_string_equal(json_object_get_string(v), "tc 1");
        json_object_put(o);
        assert_int_equal(run("cd '%s' && '%s' --json verify --key a.pub flipped.hvp >out.json", dir, hvpatch), 3);
        o = json_object_from_file(path);
        assert_non_null(o);
        assert_true(json_object_object_get_ex(o, "error", &v));
        assert_non_null(strstr(json_object_get_string(v), "does not verify"));
        json_object_put(o);
}

static json_object *json_of(const char *args, int want_exit)
{
        char path[512];

        assert_int_equal(run("cd '%s' && '%s' --json verify %s >out.json", dir, hvpatch, args), want_exit);
        snprintf(path, sizeof(path), "%s/out.json", dir);
        return json_object_from_file(path);
}

static const char *field(json_object *o, const char *name)
{
        json_object *v;

        assert_true(json_object_object_get_ex(o, name, &v));
        return json_object_get_string(v);
}

/* The manifest verify prints is the one written above, read from the verified bytes. */
static void test_manifest_fields(void **state)
{
        json_object *o, *sites, *s;

        need_hvpatch();
        o = json_of("--key a.pub x.hvp", 0);
        assert_non_null(o);
        assert_string_equal(field(o, "manifest"), "valid");
        assert_string_equal(field(o, "patch_id"), "fix-7");
        assert_string_equal(field(o, "series"), "cve-7");
        assert_string_equal(field(o, "sequence"), "7");
        assert_string_equal(field(o, "target_build_id"), BUILD_ID);
        assert_string_equal(field(o, "description"), "unit test");
        assert_true(json_object_object_get_ex(o, "sites", &sites));
        assert_int_equal(json_object_array_length(sites), 2);
        s = json_object_array_get_idx(sites, 0);
        assert_string_equal(field(s, "kind"), "replace");
        assert_string_equal(field(s, "symbol"), "cmdline_proc_show");
        assert_string_equal(field(s, "offset"), "24");
        assert_string_equal(field(s, "length"), "5");
        assert_string_equal(field(s, "consistency"), "site");
        s = json_object_array_get_idx(sites, 1);
        assert_string_equal(field(s, "symbol"), "version_proc_show");
        assert_string_equal(field(s, "offset"), "5");
        assert_string_equal(field(s, "length"), "1");
        assert_string_equal(field(s, "consistency"), "function");
        json_object_put(o);

        /* the human output names them too */
        assert_int_equal(verify("--key a.pub x.hvp"), 0);
        assert_int_equal(run("cd '%s' && grep -q '^patch id: *fix-7$' out.txt && grep -q '^series: *cve-7$' out.txt && "
                             "grep -q '^sequence: *7$' out.txt && grep -q 'build id " BUILD_ID "$' out.txt && "
                             "grep -q 'replace  *cmdline_proc_show+0x18, 5 bytes$' out.txt && "
                             "grep -q 'replace  *version_proc_show+0x5, 1 bytes, consistency=function$' out.txt", dir), 0);
}

/*
 * A correctly signed bundle (minisign -V agrees) whose content is not a valid bundle:
 * exit 1 with the reader's reason, nothing printed as if it were good.
 */
static void test_malformed_manifest_signed(void **state)
{
        static const struct { const char *file, *reason; } more[] = {
                { "hash.hvp", "SHA-256" },      /* manifest changed before signing, table not updated */
                { "random.hvp", "not a bundle" },
        };
        char args[256];
        json_object *o;

        need_hvpatch();
        for (size_t i = 0; i < sizeof(bad_manifests) / sizeof(bad_manifests[0]) + 2; i++) {
                size_t nb = sizeof(bad_manifests) / sizeof(bad_manifests[0]);
                const char *file = i < nb ? bad_manifests[i].file : more[i - nb].file;
                const char *reason = i < nb ? bad_manifests[i].reason : more[i - nb].reason;

                print_message("%s: expecting '%s'\n", file, reason);
                assert_int_equal(run("cd '%s' && minisign -V -q -p a.pub -m %s >/dev/null", dir, file), 0);
                snprintf(args, sizeof(args), "--key a.pub %s", file);
                assert_int_equal(verify(args), 1);
                assert_int_equal(run("cd '%s' && grep -q 'signature good, but the bundle is not valid' err.txt && "
                                     "grep -qi -- '%s' err.txt && ! test -s out.txt", dir, reason), 0);
                o = json_of(args, 1);
                assert_non_null(o);
                assert_non_null(strstr(field(o, "error"), "not valid"));
                assert_string_equal(field(o, "code"), "1");
                json_object_put(o);
        }
        /* an untrusted signer of a malformed bundle: the signature is what is refused */
        assert_int_equal(verify("--key b.pub schema.hvp"), 3);
        assert_int_equal(run("cd '%s' && ! grep -q 'not valid' err.txt", dir), 0);
}

/* An optional argument runs only the tests whose names match it (cmocka's filter, '*' wildcards). */
int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_exit_codes),
                cmocka_unit_test(test_json),
                cmocka_unit_test(test_manifest_fields),
                cmocka_unit_test(test_malformed_manifest_signed),
        };

        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return hvp_test_exit(cmocka_run_group_tests(tests, setup, teardown));
}

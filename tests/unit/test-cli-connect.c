/*
 * `-c URI` is honoured by every command that opens a domain (DESIGN.md: the CLI
 * contract). Offline: libvirt's test driver (test:///default, in libvirt itself, no
 * daemon) has a running domain named "test", and qemu:///system (the default) has
 * none of that name. A command that honours -c finds "test" there and then stops
 * at what comes after the lookup: the connection is not QEMU's. A command that
 * ignores -c says "no domain test" (or cannot reach libvirtd at all).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/prereq.h"
#include "tests/unit/shell.h"
#include <json-c/json.h>

#include <hvpatch/patch.h>

static char dir[256];
static const char *hvpatch;

static const char manifest[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<patch xmlns=\"urn:hvpatch:manifest:1\" id=\"c-1\" series=\"c\" sequence=\"1\">\n"
        "  <target os=\"linux\"><build-id>4b1c0e3f9d0c5a1e7f2b6c8d9e0f1a2b3c4d5e6f</build-id></target>\n"
        "  <sites><replace symbol=\"version_proc_show\" offset=\"5\" expected=\"90\" new=\"cc\"/></sites>\n"
        "</patch>\n";

static void need_hvpatch(void)
{
        hvp_test_require(hvpatch && access(hvpatch, X_OK) == 0, "hvpatch not built (%s): build it first",
                         hvpatch ? hvpatch : "HVPATCH unset");
        hvp_test_require(run("virsh -c test:///default domstate test >/dev/null 2>&1") == 0,
                         "libvirt's test driver (test:///default) does not answer: is virsh installed?");
}

static int setup(void **state)
{
        const char *t = getenv("TMPDIR");
        struct hvp_bundle_input in = { HVP_BUNDLE_MANIFEST, manifest, strlen(manifest) };
        uint8_t *buf;
        size_t len;
        FILE *f;
        int ok;

        hvpatch = getenv("HVPATCH");
        snprintf(dir, sizeof(dir), "%s/hvp-cli-connect-XXXXXX", t && t[0] ? t : "/tmp");
        if (!mkdtemp(dir) || hvp_bundle_write(&in, 1, &buf, &len) < 0)
                return -1;
        {
                char path[512];

                snprintf(path, sizeof(path), "%s/x.hvp", dir);
                f = fopen(path, "wb");
                ok = f && fwrite(buf, 1, len, f) == len;
                if (f && fclose(f) != 0)
                        ok = 0;
        }
        free(buf);
        return ok ? 0 : -1;
}

static int teardown(void **state)
{
        run("rm -rf '%s'", dir);
        return 0;
}

/* The JSON error (or check's reasons) of `hvpatch -c test:///default --json ARGS`, as one string. */
static char *error_of(const char *args, int *ret_exit)
{
        char path[512], *text;
        json_object *o, *v;

        *ret_exit = run("cd '%s' && HVPATCH_STATE_DIR='%s/state' '%s' -c test:///default --json %s >out.json "
                        "2>err.txt", dir, dir, hvpatch, args);
        snprintf(path, sizeof(path), "%s/out.json", dir);
        o = json_object_from_file(path);
        assert_non_null(o);
        if (json_object_object_get_ex(o, "error", &v)) {
                text = strdup(json_object_get_string(v));
        } else {
                assert_true(json_object_object_get_ex(o, "reasons", &v));   /* check */
                text = strdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_NOSLASHESCAPE));
        }
        json_object_put(o);
        assert_non_null(text);
        print_message("hvpatch -c test:///default %s -> %d: %s\n", args, *ret_exit, text);
        return text;
}

static void expect_test_connection(const char *args)
{
        int code;
        char *e = error_of(args, &code);

        assert_int_equal(code, 1);
        /* found on the test connection, refused after the lookup for not being QEMU's */
        assert_null(strstr(e, "no domain"));
        assert_non_null(strstr(e, "test:///default"));
        assert_non_null(strstr(e, "not QEMU"));
        free(e);
}

static void test_apply_and_check(void **state)
{
        need_hvpatch();
        expect_test_connection("check test x.hvp --insecure-unsigned");
        expect_test_connection("apply test x.hvp --insecure-unsigned");
        expect_test_connection("apply --write-path gdbstub test x.hvp --insecure-unsigned");
}

static void test_every_domain_command(void **state)
{
        static const char *const cmds[] = {
                "inspect test", "symbols test", "translate test 0xffffffff81000000",
                "read test 0xffffffff81000000 16", "disasm test 0xffffffff81000000 16",
                "status test", "revert test c-1", "recover test",
        };

        need_hvpatch();
        for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
                expect_test_connection(cmds[i]);
}

/* The oracle itself: without -c the default connection is asked (and has no "test"). */
static void test_without_c_is_another_connection(void **state)
{
        char path[512];
        json_object *o, *v;

        need_hvpatch();
        assert_int_equal(run("cd '%s' && '%s' --json status test >out.json 2>/dev/null", dir, hvpatch), 1);
        snprintf(path, sizeof(path), "%s/out.json", dir);
        o = json_object_from_file(path);
        assert_non_null(o);
        assert_true(json_object_object_get_ex(o, "error", &v));
        assert_null(strstr(json_object_get_string(v), "test:///default"));
        json_object_put(o);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_apply_and_check),
                cmocka_unit_test(test_every_domain_command),
                cmocka_unit_test(test_without_c_is_another_connection),
        };

        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return hvp_test_exit(cmocka_run_group_tests(tests, setup, teardown));
}

/*
 * `hvpatch verify` end to end: exit codes and JSON, with keys and signatures made by
 * the real minisign. Skipped (with a message) while the hvpatch binary does not link
 * yet (it needs the guest backends).
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
#include <json-c/json.h>

static char dir[256];
static const char *hvpatch;

__attribute__((format(printf, 1, 2)))
static int run(const char *fmt, ...)
{
        char cmd[4096];
        va_list ap;
        int st;

        va_start(ap, fmt);
        vsnprintf(cmd, sizeof(cmd), fmt, ap);
        va_end(ap);
        st = system(cmd);
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int setup(void **state)
{
        const char *t = getenv("TMPDIR");

        snprintf(dir, sizeof(dir), "%s/hvp-cli-verify-XXXXXX", t && t[0] ? t : "/tmp");
        if (!mkdtemp(dir))
                return -1;
        return run("cd '%s' && minisign -G -W -p a.pub -s a.key </dev/null >/dev/null 2>&1 && "
                   "minisign -G -W -p b.pub -s b.key </dev/null >/dev/null 2>&1 && "
                   "head -c 70000 /dev/urandom > x.hvp && minisign -S -s a.key -m x.hvp -t 'tc 1' </dev/null >/dev/null && "
                   "cp x.hvp y.hvp && minisign -S -s b.key -m y.hvp </dev/null >/dev/null && "
                   "cp x.hvp unsigned.hvp && cp x.hvp flipped.hvp && cp x.hvp.minisig flipped.hvp.minisig && "
                   "printf '\\001' | dd of=flipped.hvp bs=1 seek=1000 conv=notrunc 2>/dev/null && "
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
        hvpatch = getenv("HVPATCH");
        if (!hvpatch || access(hvpatch, X_OK) != 0) {
                print_message("hvpatch not built yet (%s): skipped\n", hvpatch ? hvpatch : "HVPATCH unset");
                skip();
        }
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

        if (!hvpatch || access(hvpatch, X_OK) != 0)
                skip();
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

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_exit_codes),
                cmocka_unit_test(test_json),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}

/*
 * The apply pipeline as a library call (include/hvpatch/ops.h), in the stages that need
 * no guest: exit classes, a missing bundle, a missing policy, an unsigned bundle, a bad
 * signature; refusals are audited by apply and never by check. The stages with a guest
 * are covered by the live tests (test_patching.py, test_policy.py, test_sync.py).
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
#include "tests/unit/shell.h"

#include <hvpatch/hvpatch.h>
#include <hvpatch/ops.h>
#include <hvpatch/patch.h>

static char tmpdir[] = "/tmp/hvp-test-ops-XXXXXX";
static char bundle_path[600], policy_path[600];
static bool have_minisign;
static char audit_lines[8][1024];
static size_t n_audit;

static void capture(int prio, const char *line, void *userdata)
{
        (void)prio;
        (void)userdata;
        if (n_audit < 8)
                snprintf(audit_lines[n_audit], sizeof(audit_lines[0]), "%s", line);
        n_audit++;
}

static int setup(void **state)
{
        char xml[1024];
        uint8_t *buf;
        size_t len;
        struct hvp_bundle_input in = { HVP_BUNDLE_MANIFEST, xml, 0 };
        FILE *f;

        (void)state;
        if (!mkdtemp(tmpdir))
                return -1;
        snprintf(xml, sizeof(xml),
                 "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                 "<patch xmlns=\"urn:hvpatch:manifest:1\" id=\"demo-1\" series=\"demo\" sequence=\"1\">\n"
                 "  <target os=\"linux\"><build-id>aaaaaaaa00000000000000000000000000000001</build-id></target>\n"
                 "  <sites>\n"
                 "    <replace symbol=\"cmdline_proc_show\" offset=\"0x1b\" expected=\"be 0a 00 00 00\" new=\"be21000000\"/>\n"
                 "  </sites>\n"
                 "</patch>\n");
        in.size = strlen(xml);
        if (hvp_bundle_write(&in, 1, &buf, &len) < 0)
                return -1;
        snprintf(bundle_path, sizeof(bundle_path), "%s/b.hvp", tmpdir);
        f = fopen(bundle_path, "wb");
        if (!f)
                return -1;
        fwrite(buf, 1, len, f);
        fclose(f);
        free(buf);
        snprintf(policy_path, sizeof(policy_path), "%s/policy.xml", tmpdir);
        f = fopen(policy_path, "w");
        if (!f)
                return -1;
        fputs("<policy version='1'><key name='rel'><public-key-file>rel.pub</public-key-file>"
              "<may-sign series='*'/></key></policy>\n", f);
        fclose(f);
        have_minisign = run("cd '%s' && minisign -G -W -p rel.pub -s rel.key </dev/null >/dev/null 2>&1 && "
                            "minisign -G -W -p evil.pub -s evil.key </dev/null >/dev/null 2>&1", tmpdir) == 0;
        hvp_audit_set_fn(capture, NULL);
        return 0;
}

static int teardown(void **state)
{
        (void)state;
        hvp_audit_set_fn(NULL, NULL);
        return run("rm -rf '%s'", tmpdir) == 0 ? 0 : -1;
}

static void test_exit_classes(void **state)
{
        (void)state;
        assert_int_equal(hvp_exit_class(-EPERM), HVP_EXIT_REFUSED);
        assert_int_equal(hvp_exit_class(-EKEYREJECTED), HVP_EXIT_REFUSED);
        assert_int_equal(hvp_exit_class(-ENOKEY), HVP_EXIT_REFUSED);
        assert_int_equal(hvp_exit_class(-EBUSY), HVP_EXIT_BUSY);
        assert_int_equal(hvp_exit_class(-ESTALE), HVP_EXIT_MISMATCH);
        assert_int_equal(hvp_exit_class(-EILSEQ), HVP_EXIT_MISMATCH);
        assert_int_equal(hvp_exit_class(-EIO), HVP_EXIT_ERROR);
        assert_int_equal(hvp_op_apply(NULL, NULL), -EINVAL);
}

/* One call; the outcome, with n_audit the audit lines it produced. */
static struct hvp_apply_outcome *op(const char *bundle, const char *policy, bool check)
{
        static struct hvp_apply_outcome o;
        struct hvp_apply_request req = { .domain = "hvp-test-no-such-domain", .bundle_path = bundle,
                                         .policy_path = policy, .state_dir = tmpdir, .check_only = check };

        n_audit = 0;
        memset(&o, 0x5a, sizeof(o));            /* the call fills it whatever it held */
        assert_int_equal(hvp_op_apply(&req, &o), 0);
        return &o;
}

static void test_refusals_before_the_guest(void **state)
{
        struct hvp_apply_outcome *o;
        char missing[700], sig[700];

        (void)state;
        /* No bundle: an error, the one reason, nothing audited (no refusal). */
        snprintf(missing, sizeof(missing), "%s/none.hvp", tmpdir);
        o = op(missing, policy_path, false);
        assert_int_equal(o->exit_class, HVP_EXIT_ERROR);
        assert_int_equal(o->n_reasons, 1);
        assert_string_equal(o->reasons[0].stage, "bundle");
        assert_false(o->has_bundle);
        assert_false(o->applied);
        assert_int_equal(n_audit, 0);

        /* No policy: refused, the reason names the path, audited as a refusal by apply only. */
        snprintf(missing, sizeof(missing), "%s/none.xml", tmpdir);
        o = op(bundle_path, missing, false);
        assert_int_equal(o->exit_class, HVP_EXIT_REFUSED);
        assert_string_equal(o->reasons[0].stage, "policy");
        assert_non_null(strstr(o->first_error, "no policy at"));
        assert_non_null(strstr(o->first_error, missing));
        assert_int_equal(n_audit, 1);
        assert_non_null(strstr(audit_lines[0], "action=refuse"));
        assert_non_null(strstr(audit_lines[0], "domain=\"hvp-test-no-such-domain\""));
        o = op(bundle_path, missing, true);
        assert_int_equal(o->exit_class, HVP_EXIT_REFUSED);
        assert_int_equal(n_audit, 0);

        hvp_test_require(have_minisign, "minisign is not installed (images/setup-host.sh installs it)");
        /* Not signed. */
        o = op(bundle_path, policy_path, false);
        assert_int_equal(o->exit_class, HVP_EXIT_REFUSED);
        assert_string_equal(o->reasons[0].stage, "signature");
        assert_non_null(strstr(o->first_error, "bundle is not signed"));
        assert_false(o->signed_ok);
        assert_int_equal(n_audit, 1);
        assert_non_null(strstr(audit_lines[0], " bundle=- "));     /* refused before it was parsed */
        assert_non_null(strstr(audit_lines[0], "bundle is not signed"));

        /* Signed by a key the policy does not trust. */
        assert_int_equal(run("cd '%s' && minisign -S -s evil.key -m b.hvp -t t </dev/null >/dev/null 2>&1", tmpdir),
                         0);
        o = op(bundle_path, policy_path, false);
        assert_int_equal(o->exit_class, HVP_EXIT_REFUSED);
        assert_non_null(strstr(o->first_error, "signature refused"));
        assert_int_equal(n_audit, 1);

        /* check goes on past the signature: the bundle is parsed, then the guest is missing. */
        o = op(bundle_path, policy_path, true);
        assert_int_equal(o->exit_class, HVP_EXIT_REFUSED);
        assert_true(o->has_bundle);
        assert_string_equal(o->patch_id, "demo-1");
        assert_true(o->n_reasons >= 2);
        assert_string_equal(o->reasons[o->n_reasons - 1].stage, "guest");
        assert_int_equal(n_audit, 0);

        /* Signed by the trusted key: apply gets as far as the guest, which is not there. */
        snprintf(sig, sizeof(sig), "%s/b.hvp.minisig", tmpdir);
        assert_int_equal(run("cd '%s' && rm b.hvp.minisig && minisign -S -s rel.key -m b.hvp -t t "
                             "</dev/null >/dev/null 2>&1", tmpdir),
                         0);
        o = op(bundle_path, policy_path, false);
        assert_true(o->signed_ok);
        assert_string_equal(o->key_name, "rel");
        assert_true(o->has_bundle);
        assert_int_equal(o->n_reasons, 1);
        assert_string_equal(o->reasons[0].stage, "guest");
        assert_non_null(strstr(o->first_error, "hvp-test-no-such-domain"));
        assert_false(o->applied);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_exit_classes),
                cmocka_unit_test(test_refusals_before_the_guest),
        };

        return hvp_test_exit(cmocka_run_group_tests(tests, setup, teardown));
}

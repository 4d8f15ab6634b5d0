/*
 * Baseline moves, offline: the boot elements of domain XML (read and rewritten with
 * libxml2, hostile inputs bounded and refused with a reason), the release in a
 * bzImage's setup header (synthetic headers, and the real Debian vmlinuz when
 * HVP_KERNEL_DIR is set), and the move plan for every action.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <hvpatch/hvpatch.h>
#include <hvpatch/move.h>
#include <hvpatch/policy.h>

#include "tests/unit/shell.h"

#define CUR "aaaaaaaa00000000000000000000000000000001"
#define OLD "bbbbbbbb00000000000000000000000000000001"

static char tmpdir[256];

static int setup(void **state)
{
        const char *t = getenv("TMPDIR");

        snprintf(tmpdir, sizeof(tmpdir), "%s/hvp-move-XXXXXX", t && t[0] ? t : "/tmp");
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
        run("rm -rf '%s'", tmpdir);
        return 0;
}

/* A domain as libvirt writes it, with a namespace, metadata and comments to keep. */
static const char host_booted[] =
        "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n"
        "  <name>farm-1</name>\n"
        "  <uuid>6f1c2d3e-0000-4000-8000-00000000abcd</uuid>\n"
        "  <metadata><hvpatch:state xmlns:hvpatch='urn:hvpatch:libvirt-metadata:1'>"
        "<hvpatch:group>farm</hvpatch:group></hvpatch:state></metadata>\n"
        "  <!-- keep me -->\n"
        "  <os>\n"
        "    <type arch='x86_64' machine='q35'>hvm</type>\n"
        "    <loader readonly='yes' secure='no' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>\n"
        "    <kernel>/srv/k/6.1/vmlinuz</kernel>\n"
        "    <initrd>/srv/k/6.1/initrd</initrd>\n"
        "    <cmdline>console=ttyS0 root=/dev/vda</cmdline>\n"
        "  </os>\n"
        "  <devices><serial type='pty'/></devices>\n"
        "  <qemu:commandline><qemu:arg value='-no-reboot'/></qemu:commandline>\n"
        "</domain>\n";

static const char disk_booted[] =
        "<domain type='kvm'><name>vm</name><os><type>hvm</type><boot dev='hd'/></os>"
        "<devices><disk type='file' device='disk'><source file='/var/lib/vm.qcow2'/></disk></devices></domain>";

static char *with(const char *src, const char *from, const char *to)
{
        static char out[1 << 16];
        const char *p = strstr(src, from);
        size_t n;

        assert_non_null(p);
        n = (size_t)(p - src);
        memcpy(out, src, n);
        snprintf(out + n, sizeof(out) - n, "%s%s", to, p + strlen(from));
        return out;
}

static void test_read_boot(void **state)
{
        struct hvp_domain_boot b;

        assert_int_equal(hvp_domain_boot_from_xml(host_booted, strlen(host_booted), &b), 0);
        assert_true(b.host_kernel);
        assert_string_equal(b.kernel, "/srv/k/6.1/vmlinuz");
        assert_string_equal(b.initrd, "/srv/k/6.1/initrd");
        assert_true(b.has_cmdline);
        assert_string_equal(b.cmdline, "console=ttyS0 root=/dev/vda");
        assert_int_equal(hvp_domain_boot_from_xml(disk_booted, strlen(disk_booted), &b), 0);
        assert_false(b.host_kernel);
        assert_false(b.has_cmdline);
        assert_string_equal(b.initrd, "");
        /* an empty <kernel/> boots nothing from the host */
        assert_int_equal(hvp_domain_boot_from_xml(with(disk_booted, "<boot dev='hd'/>", "<kernel/>"),
                                                  strlen(with(disk_booted, "<boot dev='hd'/>", "<kernel/>")), &b), 0);
        assert_false(b.host_kernel);
}

static void expect_bad(const char *what, const char *xml, size_t len, int err, const char *in_reason)
{
        struct hvp_domain_boot b = { .host_kernel = true, .kernel = "untouched" };
        char *out = NULL;
        size_t out_len = 0;
        int r;

        r = hvp_domain_boot_from_xml(xml, len, &b);
        if (r != err)
                fail_msg("%s: read returned %d, expected %d (%s)", what, r, err, r ? hvp_last_error() : "accepted");
        if (in_reason && !strstr(hvp_last_error(), in_reason))
                fail_msg("%s: reason \"%s\" lacks \"%s\"", what, hvp_last_error(), in_reason);
        assert_string_equal(b.kernel, "untouched");
        r = hvp_domain_xml_set_boot(xml, len, "/srv/k/new", NULL, NULL, &out, &out_len);
        if (r != err)
                fail_msg("%s: rewrite returned %d, expected %d", what, r, err);
        assert_null(out);
}

static void test_hostile_xml(void **state)
{
        static char big[HVP_DOMAIN_XML_MAX + 64];
        static char long_kernel[HVP_BOOT_PATH_MAX + 200];
        const char *x;

        expect_bad("not XML", "<domain><os>", 12, -EINVAL, "well-formed");
        expect_bad("empty", "", 0, -EINVAL, NULL);
        expect_bad("not a domain", "<network><os/></network>", 24, -EINVAL, "not <domain>");
        x = "<d:domain xmlns:d='urn:x'><os><kernel>/k</kernel></os></d:domain>";
        expect_bad("namespaced root", x, strlen(x), -EINVAL, "not <domain>");
        x = "<domain><name>x</name></domain>";
        expect_bad("no os", x, strlen(x), -EINVAL, "no <os>");
        x = "<domain><os><kernel>/a</kernel></os><os><kernel>/b</kernel></os></domain>";
        expect_bad("two os", x, strlen(x), -EINVAL, "more than one <os>");
        x = "<domain><os><kernel>/a</kernel><kernel>/b</kernel></os></domain>";
        expect_bad("two kernels", x, strlen(x), -EINVAL, "more than one <os><kernel>");
        x = "<domain><os><kernel>/a</kernel><initrd>/i</initrd><initrd>/j</initrd></os></domain>";
        expect_bad("two initrds", x, strlen(x), -EINVAL, "more than one <os><initrd>");
        x = "<?xml version='1.0'?><!DOCTYPE domain [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;'>]>"
            "<domain><os><kernel>&b;</kernel></os></domain>";
        expect_bad("entity expansion", x, strlen(x), -EINVAL, "DOCTYPE");
        x = "<?xml version='1.0'?><!DOCTYPE domain SYSTEM 'file:///etc/passwd'><domain><os/></domain>";
        expect_bad("external DTD", x, strlen(x), -EINVAL, "DOCTYPE");
        memset(long_kernel, 'k', sizeof(long_kernel) - 1);
        long_kernel[0] = '/';
        x = with(host_booted, "/srv/k/6.1/vmlinuz", long_kernel);
        expect_bad("kernel path over its bound", x, strlen(x), -E2BIG, "longer than");
        /* a document over 1 MiB is refused before it is parsed */
        memset(big, ' ', sizeof(big));
        memcpy(big, host_booted, strlen(host_booted));
        expect_bad("over 1 MiB", big, sizeof(big), -E2BIG, "larger than");
        /* deep nesting: libxml2's own depth limit, an error not a crash */
        {
                size_t depth = 20000, n = 0;
                char *deep = malloc(depth * 7 + 200);

                assert_non_null(deep);
                n += (size_t)sprintf(deep, "<domain><os><kernel>/k</kernel></os>");
                for (size_t i = 0; i < depth; i++)
                        n += (size_t)sprintf(deep + n, "<a>");
                for (size_t i = 0; i < depth; i++)
                        n += (size_t)sprintf(deep + n, "</a>");
                n += (size_t)sprintf(deep + n, "</domain>");
                expect_bad("nesting 20000 deep", deep, n, -EINVAL, NULL);
                free(deep);
        }
}

static void test_rewrite(void **state)
{
        struct hvp_domain_boot b;
        char *out = NULL, *out2 = NULL;
        size_t len = 0, len2 = 0;

        assert_int_equal(hvp_domain_xml_set_boot(host_booted, strlen(host_booted), "/srv/k/6.12/vmlinuz",
                                                 "/srv/k/6.12/initrd <&>", NULL, &out, &len), 0);
        assert_int_equal(strlen(out), len);
        assert_int_equal(hvp_domain_boot_from_xml(out, len, &b), 0);
        assert_string_equal(b.kernel, "/srv/k/6.12/vmlinuz");
        assert_string_equal(b.initrd, "/srv/k/6.12/initrd <&>");       /* escaped in, unescaped out */
        assert_non_null(strstr(out, "&lt;&amp;&gt;"));
        assert_string_equal(b.cmdline, "console=ttyS0 root=/dev/vda");  /* kept: NULL cmdline */
        /* everything else kept */
        assert_non_null(strstr(out, "<!-- keep me -->"));
        assert_non_null(strstr(out, "<qemu:arg value=\"-no-reboot\"/>"));
        assert_non_null(strstr(out, "<hvpatch:group>farm</hvpatch:group>"));
        assert_non_null(strstr(out, "OVMF_CODE_4M.fd</loader>"));
        assert_null(strstr(out, "6.1/vmlinuz"));
        /* no initrd: removed; a cmdline given: replaced; the order kernel, cmdline */
        assert_int_equal(hvp_domain_xml_set_boot(out, len, "/srv/k/6.12/vmlinuz", NULL, "console=ttyS0 quiet",
                                                 &out2, &len2), 0);
        assert_int_equal(hvp_domain_boot_from_xml(out2, len2, &b), 0);
        assert_string_equal(b.initrd, "");
        assert_null(strstr(out2, "<initrd"));
        assert_string_equal(b.cmdline, "console=ttyS0 quiet");
        assert_true(strstr(out2, "<kernel>") < strstr(out2, "<cmdline>"));
        free(out);
        free(out2);
        /* a domain without <initrd>/<cmdline> gets them, after <kernel> */
        out = NULL;
        assert_int_equal(hvp_domain_xml_set_boot(with(host_booted, "<initrd>/srv/k/6.1/initrd</initrd>", ""),
                                                 strlen(with(host_booted, "<initrd>/srv/k/6.1/initrd</initrd>", "")),
                                                 "/k2", "/i2", "quiet", &out, &len), 0);
        assert_non_null(strstr(out, "<kernel>/k2</kernel><initrd>/i2</initrd>"));
        assert_int_equal(hvp_domain_boot_from_xml(out, len, &b), 0);
        assert_string_equal(b.cmdline, "quiet");
        free(out);
}

static void test_rewrite_refusals(void **state)
{
        static char long_cmdline[HVP_BOOT_CMDLINE_MAX + 2];
        char *out = NULL;
        size_t len = 0;

        /* a disk-booted guest is never turned into a host-booted one */
        assert_int_equal(hvp_domain_xml_set_boot(disk_booted, strlen(disk_booted), "/k", NULL, NULL, &out, &len),
                         -EINVAL);
        assert_non_null(strstr(hvp_last_error(), "boots its own kernel"));
        assert_int_equal(hvp_domain_xml_set_boot(host_booted, strlen(host_booted), "vmlinuz", NULL, NULL, &out, &len),
                         -EINVAL);
        assert_int_equal(hvp_domain_xml_set_boot(host_booted, strlen(host_booted), "/k\n", NULL, NULL, &out, &len),
                         -EINVAL);
        assert_int_equal(hvp_domain_xml_set_boot(host_booted, strlen(host_booted), "/k", "i", NULL, &out, &len),
                         -EINVAL);
        memset(long_cmdline, 'c', sizeof(long_cmdline) - 1);
        assert_int_equal(hvp_domain_xml_set_boot(host_booted, strlen(host_booted), "/k", NULL, long_cmdline, &out,
                                                 &len), -E2BIG);
        assert_null(out);
}

/* A file with a bzImage-like setup header naming version at offset kv + 0x200. */
static void write_image(const char *path, const char *magic, uint16_t kv, const char *version, size_t size)
{
        unsigned char *buf = calloc(1, size);
        FILE *f;

        assert_non_null(buf);
        if (size >= 0x206)
                memcpy(buf + 0x202, magic, 4);
        if (size >= 0x210) {
                buf[0x206] = 0x0f;
                buf[0x207] = 0x02;
                buf[0x20e] = (unsigned char)(kv & 0xff);
                buf[0x20f] = (unsigned char)(kv >> 8);
        }
        if (version && (size_t)kv + 0x200 + strlen(version) < size)
                memcpy(buf + kv + 0x200, version, strlen(version));
        f = fopen(path, "w");
        assert_non_null(f);
        assert_int_equal(fwrite(buf, 1, size, f), size);
        fclose(f);
        free(buf);
}

static void test_bzimage(void **state)
{
        char path[512], rel[HVP_RELEASE_MAX + 1];
        const char *kdir = getenv("HVP_KERNEL_DIR");

        snprintf(path, sizeof(path), "%s/img", tmpdir);
        write_image(path, "HdrS", 0x3000, "6.12.57+deb13-amd64 (debian-kernel@lists.debian.org) #1", 0x8000);
        assert_int_equal(hvp_bzimage_release(path, rel, sizeof(rel)), 0);
        assert_string_equal(rel, "6.12.57+deb13-amd64");
        write_image(path, "HdrX", 0x3000, "6.12", 0x8000);
        assert_int_equal(hvp_bzimage_release(path, rel, sizeof(rel)), -ENOEXEC);
        write_image(path, "HdrS", 0, "6.12", 0x8000);
        assert_int_equal(hvp_bzimage_release(path, rel, sizeof(rel)), -ENOEXEC);
        /* the version points past the end of the file */
        write_image(path, "HdrS", 0xfff0, NULL, 0x1000);
        assert_int_equal(hvp_bzimage_release(path, rel, sizeof(rel)), -ENOEXEC);
        /* not printable, or never ends within the bound */
        write_image(path, "HdrS", 0x3000, "\x01\x02", 0x8000);
        assert_int_equal(hvp_bzimage_release(path, rel, sizeof(rel)), -ENOEXEC);
        {
                char endless[200];

                memset(endless, 'x', sizeof(endless) - 1);
                endless[sizeof(endless) - 1] = '\0';
                write_image(path, "HdrS", 0x3000, endless, 0x8000);
                assert_int_equal(hvp_bzimage_release(path, rel, sizeof(rel)), -ENOEXEC);
        }
        write_image(path, "HdrS", 0x3000, "6.1", 0x100);    /* shorter than the header */
        assert_int_equal(hvp_bzimage_release(path, rel, sizeof(rel)), -ENOEXEC);
        assert_int_equal(hvp_bzimage_release("/nonexistent/vmlinuz", rel, sizeof(rel)), -ENOENT);
        assert_int_equal(hvp_bzimage_release("/dev/null", rel, sizeof(rel)), -ENOEXEC);
        if (!kdir || !kdir[0]) {
                print_message("HVP_KERNEL_DIR not set: the real vmlinuz is not read\n");
                return;
        }
        /* the real Debian image names the release its folder is named for */
        snprintf(path, sizeof(path), "%s/vmlinuz", kdir);
        assert_int_equal(hvp_bzimage_release(path, rel, sizeof(rel)), 0);
        assert_non_null(strstr(kdir, rel));
}

/* ---- the plan ---- */

static struct hvp_policy *plan_policy(const char *kernel, const char *reboot)
{
        char xml[4096];
        struct hvp_policy *p = NULL;

        snprintf(xml, sizeof(xml),
                 "<policy version='1'><group name='farm'><select name='farm-*'/>"
                 "<window/>%s"
                 "<baseline name='b2' current='yes' %s><kernel build-id='" CUR "'/></baseline>"
                 "<baseline name='b1'><kernel build-id='" OLD "'/></baseline>"
                 "</group></policy>",
                 reboot, kernel);
        if (hvp_policy_parse(xml, strlen(xml), NULL, &p) != 0)
                fail_msg("plan policy: %s", hvp_last_error());
        return p;
}

static void plan_of(const struct hvp_policy *p, const char *build, const char *xml, struct hvp_move_plan *m)
{
        struct hvp_guest_facts f = { .name = "farm-1", .kernel_build_id = build, .now = time(NULL) };
        struct hvp_decision d;

        assert_int_equal(hvp_policy_assess(p, &f, &d), 0);
        assert_int_equal(hvp_move_plan_compute(p, &f, &d, "Linux version 6.1.0-57-amd64 (debian-kernel@) #1", xml,
                                               xml ? strlen(xml) : 0, m), 0);
}

static void test_plan(void **state)
{
        char image[512], kattr[1200], missing[1200];
        struct hvp_move_plan m;
        struct hvp_policy *p;

        snprintf(image, sizeof(image), "%s/vmlinuz-b2", tmpdir);
        write_image(image, "HdrS", 0x3000, "6.12.57+deb13-amd64 (x) #1", 0x8000);
        snprintf(kattr, sizeof(kattr), "kernel='%s' initrd='%s/initrd-b2'", image, tmpdir);
        assert_int_equal(run("echo initrd > '%s/initrd-b2'", tmpdir), 0);

        /* a window that allows reboots: move now */
        p = plan_policy(kattr, "<reboot allow='yes' shutdown-timeout='5'/>");
        plan_of(p, OLD, host_booted, &m);
        assert_int_equal(m.action, HVP_MOVE_NOW);
        assert_string_equal(hvp_move_action_name(m.action), "move");
        assert_string_equal(m.from_release, "6.1.0-57-amd64");
        assert_string_equal(m.to_release, "6.12.57+deb13-amd64");
        assert_string_equal(m.from_baseline, "b1");
        assert_string_equal(m.to_baseline, "b2");
        assert_string_equal(m.from_kernel, "/srv/k/6.1/vmlinuz");
        assert_string_equal(m.to.kernel, image);
        assert_int_equal(m.to.shutdown_timeout_s, 5);
        assert_non_null(strstr(m.to.initrd, "/initrd-b2"));
        assert_non_null(strstr(m.note, "move-baseline: 6.1.0-57-amd64 -> 6.12.57+deb13-amd64"));
        /* compliant: nothing to move */
        plan_of(p, CUR, host_booted, &m);
        assert_int_equal(m.action, HVP_MOVE_NONE);
        /* boots its own kernel: reported only */
        plan_of(p, OLD, disk_booted, &m);
        assert_int_equal(m.action, HVP_MOVE_OWN_KERNEL);
        assert_non_null(strstr(m.note, "boots its own kernel"));
        /* the domain already boots the image, yet runs the old baseline: no loop */
        plan_of(p, OLD, with(host_booted, "/srv/k/6.1/vmlinuz", image), &m);
        assert_int_equal(m.action, HVP_MOVE_BLOCKED);
        assert_non_null(strstr(m.note, "not that baseline's kernel"));
        /* hostile or unknown domain XML */
        plan_of(p, OLD, "<domain><os/><os/></domain>", &m);
        assert_int_equal(m.action, HVP_MOVE_BLOCKED);
        plan_of(p, OLD, NULL, &m);
        assert_int_equal(m.action, HVP_MOVE_BLOCKED);
        hvp_policy_free(p);
        /* the initrd the baseline names is missing */
        run("rm '%s/initrd-b2'", tmpdir);
        p = plan_policy(kattr, "<reboot allow='yes'/>");
        plan_of(p, OLD, host_booted, &m);
        assert_int_equal(m.action, HVP_MOVE_BLOCKED);
        assert_non_null(strstr(m.note, "initrd"));
        hvp_policy_free(p);
        assert_int_equal(run("echo initrd > '%s/initrd-b2'", tmpdir), 0);

        /* no window allows reboots */
        p = plan_policy(kattr, "");
        plan_of(p, OLD, host_booted, &m);
        assert_int_equal(m.action, HVP_MOVE_WAITS);
        assert_non_null(strstr(m.note, "allows reboots"));
        hvp_policy_free(p);
        /* reboot windows exist, none open now (every day except today and yesterday, in UTC) */
        {
                static const char *const days[] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" };
                char reboot[200], kattr2[1400];
                time_t now = time(NULL);
                struct tm tm;

                gmtime_r(&now, &tm);
                snprintf(reboot, sizeof(reboot), "<window days='%s' start='00:00' end='00:01' reboot='yes'/>",
                         days[(tm.tm_wday + 3) % 7]);
                snprintf(kattr2, sizeof(kattr2), "%s", kattr);
                p = NULL;
                {
                        char xml[4096];

                        snprintf(xml, sizeof(xml),
                                 "<policy version='1'><group name='farm'><select name='farm-*'/><window/>%s"
                                 "<baseline name='b2' current='yes' %s><kernel build-id='" CUR "'/></baseline>"
                                 "<baseline name='b1'><kernel build-id='" OLD "'/></baseline></group></policy>",
                                 reboot, kattr2);
                        if (hvp_policy_parse(xml, strlen(xml), NULL, &p) != 0)
                                fail_msg("policy: %s", hvp_last_error());
                }
                plan_of(p, OLD, host_booted, &m);
                assert_int_equal(m.action, HVP_MOVE_WAITS);
                assert_non_null(strstr(m.note, "moves at the next reboot window: "));
                assert_non_null(strstr(m.note, days[(tm.tm_wday + 3) % 7]));
                hvp_policy_free(p);
        }
        /* no image named */
        p = plan_policy("", "<reboot allow='yes'/>");
        plan_of(p, OLD, host_booted, &m);
        assert_int_equal(m.action, HVP_MOVE_NO_IMAGE);
        hvp_policy_free(p);
        /* an image that is missing, or not a bzImage */
        snprintf(missing, sizeof(missing), "kernel='%s/none'", tmpdir);
        p = plan_policy(missing, "<reboot allow='yes'/>");
        plan_of(p, OLD, host_booted, &m);
        assert_int_equal(m.action, HVP_MOVE_BLOCKED);
        assert_non_null(strstr(m.note, "No such file"));
        hvp_policy_free(p);
        p = plan_policy("kernel='/dev/null'", "<reboot allow='yes'/>");
        plan_of(p, OLD, host_booted, &m);
        assert_int_equal(m.action, HVP_MOVE_BLOCKED);
        assert_non_null(strstr(m.note, "not a bzImage"));
        hvp_policy_free(p);
        assert_int_equal(hvp_move_plan_compute(NULL, NULL, NULL, NULL, NULL, 0, &m), -EINVAL);
}

/* The move's own refusals, before any libvirt call. */
static void test_move_arguments(void **state)
{
        struct hvp_move_plan m = { .action = HVP_MOVE_WAITS };
        struct hvp_move_outcome o;
        struct hvp_policy *p = plan_policy("", "");
        struct hvp_guest *g = NULL;
        struct hvp_mmu *mmu = NULL;
        struct hvp_kernel *k = NULL;

        assert_int_equal(hvp_op_move_baseline(NULL, &o), -EINVAL);
        assert_int_equal(hvp_op_move_baseline(&(struct hvp_move_request){ .domain = "d", .plan = &m }, &o), -EINVAL);
        /* a plan that is not "move" moves nothing: an outcome, not a connection */
        assert_int_equal(hvp_op_move_baseline(&(struct hvp_move_request){ .domain = "d", .plan = &m, .policy = p }, &o),
                         0);
        assert_int_equal(o.exit_class, HVP_EXIT_ERROR);
        assert_non_null(strstr(o.error, "nothing to move (waits)"));
        assert_false(o.redefined || o.restarted);
        assert_null(o.sync);
        hvp_move_outcome_clear(&o);
        hvp_move_outcome_clear(NULL);
        assert_int_equal(hvp_wait_kernel_up(NULL, NULL, 1, NULL, NULL, &g, &mmu, &k), -EINVAL);
        assert_null(g);
        hvp_policy_free(p);
}

/* ---- the move's libvirt sequence, on libvirt's test driver (no daemon, no QEMU) ---- */

static char audit_line[2048];
static int audit_count;

static void on_audit(int priority, const char *line, void *userdata)
{
        (void)priority;
        (void)userdata;
        audit_count++;
        snprintf(audit_line, sizeof(audit_line), "%s", line);
}

static void quiet(void *userdata, virErrorPtr err)
{
        (void)userdata;
        (void)err;
}

#define TD_XML "<domain type='test'><name>farm-1</name><uuid>6f1c2d3e-0000-4000-8000-0000000000f1</uuid>" \
               "<memory>262144</memory><vcpu>1</vcpu><os><type>hvm</type>"                            \
               "<kernel>/srv/k/6.1/vmlinuz</kernel><initrd>/srv/k/6.1/initrd</initrd>"               \
               "<cmdline>console=ttyS0</cmdline></os></domain>"

/* The plan for the test domain as it runs now, the image in the reboot window. */
static void td_plan(virDomainPtr dom, const struct hvp_policy *p, struct hvp_move_plan *m)
{
        char *xml = virDomainGetXMLDesc(dom, 0);

        assert_non_null(xml);
        plan_of(p, OLD, xml, m);
        free(xml);
}

static void test_move_test_driver(void **state)
{
        /*
         * test:///default is one shared state per process while a connection holds it:
         * the move's own connection sees the domain this one defines.
         */
        virConnectPtr conn;
        virDomainPtr dom;
        struct hvp_live_options live = { .uri = "test:///default" };
        struct hvp_move_outcome o;
        struct hvp_move_plan m;
        struct hvp_policy *p;
        char image[512], kattr[1200], sdir[600], *xml;
        unsigned id_before;

        snprintf(sdir, sizeof(sdir), "%s/state", tmpdir);
        assert_int_equal(run("mkdir -p '%s' && chmod 700 '%s'", sdir, sdir), 0);
        snprintf(image, sizeof(image), "%s/vmlinuz-td", tmpdir);
        write_image(image, "HdrS", 0x3000, "6.12.57+deb13-amd64 (x) #1", 0x8000);
        snprintf(kattr, sizeof(kattr), "kernel='%s' cmdline='console=ttyS0 quiet'", image);
        virSetErrorFunc(NULL, quiet);
        conn = virConnectOpen("test:///default");
        assert_non_null(conn);
        dom = virDomainDefineXML(conn, TD_XML);
        assert_non_null(dom);
        assert_int_equal(virDomainCreate(dom), 0);
        hvp_audit_set_fn(on_audit, NULL);

        /* refused under the lock: a paused domain (BUSY), the kernel changed since the plan */
        p = plan_policy(kattr, "<reboot allow='yes' shutdown-timeout='1'/>");
        td_plan(dom, p, &m);
        assert_int_equal(m.action, HVP_MOVE_NOW);
        assert_int_equal(virDomainSuspend(dom), 0);
        assert_int_equal(hvp_op_move_baseline(&(struct hvp_move_request){ .domain = "farm-1", .live = &live,
                                                                         .plan = &m, .policy = p,
                                                                         .state_dir = sdir }, &o), 0);
        assert_int_equal(o.exit_class, HVP_EXIT_BUSY);
        assert_non_null(strstr(o.error, "paused"));
        assert_false(o.redefined);
        assert_int_equal(virDomainResume(dom), 0);
        snprintf(m.from_kernel, sizeof(m.from_kernel), "/srv/k/other");
        assert_int_equal(hvp_op_move_baseline(&(struct hvp_move_request){ .domain = "farm-1", .live = &live,
                                                                         .plan = &m, .policy = p,
                                                                         .state_dir = sdir }, &o), 0);
        assert_int_equal(o.exit_class, HVP_EXIT_ERROR);
        assert_non_null(strstr(o.error, "not /srv/k/other as planned"));
        assert_int_equal(audit_count, 0);       /* nothing touched, nothing audited */

        /* the move: redefined, shut off, started again, audited */
        td_plan(dom, p, &m);
        id_before = (unsigned)virDomainGetID(dom);
        assert_int_equal(hvp_op_move_baseline(&(struct hvp_move_request){ .domain = "farm-1", .live = &live,
                                                                         .plan = &m, .policy = p,
                                                                         .state_dir = sdir, .boot_timeout_s = 1 },
                                              &o), 0);
        assert_true(o.redefined);
        assert_true(o.restarted);
        assert_false(o.rolled_back);
        /* the test driver's domain is no QEMU guest: waiting for its kernel fails, said so */
        assert_false(o.kernel_up);
        assert_int_equal(o.exit_class, HVP_EXIT_ERROR);
        assert_non_null(strstr(o.error, "restarted with"));
        assert_int_equal(audit_count, 1);
        assert_non_null(strstr(audit_line, "action=move-baseline domain=\"farm-1\" bundle=\"b2\""));
        assert_non_null(strstr(audit_line, "result=ok"));
        assert_non_null(strstr(audit_line, "6.1.0-57-amd64 -> 6.12.57+deb13-amd64"));
        assert_int_equal(virDomainIsActive(dom), 1);
        {
                virDomainPtr again = virDomainLookupByName(conn, "farm-1");     /* handles cache the id */

                assert_non_null(again);
                assert_true((unsigned)virDomainGetID(again) != id_before);      /* a new instance */
                virDomainFree(again);
        }
        xml = virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE);
        assert_non_null(xml);
        assert_non_null(strstr(xml, image));
        assert_null(strstr(xml, "<initrd>"));           /* the baseline names none: removed */
        assert_non_null(strstr(xml, "<cmdline>console=ttyS0 quiet</cmdline>"));
        free(xml);
        hvp_move_outcome_clear(&o);

        /* now it boots the image: planning again finds no move to make (no loop) */
        td_plan(dom, p, &m);
        assert_int_equal(m.action, HVP_MOVE_BLOCKED);
        hvp_policy_free(p);

        /* a transient domain has no definition to change */
        virDomainDestroy(dom);
        virDomainUndefine(dom);
        virDomainFree(dom);
        dom = virDomainCreateXML(conn, TD_XML, 0);
        assert_non_null(dom);
        p = plan_policy(kattr, "<reboot allow='yes' shutdown-timeout='1'/>");
        td_plan(dom, p, &m);
        assert_int_equal(m.action, HVP_MOVE_NOW);
        assert_int_equal(hvp_op_move_baseline(&(struct hvp_move_request){ .domain = "farm-1", .live = &live,
                                                                         .plan = &m, .policy = p,
                                                                         .state_dir = sdir }, &o), 0);
        assert_int_equal(o.exit_class, HVP_EXIT_REFUSED);
        assert_non_null(strstr(o.error, "transient"));
        assert_int_equal(audit_count, 1);
        hvp_policy_free(p);
        /* no reboot window now: refused under the lock even with an old "move" plan */
        p = plan_policy(kattr, "");
        assert_int_equal(hvp_op_move_baseline(&(struct hvp_move_request){ .domain = "farm-1", .live = &live,
                                                                         .plan = &m, .policy = p,
                                                                         .state_dir = sdir }, &o), 0);
        assert_int_equal(o.exit_class, HVP_EXIT_REFUSED);
        hvp_policy_free(p);
        hvp_audit_set_fn(NULL, NULL);
        virDomainDestroy(dom);
        virDomainFree(dom);
        virConnectClose(conn);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_read_boot),
                cmocka_unit_test(test_hostile_xml),
                cmocka_unit_test(test_rewrite),
                cmocka_unit_test(test_rewrite_refusals),
                cmocka_unit_test(test_bzimage),
                cmocka_unit_test(test_plan),
                cmocka_unit_test(test_move_arguments),
                cmocka_unit_test(test_move_test_driver),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}

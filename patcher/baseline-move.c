/*
 * Baseline moves for host-booted kernels (include/hvpatch/move.h): the plan, the move
 * (redefine, restart, audit, wait for the new kernel), then the sync.
 *
 * Why a restart and not a reboot: QEMU loads <kernel>/<initrd> (-kernel/-initrd) into
 * fw_cfg when its process starts. A reset in the same process (virDomainReset, a guest
 * reboot with on_reboot=restart, sysrq-b) boots the image loaded then, whatever the
 * persistent definition says now: seen on the test guests (OVMF, direct kernel boot):
 * after redefining with 6.12 and an in-guest reset, /proc/version still said 6.1; after
 * destroy + start, 6.12. So the process is replaced: a graceful shutdown (ACPI, which
 * the busybox test guests ignore: 20 s and still running), bounded by the group's
 * shutdown-timeout, then a destroy, then a start from the new definition.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <hvpatch/apply.h>
#include <hvpatch/kernel.h>
#include <hvpatch/move.h>
#include <hvpatch/paging.h>

#include "common/error.h"
#include "common/util.h"

/* The kernel's enum system_states (include/linux/kernel.h, 4.13 on): SYSTEM_RUNNING. */
#define LINUX_SYSTEM_RUNNING 3u
#define POLL_MS 250u

const char *hvp_move_action_name(enum hvp_move_action a)
{
        switch (a) {
        case HVP_MOVE_NONE:
                return "none";
        case HVP_MOVE_NOW:
                return "move";
        case HVP_MOVE_WAITS:
                return "waits";
        case HVP_MOVE_OWN_KERNEL:
                return "own-kernel";
        case HVP_MOVE_NO_IMAGE:
                return "no-image";
        case HVP_MOVE_BLOCKED:
                return "blocked";
        }
        return "?";
}

/* ---- the image ---- */

/*
 * The x86 boot protocol's setup header (Documentation/arch/x86/boot.rst): "HdrS" at
 * 0x202, the protocol version at 0x206, kernel_version at 0x20e: an offset, minus
 * 0x200, of a NUL-terminated string in the setup code ("6.1.0-27-amd64 (debian-kernel@...) #1 ...").
 */
#define BZ_HEADER_MAGIC_OFF 0x202
#define BZ_VERSION_OFF 0x206
#define BZ_KERNEL_VERSION_OFF 0x20e
#define BZ_READ_MAX (0x10000u + 0x400u)

int hvp_bzimage_release(const char *path, char *ret_release, size_t size)
{
        _cleanup_free_ uint8_t *buf = NULL;
        uint16_t proto, kv;
        size_t got = 0, off, n = 0;
        ssize_t k;
        int fd;

        if (!path || !ret_release || size == 0)
                return hvp_fail(-EINVAL, "missing argument");
        buf = malloc(BZ_READ_MAX);
        if (!buf)
                return hvp_fail(-ENOMEM, "out of memory");
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                int e = errno == ENOENT ? -ENOENT : errno == EACCES ? -EACCES : -EIO;

                return hvp_fail(e, "%s: %s", path, strerror(errno));
        }
        while (got < BZ_READ_MAX && (k = read(fd, buf + got, BZ_READ_MAX - got)) > 0)
                got += (size_t)k;
        close(fd);
        if (got < BZ_KERNEL_VERSION_OFF + 2 || memcmp(buf + BZ_HEADER_MAGIC_OFF, "HdrS", 4) != 0)
                return hvp_fail(-ENOEXEC, "%s: not a bzImage (no \"HdrS\" setup header)", path);
        proto = (uint16_t)(buf[BZ_VERSION_OFF] | buf[BZ_VERSION_OFF + 1] << 8);
        kv = (uint16_t)(buf[BZ_KERNEL_VERSION_OFF] | buf[BZ_KERNEL_VERSION_OFF + 1] << 8);
        if (proto < 0x0200 || kv == 0)
                return hvp_fail(-ENOEXEC, "%s: the bzImage names no kernel version", path);
        off = (size_t)kv + 0x200;
        while (off + n < got && n < HVP_RELEASE_MAX && n + 1 < size && buf[off + n] > 0x20 && buf[off + n] < 0x7f)
                n++;
        if (n == 0 || off + n >= got || (buf[off + n] != ' ' && buf[off + n] != '\0'))
                return hvp_fail(-ENOEXEC, "%s: the bzImage's kernel version is not a printable string", path);
        memcpy(ret_release, buf + off, n);
        ret_release[n] = '\0';
        return 0;
}

/* The release in a banner: "Linux version 6.1.0-27-amd64 (...)" -> "6.1.0-27-amd64". */
static void release_of_banner(const char *banner, char *out, size_t size)
{
        static const char prefix[] = "Linux version ";
        size_t n = 0;

        out[0] = '\0';
        if (!banner || strncmp(banner, prefix, sizeof(prefix) - 1) != 0)
                return;
        banner += sizeof(prefix) - 1;
        while (banner[n] > 0x20 && banner[n] < 0x7f && n + 1 < size)
                n++;
        memcpy(out, banner, n);
        out[n] = '\0';
}

/* ---- the plan ---- */

__attribute__((format(printf, 3, 4)))
static void set_action(struct hvp_move_plan *m, enum hvp_move_action a, const char *fmt, ...)
{
        va_list ap;

        m->action = a;
        va_start(ap, fmt);
        vsnprintf(m->note, sizeof(m->note), fmt, ap);
        va_end(ap);
}

int hvp_move_plan_compute(const struct hvp_policy *policy, const struct hvp_guest_facts *facts,
                          const struct hvp_decision *compliance, const char *banner, const char *domain_xml,
                          size_t domain_xml_len, struct hvp_move_plan *ret)
{
        struct hvp_move_plan m;
        struct hvp_domain_boot boot;
        int r;

        if (!policy || !facts || !compliance || !ret)
                return hvp_fail(-EINVAL, "hvp_move_plan_compute: missing argument");
        memset(&m, 0, sizeof(m));
        if (compliance->verdict != HVP_VERDICT_REBOOT_REQUIRED) {
                *ret = m;
                return 0;
        }
        snprintf(m.group, sizeof(m.group), "%s", compliance->group);
        snprintf(m.from_baseline, sizeof(m.from_baseline), "%s", compliance->baseline);
        release_of_banner(banner, m.from_release, sizeof(m.from_release));
        hvp_policy_baseline_boot(policy, facts, &m.to);
        snprintf(m.to_baseline, sizeof(m.to_baseline), "%s", m.to.baseline);
        if (!domain_xml) {
                set_action(&m, HVP_MOVE_BLOCKED, "the domain XML is unknown: not moved");
                goto out;
        }
        r = hvp_domain_boot_from_xml(domain_xml, domain_xml_len, &boot);
        if (r < 0) {
                set_action(&m, HVP_MOVE_BLOCKED, "not moved: %s", hvp_last_error());
                goto out;
        }
        if (!boot.host_kernel) {
                set_action(&m, HVP_MOVE_OWN_KERNEL, "boots its own kernel (no <os><kernel>): not moved; reboot it "
                           "into baseline \"%s\"", m.to_baseline);
                goto out;
        }
        snprintf(m.from_kernel, sizeof(m.from_kernel), "%s", boot.kernel);
        if (!m.to.kernel[0]) {
                set_action(&m, HVP_MOVE_NO_IMAGE, "the current baseline \"%s\" names no kernel image: not moved",
                           m.to_baseline);
                goto out;
        }
        /*
         * After a move the domain boots the image; if it still runs an old baseline, the
         * image is not the current baseline's kernel: moving again would loop.
         */
        if (strcmp(boot.kernel, m.to.kernel) == 0) {
                set_action(&m, HVP_MOVE_BLOCKED, "the domain already boots baseline \"%s\"'s image %s, yet runs "
                           "baseline \"%s\": the image is not that baseline's kernel (check the policy)",
                           m.to_baseline, m.to.kernel, m.from_baseline);
                goto out;
        }
        r = hvp_bzimage_release(m.to.kernel, m.to_release, sizeof(m.to_release));
        if (r < 0) {
                set_action(&m, HVP_MOVE_BLOCKED, "baseline \"%s\"'s image: %s", m.to_baseline, hvp_last_error());
                goto out;
        }
        if (m.to.initrd[0] && access(m.to.initrd, R_OK) < 0) {
                set_action(&m, HVP_MOVE_BLOCKED, "baseline \"%s\"'s initrd %s: %s", m.to_baseline, m.to.initrd,
                           strerror(errno));
                goto out;
        }
        if (!m.to.reboot_windows) {
                set_action(&m, HVP_MOVE_WAITS, "no window of group \"%s\" allows reboots (<reboot allow=\"yes\"/>): "
                           "not moved", m.group);
                goto out;
        }
        if (!m.to.reboot_now) {
                set_action(&m, HVP_MOVE_WAITS, "moves at the next reboot window: %s", m.to.reboot_when);
                goto out;
        }
        set_action(&m, HVP_MOVE_NOW, "move-baseline: %s -> %s (baseline %s -> %s), reboot",
                   m.from_release[0] ? m.from_release : "?", m.to_release, m.from_baseline, m.to_baseline);
out:
        *ret = m;
        return 0;
}

/* ---- waiting for a kernel ---- */

static double since(const struct timespec *t0)
{
        struct timespec now;

        clock_gettime(CLOCK_MONOTONIC, &now);
        return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

static void sleep_ms(unsigned ms)
{
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* Sleep about ms in steps, false if cancelled meanwhile. */
static bool wait_a_little(unsigned ms, bool (*cancelled)(void *), void *userdata)
{
        for (unsigned t = 0; t < ms; t += POLL_MS) {
                if (cancelled && cancelled(userdata))
                        return false;
                sleep_ms(POLL_MS);
        }
        return !(cancelled && cancelled(userdata));
}

int hvp_wait_kernel_up(const char *domain, const struct hvp_live_options *live, unsigned timeout_s,
                       bool (*cancelled)(void *userdata), void *userdata, struct hvp_guest **ret_guest,
                       struct hvp_mmu **ret_mmu, struct hvp_kernel **ret_kernel)
{
        struct timespec t0;
        char last[256] = "not attached yet";
        int r;

        if (!domain || !ret_guest || !ret_mmu || !ret_kernel)
                return hvp_fail(-EINVAL, "hvp_wait_kernel_up: missing argument");
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (;;) {
                struct hvp_guest *g = NULL;
                struct hvp_mmu *mmu = NULL;
                struct hvp_kernel *k = NULL;

                r = hvp_guest_open_live(domain, live, &g);
                if (r < 0)
                        return r;       /* gone, shut off again, unreachable: its reason stays */
                r = hvp_linux_attach(g, &mmu, &k, NULL);
                if (r == -ENOMEM || r == -ESRCH) {
                        hvp_guest_free(g);
                        return r;
                }
                if (r == 0) {
                        const struct hvp_symbol *s = hvp_symtab_lookup(k->symtab, "system_state");
                        uint32_t st = 0;

                        /*
                         * A kernel image left in memory by an instance before a reboot says
                         * SYSTEM_RESTART: never taken for a kernel that is up.
                         */
                        if (!s || (hvp_mmu_read(mmu, s->addr, &st, sizeof(st)) == 0 && st == LINUX_SYSTEM_RUNNING)) {
                                *ret_guest = g;
                                *ret_mmu = mmu;
                                *ret_kernel = k;
                                return 0;
                        }
                        snprintf(last, sizeof(last), "system_state %u, not SYSTEM_RUNNING", st);
                } else {
                        snprintf(last, sizeof(last), "%s", hvp_last_error());
                }
                hvp_kernel_free(k);
                hvp_mmu_free(mmu);
                hvp_guest_free(g);
                if (since(&t0) >= (double)timeout_s)
                        return hvp_fail(-ETIMEDOUT, "%s: its kernel was not up within %u s (last: %s)", domain,
                                        timeout_s, last);
                if (!wait_a_little(1000, cancelled, userdata))
                        return hvp_fail(-ECANCELED, "%s: cancelled while waiting for its kernel", domain);
        }
}

/* ---- the move ---- */

static void silent(void *userdata, virErrorPtr err)
{
        (void)userdata;
        (void)err;
}

__attribute__((format(printf, 3, 4)))
static int move_failed(struct hvp_move_outcome *o, int exit_class, const char *fmt, ...)
{
        va_list ap;

        o->exit_class = exit_class;
        va_start(ap, fmt);
        vsnprintf(o->error, sizeof(o->error), fmt, ap);
        va_end(ap);
        hvp_fail(exit_class == HVP_EXIT_BUSY ? -EBUSY : exit_class == HVP_EXIT_REFUSED ? -EPERM : -EIO, "%s",
                 o->error);
        return 0;
}

static int domain_state(virDomainPtr dom)
{
        int state = VIR_DOMAIN_NOSTATE, reason;

        if (virDomainGetState(dom, &state, &reason, 0) < 0)
                return -1;
        return state;
}

/*
 * Shut the domain off: ACPI shutdown, up to timeout_s; then destroy. Cancelled: destroy
 * at once (the start follows: a move is finished quickly, never left half done).
 */
static int power_off(virDomainPtr dom, unsigned timeout_s, const struct hvp_move_request *req,
                     struct hvp_move_outcome *o)
{
        struct timespec t0;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (timeout_s > 0 && virDomainShutdown(dom) == 0) {
                while (domain_state(dom) != VIR_DOMAIN_SHUTOFF && since(&t0) < (double)timeout_s) {
                        if (req->cancelled && req->cancelled(req->userdata))
                                break;
                        sleep_ms(POLL_MS);
                }
        }
        if (domain_state(dom) != VIR_DOMAIN_SHUTOFF) {
                o->destroyed = true;
                if (virDomainDestroy(dom) < 0 && domain_state(dom) != VIR_DOMAIN_SHUTOFF)
                        return hvp_fail(-EIO, "destroy: %s", virGetLastErrorMessage());
        }
        o->shutdown_s = since(&t0);
        return 0;
}

static void audit_move(const char *domain, const struct hvp_move_plan *p, const struct hvp_move_outcome *o)
{
        char reason[2400];      /* the audit line keeps its first 256 bytes */

        if (o->exit_class == HVP_EXIT_OK)
                snprintf(reason, sizeof(reason), "baseline %s -> %s, kernel %s -> %s (%s); %s after %.1f s",
                         p->from_baseline, p->to_baseline, p->from_release, p->to_release, p->to.kernel,
                         o->destroyed ? "destroyed" : "shut down", o->shutdown_s);
        else
                snprintf(reason, sizeof(reason), "baseline %s -> %s: %s", p->from_baseline, p->to_baseline, o->error);
        hvp_audit(&(struct hvp_audit_event){ .action = HVP_AUDIT_MOVE_BASELINE, .domain = domain,
                                             .bundle_id = p->to_baseline, .result = o->exit_class ? -EIO : 0,
                                             .reason = reason, .pause_ms = -1 });
}

/* Everything checked again, under the lock, on the domain as it is now. */
static int recheck(virDomainPtr dom, const struct hvp_move_request *req, struct hvp_move_outcome *o)
{
        const struct hvp_move_plan *p = req->plan;
        struct hvp_guest_facts facts = { 0 };
        struct hvp_baseline_boot now;
        struct hvp_domain_boot boot;
        virDomainJobInfo job;
        char release[HVP_RELEASE_MAX + 1];
        char *xml;
        int r, state = domain_state(dom);

        if (virDomainIsPersistent(dom) != 1)
                return move_failed(o, HVP_EXIT_REFUSED, "a transient domain is not moved (no definition to change)");
        if (state == VIR_DOMAIN_PAUSED)
                return move_failed(o, HVP_EXIT_BUSY, "the domain is paused: not moved");
        if (state != VIR_DOMAIN_RUNNING)
                return move_failed(o, HVP_EXIT_ERROR, "the domain is not running (state %d): not moved", state);
        if (virDomainGetJobInfo(dom, &job) == 0 && job.type != VIR_DOMAIN_JOB_NONE)
                return move_failed(o, HVP_EXIT_BUSY, "a libvirt job runs on the domain: not moved");
        xml = virDomainGetXMLDesc(dom, 0);
        if (!xml)
                return move_failed(o, HVP_EXIT_ERROR, "reading its XML: %s", virGetLastErrorMessage());
        r = hvp_domain_boot_from_xml(xml, strlen(xml), &boot);
        if (r == 0)
                r = hvp_guest_facts_from_domain_xml(xml, strlen(xml), &facts);
        free(xml);
        if (r < 0)
                return move_failed(o, HVP_EXIT_ERROR, "%s", hvp_last_error());
        if (strcmp(boot.kernel, p->from_kernel) != 0)
                return move_failed(o, HVP_EXIT_ERROR, "the domain boots %s now, not %s as planned: not moved",
                                   boot.kernel[0] ? boot.kernel : "its own kernel", p->from_kernel);
        facts.now = time(NULL);
        hvp_policy_baseline_boot(req->policy, &facts, &now);
        if (!now.reboot_now)
                return move_failed(o, HVP_EXIT_REFUSED, "no window of group \"%s\" allows a reboot now: not moved",
                                   now.group);
        if (strcmp(now.kernel, p->to.kernel) != 0 || strcmp(now.initrd, p->to.initrd) != 0)
                return move_failed(o, HVP_EXIT_REFUSED, "the policy's image changed since the plan: not moved");
        if (hvp_bzimage_release(p->to.kernel, release, sizeof(release)) < 0)
                return move_failed(o, HVP_EXIT_ERROR, "%s", hvp_last_error());
        return 0;
}

/* Redefine, restart (rolling back to the old definition if the new image does not start). */
static void redefine_restart(virConnectPtr conn, virDomainPtr dom, const struct hvp_move_request *req,
                             struct hvp_move_outcome *o)
{
        const struct hvp_move_plan *p = req->plan;
        char *old = NULL, *new = NULL;
        size_t new_len;
        virDomainPtr d;
        int r;

        old = virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE);
        if (!old) {
                move_failed(o, HVP_EXIT_ERROR, "reading its definition: %s", virGetLastErrorMessage());
                return;
        }
        r = hvp_domain_xml_set_boot(old, strlen(old), p->to.kernel, p->to.initrd,
                                    p->to.has_cmdline ? p->to.cmdline : NULL, &new, &new_len);
        if (r < 0) {
                move_failed(o, HVP_EXIT_ERROR, "its definition: %s", hvp_last_error());
                goto out;
        }
        d = virDomainDefineXML(conn, new);
        if (!d) {
                move_failed(o, HVP_EXIT_ERROR, "defining it with %s: %s", p->to.kernel, virGetLastErrorMessage());
                goto out;
        }
        virDomainFree(d);
        o->redefined = true;
        hvp_info("%s: defined with %s; restarting it", virDomainGetName(dom), p->to.kernel);
        if (power_off(dom, p->to.shutdown_timeout_s, req, o) < 0) {
                move_failed(o, HVP_EXIT_ERROR, "shutting it off: %s", hvp_last_error());
                goto out;
        }
        if (virDomainCreate(dom) == 0) {
                o->restarted = true;
                goto out;
        }
        move_failed(o, HVP_EXIT_ERROR, "starting it with %s: %s", p->to.kernel, virGetLastErrorMessage());
        /* the old definition back, and the domain running it: never left shut off by a move */
        d = virDomainDefineXML(conn, old);
        if (d) {
                virDomainFree(d);
                o->redefined = false;
                o->rolled_back = true;
        }
        if (virDomainCreate(dom) == 0) {
                o->restarted = true;
                snprintf(o->error + strlen(o->error), sizeof(o->error) - strlen(o->error),
                         "; %s, and the domain started again", o->rolled_back ? "the old definition restored"
                                                                              : "the old definition NOT restored");
        } else {
                snprintf(o->error + strlen(o->error), sizeof(o->error) - strlen(o->error),
                         "; the domain is SHUT OFF (starting it again failed: %s)", virGetLastErrorMessage());
        }
out:
        free(new);
        free(old);
}

/* The new kernel: up, and in the current baseline; then the sync. */
static void after_start(const struct hvp_move_request *req, const char *name, struct hvp_move_outcome *o)
{
        const struct hvp_move_plan *p = req->plan;
        struct hvp_applied_series *applied = NULL;
        struct hvp_guest_facts facts;
        struct hvp_decision d;
        struct hvp_guest *g = NULL;
        struct hvp_mmu *mmu = NULL;
        struct hvp_kernel *k = NULL;
        struct timespec t0;
        int r;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        r = hvp_wait_kernel_up(name, req->live, req->boot_timeout_s ? req->boot_timeout_s
                                                                     : HVP_MOVE_DEFAULT_BOOT_TIMEOUT_S,
                               req->cancelled, req->userdata, &g, &mmu, &k);
        if (r < 0) {
                move_failed(o, HVP_EXIT_ERROR, "restarted with %s, but: %s", p->to.kernel, hvp_last_error());
                return;
        }
        o->kernel_up = true;
        o->kernel_up_s = since(&t0);
        snprintf(o->banner, sizeof(o->banner), "%s", k->banner);
        r = hvp_guest_facts_gather(g, mmu, k, NULL, o->build_id, &applied, &facts);
        free(applied);
        if (r < 0) {
                move_failed(o, HVP_EXIT_ERROR, "its facts after the restart: %s", hvp_last_error());
                goto out;
        }
        hvp_policy_assess(req->policy, &facts, &d);
        o->in_baseline = d.verdict != HVP_VERDICT_UNMANAGED && d.verdict != HVP_VERDICT_REBOOT_REQUIRED &&
                         strcmp(d.baseline, p->to_baseline) == 0;
        if (!o->in_baseline)
                move_failed(o, HVP_EXIT_ERROR, "the kernel now running (build id %s) is not in the current baseline "
                            "\"%s\" (%s): %s is not that baseline's kernel", o->build_id, p->to_baseline,
                            hvp_verdict_name(d.verdict), p->to.kernel);
        hvp_info("%s: kernel up after %.1f s: %s", name, o->kernel_up_s, k->banner);
        if (req->catalog &&
            hvp_op_sync_ex(g, mmu, k, req->state_dir, req->policy, req->catalog,
                           &(struct hvp_sync_options){ .health_seconds = req->health_seconds,
                                                       .health_stop = req->cancelled,
                                                       .health_userdata = req->userdata },
                           &o->sync) < 0) {
                if (!o->exit_class)
                        move_failed(o, HVP_EXIT_ERROR, "moved, but the sync after it: %s", hvp_last_error());
        }
out:
        hvp_kernel_free(k);
        hvp_mmu_free(mmu);
        hvp_guest_free(g);
}

int hvp_op_move_baseline(const struct hvp_move_request *req, struct hvp_move_outcome *ret)
{
        const char *uri;
        virConnectPtr conn = NULL;
        virDomainPtr dom = NULL;
        char uuid[VIR_UUID_STRING_BUFLEN], name[HVP_DOMAIN_NAME_MAX + 1];
        int lock = -1, r;

        if (!req || !ret || !req->domain || !req->plan || !req->policy)
                return hvp_fail(-EINVAL, "hvp_op_move_baseline: missing argument");
        memset(ret, 0, sizeof(*ret));
        if (req->plan->action != HVP_MOVE_NOW) {
                move_failed(ret, HVP_EXIT_ERROR, "nothing to move (%s)", hvp_move_action_name(req->plan->action));
                return 0;
        }
        uri = req->live && req->live->uri ? req->live->uri : "qemu:///system";
        virSetErrorFunc(NULL, silent);
        conn = virConnectOpen(uri);
        if (!conn) {
                move_failed(ret, HVP_EXIT_ERROR, "cannot connect to %s: %s", uri, virGetLastErrorMessage());
                return 0;
        }
        dom = virDomainLookupByName(conn, req->domain);
        if (!dom)
                dom = virDomainLookupByUUIDString(conn, req->domain);
        if (!dom) {
                move_failed(ret, HVP_EXIT_ERROR, "no domain %s", req->domain);
                goto out;
        }
        snprintf(name, sizeof(name), "%s", virDomainGetName(dom) ? virDomainGetName(dom) : req->domain);
        if (virDomainGetUUIDString(dom, uuid) < 0) {
                move_failed(ret, HVP_EXIT_ERROR, "its UUID: %s", virGetLastErrorMessage());
                goto out;
        }
        r = hvp_domain_lock(req->state_dir ? req->state_dir : HVP_STATE_DIR, uuid, &lock);
        if (r < 0) {
                move_failed(ret, r == -EBUSY ? HVP_EXIT_BUSY : hvp_exit_class(r), "lock: %s", hvp_last_error());
                goto out;
        }
        recheck(dom, req, ret);
        if (ret->exit_class)
                goto out;
        redefine_restart(conn, dom, req, ret);
        audit_move(name, req->plan, ret);
        hvp_domain_unlock(lock);
        lock = -1;
        if (ret->exit_class)
                goto out;
        after_start(req, name, ret);
out:
        if (lock >= 0)
                hvp_domain_unlock(lock);
        if (dom)
                virDomainFree(dom);
        virConnectClose(conn);
        return 0;
}

void hvp_move_outcome_clear(struct hvp_move_outcome *o)
{
        if (!o)
                return;
        hvp_sync_result_free(o->sync);
        o->sync = NULL;
}

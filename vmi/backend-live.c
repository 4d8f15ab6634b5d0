/*
 * The live backend: a running libvirt/QEMU domain. Only its files (this one and
 * the live-*.c parts, see vmi/live.h) see libvirt.
 *
 * Registers and the RAM map come from QEMU's human monitor through libvirt's
 * passthrough; memory is read and written in the QEMU process itself at the host
 * address QEMU's gpa2hva gives for each RAM range. Writes take either that direct
 * path or QEMU's gdbstub, which goes through QEMU's own memory API and so
 * invalidates TCG's translated blocks and marks pages dirty.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>

#include "common/error.h"
#include "common/util.h"
#include "vmi/live.h"
#include "vmi/hmp.h"

/* Timing probes of the pause window (debug log): time since the previous probe. */
double live_probe(double since, const char *what)
{
        double now = hvp_now_ms();

        if (since > 0)
                hvp_debug("live: %s %.3f ms", what, now - since);
        return now;
}

/* ------------------------------------------------------- pause / resume */

static int live_resume(void *be);

/*
 * A stop and a continue through the stub reach libvirt as QEMU events, which libvirt
 * takes in on its own time: right after the detach it may still say "paused", and the
 * next pause (the next attempt of a window, or the next hvpatch) would take the guest
 * for one paused by someone else. So before the next pause and after the window
 * (outside pause_ms), wait until libvirt says it runs, bounded.
 */
#define STUB_RESUME_SEEN_MS 3000

static void wait_resume_seen(struct live_be *b)
{
        double t0 = hvp_now_ms();
        int state = -1, reason = 0;

        b->stub_resumed = false;
        /* a stop through the stub shows as reason "unknown"; any other pause is not ours */
        while (live_domain_state(b, &state, &reason) == 0 && state == VIR_DOMAIN_PAUSED &&
               reason == VIR_DOMAIN_PAUSED_UNKNOWN && hvp_now_ms() - t0 < STUB_RESUME_SEEN_MS)
                (void)nanosleep(&(struct timespec){ .tv_nsec = 2000000 }, NULL);
        if (state == VIR_DOMAIN_PAUSED && reason == VIR_DOMAIN_PAUSED_UNKNOWN)
                hvp_warn("domain %s: libvirt still says paused (reason: %s) %d ms after the gdbstub continued it",
                         b->name, live_paused_reason(reason), STUB_RESUME_SEEN_MS);
        else
                hvp_debug("live: libvirt saw the resume after %.3f ms", hvp_now_ms() - t0);
}

static int live_pause(void *be)
{
        struct live_be *b = be;
        int state, reason, r;
        double t = live_probe(0, NULL);

        if (b->paused)
                return 0;
        if (b->stub_resumed)            /* a retry: our own continue may not have reached libvirt */
                wait_resume_seen(b);
        r = live_domain_state(b, &state, &reason);
        if (r < 0)
                return r;
        t = live_probe(t, "pause: domain state");
        if (state == VIR_DOMAIN_PAUSED)
                return hvp_fail(-EALREADY, "domain %s is already paused (reason: %s); hvpatch only resumes "
                                "what it paused", b->name, live_paused_reason(reason));
        if (state != VIR_DOMAIN_RUNNING)
                return hvp_fail(-ESRCH, "domain %s is not running (state %s)", b->name, live_state_name(state));
        if (b->gdb_listening && !b->gdb_open) {
                /* Fast path, prepared before the window: connecting is the pause. */
                r = live_gdb_connect(b);
                if (r < 0)
                        return r;
                b->paused = b->paused_by_stub = true;
                t = live_probe(t, "pause: gdbstub connect (the stop)");
        } else {
                if (virDomainSuspend(b->dom) < 0)
                        return live_fail(-EIO, "cannot pause the domain");
                b->paused = true;
                t = live_probe(t, "pause: virDomainSuspend");
        }
        /*
         * Direct writes bypass QEMU, so a migration or snapshot job would miss them:
         * checked once paused, when no job can start writing pages behind our back.
         * Gdbstub writes go through QEMU's memory API, which marks the pages dirty:
         * for them the check made before the window (live_prepare) is enough, and
         * it stays out of the pause.
         */
        if (b->paused_by_stub)
                return 0;
        r = live_job_check(b);
        live_probe(t, "pause: job check");
        if (r < 0) {
                (void)live_resume(b);
                return r;
        }
        return 0;
}

/* End a pause taken by connecting to the stub: detach, which continues the VM. */
static int resume_from_stub(struct live_be *b)
{
        double t = live_probe(0, NULL);
        int r = hvp_gdb_detach(&b->gdb);

        live_probe(t, "resume: gdbstub detach");
        hvp_gdb_close(&b->gdb);
        b->gdb_open = false;
        b->paused_by_stub = false;
        if (r < 0) {
                /* The careful way round: no stub, then libvirt's resume. */
                hvp_warn("gdbstub detach failed (%s); resuming through libvirt", hvp_last_error());
                (void)live_gdb_unlisten(b);
                if (virDomainResume(b->dom) < 0)
                        return live_fail(-EIO, "cannot resume the domain");
        }
        b->paused = false;
        b->stub_resumed = true;
        return 0;
}

static int live_resume(void *be)
{
        struct live_be *b = be;
        int state, reason, r, q;

        if (b->paused && b->paused_by_stub)
                return resume_from_stub(b);
        /* The stub goes first: the guest must not run with a debugger attached. */
        r = live_gdb_session_close(b);
        if (!b->paused)
                return r;
        q = live_domain_state(b, &state, &reason);
        if (q == 0 && state == VIR_DOMAIN_RUNNING) {
                b->paused = false;
                q = hvp_fail(-ESTALE, "domain %s was resumed by someone else during the pause window", b->name);
        } else if (q == 0) {
                if (virDomainResume(b->dom) < 0)
                        q = live_fail(-EIO, "cannot resume the domain");
                else
                        b->paused = false;
        }
        return q < 0 ? q : r;
}

/*
 * Before a pause window: on the gdbstub path, check for libvirt jobs and have the
 * stub listen already, so that the window holds neither monitor round trip.
 */
static int live_prepare(void *be)
{
        struct live_be *b = be;
        int r;

        if (b->path != HVP_WRITE_GDBSTUB || b->paused)
                return 0;
        r = live_job_check(b);
        if (r < 0)
                return r;
        return live_gdb_listen(b);
}

/* After the window, with the guest running again: stop the stub listening. */
static int live_release(void *be)
{
        struct live_be *b = be;
        int r;

        if (b->gdb_open)
                return 0;
        r = live_gdb_unlisten(b);
        if (b->stub_resumed)
                wait_resume_seen(b);
        return r;
}

/*
 * Recovery: a dead hvpatch may have left the domain paused, and its stub listening
 * (paused or not). Its stub has nobody connected now: stopping it does not resume
 * the VM; its socket folder is removed too.
 */
static int live_adopt_pause(void *be)
{
        struct live_be *b = be;
        _cleanup_free_ char *out = NULL;
        char dir[sizeof(b->gdb_dir)], sock[sizeof(b->gdb_dir) + 16];
        int state, reason, r;

        if (b->gdb_listening || b->paused)
                return b->paused ? 1 : 0;
        if (live_stale_stub_dir(b, dir, sizeof(dir))) {
                r = live_monitor(b, "gdbserver none", true, &out);
                if (r < 0)
                        return r;
                snprintf(sock, sizeof(sock), "%s/gdb.sock", dir);
                (void)unlink(sock);
                (void)rmdir(dir);
                hvp_info("closed the gdbstub a dead hvpatch left listening (%s)", dir);
        }
        r = live_domain_state(b, &state, &reason);
        if (r < 0)
                return r;
        if (state != VIR_DOMAIN_PAUSED)
                return 0;
        b->paused = true;       /* the ordinary resume (libvirt's) ends it */
        return 1;
}

static int live_write(void *be, uint64_t gpa, const void *buf, size_t len)
{
        struct live_be *b = be;
        int r, q;

        if (b->ro_area.fd >= 0 && gpa >= b->ro_area.gpa && gpa - b->ro_area.gpa < b->ro_area.size)
                return hvp_area_ro_write(&b->ro_area, gpa, buf, len);     /* QEMU maps it read-only */
        if (b->path == HVP_WRITE_DIRECT)
                return live_direct_write(b, gpa, buf, len);
        if (b->paused)
                return live_gdb_write(b, gpa, buf, len);
        if (b->gdb_listening)
                return hvp_fail(-EINVAL, "gdbstub write outside the prepared pause window");
        /* Outside a pause window: one of our own, so the stub never stops a running VM. */
        r = live_pause(b);
        if (r < 0)
                return r;
        r = live_gdb_write(b, gpa, buf, len);
        q = live_resume(b);
        return r < 0 ? r : q;
}

/* ------------------------------------------------------------ registers */

/*
 * Inside a window the stub paused: RIP, RSP and CS of every vCPU through the stub
 * (two packets each, well under a millisecond) instead of a monitor round trip
 * (info registers: 5-7 ms per vCPU under TCG). The other registers keep the values
 * of the last full read: nothing inside the window needs them.
 */
static int gdb_read_regs(struct live_be *b, struct hvp_vcpu_regs *regs, unsigned max, unsigned *ret_n)
{
        unsigned n = HVP_MIN(b->nr_vcpus, max);

        for (unsigned v = 0; v < n; v++) {
                uint64_t rip, rsp, cs;
                int r = hvp_gdb_vcpu_regs(&b->gdb, v, &rip, &rsp, &cs);

                if (r < 0)
                        return r;
                regs[v].rip = rip;
                regs[v].rsp = rsp;
                regs[v].cs_sel = cs;
        }
        *ret_n = n;
        return 0;
}

static int live_read_regs(void *be, struct hvp_vcpu_regs *regs, unsigned max, unsigned *ret_n)
{
        struct live_be *b = be;
        _cleanup_free_ char *out = NULL;
        int r;

        if (b->gdb_open && b->nr_vcpus) {
                double t = live_probe(0, NULL);

                r = gdb_read_regs(b, regs, max, ret_n);
                live_probe(t, "registers through the gdbstub");
                if (r == 0)
                        return 0;
                hvp_debug("registers through the gdbstub: %s; asking the monitor", hvp_last_error());
        }
        r = live_monitor(be, "info registers -a", true, &out);
        if (r < 0)
                return r;
        r = hvp_hmp_parse_registers(out, regs, max, ret_n);
        if (r == 0)
                b->nr_vcpus = *ret_n;
        return r;
}

/* ----------------------------------------------------------- open/close */

static void live_close(void *be)
{
        struct live_be *b = be;

        if (!b)
                return;
        if (b->dom) {
                if (b->paused || b->gdb_open)
                        (void)live_resume(b);
                (void)live_gdb_unlisten(b);
                if (b->stub_resumed)
                        wait_resume_seen(b);
                virDomainFree(b->dom);
        }
        live_gdb_dir_remove(b);
        if (b->conn)
                virConnectClose(b->conn);
        if (b->pidfd >= 0)
                close(b->pidfd);
        if (b->memfd >= 0)
                close(b->memfd);
        hvp_area_ro_close(&b->ro_area);
        free(b->xml);
        free(b->xfer);
        free(b);
}

/* ------------------------------------------------- live-only answers */

static int live_area_device(void *be, uint64_t *ret_gpa, uint64_t *ret_size)
{
        struct live_be *b = be;

        if (!b->area_size)
                return hvp_fail(-ENODEV, "no patch-area device in the domain (add one with 'hvpatch area add %s'; "
                                         "it takes effect at the domain's next boot)", b->name);
        *ret_gpa = b->area_gpa;
        *ret_size = b->area_size;
        return 0;
}

static const char *live_domain_xml(void *be)
{
        struct live_be *b = be;

        return b->xml;
}

static const char *live_domain_type(void *be)
{
        struct live_be *b = be;

        return b->type;
}

static enum hvp_write_path live_write_path(void *be)
{
        struct live_be *b = be;

        return b->path;
}

static int live_check_idle(void *be)
{
        return live_job_check(be);
}

static int live_get_metadata(void *be, const char *ns, char **ret_xml)
{
        struct live_be *b = be;
        char *xml = virDomainGetMetadata(b->dom, VIR_DOMAIN_METADATA_ELEMENT, ns, VIR_DOMAIN_AFFECT_LIVE);

        if (!xml) {
                virErrorPtr err = virGetLastError();

                if (err && err->code == VIR_ERR_NO_DOMAIN_METADATA) {
                        *ret_xml = NULL;
                        return 0;
                }
                return live_fail(-EIO, "reading the domain's live metadata");
        }
        *ret_xml = xml;
        return 0;
}

static int live_set_metadata(void *be, const char *ns, const char *key, const char *xml)
{
        struct live_be *b = be;

        /* Live only: the next boot of the domain starts without what this boot held. */
        if (virDomainSetMetadata(b->dom, VIR_DOMAIN_METADATA_ELEMENT, xml, xml ? key : NULL, ns,
                                 VIR_DOMAIN_AFFECT_LIVE) < 0)
                return live_fail(-EIO, "writing the domain's live metadata");
        return 0;
}

static int live_run_state(void *be, struct hvp_run_state *ret)
{
        struct live_be *b = be;
        int state, reason, r;

        r = live_domain_state(b, &state, &reason);
        if (r < 0)
                return r;
        live_describe_state(state, reason, ret);
        return 0;
}

static const struct hvp_backend_ops live_ops = {
        .name = "live",
        .read_phys = live_read,
        .read_phys_v = live_read_v,
        .write_phys = live_write,
        .pause = live_pause,
        .resume = live_resume,
        .adopt_pause = live_adopt_pause,
        .prepare_window = live_prepare,
        .release_window = live_release,
        .read_regs = live_read_regs,
        .close = live_close,
        .area_device = live_area_device,
        .check_idle = live_check_idle,
        .domain_xml = live_domain_xml,
        .domain_type = live_domain_type,
        .write_path = live_write_path,
        .get_metadata = live_get_metadata,
        .set_metadata = live_set_metadata,
        .run_state = live_run_state,
};

static int open_domain(struct live_be *b, const char *domain, const struct hvp_live_options *opts)
{
        const char *uri = opts && opts->uri ? opts->uri : "qemu:///system";
        const char *type, *name;
        int state, reason, r;

        b->conn = virConnectOpen(uri);
        if (!b->conn) {
                virErrorPtr err = virGetLastError();

                return live_fail(err && err->code == VIR_ERR_AUTH_FAILED ? -EACCES : -EIO, uri);
        }
        type = virConnectGetType(b->conn);
        if (!type || strcasecmp(type, "QEMU") != 0)
                return hvp_fail(-ENOTSUP, "%s is a %s connection, not QEMU", uri, type ? type : "unknown");
        r = live_lookup_domain(b, domain);
        if (r < 0)
                return r;
        name = virDomainGetName(b->dom);
        if (!name || strlen(name) >= sizeof(b->name) || virDomainGetUUIDString(b->dom, b->uuid) < 0)
                return live_fail(-EIO, "reading the domain's name and UUID");
        strcpy(b->name, name);
        r = live_domain_state(b, &state, &reason);
        if (r < 0)
                return r;
        if (virDomainIsActive(b->dom) != 1 || (state != VIR_DOMAIN_RUNNING && state != VIR_DOMAIN_PAUSED))
                return hvp_fail(-ESRCH, "domain %s is not running (state %s)", b->name, live_state_name(state));
        r = live_read_domain_xml(b);
        if (r < 0)
                return r;
        b->path = opts ? opts->write_path : HVP_WRITE_AUTO;
        if (b->path == HVP_WRITE_AUTO)
                b->path = strcmp(b->type, "kvm") == 0 ? HVP_WRITE_DIRECT : HVP_WRITE_GDBSTUB;
        if (b->path == HVP_WRITE_DIRECT && strcmp(b->type, "kvm") != 0)
                hvp_warn("%s runs under TCG (type '%s'): direct writes are not seen by code QEMU already "
                         "translated", b->name, b->type);
        return live_find_qemu_process(b);
}

int hvp_guest_open_live(const char *domain, const struct hvp_live_options *opts, struct hvp_guest **ret_guest)
{
        struct hvp_ram_range ranges[HVP_MAX_RAM_RANGES];
        struct hvp_guest *g;
        struct live_be *b;
        char name[sizeof(b->name)];
        int vcpus, r;

        if (!domain || !*domain)
                return hvp_fail(-EINVAL, "no domain given");
        live_libvirt_init();
        b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        b->pidfd = b->memfd = b->ro_area.fd = -1;
        b->gdb.fd = -1;
        b->xfer = malloc(sizeof(*b->xfer));
        if (!b->xfer) {
                free(b);
                return -ENOMEM;
        }
        r = open_domain(b, domain, opts);
        if (r >= 0)
                r = live_read_ram_map(b, ranges);
        if (r < 0) {
                live_close(b);
                return r;
        }
        strcpy(name, b->name);
        vcpus = virDomainGetVcpusFlags(b->dom, VIR_DOMAIN_AFFECT_LIVE);
        r = hvp_guest_new(&live_ops, b, name, ranges, (size_t)r, NULL, 0, &g);
        if (r < 0)
                return r;
        r = hvp_guest_set_uuid(g, b->uuid);
        if (r < 0) {
                hvp_guest_free(g);
                return r;
        }
        if (vcpus > 0 && (unsigned)vcpus != hvp_guest_vcpu_count(g)) {
                r = hvp_fail(-EIO, "libvirt says %d vCPUs, info registers shows %u", vcpus,
                             hvp_guest_vcpu_count(g));
                hvp_guest_free(g);
                return r;
        }
        if (b->ro_area.fd >= 0)
                hvp_guest_set_append_only(g, b->ro_area.gpa, b->ro_area.size, HVP_AREA_RO_FILLER);
        *ret_guest = g;
        return 0;
}

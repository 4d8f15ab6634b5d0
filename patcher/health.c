/*
 * The health gate (include/hvpatch/health.h): after an apply, poll libvirt's state of
 * the domain, the guest kernel's taint flags and the patch itself until the time is up
 * or something is wrong; on a failure quote the guest kernel's new warning lines.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hvpatch/btf.h>
#include <hvpatch/health.h>
#include <hvpatch/kernel.h>
#include <hvpatch/linux.h>
#include <hvpatch/ops.h>
#include <hvpatch/paging.h>

#include "common/error.h"
#include "common/util.h"

/* kernel/panic.c's taint_flags[] (6.1; J is 6.15's): the letter when set, and a name. */
static const struct {
        char letter;
        const char *name;
} taints[] = {
        [0] = { 'P', "proprietary-module" }, [1] = { 'F', "forced-module" },  [2] = { 'S', "cpu-out-of-spec" },
        [3] = { 'R', "forced-rmmod" },       [4] = { 'M', "machine-check" },  [5] = { 'B', "bad-page" },
        [6] = { 'U', "user" },               [7] = { 'D', "die" },            [8] = { 'A', "overridden-acpi-table" },
        [9] = { 'W', "warn" },               [10] = { 'C', "staging" },       [11] = { 'I', "firmware-workaround" },
        [12] = { 'O', "out-of-tree-module" }, [13] = { 'E', "unsigned-module" }, [14] = { 'L', "soft-lockup" },
        [15] = { 'K', "livepatch" },         [16] = { 'X', "aux" },           [17] = { 'T', "randstruct" },
        [18] = { 'N', "test" },              [19] = { 'J', "fwctl" },
};

char hvp_taint_letter(unsigned bit)
{
        return bit < HVP_ARRAY_SIZE(taints) ? taints[bit].letter : '?';
}

const char *hvp_taint_name(unsigned bit)
{
        return bit < HVP_ARRAY_SIZE(taints) ? taints[bit].name : NULL;
}

char *hvp_taint_names(uint64_t mask, char *buf, size_t size)
{
        size_t len = 0;

        if (!buf || !size)
                return buf;
        buf[0] = '\0';
        if (!mask) {
                snprintf(buf, size, "none");
                return buf;
        }
        for (unsigned bit = 0; bit < 64; bit++) {
                int n;

                if (!(mask & (1ull << bit)))
                        continue;
                if (hvp_taint_name(bit))
                        n = snprintf(buf + len, size - len, "%s%c (%s)", len ? ", " : "", hvp_taint_letter(bit),
                                     hvp_taint_name(bit));
                else
                        n = snprintf(buf + len, size - len, "%sbit %u", len ? ", " : "", bit);
                if (n < 0 || (size_t)n >= size - len) {
                        buf[size - 1] = '\0';
                        break;
                }
                len += (size_t)n;
        }
        return buf;
}

int hvp_linux_taint(struct hvp_mmu *mmu, const struct hvp_kernel *k, uint64_t *ret)
{
        const struct hvp_symbol *s;
        uint64_t v;
        int r;

        if (!mmu || !k || !k->symtab || !ret)
                return hvp_fail(-EINVAL, "hvp_linux_taint: bad arguments");
        s = hvp_symtab_lookup(k->symtab, "tainted_mask");
        if (!s)
                return hvp_fail(-ENOENT, "the guest kernel has no tainted_mask symbol (CONFIG_KALLSYMS_ALL off?)");
        /* unsigned long, naturally aligned: one 8-byte read sees one value */
        r = hvp_mmu_read(mmu, s->addr, &v, sizeof(v));
        if (r < 0)
                return hvp_fail_context(r, "reading tainted_mask at 0x%llx", (unsigned long long)s->addr);
        *ret = hvp_le64(&v);
        return 0;
}

const char *hvp_health_result_name(enum hvp_health_result r)
{
        switch (r) {
        case HVP_HEALTH_NOT_RUN:
                return "not-run";
        case HVP_HEALTH_PASS:
                return "pass";
        case HVP_HEALTH_FAIL:
                return "fail";
        case HVP_HEALTH_INTERRUPTED:
                return "interrupted";
        }
        return "?";
}

struct hvp_health_watch {
        struct hvp_guest *g;
        struct hvp_mmu *mmu;
        const struct hvp_kernel *k;
        bool have_taint;
        uint64_t taint;
        struct hvp_btf *btf;            /* NULL: no kernel log */
        uint64_t prb;
        bool have_seq;
        uint64_t next_seq;              /* records from this sequence number on are new */
        char log_note[160];
        bool pvpanic;
};

static bool has_panic_device(const char *xml)
{
        /* <devices><panic model='isa'|'pvpanic'|'hyperv'|...>: the guest can report a panic */
        return xml && strstr(xml, "<panic ") != NULL;
}

int hvp_health_begin(struct hvp_guest *g, struct hvp_mmu *mmu, const struct hvp_kernel *k,
                     struct hvp_health_watch **ret)
{
        struct hvp_health_watch *w;
        const struct hvp_symbol *prb;
        struct hvp_klog *log = NULL;
        struct hvp_kmem km;
        int r;

        if (!g || !mmu || !k || !ret)
                return hvp_fail(-EINVAL, "hvp_health_begin: no guest");
        w = calloc(1, sizeof(*w));
        if (!w)
                return hvp_fail(-ENOMEM, "out of memory");
        w->g = g;
        w->mmu = mmu;
        w->k = k;
        w->pvpanic = has_panic_device(hvp_guest_domain_xml(g));
        r = hvp_linux_taint(mmu, k, &w->taint);
        w->have_taint = r == 0;
        if (r < 0)
                hvp_warn("%s: health gate without taint flags: %s", hvp_guest_name(g), hvp_last_error());
        /* The kernel log's last record now: what comes after it is new. */
        prb = hvp_symtab_lookup(k->symtab, "prb");
        hvp_kmem_from_mmu(mmu, &km);
        if (!prb) {
                snprintf(w->log_note, sizeof(w->log_note), "no printk ring buffer (kernel before 5.10)");
        } else if (hvp_btf_load(&km, k, &w->btf) < 0) {
                w->btf = NULL;
                snprintf(w->log_note, sizeof(w->log_note), "kernel log not readable: %.120s", hvp_last_error());
        } else {
                w->prb = prb->addr;
                if (hvp_linux_klog(&km, w->btf, w->prb, &log) < 0) {
                        snprintf(w->log_note, sizeof(w->log_note), "kernel log not readable: %.120s",
                                 hvp_last_error());
                } else {
                        w->have_seq = true;
                        w->next_seq = log->count ? log->records[log->count - 1].seq + 1 : 0;
                }
                hvp_klog_free(log);
        }
        if (w->log_note[0])
                hvp_info("%s: health gate: %s", hvp_guest_name(g), w->log_note);
        *ret = w;
        return 0;
}

void hvp_health_end(struct hvp_health_watch *w)
{
        if (!w)
                return;
        hvp_btf_free(w->btf);
        free(w);
}

static double now_s(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(unsigned ms)
{
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

__attribute__((format(printf, 3, 4)))
static void fail(struct hvp_health_report *rep, const char *kind, const char *fmt, ...)
{
        va_list ap;

        rep->result = HVP_HEALTH_FAIL;
        snprintf(rep->kind, sizeof(rep->kind), "%s", kind);
        va_start(ap, fmt);
        vsnprintf(rep->reason, sizeof(rep->reason), fmt, ap);
        va_end(ap);
}

/* Copy one line of a record, control characters as \xNN, bounded. */
static void quote_line(char *out, size_t size, const char *p, size_t len)
{
        size_t o = 0;

        for (size_t i = 0; i < len && o + 5 < size; i++) {
                unsigned char c = (unsigned char)p[i];

                if (c < 0x20 || c == 0x7f)
                        o += (size_t)snprintf(out + o, size - o, "\\x%02x", c);
                else
                        out[o++] = (char)c;
        }
        out[o] = '\0';
}

/* The kernel's warning-level lines (level <= KERN_WARNING) logged since begin, oldest first. */
static void quote_log(struct hvp_health_watch *w, struct hvp_health_report *rep)
{
        struct hvp_klog *log = NULL;
        struct hvp_kmem km;

        if (!w->btf || !w->have_seq) {
                snprintf(rep->log_note, sizeof(rep->log_note), "%s", w->log_note);
                return;
        }
        hvp_kmem_from_mmu(w->mmu, &km);
        if (hvp_linux_klog(&km, w->btf, w->prb, &log) < 0) {
                snprintf(rep->log_note, sizeof(rep->log_note), "kernel log not readable: %.120s", hvp_last_error());
                return;
        }
        for (size_t i = 0; i < log->count && rep->n_lines < HVP_HEALTH_MAX_LINES; i++) {
                const struct hvp_klog_record *rec = &log->records[i];
                const char *p = rec->text, *end = rec->text + rec->text_len;

                if (rec->seq < w->next_seq || rec->level > 4)
                        continue;
                while (p < end && rep->n_lines < HVP_HEALTH_MAX_LINES) {
                        const char *nl = memchr(p, '\n', (size_t)(end - p));
                        const char *e = nl ? nl : end;

                        quote_line(rep->lines[rep->n_lines++], HVP_HEALTH_LINE_MAX, p, (size_t)(e - p));
                        p = nl ? nl + 1 : end;
                }
        }
        if (!rep->n_lines)
                snprintf(rep->log_note, sizeof(rep->log_note), "no new warning-level line in the kernel log");
        hvp_klog_free(log);
}

/*
 * The first line of a WARN or oops report (lib/bug.c, kernel/panic.c, arch/x86/kernel/dumpstack.c,
 * mm/): what the kernel logs even when the taint flag was set before (a second WARN adds no flag).
 */
static const char *const report_starts[] = {
        "WARNING: CPU:", "Oops:", "BUG: ", "general protection fault", "kernel BUG at", "Kernel panic",
};

static bool report_line(const char *p, size_t len)
{
        for (size_t i = 0; i < HVP_ARRAY_SIZE(report_starts); i++) {
                size_t n = strlen(report_starts[i]);

                if (len >= n && memcmp(p, report_starts[i], n) == 0)
                        return true;
        }
        return false;
}

/* A report line in the kernel log since begin: failure (kind "log"). The log is read whole, bounded. */
static bool log_check(struct hvp_health_watch *w, struct hvp_health_report *rep)
{
        struct hvp_klog *log = NULL;
        struct hvp_kmem km;
        bool found = false;

        if (!w->btf || !w->have_seq)
                return false;
        hvp_kmem_from_mmu(w->mmu, &km);
        if (hvp_linux_klog(&km, w->btf, w->prb, &log) < 0)
                return false;   /* torn by a writer: the next look reads it again */
        for (size_t i = 0; i < log->count && !found; i++) {
                const struct hvp_klog_record *rec = &log->records[i];
                const char *p = rec->text, *end = rec->text + rec->text_len;

                if (rec->seq < w->next_seq)
                        continue;
                while (p < end && !found) {
                        const char *nl = memchr(p, '\n', (size_t)(end - p));
                        const char *e = nl ? nl : end;

                        if (report_line(p, (size_t)(e - p))) {
                                char line[HVP_HEALTH_LINE_MAX];

                                quote_line(line, sizeof(line), p, (size_t)(e - p));
                                fail(rep, "log", "the guest kernel logged \"%.200s\"", line);
                                found = true;
                        }
                        p = nl ? nl + 1 : end;
                }
        }
        hvp_klog_free(log);
        return found;
}

/* One look at the guest; fills rep and returns true on a failure. */
static bool poll_once(struct hvp_health_watch *w, const struct hvp_plan *p, struct hvp_health_report *rep)
{
        struct hvp_run_state rs;
        uint64_t taint;
        int r;

        r = hvp_guest_run_state(w->g, &rs);
        if (r == 0) {
                snprintf(rep->state, sizeof(rep->state), "%s", rs.state);
                snprintf(rep->state_reason, sizeof(rep->state_reason), "%s", rs.reason);
                if (rs.failure) {
                        bool crashed = rs.kind == HVP_RUN_CRASHED ||
                                       (rs.kind == HVP_RUN_SHUTOFF && strcmp(rs.reason, "crashed") == 0);
                        const char *kind = crashed ? "crashed" : rs.kind == HVP_RUN_SHUTOFF ? "shutoff" : "paused";

                        fail(rep, kind, "the domain is %s (%s)%s", rs.state, rs.reason,
                             crashed && w->pvpanic ? ": the guest reported a panic (pvpanic)" : "");
                        return true;
                }
                if (rs.kind == HVP_RUN_SHUTOFF) {
                        rep->result = HVP_HEALTH_INTERRUPTED;
                        snprintf(rep->reason, sizeof(rep->reason), "the domain was shut off (%s) during the watch",
                                 rs.reason);
                        return true;
                }
        } else if (r != -ENOTSUP) {
                fail(rep, "shutoff", "the domain's state cannot be read (gone?): %s", hvp_last_error());
                return true;
        }
        if (w->have_taint) {
                r = hvp_linux_taint(w->mmu, w->k, &taint);
                if (r < 0) {
                        fail(rep, "unreadable", "%s", hvp_last_error());
                        return true;
                }
                rep->taint_after = taint;
                rep->taint_new = taint & ~w->taint;
                if (rep->taint_new & HVP_TAINT_FAILING) {
                        char names[256];

                        fail(rep, "taint", "the guest kernel set the taint flag%s %s",
                             (rep->taint_new & (rep->taint_new - 1)) ? "s" : "",
                             hvp_taint_names(rep->taint_new, names, sizeof(names)));
                        return true;
                }
        }
        if (log_check(w, rep))
                return true;
        if (p && hvp_patch_state(w->g, w->mmu, w->k, p) == HVP_PATCH_DROPPED) {
                fail(rep, "rebooted", "the guest runs another kernel instance: it rebooted during the watch");
                return true;
        }
        return false;
}

int hvp_health_run(struct hvp_health_watch *w, const struct hvp_plan *p, unsigned seconds,
                   bool (*stop)(void *userdata), void *userdata, struct hvp_health_report *ret)
{
        double t0, end;

        if (!w || !ret || seconds == 0 || seconds > HVP_HEALTH_MAX_SECONDS)
                return hvp_fail(-EINVAL, "hvp_health_run: watch 1 to %u seconds", HVP_HEALTH_MAX_SECONDS);
        memset(ret, 0, sizeof(*ret));
        ret->pvpanic = w->pvpanic;
        ret->taint_known = w->have_taint;
        ret->taint_before = ret->taint_after = w->taint;
        t0 = now_s();
        end = t0 + seconds;
        ret->result = HVP_HEALTH_PASS;
        for (;;) {
                double left;

                ret->polls++;
                if (poll_once(w, p, ret))
                        break;
                left = end - now_s();
                if (left <= 0)
                        break;
                if (stop && stop(userdata)) {
                        ret->result = HVP_HEALTH_INTERRUPTED;
                        snprintf(ret->reason, sizeof(ret->reason), "stopped after %.1f s", now_s() - t0);
                        break;
                }
                sleep_ms((unsigned)HVP_MIN(left * 1000.0 + 1, (double)HVP_HEALTH_POLL_MS));
        }
        ret->seconds = now_s() - t0;
        if (ret->result == HVP_HEALTH_FAIL && w->have_taint) {
                uint64_t taint;

                /* the report may be caught half-way (its lines before add_taint): one more look */
                sleep_ms(HVP_HEALTH_POLL_MS);
                if (hvp_linux_taint(w->mmu, w->k, &taint) == 0) {
                        ret->taint_after = taint;
                        ret->taint_new = taint & ~w->taint;
                }
        }
        if (ret->result == HVP_HEALTH_FAIL) {
                hvp_warn("%s: health gate failed after %.1f s: %s", hvp_guest_name(w->g), ret->seconds, ret->reason);
                quote_log(w, ret);
        } else if (ret->result == HVP_HEALTH_INTERRUPTED) {
                hvp_warn("%s: health gate interrupted after %.1f s: %s", hvp_guest_name(w->g), ret->seconds,
                         ret->reason);
        } else {
                hvp_info("%s: health gate passed (%.1f s, %u looks)", hvp_guest_name(w->g), ret->seconds, ret->polls);
        }
        return 0;
}

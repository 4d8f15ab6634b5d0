/*
 * The live backend's QEMU process: found through libvirt's pid file and checked
 * (its argv names the domain's UUID), its RAM map from the monitor (gpa2hva per RAM
 * block), and its memory read and written with process_vm_readv/writev, falling
 * back to /proc/PID/mem.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/error.h"
#include "common/file.h"
#include "common/util.h"
#include "vmi/live.h"
#include "vmi/hmp.h"

/* The process must be a QEMU started for this domain: argv has "-uuid UUID". */
static int check_qemu_cmdline(struct live_be *b)
{
        char path[64];
        _cleanup_free_ char *buf = NULL;
        const char *argv0, *base;
        size_t n;
        int r;

        snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)b->pid);
        r = hvp_read_file_bounded(path, MAX_CMDLINE, (void **)&buf, &n);
        if (r < 0)
                return hvp_fail_context(r == -ENOENT ? -ESRCH : -EACCES, "QEMU process %d of %s", (int)b->pid,
                                        b->name);
        argv0 = buf;
        base = strrchr(argv0, '/');
        base = base ? base + 1 : argv0;
        if (strncmp(base, "qemu", 4) != 0 && strncmp(base, "kvm", 3) != 0)
                return hvp_fail(-EACCES, "process %d (%s) named by %s/%s.pid is not QEMU", (int)b->pid, base,
                                LIBVIRT_PID_DIR, b->name);
        for (size_t i = 0; i < n;) {
                const char *arg = buf + i;
                size_t len = strlen(arg);

                if (strcmp(arg, "-uuid") == 0 && i + len + 1 < n && strcmp(arg + len + 1, b->uuid) == 0)
                        return 0;
                i += len + 1;
        }
        return hvp_fail(-EACCES, "QEMU process %d is not the one of domain %s (uuid %s)", (int)b->pid, b->name,
                        b->uuid);
}

int live_find_qemu_process(struct live_be *b)
{
        char path[HVP_PATH_MAX], *end;
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t n;
        long pid;
        int r;

        if (strchr(b->name, '/'))
                return hvp_fail(-EINVAL, "bad domain name %s", b->name);
        snprintf(path, sizeof(path), "%s/%s.pid", LIBVIRT_PID_DIR, b->name);
        r = hvp_read_file_bounded(path, 31, (void **)&buf, &n);
        if (r < 0)
                return hvp_fail_context(-EACCES, "cannot read the pid file");
        errno = 0;
        pid = strtol(buf, &end, 10);
        if (errno || end == buf || (*end && *end != '\n') || pid <= 1 || pid > INT_MAX)
                return hvp_fail(-EIO, "%s does not hold a pid", path);
        b->pid = (pid_t)pid;
        /* Hold the process before checking it: a pidfd never names a reused pid. */
        b->pidfd = (int)syscall(SYS_pidfd_open, b->pid, 0);
        if (b->pidfd < 0)
                return hvp_fail(errno == ESRCH ? -ESRCH : -EACCES, "pidfd_open(%d): %m", (int)b->pid);
        r = check_qemu_cmdline(b);
        if (r < 0)
                return r;
        snprintf(path, sizeof(path), "/proc/%d", (int)b->pid);
        if (stat(path, &st) < 0)
                return hvp_fail(-ESRCH, "QEMU process %d is gone", (int)b->pid);
        b->qemu_uid = st.st_uid;
        b->qemu_gid = st.st_gid;
        snprintf(path, sizeof(path), "/proc/%d/mem", (int)b->pid);
        b->memfd = open(path, O_RDWR | O_CLOEXEC);
        if (b->memfd < 0)
                b->memfd = open(path, O_RDONLY | O_CLOEXEC);
        if (b->memfd < 0)
                return hvp_fail(-EACCES, "cannot open %s: %m (hvpatch needs root or CAP_SYS_PTRACE)", path);
        return 0;
}

static int process_alive(struct live_be *b)
{
        struct pollfd pfd = { .fd = b->pidfd, .events = POLLIN };

        if (poll(&pfd, 1, 0) != 0)
                return hvp_fail(-ESRCH, "the QEMU process of %s (pid %d) has exited", b->name, (int)b->pid);
        return 0;
}

/* [hva, hva+size) must lie in read-write mappings of the QEMU process. */
static int check_mappings(struct live_be *b, uint64_t hva, uint64_t size)
{
        char path[64];
        _cleanup_free_ char *buf = NULL;
        uint64_t want = hva, end = hva + size;
        size_t n;
        int r;

        snprintf(path, sizeof(path), "/proc/%d/maps", (int)b->pid);
        r = hvp_read_file_bounded(path, MAX_PROC_FILE, (void **)&buf, &n);
        if (r < 0)
                return hvp_fail_context(-EACCES, "cannot read the QEMU process's mappings");
        /* Mappings are listed in address order. */
        for (char *line = buf; *line && want < end;) {
                char *nl = strchr(line, '\n');
                unsigned long long lo, hi;
                char perms[5];

                if (nl)
                        *nl = '\0';
                if (sscanf(line, "%llx-%llx %4s", &lo, &hi, perms) == 3 && lo <= want && want < hi) {
                        if (perms[0] != 'r' || perms[1] != 'w')
                                break;
                        want = hi;
                }
                if (!nl)
                        break;
                line = nl + 1;
        }
        if (want < end)
                return hvp_fail(-EIO, "QEMU's host range 0x%llx+0x%llx is not mapped read-write in process %d",
                                (unsigned long long)hva, (unsigned long long)size, (int)b->pid);
        return 0;
}

static int gpa2hva(struct live_be *b, uint64_t gpa, const char *region, uint64_t *ret)
{
        _cleanup_free_ char *out = NULL;
        char cmd[64];
        int r;

        snprintf(cmd, sizeof(cmd), "gpa2hva 0x%llx", (unsigned long long)gpa);
        r = live_monitor(b, cmd, true, &out);
        if (r < 0)
                return r;
        return hvp_hmp_parse_gpa2hva(out, gpa, region, ret);
}

static int map_area(struct live_be *b, uint64_t gpa, uint64_t size, uint64_t first);
static int add_area_ro(struct live_be *b);

/* Nothing but this QEMU may map what backs [hva, hva+size): not another domain's QEMU. */
static int area_exclusive(struct live_be *b, uint64_t hva, uint64_t size)
{
        char path[64], what[128];
        _cleanup_free_ char *buf = NULL;
        dev_t dev;
        ino_t ino;
        size_t n;
        int r;

        snprintf(path, sizeof(path), "/proc/%d/maps", (int)b->pid);
        r = hvp_read_file_bounded(path, MAX_PROC_FILE, (void **)&buf, &n);
        if (r < 0)
                return hvp_fail(-EACCES, "cannot read %s: %s", path, strerror(-r));
        if (hvp_area_maps_backing(buf, hva, size, &dev, &ino) < 0)
                return hvp_fail(-EPERM, "the patch-area device's memory is not one file mapping in QEMU");
        snprintf(what, sizeof(what), "the backing of %s", b->area_region);
        return hvp_area_backing_exclusive(b->pid, dev, ino, what);
}

/*
 * The patch-area device's BAR is host memory QEMU maps into the guest: hvpatch
 * treats it as guest memory it may read and write (the only device memory it does).
 * Missing or unmapped: no device area, not an error. Without it: the read-only area.
 */
static int add_area_device(struct live_be *b, const char *flat)
{
        uint64_t gpa, size, first, last;
        int r;

        if (!b->area_region[0])
                return add_area_ro(b);
        r = hvp_hmp_find_flat_ram(flat, b->area_region, &gpa, &size);
        if (r < 0) {
                hvp_warn("patch-area device: %s", hvp_last_error());
                return 0;
        }
        r = gpa2hva(b, gpa, b->area_region, &first);
        if (r == 0)
                r = gpa2hva(b, gpa + size - 1, b->area_region, &last);
        if (r == 0 && (last < first || last - first != size - 1))
                r = hvp_fail(-EIO, "gpa2hva: %s is not one host mapping", b->area_region);
        if (r == 0)
                r = check_mappings(b, first, size);
        if (r == 0)
                r = area_exclusive(b, first, size);
        if (r < 0)
                return r;
        return map_area(b, gpa, size, first);
}

static int area_hmp(void *ctx, const char *cmd, char **ret_out)
{
        return live_monitor(ctx, cmd, true, ret_out);
}

/* The read-only patch area (vmi/area-live.c): read like RAM, written only by pwrite. */
static int add_area_ro(struct live_be *b)
{
        struct hvp_area_host h = { .pid = b->pid, .xml = b->xml, .ctx = b, .hmp = area_hmp };
        int r = hvp_area_ro_open(&h, &b->ro_area);

        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        return map_area(b, b->ro_area.gpa, b->ro_area.size, b->ro_area.hva);
}

static int map_area(struct live_be *b, uint64_t gpa, uint64_t size, uint64_t first)
{
        size_t i;

        if (b->nr_map >= HVP_MAX_RAM_RANGES)
                return hvp_fail(-E2BIG, "too many RAM ranges");
        for (i = 0; i < b->nr_map && b->map[i].gpa < gpa; i++)
                ;
        if ((i > 0 && b->map[i - 1].gpa + b->map[i - 1].size > gpa) || (i < b->nr_map && gpa + size > b->map[i].gpa))
                return hvp_fail(-EIO, "the patch area 0x%llx+0x%llx overlaps guest RAM", (unsigned long long)gpa,
                                (unsigned long long)size);
        memmove(&b->map[i + 1], &b->map[i], (b->nr_map - i) * sizeof(b->map[0]));
        b->map[i] = (struct hva_range){ gpa, size, first };
        b->nr_map++;
        b->area_gpa = gpa;
        b->area_size = size;
        return 0;
}

int live_read_ram_map(struct live_be *b, struct hvp_ram_range *ranges)
{
        _cleanup_free_ char *tree = NULL, *flat = NULL;
        _cleanup_free_ struct hvp_hmp_ram *ram = calloc(HVP_MAX_RAM_RANGES, sizeof(*ram));
        size_t n, nr;
        int r;

        if (!ram)
                return -ENOMEM;
        r = live_monitor(b, "info mtree", true, &tree);
        if (r == 0)
                r = live_monitor(b, "info mtree -f", true, &flat);
        if (r == 0)
                r = hvp_hmp_parse_ram(tree, flat, ram, HVP_MAX_RAM_RANGES, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                uint64_t first, last, size = ram[i].size;

                r = gpa2hva(b, ram[i].gpa, ram[i].region, &first);
                if (r == 0)
                        r = gpa2hva(b, ram[i].gpa + size - 1, ram[i].region, &last);
                if (r < 0)
                        return r;
                /* One RAM block is one contiguous host mapping: the ends must agree. */
                if (last < first || last - first != size - 1)
                        return hvp_fail(-EIO, "gpa2hva: RAM 0x%llx+0x%llx maps to host 0x%llx..0x%llx, not linearly",
                                        (unsigned long long)ram[i].gpa, (unsigned long long)size,
                                        (unsigned long long)first, (unsigned long long)last);
                r = check_mappings(b, first, size);
                if (r < 0)
                        return r;
                b->map[i] = (struct hva_range){ ram[i].gpa, size, first };
                hvp_debug("RAM 0x%llx+0x%llx (%s @0x%llx) at host 0x%llx", (unsigned long long)ram[i].gpa,
                          (unsigned long long)size, ram[i].region, (unsigned long long)ram[i].region_offset,
                          (unsigned long long)first);
        }
        b->nr_map = n;
        r = add_area_device(b, flat);
        if (r < 0)
                return r;
        n = b->nr_map;
        /* What the guest sees as one stretch of RAM is one range, whatever backs it. */
        nr = 0;
        for (size_t i = 0; i < n; i++) {
                if (nr > 0 && ranges[nr - 1].gpa + ranges[nr - 1].size == b->map[i].gpa)
                        ranges[nr - 1].size += b->map[i].size;
                else
                        ranges[nr++] = (struct hvp_ram_range){ b->map[i].gpa, b->map[i].size };
        }
        return (int)nr;
}

/* --------------------------------------------------------------- memory */

/* The map entry holding gpa (entries are sorted and disjoint), or NULL. */
static const struct hva_range *map_find(const struct live_be *b, uint64_t gpa)
{
        size_t lo = 0, hi = b->nr_map;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                const struct hva_range *m = &b->map[mid];

                if (gpa < m->gpa)
                        hi = mid;
                else if (gpa - m->gpa >= m->size)
                        lo = mid + 1;
                else
                        return m;
        }
        return NULL;
}

static int mem_fallback(struct live_be *b, bool write, uint64_t hva, void *buf, size_t len)
{
        while (len > 0) {
                ssize_t n = write ? pwrite(b->memfd, buf, len, (off_t)hva) : pread(b->memfd, buf, len, (off_t)hva);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return hvp_fail(-EIO, "%s QEMU memory at host 0x%llx: %s", write ? "writing" : "reading",
                                        (unsigned long long)hva, n < 0 ? strerror(errno) : "end of file");
                buf = (uint8_t *)buf + n;
                hva += (uint64_t)n;
                len -= (size_t)n;
        }
        return 0;
}
/* One system call for the batch; a short transfer is finished through /proc/PID/mem. */
static int xfer_flush(struct live_be *b, struct xfer *x)
{
        size_t done;
        ssize_t k;
        int r;

        if (x->n == 0)
                return 0;
        k = x->write ? process_vm_writev(b->pid, x->local, x->n, x->remote, x->n, 0)
                     : process_vm_readv(b->pid, x->local, x->n, x->remote, x->n, 0);
        done = k > 0 ? (size_t)k : 0;
        if (done != x->total) {
                if (k < 0 && errno == ESRCH)
                        return hvp_fail(-ESRCH, "the QEMU process of %s (pid %d) has exited", b->name,
                                        (int)b->pid);
                /* The kernel stops at the first fault: finish piece by piece. */
                for (size_t i = 0; i < x->n; i++) {
                        size_t len = x->local[i].iov_len, skip = HVP_MIN(done, len);

                        done -= skip;
                        if (skip == len)
                                continue;
                        r = mem_fallback(b, x->write, (uint64_t)(uintptr_t)x->remote[i].iov_base + skip,
                                         (uint8_t *)x->local[i].iov_base + skip, len - skip);
                        if (r < 0)
                                return r;
                }
        }
        x->n = 0;
        x->total = 0;
        return 0;
}

/*
 * Adjacent RAM ranges (NUMA nodes) are one range for the generic layer but
 * separate host mappings: a range is cut at map entry boundaries here.
 */
static int xfer_add(struct live_be *b, struct xfer *x, uint64_t gpa, uint8_t *buf, size_t len)
{
        int r;

        while (len > 0) {
                const struct hva_range *m = map_find(b, gpa);
                size_t n;

                if (!m)
                        return hvp_fail(-EFAULT, "guest-physical 0x%llx is not in the RAM map",
                                        (unsigned long long)gpa);
                n = (size_t)HVP_MIN((uint64_t)len, m->size - (gpa - m->gpa));
                if (x->n == IOV_MAX) {
                        r = xfer_flush(b, x);
                        if (r < 0)
                                return r;
                }
                x->local[x->n] = (struct iovec){ buf, n };
                x->remote[x->n] = (struct iovec){ (void *)(uintptr_t)(m->hva + (gpa - m->gpa)), n };
                x->n++;
                x->total += n;
                gpa += n;
                buf += n;
                len -= n;
        }
        return 0;
}

int live_transfer(struct live_be *b, bool write, const struct hvp_phys_iov *iov, size_t n)
{
        struct xfer *x = b->xfer;       /* a handle is used by one thread at a time */
        int r;

        x->write = write;
        x->n = x->total = 0;
        /* Before: a write must never reach another process; after: a read's bytes are QEMU's. */
        if (write && (r = process_alive(b)) < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                r = xfer_add(b, x, iov[i].gpa, iov[i].buf, iov[i].len);
                if (r < 0)
                        return r;
        }
        r = xfer_flush(b, x);
        if (r < 0)
                return r;
        return process_alive(b);
}

int live_read_v(void *be, const struct hvp_phys_iov *iov, size_t n)
{
        return live_transfer(be, false, iov, n);
}

int live_read(void *be, uint64_t gpa, void *buf, size_t len)
{
        struct hvp_phys_iov v = { gpa, buf, len };

        return live_transfer(be, false, &v, 1);
}

int live_direct_write(struct live_be *b, uint64_t gpa, const void *buf, size_t len)
{
        struct hvp_phys_iov v = { gpa, (void *)buf, len };
        _cleanup_free_ uint8_t *check = malloc(len);
        int r;

        if (!check)
                return -ENOMEM;
        r = live_transfer(b, true, &v, 1);
        if (r < 0)
                return r;
        v.buf = check;
        r = live_transfer(b, false, &v, 1);
        if (r < 0)
                return r;
        if (memcmp(check, buf, len) != 0)
                return hvp_fail(-EIO, "read-back of 0x%zx bytes at 0x%llx differs from what was written", len,
                                (unsigned long long)gpa);
        return 0;
}

/*
 * The live backend: a running libvirt/QEMU domain. The only file that sees libvirt.
 *
 * Registers and the RAM map come from QEMU's human monitor through libvirt's
 * passthrough; memory is read and written in the QEMU process itself at the host
 * address QEMU's gpa2hva gives for each RAM range. Writes take either that direct
 * path or QEMU's gdbstub, which goes through QEMU's own memory API and so
 * invalidates TCG's translated blocks and marks pages dirty.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "common/error.h"
#include "common/util.h"
#include "vmi/area-live.h"
#include "vmi/backend.h"
#include "vmi/gdb-remote.h"
#include "vmi/hmp.h"

#define LIBVIRT_PID_DIR "/run/libvirt/qemu"
#define GDB_SOCK_ROOT "/run/hvpatch"
#define GDB_TIMEOUT_MS 5000
#define MAX_PROC_FILE (64u << 20)       /* /proc/PID/maps of a big QEMU, cmdline */

struct hva_range {
        uint64_t gpa, size, hva;
};

struct xfer;

struct live_be {
        virConnectPtr conn;
        virDomainPtr dom;
        char name[256];
        char uuid[VIR_UUID_STRING_BUFLEN];
        char *xml;
        char type[16];
        enum hvp_write_path path;

        pid_t pid;
        int pidfd;              /* tells when the QEMU process is gone */
        int memfd;              /* /proc/PID/mem: fallback when process_vm_* fails */
        uid_t qemu_uid;
        gid_t qemu_gid;

        struct hva_range map[HVP_MAX_RAM_RANGES];
        size_t nr_map;

        struct xfer *xfer;      /* scratch for one process_vm_readv/writev batch */

        char area_region[64];   /* QEMU region of the patch-area device's BAR, "" if none */
        uint64_t area_gpa, area_size;
        struct hvp_ro_area ro_area;     /* the read-only patch area (vmi/area-live.h); fd -1: none */

        bool paused;            /* we paused the domain */
        bool paused_by_stub;    /* ... by connecting to the gdbstub (fast path) */
        bool gdb_listening;     /* the stub listens on gdb_dir/gdb.sock */
        bool gdb_open;          /* we are connected to it */
        struct hvp_gdb gdb;
        char gdb_dir[64];
};

static const struct hvp_backend_ops live_ops;

/* Timing probes of the pause window (debug log): time since the previous probe. */
static double probe(double since, const char *what)
{
        struct timespec t;
        double now;

        clock_gettime(CLOCK_MONOTONIC, &t);
        now = (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
        if (since > 0)
                hvp_debug("live: %s %.3f ms", what, now - since);
        return now;
}

/* ---------------------------------------------------------------- libvirt */

static void silent_libvirt_error(void *userdata, virErrorPtr err)
{
}

static pthread_once_t libvirt_once = PTHREAD_ONCE_INIT;

static void libvirt_init(void)
{
        virSetErrorFunc(NULL, silent_libvirt_error);
}

static int lv_fail(int err, const char *what)
{
        const char *m = virGetLastErrorMessage();

        return hvp_fail(err, "%s: %s", what, m ? m : "unknown libvirt error");
}

static const char *state_name(int state)
{
        static const char *const names[] = {
                [VIR_DOMAIN_NOSTATE] = "no state", [VIR_DOMAIN_RUNNING] = "running",
                [VIR_DOMAIN_BLOCKED] = "blocked", [VIR_DOMAIN_PAUSED] = "paused",
                [VIR_DOMAIN_SHUTDOWN] = "shutting down", [VIR_DOMAIN_SHUTOFF] = "shut off",
                [VIR_DOMAIN_CRASHED] = "crashed", [VIR_DOMAIN_PMSUSPENDED] = "suspended by guest PM",
        };

        if (state >= 0 && (size_t)state < HVP_ARRAY_SIZE(names) && names[state])
                return names[state];
        return "unknown";
}

static const char *paused_reason(int reason)
{
        static const char *const names[] = {
                [VIR_DOMAIN_PAUSED_UNKNOWN] = "unknown", [VIR_DOMAIN_PAUSED_USER] = "user",
                [VIR_DOMAIN_PAUSED_MIGRATION] = "migration", [VIR_DOMAIN_PAUSED_SAVE] = "save",
                [VIR_DOMAIN_PAUSED_DUMP] = "dump", [VIR_DOMAIN_PAUSED_IOERROR] = "I/O error",
                [VIR_DOMAIN_PAUSED_WATCHDOG] = "watchdog", [VIR_DOMAIN_PAUSED_FROM_SNAPSHOT] = "from snapshot",
                [VIR_DOMAIN_PAUSED_SHUTTING_DOWN] = "shutting down", [VIR_DOMAIN_PAUSED_SNAPSHOT] = "snapshot",
                [VIR_DOMAIN_PAUSED_CRASHED] = "crashed", [VIR_DOMAIN_PAUSED_STARTING_UP] = "starting up",
                [VIR_DOMAIN_PAUSED_POSTCOPY] = "post-copy migration",
                [VIR_DOMAIN_PAUSED_POSTCOPY_FAILED] = "failed post-copy migration",
        };

        if (reason >= 0 && (size_t)reason < HVP_ARRAY_SIZE(names) && names[reason])
                return names[reason];
        return "unknown";
}

static int domain_state(struct live_be *b, int *ret_state, int *ret_reason)
{
        if (virDomainGetState(b->dom, ret_state, ret_reason, 0) < 0)
                return lv_fail(-EIO, "cannot read the domain state");
        return 0;
}

/* A monitor command (HMP text or QMP JSON); *ret is malloc'ed, bounded. */
static int monitor(struct live_be *b, const char *cmd, bool hmp, char **ret)
{
        char *out = NULL;
        char what[128];

        if (virDomainQemuMonitorCommand(b->dom, cmd, &out,
                                        hmp ? VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP : 0) < 0) {
                snprintf(what, sizeof(what), "monitor command '%s'", cmd);
                return lv_fail(-EIO, what);
        }
        if (!out)
                return hvp_fail(-EIO, "monitor command '%s' gave no reply", cmd);
        if (strnlen(out, HVP_HMP_MAX_OUTPUT + 1) > HVP_HMP_MAX_OUTPUT) {
                free(out);
                return hvp_fail(-E2BIG, "monitor command '%s': reply too long", cmd);
        }
        *ret = out;
        return 0;
}

/* The domain's type attribute: 'kvm' or 'qemu' decides the write path. */
static xmlNodePtr child_element(xmlNodePtr parent, const char *name)
{
        for (xmlNodePtr n = parent ? parent->children : NULL; n; n = n->next)
                if (n->type == XML_ELEMENT_NODE && xmlStrcmp(n->name, BAD_CAST name) == 0)
                        return n;
        return NULL;
}

/*
 * The (deprecated) shared-memory patch-area device: <shmem name='hvpatch-area-UUID'>
 * with <model type='ivshmem-plain'/>, UUID this domain's: libvirt backs it by
 * /dev/shm/NAME, shared by every domain giving the same name, so only the
 * per-domain name counts. QEMU names its BAR's RAM region "shmmem-" + the device's alias.
 */
static void find_area_device(struct live_be *b, xmlNodePtr root)
{
        xmlNodePtr devices = child_element(root, "devices");

        for (xmlNodePtr n = devices ? devices->children : NULL; n; n = n->next) {
                xmlChar *name, *model_type = NULL, *alias_name = NULL;

                if (n->type != XML_ELEMENT_NODE || xmlStrcmp(n->name, BAD_CAST "shmem") != 0)
                        continue;
                name = xmlGetProp(n, BAD_CAST "name");
                if (child_element(n, "model"))
                        model_type = xmlGetProp(child_element(n, "model"), BAD_CAST "type");
                if (child_element(n, "alias"))
                        alias_name = xmlGetProp(child_element(n, "alias"), BAD_CAST "name");
                if (name && strncmp((const char *)name, HVP_AREA_SHMEM_PREFIX, strlen(HVP_AREA_SHMEM_PREFIX)) == 0 &&
                    strcmp((const char *)name + strlen(HVP_AREA_SHMEM_PREFIX), b->uuid) == 0 && model_type &&
                    xmlStrcmp(model_type, BAD_CAST "ivshmem-plain") == 0 && alias_name &&
                    xmlStrlen(alias_name) < 48)
                        snprintf(b->area_region, sizeof(b->area_region), "shmmem-%s", (const char *)alias_name);
                xmlFree(name);
                xmlFree(model_type);
                xmlFree(alias_name);
        }
}

static int read_domain_xml(struct live_be *b)
{
        xmlDocPtr doc;
        xmlNodePtr root;
        xmlChar *type;
        size_t len;
        int r = 0;

        b->xml = virDomainGetXMLDesc(b->dom, 0);
        if (!b->xml)
                return lv_fail(-EIO, "cannot read the domain XML");
        len = strlen(b->xml);
        if (len > INT_MAX)
                return hvp_fail(-E2BIG, "domain XML too large");
        doc = xmlReadMemory(b->xml, (int)len, "domain.xml", NULL,
                            XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
        if (!doc)
                return hvp_fail(-EIO, "cannot parse the domain XML");
        root = xmlDocGetRootElement(doc);
        type = root && xmlStrcmp(root->name, BAD_CAST "domain") == 0 ? xmlGetProp(root, BAD_CAST "type") : NULL;
        if (!type || xmlStrlen(type) == 0 || (size_t)xmlStrlen(type) >= sizeof(b->type))
                r = hvp_fail(-EIO, "the domain XML has no usable <domain type=...>");
        else
                snprintf(b->type, sizeof(b->type), "%s", (const char *)type);
        xmlFree(type);
        if (r == 0 && root)
                find_area_device(b, root);
        xmlFreeDoc(doc);
        return r;
}

/* ------------------------------------------------------------ QEMU process */

static int read_small_file(const char *path, char *buf, size_t max, size_t *ret_len)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        size_t n = 0;

        if (fd < 0)
                return -errno;
        while (n < max) {
                ssize_t k = read(fd, buf + n, max - n);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                n += (size_t)k;
        }
        *ret_len = n;
        return 0;
}

/* The process must be a QEMU started for this domain: argv has "-uuid UUID". */
static int check_qemu_cmdline(struct live_be *b)
{
        char path[64];
        _cleanup_free_ char *buf = malloc(1u << 20);
        const char *argv0, *base;
        size_t n;
        int r;

        if (!buf)
                return -ENOMEM;
        snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)b->pid);
        r = read_small_file(path, buf, (1u << 20) - 1, &n);
        if (r < 0)
                return hvp_fail(r == -ENOENT ? -ESRCH : -EACCES, "QEMU process %d of %s: %s", (int)b->pid,
                                b->name, strerror(-r));
        buf[n] = '\0';
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

static int find_qemu_process(struct live_be *b)
{
        char path[PATH_MAX], buf[32], *end;
        struct stat st;
        size_t n;
        long pid;
        int r;

        if (strchr(b->name, '/'))
                return hvp_fail(-EINVAL, "bad domain name %s", b->name);
        snprintf(path, sizeof(path), "%s/%s.pid", LIBVIRT_PID_DIR, b->name);
        r = read_small_file(path, buf, sizeof(buf) - 1, &n);
        if (r < 0)
                return hvp_fail(-EACCES, "cannot read %s: %s", path, strerror(-r));
        buf[n] = '\0';
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
        _cleanup_free_ char *buf = malloc(MAX_PROC_FILE);
        uint64_t want = hva, end = hva + size;
        size_t n;
        int r;

        if (!buf)
                return -ENOMEM;
        snprintf(path, sizeof(path), "/proc/%d/maps", (int)b->pid);
        r = read_small_file(path, buf, MAX_PROC_FILE - 1, &n);
        if (r < 0)
                return hvp_fail(-EACCES, "cannot read %s: %s", path, strerror(-r));
        buf[n] = '\0';
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
        r = monitor(b, cmd, true, &out);
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
        _cleanup_free_ char *buf = malloc(MAX_PROC_FILE);
        dev_t dev;
        ino_t ino;
        size_t n;
        int r;

        if (!buf)
                return -ENOMEM;
        snprintf(path, sizeof(path), "/proc/%d/maps", (int)b->pid);
        r = read_small_file(path, buf, MAX_PROC_FILE - 1, &n);
        if (r < 0)
                return hvp_fail(-EACCES, "cannot read %s: %s", path, strerror(-r));
        buf[n] = '\0';
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
        return monitor(ctx, cmd, true, ret_out);
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

static int read_ram_map(struct live_be *b, struct hvp_ram_range *ranges)
{
        _cleanup_free_ char *tree = NULL, *flat = NULL;
        _cleanup_free_ struct hvp_hmp_ram *ram = calloc(HVP_MAX_RAM_RANGES, sizeof(*ram));
        size_t n, nr;
        int r;

        if (!ram)
                return -ENOMEM;
        r = monitor(b, "info mtree", true, &tree);
        if (r == 0)
                r = monitor(b, "info mtree -f", true, &flat);
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

/* Pieces of one process_vm_readv/writev call. */
struct xfer {
        bool write;
        size_t n, total;
        struct iovec local[IOV_MAX], remote[IOV_MAX];
};

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

static int transfer(struct live_be *b, bool write, const struct hvp_phys_iov *iov, size_t n)
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

static int live_read_v(void *be, const struct hvp_phys_iov *iov, size_t n)
{
        return transfer(be, false, iov, n);
}

static int live_read(void *be, uint64_t gpa, void *buf, size_t len)
{
        struct hvp_phys_iov v = { gpa, buf, len };

        return transfer(be, false, &v, 1);
}

static int direct_write(struct live_be *b, uint64_t gpa, const void *buf, size_t len)
{
        struct hvp_phys_iov v = { gpa, (void *)buf, len };
        _cleanup_free_ uint8_t *check = malloc(len);
        int r;

        if (!check)
                return -ENOMEM;
        r = transfer(b, true, &v, 1);
        if (r < 0)
                return r;
        v.buf = check;
        r = transfer(b, false, &v, 1);
        if (r < 0)
                return r;
        if (memcmp(check, buf, len) != 0)
                return hvp_fail(-EIO, "read-back of 0x%zx bytes at 0x%llx differs from what was written", len,
                                (unsigned long long)gpa);
        return 0;
}

/* ------------------------------------------------------------- gdbstub */

/* QEMU names the stub's chardev "gdb"; one already there is someone's debugger. */
static int gdbstub_in_use(struct live_be *b)
{
        _cleanup_free_ char *out = NULL;
        int r = monitor(b, "info chardev", true, &out);

        if (r < 0)
                return r;
        for (const char *p = out; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
                if (strncmp(p, "gdb:", 4) == 0)
                        return hvp_fail(-EBUSY, "a gdbstub is already open on %s (is someone debugging it?)",
                                        b->name);
        return 0;
}

static void gdb_dir_remove(struct live_be *b)
{
        char sock[sizeof(b->gdb_dir) + 16];

        if (!b->gdb_dir[0])
                return;
        snprintf(sock, sizeof(sock), "%s/gdb.sock", b->gdb_dir);
        (void)unlink(sock);
        (void)rmdir(b->gdb_dir);
        b->gdb_dir[0] = '\0';
}

/* A folder only QEMU's user (and root) can enter, for QEMU to create the socket in. */
static int gdb_dir_create(struct live_be *b)
{
        if (mkdir(GDB_SOCK_ROOT, 0711) < 0 && errno != EEXIST)
                return hvp_fail(-EACCES, "cannot create %s: %m", GDB_SOCK_ROOT);
        snprintf(b->gdb_dir, sizeof(b->gdb_dir), "%s/gdb-XXXXXX", GDB_SOCK_ROOT);
        if (!mkdtemp(b->gdb_dir)) {
                b->gdb_dir[0] = '\0';
                return hvp_fail(-EACCES, "cannot create a folder under %s: %m", GDB_SOCK_ROOT);
        }
        if (chown(b->gdb_dir, b->qemu_uid, b->qemu_gid) < 0 || chmod(b->gdb_dir, 0700) < 0) {
                int e = errno;

                gdb_dir_remove(b);
                errno = e;
                return hvp_fail(-EACCES, "cannot hand %s/... to QEMU's user %u: %m", GDB_SOCK_ROOT,
                                (unsigned)b->qemu_uid);
        }
        return 0;
}

/* Stop listening (`gdbserver none`): only ever while nobody is connected. */
static int gdb_unlisten(struct live_be *b)
{
        _cleanup_free_ char *out = NULL;
        int r;

        if (!b->gdb_listening)
                return 0;
        r = monitor(b, "gdbserver none", true, &out);
        b->gdb_listening = false;
        gdb_dir_remove(b);
        return r;
}

static int gdb_session_close(struct live_be *b)
{
        if (!b->gdb_open)
                return gdb_unlisten(b);
        /* Close our end and never send 'D' here: QEMU's detach would resume the VM. */
        hvp_gdb_close(&b->gdb);
        b->gdb_open = false;
        return gdb_unlisten(b);
}

/* Make the stub listen on a private socket. The VM keeps running until someone connects. */
static int gdb_listen(struct live_be *b)
{
        _cleanup_free_ char *out = NULL;
        char cmd[160], sock[sizeof(b->gdb_dir) + 16];
        int r;

        if (b->gdb_listening)
                return 0;
        r = gdbstub_in_use(b);
        if (r < 0)
                return r;
        r = gdb_dir_create(b);
        if (r < 0)
                return r;
        snprintf(sock, sizeof(sock), "%s/gdb.sock", b->gdb_dir);
        snprintf(cmd, sizeof(cmd), "gdbserver unix:%s,server=on,wait=off", sock);
        r = monitor(b, cmd, true, &out);
        if (r < 0) {
                gdb_dir_remove(b);
                return r;
        }
        b->gdb_listening = true;
        if (!strstr(out, "Waiting for gdb connection")) {
                r = hvp_fail(-EIO, "QEMU could not start its gdbstub: %.200s", out);
                (void)gdb_unlisten(b);
                return r;
        }
        return 0;
}

/*
 * Connect: QEMU stops the VM when a gdb client connects (vm_stop in the chardev's
 * open event, handled before our first packet), so once the first reply is in, every
 * vCPU is stopped.
 */
static int gdb_connect(struct live_be *b)
{
        char sock[sizeof(b->gdb_dir) + 16];
        double t;
        int r;

        snprintf(sock, sizeof(sock), "%s/gdb.sock", b->gdb_dir);
        t = probe(0, NULL);
        r = hvp_gdb_connect_unix(sock, GDB_TIMEOUT_MS, &b->gdb);
        if (r < 0)
                return r;
        b->gdb_open = true;
        t = probe(t, "gdbstub connect()");
        r = hvp_gdb_phys_mode(&b->gdb);
        probe(t, "gdbstub PhyMemMode (first reply: stopped)");
        if (r < 0) {
                hvp_gdb_close(&b->gdb);
                b->gdb_open = false;
        }
        return r;
}

static int gdb_session_open(struct live_be *b)
{
        int r = gdb_listen(b);

        if (r == 0)
                r = gdb_connect(b);
        if (r < 0)
                (void)gdb_session_close(b);
        return r;
}

static int gdb_write(struct live_be *b, uint64_t gpa, const void *buf, size_t len)
{
        _cleanup_free_ uint8_t *check = malloc(len);
        struct hvp_phys_iov v = { gpa, NULL, len };
        double t;
        int r;

        if (!check)
                return -ENOMEM;
        if (!b->gdb_open) {
                r = gdb_session_open(b);
                if (r < 0)
                        return r;
        }
        t = probe(0, NULL);
        r = hvp_gdb_write(&b->gdb, gpa, buf, len);
        t = probe(t, "gdbstub M");
        if (r < 0)
                return hvp_fail_context(r, "writing 0x%zx bytes at 0x%llx through the gdbstub", len,
                                        (unsigned long long)gpa);
        /*
         * The stub wrote into the RAM block we read through process_vm_readv: reading
         * back there checks the bytes landed where every read of ours looks, for
         * microseconds instead of another stub round trip ('m') inside the window.
         */
        v.buf = check;
        r = transfer(b, false, &v, 1);
        probe(t, "read-back");
        if (r < 0)
                return hvp_fail_context(r, "reading back 0x%zx bytes at 0x%llx after the gdbstub write", len,
                                        (unsigned long long)gpa);
        if (memcmp(check, buf, len) != 0)
                return hvp_fail(-EIO, "read-back of 0x%zx bytes at 0x%llx differs from what the gdbstub wrote",
                                len, (unsigned long long)gpa);
        return 0;
}

/* ------------------------------------------------------- pause / resume */

static int job_check(struct live_be *b)
{
        virDomainJobInfo info;
        static const char *const types[] = {
                [VIR_DOMAIN_JOB_NONE] = "none", [VIR_DOMAIN_JOB_BOUNDED] = "bounded",
                [VIR_DOMAIN_JOB_UNBOUNDED] = "unbounded", [VIR_DOMAIN_JOB_COMPLETED] = "completed",
                [VIR_DOMAIN_JOB_FAILED] = "failed", [VIR_DOMAIN_JOB_CANCELLED] = "cancelled",
        };

        if (virDomainGetJobInfo(b->dom, &info) < 0)
                return lv_fail(-EIO, "cannot read the domain's job");
        if (info.type == VIR_DOMAIN_JOB_BOUNDED || info.type == VIR_DOMAIN_JOB_UNBOUNDED)
                return hvp_fail(-EBUSY, "a libvirt job (%s; migration, snapshot, save or dump) runs on %s",
                                types[info.type], b->name);
        return 0;
}

static int live_resume(void *be);

static int live_pause(void *be)
{
        struct live_be *b = be;
        int state, reason, r;
        double t = probe(0, NULL);

        if (b->paused)
                return 0;
        r = domain_state(b, &state, &reason);
        if (r < 0)
                return r;
        t = probe(t, "pause: domain state");
        if (state == VIR_DOMAIN_PAUSED)
                return hvp_fail(-EALREADY, "domain %s is already paused (reason: %s); hvpatch only resumes "
                                "what it paused", b->name, paused_reason(reason));
        if (state != VIR_DOMAIN_RUNNING)
                return hvp_fail(-ESRCH, "domain %s is not running (state %s)", b->name, state_name(state));
        if (b->gdb_listening && !b->gdb_open) {
                /* Fast path, prepared before the window: connecting is the pause. */
                r = gdb_connect(b);
                if (r < 0)
                        return r;
                b->paused = b->paused_by_stub = true;
                t = probe(t, "pause: gdbstub connect (the stop)");
        } else {
                if (virDomainSuspend(b->dom) < 0)
                        return lv_fail(-EIO, "cannot pause the domain");
                b->paused = true;
                t = probe(t, "pause: virDomainSuspend");
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
        r = job_check(b);
        probe(t, "pause: job check");
        if (r < 0) {
                (void)live_resume(b);
                return r;
        }
        return 0;
}

/* End a pause taken by connecting to the stub: detach, which continues the VM. */
static int resume_from_stub(struct live_be *b)
{
        double t = probe(0, NULL);
        int r = hvp_gdb_detach(&b->gdb);

        probe(t, "resume: gdbstub detach");
        hvp_gdb_close(&b->gdb);
        b->gdb_open = false;
        b->paused_by_stub = false;
        if (r < 0) {
                /* The careful way round: no stub, then libvirt's resume. */
                hvp_warn("gdbstub detach failed (%s); resuming through libvirt", hvp_last_error());
                (void)gdb_unlisten(b);
                if (virDomainResume(b->dom) < 0)
                        return lv_fail(-EIO, "cannot resume the domain");
        }
        b->paused = false;
        return 0;
}

static int live_resume(void *be)
{
        struct live_be *b = be;
        int state, reason, r, q;

        if (b->paused && b->paused_by_stub)
                return resume_from_stub(b);
        /* The stub goes first: the guest must not run with a debugger attached. */
        r = gdb_session_close(b);
        if (!b->paused)
                return r;
        q = domain_state(b, &state, &reason);
        if (q == 0 && state == VIR_DOMAIN_RUNNING) {
                b->paused = false;
                q = hvp_fail(-ESTALE, "domain %s was resumed by someone else during the pause window", b->name);
        } else if (q == 0) {
                if (virDomainResume(b->dom) < 0)
                        q = lv_fail(-EIO, "cannot resume the domain");
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
        r = job_check(b);
        if (r < 0)
                return r;
        return gdb_listen(b);
}

/* After the window, with the guest running again: stop the stub listening. */
static int live_release(void *be)
{
        struct live_be *b = be;

        return b->gdb_open ? 0 : gdb_unlisten(b);
}

/*
 * The folder of a stub hvpatch made (GDB_SOCK_ROOT/gdb-XXXXXX/gdb.sock) that
 * `info chardev` shows listening, into dir; false if there is none, or the stub is
 * not one of ours (someone's debugger: never touched).
 */
static bool stale_stub_dir(struct live_be *b, char *dir, size_t size)
{
        static const char prefix[] = GDB_SOCK_ROOT "/gdb-";
        _cleanup_free_ char *out = NULL;
        const char *p, *path;
        size_t n;

        if (monitor(b, "info chardev", true, &out) < 0)
                return false;
        for (p = out; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
                if (strncmp(p, "gdb:", 4) == 0)
                        break;
        if (!p || !*p)
                return false;
        path = strstr(p, "unix:");
        if (!path || (strchr(p, '\n') && path > strchr(p, '\n')))
                return false;
        path += 5;
        if (strncmp(path, prefix, sizeof(prefix) - 1) != 0)
                return false;
        n = sizeof(prefix) - 1 + 6;     /* mkdtemp's XXXXXX */
        for (size_t i = sizeof(prefix) - 1; i < n; i++)
                if (!isalnum((unsigned char)path[i]))
                        return false;
        if (strncmp(path + n, "/gdb.sock,", 10) != 0 || n >= size)
                return false;
        memcpy(dir, path, n);
        dir[n] = '\0';
        return true;
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
        if (stale_stub_dir(b, dir, sizeof(dir))) {
                r = monitor(b, "gdbserver none", true, &out);
                if (r < 0)
                        return r;
                snprintf(sock, sizeof(sock), "%s/gdb.sock", dir);
                (void)unlink(sock);
                (void)rmdir(dir);
                hvp_info("closed the gdbstub a dead hvpatch left listening (%s)", dir);
        }
        r = domain_state(b, &state, &reason);
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
                return direct_write(b, gpa, buf, len);
        if (b->paused)
                return gdb_write(b, gpa, buf, len);
        if (b->gdb_listening)
                return hvp_fail(-EINVAL, "gdbstub write outside the prepared pause window");
        /* Outside a pause window: one of our own, so the stub never stops a running VM. */
        r = live_pause(b);
        if (r < 0)
                return r;
        r = gdb_write(b, gpa, buf, len);
        q = live_resume(b);
        return r < 0 ? r : q;
}

/* ------------------------------------------------------------ registers */

static int live_read_regs(void *be, struct hvp_vcpu_regs *regs, unsigned max, unsigned *ret_n)
{
        _cleanup_free_ char *out = NULL;
        int r = monitor(be, "info registers -a", true, &out);

        if (r < 0)
                return r;
        return hvp_hmp_parse_registers(out, regs, max, ret_n);
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
                (void)gdb_unlisten(b);
                virDomainFree(b->dom);
        }
        gdb_dir_remove(b);
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
};

static bool looks_like_uuid(const char *s)
{
        if (strlen(s) != VIR_UUID_STRING_BUFLEN - 1)
                return false;
        for (int i = 0; s[i]; i++)
                if (i == 8 || i == 13 || i == 18 || i == 23 ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
                        return false;
        return true;
}

static int lookup_domain(struct live_be *b, const char *domain)
{
        virErrorPtr err;

        if (looks_like_uuid(domain))
                b->dom = virDomainLookupByUUIDString(b->conn, domain);
        if (!b->dom)
                b->dom = virDomainLookupByName(b->conn, domain);
        if (b->dom)
                return 0;
        err = virGetLastError();
        if (err && err->code == VIR_ERR_NO_DOMAIN)
                return hvp_fail(-ENOENT, "no domain %s", domain);
        return lv_fail(-EIO, "looking up the domain");
}

static int open_domain(struct live_be *b, const char *domain, const struct hvp_live_options *opts)
{
        const char *uri = opts && opts->uri ? opts->uri : "qemu:///system";
        const char *type, *name;
        int state, reason, r;

        b->conn = virConnectOpen(uri);
        if (!b->conn) {
                virErrorPtr err = virGetLastError();

                return lv_fail(err && err->code == VIR_ERR_AUTH_FAILED ? -EACCES : -EIO, uri);
        }
        type = virConnectGetType(b->conn);
        if (!type || strcasecmp(type, "QEMU") != 0)
                return hvp_fail(-ENOTSUP, "%s is a %s connection, not QEMU", uri, type ? type : "unknown");
        r = lookup_domain(b, domain);
        if (r < 0)
                return r;
        name = virDomainGetName(b->dom);
        if (!name || strlen(name) >= sizeof(b->name) || virDomainGetUUIDString(b->dom, b->uuid) < 0)
                return lv_fail(-EIO, "reading the domain's name and UUID");
        strcpy(b->name, name);
        r = domain_state(b, &state, &reason);
        if (r < 0)
                return r;
        if (virDomainIsActive(b->dom) != 1 || (state != VIR_DOMAIN_RUNNING && state != VIR_DOMAIN_PAUSED))
                return hvp_fail(-ESRCH, "domain %s is not running (state %s)", b->name, state_name(state));
        r = read_domain_xml(b);
        if (r < 0)
                return r;
        b->path = opts ? opts->write_path : HVP_WRITE_AUTO;
        if (b->path == HVP_WRITE_AUTO)
                b->path = strcmp(b->type, "kvm") == 0 ? HVP_WRITE_DIRECT : HVP_WRITE_GDBSTUB;
        if (b->path == HVP_WRITE_DIRECT && strcmp(b->type, "kvm") != 0)
                hvp_warn("%s runs under TCG (type '%s'): direct writes are not seen by code QEMU already "
                         "translated", b->name, b->type);
        return find_qemu_process(b);
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
        pthread_once(&libvirt_once, libvirt_init);
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
                r = read_ram_map(b, ranges);
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

/* ------------------------------------------------- live-only accessors */

int hvp_guest_area_device(const struct hvp_guest *g, uint64_t *ret_gpa, uint64_t *ret_size)
{
        struct live_be *b = hvp_guest_backend_data(g, &live_ops);

        if (!b || !b->area_size)
                return hvp_fail(-ENODEV, "no patch-area device in the domain (add one with 'hvpatch area add %s'; "
                                         "it takes effect at the domain's next boot)", b ? b->name : "DOMAIN");
        *ret_gpa = b->area_gpa;
        *ret_size = b->area_size;
        return 0;
}

int hvp_guest_check_idle(struct hvp_guest *g)
{
        struct live_be *b = hvp_guest_backend_data(g, &live_ops);

        return b ? job_check(b) : 0;
}

const char *hvp_guest_domain_xml(const struct hvp_guest *g)
{
        struct live_be *b = hvp_guest_backend_data(g, &live_ops);

        return b ? b->xml : NULL;
}

const char *hvp_guest_domain_type(const struct hvp_guest *g)
{
        struct live_be *b = hvp_guest_backend_data(g, &live_ops);

        return b ? b->type : NULL;
}

enum hvp_write_path hvp_guest_write_path(const struct hvp_guest *g)
{
        struct live_be *b = hvp_guest_backend_data(g, &live_ops);

        return b ? b->path : HVP_WRITE_DIRECT;
}

const char *hvp_write_path_name(enum hvp_write_path path)
{
        switch (path) {
        case HVP_WRITE_AUTO: return "auto";
        case HVP_WRITE_DIRECT: return "direct";
        case HVP_WRITE_GDBSTUB: return "gdbstub";
        }
        return "unknown";
}

/*
 * The per-domain patch areas of live domains: finding the read-only area, checking
 * that nothing but this domain's QEMU maps an area's backing object, and the
 * append-only write into the read-only area's file. See vmi/area-live.h.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "common/error.h"
#include "common/util.h"
#include "vmi/area-live.h"
#include "vmi/hmp.h"

#define QEMU_NS "http://libvirt.org/schemas/domain/qemu/1.0"
#define MAX_MAPS_FILE (16u << 20)       /* /proc/PID/maps of one process */
#define MAX_PROCS 65536u                /* processes looked at by the sharing scan */
#define MAX_ARGS 4096u                  /* <qemu:arg> elements looked at */

/* ------------------------------------------------------------- domain XML */

/* The value of key in a QEMU option string "type,k=v,k=v" (no ",," escapes). */
static bool opt_get(const char *opts, const char *key, char *val, size_t size)
{
        size_t klen = strlen(key);

        for (const char *p = opts; p && *p;) {
                const char *end = strchr(p, ',');
                size_t len = end ? (size_t)(end - p) : strlen(p);

                if (len > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
                        if (len - klen - 1 >= size)
                                return false;
                        memcpy(val, p + klen + 1, len - klen - 1);
                        val[len - klen - 1] = '\0';
                        return true;
                }
                p = end ? end + 1 : NULL;
        }
        return false;
}

int hvp_area_ro_xml_path(const char *xml, char *ret_path, size_t size)
{
        xmlDocPtr doc;
        xmlNodePtr root;
        size_t len = xml ? strlen(xml) : 0, nargs = 0, found = 0;
        bool next_is_object = false;
        char path[4096] = "";
        int r = 0;

        if (!xml || len > INT_MAX)
                return -ENOENT;
        doc = xmlReadMemory(xml, (int)len, "domain.xml", NULL,
                            XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
        if (!doc)
                return hvp_fail(-EINVAL, "cannot parse the domain XML");
        root = xmlDocGetRootElement(doc);
        for (xmlNodePtr c = root ? root->children : NULL; c && r == 0; c = c->next) {
                if (c->type != XML_ELEMENT_NODE || xmlStrcmp(c->name, BAD_CAST "commandline") != 0 || !c->ns ||
                    xmlStrcmp(c->ns->href, BAD_CAST QEMU_NS) != 0)
                        continue;
                for (xmlNodePtr a = c->children; a && r == 0; a = a->next) {
                        xmlChar *v;
                        char id[64], val[8];

                        if (a->type != XML_ELEMENT_NODE || xmlStrcmp(a->name, BAD_CAST "arg") != 0)
                                continue;
                        if (++nargs > MAX_ARGS) {
                                r = hvp_fail(-E2BIG, "more than %u <qemu:arg> in the domain XML", MAX_ARGS);
                                break;
                        }
                        v = xmlGetProp(a, BAD_CAST "value");
                        if (!v)
                                continue;
                        if (next_is_object && strncmp((const char *)v, "memory-backend-file,", 20) == 0 &&
                            opt_get((const char *)v, "id", id, sizeof(id)) &&
                            strcmp(id, HVP_AREA_RO_MEMDEV_ID) == 0) {
                                found++;
                                if (strstr((const char *)v, ",,"))
                                        r = hvp_fail(-EINVAL, "the patch area's memory backend has an escaped comma");
                                else if (!opt_get((const char *)v, "mem-path", path, sizeof(path)) || path[0] != '/')
                                        r = hvp_fail(-EINVAL, "the patch area's memory backend has no absolute mem-path");
                                else if (!opt_get((const char *)v, "readonly", val, sizeof(val)) ||
                                         (strcmp(val, "on") != 0 && strcmp(val, "true") != 0))
                                        r = hvp_fail(-EINVAL, "the patch area's memory backend is not readonly=on: "
                                                              "the guest could write it");
                                else if (!opt_get((const char *)v, "share", val, sizeof(val)) ||
                                         (strcmp(val, "on") != 0 && strcmp(val, "true") != 0))
                                        r = hvp_fail(-EINVAL, "the patch area's memory backend is not share=on: "
                                                              "host writes would not reach the guest");
                        }
                        next_is_object = strcmp((const char *)v, "-object") == 0;
                        xmlFree(v);
                }
        }
        xmlFreeDoc(doc);
        if (r < 0)
                return r;
        if (found == 0)
                return -ENOENT;
        if (found > 1)
                return hvp_fail(-EINVAL, "%zu memory backends named %s in the domain XML", found, HVP_AREA_RO_MEMDEV_ID);
        if (strlen(path) >= size)
                return hvp_fail(-ENAMETOOLONG, "the patch area's path is too long");
        strcpy(ret_path, path);
        return 0;
}

/* ------------------------------------------------------------------- HMP */

/*
 * QEMU 7.2 hmp_info_memory_devices:
 *   Memory device [nvdimm]: "hvpatch-area"
 *     addr: 0x100000000
 *     slot: 0
 *     ...
 *     size: 2097152
 *     memdev: /objects/hvpatch-area-mem
 */
int hvp_area_ro_parse_memory_devices(const char *out, uint64_t *ret_gpa, uint64_t *ret_size)
{
        const char *want = "Memory device [nvdimm]: \"" HVP_AREA_RO_DEVICE_ID "\"";
        const char *p = out ? strstr(out, want) : NULL;
        unsigned long long addr = 0, size = 0;
        bool have_addr = false, have_size = false, have_memdev = false;

        if (!p)
                return -ENOENT;
        p = strchr(p, '\n');
        while (p && *p) {
                const char *line = p + 1, *nl = strchr(line, '\n');
                char key[32], val[128];

                if (strncmp(line, "  ", 2) != 0)
                        break;          /* the next device */
                if (sscanf(line, " %31[a-z-]: %127s", key, val) == 2) {
                        if (strcmp(key, "addr") == 0)
                                have_addr = sscanf(val, "0x%llx", &addr) == 1;
                        else if (strcmp(key, "size") == 0)
                                have_size = sscanf(val, "%llu", &size) == 1;
                        else if (strcmp(key, "memdev") == 0)
                                have_memdev = strcmp(val, "/objects/" HVP_AREA_RO_MEMDEV_ID) == 0;
                }
                p = nl;
        }
        if (!have_addr || !have_size || !have_memdev)
                return hvp_fail(-EIO, "info memory-devices: the %s nvdimm has no address, size or memdev %s",
                                HVP_AREA_RO_DEVICE_ID, HVP_AREA_RO_MEMDEV_ID);
        *ret_gpa = addr;
        *ret_size = size;
        return 0;
}

/* ---------------------------------------------------------- /proc/PID/maps */

struct maps_line {
        uint64_t lo, hi;
        char perms[5];
        unsigned maj, min;
        unsigned long long ino;
};

static bool parse_maps_line(const char *line, struct maps_line *m)
{
        unsigned long long lo, hi, off;

        if (sscanf(line, "%llx-%llx %4s %llx %x:%x %llu", &lo, &hi, m->perms, &off, &m->maj, &m->min, &m->ino) != 7)
                return false;
        m->lo = lo;
        m->hi = hi;
        return true;
}

size_t hvp_area_maps_find(const char *maps, dev_t dev, ino_t ino, uint64_t *ret_lo, uint64_t *ret_hi,
                          char ret_perms[5])
{
        size_t n = 0;

        for (const char *line = maps; line && *line;) {
                const char *nl = strchr(line, '\n');
                struct maps_line m;

                if (parse_maps_line(line, &m) && m.ino == (unsigned long long)ino && m.ino != 0 &&
                    m.maj == major(dev) && m.min == minor(dev)) {
                        if (n == 0) {
                                if (ret_lo)
                                        *ret_lo = m.lo;
                                if (ret_hi)
                                        *ret_hi = m.hi;
                                if (ret_perms)
                                        memcpy(ret_perms, m.perms, 5);
                        }
                        n++;
                }
                line = nl ? nl + 1 : NULL;
        }
        return n;
}

int hvp_area_maps_backing(const char *maps, uint64_t hva, uint64_t size, dev_t *ret_dev, ino_t *ret_ino)
{
        for (const char *line = maps; line && *line;) {
                const char *nl = strchr(line, '\n');
                struct maps_line m;

                if (parse_maps_line(line, &m) && m.lo <= hva && hva < m.hi) {
                        if (hva + size > m.hi || m.ino == 0)
                                return -ENOENT;
                        *ret_dev = makedev(m.maj, m.min);
                        *ret_ino = (ino_t)m.ino;
                        return 0;
                }
                line = nl ? nl + 1 : NULL;
        }
        return -ENOENT;
}

/* The maps of process pid, NUL-terminated, malloc'ed. -ENOENT: the process is gone. */
static int read_maps(pid_t pid, char **ret)
{
        char path[64];
        char *buf;
        size_t n = 0;
        int fd;

        snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT || errno == ESRCH ? -ENOENT : -errno;
        buf = malloc(MAX_MAPS_FILE);
        if (!buf) {
                close(fd);
                return -ENOMEM;
        }
        while (n < MAX_MAPS_FILE - 1) {
                ssize_t k = read(fd, buf + n, MAX_MAPS_FILE - 1 - n);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        int e = errno == ESRCH ? -ENOENT : -errno;

                        close(fd);
                        free(buf);
                        return e;
                }
                if (k == 0)
                        break;
                n += (size_t)k;
        }
        close(fd);
        buf[n] = '\0';
        *ret = buf;
        return 0;
}

int hvp_area_backing_exclusive(pid_t pid, dev_t dev, ino_t ino, const char *what)
{
        DIR *d = opendir("/proc");
        struct dirent *e;
        unsigned seen = 0;
        int r = 0;

        if (!d)
                return hvp_fail(-EACCES, "cannot list /proc: %m");
        while (r == 0 && (e = readdir(d))) {
                char *end, *maps = NULL;
                long other = strtol(e->d_name, &end, 10);
                int q;

                if (!isdigit((unsigned char)e->d_name[0]) || *end || other <= 0 || other == (long)pid)
                        continue;
                if (++seen > MAX_PROCS) {
                        r = hvp_fail(-E2BIG, "more than %u processes: cannot check who maps %s", MAX_PROCS, what);
                        break;
                }
                q = read_maps((pid_t)other, &maps);
                if (q == -ENOENT)
                        continue;       /* exited meanwhile */
                if (q == -EACCES || q == -EPERM) {
                        /*
                         * Root cannot read it: a process more privileged than this host's root
                         * (a sandbox's init); QEMU processes run as an ordinary user and are readable.
                         */
                        hvp_debug("cannot read /proc/%ld/maps (%s): skipped", other, strerror(-q));
                        continue;
                }
                if (q < 0) {
                        r = hvp_fail(q, "cannot read /proc/%ld/maps to check who maps %s: %s", other, what,
                                     strerror(-q));
                        break;
                }
                if (hvp_area_maps_find(maps, dev, ino, NULL, NULL, NULL) > 0)
                        r = hvp_fail(-EPERM, "%s is also mapped by process %ld: a patch area must belong to one "
                                              "domain (refusing to use it)", what, other);
                free(maps);
        }
        closedir(d);
        return r;
}

/* ------------------------------------------------------------ the RO area */

static int check_file(const struct stat *st, const char *path)
{
        if (!S_ISREG(st->st_mode))
                return hvp_fail(-EPERM, "patch area %s is not a regular file", path);
        if (st->st_uid != 0)
                return hvp_fail(-EPERM, "patch area %s is owned by uid %u, not root", path, (unsigned)st->st_uid);
        if (st->st_mode & (S_IWGRP | S_IWOTH))
                return hvp_fail(-EPERM, "patch area %s is writable by group or others (mode %04o)", path,
                                (unsigned)(st->st_mode & 07777));
        if ((uint64_t)st->st_size != HVP_AREA_RO_SIZE)
                return hvp_fail(-EPERM, "patch area %s has %lld bytes, not %u", path, (long long)st->st_size,
                                HVP_AREA_RO_SIZE);
        return 0;
}

int hvp_area_ro_open(const struct hvp_area_host *h, struct hvp_ro_area *ret)
{
        _cleanup_free_ char *out = NULL, *maps = NULL, *hva_out = NULL;
        struct hvp_ro_area a = { .fd = -1 };
        struct stat st, fst;
        uint64_t lo = 0, hi = 0, hva;
        char perms[5] = "", cmd[64];
        size_t n;
        int r;

        r = hvp_area_ro_xml_path(h->xml, a.path, sizeof(a.path));
        if (r < 0)
                return r;
        r = h->hmp(h->ctx, "info memory-devices", &out);
        if (r < 0)
                return r;
        r = hvp_area_ro_parse_memory_devices(out, &a.gpa, &a.size);
        if (r == -ENOENT)
                return hvp_fail(-ENODEV, "the domain XML names patch area %s but QEMU has no nvdimm %s", a.path,
                                HVP_AREA_RO_DEVICE_ID);
        if (r < 0)
                return r;
        if (a.size != HVP_AREA_RO_SIZE || (a.gpa & (HVP_AREA_RO_SIZE - 1)))
                return hvp_fail(-EINVAL, "the patch area's nvdimm (0x%llx+0x%llx) is not one 2 MiB-aligned 2 MiB region",
                                (unsigned long long)a.gpa, (unsigned long long)a.size);
        if (lstat(a.path, &st) < 0)
                return hvp_fail(-errno, "patch area %s: %m", a.path);
        if (S_ISLNK(st.st_mode))
                return hvp_fail(-EPERM, "patch area %s is a symbolic link", a.path);
        r = check_file(&st, a.path);
        if (r < 0)
                return r;
        a.fd = open(a.path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (a.fd < 0)
                return hvp_fail(-errno, "cannot open patch area %s: %m", a.path);
        if (fstat(a.fd, &fst) < 0 || fst.st_dev != st.st_dev || fst.st_ino != st.st_ino) {
                r = hvp_fail(-EPERM, "patch area %s changed while it was opened", a.path);
                goto fail;
        }
        r = check_file(&fst, a.path);
        if (r < 0)
                goto fail;
        a.dev = fst.st_dev;
        a.ino = fst.st_ino;
        /* The file we hold must be the one this domain's QEMU maps, read-only and shared. */
        r = read_maps(h->pid, &maps);
        if (r < 0) {
                r = hvp_fail(r == -ENOENT ? -ESRCH : r, "cannot read the maps of QEMU process %d", (int)h->pid);
                goto fail;
        }
        n = hvp_area_maps_find(maps, a.dev, a.ino, &lo, &hi, perms);
        if (n != 1 || hi - lo != a.size || strcmp(perms, "r--s") != 0) {
                r = hvp_fail(-EPERM, "QEMU process %d does not map patch area %s once, read-only and shared "
                                     "(%zu mappings; first %s, 0x%llx bytes)", (int)h->pid, a.path, n,
                             n ? perms : "-", (unsigned long long)(hi - lo));
                goto fail;
        }
        snprintf(cmd, sizeof(cmd), "gpa2hva 0x%llx", (unsigned long long)a.gpa);
        r = h->hmp(h->ctx, cmd, &hva_out);
        if (r == 0)
                r = hvp_hmp_parse_gpa2hva(hva_out, a.gpa, HVP_AREA_RO_MEMDEV_ID, &hva);
        if (r == 0 && hva != lo)
                r = hvp_fail(-EPERM, "the nvdimm's memory (host 0x%llx) is not the mapping of %s (0x%llx)",
                             (unsigned long long)hva, a.path, (unsigned long long)lo);
        if (r < 0)
                goto fail;
        a.hva = lo;
        r = hvp_area_backing_exclusive(h->pid, a.dev, a.ino, a.path);
        if (r < 0)
                goto fail;
        *ret = a;
        return 0;
fail:
        close(a.fd);
        return r;
}

void hvp_area_ro_close(struct hvp_ro_area *a)
{
        if (a && a->fd >= 0) {
                close(a->fd);
                a->fd = -1;
        }
}

bool hvp_area_append_only_ok(const uint8_t *cur, const uint8_t *new, size_t len, uint8_t filler)
{
        for (size_t i = 0; i < len; i++)
                if (cur[i] != new[i] && cur[i] != filler)
                        return false;
        return true;
}

int hvp_area_ro_write(const struct hvp_ro_area *a, uint64_t gpa, const void *buf, size_t len)
{
        uint8_t cur[4096];
        uint64_t off = gpa - a->gpa;

        if (gpa < a->gpa || off > a->size || len > a->size - off)
                return hvp_fail(-EINVAL, "write 0x%llx+%zu outside the patch area", (unsigned long long)gpa, len);
        /* Check all of it before writing any of it. */
        for (size_t done = 0; done < len;) {
                size_t n = HVP_MIN(sizeof(cur), len - done);
                ssize_t k = pread(a->fd, cur, n, (off_t)(off + done));

                if (k < 0 && errno == EINTR)
                        continue;
                if (k != (ssize_t)n)
                        return hvp_fail(-EIO, "reading patch area %s: %s", a->path, k < 0 ? strerror(errno) : "short");
                if (!hvp_area_append_only_ok(cur, (const uint8_t *)buf + done, n, HVP_AREA_RO_FILLER))
                        return hvp_fail(-EEXIST, "patch area 0x%llx+%zu holds code already: the read-only area is "
                                                 "append-only (code that may have run is never rewritten)",
                                        (unsigned long long)(gpa + done), n);
                done += n;
        }
        for (size_t done = 0; done < len;) {
                ssize_t k = pwrite(a->fd, (const uint8_t *)buf + done, len - done, (off_t)(off + done));

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return hvp_fail(-EIO, "writing patch area %s: %s", a->path, k < 0 ? strerror(errno) : "short");
                done += (size_t)k;
        }
        return 0;
}

/*
 * The live backend's gdbstub: QEMU's stub listening on a private socket, our
 * connection to it (connecting stops the VM), and writes through it, which go through
 * QEMU's memory API (TCG's translated blocks invalidated, pages marked dirty).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/util.h"
#include "vmi/live.h"

/* QEMU names the stub's chardev "gdb"; one already there is someone's debugger. */
static int gdbstub_in_use(struct live_be *b)
{
        _cleanup_free_ char *out = NULL;
        int r = live_monitor(b, "info chardev", true, &out);

        if (r < 0)
                return r;
        for (const char *p = out; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
                if (strncmp(p, "gdb:", 4) == 0)
                        return hvp_fail(-EBUSY, "a gdbstub is already open on %s (is someone debugging it?)",
                                        b->name);
        return 0;
}

void live_gdb_dir_remove(struct live_be *b)
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

                live_gdb_dir_remove(b);
                errno = e;
                return hvp_fail(-EACCES, "cannot hand %s/... to QEMU's user %u: %m", GDB_SOCK_ROOT,
                                (unsigned)b->qemu_uid);
        }
        return 0;
}

/* Stop listening (`gdbserver none`): only ever while nobody is connected. */
int live_gdb_unlisten(struct live_be *b)
{
        _cleanup_free_ char *out = NULL;
        int r;

        if (!b->gdb_listening)
                return 0;
        r = live_monitor(b, "gdbserver none", true, &out);
        b->gdb_listening = false;
        live_gdb_dir_remove(b);
        return r;
}

int live_gdb_session_close(struct live_be *b)
{
        if (!b->gdb_open)
                return live_gdb_unlisten(b);
        /* Close our end and never send 'D' here: QEMU's detach would resume the VM. */
        hvp_gdb_close(&b->gdb);
        b->gdb_open = false;
        return live_gdb_unlisten(b);
}

/* Make the stub listen on a private socket. The VM keeps running until someone connects. */
int live_gdb_listen(struct live_be *b)
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
        r = live_monitor(b, cmd, true, &out);
        if (r < 0) {
                live_gdb_dir_remove(b);
                return r;
        }
        b->gdb_listening = true;
        if (!strstr(out, "Waiting for gdb connection")) {
                r = hvp_fail(-EIO, "QEMU could not start its gdbstub: %.200s", out);
                (void)live_gdb_unlisten(b);
                return r;
        }
        return 0;
}

/*
 * Connect: QEMU stops the VM when a gdb client connects (vm_stop in the chardev's
 * open event, handled before our first packet), so once the first reply is in, every
 * vCPU is stopped.
 */
int live_gdb_connect(struct live_be *b)
{
        char sock[sizeof(b->gdb_dir) + 16];
        double t;
        int r;

        snprintf(sock, sizeof(sock), "%s/gdb.sock", b->gdb_dir);
        t = live_probe(0, NULL);
        r = hvp_gdb_connect_unix(sock, GDB_TIMEOUT_MS, &b->gdb);
        if (r < 0)
                return r;
        b->gdb_open = true;
        t = live_probe(t, "gdbstub connect()");
        r = hvp_gdb_phys_mode(&b->gdb);
        live_probe(t, "gdbstub PhyMemMode (first reply: stopped)");
        if (r < 0) {
                hvp_gdb_close(&b->gdb);
                b->gdb_open = false;
        }
        return r;
}

static int gdb_session_open(struct live_be *b)
{
        int r = live_gdb_listen(b);

        if (r == 0)
                r = live_gdb_connect(b);
        if (r < 0)
                (void)live_gdb_session_close(b);
        return r;
}

int live_gdb_write(struct live_be *b, uint64_t gpa, const void *buf, size_t len)
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
        t = live_probe(0, NULL);
        r = hvp_gdb_write(&b->gdb, gpa, buf, len);
        t = live_probe(t, "gdbstub M");
        if (r < 0)
                return hvp_fail_context(r, "writing 0x%zx bytes at 0x%llx through the gdbstub", len,
                                        (unsigned long long)gpa);
        /*
         * The stub wrote into the RAM block we read through process_vm_readv: reading
         * back there checks the bytes landed where every read of ours looks, for
         * microseconds instead of another stub round trip ('m') inside the window.
         */
        v.buf = check;
        r = live_transfer(b, false, &v, 1);
        live_probe(t, "read-back");
        if (r < 0)
                return hvp_fail_context(r, "reading back 0x%zx bytes at 0x%llx after the gdbstub write", len,
                                        (unsigned long long)gpa);
        if (memcmp(check, buf, len) != 0)
                return hvp_fail(-EIO, "read-back of 0x%zx bytes at 0x%llx differs from what the gdbstub wrote",
                                len, (unsigned long long)gpa);
        return 0;
}

/*
 * The folder of a stub hvpatch made (GDB_SOCK_ROOT/gdb-XXXXXX/gdb.sock) that
 * `info chardev` shows listening, into dir; false if there is none, or the stub is
 * not one of ours (someone's debugger: never touched).
 */
bool live_stale_stub_dir(struct live_be *b, char *dir, size_t size)
{
        static const char prefix[] = GDB_SOCK_ROOT "/gdb-";
        _cleanup_free_ char *out = NULL;
        const char *p, *path;
        size_t n;

        if (live_monitor(b, "info chardev", true, &out) < 0)
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

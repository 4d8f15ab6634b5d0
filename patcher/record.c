/*
 * Records of applied patches and journals of transactions, one JSON file each per
 * domain under STATE_DIR/domains/, written atomically; and the per-domain lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include <hvpatch/apply.h>

#include "common/error.h"
#include "common/file.h"
#include "common/util.h"
#include "patcher/record.h"
#include "patcher/retire.h"

#define RECORD_MAX_BYTES (64u << 20)
#define RECORD_MAX_ENTRIES 1024

/* UUIDs (or names of non-live guests) become file names: keep them boring. */
static int check_key(const char *uuid)
{
        size_t n = strlen(uuid);

        if (n == 0 || n > 63)
                return hvp_fail(-EINVAL, "bad domain key '%s'", uuid);
        for (size_t i = 0; i < n; i++) {
                char c = uuid[i];

                if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
                      c == '_' || (c == '.' && i > 0)))
                        return hvp_fail(-EINVAL, "domain key '%s' is not a plain name", uuid);
        }
        return 0;
}

/*
 * The state folder: STATE_DIR/domains/UUID.json (record), UUID.journal (the
 * transaction in flight), UUID.lock; this file alone knows that layout. A journal
 * tells recover what to write into guest RAM, so whoever can write the folder can
 * write the guest's kernel: both folders must be ours and writable by nobody else,
 * and no state file is ever reached through a symlink (openat relative to the
 * folder, O_NOFOLLOW; temporaries O_EXCL under a random name).
 */
#define DOMAINS_DIR "domains"

struct state_file {
        int dfd;                        /* STATE_DIR/domains */
        char name[80];                  /* UUID + suffix */
        char path[HVP_PATH_MAX];        /* for messages */
};

static const char *writable_by(mode_t mode)
{
        return (mode & S_IWGRP) && (mode & S_IWOTH) ? "its group and others" : mode & S_IWGRP ? "its group" : "others";
}

/* Open dirfd's entry name (path in messages) as a folder of ours, never through a symlink. */
int hvp_state_folder_open(int dirfd, const char *name, const char *path, bool create, int *ret_fd)
{
        _cleanup_close_ int fd = -1;
        struct stat st;

        if (create && mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
                return hvp_fail(-errno, "cannot create the state folder %s: %s", path, strerror(errno));
        fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT)
                return -ENOENT;
        if (fd < 0 && (errno == ELOOP || errno == ENOTDIR))
                return hvp_fail(-EPERM, "state folder %s is a symlink or not a folder: refusing it", path);
        if (fd < 0)
                return hvp_fail(-errno, "cannot open the state folder %s: %s", path, strerror(errno));
        if (fstat(fd, &st) < 0)
                return hvp_fail(-errno, "%s: %s", path, strerror(errno));
        if (st.st_uid != geteuid())
                return hvp_fail(-EPERM, "state folder %s belongs to uid %u, not to this user (uid %u): refusing it",
                                path, (unsigned)st.st_uid, (unsigned)geteuid());
        if (st.st_mode & (S_IWGRP | S_IWOTH))
                return hvp_fail(-EPERM, "state folder %s is writable by %s (mode %04o): refusing it (chmod go-w %s)",
                                path, writable_by(st.st_mode), (unsigned)(st.st_mode & 07777), path);
        *ret_fd = fd;
        fd = -1;
        return 0;
}

/* -ENOENT (no message) when !create and a folder is missing. */
static int state_file_open(const char *state_dir, const char *uuid, const char *suffix, bool create,
                           struct state_file *ret)
{
        char dir[HVP_PATH_MAX];
        int r;

        ret->dfd = -1;
        if (!state_dir)
                state_dir = HVP_STATE_DIR;
        r = check_key(uuid);
        if (r < 0)
                return r;
        snprintf(ret->name, sizeof(ret->name), "%s%s", uuid, suffix);
        r = hvp_state_subdir_open(state_dir, DOMAINS_DIR, create, dir, sizeof(dir), &ret->dfd);
        if (r < 0)
                return r;
        if ((size_t)snprintf(ret->path, sizeof(ret->path), "%s/%s", dir, ret->name) >= sizeof(ret->path))
                return hvp_fail(-ENAMETOOLONG, "state folder path too long");
        return 0;
}

int hvp_state_subdir_open(const char *state_dir, const char *sub, bool create, char *path, size_t size,
                          int *ret_fd)
{
        _cleanup_close_ int top = -1;
        int r;

        if ((size_t)snprintf(path, size, "%s/%s", state_dir, sub) >= size)
                return hvp_fail(-ENAMETOOLONG, "state folder path too long");
        r = hvp_state_folder_open(AT_FDCWD, state_dir, state_dir, create, &top);
        if (r < 0)
                return r;
        return hvp_state_folder_open(top, sub, path, create, ret_fd);
}

static void state_file_close(struct state_file *f)
{
        if (f->dfd >= 0)
                close(f->dfd);
        f->dfd = -1;
}

/* A state file: a regular file of ours with no other name, never through a symlink. -ENOENT: none. */
static int state_file_fd(const struct state_file *f, int flags, int *ret_fd)
{
        _cleanup_close_ int fd = -1;
        struct stat st;

        fd = openat(f->dfd, f->name, flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
        if (fd < 0 && errno == ENOENT)
                return -ENOENT;
        if (fd < 0 && errno == ELOOP)
                return hvp_fail(-EPERM, "%s is a symlink: refusing it", f->path);
        if (fd < 0)
                return hvp_fail(-errno, "cannot open %s: %s", f->path, strerror(errno));
        if (fstat(fd, &st) < 0)
                return hvp_fail(-errno, "%s: %s", f->path, strerror(errno));
        if (!S_ISREG(st.st_mode) || st.st_nlink != 1)
                return hvp_fail(-EPERM, "%s is not a plain file (or has other names): refusing it", f->path);
        if (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)))
                return hvp_fail(-EPERM, "%s belongs to uid %u or is writable by others (mode %04o): refusing it",
                                f->path, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
        *ret_fd = fd;
        fd = -1;
        return 0;
}

static int state_read_json(const struct state_file *f, json_object **ret)
{
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *text = NULL;
        json_object *o;
        size_t len;
        int r;

        r = state_file_fd(f, O_RDONLY, &fd);
        if (r < 0)
                return r;
        r = hvp_read_fd_bounded(fd, f->path, RECORD_MAX_BYTES, (void **)&text, &len);
        if (r < 0)
                return r;
        o = json_tokener_parse(text);
        if (!o)
                return hvp_fail(-EINVAL, "%s is not valid JSON", f->path);
        *ret = o;
        return 0;
}

static int write_all(int fd, const char *buf, size_t len)
{
        while (len > 0) {
                ssize_t n = write(fd, buf, len);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return -1;
                buf += n;
                len -= (size_t)n;
        }
        return 0;
}

int hvp_state_write_atomic(int dfd, const char *name, const char *tmp_prefix, const char *path, const char *text)
{
        char tmp[HVP_PATH_MAX], hex[17];
        uint8_t rnd[8];
        int fd, r = 0;

        if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
                return hvp_fail(-EIO, "getrandom: %s", strerror(errno));
        hvp_hex_encode(rnd, sizeof(rnd), hex);
        if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp-%s", tmp_prefix, hex) >= sizeof(tmp))
                return hvp_fail(-ENAMETOOLONG, "state file name too long");
        fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return hvp_fail(-errno, "cannot write %s (as %s): %s", path, tmp, strerror(errno));
        if (write_all(fd, text, strlen(text)) < 0 || write_all(fd, "\n", 1) < 0 || fsync(fd) < 0)
                r = hvp_fail(-EIO, "writing %s (as %s): %s", path, tmp, strerror(errno));
        close(fd);
        if (r == 0 && renameat(dfd, tmp, dfd, name) < 0)
                r = hvp_fail(-errno, "renaming %s over %s: %s", tmp, path, strerror(errno));
        if (r < 0) {
                (void)unlinkat(dfd, tmp, 0);
                return r;
        }
        (void)fsync(dfd);
        return 0;
}

/* Atomically (hvp_state_write_atomic). */
static int state_write_json(const struct state_file *f, json_object *o)
{
        return hvp_state_write_atomic(f->dfd, f->name, f->name, f->path,
                                      json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
}

/* Write o, or read into *ret: the journal through the same checks. */
static int journal_io(const char *state_dir, const char *uuid, json_object *o, json_object **ret)
{
        struct state_file f;
        int r = state_file_open(state_dir, uuid, ".journal", o != NULL, &f);

        if (r == 0)
                r = o ? state_write_json(&f, o) : state_read_json(&f, ret);
        state_file_close(&f);
        return r;
}

int hvp_journal_write(const char *state_dir, const char *uuid, json_object *o)
{
        return journal_io(state_dir, uuid, o, NULL);
}

int hvp_journal_read(const char *state_dir, const char *uuid, json_object **ret)
{
        return journal_io(state_dir, uuid, NULL, ret);
}

int hvp_journal_remove(const char *state_dir, const char *uuid)
{
        struct state_file f;
        int r = state_file_open(state_dir, uuid, ".journal", false, &f);

        if (r == 0 && unlinkat(f.dfd, f.name, 0) < 0 && errno != ENOENT)
                r = hvp_fail(-errno, "cannot remove %s: %s", f.path, strerror(errno));
        state_file_close(&f);
        return r == -ENOENT ? 0 : r;
}

int hvp_journal_exists(const char *state_dir, const char *uuid)
{
        struct state_file f;
        struct stat st;
        int r = state_file_open(state_dir, uuid, ".journal", false, &f);

        if (r == 0) {
                /* Whatever is there (even a symlink, which recover refuses): a transaction to look at. */
                r = fstatat(f.dfd, f.name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? 1
                    : errno == ENOENT ? 0 : hvp_fail(-errno, "%s: %s", f.path, strerror(errno));
        }
        state_file_close(&f);
        return r == -ENOENT ? 0 : r;
}

void hvp_record_free(struct hvp_record *rec)
{
        if (!rec)
                return;
        for (size_t i = 0; i < rec->nr_entries; i++)
                hvp_plan_free(rec->entries[i].plan);
        free(rec->entries);
        for (size_t i = 0; i < rec->nr_retired; i++)
                hvp_retired_clear(&rec->retired[i]);
        free(rec->retired);
        free(rec);
}

static int record_append(struct hvp_record *rec, struct hvp_plan *plan, long long at, double pause_ms)
{
        struct hvp_record_entry *e;

        if (rec->nr_entries >= RECORD_MAX_ENTRIES)
                return hvp_fail(-E2BIG, "more than %u applied patches", RECORD_MAX_ENTRIES);
        e = realloc(rec->entries, (rec->nr_entries + 1) * sizeof(*e));
        if (!e)
                return -ENOMEM;
        rec->entries = e;
        rec->entries[rec->nr_entries++] = (struct hvp_record_entry){ plan, at, pause_ms };
        return 0;
}

int hvp_record_from_json(json_object *o, const char *uuid, const char *path, struct hvp_record **ret)
{
        struct hvp_record *rec;
        json_object *arr;
        int r;

        rec = calloc(1, sizeof(*rec));
        if (!rec)
                return -ENOMEM;
        snprintf(rec->uuid, sizeof(rec->uuid), "%s", uuid);
        if (!json_object_object_get_ex(o, "applied", &arr) || !json_object_is_type(arr, json_type_array)) {
                r = hvp_fail(-EINVAL, "%s: no \"applied\" array", path);
                goto fail;
        }
        for (size_t i = 0; i < json_object_array_length(arr); i++) {
                json_object *e = json_object_array_get_idx(arr, i), *plan_o, *v;
                struct hvp_plan *plan;
                long long at = 0;
                double pause_ms = 0;

                if (!json_object_object_get_ex(e, "plan", &plan_o)) {
                        r = hvp_fail(-EINVAL, "%s: entry %zu has no plan", path, i);
                        goto fail;
                }
                r = hvp_plan_from_json(plan_o, &plan);
                if (r < 0) {
                        hvp_fail_context(r, "%s", path);
                        goto fail;
                }
                if (json_object_object_get_ex(e, "applied_at", &v))
                        at = json_object_get_int64(v);
                if (json_object_object_get_ex(e, "pause_ms", &v))
                        pause_ms = json_object_get_double(v);
                r = record_append(rec, plan, at, pause_ms);
                if (r < 0) {
                        hvp_plan_free(plan);
                        goto fail;
                }
        }
        /* Retired area ranges (absent in records written before retirement existed). */
        if (json_object_object_get_ex(o, "retired", &arr)) {
                if (!json_object_is_type(arr, json_type_array) || json_object_array_length(arr) > HVP_RETIRED_MAX) {
                        r = hvp_fail(-EINVAL, "%s: bad \"retired\" array", path);
                        goto fail;
                }
                for (size_t i = 0; i < json_object_array_length(arr); i++) {
                        struct hvp_retired rt;

                        r = hvp_retired_from_json(json_object_array_get_idx(arr, i), &rt);
                        if (r == 0) {
                                r = hvp_record_add_retired(rec, &rt);
                                hvp_retired_clear(&rt);
                        }
                        if (r < 0) {
                                hvp_fail_context(r, "%s: retired range %zu", path, i);
                                goto fail;
                        }
                }
        }
        *ret = rec;
        return 0;
fail:
        hvp_record_free(rec);
        return r;
}

int hvp_record_load(const char *state_dir, const char *uuid, struct hvp_record **ret)
{
        struct hvp_record *rec;
        json_object *o = NULL;
        struct state_file f;
        const char *path = f.path;
        int r;

        r = state_file_open(state_dir, uuid, ".json", false, &f);
        if (r == 0)
                r = state_read_json(&f, &o);
        state_file_close(&f);
        if (r < 0 && r != -ENOENT)
                return r;
        if (r == -ENOENT) {
                rec = calloc(1, sizeof(*rec));
                if (!rec)
                        return -ENOMEM;
                snprintf(rec->uuid, sizeof(rec->uuid), "%s", uuid);
                *ret = rec;
                return 0;
        }
        r = hvp_record_from_json(o, uuid, path, ret);
        json_object_put(o);
        return r;
}

json_object *hvp_record_to_json(const struct hvp_record *rec)
{
        json_object *o, *arr;

        o = json_object_new_object();
        arr = json_object_new_array();
        json_object_object_add(o, "uuid", json_object_new_string(rec->uuid));
        for (size_t i = 0; i < rec->nr_entries; i++) {
                json_object *e = json_object_new_object();

                json_object_object_add(e, "plan", hvp_plan_to_json(rec->entries[i].plan));
                json_object_object_add(e, "applied_at", json_object_new_int64(rec->entries[i].applied_at));
                json_object_object_add(e, "pause_ms", json_object_new_double(rec->entries[i].pause_ms));
                json_object_array_add(arr, e);
        }
        json_object_object_add(o, "applied", arr);
        arr = json_object_new_array();
        for (size_t i = 0; i < rec->nr_retired; i++)
                json_object_array_add(arr, hvp_retired_to_json(&rec->retired[i]));
        json_object_object_add(o, "retired", arr);
        return o;
}

int hvp_record_save(const char *state_dir, const struct hvp_record *rec)
{
        json_object *o;
        struct state_file f;
        int r;

        r = hvp_fault_error("record-save");
        if (r == 0)
                r = state_file_open(state_dir, rec->uuid, ".json", true, &f);
        if (r < 0)
                return r;
        o = hvp_record_to_json(rec);
        r = state_write_json(&f, o);
        json_object_put(o);
        state_file_close(&f);
        return r;
}

struct hvp_record_entry *hvp_record_find(const struct hvp_record *rec, const char *patch_id)
{
        for (size_t i = 0; i < rec->nr_entries; i++)
                if (strcmp(rec->entries[i].plan->patch_id, patch_id) == 0)
                        return &rec->entries[i];
        return NULL;
}

struct hvp_record_entry *hvp_record_find_series(const struct hvp_record *rec, const char *series)
{
        for (size_t i = 0; i < rec->nr_entries; i++)
                if (strcmp(rec->entries[i].plan->series, series) == 0)
                        return &rec->entries[i];
        return NULL;
}

static void record_remove(struct hvp_record *rec, const char *patch_id)
{
        struct hvp_record_entry *e = hvp_record_find(rec, patch_id);
        size_t i;

        if (!e)
                return;
        i = (size_t)(e - rec->entries);
        hvp_plan_free(e->plan);
        memmove(e, e + 1, (rec->nr_entries - i - 1) * sizeof(*e));
        rec->nr_entries--;
}

int hvp_record_commit(struct hvp_record *rec, const struct hvp_commit *commit, double pause_ms)
{
        struct hvp_plan *copy = NULL;
        int r;

        if (commit->add) {
                r = hvp_plan_copy(commit->add, &copy);
                if (r < 0)
                        return r;
        }
        if (commit->remove_id) {
                const struct hvp_record_entry *gone = hvp_record_find(rec, commit->remove_id);

                /* Its area code may still run: retired, never erased (apply.h). */
                r = gone ? hvp_record_retire(rec, gone->plan) : 0;
                if (r < 0) {
                        hvp_plan_free(copy);
                        return r;
                }
                record_remove(rec, commit->remove_id);
        }
        if (copy)               /* idempotent: recovery may commit a transaction twice */
                record_remove(rec, copy->patch_id);
        if (copy) {
                r = record_append(rec, copy, (long long)time(NULL), pause_ms);
                if (r < 0) {
                        hvp_plan_free(copy);
                        return r;
                }
        }
        return 0;
}

int hvp_domain_lock(const char *state_dir, const char *uuid, int *ret_fd)
{
        struct state_file f;
        int fd = -1, r;

        r = state_file_open(state_dir, uuid, ".lock", true, &f);
        if (r == 0)
                r = state_file_fd(&f, O_RDWR | O_CREAT, &fd);
        if (r == 0 && flock(fd, LOCK_EX | LOCK_NB) < 0) {
                r = errno == EWOULDBLOCK ? hvp_fail(-EBUSY, "another hvpatch is working on this domain (%s)", f.path)
                                         : hvp_fail(-errno, "cannot lock %s: %s", f.path, strerror(errno));
                close(fd);
        }
        state_file_close(&f);
        if (r < 0)
                return r;
        *ret_fd = fd;
        return 0;
}

void hvp_domain_unlock(int fd)
{
        if (fd >= 0)
                close(fd);      /* releases the flock */
}

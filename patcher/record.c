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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include <hvpatch/apply.h>

#include "common/error.h"
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

static int ensure_dir(const char *path)
{
        if (mkdir(path, 0700) < 0 && errno != EEXIST)
                return hvp_fail(-errno, "cannot create %s: %s", path, strerror(errno));
        return 0;
}

int hvp_state_path(const char *state_dir, const char *uuid, const char *suffix, char *out, size_t size)
{
        char dir[4096];
        int r;

        if (!state_dir)
                state_dir = HVP_STATE_DIR;
        r = check_key(uuid);
        if (r < 0)
                return r;
        snprintf(dir, sizeof(dir), "%s", state_dir);
        if ((r = ensure_dir(dir)) < 0)
                return r;
        if ((size_t)snprintf(dir, sizeof(dir), "%s/domains", state_dir) >= sizeof(dir))
                return hvp_fail(-ENAMETOOLONG, "state folder path too long");
        if ((r = ensure_dir(dir)) < 0)
                return r;
        if ((size_t)snprintf(out, size, "%s/%s%s", dir, uuid, suffix) >= size)
                return hvp_fail(-ENAMETOOLONG, "state file path too long");
        return 0;
}

int hvp_json_write_atomic(const char *path, json_object *o)
{
        char tmp[4200], dir[4096], *slash;
        const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
        size_t len = strlen(text);
        int fd, r = 0;

        snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return hvp_fail(-errno, "cannot write %s: %s", tmp, strerror(errno));
        if (write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1 || fsync(fd) < 0)
                r = hvp_fail(-EIO, "writing %s: %s", tmp, strerror(errno));
        close(fd);
        if (r == 0 && rename(tmp, path) < 0)
                r = hvp_fail(-errno, "renaming %s: %s", tmp, strerror(errno));
        if (r < 0) {
                unlink(tmp);
                return r;
        }
        snprintf(dir, sizeof(dir), "%s", path);
        slash = strrchr(dir, '/');
        if (slash) {
                *slash = '\0';
                fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (fd >= 0) {
                        fsync(fd);
                        close(fd);
                }
        }
        return 0;
}

int hvp_json_read_file(const char *path, json_object **ret)
{
        struct stat st;
        json_object *o;
        char *text;
        int fd, r = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? -ENOENT : hvp_fail(-errno, "cannot open %s: %s", path, strerror(errno));
        if (fstat(fd, &st) < 0 || st.st_size > RECORD_MAX_BYTES) {
                close(fd);
                return hvp_fail(-E2BIG, "%s is larger than %u bytes", path, RECORD_MAX_BYTES);
        }
        text = malloc((size_t)st.st_size + 1);
        if (!text) {
                close(fd);
                return -ENOMEM;
        }
        if (read(fd, text, (size_t)st.st_size) != st.st_size)
                r = hvp_fail(-EIO, "reading %s: %s", path, strerror(errno));
        close(fd);
        if (r == 0) {
                text[st.st_size] = '\0';
                o = json_tokener_parse(text);
                if (!o)
                        r = hvp_fail(-EINVAL, "%s is not valid JSON", path);
                else
                        *ret = o;
        }
        free(text);
        return r;
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

int hvp_record_load(const char *state_dir, const char *uuid, struct hvp_record **ret)
{
        struct hvp_record *rec;
        json_object *o = NULL, *arr;
        char path[4300];
        int r;

        r = hvp_state_path(state_dir, uuid, ".json", path, sizeof(path));
        if (r < 0)
                return r;
        rec = calloc(1, sizeof(*rec));
        if (!rec)
                return -ENOMEM;
        snprintf(rec->uuid, sizeof(rec->uuid), "%s", uuid);
        r = hvp_json_read_file(path, &o);
        if (r == -ENOENT) {
                *ret = rec;
                return 0;
        }
        if (r < 0)
                goto fail;
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
        json_object_put(o);
        *ret = rec;
        return 0;
fail:
        json_object_put(o);
        hvp_record_free(rec);
        return r;
}

int hvp_record_save(const char *state_dir, const struct hvp_record *rec)
{
        json_object *o, *arr;
        char path[4300];
        int r;

        r = hvp_state_path(state_dir, rec->uuid, ".json", path, sizeof(path));
        if (r < 0)
                return r;
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
        r = hvp_json_write_atomic(path, o);
        json_object_put(o);
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
        char path[4300];
        int fd, r;

        r = hvp_state_path(state_dir, uuid, ".lock", path, sizeof(path));
        if (r < 0)
                return r;
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
                return hvp_fail(-errno, "cannot open lock %s: %s", path, strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                r = errno == EWOULDBLOCK ? hvp_fail(-EBUSY, "another hvpatch is working on this domain (%s)", path)
                                         : hvp_fail(-errno, "cannot lock %s: %s", path, strerror(errno));
                close(fd);
                return r;
        }
        *ret_fd = fd;
        return 0;
}

void hvp_domain_unlock(int fd)
{
        if (fd >= 0)
                close(fd);      /* releases the flock */
}

/*
 * Bad marks (include/hvpatch/health.h): STATE_DIR/bad/BUILD-ID/PATCH-ID.json, one
 * small JSON document per bundle and kernel build that failed the health gate.
 *
 * The files decide whether a bundle may be written into a guest kernel again, so they
 * get the state folder's rules: folders of ours that nobody else can write, no symlink
 * followed (openat from the folder, O_NOFOLLOW), writes through a random temporary
 * name renamed over. Their contents are hostile input all the same: bounded reads,
 * bounded listings, every field checked; a malformed file named PATCH-ID.json still
 * counts as a mark, kind "unreadable" (a broken file never lets a bundle through);
 * other names are skipped with a warning.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include <hvpatch/health.h>

#include "common/error.h"
#include "common/file.h"
#include "common/util.h"
#include "patcher/badmark.h"
#include "patcher/record.h"

#define SUFFIX ".json"

static bool valid_build_id(const char *s)
{
        size_t n = strlen(s);

        if (n < 2 || n > 128 || n % 2)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

/* A manifest token (docs/schemas/manifest.rng): [A-Za-z0-9._-]{1,127}. */
static bool valid_patch_id(const char *s)
{
        size_t n = strnlen(s, HVP_ID_MAX);

        if (n == 0 || n >= HVP_ID_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                      s[i] == '.' || s[i] == '_' || s[i] == '-'))
                        return false;
        return true;
}

/* Lower-case copy of a build id (bundles and kernels may spell it either way). */
static int norm_build_id(const char *in, char *out)
{
        size_t n = strnlen(in, 130);

        if (n > 128)
                return hvp_fail(-EINVAL, "bad build id: longer than 128 hex digits");
        for (size_t i = 0; i <= n; i++)
                out[i] = in[i] >= 'A' && in[i] <= 'F' ? (char)(in[i] - 'A' + 'a') : in[i];
        if (!valid_build_id(out))
                return hvp_fail(-EINVAL, "bad build id '%.130s': want 2 to 128 hex digits", in);
        return 0;
}

/* STATE_DIR/bad (and STATE_DIR), created if asked: the state folder's rules (patcher/record.h). */
static int open_bad_dir(const char *state_dir, bool create, int *ret_fd, char *path, size_t size)
{
        return hvp_state_subdir_open(state_dir ? state_dir : HVP_STATE_DIR, HVP_BAD_DIR, create, path, size, ret_fd);
}

static void copy_str(json_object *o, const char *key, char *out, size_t size)
{
        json_object *v;

        out[0] = '\0';
        if (json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
                snprintf(out, size, "%s", json_object_get_string(v));
}

int hvp_bad_mark_parse(const char *text, size_t len, const char *build_id, const char *patch_id, const char *path,
                       struct hvp_bad_mark *m)
{
        char b[2 * 64 + 3], p[HVP_ID_MAX + 2];
        json_object *o, *v;
        int r = 0;

        memset(m, 0, sizeof(*m));
        snprintf(m->build_id, sizeof(m->build_id), "%s", build_id);
        snprintf(m->patch_id, sizeof(m->patch_id), "%s", patch_id);
        if (len > HVP_BAD_FILE_MAX)
                return hvp_fail(-EINVAL, "%s is over %u bytes", path, HVP_BAD_FILE_MAX);
        if (strnlen(text, len) != len)
                return hvp_fail(-EINVAL, "%s holds a NUL byte", path);
        o = json_tokener_parse(text);
        if (!o || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return hvp_fail(-EINVAL, "%s is not a JSON object", path);
        }
        copy_str(o, "build_id", b, sizeof(b));
        copy_str(o, "patch_id", p, sizeof(p));
        if (strcmp(b, build_id) != 0 || strcmp(p, patch_id) != 0)
                r = hvp_fail(-EINVAL, "%s names build '%.40s' and patch '%.40s', not its own", path, b, p);
        copy_str(o, "series", m->series, sizeof(m->series));
        copy_str(o, "domain", m->domain, sizeof(m->domain));
        copy_str(o, "kind", m->kind, sizeof(m->kind));
        copy_str(o, "reason", m->reason, sizeof(m->reason));
        if (json_object_object_get_ex(o, "seq", &v) && json_object_is_type(v, json_type_int) &&
            json_object_get_int64(v) >= 0)
                m->seq = (uint64_t)json_object_get_int64(v);
        if (json_object_object_get_ex(o, "at", &v) && json_object_is_type(v, json_type_int))
                m->at = (time_t)json_object_get_int64(v);
        json_object_put(o);
        return r;
}

/*
 * Read the mark file name (in build folder dfd) into m. -EINVAL with the reason when it
 * is not a mark of this build and patch; -ENOENT when it is missing.
 */
static int read_mark(int dfd, const char *path, const char *build_id, const char *patch_id, struct hvp_bad_mark *m)
{
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *text = NULL;
        char name[HVP_ID_MAX + sizeof(SUFFIX)];
        struct stat st;
        size_t len;
        int r;

        memset(m, 0, sizeof(*m));
        snprintf(m->build_id, sizeof(m->build_id), "%s", build_id);
        snprintf(m->patch_id, sizeof(m->patch_id), "%s", patch_id);
        snprintf(name, sizeof(name), "%s" SUFFIX, patch_id);
        fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT)
                return -ENOENT;
        if (fd < 0 && errno == ELOOP)
                return hvp_fail(-EINVAL, "%s is a symlink", path);
        if (fd < 0)
                return hvp_fail(-EINVAL, "cannot open %s: %s", path, strerror(errno));
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return hvp_fail(-EINVAL, "%s is not a regular file", path);
        if (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)))
                return hvp_fail(-EINVAL, "%s belongs to uid %u or is writable by others (mode %04o)", path,
                                (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
        r = hvp_read_fd_bounded(fd, path, HVP_BAD_FILE_MAX, (void **)&text, &len);
        if (r < 0)
                return hvp_fail(-EINVAL, "%s", hvp_last_error());
        return hvp_bad_mark_parse(text, len, build_id, patch_id, path, m);
}

int hvp_bad_mark_add(const char *state_dir, const struct hvp_bad_mark *m)
{
        _cleanup_close_ int bad = -1, dfd = -1;
        char dir[HVP_PATH_MAX], build[2 * 64 + 1], name[HVP_ID_MAX + sizeof(SUFFIX)], tmp[HVP_ID_MAX + 1];
        char path[HVP_PATH_MAX + sizeof(name) + 1];
        json_object *o;
        const char *text;
        int r;

        if (!m)
                return hvp_fail(-EINVAL, "hvp_bad_mark_add: no mark");
        r = norm_build_id(m->build_id, build);
        if (r < 0)
                return r;
        if (!valid_patch_id(m->patch_id))
                return hvp_fail(-EINVAL, "bad patch id '%.130s': want 1 to 127 of [A-Za-z0-9._-]", m->patch_id);
        r = open_bad_dir(state_dir, true, &bad, dir, sizeof(dir));
        if (r < 0)
                return r;
        if ((size_t)snprintf(dir + strlen(dir), sizeof(dir) - strlen(dir), "/%s", build) >= sizeof(dir))
                return hvp_fail(-ENAMETOOLONG, "state folder path too long");
        r = hvp_state_folder_open(bad, build, dir, true, &dfd);
        if (r < 0)
                return r;
        o = json_object_new_object();
        json_object_object_add(o, "build_id", json_object_new_string(build));
        json_object_object_add(o, "patch_id", json_object_new_string(m->patch_id));
        json_object_object_add(o, "series", json_object_new_string(m->series));
        json_object_object_add(o, "seq", json_object_new_int64((int64_t)HVP_MIN(m->seq, (uint64_t)INT64_MAX)));
        json_object_object_add(o, "domain", json_object_new_string(m->domain));
        json_object_object_add(o, "at", json_object_new_int64((int64_t)m->at));
        json_object_object_add(o, "kind", json_object_new_string(m->kind));
        json_object_object_add(o, "reason", json_object_new_string(m->reason));
        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
        if (strlen(text) + 1 > HVP_BAD_FILE_MAX) {
                json_object_put(o);
                return hvp_fail(-E2BIG, "the mark of %s is over %u bytes", m->patch_id, HVP_BAD_FILE_MAX);
        }
        snprintf(name, sizeof(name), "%s" SUFFIX, m->patch_id);
        /* a leading '#' never matches SUFFIX's listing nor a patch id: no reader takes it */
        snprintf(tmp, sizeof(tmp), "#%s", m->patch_id);
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        r = hvp_state_write_atomic(dfd, name, tmp, path, text);
        json_object_put(o);
        return r;
}

int hvp_bad_mark_find(const char *state_dir, const char *build_id, const char *patch_id, struct hvp_bad_mark *ret)
{
        _cleanup_close_ int bad = -1, dfd = -1;
        char dir[HVP_PATH_MAX], build[2 * 64 + 1], path[HVP_PATH_MAX + HVP_ID_MAX + 8];
        struct hvp_bad_mark m;
        int r;

        if (!build_id || !patch_id)
                return hvp_fail(-EINVAL, "hvp_bad_mark_find: no build or patch id");
        r = norm_build_id(build_id, build);
        if (r < 0)
                return r;
        if (!valid_patch_id(patch_id))
                return 0;       /* no mark can have such a name */
        r = open_bad_dir(state_dir, false, &bad, dir, sizeof(dir));
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        snprintf(path, sizeof(path), "%s/%s", dir, build);
        r = hvp_state_folder_open(bad, build, path, false, &dfd);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        snprintf(path + strlen(path), sizeof(path) - strlen(path), "/%s" SUFFIX, patch_id);
        r = read_mark(dfd, path, build, patch_id, &m);
        if (r == -ENOENT)
                return 0;
        if (r < 0) {
                /* broken, but there: it still holds the bundle back */
                snprintf(m.reason, sizeof(m.reason), "unreadable mark: %s", hvp_last_error());
                snprintf(m.kind, sizeof(m.kind), "unreadable");
        }
        if (ret)
                *ret = m;
        return 1;
}

static int cmp_mark(const void *a, const void *b)
{
        const struct hvp_bad_mark *x = a, *y = b;
        int c = strcmp(x->build_id, y->build_id);

        return c ? c : strcmp(x->patch_id, y->patch_id);
}

/* A listed file name: PATCH-ID.json, the id valid. Copies the id into out. */
static bool mark_name(const char *n, char *out)
{
        size_t len = strlen(n);

        if (len <= strlen(SUFFIX) || len - strlen(SUFFIX) >= HVP_ID_MAX || strcmp(n + len - strlen(SUFFIX), SUFFIX))
                return false;
        memcpy(out, n, len - strlen(SUFFIX));
        out[len - strlen(SUFFIX)] = '\0';
        return valid_patch_id(out);
}

/* The marks of one build folder into l (bounded by HVP_BAD_MAX_MARKS in all). */
static int list_build(int bad, const char *dir, const char *build, struct hvp_bad_list *l, size_t *cap)
{
        _cleanup_close_ int dfd = -1;
        char path[HVP_PATH_MAX + 2 * HVP_ID_MAX + 16];
        struct dirent *d;
        size_t seen = 0;
        DIR *dp;
        int r, fd;

        snprintf(path, sizeof(path), "%s/%s", dir, build);
        r = hvp_state_folder_open(bad, build, path, false, &dfd);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        fd = dup(dfd);
        if (fd < 0 || !(dp = fdopendir(fd))) {
                if (fd >= 0)
                        close(fd);
                return hvp_fail(-EIO, "cannot list %s: %s", path, strerror(errno));
        }
        r = 0;
        while ((d = readdir(dp)) != NULL) {
                char id[HVP_ID_MAX];
                struct hvp_bad_mark *m;

                if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0 || d->d_name[0] == '#')
                        continue;
                if (++seen > HVP_BAD_MAX_MARKS) {
                        r = hvp_fail(-E2BIG, "%s: more than %u entries", path, HVP_BAD_MAX_MARKS);
                        break;
                }
                if (!mark_name(d->d_name, id)) {
                        hvp_warn("bad marks: %s/%.200s is not PATCH-ID.json: skipped", path, d->d_name);
                        l->n_skipped++;
                        continue;
                }
                if (l->n == HVP_BAD_MAX_MARKS) {
                        r = hvp_fail(-E2BIG, "more than %u bad marks", HVP_BAD_MAX_MARKS);
                        break;
                }
                if (l->n == *cap) {
                        size_t ncap = *cap ? *cap * 2 : 16;
                        struct hvp_bad_mark *nm = realloc(l->marks, ncap * sizeof(*nm));

                        if (!nm) {
                                r = hvp_fail(-ENOMEM, "out of memory");
                                break;
                        }
                        l->marks = nm;
                        *cap = ncap;
                }
                m = &l->marks[l->n];
                snprintf(path, sizeof(path), "%s/%s/%s", dir, build, d->d_name);
                r = read_mark(dfd, path, build, id, m);
                if (r == -ENOENT) {     /* cleared meanwhile */
                        r = 0;
                        continue;
                }
                if (r < 0) {
                        /* as find: a broken mark still holds its bundle back */
                        hvp_warn("bad marks: %s is unreadable (still counts as a mark): %s", path, hvp_last_error());
                        snprintf(m->kind, sizeof(m->kind), "unreadable");
                        snprintf(m->reason, sizeof(m->reason), "unreadable mark: %s", hvp_last_error());
                        r = 0;
                }
                l->n++;
        }
        closedir(dp);
        return r;
}

int hvp_bad_list_load(const char *state_dir, const char *build_id, struct hvp_bad_list **ret)
{
        _cleanup_close_ int bad = -1;
        struct hvp_bad_list *l;
        char dir[HVP_PATH_MAX], build[2 * 64 + 1];
        size_t cap = 0;
        int r;

        if (!ret)
                return hvp_fail(-EINVAL, "hvp_bad_list_load: no result");
        if (build_id) {
                r = norm_build_id(build_id, build);
                if (r < 0)
                        return r;
        }
        l = calloc(1, sizeof(*l));
        if (!l)
                return hvp_fail(-ENOMEM, "out of memory");
        r = open_bad_dir(state_dir, false, &bad, dir, sizeof(dir));
        if (r == -ENOENT) {
                *ret = l;
                return 0;
        }
        if (r < 0)
                goto fail;
        if (build_id) {
                r = list_build(bad, dir, build, l, &cap);
        } else {
                struct dirent *d;
                size_t seen = 0;
                int fd = dup(bad);
                DIR *dp = fd >= 0 ? fdopendir(fd) : NULL;

                if (!dp) {
                        if (fd >= 0)
                                close(fd);
                        r = hvp_fail(-EIO, "cannot list %s: %s", dir, strerror(errno));
                        goto fail;
                }
                while (r == 0 && (d = readdir(dp)) != NULL) {
                        if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
                                continue;
                        if (++seen > HVP_BAD_MAX_BUILDS) {
                                r = hvp_fail(-E2BIG, "%s: more than %u entries", dir, HVP_BAD_MAX_BUILDS);
                                break;
                        }
                        if (!valid_build_id(d->d_name)) {
                                hvp_warn("bad marks: %s/%.200s is not a build id folder: skipped", dir, d->d_name);
                                l->n_skipped++;
                                continue;
                        }
                        r = list_build(bad, dir, d->d_name, l, &cap);
                }
                closedir(dp);
        }
        if (r < 0)
                goto fail;
        if (l->n)
                qsort(l->marks, l->n, sizeof(*l->marks), cmp_mark);
        *ret = l;
        return 0;
fail:
        hvp_bad_list_free(l);
        return r;
}

void hvp_bad_list_free(struct hvp_bad_list *l)
{
        if (!l)
                return;
        free(l->marks);
        free(l);
}

const struct hvp_bad_mark *hvp_bad_list_find(const struct hvp_bad_list *l, const char *build_id,
                                             const char *patch_id)
{
        char build[2 * 64 + 1];
        size_t n;

        if (!l || !build_id || !patch_id)
                return NULL;
        n = strnlen(build_id, sizeof(build));
        if (n >= sizeof(build))
                return NULL;
        for (size_t i = 0; i <= n; i++)
                build[i] = build_id[i] >= 'A' && build_id[i] <= 'F' ? (char)(build_id[i] - 'A' + 'a') : build_id[i];
        for (size_t i = 0; i < l->n; i++)
                if (strcmp(l->marks[i].build_id, build) == 0 && strcmp(l->marks[i].patch_id, patch_id) == 0)
                        return &l->marks[i];
        return NULL;
}

int hvp_bad_mark_clear(const char *state_dir, const char *build_id, const char *patch_id, size_t *ret_removed)
{
        _cleanup_close_ int bad = -1;
        struct hvp_bad_list *l = NULL;
        char dir[HVP_PATH_MAX], build[2 * 64 + 1];
        size_t removed = 0;
        int r;

        if (ret_removed)
                *ret_removed = 0;
        if (patch_id && !build_id)
                return hvp_fail(-EINVAL, "clearing a patch's mark needs its kernel build id");
        if (build_id) {
                r = norm_build_id(build_id, build);
                if (r < 0)
                        return r;
        }
        if (patch_id && !valid_patch_id(patch_id))
                return hvp_fail(-EINVAL, "bad patch id '%.130s': want 1 to 127 of [A-Za-z0-9._-]", patch_id);
        r = open_bad_dir(state_dir, false, &bad, dir, sizeof(dir));
        if (r == -ENOENT)
                return patch_id ? hvp_fail(-ENOENT, "no mark of %s for build %s", patch_id, build) : 0;
        if (r < 0)
                return r;
        if (patch_id) {
                _cleanup_close_ int dfd = -1;
                char path[HVP_PATH_MAX + HVP_ID_MAX + 8], name[HVP_ID_MAX + sizeof(SUFFIX)];

                snprintf(path, sizeof(path), "%s/%s", dir, build);
                r = hvp_state_folder_open(bad, build, path, false, &dfd);
                if (r == -ENOENT)
                        return hvp_fail(-ENOENT, "no mark of %s for build %s", patch_id, build);
                if (r < 0)
                        return r;
                snprintf(name, sizeof(name), "%s" SUFFIX, patch_id);
                if (unlinkat(dfd, name, 0) < 0) {
                        if (errno == ENOENT)
                                return hvp_fail(-ENOENT, "no mark of %s for build %s", patch_id, build);
                        return hvp_fail(-errno, "removing %s/%s: %s", path, name, strerror(errno));
                }
                (void)unlinkat(bad, build, AT_REMOVEDIR);      /* when it was the last one */
                if (ret_removed)
                        *ret_removed = 1;
                return 0;
        }
        /* Every mark of a build, or every mark: what a listing finds (malformed files too). */
        r = hvp_bad_list_load(state_dir, build_id ? build : NULL, &l);
        if (r < 0)
                return r;
        for (size_t i = 0; i < l->n; i++) {
                char name[HVP_PATH_MAX];

                snprintf(name, sizeof(name), "%s/%s" SUFFIX, l->marks[i].build_id, l->marks[i].patch_id);
                if (unlinkat(bad, name, 0) == 0)
                        removed++;
                else if (errno != ENOENT)
                        hvp_warn("removing %s/%s: %s", dir, name, strerror(errno));
                (void)unlinkat(bad, l->marks[i].build_id, AT_REMOVEDIR);
        }
        if (l->n_skipped)
                hvp_warn("%zu malformed files in %s were left: remove them by hand", l->n_skipped, dir);
        hvp_bad_list_free(l);
        if (ret_removed)
                *ret_removed = removed;
        return 0;
}

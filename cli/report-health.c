/*
 * The "last health result" column of hvpatch report, from the health gate's bad marks:
 * STATE_DIR/bad/BUILD-ID/PATCH-ID.json, one small JSON object per bundle the gate
 * failed on that kernel build ({"patch_id", "kind", "at", "reason", ...}).
 *
 * Kept small and apart on purpose: when the health gate's library calls
 * (hvp_bad_list_load, include/hvpatch/health.h) are merged, this file becomes one call.
 * Until then it reads the folder itself, bounded: at most REPORT_SCAN_MAX names,
 * REPORT_MAX_MARKS marks, REPORT_MARK_FILE_MAX bytes a file, no symlinks. A mark file
 * that cannot be parsed still counts as a mark (kind "unreadable"), as the gate does.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/report.h"
#include "common/escape.h"

#define REPORT_SCAN_MAX 4096
#define REPORT_MARK_FILE_MAX (16u << 10)

static bool token(const char *s, size_t len)
{
        if (len == 0 || len >= HVP_ID_MAX)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
                      s[i] == '.' || s[i] == '_' || s[i] == '-'))
                        return false;
        return true;
}

static bool hex(const char *s)
{
        if (!*s)
                return false;
        for (; *s; s++)
                if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
                        return false;
        return true;
}

/* The kind and time of one mark file (dirfd-relative, no symlinks); "unreadable" when not a mark. */
static void read_mark(int dfd, const char *file, struct report_mark *m)
{
        char buf[REPORT_MARK_FILE_MAX + 1];
        struct stat st;
        json_object *o = NULL, *v;
        ssize_t n;
        int fd;

        snprintf(m->kind, sizeof(m->kind), "unreadable");
        fd = openat(dfd, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
                return;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > REPORT_MARK_FILE_MAX) {
                close(fd);
                return;
        }
        n = read(fd, buf, REPORT_MARK_FILE_MAX);
        close(fd);
        if (n <= 0 || memchr(buf, '\0', (size_t)n))
                return;
        buf[n] = '\0';
        o = json_tokener_parse(buf);
        if (!o || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return;
        }
        if (json_object_object_get_ex(o, "kind", &v) && json_object_is_type(v, json_type_string))
                snprintf(m->kind, sizeof(m->kind), "%s", json_object_get_string(v));
        else
                m->kind[0] = '\0';
        hvp_text_sanitize(m->kind);
        if (json_object_object_get_ex(o, "at", &v) && json_object_is_type(v, json_type_int))
                m->at = json_object_get_int64(v);
        json_object_put(o);
}

static int cmp_mark(const void *a, const void *b)
{
        return strcmp(((const struct report_mark *)a)->patch_id, ((const struct report_mark *)b)->patch_id);
}

void report_read_marks(const char *state_dir, struct report_row *row)
{
        char path[4096];
        struct dirent *de;
        size_t scanned = 0;
        DIR *d;

        row->n_marks = 0;
        if (!hex(row->build_id))
                return;
        if ((size_t)snprintf(path, sizeof(path), "%s/bad/%s", state_dir, row->build_id) >= sizeof(path))
                return;
        d = opendir(path);
        if (!d) {
                if (errno != ENOENT)
                        snprintf(row->health_note, sizeof(row->health_note), "bad marks unreadable: %s",
                                 strerror(errno));
                return;
        }
        while ((de = readdir(d)) && scanned++ < REPORT_SCAN_MAX) {
                size_t len = strlen(de->d_name);
                struct report_mark *m;

                if (len <= 5 || strcmp(de->d_name + len - 5, ".json") != 0 || !token(de->d_name, len - 5))
                        continue;
                if (row->n_marks == REPORT_MAX_MARKS) {
                        snprintf(row->health_note, sizeof(row->health_note), "more than %d bad marks: not all listed",
                                 REPORT_MAX_MARKS);
                        break;
                }
                m = &row->marks[row->n_marks++];
                memset(m, 0, sizeof(*m));
                memcpy(m->patch_id, de->d_name, len - 5);
                read_mark(dirfd(d), de->d_name, m);
        }
        closedir(d);
        qsort(row->marks, row->n_marks, sizeof(row->marks[0]), cmp_mark);
        for (size_t i = 0; i < row->n_patches; i++)
                for (size_t j = 0; j < row->n_marks; j++)
                        if (strcmp(row->patches[i].id, row->marks[j].patch_id) == 0)
                                row->patches[i].marked_bad = true;
}

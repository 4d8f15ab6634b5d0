/*
 * The "last health result" column of hvpatch report: the health gate's bad marks for
 * the guest's running kernel build, through the gate's own reader (hvp_bad_list_load,
 * include/hvpatch/health.h: bounded, no symlinks followed, an unreadable mark file is
 * a mark of kind "unreadable", a folder others may write is refused).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <hvpatch/health.h>

#include "cli/report.h"
#include "common/escape.h"

static bool hex(const char *s)
{
        if (!*s)
                return false;
        for (; *s; s++)
                if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
                        return false;
        return true;
}

void report_read_marks(const char *state_dir, struct report_row *row)
{
        struct hvp_bad_list *l = NULL;
        int r;

        row->n_marks = 0;
        if (!hex(row->build_id))
                return;
        r = hvp_bad_list_load(state_dir, row->build_id, &l);
        if (r < 0) {
                snprintf(row->health_note, sizeof(row->health_note), "bad marks unreadable: %s", hvp_last_error());
                return;
        }
        for (size_t i = 0; i < l->n; i++) {
                struct report_mark *m;

                if (row->n_marks == REPORT_MAX_MARKS) {
                        snprintf(row->health_note, sizeof(row->health_note), "more than %d bad marks: not all listed",
                                 REPORT_MAX_MARKS);
                        break;
                }
                m = &row->marks[row->n_marks++];
                memset(m, 0, sizeof(*m));
                snprintf(m->patch_id, sizeof(m->patch_id), "%s", l->marks[i].patch_id);
                snprintf(m->kind, sizeof(m->kind), "%s", l->marks[i].kind);
                hvp_text_sanitize(m->kind);
                m->at = (long long)l->marks[i].at;
        }
        hvp_bad_list_free(l);
        for (size_t i = 0; i < row->n_patches; i++)
                for (size_t j = 0; j < row->n_marks; j++)
                        if (strcmp(row->patches[i].id, row->marks[j].patch_id) == 0)
                                row->patches[i].marked_bad = true;
}

/* Printing the health gate's report and the bad marks (cli/health.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/health.h"

static json_object *hex64(uint64_t v)
{
        char buf[24];

        snprintf(buf, sizeof(buf), "0x%llx", (unsigned long long)v);
        return json_object_new_string(buf);
}

static json_object *taint_letters(uint64_t mask)
{
        json_object *arr = json_object_new_array();

        for (unsigned bit = 0; bit < 64; bit++) {
                char name[32];

                if (!(mask & (1ull << bit)))
                        continue;
                if (hvp_taint_name(bit))
                        snprintf(name, sizeof(name), "%c:%s", hvp_taint_letter(bit), hvp_taint_name(bit));
                else
                        snprintf(name, sizeof(name), "bit%u", bit);
                json_object_array_add(arr, json_object_new_string(name));
        }
        return arr;
}

json_object *cli_health_json(const struct hvp_health_report *h)
{
        json_object *o = json_object_new_object(), *lines = json_object_new_array();

        json_object_object_add(o, "result", json_object_new_string(hvp_health_result_name(h->result)));
        json_object_object_add(o, "kind", h->kind[0] ? json_object_new_string(h->kind) : NULL);
        json_object_object_add(o, "reason", h->reason[0] ? json_object_new_string(h->reason) : NULL);
        json_object_object_add(o, "seconds", json_object_new_double(h->seconds));
        json_object_object_add(o, "polls", json_object_new_int((int)h->polls));
        if (h->taint_known) {
                json_object *t = json_object_new_object();

                json_object_object_add(t, "before", hex64(h->taint_before));
                json_object_object_add(t, "after", hex64(h->taint_after));
                json_object_object_add(t, "new", hex64(h->taint_new));
                json_object_object_add(t, "before_flags", taint_letters(h->taint_before));
                json_object_object_add(t, "new_flags", taint_letters(h->taint_new));
                json_object_object_add(o, "taint", t);
        } else {
                json_object_object_add(o, "taint", NULL);
        }
        json_object_object_add(o, "state", h->state[0] ? json_object_new_string(h->state) : NULL);
        json_object_object_add(o, "state_reason", h->state_reason[0] ? json_object_new_string(h->state_reason) : NULL);
        json_object_object_add(o, "pvpanic", json_object_new_boolean(h->pvpanic));
        for (size_t i = 0; i < h->n_lines; i++)
                json_object_array_add(lines, json_object_new_string(h->lines[i]));
        json_object_object_add(o, "log", lines);
        if (h->log_note[0])
                json_object_object_add(o, "log_note", json_object_new_string(h->log_note));
        if (h->result == HVP_HEALTH_FAIL) {
                json_object_object_add(o, "reverted", json_object_new_boolean(h->reverted));
                if (h->revert_error[0])
                        json_object_object_add(o, "revert_error", json_object_new_string(h->revert_error));
                json_object_object_add(o, "marked_bad", json_object_new_boolean(h->marked_bad));
                if (h->mark_error[0])
                        json_object_object_add(o, "mark_error", json_object_new_string(h->mark_error));
        }
        return o;
}

void cli_health_print(const struct hvp_health_report *h, const char *prefix)
{
        char names[256];

        if (h->result == HVP_HEALTH_PASS) {
                printf("%shealth gate: pass (%.1f s watched, taint %s)\n", prefix, h->seconds,
                       h->taint_known ? hvp_taint_names(h->taint_after, names, sizeof(names)) : "unknown");
                return;
        }
        if (h->result == HVP_HEALTH_INTERRUPTED) {
                printf("%shealth gate: interrupted after %.1f s: %s (nothing seen, nothing done)\n", prefix,
                       h->seconds, h->reason);
                return;
        }
        if (h->result != HVP_HEALTH_FAIL)
                return;
        printf("%shealth gate: FAIL after %.1f s: %s\n", prefix, h->seconds, h->reason);
        if (h->taint_known)
                printf("%s  taint before: %s\n", prefix, hvp_taint_names(h->taint_before, names, sizeof(names)));
        for (size_t i = 0; i < h->n_lines; i++)
                printf("%s  guest: %s\n", prefix, h->lines[i]);
        if (h->log_note[0])
                printf("%s  (%s)\n", prefix, h->log_note);
        printf("%s  %s; %s\n", prefix, h->reverted ? "reverted" : h->revert_error,
               h->marked_bad ? "marked bad for this kernel build" : h->mark_error);
}

json_object *cli_bad_mark_json(const struct hvp_bad_mark *m)
{
        json_object *o = json_object_new_object();
        char when[32] = "";
        struct tm tm;

        if (m->at && gmtime_r(&m->at, &tm))
                strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        json_object_object_add(o, "build_id", json_object_new_string(m->build_id));
        json_object_object_add(o, "patch_id", json_object_new_string(m->patch_id));
        json_object_object_add(o, "series", json_object_new_string(m->series));
        json_object_object_add(o, "seq", json_object_new_int64((int64_t)m->seq));
        json_object_object_add(o, "domain", json_object_new_string(m->domain));
        json_object_object_add(o, "at", when[0] ? json_object_new_string(when) : NULL);
        json_object_object_add(o, "kind", json_object_new_string(m->kind));
        json_object_object_add(o, "reason", json_object_new_string(m->reason));
        return o;
}

int cli_parse_health(struct cli *c, const char *value, unsigned *ret)
{
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(value, &end, 10);
        if (errno || end == value || *end || value[0] == '-' || v > HVP_HEALTH_MAX_SECONDS)
                return cli_error(c, EXIT_USAGE, "--health: seconds, 0 to %u", HVP_HEALTH_MAX_SECONDS);
        *ret = (unsigned)v;
        return 0;
}

/*
 * bad: the bundles the health gate marked bad for a kernel build (include/hvpatch/health.h),
 * listed, or cleared by an operator so that apply, plan, sync and hvpatchd take them again.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <hvpatch/health.h>

#include "cli/commands.h"
#include "cli/health.h"
#include "cli/patching.h"

static const char help[] =
        "The health gate (apply --health, sync --health, hvpatchd) marks a bundle bad for a\n"
        "kernel build when the guest it was applied to failed the gate (a WARN or an oops:\n"
        "new taint flags, a crash, a panic, a stop); apply and check refuse a marked bundle\n"
        "(exit 3, reason marked-bad), plan and sync skip it (action marked-bad), until an\n"
        "operator clears the mark. Marks live in STATE_DIR/bad/BUILD-ID/PATCH-ID.json.\n\n"
        "  bad list [BUILD-ID]            every mark, or those of one kernel build\n"
        "  bad clear BUILD-ID PATCH-ID    allow that bundle on that build again\n"
        "  bad clear BUILD-ID             every mark of a build\n"
        "  bad clear --all                every mark\n"
        "Exit code 1 when a named mark does not exist.\n";

static int list(struct cli *c, const char *build_id)
{
        struct hvp_bad_list *l = NULL;
        int r = hvp_bad_list_load(cli_state_dir(), build_id, &l);

        if (r < 0)
                return cli_lib_error(c, r, "reading the bad marks");
        if (c->json) {
                json_object *arr = json_object_new_array();

                for (size_t i = 0; i < l->n; i++)
                        json_object_array_add(arr, cli_bad_mark_json(&l->marks[i]));
                cli_json_print(arr);
        } else if (!l->n) {
                printf("no bundle is marked bad%s%s\n", build_id ? " for build " : "", build_id ? build_id : "");
        } else {
                for (size_t i = 0; i < l->n; i++) {
                        const struct hvp_bad_mark *m = &l->marks[i];
                        char when[32] = "?";
                        struct tm tm;

                        if (m->at && gmtime_r(&m->at, &tm))
                                strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
                        printf("%s %s (series %s, seq %llu): %s on %s at %s: %s\n", m->build_id, m->patch_id,
                               m->series[0] ? m->series : "?", (unsigned long long)m->seq, m->kind,
                               m->domain[0] ? m->domain : "?", when, m->reason);
                }
        }
        hvp_bad_list_free(l);
        return EXIT_OK;
}

static int clear(struct cli *c, const char *build_id, const char *patch_id)
{
        size_t n = 0;
        int r = hvp_bad_mark_clear(cli_state_dir(), build_id, patch_id, &n);

        if (r < 0)
                return cli_lib_error(c, r, "clearing");
        if (c->json) {
                json_object *o = json_object_new_object();

                json_object_object_add(o, "cleared", json_object_new_int((int)n));
                cli_json_print(o);
        } else {
                printf("cleared %zu mark%s\n", n, n == 1 ? "" : "s");
        }
        return EXIT_OK;
}

int cmd_bad(struct cli *c, int argc, char **argv)
{
        if (cli_wants_help(c, "bad", argc, argv, help))
                return EXIT_OK;
        cli_json_schema_select(argc >= 1 && strcmp(argv[0], "list") == 0 ? "bad-list" : "bad-clear");
        if (argc >= 1 && strcmp(argv[0], "list") == 0 && argc <= 2)
                return list(c, argc == 2 ? argv[1] : NULL);
        if (argc == 2 && strcmp(argv[0], "clear") == 0 && strcmp(argv[1], "--all") == 0)
                return clear(c, NULL, NULL);
        if (argc >= 2 && argc <= 3 && strcmp(argv[0], "clear") == 0 && argv[1][0] != '-')
                return clear(c, argv[1], argc == 3 ? argv[2] : NULL);
        return cli_usage(c, cli_find_command("bad"));
}

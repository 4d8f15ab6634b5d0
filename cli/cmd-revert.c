#include <stdio.h>

#include <hvpatch/ops.h>

#include "cli/commands.h"
#include "cli/patching.h"

static const char help[] =
        "Restores the original bytes of an applied patch's sites (its entry jumps) in one\n"
        "pause window and drops it from the domain's record. Its code in the patch area\n"
        "stays as it is, retired: a task may still be running it (status shows retired\n"
        "ranges; a new boot of the guest releases them). Refused (exit 5) if memory no\n"
        "longer holds exactly what the patch wrote. A patch no longer in memory (the guest\n"
        "rebooted) is dropped from the record (exit 1). A failure to update the record is\n"
        "an error (exit 1); after a revert the journal stays and 'hvpatch recover' records it.\n"
        "The stack check runs as for apply (when the guest kernel has BTF): a task holding\n"
        "a return address inside a site going back makes it exit 4 (--json: busy_task).\n";

int cmd_revert(struct cli *c, int argc, char **argv)
{
        struct hvp_revert_outcome o;
        struct cli_target t;
        const char *id;
        int r;

        if (cli_wants_help(c, "revert", argc, argv, help))
                return EXIT_OK;
        r = cli_attach(c, &argc, &argv, &t);
        if (r)
                return r;
        if (argc != 1) {
                cli_target_close(&t);
                return cli_usage(c, cli_find_command("revert"));
        }
        id = argv[0];
        r = hvp_op_revert(t.guest, t.kernel, cli_state_dir(), id, &o);
        if (r < 0) {
                r = cli_lib_error(c, r, "revert");
                goto out;
        }
        if (o.exit_class) {
                r = o.stack_busy ? cli_busy_task_error(c, o.exit_class, o.error, &o.stack_hit)
                                 : cli_error(c, o.exit_class, "%s", o.error);
                goto out;
        }
        if (c->json) {
                json_object *j = json_object_new_object();

                json_object_object_add(j, "domain", json_object_new_string(hvp_guest_name(t.guest)));
                json_object_object_add(j, "reverted", json_object_new_string(id));
                json_object_object_add(j, "pause_ms", json_object_new_double(o.report.pause_ms));
                json_object_object_add(j, "total_ms", json_object_new_double(o.report.total_ms));
                json_object_object_add(j, "stack_check",
                                       cli_stack_check_json(o.stack_check_on, o.stack_check_off, &o.report));
                cli_json_print(j);
        } else {
                printf("reverted %s on %s: pause window %.3f ms\n", id, hvp_guest_name(t.guest), o.report.pause_ms);
        }
        r = EXIT_OK;
out:
        cli_target_close(&t);
        return r;
}

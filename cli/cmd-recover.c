#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/commands.h"
#include "cli/patching.h"

static const char help[] =
        "After hvpatch itself was killed or crashed mid-transaction: brings every site of\n"
        "the interrupted transaction to all-new (if every write had landed) or all-old,\n"
        "records the outcome, and resumes the guest if the dead hvpatch left it paused.\n"
        "Nothing to do is not an error.\n";

int cmd_recover(struct cli *c, int argc, char **argv)
{
        const char *state_dir = cli_state_dir();
        struct hvp_guest *g = NULL;
        char *summary = NULL;
        int r, lock = -1;

        if (cli_wants_help(c, "recover", argc, argv, help))
                return EXIT_OK;
        r = cli_open_guest(c, &argc, &argv, &g);
        if (r)
                return r;
        if (argc != 0) {
                hvp_guest_free(g);
                return cli_usage(c, cli_find_command("recover"));
        }
        r = hvp_domain_lock(state_dir, hvp_guest_uuid(g), &lock);
        if (r < 0) {
                r = cli_lib_error(c, r, "locking the domain");
                goto out;
        }
        r = hvp_recover(g, state_dir, &summary);
        if (r == -ENOENT) {
                summary = NULL;
                r = 0;
        } else {
                hvp_audit_op(HVP_AUDIT_RECOVER, g, NULL, r, -1);
        }
        if (r < 0) {
                r = cli_lib_error(c, r, "recover");
                goto out;
        }
        if (c->json) {
                json_object *o = json_object_new_object();

                json_object_object_add(o, "domain", json_object_new_string(hvp_guest_name(g)));
                json_object_object_add(o, "recovered", json_object_new_boolean(summary != NULL));
                json_object_object_add(o, "summary",
                                       json_object_new_string(summary ? summary : "nothing to recover"));
                cli_json_print(o);
        } else {
                printf("%s: %s\n", hvp_guest_name(g), summary ? summary : "nothing to recover");
        }
        r = EXIT_OK;
out:
        free(summary);
        hvp_domain_unlock(lock);
        hvp_guest_free(g);
        return r;
}

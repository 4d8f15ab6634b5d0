#include <stdio.h>

#include "cli/commands.h"
#include "cli/patching.h"

static const char help[] =
        "Restores the original bytes of an applied patch's sites (its entry jumps) in one\n"
        "pause window and drops it from the domain's record. Its code in the patch area\n"
        "stays as it is, retired: a task may still be running it (status shows retired\n"
        "ranges; a new boot of the guest releases them). Refused (exit 5) if memory no\n"
        "longer holds exactly what the patch wrote. A patch no longer in memory (the guest\n"
        "rebooted) is dropped from the record (exit 1). A failure to update the record is\n"
        "an error (exit 1); after a revert the journal stays and 'hvpatch recover' records it.\n";

int cmd_revert(struct cli *c, int argc, char **argv)
{
        struct hvp_apply_options opts = { .state_dir = cli_state_dir() };
        struct hvp_apply_report rep = { 0 };
        struct hvp_record *rec = NULL;
        struct hvp_record_entry *e;
        struct hvp_plan *inv = NULL;
        struct cli_target t;
        const char *id;
        int r, lock = -1;

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
        r = hvp_domain_lock(opts.state_dir, hvp_guest_uuid(t.guest), &lock);
        if (r < 0) {
                r = cli_lib_error(c, r, "locking the domain");
                goto out;
        }
        if (cli_has_journal(hvp_guest_uuid(t.guest))) {
                r = cli_error(c, EXIT_ERROR, "an interrupted transaction is pending: run 'hvpatch recover %s' first",
                              hvp_guest_name(t.guest));
                goto out;
        }
        r = hvp_record_load(opts.state_dir, hvp_guest_uuid(t.guest), &rec);
        if (r < 0) {
                r = cli_lib_error(c, r, "reading the record");
                goto out;
        }
        e = hvp_record_find(rec, id);
        if (!e) {
                r = cli_error(c, EXIT_ERROR, "patch '%s' is not applied to %s", id, hvp_guest_name(t.guest));
                goto out;
        }
        switch (cli_patch_state(t.guest, t.kernel, e->plan)) {
        case CLI_PATCH_APPLIED:
                break;
        case CLI_PATCH_DROPPED:
        case CLI_PATCH_NOT_APPLIED: {
                struct hvp_commit drop = { .remove_id = id };

                /* Nothing to restore: the guest rebooted or the bytes are original again. */
                r = hvp_record_commit(rec, &drop, 0);
                if (r == 0)
                        r = hvp_record_save(opts.state_dir, rec);
                if (r < 0) {
                        char what[256];

                        snprintf(what, sizeof(what),
                                 "patch '%s' is no longer in memory, but dropping its record failed", id);
                        r = cli_lib_error(c, r, what);
                        goto out;
                }
                r = cli_error(c, EXIT_ERROR, "patch '%s' is no longer in memory (guest rebooted?); dropped its record",
                              id);
                goto out;
        }
        case CLI_PATCH_FOREIGN:
                r = cli_error(c, EXIT_MISMATCH,
                              "patch '%s': memory holds neither the patch nor the original bytes: not touching it", id);
                goto out;
        }
        r = hvp_plan_revert_txn(e->plan, &inv);        /* sites only: the area code is retired */
        if (r == 0) {
                struct hvp_commit commit = { .remove_id = id };

                cli_progress(c, "reverting %s (%zu writes)", id, inv->nr_writes);
                r = hvp_plan_apply(t.guest, inv, &commit, &opts, &rep);
        }
        cli_audit(HVP_AUDIT_REVERT, t.guest, e->plan, r, r == 0 ? rep.pause_ms : -1);
        if (r < 0) {
                r = cli_lib_error(c, r, "revert");
                goto out;
        }
        if (c->json) {
                json_object *o = json_object_new_object();

                json_object_object_add(o, "domain", json_object_new_string(hvp_guest_name(t.guest)));
                json_object_object_add(o, "reverted", json_object_new_string(id));
                json_object_object_add(o, "pause_ms", json_object_new_double(rep.pause_ms));
                json_object_object_add(o, "total_ms", json_object_new_double(rep.total_ms));
                cli_json_print(o);
        } else {
                printf("reverted %s on %s: pause window %.3f ms\n", id, hvp_guest_name(t.guest), rep.pause_ms);
        }
        r = EXIT_OK;
out:
        hvp_plan_free(inv);
        hvp_record_free(rec);
        hvp_domain_unlock(lock);
        cli_target_close(&t);
        return r;
}

#include <stdlib.h>

#include "cli/patching.h"

const char *cli_state_dir(void)
{
        const char *d = getenv("HVPATCH_STATE_DIR");

        return d && *d ? d : HVP_STATE_DIR;
}

json_object *cli_stack_check_json(bool on, const char *off_reason, const struct hvp_apply_report *rep)
{
        json_object *j = json_object_new_object();

        json_object_object_add(j, "enabled", json_object_new_boolean(on));
        if (!on) {
                json_object_object_add(j, "reason", json_object_new_string(off_reason));
                return j;
        }
        json_object_object_add(j, "tasks", json_object_new_int64((int64_t)rep->stack.tasks));
        json_object_object_add(j, "before_pause_ms", json_object_new_double(rep->stack.prepare_ms));
        json_object_object_add(j, "before_pause_bytes", json_object_new_int64((int64_t)rep->stack.prepare_bytes));
        json_object_object_add(j, "before_pause_scanned", json_object_new_int64((int64_t)rep->stack.prepare_scanned));
        json_object_object_add(j, "in_pause_ms", json_object_new_double(rep->stack.paused_ms));
        json_object_object_add(j, "in_pause_checked", json_object_new_int64((int64_t)rep->stack.paused_checked));
        json_object_object_add(j, "in_pause_scanned", json_object_new_int64((int64_t)rep->stack.paused_scanned));
        json_object_object_add(j, "in_pause_bytes", json_object_new_int64((int64_t)rep->stack.paused_bytes));
        json_object_object_add(j, "in_pause_walked", json_object_new_boolean(rep->stack.paused_walked));
        return j;
}

json_object *cli_busy_task_json(const struct hvp_stack_hit *hit)
{
        json_object *t = json_object_new_object();

        json_object_object_add(t, "pid", json_object_new_int(hit->pid));
        json_object_object_add(t, "comm", json_object_new_string(hit->comm));
        json_object_object_add(t, "task", hit->task ? cli_json_addr(hit->task) : NULL);
        json_object_object_add(t, "vcpu", hit->vcpu >= 0 ? json_object_new_int(hit->vcpu) : NULL);
        json_object_object_add(t, "address", cli_json_addr(hit->value));
        json_object_object_add(t, "symbol", hit->symbol[0] ? json_object_new_string(hit->symbol) : NULL);
        json_object_object_add(t, "stack_slot", cli_json_addr(hit->where));
        return t;
}

int cli_busy_task_error(struct cli *c, int exit_code, const char *msg, const struct hvp_stack_hit *hit)
{
        json_object *o;

        if (!c->json)
                return cli_error(c, exit_code, "%s", msg);
        o = json_object_new_object();
        json_object_object_add(o, "error", json_object_new_string(msg));
        json_object_object_add(o, "code", json_object_new_int(exit_code));
        json_object_object_add(o, "busy_task", cli_busy_task_json(hit));
        cli_json_print(o);
        return exit_code;
}

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hvpatch/hvpatch.h>
#include <hvpatch/ops.h>

#include "cli/cli.h"

int cli_exit_code(int err)
{
        return hvp_exit_class(err);     /* the same numbers (include/hvpatch/ops.h) */
}

int cli_error(struct cli *c, int exit_code, const char *fmt, ...)
{
        char msg[2048];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (c && c->json) {
                json_object *o = json_object_new_object();

                json_object_object_add(o, "error", json_object_new_string(msg));
                json_object_object_add(o, "code", json_object_new_int(exit_code));
                cli_json_print(o);
        } else {
                fprintf(stderr, "hvpatch: %s\n", msg);
        }
        return exit_code;
}

int cli_lib_error(struct cli *c, int err, const char *what)
{
        const char *why = hvp_last_error();

        if (!why[0])
                why = strerror(-err);
        return cli_error(c, cli_exit_code(err), "%s: %s", what, why);
}

int cli_usage(struct cli *c, const struct cli_command *cmd)
{
        return cli_error(c, EXIT_USAGE, "usage: hvpatch %s %s (see hvpatch %s -h)", cmd->name, cmd->args,
                         cmd->name);
}

/*
 * The versions of the --json documents: the one place their numbers live. A document
 * names its schema in its "schema" field, "urn:hvpatch:NAME:MAJOR", the $id of
 * docs/schemas/NAME.schema.json. Adding an optional field keeps MAJOR; removing or
 * renaming a field, changing a type or a meaning, or removing an enum value bumps it
 * (and adds a new schema file beside the old one; docs/schemas/README.md).
 */
static const struct {
        const char *name;
        unsigned major;
} json_schemas[] = {
        { "inspect", 1 }, { "symbols", 1 }, { "translate", 1 }, { "read", 1 }, { "disasm", 1 },
        { "apply", 1 }, { "check", 1 }, { "revert", 1 }, { "status", 1 }, { "recover", 1 },
        { "plan", 1 }, { "sync", 1 }, { "rollout-event", 1 }, { "report", 1 }, { "bad-list", 1 },
        { "bad-clear", 1 }, { "daemon-status", 1 }, { "pack", 1 }, { "verify", 1 }, { "area", 1 },
        { "ps", 1 }, { "dmesg", 1 }, { "version", 1 }, { "error", 1 },
};

static char json_schema_current[64];    /* the running command's document's id, "" none */

bool cli_json_schema_id(const char *name, char *buf, size_t size)
{
        for (size_t i = 0; i < sizeof(json_schemas) / sizeof(json_schemas[0]); i++)
                if (strcmp(json_schemas[i].name, name) == 0)
                        return (size_t)snprintf(buf, size, "urn:hvpatch:%s:%u", name, json_schemas[i].major) < size;
        if (size)
                buf[0] = '\0';
        return false;
}

json_object *cli_json_schema_map(void)
{
        json_object *m = json_object_new_object();

        for (size_t i = 0; i < sizeof(json_schemas) / sizeof(json_schemas[0]); i++) {
                char id[64];

                if (cli_json_schema_id(json_schemas[i].name, id, sizeof(id)))
                        json_object_object_add(m, json_schemas[i].name, json_object_new_string(id));
        }
        return m;
}

void cli_json_schema_select(const char *name)
{
        cli_json_schema_id(name, json_schema_current, sizeof(json_schema_current));
}

json_object *cli_json_stamp(json_object *o, const char *name)
{
        char id[64];
        json_object *n;

        if (!json_object_is_type(o, json_type_object))
                return o;       /* top-level arrays have no room for it (docs/schemas/README.md) */
        if (!name) {
                /* {"error": .., "code": N} is the error document whatever the command */
                name = json_object_object_get_ex(o, "error", NULL) && json_object_object_get_ex(o, "code", NULL)
                               ? "error" : NULL;
                if (!name && json_schema_current[0])
                        snprintf(id, sizeof(id), "%s", json_schema_current);
                else if (!name || !cli_json_schema_id(name, id, sizeof(id)))
                        return o;
        } else if (!cli_json_schema_id(name, id, sizeof(id))) {
                return o;
        }
        /* First, so that a reader sees the version before the rest. */
        n = json_object_new_object();
        json_object_object_add(n, "schema", json_object_new_string(id));
        json_object_object_foreach(o, k, v) {
                if (strcmp(k, "schema") != 0)
                        json_object_object_add(n, k, json_object_get(v));
        }
        json_object_put(o);
        return n;
}

void cli_json_print(json_object *o)
{
        o = cli_json_stamp(o, NULL);
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(o);
}

json_object *cli_json_addr(uint64_t a)
{
        char buf[24];

        snprintf(buf, sizeof(buf), "0x%llx", (unsigned long long)a);
        return json_object_new_string(buf);
}

bool cli_parse_u64(const char *s, uint64_t *ret)
{
        char *end;
        unsigned long long v;

        if (!s || !*s || *s == '-')
                return false;
        errno = 0;
        v = strtoull(s, &end, 0);
        if (errno || *end)
                return false;
        *ret = v;
        return true;
}

void cli_progress(struct cli *c, const char *fmt, ...)
{
        va_list ap;

        if (!c->verbose)
                return;
        va_start(ap, fmt);
        fputs("hvpatch: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
}

int cli_open_guest(struct cli *c, int *argc, char ***argv, struct hvp_guest **ret_guest)
{
        const char *core = NULL;
        int n = *argc, r;
        char **v = *argv;

        for (int i = 0; i < n; i++) {
                if (strcmp(v[i], "--core") == 0) {
                        if (i + 1 >= n)
                                return cli_error(c, EXIT_USAGE, "--core needs a FILE");
                        core = v[i + 1];
                        memmove(&v[i], &v[i + 2], (size_t)(n - i - 2) * sizeof(*v));
                        n -= 2;
                        break;
                }
        }
        if (core) {
                r = hvp_guest_open_core(core, ret_guest);
                if (r < 0)
                        return cli_lib_error(c, r, core);
        } else {
                struct hvp_live_options opts = { .uri = c->uri };

                if (n < 1 || v[0][0] == '-')
                        return cli_error(c, EXIT_USAGE, "need a DOMAIN or --core FILE");
                r = hvp_guest_open_live(v[0], &opts, ret_guest);
                if (r < 0)
                        return cli_lib_error(c, r, v[0]);
                v++;
                n--;
        }
        *argc = n;
        *argv = v;
        return 0;
}

_Static_assert((int)EXIT_OK == (int)HVP_EXIT_OK && (int)EXIT_ERROR == (int)HVP_EXIT_ERROR &&
               (int)EXIT_REFUSED == (int)HVP_EXIT_REFUSED && (int)EXIT_BUSY == (int)HVP_EXIT_BUSY &&
               (int)EXIT_MISMATCH == (int)HVP_EXIT_MISMATCH && (int)EXIT_HEALTH == (int)HVP_EXIT_HEALTH,
               "the CLI's exit codes are the library's exit classes");

#include <regex.h>
#include <stdio.h>

#include <hvpatch/kernel.h>

#include "cli/cli.h"
#include "cli/commands.h"

static const char help[] =
        "Lists the kernel's symbols decoded from the guest's own in-memory kallsyms tables,\n"
        "one per line as /proc/kallsyms prints them: \"%016lx %c %s\". RE (POSIX extended)\n"
        "keeps the names it matches. Module symbols are not listed.\n";

int cmd_symbols(struct cli *c, int argc, char **argv)
{
        struct cli_target t;
        json_object *arr = NULL;
        regex_t re;
        bool filter = false;
        int r;

        if (cli_wants_help(c, "symbols", argc, argv, help))
                return EXIT_OK;
        r = cli_attach(c, &argc, &argv, &t);
        if (r)
                return r;
        if (argc > 1) {
                cli_target_close(&t);
                return cli_usage(c, cli_find_command("symbols"));
        }
        if (argc == 1) {
                if (regcomp(&re, argv[0], REG_EXTENDED | REG_NOSUB) != 0) {
                        cli_target_close(&t);
                        return cli_error(c, EXIT_USAGE, "bad regular expression '%s'", argv[0]);
                }
                filter = true;
        }
        if (c->json)
                arr = json_object_new_array();
        for (size_t i = 0, n = hvp_symtab_count(t.kernel->symtab); i < n; i++) {
                const struct hvp_symbol *s = hvp_symtab_get(t.kernel->symtab, i);

                if (filter && regexec(&re, s->name, 0, NULL, 0) != 0)
                        continue;
                if (arr) {
                        json_object *o = json_object_new_object();
                        char type[2] = { s->type, 0 };

                        json_object_object_add(o, "addr", cli_json_addr(s->addr));
                        json_object_object_add(o, "type", json_object_new_string(type));
                        json_object_object_add(o, "name", json_object_new_string(s->name));
                        json_object_array_add(arr, o);
                } else {
                        printf("%016llx %c %s\n", (unsigned long long)s->addr, s->type, s->name);
                }
        }
        if (arr)
                cli_json_print(arr);
        if (filter)
                regfree(&re);
        cli_target_close(&t);
        return EXIT_OK;
}

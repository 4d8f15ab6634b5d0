#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hvpatch/hvpatch.h>

#include "cli/cli.h"
#include "cli/commands.h"

static int cmd_version(struct cli *c, int argc, char **argv)
{
        if (cli_wants_help(c, "version", argc, argv, NULL))
                return EXIT_OK;
        if (c->json) {
                json_object *o = json_object_new_object();

                json_object_object_add(o, "version", json_object_new_string(hvp_version()));
                /* every document's version, the arrays' (symbols, ps, ...) included */
                json_object_object_add(o, "schemas", cli_json_schema_map());
                cli_json_print(o);
        } else {
                printf("hvpatch %s\n", hvp_version());
        }
        return EXIT_OK;
}

/* Keep in the order of DESIGN.md's CLI contract. */
static const struct cli_command commands[] = {
        { "inspect", "DOMAIN|--core FILE", "which kernel runs in the guest, where, paging", cmd_inspect },
        { "symbols", "DOMAIN|--core FILE [RE]", "kernel symbols read from guest memory", cmd_symbols },
        { "translate", "DOMAIN|--core FILE VA...", "guest-virtual to guest-physical", cmd_translate },
        { "read", "DOMAIN|--core FILE [--phys] ADDR [LEN]", "dump guest memory", cmd_read },
        { "disasm", "DOMAIN|--core FILE ADDR [LEN]", "disassemble guest kernel code", cmd_disasm },
        { "apply", "DOMAIN BUNDLE", "verify, authorize, plan and apply a hotpatch", cmd_apply },
        { "check", "DOMAIN BUNDLE", "dry run of apply: would it apply, and why not", cmd_check },
        { "revert", "DOMAIN PATCH-ID", "restore the original bytes of a patch", cmd_revert },
        { "status", "DOMAIN", "applied patches, memory state, compliance", cmd_status },
        { "recover", "DOMAIN", "finish or undo a transaction a dead hvpatch left", cmd_recover },
        { "plan", "[--catalog DIR] DOMAIN", "desired patch state from the catalog vs memory", cmd_plan },
        { "sync", "[--catalog DIR] [--dry-run] [--health SECONDS] DOMAIN|--all", "converge guests to the catalog's desired state",
          cmd_sync },
        { "rollout", "BUNDLE [--rings SIZES] [--parallel N] [--health S] [--soak S] [--max-failures N]",
          "one bundle over the host's guests in rings, halting on failures (resumable)", cmd_rollout },
        { "report", "[--policy FILE] [--domains GLOB] [--parallel N] [--json|--prometheus] [--html FILE]",
          "every domain of the host: compliance, patches, tamper, health", cmd_report },
        { "bad", "list [BUILD-ID] | clear BUILD-ID [PATCH-ID] | clear --all", "bundles the health gate marked bad",
          cmd_bad },
        { "daemon-status", "[--socket PATH]", "what hvpatchd is doing", cmd_daemon_status },
        { "pack", "MANIFEST -o BUNDLE [--kernel-config FILE] [--strict]", "build a bundle from a manifest and ELF objects", cmd_pack },
        { "verify", "[--key PUB|--policy FILE] BUNDLE", "check a bundle's signature and manifest", cmd_verify },
        { "area", "add|remove|show DOMAIN", "the domain's own read-only patch area", cmd_area },
        { "ps", "DOMAIN|--core FILE [--no-pause]", "the guest kernel's tasks, from its memory (BTF)", cmd_ps },
        { "dmesg", "DOMAIN|--core FILE", "the guest kernel's log, from its memory (BTF)", cmd_dmesg },
        { "version", "", "print the version", cmd_version },
};

static void usage(FILE *f)
{
        fprintf(f,
                "Usage: hvpatch [-c URI] [--json] [--policy FILE] [-v] COMMAND [ARGS...]\n"
                "Live-patch the kernels of running KVM/QEMU guests from the host.\n\n"
                "Options:\n"
                "  -c, --connect URI   libvirt connection (default qemu:///system)\n"
                "      --json          one JSON document on stdout, errors too\n"
                "      --policy FILE   policy file (default /etc/hvpatch/policy.xml)\n"
                "  -v, --verbose       progress on stderr (twice: debug messages too)\n"
                "  -h, --help          this help;  --version  the version\n\n"
                "Commands:\n");
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                fprintf(f, "  %-10s %-28s %s\n", commands[i].name, commands[i].args, commands[i].summary);
        fprintf(f, "\n'hvpatch COMMAND -h' describes a command. Exit codes: 0 ok, 1 error, 2 usage,\n"
                   "3 refused by policy, 4 guest busy (retry), 5 patch site does not match.\n");
}

const struct cli_command *cli_find_command(const char *name)
{
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                if (strcmp(commands[i].name, name) == 0)
                        return &commands[i];
        return NULL;
}

bool cli_wants_help(struct cli *c, const char *name, int argc, char **argv, const char *details)
{
        const struct cli_command *cmd = cli_find_command(name);

        for (int i = 0; i < argc; i++) {
                if (strcmp(argv[i], "--") == 0)
                        break;
                if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
                        printf("Usage: hvpatch [OPTIONS] %s %s\n%s\n", name, cmd ? cmd->args : "",
                               cmd ? cmd->summary : "");
                        if (details)
                                printf("\n%s", details);
                        return true;
                }
        }
        return false;
}

static void log_to_stderr(enum hvp_log_level level, const char *msg, void *userdata)
{
        const struct cli *c = userdata;

        if (level <= HVP_LOG_WARNING || (c->verbose && level <= HVP_LOG_INFO) || c->verbose > 1)
                fprintf(stderr, "hvpatch: %s\n", msg);
}

int main(int argc, char **argv)
{
        static const struct option options[] = {
                { "connect", required_argument, NULL, 'c' },
                { "json", no_argument, NULL, 'j' },
                { "policy", required_argument, NULL, 'p' },
                { "verbose", no_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {},
        };
        struct cli c = { 0 };
        const struct cli_command *cmd;
        int opt;

        /* '+': stop at the command name; its own options are its business. */
        while ((opt = getopt_long(argc, argv, "+c:vh", options, NULL)) != -1) {
                switch (opt) {
                case 'c':
                        c.uri = optarg;
                        break;
                case 'j':
                        c.json = true;
                        break;
                case 'p':
                        c.policy = optarg;
                        break;
                case 'v':
                        c.verbose++;
                        break;
                case 'h':
                        usage(stdout);
                        return EXIT_OK;
                case 'V':
                        printf("hvpatch %s\n", hvp_version());
                        return EXIT_OK;
                default:
                        usage(stderr);
                        return EXIT_USAGE;
                }
        }
        if (optind >= argc) {
                usage(stderr);
                return EXIT_USAGE;
        }
        cmd = cli_find_command(argv[optind]);
        if (!cmd)
                return cli_error(&c, EXIT_USAGE, "unknown command '%s' (see hvpatch --help)", argv[optind]);
        hvp_set_log_fn(log_to_stderr, &c);
        cli_json_schema_select(cmd->name);
        /* Subcommands see argv[0] = their first argument. */
        return cmd->run(&c, argc - optind - 1, argv + optind + 1);
}

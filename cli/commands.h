/* One function per subcommand, each in cli/cmd-NAME.c. */
#ifndef HVP_CLI_COMMANDS_H
#define HVP_CLI_COMMANDS_H

#include "cli/cli.h"

int cmd_inspect(struct cli *c, int argc, char **argv);
int cmd_symbols(struct cli *c, int argc, char **argv);
int cmd_translate(struct cli *c, int argc, char **argv);
int cmd_read(struct cli *c, int argc, char **argv);
int cmd_disasm(struct cli *c, int argc, char **argv);
int cmd_apply(struct cli *c, int argc, char **argv);
int cmd_check(struct cli *c, int argc, char **argv);
int cmd_revert(struct cli *c, int argc, char **argv);
int cmd_status(struct cli *c, int argc, char **argv);
int cmd_recover(struct cli *c, int argc, char **argv);
int cmd_plan(struct cli *c, int argc, char **argv);
int cmd_sync(struct cli *c, int argc, char **argv);
int cmd_report(struct cli *c, int argc, char **argv);
int cmd_pack(struct cli *c, int argc, char **argv);
int cmd_verify(struct cli *c, int argc, char **argv);
int cmd_area(struct cli *c, int argc, char **argv);
int cmd_ps(struct cli *c, int argc, char **argv);
int cmd_dmesg(struct cli *c, int argc, char **argv);
int cmd_daemon_status(struct cli *c, int argc, char **argv);
int cmd_bad(struct cli *c, int argc, char **argv);
int cmd_rollout(struct cli *c, int argc, char **argv);

/* The table, for -h output of the subcommands. */
const struct cli_command *cli_find_command(const char *name);
/* True (and prints help) when argv holds -h or --help. */
bool cli_wants_help(struct cli *c, const char *name, int argc, char **argv, const char *details);

#endif

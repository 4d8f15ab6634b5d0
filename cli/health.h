/* The health gate's report and the bad marks, for apply, sync and bad (words and JSON). */
#ifndef HVP_CLI_HEALTH_H
#define HVP_CLI_HEALTH_H

#include <hvpatch/health.h>

#include "cli/cli.h"

/* The report as JSON: result, kind, reason, seconds, taint {before, after, new, names}, lines, ... */
json_object *cli_health_json(const struct hvp_health_report *h);
/* The report in words on stdout, each line prefixed by prefix. */
void cli_health_print(const struct hvp_health_report *h, const char *prefix);
/* One mark as JSON. */
json_object *cli_bad_mark_json(const struct hvp_bad_mark *m);
/* "--health SECONDS": parses argv[*i + 1] into *ret (0..HVP_HEALTH_MAX_SECONDS); an exit code, 0 if fine. */
int cli_parse_health(struct cli *c, const char *value, unsigned *ret);

#endif

/* The hvpatch command: shared state of one invocation and helpers for subcommands. */
#ifndef HVP_CLI_H
#define HVP_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include <hvpatch/guest.h>

/* Exit codes: part of the CLI contract (DESIGN.md). */
enum {
        EXIT_OK = 0,
        EXIT_ERROR = 1,
        EXIT_USAGE = 2,
        EXIT_REFUSED = 3,       /* refused by policy or signature */
        EXIT_BUSY = 4,          /* guest busy: retry */
        EXIT_MISMATCH = 5,      /* patch site does not match */
        EXIT_HEALTH = 6,        /* applied, then the health gate failed: reverted, marked bad */
};

struct cli {
        const char *uri;        /* -c URI */
        const char *policy;     /* --policy FILE */
        bool json;              /* --json */
        unsigned verbose;       /* -v: progress; -vv: debug too */
};

struct cli_command {
        const char *name;
        const char *args;       /* one-line synopsis of the arguments */
        const char *summary;
        int (*run)(struct cli *c, int argc, char **argv);
};

/*
 * Report an error and return the exit code: text on stderr, or with --json one
 * document {"error": MSG, "code": EXIT} on stdout.
 */
int cli_error(struct cli *c, int exit_code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The same for a failed library call: the message is "WHAT: <hvp_last_error()>". */
int cli_lib_error(struct cli *c, int err, const char *what);
/* Exit code for a library error code. */
int cli_exit_code(int err);

/* Print a usage error (exit 2). */
int cli_usage(struct cli *c, const struct cli_command *cmd);

/*
 * Print a JSON document on stdout (pretty), taking ownership of it. An object gets the
 * "schema" field of its version (cli_json_stamp(o, NULL)).
 */
void cli_json_print(json_object *o);
/*
 * The schema id "urn:hvpatch:NAME:MAJOR" of the documents NAME (a command, or
 * "bad-list", "bad-clear", "rollout-event", "error"; cli/common.c holds the versions).
 * false (and "") for an unknown NAME.
 */
bool cli_json_schema_id(const char *name, char *buf, size_t size);
/* {NAME: its schema id, ...} for every kind of document: what `version --json` lists. */
json_object *cli_json_schema_map(void);
/* The documents this invocation prints are NAME's (main.c: the command's name). */
void cli_json_schema_select(const char *name);
/*
 * o with "schema" first: NAME's id, or with NAME NULL the error document's if o has
 * "error" and "code", else the selected one's. Takes o, returns the object to use. Arrays unchanged.
 */
json_object *cli_json_stamp(json_object *o, const char *name);
/* "0x..." string for an address, as the JSON contract wants. */
json_object *cli_json_addr(uint64_t a);

/*
 * Open the target of a command: a live domain (positional DOMAIN) or --core FILE.
 * Parses and removes "--core FILE" from argv; *ret_rest points at what remains.
 */
int cli_open_guest(struct cli *c, int *argc, char ***argv, struct hvp_guest **ret_guest);

struct hvp_mmu;
struct hvp_kernel;

/* A guest attached to its kernel: what the introspection commands work on. */
struct cli_target {
        struct hvp_guest *guest;
        struct hvp_mmu *mmu;
        struct hvp_kernel *kernel;
        unsigned vcpu;          /* the vCPU whose CR3 is used */
};

/* cli_open_guest, then find the kernel. On failure prints the error and returns the exit code. */
int cli_attach(struct cli *c, int *argc, char ***argv, struct cli_target *ret);
void cli_target_close(struct cli_target *t);

/*
 * An address given as a number, SYMBOL or SYMBOL+OFFSET (needs t->kernel).
 * Returns 0 or an exit code after printing the error.
 */
int cli_resolve(struct cli *c, const struct cli_target *t, const char *spec, uint64_t *ret);

/* Parse a number (0x.. hex or decimal). false on garbage. */
bool cli_parse_u64(const char *s, uint64_t *ret);

/* Progress on stderr (never with --json on stdout). */
void cli_progress(struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif

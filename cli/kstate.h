/* Helpers of the commands that read kernel state with the guest's BTF (ps, dmesg). */
#ifndef HVP_CLI_KSTATE_H
#define HVP_CLI_KSTATE_H

#include <hvpatch/btf.h>
#include <hvpatch/kernel.h>

#include "cli/cli.h"

/* A kernel-memory reader over the target's address space (t must outlive it). */
void cli_kmem(const struct cli_target *t, struct hvp_kmem *ret);

/*
 * The guest kernel's BTF. On failure prints the error and returns the exit code; a
 * kernel without BTF gets "FEATURE is off: the guest kernel has no BTF ...".
 */
int cli_load_btf(struct cli *c, const struct cli_target *t, const char *feature, struct hvp_btf **ret);

/* The address of a kernel symbol, or prints "FEATURE: no symbol NAME ..." and returns the exit code. */
int cli_kernel_symbol(struct cli *c, const struct cli_target *t, const char *name, const char *feature,
                      uint64_t *ret);

#endif

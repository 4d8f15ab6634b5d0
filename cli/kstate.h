/* Helpers of the commands that read kernel state with the guest's BTF (ps, dmesg). */
#ifndef HVP_CLI_KSTATE_H
#define HVP_CLI_KSTATE_H

#include <hvpatch/btf.h>
#include <hvpatch/kernel.h>
#include <hvpatch/linux.h>

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

/* Secure Boot, EFI and lockdown as the guest kernel recorded them, read from its memory. */
struct cli_boot_security {
        int r;                          /* 0, or < 0 with err saying why */
        struct hvp_boot_security sec;
        char err[512];
};
void cli_boot_security(const struct cli_target *t, struct cli_boot_security *ret);
/* {"secure_boot", "efi_boot", "lockdown", "lockdown_raw"} or {"error"}. */
json_object *cli_boot_security_json(const struct cli_boot_security *b);
/* "enabled, EFI boot; lockdown: integrity (as the guest kernel recorded them)" or "not read: WHY". */
void cli_boot_security_text(const struct cli_boot_security *b, char *buf, size_t size);

#endif

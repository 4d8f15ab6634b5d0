#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <hvpatch/kernel.h>

#include "cli/cli.h"

int cli_attach(struct cli *c, int *argc, char ***argv, struct cli_target *ret)
{
        struct cli_target t = { 0 };
        int r;

        r = cli_open_guest(c, argc, argv, &t.guest);
        if (r)
                return r;
        cli_progress(c, "%s: finding the kernel", hvp_guest_name(t.guest));
        r = hvp_linux_attach(t.guest, &t.mmu, &t.kernel, &t.vcpu);
        if (r < 0) {
                r = cli_lib_error(c, r, hvp_guest_name(t.guest));
                hvp_guest_free(t.guest);
                return r;
        }
        *ret = t;
        return 0;
}

void cli_target_close(struct cli_target *t)
{
        hvp_kernel_free(t->kernel);
        hvp_mmu_free(t->mmu);
        hvp_guest_free(t->guest);
        *t = (struct cli_target){ 0 };
}

int cli_resolve(struct cli *c, const struct cli_target *t, const char *spec, uint64_t *ret)
{
        const struct hvp_symbol *sym;
        char name[256];
        const char *plus;
        uint64_t off = 0;
        size_t len;

        if (cli_parse_u64(spec, ret))
                return 0;
        plus = strchr(spec, '+');
        len = plus ? (size_t)(plus - spec) : strlen(spec);
        if (len == 0 || len >= sizeof(name))
                return cli_error(c, EXIT_USAGE, "'%s' is neither an address nor a symbol", spec);
        memcpy(name, spec, len);
        name[len] = '\0';
        if (plus && !cli_parse_u64(plus + 1, &off))
                return cli_error(c, EXIT_USAGE, "bad offset in '%s'", spec);
        sym = hvp_symtab_lookup(t->kernel->symtab, name);
        if (!sym)
                return cli_error(c, EXIT_ERROR, "no symbol '%s' in the guest kernel", name);
        *ret = sym->addr + off;
        return 0;
}

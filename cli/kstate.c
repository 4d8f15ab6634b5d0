#include <errno.h>

#include <hvpatch/paging.h>

#include "cli/kstate.h"

void cli_kmem(const struct cli_target *t, struct hvp_kmem *ret)
{
        hvp_kmem_from_mmu(t->mmu, ret);
}

int cli_load_btf(struct cli *c, const struct cli_target *t, const char *feature, struct hvp_btf **ret)
{
        struct hvp_kmem km;
        int r;

        cli_kmem(t, &km);
        cli_progress(c, "%s: reading the kernel's BTF", hvp_guest_name(t->guest));
        r = hvp_btf_load(&km, t->kernel, ret);
        if (r == -ENOENT)
                return cli_error(c, EXIT_ERROR, "%s is off: %s", feature, hvp_last_error());
        if (r < 0)
                return cli_lib_error(c, r, feature);
        return 0;
}

int cli_kernel_symbol(struct cli *c, const struct cli_target *t, const char *name, const char *feature,
                      uint64_t *ret)
{
        const struct hvp_symbol *s = hvp_symtab_lookup(t->kernel->symtab, name);

        if (!s)
                return cli_error(c, EXIT_ERROR, "%s: no symbol %s in the guest kernel", feature, name);
        *ret = s->addr;
        return 0;
}

#include <errno.h>
#include <stdio.h>

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

/* The BTF is read only to name a lockdown level the kernel's enum does not fix (most guests have none). */
void cli_boot_security(const struct cli_target *t, struct cli_boot_security *ret)
{
        struct hvp_btf *btf = NULL;
        struct hvp_kmem km;

        *ret = (struct cli_boot_security){ 0 };
        cli_kmem(t, &km);
        ret->r = hvp_linux_boot_security(&km, t->kernel, NULL, &ret->sec);
        if (ret->r == 0 && ret->sec.lockdown == HVP_LOCKDOWN_OTHER && hvp_btf_load(&km, t->kernel, &btf) == 0) {
                ret->r = hvp_linux_boot_security(&km, t->kernel, btf, &ret->sec);
                hvp_btf_free(btf);
        }
        if (ret->r < 0)
                snprintf(ret->err, sizeof(ret->err), "%s", hvp_last_error());
}

json_object *cli_boot_security_json(const struct cli_boot_security *b)
{
        json_object *o = json_object_new_object();

        if (b->r < 0) {
                json_object_object_add(o, "error", json_object_new_string(b->err));
                return o;
        }
        json_object_object_add(o, "secure_boot", json_object_new_string(hvp_secure_boot_name(b->sec.secure_boot)));
        json_object_object_add(o, "efi_boot", json_object_new_boolean(b->sec.efi_boot));
        json_object_object_add(o, "lockdown", json_object_new_string(hvp_lockdown_name(b->sec.lockdown)));
        json_object_object_add(o, "lockdown_raw", json_object_new_int64(b->sec.lockdown_raw));
        return o;
}

void cli_boot_security_text(const struct cli_boot_security *b, char *buf, size_t size)
{
        if (b->r < 0)
                snprintf(buf, size, "not read: %s", b->err);
        else
                snprintf(buf, size, "%s, %s; lockdown: %s (as the guest kernel recorded them)",
                         hvp_secure_boot_name(b->sec.secure_boot), b->sec.efi_boot ? "EFI boot" : "not an EFI boot",
                         hvp_lockdown_name(b->sec.lockdown));
}

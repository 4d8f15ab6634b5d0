/*
 * Secure Boot, EFI and lockdown as the guest kernel recorded them.
 *
 * The EFI stub stores efi_get_secureboot()'s answer in boot_params.secure_boot and its
 * loader signature ("EL64") in boot_params.efi_info; the kernel keeps boot_params (the
 * zero page, copied early) for its lifetime. The lockdown LSM keeps the level in force
 * in kernel_locked_down: 0, LOCKDOWN_INTEGRITY_MAX or LOCKDOWN_CONFIDENTIALITY_MAX
 * (a sysfs write or lockdown= only ever raises it to one of those).
 */
#include <errno.h>
#include <string.h>

#include <hvpatch/linux.h>

#include "common/error.h"
#include "common/util.h"

#define ZP_EFI_LOADER_SIGNATURE 0x1c0   /* struct efi_info's first field */
#define ZP_SECURE_BOOT 0x1ec

static int read_sym(const struct hvp_kmem *km, uint64_t va, void *buf, size_t len, const char *what)
{
        int r;

        hvp_clear_error();
        r = km->read(km->ctx, va, buf, len);
        if (r < 0) {
                if (!hvp_last_error()[0])
                        hvp_fail(r, "%s", strerror(-r));
                return hvp_fail_context(r, "reading %s at 0x%llx", what, (unsigned long long)va);
        }
        return 0;
}

int hvp_linux_boot_security(const struct hvp_kmem *km, const struct hvp_kernel *k, const struct hvp_btf *btf,
                            struct hvp_boot_security *ret)
{
        struct hvp_boot_security s = { .secure_boot = HVP_SECURE_BOOT_NO_SYMBOL,
                                       .lockdown = HVP_LOCKDOWN_UNSUPPORTED, .lockdown_raw = -1 };
        const struct hvp_symbol *bp, *ld;
        int r;

        if (!km || !km->read || !k || !k->symtab || !ret)
                return hvp_fail(-EINVAL, "hvp_linux_boot_security: bad arguments");
        bp = hvp_symtab_lookup(k->symtab, "boot_params");
        if (bp) {
                uint64_t sb_off = ZP_SECURE_BOOT, sig_off = ZP_EFI_LOADER_SIGNATURE;
                uint8_t sb;
                char sig[4];

                if (btf) {
                        hvp_btf_member(btf, "boot_params.secure_boot", &sb_off, NULL);
                        hvp_btf_member(btf, "boot_params.efi_info.efi_loader_signature", &sig_off, NULL);
                        if (sb_off >= 4096 || sig_off > 4092)   /* the zero page is one page */
                                return hvp_fail(-EINVAL, "boot_params: BTF puts its fields past 4096 bytes");
                }
                r = read_sym(km, bp->addr + sb_off, &sb, 1, "boot_params.secure_boot");
                if (r == 0)
                        r = read_sym(km, bp->addr + sig_off, sig, 4, "boot_params.efi_info");
                if (r < 0)
                        return r;
                s.secure_boot = sb <= HVP_SECURE_BOOT_ENABLED ? sb : HVP_SECURE_BOOT_UNKNOWN;
                s.efi_boot = memcmp(sig, "EL64", 4) == 0 || memcmp(sig, "EL32", 4) == 0;
        }
        ld = hvp_symtab_lookup(k->symtab, "kernel_locked_down");
        if (ld) {
                uint8_t v[4];
                int64_t integrity, confidentiality;

                r = read_sym(km, ld->addr, v, 4, "kernel_locked_down");
                if (r < 0)
                        return r;
                s.lockdown_raw = hvp_le32(v);
                if (s.lockdown_raw == 0)
                        s.lockdown = HVP_LOCKDOWN_NONE;
                else if (btf && hvp_btf_enum_value(btf, "LOCKDOWN_INTEGRITY_MAX", &integrity) == 0 &&
                         s.lockdown_raw == integrity)
                        s.lockdown = HVP_LOCKDOWN_INTEGRITY;
                else if (btf && hvp_btf_enum_value(btf, "LOCKDOWN_CONFIDENTIALITY_MAX", &confidentiality) == 0 &&
                         s.lockdown_raw == confidentiality)
                        s.lockdown = HVP_LOCKDOWN_CONFIDENTIALITY;
                else
                        s.lockdown = HVP_LOCKDOWN_OTHER;
        }
        *ret = s;
        return 0;
}

const char *hvp_secure_boot_name(int v)
{
        switch (v) {
        case HVP_SECURE_BOOT_UNSET: return "unset";
        case HVP_SECURE_BOOT_UNKNOWN: return "unknown";
        case HVP_SECURE_BOOT_DISABLED: return "disabled";
        case HVP_SECURE_BOOT_ENABLED: return "enabled";
        default: return "no boot_params";
        }
}

const char *hvp_lockdown_name(int v)
{
        switch (v) {
        case HVP_LOCKDOWN_NONE: return "none";
        case HVP_LOCKDOWN_INTEGRITY: return "integrity";
        case HVP_LOCKDOWN_CONFIDENTIALITY: return "confidentiality";
        case HVP_LOCKDOWN_OTHER: return "locked down (level unknown)";
        default: return "unsupported";
        }
}

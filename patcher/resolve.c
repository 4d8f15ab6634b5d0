/*
 * Kernel symbols a bundle names, resolved against the guest's kallsyms. Static
 * functions of several files share a name (Debian's 6.1 kernel has over a thousand
 * such names): taking the first would patch or call the wrong one, so a name at
 * several addresses needs a <pin> in the manifest (docs/bundle.md).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <hvpatch/kernel.h>
#include <hvpatch/patch.h>

#include "common/error.h"
#include "patcher/manifest.h"

#define LIST_MAX 16u            /* addresses named in a refusal */

static const struct hvp_pin *find_pin(const struct hvp_manifest *m, const char *name)
{
        for (size_t i = 0; m && i < m->nr_pins; i++)
                if (strcmp(m->pins[i].symbol, name) == 0)
                        return &m->pins[i];
        return NULL;
}

/* How many distinct addresses of the n symbols (aliases at one address count once). */
static size_t distinct(const struct hvp_symbol *const *s, size_t n)
{
        size_t d = 0;

        for (size_t i = 0; i < n; i++) {
                size_t j = 0;

                while (j < i && s[j]->addr != s[i]->addr)
                        j++;
                d += j == i;
        }
        return d;
}

/* "0xffffffff810a2ac0 (_text+0xa2ac0), 0x..." into buf. */
static void list_addresses(const struct hvp_symtab *st, const struct hvp_symbol *const *s, size_t n, size_t total,
                           char *buf, size_t size)
{
        const struct hvp_symbol *text = hvp_symtab_lookup(st, "_text");
        size_t len = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < n && len < size; i++) {
                if (text && s[i]->addr >= text->addr)
                        len += (size_t)snprintf(buf + len, size - len, "%s0x%llx (_text+0x%llx)", i ? ", " : "",
                                                (unsigned long long)s[i]->addr,
                                                (unsigned long long)(s[i]->addr - text->addr));
                else
                        len += (size_t)snprintf(buf + len, size - len, "%s0x%llx", i ? ", " : "",
                                                (unsigned long long)s[i]->addr);
        }
        if (total > n && len < size)
                snprintf(buf + len, size - len, " and %zu more", total - n);
}

int hvp_manifest_resolve(const struct hvp_manifest *m, const struct hvp_symtab *st, const char *name,
                         uint64_t *ret_addr)
{
        const struct hvp_symbol *syms[LIST_MAX], *near[2];
        const struct hvp_pin *pin = find_pin(m, name);
        size_t n = hvp_symtab_lookup_all(st, name, syms, LIST_MAX), shown = n < LIST_MAX ? n : LIST_MAX;
        char list[LIST_MAX * 48];
        uint64_t addr;

        if (n == 0)
                return hvp_fail(-ENOENT, "no symbol %s in the guest kernel", name);
        if (!pin) {
                if (n <= LIST_MAX && distinct(syms, n) == 1) {
                        *ret_addr = syms[0]->addr;
                        return 0;
                }
                list_addresses(st, syms, shown, n, list, sizeof(list));
                return hvp_fail(-ENOTUNIQ,
                                "%s is defined %zu times in the guest kernel, at %s: the manifest must pin which "
                                "one (<pin symbol=\"%s\" near=\"...\" offset=\"...\"/>, docs/bundle.md)",
                                name, n, list, name);
        }
        switch (hvp_symtab_lookup_all(st, pin->near, near, 2)) {
        case 0:
                return hvp_fail(-ENOENT, "manifest line %u: pin of %s: no symbol %s (near=) in the guest kernel",
                                pin->line, name, pin->near);
        case 1:
                break;
        default:
                return hvp_fail(-EINVAL, "manifest line %u: pin of %s: near=%s is itself defined more than once",
                                pin->line, name, pin->near);
        }
        addr = near[0]->addr + (uint64_t)pin->offset;
        /* The pinned address must be one of the name's: a pin chooses, never invents. */
        for (size_t i = 0; i < shown; i++) {
                if (syms[i]->addr == addr) {
                        *ret_addr = addr;
                        return 0;
                }
        }
        for (size_t i = 0; n > shown && i < hvp_symtab_count(st); i++) {        /* more than the list holds */
                const struct hvp_symbol *s = hvp_symtab_get(st, i);

                if (s->addr == addr && strcmp(s->name, name) == 0) {
                        *ret_addr = addr;
                        return 0;
                }
        }
        list_addresses(st, syms, shown, n, list, sizeof(list));
        return hvp_fail(-EINVAL, "manifest line %u: pin of %s: %s%c0x%llx (0x%llx) is not one of its addresses (%s)",
                        pin->line, name, pin->near, pin->offset < 0 ? '-' : '+',
                        (unsigned long long)(pin->offset < 0 ? -(uint64_t)pin->offset : (uint64_t)pin->offset),
                        (unsigned long long)addr, list);
}

/*
 * consistency="function": the function the site at addr lies in, from the kernel's
 * symbol table: [the symbol containing addr, the next symbol at a greater address).
 * -ERANGE when that end is missing or further than HVP_FUNCTION_MAX_LEN.
 */
int manifest_function_bounds(const struct hvp_symtab *st, uint64_t addr, uint64_t *ret_start, uint64_t *ret_len)
{
        const struct hvp_symbol *sym = hvp_symtab_find_addr(st, addr), *first = hvp_symtab_get(st, 0);
        size_t count = hvp_symtab_count(st);

        if (!sym || !first)
                return hvp_fail(-ERANGE, "no symbol holds 0x%llx", (unsigned long long)addr);
        /* Aliases share the address: look a bounded way past them for the next one. */
        for (size_t i = (size_t)(sym - first) + 1, k = 0; i < count && k < 1024; i++, k++) {
                const struct hvp_symbol *next = hvp_symtab_get(st, i);

                if (next->addr <= sym->addr)
                        continue;
                if (next->addr - sym->addr > HVP_FUNCTION_MAX_LEN)
                        break;
                *ret_start = sym->addr;
                *ret_len = next->addr - sym->addr;
                return 0;
        }
        return hvp_fail(-ERANGE, "consistency=\"function\": the end of %s (0x%llx) cannot be determined: no "
                        "next symbol within 0x%x bytes", sym->name, (unsigned long long)sym->addr,
                        HVP_FUNCTION_MAX_LEN);
}

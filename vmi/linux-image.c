/*
 * A Linux kernel image read through a struct hvp_kmem: symbols from kallsyms, then
 * the banner and the GNU build id, found through those symbols. No page tables here
 * (see linux.c), so this works on a vmlinux file as on guest memory.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <hvpatch/kernel.h>

#include "common/error.h"
#include "common/util.h"

#define NOTES_MAX (64u << 10)           /* the kernel's .notes: a few hundred bytes */
#define NT_GNU_BUILD_ID 3
#define BANNER_PREFIX "Linux version "

void hvp_kernel_free(struct hvp_kernel *k)
{
        if (!k)
                return;
        hvp_symtab_free(k->symtab);
        free(k);
}

static const struct hvp_symbol *need(const struct hvp_symtab *st, const char *name, int *r)
{
        const struct hvp_symbol *s = hvp_symtab_lookup(st, name);

        if (!s && *r == 0)
                *r = hvp_fail(-EINVAL, "kallsyms has no %s symbol", name);
        return s;
}

/*
 * linux_banner: "Linux version ...\n". Read page by page, so that a banner near the
 * end of a mapping is still read; stop at the newline, NUL or any control char.
 */
static int read_banner(const struct hvp_kmem *km, uint64_t va, char *out, size_t size)
{
        size_t n = 0;

        while (n < size - 1) {
                uint64_t a = va + n;
                size_t chunk = HVP_MIN(4096 - (size_t)(a & 4095), size - 1 - n);
                size_t i;

                if (a < km->start || a >= km->end || km->end - a < chunk)
                        break;
                if (km->read(km->ctx, a, out + n, chunk) < 0)
                        break;
                for (i = 0; i < chunk; i++)
                        if ((uint8_t)out[n + i] < 0x20 || (uint8_t)out[n + i] >= 0x7f)
                                break;
                n += i;
                if (i < chunk)
                        break;
        }
        out[n] = '\0';
        if (strncmp(out, BANNER_PREFIX, strlen(BANNER_PREFIX)) != 0) {
                out[0] = '\0';
                return hvp_fail(-EINVAL, "linux_banner at 0x%llx does not start with \"%s\"",
                                (unsigned long long)va, BANNER_PREFIX);
        }
        return 0;
}

/*
 * The ELF notes the kernel keeps in memory (the same bytes as /sys/kernel/notes):
 * Elf64_Nhdr { namesz, descsz, type } with name and desc each padded to 4 bytes.
 */
static int read_build_id(const struct hvp_kmem *km, uint64_t start, uint64_t stop, struct hvp_kernel *k)
{
        _cleanup_free_ uint8_t *notes = NULL;
        uint64_t size = stop - start, off = 0;
        int r;

        if (stop < start)
                return hvp_fail(-EINVAL, "__stop_notes 0x%llx below __start_notes 0x%llx",
                                (unsigned long long)stop, (unsigned long long)start);
        if (size > NOTES_MAX)
                return hvp_fail(-E2BIG, "kernel notes of %llu bytes (at most %u)", (unsigned long long)size,
                                NOTES_MAX);
        notes = malloc(size ? size : 1);
        if (!notes)
                return hvp_fail(-ENOMEM, "out of memory");
        r = km->read(km->ctx, start, notes, size);
        if (r < 0)
                return hvp_fail_context(r, "reading the kernel notes at 0x%llx", (unsigned long long)start);
        while (size - off >= 12) {
                uint64_t namesz = hvp_le32(notes + off), descsz = hvp_le32(notes + off + 4);
                uint32_t type = hvp_le32(notes + off + 8);
                uint64_t name = off + 12, desc = name + ((namesz + 3) & ~3ull);
                uint64_t next = desc + ((descsz + 3) & ~3ull);

                if (desc > size || next > size || desc - name < namesz || next - desc < descsz)
                        return hvp_fail(-EINVAL, "kernel note at +0x%llx overruns the notes (%llu bytes)",
                                        (unsigned long long)off, (unsigned long long)size);
                if (type == NT_GNU_BUILD_ID && namesz == 4 && !memcmp(notes + name, "GNU", 4)) {
                        if (descsz == 0 || descsz > sizeof(k->build_id))
                                return hvp_fail(-E2BIG, "GNU build id of %llu bytes", (unsigned long long)descsz);
                        memcpy(k->build_id, notes + desc, descsz);
                        k->build_id_len = descsz;
                        return 0;
                }
                off = next;
        }
        hvp_debug("no GNU build id among the kernel notes at 0x%llx", (unsigned long long)start);
        return 0;
}

int hvp_kernel_from_kmem(const struct hvp_kmem *km, uint64_t text_base, struct hvp_kernel **ret_kernel)
{
        const struct hvp_symbol *text, *stext, *etext, *end, *banner, *notes, *notes_end;
        struct hvp_kernel *k;
        int r = 0;

        if (!km || !ret_kernel)
                return hvp_fail(-EINVAL, "hvp_kernel_from_kmem: bad arguments");
        k = calloc(1, sizeof(*k));
        if (!k)
                return hvp_fail(-ENOMEM, "out of memory");
        r = hvp_kallsyms_decode(km, text_base, &k->symtab);
        if (r < 0)
                goto fail;
        text = need(k->symtab, "_text", &r);
        stext = need(k->symtab, "_stext", &r);
        etext = need(k->symtab, "_etext", &r);
        if (r < 0)
                goto fail;
        if (!(text->addr <= stext->addr && stext->addr <= etext->addr)) {
                r = hvp_fail(-EINVAL, "kallsyms: _text 0x%llx, _stext 0x%llx, _etext 0x%llx out of order",
                             (unsigned long long)text->addr, (unsigned long long)stext->addr,
                             (unsigned long long)etext->addr);
                goto fail;
        }
        k->base = text->addr;
        k->kaslr_offset = (int64_t)(k->base - HVP_LINUX_DEFAULT_TEXT);
        k->text_start = stext->addr;
        k->text_end = etext->addr;
        end = hvp_symtab_lookup(k->symtab, "_end");
        if (end && end->addr >= etext->addr)
                k->image_end = end->addr;
        banner = hvp_symtab_lookup(k->symtab, "linux_banner");
        if (banner) {
                r = read_banner(km, banner->addr, k->banner, sizeof(k->banner));
                if (r < 0)
                        goto fail;
        }
        notes = hvp_symtab_lookup(k->symtab, "__start_notes");
        notes_end = hvp_symtab_lookup(k->symtab, "__stop_notes");
        if (notes && notes_end) {
                r = read_build_id(km, notes->addr, notes_end->addr, k);
                if (r < 0)
                        goto fail;
        }
        *ret_kernel = k;
        return 0;
fail:
        hvp_kernel_free(k);
        return r;
}

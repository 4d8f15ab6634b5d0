/*
 * Loading and relocating patch objects: ELF64 x86-64 relocatable files as `gcc -c`
 * writes them. The file is hostile input: every header, table, string, symbol and
 * relocation is bounded against the buffer before use. Contract: hvpatch/patch.h.
 */
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hvpatch/patch.h>

#include "common/error.h"
#include "common/util.h"
#include "patcher/reloc-view.h"

#define SYM_SIZE 24u
#define RELA_SIZE 24u
#define SHDR_SIZE 64u

struct section {
        const char *name;
        uint32_t type;
        uint64_t flags;
        uint64_t offset;
        uint64_t size;
        uint32_t link;
        uint32_t info;
        uint64_t align;
        uint64_t entsize;
        bool placed;
        size_t place_off;       /* from the start of the placed bytes */
};

struct symbol {
        const char *name;
        uint8_t type;           /* STT_* */
        uint8_t bind;           /* STB_* */
        uint16_t shndx;
        uint64_t value;
        uint64_t size;
};

struct object {
        const uint8_t *buf;
        size_t len;
        struct section *secs;
        size_t nr_secs;
        size_t symtab;          /* section index */
        size_t nr_syms;
        const uint8_t *syms;
        const char *strtab;
        size_t strtab_size;

        /* layout of one function */
        size_t *order;          /* placed sections, in placement order */
        size_t nr_order;
        size_t fn_sec;
        uint64_t fn_value;
        struct hvp_reloc_info info;
};

static void object_free(struct object *o)
{
        free(o->secs);
        free(o->order);
}

static const char *const reloc_names[] = {
        [R_X86_64_NONE] = "R_X86_64_NONE",
        [R_X86_64_64] = "R_X86_64_64",
        [R_X86_64_PC32] = "R_X86_64_PC32",
        [R_X86_64_GOT32] = "R_X86_64_GOT32",
        [R_X86_64_PLT32] = "R_X86_64_PLT32",
        [R_X86_64_COPY] = "R_X86_64_COPY",
        [R_X86_64_GLOB_DAT] = "R_X86_64_GLOB_DAT",
        [R_X86_64_JUMP_SLOT] = "R_X86_64_JUMP_SLOT",
        [R_X86_64_RELATIVE] = "R_X86_64_RELATIVE",
        [R_X86_64_GOTPCREL] = "R_X86_64_GOTPCREL",
        [R_X86_64_32] = "R_X86_64_32",
        [R_X86_64_32S] = "R_X86_64_32S",
        [R_X86_64_16] = "R_X86_64_16",
        [R_X86_64_PC16] = "R_X86_64_PC16",
        [R_X86_64_8] = "R_X86_64_8",
        [R_X86_64_PC8] = "R_X86_64_PC8",
        [R_X86_64_DTPMOD64] = "R_X86_64_DTPMOD64",
        [R_X86_64_DTPOFF64] = "R_X86_64_DTPOFF64",
        [R_X86_64_TPOFF64] = "R_X86_64_TPOFF64",
        [R_X86_64_TLSGD] = "R_X86_64_TLSGD",
        [R_X86_64_TLSLD] = "R_X86_64_TLSLD",
        [R_X86_64_DTPOFF32] = "R_X86_64_DTPOFF32",
        [R_X86_64_GOTTPOFF] = "R_X86_64_GOTTPOFF",
        [R_X86_64_TPOFF32] = "R_X86_64_TPOFF32",
        [R_X86_64_PC64] = "R_X86_64_PC64",
        [R_X86_64_GOTOFF64] = "R_X86_64_GOTOFF64",
        [R_X86_64_GOTPC32] = "R_X86_64_GOTPC32",
        [R_X86_64_GOT64] = "R_X86_64_GOT64",
        [R_X86_64_GOTPCREL64] = "R_X86_64_GOTPCREL64",
        [R_X86_64_GOTPC64] = "R_X86_64_GOTPC64",
        [R_X86_64_GOTPLT64] = "R_X86_64_GOTPLT64",
        [R_X86_64_PLTOFF64] = "R_X86_64_PLTOFF64",
        [R_X86_64_SIZE32] = "R_X86_64_SIZE32",
        [R_X86_64_SIZE64] = "R_X86_64_SIZE64",
        [R_X86_64_GOTPC32_TLSDESC] = "R_X86_64_GOTPC32_TLSDESC",
        [R_X86_64_TLSDESC_CALL] = "R_X86_64_TLSDESC_CALL",
        [R_X86_64_TLSDESC] = "R_X86_64_TLSDESC",
        [R_X86_64_IRELATIVE] = "R_X86_64_IRELATIVE",
        [R_X86_64_RELATIVE64] = "R_X86_64_RELATIVE64",
        [41] = "R_X86_64_GOTPCRELX",
        [42] = "R_X86_64_REX_GOTPCRELX",
};

static const char *reloc_name(uint32_t type, char *buf, size_t size)
{
        if (type < HVP_ARRAY_SIZE(reloc_names) && reloc_names[type])
                return reloc_names[type];
        snprintf(buf, size, "relocation type %u", type);
        return buf;
}

/* Bytes the field of a supported relocation type covers; 0 for unsupported types. */
static unsigned reloc_width(uint32_t type)
{
        switch (type) {
        case R_X86_64_NONE:
                return 0;
        case R_X86_64_64:
        case R_X86_64_PC64:
                return 8;
        case R_X86_64_PC32:
        case R_X86_64_PLT32:
        case R_X86_64_32:
        case R_X86_64_32S:
                return 4;
        default:
                return 0;
        }
}

/* Types only position-independent code uses (a GOT or PLT offset): -fpic/-fpie objects. */
static bool reloc_is_got(uint32_t type)
{
        switch (type) {
        case R_X86_64_GOT32:
        case R_X86_64_GOTPCREL:
        case R_X86_64_GOTOFF64:
        case R_X86_64_GOTPC32:
        case R_X86_64_GOT64:
        case R_X86_64_GOTPCREL64:
        case R_X86_64_GOTPC64:
        case R_X86_64_GOTPLT64:
        case R_X86_64_PLTOFF64:
        case 41:        /* R_X86_64_GOTPCRELX */
        case 42:        /* R_X86_64_REX_GOTPCRELX */
                return true;
        default:
                return false;
        }
}

static bool reloc_supported(uint32_t type)
{
        return type == R_X86_64_NONE || reloc_width(type) > 0;
}

/* A NUL-terminated string at off inside [base, base+size), or NULL. */
static const char *table_string(const char *base, size_t size, uint64_t off)
{
        if (off >= size)
                return NULL;
        if (!memchr(base + off, '\0', size - off))
                return NULL;
        return base + off;
}

static int load_headers(struct object *o)
{
        const uint8_t *b = o->buf;
        uint64_t shoff;
        uint16_t shnum, shstrndx;

        if (o->len < sizeof(Elf64_Ehdr))
                return hvp_fail(-EINVAL, "not an ELF object: %zu bytes is shorter than an ELF header", o->len);
        if (o->len > HVP_RELOC_MAX_OBJECT)
                return hvp_fail(-E2BIG, "object of %zu bytes exceeds the bound of %u", o->len,
                                HVP_RELOC_MAX_OBJECT);
        if (memcmp(b, ELFMAG, SELFMAG) != 0)
                return hvp_fail(-EINVAL, "not an ELF object (bad magic)");
        if (b[EI_CLASS] != ELFCLASS64 || b[EI_DATA] != ELFDATA2LSB)
                return hvp_fail(-EINVAL, "not an ELF64 little-endian object");
        if (b[EI_VERSION] != EV_CURRENT || hvp_le32(b + 20) != EV_CURRENT)
                return hvp_fail(-EINVAL, "unknown ELF version");
        if (hvp_le16(b + 16) != ET_REL)
                return hvp_fail(-EINVAL, "not a relocatable object (e_type %u, want ET_REL)", hvp_le16(b + 16));
        if (hvp_le16(b + 18) != EM_X86_64)
                return hvp_fail(-EINVAL, "not an x86-64 object (e_machine %u)", hvp_le16(b + 18));
        if (hvp_le16(b + 52) < sizeof(Elf64_Ehdr))
                return hvp_fail(-EINVAL, "ELF header size %u too small", hvp_le16(b + 52));
        shoff = hvp_le64(b + 40);
        shnum = hvp_le16(b + 60);
        shstrndx = hvp_le16(b + 62);
        if (hvp_le16(b + 58) != SHDR_SIZE)
                return hvp_fail(-EINVAL, "section header size %u, want %u", hvp_le16(b + 58), SHDR_SIZE);
        if (shnum == 0)
                return hvp_fail(-EINVAL, "no section headers (or extended numbering, not supported)");
        if (shnum > HVP_RELOC_MAX_SECTIONS)
                return hvp_fail(-E2BIG, "%u sections exceed the bound of %u", shnum, HVP_RELOC_MAX_SECTIONS);
        if (!hvp_range_within(shoff, (uint64_t)shnum * SHDR_SIZE, 0, o->len))
                return hvp_fail(-EINVAL, "section headers at 0x%llx (%u of them) lie outside the file",
                                (unsigned long long)shoff, shnum);
        if (shstrndx == SHN_UNDEF || shstrndx >= shnum)
                return hvp_fail(-EINVAL, "section name table index %u out of range", shstrndx);

        o->secs = calloc(shnum, sizeof(*o->secs));
        if (!o->secs)
                return hvp_fail(-ENOMEM, "out of memory");
        o->nr_secs = shnum;
        for (size_t i = 0; i < shnum; i++) {
                const uint8_t *h = b + shoff + i * SHDR_SIZE;
                struct section *s = &o->secs[i];

                s->type = hvp_le32(h + 4);
                s->flags = hvp_le64(h + 8);
                s->offset = hvp_le64(h + 24);
                s->size = hvp_le64(h + 32);
                s->link = hvp_le32(h + 40);
                s->info = hvp_le32(h + 44);
                s->align = hvp_le64(h + 48);
                s->entsize = hvp_le64(h + 56);
                if (s->type != SHT_NOBITS && s->type != SHT_NULL &&
                    !hvp_range_within(s->offset, s->size, 0, o->len))
                        return hvp_fail(-EINVAL, "section %zu: data at 0x%llx+0x%llx lies outside the file", i,
                                        (unsigned long long)s->offset, (unsigned long long)s->size);
                if (s->align > 1 && (s->align & (s->align - 1)))
                        return hvp_fail(-EINVAL, "section %zu: alignment %llu is not a power of two", i,
                                        (unsigned long long)s->align);
                s->name = (const char *)(uintptr_t)hvp_le32(h);  /* resolved below */
        }

        const struct section *names = &o->secs[shstrndx];
        if (names->type != SHT_STRTAB)
                return hvp_fail(-EINVAL, "section name table (section %u) is not a string table", shstrndx);
        for (size_t i = 0; i < shnum; i++) {
                uint64_t off = (uintptr_t)o->secs[i].name;

                o->secs[i].name = table_string((const char *)b + names->offset, names->size, off);
                if (!o->secs[i].name)
                        return hvp_fail(-EINVAL, "section %zu: name offset %llu outside the name table", i,
                                        (unsigned long long)off);
        }
        return 0;
}

static int load_symtab(struct object *o)
{
        bool found = false;

        for (size_t i = 1; i < o->nr_secs; i++) {
                const struct section *s = &o->secs[i], *str;

                if (s->type == SHT_SYMTAB_SHNDX)
                        return hvp_fail(-EINVAL, "extended section indexes (%s) are not supported", s->name);
                if (s->type != SHT_SYMTAB)
                        continue;
                if (found)
                        return hvp_fail(-EINVAL, "more than one symbol table");
                found = true;
                if (s->entsize != SYM_SIZE || s->size % SYM_SIZE)
                        return hvp_fail(-EINVAL, "symbol table %s: entry size %llu, table size %llu", s->name,
                                        (unsigned long long)s->entsize, (unsigned long long)s->size);
                if (s->size / SYM_SIZE > HVP_RELOC_MAX_SYMBOLS)
                        return hvp_fail(-E2BIG, "%llu symbols exceed the bound of %u",
                                        (unsigned long long)(s->size / SYM_SIZE), HVP_RELOC_MAX_SYMBOLS);
                if (s->link == 0 || s->link >= o->nr_secs || o->secs[s->link].type != SHT_STRTAB)
                        return hvp_fail(-EINVAL, "symbol table %s: link %u is not a string table", s->name,
                                        s->link);
                str = &o->secs[s->link];
                o->symtab = i;
                o->nr_syms = s->size / SYM_SIZE;
                o->syms = o->buf + s->offset;
                o->strtab = (const char *)o->buf + str->offset;
                o->strtab_size = str->size;
        }
        if (!found)
                return hvp_fail(-EINVAL, "no symbol table");
        return 0;
}

static int read_symbol(const struct object *o, size_t index, struct symbol *ret)
{
        const uint8_t *p;

        if (index >= o->nr_syms)
                return hvp_fail(-EINVAL, "symbol index %zu out of range (%zu symbols)", index, o->nr_syms);
        p = o->syms + index * SYM_SIZE;
        ret->name = table_string(o->strtab, o->strtab_size, hvp_le32(p));
        if (!ret->name)
                return hvp_fail(-EINVAL, "symbol %zu: name offset %u outside the string table", index,
                                hvp_le32(p));
        ret->type = ELF64_ST_TYPE(p[4]);
        ret->bind = ELF64_ST_BIND(p[4]);
        ret->shndx = hvp_le16(p + 6);
        ret->value = hvp_le64(p + 8);
        ret->size = hvp_le64(p + 16);
        if (ret->shndx != SHN_UNDEF && ret->shndx < SHN_LORESERVE && ret->shndx >= o->nr_secs)
                return hvp_fail(-EINVAL, "symbol %s: section index %u out of range", ret->name, ret->shndx);
        return 0;
}

/* The name to show for a symbol: section symbols are named by their section. */
static const char *symbol_label(const struct object *o, const struct symbol *sym)
{
        if (sym->type == STT_SECTION && sym->shndx != SHN_UNDEF && sym->shndx < o->nr_secs)
                return o->secs[sym->shndx].name;
        return sym->name[0] ? sym->name : "(unnamed)";
}

static int find_function(struct object *o, const char *function)
{
        bool found = false, global = false;

        for (size_t i = 1; i < o->nr_syms; i++) {
                struct symbol sym;
                int r = read_symbol(o, i, &sym);

                if (r < 0)
                        return r;
                if (strcmp(sym.name, function) != 0 || sym.shndx == SHN_UNDEF)
                        continue;
                if (sym.type != STT_FUNC)
                        return hvp_fail(-EINVAL, "symbol %s is not a function", function);
                if (sym.shndx >= SHN_LORESERVE)
                        return hvp_fail(-EINVAL, "function %s has a special section index 0x%x", function,
                                        sym.shndx);
                bool is_global = sym.bind != STB_LOCAL;
                if (found && is_global == global)
                        return hvp_fail(-EINVAL, "function %s is defined more than once", function);
                if (found && global)
                        continue;       /* a global definition wins over a local one */
                if (!hvp_range_within(sym.value, sym.size, 0, o->secs[sym.shndx].size))
                        return hvp_fail(-EINVAL, "function %s lies outside its section %s", function,
                                        o->secs[sym.shndx].name);
                found = true;
                global = is_global;
                o->fn_sec = sym.shndx;
                o->fn_value = sym.value;
        }
        if (!found)
                return hvp_fail(-ENOENT, "function %s is not defined in the object", function);
        return 0;
}

static bool is_fentry(const char *name)
{
        return strcmp(name, "__fentry__") == 0 || strcmp(name, "mcount") == 0;
}

/* Why section s cannot be placed; NULL if it can. */
static const char *unplaceable(const struct section *s)
{
        if (s->type == SHT_NOBITS || (s->flags & SHF_WRITE))
                return "writable data";
        if (s->flags & SHF_TLS)
                return "thread-local data";
        if (!(s->flags & SHF_ALLOC))
                return "a section not loaded at run time";
        if (s->type != SHT_PROGBITS)
                return "a section of an unexpected type";
        return NULL;
}

/* A `call __fentry__` left by -pg -mfentry: e8 rel32 with the relocation on the rel32. */
static bool is_fentry_call(const struct object *o, const struct section *target, uint64_t r_offset,
                           uint32_t type, int64_t addend)
{
        if (type != R_X86_64_PC32 && type != R_X86_64_PLT32)
                return false;
        if (addend != -4 || r_offset < 1 || !hvp_range_within(r_offset - 1, 5, 0, target->size))
                return false;
        return o->buf[target->offset + r_offset - 1] == 0xe8;
}

struct rela {
        uint64_t offset;
        uint32_t type;
        uint32_t sym;
        int64_t addend;
};

static void read_rela(const struct object *o, const struct section *rs, size_t i, struct rela *ret)
{
        const uint8_t *p = o->buf + rs->offset + i * RELA_SIZE;
        uint64_t info = hvp_le64(p + 8);

        ret->offset = hvp_le64(p);
        ret->type = (uint32_t)ELF64_R_TYPE(info);
        ret->sym = (uint32_t)ELF64_R_SYM(info);
        ret->addend = (int64_t)hvp_le64(p + 16);
}

/* Relocation sections applying to section target (checked), one by one through *cursor. */
static int next_rela_section(const struct object *o, size_t target, size_t *cursor, const struct section **ret)
{
        for (size_t i = HVP_MAX(*cursor, (size_t)1); i < o->nr_secs; i++) {
                const struct section *rs = &o->secs[i];

                if ((rs->type != SHT_RELA && rs->type != SHT_REL) || rs->info != target)
                        continue;
                if (rs->type == SHT_REL)
                        return hvp_fail(-ENOTSUP, "section %s: SHT_REL relocations are not supported on x86-64",
                                        rs->name);
                if (rs->entsize != RELA_SIZE || rs->size % RELA_SIZE)
                        return hvp_fail(-EINVAL, "relocation section %s: entry size %llu, size %llu", rs->name,
                                        (unsigned long long)rs->entsize, (unsigned long long)rs->size);
                if (rs->link != o->symtab)
                        return hvp_fail(-EINVAL, "relocation section %s does not use the symbol table", rs->name);
                *cursor = i + 1;
                *ret = rs;
                return 1;
        }
        *cursor = o->nr_secs;
        return 0;
}

static bool order_has(const struct object *o, size_t sec)
{
        return o->secs[sec].placed;
}

static int add_section(struct object *o, size_t sec, const char *why_from)
{
        const struct section *s = &o->secs[sec];
        const char *why = unplaceable(s);

        if (order_has(o, sec))
                return 0;
        if (why) {
                if (strcmp(why, "writable data") == 0)
                        return hvp_fail(-ENOTSUP,
                                        "writable data in a patch object is not supported: section %s"
                                        " (referenced from %s)", s->name, why_from ? why_from : "the function");
                return hvp_fail(-ENOTSUP, "section %s is %s and cannot be placed with the code"
                                " (referenced from %s)", s->name, why, why_from ? why_from : "the function");
        }
        o->secs[sec].placed = true;
        o->order[o->nr_order++] = sec;
        return 0;
}

/*
 * Gather the function's section and everything its relocations reach (a worklist
 * over o->order), checking every relocation on the way.
 */
static int gather(struct object *o)
{
        size_t nr_imports = 0;
        uint8_t *seen_import;
        int r = 0;

        o->order = calloc(o->nr_secs, sizeof(*o->order));
        seen_import = calloc(o->nr_syms ? o->nr_syms : 1, 1);
        if (!o->order || !seen_import) {
                free(seen_import);
                return hvp_fail(-ENOMEM, "out of memory");
        }
        r = add_section(o, o->fn_sec, NULL);
        for (size_t w = 0; r == 0 && w < o->nr_order; w++) {
                size_t sec = o->order[w], cursor = 0;
                const struct section *target = &o->secs[sec], *rs;

                while (r == 0 && (r = next_rela_section(o, sec, &cursor, &rs)) > 0) {
                        r = 0;
                        for (size_t i = 0; r == 0 && i < rs->size / RELA_SIZE; i++) {
                                struct rela rel;
                                struct symbol sym;
                                char tbuf[32], from[160];

                                read_rela(o, rs, i, &rel);
                                snprintf(from, sizeof(from), "%s+0x%llx", target->name,
                                         (unsigned long long)rel.offset);
                                if (!reloc_supported(rel.type)) {
                                        r = hvp_fail(-ENOTSUP, "unsupported relocation %s at %s%s",
                                                     reloc_name(rel.type, tbuf, sizeof(tbuf)), from,
                                                     reloc_is_got(rel.type)
                                                             ? " (a GOT reference: position-independent code;"
                                                               " compile with -fno-pic -mcmodel=kernel,"
                                                               " see docs/bundle.md)"
                                                             : "");
                                        break;
                                }
                                if (rel.type == R_X86_64_NONE)
                                        continue;
                                if (!hvp_range_within(rel.offset, reloc_width(rel.type), 0, target->size)) {
                                        r = hvp_fail(-EINVAL, "relocation %s at %s lies outside the section",
                                                     reloc_name(rel.type, tbuf, sizeof(tbuf)), from);
                                        break;
                                }
                                r = read_symbol(o, rel.sym, &sym);
                                if (r < 0)
                                        break;
                                if (sym.type == STT_TLS) {
                                        r = hvp_fail(-ENOTSUP, "thread-local symbol %s is not supported", sym.name);
                                } else if (sym.shndx == SHN_COMMON) {
                                        r = hvp_fail(-ENOTSUP,
                                                     "writable data in a patch object is not supported: "
                                                     "common symbol %s", sym.name);
                                } else if (sym.shndx == SHN_UNDEF) {
                                        if (rel.sym == 0) {
                                                r = hvp_fail(-EINVAL, "relocation at %s uses the null symbol",
                                                             from);
                                        } else if (is_fentry(sym.name)) {
                                                if (!is_fentry_call(o, target, rel.offset, rel.type, rel.addend))
                                                        r = hvp_fail(-ENOTSUP,
                                                                     "reference to %s at %s is not a call "
                                                                     "(compile patches without -pg)",
                                                                     sym.name, from);
                                        } else if (!seen_import[rel.sym]) {
                                                seen_import[rel.sym] = 1;
                                                nr_imports++;
                                        }
                                } else if (sym.shndx >= SHN_LORESERVE) {
                                        if (sym.shndx != SHN_ABS)
                                                r = hvp_fail(-ENOTSUP, "symbol %s has special section index 0x%x",
                                                             sym.name, sym.shndx);
                                } else {
                                        r = add_section(o, sym.shndx, from);
                                }
                        }
                }
        }
        free(seen_import);
        if (r < 0)
                return r;
        o->info.nr_imports = nr_imports;
        return 0;
}

static int layout(struct object *o)
{
        size_t off = 0, align = 1, n = 0;
        size_t *sorted = malloc(o->nr_order * sizeof(*sorted));

        if (!sorted)
                return hvp_fail(-ENOMEM, "out of memory");
        /* Executable sections first, then read-only data, each group in section order. */
        for (int pass = 0; pass < 2; pass++)
                for (size_t i = 1; i < o->nr_secs; i++) {
                        const struct section *s = &o->secs[i];

                        if (s->placed && !!(s->flags & SHF_EXECINSTR) == (pass == 0))
                                sorted[n++] = i;
                }
        for (size_t k = 0; k < n; k++) {
                struct section *s = &o->secs[sorted[k]];
                size_t a = s->align > 1 ? (size_t)s->align : 1;

                if (a > HVP_RELOC_MAX_ALIGN) {
                        free(sorted);
                        return hvp_fail(-ENOTSUP, "section %s wants alignment %zu, more than %u", s->name, a,
                                        HVP_RELOC_MAX_ALIGN);
                }
                off = (off + a - 1) & ~(a - 1);
                if (s->size > HVP_RELOC_MAX_CODE || off + s->size > HVP_RELOC_MAX_CODE) {
                        free(sorted);
                        return hvp_fail(-E2BIG, "placed code exceeds the bound of %u bytes (at section %s)",
                                        HVP_RELOC_MAX_CODE, s->name);
                }
                s->place_off = off;
                off += s->size;
                align = HVP_MAX(align, a);
        }
        free(o->order);
        o->order = sorted;
        o->nr_order = n;
        o->info.size = off;
        o->info.align = align;
        o->info.nr_sections = n;
        o->info.entry_offset = o->secs[o->fn_sec].place_off + o->fn_value;
        return 0;
}

static int object_prepare(struct object *o, const void *obj, size_t len, const char *function)
{
        int r;

        memset(o, 0, sizeof(*o));
        o->buf = obj;
        o->len = len;
        if (!obj || !function)
                return hvp_fail(-EINVAL, "no object or function given");
        r = load_headers(o);
        if (r == 0)
                r = load_symtab(o);
        if (r == 0)
                r = find_function(o, function);
        if (r == 0)
                r = gather(o);
        if (r == 0)
                r = layout(o);
        return r;
}

int hvp_reloc_measure(const void *obj, size_t len, const char *function, struct hvp_reloc_info *ret_info)
{
        struct object o;
        int r = object_prepare(&o, obj, len, function);

        if (r == 0)
                *ret_info = o.info;
        object_free(&o);
        return r;
}

/* Visit each relocation that applies to a placed section. */
typedef int (*rela_visit_fn)(struct object *o, const struct section *target, const struct rela *rel,
                             const struct symbol *sym, void *ctx);

static int for_each_placed_rela(struct object *o, rela_visit_fn visit, void *ctx)
{
        for (size_t k = 0; k < o->nr_order; k++) {
                size_t sec = o->order[k], cursor = 0;
                const struct section *rs;
                int r;

                while ((r = next_rela_section(o, sec, &cursor, &rs)) > 0) {
                        for (size_t i = 0; i < rs->size / RELA_SIZE; i++) {
                                struct rela rel;
                                struct symbol sym;

                                read_rela(o, rs, i, &rel);
                                if (rel.type == R_X86_64_NONE)
                                        continue;
                                r = read_symbol(o, rel.sym, &sym);
                                if (r == 0)
                                        r = visit(o, &o->secs[sec], &rel, &sym, ctx);
                                if (r < 0)
                                        return r;
                        }
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

struct imports_ctx {
        int (*fn)(void *ctx, const char *name);
        void *ctx;
        uint8_t *seen;
};

static int visit_import(struct object *o, const struct section *target, const struct rela *rel,
                        const struct symbol *sym, void *ctx)
{
        struct imports_ctx *ic = ctx;

        if (sym->shndx != SHN_UNDEF || is_fentry(sym->name) || ic->seen[rel->sym])
                return 0;
        ic->seen[rel->sym] = 1;
        return ic->fn(ic->ctx, sym->name);
}

int hvp_reloc_imports(const void *obj, size_t len, const char *function, int (*fn)(void *ctx, const char *name),
                      void *ctx)
{
        struct imports_ctx ic = { .fn = fn, .ctx = ctx };
        struct object o;
        int r = object_prepare(&o, obj, len, function);

        if (r == 0) {
                ic.seen = calloc(o.nr_syms ? o.nr_syms : 1, 1);
                r = ic.seen ? for_each_placed_rela(&o, visit_import, &ic) : hvp_fail(-ENOMEM, "out of memory");
                free(ic.seen);
        }
        object_free(&o);
        return r;
}

struct apply_ctx {
        uint64_t target;
        uint8_t *out;
        hvp_resolve_fn resolve;
        void *resolve_ctx;
};

static int symbol_address(struct object *o, const struct symbol *sym, struct apply_ctx *ac, uint64_t *ret)
{
        int r;

        if (sym->shndx == SHN_ABS) {
                *ret = sym->value;
                return 0;
        }
        if (sym->shndx != SHN_UNDEF) {
                /* gather() placed every section a relocation of a placed section reaches */
                *ret = ac->target + o->secs[sym->shndx].place_off + sym->value;
                return 0;
        }
        if (!ac->resolve)
                return hvp_fail(-ENOENT, "undefined symbol %s and no resolver", sym->name);
        r = ac->resolve(ac->resolve_ctx, sym->name, ret);
        if (r == -ENOENT)
                return hvp_fail(-ENOENT, "undefined symbol %s not in the guest kernel", sym->name);
        if (r < 0)
                return hvp_fail_context(r, "resolving %s", sym->name);
        return 0;
}

static int visit_apply(struct object *o, const struct section *target, const struct rela *rel,
                       const struct symbol *sym, void *ctx)
{
        static const uint8_t nop5[5] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };
        struct apply_ctx *ac = ctx;
        uint8_t *field = ac->out + target->place_off + rel->offset;
        uint64_t s, p = ac->target + target->place_off + rel->offset, v;
        char tbuf[32];
        int r;

        if (sym->shndx == SHN_UNDEF && is_fentry(sym->name)) {
                memcpy(field - 1, nop5, sizeof(nop5));
                return 0;
        }
        r = symbol_address(o, sym, ac, &s);
        if (r < 0)
                return r;
        if (s == HVP_RELOC_RET_INLINE && sym->shndx == SHN_UNDEF &&
            strcmp(sym->name, "__x86_return_thunk") == 0) {
                static const uint8_t ret_int3[5] = { 0xc3, 0xcc, 0xcc, 0xcc, 0xcc };

                /* the field's 4 bytes after an e9 opcode inside this section */
                if ((rel->type != R_X86_64_PLT32 && rel->type != R_X86_64_PC32) || rel->addend != -4 ||
                    rel->offset < 1 || field[-1] != 0xe9)
                        return hvp_fail(-ENOTSUP, "%s+0x%llx: a reference to __x86_return_thunk that is not "
                                        "`jmp __x86_return_thunk`: the guest runs without a return thunk, "
                                        "so it must become a ret, which only a jmp can", target->name,
                                        (unsigned long long)rel->offset);
                memcpy(field - 1, ret_int3, sizeof(ret_int3));
                return 0;
        }
        v = s + (uint64_t)rel->addend;
        switch (rel->type) {
        case R_X86_64_64:
                hvp_put_le64(field, v);
                return 0;
        case R_X86_64_PC64:
                hvp_put_le64(field, v - p);
                return 0;
        case R_X86_64_PC32:
        case R_X86_64_PLT32:
                v -= p;
                /* fallthrough */
        case R_X86_64_32S:
                if ((int64_t)v != (int64_t)(int32_t)(uint32_t)v)
                        break;
                hvp_put_le32(field, (uint32_t)v);
                return 0;
        case R_X86_64_32:
                if (v > UINT32_MAX)
                        break;
                hvp_put_le32(field, (uint32_t)v);
                return 0;
        default:
                return hvp_fail(-ENOTSUP, "unsupported relocation %s", reloc_name(rel->type, tbuf, sizeof(tbuf)));
        }
        return hvp_fail(-ERANGE, "relocation %s at %s+0x%llx against %s%+lld: value 0x%llx does not fit",
                        reloc_name(rel->type, tbuf, sizeof(tbuf)), target->name, (unsigned long long)rel->offset,
                        symbol_label(o, sym), (long long)rel->addend, (unsigned long long)v);
}

int hvp_reloc_object(const void *obj, size_t len, const char *function, uint64_t target, hvp_resolve_fn resolve,
                     void *ctx, uint8_t **ret_code, size_t *ret_len, uint64_t *ret_entry)
{
        struct apply_ctx ac = { .target = target, .resolve = resolve, .resolve_ctx = ctx };
        struct object o;
        int r = object_prepare(&o, obj, len, function);

        if (r == 0 && target & (o.info.align - 1))
                r = hvp_fail(-EINVAL, "target 0x%llx is not aligned to %zu", (unsigned long long)target, o.info.align);
        if (r == 0 && target + o.info.size < target)
                r = hvp_fail(-EINVAL, "target 0x%llx + %zu wraps around", (unsigned long long)target, o.info.size);
        if (r == 0) {
                ac.out = calloc(1, o.info.size ? o.info.size : 1);
                if (!ac.out)
                        r = hvp_fail(-ENOMEM, "out of memory");
        }
        if (r == 0) {
                for (size_t k = 0; k < o.nr_order; k++) {
                        const struct section *s = &o.secs[o.order[k]];

                        memcpy(ac.out + s->place_off, o.buf + s->offset, s->size);
                }
                r = for_each_placed_rela(&o, visit_apply, &ac);
        }
        if (r == 0) {
                *ret_code = ac.out;
                *ret_len = o.info.size;
                *ret_entry = target + o.info.entry_offset;
        } else {
                free(ac.out);
        }
        object_free(&o);
        return r;
}

const char *hvp_reloc_type_name(uint32_t type, char *buf, size_t size)
{
        return reloc_name(type, buf, size);
}

void hvp_reloc_view_free(struct hvp_reloc_view *v)
{
        if (!v)
                return;
        free(v->secs);
        free(v->relocs);
        free(v->funcs);
        memset(v, 0, sizeof(*v));
}

/* sec -> index in the placement order (HVP_VIEW_NONE if not placed), for every section */
static size_t *view_map(const struct object *o)
{
        size_t *map = malloc(o->nr_secs * sizeof(*map));

        if (!map)
                return NULL;
        for (size_t i = 0; i < o->nr_secs; i++)
                map[i] = HVP_VIEW_NONE;
        for (size_t k = 0; k < o->nr_order; k++)
                map[o->order[k]] = k;
        return map;
}

struct view_ctx {
        struct hvp_reloc_view *v;
        const size_t *map;
        size_t cap;
};

static int visit_view(struct object *o, const struct section *target, const struct rela *rel,
                      const struct symbol *sym, void *ctx)
{
        struct view_ctx *vc = ctx;
        struct hvp_view_reloc *r;

        if (vc->v->nr_relocs == vc->cap) {
                size_t cap = vc->cap ? 2 * vc->cap : 64;
                struct hvp_view_reloc *n = reallocarray(vc->v->relocs, cap, sizeof(*n));

                if (!n)
                        return hvp_fail(-ENOMEM, "out of memory");
                vc->v->relocs = n;
                vc->cap = cap;
        }
        r = &vc->v->relocs[vc->v->nr_relocs++];
        r->sec = vc->map[target - o->secs];
        r->offset = rel->offset;
        r->type = rel->type;
        r->addend = rel->addend;
        r->symbol = symbol_label(o, sym);
        r->undefined = sym->shndx == SHN_UNDEF;
        r->target_sec = HVP_VIEW_NONE;
        r->target_value = sym->value;
        if (sym->shndx != SHN_UNDEF && sym->shndx < SHN_LORESERVE)
                r->target_sec = vc->map[sym->shndx];
        return 0;
}

int hvp_reloc_view(const void *obj, size_t len, const char *function, struct hvp_reloc_view *ret)
{
        struct hvp_reloc_view v = { 0 };
        struct view_ctx vc = { .v = &v };
        size_t *map = NULL, funcs_cap = 0;
        struct object o;
        int r = object_prepare(&o, obj, len, function);

        if (r == 0) {
                v.secs = calloc(o.nr_order ? o.nr_order : 1, sizeof(*v.secs));
                map = view_map(&o);
                vc.map = map;
                if (!v.secs || !map)
                        r = hvp_fail(-ENOMEM, "out of memory");
        }
        for (size_t k = 0; r == 0 && k < o.nr_order; k++) {
                const struct section *s = &o.secs[o.order[k]];

                v.secs[k] = (struct hvp_view_section){ .name = s->name, .data = o.buf + s->offset,
                                                       .size = s->size, .place_off = s->place_off,
                                                       .exec = (s->flags & SHF_EXECINSTR) != 0 };
        }
        v.nr_secs = o.nr_order;
        if (r == 0)
                r = for_each_placed_rela(&o, visit_view, &vc);
        for (size_t i = 1; r == 0 && i < o.nr_syms; i++) {
                struct symbol sym;
                size_t k;

                r = read_symbol(&o, i, &sym);
                if (r < 0 || sym.type != STT_FUNC || sym.shndx == SHN_UNDEF || sym.shndx >= SHN_LORESERVE)
                        continue;
                k = map[sym.shndx];
                if (k == HVP_VIEW_NONE || !hvp_range_within(sym.value, sym.size, 0, o.secs[sym.shndx].size))
                        continue;
                if (v.nr_funcs == funcs_cap) {
                        size_t cap = funcs_cap ? 2 * funcs_cap : 16;
                        struct hvp_view_func *n = reallocarray(v.funcs, cap, sizeof(*n));

                        if (!n) {
                                r = hvp_fail(-ENOMEM, "out of memory");
                                break;
                        }
                        v.funcs = n;
                        funcs_cap = cap;
                }
                v.funcs[v.nr_funcs++] = (struct hvp_view_func){ .name = sym.name, .sec = k, .value = sym.value,
                                                                .size = sym.size };
        }
        if (r == 0) {
                v.entry_sec = map[o.fn_sec];
                v.entry_value = o.fn_value;
                *ret = v;
        } else {
                hvp_reloc_view_free(&v);
        }
        free(map);
        object_free(&o);
        return r;
}

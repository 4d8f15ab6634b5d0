/*
 * PE32+ headers (Microsoft PE/COFF specification): DOS header, "PE\0\0", COFF file
 * header, PE32+ optional header with its data directories, section table; then the
 * export directory's DLL name and the CodeView (RSDS) debug record.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hvpatch/windows.h>

#include "common/error.h"
#include "common/util.h"

#define DOS_HEADER_SIZE 64
#define DOS_LFANEW 0x3c
#define COFF_HEADER_SIZE 20             /* after the 4-byte signature */
#define OPT_MAGIC_PE32 0x10b
#define OPT_MAGIC_PE32PLUS 0x20b
#define OPT_DIRS_OFFSET 112             /* PE32+: where the data directories start */
#define NR_DIRS_MAX 16
#define DIR_EXPORT 0
#define DIR_DEBUG 6
#define SECTION_SIZE 40
#define EXPORT_DIR_SIZE 40
#define DEBUG_ENTRY_SIZE 28
#define DEBUG_TYPE_CODEVIEW 2
#define RSDS_HEADER_SIZE 24             /* "RSDS", GUID, age; the PDB path follows */

struct pe_section {
        uint32_t va, vsize, raw_size, raw_ptr;
};

struct pe_image {
        hvp_pe_read_fn read;
        void *ctx;
        uint64_t size;
        enum hvp_pe_layout layout;
        uint32_t size_of_image, size_of_headers;
        uint16_t nr_sections;
        struct pe_section sections[HVP_PE_MAX_SECTIONS];
        uint32_t dir_rva[NR_DIRS_MAX], dir_size[NR_DIRS_MAX];
        uint32_t nr_dirs;
};

static int read_at(const struct pe_image *pe, uint64_t off, void *buf, size_t len)
{
        if (!hvp_range_within(off, len, 0, pe->size))
                return hvp_fail(-EINVAL, "PE: %zu bytes at offset 0x%llx lie past the end of the image (%llu bytes)",
                                len, (unsigned long long)off, (unsigned long long)pe->size);
        return pe->read(pe->ctx, off, buf, len);
}

/* Where [rva, rva+len) lies in the input: the RVA itself when mapped, else through the sections. */
static int rva_to_offset(const struct pe_image *pe, uint32_t rva, uint32_t len, uint64_t *ret_off)
{
        if (!hvp_range_within(rva, len, 0, pe->size_of_image))
                return hvp_fail(-EINVAL, "PE: RVA range 0x%x+0x%x lies outside SizeOfImage 0x%x", rva, len,
                                pe->size_of_image);
        if (pe->layout == HVP_PE_LAYOUT_MAPPED) {
                *ret_off = rva;
                return 0;
        }
        if (hvp_range_within(rva, len, 0, pe->size_of_headers)) {
                *ret_off = rva;
                return 0;
        }
        for (unsigned i = 0; i < pe->nr_sections; i++) {
                const struct pe_section *s = &pe->sections[i];

                if (hvp_range_within(rva, len, s->va, s->raw_size)) {
                        *ret_off = (uint64_t)s->raw_ptr + (rva - s->va);
                        return 0;
                }
        }
        return hvp_fail(-EINVAL, "PE: RVA range 0x%x+0x%x is in no section's file data", rva, len);
}

static int read_rva(const struct pe_image *pe, uint32_t rva, void *buf, uint32_t len)
{
        uint64_t off = 0;
        int r;

        r = rva_to_offset(pe, rva, len, &off);
        if (r < 0)
                return r;
        return read_at(pe, off, buf, len);
}

/*
 * A NUL-terminated ASCII name at rva, read in pieces that do not cross a 4 KiB
 * boundary (a mapped image may end in an unmapped page right after the name).
 */
static int read_name(const struct pe_image *pe, uint32_t rva, char *out, size_t size)
{
        size_t n = 0;

        while (n + 1 < size) {
                uint8_t piece[64];
                uint32_t at = rva + (uint32_t)n;
                size_t len = HVP_MIN(sizeof(piece), size - 1 - n);
                int r;

                if (at < rva)
                        return hvp_fail(-EINVAL, "PE: name RVA overflows");
                len = HVP_MIN(len, 4096 - (at & 4095));
                len = HVP_MIN(len, (uint64_t)pe->size_of_image - HVP_MIN(at, pe->size_of_image));
                if (len == 0)
                        return hvp_fail(-EINVAL, "PE: name at RVA 0x%x runs past the image", rva);
                r = read_rva(pe, at, piece, (uint32_t)len);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < len; i++) {
                        if (piece[i] == '\0') {
                                out[n] = '\0';
                                return 0;
                        }
                        if (piece[i] < 0x20 || piece[i] > 0x7e)
                                return hvp_fail(-EINVAL, "PE: name at RVA 0x%x is not printable ASCII", rva);
                        out[n++] = (char)piece[i];
                }
        }
        return hvp_fail(-E2BIG, "PE: name at RVA 0x%x is longer than %zu bytes", rva, size - 1);
}

static int parse_export_name(const struct pe_image *pe, struct hvp_pe_info *info)
{
        uint8_t ed[EXPORT_DIR_SIZE];
        char name[sizeof(info->export_name)];
        int r;

        if (pe->nr_dirs <= DIR_EXPORT || pe->dir_rva[DIR_EXPORT] == 0)
                return 0;
        if (pe->dir_size[DIR_EXPORT] < EXPORT_DIR_SIZE)
                return hvp_fail(-EINVAL, "PE: export directory of %u bytes is too small", pe->dir_size[DIR_EXPORT]);
        r = read_rva(pe, pe->dir_rva[DIR_EXPORT], ed, sizeof(ed));
        if (r < 0)
                return r;
        r = read_name(pe, hvp_le32(ed + 12), name, sizeof(name));
        if (r < 0)
                return r;
        memcpy(info->export_name, name, sizeof(name));
        return 0;
}

static int parse_codeview(const struct pe_image *pe, const uint8_t *entry, struct hvp_pe_info *info)
{
        uint32_t size = hvp_le32(entry + 16), rva = hvp_le32(entry + 20), fileptr = hvp_le32(entry + 24);
        uint8_t rec[HVP_PE_MAX_CODEVIEW];
        size_t name_len;
        int r;

        if (size < RSDS_HEADER_SIZE + 1 || size > HVP_PE_MAX_CODEVIEW)
                return hvp_fail(-EINVAL, "PE: CodeView record of %u bytes (expected %u..%u)", size,
                                RSDS_HEADER_SIZE + 1, HVP_PE_MAX_CODEVIEW);
        if (pe->layout == HVP_PE_LAYOUT_MAPPED) {
                if (rva == 0)
                        return hvp_fail(-EINVAL, "PE: the CodeView record is not loaded (no RVA)");
                r = read_rva(pe, rva, rec, size);
        } else {
                r = read_at(pe, fileptr, rec, size);
        }
        if (r < 0)
                return r;
        if (memcmp(rec, "RSDS", 4) != 0)
                return hvp_fail(-EINVAL, "PE: CodeView record is not RSDS (PDB 7.0)");
        name_len = strnlen((const char *)rec + RSDS_HEADER_SIZE, size - RSDS_HEADER_SIZE);
        if (name_len == size - RSDS_HEADER_SIZE)
                return hvp_fail(-EINVAL, "PE: the PDB name in the CodeView record is not NUL-terminated");
        memcpy(info->pdb_guid, rec + 4, 16);
        info->pdb_age = hvp_le32(rec + 20);
        snprintf(info->pdb_name, sizeof(info->pdb_name), "%.*s",
                 (int)HVP_MIN(name_len, sizeof(info->pdb_name) - 1), (const char *)rec + RSDS_HEADER_SIZE);
        info->has_codeview = true;
        return 0;
}

static int parse_debug_dir(const struct pe_image *pe, struct hvp_pe_info *info)
{
        uint32_t rva, size, n;
        int r = 0;

        if (pe->nr_dirs <= DIR_DEBUG || pe->dir_rva[DIR_DEBUG] == 0)
                return 0;
        rva = pe->dir_rva[DIR_DEBUG];
        size = pe->dir_size[DIR_DEBUG];
        if (size % DEBUG_ENTRY_SIZE != 0)
                return hvp_fail(-EINVAL, "PE: debug directory size %u is not a multiple of %u", size,
                                DEBUG_ENTRY_SIZE);
        n = size / DEBUG_ENTRY_SIZE;
        if (n > HVP_PE_MAX_DEBUG_ENTRIES)
                return hvp_fail(-E2BIG, "PE: %u debug directory entries (at most %u)", n, HVP_PE_MAX_DEBUG_ENTRIES);
        for (uint32_t i = 0; i < n; i++) {
                uint8_t e[DEBUG_ENTRY_SIZE];

                r = read_rva(pe, rva + i * DEBUG_ENTRY_SIZE, e, sizeof(e));
                if (r < 0)
                        return r;
                if (hvp_le32(e + 12) != DEBUG_TYPE_CODEVIEW)
                        continue;
                r = parse_codeview(pe, e, info);
                if (r == 0)
                        return 0;
        }
        return r;
}

/* The fixed headers: everything up to and including the section table. */
static int parse_headers(struct pe_image *pe, struct hvp_pe_info *info)
{
        uint8_t dos[DOS_HEADER_SIZE], nt[4 + COFF_HEADER_SIZE];
        uint8_t *opt = NULL, *sec;
        uint32_t lfanew, opt_size, nr_rva, hdr_end;
        int r;

        r = read_at(pe, 0, dos, sizeof(dos));
        if (r < 0)
                return hvp_fail_context(r, "PE: reading the DOS header");
        if (dos[0] != 'M' || dos[1] != 'Z')
                return hvp_fail(-EINVAL, "PE: no MZ signature");
        lfanew = hvp_le32(dos + DOS_LFANEW);
        if (lfanew < 4 || lfanew > HVP_PE_MAX_HEADERS - sizeof(nt))
                return hvp_fail(-EINVAL, "PE: e_lfanew 0x%x out of range", lfanew);
        r = read_at(pe, lfanew, nt, sizeof(nt));
        if (r < 0)
                return hvp_fail_context(r, "PE: reading the NT headers");
        if (memcmp(nt, "PE\0\0", 4) != 0)
                return hvp_fail(-EINVAL, "PE: no PE signature at e_lfanew 0x%x", lfanew);
        info->machine = hvp_le16(nt + 4);
        pe->nr_sections = hvp_le16(nt + 6);
        info->nr_sections = pe->nr_sections;
        info->timestamp = hvp_le32(nt + 8);
        opt_size = hvp_le16(nt + 20);
        info->characteristics = hvp_le16(nt + 22);
        if (pe->nr_sections > HVP_PE_MAX_SECTIONS)
                return hvp_fail(-E2BIG, "PE: %u sections (at most %u)", pe->nr_sections, HVP_PE_MAX_SECTIONS);
        if (opt_size < 2)
                return hvp_fail(-EINVAL, "PE: no optional header (an object file, not an image)");
        hdr_end = lfanew + (uint32_t)sizeof(nt) + opt_size + pe->nr_sections * SECTION_SIZE;
        if (hdr_end > HVP_PE_MAX_HEADERS)
                return hvp_fail(-E2BIG, "PE: headers end at 0x%x (at most 0x%x)", hdr_end, HVP_PE_MAX_HEADERS);

        opt = malloc(hdr_end - lfanew - sizeof(nt));
        if (!opt)
                return -ENOMEM;
        r = read_at(pe, lfanew + sizeof(nt), opt, hdr_end - lfanew - sizeof(nt));
        if (r < 0) {
                hvp_fail_context(r, "PE: reading the optional header and section table");
                goto out;
        }
        r = -ENOTSUP;
        if (hvp_le16(opt) == OPT_MAGIC_PE32) {
                hvp_fail(r, "PE: a PE32 (32-bit) image, not PE32+");
                goto out;
        }
        if (hvp_le16(opt) != OPT_MAGIC_PE32PLUS) {
                hvp_fail(r = -EINVAL, "PE: optional header magic 0x%x", hvp_le16(opt));
                goto out;
        }
        r = -EINVAL;
        if (opt_size < OPT_DIRS_OFFSET) {
                hvp_fail(r, "PE: PE32+ optional header of %u bytes is too small", opt_size);
                goto out;
        }
        info->entry_rva = hvp_le32(opt + 16);
        info->image_base = hvp_le64(opt + 24);
        info->size_of_image = pe->size_of_image = hvp_le32(opt + 56);
        info->size_of_headers = pe->size_of_headers = hvp_le32(opt + 60);
        info->subsystem = hvp_le16(opt + 68);
        nr_rva = hvp_le32(opt + 108);
        if (pe->size_of_image == 0 || pe->size_of_image > HVP_PE_MAX_IMAGE) {
                hvp_fail(r = pe->size_of_image ? -E2BIG : -EINVAL, "PE: SizeOfImage 0x%x (at most 0x%x)",
                         pe->size_of_image, HVP_PE_MAX_IMAGE);
                goto out;
        }
        if (pe->size_of_headers < hdr_end || pe->size_of_headers > pe->size_of_image) {
                hvp_fail(r, "PE: SizeOfHeaders 0x%x outside [0x%x, SizeOfImage 0x%x]", pe->size_of_headers, hdr_end,
                         pe->size_of_image);
                goto out;
        }
        /* Directories past 16 are reserved; those the header claims must fit in it. */
        pe->nr_dirs = HVP_MIN(nr_rva, NR_DIRS_MAX);
        if (OPT_DIRS_OFFSET + pe->nr_dirs * 8 > opt_size) {
                hvp_fail(r, "PE: %u data directories do not fit a %u-byte optional header", nr_rva, opt_size);
                goto out;
        }
        for (uint32_t i = 0; i < pe->nr_dirs; i++) {
                pe->dir_rva[i] = hvp_le32(opt + OPT_DIRS_OFFSET + 8 * i);
                pe->dir_size[i] = hvp_le32(opt + OPT_DIRS_OFFSET + 8 * i + 4);
        }
        sec = opt + opt_size;
        for (unsigned i = 0; i < pe->nr_sections; i++, sec += SECTION_SIZE) {
                pe->sections[i] = (struct pe_section){ .vsize = hvp_le32(sec + 8), .va = hvp_le32(sec + 12),
                                                       .raw_size = hvp_le32(sec + 16), .raw_ptr = hvp_le32(sec + 20) };
                if (!hvp_range_within(pe->sections[i].va, pe->sections[i].vsize, 0, pe->size_of_image)) {
                        hvp_fail(r, "PE: section %u (RVA 0x%x+0x%x) lies outside SizeOfImage 0x%x", i,
                                 pe->sections[i].va, pe->sections[i].vsize, pe->size_of_image);
                        goto out;
                }
        }
        r = 0;
out:
        free(opt);
        return r;
}

int hvp_pe_parse_reader(hvp_pe_read_fn read, void *ctx, uint64_t size, enum hvp_pe_layout layout,
                        struct hvp_pe_info *ret)
{
        struct pe_image *pe;
        struct hvp_pe_info info = { 0 };
        int r;

        if (!read || !ret)
                return hvp_fail(-EINVAL, "PE: no reader");
        pe = calloc(1, sizeof(*pe));
        if (!pe)
                return -ENOMEM;
        *pe = (struct pe_image){ .read = read, .ctx = ctx, .size = size, .layout = layout };
        r = parse_headers(pe, &info);
        if (r == 0) {
                /* Optional parts: the identity falls back to TimeDateStamp/SizeOfImage without them. */
                if (parse_export_name(pe, &info) < 0)
                        hvp_debug("PE: no export name: %s", hvp_last_error());
                if (parse_debug_dir(pe, &info) < 0)
                        hvp_debug("PE: no CodeView record: %s", hvp_last_error());
                *ret = info;
        }
        free(pe);
        return r;
}

struct buf_reader {
        const uint8_t *p;
        size_t len;
};

static int buf_read(void *ctx, uint64_t off, void *buf, size_t len)
{
        const struct buf_reader *b = ctx;

        if (!hvp_range_within(off, len, 0, b->len))
                return hvp_fail(-EINVAL, "PE: read past the end of the buffer");
        memcpy(buf, b->p + off, len);
        return 0;
}

int hvp_pe_parse(const void *buf, size_t len, enum hvp_pe_layout layout, struct hvp_pe_info *ret)
{
        struct buf_reader b = { buf, len };

        if (!buf && len)
                return hvp_fail(-EINVAL, "PE: no buffer");
        return hvp_pe_parse_reader(buf_read, &b, len, layout, ret);
}

void hvp_pe_identity(const struct hvp_pe_info *pe, char out[HVP_PE_IDENTITY_MAX])
{
        const uint8_t *g = pe->pdb_guid;

        if (!pe->has_codeview) {
                snprintf(out, HVP_PE_IDENTITY_MAX, "%08x%x", pe->timestamp, pe->size_of_image);
                return;
        }
        snprintf(out, HVP_PE_IDENTITY_MAX, "%08x%04x%04x%02x%02x%02x%02x%02x%02x%02x%02x%x", hvp_le32(g),
                 hvp_le16(g + 4), hvp_le16(g + 6), g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15],
                 pe->pdb_age);
}

static bool is_kernel_pdb(const char *path)
{
        static const char *const names[] = { "ntoskrnl.pdb", "ntkrnlmp.pdb", "ntkrnlpa.pdb", "ntkrpamp.pdb" };
        const char *base = path;

        for (const char *p = path; *p; p++)
                if (*p == '\\' || *p == '/')
                        base = p + 1;
        for (size_t i = 0; i < HVP_ARRAY_SIZE(names); i++)
                if (strcasecmp(base, names[i]) == 0)
                        return true;
        return false;
}

bool hvp_pe_is_windows_kernel(const struct hvp_pe_info *pe, char *why, size_t why_size)
{
        char dummy[1];

        if (!why) {
                why = dummy;
                why_size = sizeof(dummy);
        }
        if (pe->machine != HVP_PE_MACHINE_AMD64) {
                snprintf(why, why_size, "machine 0x%x is not AMD64", pe->machine);
                return false;
        }
        if (pe->subsystem != HVP_PE_SUBSYSTEM_NATIVE) {
                snprintf(why, why_size, "subsystem %u is not native (1)", pe->subsystem);
                return false;
        }
        if (strcasecmp(pe->export_name, "ntoskrnl.exe") == 0 || (pe->has_codeview && is_kernel_pdb(pe->pdb_name)))
                return true;
        snprintf(why, why_size, "neither its export name (\"%s\") nor its PDB (\"%s\") is the kernel's",
                 pe->export_name, pe->has_codeview ? pe->pdb_name : "");
        return false;
}

/*
 * The core backend: an ELF64 core written by QEMU's dump-guest-memory, as
 * `virsh dump --memory-only --format elf` asks for it. Read-only.
 *
 * Layout QEMU writes (dump/dump.c, target/i386/arch_dump.c): one PT_NOTE with,
 * per vCPU, a "CORE" NT_PRSTATUS note (general registers) and then per vCPU a
 * "QEMU" note holding QEMUCPUState (segments, GDT/IDT, CR0..CR4); one PT_LOAD per
 * block of guest RAM and RAM-backed ROM with p_paddr = guest-physical address.
 * With more than 0xfffe program headers, e_phnum is PN_XNUM and the count is in
 * section header 0's sh_info. e_ehsize is not checked: QEMU 7.2 writes 8 there.
 *
 * A core file is read with pread(), never mapped: a file that shrinks while it is
 * open (truncated, rewritten by another dump) then gives a short read and an error,
 * where a mapping would raise SIGBUS. The headers and notes are read once at open
 * (bounded: HVP_CORE_MAX_PHDRS, HVP_CORE_MAX_NOTES_BYTES); guest memory on demand,
 * small reads (page-table entries, above all) through a cache of file pages.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/util.h"
#include "vmi/backend.h"
#include "vmi/core.h"

/* QEMUCPUState, version 1 (target/i386/arch_dump.c): offsets into the note's desc. */
#define QCS_VERSION 0
#define QCS_SIZE 4
#define QCS_RSP (8 + 6 * 8)
#define QCS_RIP (8 + 16 * 8)
#define QCS_RFLAGS (QCS_RIP + 8)
#define QCS_SEG(i) (QCS_RFLAGS + 8 + (i) * 24)       /* cs ds es fs gs ss ldt tr gdt idt */
#define QCS_SEG_CS 0
#define QCS_SEG_FS 3
#define QCS_SEG_GS 4
#define QCS_SEG_GDT 8
#define QCS_SEG_IDT 9
#define QCS_SEG_SELECTOR 0
#define QCS_SEG_LIMIT 4
#define QCS_SEG_BASE 16
#define QCS_CR(i) (QCS_SEG(10) + (i) * 8)
#define QCS_V1_SIZE QCS_CR(5)                           /* 432 */
#define QCS_KERNEL_GS_BASE QCS_V1_SIZE                  /* optional, size 440 */

/* x86_64 elf_prstatus: pr_reg at 112, user_regs_struct order r15 r14 ... gs. */
#define PRSTATUS_SIZE 336
#define PRSTATUS_REG(i) (112 + (i) * 8)
#define PR_RIP 16
#define PR_CS 17
#define PR_RFLAGS 18
#define PR_RSP 19

#define CR0_PG (1ull << 31)
#define CR4_PAE (1ull << 5)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)
#define EFER_NXE (1ull << 11)

struct core_seg {
        uint64_t gpa, size, off;
};

/* Direct-mapped cache of 4 KiB file pages for reads within one page: 1 MiB. */
#define CACHE_PAGE 4096u
#define CACHE_SLOTS 256u

struct cache_slot {
        uint64_t off;           /* file offset of the page + 1; 0: empty */
        uint8_t data[CACHE_PAGE];
};

struct core_be {
        const uint8_t *data;    /* a core in memory (tests, fuzzers), or NULL: read from fd */
        int fd;                 /* closed on close; -1 for a buffer */
        char *path;
        size_t size;            /* the file's size at open */
        struct cache_slot *cache;       /* fd only, allocated on first use */
        struct core_seg seg[HVP_MAX_RAM_RANGES];
        size_t nr_seg;
};

struct core_parse {
        size_t size;
        struct core_be *be;
        struct hvp_vcpu_regs *vcpus;    /* HVP_MAX_VCPUS */
        unsigned nr_qemu, nr_prstatus;
        uint64_t prstatus_rip[HVP_MAX_VCPUS];
        bool long_mode;                 /* e_machine is x86-64: QEMU saw LMA */
};

static bool in_file(const struct core_parse *p, uint64_t off, uint64_t len)
{
        return hvp_range_within(off, len, 0, p->size);
}

/* [off, off + len) of the core, which the caller checked is inside its size at open. */
static int src_read(const struct core_be *c, uint64_t off, void *buf, size_t len)
{
        uint8_t *out = buf;
        size_t done = 0;

        if (c->data) {
                memcpy(buf, c->data + off, len);
                return 0;
        }
        while (done < len) {
                ssize_t n = pread(c->fd, out + done, len - done, (off_t)(off + done));

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return hvp_fail(-EIO, "core %s: reading %zu bytes at offset 0x%llx: %m", c->path, len,
                                        (unsigned long long)off);
                if (n == 0)
                        return hvp_fail(-EIO, "core %s: the file ends at offset 0x%llx, before the %zu bytes at 0x%llx: "
                                        "it shrank after it was opened (%zu bytes then)", c->path,
                                        (unsigned long long)(off + done), len, (unsigned long long)off, c->size);
                done += (size_t)n;
        }
        return 0;
}

/* A read inside one file page, through the cache (the core is a snapshot: pages never change). */
static int cached_read(struct core_be *c, uint64_t off, void *buf, size_t len)
{
        uint64_t page = off & ~(uint64_t)(CACHE_PAGE - 1);
        struct cache_slot *slot;
        int r;

        if (c->data || (off & (CACHE_PAGE - 1)) + len > CACHE_PAGE || page + CACHE_PAGE > c->size)
                return src_read(c, off, buf, len);
        if (!c->cache) {
                c->cache = calloc(CACHE_SLOTS, sizeof(*c->cache));
                if (!c->cache)
                        return src_read(c, off, buf, len);
        }
        slot = &c->cache[(page / CACHE_PAGE) % CACHE_SLOTS];
        if (slot->off != page + 1) {
                slot->off = 0;
                r = src_read(c, page, slot->data, CACHE_PAGE);
                if (r < 0)
                        return r;
                slot->off = page + 1;
        }
        memcpy(buf, slot->data + (off - page), len);
        return 0;
}

/* Adjacent segments form one RAM range: a read may span several of them. */
static int core_read(void *be, uint64_t gpa, void *buf, size_t len)
{
        struct core_be *c = be;
        uint8_t *out = buf;
        int r;

        while (len > 0) {
                size_t i, n;

                for (i = 0; i < c->nr_seg; i++)
                        if (gpa >= c->seg[i].gpa && gpa - c->seg[i].gpa < c->seg[i].size)
                                break;
                if (i == c->nr_seg)
                        return hvp_fail(-EFAULT, "guest-physical 0x%llx is in no PT_LOAD segment",
                                        (unsigned long long)gpa);
                n = (size_t)HVP_MIN((uint64_t)len, c->seg[i].size - (gpa - c->seg[i].gpa));
                r = cached_read(c, c->seg[i].off + (gpa - c->seg[i].gpa), out, n);
                if (r < 0)
                        return r;
                out += n;
                gpa += n;
                len -= n;
        }
        return 0;
}

static void core_close(void *be)
{
        struct core_be *c = be;

        if (!c)
                return;
        if (c->fd >= 0)
                close(c->fd);
        free(c->cache);
        free(c->path);
        free(c);
}

static const struct hvp_backend_ops core_ops = {
        .name = "core",
        .read_phys = core_read,
        .close = core_close,
};

static int parse_ehdr(struct core_parse *p, uint64_t *ret_phoff, uint64_t *ret_phnum)
{
        uint8_t e[sizeof(Elf64_Ehdr)];
        uint64_t phnum;
        int r;

        if (p->size < sizeof(Elf64_Ehdr))
                return hvp_fail(-EINVAL, "ELF header: file has %zu bytes, an ELF64 header needs %zu", p->size,
                                sizeof(Elf64_Ehdr));
        r = src_read(p->be, 0, e, sizeof(e));
        if (r < 0)
                return r;
        if (memcmp(e, ELFMAG, SELFMAG) != 0)
                return hvp_fail(-EINVAL, "ELF header: not an ELF file (bad magic)");
        if (e[EI_CLASS] != ELFCLASS64)
                return hvp_fail(e[EI_CLASS] == ELFCLASS32 ? -ENOTSUP : -EINVAL,
                                "ELF header: class %u, only ELF64 cores are read", e[EI_CLASS]);
        if (e[EI_DATA] != ELFDATA2LSB)
                return hvp_fail(-EINVAL, "ELF header: not little-endian");
        if (hvp_le16(e + offsetof(Elf64_Ehdr, e_type)) != ET_CORE)
                return hvp_fail(-EINVAL, "ELF header: e_type %u is not ET_CORE",
                                hvp_le16(e + offsetof(Elf64_Ehdr, e_type)));
        switch (hvp_le16(e + offsetof(Elf64_Ehdr, e_machine))) {
        case EM_X86_64:
                p->long_mode = true;
                break;
        case EM_386:    /* QEMU's choice when the first vCPU was not in long mode */
                p->long_mode = false;
                break;
        default:
                return hvp_fail(-ENOTSUP, "ELF header: machine %u is not x86",
                                hvp_le16(e + offsetof(Elf64_Ehdr, e_machine)));
        }
        if (hvp_le16(e + offsetof(Elf64_Ehdr, e_phentsize)) != sizeof(Elf64_Phdr))
                return hvp_fail(-EINVAL, "ELF header: e_phentsize %u, expected %zu",
                                hvp_le16(e + offsetof(Elf64_Ehdr, e_phentsize)), sizeof(Elf64_Phdr));
        *ret_phoff = hvp_le64(e + offsetof(Elf64_Ehdr, e_phoff));
        phnum = hvp_le16(e + offsetof(Elf64_Ehdr, e_phnum));
        if (phnum == PN_XNUM) {
                uint64_t shoff = hvp_le64(e + offsetof(Elf64_Ehdr, e_shoff));
                uint8_t sh[sizeof(Elf64_Shdr)];

                if (hvp_le16(e + offsetof(Elf64_Ehdr, e_shentsize)) != sizeof(Elf64_Shdr) ||
                    !in_file(p, shoff, sizeof(Elf64_Shdr)))
                        return hvp_fail(-EINVAL, "ELF header: e_phnum is PN_XNUM but section header 0 "
                                        "(offset 0x%llx) is not in the file", (unsigned long long)shoff);
                r = src_read(p->be, shoff, sh, sizeof(sh));
                if (r < 0)
                        return r;
                phnum = hvp_le32(sh + offsetof(Elf64_Shdr, sh_info));
        }
        if (phnum == 0)
                return hvp_fail(-EINVAL, "ELF header: no program headers");
        if (phnum > HVP_CORE_MAX_PHDRS)
                return hvp_fail(-E2BIG, "ELF header: %llu program headers (at most %d)",
                                (unsigned long long)phnum, HVP_CORE_MAX_PHDRS);
        if (!in_file(p, *ret_phoff, phnum * sizeof(Elf64_Phdr)))
                return hvp_fail(-EINVAL, "program header table (offset 0x%llx, %llu entries) runs past the end "
                                "of the file (%zu bytes)", (unsigned long long)*ret_phoff,
                                (unsigned long long)phnum, p->size);
        *ret_phnum = phnum;
        return 0;
}

static int add_load(struct core_parse *p, const uint8_t *ph, unsigned idx)
{
        uint64_t off = hvp_le64(ph + offsetof(Elf64_Phdr, p_offset));
        uint64_t paddr = hvp_le64(ph + offsetof(Elf64_Phdr, p_paddr));
        uint64_t filesz = hvp_le64(ph + offsetof(Elf64_Phdr, p_filesz));
        uint64_t memsz = hvp_le64(ph + offsetof(Elf64_Phdr, p_memsz));
        struct core_be *c = p->be;

        if (filesz > memsz)
                return hvp_fail(-EINVAL, "PT_LOAD %u: p_filesz 0x%llx > p_memsz 0x%llx", idx,
                                (unsigned long long)filesz, (unsigned long long)memsz);
        if (filesz == 0)
                return 0;       /* nothing of it is in the file */
        if (!in_file(p, off, filesz))
                return hvp_fail(-EINVAL, "PT_LOAD %u (guest-physical 0x%llx): bytes 0x%llx+0x%llx run past the "
                                "end of the file (%zu bytes)", idx, (unsigned long long)paddr,
                                (unsigned long long)off, (unsigned long long)filesz, p->size);
        if (paddr + filesz < paddr)
                return hvp_fail(-EINVAL, "PT_LOAD %u: guest-physical 0x%llx+0x%llx wraps around", idx,
                                (unsigned long long)paddr, (unsigned long long)filesz);
        if (c->nr_seg >= HVP_MAX_RAM_RANGES)
                return hvp_fail(-E2BIG, "more than %d PT_LOAD segments", HVP_MAX_RAM_RANGES);
        /* Only the bytes in the file are known: a shorter p_filesz makes a shorter range. */
        c->seg[c->nr_seg++] = (struct core_seg){ paddr, filesz, off };
        return 0;
}

static uint64_t seg_field(const uint8_t *d, int seg, int field)
{
        return field == QCS_SEG_BASE ? hvp_le64(d + QCS_SEG(seg) + field) : hvp_le32(d + QCS_SEG(seg) + field);
}

static int qemu_note(struct core_parse *p, const uint8_t *d, uint64_t descsz, uint64_t where)
{
        struct hvp_vcpu_regs *r;
        uint32_t version, size;

        if (descsz < 8)
                return hvp_fail(-EINVAL, "QEMU note at 0x%llx: %llu bytes, too short for its header",
                                (unsigned long long)where, (unsigned long long)descsz);
        version = hvp_le32(d + QCS_VERSION);
        size = hvp_le32(d + QCS_SIZE);
        if (version != 1)
                return hvp_fail(-ENOTSUP, "QEMU note at 0x%llx: QEMUCPUState version %u (1 is known)",
                                (unsigned long long)where, version);
        if (size < QCS_V1_SIZE || size > descsz)
                return hvp_fail(-EINVAL, "QEMU note at 0x%llx: state size %u (note holds %llu, version 1 needs %d)",
                                (unsigned long long)where, size, (unsigned long long)descsz, QCS_V1_SIZE);
        if (p->nr_qemu >= HVP_MAX_VCPUS)
                return hvp_fail(-E2BIG, "more than %d QEMU CPU notes", HVP_MAX_VCPUS);
        r = &p->vcpus[p->nr_qemu++];
        memset(r, 0, sizeof(*r));
        r->rip = hvp_le64(d + QCS_RIP);
        r->rsp = hvp_le64(d + QCS_RSP);
        r->rflags = hvp_le64(d + QCS_RFLAGS);
        r->cs_sel = seg_field(d, QCS_SEG_CS, QCS_SEG_SELECTOR);
        r->fs_base = seg_field(d, QCS_SEG_FS, QCS_SEG_BASE);
        r->gs_base = seg_field(d, QCS_SEG_GS, QCS_SEG_BASE);
        r->gdt_base = seg_field(d, QCS_SEG_GDT, QCS_SEG_BASE);
        r->gdt_limit = (uint32_t)seg_field(d, QCS_SEG_GDT, QCS_SEG_LIMIT);
        r->idt_base = seg_field(d, QCS_SEG_IDT, QCS_SEG_BASE);
        r->idt_limit = (uint32_t)seg_field(d, QCS_SEG_IDT, QCS_SEG_LIMIT);
        r->cr0 = hvp_le64(d + QCS_CR(0));
        r->cr2 = hvp_le64(d + QCS_CR(2));
        r->cr3 = hvp_le64(d + QCS_CR(3));
        r->cr4 = hvp_le64(d + QCS_CR(4));
        if (size >= QCS_KERNEL_GS_BASE + 8)
                r->kernel_gs_base = hvp_le64(d + QCS_KERNEL_GS_BASE);
        /* No EFER in the note: see guest.h for why this reconstruction is safe. */
        if (p->long_mode && (r->cr0 & CR0_PG) && (r->cr4 & CR4_PAE))
                r->efer = EFER_LME | EFER_LMA | EFER_NXE;
        return 0;
}

static int prstatus_note(struct core_parse *p, const uint8_t *d, uint64_t descsz, uint64_t where)
{
        if (!p->long_mode)
                return 0;       /* the i386 layout: the QEMU notes carry everything */
        if (descsz < PRSTATUS_SIZE)
                return hvp_fail(-EINVAL, "NT_PRSTATUS note at 0x%llx: %llu bytes, x86-64 needs %d",
                                (unsigned long long)where, (unsigned long long)descsz, PRSTATUS_SIZE);
        if (p->nr_prstatus >= HVP_MAX_VCPUS)
                return hvp_fail(-E2BIG, "more than %d NT_PRSTATUS notes", HVP_MAX_VCPUS);
        p->prstatus_rip[p->nr_prstatus++] = hvp_le64(d + PRSTATUS_REG(PR_RIP));
        return 0;
}

static int parse_notes(struct core_parse *p, uint64_t off, uint64_t len, unsigned idx)
{
        _cleanup_free_ uint8_t *notes = NULL;
        uint64_t pos = 0;
        int r;

        if (!in_file(p, off, len))
                return hvp_fail(-EINVAL, "PT_NOTE %u: bytes 0x%llx+0x%llx run past the end of the file (%zu bytes)",
                                idx, (unsigned long long)off, (unsigned long long)len, p->size);
        if (len > HVP_CORE_MAX_NOTES_BYTES)
                return hvp_fail(-E2BIG, "PT_NOTE %u: %llu bytes of notes (at most %u)", idx,
                                (unsigned long long)len, HVP_CORE_MAX_NOTES_BYTES);
        notes = malloc(len ? (size_t)len : 1);
        if (!notes)
                return hvp_fail(-ENOMEM, "out of memory");
        r = src_read(p->be, off, notes, (size_t)len);
        if (r < 0)
                return r;
        while (pos < len) {
                const uint8_t *n = notes + pos;
                uint64_t namesz, descsz, type, name_pad, desc_pad, where = off + pos;
                const uint8_t *name, *desc;

                if (len - pos < 12)
                        return hvp_fail(-EINVAL, "note at 0x%llx: header cut off by the end of PT_NOTE %u",
                                        (unsigned long long)where, idx);
                namesz = hvp_le32(n);
                descsz = hvp_le32(n + 4);
                type = hvp_le32(n + 8);
                name_pad = (namesz + 3) & ~3ull;
                desc_pad = (descsz + 3) & ~3ull;
                if (name_pad + desc_pad > len - pos - 12)
                        return hvp_fail(-EINVAL, "note at 0x%llx: name size %llu and desc size %llu run past the "
                                        "end of PT_NOTE %u", (unsigned long long)where, (unsigned long long)namesz,
                                        (unsigned long long)descsz, idx);
                name = n + 12;
                desc = name + name_pad;
                r = 0;
                if (namesz == 5 && memcmp(name, "QEMU", 5) == 0)
                        r = qemu_note(p, desc, descsz, where);
                else if (namesz == 5 && memcmp(name, "CORE", 5) == 0 && type == NT_PRSTATUS)
                        r = prstatus_note(p, desc, descsz, where);
                if (r < 0)
                        return r;
                pos += 12 + name_pad + desc_pad;
        }
        return 0;
}

static int seg_cmp(const void *a, const void *b)
{
        const struct core_seg *x = a, *y = b;

        return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

static int parse_core(struct core_parse *p)
{
        struct core_be *c = p->be;
        _cleanup_free_ uint8_t *phdrs = NULL;
        uint64_t phoff = 0, phnum = 0;
        int r;

        r = parse_ehdr(p, &phoff, &phnum);
        if (r < 0)
                return r;
        phdrs = malloc(phnum * sizeof(Elf64_Phdr));     /* phnum <= HVP_CORE_MAX_PHDRS */
        if (!phdrs)
                return hvp_fail(-ENOMEM, "out of memory");
        r = src_read(c, phoff, phdrs, phnum * sizeof(Elf64_Phdr));
        if (r < 0)
                return r;
        for (uint64_t i = 0; i < phnum; i++) {
                const uint8_t *ph = phdrs + i * sizeof(Elf64_Phdr);
                uint32_t type = hvp_le32(ph + offsetof(Elf64_Phdr, p_type));

                if (type == PT_LOAD)
                        r = add_load(p, ph, (unsigned)i);
                else if (type == PT_NOTE)
                        r = parse_notes(p, hvp_le64(ph + offsetof(Elf64_Phdr, p_offset)),
                                        hvp_le64(ph + offsetof(Elf64_Phdr, p_filesz)), (unsigned)i);
                if (r < 0)
                        return r;
        }
        if (c->nr_seg == 0)
                return hvp_fail(-EINVAL, "no PT_LOAD segment with bytes in the file: no guest memory");
        qsort(c->seg, c->nr_seg, sizeof(c->seg[0]), seg_cmp);
        for (size_t i = 1; i < c->nr_seg; i++)
                if (c->seg[i - 1].gpa + c->seg[i - 1].size > c->seg[i].gpa)
                        return hvp_fail(-EINVAL, "PT_LOAD segments overlap at guest-physical 0x%llx",
                                        (unsigned long long)c->seg[i].gpa);
        if (p->nr_qemu == 0)
                return hvp_fail(-EINVAL, "no QEMU CPU state note: not a core from QEMU's dump-guest-memory, "
                                "or one without registers");
        if (p->nr_prstatus != 0) {
                if (p->nr_prstatus != p->nr_qemu)
                        return hvp_fail(-EINVAL, "%u NT_PRSTATUS notes but %u QEMU notes", p->nr_prstatus,
                                        p->nr_qemu);
                for (unsigned i = 0; i < p->nr_qemu; i++)
                        if (p->prstatus_rip[i] != p->vcpus[i].rip)
                                return hvp_fail(-EINVAL, "vCPU %u: NT_PRSTATUS says RIP 0x%llx, the QEMU note 0x%llx",
                                                i, (unsigned long long)p->prstatus_rip[i],
                                                (unsigned long long)p->vcpus[i].rip);
        }
        return 0;
}

/* data: a core in memory, or NULL to read fd (owned from here on: closed on failure too). */
static int open_core(const uint8_t *data, size_t size, int fd, const char *name, struct hvp_guest **ret_guest)
{
        struct hvp_ram_range ranges[HVP_MAX_RAM_RANGES];
        struct core_parse p = { .size = size };
        struct core_be *c = calloc(1, sizeof(*c));
        size_t nr = 0;
        int r;

        p.vcpus = calloc(HVP_MAX_VCPUS, sizeof(*p.vcpus));
        if (c)
                c->path = strdup(name);
        if (!c || !p.vcpus || !c->path) {
                if (c)
                        free(c->path);
                free(c);
                free(p.vcpus);
                if (fd >= 0)
                        close(fd);
                return hvp_fail(-ENOMEM, "out of memory");
        }
        c->data = data;
        c->fd = fd;
        c->size = size;
        p.be = c;
        r = parse_core(&p);
        if (r < 0) {
                r = hvp_fail_context(r, "core %s", name);
                core_close(c);
                free(p.vcpus);
                return r;
        }
        for (size_t i = 0; i < c->nr_seg; i++) {
                if (nr > 0 && ranges[nr - 1].gpa + ranges[nr - 1].size == c->seg[i].gpa)
                        ranges[nr - 1].size += c->seg[i].size;
                else
                        ranges[nr++] = (struct hvp_ram_range){ c->seg[i].gpa, c->seg[i].size };
        }
        r = hvp_guest_new(&core_ops, c, name, ranges, nr, p.vcpus, p.nr_qemu, ret_guest);
        free(p.vcpus);
        return r;
}

int hvp_guest_open_core_buffer(const void *data, size_t size, const char *name, struct hvp_guest **ret_guest)
{
        if (!data)
                return hvp_fail(-EINVAL, "core: no buffer");
        return open_core(data, size, -1, name ? name : "core", ret_guest);
}

int hvp_guest_open_core(const char *path, struct hvp_guest **ret_guest)
{
        _cleanup_close_ int fd = -1;
        struct stat st;
        int owned;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return hvp_fail(errno == ENOENT ? -ENOENT : errno == EACCES ? -EACCES : -EIO, "%s: %m", path);
        if (fstat(fd, &st) < 0)
                return hvp_fail(-EIO, "%s: %m", path);
        if (!S_ISREG(st.st_mode))
                return hvp_fail(-EINVAL, "%s is not a regular file", path);
        if (st.st_size < (off_t)sizeof(Elf64_Ehdr))
                return hvp_fail(-EINVAL, "core %s: file has %lld bytes, an ELF64 header needs %zu", path,
                                (long long)st.st_size, sizeof(Elf64_Ehdr));
        if ((uint64_t)st.st_size > SIZE_MAX)
                return hvp_fail(-E2BIG, "core %s: %lld bytes", path, (long long)st.st_size);
        owned = fd;
        fd = -1;
        return open_core(NULL, (size_t)st.st_size, owned, path, ret_guest);
}

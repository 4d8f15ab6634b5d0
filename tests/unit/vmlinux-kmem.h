/*
 * Test helper: a decompressed vmlinux (ELF64) as an hvp_kmem, reading its PT_LOAD
 * segments by virtual address (bytes past a segment's file size read as zero), and
 * the ELF's own .notes section, found through the section headers, as an oracle.
 * Only the kernel's high-half segments are searched (the per-cpu segment is linked
 * at 0).
 */
#ifndef HVP_TESTS_VMLINUX_KMEM_H
#define HVP_TESTS_VMLINUX_KMEM_H

#include <elf.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hvpatch/kernel.h>

#define VMLINUX_MAX_SEGS 16

struct vmlinux {
        const uint8_t *map;
        size_t size;
        struct {
                uint64_t va, memsz, filesz, offset;
        } seg[VMLINUX_MAX_SEGS];
        unsigned nseg;
        uint64_t start, end;            /* the high-half segments */
};

static inline int vmlinux_read(void *ctx, uint64_t va, void *buf, size_t len)
{
        const struct vmlinux *v = ctx;

        for (unsigned i = 0; i < v->nseg; i++) {
                uint64_t off = va - v->seg[i].va;

                if (va < v->seg[i].va || off > v->seg[i].memsz || len > v->seg[i].memsz - off)
                        continue;
                uint64_t from_file = off < v->seg[i].filesz ? v->seg[i].filesz - off : 0;

                if (from_file > len)
                        from_file = len;
                if (from_file)
                        memcpy(buf, v->map + v->seg[i].offset + off, from_file);
                memset((uint8_t *)buf + from_file, 0, len - from_file);
                return 0;
        }
        return -14;     /* -EFAULT */
}

/* The next segment start above va: what a page-table walker would say of a gap. */
static inline uint64_t vmlinux_hole_end(void *ctx, uint64_t va)
{
        const struct vmlinux *v = ctx;
        uint64_t best = 0;

        for (unsigned i = 0; i < v->nseg; i++)
                if (v->seg[i].va > va && (!best || v->seg[i].va < best))
                        best = v->seg[i].va;
        return best;
}

/* Returns NULL-terminated error text, or NULL on success. */
static inline const char *vmlinux_open(const char *path, struct vmlinux *v)
{
        const Elf64_Ehdr *eh;
        struct stat st;
        int fd;

        memset(v, 0, sizeof(*v));
        fd = open(path, O_RDONLY);
        if (fd < 0)
                return "cannot open";
        if (fstat(fd, &st) < 0 || st.st_size < (off_t)sizeof(Elf64_Ehdr)) {
                close(fd);
                return "too small";
        }
        v->size = (size_t)st.st_size;
        v->map = mmap(NULL, v->size, PROT_READ, MAP_PRIVATE, fd, 0);
        close(fd);
        if (v->map == MAP_FAILED)
                return "mmap failed";
        eh = (const Elf64_Ehdr *)v->map;
        if (memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
            eh->e_phentsize != sizeof(Elf64_Phdr) ||
            eh->e_phoff + (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > v->size)
                return "not an ELF64 file";
        for (unsigned i = 0; i < eh->e_phnum; i++) {
                const Elf64_Phdr *ph = (const Elf64_Phdr *)(v->map + eh->e_phoff) + i;

                if (ph->p_type != PT_LOAD || ph->p_vaddr < 0xffff800000000000ull)
                        continue;
                if (v->nseg == VMLINUX_MAX_SEGS || ph->p_offset + ph->p_filesz > v->size ||
                    ph->p_filesz > ph->p_memsz)
                        return "bad program headers";
                v->seg[v->nseg].va = ph->p_vaddr;
                v->seg[v->nseg].memsz = ph->p_memsz;
                v->seg[v->nseg].filesz = ph->p_filesz;
                v->seg[v->nseg].offset = ph->p_offset;
                if (!v->start || ph->p_vaddr < v->start)
                        v->start = ph->p_vaddr;
                if (ph->p_vaddr + ph->p_memsz > v->end)
                        v->end = ph->p_vaddr + ph->p_memsz;
                v->nseg++;
        }
        return v->nseg ? NULL : "no high-half PT_LOAD segment";
}

static inline void vmlinux_close(struct vmlinux *v)
{
        if (v->map && v->map != MAP_FAILED)
                munmap((void *)v->map, v->size);
        v->map = NULL;
}

static inline struct hvp_kmem vmlinux_kmem(struct vmlinux *v)
{
        return (struct hvp_kmem){
                .read = vmlinux_read, .ctx = v, .start = v->start, .end = v->end, .hole_end = vmlinux_hole_end,
        };
}

/*
 * The GNU build id from the section named ".notes" (through the section headers,
 * which the decoder never looks at). Returns its length, 0 if none.
 */
static inline size_t vmlinux_section_build_id(const struct vmlinux *v, uint8_t *out, size_t max)
{
        const Elf64_Ehdr *eh = (const Elf64_Ehdr *)v->map;
        const Elf64_Shdr *sh, *strtab;

        if (eh->e_shentsize != sizeof(Elf64_Shdr) || eh->e_shstrndx >= eh->e_shnum ||
            eh->e_shoff + (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr) > v->size)
                return 0;
        sh = (const Elf64_Shdr *)(v->map + eh->e_shoff);
        strtab = &sh[eh->e_shstrndx];
        for (unsigned i = 0; i < eh->e_shnum; i++) {
                const char *name;
                size_t off;

                if (strtab->sh_offset + sh[i].sh_name + 7 > v->size)
                        continue;
                name = (const char *)v->map + strtab->sh_offset + sh[i].sh_name;
                if (strcmp(name, ".notes") || sh[i].sh_offset + sh[i].sh_size > v->size)
                        continue;
                for (off = 0; off + sizeof(Elf64_Nhdr) <= sh[i].sh_size;) {
                        const Elf64_Nhdr *nh = (const Elf64_Nhdr *)(v->map + sh[i].sh_offset + off);
                        size_t name_at = off + sizeof(*nh);
                        size_t desc_at = name_at + ((nh->n_namesz + 3) & ~3u);

                        if (desc_at + nh->n_descsz > sh[i].sh_size)
                                break;
                        if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
                            !memcmp(v->map + sh[i].sh_offset + name_at, "GNU", 4) && nh->n_descsz <= max) {
                                memcpy(out, v->map + sh[i].sh_offset + desc_at, nh->n_descsz);
                                return nh->n_descsz;
                        }
                        off = desc_at + ((nh->n_descsz + 3) & ~3u);
                }
        }
        return 0;
}

/* The address of the section called name (through the section headers); false if none. */
static inline bool vmlinux_section_addr(const struct vmlinux *v, const char *name, uint64_t *ret_addr)
{
        const Elf64_Ehdr *eh = (const Elf64_Ehdr *)v->map;
        const Elf64_Shdr *sh, *strtab;
        size_t len = strlen(name) + 1;

        if (eh->e_shentsize != sizeof(Elf64_Shdr) || eh->e_shstrndx >= eh->e_shnum ||
            eh->e_shoff + (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr) > v->size)
                return false;
        sh = (const Elf64_Shdr *)(v->map + eh->e_shoff);
        strtab = &sh[eh->e_shstrndx];
        for (unsigned i = 0; i < eh->e_shnum; i++) {
                if (strtab->sh_offset + sh[i].sh_name + len > v->size)
                        continue;
                if (!memcmp(v->map + strtab->sh_offset + sh[i].sh_name, name, len)) {
                        *ret_addr = sh[i].sh_addr;
                        return true;
                }
        }
        return false;
}

#endif

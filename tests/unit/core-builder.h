/*
 * Test helper: builds ELF64 cores laid out as QEMU's dump-guest-memory writes them
 * (ELF header, program headers, one PT_NOTE with a CORE/NT_PRSTATUS note per vCPU
 * followed by a QEMU note per vCPU, then the PT_LOAD bytes), recording where each
 * part lies so tests can break exactly one thing. Shared by test-core and the
 * fuzz corpus generator.
 */
#ifndef HVP_TESTS_CORE_BUILDER_H
#define HVP_TESTS_CORE_BUILDER_H

#include <elf.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#define CB_MAX_LOADS 8
#define CB_MAX_VCPUS 4

struct cb_spec {
        unsigned nr_vcpus;
        bool prstatus;                  /* CORE notes present */
        uint32_t qemu_size;             /* QEMUCPUState size: 432 (v1) or 440 (kernel_gs_base) */
        unsigned nr_loads;
        struct { uint64_t gpa, size; } load[CB_MAX_LOADS];
};

struct cb_core {
        uint8_t *buf;
        size_t size;
        size_t phoff;                   /* phdr i at phoff + 56 * i; 0 is the PT_NOTE */
        size_t note_off, note_size;
        size_t prstatus_off[CB_MAX_VCPUS];      /* start of each note (its header) */
        size_t qemu_off[CB_MAX_VCPUS];
        size_t load_off[CB_MAX_LOADS];
};

static inline void cb_put16(uint8_t *p, uint16_t v) { hvp_put_le16(p, v); }
static inline void cb_put32(uint8_t *p, uint32_t v) { hvp_put_le32(p, v); }
static inline void cb_put64(uint8_t *p, uint64_t v) { hvp_put_le64(p, v); }

/* The registers the builder gives vCPU v (tests compare against these). */
static inline uint64_t cb_rip(unsigned v) { return 0xffffffff81000000ull + 0x100 * v; }
static inline uint64_t cb_rsp(unsigned v) { return 0xffffc90000004000ull + 0x1000 * v; }
static inline uint64_t cb_cr3(unsigned v) { return 0x1000000ull + 0x1000 * v; }
static inline uint64_t cb_gs(unsigned v) { return 0xffff888007a00000ull + 0x100000 * v; }
static inline uint64_t cb_kgs(unsigned v) { return 0x7f0000001000ull + v; }
#define CB_CR0 0x80050033ull
#define CB_CR4 0x3506f0ull
#define CB_RFLAGS 0x246ull
#define CB_GDT 0xfffffe0000001000ull
#define CB_IDT 0xfffffe0000000000ull

/* Byte of guest memory at a guest-physical address. */
static inline uint8_t cb_byte(uint64_t gpa) { return (uint8_t)(gpa * 131 + (gpa >> 12) * 7 + 3); }

static inline size_t cb_note_size(size_t descsz) { return 12 + 8 + ((descsz + 3) & ~(size_t)3); }

static inline void cb_note_header(uint8_t *p, const char *name, uint32_t descsz, uint32_t type)
{
        cb_put32(p, 5);
        cb_put32(p + 4, descsz);
        cb_put32(p + 8, type);
        memcpy(p + 12, name, 5);
}

static inline void cb_qemu_state(uint8_t *d, unsigned v, uint32_t size)
{
        const size_t rip = 8 + 16 * 8, seg = rip + 16, cr = seg + 10 * 24;

        cb_put32(d, 1);
        cb_put32(d + 4, size);
        cb_put64(d + 8 + 6 * 8, cb_rsp(v));
        cb_put64(d + rip, cb_rip(v));
        cb_put64(d + rip + 8, CB_RFLAGS);
        cb_put32(d + seg + 0 * 24, 0x10);               /* cs selector */
        cb_put32(d + seg + 0 * 24 + 8, 0x00af9b00);     /* cs flags: L */
        cb_put64(d + seg + 4 * 24 + 16, cb_gs(v));      /* gs base */
        cb_put32(d + seg + 8 * 24 + 4, 0x7f);           /* gdt limit */
        cb_put64(d + seg + 8 * 24 + 16, CB_GDT);
        cb_put32(d + seg + 9 * 24 + 4, 0xfff);
        cb_put64(d + seg + 9 * 24 + 16, CB_IDT);
        cb_put64(d + cr + 0, CB_CR0);
        cb_put64(d + cr + 16, 0xdead000);               /* cr2 */
        cb_put64(d + cr + 24, cb_cr3(v));
        cb_put64(d + cr + 32, CB_CR4);
        if (size >= 440)
                cb_put64(d + cr + 40, cb_kgs(v));
}

/* Builds the core; returns false on allocation failure. Free c->buf. */
static inline bool cb_build(const struct cb_spec *s, struct cb_core *c)
{
        size_t nph = 1 + s->nr_loads, off, qdesc = s->qemu_size;
        uint8_t *p;

        memset(c, 0, sizeof(*c));
        c->phoff = 64;
        c->note_off = c->phoff + 56 * nph;
        c->note_size = s->nr_vcpus * ((s->prstatus ? cb_note_size(336) : 0) + cb_note_size(qdesc));
        off = c->note_off + c->note_size;
        for (unsigned i = 0; i < s->nr_loads; i++) {
                c->load_off[i] = off;
                off += s->load[i].size;
        }
        c->size = off;
        c->buf = calloc(1, c->size);
        if (!c->buf)
                return false;
        p = c->buf;
        memcpy(p, ELFMAG, SELFMAG);
        p[EI_CLASS] = ELFCLASS64;
        p[EI_DATA] = ELFDATA2LSB;
        p[EI_VERSION] = EV_CURRENT;
        cb_put16(p + 16, ET_CORE);
        cb_put16(p + 18, EM_X86_64);
        cb_put32(p + 20, EV_CURRENT);
        cb_put64(p + 32, c->phoff);
        cb_put16(p + 52, 64);
        cb_put16(p + 54, 56);
        cb_put16(p + 56, (uint16_t)nph);
        /* PT_NOTE */
        p = c->buf + c->phoff;
        cb_put32(p, PT_NOTE);
        cb_put64(p + 8, c->note_off);
        cb_put64(p + 32, c->note_size);
        cb_put64(p + 40, c->note_size);
        for (unsigned i = 0; i < s->nr_loads; i++) {
                p = c->buf + c->phoff + 56 * (1 + i);
                cb_put32(p, PT_LOAD);
                cb_put64(p + 8, c->load_off[i]);
                cb_put64(p + 16, s->load[i].gpa);       /* vaddr: QEMU writes the paddr without paging */
                cb_put64(p + 24, s->load[i].gpa);
                cb_put64(p + 32, s->load[i].size);
                cb_put64(p + 40, s->load[i].size);
                for (uint64_t b = 0; b < s->load[i].size; b++)
                        c->buf[c->load_off[i] + b] = cb_byte(s->load[i].gpa + b);
        }
        off = c->note_off;
        if (s->prstatus)
                for (unsigned v = 0; v < s->nr_vcpus; v++) {
                        c->prstatus_off[v] = off;
                        cb_note_header(c->buf + off, "CORE", 336, NT_PRSTATUS);
                        p = c->buf + off + 20;
                        cb_put32(p + 32, v);                    /* pr_pid */
                        cb_put64(p + 112 + 16 * 8, cb_rip(v));  /* rip */
                        cb_put64(p + 112 + 17 * 8, 0x10);       /* cs */
                        cb_put64(p + 112 + 18 * 8, CB_RFLAGS);
                        cb_put64(p + 112 + 19 * 8, cb_rsp(v));
                        off += cb_note_size(336);
                }
        for (unsigned v = 0; v < s->nr_vcpus; v++) {
                c->qemu_off[v] = off;
                cb_note_header(c->buf + off, "QEMU", (uint32_t)qdesc, 0);
                cb_qemu_state(c->buf + off + 20, v, s->qemu_size);
                off += cb_note_size(qdesc);
        }
        return true;
}

/* The usual shape: two vCPUs, RAM below 640K, a ROM block, RAM from 1 MiB. */
static inline struct cb_spec cb_default_spec(void)
{
        struct cb_spec s = { .nr_vcpus = 2, .prstatus = true, .qemu_size = 440, .nr_loads = 3 };

        s.load[0].gpa = 0;
        s.load[0].size = 0xa000;
        s.load[1].gpa = 0xc0000;
        s.load[1].size = 0x2000;
        s.load[2].gpa = 0x100000;
        s.load[2].size = 0x10000;
        return s;
}

#endif

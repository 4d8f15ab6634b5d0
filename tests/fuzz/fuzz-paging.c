/*
 * Fuzz the page walker: the input is a small guest memory image with a header
 * choosing CR3, the mode and a few addresses. Every translation is checked against
 * a plain reference walker written here (no TLB, no runs), again after a TLB hit and
 * after a flush; reads are checked byte for byte against the reference.
 *
 * Input layout (little-endian):
 *   0   u64 cr3
 *   8   u8  bit 0: 5-level, bit 1: EFER.NXE, bit 2: also write, bit 3: two RAM regions
 *   9   u8  MAXPHYADDR = 32 + value % 21
 *   10  u16 read length (at most 16 KiB)
 *   12  u32 second region's guest-physical page number (bit 3 of byte 8)
 *   16  4 x u64 virtual addresses
 *   48  the memory image (at most 256 KiB), at guest-physical 0 (split in two halves
 *       with bit 3: the second half goes to the page number above, or right after
 *       the first if that would overlap)
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hvpatch/paging.h>

#define HDR_SIZE 48
#define MAX_IMAGE (256u * 1024)
#define MAX_READ (16u * 1024)

struct fz {
        struct hvp_mem_region reg[2];
        unsigned nreg;
        uint64_t root;
        int levels;
        bool nxe;
        unsigned maxphy;
};

static uint64_t le(const uint8_t *p, unsigned n)
{
        uint64_t v = 0;

        while (n--)
                v = v << 8 | p[n];
        return v;
}

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

/* A pointer to [gpa, gpa+len) if it lies inside one region. */
static uint8_t *ref_phys(const struct fz *f, uint64_t gpa, uint64_t len)
{
        for (unsigned i = 0; i < f->nreg; i++) {
                const struct hvp_mem_region *r = &f->reg[i];

                if (gpa >= r->gpa && gpa - r->gpa < r->size && len <= r->size - (gpa - r->gpa))
                        return (uint8_t *)r->data + (gpa - r->gpa);
        }
        return NULL;
}

struct ref_result {
        int err;
        uint64_t pa, size;
        uint32_t flags;
};

static struct ref_result ref_translate(const struct fz *f, uint64_t va)
{
        uint64_t addr_mask = ((1ull << f->maxphy) - 1) & ~0xfffull;
        uint64_t rsvd = (((1ull << 52) - 1) & ~((1ull << f->maxphy) - 1)) | (f->nxe ? 0 : 1ull << 63);
        unsigned va_bits = f->levels == 5 ? 57 : 48;
        uint64_t top = va >> (va_bits - 1);
        uint64_t table = f->root, e = 0, size = 0;
        bool w = true, u = true, nx = false;
        struct ref_result res = { 0 };

        if (top != 0 && top != (~0ull >> (va_bits - 1))) {
                res.err = -EINVAL;
                return res;
        }
        for (int level = f->levels; level >= 1; level--) {
                unsigned shift = 12 + 9 * (unsigned)(level - 1);
                const uint8_t *p = ref_phys(f, table + ((va >> shift) & 511) * 8, 8);
                uint64_t bad = rsvd;

                if (!p) {
                        res.err = -ERANGE;
                        return res;
                }
                e = le(p, 8);
                if (!(e & 1)) {
                        res.err = -EFAULT;
                        return res;
                }
                bool ps = e & 0x80;
                if (level >= 4)
                        bad |= 0x80;
                else if (level == 3 && ps)
                        bad |= 0x3fffe000;      /* bits 13..29 */
                else if (level == 2 && ps)
                        bad |= 0x1fe000;        /* bits 13..20 */
                if (e & bad) {
                        res.err = -EINVAL;
                        return res;
                }
                w = w && (e & 2);
                u = u && (e & 4);
                nx = nx || (f->nxe && (e >> 63));
                if (level == 1 || (level <= 3 && ps)) {
                        size = 1ull << shift;
                        break;
                }
                table = e & addr_mask;
        }
        res.pa = (e & addr_mask & ~(size - 1)) + (va & (size - 1));
        if (!ref_phys(f, res.pa & ~0xfffull, 4096)) {
                res.err = -ERANGE;
                return res;
        }
        res.size = size;
        res.flags = HVP_PF_PRESENT | (w ? HVP_PF_WRITE : 0) | (u ? HVP_PF_USER : 0) |
                    (nx ? HVP_PF_NX : 0) | (e & 0x100 ? HVP_PF_GLOBAL : 0);
        return res;
}

static void check_translation(struct hvp_mmu *mmu, const struct fz *f, uint64_t va)
{
        struct ref_result want = ref_translate(f, va);

        for (int round = 0; round < 3; round++) {
                struct hvp_translation tr;
                int r;

                if (round == 2)
                        hvp_mmu_flush(mmu);
                r = hvp_mmu_translate(mmu, va, &tr);
                CHECK(r == want.err);
                CHECK(tr.va == va);
                if (r == 0) {
                        CHECK(tr.error == HVP_WALK_OK);
                        CHECK(tr.pa == want.pa && tr.page_size == want.size && tr.flags == want.flags);
                        CHECK(tr.page_size == 1ull << (12 + 9 * (tr.level - 1)));
                } else {
                        CHECK(tr.error != HVP_WALK_OK);
                        CHECK(tr.error_level >= 0 && tr.error_level <= f->levels);
                }
        }
}

/* Reference read: page by page through the reference walker. */
static int ref_read(const struct fz *f, uint64_t va, uint8_t *buf, size_t len)
{
        while (len > 0) {
                struct ref_result t = ref_translate(f, va);
                size_t n = 4096 - (va & 0xfff);
                const uint8_t *p;

                if (t.err)
                        return t.err;
                n = n < len ? n : len;
                p = ref_phys(f, t.pa, n);
                if (!p)
                        return -ERANGE;
                memcpy(buf, p, n);
                buf += n;
                va += n;
                len -= n;
        }
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static uint8_t buf[MAX_READ], want[MAX_READ];
        struct hvp_guest *g = NULL;
        struct hvp_mmu *mmu = NULL;
        struct fz f = { 0 };
        uint8_t *image;
        size_t isize;
        uint8_t mode;
        size_t rlen;

        if (size <= HDR_SIZE || size - HDR_SIZE > MAX_IMAGE)
                return 0;
        isize = size - HDR_SIZE;
        image = malloc(isize);
        if (!image)
                return 0;
        memcpy(image, data + HDR_SIZE, isize);
        mode = data[8];
        f.levels = mode & 1 ? 5 : 4;
        f.nxe = mode & 2;
        f.maxphy = 32 + data[9] % 21u;
        rlen = le(data + 10, 2) % (MAX_READ + 1);
        if ((mode & 8) && isize >= 2) {
                size_t half = isize / 2;
                uint64_t hi = le(data + 12, 4) << 12;

                if (hi < half)
                        hi = half;
                f.reg[0] = (struct hvp_mem_region){ 0, half, image };
                f.reg[1] = (struct hvp_mem_region){ hi, isize - half, image + half };
                f.nreg = 2;
        } else {
                f.reg[0] = (struct hvp_mem_region){ 0, isize, image };
                f.nreg = 1;
        }
        if (hvp_guest_open_memory(f.reg, f.nreg, NULL, 0, true, &g) < 0)
                goto out;
        if (hvp_mmu_new(g, le(data, 8), f.levels == 5 ? HVP_PAGING_5LEVEL : HVP_PAGING_4LEVEL, f.nxe, &mmu) < 0)
                goto out;
        f.root = hvp_mmu_root(mmu);
        if (hvp_mmu_set_maxphyaddr(mmu, f.maxphy) < 0)
                goto out;
        for (int i = 0; i < 4; i++) {
                uint64_t va = le(data + 16 + 8 * i, 8);
                int r, rr;

                check_translation(mmu, &f, va);
                r = hvp_mmu_read(mmu, va, buf, rlen);
                rr = ref_read(&f, va, want, rlen);
                /* The reference reads 4 KiB at a time: it fails on wrap-around by walking. */
                if (rlen > 0 && va + (rlen - 1) < va)
                        CHECK(r == -EINVAL);
                else
                        CHECK(r == rr);
                if (r == 0)
                        CHECK(memcmp(buf, want, rlen) == 0);
                if (r == 0 && (mode & 4)) {
                        for (size_t j = 0; j < rlen; j++)
                                buf[j] ^= 0x5a;
                        CHECK(hvp_mmu_write(mmu, va, buf, rlen) == 0);
                        /* The page tables may have changed: the checks above run again next round. */
                        check_translation(mmu, &f, va);
                }
        }
out:
        hvp_mmu_free(mmu);
        hvp_guest_free(g);
        free(image);
        return 0;
}

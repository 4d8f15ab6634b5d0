/*
 * x86-64 page walker (IA-32e 4-level and 5-level paging) with a software TLB.
 * See include/hvpatch/paging.h for the contract.
 *
 * Page-table entries come from guest memory and are hostile: every table pointer is
 * read through hvp_guest_read_phys (which refuses anything outside RAM), every
 * reserved bit is checked, and a walk is bounded by the number of levels.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <hvpatch/paging.h>

#include "common/error.h"
#include "common/util.h"
#include "vmi/x86.h"

#define CR0_PE          (1ull << 0)
#define CR0_PG          (1ull << 31)
#define CR4_PAE         (1ull << 5)
#define CR4_LA57        (1ull << 12)
#define EFER_LME        (1ull << 8)
#define EFER_LMA        (1ull << 10)
#define EFER_NXE        (1ull << 11)

/* CR3: bits 0-11 are PCID (or PWT/PCD), 61/62 LAM, 63 "no flush" on MOV to CR3. */
#define CR3_IGNORED     (0xfffull | 7ull << 61)
#define MAXPHYADDR_MAX  52
#define MAXPHYADDR_MIN  32

/* Inclusive bit range [lo, hi]. */
#define BITS(hi, lo)    ((~0ull >> (63 - (hi))) & ~((1ull << (lo)) - 1))

/* Direct-mapped TLB, one array per page size (a size's tag is va >> its shift). */
#define TLB_4K_ENTRIES  1024
#define TLB_2M_ENTRIES  256
#define TLB_1G_ENTRIES  64

struct tlb_entry {
        uint64_t tag;           /* va >> page shift */
        uint64_t gen;           /* valid iff equal to the mmu's generation */
        uint64_t pa;            /* physical base of the page */
        uint32_t flags;
        uint8_t level;
        bool whole_in_ram;      /* else each 4 KiB frame is checked on a hit */
};

struct tlb_array {
        struct tlb_entry *e;
        unsigned mask;
        unsigned shift;
};

/*
 * The last table read at each level during one hvp_mmu_read/write. Such a range over
 * 4 KiB pages walks the same page table up to 512 times: a table used by two walks in
 * a row is read whole, once, and later entries come from this copy (on the live
 * backend every read is a system call, about 2 µs). Valid for that call only (bulk);
 * hvp_mmu_translate alone still reads 8 bytes per level and never sees a copy.
 */
struct table_copy {
        uint64_t pa;
        uint64_t bulk;          /* the call it belongs to */
        bool tried;             /* to read it whole */
        bool whole;             /* page[] holds the table */
        uint8_t page[HVP_PAGE_SIZE];
};

struct hvp_mmu {
        struct hvp_guest *g;
        uint64_t root;
        enum hvp_paging_mode mode;
        bool nxe;
        unsigned maxphyaddr;
        uint64_t addr_mask;     /* address bits of an entry: [MAXPHYADDR-1, 12] */
        uint64_t rsvd_phys;     /* [51, MAXPHYADDR] */
        uint64_t gen;
        uint64_t hits, misses;
        struct tlb_array tlb[3];        /* index: level - 1 */
        struct tlb_entry storage[TLB_4K_ENTRIES + TLB_2M_ENTRIES + TLB_1G_ENTRIES];
        uint64_t bulk;                  /* inside collect_runs: its call number, else 0 */
        uint64_t bulk_calls;
        struct table_copy tables[5];    /* index: level - 1 */
};

static const char *const entry_names[] = { "", "PTE", "PDE", "PDPTE", "PML4E", "PML5E" };
static const char *const table_names[] = { "", "page table", "page directory", "PDPT", "PML4", "PML5" };

static inline unsigned level_shift(int level)
{
        return HVP_PAGE_SHIFT + 9 * (unsigned)(level - 1);
}

int hvp_paging_mode(const struct hvp_vcpu_regs *regs, enum hvp_paging_mode *ret_mode)
{
        bool lma = regs->efer & EFER_LMA, lme = regs->efer & EFER_LME;

        if (!(regs->cr0 & CR0_PG))
                return hvp_fail(-ENOTSUP, "paging is off (CR0.PG clear, CR0=0x%llx)",
                                (unsigned long long)regs->cr0);
        if (!(regs->cr0 & CR0_PE))
                return hvp_fail(-ENOTSUP, "inconsistent registers: CR0.PG set without CR0.PE (CR0=0x%llx)",
                                (unsigned long long)regs->cr0);
        if (!(regs->cr4 & CR4_PAE))
                return hvp_fail(-ENOTSUP, "32-bit paging (CR4.PAE clear, CR4=0x%llx) is not handled",
                                (unsigned long long)regs->cr4);
        if (lma && !lme)
                return hvp_fail(-ENOTSUP, "inconsistent registers: EFER.LMA set without EFER.LME (EFER=0x%llx)",
                                (unsigned long long)regs->efer);
        /* The CPU sets LMA whenever LME and PG are set: a source that drops LMA still means long mode. */
        if (!lma && !lme)
                return hvp_fail(-ENOTSUP, "PAE paging outside long mode (EFER.LMA and LME clear, EFER=0x%llx) is not handled",
                                (unsigned long long)regs->efer);
        *ret_mode = regs->cr4 & CR4_LA57 ? HVP_PAGING_5LEVEL : HVP_PAGING_4LEVEL;
        return 0;
}

static void tlb_init(struct hvp_mmu *mmu)
{
        static const unsigned sizes[3] = { TLB_4K_ENTRIES, TLB_2M_ENTRIES, TLB_1G_ENTRIES };
        struct tlb_entry *p = mmu->storage;

        for (int i = 0; i < 3; i++) {
                mmu->tlb[i] = (struct tlb_array){ p, sizes[i] - 1, level_shift(i + 1) };
                p += sizes[i];
        }
        mmu->gen = 1;   /* storage is zeroed: generation 0 marks every entry invalid */
}

static void set_phys_width(struct hvp_mmu *mmu, unsigned bits)
{
        mmu->maxphyaddr = bits;
        mmu->addr_mask = BITS(bits - 1, HVP_PAGE_SHIFT);
        mmu->rsvd_phys = bits < MAXPHYADDR_MAX ? BITS(MAXPHYADDR_MAX - 1, bits) : 0;
}

int hvp_mmu_new(struct hvp_guest *g, uint64_t cr3, enum hvp_paging_mode mode, bool nxe,
                struct hvp_mmu **ret_mmu)
{
        struct hvp_mmu *mmu;

        if (!g)
                return hvp_fail(-EINVAL, "no guest");
        if (mode != HVP_PAGING_4LEVEL && mode != HVP_PAGING_5LEVEL)
                return hvp_fail(-EINVAL, "paging mode %d is neither 4-level nor 5-level", (int)mode);
        if (cr3 & BITS(60, MAXPHYADDR_MAX))
                return hvp_fail(-EINVAL, "CR3 0x%llx has reserved bits 0x%llx set", (unsigned long long)cr3,
                                (unsigned long long)(cr3 & BITS(60, MAXPHYADDR_MAX)));
        mmu = calloc(1, sizeof(*mmu));
        if (!mmu)
                return hvp_fail(-ENOMEM, "out of memory for an address space");
        mmu->g = g;
        mmu->root = cr3 & ~CR3_IGNORED;
        mmu->mode = mode;
        mmu->nxe = nxe;
        set_phys_width(mmu, MAXPHYADDR_MAX);
        tlb_init(mmu);
        *ret_mmu = mmu;
        return 0;
}

int hvp_mmu_new_from_vcpu(struct hvp_guest *g, unsigned vcpu, struct hvp_mmu **ret_mmu)
{
        struct hvp_vcpu_regs regs;
        enum hvp_paging_mode mode;
        int r;

        r = hvp_guest_vcpu_regs(g, vcpu, &regs);
        if (r < 0)
                return r;
        r = hvp_paging_mode(&regs, &mode);
        if (r < 0)
                return hvp_fail_context(r, "vCPU %u", vcpu);
        return hvp_mmu_new(g, regs.cr3, mode, regs.efer & EFER_NXE, ret_mmu);
}

void hvp_mmu_free(struct hvp_mmu *mmu)
{
        free(mmu);
}

enum hvp_paging_mode hvp_mmu_mode(const struct hvp_mmu *mmu)
{
        return mmu->mode;
}

uint64_t hvp_mmu_root(const struct hvp_mmu *mmu)
{
        return mmu->root;
}

bool hvp_mmu_nxe(const struct hvp_mmu *mmu)
{
        return mmu->nxe;
}

struct hvp_guest *hvp_mmu_guest(const struct hvp_mmu *mmu)
{
        return mmu->g;
}

int hvp_mmu_set_maxphyaddr(struct hvp_mmu *mmu, unsigned bits)
{
        if (bits < MAXPHYADDR_MIN || bits > MAXPHYADDR_MAX)
                return hvp_fail(-EINVAL, "physical address width %u outside %u..%u", bits,
                                MAXPHYADDR_MIN, MAXPHYADDR_MAX);
        if (mmu->root >> bits)
                return hvp_fail(-EINVAL, "root 0x%llx is beyond a %u-bit physical address width",
                                (unsigned long long)mmu->root, bits);
        set_phys_width(mmu, bits);
        hvp_mmu_flush(mmu);
        return 0;
}

void hvp_mmu_flush(struct hvp_mmu *mmu)
{
        mmu->gen++;
}

void hvp_mmu_tlb_stats(const struct hvp_mmu *mmu, uint64_t *ret_hits, uint64_t *ret_misses)
{
        if (ret_hits)
                *ret_hits = mmu->hits;
        if (ret_misses)
                *ret_misses = mmu->misses;
}

/* The RAM range holding gpa, or NULL. Ranges are sorted and disjoint. */
static const struct hvp_ram_range *ram_range_of(const struct hvp_mmu *mmu, uint64_t gpa)
{
        const struct hvp_ram_range *ranges;
        size_t lo = 0, hi = hvp_guest_ram_ranges(mmu->g, &ranges);

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (gpa < ranges[mid].gpa)
                        hi = mid;
                else if (gpa - ranges[mid].gpa >= ranges[mid].size)
                        lo = mid + 1;
                else
                        return &ranges[mid];
        }
        return NULL;
}

static bool phys_in_ram(const struct hvp_mmu *mmu, uint64_t gpa, uint64_t len)
{
        const struct hvp_ram_range *c = ram_range_of(mmu, gpa);

        return c && hvp_range_within(gpa, len, c->gpa, c->size);
}

static bool canonical(const struct hvp_mmu *mmu, uint64_t va)
{
        unsigned bits = mmu->mode == HVP_PAGING_5LEVEL ? 57 : 48;

        return (uint64_t)((int64_t)(va << (64 - bits)) >> (64 - bits)) == va;
}

static uint64_t hvp_tlb_hash(uint64_t tag)
{
        /* Fold in higher bits so that kernel-text and direct-map aliases do not collide. */
        return tag ^ (tag >> 10) ^ (tag >> 20);
}

static struct tlb_entry *tlb_slot(struct tlb_array *t, uint64_t va)
{
        uint64_t tag = va >> t->shift;

        return &t->e[hvp_tlb_hash(tag) & t->mask];
}

static const struct tlb_entry *tlb_lookup(struct hvp_mmu *mmu, uint64_t va)
{
        for (int i = 0; i < 3; i++) {
                const struct tlb_entry *e = tlb_slot(&mmu->tlb[i], va);

                if (e->gen == mmu->gen && e->tag == va >> mmu->tlb[i].shift)
                        return e;
        }
        return NULL;
}

static void tlb_insert(struct hvp_mmu *mmu, uint64_t va, const struct hvp_translation *tr)
{
        struct tlb_array *t = &mmu->tlb[tr->level - 1];
        struct tlb_entry *e = tlb_slot(t, va);
        uint64_t base = tr->pa & ~(tr->page_size - 1);

        *e = (struct tlb_entry){
                .tag = va >> t->shift,
                .gen = mmu->gen,
                .pa = base,
                .flags = tr->flags,
                .level = (uint8_t)tr->level,
                .whole_in_ram = phys_in_ram(mmu, base, tr->page_size),
        };
}

static void fill_failure(struct hvp_translation *ret, uint64_t va, enum hvp_walk_error error, int level)
{
        if (ret)
                *ret = (struct hvp_translation){ .va = va, .error = error, .error_level = level };
}

/* Reserved bits of a present entry at level, given its PS bit. */
static uint64_t reserved_bits(const struct hvp_mmu *mmu, int level, uint64_t e)
{
        uint64_t rsvd = mmu->rsvd_phys | (mmu->nxe ? 0 : HVP_PTE_NX);

        switch (level) {
        case 5:
        case 4:
                return rsvd | HVP_PTE_PS;
        case 3:         /* 1 GiB page: bit 12 is PAT, 13..29 must be zero */
                return e & HVP_PTE_PS ? rsvd | BITS(29, 13) : rsvd;
        case 2:         /* 2 MiB page: bit 12 is PAT, 13..20 must be zero */
                return e & HVP_PTE_PS ? rsvd | BITS(20, 13) : rsvd;
        default:
                return rsvd;
        }
}

static int read_entry(struct hvp_mmu *mmu, uint64_t va, int level, uint64_t table, unsigned idx,
                      uint64_t *ret_entry, struct hvp_translation *ret)
{
        struct table_copy *tc = &mmu->tables[level - 1];
        uint8_t raw[8];
        int r;

        if (mmu->bulk && tc->bulk == mmu->bulk && tc->pa == table) {
                /* the second walk through this table: copy it whole (if that fails, read entries alone) */
                if (!tc->tried) {
                        tc->tried = true;
                        tc->whole = hvp_guest_read_phys(mmu->g, table, tc->page, sizeof(tc->page)) == 0;
                }
                if (tc->whole) {
                        *ret_entry = hvp_le64(tc->page + idx * 8u);
                        return 0;
                }
        } else if (mmu->bulk) {
                tc->pa = table;
                tc->bulk = mmu->bulk;
                tc->tried = tc->whole = false;
        }
        r = hvp_guest_read_phys(mmu->g, table + idx * 8u, raw, sizeof(raw));
        if (r == -EFAULT) {
                fill_failure(ret, va, HVP_WALK_OUTSIDE_RAM, level);
                return hvp_fail(-ERANGE, "0x%llx: %s at 0x%llx (for %s[%u]) is outside guest RAM (level %d)",
                                (unsigned long long)va, table_names[level], (unsigned long long)table,
                                entry_names[level], idx, level);
        }
        if (r < 0) {
                fill_failure(ret, va, HVP_WALK_READ_FAILED, level);
                return hvp_fail_context(r, "0x%llx: reading %s[%u] at 0x%llx (level %d)",
                                        (unsigned long long)va, entry_names[level], idx,
                                        (unsigned long long)(table + idx * 8u), level);
        }
        *ret_entry = hvp_le64(raw);
        return 0;
}

/* A full walk from the root. ret is always filled on success. */
static int walk(struct hvp_mmu *mmu, uint64_t va, struct hvp_translation *ret)
{
        uint32_t flags = HVP_PF_PRESENT | HVP_PF_WRITE | HVP_PF_USER;
        uint64_t table = mmu->root, e = 0, rsvd, size, frame;
        int level;
        int r;

        for (level = (int)mmu->mode;; level--) {
                unsigned idx = (unsigned)(va >> level_shift(level)) & 511;

                r = read_entry(mmu, va, level, table, idx, &e, ret);
                if (r < 0)
                        return r;
                if (!(e & HVP_PTE_P)) {
                        fill_failure(ret, va, HVP_WALK_NOT_PRESENT, level);
                        return hvp_fail(-EFAULT, "0x%llx: %s[%u] not present (level %d)",
                                        (unsigned long long)va, entry_names[level], idx, level);
                }
                rsvd = e & reserved_bits(mmu, level, e);
                if (rsvd) {
                        fill_failure(ret, va, HVP_WALK_RESERVED_BITS, level);
                        return hvp_fail(-EINVAL, "0x%llx: %s[%u] = 0x%016llx has reserved bits 0x%llx set (level %d)",
                                        (unsigned long long)va, entry_names[level], idx,
                                        (unsigned long long)e, (unsigned long long)rsvd, level);
                }
                if (!(e & HVP_PTE_RW))
                        flags &= ~HVP_PF_WRITE;
                if (!(e & HVP_PTE_US))
                        flags &= ~HVP_PF_USER;
                if (mmu->nxe && (e & HVP_PTE_NX))
                        flags |= HVP_PF_NX;
                if (level == 1 || (level <= 3 && (e & HVP_PTE_PS)))
                        break;
                table = e & mmu->addr_mask;
        }
        if (e & HVP_PTE_G)
                flags |= HVP_PF_GLOBAL;
        size = 1ull << level_shift(level);
        frame = (e & mmu->addr_mask & ~(size - 1)) | (va & (size - 1) & ~(HVP_PAGE_SIZE - 1));
        if (!phys_in_ram(mmu, frame, HVP_PAGE_SIZE)) {
                fill_failure(ret, va, HVP_WALK_OUTSIDE_RAM, level);
                return hvp_fail(-ERANGE, "0x%llx: page frame 0x%llx (from %s[%u]) is outside guest RAM (level %d)",
                                (unsigned long long)va, (unsigned long long)frame, entry_names[level],
                                (unsigned)(va >> level_shift(level)) & 511, level);
        }
        *ret = (struct hvp_translation){
                .va = va,
                .pa = frame | (va & (HVP_PAGE_SIZE - 1)),
                .page_size = size,
                .flags = flags,
                .level = level,
        };
        return 0;
}

int hvp_mmu_entry(struct hvp_mmu *mmu, uint64_t va, int level, uint64_t *ret_entry_gpa, uint64_t *ret_entry)
{
        struct hvp_translation scratch;
        uint64_t table = mmu->root, e = 0;
        int r;

        if (level < 1 || level > (int)mmu->mode)
                return hvp_fail(-EINVAL, "no level %d in %d-level paging", level, (int)mmu->mode);
        if (!canonical(mmu, va))
                return hvp_fail(-EINVAL, "0x%llx is not canonical", (unsigned long long)va);
        for (int l = (int)mmu->mode;; l--) {
                unsigned idx = (unsigned)(va >> level_shift(l)) & 511;

                r = read_entry(mmu, va, l, table, idx, &e, &scratch);
                if (r < 0)
                        return r;
                if (l == level) {
                        *ret_entry_gpa = table + idx * 8u;
                        *ret_entry = e;
                        return 0;
                }
                if (!(e & HVP_PTE_P))
                        return hvp_fail(-EFAULT, "0x%llx: %s[%u] not present (level %d)", (unsigned long long)va,
                                        entry_names[l], idx, l);
                if ((l <= 3 && (e & HVP_PTE_PS)) || (e & reserved_bits(mmu, l, e)))
                        return hvp_fail(-EINVAL, "0x%llx: %s[%u] maps a large page or has reserved bits (level %d)",
                                        (unsigned long long)va, entry_names[l], idx, l);
                table = e & mmu->addr_mask;
        }
}

static int translate_hit(struct hvp_mmu *mmu, uint64_t va, const struct tlb_entry *e,
                         struct hvp_translation *ret)
{
        uint64_t size = 1ull << level_shift(e->level);
        uint64_t pa = e->pa | (va & (size - 1));

        if (!e->whole_in_ram && !phys_in_ram(mmu, pa & ~(HVP_PAGE_SIZE - 1), HVP_PAGE_SIZE)) {
                fill_failure(ret, va, HVP_WALK_OUTSIDE_RAM, e->level);
                return hvp_fail(-ERANGE, "0x%llx: page frame 0x%llx (from %s[%u]) is outside guest RAM (level %d)",
                                (unsigned long long)va, (unsigned long long)(pa & ~(HVP_PAGE_SIZE - 1)),
                                entry_names[e->level], (unsigned)(va >> level_shift(e->level)) & 511,
                                e->level);
        }
        if (ret)
                *ret = (struct hvp_translation){
                        .va = va,
                        .pa = pa,
                        .page_size = size,
                        .flags = e->flags,
                        .level = e->level,
                };
        return 0;
}

int hvp_mmu_translate(struct hvp_mmu *mmu, uint64_t va, struct hvp_translation *ret)
{
        struct hvp_translation tr;
        const struct tlb_entry *e;
        int r;

        if (!canonical(mmu, va)) {
                fill_failure(ret, va, HVP_WALK_NON_CANONICAL, 0);
                return hvp_fail(-EINVAL, "0x%llx: not canonical for %d-level paging",
                                (unsigned long long)va, (int)mmu->mode);
        }
        e = tlb_lookup(mmu, va);
        if (e) {
                mmu->hits++;
                return translate_hit(mmu, va, e, ret);
        }
        mmu->misses++;
        r = walk(mmu, va, ret ? ret : &tr);
        if (r < 0)
                return r;
        tlb_insert(mmu, va, ret ? ret : &tr);
        return 0;
}

/* A physically contiguous piece of a virtual range, inside one RAM range. */
struct run {
        uint64_t pa;
        size_t len;
};

struct runs {
        struct run *v;
        size_t n, cap;
        const struct hvp_ram_range *last_range;
        struct run inline_v[16];
};

static void runs_init(struct runs *rs)
{
        rs->v = rs->inline_v;
        rs->n = 0;
        rs->cap = HVP_ARRAY_SIZE(rs->inline_v);
        rs->last_range = NULL;
}

static void runs_free(struct runs *rs)
{
        if (rs->v != rs->inline_v)
                free(rs->v);
        runs_init(rs);
}

/* Append [pa, pa+len), which lies inside RAM range c. */
static int runs_add(struct runs *rs, const struct hvp_ram_range *c, uint64_t pa, size_t len)
{
        struct run *v;
        size_t cap;

        if (rs->n > 0 && rs->last_range == c) {
                struct run *last = &rs->v[rs->n - 1];

                /* Never merge across RAM ranges: a backend access must stay inside one. */
                if (last->pa + last->len == pa) {
                        last->len += len;
                        return 0;
                }
        }
        if (rs->n == rs->cap) {
                if (rs->cap > SIZE_MAX / 2 / sizeof(*v))
                        return hvp_fail(-E2BIG, "too many physical runs");
                cap = rs->cap * 2;
                v = rs->v == rs->inline_v ? malloc(cap * sizeof(*v)) : realloc(rs->v, cap * sizeof(*v));
                if (!v)
                        return hvp_fail(-ENOMEM, "out of memory for %zu physical runs", cap);
                if (rs->v == rs->inline_v)
                        memcpy(v, rs->inline_v, sizeof(rs->inline_v));
                rs->v = v;
                rs->cap = cap;
        }
        rs->v[rs->n++] = (struct run){ pa, len };
        rs->last_range = c;
        return 0;
}

/*
 * Translate every page of [va, va+len) into physical runs, each inside one RAM range.
 * Fails, touching nothing, if any page does not translate or lies outside RAM.
 */
static int collect_runs(struct hvp_mmu *mmu, uint64_t va, size_t len, struct runs *rs)
{
        uint64_t pos = va;
        size_t left = len;
        int r;

        runs_init(rs);
        if (len > 0 && va + (len - 1) < va)
                return hvp_fail(-EINVAL, "0x%llx+0x%zx wraps around the address space",
                                (unsigned long long)va, len);
        mmu->bulk = ++mmu->bulk_calls;
        while (left > 0) {
                struct hvp_translation tr;
                const struct hvp_ram_range *c;
                uint64_t chunk;

                r = hvp_mmu_translate(mmu, pos, &tr);
                if (r < 0)
                        goto fail;
                chunk = HVP_MIN((uint64_t)left, tr.page_size - (pos & (tr.page_size - 1)));
                /*
                 * translate checked that the whole 4 KiB frame of pos is in RAM. A large page may
                 * leave RAM further on: stop at the last whole frame of this RAM range, and let the
                 * next translation judge the frame after it, as it would for 4 KiB pages.
                 */
                c = ram_range_of(mmu, tr.pa);
                if (!c || ((c->gpa + c->size) & ~(HVP_PAGE_SIZE - 1)) <= tr.pa) {
                        r = hvp_fail(-ERANGE, "0x%llx: guest-physical 0x%llx is outside guest RAM",
                                     (unsigned long long)pos, (unsigned long long)tr.pa);
                        goto fail;
                }
                chunk = HVP_MIN(chunk, ((c->gpa + c->size) & ~(HVP_PAGE_SIZE - 1)) - tr.pa);
                r = runs_add(rs, c, tr.pa, (size_t)chunk);
                if (r < 0)
                        goto fail;
                pos += chunk;
                left -= (size_t)chunk;
        }
        mmu->bulk = 0;
        return 0;
fail:
        mmu->bulk = 0;
        runs_free(rs);
        return r;
}

/* Bounded batches: a backend turns one batch into one scatter call (IOV_MAX is 1024). */
#define READ_BATCH 256

int hvp_mmu_read(struct hvp_mmu *mmu, uint64_t va, void *buf, size_t len)
{
        struct hvp_phys_iov iov[READ_BATCH];
        struct runs rs;
        uint8_t *p = buf;
        size_t i, n;
        int r;

        r = collect_runs(mmu, va, len, &rs);
        if (r < 0)
                return hvp_fail_context(r, "reading 0x%llx+0x%zx", (unsigned long long)va, len);
        for (i = 0; i < rs.n; i += n) {
                n = HVP_MIN(rs.n - i, (size_t)READ_BATCH);
                for (size_t j = 0; j < n; j++) {
                        iov[j] = (struct hvp_phys_iov){ rs.v[i + j].pa, p, rs.v[i + j].len };
                        p += rs.v[i + j].len;
                }
                r = n == 1 ? hvp_guest_read_phys(mmu->g, iov[0].gpa, iov[0].buf, iov[0].len)
                           : hvp_guest_read_phys_v(mmu->g, iov, n);
                if (r < 0) {
                        r = hvp_fail_context(r, "reading 0x%llx+0x%zx", (unsigned long long)va, len);
                        break;
                }
        }
        runs_free(&rs);
        return r;
}

int hvp_mmu_write(struct hvp_mmu *mmu, uint64_t va, const void *buf, size_t len)
{
        const uint8_t *p = buf;
        struct runs rs;
        int r;

        r = collect_runs(mmu, va, len, &rs);
        if (r < 0)
                return hvp_fail_context(r, "writing 0x%llx+0x%zx", (unsigned long long)va, len);
        for (size_t i = 0; i < rs.n; i++) {
                r = hvp_guest_write_phys(mmu->g, rs.v[i].pa, p, rs.v[i].len);
                if (r < 0) {
                        r = hvp_fail_context(r, "writing 0x%llx+0x%zx", (unsigned long long)va, len);
                        break;
                }
                p += rs.v[i].len;
        }
        runs_free(&rs);
        hvp_mmu_flush(mmu);
        return r;
}

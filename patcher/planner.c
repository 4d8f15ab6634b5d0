/*
 * The planner: everything that can be done while the guest runs. It turns a
 * bundle into a plain list of writes; the pause window (txn.c) only re-checks and
 * writes them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hvpatch/apply.h>
#include <hvpatch/area.h>
#include <hvpatch/patch.h>

#include "common/error.h"
#include "common/util.h"
#include "vmi/x86.h"
#include "patcher/retire.h"
#include "patcher/manifest.h"

#define FN_READ_MAX (64u << 10)         /* bytes of a function read to check a site inside it */
#define ERASE_MAX_WRITES 1024           /* erasures of an earlier boot's device code per window */

struct planner {
        struct hvp_mmu *mmu;
        const struct hvp_kernel *k;
        const struct hvp_manifest *m;   /* its pins choose among symbols defined more than once */
        const struct hvp_record *rec;
        const struct hvp_record_entry *replaced;        /* the applied patch of the same series */
        struct hvp_plan *pure;
        enum hvp_area_choice choice;
        struct hvp_area slack, device;
        bool have_slack, have_device;
        bool map_device;                /* the txn maps the device area first */
        /* Area ranges taken: applied patches' code and retired code in force (apply.h). */
        struct hvp_area_use *used;
        size_t nr_used, cap_used;
        struct hvp_plan *erase;         /* device bytes an earlier boot left: back to filler */
        bool ret_thunk_known;           /* ret_thunk holds what __x86_return_thunk resolves to */
        uint64_t ret_thunk;
};

/* Note [start, start+len) as taken. Grows as needed: no count a record can hold is too many. */
static int use_add(struct planner *pl, uint64_t start, uint64_t len)
{
        if (pl->nr_used == pl->cap_used) {
                size_t cap = pl->cap_used ? 2 * pl->cap_used : 64;
                struct hvp_area_use *u = reallocarray(pl->used, cap, sizeof(*u));

                if (!u)
                        return hvp_fail(-ENOMEM, "no memory for %zu patch-area ranges", cap);
                pl->used = u;
                pl->cap_used = cap;
        }
        pl->used[pl->nr_used++] = (struct hvp_area_use){ start, len };
        return 0;
}

/* Every area range the new code must not touch (patcher/retire.h). */
static int collect_used(struct planner *pl)
{
        free(pl->used);
        pl->used = NULL;
        pl->cap_used = 0;
        return hvp_area_uses_collect(hvp_mmu_guest(pl->mmu), pl->k, pl->rec, &pl->used, &pl->nr_used,
                                     &pl->cap_used);
}

/*
 * The original kernel bytes of [va, va+len): live memory, with the writes of the
 * patch being replaced undone. A write of any other applied patch there is a conflict.
 */
static int original_bytes(struct planner *pl, uint64_t va, uint8_t *out, size_t len)
{
        int r = hvp_mmu_read(pl->mmu, va, out, len);

        if (r < 0)
                return r;
        for (size_t e = 0; e < pl->rec->nr_entries; e++) {
                const struct hvp_plan *p = pl->rec->entries[e].plan;
                bool mine = pl->replaced && &pl->rec->entries[e] == pl->replaced;

                for (size_t i = 0; i < p->nr_writes; i++) {
                        const struct hvp_write *w = &p->writes[i];
                        uint64_t lo = HVP_MAX(va, w->va), hi = HVP_MIN(va + len, w->va + w->len);

                        if (lo >= hi)
                                continue;
                        if (!mine)
                                return hvp_fail(-EEXIST, "0x%llx is already patched by %s",
                                                (unsigned long long)lo, p->patch_id);
                        memcpy(out + (lo - va), w->old + (lo - w->va), hi - lo);
                }
        }
        return 0;
}

/*
 * Add writes for [va, va+len), split at page boundaries, each with its guest-physical
 * address: through the page tables, or for area bytes (area not NULL) at the same
 * offset into the physically contiguous area, which may not be mapped until the window.
 */
static int add_range(struct planner *pl, const struct hvp_area *area, uint64_t va, const uint8_t *old,
                     const uint8_t *new, size_t len, bool check_rip, unsigned site)
{
        while (len > 0) {
                size_t n = HVP_MIN(len, HVP_PAGE_SIZE - (va & (HVP_PAGE_SIZE - 1)));
                struct hvp_translation tr = { .pa = area ? area->gpa + (va - area->start) : 0 };
                int r;

                r = area ? 0 : hvp_mmu_translate(pl->mmu, va, &tr);
                if (r == 0)
                        r = hvp_plan_add_write(pl->pure, va, tr.pa, old, new, n, check_rip, area != NULL, site);
                if (r < 0)
                        return r;
                va += n;
                old += n;
                new += n;
                len -= n;
        }
        return 0;
}

/* Imports of the patch code: a name defined more than once is refused unless pinned. */
/*
 * The return thunk the guest kernel runs with. Patch code built with
 * -mfunction-return=thunk-extern returns with `jmp __x86_return_thunk`, which the
 * kernel never lets its own code run: at boot it rewrites each such site
 * (apply_returns) to `jmp x86_return_thunk` (the thunk its retbleed/SRSO mitigation
 * chose) or, with no return thunk in use, to `ret` and int3 padding. On 6.12 and 7.x
 * __x86_return_thunk itself says "Unpatched return thunk in use" and taints the
 * kernel (TAINT_WARN). So patch code gets the same treatment: the value of the
 * kernel's x86_return_thunk when it is another thunk, else 0, which tells the
 * relocator to write `ret; int3; int3; int3; int3` (HVP_RELOC_RET_INLINE). A kernel
 * without x86_return_thunk (before the SRSO fixes) keeps __x86_return_thunk, a plain
 * ret there.
 */
static int read_return_thunk(const struct planner *pl, uint64_t *ret_addr)
{
        const struct hvp_symbol *var = hvp_symtab_lookup(pl->k->symtab, "x86_return_thunk");
        const struct hvp_symbol *thunk = hvp_symtab_lookup(pl->k->symtab, "__x86_return_thunk");
        uint64_t v;
        int r;

        if (!thunk)
                return hvp_fail(-ENOENT, "undefined symbol __x86_return_thunk not in the guest kernel");
        if (!var) {
                *ret_addr = thunk->addr;
                return 0;
        }
        r = hvp_mmu_read(pl->mmu, var->addr, &v, sizeof(v));
        if (r < 0)
                return hvp_fail_context(r, "reading the kernel's x86_return_thunk");
        if (v == thunk->addr || v == 0) {
                *ret_addr = HVP_RELOC_RET_INLINE;
                return 0;
        }
        if (v < pl->k->text_start || v >= pl->k->text_end)
                return hvp_fail(-EINVAL, "the kernel's x86_return_thunk is 0x%llx, outside its text",
                                (unsigned long long)v);
        *ret_addr = v;
        return 0;
}

/* Read once per plan: every return of every redirect resolves to it. */
static int resolve_return_thunk(struct planner *pl, uint64_t *ret_addr)
{
        int r;

        if (!pl->ret_thunk_known) {
                r = read_return_thunk(pl, &pl->ret_thunk);
                if (r < 0)
                        return r;
                pl->ret_thunk_known = true;
        }
        *ret_addr = pl->ret_thunk;
        return 0;
}

static int resolve_symbol(void *ctx, const char *name, uint64_t *ret_addr)
{
        struct planner *pl = ctx;
        int r;

        if (strcmp(name, "__x86_return_thunk") == 0 && pl->mmu)
                return resolve_return_thunk(pl, ret_addr);
        r = hvp_manifest_resolve(pl->m, pl->k->symtab, name, ret_addr);

        if (r == -ENOENT && !hvp_symtab_lookup(pl->k->symtab, name))
                return hvp_fail(-ENOENT, "undefined symbol %s not in the guest kernel", name);
        return r;
}

/* Set the function guard on the writes [from, nr_writes) of the pure plan when the site asks for it. */
static int guard_function(struct planner *pl, const struct hvp_site *s, unsigned idx, uint64_t addr, size_t from)
{
        uint64_t start = 0, len = 0;
        int r;

        if (s->consistency != HVP_CONSISTENCY_FUNCTION)
                return 0;
        r = manifest_function_bounds(pl->k->symtab, addr, &start, &len);
        if (r < 0)
                return hvp_fail_context(r, "site %u (%s)", idx, s->symbol);
        for (size_t i = from; i < pl->pure->nr_writes; i++) {
                struct hvp_write *w = &pl->pure->writes[i];

                if (w->va < start || w->va + w->len > start + len)
                        return hvp_fail(-ERANGE, "site %u (%s): its bytes at 0x%llx leave the function "
                                        "0x%llx..0x%llx", idx, s->symbol, (unsigned long long)w->va,
                                        (unsigned long long)start, (unsigned long long)(start + len));
                w->guard_start = start;
                w->guard_len = len;
        }
        return 0;
}

static int plan_replace(struct planner *pl, const struct hvp_site *s, unsigned idx)
{
        struct hvp_symbol site_sym = { .name = s->symbol }, *sym = &site_sym;
        _cleanup_free_ uint8_t *fn = NULL;
        struct hvp_insn *insns = NULL;
        size_t fn_len, n_insns = 0, n0;
        int r;

        r = hvp_manifest_resolve(pl->m, pl->k->symtab, s->symbol, &site_sym.addr);
        if (r < 0)
                return hvp_fail_context(r, "site %u", idx);
        if (s->offset > FN_READ_MAX - s->len)
                return hvp_fail(-E2BIG, "site %u: offset 0x%llx into %s is too far", idx,
                                (unsigned long long)s->offset, s->symbol);
        fn_len = s->offset + s->len;
        fn = malloc(fn_len);
        if (!fn)
                return -ENOMEM;
        r = original_bytes(pl, sym->addr, fn, fn_len);
        if (r < 0)
                return hvp_fail_context(r, "site %u (%s+0x%llx)", idx, s->symbol, (unsigned long long)s->offset);
        if (memcmp(fn + s->offset, s->expected, s->len) != 0) {
                char want[2 * HVP_REPLACE_MAX_LEN + 1], got[2 * HVP_REPLACE_MAX_LEN + 1];

                hvp_hex_encode(s->expected, s->len, want);
                hvp_hex_encode(fn + s->offset, s->len, got);
                return hvp_fail(-ESTALE, "site %u (%s+0x%llx) does not match: expected %s, found %s", idx,
                                s->symbol, (unsigned long long)s->offset, want, got);
        }
        /* Decoding from the function's entry: the site starts and ends on instruction boundaries. */
        r = hvp_insn_check_site(fn, fn_len, sym->addr, s->offset, s->len);
        if (r < 0)
                return hvp_fail_context(r, "site %u (%s+0x%llx)", idx, s->symbol, (unsigned long long)s->offset);
        r = hvp_disasm(s->expected, s->len, sym->addr + s->offset, HVP_REPLACE_MAX_LEN, &insns, &n_insns);
        free(insns);
        if (r < 0)
                return r;
        n0 = pl->pure->nr_writes;
        r = add_range(pl, NULL, sym->addr + s->offset, s->expected, s->new_bytes, s->len, n_insns > 1, idx);
        return r < 0 ? r : guard_function(pl, s, idx, sym->addr, n0);
}

/*
 * Code retired in an earlier boot that the device area (host memory) still holds: no
 * task of this boot can reach it, so this window erases it (up to ERASE_MAX_WRITES of
 * it: the rest goes in later windows), and until then it is taken.
 */
static int plan_erase_stale(struct planner *pl)
{
        struct hvp_guest *g = hvp_mmu_guest(pl->mmu);
        const struct hvp_area *a = &pl->device;
        int r = 0;

        if (a->append_only)
                return 0;       /* never rewritten (TCG may hold its translation): placement steps over it */
        for (size_t i = 0; i < pl->rec->nr_retired && r == 0; i++) {
                const struct hvp_retired *rt = &pl->rec->retired[i];
                uint64_t va = a->start + (rt->gpa - a->gpa);
                _cleanup_free_ uint8_t *filler = NULL;

                if (!rt->released_by[0] || rt->gpa < a->gpa || rt->gpa - a->gpa >= a->len ||
                    rt->len > a->len - (rt->gpa - a->gpa) || hvp_retired_state(g, rt) != HVP_SITE_NEW)
                        continue;
                filler = malloc(rt->len);
                if (!filler)
                        return -ENOMEM;
                memset(filler, a->filler, rt->len);
                r = use_add(pl, va, rt->len);
                if (r == 0 && pl->erase && pl->erase->nr_writes >= ERASE_MAX_WRITES)
                        continue;
                if (r == 0 && !pl->erase && !(pl->erase = hvp_plan_new()))
                        r = -ENOMEM;
                for (uint32_t off = 0; r == 0 && off < rt->len;) {
                        size_t n = HVP_MIN(rt->len - off, HVP_PAGE_SIZE - ((va + off) & (HVP_PAGE_SIZE - 1)));

                        r = hvp_plan_add_write(pl->erase, va + off, rt->gpa + off, rt->code + off, filler + off, n,
                                               false, true, 0);
                        off += (uint32_t)n;
                }
                if (r == 0)
                        hvp_info("erasing %s code at 0x%llx+%u in the device area, retired in an earlier boot",
                                 rt->patch_id, (unsigned long long)va, rt->len);
        }
        return r;
}

static int area_get(struct planner *pl, bool device, const struct hvp_area **ret)
{
        int r;

        if (device && !pl->have_device) {
                r = hvp_area_find_device(pl->mmu, pl->k, &pl->device);
                if (r < 0)
                        return r;
                pl->have_device = true;
                r = plan_erase_stale(pl);
                if (r < 0)
                        return r;
        } else if (!device && !pl->have_slack) {
                r = hvp_area_find_slack(pl->mmu, pl->k, &pl->slack);
                if (r < 0)
                        return r;
                pl->have_slack = true;
        }
        *ret = device ? &pl->device : &pl->slack;
        return 0;
}

/* Room for size bytes: the slack when it fits (auto), else the device area. */
static int area_reserve(struct planner *pl, size_t size, size_t align, const struct hvp_area **ret_area,
                        uint64_t *ret_addr)
{
        struct hvp_guest *g = hvp_mmu_guest(pl->mmu);
        const struct hvp_area *a = NULL;
        int r = -ENOSPC;

        if (pl->choice != HVP_AREA_DEVICE) {
                r = area_get(pl, false, &a);
                if (r == 0)
                        r = hvp_area_alloc(g, a, pl->used, pl->nr_used, size, align, ret_addr);
                if (r != -ENOSPC || pl->choice == HVP_AREA_SLACK)
                        goto out;
                hvp_info("the slack area has no room for %zu bytes: trying the patch-area device", size);
        }
        r = area_get(pl, true, &a);
        if (r == 0)
                r = hvp_area_alloc(g, a, pl->used, pl->nr_used, size, align, ret_addr);
        if (r == 0 && a->map_needed)
                pl->map_device = true;
out:
        if (r == 0)
                r = use_add(pl, *ret_addr, size);
        if (r < 0)
                return r;
        *ret_area = a;
        return 0;
}

static int plan_redirect(struct planner *pl, const struct hvp_site *s, unsigned idx)
{
        struct hvp_symbol site_sym = { .name = s->symbol }, *sym = &site_sym;
        const struct hvp_symbol *fentry = hvp_symtab_lookup(pl->k->symtab, "__fentry__");
        _cleanup_free_ uint8_t *code = NULL, *filler = NULL;
        const struct hvp_area *area = NULL;
        struct hvp_entry_site entry;
        uint8_t head[16], jmp[5];
        uint64_t target, new_fn;
        size_t code_len, n0;
        int r;

        r = hvp_manifest_resolve(pl->m, pl->k->symtab, s->symbol, &site_sym.addr);
        if (r < 0)
                return hvp_fail_context(r, "site %u", idx);
        r = original_bytes(pl, sym->addr, head, sizeof(head));
        if (r < 0)
                return hvp_fail_context(r, "site %u (%s)", idx, s->symbol);
        r = hvp_entry_site_find(head, sizeof(head), sym->addr, fentry ? fentry->addr : 0, &entry);
        if (r < 0)
                return hvp_fail_context(r, "site %u (%s)", idx, s->symbol);

        r = area_reserve(pl, s->code_size, s->code_align, &area, &target);
        if (r < 0)
                return hvp_fail_context(r, "site %u (%s)", idx, s->symbol);
        r = hvp_reloc_object(s->payload->data, s->payload->size, s->function, target, resolve_symbol,
                             pl, &code, &code_len, &new_fn);
        if (r < 0)
                return hvp_fail_context(r, "site %u (%s -> %s)", idx, s->symbol, s->function);
        filler = malloc(code_len);
        if (!filler)
                return -ENOMEM;
        memset(filler, area->filler, code_len);
        r = hvp_encode_jmp_rel32(entry.addr, new_fn, jmp);
        if (r < 0)
                return r;
        /* New code first, then the jump to it: the order of the writes in the window. */
        r = add_range(pl, area, target, filler, code, code_len, false, idx);
        if (r < 0)
                return r;
        if (!pl->pure->area_len) {
                pl->pure->area_start = target;
                pl->pure->area_len = code_len;
        } else {
                uint64_t end = HVP_MAX(pl->pure->area_start + pl->pure->area_len, target + code_len);

                pl->pure->area_start = HVP_MIN(pl->pure->area_start, target);
                pl->pure->area_len = end - pl->pure->area_start;
        }
        /* A single instruction (the 5-byte NOP) is replaced: no vCPU can be inside it. */
        n0 = pl->pure->nr_writes;
        r = add_range(pl, NULL, entry.addr, entry.old_bytes, jmp, sizeof(jmp), false, idx);
        return r < 0 ? r : guard_function(pl, s, idx, sym->addr, n0);
}

/*
 * The transition: undo the replaced patch and do the new one in one window. A range
 * both touch becomes one write (replaced's new bytes -> new patch's bytes).
 */
static int make_txn(const struct hvp_plan *pure, const struct hvp_plan *replaced, const struct hvp_area *map,
                    const struct hvp_plan *erase, struct hvp_plan **ret_txn)
{
        struct hvp_plan *txn = NULL, *undo = NULL;
        int r;

        r = replaced ? hvp_plan_inverse(replaced, &undo) : 0;
        if (r < 0)
                return r;
        txn = hvp_plan_new_like(pure);
        if (!txn) {
                hvp_plan_free(undo);
                return -ENOMEM;
        }
        /* 0. map the device area: in no record, never undone (see area.h) */
        if (map)
                r = hvp_plan_add_write(txn, map->start, map->pde_gpa, &map->pde_old, &map->pde_new,
                                       sizeof(map->pde_new), false, true, 0);
        /* 0b. erase device code an earlier boot left (in no record either) */
        for (size_t i = 0; erase && i < erase->nr_writes && r == 0; i++) {
                const struct hvp_write *w = &erase->writes[i];

                r = hvp_plan_add_write(txn, w->va, w->gpa, w->old, w->new, w->len, false, true, 0);
        }
        /* 1. the new patch's writes, merged with an undo of the same range */
        for (size_t i = 0; i < pure->nr_writes && r == 0; i++) {
                const struct hvp_write *w = &pure->writes[i];
                const uint8_t *expect = w->old;
                uint64_t gs = w->guard_start, gl = w->guard_len;

                for (size_t j = 0; undo && j < undo->nr_writes; j++) {
                        struct hvp_write *u = &undo->writes[j];

                        if (u->len == 0 || u->va + u->len <= w->va || w->va + w->len <= u->va)
                                continue;
                        if (u->va != w->va || u->len != w->len) {
                                r = hvp_fail(-ENOTSUP, "the new bundle changes the extent of a site at 0x%llx",
                                             (unsigned long long)w->va);
                                break;
                        }
                        expect = u->old;        /* what the replaced patch put there */
                        if (!gl) {              /* the replaced patch's guard, if only it had one */
                                gs = u->guard_start;
                                gl = u->guard_len;
                        }
                        u->len = 0;             /* consumed */
                }
                if (r == 0)
                        r = hvp_plan_add_write(txn, w->va, w->gpa, expect, w->new, w->len, w->check_rip, w->area,
                                               w->site);
                if (r == 0) {
                        txn->writes[txn->nr_writes - 1].guard_start = gs;
                        txn->writes[txn->nr_writes - 1].guard_len = gl;
                }
        }
        /*
         * 2. the rest of the undo: kernel sites only. The replaced patch's area code stays
         * as it is (a task may still run it): the commit retires it (apply.h).
         */
        for (size_t j = 0; undo && j < undo->nr_writes && r == 0; j++) {
                const struct hvp_write *u = &undo->writes[j];

                if (!u->len || u->area)
                        continue;
                r = hvp_plan_add_write(txn, u->va, u->gpa, u->old, u->new, u->len, u->check_rip, u->area, u->site);
                if (r == 0) {
                        txn->writes[txn->nr_writes - 1].guard_start = u->guard_start;
                        txn->writes[txn->nr_writes - 1].guard_len = u->guard_len;
                }
        }
        hvp_plan_free(undo);
        if (r < 0) {
                hvp_plan_free(txn);
                return r;
        }
        *ret_txn = txn;
        return 0;
}

int hvp_plan_build(struct hvp_mmu *mmu, const struct hvp_kernel *k, const struct hvp_bundle *b,
                   const char *key_name, const struct hvp_record *rec, enum hvp_area_choice area,
                   struct hvp_plan **ret_txn, struct hvp_plan **ret_pure, char *ret_replaces)
{
        const struct hvp_manifest *m = &b->manifest;
        struct planner *pl;
        struct hvp_plan *txn = NULL;
        int r;

        if (m->build_id_len != k->build_id_len || memcmp(m->build_id, k->build_id, k->build_id_len) != 0) {
                char want[2 * HVP_BUILD_ID_MAX + 1], have[2 * HVP_BUILD_ID_MAX + 1];

                hvp_hex_encode(m->build_id, m->build_id_len, want);
                hvp_hex_encode(k->build_id, k->build_id_len, have);
                return hvp_fail(-EPERM, "bundle %s is for kernel build %s; the guest runs %s", m->id, want, have);
        }
        if (hvp_record_find(rec, m->id))
                return hvp_fail(-EEXIST, "patch %s is already applied", m->id);
        pl = calloc(1, sizeof(*pl));
        if (!pl)
                return -ENOMEM;
        *pl = (struct planner){ .mmu = mmu, .k = k, .m = m, .rec = rec, .choice = area };
        pl->replaced = hvp_record_find_series(rec, m->series);
        if (pl->replaced && pl->replaced->plan->seq >= m->sequence) {
                r = hvp_fail(-EPERM, "series %s: sequence %u is not newer than the applied %s (sequence %llu)",
                             m->series, m->sequence, pl->replaced->plan->patch_id,
                             (unsigned long long)pl->replaced->plan->seq);
                goto out;
        }
        r = collect_used(pl);
        if (r < 0)
                goto out;
        pl->pure = hvp_plan_new();
        if (!pl->pure) {
                r = -ENOMEM;
                goto out;
        }
        snprintf(pl->pure->patch_id, sizeof(pl->pure->patch_id), "%s", m->id);
        snprintf(pl->pure->series, sizeof(pl->pure->series), "%s", m->series);
        snprintf(pl->pure->key_name, sizeof(pl->pure->key_name), "%s", key_name ? key_name : "");
        pl->pure->seq = m->sequence;
        memcpy(pl->pure->build_id, k->build_id, k->build_id_len);
        pl->pure->build_id_len = k->build_id_len;
        pl->pure->kernel_base = k->base;
        if (pl->replaced)
                snprintf(pl->pure->replaces, sizeof(pl->pure->replaces), "%s", pl->replaced->plan->patch_id);

        r = 0;
        for (size_t i = 0; i < m->nr_sites && r == 0; i++) {
                const struct hvp_site *s = &m->sites[i];

                r = s->kind == HVP_SITE_REPLACE ? plan_replace(pl, s, (unsigned)i) : plan_redirect(pl, s, (unsigned)i);
        }
        if (r == 0)
                r = make_txn(pl->pure, pl->replaced ? pl->replaced->plan : NULL,
                             pl->map_device ? &pl->device : NULL, pl->erase, &txn);
        if (r < 0)
                goto out;
        snprintf(ret_replaces, HVP_ID_MAX, "%s", pl->pure->replaces);
        *ret_txn = txn;
        *ret_pure = pl->pure;
        pl->pure = NULL;
out:
        if (pl->pure)
                hvp_plan_free(pl->pure);
        free(pl->used);
        hvp_plan_free(pl->erase);
        free(pl);
        return r;
}

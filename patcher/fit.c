/*
 * Does a patch object's code fit the target kernel's build? Contract: hvpatch/fit.h.
 * The object is hostile input: it goes through the same loader as hvp_reloc_measure()
 * (patcher/elf-reloc.c, bounded), the code is decoded linearly once per placed
 * executable section, and relocations are looked up by binary search, so the work is
 * O(code + relocations * log relocations).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <elf.h>
#include <zlib.h>

#include <hvpatch/fit.h>

#include "common/error.h"
#include "common/file.h"
#include "common/util.h"
#include "patcher/insn-class.h"
#include "patcher/reloc-view.h"

/* ---- kernel configs ---------------------------------------------------------------- */

/* value of CONFIG_name (or CONFIG_MITIGATION_name when mitigation is set) on this line */
static const char *config_value(const char *line, size_t n, const char *name, bool mitigation)
{
        char key[96];
        int k;

        k = snprintf(key, sizeof(key), "CONFIG_%s%s=", mitigation ? "MITIGATION_" : "", name);
        if (k < 0 || (size_t)k >= sizeof(key) || n < (size_t)k || memcmp(line, key, (size_t)k) != 0)
                return NULL;
        return line + k;
}

static bool is_y(const char *value, const char *end)
{
        return value && end - value == 1 && value[0] == 'y';
}

/* CONFIG_X or CONFIG_MITIGATION_X (6.9 renamed the mitigation options) is =y */
static void flag_line(const char *line, size_t n, const char *name, bool *flag)
{
        if (is_y(config_value(line, n, name, false), line + n) || is_y(config_value(line, n, name, true), line + n))
                *flag = true;
}

static void release_line(const char *line, size_t n, struct hvp_kconfig *kc)
{
        static const char head[] = "# Linux/x86 ", tail[] = " Kernel Configuration";
        size_t hl = sizeof(head) - 1, tl = sizeof(tail) - 1, rl;

        if (n <= hl + tl || memcmp(line, head, hl) != 0 || memcmp(line + n - tl, tail, tl) != 0)
                return;
        rl = n - hl - tl;
        if (rl >= sizeof(kc->release))
                return;
        for (size_t i = 0; i < rl; i++) {
                char c = line[hl + i];

                if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
                      c == '-' || c == '+' || c == '_'))
                        return;
        }
        memcpy(kc->release, line + hl, rl);
        kc->release[rl] = '\0';
}

int hvp_kconfig_parse(const char *text, size_t len, struct hvp_kconfig *ret)
{
        struct hvp_kconfig kc = { 0 };
        bool x86_64 = false, call_padding = false;
        unsigned padding = 0;
        size_t at = 0;

        if (!text || !ret)
                return hvp_fail(-EINVAL, "no config given");
        if (len > HVP_KCONFIG_MAX_SIZE)
                return hvp_fail(-E2BIG, "kernel config of %zu bytes exceeds the bound of %u", len,
                                HVP_KCONFIG_MAX_SIZE);
        if (memchr(text, '\0', len))
                return hvp_fail(-EINVAL, "kernel config holds a NUL byte: not a config text");
        while (at < len) {
                const char *line = text + at, *nl = memchr(line, '\n', len - at);
                size_t n = nl ? (size_t)(nl - line) : len - at;
                const char *v;

                at += n + 1;
                if (n && line[n - 1] == '\r')
                        n--;
                if (n > 0 && line[0] == '#') {
                        release_line(line, n, &kc);
                        continue;
                }
                if (is_y(config_value(line, n, "X86_64", false), line + n))
                        x86_64 = true;
                flag_line(line, n, "RETPOLINE", &kc.retpoline);
                flag_line(line, n, "RETHUNK", &kc.rethunk);
                flag_line(line, n, "SLS", &kc.sls);
                flag_line(line, n, "X86_KERNEL_IBT", &kc.ibt);
                flag_line(line, n, "CALL_DEPTH_TRACKING", &kc.call_depth_tracking);
                flag_line(line, n, "STACKPROTECTOR", &kc.stackprotector);
                flag_line(line, n, "CALL_PADDING", &call_padding);
                v = config_value(line, n, "FUNCTION_PADDING_BYTES", false);
                if (v) {
                        padding = 0;
                        for (const char *p = v; p < line + n && *p >= '0' && *p <= '9' && padding <= 4096; p++)
                                padding = padding * 10 + (unsigned)(*p - '0');
                        if (padding > 4096)
                                padding = 0;    /* nonsense: ignored, it only informs */
                }
        }
        if (!x86_64)
                return hvp_fail(-EINVAL, "not an x86-64 kernel config (no CONFIG_X86_64=y)");
        kc.padding_bytes = call_padding ? padding : 0;
        *ret = kc;
        return 0;
}

/* Inflate a gzip stream of len bytes into at most HVP_KCONFIG_MAX_SIZE bytes. */
static int gunzip_bounded(const uint8_t *in, size_t len, char **ret_out, size_t *ret_len)
{
        z_stream zs = { 0 };
        size_t cap = HVP_KCONFIG_MAX_SIZE + 1;
        char *out = malloc(cap);
        int z, r = 0;

        if (!out)
                return hvp_fail(-ENOMEM, "out of memory");
        if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
                free(out);
                return hvp_fail(-ENOMEM, "cannot set up gzip inflation");
        }
        zs.next_in = (Bytef *)(uintptr_t)in;
        zs.avail_in = (uInt)len;        /* len is bounded by the file read, far below 4 GiB */
        zs.next_out = (Bytef *)out;
        zs.avail_out = (uInt)cap;
        z = inflate(&zs, Z_FINISH);
        if (z == Z_STREAM_END)
                *ret_len = zs.total_out;
        else if (zs.avail_out == 0)
                r = hvp_fail(-E2BIG, "gzip'd kernel config inflates to more than %u bytes", HVP_KCONFIG_MAX_SIZE);
        else
                r = hvp_fail(-EINVAL, "gzip data that does not inflate (%s)", zs.msg ? zs.msg : "truncated");
        inflateEnd(&zs);
        if (r < 0) {
                free(out);
                return r;
        }
        *ret_out = out;
        return 0;
}

int hvp_kconfig_load(const char *path, struct hvp_kconfig *ret)
{
        void *data = NULL;
        size_t len = 0;
        int r;

        if (!path || !ret)
                return hvp_fail(-EINVAL, "no config path given");
        r = hvp_read_file_bounded(path, HVP_KCONFIG_MAX_SIZE, &data, &len);
        if (r < 0)
                return hvp_fail_context(r, "kernel config %s", path);
        if (len >= 2 && ((uint8_t *)data)[0] == 0x1f && ((uint8_t *)data)[1] == 0x8b) {
                char *text = NULL;
                size_t tl = 0;

                r = gunzip_bounded(data, len, &text, &tl);
                free(data);
                if (r < 0)
                        return hvp_fail_context(r, "kernel config %s", path);
                data = text;
                len = tl;
        }
        r = hvp_kconfig_parse(data, len, ret);
        free(data);
        if (r < 0)
                return hvp_fail_context(r, "kernel config %s", path);
        return 0;
}

/* ---- checks of placed code ----------------------------------------------------------- */

const char *hvp_fit_kind_name(enum hvp_fit_kind kind)
{
        switch (kind) {
        case HVP_FIT_CODE_MODEL:
                return "code-model";
        case HVP_FIT_STACK_PROTECTOR:
                return "stack-protector";
        case HVP_FIT_RETURN_THUNK:
                return "return-thunk";
        case HVP_FIT_INDIRECT_BRANCH:
                return "indirect-branch";
        case HVP_FIT_SLS:
                return "sls";
        case HVP_FIT_IBT:
                return "ibt";
        case HVP_FIT_RELEASE:
                return "release";
        }
        return "unknown";
}

/* One finding slot: a kind and which way it does not fit. */
enum finding {
        F_SMALL_MODEL,          /* R_X86_64_32 */
        F_STACK_CHK,            /* __stack_chk_fail or fs: */
        F_PLAIN_RET,            /* ret, kernel has RETHUNK */
        F_RET_THUNK,            /* jmp __x86_return_thunk, kernel lacks RETHUNK */
        F_PLAIN_INDIRECT,       /* call/jmp reg, kernel has RETPOLINE */
        F_INDIRECT_THUNK,       /* __x86_indirect_thunk_*, kernel lacks RETPOLINE */
        F_NO_INT3,              /* ret / jmp reg without int3, kernel has SLS */
        F_NO_ENDBR,             /* address-taken function without endbr64, kernel has IBT */
        F_NOTRACK,              /* notrack jmp, kernel has IBT */
        NR_FINDINGS
};

struct found {
        unsigned count;
        char where[192];
        char detail[HVP_MANIFEST_MAX_NAME + 1];         /* F_NO_ENDBR: the function */
};

struct place_key {
        size_t sec;
        uint64_t offset;
        size_t idx;                     /* into the view's relocs */
};

struct fit {
        const struct hvp_reloc_view *v;
        const struct hvp_kconfig *kc;
        struct place_key *by_place;     /* relocations sorted by (sec, offset) */
        struct found f[NR_FINDINGS];
        size_t sec;                     /* section being decoded */
        bool want_int3;                 /* the previous instruction needs an int3 after it */
        uint64_t pending;               /* its offset in sec */
};

static int place_cmp(const void *a, const void *b)
{
        const struct place_key *x = a, *y = b;

        if (x->sec != y->sec)
                return x->sec < y->sec ? -1 : 1;
        return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static size_t reloc_first_in(const struct fit *ft, size_t sec, uint64_t from);

/* The relocation whose field starts at (sec, off), or NULL. */
static const struct hvp_view_reloc *reloc_at(const struct fit *ft, size_t sec, uint64_t off)
{
        size_t i = reloc_first_in(ft, sec, off);

        if (i < ft->v->nr_relocs && ft->by_place[i].sec == sec && ft->by_place[i].offset == off)
                return &ft->v->relocs[ft->by_place[i].idx];
        return NULL;
}

/* The first relocation at or after (sec, from), as an index into by_place (nr_relocs: none). */
static size_t reloc_first_in(const struct fit *ft, size_t sec, uint64_t from)
{
        size_t lo = 0, hi = ft->v->nr_relocs;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                const struct place_key *k = &ft->by_place[mid];

                if (k->sec < sec || (k->sec == sec && k->offset < from))
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

static int func_cmp(const void *a, const void *b)
{
        const struct hvp_view_func *x = a, *y = b;

        if (x->sec != y->sec)
                return x->sec < y->sec ? -1 : 1;
        return x->value < y->value ? -1 : x->value > y->value;
}

/* Index of the first function at or after (sec, off) in the sorted funcs (nr_funcs: none). */
static size_t func_first_at(const struct hvp_reloc_view *v, size_t sec, uint64_t off)
{
        size_t lo = 0, hi = v->nr_funcs;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                const struct hvp_view_func *f = &v->funcs[mid];

                if (f->sec < sec || (f->sec == sec && f->value < off))
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

/* The function defined at exactly (sec, off), or NULL. */
static const struct hvp_view_func *func_at(const struct hvp_reloc_view *v, size_t sec, uint64_t off)
{
        size_t i = func_first_at(v, sec, off);

        if (i < v->nr_funcs && v->funcs[i].sec == sec && v->funcs[i].value == off)
                return &v->funcs[i];
        return NULL;
}

/* "fn+0x1a (.text+0x3a)" or ".rodata+0x8" */
static void place_name(const struct hvp_reloc_view *v, size_t sec, uint64_t off, char *buf, size_t size)
{
        const struct hvp_view_func *best = NULL;
        size_t i = func_first_at(v, sec, off + 1);      /* the first one after off */

        if (i > 0 && v->funcs[i - 1].sec == sec && off - v->funcs[i - 1].value < HVP_MAX(v->funcs[i - 1].size, 1u))
                best = &v->funcs[i - 1];
        if (best)
                snprintf(buf, size, "%s+0x%llx (%s+0x%llx)", best->name, (unsigned long long)(off - best->value),
                         v->secs[sec].name, (unsigned long long)off);
        else
                snprintf(buf, size, "%s+0x%llx", v->secs[sec].name, (unsigned long long)off);
}

static void note(struct fit *ft, enum finding k, size_t sec, uint64_t off)
{
        if (ft->f[k].count++ == 0)
                place_name(ft->v, sec, off, ft->f[k].where, sizeof(ft->f[k].where));
}

static bool starts_with(const char *s, const char *prefix)
{
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* A reference to a function's address (not a direct call/jmp to it): does it need endbr64? */
static void address_taken(struct fit *ft, const struct hvp_view_reloc *r, uint64_t extra)
{
        const struct hvp_view_section *s;
        const struct hvp_view_func *fn;
        uint64_t off;

        if (!ft->kc || !ft->kc->ibt || r->target_sec == HVP_VIEW_NONE)
                return;
        off = r->target_value + (uint64_t)r->addend + extra;
        fn = func_at(ft->v, r->target_sec, off);
        if (!fn)
                return;
        s = &ft->v->secs[fn->sec];
        if (hvp_range_within(fn->value, 4, 0, s->size) &&
            memcmp(s->data + fn->value, (const uint8_t[]){ 0xf3, 0x0f, 0x1e, 0xfa }, 4) == 0)
                return;
        if (ft->f[F_NO_ENDBR].count == 0)
                snprintf(ft->f[F_NO_ENDBR].detail, sizeof(ft->f[F_NO_ENDBR].detail), "%s", fn->name);
        note(ft, F_NO_ENDBR, r->sec, r->offset);
}

static void sls_after(struct fit *ft, const struct hvp_insn_info *in)
{
        if (ft->want_int3 && (!in || in->cls != HVP_IC_INT3))
                note(ft, F_NO_INT3, ft->sec, ft->pending);
        ft->want_int3 = false;
}

static int visit_insn(void *ctx, const struct hvp_insn_info *in)
{
        struct fit *ft = ctx;
        const struct hvp_kconfig *kc = ft->kc;
        const struct hvp_view_reloc *r = NULL;
        size_t sec = ft->sec;
        bool relocated = false;

        sls_after(ft, in);
        if (in->cls == HVP_IC_CALL_DIRECT || in->cls == HVP_IC_JMP_DIRECT)
                r = reloc_at(ft, sec, in->offset + in->rel_off);
        /* every other relocation inside this instruction refers to an address */
        for (size_t i = reloc_first_in(ft, sec, in->offset); i < ft->v->nr_relocs; i++) {
                const struct hvp_view_reloc *x = &ft->v->relocs[ft->by_place[i].idx];

                if (x->sec != sec || x->offset >= in->offset + in->size)
                        break;
                relocated = true;
                if (x == r)
                        continue;
                /* PC-relative: the CPU adds the end of the instruction, the addend counts from the field */
                address_taken(ft, x, x->type == R_X86_64_PC32 || x->type == R_X86_64_PLT32
                                             ? in->offset + in->size - x->offset : 0);
        }
        if (in->rip_lea && !relocated && in->rip_target >= 0) {
                /* lea of a place in this same section: resolved by the assembler, no relocation */
                struct hvp_view_reloc self = { .sec = sec, .offset = in->offset, .target_sec = sec,
                                               .target_value = (uint64_t)in->rip_target };

                address_taken(ft, &self, 0);
        }
        switch (in->cls) {
        case HVP_IC_RET:
                if (kc && kc->rethunk)
                        note(ft, F_PLAIN_RET, sec, in->offset);
                break;
        case HVP_IC_CALL_INDIRECT:
        case HVP_IC_JMP_INDIRECT:
                if (kc && kc->retpoline)
                        note(ft, F_PLAIN_INDIRECT, sec, in->offset);
                if (kc && kc->ibt && in->notrack)
                        note(ft, F_NOTRACK, sec, in->offset);
                break;
        case HVP_IC_CALL_DIRECT:
        case HVP_IC_JMP_DIRECT:
                if (!r || !r->undefined)
                        break;
                if (strcmp(r->symbol, "__x86_return_thunk") == 0 && kc && !kc->rethunk)
                        note(ft, F_RET_THUNK, sec, in->offset);
                if (starts_with(r->symbol, "__x86_indirect_thunk_") && kc && !kc->retpoline)
                        note(ft, F_INDIRECT_THUNK, sec, in->offset);
                if (strcmp(r->symbol, "__stack_chk_fail") == 0)
                        note(ft, F_STACK_CHK, sec, in->offset);
                break;
        case HVP_IC_FS_ACCESS:
                note(ft, F_STACK_CHK, sec, in->offset);
                break;
        default:
                break;
        }
        if (kc && kc->sls && (in->cls == HVP_IC_RET || in->cls == HVP_IC_JMP_INDIRECT)) {
                ft->want_int3 = true;
                ft->pending = in->offset;
        }
        return 0;
}

static void add_warning(struct hvp_fit_warning *w, enum hvp_fit_kind kind, const char *object, const char *function,
                        const struct found *f, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void add_warning(struct hvp_fit_warning *w, enum hvp_fit_kind kind, const char *object, const char *function,
                        const struct found *f, const char *fmt, ...)
{
        va_list ap;

        memset(w, 0, sizeof(*w));
        w->kind = kind;
        snprintf(w->object, sizeof(w->object), "%s", object ? object : "");
        snprintf(w->function, sizeof(w->function), "%s", function ? function : "");
        if (f) {
                snprintf(w->where, sizeof(w->where), "%s", f->where);
                w->count = f->count;
        }
        va_start(ap, fmt);
        vsnprintf(w->message, sizeof(w->message), fmt, ap);
        va_end(ap);
}

static const char *places(unsigned n)
{
        return n == 1 ? "place" : "places";
}

/* Turn the findings into warnings appended to *ws (room for NR_FINDINGS more). */
static size_t emit(const struct fit *ft, const char *object, const char *function, struct hvp_fit_warning *ws)
{
        const struct found *f = ft->f;
        size_t n = 0;

        if (f[F_SMALL_MODEL].count)
                add_warning(&ws[n++], HVP_FIT_CODE_MODEL, object, function, &f[F_SMALL_MODEL],
                            "R_X86_64_32 relocations (%u %s, first at %s): zero-extended 32-bit addresses, as the "
                            "small code model writes them; no kernel address fits, so applying fails. Compile with "
                            "-mcmodel=kernel -fno-pic", f[F_SMALL_MODEL].count, places(f[F_SMALL_MODEL].count),
                            f[F_SMALL_MODEL].where);
        if (f[F_STACK_CHK].count)
                add_warning(&ws[n++], HVP_FIT_STACK_PROTECTOR, object, function, &f[F_STACK_CHK],
                            "stack protector code (%u %s, first at %s: a call to __stack_chk_fail or an fs: "
                            "access): the canary's place differs between kernels (%%gs:40 in 6.1 and 6.12, "
                            "__ref_stack_chk_guard in 7.x; fs: is user space's), a wrong one panics the guest. "
                            "Compile with -fno-stack-protector", f[F_STACK_CHK].count, places(f[F_STACK_CHK].count),
                            f[F_STACK_CHK].where);
        if (f[F_PLAIN_RET].count)
                add_warning(&ws[n++], HVP_FIT_RETURN_THUNK, object, function, &f[F_PLAIN_RET],
                            "plain ret (%u %s, first at %s) in a kernel built with CONFIG_MITIGATION_RETHUNK: the "
                            "code runs, but its returns bypass the kernel's return-thunk mitigation (Retbleed, "
                            "SRSO). Compile with -mfunction-return=thunk-extern", f[F_PLAIN_RET].count,
                            places(f[F_PLAIN_RET].count), f[F_PLAIN_RET].where);
        if (f[F_RET_THUNK].count)
                add_warning(&ws[n++], HVP_FIT_RETURN_THUNK, object, function, &f[F_RET_THUNK],
                            "jmp __x86_return_thunk (%u %s, first at %s) but the kernel was built without "
                            "CONFIG_MITIGATION_RETHUNK: the thunk may not exist there (applying then fails: "
                            "undefined symbol). Compile without -mfunction-return=thunk-extern",
                            f[F_RET_THUNK].count, places(f[F_RET_THUNK].count), f[F_RET_THUNK].where);
        if (f[F_PLAIN_INDIRECT].count)
                add_warning(&ws[n++], HVP_FIT_INDIRECT_BRANCH, object, function, &f[F_PLAIN_INDIRECT],
                            "indirect call or jmp through a register or memory (%u %s, first at %s) in a kernel "
                            "built with CONFIG_MITIGATION_RETPOLINE: it bypasses the Spectre v2 mitigation. "
                            "Compile with -mindirect-branch=thunk-extern -mindirect-branch-register "
                            "-fno-jump-tables", f[F_PLAIN_INDIRECT].count, places(f[F_PLAIN_INDIRECT].count),
                            f[F_PLAIN_INDIRECT].where);
        if (f[F_INDIRECT_THUNK].count)
                add_warning(&ws[n++], HVP_FIT_INDIRECT_BRANCH, object, function, &f[F_INDIRECT_THUNK],
                            "call or jmp __x86_indirect_thunk_* (%u %s, first at %s) but the kernel was built "
                            "without CONFIG_MITIGATION_RETPOLINE: the thunks do not exist there (applying fails: "
                            "undefined symbol). Compile without -mindirect-branch=thunk-extern",
                            f[F_INDIRECT_THUNK].count, places(f[F_INDIRECT_THUNK].count), f[F_INDIRECT_THUNK].where);
        if (f[F_NO_INT3].count)
                add_warning(&ws[n++], HVP_FIT_SLS, object, function, &f[F_NO_INT3],
                            "ret or indirect jmp without an int3 after it (%u %s, first at %s) in a kernel built "
                            "with CONFIG_MITIGATION_SLS: straight-line speculation past it is not stopped. Compile "
                            "with -mharden-sls=all", f[F_NO_INT3].count, places(f[F_NO_INT3].count),
                            f[F_NO_INT3].where);
        if (f[F_NO_ENDBR].count)
                add_warning(&ws[n++], HVP_FIT_IBT, object, function, &f[F_NO_ENDBR],
                            "the address of %s is taken (%u %s, first at %s) but it does not start with endbr64: "
                            "the kernel is built with CONFIG_X86_KERNEL_IBT, so an indirect call to it stops the "
                            "guest kernel with a control-protection fault (#CP). Compile with "
                            "-fcf-protection=branch", f[F_NO_ENDBR].detail, f[F_NO_ENDBR].count,
                            places(f[F_NO_ENDBR].count), f[F_NO_ENDBR].where);
        if (f[F_NOTRACK].count)
                add_warning(&ws[n++], HVP_FIT_IBT, object, function, &f[F_NOTRACK],
                            "notrack indirect jmp (%u %s, first at %s; a jump table built with -fcf-protection): "
                            "the kernel's IBT does not honour notrack, the jump faults (#CP). Compile with "
                            "-fno-jump-tables", f[F_NOTRACK].count, places(f[F_NOTRACK].count), f[F_NOTRACK].where);
        return n;
}

int hvp_reloc_check_fit(const void *obj, size_t len, const char *object_name, const char *function,
                        const struct hvp_kconfig *kc, struct hvp_fit_warning **ret_warnings, size_t *ret_n)
{
        struct hvp_reloc_view v;
        struct fit ft = { .v = &v, .kc = kc };
        struct hvp_fit_warning found[NR_FINDINGS], *all;
        size_t n;
        int r;

        if (!ret_warnings || !ret_n)
                return hvp_fail(-EINVAL, "no place for the warnings");
        r = hvp_reloc_view(obj, len, function, &v);
        if (r < 0)
                return r;
        ft.by_place = malloc((v.nr_relocs ? v.nr_relocs : 1) * sizeof(*ft.by_place));
        if (!ft.by_place) {
                hvp_reloc_view_free(&v);
                return hvp_fail(-ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < v.nr_relocs; i++)
                ft.by_place[i] = (struct place_key){ .sec = v.relocs[i].sec, .offset = v.relocs[i].offset, .idx = i };
        if (v.nr_relocs)
                qsort(ft.by_place, v.nr_relocs, sizeof(*ft.by_place), place_cmp);
        if (v.nr_funcs)
                qsort(v.funcs, v.nr_funcs, sizeof(*v.funcs), func_cmp);

        for (size_t i = 0; i < v.nr_relocs; i++) {
                const struct hvp_view_reloc *x = &v.relocs[i];

                if (x->type == R_X86_64_32)
                        note(&ft, F_SMALL_MODEL, x->sec, x->offset);
                if (!v.secs[x->sec].exec && (x->type == R_X86_64_64 || x->type == R_X86_64_32S))
                        address_taken(&ft, x, 0);       /* a function pointer in read-only data */
        }
        for (size_t k = 0; r == 0 && k < v.nr_secs; k++) {
                if (!v.secs[k].exec)
                        continue;
                ft.sec = k;
                ft.want_int3 = false;
                r = hvp_insn_classify(v.secs[k].data, v.secs[k].size, visit_insn, &ft);
                if (r == 0)
                        sls_after(&ft, NULL);   /* the section ends after it */
        }
        free(ft.by_place);
        hvp_reloc_view_free(&v);
        if (r < 0)
                return r;

        n = emit(&ft, object_name, function, found);
        if (n == 0)
                return 0;
        all = reallocarray(*ret_warnings, *ret_n + n, sizeof(*all));
        if (!all)
                return hvp_fail(-ENOMEM, "out of memory");
        memcpy(all + *ret_n, found, n * sizeof(*all));
        *ret_warnings = all;
        *ret_n += n;
        return 0;
}

/* release appears in banner as a whole version token ("6.1.19" is not in "6.1.192") */
static bool banner_names(const char *banner, const char *release)
{
        size_t rl = strlen(release);

        for (const char *p = strstr(banner, release); p; p = strstr(p + 1, release)) {
                char before = p == banner ? ' ' : p[-1], after = p[rl];
                bool vb = (before >= '0' && before <= '9') || before == '.';
                bool va = (after >= '0' && after <= '9') || after == '.';

                if (!vb && !va)
                        return true;
        }
        return false;
}

int hvp_bundle_check_fit(const struct hvp_bundle *b, const struct hvp_kconfig *kc,
                         struct hvp_fit_warning **ret_warnings, size_t *ret_n)
{
        const struct hvp_manifest *m;
        struct hvp_fit_warning *ws = NULL;
        size_t n = 0;
        int r = 0;

        if (!b || !ret_warnings || !ret_n)
                return hvp_fail(-EINVAL, "no bundle given");
        m = &b->manifest;
        for (size_t i = 0; r == 0 && i < m->nr_sites; i++) {
                const struct hvp_site *s = &m->sites[i];
                bool seen = false;

                if (s->kind != HVP_SITE_REDIRECT || !s->payload)
                        continue;
                for (size_t j = 0; j < i && !seen; j++)
                        seen = m->sites[j].kind == HVP_SITE_REDIRECT && strcmp(m->sites[j].object, s->object) == 0 &&
                               strcmp(m->sites[j].function, s->function) == 0;
                if (!seen)
                        r = hvp_reloc_check_fit(s->payload->data, s->payload->size, s->object, s->function, kc, &ws,
                                                &n);
        }
        if (r == 0 && kc && kc->release[0] && m->banner && !banner_names(m->banner, kc->release)) {
                struct hvp_fit_warning *all = reallocarray(ws, n + 1, sizeof(*all));

                if (!all) {
                        r = hvp_fail(-ENOMEM, "out of memory");
                } else {
                        ws = all;
                        add_warning(&ws[n++], HVP_FIT_RELEASE, NULL, NULL, NULL,
                                    "the kernel config is of Linux %s, but the bundle's target banner does not "
                                    "name that release (\"%.300s\"): is it the config of the target kernel?",
                                    kc->release, m->banner);
                }
        }
        if (r < 0) {
                free(ws);
                return r;
        }
        *ret_warnings = ws;
        *ret_n = n;
        return 0;
}

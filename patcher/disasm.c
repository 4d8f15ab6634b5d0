/*
 * Instruction-level checks of patch sites: the only file of hvpatch that sees
 * capstone. Contract: hvpatch/patch.h.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <capstone/capstone.h>

#include <hvpatch/patch.h>

#include "common/error.h"
#include "common/util.h"
#include "patcher/insn-class.h"

static const uint8_t endbr64[4] = { 0xf3, 0x0f, 0x1e, 0xfa };
/* The 5-byte NOP (nopl 0x0(%rax,%rax,1)) the kernel writes over `call __fentry__`. */
static const uint8_t nop5[5] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };

struct decoder {
        csh handle;
        cs_insn *insn;
};

static int decoder_open_with(struct decoder *d, bool detail)
{
        if (cs_open(CS_ARCH_X86, CS_MODE_64, &d->handle) != CS_ERR_OK)
                return hvp_fail(-ENOMEM, "cannot open the x86-64 disassembler");
        if (detail && cs_option(d->handle, CS_OPT_DETAIL, CS_OPT_ON) != CS_ERR_OK) {
                cs_close(&d->handle);
                return hvp_fail(-ENOMEM, "cannot open the x86-64 disassembler with details");
        }
        d->insn = cs_malloc(d->handle);
        if (!d->insn) {
                cs_close(&d->handle);
                return hvp_fail(-ENOMEM, "out of memory");
        }
        return 0;
}

static int decoder_open(struct decoder *d)
{
        return decoder_open_with(d, false);
}

static void decoder_close(struct decoder *d)
{
        cs_free(d->insn, 1);
        cs_close(&d->handle);
}

/* Length of the instruction at bytes[0, len), or 0 if it does not decode within len. */
static size_t decode_one(struct decoder *d, const uint8_t *bytes, size_t len, uint64_t addr)
{
        const uint8_t *p = bytes;
        size_t n = len;
        uint64_t a = addr;

        if (!cs_disasm_iter(d->handle, &p, &n, &a, d->insn))
                return 0;
        return d->insn->size;
}

/*
 * After a decode failure at bytes[0, len): would the instruction decode with more
 * bytes? Then the range splits it; else the byte is undecodable.
 */
static bool decodes_if_longer(struct decoder *d, const uint8_t *bytes, size_t len, uint64_t addr)
{
        uint8_t padded[2 * HVP_INSN_MAX_LEN] = { 0 };
        size_t n = HVP_MIN(len, (size_t)HVP_INSN_MAX_LEN);

        memcpy(padded, bytes, n);
        return decode_one(d, padded, sizeof(padded), addr) > len;
}

static int decode_failure(struct decoder *d, const uint8_t *bytes, size_t len, uint64_t addr, size_t at)
{
        if (decodes_if_longer(d, bytes + at, len - at, addr + at))
                return hvp_fail(-EILSEQ, "range splits an instruction at +%zu", at);
        return hvp_fail(-EILSEQ, "undecodable byte at +%zu (0x%02x)", at, bytes[at]);
}

int hvp_insn_check_range(const uint8_t *bytes, size_t len, uint64_t addr)
{
        struct decoder d;
        size_t at = 0;
        int r;

        if (!bytes && len)
                return hvp_fail(-EINVAL, "no bytes");
        if (len == 0)
                return hvp_fail(-EINVAL, "empty range");
        r = decoder_open(&d);
        if (r < 0)
                return r;
        while (at < len) {
                size_t n = decode_one(&d, bytes + at, len - at, addr + at);

                if (n == 0) {
                        r = decode_failure(&d, bytes, len, addr, at);
                        break;
                }
                at += n;
        }
        decoder_close(&d);
        return r;
}

int hvp_insn_check_site(const uint8_t *fn_bytes, size_t fn_len, uint64_t fn_addr, size_t off, size_t len)
{
        struct decoder d;
        size_t at = 0, end;
        int r;

        if (!fn_bytes || len == 0 || !hvp_range_within(off, len, 0, fn_len))
                return hvp_fail(-EINVAL, "site +%zu..+%zu lies outside the %zu bytes given", off, off + len, fn_len);
        end = off + len;
        r = decoder_open(&d);
        if (r < 0)
                return r;
        while (at < end) {
                size_t n = decode_one(&d, fn_bytes + at, fn_len - at, fn_addr + at);

                if (n == 0) {
                        r = decode_failure(&d, fn_bytes, fn_len, fn_addr, at);
                        break;
                }
                if (at < off && at + n > off) {
                        r = hvp_fail(-EILSEQ, "site starts inside the instruction at +%zu (%s %s)", at,
                                     d.insn->mnemonic, d.insn->op_str);
                        break;
                }
                if (at < end && at + n > end) {
                        r = hvp_fail(-EILSEQ, "site ends inside the instruction at +%zu (%s %s)", at,
                                     d.insn->mnemonic, d.insn->op_str);
                        break;
                }
                at += n;
        }
        decoder_close(&d);
        return r;
}

static void fill_insn(struct hvp_insn *out, const cs_insn *in)
{
        out->addr = in->address;
        out->size = (uint8_t)HVP_MIN((size_t)in->size, sizeof(out->bytes));
        memcpy(out->bytes, in->bytes, out->size);
        snprintf(out->mnemonic, sizeof(out->mnemonic), "%s", in->mnemonic);
        snprintf(out->operands, sizeof(out->operands), "%s", in->op_str);
}

int hvp_disasm(const uint8_t *bytes, size_t len, uint64_t addr, size_t max, struct hvp_insn **ret_insns,
               size_t *ret_n)
{
        struct hvp_insn *out;
        struct decoder d;
        size_t at = 0, n = 0, cap = HVP_MIN(len, max);
        int r;

        if (!bytes && len)
                return hvp_fail(-EINVAL, "no bytes");
        out = calloc(cap ? cap : 1, sizeof(*out));
        if (!out)
                return hvp_fail(-ENOMEM, "out of memory");
        r = decoder_open(&d);
        if (r < 0) {
                free(out);
                return r;
        }
        while (at < len && n < cap) {
                size_t sz = decode_one(&d, bytes + at, len - at, addr + at);

                if (sz) {
                        fill_insn(&out[n], d.insn);
                } else {
                        out[n].addr = addr + at;
                        out[n].size = 0;
                        out[n].bytes[0] = bytes[at];
                        snprintf(out[n].mnemonic, sizeof(out[n].mnemonic), "(bad)");
                        snprintf(out[n].operands, sizeof(out[n].operands), ".byte 0x%02x", bytes[at]);
                        sz = 1;
                }
                n++;
                at += sz;
        }
        decoder_close(&d);
        *ret_insns = out;
        *ret_n = n;
        return 0;
}

int hvp_insn_format(const struct hvp_insn *insn, char *buf, size_t size)
{
        char hex[3 * HVP_INSN_MAX_LEN + 1] = "";
        size_t nb = insn->size ? insn->size : 1, pos = 0;

        for (size_t i = 0; i < nb && i < HVP_INSN_MAX_LEN; i++)
                pos += (size_t)snprintf(hex + pos, sizeof(hex) - pos, "%s%02x", i ? " " : "", insn->bytes[i]);
        return snprintf(buf, size, "%016llx  %-29s  %s%s%s", (unsigned long long)insn->addr, hex, insn->mnemonic,
                        insn->operands[0] ? " " : "", insn->operands);
}

int hvp_encode_jmp_rel32(uint64_t from, uint64_t to, uint8_t ret_bytes[5])
{
        int64_t rel = (int64_t)(to - (from + 5));

        if (rel != (int64_t)(int32_t)rel)
                return hvp_fail(-ERANGE, "jmp from 0x%llx to 0x%llx is beyond rel32 reach", (unsigned long long)from,
                                (unsigned long long)to);
        ret_bytes[0] = 0xe9;
        for (int i = 0; i < 4; i++)
                ret_bytes[1 + i] = (uint8_t)((uint32_t)(int32_t)rel >> (8 * i));
        return 0;
}

static int describe_entry(const uint8_t *bytes, size_t len, uint64_t addr)
{
        struct decoder d;
        int r = decoder_open(&d);

        if (r < 0)
                return r;
        if (decode_one(&d, bytes, len, addr))
                r = hvp_fail(-ENOTSUP, "function entry is not an ftrace site: %s%s%s", d.insn->mnemonic,
                             d.insn->op_str[0] ? " " : "", d.insn->op_str);
        else
                r = hvp_fail(-ENOTSUP, "function entry is not an ftrace site: undecodable byte 0x%02x", bytes[0]);
        decoder_close(&d);
        return r;
}

int hvp_entry_site_find(const uint8_t *bytes, size_t len, uint64_t func_addr, uint64_t fentry_addr,
                        struct hvp_entry_site *ret_site)
{
        struct hvp_entry_site site = { 0 };
        const uint8_t *p;

        if (!bytes)
                return hvp_fail(-EINVAL, "no bytes");
        if (len >= sizeof(endbr64) && memcmp(bytes, endbr64, sizeof(endbr64)) == 0) {
                site.endbr = true;
                site.offset = sizeof(endbr64);
        }
        if (len < site.offset + 5)
                return hvp_fail(-EINVAL, "need %zu bytes of the function entry, have %zu", site.offset + 5, len);
        p = bytes + site.offset;
        site.addr = func_addr + site.offset;
        memcpy(site.old_bytes, p, 5);
        if (memcmp(p, nop5, sizeof(nop5)) == 0) {
                site.kind = HVP_ENTRY_NOP5;
        } else if (p[0] == 0xe8) {
                uint64_t dest = site.addr + 5 + (uint64_t)(int64_t)(int32_t)hvp_le32(p + 1);

                if (!fentry_addr || dest != fentry_addr)
                        return hvp_fail(-EBUSY,
                                        "function entry calls 0x%llx, not __fentry__: ftrace is tracing it "
                                        "(or it has no ftrace site)", (unsigned long long)dest);
                site.kind = HVP_ENTRY_FENTRY_CALL;
        } else {
                return describe_entry(p, len - site.offset, site.addr);
        }
        *ret_site = site;
        return 0;
}

static bool has_prefix(const cs_x86 *x, uint8_t p)
{
        for (size_t i = 0; i < HVP_ARRAY_SIZE(x->prefix); i++)
                if (x->prefix[i] == p)
                        return true;
        return false;
}

static void classify(const cs_insn *in, struct hvp_insn_info *ret)
{
        const cs_x86 *x = &in->detail->x86;
        bool imm = x->op_count == 1 && x->operands[0].type == X86_OP_IMM;

        ret->cls = HVP_IC_OTHER;
        switch (in->id) {
        case X86_INS_RET:
                ret->cls = HVP_IC_RET;
                return;
        case X86_INS_INT3:
                ret->cls = HVP_IC_INT3;
                return;
        case X86_INS_ENDBR64:
                ret->cls = HVP_IC_ENDBR64;
                return;
        case X86_INS_CALL:
        case X86_INS_JMP:
                if (imm) {
                        ret->cls = in->id == X86_INS_CALL ? HVP_IC_CALL_DIRECT : HVP_IC_JMP_DIRECT;
                        ret->rel_size = in->size >= 5 && (in->bytes[in->size - 5] == 0xe8 ||
                                                          in->bytes[in->size - 5] == 0xe9) ? 4 : 1;
                        ret->rel_off = (uint8_t)(in->size - ret->rel_size);
                } else {
                        ret->cls = in->id == X86_INS_CALL ? HVP_IC_CALL_INDIRECT : HVP_IC_JMP_INDIRECT;
                        ret->notrack = has_prefix(x, X86_PREFIX_DS);
                }
                return;
        default:
                break;
        }
        for (uint8_t i = 0; i < x->op_count && i < HVP_ARRAY_SIZE(x->operands); i++) {
                const cs_x86_op *op = &x->operands[i];

                if (op->type != X86_OP_MEM)
                        continue;
                if (op->mem.segment == X86_REG_FS)
                        ret->cls = HVP_IC_FS_ACCESS;
                if (in->id == X86_INS_LEA && op->mem.base == X86_REG_RIP && op->mem.index == X86_REG_INVALID) {
                        ret->rip_lea = true;
                        ret->rip_target = (int64_t)(ret->offset + in->size) + op->mem.disp;
                }
        }
}

int hvp_insn_classify(const uint8_t *bytes, size_t len, int (*fn)(void *ctx, const struct hvp_insn_info *insn),
                      void *ctx)
{
        struct decoder d;
        size_t at = 0;
        int r;

        r = decoder_open_with(&d, true);
        if (r < 0)
                return r;
        while (r >= 0 && at < len) {
                struct hvp_insn_info info = { .offset = at };
                size_t n = decode_one(&d, bytes + at, len - at, at);

                if (n == 0) {
                        info.size = 1;
                        info.cls = HVP_IC_UNDECODABLE;
                } else {
                        info.size = (uint8_t)n;
                        classify(d.insn, &info);
                }
                r = fn(ctx, &info);
                at += info.size;
        }
        decoder_close(&d);
        return r < 0 ? r : 0;
}

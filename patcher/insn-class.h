/*
 * Internal: instruction classes for the checks of patch code against the target
 * kernel's build (patcher/fit.c). capstone stays inside patcher/disasm.c.
 */
#ifndef HVPATCH_PATCHER_INSN_CLASS_H
#define HVPATCH_PATCHER_INSN_CLASS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum hvp_insn_class {
        HVP_IC_OTHER = 0,
        HVP_IC_UNDECODABLE,             /* one byte that does not decode (skipped) */
        HVP_IC_RET,                     /* ret, ret imm16 (with or without rep) */
        HVP_IC_CALL_DIRECT,             /* call rel32: rel_off is the field's offset */
        HVP_IC_JMP_DIRECT,              /* jmp rel8/rel32 */
        HVP_IC_CALL_INDIRECT,           /* call reg / call [mem] */
        HVP_IC_JMP_INDIRECT,            /* jmp reg / jmp [mem] */
        HVP_IC_ENDBR64,
        HVP_IC_INT3,
        HVP_IC_FS_ACCESS,               /* a memory operand with an fs: override */
};

struct hvp_insn_info {
        size_t offset;                  /* from the start of the bytes given */
        uint8_t size;
        enum hvp_insn_class cls;
        bool notrack;                   /* 3e prefix on an indirect branch (CET notrack) */
        uint8_t rel_off;                /* direct call/jmp: where its displacement starts */
        uint8_t rel_size;               /* 1 or 4 */
        bool rip_lea;                   /* lea of a RIP-relative address (an address taken) */
        int64_t rip_target;             /* rip_lea: offset + size + displacement, from the start
                                           of the bytes given (the assembler resolves a reference
                                           into the same section without a relocation) */
};

/*
 * Decode bytes[0, len) linearly from offset 0 and call fn for each instruction; an
 * undecodable byte is reported as HVP_IC_UNDECODABLE of size 1 and decoding goes on.
 * A negative return of fn stops the walk and is returned. -ENOMEM if capstone does
 * not open. Work is linear in len (the caller bounds it).
 */
int hvp_insn_classify(const uint8_t *bytes, size_t len, int (*fn)(void *ctx, const struct hvp_insn_info *insn),
                      void *ctx);

#endif

/*
 * Patches, offline half: bundles (container + manifest), relocation of the new code
 * from ELF relocatable objects, and instruction-level checks of patch sites.
 * Nothing here touches a guest; the planner and the pause-window transaction are
 * built on these calls.
 *
 * Formats: docs/bundle.md (container and manifest), docs/schemas/manifest.rng.
 *
 * Ownership: a struct hvp_bundle owns everything reachable from it (strings, sites,
 * payload bytes: payload data points into the bundle's own copy of the file) until
 * hvp_bundle_free(). Buffers returned through ret_* (uint8_t **) are malloc'ed and
 * owned by the caller (free()). Inputs are never retained.
 *
 * Errors of this module (besides the common ones of hvpatch.h):
 *   -EINVAL    malformed input: bundle container, manifest (schema or semantic check),
 *              ELF object. The reason says where (offset, entry, manifest line,
 *              section, symbol, relocation).
 *   -E2BIG     a bound is exceeded (bundle size, entry count, name length, manifest
 *              size, site count, replace length, ELF table sizes, placed code size)
 *   -EBADMSG   an entry's SHA-256 does not match its table record (corruption)
 *   -ENOTSUP   valid input that hvpatch does not handle: writable data in a patch
 *              object, an unsupported relocation type, a function entry that is not
 *              an ftrace site
 *   -ENOENT    a file is missing; a named function not defined in an object; an
 *              undefined symbol the resolver does not know
 *   -ERANGE    a relocated value does not fit its field (32-bit kinds), a jmp rel32
 *              target is out of reach
 *   -EILSEQ    bytes do not decode as whole instructions filling the range
 *              (an undecodable byte, or the range splits an instruction)
 *   -EBUSY     the function entry is being traced by ftrace (calls a trampoline)
 *   -EIO       reading or writing a file failed
 *   -ENOTUNIQ  a symbol the bundle names is defined at several addresses in the
 *              kernel and the manifest does not pin which (hvp_manifest_resolve)
 *
 * How the planner is meant to use this (everything before the pause window):
 *   replace site:  read the live function from its symbol to offset+len;
 *                  hvp_insn_check_site(fn, len, addr, offset, site->len) (boundaries in
 *                  the live code), compare site->expected; the bundle reader already
 *                  checked that expected and new_bytes are whole instructions.
 *   redirect site: read >= 9 bytes at the symbol; hvp_entry_site_find() with the
 *                  address of __fentry__ gives where the 5 bytes go and what they hold
 *                  now; pick a spot in a patch area aligned to site->code_align with
 *                  site->code_size bytes; hvp_reloc_object() there with a resolver over
 *                  the guest's kallsyms, e.g.
 *                      static int resolve(void *st, const char *name, uint64_t *ret)
 *                      {
 *                              const struct hvp_symbol *s = hvp_symtab_lookup(st, name);
 *                              if (!s)
 *                                      return -ENOENT;
 *                              *ret = s->addr;
 *                              return 0;
 *                      }
 *                  (names the kernel has more than once, static functions of several
 *                  files, would resolve to the first: the planner resolves every site
 *                  symbol and import through hvp_manifest_resolve() instead, which
 *                  refuses them unless the manifest pins one); then
 *                  hvp_encode_jmp_rel32(site.addr, entry).
 *   The writes are then: the relocated code into the patch area, and the jmp (or the
 *   new bytes) over the site; original bytes for the record are site.old_bytes /
 *   site->expected.
 */
#ifndef HVPATCH_PATCH_H
#define HVPATCH_PATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------
 * Bundles
 */

#define HVP_BUNDLE_MAGIC "HVPBNDL1"             /* 8 bytes, no NUL in the file */
#define HVP_BUNDLE_VERSION 1u
#define HVP_BUNDLE_MAX_SIZE (64u << 20)         /* whole file */
#define HVP_BUNDLE_MAX_ENTRIES 64u
#define HVP_BUNDLE_NAME_MAX 63u                 /* entry name bytes, NUL excluded */
#define HVP_BUNDLE_MANIFEST "manifest.xml"      /* always entry 0 */
#define HVP_MANIFEST_MAX_SIZE (1u << 20)
#define HVP_MANIFEST_MAX_SITES 256u
#define HVP_MANIFEST_MAX_TEXT 4096u             /* description, banner */
#define HVP_MANIFEST_MAX_NAME 127u              /* id, series, symbol, function names */
#define HVP_MANIFEST_MAX_PINS 256u
#define HVP_PIN_MAX_OFFSET (1ll << 30)          /* |offset| of a pin: the kernel image's 1 GiB */
#define HVP_REPLACE_MAX_LEN 64u                 /* bytes of one replace site */
#define HVP_FUNCTION_MAX_LEN (64u << 10)        /* consistency="function": the longest function */
#define HVP_BUILD_ID_MAX 64u

enum hvp_site_kind {
        HVP_SITE_REPLACE = 1,   /* symbol+offset: expected bytes -> new bytes */
        HVP_SITE_REDIRECT = 2,  /* whole function -> a function of a payload object */
};

/*
 * consistency= of a site: which range no task may hold a return address in while the
 * site is written (the stack check, hvpatch/stackcheck.h; docs/bundle.md).
 */
enum hvp_consistency {
        HVP_CONSISTENCY_SITE = 0,       /* the bytes written (default) */
        HVP_CONSISTENCY_FUNCTION = 1,   /* the whole function the site lies in */
};

/* One entry of the container (the manifest is entry 0, payloads follow). */
struct hvp_payload {
        const char *name;
        const uint8_t *data;            /* inside the bundle's copy of the file */
        size_t size;
        uint8_t sha256[32];             /* checked against the data at open */
};

struct hvp_site {
        enum hvp_site_kind kind;
        const char *symbol;             /* kernel symbol the site lives in */
        unsigned line;                  /* manifest line, for messages */
        enum hvp_consistency consistency;

        /* HVP_SITE_REPLACE: [symbol+offset, +len) holds expected, becomes new_bytes. */
        uint64_t offset;
        const uint8_t *expected;
        const uint8_t *new_bytes;
        size_t len;                     /* 1..HVP_REPLACE_MAX_LEN */

        /* HVP_SITE_REDIRECT: symbol's entry jumps to function, from payload object. */
        const char *object;             /* entry name */
        const char *function;
        const struct hvp_payload *payload;      /* the entry named by object */
        size_t code_size;               /* bytes hvp_reloc_object() will produce */
        size_t code_align;              /* the placement address must be aligned so */
};

/*
 * <pin symbol="NAME" near="UNIQUE" offset="+0x1a0"/>: of the addresses the kernel
 * defines NAME at, the bundle means near's address + offset (docs/bundle.md).
 */
struct hvp_pin {
        const char *symbol;
        const char *near;               /* a symbol the kernel defines at one address */
        int64_t offset;                 /* |offset| <= HVP_PIN_MAX_OFFSET */
        unsigned line;                  /* manifest line, for messages */
};

struct hvp_manifest {
        const char *id;                 /* patch id: [A-Za-z0-9._-]{1,127} */
        const char *series;             /* same charset; cumulative bundles share it */
        uint32_t sequence;              /* >= 1; a newer bundle of a series has a larger one */
        const char *description;        /* "" if absent */
        const char *os;                 /* "linux" */
        uint8_t build_id[HVP_BUILD_ID_MAX];     /* target kernel's GNU build id */
        size_t build_id_len;
        const char *banner;             /* target's linux_banner (no newline), or NULL */
        const struct hvp_site *sites;
        size_t nr_sites;                /* 1..HVP_MANIFEST_MAX_SITES */
        const struct hvp_pin *pins;     /* at most one per symbol */
        size_t nr_pins;                 /* 0..HVP_MANIFEST_MAX_PINS */
};

struct hvp_symtab;

/*
 * The address of a kernel symbol the bundle names (a site's symbol or an import of
 * its code) in the guest's kallsyms st. A name at one address resolves to it. A name
 * at several addresses (static functions of several files) is refused with
 * -ENOTUNIQ, the reason naming it and listing every address (and its offset from
 * _text), unless the manifest pins it: then near's address + offset, which must be
 * one of the name's addresses (-EINVAL otherwise, or when near is itself at several
 * addresses). -ENOENT: no such symbol, or no near symbol.
 */
int hvp_manifest_resolve(const struct hvp_manifest *m, const struct hvp_symtab *st, const char *name,
                         uint64_t *ret_addr);

struct hvp_bundle {
        struct hvp_manifest manifest;
        const struct hvp_payload *entries;      /* entries[0] is the manifest */
        size_t nr_entries;
        const uint8_t *data;            /* the whole file, as opened (owned) */
        size_t size;
        uint8_t sha256[32];             /* of the whole file: identifies the bundle */
};

/*
 * Parse and validate a bundle held in memory (copied: buf need not outlive it).
 * Validated before *ret_bundle is set: the container (magic, version, reserved
 * fields zero, canonical layout: entries in order, 8-byte aligned, zero padding,
 * no trailing bytes), every entry's SHA-256, the manifest against the RelaxNG schema
 * and the semantic rules of docs/bundle.md (objects declared and present, no two
 * sites overlapping on one symbol, replace lengths equal, replace bytes whole
 * x86-64 instructions), and each redirect's
 * object as a relocatable object whose function can be placed (hvp_reloc_measure).
 * -EINVAL malformed, -E2BIG over a bound, -EBADMSG hash mismatch, -ENOTSUP an object
 * hvpatch cannot place, -ENOENT a redirect function missing from its object.
 */
int hvp_bundle_open_mem(const void *buf, size_t len, struct hvp_bundle **ret_bundle);
/* The same from a file (-ENOENT missing, -EIO unreadable, -E2BIG larger than the bound). */
int hvp_bundle_open_file(const char *path, struct hvp_bundle **ret_bundle);
void hvp_bundle_free(struct hvp_bundle *b);

/* The entry named name, or NULL. */
const struct hvp_payload *hvp_bundle_entry(const struct hvp_bundle *b, const char *name);

/*
 * Container writer: entries in the given order (the reader wants "manifest.xml"
 * first; the writer does not look inside entries, so tests can build bad bundles).
 * Checks names (charset [A-Za-z0-9._+-], no leading '.', 1..HVP_BUNDLE_NAME_MAX,
 * unique), counts and sizes. *ret_buf is malloc'ed, owned by the caller.
 * -EINVAL bad name or duplicate, -E2BIG over a bound.
 */
struct hvp_bundle_input {
        const char *name;
        const void *data;
        size_t size;
};
int hvp_bundle_write(const struct hvp_bundle_input *entries, size_t nr_entries, uint8_t **ret_buf,
                     size_t *ret_len);

/*
 * Build a bundle from a source manifest: validates it (schema + rules), reads each
 * <object name=".." file=".."/> from a path relative to the manifest's folder, embeds
 * it under its name, then re-opens the result with hvp_bundle_open_mem() so that what
 * is written is what apply will accept. The manifest is embedded verbatim.
 * Errors as hvp_bundle_open_mem(), plus -ENOENT/-EIO for the files.
 */
int hvp_bundle_pack(const char *manifest_path, uint8_t **ret_buf, size_t *ret_len);

/* ------------------------------------------------------------------------------
 * Relocation of patch objects (ELF64 x86-64 ET_REL, as `gcc -c` writes them)
 *
 * What is placed: the section defining the function and, transitively, every section
 * its relocations reach. Placeable sections are allocated, non-writable PROGBITS
 * (.text*, .rodata*, .rodata.str*, ...). Reaching a writable or NOBITS section
 * (.data, .bss), a TLS or COMMON symbol is refused with -ENOTSUP ("writable data in
 * a patch object is not supported: section .data"). Sections are laid out in section
 * order, executable ones first, each at its alignment, contiguously from the target.
 *
 * Relocations: R_X86_64_NONE, 64, PC32, PLT32, 32, 32S, PC64; any other type is
 * refused with -ENOTSUP naming it. 32-bit kinds are checked: -ERANGE names the
 * relocation whose value does not fit. Symbols defined in the object resolve to
 * their placed address (local and global alike); undefined ones through the resolver
 * (the guest's kallsyms), including the thunks of a retpoline/rethunk kernel
 * (__x86_return_thunk, __x86_indirect_thunk_*): -ENOENT "undefined symbol foo not in
 * the guest kernel".
 *
 * ftrace: patch objects are meant to be compiled without -pg. If one was, each
 * `call __fentry__` (e8 + PC32/PLT32 against __fentry__) is replaced by the 5-byte
 * NOP (0f 1f 44 00 00), as the kernel itself does at boot; the new function is then
 * not traceable. A reference to __fentry__ that is not such a call is refused.
 * Sections the kernel's build records about code (__mcount_loc,
 * __patchable_function_entries, .eh_frame, notes, debug info) are never placed.
 * ------------------------------------------------------------------------------ */

#define HVP_RELOC_MAX_OBJECT (16u << 20)        /* object file size */
#define HVP_RELOC_MAX_SECTIONS 4096u
#define HVP_RELOC_MAX_SYMBOLS (1u << 18)
#define HVP_RELOC_MAX_CODE (1u << 20)           /* placed bytes */
#define HVP_RELOC_MAX_ALIGN 4096u

/* Resolve a kernel symbol: 0 and *ret_addr, or -ENOENT (any other error is passed on). */
typedef int (*hvp_resolve_fn)(void *ctx, const char *name, uint64_t *ret_addr);

struct hvp_reloc_info {
        size_t size;            /* bytes to place */
        size_t align;           /* the target address must be a multiple of this */
        size_t entry_offset;    /* function entry, from the start of the placed bytes */
        size_t nr_sections;     /* sections placed */
        size_t nr_imports;      /* distinct undefined symbols the placed code needs */
};

/*
 * Measure what hvp_reloc_object() would produce, so the caller can choose a spot
 * in a patch area first. Checks everything but symbol values: the same object and
 * function measured OK relocate OK unless a symbol is missing or a value overflows.
 * -EINVAL malformed object, -E2BIG over a bound, -ENOENT no such function (a defined
 * STT_FUNC symbol), -ENOTSUP writable data or an unsupported relocation.
 */
int hvp_reloc_measure(const void *obj, size_t len, const char *function, struct hvp_reloc_info *ret_info);

/*
 * Call fn(ctx, name) for each distinct undefined symbol the placed code needs, in
 * first-use order (to report every missing symbol at once). Errors as measure;
 * a negative return of fn stops the walk and is returned.
 */
int hvp_reloc_imports(const void *obj, size_t len, const char *function,
                      int (*fn)(void *ctx, const char *name), void *ctx);

/*
 * Lay out and relocate the code of function for placement at target (aligned to
 * info.align: -EINVAL otherwise). *ret_code (malloc'ed, caller frees) holds
 * *ret_len bytes to write at target; *ret_entry is the function's address there.
 * Errors as measure, plus -ENOENT an undefined symbol unknown to resolve,
 * -ERANGE a value that does not fit its field; resolver errors are passed on.
 */
int hvp_reloc_object(const void *obj, size_t len, const char *function, uint64_t target,
                     hvp_resolve_fn resolve, void *ctx, uint8_t **ret_code, size_t *ret_len,
                     uint64_t *ret_entry);
/*
 * What a resolver may give for __x86_return_thunk when the guest kernel runs without a
 * return thunk: each `jmp __x86_return_thunk` (rel32) becomes `ret; int3; int3; int3;
 * int3`, as the kernel's own return sites are patched at boot. A conditional jump to
 * it cannot be: -ENOTSUP.
 */
#define HVP_RELOC_RET_INLINE 0ull

/* ------------------------------------------------------------------------------
 * Instructions (x86-64)
 * ------------------------------------------------------------------------------ */

#define HVP_INSN_MAX_LEN 15u

/*
 * bytes (as found at addr) decode as whole instructions filling [0, len) exactly.
 * -EILSEQ "undecodable byte at +N" or "range splits an instruction at +N"
 * (an instruction starting at +N runs past the end).
 */
int hvp_insn_check_range(const uint8_t *bytes, size_t len, uint64_t addr);

/*
 * A site [off, off+len) inside a function whose bytes from its entry are
 * fn_bytes[0, fn_len) at fn_addr: decoding linearly from the entry, off and off+len
 * are both instruction boundaries. fn_len must cover off+len (-EINVAL otherwise).
 * -EILSEQ "site starts inside the instruction at +N" / "site ends inside ..." /
 * "undecodable byte at +N".
 */
int hvp_insn_check_site(const uint8_t *fn_bytes, size_t fn_len, uint64_t fn_addr, size_t off,
                        size_t len);

/* One decoded instruction, formatted for people (Intel syntax, as capstone prints). */
struct hvp_insn {
        uint64_t addr;
        uint8_t size;                   /* 0: undecodable byte (bytes[0] holds it) */
        uint8_t bytes[HVP_INSN_MAX_LEN];
        char mnemonic[32];              /* "(bad)" when size is 0 */
        char operands[160];
};

/*
 * Decode up to max instructions from bytes at addr. An undecodable byte yields an
 * entry with size 0 and decoding goes on at the next byte, so a dump always covers
 * the range. *ret_insns is malloc'ed (caller frees), *ret_n may be 0 for len 0.
 */
int hvp_disasm(const uint8_t *bytes, size_t len, uint64_t addr, size_t max, struct hvp_insn **ret_insns,
               size_t *ret_n);

/*
 * "ffffffff81234567  0f 1f 44 00 00           nop dword ptr [rax + rax]" into buf
 * (truncated to size; always NUL-terminated). Returns the length it wanted.
 */
int hvp_insn_format(const struct hvp_insn *insn, char *buf, size_t size);

/* How a Linux function entry looks where a redirect's jmp goes. */
enum hvp_entry_kind {
        HVP_ENTRY_NOP5 = 1,             /* ftrace's 5-byte NOP: the normal state after boot */
        HVP_ENTRY_FENTRY_CALL = 2,      /* `call __fentry__`: ftrace has not converted it */
};

struct hvp_entry_site {
        enum hvp_entry_kind kind;
        bool endbr;                     /* endbr64 (f3 0f 1e fa) precedes the site */
        size_t offset;                  /* site offset from the entry: 0, or 4 after endbr64 */
        uint64_t addr;                  /* entry + offset: where the 5 bytes go */
        uint8_t old_bytes[5];           /* what is there now (the expected bytes) */
};

/*
 * Recognise a redirect site at a function entry: bytes[0, len) at func_addr (len
 * >= 9 is enough). Accepted: [endbr64] nopl 0x0(%rax,%rax,1) (0f 1f 44 00 00), or
 * [endbr64] call rel32 whose target is fentry_addr (the address of __fentry__; 0
 * if unknown, then a call is never accepted). A call elsewhere means ftrace is
 * tracing the function now: -EBUSY. Anything else: -ENOTSUP with the instruction
 * found ("function entry is not an ftrace site: push rbp").
 */
int hvp_entry_site_find(const uint8_t *bytes, size_t len, uint64_t func_addr, uint64_t fentry_addr,
                        struct hvp_entry_site *ret_site);

/* e9 rel32 at from (5 bytes) jumping to to; -ERANGE if beyond +-2 GiB. */
int hvp_encode_jmp_rel32(uint64_t from, uint64_t to, uint8_t ret_bytes[5]);

#ifdef __cplusplus
}
#endif

#endif

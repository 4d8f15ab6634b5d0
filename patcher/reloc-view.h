/*
 * Internal: what hvp_reloc_object() would place for one function, as a read-only view
 * for checks that look at the code (patcher/fit.c). Not part of the public API.
 * Every pointer points into the object buffer given (or into the view's own arrays):
 * the buffer must outlive the view.
 */
#ifndef HVPATCH_PATCHER_RELOC_VIEW_H
#define HVPATCH_PATCHER_RELOC_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HVP_VIEW_NONE SIZE_MAX

struct hvp_view_section {
        const char *name;
        const uint8_t *data;            /* size bytes inside the object */
        size_t size;
        size_t place_off;               /* from the start of the placed bytes */
        bool exec;                      /* SHF_EXECINSTR */
};

/* A relocation that applies to a placed section (R_X86_64_NONE left out). */
struct hvp_view_reloc {
        size_t sec;                     /* index into secs */
        uint64_t offset;                /* of the field, from the start of that section */
        uint32_t type;                  /* R_X86_64_* */
        int64_t addend;
        const char *symbol;             /* name; a section symbol is named by its section */
        bool undefined;                 /* resolved through the guest's kallsyms */
        size_t target_sec;              /* defined in a placed section: index into secs, else HVP_VIEW_NONE */
        uint64_t target_value;          /* the symbol's value in target_sec */
};

/* A function symbol (STT_FUNC) defined in a placed section. */
struct hvp_view_func {
        const char *name;
        size_t sec;                     /* index into secs */
        uint64_t value;
        uint64_t size;
};

struct hvp_reloc_view {
        struct hvp_view_section *secs;  /* placement order */
        size_t nr_secs;
        struct hvp_view_reloc *relocs;
        size_t nr_relocs;
        struct hvp_view_func *funcs;
        size_t nr_funcs;
        size_t entry_sec;               /* the function asked for */
        uint64_t entry_value;
};

/* Errors as hvp_reloc_measure(). On failure *ret is untouched. */
int hvp_reloc_view(const void *obj, size_t len, const char *function, struct hvp_reloc_view *ret);
void hvp_reloc_view_free(struct hvp_reloc_view *v);

/* "R_X86_64_32S", or "relocation type N" written into buf. */
const char *hvp_reloc_type_name(uint32_t type, char *buf, size_t size);

#endif

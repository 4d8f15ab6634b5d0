/* Internal: the manifest parser shared by bundle reading and packing. */
#ifndef HVP_PATCHER_MANIFEST_H
#define HVP_PATCHER_MANIFEST_H

#include <hvpatch/patch.h>

struct manifest_object {
        char *name;             /* bundle entry name */
        char *file;             /* source path (pack), NULL if absent */
        unsigned line;
        bool used;              /* named by a redirect */
};

struct manifest {
        struct hvp_manifest pub;        /* its strings and sites are owned here */
        struct hvp_site *sites;
        struct hvp_pin *pins;
        bool *pin_used;                 /* per pin: named by a site or an import (bundle.c) */
        struct manifest_object *objects;
        size_t nr_objects;
};

enum manifest_mode {
        MANIFEST_IN_BUNDLE,     /* object file= attributes are ignored */
        MANIFEST_SOURCE,        /* for pack: every object needs file= */
};

/*
 * Parse xml[0, len): schema validation, then the rules of docs/bundle.md that need
 * no payloads. Errors: -EINVAL (the reason has the line), -E2BIG.
 */
int manifest_parse(const void *xml, size_t len, enum manifest_mode mode, struct manifest **ret);
void manifest_free(struct manifest *m);

struct hvp_symtab;
/*
 * consistency="function" (resolve.c): the function holding addr, [the symbol containing
 * addr, the next symbol at a greater address), at most HVP_FUNCTION_MAX_LEN long.
 * -ERANGE when that end cannot be determined (the reason names the symbol).
 */
int manifest_function_bounds(const struct hvp_symtab *st, uint64_t addr, uint64_t *ret_start, uint64_t *ret_len);

#endif

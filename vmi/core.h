/* Internal: the core-file backend over a buffer, for tests and fuzzers. */
#ifndef HVP_VMI_CORE_H
#define HVP_VMI_CORE_H

#include <stddef.h>

#include <hvpatch/guest.h>

/* Bounds on what a core file may declare. */
#define HVP_CORE_MAX_PHDRS 4096
#define HVP_CORE_MAX_NOTES_BYTES (16u << 20)

/*
 * Open an ELF core held in memory (borrowed: it must outlive the guest). Same
 * checks and errors as hvp_guest_open_core(); name is what hvp_guest_name() says.
 */
int hvp_guest_open_core_buffer(const void *data, size_t size, const char *name, struct hvp_guest **ret_guest);

#endif

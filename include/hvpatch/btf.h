/*
 * The guest kernel's own BTF (CONFIG_DEBUG_INFO_BTF), read from guest memory: struct
 * layouts with no profile file and no debug package.
 *
 * A kernel built with BTF keeps the blob in its image between the symbols
 * __start_BTF and __stop_BTF (Debian 6.1: 4.3 MB). hvp_btf_load() reads it through
 * a kernel-memory reader, hvp_btf_new() takes bytes; both parse with libbpf. The
 * blob is hostile input: its size is bounded (HVP_BTF_MAX_SIZE), libbpf checks the
 * header and the sections, and every lookup here checks each type id, name and
 * member it follows, with a fixed depth.
 *
 * Errors:
 *   -ENOENT    the kernel has no BTF (no __start_BTF/__stop_BTF symbols), or no such
 *              struct / member
 *   -E2BIG     the blob is larger than HVP_BTF_MAX_SIZE, or a lookup went deeper than
 *              its bound (nested anonymous members, typedef chains)
 *   -EINVAL    malformed blob (libbpf's reason) or path; __stop_BTF below __start_BTF
 *   -ENOTSUP   the member is a bitfield (no byte offset)
 *   -EFAULT    reading the blob failed (an unmapped page)
 */
#ifndef HVPATCH_BTF_H
#define HVPATCH_BTF_H

#include <stddef.h>
#include <stdint.h>

#include <hvpatch/kernel.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The largest blob accepted: 15 times Debian's. */
#define HVP_BTF_MAX_SIZE (64u << 20)

struct hvp_btf;

/* Parse a BTF blob (copied: data may be freed after the call). */
int hvp_btf_new(const void *data, size_t len, struct hvp_btf **ret_btf);

/*
 * Read the kernel's BTF through km, between the symbols __start_BTF and __stop_BTF
 * of kernel k. -ENOENT (reason "the guest kernel has no BTF ...") when the symbols
 * are absent: the kernel was built without CONFIG_DEBUG_INFO_BTF.
 */
int hvp_btf_load(const struct hvp_kmem *km, const struct hvp_kernel *k, struct hvp_btf **ret_btf);

void hvp_btf_free(struct hvp_btf *btf);

/* Bytes of the blob; number of types in it. */
size_t hvp_btf_size(const struct hvp_btf *btf);
size_t hvp_btf_type_count(const struct hvp_btf *btf);

/* sizeof(struct NAME) (a union of that name too). */
int hvp_btf_struct_size(const struct hvp_btf *btf, const char *name, uint64_t *ret_size);

/*
 * A member by path: "STRUCT.MEMBER[.MEMBER...]", e.g. "task_struct.thread.sp". Members
 * of anonymous structs and unions are found as the C compiler finds them (by their own
 * names), typedefs and qualifiers are looked through. ret_offset: byte offset from the
 * start of the struct; ret_size (may be NULL): size of the member's type.
 */
int hvp_btf_member(const struct hvp_btf *btf, const char *path, uint64_t *ret_offset, uint64_t *ret_size);

/* The value of the enumerator NAME (any enum): -ENOENT if no enum has it. */
int hvp_btf_enum_value(const struct hvp_btf *btf, const char *name, int64_t *ret_value);

#ifdef __cplusplus
}
#endif

#endif

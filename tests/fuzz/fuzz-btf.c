/*
 * Fuzz target: the input is a BTF blob, as hostile as guest memory makes it: parsed,
 * then every lookup the task and log readers make, and more.
 */
#include <stdint.h>

#include <hvpatch/btf.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const char *const paths[] = {
                "task_struct.tasks", "task_struct.tasks.next", "task_struct.pid", "task_struct.comm",
                "task_struct.__state", "task_struct.state", "task_struct.thread_info.cpu", "task_struct.cpu",
                "task_struct.thread.sp", "task_struct.bits", "signal_struct.thread_head", "evil.m", "evil.m.x",
                "loopy.l", "loopy.l.x", "printk_info.seq", "prb_desc.text_blk_lpos.next",
                "printk_ringbuffer.desc_ring.count_bits", "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r",
        };
        static const char *const structs[] = { "task_struct", "list_head", "evil", "", "printk_info" };
        struct hvp_btf *b = NULL;

        if (hvp_btf_new(data, size, &b) < 0)
                return 0;
        if (hvp_btf_size(b) != size)
                __builtin_trap();
        for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
                uint64_t off, sz;

                hvp_btf_member(b, paths[i], &off, &sz);
                hvp_btf_member(b, paths[i], &off, NULL);
        }
        for (size_t i = 0; i < sizeof(structs) / sizeof(structs[0]); i++) {
                uint64_t sz;

                hvp_btf_struct_size(b, structs[i], &sz);
        }
        hvp_btf_free(b);
        return 0;
}

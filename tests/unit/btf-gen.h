/*
 * Test helper: synthetic kernel BTF (written with libbpf's BTF writer) for the structs
 * hvpatch reads, at offsets chosen here, and a memory image to lay guest structures
 * out in. Used by tests/unit/test-btf.c and the fuzzers of the BTF readers.
 *
 * Two task layouts: BTFGEN_NEW as 6.1 (__state, thread_info.cpu, signal->thread_head
 * and thread_node, tasks inside an anonymous struct as randstruct kernels have it) and
 * BTFGEN_OLD as before 3.14/5.14 (long state, task_struct.cpu, thread_group ring only).
 */
#ifndef HVP_TESTS_BTF_GEN_H
#define HVP_TESTS_BTF_GEN_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/btf.h>

/* task_struct (both layouts) */
#define T_STATE 24
#define T_STACK 32
#define T_CPU_OLD 48            /* task_struct.cpu (old layout) */
#define T_ON_CPU 52
#define T_TASKS 64              /* new layout: at 8 in an anonymous struct at 56; old: plain */
#define T_EXIT_STATE 96
#define T_PID 100
#define T_TGID 104
#define T_SIGNAL 112
#define T_THREAD_GROUP 120
#define T_THREAD_NODE 136       /* new layout only */
#define T_COMM 152
#define T_THREAD 256            /* struct thread_struct */
#define T_SP (T_THREAD + 24)
#define T_NVCSW 416
#define T_NIVCSW 424
#define T_SIZE 512
#define TI_CPU 20               /* thread_info.cpu (new layout) */
#define SIG_THREAD_HEAD 16
#define SIG_SIZE 64

/* printk ring buffer (as 6.1) */
#define RB_DESC_RING 0
#define RB_TEXT_RING 48
#define RB_SIZE 88
#define DR_COUNT_BITS 0
#define DR_DESCS 8
#define DR_INFOS 16
#define DR_HEAD_ID 24
#define DR_TAIL_ID 32
#define TR_SIZE_BITS 0
#define TR_DATA 8
#define DESC_SIZE 24
#define DESC_SV 0
#define DESC_LPOS 8
#define INFO_SIZE 88
#define INFO_SEQ 0
#define INFO_TS 8
#define INFO_TEXT_LEN 16
#define INFO_FACILITY 18
#define INFO_FLAGS_LEVEL 19     /* flags:5, level:3 */
#define INFO_CALLER 20

/* struct rq */
#define RQ_IDLE 16
#define RQ_SIZE 64

enum btfgen_layout { BTFGEN_NEW, BTFGEN_OLD };

static inline void btfgen_check(int id)
{
        if (id < 0)
                abort();
}

/*
 * The task structs of the layout, and (both layouts) the printk ring buffer's.
 * count_bits_off: where prb_desc_ring.count_bits is (DR_COUNT_BITS; tests of hostile
 * BTF put it outside its struct).
 */
static inline struct btf *btfgen_build_opts(enum btfgen_layout layout, uint32_t count_bits_off)
{
        struct btf *b = btf__new_empty();
        int uint, sint, ulong, slong, u8, u16, u64, chr, vptr, list, lptr, comm, ti, ts, anon, sig, sigptr;
        int lpos, dring, tring, ring, u8ptr, rbptr, descptr, infoptr, td_ulong;

        if (!b)
                abort();
        btfgen_check(uint = btf__add_int(b, "unsigned int", 4, 0));
        btfgen_check(sint = btf__add_int(b, "int", 4, BTF_INT_SIGNED));
        btfgen_check(ulong = btf__add_int(b, "long unsigned int", 8, 0));
        btfgen_check(slong = btf__add_int(b, "long int", 8, BTF_INT_SIGNED));
        btfgen_check(u8 = btf__add_int(b, "unsigned char", 1, 0));
        btfgen_check(u16 = btf__add_int(b, "short unsigned int", 2, 0));
        btfgen_check(u64 = btf__add_int(b, "long long unsigned int", 8, 0));
        btfgen_check(chr = btf__add_int(b, "char", 1, BTF_INT_CHAR));
        btfgen_check(vptr = btf__add_ptr(b, 0));
        /* a typedef chain to look through: u64 -> __u64 -> const */
        btfgen_check(td_ulong = btf__add_typedef(b, "__u64", u64));
        btfgen_check(td_ulong = btf__add_const(b, td_ulong));

        /* fields follow their struct at once: the pointer to list_head comes first */
        btfgen_check(lptr = btf__add_ptr(b, (int)btf__type_cnt(b) + 1));
        btfgen_check(list = btf__add_struct(b, "list_head", 16));
        btfgen_check(btf__add_field(b, "next", lptr, 0, 0));
        btfgen_check(btf__add_field(b, "prev", lptr, 64, 0));
        btfgen_check(comm = btf__add_array(b, uint, chr, 16));

        btfgen_check(ti = btf__add_struct(b, "thread_info", 24));
        btfgen_check(btf__add_field(b, "flags", ulong, 0, 0));
        if (layout == BTFGEN_NEW)
                btfgen_check(btf__add_field(b, "cpu", uint, TI_CPU * 8, 0));
        btfgen_check(ts = btf__add_struct(b, "thread_struct", 64));
        btfgen_check(btf__add_field(b, "sp", ulong, 24 * 8, 0));

        btfgen_check(sig = btf__add_struct(b, "signal_struct", SIG_SIZE));
        btfgen_check(btf__add_field(b, "nr_threads", sint, 0, 0));
        if (layout == BTFGEN_NEW)
                btfgen_check(btf__add_field(b, "thread_head", list, SIG_THREAD_HEAD * 8, 0));
        btfgen_check(sigptr = btf__add_ptr(b, sig));

        btfgen_check(anon = btf__add_struct(b, NULL, 24));      /* struct { long pad; struct list_head tasks; } */
        btfgen_check(btf__add_field(b, "pad", ulong, 0, 0));
        btfgen_check(btf__add_field(b, "tasks", list, 64, 0));

        btfgen_check(btf__add_struct(b, "task_struct", T_SIZE));
        btfgen_check(btf__add_field(b, "thread_info", ti, 0, 0));
        if (layout == BTFGEN_NEW) {
                btfgen_check(btf__add_field(b, "__state", uint, T_STATE * 8, 0));
        } else {
                btfgen_check(btf__add_field(b, "state", slong, T_STATE * 8, 0));
                btfgen_check(btf__add_field(b, "cpu", uint, T_CPU_OLD * 8, 0));
        }
        btfgen_check(btf__add_field(b, "stack", vptr, T_STACK * 8, 0));
        btfgen_check(btf__add_field(b, "on_cpu", sint, T_ON_CPU * 8, 0));
        if (layout == BTFGEN_NEW)
                btfgen_check(btf__add_field(b, NULL, anon, (T_TASKS - 8) * 8, 0));
        else
                btfgen_check(btf__add_field(b, "tasks", list, T_TASKS * 8, 0));
        btfgen_check(btf__add_field(b, "exit_state", sint, T_EXIT_STATE * 8, 0));
        btfgen_check(btf__add_field(b, "pid", sint, T_PID * 8, 0));
        btfgen_check(btf__add_field(b, "tgid", sint, T_TGID * 8, 0));
        btfgen_check(btf__add_field(b, "signal", sigptr, T_SIGNAL * 8, 0));
        btfgen_check(btf__add_field(b, "thread_group", list, T_THREAD_GROUP * 8, 0));
        if (layout == BTFGEN_NEW)
                btfgen_check(btf__add_field(b, "thread_node", list, T_THREAD_NODE * 8, 0));
        btfgen_check(btf__add_field(b, "comm", comm, T_COMM * 8, 0));
        btfgen_check(btf__add_field(b, "thread", ts, T_THREAD * 8, 0));
        btfgen_check(btf__add_field(b, "bits", uint, 400 * 8 + 3, 5));   /* a bitfield */
        btfgen_check(btf__add_field(b, "nvcsw", ulong, T_NVCSW * 8, 0));
        btfgen_check(btf__add_field(b, "nivcsw", ulong, T_NIVCSW * 8, 0));

        /* printk */
        btfgen_check(lpos = btf__add_struct(b, "prb_data_blk_lpos", 16));
        btfgen_check(btf__add_field(b, "begin", ulong, 0, 0));
        btfgen_check(btf__add_field(b, "next", ulong, 64, 0));
        btfgen_check(descptr = btf__add_struct(b, "prb_desc", DESC_SIZE));
        btfgen_check(btf__add_field(b, "state_var", slong, DESC_SV * 8, 0));
        btfgen_check(btf__add_field(b, "text_blk_lpos", lpos, DESC_LPOS * 8, 0));
        btfgen_check(descptr = btf__add_ptr(b, descptr));
        btfgen_check(infoptr = btf__add_struct(b, "printk_info", INFO_SIZE));
        btfgen_check(btf__add_field(b, "seq", td_ulong, INFO_SEQ * 8, 0));
        btfgen_check(btf__add_field(b, "ts_nsec", u64, INFO_TS * 8, 0));
        btfgen_check(btf__add_field(b, "text_len", u16, INFO_TEXT_LEN * 8, 0));
        btfgen_check(btf__add_field(b, "facility", u8, INFO_FACILITY * 8, 0));
        btfgen_check(btf__add_field(b, "flags", u8, INFO_FLAGS_LEVEL * 8, 5));
        btfgen_check(btf__add_field(b, "level", u8, INFO_FLAGS_LEVEL * 8 + 5, 3));
        btfgen_check(btf__add_field(b, "caller_id", uint, INFO_CALLER * 8, 0));
        btfgen_check(infoptr = btf__add_ptr(b, infoptr));
        btfgen_check(dring = btf__add_struct(b, "prb_desc_ring", 48));
        btfgen_check(btf__add_field(b, "count_bits", uint, count_bits_off * 8, 0));
        btfgen_check(btf__add_field(b, "descs", descptr, DR_DESCS * 8, 0));
        btfgen_check(btf__add_field(b, "infos", infoptr, DR_INFOS * 8, 0));
        btfgen_check(btf__add_field(b, "head_id", slong, DR_HEAD_ID * 8, 0));
        btfgen_check(btf__add_field(b, "tail_id", slong, DR_TAIL_ID * 8, 0));
        btfgen_check(u8ptr = btf__add_ptr(b, chr));
        btfgen_check(tring = btf__add_struct(b, "prb_data_ring", 32));
        btfgen_check(btf__add_field(b, "size_bits", uint, TR_SIZE_BITS * 8, 0));
        btfgen_check(btf__add_field(b, "data", u8ptr, TR_DATA * 8, 0));
        btfgen_check(ring = btf__add_struct(b, "printk_ringbuffer", RB_SIZE));
        btfgen_check(btf__add_field(b, "desc_ring", dring, RB_DESC_RING * 8, 0));
        btfgen_check(btf__add_field(b, "text_data_ring", tring, RB_TEXT_RING * 8, 0));
        btfgen_check(rbptr = btf__add_ptr(b, ring));
        (void)rbptr;
        /* struct rq { ...; struct task_struct *idle @ RQ_IDLE; } */
        btfgen_check(btf__add_struct(b, "rq", RQ_SIZE));
        btfgen_check(btf__add_field(b, "nr_running", uint, 0, 0));
        btfgen_check(btf__add_field(b, "idle", vptr, RQ_IDLE * 8, 0));
        return b;
}

static inline struct btf *btfgen_build(enum btfgen_layout layout)
{
        return btfgen_build_opts(layout, DR_COUNT_BITS);
}

/* The raw bytes of b (malloc'd copy); frees b. */
static inline void *btfgen_raw(struct btf *b, size_t *ret_len)
{
        uint32_t n;
        const void *raw = btf__raw_data(b, &n);
        void *copy = raw ? malloc(n) : NULL;

        if (!copy)
                abort();
        memcpy(copy, raw, n);
        btf__free(b);
        *ret_len = n;
        return copy;
}

/* A memory image: va .. va+size, zeroed, read through btfgen_mem_read. */
struct btfgen_mem {
        uint8_t *data;
        size_t size;
        uint64_t va;
        unsigned reads;         /* reads done, to show walks are bounded */
};

static inline int btfgen_mem_read(void *ctx, uint64_t va, void *buf, size_t len)
{
        struct btfgen_mem *m = ctx;

        m->reads++;
        if (va < m->va || va - m->va > m->size || len > m->size - (va - m->va))
                return -EFAULT;
        memcpy(buf, m->data + (va - m->va), len);
        return 0;
}

static inline void btfgen_put(struct btfgen_mem *m, uint64_t va, uint64_t v, unsigned bytes)
{
        if (va < m->va || va + bytes > m->va + m->size)
                abort();
        for (unsigned i = 0; i < bytes; i++)
                m->data[va - m->va + i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t btfgen_get(const struct btfgen_mem *m, uint64_t va, unsigned bytes)
{
        uint64_t v = 0;

        if (va < m->va || va + bytes > m->va + m->size)
                abort();
        for (unsigned i = 0; i < bytes; i++)
                v |= (uint64_t)m->data[va - m->va + i] << (8 * i);
        return v;
}

/* Link node after prev in a circular list (both struct list_head addresses). */
static inline void btfgen_list_add_tail(struct btfgen_mem *m, uint64_t head, uint64_t node)
{
        uint64_t last = btfgen_get(m, head + 8, 8);

        btfgen_put(m, node, head, 8);           /* node->next = head */
        btfgen_put(m, node + 8, last, 8);       /* node->prev = last */
        btfgen_put(m, last, node, 8);           /* last->next = node */
        btfgen_put(m, head + 8, node, 8);       /* head->prev = node */
}

static inline void btfgen_list_init(struct btfgen_mem *m, uint64_t head)
{
        btfgen_put(m, head, head, 8);
        btfgen_put(m, head + 8, head, 8);
}

/* A task at va (T_SIZE bytes). */
static inline void btfgen_task(struct btfgen_mem *m, enum btfgen_layout layout, uint64_t va, int pid, int tgid,
                               const char *comm, uint32_t state, int cpu, uint64_t signal)
{
        btfgen_put(m, va + T_PID, (uint32_t)pid, 4);
        btfgen_put(m, va + T_TGID, (uint32_t)tgid, 4);
        memcpy(m->data + (va - m->va) + T_COMM, comm, strnlen(comm, 15));
        btfgen_put(m, va + T_STATE, state, layout == BTFGEN_NEW ? 4 : 8);
        btfgen_put(m, va + (layout == BTFGEN_NEW ? TI_CPU : T_CPU_OLD), (uint32_t)cpu, 4);
        btfgen_put(m, va + T_STACK, 0xffffc90000000000ull + (uint64_t)pid * 0x4000, 8);
        btfgen_put(m, va + T_SP, 0xffffc90000000000ull + (uint64_t)pid * 0x4000 + 0x3e00, 8);
        btfgen_put(m, va + T_SIGNAL, signal, 8);
}

#endif

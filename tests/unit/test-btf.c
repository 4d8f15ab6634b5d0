/*
 * BTF from guest memory, the task list and the kernel log read with it
 * (vmi/btf.c, vmi/tasks.c, vmi/printk.c).
 *
 * Synthetic: BTF written with libbpf's writer at offsets chosen in btf-gen.h, guest
 * structures laid out in a memory image: lookups through anonymous members and
 * typedefs, hostile blobs (bad type ids, names, typedef loops, truncation, size), task
 * lists (6.1 and old layouts, a looping list, a task on two lists, a pointer outside
 * RAM or not a kernel address, the task bound), printk rings (finalized, committed,
 * dataless, wrapped, overwritten records; absurd ring sizes).
 * Real: Debian's vmlinux (HVP_KERNEL_DIR, images/fetch-kernel.sh) read as kernel
 * memory: its BTF between __start_BTF and __stop_BTF equals what libbpf reads from the
 * ELF's .BTF section, the static init_task walks to one task "swapper" whose stack is
 * init_stack, and the static printk ring holds no record.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <hvpatch/btf.h>
#include <hvpatch/linux.h>

#include "btf-gen.h"
#include "fixture-dir.h"
#include "kallsyms-gen.h"
#include "prereq.h"
#include "vmlinux-kmem.h"

#define HVP_ARRAY_SIZE_T(a) (sizeof(a) / sizeof((a)[0]))
#define BASE 0xffff888000000000ull
#define MEM_SIZE (256u << 10)

/*
 * HVP_BTF_WRITE_SEEDS=tests/fuzz/corpus: write the fixtures as seeds of the fuzzers
 * (corpus/btf: raw BTF; corpus/tasks: a layout byte, then memory at BASE; corpus/klog:
 * memory at BASE). See tests/fuzz/corpus/btf.README.
 */
static void write_seed(const char *sub, const char *name, uint8_t prefix, bool with_prefix, const void *data,
                       size_t len)
{
        const char *dir = getenv("HVP_BTF_WRITE_SEEDS");
        char path[4096];
        FILE *f;

        if (!dir || !*dir)
                return;
        snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
        f = fopen(path, "wb");
        if (!f)
                fail_msg("cannot write the seed %s", path);
        if (with_prefix)
                fputc(prefix, f);
        fwrite(data, 1, len, f);
        fclose(f);
}

static struct hvp_btf *gen_btf(enum btfgen_layout layout)
{
        size_t len;
        void *raw = btfgen_raw(btfgen_build(layout), &len);
        struct hvp_btf *b = NULL;

        assert_int_equal(hvp_btf_new(raw, len, &b), 0);
        free(raw);
        return b;
}

static void assert_member(const struct hvp_btf *b, const char *path, uint64_t off, uint64_t size)
{
        uint64_t o = 0, s = 0;
        int r = hvp_btf_member(b, path, &o, &s);

        if (r != 0)
                fail_msg("%s: %d (%s)", path, r, hvp_last_error());
        if (o != off || s != size)
                fail_msg("%s: offset %llu size %llu, want %llu %llu", path, (unsigned long long)o,
                         (unsigned long long)s, (unsigned long long)off, (unsigned long long)size);
}

static void test_member_paths(void **state)
{
        struct hvp_btf *b = gen_btf(BTFGEN_NEW);
        uint64_t off = 77, size = 0;
        size_t len;
        void *raw;

        (void)state;
        raw = btfgen_raw(btfgen_build(BTFGEN_NEW), &len);
        write_seed("btf", "new", 0, false, raw, len);
        free(raw);
        raw = btfgen_raw(btfgen_build(BTFGEN_OLD), &len);
        write_seed("btf", "old", 0, false, raw, len);
        free(raw);
        assert_member(b, "task_struct.tasks", T_TASKS, 16);             /* inside the anonymous struct */
        assert_member(b, "task_struct.tasks.prev", T_TASKS + 8, 8);
        assert_member(b, "task_struct.thread.sp", T_SP, 8);
        assert_member(b, "task_struct.thread_info.cpu", TI_CPU, 4);
        assert_member(b, "task_struct.comm", T_COMM, 16);
        assert_member(b, "task_struct.__state", T_STATE, 4);
        assert_member(b, "signal_struct.thread_head", SIG_THREAD_HEAD, 16);
        assert_member(b, "printk_info.seq", INFO_SEQ, 8);               /* through a typedef and const */
        assert_member(b, "printk_ringbuffer.text_data_ring", RB_TEXT_RING, 32);
        assert_int_equal(hvp_btf_struct_size(b, "task_struct", &size), 0);
        assert_int_equal(size, T_SIZE);
        assert_int_equal(hvp_btf_struct_size(b, "list_head", &size), 0);
        assert_int_equal(size, 16);

        assert_int_equal(hvp_btf_member(b, "task_struct.nosuch", &off, NULL), -ENOENT);
        assert_non_null(strstr(hvp_last_error(), "nosuch"));
        assert_int_equal(hvp_btf_member(b, "task_struct.cpu", &off, NULL), -ENOENT);   /* new layout */
        assert_int_equal(hvp_btf_member(b, "nosuch.x", &off, NULL), -ENOENT);
        assert_int_equal(hvp_btf_member(b, "task_struct.bits", &off, NULL), -ENOTSUP);
        assert_int_equal(hvp_btf_member(b, "task_struct.pid.x", &off, NULL), -EINVAL);
        assert_int_equal(hvp_btf_member(b, "task_struct", &off, NULL), -EINVAL);
        assert_int_equal(hvp_btf_member(b, "task_struct.", &off, NULL), -EINVAL);
        assert_int_equal(hvp_btf_member(b, "pad.x", &off, NULL), -ENOENT);     /* a member is no struct */
        assert_int_equal(hvp_btf_struct_size(b, "nosuch", &size), -ENOENT);
        assert_int_equal(off, 77);                                      /* untouched on failure */
        hvp_btf_free(b);

        b = gen_btf(BTFGEN_OLD);
        assert_member(b, "task_struct.state", T_STATE, 8);
        assert_member(b, "task_struct.cpu", T_CPU_OLD, 4);
        assert_member(b, "task_struct.tasks", T_TASKS, 16);
        assert_int_equal(hvp_btf_member(b, "task_struct.thread_node", &off, NULL), -ENOENT);
        hvp_btf_free(b);
}

static void test_malformed_blobs(void **state)
{
        size_t len;
        uint8_t *raw = btfgen_raw(btfgen_build(BTFGEN_NEW), &len);
        uint8_t junk[64];
        struct hvp_btf *b = NULL;

        (void)state;
        memset(junk, 0x5a, sizeof(junk));
        assert_int_equal(hvp_btf_new(junk, sizeof(junk), &b), -EINVAL);
        assert_non_null(strstr(hvp_last_error(), "malformed BTF"));
        for (size_t cut = 0; cut < len; cut += len / 7 + 1)
                assert_int_equal(hvp_btf_new(raw, cut, &b), -EINVAL);
        /* the bound is checked before anything is read */
        assert_int_equal(hvp_btf_new(raw, (size_t)HVP_BTF_MAX_SIZE + 1, &b), -E2BIG);
        assert_null(b);
        /* the string section's last byte not a NUL */
        raw[len - 1] = 'x';
        assert_int_equal(hvp_btf_new(raw, len, &b), -EINVAL);
        assert_null(b);
        free(raw);
}

/*
 * A struct "evil" whose last member is patched in the raw bytes: its type id out of
 * range, or its name offset out of range; and a typedef loop. libbpf accepts these
 * (it checks sizes, not references); lookups must refuse them without a crash.
 */
static uint8_t *evil_blob(size_t *ret_len, int *ret_loop_struct)
{
        struct btf *w = btfgen_build(BTFGEN_NEW);
        int ulong = btf__find_by_name_kind(w, "long unsigned int", BTF_KIND_INT);
        int a, loop;

        btfgen_check(a = btf__add_typedef(w, "loop_a", btf__type_cnt(w) + 1));
        btfgen_check(btf__add_typedef(w, "loop_b", a));
        btfgen_check(loop = btf__add_struct(w, "loopy", 8));
        btfgen_check(btf__add_field(w, "l", a, 0, 0));
        btfgen_check(btf__add_struct(w, "evil", 16));
        btfgen_check(btf__add_field(w, "ok", ulong, 0, 0));
        btfgen_check(btf__add_field(w, "m", ulong, 64, 0));
        *ret_loop_struct = loop;
        return btfgen_raw(w, ret_len);
}

static void test_hostile_references(void **state)
{
        size_t len;
        int loop;
        uint8_t *raw = evil_blob(&len, &loop);
        const struct btf_header *h = (const void *)raw;
        uint8_t *last_member = raw + h->hdr_len + h->type_off + h->type_len - 12;
        struct hvp_btf *b = NULL;
        uint64_t off = 0, size = 0;

        (void)state;
        write_seed("btf", "loop-typedef", 0, false, raw, len);
        assert_int_equal(hvp_btf_new(raw, len, &b), 0);
        assert_member(b, "evil.m", 8, 8);
        assert_int_equal(hvp_btf_member(b, "loopy.l", &off, &size), -EINVAL);  /* size of a typedef loop */
        assert_int_equal(hvp_btf_member(b, "loopy.l.x", &off, NULL), -EINVAL);
        hvp_btf_free(b);

        memcpy(last_member + 4, &(uint32_t){ 0xfffff0 }, 4);          /* type id out of range */
        assert_int_equal(hvp_btf_new(raw, len, &b), 0);
        assert_int_equal(hvp_btf_member(b, "evil.m", &off, &size), -EINVAL);
        assert_int_equal(hvp_btf_member(b, "evil.m.x", &off, NULL), -EINVAL);
        assert_int_equal(hvp_btf_member(b, "evil.ok", &off, NULL), 0);
        hvp_btf_free(b);

        memcpy(last_member, &(uint32_t){ 0x7ffffff0 }, 4);            /* name offset out of range */
        assert_int_equal(hvp_btf_new(raw, len, &b), 0);
        assert_int_equal(hvp_btf_member(b, "evil.m", &off, NULL), -ENOENT);
        hvp_btf_free(b);
        free(raw);
}

/* ---- hvp_btf_load: a small kernel image (kallsyms-gen.h) with the blob above it --------- */

#define KTEXT 0xffffffff81000000ull
#define KBTF (KTEXT + 0x500000)

struct kimage {
        struct ksgen g;
        const uint8_t *btf;
        size_t btf_len;
};

static int kimage_read(void *ctx, uint64_t va, void *buf, size_t len)
{
        struct kimage *ki = ctx;

        if (va >= KBTF && va - KBTF <= ki->btf_len && len <= ki->btf_len - (va - KBTF)) {
                memcpy(buf, ki->btf + (va - KBTF), len);
                return 0;
        }
        if (va < ki->g.va || va - ki->g.va > ki->g.size || len > ki->g.size - (va - ki->g.va))
                return -EFAULT;
        memcpy(buf, ki->g.data + (va - ki->g.va), len);
        return 0;
}

/* A kernel whose kallsyms has __start_BTF/__stop_BTF at KBTF, KBTF + stop_off (none if stop_off is 0). */
static int load_from_image(const void *blob, size_t len, uint64_t stop_off, struct hvp_btf **ret)
{
        struct ksgen_sym syms[8];
        struct ksgen_opts o = { .layout = KSGEN_SEQS, .va = KTEXT, .tables_off = 0x1000, .tail = 64 };
        struct kimage ki = { .btf = blob, .btf_len = len };
        struct hvp_kmem km = { .read = kimage_read, .ctx = &ki };
        struct hvp_kernel k = { 0 };
        size_t n = 0;
        int r;

        syms[n++] = (struct ksgen_sym){ KTEXT, 'T', "_text", false };
        syms[n++] = (struct ksgen_sym){ KTEXT + 0x40, 'T', "_stext", false };
        syms[n++] = (struct ksgen_sym){ KTEXT + 0x100, 'T', "do_0123456789", false }; /* the digits anchor */
        syms[n++] = (struct ksgen_sym){ KTEXT + 0x300000, 'T', "_etext", false };
        if (stop_off) {
                syms[n++] = (struct ksgen_sym){ KBTF, 'R', "__start_BTF", false };
                syms[n++] = (struct ksgen_sym){ KBTF + stop_off, 'R', "__stop_BTF", false };
        }
        ksgen_build(syms, n, &o, &ki.g);
        km.start = KTEXT;
        km.end = KTEXT + ki.g.size;
        r = hvp_kallsyms_decode(&km, KTEXT, &k.symtab);
        if (r != 0)
                fail_msg("kallsyms: %d %s", r, hvp_last_error());
        r = hvp_btf_load(&km, &k, ret);
        hvp_symtab_free(k.symtab);
        ksgen_free(&ki.g);
        return r;
}

static void test_load_from_kernel_image(void **state)
{
        size_t len;
        void *raw = btfgen_raw(btfgen_build(BTFGEN_NEW), &len);
        struct hvp_btf *b = NULL;
        uint64_t off = 0;

        (void)state;
        assert_int_equal(load_from_image(raw, len, len, &b), 0);
        assert_int_equal(hvp_btf_size(b), len);
        assert_int_equal(hvp_btf_member(b, "task_struct.thread.sp", &off, NULL), 0);
        assert_int_equal(off, T_SP);
        hvp_btf_free(b);
        b = NULL;

        /* No BTF in the kernel: a clear -ENOENT. */
        assert_int_equal(load_from_image(raw, len, 0, &b), -ENOENT);
        assert_non_null(strstr(hvp_last_error(), "has no BTF"));
        assert_non_null(strstr(hvp_last_error(), "CONFIG_DEBUG_INFO_BTF"));
        /* Past the bound: refused before anything is read or allocated. */
        assert_int_equal(load_from_image(raw, len, (uint64_t)HVP_BTF_MAX_SIZE + 1, &b), -E2BIG);
        assert_non_null(strstr(hvp_last_error(), "64 MiB"));
        /* The blob runs past what is mapped. */
        assert_int_equal(load_from_image(raw, len, len + 4096, &b), -EFAULT);
        assert_non_null(strstr(hvp_last_error(), "reading the guest kernel's BTF"));
        /* Bytes that are not BTF. */
        memset(raw, 0, 8);
        assert_int_equal(load_from_image(raw, len, len, &b), -EINVAL);
        assert_non_null(strstr(hvp_last_error(), "magic"));
        assert_null(b);
        free(raw);
}

/* A kernel image with boot_params at KBTF and kernel_locked_down at KBTF + 0x1000. */
static int boot_security_of(const uint8_t *page, bool with_syms, const struct hvp_btf *btf,
                            struct hvp_boot_security *ret)
{
        struct ksgen_sym syms[8];
        struct ksgen_opts o = { .layout = KSGEN_SEQS, .va = KTEXT, .tables_off = 0x1000, .tail = 64 };
        struct kimage ki = { .btf = page, .btf_len = 0x2000 };
        struct hvp_kmem km = { .read = kimage_read, .ctx = &ki };
        struct hvp_kernel k = { 0 };
        size_t n = 0;
        int r;

        syms[n++] = (struct ksgen_sym){ KTEXT, 'T', "_text", false };
        syms[n++] = (struct ksgen_sym){ KTEXT + 0x40, 'T', "_stext", false };
        syms[n++] = (struct ksgen_sym){ KTEXT + 0x100, 'T', "do_0123456789", false };
        syms[n++] = (struct ksgen_sym){ KTEXT + 0x300000, 'T', "_etext", false };
        if (with_syms) {
                syms[n++] = (struct ksgen_sym){ KBTF, 'B', "boot_params", false };
                syms[n++] = (struct ksgen_sym){ KBTF + 0x1000, 'b', "kernel_locked_down", false };
        }
        ksgen_build(syms, n, &o, &ki.g);
        km.start = KTEXT;
        km.end = KTEXT + ki.g.size;
        r = hvp_kallsyms_decode(&km, KTEXT, &k.symtab);
        if (r != 0)
                fail_msg("kallsyms: %d %s", r, hvp_last_error());
        r = hvp_linux_boot_security(&km, &k, btf, ret);
        hvp_symtab_free(k.symtab);
        ksgen_free(&ki.g);
        return r;
}

static void test_boot_security(void **state)
{
        uint8_t *page = calloc(1, 0x2000);
        struct hvp_boot_security sec;
        struct hvp_btf *btf = NULL;
        struct btf *w = btf__new_empty();
        size_t len;
        void *raw;

        (void)state;
        assert_non_null(page);
        btfgen_check(btf__add_enum(w, "lockdown_reason", 4));
        btfgen_check(btf__add_enum_value(w, "LOCKDOWN_NONE", 0));
        btfgen_check(btf__add_enum_value(w, "LOCKDOWN_INTEGRITY_MAX", 21));
        btfgen_check(btf__add_enum_value(w, "LOCKDOWN_CONFIDENTIALITY_MAX", 27));
        raw = btfgen_raw(w, &len);
        assert_int_equal(hvp_btf_new(raw, len, &btf), 0);
        free(raw);
        {
                int64_t v = 0;

                assert_int_equal(hvp_btf_enum_value(btf, "LOCKDOWN_CONFIDENTIALITY_MAX", &v), 0);
                assert_int_equal(v, 27);
                assert_int_equal(hvp_btf_enum_value(btf, "LOCKDOWN_NOSUCH", &v), -ENOENT);
        }

        page[0x1ec] = 3;                        /* efi_secureboot_mode_enabled */
        memcpy(page + 0x1c0, "EL64", 4);
        assert_int_equal(boot_security_of(page, true, btf, &sec), 0);
        assert_int_equal(sec.secure_boot, HVP_SECURE_BOOT_ENABLED);
        assert_true(sec.efi_boot);
        assert_int_equal(sec.lockdown, HVP_LOCKDOWN_NONE);
        assert_string_equal(hvp_secure_boot_name(sec.secure_boot), "enabled");

        page[0x1ec] = 2;
        page[0x1000] = 21;
        assert_int_equal(boot_security_of(page, true, btf, &sec), 0);
        assert_int_equal(sec.secure_boot, HVP_SECURE_BOOT_DISABLED);
        assert_int_equal(sec.lockdown, HVP_LOCKDOWN_INTEGRITY);
        assert_int_equal(sec.lockdown_raw, 21);
        assert_string_equal(hvp_lockdown_name(sec.lockdown), "integrity");
        page[0x1000] = 27;
        assert_int_equal(boot_security_of(page, true, btf, &sec), 0);
        assert_int_equal(sec.lockdown, HVP_LOCKDOWN_CONFIDENTIALITY);
        assert_int_equal(boot_security_of(page, true, NULL, &sec), 0);        /* no BTF to name it */
        assert_int_equal(sec.lockdown, HVP_LOCKDOWN_OTHER);
        page[0x1000] = 5;
        assert_int_equal(boot_security_of(page, true, btf, &sec), 0);
        assert_int_equal(sec.lockdown, HVP_LOCKDOWN_OTHER);

        page[0x1ec] = 0;                        /* not booted through the EFI stub */
        memset(page + 0x1c0, 0, 4);
        assert_int_equal(boot_security_of(page, true, btf, &sec), 0);
        assert_int_equal(sec.secure_boot, HVP_SECURE_BOOT_UNSET);
        assert_false(sec.efi_boot);
        page[0x1ec] = 200;                      /* garbage */
        assert_int_equal(boot_security_of(page, true, btf, &sec), 0);
        assert_int_equal(sec.secure_boot, HVP_SECURE_BOOT_UNKNOWN);

        assert_int_equal(boot_security_of(page, false, btf, &sec), 0);
        assert_int_equal(sec.secure_boot, HVP_SECURE_BOOT_NO_SYMBOL);
        assert_int_equal(sec.lockdown, HVP_LOCKDOWN_UNSUPPORTED);
        hvp_btf_free(btf);
        free(page);
}

/* ---- tasks ------------------------------------------------------------------ */

struct tasks_fixture {
        struct btfgen_mem m;
        enum btfgen_layout layout;
        uint64_t init, p1, p2, p3, t1, t2;      /* task addresses */
};

#define TASK_VA(i) (BASE + (uint64_t)(i) * 0x400)
#define SIG_VA(i) (BASE + 0x8000 + (uint64_t)(i) * 0x100)
#define SEED_TASKS_SIZE (0x8000 + 6 * 0x100)

static void link_thread(struct tasks_fixture *f, uint64_t leader, uint64_t sig, uint64_t task)
{
        if (f->layout == BTFGEN_NEW)
                btfgen_list_add_tail(&f->m, sig + SIG_THREAD_HEAD, task + T_THREAD_NODE);
        else if (task != leader)
                btfgen_list_add_tail(&f->m, leader + T_THREAD_GROUP, task + T_THREAD_GROUP);
}

static void make_process(struct tasks_fixture *f, unsigned slot, int pid, const char *comm, uint32_t state, int cpu)
{
        uint64_t t = TASK_VA(slot), sig = SIG_VA(slot);

        btfgen_task(&f->m, f->layout, t, pid, pid, comm, state, cpu, sig);
        btfgen_list_init(&f->m, sig + SIG_THREAD_HEAD);
        btfgen_list_init(&f->m, t + T_THREAD_GROUP);
        btfgen_list_init(&f->m, t + T_THREAD_NODE);
        link_thread(f, t, sig, t);
        if (slot != 0)
                btfgen_list_add_tail(&f->m, TASK_VA(0) + T_TASKS, t + T_TASKS);
}

/* init_task (0), 1 init, 2 kthreadd, 100 "app" with threads 101 and 102. */
static struct tasks_fixture *tasks_fixture(enum btfgen_layout layout)
{
        struct tasks_fixture *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        f->layout = layout;
        f->m = (struct btfgen_mem){ calloc(1, MEM_SIZE), MEM_SIZE, BASE, 0 };
        assert_non_null(f->m.data);
        btfgen_list_init(&f->m, TASK_VA(0) + T_TASKS);
        make_process(f, 0, 0, "swapper/0", 0, 0);
        make_process(f, 1, 1, "init", 1, 1);
        make_process(f, 2, 2, "kthreadd", 1, 0);
        make_process(f, 3, 100, "app", 0x402, 1);
        f->init = TASK_VA(0);
        f->p1 = TASK_VA(1);
        f->p2 = TASK_VA(2);
        f->p3 = TASK_VA(3);
        f->t1 = TASK_VA(4);
        f->t2 = TASK_VA(5);
        btfgen_task(&f->m, layout, f->t1, 101, 100, "app-worker", 2, 0, SIG_VA(3));
        btfgen_task(&f->m, layout, f->t2, 102, 100, "app-io", 0, 1, SIG_VA(3));
        btfgen_put(&f->m, f->t2 + T_ON_CPU, 1, 4);
        btfgen_put(&f->m, f->p2 + T_EXIT_STATE, 0, 4);
        link_thread(f, f->p3, SIG_VA(3), f->t1);
        link_thread(f, f->p3, SIG_VA(3), f->t2);
        return f;
}

static void tasks_fixture_free(struct tasks_fixture *f)
{
        free(f->m.data);
        free(f);
}

static int walk(struct tasks_fixture *f, const struct hvp_btf *b, size_t max, struct hvp_task **ret, size_t *n)
{
        struct hvp_kmem km = { .read = btfgen_mem_read, .ctx = &f->m };

        f->m.reads = 0;
        return hvp_linux_tasks(&km, b, f->init, max, ret, n);
}

static void check_full_walk(enum btfgen_layout layout)
{
        static const struct {
                int pid, tgid;
                const char *comm;
                char state;
                int cpu;
        } want[] = {
                { 0, 0, "swapper/0", 'R', 0 }, { 1, 1, "init", 'S', 1 }, { 2, 2, "kthreadd", 'S', 0 },
                { 100, 100, "app", 'I', 1 }, { 101, 100, "app-worker", 'D', 0 }, { 102, 100, "app-io", 'R', 1 },
        };
        struct tasks_fixture *f = tasks_fixture(layout);
        struct hvp_btf *b = gen_btf(layout);
        struct hvp_task *t = NULL;
        size_t n = 0;

        write_seed("tasks", layout == BTFGEN_NEW ? "new" : "old", (uint8_t)layout, true, f->m.data, SEED_TASKS_SIZE);
        assert_int_equal(walk(f, b, 0, &t, &n), 0);
        assert_int_equal(n, HVP_ARRAY_SIZE_T(want));
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(t[i].pid, want[i].pid);
                assert_int_equal(t[i].tgid, want[i].tgid);
                assert_string_equal(t[i].comm, want[i].comm);
                assert_int_equal(t[i].state_char, want[i].state);
                assert_int_equal(t[i].cpu, want[i].cpu);
                assert_int_equal(t[i].stack, 0xffffc90000000000ull + (uint64_t)want[i].pid * 0x4000);
                assert_int_equal(t[i].sp, t[i].stack + 0x3e00);
                assert_int_equal(t[i].on_cpu, want[i].pid == 102);
        }
        assert_int_equal(t[0].addr, f->init);
        assert_int_equal(t[4].addr, f->t1);
        free(t);
        hvp_btf_free(b);
        tasks_fixture_free(f);
}

static void test_tasks_new_layout(void **state)
{
        (void)state;
        check_full_walk(BTFGEN_NEW);
}

static void test_tasks_old_layout(void **state)
{
        (void)state;
        check_full_walk(BTFGEN_OLD);
}

static void expect_walk_error(struct tasks_fixture *f, const struct hvp_btf *b, size_t max, int err, const char *why)
{
        struct hvp_task *t = (void *)0x1;
        size_t n = 12345;
        int r = walk(f, b, max, &t, &n);

        if (r != err || !strstr(hvp_last_error(), why))
                fail_msg("walk: %d (%s), want %d (%s)", r, hvp_last_error(), err, why);
        assert_ptr_equal(t, (void *)0x1);               /* untouched */
        assert_int_equal(n, 12345);
        assert_true(f->m.reads < 200);                  /* it stopped: no hang */
}

static void test_tasks_hostile(void **state)
{
        struct hvp_btf *b = gen_btf(BTFGEN_NEW), *old = gen_btf(BTFGEN_OLD);
        struct tasks_fixture *f;

        (void)state;
        /* A loop: app's next goes back to kthreadd instead of the head. */
        f = tasks_fixture(BTFGEN_NEW);
        btfgen_put(&f->m, f->p3 + T_TASKS, f->p2 + T_TASKS, 8);
        expect_walk_error(f, b, 0, -ELOOP, "twice");
        /*
         * With kthreadd's prev made to agree with the loop, init's next no longer does:
         * every node has one prev, so a loop that does not pass through the head always
         * breaks a back pointer somewhere.
         */
        btfgen_put(&f->m, f->p2 + T_TASKS + 8, f->p3 + T_TASKS, 8);
        expect_walk_error(f, b, 0, -EINVAL, "points back");
        tasks_fixture_free(f);

        /* A task on two lists: kthreadd's thread node moved into app's thread list. */
        f = tasks_fixture(BTFGEN_NEW);
        btfgen_list_init(&f->m, SIG_VA(2) + SIG_THREAD_HEAD);
        btfgen_list_add_tail(&f->m, SIG_VA(3) + SIG_THREAD_HEAD, f->p2 + T_THREAD_NODE);
        write_seed("tasks", "on-two-lists", BTFGEN_NEW, true, f->m.data, SEED_TASKS_SIZE);
        expect_walk_error(f, b, 0, -ELOOP, "twice");
        tasks_fixture_free(f);

        /* A thread ring (old layout) that never comes back: the leader's ring loops at t1<->t2. */
        f = tasks_fixture(BTFGEN_OLD);
        btfgen_put(&f->m, f->t2 + T_THREAD_GROUP, f->t1 + T_THREAD_GROUP, 8);
        btfgen_put(&f->m, f->t1 + T_THREAD_GROUP + 8, f->t2 + T_THREAD_GROUP, 8);
        expect_walk_error(f, old, 0, -EINVAL, "points back");
        tasks_fixture_free(f);

        /* Outside RAM: the reader refuses, the walk ends with its error. */
        f = tasks_fixture(BTFGEN_NEW);
        btfgen_put(&f->m, f->p1 + T_TASKS, BASE + MEM_SIZE + 0x1000, 8);
        expect_walk_error(f, b, 0, -EFAULT, "reading the task_struct at 0xffff888000040fc0: Bad address");
        tasks_fixture_free(f);
        f = tasks_fixture(BTFGEN_NEW);
        btfgen_put(&f->m, f->p3 + T_SIGNAL, 0xffff888100000000ull, 8);
        expect_walk_error(f, b, 0, -EFAULT, "thread list");
        tasks_fixture_free(f);
        f = tasks_fixture(BTFGEN_NEW);
        btfgen_put(&f->m, f->init + T_TASKS, BASE - 0x10000, 8);
        expect_walk_error(f, b, 0, -EFAULT, "task_struct");
        tasks_fixture_free(f);

        /* Not a kernel address. */
        f = tasks_fixture(BTFGEN_NEW);
        btfgen_put(&f->m, f->p2 + T_TASKS, 0x1000, 8);
        expect_walk_error(f, b, 0, -EINVAL, "not a kernel address");
        tasks_fixture_free(f);

        /* The bound. */
        f = tasks_fixture(BTFGEN_NEW);
        expect_walk_error(f, b, 5, -E2BIG, "more than 5 tasks");
        tasks_fixture_free(f);

        /* A BTF without the task structs. */
        f = tasks_fixture(BTFGEN_NEW);
        {
                struct btf *w = btf__new_empty();
                struct hvp_btf *empty = NULL;
                size_t len;
                void *raw;

                btfgen_check(btf__add_int(w, "int", 4, BTF_INT_SIGNED));
                raw = btfgen_raw(w, &len);
                assert_int_equal(hvp_btf_new(raw, len, &empty), 0);
                free(raw);
                expect_walk_error(f, empty, 0, -ENOENT, "no struct task_struct");
                hvp_btf_free(empty);
        }
        tasks_fixture_free(f);
        hvp_btf_free(b);
        hvp_btf_free(old);
}

#define PCPU_OFFSETS (BASE + 0xa000)
#define RQ_VA(cpu) (BASE + 0xb000 + (uint64_t)(cpu) * 0x100)
#define RUNQUEUES 0x31c40ull                    /* the per-cpu offset of runqueues */

static void test_idle_tasks(void **state)
{
        struct tasks_fixture *f = tasks_fixture(BTFGEN_NEW);
        struct hvp_btf *b = gen_btf(BTFGEN_NEW);
        struct hvp_kmem km = { .read = btfgen_mem_read, .ctx = &f->m };
        struct hvp_task *t = NULL;
        size_t n = 0;

        (void)state;
        for (unsigned cpu = 0; cpu < 3; cpu++) {
                btfgen_put(&f->m, PCPU_OFFSETS + 8 * cpu, RQ_VA(cpu) - RUNQUEUES, 8);
                btfgen_put(&f->m, RQ_VA(cpu) + RQ_IDLE, cpu ? TASK_VA(5 + cpu) : f->init, 8);
                if (cpu) {
                        char comm[16];

                        snprintf(comm, sizeof(comm), "swapper/%u", cpu);
                        btfgen_task(&f->m, BTFGEN_NEW, TASK_VA(5 + cpu), 0, 0, comm, 0, (int)cpu, SIG_VA(0));
                }
        }
        assert_int_equal(hvp_linux_idle_tasks(&km, b, RUNQUEUES, PCPU_OFFSETS, 3, f->init, &t, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(t[0].comm, "swapper/1");
        assert_int_equal(t[0].cpu, 1);
        assert_int_equal(t[1].addr, TASK_VA(7));
        assert_int_equal(t[1].pid, 0);
        free(t);
        t = NULL;
        assert_int_equal(hvp_linux_idle_tasks(&km, b, RUNQUEUES, PCPU_OFFSETS, 1, f->init, &t, &n), 0);
        assert_int_equal(n, 0);
        free(t);

        t = (void *)0x1;
        assert_int_equal(hvp_linux_idle_tasks(&km, b, RUNQUEUES, PCPU_OFFSETS, HVP_TASKS_MAX_CPUS + 1, f->init, &t,
                                              &n), -E2BIG);
        btfgen_put(&f->m, RQ_VA(2) + RQ_IDLE, TASK_VA(6), 8);          /* two CPUs, one idle task */
        assert_int_equal(hvp_linux_idle_tasks(&km, b, RUNQUEUES, PCPU_OFFSETS, 3, f->init, &t, &n), -ELOOP);
        btfgen_put(&f->m, RQ_VA(2) + RQ_IDLE, f->init, 8);             /* CPU 2 runs init_task's: a loop too */
        assert_int_equal(hvp_linux_idle_tasks(&km, b, RUNQUEUES, PCPU_OFFSETS, 3, f->init, &t, &n), -ELOOP);
        btfgen_put(&f->m, RQ_VA(2) + RQ_IDLE, 0, 8);
        assert_int_equal(hvp_linux_idle_tasks(&km, b, RUNQUEUES, PCPU_OFFSETS, 3, f->init, &t, &n), -EINVAL);
        btfgen_put(&f->m, PCPU_OFFSETS + 16, 0x7000000000000000ull, 8);  /* a runqueue outside RAM */
        assert_int_equal(hvp_linux_idle_tasks(&km, b, RUNQUEUES, PCPU_OFFSETS, 3, f->init, &t, &n), -EFAULT);
        assert_ptr_equal(t, (void *)0x1);
        hvp_btf_free(b);
        tasks_fixture_free(f);
}

static void test_state_char(void **state)
{
        (void)state;
        assert_int_equal(hvp_task_state_char(0, 0), 'R');
        assert_int_equal(hvp_task_state_char(1, 0), 'S');
        assert_int_equal(hvp_task_state_char(2, 0), 'D');
        assert_int_equal(hvp_task_state_char(0x102, 0), 'D');          /* TASK_KILLABLE */
        assert_int_equal(hvp_task_state_char(0x402, 0), 'I');          /* TASK_IDLE */
        assert_int_equal(hvp_task_state_char(4, 0), 'T');
        assert_int_equal(hvp_task_state_char(8, 0), 't');
        assert_int_equal(hvp_task_state_char(0x40, 0), 'P');
        assert_int_equal(hvp_task_state_char(0x1000, 0), 'D');         /* TASK_RTLOCK_WAIT */
        assert_int_equal(hvp_task_state_char(0, 0x20), 'Z');
        assert_int_equal(hvp_task_state_char(0x80, 0x10), 'X');
}

/* ---- the kernel log ------------------------------------------------------------ */

#define PRB_VAR (BASE + 0x100)
#define RB_VA (BASE + 0x200)
#define DESCS_VA (BASE + 0x1000)
#define INFOS_VA (BASE + 0x2000)
#define DATA_VA (BASE + 0x4000)
#define COUNT_BITS 4
#define SIZE_BITS 8
#define DSIZE (1u << SIZE_BITS)
#define SV(state, id) (((uint64_t)(state) << 62) | (id))

struct klog_fixture {
        struct btfgen_mem m;
        uint64_t lpos;          /* next free logical position */
};

static struct klog_fixture *klog_fixture(uint64_t tail_id, uint64_t head_id)
{
        struct klog_fixture *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        f->m = (struct btfgen_mem){ calloc(1, MEM_SIZE), MEM_SIZE, BASE, 0 };
        assert_non_null(f->m.data);
        btfgen_put(&f->m, PRB_VAR, RB_VA, 8);
        btfgen_put(&f->m, RB_VA + RB_DESC_RING + DR_COUNT_BITS, COUNT_BITS, 4);
        btfgen_put(&f->m, RB_VA + RB_DESC_RING + DR_DESCS, DESCS_VA, 8);
        btfgen_put(&f->m, RB_VA + RB_DESC_RING + DR_INFOS, INFOS_VA, 8);
        btfgen_put(&f->m, RB_VA + RB_DESC_RING + DR_HEAD_ID, head_id, 8);
        btfgen_put(&f->m, RB_VA + RB_DESC_RING + DR_TAIL_ID, tail_id, 8);
        btfgen_put(&f->m, RB_VA + RB_TEXT_RING + TR_SIZE_BITS, SIZE_BITS, 4);
        btfgen_put(&f->m, RB_VA + RB_TEXT_RING + TR_DATA, DATA_VA, 8);
        return f;
}

/* A record: its block at lpos begin (NO_LPOS 3 for none), text written into the ring. */
static void klog_record(struct klog_fixture *f, uint64_t id, unsigned state, uint64_t begin, uint64_t block_id,
                        const char *text, uint64_t ts, unsigned level)
{
        uint64_t d = DESCS_VA + (id & ((1u << COUNT_BITS) - 1)) * DESC_SIZE;
        uint64_t in = INFOS_VA + (id & ((1u << COUNT_BITS) - 1)) * INFO_SIZE;
        size_t len = strlen(text);
        uint64_t next = 3;

        if (begin != 3) {
                uint64_t size = (8 + len + 7) & ~7ull, off = begin & (DSIZE - 1);

                if (off + size > DSIZE) {       /* wraps: the block starts the ring */
                        off = 0;
                        next = ((begin >> SIZE_BITS) + 1) * DSIZE + size;
                } else {
                        next = begin + size;
                }
                btfgen_put(&f->m, DATA_VA + off, block_id, 8);
                memcpy(f->m.data + (DATA_VA - BASE) + off + 8, text, len);
                f->lpos = next;
        }
        btfgen_put(&f->m, d + DESC_SV, SV(state, id), 8);
        btfgen_put(&f->m, d + DESC_LPOS, begin, 8);
        btfgen_put(&f->m, d + DESC_LPOS + 8, next, 8);
        btfgen_put(&f->m, in + INFO_SEQ, id - 16, 8);
        btfgen_put(&f->m, in + INFO_TS, ts, 8);
        btfgen_put(&f->m, in + INFO_TEXT_LEN, len, 2);
        btfgen_put(&f->m, in + INFO_FACILITY, 0, 1);
        btfgen_put(&f->m, in + INFO_FLAGS_LEVEL, (uint64_t)(level << 5 | 0x4), 1);
}

static int klog_read(struct klog_fixture *f, struct hvp_klog **ret)
{
        struct hvp_btf *b = gen_btf(BTFGEN_NEW);
        struct hvp_kmem km = { .read = btfgen_mem_read, .ctx = &f->m };
        int r = hvp_linux_klog(&km, b, PRB_VAR, ret);

        hvp_btf_free(b);
        return r;
}

static void test_klog_records(void **state)
{
        struct klog_fixture *f = klog_fixture(16, 21);
        struct hvp_klog *log = NULL;

        (void)state;
        klog_record(f, 16, 2, 64, 16, "Linux version 6.1.0", 0, 5);   /* [0, 64) for the wrapped one */
        klog_record(f, 17, 2, f->lpos, 17, "two\nlines", 1234567890, 4);
        klog_record(f, 18, 1, f->lpos, 18, "committed, not finalized", 2, 6);
        klog_record(f, 19, 2, 3, 0, "", 3000, 6);                              /* no data */
        klog_record(f, 20, 2, f->lpos, 99, "overwritten since", 4, 6);         /* block id is not 20 */
        klog_record(f, 21, 2, DSIZE + DSIZE - 16, 21, "wrapped to the ring's start", 5000000000ull, 3);
        write_seed("klog", "records", 0, false, f->m.data, DATA_VA - BASE + DSIZE);
        assert_int_equal(klog_read(f, &log), 0);
        assert_int_equal(log->count, 4);
        assert_int_equal(log->dropped, 2);
        assert_string_equal(log->records[0].text, "Linux version 6.1.0");
        assert_int_equal(log->records[0].level, 5);
        assert_int_equal(log->records[0].seq, 0);
        assert_string_equal(log->records[1].text, "two\nlines");
        assert_int_equal(log->records[1].text_len, 9);
        assert_int_equal(log->records[1].ts_nsec, 1234567890);
        assert_int_equal(log->records[1].level, 4);
        assert_string_equal(log->records[2].text, "");
        assert_int_equal(log->records[2].seq, 3);
        assert_string_equal(log->records[3].text, "wrapped to the ring's start");
        assert_int_equal(log->records[3].seq, 5);
        assert_int_equal(log->records[3].level, 3);
        hvp_klog_free(log);
        free(f->m.data);
        free(f);
}

static void expect_klog_error(struct klog_fixture *f, int err, const char *why)
{
        struct hvp_klog *log = (void *)0x1;
        int r = klog_read(f, &log);

        if (r != err || !strstr(hvp_last_error(), why))
                fail_msg("klog: %d (%s), want %d (%s)", r, hvp_last_error(), err, why);
        assert_ptr_equal(log, (void *)0x1);
}

static void test_klog_hostile(void **state)
{
        struct klog_fixture *f = klog_fixture(16, 16);
        struct hvp_klog *log = NULL;

        (void)state;
        klog_record(f, 16, 2, 0, 16, "ok", 0, 6);
        btfgen_put(&f->m, RB_VA + RB_DESC_RING + DR_COUNT_BITS, 30, 4);
        expect_klog_error(f, -E2BIG, "descriptors");
        btfgen_put(&f->m, RB_VA + RB_DESC_RING + DR_COUNT_BITS, 0xffffffff, 4);
        expect_klog_error(f, -E2BIG, "descriptors");
        btfgen_put(&f->m, RB_VA + RB_DESC_RING + DR_COUNT_BITS, COUNT_BITS, 4);
        btfgen_put(&f->m, RB_VA + RB_TEXT_RING + TR_SIZE_BITS, 26, 4);
        expect_klog_error(f, -E2BIG, "data ring");
        btfgen_put(&f->m, RB_VA + RB_TEXT_RING + TR_SIZE_BITS, 2, 4);
        expect_klog_error(f, -EINVAL, "data ring");
        btfgen_put(&f->m, RB_VA + RB_TEXT_RING + TR_SIZE_BITS, SIZE_BITS, 4);
        btfgen_put(&f->m, RB_VA + RB_DESC_RING + DR_HEAD_ID, 16 + 16, 4);      /* 17 ids, 16 descriptors */
        expect_klog_error(f, -EINVAL, "span more than");
        btfgen_put(&f->m, RB_VA + RB_DESC_RING + DR_HEAD_ID, 15, 4);           /* head before tail: wraps */
        expect_klog_error(f, -EINVAL, "span more than");
        btfgen_put(&f->m, RB_VA + RB_DESC_RING + DR_HEAD_ID, 16, 4);
        btfgen_put(&f->m, RB_VA + RB_TEXT_RING + TR_DATA, BASE + MEM_SIZE - 16, 8);
        expect_klog_error(f, -EFAULT, "data ring");
        btfgen_put(&f->m, RB_VA + RB_TEXT_RING + TR_DATA, DATA_VA, 8);
        btfgen_put(&f->m, PRB_VAR, 0xffff888100000000ull, 8);
        expect_klog_error(f, -EFAULT, "ring buffer");
        btfgen_put(&f->m, PRB_VAR, RB_VA, 8);

        /* A BTF that puts a field outside its struct (and past what is read of it): refused. */
        {
                size_t len;
                void *raw = btfgen_raw(btfgen_build_opts(BTFGEN_NEW, 1u << 20), &len);
                struct hvp_btf *bad = NULL;
                struct hvp_kmem km = { .read = btfgen_mem_read, .ctx = &f->m };

                assert_int_equal(hvp_btf_new(raw, len, &bad), 0);
                free(raw);
                log = (void *)0x1;
                assert_int_equal(hvp_linux_klog(&km, bad, PRB_VAR, &log), -EINVAL);
                assert_non_null(strstr(hvp_last_error(), "layout"));
                hvp_btf_free(bad);
                log = NULL;
        }

        /* A text length past its block, and blocks whose lpos make no sense: dropped. */
        assert_int_equal(klog_read(f, &log), 0);
        assert_int_equal(log->count, 1);
        hvp_klog_free(log);
        btfgen_put(&f->m, INFOS_VA + 0 * INFO_SIZE + INFO_TEXT_LEN, 200, 2);
        assert_int_equal(klog_read(f, &log), 0);
        assert_int_equal(log->count, 0);
        assert_int_equal(log->dropped, 1);
        hvp_klog_free(log);
        btfgen_put(&f->m, INFOS_VA + INFO_TEXT_LEN, 2, 2);
        btfgen_put(&f->m, DESCS_VA + DESC_LPOS + 8, 5 * DSIZE, 8);            /* next far past begin */
        assert_int_equal(klog_read(f, &log), 0);
        assert_int_equal(log->count, 0);
        hvp_klog_free(log);
        free(f->m.data);
        free(f);
}

/* ---- the real kernel --------------------------------------------------------- */

struct real {
        char dir[4096], path[4200];
        struct vmlinux v;
        struct hvp_kernel *k;
};

static void test_real_kernel(void **state)
{
        struct real *rk = calloc(1, sizeof(*rk));
        struct hvp_kmem km;
        struct hvp_btf *b = NULL;
        struct hvp_task *t = NULL;
        struct hvp_klog *log = NULL;
        struct btf *ref;
        const char *why;
        size_t n = 0;
        uint32_t ref_size = 0;
        static const char *const paths[] = {
                "task_struct.tasks", "task_struct.pid", "task_struct.tgid", "task_struct.comm",
                "task_struct.__state", "task_struct.on_cpu", "task_struct.thread_info.cpu", "task_struct.stack",
                "task_struct.thread.sp", "task_struct.signal", "task_struct.thread_node",
                "signal_struct.thread_head", "printk_info.text_len", "prb_desc.text_blk_lpos",
        };

        (void)state;
        assert_non_null(rk);
        if (!hvp_fixture_kernel_dir(rk->dir, sizeof(rk->dir))) {
                free(rk);
                hvp_test_require(false, "no Debian kernel: set HVP_KERNEL_DIR or run images/fetch-kernel.sh");
        }
        snprintf(rk->path, sizeof(rk->path), "%s/vmlinux", rk->dir);
        why = vmlinux_open(rk->path, &rk->v);
        if (why) {
                char msg[4400];

                snprintf(msg, sizeof(msg), "%s: %s (images/fetch-kernel.sh extracts it)", rk->path, why);
                free(rk);
                hvp_test_require(false, "%s", msg);
        }
        km = vmlinux_kmem(&rk->v);
        assert_int_equal(hvp_kernel_from_kmem(&km, 0, &rk->k), 0);
        assert_int_equal(hvp_btf_load(&km, rk->k, &b), 0);

        /* The bytes between the symbols are the ELF's .BTF section, as libbpf reads it from the file. */
        ref = btf__parse_elf(rk->path, NULL);
        assert_non_null(ref);
        btf__raw_data(ref, &ref_size);
        assert_int_equal(hvp_btf_size(b), ref_size);
        assert_int_equal(hvp_btf_type_count(b), btf__type_cnt(ref));
        assert_true(hvp_btf_size(b) > (1u << 20));
        for (size_t i = 0; i < HVP_ARRAY_SIZE_T(paths); i++) {
                uint64_t off, size, ssize;
                char sname[64];

                if (hvp_btf_member(b, paths[i], &off, &size) != 0)
                        fail_msg("%s: %s", paths[i], hvp_last_error());
                snprintf(sname, sizeof(sname), "%.*s", (int)(strchr(paths[i], '.') - paths[i]), paths[i]);
                assert_int_equal(hvp_btf_struct_size(b, sname, &ssize), 0);
                assert_true(off + size <= ssize);
        }
        {
                uint64_t pid, tgid, size;

                assert_int_equal(hvp_btf_member(b, "task_struct.pid", &pid, &size), 0);
                assert_int_equal(size, 4);
                assert_int_equal(hvp_btf_member(b, "task_struct.tgid", &tgid, NULL), 0);
                assert_int_equal(tgid, pid + 4);        /* adjacent since 2.6 */
                assert_int_equal(hvp_btf_member(b, "task_struct.comm", &pid, &size), 0);
                assert_int_equal(size, 16);             /* TASK_COMM_LEN */
        }

        /* The image as linked: init_task alone on its lists, its stack init_stack. */
        assert_int_equal(hvp_linux_tasks(&km, b, hvp_symtab_lookup(rk->k->symtab, "init_task")->addr, 0, &t, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(t[0].pid, 0);
        assert_string_equal(t[0].comm, "swapper");
        assert_int_equal(t[0].state_char, 'R');
        assert_int_equal(t[0].stack, hvp_symtab_lookup(rk->k->symtab, "init_stack")->addr);
        free(t);

        /* The static ring: one descriptor, reusable (no record). */
        assert_int_equal(hvp_linux_klog(&km, b, hvp_symtab_lookup(rk->k->symtab, "prb")->addr, &log), 0);
        assert_int_equal(log->count, 0);
        assert_int_equal(log->dropped, 1);
        hvp_klog_free(log);

        btf__free(ref);
        hvp_btf_free(b);
        hvp_kernel_free(rk->k);
        vmlinux_close(&rk->v);
        free(rk);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_member_paths),
                cmocka_unit_test(test_malformed_blobs),
                cmocka_unit_test(test_hostile_references),
                cmocka_unit_test(test_load_from_kernel_image),
                cmocka_unit_test(test_boot_security),
                cmocka_unit_test(test_tasks_new_layout),
                cmocka_unit_test(test_tasks_old_layout),
                cmocka_unit_test(test_tasks_hostile),
                cmocka_unit_test(test_idle_tasks),
                cmocka_unit_test(test_state_char),
                cmocka_unit_test(test_klog_records),
                cmocka_unit_test(test_klog_hostile),
                cmocka_unit_test(test_real_kernel),
        };

        return hvp_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}

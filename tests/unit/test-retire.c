/*
 * Retired patch-area code (issue 13) on a memory-image guest: revert and cumulative
 * replace leave area code in place and record it as retired; records keep it across
 * save/load; a new boot releases it; recovery never erases area code; the planner's
 * used-range bookkeeping has no silent bound (issue 7).
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <hvpatch/apply.h>
#include <hvpatch/area.h>
#include <hvpatch/kernel.h>

#include "patcher/retire.h"

#define RAM_SIZE (64u * 1024)
#define SITE 0x1000u            /* an entry NOP, va KBASE + SITE */
#define SLACK 0x3800u           /* _etext's offset: the slack is [0x3800, 0x4000) */
#define DEV 0x8000u             /* a "device" area: 0x8000 .. 0x10000 */
#define KBASE 0xffffffff81000000ull
#define DEV_VA 0xffffffffc0000000ull

struct fixture {
        uint8_t *ram;
        struct hvp_guest *g;
        struct hvp_kernel k;
        char state_dir[64];
        struct hvp_vcpu_regs vcpu;
};

static const uint8_t nop5[5] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };
static const uint8_t jmp5[5] = { 0xe9, 0x10, 0x20, 0x30, 0x00 };

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        struct hvp_mem_region region;

        f->ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        assert_true(f->ram != MAP_FAILED);
        memcpy(f->ram + SITE, nop5, sizeof(nop5));
        memset(f->ram + SLACK, 0xcc, 0x800);
        strcpy(f->state_dir, "/tmp/hvp-test-retire-XXXXXX");
        assert_non_null(mkdtemp(f->state_dir));
        f->vcpu.rip = KBASE;
        region = (struct hvp_mem_region){ 0, RAM_SIZE, f->ram };
        assert_int_equal(hvp_guest_open_memory(&region, 1, &f->vcpu, 1, true, &f->g), 0);
        f->k.base = KBASE;
        f->k.text_end = KBASE + SLACK;
        f->k.build_id_len = 20;
        memset(f->k.build_id, 0xab, 20);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        char cmd[128];

        hvp_guest_free(f->g);
        munmap(f->ram, RAM_SIZE);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->state_dir);
        assert_int_equal(system(cmd), 0);
        free(f);
        return 0;
}

/*
 * A redirect as the planner makes it: code_len bytes of code at area offset off
 * (split at pages as add_range does), then the entry jump.
 */
static struct hvp_plan *redirect(struct fixture *f, const char *id, const char *series, unsigned seq,
                                 uint64_t area_va, uint64_t area_gpa, size_t code_len, uint8_t filler, uint8_t code)
{
        struct hvp_plan *p = hvp_plan_new();
        uint8_t old[4096], new[4096];

        assert_non_null(p);
        snprintf(p->patch_id, sizeof(p->patch_id), "%s", id);
        snprintf(p->series, sizeof(p->series), "%s", series);
        p->seq = seq;
        p->kernel_base = f->k.base;
        p->build_id_len = f->k.build_id_len;
        memcpy(p->build_id, f->k.build_id, f->k.build_id_len);
        memset(old, filler, sizeof(old));
        memset(new, code, sizeof(new));
        while (code_len > 0) {
                size_t n = 4096 - (area_va & 4095);

                n = n < code_len ? n : code_len;
                assert_int_equal(hvp_plan_add_write(p, area_va, area_gpa, old, new, n, false, true, 0), 0);
                area_va += n;
                area_gpa += n;
                code_len -= n;
        }
        assert_int_equal(hvp_plan_add_write(p, KBASE + SITE, SITE, nop5, jmp5, 5, false, false, 0), 0);
        return p;
}

static struct hvp_record *load(struct fixture *f)
{
        struct hvp_record *rec;

        assert_int_equal(hvp_record_load(f->state_dir, hvp_guest_uuid(f->g), &rec), 0);
        return rec;
}

/* Revert: the entry back, the code untouched and retired; the record keeps it over save/load. */
static void test_revert_retires(void **state)
{
        struct fixture *f = *state;
        struct hvp_plan *p = redirect(f, "p1", "s", 1, KBASE + SLACK + 0x10, SLACK + 0x10, 64, 0xcc, 0x90);
        struct hvp_apply_options o = { .state_dir = f->state_dir };
        struct hvp_commit commit = { .add = p };
        struct hvp_plan *txn;
        struct hvp_record *rec;
        uint8_t code[64];
        int st;

        memset(code, 0x90, sizeof(code));
        assert_int_equal(hvp_plan_apply(f->g, p, &commit, &o, NULL), 0);
        assert_memory_equal(f->ram + SITE, jmp5, 5);
        assert_memory_equal(f->ram + SLACK + 0x10, code, 64);

        assert_int_equal(hvp_plan_revert_txn(p, &txn), 0);
        assert_int_equal(txn->nr_writes, 1);            /* the entry only */
        assert_false(txn->writes[0].area);
        assert_memory_equal(txn->writes[0].new, nop5, 5);
        commit = (struct hvp_commit){ .remove_id = "p1" };
        assert_int_equal(hvp_plan_apply(f->g, txn, &commit, &o, NULL), 0);
        assert_memory_equal(f->ram + SITE, nop5, 5);
        assert_memory_equal(f->ram + SLACK + 0x10, code, 64);   /* still there */

        rec = load(f);
        assert_int_equal(rec->nr_entries, 0);
        assert_int_equal(rec->nr_retired, 1);
        assert_string_equal(rec->retired[0].patch_id, "p1");
        assert_int_equal(rec->retired[0].va, KBASE + SLACK + 0x10);
        assert_int_equal(rec->retired[0].gpa, SLACK + 0x10);
        assert_int_equal(rec->retired[0].len, 64);
        assert_int_equal(rec->retired[0].filler, 0xcc);
        assert_int_equal(rec->retired[0].kernel_base, KBASE);
        assert_memory_equal(rec->retired[0].code, code, 64);
        assert_true(hvp_retired_in_force(f->g, &f->k, &rec->retired[0], &st));
        assert_int_equal(st, HVP_SITE_NEW);
        hvp_record_free(rec);
        hvp_plan_free(txn);
        hvp_plan_free(p);
}

/* A cumulative replace (seq 2 over 1): the old code stays and is retired by the commit. */
static void test_replace_retires(void **state)
{
        struct fixture *f = *state;
        struct hvp_plan *p1 = redirect(f, "p-1", "s", 1, DEV_VA, DEV, 5000, 0, 0x90);
        struct hvp_plan *p2 = redirect(f, "p-2", "s", 2, DEV_VA + 5008, DEV + 5008, 32, 0, 0xc3);
        struct hvp_apply_options o = { .state_dir = f->state_dir };
        struct hvp_commit commit = { .add = p1 };
        struct hvp_record *rec;

        assert_int_equal(hvp_plan_apply(f->g, p1, &commit, &o, NULL), 0);
        assert_int_equal(p1->nr_writes, 3);             /* 5000 bytes over 2 pages, and the entry */
        commit = (struct hvp_commit){ .add = p2, .remove_id = "p-1" };
        rec = load(f);
        assert_int_equal(hvp_record_commit(rec, &commit, 0), 0);
        assert_int_equal(rec->nr_entries, 1);
        assert_string_equal(rec->entries[0].plan->patch_id, "p-2");
        assert_int_equal(rec->nr_retired, 1);           /* one range: the page split merged */
        assert_int_equal(rec->retired[0].va, DEV_VA);
        assert_int_equal(rec->retired[0].len, 5000);
        /* Idempotent: recovery may commit the same transaction twice. */
        assert_int_equal(hvp_record_retire(rec, p1), 0);
        assert_int_equal(rec->nr_retired, 1);
        hvp_record_free(rec);
        hvp_plan_free(p1);
        hvp_plan_free(p2);
}

/* A new boot releases: another base; or, in the slack, the filler back under the same base. */
static void test_release_on_new_boot(void **state)
{
        struct fixture *f = *state;
        struct hvp_plan *ps = redirect(f, "slack", "a", 1, KBASE + SLACK, SLACK, 48, 0xcc, 0x90);
        struct hvp_plan *pd = redirect(f, "dev", "b", 1, DEV_VA, DEV, 48, 0, 0x90);
        struct hvp_record *rec = calloc(1, sizeof(*rec));
        struct hvp_kernel other = f->k;
        bool changed;
        int st;

        assert_non_null(rec);
        memset(f->ram + SLACK, 0x90, 48);
        memset(f->ram + DEV, 0x90, 48);
        assert_int_equal(hvp_record_retire(rec, ps), 0);
        assert_int_equal(hvp_record_retire(rec, pd), 0);
        assert_int_equal(rec->nr_retired, 2);
        assert_true(hvp_retired_in_force(f->g, &f->k, &rec->retired[0], &st));
        assert_true(hvp_retired_in_force(f->g, &f->k, &rec->retired[1], &st));
        assert_int_equal(hvp_record_release_retired(f->g, &f->k, rec, &changed), 0);
        assert_false(changed);
        assert_int_equal(rec->nr_retired, 2);

        /* Same base, slack reloaded (nokaslr reboot): the slack range goes, the device one stays. */
        memset(f->ram + SLACK, 0xcc, 48);
        memset(f->ram + DEV, 0, 48);
        assert_false(hvp_retired_in_force(f->g, &f->k, &rec->retired[0], &st));
        assert_int_equal(st, HVP_SITE_OLD);
        assert_true(hvp_retired_in_force(f->g, &f->k, &rec->retired[1], &st));
        /* Foreign bytes in the slack: kept (something is there that we did not write). */
        f->ram[SLACK + 3] = 0x11;
        assert_true(hvp_retired_in_force(f->g, &f->k, &rec->retired[0], &st));
        assert_int_equal(st, HVP_SITE_FOREIGN);
        f->ram[SLACK + 3] = 0xcc;
        /* A proof (later: the stack check) releases too. */
        snprintf(rec->retired[1].released_by, sizeof(rec->retired[1].released_by), "test");
        assert_false(hvp_retired_in_force(f->g, &f->k, &rec->retired[1], &st));
        rec->retired[1].released_by[0] = '\0';

        /* Another KASLR base: every range of the old boot goes. */
        other.base += 0x200000;
        assert_false(hvp_retired_in_force(f->g, &other, &rec->retired[1], &st));
        assert_int_equal(hvp_record_release_retired(f->g, &other, rec, &changed), 0);
        assert_true(changed);
        assert_int_equal(rec->nr_retired, 0);
        hvp_record_free(rec);
        hvp_plan_free(ps);
        hvp_plan_free(pd);
}

/* A crash after the code landed, before the entry: recovery rolls back the entry only. */
static void test_recover_keeps_code(void **state)
{
        struct fixture *f = *state;
        struct hvp_plan *p = redirect(f, "p1", "s", 1, KBASE + SLACK, SLACK, 32, 0xcc, 0x90);
        struct hvp_apply_options o = { .state_dir = f->state_dir };
        struct hvp_commit commit = { .add = p };
        struct hvp_record *rec;
        uint8_t code[32];
        char *summary = NULL;
        int status;
        pid_t pid;

        /* The entry first would show nothing: make the code the first write, as the planner does. */
        assert_true(p->writes[0].area);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                setenv("HVPATCH_FAULT_AT", "written-1", 1);
                hvp_plan_apply(f->g, p, &commit, &o, NULL);
                _exit(0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        memset(code, 0x90, sizeof(code));
        assert_memory_equal(f->ram + SLACK, code, 32);

        assert_int_equal(hvp_recover(f->g, f->state_dir, &summary), 0);
        assert_memory_equal(f->ram + SITE, nop5, 5);    /* the entry never jumps there */
        assert_memory_equal(f->ram + SLACK, code, 32);  /* the code never erased */
        rec = load(f);
        assert_int_equal(rec->nr_entries, 0);
        assert_int_equal(rec->nr_retired, 1);
        assert_int_equal(rec->retired[0].va, KBASE + SLACK);
        assert_int_equal(rec->retired[0].len, 32);
        hvp_record_free(rec);
        free(summary);
        hvp_plan_free(p);
}

/*
 * More used ranges than the planner used to keep (1,024): every one is avoided, and
 * the room left counts them all (issue 7: no silent truncation).
 */
static void test_many_used_ranges(void **state)
{
        struct fixture *f = *state;
        struct hvp_record *rec = calloc(1, sizeof(*rec));
        struct hvp_area area = { .kind = "device", .start = DEV_VA, .gpa = DEV, .len = 0x8000, .filler = 0 };
        struct hvp_area_use *used = NULL;
        size_t n = 0, cap = 0, count = 0;
        uint64_t addr;

        assert_non_null(rec);
        /* 2,000 retired 16-byte ranges, one every 16 bytes from the area's start. */
        for (unsigned i = 0; i < 2000; i++) {
                uint8_t code[16];
                struct hvp_retired r = { .va = DEV_VA + 16 * i, .gpa = DEV + 16 * i, .len = 16, .code = code,
                                         .kernel_base = f->k.base, .build_id_len = f->k.build_id_len };

                memset(code, 0x90, sizeof(code));
                memcpy(f->ram + DEV + 16 * i, code, sizeof(code));
                memcpy(r.build_id, f->k.build_id, f->k.build_id_len);
                snprintf(r.patch_id, sizeof(r.patch_id), "p%u", i);
                assert_int_equal(hvp_record_add_retired(rec, &r), 0);
        }
        assert_int_equal(hvp_area_uses_collect(f->g, &f->k, rec, &used, &n, &cap), 0);
        assert_int_equal(n, 2000);
        assert_int_equal(hvp_area_room(&area, used, n), 0x8000 - 2000 * 16);
        assert_int_equal(hvp_area_alloc(f->g, &area, used, n, 16, 16, &addr), 0);
        assert_int_equal(addr, DEV_VA + 2000 * 16);     /* past all of them */
        for (size_t i = 0; i < n; i++)
                count += addr < used[i].start + used[i].len && used[i].start < addr + 16;
        assert_int_equal(count, 0);
        /* Full: a clear ENOSPC that says how much room is left. */
        assert_int_equal(hvp_area_alloc(f->g, &area, used, n, 0x8000 - 2000 * 16 + 1, 16, &addr), -ENOSPC);
        assert_non_null(strstr(hvp_last_error(), "768 bytes left of 32768"));
        free(used);
        hvp_record_free(rec);
}

/* Records with retired ranges survive save and load; corrupt ones are refused. */
static void test_record_json(void **state)
{
        struct fixture *f = *state;
        struct hvp_plan *p = redirect(f, "p1", "s", 1, KBASE + SLACK + 0x20, SLACK + 0x20, 40, 0xcc, 0x90);
        struct hvp_record *rec = load(f), *back;
        char path[256];
        FILE *fp;

        assert_int_equal(hvp_record_retire(rec, p), 0);
        assert_int_equal(hvp_record_save(f->state_dir, rec), 0);
        back = load(f);
        assert_int_equal(back->nr_retired, 1);
        assert_int_equal(back->retired[0].len, 40);
        assert_int_equal(back->retired[0].filler, 0xcc);
        assert_memory_equal(back->retired[0].code, rec->retired[0].code, 40);
        assert_memory_equal(back->retired[0].build_id, f->k.build_id, 20);
        hvp_record_free(back);
        hvp_record_free(rec);

        snprintf(path, sizeof(path), "%s/domains/%s.json", f->state_dir, hvp_guest_uuid(f->g));
        fp = fopen(path, "w");
        assert_non_null(fp);
        fputs("{\"applied\": [], \"retired\": [{\"patch_id\": \"x\", \"va\": \"0x1\", \"gpa\": \"0x1\", "
              "\"len\": 4, \"code\": \"9090\", \"build_id\": \"\", \"kernel_base\": \"0x0\"}]}", fp);
        fclose(fp);
        assert_int_equal(hvp_record_load(f->state_dir, hvp_guest_uuid(f->g), &back), -EINVAL);
        hvp_plan_free(p);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_revert_retires, setup, teardown),
                cmocka_unit_test_setup_teardown(test_replace_retires, setup, teardown),
                cmocka_unit_test_setup_teardown(test_release_on_new_boot, setup, teardown),
                cmocka_unit_test_setup_teardown(test_recover_keeps_code, setup, teardown),
                cmocka_unit_test_setup_teardown(test_many_used_ranges, setup, teardown),
                cmocka_unit_test_setup_teardown(test_record_json, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}

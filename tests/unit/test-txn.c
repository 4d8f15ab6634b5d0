/*
 * The pause-window transaction, records and recovery on a memory-image guest.
 * Fault injection forks a child that applies with HVPATCH_FAULT_AT set; guest
 * memory is a shared mapping, so the parent sees what the killed child wrote.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <json-c/json.h>

#include <hvpatch/apply.h>

#include "patcher/record.h"

#define RAM_SIZE (64u * 1024)
#define SITE1 0x1000u
#define SITE2 0x2ff0u

struct fixture {
        uint8_t *ram;
        struct hvp_guest *g;
        char state_dir[64];
        struct hvp_vcpu_regs vcpu;
};

static const uint8_t nop5[5] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };
static const uint8_t jmp5[5] = { 0xe9, 0x10, 0x20, 0x30, 0x00 };
static const uint8_t old8[8] = { 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x10, 0x90 };
static const uint8_t new8[8] = { 0x31, 0xc0, 0xc3, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc };

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        struct hvp_mem_region region;

        f->ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        assert_true(f->ram != MAP_FAILED);
        memcpy(f->ram + SITE1, nop5, sizeof(nop5));
        memcpy(f->ram + SITE2, old8, sizeof(old8));
        strcpy(f->state_dir, "/tmp/hvp-test-txn-XXXXXX");
        assert_non_null(mkdtemp(f->state_dir));
        f->vcpu.rip = 0xffffffff81000000ull;
        region = (struct hvp_mem_region){ 0, RAM_SIZE, f->ram };
        assert_int_equal(hvp_guest_open_memory(&region, 1, &f->vcpu, 1, true, &f->g), 0);
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

/* A two-site plan: a 5-byte entry jump and an 8-byte multi-instruction replace. */
static struct hvp_plan *make_plan(const char *id, bool rip_check)
{
        struct hvp_plan *p = hvp_plan_new();

        assert_non_null(p);
        snprintf(p->patch_id, sizeof(p->patch_id), "%s", id);
        snprintf(p->series, sizeof(p->series), "demo");
        p->seq = 1;
        assert_int_equal(hvp_plan_add_write(p, 0xffffffff81001000ull, SITE1, nop5, jmp5, 5, false, false, 0), 0);
        assert_int_equal(hvp_plan_add_write(p, 0xffffffff81002ff0ull, SITE2, old8, new8, 8, rip_check, false, 1), 0);
        return p;
}

static void test_apply_revert(void **state)
{
        struct fixture *f = *state;
        struct hvp_plan *p = make_plan("p1", true), *inv;
        struct hvp_commit commit = { .add = p };
        struct hvp_apply_options o = { .state_dir = f->state_dir };
        struct hvp_apply_report rep;
        struct hvp_record *rec;
        enum hvp_site_state st;

        assert_int_equal(hvp_plan_apply(f->g, p, &commit, &o, &rep), 0);
        assert_memory_equal(f->ram + SITE1, jmp5, 5);
        assert_memory_equal(f->ram + SITE2, new8, 8);
        assert_int_equal(rep.bytes_written, 13);
        assert_int_equal(rep.attempts, 1);
        assert_false(hvp_guest_is_paused(f->g));

        assert_int_equal(hvp_record_load(f->state_dir, hvp_guest_uuid(f->g), &rec), 0);
        assert_int_equal(rec->nr_entries, 1);
        assert_non_null(hvp_record_find(rec, "p1"));
        assert_non_null(hvp_record_find_series(rec, "demo"));
        assert_null(hvp_record_find(rec, "p2"));
        assert_int_equal(rec->entries[0].plan->nr_writes, 2);
        assert_memory_equal(rec->entries[0].plan->writes[1].old, old8, 8);
        assert_int_equal(hvp_write_state(f->g, &rec->entries[0].plan->writes[0], &st), 0);
        assert_int_equal(st, HVP_SITE_NEW);

        /* Revert: the inverse, dropping the record entry. */
        assert_int_equal(hvp_plan_inverse(rec->entries[0].plan, &inv), 0);
        commit = (struct hvp_commit){ .remove_id = "p1" };
        assert_int_equal(hvp_plan_apply(f->g, inv, &commit, &o, &rep), 0);
        assert_memory_equal(f->ram + SITE1, nop5, 5);
        assert_memory_equal(f->ram + SITE2, old8, 8);
        assert_int_equal(hvp_write_state(f->g, &rec->entries[0].plan->writes[0], &st), 0);
        assert_int_equal(st, HVP_SITE_OLD);
        hvp_record_free(rec);
        assert_int_equal(hvp_record_load(f->state_dir, hvp_guest_uuid(f->g), &rec), 0);
        assert_int_equal(rec->nr_entries, 0);
        hvp_record_free(rec);
        hvp_plan_free(inv);
        hvp_plan_free(p);
}

static void test_stale_writes_nothing(void **state)
{
        struct fixture *f = *state;
        struct hvp_plan *p = make_plan("p1", false);
        struct hvp_commit commit = { .add = p };
        struct hvp_apply_options o = { .state_dir = f->state_dir };
        uint8_t before[RAM_SIZE];

        f->ram[SITE2 + 3] ^= 0xff;              /* someone changed the second site */
        memcpy(before, f->ram, RAM_SIZE);
        assert_int_equal(hvp_plan_apply(f->g, p, &commit, &o, NULL), -ESTALE);
        assert_memory_equal(f->ram, before, RAM_SIZE);
        assert_non_null(strstr(hvp_last_error(), "changed since the plan"));
        assert_false(hvp_guest_is_paused(f->g));
        hvp_plan_free(p);
}

/* Counts the library's "retrying" messages: one per pause after the first. */
static void count_retries(enum hvp_log_level level, const char *msg, void *userdata)
{
        (void)level;
        if (strstr(msg, "a vCPU is inside a patch range; retrying"))
                ++*(unsigned *)userdata;
}

static void test_vcpu_inside_range(void **state)
{
        struct fixture *f = *state;
        struct hvp_vcpu_regs regs = { .rip = 0xffffffff81002ff3ull };  /* strictly inside site 2 */
        struct hvp_vcpu_regs at_start = { .rip = 0xffffffff81002ff0ull }; /* its first byte */
        struct hvp_mem_region region = { 0, RAM_SIZE, f->ram };
        struct hvp_apply_options o = { .state_dir = f->state_dir, .max_attempts = 3, .retry_delay_ms = 1 };
        struct hvp_plan *p = make_plan("p1", true), *q = make_plan("p1", false);
        struct hvp_commit commit = { .add = p };
        struct hvp_apply_report rep = { 0 };
        struct hvp_guest *g;
        uint8_t before[RAM_SIZE];
        unsigned retries = 0;

        assert_int_equal(hvp_guest_open_memory(&region, 1, &regs, 1, true, &g), 0);
        memcpy(before, f->ram, RAM_SIZE);
        /* The vCPU stays inside: paused and checked max_attempts times (two retries), then refused. */
        hvp_set_log_fn(count_retries, &retries);
        assert_int_equal(hvp_plan_apply(g, p, &commit, &o, &rep), -EBUSY);
        hvp_set_log_fn(NULL, NULL);
        assert_int_equal(retries, 2);
        assert_non_null(strstr(hvp_last_error(), "stayed inside a patch range over 3 attempts"));
        assert_memory_equal(f->ram, before, RAM_SIZE);
        assert_false(hvp_guest_is_paused(g));
        /* A plan without the check ignores the RIP: written on the first attempt. */
        commit.add = q;
        retries = 0;
        hvp_set_log_fn(count_retries, &retries);
        assert_int_equal(hvp_plan_apply(g, q, &commit, &o, &rep), 0);
        hvp_set_log_fn(NULL, NULL);
        assert_int_equal(retries, 0);
        assert_int_equal(rep.attempts, 1);
        assert_memory_equal(f->ram + SITE2, new8, 8);
        hvp_guest_free(g);

        /* A RIP at the first byte of a range is not inside it: the checked plan goes in at once. */
        memcpy(f->ram, before, RAM_SIZE);
        assert_int_equal(hvp_guest_open_memory(&region, 1, &at_start, 1, true, &g), 0);
        snprintf(f->state_dir + strlen(f->state_dir), sizeof(f->state_dir) - strlen(f->state_dir), "/b");
        assert_int_equal(mkdir(f->state_dir, 0700), 0);
        o.state_dir = f->state_dir;
        commit.add = p;
        hvp_set_log_fn(count_retries, &retries);
        assert_int_equal(hvp_plan_apply(g, p, &commit, &o, &rep), 0);
        hvp_set_log_fn(NULL, NULL);
        assert_int_equal(retries, 0);
        assert_int_equal(rep.attempts, 1);
        assert_memory_equal(f->ram + SITE2, new8, 8);
        *strrchr(f->state_dir, '/') = '\0';    /* teardown removes the whole tree */
        hvp_guest_free(g);
        hvp_plan_free(p);
        hvp_plan_free(q);
}

static void test_plan_bounds(void **state)
{
        struct hvp_plan *p = hvp_plan_new();
        uint8_t big[HVP_WRITE_MAX_LEN + 1] = { 0 };

        (void)state;
        assert_int_equal(hvp_plan_add_write(p, 0x1ffe, 0x1ffe, big, big, 4, false, false, 0), -EINVAL);
        assert_int_equal(hvp_plan_add_write(p, 0x1000, 0x1000, big, big, sizeof(big), false, false, 0), -E2BIG);
        assert_int_equal(hvp_plan_add_write(p, 0x1000, 0x1000, big, big, 0, false, false, 0), -E2BIG);
        assert_int_equal(p->nr_writes, 0);
        hvp_plan_free(p);
}

/*
 * consistency="function": a write's guard survives the plan's JSON (records, journals),
 * its copy and its inverse; a write without one has no guard fields, and a record
 * written before them (no fields) loads unguarded; a guard not holding its write is refused.
 */
static void test_plan_guard_json(void **state)
{
        static const uint8_t a[5] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 }, b[5] = { 0xe9, 1, 2, 3, 4 };
        struct hvp_plan *p = hvp_plan_new(), *q = NULL, *inv = NULL;
        json_object *o, *w0, *w1;

        (void)state;
        assert_int_equal(hvp_plan_add_write(p, 0xffffffff81001004ull, 0x1004, a, b, 5, false, false, 0), 0);
        p->writes[0].guard_start = 0xffffffff81001000ull;
        p->writes[0].guard_len = 0x1c0;
        assert_int_equal(hvp_plan_add_write(p, 0xffffffff81002000ull, 0x2000, a, b, 5, false, false, 1), 0);
        o = hvp_plan_to_json(p);
        w0 = json_object_array_get_idx(json_object_object_get(o, "writes"), 0);
        w1 = json_object_array_get_idx(json_object_object_get(o, "writes"), 1);
        assert_string_equal(json_object_get_string(json_object_object_get(w0, "guard_start")), "0xffffffff81001000");
        assert_string_equal(json_object_get_string(json_object_object_get(w0, "guard_len")), "0x1c0");
        assert_false(json_object_object_get_ex(w1, "guard_start", NULL));
        assert_false(json_object_object_get_ex(w1, "guard_len", NULL));
        assert_int_equal(hvp_plan_from_json(o, &q), 0);
        assert_int_equal(q->writes[0].guard_start, 0xffffffff81001000ull);
        assert_int_equal(q->writes[0].guard_len, 0x1c0);
        assert_int_equal(q->writes[1].guard_len, 0);
        assert_int_equal(hvp_plan_inverse(q, &inv), 0);
        assert_int_equal(inv->writes[1].guard_start, 0xffffffff81001000ull);        /* reversed order */
        assert_int_equal(inv->writes[1].guard_len, 0x1c0);
        assert_int_equal(inv->writes[0].guard_len, 0);
        hvp_plan_free(q);
        hvp_plan_free(inv);
        q = NULL;

        /* a guard that does not hold its write, or is longer than a function may be */
        json_object_object_add(w0, "guard_len", json_object_new_string("0x4"));
        assert_int_equal(hvp_plan_from_json(o, &q), -EINVAL);
        assert_non_null(strstr(hvp_last_error(), "bad guard"));
        json_object_object_add(w0, "guard_len", json_object_new_string("0x10001"));
        assert_int_equal(hvp_plan_from_json(o, &q), -EINVAL);
        json_object_object_add(w0, "guard_len", json_object_new_string("nope"));
        assert_int_equal(hvp_plan_from_json(o, &q), -EINVAL);
        assert_null(q);

        /* an old record: no guard fields at all */
        json_object_object_del(w0, "guard_start");
        json_object_object_del(w0, "guard_len");
        assert_int_equal(hvp_plan_from_json(o, &q), 0);
        assert_int_equal(q->writes[0].guard_len, 0);
        assert_int_equal(q->writes[0].guard_start, 0);
        hvp_plan_free(q);
        json_object_put(o);
        hvp_plan_free(p);
}

/* Kill a child applying the plan at a step; memory is then as the dead process left it. */
static void crash_at(struct fixture *f, const struct hvp_plan *p, const char *step)
{
        struct hvp_commit commit = { .add = p };
        struct hvp_apply_options o = { .state_dir = f->state_dir };
        int status;
        pid_t pid;

        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                setenv("HVPATCH_FAULT_AT", step, 1);
                hvp_plan_apply(f->g, p, &commit, &o, NULL);
                _exit(0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

/* The journal the dead process left, as JSON (NULL if there is none). */
static json_object *journal_json(struct fixture *f)
{
        json_object *o = NULL;

        return hvp_journal_read(f->state_dir, hvp_guest_uuid(f->g), &o) == 0 ? o : NULL;
}

static void journal_save(struct fixture *f, json_object *o)
{
        assert_int_equal(hvp_journal_write(f->state_dir, hvp_guest_uuid(f->g), o), 0);
}

/* The journal's phase ("" when it has none). */
static void assert_phase(struct fixture *f, const char *want)
{
        json_object *o = journal_json(f), *v;

        assert_non_null(o);
        assert_true(json_object_object_get_ex(o, "phase", &v));
        assert_string_equal(json_object_get_string(v), want);
        json_object_put(o);
}

static void assert_memory(struct fixture *f, bool want_new)
{
        assert_memory_equal(f->ram + SITE1, want_new ? jmp5 : nop5, 5);
        assert_memory_equal(f->ram + SITE2, want_new ? new8 : old8, 8);
}

static void recover_ok(struct fixture *f, bool expect_new, const char *summary_has)
{
        struct hvp_record *rec;
        char *summary = NULL;

        assert_int_equal(hvp_recover(f->g, f->state_dir, &summary), 0);
        assert_non_null(summary);
        print_message("recover: %s\n", summary);
        if (summary_has)
                assert_non_null(strstr(summary, summary_has));
        /* after the window, a pause is never taken over (the memory backend would always give one) */
        if (summary_has && strstr(summary_has, "guest resumed"))
                assert_null(strstr(summary, "runs again"));
        assert_memory(f, expect_new);
        assert_int_equal(hvp_record_load(f->state_dir, hvp_guest_uuid(f->g), &rec), 0);
        assert_int_equal(rec->nr_entries, expect_new ? 1 : 0);
        hvp_record_free(rec);
        /* Nothing is left to recover. */
        assert_null(journal_json(f));
        assert_int_equal(hvp_recover(f->g, f->state_dir, NULL), -ENOENT);
        free(summary);
}

/* Kill a child applying the plan at a step, check the journal's phase, recover in the parent. */
static void crash_and_recover(struct fixture *f, const char *step, const char *phase, bool expect_new,
                              const char *summary_has)
{
        struct hvp_plan *p = make_plan("p1", false);

        crash_at(f, p, step);
        assert_phase(f, phase);
        recover_ok(f, expect_new, summary_has);
        hvp_plan_free(p);
}

/* Phase "window": the dead process may have paused the guest and written any subset. */
static void test_crash_journaled(void **state) { crash_and_recover(*state, "journaled", "window", false, "in its pause window"); }
static void test_crash_paused(void **state) { crash_and_recover(*state, "paused", "window", false, "in its pause window"); }
static void test_crash_written_1(void **state) { crash_and_recover(*state, "written-1", "window", false, "1 of 2 writes new"); }
static void test_crash_written(void **state) { crash_and_recover(*state, "written", "window", true, "had completed: recorded"); }
/* Phase "resumed": the window closed; only the record is missing, recorded without a pause. */
static void test_crash_resumed(void **state) { crash_and_recover(*state, "resumed", "resumed", true, "guest resumed: recorded"); }

static void test_crash_recorded(void **state)
{
        struct fixture *f = *state;

        /* Recorded, journal not yet removed: recovery commits again without doubling the entry. */
        crash_and_recover(f, "recorded", "resumed", true, "guest resumed: recorded");
}

/* Phase "resumed", but memory was changed back since (someone reverted it): all-old, nothing recorded. */
static void test_resumed_then_changed(void **state)
{
        struct fixture *f = *state;
        struct hvp_plan *p = make_plan("p1", false);

        crash_at(f, p, "resumed");
        assert_phase(f, "resumed");
        memcpy(f->ram + SITE2, old8, sizeof(old8));
        recover_ok(f, false, "after its window");
        hvp_plan_free(p);
}

/* A journal of an older hvpatch ("in_window": true, no phase) is a window-phase one. */
static void test_legacy_in_window(void **state)
{
        struct fixture *f = *state;
        struct hvp_plan *p = make_plan("p1", false);
        json_object *o;

        crash_at(f, p, "written-1");
        o = journal_json(f);
        assert_non_null(o);
        json_object_object_del(o, "phase");
        json_object_object_add(o, "in_window", json_object_new_boolean(true));
        journal_save(f, o);
        json_object_put(o);
        recover_ok(f, false, "in its pause window");
        hvp_plan_free(p);
}

/* A phase recovery does not know, or none: refused, nothing touched, the journal kept. */
static void test_unknown_phase(void **state)
{
        struct fixture *f = *state;
        struct hvp_plan *p = make_plan("p1", false);
        static const char *const phases[] = { "committed", NULL };
        uint8_t site2[8];
        json_object *o;

        crash_at(f, p, "written-1");
        memcpy(site2, f->ram + SITE2, sizeof(site2));
        for (size_t i = 0; i < sizeof(phases) / sizeof(phases[0]); i++) {
                o = journal_json(f);
                assert_non_null(o);
                json_object_object_del(o, "phase");
                json_object_object_del(o, "in_window");
                if (phases[i])
                        json_object_object_add(o, "phase", json_object_new_string(phases[i]));
                journal_save(f, o);
                json_object_put(o);
                assert_int_equal(hvp_recover(f->g, f->state_dir, NULL), -EINVAL);
                assert_non_null(strstr(hvp_last_error(), phases[i] ? "unknown phase" : "no phase"));
                assert_memory_equal(f->ram + SITE1, jmp5, 5);        /* written-1: the first write landed */
                assert_memory_equal(f->ram + SITE2, site2, 8);
                o = journal_json(f);
                assert_non_null(o);
                json_object_put(o);
        }
        hvp_plan_free(p);
}

static void test_lock(void **state)
{
        struct fixture *f = *state;
        int fd1, fd2;

        assert_int_equal(hvp_domain_lock(f->state_dir, "dom-1", &fd1), 0);
        assert_int_equal(hvp_domain_lock(f->state_dir, "dom-1", &fd2), -EBUSY);
        assert_int_equal(hvp_domain_lock(f->state_dir, "dom-2", &fd2), 0);
        hvp_domain_unlock(fd1);
        hvp_domain_unlock(fd2);
        assert_int_equal(hvp_domain_lock(f->state_dir, "dom-1", &fd1), 0);
        hvp_domain_unlock(fd1);
        assert_int_equal(hvp_domain_lock(f->state_dir, "../etc", &fd1), -EINVAL);
}

static void test_corrupt_record(void **state)
{
        struct fixture *f = *state;
        struct hvp_record *rec;
        char path[256];
        FILE *fp;

        snprintf(path, sizeof(path), "%s/domains", f->state_dir);
        mkdir(path, 0700);
        snprintf(path, sizeof(path), "%s/domains/memory.json", f->state_dir);
        fp = fopen(path, "w");
        assert_non_null(fp);
        fputs("{\"applied\": [ {\"plan\": {\"patch_id\": 5}} ]}", fp);
        fclose(fp);
        assert_int_equal(hvp_record_load(f->state_dir, "memory", &rec), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_apply_revert, setup, teardown),
                cmocka_unit_test_setup_teardown(test_stale_writes_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_vcpu_inside_range, setup, teardown),
                cmocka_unit_test(test_plan_bounds),
                cmocka_unit_test(test_plan_guard_json),
                cmocka_unit_test_setup_teardown(test_crash_journaled, setup, teardown),
                cmocka_unit_test_setup_teardown(test_crash_paused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_crash_written_1, setup, teardown),
                cmocka_unit_test_setup_teardown(test_crash_written, setup, teardown),
                cmocka_unit_test_setup_teardown(test_crash_resumed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_crash_recorded, setup, teardown),
                cmocka_unit_test_setup_teardown(test_resumed_then_changed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_legacy_in_window, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unknown_phase, setup, teardown),
                cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
                cmocka_unit_test_setup_teardown(test_corrupt_record, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * The state folder (patcher/record.c): records, journals and locks under
 * STATE_DIR/domains/ work on a folder of ours, and are refused (-EPERM, naming the
 * path) when the folder is writable by others or not ours, or when a state file is
 * a symlink or has another name: a forged journal would have recover write chosen
 * bytes into guest RAM.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <hvpatch/apply.h>
#include <hvpatch/guest.h>
#include <hvpatch/hvpatch.h>

#define UUID "0b3e2c1a-1111-4222-8333-944455556666"

struct state {
        char dir[64];                   /* STATE_DIR */
        char domains[96];               /* STATE_DIR/domains */
};

static void put_file(const char *path, const char *text)
{
        FILE *f = fopen(path, "w");

        assert_non_null(f);
        assert_int_equal(fputs(text, f) >= 0, 1);
        assert_int_equal(fclose(f), 0);
}

static void file_is(const char *path, const char *text)
{
        char buf[256] = { 0 };
        FILE *f = fopen(path, "r");

        assert_non_null(f);
        (void)fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        assert_string_equal(buf, text);
}

static char *at(const struct state *s, const char *name)
{
        static char buf[4][256];
        static int k;

        k = (k + 1) % 4;
        snprintf(buf[k], sizeof(buf[k]), "%s/%s", s->dir, name);
        return buf[k];
}

static void rm_rf(const char *dir)
{
        char cmd[160];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
}

static int setup(void **state)
{
        struct state *s = calloc(1, sizeof(*s));
        int lock;

        assert_non_null(s);
        snprintf(s->dir, sizeof(s->dir), "/tmp/hvp-test-record-XXXXXX");
        assert_non_null(mkdtemp(s->dir));
        snprintf(s->domains, sizeof(s->domains), "%s/domains", s->dir);
        /* The ordinary path creates STATE_DIR/domains. */
        assert_int_equal(hvp_domain_lock(s->dir, UUID, &lock), 0);
        hvp_domain_unlock(lock);
        *state = s;
        return 0;
}

static int teardown(void **state)
{
        struct state *s = *state;

        rm_rf(s->dir);
        free(s);
        return 0;
}

static void expect_refused(int r, const char *path)
{
        assert_int_equal(r, -EPERM);
        if (!strstr(hvp_last_error(), path))
                fail_msg("the error does not name %s: %s", path, hvp_last_error());
        assert_non_null(strstr(hvp_last_error(), "refusing"));
}

static void test_normal_path(void **state)
{
        struct state *s = *state;
        struct hvp_record rec = { .uuid = UUID }, *loaded = NULL;
        struct stat st;
        uint8_t ram[0x2000] = { 0 };
        struct hvp_mem_region region = { 0, sizeof(ram), ram };
        struct hvp_guest *g;
        char cmd[192];
        int lock, lock2;

        assert_int_equal(stat(s->domains, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
        assert_int_equal(hvp_journal_exists(s->dir, UUID), 0);
        /* One hvpatch at a time. */
        assert_int_equal(hvp_domain_lock(s->dir, UUID, &lock), 0);
        assert_int_equal(hvp_domain_lock(s->dir, UUID, &lock2), -EBUSY);
        hvp_domain_unlock(lock);
        /* A record round trip; no temporary file is left behind. */
        assert_int_equal(hvp_record_save(s->dir, &rec), 0);
        assert_int_equal(stat(at(s, "domains/" UUID ".json"), &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(hvp_record_load(s->dir, UUID, &loaded), 0);
        assert_string_equal(loaded->uuid, UUID);
        assert_int_equal(loaded->nr_entries, 0);
        hvp_record_free(loaded);
        snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | grep -c tmp) = 0", s->domains);
        assert_int_equal(system(cmd), 0);
        /* Nothing to recover. */
        assert_int_equal(hvp_guest_open_memory(&region, 1, NULL, 0, true, &g), 0);
        assert_int_equal(hvp_recover(g, s->dir, NULL), -ENOENT);
        hvp_guest_free(g);
        /* A missing state folder is no record, and is not created by reading. */
        rm_rf(s->dir);
        assert_int_equal(hvp_record_load(s->dir, UUID, &loaded), 0);
        assert_int_equal(loaded->nr_entries, 0);
        hvp_record_free(loaded);
        assert_int_equal(hvp_journal_exists(s->dir, UUID), 0);
        assert_int_equal(access(s->dir, F_OK), -1);
        assert_int_equal(mkdir(s->dir, 0700), 0);
}

/* The attack: a journal that is a symlink to bytes someone else chose. */
static void test_symlinked_journal(void **state)
{
        struct state *s = *state;
        uint8_t ram[0x2000], before[sizeof(ram)];
        struct hvp_mem_region region = { 0, sizeof(ram), ram };
        struct hvp_guest *g;
        char *summary = NULL;

        memset(ram, 0x90, sizeof(ram));
        memcpy(before, ram, sizeof(ram));
        assert_int_equal(hvp_guest_open_memory(&region, 1, NULL, 0, true, &g), 0);
        assert_string_equal(hvp_guest_uuid(g), "memory");       /* the state folder's key */
        put_file(at(s, "forged"), "{ \"pid\": 1, \"in_window\": false }\n");
        assert_int_equal(symlink(at(s, "forged"), at(s, "domains/memory.journal")), 0);
        /* status sees something to recover ... */
        assert_int_equal(hvp_journal_exists(s->dir, "memory"), 1);
        /* ... and recover refuses to read it, and writes nothing. */
        expect_refused(hvp_recover(g, s->dir, &summary), "domains/memory.journal");
        assert_null(summary);
        assert_memory_equal(ram, before, sizeof(ram));
        hvp_guest_free(g);
}

static void test_symlinked_record_and_lock(void **state)
{
        struct state *s = *state;
        struct hvp_record *loaded = NULL;
        int lock = -1;

        put_file(at(s, "victim"), "precious\n");
        assert_int_equal(symlink(at(s, "victim"), at(s, "domains/" UUID ".json")), 0);
        expect_refused(hvp_record_load(s->dir, UUID, &loaded), "domains/" UUID ".json");
        assert_null(loaded);
        assert_int_equal(symlink(at(s, "victim"), at(s, "domains/other.lock")), 0);
        expect_refused(hvp_domain_lock(s->dir, "other", &lock), "domains/other.lock");
        assert_int_equal(lock, -1);
        file_is(at(s, "victim"), "precious\n");
        /* A second name (hard link) is refused too. */
        assert_int_equal(link(at(s, "victim"), at(s, "domains/third.json")), 0);
        expect_refused(hvp_record_load(s->dir, "third", &loaded), "domains/third.json");
}

/* Temporaries had a predictable name (PATH.tmp.PID) opened with O_TRUNC through symlinks. */
static void test_temporary_not_followed(void **state)
{
        struct state *s = *state;
        struct hvp_record rec = { .uuid = UUID };
        char name[128];
        struct stat st;

        put_file(at(s, "victim"), "precious\n");
        snprintf(name, sizeof(name), "domains/" UUID ".json.tmp.%d", (int)getpid());
        assert_int_equal(symlink(at(s, "victim"), at(s, name)), 0);
        assert_int_equal(hvp_record_save(s->dir, &rec), 0);
        file_is(at(s, "victim"), "precious\n");
        assert_int_equal(lstat(at(s, name), &st), 0);
        assert_true(S_ISLNK(st.st_mode));
        assert_int_equal(lstat(at(s, "domains/" UUID ".json"), &st), 0);
        assert_true(S_ISREG(st.st_mode));
}

static void test_writable_folder(void **state)
{
        struct state *s = *state;
        static const mode_t modes[] = { 0770, 0707, 0777, 0720 };
        struct hvp_record rec = { .uuid = UUID }, *loaded = NULL;
        int lock = -1;

        for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
                assert_int_equal(chmod(s->dir, modes[i]), 0);
                expect_refused(hvp_record_load(s->dir, UUID, &loaded), s->dir);
                expect_refused(hvp_record_save(s->dir, &rec), s->dir);
                expect_refused(hvp_domain_lock(s->dir, UUID, &lock), s->dir);
                assert_non_null(strstr(hvp_last_error(), "writable"));
                assert_int_equal(chmod(s->dir, 0700), 0);
                /* The same for STATE_DIR/domains. */
                assert_int_equal(chmod(s->domains, modes[i]), 0);
                expect_refused(hvp_journal_exists(s->dir, UUID), s->domains);
                expect_refused(hvp_record_save(s->dir, &rec), s->domains);
                assert_int_equal(chmod(s->domains, 0700), 0);
        }
        /* Read or execute for others is no risk: 0755 is fine. */
        assert_int_equal(chmod(s->dir, 0755), 0);
        assert_int_equal(hvp_record_save(s->dir, &rec), 0);
        assert_null(loaded);
}

static void test_foreign_owner(void **state)
{
        struct state *s = *state;
        struct passwd *nobody = getpwnam("nobody");
        struct hvp_record *loaded = NULL;
        uint8_t ram[0x2000] = { 0 };
        struct hvp_mem_region region = { 0, sizeof(ram), ram };
        struct hvp_guest *g;
        int lock = -1;

        if (geteuid() != 0 || !nobody) {
                if (getenv("CI"))
                        fail_msg("CI runs the unit tests as root with a 'nobody' user: cannot test a foreign owner");
                fprintf(stderr, "SKIP test_foreign_owner: needs root (chown) and a 'nobody' user\n");
                skip();
        }
        assert_int_equal(chown(s->dir, nobody->pw_uid, nobody->pw_gid), 0);
        expect_refused(hvp_record_load(s->dir, UUID, &loaded), s->dir);
        assert_non_null(strstr(hvp_last_error(), "belongs to uid"));
        expect_refused(hvp_domain_lock(s->dir, UUID, &lock), s->dir);
        assert_int_equal(chown(s->dir, 0, 0), 0);
        assert_int_equal(chown(s->domains, nobody->pw_uid, nobody->pw_gid), 0);
        expect_refused(hvp_domain_lock(s->dir, UUID, &lock), s->domains);
        assert_int_equal(chown(s->domains, 0, 0), 0);
        /* A journal of someone else's in our folder. */
        put_file(at(s, "domains/memory.journal"), "{}\n");
        assert_int_equal(chown(at(s, "domains/memory.journal"), nobody->pw_uid, nobody->pw_gid), 0);
        assert_int_equal(hvp_guest_open_memory(&region, 1, NULL, 0, true, &g), 0);
        expect_refused(hvp_recover(g, s->dir, NULL), "domains/memory.journal");
        hvp_guest_free(g);
        assert_null(loaded);
}

static void test_symlinked_state_folder(void **state)
{
        struct state *s = *state;
        struct hvp_record *loaded = NULL;
        char link_path[96];

        snprintf(link_path, sizeof(link_path), "%s-link", s->dir);
        assert_int_equal(symlink(s->dir, link_path), 0);
        expect_refused(hvp_record_load(link_path, UUID, &loaded), link_path);
        assert_int_equal(unlink(link_path), 0);
        /* STATE_DIR/domains as a symlink to a folder of ours. */
        assert_int_equal(rename(s->domains, at(s, "real")), 0);
        assert_int_equal(symlink(at(s, "real"), s->domains), 0);
        expect_refused(hvp_record_load(s->dir, UUID, &loaded), s->domains);
        assert_null(loaded);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_normal_path, setup, teardown),
                cmocka_unit_test_setup_teardown(test_symlinked_journal, setup, teardown),
                cmocka_unit_test_setup_teardown(test_symlinked_record_and_lock, setup, teardown),
                cmocka_unit_test_setup_teardown(test_temporary_not_followed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_writable_folder, setup, teardown),
                cmocka_unit_test_setup_teardown(test_foreign_owner, setup, teardown),
                cmocka_unit_test_setup_teardown(test_symlinked_state_folder, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Test helper: a prerequisite (a tool, a fixture, the built hvpatch) that is missing.
 * Under CI=true it is a failure: CI has everything, so a missing piece there is a
 * broken setup, not a reason to pass. Elsewhere the test is skipped loudly (the
 * reason on stderr) and counted, and main() returns HVP_TEST_SKIPPED, which CTest
 * reports as "Skipped" (SKIP_RETURN_CODE in cmake/HvpTest.cmake), never "Passed".
 *
 *     hvp_test_require(have_gcc, "gcc is not installed (apt-get install gcc)");
 *     ...
 *     return hvp_test_exit(cmocka_run_group_tests(tests, setup, teardown));
 *
 * Include after <cmocka.h>.
 */
#ifndef HVP_TESTS_PREREQ_H
#define HVP_TESTS_PREREQ_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HVP_TEST_SKIPPED 77

static unsigned hvp_test_skips __attribute__((unused));

__attribute__((unused)) static bool hvp_test_in_ci(void)
{
        const char *ci = getenv("CI");

        return ci && (strcmp(ci, "true") == 0 || strcmp(ci, "1") == 0);
}

/* Fail under CI, else note the skip; the caller then calls skip(). */
__attribute__((format(printf, 1, 2), unused)) static void hvp_test_missing(const char *fmt, ...)
{
        char why[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(why, sizeof(why), fmt, ap);
        va_end(ap);
        if (hvp_test_in_ci())
                fail_msg("missing prerequisite under CI=true: %s", why);
        fprintf(stderr, "SKIPPED (missing prerequisite): %s\n", why);
        hvp_test_skips++;
}

#define hvp_test_require(cond, ...)                                           \
        do {                                                                  \
                if (!(cond)) {                                                \
                        hvp_test_missing(__VA_ARGS__);                        \
                        skip();                                               \
                }                                                             \
        } while (0)

/* main's exit status: 1 if a test failed, HVP_TEST_SKIPPED if one was skipped, else 0. */
__attribute__((unused)) static int hvp_test_exit(int failed)
{
        if (failed)
                return 1;
        return hvp_test_skips ? HVP_TEST_SKIPPED : 0;
}

#endif

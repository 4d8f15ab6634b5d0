/*
 * Test helper: where the fetched fixtures are, without being told. The environment
 * variable wins (scripts/test.sh sets them); else the folder the fetch script fills
 * by default under ${HVP_GUEST_DIR:-/var/lib/hvpatch-test}:
 *   kernel:  HVP_KERNEL_DIR, else the newest kernel-<version>/ (images/fetch-kernel.sh)
 *   PE:      HVP_PE_DIR, else pe-fixtures/ (images/fetch-pe-fixtures.sh)
 */
#ifndef HVP_TESTS_FIXTURE_DIR_H
#define HVP_TESTS_FIXTURE_DIR_H

#include <glob.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

__attribute__((unused)) static const char *hvp_fixture_root(void)
{
        const char *d = getenv("HVP_GUEST_DIR");

        return d && *d ? d : "/var/lib/hvpatch-test";
}

__attribute__((unused)) static int hvp_fixture_cmp_version_desc(const void *a, const void *b)
{
        return strverscmp(*(char *const *)b, *(char *const *)a);
}

/* The kernel folder (no trailing slash). false if there is none. */
__attribute__((unused)) static bool hvp_fixture_kernel_dir(char *out, size_t size)
{
        const char *env = getenv("HVP_KERNEL_DIR");
        char pattern[4096];
        glob_t g;
        bool ok;

        if (env && *env) {
                snprintf(out, size, "%s", env);
                return true;
        }
        /* only folders fetch-kernel.sh made (it writes `version`), not others beside them */
        snprintf(pattern, sizeof(pattern), "%s/kernel-*/version", hvp_fixture_root());
        if (glob(pattern, 0, NULL, &g) != 0)
                return false;
        qsort(g.gl_pathv, g.gl_pathc, sizeof(char *), hvp_fixture_cmp_version_desc);
        ok = g.gl_pathc > 0;
        if (ok) {
                char *slash;

                snprintf(out, size, "%s", g.gl_pathv[0]);
                slash = strrchr(out, '/');
                if (slash)
                        *slash = '\0';
        }
        globfree(&g);
        return ok;
}

/* The PE fixtures' folder. false if there is none. */
__attribute__((unused)) static bool hvp_fixture_pe_dir(char *out, size_t size)
{
        const char *env = getenv("HVP_PE_DIR");
        struct stat st;

        if (env && *env) {
                snprintf(out, size, "%s", env);
                return true;
        }
        snprintf(out, size, "%s/pe-fixtures", hvp_fixture_root());
        return stat(out, &st) == 0 && S_ISDIR(st.st_mode);
}

#endif

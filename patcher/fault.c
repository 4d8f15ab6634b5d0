/* Test-only fault injection: see hvp_fault_point() in include/hvpatch/apply.h. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hvpatch/apply.h>

#include "common/error.h"

void hvp_fault_point(const char *step)
{
        const char *at = getenv("HVPATCH_FAULT_AT");

        if (at && strcmp(at, step) == 0)
                kill(getpid(), SIGKILL);
}

int hvp_fault_error(const char *step)
{
        const char *at = getenv("HVPATCH_FAULT_AT");

        if (at && strncmp(at, "error:", 6) == 0 && strcmp(at + 6, step) == 0)
                return hvp_fail(-EIO, "injected fault (HVPATCH_FAULT_AT=%s)", at);
        return 0;
}

/* Test-only fault injection: see hvp_fault_point() in include/hvpatch/apply.h. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hvpatch/apply.h>

void hvp_fault_point(const char *step)
{
        const char *at = getenv("HVPATCH_FAULT_AT");

        if (at && strcmp(at, step) == 0)
                kill(getpid(), SIGKILL);
}

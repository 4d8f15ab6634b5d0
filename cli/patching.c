#include <stdlib.h>

#include "cli/patching.h"

const char *cli_state_dir(void)
{
        const char *d = getenv("HVPATCH_STATE_DIR");

        return d && *d ? d : HVP_STATE_DIR;
}

/*
 * Baseline moves, the policy's part: the current baseline's boot image for a guest's
 * group, and whether a window that allows reboots is open (docs/policy.md).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "common/util.h"
#include "policy/internal.h"

static bool window_allows_reboot(const struct group *g, const struct window *w)
{
        return w->reboot < 0 ? g->reboot_allow : w->reboot == 1;
}

/* "mon,wed-fri 02:00-04:00 Europe/Berlin" (days in order; "daily" for all seven). */
static void describe_window(const struct window *w, char *buf, size_t size)
{
        static const char *const names[] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" };
        char days[64] = "";
        size_t len = 0;

        if (w->days == 0x7f) {
                snprintf(days, sizeof(days), "daily");
        } else {
                for (int d = 0; d < 7; d++)
                        if (w->days & (1u << d))
                                len += (size_t)snprintf(days + len, len < sizeof(days) ? sizeof(days) - len : 0,
                                                        "%s%s", len ? "," : "", names[d]);
        }
        snprintf(buf, size, "%s %02u:%02u-%02u:%02u %s", days, w->start / 60u, w->start % 60u, w->end / 60u,
                 w->end % 60u, w->tz);
}

int hvp_policy_baseline_boot(const struct hvp_policy *p, const struct hvp_guest_facts *facts,
                             struct hvp_baseline_boot *ret)
{
        const struct group *g;
        size_t len = 0;

        if (!p || !facts || !ret)
                return hvp_fail(-EINVAL, "missing argument");
        memset(ret, 0, sizeof(*ret));
        snprintf(ret->reboot_when, sizeof(ret->reboot_when), "none");
        g = hvp_policy_find_group(p, facts);
        if (!g)
                return 0;
        snprintf(ret->group, sizeof(ret->group), "%s", g->name);
        ret->shutdown_timeout_s = g->shutdown_timeout_s;
        for (size_t i = 0; i < g->n_baselines; i++) {
                const struct baseline *b = &g->baselines[i];

                if (!b->current)
                        continue;
                snprintf(ret->baseline, sizeof(ret->baseline), "%s", b->name);
                if (b->kernel)
                        snprintf(ret->kernel, sizeof(ret->kernel), "%s", b->kernel);
                if (b->initrd)
                        snprintf(ret->initrd, sizeof(ret->initrd), "%s", b->initrd);
                if (b->cmdline) {
                        ret->has_cmdline = true;
                        snprintf(ret->cmdline, sizeof(ret->cmdline), "%s", b->cmdline);
                }
        }
        for (size_t i = 0; i < g->n_windows; i++) {
                const struct window *w = &g->windows[i];
                char one[128];

                if (!window_allows_reboot(g, w))
                        continue;
                describe_window(w, one, sizeof(one));
                if (!ret->reboot_windows)
                        ret->reboot_when[0] = '\0';
                /* truncated with "..." rather than cut mid-window */
                if (len + strlen(one) + 6 < sizeof(ret->reboot_when))
                        len += (size_t)snprintf(ret->reboot_when + len, sizeof(ret->reboot_when) - len, "%s%s",
                                                len ? "; " : "", one);
                else if (len + 5 < sizeof(ret->reboot_when) && !strstr(ret->reboot_when, "..."))
                        len += (size_t)snprintf(ret->reboot_when + len, sizeof(ret->reboot_when) - len, "; ...");
                ret->reboot_windows = true;
                /* a zone failure counts as closed: a reboot is never taken on a doubt */
                if (hvp_window_contains(w, facts->now) > 0)
                        ret->reboot_now = true;
        }
        return 0;
}

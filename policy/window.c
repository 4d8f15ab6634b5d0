/*
 * Maintenance windows on the wall clock of an IANA time zone.
 *
 * glibc offers no localtime for a zone other than $TZ, so hvp_tz_localtime() sets TZ,
 * calls tzset() and localtime_r(), then restores TZ, all under one process-wide lock.
 * That serializes hvpatch's own callers; a thread of the embedding program that calls
 * localtime() during that window sees the policy's zone. Good enough for a CLI;
 * documented in docs/policy.md.
 *
 * glibc silently falls back to UTC for a zone it cannot load, so zones are checked
 * against the tz database when the policy is loaded (hvp_tz_check()).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/util.h"
#include "policy/internal.h"

#define ZONEINFO_DIR "/usr/share/zoneinfo"

static pthread_mutex_t tz_lock = PTHREAD_MUTEX_INITIALIZER;

static bool is_utc(const char *tz)
{
        return strcmp(tz, "UTC") == 0;
}

static const char *zoneinfo_dir(void)
{
        const char *d = getenv("TZDIR");

        return d && d[0] == '/' ? d : ZONEINFO_DIR;
}

int hvp_tz_check(const char *tz)
{
        char path[HVP_PATH_MAX];
        char magic[4];
        struct stat st;
        size_t n = strlen(tz);
        int fd, r = 0;

        if (is_utc(tz))
                return 0;
        if (n == 0 || n > 64 || tz[0] == '/' || tz[0] == '-')
                return hvp_fail(-EINVAL, "time zone \"%.64s\" is not a tz database name", tz);
        for (const char *p = tz; *p; p++) {
                bool ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                          *p == '/' || *p == '_' || *p == '-' || *p == '+';

                if (!ok)
                        return hvp_fail(-EINVAL, "time zone \"%.64s\" holds a character not in tz names", tz);
        }
        /* No '.' is allowed above, so no ".." can leave the zoneinfo folder. */
        if (strstr(tz, "//"))
                return hvp_fail(-EINVAL, "time zone \"%.64s\" is not a tz database name", tz);
        snprintf(path, sizeof(path), "%s/%s", zoneinfo_dir(), tz);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
                return hvp_fail(-EINVAL, "unknown time zone \"%s\" (no %s)", tz, path);
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || read(fd, magic, 4) != 4 || memcmp(magic, "TZif", 4) != 0)
                r = hvp_fail(-EINVAL, "unknown time zone \"%s\" (%s is not a tz file)", tz, path);
        close(fd);
        return r;
}

int hvp_tz_localtime(time_t t, const char *tz, struct tm *ret)
{
        char *old = NULL, zone[80];
        struct tm tm;
        bool ok;

        if (is_utc(tz)) {
                if (!gmtime_r(&t, ret))
                        return hvp_fail(-EINVAL, "time %lld out of range", (long long)t);
                return 0;
        }
        /* The leading ':' makes glibc read the zone file and never parse TZ as a POSIX rule. */
        snprintf(zone, sizeof(zone), ":%s", tz);
        pthread_mutex_lock(&tz_lock);
        old = getenv("TZ");
        if (old)
                old = strdup(old);
        setenv("TZ", zone, 1);
        tzset();
        ok = localtime_r(&t, &tm) != NULL;
        if (old)
                setenv("TZ", old, 1);
        else
                unsetenv("TZ");
        tzset();
        pthread_mutex_unlock(&tz_lock);
        free(old);
        if (!ok)
                return hvp_fail(-EINVAL, "time %lld out of range in %s", (long long)t, tz);
        *ret = tm;
        return 0;
}

static bool day_in(uint8_t days, int wday)
{
        return days & (1u << (((wday % 7) + 7) % 7));
}

int hvp_window_contains(const struct window *w, time_t t)
{
        struct tm tm;
        int r, m;

        r = hvp_tz_localtime(t, w->tz, &tm);
        if (r < 0)
                return r;
        m = tm.tm_hour * 60 + tm.tm_min;
        if (w->start < w->end)
                return day_in(w->days, tm.tm_wday) && m >= w->start && m < w->end;
        /* Across midnight: the window belongs to the day it starts on. */
        return (day_in(w->days, tm.tm_wday) && m >= w->start) ||
               (day_in(w->days, tm.tm_wday - 1) && m < w->end);
}

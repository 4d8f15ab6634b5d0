/* rollout: ring sizes and the state file (cli/rollout.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cli/rollout.h"

static const char *const status_names[RO__MAX] = {
        [RO_PENDING] = "pending", [RO_RUNNING] = "running", [RO_DONE] = "done",
        [RO_SKIPPED] = "skipped", [RO_FAILED] = "failed",   [RO_REVERTED] = "reverted",
};

const char *rollout_status_name(enum rollout_status s)
{
        return (unsigned)s < RO__MAX ? status_names[s] : "unknown";
}

int rollout_rings_parse(const char *s, struct rollout_rings *ret, char *why, size_t why_size)
{
        const char *p = s;

        memset(ret, 0, sizeof(*ret));
        if (!s || !*s) {
                snprintf(why, why_size, "--rings: empty");
                return -EINVAL;
        }
        for (;;) {
                char *end;
                unsigned long v;

                if (ret->n == ROLLOUT_MAX_RINGS) {
                        snprintf(why, why_size, "--rings: more than %d rings", ROLLOUT_MAX_RINGS);
                        return -EINVAL;
                }
                if (*p == '@' && (ret->n == 0 || ret->by_group)) {
                        size_t len = strcspn(p + 1, ",");

                        if (len == 0 || len > HVP_NAME_MAX) {
                                snprintf(why, why_size, "--rings: '%s': @GROUP names a policy group (1..%d bytes)", s,
                                         HVP_NAME_MAX);
                                return -EINVAL;
                        }
                        ret->by_group = true;
                        memcpy(ret->spec[ret->n].group, p + 1, len);
                        ret->spec[ret->n].group[len] = '\0';
                        for (size_t k = 0; k < ret->n; k++)
                                if (strcmp(ret->spec[k].group, ret->spec[ret->n].group) == 0) {
                                        snprintf(why, why_size, "--rings: '%s': a group twice", s);
                                        return -EINVAL;
                                }
                        ret->n++;
                        if (p[1 + len] == '\0')
                                return 0;
                        p += 1 + len + 1;
                        continue;
                }
                if (ret->by_group || *p < '0' || *p > '9') {
                        snprintf(why, why_size, "--rings: '%s': each ring is N or P%% (or each @GROUP)", s);
                        return -EINVAL;
                }
                errno = 0;
                v = strtoul(p, &end, 10);
                if (errno || v == 0 || v > ROLLOUT_MAX_GUESTS) {
                        snprintf(why, why_size, "--rings: '%s': a size is 1..%d (or 1%%..100%%)", s,
                                 ROLLOUT_MAX_GUESTS);
                        return -EINVAL;
                }
                ret->spec[ret->n].value = (unsigned)v;
                if (*end == '%') {
                        if (v > 100) {
                                snprintf(why, why_size, "--rings: '%s': a percentage is 1%%..100%%", s);
                                return -EINVAL;
                        }
                        ret->spec[ret->n].percent = true;
                        end++;
                }
                ret->n++;
                if (*end == '\0')
                        return 0;
                if (*end != ',') {
                        snprintf(why, why_size, "--rings: '%s': each ring is N or P%%, separated by commas", s);
                        return -EINVAL;
                }
                p = end + 1;
        }
}

size_t rollout_rings_layout(const struct rollout_rings *rings, size_t n_guests, size_t ends[ROLLOUT_MAX_RINGS])
{
        size_t n = 0, prev = 0;

        if (n_guests == 0)
                return 0;
        for (size_t i = 0; i < rings->n && i < ROLLOUT_MAX_RINGS && prev < n_guests; i++) {
                size_t want = rings->spec[i].percent ? (n_guests * rings->spec[i].value + 99) / 100
                                                     : rings->spec[i].value;

                if (want > n_guests)
                        want = n_guests;
                if (want <= prev)
                        continue;       /* adds nobody */
                ends[n++] = prev = want;
        }
        if (n == 0)
                ends[n++] = n_guests;
        else
                ends[n - 1] = n_guests; /* the last ring takes the rest */
        return n;
}

void rollout_state_free(struct rollout_state *st)
{
        free(st->guests);
        st->guests = NULL;
        st->n_guests = 0;
}

static int fail(char *why, size_t why_size, const char *msg)
{
        snprintf(why, why_size, "%s", msg);
        return -EINVAL;
}

/* A string field: present, a string, shorter than size (and without control characters). */
static bool get_string(json_object *o, const char *key, char *out, size_t size, bool required)
{
        json_object *v;
        const char *s;
        size_t len;

        out[0] = '\0';
        if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
                return !required;
        if (!json_object_is_type(v, json_type_string))
                return false;
        s = json_object_get_string(v);
        len = (size_t)json_object_get_string_len(v);
        if (len >= size || strlen(s) != len)
                return false;
        for (size_t i = 0; i < len; i++)
                if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
                        return false;
        memcpy(out, s, len + 1);
        return true;
}

static bool get_int(json_object *o, const char *key, int64_t lo, int64_t hi, int64_t *ret)
{
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return false;
        errno = 0;
        *ret = json_object_get_int64(v);
        return errno == 0 && *ret >= lo && *ret <= hi;
}

static bool is_hex(const char *s, size_t len)
{
        if (strlen(s) != len)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

int rollout_state_parse(const char *text, size_t len, struct rollout_state *ret, char *why, size_t why_size)
{
        json_tokener *tok;
        json_object *root, *v, *guests;
        int64_t x;
        size_t n;
        int r = -EINVAL;

        memset(ret, 0, sizeof(*ret));
        if (len > ROLLOUT_STATE_MAX) {
                snprintf(why, why_size, "over %u bytes", ROLLOUT_STATE_MAX);
                return -E2BIG;
        }
        tok = json_tokener_new_ex(16);
        if (!tok)
                return fail(why, why_size, "out of memory");
        root = json_tokener_parse_ex(tok, text, (int)len);
        if (!root || json_tokener_get_error(tok) != json_tokener_success ||
            json_tokener_get_parse_end(tok) != len) {
                r = fail(why, why_size, "not one JSON document (or nested over 16 levels)");
                json_object_put(root);
                root = NULL;
                goto out;
        }
        if (!json_object_is_type(root, json_type_object)) {
                r = fail(why, why_size, "not a JSON object");
                goto out;
        }
        if (!get_int(root, "version", 1, 1, &x)) {
                r = fail(why, why_size, "\"version\" is not 1");
                goto out;
        }
        if (!get_string(root, "bundle_sha256", ret->bundle_sha256, sizeof(ret->bundle_sha256), true) ||
            !is_hex(ret->bundle_sha256, ROLLOUT_HASH_HEX - 1)) {
                r = fail(why, why_size, "\"bundle_sha256\" is not 64 lower-case hex digits");
                goto out;
        }
        if (!get_string(root, "patch_id", ret->patch_id, sizeof(ret->patch_id), true)) {
                r = fail(why, why_size, "\"patch_id\" is missing or not a short string");
                goto out;
        }
        if (!json_object_object_get_ex(root, "halted", &v) || !json_object_is_type(v, json_type_boolean)) {
                r = fail(why, why_size, "\"halted\" is not a boolean");
                goto out;
        }
        ret->halted = json_object_get_boolean(v);
        if (!get_int(root, "halt_exit", 0, 255, &x)) {
                r = fail(why, why_size, "\"halt_exit\" is not 0..255");
                goto out;
        }
        ret->halt_exit = (int)x;
        if (!get_int(root, "rings", 1, ROLLOUT_MAX_RINGS, &x)) {
                r = fail(why, why_size, "\"rings\" is not 1..16");
                goto out;
        }
        ret->n_rings = (size_t)x;
        if (!json_object_object_get_ex(root, "guests", &guests) || !json_object_is_type(guests, json_type_array)) {
                r = fail(why, why_size, "\"guests\" is not an array");
                goto out;
        }
        n = json_object_array_length(guests);
        if (n == 0 || n > ROLLOUT_MAX_GUESTS) {
                snprintf(why, why_size, "\"guests\": %zu entries (1..%d)", n, ROLLOUT_MAX_GUESTS);
                goto out;
        }
        ret->guests = calloc(n, sizeof(*ret->guests));
        if (!ret->guests) {
                r = fail(why, why_size, "out of memory");
                goto out;
        }
        for (size_t i = 0; i < n; i++) {
                json_object *g = json_object_array_get_idx(guests, i);
                struct rollout_guest *e = &ret->guests[i];
                char status[16];
                bool found = false;

                if (!json_object_is_type(g, json_type_object) ||
                    !get_string(g, "domain", e->domain, sizeof(e->domain), true) || !e->domain[0] ||
                    !get_string(g, "status", status, sizeof(status), true) ||
                    !get_string(g, "code", e->code, sizeof(e->code), false) ||
                    !get_string(g, "detail", e->detail, sizeof(e->detail), false) ||
                    !get_int(g, "ring", 0, (int64_t)ret->n_rings - 1, &x)) {
                        snprintf(why, why_size, "guest %zu: needs domain, ring (0..%zu), status; short strings", i,
                                 ret->n_rings - 1);
                        goto out;
                }
                e->ring = (unsigned)x;
                if (i > 0 && e->ring < ret->guests[i - 1].ring) {
                        snprintf(why, why_size, "guest %zu: rings out of order", i);
                        goto out;
                }
                for (int s = 0; s < RO__MAX; s++)
                        if (strcmp(status, status_names[s]) == 0) {
                                e->status = (enum rollout_status)s;
                                found = true;
                        }
                if (!found) {
                        snprintf(why, why_size, "guest %zu: unknown status", i);
                        goto out;
                }
                if (!get_int(g, "exit", 0, 255, &x)) {
                        snprintf(why, why_size, "guest %zu: \"exit\" is not 0..255", i);
                        goto out;
                }
                e->exit_class = (int)x;
                for (size_t k = 0; k < i; k++)
                        if (strcmp(ret->guests[k].domain, e->domain) == 0) {
                                snprintf(why, why_size, "guest %zu: domain listed twice", i);
                                goto out;
                        }
                ret->n_guests = i + 1;
        }
        r = 0;
out:
        json_object_put(root);
        json_tokener_free(tok);
        if (r < 0)
                rollout_state_free(ret);
        return r;
}

int rollout_state_load(const char *path, struct rollout_state *ret, char *why, size_t why_size)
{
        struct stat sb;
        char *buf;
        size_t len = 0;
        int fd, r;

        memset(ret, 0, sizeof(*ret));
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0) {
                r = -errno;
                snprintf(why, why_size, "%s: %s", path, strerror(errno));
                return r;
        }
        if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
                close(fd);
                snprintf(why, why_size, "%s: not a regular file", path);
                return -EINVAL;
        }
        if (sb.st_size > (off_t)ROLLOUT_STATE_MAX) {
                close(fd);
                snprintf(why, why_size, "%s: over %u bytes", path, ROLLOUT_STATE_MAX);
                return -E2BIG;
        }
        buf = malloc(ROLLOUT_STATE_MAX + 1);
        if (!buf) {
                close(fd);
                return fail(why, why_size, "out of memory");
        }
        while (len <= ROLLOUT_STATE_MAX) {
                ssize_t k = read(fd, buf + len, ROLLOUT_STATE_MAX + 1 - len);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                len += (size_t)k;
        }
        close(fd);
        if (len > ROLLOUT_STATE_MAX) {
                free(buf);
                snprintf(why, why_size, "%s: over %u bytes", path, ROLLOUT_STATE_MAX);
                return -E2BIG;
        }
        r = rollout_state_parse(buf, len, ret, why, why_size);
        free(buf);
        if (r < 0) {
                char inner[512];

                snprintf(inner, sizeof(inner), "%s", why);
                snprintf(why, why_size, "%s: not a rollout state file: %s", path, inner);
        }
        return r;
}

int rollout_state_save(const char *path, const struct rollout_state *st)
{
        json_object *root = json_object_new_object(), *guests = json_object_new_array();
        char tmp[4096];
        const char *text;
        size_t len, off = 0;
        int fd, r = 0;

        json_object_object_add(root, "version", json_object_new_int(1));
        json_object_object_add(root, "bundle_sha256", json_object_new_string(st->bundle_sha256));
        json_object_object_add(root, "patch_id", json_object_new_string(st->patch_id));
        json_object_object_add(root, "halted", json_object_new_boolean(st->halted));
        json_object_object_add(root, "halt_exit", json_object_new_int(st->halt_exit));
        json_object_object_add(root, "rings", json_object_new_int((int)st->n_rings));
        for (size_t i = 0; i < st->n_guests; i++) {
                const struct rollout_guest *e = &st->guests[i];
                json_object *g = json_object_new_object();

                json_object_object_add(g, "domain", json_object_new_string(e->domain));
                json_object_object_add(g, "ring", json_object_new_int((int)e->ring));
                json_object_object_add(g, "status", json_object_new_string(rollout_status_name(e->status)));
                json_object_object_add(g, "exit", json_object_new_int(e->exit_class));
                json_object_object_add(g, "code", json_object_new_string(e->code));
                json_object_object_add(g, "detail", json_object_new_string(e->detail));
                json_object_array_add(guests, g);
        }
        json_object_object_add(root, "guests", guests);
        text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
        len = strlen(text);
        if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
                json_object_put(root);
                return -ENAMETOOLONG;
        }
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
                r = -errno;
                json_object_put(root);
                return r;
        }
        while (off < len) {
                ssize_t k = write(fd, text + off, len - off);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0) {
                        r = k < 0 ? -errno : -EIO;
                        break;
                }
                off += (size_t)k;
        }
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0)
                unlink(tmp);
        json_object_put(root);
        return r;
}

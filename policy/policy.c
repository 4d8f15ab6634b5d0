/*
 * The policy file: parsed with libxml2, validated against the built-in RelaxNG schema,
 * then checked for what the schema cannot say. Format: docs/policy.md.
 */
#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <string.h>

#include <libxml/tree.h>

#include "common/error.h"
#include "common/util.h"
#include "policy/internal.h"

/* Bounds on what one policy may hold. */
#define MAX_KEYS 64
#define MAX_GROUPS 256
#define MAX_ITEMS 256           /* selectors, may-sign rules, windows, baselines, kernels per list */
#define DEFAULT_MAX_PAUSE_MS HVP_POLICY_DEFAULT_MAX_PAUSE_MS

static void strv_clear(struct hvp_strv *s)
{
        for (size_t i = 0; i < s->n; i++)
                free(s->v[i]);
        free(s->v);
        s->v = NULL;
        s->n = 0;
}

static int strv_push(struct hvp_strv *s, const char *str, unsigned line)
{
        char **v;

        if (s->n >= MAX_ITEMS)
                return hvp_fail(-E2BIG, "line %u: more than %d entries", line, MAX_ITEMS);
        v = realloc(s->v, (s->n + 1) * sizeof(*v));
        if (!v)
                return hvp_fail(-ENOMEM, "out of memory");
        s->v = v;
        s->v[s->n] = strdup(str);
        if (!s->v[s->n])
                return hvp_fail(-ENOMEM, "out of memory");
        s->n++;
        return 0;
}

static bool strv_contains(const struct hvp_strv *s, const char *str)
{
        for (size_t i = 0; i < s->n; i++)
                if (strcmp(s->v[i], str) == 0)
                        return true;
        return false;
}

static void group_clear(struct group *g)
{
        strv_clear(&g->name_globs);
        strv_clear(&g->uuids);
        strv_clear(&g->metadata);
        for (size_t i = 0; i < g->n_windows; i++)
                free(g->windows[i].tz);
        free(g->windows);
        for (size_t i = 0; i < g->n_baselines; i++) {
                strv_clear(&g->baselines[i].build_ids);
                free(g->baselines[i].kernel);
                free(g->baselines[i].initrd);
                free(g->baselines[i].cmdline);
        }
        free(g->baselines);
}

void hvp_policy_free(struct hvp_policy *p)
{
        if (!p)
                return;
        for (size_t i = 0; i < p->n_keys; i++) {
                for (size_t k = 0; k < p->rules[i].n_may; k++) {
                        free(p->rules[i].may[k].patch_id);
                        free(p->rules[i].may[k].series);
                }
                free(p->rules[i].may);
        }
        free(p->keys);
        free(p->rules);
        for (size_t i = 0; i < p->n_groups; i++)
                group_clear(&p->groups[i]);
        free(p->groups);
        free(p);
}

size_t hvp_policy_keys(const struct hvp_policy *p, const struct hvp_minisign_key **ret_keys)
{
        *ret_keys = p->keys;
        return p->n_keys;
}

int hvp_policy_verify(const struct hvp_policy *p, const void *msg, size_t msg_len,
                      const void *sig, size_t sig_len, unsigned flags, struct hvp_signature_info *ret)
{
        if (!p)
                return hvp_fail(-EINVAL, "no policy");
        return hvp_minisign_verify(p->keys, p->n_keys, msg, msg_len, sig, sig_len, flags, ret);
}

/* ---- tree helpers: the schema has checked shapes; we still check what we use ---- */

static unsigned line_of(const xmlNode *n)
{
        long l = xmlGetLineNo(n);

        return l > 0 ? (unsigned)l : 0;
}

static bool is_element(const xmlNode *n, const char *name)
{
        return n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

/* An attribute's value copied into buf; false if absent or too long. */
static bool attr(const xmlNode *n, const char *name, char *buf, size_t size)
{
        xmlChar *v = xmlGetNoNsProp(n, (const xmlChar *)name);
        bool ok = false;

        if (v && strlen((const char *)v) < size) {
                strcpy(buf, (const char *)v);
                ok = true;
        }
        xmlFree(v);
        return ok;
}

static bool attr_yes(const xmlNode *n, const char *name)
{
        char v[8];

        return attr(n, name, v, sizeof(v)) && strcmp(v, "yes") == 0;
}

/* Element text with surrounding white space removed, into buf. */
static int text_of(const xmlNode *n, char *buf, size_t size, const char *what)
{
        xmlChar *v = xmlNodeGetContent(n);
        const char *s = (const char *)v, *e;
        size_t len;

        if (!v)
                return hvp_fail(-ENOMEM, "out of memory");
        while (isspace((unsigned char)*s))
                s++;
        e = s + strlen(s);
        while (e > s && isspace((unsigned char)e[-1]))
                e--;
        len = (size_t)(e - s);
        if (len >= size) {
                xmlFree(v);
                return hvp_fail(-E2BIG, "line %u: %s longer than %zu bytes", line_of(n), what, size - 1);
        }
        memcpy(buf, s, len);
        buf[len] = '\0';
        xmlFree(v);
        return 0;
}

/* ---- keys ---- */

static int load_key_file(const char *file, const char *base_dir, unsigned line, struct hvp_minisign_key *k)
{
        _cleanup_free_ char *path = NULL;
        int r;

        if (file[0] != '/') {
                if (!base_dir)
                        return hvp_fail(-EINVAL, "line %u: relative key file \"%s\" with no policy folder", line,
                                        file);
                if (asprintf(&path, "%s/%s", base_dir, file) < 0) {
                        path = NULL;
                        return hvp_fail(-ENOMEM, "out of memory");
                }
                file = path;
        }
        r = hvp_minisign_key_load(file, k);
        if (r < 0)
                return hvp_fail_context(r == -ENOMEM ? r : -EINVAL, "line %u: key", line);
        return 0;
}

static int parse_may_sign(const xmlNode *n, struct key_rules *rules)
{
        char glob[257];
        struct may_sign *m;

        if (rules->n_may >= MAX_ITEMS)
                return hvp_fail(-E2BIG, "line %u: more than %d may-sign rules", line_of(n), MAX_ITEMS);
        m = realloc(rules->may, (rules->n_may + 1) * sizeof(*m));
        if (!m)
                return hvp_fail(-ENOMEM, "out of memory");
        rules->may = m;
        m = &rules->may[rules->n_may++];
        *m = (struct may_sign){ 0 };
        if (attr(n, "patch-id", glob, sizeof(glob)) && !(m->patch_id = strdup(glob)))
                return hvp_fail(-ENOMEM, "out of memory");
        if (attr(n, "series", glob, sizeof(glob)) && !(m->series = strdup(glob)))
                return hvp_fail(-ENOMEM, "out of memory");
        if (!m->patch_id && !m->series)
                return hvp_fail(-EINVAL, "line %u: may-sign names neither series nor patch-id", line_of(n));
        return 0;
}

static int parse_key(struct hvp_policy *p, const xmlNode *n, const char *base_dir)
{
        struct hvp_minisign_key k = { 0 }, *keys;
        struct key_rules *rules;
        char name[HVP_NAME_MAX + 1];
        unsigned line = line_of(n);
        bool have_key = false;
        int r;

        if (p->n_keys >= MAX_KEYS)
                return hvp_fail(-E2BIG, "line %u: more than %d keys", line, MAX_KEYS);
        if (!attr(n, "name", name, sizeof(name)))
                return hvp_fail(-EINVAL, "line %u: key without a valid name", line);
        for (size_t i = 0; i < p->n_keys; i++)
                if (strcmp(p->keys[i].name, name) == 0)
                        return hvp_fail(-EINVAL, "line %u: a second key named \"%s\"", line, name);

        keys = realloc(p->keys, (p->n_keys + 1) * sizeof(*keys));
        if (!keys)
                return hvp_fail(-ENOMEM, "out of memory");
        p->keys = keys;
        rules = realloc(p->rules, (p->n_keys + 1) * sizeof(*rules));
        if (!rules)
                return hvp_fail(-ENOMEM, "out of memory");
        p->rules = rules;
        /* Counted now so that hvp_policy_free() frees the rules even if we fail below. */
        p->rules[p->n_keys] = (struct key_rules){ 0 };
        p->keys[p->n_keys] = k;
        p->n_keys++;
        rules = &p->rules[p->n_keys - 1];

        for (const xmlNode *c = n->children; c; c = c->next) {
                char text[4097];

                if (is_element(c, "public-key") || is_element(c, "public-key-file")) {
                        bool inline_key = is_element(c, "public-key");

                        r = text_of(c, text, sizeof(text), inline_key ? "public key" : "key file path");
                        if (r < 0)
                                return r;
                        if (inline_key) {
                                r = hvp_minisign_key_from_base64(text, &k);
                                if (r < 0)
                                        return hvp_fail_context(r, "line %u: key \"%s\"", line_of(c), name);
                        } else {
                                r = load_key_file(text, base_dir, line_of(c), &k);
                                if (r < 0)
                                        return r;
                        }
                        have_key = true;
                } else if (is_element(c, "may-sign")) {
                        r = parse_may_sign(c, rules);
                        if (r < 0)
                                return r;
                }
        }
        if (!have_key)
                return hvp_fail(-EINVAL, "line %u: key \"%s\" has no public key", line, name);
        if (rules->n_may == 0)
                return hvp_fail(-EINVAL, "line %u: key \"%s\" may sign nothing", line, name);
        for (size_t i = 0; i + 1 < p->n_keys; i++)
                if (memcmp(p->keys[i].key_id, k.key_id, sizeof(k.key_id)) == 0)
                        return hvp_fail(-EINVAL, "line %u: key \"%s\" has the same key id as \"%s\"", line, name,
                                        p->keys[i].name);
        memcpy(k.name, name, sizeof(k.name));
        p->keys[p->n_keys - 1] = k;
        return 0;
}

/* ---- groups ---- */

static int parse_day(const char *s, size_t len)
{
        static const char *const names[] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" };

        for (int d = 0; d < 7; d++)
                if (len == 3 && memcmp(s, names[d], 3) == 0)
                        return d;
        return -1;
}

/* "mon-fri,sun": a list of days and ranges (a range may wrap: "fri-mon"). */
static int parse_days(const char *s, uint8_t *ret_days)
{
        uint8_t days = 0;

        while (*s) {
                const char *comma = strchr(s, ','), *end = comma ? comma : s + strlen(s);
                const char *dash = memchr(s, '-', (size_t)(end - s));
                int from, to;

                from = parse_day(s, (size_t)((dash ? dash : end) - s));
                to = dash ? parse_day(dash + 1, (size_t)(end - dash - 1)) : from;
                if (from < 0 || to < 0)
                        return -EINVAL;
                for (int d = from;; d = (d + 1) % 7) {
                        days |= (uint8_t)(1u << d);
                        if (d == to)
                                break;
                }
                s = comma ? comma + 1 : end;
                if (comma && !*s)
                        return -EINVAL;
        }
        *ret_days = days;
        return 0;
}

static int parse_hhmm(const char *s, uint16_t *ret)
{
        if (strlen(s) != 5 || !isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) || s[2] != ':' ||
            !isdigit((unsigned char)s[3]) || !isdigit((unsigned char)s[4]))
                return -EINVAL;
        unsigned h = (unsigned)(s[0] - '0') * 10 + (unsigned)(s[1] - '0');
        unsigned m = (unsigned)(s[3] - '0') * 10 + (unsigned)(s[4] - '0');
        if (m > 59 || h > 24 || (h == 24 && m != 0))
                return -EINVAL;
        *ret = (uint16_t)(h * 60 + m);
        return 0;
}

static int parse_window(struct group *g, const xmlNode *n)
{
        struct window w = { .days = 0x7f, .start = 0, .end = 24 * 60, .reboot = -1 };
        char buf[80];
        unsigned line = line_of(n);
        struct window *ws;
        int r;

        if (g->n_windows >= MAX_ITEMS)
                return hvp_fail(-E2BIG, "line %u: more than %d windows", line, MAX_ITEMS);
        if (attr(n, "days", buf, sizeof(buf)) && parse_days(buf, &w.days) < 0)
                return hvp_fail(-EINVAL, "line %u: bad days \"%s\"", line, buf);
        if (attr(n, "start", buf, sizeof(buf)) && (parse_hhmm(buf, &w.start) < 0 || w.start >= 24 * 60))
                return hvp_fail(-EINVAL, "line %u: bad start time \"%s\"", line, buf);
        if (attr(n, "end", buf, sizeof(buf)) && parse_hhmm(buf, &w.end) < 0)
                return hvp_fail(-EINVAL, "line %u: bad end time \"%s\"", line, buf);
        if (w.start == w.end)
                return hvp_fail(-EINVAL, "line %u: window starts when it ends", line);
        if (attr(n, "reboot", buf, sizeof(buf))) {
                if (strcmp(buf, "yes") != 0 && strcmp(buf, "no") != 0)
                        return hvp_fail(-EINVAL, "line %u: window reboot=\"%.16s\" is neither yes nor no", line, buf);
                w.reboot = strcmp(buf, "yes") == 0;
        }
        if (!attr(n, "tz", buf, sizeof(buf)))
                strcpy(buf, "UTC");
        r = hvp_tz_check(buf);
        if (r < 0)
                return hvp_fail_context(r, "line %u", line);
        ws = realloc(g->windows, (g->n_windows + 1) * sizeof(*ws));
        if (!ws)
                return hvp_fail(-ENOMEM, "out of memory");
        g->windows = ws;
        w.tz = strdup(buf);
        if (!w.tz)
                return hvp_fail(-ENOMEM, "out of memory");
        g->windows[g->n_windows++] = w;
        return 0;
}

static void lower(char *s)
{
        for (; *s; s++)
                *s = (char)tolower((unsigned char)*s);
}

/*
 * An optional attribute copied into *ret (NULL if absent): at most max bytes, no control
 * characters; a path must be absolute. Trusted input (the operator's policy), but a
 * bad value must stop the policy with a reason, not reach a domain's definition.
 */
static int boot_attr(const xmlNode *n, const char *name, size_t max, bool path, char **ret)
{
        xmlChar *v = xmlGetNoNsProp(n, (const xmlChar *)name);
        const char *s = (const char *)v;
        size_t len;
        int r = 0;

        *ret = NULL;
        if (!v)
                return 0;
        len = strlen(s);
        if (len > max)
                r = hvp_fail(-E2BIG, "line %u: baseline %s longer than %zu bytes", line_of(n), name, max);
        else if (path && s[0] != '/')
                r = hvp_fail(-EINVAL, "line %u: baseline %s \"%.64s\" is not an absolute path", line_of(n), name, s);
        else if (path && len == 1)
                r = hvp_fail(-EINVAL, "line %u: baseline %s is \"/\", not a file", line_of(n), name);
        for (size_t i = 0; r == 0 && i < len; i++)
                if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
                        r = hvp_fail(-EINVAL, "line %u: baseline %s holds a control character", line_of(n), name);
        if (r == 0 && !(*ret = strdup(s)))
                r = hvp_fail(-ENOMEM, "out of memory");
        xmlFree(v);
        return r;
}

static int parse_baseline_boot(struct baseline *b, const xmlNode *n)
{
        int r;

        r = boot_attr(n, "kernel", HVP_BOOT_PATH_MAX, true, &b->kernel);
        if (r == 0)
                r = boot_attr(n, "initrd", HVP_BOOT_PATH_MAX, true, &b->initrd);
        if (r == 0)
                r = boot_attr(n, "cmdline", HVP_BOOT_CMDLINE_MAX, false, &b->cmdline);
        if (r < 0)
                return r;
        if (!b->kernel && (b->initrd || b->cmdline))
                return hvp_fail(-EINVAL, "line %u: baseline \"%s\" names %s but no kernel image", line_of(n),
                                b->name, b->initrd ? "an initrd" : "a cmdline");
        return 0;
}

static int parse_baseline(struct group *g, const xmlNode *n)
{
        struct baseline *bs, *b;
        unsigned line = line_of(n);
        int r;

        if (g->n_baselines >= MAX_ITEMS)
                return hvp_fail(-E2BIG, "line %u: more than %d baselines", line, MAX_ITEMS);
        bs = realloc(g->baselines, (g->n_baselines + 1) * sizeof(*bs));
        if (!bs)
                return hvp_fail(-ENOMEM, "out of memory");
        g->baselines = bs;
        b = &g->baselines[g->n_baselines++];
        *b = (struct baseline){ 0 };
        if (!attr(n, "name", b->name, sizeof(b->name)))
                return hvp_fail(-EINVAL, "line %u: baseline without a valid name", line);
        for (size_t i = 0; i + 1 < g->n_baselines; i++)
                if (strcmp(g->baselines[i].name, b->name) == 0)
                        return hvp_fail(-EINVAL, "line %u: a second baseline named \"%s\" in group \"%s\"", line,
                                        b->name, g->name);
        b->current = attr_yes(n, "current");
        r = parse_baseline_boot(b, n);
        if (r < 0)
                return r;
        for (const xmlNode *c = n->children; c; c = c->next) {
                char id[129];

                if (!is_element(c, "kernel"))
                        continue;
                if (!attr(c, "build-id", id, sizeof(id)))
                        return hvp_fail(-EINVAL, "line %u: kernel without a valid build-id", line_of(c));
                lower(id);
                for (size_t i = 0; i < g->n_baselines; i++)
                        if (strv_contains(&g->baselines[i].build_ids, id))
                                return hvp_fail(-EINVAL, "line %u: build id %s listed twice in group \"%s\"",
                                                line_of(c), id, g->name);
                r = strv_push(&b->build_ids, id, line_of(c));
                if (r < 0)
                        return r;
        }
        if (b->build_ids.n == 0)
                return hvp_fail(-EINVAL, "line %u: baseline \"%s\" lists no kernel", line, b->name);
        return 0;
}

static int parse_select(struct group *g, const xmlNode *n)
{
        char v[257];

        if (attr(n, "name", v, sizeof(v)))
                return strv_push(&g->name_globs, v, line_of(n));
        if (attr(n, "uuid", v, sizeof(v))) {
                lower(v);
                return strv_push(&g->uuids, v, line_of(n));
        }
        if (attr(n, "metadata", v, sizeof(v)))
                return strv_push(&g->metadata, v, line_of(n));
        return hvp_fail(-EINVAL, "line %u: select with no name, uuid or metadata", line_of(n));
}

static void parse_require(struct group *g, const xmlNode *n)
{
        char os[16];

        g->need_uefi = attr_yes(n, "uefi");
        g->need_secure_boot = attr_yes(n, "secure-boot");
        g->need_patch_area = attr_yes(n, "patch-area");
        g->need_os = HVP_OS_UNKNOWN;
        if (attr(n, "os", os, sizeof(os))) {
                if (strcmp(os, "linux") == 0)
                        g->need_os = HVP_OS_LINUX;
                else if (strcmp(os, "windows") == 0)
                        g->need_os = HVP_OS_WINDOWS;
        }
}

static int parse_group_child(struct group *g, const xmlNode *c)
{
        char v[16];

        if (is_element(c, "select"))
                return parse_select(g, c);
        if (is_element(c, "require")) {
                parse_require(g, c);
                return 0;
        }
        if (is_element(c, "patchguard")) {
                g->allow_patchguard = attr_yes(c, "allow");
                return 0;
        }
        if (is_element(c, "window"))
                return parse_window(g, c);
        if (is_element(c, "pause")) {
                unsigned long ms;
                char *end;

                if (!attr(c, "max-ms", v, sizeof(v)))
                        return hvp_fail(-EINVAL, "line %u: pause without max-ms", line_of(c));
                errno = 0;
                ms = strtoul(v, &end, 10);
                if (errno || *end || ms < 1 || ms > 60000)
                        return hvp_fail(-EINVAL, "line %u: bad max-ms \"%s\"", line_of(c), v);
                g->max_pause_ms = (uint32_t)ms;
                return 0;
        }
        if (is_element(c, "baseline"))
                return parse_baseline(g, c);
        if (is_element(c, "reboot")) {
                unsigned long s;
                char *end;

                g->reboot_allow = attr_yes(c, "allow");
                if (!attr(c, "shutdown-timeout", v, sizeof(v)))
                        return 0;
                errno = 0;
                s = strtoul(v, &end, 10);
                if (errno || *end || !v[0] || s > HVP_POLICY_MAX_SHUTDOWN_TIMEOUT_S)
                        return hvp_fail(-EINVAL, "line %u: bad shutdown-timeout \"%s\" (0 to %u seconds)", line_of(c),
                                        v, HVP_POLICY_MAX_SHUTDOWN_TIMEOUT_S);
                g->shutdown_timeout_s = (uint32_t)s;
                return 0;
        }
        return 0;
}

static int parse_group(struct hvp_policy *p, const xmlNode *n)
{
        struct group *gs, *g;
        unsigned line = line_of(n);
        size_t current = 0;
        int r;

        if (p->n_groups >= MAX_GROUPS)
                return hvp_fail(-E2BIG, "line %u: more than %d groups", line, MAX_GROUPS);
        gs = realloc(p->groups, (p->n_groups + 1) * sizeof(*gs));
        if (!gs)
                return hvp_fail(-ENOMEM, "out of memory");
        p->groups = gs;
        g = &p->groups[p->n_groups++];
        *g = (struct group){ .line = line, .max_pause_ms = DEFAULT_MAX_PAUSE_MS,
                             .shutdown_timeout_s = HVP_POLICY_DEFAULT_SHUTDOWN_TIMEOUT_S };
        if (!attr(n, "name", g->name, sizeof(g->name)))
                return hvp_fail(-EINVAL, "line %u: group without a valid name", line);
        for (size_t i = 0; i + 1 < p->n_groups; i++)
                if (strcmp(p->groups[i].name, g->name) == 0)
                        return hvp_fail(-EINVAL, "line %u: a second group named \"%s\"", line, g->name);
        for (const xmlNode *c = n->children; c; c = c->next) {
                r = parse_group_child(g, c);
                if (r < 0)
                        return r;
        }
        if (g->name_globs.n + g->uuids.n + g->metadata.n == 0)
                return hvp_fail(-EINVAL, "line %u: group \"%s\" selects no guest", line, g->name);
        if (g->n_windows == 0)
                return hvp_fail(-EINVAL, "line %u: group \"%s\" has no maintenance window", line, g->name);
        for (size_t i = 0; i < g->n_baselines; i++)
                current += g->baselines[i].current;
        if (current != 1)
                return hvp_fail(-EINVAL, "line %u: group \"%s\" has %zu current baselines, not exactly one", line,
                                g->name, current);
        return 0;
}

static int parse_doc(struct hvp_policy *p, const xmlDoc *doc, const char *base_dir)
{
        const xmlNode *root = xmlDocGetRootElement((xmlDoc *)doc);
        int r;

        if (!root || !is_element(root, "policy") || root->ns)
                return hvp_fail(-EINVAL, "not an hvpatch policy (root element is not <policy>)");
        for (const xmlNode *c = root->children; c; c = c->next) {
                if (is_element(c, "key"))
                        r = parse_key(p, c, base_dir);
                else if (is_element(c, "group"))
                        r = parse_group(p, c);
                else
                        r = 0;
                if (r < 0)
                        return r;
        }
        return 0;
}

int hvp_policy_parse(const void *xml, size_t len, const char *base_dir, struct hvp_policy **ret_policy)
{
        struct hvp_policy *p;
        xmlDoc *doc = NULL;
        int r;

        if (!xml || !ret_policy)
                return hvp_fail(-EINVAL, "missing argument");
        if (len > HVP_POLICY_FILE_MAX)
                return hvp_fail(-E2BIG, "policy larger than %u bytes", HVP_POLICY_FILE_MAX);
        r = hvp_xml_read(xml, len, "policy", &doc);
        if (r < 0)
                return r;
        r = hvp_xml_validate(doc, hvp_policy_schema, hvp_policy_schema_len, "policy");
        if (r < 0) {
                xmlFreeDoc(doc);
                return r;
        }
        p = calloc(1, sizeof(*p));
        if (!p) {
                xmlFreeDoc(doc);
                return hvp_fail(-ENOMEM, "out of memory");
        }
        r = parse_doc(p, doc, base_dir);
        xmlFreeDoc(doc);
        if (r < 0) {
                hvp_policy_free(p);
                return r;
        }
        *ret_policy = p;
        return 0;
}

int hvp_policy_load(const char *path, struct hvp_policy **ret_policy)
{
        _cleanup_free_ void *buf = NULL;
        _cleanup_free_ char *dir = NULL;
        size_t len;
        int r;

        r = hvp_read_file_bounded(path, HVP_POLICY_FILE_MAX, &buf, &len);
        if (r < 0)
                return r;
        dir = strdup(path);
        if (!dir)
                return hvp_fail(-ENOMEM, "out of memory");
        r = hvp_policy_parse(buf, len, dirname(dir), ret_policy);
        if (r < 0)
                return hvp_fail_context(r, "%s", path);
        return 0;
}

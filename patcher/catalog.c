/*
 * Desired state (include/hvpatch/catalog.h): the catalog folder of signed bundles, the
 * desired set of a guest, and sync, which converges through hvp_op_apply only.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>


#include <hvpatch/catalog.h>
#include <hvpatch/guest.h>
#include <hvpatch/kernel.h>
#include <hvpatch/move.h>
#include <hvpatch/patch.h>

#include "common/error.h"
#include "common/util.h"

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_bundle_name(const char *n)
{
        size_t len = strlen(n);

        return n[0] != '.' && len > 4 && len <= HVP_CATALOG_NAME_MAX && strcmp(n + len - 4, ".hvp") == 0;
}

/* Read, verify and parse one catalog file into e (e->error and e->reason on failure). */
static void load_entry(const char *dir, const struct hvp_policy *policy, struct hvp_catalog_entry *e,
                       unsigned long long *bytes_left)
{
        void *data = NULL, *sig = NULL;
        size_t len = 0, sig_len = 0;
        char sig_path[HVP_PATH_MAX];
        struct hvp_signature_info info;
        struct hvp_bundle *b = NULL;
        struct stat st;
        int r;

        if (stat(e->path, &st) < 0 || !S_ISREG(st.st_mode)) {
                e->error = -EINVAL;
                snprintf(e->reason, sizeof(e->reason), "not a regular file");
                return;
        }
        if ((unsigned long long)st.st_size > *bytes_left) {
                e->error = -E2BIG;
                snprintf(e->reason, sizeof(e->reason), "not read: the catalog's bundles exceed %llu MiB in all",
                         HVP_CATALOG_MAX_BYTES >> 20);
                return;
        }
        r = hvp_read_file_bounded(e->path, HVP_BUNDLE_MAX, &data, &len);
        if (r < 0) {
                e->error = r;
                snprintf(e->reason, sizeof(e->reason), "cannot read it: %s", hvp_last_error());
                return;
        }
        *bytes_left -= HVP_MIN((unsigned long long)len, *bytes_left);
        snprintf(sig_path, sizeof(sig_path), "%s/%s.minisig", dir, e->file);
        r = hvp_read_file_bounded(sig_path, HVP_MINISIGN_SIG_FILE_MAX, &sig, &sig_len);
        if (r == -ENOENT) {
                e->error = -ENOKEY;
                snprintf(e->reason, sizeof(e->reason), "not signed: no %s.minisig", e->file);
                goto out;
        }
        if (r < 0) {
                e->error = r;
                snprintf(e->reason, sizeof(e->reason), "cannot read its signature: %s", hvp_last_error());
                goto out;
        }
        r = hvp_policy_verify(policy, data, len, sig, sig_len, 0, &info);
        if (r < 0) {
                e->error = r;
                snprintf(e->reason, sizeof(e->reason), "signature refused: %s", hvp_last_error());
                goto out;
        }
        r = hvp_bundle_open_mem(data, len, &b);        /* the bytes verified are the bytes parsed */
        if (r < 0) {
                e->error = r;
                snprintf(e->reason, sizeof(e->reason), "not a valid bundle: %s", hvp_last_error());
                goto out;
        }
        snprintf(e->patch_id, sizeof(e->patch_id), "%s", b->manifest.id);
        snprintf(e->series, sizeof(e->series), "%s", b->manifest.series);
        e->seq = b->manifest.sequence;
        hvp_hex_encode(b->manifest.build_id, b->manifest.build_id_len, e->target_build_id);
        snprintf(e->key_name, sizeof(e->key_name), "%s", info.key_name);
        e->error = 0;
out:
        hvp_bundle_free(b);
        free(sig);
        free(data);
}

int hvp_catalog_load(const char *dir, const struct hvp_policy *policy, struct hvp_catalog **ret)
{
        unsigned long long bytes_left = HVP_CATALOG_MAX_BYTES;
        struct hvp_catalog *c = NULL;
        char **names = NULL;
        size_t n = 0, seen = 0;
        struct dirent *d;
        DIR *dp;
        int r = 0;

        if (!dir || !policy || !ret)
                return hvp_fail(-EINVAL, "hvp_catalog_load: no folder or policy");
        dp = opendir(dir);
        if (!dp) {
                r = errno == ENOENT ? -ENOENT : errno == ENOTDIR ? -EINVAL : -EIO;
                return hvp_fail(r, "catalog %s: %s", dir, strerror(errno));
        }
        names = calloc(HVP_CATALOG_MAX_DIRENTS, sizeof(*names));
        if (!names) {
                closedir(dp);
                return hvp_fail(-ENOMEM, "out of memory");
        }
        while ((d = readdir(dp)) != NULL) {
                if (++seen > HVP_CATALOG_MAX_DIRENTS) {
                        r = hvp_fail(-E2BIG, "catalog %s: more than %u entries in the folder", dir,
                                     HVP_CATALOG_MAX_DIRENTS);
                        goto out;
                }
                if (!is_bundle_name(d->d_name))
                        continue;
                names[n] = strdup(d->d_name);
                if (!names[n]) {
                        r = hvp_fail(-ENOMEM, "out of memory");
                        goto out;
                }
                n++;
        }
        qsort(names, n, sizeof(*names), cmp_str);
        c = calloc(1, sizeof(*c));
        if (!c || !(c->dir = strdup(dir)) || !(c->entries = calloc(HVP_MAX(n, 1), sizeof(*c->entries)))) {
                r = hvp_fail(-ENOMEM, "out of memory");
                goto out;
        }
        for (size_t i = 0; i < n; i++) {
                struct hvp_catalog_entry *e = &c->entries[c->n_entries];

                snprintf(e->file, sizeof(e->file), "%s", names[i]);
                if (asprintf(&e->path, "%s/%s", dir, names[i]) < 0) {
                        e->path = NULL;
                        r = hvp_fail(-ENOMEM, "out of memory");
                        goto out;
                }
                c->n_entries++;
                if (i >= HVP_CATALOG_MAX_FILES) {
                        e->error = -E2BIG;
                        snprintf(e->reason, sizeof(e->reason), "not read: the catalog holds more than %u bundles",
                                 HVP_CATALOG_MAX_FILES);
                        continue;
                }
                load_entry(dir, policy, e, &bytes_left);
                c->n_usable += e->error == 0;
                if (e->error)
                        hvp_info("catalog: %s skipped: %s", e->file, e->reason);
        }
out:
        closedir(dp);
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
        if (r < 0) {
                hvp_catalog_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

void hvp_catalog_free(struct hvp_catalog *c)
{
        if (!c)
                return;
        for (size_t i = 0; i < c->n_entries; i++)
                free(c->entries[i].path);
        free(c->entries);
        free(c->dir);
        free(c);
}

const char *hvp_sync_action_name(enum hvp_sync_action a)
{
        switch (a) {
        case HVP_SYNC_NOTHING:
                return "nothing";
        case HVP_SYNC_APPLY:
                return "apply";
        case HVP_SYNC_REPLACE:
                return "replace";
        case HVP_SYNC_REBOOT_REQUIRED:
                return "reboot-required";
        case HVP_SYNC_UNMANAGED:
                return "unmanaged";
        case HVP_SYNC_MARKED_BAD:
                return "marked-bad";
        }
        return "?";
}

/* What the policy says of one catalog entry for this guest. */
struct verdict {
        bool for_kernel;        /* built for the running kernel */
        bool allowed;
        bool outside_window;    /* allowed but for the window */
        char why[300];          /* refused: the first reason */
};

static void judge(const struct hvp_policy *policy, const struct hvp_guest_facts *facts,
                  const struct hvp_catalog_entry *e, struct verdict *v)
{
        struct hvp_bundle_facts bf = { .patch_id = e->patch_id, .series = e->series, .seq = e->seq,
                                       .target_build_id = e->target_build_id, .signer = e->key_name };
        struct hvp_decision d;
        bool only_window = true;

        memset(v, 0, sizeof(*v));
        v->for_kernel = facts->kernel_build_id && strcasecmp(facts->kernel_build_id, e->target_build_id) == 0;
        if (!v->for_kernel)
                return;
        if (hvp_policy_authorize(policy, facts, &bf, &d) == 0) {
                v->allowed = true;
                return;
        }
        for (size_t i = 0; i < d.n_reasons; i++)
                only_window &= d.reasons[i].code == HVP_REASON_OUTSIDE_WINDOW;
        if (d.verdict == HVP_VERDICT_REFUSE && d.n_reasons && only_window) {
                v->allowed = v->outside_window = true;
                return;
        }
        snprintf(v->why, sizeof(v->why), "%s: %s", d.n_reasons ? hvp_reason_name(d.reasons[0].code) : "refused",
                 d.n_reasons ? d.reasons[0].text : hvp_verdict_name(d.verdict));
}

static int add_series(struct hvp_desired_plan *p, const char *series)
{
        for (size_t i = 0; i < p->n_series; i++)
                if (strcmp(p->series[i].series, series) == 0)
                        return 0;
        snprintf(p->series[p->n_series].series, sizeof(p->series[0].series), "%s", series);
        p->n_series++;
        return 0;
}

static int cmp_series(const void *a, const void *b)
{
        return strcmp(((const struct hvp_series_plan *)a)->series, ((const struct hvp_series_plan *)b)->series);
}

/*
 * The series' newest bundle is marked bad: desired is the newest unmarked one (best,
 * may be NULL). Its action if there is one to take, else marked-bad; the note names the mark.
 */
static void plan_marked(struct hvp_series_plan *s, const struct hvp_catalog_entry *marked,
                        const struct hvp_catalog_entry *best, const struct hvp_bad_list *bad, const char *build_id)
{
        const struct hvp_bad_mark *m = hvp_bad_list_find(bad, build_id, marked->patch_id);
        bool actual_ok = s->has_actual && s->actual.state == HVP_PATCH_APPLIED;

        if (best && !(s->has_actual && s->actual.state == HVP_PATCH_FOREIGN)) {
                if (!s->has_actual)
                        s->action = HVP_SYNC_APPLY;
                else if (actual_ok && s->actual.seq < best->seq)
                        s->action = HVP_SYNC_REPLACE;
        }
        if (s->action == HVP_SYNC_NOTHING)
                s->action = HVP_SYNC_MARKED_BAD;
        snprintf(s->note, sizeof(s->note), "%.100s (seq %llu) is marked bad for this kernel build (%.200s)%s%.100s: "
                 "'hvpatch bad clear' allows it again", marked->patch_id, (unsigned long long)marked->seq,
                 m ? m->reason : "health gate", best && s->action != HVP_SYNC_MARKED_BAD ? "; desired instead: " : "",
                 best && s->action != HVP_SYNC_MARKED_BAD ? best->patch_id : "");
        if (s->action != HVP_SYNC_MARKED_BAD && s->outside_window)
                snprintf(s->note + strlen(s->note), sizeof(s->note) - strlen(s->note),
                         "; outside the maintenance window: waits for it");
}

static void plan_series(const struct hvp_catalog *cat, const struct hvp_actual_patch *actual, size_t n_actual,
                        const struct verdict *v, const struct hvp_bad_list *bad, const char *build_id,
                        struct hvp_series_plan *s)
{
        const struct hvp_catalog_entry *best = NULL, *marked = NULL;
        const char *refused = NULL, *refused_file = NULL;
        bool in_catalog = false, for_kernel = false;

        for (size_t i = 0; i < cat->n_entries; i++) {
                const struct hvp_catalog_entry *e = &cat->entries[i];

                if (e->error || strcmp(e->series, s->series) != 0)
                        continue;
                in_catalog = true;
                for_kernel |= v[i].for_kernel;
                if (v[i].for_kernel && !v[i].allowed && !refused) {
                        refused = v[i].why;
                        refused_file = e->file;
                }
                if (v[i].allowed && hvp_bad_list_find(bad, build_id, e->patch_id)) {
                        if (!marked || e->seq > marked->seq)
                                marked = e;
                        continue;
                }
                if (v[i].allowed && (!best || e->seq > best->seq))
                        best = e;
        }
        if (marked && best && marked->seq <= best->seq)
                marked = NULL;          /* an older marked bundle holds nothing back */
        s->marked = marked;
        for (size_t i = 0; i < n_actual; i++)
                if (strcmp(actual[i].series, s->series) == 0 &&
                    (actual[i].state == HVP_PATCH_APPLIED || actual[i].state == HVP_PATCH_FOREIGN)) {
                        s->has_actual = true;
                        s->actual = actual[i];
                        break;
                }
        s->desired = best;
        s->outside_window = best && v[best - cat->entries].outside_window;
        s->action = HVP_SYNC_NOTHING;
        if (marked) {
                plan_marked(s, marked, best, bad, build_id);
                return;
        }
        if (!best) {
                if (s->has_actual && !in_catalog) {
                        s->action = HVP_SYNC_UNMANAGED;
                        snprintf(s->note, sizeof(s->note), "%s is applied, but the catalog holds no bundle of "
                                 "its series: kept", s->actual.patch_id);
                } else if (refused) {
                        snprintf(s->note, sizeof(s->note), "%s refused by the policy: %s", refused_file, refused);
                } else if (!for_kernel) {
                        snprintf(s->note, sizeof(s->note), "no bundle in the catalog for this kernel build");
                }
                return;
        }
        if (s->has_actual && s->actual.state == HVP_PATCH_FOREIGN) {
                snprintf(s->note, sizeof(s->note), "%s: memory holds neither it nor the original bytes: not touched",
                         s->actual.patch_id);
                return;
        }
        if (!s->has_actual)
                s->action = HVP_SYNC_APPLY;
        else if (s->actual.seq < best->seq)
                s->action = HVP_SYNC_REPLACE;
        else if (s->actual.seq > best->seq)
                snprintf(s->note, sizeof(s->note), "%s (seq %llu) is newer than the catalog's seq %llu: kept",
                         s->actual.patch_id, (unsigned long long)s->actual.seq, (unsigned long long)best->seq);
        if (s->action != HVP_SYNC_NOTHING && s->outside_window)
                snprintf(s->note, sizeof(s->note), "outside the maintenance window: waits for it");
}

int hvp_desired_compute(const struct hvp_catalog *catalog, const struct hvp_policy *policy,
                        const struct hvp_guest_facts *facts, const struct hvp_actual_patch *actual,
                        size_t n_actual, struct hvp_desired_plan **ret)
{
        return hvp_desired_compute_marked(catalog, policy, facts, actual, n_actual, NULL, ret);
}

int hvp_desired_compute_marked(const struct hvp_catalog *catalog, const struct hvp_policy *policy,
                               const struct hvp_guest_facts *facts, const struct hvp_actual_patch *actual,
                               size_t n_actual, const struct hvp_bad_list *bad, struct hvp_desired_plan **ret)
{
        struct hvp_guest_facts f;
        struct hvp_desired_plan *p;
        struct verdict *v;

        if (!catalog || !policy || !facts || (!actual && n_actual) || !ret)
                return hvp_fail(-EINVAL, "hvp_desired_compute: missing argument");
        p = calloc(1, sizeof(*p));
        v = calloc(HVP_MAX(catalog->n_entries, 1), sizeof(*v));
        if (p)
                p->series = calloc(catalog->n_entries + n_actual + 1, sizeof(*p->series));
        if (!p || !v || !p->series) {
                free(v);
                hvp_desired_plan_free(p);
                return hvp_fail(-ENOMEM, "out of memory");
        }
        hvp_policy_assess(policy, facts, &p->compliance);
        /* What is applied decides the action, not whether a bundle is wanted. */
        f = *facts;
        f.applied = NULL;
        f.n_applied = 0;
        for (size_t i = 0; i < catalog->n_entries; i++) {
                if (catalog->entries[i].error)
                        continue;
                judge(policy, &f, &catalog->entries[i], &v[i]);
                add_series(p, catalog->entries[i].series);
        }
        for (size_t i = 0; i < n_actual; i++)
                if (actual[i].state == HVP_PATCH_APPLIED || actual[i].state == HVP_PATCH_FOREIGN)
                        add_series(p, actual[i].series);
        qsort(p->series, p->n_series, sizeof(*p->series), cmp_series);
        for (size_t i = 0; i < p->n_series; i++) {
                struct hvp_series_plan *s = &p->series[i];

                plan_series(catalog, actual, n_actual, v, bad, facts->kernel_build_id, s);
                if (p->compliance.verdict == HVP_VERDICT_UNMANAGED ||
                    p->compliance.verdict == HVP_VERDICT_REBOOT_REQUIRED) {
                        s->action = p->compliance.verdict == HVP_VERDICT_UNMANAGED ? HVP_SYNC_UNMANAGED
                                                                                   : HVP_SYNC_REBOOT_REQUIRED;
                        snprintf(s->note, sizeof(s->note), "%s",
                                 p->compliance.n_reasons ? p->compliance.reasons[0].text
                                                         : hvp_verdict_name(p->compliance.verdict));
                }
        }
        free(v);
        *ret = p;
        return 0;
}

void hvp_desired_plan_free(struct hvp_desired_plan *p)
{
        if (!p)
                return;
        free(p->series);
        free(p);
}

void hvp_sync_result_free(struct hvp_sync_result *r)
{
        if (!r)
                return;
        for (size_t i = 0; i < r->n_steps; i++)
                free(r->steps[i].outcome);
        free(r->steps);
        hvp_desired_plan_free(r->plan);
        free(r->move);
        hvp_bad_list_free(r->bad);
        free(r->actual);
        hvp_guest_state_free(r->state);
        free(r);
}

/* A reboot-required guest's baseline move (baseline-move.c), for the caller to run. */
static int sync_move_plan(struct hvp_guest *g, const struct hvp_kernel *k, const struct hvp_policy *policy,
                          const struct hvp_guest_facts *facts, struct hvp_sync_result *res)
{
        const char *xml = hvp_guest_domain_xml(g);

        if (res->plan->compliance.verdict != HVP_VERDICT_REBOOT_REQUIRED)
                return 0;
        res->move = calloc(1, sizeof(*res->move));
        if (!res->move)
                return hvp_fail(-ENOMEM, "out of memory");
        return hvp_move_plan_compute(policy, facts, &res->plan->compliance, k->banner, xml, xml ? strlen(xml) : 0,
                                     res->move);
}

int hvp_op_sync(struct hvp_guest *g, struct hvp_mmu *mmu, const struct hvp_kernel *k, const char *state_dir,
                const struct hvp_policy *policy, const struct hvp_catalog *catalog, bool dry_run,
                struct hvp_sync_result **ret)
{
        struct hvp_sync_options opts = { .dry_run = dry_run };

        return hvp_op_sync_ex(g, mmu, k, state_dir, policy, catalog, &opts, ret);
}

int hvp_op_sync_ex(struct hvp_guest *g, struct hvp_mmu *mmu, const struct hvp_kernel *k, const char *state_dir,
                   const struct hvp_policy *policy, const struct hvp_catalog *catalog,
                   const struct hvp_sync_options *opts, struct hvp_sync_result **ret)
{
        bool dry_run = opts && opts->dry_run;
        struct hvp_applied_series *applied = NULL;
        struct hvp_sync_result *res;
        struct hvp_guest_facts facts;
        char build_id[2 * 64 + 1];
        int r;

        if (!g || !mmu || !k || !policy || !catalog || !ret)
                return hvp_fail(-EINVAL, "hvp_op_sync: missing argument");
        res = calloc(1, sizeof(*res));
        if (!res)
                return hvp_fail(-ENOMEM, "out of memory");
        r = hvp_op_state(g, mmu, k, state_dir, policy, &res->state);
        if (r < 0)
                goto fail;
        res->actual = calloc(HVP_MAX(res->state->n_patches, 1), sizeof(*res->actual));
        if (!res->actual) {
                r = hvp_fail(-ENOMEM, "out of memory");
                goto fail;
        }
        for (size_t i = 0; i < res->state->n_patches; i++) {
                const struct hvp_plan *p = res->state->patches[i].entry->plan;

                res->actual[i] = (struct hvp_actual_patch){ p->patch_id, p->series, p->seq,
                                                            res->state->patches[i].state };
        }
        r = hvp_guest_facts_gather(g, mmu, k, res->state->rec, build_id, &applied, &facts);
        if (r < 0)
                goto fail;
        r = hvp_bad_list_load(state_dir, build_id, &res->bad);
        if (r < 0) {
                free(applied);
                r = hvp_fail_context(r, "reading the bad marks");
                goto fail;
        }
        r = hvp_desired_compute_marked(catalog, policy, &facts, res->actual, res->state->n_patches, res->bad,
                                       &res->plan);
        free(applied);
        if (r < 0)
                goto fail;
        r = sync_move_plan(g, k, policy, &facts, res);
        if (r < 0)
                goto fail;
        res->steps = calloc(HVP_MAX(res->plan->n_series, 1), sizeof(*res->steps));
        if (!res->steps) {
                r = hvp_fail(-ENOMEM, "out of memory");
                goto fail;
        }
        for (size_t i = 0; i < res->plan->n_series; i++) {
                const struct hvp_series_plan *s = &res->plan->series[i];
                struct hvp_sync_step *step;

                if (s->action != HVP_SYNC_APPLY && s->action != HVP_SYNC_REPLACE)
                        continue;
                step = &res->steps[res->n_steps++];
                step->plan = s;
                if (dry_run || s->outside_window)
                        continue;
                step->outcome = calloc(1, sizeof(*step->outcome));
                if (!step->outcome) {
                        r = hvp_fail(-ENOMEM, "out of memory");
                        goto fail;
                }
                step->attempted = true;
                hvp_info("%s: %s %s (%s)", hvp_guest_name(g), hvp_sync_action_name(s->action), s->desired->patch_id,
                         s->desired->file);
                r = hvp_op_apply(&(struct hvp_apply_request){ .domain = hvp_guest_name(g), .guest = g, .mmu = mmu,
                                                              .kernel = k, .bundle_path = s->desired->path,
                                                              .policy = policy, .state_dir = state_dir,
                                                              .health_seconds = opts ? opts->health_seconds : 0,
                                                              .health_stop = opts ? opts->health_stop : NULL,
                                                              .health_userdata = opts ? opts->health_userdata : NULL },
                                 step->outcome);
                if (r < 0)
                        goto fail;
                if (step->outcome->exit_class && !res->exit_class)
                        res->exit_class = step->outcome->exit_class;
        }
        *ret = res;
        return 0;
fail:
        hvp_sync_result_free(res);
        return r;
}

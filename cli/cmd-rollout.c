/*
 * rollout: one bundle over the guests of this host, ring by ring, several at once,
 * each through hvp_op_apply with the health gate; a ring with too many failures halts
 * the rollout (and may revert that ring). Progress is kept in a state file written
 * after every guest, so that an interrupted rollout resumes where it stopped.
 */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include <hvpatch/catalog.h>
#include <hvpatch/kernel.h>
#include <hvpatch/ops.h>

#include "cli/commands.h"
#include "cli/compliance.h"
#include "cli/health.h"
#include "cli/patching.h"
#include "cli/rollout.h"
#include "common/escape.h"
#include "common/util.h"

static const char help[] =
        "Applies BUNDLE to the running guests of this host, ring by ring: each guest as\n"
        "'hvpatch apply --health SECONDS' does (signature, policy, plan, one pause window,\n"
        "then the health gate), several at once within a ring. A guest the policy does not\n"
        "let have it now (outside its maintenance window, reboot-required, unmanaged) is\n"
        "skipped and counted, never patched; one that already holds it counts as done.\n"
        "When a ring ends with more failures than --max-failures (a failed health gate,\n"
        "a refusal, a site mismatch, an error) the rollout halts: later rings are not\n"
        "touched. After each ring, --soak waits, then reads each patched guest of the ring\n"
        "again (memory must still hold the patch: else a failure).\n"
        "The progress is saved after every guest in a state file; run the same command\n"
        "again to resume an interrupted rollout: finished guests are not touched, one\n"
        "that was being patched is read first (holding the patch: done). A halted\n"
        "rollout stays halted: remove the state file to start over.\n\n"
        "Options:\n"
        "  --domains GLOB[,GLOB]  only running domains whose name matches (default: all;\n"
        "                         the policy decides which it manages)\n"
        "  --rings SIZES          cumulative ring sizes, N guests or P% of all (rounded up),\n"
        "                         comma-separated (default 1,10%,100%); guests sorted by\n"
        "                         name; a ring adding nobody is dropped; the last takes the rest;\n"
        "                         or @GROUP[,@GROUP...]: a ring per policy group, in that order\n"
        "                         (a guest in none of them is left out)\n"
        "  --parallel N           guests patched at once within a ring (default 2, 1..64)\n"
        "  --health SECONDS       the health gate after each apply (default 10; 0: none)\n"
        "  --soak SECONDS         wait after each ring, then re-read its guests (default 0)\n"
        "  --max-failures N       failures a ring may have without halting (default 0)\n"
        "  --revert-on-halt       revert the halting ring's patched guests\n"
        "  --state FILE           the state file (default STATE_DIR/rollouts/SHA256.json,\n"
        "                         SHA256 the bundle's)\n"
        "  --sig FILE             signature file (default BUNDLE.minisig)\n"
        "  --json                 JSON lines: events ring-start, guest, ring-end, summary\n"
        "Output: on a terminal one line per guest of the ring, updated in place; else a\n"
        "line per result.\n"
        "Exit codes: 0 every guest done or skipped; 6 halted on a failed health gate;\n"
        "else the exit code of the first failure (3 refused, 4 busy, 5 mismatch,\n"
        "1 error), also when failures within --max-failures did not halt; 2 usage\n"
        "(also a state file of another bundle).\n";

#define MAX_PARALLEL 64
#define MAX_SOAK 86400

struct args {
        const char *bundle, *sig, *domains, *rings, *state;
        unsigned parallel, health, soak, max_failures;
        bool revert_on_halt;
};

struct ro {
        struct cli *c;
        struct args *a;
        const char *state_dir, *state_path;
        struct rollout_state st;
        pthread_mutex_t lock;
        bool tty;
        /* the ring being run */
        size_t *ring_idx, ring_n, next;
        size_t tty_lines;               /* lines of the ring's block on the terminal */
        int save_err;
};

static int parse_args(struct cli *c, int argc, char **argv, struct args *a)
{
        a->parallel = 2;
        a->health = 10;
        a->rings = "1,10%,100%";
        for (int i = 0; i < argc; i++) {
                const char *o = argv[i];
                uint64_t v;

                if (strcmp(o, "--revert-on-halt") == 0) {
                        a->revert_on_halt = true;
                } else if (strcmp(o, "--json") == 0) {
                        c->json = true;
                } else if (i + 1 >= argc || o[0] != '-') {
                        if (o[0] == '-' || a->bundle)
                                return cli_usage(c, cli_find_command("rollout"));
                        a->bundle = o;
                } else if (strcmp(o, "--domains") == 0) {
                        a->domains = argv[++i];
                } else if (strcmp(o, "--rings") == 0) {
                        a->rings = argv[++i];
                } else if (strcmp(o, "--state") == 0) {
                        a->state = argv[++i];
                } else if (strcmp(o, "--sig") == 0) {
                        a->sig = argv[++i];
                } else if (strcmp(o, "--health") == 0) {
                        int r = cli_parse_health(c, argv[++i], &a->health);

                        if (r)
                                return r;
                } else if (strcmp(o, "--parallel") == 0) {
                        if (!cli_parse_u64(argv[++i], &v) || v < 1 || v > MAX_PARALLEL)
                                return cli_error(c, EXIT_USAGE, "--parallel takes 1..%d", MAX_PARALLEL);
                        a->parallel = (unsigned)v;
                } else if (strcmp(o, "--soak") == 0) {
                        if (!cli_parse_u64(argv[++i], &v) || v > MAX_SOAK)
                                return cli_error(c, EXIT_USAGE, "--soak takes 0..%d seconds", MAX_SOAK);
                        a->soak = (unsigned)v;
                } else if (strcmp(o, "--max-failures") == 0) {
                        if (!cli_parse_u64(argv[++i], &v) || v > ROLLOUT_MAX_GUESTS)
                                return cli_error(c, EXIT_USAGE, "--max-failures takes 0..%d", ROLLOUT_MAX_GUESTS);
                        a->max_failures = (unsigned)v;
                } else {
                        return cli_usage(c, cli_find_command("rollout"));
                }
        }
        if (!a->bundle)
                return cli_usage(c, cli_find_command("rollout"));
        return EXIT_OK;
}

/* Whether name matches one of the comma-separated globs (NULL: all). */
static bool selected(const char *globs, const char *name)
{
        char pat[512];
        const char *p = globs;

        if (!globs)
                return true;
        while (*p) {
                size_t len = strcspn(p, ",");

                if (len > 0 && len < sizeof(pat)) {
                        memcpy(pat, p, len);
                        pat[len] = '\0';
                        if (fnmatch(pat, name, 0) == 0)
                                return true;
                }
                p += len;
                if (*p == ',')
                        p++;
        }
        return false;
}

/* The SHA-256 of the bundle file, read whole (at most HVP_BUNDLE_MAX bytes). */
static int bundle_hash(const char *path, char out[ROLLOUT_HASH_HEX], char *why, size_t why_size)
{
        crypto_hash_sha256_state h;
        unsigned char buf[65536], md[32];
        size_t total = 0;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0) {
                snprintf(why, why_size, "%s: %s", path, strerror(errno));
                return -errno;
        }
        crypto_hash_sha256_init(&h);
        for (;;) {
                ssize_t k = read(fd, buf, sizeof(buf));

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        int r = -errno;

                        snprintf(why, why_size, "%s: %s", path, strerror(errno));
                        close(fd);
                        return r;
                }
                if (k == 0)
                        break;
                total += (size_t)k;
                if (total > HVP_BUNDLE_MAX) {
                        close(fd);
                        snprintf(why, why_size, "%s: over %u bytes", path, (unsigned)HVP_BUNDLE_MAX);
                        return -E2BIG;
                }
                crypto_hash_sha256_update(&h, buf, (size_t)k);
        }
        close(fd);
        crypto_hash_sha256_final(&h, md);
        hvp_hex_encode(md, sizeof(md), out);
        return 0;
}

/* ---- output ---- */

static void json_line(json_object *o)
{
        o = cli_json_stamp(o, "rollout-event");
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        fflush(stdout);
        json_object_put(o);
}

static void guest_text(const struct rollout_guest *e, char *out, size_t size)
{
        snprintf(out, size, "  %-32s %-8s%s%s", e->domain, rollout_status_name(e->status), e->detail[0] ? " " : "",
                 e->detail);
        hvp_text_sanitize(out);
}

/* The ring's block again, in place (terminal only). Caller holds the lock. */
static void tty_redraw(struct ro *ro)
{
        char line[1024];

        if (ro->tty_lines)
                printf("\033[%zuA", ro->tty_lines);
        for (size_t i = 0; i < ro->ring_n; i++) {
                guest_text(&ro->st.guests[ro->ring_idx[i]], line, sizeof(line));
                printf("\r\033[2K%s\n", line);
        }
        ro->tty_lines = ro->ring_n;
        fflush(stdout);
}

/* A guest's new state: shown, and saved. Caller holds the lock. */
static void guest_event(struct ro *ro, const struct rollout_guest *e, bool final)
{
        if (ro->c->json) {
                json_object *o;

                if (!final)
                        return;
                o = json_object_new_object();
                json_object_object_add(o, "event", json_object_new_string("guest"));
                json_object_object_add(o, "ring", json_object_new_int((int)e->ring + 1));
                json_object_object_add(o, "domain", json_object_new_string(e->domain));
                json_object_object_add(o, "status", json_object_new_string(rollout_status_name(e->status)));
                json_object_object_add(o, "code", e->code[0] ? json_object_new_string(e->code) : NULL);
                json_object_object_add(o, "exit", json_object_new_int(e->exit_class));
                json_object_object_add(o, "detail", json_object_new_string(e->detail));
                json_object_object_add(o, "pause_ms", e->applied_now ? json_object_new_double(e->pause_ms) : NULL);
                json_line(o);
        } else if (ro->tty) {
                tty_redraw(ro);
        } else if (final) {
                char line[1024];

                guest_text(e, line, sizeof(line));
                printf("%s\n", line);
                fflush(stdout);
        }
}

static void save(struct ro *ro)
{
        int r = rollout_state_save(ro->state_path, &ro->st);

        if (r < 0 && !ro->save_err) {
                ro->save_err = r;
                fprintf(stderr, "hvpatch: writing %s: %s\n", ro->state_path, strerror(-r));
        }
}

/* ---- one guest ---- */

static bool skip_code(const char *code)
{
        static const char *const codes[] = { "outside-window", "old-baseline", "no-group", "unknown-kernel" };

        for (size_t i = 0; i < HVP_ARRAY_SIZE(codes); i++)
                if (strcmp(code, codes[i]) == 0)
                        return true;
        return false;
}

/* A refusal every one of whose reasons says "not now / not this guest": skipped. */
static bool is_skip(const struct hvp_apply_outcome *o)
{
        size_t n = 0;

        if (o->exit_class != HVP_EXIT_REFUSED || o->n_reasons == 0)
                return false;
        for (size_t i = 0; i < o->n_reasons; i++) {
                if (strcmp(o->reasons[i].stage, "policy") != 0 || !skip_code(o->reasons[i].code))
                        return false;
                n++;
        }
        return n > 0;
}

static bool is_already(const struct hvp_apply_outcome *o)
{
        return o->exit_class == HVP_EXIT_REFUSED && o->n_reasons == 1 && strcmp(o->reasons[0].code, "not-newer") == 0;
}

/*
 * Open and attach a running guest; then memory's word on patch_id: 1 applied, 0 not,
 * <0 an error (why filled). With revert, the applied patch is reverted instead.
 */
static int guest_patch(struct ro *ro, const char *domain, const char *patch_id, bool revert, char *why,
                       size_t why_size)
{
        struct hvp_live_options live = { .uri = ro->c->uri };
        struct hvp_guest *g = NULL;
        struct hvp_mmu *mmu = NULL;
        struct hvp_kernel *k = NULL;
        struct hvp_guest_state *gs = NULL;
        int r;

        r = hvp_guest_open_live(domain, &live, &g);
        if (r < 0) {
                snprintf(why, why_size, "opening the domain: %s", hvp_last_error());
                goto out;
        }
        r = hvp_linux_attach(g, &mmu, &k, NULL);
        if (r < 0) {
                snprintf(why, why_size, "finding the kernel: %s", hvp_last_error());
                goto out;
        }
        if (revert) {
                struct hvp_revert_outcome rv;

                r = hvp_op_revert(g, k, ro->state_dir, patch_id, &rv);
                if (r == 0 && rv.exit_class != 0) {
                        snprintf(why, why_size, "revert: %.900s", rv.error);
                        r = -EIO;
                } else if (r < 0) {
                        snprintf(why, why_size, "revert: %s", hvp_last_error());
                }
                goto out;
        }
        r = hvp_op_state(g, mmu, k, ro->state_dir, NULL, &gs);
        if (r < 0) {
                snprintf(why, why_size, "reading the patch state: %s", hvp_last_error());
                goto out;
        }
        r = 0;
        snprintf(why, why_size, "%s not in the record", patch_id);
        for (size_t i = 0; i < gs->n_patches; i++)
                if (strcmp(gs->patches[i].entry->plan->patch_id, patch_id) == 0) {
                        r = gs->patches[i].state == HVP_PATCH_APPLIED;
                        snprintf(why, why_size, "memory says %s", hvp_patch_state_name(gs->patches[i].state));
                }
out:
        hvp_guest_state_free(gs);
        hvp_kernel_free(k);
        hvp_mmu_free(mmu);
        hvp_guest_free(g);
        return r;
}

static void apply_one(struct ro *ro, size_t idx)
{
        struct rollout_guest *e = &ro->st.guests[idx];
        struct hvp_live_options live = { .uri = ro->c->uri };
        struct hvp_apply_request req = {
                .domain = e->domain,
                .live = &live,
                .bundle_path = ro->a->bundle,
                .sig_path = ro->a->sig,
                .policy_path = ro->c->policy,
                .state_dir = ro->state_dir,
                .health_seconds = ro->a->health,
        };
        struct hvp_apply_outcome *o = calloc(1, sizeof(*o));
        struct rollout_guest res = *e;

        pthread_mutex_lock(&ro->lock);
        e->status = RO_RUNNING;
        snprintf(e->detail, sizeof(e->detail), "applying");
        save(ro);
        guest_event(ro, e, false);
        pthread_mutex_unlock(&ro->lock);

        res.code[0] = '\0';
        res.applied_now = false;
        res.exit_class = 0;
        if (!o) {
                res.status = RO_FAILED;
                res.exit_class = EXIT_ERROR;
                snprintf(res.detail, sizeof(res.detail), "out of memory");
        } else if (hvp_op_apply(&req, o) < 0) {
                res.status = RO_FAILED;
                res.exit_class = EXIT_ERROR;
                snprintf(res.detail, sizeof(res.detail), "apply: %s", hvp_last_error());
        } else if (o->exit_class == 0) {
                res.status = RO_DONE;
                res.applied_now = true;
                res.pause_ms = o->report.pause_ms;
                snprintf(res.detail, sizeof(res.detail), "applied %s: pause %.3f ms%s%s", o->patch_id,
                         o->report.pause_ms, o->health.result ? ", health " : "",
                         o->health.result ? hvp_health_result_name(o->health.result) : "");
        } else if (is_already(o)) {
                res.status = RO_DONE;
                snprintf(res.code, sizeof(res.code), "already");
                snprintf(res.detail, sizeof(res.detail), "already applied: %.480s", o->first_error);
        } else if (is_skip(o)) {
                res.status = RO_SKIPPED;
                snprintf(res.code, sizeof(res.code), "%s", o->reasons[0].code);
                snprintf(res.detail, sizeof(res.detail), "%.500s", o->first_error);
        } else {
                res.status = RO_FAILED;
                res.exit_class = o->exit_class;
                snprintf(res.code, sizeof(res.code), "%s",
                         o->exit_class == HVP_EXIT_HEALTH ? "health"
                         : o->n_reasons && o->reasons[0].code[0] ? o->reasons[0].code
                                                                 : o->n_reasons ? o->reasons[0].stage : "error");
                snprintf(res.detail, sizeof(res.detail), "%.500s", o->first_error);
        }
        hvp_text_sanitize(res.detail);
        hvp_text_sanitize(res.code);
        pthread_mutex_lock(&ro->lock);
        if (o && o->has_bundle && !ro->st.patch_id[0]) {
                snprintf(ro->st.patch_id, sizeof(ro->st.patch_id), "%s", o->patch_id);
                hvp_text_sanitize(ro->st.patch_id);
        }
        *e = res;
        save(ro);
        guest_event(ro, e, true);
        pthread_mutex_unlock(&ro->lock);
        free(o);
}

static void *worker(void *arg)
{
        struct ro *ro = arg;

        for (;;) {
                size_t i;

                pthread_mutex_lock(&ro->lock);
                i = ro->next++;
                pthread_mutex_unlock(&ro->lock);
                if (i >= ro->ring_n)
                        return NULL;
                if (ro->st.guests[ro->ring_idx[i]].status == RO_PENDING)
                        apply_one(ro, ro->ring_idx[i]);
        }
}

/* ---- rings ---- */

static void ring_counts(const struct ro *ro, unsigned ring, size_t counts[RO__MAX])
{
        memset(counts, 0, RO__MAX * sizeof(counts[0]));
        for (size_t i = 0; i < ro->st.n_guests; i++)
                if (ro->st.guests[i].ring == ring || ring == (unsigned)-1)
                        counts[ro->st.guests[i].status]++;
}

static json_object *counts_json(const size_t counts[RO__MAX])
{
        json_object *o = json_object_new_object();

        for (int s = 0; s < RO__MAX; s++)
                json_object_object_add(o, rollout_status_name((enum rollout_status)s),
                                       json_object_new_int64((int64_t)counts[s]));
        return o;
}

/* Exit code of the failures among the ring's (or all) guests: 6 if a health gate failed, else the first's. */
static int failure_exit(const struct ro *ro, unsigned ring)
{
        int first = 0;

        for (size_t i = 0; i < ro->st.n_guests; i++) {
                const struct rollout_guest *e = &ro->st.guests[i];

                if ((e->ring != ring && ring != (unsigned)-1) || e->status != RO_FAILED)
                        continue;
                if (e->exit_class == EXIT_HEALTH)
                        return EXIT_HEALTH;
                if (!first)
                        first = e->exit_class ? e->exit_class : EXIT_ERROR;
        }
        return first;
}

/* Run ring `ring`; returns true when it halts the rollout. */
static bool run_ring(struct ro *ro, unsigned ring)
{
        pthread_t threads[MAX_PARALLEL];
        unsigned started = 0;
        size_t counts[RO__MAX];
        char why[1024];
        bool halt;

        ro->ring_n = ro->next = ro->tty_lines = 0;
        for (size_t i = 0; i < ro->st.n_guests; i++)
                if (ro->st.guests[i].ring == ring)
                        ro->ring_idx[ro->ring_n++] = i;
        if (ro->c->json) {
                json_object *o = json_object_new_object(), *names = json_object_new_array();

                for (size_t i = 0; i < ro->ring_n; i++)
                        json_object_array_add(names, json_object_new_string(ro->st.guests[ro->ring_idx[i]].domain));
                json_object_object_add(o, "event", json_object_new_string("ring-start"));
                json_object_object_add(o, "ring", json_object_new_int((int)ring + 1));
                json_object_object_add(o, "rings", json_object_new_int((int)ro->st.n_rings));
                json_object_object_add(o, "guests", names);
                json_line(o);
        } else {
                printf("ring %u/%zu: %zu guest%s\n", ring + 1, ro->st.n_rings, ro->ring_n, ro->ring_n == 1 ? "" : "s");
                if (ro->tty)
                        tty_redraw(ro);
        }
        /* A guest the last run left being patched: memory says whether it is done. */
        for (size_t i = 0; i < ro->ring_n; i++) {
                struct rollout_guest *e = &ro->st.guests[ro->ring_idx[i]];
                int r;

                if (e->status != RO_RUNNING)
                        continue;
                if (!ro->st.patch_id[0]) {
                        e->status = RO_PENDING;         /* never parsed: nothing was applied */
                        continue;
                }
                r = guest_patch(ro, e->domain, ro->st.patch_id, false, why, sizeof(why));
                pthread_mutex_lock(&ro->lock);
                if (r == 1) {
                        e->status = RO_DONE;
                        snprintf(e->code, sizeof(e->code), "resumed");
                        snprintf(e->detail, sizeof(e->detail), "found applied on resume");
                        save(ro);
                        guest_event(ro, e, true);
                } else {
                        e->status = RO_PENDING;         /* apply again: it refuses what is applied */
                }
                pthread_mutex_unlock(&ro->lock);
        }
        for (unsigned i = 0; i < ro->a->parallel && i < ro->ring_n; i++) {
                if (pthread_create(&threads[i], NULL, worker, ro) != 0)
                        break;
                started++;
        }
        if (started == 0)
                worker(ro);
        for (unsigned i = 0; i < started; i++)
                pthread_join(threads[i], NULL);

        ring_counts(ro, ring, counts);
        if (ro->a->soak && counts[RO_DONE]) {
                if (!ro->c->json)
                        printf("soaking %u s\n", ro->a->soak);
                fflush(stdout);
                ro->tty_lines = 0;      /* the block is above that line now: redraw below it */
                sleep(ro->a->soak);
                for (size_t i = 0; i < ro->ring_n; i++) {
                        struct rollout_guest *e = &ro->st.guests[ro->ring_idx[i]];

                        if (e->status != RO_DONE || !ro->st.patch_id[0])
                                continue;
                        if (guest_patch(ro, e->domain, ro->st.patch_id, false, why, sizeof(why)) == 1)
                                continue;
                        e->status = RO_FAILED;
                        e->exit_class = EXIT_ERROR;
                        snprintf(e->code, sizeof(e->code), "soak");
                        snprintf(e->detail, sizeof(e->detail), "after the soak: %.480s", why);
                        hvp_text_sanitize(e->detail);
                        save(ro);
                        guest_event(ro, e, true);
                }
                ring_counts(ro, ring, counts);
        }
        halt = counts[RO_FAILED] > ro->a->max_failures;
        if (halt) {
                ro->st.halted = true;
                ro->st.halt_exit = failure_exit(ro, ring);
                if (ro->a->revert_on_halt && ro->st.patch_id[0]) {
                        for (size_t i = 0; i < ro->ring_n; i++) {
                                struct rollout_guest *e = &ro->st.guests[ro->ring_idx[i]];

                                if (e->status != RO_DONE)
                                        continue;
                                if (guest_patch(ro, e->domain, ro->st.patch_id, true, why, sizeof(why)) == 0) {
                                        e->status = RO_REVERTED;
                                        snprintf(e->detail, sizeof(e->detail), "reverted: the ring halted");
                                } else {
                                        snprintf(e->detail, sizeof(e->detail), "left applied: %.480s", why);
                                        hvp_text_sanitize(e->detail);
                                }
                                save(ro);
                                guest_event(ro, e, true);
                        }
                }
                save(ro);
                ring_counts(ro, ring, counts);
        }
        if (ro->c->json) {
                json_object *o = json_object_new_object();

                json_object_object_add(o, "event", json_object_new_string("ring-end"));
                json_object_object_add(o, "ring", json_object_new_int((int)ring + 1));
                json_object_object_add(o, "counts", counts_json(counts));
                json_object_object_add(o, "halted", json_object_new_boolean(halt));
                json_line(o);
        } else if (halt) {
                printf("ring %u: %zu failure%s (at most %u allowed): rollout halted\n", ring + 1, counts[RO_FAILED],
                       counts[RO_FAILED] == 1 ? "" : "s", ro->a->max_failures);
        }
        return halt;
}

static int summary(struct ro *ro, bool resumed)
{
        size_t counts[RO__MAX];
        int r = ro->st.halted ? ro->st.halt_exit : failure_exit(ro, (unsigned)-1);

        if (r == 0 && ro->save_err)
                r = EXIT_ERROR;
        ring_counts(ro, (unsigned)-1, counts);
        if (ro->c->json) {
                json_object *o = json_object_new_object();

                json_object_object_add(o, "event", json_object_new_string("summary"));
                json_object_object_add(o, "patch_id", ro->st.patch_id[0] ? json_object_new_string(ro->st.patch_id) : NULL);
                json_object_object_add(o, "bundle_sha256", json_object_new_string(ro->st.bundle_sha256));
                json_object_object_add(o, "guests", json_object_new_int64((int64_t)ro->st.n_guests));
                json_object_object_add(o, "rings", json_object_new_int((int)ro->st.n_rings));
                json_object_object_add(o, "counts", counts_json(counts));
                json_object_object_add(o, "halted", json_object_new_boolean(ro->st.halted));
                json_object_object_add(o, "resumed", json_object_new_boolean(resumed));
                json_object_object_add(o, "state", json_object_new_string(ro->state_path));
                json_object_object_add(o, "exit", json_object_new_int(r));
                json_line(o);
        } else {
                printf("rollout %s%s: %zu guests in %zu rings: %zu done, %zu skipped, %zu failed, %zu reverted, "
                       "%zu pending\nstate: %s\n",
                       ro->st.halted ? "HALTED" : "finished", resumed ? " (resumed)" : "", ro->st.n_guests,
                       ro->st.n_rings, counts[RO_DONE], counts[RO_SKIPPED], counts[RO_FAILED], counts[RO_REVERTED],
                       counts[RO_PENDING] + counts[RO_RUNNING], ro->state_path);
        }
        return r;
}

/* The policy group of a running guest (as status reads it): 0, or <0 with why filled. */
static int guest_group(struct ro *ro, const struct hvp_policy *policy, const char *domain, char *group,
                       size_t size, char *why, size_t why_size)
{
        struct hvp_live_options live = { .uri = ro->c->uri };
        struct hvp_guest *g = NULL;
        struct hvp_mmu *mmu = NULL;
        struct hvp_kernel *k = NULL;
        struct hvp_guest_state *gs = NULL;
        int r;

        group[0] = '\0';
        r = hvp_guest_open_live(domain, &live, &g);
        if (r >= 0)
                r = hvp_linux_attach(g, &mmu, &k, NULL);
        if (r >= 0)
                r = hvp_op_state(g, mmu, k, ro->state_dir, policy, &gs);
        if (r < 0)
                snprintf(why, why_size, "%s", hvp_last_error());
        else
                snprintf(group, size, "%s", gs->compliance.group);
        hvp_guest_state_free(gs);
        hvp_kernel_free(k);
        hvp_mmu_free(mmu);
        hvp_guest_free(g);
        return r;
}

/*
 * Rings by policy group: each selected guest's group, read from the guest; ring i the
 * guests of the i-th group named (by name). A guest of no named group is left out.
 */
static int group_rings(struct ro *ro, const struct rollout_rings *rings)
{
        struct hvp_policy *policy = NULL;
        struct rollout_guest *sorted;
        char why[1024], group[HVP_NAME_MAX + 1];
        unsigned *ring_of;
        size_t k = 0, used = 0;
        int r;

        r = cli_open_policy(ro->c, true, &policy, why, sizeof(why));
        if (r)
                return cli_error(ro->c, r, "--rings @GROUP needs the policy: %s", why);
        ring_of = calloc(ro->st.n_guests, sizeof(*ring_of));
        sorted = calloc(ro->st.n_guests, sizeof(*sorted));
        if (!ring_of || !sorted) {
                r = cli_error(ro->c, EXIT_ERROR, "out of memory");
                goto out;
        }
        for (size_t i = 0; i < ro->st.n_guests; i++) {
                ring_of[i] = (unsigned)-1;
                if (guest_group(ro, policy, ro->st.guests[i].domain, group, sizeof(group), why, sizeof(why)) < 0) {
                        fprintf(stderr, "hvpatch: %s: left out of the rollout: %s\n", ro->st.guests[i].domain, why);
                        continue;
                }
                for (size_t ring = 0; ring < rings->n; ring++)
                        if (strcmp(group, rings->spec[ring].group) == 0)
                                ring_of[i] = (unsigned)ring;
        }
        for (size_t ring = 0; ring < rings->n; ring++) {
                size_t before = k;

                for (size_t i = 0; i < ro->st.n_guests; i++)
                        if (ring_of[i] == ring) {
                                sorted[k] = ro->st.guests[i];
                                sorted[k++].ring = (unsigned)used;
                        }
                used += k > before;     /* a group with no guest makes no ring */
        }
        if (k == 0) {
                r = cli_error(ro->c, EXIT_ERROR, "no selected running guest is in the groups named by --rings");
                goto out;
        }
        free(ro->st.guests);
        ro->st.guests = sorted;
        sorted = NULL;
        ro->st.n_guests = k;
        ro->st.n_rings = used;
        r = 0;
out:
        free(sorted);
        free(ring_of);
        hvp_policy_free(policy);
        return r;
}

/* A new rollout: the running guests selected, sorted by name, laid out in rings. */
static int plan_rollout(struct ro *ro, const struct rollout_rings *rings)
{
        char **names = NULL;
        size_t n = 0, k = 0, ends[ROLLOUT_MAX_RINGS], n_rings;
        int r;

        r = hvp_list_running_domains(ro->c->uri, ROLLOUT_MAX_GUESTS, &names, &n);
        if (r < 0)
                return cli_lib_error(ro->c, r, "listing the domains");
        ro->st.guests = calloc(HVP_MAX(n, 1), sizeof(*ro->st.guests));
        if (!ro->st.guests) {
                r = cli_error(ro->c, EXIT_ERROR, "out of memory");
                goto out;
        }
        for (size_t i = 0; i < n; i++)
                if (selected(ro->a->domains, names[i]) && strlen(names[i]) <= HVP_DOMAIN_NAME_MAX)
                        snprintf(ro->st.guests[k++].domain, sizeof(ro->st.guests[0].domain), "%s", names[i]);
        if (k == 0) {
                r = cli_error(ro->c, EXIT_ERROR, "no running domain%s%s", ro->a->domains ? " matches " : "",
                              ro->a->domains ? ro->a->domains : "");
                goto out;
        }
        ro->st.n_guests = k;
        if (rings->by_group) {
                r = group_rings(ro, rings);
                goto out;
        }
        n_rings = rollout_rings_layout(rings, k, ends);
        ro->st.n_rings = n_rings;
        for (size_t ring = 0, i = 0; ring < n_rings; ring++)
                for (; i < ends[ring]; i++)
                        ro->st.guests[i].ring = (unsigned)ring;
        r = 0;
out:
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
        return r;
}

int cmd_rollout(struct cli *c, int argc, char **argv)
{
        struct args a = { 0 };
        struct ro ro = { .c = c, .a = &a, .lock = PTHREAD_MUTEX_INITIALIZER };
        struct rollout_rings rings;
        char hash[ROLLOUT_HASH_HEX], why[1024], path[4096];
        bool resumed = false;
        int r;

        if (cli_wants_help(c, "rollout", argc, argv, help))
                return EXIT_OK;
        r = parse_args(c, argc, argv, &a);
        if (r)
                return r;
        if (rollout_rings_parse(a.rings, &rings, why, sizeof(why)) < 0)
                return cli_error(c, EXIT_USAGE, "%s", why);
        if (sodium_init() < 0)
                return cli_error(c, EXIT_ERROR, "libsodium does not initialize");
        r = bundle_hash(a.bundle, hash, why, sizeof(why));
        if (r < 0)
                return cli_error(c, EXIT_ERROR, "%s", why);
        ro.state_dir = cli_state_dir();
        if (a.state) {
                ro.state_path = a.state;
        } else {
                char dir[4096];

                if ((size_t)snprintf(dir, sizeof(dir), "%s/rollouts", ro.state_dir) >= sizeof(dir))
                        return cli_error(c, EXIT_ERROR, "state folder name too long");
                if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                        return cli_error(c, EXIT_ERROR, "%s: %s", dir, strerror(errno));
                if ((size_t)snprintf(path, sizeof(path), "%.3000s/%s.json", dir, hash) >= sizeof(path))
                        return cli_error(c, EXIT_ERROR, "state folder name too long");
                ro.state_path = path;
        }
        ro.tty = !c->json && isatty(STDOUT_FILENO);

        r = rollout_state_load(ro.state_path, &ro.st, why, sizeof(why));
        if (r == 0) {
                if (strcmp(ro.st.bundle_sha256, hash) != 0) {
                        rollout_state_free(&ro.st);
                        return cli_error(c, EXIT_USAGE, "%s is the state of a rollout of another bundle (%s): "
                                         "remove it or give another --state", ro.state_path, ro.st.bundle_sha256);
                }
                resumed = true;
        } else if (r != -ENOENT) {
                return cli_error(c, EXIT_ERROR, "%s", why);
        } else {
                snprintf(ro.st.bundle_sha256, sizeof(ro.st.bundle_sha256), "%s", hash);
                r = plan_rollout(&ro, &rings);
                if (r) {
                        rollout_state_free(&ro.st);
                        return r;
                }
                r = rollout_state_save(ro.state_path, &ro.st);
                if (r < 0) {
                        rollout_state_free(&ro.st);
                        return cli_error(c, EXIT_ERROR, "writing %s: %s", ro.state_path, strerror(-r));
                }
        }
        ro.ring_idx = calloc(ro.st.n_guests, sizeof(*ro.ring_idx));
        if (!ro.ring_idx) {
                rollout_state_free(&ro.st);
                return cli_error(c, EXIT_ERROR, "out of memory");
        }
        if (resumed && ro.st.halted) {
                fprintf(stderr, "hvpatch: this rollout halted earlier: remove %s to start over\n", ro.state_path);
        } else {
                for (unsigned ring = 0; ring < ro.st.n_rings; ring++)
                        if (run_ring(&ro, ring))
                                break;
        }
        r = summary(&ro, resumed);
        free(ro.ring_idx);
        rollout_state_free(&ro.st);
        return r;
}

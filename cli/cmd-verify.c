/* hvpatch verify: check a bundle's minisign signature, then its container and manifest. */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hvpatch/hvpatch.h>
#include <hvpatch/patch.h>
#include <hvpatch/policy.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/util.h"

static const char help[] =
        "Checks BUNDLE's minisign signature (BUNDLE.minisig beside it, as `minisign -S`\n"
        "writes it, or --sig FILE) against the trusted keys: one public key file (--key),\n"
        "or the keys of a policy (--policy, default " HVP_POLICY_DEFAULT_PATH ").\n"
        "Then, from the same bytes that were verified, the bundle: its container, every\n"
        "entry's SHA-256, the manifest against its schema and rules, and every redirect's\n"
        "object (docs/bundle.md). Prints the key id, the key's name in the policy, the\n"
        "signed trusted comment, and the manifest: patch id, series, sequence, target\n"
        "build id and the sites. No guest is needed: whether the policy lets this signer,\n"
        "series and target onto a guest is decided by `check` and `apply`.\n\n"
        "Options:\n"
        "  --key PUB             trust only this minisign public key file\n"
        "  --policy FILE         trust the keys of this policy\n"
        "  --sig FILE            the signature file (default BUNDLE.minisig)\n"
        "  --require-prehashed   refuse legacy (non-prehashed) signatures, as minisign -H\n\n"
        "Exit: 0 good signature and valid bundle, 3 bad, missing or untrusted signature\n"
        "(the bundle is then not parsed), 1 malformed bundle, manifest, key, policy or\n"
        "signature file, or unreadable file, 2 usage.\n";

struct verify_args {
        const char *key, *policy, *sig, *bundle;
        unsigned flags;
};

static int parse_args(struct cli *c, int argc, char **argv, struct verify_args *a)
{
        const struct cli_command *cmd = cli_find_command("verify");

        for (int i = 0; i < argc; i++) {
                const char *opt = argv[i];
                const char **slot = NULL;

                if (strcmp(opt, "--key") == 0)
                        slot = &a->key;
                else if (strcmp(opt, "--policy") == 0)
                        slot = &a->policy;
                else if (strcmp(opt, "--sig") == 0)
                        slot = &a->sig;
                else if (strcmp(opt, "--require-prehashed") == 0)
                        a->flags |= HVP_MINISIGN_REQUIRE_PREHASHED;
                else if (strcmp(opt, "--") == 0 && i + 2 == argc && !a->bundle)
                        a->bundle = argv[++i];
                else if (opt[0] == '-')
                        return cli_error(c, EXIT_USAGE, "verify: unknown option %s", opt);
                else if (!a->bundle)
                        a->bundle = opt;
                else
                        return cli_usage(c, cmd);
                if (slot) {
                        if (i + 1 >= argc)
                                return cli_error(c, EXIT_USAGE, "verify: %s needs an argument", opt);
                        *slot = argv[++i];
                }
        }
        if (!a->bundle)
                return cli_usage(c, cmd);
        if (!a->policy)
                a->policy = c->policy;
        if (a->key && a->policy)
                return cli_error(c, EXIT_USAGE, "verify: --key and --policy exclude each other");
        if (!a->key && !a->policy)
                a->policy = HVP_POLICY_DEFAULT_PATH;
        return 0;
}

static json_object *sites_json(const struct hvp_manifest *m)
{
        json_object *arr = json_object_new_array();

        for (size_t i = 0; i < m->nr_sites; i++) {
                const struct hvp_site *s = &m->sites[i];
                json_object *o = json_object_new_object();

                json_object_object_add(o, "symbol", json_object_new_string(s->symbol));
                json_object_object_add(o, "consistency", json_object_new_string(
                                               s->consistency == HVP_CONSISTENCY_FUNCTION ? "function" : "site"));
                if (s->kind == HVP_SITE_REPLACE) {
                        json_object_object_add(o, "kind", json_object_new_string("replace"));
                        json_object_object_add(o, "offset", json_object_new_int64((int64_t)s->offset));
                        json_object_object_add(o, "length", json_object_new_int64((int64_t)s->len));
                } else {
                        json_object_object_add(o, "kind", json_object_new_string("redirect"));
                        json_object_object_add(o, "object", json_object_new_string(s->object));
                        json_object_object_add(o, "function", json_object_new_string(s->function));
                        json_object_object_add(o, "code_size", json_object_new_int64((int64_t)s->code_size));
                }
                json_object_array_add(arr, o);
        }
        return arr;
}

static void print_site(const struct hvp_site *s)
{
        if (s->kind == HVP_SITE_REPLACE)
                printf("  replace  %s+0x%llx, %zu bytes%s\n", s->symbol, (unsigned long long)s->offset, s->len,
                       s->consistency == HVP_CONSISTENCY_FUNCTION ? ", consistency=function" : "");
        else
                printf("  redirect %s -> %s (%s, %zu bytes of code)%s\n", s->symbol, s->function, s->object,
                       s->code_size, s->consistency == HVP_CONSISTENCY_FUNCTION ? ", consistency=function" : "");
}

static void print_result(struct cli *c, const struct verify_args *a, const struct hvp_signature_info *info,
                         const struct hvp_bundle *b)
{
        const char *alg = info->prehashed ? "prehashed" : "legacy";
        const struct hvp_manifest *m = &b->manifest;
        char build_id[2 * HVP_BUILD_ID_MAX + 1], sha[65];

        hvp_hex_encode(m->build_id, m->build_id_len, build_id);
        hvp_hex_encode(b->sha256, sizeof(b->sha256), sha);
        if (c->json) {
                json_object *o = json_object_new_object();

                json_object_object_add(o, "bundle", json_object_new_string(a->bundle));
                json_object_object_add(o, "signature", json_object_new_string("good"));
                json_object_object_add(o, "algorithm", json_object_new_string(alg));
                json_object_object_add(o, "key_id", json_object_new_string(info->key_id_hex));
                json_object_object_add(o, "key_name", json_object_new_string(info->key_name));
                json_object_object_add(o, "trusted_comment", json_object_new_string(info->trusted_comment));
                json_object_object_add(o, "manifest", json_object_new_string("valid"));
                json_object_object_add(o, "sha256", json_object_new_string(sha));
                json_object_object_add(o, "patch_id", json_object_new_string(m->id));
                json_object_object_add(o, "series", json_object_new_string(m->series));
                json_object_object_add(o, "sequence", json_object_new_int64(m->sequence));
                json_object_object_add(o, "description", json_object_new_string(m->description));
                json_object_object_add(o, "os", json_object_new_string(m->os));
                json_object_object_add(o, "target_build_id", json_object_new_string(build_id));
                json_object_object_add(o, "target_banner", m->banner ? json_object_new_string(m->banner) : NULL);
                json_object_object_add(o, "sites", sites_json(m));
                cli_json_print(o);
                return;
        }
        printf("bundle:          %s\n", a->bundle);
        printf("sha256:          %s\n", sha);
        printf("signature:       good (%s)\n", alg);
        printf("key id:          %s\n", info->key_id_hex);
        printf("key name:        %s\n", info->key_name);
        printf("trusted comment: %s\n", info->trusted_comment);
        printf("manifest:        valid\n");
        printf("patch id:        %s\n", m->id);
        printf("series:          %s\n", m->series);
        printf("sequence:        %u\n", m->sequence);
        if (m->description[0])
                printf("description:     %s\n", m->description);
        printf("target:          %s, build id %s\n", m->os, build_id);
        if (m->banner)
                printf("target banner:   %s\n", m->banner);
        printf("sites:           %zu\n", m->nr_sites);
        for (size_t i = 0; i < m->nr_sites; i++)
                print_site(&m->sites[i]);
}

static int load_keys(struct cli *c, const struct verify_args *a, struct hvp_minisign_key *one,
                     struct hvp_policy **ret_policy, const struct hvp_minisign_key **ret_keys, size_t *ret_n)
{
        int r;

        if (a->key) {
                char *copy = strdup(a->key);

                r = hvp_minisign_key_load(a->key, one);
                if (r < 0) {
                        free(copy);
                        return cli_lib_error(c, r, a->key);
                }
                snprintf(one->name, sizeof(one->name), "%s", copy ? basename(copy) : "key");
                free(copy);
                *ret_keys = one;
                *ret_n = 1;
                return 0;
        }
        r = hvp_policy_load(a->policy, ret_policy);
        if (r < 0)
                return cli_lib_error(c, r, "policy");
        *ret_n = hvp_policy_keys(*ret_policy, ret_keys);
        return 0;
}

int cmd_verify(struct cli *c, int argc, char **argv)
{
        struct verify_args a = { 0 };
        struct hvp_minisign_key one;
        struct hvp_signature_info *info = NULL;
        const struct hvp_minisign_key *keys = NULL;
        struct hvp_policy *policy = NULL;
        void *bundle = NULL, *sig = NULL;
        size_t n_keys = 0, bundle_len, sig_len;
        struct hvp_bundle *parsed = NULL;
        char *sig_path = NULL;
        int r, ret;

        if (cli_wants_help(c, "verify", argc, argv, help))
                return EXIT_OK;
        ret = parse_args(c, argc, argv, &a);
        if (ret)
                return ret;
        ret = load_keys(c, &a, &one, &policy, &keys, &n_keys);
        if (ret)
                goto out;
        r = hvp_read_file_bounded(a.bundle, HVP_BUNDLE_MAX, &bundle, &bundle_len);
        if (r < 0) {
                ret = cli_lib_error(c, r, "bundle");
                goto out;
        }
        if (!a.sig && asprintf(&sig_path, "%s.minisig", a.bundle) < 0) {
                sig_path = NULL;
                ret = cli_error(c, EXIT_ERROR, "out of memory");
                goto out;
        }
        if (!a.sig)
                a.sig = sig_path;
        r = hvp_read_file_bounded(a.sig, HVP_MINISIGN_SIG_FILE_MAX, &sig, &sig_len);
        if (r == -ENOENT) {
                ret = cli_error(c, EXIT_REFUSED, "%s is not signed: no signature file %s", a.bundle, a.sig);
                goto out;
        }
        if (r < 0) {
                ret = cli_lib_error(c, r, "signature");
                goto out;
        }
        info = malloc(sizeof(*info));
        if (!info) {
                ret = cli_error(c, EXIT_ERROR, "out of memory");
                goto out;
        }
        r = hvp_minisign_verify(keys, n_keys, bundle, bundle_len, sig, sig_len, a.flags, info);
        if (r < 0) {
                ret = cli_lib_error(c, r, a.sig);
                goto out;
        }
        /* Only bytes whose signature verified are parsed, and exactly those bytes. */
        r = hvp_bundle_open_mem(bundle, bundle_len, &parsed);
        if (r < 0) {
                ret = cli_lib_error(c, r, "signature good, but the bundle is not valid");
                goto out;
        }
        print_result(c, &a, info, parsed);
        ret = EXIT_OK;
out:
        hvp_bundle_free(parsed);
        free(info);
        free(sig_path);
        free(sig);
        free(bundle);
        hvp_policy_free(policy);
        return ret;
}

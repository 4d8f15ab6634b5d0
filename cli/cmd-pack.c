/* hvpatch pack MANIFEST -o BUNDLE: build a bundle from a source manifest and its objects. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hvpatch/fit.h>
#include <hvpatch/patch.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/util.h"

static const char pack_help[] =
        "Reads MANIFEST (see docs/bundle.md), validates it against the manifest schema,\n"
        "reads each <object name=\"..\" file=\"..\"/> (file relative to the manifest's\n"
        "folder), checks every redirect's function can be placed (ELF64 x86-64 ET_REL, no\n"
        "writable data, supported relocations), and writes BUNDLE atomically. Sign it\n"
        "afterwards with `minisign -S -m BUNDLE`.\n\n"
        "It also looks at the code each redirect places and warns (on stderr; in --json\n"
        "a \"warnings\" array) where it does not fit the target kernel: always about the\n"
        "code model (R_X86_64_32: not -mcmodel=kernel) and stack protector code; with\n"
        "--kernel-config also about return thunks (ret vs jmp __x86_return_thunk),\n"
        "indirect branch thunks, the int3 of -mharden-sls and IBT landing pads (an\n"
        "address-taken function without endbr64), each against the config's\n"
        "CONFIG_MITIGATION_RETHUNK, _RETPOLINE, _SLS and CONFIG_X86_KERNEL_IBT. Build\n"
        "objects with the flags images/kernel-cflags.sh derives from the same config\n"
        "(docs/bundle.md, \"Building a patch object for a target kernel\").\n\n"
        "Options:\n"
        "  -o, --output BUNDLE         the bundle to write (required)\n"
        "      --kernel-config FILE    the target kernel's config: /boot/config-VERSION of\n"
        "                              its package, a .config, or the guest's /proc/config.gz\n"
        "      --strict                a warning fails the pack (exit 1, nothing written)\n"
        "      --json                  one JSON document on stdout\n"
        "  -h, --help                  this help\n";

static int write_atomically(const char *path, const uint8_t *buf, size_t len)
{
        char *tmp;
        size_t done = 0;
        int fd;

        if (asprintf(&tmp, "%s.tmp.%ld", path, (long)getpid()) < 0)
                return -ENOMEM;
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0) {
                int e = -errno;

                free(tmp);
                return e;
        }
        while (done < len) {
                ssize_t n = write(fd, buf + done, len - done);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                done += (size_t)n;
        }
        if (done != len || fsync(fd) < 0 || close(fd) < 0 || rename(tmp, path) < 0) {
                int e = errno ? -errno : -EIO;

                if (done != len)
                        close(fd);
                unlink(tmp);
                free(tmp);
                return e;
        }
        free(tmp);
        return 0;
}

static void hex_encode(const uint8_t *p, size_t n, char *out)
{
        for (size_t i = 0; i < n; i++)
                sprintf(out + 2 * i, "%02x", p[i]);
        out[2 * n] = '\0';
}

static json_object *json_hex(const uint8_t *p, size_t n)
{
        char buf[2 * 64 + 1];

        hex_encode(p, n, buf);
        return json_object_new_string(buf);
}

static json_object *warnings_json(const struct hvp_fit_warning *ws, size_t n)
{
        json_object *a = json_object_new_array();

        for (size_t i = 0; i < n; i++) {
                json_object *w = json_object_new_object();

                json_object_object_add(w, "kind", json_object_new_string(hvp_fit_kind_name(ws[i].kind)));
                json_object_object_add(w, "object", ws[i].object[0] ? json_object_new_string(ws[i].object) : NULL);
                json_object_object_add(w, "function",
                                       ws[i].function[0] ? json_object_new_string(ws[i].function) : NULL);
                json_object_object_add(w, "where", ws[i].where[0] ? json_object_new_string(ws[i].where) : NULL);
                json_object_object_add(w, "count", json_object_new_int64(ws[i].count));
                json_object_object_add(w, "message", json_object_new_string(ws[i].message));
                json_object_array_add(a, w);
        }
        return a;
}

static void warnings_print(const struct hvp_fit_warning *ws, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                if (ws[i].object[0])
                        fprintf(stderr, "hvpatch: warning: %s (%s, %s): %s\n", ws[i].function, ws[i].object,
                                hvp_fit_kind_name(ws[i].kind), ws[i].message);
                else
                        fprintf(stderr, "hvpatch: warning (%s): %s\n", hvp_fit_kind_name(ws[i].kind), ws[i].message);
        }
}

static json_object *bundle_json(const char *path, const struct hvp_bundle *b, double ms)
{
        const struct hvp_manifest *m = &b->manifest;
        json_object *o = json_object_new_object(), *entries = json_object_new_array(),
                    *sites = json_object_new_array();

        json_object_object_add(o, "bundle", json_object_new_string(path));
        json_object_object_add(o, "size", json_object_new_int64((int64_t)b->size));
        json_object_object_add(o, "sha256", json_hex(b->sha256, 32));
        json_object_object_add(o, "id", json_object_new_string(m->id));
        json_object_object_add(o, "series", json_object_new_string(m->series));
        json_object_object_add(o, "sequence", json_object_new_int64(m->sequence));
        json_object_object_add(o, "build_id", json_hex(m->build_id, m->build_id_len));
        for (size_t i = 0; i < b->nr_entries; i++) {
                json_object *e = json_object_new_object();

                json_object_object_add(e, "name", json_object_new_string(b->entries[i].name));
                json_object_object_add(e, "size", json_object_new_int64((int64_t)b->entries[i].size));
                json_object_object_add(e, "sha256", json_hex(b->entries[i].sha256, 32));
                json_object_array_add(entries, e);
        }
        json_object_object_add(o, "entries", entries);
        for (size_t i = 0; i < m->nr_sites; i++) {
                const struct hvp_site *s = &m->sites[i];
                json_object *e = json_object_new_object();

                json_object_object_add(e, "symbol", json_object_new_string(s->symbol));
                if (s->kind == HVP_SITE_REPLACE) {
                        json_object_object_add(e, "kind", json_object_new_string("replace"));
                        json_object_object_add(e, "offset", json_object_new_int64((int64_t)s->offset));
                        json_object_object_add(e, "length", json_object_new_int64((int64_t)s->len));
                } else {
                        json_object_object_add(e, "kind", json_object_new_string("redirect"));
                        json_object_object_add(e, "object", json_object_new_string(s->object));
                        json_object_object_add(e, "function", json_object_new_string(s->function));
                        json_object_object_add(e, "code_size", json_object_new_int64((int64_t)s->code_size));
                }
                json_object_array_add(sites, e);
        }
        json_object_object_add(o, "sites", sites);
        char msbuf[32];

        snprintf(msbuf, sizeof(msbuf), "%.3f", ms);
        json_object_object_add(o, "pack_ms", json_object_new_double_s(ms, msbuf));
        return o;
}

int cmd_pack(struct cli *c, int argc, char **argv)
{
        const struct cli_command *cmd = cli_find_command("pack");
        const char *manifest = NULL, *output = NULL, *kconfig_path = NULL;
        struct hvp_kconfig kconfig;
        struct hvp_fit_warning *warnings = NULL;
        size_t nr_warnings = 0;
        bool strict = false;
        struct hvp_bundle *b = NULL;
        double t0;
        uint8_t *buf = NULL;
        size_t len = 0;
        double ms;
        int r;

        if (cli_wants_help(c, "pack", argc, argv, pack_help))
                return EXIT_OK;
        for (int i = 0; i < argc; i++) {
                if (strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) {
                        if (++i >= argc)
                                return cli_usage(c, cmd);
                        output = argv[i];
                } else if (strcmp(argv[i], "--kernel-config") == 0) {
                        if (++i >= argc)
                                return cli_usage(c, cmd);
                        kconfig_path = argv[i];
                } else if (strcmp(argv[i], "--strict") == 0) {
                        strict = true;
                } else if (strcmp(argv[i], "--json") == 0) {
                        c->json = true;
                } else if (argv[i][0] == '-' && argv[i][1]) {
                        return cli_usage(c, cmd);
                } else if (!manifest) {
                        manifest = argv[i];
                } else {
                        return cli_usage(c, cmd);
                }
        }
        if (!manifest || !output)
                return cli_usage(c, cmd);

        if (kconfig_path) {
                r = hvp_kconfig_load(kconfig_path, &kconfig);
                if (r < 0)
                        return cli_lib_error(c, r, "pack");
        }
        t0 = hvp_now_ms();
        r = hvp_bundle_pack(manifest, &buf, &len);
        if (r < 0)
                return cli_lib_error(c, r, "pack");
        ms = hvp_now_ms() - t0;
        r = hvp_bundle_open_mem(buf, len, &b);
        if (r < 0) {
                free(buf);
                return cli_lib_error(c, r, "pack");
        }
        r = hvp_bundle_check_fit(b, kconfig_path ? &kconfig : NULL, &warnings, &nr_warnings);
        if (r < 0) {
                free(buf);
                hvp_bundle_free(b);
                return cli_lib_error(c, r, "pack");
        }
        warnings_print(warnings, nr_warnings);
        if (strict && nr_warnings) {
                free(buf);
                free(warnings);
                hvp_bundle_free(b);
                return cli_error(c, EXIT_ERROR, "pack: %zu warning%s and --strict: %s not written", nr_warnings,
                                 nr_warnings == 1 ? "" : "s", output);
        }
        r = write_atomically(output, buf, len);
        free(buf);
        if (r < 0) {
                free(warnings);
                hvp_bundle_free(b);
                return cli_error(c, EXIT_ERROR, "%s: %s", output, strerror(-r));
        }
        if (c->json) {
                json_object *o = bundle_json(output, b, ms);

                json_object_object_add(o, "kernel_config", kconfig_path ? json_object_new_string(kconfig_path) : NULL);
                json_object_object_add(o, "kernel_config_release", kconfig_path && kconfig.release[0]
                                                                            ? json_object_new_string(kconfig.release)
                                                                            : NULL);
                json_object_object_add(o, "warnings", warnings_json(warnings, nr_warnings));
                cli_json_print(o);
        } else {
                char hex[65];

                hex_encode(b->sha256, 32, hex);
                printf("%s: %zu bytes, %zu entries, %zu sites, patch %s (series %s, sequence %u)\nsha256 %s\n",
                       output, b->size, b->nr_entries, b->manifest.nr_sites, b->manifest.id, b->manifest.series,
                       b->manifest.sequence, hex);
        }
        free(warnings);
        hvp_bundle_free(b);
        return EXIT_OK;
}

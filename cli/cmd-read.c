#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hvpatch/kernel.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/util.h"

#define READ_MAX (1u << 20)

static const char help[] =
        "Reads LEN bytes (default 64, at most 1 MiB) of guest memory at ADDR: a kernel\n"
        "virtual address, SYMBOL or SYMBOL+OFFSET; with --phys, a guest-physical address.\n"
        "Prints a hex dump, or with --json {\"addr\", \"len\", \"hex\"}.\n";

static void hexdump(uint64_t addr, const uint8_t *b, size_t len)
{
        for (size_t i = 0; i < len; i += 16) {
                size_t n = HVP_MIN(16, len - i);

                printf("%016llx ", (unsigned long long)(addr + i));
                for (size_t j = 0; j < 16; j++) {
                        if (j < n)
                                printf(" %02x", b[i + j]);
                        else
                                printf("   ");
                }
                printf("  |");
                for (size_t j = 0; j < n; j++)
                        putchar(isprint(b[i + j]) ? b[i + j] : '.');
                printf("|\n");
        }
}

int cmd_read(struct cli *c, int argc, char **argv)
{
        struct cli_target t = { 0 };
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_free_ char *hex = NULL;
        uint64_t addr, len = 64;
        bool phys = false;
        int r;

        if (cli_wants_help(c, "read", argc, argv, help))
                return EXIT_OK;
        for (int i = 0; i < argc; i++) {
                if (strcmp(argv[i], "--phys") == 0) {
                        phys = true;
                        memmove(&argv[i], &argv[i + 1], (size_t)(argc - i - 1) * sizeof(*argv));
                        argc--;
                        break;
                }
        }
        r = cli_attach(c, &argc, &argv, &t);
        if (r)
                return r;
        if (argc < 1 || argc > 2 || (argc == 2 && !cli_parse_u64(argv[1], &len))) {
                cli_target_close(&t);
                return cli_usage(c, cli_find_command("read"));
        }
        if (len == 0 || len > READ_MAX) {
                cli_target_close(&t);
                return cli_error(c, EXIT_USAGE, "LEN must be 1 to %u", READ_MAX);
        }
        r = cli_resolve(c, &t, argv[0], &addr);
        if (r)
                goto out;
        buf = malloc(len);
        hex = malloc(2 * len + 1);
        if (!buf || !hex) {
                r = cli_error(c, EXIT_ERROR, "out of memory");
                goto out;
        }
        r = phys ? hvp_guest_read_phys(t.guest, addr, buf, len) : hvp_mmu_read(t.mmu, addr, buf, len);
        if (r < 0) {
                r = cli_lib_error(c, r, argv[0]);
                goto out;
        }
        if (c->json) {
                json_object *o = json_object_new_object();

                hvp_hex_encode(buf, len, hex);
                json_object_object_add(o, "addr", cli_json_addr(addr));
                json_object_object_add(o, "len", json_object_new_int64((int64_t)len));
                json_object_object_add(o, "phys", json_object_new_boolean(phys));
                json_object_object_add(o, "hex", json_object_new_string(hex));
                cli_json_print(o);
        } else {
                hexdump(addr, buf, len);
        }
        r = EXIT_OK;
out:
        cli_target_close(&t);
        return r;
}

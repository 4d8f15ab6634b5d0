#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hvpatch/kernel.h>
#include <hvpatch/patch.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/util.h"

#define DISASM_MAX (64u << 10)

static const char help[] =
        "Disassembles LEN bytes (default: the whole symbol up to the next one, at most\n"
        "64 KiB; 64 for a bare address) of guest kernel code at ADDR: an address, SYMBOL\n"
        "or SYMBOL+OFFSET. Undecodable bytes are shown as (bad).\n";

int cmd_disasm(struct cli *c, int argc, char **argv)
{
        struct cli_target t;
        _cleanup_free_ uint8_t *buf = NULL;
        struct hvp_insn *insns = NULL;
        size_t n = 0;
        uint64_t addr, len = 0;
        json_object *arr = NULL;
        int r;

        if (cli_wants_help(c, "disasm", argc, argv, help))
                return EXIT_OK;
        r = cli_attach(c, &argc, &argv, &t);
        if (r)
                return r;
        if (argc < 1 || argc > 2 || (argc == 2 && (!cli_parse_u64(argv[1], &len) || len == 0))) {
                cli_target_close(&t);
                return cli_usage(c, cli_find_command("disasm"));
        }
        r = cli_resolve(c, &t, argv[0], &addr);
        if (r)
                goto out;
        if (!len) {
                const struct hvp_symbol *s = hvp_symtab_find_addr(t.kernel->symtab, addr), *next = NULL;

                len = 64;
                if (s && s->addr == addr) {
                        /* up to the next symbol with a higher address */
                        for (size_t i = 0, cnt = hvp_symtab_count(t.kernel->symtab); i < cnt; i++) {
                                const struct hvp_symbol *x = hvp_symtab_get(t.kernel->symtab, i);

                                if (x->addr > addr && (!next || x->addr < next->addr))
                                        next = x;
                        }
                        if (next)
                                len = next->addr - addr;
                }
        }
        if (len > DISASM_MAX) {
                r = cli_error(c, EXIT_USAGE, "LEN must be at most %u", DISASM_MAX);
                goto out;
        }
        buf = malloc(len);
        if (!buf) {
                r = cli_error(c, EXIT_ERROR, "out of memory");
                goto out;
        }
        r = hvp_mmu_read(t.mmu, addr, buf, len);
        if (r == 0)
                r = hvp_disasm(buf, len, addr, len, &insns, &n);
        if (r < 0) {
                r = cli_lib_error(c, r, argv[0]);
                goto out;
        }
        if (c->json)
                arr = json_object_new_array();
        for (size_t i = 0; i < n; i++) {
                char line[256], hex[2 * HVP_INSN_MAX_LEN + 1];

                if (arr) {
                        json_object *o = json_object_new_object();
                        size_t sz = insns[i].size ? insns[i].size : 1;

                        hvp_hex_encode(insns[i].bytes, sz, hex);
                        json_object_object_add(o, "addr", cli_json_addr(insns[i].addr));
                        json_object_object_add(o, "bytes", json_object_new_string(hex));
                        json_object_object_add(o, "mnemonic", json_object_new_string(insns[i].mnemonic));
                        json_object_object_add(o, "operands", json_object_new_string(insns[i].operands));
                        json_object_array_add(arr, o);
                } else {
                        hvp_insn_format(&insns[i], line, sizeof(line));
                        puts(line);
                }
        }
        if (arr)
                cli_json_print(arr);
        r = EXIT_OK;
out:
        free(insns);
        cli_target_close(&t);
        return r;
}

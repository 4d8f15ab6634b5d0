#include <stdio.h>
#include <string.h>

#include <hvpatch/kernel.h>

#include "cli/cli.h"
#include "cli/commands.h"

static const char help[] =
        "Translates guest-virtual addresses (numbers, SYMBOL or SYMBOL+OFFSET) to\n"
        "guest-physical ones through the guest's own page tables, with the page size and\n"
        "the effective flags; a failed walk says why. Uses vCPU 0's CR3 unless --vcpu N;\n"
        "when an address names a symbol, the kernel's own table (init_top_pgt), which maps\n"
        "the kernel half only.\n"
        "Reads standard input (one address per line) when the only address is '-'.\n";

static void flags_text(uint32_t f, char *out, size_t size)
{
        snprintf(out, size, "%s%s%s%s%s", f & HVP_PF_PRESENT ? "p" : "-", f & HVP_PF_WRITE ? "w" : "-",
                 f & HVP_PF_USER ? "u" : "-", f & HVP_PF_NX ? "-" : "x", f & HVP_PF_GLOBAL ? "g" : "-");
}

static void report(struct cli *c, struct hvp_mmu *mmu, const char *spec, uint64_t va, json_object *arr)
{
        struct hvp_translation tr = { 0 };
        char flags[8];
        int r = hvp_mmu_translate(mmu, va, &tr);

        if (arr) {
                json_object *o = json_object_new_object();

                json_object_object_add(o, "va", cli_json_addr(va));
                json_object_object_add(o, "pa", r < 0 ? NULL : cli_json_addr(tr.pa));
                json_object_object_add(o, "page_size", r < 0 ? NULL : json_object_new_int64((int64_t)tr.page_size));
                flags_text(tr.flags, flags, sizeof(flags));
                json_object_object_add(o, "flags", r < 0 ? NULL : json_object_new_string(flags));
                if (r < 0)
                        json_object_object_add(o, "error", json_object_new_string(hvp_last_error()));
                json_object_array_add(arr, o);
        } else if (r < 0) {
                printf("%-24s 0x%016llx  error: %s\n", spec, (unsigned long long)va, hvp_last_error());
        } else {
                flags_text(tr.flags, flags, sizeof(flags));
                printf("%-24s 0x%016llx -> 0x%012llx  %-4s %s\n", spec, (unsigned long long)va,
                       (unsigned long long)tr.pa,
                       tr.page_size == 4096 ? "4K" : tr.page_size == (2u << 20) ? "2M" : "1G", flags);
        }
}

int cmd_translate(struct cli *c, int argc, char **argv)
{
        struct cli_target t = { 0 };
        json_object *arr = NULL;
        uint64_t vcpu = 0, va;
        bool need_kernel = false;
        int r;

        if (cli_wants_help(c, "translate", argc, argv, help))
                return EXIT_OK;
        for (int i = 0; i + 1 < argc; i++) {
                if (strcmp(argv[i], "--vcpu") == 0) {
                        if (!cli_parse_u64(argv[i + 1], &vcpu))
                                return cli_error(c, EXIT_USAGE, "bad --vcpu '%s'", argv[i + 1]);
                        memmove(&argv[i], &argv[i + 2], (size_t)(argc - i - 2) * sizeof(*argv));
                        argc -= 2;
                        break;
                }
        }
        r = cli_open_guest(c, &argc, &argv, &t.guest);
        if (r)
                return r;
        for (int i = 0; i < argc; i++)
                if (strcmp(argv[i], "-") != 0 && !cli_parse_u64(argv[i], &va))
                        need_kernel = true;
        if (need_kernel)        /* symbols: the kernel's own address space */
                r = hvp_linux_attach(t.guest, &t.mmu, &t.kernel, &t.vcpu);
        else
                r = hvp_mmu_new_from_vcpu(t.guest, (unsigned)vcpu, &t.mmu);
        if (r < 0) {
                r = cli_lib_error(c, r, hvp_guest_name(t.guest));
                cli_target_close(&t);
                return r;
        }
        if (argc < 1) {
                cli_target_close(&t);
                return cli_usage(c, cli_find_command("translate"));
        }
        if (c->json)
                arr = json_object_new_array();
        if (argc == 1 && strcmp(argv[0], "-") == 0) {
                char line[256];

                while (fgets(line, sizeof(line), stdin)) {
                        line[strcspn(line, " \t\r\n")] = '\0';
                        if (!line[0])
                                continue;
                        if (!cli_parse_u64(line, &va)) {
                                r = cli_error(c, EXIT_USAGE, "bad address '%s'", line);
                                goto out;
                        }
                        report(c, t.mmu, line, va, arr);
                }
        } else {
                for (int i = 0; i < argc; i++) {
                        r = cli_resolve(c, &t, argv[i], &va);
                        if (r)
                                goto out;
                        report(c, t.mmu, argv[i], va, arr);
                }
        }
        if (arr) {
                cli_json_print(arr);
                arr = NULL;
        }
        r = EXIT_OK;
out:
        if (arr)
                json_object_put(arr);
        cli_target_close(&t);
        return r;
}

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hvpatch/linux.h>
#include <hvpatch/paging.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/kstate.h"

static const char help[] =
        "Prints the guest kernel's log read from its memory (the lock-free printk ring\n"
        "buffer of 5.10 and later kernels, layouts from the kernel's own BTF), line for\n"
        "line as the guest's own dmesg prints it: \"[seconds.micros] text\" (without the\n"
        "time when the guest turned printk.time off), each line of a multi-line record\n"
        "with the record's time. Only finalized records (what dmesg shows); records\n"
        "overwritten while they are read are skipped. The guest is not paused. Control\n"
        "characters in the text are printed as \\xNN. --json: an array of records with seq,\n"
        "ts_nsec, time (\"seconds.micros\"), level (0-7), facility, text (raw, may hold\n"
        "newlines).\n";

static void print_escaped(const char *s, size_t len)
{
        for (size_t i = 0; i < len; i++) {
                unsigned char ch = (unsigned char)s[i];

                if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                        printf("\\x%02x", ch);
                else
                        putchar(ch);
        }
}

static bool printk_time_on(const struct cli_target *t)
{
        const struct hvp_symbol *s = hvp_symtab_lookup(t->kernel->symtab, "printk_time");
        uint8_t on = 1;

        if (s && hvp_mmu_read(t->mmu, s->addr, &on, 1) < 0)
                on = 1;
        return on != 0;
}

int cmd_dmesg(struct cli *c, int argc, char **argv)
{
        struct cli_target t = { 0 };
        struct hvp_btf *btf = NULL;
        struct hvp_klog *log = NULL;
        struct hvp_kmem km;
        uint64_t prb;
        bool with_time;
        int r;

        if (cli_wants_help(c, "dmesg", argc, argv, help))
                return EXIT_OK;
        r = cli_attach(c, &argc, &argv, &t);
        if (r)
                return r;
        if (argc != 0) {
                cli_target_close(&t);
                return cli_usage(c, cli_find_command("dmesg"));
        }
        r = cli_load_btf(c, &t, "dmesg", &btf);
        if (r)
                goto out;
        r = cli_kernel_symbol(c, &t, "prb", "dmesg (kernels before 5.10 have no printk ring buffer)", &prb);
        if (r)
                goto out;
        cli_kmem(&t, &km);
        r = hvp_linux_klog(&km, btf, prb, &log);
        if (r < 0) {
                r = cli_lib_error(c, r, "dmesg");
                goto out;
        }
        if (log->dropped)
                cli_progress(c, "%llu records skipped (being written or overwritten)",
                             (unsigned long long)log->dropped);
        with_time = printk_time_on(&t);
        if (c->json) {
                json_object *arr = json_object_new_array();

                for (size_t i = 0; i < log->count; i++) {
                        const struct hvp_klog_record *k = &log->records[i];
                        json_object *o = json_object_new_object();
                        char tm[48];

                        snprintf(tm, sizeof(tm), "%llu.%06llu", (unsigned long long)(k->ts_nsec / 1000000000ull),
                                 (unsigned long long)(k->ts_nsec % 1000000000ull / 1000));
                        json_object_object_add(o, "seq", json_object_new_int64((int64_t)k->seq));
                        json_object_object_add(o, "ts_nsec", json_object_new_int64((int64_t)k->ts_nsec));
                        json_object_object_add(o, "time", json_object_new_string(tm));
                        json_object_object_add(o, "level", json_object_new_int(k->level));
                        json_object_object_add(o, "facility", json_object_new_int(k->facility));
                        json_object_object_add(o, "text", json_object_new_string_len(k->text, (int)k->text_len));
                        json_object_array_add(arr, o);
                }
                cli_json_print(arr);
        } else {
                for (size_t i = 0; i < log->count; i++) {
                        const struct hvp_klog_record *k = &log->records[i];
                        const char *p = k->text, *end = k->text + k->text_len;

                        /* As the kernel's record_print_text(): every line gets the prefix. */
                        do {
                                const char *nl = memchr(p, '\n', (size_t)(end - p));
                                const char *e = nl ? nl : end;

                                if (with_time)
                                        printf("[%5llu.%06llu] ", (unsigned long long)(k->ts_nsec / 1000000000ull),
                                               (unsigned long long)(k->ts_nsec % 1000000000ull / 1000));
                                print_escaped(p, (size_t)(e - p));
                                putchar('\n');
                                p = nl ? nl + 1 : end;
                                if (!nl)
                                        break;
                        } while (1);
                }
        }
        r = EXIT_OK;
out:
        hvp_klog_free(log);
        hvp_btf_free(btf);
        cli_target_close(&t);
        return r;
}

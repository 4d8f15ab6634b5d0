#include <stdio.h>

#include <hvpatch/btf.h>
#include <hvpatch/kernel.h>
#include <hvpatch/linux.h>
#include <hvpatch/windows.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/kstate.h"
#include "common/util.h"

static const char help[] =
        "Reads, from the host alone, which kernel runs in a guest: OS, paging mode, CR3,\n"
        "kernel base and KASLR offset, text range, banner and GNU build id, vCPUs.\n"
        "A Windows x64 kernel is recognized too (os \"windows\": base, size, PDB and\n"
        "identity, docs/operations.md); hvpatch does not patch it.\n"
        "For Linux also the size of the kernel's BTF (none: ps and dmesg are off), and\n"
        "Secure Boot, EFI boot and lockdown as the guest kernel recorded\n"
        "them in its memory (boot_params, kernel_locked_down; the lockdown level is named\n"
        "with the kernel's BTF).\n"
        "DOMAIN is a libvirt domain name or UUID; --core FILE reads a `virsh dump\n"
        "--memory-only` ELF core instead.\n";

static void print_windows(struct cli *c, struct hvp_guest *g, unsigned vcpu, const struct hvp_windows_kernel *w,
                          double elapsed)
{
        struct hvp_vcpu_regs regs = { 0 };
        enum hvp_paging_mode mode = HVP_PAGING_4LEVEL;
        const char *paging;

        hvp_guest_vcpu_regs(g, vcpu, &regs);
        hvp_paging_mode(&regs, &mode);
        paging = mode == HVP_PAGING_5LEVEL ? "5-level" : "4-level";
        if (c->json) {
                json_object *o = json_object_new_object(), *ko = json_object_new_object();

                json_object_object_add(o, "domain", json_object_new_string(hvp_guest_name(g)));
                json_object_object_add(o, "backend", json_object_new_string(hvp_guest_backend(g)));
                json_object_object_add(o, "os", json_object_new_string("windows"));
                json_object_object_add(o, "paging", json_object_new_string(paging));
                json_object_object_add(o, "cr3", cli_json_addr(regs.cr3));
                json_object_object_add(o, "vcpus", json_object_new_int((int)hvp_guest_vcpu_count(g)));
                json_object_object_add(ko, "base", cli_json_addr(w->base));
                json_object_object_add(ko, "size", json_object_new_int64(w->size));
                json_object_object_add(ko, "build_id", json_object_new_string(w->identity));
                json_object_object_add(ko, "pdb", w->pe.has_codeview ? json_object_new_string(w->pe.pdb_name) : NULL);
                json_object_object_add(ko, "pdb_age", w->pe.has_codeview ? json_object_new_int64(w->pe.pdb_age) : NULL);
                json_object_object_add(ko, "timestamp", json_object_new_int64(w->pe.timestamp));
                json_object_object_add(ko, "export_name", json_object_new_string(w->pe.export_name));
                json_object_object_add(o, "kernel", ko);
                json_object_object_add(o, "elapsed_ms", json_object_new_double(elapsed));
                cli_json_print(o);
        } else {
                printf("domain:        %s (%s)\n", hvp_guest_name(g), hvp_guest_backend(g));
                printf("os:            windows (not patched by hvpatch: PatchGuard)\n");
                printf("build id:      %s\n", w->identity);
                printf("pdb:           %s\n", w->pe.has_codeview ? w->pe.pdb_name : "(no CodeView record)");
                printf("timestamp:     0x%08x\n", w->pe.timestamp);
                printf("paging:        %s, CR3 0x%llx (vCPU %u)\n", paging, (unsigned long long)regs.cr3, vcpu);
                printf("kernel base:   0x%016llx (%s, %u bytes)\n", (unsigned long long)w->base,
                       w->pe.export_name[0] ? w->pe.export_name : "no export name", w->size);
                printf("vcpus:         %u\n", hvp_guest_vcpu_count(g));
                printf("took:          %.1f ms\n", elapsed);
        }
}

/* Bytes between __start_BTF and __stop_BTF, 0 when the kernel has no BTF (nothing is read). */
static uint64_t btf_bytes(const struct hvp_kernel *k)
{
        const struct hvp_symbol *a = hvp_symtab_lookup(k->symtab, "__start_BTF");
        const struct hvp_symbol *b = hvp_symtab_lookup(k->symtab, "__stop_BTF");

        return a && b && b->addr > a->addr ? b->addr - a->addr : 0;
}

/* No Linux kernel: a Windows one, or the Linux error (err, why) as cli_attach would print it. */
static int inspect_not_linux(struct cli *c, struct hvp_guest *g, int err, const char *why,
                             double t0)
{
        struct hvp_windows_kernel w;
        unsigned vcpu;

        cli_progress(c, "%s: no Linux kernel; looking for a Windows one", hvp_guest_name(g));
        if (hvp_windows_attach(g, &w, &vcpu) < 0)
                return cli_error(c, cli_exit_code(err), "%s: %s", hvp_guest_name(g), why);
        print_windows(c, g, vcpu, &w, hvp_now_ms() - t0);
        return EXIT_OK;
}

/* The attach walks the kernel's own table when it can (an idle vCPU has it in CR3 too). */
static bool walks_init_top_pgt(struct hvp_mmu *mmu, const struct hvp_kernel *k)
{
        const struct hvp_symbol *s = hvp_symtab_lookup(k->symtab, "init_top_pgt");
        struct hvp_translation tr;

        return s && hvp_mmu_translate(mmu, s->addr, &tr) == 0 && tr.pa == hvp_mmu_root(mmu);
}

int cmd_inspect(struct cli *c, int argc, char **argv)
{
        struct cli_target t = { 0 };
        struct hvp_vcpu_regs regs;
        const struct hvp_kernel *k;
        char build_id[2 * sizeof(k->build_id) + 1];
        struct cli_boot_security sec;
        char sec_text[640];
        const char *table_source;
        double t0;
        double elapsed;
        int r;

        if (cli_wants_help(c, "inspect", argc, argv, help))
                return EXIT_OK;
        t0 = hvp_now_ms();
        r = cli_open_guest(c, &argc, &argv, &t.guest);
        if (r)
                return r;
        if (argc > 0) {
                cli_target_close(&t);
                return cli_usage(c, cli_find_command("inspect"));
        }
        cli_progress(c, "%s: finding the kernel", hvp_guest_name(t.guest));
        r = hvp_linux_attach(t.guest, &t.mmu, &t.kernel, &t.vcpu);
        if (r < 0) {
                char why[1024];

                snprintf(why, sizeof(why), "%s", hvp_last_error());
                r = inspect_not_linux(c, t.guest, r, why, t0);
                cli_target_close(&t);
                return r;
        }
        cli_boot_security(&t, &sec);
        elapsed = hvp_now_ms() - t0;
        k = t.kernel;
        hvp_guest_vcpu_regs(t.guest, t.vcpu, &regs);
        hvp_hex_encode(k->build_id, k->build_id_len, build_id);
        table_source = walks_init_top_pgt(t.mmu, k) ? "init_top_pgt" : "cr3";

        if (c->json) {
                json_object *o = json_object_new_object(), *ko = json_object_new_object();
                json_object *pt = json_object_new_object();

                json_object_object_add(o, "domain", json_object_new_string(hvp_guest_name(t.guest)));
                json_object_object_add(o, "backend", json_object_new_string(hvp_guest_backend(t.guest)));
                json_object_object_add(o, "os", json_object_new_string("linux"));
                json_object_object_add(o, "paging", json_object_new_string(
                        hvp_mmu_mode(t.mmu) == HVP_PAGING_5LEVEL ? "5-level" : "4-level"));
                json_object_object_add(o, "cr3", cli_json_addr(regs.cr3));
                json_object_object_add(o, "vcpus", json_object_new_int((int)hvp_guest_vcpu_count(t.guest)));
                json_object_object_add(pt, "root", cli_json_addr(hvp_mmu_root(t.mmu)));
                json_object_object_add(pt, "source", json_object_new_string(table_source));
                json_object_object_add(o, "page_table", pt);
                json_object_object_add(ko, "base", cli_json_addr(k->base));
                json_object_object_add(ko, "kaslr_offset", cli_json_addr((uint64_t)k->kaslr_offset));
                json_object_object_add(ko, "text_start", cli_json_addr(k->text_start));
                json_object_object_add(ko, "text_end", cli_json_addr(k->text_end));
                json_object_object_add(ko, "image_end", cli_json_addr(k->image_end));
                json_object_object_add(ko, "banner", json_object_new_string(k->banner));
                json_object_object_add(ko, "build_id", json_object_new_string(build_id));
                json_object_object_add(ko, "symbols", json_object_new_int64((int64_t)hvp_symtab_count(k->symtab)));
                json_object_object_add(ko, "btf_size", btf_bytes(k) ? json_object_new_int64((int64_t)btf_bytes(k)) : NULL);
                json_object_object_add(o, "kernel", ko);
                json_object_object_add(o, "boot_security", cli_boot_security_json(&sec));
                json_object_object_add(o, "elapsed_ms", json_object_new_double(elapsed));
                cli_json_print(o);
        } else {
                printf("domain:        %s (%s)\n", hvp_guest_name(t.guest), hvp_guest_backend(t.guest));
                printf("os:            linux\n");
                printf("banner:        %s\n", k->banner);
                printf("build id:      %s\n", build_id);
                printf("paging:        %s, CR3 0x%llx (vCPU %u)\n",
                       hvp_mmu_mode(t.mmu) == HVP_PAGING_5LEVEL ? "5-level" : "4-level",
                       (unsigned long long)regs.cr3, t.vcpu);
                printf("page table:    %s at 0x%llx\n", table_source, (unsigned long long)hvp_mmu_root(t.mmu));
                printf("kernel base:   0x%016llx (KASLR offset 0x%llx)\n", (unsigned long long)k->base,
                       (unsigned long long)k->kaslr_offset);
                printf("kernel text:   0x%016llx-0x%016llx\n", (unsigned long long)k->text_start,
                       (unsigned long long)k->text_end);
                printf("symbols:       %zu\n", hvp_symtab_count(k->symtab));
                if (btf_bytes(k))
                        printf("btf:           %llu bytes (ps, dmesg)\n", (unsigned long long)btf_bytes(k));
                else
                        printf("btf:           none: ps and dmesg are off\n");
                cli_boot_security_text(&sec, sec_text, sizeof(sec_text));
                printf("secure boot:   %s\n", sec_text);
                printf("vcpus:         %u\n", hvp_guest_vcpu_count(t.guest));
                printf("took:          %.1f ms\n", elapsed);
        }
        cli_target_close(&t);
        return EXIT_OK;
}

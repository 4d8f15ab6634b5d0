/*
 * Demo redirect patch for Debian's 6.1 kernel: a replacement for version_proc_show()
 * of fs/proc/version.c, which in 6.1 reads
 *
 *      seq_printf(m, linux_proc_banner, utsname()->sysname, utsname()->release,
 *                 utsname()->version);
 *
 * and so prints "Linux version <release> (<by>@<host>) (<compiler>) <version>\n".
 * That is exactly linux_banner (init/version.c builds it from the same macros), for
 * every namespace: sysname, release and version cannot be changed per UTS namespace
 * (only nodename and domainname can). So the replacement prints linux_banner up to
 * its newline, then a marker: /proc/version shows that the patch is live.
 *
 * Built without kernel headers: the two kernel symbols used are declared here and
 * resolved through the guest's kallsyms when the bundle is applied. No writable data,
 * no -pg (see docs/bundle.md). Build: build-demo.sh.
 */
struct seq_file;

/* include/linux/seq_file.h (6.1): __printf(2, 3) void seq_printf(struct seq_file *m, const char *fmt, ...); */
extern void seq_printf(struct seq_file *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* init/version.c: const char linux_banner[] (in kallsyms: CONFIG_KALLSYMS_ALL=y) */
extern const char linux_banner[];

#define BANNER_MAX 1024 /* linux_banner is ~150 bytes; never read past this */

int hvp_version_proc_show(struct seq_file *m, void *v)
{
        int n = 0;

        while (n < BANNER_MAX && linux_banner[n] != '\0' && linux_banner[n] != '\n')
                n++;
        seq_printf(m, "%.*s [hvpatch: hotpatched]\n", n, linux_banner);
        return 0;
}

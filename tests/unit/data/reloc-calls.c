/*
 * Test input for tests/unit/test-reloc.c: compiled at test time with the system gcc
 * as a kernel patch object would be. External calls (resolved through the test's
 * resolver), string literals (.rodata.str*), a static helper, a switch compiled to a
 * jump table (.rodata with R_X86_64_64 entries, R_X86_64_32S for the table itself).
 */
struct seq_file;

extern int printk(const char *fmt, ...);
extern int seq_printf(struct seq_file *m, const char *fmt, ...);
extern void seq_puts(struct seq_file *m, const char *s);
extern int op_zero(int), op_one(int), op_two(int), op_three(int), op_four(int), op_five(int),
        op_six(int), op_seven(int);

static __attribute__((noinline)) int helper(struct seq_file *m, int x)
{
        seq_puts(m, "hvp-helper-literal");
        return printk("hvp-helper %d\n", x) + x;
}

int patch_entry(struct seq_file *m, int v)
{
        int r;

        switch (v) {
        case 0: r = op_zero(v); break;
        case 1: r = op_one(v + 3); break;
        case 2: r = op_two(v * 7); break;
        case 3: r = op_three(v - 9); break;
        case 4: r = op_four(v ^ 5); break;
        case 5: r = op_five(v << 2); break;
        case 6: r = op_six(v + 11); break;
        case 7: r = op_seven(v | 64); break;
        default: r = -1; break;
        }
        seq_printf(m, "hvp-entry %d %s\n", r, "hvp-marker-literal");
        return helper(m, r);
}

/* Test input: a patch function that uses a writable global (.data): must be refused. */
extern int printk(const char *fmt, ...);

int hvp_counter = 42;

int uses_data(void)
{
        hvp_counter++;
        return printk("count %d\n", hvp_counter);
}

/* Does not touch the global: placeable on its own when compiled with -ffunction-sections. */
int no_data(int x)
{
        return printk("no data %d\n", x);
}

/* Test input: reads a kernel variable; compiled with -fpic it needs a GOT relocation. */
extern unsigned long jiffies;

unsigned long read_jiffies(void)
{
        return jiffies + 1;
}

/* Test input: a static zero-initialized variable lands in .bss: must be refused. */
static long hvp_calls;

long uses_bss(void)
{
        return ++hvp_calls;
}

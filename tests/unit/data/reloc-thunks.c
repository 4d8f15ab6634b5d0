/*
 * Test input: compiled with -mfunction-return=thunk-extern -mindirect-branch=thunk-extern
 * -mindirect-branch-register, as Debian's 6.1 kernel is: returns become
 * `jmp __x86_return_thunk` and the indirect call `call __x86_indirect_thunk_rax`.
 */
extern int printk(const char *fmt, ...);

int call_through(int (*fn)(int), int x)
{
        int r = fn(x);

        printk("thunk %d\n", r);
        return r + 1;
}

/*
 * Test input for tests/unit/test-fit.c: a redirect function whose code has what the
 * demo's lacks: a function whose address is taken (handed to the kernel, which calls
 * it indirectly: needs endbr64 under IBT), an indirect call through a pointer the
 * kernel passes in (a retpoline thunk call with -mindirect-branch=thunk-extern), and a
 * dense switch (a jump table unless -fno-jump-tables). Compiled at test time with the
 * flags images/kernel-cflags.sh derives from each kernel config, and with wrong ones.
 */
struct rcu_head;

/* include/linux/rcupdate.h: void call_rcu(struct rcu_head *head, rcu_callback_t func); */
extern void call_rcu(struct rcu_head *head, void (*func)(struct rcu_head *head));
/* include/linux/slab.h: void kfree(const void *objp); */
extern void kfree(const void *objp);
/* include/linux/printk.h */
extern int _printk(const char *fmt, ...);

static void hvp_fit_free(struct rcu_head *head)
{
        kfree(head);
}

int hvp_fit_release(struct rcu_head *head, int (*check)(struct rcu_head *head), int mode)
{
        int r = check(head);

        switch (mode) {
        case 0: r += 3; break;
        case 1: r ^= 0x55; break;
        case 2: r *= 7; break;
        case 3: r -= 11; break;
        case 4: r <<= 2; break;
        case 5: r |= 0x100; break;
        case 6: r = -r; break;
        case 7: _printk("mode 7\n"); break;
        default: return r;
        }
        call_rcu(head, hvp_fit_free);
        return r;
}

/*
 * Internal: spending a struct hvp_scan_budget (include/hvpatch/kernel.h). Searches of
 * guest memory read through a budgeted reader and count what they examine; once a
 * limit runs out every later read fails and every count is refused, so a search
 * unwinds quickly and reports the limit with hvp_scan_budget_fail().
 */
#ifndef HVP_VMI_SCAN_BUDGET_H
#define HVP_VMI_SCAN_BUDGET_H

#include <stdbool.h>

#include <hvpatch/kernel.h>

/* What a failed read costs, in bytes of the budget: a walk that found a hole. */
#define HVP_SCAN_FAILED_READ_COST 4096u

enum hvp_scan_count {
        HVP_SCAN_CANDIDATES,
        HVP_SCAN_TABLES,
        HVP_SCAN_RECORDS,
        HVP_SCAN_READS,                 /* a read or a page walk of guest memory */
};

/* Take n of a count; false (and b->spent set) when that passes its limit or time is up. */
bool hvp_scan_take(struct hvp_scan_budget *b, enum hvp_scan_count what, uint64_t n);
/* false once any limit has run out (the time is checked here too). */
bool hvp_scan_left(struct hvp_scan_budget *b);
/* -E2BIG with a reason: "SEARCH: gave up: ... budget spent (counts)". */
int hvp_scan_budget_fail(const struct hvp_scan_budget *b, const char *search);

/* A reader over inner that charges b for every call (km.budget is b). */
struct hvp_scan_kmem {
        struct hvp_kmem km;
        const struct hvp_kmem *inner;
        struct hvp_scan_budget *b;
};
void hvp_scan_kmem_init(struct hvp_scan_kmem *sk, const struct hvp_kmem *inner, struct hvp_scan_budget *b);

#endif

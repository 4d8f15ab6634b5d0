/* The budget of kernel searches over hostile guest memory (see vmi/scan-budget.h). */
#include <errno.h>

#include "common/error.h"
#include "common/util.h"
#include "vmi/scan-budget.h"

void hvp_scan_budget_init(struct hvp_scan_budget *b)
{
        *b = (struct hvp_scan_budget){
                .max_candidates = HVP_SCAN_MAX_CANDIDATES,
                .max_tables = HVP_SCAN_MAX_TABLES,
                .max_reads = HVP_SCAN_MAX_READS,
                .max_bytes = HVP_SCAN_MAX_BYTES,
                .max_records = HVP_SCAN_MAX_RECORDS,
                .max_ms = HVP_SCAN_MAX_MS,
        };
}

static bool time_left(struct hvp_scan_budget *b)
{
        double now = hvp_now_ms();

        if (b->start_ms == 0)
                b->start_ms = now;
        if (now - b->start_ms > b->max_ms) {
                b->spent = "time";
                return false;
        }
        return true;
}

bool hvp_scan_left(struct hvp_scan_budget *b)
{
        return !b->spent && time_left(b);
}

bool hvp_scan_take(struct hvp_scan_budget *b, enum hvp_scan_count what, uint64_t n)
{
        static const char *const names[] = {
                [HVP_SCAN_CANDIDATES] = "candidates",
                [HVP_SCAN_TABLES] = "token tables",
                [HVP_SCAN_RECORDS] = "name records",
                [HVP_SCAN_READS] = "reads",
        };
        uint64_t *const counts[] = {
                [HVP_SCAN_CANDIDATES] = &b->candidates,
                [HVP_SCAN_TABLES] = &b->tables,
                [HVP_SCAN_RECORDS] = &b->records,
                [HVP_SCAN_READS] = &b->reads,
        };
        const uint64_t maxes[] = {
                [HVP_SCAN_CANDIDATES] = b->max_candidates,
                [HVP_SCAN_TABLES] = b->max_tables,
                [HVP_SCAN_RECORDS] = b->max_records,
                [HVP_SCAN_READS] = b->max_reads,
        };
        uint64_t *count = counts[what], max = maxes[what];

        if (!hvp_scan_left(b))
                return false;
        if (n > max - HVP_MIN(*count, max)) {
                *count = max;
                b->spent = names[what];
                return false;
        }
        *count += n;
        return true;
}

int hvp_scan_budget_fail(const struct hvp_scan_budget *b, const char *search)
{
        double ms = b->start_ms ? hvp_now_ms() - b->start_ms : 0;

        return hvp_fail(-E2BIG, "%s: gave up, the search budget for %s ran out (%llu of %llu candidates, "
                        "%llu of %llu token tables, %llu of %llu reads, %llu of %llu MiB, %llu of %llu name "
                        "records, %.1f of %.0f s): guest memory made to stall the search, or corrupt",
                        search, b->spent ? b->spent : "?", (unsigned long long)b->candidates,
                        (unsigned long long)b->max_candidates, (unsigned long long)b->tables,
                        (unsigned long long)b->max_tables, (unsigned long long)b->reads,
                        (unsigned long long)b->max_reads, (unsigned long long)(b->bytes >> 20),
                        (unsigned long long)(b->max_bytes >> 20), (unsigned long long)b->records,
                        (unsigned long long)b->max_records, ms / 1e3, b->max_ms / 1e3);
}

static int scan_read(void *ctx, uint64_t va, void *buf, size_t len)
{
        struct hvp_scan_kmem *sk = ctx;
        struct hvp_scan_budget *b = sk->b;
        int r;

        if (!hvp_scan_take(b, HVP_SCAN_READS, 1))
                return -E2BIG;
        if (len > b->max_bytes - HVP_MIN(b->bytes, b->max_bytes)) {
                b->spent = "bytes";
                return -E2BIG;
        }
        r = sk->inner->read(sk->inner->ctx, va, buf, len);
        b->bytes += r < 0 ? HVP_MIN((uint64_t)len, (uint64_t)HVP_SCAN_FAILED_READ_COST) : len;
        return r;
}

static uint64_t scan_hole_end(void *ctx, uint64_t va)
{
        struct hvp_scan_kmem *sk = ctx;

        if (sk->b->spent)
                return UINT64_MAX;      /* nothing more is read: skip the rest */
        return sk->inner->hole_end ? sk->inner->hole_end(sk->inner->ctx, va) : 0;
}

void hvp_scan_kmem_init(struct hvp_scan_kmem *sk, const struct hvp_kmem *inner, struct hvp_scan_budget *b)
{
        sk->inner = inner;
        sk->b = b;
        sk->km = *inner;
        sk->km.read = scan_read;
        sk->km.ctx = sk;
        sk->km.hole_end = scan_hole_end;
        sk->km.budget = b;
}

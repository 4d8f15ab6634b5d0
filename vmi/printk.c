/*
 * The kernel log from the lock-free printk ring buffer (kernel/printk/printk_ringbuffer.h,
 * 5.10 and later), layouts from the guest's BTF.
 *
 * struct printk_ringbuffer { desc_ring { count_bits, descs, infos, head_id, tail_id, ... },
 *                            text_data_ring { size_bits, data, head_lpos, tail_lpos }, ... }
 * Descriptor id N lives at descs[N & (count-1)] and infos[N & (count-1)]. Its state_var
 * holds the state in its top two bits (0 reserved, 1 committed, 2 finalized, 3 reusable)
 * and the id in the rest. Its text block [begin, next) is a logical position in the data
 * ring: the block starts at begin & (size-1), unless it would wrap, in which case it
 * starts at offset 0 and ends at next & (size-1); the block is the descriptor's id (an
 * unsigned long) followed by the text. begin & 1 marks a record without data.
 *
 * Readers of the kernel read only finalized records (dmesg, /dev/kmsg), so do we. The
 * whole data ring is copied first, then the descriptors; a block whose id is not its
 * descriptor's was overwritten in between, and the record is dropped, never shown torn.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <hvpatch/linux.h>

#include "common/error.h"
#include "common/util.h"

#define DESC_STATE_SHIFT 62
#define DESC_ID_MASK (~(3ull << DESC_STATE_SHIFT))
#define DESC_FINALIZED 2ull
#define READ_CHUNK (1u << 20)

/* A read through the caller's reader, whose failure always leaves a reason. */
static int kread(const struct hvp_kmem *km, uint64_t va, void *buf, size_t len)
{
        int r;

        hvp_clear_error();
        r = km->read(km->ctx, va, buf, len);
        if (r < 0 && !hvp_last_error()[0])
                hvp_fail(r, "%s", strerror(-r));
        return r;
}

struct klog_layout {
        /* printk_ringbuffer */
        uint64_t desc_ring, text_data_ring, rb_size;
        /* prb_desc_ring */
        uint64_t count_bits, descs, infos, head_id, tail_id;
        /* prb_data_ring */
        uint64_t size_bits, data;
        /* prb_desc, prb_data_blk_lpos */
        uint64_t desc_size, state_var, text_blk_lpos, lpos_begin, lpos_next;
        /* printk_info */
        uint64_t info_size, seq, ts_nsec, text_len, facility, caller_id;
        uint64_t level_bits_off;        /* the byte holding the level:3 bitfield, see below */
};

static int need(const struct hvp_btf *btf, const char *path, uint64_t *ret)
{
        int r = hvp_btf_member(btf, path, ret, NULL);

        if (r < 0)
                return hvp_fail_context(r == -ENOENT ? -ENOENT : r,
                                        "kernel log (needs the printk ring buffer of 5.10 or later)");
        return 0;
}

static int need_size(const struct hvp_btf *btf, const char *name, uint64_t *ret)
{
        int r = hvp_btf_struct_size(btf, name, ret);

        if (r < 0)
                return hvp_fail_context(r, "kernel log (needs the printk ring buffer of 5.10 or later)");
        return 0;
}

static int layout_from_btf(const struct hvp_btf *btf, struct klog_layout *l)
{
        uint64_t dr_size, tr_size;
        int r;

        if ((r = need(btf, "printk_ringbuffer.desc_ring", &l->desc_ring)) < 0 ||
            (r = need(btf, "printk_ringbuffer.text_data_ring", &l->text_data_ring)) < 0 ||
            (r = need_size(btf, "printk_ringbuffer", &l->rb_size)) < 0 ||
            (r = need(btf, "prb_desc_ring.count_bits", &l->count_bits)) < 0 ||
            (r = need(btf, "prb_desc_ring.descs", &l->descs)) < 0 ||
            (r = need(btf, "prb_desc_ring.infos", &l->infos)) < 0 ||
            (r = need(btf, "prb_desc_ring.head_id", &l->head_id)) < 0 ||
            (r = need(btf, "prb_desc_ring.tail_id", &l->tail_id)) < 0 ||
            (r = need(btf, "prb_data_ring.size_bits", &l->size_bits)) < 0 ||
            (r = need(btf, "prb_data_ring.data", &l->data)) < 0 ||
            (r = need_size(btf, "prb_desc", &l->desc_size)) < 0 ||
            (r = need(btf, "prb_desc.state_var", &l->state_var)) < 0 ||
            (r = need(btf, "prb_desc.text_blk_lpos", &l->text_blk_lpos)) < 0 ||
            (r = need(btf, "prb_data_blk_lpos.begin", &l->lpos_begin)) < 0 ||
            (r = need(btf, "prb_data_blk_lpos.next", &l->lpos_next)) < 0 ||
            (r = need_size(btf, "printk_info", &l->info_size)) < 0 ||
            (r = need(btf, "printk_info.seq", &l->seq)) < 0 ||
            (r = need(btf, "printk_info.ts_nsec", &l->ts_nsec)) < 0 ||
            (r = need(btf, "printk_info.text_len", &l->text_len)) < 0 ||
            (r = need(btf, "printk_info.facility", &l->facility)) < 0 ||
            (r = need(btf, "printk_info.caller_id", &l->caller_id)) < 0)
                return r;
        /*
         * flags:5 and level:3 share the byte after facility (u8 flags:5; u8 level:3;
         * little-endian bitfields: level is its top three bits). BTF gives bit offsets for
         * bitfields, which hvp_btf_member() refuses; the layout has not changed since 5.10.
         */
        l->level_bits_off = l->facility + 1;
        if ((r = need_size(btf, "prb_desc_ring", &dr_size)) < 0 ||
            (r = need_size(btf, "prb_data_ring", &tr_size)) < 0)
                return r;
        /* Every field read lies inside its struct, and every struct inside the one read. */
        if (l->rb_size > 4096 || l->desc_size > 256 || l->info_size > 4096 ||
            l->desc_ring + dr_size > l->rb_size || l->text_data_ring + tr_size > l->rb_size ||
            l->count_bits + 4 > dr_size || l->descs + 8 > dr_size || l->infos + 8 > dr_size ||
            l->head_id + 8 > dr_size || l->tail_id + 8 > dr_size ||
            l->size_bits + 4 > tr_size || l->data + 8 > tr_size ||
            l->state_var + 8 > l->desc_size || l->text_blk_lpos + 16 > l->desc_size ||
            l->lpos_begin + 8 > 16 || l->lpos_next + 8 > 16 || l->seq + 8 > l->info_size ||
            l->ts_nsec + 8 > l->info_size || l->text_len + 2 > l->info_size ||
            l->level_bits_off + 1 > l->info_size || l->caller_id + 4 > l->info_size)
                return hvp_fail(-EINVAL, "kernel log: the BTF's printk_ringbuffer layout is not the expected one");
        return 0;
}

void hvp_klog_free(struct hvp_klog *log)
{
        if (!log)
                return;
        free(log->records);
        free(log);
}

/* The text block of a descriptor inside the copied data ring; NULL when it has none or is bad. */
static const uint8_t *text_block(const uint8_t *ring, uint64_t size, unsigned size_bits, uint64_t begin,
                                 uint64_t next, uint64_t *ret_len)
{
        uint64_t off, len;

        if ((begin & 1) || (next & 1))
                return NULL;                    /* no data (or FAILED_LPOS) */
        if ((begin >> size_bits) == (next >> size_bits) && begin < next) {
                off = begin & (size - 1);
                len = next - begin;
        } else if (((begin + size) >> size_bits) == (next >> size_bits)) {
                off = 0;                        /* wrapped: the block starts the ring */
                len = next & (size - 1);
        } else {
                return NULL;
        }
        if (len < 8 || !hvp_range_within(off, len, 0, size))
                return NULL;
        *ret_len = len;
        return ring + off;
}

int hvp_linux_klog(const struct hvp_kmem *km, const struct hvp_btf *btf, uint64_t prb_var,
                   struct hvp_klog **ret_log)
{
        struct klog_layout l;
        uint8_t rb[4096], desc[256], info[4096], b8[8];
        _cleanup_free_ uint8_t *ring = NULL;
        _cleanup_free_ char *texts = NULL;
        struct hvp_klog *log = NULL;
        uint64_t rb_va, descs, infos, data, head_id, tail_id, count, size, nr, text_used = 0, text_bytes = 0;
        uint64_t text_cap;
        unsigned count_bits, size_bits;
        size_t *text_offs = NULL;
        int r;

        if (!km || !km->read || !btf || !ret_log)
                return hvp_fail(-EINVAL, "hvp_linux_klog: bad arguments");
        r = layout_from_btf(btf, &l);
        if (r < 0)
                return r;
        r = kread(km, prb_var, b8, 8);
        if (r < 0)
                return hvp_fail_context(r, "kernel log: reading prb at 0x%llx", (unsigned long long)prb_var);
        rb_va = hvp_le64(b8);
        r = kread(km, rb_va, rb, l.rb_size);
        if (r < 0)
                return hvp_fail_context(r, "kernel log: reading the ring buffer at 0x%llx", (unsigned long long)rb_va);

        count_bits = hvp_le32(rb + l.desc_ring + l.count_bits);
        size_bits = hvp_le32(rb + l.text_data_ring + l.size_bits);
        descs = hvp_le64(rb + l.desc_ring + l.descs);
        infos = hvp_le64(rb + l.desc_ring + l.infos);
        head_id = hvp_le64(rb + l.desc_ring + l.head_id);
        tail_id = hvp_le64(rb + l.desc_ring + l.tail_id);
        data = hvp_le64(rb + l.text_data_ring + l.data);
        if (count_bits > 31 || (1ull << count_bits) > HVP_KLOG_MAX_DESCS)
                return hvp_fail(-E2BIG, "kernel log: %u bits of descriptors (at most %u descriptors)", count_bits,
                                HVP_KLOG_MAX_DESCS);
        if (size_bits > 31 || (1ull << size_bits) > HVP_KLOG_MAX_DATA)
                return hvp_fail(-E2BIG, "kernel log: a data ring of 2^%u bytes (at most %u MiB)", size_bits,
                                HVP_KLOG_MAX_DATA >> 20);
        if (size_bits < 4)
                return hvp_fail(-EINVAL, "kernel log: a data ring of 2^%u bytes", size_bits);
        count = 1ull << count_bits;
        size = 1ull << size_bits;
        nr = ((head_id - tail_id) & DESC_ID_MASK) + 1;
        if (nr > count)
                return hvp_fail(-EINVAL, "kernel log: tail id %llu to head id %llu span more than the %llu descriptors",
                                (unsigned long long)tail_id, (unsigned long long)head_id, (unsigned long long)count);

        ring = malloc(size);
        /* Texts come from the ring (at most size bytes in all, checked) plus one NUL each. */
        text_cap = size + nr + 1;
        texts = malloc(text_cap);
        text_offs = calloc(nr, sizeof(*text_offs));
        log = calloc(1, sizeof(*log));
        if (log)
                log->records = calloc(nr, sizeof(*log->records));
        if (!ring || !texts || !text_offs || !log || !log->records) {
                r = hvp_fail(-ENOMEM, "out of memory");
                goto out;
        }
        for (uint64_t off = 0; off < size; off += READ_CHUNK) {
                r = kread(km, data + off, ring + off, (size_t)HVP_MIN((uint64_t)READ_CHUNK, size - off));
                if (r < 0) {
                        r = hvp_fail_context(r, "kernel log: reading the data ring at 0x%llx",
                                             (unsigned long long)(data + off));
                        goto out;
                }
        }
        for (uint64_t i = 0; i < nr; i++) {
                uint64_t id = (tail_id + i) & DESC_ID_MASK, idx = id & (count - 1), sv, begin, next, blen;
                struct hvp_klog_record *rec = &log->records[log->count];
                const uint8_t *blk;
                uint16_t tlen;

                r = kread(km, descs + idx * l.desc_size, desc, l.desc_size);
                if (r == 0)
                        r = kread(km, infos + idx * l.info_size, info, l.info_size);
                if (r < 0) {
                        r = hvp_fail_context(r, "kernel log: reading descriptor %llu", (unsigned long long)id);
                        goto out;
                }
                sv = hvp_le64(desc + l.state_var);
                if ((sv >> DESC_STATE_SHIFT) != DESC_FINALIZED || (sv & DESC_ID_MASK) != id) {
                        log->dropped++;
                        continue;
                }
                begin = hvp_le64(desc + l.text_blk_lpos + l.lpos_begin);
                next = hvp_le64(desc + l.text_blk_lpos + l.lpos_next);
                tlen = hvp_le16(info + l.text_len);
                rec->seq = hvp_le64(info + l.seq);
                rec->ts_nsec = hvp_le64(info + l.ts_nsec);
                rec->facility = info[l.facility];
                rec->level = info[l.level_bits_off] >> 5;
                rec->caller_id = hvp_le32(info + l.caller_id);
                text_offs[log->count] = text_used;
                if (tlen > 0) {
                        blk = text_block(ring, size, size_bits, begin, next, &blen);
                        /* The block's id is its descriptor's unless it was overwritten since. */
                        if (!blk || (hvp_le64(blk) & DESC_ID_MASK) != id || blen - 8 < tlen ||
                            text_bytes + tlen > size) {
                                log->dropped++;
                                continue;
                        }
                        memcpy(texts + text_used, blk + 8, tlen);
                }
                rec->text_len = tlen;
                text_bytes += tlen;
                text_used += tlen;
                texts[text_used++] = '\0';     /* text_used <= text_bytes + records <= text_cap - 1 */
                log->count++;
        }
        /* The texts move behind the records, into the same allocation: one free(). */
        {
                size_t recs = log->count * sizeof(*log->records);
                struct hvp_klog_record *all = realloc(log->records, recs + text_used + 1);

                if (!all) {
                        r = hvp_fail(-ENOMEM, "out of memory");
                        goto out;
                }
                log->records = all;
                memcpy((char *)all + recs, texts, text_used);
                for (size_t k = 0; k < log->count; k++)
                        all[k].text = (char *)all + recs + text_offs[k];
        }
        *ret_log = log;
        log = NULL;
        r = 0;
out:
        free(text_offs);
        hvp_klog_free(log);
        return r;
}

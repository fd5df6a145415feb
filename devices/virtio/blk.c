/* blk.c: virtio-blk (virtio 1.2 §5.2), device id 2, one request queue.
 * A request is a header (type, sector), data, and a status byte at the
 * very end of the device-writable part (§5.2.6). Each request is handed
 * to the block layer's worker threads; the completion writes the status,
 * puts the chain in the used ring and interrupts from the worker thread.
 * A request that does not make sense gets VIRTIO_BLK_S_IOERR or
 * VIRTIO_BLK_S_UNSUPP: the guest is hostile, the device stays usable. */
#include "blk.h"

#include <errno.h>
#include <string.h>

/* Feature bits (§5.2.3). */
#define F_SEG_MAX      2
#define F_RO           5
#define F_BLK_SIZE     6
#define F_FLUSH        9
#define F_DISCARD      13
#define F_WRITE_ZEROES 14

/* Request types (§5.2.6). */
#define T_IN           0
#define T_OUT          1
#define T_FLUSH        4
#define T_GET_ID       8
#define T_DISCARD      11
#define T_WRITE_ZEROES 13

#define S_OK     0
#define S_IOERR  1
#define S_UNSUPP 2

#define SECTOR        512u
#define HEADER_SIZE   16u
#define SEGMENT_SIZE  16u       /* struct virtio_blk_discard_write_zeroes */
#define F_SEG_UNMAP   1u

/* struct virtio_blk_config up to write_zeroes_may_unmap and its padding. */
#define CONFIG_SIZE 60

/* A discard or write-zeroes may name this many ranges; each runs as its own
 * block request, one after the other. */
#define MAX_SEGMENTS    16
#define MAX_SEG_SECTORS (1u << 22)  /* 2 GiB per range */

#define MAX_LOGGED 8

/* A read of at least this much runs as two requests of half the size, so
 * two threads copy it at once (at queue depth 1 a 1 MiB read from the host's
 * page cache went from 89 to 75 us in the riscv guest: the idle hart takes
 * one half, a worker the other). */
#define SPLIT_MIN (512u << 10)

typedef struct {
    FerryVirtioDevice vdev;
    FerryBlock *bs;
    gboolean read_only;
    guint64 sectors;
    char serial[FERRY_VIRTIO_BLK_ID_BYTES];
    guint8 config[CONFIG_SIZE];

    GMutex lock;                /* inflight */
    GCond idle;
    guint idle_waiters;         /* in wait_idle */
    guint inflight;
    guint64 completed;          /* atomic */
    gint logged;                /* atomic */
} VirtioBlk;

typedef struct {
    FerryBlockReq req;          /* what the block layer sees */
    VirtioBlk *blk;
    FerryVirtqChain *chain;
    guint32 type;
    struct iovec *iov;          /* the data part of the chain */
    int niov;
    guint32 written;            /* bytes the device wrote, status included */
    /* Discard / write-zeroes ranges, (sector, count) pairs. */
    guint64 seg_sector[MAX_SEGMENTS];
    guint32 seg_count[MAX_SEGMENTS];
    guint n_segs, next_seg;
    /* A big read runs as two halves (see SPLIT_MIN). */
    FerryBlockReq half[2];
    struct iovec *half_iov[2];
    gint halves_left, half_error;       /* atomic */
} BlkReq;

static void G_GNUC_PRINTF(2, 3)
guest_error(VirtioBlk *blk, const char *format, ...)
{
    gint n = __atomic_fetch_add(&blk->logged, 1, __ATOMIC_RELAXED);
    if (n >= MAX_LOGGED)
        return;
    va_list ap;
    va_start(ap, format);
    g_autofree char *msg = g_strdup_vprintf(format, ap);
    va_end(ap);
    if (n == 0)
        g_message("%s (virtio-blk): %s (further guest errors are debug messages)", blk->vdev.id, msg);
    else
        g_debug("%s (virtio-blk): %s", blk->vdev.id, msg);
}

static void
put_le16(guint8 *p, guint16 v)
{
    v = GUINT16_TO_LE(v);
    memcpy(p, &v, 2);
}

static void
put_le32(guint8 *p, guint32 v)
{
    v = GUINT32_TO_LE(v);
    memcpy(p, &v, 4);
}

static void
put_le64(guint8 *p, guint64 v)
{
    v = GUINT64_TO_LE(v);
    memcpy(p, &v, 8);
}

static void
fill_config(VirtioBlk *blk)
{
    guint8 *c = blk->config;

    memset(c, 0, CONFIG_SIZE);
    put_le64(c + 0, blk->sectors);                          /* capacity */
    /* size_max (8) unused: F_SIZE_MAX is not offered. Two descriptors
     * of a chain are the header and the status. */
    put_le32(c + 12, FERRY_VIRTIO_BLK_QUEUE_SIZE - 2);      /* seg_max */
    put_le32(c + 20, SECTOR);                               /* blk_size */
    put_le16(c + 34, 1);                                    /* num_queues */
    put_le32(c + 36, MAX_SEG_SECTORS);                      /* max_discard_sectors */
    put_le32(c + 40, MAX_SEGMENTS);                         /* max_discard_seg */
    put_le32(c + 44, 4096 / SECTOR);                        /* discard_sector_alignment */
    put_le32(c + 48, MAX_SEG_SECTORS);                      /* max_write_zeroes_sectors */
    put_le32(c + 52, MAX_SEGMENTS);                         /* max_write_zeroes_seg */
    c[56] = 0;                                              /* write_zeroes_may_unmap */
}

static void
blk_read_config(FerryVirtioDevice *vdev, guint32 offset, void *buf, guint32 len)
{
    memcpy(buf, ((VirtioBlk *) vdev)->config + offset, len);
}

/* ---- completion ------------------------------------------------------------ */

static void
req_free(BlkReq *r)
{
    g_free(r->half_iov[0]);
    g_free(r->half_iov[1]);
    g_free(r->iov);
    g_free(r);
}

/* Writes the status byte, gives the chain back and interrupts. Any thread;
 * takes neither the device lock nor waits for anything. */
static void
finish(BlkReq *r, guint8 status)
{
    VirtioBlk *blk = r->blk;
    FerryVirtqChain *chain = r->chain;
    FerryVirtq *vq = chain->vq;

    if (chain->writable_len >= 1) {
        ferry_virtq_chain_write(chain, chain->writable_len - 1, &status, 1);
        r->written = status == S_OK ? r->written + 1 : 1;
    } else {
        r->written = 0;
    }
    if (ferry_virtq_push(chain, r->written))
        ferry_virtq_notify(vq);
    req_free(r);

    __atomic_fetch_add(&blk->completed, 1, __ATOMIC_RELAXED);
    g_mutex_lock(&blk->lock);
    /* GLib's broadcast is a futex syscall even with nobody waiting: at
     * queue depth 1 that was one per request. */
    if (--blk->inflight == 0 && blk->idle_waiters)
        g_cond_broadcast(&blk->idle);
    g_mutex_unlock(&blk->lock);
}

static void
submit_segment(BlkReq *r)
{
    guint i = r->next_seg++;

    r->req.op = r->type == T_DISCARD ? FERRY_BLOCK_OP_DISCARD : FERRY_BLOCK_OP_WRITE_ZEROES;
    r->req.offset = r->seg_sector[i] * SECTOR;
    r->req.length = (guint64) r->seg_count[i] * SECTOR;
    r->req.iov = NULL;
    r->req.niov = 0;
    ferry_block_submit_async(r->blk->bs, &r->req);
}

/* Block worker thread. */
static void
req_done(FerryBlockReq *req, int result)
{
    BlkReq *r = (BlkReq *) req;

    if (result == 0 && r->next_seg < r->n_segs) {
        /* The next range goes through the queue, not this thread: a
         * commit may be waiting for this request to end. */
        submit_segment(r);
        return;
    }
    if (result < 0 && result != -EROFS) {
        g_autofree char *why = result == -EIO ? ferry_block_last_error(r->blk->bs) : NULL;
        guest_error(r->blk, "request type %u at %" G_GUINT64_FORMAT " failed: %s", r->type,
                    (guint64) req->offset, why ? why : g_strerror(-result));
    }
    finish(r, result == 0 ? S_OK : S_IOERR);
}

/* Block worker thread, or an idle vCPU's: one half of a split read. */
static void
half_done(FerryBlockReq *req, int result)
{
    BlkReq *r = req->opaque;

    if (result < 0)
        __atomic_store_n(&r->half_error, result, __ATOMIC_RELAXED);
    if (__atomic_sub_fetch(&r->halves_left, 1, __ATOMIC_ACQ_REL) == 0)
        req_done(&r->req, __atomic_load_n(&r->half_error, __ATOMIC_RELAXED));
}

/* ---- requests -------------------------------------------------------------- */

/* The part [offset, offset + len) of an iovec array as a new array. */
static int
iov_slice(const struct iovec *iov, guint n, gsize offset, gsize len, struct iovec **out)
{
    struct iovec *v = g_new(struct iovec, MAX(n, 1));
    int k = 0;

    for (guint i = 0; i < n && len; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        gsize chunk = MIN(iov[i].iov_len - offset, len);
        v[k].iov_base = (guint8 *) iov[i].iov_base + offset;
        v[k].iov_len = chunk;
        k++;
        len -= chunk;
        offset = 0;
    }
    *out = v;
    return k;
}

/* Whether [sector, sector + count) lies on the disk. */
static gboolean
in_range(VirtioBlk *blk, guint64 sector, guint64 count)
{
    return sector <= blk->sectors && count <= blk->sectors - sector;
}

/* Reads the ranges of a discard or write-zeroes; the status to finish
 * with at once, or S_OK to go on. */
static guint8
parse_segments(VirtioBlk *blk, BlkReq *r)
{
    gsize len = r->chain->readable_len - HEADER_SIZE;
    guint feature = r->type == T_DISCARD ? F_DISCARD : F_WRITE_ZEROES;
    const char *what = r->type == T_DISCARD ? "discard" : "write-zeroes";

    if (!ferry_virtio_has_feature(&blk->vdev, feature))
        return S_UNSUPP;
    if (blk->read_only)
        return S_IOERR;
    if (len == 0 || len % SEGMENT_SIZE || len / SEGMENT_SIZE > MAX_SEGMENTS) {
        guest_error(blk, "%s with %" G_GSIZE_FORMAT " bytes of ranges (1 to %u of %u bytes)",
                    what, len, MAX_SEGMENTS, SEGMENT_SIZE);
        return S_IOERR;
    }
    r->n_segs = len / SEGMENT_SIZE;
    for (guint i = 0; i < r->n_segs; i++) {
        guint8 seg[SEGMENT_SIZE];
        guint64 sector;
        guint32 count, flags;
        ferry_virtq_chain_read(r->chain, HEADER_SIZE + i * SEGMENT_SIZE, seg, SEGMENT_SIZE);
        memcpy(&sector, seg, 8);
        memcpy(&count, seg + 8, 4);
        memcpy(&flags, seg + 12, 4);
        sector = GUINT64_FROM_LE(sector);
        count = GUINT32_FROM_LE(count);
        flags = GUINT32_FROM_LE(flags);
        /* §5.2.6.2: unknown flags, and unmap on a discard, are refused. */
        if ((flags & ~F_SEG_UNMAP) || (r->type == T_DISCARD && (flags & F_SEG_UNMAP)))
            return S_UNSUPP;
        if (count > MAX_SEG_SECTORS || !in_range(blk, sector, count)) {
            guest_error(blk, "%s of %u sectors at sector %" G_GUINT64_FORMAT " is outside the "
                        "disk (%" G_GUINT64_FORMAT " sectors) or too long", what, count, sector,
                        blk->sectors);
            return S_IOERR;
        }
        r->seg_sector[i] = sector;
        r->seg_count[i] = count;
    }
    /* Empty ranges need no block request. */
    guint kept = 0;
    for (guint i = 0; i < r->n_segs; i++) {
        if (r->seg_count[i]) {
            r->seg_sector[kept] = r->seg_sector[i];
            r->seg_count[kept] = r->seg_count[i];
            kept++;
        }
    }
    r->n_segs = kept;
    return S_OK;
}

/* A read of len bytes (r->req set up) as two requests, page-aligned. */
static void
submit_halves(VirtioBlk *blk, BlkReq *r, gsize len)
{
    gsize first = (len / 2) & ~(gsize) 4095;

    r->halves_left = 2;
    for (int i = 0; i < 2; i++) {
        gsize off = i ? first : 0, n = i ? len - first : first;
        FerryBlockReq *h = &r->half[i];
        h->op = FERRY_BLOCK_OP_READ;
        h->offset = r->req.offset + off;
        h->niov = iov_slice(r->iov, r->niov, off, n, &r->half_iov[i]);
        h->iov = r->half_iov[i];
        h->done = half_done;
        h->opaque = r;
    }
    ferry_block_submit_async(blk->bs, &r->half[0]);
    ferry_block_submit_async(blk->bs, &r->half[1]);
}

/* Starts one request; the chain is finished (now or by a worker). Called
 * with the device lock held, on the vCPU thread that notified. */
static void
handle_chain(VirtioBlk *blk, FerryVirtqChain *chain)
{
    BlkReq *r = g_new0(BlkReq, 1);
    guint8 hdr[HEADER_SIZE];
    guint64 sector;
    gsize len;

    r->blk = blk;
    r->chain = chain;
    r->req.done = req_done;
    g_mutex_lock(&blk->lock);
    blk->inflight++;
    g_mutex_unlock(&blk->lock);

    if (chain->writable_len < 1 || chain->readable_len < HEADER_SIZE) {
        /* No room for a status, or no header: say so if we can. */
        guest_error(blk, "request with %" G_GSIZE_FORMAT " readable and %" G_GSIZE_FORMAT
                    " writable bytes (a 16-byte header and a status byte at least)",
                    chain->readable_len, chain->writable_len);
        finish(r, S_IOERR);
        return;
    }
    ferry_virtq_chain_read(chain, 0, hdr, HEADER_SIZE);
    memcpy(&r->type, hdr, 4);
    memcpy(&sector, hdr + 8, 8);
    r->type = GUINT32_FROM_LE(r->type);
    sector = GUINT64_FROM_LE(sector);

    switch (r->type) {
    case T_IN:
    case T_OUT:
        if (r->type == T_IN) {
            len = chain->writable_len - 1;
            r->niov = iov_slice(chain->writable, chain->n_writable, 0, len, &r->iov);
            r->req.op = FERRY_BLOCK_OP_READ;
        } else {
            len = chain->readable_len - HEADER_SIZE;
            r->niov = iov_slice(chain->readable, chain->n_readable, HEADER_SIZE, len, &r->iov);
            r->req.op = FERRY_BLOCK_OP_WRITE;
            /* With FLUSH negotiated the guest treats the disk as having a
             * volatile write cache: the write may finish as soon as the
             * block layer holds a copy (write-behind, devices/block/block.c). */
            r->req.may_cache = ferry_virtio_has_feature(&blk->vdev, F_FLUSH);
            if (blk->read_only) {
                finish(r, S_IOERR);
                return;
            }
        }
        if (len % SECTOR || !in_range(blk, sector, len / SECTOR)) {
            guest_error(blk, "%s of %" G_GSIZE_FORMAT " bytes at sector %" G_GUINT64_FORMAT
                        " is not whole sectors on the disk (%" G_GUINT64_FORMAT " sectors)",
                        r->type == T_IN ? "read" : "write", len, sector, blk->sectors);
            finish(r, S_IOERR);
            return;
        }
        if (len == 0) {
            finish(r, S_OK);
            return;
        }
        r->written = r->type == T_IN ? len : 0;
        r->req.offset = sector * SECTOR;
        r->req.iov = r->iov;
        r->req.niov = r->niov;
        if (r->type == T_OUT && ferry_block_write_behind(blk->bs, &r->req)) {
            finish(r, S_OK);
            return;
        }
        if (r->type == T_IN && len >= SPLIT_MIN) {
            submit_halves(blk, r, len);
            return;
        }
        ferry_block_submit_async(blk->bs, &r->req);
        return;

    case T_FLUSH:
        /* Flush before acknowledging, or a crash loses a write the guest
         * thinks is on disk. */
        r->req.op = FERRY_BLOCK_OP_FLUSH;
        ferry_block_submit_async(blk->bs, &r->req);
        return;

    case T_GET_ID: {
        /* §5.2.6: NUL-padded, no terminator at full length. */
        len = MIN(chain->writable_len - 1, (gsize) FERRY_VIRTIO_BLK_ID_BYTES);
        r->written = ferry_virtq_chain_write(chain, 0, blk->serial, len);
        finish(r, S_OK);
        return;
    }

    case T_DISCARD:
    case T_WRITE_ZEROES: {
        guint8 status = parse_segments(blk, r);
        if (status != S_OK || r->n_segs == 0) {
            finish(r, status);
            return;
        }
        submit_segment(r);
        return;
    }

    default:
        /* GET_LIFETIME, SECURE_ERASE and whatever else: not offered. */
        finish(r, S_UNSUPP);
        return;
    }
}

static void
blk_queue_notify(FerryVirtioDevice *vdev, guint index)
{
    VirtioBlk *blk = (VirtioBlk *) vdev;
    FerryVirtq *vq = ferry_virtio_queue(vdev, index);
    FerryVirtqChain *chain;

    while ((chain = ferry_virtq_pop(vq)))
        handle_chain(blk, chain);
}

static void
wait_idle(VirtioBlk *blk)
{
    g_mutex_lock(&blk->lock);
    blk->idle_waiters++;
    while (blk->inflight)
        g_cond_wait(&blk->idle, &blk->lock);
    blk->idle_waiters--;
    g_mutex_unlock(&blk->lock);
}

static void
blk_reset(FerryVirtioDevice *vdev, gboolean machine)
{
    /* A request still running writes into guest RAM when it ends: after a
     * reset that RAM belongs to the next driver (or the next boot), so
     * the reset waits for it. Completions never take the device lock. */
    wait_idle((VirtioBlk *) vdev);
}

static void
blk_destroy(FerryVirtioDevice *vdev)
{
    VirtioBlk *blk = (VirtioBlk *) vdev;

    g_mutex_clear(&blk->lock);
    g_cond_clear(&blk->idle);
    g_free(blk);
}

static const FerryVirtioDeviceOps blk_ops = {
    .name = "virtio-blk",
    .read_config = blk_read_config,
    .queue_notify = blk_queue_notify,
    .reset = blk_reset,
    .destroy = blk_destroy,
};

FerryVirtioDevice *
ferry_virtio_blk_new(FerryBlock *bs, const char *serial, gboolean read_only)
{
    g_return_val_if_fail(bs != NULL, NULL);

    VirtioBlk *blk = g_new0(VirtioBlk, 1);
    guint64 features = FERRY_VIRTIO_FEATURE(FERRY_VIRTIO_F_INDIRECT_DESC) |
                       FERRY_VIRTIO_FEATURE(FERRY_VIRTIO_F_EVENT_IDX) |
                       FERRY_VIRTIO_FEATURE(F_SEG_MAX) |
                       FERRY_VIRTIO_FEATURE(F_BLK_SIZE) |
                       FERRY_VIRTIO_FEATURE(F_FLUSH);

    blk->bs = bs;
    blk->read_only = read_only || ferry_block_is_read_only(bs);
    blk->sectors = ferry_block_get_size(bs) / SECTOR;
    if (serial)
        memcpy(blk->serial, serial, strnlen(serial, sizeof(blk->serial)));
    if (blk->read_only)
        features |= FERRY_VIRTIO_FEATURE(F_RO);
    else
        features |= FERRY_VIRTIO_FEATURE(F_DISCARD) | FERRY_VIRTIO_FEATURE(F_WRITE_ZEROES);
    g_mutex_init(&blk->lock);
    g_cond_init(&blk->idle);
    fill_config(blk);
    ferry_virtio_device_init(&blk->vdev, &blk_ops, FERRY_VIRTIO_ID_BLOCK, features,
                             CONFIG_SIZE, 1, FERRY_VIRTIO_BLK_QUEUE_SIZE);
    return &blk->vdev;
}

void
ferry_virtio_blk_drain(FerryVirtioDevice *vdev)
{
    g_return_if_fail(vdev != NULL && vdev->ops == &blk_ops);
    wait_idle((VirtioBlk *) vdev);
}

guint64
ferry_virtio_blk_get_completed(FerryVirtioDevice *vdev)
{
    g_return_val_if_fail(vdev != NULL && vdev->ops == &blk_ops, 0);
    return __atomic_load_n(&((VirtioBlk *) vdev)->completed, __ATOMIC_RELAXED);
}

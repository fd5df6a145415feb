/* virtqueue.c: split virtqueues, the device side (virtio 1.2 §2.7), with
 * indirect descriptors (§2.7.5.3) and event index notification suppression
 * (§2.7.7, §2.7.10).
 *
 * The rings live in guest RAM and the guest may change them at any moment:
 * each ring area is checked once when the queue is enabled (RAM regions do
 * not move), each descriptor is copied once before it is checked and used,
 * and each buffer is checked with ferry_guest_ptr() before it becomes an
 * iovec. Anything wrong puts the device in DEVICE_NEEDS_RESET. */
#include "virtio-private.h"

#include <string.h>

#define VIRTQ_DESC_F_NEXT      1
#define VIRTQ_DESC_F_WRITE     2
#define VIRTQ_DESC_F_INDIRECT  4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

#define DESC_SIZE 16
/* An indirect table holds at most this many descriptors: the spec bounds
 * nothing but the 32-bit length, and a chain is copied into iovecs. */
#define MAX_INDIRECT FERRY_VIRTQ_MAX_SIZE

struct FerryVirtq {
    FerryVirtioDevice *vdev;
    guint index;
    GMutex lock;                /* everything below */
    guint16 num_max;
    guint16 num;
    gboolean ready;
    guint64 desc_gpa, avail_gpa, used_gpa;
    /* Host views of the three areas, checked when the queue was enabled. */
    guint8 *desc;               /* struct virtq_desc[num] */
    guint8 *avail;              /* flags, idx, ring[num], used_event */
    guint8 *used;               /* flags, idx, {id, len}[num], avail_event */
    guint16 last_avail;         /* next avail ring entry to take */
    guint16 used_idx;           /* ours; the guest's copy is never read back */
    guint16 signalled_used;     /* used_idx at the last ferry_virtq_notify_needed() */
    guint generation;           /* bumped by reset and disable: older chains are stale */
};

typedef struct {
    guint64 addr;
    guint32 len;
    guint16 flags;
    guint16 next;
} Desc;

/* ---- Ring accessors ---------------------------------------------------------
 * Single loads and stores of naturally aligned fields (enable checked the
 * alignment), so the compiler neither tears nor repeats them. */

static inline guint16
load16(const guint8 *p, int order)
{
    return GUINT16_FROM_LE(__atomic_load_n((const guint16 *) p, order));
}

static inline void
store16(guint8 *p, guint16 v, int order)
{
    __atomic_store_n((guint16 *) p, GUINT16_TO_LE(v), order);
}

static inline void
store32(guint8 *p, guint32 v)
{
    __atomic_store_n((guint32 *) p, GUINT32_TO_LE(v), __ATOMIC_RELAXED);
}

/* Acquire: the ring entries and descriptors read after it are at least as
 * new as the index (the driver wrote them before publishing it). */
static inline guint16
avail_idx(FerryVirtq *vq)
{
    return load16(vq->avail + 2, __ATOMIC_ACQUIRE);
}

static inline guint16
avail_flags(FerryVirtq *vq)
{
    return load16(vq->avail, __ATOMIC_RELAXED);
}

static inline guint16
avail_ring(FerryVirtq *vq, guint16 slot)
{
    return load16(vq->avail + 4 + 2 * (gsize) slot, __ATOMIC_RELAXED);
}

static inline guint16
used_event(FerryVirtq *vq)
{
    return load16(vq->avail + 4 + 2 * (gsize) vq->num, __ATOMIC_RELAXED);
}

static inline void
set_avail_event(FerryVirtq *vq, guint16 v)
{
    store16(vq->used + 4 + 8 * (gsize) vq->num, v, __ATOMIC_RELAXED);
}

static inline void
read_desc(const guint8 *p, Desc *d)
{
    guint8 raw[DESC_SIZE];

    memcpy(raw, p, DESC_SIZE);
    /* From here on only the copy counts: the compiler may not go back to
     * guest memory for a field it already checked. */
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    memcpy(&d->addr, raw, 8);
    memcpy(&d->len, raw + 8, 4);
    memcpy(&d->flags, raw + 12, 2);
    memcpy(&d->next, raw + 14, 2);
    d->addr = GUINT64_FROM_LE(d->addr);
    d->len = GUINT32_FROM_LE(d->len);
    d->flags = GUINT16_FROM_LE(d->flags);
    d->next = GUINT16_FROM_LE(d->next);
}

static gboolean
event_idx(FerryVirtq *vq)
{
    return ferry_virtio_has_feature(vq->vdev, FERRY_VIRTIO_F_EVENT_IDX);
}

/* ---- Queue life cycle ------------------------------------------------------ */

FerryVirtq *
ferry_virtq_new(FerryVirtioDevice *vdev, guint index, guint16 num_max)
{
    FerryVirtq *vq = g_new0(FerryVirtq, 1);

    vq->vdev = vdev;
    vq->index = index;
    vq->num_max = num_max;
    vq->num = num_max;
    g_mutex_init(&vq->lock);
    return vq;
}

void
ferry_virtq_free(FerryVirtq *vq)
{
    if (!vq)
        return;
    g_mutex_clear(&vq->lock);
    g_free(vq);
}

static void
disable_locked(FerryVirtq *vq)
{
    __atomic_store_n(&vq->ready, FALSE, __ATOMIC_RELEASE);
    vq->desc = vq->avail = vq->used = NULL;
    vq->generation++;
}

void
ferry_virtq_reset(FerryVirtq *vq)
{
    g_mutex_lock(&vq->lock);
    disable_locked(vq);
    vq->num = vq->num_max;
    vq->desc_gpa = vq->avail_gpa = vq->used_gpa = 0;
    vq->last_avail = vq->used_idx = vq->signalled_used = 0;
    g_mutex_unlock(&vq->lock);
}

guint16
ferry_virtq_get_num_max(FerryVirtq *vq)
{
    return vq->num_max;
}

guint16
ferry_virtq_get_num(FerryVirtq *vq)
{
    return vq->num;
}

gboolean
ferry_virtq_set_num(FerryVirtq *vq, guint32 num)
{
    if (vq->ready)
        return FALSE;
    if (num == 0 || num > vq->num_max || (num & (num - 1))) {
        ferry_virtio_device_error(vq->vdev, "queue %u: size %u is not a power of 2 up to %u",
                                  vq->index, num, vq->num_max);
        return FALSE;
    }
    g_mutex_lock(&vq->lock);
    vq->num = num;
    g_mutex_unlock(&vq->lock);
    return TRUE;
}

void
ferry_virtq_set_addr(FerryVirtq *vq, guint64 desc, guint64 driver, guint64 device)
{
    if (vq->ready)
        return;
    g_mutex_lock(&vq->lock);
    vq->desc_gpa = desc;
    vq->avail_gpa = driver;
    vq->used_gpa = device;
    g_mutex_unlock(&vq->lock);
}

void
ferry_virtq_get_addr(FerryVirtq *vq, guint64 *desc, guint64 *driver, guint64 *device)
{
    *desc = vq->desc_gpa;
    *driver = vq->avail_gpa;
    *device = vq->used_gpa;
}

static guint8 *
ring_area(FerryVirtq *vq, const char *what, guint64 gpa, guint64 len, guint align)
{
    guint8 *p = NULL;

    if (gpa % align == 0 && vq->vdev->mem)
        p = ferry_guest_ptr(vq->vdev->mem, gpa, len);
    /* The accessors rely on natural alignment of the host view too. */
    if (p && (guintptr) p % align == 0)
        return p;
    ferry_virtio_device_error(vq->vdev, "queue %u: %s area at 0x%" G_GINT64_MODIFIER "x (%"
                              G_GINT64_MODIFIER "u bytes) is not %u-aligned guest RAM",
                              vq->index, what, gpa, len, align);
    return NULL;
}

gboolean
ferry_virtq_enable(FerryVirtq *vq)
{
    gboolean ok;

    g_mutex_lock(&vq->lock);
    if (vq->ready) {
        g_mutex_unlock(&vq->lock);
        return TRUE;
    }
    guint64 num = vq->num;
    /* §2.7: sizes and alignments of the descriptor table, available ring
     * and used ring. */
    guint8 *desc = ring_area(vq, "descriptor", vq->desc_gpa, DESC_SIZE * num, 16);
    guint8 *avail = desc ? ring_area(vq, "driver", vq->avail_gpa, 6 + 2 * num, 2) : NULL;
    guint8 *used = avail ? ring_area(vq, "device", vq->used_gpa, 6 + 8 * num, 4) : NULL;
    ok = used != NULL;
    if (ok) {
        vq->desc = desc;
        vq->avail = avail;
        vq->used = used;
        vq->last_avail = vq->used_idx = vq->signalled_used = 0;
        vq->generation++;
        __atomic_store_n(&vq->ready, TRUE, __ATOMIC_RELEASE);
    }
    g_mutex_unlock(&vq->lock);
    return ok;
}

void
ferry_virtq_disable(FerryVirtq *vq)
{
    g_mutex_lock(&vq->lock);
    disable_locked(vq);
    g_mutex_unlock(&vq->lock);
}

gboolean
ferry_virtq_is_ready(FerryVirtq *vq)
{
    return __atomic_load_n(&vq->ready, __ATOMIC_ACQUIRE);
}

/* ---- Chains ---------------------------------------------------------------- */

void
ferry_virtq_chain_free(FerryVirtqChain *chain)
{
    if (!chain)
        return;
    if (chain->iov != chain->inline_iov)
        g_free(chain->iov);
    g_free(chain);
}

static void
chain_add(FerryVirtqChain *c, guint8 *p, guint32 len, gboolean writable)
{
    guint n = c->n_readable + c->n_writable;

    if (n == c->capacity) {
        guint cap = c->capacity * 2;
        if (c->iov == c->inline_iov) {
            c->iov = g_new(struct iovec, cap);
            memcpy(c->iov, c->inline_iov, sizeof(c->inline_iov));
        } else {
            c->iov = g_renew(struct iovec, c->iov, cap);
        }
        c->capacity = cap;
    }
    c->iov[n] = (struct iovec) { p, len };
    if (writable) {
        c->n_writable++;
        c->writable_len += len;
    } else {
        c->n_readable++;
        c->readable_len += len;
    }
}

/* Follows the chain starting at `head`, or returns NULL after reporting why
 * (the device then needs a reset). Every table walk is bounded by the
 * table's size, so a loop ends as "too long". */
static FerryVirtqChain *
walk_chain(FerryVirtq *vq, guint16 head)
{
    FerryVirtioDevice *vdev = vq->vdev;
    FerryVirtqChain *c = g_new0(FerryVirtqChain, 1);
    const guint8 *table = vq->desc;
    guint32 table_len = vq->num;
    guint32 visited = 0;
    gboolean indirect = FALSE;
    guint32 i = head;
    Desc d;

    c->vq = vq;
    c->head = head;
    c->generation = vq->generation;
    c->iov = c->inline_iov;
    c->capacity = G_N_ELEMENTS(c->inline_iov);

    for (;;) {
        if (i >= table_len) {
            ferry_virtio_device_error(vdev, "queue %u: descriptor %u is out of a%s table of %u",
                                      vq->index, i, indirect ? "n indirect" : "", table_len);
            goto bad;
        }
        if (++visited > table_len) {
            ferry_virtio_device_error(vdev, "queue %u: chain from descriptor %u is longer than its "
                                      "%stable (a loop)", vq->index, head, indirect ? "indirect " : "");
            goto bad;
        }
        read_desc(table + (gsize) i * DESC_SIZE, &d);

        if (d.flags & VIRTQ_DESC_F_INDIRECT) {
            /* §2.7.5.3.1: only with the feature, never nested, never
             * chained on, and a whole number of descriptors. */
            if (indirect || !ferry_virtio_has_feature(vdev, FERRY_VIRTIO_F_INDIRECT_DESC) ||
                (d.flags & VIRTQ_DESC_F_NEXT) || d.len == 0 || d.len % DESC_SIZE ||
                d.len / DESC_SIZE > MAX_INDIRECT) {
                ferry_virtio_device_error(vdev, "queue %u: bad indirect descriptor %u (len %u, "
                                          "flags 0x%x%s)", vq->index, i, d.len, d.flags,
                                          indirect ? ", nested" : "");
                goto bad;
            }
            table = ferry_guest_ptr(vdev->mem, d.addr, d.len);
            if (!table) {
                ferry_virtio_device_error(vdev, "queue %u: indirect table at 0x%" G_GINT64_MODIFIER
                                          "x (%u bytes) is outside guest RAM", vq->index,
                                          d.addr, d.len);
                goto bad;
            }
            table_len = d.len / DESC_SIZE;
            indirect = TRUE;
            visited = 0;
            i = 0;
            continue;
        }

        if (d.len) {
            gboolean writable = (d.flags & VIRTQ_DESC_F_WRITE) != 0;
            guint8 *p = ferry_guest_ptr(vdev->mem, d.addr, d.len);
            if (!p) {
                ferry_virtio_device_error(vdev, "queue %u: buffer at 0x%" G_GINT64_MODIFIER
                                          "x (%u bytes) is outside guest RAM", vq->index,
                                          d.addr, d.len);
                goto bad;
            }
            /* §2.7.4.2: device-writable buffers come after readable ones. */
            if (!writable && c->n_writable) {
                ferry_virtio_device_error(vdev, "queue %u: readable descriptor %u after a "
                                          "writable one", vq->index, i);
                goto bad;
            }
            chain_add(c, p, d.len, writable);
        }
        if (!(d.flags & VIRTQ_DESC_F_NEXT))
            break;
        i = d.next;
    }

    c->readable = c->iov;
    c->writable = c->iov + c->n_readable;
    return c;

bad:
    ferry_virtq_chain_free(c);
    return NULL;
}

static FerryVirtqChain *
pop_locked(FerryVirtq *vq)
{
    FerryVirtioDevice *vdev = vq->vdev;

    if (!vq->ready || !ferry_virtio_is_running(vdev))
        return NULL;

    guint16 idx = avail_idx(vq);
    if (idx == vq->last_avail) {
        if (!event_idx(vq))
            return NULL;
        /* Ask for a notification at the next buffer, then look again: the
         * driver may have added one before it could see avail_event, and
         * then it did not notify (§2.7.10). The fence orders our store
         * before the second load. */
        set_avail_event(vq, vq->last_avail);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        idx = avail_idx(vq);
        if (idx == vq->last_avail)
            return NULL;
    }
    if ((guint16) (idx - vq->last_avail) > vq->num) {
        ferry_virtio_device_error(vdev, "queue %u: available index jumped from %u to %u "
                                  "(queue of %u)", vq->index, vq->last_avail, idx, vq->num);
        return NULL;
    }

    guint16 head = avail_ring(vq, vq->last_avail & (vq->num - 1));
    FerryVirtqChain *c = walk_chain(vq, head);
    if (!c)
        return NULL;
    vq->last_avail++;
    if (event_idx(vq))
        set_avail_event(vq, vq->last_avail);
    return c;
}

FerryVirtqChain *
ferry_virtq_pop(FerryVirtq *vq)
{
    FerryVirtqChain *c;

    g_return_val_if_fail(vq != NULL, NULL);
    g_mutex_lock(&vq->lock);
    c = pop_locked(vq);
    g_mutex_unlock(&vq->lock);
    return c;
}

gboolean
ferry_virtq_push(FerryVirtqChain *chain, guint32 written)
{
    g_return_val_if_fail(chain != NULL, FALSE);

    FerryVirtq *vq = chain->vq;
    gboolean ok;

    g_mutex_lock(&vq->lock);
    ok = vq->ready && chain->generation == vq->generation &&
         !__atomic_load_n(&vq->vdev->needs_reset, __ATOMIC_ACQUIRE);
    if (ok) {
        guint8 *elem = vq->used + 4 + 8 * (gsize) (vq->used_idx & (vq->num - 1));
        store32(elem, chain->head);
        store32(elem + 4, MIN(written, chain->writable_len));
        vq->used_idx++;
        /* Release: the element (and the data written into the buffers)
         * is visible before the index that hands it over. */
        store16(vq->used + 2, vq->used_idx, __ATOMIC_RELEASE);
    }
    g_mutex_unlock(&vq->lock);
    ferry_virtq_chain_free(chain);
    return ok;
}

gboolean
ferry_virtq_notify_needed(FerryVirtq *vq)
{
    gboolean need = FALSE;

    g_mutex_lock(&vq->lock);
    if (vq->ready) {
        guint16 new_idx = vq->used_idx, old_idx = vq->signalled_used;
        vq->signalled_used = new_idx;
        /* Our used idx store must be visible before we read what the
         * driver asked for, or we could both decide the other will act. */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (new_idx == old_idx)
            need = FALSE;
        else if (event_idx(vq))
            /* §2.7.7.2: notify when used idx moved past used_event since
             * the last notification decision. */
            need = (guint16) (new_idx - used_event(vq) - 1) < (guint16) (new_idx - old_idx);
        else
            need = !(avail_flags(vq) & VIRTQ_AVAIL_F_NO_INTERRUPT);
    }
    g_mutex_unlock(&vq->lock);
    return need;
}

void
ferry_virtq_notify(FerryVirtq *vq)
{
    FerryVirtioDevice *vdev = vq->vdev;

    if (ferry_virtq_notify_needed(vq) && vdev->transport && vdev->transport->notify_queue)
        vdev->transport->notify_queue(vdev->transport_opaque, vq->index);
}

/* ---- Copying --------------------------------------------------------------- */

static gsize
iov_copy(const struct iovec *iov, guint n, gsize offset, guint8 *buf, gsize len, gboolean to_iov)
{
    gsize done = 0;

    for (guint i = 0; i < n && done < len; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        gsize chunk = MIN(iov[i].iov_len - offset, len - done);
        if (to_iov)
            memcpy((guint8 *) iov[i].iov_base + offset, buf + done, chunk);
        else
            memcpy(buf + done, (guint8 *) iov[i].iov_base + offset, chunk);
        done += chunk;
        offset = 0;
    }
    return done;
}

gsize
ferry_virtq_chain_read(const FerryVirtqChain *chain, gsize offset, void *buf, gsize len)
{
    return iov_copy(chain->readable, chain->n_readable, offset, buf, len, FALSE);
}

gsize
ferry_virtq_chain_write(const FerryVirtqChain *chain, gsize offset, const void *buf, gsize len)
{
    return iov_copy(chain->writable, chain->n_writable, offset, (guint8 *) buf, len, TRUE);
}

/* mmio.c: virtio over MMIO, version 2 ("modern") register layout (virtio 1.2
 * §4.2.2). Registers are 32-bit, little-endian and only accessed as aligned
 * 32-bit words; the device configuration space from 0x100 takes any size.
 * The interrupt line is level: high while InterruptStatus is not 0. */
#include "mmio.h"

#include <string.h>

enum {
    MAGIC_VALUE         = 0x000,
    VERSION             = 0x004,
    DEVICE_ID           = 0x008,
    VENDOR_ID           = 0x00c,
    DEVICE_FEATURES     = 0x010,
    DEVICE_FEATURES_SEL = 0x014,
    DRIVER_FEATURES     = 0x020,
    DRIVER_FEATURES_SEL = 0x024,
    QUEUE_SEL           = 0x030,
    QUEUE_NUM_MAX       = 0x034,
    QUEUE_NUM           = 0x038,
    QUEUE_READY         = 0x044,
    QUEUE_NOTIFY        = 0x050,
    INTERRUPT_STATUS    = 0x060,
    INTERRUPT_ACK       = 0x064,
    STATUS              = 0x070,
    QUEUE_DESC_LOW      = 0x080,
    QUEUE_DESC_HIGH     = 0x084,
    QUEUE_DRIVER_LOW    = 0x090,
    QUEUE_DRIVER_HIGH   = 0x094,
    QUEUE_DEVICE_LOW    = 0x0a0,
    QUEUE_DEVICE_HIGH   = 0x0a4,
    SHM_SEL             = 0x0ac,
    SHM_LEN_LOW         = 0x0b0,
    SHM_LEN_HIGH        = 0x0b4,
    SHM_BASE_LOW        = 0x0b8,
    SHM_BASE_HIGH       = 0x0bc,
    CONFIG_GENERATION   = 0x0fc,
    CONFIG              = 0x100,
};

#define INT_VRING  1u      /* used buffer notification */
#define INT_CONFIG 2u      /* configuration change notification */

#define MAX_LOGGED_ACCESSES 8

typedef struct {
    FerryDevice dev;
    FerryVirtioDevice *vdev;        /* NULL: empty slot */
    FerryIrq *irq;

    /* InterruptStatus is raised from any thread (a completion, a key
     * press) and acknowledged by a vCPU: one lock keeps the line and the
     * register in step, so the line is never left high with nothing
     * pending or low with something pending. */
    GMutex irq_lock;
    guint32 isr;
    gboolean irq_level;

    guint32 device_features_sel;
    guint32 driver_features_sel;
    guint32 queue_sel;
    gint bad_accesses;              /* atomic: for rate-limited logging */
} VirtioMmio;

static void
update_irq_locked(VirtioMmio *m)
{
    gboolean level = m->isr != 0;

    if (level != m->irq_level) {
        m->irq_level = level;
        ferry_irq_set(m->irq, level);
    }
}

static void
raise_interrupt(VirtioMmio *m, guint32 bits)
{
    g_mutex_lock(&m->irq_lock);
    m->isr |= bits;
    update_irq_locked(m);
    g_mutex_unlock(&m->irq_lock);
}

static void
on_notify_queue(void *opaque, guint index)
{
    (void) index;
    raise_interrupt(opaque, INT_VRING);
}

static void
on_notify_config(void *opaque)
{
    raise_interrupt(opaque, INT_CONFIG);
}

static const FerryVirtioTransportOps transport_ops = {
    .notify_queue = on_notify_queue,
    .notify_config = on_notify_config,
};

static void
note_bad_access(VirtioMmio *m, const char *what, uint64_t offset, unsigned size)
{
    if (__atomic_fetch_add(&m->bad_accesses, 1, __ATOMIC_RELAXED) < MAX_LOGGED_ACCESSES)
        g_debug("%s: ignored %u-byte %s at 0x%03" G_GINT64_MODIFIER "x (registers are aligned "
                "32-bit words)", m->dev.id, size, what, (guint64) offset);
}

/* Registers of the transport itself, back to their power-on values. */
static void
reset_registers(VirtioMmio *m)
{
    m->device_features_sel = m->driver_features_sel = m->queue_sel = 0;
    g_mutex_lock(&m->irq_lock);
    m->isr = 0;
    update_irq_locked(m);
    g_mutex_unlock(&m->irq_lock);
}

static FerryVirtq *
selected_queue(VirtioMmio *m)
{
    return ferry_virtio_queue(m->vdev, m->queue_sel);
}

static uint64_t
read_config(VirtioMmio *m, uint64_t offset, unsigned size)
{
    guint8 buf[8];
    guint64 v = 0;

    if (!m->vdev || size == 0 || size > 8 || offset - CONFIG > G_MAXUINT32)
        return 0;
    ferry_virtio_read_config(m->vdev, offset - CONFIG, buf, size);
    for (unsigned i = 0; i < size; i++)
        v |= (guint64) buf[i] << (8 * i);
    return v;
}

static void
write_config(VirtioMmio *m, uint64_t offset, uint64_t value, unsigned size)
{
    guint8 buf[8];

    if (!m->vdev || size == 0 || size > 8 || offset - CONFIG > G_MAXUINT32)
        return;
    for (unsigned i = 0; i < size; i++)
        buf[i] = value >> (8 * i);
    ferry_virtio_write_config(m->vdev, offset - CONFIG, buf, size);
}

static uint64_t
mmio_read(FerryDevice *dev, uint64_t offset, unsigned size)
{
    VirtioMmio *m = (VirtioMmio *) dev;
    FerryVirtq *vq;
    guint64 desc, driver, device;

    if (offset >= CONFIG)
        return read_config(m, offset, size);
    if (size != 4 || offset % 4) {
        note_bad_access(m, "read", offset, size);
        return 0;
    }

    switch (offset) {
    case MAGIC_VALUE: return FERRY_VIRTIO_MMIO_MAGIC;
    case VERSION:     return 2;
    case VENDOR_ID:   return FERRY_VIRTIO_MMIO_VENDOR;
    case DEVICE_ID:   return m->vdev ? m->vdev->device_id : 0;
    }
    if (!m->vdev)
        return 0;

    switch (offset) {
    case DEVICE_FEATURES:
        return ferry_virtio_get_host_features(m->vdev, m->device_features_sel);
    case DEVICE_FEATURES_SEL:
        return m->device_features_sel;
    case DRIVER_FEATURES:
        return ferry_virtio_get_driver_features(m->vdev, m->driver_features_sel);
    case DRIVER_FEATURES_SEL:
        return m->driver_features_sel;
    case QUEUE_SEL:
        return m->queue_sel;
    case QUEUE_NUM_MAX:
        /* §4.2.2: 0 means the queue does not exist. */
        vq = selected_queue(m);
        return vq ? ferry_virtq_get_num_max(vq) : 0;
    case QUEUE_NUM:
        vq = selected_queue(m);
        return vq ? ferry_virtq_get_num(vq) : 0;
    case QUEUE_READY:
        vq = selected_queue(m);
        return vq ? ferry_virtq_is_ready(vq) : 0;
    case INTERRUPT_STATUS: {
        g_mutex_lock(&m->irq_lock);
        guint32 isr = m->isr;
        g_mutex_unlock(&m->irq_lock);
        return isr;
    }
    case STATUS:
        return ferry_virtio_get_status(m->vdev);
    case QUEUE_DESC_LOW: case QUEUE_DESC_HIGH:
    case QUEUE_DRIVER_LOW: case QUEUE_DRIVER_HIGH:
    case QUEUE_DEVICE_LOW: case QUEUE_DEVICE_HIGH:
        vq = selected_queue(m);
        if (!vq)
            return 0;
        ferry_virtq_get_addr(vq, &desc, &driver, &device);
        guint64 a = offset < QUEUE_DRIVER_LOW ? desc : offset < QUEUE_DEVICE_LOW ? driver : device;
        return (guint32) (offset % 8 ? a >> 32 : a);
    case SHM_LEN_LOW: case SHM_LEN_HIGH:
    case SHM_BASE_LOW: case SHM_BASE_HIGH:
        /* §4.2.2: no shared memory region has length and base -1. */
        return 0xFFFFFFFF;
    case CONFIG_GENERATION:
        return ferry_virtio_config_generation(m->vdev);
    }
    return 0;
}

static void
write_queue_addr(FerryVirtq *vq, uint64_t offset, guint32 value)
{
    guint64 a[3];

    ferry_virtq_get_addr(vq, &a[0], &a[1], &a[2]);
    guint64 *p = &a[(offset - QUEUE_DESC_LOW) / 0x10];
    if (offset % 8)
        *p = (*p & 0xFFFFFFFF) | ((guint64) value << 32);
    else
        *p = (*p & ~G_GUINT64_CONSTANT(0xFFFFFFFF)) | value;
    ferry_virtq_set_addr(vq, a[0], a[1], a[2]);
}

static void
mmio_write(FerryDevice *dev, uint64_t offset, uint64_t value, unsigned size)
{
    VirtioMmio *m = (VirtioMmio *) dev;
    guint32 v = value;
    FerryVirtq *vq;

    if (!m->vdev)
        return;
    if (offset >= CONFIG) {
        write_config(m, offset, value, size);
        return;
    }
    if (size != 4 || offset % 4) {
        note_bad_access(m, "write", offset, size);
        return;
    }

    switch (offset) {
    case DEVICE_FEATURES_SEL:
        m->device_features_sel = v;
        break;
    case DRIVER_FEATURES:
        ferry_virtio_set_driver_features(m->vdev, m->driver_features_sel, v);
        break;
    case DRIVER_FEATURES_SEL:
        m->driver_features_sel = v;
        break;
    case QUEUE_SEL:
        /* Out of range is legal to write: QueueNumMax then reads 0 and the
         * queue registers ignore writes. */
        m->queue_sel = v;
        break;
    case QUEUE_NUM:
        if ((vq = selected_queue(m)))
            ferry_virtq_set_num(vq, v);
        break;
    case QUEUE_READY:
        if (!(vq = selected_queue(m)))
            break;
        if (v & 1)
            ferry_virtq_enable(vq);
        else
            ferry_virtq_disable(vq);
        break;
    case QUEUE_NOTIFY:
        /* Without VIRTIO_F_NOTIFICATION_DATA the value is the queue index. */
        ferry_virtio_queue_notify(m->vdev, v & 0xFFFF);
        break;
    case INTERRUPT_ACK:
        g_mutex_lock(&m->irq_lock);
        m->isr &= ~v;
        update_irq_locked(m);
        g_mutex_unlock(&m->irq_lock);
        break;
    case STATUS:
        if ((v & 0xFF) == 0) {
            ferry_virtio_reset(m->vdev, FALSE);
            reset_registers(m);
        } else {
            ferry_virtio_set_status(m->vdev, v);
        }
        break;
    case QUEUE_DESC_LOW: case QUEUE_DESC_HIGH:
    case QUEUE_DRIVER_LOW: case QUEUE_DRIVER_HIGH:
    case QUEUE_DEVICE_LOW: case QUEUE_DEVICE_HIGH:
        if ((vq = selected_queue(m)))
            write_queue_addr(vq, offset, v);
        break;
    default:
        /* Read-only registers and holes. */
        break;
    }
}

static void
mmio_reset(FerryDevice *dev)
{
    VirtioMmio *m = (VirtioMmio *) dev;

    if (m->vdev)
        ferry_virtio_reset(m->vdev, TRUE);
    reset_registers(m);
}

static void
mmio_destroy(FerryDevice *dev)
{
    VirtioMmio *m = (VirtioMmio *) dev;

    ferry_virtio_device_free(m->vdev);
    g_mutex_clear(&m->irq_lock);
    g_free(m);
}

static const FerryDeviceOps mmio_ops = {
    .name = "virtio-mmio",
    .read = mmio_read,
    .write = mmio_write,
    .reset = mmio_reset,
    .destroy = mmio_destroy,
};

FerryDevice *
ferry_virtio_mmio_new(const char *id, FerryVirtioDevice *backend, FerryIrq *irq,
                      const FerryGuestMemory *mem)
{
    VirtioMmio *m = g_new0(VirtioMmio, 1);

    ferry_device_init(&m->dev, &mmio_ops, id);
    g_mutex_init(&m->irq_lock);
    m->irq = irq;
    m->vdev = backend;
    if (backend)
        ferry_virtio_attach(backend, m->dev.id, mem, &m->dev.lock, &transport_ops, m);
    return &m->dev;
}

FerryVirtioDevice *
ferry_virtio_mmio_get_backend(FerryDevice *dev)
{
    g_return_val_if_fail(dev != NULL && dev->ops == &mmio_ops, NULL);
    return ((VirtioMmio *) dev)->vdev;
}

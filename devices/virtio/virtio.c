/* virtio.c: the part of a virtio device every transport shares (virtio 1.2
 * §2.1 device status, §2.2 feature bits, §2.5 configuration space, §3.1
 * initialization). The split virtqueues are in virtqueue.c. */
#include "virtio-private.h"

#include <stdarg.h>
#include <string.h>

/* A guest in a loop of bad requests must not fill the log. */
#define MAX_LOGGED_ERRORS 8

void
ferry_virtio_device_init(FerryVirtioDevice *vdev, const FerryVirtioDeviceOps *ops,
                         guint32 device_id, guint64 host_features,
                         guint32 config_size, guint n_queues, guint16 queue_max)
{
    g_return_if_fail(vdev != NULL && ops != NULL);
    g_return_if_fail(queue_max > 0 && (queue_max & (queue_max - 1)) == 0);

    vdev->ops = ops;
    vdev->device_id = device_id;
    vdev->host_features = host_features | FERRY_VIRTIO_FEATURE(FERRY_VIRTIO_F_VERSION_1);
    vdev->config_size = config_size;
    vdev->n_queues = n_queues;
    vdev->id = ops->name;
    g_mutex_init(&vdev->own_lock);
    vdev->lock = &vdev->own_lock;
    vdev->queues = g_new0(FerryVirtq *, n_queues ? n_queues : 1);
    for (guint i = 0; i < n_queues; i++)
        vdev->queues[i] = ferry_virtq_new(vdev, i, queue_max);
}

void
ferry_virtio_device_free(FerryVirtioDevice *vdev)
{
    if (!vdev)
        return;
    for (guint i = 0; i < vdev->n_queues; i++)
        ferry_virtq_free(vdev->queues[i]);
    g_free(vdev->queues);
    vdev->queues = NULL;
    g_mutex_clear(&vdev->own_lock);
    if (vdev->ops->destroy)
        vdev->ops->destroy(vdev);
    else
        g_free(vdev);
}

void
ferry_virtio_lock(FerryVirtioDevice *vdev)
{
    g_mutex_lock(vdev->lock);
}

void
ferry_virtio_unlock(FerryVirtioDevice *vdev)
{
    g_mutex_unlock(vdev->lock);
}

void
ferry_virtio_attach(FerryVirtioDevice *vdev, const char *id, const FerryGuestMemory *mem,
                    GMutex *lock, const FerryVirtioTransportOps *ops, void *opaque)
{
    vdev->id = id ? id : vdev->ops->name;
    vdev->mem = mem;
    vdev->lock = lock ? lock : &vdev->own_lock;
    vdev->transport = ops;
    vdev->transport_opaque = opaque;
}

FerryVirtq *
ferry_virtio_queue(FerryVirtioDevice *vdev, guint index)
{
    return index < vdev->n_queues ? vdev->queues[index] : NULL;
}

gboolean
ferry_virtio_has_feature(FerryVirtioDevice *vdev, guint bit)
{
    /* Only what was offered counts, whatever the driver wrote. */
    guint64 negotiated = __atomic_load_n(&vdev->driver_features, __ATOMIC_RELAXED) & vdev->host_features;
    return bit < 64 && (negotiated & FERRY_VIRTIO_FEATURE(bit)) != 0;
}

gboolean
ferry_virtio_is_running(FerryVirtioDevice *vdev)
{
    return (ferry_virtio_status_load(vdev) & FERRY_VIRTIO_STATUS_DRIVER_OK) &&
           !__atomic_load_n(&vdev->needs_reset, __ATOMIC_ACQUIRE);
}

void
ferry_virtio_device_error(FerryVirtioDevice *vdev, const char *format, ...)
{
    gint n = __atomic_fetch_add(&vdev->log_count, 1, __ATOMIC_RELAXED);

    if (n < MAX_LOGGED_ERRORS) {
        va_list ap;
        va_start(ap, format);
        g_autofree char *msg = g_strdup_vprintf(format, ap);
        va_end(ap);
        if (n == 0)
            g_message("%s (%s): %s; the device needs a reset (further guest errors are debug messages)",
                      vdev->id, vdev->ops->name, msg);
        else
            g_debug("%s (%s): %s; the device needs a reset", vdev->id, vdev->ops->name, msg);
    }

    /* §2.1.2: after DRIVER_OK the driver learns of it by a configuration
     * change notification; before, it reads the status. */
    if (!__atomic_exchange_n(&vdev->needs_reset, 1, __ATOMIC_ACQ_REL) &&
        (ferry_virtio_status_load(vdev) & FERRY_VIRTIO_STATUS_DRIVER_OK) &&
        vdev->transport && vdev->transport->notify_config)
        vdev->transport->notify_config(vdev->transport_opaque);
}

void
ferry_virtio_config_changed(FerryVirtioDevice *vdev)
{
    __atomic_fetch_add(&vdev->config_generation, 1, __ATOMIC_RELEASE);
    if ((ferry_virtio_status_load(vdev) & FERRY_VIRTIO_STATUS_DRIVER_OK) &&
        vdev->transport && vdev->transport->notify_config)
        vdev->transport->notify_config(vdev->transport_opaque);
}

guint32
ferry_virtio_get_host_features(FerryVirtioDevice *vdev, guint sel)
{
    return sel < 2 ? (guint32) (vdev->host_features >> (32 * sel)) : 0;
}

guint32
ferry_virtio_get_driver_features(FerryVirtioDevice *vdev, guint sel)
{
    return sel < 2 ? (guint32) (vdev->driver_features >> (32 * sel)) : 0;
}

void
ferry_virtio_set_driver_features(FerryVirtioDevice *vdev, guint sel, guint32 value)
{
    /* Once FEATURES_OK is set the negotiated set is what the queues were
     * built for; changing it under them would mean nothing good. */
    if (sel >= 2 || (vdev->status & FERRY_VIRTIO_STATUS_FEATURES_OK))
        return;
    guint64 mask = G_GUINT64_CONSTANT(0xFFFFFFFF) << (32 * sel);
    guint64 v = (vdev->driver_features & ~mask) | ((guint64) value << (32 * sel));
    __atomic_store_n(&vdev->driver_features, v, __ATOMIC_RELAXED);
}

guint8
ferry_virtio_get_status(FerryVirtioDevice *vdev)
{
    guint8 s = ferry_virtio_status_load(vdev);
    if (__atomic_load_n(&vdev->needs_reset, __ATOMIC_ACQUIRE))
        s |= FERRY_VIRTIO_STATUS_DEVICE_NEEDS_RESET;
    return s;
}

void
ferry_virtio_reset(FerryVirtioDevice *vdev, gboolean machine)
{
    /* Queues first: each waits for a pop or push running on another thread,
     * so nothing can set needs_reset again after it is cleared below. */
    for (guint i = 0; i < vdev->n_queues; i++)
        ferry_virtq_reset(vdev->queues[i]);
    __atomic_store_n(&vdev->driver_features, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&vdev->status, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&vdev->needs_reset, 0, __ATOMIC_RELEASE);
    if (vdev->ops->reset)
        vdev->ops->reset(vdev, machine);
}

void
ferry_virtio_set_status(FerryVirtioDevice *vdev, guint8 status)
{
    guint8 old = vdev->status;

    if (status == 0) {
        ferry_virtio_reset(vdev, FALSE);
        return;
    }
    /* DEVICE_NEEDS_RESET is the device's to set. A driver may not clear
     * bits (§2.1.2): keep them, so the state only moves forward. */
    status = (status & ~FERRY_VIRTIO_STATUS_DEVICE_NEEDS_RESET) | old;

    if ((status & FERRY_VIRTIO_STATUS_FEATURES_OK) && !(old & FERRY_VIRTIO_STATUS_FEATURES_OK)) {
        guint64 f = vdev->driver_features;
        if ((f & ~vdev->host_features) || !(f & FERRY_VIRTIO_FEATURE(FERRY_VIRTIO_F_VERSION_1))) {
            /* §3.1.1: the driver re-reads the status and gives up. */
            g_debug("%s (%s): refusing features 0x%" G_GINT64_MODIFIER "x (offered 0x%"
                    G_GINT64_MODIFIER "x, VERSION_1 required)", vdev->id, vdev->ops->name,
                    (guint64) f, (guint64) vdev->host_features);
            status &= ~FERRY_VIRTIO_STATUS_FEATURES_OK;
        }
    }
    __atomic_store_n(&vdev->status, status, __ATOMIC_RELEASE);

    if ((status & FERRY_VIRTIO_STATUS_DRIVER_OK) && !(old & FERRY_VIRTIO_STATUS_DRIVER_OK) &&
        vdev->ops->driver_ok && ferry_virtio_is_running(vdev))
        vdev->ops->driver_ok(vdev);
}

guint32
ferry_virtio_config_generation(FerryVirtioDevice *vdev)
{
    return __atomic_load_n(&vdev->config_generation, __ATOMIC_ACQUIRE);
}

void
ferry_virtio_read_config(FerryVirtioDevice *vdev, guint32 offset, void *buf, guint32 len)
{
    memset(buf, 0, len);
    if (offset >= vdev->config_size || !vdev->ops->read_config)
        return;
    vdev->ops->read_config(vdev, offset, buf, MIN(len, vdev->config_size - offset));
}

void
ferry_virtio_write_config(FerryVirtioDevice *vdev, guint32 offset, const void *buf, guint32 len)
{
    if (offset >= vdev->config_size || !vdev->ops->write_config)
        return;
    vdev->ops->write_config(vdev, offset, buf, MIN(len, vdev->config_size - offset));
}

void
ferry_virtio_queue_notify(FerryVirtioDevice *vdev, guint index)
{
    FerryVirtq *vq = ferry_virtio_queue(vdev, index);

    /* §3.1.1: no buffers are used before DRIVER_OK. */
    if (!vq || !ferry_virtq_is_ready(vq) || !ferry_virtio_is_running(vdev) || !vdev->ops->queue_notify)
        return;
    vdev->ops->queue_notify(vdev, index);
}

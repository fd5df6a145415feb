/* virtio.h: the transport-independent virtio core (virtio 1.2 §2): device
 * status and feature negotiation, device configuration space, and split
 * virtqueues (§2.7) with indirect descriptors and event index.
 *
 * A device model (virtio-input, virtio-blk...) embeds FerryVirtioDevice first,
 * keeps a static const FerryVirtioDeviceOps and is handed to a transport
 * (mmio.h), which owns it from then on. The guest is hostile: a bad ring,
 * descriptor or buffer puts the device in DEVICE_NEEDS_RESET, never a host
 * fault, never an abort. */
#pragma once

#include "device.h"
#include "guest-memory.h"

#include <sys/uio.h>

G_BEGIN_DECLS

/* Device status bits (§2.1). */
#define FERRY_VIRTIO_STATUS_ACKNOWLEDGE        1
#define FERRY_VIRTIO_STATUS_DRIVER             2
#define FERRY_VIRTIO_STATUS_DRIVER_OK          4
#define FERRY_VIRTIO_STATUS_FEATURES_OK        8
#define FERRY_VIRTIO_STATUS_DEVICE_NEEDS_RESET 64
#define FERRY_VIRTIO_STATUS_FAILED             128

/* Feature bit numbers (§6). */
#define FERRY_VIRTIO_F_INDIRECT_DESC 28     /* VIRTIO_RING_F_INDIRECT_DESC */
#define FERRY_VIRTIO_F_EVENT_IDX     29     /* VIRTIO_RING_F_EVENT_IDX */
#define FERRY_VIRTIO_F_VERSION_1     32
#define FERRY_VIRTIO_FEATURE(bit)    (G_GUINT64_CONSTANT(1) << (bit))

/* Device ids (§5). */
#define FERRY_VIRTIO_ID_BLOCK 2
#define FERRY_VIRTIO_ID_INPUT 18

/* Largest queue a device may offer (§2.7: split queue sizes are powers of 2
 * up to 32768). */
#define FERRY_VIRTQ_MAX_SIZE 32768

typedef struct FerryVirtioDevice FerryVirtioDevice;
typedef struct FerryVirtq FerryVirtq;

typedef struct {
    const char *name;                               /* "virtio-input" */
    /* Device configuration space, offset + len within config_size (the core
     * checks). Little-endian bytes. Called with the device lock held. */
    void (*read_config)(FerryVirtioDevice *vdev, guint32 offset, void *buf, guint32 len);
    void (*write_config)(FerryVirtioDevice *vdev, guint32 offset, const void *buf, guint32 len);
    /* The driver notified queue `index` (always < n_queues, the queue is
     * ready and DRIVER_OK is set). Device lock held. May be NULL. */
    void (*queue_notify)(FerryVirtioDevice *vdev, guint index);
    /* DRIVER_OK was just set: a device with host events waiting may deliver
     * them now. Device lock held. May be NULL. */
    void (*driver_ok)(FerryVirtioDevice *vdev);
    /* Device-specific reset: the queues, status and features are already
     * reset. `machine` is TRUE for a machine reset, FALSE when the driver
     * wrote 0 to the status (host state such as a pending key press may
     * survive that). Device lock held. May be NULL. */
    void (*reset)(FerryVirtioDevice *vdev, gboolean machine);
    /* Frees the model (the core has already freed its part). NULL: g_free. */
    void (*destroy)(FerryVirtioDevice *vdev);
} FerryVirtioDeviceOps;

/* What a transport provides to the core. Callable from any thread. */
typedef struct {
    void (*notify_queue)(void *opaque, guint index);   /* used buffer notification */
    void (*notify_config)(void *opaque);               /* configuration change */
} FerryVirtioTransportOps;

struct FerryVirtioDevice {
    const FerryVirtioDeviceOps *ops;
    guint32 device_id;
    guint64 host_features;      /* offered; VERSION_1 is always added */
    guint64 driver_features;    /* accepted by the driver (valid with FEATURES_OK) */
    guint32 config_size;
    guint n_queues;

    /* Set by the transport when it takes the device. `lock` is the lock
     * MMIO/PIO accesses run under (FerryDevice.lock of the transport);
     * until then it is a lock of the device's own. */
    const char *id;             /* for log lines: "virtio-mmio@10001000" */
    const FerryGuestMemory *mem;
    GMutex *lock;
    const FerryVirtioTransportOps *transport;
    void *transport_opaque;

    /* Core state: use the functions below. */
    FerryVirtq **queues;
    guint8 status;              /* as the driver wrote it (device lock) */
    gint needs_reset;           /* atomic */
    guint32 config_generation;  /* atomic */
    gint log_count;             /* atomic: guest errors logged so far */
    GMutex own_lock;
};

/* ---- Device models --------------------------------------------------------- */

/* Initialises the core part of a device the model allocated (zeroed).
 * queue_max: size offered for every queue (a power of 2, <= 32768). */
void ferry_virtio_device_init(FerryVirtioDevice *vdev, const FerryVirtioDeviceOps *ops,
                              guint32 device_id, guint64 host_features,
                              guint32 config_size, guint n_queues, guint16 queue_max);
/* Frees the core part, then calls ops->destroy (or g_free). NULL is fine.
 * Transports call it; models never free themselves. */
void ferry_virtio_device_free(FerryVirtioDevice *vdev);

void ferry_virtio_lock(FerryVirtioDevice *vdev);
void ferry_virtio_unlock(FerryVirtioDevice *vdev);

FerryVirtq *ferry_virtio_queue(FerryVirtioDevice *vdev, guint index);   /* NULL if out of range */
gboolean ferry_virtio_has_feature(FerryVirtioDevice *vdev, guint bit);  /* negotiated */
/* The driver set DRIVER_OK and the device does not need a reset. */
gboolean ferry_virtio_is_running(FerryVirtioDevice *vdev);

/* The guest did something a device must refuse (§2.1.2): sets
 * DEVICE_NEEDS_RESET, sends a configuration change notification if DRIVER_OK
 * is set, and logs the first problems of the device (g_message once, then a
 * few g_debug). The queues stop until the driver resets the device. Any thread. */
void ferry_virtio_device_error(FerryVirtioDevice *vdev, const char *format, ...) G_GNUC_PRINTF(2, 3);
/* The device changed its configuration space: bumps the generation and
 * notifies the driver. Any thread. */
void ferry_virtio_config_changed(FerryVirtioDevice *vdev);

/* ---- Split virtqueues ------------------------------------------------------
 * pop/push/notify may be called from any thread, with or without the device
 * lock; each queue has a lock of its own inside. A chain popped before a
 * reset (or before the queue was disabled) is dropped by push without
 * touching the rings. */

typedef struct {
    FerryVirtq *vq;
    guint16 head;               /* descriptor index to give back in the used ring */
    /* Device-readable segments, then device-writable ones, in chain order.
     * Host pointers into guest RAM, each checked with ferry_guest_ptr(). */
    struct iovec *readable;
    guint n_readable;
    gsize readable_len;
    struct iovec *writable;
    guint n_writable;
    gsize writable_len;
    /* private */
    guint generation;
    guint capacity;
    struct iovec *iov;
    struct iovec inline_iov[8];
} FerryVirtqChain;

/* Next available chain, or NULL when the queue is empty, not ready, the
 * device is not running, or the chain is bad (then the device needs a reset).
 * The caller owns the chain until it passes it to push or chain_free. */
FerryVirtqChain *ferry_virtq_pop(FerryVirtq *vq);
/* Puts the chain in the used ring with `written` bytes (clamped to
 * writable_len) and frees it. FALSE if it was dropped (stale chain or
 * device needing a reset). Does not interrupt: call ferry_virtq_notify(). */
gboolean ferry_virtq_push(FerryVirtqChain *chain, guint32 written);
/* Frees a chain without using it (the guest never gets it back). */
void ferry_virtq_chain_free(FerryVirtqChain *chain);

/* Whether the driver wants a used buffer notification for what was pushed
 * since the last call (§2.7.7.2: VIRTQ_AVAIL_F_NO_INTERRUPT or used_event).
 * Records that the driver is now up to date. */
gboolean ferry_virtq_notify_needed(FerryVirtq *vq);
/* ferry_virtq_notify_needed() and, if so, the transport's interrupt. */
void ferry_virtq_notify(FerryVirtq *vq);

/* Copy from the readable / to the writable segments, starting `offset` bytes
 * into them; return how many bytes were copied (short at the end). */
gsize ferry_virtq_chain_read(const FerryVirtqChain *chain, gsize offset, void *buf, gsize len);
gsize ferry_virtq_chain_write(const FerryVirtqChain *chain, gsize offset, const void *buf, gsize len);

/* ---- For transports --------------------------------------------------------
 * Called with the device lock held. */

/* Binds the device to a transport (sets id, mem, lock and the callbacks;
 * id and mem must outlive the device). */
void ferry_virtio_attach(FerryVirtioDevice *vdev, const char *id, const FerryGuestMemory *mem,
                         GMutex *lock, const FerryVirtioTransportOps *ops, void *opaque);
/* 32 feature bits of word `sel` (0 or 1; others read 0). */
guint32 ferry_virtio_get_host_features(FerryVirtioDevice *vdev, guint sel);
guint32 ferry_virtio_get_driver_features(FerryVirtioDevice *vdev, guint sel);
/* Ignored once FEATURES_OK is set, and for sel > 1. */
void ferry_virtio_set_driver_features(FerryVirtioDevice *vdev, guint sel, guint32 value);
/* Status as the driver reads it (with DEVICE_NEEDS_RESET). */
guint8 ferry_virtio_get_status(FerryVirtioDevice *vdev);
/* The driver writes the status: 0 resets the device (the transport resets
 * its own registers too); FEATURES_OK stays clear if the accepted features are
 * not a subset of the offered ones or lack VERSION_1. */
void ferry_virtio_set_status(FerryVirtioDevice *vdev, guint8 status);
/* Resets status, features and queues, then the model (ops->reset). */
void ferry_virtio_reset(FerryVirtioDevice *vdev, gboolean machine);
guint32 ferry_virtio_config_generation(FerryVirtioDevice *vdev);
/* Config space access of any size; out-of-range bytes read 0 and are not written. */
void ferry_virtio_read_config(FerryVirtioDevice *vdev, guint32 offset, void *buf, guint32 len);
void ferry_virtio_write_config(FerryVirtioDevice *vdev, guint32 offset, const void *buf, guint32 len);
/* The driver notified queue `index`: calls ops->queue_notify when legal. */
void ferry_virtio_queue_notify(FerryVirtioDevice *vdev, guint index);

guint16  ferry_virtq_get_num_max(FerryVirtq *vq);
guint16  ferry_virtq_get_num(FerryVirtq *vq);
/* FALSE (and the value ignored, device needing a reset) unless a power of 2
 * no larger than num_max; also ignored while the queue is ready. */
gboolean ferry_virtq_set_num(FerryVirtq *vq, guint32 num);
/* Address words of the descriptor table, driver (avail) and device (used)
 * areas; ignored while the queue is ready. */
void     ferry_virtq_set_addr(FerryVirtq *vq, guint64 desc, guint64 driver, guint64 device);
void     ferry_virtq_get_addr(FerryVirtq *vq, guint64 *desc, guint64 *driver, guint64 *device);
/* Enables the queue: each area must lie in guest RAM and be aligned (§2.7).
 * FALSE and the device needing a reset otherwise. */
gboolean ferry_virtq_enable(FerryVirtq *vq);
void     ferry_virtq_disable(FerryVirtq *vq);
gboolean ferry_virtq_is_ready(FerryVirtq *vq);

G_END_DECLS

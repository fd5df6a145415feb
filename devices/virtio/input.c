/* input.c: virtio-input (virtio 1.2 §5.8), device id 18, presenting a power
 * button: EV_KEY with KEY_POWER and EV_SYN. eventq (0) carries events to the
 * driver, one 8-byte virtio_input_event per buffer; statusq (1) buffers (LED
 * state and the like) are taken and ignored. */
#include "input.h"

#include <string.h>

enum {
    CFG_UNSET     = 0x00,
    CFG_ID_NAME   = 0x01,
    CFG_ID_SERIAL = 0x02,
    CFG_ID_DEVIDS = 0x03,
    CFG_PROP_BITS = 0x10,
    CFG_EV_BITS   = 0x11,
    CFG_ABS_INFO  = 0x12,
};

/* §5.8.4 struct virtio_input_config: select, subsel, size, reserved[5],
 * then a 128-byte union. */
#define CFG_PAYLOAD 8
#define CONFIG_SIZE (CFG_PAYLOAD + 128)

#define EVENTQ  0
#define STATUSQ 1
#define QUEUE_SIZE 64
#define EVENT_SIZE 8

#define NAME   "Ferry Power Button"
#define SERIAL "ferry-power-0"
#define VENDOR  0x4652       /* "FR" */
#define PRODUCT 0x0001
#define VERSION 0x0001

/* Two events (key, sync) per key. */
#define PENDING_MAX 64

typedef struct {
    guint16 type, code;
    guint32 value;
} Event;

typedef struct {
    FerryVirtioDevice vdev;
    guint8 select, subsel;
    Event pending[PENDING_MAX];
    guint pending_head, pending_count;
    guint dropped;
} VirtioInput;

static void
set_bit(guint8 *bitmap, guint bit, guint8 *size)
{
    bitmap[bit / 8] |= 1u << (bit % 8);
    *size = MAX(*size, bit / 8 + 1);
}

/* The configuration space as the current select/subsel make it (§5.8.5.2:
 * size 0 for what the device does not have). */
static void
fill_config(VirtioInput *in, guint8 cfg[CONFIG_SIZE])
{
    guint8 *u = cfg + CFG_PAYLOAD;
    guint8 size = 0;

    memset(cfg, 0, CONFIG_SIZE);
    cfg[0] = in->select;
    cfg[1] = in->subsel;
    switch (in->select) {
    case CFG_ID_NAME:
        if (in->subsel == 0) {
            size = strlen(NAME);
            memcpy(u, NAME, size);
        }
        break;
    case CFG_ID_SERIAL:
        if (in->subsel == 0) {
            size = strlen(SERIAL);
            memcpy(u, SERIAL, size);
        }
        break;
    case CFG_ID_DEVIDS:
        if (in->subsel == 0) {
            const guint16 ids[4] = {
                GUINT16_TO_LE(FERRY_INPUT_BUS_VIRTUAL), GUINT16_TO_LE(VENDOR),
                GUINT16_TO_LE(PRODUCT), GUINT16_TO_LE(VERSION),
            };
            memcpy(u, ids, sizeof(ids));
            size = sizeof(ids);
        }
        break;
    case CFG_EV_BITS:
        if (in->subsel == FERRY_INPUT_EV_KEY)
            set_bit(u, FERRY_INPUT_KEY_POWER, &size);
        else if (in->subsel == FERRY_INPUT_EV_SYN)
            set_bit(u, FERRY_INPUT_SYN_REPORT, &size);
        break;
    case CFG_PROP_BITS:     /* no input properties */
    case CFG_ABS_INFO:      /* no absolute axes */
    case CFG_UNSET:
    default:
        break;
    }
    cfg[2] = size;
}

static void
input_read_config(FerryVirtioDevice *vdev, guint32 offset, void *buf, guint32 len)
{
    guint8 cfg[CONFIG_SIZE];

    fill_config((VirtioInput *) vdev, cfg);
    memcpy(buf, cfg + offset, len);
}

static void
input_write_config(FerryVirtioDevice *vdev, guint32 offset, const void *buf, guint32 len)
{
    VirtioInput *in = (VirtioInput *) vdev;
    const guint8 *b = buf;

    /* Only select and subsel are the driver's to write. */
    for (guint32 i = 0; i < len; i++) {
        if (offset + i == 0)
            in->select = b[i];
        else if (offset + i == 1)
            in->subsel = b[i];
    }
}

/* Moves waiting events into posted eventq buffers. Device lock held. */
static void
flush_events(VirtioInput *in)
{
    FerryVirtq *vq = ferry_virtio_queue(&in->vdev, EVENTQ);
    gboolean pushed = FALSE;

    if (!ferry_virtio_is_running(&in->vdev))
        return;
    while (in->pending_count) {
        FerryVirtqChain *chain = ferry_virtq_pop(vq);
        if (!chain)
            break;
        if (chain->writable_len < EVENT_SIZE) {
            ferry_virtio_device_error(&in->vdev, "eventq buffer of %" G_GSIZE_FORMAT
                                      " writable bytes cannot hold an event", chain->writable_len);
            ferry_virtq_chain_free(chain);
            break;
        }
        const Event *e = &in->pending[in->pending_head];
        guint8 wire[EVENT_SIZE];
        guint16 type = GUINT16_TO_LE(e->type), code = GUINT16_TO_LE(e->code);
        guint32 value = GUINT32_TO_LE(e->value);
        memcpy(wire, &type, 2);
        memcpy(wire + 2, &code, 2);
        memcpy(wire + 4, &value, 4);
        ferry_virtq_chain_write(chain, 0, wire, EVENT_SIZE);
        if (!ferry_virtq_push(chain, EVENT_SIZE))
            break;
        in->pending_head = (in->pending_head + 1) % PENDING_MAX;
        in->pending_count--;
        pushed = TRUE;
    }
    if (pushed)
        ferry_virtq_notify(vq);
}

static void
drain_statusq(VirtioInput *in)
{
    FerryVirtq *vq = ferry_virtio_queue(&in->vdev, STATUSQ);
    FerryVirtqChain *chain;
    gboolean pushed = FALSE;

    while ((chain = ferry_virtq_pop(vq)))
        pushed |= ferry_virtq_push(chain, 0);
    if (pushed)
        ferry_virtq_notify(vq);
}

static void
input_queue_notify(FerryVirtioDevice *vdev, guint index)
{
    VirtioInput *in = (VirtioInput *) vdev;

    if (index == EVENTQ)
        flush_events(in);
    else if (index == STATUSQ)
        drain_statusq(in);
}

static void
input_driver_ok(FerryVirtioDevice *vdev)
{
    flush_events((VirtioInput *) vdev);
}

static void
input_reset(FerryVirtioDevice *vdev, gboolean machine)
{
    VirtioInput *in = (VirtioInput *) vdev;

    in->select = in->subsel = 0;
    /* A press the driver has not seen yet is still a press after the
     * driver resets the device (as the probe does); after a machine
     * reset it belongs to a guest that is gone. */
    if (machine)
        in->pending_head = in->pending_count = 0;
}

static const FerryVirtioDeviceOps input_ops = {
    .name = "virtio-input",
    .read_config = input_read_config,
    .write_config = input_write_config,
    .queue_notify = input_queue_notify,
    .driver_ok = input_driver_ok,
    .reset = input_reset,
};

FerryVirtioDevice *
ferry_virtio_input_new(void)
{
    VirtioInput *in = g_new0(VirtioInput, 1);

    ferry_virtio_device_init(&in->vdev, &input_ops, FERRY_VIRTIO_ID_INPUT,
                             FERRY_VIRTIO_FEATURE(FERRY_VIRTIO_F_INDIRECT_DESC) |
                             FERRY_VIRTIO_FEATURE(FERRY_VIRTIO_F_EVENT_IDX),
                             CONFIG_SIZE, 2, QUEUE_SIZE);
    return &in->vdev;
}

static void
enqueue(VirtioInput *in, guint16 type, guint16 code, guint32 value)
{
    in->pending[(in->pending_head + in->pending_count) % PENDING_MAX] = (Event) { type, code, value };
    in->pending_count++;
}

void
ferry_virtio_input_send_key(FerryVirtioDevice *vdev, guint16 code, gboolean pressed)
{
    g_return_if_fail(vdev != NULL && vdev->ops == &input_ops);

    VirtioInput *in = (VirtioInput *) vdev;

    ferry_virtio_lock(vdev);
    if (in->pending_count + 2 > PENDING_MAX) {
        /* The guest is not taking events (no driver, or a stuck one). */
        if (in->dropped++ == 0)
            g_message("%s (virtio-input): guest is not reading input events; dropping key %u",
                      vdev->id, code);
    } else {
        enqueue(in, FERRY_INPUT_EV_KEY, code, pressed ? 1 : 0);
        enqueue(in, FERRY_INPUT_EV_SYN, FERRY_INPUT_SYN_REPORT, 0);
    }
    flush_events(in);
    ferry_virtio_unlock(vdev);
}

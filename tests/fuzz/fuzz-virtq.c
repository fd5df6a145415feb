/* fuzz-virtq.c: a hostile guest's virtqueues. The input is the guest's RAM
 * (rings, descriptors, indirect tables, buffers) and the queue's size and
 * ring addresses; a driver sets the device up through the virtio-mmio
 * registers and notifies it, and a device that reads and writes every byte
 * of every chain walks what the guest built. Nothing may touch memory outside
 * guest RAM (AddressSanitizer watches), abort, or loop forever. */
#include "virtio/virtio.h"
#include "virtio/mmio.h"

#include <stdint.h>
#include <string.h>

#define RAM_BASE 0x80000000ULL
#define RAM_SIZE 0x10000

enum {
    DEVICE_FEATURES_SEL = 0x014, DRIVER_FEATURES = 0x020, DRIVER_FEATURES_SEL = 0x024,
    QUEUE_SEL = 0x030, QUEUE_NUM = 0x038, QUEUE_READY = 0x044, QUEUE_NOTIFY = 0x050,
    STATUS = 0x070, QUEUE_DESC_LOW = 0x080, QUEUE_DESC_HIGH = 0x084, QUEUE_DRIVER_LOW = 0x090,
    QUEUE_DRIVER_HIGH = 0x094, QUEUE_DEVICE_LOW = 0x0a0, QUEUE_DEVICE_HIGH = 0x0a4,
};

typedef struct {
    FerryVirtioDevice vdev;
    guint64 bytes;
} Echo;

/* Pops every chain, reads all it may read, writes all it may write. */
static void
echo_notify(FerryVirtioDevice *vdev, guint index)
{
    Echo *e = (Echo *) vdev;
    FerryVirtq *vq = ferry_virtio_queue(vdev, index);
    FerryVirtqChain *c;
    guint8 buf[256];
    guint budget = 1024;

    while (budget-- && (c = ferry_virtq_pop(vq))) {
        for (gsize off = 0; off < c->readable_len; off += sizeof(buf))
            e->bytes += ferry_virtq_chain_read(c, off, buf, sizeof(buf));
        memset(buf, 0xA5, sizeof(buf));
        gsize written = 0;
        for (gsize off = 0; off < c->writable_len; off += sizeof(buf))
            written += ferry_virtq_chain_write(c, off, buf, MIN(sizeof(buf), c->writable_len - off));
        ferry_virtq_push(c, written);
    }
    if (ferry_virtq_notify_needed(vq))
        ferry_virtq_notify(vq);
}

static const FerryVirtioDeviceOps echo_ops = {
    .name = "virtio-fuzz-echo",
    .queue_notify = echo_notify,
};

static void
irq_set(FerryIrq *irq, gboolean level)
{
}

static guint32
take32(const uint8_t **p, size_t *n)
{
    guint32 v = 0;
    for (int i = 0; i < 4 && *n; i++, (*p)++, (*n)--)
        v |= (guint32) **p << (8 * i);
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data;
    size_t n = size;
    /* Header: queue size, three ring offsets into RAM (or anywhere), features,
     * how many notifies; the rest is RAM. */
    guint32 qnum = take32(&p, &n);
    guint32 desc = take32(&p, &n), avail = take32(&p, &n), used = take32(&p, &n);
    guint32 features = take32(&p, &n);
    guint32 notifies = take32(&p, &n) % 4 + 1;

    guint8 *ram = g_malloc0(RAM_SIZE);
    memcpy(ram, p, MIN(n, RAM_SIZE));
    FerryGuestMemory mem = { 0 };
    ferry_guest_memory_add(&mem, RAM_BASE, RAM_SIZE, ram);

    Echo *e = g_new0(Echo, 1);
    ferry_virtio_device_init(&e->vdev, &echo_ops, 99,
                             FERRY_VIRTIO_FEATURE(FERRY_VIRTIO_F_INDIRECT_DESC) |
                             FERRY_VIRTIO_FEATURE(FERRY_VIRTIO_F_EVENT_IDX), 0, 2, 256);
    FerryIrq irq = { irq_set, NULL, 1 };
    FerryDevice *dev = ferry_virtio_mmio_new("virtio-fuzz", &e->vdev, &irq, &mem);
    const FerryDeviceOps *ops = dev->ops;
#define W(off, v) ops->write(dev, (off), (v), 4)

    W(STATUS, FERRY_VIRTIO_STATUS_ACKNOWLEDGE | FERRY_VIRTIO_STATUS_DRIVER);
    W(DRIVER_FEATURES_SEL, 0);
    W(DRIVER_FEATURES, features & ((1u << 28) | (1u << 29)));
    W(DRIVER_FEATURES_SEL, 1);
    W(DRIVER_FEATURES, 1);                                  /* VERSION_1 */
    W(STATUS, FERRY_VIRTIO_STATUS_ACKNOWLEDGE | FERRY_VIRTIO_STATUS_DRIVER | FERRY_VIRTIO_STATUS_FEATURES_OK);
    W(QUEUE_SEL, 0);
    W(QUEUE_NUM, qnum & 0x1ff);
    /* Addresses: mostly inside RAM (the interesting case), sometimes wild. */
    W(QUEUE_DESC_LOW, (desc & 0x80000000) ? desc : (guint32) (RAM_BASE + (desc % RAM_SIZE)));
    W(QUEUE_DESC_HIGH, 0);
    W(QUEUE_DRIVER_LOW, (avail & 0x80000000) ? avail : (guint32) (RAM_BASE + (avail % RAM_SIZE)));
    W(QUEUE_DRIVER_HIGH, 0);
    W(QUEUE_DEVICE_LOW, (used & 0x80000000) ? used : (guint32) (RAM_BASE + (used % RAM_SIZE)));
    W(QUEUE_DEVICE_HIGH, 0);
    W(QUEUE_READY, 1);
    W(STATUS, FERRY_VIRTIO_STATUS_ACKNOWLEDGE | FERRY_VIRTIO_STATUS_DRIVER |
              FERRY_VIRTIO_STATUS_FEATURES_OK | FERRY_VIRTIO_STATUS_DRIVER_OK);
    for (guint i = 0; i < notifies; i++) {
        W(QUEUE_NOTIFY, 0);
        /* The guest moves on: bump avail->idx as a driver would. */
        guint32 a = (avail & 0x80000000) ? 0 : avail % RAM_SIZE;
        if (a + 4 <= RAM_SIZE)
            ram[a + 2]++;
    }
    ops->read(dev, 0x060, 4);                               /* InterruptStatus */
    W(STATUS, 0);                                           /* reset */
#undef W
    ferry_device_free(dev);
    g_free(ram);
    return 0;
}

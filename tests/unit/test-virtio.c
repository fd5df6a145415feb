/* test-virtio.c: the virtio core, the virtio-mmio transport and virtio-input,
 * driven by a fake guest: a RAM buffer with guard bytes on both sides, a
 * driver that programs the registers through a FerryBus, and hostile rings
 * that must end in DEVICE_NEEDS_RESET without a byte written outside RAM. */
#include "../../devices/virtio/input.h"
#include "../../devices/virtio/mmio.h"

#include <string.h>

#define MMIO_BASE  0x10001000ULL
#define RAM_GPA    0x80000000ULL
#define RAM_SIZE   (256 * 1024)
#define GUARD      4096
#define GUARD_BYTE 0xA5

#define BUF_GPA(j) (RAM_GPA + 0x20000 + (guint64) (j) * 0x100)
#define TABLE_GPA  (RAM_GPA + 0x18000)         /* indirect tables */

/* Register offsets (virtio 1.2 §4.2.2). */
enum {
    R_MAGIC = 0x000, R_VERSION = 0x004, R_DEVICE_ID = 0x008, R_VENDOR = 0x00c,
    R_DEV_FEAT = 0x010, R_DEV_FEAT_SEL = 0x014, R_DRV_FEAT = 0x020, R_DRV_FEAT_SEL = 0x024,
    R_QUEUE_SEL = 0x030, R_QUEUE_NUM_MAX = 0x034, R_QUEUE_NUM = 0x038, R_QUEUE_READY = 0x044,
    R_QUEUE_NOTIFY = 0x050, R_ISR = 0x060, R_ISR_ACK = 0x064, R_STATUS = 0x070,
    R_DESC_LO = 0x080, R_DESC_HI = 0x084, R_DRIVER_LO = 0x090, R_DRIVER_HI = 0x094,
    R_DEVICE_LO = 0x0a0, R_DEVICE_HI = 0x0a4, R_SHM_LEN_LO = 0x0b0, R_GENERATION = 0x0fc,
    R_CONFIG = 0x100,
};

enum { S_ACK = 1, S_DRIVER = 2, S_DRIVER_OK = 4, S_FEATURES_OK = 8, S_NEEDS_RESET = 64 };
enum { D_NEXT = 1, D_WRITE = 2, D_INDIRECT = 4 };

#define F_INDIRECT (1ULL << 28)
#define F_EVENT_IDX (1ULL << 29)
#define F_VERSION_1 (1ULL << 32)

typedef struct {
    guint16 num;
    guint64 desc, avail, used;
    guint16 avail_idx;
} GuestQueue;

typedef struct {
    guint8 *block;              /* GUARD | RAM | GUARD */
    guint8 *ram;
    FerryGuestMemory mem;
    FerryIrq irq;
    gint level;                 /* atomic */
    gint raises;                /* atomic */
    FerryBus *bus;
    FerryDevice *dev;
    FerryVirtioDevice *vdev;
    GuestQueue q[2];
} Guest;

/* ---- A second device model: takes every chain, fills its writable part
 * with 0x5A and gives it back. Lets the core be tested without input's rules. */

typedef struct {
    FerryVirtioDevice vdev;
    guint chains;
} Sink;

static void
sink_notify(FerryVirtioDevice *vdev, guint index)
{
    Sink *s = (Sink *) vdev;
    FerryVirtq *vq = ferry_virtio_queue(vdev, index);
    FerryVirtqChain *c;

    while ((c = ferry_virtq_pop(vq))) {
        for (guint i = 0; i < c->n_writable; i++)
            memset(c->writable[i].iov_base, 0x5A, c->writable[i].iov_len);
        s->chains++;
        ferry_virtq_push(c, c->writable_len);
    }
    ferry_virtq_notify(vq);
}

static const FerryVirtioDeviceOps sink_ops = {
    .name = "test-sink",
    .queue_notify = sink_notify,
};

static FerryVirtioDevice *
sink_new(void)
{
    Sink *s = g_new0(Sink, 1);
    ferry_virtio_device_init(&s->vdev, &sink_ops, 0x7F, F_INDIRECT | F_EVENT_IDX, 0, 1, 16);
    return &s->vdev;
}

/* ---- The fake guest ------------------------------------------------------ */

static void
irq_set(FerryIrq *irq, gboolean level)
{
    Guest *g = irq->opaque;
    if (level && !g_atomic_int_get(&g->level))
        g_atomic_int_inc(&g->raises);
    g_atomic_int_set(&g->level, level);
}

static Guest *
guest_new(FerryVirtioDevice *backend)
{
    Guest *g = g_new0(Guest, 1);

    g->block = g_malloc(RAM_SIZE + 2 * GUARD);
    memset(g->block, GUARD_BYTE, RAM_SIZE + 2 * GUARD);
    g->ram = g->block + GUARD;
    memset(g->ram, 0, RAM_SIZE);
    g_assert_true(ferry_guest_memory_add(&g->mem, RAM_GPA, RAM_SIZE, g->ram));
    g->irq = (FerryIrq) { irq_set, g, 1 };
    g->vdev = backend;
    g->dev = ferry_virtio_mmio_new("virtio-mmio@10001000", backend, &g->irq, &g->mem);
    g->bus = ferry_bus_new("mmio");
    g_assert_true(ferry_bus_map(g->bus, MMIO_BASE, FERRY_VIRTIO_MMIO_SIZE, g->dev));
    for (guint i = 0; i < 2; i++) {
        g->q[i].desc = RAM_GPA + 0x1000 + i * 0x4000;
        g->q[i].avail = g->q[i].desc + 0x1000;
        g->q[i].used = g->q[i].desc + 0x2000;
    }
    return g;
}

static void
check_guards(Guest *g)
{
    for (gsize i = 0; i < GUARD; i++) {
        g_assert_cmphex(g->block[i], ==, GUARD_BYTE);
        g_assert_cmphex(g->block[GUARD + RAM_SIZE + i], ==, GUARD_BYTE);
    }
}

static void
guest_free(Guest *g)
{
    check_guards(g);
    ferry_bus_free(g->bus);
    ferry_device_free(g->dev);
    g_free(g->block);
    g_free(g);
}

static guint8 *
gp(Guest *g, guint64 gpa)
{
    g_assert_cmpuint(gpa, >=, RAM_GPA);
    g_assert_cmpuint(gpa, <, RAM_GPA + RAM_SIZE);
    return g->ram + (gpa - RAM_GPA);
}

static void w16(Guest *g, guint64 gpa, guint16 v) { v = GUINT16_TO_LE(v); memcpy(gp(g, gpa), &v, 2); }
static void w32(Guest *g, guint64 gpa, guint32 v) { v = GUINT32_TO_LE(v); memcpy(gp(g, gpa), &v, 4); }
static void w64(Guest *g, guint64 gpa, guint64 v) { v = GUINT64_TO_LE(v); memcpy(gp(g, gpa), &v, 8); }
static guint16 r16(Guest *g, guint64 gpa) { guint16 v; memcpy(&v, gp(g, gpa), 2); return GUINT16_FROM_LE(v); }
static guint32 r32(Guest *g, guint64 gpa) { guint32 v; memcpy(&v, gp(g, gpa), 4); return GUINT32_FROM_LE(v); }

static guint32
rd(Guest *g, guint64 off)
{
    guint64 v;
    ferry_bus_read(g->bus, MMIO_BASE + off, 4, &v);
    return v;
}

static guint64
rd_sized(Guest *g, guint64 off, unsigned size)
{
    guint64 v;
    ferry_bus_read(g->bus, MMIO_BASE + off, size, &v);
    return v;
}

static void
wr(Guest *g, guint64 off, guint32 v)
{
    ferry_bus_write(g->bus, MMIO_BASE + off, 4, v);
}

static void
wr_sized(Guest *g, guint64 off, guint64 v, unsigned size)
{
    ferry_bus_write(g->bus, MMIO_BASE + off, size, v);
}

static void
set_desc(Guest *g, guint64 table, guint i, guint64 addr, guint32 len, guint16 flags, guint16 next)
{
    guint64 d = table + 16 * (guint64) i;
    w64(g, d, addr);
    w32(g, d + 8, len);
    w16(g, d + 12, flags);
    w16(g, d + 14, next);
}

static void
post(Guest *g, guint qi, guint16 head)
{
    GuestQueue *q = &g->q[qi];
    w16(g, q->avail + 4 + 2 * (q->avail_idx % q->num), head);
    q->avail_idx++;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    w16(g, q->avail + 2, q->avail_idx);
}

static guint16
used_idx(Guest *g, guint qi)
{
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return r16(g, g->q[qi].used + 2);
}

static void
used_elem(Guest *g, guint qi, guint16 n, guint32 *id, guint32 *len)
{
    guint64 e = g->q[qi].used + 4 + 8 * (guint64) (n % g->q[qi].num);
    *id = r32(g, e);
    *len = r32(g, e + 4);
}

static void
setup_queue(Guest *g, guint qi, guint16 num)
{
    GuestQueue *q = &g->q[qi];

    q->num = num;
    q->avail_idx = 0;
    memset(gp(g, q->desc), 0, 0x3000);
    wr(g, R_QUEUE_SEL, qi);
    g_assert_cmpuint(rd(g, R_QUEUE_READY), ==, 0);
    g_assert_cmpuint(rd(g, R_QUEUE_NUM_MAX), >=, num);
    wr(g, R_QUEUE_NUM, num);
    wr(g, R_DESC_LO, (guint32) q->desc);
    wr(g, R_DESC_HI, q->desc >> 32);
    wr(g, R_DRIVER_LO, (guint32) q->avail);
    wr(g, R_DRIVER_HI, q->avail >> 32);
    wr(g, R_DEVICE_LO, (guint32) q->used);
    wr(g, R_DEVICE_HI, q->used >> 32);
    wr(g, R_QUEUE_READY, 1);
    g_assert_cmpuint(rd(g, R_QUEUE_READY), ==, 1);
}

/* §3.1.1 driver initialization, accepting `features`; the queues get `num`
 * entries each. */
static void
driver_init(Guest *g, guint64 features, guint n_queues, guint16 num)
{
    wr(g, R_STATUS, 0);
    g_assert_cmpuint(rd(g, R_STATUS), ==, 0);
    wr(g, R_STATUS, S_ACK);
    wr(g, R_STATUS, S_ACK | S_DRIVER);
    wr(g, R_DEV_FEAT_SEL, 0);
    guint64 offered = rd(g, R_DEV_FEAT);
    wr(g, R_DEV_FEAT_SEL, 1);
    offered |= (guint64) rd(g, R_DEV_FEAT) << 32;
    g_assert_cmphex(features & ~offered, ==, 0);
    wr(g, R_DRV_FEAT_SEL, 0);
    wr(g, R_DRV_FEAT, (guint32) features);
    wr(g, R_DRV_FEAT_SEL, 1);
    wr(g, R_DRV_FEAT, features >> 32);
    wr(g, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
    g_assert_cmpuint(rd(g, R_STATUS) & S_FEATURES_OK, ==, S_FEATURES_OK);
    for (guint i = 0; i < n_queues; i++)
        setup_queue(g, i, num);
    wr(g, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    g_assert_cmpuint(rd(g, R_STATUS), ==, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
}

static void
ack_interrupts(Guest *g)
{
    wr(g, R_ISR_ACK, rd(g, R_ISR));
    g_assert_false(g_atomic_int_get(&g->level));
}

/* Posts eventq buffers j = first..first+n-1, one descriptor each. */
static void
post_event_buffers(Guest *g, guint first, guint n)
{
    for (guint j = first; j < first + n; j++) {
        guint16 d = j % g->q[0].num;
        memset(gp(g, BUF_GPA(j)), 0xEE, 8);
        set_desc(g, g->q[0].desc, d, BUF_GPA(j), 8, D_WRITE, 0);
        post(g, 0, d);
    }
    wr(g, R_QUEUE_NOTIFY, 0);
}

static void
assert_event(Guest *g, guint j, guint16 type, guint16 code, guint32 value)
{
    g_assert_cmpuint(r16(g, BUF_GPA(j)), ==, type);
    g_assert_cmpuint(r16(g, BUF_GPA(j) + 2), ==, code);
    g_assert_cmpuint(r32(g, BUF_GPA(j) + 4), ==, value);
}

/* The device refused something: DEVICE_NEEDS_RESET, a configuration change
 * interrupt, nothing in the used ring, a log line, no byte outside RAM. */
static void
assert_needs_reset(Guest *g, guint qi)
{
    g_assert_cmphex(rd(g, R_STATUS) & S_NEEDS_RESET, ==, S_NEEDS_RESET);
    g_assert_cmphex(rd(g, R_ISR) & 2, ==, 2);
    g_assert_true(g_atomic_int_get(&g->level));
    g_assert_cmpuint(used_idx(g, qi), ==, 0);
    g_assert_cmpint(g_atomic_int_get(&g->vdev->log_count), >=, 1);
    check_guards(g);
}

/* ---- Transport ----------------------------------------------------------- */

static void
test_empty_slot(void)
{
    Guest *g = guest_new(NULL);

    g_assert_cmphex(rd(g, R_MAGIC), ==, 0x74726976);
    g_assert_cmpuint(rd(g, R_VERSION), ==, 2);
    g_assert_cmpuint(rd(g, R_DEVICE_ID), ==, 0);
    g_assert_cmphex(rd(g, R_VENDOR), ==, FERRY_VIRTIO_MMIO_VENDOR);
    wr(g, R_STATUS, S_ACK);
    wr(g, R_QUEUE_NUM, 8);
    wr(g, R_QUEUE_READY, 1);
    wr(g, R_QUEUE_NOTIFY, 0);
    g_assert_cmpuint(rd(g, R_STATUS), ==, 0);
    g_assert_cmpuint(rd(g, R_QUEUE_NUM_MAX), ==, 0);
    g_assert_cmpuint(rd(g, R_DEV_FEAT), ==, 0);
    g_assert_cmpuint(rd_sized(g, R_CONFIG, 1), ==, 0);
    g_assert_false(g_atomic_int_get(&g->level));
    g_assert_null(ferry_virtio_mmio_get_backend(g->dev));
    ferry_device_reset(g->dev);
    guest_free(g);
}

static void
test_identity(void)
{
    Guest *g = guest_new(ferry_virtio_input_new());

    g_assert_cmphex(rd(g, R_MAGIC), ==, 0x74726976);
    g_assert_cmpuint(rd(g, R_VERSION), ==, 2);
    g_assert_cmpuint(rd(g, R_DEVICE_ID), ==, 18);
    g_assert_true(ferry_virtio_mmio_get_backend(g->dev) == g->vdev);
    wr(g, R_QUEUE_SEL, 0);
    g_assert_cmpuint(rd(g, R_QUEUE_NUM_MAX), ==, 64);
    wr(g, R_QUEUE_SEL, 1);
    g_assert_cmpuint(rd(g, R_QUEUE_NUM_MAX), ==, 64);
    wr(g, R_QUEUE_SEL, 2);
    g_assert_cmpuint(rd(g, R_QUEUE_NUM_MAX), ==, 0);
    g_assert_cmphex(rd(g, R_SHM_LEN_LO), ==, 0xFFFFFFFF);
    guest_free(g);
}

static void
test_features(void)
{
    Guest *g = guest_new(ferry_virtio_input_new());

    wr(g, R_DEV_FEAT_SEL, 0);
    g_assert_cmphex(rd(g, R_DEV_FEAT), ==, F_INDIRECT | F_EVENT_IDX);
    wr(g, R_DEV_FEAT_SEL, 1);
    g_assert_cmphex(rd(g, R_DEV_FEAT), ==, 1);          /* VERSION_1 */
    wr(g, R_DEV_FEAT_SEL, 2);
    g_assert_cmphex(rd(g, R_DEV_FEAT), ==, 0);

    /* Without VERSION_1 (a legacy driver): refused. */
    wr(g, R_STATUS, S_ACK | S_DRIVER);
    wr(g, R_DRV_FEAT_SEL, 0);
    wr(g, R_DRV_FEAT, F_INDIRECT);
    wr(g, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
    g_assert_cmphex(rd(g, R_STATUS), ==, S_ACK | S_DRIVER);

    /* A feature the device did not offer: refused. */
    wr(g, R_STATUS, 0);
    wr(g, R_STATUS, S_ACK | S_DRIVER);
    wr(g, R_DRV_FEAT_SEL, 0);
    wr(g, R_DRV_FEAT, 1u << 5);
    wr(g, R_DRV_FEAT_SEL, 1);
    wr(g, R_DRV_FEAT, 1);
    wr(g, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
    g_assert_cmphex(rd(g, R_STATUS) & S_FEATURES_OK, ==, 0);

    /* Offered ones: accepted, and frozen from then on. */
    wr(g, R_STATUS, 0);
    g_assert_cmphex(rd(g, R_DRV_FEAT), ==, 0);
    wr(g, R_STATUS, S_ACK | S_DRIVER);
    wr(g, R_DRV_FEAT_SEL, 0);
    wr(g, R_DRV_FEAT, F_EVENT_IDX);
    wr(g, R_DRV_FEAT_SEL, 1);
    wr(g, R_DRV_FEAT, 1);
    wr(g, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
    g_assert_cmphex(rd(g, R_STATUS), ==, S_ACK | S_DRIVER | S_FEATURES_OK);
    wr(g, R_DRV_FEAT_SEL, 0);
    wr(g, R_DRV_FEAT, F_INDIRECT);
    g_assert_cmphex(rd(g, R_DRV_FEAT), ==, F_EVENT_IDX);
    g_assert_true(ferry_virtio_has_feature(g->vdev, 29));
    g_assert_false(ferry_virtio_has_feature(g->vdev, 28));
    guest_free(g);
}

static void
test_reset(void)
{
    Guest *g = guest_new(ferry_virtio_input_new());

    driver_init(g, F_VERSION_1, 2, 8);
    post_event_buffers(g, 0, 2);
    ferry_virtio_input_send_key(g->vdev, FERRY_INPUT_KEY_POWER, TRUE);
    g_assert_true(g_atomic_int_get(&g->level));
    wr(g, R_STATUS, 0);
    g_assert_cmpuint(rd(g, R_STATUS), ==, 0);
    g_assert_cmpuint(rd(g, R_ISR), ==, 0);
    g_assert_false(g_atomic_int_get(&g->level));
    wr(g, R_QUEUE_SEL, 0);
    g_assert_cmpuint(rd(g, R_QUEUE_READY), ==, 0);
    g_assert_cmpuint(rd(g, R_QUEUE_NUM), ==, 64);
    g_assert_cmpuint(rd(g, R_DESC_LO), ==, 0);
    /* And it works again from scratch. */
    driver_init(g, F_VERSION_1, 2, 8);
    post_event_buffers(g, 0, 2);
    ferry_virtio_input_send_key(g->vdev, FERRY_INPUT_KEY_POWER, FALSE);
    g_assert_cmpuint(used_idx(g, 0), ==, 2);
    assert_event(g, 0, FERRY_INPUT_EV_KEY, FERRY_INPUT_KEY_POWER, 0);
    guest_free(g);
}

/* ---- virtio-input ------------------------------------------------------------ */

static guint8
cfg8(Guest *g, guint off)
{
    return rd_sized(g, R_CONFIG + off, 1);
}

static void
select_cfg(Guest *g, guint8 select, guint8 subsel)
{
    wr_sized(g, R_CONFIG + 0, select, 1);
    wr_sized(g, R_CONFIG + 1, subsel, 1);
}

static void
test_input_config(void)
{
    Guest *g = guest_new(ferry_virtio_input_new());
    char name[129] = { 0 };

    select_cfg(g, 0x01, 0);                              /* ID_NAME */
    g_assert_cmpuint(cfg8(g, 0), ==, 0x01);
    g_assert_cmpuint(cfg8(g, 2), ==, strlen("Ferry Power Button"));
    for (guint i = 0; i < cfg8(g, 2); i++)
        name[i] = cfg8(g, 8 + i);
    g_assert_cmpstr(name, ==, "Ferry Power Button");

    select_cfg(g, 0x02, 0);                              /* ID_SERIAL */
    g_assert_cmpuint(cfg8(g, 2), >, 0);

    select_cfg(g, 0x03, 0);                              /* ID_DEVIDS */
    g_assert_cmpuint(cfg8(g, 2), ==, 8);
    g_assert_cmphex(rd_sized(g, R_CONFIG + 8, 2), ==, 0x06);   /* BUS_VIRTUAL */

    select_cfg(g, 0x11, 1);                              /* EV_BITS, EV_KEY */
    g_assert_cmpuint(cfg8(g, 2), ==, 15);
    for (guint i = 0; i < 15; i++)
        g_assert_cmphex(cfg8(g, 8 + i), ==, i == 14 ? 0x10 : 0);    /* bit 116 */
    g_assert_cmphex(rd(g, R_CONFIG + 8 + 12), ==, 0x00100000);      /* as a 32-bit read */

    select_cfg(g, 0x11, 0);                              /* EV_BITS, EV_SYN */
    g_assert_cmpuint(cfg8(g, 2), ==, 1);
    g_assert_cmphex(cfg8(g, 8), ==, 0x01);

    select_cfg(g, 0x11, 2);                              /* EV_REL: none */
    g_assert_cmpuint(cfg8(g, 2), ==, 0);
    select_cfg(g, 0x10, 0);                              /* PROP_BITS: none */
    g_assert_cmpuint(cfg8(g, 2), ==, 0);
    select_cfg(g, 0x12, 0);                              /* ABS_INFO: none */
    g_assert_cmpuint(cfg8(g, 2), ==, 0);
    select_cfg(g, 0x7F, 3);                              /* unknown */
    g_assert_cmpuint(cfg8(g, 2), ==, 0);
    g_assert_cmpuint(cfg8(g, 8), ==, 0);

    /* size and the payload are the device's: writes there are ignored;
     * a 16-bit write sets select and subsel together. */
    wr_sized(g, R_CONFIG, 0x0111, 2);
    wr_sized(g, R_CONFIG + 2, 0x99, 1);
    g_assert_cmpuint(cfg8(g, 2), ==, 15);
    /* Past the configuration space: reads 0, writes go nowhere. */
    wr_sized(g, R_CONFIG + 200, 0xFF, 1);
    g_assert_cmpuint(rd_sized(g, R_CONFIG + 200, 8), ==, 0);
    g_assert_cmpuint(rd_sized(g, FERRY_VIRTIO_MMIO_SIZE - 4, 4), ==, 0);
    g_assert_cmpuint(rd(g, R_GENERATION), ==, 0);
    guest_free(g);
}

static void
test_input_power_button(void)
{
    Guest *g = guest_new(ferry_virtio_input_new());

    driver_init(g, F_VERSION_1, 2, 16);
    post_event_buffers(g, 0, 8);
    g_assert_cmpuint(used_idx(g, 0), ==, 0);
    g_assert_false(g_atomic_int_get(&g->level));

    ferry_virtio_input_send_key(g->vdev, FERRY_INPUT_KEY_POWER, TRUE);
    g_assert_true(g_atomic_int_get(&g->level));
    g_assert_cmpuint(rd(g, R_ISR), ==, 1);
    ack_interrupts(g);
    ferry_virtio_input_send_key(g->vdev, FERRY_INPUT_KEY_POWER, FALSE);
    g_assert_true(g_atomic_int_get(&g->level));
    ack_interrupts(g);

    g_assert_cmpuint(used_idx(g, 0), ==, 4);
    for (guint n = 0; n < 4; n++) {
        guint32 id, len;
        used_elem(g, 0, n, &id, &len);
        g_assert_cmpuint(id, ==, n);
        g_assert_cmpuint(len, ==, 8);
    }
    assert_event(g, 0, FERRY_INPUT_EV_KEY, FERRY_INPUT_KEY_POWER, 1);
    assert_event(g, 1, FERRY_INPUT_EV_SYN, FERRY_INPUT_SYN_REPORT, 0);
    assert_event(g, 2, FERRY_INPUT_EV_KEY, FERRY_INPUT_KEY_POWER, 0);
    assert_event(g, 3, FERRY_INPUT_EV_SYN, FERRY_INPUT_SYN_REPORT, 0);
    g_assert_cmphex(r32(g, BUF_GPA(4)), ==, 0xEEEEEEEE);        /* not used */
    guest_free(g);
}

static void
test_input_pending(void)
{
    Guest *g = guest_new(ferry_virtio_input_new());

    /* Before there is a driver: kept. */
    ferry_virtio_input_send_key(g->vdev, FERRY_INPUT_KEY_POWER, TRUE);
    ferry_virtio_input_send_key(g->vdev, FERRY_INPUT_KEY_POWER, FALSE);
    g_assert_false(g_atomic_int_get(&g->level));
    /* The driver's reset at probe keeps them too. */
    driver_init(g, F_VERSION_1, 2, 16);
    g_assert_false(g_atomic_int_get(&g->level));
    post_event_buffers(g, 0, 1);
    g_assert_cmpuint(used_idx(g, 0), ==, 1);
    assert_event(g, 0, FERRY_INPUT_EV_KEY, FERRY_INPUT_KEY_POWER, 1);
    ack_interrupts(g);
    post_event_buffers(g, 1, 8);
    g_assert_cmpuint(used_idx(g, 0), ==, 4);
    assert_event(g, 1, FERRY_INPUT_EV_SYN, 0, 0);
    assert_event(g, 2, FERRY_INPUT_EV_KEY, FERRY_INPUT_KEY_POWER, 0);
    assert_event(g, 3, FERRY_INPUT_EV_SYN, 0, 0);

    /* A machine reset forgets what the old guest never read. */
    wr(g, R_STATUS, 0);
    ferry_virtio_input_send_key(g->vdev, FERRY_INPUT_KEY_POWER, TRUE);
    ferry_device_reset(g->dev);
    driver_init(g, F_VERSION_1, 2, 16);
    post_event_buffers(g, 0, 4);
    g_assert_cmpuint(used_idx(g, 0), ==, 0);

    /* More than the pending queue holds: the excess is dropped, not the
     * pairs already queued. */
    wr(g, R_STATUS, 0);
    for (guint i = 0; i < 40; i++)
        ferry_virtio_input_send_key(g->vdev, FERRY_INPUT_KEY_POWER, i % 2 == 0);
    driver_init(g, F_VERSION_1, 2, 64);
    post_event_buffers(g, 0, 64);
    g_assert_cmpuint(used_idx(g, 0), ==, 64);
    for (guint j = 0; j < 64; j += 2) {
        assert_event(g, j, FERRY_INPUT_EV_KEY, FERRY_INPUT_KEY_POWER, (j / 2) % 2 == 0);
        assert_event(g, j + 1, FERRY_INPUT_EV_SYN, 0, 0);
    }
    guest_free(g);
}

static void
test_input_no_interrupt(void)
{
    Guest *g = guest_new(ferry_virtio_input_new());

    driver_init(g, F_VERSION_1, 2, 16);
    w16(g, g->q[0].avail, 1);                            /* VIRTQ_AVAIL_F_NO_INTERRUPT */
    post_event_buffers(g, 0, 4);
    ferry_virtio_input_send_key(g->vdev, FERRY_INPUT_KEY_POWER, TRUE);
    g_assert_cmpuint(used_idx(g, 0), ==, 2);
    g_assert_false(g_atomic_int_get(&g->level));
    w16(g, g->q[0].avail, 0);
    ferry_virtio_input_send_key(g->vdev, FERRY_INPUT_KEY_POWER, FALSE);
    g_assert_cmpuint(used_idx(g, 0), ==, 4);
    g_assert_true(g_atomic_int_get(&g->level));
    guest_free(g);
}

static void
test_input_event_idx(void)
{
    Guest *g = guest_new(ferry_virtio_input_new());
    const guint16 num = 16;

    driver_init(g, F_VERSION_1 | F_EVENT_IDX, 2, num);
    /* used_event = 2: interrupt once the used index passes 2. */
    w16(g, g->q[0].avail + 4 + 2 * num, 2);
    post_event_buffers(g, 0, 4);
    ferry_virtio_input_send_key(g->vdev, FERRY_INPUT_KEY_POWER, TRUE);
    g_assert_cmpuint(used_idx(g, 0), ==, 2);
    g_assert_false(g_atomic_int_get(&g->level));
    ferry_virtio_input_send_key(g->vdev, FERRY_INPUT_KEY_POWER, FALSE);
    g_assert_cmpuint(used_idx(g, 0), ==, 4);
    g_assert_true(g_atomic_int_get(&g->level));
    ack_interrupts(g);
    /* avail_event: the device wants a notification for buffer 4 on. */
    g_assert_cmpuint(r16(g, g->q[0].used + 4 + 8 * num), ==, 4);
    /* used_event left behind (2): no interrupt for later completions. */
    post_event_buffers(g, 4, 2);
    ferry_virtio_input_send_key(g->vdev, FERRY_INPUT_KEY_POWER, TRUE);
    g_assert_cmpuint(used_idx(g, 0), ==, 6);
    g_assert_false(g_atomic_int_get(&g->level));
    guest_free(g);
}

static void
test_input_indirect(void)
{
    Guest *g = guest_new(ferry_virtio_input_new());

    driver_init(g, F_VERSION_1 | F_INDIRECT, 2, 16);
    /* One event split over two writable segments of 4 bytes; one whole. */
    set_desc(g, TABLE_GPA, 0, BUF_GPA(0), 4, D_WRITE | D_NEXT, 1);
    set_desc(g, TABLE_GPA, 1, BUF_GPA(1), 4, D_WRITE, 0);
    set_desc(g, g->q[0].desc, 0, TABLE_GPA, 32, D_INDIRECT, 0);
    post(g, 0, 0);
    set_desc(g, TABLE_GPA + 0x100, 0, BUF_GPA(2), 8, D_WRITE, 0);
    set_desc(g, g->q[0].desc, 1, TABLE_GPA + 0x100, 16, D_INDIRECT | D_WRITE, 0);
    post(g, 0, 1);
    wr(g, R_QUEUE_NOTIFY, 0);
    ferry_virtio_input_send_key(g->vdev, FERRY_INPUT_KEY_POWER, TRUE);
    g_assert_cmpuint(rd(g, R_STATUS) & S_NEEDS_RESET, ==, 0);
    g_assert_cmpuint(used_idx(g, 0), ==, 2);
    g_assert_cmpuint(r16(g, BUF_GPA(0)), ==, FERRY_INPUT_EV_KEY);
    g_assert_cmpuint(r16(g, BUF_GPA(0) + 2), ==, FERRY_INPUT_KEY_POWER);
    g_assert_cmpuint(r32(g, BUF_GPA(1)), ==, 1);
    assert_event(g, 2, FERRY_INPUT_EV_SYN, 0, 0);
    guest_free(g);
}

static void
test_input_statusq(void)
{
    Guest *g = guest_new(ferry_virtio_input_new());

    driver_init(g, F_VERSION_1, 2, 16);
    w16(g, BUF_GPA(0), 0x11);                            /* EV_LED: ignored */
    set_desc(g, g->q[1].desc, 3, BUF_GPA(0), 8, 0, 0);
    post(g, 1, 3);
    wr(g, R_QUEUE_NOTIFY, 1);
    g_assert_cmpuint(used_idx(g, 1), ==, 1);
    guint32 id, len;
    used_elem(g, 1, 0, &id, &len);
    g_assert_cmpuint(id, ==, 3);
    g_assert_cmpuint(len, ==, 0);
    g_assert_cmpuint(rd(g, R_ISR), ==, 1);
    g_assert_cmpuint(used_idx(g, 0), ==, 0);
    /* Queue numbers past the last one: ignored. */
    wr(g, R_QUEUE_NOTIFY, 2);
    wr(g, R_QUEUE_NOTIFY, 0xFFFF);
    g_assert_cmpuint(rd(g, R_STATUS) & S_NEEDS_RESET, ==, 0);
    guest_free(g);
}

typedef struct {
    Guest *g;
    guint keys;
} KeyThread;

static gpointer
press_keys(gpointer data)
{
    KeyThread *t = data;
    for (guint i = 0; i < t->keys; i++) {
        ferry_virtio_input_send_key(t->g->vdev, FERRY_INPUT_KEY_POWER, i % 2 == 0);
        g_usleep(g_random_int_range(0, 200));
    }
    return NULL;
}

/* A key thread and a "vCPU" recycling eventq buffers run at once: every
 * event arrives once, in order. */
static void
test_input_threads(void)
{
    Guest *g = guest_new(ferry_virtio_input_new());
    KeyThread t = { g, 32 };          /* 64 events: all fit the pending queue */
    const guint16 num = 8;
    guint16 seen = 0;

    driver_init(g, F_VERSION_1 | F_EVENT_IDX, 2, num);
    post_event_buffers(g, 0, num);
    GThread *th = g_thread_new("keys", press_keys, &t);
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (seen < 2 * t.keys) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        /* As a driver does: ack, then read the used ring. */
        if (g_atomic_int_get(&g->level))
            wr(g, R_ISR_ACK, rd(g, R_ISR));
        guint16 u = used_idx(g, 0);
        while (seen != u) {
            guint32 id, len;
            used_elem(g, 0, seen, &id, &len);
            g_assert_cmpuint(len, ==, 8);
            guint j = seen;          /* buffer j went out as descriptor j % num */
            g_assert_cmpuint(id, ==, j % num);
            if (seen % 2 == 0)
                assert_event(g, j, FERRY_INPUT_EV_KEY, FERRY_INPUT_KEY_POWER, (seen / 2) % 2 == 0);
            else
                assert_event(g, j, FERRY_INPUT_EV_SYN, 0, 0);
            seen++;
            post_event_buffers(g, seen + num - 1, 1);
        }
        /* used_event: interrupt at the next completion. */
        w16(g, g->q[0].avail + 4 + 2 * num, seen);
        g_usleep(50);
    }
    g_thread_join(th);
    g_assert_cmpuint(used_idx(g, 0), ==, 2 * t.keys);
    guest_free(g);
}

/* ---- The core through the sink device -------------------------------------- */

typedef struct {
    FerryVirtq *vq;
    FerryVirtqChain *chain;
    guint32 written;
    gboolean ok;
} PushJob;

static gpointer
push_elsewhere(gpointer data)
{
    PushJob *job = data;
    job->ok = ferry_virtq_push(job->chain, job->written);
    ferry_virtq_notify(job->vq);
    return NULL;
}

static void
test_virtq_chains(void)
{
    Guest *g = guest_new(sink_new());
    FerryVirtq *vq = ferry_virtio_queue(g->vdev, 0);

    driver_init(g, F_VERSION_1 | F_INDIRECT, 1, 16);
    /* 12 readable segments (past the inline iovecs), then 2 writable. */
    for (guint i = 0; i < 12; i++) {
        memset(gp(g, BUF_GPA(i)), 'a' + i, 10);
        set_desc(g, g->q[0].desc, i, BUF_GPA(i), 10, D_NEXT, i + 1);
    }
    set_desc(g, g->q[0].desc, 12, BUF_GPA(12), 3, D_WRITE | D_NEXT, 13);
    set_desc(g, g->q[0].desc, 13, BUF_GPA(13), 5, D_WRITE, 0);
    post(g, 0, 0);

    /* Popped here, not from the notify: the device thread of a block device. */
    FerryVirtqChain *c = ferry_virtq_pop(vq);
    g_assert_nonnull(c);
    g_assert_cmpuint(c->head, ==, 0);
    g_assert_cmpuint(c->n_readable, ==, 12);
    g_assert_cmpuint(c->readable_len, ==, 120);
    g_assert_cmpuint(c->n_writable, ==, 2);
    g_assert_cmpuint(c->writable_len, ==, 8);
    g_assert_true(c->readable[3].iov_base == gp(g, BUF_GPA(3)));
    char buf[16] = { 0 };
    g_assert_cmpuint(ferry_virtq_chain_read(c, 38, buf, 4), ==, 4);
    g_assert_cmpstr(buf, ==, "ddee");
    g_assert_cmpuint(ferry_virtq_chain_read(c, 118, buf, 16), ==, 2);
    g_assert_cmpuint(ferry_virtq_chain_write(c, 1, "WXYZ", 4), ==, 4);
    g_assert_cmpuint(ferry_virtq_chain_write(c, 6, "0123", 4), ==, 2);
    g_assert_cmpmem(gp(g, BUF_GPA(12)), 3, "\0WX", 3);
    g_assert_cmpmem(gp(g, BUF_GPA(13)), 5, "YZ\0" "01", 5);
    g_assert_null(ferry_virtq_pop(vq));

    /* Completed on another thread; clamped to the writable length. */
    PushJob job = { vq, c, 1000, FALSE };
    GThread *th = g_thread_new("complete", push_elsewhere, &job);
    g_thread_join(th);
    g_assert_true(job.ok);
    g_assert_cmpuint(used_idx(g, 0), ==, 1);
    guint32 id, len;
    used_elem(g, 0, 0, &id, &len);
    g_assert_cmpuint(id, ==, 0);
    g_assert_cmpuint(len, ==, 8);
    g_assert_true(g_atomic_int_get(&g->level));
    ack_interrupts(g);

    /* A chain popped before a reset is stale: its push is dropped. */
    set_desc(g, g->q[0].desc, 14, BUF_GPA(14), 4, D_WRITE, 0);
    post(g, 0, 14);
    c = ferry_virtq_pop(vq);
    g_assert_nonnull(c);
    g_assert_cmpuint(c->head, ==, 14);
    driver_init(g, F_VERSION_1, 1, 16);
    g_assert_false(ferry_virtq_push(c, 4));
    ferry_virtq_notify(vq);
    g_assert_cmpuint(used_idx(g, 0), ==, 0);
    g_assert_false(g_atomic_int_get(&g->level));

    /* Zero-length descriptors carry nothing and are skipped. */
    set_desc(g, g->q[0].desc, 0, 0, 0, D_NEXT, 1);
    set_desc(g, g->q[0].desc, 1, BUF_GPA(0), 4, D_WRITE, 0);
    post(g, 0, 0);
    c = ferry_virtq_pop(vq);
    g_assert_nonnull(c);
    g_assert_cmpuint(c->n_readable, ==, 0);
    g_assert_cmpuint(c->n_writable, ==, 1);
    ferry_virtq_chain_free(c);
    guest_free(g);
}

static void
test_hostile_desc_outside_ram(void)
{
    Guest *g = guest_new(sink_new());

    driver_init(g, F_VERSION_1, 1, 16);
    set_desc(g, g->q[0].desc, 0, 0x1000, 8, D_WRITE, 0);    /* below RAM */
    post(g, 0, 0);
    wr(g, R_QUEUE_NOTIFY, 0);
    assert_needs_reset(g, 0);
    /* Stopped until reset: a good buffer now is left alone. */
    set_desc(g, g->q[0].desc, 1, BUF_GPA(0), 8, D_WRITE, 0);
    post(g, 0, 1);
    wr(g, R_QUEUE_NOTIFY, 0);
    g_assert_cmpuint(used_idx(g, 0), ==, 0);
    g_assert_cmpuint(r32(g, BUF_GPA(0)), ==, 0);
    /* After a reset the device works again. */
    driver_init(g, F_VERSION_1, 1, 16);
    g_assert_cmpuint(rd(g, R_STATUS) & S_NEEDS_RESET, ==, 0);
    set_desc(g, g->q[0].desc, 0, BUF_GPA(0), 8, D_WRITE, 0);
    post(g, 0, 0);
    wr(g, R_QUEUE_NOTIFY, 0);
    g_assert_cmpuint(used_idx(g, 0), ==, 1);
    g_assert_cmphex(r32(g, BUF_GPA(0)), ==, 0x5A5A5A5A);
    guest_free(g);
}

static void
test_hostile_len_past_end(void)
{
    static const struct { guint64 addr; guint32 len; } cases[] = {
        { RAM_GPA + RAM_SIZE - 4, 8 },                  /* runs past the end */
        { RAM_GPA + RAM_SIZE, 1 },                      /* just past it */
        { RAM_GPA - 4, 8 },                             /* starts before it */
        { G_GUINT64_CONSTANT(0xFFFFFFFFFFFFFFF0), 0x20 },  /* wraps around */
        { RAM_GPA, 0xFFFFFFFF },                        /* huge */
    };

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        Guest *g = guest_new(sink_new());
        driver_init(g, F_VERSION_1, 1, 16);
        set_desc(g, g->q[0].desc, 0, BUF_GPA(0), 8, D_NEXT, 1);
        set_desc(g, g->q[0].desc, 1, cases[i].addr, cases[i].len, D_WRITE, 0);
        post(g, 0, 0);
        wr(g, R_QUEUE_NOTIFY, 0);
        assert_needs_reset(g, 0);
        guest_free(g);
    }
}

static void
test_hostile_index_out_of_range(void)
{
    Guest *g = guest_new(sink_new());

    /* A head past the queue size. */
    driver_init(g, F_VERSION_1, 1, 8);
    post(g, 0, 8);
    wr(g, R_QUEUE_NOTIFY, 0);
    assert_needs_reset(g, 0);
    guest_free(g);

    /* A next past it (the table memory behind is valid RAM). */
    g = guest_new(sink_new());
    driver_init(g, F_VERSION_1, 1, 8);
    set_desc(g, g->q[0].desc, 0, BUF_GPA(0), 8, D_NEXT, 200);
    set_desc(g, g->q[0].desc, 200, BUF_GPA(1), 8, D_WRITE, 0);
    post(g, 0, 0);
    wr(g, R_QUEUE_NOTIFY, 0);
    assert_needs_reset(g, 0);
    guest_free(g);
}

static void
test_hostile_loop(void)
{
    Guest *g = guest_new(sink_new());

    driver_init(g, F_VERSION_1, 1, 16);
    set_desc(g, g->q[0].desc, 0, BUF_GPA(0), 8, D_NEXT, 1);
    set_desc(g, g->q[0].desc, 1, BUF_GPA(1), 8, D_NEXT, 0);
    post(g, 0, 0);
    wr(g, R_QUEUE_NOTIFY, 0);
    assert_needs_reset(g, 0);
    guest_free(g);

    /* A descriptor that points at itself, inside an indirect table. */
    g = guest_new(sink_new());
    driver_init(g, F_VERSION_1 | F_INDIRECT, 1, 16);
    set_desc(g, TABLE_GPA, 0, BUF_GPA(0), 8, D_NEXT, 1);
    set_desc(g, TABLE_GPA, 1, BUF_GPA(1), 8, D_NEXT, 1);
    set_desc(g, g->q[0].desc, 0, TABLE_GPA, 32, D_INDIRECT, 0);
    post(g, 0, 0);
    wr(g, R_QUEUE_NOTIFY, 0);
    assert_needs_reset(g, 0);
    guest_free(g);
}

static void
test_hostile_indirect(void)
{
    static const struct { guint64 table; guint32 len; guint16 flags; guint64 features; } cases[] = {
        { TABLE_GPA, 0, D_INDIRECT, F_INDIRECT },                  /* zero length */
        { TABLE_GPA, 24, D_INDIRECT, F_INDIRECT },                 /* 1.5 descriptors */
        { TABLE_GPA, 32, D_INDIRECT | D_NEXT, F_INDIRECT },        /* chained on */
        { TABLE_GPA, 32, D_INDIRECT, 0 },                          /* not negotiated */
        { RAM_GPA + RAM_SIZE - 16, 32, D_INDIRECT, F_INDIRECT },   /* past RAM */
        { TABLE_GPA, 0xFFFFFFF0, D_INDIRECT, F_INDIRECT },         /* huge */
        { TABLE_GPA + 0x200, 32, D_INDIRECT, F_INDIRECT },         /* nested (below) */
    };

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        Guest *g = guest_new(sink_new());
        driver_init(g, F_VERSION_1 | cases[i].features, 1, 16);
        set_desc(g, TABLE_GPA, 0, BUF_GPA(0), 8, D_WRITE | D_NEXT, 1);
        set_desc(g, TABLE_GPA, 1, BUF_GPA(1), 8, D_WRITE, 0);
        /* The nested case: a table whose second entry is itself indirect. */
        set_desc(g, TABLE_GPA + 0x200, 0, BUF_GPA(2), 8, D_WRITE | D_NEXT, 1);
        set_desc(g, TABLE_GPA + 0x200, 1, TABLE_GPA, 32, D_INDIRECT, 0);
        set_desc(g, g->q[0].desc, 0, cases[i].table, cases[i].len, cases[i].flags, 1);
        set_desc(g, g->q[0].desc, 1, BUF_GPA(3), 8, D_WRITE, 0);
        post(g, 0, 0);
        wr(g, R_QUEUE_NOTIFY, 0);
        assert_needs_reset(g, 0);
        g_assert_cmphex(r32(g, BUF_GPA(0)), ==, 0);
        guest_free(g);
    }
}

static void
test_hostile_avail_jump(void)
{
    Guest *g = guest_new(sink_new());

    driver_init(g, F_VERSION_1, 1, 16);
    set_desc(g, g->q[0].desc, 0, BUF_GPA(0), 8, D_WRITE, 0);
    w16(g, g->q[0].avail + 2, 1000);
    wr(g, R_QUEUE_NOTIFY, 0);
    assert_needs_reset(g, 0);
    g_assert_cmpuint(r32(g, BUF_GPA(0)), ==, 0);
    guest_free(g);
}

static void
test_hostile_readable_after_writable(void)
{
    Guest *g = guest_new(sink_new());

    driver_init(g, F_VERSION_1, 1, 16);
    set_desc(g, g->q[0].desc, 0, BUF_GPA(0), 8, D_WRITE | D_NEXT, 1);
    set_desc(g, g->q[0].desc, 1, BUF_GPA(1), 8, 0, 0);
    post(g, 0, 0);
    wr(g, R_QUEUE_NOTIFY, 0);
    assert_needs_reset(g, 0);
    guest_free(g);
}

static void
test_hostile_queue_size(void)
{
    static const guint32 sizes[] = { 12, 32, 0, 0x10000, 0xFFFFFFFF };   /* max is 16 */

    for (guint i = 0; i < G_N_ELEMENTS(sizes); i++) {
        Guest *g = guest_new(sink_new());
        wr(g, R_STATUS, S_ACK | S_DRIVER);
        wr(g, R_QUEUE_SEL, 0);
        wr(g, R_QUEUE_NUM, sizes[i]);
        g_assert_cmpuint(rd(g, R_QUEUE_NUM), ==, 16);
        g_assert_cmphex(rd(g, R_STATUS) & S_NEEDS_RESET, ==, S_NEEDS_RESET);
        /* Before DRIVER_OK the driver reads the status: no interrupt. */
        g_assert_false(g_atomic_int_get(&g->level));
        guest_free(g);
    }
}

static void
test_hostile_ring_addresses(void)
{
    static const struct { guint64 desc, avail, used; } cases[] = {
        { 0x1000, RAM_GPA + 0x2000, RAM_GPA + 0x3000 },                 /* desc below RAM */
        { RAM_GPA + RAM_SIZE - 0x80, RAM_GPA + 0x2000, RAM_GPA + 0x3000 },  /* desc past end */
        { RAM_GPA + 0x1000, RAM_GPA + RAM_SIZE - 8, RAM_GPA + 0x3000 },   /* avail past end */
        { RAM_GPA + 0x1000, RAM_GPA + 0x2000, RAM_GPA + RAM_SIZE - 64 },  /* used past end */
        { RAM_GPA + 0x1008, RAM_GPA + 0x2000, RAM_GPA + 0x3000 },       /* desc misaligned */
        { RAM_GPA + 0x1000, RAM_GPA + 0x2001, RAM_GPA + 0x3000 },       /* avail misaligned */
        { RAM_GPA + 0x1000, RAM_GPA + 0x2000, RAM_GPA + 0x3002 },       /* used misaligned */
        { G_GUINT64_CONSTANT(0xFFFFFFFFFFFFFF00), RAM_GPA, RAM_GPA },   /* wraps */
    };

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        Guest *g = guest_new(sink_new());
        wr(g, R_STATUS, S_ACK | S_DRIVER);
        wr(g, R_QUEUE_SEL, 0);
        wr(g, R_QUEUE_NUM, 16);
        wr(g, R_DESC_LO, (guint32) cases[i].desc);
        wr(g, R_DESC_HI, cases[i].desc >> 32);
        wr(g, R_DRIVER_LO, (guint32) cases[i].avail);
        wr(g, R_DRIVER_HI, cases[i].avail >> 32);
        wr(g, R_DEVICE_LO, (guint32) cases[i].used);
        wr(g, R_DEVICE_HI, cases[i].used >> 32);
        wr(g, R_QUEUE_READY, 1);
        g_assert_cmpuint(rd(g, R_QUEUE_READY), ==, 0);
        g_assert_cmphex(rd(g, R_STATUS) & S_NEEDS_RESET, ==, S_NEEDS_RESET);
        wr(g, R_STATUS, S_ACK | S_DRIVER | S_DRIVER_OK);
        wr(g, R_QUEUE_NOTIFY, 0);
        guest_free(g);
    }
}

static void
test_hostile_register_access(void)
{
    Guest *g = guest_new(ferry_virtio_input_new());

    wr(g, R_STATUS, S_ACK);
    /* Not aligned 32-bit words: reads 0, writes ignored, no reset. */
    g_assert_cmpuint(rd_sized(g, R_MAGIC, 1), ==, 0);
    g_assert_cmpuint(rd_sized(g, R_MAGIC, 2), ==, 0);
    g_assert_cmpuint(rd_sized(g, R_MAGIC, 8), ==, 0);
    g_assert_cmpuint(rd_sized(g, R_MAGIC + 2, 4), ==, 0);
    g_assert_cmpuint(rd_sized(g, R_STATUS + 1, 4), ==, 0);
    wr_sized(g, R_STATUS, 0, 1);                        /* would reset */
    wr_sized(g, R_STATUS, 0, 2);
    wr_sized(g, R_STATUS + 2, 0, 4);
    wr_sized(g, R_STATUS, 0, 8);
    g_assert_cmpuint(rd(g, R_STATUS), ==, S_ACK);
    /* Read-only registers and holes ignore writes. */
    wr(g, R_MAGIC, 0);
    wr(g, R_DEVICE_ID, 1);
    wr(g, R_QUEUE_NUM_MAX, 1);
    wr(g, R_ISR, 0xFF);
    wr(g, 0x0f0, 0xFFFFFFFF);
    g_assert_cmphex(rd(g, R_MAGIC), ==, 0x74726976);
    g_assert_cmpuint(rd(g, R_DEVICE_ID), ==, 18);
    g_assert_cmpuint(rd(g, R_ISR), ==, 0);
    /* Out-of-range queue: nothing happens to queue 0 or anything else. */
    wr(g, R_QUEUE_SEL, 0xFFFFFFFF);
    wr(g, R_QUEUE_NUM, 4);
    wr(g, R_DESC_LO, 0x1234);
    wr(g, R_QUEUE_READY, 1);
    g_assert_cmpuint(rd(g, R_QUEUE_READY), ==, 0);
    g_assert_cmpuint(rd(g, R_DESC_LO), ==, 0);
    wr(g, R_QUEUE_SEL, 0);
    g_assert_cmpuint(rd(g, R_QUEUE_NUM), ==, 64);
    g_assert_cmpuint(rd(g, R_DESC_LO), ==, 0);
    /* A driver bit the device owns cannot be set by the driver. */
    wr(g, R_STATUS, S_ACK | S_NEEDS_RESET);
    g_assert_cmpuint(rd(g, R_STATUS), ==, S_ACK);
    /* Notifying before DRIVER_OK: ignored. */
    wr(g, R_QUEUE_NOTIFY, 0);
    g_assert_cmpuint(rd(g, R_STATUS), ==, S_ACK);
    guest_free(g);
}

/* Random rings and registers: whatever the device makes of them, it writes
 * only inside RAM and never crashes. */
static void
test_hostile_fuzz(void)
{
    Guest *g = guest_new(sink_new());
    Sink *sink = (Sink *) g->vdev;
    const guint rounds = g_test_slow() ? 20000 : 2000;
    guint refused = 0, used = 0;

    for (guint r = 0; r < rounds; r++) {
        driver_init(g, F_VERSION_1 | (r % 2 ? F_INDIRECT : 0) | (r % 3 ? F_EVENT_IDX : 0), 1, 16);
        /* Random descriptors pointing mostly near or into RAM. */
        for (guint i = 0; i < 16; i++) {
            guint64 addr;
            switch (g_test_rand_int_range(0, 6)) {
            case 0: case 4: case 5: addr = RAM_GPA + g_test_rand_int_range(0, RAM_SIZE - 128); break;
            case 1: addr = TABLE_GPA + 16 * g_test_rand_int_range(0, 8); break;
            case 2: addr = RAM_GPA + RAM_SIZE - g_test_rand_int_range(0, 64); break;
            default: addr = ((guint64) g_test_rand_int() << 32) | g_test_rand_int(); break;
            }
            guint32 len = g_test_rand_int_range(0, 8) ? g_test_rand_int_range(0, 128) : g_test_rand_int();
            guint16 flags = g_test_rand_int_range(0, 4) ? g_test_rand_int_range(0, 4)
                                                        : g_test_rand_int_range(0, 8);
            set_desc(g, g->q[0].desc, i, addr, len, flags, g_test_rand_int_range(0, 20));
            set_desc(g, TABLE_GPA, i % 8, RAM_GPA + g_test_rand_int_range(0, RAM_SIZE),
                     g_test_rand_int_range(0, 64), g_test_rand_int_range(0, 8),
                     g_test_rand_int_range(0, 10));
        }
        for (guint i = 0; i < 16; i++)
            w16(g, g->q[0].avail + 4 + 2 * i, g_test_rand_int_range(0, 18));
        w16(g, g->q[0].avail + 4 + 32, g_test_rand_int_range(0, 0x10000));    /* used_event */
        w16(g, g->q[0].avail, g_test_rand_int_range(0, 2));
        w16(g, g->q[0].avail + 2, g_test_rand_bit() ? g_test_rand_int_range(0, 17)
                                                    : g_test_rand_int_range(0, 0x10000));
        guint before = sink->chains;
        wr(g, R_QUEUE_NOTIFY, 0);
        used += sink->chains != before;
        refused += (rd(g, R_STATUS) & S_NEEDS_RESET) != 0;
        /* And random register writes. */
        for (guint i = 0; i < 4; i++) {
            static const unsigned sizes[] = { 1, 2, 4, 8 };
            guint64 off = g_test_rand_bit() ? 4 * g_test_rand_int_range(0, 0x40)
                                            : g_test_rand_int_range(0, FERRY_VIRTIO_MMIO_SIZE);
            if (off == R_QUEUE_SEL)
                continue;          /* keep the fake driver's bookkeeping simple */
            wr_sized(g, off, ((guint64) g_test_rand_int() << 32) | g_test_rand_int(),
                     sizes[g_test_rand_int_range(0, 4)]);
            wr(g, R_QUEUE_NOTIFY, 0);
        }
        check_guards(g);
        wr(g, R_ISR_ACK, 3);
    }
    g_test_message("%u rounds: %u with used chains, %u refused", rounds, used, refused);
    g_assert_cmpuint(used, >, 0);
    g_assert_cmpuint(refused, >, 0);
    guest_free(g);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

    g_test_add_func("/virtio/mmio/empty-slot", test_empty_slot);
    g_test_add_func("/virtio/mmio/identity", test_identity);
    g_test_add_func("/virtio/mmio/features", test_features);
    g_test_add_func("/virtio/mmio/reset", test_reset);
    g_test_add_func("/virtio/input/config", test_input_config);
    g_test_add_func("/virtio/input/power-button", test_input_power_button);
    g_test_add_func("/virtio/input/pending", test_input_pending);
    g_test_add_func("/virtio/input/no-interrupt", test_input_no_interrupt);
    g_test_add_func("/virtio/input/event-idx", test_input_event_idx);
    g_test_add_func("/virtio/input/indirect", test_input_indirect);
    g_test_add_func("/virtio/input/statusq", test_input_statusq);
    g_test_add_func("/virtio/input/threads", test_input_threads);
    g_test_add_func("/virtio/virtq/chains", test_virtq_chains);
    g_test_add_func("/virtio/hostile/desc-outside-ram", test_hostile_desc_outside_ram);
    g_test_add_func("/virtio/hostile/len-past-ram-end", test_hostile_len_past_end);
    g_test_add_func("/virtio/hostile/index-out-of-range", test_hostile_index_out_of_range);
    g_test_add_func("/virtio/hostile/loop", test_hostile_loop);
    g_test_add_func("/virtio/hostile/indirect", test_hostile_indirect);
    g_test_add_func("/virtio/hostile/avail-jump", test_hostile_avail_jump);
    g_test_add_func("/virtio/hostile/readable-after-writable", test_hostile_readable_after_writable);
    g_test_add_func("/virtio/hostile/queue-size", test_hostile_queue_size);
    g_test_add_func("/virtio/hostile/ring-addresses", test_hostile_ring_addresses);
    g_test_add_func("/virtio/hostile/register-access", test_hostile_register_access);
    g_test_add_func("/virtio/hostile/fuzz", test_hostile_fuzz);
    return g_test_run();
}

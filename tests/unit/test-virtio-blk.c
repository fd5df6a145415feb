/* test-virtio-blk.c: virtio-blk over virtio-mmio, driven by a fake guest
 * (a RAM buffer with guard bytes, registers through a FerryBus) over a raw
 * image file: every request type, hostile requests that must end in
 * VIRTIO_BLK_S_IOERR or _UNSUPP with no byte written outside RAM, a reset
 * with requests in flight; and the machines' wiring of hard disks (riscv
 * virt slots, the pc machine's virtio-mmio window and kernel command line). */
#include "../../devices/virtio/blk.h"
#include "../../devices/virtio/mmio.h"
#include "vm-private.h"

#include <string.h>
#include <glib/gstdio.h>

#define MMIO_BASE  0x10001000ULL
#define RAM_GPA    0x80000000ULL
#define RAM_SIZE   (1024 * 1024)
#define GUARD      4096
#define GUARD_BYTE 0xA5
#define QSIZE      16

#define DESC_GPA  (RAM_GPA + 0x1000)
#define AVAIL_GPA (RAM_GPA + 0x2000)
#define USED_GPA  (RAM_GPA + 0x3000)
#define HDR_GPA   (RAM_GPA + 0x4000)
#define STATUS_GPA (RAM_GPA + 0x5000)
#define DATA_GPA  (RAM_GPA + 0x10000)

#define DISK_SIZE (4 << 20)
#define SECTORS   (DISK_SIZE / 512)

enum {
    R_MAGIC = 0x000, R_DEVICE_ID = 0x008, R_DEV_FEAT = 0x010, R_DEV_FEAT_SEL = 0x014,
    R_DRV_FEAT = 0x020, R_DRV_FEAT_SEL = 0x024, R_QUEUE_SEL = 0x030, R_QUEUE_NUM = 0x038,
    R_QUEUE_READY = 0x044, R_QUEUE_NOTIFY = 0x050, R_ISR = 0x060, R_ISR_ACK = 0x064,
    R_STATUS = 0x070, R_DESC_LO = 0x080, R_DESC_HI = 0x084, R_DRIVER_LO = 0x090,
    R_DRIVER_HI = 0x094, R_DEVICE_LO = 0x0a0, R_DEVICE_HI = 0x0a4, R_CONFIG = 0x100,
};
enum { S_ACK = 1, S_DRIVER = 2, S_DRIVER_OK = 4, S_FEATURES_OK = 8, S_NEEDS_RESET = 64 };
enum { D_NEXT = 1, D_WRITE = 2 };
enum { T_IN = 0, T_OUT = 1, T_FLUSH = 4, T_GET_ID = 8, T_DISCARD = 11, T_WRITE_ZEROES = 13 };
enum { BLK_OK = 0, BLK_IOERR = 1, BLK_UNSUPP = 2 };

#define F_SEG_MAX      (1ULL << 2)
#define F_RO           (1ULL << 5)
#define F_BLK_SIZE     (1ULL << 6)
#define F_FLUSH        (1ULL << 9)
#define F_DISCARD      (1ULL << 13)
#define F_WRITE_ZEROES (1ULL << 14)
#define F_VERSION_1    (1ULL << 32)

typedef struct {
    char *dir, *path;
    FerryBlock *bs;
    guint8 *block, *ram;
    FerryGuestMemory mem;
    FerryIrq irq;
    FerryBus *bus;
    FerryDevice *dev;
    FerryVirtioDevice *vdev;
    guint16 avail_idx, used_seen;
    guint64 offered;
} Guest;

static void
irq_set(FerryIrq *irq, gboolean level)
{
}

static guint8 *
gp(Guest *g, guint64 gpa)
{
    g_assert_cmpuint(gpa, >=, RAM_GPA);
    g_assert_cmpuint(gpa, <, RAM_GPA + RAM_SIZE);
    return g->ram + (gpa - RAM_GPA);
}

static void w16(Guest *g, guint64 a, guint16 v) { v = GUINT16_TO_LE(v); memcpy(gp(g, a), &v, 2); }
static void w32(Guest *g, guint64 a, guint32 v) { v = GUINT32_TO_LE(v); memcpy(gp(g, a), &v, 4); }
static void w64(Guest *g, guint64 a, guint64 v) { v = GUINT64_TO_LE(v); memcpy(gp(g, a), &v, 8); }
static guint16 r16(Guest *g, guint64 a) { guint16 v; memcpy(&v, gp(g, a), 2); return GUINT16_FROM_LE(v); }
static guint32 r32(Guest *g, guint64 a) { guint32 v; memcpy(&v, gp(g, a), 4); return GUINT32_FROM_LE(v); }

static guint32
rd(Guest *g, guint64 off, unsigned size)
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
driver_init(Guest *g, guint64 features)
{
    wr(g, R_STATUS, 0);
    wr(g, R_STATUS, S_ACK | S_DRIVER);
    wr(g, R_DEV_FEAT_SEL, 0);
    g->offered = rd(g, R_DEV_FEAT, 4);
    wr(g, R_DEV_FEAT_SEL, 1);
    g->offered |= (guint64) rd(g, R_DEV_FEAT, 4) << 32;
    features &= g->offered;
    wr(g, R_DRV_FEAT_SEL, 0);
    wr(g, R_DRV_FEAT, (guint32) features);
    wr(g, R_DRV_FEAT_SEL, 1);
    wr(g, R_DRV_FEAT, features >> 32);
    wr(g, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
    g_assert_cmpuint(rd(g, R_STATUS, 4) & S_FEATURES_OK, ==, S_FEATURES_OK);
    memset(gp(g, DESC_GPA), 0, 0x3000);
    wr(g, R_QUEUE_SEL, 0);
    wr(g, R_QUEUE_NUM, QSIZE);
    wr(g, R_DESC_LO, (guint32) DESC_GPA);
    wr(g, R_DESC_HI, DESC_GPA >> 32);
    wr(g, R_DRIVER_LO, (guint32) AVAIL_GPA);
    wr(g, R_DRIVER_HI, AVAIL_GPA >> 32);
    wr(g, R_DEVICE_LO, (guint32) USED_GPA);
    wr(g, R_DEVICE_HI, USED_GPA >> 32);
    wr(g, R_QUEUE_READY, 1);
    wr(g, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    g->avail_idx = g->used_seen = 0;
}

static Guest *
guest_new(gboolean read_only, guint64 features)
{
    Guest *g = g_new0(Guest, 1);
    g_autoptr(GError) error = NULL;

    g->dir = g_dir_make_tmp("blk-XXXXXX", NULL);
    g->path = g_build_filename(g->dir, "disk.raw", NULL);
    g_autofree guint8 *data = g_malloc(DISK_SIZE);
    for (gsize i = 0; i < DISK_SIZE; i++)
        data[i] = i * 7 + (i >> 9);
    g_assert_true(g_file_set_contents(g->path, (char *) data, DISK_SIZE, NULL));
    g->bs = ferry_block_open(g->path, "raw", read_only ? FERRY_BLOCK_READ_ONLY : 0, &error);
    g_assert_no_error(error);

    g->block = g_malloc(RAM_SIZE + 2 * GUARD);
    memset(g->block, GUARD_BYTE, RAM_SIZE + 2 * GUARD);
    g->ram = g->block + GUARD;
    memset(g->ram, 0, RAM_SIZE);
    g_assert_true(ferry_guest_memory_add(&g->mem, RAM_GPA, RAM_SIZE, g->ram));
    g->irq = (FerryIrq) { irq_set, g, 1 };
    g->vdev = ferry_virtio_blk_new(g->bs, "ferry-test-serial-0123456789", FALSE);
    g->dev = ferry_virtio_mmio_new("virtio-mmio@10001000", g->vdev, &g->irq, &g->mem);
    g->bus = ferry_bus_new("mmio");
    g_assert_true(ferry_bus_map(g->bus, MMIO_BASE, FERRY_VIRTIO_MMIO_SIZE, g->dev));
    driver_init(g, features);
    return g;
}

static void
guest_free(Guest *g)
{
    for (gsize i = 0; i < GUARD; i++) {
        g_assert_cmphex(g->block[i], ==, GUARD_BYTE);
        g_assert_cmphex(g->block[GUARD + RAM_SIZE + i], ==, GUARD_BYTE);
    }
    ferry_virtio_blk_drain(g->vdev);
    ferry_bus_free(g->bus);
    ferry_device_free(g->dev);
    ferry_block_close(g->bs);
    g_unlink(g->path);
    g_rmdir(g->dir);
    g_free(g->path);
    g_free(g->dir);
    g_free(g->block);
    g_free(g);
}

static void
set_desc(Guest *g, guint i, guint64 addr, guint32 len, guint16 flags, guint16 next)
{
    guint64 d = DESC_GPA + 16 * (guint64) i;
    w64(g, d, addr);
    w32(g, d + 8, len);
    w16(g, d + 12, flags);
    w16(g, d + 14, next);
}

/* Posts the chain at descriptor 0, notifies, waits for the used entry and
 * returns its length; *status is the status byte. */
static guint32
run(Guest *g)
{
    w16(g, AVAIL_GPA + 4 + 2 * (g->avail_idx % QSIZE), 0);
    g->avail_idx++;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    w16(g, AVAIL_GPA + 2, g->avail_idx);
    wr(g, R_QUEUE_NOTIFY, 0);
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    for (;;) {
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (r16(g, USED_GPA + 2) != g->used_seen)
            break;
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(200);
    }
    guint64 e = USED_GPA + 4 + 8 * (guint64) (g->used_seen % QSIZE);
    g->used_seen++;
    g_assert_cmpuint(r32(g, e), ==, 0);
    wr(g, R_ISR_ACK, rd(g, R_ISR, 4));
    return r32(g, e + 4);
}

static void
header(Guest *g, guint32 type, guint64 sector)
{
    w32(g, HDR_GPA, type);
    w32(g, HDR_GPA + 4, 0);
    w64(g, HDR_GPA + 8, sector);
}

/* header | data (device-readable for OUT, writable for IN) | status */
static guint8
request(Guest *g, guint32 type, guint64 sector, guint32 len, gboolean data_writable, guint32 *used_len)
{
    header(g, type, sector);
    *gp(g, STATUS_GPA) = 0xEE;
    set_desc(g, 0, HDR_GPA, 16, D_NEXT, 1);
    if (len) {
        set_desc(g, 1, DATA_GPA, len, D_NEXT | (data_writable ? D_WRITE : 0), 2);
        set_desc(g, 2, STATUS_GPA, 1, D_WRITE, 0);
    } else {
        set_desc(g, 1, STATUS_GPA, 1, D_WRITE, 0);
    }
    guint32 l = run(g);
    if (used_len)
        *used_len = l;
    return *gp(g, STATUS_GPA);
}

static GBytes *
file_bytes(Guest *g)
{
    char *d;
    gsize n;
    g_assert_true(g_file_get_contents(g->path, &d, &n, NULL));
    return g_bytes_new_take(d, n);
}

static void
test_config(void)
{
    Guest *g = guest_new(FALSE, F_VERSION_1);

    g_assert_cmphex(rd(g, R_MAGIC, 4), ==, 0x74726976);
    g_assert_cmpuint(rd(g, R_DEVICE_ID, 4), ==, 2);
    g_assert_cmphex(g->offered & (F_SEG_MAX | F_BLK_SIZE | F_FLUSH | F_DISCARD | F_WRITE_ZEROES), ==,
                    F_SEG_MAX | F_BLK_SIZE | F_FLUSH | F_DISCARD | F_WRITE_ZEROES);
    g_assert_cmphex(g->offered & F_RO, ==, 0);
    guint64 cap = rd(g, R_CONFIG, 4) | (guint64) rd(g, R_CONFIG + 4, 4) << 32;
    g_assert_cmpuint(cap, ==, SECTORS);
    g_assert_cmpuint(rd(g, R_CONFIG + 12, 4), ==, FERRY_VIRTIO_BLK_QUEUE_SIZE - 2);   /* seg_max */
    g_assert_cmpuint(rd(g, R_CONFIG + 20, 4), ==, 512);                               /* blk_size */
    g_assert_cmpuint(rd(g, R_CONFIG + 40, 4), ==, 16);                                /* max_discard_seg */
    g_assert_cmpuint(rd(g, R_CONFIG + 200, 4), ==, 0);                                /* past the end */
    guest_free(g);
}

static void
test_read_write_flush(void)
{
    Guest *g = guest_new(FALSE, F_VERSION_1 | F_FLUSH);
    guint32 used;

    /* Read 8 KiB at sector 3: the file's bytes, all of them. */
    g_assert_cmpuint(request(g, T_IN, 3, 8192, TRUE, &used), ==, BLK_OK);
    g_assert_cmpuint(used, ==, 8192 + 1);
    g_autoptr(GBytes) before = file_bytes(g);
    g_assert_cmpmem(gp(g, DATA_GPA), 8192, (const guint8 *) g_bytes_get_data(before, NULL) + 3 * 512, 8192);

    /* Write 4 KiB at sector 100, flush, and find it in the file. */
    for (guint i = 0; i < 4096; i++)
        *gp(g, DATA_GPA + i) = 0x30 + i % 40;
    g_assert_cmpuint(request(g, T_OUT, 100, 4096, FALSE, &used), ==, BLK_OK);
    g_assert_cmpuint(used, ==, 1);
    g_assert_cmpuint(request(g, T_FLUSH, 0, 0, FALSE, NULL), ==, BLK_OK);
    g_autoptr(GBytes) after = file_bytes(g);
    g_assert_cmpmem(gp(g, DATA_GPA), 4096, (const guint8 *) g_bytes_get_data(after, NULL) + 100 * 512, 4096);

    /* The last sector can be read; one past it cannot. */
    g_assert_cmpuint(request(g, T_IN, SECTORS - 1, 512, TRUE, NULL), ==, BLK_OK);
    g_assert_cmpuint(request(g, T_IN, SECTORS - 1, 1024, TRUE, NULL), ==, BLK_IOERR);
    g_assert_cmpuint(request(g, T_OUT, SECTORS, 512, FALSE, NULL), ==, BLK_IOERR);
    /* A sector number that overflows a byte offset. */
    g_assert_cmpuint(request(g, T_IN, G_MAXUINT64 / 256, 512, TRUE, NULL), ==, BLK_IOERR);
    g_assert_cmpuint(request(g, T_IN, G_MAXUINT64, 512, TRUE, NULL), ==, BLK_IOERR);
    /* Not whole sectors. */
    g_assert_cmpuint(request(g, T_OUT, 0, 100, FALSE, NULL), ==, BLK_IOERR);
    g_assert_cmpuint(request(g, T_IN, 0, 513, TRUE, NULL), ==, BLK_IOERR);
    /* Nothing to move is fine. */
    g_assert_cmpuint(request(g, T_IN, 5, 0, TRUE, NULL), ==, BLK_OK);
    g_autoptr(GBytes) final = file_bytes(g);
    g_assert_true(g_bytes_equal(after, final));
    g_assert_cmpuint(ferry_virtio_blk_get_completed(g->vdev), ==, 11);
    guest_free(g);
}

static void
test_get_id(void)
{
    Guest *g = guest_new(FALSE, F_VERSION_1);
    guint32 used;

    memset(gp(g, DATA_GPA), 0xEE, 64);
    g_assert_cmpuint(request(g, T_GET_ID, 0, 20, TRUE, &used), ==, BLK_OK);
    g_assert_cmpuint(used, ==, 21);
    /* 20 bytes, no terminator at full length (§5.2.6). */
    g_assert_cmpmem(gp(g, DATA_GPA), 20, "ferry-test-serial-01", 20);
    /* A short buffer gets what fits, nothing past it. */
    memset(gp(g, DATA_GPA), 0xEE, 64);
    g_assert_cmpuint(request(g, T_GET_ID, 0, 8, TRUE, &used), ==, BLK_OK);
    g_assert_cmpmem(gp(g, DATA_GPA), 8, "ferry-te", 8);
    g_assert_cmphex(*gp(g, DATA_GPA + 8), ==, 0xEE);
    guest_free(g);
}

static void
segment(Guest *g, guint i, guint64 sector, guint32 count, guint32 flags)
{
    w64(g, DATA_GPA + 16 * i, sector);
    w32(g, DATA_GPA + 16 * i + 8, count);
    w32(g, DATA_GPA + 16 * i + 12, flags);
}

static void
test_discard_write_zeroes(void)
{
    Guest *g = guest_new(FALSE, F_VERSION_1 | F_DISCARD | F_WRITE_ZEROES);

    /* Two ranges zeroed; the bytes between them stay. */
    segment(g, 0, 8, 8, 0);
    segment(g, 1, 32, 16, 1);          /* unmap is allowed for write-zeroes */
    g_assert_cmpuint(request(g, T_WRITE_ZEROES, 0, 32, FALSE, NULL), ==, BLK_OK);
    g_autoptr(GBytes) f = file_bytes(g);
    const guint8 *d = g_bytes_get_data(f, NULL);
    for (guint i = 8 * 512; i < 16 * 512; i++)
        g_assert_cmphex(d[i], ==, 0);
    for (guint i = 32 * 512; i < 48 * 512; i++)
        g_assert_cmphex(d[i], ==, 0);
    g_assert_cmphex(d[16 * 512 + 1], ==, (guint8) ((16 * 512 + 1) * 7 + 16));

    segment(g, 0, 64, 64, 0);
    g_assert_cmpuint(request(g, T_DISCARD, 0, 16, FALSE, NULL), ==, BLK_OK);
    /* Refused: unmap on a discard, unknown flags, out of range, too many
     * ranges, a partial range descriptor. */
    segment(g, 0, 64, 8, 1);
    g_assert_cmpuint(request(g, T_DISCARD, 0, 16, FALSE, NULL), ==, BLK_UNSUPP);
    segment(g, 0, 64, 8, 4);
    g_assert_cmpuint(request(g, T_WRITE_ZEROES, 0, 16, FALSE, NULL), ==, BLK_UNSUPP);
    segment(g, 0, SECTORS - 4, 8, 0);
    g_assert_cmpuint(request(g, T_WRITE_ZEROES, 0, 16, FALSE, NULL), ==, BLK_IOERR);
    segment(g, 0, G_MAXUINT64 - 2, 8, 0);
    g_assert_cmpuint(request(g, T_DISCARD, 0, 16, FALSE, NULL), ==, BLK_IOERR);
    for (guint i = 0; i < 17; i++)
        segment(g, i, i * 8, 8, 0);
    g_assert_cmpuint(request(g, T_DISCARD, 0, 17 * 16, FALSE, NULL), ==, BLK_IOERR);
    g_assert_cmpuint(request(g, T_DISCARD, 0, 20, FALSE, NULL), ==, BLK_IOERR);
    guest_free(g);

    /* Without the features negotiated: unsupported. */
    g = guest_new(FALSE, F_VERSION_1);
    segment(g, 0, 8, 8, 0);
    g_assert_cmpuint(request(g, T_DISCARD, 0, 16, FALSE, NULL), ==, BLK_UNSUPP);
    g_assert_cmpuint(request(g, T_WRITE_ZEROES, 0, 16, FALSE, NULL), ==, BLK_UNSUPP);
    guest_free(g);
}

static void
test_read_only(void)
{
    Guest *g = guest_new(TRUE, F_VERSION_1 | F_RO | F_FLUSH | F_DISCARD);
    g_autoptr(GBytes) before = file_bytes(g);

    g_assert_cmphex(g->offered & (F_RO | F_DISCARD | F_WRITE_ZEROES), ==, F_RO);
    g_assert_cmpuint(request(g, T_IN, 0, 4096, TRUE, NULL), ==, BLK_OK);
    g_assert_cmpuint(request(g, T_OUT, 0, 4096, FALSE, NULL), ==, BLK_IOERR);
    segment(g, 0, 8, 8, 0);
    g_assert_cmpuint(request(g, T_DISCARD, 0, 16, FALSE, NULL), ==, BLK_UNSUPP);
    g_assert_cmpuint(request(g, T_FLUSH, 0, 0, FALSE, NULL), ==, BLK_OK);
    g_autoptr(GBytes) after = file_bytes(g);
    g_assert_true(g_bytes_equal(before, after));
    guest_free(g);
}

static void
test_malformed(void)
{
    Guest *g = guest_new(FALSE, F_VERSION_1);
    guint32 used;

    /* Unknown type. */
    g_assert_cmpuint(request(g, 99, 0, 512, TRUE, NULL), ==, BLK_UNSUPP);
    g_assert_cmpuint(request(g, 10 /* GET_LIFETIME */, 0, 48, TRUE, NULL), ==, BLK_UNSUPP);
    /* A header of 8 bytes. */
    header(g, T_IN, 0);
    *gp(g, STATUS_GPA) = 0xEE;
    set_desc(g, 0, HDR_GPA, 8, D_NEXT, 1);
    set_desc(g, 1, STATUS_GPA, 1, D_WRITE, 0);
    run(g);
    g_assert_cmpuint(*gp(g, STATUS_GPA), ==, BLK_IOERR);
    /* No writable byte at all: nothing to write a status to; the chain
     * comes back empty and the device stays usable. */
    header(g, T_OUT, 0);
    set_desc(g, 0, HDR_GPA, 16, D_NEXT, 1);
    set_desc(g, 1, DATA_GPA, 512, 0, 0);
    used = run(g);
    g_assert_cmpuint(used, ==, 0);
    /* The header and status in one writable buffer: the header is not
     * device-readable, so it is missing. */
    header(g, T_IN, 0);
    set_desc(g, 0, HDR_GPA, 17, D_WRITE, 0);
    run(g);
    g_assert_cmpuint(*gp(g, HDR_GPA + 16), ==, BLK_IOERR);
    /* A read whose status byte shares the last data buffer: the data is
     * what precedes the last byte, so 511 bytes are not whole sectors. */
    header(g, T_IN, 0);
    set_desc(g, 0, HDR_GPA, 16, D_NEXT, 1);
    set_desc(g, 1, DATA_GPA, 512, D_WRITE, 0);
    run(g);
    g_assert_cmpuint(*gp(g, DATA_GPA + 511), ==, BLK_IOERR);
    /* ...and 513 bytes are one sector and a status. */
    set_desc(g, 1, DATA_GPA, 513, D_WRITE, 0);
    run(g);
    g_assert_cmpuint(*gp(g, DATA_GPA + 512), ==, BLK_OK);
    /* Data split over many small buffers. */
    header(g, T_IN, 7);
    set_desc(g, 0, HDR_GPA, 16, D_NEXT, 1);
    for (guint i = 0; i < 8; i++)
        set_desc(g, 1 + i, DATA_GPA + 1000 * i, 64, D_WRITE | D_NEXT, 2 + i);
    set_desc(g, 9, STATUS_GPA, 1, D_WRITE, 0);
    run(g);
    g_assert_cmpuint(*gp(g, STATUS_GPA), ==, BLK_OK);
    g_autoptr(GBytes) f = file_bytes(g);
    for (guint i = 0; i < 8; i++)
        g_assert_cmpmem(gp(g, DATA_GPA + 1000 * i), 64,
                        (const guint8 *) g_bytes_get_data(f, NULL) + 7 * 512 + 64 * i, 64);
    g_assert_cmpuint(rd(g, R_STATUS, 4) & S_NEEDS_RESET, ==, 0);
    guest_free(g);
}

/* A driver reset while requests run: the reset returns once they ended,
 * nothing is written to the rings afterwards, and the device works again. */
static void
test_reset_in_flight(void)
{
    Guest *g = guest_new(FALSE, F_VERSION_1);

    for (guint k = 0; k < 20; k++) {
        for (guint i = 0; i < 4; i++) {
            guint64 hdr = HDR_GPA + 32 * i;
            w32(g, hdr, T_IN);
            w64(g, hdr + 8, 64 * i);
            set_desc(g, 3 * i, hdr, 16, D_NEXT, 3 * i + 1);
            set_desc(g, 3 * i + 1, DATA_GPA + 0x10000 * i, 0x10000, D_WRITE | D_NEXT, 3 * i + 2);
            set_desc(g, 3 * i + 2, STATUS_GPA + i, 1, D_WRITE, 0);
            w16(g, AVAIL_GPA + 4 + 2 * i, 3 * i);
        }
        w16(g, AVAIL_GPA + 2, 4);
        wr(g, R_QUEUE_NOTIFY, 0);
        wr(g, R_STATUS, 0);
        /* Whatever finished before the reset; nothing after. */
        guint16 used = r16(g, USED_GPA + 2);
        g_assert_cmpuint(used, <=, 4);
        g_usleep(1000);
        g_assert_cmpuint(r16(g, USED_GPA + 2), ==, used);
        memset(gp(g, USED_GPA), 0, 0x100);
        driver_init(g, F_VERSION_1);
    }
    g_assert_cmpuint(request(g, T_IN, 0, 512, TRUE, NULL), ==, BLK_OK);
    guest_free(g);
}

/* ---- machines ------------------------------------------------------------- */

static char *
dummy_file(const char *dir, const char *name, gsize size)
{
    char *path = g_build_filename(dir, name, NULL);
    g_autofree char *zeros = g_malloc0(size);
    g_assert_true(g_file_set_contents(path, zeros, size, NULL));
    return path;
}

static FerryVm *
build(FerryVmConfig *c)
{
    g_autoptr(GError) error = NULL;
    FerryVm *vm = ferry_vm_new(c, NULL, NULL, NULL, &error);
    g_assert_no_error(error);
    /* What ferry_vm_start does before the accelerator: no CPU needed. */
    vm->serial_chr = ferry_chardev_new_none();
    vm->io_bus = ferry_bus_new("io");
    vm->mmio_bus = ferry_bus_new("mmio");
    g_assert_true(vm->machine_ops->build(vm, &error));
    g_assert_no_error(error);
    return vm;
}

static guint32
bus_rd(FerryVm *vm, guint64 addr)
{
    guint64 v = 0;
    ferry_bus_read(vm->mmio_bus, addr, 4, &v);
    return v;
}

static void
test_machine_riscv(void)
{
    g_autofree char *dir = g_dir_make_tmp("blkm-XXXXXX", NULL);
    g_autofree char *fw = dummy_file(dir, "fw.bin", 4096);
    g_autofree char *a = dummy_file(dir, "a.raw", 1 << 20);
    g_autofree char *c = dummy_file(dir, "c.raw", 2 << 20);
    FerryVmConfig config;

    ferry_vm_config_init(&config);
    config.arch = FERRY_ARCH_RISCV64;
    config.memory_bytes = 64 << 20;
    config.bios_path = fw;
    config.disks[0].path = a;
    config.disks[2].path = c;
    config.disks[2].readonly = TRUE;
    FerryVm *vm = build(&config);
    /* Slots 0..3 are hda..hdd; an empty disk slot is an empty transport. */
    g_assert_cmpuint(bus_rd(vm, 0x10001000 + 0x008), ==, 2);
    g_assert_cmpuint(bus_rd(vm, 0x10001000 + 0x100), ==, 2048);
    g_assert_cmpuint(bus_rd(vm, 0x10002000 + 0x008), ==, 0);
    g_assert_cmpuint(bus_rd(vm, 0x10003000 + 0x008), ==, 2);
    g_assert_cmpuint(bus_rd(vm, 0x10003000 + 0x100), ==, 4096);
    g_assert_cmphex(bus_rd(vm, 0x10003000 + 0x010) & F_RO, ==, F_RO);
    g_assert_cmpuint(bus_rd(vm, 0x10008000 + 0x008), ==, 18);       /* the power button */
    g_autofree char *info = ferry_monitor_execute(vm, "info block", &(gboolean) { FALSE });
    g_autofree char *want = g_strdup_printf("hda: %s (raw, rw)\nhdc: %s (raw, ro)\n", a, c);
    g_assert_cmpstr(info, ==, want);
    ferry_vm_free(vm);
    g_unlink(a);
    g_unlink(c);
    g_unlink(fw);
    g_rmdir(dir);
}

static void
test_machine_pc(void)
{
    g_autofree char *dir = g_dir_make_tmp("blkm-XXXXXX", NULL);
    g_autofree char *fw = dummy_file(dir, "bios.bin", 65536);
    g_autofree char *a = dummy_file(dir, "a.raw", 1 << 20);
    g_autofree char *d = dummy_file(dir, "d.raw", 1 << 20);
    FerryVmConfig config;

    ferry_vm_config_init(&config);
    config.bios_path = fw;
    config.cmdline = "console=ttyS0";
    config.disks[0].path = a;
    config.disks[3].path = d;
    FerryVm *vm = build(&config);
    g_assert_cmphex(bus_rd(vm, 0xD0000000), ==, 0x74726976);
    g_assert_cmpuint(bus_rd(vm, 0xD0000000 + 0x008), ==, 2);
    g_assert_cmphex(bus_rd(vm, 0xD0001000), ==, 0xFFFFFFFF);        /* nothing there */
    g_assert_cmpuint(bus_rd(vm, 0xD0003000 + 0x008), ==, 2);
    g_autofree char *cmdline = ferry_machine_pc_kernel_cmdline(vm);
    g_assert_cmpstr(cmdline, ==, "console=ttyS0 virtio_mmio.device=4K@0xd0000000:5 "
                                 "virtio_mmio.device=4K@0xd0003000:11");
    ferry_vm_free(vm);

    /* No disks: the command line is the config's. */
    config.disks[0].path = config.disks[3].path = NULL;
    config.cmdline = NULL;
    vm = build(&config);
    g_autofree char *plain = ferry_machine_pc_kernel_cmdline(vm);
    g_assert_cmpstr(plain, ==, "");
    ferry_vm_free(vm);
    g_unlink(a);
    g_unlink(d);
    g_unlink(fw);
    g_rmdir(dir);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    g_test_add_func("/virtio-blk/config", test_config);
    g_test_add_func("/virtio-blk/read-write-flush", test_read_write_flush);
    g_test_add_func("/virtio-blk/get-id", test_get_id);
    g_test_add_func("/virtio-blk/discard-write-zeroes", test_discard_write_zeroes);
    g_test_add_func("/virtio-blk/read-only", test_read_only);
    g_test_add_func("/virtio-blk/malformed", test_malformed);
    g_test_add_func("/virtio-blk/reset-in-flight", test_reset_in_flight);
    g_test_add_func("/virtio-blk/machine/riscv-virt", test_machine_riscv);
    g_test_add_func("/virtio-blk/machine/pc", test_machine_pc);
    return g_test_run();
}

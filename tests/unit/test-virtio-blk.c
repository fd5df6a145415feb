/* test-virtio-blk.c: virtio-blk over virtio-mmio, driven by a fake guest
 * (a RAM buffer with guard bytes, registers through a FerryBus) over a raw
 * image file: every request type, hostile requests that must end in
 * VIRTIO_BLK_S_IOERR or _UNSUPP with no byte written outside RAM, a reset
 * with requests in flight, writes completed early for a guest that flushes
 * (write-behind) and never early for one that does not; and the machines'
 * wiring of hard disks (riscv virt slots, the pc machine's virtio-mmio window
 * and kernel command line). */
#include "../../devices/virtio/blk.h"
#include "../../devices/virtio/mmio.h"
#include "../lib/ferry-test-gates.h"
#include "vm-private.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
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
    FerryBlockReq *gates;       /* gates_close() */
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

/* A guest whose disk is a raw image in a new folder under parent (NULL:
 * the temporary folder). */
static Guest *
guest_new_in(const char *parent, gboolean read_only, guint64 features)
{
    Guest *g = g_new0(Guest, 1);
    g_autoptr(GError) error = NULL;

    if (parent) {
        g->dir = g_build_filename(parent, "ferry-blk-XXXXXX", NULL);
        g_assert_nonnull(g_mkdtemp(g->dir));
    } else {
        g->dir = g_dir_make_tmp("blk-XXXXXX", NULL);
    }
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

static Guest *
guest_new(gboolean read_only, guint64 features)
{
    return guest_new_in(NULL, read_only, features);
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
    g_free(g->gates);
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

/* A read of 512 KiB or more runs as two halves on two threads (blk.c);
 * the guest sees one request with all of its bytes, across descriptors of
 * odd sizes, and the halves' boundary falls inside one of them. */
static void
test_big_read(void)
{
    Guest *g = guest_new(FALSE, F_VERSION_1 | F_FLUSH);
    const guint32 len[3] = { 1000, 400000, 786432 - 401000 };
    g_autoptr(GBytes) file = file_bytes(g);
    const guint8 *disk = g_bytes_get_data(file, NULL);

    for (guint round = 0; round < 3; round++) {
        /* sector 7; the disk's last 768 KiB; one sector past the end */
        guint64 sector = round == 0 ? 7 : SECTORS - 786432 / 512 + (round == 2);
        memset(gp(g, DATA_GPA), 0xEE, 786432);
        header(g, T_IN, sector);
        *gp(g, STATUS_GPA) = 0xEE;
        set_desc(g, 0, HDR_GPA, 16, D_NEXT, 1);
        guint64 addr = DATA_GPA;
        for (guint i = 0; i < 3; i++) {
            set_desc(g, 1 + i, addr, len[i], D_NEXT | D_WRITE, 2 + i);
            addr += len[i];
        }
        set_desc(g, 4, STATUS_GPA, 1, D_WRITE, 0);
        guint32 used = run(g);
        if (round == 2) {
            g_assert_cmpuint(*gp(g, STATUS_GPA), ==, BLK_IOERR);
            continue;
        }
        g_assert_cmpuint(*gp(g, STATUS_GPA), ==, BLK_OK);
        g_assert_cmpuint(used, ==, 786432 + 1);
        g_assert_cmpmem(gp(g, DATA_GPA), 786432, disk + sector * 512, 786432);
    }
    g_assert_cmpuint(ferry_virtio_blk_get_completed(g->vdev), ==, 3);
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

/* ---- write-behind --------------------------------------------------------------
 * With FLUSH negotiated a write completes once the block layer holds a copy
 * (devices/block/block.c, "write-behind"). What the guest must not be able
 * to tell: reads, overlapping writes, flushes and a close all see it. Gates
 * make "not yet written" deterministic: they hold every I/O thread of the
 * image, as a busy host disk would, until gates_open(). */

/* Holds every I/O thread of the guest's image (tests/lib/ferry-test-gates.h). */
static void
guest_gates_close(Guest *g)
{
    g_free(g->gates);
    g->gates = gates_close(g->bs);
}

/* Request slot i of up to 5 posted together: descriptors 3i..3i+2, header
 * at HDR_GPA + 32 i, status byte at STATUS_GPA + i; no data descriptor
 * when len is 0 (a flush). Posted, not notified. */
static void
post(Guest *g, guint i, guint32 type, guint64 sector, guint64 data_gpa, guint32 len)
{
    guint64 hdr = HDR_GPA + 32 * i;

    g_assert_cmpuint(i, <, QSIZE / 3);
    w32(g, hdr, type);
    w32(g, hdr + 4, 0);
    w64(g, hdr + 8, sector);
    *gp(g, STATUS_GPA + i) = 0xEE;
    set_desc(g, 3 * i, hdr, 16, D_NEXT, len ? 3 * i + 1 : 3 * i + 2);
    if (len)
        set_desc(g, 3 * i + 1, data_gpa, len, D_NEXT | (type == T_IN ? D_WRITE : 0), 3 * i + 2);
    set_desc(g, 3 * i + 2, STATUS_GPA + i, 1, D_WRITE, 0);
    w16(g, AVAIL_GPA + 4 + 2 * (g->avail_idx % QSIZE), 3 * i);
    g->avail_idx++;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    w16(g, AVAIL_GPA + 2, g->avail_idx);
}

/* Chains the device has given back and the guest has not counted yet. */
static guint16
used_new(Guest *g)
{
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return (guint16) (r16(g, USED_GPA + 2) - g->used_seen);
}

/* Waits for n more used chains (10 s at most: a hang is a failure). It
 * looks at once and often, as a guest's interrupt would: what the tests
 * check right after a completion must not get extra time to settle. */
static void
wait_used(Guest *g, guint16 n)
{
    gint64 start = g_get_monotonic_time();
    while (used_new(g) < n) {
        gint64 now = g_get_monotonic_time();
        g_assert_cmpint(now - start, <, 10 * G_USEC_PER_SEC);
        if (now - start < 20000)
            g_thread_yield();
        else
            g_usleep(200);
    }
    g_assert_cmpuint(used_new(g), ==, n);
    g->used_seen += n;
    wr(g, R_ISR_ACK, rd(g, R_ISR, 4));
}

/* Bytes for disk offset off in round seed: a misplaced byte shows. */
static guint8
pattern(guint seed, guint64 off)
{
    return (guint8) (seed * 101 + off * 31 + (off >> 9) + 1);
}

static void
fill_pattern(Guest *g, guint64 gpa, guint64 disk_off, gsize len, guint seed)
{
    guint8 *p = gp(g, gpa);
    for (gsize i = 0; i < len; i++)
        p[i] = pattern(seed, disk_off + i);
}

/* The file's bytes, read with plain pread: what is on the host's disk. */
static void
file_pread(Guest *g, guint64 offset, guint8 *buf, gsize len)
{
    int fd = open(g->path, O_RDONLY | O_CLOEXEC);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pread(fd, buf, len, offset), ==, (gssize) len);
    close(fd);
}

static void
assert_pattern(const guint8 *p, guint64 disk_off, gsize len, guint seed)
{
    for (gsize i = 0; i < len; i++)
        if (p[i] != pattern(seed, disk_off + i))
            g_error("byte %" G_GUINT64_FORMAT " is 0x%02x, round %u wrote 0x%02x",
                    disk_off + i, p[i], seed, pattern(seed, disk_off + i));
}

/* A read right after a write sees the new data, also one that covers only
 * part of the write, and also when the guest reused its buffer. */
static void
test_wb_read_after_write(void)
{
    enum { LEN = 768 << 10 };
    Guest *g = guest_new(FALSE, F_VERSION_1 | F_FLUSH);
    g_autoptr(GBytes) before = file_bytes(g);
    const guint8 *old = g_bytes_get_data(before, NULL);

    for (guint round = 1; round <= 4; round++) {
        guint64 off = (round % 2) * 512 * 1024;
        guest_gates_close(g);
        fill_pattern(g, DATA_GPA, off, LEN, round);
        g_assert_cmpuint(request(g, T_OUT, off / 512, LEN, FALSE, NULL), ==, BLK_OK);
        memset(gp(g, DATA_GPA), 0, LEN);
        /* The last 4 KiB of the write; 4 KiB across its end. */
        post(g, 0, T_IN, (off + LEN - 4096) / 512, DATA_GPA, 4096);
        post(g, 1, T_IN, (off + LEN - 4096) / 512, DATA_GPA + 65536, 8192);
        GThread *opener = g_thread_new("open-gates", open_later, NULL);
        wr(g, R_QUEUE_NOTIFY, 0);
        wait_used(g, 2);
        g_thread_join(opener);
        g_assert_cmpuint(*gp(g, STATUS_GPA), ==, BLK_OK);
        g_assert_cmpuint(*gp(g, STATUS_GPA + 1), ==, BLK_OK);
        assert_pattern(gp(g, DATA_GPA), off + LEN - 4096, 4096, round);
        assert_pattern(gp(g, DATA_GPA + 65536), off + LEN - 4096, 4096, round);
        guint64 past = off + LEN;
        if (round % 2)
            g_assert_cmpmem(gp(g, DATA_GPA + 65536 + 4096), 4096, old + past, 4096);
        else
            assert_pattern(gp(g, DATA_GPA + 65536 + 4096), past, 4096, round - 1);
    }
    guest_free(g);
}

/* Keeps the image file busy: one long write past the disk's end, during
 * which the kernel holds the file's lock, so the block layer's writes wait
 * for it and only a FLUSH (an fsync, which does not take that lock on
 * tmpfs) could finish meanwhile. */
static gpointer
hog_file(gpointer data)
{
    Guest *g = data;
    gsize len = 48 << 20;
    g_autofree guint8 *junk = g_malloc0(len);
    int fd = open(g->path, O_WRONLY | O_CLOEXEC);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pwrite(fd, junk, len, DISK_SIZE), ==, (gssize) len);
    close(fd);
    return NULL;
}

/* Two overlapping writes, the second sent once the first completed: the
 * second's bytes are the ones that stay, in the guest's reads and in the
 * file after a flush. The second is small and lies on the first's tail.
 * The kernel writes one file one write at a time and the I/O threads take
 * them in order, so had the second not waited it would still land last
 * unless its thread got to the kernel first: hog_file keeps a CPU and the
 * file busy meanwhile, as other programs on the host would, which makes
 * that common enough for 16 rounds to notice. (test-qcow2's
 * /block/write-behind/write-waits checks the same every time, one layer
 * down.) */
static void
test_wb_overlapping_writes(void)
{
    enum { LEN = 768 << 10, TAIL = 8192 };
    const char *shm = g_file_test("/dev/shm", G_FILE_TEST_IS_DIR) ? "/dev/shm" : NULL;
    Guest *g = guest_new_in(shm, FALSE, F_VERSION_1 | F_FLUSH);
    g_autofree guint8 *f = g_malloc(LEN);

    for (guint round = 1; round <= 16; round++) {
        guint a = 2 * round, b = 2 * round + 1;
        guest_gates_close(g);
        fill_pattern(g, DATA_GPA, 0, LEN, a);
        g_assert_cmpuint(request(g, T_OUT, 0, LEN, FALSE, NULL), ==, BLK_OK);
        fill_pattern(g, DATA_GPA, LEN - TAIL, TAIL, b);
        post(g, 0, T_OUT, (LEN - TAIL) / 512, DATA_GPA, TAIL);
        GThread *opener = g_thread_new("open-gates", open_later, NULL);
        wr(g, R_QUEUE_NOTIFY, 0);
        GThread *hog = g_thread_new("hog", hog_file, g);
        wait_used(g, 1);
        g_thread_join(opener);
        g_thread_join(hog);
        g_assert_cmpuint(*gp(g, STATUS_GPA), ==, BLK_OK);
        g_assert_cmpuint(request(g, T_IN, 0, LEN, TRUE, NULL), ==, BLK_OK);
        assert_pattern(gp(g, DATA_GPA), 0, LEN - TAIL, a);
        assert_pattern(gp(g, DATA_GPA + LEN - TAIL), LEN - TAIL, TAIL, b);
        g_assert_cmpuint(request(g, T_FLUSH, 0, 0, FALSE, NULL), ==, BLK_OK);
        file_pread(g, 0, f, LEN);
        assert_pattern(f, 0, LEN - TAIL, a);
        assert_pattern(f + LEN - TAIL, LEN - TAIL, TAIL, b);
    }
    guest_free(g);
}

/* When a FLUSH completes, the file holds every write completed before it:
 * three large writes, still queued when the flush comes, and held back by
 * the host (hog_file) once they start. On tmpfs when there is one: there
 * a flush costs nothing, while on a disk its fdatasync may well take longer
 * than the writes, and would hide a flush that did not wait. */
static void
test_wb_flush_reaches_file(void)
{
    enum { LEN = 960 << 10, N = 3 };
    const char *shm = g_file_test("/dev/shm", G_FILE_TEST_IS_DIR) ? "/dev/shm" : NULL;
    Guest *g = guest_new_in(shm, FALSE, F_VERSION_1 | F_FLUSH);
    g_autofree guint8 *f = g_malloc(N * LEN);

    g_assert_cmpuint(N + 1, <=, FERRY_BLOCK_WORKERS);
    for (guint round = 1; round <= 4; round++) {
        guest_gates_close(g);
        for (guint i = 0; i < N; i++) {
            fill_pattern(g, DATA_GPA, i * LEN, LEN, round + i);
            g_assert_cmpuint(request(g, T_OUT, i * LEN / 512, LEN, FALSE, NULL), ==, BLK_OK);
        }
        post(g, 0, T_FLUSH, 0, 0, 0);
        wr(g, R_QUEUE_NOTIFY, 0);
        GThread *hog = g_thread_new("hog", hog_file, g);
        g_usleep(2000);
        gates_open();
        wait_used(g, 1);
        for (guint i = 0; i < N; i++)
            file_pread(g, i * LEN, f + i * LEN, LEN);
        g_assert_cmpuint(*gp(g, STATUS_GPA), ==, BLK_OK);
        for (guint i = 0; i < N; i++)
            assert_pattern(f + i * LEN, i * LEN, LEN, round + i);
        g_thread_join(hog);
    }
    /* And with nothing queued. */
    fill_pattern(g, DATA_GPA, 0, LEN, 9);
    g_assert_cmpuint(request(g, T_OUT, 0, LEN, FALSE, NULL), ==, BLK_OK);
    g_assert_cmpuint(request(g, T_FLUSH, 0, 0, FALSE, NULL), ==, BLK_OK);
    file_pread(g, 0, f, LEN);
    assert_pattern(f, 0, LEN, 9);
    guest_free(g);
}

/* A write the guest saw complete fails later (here: beyond the process's
 * file size limit, pwrite gives EFBIG): the next FLUSH says IOERR, the one
 * after is OK again, and the disk goes on working. */
static void
test_wb_late_error(void)
{
    Guest *g = guest_new(FALSE, F_VERSION_1 | F_FLUSH);
    struct rlimit saved, low;
    guint8 f[4096];

    g_assert_cmpint(getrlimit(RLIMIT_FSIZE, &saved), ==, 0);
    low = saved;
    low.rlim_cur = DISK_SIZE / 2;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    g_assert_cmpint(setrlimit(RLIMIT_FSIZE, &low), ==, 0);

    fill_pattern(g, DATA_GPA, 3 << 20, 4096, 1);
    g_assert_cmpuint(request(g, T_OUT, (3 << 20) / 512, 4096, FALSE, NULL), ==, BLK_OK);
    fill_pattern(g, DATA_GPA, 0, 4096, 1);
    g_assert_cmpuint(request(g, T_OUT, 0, 4096, FALSE, NULL), ==, BLK_OK);
    g_assert_cmpuint(request(g, T_FLUSH, 0, 0, FALSE, NULL), ==, BLK_IOERR);
    g_assert_cmpuint(request(g, T_FLUSH, 0, 0, FALSE, NULL), ==, BLK_OK);
    /* The write below the limit is there. */
    file_pread(g, 0, f, sizeof(f));
    assert_pattern(f, 0, sizeof(f), 1);

    g_assert_cmpint(setrlimit(RLIMIT_FSIZE, &saved), ==, 0);
    signal(SIGXFSZ, old_handler);
    /* The guest writes again (as Linux retries) and this time it sticks. */
    fill_pattern(g, DATA_GPA, 3 << 20, 4096, 2);
    g_assert_cmpuint(request(g, T_OUT, (3 << 20) / 512, 4096, FALSE, NULL), ==, BLK_OK);
    g_assert_cmpuint(request(g, T_FLUSH, 0, 0, FALSE, NULL), ==, BLK_OK);
    file_pread(g, 3 << 20, f, sizeof(f));
    assert_pattern(f, 3 << 20, sizeof(f), 2);
    guest_free(g);
}

/* Without FLUSH the guest has no cache to flush: a write completes only
 * once the file holds it, even while the host is busy. */
static void
test_write_through_without_flush(void)
{
    enum { LEN = 256 << 10 };
    Guest *g = guest_new(FALSE, F_VERSION_1);
    g_autofree guint8 *f = g_malloc(LEN);

    g_assert_cmphex(g->offered & F_FLUSH, ==, F_FLUSH);
    for (guint round = 1; round <= 4; round++) {
        guint64 off = round * LEN;
        guest_gates_close(g);
        fill_pattern(g, DATA_GPA, off, LEN, round);
        post(g, 0, T_OUT, off / 512, DATA_GPA, LEN);
        GThread *opener = g_thread_new("open-gates", open_later, NULL);
        wr(g, R_QUEUE_NOTIFY, 0);
        /* Whenever the guest sees it complete, it is in the file. */
        if (used_new(g)) {
            file_pread(g, off, f, LEN);
            assert_pattern(f, off, LEN, round);
        }
        wait_used(g, 1);
        file_pread(g, off, f, LEN);
        assert_pattern(f, off, LEN, round);
        g_assert_cmpuint(*gp(g, STATUS_GPA), ==, BLK_OK);
        g_thread_join(opener);
    }
    guest_free(g);
}

/* Writes still pending when the device and the image close (no flush) are
 * all in the file afterwards. */
static void
test_wb_close_keeps_data(void)
{
    enum { LEN = 512 << 10 };
    Guest *g = guest_new(FALSE, F_VERSION_1 | F_FLUSH);
    g_autofree guint8 *f = g_malloc(DISK_SIZE);

    guest_gates_close(g);
    for (guint i = 0; i < 6; i++) {
        fill_pattern(g, DATA_GPA, i * LEN, LEN, i + 1);
        g_assert_cmpuint(request(g, T_OUT, i * LEN / 512, LEN, FALSE, NULL), ==, BLK_OK);
    }
    gates_open();
    ferry_virtio_blk_drain(g->vdev);
    ferry_block_close(g_steal_pointer(&g->bs));
    file_pread(g, 0, f, DISK_SIZE);
    for (guint i = 0; i < 6; i++)
        assert_pattern(f + i * LEN, i * LEN, LEN, i + 1);
    guest_free(g);
}

/* Reads posted before an overlapping write are not ordered after it; they
 * may hold every I/O thread of the image, and still the disk goes on (a
 * guest's fio randrw does this all day). */
static void
test_wb_earlier_reads(void)
{
    Guest *g = guest_new(FALSE, F_VERSION_1 | F_FLUSH);
    guint8 want[4096];

    for (guint round = 1; round <= 3; round++) {
        guest_gates_close(g);
        for (guint i = 0; i < 4; i++)
            post(g, i, T_IN, 8, DATA_GPA + 65536 * (i + 1), 4096);
        fill_pattern(g, DATA_GPA, 8 * 512, 4096, round);
        memcpy(want, gp(g, DATA_GPA), sizeof(want));
        post(g, 4, T_OUT, 8, DATA_GPA, 4096);
        GThread *opener = g_thread_new("open-gates", open_later, NULL);
        wr(g, R_QUEUE_NOTIFY, 0);
        wait_used(g, 5);
        g_thread_join(opener);
        for (guint i = 0; i < 5; i++)
            g_assert_cmpuint(*gp(g, STATUS_GPA + i), ==, BLK_OK);
        g_assert_cmpuint(request(g, T_IN, 8, 4096, TRUE, NULL), ==, BLK_OK);
        g_assert_cmpmem(gp(g, DATA_GPA), 4096, want, 4096);
    }
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
    g_test_add_func("/virtio-blk/big-read", test_big_read);
    g_test_add_func("/virtio-blk/get-id", test_get_id);
    g_test_add_func("/virtio-blk/discard-write-zeroes", test_discard_write_zeroes);
    g_test_add_func("/virtio-blk/read-only", test_read_only);
    g_test_add_func("/virtio-blk/malformed", test_malformed);
    g_test_add_func("/virtio-blk/reset-in-flight", test_reset_in_flight);
    g_test_add_func("/virtio-blk/write-behind/read-after-write", test_wb_read_after_write);
    g_test_add_func("/virtio-blk/write-behind/overlapping-writes", test_wb_overlapping_writes);
    g_test_add_func("/virtio-blk/write-behind/flush-reaches-file", test_wb_flush_reaches_file);
    g_test_add_func("/virtio-blk/write-behind/late-error-fails-flush", test_wb_late_error);
    g_test_add_func("/virtio-blk/write-behind/close-keeps-data", test_wb_close_keeps_data);
    g_test_add_func("/virtio-blk/write-behind/earlier-reads", test_wb_earlier_reads);
    g_test_add_func("/virtio-blk/write-through-without-flush", test_write_through_without_flush);
    g_test_add_func("/virtio-blk/machine/riscv-virt", test_machine_riscv);
    g_test_add_func("/virtio-blk/machine/pc", test_machine_pc);
    return g_test_run();
}

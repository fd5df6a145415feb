/* block-host.c: host-side helper of tests/bench/block-host.sh. Drives Ferry's
 * block layer (devices/block/block.h) directly, no VM, no CPU emulation.
 * Built by the script with cc against build/devices/block/libferry-block.a.
 *
 *   block-host bench FORMAT FILE MODE RW SIZE STEP COUNT [DATA_DIR]
 *       FORMAT raw|qcow2|overlay (overlay: FILE is the raw base, a fresh overlay
 *       is made in DATA_DIR, as `ferryctl run --snapshot` does). MODE sync
 *       (ferry_block_submit in this thread: the driver alone) or async
 *       (ferry_block_submit_async and a wait for done: the worker-thread path
 *       virtio-blk uses). RW read|write. COUNT requests of SIZE bytes at queue
 *       depth 1, at offsets 0, STEP, 2*STEP, ... modulo the image size: the
 *       pattern of `qemu-img bench -s SIZE -S STEP -c COUNT -d 1`. The buffer
 *       holds 0xa5 bytes (qemu-img bench --pattern=0xa5). No flush in the timed
 *       part, none after it (qemu-img bench's "Run completed" excludes its close).
 *       Prints "seconds=T" for the request loop alone (open/close excluded).
 *   block-host overlay-create BASE DATA_DIR N
 *       N times: ferry_overlay_open(BASE, raw, DATA_DIR/i, "hda") in a new folder
 *       (timed: creates and fsyncs the empty overlay), then close (not timed).
 *       Prints one time in seconds per line.
 *   block-host commit BASE DATA_DIR MIB
 *       Opens an overlay over the raw BASE, writes MIB MiB at offset 0 in 1 MiB
 *       requests, flushes (not timed), then times ferry_overlay_commit (marker,
 *       copy into BASE, fdatasync of BASE, new empty overlay). Prints seconds=T.
 */
#include "block.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void
die(const char *what, GError *err)
{
    fprintf(stderr, "block-host: %s: %s\n", what, err ? err->message : g_strerror(errno));
    exit(1);
}

typedef struct {
    GMutex lock;
    GCond cond;
    gboolean done;
    int result;
} Wait;

static void
req_done(FerryBlockReq *req, int result)
{
    Wait *w = req->opaque;
    g_mutex_lock(&w->lock);
    w->result = result;
    w->done = TRUE;
    g_cond_signal(&w->cond);
    g_mutex_unlock(&w->lock);
}

static int
bench(int argc, char **argv)
{
    if (argc < 9)
        return 2;
    const char *format = argv[2], *file = argv[3], *mode = argv[4], *rw = argv[5];
    guint64 size = g_ascii_strtoull(argv[6], NULL, 10);
    guint64 step = g_ascii_strtoull(argv[7], NULL, 10);
    guint64 count = g_ascii_strtoull(argv[8], NULL, 10);
    gboolean write = g_str_equal(rw, "write"), async = g_str_equal(mode, "async");
    GError *err = NULL;
    FerryBlock *bs;

    if (g_str_equal(format, "overlay")) {
        if (argc < 10)
            return 2;
        bs = ferry_overlay_open(file, "raw", argv[9], "hda", FERRY_OVERLAY_DISCARD_LEFTOVER, &err);
    } else {
        bs = ferry_block_open(file, format, 0, &err);
    }
    if (!bs)
        die(file, err);
    guint64 image = ferry_block_get_size(bs);
    if (image < size || image % size || step % size) {
        fprintf(stderr, "block-host: image size %" G_GUINT64_FORMAT " must be a multiple of SIZE and STEP of SIZE\n", image);
        return 1;
    }
    void *buf;
    if (posix_memalign(&buf, 4096, size))
        die("posix_memalign", NULL);
    memset(buf, 0xa5, size);
    struct iovec iov = { buf, size };
    Wait w = { 0 };
    g_mutex_init(&w.lock);
    g_cond_init(&w.cond);

    guint64 offset = 0;
    double t0 = now();
    for (guint64 i = 0; i < count; i++) {
        FerryBlockReq req = {
            .op = write ? FERRY_BLOCK_OP_WRITE : FERRY_BLOCK_OP_READ,
            .offset = offset, .iov = &iov, .niov = 1, .done = req_done, .opaque = &w,
        };
        w.done = FALSE;
        if (async) {
            ferry_block_submit_async(bs, &req);
            g_mutex_lock(&w.lock);
            while (!w.done)
                g_cond_wait(&w.cond, &w.lock);
            g_mutex_unlock(&w.lock);
        } else {
            ferry_block_submit(bs, &req);
        }
        if (w.result < 0) {
            fprintf(stderr, "block-host: request at %" G_GUINT64_FORMAT ": %s\n", offset,
                    g_strerror(-w.result));
            return 1;
        }
        offset = (offset + step) % image;
    }
    double t1 = now();
    printf("seconds=%.6f\n", t1 - t0);
    ferry_block_close(bs);
    free(buf);
    return 0;
}

static int
overlay_create(int argc, char **argv)
{
    if (argc < 5)
        return 2;
    int n = atoi(argv[4]);
    for (int i = 0; i < n; i++) {
        g_autofree char *dir = g_strdup_printf("%s/%d", argv[3], i);
        if (g_mkdir_with_parents(dir, 0700) < 0)
            die(dir, NULL);
        GError *err = NULL;
        double t0 = now();
        FerryBlock *bs = ferry_overlay_open(argv[2], "raw", dir, "hda",
                                            FERRY_OVERLAY_REFUSE_LEFTOVER, &err);
        double t1 = now();
        if (!bs)
            die(dir, err);
        ferry_block_close(bs);
        printf("%.6f\n", t1 - t0);
    }
    return 0;
}

static int
commit(int argc, char **argv)
{
    if (argc < 5)
        return 2;
    guint64 mib = g_ascii_strtoull(argv[4], NULL, 10);
    GError *err = NULL;
    FerryBlock *bs = ferry_overlay_open(argv[2], "raw", argv[3], "hda",
                                        FERRY_OVERLAY_DISCARD_LEFTOVER, &err);
    if (!bs)
        die(argv[2], err);
    guint8 *buf = g_malloc(1 << 20);
    for (guint64 i = 0; i < mib; i++) {
        memset(buf, (int) (i * 37 + 1), 1 << 20);
        if (!ferry_block_pwrite(bs, i << 20, buf, 1 << 20, &err))
            die("overlay write", err);
    }
    if (!ferry_block_flush(bs, &err))
        die("overlay flush", err);
    guint64 pending = ferry_overlay_pending_bytes(bs);
    double t0 = now();
    if (!ferry_overlay_commit(bs, &err))
        die("commit", err);
    double t1 = now();
    printf("seconds=%.6f\npending_mib=%" G_GUINT64_FORMAT "\n", t1 - t0, pending >> 20);
    ferry_block_close(bs);
    g_free(buf);
    return 0;
}

int
main(int argc, char **argv)
{
    int r = 2;
    if (argc >= 2 && g_str_equal(argv[1], "bench"))
        r = bench(argc, argv);
    else if (argc >= 2 && g_str_equal(argv[1], "overlay-create"))
        r = overlay_create(argc, argv);
    else if (argc >= 2 && g_str_equal(argv[1], "commit"))
        r = commit(argc, argv);
    if (r == 2)
        fprintf(stderr, "usage: see the comment at the top of tests/bench/block-host.c\n");
    return r;
}

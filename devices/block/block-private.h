/* block-private.h: what the block drivers share with the core (block.c):
 * the FerryBlock struct, iovec and file helpers, the driver tables. */
#pragma once

#include "block.h"

#include <errno.h>

G_BEGIN_DECLS

#define FERRY_BLOCK_WORKERS 4

struct FerryBlock {
    const FerryBlockDriver *drv;
    gpointer opaque;                /* the driver's state */
    char *filename;                 /* as given to open */
    int fd;                         /* the image file; -1 for the overlay */
    FerryBlockFlags flags;
    guint64 size;                   /* virtual size */
    FerryBlock *backing;            /* owned, or NULL */
    FerryBlock *parent;             /* while opening a chain: the image above (not owned) */
    guint depth;                    /* 0 for the top image */

    GMutex mutex;                   /* the fields below */
    GCond cond;
    guint inflight;                 /* running or queued */
    guint queued;                   /* submitted async, not started */
    guint quiesce;                  /* > 0: new requests wait */
    /* The async queue and its workers (block.c, "workers"). */
    FerryBlockReq *head, **tail;
    guint nqueue;                   /* atomic reads by a polling worker */
    GCond work_cond;
    GThread *threads[FERRY_BLOCK_WORKERS];
    guint nthreads, sleepers;
    guint wakeups;                  /* signalled sleepers not yet awake */
    gboolean poller;                /* a worker is polling the queue */
    gboolean stopping;
    gint64 poll_us;
    gint64 last_done;               /* when a worker last looked for work */
    guint64 seq;                    /* requests queued or started so far */
    /* Write-behind (block.c): writes completed early, not yet written. */
    struct FerryWbWrite *wb_list;
    guint64 wb_bytes;
    guint wb_count;
    int wb_error;                   /* the first failure, for the next FLUSH */
    guint64 wb_error_seq;           /* the latest failed write's seq */
    guint wb_hold;                  /* > 0: take no new ones (a quiesce) */
    char *last_error;
    guint64 error_count;
};

extern const FerryBlockDriver ferry_block_raw;
extern const FerryBlockDriver ferry_block_qcow2;
extern const FerryBlockDriver ferry_block_overlay;

/* Opens with a parent (backing chains: loop check and depth). */
FerryBlock *ferry_block_open_child(const char *filename, const char *format,
                                   FerryBlockFlags flags, FerryBlock *parent, GError **error);
/* A FerryBlock with no file of its own (the overlay). */
FerryBlock *ferry_block_new_virtual(const FerryBlockDriver *drv, const char *filename,
                                    FerryBlockFlags flags);
void ferry_block_set_size(FerryBlock *bs, guint64 size);
/* Takes ownership of backing (may be NULL); returns the previous one. */
FerryBlock *ferry_block_swap_backing(FerryBlock *bs, FerryBlock *backing);
/* Records why an -EIO happened, logs it (rate-limited) and returns -EIO. */
int ferry_block_report(FerryBlock *bs, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* Waits until the write-behind writes that arrived so far are in the image
 * (later ones may still be pending). Any thread but a block worker. */
void ferry_block_settle(FerryBlock *bs);
/* Stop new requests and wait for those in flight (nests). */
void ferry_block_quiesce_begin(FerryBlock *bs);
void ferry_block_quiesce_end(FerryBlock *bs);
/* A GError from a request result (errno), naming the image and the operation. */
void ferry_block_set_errno_error(FerryBlock *bs, GError **error, int result, const char *what);
/* Copies what src's top layer holds into dst, [0, size). */
gboolean ferry_block_copy_top(FerryBlock *src, FerryBlock *dst, GError **error);

/* QEMU-compatible image locks (block.c). */
gboolean ferry_block_lock_fd(int fd, const char *filename, gboolean writable, GError **error);
void     ferry_block_unlock_fd(int fd);
/* A writer's locks become a reader's (no window without a lock). */
void     ferry_block_lock_downgrade(int fd);

/* ---- iovecs -------------------------------------------------------------- */
gsize ferry_iov_size(const struct iovec *iov, int niov);
void  ferry_iov_from_buf(const struct iovec *iov, int niov, gsize offset, const void *buf, gsize len);
void  ferry_iov_to_buf(const struct iovec *iov, int niov, gsize offset, void *buf, gsize len);
void  ferry_iov_memset(const struct iovec *iov, int niov, gsize offset, int c, gsize len);
/* The part [offset, offset + len) of iov as a new iovec array in *out
 * (g_free it); returns its length. */
int   ferry_iov_slice(const struct iovec *iov, int niov, gsize offset, gsize len,
                      struct iovec **out);

/* ---- files (EINTR and short transfers handled) ----------------------------- */
/* 0 or -errno. Reads past the end of the file give zeros. */
int ferry_file_preadv(int fd, const struct iovec *iov, int niov, guint64 offset);
int ferry_file_pwritev(int fd, const struct iovec *iov, int niov, guint64 offset);
int ferry_file_pread(int fd, void *buf, gsize len, guint64 offset);
int ferry_file_pwrite(int fd, const void *buf, gsize len, guint64 offset);
int ferry_file_sync(int fd);
/* Zeroes a range (fallocate, else writes). */
int ferry_file_write_zeroes(int fd, guint64 offset, guint64 len, gboolean punch);
/* A GError for an errno from a file operation. */
void ferry_file_set_error(GError **error, int err, const char *filename, const char *what);

/* ---- big-endian fields --------------------------------------------------- */
static inline guint16 ferry_be16(const guint8 *p) { return (guint16) ((p[0] << 8) | p[1]); }
static inline guint32 ferry_be32(const guint8 *p)
{
    return ((guint32) p[0] << 24) | ((guint32) p[1] << 16) | ((guint32) p[2] << 8) | p[3];
}
static inline guint64 ferry_be64(const guint8 *p)
{
    return ((guint64) ferry_be32(p) << 32) | ferry_be32(p + 4);
}
static inline void ferry_put_be16(guint8 *p, guint16 v) { p[0] = v >> 8; p[1] = v; }
static inline void ferry_put_be32(guint8 *p, guint32 v)
{
    p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}
static inline void ferry_put_be64(guint8 *p, guint64 v)
{
    ferry_put_be32(p, v >> 32);
    ferry_put_be32(p + 4, (guint32) v);
}

/* qcow2.c, for the overlay and the tools. */
/* Makes an empty copy of a qcow2 image's shape (size, cluster size,
 * backing name and format) at new_path. */
gboolean ferry_qcow2_create_empty_like(FerryBlock *bs, const char *new_path, GError **error);
/* Guest bytes the image's own layer holds (allocated or zero clusters). */
guint64  ferry_qcow2_allocated_bytes(FerryBlock *bs);
/* Reads the backing file name and format from a qcow2 file without
 * opening it as an image. */
gboolean ferry_qcow2_read_backing(const char *path, char **backing, char **backing_format,
                                  GError **error);

G_END_DECLS

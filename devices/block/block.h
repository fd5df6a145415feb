/* block.h: Ferry's block layer: disk images (raw, qcow2) and the snapshot
 * overlay, seen by devices as byte offsets, iovecs and one completion path.
 *
 * Threads. A FerryBlock may be used from any thread: every function below is
 * safe to call concurrently on one FerryBlock, except ferry_block_close(),
 * which must be the last call (no request in flight from another thread).
 * Requests go through ferry_block_submit() (runs the driver in the calling
 * thread) or ferry_block_submit_async() (queued to the image's worker
 * threads; never blocks the caller). Either way req->done runs exactly once,
 * on whichever thread finished the request: the caller's for a synchronous
 * driver, a worker's or the driver's own for async ones. Completion order
 * is not submission order; a flush completes after every write that had
 * completed before the flush was submitted is on stable storage.
 *
 * Durability. A write is on disk once a later flush has completed: after a
 * crash or a kill -9 of the process the image opens, `qemu-img check` passes
 * (leaked clusters at most) and every write that preceded a completed flush
 * reads back.
 *
 * Locks. Opening for writing takes QEMU's advisory locks on the image file
 * (OFD fcntl locks on bytes 100.. and 200.., see block.c), so neither two
 * Ferry processes nor Ferry and QEMU write one image at once; a read-only
 * open refuses writers too, like QEMU's. FERRY_BLOCK_NO_LOCK skips them
 * (qemu-img's -U). */
#pragma once

#include <glib.h>
#include <stdint.h>
#include <sys/uio.h>

G_BEGIN_DECLS

#define FERRY_BLOCK_ERROR (ferry_block_error_quark())
GQuark ferry_block_error_quark(void);

typedef enum {
    FERRY_BLOCK_ERROR_FAILED = 1,   /* I/O error from the host */
    FERRY_BLOCK_ERROR_OPEN,         /* the file cannot be opened: missing, permission */
    FERRY_BLOCK_ERROR_INVALID,      /* bad argument: size, format name, option */
    FERRY_BLOCK_ERROR_CORRUPT,      /* the image's metadata is inconsistent */
    FERRY_BLOCK_ERROR_UNSUPPORTED,  /* a valid image using a feature Ferry lacks */
    FERRY_BLOCK_ERROR_LOCKED,       /* another program has the image open */
    FERRY_BLOCK_ERROR_NO_SPACE,     /* the host file system is full */
    FERRY_BLOCK_ERROR_READ_ONLY,    /* a write to a read-only image */
    FERRY_BLOCK_ERROR_PENDING,      /* an overlay holds changes from an earlier run */
    FERRY_BLOCK_ERROR_CANCELLED,    /* the user backed out: no dialog */
} FerryBlockErrorCode;

typedef enum {
    FERRY_BLOCK_READ_ONLY  = 1 << 0,
    FERRY_BLOCK_NO_LOCK    = 1 << 1,    /* take no image lock (qemu-img -U) */
    FERRY_BLOCK_NO_BACKING = 1 << 2,    /* do not open a qcow2 image's backing chain:
                                         * unallocated clusters read as zeros */
} FerryBlockFlags;

typedef struct FerryBlock FerryBlock;
typedef struct FerryBlockReq FerryBlockReq;

typedef enum {
    FERRY_BLOCK_OP_READ,            /* fill iov from [offset, offset + iov size) */
    FERRY_BLOCK_OP_WRITE,           /* write iov at offset */
    FERRY_BLOCK_OP_FLUSH,           /* make completed writes durable; offset, iov ignored */
    FERRY_BLOCK_OP_DISCARD,         /* [offset, offset + length) may read back as anything
                                     * the image held or zeros; space may be released */
    FERRY_BLOCK_OP_WRITE_ZEROES,    /* [offset, offset + length) reads back as zeros */
} FerryBlockOp;

/* A request. The submitter owns it (usually embedded in a bigger struct of
 * its own) and must keep it and the iov buffers alive until done runs. */
struct FerryBlockReq {
    FerryBlockOp op;
    guint64 offset;                 /* bytes */
    guint64 length;                 /* DISCARD, WRITE_ZEROES; READ/WRITE: set by the core */
    const struct iovec *iov;        /* READ, WRITE */
    int niov;
    /* result: 0, or -errno: -EINVAL out of range, -EROFS read-only, -EIO
     * (ferry_block_last_error() says why), -ENOSPC host disk full. */
    void (*done)(FerryBlockReq *req, int result);
    gpointer opaque;                /* the submitter's */
    /* WRITE from a device with a volatile write cache (its guest
     * flushes): ferry_block_write_behind may take it. */
    gboolean may_cache;
    /* The core's; do not touch. */
    FerryBlock *bs;
    FerryBlockReq *next;            /* the async queue */
    guint64 seq;                    /* order of arrival (block.c, "write-behind") */
};

/* A driver returns this from submit when it will finish the request later
 * with ferry_block_req_complete(). */
#define FERRY_BLOCK_REQ_IN_PROGRESS 1

typedef struct FerryBlockInfo FerryBlockInfo;
typedef struct FerryBlockCheck FerryBlockCheck;
typedef struct FerryBlockCreateOptions FerryBlockCreateOptions;

/* Block status (ferry_block_status()) bits. */
#define FERRY_BLOCK_STATUS_ALLOCATED 1  /* this layer defines the bytes (not its backing) */
#define FERRY_BLOCK_STATUS_ZERO      2  /* the bytes read as zeros */
#define FERRY_BLOCK_STATUS_DATA      4  /* the bytes are stored in this layer's file */

/* A driver: one static const table per image format. Probing walks an
 * ordered list (qcow2, then raw); the snapshot overlay is opened only by
 * ferry_overlay_open(), never probed. */
typedef struct {
    const char *format;                                     /* "raw", "qcow2", "overlay" */
    gboolean (*probe)(const guint8 *head, gsize len);       /* first 4 KiB of the file; may be NULL */
    /* Reads the metadata, sets the virtual size (ferry_block_set_size).
     * fd is the image file, open and locked; the core closes it. */
    gboolean (*open)(FerryBlock *bs, int fd, FerryBlockFlags flags, GError **error);
    /* 0 or -errno when finished (the core then calls req->done), or
     * FERRY_BLOCK_REQ_IN_PROGRESS. Called from any thread, concurrently: a
     * driver with shared state locks it. The core has checked the range. */
    int      (*submit)(FerryBlock *bs, FerryBlockReq *req);
    /* Flushes what the driver caches, frees its state. No request in flight. */
    void     (*close)(FerryBlock *bs);
    /* Optional. */
    gboolean (*create)(const char *filename, int fd, const FerryBlockCreateOptions *opts,
                       GError **error);
    void     (*get_info)(FerryBlock *bs, FerryBlockInfo *info);
    gboolean (*check)(FerryBlock *bs, FerryBlockCheck *result, gboolean repair_leaks,
                      GError **error);
    /* FERRY_BLOCK_STATUS_* of [offset, offset + *len); shrinks *len to the
     * part with the same status. Negative errno on failure. NULL: all DATA. */
    int      (*block_status)(FerryBlock *bs, guint64 offset, guint64 *len);
} FerryBlockDriver;

/* ---- Opening and closing ------------------------------------------------ */

/* Opens an image. format: "raw", "qcow2", or NULL to probe (a raw image
 * whose guest wrote a qcow2 header would then open as qcow2: pass the
 * format whenever it is known). A qcow2 image's backing chain is opened
 * read-only (relative names are relative to the image's folder; at most
 * FERRY_BLOCK_MAX_CHAIN deep; a loop is an error). Errors: FERRY_BLOCK_ERROR_*,
 * messages name the file, the problem and the fix. Caller owns the result. */
#define FERRY_BLOCK_MAX_CHAIN 64
FerryBlock *ferry_block_open(const char *filename, const char *format,
                             FerryBlockFlags flags, GError **error);
/* Drains the requests in flight, writes cached metadata, releases the locks
 * and closes the backing chain. NULL is fine. */
void        ferry_block_close(FerryBlock *bs);

/* Creates (or truncates and rewrites) an image; refused while another
 * program holds it. */
struct FerryBlockCreateOptions {
    const char *format;             /* "raw" or "qcow2" */
    guint64 size;                   /* virtual size in bytes; 0 with a backing file: its size */
    const char *backing_file;       /* qcow2: stored as given (relative to the image's folder) */
    const char *backing_format;     /* qcow2: NULL probes the backing file */
    guint32 cluster_size;           /* qcow2: 0 is 64 KiB; a power of two, 512 .. 2 MiB */
    guint refcount_bits;            /* qcow2: 0 is 16; 1, 2, 4 .. 64 */
    const char *compression_type;   /* qcow2: NULL or "zlib", "zstd" */
    gboolean no_backing_check;      /* do not open the backing file (qemu-img -u) */
};
gboolean ferry_block_create(const char *filename, const FerryBlockCreateOptions *opts,
                            GError **error);

/* ---- Requests ------------------------------------------------------------ */

/* Checks req and runs the driver in the calling thread; req->done runs
 * before this returns unless the driver is asynchronous. Any thread. */
void ferry_block_submit(FerryBlock *bs, FerryBlockReq *req);
/* Queues req to the image's worker threads (started on first use) and
 * returns at once; req->done runs on a worker thread. Any thread. */
void ferry_block_submit_async(FerryBlock *bs, FerryBlockReq *req);
/* An idle thread's offer to help (a vCPU thread waiting for an interrupt):
 * takes the oldest queued request, if any, and runs it here, done
 * included. TRUE if it ran one. Cheap when the queue is empty (one atomic
 * load). Any thread; never waits for a quiesce. */
gboolean ferry_block_help(FerryBlock *bs);
/* A may_cache WRITE taken at once (block.c, "write-behind"): its data is
 * copied now, in the caller's thread (a memory copy, no I/O), and a worker
 * writes the copy later. TRUE: taken, req is the caller's again and done
 * is never called; the device completes it. FALSE: submit it with
 * ferry_block_submit_async. */
gboolean ferry_block_write_behind(FerryBlock *bs, FerryBlockReq *req);
/* For asynchronous drivers: finishes a request submit returned
 * FERRY_BLOCK_REQ_IN_PROGRESS for. Any thread. */
void ferry_block_req_complete(FerryBlockReq *req, int result);
/* Waits until no request is in flight. */
void ferry_block_drain(FerryBlock *bs);

/* Synchronous helpers (tools, tests): FALSE with a FERRY_BLOCK_ERROR. */
gboolean ferry_block_pread(FerryBlock *bs, guint64 offset, void *buf, gsize len, GError **error);
gboolean ferry_block_pwrite(FerryBlock *bs, guint64 offset, const void *buf, gsize len,
                            GError **error);
gboolean ferry_block_flush(FerryBlock *bs, GError **error);
gboolean ferry_block_discard(FerryBlock *bs, guint64 offset, guint64 len, GError **error);
gboolean ferry_block_write_zeroes(FerryBlock *bs, guint64 offset, guint64 len, GError **error);
/* FERRY_BLOCK_STATUS_* of [offset, offset + *len), *len shrunk to the run. */
int      ferry_block_status(FerryBlock *bs, guint64 offset, guint64 *len);

/* The message behind the last -EIO this image returned ("L2 table at 0x50000
 * is past the end of the file"), or NULL. Caller frees. */
char *ferry_block_last_error(FerryBlock *bs);

/* ---- Properties ----------------------------------------------------------- */

guint64     ferry_block_get_size(FerryBlock *bs);          /* virtual size, bytes */
const char *ferry_block_get_format(FerryBlock *bs);        /* "raw", "qcow2", "overlay" */
const char *ferry_block_get_filename(FerryBlock *bs);      /* as given to open */
gboolean    ferry_block_is_read_only(FerryBlock *bs);
FerryBlock *ferry_block_get_backing(FerryBlock *bs);       /* not a new reference; or NULL */

typedef struct {
    char *id;
    char *name;
    guint64 vm_state_size;
    gint64 date_sec;
    guint32 date_nsec;
    guint64 vm_clock_nsec;
    guint64 disk_size;              /* virtual size when taken (0 if not recorded) */
    guint64 icount;                 /* G_MAXUINT64 if not recorded */
} FerryBlockSnapshot;

struct FerryBlockInfo {
    char *filename;
    const char *format;
    guint64 virtual_size;
    guint64 actual_size;            /* host bytes the file uses */
    guint32 cluster_size;           /* 0 for raw */
    char *backing_filename;         /* as stored in the image, or NULL */
    char *full_backing_filename;    /* resolved against the image's folder */
    char *backing_format;           /* or NULL */
    gboolean dirty;
    /* qcow2 */
    char *compat;                   /* "0.10" (version 2) or "1.1" (version 3) */
    char *compression_type;         /* "zlib", "zstd" */
    gboolean lazy_refcounts, corrupt, extended_l2;
    guint refcount_bits;
    GPtrArray *snapshots;           /* FerryBlockSnapshot *, internal snapshots (listed, not applied) */
};
/* Fills info (clear it with ferry_block_info_clear()). */
void ferry_block_get_info(FerryBlock *bs, FerryBlockInfo *info);
void ferry_block_info_clear(FerryBlockInfo *info);

struct FerryBlockCheck {
    guint64 corruptions, leaks, check_errors;
    guint64 corruptions_fixed, leaks_fixed;
    guint64 allocated_clusters, total_clusters, fragmented_clusters, compressed_clusters;
    guint64 image_end_offset;
    GPtrArray *messages;            /* char *: "Leaked cluster 7 refcount=1 reference=0" */
};
/* Checks the image's metadata (qemu-img check). repair_leaks needs a
 * writable image. FALSE with FERRY_BLOCK_ERROR_UNSUPPORTED for formats with
 * nothing to check (raw) or when the check could not run; corruptions and
 * leaks are in result, not errors. Clear result with ferry_block_check_clear(). */
gboolean ferry_block_check(FerryBlock *bs, FerryBlockCheck *result, gboolean repair_leaks,
                           GError **error);
void     ferry_block_check_clear(FerryBlockCheck *result);

/* qemu-img commit: copies every byte FILE's top layer holds (allocated
 * clusters, zeroed ranges) into its backing image, opened read-write, and
 * flushes it; then empties FILE (same size, backing and cluster size)
 * unless keep is TRUE. */
gboolean ferry_block_commit_image(const char *filename, const char *format, gboolean keep,
                                  GError **error);

/* ---- Snapshot overlays (overlay.c) ------------------------------------------
 * Snapshot mode: every write goes to a qcow2 overlay file whose backing is
 * the base image, which is opened read-only and never written until commit.
 * Overlays live in data_dir, one per drive: "<data_dir>/<drive>-overlay.qcow2"
 * (drive is "hda".."hdd"). A commit first writes "<drive>-overlay.commit"
 * (fsynced), copies the overlay into the base, flushes the base, starts an
 * empty overlay and removes the marker: a commit interrupted by a crash is
 * replayed from the untouched overlay at the next open or list, so the base
 * holds either none or all of the overlay's changes once Ferry has looked
 * at it again. The overlay file stays after ferry_block_close(): pending
 * changes survive a crash until committed or discarded. */

typedef enum {
    FERRY_OVERLAY_REFUSE_LEFTOVER,  /* an existing overlay: FERRY_BLOCK_ERROR_PENDING */
    FERRY_OVERLAY_KEEP_LEFTOVER,    /* go on with its changes (as after a reset) */
    FERRY_OVERLAY_DISCARD_LEFTOVER, /* drop them, start empty */
} FerryOverlayLeftover;

/* Opens base_path (format as in ferry_block_open) read-only under a new or
 * existing overlay in data_dir (created if missing). An interrupted commit
 * is finished first. The result's format is "overlay". */
FerryBlock *ferry_overlay_open(const char *base_path, const char *base_format,
                               const char *data_dir, const char *drive,
                               FerryOverlayLeftover leftover, GError **error);
/* Folds the overlay into the base and goes on with an empty overlay.
 * Requests submitted meanwhile wait (so: not from a request's done
 * callback, nor a thread that must not block). On failure the overlay keeps every
 * change; if the base was partly written the marker stays and the commit
 * is redone by the next commit or open (discard is then refused). */
gboolean ferry_overlay_commit(FerryBlock *bs, GError **error);
/* Drops the overlay's changes (the base is untouched). */
gboolean ferry_overlay_discard(FerryBlock *bs, GError **error);
/* Guest bytes the overlay holds (allocated or zeroed clusters), writes
 * still in write-behind included (it waits for them to land). Any thread
 * but a block worker; does not wait for a commit in progress. */
guint64  ferry_overlay_pending_bytes(FerryBlock *bs);
const char *ferry_overlay_get_path(FerryBlock *bs);       /* the overlay file */

typedef struct {
    char *drive;                    /* "hda" */
    char *overlay_path;
    char *base_path;                /* from the overlay's header */
    char *base_format;
    guint64 pending_bytes;
    gboolean commit_was_interrupted; /* replayed while listing: the base now holds it */
} FerryOverlayLeftoverInfo;
/* Overlays found in data_dir (from an earlier run that did not commit or
 * discard). Finishes interrupted commits on the way. Caller owns the array
 * (free with g_ptr_array_unref). A missing data_dir is an empty list. */
GPtrArray *ferry_overlay_list_leftovers(const char *data_dir, GError **error);
gboolean   ferry_overlay_commit_leftover(const char *data_dir, const char *drive, GError **error);
gboolean   ferry_overlay_discard_leftover(const char *data_dir, const char *drive, GError **error);

G_END_DECLS

/* raw.c: raw disk images: the file (or block device) is the disk, byte for
 * byte. Requests run in the caller's thread with preadv/pwritev, which are
 * safe to run concurrently on one descriptor, so the driver keeps no lock. */
#include "block-private.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib/gi18n-lib.h>

static gboolean
raw_probe(const guint8 *head, gsize len)
{
    return TRUE;
}

static gboolean
raw_open(FerryBlock *bs, int fd, FerryBlockFlags flags, GError **error)
{
    struct stat st;
    guint64 size;

    if (fstat(fd, &st) < 0) {
        ferry_file_set_error(error, errno, bs->filename, "open");
        return FALSE;
    }
    if (S_ISBLK(st.st_mode)) {
        if (ioctl(fd, BLKGETSIZE64, &size) < 0) {
            ferry_file_set_error(error, errno, bs->filename, "open");
            return FALSE;
        }
    } else {
        size = st.st_size;
    }
    ferry_block_set_size(bs, size);
    return TRUE;
}

static int
raw_submit(FerryBlock *bs, FerryBlockReq *req)
{
    switch (req->op) {
    case FERRY_BLOCK_OP_READ:
        return ferry_file_preadv(bs->fd, req->iov, req->niov, req->offset);
    case FERRY_BLOCK_OP_WRITE:
        return ferry_file_pwritev(bs->fd, req->iov, req->niov, req->offset);
    case FERRY_BLOCK_OP_FLUSH:
        return ferry_file_sync(bs->fd);
    case FERRY_BLOCK_OP_DISCARD:
        /* Advisory: a file system that cannot punch holes keeps the data. */
        if (fallocate(bs->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      req->offset, req->length) < 0 && errno == EIO)
            return -EIO;
        return 0;
    case FERRY_BLOCK_OP_WRITE_ZEROES:
        return ferry_file_write_zeroes(bs->fd, req->offset, req->length, FALSE);
    }
    return -EINVAL;
}

static void
raw_close(FerryBlock *bs)
{
}

static gboolean
raw_create(const char *filename, int fd, const FerryBlockCreateOptions *opts, GError **error)
{
    if (opts->backing_file) {
        g_set_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_INVALID,
                    _("Cannot create %s: a raw image has no backing file. Use -f qcow2."), filename);
        return FALSE;
    }
    if (ftruncate(fd, 0) < 0 || ftruncate(fd, opts->size) < 0) {
        ferry_file_set_error(error, errno, filename, "create");
        return FALSE;
    }
    return TRUE;
}

static int
raw_block_status(FerryBlock *bs, guint64 offset, guint64 *len)
{
    /* Holes read as zeros: convert and commit can skip them. */
    off_t data = lseek(bs->fd, offset, SEEK_DATA);
    if (data < 0 && errno == ENXIO) {
        return FERRY_BLOCK_STATUS_ALLOCATED | FERRY_BLOCK_STATUS_ZERO;
    }
    if (data < 0)
        return FERRY_BLOCK_STATUS_ALLOCATED | FERRY_BLOCK_STATUS_DATA;
    if ((guint64) data > offset) {
        *len = MIN(*len, (guint64) data - offset);
        return FERRY_BLOCK_STATUS_ALLOCATED | FERRY_BLOCK_STATUS_ZERO;
    }
    off_t hole = lseek(bs->fd, offset, SEEK_HOLE);
    if (hole > (off_t) offset)
        *len = MIN(*len, (guint64) hole - offset);
    return FERRY_BLOCK_STATUS_ALLOCATED | FERRY_BLOCK_STATUS_DATA;
}

const FerryBlockDriver ferry_block_raw = {
    .format = "raw",
    .probe = raw_probe,
    .open = raw_open,
    .submit = raw_submit,
    .close = raw_close,
    .create = raw_create,
    .block_status = raw_block_status,
};

/* blk.h: virtio-blk (virtio 1.2 §5.2) over a FerryBlock image: read,
 * write, flush, discard, write-zeroes, get-id, read-only. Requests run on
 * the block layer's worker threads, never on the vCPU that notified. */
#pragma once

#include "virtio.h"
#include "../block/block.h"

G_BEGIN_DECLS

#define FERRY_VIRTIO_BLK_QUEUE_SIZE 256
#define FERRY_VIRTIO_BLK_ID_BYTES   20      /* VIRTIO_BLK_ID_BYTES */

/* A disk over `bs`, which stays the caller's: it must outlive the device,
 * and ferry_virtio_blk_drain() must have returned before the device or bs
 * is freed. `serial` (at most 20 bytes are shown, NULL: none) is what
 * GET_ID answers. A read-only bs (or read_only) offers VIRTIO_BLK_F_RO and
 * fails every write with VIRTIO_BLK_S_IOERR. Hand the result to a transport
 * (ferry_virtio_mmio_new()), which owns it. */
FerryVirtioDevice *ferry_virtio_blk_new(FerryBlock *bs, const char *serial, gboolean read_only);

/* Waits until no request of the device is in flight. Any thread but a
 * block worker; do not hold the device lock. */
void ferry_virtio_blk_drain(FerryVirtioDevice *vdev);

/* Requests completed since the device was made, for tests and `info`. */
guint64 ferry_virtio_blk_get_completed(FerryVirtioDevice *vdev);

G_END_DECLS

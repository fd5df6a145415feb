/* virtio-private.h: what virtio.c (device core) and virtqueue.c share and no
 * one else needs. */
#pragma once

#include "virtio.h"

G_BEGIN_DECLS

FerryVirtq *ferry_virtq_new(FerryVirtioDevice *vdev, guint index, guint16 num_max);
void        ferry_virtq_free(FerryVirtq *vq);
/* Back to the state after power-on: not ready, num = num_max, addresses 0;
 * chains popped before are stale from now on. */
void        ferry_virtq_reset(FerryVirtq *vq);

/* Status bits as other threads may read them. */
static inline guint8
ferry_virtio_status_load(FerryVirtioDevice *vdev)
{
    return __atomic_load_n(&vdev->status, __ATOMIC_ACQUIRE);
}

G_END_DECLS

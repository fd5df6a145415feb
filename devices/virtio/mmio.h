/* mmio.h: the virtio-mmio transport, version 2 (virtio 1.2 §4.2), as a
 * FerryDevice. The riscv virt machine maps one every 0x1000 bytes from
 * 0x10001000 and fills the slots it has no device for with empty ones. */
#pragma once

#include "virtio.h"

G_BEGIN_DECLS

#define FERRY_VIRTIO_MMIO_SIZE   0x1000      /* registers 0x000-0x0ff, config from 0x100 */
#define FERRY_VIRTIO_MMIO_MAGIC  0x74726976  /* "virt" */
#define FERRY_VIRTIO_MMIO_VENDOR 0x59525246  /* "FRRY" */

/* A transport for `backend`, which it owns from now on (NULL: an empty slot
 * that reads DeviceID 0 and ignores writes). `irq` is level-triggered, high
 * while InterruptStatus is not 0. `mem` must outlive the device.
 * Free with ferry_device_free(). */
FerryDevice *ferry_virtio_mmio_new(const char *id, FerryVirtioDevice *backend, FerryIrq *irq,
                                   const FerryGuestMemory *mem);
/* The device behind the transport (NULL for an empty slot). */
FerryVirtioDevice *ferry_virtio_mmio_get_backend(FerryDevice *dev);

G_END_DECLS

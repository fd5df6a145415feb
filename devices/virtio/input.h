/* input.h: virtio-input (virtio 1.2 §5.8) as a power button: one key,
 * KEY_POWER, which the engine's system_powerdown presses and releases. */
#pragma once

#include "virtio.h"

G_BEGIN_DECLS

/* Linux input event codes (linux/input-event-codes.h), the wire values of §5.8.6. */
#define FERRY_INPUT_EV_SYN     0x00
#define FERRY_INPUT_EV_KEY     0x01
#define FERRY_INPUT_SYN_REPORT 0
#define FERRY_INPUT_KEY_POWER  116
#define FERRY_INPUT_BUS_VIRTUAL 0x06

/* A power button. Hand it to a transport (ferry_virtio_mmio_new()), which
 * owns it; keep the pointer for send_key. */
FerryVirtioDevice *ferry_virtio_input_new(void);

/* Queues EV_KEY `code` (1 pressed, 0 released) then EV_SYN SYN_REPORT, and
 * delivers what is queued as soon as the driver has eventq buffers posted.
 * Up to 32 key events wait while it has none; later ones are dropped (with a
 * log line). Waiting events survive a driver reset, not a machine reset.
 * Any thread; do not hold the device lock. */
void ferry_virtio_input_send_key(FerryVirtioDevice *vdev, guint16 code, gboolean pressed);

G_END_DECLS

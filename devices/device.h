/* device.h: what every device model sees of the machine around it.
 *
 * A device embeds FerryDevice first and keeps a static const FerryDeviceOps.
 * It is mapped on a FerryBus (port I/O or MMIO), raises interrupts through a
 * FerryIrq the machine wired, reaches guest RAM only through FerryGuestMemory
 * (guest-memory.h), and asks for a power-off or reset through FerryPlatform.
 * Devices never know the accelerator (KVM or the software CPU).
 */
#pragma once

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

typedef struct FerryDevice FerryDevice;

typedef struct {
    const char *name;                                 /* shown in errors: "uart-16550" */
    uint64_t (*read)(FerryDevice *dev, uint64_t offset, unsigned size);
    void     (*write)(FerryDevice *dev, uint64_t offset, uint64_t value, unsigned size);
    void     (*reset)(FerryDevice *dev);              /* machine reset; may be NULL */
    void     (*destroy)(FerryDevice *dev);            /* frees the model; may be NULL */
} FerryDeviceOps;

struct FerryDevice {
    const FerryDeviceOps *ops;
    GMutex lock;            /* held by the bus around read/write/reset */
    char *id;               /* "com1", "virtio-mmio@10001000" */
};

/* Initialises the common part; the model allocates the containing struct. */
void ferry_device_init(FerryDevice *dev, const FerryDeviceOps *ops, const char *id);
/* Calls ops->destroy (or g_free). NULL is fine. */
void ferry_device_free(FerryDevice *dev);
void ferry_device_reset(FerryDevice *dev);

/* ---- Interrupt lines -------------------------------------------------------
 * A line is a small object the machine creates: for KVM it ends in
 * KVM_IRQ_LINE, for the software CPU in the PLIC. Callable from any thread. */
typedef struct FerryIrq {
    void (*set)(struct FerryIrq *irq, gboolean level);
    void *opaque;
    guint number;           /* GSI / PLIC source */
} FerryIrq;

static inline void
ferry_irq_set(FerryIrq *irq, gboolean level)
{
    if (irq && irq->set)
        irq->set(irq, level);
}

/* ---- Machine-wide requests from devices --------------------------------- */
typedef enum {
    FERRY_PLATFORM_POWEROFF,   /* ACPI S5, syscon power-off */
    FERRY_PLATFORM_RESET,      /* 0xCF9, i8042 0xFE, syscon reboot */
} FerryPlatformRequest;

typedef struct {
    void (*request)(void *opaque, FerryPlatformRequest req, const char *why);
    void *opaque;
} FerryPlatform;

static inline void
ferry_platform_request(const FerryPlatform *p, FerryPlatformRequest req, const char *why)
{
    if (p && p->request)
        p->request(p->opaque, req, why);
}

/* ---- Buses ------------------------------------------------------------------
 * A bus maps address ranges to devices. Ranges are added while the machine is
 * built, before any vCPU runs; lookups afterwards take no lock. An access that
 * hits no device reads as all ones and its write is ignored, with a
 * rate-limited log line (as on a PC). */
typedef struct FerryBus FerryBus;

FerryBus *ferry_bus_new(const char *name);     /* "io", "mmio" */
void      ferry_bus_free(FerryBus *bus);       /* does not free devices */
/* FALSE if the range overlaps one already mapped (a machine bug). */
gboolean  ferry_bus_map(FerryBus *bus, uint64_t base, uint64_t size, FerryDevice *dev);
/* Silently ignored range (port 0x80 POST codes). */
void      ferry_bus_map_ignored(FerryBus *bus, uint64_t base, uint64_t size);
/* Returns TRUE when a device (or an ignored range) took the access. */
gboolean  ferry_bus_read(FerryBus *bus, uint64_t addr, unsigned size, uint64_t *value);
gboolean  ferry_bus_write(FerryBus *bus, uint64_t addr, unsigned size, uint64_t value);
/* Counters for the monitor and the tests. */
guint64   ferry_bus_unassigned_count(FerryBus *bus);

G_END_DECLS

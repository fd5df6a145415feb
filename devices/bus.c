/* bus.c: address-range dispatch for port I/O and MMIO, and the FerryDevice
 * basics. The range table is filled before vCPUs start and then only read. */
#include "device.h"

#include <string.h>

typedef struct {
    uint64_t base, size;
    FerryDevice *dev;       /* NULL: an ignored range */
} Range;

struct FerryBus {
    char *name;
    GArray *ranges;         /* Range, sorted by base */
    guint64 unassigned;     /* atomic counter */
};

void
ferry_device_init(FerryDevice *dev, const FerryDeviceOps *ops, const char *id)
{
    dev->ops = ops;
    g_mutex_init(&dev->lock);
    dev->id = g_strdup(id ? id : ops->name);
}

void
ferry_device_free(FerryDevice *dev)
{
    if (!dev)
        return;
    g_mutex_clear(&dev->lock);
    g_free(dev->id);
    dev->id = NULL;
    if (dev->ops->destroy)
        dev->ops->destroy(dev);
    else
        g_free(dev);
}

void
ferry_device_reset(FerryDevice *dev)
{
    if (!dev || !dev->ops->reset)
        return;
    g_mutex_lock(&dev->lock);
    dev->ops->reset(dev);
    g_mutex_unlock(&dev->lock);
}

FerryBus *
ferry_bus_new(const char *name)
{
    FerryBus *bus = g_new0(FerryBus, 1);
    bus->name = g_strdup(name);
    bus->ranges = g_array_new(FALSE, TRUE, sizeof(Range));
    return bus;
}

void
ferry_bus_free(FerryBus *bus)
{
    if (!bus)
        return;
    g_array_unref(bus->ranges);
    g_free(bus->name);
    g_free(bus);
}

static gboolean
add_range(FerryBus *bus, uint64_t base, uint64_t size, FerryDevice *dev)
{
    guint i;

    g_return_val_if_fail(size > 0 && base + size - 1 >= base, FALSE);
    for (i = 0; i < bus->ranges->len; i++) {
        Range *r = &g_array_index(bus->ranges, Range, i);
        if (base < r->base + r->size && r->base < base + size)
            return FALSE;
        if (r->base > base)
            break;
    }
    Range nr = { base, size, dev };
    g_array_insert_val(bus->ranges, i, nr);
    return TRUE;
}

gboolean
ferry_bus_map(FerryBus *bus, uint64_t base, uint64_t size, FerryDevice *dev)
{
    g_return_val_if_fail(dev != NULL, FALSE);
    return add_range(bus, base, size, dev);
}

void
ferry_bus_map_ignored(FerryBus *bus, uint64_t base, uint64_t size)
{
    add_range(bus, base, size, NULL);
}

static const Range *
lookup(FerryBus *bus, uint64_t addr)
{
    guint lo = 0, hi = bus->ranges->len;

    while (lo < hi) {
        guint mid = (lo + hi) / 2;
        const Range *r = &g_array_index(bus->ranges, Range, mid);
        if (addr < r->base)
            hi = mid;
        else if (addr - r->base >= r->size)
            lo = mid + 1;
        else
            return r;
    }
    return NULL;
}

static void
note_unassigned(FerryBus *bus, const char *what, uint64_t addr, unsigned size)
{
    guint64 n = __atomic_fetch_add(&bus->unassigned, 1, __ATOMIC_RELAXED);
    /* A guest may probe thousands of empty ports: log the first few only. */
    if (n < 8)
        g_debug("%s: %s of %u bytes at 0x%" G_GINT64_MODIFIER "x hits no device",
                bus->name, what, size, (guint64) addr);
}

gboolean
ferry_bus_read(FerryBus *bus, uint64_t addr, unsigned size, uint64_t *value)
{
    const Range *r = lookup(bus, addr);

    if (!r) {
        note_unassigned(bus, "read", addr, size);
        *value = size >= 8 ? ~0ULL : (1ULL << (size * 8)) - 1;
        return FALSE;
    }
    if (!r->dev) {
        *value = size >= 8 ? ~0ULL : (1ULL << (size * 8)) - 1;
        return TRUE;
    }
    g_mutex_lock(&r->dev->lock);
    *value = r->dev->ops->read(r->dev, addr - r->base, size);
    g_mutex_unlock(&r->dev->lock);
    return TRUE;
}

gboolean
ferry_bus_write(FerryBus *bus, uint64_t addr, unsigned size, uint64_t value)
{
    const Range *r = lookup(bus, addr);

    if (!r) {
        note_unassigned(bus, "write", addr, size);
        return FALSE;
    }
    if (!r->dev)
        return TRUE;
    g_mutex_lock(&r->dev->lock);
    r->dev->ops->write(r->dev, addr - r->base, value, size);
    g_mutex_unlock(&r->dev->lock);
    return TRUE;
}

guint64
ferry_bus_unassigned_count(FerryBus *bus)
{
    return __atomic_load_n(&bus->unassigned, __ATOMIC_RELAXED);
}

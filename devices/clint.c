/* clint.c: the core-local interruptor (SiFive CLINT, the ACLINT MSWI and
 * MTIMER devices at their classic offsets): msip at 0x0000 + 4*hart,
 * mtimecmp at 0x4000 + 8*hart, mtime at 0xBFF8. mtime runs at 10 MHz from
 * the host's monotonic clock. MTIP is a level: mtime >= mtimecmp. */
#include "riscv-devices.h"

#define MSIP_BASE     0x0000
#define MTIMECMP_BASE 0x4000
#define MTIME_OFF     0xBFF8

typedef struct {
    FerryDevice dev;
    guint n;
    FerryIrq *msip, *mtip;
    guint32 *msip_val;
    guint64 *mtimecmp;        /* read lock-free by ferry_clint_poll() */
    gboolean *mtip_level;
    gint64 t0_ns;
    gint64 offset;            /* guest writes to mtime shift it */
} Clint;

static guint64
now_ticks(Clint *c)
{
    gint64 ns = g_get_monotonic_time() * 1000 - c->t0_ns;
    return (guint64) (ns / 100) + (guint64) __atomic_load_n(&c->offset, __ATOMIC_RELAXED);
}

guint64
ferry_clint_mtime(FerryDevice *dev)
{
    return now_ticks((Clint *) dev);
}

static void
update_mtip(Clint *c, guint hart, guint64 now)
{
    guint64 cmp = __atomic_load_n(&c->mtimecmp[hart], __ATOMIC_ACQUIRE);
    gboolean level = now >= cmp;
    if (level != __atomic_load_n(&c->mtip_level[hart], __ATOMIC_RELAXED)) {
        __atomic_store_n(&c->mtip_level[hart], level, __ATOMIC_RELAXED);
        ferry_irq_set(&c->mtip[hart], level);
    }
}

gint64
ferry_clint_poll(FerryDevice *dev, guint hart)
{
    Clint *c = (Clint *) dev;
    if (hart >= c->n)
        return G_MAXINT64;
    guint64 now = now_ticks(c);
    /* Under the device lock: an mtime or mtimecmp write updates the line too. */
    g_mutex_lock(&dev->lock);
    update_mtip(c, hart, now);
    g_mutex_unlock(&dev->lock);
    guint64 cmp = __atomic_load_n(&c->mtimecmp[hart], __ATOMIC_ACQUIRE);
    if (now >= cmp || cmp == G_MAXUINT64)
        return G_MAXINT64;
    guint64 wait_ticks = cmp - now;
    if (wait_ticks > (guint64) G_MAXINT64 / 10)
        return G_MAXINT64;
    return g_get_monotonic_time() + (gint64) ((wait_ticks + 9) / 10);
}

static uint64_t
extract(guint64 reg, uint64_t offset_in_reg, unsigned size)
{
    guint64 v = reg >> (offset_in_reg * 8);
    return size >= 8 ? v : v & ((1ULL << (size * 8)) - 1);
}

static guint64
merge(guint64 reg, uint64_t offset_in_reg, unsigned size, uint64_t value)
{
    if (size >= 8)
        return value;
    guint64 mask = ((1ULL << (size * 8)) - 1) << (offset_in_reg * 8);
    return (reg & ~mask) | ((value << (offset_in_reg * 8)) & mask);
}

static uint64_t
clint_read(FerryDevice *dev, uint64_t off, unsigned size)
{
    Clint *c = (Clint *) dev;

    if (off < MSIP_BASE + 4ULL * c->n && off < MTIMECMP_BASE)
        return off % 4 == 0 ? c->msip_val[off / 4] : 0;
    if (off >= MTIMECMP_BASE && off < MTIMECMP_BASE + 8ULL * c->n) {
        guint h = (off - MTIMECMP_BASE) / 8;
        return extract(__atomic_load_n(&c->mtimecmp[h], __ATOMIC_RELAXED), off % 8, size);
    }
    if (off >= MTIME_OFF && off < MTIME_OFF + 8)
        return extract(now_ticks(c), off - MTIME_OFF, size);
    return 0;
}

static void
clint_write(FerryDevice *dev, uint64_t off, uint64_t value, unsigned size)
{
    Clint *c = (Clint *) dev;

    if (off < MSIP_BASE + 4ULL * c->n && off < MTIMECMP_BASE) {
        if (off % 4)
            return;
        guint h = off / 4;
        c->msip_val[h] = value & 1;
        ferry_irq_set(&c->msip[h], value & 1);
        return;
    }
    if (off >= MTIMECMP_BASE && off < MTIMECMP_BASE + 8ULL * c->n) {
        guint h = (off - MTIMECMP_BASE) / 8;
        guint64 v = merge(c->mtimecmp[h], off % 8, size, value);
        __atomic_store_n(&c->mtimecmp[h], v, __ATOMIC_RELEASE);
        update_mtip(c, h, now_ticks(c));
        return;
    }
    if (off >= MTIME_OFF && off < MTIME_OFF + 8) {
        guint64 want = merge(now_ticks(c), off - MTIME_OFF, size, value);
        guint64 base = now_ticks(c) - (guint64) c->offset;
        __atomic_store_n(&c->offset, (gint64) (want - base), __ATOMIC_RELAXED);
        for (guint h = 0; h < c->n; h++)
            update_mtip(c, h, now_ticks(c));
    }
}

static void
clint_reset(FerryDevice *dev)
{
    Clint *c = (Clint *) dev;
    c->t0_ns = g_get_monotonic_time() * 1000;
    c->offset = 0;
    for (guint h = 0; h < c->n; h++) {
        c->msip_val[h] = 0;
        ferry_irq_set(&c->msip[h], FALSE);
        __atomic_store_n(&c->mtimecmp[h], G_MAXUINT64, __ATOMIC_RELEASE);
        c->mtip_level[h] = FALSE;
        ferry_irq_set(&c->mtip[h], FALSE);
    }
}

static void
clint_destroy(FerryDevice *dev)
{
    Clint *c = (Clint *) dev;
    g_free(c->msip_val);
    g_free(c->mtimecmp);
    g_free(c->mtip_level);
    g_free(c);
}

static const FerryDeviceOps clint_ops = {
    .name = "clint",
    .read = clint_read,
    .write = clint_write,
    .reset = clint_reset,
    .destroy = clint_destroy,
};

FerryDevice *
ferry_clint_new(guint n_harts, FerryIrq *msip, FerryIrq *mtip)
{
    Clint *c = g_new0(Clint, 1);
    ferry_device_init(&c->dev, &clint_ops, "clint");
    c->n = n_harts;
    c->msip = msip;
    c->mtip = mtip;
    c->msip_val = g_new0(guint32, n_harts);
    c->mtimecmp = g_new0(guint64, n_harts);
    c->mtip_level = g_new0(gboolean, n_harts);
    clint_reset(&c->dev);
    return &c->dev;
}

/* plic.c: the platform-level interrupt controller (RISC-V PLIC spec 1.0.0,
 * SiFive layout): priorities at 0x0, pending bits at 0x1000, enables at
 * 0x2000 + 0x80*ctx, threshold at 0x200000 + 0x1000*ctx and claim/complete
 * at +4. Sources are level-triggered: a claimed source is in service until
 * completed, then pending again if its line is still high. */
#include "riscv-devices.h"

#include <string.h>

#define NSRC      FERRY_PLIC_SOURCES
#define NWORDS    (NSRC / 32)

typedef struct {
    FerryDevice dev;
    guint n_ctx;
    FerryIrq *out;
    guint32 priority[NSRC];
    guint32 level[NWORDS];        /* the input lines */
    guint32 pending[NWORDS];
    guint32 in_service[NWORDS];
    guint32 (*enable)[NWORDS];    /* per context */
    guint32 *threshold;
    gboolean *out_level;
} Plic;

static gboolean bit(const guint32 *w, guint i) { return (w[i / 32] >> (i % 32)) & 1; }
static void set_bit(guint32 *w, guint i, gboolean v)
{
    if (v)
        w[i / 32] |= 1u << (i % 32);
    else
        w[i / 32] &= ~(1u << (i % 32));
}

/* Highest-priority pending, enabled source above the threshold (ties: the
 * lowest ID), or 0. */
static guint
best_source(Plic *p, guint ctx)
{
    guint best = 0, best_prio = p->threshold[ctx];
    for (guint s = 1; s < NSRC; s++) {
        if (bit(p->pending, s) && bit(p->enable[ctx], s) && p->priority[s] > best_prio) {
            best = s;
            best_prio = p->priority[s];
        }
    }
    return best;
}

static void
update(Plic *p)
{
    for (guint ctx = 0; ctx < p->n_ctx; ctx++) {
        gboolean level = best_source(p, ctx) != 0;
        if (level != p->out_level[ctx]) {
            p->out_level[ctx] = level;
            ferry_irq_set(&p->out[ctx], level);
        }
    }
}

static uint64_t
plic_read(FerryDevice *dev, uint64_t off, unsigned size)
{
    Plic *p = (Plic *) dev;

    if (size != 4 || off % 4)
        return 0;
    if (off < 4 * NSRC)
        return p->priority[off / 4];
    if (off >= 0x1000 && off < 0x1000 + 4 * NWORDS)
        return p->pending[(off - 0x1000) / 4];
    if (off >= 0x2000 && off < 0x200000) {
        guint ctx = (off - 0x2000) / 0x80, w = ((off - 0x2000) % 0x80) / 4;
        return ctx < p->n_ctx && w < NWORDS ? p->enable[ctx][w] : 0;
    }
    if (off >= 0x200000) {
        guint ctx = (off - 0x200000) / 0x1000, reg = (off - 0x200000) % 0x1000;
        if (ctx >= p->n_ctx)
            return 0;
        if (reg == 0)
            return p->threshold[ctx];
        if (reg == 4) {                             /* claim */
            guint s = best_source(p, ctx);
            if (s) {
                set_bit(p->pending, s, FALSE);
                set_bit(p->in_service, s, TRUE);
                update(p);
            }
            return s;
        }
    }
    return 0;
}

static void
plic_write(FerryDevice *dev, uint64_t off, uint64_t value, unsigned size)
{
    Plic *p = (Plic *) dev;

    if (size != 4 || off % 4)
        return;
    if (off < 4 * NSRC) {
        if (off >= 4)
            p->priority[off / 4] = value & 7;
    } else if (off >= 0x2000 && off < 0x200000) {
        guint ctx = (off - 0x2000) / 0x80, w = ((off - 0x2000) % 0x80) / 4;
        if (ctx < p->n_ctx && w < NWORDS)
            p->enable[ctx][w] = w == 0 ? (guint32) value & ~1u : (guint32) value;
    } else if (off >= 0x200000) {
        guint ctx = (off - 0x200000) / 0x1000, reg = (off - 0x200000) % 0x1000;
        if (ctx >= p->n_ctx)
            return;
        if (reg == 0) {
            p->threshold[ctx] = value & 7;
        } else if (reg == 4) {                      /* complete */
            guint s = value;
            if (s > 0 && s < NSRC && bit(p->in_service, s)) {
                set_bit(p->in_service, s, FALSE);
                if (bit(p->level, s))
                    set_bit(p->pending, s, TRUE);
            }
        }
    }
    update(p);
}

void
ferry_plic_set_irq(FerryDevice *dev, guint src, gboolean level)
{
    Plic *p = (Plic *) dev;

    if (src == 0 || src >= NSRC)
        return;
    g_mutex_lock(&dev->lock);
    set_bit(p->level, src, level);
    if (level && !bit(p->in_service, src))
        set_bit(p->pending, src, TRUE);
    else if (!level)
        set_bit(p->pending, src, FALSE);
    update(p);
    g_mutex_unlock(&dev->lock);
}

static void
plic_irq_set(FerryIrq *irq, gboolean level)
{
    ferry_plic_set_irq(irq->opaque, irq->number, level);
}

void
ferry_plic_irq_init(FerryDevice *dev, FerryIrq *irq, guint src)
{
    irq->set = plic_irq_set;
    irq->opaque = dev;
    irq->number = src;
}

static void
plic_reset(FerryDevice *dev)
{
    Plic *p = (Plic *) dev;
    memset(p->priority, 0, sizeof(p->priority));
    memset(p->pending, 0, sizeof(p->pending));
    memset(p->in_service, 0, sizeof(p->in_service));
    for (guint ctx = 0; ctx < p->n_ctx; ctx++) {
        memset(p->enable[ctx], 0, sizeof(p->enable[ctx]));
        p->threshold[ctx] = 0;
    }
    /* Lines still high stay pending (the devices are reset separately). */
    for (guint w = 0; w < NWORDS; w++)
        p->pending[w] = p->level[w];
    p->pending[0] &= ~1u;
    update(p);
}

static void
plic_destroy(FerryDevice *dev)
{
    Plic *p = (Plic *) dev;
    g_free(p->enable);
    g_free(p->threshold);
    g_free(p->out_level);
    g_free(p);
}

static const FerryDeviceOps plic_ops = {
    .name = "plic",
    .read = plic_read,
    .write = plic_write,
    .reset = plic_reset,
    .destroy = plic_destroy,
};

FerryDevice *
ferry_plic_new(guint n_contexts, FerryIrq *out)
{
    Plic *p = g_new0(Plic, 1);
    ferry_device_init(&p->dev, &plic_ops, "plic");
    p->n_ctx = n_contexts;
    p->out = out;
    p->enable = g_malloc0(sizeof(*p->enable) * n_contexts);
    p->threshold = g_new0(guint32, n_contexts);
    p->out_level = g_new0(gboolean, n_contexts);
    return &p->dev;
}

/* test-riscv-devices.c: the CLINT and PLIC as a guest (or a hostile guest)
 * programs them: levels, claim/complete, priorities and thresholds, and
 * garbage writes that must be ignored. */
#include "../../devices/riscv-devices.h"

typedef struct {
    gboolean level[16];
} Lines;

static void
line_set(FerryIrq *irq, gboolean level)
{
    ((Lines *) irq->opaque)->level[irq->number] = level;
}

static guint32 rd(FerryDevice *d, guint64 off) { return d->ops->read(d, off, 4); }
static void wr(FerryDevice *d, guint64 off, guint32 v) { d->ops->write(d, off, v, 4); }

static void
test_plic_claim_complete(void)
{
    Lines l = { 0 };
    FerryIrq out[2] = { { line_set, &l, 0 }, { line_set, &l, 1 } };    /* hart 0: M, S */
    FerryDevice *p = ferry_plic_new(2, out);

    ferry_plic_set_irq(p, 10, TRUE);
    g_assert_false(l.level[1]);                 /* priority 0: never delivered */
    wr(p, 4 * 10, 3);                           /* priority */
    g_assert_false(l.level[1]);                 /* not enabled */
    wr(p, 0x2000 + 0x80 * 1, 1u << 10);         /* enable for context 1 (S) */
    g_assert_true(l.level[1]);
    g_assert_false(l.level[0]);
    wr(p, 0x200000 + 0x1000 * 1, 3);            /* threshold 3: priority must exceed it */
    g_assert_false(l.level[1]);
    wr(p, 0x200000 + 0x1000 * 1, 0);
    g_assert_true(l.level[1]);
    g_assert_cmphex(rd(p, 0x1000), ==, 1u << 10);   /* pending bit */
    g_assert_cmpuint(rd(p, 0x200004 + 0x1000), ==, 10);  /* claim */
    g_assert_false(l.level[1]);                 /* in service */
    g_assert_cmpuint(rd(p, 0x200004 + 0x1000), ==, 0);   /* nothing else */
    wr(p, 0x200004 + 0x1000, 10);               /* complete: line still high, pending again */
    g_assert_true(l.level[1]);
    ferry_plic_set_irq(p, 10, FALSE);
    g_assert_false(l.level[1]);
    ferry_device_free(p);
}

static void
test_plic_garbage(void)
{
    Lines l = { 0 };
    FerryIrq out[2] = { { line_set, &l, 0 }, { line_set, &l, 1 } };
    FerryDevice *p = ferry_plic_new(2, out);

    /* Out-of-range sources, contexts and offsets, odd sizes: ignored. */
    ferry_plic_set_irq(p, 0, TRUE);
    ferry_plic_set_irq(p, 5000, TRUE);
    wr(p, 0x2000 + 0x80 * 999, 0xFFFFFFFF);
    wr(p, 0x200000 + 0x1000 * 999, 7);
    wr(p, 0x200004 + 0x1000, 4242);             /* completing a source never claimed */
    wr(p, 0x3FFFFFC, 0xFFFFFFFF);
    p->ops->write(p, 4 * 10 + 1, 0xFF, 1);      /* unaligned byte */
    g_assert_cmpuint(rd(p, 0x200004 + 0x1000 * 999), ==, 0);
    g_assert_cmpuint(rd(p, 0), ==, 0);          /* source 0 has no priority */
    wr(p, 0, 7);
    g_assert_cmpuint(rd(p, 0), ==, 0);
    g_assert_false(l.level[0] || l.level[1]);
    ferry_device_free(p);
}

static void
test_clint(void)
{
    Lines l = { 0 };
    FerryIrq msip[2] = { { line_set, &l, 0 }, { line_set, &l, 1 } };
    FerryIrq mtip[2] = { { line_set, &l, 2 }, { line_set, &l, 3 } };
    FerryDevice *c = ferry_clint_new(2, msip, mtip);

    wr(c, 4, 1);                                /* msip of hart 1 */
    g_assert_true(l.level[1]);
    g_assert_false(l.level[0]);
    wr(c, 4, 0);
    g_assert_false(l.level[1]);
    guint64 t0 = ferry_clint_mtime(c);
    g_usleep(2000);
    g_assert_cmpuint(ferry_clint_mtime(c), >, t0 + 10000);   /* 10 MHz: 2 ms > 10000 ticks */
    /* A compare value in the past raises MTIP at once, one far away clears it. */
    c->ops->write(c, 0x4000, 0, 8);
    g_assert_true(l.level[2]);
    c->ops->write(c, 0x4000, G_MAXUINT64, 8);
    g_assert_false(l.level[2]);
    g_assert_cmpint(ferry_clint_poll(c, 0), ==, G_MAXINT64);
    /* Due in about 5 ms: the poll says when to look again. */
    guint64 soon = ferry_clint_mtime(c) + 50000;
    wr(c, 0x4000 + 8, (guint32) soon);          /* hart 1, low then high half */
    wr(c, 0x4000 + 12, (guint32) (soon >> 32));
    gint64 when = ferry_clint_poll(c, 1);
    g_assert_cmpint(when, >, g_get_monotonic_time());
    g_assert_cmpint(when, <, g_get_monotonic_time() + 10000);
    g_usleep(8000);
    ferry_clint_poll(c, 1);
    g_assert_true(l.level[3]);
    /* Garbage: harts that do not exist, odd offsets. */
    wr(c, 4 * 100, 1);
    c->ops->write(c, 0x4000 + 8 * 100, 0, 8);
    wr(c, 2, 1);
    g_assert_cmpint(ferry_clint_poll(c, 100), ==, G_MAXINT64);
    g_assert_false(l.level[0]);
    ferry_device_free(c);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    g_test_add_func("/plic/claim-complete", test_plic_claim_complete);
    g_test_add_func("/plic/garbage", test_plic_garbage);
    g_test_add_func("/clint/timer-and-ipi", test_clint);
    return g_test_run();
}

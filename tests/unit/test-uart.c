/* test-uart.c: the 16550A register model as a guest driver sees it. */
#include "../../devices/uart-16550.h"

typedef struct {
    GString *out;
    gboolean level;
    guint edges;
} Fixture;

static void
capture(const guint8 *data, gsize len, gpointer user_data)
{
    g_string_append_len(((Fixture *) user_data)->out, (const char *) data, len);
}

static void
irq_set(FerryIrq *irq, gboolean level)
{
    Fixture *f = irq->opaque;
    if (level && !f->level)
        f->edges++;
    f->level = level;
}

static guint8 rd(FerryDevice *d, unsigned reg) { return d->ops->read(d, reg, 1); }
static void wr(FerryDevice *d, unsigned reg, guint8 v) { d->ops->write(d, reg, v, 1); }

static void
test_transmit_and_lsr(void)
{
    Fixture f = { g_string_new(NULL) };
    FerryIrq irq = { irq_set, &f, 4 };
    FerryChardev *chr = ferry_chardev_new_callback(capture, &f);
    FerryDevice *d = ferry_uart_16550_new("com1", chr, &irq, 0);

    g_assert_cmphex(rd(d, 5) & 0x60, ==, 0x60);      /* THRE and TEMT */
    wr(d, 0, 'o');
    wr(d, 0, 'k');
    g_assert_cmpstr(f.out->str, ==, "ok");
    g_assert_cmphex(rd(d, 2), ==, 0x01);             /* no interrupt pending */
    ferry_device_free(d);
    ferry_chardev_free(chr);
    g_string_free(f.out, TRUE);
}

static void
test_divisor_latch(void)
{
    Fixture f = { g_string_new(NULL) };
    FerryChardev *chr = ferry_chardev_new_callback(capture, &f);
    FerryDevice *d = ferry_uart_16550_new("com1", chr, NULL, 0);

    wr(d, 3, 0x80);                                   /* DLAB */
    wr(d, 0, 0x01);
    wr(d, 1, 0x00);                                   /* 115200 baud */
    g_assert_cmphex(rd(d, 0), ==, 0x01);
    g_assert_cmphex(rd(d, 1), ==, 0x00);
    wr(d, 3, 0x03);                                   /* 8N1, DLAB off */
    wr(d, 0, 'x');                                    /* goes out, not to the latch */
    g_assert_cmpstr(f.out->str, ==, "x");
    g_assert_cmphex(rd(d, 3), ==, 0x03);
    ferry_device_free(d);
    ferry_chardev_free(chr);
    g_string_free(f.out, TRUE);
}

static void
test_receive_interrupt(void)
{
    Fixture f = { g_string_new(NULL) };
    FerryIrq irq = { irq_set, &f, 4 };
    FerryChardev *chr = ferry_chardev_new_callback(capture, &f);
    FerryDevice *d = ferry_uart_16550_new("com1", chr, &irq, 0);

    ferry_uart_16550_receive(d, (const guint8 *) "ab", 2);
    g_assert_false(f.level);                          /* IER off: no interrupt */
    g_assert_cmphex(rd(d, 5) & 1, ==, 1);             /* but data ready */
    wr(d, 1, 0x01);                                   /* ERBFI */
    g_assert_true(f.level);
    g_assert_cmphex(rd(d, 2) & 0x0F, ==, 0x04);       /* received data available */
    g_assert_cmphex(rd(d, 0), ==, 'a');
    g_assert_true(f.level);
    g_assert_cmphex(rd(d, 0), ==, 'b');
    g_assert_false(f.level);                          /* drained: line drops */
    g_assert_cmphex(rd(d, 5) & 1, ==, 0);

    /* FIFO on with trigger 4: fewer bytes report a character timeout. */
    wr(d, 2, 0x41);
    ferry_uart_16550_receive(d, (const guint8 *) "xy", 2);
    g_assert_cmphex(rd(d, 2), ==, 0xCC);
    ferry_uart_16550_receive(d, (const guint8 *) "zw", 2);
    g_assert_cmphex(rd(d, 2), ==, 0xC4);
    wr(d, 2, 0x43);                                   /* clear the receive FIFO */
    g_assert_cmphex(rd(d, 5) & 1, ==, 0);
    g_assert_false(f.level);
    ferry_device_free(d);
    ferry_chardev_free(chr);
    g_string_free(f.out, TRUE);
}

static void
test_thre_interrupt(void)
{
    Fixture f = { g_string_new(NULL) };
    FerryIrq irq = { irq_set, &f, 4 };
    FerryChardev *chr = ferry_chardev_new_callback(capture, &f);
    FerryDevice *d = ferry_uart_16550_new("com1", chr, &irq, 0);

    wr(d, 1, 0x02);                                   /* ETBEI: THR is empty, so it fires */
    g_assert_true(f.level);
    g_assert_cmphex(rd(d, 2) & 0x0F, ==, 0x02);       /* reading IIR acknowledges */
    g_assert_false(f.level);
    wr(d, 0, 'q');                                    /* sent at once: fires again */
    g_assert_true(f.level);
    wr(d, 1, 0x00);
    g_assert_false(f.level);
    ferry_device_free(d);
    ferry_chardev_free(chr);
    g_string_free(f.out, TRUE);
}

static void
test_loopback_and_scratch(void)
{
    Fixture f = { g_string_new(NULL) };
    FerryChardev *chr = ferry_chardev_new_callback(capture, &f);
    FerryDevice *d = ferry_uart_16550_new("com1", chr, NULL, 0);

    /* Linux's 8250 probe: loopback with RTS|OUT2 must read CTS|DCD. */
    wr(d, 4, 0x10 | 0x0A);
    g_assert_cmphex(rd(d, 6) & 0xF0, ==, 0x90);
    wr(d, 0, 'L');
    g_assert_cmpstr(f.out->str, ==, "");              /* loopback: not on the wire */
    g_assert_cmphex(rd(d, 0), ==, 'L');
    wr(d, 4, 0x0B);
    g_assert_cmphex(rd(d, 6) & 0xB0, ==, 0xB0);
    wr(d, 7, 0x5A);
    g_assert_cmphex(rd(d, 7), ==, 0x5A);
    ferry_device_free(d);
    ferry_chardev_free(chr);
    g_string_free(f.out, TRUE);
}

static void
test_overrun_and_reg_shift(void)
{
    Fixture f = { g_string_new(NULL) };
    FerryChardev *chr = ferry_chardev_new_callback(capture, &f);
    FerryDevice *d = ferry_uart_16550_new("uart0", chr, NULL, 2);   /* registers 4 bytes apart */
    g_autofree guint8 *lots = g_malloc0(10000);

    ferry_uart_16550_receive(d, lots, 10000);
    g_assert_cmphex(d->ops->read(d, 5 << 2, 1) & 0x03, ==, 0x03);  /* DR + overrun */
    g_assert_cmphex(d->ops->read(d, 5 << 2, 1) & 0x02, ==, 0x00);  /* OE clears on read */
    d->ops->write(d, 7 << 2, 0x33, 1);
    g_assert_cmphex(d->ops->read(d, 7 << 2, 1), ==, 0x33);
    ferry_device_free(d);
    ferry_chardev_free(chr);
    g_string_free(f.out, TRUE);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    g_test_add_func("/uart/transmit-and-lsr", test_transmit_and_lsr);
    g_test_add_func("/uart/divisor-latch", test_divisor_latch);
    g_test_add_func("/uart/receive-interrupt", test_receive_interrupt);
    g_test_add_func("/uart/thre-interrupt", test_thre_interrupt);
    g_test_add_func("/uart/loopback-and-scratch", test_loopback_and_scratch);
    g_test_add_func("/uart/overrun-and-reg-shift", test_overrun_and_reg_shift);
    return g_test_run();
}

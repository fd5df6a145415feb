/* uart-16550.c: National Semiconductor PC16550D model.
 *
 * Transmission is instant (THR empty again at once); reception goes through
 * a 16-byte FIFO as the guest sees it, backed by a larger queue so a paste
 * into the console is not lost. Interrupts follow the PC16550D data sheet's
 * priority order: line status, received data, THR empty, modem status. */
#include "uart-16550.h"

#include <string.h>

enum {
    RBR = 0, THR = 0, DLL = 0, IER = 1, DLM = 1, IIR = 2, FCR = 2,
    LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7,
};

#define IER_RDI   0x01
#define IER_THRI  0x02
#define IER_RLSI  0x04
#define IER_MSI   0x08

#define IIR_NONE  0x01
#define IIR_MSI   0x00
#define IIR_THRI  0x02
#define IIR_RDI   0x04
#define IIR_RLSI  0x06
#define IIR_CTI   0x0C
#define IIR_FIFO  0xC0

#define LSR_DR    0x01
#define LSR_OE    0x02
#define LSR_THRE  0x20
#define LSR_TEMT  0x40

#define MCR_LOOP  0x10
#define LCR_DLAB  0x80

#define RXQ_SIZE  4096

typedef struct {
    FerryDevice dev;
    FerryChardev *chr;
    FerryIrq *irq;
    unsigned reg_shift;

    guint8 ier, lcr, mcr, lsr_err, msr, scr, fcr;
    guint16 divisor;
    gboolean thr_ipending;
    gboolean irq_level;

    guint8 rxq[RXQ_SIZE];
    guint rx_head, rx_count;
} Uart;

static const guint trigger_levels[4] = { 1, 4, 8, 14 };

static guint8
compute_iir(Uart *u)
{
    guint8 fifo = (u->fcr & 1) ? IIR_FIFO : 0;

    if ((u->ier & IER_RLSI) && (u->lsr_err & LSR_OE))
        return fifo | IIR_RLSI;
    if ((u->ier & IER_RDI) && u->rx_count) {
        if (!(u->fcr & 1) || u->rx_count >= trigger_levels[u->fcr >> 6])
            return fifo | IIR_RDI;
        /* Below the trigger level the real chip waits four character
         * times; being instant here is what a guest can tell apart least. */
        return fifo | IIR_CTI;
    }
    if ((u->ier & IER_THRI) && u->thr_ipending)
        return fifo | IIR_THRI;
    if ((u->ier & IER_MSI) && (u->msr & 0x0F))
        return fifo | IIR_MSI;
    return fifo | IIR_NONE;
}

static void
update_irq(Uart *u)
{
    gboolean level = !(compute_iir(u) & IIR_NONE);

    if (level != u->irq_level) {
        u->irq_level = level;
        ferry_irq_set(u->irq, level);
    }
}

static guint8
modem_status(Uart *u)
{
    if (u->mcr & MCR_LOOP) {
        /* Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD. */
        guint8 m = u->mcr;
        return ((m & 0x02) ? 0x10 : 0) | ((m & 0x01) ? 0x20 : 0) |
               ((m & 0x04) ? 0x40 : 0) | ((m & 0x08) ? 0x80 : 0) | (u->msr & 0x0F);
    }
    return 0xB0 | (u->msr & 0x0F);     /* DCD, DSR, CTS: a cable is there */
}

static void
rx_push(Uart *u, const guint8 *data, gsize len)
{
    for (gsize i = 0; i < len; i++) {
        if (u->rx_count == RXQ_SIZE) {
            u->lsr_err |= LSR_OE;
            break;
        }
        u->rxq[(u->rx_head + u->rx_count) % RXQ_SIZE] = data[i];
        u->rx_count++;
    }
}

static guint8
rx_pop(Uart *u)
{
    if (!u->rx_count)
        return 0;
    guint8 b = u->rxq[u->rx_head];
    u->rx_head = (u->rx_head + 1) % RXQ_SIZE;
    u->rx_count--;
    return b;
}

static uint64_t
uart_read(FerryDevice *dev, uint64_t offset, unsigned size)
{
    Uart *u = (Uart *) dev;
    guint8 v = 0;

    switch (offset >> u->reg_shift) {
    case RBR:
        if (u->lcr & LCR_DLAB) {
            v = u->divisor & 0xFF;
        } else {
            v = rx_pop(u);
        }
        break;
    case IER:
        v = (u->lcr & LCR_DLAB) ? u->divisor >> 8 : u->ier;
        break;
    case IIR:
        v = compute_iir(u);
        /* Reading IIR when it reports THR empty acknowledges that. */
        if ((v & 0x0F) == IIR_THRI)
            u->thr_ipending = FALSE;
        break;
    case LCR: v = u->lcr; break;
    case MCR: v = u->mcr; break;
    case LSR:
        v = LSR_THRE | LSR_TEMT | (u->rx_count ? LSR_DR : 0) | u->lsr_err;
        u->lsr_err = 0;
        break;
    case MSR:
        v = modem_status(u);
        u->msr &= 0xF0;             /* delta bits clear on read */
        break;
    case SCR: v = u->scr; break;
    }
    update_irq(u);
    return v;
}

static void
uart_write(FerryDevice *dev, uint64_t offset, uint64_t value, unsigned size)
{
    Uart *u = (Uart *) dev;
    guint8 v = value;

    switch (offset >> u->reg_shift) {
    case THR:
        if (u->lcr & LCR_DLAB) {
            u->divisor = (u->divisor & 0xFF00) | v;
            break;
        }
        if (u->mcr & MCR_LOOP)
            rx_push(u, &v, 1);
        else
            ferry_chardev_write(u->chr, &v, 1);
        /* Sent at once: the holding register is empty again. */
        u->thr_ipending = TRUE;
        break;
    case IER:
        if (u->lcr & LCR_DLAB) {
            u->divisor = (u->divisor & 0x00FF) | (v << 8);
            break;
        }
        if (!(u->ier & IER_THRI) && (v & IER_THRI))
            u->thr_ipending = TRUE;
        u->ier = v & 0x0F;
        break;
    case FCR:
        if (v & 0x02) {
            u->rx_head = u->rx_count = 0;
            u->lsr_err &= ~LSR_OE;
        }
        u->fcr = v & 0xC9;
        break;
    case LCR: u->lcr = v; break;
    case MCR: u->mcr = v & 0x1F; break;
    case LSR: break;                /* read-only (factory test) */
    case MSR: break;
    case SCR: u->scr = v; break;
    }
    update_irq(u);
}

static void
uart_reset(FerryDevice *dev)
{
    Uart *u = (Uart *) dev;

    u->ier = u->lcr = u->mcr = u->lsr_err = u->msr = u->scr = u->fcr = 0;
    u->divisor = 12;                /* 9600 baud */
    u->thr_ipending = FALSE;
    u->rx_head = u->rx_count = 0;
    if (u->irq_level) {
        u->irq_level = FALSE;
        ferry_irq_set(u->irq, FALSE);
    }
}

static void
uart_destroy(FerryDevice *dev)
{
    Uart *u = (Uart *) dev;
    ferry_chardev_set_frontend(u->chr, NULL, NULL, NULL);
    g_free(u);
}

static const FerryDeviceOps uart_ops = {
    .name = "uart-16550",
    .read = uart_read,
    .write = uart_write,
    .reset = uart_reset,
    .destroy = uart_destroy,
};

void
ferry_uart_16550_receive(FerryDevice *dev, const guint8 *data, gsize len)
{
    Uart *u = (Uart *) dev;

    g_mutex_lock(&dev->lock);
    rx_push(u, data, len);
    update_irq(u);
    g_mutex_unlock(&dev->lock);
}

static void
on_chardev_input(const guint8 *data, gsize len, gpointer user_data)
{
    ferry_uart_16550_receive(user_data, data, len);
}

FerryDevice *
ferry_uart_16550_new(const char *id, FerryChardev *chr, FerryIrq *irq, unsigned reg_shift)
{
    Uart *u = g_new0(Uart, 1);

    ferry_device_init(&u->dev, &uart_ops, id);
    u->chr = chr;
    u->irq = irq;
    u->reg_shift = reg_shift;
    uart_reset(&u->dev);
    if (chr)
        ferry_chardev_set_frontend(chr, on_chardev_input, NULL, u);
    return &u->dev;
}

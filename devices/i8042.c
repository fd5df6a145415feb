/* i8042.c: the PC keyboard controller, enough for firmware and Linux to
 * probe it and for its reset line (command 0xFE, or output port bit 0).
 * No keyboard is attached yet: the input devices come with the display. */
#include "pc-devices.h"

typedef struct {
    FerryDevice dev;
    const FerryPlatform *platform;
    FerryIrq *irq1, *irq12;
    guint8 cmd_byte;          /* controller configuration byte */
    guint8 pending_cmd;       /* command waiting for its data byte on 0x60 */
    guint8 out[16];
    guint out_head, out_count;
    guint8 out_aux[16];       /* which queued bytes came from the aux port */
    guint8 outport;
} I8042;

#define STS_OBF   0x01
#define STS_SYS   0x04
#define STS_CMD   0x08
#define STS_AUXOBF 0x20

static void
update_irq(I8042 *k)
{
    gboolean kbd = FALSE, aux = FALSE;
    if (k->out_count) {
        gboolean is_aux = k->out_aux[k->out_head];
        kbd = !is_aux && (k->cmd_byte & 0x01);
        aux = is_aux && (k->cmd_byte & 0x02);
    }
    ferry_irq_set(k->irq1, kbd);
    ferry_irq_set(k->irq12, aux);
}

static void
push(I8042 *k, guint8 v, gboolean aux)
{
    if (k->out_count == G_N_ELEMENTS(k->out))
        return;
    guint i = (k->out_head + k->out_count) % G_N_ELEMENTS(k->out);
    k->out[i] = v;
    k->out_aux[i] = aux;
    k->out_count++;
}

static uint64_t
i8042_read(FerryDevice *dev, uint64_t offset, unsigned size)
{
    I8042 *k = (I8042 *) dev;

    if (offset == 4) {
        guint8 st = STS_SYS | (k->pending_cmd ? STS_CMD : 0);
        if (k->out_count)
            st |= STS_OBF | (k->out_aux[k->out_head] ? STS_AUXOBF : 0);
        return st;
    }
    if (offset != 0)
        return 0xFF;            /* 0x61-0x63 belong to others (KVM's PIT owns 0x61) */
    if (!k->out_count)
        return 0;
    guint8 v = k->out[k->out_head];
    k->out_head = (k->out_head + 1) % G_N_ELEMENTS(k->out);
    k->out_count--;
    update_irq(k);
    return v;
}

static void
controller_command(I8042 *k, guint8 cmd)
{
    switch (cmd) {
    case 0x20: push(k, k->cmd_byte, FALSE); break;   /* read configuration byte */
    case 0x60: case 0xD1: case 0xD2: case 0xD3: case 0xD4:
        k->pending_cmd = cmd;                        /* data follows on port 0x60 */
        break;
    case 0xA7: k->cmd_byte |= 0x20; break;           /* disable aux */
    case 0xA8: k->cmd_byte &= ~0x20; break;          /* enable aux */
    case 0xA9: push(k, 0x00, FALSE); break;          /* aux interface test: ok */
    case 0xAA: push(k, 0x55, FALSE); break;          /* self test passed */
    case 0xAB: push(k, 0x00, FALSE); break;          /* keyboard interface test: ok */
    case 0xAD: k->cmd_byte |= 0x10; break;           /* disable keyboard */
    case 0xAE: k->cmd_byte &= ~0x10; break;          /* enable keyboard */
    case 0xC0: push(k, 0x00, FALSE); break;          /* input port */
    case 0xD0: push(k, k->outport, FALSE); break;    /* read output port */
    case 0xFE:                                       /* pulse reset line */
        ferry_platform_request(k->platform, FERRY_PLATFORM_RESET, "i8042 reset (0xFE)");
        break;
    default:
        if (cmd >= 0xF0)                             /* pulse output bits: bit 0 is reset */
            if (!(cmd & 1))
                ferry_platform_request(k->platform, FERRY_PLATFORM_RESET, "i8042 output pulse");
        break;
    }
}

static void
i8042_write(FerryDevice *dev, uint64_t offset, uint64_t value, unsigned size)
{
    I8042 *k = (I8042 *) dev;
    guint8 v = value;

    if (offset == 4) {
        k->pending_cmd = 0;
        controller_command(k, v);
    } else if (offset == 0) {
        guint8 cmd = k->pending_cmd;
        k->pending_cmd = 0;
        switch (cmd) {
        case 0x60: k->cmd_byte = v; break;
        case 0xD1:
            k->outport = v;
            if (!(v & 1))
                ferry_platform_request(k->platform, FERRY_PLATFORM_RESET, "i8042 output port reset");
            break;
        case 0xD2: push(k, v, FALSE); break;         /* echo as keyboard byte */
        case 0xD3: push(k, v, TRUE); break;          /* echo as aux byte */
        case 0xD4: break;                            /* to the mouse: none is attached */
        default:
            /* A byte for the keyboard: there is none, so nothing answers and
             * the guest's driver times out, as with no keyboard plugged in. */
            break;
        }
    }
    update_irq(k);
}

static void
i8042_reset(FerryDevice *dev)
{
    I8042 *k = (I8042 *) dev;
    k->cmd_byte = 0x45;   /* kbd irq on, system flag, translation */
    k->pending_cmd = 0;
    k->out_head = k->out_count = 0;
    k->outport = 0x03;
    update_irq(k);
}

static const FerryDeviceOps i8042_ops = {
    .name = "i8042",
    .read = i8042_read,
    .write = i8042_write,
    .reset = i8042_reset,
};

FerryDevice *
ferry_i8042_new(const FerryPlatform *platform, FerryIrq *irq1, FerryIrq *irq12)
{
    I8042 *k = g_new0(I8042, 1);
    ferry_device_init(&k->dev, &i8042_ops, "i8042");
    k->platform = platform;
    k->irq1 = irq1;
    k->irq12 = irq12;
    i8042_reset(&k->dev);
    return &k->dev;
}

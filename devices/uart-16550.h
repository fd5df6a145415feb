/* uart-16550.h: a 16550A UART (registers, FIFOs, interrupts), shared by the
 * pc machine (COM1 on port 0x3F8, IRQ 4) and the riscv virt machine (MMIO
 * 0x10000000, PLIC source 10). */
#pragma once

#include "device.h"
#include "chardev.h"

G_BEGIN_DECLS

/* reg_shift: registers are 1 << reg_shift bytes apart (0 on a PC). The UART
 * becomes the front end of chr (which it does not own). */
FerryDevice *ferry_uart_16550_new(const char *id, FerryChardev *chr, FerryIrq *irq, unsigned reg_shift);
/* Bytes as if received on the line (tests; the chardev front end uses it too). */
void ferry_uart_16550_receive(FerryDevice *dev, const guint8 *data, gsize len);

G_END_DECLS

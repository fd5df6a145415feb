/* machine-riscv-virt-private.h: what the software-CPU accelerator needs from
 * the riscv "virt" machine (the two are made for each other). */
#pragma once

#include "vm-private.h"

/* Interrupt lines into the harts, as FerryIrq numbers given to the
 * accelerator's set_irq: hart * FERRY_RV_LINES_PER_HART + mip bit. */
#define FERRY_RV_LINES_PER_HART 16

/* The CLINT's timer for hart: raises/lowers MTIP, returns the monotonic time
 * (us) of the next look needed, or G_MAXINT64. Any thread. */
gint64  ferry_machine_riscv_virt_poll_timer(FerryVm *vm, guint hart);
/* mtime (10 MHz), for the harts' time CSR. Any thread. */
guint64 ferry_machine_riscv_virt_mtime(FerryVm *vm);

/* riscv-devices.h: the interrupt and power devices of the riscv "virt"
 * machine, one file each: clint.c (SiFive CLINT / ACLINT MSWI + MTIMER),
 * plic.c (SiFive PLIC 1.0.0), sifive-test.c (the test finisher that Linux
 * drives as syscon-poweroff / syscon-reboot). */
#pragma once

#include "device.h"

G_BEGIN_DECLS

/* ---- clint.c: 0x10000 bytes ---- */
#define FERRY_CLINT_SIZE      0x10000
#define FERRY_CLINT_FREQ_HZ   10000000ULL       /* mtime ticks per second */
/* msip[i] and mtip[i] are hart i's MSIP and MTIP lines (n_harts each). */
FerryDevice *ferry_clint_new(guint n_harts, FerryIrq *msip, FerryIrq *mtip);
/* mtime now (any thread, no lock). */
guint64      ferry_clint_mtime(FerryDevice *dev);
/* Raises or lowers hart's MTIP for the current time and returns the host
 * monotonic time (us) at which it next needs a look (G_MAXINT64: never). */
gint64       ferry_clint_poll(FerryDevice *dev, guint hart);

/* ---- plic.c: 0x4000000 bytes ---- */
#define FERRY_PLIC_SIZE       0x4000000
#define FERRY_PLIC_SOURCES    96                /* 1..95 usable; riscv,ndev = 95 */
/* contexts: 2 per hart (M then S); out[ctx] is that context's external
 * interrupt line (MEIP or SEIP of the hart). */
FerryDevice *ferry_plic_new(guint n_contexts, FerryIrq *out);
/* A device's interrupt line into source src (level). Any thread. */
void         ferry_plic_set_irq(FerryDevice *dev, guint src, gboolean level);
/* A FerryIrq that drives source src, for device models. */
void         ferry_plic_irq_init(FerryDevice *dev, FerryIrq *irq, guint src);

/* ---- sifive-test.c: 0x1000 bytes ---- */
#define FERRY_SIFIVE_TEST_POWEROFF 0x5555
#define FERRY_SIFIVE_TEST_FAIL     0x3333
#define FERRY_SIFIVE_TEST_RESET    0x7777
FerryDevice *ferry_sifive_test_new(const FerryPlatform *platform);

G_END_DECLS

/* pc-devices.h: the small legacy devices of the pc machine, one file each:
 * rtc-cmos.c (MC146818 RTC + NVRAM at 0x70), i8042.c (keyboard controller at
 * 0x60/0x64, enough for its reset line), acpi-pm.c (the ACPI PM1 block at
 * 0x600 and the 0xCF9 reset control register). */
#pragma once

#include "device.h"

G_BEGIN_DECLS

/* ---- rtc-cmos.c: ports 0x70-0x71 ---- */
FerryDevice *ferry_rtc_cmos_new(FerryIrq *irq8);
/* The machine writes memory sizes and the CPU count at build time. */
void         ferry_rtc_cmos_set(FerryDevice *dev, guint8 index, guint8 value);
guint8       ferry_rtc_cmos_get(FerryDevice *dev, guint8 index);

/* ---- i8042.c: ports 0x60 and 0x64 ---- */
FerryDevice *ferry_i8042_new(const FerryPlatform *platform, FerryIrq *irq1, FerryIrq *irq12);

/* ---- acpi-pm.c: PM1a_EVT (base), PM1a_CNT (base + 4), PM_TMR (base + 8) ---- */
#define FERRY_ACPI_PM_LEN 12
#define FERRY_ACPI_SLP_TYP_S5 0
FerryDevice *ferry_acpi_pm_new(const FerryPlatform *platform, FerryIrq *sci);
/* Sets PWRBTN_STS and raises the SCI if the guest enabled it. Any thread. */
void         ferry_acpi_pm_power_button(FerryDevice *dev);
/* Port 0xCF9 (1 byte): bit 2 set resets the machine. */
FerryDevice *ferry_reset_cf9_new(const FerryPlatform *platform);

G_END_DECLS

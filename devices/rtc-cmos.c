/* rtc-cmos.c: MC146818-compatible RTC and 128 bytes of CMOS NVRAM.
 *
 * Time comes from the host clock (UTC), in the format register B selects
 * (BCD or binary, 12 or 24 hour). NVRAM survives a VM reset, like a PC's
 * battery-backed CMOS; the bochs/QEMU memory-size bytes (0x15-0x18, 0x30,
 * 0x31, 0x34, 0x35, 0x5B-0x5D, 0x5F) are set by the machine. */
#include "pc-devices.h"

#include <string.h>
#include <time.h>

typedef struct {
    FerryDevice dev;
    FerryIrq *irq;
    guint8 index;
    guint8 ram[128];
} Rtc;

enum { SEC = 0, SEC_ALARM, MIN, MIN_ALARM, HOUR, HOUR_ALARM, WDAY, MDAY, MONTH, YEAR,
       REG_A, REG_B, REG_C, REG_D, CENTURY = 0x32 };

static guint8
to_bcd(Rtc *r, int v)
{
    if (r->ram[REG_B] & 0x04)       /* DM: binary */
        return v;
    return ((v / 10) << 4) | (v % 10);
}

static guint8
read_clock(Rtc *r, guint8 idx)
{
    time_t now = time(NULL);
    struct tm tm;

    gmtime_r(&now, &tm);
    switch (idx) {
    case SEC: return to_bcd(r, tm.tm_sec);
    case MIN: return to_bcd(r, tm.tm_min);
    case HOUR:
        if (!(r->ram[REG_B] & 0x02)) {          /* 12-hour mode */
            int h = tm.tm_hour % 12 ? tm.tm_hour % 12 : 12;
            return to_bcd(r, h) | (tm.tm_hour >= 12 ? 0x80 : 0);
        }
        return to_bcd(r, tm.tm_hour);
    case WDAY: return to_bcd(r, tm.tm_wday + 1);
    case MDAY: return to_bcd(r, tm.tm_mday);
    case MONTH: return to_bcd(r, tm.tm_mon + 1);
    case YEAR: return to_bcd(r, tm.tm_year % 100);
    case CENTURY: return to_bcd(r, (tm.tm_year + 1900) / 100);
    }
    return r->ram[idx];
}

static uint64_t
rtc_read(FerryDevice *dev, uint64_t offset, unsigned size)
{
    Rtc *r = (Rtc *) dev;

    if (offset == 0)
        return 0xFF;                /* the index port is write-only */
    guint8 idx = r->index & 0x7F;
    switch (idx) {
    case SEC: case MIN: case HOUR: case WDAY: case MDAY: case MONTH: case YEAR: case CENTURY:
        return read_clock(r, idx);
    case REG_A: {
        /* UIP: set for the last 244 us of each second, as guests poll it. */
        gint64 us = g_get_real_time() % G_USEC_PER_SEC;
        return (r->ram[REG_A] & 0x7F) | (us >= 1000000 - 244 ? 0x80 : 0);
    }
    case REG_C: {
        guint8 v = r->ram[REG_C];
        r->ram[REG_C] = 0;          /* read clears the flags */
        ferry_irq_set(r->irq, FALSE);
        return v;
    }
    case REG_D:
        return 0x80;                /* VRT: the battery is fine */
    }
    return r->ram[idx];
}

static void
rtc_write(FerryDevice *dev, uint64_t offset, uint64_t value, unsigned size)
{
    Rtc *r = (Rtc *) dev;

    if (offset == 0) {
        r->index = value;           /* bit 7 is the NMI mask: nothing to mask here */
        return;
    }
    guint8 idx = r->index & 0x7F;
    switch (idx) {
    case REG_C: case REG_D:
        return;                     /* read-only */
    case SEC: case MIN: case HOUR: case WDAY: case MDAY: case MONTH: case YEAR: case CENTURY:
        /* Setting the clock is accepted and forgotten: guest time follows the host. */
        return;
    }
    r->ram[idx] = value;
}

static const FerryDeviceOps rtc_ops = {
    .name = "rtc-cmos",
    .read = rtc_read,
    .write = rtc_write,
};

FerryDevice *
ferry_rtc_cmos_new(FerryIrq *irq8)
{
    Rtc *r = g_new0(Rtc, 1);

    ferry_device_init(&r->dev, &rtc_ops, "rtc");
    r->irq = irq8;
    r->ram[REG_A] = 0x26;           /* 32.768 kHz time base, 1024 Hz rate */
    r->ram[REG_B] = 0x02;           /* 24-hour, BCD */
    return &r->dev;
}

void
ferry_rtc_cmos_set(FerryDevice *dev, guint8 index, guint8 value)
{
    Rtc *r = (Rtc *) dev;
    g_mutex_lock(&dev->lock);
    r->ram[index & 0x7F] = value;
    g_mutex_unlock(&dev->lock);
}

guint8
ferry_rtc_cmos_get(FerryDevice *dev, guint8 index)
{
    Rtc *r = (Rtc *) dev;
    g_mutex_lock(&dev->lock);
    guint8 v = r->ram[index & 0x7F];
    g_mutex_unlock(&dev->lock);
    return v;
}

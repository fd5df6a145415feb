/* acpi-pm.c: the ACPI fixed-hardware PM1 block (ACPI 6.4 §4.8.3) and the
 * 0xCF9 reset control register.
 *
 * PM1a_EVT: status (PWRBTN_STS bit 8, TMR_STS bit 0) and enable; PM1a_CNT:
 * SCI_EN (always on: there is no SMM to hand over from) and SLP_TYP/SLP_EN,
 * where S5 powers the machine off; PM_TMR: 24-bit 3.579545 MHz counter. */
#include "pc-devices.h"

#define PM1_PWRBTN   0x0100
#define CNT_SCI_EN   0x0001
#define CNT_SLP_EN   0x2000
#define PM_TIMER_HZ  3579545ULL

typedef struct {
    FerryDevice dev;
    const FerryPlatform *platform;
    FerryIrq *sci;
    guint16 sts, en, cnt;
    gint64 t0_us;
} AcpiPm;

static void
update_sci(AcpiPm *pm)
{
    ferry_irq_set(pm->sci, (pm->sts & pm->en & PM1_PWRBTN) != 0);
}

static guint32
timer_value(AcpiPm *pm)
{
    guint64 us = g_get_monotonic_time() - pm->t0_us;
    /* Split so the product cannot overflow, however long the VM runs. */
    guint64 ticks = (us / G_USEC_PER_SEC) * PM_TIMER_HZ + (us % G_USEC_PER_SEC) * PM_TIMER_HZ / G_USEC_PER_SEC;
    return (guint32) ticks & 0xFFFFFF;
}

static uint64_t
pm_read(FerryDevice *dev, uint64_t offset, unsigned size)
{
    AcpiPm *pm = (AcpiPm *) dev;
    guint32 regs[3] = { pm->sts | ((guint32) pm->en << 16), pm->cnt, timer_value(pm) };
    guint32 word = regs[offset / 4];
    return (word >> ((offset % 4) * 8)) & (size >= 4 ? 0xFFFFFFFFu : (1u << (size * 8)) - 1);
}

static void
pm_write(FerryDevice *dev, uint64_t offset, uint64_t value, unsigned size)
{
    AcpiPm *pm = (AcpiPm *) dev;

    /* Split the access into 16-bit registers as the spec lays them out. */
    for (unsigned i = 0; i < size; i++) {
        guint64 byte_off = offset + i;
        guint8 b = value >> (i * 8);
        switch (byte_off) {
        case 0: pm->sts &= ~(guint16) b; break;              /* write 1 to clear */
        case 1: pm->sts &= ~((guint16) b << 8); break;
        case 2: pm->en = (pm->en & 0xFF00) | b; break;
        case 3: pm->en = (pm->en & 0x00FF) | (b << 8); break;
        case 4: pm->cnt = (pm->cnt & 0xFF00) | b | CNT_SCI_EN; break;
        case 5: pm->cnt = (pm->cnt & 0x00FF) | (b << 8); break;
        default: break;                                         /* timer: read-only */
        }
    }
    update_sci(pm);
    if (pm->cnt & CNT_SLP_EN) {
        guint slp_typ = (pm->cnt >> 10) & 7;
        pm->cnt &= ~CNT_SLP_EN;
        if (slp_typ == FERRY_ACPI_SLP_TYP_S5)
            ferry_platform_request(pm->platform, FERRY_PLATFORM_POWEROFF, "ACPI S5 (PM1a_CNT)");
        else
            g_debug("acpi-pm: sleep type %u is not supported; ignored", slp_typ);
    }
}

static void
pm_reset(FerryDevice *dev)
{
    AcpiPm *pm = (AcpiPm *) dev;
    pm->sts = pm->en = 0;
    pm->cnt = CNT_SCI_EN;
    update_sci(pm);
}

static const FerryDeviceOps pm_ops = {
    .name = "acpi-pm",
    .read = pm_read,
    .write = pm_write,
    .reset = pm_reset,
};

FerryDevice *
ferry_acpi_pm_new(const FerryPlatform *platform, FerryIrq *sci)
{
    AcpiPm *pm = g_new0(AcpiPm, 1);
    ferry_device_init(&pm->dev, &pm_ops, "acpi-pm");
    pm->platform = platform;
    pm->sci = sci;
    pm->t0_us = g_get_monotonic_time();
    pm_reset(&pm->dev);
    return &pm->dev;
}

void
ferry_acpi_pm_power_button(FerryDevice *dev)
{
    AcpiPm *pm = (AcpiPm *) dev;
    g_mutex_lock(&dev->lock);
    pm->sts |= PM1_PWRBTN;
    update_sci(pm);
    g_mutex_unlock(&dev->lock);
}

/* ---- 0xCF9 ---- */

typedef struct {
    FerryDevice dev;
    const FerryPlatform *platform;
    guint8 value;
} ResetCf9;

static uint64_t
cf9_read(FerryDevice *dev, uint64_t offset, unsigned size)
{
    return ((ResetCf9 *) dev)->value;
}

static void
cf9_write(FerryDevice *dev, uint64_t offset, uint64_t value, unsigned size)
{
    ResetCf9 *r = (ResetCf9 *) dev;
    /* Bit 2 (RST_CPU) going to 1 starts the reset; bit 1 selects a hard one. */
    if (value & 0x04)
        ferry_platform_request(r->platform, FERRY_PLATFORM_RESET, "reset control register 0xCF9");
    r->value = value & 0x0A;
}

static const FerryDeviceOps cf9_ops = {
    .name = "reset-cf9",
    .read = cf9_read,
    .write = cf9_write,
};

FerryDevice *
ferry_reset_cf9_new(const FerryPlatform *platform)
{
    ResetCf9 *r = g_new0(ResetCf9, 1);
    ferry_device_init(&r->dev, &cf9_ops, "reset-cf9");
    r->platform = platform;
    return &r->dev;
}

/* acpi-private.h: the ACPI tables of the "pc" machine (RSDP, XSDT, RSDT,
 * FADT, FACS, MADT, DSDT), built into guest RAM before the first vCPU runs.
 * ACPI 6.x §5.2 (tables), §20 (AML); layout in acpi.c. */
#pragma once

#include <glib.h>
#include <ferry/error.h>

G_BEGIN_DECLS

#define FERRY_ACPI_MAX_CPUS      1024u
#define FERRY_ACPI_IOAPIC_ADDR   0xFEC00000u
#define FERRY_ACPI_LAPIC_ADDR    0xFEE00000u
#define FERRY_ACPI_IOAPIC_PINS   24u

/* The fixed-feature registers the engine's PM device implements, as offsets
 * from pm_base (ACPI 6.x §4.8.3). PM1_STS/PM1_EN are 16-bit halves of the
 * 4-byte event block; PM1_CNT is 16 bits; the PM timer is 24 bits at
 * 3.579545 MHz. */
#define FERRY_ACPI_PM1_STS       0x0
#define FERRY_ACPI_PM1_EN        0x2
#define FERRY_ACPI_PM1_CNT       0x4
#define FERRY_ACPI_PM_TMR        0x8
#define FERRY_ACPI_PM_BLOCK_LEN  0xC
#define FERRY_ACPI_PM1_TMR_STS   (1u << 0)   /* PM1_STS / PM1_EN bits */
#define FERRY_ACPI_PM1_PWRBTN    (1u << 8)
#define FERRY_ACPI_PM1_WAK_STS   (1u << 15)
#define FERRY_ACPI_PM1_CNT_SCI_EN (1u << 0)  /* reads as 1: no SMI_CMD, ACPI is always on */
#define FERRY_ACPI_PM1_CNT_SLP_TYP_SHIFT 10
#define FERRY_ACPI_PM1_CNT_SLP_TYP_MASK  (7u << 10)
#define FERRY_ACPI_PM1_CNT_SLP_EN (1u << 13) /* with SLP_TYP 0 (\_S5): power off */
#define FERRY_ACPI_RESET_PORT    0xCF9
#define FERRY_ACPI_RESET_VALUE   0x06

typedef struct {
    guint     n_cpus;            /* 1..1024; CPU i has APIC ID i and ACPI UID i */
    guint16   pm_base;           /* 0x600: PM1a_EVT, +4 PM1a_CNT, +8 PM_TMR */
    guint8    sci_irq;           /* 9: level, active high */
    guint64   table_gpa;         /* guest address of buf; 0xE0000 keeps the RSDP where
                                  * kernels without acpi_rsdp_addr scan for it */
    gsize     table_room;        /* bytes at buf (0x20000 for 0xE0000-0xFFFFF) */
} FerryAcpiConfig;

/* Fills buf (cfg->table_room bytes, which the guest sees at cfg->table_gpa)
 * with the tables and stores the RSDP's guest address in *rsdp_gpa. Bytes of
 * buf past the tables are zeroed. Any thread; no state kept.
 * FERRY_ENGINE_ERROR_INVALID when n_cpus is out of range or the tables do not
 * fit in table_room (nothing useful is left in buf then). */
gboolean ferry_acpi_build(const FerryAcpiConfig *cfg, guint8 *buf, guint64 *rsdp_gpa,
                          GError **error);

/* Bytes ferry_acpi_build() needs for n_cpus with a 64-byte aligned table_gpa,
 * so a machine can size its room. */
gsize ferry_acpi_size(guint n_cpus);

G_END_DECLS

/* acpi.c: ACPI tables for the "pc" machine, written from ACPI 6.x: RSDP (§5.2.5),
 * XSDT/RSDT (§5.2.7-8), FADT rev 6 (§5.2.9), FACS (§5.2.10), MADT rev 5 (§5.2.12)
 * and a DSDT whose AML (§20.2) comes from the small encoder below.
 *
 * Layout inside the caller's region, each table 16-byte aligned (FACS 64):
 *   RSDP | FACS | XSDT | FADT | MADT | DSDT | RSDT (only when below 4 GiB)
 * The RSDP comes first so a region at 0xE0000 puts it where the OS scans. */
#include "acpi-private.h"

#include <string.h>
#include <glib/gi18n-lib.h>

#define OEM_ID        "FERRY "      /* 6 bytes */
#define OEM_TABLE_ID  "FERRYPC "    /* 8 bytes */
#define OEM_REVISION  1
#define CREATOR_ID    "FRRY"
#define CREATOR_REV   1

#define HEADER_LEN    36
#define RSDP_LEN      36
#define FACS_LEN      64
#define FADT_LEN      276           /* revision 6 */
#define FADT_REVISION 6
#define MADT_REVISION 5
#define DSDT_REVISION 2             /* 64-bit AML integers */

/* ---- little-endian stores into a growing image ---- */

static void put8(GByteArray *b, gsize off, guint8 v) { b->data[off] = v; }
static void put16(GByteArray *b, gsize off, guint16 v)
{
    b->data[off] = v & 0xff;
    b->data[off + 1] = v >> 8;
}
static void put32(GByteArray *b, gsize off, guint32 v)
{
    for (int i = 0; i < 4; i++)
        b->data[off + i] = (v >> (8 * i)) & 0xff;
}
static void put64(GByteArray *b, gsize off, guint64 v)
{
    for (int i = 0; i < 8; i++)
        b->data[off + i] = (v >> (8 * i)) & 0xff;
}

static void append_byte(GByteArray *b, guint8 v) { g_byte_array_append(b, &v, 1); }
static void append_bytes(GByteArray *b, const void *p, gsize n) { g_byte_array_append(b, p, n); }

static void append_le(GByteArray *b, guint64 v, guint n)
{
    for (guint i = 0; i < n; i++)
        append_byte(b, (v >> (8 * i)) & 0xff);
}

/* Grows b with zeroes to a multiple of align, measured in guest addresses. */
static gsize align_to(GByteArray *b, guint64 base_gpa, guint align)
{
    while ((base_gpa + b->len) % align)
        append_byte(b, 0);
    return b->len;
}

/* Reserves n zero bytes and returns their offset. */
static gsize reserve(GByteArray *b, gsize n)
{
    gsize off = b->len;
    g_byte_array_set_size(b, off + n);
    memset(b->data + off, 0, n);
    return off;
}

static guint8 checksum(const guint8 *p, gsize n)
{
    guint8 sum = 0;
    for (gsize i = 0; i < n; i++)
        sum += p[i];
    return (guint8)(0x100 - sum);
}

/* §5.2.6 header; length and checksum are fixed in finish_table(). */
static gsize begin_table(GByteArray *b, const char sig[4], guint8 revision)
{
    gsize off = reserve(b, HEADER_LEN);
    memcpy(b->data + off, sig, 4);
    put8(b, off + 8, revision);
    memcpy(b->data + off + 10, OEM_ID, 6);
    memcpy(b->data + off + 16, OEM_TABLE_ID, 8);
    put32(b, off + 24, OEM_REVISION);
    memcpy(b->data + off + 28, CREATOR_ID, 4);
    put32(b, off + 32, CREATOR_REV);
    return off;
}

/* len: the table's length, for tables finished after others were appended. */
static void finish_table_len(GByteArray *b, gsize off, gsize len)
{
    put32(b, off + 4, (guint32)len);
    put8(b, off + 9, 0);
    put8(b, off + 9, checksum(b->data + off, len));
}

static void finish_table(GByteArray *b, gsize off)
{
    finish_table_len(b, off, b->len - off);
}

/* §5.2.3.2 Generic Address Structure, system I/O space. */
static void put_gas_io(GByteArray *b, gsize off, guint16 port, guint8 bit_width, guint8 access_size)
{
    put8(b, off, 1);                /* SystemIO */
    put8(b, off + 1, bit_width);
    put8(b, off + 2, 0);
    put8(b, off + 3, access_size);  /* 1 byte, 2 word, 3 dword */
    put64(b, off + 4, port);
}

/* ---- AML encoder (§20.2) ----
 * Objects that carry a PkgLength are opened, filled, then closed: closing
 * measures the body and inserts the shortest PkgLength encoding in front. */

#define AML_ZERO       0x00
#define AML_ONE        0x01
#define AML_NAME       0x08
#define AML_BYTE       0x0A
#define AML_WORD       0x0B
#define AML_DWORD      0x0C
#define AML_STRING     0x0D
#define AML_QWORD      0x0E
#define AML_SCOPE      0x10
#define AML_BUFFER     0x11
#define AML_PACKAGE    0x12
#define AML_EXT_PREFIX 0x5B
#define AML_DEVICE     0x82           /* after ExtOpPrefix */
#define AML_ROOT_CHAR  0x5C
#define AML_DUAL_NAME  0x2E
#define AML_MULTI_NAME 0x2F

/* PkgLength counts its own bytes: 1 byte up to 63, else a lead byte holding
 * the count of following bytes in bits 7-6 and the low nibble in bits 3-0. */
static guint aml_pkglen_encode(gsize body, guint8 out[4])
{
    guint n;
    gsize total = 0;

    if (body + 1 <= 0x3F) {
        out[0] = (guint8)(body + 1);
        return 1;
    }
    for (n = 2; n <= 4; n++) {
        total = body + n;
        if (total < ((gsize)1 << (4 + 8 * (n - 1))))
            break;
    }
    g_assert(n <= 4);
    out[0] = (guint8)(((n - 1) << 6) | (total & 0x0F));
    for (guint i = 1; i < n; i++)
        out[i] = (total >> (4 + 8 * (i - 1))) & 0xFF;
    return n;
}

static gsize aml_open(GByteArray *b)
{
    return b->len;
}

static void aml_close(GByteArray *b, gsize start)
{
    guint8 enc[4];
    gsize body = b->len - start;
    guint n = aml_pkglen_encode(body, enc);

    g_byte_array_set_size(b, b->len + n);
    memmove(b->data + start + n, b->data + start, body);
    memcpy(b->data + start, enc, n);
}

static void aml_nameseg(GByteArray *b, const char *seg, gsize len)
{
    char s[4] = { '_', '_', '_', '_' };
    g_assert(len >= 1 && len <= 4);
    memcpy(s, seg, len);
    append_bytes(b, s, 4);
}

/* "\_SB_.PCI0", "_HID", "C01F": optional root, dot-separated segments. */
static void aml_namestring(GByteArray *b, const char *path)
{
    g_auto(GStrv) segs = NULL;
    guint n;

    if (*path == '\\') {
        append_byte(b, AML_ROOT_CHAR);
        path++;
    }
    segs = g_strsplit(path, ".", -1);
    n = g_strv_length(segs);
    if (n == 2)
        append_byte(b, AML_DUAL_NAME);
    else if (n > 2) {
        append_byte(b, AML_MULTI_NAME);
        append_byte(b, (guint8)n);
    }
    for (guint i = 0; i < n; i++)
        aml_nameseg(b, segs[i], strlen(segs[i]));
}

static void aml_integer(GByteArray *b, guint64 v)
{
    if (v == 0) {
        append_byte(b, AML_ZERO);
    } else if (v == 1) {
        append_byte(b, AML_ONE);
    } else if (v <= 0xFF) {
        append_byte(b, AML_BYTE);
        append_le(b, v, 1);
    } else if (v <= 0xFFFF) {
        append_byte(b, AML_WORD);
        append_le(b, v, 2);
    } else if (v <= 0xFFFFFFFFu) {
        append_byte(b, AML_DWORD);
        append_le(b, v, 4);
    } else {
        append_byte(b, AML_QWORD);
        append_le(b, v, 8);
    }
}

static void aml_string(GByteArray *b, const char *s)
{
    append_byte(b, AML_STRING);
    append_bytes(b, s, strlen(s) + 1);
}

/* EISAID("PNP0501"): three 5-bit letters and four hex digits, stored big-endian. */
static guint32 aml_eisaid(const char *id)
{
    guint16 vendor = ((id[0] - 0x40) << 10) | ((id[1] - 0x40) << 5) | (id[2] - 0x40);
    guint16 product = (guint16)g_ascii_strtoull(id + 3, NULL, 16);

    return (guint32)(vendor >> 8) | (guint32)(vendor & 0xFF) << 8 |
           (guint32)(product >> 8) << 16 | (guint32)(product & 0xFF) << 24;
}

static void aml_name_begin(GByteArray *b, const char *name)
{
    append_byte(b, AML_NAME);
    aml_namestring(b, name);
}

static void aml_name_integer(GByteArray *b, const char *name, guint64 v)
{
    aml_name_begin(b, name);
    aml_integer(b, v);
}

static void aml_name_string(GByteArray *b, const char *name, const char *s)
{
    aml_name_begin(b, name);
    aml_string(b, s);
}

static gsize aml_scope_open(GByteArray *b, const char *name)
{
    gsize start;

    append_byte(b, AML_SCOPE);
    start = aml_open(b);
    aml_namestring(b, name);
    return start;
}

static gsize aml_device_open(GByteArray *b, const char *name)
{
    gsize start;

    append_byte(b, AML_EXT_PREFIX);
    append_byte(b, AML_DEVICE);
    start = aml_open(b);
    aml_namestring(b, name);
    return start;
}

static gsize aml_package_open(GByteArray *b, guint8 n_elements)
{
    gsize start;

    append_byte(b, AML_PACKAGE);
    start = aml_open(b);
    append_byte(b, n_elements);
    return start;
}

/* Buffer (n) { bytes }: BufferSize is an integer term before the bytes. */
static void aml_buffer(GByteArray *b, const guint8 *bytes, gsize n)
{
    gsize start;

    append_byte(b, AML_BUFFER);
    start = aml_open(b);
    aml_integer(b, n);
    append_bytes(b, bytes, n);
    aml_close(b, start);
}

/* ---- the tables ---- */

static void build_dsdt_body(GByteArray *b, const FerryAcpiConfig *cfg)
{
    gsize sb, dev, pkg;

    /* \_S5: SLP_TYPa = SLP_TYPb = 0; the PM device powers off on SLP_EN. */
    aml_name_begin(b, "_S5_");
    pkg = aml_package_open(b, 2);
    aml_integer(b, 0);
    aml_integer(b, 0);
    aml_close(b, pkg);

    sb = aml_scope_open(b, "\\_SB_");

    /* One processor device per MADT entry, matched by _UID = ACPI Processor UID
     * (§8.4, §5.2.12.2): Linux needs this for x2APIC CPUs. */
    for (guint i = 0; i < cfg->n_cpus; i++) {
        char name[5];
        g_snprintf(name, sizeof name, "C%03X", i);
        dev = aml_device_open(b, name);
        aml_name_string(b, "_HID", "ACPI0007");
        aml_name_integer(b, "_UID", i);
        aml_close(b, dev);
    }

    /* COM1: 0x3F8-0x3FF, IRQ 4 (§6.4.2.1 IRQ, §6.4.2.5 I/O port descriptors). */
    {
        static const guint8 crs[] = {
            0x47, 0x01, 0xF8, 0x03, 0xF8, 0x03, 0x01, 0x08,   /* IO (Decode16, 0x3F8, 0x3F8, 1, 8) */
            0x22, 0x10, 0x00,                                 /* IRQNoFlags () {4} */
            0x79, 0x00,                                       /* EndTag */
        };
        dev = aml_device_open(b, "COM1");
        aml_name_integer(b, "_HID", aml_eisaid("PNP0501"));
        aml_name_integer(b, "_UID", 1);
        aml_name_begin(b, "_CRS");
        aml_buffer(b, crs, sizeof crs);
        aml_close(b, dev);
    }

    aml_close(b, sb);
}

static void build_fadt(GByteArray *b, gsize off, const FerryAcpiConfig *cfg,
                       guint64 facs_gpa, guint64 dsdt_gpa)
{
    guint16 pm = cfg->pm_base;

    gboolean facs_low = facs_gpa <= G_MAXUINT32;

    /* FACS: the 32-bit pointer when it reaches, else the 64-bit one, never
     * both (§5.2.9 X_FIRMWARE_CTRL). The DSDT may have both. */
    put32(b, off + 36, facs_low ? (guint32)facs_gpa : 0);                 /* FIRMWARE_CTRL */
    put32(b, off + 40, dsdt_gpa <= G_MAXUINT32 ? (guint32)dsdt_gpa : 0);  /* DSDT */
    put8(b, off + 45, 0);                       /* Preferred_PM_Profile: unspecified */
    put16(b, off + 46, cfg->sci_irq);           /* SCI_INT */
    /* SMI_CMD 0: no SMM handshake, the OS finds SCI_EN already set. */
    put32(b, off + 56, pm + FERRY_ACPI_PM1_STS); /* PM1a_EVT_BLK */
    put32(b, off + 64, pm + FERRY_ACPI_PM1_CNT); /* PM1a_CNT_BLK */
    put32(b, off + 76, pm + FERRY_ACPI_PM_TMR);  /* PM_TMR_BLK */
    put8(b, off + 88, 4);                       /* PM1_EVT_LEN */
    put8(b, off + 89, 2);                       /* PM1_CNT_LEN */
    put8(b, off + 91, 4);                       /* PM_TMR_LEN */
    put16(b, off + 96, 101);                    /* P_LVL2_LAT > 100: no C2 */
    put16(b, off + 98, 1001);                   /* P_LVL3_LAT > 1000: no C3 */
    put8(b, off + 108, 0);                      /* CENTURY: RTC has no century byte */
    put16(b, off + 109, 0x0003);                /* IAPC_BOOT_ARCH: LEGACY_DEVICES | 8042 */
    put32(b, off + 112,
          (1u << 0) |                           /* WBINVD */
          (1u << 2) |                           /* PROC_C1 */
          (1u << 5) |                           /* SLP_BUTTON: no fixed sleep button */
          (1u << 6) |                           /* FIX_RTC: no RTC_STS in PM1 */
          (1u << 10));                          /* RESET_REG_SUP; PWR_BUTTON clear = fixed button */
    put_gas_io(b, off + 116, FERRY_ACPI_RESET_PORT, 8, 1);  /* RESET_REG */
    put8(b, off + 128, FERRY_ACPI_RESET_VALUE);
    put8(b, off + 131, 0);                      /* FADT minor version */
    put64(b, off + 132, facs_low ? 0 : facs_gpa);  /* X_FIRMWARE_CTRL */
    put64(b, off + 140, dsdt_gpa);              /* X_DSDT */
    put_gas_io(b, off + 148, pm + FERRY_ACPI_PM1_STS, 32, 2);  /* X_PM1a_EVT_BLK */
    put_gas_io(b, off + 172, pm + FERRY_ACPI_PM1_CNT, 16, 2);  /* X_PM1a_CNT_BLK */
    put_gas_io(b, off + 208, pm + FERRY_ACPI_PM_TMR, 32, 3);   /* X_PM_TMR_BLK */
    memcpy(b->data + off + 268, "Ferry\0\0\0", 8);             /* Hypervisor Vendor Identity */
}

static void build_madt(GByteArray *b, const FerryAcpiConfig *cfg)
{
    append_le(b, FERRY_ACPI_LAPIC_ADDR, 4);
    append_le(b, 1, 4);                         /* PCAT_COMPAT: 8259s present */

    /* Boot CPU first. APIC IDs below 255 use type 0, the rest type 9 (§5.2.12.12). */
    for (guint i = 0; i < cfg->n_cpus; i++) {
        if (i < 255) {
            append_byte(b, 0);                  /* Processor Local APIC */
            append_byte(b, 8);
            append_byte(b, (guint8)i);          /* ACPI Processor UID */
            append_byte(b, (guint8)i);          /* APIC ID */
            append_le(b, 1, 4);                 /* Enabled */
        } else {
            append_byte(b, 9);                  /* Processor Local x2APIC */
            append_byte(b, 16);
            append_le(b, 0, 2);
            append_le(b, i, 4);                 /* X2APIC ID */
            append_le(b, 1, 4);                 /* Enabled */
            append_le(b, i, 4);                 /* ACPI Processor UID */
        }
    }

    /* IOAPIC ID 0: its register resets to 0 in KVM, and on x86-64 IOAPIC IDs
     * are a namespace apart from CPU APIC IDs (no APIC bus). */
    append_byte(b, 1);
    append_byte(b, 12);
    append_byte(b, 0);                          /* I/O APIC ID */
    append_byte(b, 0);
    append_le(b, FERRY_ACPI_IOAPIC_ADDR, 4);
    append_le(b, 0, 4);                         /* GSI base */

    /* ISA IRQ 0 (PIT) arrives on pin 2; flags 0 = bus default (edge, high). */
    append_byte(b, 2);
    append_byte(b, 10);
    append_byte(b, 0);                          /* ISA */
    append_byte(b, 0);
    append_le(b, 2, 4);
    append_le(b, 0, 2);

    /* SCI: level-triggered, active high (ISA default would be edge). */
    append_byte(b, 2);
    append_byte(b, 10);
    append_byte(b, 0);
    append_byte(b, cfg->sci_irq);
    append_le(b, cfg->sci_irq, 4);
    append_le(b, 0x1 | (0x3 << 2), 2);          /* polarity high, trigger level */

    /* NMI on LINT1 of every CPU. */
    append_byte(b, 4);                          /* Local APIC NMI */
    append_byte(b, 6);
    append_byte(b, 0xFF);                       /* all processors */
    append_le(b, 0, 2);
    append_byte(b, 1);                          /* LINT1 */
    if (cfg->n_cpus > 255) {
        append_byte(b, 0x0A);                   /* Local x2APIC NMI */
        append_byte(b, 12);
        append_le(b, 0, 2);
        append_le(b, 0xFFFFFFFFu, 4);           /* all processors */
        append_byte(b, 1);
        append_le(b, 0, 3);
    }
}

/* The whole image for cfg, laid out for guest address cfg->table_gpa. */
static GByteArray *build_image(const FerryAcpiConfig *cfg, gsize *rsdp_off)
{
    GByteArray *b = g_byte_array_new();
    guint64 base = cfg->table_gpa;
    gboolean low = TRUE;
    gsize rsdp, facs, xsdt, rsdt = 0, fadt, madt, dsdt;

    align_to(b, base, 16);
    rsdp = reserve(b, RSDP_LEN);

    align_to(b, base, 64);
    facs = reserve(b, FACS_LEN);
    memcpy(b->data + facs, "FACS", 4);
    put32(b, facs + 4, FACS_LEN);
    put8(b, facs + 32, 2);                      /* version */

    /* Offsets are known once the sizes are: FADT and MADT are fixed by n_cpus,
     * so lay out the pointer tables first and patch their entries after. */
    align_to(b, base, 16);
    xsdt = begin_table(b, "XSDT", 1);
    reserve(b, 2 * 8);

    align_to(b, base, 16);
    fadt = begin_table(b, "FACP", FADT_REVISION);
    reserve(b, FADT_LEN - HEADER_LEN);

    align_to(b, base, 16);
    madt = begin_table(b, "APIC", MADT_REVISION);
    build_madt(b, cfg);
    finish_table(b, madt);

    align_to(b, base, 16);
    dsdt = begin_table(b, "DSDT", DSDT_REVISION);
    build_dsdt_body(b, cfg);
    finish_table(b, dsdt);

    /* An RSDT too, for OSes that predate the XSDT, when 32-bit pointers reach. */
    align_to(b, base, 16);
    if (base + b->len + HEADER_LEN + 8 > G_MAXUINT32)
        low = FALSE;
    if (low) {
        rsdt = begin_table(b, "RSDT", 1);
        append_le(b, base + fadt, 4);
        append_le(b, base + madt, 4);
        finish_table(b, rsdt);
    }

    build_fadt(b, fadt, cfg, base + facs, base + dsdt);
    finish_table_len(b, fadt, FADT_LEN);

    put64(b, xsdt + HEADER_LEN, base + fadt);
    put64(b, xsdt + HEADER_LEN + 8, base + madt);
    finish_table_len(b, xsdt, HEADER_LEN + 2 * 8);

    memcpy(b->data + rsdp, "RSD PTR ", 8);
    memcpy(b->data + rsdp + 9, OEM_ID, 6);
    put8(b, rsdp + 15, 2);                      /* revision: ACPI 2.0+ */
    put32(b, rsdp + 16, low ? (guint32)(base + rsdt) : 0);
    put32(b, rsdp + 20, RSDP_LEN);
    put64(b, rsdp + 24, base + xsdt);
    put8(b, rsdp + 8, checksum(b->data + rsdp, 20));
    put8(b, rsdp + 32, checksum(b->data + rsdp, RSDP_LEN));

    *rsdp_off = rsdp;
    return b;
}

gsize ferry_acpi_size(guint n_cpus)
{
    FerryAcpiConfig cfg = { .n_cpus = n_cpus, .pm_base = 0x600, .sci_irq = 9, .table_gpa = 0xE0000 };
    gsize rsdp_off, len;
    GByteArray *b = build_image(&cfg, &rsdp_off);

    len = b->len;
    g_byte_array_unref(b);
    return len;
}

gboolean ferry_acpi_build(const FerryAcpiConfig *cfg, guint8 *buf, guint64 *rsdp_gpa,
                          GError **error)
{
    g_autoptr(GByteArray) b = NULL;
    gsize rsdp_off;

    g_return_val_if_fail(cfg != NULL, FALSE);
    g_return_val_if_fail(buf != NULL || cfg->table_room == 0, FALSE);
    g_return_val_if_fail(rsdp_gpa != NULL, FALSE);
    g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

    if (cfg->n_cpus < 1 || cfg->n_cpus > FERRY_ACPI_MAX_CPUS) {
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                    _("%u CPUs requested: a pc machine has 1 to %u CPUs. Choose a CPU count in that range."),
                    cfg->n_cpus, FERRY_ACPI_MAX_CPUS);
        return FALSE;
    }
    if (cfg->sci_irq >= 16) {
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                    _("ACPI SCI on IRQ %u: it must be an ISA IRQ (0-15)."), cfg->sci_irq);
        return FALSE;
    }

    b = build_image(cfg, &rsdp_off);
    if (b->len > cfg->table_room) {
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                    "ACPI tables for %u CPUs need %u bytes but the machine reserves only %" G_GSIZE_FORMAT
                    " bytes at 0x%" G_GINT64_MODIFIER "x: use fewer CPUs.",
                    cfg->n_cpus, b->len, cfg->table_room, cfg->table_gpa);
        return FALSE;
    }

    memcpy(buf, b->data, b->len);
    memset(buf + b->len, 0, cfg->table_room - b->len);
    *rsdp_gpa = cfg->table_gpa + rsdp_off;
    return TRUE;
}

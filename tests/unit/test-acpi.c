/* test-acpi.c: the pc machine's ACPI tables (engine/acpi.c): checksums, the
 * pointer chain from the RSDP, FADT fields, MADT entries for 1..1024 CPUs, and
 * the DSDT's AML, walked here and decompiled by iasl when it is installed. */
#include "acpi-private.h"

#include <glib/gstdio.h>
#include <string.h>

#define ROOM    0x20000
#define BASE    0xE0000

static guint32 rd32(const guint8 *p) { return p[0] | p[1] << 8 | p[2] << 16 | (guint32)p[3] << 24; }
static guint64 rd64(const guint8 *p) { return rd32(p) | (guint64)rd32(p + 4) << 32; }
static guint16 rd16(const guint8 *p) { return p[0] | p[1] << 8; }

typedef struct {
    guint8 *buf;
    guint64 base;
    guint64 rsdp;
} Tables;

static void tables_build(Tables *t, guint n_cpus, guint64 base)
{
    FerryAcpiConfig cfg = {
        .n_cpus = n_cpus, .pm_base = 0x600, .sci_irq = 9,
        .table_gpa = base, .table_room = ROOM,
    };
    g_autoptr(GError) error = NULL;

    t->buf = g_malloc(ROOM);
    memset(t->buf, 0xAA, ROOM);           /* the builder must zero what it leaves */
    t->base = base;
    g_assert_true(ferry_acpi_build(&cfg, t->buf, &t->rsdp, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(t->rsdp, >=, base);
    g_assert_cmpuint(t->rsdp % 16, ==, 0);
}

static void tables_clear(Tables *t)
{
    g_free(t->buf);
}

/* Host pointer for a guest address inside the region, with room for len bytes. */
static const guint8 *at(const Tables *t, guint64 gpa, gsize len)
{
    g_assert_cmpuint(gpa, >=, t->base);
    g_assert_cmpuint(gpa - t->base + len, <=, ROOM);
    return t->buf + (gpa - t->base);
}

static guint8 sum(const guint8 *p, gsize n)
{
    guint8 s = 0;
    for (gsize i = 0; i < n; i++)
        s += p[i];
    return s;
}

/* A checked table: signature, length inside the region, checksum zero. */
static const guint8 *table(const Tables *t, guint64 gpa, const char *sig)
{
    const guint8 *h = at(t, gpa, 36);
    guint32 len = rd32(h + 4);

    g_assert_cmpmem(h, 4, sig, 4);
    at(t, gpa, len);
    g_assert_cmpuint(sum(h, len), ==, 0);
    return h;
}

static const guint8 *xsdt_find(const Tables *t, const char *sig)
{
    const guint8 *rsdp = at(t, t->rsdp, 36);
    const guint8 *xsdt = table(t, rd64(rsdp + 24), "XSDT");
    guint n = (rd32(xsdt + 4) - 36) / 8;

    for (guint i = 0; i < n; i++) {
        guint64 gpa = rd64(xsdt + 36 + 8 * i);
        if (memcmp(at(t, gpa, 4), sig, 4) == 0)
            return table(t, gpa, sig);
    }
    g_assert_not_reached();
}

static void test_checksums(gconstpointer data)
{
    guint n_cpus = GPOINTER_TO_UINT(data);
    Tables t;
    const guint8 *rsdp, *xsdt, *rsdt, *fadt;

    tables_build(&t, n_cpus, BASE);
    rsdp = at(&t, t.rsdp, 36);
    g_assert_cmpmem(rsdp, 8, "RSD PTR ", 8);
    g_assert_cmpuint(rsdp[15], ==, 2);
    g_assert_cmpuint(rd32(rsdp + 20), ==, 36);
    g_assert_cmpuint(sum(rsdp, 20), ==, 0);
    g_assert_cmpuint(sum(rsdp, 36), ==, 0);

    xsdt = table(&t, rd64(rsdp + 24), "XSDT");
    g_assert_cmpuint(rd32(xsdt + 4), ==, 36 + 2 * 8);
    rsdt = table(&t, rd32(rsdp + 16), "RSDT");
    g_assert_cmpuint(rd32(rsdt + 4), ==, 36 + 2 * 4);
    for (guint i = 0; i < 2; i++)
        g_assert_cmpuint(rd32(rsdt + 36 + 4 * i), ==, rd64(xsdt + 36 + 8 * i));

    fadt = xsdt_find(&t, "FACP");
    xsdt_find(&t, "APIC");
    table(&t, rd64(fadt + 140), "DSDT");
    g_assert_cmpuint(rd32(fadt + 40), ==, rd64(fadt + 140));
    /* FACS: no checksum, 64-byte aligned, 64 bytes. */
    g_assert_cmpuint(rd32(fadt + 36) % 64, ==, 0);
    g_assert_cmpmem(at(&t, rd32(fadt + 36), 64), 4, "FACS", 4);
    g_assert_cmpuint(rd32(at(&t, rd32(fadt + 36), 64) + 4), ==, 64);
    g_assert_cmpuint(rd64(fadt + 132), ==, 0);     /* X_FIRMWARE_CTRL: only one of the two */

    g_assert_cmpuint(ferry_acpi_size(n_cpus), <=, ROOM);
    g_assert_cmpuint(t.buf[ferry_acpi_size(n_cpus)], ==, 0);
    tables_clear(&t);
}

static void test_above_4g(void)
{
    Tables t;
    const guint8 *rsdp, *fadt;

    tables_build(&t, 8, G_GUINT64_CONSTANT(0x1FFFF0000));
    rsdp = at(&t, t.rsdp, 36);
    g_assert_cmpuint(rd32(rsdp + 16), ==, 0);      /* no RSDT up there */
    fadt = xsdt_find(&t, "FACP");
    g_assert_cmpuint(rd32(fadt + 36), ==, 0);
    g_assert_cmpuint(rd64(fadt + 132) % 64, ==, 0);
    g_assert_cmpmem(at(&t, rd64(fadt + 132), 64), 4, "FACS", 4);
    g_assert_cmpuint(rd32(fadt + 40), ==, 0);
    table(&t, rd64(fadt + 140), "DSDT");
    tables_clear(&t);
}

static void assert_gas_io(const guint8 *g, guint16 port, guint8 bits)
{
    g_assert_cmpuint(g[0], ==, 1);                 /* SystemIO */
    g_assert_cmpuint(g[1], ==, bits);
    g_assert_cmpuint(rd64(g + 4), ==, port);
}

static void test_fadt(void)
{
    Tables t;
    const guint8 *f;
    guint32 flags;

    tables_build(&t, 2, BASE);
    f = xsdt_find(&t, "FACP");
    g_assert_cmpuint(rd32(f + 4), ==, 276);
    g_assert_cmpuint(f[8], ==, 6);
    g_assert_cmpuint(rd16(f + 46), ==, 9);         /* SCI_INT */
    g_assert_cmpuint(rd32(f + 48), ==, 0);         /* SMI_CMD: ACPI always enabled */
    g_assert_cmpuint(rd32(f + 56), ==, 0x600);
    g_assert_cmpuint(rd32(f + 64), ==, 0x604);
    g_assert_cmpuint(rd32(f + 76), ==, 0x608);
    g_assert_cmpuint(f[88], ==, 4);
    g_assert_cmpuint(f[89], ==, 2);
    g_assert_cmpuint(f[91], ==, 4);
    flags = rd32(f + 112);
    g_assert_cmpuint(flags & (1u << 4), ==, 0);    /* PWR_BUTTON clear: fixed power button */
    g_assert_cmpuint(flags & (1u << 10), !=, 0);   /* RESET_REG_SUP */
    g_assert_cmpuint(flags & (1u << 20), ==, 0);   /* not HW_REDUCED */
    g_assert_cmpuint(flags & (1u << 8), ==, 0);    /* 24-bit PM timer */
    assert_gas_io(f + 116, 0xCF9, 8);
    g_assert_cmpuint(f[128], ==, 0x06);
    assert_gas_io(f + 148, 0x600, 32);
    assert_gas_io(f + 172, 0x604, 16);
    assert_gas_io(f + 208, 0x608, 32);
    tables_clear(&t);
}

static void test_madt(gconstpointer data)
{
    guint n_cpus = GPOINTER_TO_UINT(data);
    Tables t;
    const guint8 *m, *e, *end;
    guint count[16] = { 0 }, cpu = 0;

    tables_build(&t, n_cpus, BASE);
    m = xsdt_find(&t, "APIC");
    g_assert_cmpuint(m[8], ==, 5);
    g_assert_cmpuint(rd32(m + 36), ==, 0xFEE00000);
    g_assert_cmpuint(rd32(m + 40), ==, 1);
    end = m + rd32(m + 4);
    for (e = m + 44; e < end; e += e[1]) {
        g_assert_cmpuint(e[1], >=, 2);
        g_assert_cmpuint(e + e[1] - m, <=, end - m);
        g_assert_cmpuint(e[0], <, 16);
        count[e[0]]++;
        switch (e[0]) {
        case 0:                                    /* Local APIC: CPUs in order, UID = APIC ID */
            g_assert_cmpuint(e[1], ==, 8);
            g_assert_cmpuint(e[2], ==, cpu);
            g_assert_cmpuint(e[3], ==, cpu);
            g_assert_cmpuint(rd32(e + 4), ==, 1);
            g_assert_cmpuint(cpu, <, 255);
            cpu++;
            break;
        case 9:                                    /* Local x2APIC */
            g_assert_cmpuint(e[1], ==, 16);
            g_assert_cmpuint(rd32(e + 4), ==, cpu);
            g_assert_cmpuint(rd32(e + 8), ==, 1);
            g_assert_cmpuint(rd32(e + 12), ==, cpu);
            g_assert_cmpuint(cpu, >=, 255);
            cpu++;
            break;
        case 1:
            g_assert_cmpuint(e[1], ==, 12);
            g_assert_cmpuint(rd32(e + 4), ==, 0xFEC00000);
            g_assert_cmpuint(rd32(e + 8), ==, 0);
            break;
        case 2:
            g_assert_cmpuint(e[1], ==, 10);
            g_assert_cmpuint(e[2], ==, 0);
            if (e[3] == 0) {
                g_assert_cmpuint(rd32(e + 4), ==, 2);
            } else {
                g_assert_cmpuint(e[3], ==, 9);
                g_assert_cmpuint(rd32(e + 4), ==, 9);
                g_assert_cmpuint(rd16(e + 8), ==, 0xD);   /* level, active high */
            }
            break;
        case 4:
            g_assert_cmpuint(e[1], ==, 6);
            break;
        case 0xA:
            g_assert_cmpuint(e[1], ==, 12);
            break;
        default:
            g_assert_not_reached();
        }
    }
    g_assert_true(e == end);
    g_assert_cmpuint(cpu, ==, n_cpus);
    g_assert_cmpuint(count[0], ==, MIN(n_cpus, 255));
    g_assert_cmpuint(count[9], ==, n_cpus > 255 ? n_cpus - 255 : 0);
    g_assert_cmpuint(count[1], ==, 1);
    g_assert_cmpuint(count[2], ==, 2);
    g_assert_cmpuint(count[4], ==, 1);
    g_assert_cmpuint(count[0xA], ==, n_cpus > 255 ? 1 : 0);
    tables_clear(&t);
}

/* ---- an AML walker for the subset the DSDT uses (ACPI 6.x §20.2) ---- */

typedef struct {
    const guint8 *p, *end;
} Cursor;

typedef struct {
    guint n_devices, n_processors, n_scopes;
    guint pkglen_sizes[5];        /* how many PkgLengths of each encoded size */
    guint8 *uid_seen;             /* per processor _UID */
    guint max_cpus;
    gboolean s5_ok;
    /* inside the current device */
    char hid[16];
    gint64 uid;
} Walk;

static guint8 next(Cursor *c)
{
    g_assert_true(c->p < c->end);
    return *c->p++;
}

static Cursor pkg(Cursor *c, Walk *w)
{
    const guint8 *start = c->p;
    guint8 lead = next(c);
    guint n = lead >> 6;
    guint64 len;
    Cursor inner;

    if (n == 0) {
        len = lead & 0x3F;
    } else {
        g_assert_cmpuint(lead & 0x30, ==, 0);
        len = lead & 0x0F;
        for (guint i = 0; i < n; i++)
            len |= (guint64)next(c) << (4 + 8 * i);
        /* The shortest encoding: a one-byte length would have done otherwise. */
        g_assert_cmpuint(len, >, 0x3F);
    }
    w->pkglen_sizes[n + 1]++;
    g_assert_cmpuint(len, >=, n + 1);
    g_assert_cmpuint(len, <=, (guint64)(c->end - start));
    inner.p = c->p;
    inner.end = start + len;
    c->p = inner.end;
    return inner;
}

static void nameseg(Cursor *c, char out[5])
{
    for (guint i = 0; i < 4; i++) {
        char ch = next(c);
        g_assert_true(g_ascii_isupper(ch) || ch == '_' || (i > 0 && g_ascii_isdigit(ch)));
        out[i] = ch;
    }
    out[4] = 0;
}

/* Returns the last segment. */
static void namestring(Cursor *c, char last[5])
{
    guint n = 1;

    if (c->p < c->end && *c->p == '\\')
        c->p++;
    if (*c->p == 0x2E) {
        c->p++;
        n = 2;
    } else if (*c->p == 0x2F) {
        c->p++;
        n = next(c);
    }
    for (guint i = 0; i < n; i++)
        nameseg(c, last);
}

static gint64 data_object(Cursor *c, Walk *w, char *str, gsize str_len)
{
    guint8 op = next(c);
    gint64 v = 0;

    switch (op) {
    case 0x00: return 0;
    case 0x01: return 1;
    case 0xFF: return -1;
    case 0x0A: case 0x0B: case 0x0C: case 0x0E: {
        guint n = op == 0x0A ? 1 : op == 0x0B ? 2 : op == 0x0C ? 4 : 8;
        for (guint i = 0; i < n; i++)
            v |= (gint64)next(c) << (8 * i);
        return v;
    }
    case 0x0D: {
        gsize i = 0;
        guint8 ch;
        while ((ch = next(c)) != 0) {
            g_assert_cmpuint(ch, <, 0x80);
            if (str && i + 1 < str_len)
                str[i++] = ch;
        }
        if (str)
            str[i] = 0;
        return 0;
    }
    case 0x12: {                                   /* Package */
        Cursor in = pkg(c, w);
        guint n = next(&in), got = 0;
        while (in.p < in.end) {
            data_object(&in, w, NULL, 0);
            got++;
        }
        g_assert_cmpuint(got, ==, n);
        return n;
    }
    case 0x11: {                                   /* Buffer */
        Cursor in = pkg(c, w);
        gint64 size = data_object(&in, w, NULL, 0);
        g_assert_cmpint(size, ==, in.end - in.p);
        /* A resource template ends with an End Tag. */
        g_assert_cmpuint(in.end[-2], ==, 0x79);
        return size;
    }
    default:
        g_error("unexpected AML data opcode 0x%02x", op);
    }
}

static void term_list(Cursor c, Walk *w, gboolean in_device)
{
    while (c.p < c.end) {
        guint8 op = next(&c);
        char name[5];

        if (op == 0x08) {                          /* Name */
            char str[16] = "";
            gint64 v;
            gboolean s5;

            namestring(&c, name);
            s5 = strcmp(name, "_S5_") == 0;
            if (s5) {
                const guint8 *elems;
                g_assert_cmpuint(*c.p, ==, 0x12);
                elems = c.p;
                v = data_object(&c, w, NULL, 0);
                /* Package (2) { Zero, Zero }: pkglen, count, two ZeroOps */
                g_assert_cmpint(v, ==, 2);
                g_assert_cmpuint(elems[3], ==, 0x00);
                g_assert_cmpuint(elems[4], ==, 0x00);
                w->s5_ok = TRUE;
                continue;
            }
            v = data_object(&c, w, str, sizeof str);
            if (in_device && strcmp(name, "_HID") == 0 && str[0])
                g_strlcpy(w->hid, str, sizeof w->hid);
            if (in_device && strcmp(name, "_UID") == 0)
                w->uid = v;
        } else if (op == 0x10) {                   /* Scope */
            Cursor in = pkg(&c, w);
            namestring(&in, name);
            w->n_scopes++;
            term_list(in, w, FALSE);
        } else if (op == 0x5B && *c.p == 0x82) {   /* Device */
            Cursor in;
            c.p++;
            in = pkg(&c, w);
            namestring(&in, name);
            w->hid[0] = 0;
            w->uid = -1;
            term_list(in, w, TRUE);
            w->n_devices++;
            if (strcmp(w->hid, "ACPI0007") == 0) {
                g_assert_cmpint(w->uid, >=, 0);
                g_assert_cmpint(w->uid, <, w->max_cpus);
                g_assert_cmpuint(w->uid_seen[w->uid], ==, 0);
                w->uid_seen[w->uid] = 1;
                /* Cxxx: the name is the UID in hex */
                g_assert_cmpint(g_ascii_strtoll(name + 1, NULL, 16), ==, w->uid);
                w->n_processors++;
            }
        } else {
            g_error("unexpected AML opcode 0x%02x", op);
        }
    }
    g_assert_true(c.p == c.end);
}

static void test_dsdt_walk(gconstpointer data)
{
    guint n_cpus = GPOINTER_TO_UINT(data);
    Tables t;
    const guint8 *d;
    Walk w = { 0 };
    Cursor c;

    tables_build(&t, n_cpus, BASE);
    d = table(&t, rd64(xsdt_find(&t, "FACP") + 140), "DSDT");
    g_assert_cmpuint(d[8], ==, 2);
    c.p = d + 36;
    c.end = d + rd32(d + 4);
    w.max_cpus = n_cpus;
    w.uid_seen = g_malloc0(n_cpus);
    term_list(c, &w, FALSE);
    g_assert_true(w.s5_ok);
    g_assert_cmpuint(w.n_scopes, ==, 1);
    g_assert_cmpuint(w.n_processors, ==, n_cpus);
    g_assert_cmpuint(w.n_devices, ==, n_cpus + 1);    /* + COM1 */
    /* \_SB takes the 2-byte encoding with a few CPUs, the 3-byte one past 4095 bytes. */
    if (n_cpus == 4)
        g_assert_cmpuint(w.pkglen_sizes[2], >=, 1);
    if (n_cpus >= 254)
        g_assert_cmpuint(w.pkglen_sizes[3], >=, 1);
    g_assert_cmpuint(w.pkglen_sizes[1], >=, n_cpus);
    g_free(w.uid_seen);
    tables_clear(&t);
}

/* iasl -d must take every table without a warning or an error. */
static void test_iasl(gconstpointer data)
{
    guint n_cpus = GPOINTER_TO_UINT(data);
    static const char *const sigs[] = { "DSDT", "FACP", "APIC", "XSDT", "RSDT", "FACS" };
    g_autofree char *iasl = g_find_program_in_path("iasl");
    g_autofree char *dir = NULL;
    g_autoptr(GError) error = NULL;
    Tables t;
    const guint8 *fadt;

    if (!iasl) {
        g_test_skip("iasl not installed (apt-get install acpica-tools): AML not decompiled");
        return;
    }
    dir = g_dir_make_tmp("ferry-acpi-XXXXXX", &error);
    g_assert_no_error(error);
    tables_build(&t, n_cpus, BASE);
    fadt = xsdt_find(&t, "FACP");

    for (guint i = 0; i < G_N_ELEMENTS(sigs); i++) {
        g_autofree char *base = g_strdup_printf("%s/%s", dir, sigs[i]);
        g_autofree char *dat = g_strconcat(base, ".dat", NULL);
        g_autofree char *dsl = g_strconcat(base, ".dsl", NULL);
        g_autofree char *out = NULL, *err = NULL, *text = NULL;
        const char *argv[] = { iasl, "-d", dat, NULL };
        const guint8 *tab;
        int status;

        if (strcmp(sigs[i], "XSDT") == 0)
            tab = table(&t, rd64(at(&t, t.rsdp, 36) + 24), "XSDT");
        else if (strcmp(sigs[i], "RSDT") == 0)
            tab = table(&t, rd32(at(&t, t.rsdp, 36) + 16), "RSDT");
        else if (strcmp(sigs[i], "DSDT") == 0)
            tab = table(&t, rd64(fadt + 140), "DSDT");
        else if (strcmp(sigs[i], "FACS") == 0)
            tab = at(&t, rd32(fadt + 36), 64);
        else
            tab = xsdt_find(&t, sigs[i]);

        g_assert_true(g_file_set_contents(dat, (const char *)tab, rd32(tab + 4), &error));
        g_assert_no_error(error);
        g_assert_true(g_spawn_sync(dir, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                                   &out, &err, &status, &error));
        g_assert_no_error(error);
        if (!g_spawn_check_wait_status(status, NULL) || strstr(out, "Warning") || strstr(out, "Error") ||
            strstr(err, "Warning") || strstr(err, "Error"))
            g_error("iasl -d %s:\n%s\n%s", sigs[i], out, err);
        g_assert_true(g_file_get_contents(dsl, &text, NULL, &error));
        g_assert_no_error(error);
        if (strcmp(sigs[i], "DSDT") == 0) {
            g_autofree char *last = g_strdup_printf("Device (C%03X)", n_cpus - 1);
            g_assert_nonnull(strstr(text, last));
            g_assert_nonnull(strstr(text, "Name (_S5, Package (0x02)"));
            g_assert_nonnull(strstr(text, "EisaId (\"PNP0501\")"));
            g_assert_nonnull(strstr(text, "IRQNoFlags ()\n                    {4}"));
        }
        g_unlink(dat);
        g_unlink(dsl);
    }
    g_rmdir(dir);
    tables_clear(&t);
}

static void test_errors(void)
{
    FerryAcpiConfig cfg = { .n_cpus = 1024, .pm_base = 0x600, .sci_irq = 9,
                            .table_gpa = BASE, .table_room = 4096 };
    g_autofree guint8 *buf = g_malloc0(ROOM);
    guint64 rsdp = 0;
    GError *error = NULL;

    g_assert_false(ferry_acpi_build(&cfg, buf, &rsdp, &error));
    g_assert_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID);
    g_assert_nonnull(strstr(error->message, "1024 CPUs"));
    g_assert_nonnull(strstr(error->message, "use fewer CPUs"));
    g_clear_error(&error);

    cfg.table_room = ROOM;
    cfg.n_cpus = 0;
    g_assert_false(ferry_acpi_build(&cfg, buf, &rsdp, &error));
    g_assert_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID);
    g_clear_error(&error);
    cfg.n_cpus = 1025;
    g_assert_false(ferry_acpi_build(&cfg, buf, &rsdp, &error));
    g_assert_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID);
    g_assert_nonnull(strstr(error->message, "1 to 1024"));
    g_clear_error(&error);

    /* Exactly enough room works. */
    cfg.n_cpus = 1024;
    cfg.table_room = ferry_acpi_size(1024);
    g_assert_true(ferry_acpi_build(&cfg, buf, &rsdp, &error));
    g_assert_no_error(error);
    cfg.table_room--;
    g_assert_false(ferry_acpi_build(&cfg, buf, &rsdp, &error));
    g_clear_error(&error);
}

int main(int argc, char **argv)
{
    static const guint cpus[] = { 1, 4, 254, 255, 256, 1024 };

    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

    for (guint i = 0; i < G_N_ELEMENTS(cpus); i++) {
        g_autofree char *a = g_strdup_printf("/acpi/checksums/%u-cpus", cpus[i]);
        g_autofree char *b = g_strdup_printf("/acpi/madt/%u-cpus", cpus[i]);
        g_autofree char *c = g_strdup_printf("/acpi/dsdt/walk/%u-cpus", cpus[i]);
        g_autofree char *d = g_strdup_printf("/acpi/dsdt/iasl/%u-cpus", cpus[i]);
        g_test_add_data_func(a, GUINT_TO_POINTER(cpus[i]), test_checksums);
        g_test_add_data_func(b, GUINT_TO_POINTER(cpus[i]), test_madt);
        g_test_add_data_func(c, GUINT_TO_POINTER(cpus[i]), test_dsdt_walk);
        g_test_add_data_func(d, GUINT_TO_POINTER(cpus[i]), test_iasl);
    }
    g_test_add_func("/acpi/fadt/fields", test_fadt);
    g_test_add_func("/acpi/tables-above-4g", test_above_4g);
    g_test_add_func("/acpi/errors", test_errors);
    return g_test_run();
}

/* test-boot-x86.c: direct x86 boot (engine/boot-x86.c): the e820 map, the
 * 64-bit Linux boot protocol with synthetic bzImages, initrd placement, and
 * PVH with synthetic ELF files. FERRY_TEST_BZIMAGE=/boot/vmlinuz-... also
 * loads a real kernel. */
#include "boot-x86-private.h"

#include <string.h>
#include <sys/mman.h>

#define MiB ((guint64)1 << 20)
#define GiB ((guint64)1 << 30)

static guint16 rd16(const guint8 *p) { return p[0] | p[1] << 8; }
static guint32 rd32(const guint8 *p) { return rd16(p) | (guint32)rd16(p + 2) << 16; }
static guint64 rd64(const guint8 *p) { return rd32(p) | (guint64)rd32(p + 4) << 32; }
static void wr16(guint8 *p, guint16 v) { p[0] = v; p[1] = v >> 8; }
static void wr32(guint8 *p, guint32 v) { wr16(p, v); wr16(p + 2, v >> 16); }
static void wr64(guint8 *p, guint64 v) { wr32(p, v); wr32(p + 4, v >> 32); }

/* Guest RAM: a lazily backed mapping, so 5 GiB costs only the pages touched. */
typedef struct {
    guint8 *host;
    guint64 size;
} Ram;

static void ram_new(Ram *r, guint64 size)
{
    r->size = size;
    r->host = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    g_assert_true(r->host != MAP_FAILED);
}

static void ram_free(Ram *r)
{
    munmap(r->host, r->size);
}

static const guint8 *gpa(const Ram *r, guint64 addr, guint64 len)
{
    guint64 off;
    g_assert_true(ferry_x86_ram_offset(r->size, addr, len, &off));
    return r->host + off;
}

/* ---- e820 ---- */

static void assert_entry(const FerryE820Entry *e, guint64 addr, guint64 size, guint32 type)
{
    g_assert_cmphex(e->addr, ==, addr);
    g_assert_cmphex(e->size, ==, size);
    g_assert_cmpuint(e->type, ==, type);
}

static void assert_legacy(const FerryE820Entry *e)
{
    assert_entry(&e[0], 0, 0x9FC00, FERRY_E820_RAM);
    assert_entry(&e[1], 0x9FC00, 0x400, FERRY_E820_RESERVED);
    assert_entry(&e[2], 0xE0000, 0x20000, FERRY_E820_RESERVED);
}

static void test_e820_128m(void)
{
    FerryE820Entry e[8];

    g_assert_cmpuint(ferry_x86_e820_build(128 * MiB, e, 8), ==, 4);
    assert_legacy(e);
    assert_entry(&e[3], MiB, 127 * MiB, FERRY_E820_RAM);
}

static void test_e820_3g(void)
{
    FerryE820Entry e[8];

    g_assert_cmpuint(ferry_x86_e820_build(3 * GiB, e, 8), ==, 4);
    assert_legacy(e);
    assert_entry(&e[3], MiB, 3 * GiB - MiB, FERRY_E820_RAM);
}

static void test_e820_5g(void)
{
    FerryE820Entry e[8];
    guint64 off;

    g_assert_cmpuint(ferry_x86_e820_build(5 * GiB, e, 8), ==, 5);
    assert_legacy(e);
    assert_entry(&e[3], MiB, 3 * GiB - MiB, FERRY_E820_RAM);
    assert_entry(&e[4], 4 * GiB, 2 * GiB, FERRY_E820_RAM);
    /* Nothing of the map lies in the hole; fewer slots, fewer entries. */
    g_assert_cmpuint(ferry_x86_e820_build(5 * GiB, e, 2), ==, 2);

    /* RAM block offsets follow the map. */
    g_assert_true(ferry_x86_ram_offset(5 * GiB, 4 * GiB, 4096, &off));
    g_assert_cmphex(off, ==, 3 * GiB);
    g_assert_true(ferry_x86_ram_offset(5 * GiB, 6 * GiB - 1, 1, &off));
    g_assert_false(ferry_x86_ram_offset(5 * GiB, 6 * GiB - 1, 2, &off));
    g_assert_false(ferry_x86_ram_offset(5 * GiB, 3 * GiB, 1, &off));
    g_assert_false(ferry_x86_ram_offset(5 * GiB, 3 * GiB - 1, 2, &off));
    g_assert_false(ferry_x86_ram_offset(5 * GiB, 0, 0, &off));
    g_assert_false(ferry_x86_ram_offset(5 * GiB, G_MAXUINT64, 2, &off));
}

/* ---- synthetic bzImage ---- */

typedef struct {
    guint16 version;
    guint16 xloadflags;
    guint8 loadflags;
    guint8 relocatable;
    gsize payload_len;
    guint64 pref_address;
    guint32 init_size;
    guint32 initrd_addr_max;
    guint32 cmdline_size;
} BzSpec;

static const BzSpec bz_default = {
    .version = 0x020F, .xloadflags = 0x7F, .loadflags = 0x01, .relocatable = 1,
    .payload_len = 0x3000, .pref_address = 0x1000000, .init_size = 8 * MiB,
    .initrd_addr_max = 0x7FFFFFFF, .cmdline_size = 2047,
};

#define BZ_SETUP_SECTS 4
#define BZ_SETUP_SIZE ((BZ_SETUP_SECTS + 1) * 512)

static GByteArray *make_bzimage(const BzSpec *s)
{
    GByteArray *b = g_byte_array_new();
    guint8 *k;

    g_byte_array_set_size(b, BZ_SETUP_SIZE + s->payload_len);
    k = b->data;
    memset(k, 0, b->len);
    k[0x1F1] = BZ_SETUP_SECTS;
    wr32(k + 0x1F4, s->payload_len / 16);
    wr16(k + 0x1FE, 0xAA55);
    k[0x200] = 0xEB;
    k[0x201] = 0x6A;                              /* header ends at 0x26C */
    memcpy(k + 0x202, "HdrS", 4);
    wr16(k + 0x206, s->version);
    k[0x211] = s->loadflags;
    wr32(k + 0x214, 0x100000);
    wr32(k + 0x22C, s->initrd_addr_max);
    wr32(k + 0x230, 2 * MiB);
    k[0x234] = s->relocatable;
    k[0x235] = 21;
    wr16(k + 0x236, s->xloadflags);
    wr32(k + 0x238, s->cmdline_size);
    wr64(k + 0x258, s->pref_address);
    wr32(k + 0x260, s->init_size);
    k[0x26C] = 0x5A;                              /* past the header: must not be copied */
    for (gsize i = 0; i < s->payload_len; i++)
        k[BZ_SETUP_SIZE + i] = (guint8)(i * 7 + 3);
    return b;
}

static gboolean load(const GByteArray *kernel, const guint8 *initrd, gsize initrd_len,
                     const char *cmdline, Ram *ram, guint64 rsdp, FerryX86EntryState *st,
                     GError **error)
{
    FerryX86BootParams p = {
        .kernel_name = "vmlinuz-test",
        .kernel = kernel->data, .kernel_len = kernel->len,
        .initrd = initrd, .initrd_len = initrd_len,
        .cmdline = cmdline, .ram_size = ram->size, .rsdp_gpa = rsdp,
    };
    return ferry_x86_boot_load(&p, ram->host, st, error);
}

static void assert_flat_gdt(const Ram *ram, const FerryX86EntryState *st, gboolean long_mode)
{
    const guint8 *gdt = gpa(ram, st->gdt_base, st->gdt_limit + 1);
    guint64 cs = rd64(gdt + st->cs_sel), ds = rd64(gdt + st->ds_sel);

    g_assert_cmpuint(st->cs_sel, ==, 0x10);
    g_assert_cmpuint(st->ds_sel, ==, 0x18);
    g_assert_cmpuint(st->gdt_limit, >=, 0x1F);
    g_assert_cmphex(rd64(gdt), ==, 0);
    /* base 0, limit 0xFFFFF pages, present, code exec/read; L for long mode */
    g_assert_cmphex(cs & 0xFFFF, ==, 0xFFFF);
    g_assert_cmphex((cs >> 16) & 0xFFFFFF, ==, 0);
    g_assert_cmphex((cs >> 40) & 0x9A, ==, 0x9A);
    g_assert_cmpuint((cs >> 53) & 1, ==, long_mode ? 1 : 0);
    g_assert_cmpuint((cs >> 54) & 1, ==, long_mode ? 0 : 1);
    g_assert_cmphex((ds >> 40) & 0x9A, ==, 0x92);
    g_assert_cmpuint((ds >> 55) & 1, ==, 1);
}

static void test_bzimage_valid(void)
{
    g_autoptr(GByteArray) k = make_bzimage(&bz_default);
    g_autoptr(GError) error = NULL;
    guint8 initrd[10000];
    FerryX86EntryState st;
    const guint8 *bp, *pml4, *pdpt, *pd;
    const char *cmdline = "console=ttyS0 root=/dev/vda";
    guint64 initrd_addr;
    Ram ram;

    for (guint i = 0; i < sizeof initrd; i++)
        initrd[i] = (guint8)(i ^ 0x5C);
    ram_new(&ram, 128 * MiB);
    g_assert_true(load(k, initrd, sizeof initrd, cmdline, &ram, 0xE0000, &st, &error));
    g_assert_no_error(error);

    /* Entry state: 64-bit protocol. */
    g_assert_true(st.long_mode);
    g_assert_cmphex(st.rip, ==, 0x1000000 + 0x200);
    g_assert_cmphex(st.rsi, ==, FERRY_X86_ZERO_PAGE);
    g_assert_cmphex(st.rbx, ==, 0);
    g_assert_cmphex(st.cr0 & 0x80000001, ==, 0x80000001);
    g_assert_cmphex(st.cr4 & 0x20, ==, 0x20);
    g_assert_cmphex(st.efer & 0x500, ==, 0x500);
    g_assert_cmphex(st.cr3, ==, FERRY_X86_PML4);
    g_assert_cmpuint(st.rsp, >, 0);
    assert_flat_gdt(&ram, &st, TRUE);

    /* Identity map of 4 GiB: walk 0x1000000 + 0x200 and 0xFFFFFFFF. */
    pml4 = gpa(&ram, st.cr3, 4096);
    g_assert_cmphex(rd64(pml4) & 3, ==, 3);
    pdpt = gpa(&ram, rd64(pml4) & ~G_GUINT64_CONSTANT(0xFFF), 4096);
    for (guint i = 0; i < 4; i++) {
        g_assert_cmphex(rd64(pdpt + 8 * i) & 3, ==, 3);
        pd = gpa(&ram, rd64(pdpt + 8 * i) & ~G_GUINT64_CONSTANT(0xFFF), 4096);
        for (guint j = 0; j < 512; j += 511)
            g_assert_cmphex(rd64(pd + 8 * j), ==, ((guint64)i << 30 | (guint64)j << 21) | 0x83);
    }

    /* The kernel at pref_address, byte for byte. */
    g_assert_cmpmem(gpa(&ram, 0x1000000, k->len - BZ_SETUP_SIZE), k->len - BZ_SETUP_SIZE,
                    k->data + BZ_SETUP_SIZE, k->len - BZ_SETUP_SIZE);

    /* boot_params */
    bp = gpa(&ram, FERRY_X86_ZERO_PAGE, 4096);
    /* The setup header, copied from the file except the fields a loader writes. */
    g_assert_cmpmem(bp + 0x1F1, 0x1FA - 0x1F1, k->data + 0x1F1, 0x1FA - 0x1F1);
    g_assert_cmpmem(bp + 0x1FC, 0x210 - 0x1FC, k->data + 0x1FC, 0x210 - 0x1FC);
    g_assert_cmpmem(bp + 0x22C, 0x26C - 0x22C, k->data + 0x22C, 0x26C - 0x22C);
    g_assert_cmpmem(bp + 0x202, 4, "HdrS", 4);
    g_assert_cmphex(rd16(bp + 0x206), ==, 0x020F);
    g_assert_cmpuint(bp[0x26C], ==, 0);                      /* not past the header */
    g_assert_cmpuint(bp[0x1EF], ==, 0);                      /* sentinel clear */
    g_assert_cmphex(bp[0x210], ==, 0xFF);                    /* type_of_loader */
    g_assert_cmphex(bp[0x211], ==, 0x81);                    /* LOADED_HIGH | CAN_USE_HEAP */
    g_assert_cmphex(rd16(bp + 0x1FA), ==, 0xFFFF);           /* vid_mode normal */
    g_assert_cmphex(rd32(bp + 0x214), ==, 0x1000000);        /* code32_start */
    g_assert_cmphex(rd16(bp + 0x224), ==, 0xDE00);           /* heap_end_ptr */
    g_assert_cmphex(rd32(bp + 0x228), ==, FERRY_X86_CMDLINE);
    g_assert_cmphex(rd32(bp + 0x0C8), ==, 0);                /* ext_cmd_line_ptr */
    g_assert_cmpstr((const char *)gpa(&ram, FERRY_X86_CMDLINE, strlen(cmdline) + 1), ==, cmdline);
    g_assert_cmphex(rd64(bp + 0x070), ==, 0xE0000);          /* acpi_rsdp_addr */

    initrd_addr = rd32(bp + 0x218) | (guint64)rd32(bp + 0x0C0) << 32;
    g_assert_cmpuint(rd32(bp + 0x21C), ==, sizeof initrd);
    g_assert_cmpuint(rd32(bp + 0x0C4), ==, 0);
    g_assert_cmphex(initrd_addr % 4096, ==, 0);
    g_assert_cmpuint(initrd_addr + sizeof initrd, <=, 128 * MiB);
    g_assert_cmpuint(initrd_addr + sizeof initrd, >, 128 * MiB - 4096);   /* as high as it goes */
    g_assert_cmpmem(gpa(&ram, initrd_addr, sizeof initrd), sizeof initrd, initrd, sizeof initrd);

    g_assert_cmpuint(bp[0x1E8], ==, 4);                      /* e820_entries */
    g_assert_cmphex(rd64(bp + 0x2D0 + 3 * 20), ==, MiB);
    g_assert_cmphex(rd64(bp + 0x2D0 + 3 * 20 + 8), ==, 127 * MiB);
    g_assert_cmpuint(rd32(bp + 0x2D0 + 3 * 20 + 16), ==, 1);
    g_assert_cmpuint(rd32(bp + 0x2D0 + 1 * 20 + 16), ==, 2);
    ram_free(&ram);
}

static void test_bzimage_no_initrd_no_cmdline(void)
{
    BzSpec s = bz_default;
    g_autoptr(GByteArray) k = NULL;
    g_autoptr(GError) error = NULL;
    FerryX86EntryState st;
    const guint8 *bp;
    Ram ram;

    s.version = 0x020D;                                      /* 2.13: no acpi_rsdp_addr */
    k = make_bzimage(&s);
    ram_new(&ram, 64 * MiB);
    g_assert_true(load(k, NULL, 0, NULL, &ram, 0xE0000, &st, &error));
    g_assert_no_error(error);
    bp = gpa(&ram, FERRY_X86_ZERO_PAGE, 4096);
    g_assert_cmphex(rd64(bp + 0x070), ==, 0);
    g_assert_cmpuint(rd32(bp + 0x218), ==, 0);
    g_assert_cmpuint(rd32(bp + 0x21C), ==, 0);
    g_assert_cmphex(rd32(bp + 0x228), ==, FERRY_X86_CMDLINE);   /* an empty string */
    g_assert_cmpuint(*gpa(&ram, FERRY_X86_CMDLINE, 1), ==, 0);
    ram_free(&ram);
}

static void assert_load_fails(const GByteArray *k, guint64 ram_size, const char *needle)
{
    g_autoptr(GError) error = NULL;
    FerryX86EntryState st;
    Ram ram;

    ram_new(&ram, ram_size);
    g_assert_false(load(k, NULL, 0, NULL, &ram, 0, &st, &error));
    g_assert_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID);
    g_test_message("expected error: %s", error->message);
    if (!strstr(error->message, needle))
        g_error("message \"%s\" lacks \"%s\"", error->message, needle);
    ram_free(&ram);
}

static void test_bzimage_too_old(void)
{
    BzSpec s = bz_default;
    g_autoptr(GByteArray) k = NULL;

    s.version = 0x020A;
    k = make_bzimage(&s);
    assert_load_fails(k, 64 * MiB, "kernel too old: boot protocol 2.10, Ferry needs 2.12 with 64-bit entry");
}

static void test_bzimage_not_64bit(void)
{
    BzSpec s = bz_default;
    g_autoptr(GByteArray) k = NULL;

    s.xloadflags = 0;
    k = make_bzimage(&s);
    assert_load_fails(k, 64 * MiB, "without a 64-bit entry point");
}

static void test_bzimage_zimage(void)
{
    BzSpec s = bz_default;
    g_autoptr(GByteArray) k = NULL;

    s.loadflags = 0;
    k = make_bzimage(&s);
    assert_load_fails(k, 64 * MiB, "zImage");
}

static void test_bzimage_truncated(void)
{
    g_autoptr(GByteArray) k = make_bzimage(&bz_default);

    /* cut in the payload: syssize says more */
    g_byte_array_set_size(k, k->len - 100);
    assert_load_fails(k, 64 * MiB, "vmlinuz-test is truncated");
    /* cut in the setup code */
    g_byte_array_set_size(k, 0x300);
    assert_load_fails(k, 64 * MiB, "vmlinuz-test is truncated");
    g_byte_array_set_size(k, 0x207);
    assert_load_fails(k, 64 * MiB, "vmlinuz-test is truncated");
    /* before the magic: not even a header */
    g_byte_array_set_size(k, 0x100);
    assert_load_fails(k, 64 * MiB, "vmlinuz-test is not a Linux kernel (no bzImage header and no PVH ELF note)");
}

static void test_bzimage_garbage(void)
{
    g_autoptr(GByteArray) k = g_byte_array_new();
    g_autoptr(GByteArray) empty = g_byte_array_new();
    GRand *rand = g_rand_new_with_seed(42);

    g_byte_array_set_size(k, 64 * 1024);
    for (guint i = 0; i < k->len; i++)
        k->data[i] = g_rand_int(rand);
    assert_load_fails(k, 64 * MiB, "vmlinuz-test is not a Linux kernel (no bzImage header and no PVH ELF note)");
    assert_load_fails(empty, 64 * MiB, "not a Linux kernel");
    g_rand_free(rand);
}

static void test_bzimage_larger_than_ram(void)
{
    BzSpec s = bz_default;
    g_autoptr(GByteArray) k = NULL;
    g_autoptr(GError) error = NULL;
    FerryX86EntryState st;
    Ram ram;

    s.init_size = 200 * MiB;
    k = make_bzimage(&s);
    assert_load_fails(k, 128 * MiB, "give the VM more memory (-m)");
    assert_load_fails(k, 128 * MiB, "needs 200 MiB");

    /* A relocatable kernel that fits only below pref_address goes low. */
    s.init_size = 100 * MiB;
    g_byte_array_unref(k);
    k = make_bzimage(&s);
    ram_new(&ram, 110 * MiB);
    g_assert_true(load(k, NULL, 0, NULL, &ram, 0, &st, &error));
    g_assert_no_error(error);
    g_assert_cmphex(st.rip, ==, 2 * MiB + 0x200);
    ram_free(&ram);

    /* ...but a fixed one does not. */
    s.relocatable = 0;
    g_byte_array_unref(k);
    k = make_bzimage(&s);
    assert_load_fails(k, 110 * MiB, "give the VM more memory (-m)");
}

static void test_bzimage_cmdline_too_long(void)
{
    g_autoptr(GByteArray) k = make_bzimage(&bz_default);
    g_autoptr(GError) error = NULL;
    g_autofree char *cmdline = g_strnfill(2048, 'x');
    FerryX86EntryState st;
    Ram ram;

    ram_new(&ram, 64 * MiB);
    g_assert_false(load(k, NULL, 0, cmdline, &ram, 0, &st, &error));
    g_assert_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID);
    g_assert_nonnull(strstr(error->message, "cmdline longer than cmdline_size"));
    g_clear_error(&error);
    cmdline[2047] = 0;                                       /* exactly cmdline_size */
    g_assert_true(load(k, NULL, 0, cmdline, &ram, 0, &st, &error));
    g_assert_no_error(error);
    ram_free(&ram);
}

static void test_ram_too_small(void)
{
    g_autoptr(GByteArray) k = make_bzimage(&bz_default);

    assert_load_fails(k, MiB, "too small");
}

/* ---- initrd placement ---- */

static guint64 initrd_addr_for(const BzSpec *s, guint64 ram_size, gsize len)
{
    g_autoptr(GByteArray) k = make_bzimage(s);
    g_autoptr(GError) error = NULL;
    g_autofree guint8 *initrd = g_malloc0(len);
    FerryX86EntryState st;
    const guint8 *bp;
    guint64 addr;
    Ram ram;

    initrd[0] = 0x42;
    initrd[len - 1] = 0x24;
    ram_new(&ram, ram_size);
    g_assert_true(load(k, initrd, len, NULL, &ram, 0, &st, &error));
    g_assert_no_error(error);
    bp = gpa(&ram, FERRY_X86_ZERO_PAGE, 4096);
    addr = rd32(bp + 0x218) | (guint64)rd32(bp + 0x0C0) << 32;
    g_assert_cmpuint(rd32(bp + 0x21C), ==, len);
    g_assert_cmpuint(*gpa(&ram, addr, 1), ==, 0x42);
    g_assert_cmpuint(*gpa(&ram, addr + len - 1, 1), ==, 0x24);
    g_assert_cmphex(addr % 4096, ==, 0);
    ram_free(&ram);
    return addr;
}

static void test_initrd_placement(void)
{
    BzSpec s = bz_default;
    guint64 addr;

    /* Top of RAM, page aligned. */
    addr = initrd_addr_for(&s, 128 * MiB, 5 * MiB + 1);
    g_assert_cmphex(addr, ==, (128 * MiB - (5 * MiB + 1)) & ~G_GUINT64_CONSTANT(0xFFF));

    /* Capped by initrd_addr_max (its last byte is the highest legal one). */
    addr = initrd_addr_for(&s, 5 * GiB, MiB);
    g_assert_cmphex(addr, ==, 0x80000000 - MiB);
    s.initrd_addr_max = 0x37FFFFFF;
    addr = initrd_addr_for(&s, 5 * GiB, 4096);
    g_assert_cmphex(addr, ==, 0x38000000 - 4096);

    /* Capped by the end of low RAM with no limit from the kernel. */
    s.initrd_addr_max = 0xFFFFFFFF;
    addr = initrd_addr_for(&s, 5 * GiB, 2 * MiB);
    g_assert_cmphex(addr, ==, 3 * GiB - 2 * MiB);
}

static void test_initrd_does_not_fit(void)
{
    g_autoptr(GByteArray) k = make_bzimage(&bz_default);
    g_autoptr(GError) error = NULL;
    gsize len = 120 * MiB;
    g_autofree guint8 *initrd = g_malloc0(len);
    FerryX86EntryState st;
    Ram ram;

    ram_new(&ram, 128 * MiB);
    g_assert_false(load(k, initrd, len, NULL, &ram, 0, &st, &error));
    g_assert_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID);
    g_assert_cmpstr(error->message, ==,
                    "initrd (120 MiB) does not fit in guest RAM (128 MiB) beside the kernel: "
                    "give the VM more memory (-m)");
    g_clear_error(&error);
    ram_free(&ram);

    /* Bigger than RAM itself. */
    ram_new(&ram, 100 * MiB);
    g_assert_false(load(k, initrd, len, NULL, &ram, 0, &st, &error));
    g_assert_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID);
    g_assert_nonnull(strstr(error->message, "initrd (120 MiB) does not fit in guest RAM (100 MiB)"));
    ram_free(&ram);
}

/* ---- synthetic PVH ELF ---- */

typedef struct {
    gboolean is64;
    gboolean with_note;
    guint64 paddr;
    guint32 filesz, memsz;
    guint64 entry;
    guint note_desc_size;       /* 4 or 8 */
} ElfSpec;

static GByteArray *make_elf(const ElfSpec *s)
{
    GByteArray *b = g_byte_array_new();
    guint ehsize = s->is64 ? 64 : 52, phsize = s->is64 ? 56 : 32;
    guint phoff = ehsize, nph = 2;
    guint note_off = phoff + nph * phsize;
    /* two notes: an unrelated one first, then Xen's */
    guint note_len = (12 + 4 + 4) + (12 + 4 + s->note_desc_size);
    guint seg_off = (note_off + note_len + 15) & ~15u;
    guint8 *e, *ph, *n;

    g_byte_array_set_size(b, seg_off + s->filesz);
    e = b->data;
    memset(e, 0, b->len);
    memcpy(e, "\x7F" "ELF", 4);
    e[4] = s->is64 ? 2 : 1;
    e[5] = 1;
    e[6] = 1;
    wr16(e + 16, 2);                                     /* ET_EXEC */
    wr16(e + 18, s->is64 ? 62 : 3);
    wr32(e + 20, 1);
    if (s->is64) {
        wr64(e + 24, G_GUINT64_CONSTANT(0xFFFFFFFF81000000));
        wr64(e + 32, phoff);
        wr16(e + 52, ehsize);
        wr16(e + 54, phsize);
        wr16(e + 56, nph);
    } else {
        wr32(e + 24, 0xC1000000);
        wr32(e + 28, phoff);
        wr16(e + 40, ehsize);
        wr16(e + 42, phsize);
        wr16(e + 44, nph);
    }

    ph = e + phoff;                                      /* PT_LOAD */
    if (s->is64) {
        wr32(ph, 1);
        wr64(ph + 8, seg_off);
        wr64(ph + 16, G_GUINT64_CONSTANT(0xFFFFFFFF80000000) + s->paddr);
        wr64(ph + 24, s->paddr);
        wr64(ph + 32, s->filesz);
        wr64(ph + 40, s->memsz);
    } else {
        wr32(ph, 1);
        wr32(ph + 4, seg_off);
        wr32(ph + 8, 0xC0000000 + s->paddr);
        wr32(ph + 12, s->paddr);
        wr32(ph + 16, s->filesz);
        wr32(ph + 20, s->memsz);
    }
    ph += phsize;                                        /* PT_NOTE */
    wr32(ph, 4);
    if (s->is64) {
        wr64(ph + 8, note_off);
        wr64(ph + 32, note_len);
    } else {
        wr32(ph + 4, note_off);
        wr32(ph + 16, note_len);
    }

    n = e + note_off;
    wr32(n, 4);                                          /* "GNU", type 3, 4 bytes */
    wr32(n + 4, 4);
    wr32(n + 8, 3);
    memcpy(n + 12, "GNU", 4);
    wr32(n + 16, 0x12345678);
    n += 20;
    wr32(n, 4);
    wr32(n + 4, s->note_desc_size);
    wr32(n + 8, s->with_note ? 18 : 17);
    memcpy(n + 12, "Xen", 4);
    if (s->note_desc_size == 8)
        wr64(n + 16, s->entry);
    else
        wr32(n + 16, (guint32)s->entry);

    for (guint i = 0; i < s->filesz; i++)
        e[seg_off + i] = (guint8)(i * 13 + 1);
    return b;
}

static const ElfSpec elf_default = {
    .is64 = TRUE, .with_note = TRUE, .paddr = 0x1000000, .filesz = 0x2000, .memsz = 0x5000,
    .entry = 0x1000100, .note_desc_size = 4,
};

static void check_pvh(const ElfSpec *s)
{
    g_autoptr(GByteArray) k = make_elf(s);
    g_autoptr(GError) error = NULL;
    guint8 initrd[3000];
    const char *cmdline = "console=hvc0";
    FerryX86EntryState st;
    const guint8 *si, *mod, *map, *seg;
    Ram ram;

    memset(initrd, 0x77, sizeof initrd);
    ram_new(&ram, 256 * MiB);
    memset(ram.host + s->paddr + s->filesz, 0xEE, s->memsz - s->filesz);   /* bss must be zeroed */
    g_assert_true(load(k, initrd, sizeof initrd, cmdline, &ram, 0xE0000, &st, &error));
    g_assert_no_error(error);

    g_assert_false(st.long_mode);
    g_assert_cmphex(st.rip, ==, s->entry);
    g_assert_cmphex(st.rbx, ==, FERRY_X86_START_INFO);
    g_assert_cmphex(st.cr0 & 0x80000001, ==, 1);
    g_assert_cmphex(st.cr4, ==, 0);
    g_assert_cmphex(st.efer, ==, 0);
    assert_flat_gdt(&ram, &st, FALSE);

    seg = gpa(&ram, s->paddr, s->memsz);
    for (guint i = 0; i < s->filesz; i++)
        g_assert_cmpuint(seg[i], ==, (guint8)(i * 13 + 1));
    for (guint i = s->filesz; i < s->memsz; i++)
        g_assert_cmpuint(seg[i], ==, 0);

    si = gpa(&ram, st.rbx, 56);
    g_assert_cmphex(rd32(si), ==, 0x336EC578);
    g_assert_cmpuint(rd32(si + 4), ==, 1);
    g_assert_cmpuint(rd32(si + 12), ==, 1);
    g_assert_cmpstr((const char *)gpa(&ram, rd64(si + 24), strlen(cmdline) + 1), ==, cmdline);
    g_assert_cmphex(rd64(si + 32), ==, 0xE0000);
    g_assert_cmpuint(rd32(si + 48), ==, 4);
    g_assert_cmpuint(rd32(si + 52), ==, 0);

    mod = gpa(&ram, rd64(si + 16), 32);
    g_assert_cmpuint(rd64(mod + 8), ==, sizeof initrd);
    g_assert_cmphex(rd64(mod) % 4096, ==, 0);
    g_assert_cmpuint(rd64(mod), >=, s->paddr + s->memsz);
    g_assert_cmpmem(gpa(&ram, rd64(mod), sizeof initrd), sizeof initrd, initrd, sizeof initrd);

    map = gpa(&ram, rd64(si + 40), 4 * 24);
    g_assert_cmphex(rd64(map + 3 * 24), ==, MiB);
    g_assert_cmphex(rd64(map + 3 * 24 + 8), ==, 255 * MiB);
    g_assert_cmpuint(rd32(map + 3 * 24 + 16), ==, 1);
    g_assert_cmpuint(rd32(map + 1 * 24 + 16), ==, 2);
    ram_free(&ram);
}

static void test_pvh_elf64(void)
{
    check_pvh(&elf_default);
}

static void test_pvh_elf32(void)
{
    ElfSpec s = elf_default;

    s.is64 = FALSE;
    s.note_desc_size = 8;                                /* older kernels used a pointer-sized note */
    check_pvh(&s);
}

static void test_pvh_no_note(void)
{
    ElfSpec s = elf_default;
    g_autoptr(GByteArray) k = NULL;

    s.with_note = FALSE;
    k = make_elf(&s);
    assert_load_fails(k, 64 * MiB, "vmlinuz-test is not a Linux kernel (no bzImage header and no PVH ELF note)");
    /* a note cut short */
    s.with_note = TRUE;
    g_byte_array_unref(k);
    k = make_elf(&s);
    wr32(k->data + 64 + 56 + 32, 30);                    /* PT_NOTE filesz ends inside Xen's note */
    assert_load_fails(k, 64 * MiB, "not a Linux kernel");
}

static void test_pvh_segment_outside_ram(void)
{
    ElfSpec s = elf_default;
    g_autoptr(GByteArray) k = NULL;

    s.paddr = 60 * MiB;
    s.entry = s.paddr + 0x100;
    s.memsz = 8 * MiB;
    k = make_elf(&s);
    assert_load_fails(k, 64 * MiB, "lies outside guest RAM (64 MiB): give the VM more memory (-m)");

    s.paddr = 0x8000;
    s.entry = 0x8000;
    s.memsz = 0x2000;
    g_byte_array_unref(k);
    k = make_elf(&s);
    assert_load_fails(k, 64 * MiB, "below 1 MiB");

    /* a segment whose file bytes run past the end of the file */
    s = elf_default;
    g_byte_array_unref(k);
    k = make_elf(&s);
    g_byte_array_set_size(k, k->len - 16);
    assert_load_fails(k, 64 * MiB, "truncated or damaged");
}

/* ---- hostile files: header bytes flipped at random must give TRUE or an error ---- */

static void test_mutated_headers(void)
{
    g_autoptr(GByteArray) bz = make_bzimage(&bz_default);
    g_autoptr(GByteArray) elf64 = make_elf(&elf_default);
    ElfSpec s32 = elf_default;
    g_autoptr(GByteArray) elf32 = NULL;
    GByteArray *files[3];
    GRand *rand = g_rand_new_with_seed(1234);
    guint8 initrd[100] = { 0 };
    guint ok = 0, failed = 0;
    Ram ram;

    s32.is64 = FALSE;
    elf32 = make_elf(&s32);
    files[0] = bz;
    files[1] = elf64;
    files[2] = elf32;
    ram_new(&ram, 64 * MiB);
    for (guint iter = 0; iter < 3000; iter++) {
        GByteArray *orig = files[iter % 3];
        g_autoptr(GByteArray) k = g_byte_array_sized_new(orig->len);
        g_autoptr(GError) error = NULL;
        FerryX86EntryState st;
        guint span = iter % 3 == 0 ? 0x300 : 0x100;

        g_byte_array_append(k, orig->data, orig->len);
        for (guint n = g_rand_int_range(rand, 1, 6); n > 0; n--)
            k->data[g_rand_int_range(rand, 0, span)] = g_rand_int(rand);
        if (g_rand_boolean(rand))
            g_byte_array_set_size(k, g_rand_int_range(rand, 0, k->len));
        if (load(k, initrd, sizeof initrd, "x", &ram, 0, &st, &error)) {
            g_assert_no_error(error);
            ok++;
        } else {
            g_assert_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID);
            failed++;
        }
    }
    g_test_message("%u loaded, %u refused", ok, failed);
    g_assert_cmpuint(ok, >, 0);
    g_assert_cmpuint(failed, >, 0);
    ram_free(&ram);
    g_rand_free(rand);
}

/* ---- a real kernel ---- */

static void test_real_bzimage(void)
{
    const char *path = g_getenv("FERRY_TEST_BZIMAGE");
    g_autoptr(GError) error = NULL;
    g_autofree char *data = NULL;
    gsize len;
    FerryX86BootParams p = { 0 };
    FerryX86EntryState st;
    const guint8 *bp;
    Ram ram;

    if (!path) {
        g_test_skip("FERRY_TEST_BZIMAGE unset: set it to a bzImage such as /boot/vmlinuz-* to load a real kernel");
        return;
    }
    g_assert_true(g_file_get_contents(path, &data, &len, &error));
    g_assert_no_error(error);
    ram_new(&ram, 512 * MiB);
    p.kernel_name = path;
    p.kernel = (const guint8 *)data;
    p.kernel_len = len;
    p.cmdline = "console=ttyS0 panic=-1";
    p.ram_size = ram.size;
    p.rsdp_gpa = 0xE0000;
    g_assert_true(ferry_x86_boot_load(&p, ram.host, &st, &error));
    g_assert_no_error(error);
    bp = gpa(&ram, FERRY_X86_ZERO_PAGE, 4096);
    g_test_message("%s: protocol %x, loaded at 0x%" G_GINT64_MODIFIER "x, init_size 0x%x",
                   path, rd16(bp + 0x206), st.rip - 0x200, rd32(bp + 0x260));
    g_assert_true(st.long_mode);
    g_assert_cmphex(st.rip, ==, rd64(bp + 0x258) + 0x200);
    g_assert_cmpuint(rd16(bp + 0x206), >=, 0x020C);
    g_assert_cmphex(rd64(bp + 0x070), ==, 0xE0000);
    ram_free(&ram);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

    g_test_add_func("/boot-x86/e820/128m", test_e820_128m);
    g_test_add_func("/boot-x86/e820/3g", test_e820_3g);
    g_test_add_func("/boot-x86/e820/5g", test_e820_5g);
    g_test_add_func("/boot-x86/bzimage/valid", test_bzimage_valid);
    g_test_add_func("/boot-x86/bzimage/no-initrd-no-cmdline", test_bzimage_no_initrd_no_cmdline);
    g_test_add_func("/boot-x86/bzimage/too-old", test_bzimage_too_old);
    g_test_add_func("/boot-x86/bzimage/not-64-bit", test_bzimage_not_64bit);
    g_test_add_func("/boot-x86/bzimage/zimage", test_bzimage_zimage);
    g_test_add_func("/boot-x86/bzimage/truncated", test_bzimage_truncated);
    g_test_add_func("/boot-x86/bzimage/garbage", test_bzimage_garbage);
    g_test_add_func("/boot-x86/bzimage/larger-than-ram", test_bzimage_larger_than_ram);
    g_test_add_func("/boot-x86/bzimage/cmdline-too-long", test_bzimage_cmdline_too_long);
    g_test_add_func("/boot-x86/ram-too-small", test_ram_too_small);
    g_test_add_func("/boot-x86/initrd/placement", test_initrd_placement);
    g_test_add_func("/boot-x86/initrd/does-not-fit", test_initrd_does_not_fit);
    g_test_add_func("/boot-x86/pvh/elf64", test_pvh_elf64);
    g_test_add_func("/boot-x86/pvh/elf32", test_pvh_elf32);
    g_test_add_func("/boot-x86/pvh/no-note", test_pvh_no_note);
    g_test_add_func("/boot-x86/pvh/segment-outside-ram", test_pvh_segment_outside_ram);
    g_test_add_func("/boot-x86/mutated-headers", test_mutated_headers);
    g_test_add_func("/boot-x86/real-bzimage", test_real_bzimage);
    return g_test_run();
}

/* boot-x86.c: direct kernel boot for the x86 "pc" machine: the e820 map, the
 * Linux/x86 64-bit boot protocol (Documentation/x86/boot.rst, zero-page.rst)
 * and the Xen PVH entry (hvm_start_info version 1, XEN_ELFNOTE_PHYS32_ENTRY).
 * The file is untrusted: every field read from it is checked before use and
 * every write into guest RAM is bounds-checked. Addresses: boot-x86-private.h. */
#include "boot-x86-private.h"

#include <string.h>
#include <glib/gi18n-lib.h>

#define MiB ((guint64)1 << 20)
#define PAGE ((guint64)4096)

/* ---- setup header / boot_params offsets (boot.rst, zero-page.rst) ---- */
#define BP_ACPI_RSDP_ADDR     0x070
#define BP_EXT_RAMDISK_IMAGE  0x0C0
#define BP_EXT_RAMDISK_SIZE   0x0C4
#define BP_EXT_CMD_LINE_PTR   0x0C8
#define BP_E820_ENTRIES       0x1E8
#define BP_E820_TABLE         0x2D0
#define BP_E820_MAX           128
#define BP_SIZE               0x1000

#define HDR_START             0x1F1
#define HDR_AREA_END          0x290    /* boot_params keeps the header below here */
#define HDR_SETUP_SECTS       0x1F1
#define HDR_SYSSIZE           0x1F4
#define HDR_VID_MODE          0x1FA
#define HDR_JUMP              0x200
#define HDR_MAGIC             0x202
#define HDR_VERSION           0x206
#define HDR_TYPE_OF_LOADER    0x210
#define HDR_LOADFLAGS         0x211
#define HDR_CODE32_START      0x214
#define HDR_RAMDISK_IMAGE     0x218
#define HDR_RAMDISK_SIZE      0x21C
#define HDR_HEAP_END_PTR      0x224
#define HDR_EXT_LOADER_VER    0x226
#define HDR_EXT_LOADER_TYPE   0x227
#define HDR_CMD_LINE_PTR      0x228
#define HDR_INITRD_ADDR_MAX   0x22C
#define HDR_KERNEL_ALIGNMENT  0x230
#define HDR_RELOCATABLE       0x234
#define HDR_XLOADFLAGS        0x236
#define HDR_CMDLINE_SIZE      0x238
#define HDR_PREF_ADDRESS      0x258
#define HDR_INIT_SIZE         0x260
#define HDR_MIN_END           0x264    /* the fields above, for protocol 2.12 */

#define HDRS_MAGIC            0x53726448u   /* "HdrS" */
#define LOADED_HIGH           0x01
#define CAN_USE_HEAP          0x80
#define XLF_KERNEL_64         0x0001
#define LOADER_UNDEFINED      0xFF
#define HEAP_END              0xE000   /* sample configuration of boot.rst */

/* ---- hvm_start_info (Xen public/arch-x86/hvm/start_info.h) ---- */
#define PVH_MAGIC             0x336EC578u
#define PVH_START_INFO_SIZE   56
#define PVH_MODLIST_ENTRY     32
#define PVH_MEMMAP_ENTRY      24
#define XEN_ELFNOTE_PHYS32_ENTRY 18

/* ---- control registers and page-table bits (Intel SDM vol. 3) ---- */
#define CR0_PE   (G_GUINT64_CONSTANT(1) << 0)
#define CR0_ET   (G_GUINT64_CONSTANT(1) << 4)
#define CR0_PG   (G_GUINT64_CONSTANT(1) << 31)
#define CR4_PAE  (G_GUINT64_CONSTANT(1) << 5)
#define EFER_LME (G_GUINT64_CONSTANT(1) << 8)
#define EFER_LMA (G_GUINT64_CONSTANT(1) << 10)
#define PTE_P    (G_GUINT64_CONSTANT(1) << 0)
#define PTE_RW   (G_GUINT64_CONSTANT(1) << 1)
#define PTE_PS   (G_GUINT64_CONSTANT(1) << 7)

#define GDT_CODE64 G_GUINT64_CONSTANT(0x00AF9B000000FFFF)   /* G, L, P, S, type 0xB (exec/read, accessed) */
#define GDT_CODE32 G_GUINT64_CONSTANT(0x00CF9B000000FFFF)   /* G, DB, P, S, type 0xB */
#define GDT_DATA   G_GUINT64_CONSTANT(0x00CF93000000FFFF)   /* G, DB, P, S, type 0x3 (read/write, accessed) */

static guint16 rd16(const guint8 *p) { return p[0] | p[1] << 8; }
static guint32 rd32(const guint8 *p) { return rd16(p) | (guint32)rd16(p + 2) << 16; }
static guint64 rd64(const guint8 *p) { return rd32(p) | (guint64)rd32(p + 4) << 32; }
static void wr16(guint8 *p, guint16 v) { p[0] = v; p[1] = v >> 8; }
static void wr32(guint8 *p, guint32 v) { wr16(p, v); wr16(p + 2, v >> 16); }
static void wr64(guint8 *p, guint64 v) { wr32(p, v); wr32(p + 4, v >> 32); }

static guint64 low_ram_end(guint64 ram_size)
{
    return MIN(ram_size, FERRY_X86_LOW_RAM_MAX);
}

static guint64 mib_up(guint64 bytes)
{
    return (bytes + MiB - 1) / MiB;
}

guint ferry_x86_e820_build(guint64 ram_size, FerryE820Entry *out, guint max)
{
    FerryE820Entry all[5];
    guint64 low = low_ram_end(ram_size);
    guint n = 0;

    g_return_val_if_fail(out != NULL || max == 0, 0);

    all[n++] = (FerryE820Entry){ 0, MIN(low, FERRY_X86_EBDA_START), FERRY_E820_RAM };
    all[n++] = (FerryE820Entry){ FERRY_X86_EBDA_START, 0xA0000 - FERRY_X86_EBDA_START,
                                 FERRY_E820_RESERVED };
    all[n++] = (FerryE820Entry){ FERRY_X86_BIOS_START, FERRY_X86_HIGH_MEM - FERRY_X86_BIOS_START,
                                 FERRY_E820_RESERVED };
    if (low > FERRY_X86_HIGH_MEM)
        all[n++] = (FerryE820Entry){ FERRY_X86_HIGH_MEM, low - FERRY_X86_HIGH_MEM, FERRY_E820_RAM };
    if (ram_size > low)
        all[n++] = (FerryE820Entry){ FERRY_X86_HIGH_RAM_BASE, ram_size - low, FERRY_E820_RAM };

    n = MIN(n, max);
    memcpy(out, all, n * sizeof *out);
    return n;
}

gboolean ferry_x86_ram_offset(guint64 ram_size, guint64 gpa, guint64 len, guint64 *offset)
{
    guint64 low = low_ram_end(ram_size);
    guint64 end;

    if (len == 0 || gpa + len < gpa)
        return FALSE;
    end = gpa + len;
    if (end <= low) {
        *offset = gpa;
        return TRUE;
    }
    if (gpa >= FERRY_X86_HIGH_RAM_BASE && end - FERRY_X86_HIGH_RAM_BASE <= ram_size - low) {
        *offset = gpa - FERRY_X86_HIGH_RAM_BASE + low;
        return TRUE;
    }
    return FALSE;
}

typedef struct {
    const FerryX86BootParams *p;
    guint8 *ram;
    const char *name;            /* the kernel, for messages */
    guint64 low_end;             /* end of RAM below the hole */
    guint64 kernel_end;          /* first byte above the kernel's footprint */
} Loader;

/* Host pointer for [gpa, gpa+len), or NULL if it is not all RAM. */
static guint8 *ram_ptr(Loader *l, guint64 gpa, guint64 len)
{
    guint64 off;

    if (!ferry_x86_ram_offset(l->p->ram_size, gpa, len, &off))
        return NULL;
    return l->ram + off;
}

/* Writes into RAM; the caller has already checked the range (the assert
 * guards the fixed low addresses, which ferry_x86_boot_load checks once). */
static void ram_write(Loader *l, guint64 gpa, const void *src, gsize len)
{
    guint8 *dst;

    if (len == 0)
        return;
    dst = ram_ptr(l, gpa, len);
    g_assert(dst != NULL);
    memcpy(dst, src, len);
}

static void ram_zero(Loader *l, guint64 gpa, gsize len)
{
    guint8 *dst;

    if (len == 0)
        return;
    dst = ram_ptr(l, gpa, len);
    g_assert(dst != NULL);
    memset(dst, 0, len);
}

static gboolean fail(GError **error, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static gboolean fail(GError **error, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error_literal(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID, msg);
    return FALSE;
}

static const char *cmdline_or_empty(const FerryX86BootParams *p)
{
    return p->cmdline ? p->cmdline : "";
}

/* GDT: null, null, __BOOT_CS (0x10), __BOOT_DS (0x18), as boot.rst asks. */
static void write_gdt(Loader *l, gboolean long_mode, FerryX86EntryState *out)
{
    guint8 gdt[4 * 8] = { 0 };

    wr64(gdt + FERRY_X86_BOOT_CS, long_mode ? GDT_CODE64 : GDT_CODE32);
    wr64(gdt + FERRY_X86_BOOT_DS, GDT_DATA);
    ram_write(l, FERRY_X86_GDT_ADDR, gdt, sizeof gdt);
    out->gdt_base = FERRY_X86_GDT_ADDR;
    out->gdt_limit = sizeof gdt - 1;
    out->cs_sel = FERRY_X86_BOOT_CS;
    out->ds_sel = FERRY_X86_BOOT_DS;
}

/* Identity map of 0-4 GiB with 2 MiB pages: 1 GiB pages need a CPUID bit
 * (pdpe1gb) the vCPU may lack. Covers the kernel, zero page and command line. */
static void write_page_tables(Loader *l)
{
    guint8 table[PAGE];

    memset(table, 0, sizeof table);
    wr64(table, FERRY_X86_PDPT | PTE_P | PTE_RW);
    ram_write(l, FERRY_X86_PML4, table, sizeof table);

    memset(table, 0, sizeof table);
    for (guint i = 0; i < 4; i++)
        wr64(table + 8 * i, (FERRY_X86_PD + i * PAGE) | PTE_P | PTE_RW);
    ram_write(l, FERRY_X86_PDPT, table, sizeof table);

    for (guint d = 0; d < 4; d++) {
        for (guint i = 0; i < 512; i++) {
            guint64 addr = ((guint64)d << 30) | ((guint64)i << 21);
            wr64(table + 8 * i, addr | PTE_P | PTE_RW | PTE_PS);
        }
        ram_write(l, FERRY_X86_PD + d * PAGE, table, sizeof table);
    }
}

/* Highest page-aligned address for the initrd with its last byte at or below
 * max_byte and its start at or above l->kernel_end. */
static gboolean place_initrd(Loader *l, guint64 max_byte, guint64 *addr, GError **error)
{
    const FerryX86BootParams *p = l->p;
    guint64 top = MIN(max_byte, l->low_end - 1) + 1;
    guint64 lowest = (l->kernel_end + PAGE - 1) & ~(PAGE - 1);

    if (p->initrd_len > top || ((top - p->initrd_len) & ~(PAGE - 1)) < lowest) {
        return fail(error, "initrd (%" G_GUINT64_FORMAT " MiB) does not fit in guest RAM "
                    "(%" G_GUINT64_FORMAT " MiB) beside the kernel: give the VM more memory (-m)",
                    mib_up(p->initrd_len), p->ram_size / MiB);
    }
    *addr = (top - p->initrd_len) & ~(PAGE - 1);
    ram_write(l, *addr, p->initrd, p->initrd_len);
    return TRUE;
}

static gboolean has_initrd(const FerryX86BootParams *p)
{
    return p->initrd != NULL && p->initrd_len > 0;
}

/* ---- bzImage, 64-bit boot protocol ---- */

static gboolean is_bzimage(const FerryX86BootParams *p)
{
    return p->kernel_len >= HDR_MAGIC + 4 && rd32(p->kernel + HDR_MAGIC) == HDRS_MAGIC;
}

static gboolean load_bzimage(Loader *l, FerryX86EntryState *out, GError **error)
{
    const FerryX86BootParams *p = l->p;
    const guint8 *k = p->kernel;
    guint8 bp[BP_SIZE];
    guint16 version;
    guint setup_sects, hdr_end;
    gsize setup_size, payload_len;
    guint64 load, need, pref, align, initrd_addr = 0;
    guint32 cmdline_size;
    gsize cmdline_len;
    FerryE820Entry e820[8];
    guint n_e820;

    if (p->kernel_len < HDR_VERSION + 2)
        return fail(error, "%s is truncated: %" G_GSIZE_FORMAT " bytes end inside its setup header",
                    l->name, p->kernel_len);
    version = rd16(k + HDR_VERSION);
    if (version < 0x020C)
        return fail(error, _("%s: kernel too old: boot protocol %u.%02u, Ferry needs 2.12 with 64-bit entry"),
                    l->name, version >> 8, version & 0xFF);

    setup_sects = k[HDR_SETUP_SECTS] ? k[HDR_SETUP_SECTS] : 4;
    setup_size = (gsize)(setup_sects + 1) * 512;
    hdr_end = MIN(HDR_JUMP + 2 + k[HDR_JUMP + 1], HDR_AREA_END);
    if (p->kernel_len < MAX(setup_size, HDR_MIN_END))
        return fail(error, "%s is truncated: %" G_GSIZE_FORMAT " bytes, less than its %" G_GSIZE_FORMAT
                    "-byte setup code", l->name, p->kernel_len, setup_size);
    if (hdr_end < HDR_MIN_END)
        return fail(error, _("%s has a damaged setup header (it ends at 0x%x, protocol %u.%02u needs 0x%x)"),
                    l->name, hdr_end, version >> 8, version & 0xFF, HDR_MIN_END);
    if (!(k[HDR_LOADFLAGS] & LOADED_HIGH))
        return fail(error, _("%s is a zImage (not loaded high): Ferry boots bzImage kernels"), l->name);
    if (!(rd16(k + HDR_XLOADFLAGS) & XLF_KERNEL_64))
        return fail(error, _("%s: boot protocol %u.%02u without a 64-bit entry point (XLF_KERNEL_64): "
                    "boot a 64-bit x86 kernel"), l->name, version >> 8, version & 0xFF);

    payload_len = p->kernel_len - setup_size;
    if ((guint64)rd32(k + HDR_SYSSIZE) * 16 > payload_len)
        return fail(error, "%s is truncated: the header says %" G_GUINT64_FORMAT " bytes of kernel "
                    "after the setup code, the file has %" G_GSIZE_FORMAT,
                    l->name, (guint64)rd32(k + HDR_SYSSIZE) * 16, payload_len);

    /* runtime_start = align_up(load, kernel_alignment); init_size bytes from there. */
    pref = rd64(k + HDR_PREF_ADDRESS);
    align = rd32(k + HDR_KERNEL_ALIGNMENT);
    if (align == 0 || (align & (align - 1)) || align > G_GUINT64_CONSTANT(1) << 30)
        align = 2 * MiB;
    need = MAX((guint64)rd32(k + HDR_INIT_SIZE), payload_len);
    load = pref >= FERRY_X86_HIGH_MEM && pref < l->low_end ? pref : FERRY_X86_HIGH_MEM;
    if (k[HDR_RELOCATABLE]) {
        load = (load + align - 1) & ~(align - 1);
        /* A small VM: the lowest aligned address above 1 MiB will do. */
        if (load + need > l->low_end)
            load = (FERRY_X86_HIGH_MEM + align - 1) & ~(align - 1);
    }
    if (load + need > l->low_end)
        return fail(error, "%s needs %" G_GUINT64_FORMAT " MiB of RAM from 0x%" G_GINT64_MODIFIER "x, "
                    "guest RAM is %" G_GUINT64_FORMAT " MiB: give the VM more memory (-m)",
                    l->name, mib_up(need), load, p->ram_size / MiB);
    l->kernel_end = load + need;

    cmdline_size = rd32(k + HDR_CMDLINE_SIZE);
    cmdline_len = strlen(cmdline_or_empty(p));
    if (cmdline_len > cmdline_size || cmdline_len >= FERRY_X86_CMDLINE_MAX)
        return fail(error, "cmdline longer than cmdline_size: %" G_GSIZE_FORMAT " bytes, %s takes %u: "
                    "shorten the kernel command line", cmdline_len, l->name,
                    MIN(cmdline_size, (guint32)FERRY_X86_CMDLINE_MAX - 1));

    if (has_initrd(p)) {
        guint64 max_byte = rd32(k + HDR_INITRD_ADDR_MAX);
        if (max_byte == 0)
            max_byte = 0x37FFFFFF;
        if (!place_initrd(l, max_byte, &initrd_addr, error))
            return FALSE;
    }

    ram_write(l, load, k + setup_size, payload_len);
    ram_write(l, FERRY_X86_CMDLINE, cmdline_or_empty(p), cmdline_len + 1);

    /* A clean zero page with the file's setup header (boot.rst, 64-bit protocol). */
    memset(bp, 0, sizeof bp);
    memcpy(bp + HDR_START, k + HDR_START, hdr_end - HDR_START);
    wr16(bp + HDR_VID_MODE, 0xFFFF);                      /* "normal" */
    bp[HDR_TYPE_OF_LOADER] = LOADER_UNDEFINED;
    bp[HDR_LOADFLAGS] |= CAN_USE_HEAP;
    wr32(bp + HDR_CODE32_START, (guint32)load);
    wr16(bp + HDR_HEAP_END_PTR, HEAP_END - 0x200);
    bp[HDR_EXT_LOADER_VER] = 0;
    bp[HDR_EXT_LOADER_TYPE] = 0;
    wr32(bp + HDR_CMD_LINE_PTR, (guint32)FERRY_X86_CMDLINE);
    wr32(bp + BP_EXT_CMD_LINE_PTR, (guint32)(FERRY_X86_CMDLINE >> 32));
    if (has_initrd(p)) {
        /* Below 3 GiB, so the ext_ halves are 0; written for the record. */
        wr32(bp + HDR_RAMDISK_IMAGE, (guint32)initrd_addr);
        wr32(bp + HDR_RAMDISK_SIZE, (guint32)p->initrd_len);
        wr32(bp + BP_EXT_RAMDISK_IMAGE, (guint32)(initrd_addr >> 32));
        wr32(bp + BP_EXT_RAMDISK_SIZE, (guint32)((guint64)p->initrd_len >> 32));
    }
    /* 2.14 was burnt (boot.rst), but kernels that read acpi_rsdp_addr report
     * 2.14 or later; older ones scan 0xE0000-0xFFFFF for the RSDP. */
    if (version >= 0x020E && p->rsdp_gpa)
        wr64(bp + BP_ACPI_RSDP_ADDR, p->rsdp_gpa);

    n_e820 = ferry_x86_e820_build(p->ram_size, e820, G_N_ELEMENTS(e820));
    g_assert(n_e820 <= BP_E820_MAX);
    bp[BP_E820_ENTRIES] = (guint8)n_e820;
    for (guint i = 0; i < n_e820; i++) {
        guint8 *e = bp + BP_E820_TABLE + 20 * i;
        wr64(e, e820[i].addr);
        wr64(e + 8, e820[i].size);
        wr32(e + 16, e820[i].type);
    }
    ram_write(l, FERRY_X86_ZERO_PAGE, bp, sizeof bp);

    write_gdt(l, TRUE, out);
    write_page_tables(l);
    out->long_mode = TRUE;
    out->rip = load + 0x200;
    out->rsp = FERRY_X86_STACK_TOP;
    out->rsi = FERRY_X86_ZERO_PAGE;
    out->rbx = 0;
    out->cr0 = CR0_PE | CR0_ET | CR0_PG;
    out->cr3 = FERRY_X86_PML4;
    out->cr4 = CR4_PAE;
    out->efer = EFER_LME | EFER_LMA;
    return TRUE;
}

/* ---- ELF with a PVH entry note ---- */

typedef struct {
    gboolean is64;
    guint64 phoff;
    guint phnum, phentsize;
} ElfInfo;

typedef struct {
    guint32 type;
    guint64 offset, paddr, filesz, memsz;
} ElfPhdr;

static gboolean is_elf(const FerryX86BootParams *p)
{
    return p->kernel_len >= 4 && memcmp(p->kernel, "\x7F" "ELF", 4) == 0;
}

static gboolean elf_parse(Loader *l, ElfInfo *info)
{
    const guint8 *k = l->p->kernel;
    gsize len = l->p->kernel_len;
    guint16 machine;

    if (len < 52 || k[5] != 1 /* little-endian */)
        return FALSE;
    machine = rd16(k + 18);
    if (k[4] == 1 && machine == 3 /* EM_386 */) {
        info->is64 = FALSE;
        info->phoff = rd32(k + 28);
        info->phentsize = rd16(k + 42);
        info->phnum = rd16(k + 44);
        if (info->phentsize < 32)
            return FALSE;
    } else if (k[4] == 2 && machine == 62 /* EM_X86_64 */ && len >= 64) {
        info->is64 = TRUE;
        info->phoff = rd64(k + 32);
        info->phentsize = rd16(k + 54);
        info->phnum = rd16(k + 56);
        if (info->phentsize < 56)
            return FALSE;
    } else {
        return FALSE;
    }
    return info->phoff <= len && (guint64)info->phnum * info->phentsize <= len - info->phoff;
}

static void elf_phdr(Loader *l, const ElfInfo *info, guint i, ElfPhdr *ph)
{
    const guint8 *h = l->p->kernel + info->phoff + (guint64)i * info->phentsize;

    ph->type = rd32(h);
    if (info->is64) {
        ph->offset = rd64(h + 8);
        ph->paddr = rd64(h + 24);
        ph->filesz = rd64(h + 32);
        ph->memsz = rd64(h + 40);
    } else {
        ph->offset = rd32(h + 4);
        ph->paddr = rd32(h + 12);
        ph->filesz = rd32(h + 16);
        ph->memsz = rd32(h + 20);
    }
}

static gboolean elf_range_ok(Loader *l, guint64 off, guint64 size)
{
    return off <= l->p->kernel_len && size <= l->p->kernel_len - off;
}

/* Looks through the PT_NOTE segments for Xen's PHYS32_ENTRY note. */
static gboolean elf_find_pvh_entry(Loader *l, const ElfInfo *info, guint64 *entry)
{
    for (guint i = 0; i < info->phnum; i++) {
        ElfPhdr ph;
        const guint8 *n, *end;

        elf_phdr(l, info, i, &ph);
        if (ph.type != 4 /* PT_NOTE */ || !elf_range_ok(l, ph.offset, ph.filesz))
            continue;
        n = l->p->kernel + ph.offset;
        end = n + ph.filesz;
        while (end - n >= 12) {
            guint64 namesz = rd32(n), descsz = rd32(n + 4);
            guint32 type = rd32(n + 8);
            guint64 name_pad = (namesz + 3) & ~G_GUINT64_CONSTANT(3), desc_pad = (descsz + 3) & ~G_GUINT64_CONSTANT(3);
            const guint8 *name = n + 12, *desc;

            if (name_pad > (guint64)(end - name))
                break;
            desc = name + name_pad;
            if (desc_pad > (guint64)(end - desc))
                break;
            if (namesz == 4 && memcmp(name, "Xen", 4) == 0 && type == XEN_ELFNOTE_PHYS32_ENTRY) {
                if (descsz == 4)
                    *entry = rd32(desc);
                else if (descsz == 8)
                    *entry = rd64(desc);
                else
                    return FALSE;
                return TRUE;
            }
            n = desc + desc_pad;
        }
    }
    return FALSE;
}

static gboolean load_pvh(Loader *l, const ElfInfo *info, guint64 entry,
                         FerryX86EntryState *out, GError **error)
{
    const FerryX86BootParams *p = l->p;
    guint8 si[PVH_START_INFO_SIZE] = { 0 };
    guint8 mod[PVH_MODLIST_ENTRY] = { 0 };
    guint8 map[8 * PVH_MEMMAP_ENTRY] = { 0 };
    FerryE820Entry e820[8];
    guint n_e820;
    guint64 initrd_addr = 0;
    gsize cmdline_len = strlen(cmdline_or_empty(p));

    if (entry >= FERRY_X86_HIGH_RAM_BASE || !ferry_x86_ram_offset(p->ram_size, entry, 1, &(guint64){ 0 }))
        return fail(error, "%s: its PVH entry point 0x%" G_GINT64_MODIFIER "x is not in guest RAM "
                    "(%" G_GUINT64_FORMAT " MiB): give the VM more memory (-m)",
                    l->name, entry, p->ram_size / MiB);

    /* Check every segment before writing any. */
    l->kernel_end = FERRY_X86_HIGH_MEM;
    for (guint i = 0; i < info->phnum; i++) {
        ElfPhdr ph;

        elf_phdr(l, info, i, &ph);
        if (ph.type != 1 /* PT_LOAD */ || ph.memsz == 0)
            continue;
        if (ph.filesz > ph.memsz || !elf_range_ok(l, ph.offset, ph.filesz))
            return fail(error, _("%s is truncated or damaged: segment %u lies outside the file"), l->name, i);
        if (ph.paddr < FERRY_X86_HIGH_MEM || ph.paddr + ph.memsz < ph.paddr ||
            !ferry_x86_ram_offset(p->ram_size, ph.paddr, ph.memsz, &(guint64){ 0 })) {
            if (ph.paddr >= FERRY_X86_HIGH_MEM && ph.paddr + ph.memsz > ph.paddr)
                return fail(error, "%s: PVH segment 0x%" G_GINT64_MODIFIER "x-0x%" G_GINT64_MODIFIER
                            "x lies outside guest RAM (%" G_GUINT64_FORMAT " MiB): give the VM more memory (-m)",
                            l->name, ph.paddr, ph.paddr + ph.memsz - 1, p->ram_size / MiB);
            return fail(error, "%s: PVH segment at 0x%" G_GINT64_MODIFIER "x is below 1 MiB, where Ferry "
                        "keeps its boot data: link the kernel at 1 MiB or above", l->name, ph.paddr);
        }
        if (ph.paddr + ph.memsz <= l->low_end)
            l->kernel_end = MAX(l->kernel_end, ph.paddr + ph.memsz);
    }

    if (cmdline_len >= FERRY_X86_CMDLINE_MAX)
        return fail(error, "cmdline longer than %u bytes (%" G_GSIZE_FORMAT "): shorten the kernel command line",
                    (guint)FERRY_X86_CMDLINE_MAX - 1, cmdline_len);
    if (has_initrd(p) && !place_initrd(l, l->low_end - 1, &initrd_addr, error))
        return FALSE;

    for (guint i = 0; i < info->phnum; i++) {
        ElfPhdr ph;

        elf_phdr(l, info, i, &ph);
        if (ph.type != 1 || ph.memsz == 0)
            continue;
        ram_write(l, ph.paddr, p->kernel + ph.offset, ph.filesz);
        ram_zero(l, ph.paddr + ph.filesz, ph.memsz - ph.filesz);
    }

    if (p->cmdline)
        ram_write(l, FERRY_X86_CMDLINE, p->cmdline, cmdline_len + 1);

    n_e820 = ferry_x86_e820_build(p->ram_size, e820, G_N_ELEMENTS(e820));
    for (guint i = 0; i < n_e820; i++) {
        guint8 *e = map + PVH_MEMMAP_ENTRY * i;
        wr64(e, e820[i].addr);
        wr64(e + 8, e820[i].size);
        wr32(e + 16, e820[i].type);
    }
    ram_write(l, FERRY_X86_PVH_MEMMAP, map, (gsize)n_e820 * PVH_MEMMAP_ENTRY);

    wr32(si + 0, PVH_MAGIC);
    wr32(si + 4, 1);                               /* version */
    if (has_initrd(p)) {
        wr64(mod, initrd_addr);
        wr64(mod + 8, p->initrd_len);
        ram_write(l, FERRY_X86_MODLIST, mod, sizeof mod);
        wr32(si + 12, 1);                          /* nr_modules */
        wr64(si + 16, FERRY_X86_MODLIST);
    }
    wr64(si + 24, p->cmdline ? FERRY_X86_CMDLINE : 0);
    wr64(si + 32, p->rsdp_gpa);
    wr64(si + 40, FERRY_X86_PVH_MEMMAP);
    wr32(si + 48, n_e820);
    ram_write(l, FERRY_X86_START_INFO, si, sizeof si);

    write_gdt(l, FALSE, out);
    out->long_mode = FALSE;
    out->rip = entry;
    out->rsp = FERRY_X86_STACK_TOP;
    out->rsi = 0;
    out->rbx = FERRY_X86_START_INFO;
    out->cr0 = CR0_PE | CR0_ET;
    out->cr3 = 0;
    out->cr4 = 0;
    out->efer = 0;
    return TRUE;
}

gboolean ferry_x86_boot_load(const FerryX86BootParams *p, guint8 *ram,
                             FerryX86EntryState *out, GError **error)
{
    Loader l = { 0 };
    ElfInfo info;
    guint64 entry;

    g_return_val_if_fail(p != NULL, FALSE);
    g_return_val_if_fail(p->kernel != NULL || p->kernel_len == 0, FALSE);
    g_return_val_if_fail(ram != NULL, FALSE);
    g_return_val_if_fail(out != NULL, FALSE);
    g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

    l.p = p;
    l.ram = ram;
    l.name = p->kernel_name ? p->kernel_name : "kernel";
    l.low_end = low_ram_end(p->ram_size);
    memset(out, 0, sizeof *out);

    /* The fixed boot area below 1 MiB and a kernel above it. */
    if (p->ram_size < 2 * MiB)
        return fail(error, "guest RAM (%" G_GUINT64_FORMAT " KiB) is too small to boot Linux: "
                    "give the VM more memory (-m)", p->ram_size / 1024);

    if (is_bzimage(p))
        return load_bzimage(&l, out, error);
    if (is_elf(p) && elf_parse(&l, &info) && elf_find_pvh_entry(&l, &info, &entry))
        return load_pvh(&l, &info, entry, out, error);
    return fail(error, _("%s is not a Linux kernel (no bzImage header and no PVH ELF note)"), l.name);
}

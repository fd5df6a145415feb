/* boot-x86-private.h: direct Linux boot for the x86 "pc" machine, without
 * firmware: the e820 map, the Linux/x86 boot protocol (bzImage, 64-bit entry,
 * Documentation/x86/boot.rst) and the Xen PVH entry (hvm_start_info v1).
 * Nothing here knows KVM: the result is a register state to load. */
#pragma once

#include <glib.h>
#include <ferry/error.h>

G_BEGIN_DECLS

/* Guest-physical layout of the pc machine. RAM [0, min(ram, 3 GiB)) sits at
 * host offset 0 of the RAM block; the rest at 4 GiB, host offset 3 GiB. */
#define FERRY_X86_LOW_RAM_MAX    G_GUINT64_CONSTANT(0xC0000000)   /* 3 GiB: MMIO hole above */
#define FERRY_X86_HIGH_RAM_BASE  G_GUINT64_CONSTANT(0x100000000)  /* 4 GiB */
#define FERRY_X86_EBDA_START     G_GUINT64_CONSTANT(0x9FC00)      /* 0x9FC00-0x9FFFF reserved */
#define FERRY_X86_BIOS_START     G_GUINT64_CONSTANT(0xE0000)      /* 0xE0000-0xFFFFF reserved (ACPI tables) */
#define FERRY_X86_HIGH_MEM       G_GUINT64_CONSTANT(0x100000)     /* 1 MiB */

/* Fixed addresses the loader writes (all below 1 MiB, all reserved to it):
 *   0x00500 GDT (null, null, 0x10 code, 0x18 data)
 *   0x01000 PVH hvm_start_info, 0x01040 its module list, 0x01100 its memory map
 *   0x07000 boot_params ("zero page", 4 KiB); the entry stack grows down from 0x7000
 *   0x09000 PML4, 0x0A000 PDPT, 0x0B000-0x0EFFF four page directories:
 *           identity map of 0-4 GiB with 2 MiB pages
 *   0x20000 kernel command line (up to 64 KiB)
 *   0xE0000 ACPI tables (acpi.c), when the machine puts them there
 * The kernel goes to pref_address (bzImage) or p_paddr (PVH), >= 1 MiB; the
 * initrd as high as it may below min(initrd_addr_max, end of low RAM). */
#define FERRY_X86_GDT_ADDR       G_GUINT64_CONSTANT(0x500)
#define FERRY_X86_START_INFO     G_GUINT64_CONSTANT(0x1000)
#define FERRY_X86_MODLIST        G_GUINT64_CONSTANT(0x1040)
#define FERRY_X86_PVH_MEMMAP     G_GUINT64_CONSTANT(0x1100)
#define FERRY_X86_ZERO_PAGE      G_GUINT64_CONSTANT(0x7000)
#define FERRY_X86_STACK_TOP      G_GUINT64_CONSTANT(0x7000)
#define FERRY_X86_PML4           G_GUINT64_CONSTANT(0x9000)
#define FERRY_X86_PDPT           G_GUINT64_CONSTANT(0xA000)
#define FERRY_X86_PD             G_GUINT64_CONSTANT(0xB000)
#define FERRY_X86_CMDLINE        G_GUINT64_CONSTANT(0x20000)
#define FERRY_X86_CMDLINE_MAX    G_GUINT64_CONSTANT(0x10000)      /* bytes, with the NUL */

#define FERRY_X86_BOOT_CS        0x10
#define FERRY_X86_BOOT_DS        0x18

/* e820 / hvm_memmap types (ACPI 6.x §15) */
#define FERRY_E820_RAM           1
#define FERRY_E820_RESERVED      2
#define FERRY_E820_ACPI          3
#define FERRY_E820_NVS           4

typedef struct {
    guint64 addr, size;
    guint32 type;
} FerryE820Entry;

/* Writes the pc machine's map for ram_size bytes into out (at most max
 * entries, 5 suffice) and returns how many it wrote, sorted by address. */
guint ferry_x86_e820_build(guint64 ram_size, FerryE820Entry *out, guint max);

/* Where the host copy of a guest-physical range is: offset into the RAM block,
 * or FALSE when [gpa, gpa+len) is not all RAM (len 0 is refused). */
gboolean ferry_x86_ram_offset(guint64 ram_size, guint64 gpa, guint64 len, guint64 *offset);

/* The boot CPU's state. Segments are flat (base 0, limit 0xFFFFFFFF, G=1,
 * DPL 0, present): cs_sel is code type 0xB (L=1, DB=0 in long mode; L=0,
 * DB=1 for PVH), ds_sel data type 0x3 (DB=1) and goes in DS, ES, FS, GS, SS.
 * rflags = 0x2 (interrupts off); all other general registers are zero. */
typedef struct {
    gboolean long_mode;          /* TRUE: 64-bit entry (bzImage); FALSE: 32-bit flat, paging off (PVH) */
    guint64 rip, rsp, rsi, rbx;  /* rsi = boot_params (bzImage); rbx = hvm_start_info (PVH) */
    guint64 cr0, cr3, cr4, efer;
    guint64 gdt_base;
    guint16 gdt_limit;
    guint16 cs_sel, ds_sel;      /* selectors into the GDT at gdt_base */
} FerryX86EntryState;

typedef struct {
    const char *kernel_name;                        /* for messages; NULL: "kernel" */
    const guint8 *kernel; gsize kernel_len;         /* the file's bytes */
    const guint8 *initrd; gsize initrd_len;         /* may be NULL */
    const char *cmdline;                            /* may be NULL */
    guint64 ram_size;
    guint64 rsdp_gpa;                               /* 0 if none */
} FerryX86BootParams;

/* Loads a bzImage (boot protocol >= 2.12 with XLF_KERNEL_64) or an ELF
 * kernel with a Xen PVH entry note into ram (the VM's RAM block, p->ram_size
 * bytes, laid out as above), with initrd, command line, boot_params or
 * hvm_start_info, GDT and page tables, and fills *out. Every write is
 * bounds-checked. Any thread; call with the vCPUs stopped. On error
 * (FERRY_ENGINE_ERROR_INVALID, the message says what to change) RAM may be
 * partly written. */
gboolean ferry_x86_boot_load(const FerryX86BootParams *p, guint8 *ram,
                             FerryX86EntryState *out, GError **error);

G_END_DECLS

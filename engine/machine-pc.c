/* machine-pc.c: the x86-64 "pc" machine run on KVM.
 *
 * Memory: RAM from 0 up to min(RAM, 3 GiB), the rest from 4 GiB; firmware
 * (--bios) ends at 4 GiB with its last 128 KiB copied below 1 MiB. The
 * in-kernel irqchip (PIC, IOAPIC, LAPIC) and PIT belong to KVM; the devices
 * below are ours, listed in order in build(). A Linux kernel (--kernel) is
 * started through its 64-bit or PVH entry with ACPI tables at 0xE0000.
 * Hard disks are virtio-blk on virtio-mmio at 0xD0000000 + n*0x1000 (hda..hdd),
 * described to a directly booted kernel by virtio_mmio.device= words on
 * its command line, in order, so Linux names them vda..vdd. */
#include "vm-private.h"
#include "acpi-private.h"

#include "../devices/uart-16550.h"
#include "../devices/pc-devices.h"
#include "../devices/virtio/mmio.h"
#include "../devices/virtio/blk.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <glib/gi18n-lib.h>

#define LOW_RAM_MAX      (3ULL << 30)
#define HIGH_RAM_BASE    (4ULL << 30)
#define BIOS_MAX         (16u << 20)
#define BIOS_SHADOW_BASE 0xE0000u
#define BIOS_SHADOW_SIZE 0x20000u
#define ACPI_TABLES_GPA  0xE0000u
#define ACPI_TABLES_ROOM 0x20000u
#define PM_BASE          0x600
#define SCI_IRQ          9
#define VIRTIO_BASE      0xD0000000u     /* in the hole below 4 GiB: RAM stops at 3 GiB */

/* ISA interrupt lines nothing else on this machine uses (COM2/LPT/PCI
 * ones), one per disk slot; below 16 so Linux's IRQ number is the GSI. */
static const guint virtio_gsi[FERRY_MAX_DISKS] = { 5, 7, 10, 11 };

typedef struct {
    FerryIrq irq[24];
    FerryDevice *com1, *rtc, *i8042, *pm, *cf9;
    FerryDevice *virtio[FERRY_MAX_DISKS];      /* NULL for an empty slot */
    FerryVirtioDevice *blk[FERRY_MAX_DISKS];   /* owned by their transports */
    guint8 *ram;
    guint64 ram_size, low_size;
    guint8 *bios;               /* page-aligned copy of the firmware file */
    gsize bios_size;
    GBytes *kernel, *initrd;
} Pc;

static void
pc_irq_set(FerryIrq *irq, gboolean level)
{
    FerryVm *vm = irq->opaque;
    if (vm->accel_ops->set_irq)
        vm->accel_ops->set_irq(vm, irq->number, level);
}

static gboolean
load_bios(Pc *pc, const char *path, GError **error)
{
    g_autoptr(GBytes) file = ferry_machine_read_file("firmware", path, error);
    gsize len;

    if (!file)
        return FALSE;
    const guint8 *data = g_bytes_get_data(file, &len);
    if (len == 0 || len > BIOS_MAX || len % 4096) {
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                    _("Firmware %s is %zu bytes: a flat firmware image must be a non-empty "
                    "multiple of 4 KiB and at most 16 MiB"), path, len);
        return FALSE;
    }
    pc->bios = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (pc->bios == MAP_FAILED) {
        pc->bios = NULL;
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_HOST,
                    _("Cannot allocate %zu bytes for the firmware: %s"), len, g_strerror(errno));
        return FALSE;
    }
    memcpy(pc->bios, data, len);
    pc->bios_size = len;
    return TRUE;
}

static void
set_cmos_memory(Pc *pc, FerryVm *vm)
{
    guint64 ext_kb = pc->low_size > (1u << 20) ? (pc->low_size - (1u << 20)) >> 10 : 0;
    guint64 above16 = pc->low_size > (16u << 20) ? (pc->low_size - (16u << 20)) >> 16 : 0;
    guint64 above4g = (pc->ram_size - pc->low_size) >> 16;
    guint cpus = MIN(vm->config->n_cpus - 1, 255u);

    ext_kb = MIN(ext_kb, 0xFFFFu);
    above16 = MIN(above16, 0xFFFFu);
    ferry_rtc_cmos_set(pc->rtc, 0x15, 640 & 0xFF);
    ferry_rtc_cmos_set(pc->rtc, 0x16, 640 >> 8);
    ferry_rtc_cmos_set(pc->rtc, 0x17, ext_kb & 0xFF);
    ferry_rtc_cmos_set(pc->rtc, 0x18, ext_kb >> 8);
    ferry_rtc_cmos_set(pc->rtc, 0x30, ext_kb & 0xFF);
    ferry_rtc_cmos_set(pc->rtc, 0x31, ext_kb >> 8);
    ferry_rtc_cmos_set(pc->rtc, 0x34, above16 & 0xFF);
    ferry_rtc_cmos_set(pc->rtc, 0x35, above16 >> 8);
    ferry_rtc_cmos_set(pc->rtc, 0x5B, above4g & 0xFF);
    ferry_rtc_cmos_set(pc->rtc, 0x5C, (above4g >> 8) & 0xFF);
    ferry_rtc_cmos_set(pc->rtc, 0x5D, (above4g >> 16) & 0xFF);
    ferry_rtc_cmos_set(pc->rtc, 0x5F, cpus);
}

static gboolean
pc_build(FerryVm *vm, GError **error)
{
    Pc *pc = g_new0(Pc, 1);
    const FerryVmConfig *c = vm->config;

    vm->machine = pc;
    for (guint i = 0; i < G_N_ELEMENTS(pc->irq); i++)
        pc->irq[i] = (FerryIrq) { .set = pc_irq_set, .opaque = vm, .number = i };

    pc->ram_size = c->memory_bytes;
    pc->low_size = MIN(pc->ram_size, LOW_RAM_MAX);
    pc->ram = ferry_machine_alloc_ram(pc->ram_size, error);
    if (!pc->ram)
        return FALSE;
    madvise(pc->ram, pc->ram_size, MADV_MERGEABLE);
    ferry_guest_memory_add(&vm->mem, 0, pc->low_size, pc->ram);
    if (pc->ram_size > pc->low_size)
        ferry_guest_memory_add(&vm->mem, HIGH_RAM_BASE, pc->ram_size - pc->low_size,
                               pc->ram + pc->low_size);

    if (c->bios_path && !load_bios(pc, c->bios_path, error))
        return FALSE;
    if (c->kernel_path) {
        pc->kernel = ferry_machine_read_file("kernel", c->kernel_path, error);
        if (!pc->kernel)
            return FALSE;
        if (c->initrd_path) {
            pc->initrd = ferry_machine_read_file("initrd", c->initrd_path, error);
            if (!pc->initrd)
                return FALSE;
        }
    }

    /* The device table, in order. */
    pc->com1 = ferry_uart_16550_new("com1", vm->serial_chr, &pc->irq[4], 0);
    pc->rtc = ferry_rtc_cmos_new(&pc->irq[8]);
    pc->i8042 = ferry_i8042_new(&vm->platform, &pc->irq[1], &pc->irq[12]);
    pc->pm = ferry_acpi_pm_new(&vm->platform, &pc->irq[SCI_IRQ]);
    pc->cf9 = ferry_reset_cf9_new(&vm->platform);
    if (!ferry_machine_map_device(vm->io_bus, 0x3F8, 8, pc->com1, error) ||
        !ferry_machine_map_device(vm->io_bus, 0x70, 2, pc->rtc, error) ||
        !ferry_machine_map_device(vm->io_bus, 0x60, 5, pc->i8042, error) ||
        !ferry_machine_map_device(vm->io_bus, PM_BASE, FERRY_ACPI_PM_LEN, pc->pm, error) ||
        !ferry_machine_map_device(vm->io_bus, 0xCF9, 1, pc->cf9, error))
        return FALSE;
    ferry_bus_map_ignored(vm->io_bus, 0x80, 1);     /* POST codes */
    set_cmos_memory(pc, vm);

    if (!ferry_vm_disks_open(vm, error))
        return FALSE;
    for (guint i = 0; i < FERRY_MAX_DISKS; i++) {
        if (!vm->disks[i].bs)
            continue;
        guint64 base = VIRTIO_BASE + 0x1000ULL * i;
        g_autofree char *id = g_strdup_printf("virtio-mmio@%" G_GINT64_MODIFIER "x", base);
        g_autofree char *serial = g_strdup_printf("ferry-%s", vm->disks[i].name);
        pc->blk[i] = ferry_virtio_blk_new(vm->disks[i].bs, serial, vm->disks[i].readonly);
        pc->virtio[i] = ferry_virtio_mmio_new(id, pc->blk[i], &pc->irq[virtio_gsi[i]], &vm->mem);
        if (!ferry_machine_map_device(vm->mmio_bus, base, FERRY_VIRTIO_MMIO_SIZE, pc->virtio[i], error))
            return FALSE;
    }
    return TRUE;
}

char *
ferry_machine_pc_kernel_cmdline(FerryVm *vm)
{
    GString *s = g_string_new(vm->config->cmdline);

    for (guint i = 0; i < FERRY_MAX_DISKS; i++) {
        if (!vm->disks[i].bs)
            continue;
        if (s->len)
            g_string_append_c(s, ' ');
        g_string_append_printf(s, "virtio_mmio.device=4K@0x%x:%u", VIRTIO_BASE + 0x1000u * i,
                               virtio_gsi[i]);
    }
    return g_string_free(s, FALSE);
}

static gboolean
pc_load(FerryVm *vm, GError **error)
{
    Pc *pc = vm->machine;
    const FerryVmConfig *c = vm->config;

    vm->have_x86_entry = FALSE;
    if (pc->bios) {
        /* The last 128 KiB of the firmware also answer below 1 MiB, where a
         * PC's firmware finds its own tables and real-mode entry points. */
        gsize n = MIN(pc->bios_size, BIOS_SHADOW_SIZE);
        ferry_guest_write(&vm->mem, BIOS_SHADOW_BASE + BIOS_SHADOW_SIZE - n,
                          pc->bios + pc->bios_size - n, n);
    }
    if (pc->kernel) {
        FerryAcpiConfig acfg = {
            .n_cpus = c->n_cpus, .pm_base = PM_BASE, .sci_irq = SCI_IRQ,
            .table_gpa = ACPI_TABLES_GPA, .table_room = ACPI_TABLES_ROOM,
        };
        guint64 rsdp = 0;
        guint8 *tables = ferry_guest_ptr(&vm->mem, ACPI_TABLES_GPA, ACPI_TABLES_ROOM);
        if (!tables) {
            g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                        _("Guest memory is too small for the ACPI tables: give the VM more memory"));
            return FALSE;
        }
        if (!ferry_acpi_build(&acfg, tables, &rsdp, error))
            return FALSE;
        gsize klen = 0, ilen = 0;
        const guint8 *k = g_bytes_get_data(pc->kernel, &klen);
        const guint8 *i = pc->initrd ? g_bytes_get_data(pc->initrd, &ilen) : NULL;
        g_autofree char *cmdline = ferry_machine_pc_kernel_cmdline(vm);
        FerryX86BootParams bp = {
            .kernel = k, .kernel_len = klen, .initrd = i, .initrd_len = ilen,
            .cmdline = cmdline, .ram_size = pc->ram_size, .rsdp_gpa = rsdp,
            .kernel_name = c->kernel_path,
        };
        if (!ferry_x86_boot_load(&bp, pc->ram, &vm->x86_entry, error))
            return FALSE;
        vm->have_x86_entry = TRUE;
    }
    return TRUE;
}

static void
pc_reset_devices(FerryVm *vm)
{
    Pc *pc = vm->machine;
    ferry_device_reset(pc->com1);
    ferry_device_reset(pc->rtc);
    ferry_device_reset(pc->i8042);
    ferry_device_reset(pc->pm);
    ferry_device_reset(pc->cf9);
    for (guint i = 0; i < FERRY_MAX_DISKS; i++)
        if (pc->virtio[i])
            ferry_device_reset(pc->virtio[i]);
}

static void
pc_power_button(FerryVm *vm)
{
    Pc *pc = vm->machine;
    ferry_acpi_pm_power_button(pc->pm);
}

static void
pc_destroy(FerryVm *vm)
{
    Pc *pc = vm->machine;
    if (!pc)
        return;
    /* No vCPU runs any more; disk requests in flight end before their
     * queues go. */
    for (guint i = 0; i < FERRY_MAX_DISKS; i++) {
        if (pc->blk[i])
            ferry_virtio_blk_drain(pc->blk[i]);
        ferry_device_free(pc->virtio[i]);
    }
    ferry_device_free(pc->com1);
    ferry_device_free(pc->rtc);
    ferry_device_free(pc->i8042);
    ferry_device_free(pc->pm);
    ferry_device_free(pc->cf9);
    if (pc->ram)
        munmap(pc->ram, pc->ram_size);
    if (pc->bios)
        munmap(pc->bios, pc->bios_size);
    if (pc->kernel)
        g_bytes_unref(pc->kernel);
    if (pc->initrd)
        g_bytes_unref(pc->initrd);
    g_free(pc);
    vm->machine = NULL;
}

const guint8 *
ferry_machine_pc_get_bios(FerryVm *vm, gsize *size)
{
    Pc *pc = vm->machine;
    *size = pc->bios_size;
    return pc->bios;
}

const FerryMachineOps ferry_machine_pc = {
    .name = "pc",
    .build = pc_build,
    .load = pc_load,
    .reset_devices = pc_reset_devices,
    .power_button = pc_power_button,
    .destroy = pc_destroy,
};

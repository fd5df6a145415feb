/* machine-riscv-virt.c: the RISC-V 64 "virt" machine, run on the software CPU.
 *
 * Its memory map and device-tree names follow QEMU's virt machine, so the
 * same firmware and bare-metal programs run on both:
 *   0x00100000 sifive,test0 finisher (syscon power-off / reboot)
 *   0x02000000 CLINT            0x0C000000 PLIC (95 sources, 2 contexts per hart)
 *   0x10000000 16550A UART (PLIC 10)
 *   0x10001000 + n*0x1000 virtio-mmio slots 0..7 (PLIC 1..8)
 *   0x80000000 RAM: OpenSBI (fw_dynamic) at its start, the kernel at +2 MiB,
 *              the initrd and the device tree at its end.
 * Boot is OpenSBI's "dynamic" protocol: every hart starts at RAM base in M
 * mode with a0 = hartid, a1 = device tree, a2 = struct fw_dynamic_info. */
#include "vm-private.h"
#include "machine-riscv-virt-private.h"

#include "../devices/uart-16550.h"
#include "../devices/riscv-devices.h"
#include "../devices/virtio/mmio.h"
#include "../devices/virtio/input.h"
#include "../devices/virtio/blk.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <libfdt.h>
#include <glib/gi18n-lib.h>

#define TEST_BASE     G_GUINT64_CONSTANT(0x00100000)
#define CLINT_BASE    G_GUINT64_CONSTANT(0x02000000)
#define PLIC_BASE     G_GUINT64_CONSTANT(0x0C000000)
#define UART_BASE     G_GUINT64_CONSTANT(0x10000000)
#define UART_IRQ      10
#define VIRTIO_BASE   G_GUINT64_CONSTANT(0x10001000)
#define VIRTIO_SLOTS  8
#define RAM_BASE      G_GUINT64_CONSTANT(0x80000000)
#define KERNEL_OFFSET G_GUINT64_CONSTANT(0x200000)
#define FDT_MAX       0x10000
#define UART_CLOCK    3686400

#define OPENSBI_DEFAULT "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin"

#define FW_DYNAMIC_MAGIC   0x4942534fULL     /* "OSBI" */
#define FW_DYNAMIC_VERSION 2
#define FW_NEXT_MODE_S     1

typedef struct {
    FerryIrq *hart_irqs;          /* per hart: MSIP, MTIP, and per context MEIP/SEIP */
    FerryIrq *msip, *mtip, *ctx_out;
    FerryIrq uart_irq;
    FerryDevice *test, *clint, *plic, *uart;
    guint8 *ram;
    guint64 ram_size;
    GBytes *firmware, *kernel, *initrd;
    char *firmware_path;
    guint n_virtio;               /* virtio-mmio slots described in the FDT */
    FerryIrq virtio_irq[VIRTIO_SLOTS];
    FerryDevice *virtio[VIRTIO_SLOTS];
    FerryVirtioDevice *power_button;   /* virtio-input in the last slot, owned by its transport */
    FerryVirtioDevice *blk[FERRY_MAX_DISKS];   /* virtio-blk in slots 0..3, owned by their transports */
} Virt;

/* Slots 0..3 take the hard disks (vda..vdd, the guest probes in address
 * order); the power button sits in the last slot. */
#define POWER_BUTTON_SLOT (VIRTIO_SLOTS - 1)

static void
hart_line_set(FerryIrq *irq, gboolean level)
{
    FerryVm *vm = irq->opaque;
    if (vm->accel_ops->set_irq)
        vm->accel_ops->set_irq(vm, irq->number, level);
}

static gboolean
virt_build(FerryVm *vm, GError **error)
{
    Virt *v = g_new0(Virt, 1);
    const FerryVmConfig *c = vm->config;
    guint n = c->n_cpus;

    vm->machine = v;
    v->ram_size = c->memory_bytes;
    if (v->ram_size < (16u << 20)) {
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                    _("A riscv64 VM needs at least 16 MiB of memory (firmware, kernel and device tree)"));
        return FALSE;
    }
    v->ram = ferry_machine_alloc_ram(v->ram_size, error);
    if (!v->ram)
        return FALSE;
    ferry_guest_memory_add(&vm->mem, RAM_BASE, v->ram_size, v->ram);

    v->firmware_path = g_strdup(c->bios_path ? c->bios_path
                                : g_getenv("FERRY_OPENSBI") ? g_getenv("FERRY_OPENSBI") : OPENSBI_DEFAULT);
    if (!g_file_test(v->firmware_path, G_FILE_TEST_EXISTS)) {
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                    _("Cannot find the RISC-V firmware %s: install Debian's 'opensbi' package, "
                    "or give another with --bios"), v->firmware_path);
        return FALSE;
    }
    v->firmware = ferry_machine_read_file("firmware", v->firmware_path, error);
    if (!v->firmware)
        return FALSE;
    if (c->kernel_path) {
        v->kernel = ferry_machine_read_file("kernel", c->kernel_path, error);
        if (!v->kernel)
            return FALSE;
    }
    if (c->initrd_path) {
        v->initrd = ferry_machine_read_file("initrd", c->initrd_path, error);
        if (!v->initrd)
            return FALSE;
    }

    /* Interrupt wiring: lines into the harts are numbered
     * hart * FERRY_RV_LINES_PER_HART + mip bit, and the accelerator
     * (accel-soft.c) turns them into ferry_rv_hart_set_irq(). */
    v->msip = g_new0(FerryIrq, n);
    v->mtip = g_new0(FerryIrq, n);
    v->ctx_out = g_new0(FerryIrq, 2 * n);
    for (guint h = 0; h < n; h++) {
        v->msip[h] = (FerryIrq) { hart_line_set, vm, h * FERRY_RV_LINES_PER_HART + 3 };
        v->mtip[h] = (FerryIrq) { hart_line_set, vm, h * FERRY_RV_LINES_PER_HART + 7 };
        v->ctx_out[2 * h] = (FerryIrq) { hart_line_set, vm, h * FERRY_RV_LINES_PER_HART + 11 };
        v->ctx_out[2 * h + 1] = (FerryIrq) { hart_line_set, vm, h * FERRY_RV_LINES_PER_HART + 9 };
    }

    if (!ferry_vm_disks_open(vm, error))
        return FALSE;

    /* The device table, in order. */
    v->test = ferry_sifive_test_new(&vm->platform);
    v->clint = ferry_clint_new(n, v->msip, v->mtip);
    v->plic = ferry_plic_new(2 * n, v->ctx_out);
    ferry_plic_irq_init(v->plic, &v->uart_irq, UART_IRQ);
    v->uart = ferry_uart_16550_new("uart0", vm->serial_chr, &v->uart_irq, 0);
    for (guint i = 0; i < VIRTIO_SLOTS; i++) {
        g_autofree char *id = g_strdup_printf("virtio-mmio@%" G_GINT64_MODIFIER "x", (guint64) (VIRTIO_BASE + 0x1000ULL * i));
        FerryVirtioDevice *backend = NULL;
        if (i == POWER_BUTTON_SLOT)
            backend = v->power_button = ferry_virtio_input_new();
        else if (i < FERRY_MAX_DISKS && vm->disks[i].bs) {
            g_autofree char *serial = g_strdup_printf("ferry-%s", vm->disks[i].name);
            backend = v->blk[i] = ferry_virtio_blk_new(vm->disks[i].bs, serial, vm->disks[i].readonly);
        }
        ferry_plic_irq_init(v->plic, &v->virtio_irq[i], 1 + i);
        v->virtio[i] = ferry_virtio_mmio_new(id, backend, &v->virtio_irq[i], &vm->mem);
        if (!ferry_machine_map_device(vm->mmio_bus, VIRTIO_BASE + 0x1000ULL * i, FERRY_VIRTIO_MMIO_SIZE, v->virtio[i], error))
            return FALSE;
    }
    v->n_virtio = VIRTIO_SLOTS;
    if (!ferry_machine_map_device(vm->mmio_bus, TEST_BASE, 0x1000, v->test, error) ||
        !ferry_machine_map_device(vm->mmio_bus, CLINT_BASE, FERRY_CLINT_SIZE, v->clint, error) ||
        !ferry_machine_map_device(vm->mmio_bus, PLIC_BASE, FERRY_PLIC_SIZE, v->plic, error) ||
        !ferry_machine_map_device(vm->mmio_bus, UART_BASE, 0x100, v->uart, error))
        return FALSE;
    return TRUE;
}

/* ---- loading ------------------------------------------------------------- */

static gboolean
ram_write(Virt *v, guint64 gpa, const void *data, gsize len, const char *what, GError **error)
{
    if (gpa < RAM_BASE || gpa - RAM_BASE > v->ram_size || len > v->ram_size - (gpa - RAM_BASE)) {
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                    "The %s (%zu KiB at 0x%" G_GINT64_MODIFIER "x) does not fit in guest memory "
                    "(%" G_GUINT64_FORMAT " MiB at 0x80000000): give the VM more memory",
                    what, len >> 10, gpa, v->ram_size >> 20);
        return FALSE;
    }
    memcpy(v->ram + (gpa - RAM_BASE), data, len);
    return TRUE;
}

/* ELF64 little-endian RISC-V: PT_LOAD segments at their physical address. */
static gboolean
load_elf(Virt *v, const guint8 *d, gsize len, const char *what, const char *path,
         guint64 *entry, guint64 *end, GError **error)
{
    if (len < 64 || d[4] != 2 || d[5] != 1 || GUINT16_FROM_LE(*(guint16 *) (d + 18)) != 243) {
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                    _("%s %s is an ELF file but not a 64-bit little-endian RISC-V one"), what, path);
        return FALSE;
    }
    guint64 phoff = GUINT64_FROM_LE(*(guint64 *) (d + 32));
    guint16 phentsize = GUINT16_FROM_LE(*(guint16 *) (d + 54));
    guint16 phnum = GUINT16_FROM_LE(*(guint16 *) (d + 56));
    *entry = GUINT64_FROM_LE(*(guint64 *) (d + 24));
    *end = 0;
    if (phentsize < 56 || phoff > len || (guint64) phnum * phentsize > len - phoff) {
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                    _("%s %s has a damaged ELF program header table"), what, path);
        return FALSE;
    }
    for (guint i = 0; i < phnum; i++) {
        const guint8 *ph = d + phoff + (guint64) i * phentsize;
        if (GUINT32_FROM_LE(*(guint32 *) ph) != 1)         /* PT_LOAD */
            continue;
        guint64 off = GUINT64_FROM_LE(*(guint64 *) (ph + 8));
        guint64 paddr = GUINT64_FROM_LE(*(guint64 *) (ph + 24));
        guint64 filesz = GUINT64_FROM_LE(*(guint64 *) (ph + 32));
        guint64 memsz = GUINT64_FROM_LE(*(guint64 *) (ph + 40));
        if (off > len || filesz > len - off || filesz > memsz || memsz > v->ram_size) {
            g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                        _("%s %s has a segment past the end of the file"), what, path);
            return FALSE;
        }
        g_autofree guint8 *seg = g_malloc0(memsz ? memsz : 1);
        memcpy(seg, d + off, filesz);
        if (!ram_write(v, paddr, seg, memsz, what, error))
            return FALSE;
        *end = MAX(*end, paddr + memsz);
    }
    return TRUE;
}

static gboolean
load_firmware(Virt *v, GError **error)
{
    gsize len;
    const guint8 *d = g_bytes_get_data(v->firmware, &len);
    guint64 entry, end;

    if (len >= 4 && !memcmp(d, "\177ELF", 4))
        return load_elf(v, d, len, "firmware", v->firmware_path, &entry, &end, error);
    return ram_write(v, RAM_BASE, d, len, "firmware", error);
}

static gboolean
load_kernel(Virt *v, FerryVm *vm, guint64 *kernel_end, GError **error)
{
    gsize len;
    const guint8 *d = g_bytes_get_data(v->kernel, &len);
    const char *path = vm->config->kernel_path;

    if (len >= 4 && !memcmp(d, "\177ELF", 4)) {
        guint64 entry;
        if (!load_elf(v, d, len, "kernel", path, &entry, kernel_end, error))
            return FALSE;
        vm->rv_next_addr = entry;
        return TRUE;
    }
    /* A RISC-V Linux Image: "RSC\x05" at 0x38 (Documentation/riscv/boot-image-header.rst). */
    if (len >= 64 && !memcmp(d + 0x38, "RSC\x05", 4)) {
        guint64 text_offset = GUINT64_FROM_LE(*(guint64 *) (d + 8));
        guint64 image_size = GUINT64_FROM_LE(*(guint64 *) (d + 16));
        guint64 load = RAM_BASE + (text_offset ? text_offset : KERNEL_OFFSET);
        if (image_size < len)
            image_size = len;
        if (image_size > v->ram_size) {
            g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                        "The kernel %s needs %" G_GUINT64_FORMAT " MiB: give the VM more memory",
                        path, image_size >> 20);
            return FALSE;
        }
        if (!ram_write(v, load, d, len, "kernel", error))
            return FALSE;
        vm->rv_next_addr = load;
        *kernel_end = load + image_size;
        return TRUE;
    }
    if (len >= 0x40 && (!memcmp(d + 0x38, "ARM\x64", 4) || !memcmp(d, "MZ", 2) ||
                        (len > 0x202 + 4 && !memcmp(d + 0x202, "HdrS", 4)))) {
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                    _("%s is not a RISC-V kernel (it looks like an x86 or ARM one): "
                    "choose a riscv64 Image, or --arch x86_64"), path);
        return FALSE;
    }
    /* Anything else is a raw S-mode binary such as U-Boot. */
    if (!ram_write(v, RAM_BASE + KERNEL_OFFSET, d, len, "kernel", error))
        return FALSE;
    vm->rv_next_addr = RAM_BASE + KERNEL_OFFSET;
    *kernel_end = RAM_BASE + KERNEL_OFFSET + len;
    return TRUE;
}

#define FDT_CHECK(expr) do { if ((err = (expr)) < 0) goto fdt_fail; } while (0)

static gboolean
build_fdt(Virt *v, FerryVm *vm, guint8 *buf, guint64 initrd_start, guint64 initrd_end, GError **error)
{
    const FerryVmConfig *c = vm->config;
    guint n = c->n_cpus;
    int err;
    char name[64];

    FDT_CHECK(fdt_create(buf, FDT_MAX));
    FDT_CHECK(fdt_finish_reservemap(buf));
    FDT_CHECK(fdt_begin_node(buf, ""));
    FDT_CHECK(fdt_property_u32(buf, "#address-cells", 2));
    FDT_CHECK(fdt_property_u32(buf, "#size-cells", 2));
    FDT_CHECK(fdt_property_string(buf, "compatible", "riscv-virtio"));
    FDT_CHECK(fdt_property_string(buf, "model", "riscv-virtio,qemu"));

    FDT_CHECK(fdt_begin_node(buf, "chosen"));
    if (c->cmdline)
        FDT_CHECK(fdt_property_string(buf, "bootargs", c->cmdline));
    g_snprintf(name, sizeof(name), "/soc/serial@%" G_GINT64_MODIFIER "x", UART_BASE);
    FDT_CHECK(fdt_property_string(buf, "stdout-path", name));
    if (initrd_end > initrd_start) {
        FDT_CHECK(fdt_property_u64(buf, "linux,initrd-start", initrd_start));
        FDT_CHECK(fdt_property_u64(buf, "linux,initrd-end", initrd_end));
    }
    FDT_CHECK(fdt_end_node(buf));

    g_snprintf(name, sizeof(name), "memory@%" G_GINT64_MODIFIER "x", RAM_BASE);
    FDT_CHECK(fdt_begin_node(buf, name));
    FDT_CHECK(fdt_property_string(buf, "device_type", "memory"));
    guint64 mem_reg[2] = { cpu_to_fdt64(RAM_BASE), cpu_to_fdt64(v->ram_size) };
    FDT_CHECK(fdt_property(buf, "reg", mem_reg, sizeof(mem_reg)));
    FDT_CHECK(fdt_end_node(buf));

    /* phandles: hart h's interrupt controller is 1 + h; PLIC is n + 1. */
    guint32 plic_phandle = n + 1;
    FDT_CHECK(fdt_begin_node(buf, "cpus"));
    FDT_CHECK(fdt_property_u32(buf, "#address-cells", 1));
    FDT_CHECK(fdt_property_u32(buf, "#size-cells", 0));
    FDT_CHECK(fdt_property_u32(buf, "timebase-frequency", (guint32) FERRY_CLINT_FREQ_HZ));
    for (guint h = 0; h < n; h++) {
        g_snprintf(name, sizeof(name), "cpu@%u", h);
        FDT_CHECK(fdt_begin_node(buf, name));
        FDT_CHECK(fdt_property_string(buf, "device_type", "cpu"));
        FDT_CHECK(fdt_property_u32(buf, "reg", h));
        FDT_CHECK(fdt_property_string(buf, "status", "okay"));
        FDT_CHECK(fdt_property_string(buf, "compatible", "riscv"));
        FDT_CHECK(fdt_property_string(buf, "riscv,isa", "rv64imafdc_zicsr_zifencei"));
        FDT_CHECK(fdt_property_string(buf, "mmu-type", "riscv,sv48"));
        FDT_CHECK(fdt_begin_node(buf, "interrupt-controller"));
        FDT_CHECK(fdt_property_u32(buf, "#interrupt-cells", 1));
        FDT_CHECK(fdt_property(buf, "interrupt-controller", NULL, 0));
        FDT_CHECK(fdt_property_string(buf, "compatible", "riscv,cpu-intc"));
        FDT_CHECK(fdt_property_u32(buf, "phandle", 1 + h));
        FDT_CHECK(fdt_end_node(buf));
        FDT_CHECK(fdt_end_node(buf));
    }
    FDT_CHECK(fdt_end_node(buf));

    g_autofree guint32 *clint_ext = g_new(guint32, 4 * n);
    g_autofree guint32 *plic_ext = g_new(guint32, 4 * n);
    for (guint h = 0; h < n; h++) {
        clint_ext[4 * h + 0] = cpu_to_fdt32(1 + h);
        clint_ext[4 * h + 1] = cpu_to_fdt32(3);       /* machine software */
        clint_ext[4 * h + 2] = cpu_to_fdt32(1 + h);
        clint_ext[4 * h + 3] = cpu_to_fdt32(7);       /* machine timer */
        plic_ext[4 * h + 0] = cpu_to_fdt32(1 + h);
        plic_ext[4 * h + 1] = cpu_to_fdt32(11);       /* machine external */
        plic_ext[4 * h + 2] = cpu_to_fdt32(1 + h);
        plic_ext[4 * h + 3] = cpu_to_fdt32(9);        /* supervisor external */
    }

    FDT_CHECK(fdt_begin_node(buf, "soc"));
    FDT_CHECK(fdt_property_u32(buf, "#address-cells", 2));
    FDT_CHECK(fdt_property_u32(buf, "#size-cells", 2));
    FDT_CHECK(fdt_property_string(buf, "compatible", "simple-bus"));
    FDT_CHECK(fdt_property(buf, "ranges", NULL, 0));

    g_snprintf(name, sizeof(name), "test@%" G_GINT64_MODIFIER "x", TEST_BASE);
    FDT_CHECK(fdt_begin_node(buf, name));
    static const char test_compat[] = "sifive,test1\0sifive,test0\0syscon";
    FDT_CHECK(fdt_property(buf, "compatible", test_compat, sizeof(test_compat)));
    guint64 test_reg[2] = { cpu_to_fdt64(TEST_BASE), cpu_to_fdt64(0x1000) };
    FDT_CHECK(fdt_property(buf, "reg", test_reg, sizeof(test_reg)));
    FDT_CHECK(fdt_property_u32(buf, "phandle", n + 2));
    FDT_CHECK(fdt_end_node(buf));

    FDT_CHECK(fdt_begin_node(buf, "poweroff"));
    FDT_CHECK(fdt_property_string(buf, "compatible", "syscon-poweroff"));
    FDT_CHECK(fdt_property_u32(buf, "regmap", n + 2));
    FDT_CHECK(fdt_property_u32(buf, "offset", 0));
    FDT_CHECK(fdt_property_u32(buf, "value", FERRY_SIFIVE_TEST_POWEROFF));
    FDT_CHECK(fdt_end_node(buf));
    FDT_CHECK(fdt_begin_node(buf, "reboot"));
    FDT_CHECK(fdt_property_string(buf, "compatible", "syscon-reboot"));
    FDT_CHECK(fdt_property_u32(buf, "regmap", n + 2));
    FDT_CHECK(fdt_property_u32(buf, "offset", 0));
    FDT_CHECK(fdt_property_u32(buf, "value", FERRY_SIFIVE_TEST_RESET));
    FDT_CHECK(fdt_end_node(buf));

    g_snprintf(name, sizeof(name), "clint@%" G_GINT64_MODIFIER "x", CLINT_BASE);
    FDT_CHECK(fdt_begin_node(buf, name));
    static const char clint_compat[] = "sifive,clint0\0riscv,clint0";
    FDT_CHECK(fdt_property(buf, "compatible", clint_compat, sizeof(clint_compat)));
    guint64 clint_reg[2] = { cpu_to_fdt64(CLINT_BASE), cpu_to_fdt64(FERRY_CLINT_SIZE) };
    FDT_CHECK(fdt_property(buf, "reg", clint_reg, sizeof(clint_reg)));
    FDT_CHECK(fdt_property(buf, "interrupts-extended", clint_ext, 16 * n));
    FDT_CHECK(fdt_end_node(buf));

    g_snprintf(name, sizeof(name), "plic@%" G_GINT64_MODIFIER "x", PLIC_BASE);
    FDT_CHECK(fdt_begin_node(buf, name));
    FDT_CHECK(fdt_property_u32(buf, "phandle", plic_phandle));
    FDT_CHECK(fdt_property_u32(buf, "riscv,ndev", FERRY_PLIC_SOURCES - 1));
    guint64 plic_reg[2] = { cpu_to_fdt64(PLIC_BASE), cpu_to_fdt64(FERRY_PLIC_SIZE) };
    FDT_CHECK(fdt_property(buf, "reg", plic_reg, sizeof(plic_reg)));
    FDT_CHECK(fdt_property(buf, "interrupts-extended", plic_ext, 16 * n));
    FDT_CHECK(fdt_property(buf, "interrupt-controller", NULL, 0));
    static const char plic_compat[] = "sifive,plic-1.0.0\0riscv,plic0";
    FDT_CHECK(fdt_property(buf, "compatible", plic_compat, sizeof(plic_compat)));
    FDT_CHECK(fdt_property_u32(buf, "#address-cells", 0));
    FDT_CHECK(fdt_property_u32(buf, "#interrupt-cells", 1));
    FDT_CHECK(fdt_end_node(buf));

    g_snprintf(name, sizeof(name), "serial@%" G_GINT64_MODIFIER "x", UART_BASE);
    FDT_CHECK(fdt_begin_node(buf, name));
    FDT_CHECK(fdt_property_u32(buf, "interrupts", UART_IRQ));
    FDT_CHECK(fdt_property_u32(buf, "interrupt-parent", plic_phandle));
    FDT_CHECK(fdt_property_u32(buf, "clock-frequency", UART_CLOCK));
    guint64 uart_reg[2] = { cpu_to_fdt64(UART_BASE), cpu_to_fdt64(0x100) };
    FDT_CHECK(fdt_property(buf, "reg", uart_reg, sizeof(uart_reg)));
    FDT_CHECK(fdt_property_string(buf, "compatible", "ns16550a"));
    FDT_CHECK(fdt_end_node(buf));

    for (guint i = 0; i < v->n_virtio; i++) {
        guint64 base = VIRTIO_BASE + (guint64) i * 0x1000;
        g_snprintf(name, sizeof(name), "virtio_mmio@%" G_GINT64_MODIFIER "x", base);
        FDT_CHECK(fdt_begin_node(buf, name));
        FDT_CHECK(fdt_property_u32(buf, "interrupts", 1 + i));
        FDT_CHECK(fdt_property_u32(buf, "interrupt-parent", plic_phandle));
        guint64 reg[2] = { cpu_to_fdt64(base), cpu_to_fdt64(0x1000) };
        FDT_CHECK(fdt_property(buf, "reg", reg, sizeof(reg)));
        FDT_CHECK(fdt_property_string(buf, "compatible", "virtio,mmio"));
        FDT_CHECK(fdt_end_node(buf));
    }

    FDT_CHECK(fdt_end_node(buf));        /* soc */
    FDT_CHECK(fdt_end_node(buf));        /* root */
    FDT_CHECK(fdt_finish(buf));
    return TRUE;

fdt_fail:
    g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                _("Cannot build the device tree for %u harts: %s"), n, fdt_strerror(err));
    return FALSE;
}

static gboolean
virt_load(FerryVm *vm, GError **error)
{
    Virt *v = vm->machine;
    guint64 kernel_end = RAM_BASE + KERNEL_OFFSET;
    guint64 ram_end = RAM_BASE + v->ram_size;
    guint64 initrd_start = 0, initrd_end = 0;

    if (!load_firmware(v, error))
        return FALSE;
    vm->rv_next_addr = RAM_BASE + KERNEL_OFFSET;
    if (v->kernel && !load_kernel(v, vm, &kernel_end, error))
        return FALSE;

    /* The device tree and the dynamic info at the top of RAM, the initrd
     * just below them: clear of the kernel and its bss. */
    guint64 fdt_addr = (ram_end - FDT_MAX) & ~0xFFFULL;
    guint64 info_addr = fdt_addr - 0x1000;
    if (v->initrd) {
        gsize ilen;
        const guint8 *idata = g_bytes_get_data(v->initrd, &ilen);
        initrd_start = (info_addr - ilen) & ~0xFFFULL;
        if (ilen >= info_addr - RAM_BASE || initrd_start < kernel_end) {
            g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                        "The initrd (%zu MiB) does not fit in guest memory (%" G_GUINT64_FORMAT
                        " MiB) beside the kernel: give the VM more memory", ilen >> 20, v->ram_size >> 20);
            return FALSE;
        }
        if (!ram_write(v, initrd_start, idata, ilen, "initrd", error))
            return FALSE;
        initrd_end = initrd_start + ilen;
    }
    g_autofree guint8 *fdt = g_malloc0(FDT_MAX);
    if (!build_fdt(v, vm, fdt, initrd_start, initrd_end, error))
        return FALSE;
    if (!ram_write(v, fdt_addr, fdt, FDT_MAX, "device tree", error))
        return FALSE;

    guint64 info[6] = {
        GUINT64_TO_LE(FW_DYNAMIC_MAGIC), GUINT64_TO_LE(FW_DYNAMIC_VERSION),
        GUINT64_TO_LE(vm->rv_next_addr), GUINT64_TO_LE(FW_NEXT_MODE_S),
        0 /* options */, GUINT64_TO_LE((guint64) -1) /* boot hart: any */,
    };
    if (!ram_write(v, info_addr, info, sizeof(info), "firmware info", error))
        return FALSE;
    vm->rv_entry = RAM_BASE;
    vm->rv_fdt = fdt_addr;
    vm->rv_dyninfo = info_addr;
    return TRUE;
}

static void
virt_reset_devices(FerryVm *vm)
{
    Virt *v = vm->machine;
    ferry_device_reset(v->test);
    ferry_device_reset(v->clint);
    ferry_device_reset(v->plic);
    ferry_device_reset(v->uart);
    for (guint i = 0; i < VIRTIO_SLOTS; i++)
        ferry_device_reset(v->virtio[i]);
    /* A reset machine starts from clean RAM, like after power-on: a
     * stale kernel must not be mistaken for the new one. MADV_DONTNEED on
     * private anonymous memory gives zero pages back without touching
     * (and so allocating) every page first. */
    madvise(v->ram, v->ram_size, MADV_DONTNEED);
}

static void
virt_power_button(FerryVm *vm)
{
    Virt *v = vm->machine;
    /* A press and a release of KEY_POWER, like a laptop's button. */
    ferry_virtio_input_send_key(v->power_button, FERRY_INPUT_KEY_POWER, TRUE);
    ferry_virtio_input_send_key(v->power_button, FERRY_INPUT_KEY_POWER, FALSE);
}

static void
virt_destroy(FerryVm *vm)
{
    Virt *v = vm->machine;
    if (!v)
        return;
    /* No vCPU runs any more; requests still in flight end before their
     * queues go. */
    for (guint i = 0; i < FERRY_MAX_DISKS; i++)
        if (v->blk[i])
            ferry_virtio_blk_drain(v->blk[i]);
    for (guint i = 0; i < VIRTIO_SLOTS; i++)
        ferry_device_free(v->virtio[i]);
    ferry_device_free(v->uart);
    ferry_device_free(v->plic);
    ferry_device_free(v->clint);
    ferry_device_free(v->test);
    if (v->ram)
        munmap(v->ram, v->ram_size);
    if (v->firmware)
        g_bytes_unref(v->firmware);
    if (v->kernel)
        g_bytes_unref(v->kernel);
    if (v->initrd)
        g_bytes_unref(v->initrd);
    g_free(v->firmware_path);
    g_free(v->msip);
    g_free(v->mtip);
    g_free(v->ctx_out);
    g_free(v);
    vm->machine = NULL;
}

gint64
ferry_machine_riscv_virt_poll_timer(FerryVm *vm, guint hart)
{
    Virt *v = vm->machine;
    return ferry_clint_poll(v->clint, hart);
}

guint64
ferry_machine_riscv_virt_mtime(FerryVm *vm)
{
    Virt *v = vm->machine;
    return ferry_clint_mtime(v->clint);
}

const FerryMachineOps ferry_machine_riscv_virt = {
    .name = "riscv-virt",
    .build = virt_build,
    .load = virt_load,
    .reset_devices = virt_reset_devices,
    .power_button = virt_power_button,
    .destroy = virt_destroy,
};

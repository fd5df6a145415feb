/* ferry-vm-record.c: the checks of a stored VM that depend on this host and
 * its files, and the conversion of a FerryVmRecord into the engine's
 * FerryVmConfig. See ferry-vm-record.h. */
#include "ferry-vm-record.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *
ferry_library_default_path(void)
{
    const char *env = g_getenv("FERRY_LIBRARY");
    if (env && *env)
        return g_strdup(env);
    return g_build_filename(g_get_user_data_dir(), "ferry", "ferry.db", NULL);
}

char *
ferry_vm_record_data_dir(const FerryVmRecord *vm)
{
    g_return_val_if_fail(vm != NULL && vm->uuid != NULL, NULL);
    return g_build_filename(g_get_user_data_dir(), "ferry", "vms", vm->uuid, NULL);
}

char *
ferry_format_memory(guint64 bytes)
{
    if (bytes && bytes % (1ULL << 30) == 0)
        return g_strdup_printf("%" G_GUINT64_FORMAT "G", bytes >> 30);
    if (bytes % (1ULL << 20) == 0)
        return g_strdup_printf("%" G_GUINT64_FORMAT "M", bytes >> 20);
    return g_strdup_printf("%" G_GUINT64_FORMAT "K", bytes >> 10);
}

static guint64
host_memory_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && size > 0 ? (guint64) pages * (guint64) size : G_MAXUINT64;
}

static gboolean
invalid(GError **error, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static gboolean
invalid(GError **error, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error_literal(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_INVALID, msg);
    return FALSE;
}

/* what: "disk image", "kernel"...; fix: what to do when it is missing. */
static gboolean
check_file(const FerryVmRecord *vm, const char *what, const char *path, const char *fix, GError **error)
{
    struct stat st;

    if (stat(path, &st) < 0) {
        int e = errno;
        if (e == ENOENT)
            return invalid(error, "VM '%s': the %s %s does not exist: %s.", vm->name, what, path, fix);
        return invalid(error, "VM '%s': cannot use the %s %s: %s. Check the path and its permissions.",
                       vm->name, what, path, g_strerror(e));
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
        return invalid(error, "VM '%s': the %s %s is not a file: give the path of an image file.", vm->name, what, path);
    if (access(path, R_OK) < 0)
        return invalid(error, "VM '%s': cannot read the %s %s: %s. Check its permissions.", vm->name, what, path,
                       g_strerror(errno));
    return TRUE;
}

char *
ferry_image_probe_format(const char *path, GError **error)
{
    guint8 head[4] = { 0 };
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0) {
        int e = errno;
        g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_INVALID,
                    "Cannot read the image %s: %s. %s.", path, g_strerror(e),
                    e == ENOENT ? "Create it (ferryctl img create) or correct the path" : "Check its permissions");
        return NULL;
    }
    n = pread(fd, head, sizeof(head), 0);
    close(fd);
    if (n == 4 && !memcmp(head, "QFI\xfb", 4))
        return g_strdup("qcow2");
    return g_strdup("raw");
}

static const char *
kind_words(FerryDriveKind kind)
{
    switch (kind) {
    case FERRY_DRIVE_DISK:
        return "hard disk";
    case FERRY_DRIVE_FLOPPY:
        return "floppy";
    case FERRY_DRIVE_CDROM:
        return "CD-ROM";
    }
    return "drive";
}

static const char *
kind_plural(FerryDriveKind kind)
{
    switch (kind) {
    case FERRY_DRIVE_DISK:
        return "hard disks";
    case FERRY_DRIVE_FLOPPY:
        return "floppies";
    case FERRY_DRIVE_CDROM:
        return "CD-ROM drives";
    }
    return "drives";
}

static const char *const ordinals[] = { "first", "second", "third", "fourth", "fifth" };

FerryDriveRecord *
ferry_vm_record_add_drive(FerryVmRecord *vm, FerryDriveKind kind, const char *path, const char *format,
                          gboolean readonly, GError **error)
{
    g_return_val_if_fail(vm != NULL && path != NULL, NULL);
    guint max = ferry_drive_kind_max_slots(kind);
    int slot = ferry_vm_record_free_slot(vm, kind);
    g_autofree char *probed = NULL;

    if (kind == FERRY_DRIVE_FLOPPY && !g_strcmp0(vm->arch, "riscv64")) {
        invalid(error, "VM '%s' is a riscv64 VM, which has no floppy controller: use a hard disk (or a "
                "CD-ROM) for %s, or make the VM x86_64.", vm->name, path);
        return NULL;
    }
    if (slot < 0) {
        if (kind == FERRY_DRIVE_CDROM)
            invalid(error, "VM '%s' already has a CD-ROM drive (%s), and a VM has only one: change its image "
                    "(cdrom=%s) instead.", vm->name, ferry_vm_record_get_drive(vm, kind, 0)->path, path);
        else
            invalid(error, "VM '%s' already has %u %s, the most a VM can have: a %s %s (%s) does not fit. "
                    "Remove one first (%s%u= empties slot %u).", vm->name, max, kind_plural(kind),
                    max < G_N_ELEMENTS(ordinals) ? ordinals[max] : "further", kind_words(kind), path,
                    ferry_drive_kind_to_string(kind), max - 1, max - 1);
        return NULL;
    }
    if (!check_file(vm, kind == FERRY_DRIVE_CDROM ? "CD-ROM image" : kind == FERRY_DRIVE_FLOPPY ? "floppy image"
                                                                                                : "disk image",
                    path, "create it (ferryctl img create) or correct the path", error))
        return NULL;
    if (!format && !(format = probed = ferry_image_probe_format(path, error)))
        return NULL;
    return ferry_vm_record_set_drive(vm, kind, slot, path, format,
                                     readonly || kind == FERRY_DRIVE_CDROM);
}

static gboolean
same_drive_file(const FerryVmRecord *previous, const FerryDriveRecord *d)
{
    if (!previous)
        return FALSE;
    for (guint i = 0; previous->drives && i < previous->drives->len; i++)
        if (!g_strcmp0(((FerryDriveRecord *) previous->drives->pdata[i])->path, d->path))
            return TRUE;
    return FALSE;
}

gboolean
ferry_vm_record_check(const FerryVmRecord *vm, const FerryVmRecord *previous, GError **error)
{
    g_return_val_if_fail(vm != NULL, FALSE);
    guint64 host = host_memory_bytes();
    FerryArch arch;

    if (!vm->arch || !ferry_arch_from_string(vm->arch, &arch))
        return invalid(error, "VM '%s': unknown architecture '%s': choose x86_64 or riscv64.", vm->name,
                       vm->arch ? vm->arch : "");
    if (vm->memory_bytes < FERRY_MIN_MEMORY)
        return invalid(error, "VM '%s': %" G_GUINT64_FORMAT " KiB of memory is too little: give it at least 2M.",
                       vm->name, vm->memory_bytes >> 10);
    if (vm->memory_bytes > host) {
        g_autofree char *want = ferry_format_memory(vm->memory_bytes);
        return invalid(error, "VM '%s': %s of memory is more than this host has (%" G_GUINT64_FORMAT
                       " MiB): choose at most %" G_GUINT64_FORMAT "M.", vm->name, want, host >> 20, host >> 20);
    }
    if (vm->vcpus < 1 || vm->vcpus > FERRY_MAX_CPUS)
        return invalid(error, "VM '%s': %u vCPUs is out of range: choose 1 to %d.", vm->name, vm->vcpus,
                       FERRY_MAX_CPUS);
    if (arch == FERRY_ARCH_X86_64 && !g_strcmp0(vm->accel, "soft"))
        return invalid(error, "VM '%s': x86_64 VMs run on KVM only: choose the accelerator kvm (or default).",
                       vm->name);
    if (arch == FERRY_ARCH_RISCV64 && !g_strcmp0(vm->accel, "kvm"))
        return invalid(error, "VM '%s': riscv64 VMs run on Ferry's software CPU, not KVM: choose the "
                       "accelerator soft (or default).", vm->name);
    if (vm->initrd && !vm->kernel)
        return invalid(error, "VM '%s': an initrd needs a kernel: set kernel=FILE, or remove the initrd.", vm->name);

    guint counts[3] = { 0 };
    for (guint i = 0; vm->drives && i < vm->drives->len; i++) {
        const FerryDriveRecord *d = vm->drives->pdata[i];
        if ((guint) d->kind < G_N_ELEMENTS(counts))
            counts[d->kind]++;
        if (d->kind == FERRY_DRIVE_FLOPPY && arch == FERRY_ARCH_RISCV64)
            return invalid(error, "VM '%s' is a riscv64 VM, which has no floppy controller: remove floppy%u "
                           "(%s), or make the VM x86_64.", vm->name, d->slot, d->path);
    }
    for (guint k = 0; k < G_N_ELEMENTS(counts); k++) {
        guint max = ferry_drive_kind_max_slots(k);
        if (counts[k] > max)
            return invalid(error, "VM '%s' has %u %s, more than the %u a VM can have: remove %u.", vm->name,
                           counts[k], kind_plural(k), max, counts[k] - max);
    }

    /* Files: only those that changed (see the header). */
    struct { const char *what, *now, *before; } files[] = {
        { "firmware image", vm->firmware, previous ? previous->firmware : NULL },
        { "kernel", vm->kernel, previous ? previous->kernel : NULL },
        { "initrd", vm->initrd, previous ? previous->initrd : NULL },
    };
    for (guint i = 0; i < G_N_ELEMENTS(files); i++) {
        if (files[i].now && g_strcmp0(files[i].now, files[i].before) &&
            !check_file(vm, files[i].what, files[i].now, "correct the path", error))
            return FALSE;
    }
    for (guint i = 0; vm->drives && i < vm->drives->len; i++) {
        const FerryDriveRecord *d = vm->drives->pdata[i];
        const char *what = d->kind == FERRY_DRIVE_DISK ? "disk image" :
                           d->kind == FERRY_DRIVE_FLOPPY ? "floppy image" : "CD-ROM image";
        if (!same_drive_file(previous, d) &&
            !check_file(vm, what, d->path, "create it (ferryctl img create) or correct the path", error))
            return FALSE;
    }
    return TRUE;
}

static void
drive_to_config(const FerryDriveRecord *d, FerryDriveConfig *c)
{
    c->path = g_strdup(d->path);
    c->format = g_strdup(d->format);
    c->readonly = d->readonly;
}

gboolean
ferry_vm_record_to_config(const FerryVmRecord *vm, FerryVmConfig *config, GError **error)
{
    g_return_val_if_fail(vm != NULL && config != NULL, FALSE);
    g_autofree char *data_dir = NULL;

    ferry_vm_config_init(config);
    if (!vm->arch || !ferry_arch_from_string(vm->arch, &config->arch))
        return invalid(error, "VM '%s': unknown architecture '%s': choose x86_64 or riscv64.", vm->name,
                       vm->arch ? vm->arch : "");
    if (!g_strcmp0(vm->accel, "kvm"))
        config->accel = FERRY_ACCEL_KVM;
    else if (!g_strcmp0(vm->accel, "soft"))
        config->accel = FERRY_ACCEL_SOFTCPU;
    else
        config->accel = FERRY_ACCEL_DEFAULT;
    config->memory_bytes = vm->memory_bytes;
    config->n_cpus = vm->vcpus;
    config->bios_path = g_strdup(vm->firmware);
    config->kernel_path = g_strdup(vm->kernel);
    config->initrd_path = g_strdup(vm->initrd);
    config->cmdline = g_strdup(vm->cmdline);
    for (guint i = 0; vm->drives && i < vm->drives->len; i++) {
        const FerryDriveRecord *d = vm->drives->pdata[i];
        switch (d->kind) {
        case FERRY_DRIVE_DISK:
            if (d->slot < FERRY_MAX_DISKS)
                drive_to_config(d, &config->disks[d->slot]);
            break;
        case FERRY_DRIVE_FLOPPY:
            if (d->slot < FERRY_MAX_FLOPPIES)
                drive_to_config(d, &config->floppies[d->slot]);
            break;
        case FERRY_DRIVE_CDROM:
            if (d->slot == 0)
                drive_to_config(d, &config->cdrom);
            break;
        }
    }
    config->snapshot = vm->snapshot_mode;

    data_dir = ferry_vm_record_data_dir(vm);
    if (g_mkdir_with_parents(data_dir, 0700) < 0) {
        int e = errno;
        ferry_vm_config_clear(config);
        g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_FAILED,
                    "Cannot create the folder %s of VM '%s': %s. Check that you may write there.",
                    data_dir, vm->name, g_strerror(e));
        return FALSE;
    }
    config->data_dir = g_steal_pointer(&data_dir);
    return TRUE;
}

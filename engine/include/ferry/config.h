/* ferry/config.h: the hardware description of one VM (FerryVmConfig).
 *
 * A plain struct the caller fills (app/ turns a stored record into one);
 * ferry_vm_new() validates and copies it, so the caller keeps ownership. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
    FERRY_ARCH_X86_64 = 0,      /* the "pc" machine, on KVM */
    FERRY_ARCH_RISCV64,         /* the "virt" machine, on the software CPU */
} FerryArch;

typedef enum {
    FERRY_ACCEL_DEFAULT = 0,    /* KVM for x86_64, the software CPU for riscv64 */
    FERRY_ACCEL_KVM,
    FERRY_ACCEL_SOFTCPU,
} FerryAccel;

typedef enum {
    FERRY_SERIAL_EVENT = 0,     /* bytes as serial_output events, input by ferry_vm_serial_input() */
    FERRY_SERIAL_NONE,
    FERRY_SERIAL_PTY,           /* a pseudo-terminal; its path is in ferry_vm_get_serial_path() */
    FERRY_SERIAL_UNIX,          /* listen at serial_path */
} FerrySerialKind;

/* One drive: a disk image file. */
typedef struct {
    char *path;                 /* NULL: the slot is empty */
    char *format;               /* "raw", "qcow2", or NULL to probe the file */
    gboolean readonly;
} FerryDriveConfig;

#define FERRY_MAX_DISKS     4   /* hda..hdd: vda..vdd in the guest, in order */
#define FERRY_MAX_FLOPPIES  2

/* Host limits the engine enforces (and the UI offers). */
#define FERRY_MAX_CPUS      1024
#define FERRY_MIN_MEMORY    (2ULL << 20)

typedef struct {
    FerryArch arch;
    FerryAccel accel;
    guint64 memory_bytes;       /* > 0; at most the host's RAM */
    guint n_cpus;               /* 1 .. the accelerator's limit */

    char *bios_path;            /* flat firmware image, or NULL */
    char *kernel_path;          /* Linux bzImage / PVH ELF (x86), Image/ELF (riscv), or NULL */
    char *initrd_path;          /* or NULL */
    char *cmdline;              /* or NULL */

    FerrySerialKind serial;
    char *serial_path;          /* FERRY_SERIAL_UNIX */
    char *monitor_path;         /* listen for the text monitor here (unix socket), or NULL */

    FerryDriveConfig disks[FERRY_MAX_DISKS];
    FerryDriveConfig floppies[FERRY_MAX_FLOPPIES];
    FerryDriveConfig cdrom;
    /* Snapshot mode: every guest write goes to a temporary qcow2 overlay
     * above each writable disk, committed or discarded later. */
    gboolean snapshot;
    /* Where the VM keeps its own files (snapshot overlays): a stored VM's
     * $XDG_DATA_HOME/ferry/vms/<uuid>/; NULL for a one-off run (a private
     * temporary folder, removed when the run ends cleanly). */
    char *data_dir;

    gboolean no_reboot;         /* a guest reset (or triple fault) stops the VM instead */
    char *kvm_device;           /* NULL: /dev/kvm */
} FerryVmConfig;

/* Fills defaults: x86_64, 128 MiB, 1 CPU, serial as events. */
void ferry_vm_config_init(FerryVmConfig *config);
/* Deep copy; free with ferry_vm_config_clear() + g_free, or use _free. */
FerryVmConfig *ferry_vm_config_copy(const FerryVmConfig *config);
/* Frees the strings (not the struct itself). */
void ferry_vm_config_clear(FerryVmConfig *config);
void ferry_vm_config_free(FerryVmConfig *config);    /* NULL is fine */

const char *ferry_arch_to_string(FerryArch arch);     /* "x86_64", "riscv64" */
gboolean    ferry_arch_from_string(const char *s, FerryArch *out);

/* Parses "512", "512M", "1G", "65536K" (a bare number is MiB). FALSE on garbage or 0. */
gboolean ferry_parse_memory_size(const char *s, guint64 *bytes);

G_END_DECLS

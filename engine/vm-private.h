/* vm-private.h: the inside of FerryVm, shared by the engine's files.
 *
 * A VM is a machine (what hardware: "pc", "riscv-virt") run by an
 * accelerator (how the CPUs run: KVM, the software CPU). Both are const ops
 * tables chosen in vm.c; the devices know neither. */
#pragma once

#include <ferry/vm.h>

#include "../devices/device.h"
#include "../devices/guest-memory.h"
#include "../devices/chardev.h"
#include "boot-x86-private.h"

typedef struct FerryBlock FerryBlock;

typedef struct FerryAccelOps FerryAccelOps;

/* One hard disk slot (vm-disks.c). */
typedef struct {
    FerryBlock *bs;                       /* NULL: empty slot; else the image, or its overlay */
    char name[4];                         /* "hda" */
    char *format;                         /* the image's format ("raw", "qcow2") */
    gboolean readonly;
    gboolean overlay;                     /* snapshot mode: bs is a ferry_overlay_open() one */
} FerryVmDisk;
typedef struct FerryMachineOps FerryMachineOps;

struct FerryAccelOps {
    const char *name;                     /* "kvm" */
    /* Opens the accelerator and creates its VM and vCPUs; RAM regions in vm->mem
     * are registered with it. Engine-thread-free: called from ferry_vm_start(). */
    gboolean (*init)(FerryVm *vm, GError **error);
    /* Starts the vCPUs at their boot state. */
    gboolean (*start)(FerryVm *vm, GError **error);
    /* Engine thread: returns once no vCPU runs guest code. */
    void     (*pause)(FerryVm *vm);
    void     (*resume)(FerryVm *vm);
    /* Engine thread, paused: every vCPU back to its power-on state. */
    gboolean (*reset)(FerryVm *vm, GError **error);
    /* Engine thread, paused: text for `info registers` / `info cpus`. */
    void     (*dump_registers)(FerryVm *vm, GString *out);
    void     (*dump_cpus)(FerryVm *vm, GString *out);
    /* Interrupt line (GSI) from a device, any thread; NULL where devices
     * signal through an emulated interrupt controller instead. */
    void     (*set_irq)(FerryVm *vm, guint gsi, gboolean level);
    /* Ends the vCPU threads and frees everything. */
    void     (*destroy)(FerryVm *vm);
};

struct FerryMachineOps {
    const char *name;                     /* "pc" */
    /* RAM, buses and devices; called before the accelerator's init. */
    gboolean (*build)(FerryVm *vm, GError **error);
    /* Firmware / kernel into RAM and the boot CPU's state; called at start
     * and again at every reset (after the accelerator's reset). */
    gboolean (*load)(FerryVm *vm, GError **error);
    void     (*reset_devices)(FerryVm *vm);
    /* The power button (ACPI fixed event, virtio-input KEY_POWER). */
    void     (*power_button)(FerryVm *vm);
    /* Machine-specific lines for `info` commands; may be NULL. */
    void     (*destroy)(FerryVm *vm);
};

struct FerryVm {
    gint ref;
    FerryVmConfig *config;
    GMainContext *caller_ctx;
    FerryVmEvents events;
    gpointer user_data;
    gboolean alive;                       /* caller side: FALSE once freed */

    GMutex state_lock;
    FerryVmState state;
    FerryVmStopReason stop_reason;

    GThread *engine_thread;
    GMainContext *ctx;                    /* the engine thread's */
    GMainLoop *loop;

    const FerryMachineOps *machine_ops;
    gpointer machine;
    const FerryAccelOps *accel_ops;
    gpointer accel;

    FerryGuestMemory mem;
    FerryBus *io_bus;
    FerryBus *mmio_bus;
    FerryPlatform platform;

    FerryChardev *serial_chr;
    FerryChardev *monitor_chr;
    GString *monitor_line;                /* partial line from the monitor socket */

    GMutex serial_lock;
    GByteArray *serial_pending;           /* output waiting for the caller */
    gboolean serial_flush_scheduled;

    guint64 resets;                       /* for info status and tests */
    gint reset_pending, poweroff_pending; /* atomic: a request is queued */

    /* Hard disks, opened by the machine's build() (ferry_vm_disks_open),
     * closed by teardown after the machine's devices are gone. */
    FerryVmDisk disks[FERRY_MAX_DISKS];
    char *snapshot_dir;                   /* where the overlays live */
    gboolean snapshot_dir_private;        /* a one-off run's: removed at teardown */
    GThreadPool *disk_jobs;               /* commit/discard/query from the API, one at a time */
    GMutex disk_jobs_lock;

    /* x86: where the boot CPU starts when a kernel is loaded directly
     * (machine load() fills it; the accelerator applies it). */
    gboolean have_x86_entry;
    FerryX86EntryState x86_entry;

    /* riscv: every hart starts at rv_entry in M mode with a0 = hartid,
     * a1 = rv_fdt, a2 = rv_dyninfo (OpenSBI fw_dynamic); rv_next_addr is
     * where the firmware goes on (the kernel). Filled by the machine's load(). */
    guint64 rv_entry, rv_fdt, rv_dyninfo, rv_next_addr;
};

/* ---- engine-internal API (vm.c) ---- */

/* Any thread (vCPU threads mostly): ask the engine thread to act. */
void ferry_vm_request_poweroff(FerryVm *vm, const char *why);
void ferry_vm_request_reset(FerryVm *vm, const char *why);
/* Stops the VM with an error (FERRY_VM_STOP_ERROR); message for the person. */
void ferry_vm_request_error(FerryVm *vm, const char *message);

/* Engine thread: for the monitor. */
void ferry_vm_do_pause(FerryVm *vm);
void ferry_vm_do_resume(FerryVm *vm);
void ferry_vm_do_reset(FerryVm *vm);
void ferry_vm_do_stop(FerryVm *vm, FerryVmStopReason reason);
void ferry_vm_do_power_button(FerryVm *vm);
FerryVmState ferry_vm_state_locked_get(FerryVm *vm);

/* Any thread: a reference that keeps the struct (not the VM's run) alive. */
FerryVm *ferry_vm_ref(FerryVm *vm);
void     ferry_vm_unref(gpointer vm);

/* vm-disks.c */
/* Opens the config's disks into vm->disks (snapshot overlays included).
 * Called by each machine's build(); errors name the file and the fix. */
gboolean ferry_vm_disks_open(FerryVm *vm, GError **error);
/* Waits until no guest disk request is in flight (their completions
 * interrupt through the accelerator). vCPUs must be paused or gone. */
void     ferry_vm_disks_drain(FerryVm *vm);
/* A vCPU thread with nothing to run (a hart in WFI): runs one disk request
 * that waits in a queue for an I/O thread, if any (ferry_block_help). TRUE if
 * it did. Any vCPU thread while the VM runs. */
gboolean ferry_vm_disks_help(FerryVm *vm);
/* Waits for disk jobs, closes the disks, removes a private snapshot folder
 * (discarding its changes) and empty overlays. Idempotent. */
void     ferry_vm_disks_close(FerryVm *vm);
/* Monitor: `info block`, `commit [all|DRIVE]`, `discard [all|DRIVE]`.
 * Engine thread (or the caller's before start); commit and discard block
 * until done. */
void     ferry_vm_disks_info(FerryVm *vm, GString *out);
void     ferry_vm_disks_commit_text(FerryVm *vm, const char *drive, GString *out);
void     ferry_vm_disks_discard_text(FerryVm *vm, const char *drive, GString *out);

/* monitor.c */
/* Engine thread: runs one command line, returns the reply text (caller frees);
 * *quit set when the command ends the VM. */
char *ferry_monitor_execute(FerryVm *vm, const char *line, gboolean *quit);
/* Splits a line into words (quotes not supported: the commands need none).
 * Returns NULL for an empty line. Exposed for the unit test. */
char **ferry_monitor_split(const char *line);

/* The known machines and accelerators. */
extern const FerryMachineOps ferry_machine_pc;
extern const FerryMachineOps ferry_machine_riscv_virt;
extern const FerryAccelOps ferry_accel_kvm;
extern const FerryAccelOps ferry_accel_soft;

/* machine-pc.c: the command line a directly booted kernel gets: the
 * config's plus a virtio_mmio.device= word per hard disk (caller frees). */
char *ferry_machine_pc_kernel_cmdline(FerryVm *vm);
/* vm.c, for machines: a whole file ("Cannot read kernel PATH: why"), and a
 * device mapped on a bus (an overlap is a machine bug, reported). */
GBytes  *ferry_machine_read_file(const char *what, const char *path, GError **error);
gboolean ferry_machine_map_device(FerryBus *bus, guint64 base, guint64 size, FerryDevice *dev,
                                  GError **error);
/* Guest RAM: `size` bytes of zeroes, 2 MiB-aligned and backed by huge pages
 * where the host allows; free with munmap(ram, size). NULL with an error
 * that says to choose less memory. */
guint8  *ferry_machine_alloc_ram(guint64 size, GError **error);

/* machine-pc.c: the firmware image for the accelerator's ROM slot. */
const guint8 *ferry_machine_pc_get_bios(FerryVm *vm, gsize *size);

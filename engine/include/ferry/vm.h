/* ferry/vm.h: one virtual machine, run by the engine on threads of its own.
 *
 * Threads: every function here is called from the thread that owns the
 * GMainContext given to ferry_vm_new() (the "caller"), and none of them
 * blocks on the guest. The engine runs the VM on an engine thread plus one
 * thread per vCPU (KVM) or on its own slices (software CPU). Events come back
 * as callbacks on the caller's context; after ferry_vm_free() returns, no
 * callback runs.
 */
#pragma once

#include <ferry/config.h>
#include <ferry/error.h>

G_BEGIN_DECLS

typedef struct FerryVm FerryVm;

typedef enum {
    FERRY_VM_STATE_CREATED = 0, /* ferry_vm_new() succeeded, not started */
    FERRY_VM_STATE_RUNNING,
    FERRY_VM_STATE_PAUSED,
    FERRY_VM_STATE_STOPPED,     /* final: see ferry_vm_get_stop_reason() */
} FerryVmState;

typedef enum {
    FERRY_VM_STOP_NONE = 0,
    FERRY_VM_STOP_POWEROFF,     /* the guest powered off (ACPI S5, syscon) */
    FERRY_VM_STOP_QUIT,         /* quit / hard stop from the user */
    FERRY_VM_STOP_RESET,        /* the guest reset with no_reboot set */
    FERRY_VM_STOP_ERROR,        /* the engine stopped the VM: see the failed event */
} FerryVmStopReason;

typedef struct {                /* every callback runs on the caller's context; any may be NULL */
    void (*state_changed)(FerryVm *vm, FerryVmState state, gpointer user_data);
    void (*serial_output)(FerryVm *vm, guint port, GBytes *data, gpointer user_data);
    void (*failed)(FerryVm *vm, const GError *error, gpointer user_data);
    /* The guest reset (reboot, triple fault) and runs again. */
    void (*guest_reset)(FerryVm *vm, gpointer user_data);
} FerryVmEvents;

typedef enum {
    FERRY_VM_CMD_PAUSE,         /* Running -> Paused; ignored otherwise */
    FERRY_VM_CMD_RESUME,        /* Paused -> Running; ignored otherwise */
    FERRY_VM_CMD_POWER_BUTTON,  /* ACPI power button / virtio-input KEY_POWER; Running only */
    FERRY_VM_CMD_RESET,         /* hard reset; Running or Paused (stays paused) */
    FERRY_VM_CMD_STOP,          /* hard stop (Force Off): -> Stopped (QUIT); any state but Stopped */
} FerryVmCommandKind;

typedef struct {
    FerryVmCommandKind kind;
} FerryVmCommand;

/* Validates and copies config. Errors (FERRY_ENGINE_ERROR_INVALID / _HOST)
 * name the problem and the fix: a missing kernel, memory beyond the host's,
 * too many CPUs. Caller owns the result. */
FerryVm *ferry_vm_new(const FerryVmConfig *config, GMainContext *context,
                      const FerryVmEvents *events, gpointer user_data, GError **error);
/* Opens the accelerator, builds the machine, loads firmware/kernel and
 * starts the engine thread. Legal once, in Created. Errors here mean nothing
 * ran (no /dev/kvm, a kernel that is not a kernel). */
gboolean ferry_vm_start(FerryVm *vm, GError **error);
/* Copies; never blocks. The command's comment says in which states it acts. */
void     ferry_vm_send(FerryVm *vm, const FerryVmCommand *cmd);
void     ferry_vm_send_simple(FerryVm *vm, FerryVmCommandKind kind);
/* Bytes typed on the serial console (FERRY_SERIAL_EVENT). Never blocks. */
void     ferry_vm_serial_input(FerryVm *vm, const guint8 *data, gsize len);

typedef void (*FerryMonitorReply)(FerryVm *vm, const char *reply, gboolean quit, gpointer user_data);
/* Runs one monitor command line ("info status") on the engine thread; reply
 * (text, possibly empty; quit = the command ends the VM) comes on the caller's
 * context. Works in every state. */
void     ferry_vm_monitor_command(FerryVm *vm, const char *line,
                                  FerryMonitorReply reply, gpointer user_data);

FerryVmState      ferry_vm_get_state(FerryVm *vm);
FerryVmStopReason ferry_vm_get_stop_reason(FerryVm *vm);
const FerryVmConfig *ferry_vm_get_config(FerryVm *vm);
/* Path of the serial pty (FERRY_SERIAL_PTY), once started; NULL otherwise. */
const char       *ferry_vm_get_serial_path(FerryVm *vm);

/* ---- Hard disks and snapshot mode -------------------------------------------
 * config.disks[0..3] are hda..hdd. In snapshot mode (config.snapshot) every
 * writable disk is opened under a qcow2 overlay "<drive>-overlay.qcow2" in
 * config.data_dir (a stored VM's folder) or, when data_dir is NULL, in a
 * private temporary folder that ferry_vm_free() removes with its changes.
 * The base images are written only by a commit.
 *
 * An overlay with changes that an earlier run left behind (a crash, or a
 * stored VM freed without commit or discard) never goes into the next run:
 * ferry_vm_start() sets it aside as "<drive>-<date>-<time>-overlay.qcow2"
 * and starts empty; ferry_vm_config_list_leftovers() reports it until it is
 * committed or discarded. A commit cut short by a crash is finished at the
 * next start or listing, so a base never holds part of one. */

typedef struct {
    char *drive;                /* "hda".."hdd" */
    char *path;                 /* the disk image, as configured */
    char *format;               /* "raw" or "qcow2", as opened */
    gboolean readonly;
    guint64 size;               /* virtual size, bytes */
    char *overlay_path;         /* snapshot mode: the overlay the writes go to; else NULL */
    guint64 pending_bytes;      /* snapshot mode: guest bytes a commit would write */
} FerryVmDriveInfo;

void ferry_vm_drive_info_free(FerryVmDriveInfo *info);     /* NULL is fine */

/* drives (FerryVmDriveInfo *, in drive order) is only borrowed: ref it to
 * keep it. On error drives is NULL. */
typedef void (*FerryVmDrivesReply)(FerryVm *vm, GPtrArray *drives, const GError *error,
                                   gpointer user_data);
/* error NULL: done. */
typedef void (*FerryVmDiskReply)(FerryVm *vm, const GError *error, gpointer user_data);

/* Lists the VM's disks. Legal while Running, Paused or Stopped (the disks
 * stay open until ferry_vm_free()); FERRY_ENGINE_ERROR_STATE in Created.
 * The reply comes on the caller's context. Disk jobs (this, commit,
 * discard) run one at a time on a thread of their own, in order. */
void ferry_vm_query_drives(FerryVm *vm, FerryVmDrivesReply reply, gpointer user_data);
/* Snapshot mode: folds the overlay of `drive` ("hda".."hdd", or NULL for
 * every disk in snapshot mode) into its base image and goes on with an empty
 * overlay. The guest's disk requests wait meanwhile; the guest runs on.
 * Legal while Running, Paused or Stopped. Errors: FERRY_ENGINE_ERROR_STATE
 * (Created), _INVALID (no such drive, not in snapshot mode), _HOST (the
 * base cannot be written: the overlay keeps every change). */
void ferry_vm_commit_drive(FerryVm *vm, const char *drive, FerryVmDiskReply reply,
                           gpointer user_data);
/* Snapshot mode: drops the changes in the overlay of `drive` (NULL: all);
 * the base image is untouched. Same states and errors as commit. */
void ferry_vm_discard_drive(FerryVm *vm, const char *drive, FerryVmDiskReply reply,
                            gpointer user_data);

typedef struct {
    char *name;                 /* what commit/discard_leftover take: "hda",
                                 * "hda-20250101-120000" (set aside), or for
                                 * one-off runs "ferry-snapshot-XXXXXX/hda" */
    char *drive;                /* "hda".."hdd" */
    char *overlay_path;
    char *base_path;            /* the image the changes belong to */
    guint64 pending_bytes;
    gboolean commit_was_interrupted;  /* a crash cut a commit short; it has just
                                       * been finished: the base holds it */
} FerryVmLeftover;

void ferry_vm_leftover_free(FerryVmLeftover *leftover);    /* NULL is fine */

/* Overlays with changes from earlier runs of config (config.data_dir; with
 * data_dir NULL, the private folders of one-off runs that did not end
 * cleanly). Overlays in use by a running VM are not listed. Any time, any
 * thread, no VM needed; blocks on file work (an interrupted commit is
 * finished here): call it from a worker thread in a UI. Caller owns the array
 * (FerryVmLeftover *, free with g_ptr_array_unref). */
GPtrArray *ferry_vm_config_list_leftovers(const FerryVmConfig *config, GError **error);
/* Writes a leftover's changes into its base image (which must not be in use)
 * and removes the overlay. name: from the list, or NULL for all. Blocks. */
gboolean   ferry_vm_config_commit_leftover(const FerryVmConfig *config, const char *name,
                                           GError **error);
/* Removes a leftover overlay (NULL: all); its base image is untouched. Blocks. */
gboolean   ferry_vm_config_discard_leftover(const FerryVmConfig *config, const char *name,
                                            GError **error);

/* Stops the VM if needed (hard), joins the engine's threads, frees. NULL is fine. */
void     ferry_vm_free(FerryVm *vm);

const char *ferry_vm_state_to_string(FerryVmState state);   /* "running", "paused", ... */

G_END_DECLS

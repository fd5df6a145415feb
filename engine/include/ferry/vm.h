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

/* Stops the VM if needed (hard), joins the engine's threads, frees. NULL is fine. */
void     ferry_vm_free(FerryVm *vm);

const char *ferry_vm_state_to_string(FerryVmState state);   /* "running", "paused", ... */

G_END_DECLS

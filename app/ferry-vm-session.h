/* ferry-vm-session.h: one running (or startable) VM as the UI sees it: a
 * GObject around the engine's FerryVm, with properties and signals on the
 * UI thread. The engine runs the VM on its own threads; nothing here blocks. */
#pragma once

#include <gtk/gtk.h>
#include <ferry/vm.h>

G_BEGIN_DECLS

#define FERRY_TYPE_VM_SESSION (ferry_vm_session_get_type())
G_DECLARE_FINAL_TYPE(FerryVmSession, ferry_vm_session, FERRY, VM_SESSION, GObject)

/* config is copied. name is what the windows show. */
FerryVmSession *ferry_vm_session_new(const char *name, const FerryVmConfig *config);

/* A new name and hardware for the next start (not while running). */
void          ferry_vm_session_set_config(FerryVmSession *self, const char *name, const FerryVmConfig *config);
const char   *ferry_vm_session_get_name(FerryVmSession *self);
const FerryVmConfig *ferry_vm_session_get_config(FerryVmSession *self);
FerryVmState  ferry_vm_session_get_state(FerryVmSession *self);
/* "Running", "Paused", "Off" ... for people. */
const char   *ferry_vm_session_get_state_label(FerryVmSession *self);
/* The last engine error (a person can act on it), or NULL. */
const char   *ferry_vm_session_get_error(FerryVmSession *self);

/* Starts a new run (the engine's VM is made anew each time). FALSE with
 * error when nothing could start (no /dev/kvm, a missing kernel). */
gboolean ferry_vm_session_start(FerryVmSession *self, GError **error);
void     ferry_vm_session_pause(FerryVmSession *self);
void     ferry_vm_session_resume(FerryVmSession *self);
void     ferry_vm_session_power_button(FerryVmSession *self);
void     ferry_vm_session_reset(FerryVmSession *self);
void     ferry_vm_session_force_off(FerryVmSession *self);
/* Frees a stopped run's engine VM, so its disk overlays are closed (their
 * changes then count as left by an earlier run). Nothing while it runs. */
void     ferry_vm_session_release(FerryVmSession *self);
void     ferry_vm_session_send_serial(FerryVmSession *self, const guint8 *data, gsize len);

typedef void (*FerryVmSessionReply)(FerryVmSession *self, const char *reply, gpointer user_data);
/* A monitor command; reply on the UI thread (an explanation when not running). */
void     ferry_vm_session_monitor(FerryVmSession *self, const char *line,
                                  FerryVmSessionReply reply, gpointer user_data);

/* ---- snapshot mode ----
 * Pending changes are the guest's writes kept in the overlays: of this run
 * while the VM exists, else those earlier runs left (a crash, a run that
 * ended without commit or discard). */
gboolean ferry_vm_session_get_snapshot_mode(FerryVmSession *self);
/* Bytes a commit would write, as last refreshed (notify::pending). */
guint64  ferry_vm_session_get_pending(FerryVmSession *self);
/* Looks again (disk work on a worker thread); notify::pending when it changed. */
void     ferry_vm_session_refresh_pending(FerryVmSession *self);
typedef void (*FerryVmSessionDone)(FerryVmSession *self, const GError *error, gpointer user_data);
/* Commit folds the changes into the base images; discard drops them. The
 * callback runs on the UI thread; pending is refreshed after. */
void     ferry_vm_session_commit(FerryVmSession *self, FerryVmSessionDone done, gpointer user_data);
void     ferry_vm_session_discard(FerryVmSession *self, FerryVmSessionDone done, gpointer user_data);

/* Signals: "serial-output" (GBytes *), "failed" (const char *message),
 * "guest-reset"; notify::state when the run state changes. */

G_END_DECLS

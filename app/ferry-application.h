/* ferry-application.h: the Ferry desktop app: one library window, the VM
 * library (SQLite store) it shows, and one FerryVmSession per VM run from
 * this process. */
#pragma once

#include <gtk/gtk.h>
#include "store.h"
#include "ferry-vm-session.h"

G_BEGIN_DECLS

#define FERRY_APPLICATION_ID "org.ferryvm.Ferry"
#define FERRY_TYPE_APPLICATION (ferry_application_get_type())
G_DECLARE_FINAL_TYPE(FerryApplication, ferry_application, FERRY, APPLICATION, GtkApplication)

FerryApplication *ferry_application_new(void);
/* The open library, or NULL (the window says why). */
FerryStore       *ferry_application_get_store(FerryApplication *self);
const char       *ferry_application_get_store_error(FerryApplication *self);
/* The session for a stored VM (made on first use), or NULL if it exists no more. */
FerryVmSession   *ferry_application_get_session(FerryApplication *self, const char *uuid);
/* Existing session or NULL; does not create. */
FerryVmSession   *ferry_application_lookup_session(FerryApplication *self, const char *uuid);
/* Starts the stored VM (record -> config, run lock, engine) and opens its
 * console; FALSE with an error a person can act on. */
gboolean          ferry_application_start_vm(FerryApplication *self, const char *uuid, GError **error);
void              ferry_application_show_console(FerryApplication *self, const char *uuid);
/* How many VMs run (or are paused) in this process. */
guint             ferry_application_count_running(FerryApplication *self);
/* GSettings, or NULL when the schema is not installed (defaults apply). */
GSettings        *ferry_application_get_settings(FerryApplication *self);

G_END_DECLS

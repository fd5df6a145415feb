/* ferry-dialogs.h: the confirmations every window asks the same way (GNOME
 * HIG: the question as the title, what happens below, the action named on
 * its button, Cancel the default). */
#pragma once

#include <gtk/gtk.h>
#include "ferry-vm-session.h"

G_BEGIN_DECLS

/* "Force “NAME” Off?": on yes, the session is forced off. */
void ferry_ask_force_off(GtkWindow *parent, FerryVmSession *session);
/* "Commit/Discard Changes to the Disks?": on yes, the session commits or
 * discards and done runs with the result; on Cancel done runs with
 * FERRY_ENGINE_ERROR_CANCELLED (nothing to show). done runs exactly once. */
void ferry_ask_disk_changes(GtkWindow *parent, FerryVmSession *session, gboolean commit,
                            FerryVmSessionDone done, gpointer user_data);

G_END_DECLS

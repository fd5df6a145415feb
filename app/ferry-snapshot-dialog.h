/* ferry-snapshot-dialog.h: a VM's snapshot mode: on or off, the changes it
 * holds apart from the disk images, and Commit / Discard for them. */
#pragma once

#include <gtk/gtk.h>
#include "ferry-application.h"

G_BEGIN_DECLS

#define FERRY_TYPE_SNAPSHOT_DIALOG (ferry_snapshot_dialog_get_type())
G_DECLARE_FINAL_TYPE(FerrySnapshotDialog, ferry_snapshot_dialog, FERRY, SNAPSHOT_DIALOG, GtkDialog)

GtkWidget *ferry_snapshot_dialog_new(GtkWindow *parent, FerryApplication *app, const char *uuid);

G_END_DECLS

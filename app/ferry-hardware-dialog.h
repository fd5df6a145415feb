/* ferry-hardware-dialog.h: a VM's settings dialog. */
#pragma once

#include <gtk/gtk.h>
#include "ferry-application.h"
#include "ferry-library-window.h"

G_BEGIN_DECLS

#define FERRY_TYPE_HARDWARE_DIALOG (ferry_hardware_dialog_get_type())
G_DECLARE_FINAL_TYPE(FerryHardwareDialog, ferry_hardware_dialog, FERRY, HARDWARE_DIALOG, GtkDialog)

GtkWidget *ferry_hardware_dialog_new(FerryLibraryWindow *window, FerryApplication *app, const char *uuid);
void       ferry_hardware_dialog_focus_snapshot_mode(FerryHardwareDialog *self);

G_END_DECLS

/* ferry-library-window.h: the main window: the VM library. */
#pragma once

#include <gtk/gtk.h>
#include "ferry-application.h"

G_BEGIN_DECLS

#define FERRY_TYPE_LIBRARY_WINDOW (ferry_library_window_get_type())
G_DECLARE_FINAL_TYPE(FerryLibraryWindow, ferry_library_window, FERRY, LIBRARY_WINDOW, GtkApplicationWindow)

FerryLibraryWindow *ferry_library_window_new(FerryApplication *app);
/* Reads the library again (after this process saved). */
void ferry_library_window_reload(FerryLibraryWindow *self);
/* An in-window error banner (GtkInfoBar) with the message. */
void ferry_library_window_show_error(FerryLibraryWindow *self, const char *message);
/* A file from the file manager or the command line: onto_uuid NULL opens
 * the New VM assistant filled in; else it is attached to that VM (asks how). */
void ferry_library_window_open_file(FerryLibraryWindow *self, GFile *file, const char *onto_uuid);
/* Opens the New VM assistant, with a file to start from (or NULL). */
void ferry_library_window_new_vm(FerryLibraryWindow *self, const char *path);
/* The uuid of the VM a row of the list shows. */
const char *ferry_library_window_row_uuid(GtkListBoxRow *row);
/* Quits, asking first while VMs run. */
void ferry_library_window_request_quit(FerryLibraryWindow *self);

G_END_DECLS

/* ferry-console-window.h: a VM's console: its serial port in a terminal, the
 * monitor in another, the run controls in the header bar and the engine's
 * errors in an info bar. (The graphical screen becomes its first page.) */
#pragma once

#include <gtk/gtk.h>
#include "ferry-vm-session.h"

G_BEGIN_DECLS

#define FERRY_TYPE_CONSOLE_WINDOW (ferry_console_window_get_type())
G_DECLARE_FINAL_TYPE(FerryConsoleWindow, ferry_console_window, FERRY, CONSOLE_WINDOW, GtkApplicationWindow)

FerryConsoleWindow *ferry_console_window_new(GtkApplication *app, FerryVmSession *session);
FerryVmSession     *ferry_console_window_get_session(FerryConsoleWindow *self);
/* The terminals, for tests. */
GtkWidget          *ferry_console_window_get_serial_terminal(FerryConsoleWindow *self);
GtkWidget          *ferry_console_window_get_monitor_terminal(FerryConsoleWindow *self);
void                ferry_console_window_show_error(FerryConsoleWindow *self, const char *message);

G_END_DECLS

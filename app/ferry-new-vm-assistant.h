/* ferry-new-vm-assistant.h: the New Virtual Machine assistant. Emits
 * "created" (uuid) once the VM is in the library. */
#pragma once

#include <gtk/gtk.h>
#include "store.h"

G_BEGIN_DECLS

#define FERRY_TYPE_NEW_VM_ASSISTANT (ferry_new_vm_assistant_get_type())
G_DECLARE_FINAL_TYPE(FerryNewVmAssistant, ferry_new_vm_assistant, FERRY, NEW_VM_ASSISTANT, GtkAssistant)

/* path: a file to start from (ISO, disk image or kernel), or NULL. */
FerryNewVmAssistant *ferry_new_vm_assistant_new(GtkWindow *parent, FerryStore *store, const char *path);
/* Chooses "Boot a Linux kernel" with these files (the file chooser buttons
 * get them; used when a kernel is dropped, and by the UI tests). */
void ferry_new_vm_assistant_set_kernel(FerryNewVmAssistant *self, const char *kernel, const char *initrd,
                                       const char *cmdline);

G_END_DECLS

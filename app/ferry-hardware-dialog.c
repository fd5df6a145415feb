/* ferry-hardware-dialog.c: a VM's settings: memory, vCPUs, boot kernel,
 * drives (up to 4 hard disks, 2 floppies and a CD-ROM), snapshot mode,
 * sound and USB. Hardware changes need the VM off; the dialog says so and
 * locks those fields while it runs. Saving checks the record's revision, so
 * a change `ferryctl edit` made meanwhile is never silently undone. */
#include "ferry-hardware-dialog.h"
#include "ferry-vm-record.h"

#include <glib/gi18n.h>
#include <unistd.h>

struct _FerryHardwareDialog {
    GtkDialog parent_instance;

    GtkLabel *state_label, *error_label;
    GtkWidget *hardware_grid;
    GtkSpinButton *memory_spin, *vcpus_spin;
    GtkFileChooser *kernel_chooser, *initrd_chooser;
    GtkEntry *cmdline_entry;
    GtkListBox *drive_list;
    GtkWidget *add_disk_button, *add_cdrom_button, *add_floppy_button;
    GtkSwitch *snapshot_switch, *sound_switch, *usb_switch;
    GtkAdjustment *memory_adjustment, *vcpus_adjustment;

    FerryLibraryWindow *window;
    FerryApplication *app;
    FerryVmRecord *vm;             /* as read, with the drive edits applied */
    FerryVmRecord *stored;         /* as read */
};

G_DEFINE_FINAL_TYPE(FerryHardwareDialog, ferry_hardware_dialog, GTK_TYPE_DIALOG)

static void fill_drives(FerryHardwareDialog *self);

static void
on_remove_drive(GtkButton *button, FerryHardwareDialog *self)
{
    FerryDriveRecord *d = g_object_get_data(G_OBJECT(button), "ferry-drive");
    ferry_vm_record_set_drive(self->vm, d->kind, d->slot, NULL, NULL, FALSE);
    fill_drives(self);
}

static void
on_readonly_toggled(GtkToggleButton *toggle, FerryHardwareDialog *self)
{
    FerryDriveRecord *d = g_object_get_data(G_OBJECT(toggle), "ferry-drive");
    d->readonly = gtk_toggle_button_get_active(toggle);
}

static const char *
drive_label(const FerryDriveRecord *d)
{
    static char buf[64];
    switch (d->kind) {
    case FERRY_DRIVE_DISK:
        /* Translators: hard disk slots hda..hdd */
        g_snprintf(buf, sizeof(buf), _("Hard disk %c"), 'A' + d->slot);
        return buf;
    case FERRY_DRIVE_FLOPPY:
        g_snprintf(buf, sizeof(buf), _("Floppy %c"), 'A' + d->slot);
        return buf;
    case FERRY_DRIVE_CDROM:
        return _("CD-ROM");
    }
    return "";
}

static void
fill_drives(FerryHardwareDialog *self)
{
    GList *old = gtk_container_get_children(GTK_CONTAINER(self->drive_list));
    for (GList *l = old; l; l = l->next)
        gtk_widget_destroy(l->data);
    g_list_free(old);

    for (guint i = 0; i < self->vm->drives->len; i++) {
        FerryDriveRecord *d = self->vm->drives->pdata[i];
        GtkWidget *box = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 8);
        GtkWidget *kind = gtk_label_new(drive_label(d));
        g_autofree char *base = g_path_get_basename(d->path);
        GtkWidget *path = gtk_label_new(base);
        GtkWidget *ro = gtk_check_button_new_with_label(_("Read-only"));
        GtkWidget *remove = gtk_button_new_from_icon_name("list-remove-symbolic", GTK_ICON_SIZE_BUTTON);

        gtk_widget_set_margin_start(box, 8);
        gtk_widget_set_margin_end(box, 8);
        gtk_widget_set_margin_top(box, 4);
        gtk_widget_set_margin_bottom(box, 4);
        gtk_widget_set_tooltip_text(path, d->path);
        gtk_label_set_ellipsize(GTK_LABEL(path), PANGO_ELLIPSIZE_MIDDLE);
        gtk_label_set_xalign(GTK_LABEL(path), 0);
        gtk_style_context_add_class(gtk_widget_get_style_context(kind), "dim-label");
        gtk_toggle_button_set_active(GTK_TOGGLE_BUTTON(ro), d->readonly);
        gtk_widget_set_sensitive(ro, d->kind != FERRY_DRIVE_CDROM);
        gtk_widget_set_tooltip_text(remove, _("Remove"));
        g_object_set_data(G_OBJECT(ro), "ferry-drive", d);
        g_object_set_data(G_OBJECT(remove), "ferry-drive", d);
        g_signal_connect(ro, "toggled", G_CALLBACK(on_readonly_toggled), self);
        g_signal_connect(remove, "clicked", G_CALLBACK(on_remove_drive), self);
        gtk_box_pack_start(GTK_BOX(box), kind, FALSE, FALSE, 0);
        gtk_box_pack_start(GTK_BOX(box), path, TRUE, TRUE, 0);
        gtk_box_pack_start(GTK_BOX(box), ro, FALSE, FALSE, 0);
        gtk_box_pack_start(GTK_BOX(box), remove, FALSE, FALSE, 0);
        gtk_widget_show_all(box);
        gtk_container_add(GTK_CONTAINER(self->drive_list), box);
    }
    if (self->vm->drives->len == 0) {
        GtkWidget *none = gtk_label_new(_("No drives"));
        gtk_widget_set_margin_top(none, 8);
        gtk_widget_set_margin_bottom(none, 8);
        gtk_style_context_add_class(gtk_widget_get_style_context(none), "dim-label");
        gtk_widget_show(none);
        gtk_container_add(GTK_CONTAINER(self->drive_list), none);
    }
    gboolean riscv = !g_strcmp0(self->vm->arch, "riscv64");
    gtk_widget_set_sensitive(self->add_disk_button, ferry_vm_record_free_slot(self->vm, FERRY_DRIVE_DISK) >= 0);
    gtk_widget_set_sensitive(self->add_cdrom_button, ferry_vm_record_free_slot(self->vm, FERRY_DRIVE_CDROM) >= 0);
    gtk_widget_set_sensitive(self->add_floppy_button,
                             !riscv && ferry_vm_record_free_slot(self->vm, FERRY_DRIVE_FLOPPY) >= 0);
    gtk_widget_set_tooltip_text(self->add_floppy_button,
                                riscv ? _("RISC-V machines have no floppy controller") : NULL);
}

static void
add_drive(FerryHardwareDialog *self, FerryDriveKind kind, const char *title)
{
    GtkFileChooserNative *chooser = gtk_file_chooser_native_new(title, GTK_WINDOW(self),
                                                                GTK_FILE_CHOOSER_ACTION_OPEN, _("_Add"), _("_Cancel"));
    if (gtk_native_dialog_run(GTK_NATIVE_DIALOG(chooser)) == GTK_RESPONSE_ACCEPT) {
        g_autofree char *path = gtk_file_chooser_get_filename(GTK_FILE_CHOOSER(chooser));
        g_autoptr(GError) error = NULL;
        if (!ferry_vm_record_add_drive(self->vm, kind, path, NULL, kind == FERRY_DRIVE_CDROM, &error))
            gtk_label_set_text(self->error_label, error->message);
        else
            gtk_label_set_text(self->error_label, "");
        fill_drives(self);
    }
    g_object_unref(chooser);
}

static void on_add_disk(FerryHardwareDialog *self) { add_drive(self, FERRY_DRIVE_DISK, _("Add a Hard Disk")); }
static void on_add_cdrom(FerryHardwareDialog *self) { add_drive(self, FERRY_DRIVE_CDROM, _("Add a CD-ROM Image")); }
static void on_add_floppy(FerryHardwareDialog *self) { add_drive(self, FERRY_DRIVE_FLOPPY, _("Add a Floppy Image")); }

static gboolean
save(FerryHardwareDialog *self)
{
    FerryStore *store = ferry_application_get_store(self->app);
    g_autoptr(GError) error = NULL;

    self->vm->memory_bytes = (guint64) gtk_spin_button_get_value_as_int(self->memory_spin) << 20;
    self->vm->vcpus = gtk_spin_button_get_value_as_int(self->vcpus_spin);
    g_free(self->vm->kernel);
    self->vm->kernel = gtk_file_chooser_get_filename(self->kernel_chooser);
    g_free(self->vm->initrd);
    self->vm->initrd = gtk_file_chooser_get_filename(self->initrd_chooser);
    g_free(self->vm->cmdline);
    self->vm->cmdline = *gtk_entry_get_text(self->cmdline_entry) ? g_strdup(gtk_entry_get_text(self->cmdline_entry)) : NULL;
    self->vm->snapshot_mode = gtk_switch_get_active(self->snapshot_switch);
    self->vm->sound = gtk_switch_get_active(self->sound_switch);
    self->vm->usb = gtk_switch_get_active(self->usb_switch);

    if (!ferry_vm_record_check(self->vm, self->stored, &error) ||
        !ferry_store_save_vm(store, self->vm, &error)) {
        if (g_error_matches(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_CONFLICT)) {
            g_autofree char *msg = g_strdup_printf(
                _("Another program changed “%s” while you were editing it. Cancel and open the "
                  "settings again to see its changes."), self->vm->name);
            gtk_label_set_text(self->error_label, msg);
        } else {
            gtk_label_set_text(self->error_label, error->message);
        }
        return FALSE;
    }
    ferry_library_window_reload(self->window);
    return TRUE;
}

static void
on_response(GtkDialog *dialog, int response, gpointer user_data)
{
    FerryHardwareDialog *self = FERRY_HARDWARE_DIALOG(dialog);
    if (response == GTK_RESPONSE_OK && !save(self))
        return;
    gtk_widget_destroy(GTK_WIDGET(dialog));
}

void
ferry_hardware_dialog_focus_snapshot_mode(FerryHardwareDialog *self)
{
    gtk_widget_grab_focus(GTK_WIDGET(self->snapshot_switch));
}

static void
ferry_hardware_dialog_finalize(GObject *object)
{
    FerryHardwareDialog *self = FERRY_HARDWARE_DIALOG(object);
    ferry_vm_record_free(self->vm);
    ferry_vm_record_free(self->stored);
    G_OBJECT_CLASS(ferry_hardware_dialog_parent_class)->finalize(object);
}

static void
ferry_hardware_dialog_class_init(FerryHardwareDialogClass *klass)
{
    GtkWidgetClass *widget_class = GTK_WIDGET_CLASS(klass);
    G_OBJECT_CLASS(klass)->finalize = ferry_hardware_dialog_finalize;
    gtk_widget_class_set_template_from_resource(widget_class, "/org/ferryvm/Ferry/ui/ferry-hardware-dialog.ui");
#define BIND(x) gtk_widget_class_bind_template_child(widget_class, FerryHardwareDialog, x)
    BIND(state_label); BIND(error_label); BIND(hardware_grid);
    BIND(memory_spin); BIND(vcpus_spin); BIND(kernel_chooser); BIND(initrd_chooser); BIND(cmdline_entry);
    BIND(drive_list); BIND(add_disk_button); BIND(add_cdrom_button); BIND(add_floppy_button);
    BIND(snapshot_switch); BIND(sound_switch); BIND(usb_switch);
    BIND(memory_adjustment); BIND(vcpus_adjustment);
#undef BIND
    gtk_widget_class_bind_template_callback(widget_class, on_response);
    gtk_widget_class_bind_template_callback(widget_class, on_add_disk);
    gtk_widget_class_bind_template_callback(widget_class, on_add_cdrom);
    gtk_widget_class_bind_template_callback(widget_class, on_add_floppy);
}

static void
ferry_hardware_dialog_init(FerryHardwareDialog *self)
{
    gtk_widget_init_template(GTK_WIDGET(self));
    guint64 host_mib = (guint64) sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGE_SIZE) >> 20;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    gtk_adjustment_set_upper(self->memory_adjustment, host_mib);
    gtk_adjustment_set_upper(self->vcpus_adjustment, MIN(MAX(cpus, 1) * 4, 1024));
}

GtkWidget *
ferry_hardware_dialog_new(FerryLibraryWindow *window, FerryApplication *app, const char *uuid)
{
    FerryHardwareDialog *self = g_object_new(FERRY_TYPE_HARDWARE_DIALOG, "transient-for", window, NULL);
    FerryStore *store = ferry_application_get_store(app);
    g_autoptr(GError) error = NULL;

    self->window = window;
    self->app = app;
    self->stored = store ? ferry_store_get_vm_by_uuid(store, uuid, &error) : NULL;
    if (!self->stored) {
        self->vm = ferry_vm_record_new("");
        gtk_label_set_text(self->error_label, error ? error->message : ferry_application_get_store_error(app));
        gtk_widget_set_sensitive(self->hardware_grid, FALSE);
        return GTK_WIDGET(self);
    }
    self->vm = ferry_vm_record_copy(self->stored);
    g_autofree char *title = g_strdup_printf(_("%s Settings"), self->vm->name);
    gtk_window_set_title(GTK_WINDOW(self), title);
    gtk_spin_button_set_value(self->memory_spin, self->vm->memory_bytes >> 20);
    gtk_spin_button_set_value(self->vcpus_spin, self->vm->vcpus);
    if (self->vm->kernel)
        gtk_file_chooser_set_filename(self->kernel_chooser, self->vm->kernel);
    if (self->vm->initrd)
        gtk_file_chooser_set_filename(self->initrd_chooser, self->vm->initrd);
    gtk_entry_set_text(self->cmdline_entry, self->vm->cmdline ? self->vm->cmdline : "");
    gtk_switch_set_active(self->snapshot_switch, self->vm->snapshot_mode);
    gtk_switch_set_active(self->sound_switch, self->vm->sound);
    gtk_switch_set_active(self->usb_switch, self->vm->usb);
    fill_drives(self);

    FerryVmSession *session = ferry_application_lookup_session(app, uuid);
    FerryVmState s = session ? ferry_vm_session_get_state(session) : FERRY_VM_STATE_STOPPED;
    gboolean running = (s != FERRY_VM_STATE_STOPPED) || ferry_run_lock_query(uuid, NULL, NULL);
    if (running) {
        gtk_label_set_text(self->state_label,
                           _("The virtual machine is running. Turn it off to change its hardware."));
        gtk_widget_set_sensitive(self->hardware_grid, FALSE);
    } else {
        gtk_widget_hide(GTK_WIDGET(self->state_label));
    }
    return GTK_WIDGET(self);
}

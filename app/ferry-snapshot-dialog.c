/* ferry-snapshot-dialog.c: see ferry-snapshot-dialog.h. The switch is saved
 * to the library at once (a running VM keeps the mode it started with, and
 * the dialog says so); Commit and Discard act on the running VM's overlays,
 * or on those an earlier run left. */
#include "ferry-snapshot-dialog.h"
#include "ferry-dialogs.h"
#include "ferry-vm-record.h"

#include <glib/gi18n.h>

struct _FerrySnapshotDialog {
    GtkDialog parent_instance;

    GtkSwitch *mode_switch;
    GtkLabel *pending_label, *error_label;
    GtkWidget *commit_button, *discard_button;

    FerryApplication *app;
    FerryVmSession *session;
    char *uuid;
    gboolean loading;
};

G_DEFINE_FINAL_TYPE(FerrySnapshotDialog, ferry_snapshot_dialog, GTK_TYPE_DIALOG)

static void
update(FerrySnapshotDialog *self)
{
    guint64 pending = ferry_vm_session_get_pending(self->session);
    g_autofree char *size = g_format_size_full(pending, G_FORMAT_SIZE_IEC_UNITS);
    g_autofree char *text = pending
        ? g_strdup_printf(_("%s of changes are kept apart from the disk images."), size)
        : g_strdup(_("No changes are waiting: the disk images hold everything."));
    gtk_label_set_text(self->pending_label, text);
    gtk_widget_set_sensitive(self->commit_button, pending > 0);
    gtk_widget_set_sensitive(self->discard_button, pending > 0);
}

static void
on_pending(FerryVmSession *session, GParamSpec *pspec, FerrySnapshotDialog *self)
{
    update(self);
}

static void
on_mode_toggled(FerrySnapshotDialog *self)
{
    FerryStore *store = ferry_application_get_store(self->app);
    g_autoptr(GError) error = NULL;

    if (self->loading || !store)
        return;
    g_autoptr(FerryVmRecord) vm = ferry_store_get_vm_by_uuid(store, self->uuid, &error);
    if (vm) {
        vm->snapshot_mode = gtk_switch_get_active(self->mode_switch);
        if (ferry_store_save_vm(store, vm, &error)) {
            gtk_label_set_text(self->error_label, "");
            return;
        }
    }
    gtk_label_set_text(self->error_label, error->message);
}

static void
on_job_done(FerryVmSession *session, const GError *error, gpointer user_data)
{
    FerrySnapshotDialog *self = user_data;
    if (!g_error_matches(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_CANCELLED))
        gtk_label_set_text(self->error_label, error ? error->message : "");
    g_object_unref(self);
}

static void
confirm(FerrySnapshotDialog *self, gboolean commit)
{
    ferry_ask_disk_changes(GTK_WINDOW(self), self->session, commit, on_job_done, g_object_ref(self));
}

static void on_commit_clicked(FerrySnapshotDialog *self) { confirm(self, TRUE); }
static void on_discard_clicked(FerrySnapshotDialog *self) { confirm(self, FALSE); }

static void
ferry_snapshot_dialog_dispose(GObject *object)
{
    FerrySnapshotDialog *self = FERRY_SNAPSHOT_DIALOG(object);
    g_clear_object(&self->session);
    G_OBJECT_CLASS(ferry_snapshot_dialog_parent_class)->dispose(object);
}

static void
ferry_snapshot_dialog_finalize(GObject *object)
{
    g_free(FERRY_SNAPSHOT_DIALOG(object)->uuid);
    G_OBJECT_CLASS(ferry_snapshot_dialog_parent_class)->finalize(object);
}

static void
ferry_snapshot_dialog_class_init(FerrySnapshotDialogClass *klass)
{
    GtkWidgetClass *widget_class = GTK_WIDGET_CLASS(klass);
    G_OBJECT_CLASS(klass)->dispose = ferry_snapshot_dialog_dispose;
    G_OBJECT_CLASS(klass)->finalize = ferry_snapshot_dialog_finalize;
    gtk_widget_class_set_template_from_resource(widget_class, "/org/ferryvm/Ferry/ui/ferry-snapshot-dialog.ui");
    gtk_widget_class_bind_template_child(widget_class, FerrySnapshotDialog, mode_switch);
    gtk_widget_class_bind_template_child(widget_class, FerrySnapshotDialog, pending_label);
    gtk_widget_class_bind_template_child(widget_class, FerrySnapshotDialog, error_label);
    gtk_widget_class_bind_template_child(widget_class, FerrySnapshotDialog, commit_button);
    gtk_widget_class_bind_template_child(widget_class, FerrySnapshotDialog, discard_button);
    gtk_widget_class_bind_template_callback(widget_class, on_mode_toggled);
    gtk_widget_class_bind_template_callback(widget_class, on_commit_clicked);
    gtk_widget_class_bind_template_callback(widget_class, on_discard_clicked);
}

static void
ferry_snapshot_dialog_init(FerrySnapshotDialog *self)
{
    gtk_widget_init_template(GTK_WIDGET(self));
}

GtkWidget *
ferry_snapshot_dialog_new(GtkWindow *parent, FerryApplication *app, const char *uuid)
{
    FerrySnapshotDialog *self = g_object_new(FERRY_TYPE_SNAPSHOT_DIALOG, "transient-for", parent, NULL);
    FerryStore *store = ferry_application_get_store(app);
    g_autoptr(GError) error = NULL;

    self->app = app;
    self->uuid = g_strdup(uuid);
    FerryVmSession *session = ferry_application_get_session(app, uuid);
    g_autoptr(FerryVmRecord) vm = store ? ferry_store_get_vm_by_uuid(store, uuid, &error) : NULL;
    if (!session || !vm) {
        gtk_label_set_text(self->error_label, error ? error->message : ferry_application_get_store_error(app));
        gtk_widget_set_sensitive(GTK_WIDGET(self->mode_switch), FALSE);
        gtk_widget_set_sensitive(self->commit_button, FALSE);
        gtk_widget_set_sensitive(self->discard_button, FALSE);
        return GTK_WIDGET(self);
    }
    self->session = g_object_ref(session);
    g_autofree char *title = g_strdup_printf(_("%s Snapshots"), vm->name);
    gtk_window_set_title(GTK_WINDOW(self), title);
    self->loading = TRUE;
    gtk_switch_set_active(self->mode_switch, vm->snapshot_mode);
    self->loading = FALSE;
    FerryVmState s = ferry_vm_session_get_state(session);
    if (s != FERRY_VM_STATE_STOPPED)
        gtk_widget_set_tooltip_text(GTK_WIDGET(self->mode_switch),
                                    _("The running virtual machine keeps the mode it started with"));
    g_signal_connect_object(session, "notify::pending", G_CALLBACK(on_pending), self, 0);
    update(self);
    ferry_vm_session_refresh_pending(session);
    return GTK_WIDGET(self);
}

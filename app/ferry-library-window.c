/* ferry-library-window.c: the VM library: every VM of the SQLite library with
 * its state, the run controls, search, drag and drop of images, and a live
 * view of changes other programs (ferryctl) make to the library. */
#include "ferry-library-window.h"
#include "ferry-console-window.h"
#include "ferry-hardware-dialog.h"
#include "ferry-new-vm-assistant.h"
#include "ferry-snapshot-dialog.h"
#include "ferry-vm-record.h"
#include "ferry-file-kind.h"
#include "ferry-dialogs.h"

#include <glib/gi18n.h>
#include <string.h>
#include <glib/gstdio.h>

struct _FerryLibraryWindow {
    GtkApplicationWindow parent_instance;

    GtkHeaderBar *header_bar;
    GtkWidget *start_button;
    GtkWidget *pause_button;
    GtkImage *pause_image;
    GtkInfoBar *info_bar;
    GtkLabel *info_label;
    GtkSearchBar *search_bar;
    GtkSearchEntry *search_entry;
    GtkStack *stack;
    GtkListBox *list_box;

    FerryApplication *app;
    GFileMonitor *db_monitor, *wal_monitor, *lock_monitor;
    guint states_source;
    guint reload_source;
    gint64 data_version;
    char *selected_uuid;
    gboolean quitting;
};

G_DEFINE_FINAL_TYPE(FerryLibraryWindow, ferry_library_window, GTK_TYPE_APPLICATION_WINDOW)

/* ---- rows ---------------------------------------------------------------- */

typedef struct {
    char *uuid;
    char *name;
    GtkLabel *state;
} RowData;

static void
row_data_free(gpointer data)
{
    RowData *d = data;
    g_free(d->uuid);
    g_free(d->name);
    g_free(d);
}

static RowData *
row_data(GtkListBoxRow *row)
{
    return row ? g_object_get_data(G_OBJECT(row), "ferry-row") : NULL;
}

const char *
ferry_library_window_row_uuid(GtkListBoxRow *row)
{
    RowData *d = row_data(row);
    return d ? d->uuid : NULL;
}

static const char *
arch_label(const char *arch)
{
    if (!g_strcmp0(arch, "riscv64"))
        return _("RISC-V 64 (software CPU)");
    return _("x86-64 (KVM)");
}

static char *
state_text(FerryLibraryWindow *self, const char *uuid, const char **css)
{
    FerryVmSession *session = ferry_application_lookup_session(self->app, uuid);
    GPid pid = 0;
    g_autofree char *program = NULL;

    *css = NULL;
    if (session && ferry_vm_session_get_pending(session) &&
        ferry_vm_session_get_state(session) == FERRY_VM_STATE_STOPPED) {
        g_autofree char *size = g_format_size_full(ferry_vm_session_get_pending(session), G_FORMAT_SIZE_IEC_UNITS);
        *css = "pending";
        /* Translators: a VM that is off but has uncommitted snapshot-mode changes */
        return g_strdup_printf(_("Off · %s of temporary changes"), size);
    }
    if (session) {
        FerryVmState s = ferry_vm_session_get_state(session);
        if (s == FERRY_VM_STATE_RUNNING || s == FERRY_VM_STATE_CREATED) {
            *css = "running";
            return g_strdup(_("Running"));
        }
        if (s == FERRY_VM_STATE_PAUSED)
            return g_strdup(_("Paused"));
        if (ferry_vm_session_get_error(session))
            return g_strdup(_("Stopped by an error"));
    }
    if (ferry_run_lock_query(uuid, &pid, &program)) {
        *css = "running";
        /* Translators: "Running in ferryctl (pid 1234)" */
        return g_strdup_printf(_("Running in %s (pid %d)"), program ? program : _("another program"), (int) pid);
    }
    return g_strdup(_("Off"));
}

static void
update_row_state(FerryLibraryWindow *self, GtkListBoxRow *row)
{
    RowData *d = row_data(row);
    const char *css;
    g_autofree char *text = state_text(self, d->uuid, &css);
    GtkStyleContext *ctx = gtk_widget_get_style_context(GTK_WIDGET(d->state));

    gtk_label_set_text(d->state, text);
    gtk_style_context_remove_class(ctx, "running");
    gtk_style_context_remove_class(ctx, "pending");
    if (css)
        gtk_style_context_add_class(ctx, css);
}

static GtkWidget *
make_row(FerryLibraryWindow *self, const FerryVmRecord *vm)
{
    GtkWidget *row = gtk_list_box_row_new();
    GtkWidget *box = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 12);
    GtkWidget *icon = gtk_image_new_from_icon_name(!g_strcmp0(vm->arch, "riscv64") ? "application-x-executable-symbolic"
                                                                                   : "computer-symbolic",
                                                   GTK_ICON_SIZE_DND);
    GtkWidget *text = gtk_box_new(GTK_ORIENTATION_VERTICAL, 2);
    GtkWidget *name = gtk_label_new(vm->name);
    g_autofree char *mem = g_format_size_full(vm->memory_bytes, G_FORMAT_SIZE_IEC_UNITS);
    g_autofree char *details = g_strdup_printf(ngettext("%s · %s · %u vCPU", "%s · %s · %u vCPUs", vm->vcpus),
                                               arch_label(vm->arch), mem, vm->vcpus);
    GtkWidget *detail = gtk_label_new(details);
    GtkWidget *state = gtk_label_new(NULL);
    RowData *d = g_new0(RowData, 1);

    gtk_widget_set_margin_start(box, 12);
    gtk_widget_set_margin_end(box, 12);
    gtk_widget_set_margin_top(box, 8);
    gtk_widget_set_margin_bottom(box, 8);
    gtk_image_set_pixel_size(GTK_IMAGE(icon), 32);
    gtk_label_set_xalign(GTK_LABEL(name), 0);
    gtk_label_set_xalign(GTK_LABEL(detail), 0);
    gtk_label_set_ellipsize(GTK_LABEL(name), PANGO_ELLIPSIZE_END);
    gtk_style_context_add_class(gtk_widget_get_style_context(name), "ferry-vm-name");
    gtk_style_context_add_class(gtk_widget_get_style_context(detail), "ferry-vm-details");
    gtk_style_context_add_class(gtk_widget_get_style_context(state), "ferry-vm-state");
    gtk_box_pack_start(GTK_BOX(text), name, FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(text), detail, FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(box), icon, FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(box), text, TRUE, TRUE, 0);
    gtk_box_pack_end(GTK_BOX(box), state, FALSE, FALSE, 0);
    gtk_container_add(GTK_CONTAINER(row), box);

    d->uuid = g_strdup(vm->uuid);
    d->name = g_strdup(vm->name);
    d->state = GTK_LABEL(state);
    g_object_set_data_full(G_OBJECT(row), "ferry-row", d, row_data_free);
    update_row_state(self, GTK_LIST_BOX_ROW(row));
    gtk_widget_show_all(row);
    return row;
}

static GtkListBoxRow *
selected_row(FerryLibraryWindow *self)
{
    return gtk_list_box_get_selected_row(self->list_box);
}

static const char *
selected_uuid(FerryLibraryWindow *self)
{
    RowData *d = row_data(selected_row(self));
    return d ? d->uuid : NULL;
}

/* ---- state of the actions ------------------------------------------------ */

static void
set_enabled(FerryLibraryWindow *self, const char *name, gboolean enabled)
{
    GAction *a = g_action_map_lookup_action(G_ACTION_MAP(self), name);
    g_simple_action_set_enabled(G_SIMPLE_ACTION(a), enabled);
}

static void
update_actions(FerryLibraryWindow *self)
{
    const char *uuid = selected_uuid(self);
    FerryVmSession *session = uuid ? ferry_application_lookup_session(self->app, uuid) : NULL;
    FerryVmState s = session ? ferry_vm_session_get_state(session) : FERRY_VM_STATE_STOPPED;
    gboolean here = s == FERRY_VM_STATE_RUNNING || s == FERRY_VM_STATE_PAUSED;
    gboolean elsewhere = uuid && !here && ferry_run_lock_query(uuid, NULL, NULL);

    set_enabled(self, "start", uuid && !here && !elsewhere);
    set_enabled(self, "pause", here);
    set_enabled(self, "shutdown", s == FERRY_VM_STATE_RUNNING);
    set_enabled(self, "force-off", here);
    set_enabled(self, "reset", here);
    set_enabled(self, "settings", uuid != NULL);
    set_enabled(self, "snapshots", uuid != NULL);
    set_enabled(self, "console", uuid != NULL);
    set_enabled(self, "delete", uuid && !here && !elsewhere);
    gtk_image_set_from_icon_name(self->pause_image,
                                 s == FERRY_VM_STATE_PAUSED ? "media-playback-start-symbolic"
                                                            : "media-playback-pause-symbolic",
                                 GTK_ICON_SIZE_BUTTON);
    gtk_widget_set_tooltip_text(self->pause_button, s == FERRY_VM_STATE_PAUSED ? _("Resume") : _("Pause"));
}

/* ---- errors --------------------------------------------------------------- */

void
ferry_library_window_show_error(FerryLibraryWindow *self, const char *message)
{
    gtk_info_bar_set_message_type(self->info_bar, GTK_MESSAGE_ERROR);
    gtk_label_set_text(self->info_label, message);
    gtk_info_bar_set_revealed(self->info_bar, TRUE);
}

static void
on_info_bar_response(GtkInfoBar *bar, int response, FerryLibraryWindow *self)
{
    gtk_info_bar_set_revealed(bar, FALSE);
}

static void track_session(FerryLibraryWindow *self, FerryVmSession *session);

/* ---- loading the library ---------------------------------------------------- */

static gboolean
filter_row(GtkListBoxRow *row, gpointer user_data)
{
    FerryLibraryWindow *self = user_data;
    const char *needle = gtk_entry_get_text(GTK_ENTRY(self->search_entry));
    RowData *d = row_data(row);
    if (!needle || !*needle)
        return TRUE;
    g_autofree char *a = g_utf8_casefold(d->name, -1);
    g_autofree char *b = g_utf8_casefold(needle, -1);
    return strstr(a, b) != NULL;
}

static void
update_stack(FerryLibraryWindow *self)
{
    GList *rows = gtk_container_get_children(GTK_CONTAINER(self->list_box));
    gboolean any = rows != NULL, visible = FALSE;
    for (GList *l = rows; l; l = l->next)
        visible |= filter_row(l->data, self);
    g_list_free(rows);
    gtk_stack_set_visible_child_name(self->stack, !any ? "empty" : visible ? "list" : "no-results");
}

void
ferry_library_window_reload(FerryLibraryWindow *self)
{
    FerryStore *store = ferry_application_get_store(self->app);
    g_autoptr(GError) error = NULL;
    g_autofree char *keep = g_strdup(selected_uuid(self) ? selected_uuid(self) : self->selected_uuid);

    if (!store) {
        ferry_library_window_show_error(self, ferry_application_get_store_error(self->app));
        update_stack(self);
        update_actions(self);
        return;
    }
    self->data_version = ferry_store_get_data_version(store);
    g_autoptr(GPtrArray) vms = ferry_store_list_vms(store, &error);
    if (!vms) {
        ferry_library_window_show_error(self, error->message);
        return;
    }
    GList *old = gtk_container_get_children(GTK_CONTAINER(self->list_box));
    for (GList *l = old; l; l = l->next)
        gtk_widget_destroy(l->data);
    g_list_free(old);
    for (guint i = 0; i < vms->len; i++) {
        const FerryVmRecord *vm = vms->pdata[i];
        GtkWidget *row = make_row(self, vm);
        gtk_list_box_insert(self->list_box, row, -1);
        if (vm->snapshot_mode) {
            /* Its pending changes show in the row. */
            FerryVmSession *session = ferry_application_get_session(self->app, vm->uuid);
            if (session) {
                track_session(self, session);
                ferry_vm_session_refresh_pending(session);
            }
        }
        if (keep && !g_strcmp0(keep, vm->uuid))
            gtk_list_box_select_row(self->list_box, GTK_LIST_BOX_ROW(row));
    }
    update_stack(self);
    update_actions(self);
}

static void
refresh_states(FerryLibraryWindow *self)
{
    GList *rows = gtk_container_get_children(GTK_CONTAINER(self->list_box));
    for (GList *l = rows; l; l = l->next)
        update_row_state(self, l->data);
    g_list_free(rows);
    update_actions(self);
}

static gboolean
reload_if_changed(gpointer user_data)
{
    FerryLibraryWindow *self = user_data;
    FerryStore *store = ferry_application_get_store(self->app);

    self->reload_source = 0;
    /* PRAGMA data_version changes only when another connection committed:
     * our own saves reload explicitly. */
    if (store && ferry_store_get_data_version(store) != self->data_version)
        ferry_library_window_reload(self);
    else
        refresh_states(self);
    return G_SOURCE_REMOVE;
}

static void
on_db_changed(GFileMonitor *monitor, GFile *file, GFile *other, GFileMonitorEvent event, gpointer user_data)
{
    FerryLibraryWindow *self = user_data;
    /* A commit touches the database and its WAL several times: look once. */
    if (!self->reload_source)
        self->reload_source = g_timeout_add(100, reload_if_changed, self);
}

static gboolean
refresh_states_later(gpointer user_data)
{
    FerryLibraryWindow *self = user_data;
    self->states_source = 0;
    refresh_states(self);
    return G_SOURCE_REMOVE;
}

/* A VM starts or stops in another process: its run lock file appears, or is
 * closed (even by a process that was killed) or removed. */
static void
on_locks_changed(GFileMonitor *monitor, GFile *file, GFile *other, GFileMonitorEvent event, gpointer user_data)
{
    FerryLibraryWindow *self = user_data;
    if (!self->states_source)
        self->states_source = g_timeout_add(100, refresh_states_later, self);
}

static GFileMonitor *
watch(FerryLibraryWindow *self, const char *path)
{
    g_autoptr(GFile) file = g_file_new_for_path(path);
    GFileMonitor *m = g_file_monitor_file(file, G_FILE_MONITOR_NONE, NULL, NULL);
    if (m)
        g_signal_connect_object(m, "changed", G_CALLBACK(on_db_changed), self, 0);
    return m;
}

/* ---- actions ------------------------------------------------------------------- */

static void
on_session_state(FerryVmSession *session, GParamSpec *pspec, FerryLibraryWindow *self)
{
    refresh_states(self);
    if (self->quitting && ferry_application_count_running(self->app) == 0)
        g_application_quit(G_APPLICATION(self->app));
}

static void
on_session_failed(FerryVmSession *session, const char *message, FerryLibraryWindow *self)
{
    g_autofree char *text = g_strdup_printf(_("“%s” stopped: %s"), ferry_vm_session_get_name(session), message);
    ferry_library_window_show_error(self, text);
}

static void
on_session_pending(FerryVmSession *session, GParamSpec *pspec, FerryLibraryWindow *self)
{
    refresh_states(self);
}

static void
track_session(FerryLibraryWindow *self, FerryVmSession *session)
{
    if (g_object_get_data(G_OBJECT(session), "ferry-library-tracked"))
        return;
    g_object_set_data(G_OBJECT(session), "ferry-library-tracked", GINT_TO_POINTER(1));
    g_signal_connect_object(session, "notify::state", G_CALLBACK(on_session_state), self, 0);
    g_signal_connect_object(session, "notify::pending", G_CALLBACK(on_session_pending), self, 0);
    g_signal_connect_object(session, "failed", G_CALLBACK(on_session_failed), self, 0);
}

static void
really_start(FerryLibraryWindow *self, const char *uuid)
{
    g_autoptr(GError) error = NULL;

    gtk_info_bar_set_revealed(self->info_bar, FALSE);
    if (!ferry_application_start_vm(self->app, uuid, &error)) {
        ferry_library_window_show_error(self, error->message);
        refresh_states(self);
        return;
    }
    ferry_application_show_console(self->app, uuid);
    refresh_states(self);
}

/* Changes an earlier run left in snapshot mode (a crash, or a run that ended
 * without commit or discard) are offered before the next start. */
typedef struct {
    FerryLibraryWindow *self;
    char *uuid;
    FerryVmSession *session;
} StartCtx;

static void
start_ctx_free(StartCtx *c)
{
    g_free(c->uuid);
    g_object_unref(c->session);
    g_free(c);
}

enum { LEFTOVER_START = 1, LEFTOVER_COMMIT, LEFTOVER_DISCARD };

static void
on_leftover_done(FerryVmSession *session, const GError *error, gpointer user_data)
{
    StartCtx *c = user_data;
    if (error)
        ferry_library_window_show_error(c->self, error->message);
    else
        really_start(c->self, c->uuid);
    start_ctx_free(c);
}

static void
leftover_response(GtkDialog *dialog, int response, gpointer user_data)
{
    StartCtx *c = user_data;
    gtk_widget_destroy(GTK_WIDGET(dialog));
    switch (response) {
    case LEFTOVER_COMMIT:
        ferry_vm_session_commit(c->session, on_leftover_done, c);
        return;
    case LEFTOVER_DISCARD:
        ferry_vm_session_discard(c->session, on_leftover_done, c);
        return;
    case LEFTOVER_START:
        really_start(c->self, c->uuid);     /* the changes stay aside, still listed */
        break;
    }
    start_ctx_free(c);
}

static void
leftovers_thread(GTask *task, gpointer source, gpointer data, GCancellable *cancellable)
{
    GError *error = NULL;
    GPtrArray *list = ferry_vm_config_list_leftovers(data, &error);
    guint64 total = 0;
    for (guint i = 0; list && i < list->len; i++)
        total += ((FerryVmLeftover *) list->pdata[i])->pending_bytes;
    if (list)
        g_ptr_array_unref(list);
    if (error)
        g_task_return_error(task, error);
    else
        g_task_return_pointer(task, g_memdup2(&total, sizeof(total)), g_free);
}

static void
on_leftovers_listed(GObject *source, GAsyncResult *result, gpointer user_data)
{
    StartCtx *c = user_data;
    g_autoptr(GError) error = NULL;
    g_autofree guint64 *total = g_task_propagate_pointer(G_TASK(result), &error);

    if (!total || *total == 0) {
        really_start(c->self, c->uuid);
        start_ctx_free(c);
        return;
    }
    g_autofree char *size = g_format_size_full(*total, G_FORMAT_SIZE_IEC_UNITS);
    GtkWidget *dialog = gtk_message_dialog_new(GTK_WINDOW(c->self), GTK_DIALOG_MODAL | GTK_DIALOG_DESTROY_WITH_PARENT,
                                               GTK_MESSAGE_QUESTION, GTK_BUTTONS_NONE,
                                               _("“%s” Has Changes From an Earlier Run"),
                                               ferry_vm_session_get_name(c->session));
    gtk_message_dialog_format_secondary_text(GTK_MESSAGE_DIALOG(dialog),
        _("In snapshot mode, %s of changes to its disks were kept apart and never committed. "
          "Commit them into the disk images, discard them, or start without them and decide later."), size);
    gtk_dialog_add_button(GTK_DIALOG(dialog), _("_Cancel"), GTK_RESPONSE_CANCEL);
    gtk_dialog_add_button(GTK_DIALOG(dialog), _("Start _Without Them"), LEFTOVER_START);
    GtkWidget *discard = gtk_dialog_add_button(GTK_DIALOG(dialog), _("_Discard"), LEFTOVER_DISCARD);
    gtk_style_context_add_class(gtk_widget_get_style_context(discard), GTK_STYLE_CLASS_DESTRUCTIVE_ACTION);
    GtkWidget *commit = gtk_dialog_add_button(GTK_DIALOG(dialog), _("_Commit"), LEFTOVER_COMMIT);
    gtk_style_context_add_class(gtk_widget_get_style_context(commit), GTK_STYLE_CLASS_SUGGESTED_ACTION);
    gtk_dialog_set_default_response(GTK_DIALOG(dialog), GTK_RESPONSE_CANCEL);
    g_signal_connect(dialog, "response", G_CALLBACK(leftover_response), c);
    gtk_widget_show(dialog);
}

static void
start_activated(GSimpleAction *action, GVariant *param, gpointer user_data)
{
    FerryLibraryWindow *self = user_data;
    const char *uuid = selected_uuid(self);
    FerryStore *store = ferry_application_get_store(self->app);

    if (!uuid)
        return;
    FerryVmSession *session = ferry_application_get_session(self->app, uuid);
    if (!session) {
        really_start(self, uuid);           /* reports why */
        return;
    }
    track_session(self, session);
    /* The last run's disks close, so its changes count as left over. */
    ferry_vm_session_release(session);
    g_autoptr(FerryVmRecord) vm = store ? ferry_store_get_vm_by_uuid(store, uuid, NULL) : NULL;
    FerryVmConfig config;
    if (!vm || !ferry_vm_record_to_config(vm, &config, NULL)) {
        really_start(self, uuid);
        return;
    }
    StartCtx *c = g_new0(StartCtx, 1);
    c->self = self;
    c->uuid = g_strdup(uuid);
    c->session = g_object_ref(session);
    GTask *task = g_task_new(NULL, NULL, on_leftovers_listed, c);
    g_task_set_task_data(task, ferry_vm_config_copy(&config), (GDestroyNotify) ferry_vm_config_free);
    ferry_vm_config_clear(&config);
    g_task_run_in_thread(task, leftovers_thread);
    g_object_unref(task);
}

static FerryVmSession *
selected_session(FerryLibraryWindow *self)
{
    const char *uuid = selected_uuid(self);
    return uuid ? ferry_application_lookup_session(self->app, uuid) : NULL;
}

static void
pause_activated(GSimpleAction *action, GVariant *param, gpointer user_data)
{
    FerryVmSession *session = selected_session(user_data);
    if (!session)
        return;
    if (ferry_vm_session_get_state(session) == FERRY_VM_STATE_PAUSED)
        ferry_vm_session_resume(session);
    else
        ferry_vm_session_pause(session);
}

static void
shutdown_activated(GSimpleAction *action, GVariant *param, gpointer user_data)
{
    FerryVmSession *session = selected_session(user_data);
    if (session)
        ferry_vm_session_power_button(session);
}

static void
force_off_activated(GSimpleAction *action, GVariant *param, gpointer user_data)
{
    FerryVmSession *session = selected_session(user_data);
    if (session)
        ferry_ask_force_off(GTK_WINDOW(user_data), session);
}

static void
reset_activated(GSimpleAction *action, GVariant *param, gpointer user_data)
{
    FerryVmSession *session = selected_session(user_data);
    if (session)
        ferry_vm_session_reset(session);
}

static void
console_activated(GSimpleAction *action, GVariant *param, gpointer user_data)
{
    FerryLibraryWindow *self = user_data;
    const char *uuid = selected_uuid(self);
    if (!uuid)
        return;
    FerryVmSession *session = ferry_application_get_session(self->app, uuid);
    if (session)
        track_session(self, session);
    ferry_application_show_console(self->app, uuid);
}

static void
settings_activated(GSimpleAction *action, GVariant *param, gpointer user_data)
{
    FerryLibraryWindow *self = user_data;
    const char *uuid = selected_uuid(self);
    if (!uuid)
        return;
    GtkWidget *dialog = ferry_hardware_dialog_new(self, self->app, uuid);
    gtk_widget_show(dialog);
}

static void
snapshots_activated(GSimpleAction *action, GVariant *param, gpointer user_data)
{
    FerryLibraryWindow *self = user_data;
    const char *uuid = selected_uuid(self);
    if (!uuid)
        return;
    FerryVmSession *session = ferry_application_get_session(self->app, uuid);
    if (session)
        track_session(self, session);
    GtkWidget *dialog = ferry_snapshot_dialog_new(GTK_WINDOW(self), self->app, uuid);
    g_signal_connect(dialog, "response", G_CALLBACK(gtk_widget_destroy), NULL);
    gtk_widget_show(dialog);
}

typedef struct {
    FerryLibraryWindow *self;
    char *uuid;
    GtkToggleButton *disks;
} DeleteCtx;

static void
delete_response(GtkDialog *dialog, int response, gpointer user_data)
{
    DeleteCtx *c = user_data;
    FerryLibraryWindow *self = c->self;
    FerryStore *store = ferry_application_get_store(self->app);
    g_autoptr(GError) error = NULL;

    if (response == GTK_RESPONSE_ACCEPT && store) {
        g_autoptr(FerryVmRecord) vm = ferry_store_get_vm_by_uuid(store, c->uuid, &error);
        gboolean remove_disks = gtk_toggle_button_get_active(c->disks);
        if (vm && ferry_store_delete_vm(store, vm, &error)) {
            /* Only images Ferry itself created, and only when asked. */
            for (guint i = 0; remove_disks && i < vm->drives->len; i++) {
                FerryDriveRecord *d = vm->drives->pdata[i];
                if (d->created_by_ferry)
                    g_unlink(d->path);
            }
        }
        if (error)
            ferry_library_window_show_error(self, error->message);
        ferry_library_window_reload(self);
    }
    gtk_widget_destroy(GTK_WIDGET(dialog));
    g_free(c->uuid);
    g_free(c);
}

static void
delete_activated(GSimpleAction *action, GVariant *param, gpointer user_data)
{
    FerryLibraryWindow *self = user_data;
    RowData *d = row_data(selected_row(self));
    if (!d)
        return;
    GtkWidget *dialog = gtk_message_dialog_new(GTK_WINDOW(self), GTK_DIALOG_MODAL | GTK_DIALOG_DESTROY_WITH_PARENT,
                                               GTK_MESSAGE_QUESTION, GTK_BUTTONS_NONE,
                                               _("Delete “%s”?"), d->name);
    gtk_message_dialog_format_secondary_text(GTK_MESSAGE_DIALOG(dialog), "%s",
        _("The virtual machine is removed from the library. Disk images you added yourself are kept."));
    GtkWidget *check = gtk_check_button_new_with_mnemonic(_("Also delete the disk images Ferry _created for it"));
    gtk_widget_show(check);
    gtk_box_pack_start(GTK_BOX(gtk_message_dialog_get_message_area(GTK_MESSAGE_DIALOG(dialog))), check, FALSE, FALSE, 0);
    gtk_dialog_add_button(GTK_DIALOG(dialog), _("_Cancel"), GTK_RESPONSE_CANCEL);
    GtkWidget *del = gtk_dialog_add_button(GTK_DIALOG(dialog), _("_Delete"), GTK_RESPONSE_ACCEPT);
    gtk_style_context_add_class(gtk_widget_get_style_context(del), GTK_STYLE_CLASS_DESTRUCTIVE_ACTION);
    gtk_dialog_set_default_response(GTK_DIALOG(dialog), GTK_RESPONSE_CANCEL);
    DeleteCtx *c = g_new0(DeleteCtx, 1);
    c->self = self;
    c->uuid = g_strdup(d->uuid);
    c->disks = GTK_TOGGLE_BUTTON(check);
    g_signal_connect(dialog, "response", G_CALLBACK(delete_response), c);
    gtk_widget_show(dialog);
}

static void
search_activated(GSimpleAction *action, GVariant *param, gpointer user_data)
{
    FerryLibraryWindow *self = user_data;
    gboolean on = !gtk_search_bar_get_search_mode(self->search_bar);
    gtk_search_bar_set_search_mode(self->search_bar, on);
    g_simple_action_set_state(action, g_variant_new_boolean(on));
}

static const GActionEntry win_actions[] = {
    { "start", start_activated },
    { "pause", pause_activated },
    { "shutdown", shutdown_activated },
    { "force-off", force_off_activated },
    { "reset", reset_activated },
    { "console", console_activated },
    { "settings", settings_activated },
    { "snapshots", snapshots_activated },
    { "delete", delete_activated },
    { "search", search_activated, NULL, "false" },
};

static void
on_search_changed(GtkSearchEntry *entry, FerryLibraryWindow *self)
{
    gtk_list_box_invalidate_filter(self->list_box);
    update_stack(self);
}

static void
on_row_activated(GtkListBox *box, GtkListBoxRow *row, FerryLibraryWindow *self)
{
    RowData *d = row_data(row);
    FerryVmSession *session = ferry_application_lookup_session(self->app, d->uuid);
    FerryVmState s = session ? ferry_vm_session_get_state(session) : FERRY_VM_STATE_STOPPED;
    /* Activating a VM that is off starts it; one that runs shows its console. */
    if (s == FERRY_VM_STATE_STOPPED)
        g_action_group_activate_action(G_ACTION_GROUP(self), "start", NULL);
    else
        ferry_application_show_console(self->app, d->uuid);
}

static void
on_row_selected(GtkListBox *box, GtkListBoxRow *row, FerryLibraryWindow *self)
{
    RowData *d = row_data(row);
    if (d) {
        g_free(self->selected_uuid);
        self->selected_uuid = g_strdup(d->uuid);
    }
    update_actions(self);
}

/* ---- files: drag and drop, command line ------------------------------------- */

typedef struct {
    FerryLibraryWindow *self;
    char *uuid;
    char *path;
} AttachCtx;

static void
attach_response(GtkDialog *dialog, int response, gpointer user_data)
{
    AttachCtx *c = user_data;
    FerryLibraryWindow *self = c->self;
    FerryStore *store = ferry_application_get_store(self->app);
    g_autoptr(GError) error = NULL;

    if (response >= 0 && store) {
        FerryDriveKind kind = (FerryDriveKind) response;
        g_autoptr(FerryVmRecord) vm = ferry_store_get_vm_by_uuid(store, c->uuid, &error);
        if (vm && ferry_vm_record_add_drive(vm, kind, c->path, NULL, kind == FERRY_DRIVE_CDROM, &error) &&
            ferry_store_save_vm(store, vm, &error))
            ferry_library_window_reload(self);
        if (error)
            ferry_library_window_show_error(self, error->message);
    }
    gtk_widget_destroy(GTK_WIDGET(dialog));
    g_free(c->uuid);
    g_free(c->path);
    g_free(c);
}

static void
ask_attach(FerryLibraryWindow *self, const char *uuid, const char *vm_name, const char *path, FerryFileKind kind)
{
    g_autofree char *base = g_path_get_basename(path);
    GtkWidget *dialog = gtk_message_dialog_new(GTK_WINDOW(self), GTK_DIALOG_MODAL | GTK_DIALOG_DESTROY_WITH_PARENT,
                                               GTK_MESSAGE_QUESTION, GTK_BUTTONS_NONE,
                                               _("Attach “%s” to “%s”?"), base, vm_name);
    gtk_message_dialog_format_secondary_text(GTK_MESSAGE_DIALOG(dialog), "%s",
        _("Choose how the virtual machine sees the image."));
    gtk_dialog_add_button(GTK_DIALOG(dialog), _("_Cancel"), GTK_RESPONSE_CANCEL);
    gtk_dialog_add_button(GTK_DIALOG(dialog), _("_Floppy"), FERRY_DRIVE_FLOPPY);
    gtk_dialog_add_button(GTK_DIALOG(dialog), _("C_D-ROM"), FERRY_DRIVE_CDROM);
    gtk_dialog_add_button(GTK_DIALOG(dialog), _("_Hard Disk"), FERRY_DRIVE_DISK);
    gtk_dialog_set_default_response(GTK_DIALOG(dialog), kind == FERRY_FILE_ISO ? FERRY_DRIVE_CDROM : FERRY_DRIVE_DISK);
    AttachCtx *c = g_new0(AttachCtx, 1);
    c->self = self;
    c->uuid = g_strdup(uuid);
    c->path = g_strdup(path);
    g_signal_connect(dialog, "response", G_CALLBACK(attach_response), c);
    gtk_widget_show(dialog);
}

void
ferry_library_window_open_file(FerryLibraryWindow *self, GFile *file, const char *onto_uuid)
{
    g_autofree char *path = g_file_get_path(file);
    g_autofree char *name = g_file_get_basename(file);
    g_autoptr(GError) error = NULL;

    if (!path) {
        g_autofree char *uri = g_file_get_uri(file);
        g_autofree char *msg = g_strdup_printf(_("Ferry cannot use “%s”: only files on this computer can be used"), uri);
        ferry_library_window_show_error(self, msg);
        return;
    }
    FerryFileKind kind = ferry_file_kind_detect(path, &error);
    if (kind == FERRY_FILE_UNKNOWN) {
        g_autofree char *msg = g_strdup_printf(_("Ferry cannot use “%s”: %s"), name, error->message);
        ferry_library_window_show_error(self, msg);
        return;
    }
    if (onto_uuid) {
        GList *rows = gtk_container_get_children(GTK_CONTAINER(self->list_box));
        const char *vm_name = onto_uuid;
        for (GList *l = rows; l; l = l->next)
            if (!g_strcmp0(row_data(l->data)->uuid, onto_uuid))
                vm_name = row_data(l->data)->name;
        if (kind == FERRY_FILE_KERNEL) {
            g_autofree char *msg = g_strdup_printf(_("“%s” is a Linux kernel, not a disk: set it as the boot "
                                                     "kernel in the virtual machine’s settings"), name);
            ferry_library_window_show_error(self, msg);
        } else {
            ask_attach(self, onto_uuid, vm_name, path, kind);
        }
        g_list_free(rows);
        return;
    }
    ferry_library_window_new_vm(self, path);
}

static void
on_drag_data_received(GtkWidget *widget, GdkDragContext *context, gint x, gint y,
                      GtkSelectionData *data, guint info, guint time, gpointer user_data)
{
    FerryLibraryWindow *self = user_data;
    g_auto(GStrv) uris = gtk_selection_data_get_uris(data);
    const char *onto = NULL;

    /* Dropped on a VM: attach to it; elsewhere: a new VM. */
    if (widget == GTK_WIDGET(self->list_box)) {
        GtkListBoxRow *row = gtk_list_box_get_row_at_y(self->list_box, y);
        RowData *d = row_data(row);
        onto = d ? d->uuid : NULL;
    }
    for (guint i = 0; uris && uris[i]; i++) {
        g_autoptr(GFile) file = g_file_new_for_uri(uris[i]);
        ferry_library_window_open_file(self, file, onto);
    }
    gtk_drag_finish(context, uris != NULL, FALSE, time);
}

static void
setup_drop(FerryLibraryWindow *self, GtkWidget *widget)
{
    gtk_drag_dest_set(widget, GTK_DEST_DEFAULT_ALL, NULL, 0, GDK_ACTION_COPY);
    gtk_drag_dest_add_uri_targets(widget);
    g_signal_connect(widget, "drag-data-received", G_CALLBACK(on_drag_data_received), self);
}

/* ---- new VM, quit ---------------------------------------------------------------- */

static void
on_assistant_created(FerryNewVmAssistant *assistant, const char *uuid, FerryLibraryWindow *self)
{
    g_free(self->selected_uuid);
    self->selected_uuid = g_strdup(uuid);
    ferry_library_window_reload(self);
}

void
ferry_library_window_new_vm(FerryLibraryWindow *self, const char *path)
{
    FerryStore *store = ferry_application_get_store(self->app);
    if (!store) {
        ferry_library_window_show_error(self, ferry_application_get_store_error(self->app));
        return;
    }
    FerryNewVmAssistant *assistant = ferry_new_vm_assistant_new(GTK_WINDOW(self), store, path);
    g_signal_connect_object(assistant, "created", G_CALLBACK(on_assistant_created), self, 0);
    gtk_widget_show(GTK_WIDGET(assistant));
}

static void
quit_response(GtkDialog *dialog, int response, gpointer user_data)
{
    FerryLibraryWindow *self = user_data;
    gtk_widget_destroy(GTK_WIDGET(dialog));
    if (response != GTK_RESPONSE_ACCEPT && response != GTK_RESPONSE_REJECT)
        return;
    GList *rows = gtk_container_get_children(GTK_CONTAINER(self->list_box));
    self->quitting = TRUE;
    for (GList *l = rows; l; l = l->next) {
        FerryVmSession *s = ferry_application_lookup_session(self->app, row_data(l->data)->uuid);
        if (!s)
            continue;
        track_session(self, s);
        if (response == GTK_RESPONSE_ACCEPT)
            ferry_vm_session_power_button(s);     /* shut down: the guest decides when */
        else
            ferry_vm_session_force_off(s);
    }
    g_list_free(rows);
    if (ferry_application_count_running(self->app) == 0)
        g_application_quit(G_APPLICATION(self->app));
}

void
ferry_library_window_request_quit(FerryLibraryWindow *self)
{
    guint n = ferry_application_count_running(self->app);
    if (n == 0) {
        g_application_quit(G_APPLICATION(self->app));
        return;
    }
    GtkWidget *dialog = gtk_message_dialog_new(GTK_WINDOW(self), GTK_DIALOG_MODAL | GTK_DIALOG_DESTROY_WITH_PARENT,
                                               GTK_MESSAGE_QUESTION, GTK_BUTTONS_NONE, "%s",
                                               ngettext("A Virtual Machine Is Running", "Virtual Machines Are Running", n));
    gtk_message_dialog_format_secondary_text(GTK_MESSAGE_DIALOG(dialog),
        ngettext("Quitting stops it. Shut it down to let its system close cleanly, or force it off at once.",
                 "Quitting stops them. Shut them down to let their systems close cleanly, or force them off at once.", n));
    gtk_dialog_add_button(GTK_DIALOG(dialog), _("_Cancel"), GTK_RESPONSE_CANCEL);
    GtkWidget *off = gtk_dialog_add_button(GTK_DIALOG(dialog), _("_Force Off"), GTK_RESPONSE_REJECT);
    gtk_style_context_add_class(gtk_widget_get_style_context(off), GTK_STYLE_CLASS_DESTRUCTIVE_ACTION);
    gtk_dialog_add_button(GTK_DIALOG(dialog), _("_Shut Down"), GTK_RESPONSE_ACCEPT);
    gtk_dialog_set_default_response(GTK_DIALOG(dialog), GTK_RESPONSE_CANCEL);
    g_signal_connect(dialog, "response", G_CALLBACK(quit_response), self);
    gtk_widget_show(dialog);
}

static gboolean
on_delete_event(GtkWidget *widget, GdkEvent *event, gpointer user_data)
{
    FerryLibraryWindow *self = FERRY_LIBRARY_WINDOW(widget);
    if (ferry_application_count_running(self->app) == 0)
        return FALSE;
    ferry_library_window_request_quit(self);
    return TRUE;
}

/* ---- window state ------------------------------------------------------------------ */

static void
save_window_state(FerryLibraryWindow *self)
{
    GSettings *settings = ferry_application_get_settings(self->app);
    int w, h;
    if (!settings)
        return;
    gtk_window_get_size(GTK_WINDOW(self), &w, &h);
    g_settings_set_boolean(settings, "window-maximized", gtk_window_is_maximized(GTK_WINDOW(self)));
    if (!gtk_window_is_maximized(GTK_WINDOW(self))) {
        g_settings_set_int(settings, "window-width", w);
        g_settings_set_int(settings, "window-height", h);
    }
}

static void
restore_window_state(FerryLibraryWindow *self)
{
    GSettings *settings = ferry_application_get_settings(self->app);
    if (!settings)
        return;
    gtk_window_set_default_size(GTK_WINDOW(self), g_settings_get_int(settings, "window-width"),
                                g_settings_get_int(settings, "window-height"));
    if (g_settings_get_boolean(settings, "window-maximized"))
        gtk_window_maximize(GTK_WINDOW(self));
}

/* FERRY_REPORT_STARTUP=1 prints how long the library took to appear (for
 * tests/bench/app-startup.sh); "quit" also quits. */
gint64 ferry_main_start_us;          /* set by main() */

static gboolean
on_first_draw(GtkWidget *widget, cairo_t *cr, gpointer user_data)
{
    FerryLibraryWindow *self = FERRY_LIBRARY_WINDOW(widget);
    const char *report = g_getenv("FERRY_REPORT_STARTUP");
    GList *rows = gtk_container_get_children(GTK_CONTAINER(self->list_box));

    g_signal_handlers_disconnect_by_func(widget, on_first_draw, user_data);
    if (report && ferry_main_start_us) {
        g_printerr("FERRY-STARTUP ms=%.1f vms=%u\n",
                   (g_get_monotonic_time() - ferry_main_start_us) / 1000.0, g_list_length(rows));
        if (!g_strcmp0(report, "quit"))
            g_idle_add((GSourceFunc) (void (*)(void)) g_application_quit, self->app);
    }
    g_list_free(rows);
    return FALSE;
}

static void
ferry_library_window_dispose(GObject *object)
{
    FerryLibraryWindow *self = FERRY_LIBRARY_WINDOW(object);
    if (self->app)
        save_window_state(self);
    if (self->reload_source) {
        g_source_remove(self->reload_source);
        self->reload_source = 0;
    }
    if (self->states_source) {
        g_source_remove(self->states_source);
        self->states_source = 0;
    }
    g_clear_object(&self->db_monitor);
    g_clear_object(&self->wal_monitor);
    g_clear_object(&self->lock_monitor);
    self->app = NULL;
    G_OBJECT_CLASS(ferry_library_window_parent_class)->dispose(object);
}

static void
ferry_library_window_finalize(GObject *object)
{
    FerryLibraryWindow *self = FERRY_LIBRARY_WINDOW(object);
    g_free(self->selected_uuid);
    G_OBJECT_CLASS(ferry_library_window_parent_class)->finalize(object);
}

static void
ferry_library_window_class_init(FerryLibraryWindowClass *klass)
{
    GObjectClass *object_class = G_OBJECT_CLASS(klass);
    GtkWidgetClass *widget_class = GTK_WIDGET_CLASS(klass);

    object_class->dispose = ferry_library_window_dispose;
    object_class->finalize = ferry_library_window_finalize;

    gtk_widget_class_set_template_from_resource(widget_class, "/org/ferryvm/Ferry/ui/ferry-library-window.ui");
    gtk_widget_class_bind_template_child(widget_class, FerryLibraryWindow, header_bar);
    gtk_widget_class_bind_template_child(widget_class, FerryLibraryWindow, start_button);
    gtk_widget_class_bind_template_child(widget_class, FerryLibraryWindow, pause_button);
    gtk_widget_class_bind_template_child(widget_class, FerryLibraryWindow, pause_image);
    gtk_widget_class_bind_template_child(widget_class, FerryLibraryWindow, info_bar);
    gtk_widget_class_bind_template_child(widget_class, FerryLibraryWindow, info_label);
    gtk_widget_class_bind_template_child(widget_class, FerryLibraryWindow, search_bar);
    gtk_widget_class_bind_template_child(widget_class, FerryLibraryWindow, search_entry);
    gtk_widget_class_bind_template_child(widget_class, FerryLibraryWindow, stack);
    gtk_widget_class_bind_template_child(widget_class, FerryLibraryWindow, list_box);
    gtk_widget_class_bind_template_callback(widget_class, on_info_bar_response);
    gtk_widget_class_bind_template_callback(widget_class, on_search_changed);
    gtk_widget_class_bind_template_callback(widget_class, on_row_activated);
    gtk_widget_class_bind_template_callback(widget_class, on_row_selected);
}

static void
ferry_library_window_init(FerryLibraryWindow *self)
{
    gtk_widget_init_template(GTK_WIDGET(self));
    g_action_map_add_action_entries(G_ACTION_MAP(self), win_actions, G_N_ELEMENTS(win_actions), self);
    gtk_list_box_set_filter_func(self->list_box, filter_row, self, NULL);
    gtk_search_bar_connect_entry(self->search_bar, GTK_ENTRY(self->search_entry));
    setup_drop(self, GTK_WIDGET(self->list_box));
    setup_drop(self, GTK_WIDGET(self->stack));
    g_signal_connect(self, "delete-event", G_CALLBACK(on_delete_event), NULL);
    g_signal_connect_after(self, "draw", G_CALLBACK(on_first_draw), NULL);
}

FerryLibraryWindow *
ferry_library_window_new(FerryApplication *app)
{
    FerryLibraryWindow *self = g_object_new(FERRY_TYPE_LIBRARY_WINDOW, "application", app, NULL);
    FerryStore *store = ferry_application_get_store(app);

    self->app = app;
    restore_window_state(self);
    if (store) {
        const char *path = ferry_store_get_path(store);
        g_autofree char *wal = g_strconcat(path, "-wal", NULL);
        self->db_monitor = watch(self, path);
        self->wal_monitor = watch(self, wal);
    }
    /* The run locks (store/run-lock.c) live here. */
    g_autofree char *locks = g_build_filename(g_get_user_runtime_dir(), "ferry", "running", NULL);
    g_mkdir_with_parents(locks, 0700);
    g_autoptr(GFile) lock_dir = g_file_new_for_path(locks);
    self->lock_monitor = g_file_monitor_directory(lock_dir, G_FILE_MONITOR_NONE, NULL, NULL);
    if (self->lock_monitor)
        g_signal_connect_object(self->lock_monitor, "changed", G_CALLBACK(on_locks_changed), self, 0);
    ferry_library_window_reload(self);
    return self;
}

/* ferry-application.c: see ferry-application.h. */
#include "ferry-application.h"
#include "ferry-library-window.h"
#include "ferry-console-window.h"
#include "ferry-vm-record.h"

#include <glib/gi18n.h>

struct _FerryApplication {
    GtkApplication parent_instance;
    FerryStore *store;
    char *store_error;
    char *library_path;
    GHashTable *sessions;        /* uuid -> FerryVmSession */
    GHashTable *locks;           /* uuid -> FerryRunLock */
    GSettings *settings;
};

G_DEFINE_FINAL_TYPE(FerryApplication, ferry_application, GTK_TYPE_APPLICATION)

FerryStore *
ferry_application_get_store(FerryApplication *self)
{
    return self->store;
}

const char *
ferry_application_get_store_error(FerryApplication *self)
{
    return self->store_error;
}

GSettings *
ferry_application_get_settings(FerryApplication *self)
{
    return self->settings;
}

static void
release_lock_when_stopped(FerryVmSession *session, GParamSpec *pspec, FerryApplication *self)
{
    if (ferry_vm_session_get_state(session) != FERRY_VM_STATE_STOPPED)
        return;
    const char *uuid = g_object_get_data(G_OBJECT(session), "ferry-uuid");
    g_hash_table_remove(self->locks, uuid);
}

FerryVmSession *
ferry_application_lookup_session(FerryApplication *self, const char *uuid)
{
    return g_hash_table_lookup(self->sessions, uuid);
}

FerryVmSession *
ferry_application_get_session(FerryApplication *self, const char *uuid)
{
    FerryVmSession *session = g_hash_table_lookup(self->sessions, uuid);
    if (session || !self->store)
        return session;
    g_autoptr(FerryVmRecord) vm = ferry_store_get_vm_by_uuid(self->store, uuid, NULL);
    if (!vm)
        return NULL;
    FerryVmConfig config;
    if (!ferry_vm_record_to_config(vm, &config, NULL))
        ferry_vm_config_init(&config);      /* start_vm() reports the problem */
    session = ferry_vm_session_new(vm->name, &config);
    ferry_vm_config_clear(&config);
    g_object_set_data_full(G_OBJECT(session), "ferry-uuid", g_strdup(uuid), g_free);
    g_signal_connect_object(session, "notify::state", G_CALLBACK(release_lock_when_stopped), self, 0);
    g_hash_table_insert(self->sessions, g_strdup(uuid), session);
    return session;
}

gboolean
ferry_application_start_vm(FerryApplication *self, const char *uuid, GError **error)
{
    if (!self->store) {
        g_set_error_literal(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_FAILED, self->store_error);
        return FALSE;
    }
    g_autoptr(FerryVmRecord) vm = ferry_store_get_vm_by_uuid(self->store, uuid, error);
    if (!vm)
        return FALSE;
    FerryVmSession *session = ferry_application_get_session(self, uuid);
    if (!session) {
        g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_NOT_FOUND,
                    _("“%s” is no longer in the library"), vm->name);
        return FALSE;
    }
    FerryVmConfig config;
    if (!ferry_vm_record_to_config(vm, &config, error))
        return FALSE;
    /* The config may have changed since the last run: a fresh session
     * takes it, windows follow the new one. */
    ferry_vm_session_set_config(session, vm->name, &config);
    ferry_vm_config_clear(&config);

    FerryRunLock *lock = ferry_run_lock_acquire(vm, "Ferry", error);
    if (!lock)
        return FALSE;
    if (!ferry_vm_session_start(session, error)) {
        ferry_run_lock_release(lock);
        return FALSE;
    }
    g_hash_table_insert(self->locks, g_strdup(uuid), lock);
    ferry_store_set_last_run(self->store, vm->id, g_get_real_time() / G_USEC_PER_SEC, NULL);
    return TRUE;
}

void
ferry_application_show_console(FerryApplication *self, const char *uuid)
{
    FerryVmSession *session = ferry_application_get_session(self, uuid);
    if (!session)
        return;
    for (GList *l = gtk_application_get_windows(GTK_APPLICATION(self)); l; l = l->next) {
        if (FERRY_IS_CONSOLE_WINDOW(l->data) &&
            ferry_console_window_get_session(l->data) == session) {
            gtk_window_present(l->data);
            return;
        }
    }
    FerryConsoleWindow *win = ferry_console_window_new(GTK_APPLICATION(self), session);
    gtk_window_present(GTK_WINDOW(win));
}

guint
ferry_application_count_running(FerryApplication *self)
{
    GHashTableIter it;
    gpointer value;
    guint n = 0;
    g_hash_table_iter_init(&it, self->sessions);
    while (g_hash_table_iter_next(&it, NULL, &value)) {
        FerryVmState s = ferry_vm_session_get_state(value);
        if (s == FERRY_VM_STATE_RUNNING || s == FERRY_VM_STATE_PAUSED || s == FERRY_VM_STATE_CREATED)
            n++;
    }
    return n;
}

static FerryLibraryWindow *
library_window(FerryApplication *self)
{
    for (GList *l = gtk_application_get_windows(GTK_APPLICATION(self)); l; l = l->next)
        if (FERRY_IS_LIBRARY_WINDOW(l->data))
            return l->data;
    return NULL;
}

static void
ferry_application_activate(GApplication *app)
{
    FerryApplication *self = FERRY_APPLICATION(app);
    FerryLibraryWindow *win = library_window(self);
    if (!win)
        win = ferry_library_window_new(self);
    gtk_window_present(GTK_WINDOW(win));
}

static void
ferry_application_open(GApplication *app, GFile **files, gint n_files, const gchar *hint)
{
    FerryApplication *self = FERRY_APPLICATION(app);
    ferry_application_activate(app);
    FerryLibraryWindow *win = library_window(self);
    for (gint i = 0; i < n_files; i++)
        ferry_library_window_open_file(win, files[i], NULL);
}

static void
quit_activated(GSimpleAction *action, GVariant *param, gpointer user_data)
{
    FerryApplication *self = user_data;
    FerryLibraryWindow *win = library_window(self);
    if (win)
        ferry_library_window_request_quit(win);
    else
        g_application_quit(G_APPLICATION(self));
}

static void
new_vm_activated(GSimpleAction *action, GVariant *param, gpointer user_data)
{
    FerryApplication *self = user_data;
    ferry_application_activate(G_APPLICATION(self));
    ferry_library_window_new_vm(library_window(self), NULL);
}

static void
about_activated(GSimpleAction *action, GVariant *param, gpointer user_data)
{
    FerryApplication *self = user_data;
    static const char *authors[] = { "The Ferry developers", NULL };
    gtk_show_about_dialog(GTK_WINDOW(library_window(self)),
                          "program-name", "Ferry",
                          "logo-icon-name", FERRY_APPLICATION_ID,
                          "version", FERRY_VERSION,
                          "comments", _("Create and run virtual machines"),
                          "license-type", GTK_LICENSE_GPL_3_0,
                          "authors", authors,
                          NULL);
}

static const GActionEntry app_actions[] = {
    { "quit", quit_activated },
    { "new-vm", new_vm_activated },
    { "about", about_activated },
};

static GSettings *
load_settings(void)
{
    GSettingsSchemaSource *source = g_settings_schema_source_get_default();
    g_autoptr(GSettingsSchema) schema = source ? g_settings_schema_source_lookup(source, FERRY_APPLICATION_ID, TRUE) : NULL;
    if (schema)
        return g_settings_new_full(schema, NULL, NULL);
#ifdef FERRY_BUILD_SCHEMA_DIR
    /* Run from the build tree: the schema compiled there. */
    g_autoptr(GSettingsSchemaSource) build = g_settings_schema_source_new_from_directory(
        FERRY_BUILD_SCHEMA_DIR, source, FALSE, NULL);
    if (build) {
        g_autoptr(GSettingsSchema) s = g_settings_schema_source_lookup(build, FERRY_APPLICATION_ID, FALSE);
        if (s)
            return g_settings_new_full(s, NULL, NULL);
    }
#endif
    return NULL;
}

static void
ferry_application_startup(GApplication *app)
{
    FerryApplication *self = FERRY_APPLICATION(app);
    g_autoptr(GError) error = NULL;
    static const char *quit_accels[] = { "<Control>q", NULL };
    static const char *new_accels[] = { "<Control>n", NULL };

    G_APPLICATION_CLASS(ferry_application_parent_class)->startup(app);
    g_action_map_add_action_entries(G_ACTION_MAP(app), app_actions, G_N_ELEMENTS(app_actions), app);
    gtk_application_set_accels_for_action(GTK_APPLICATION(app), "app.quit", quit_accels);
    gtk_application_set_accels_for_action(GTK_APPLICATION(app), "app.new-vm", new_accels);
    static const struct { const char *action; const char *accel; } win_accels[] = {
        { "win.start", "<Control>Return" },
        { "win.pause", "<Control>p" },
        { "win.settings", "<Control>comma" },
        { "win.delete", "Delete" },
        { "win.search", "<Control>f" },
    };
    for (guint i = 0; i < G_N_ELEMENTS(win_accels); i++) {
        const char *accels[] = { win_accels[i].accel, NULL };
        gtk_application_set_accels_for_action(GTK_APPLICATION(app), win_accels[i].action, accels);
    }

    g_autoptr(GtkCssProvider) css = gtk_css_provider_new();
    gtk_css_provider_load_from_resource(css, "/org/ferryvm/Ferry/ui/style.css");
    gtk_style_context_add_provider_for_screen(gdk_screen_get_default(), GTK_STYLE_PROVIDER(css),
                                              GTK_STYLE_PROVIDER_PRIORITY_APPLICATION);
    gtk_icon_theme_add_resource_path(gtk_icon_theme_get_default(), "/org/ferryvm/Ferry/icons");

    self->settings = load_settings();
    self->library_path = ferry_library_default_path();
    self->store = ferry_store_open(self->library_path, &error);
    if (!self->store)
        self->store_error = g_strdup(error->message);
}

static void
ferry_application_shutdown(GApplication *app)
{
    FerryApplication *self = FERRY_APPLICATION(app);
    /* Windows are gone; stop what still runs (the user chose to quit). */
    g_hash_table_remove_all(self->sessions);
    g_hash_table_remove_all(self->locks);
    G_APPLICATION_CLASS(ferry_application_parent_class)->shutdown(app);
}

static void
ferry_application_finalize(GObject *object)
{
    FerryApplication *self = FERRY_APPLICATION(object);
    g_hash_table_unref(self->sessions);
    g_hash_table_unref(self->locks);
    ferry_store_close(self->store);
    g_clear_object(&self->settings);
    g_free(self->store_error);
    g_free(self->library_path);
    G_OBJECT_CLASS(ferry_application_parent_class)->finalize(object);
}

static void
ferry_application_class_init(FerryApplicationClass *klass)
{
    G_OBJECT_CLASS(klass)->finalize = ferry_application_finalize;
    G_APPLICATION_CLASS(klass)->startup = ferry_application_startup;
    G_APPLICATION_CLASS(klass)->shutdown = ferry_application_shutdown;
    G_APPLICATION_CLASS(klass)->activate = ferry_application_activate;
    G_APPLICATION_CLASS(klass)->open = ferry_application_open;
}

static void
ferry_application_init(FerryApplication *self)
{
    self->sessions = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_object_unref);
    self->locks = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                        (GDestroyNotify) ferry_run_lock_release);
}

FerryApplication *
ferry_application_new(void)
{
    return g_object_new(FERRY_TYPE_APPLICATION,
                        "application-id", FERRY_APPLICATION_ID,
                        "flags", G_APPLICATION_HANDLES_OPEN,
                        NULL);
}

/* ferry-console-window.c: see ferry-console-window.h. */
#include "ferry-console-window.h"
#include "ferry-dialogs.h"

#include <glib/gi18n.h>
#include <string.h>
#include <vte/vte.h>

#define MONITOR_PROMPT "(ferry) "

struct _FerryConsoleWindow {
    GtkApplicationWindow parent_instance;

    GtkHeaderBar *header_bar;
    GtkWidget *start_button;
    GtkWidget *pause_button;
    GtkImage *pause_image;
    GtkInfoBar *error_bar;
    GtkLabel *error_label;
    GtkNotebook *notebook;
    GtkBox *serial_box;
    GtkBox *monitor_box;

    VteTerminal *serial;
    VteTerminal *monitor;
    GString *monitor_line;

    GtkInfoBar *snapshot_bar;
    GtkLabel *snapshot_label;
    guint pending_timer;

    FerryVmSession *session;
};

G_DEFINE_FINAL_TYPE(FerryConsoleWindow, ferry_console_window, GTK_TYPE_APPLICATION_WINDOW)

enum { PROP_0, PROP_SESSION, N_PROPS };
static GParamSpec *properties[N_PROPS];

static void
feed_text(VteTerminal *term, const char *text)
{
    /* The terminal wants CR LF; monitor replies end lines with LF. */
    for (const char *p = text; *p; p++) {
        if (*p == '\n')
            vte_terminal_feed(term, "\r\n", 2);
        else
            vte_terminal_feed(term, p, 1);
    }
}

void
ferry_console_window_show_error(FerryConsoleWindow *self, const char *message)
{
    gtk_label_set_text(self->error_label, message);
    gtk_info_bar_set_revealed(self->error_bar, TRUE);
}

static void
on_error_bar_response(GtkInfoBar *bar, int response, FerryConsoleWindow *self)
{
    gtk_info_bar_set_revealed(bar, FALSE);
}

static void
update_controls(FerryConsoleWindow *self)
{
    FerryVmState state = ferry_vm_session_get_state(self->session);
    gboolean running = state == FERRY_VM_STATE_RUNNING;
    gboolean paused = state == FERRY_VM_STATE_PAUSED;
    gboolean live = running || paused;
    GActionMap *map = G_ACTION_MAP(self);

    gtk_header_bar_set_subtitle(self->header_bar, ferry_vm_session_get_state_label(self->session));
    g_simple_action_set_enabled(G_SIMPLE_ACTION(g_action_map_lookup_action(map, "start")), !live);
    g_simple_action_set_enabled(G_SIMPLE_ACTION(g_action_map_lookup_action(map, "pause")), live);
    g_simple_action_set_enabled(G_SIMPLE_ACTION(g_action_map_lookup_action(map, "shutdown")), running);
    g_simple_action_set_enabled(G_SIMPLE_ACTION(g_action_map_lookup_action(map, "force-off")), live);
    g_simple_action_set_enabled(G_SIMPLE_ACTION(g_action_map_lookup_action(map, "reset")), live);
    /* No keyboard on these machines yet: nothing to send keys to. */
    g_simple_action_set_enabled(G_SIMPLE_ACTION(g_action_map_lookup_action(map, "send-key")), FALSE);
    gtk_widget_set_visible(self->start_button, !live);
    gtk_widget_set_visible(self->pause_button, live);
    gtk_image_set_from_icon_name(self->pause_image,
                                 paused ? "media-playback-start-symbolic" : "media-playback-pause-symbolic",
                                 GTK_ICON_SIZE_BUTTON);
    gtk_widget_set_tooltip_text(self->pause_button, paused ? _("Resume") : _("Pause"));
}

/* ---- snapshot mode: pending changes, Commit / Discard ---------------------- */

enum { RESPONSE_COMMIT = 1, RESPONSE_DISCARD = 2 };

static void
update_snapshot_bar(FerryConsoleWindow *self)
{
    guint64 pending = ferry_vm_session_get_pending(self->session);
    gboolean snapshot = ferry_vm_session_get_snapshot_mode(self->session);
    FerryVmState s = ferry_vm_session_get_state(self->session);
    gboolean live = s == FERRY_VM_STATE_RUNNING || s == FERRY_VM_STATE_PAUSED;
    g_autofree char *size = g_format_size_full(pending, G_FORMAT_SIZE_IEC_UNITS);
    g_autofree char *text = NULL;

    if (pending)
        text = g_strdup_printf(_("Snapshot mode: %s of changes to the disks are kept apart. "
                                 "Commit them to keep them, or discard them."), size);
    else if (snapshot && live)
        text = g_strdup(_("Snapshot mode: changes to the disks are kept apart until you commit or discard them."));
    gtk_label_set_text(self->snapshot_label, text ? text : "");
    gtk_info_bar_set_response_sensitive(self->snapshot_bar, RESPONSE_COMMIT, pending > 0);
    gtk_info_bar_set_response_sensitive(self->snapshot_bar, RESPONSE_DISCARD, pending > 0);
    gtk_info_bar_set_revealed(self->snapshot_bar, text != NULL);
}

static void
on_pending(FerryVmSession *session, GParamSpec *pspec, FerryConsoleWindow *self)
{
    update_snapshot_bar(self);
}

static gboolean
refresh_pending(gpointer user_data)
{
    FerryConsoleWindow *self = user_data;
    ferry_vm_session_refresh_pending(self->session);
    return G_SOURCE_CONTINUE;
}

static void
on_disk_job_done(FerryVmSession *session, const GError *error, gpointer user_data)
{
    FerryConsoleWindow *self = user_data;
    if (error && !g_error_matches(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_CANCELLED))
        ferry_console_window_show_error(self, error->message);
    g_object_unref(self);
}

static void
on_snapshot_response(GtkInfoBar *bar, int response, FerryConsoleWindow *self)
{
    if (response != RESPONSE_COMMIT && response != RESPONSE_DISCARD)
        return;
    /* on_disk_job_done drops the reference, on Cancel too. */
    ferry_ask_disk_changes(GTK_WINDOW(self), self->session, response == RESPONSE_COMMIT,
                           on_disk_job_done, g_object_ref(self));
}

static void
on_state(FerryVmSession *session, GParamSpec *pspec, FerryConsoleWindow *self)
{
    FerryVmState s = ferry_vm_session_get_state(session);
    update_controls(self);
    /* While it runs in snapshot mode the pending size grows: look every
     * two seconds, only then and only while this window is open. */
    if (ferry_vm_session_get_snapshot_mode(session) && s == FERRY_VM_STATE_RUNNING && !self->pending_timer)
        self->pending_timer = g_timeout_add_seconds(2, refresh_pending, self);
    else if (s == FERRY_VM_STATE_STOPPED && self->pending_timer) {
        g_source_remove(self->pending_timer);
        self->pending_timer = 0;
    }
    ferry_vm_session_refresh_pending(session);
    update_snapshot_bar(self);
}

static void
on_serial_output(FerryVmSession *session, GBytes *data, FerryConsoleWindow *self)
{
    gsize len;
    const char *p = g_bytes_get_data(data, &len);
    vte_terminal_feed(self->serial, p, len);
}

static void
on_failed(FerryVmSession *session, const char *message, FerryConsoleWindow *self)
{
    ferry_console_window_show_error(self, message);
}

static void
on_serial_commit(VteTerminal *term, const char *text, guint size, FerryConsoleWindow *self)
{
    ferry_vm_session_send_serial(self->session, (const guint8 *) text, size);
}

static void
on_monitor_reply(FerryVmSession *session, const char *reply, gpointer user_data)
{
    FerryConsoleWindow *self = user_data;
    feed_text(self->monitor, reply);
    feed_text(self->monitor, MONITOR_PROMPT);
    g_object_unref(self);
}

static void
on_monitor_commit(VteTerminal *term, const char *text, guint size, FerryConsoleWindow *self)
{
    /* The monitor is line-based: edit the line here, run it on Enter. */
    for (guint i = 0; i < size; i++) {
        char c = text[i];
        if (c == '\r' || c == '\n') {
            feed_text(term, "\n");
            g_autofree char *line = g_strdup(self->monitor_line->str);
            g_string_truncate(self->monitor_line, 0);
            ferry_vm_session_monitor(self->session, line, on_monitor_reply, g_object_ref(self));
        } else if (c == 0x7F || c == 0x08) {
            if (self->monitor_line->len) {
                g_string_truncate(self->monitor_line, self->monitor_line->len - 1);
                vte_terminal_feed(term, "\b \b", 3);
            }
        } else if ((guchar) c >= 0x20 && self->monitor_line->len < 1024) {
            g_string_append_c(self->monitor_line, c);
            vte_terminal_feed(term, &c, 1);
        }
    }
}

static void
start_activated(GSimpleAction *action, GVariant *param, gpointer user_data)
{
    FerryConsoleWindow *self = user_data;
    g_autoptr(GError) error = NULL;

    gtk_info_bar_set_revealed(self->error_bar, FALSE);
    if (!ferry_vm_session_start(self->session, &error))
        ferry_console_window_show_error(self, error->message);
}

static void
pause_activated(GSimpleAction *action, GVariant *param, gpointer user_data)
{
    FerryConsoleWindow *self = user_data;
    if (ferry_vm_session_get_state(self->session) == FERRY_VM_STATE_PAUSED)
        ferry_vm_session_resume(self->session);
    else
        ferry_vm_session_pause(self->session);
}

static void
shutdown_activated(GSimpleAction *action, GVariant *param, gpointer user_data)
{
    ferry_vm_session_power_button(FERRY_CONSOLE_WINDOW(user_data)->session);
}

static void
reset_activated(GSimpleAction *action, GVariant *param, gpointer user_data)
{
    ferry_vm_session_reset(FERRY_CONSOLE_WINDOW(user_data)->session);
}

static void
force_off_activated(GSimpleAction *action, GVariant *param, gpointer user_data)
{
    FerryConsoleWindow *self = user_data;
    ferry_ask_force_off(GTK_WINDOW(self), self->session);
}

static void
send_key_activated(GSimpleAction *action, GVariant *param, gpointer user_data)
{
    /* Disabled while the machine has no keyboard (see update_controls). */
}

static const GActionEntry win_actions[] = {
    { "start", start_activated },
    { "pause", pause_activated },
    { "shutdown", shutdown_activated },
    { "reset", reset_activated },
    { "force-off", force_off_activated },
    { "send-key", send_key_activated, "s" },
};

static VteTerminal *
add_terminal(GtkBox *box)
{
    GtkWidget *term = vte_terminal_new();
    GtkWidget *scrollbar = gtk_scrollbar_new(GTK_ORIENTATION_VERTICAL,
                                             gtk_scrollable_get_vadjustment(GTK_SCROLLABLE(term)));
    vte_terminal_set_scrollback_lines(VTE_TERMINAL(term), 10000);
    vte_terminal_set_scroll_on_output(VTE_TERMINAL(term), TRUE);
    gtk_widget_set_hexpand(term, TRUE);
    gtk_widget_set_vexpand(term, TRUE);
    gtk_box_pack_start(box, term, TRUE, TRUE, 0);
    gtk_box_pack_start(box, scrollbar, FALSE, FALSE, 0);
    gtk_widget_show(term);
    gtk_widget_show(scrollbar);
    return VTE_TERMINAL(term);
}

static gboolean
on_key_press(GtkWidget *widget, GdkEventKey *event, FerryConsoleWindow *self)
{
    /* Ctrl+Shift+C / V copy and paste, as in GNOME Terminal. */
    GdkModifierType mods = event->state & gtk_accelerator_get_default_mod_mask();
    if (mods == (GDK_CONTROL_MASK | GDK_SHIFT_MASK)) {
        if (event->keyval == GDK_KEY_C || event->keyval == GDK_KEY_c) {
            vte_terminal_copy_clipboard_format(VTE_TERMINAL(widget), VTE_FORMAT_TEXT);
            return TRUE;
        }
        if (event->keyval == GDK_KEY_V || event->keyval == GDK_KEY_v) {
            vte_terminal_paste_clipboard(VTE_TERMINAL(widget));
            return TRUE;
        }
    }
    return FALSE;
}

static void
ferry_console_window_constructed(GObject *object)
{
    FerryConsoleWindow *self = FERRY_CONSOLE_WINDOW(object);

    G_OBJECT_CLASS(ferry_console_window_parent_class)->constructed(object);
    gtk_header_bar_set_title(self->header_bar, ferry_vm_session_get_name(self->session));
    gtk_window_set_title(GTK_WINDOW(self), ferry_vm_session_get_name(self->session));
    g_signal_connect_object(self->session, "notify::state", G_CALLBACK(on_state), self, 0);
    g_signal_connect_object(self->session, "serial-output", G_CALLBACK(on_serial_output), self, 0);
    g_signal_connect_object(self->session, "failed", G_CALLBACK(on_failed), self, 0);
    g_signal_connect_object(self->session, "notify::pending", G_CALLBACK(on_pending), self, 0);
    on_state(self->session, NULL, self);
    if (ferry_vm_session_get_error(self->session))
        ferry_console_window_show_error(self, ferry_vm_session_get_error(self->session));
    update_controls(self);
}

static void
ferry_console_window_dispose(GObject *object)
{
    FerryConsoleWindow *self = FERRY_CONSOLE_WINDOW(object);
    if (self->pending_timer) {
        g_source_remove(self->pending_timer);
        self->pending_timer = 0;
    }
    g_clear_object(&self->session);
    G_OBJECT_CLASS(ferry_console_window_parent_class)->dispose(object);
}

static void
ferry_console_window_finalize(GObject *object)
{
    FerryConsoleWindow *self = FERRY_CONSOLE_WINDOW(object);
    g_string_free(self->monitor_line, TRUE);
    G_OBJECT_CLASS(ferry_console_window_parent_class)->finalize(object);
}

static void
ferry_console_window_set_property(GObject *object, guint id, const GValue *value, GParamSpec *pspec)
{
    FerryConsoleWindow *self = FERRY_CONSOLE_WINDOW(object);
    switch (id) {
    case PROP_SESSION:
        self->session = g_value_dup_object(value);
        break;
    default:
        G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
    }
}

static void
ferry_console_window_get_property(GObject *object, guint id, GValue *value, GParamSpec *pspec)
{
    FerryConsoleWindow *self = FERRY_CONSOLE_WINDOW(object);
    switch (id) {
    case PROP_SESSION:
        g_value_set_object(value, self->session);
        break;
    default:
        G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
    }
}

static void
ferry_console_window_class_init(FerryConsoleWindowClass *klass)
{
    GObjectClass *object_class = G_OBJECT_CLASS(klass);
    GtkWidgetClass *widget_class = GTK_WIDGET_CLASS(klass);

    object_class->constructed = ferry_console_window_constructed;
    object_class->dispose = ferry_console_window_dispose;
    object_class->finalize = ferry_console_window_finalize;
    object_class->set_property = ferry_console_window_set_property;
    object_class->get_property = ferry_console_window_get_property;

    properties[PROP_SESSION] = g_param_spec_object("session", NULL, NULL, FERRY_TYPE_VM_SESSION,
        G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
    g_object_class_install_properties(object_class, N_PROPS, properties);

    gtk_widget_class_set_template_from_resource(widget_class, "/org/ferryvm/Ferry/ui/ferry-console-window.ui");
    gtk_widget_class_bind_template_child(widget_class, FerryConsoleWindow, header_bar);
    gtk_widget_class_bind_template_child(widget_class, FerryConsoleWindow, start_button);
    gtk_widget_class_bind_template_child(widget_class, FerryConsoleWindow, pause_button);
    gtk_widget_class_bind_template_child(widget_class, FerryConsoleWindow, pause_image);
    gtk_widget_class_bind_template_child(widget_class, FerryConsoleWindow, error_bar);
    gtk_widget_class_bind_template_child(widget_class, FerryConsoleWindow, error_label);
    gtk_widget_class_bind_template_child(widget_class, FerryConsoleWindow, notebook);
    gtk_widget_class_bind_template_child(widget_class, FerryConsoleWindow, serial_box);
    gtk_widget_class_bind_template_child(widget_class, FerryConsoleWindow, monitor_box);
    gtk_widget_class_bind_template_callback(widget_class, on_error_bar_response);
}

static void
ferry_console_window_init(FerryConsoleWindow *self)
{
    gtk_widget_init_template(GTK_WIDGET(self));
    self->monitor_line = g_string_new(NULL);
    g_action_map_add_action_entries(G_ACTION_MAP(self), win_actions, G_N_ELEMENTS(win_actions), self);
    /* The snapshot-mode bar, under the error bar. */
    self->snapshot_bar = GTK_INFO_BAR(gtk_info_bar_new());
    gtk_info_bar_set_message_type(self->snapshot_bar, GTK_MESSAGE_INFO);
    gtk_info_bar_add_button(self->snapshot_bar, _("_Discard Changes…"), RESPONSE_DISCARD);
    gtk_info_bar_add_button(self->snapshot_bar, _("_Commit Changes…"), RESPONSE_COMMIT);
    self->snapshot_label = GTK_LABEL(gtk_label_new(NULL));
    gtk_label_set_line_wrap(self->snapshot_label, TRUE);
    gtk_label_set_xalign(self->snapshot_label, 0);
    gtk_container_add(GTK_CONTAINER(gtk_info_bar_get_content_area(self->snapshot_bar)), GTK_WIDGET(self->snapshot_label));
    gtk_info_bar_set_revealed(self->snapshot_bar, FALSE);
    g_signal_connect(self->snapshot_bar, "response", G_CALLBACK(on_snapshot_response), self);
    GtkWidget *vbox = gtk_widget_get_parent(GTK_WIDGET(self->error_bar));
    gtk_box_pack_start(GTK_BOX(vbox), GTK_WIDGET(self->snapshot_bar), FALSE, FALSE, 0);
    gtk_box_reorder_child(GTK_BOX(vbox), GTK_WIDGET(self->snapshot_bar), 1);
    gtk_widget_show_all(GTK_WIDGET(self->snapshot_bar));

    self->serial = add_terminal(self->serial_box);
    self->monitor = add_terminal(self->monitor_box);
    g_signal_connect(self->serial, "commit", G_CALLBACK(on_serial_commit), self);
    g_signal_connect(self->monitor, "commit", G_CALLBACK(on_monitor_commit), self);
    g_signal_connect(self->serial, "key-press-event", G_CALLBACK(on_key_press), self);
    g_signal_connect(self->monitor, "key-press-event", G_CALLBACK(on_key_press), self);
    feed_text(self->monitor, _("Ferry monitor: type “help” for the commands.\n"));
    feed_text(self->monitor, MONITOR_PROMPT);
}

FerryConsoleWindow *
ferry_console_window_new(GtkApplication *app, FerryVmSession *session)
{
    return g_object_new(FERRY_TYPE_CONSOLE_WINDOW, "application", app, "session", session, NULL);
}

FerryVmSession *
ferry_console_window_get_session(FerryConsoleWindow *self)
{
    return self->session;
}

GtkWidget *
ferry_console_window_get_serial_terminal(FerryConsoleWindow *self)
{
    return GTK_WIDGET(self->serial);
}

GtkWidget *
ferry_console_window_get_monitor_terminal(FerryConsoleWindow *self)
{
    return GTK_WIDGET(self->monitor);
}

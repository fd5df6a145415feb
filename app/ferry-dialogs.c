/* ferry-dialogs.c: see ferry-dialogs.h. */
#include "ferry-dialogs.h"

#include <glib/gi18n.h>

typedef struct {
    FerryVmSession *session;
    gboolean force_off;
    gboolean commit;
    FerryVmSessionDone done;
    gpointer user_data;
} Ask;

static void
on_response(GtkDialog *dialog, int response, gpointer data)
{
    Ask *a = data;
    gtk_widget_destroy(GTK_WIDGET(dialog));
    if (response == GTK_RESPONSE_ACCEPT) {
        if (a->force_off)
            ferry_vm_session_force_off(a->session);
        else if (a->commit)
            ferry_vm_session_commit(a->session, a->done, a->user_data);
        else
            ferry_vm_session_discard(a->session, a->done, a->user_data);
    } else if (a->done) {
        /* Backed out: the caller hears of it (CANCELLED: no message to show). */
        g_autoptr(GError) cancelled = g_error_new_literal(FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_CANCELLED,
                                                          "Cancelled");
        a->done(a->session, cancelled, a->user_data);
    }
    g_object_unref(a->session);
    g_free(a);
}

static void
ask(GtkWindow *parent, Ask *a, const char *title, const char *text, const char *action, gboolean destructive)
{
    GtkWidget *dialog = gtk_message_dialog_new(parent, GTK_DIALOG_MODAL | GTK_DIALOG_DESTROY_WITH_PARENT,
                                               GTK_MESSAGE_QUESTION, GTK_BUTTONS_NONE, "%s", title);
    gtk_message_dialog_format_secondary_text(GTK_MESSAGE_DIALOG(dialog), "%s", text);
    gtk_dialog_add_button(GTK_DIALOG(dialog), _("_Cancel"), GTK_RESPONSE_CANCEL);
    GtkWidget *ok = gtk_dialog_add_button(GTK_DIALOG(dialog), action, GTK_RESPONSE_ACCEPT);
    gtk_style_context_add_class(gtk_widget_get_style_context(ok),
                                destructive ? GTK_STYLE_CLASS_DESTRUCTIVE_ACTION : GTK_STYLE_CLASS_SUGGESTED_ACTION);
    gtk_dialog_set_default_response(GTK_DIALOG(dialog), GTK_RESPONSE_CANCEL);
    g_signal_connect(dialog, "response", G_CALLBACK(on_response), a);
    gtk_widget_show(dialog);
}

void
ferry_ask_force_off(GtkWindow *parent, FerryVmSession *session)
{
    Ask *a = g_new0(Ask, 1);
    a->session = g_object_ref(session);
    a->force_off = TRUE;
    g_autofree char *title = g_strdup_printf(_("Force “%s” Off?"), ferry_vm_session_get_name(session));
    ask(parent, a, title,
        _("The virtual machine stops at once, as if its power cord were pulled. Unsaved work in it is lost."),
        _("_Force Off"), TRUE);
}

void
ferry_ask_disk_changes(GtkWindow *parent, FerryVmSession *session, gboolean commit,
                       FerryVmSessionDone done, gpointer user_data)
{
    Ask *a = g_new0(Ask, 1);
    a->session = g_object_ref(session);
    a->commit = commit;
    a->done = done;
    a->user_data = user_data;
    if (commit)
        ask(parent, a, _("Commit Changes to the Disks?"),
            _("The changes made since snapshot mode began are written into the disk images. This cannot be undone."),
            _("_Commit"), FALSE);
    else
        ask(parent, a, _("Discard Changes to the Disks?"),
            _("The changes made since snapshot mode began are lost, and the disks are as they were before. "
              "The running system may not expect its disks to change under it."),
            _("_Discard"), TRUE);
}

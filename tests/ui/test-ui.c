/* test-ui.c: the real Ferry windows under Xvfb, driven through their widgets
 * and actions: the library, the New VM assistant, the console with a real
 * RISC-V guest, drops, a library changed by ferryctl, engine errors.
 * Screenshots of each window go to $FERRY_BUILD_ROOT/tests/artifacts/. */
#include "ferry-application.h"
#include "ferry-library-window.h"
#include "ferry-console-window.h"
#include "ferry-new-vm-assistant.h"
#include "../lib/ferry-test-proc.h"

#include <signal.h>
#include <string.h>
#include <glib/gstdio.h>
#include <vte/vte.h>

static FerryApplication *app;
static FerryLibraryWindow *library;
static char *kernel, *initrd;

/* ---- helpers ----------------------------------------------------------------- */

static void
spin(guint ms)
{
    gint64 end = g_get_monotonic_time() + (gint64) ms * 1000;
    while (g_get_monotonic_time() < end)
        if (!g_main_context_iteration(NULL, FALSE))
            g_usleep(2000);
}

typedef gboolean (*Cond)(gpointer data);

static gboolean
wait_for(Cond cond, gpointer data, guint ms)
{
    gint64 end = g_get_monotonic_time() + (gint64) ms * 1000;
    while (!cond(data)) {
        if (g_get_monotonic_time() > end)
            return FALSE;
        if (!g_main_context_iteration(NULL, FALSE))
            g_usleep(5000);
    }
    return TRUE;
}

static void
screenshot(GtkWidget *window, const char *name)
{
    spin(300);
    GdkWindow *w = gtk_widget_get_window(window);
    g_assert_nonnull(w);
    GdkPixbuf *pb = gdk_pixbuf_get_from_window(w, 0, 0, gdk_window_get_width(w), gdk_window_get_height(w));
    g_assert_nonnull(pb);
    g_autofree char *dir = g_build_filename(g_getenv("FERRY_BUILD_ROOT"), "tests", "artifacts", NULL);
    g_mkdir_with_parents(dir, 0755);
    g_autofree char *file = g_strdup_printf("%s/%s.png", dir, name);
    g_assert_true(gdk_pixbuf_save(pb, file, "png", NULL, NULL));
    g_test_message("screenshot: %s", file);
    g_object_unref(pb);
}

static GtkWidget *
find_widget(GtkWidget *root, GType type, const char *label)
{
    if (G_TYPE_CHECK_INSTANCE_TYPE(root, type)) {
        if (!label)
            return root;
        if (GTK_IS_BUTTON(root) && g_strcmp0(gtk_button_get_label(GTK_BUTTON(root)), label) == 0)
            return root;
        if (GTK_IS_LABEL(root) && strstr(gtk_label_get_text(GTK_LABEL(root)), label))
            return root;
    }
    if (GTK_IS_CONTAINER(root)) {
        GList *children = gtk_container_get_children(GTK_CONTAINER(root));
        /* Header bars and dialogs keep some children internal: include them. */
        for (GList *l = children; l; l = l->next) {
            GtkWidget *hit = find_widget(l->data, type, label);
            if (hit) {
                g_list_free(children);
                return hit;
            }
        }
        g_list_free(children);
        if (GTK_IS_WINDOW(root) && gtk_window_get_titlebar(GTK_WINDOW(root)))
            return find_widget(gtk_window_get_titlebar(GTK_WINDOW(root)), type, label);
    }
    return NULL;
}

/* The first widget of exactly this type (a GtkSpinButton is a GtkEntry too). */
static GtkWidget *
find_exact(GtkWidget *root, GType type, int nth)
{
    GPtrArray *stack = g_ptr_array_new();
    GtkWidget *hit = NULL;
    g_ptr_array_add(stack, root);
    /* Breadth-first in child order, so "nth" follows the layout. */
    for (guint i = 0; i < stack->len && !hit; i++) {
        GtkWidget *w = stack->pdata[i];
        if (G_OBJECT_TYPE(w) == type && nth-- == 0) {
            hit = w;
            break;
        }
        if (GTK_IS_CONTAINER(w)) {
            GList *children = gtk_container_get_children(GTK_CONTAINER(w));
            if (GTK_IS_GRID(w))
                children = g_list_reverse(children);
            for (GList *l = children; l; l = l->next)
                g_ptr_array_add(stack, l->data);
            g_list_free(children);
        }
    }
    g_ptr_array_free(stack, TRUE);
    return hit;
}

static GtkWidget *
find_toplevel(GType type)
{
    GList *tops = gtk_window_list_toplevels();
    GtkWidget *hit = NULL;
    for (GList *l = tops; l; l = l->next)
        if (G_TYPE_CHECK_INSTANCE_TYPE(l->data, type) && gtk_widget_get_visible(l->data))
            hit = l->data;
    g_list_free(tops);
    return hit;
}

static gboolean
toplevel_shown(gpointer type)
{
    return find_toplevel(GPOINTER_TO_SIZE(type)) != NULL;
}

static GtkListBoxRow *
row_named(const char *name)
{
    GtkWidget *list = find_widget(GTK_WIDGET(library), GTK_TYPE_LIST_BOX, NULL);
    GList *rows = gtk_container_get_children(GTK_CONTAINER(list));
    GtkListBoxRow *hit = NULL;
    for (GList *l = rows; l; l = l->next) {
        GtkWidget *label = find_widget(l->data, GTK_TYPE_LABEL, name);
        if (label && !g_strcmp0(gtk_label_get_text(GTK_LABEL(label)), name))
            hit = l->data;
    }
    g_list_free(rows);
    return hit;
}

static gboolean
row_exists(gpointer name)
{
    return row_named(name) != NULL;
}

static const char *
info_bar_text(void)
{
    GtkWidget *bar = find_widget(GTK_WIDGET(library), GTK_TYPE_INFO_BAR, NULL);
    if (!gtk_info_bar_get_revealed(GTK_INFO_BAR(bar)))
        return NULL;
    GtkWidget *label = find_widget(bar, GTK_TYPE_LABEL, NULL);
    return gtk_label_get_text(GTK_LABEL(label));
}

static gboolean
info_bar_has(gpointer text)
{
    const char *t = info_bar_text();
    return t && strstr(t, text);
}

static char *
ferryctl_out(const char *const *args)
{
    GPtrArray *argv = g_ptr_array_new();
    g_ptr_array_add(argv, (char *) ferry_test_ferryctl());
    for (guint i = 0; args[i]; i++)
        g_ptr_array_add(argv, (char *) args[i]);
    g_ptr_array_add(argv, NULL);
    char *out = NULL;
    int rc = ferry_test_run((const char *const *) argv->pdata, NULL, 30000, &out, NULL);
    g_assert_cmpint(rc, ==, 0);
    g_ptr_array_free(argv, TRUE);
    return out;
}

/* ---- tests --------------------------------------------------------------------- */

static void
test_empty_library(void)
{
    GtkWidget *stack = find_widget(GTK_WIDGET(library), GTK_TYPE_STACK, NULL);
    g_assert_cmpstr(gtk_stack_get_visible_child_name(GTK_STACK(stack)), ==, "empty");
    g_assert_nonnull(find_widget(GTK_WIDGET(library), GTK_TYPE_LABEL, "Drop an ISO or disk image here"));
    screenshot(GTK_WIDGET(library), "library-empty");
}

static void
test_wizard_creates_vm(void)
{
    ferry_library_window_new_vm(library, NULL);
    g_assert_true(wait_for(toplevel_shown, GSIZE_TO_POINTER(FERRY_TYPE_NEW_VM_ASSISTANT), 5000));
    GtkWidget *assistant = find_toplevel(FERRY_TYPE_NEW_VM_ASSISTANT);
    GtkAssistant *a = GTK_ASSISTANT(assistant);

    /* The first page is incomplete until a source is chosen. */
    g_assert_false(gtk_assistant_get_page_complete(a, gtk_assistant_get_nth_page(a, 0)));
    ferry_new_vm_assistant_set_kernel(FERRY_NEW_VM_ASSISTANT(assistant), kernel, initrd,
                                      "console=ttyS0 guest_mode=shell");
    spin(200);
    /* The kernel says RISC-V: the architecture follows it. */
    GtkWidget *combo = find_widget(assistant, GTK_TYPE_COMBO_BOX_TEXT, NULL);
    g_assert_cmpstr(gtk_combo_box_get_active_id(GTK_COMBO_BOX(combo)), ==, "riscv64");
    g_assert_true(gtk_assistant_get_page_complete(a, gtk_assistant_get_nth_page(a, 0)));
    screenshot(assistant, "wizard-source");

    gtk_assistant_next_page(a);
    spin(200);
    GtkWidget *page = gtk_assistant_get_nth_page(a, 1);
    GtkWidget *name = find_exact(page, GTK_TYPE_ENTRY, 0);
    gtk_entry_set_text(GTK_ENTRY(name), "");
    spin(100);
    g_assert_false(gtk_assistant_get_page_complete(a, page));     /* inline: a name is needed */
    gtk_entry_set_text(GTK_ENTRY(name), "Tiny RISC-V");
    GtkWidget *spin_mem = find_exact(page, GTK_TYPE_SPIN_BUTTON, 0);
    gtk_spin_button_set_value(GTK_SPIN_BUTTON(spin_mem), 256);
    spin(100);
    g_assert_true(gtk_assistant_get_page_complete(a, page));
    screenshot(assistant, "wizard-hardware");

    gtk_assistant_next_page(a);
    spin(200);
    GtkWidget *summary = gtk_assistant_get_nth_page(a, 2);
    g_assert_nonnull(strstr(gtk_label_get_text(GTK_LABEL(summary)), "Tiny RISC-V"));
    g_assert_nonnull(strstr(gtk_label_get_text(GTK_LABEL(summary)), "RISC-V 64"));
    screenshot(assistant, "wizard-summary");
    /* Apply, as the header bar's button does. */
    g_signal_emit_by_name(a, "apply");
    g_signal_emit_by_name(a, "close");
    g_assert_true(wait_for(row_exists, "Tiny RISC-V", 5000));

    /* Another program sees it at once. */
    const char *args[] = { "list", "--json", NULL };
    g_autofree char *json = ferryctl_out(args);
    g_assert_nonnull(strstr(json, "\"Tiny RISC-V\""));
    g_assert_nonnull(strstr(json, "riscv64"));
    screenshot(GTK_WIDGET(library), "library-one-vm");
}

static FerryConsoleWindow *console;

static gboolean
vte_has(gpointer text)
{
    VteTerminal *t = VTE_TERMINAL(ferry_console_window_get_serial_terminal(console));
    g_autofree char *all = vte_terminal_get_text_range(t, 0, 0, vte_terminal_get_row_count(t) + 10000, 200, NULL, NULL, NULL);
    if (!all)
        return FALSE;
    return strstr(all, text) != NULL;
}

static gboolean
session_state_is(gpointer state)
{
    return (int) ferry_vm_session_get_state(ferry_console_window_get_session(console)) == GPOINTER_TO_INT(state);
}

static void
test_console_runs_guest(void)
{
    GtkListBoxRow *row = row_named("Tiny RISC-V");
    g_assert_nonnull(row);
    GtkWidget *list = find_widget(GTK_WIDGET(library), GTK_TYPE_LIST_BOX, NULL);
    gtk_list_box_select_row(GTK_LIST_BOX(list), row);
    g_action_group_activate_action(G_ACTION_GROUP(library), "start", NULL);
    g_assert_true(wait_for(toplevel_shown, GSIZE_TO_POINTER(FERRY_TYPE_CONSOLE_WINDOW), 5000));
    console = FERRY_CONSOLE_WINDOW(find_toplevel(FERRY_TYPE_CONSOLE_WINDOW));

    /* The serial marker reaches the terminal. */
    g_assert_true(wait_for(vte_has, "GUEST-SHELL", 180000));
    VteTerminal *t = VTE_TERMINAL(ferry_console_window_get_serial_terminal(console));
    /* Typing goes to the guest's shell, its answer comes back. */
    vte_terminal_feed_child(t, "echo answer-$((6*7))\r", -1);
    g_assert_true(wait_for(vte_has, "answer-42", 30000));
    screenshot(GTK_WIDGET(console), "console-shell");
    g_assert_true(info_bar_text() == NULL || !strstr(info_bar_text(), "Tiny"));
    screenshot(GTK_WIDGET(library), "library-running");

    /* Pause and resume through the window's action. */
    g_action_group_activate_action(G_ACTION_GROUP(console), "pause", NULL);
    g_assert_true(wait_for(session_state_is, GINT_TO_POINTER(FERRY_VM_STATE_PAUSED), 10000));
    GtkHeaderBar *hb = GTK_HEADER_BAR(gtk_window_get_titlebar(GTK_WINDOW(console)));
    g_assert_cmpstr(gtk_header_bar_get_subtitle(hb), ==, "Paused");
    screenshot(GTK_WIDGET(console), "console-paused");
    g_action_group_activate_action(G_ACTION_GROUP(console), "pause", NULL);
    g_assert_true(wait_for(session_state_is, GINT_TO_POINTER(FERRY_VM_STATE_RUNNING), 10000));
    vte_terminal_feed_child(t, "echo still-$((2+3))\r", -1);
    g_assert_true(wait_for(vte_has, "still-5", 30000));

    /* The monitor tab answers too. */
    VteTerminal *m = VTE_TERMINAL(ferry_console_window_get_monitor_terminal(console));
    vte_terminal_feed_child(m, "info status\r", -1);
    spin(500);
    g_autofree char *mon = vte_terminal_get_text_range(m, 0, 0, 100, 200, NULL, NULL, NULL);
    g_assert_nonnull(strstr(mon, "VM status: running"));

    /* Shut Down presses the power button; the guest powers off. */
    for (int i = 0; i < 15 && !session_state_is(GINT_TO_POINTER(FERRY_VM_STATE_STOPPED)); i++) {
        g_action_group_activate_action(G_ACTION_GROUP(console), "shutdown", NULL);
        wait_for(session_state_is, GINT_TO_POINTER(FERRY_VM_STATE_STOPPED), 2000);
    }
    g_assert_true(session_state_is(GINT_TO_POINTER(FERRY_VM_STATE_STOPPED)));
    g_assert_true(wait_for(vte_has, "GUEST-POWEROFF", 5000));
    gtk_widget_destroy(GTK_WIDGET(console));
    console = NULL;
}

static gboolean
row_state_has(gpointer data)
{
    gpointer *pair = data;
    GtkListBoxRow *row = row_named(pair[0]);
    if (!row)
        return FALSE;
    GtkWidget *box = gtk_bin_get_child(GTK_BIN(row));
    GList *children = gtk_container_get_children(GTK_CONTAINER(box));
    gboolean hit = FALSE;
    for (GList *l = children; l; l = l->next)
        if (GTK_IS_LABEL(l->data) && strstr(gtk_label_get_text(l->data), pair[1]))
            hit = TRUE;
    g_list_free(children);
    return hit;
}

static void
test_library_follows_ferryctl(void)
{
    const char *args[] = { "create", "made-by-ferryctl", "--arch", "riscv64", "-m", "128M", NULL };
    g_autofree char *out = ferryctl_out(args);
    /* No polling timer: the file monitor and PRAGMA data_version. */
    g_assert_true(wait_for(row_exists, "made-by-ferryctl", 10000));

    /* Run it in ferryctl: the row says so, and says "Off" once ferryctl is killed. */
    const char *run[] = { ferry_test_ferryctl(), "run", "made-by-ferryctl", "--serial", "none", NULL };
    g_autoptr(GError) error = NULL;
    FerryTestProc *p = ferry_test_proc_spawn(run, &error);
    g_assert_no_error(error);
    gpointer running[2] = { (gpointer) "made-by-ferryctl", (gpointer) "Running in ferryctl (pid" };
    g_assert_true(wait_for(row_state_has, running, 20000));
    screenshot(GTK_WIDGET(library), "library-running-elsewhere");
    ferry_test_proc_kill(p, SIGKILL);
    ferry_test_proc_wait(p, 10000);
    ferry_test_proc_free(p);
    gpointer off[2] = { (gpointer) "made-by-ferryctl", (gpointer) "Off" };
    g_assert_true(wait_for(row_state_has, off, 10000));

    const char *del[] = { "delete", "made-by-ferryctl", "--yes", NULL };
    g_autofree char *out2 = ferryctl_out(del);
    gint64 end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (row_named("made-by-ferryctl") && g_get_monotonic_time() < end)
        spin(50);
    g_assert_null(row_named("made-by-ferryctl"));
}

static void
test_drops(void)
{
    g_autofree char *dir = g_dir_make_tmp("ferry-drop-XXXXXX", NULL);
    g_autofree char *qcow = g_build_filename(dir, "data.qcow2", NULL);
    g_autofree char *bogus = g_build_filename(dir, "notes.txt", NULL);
    const char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", qcow, "64M", NULL };
    if (!g_find_program_in_path("qemu-img")) {
        g_test_skip("qemu-img (qemu-utils) is needed to make the dropped image");
        return;
    }
    g_assert_cmpint(ferry_test_run(argv, NULL, 20000, NULL, NULL), ==, 0);
    g_assert_true(g_file_set_contents(bogus, "just some text\n", -1, NULL));

    /* A file Ferry cannot use: a banner names it and says why. */
    g_autoptr(GFile) bf = g_file_new_for_path(bogus);
    ferry_library_window_open_file(library, bf, NULL);
    g_assert_true(wait_for(info_bar_has, "notes.txt", 2000));
    g_assert_true(info_bar_has("not a disk image, an installation image (ISO) or a Linux kernel"));
    screenshot(GTK_WIDGET(library), "library-bogus-drop");

    /* A qcow2 dropped on a VM: asked how to attach, then it is a hard disk. */
    GtkListBoxRow *row = row_named("Tiny RISC-V");
    const char *uuid = ferry_library_window_row_uuid(row);
    g_assert_nonnull(uuid);
    g_autoptr(GFile) qf = g_file_new_for_path(qcow);
    ferry_library_window_open_file(library, qf, uuid);
    g_assert_true(wait_for(toplevel_shown, GSIZE_TO_POINTER(GTK_TYPE_MESSAGE_DIALOG), 2000));
    GtkWidget *dialog = find_toplevel(GTK_TYPE_MESSAGE_DIALOG);
    screenshot(dialog, "drop-attach-dialog");
    gtk_dialog_response(GTK_DIALOG(dialog), 0 /* FERRY_DRIVE_DISK */);
    spin(300);
    const char *args[] = { "show", "Tiny RISC-V", NULL };
    g_autofree char *show = ferryctl_out(args);
    g_assert_nonnull(strstr(show, "data.qcow2"));

    /* A qcow2 dropped on the library itself opens the assistant filled in. */
    ferry_library_window_open_file(library, qf, NULL);
    g_assert_true(wait_for(toplevel_shown, GSIZE_TO_POINTER(FERRY_TYPE_NEW_VM_ASSISTANT), 2000));
    GtkWidget *assistant = find_toplevel(FERRY_TYPE_NEW_VM_ASSISTANT);
    GtkAssistant *a = GTK_ASSISTANT(assistant);
    g_assert_true(gtk_assistant_get_page_complete(a, gtk_assistant_get_nth_page(a, 0)));
    GtkWidget *disk_radio = find_widget(assistant, GTK_TYPE_RADIO_BUTTON, "Use an _existing disk image");
    g_assert_true(gtk_toggle_button_get_active(GTK_TOGGLE_BUTTON(disk_radio)));
    screenshot(assistant, "wizard-from-drop");
    g_signal_emit_by_name(a, "cancel");
    spin(200);
}

static void
test_engine_error_banner(void)
{
    g_autofree char *dir = g_dir_make_tmp("ferry-gone-XXXXXX", NULL);
    g_autofree char *k = g_build_filename(dir, "Image", NULL);
    g_autofree char *data = NULL;
    gsize len;
    g_assert_true(g_file_get_contents(kernel, &data, &len, NULL));
    g_assert_true(g_file_set_contents(k, data, len, NULL));
    const char *args[] = { "create", "loses-its-kernel", "--arch", "riscv64", "-m", "128M", "--kernel", k, NULL };
    g_autofree char *out = ferryctl_out(args);
    g_assert_true(wait_for(row_exists, "loses-its-kernel", 10000));
    g_unlink(k);

    GtkWidget *list = find_widget(GTK_WIDGET(library), GTK_TYPE_LIST_BOX, NULL);
    gtk_list_box_select_row(GTK_LIST_BOX(list), row_named("loses-its-kernel"));
    g_action_group_activate_action(G_ACTION_GROUP(library), "start", NULL);
    g_assert_true(wait_for(info_bar_has, "Cannot open kernel", 5000));
    g_assert_true(info_bar_has(k));
    screenshot(GTK_WIDGET(library), "library-engine-error");
    /* The app is still there and usable. */
    g_assert_true(gtk_widget_get_visible(GTK_WIDGET(library)));
    g_rmdir(dir);
}

static gboolean
label_has(gpointer data)
{
    gpointer *pair = data;
    return strstr(gtk_label_get_text(GTK_LABEL(pair[0])), pair[1]) != NULL;
}

static void
test_iso_os_detection(void)
{
    g_autofree char *dir = g_dir_make_tmp("ferry-iso-XXXXXX", NULL);
    g_autofree char *root = g_build_filename(dir, "root", NULL);
    g_autofree char *boot = g_build_filename(root, "boot.img", NULL);
    g_autofree char *iso = g_build_filename(dir, "debian-11.7.0-amd64-netinst.iso", NULL);
    g_autofree guint8 *zeros = g_malloc0(2048);

    if (!g_find_program_in_path("genisoimage")) {
        g_test_skip("genisoimage is needed to make an installation image");
        return;
    }
    g_mkdir_with_parents(root, 0755);
    g_assert_true(g_file_set_contents(boot, (char *) zeros, 2048, NULL));
    /* A bootable ISO with Debian 11's volume label: what osinfo-db matches. */
    const char *argv[] = { "genisoimage", "-quiet", "-V", "Debian 11.7.0 amd64 n", "-b", "boot.img",
                           "-no-emul-boot", "-boot-load-size", "4", "-o", iso, root, NULL };
    g_assert_cmpint(ferry_test_run(argv, NULL, 30000, NULL, NULL), ==, 0);

    g_autoptr(GFile) f = g_file_new_for_path(iso);
    ferry_library_window_open_file(library, f, NULL);
    g_assert_true(wait_for(toplevel_shown, GSIZE_TO_POINTER(FERRY_TYPE_NEW_VM_ASSISTANT), 5000));
    GtkWidget *assistant = find_toplevel(FERRY_TYPE_NEW_VM_ASSISTANT);
    GtkAssistant *a = GTK_ASSISTANT(assistant);
    GtkWidget *hint = find_widget(assistant, GTK_TYPE_LABEL, "media");
    if (!hint)
        hint = find_widget(assistant, GTK_TYPE_LABEL, "Detected");
    g_assert_nonnull(hint);
    gpointer pair[2] = { hint, (gpointer) "Detected Debian 11." };
    g_assert_true(wait_for(label_has, pair, 20000));
    screenshot(assistant, "wizard-iso-detected");
    gtk_assistant_next_page(a);
    spin(200);
    GtkWidget *page = gtk_assistant_get_nth_page(a, 1);
    /* osinfo-db's recommendation for Debian 11: 1 GiB, a 20 GiB disk. */
    g_assert_cmpstr(gtk_entry_get_text(GTK_ENTRY(find_exact(page, GTK_TYPE_ENTRY, 0))), ==, "Debian 11");
    g_assert_cmpint(gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(find_exact(page, GTK_TYPE_SPIN_BUTTON, 0))), ==, 1024);
    g_assert_true(gtk_toggle_button_get_active(GTK_TOGGLE_BUTTON(find_exact(page, GTK_TYPE_CHECK_BUTTON, 0))));
    g_assert_cmpint(gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(find_exact(page, GTK_TYPE_SPIN_BUTTON, 2))), ==, 20);
    screenshot(assistant, "wizard-iso-hardware");

    /* Create it: the new disk is a qcow2 that qemu-img accepts. */
    gtk_assistant_next_page(a);
    spin(200);
    g_signal_emit_by_name(a, "apply");
    g_signal_emit_by_name(a, "close");
    g_assert_true(wait_for(row_exists, "Debian 11", 10000));
    const char *show[] = { "show", "Debian 11", "--json", NULL };
    g_autofree char *json = ferryctl_out(show);
    g_assert_nonnull(strstr(json, "debian11"));                 /* the OS id is kept */
    const char *disk_key = strstr(json, "disk0.qcow2");
    g_assert_nonnull(disk_key);
    const char *start = disk_key;
    while (start > json && *start != '"')
        start--;
    g_autofree char *disk = g_strndup(start + 1, disk_key + strlen("disk0.qcow2") - start - 1);
    if (g_find_program_in_path("qemu-img")) {
        const char *check[] = { "qemu-img", "check", disk, NULL };
        g_autofree char *out = NULL;
        g_assert_cmpint(ferry_test_run(check, NULL, 20000, &out, NULL), ==, 0);
        g_assert_nonnull(strstr(out, "No errors were found"));
        const char *info[] = { "qemu-img", "info", "--output=json", disk, NULL };
        g_autofree char *info_out = NULL;
        g_assert_cmpint(ferry_test_run(info, NULL, 20000, &info_out, NULL), ==, 0);
        g_assert_nonnull(strstr(info_out, "\"virtual-size\": 21474836480"));
    }
}

static void
test_settings_dialog(void)
{
    GtkWidget *list = find_widget(GTK_WIDGET(library), GTK_TYPE_LIST_BOX, NULL);
    gtk_list_box_select_row(GTK_LIST_BOX(list), row_named("Tiny RISC-V"));
    g_action_group_activate_action(G_ACTION_GROUP(library), "settings", NULL);
    g_assert_true(wait_for(toplevel_shown, GSIZE_TO_POINTER(g_type_from_name("FerryHardwareDialog")), 5000));
    GtkWidget *dialog = find_toplevel(g_type_from_name("FerryHardwareDialog"));
    screenshot(dialog, "settings-dialog");

    /* Memory 384 MiB, snapshot mode on: saved, and ferryctl sees it. */
    gtk_spin_button_set_value(GTK_SPIN_BUTTON(find_exact(dialog, GTK_TYPE_SPIN_BUTTON, 0)), 384);
    gtk_switch_set_active(GTK_SWITCH(find_exact(dialog, GTK_TYPE_SWITCH, 0)), TRUE);
    gtk_dialog_response(GTK_DIALOG(dialog), GTK_RESPONSE_OK);
    spin(300);
    g_assert_null(find_toplevel(g_type_from_name("FerryHardwareDialog")));
    const char *show[] = { "show", "Tiny RISC-V", "--json", NULL };
    g_autofree char *json = ferryctl_out(show);
    g_assert_nonnull(strstr(json, "402653184"));             /* 384 MiB in bytes */

    /* Open it again, let ferryctl change the VM meanwhile: Save refuses and says why. */
    g_action_group_activate_action(G_ACTION_GROUP(library), "settings", NULL);
    g_assert_true(wait_for(toplevel_shown, GSIZE_TO_POINTER(g_type_from_name("FerryHardwareDialog")), 5000));
    dialog = find_toplevel(g_type_from_name("FerryHardwareDialog"));
    const char *edit[] = { "edit", "Tiny RISC-V", "vcpus=3", NULL };
    g_autofree char *out = ferryctl_out(edit);
    gtk_spin_button_set_value(GTK_SPIN_BUTTON(find_exact(dialog, GTK_TYPE_SPIN_BUTTON, 0)), 320);
    gtk_dialog_response(GTK_DIALOG(dialog), GTK_RESPONSE_OK);
    spin(300);
    g_assert_nonnull(find_toplevel(g_type_from_name("FerryHardwareDialog")));     /* still open */
    g_assert_nonnull(find_widget(dialog, GTK_TYPE_LABEL, "Another program changed"));
    screenshot(dialog, "settings-conflict");
    gtk_dialog_response(GTK_DIALOG(dialog), GTK_RESPONSE_CANCEL);
    spin(200);
    g_autofree char *json2 = ferryctl_out(show);
    g_assert_nonnull(strstr(json2, "402653184"));            /* the UI did not undo ferryctl's edit */
}

static void
test_quit_asks_while_running(void)
{
    const char *create[] = { "create", "Quit Test", "--arch", "riscv64", "-m", "256M", "--kernel", kernel,
                             "--initrd", initrd, "--append", "console=ttyS0 guest_mode=shell", NULL };
    g_autofree char *created = ferryctl_out(create);
    g_assert_true(wait_for(row_exists, "Quit Test", 10000));
    GtkWidget *list = find_widget(GTK_WIDGET(library), GTK_TYPE_LIST_BOX, NULL);
    gtk_list_box_select_row(GTK_LIST_BOX(list), row_named("Quit Test"));
    g_action_group_activate_action(G_ACTION_GROUP(library), "start", NULL);
    g_assert_true(wait_for(toplevel_shown, GSIZE_TO_POINTER(FERRY_TYPE_CONSOLE_WINDOW), 5000));
    console = FERRY_CONSOLE_WINDOW(find_toplevel(FERRY_TYPE_CONSOLE_WINDOW));
    g_assert_true(wait_for(vte_has, "GUEST-SHELL", 180000));

    /* Another program may not start it while it runs here. */
    const char *run[] = { ferry_test_ferryctl(), "run", "Quit Test", NULL };
    g_autofree char *err = NULL;
    g_assert_cmpint(ferry_test_run(run, NULL, 20000, NULL, &err), ==, 2);
    g_assert_nonnull(strstr(err, "Ferry"));

    g_action_group_activate_action(G_ACTION_GROUP(app), "quit", NULL);
    g_assert_true(wait_for(toplevel_shown, GSIZE_TO_POINTER(GTK_TYPE_MESSAGE_DIALOG), 5000));
    GtkWidget *dialog = find_toplevel(GTK_TYPE_MESSAGE_DIALOG);
    g_assert_nonnull(find_widget(dialog, GTK_TYPE_LABEL, "A Virtual Machine Is Running"));
    screenshot(dialog, "quit-confirmation");
    gtk_dialog_response(GTK_DIALOG(dialog), GTK_RESPONSE_CANCEL);   /* Cancel: nothing happens */
    spin(300);
    g_assert_true(session_state_is(GINT_TO_POINTER(FERRY_VM_STATE_RUNNING)));
    /* Force it off from the console instead (the same the dialog's Force Off does). */
    ferry_vm_session_force_off(ferry_console_window_get_session(console));
    g_assert_true(wait_for(session_state_is, GINT_TO_POINTER(FERRY_VM_STATE_STOPPED), 10000));
    gtk_widget_destroy(GTK_WIDGET(console));
    console = NULL;
}

static gboolean
pending_nonzero(gpointer session)
{
    ferry_vm_session_refresh_pending(session);
    spin(100);
    return ferry_vm_session_get_pending(session) > 0;
}

static gboolean
pending_zero(gpointer session)
{
    ferry_vm_session_refresh_pending(session);
    spin(100);
    return ferry_vm_session_get_pending(session) == 0;
}

static char *
file_sha256(const char *path)
{
    g_autofree char *data = NULL;
    gsize len;
    g_assert_true(g_file_get_contents(path, &data, &len, NULL));
    return g_compute_checksum_for_data(G_CHECKSUM_SHA256, (guchar *) data, len);
}

static gboolean
file_has(const char *path, const char *needle)
{
    g_autofree char *data = NULL;
    gsize len;
    g_assert_true(g_file_get_contents(path, &data, &len, NULL));
    return g_strstr_len(data, len, needle) != NULL || memmem(data, len, needle, strlen(needle)) != NULL;
}

static void
answer_snapshot_bar(int response)
{
    GtkWidget *bar = NULL;
    GPtrArray *stack = g_ptr_array_new();
    g_ptr_array_add(stack, console);
    for (guint i = 0; i < stack->len && !bar; i++) {
        GtkWidget *w = stack->pdata[i];
        if (GTK_IS_INFO_BAR(w) && gtk_info_bar_get_message_type(GTK_INFO_BAR(w)) == GTK_MESSAGE_INFO)
            bar = w;
        else if (GTK_IS_CONTAINER(w)) {
            GList *ch = gtk_container_get_children(GTK_CONTAINER(w));
            for (GList *l = ch; l; l = l->next)
                g_ptr_array_add(stack, l->data);
            g_list_free(ch);
        }
    }
    g_ptr_array_free(stack, TRUE);
    g_assert_nonnull(bar);
    g_assert_true(gtk_info_bar_get_revealed(GTK_INFO_BAR(bar)));
    gtk_info_bar_response(GTK_INFO_BAR(bar), response);     /* the button */
    g_assert_true(wait_for(toplevel_shown, GSIZE_TO_POINTER(GTK_TYPE_MESSAGE_DIALOG), 5000));
    GtkWidget *dialog = find_toplevel(GTK_TYPE_MESSAGE_DIALOG);
    screenshot(dialog, response == 1 ? "snapshot-commit-confirm" : "snapshot-discard-confirm");
    gtk_dialog_response(GTK_DIALOG(dialog), GTK_RESPONSE_ACCEPT);
}

static void
test_snapshot_mode(void)
{
    g_autofree char *dir = g_dir_make_tmp("ferry-snap-XXXXXX", NULL);
    g_autofree char *base = g_build_filename(dir, "base.img", NULL);
    g_autofree guint8 *zeros = g_malloc0(16 << 20);
    g_assert_true(g_file_set_contents(base, (char *) zeros, 16 << 20, NULL));
    g_autofree char *before = file_sha256(base);

    const char *create[] = { "create", "Snap Test", "--arch", "riscv64", "-m", "256M", "--kernel", kernel,
                             "--initrd", initrd, "--append", "console=ttyS0 guest_mode=shell",
                             "--disk", base, "--snapshot", NULL };
    g_autofree char *created = ferryctl_out(create);
    g_assert_true(wait_for(row_exists, "Snap Test", 10000));
    GtkWidget *list = find_widget(GTK_WIDGET(library), GTK_TYPE_LIST_BOX, NULL);
    gtk_list_box_select_row(GTK_LIST_BOX(list), row_named("Snap Test"));
    g_action_group_activate_action(G_ACTION_GROUP(library), "start", NULL);
    g_assert_true(wait_for(toplevel_shown, GSIZE_TO_POINTER(FERRY_TYPE_CONSOLE_WINDOW), 10000));
    console = FERRY_CONSOLE_WINDOW(find_toplevel(FERRY_TYPE_CONSOLE_WINDOW));
    FerryVmSession *session = ferry_console_window_get_session(console);
    g_assert_true(wait_for(vte_has, "GUEST-SHELL", 180000));
    VteTerminal *t = VTE_TERMINAL(ferry_console_window_get_serial_terminal(console));

    /* The guest writes: kept apart, pending shows, the base is untouched. */
    vte_terminal_feed_child(t, "printf FERRY-DISCARDED-DATA | dd of=/dev/vda bs=512 seek=8 conv=fsync; echo wrote-$((1+1))\r", -1);
    g_assert_true(wait_for(vte_has, "wrote-2", 30000));
    g_assert_true(wait_for(pending_nonzero, session, 10000));
    screenshot(GTK_WIDGET(console), "console-snapshot-pending");
    g_autofree char *during = file_sha256(base);
    g_assert_cmpstr(during, ==, before);

    /* Discard: the base stays as it was. */
    answer_snapshot_bar(2);
    g_assert_true(wait_for(pending_zero, session, 10000));
    g_autofree char *after_discard = file_sha256(base);
    g_assert_cmpstr(after_discard, ==, before);

    /* Write again and commit: the base gets it. */
    vte_terminal_feed_child(t, "printf FERRY-COMMITTED-DATA | dd of=/dev/vda bs=512 seek=16 conv=fsync; echo wrote-$((2+1))\r", -1);
    g_assert_true(wait_for(vte_has, "wrote-3", 30000));
    g_assert_true(wait_for(pending_nonzero, session, 10000));
    answer_snapshot_bar(1);
    g_assert_true(wait_for(pending_zero, session, 20000));
    g_assert_true(file_has(base, "FERRY-COMMITTED-DATA"));
    g_assert_false(file_has(base, "FERRY-DISCARDED-DATA"));

    ferry_vm_session_force_off(session);
    g_assert_true(wait_for(session_state_is, GINT_TO_POINTER(FERRY_VM_STATE_STOPPED), 10000));
    gtk_widget_destroy(GTK_WIDGET(console));
    console = NULL;
}

static void
start_snap_test_and_write(const char *marker)
{
    GtkWidget *list = find_widget(GTK_WIDGET(library), GTK_TYPE_LIST_BOX, NULL);
    gtk_list_box_select_row(GTK_LIST_BOX(list), row_named("Snap Test"));
    g_action_group_activate_action(G_ACTION_GROUP(library), "start", NULL);
}

static void
write_in_guest(const char *marker, int seek)
{
    g_assert_true(wait_for(toplevel_shown, GSIZE_TO_POINTER(FERRY_TYPE_CONSOLE_WINDOW), 10000));
    console = FERRY_CONSOLE_WINDOW(find_toplevel(FERRY_TYPE_CONSOLE_WINDOW));
    g_assert_true(wait_for(vte_has, "GUEST-SHELL", 180000));
    VteTerminal *t = VTE_TERMINAL(ferry_console_window_get_serial_terminal(console));
    g_autofree char *cmd = g_strdup_printf("printf %s | dd of=/dev/vda bs=512 seek=%d conv=fsync; echo done-%s\r",
                                           marker, seek, marker);
    g_autofree char *done = g_strdup_printf("done-%s", marker);
    vte_terminal_feed_child(t, cmd, -1);
    g_assert_true(wait_for(vte_has, done, 30000));
    FerryVmSession *session = ferry_console_window_get_session(console);
    g_assert_true(wait_for(pending_nonzero, session, 10000));
    ferry_vm_session_force_off(session);
    g_assert_true(wait_for(session_state_is, GINT_TO_POINTER(FERRY_VM_STATE_STOPPED), 10000));
    gtk_widget_destroy(GTK_WIDGET(console));
    console = NULL;
}

static void
test_snapshots_dialog_and_leftovers(void)
{
    GtkListBoxRow *row = row_named("Snap Test");
    g_assert_nonnull(row);
    const char *uuid = ferry_library_window_row_uuid(row);
    g_autofree char *base = NULL;
    {
        const char *show[] = { "show", "Snap Test", "--json", NULL };
        g_autofree char *json = ferryctl_out(show);
        const char *b = strstr(json, "base.img");
        g_assert_nonnull(b);
        const char *q = b;
        while (q > json && *q != '"')
            q--;
        base = g_strndup(q + 1, b + strlen("base.img") - q - 1);
    }
    g_autofree char *before = file_sha256(base);

    /* Written, then forced off: the row says changes are pending. */
    start_snap_test_and_write(NULL);
    write_in_guest("FERRY-LEFTOVER-ONE", 24);
    gpointer pending_row[2] = { (gpointer) "Snap Test", (gpointer) "of temporary changes" };
    g_assert_true(wait_for(row_state_has, pending_row, 10000));
    screenshot(GTK_WIDGET(library), "library-changes-pending");

    /* The Snapshots dialog discards them: the base is as it was. */
    GtkWidget *list = find_widget(GTK_WIDGET(library), GTK_TYPE_LIST_BOX, NULL);
    gtk_list_box_select_row(GTK_LIST_BOX(list), row);
    g_action_group_activate_action(G_ACTION_GROUP(library), "snapshots", NULL);
    g_assert_true(wait_for(toplevel_shown, GSIZE_TO_POINTER(g_type_from_name("FerrySnapshotDialog")), 5000));
    GtkWidget *dialog = find_toplevel(g_type_from_name("FerrySnapshotDialog"));
    GtkWidget *label = find_widget(dialog, GTK_TYPE_LABEL, "of changes are kept apart");
    if (!label) {
        gpointer pair[2] = { find_widget(dialog, GTK_TYPE_LABEL, "No changes"), (gpointer) "of changes are kept apart" };
        g_assert_nonnull(pair[0]);
        g_assert_true(wait_for(label_has, pair, 10000));
    }
    screenshot(dialog, "snapshots-dialog");
    gtk_button_clicked(GTK_BUTTON(find_widget(dialog, GTK_TYPE_BUTTON, "_Discard Changes…")));
    g_assert_true(wait_for(toplevel_shown, GSIZE_TO_POINTER(GTK_TYPE_MESSAGE_DIALOG), 5000));
    gtk_dialog_response(GTK_DIALOG(find_toplevel(GTK_TYPE_MESSAGE_DIALOG)), GTK_RESPONSE_ACCEPT);
    FerryVmSession *session = ferry_application_lookup_session(app, uuid);
    g_assert_true(wait_for(pending_zero, session, 10000));
    gtk_dialog_response(GTK_DIALOG(dialog), GTK_RESPONSE_CLOSE);
    spin(200);
    g_autofree char *after = file_sha256(base);
    g_assert_cmpstr(after, ==, before);

    /* Written and forced off again: the next start offers the changes; Commit. */
    start_snap_test_and_write(NULL);
    write_in_guest("FERRY-LEFTOVER-TWO", 32);
    gtk_list_box_select_row(GTK_LIST_BOX(list), row_named("Snap Test"));
    g_action_group_activate_action(G_ACTION_GROUP(library), "start", NULL);
    g_assert_true(wait_for(toplevel_shown, GSIZE_TO_POINTER(GTK_TYPE_MESSAGE_DIALOG), 10000));
    GtkWidget *offer = find_toplevel(GTK_TYPE_MESSAGE_DIALOG);
    g_assert_nonnull(find_widget(offer, GTK_TYPE_LABEL, "Has Changes From an Earlier Run"));
    screenshot(offer, "start-offers-leftovers");
    gtk_dialog_response(GTK_DIALOG(offer), 2 /* commit */);
    g_assert_true(wait_for(toplevel_shown, GSIZE_TO_POINTER(FERRY_TYPE_CONSOLE_WINDOW), 20000));
    console = FERRY_CONSOLE_WINDOW(find_toplevel(FERRY_TYPE_CONSOLE_WINDOW));
    g_assert_true(file_has(base, "FERRY-LEFTOVER-TWO"));
    g_assert_false(file_has(base, "FERRY-LEFTOVER-ONE"));
    g_assert_true(wait_for(vte_has, "GUEST-SHELL", 180000));
    ferry_vm_session_force_off(ferry_console_window_get_session(console));
    g_assert_true(wait_for(session_state_is, GINT_TO_POINTER(FERRY_VM_STATE_STOPPED), 10000));
    gtk_widget_destroy(GTK_WIDGET(console));
    console = NULL;
}

int
main(int argc, char **argv)
{
    /* Settings in memory: the test must not touch (or need) dconf. */
    g_setenv("GSETTINGS_BACKEND", "memory", TRUE);
    /* Private user folders, but the system's data folders (icons, schemas):
     * G_TEST_OPTION_ISOLATE_DIRS would hide the icon theme from GTK. */
    g_autofree char *home = g_dir_make_tmp("ferry-ui-XXXXXX", NULL);
    static const char *const vars[] = { "HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME",
                                        "XDG_STATE_HOME", "XDG_RUNTIME_DIR" };
    for (guint i = 0; i < G_N_ELEMENTS(vars); i++) {
        g_autofree char *d = g_build_filename(home, vars[i], NULL);
        g_mkdir_with_parents(d, 0700);
        g_setenv(vars[i], d, TRUE);
    }
    g_test_init(&argc, &argv, NULL);
    if (!g_getenv("DISPLAY")) {
        g_test_message("no DISPLAY: the UI tests run under Xvfb (meson runs them with xvfb-run)");
        return 77;
    }
    gtk_init(&argc, &argv);

    const char *guests = g_getenv("FERRY_GUEST_DIR");
    kernel = guests ? g_build_filename(guests, "riscv64", "Image", NULL) : NULL;
    initrd = guests ? g_build_filename(guests, "riscv64", "initramfs.cpio.gz", NULL) : NULL;
    if (!kernel || !g_file_test(kernel, G_FILE_TEST_EXISTS)) {
        if (g_getenv("CI")) {
            g_printerr("FERRY_GUEST_DIR has no riscv64 guest: run tools/setup.sh test\n");
            return 1;
        }
        g_clear_pointer(&kernel, g_free);
        g_clear_pointer(&initrd, g_free);
    }
    g_autofree char *lib = g_build_filename(g_get_user_data_dir(), "ui-library.db", NULL);
    g_setenv("FERRY_LIBRARY", lib, TRUE);

    app = ferry_application_new();
    g_application_set_flags(G_APPLICATION(app), G_APPLICATION_NON_UNIQUE | G_APPLICATION_HANDLES_OPEN);
    g_assert_true(g_application_register(G_APPLICATION(app), NULL, NULL));
    g_application_activate(G_APPLICATION(app));
    g_assert_true(wait_for(toplevel_shown, GSIZE_TO_POINTER(FERRY_TYPE_LIBRARY_WINDOW), 5000));
    library = FERRY_LIBRARY_WINDOW(find_toplevel(FERRY_TYPE_LIBRARY_WINDOW));

    g_test_add_func("/ui/1-library-empty", test_empty_library);
    if (!kernel)
        g_test_message("FERRY_GUEST_DIR not set: the tests that boot a guest are left out");
    if (kernel && initrd) {
        g_test_add_func("/ui/2-wizard-creates-riscv-vm", test_wizard_creates_vm);
        g_test_add_func("/ui/3-console-runs-guest", test_console_runs_guest);
        g_test_add_func("/ui/4-library-follows-ferryctl", test_library_follows_ferryctl);
        g_test_add_func("/ui/5-drops", test_drops);
        g_test_add_func("/ui/6-engine-error-banner", test_engine_error_banner);
        g_test_add_func("/ui/7-iso-os-detection", test_iso_os_detection);
        g_test_add_func("/ui/8-settings-dialog", test_settings_dialog);
        g_test_add_func("/ui/9-quit-asks-while-running", test_quit_asks_while_running);
        g_test_add_func("/ui/10-snapshot-mode", test_snapshot_mode);
        g_test_add_func("/ui/11-snapshots-dialog-and-leftovers", test_snapshots_dialog_and_leftovers);
    }
    int rc = g_test_run();
    g_free(kernel);
    g_free(initrd);
    return rc;
}

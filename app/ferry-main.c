/* ferry-main.c: the Ferry desktop app. */
#include "ferry-application.h"

#include <glib/gi18n.h>
#include <locale.h>
#include <signal.h>

extern gint64 ferry_main_start_us;   /* ferry-library-window.c */

int
main(int argc, char **argv)
{
    ferry_main_start_us = g_get_monotonic_time();
    /* As in ferryctl: a file-size limit hit by an image write is an I/O
     * error for that disk (EFBIG), not the end of every running VM. */
    signal(SIGXFSZ, SIG_IGN);
    setlocale(LC_ALL, "");
    bindtextdomain(GETTEXT_PACKAGE, FERRY_LOCALEDIR);
    bind_textdomain_codeset(GETTEXT_PACKAGE, "UTF-8");
    textdomain(GETTEXT_PACKAGE);
    g_set_application_name(_("Ferry"));

    g_autoptr(FerryApplication) app = ferry_application_new();
    return g_application_run(G_APPLICATION(app), argc, argv);
}

/* ferryctl-run.c: runs one VM in this process with its serial console and
 * monitor on the terminal; shared by `ferryctl run` (flags) and `ferryctl run
 * NAME` (a stored VM). Exit status: see ferryctl-run.h. */
#include "ferryctl-run.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <glib-unix.h>

#define CTRL_A 0x01

typedef struct {
    FerryVm *vm;
    GMainLoop *loop;
    int exit_code;
    gboolean serial_on_stdio;
    gboolean monitor_on_stdio;
    gboolean in_monitor;          /* stdio shows the monitor (Ctrl-A c) */
    gboolean saw_ctrl_a;
    GString *line;                /* monitor line being typed */
    gboolean tty_raw;
    struct termios saved_tio;
    gboolean stdin_done;
    guint stdin_watch;
} Run;

static void
restore_tty(Run *r)
{
    if (r->tty_raw) {
        tcsetattr(STDIN_FILENO, TCSANOW, &r->saved_tio);
        r->tty_raw = FALSE;
    }
}

static void
set_tty_raw(Run *r)
{
    struct termios tio;
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &r->saved_tio) < 0)
        return;
    tio = r->saved_tio;
    /* Like QEMU's -serial stdio: keys (Ctrl-C too) go to the guest; output
     * processing stays on so "\n" still returns the carriage. */
    tio.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    tio.c_lflag &= ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    tio.c_cflag |= CS8;
    tio.c_cc[VMIN] = 1;
    tio.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSANOW, &tio) == 0)
        r->tty_raw = TRUE;
}

static void
write_all(int fd, const void *data, gsize len)
{
    const guint8 *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        p += n;
        len -= n;
    }
}

static void
print_prompt(Run *r)
{
    static const char prompt[] = "(ferry) ";
    write_all(STDOUT_FILENO, prompt, sizeof(prompt) - 1);
}

static void
on_state(FerryVm *vm, FerryVmState state, gpointer user_data)
{
    Run *r = user_data;
    if (state != FERRY_VM_STATE_STOPPED)
        return;
    switch (ferry_vm_get_stop_reason(vm)) {
    case FERRY_VM_STOP_ERROR:
        r->exit_code = FERRYCTL_EXIT_GUEST_ERROR;
        break;
    default:
        if (r->exit_code < 0)
            r->exit_code = 0;
        break;
    }
    g_main_loop_quit(r->loop);
}

static void
on_serial(FerryVm *vm, guint port, GBytes *data, gpointer user_data)
{
    Run *r = user_data;
    gsize len;
    const guint8 *p = g_bytes_get_data(data, &len);
    if (r->serial_on_stdio)
        write_all(STDOUT_FILENO, p, len);
}

static void
on_failed(FerryVm *vm, const GError *error, gpointer user_data)
{
    Run *r = user_data;
    restore_tty(r);
    g_printerr("\nferryctl: %s\n", error->message);
    r->exit_code = FERRYCTL_EXIT_GUEST_ERROR;
}

static void
on_monitor_reply(FerryVm *vm, const char *reply, gboolean quit, gpointer user_data)
{
    Run *r = user_data;
    write_all(STDOUT_FILENO, reply, strlen(reply));
    if (!quit && r->monitor_on_stdio && (r->in_monitor || !r->serial_on_stdio))
        print_prompt(r);
}

static void
monitor_input(Run *r, const guint8 *p, gsize len)
{
    for (gsize i = 0; i < len; i++) {
        guint8 c = p[i];
        if (c == '\r' || c == '\n') {
            if (r->tty_raw)
                write_all(STDOUT_FILENO, "\r\n", 2);
            ferry_vm_monitor_command(r->vm, r->line->str, on_monitor_reply, r);
            g_string_truncate(r->line, 0);
        } else if (c == 0x7F || c == 0x08) {
            if (r->line->len) {
                g_string_truncate(r->line, r->line->len - 1);
                if (r->tty_raw)
                    write_all(STDOUT_FILENO, "\b \b", 3);
            }
        } else if (r->line->len < 4096) {
            g_string_append_c(r->line, c);
            if (r->tty_raw)
                write_all(STDOUT_FILENO, &c, 1);     /* echo: the terminal is raw */
        }
    }
}

static void
handle_input(Run *r, const guint8 *p, gsize len)
{
    /* Ctrl-A is the escape only when the serial console is on stdio. */
    if (!r->serial_on_stdio) {
        monitor_input(r, p, len);
        return;
    }
    for (gsize i = 0; i < len; i++) {
        guint8 c = p[i];
        if (r->saw_ctrl_a) {
            r->saw_ctrl_a = FALSE;
            if (c == 'x') {
                restore_tty(r);
                g_printerr("\nferryctl: terminated by Ctrl-A x\n");
                ferry_vm_send_simple(r->vm, FERRY_VM_CMD_STOP);
                continue;
            }
            if (c == 'c' && r->monitor_on_stdio) {
                r->in_monitor = !r->in_monitor;
                if (r->in_monitor) {
                    write_all(STDOUT_FILENO, "\r\n", 2);
                    print_prompt(r);
                }
                continue;
            }
            if (c == 'h') {
                static const char help[] =
                    "\r\nC-a h    this help\r\nC-a x    exit Ferry\r\n"
                    "C-a c    switch between the console and the monitor\r\nC-a C-a  send C-a\r\n";
                write_all(STDOUT_FILENO, help, sizeof(help) - 1);
                continue;
            }
            if (c != CTRL_A)
                continue;
            /* Ctrl-A Ctrl-A sends one Ctrl-A on. */
        } else if (c == CTRL_A) {
            r->saw_ctrl_a = TRUE;
            continue;
        }
        if (r->in_monitor)
            monitor_input(r, &c, 1);
        else
            ferry_vm_serial_input(r->vm, &c, 1);
    }
}

static gboolean
on_stdin(gint fd, GIOCondition cond, gpointer user_data)
{
    Run *r = user_data;
    guint8 buf[1024];
    ssize_t n = read(fd, buf, sizeof(buf));

    if (n > 0) {
        handle_input(r, buf, n);
        return G_SOURCE_CONTINUE;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return G_SOURCE_CONTINUE;
    /* End of input: the VM goes on (stdin may have been a pipe of commands). */
    if (r->line->len && !r->serial_on_stdio)
        monitor_input(r, (const guint8 *) "\n", 1);
    r->stdin_watch = 0;
    return G_SOURCE_REMOVE;
}

static gboolean
on_signal(gpointer user_data)
{
    Run *r = user_data;
    /* The signal number is not passed; the handlers below record it. */
    ferry_vm_send_simple(r->vm, FERRY_VM_CMD_STOP);
    return G_SOURCE_CONTINUE;
}

static Run *signal_run;

static gboolean
on_sigint(gpointer user_data)
{
    signal_run->exit_code = 128 + SIGINT;
    return on_signal(user_data);
}

static gboolean
on_sigterm(gpointer user_data)
{
    signal_run->exit_code = 128 + SIGTERM;
    return on_signal(user_data);
}

static gboolean
on_sighup(gpointer user_data)
{
    signal_run->exit_code = 128 + SIGHUP;
    return on_signal(user_data);
}

int
ferryctl_run_vm(const FerryVmConfig *config, gboolean serial_on_stdio, gboolean monitor_on_stdio)
{
    g_autoptr(GError) error = NULL;
    Run r = { .exit_code = -1, .serial_on_stdio = serial_on_stdio, .monitor_on_stdio = monitor_on_stdio };

    FerryVmEvents events = {
        .state_changed = on_state,
        .serial_output = on_serial,
        .failed = on_failed,
    };
    r.loop = g_main_loop_new(NULL, FALSE);
    r.line = g_string_new(NULL);
    r.vm = ferry_vm_new(config, NULL, &events, &r, &error);
    if (!r.vm || !ferry_vm_start(r.vm, &error)) {
        g_printerr("ferryctl: %s\n", error->message);
        ferry_vm_free(r.vm);
        g_main_loop_unref(r.loop);
        g_string_free(r.line, TRUE);
        return FERRYCTL_EXIT_USAGE;
    }
    if (config->serial == FERRY_SERIAL_PTY)
        g_printerr("ferryctl: serial console on %s\n", ferry_vm_get_serial_path(r.vm));

    signal_run = &r;
    g_unix_signal_add(SIGINT, on_sigint, &r);
    g_unix_signal_add(SIGTERM, on_sigterm, &r);
    g_unix_signal_add(SIGHUP, on_sighup, &r);
    if (r.serial_on_stdio || r.monitor_on_stdio) {
        if (r.serial_on_stdio)
            set_tty_raw(&r);
        r.stdin_watch = g_unix_fd_add(STDIN_FILENO, G_IO_IN | G_IO_HUP | G_IO_ERR, on_stdin, &r);
        if (r.monitor_on_stdio && !r.serial_on_stdio)
            print_prompt(&r);
    }

    g_main_loop_run(r.loop);

    restore_tty(&r);
    if (r.stdin_watch)
        g_source_remove(r.stdin_watch);
    /* Let the last serial bytes and replies reach the terminal. */
    while (g_main_context_iteration(NULL, FALSE))
        ;
    ferry_vm_free(r.vm);
    g_main_loop_unref(r.loop);
    g_string_free(r.line, TRUE);
    return r.exit_code < 0 ? 0 : r.exit_code;
}

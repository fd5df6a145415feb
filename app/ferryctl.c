/* ferryctl.c: Ferry's command line. `ferryctl run` starts a VM in this
 * process with its serial console and monitor on the terminal, like
 * qemu-system; later subcommands manage the VM library and disk images.
 *
 * Exit status of `run`: 0 the guest powered off or `quit` was given; 1 the
 * VM was stopped by an error; 2 bad command line, file or host (nothing
 * ran); 128+N killed by signal N. */
#include <ferry/vm.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <glib-unix.h>

#define EXIT_GUEST_ERROR 1
#define EXIT_USAGE 2
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
        r->exit_code = EXIT_GUEST_ERROR;
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
    r->exit_code = EXIT_GUEST_ERROR;
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

static int
usage_error(GOptionContext *ctx, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static int
usage_error(GOptionContext *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_printerr("ferryctl run: %s\nTry 'ferryctl run --help'.\n", msg);
    return EXIT_USAGE;
}

static int
cmd_run(int argc, char **argv)
{
    g_autofree char *arch = NULL, *kernel = NULL, *initrd = NULL, *append = NULL, *bios = NULL;
    g_autofree char *memory = NULL, *serial = NULL, *monitor = NULL, *kvm_device = NULL, *accel = NULL;
    gint smp = 1;
    gboolean no_reboot = FALSE;
    GOptionEntry entries[] = {
        { "arch", 0, 0, G_OPTION_ARG_STRING, &arch, "Guest architecture: x86_64 (KVM) or riscv64", "ARCH" },
        { "accel", 0, 0, G_OPTION_ARG_STRING, &accel, "Accelerator: kvm or soft", "ACCEL" },
        { "kernel", 0, 0, G_OPTION_ARG_FILENAME, &kernel, "Linux kernel to boot directly", "FILE" },
        { "initrd", 0, 0, G_OPTION_ARG_FILENAME, &initrd, "Initial RAM disk", "FILE" },
        { "append", 0, 0, G_OPTION_ARG_STRING, &append, "Kernel command line", "CMDLINE" },
        { "bios", 0, 0, G_OPTION_ARG_FILENAME, &bios, "Flat firmware image started at the reset vector", "FILE" },
        { "memory", 'm', 0, G_OPTION_ARG_STRING, &memory, "Guest memory: N[K|M|G], a bare number is MiB (default 128)", "SIZE" },
        { "smp", 0, 0, G_OPTION_ARG_INT, &smp, "Number of virtual CPUs (default 1)", "N" },
        { "serial", 0, 0, G_OPTION_ARG_STRING, &serial, "Serial console: stdio, pty, unix:PATH or none (default stdio)", "DEV" },
        { "monitor", 0, 0, G_OPTION_ARG_STRING, &monitor, "Monitor: stdio or unix:PATH", "DEV" },
        { "no-reboot", 0, 0, G_OPTION_ARG_NONE, &no_reboot, "Exit instead of rebooting", NULL },
        { "kvm-device", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_FILENAME, &kvm_device, "KVM device (default /dev/kvm)", "PATH" },
        { NULL }
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new("- start a virtual machine");
    g_autoptr(GError) error = NULL;
    FerryVmConfig config;
    Run r = { .exit_code = -1 };

    g_option_context_add_main_entries(ctx, entries, NULL);
    g_option_context_set_summary(ctx, "Serial on stdio: Ctrl-A x quits, Ctrl-A c switches to the monitor.");
    if (!g_option_context_parse(ctx, &argc, &argv, &error))
        return usage_error(ctx, "%s", error->message);
    if (argc > 1)
        return usage_error(ctx, "unexpected argument '%s'", argv[1]);

    ferry_vm_config_init(&config);
    if (arch && !ferry_arch_from_string(arch, &config.arch))
        return usage_error(ctx, "unknown architecture '%s': choose x86_64 or riscv64", arch);
    if (accel) {
        if (!strcmp(accel, "kvm"))
            config.accel = FERRY_ACCEL_KVM;
        else if (!strcmp(accel, "soft") || !strcmp(accel, "tcg"))
            config.accel = FERRY_ACCEL_SOFTCPU;
        else
            return usage_error(ctx, "unknown accelerator '%s': choose kvm or soft", accel);
    }
    if (memory && !ferry_parse_memory_size(memory, &config.memory_bytes))
        return usage_error(ctx, "invalid memory size '%s': use a number of MiB, or N followed by K, M or G (e.g. 512M, 1G)", memory);
    if (smp < 1 || smp > FERRY_MAX_CPUS)
        return usage_error(ctx, "--smp %d is out of range: choose 1 to %d", smp, FERRY_MAX_CPUS);
    config.n_cpus = smp;
    config.kernel_path = kernel;
    config.initrd_path = initrd;
    config.cmdline = append;
    config.bios_path = bios;
    config.no_reboot = no_reboot;
    config.kvm_device = kvm_device;

    if (!serial || !strcmp(serial, "stdio")) {
        config.serial = FERRY_SERIAL_EVENT;
        r.serial_on_stdio = TRUE;
    } else if (!strcmp(serial, "none")) {
        config.serial = FERRY_SERIAL_NONE;
    } else if (!strcmp(serial, "pty")) {
        config.serial = FERRY_SERIAL_PTY;
    } else if (g_str_has_prefix(serial, "unix:") && serial[5]) {
        config.serial = FERRY_SERIAL_UNIX;
        config.serial_path = serial + 5;
    } else {
        return usage_error(ctx, "invalid --serial '%s': use stdio, pty, unix:PATH or none", serial);
    }
    if (monitor) {
        if (!strcmp(monitor, "stdio"))
            r.monitor_on_stdio = TRUE;
        else if (g_str_has_prefix(monitor, "unix:") && monitor[5])
            config.monitor_path = monitor + 5;
        else
            return usage_error(ctx, "invalid --monitor '%s': use stdio or unix:PATH", monitor);
    }

    FerryVmEvents events = {
        .state_changed = on_state,
        .serial_output = on_serial,
        .failed = on_failed,
    };
    r.loop = g_main_loop_new(NULL, FALSE);
    r.line = g_string_new(NULL);
    r.vm = ferry_vm_new(&config, NULL, &events, &r, &error);
    if (!r.vm || !ferry_vm_start(r.vm, &error)) {
        g_printerr("ferryctl: %s\n", error->message);
        ferry_vm_free(r.vm);
        g_main_loop_unref(r.loop);
        g_string_free(r.line, TRUE);
        return EXIT_USAGE;
    }
    if (config.serial == FERRY_SERIAL_PTY)
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

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} Subcommand;

static const Subcommand subcommands[] = {
    { "run", "start a virtual machine in this process", cmd_run },
};

static void
print_usage(FILE *f)
{
    fprintf(f, "Usage: ferryctl COMMAND [OPTIONS...]\n\nCommands:\n");
    for (guint i = 0; i < G_N_ELEMENTS(subcommands); i++)
        fprintf(f, "  %-8s %s\n", subcommands[i].name, subcommands[i].summary);
    fprintf(f, "\nRun 'ferryctl COMMAND --help' for a command's options.\n");
}

int
main(int argc, char **argv)
{
    /* A closed terminal or pipe is noticed by write(); it must not kill the VM. */
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        print_usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        print_usage(stdout);
        return 0;
    }
    for (guint i = 0; i < G_N_ELEMENTS(subcommands); i++)
        if (!strcmp(argv[1], subcommands[i].name))
            return subcommands[i].run(argc - 1, argv + 1);
    g_printerr("ferryctl: unknown command '%s'\n", argv[1]);
    print_usage(stderr);
    return EXIT_USAGE;
}

/* test-chardev.c: where the serial console and the monitor go: stdio with
 * Ctrl-A x / Ctrl-A c, a pty, a unix socket, and the monitor on stdio.
 * The riscv machine's firmware (OpenSBI) is the talker: it needs no KVM. */
#include "../lib/ferry-test-proc.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <glib/gstdio.h>



/* Reads fd until text shows up. */
static gboolean
read_until(int fd, const char *text, guint ms)
{
    GString *s = g_string_new(NULL);
    gint64 deadline = g_get_monotonic_time() + (gint64) ms * 1000;
    gboolean found = FALSE;
    while (!found && g_get_monotonic_time() < deadline) {
        struct pollfd p = { fd, POLLIN, 0 };
        if (poll(&p, 1, 50) > 0) {
            char buf[4096];
            ssize_t n = read(fd, buf, sizeof(buf));
            if (n <= 0)
                break;
            g_string_append_len(s, buf, n);
        }
        found = strstr(s->str, text) != NULL;
    }
    g_string_free(s, TRUE);
    return found;
}

static void
test_ctrl_a_x(void)
{
    const char *argv[] = { ferry_test_ferryctl(), "run", "--arch", "riscv64", "-m", "64M", NULL };
    FerryTestProc *p = ferry_test_spawn(argv);
    ferry_test_expect(p, "OpenSBI v", 20000);
    ferry_test_proc_write(p, "\001x");
    g_assert_cmpint(ferry_test_proc_wait(p, 10000), ==, 0);
    g_assert_nonnull(strstr(ferry_test_proc_stderr(p), "terminated by Ctrl-A x"));
    ferry_test_proc_free(p);
}

static void
test_ctrl_a_c_monitor(void)
{
    const char *argv[] = { ferry_test_ferryctl(), "run", "--arch", "riscv64", "-m", "64M",
                           "--monitor", "stdio", NULL };
    FerryTestProc *p = ferry_test_spawn(argv);
    ferry_test_expect(p, "OpenSBI v", 20000);
    ferry_test_proc_write(p, "\001c");
    ferry_test_expect(p, "(ferry) ", 5000);
    ferry_test_proc_write(p, "info status\n");
    ferry_test_expect(p, "VM status: running", 5000);
    ferry_test_proc_write(p, "stop\n");
    ferry_test_proc_write(p, "info status\n");
    ferry_test_expect(p, "VM status: paused", 5000);
    ferry_test_proc_write(p, "quit\n");
    g_assert_cmpint(ferry_test_proc_wait(p, 10000), ==, 0);
    ferry_test_proc_free(p);
}

static void
test_monitor_stdio_only(void)
{
    const char *argv[] = { ferry_test_ferryctl(), "run", "--arch", "riscv64", "-m", "64M",
                           "--serial", "none", "--monitor", "stdio", NULL };
    g_autofree char *out = NULL;
    int rc = ferry_test_run(argv, "info status\nsystem_reset\ninfo cpus\nquit\n", 20000, &out, NULL);
    g_assert_cmpint(rc, ==, 0);
    g_assert_nonnull(strstr(out, "(ferry) VM status: running\n"));
    g_assert_nonnull(strstr(out, "* CPU #0: pc=0x"));
    g_assert_null(strstr(out, "OpenSBI"));          /* the serial port goes nowhere */
}

static void
test_serial_unix(void)
{
    g_autofree char *dir = g_dir_make_tmp("ferry-ser-XXXXXX", NULL);
    g_autofree char *sock = g_build_filename(dir, "serial.sock", NULL);
    g_autofree char *msock = g_build_filename(dir, "mon.sock", NULL);
    g_autofree char *opt = g_strdup_printf("unix:%s", sock);
    g_autofree char *mon = g_strdup_printf("unix:%s", msock);
    const char *argv[] = { ferry_test_ferryctl(), "run", "--arch", "riscv64", "-m", "64M",
                           "--serial", opt, "--monitor", mon, NULL };
    FerryTestProc *p = ferry_test_spawn(argv);
    FerryTestMonitor *m = ferry_test_monitor_connect(msock, 10000);
    g_assert_nonnull(m);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    g_strlcpy(sa.sun_path, sock, sizeof(sa.sun_path));
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    g_assert_cmpint(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), ==, 0);

    /* The VM did not wait for the client; a reset replays the banner to it.
     * The engine accepts the client on its own thread: until it has, the
     * bytes go nowhere, so reset again if the first banner was missed. */
    gboolean seen = FALSE;
    for (int i = 0; i < 10 && !seen; i++) {
        g_autofree char *reset = ferry_test_monitor_cmd(m, "system_reset", 5000);
        seen = read_until(fd, "OpenSBI v", 3000);
    }
    g_assert_true(seen);
    close(fd);
    ferry_test_proc_kill(p, SIGTERM);
    g_assert_cmpint(ferry_test_proc_wait(p, 10000), ==, 128 + SIGTERM);
    g_assert_false(g_file_test(sock, G_FILE_TEST_EXISTS));
    g_assert_false(g_file_test(msock, G_FILE_TEST_EXISTS));
    ferry_test_monitor_free(m);
    ferry_test_proc_free(p);
    g_rmdir(dir);
}

static void
test_serial_pty(void)
{
    g_autofree char *dir = g_dir_make_tmp("ferry-pty-XXXXXX", NULL);
    g_autofree char *sock = g_build_filename(dir, "mon.sock", NULL);
    g_autofree char *mon = g_strdup_printf("unix:%s", sock);
    const char *argv[] = { ferry_test_ferryctl(), "run", "--arch", "riscv64", "-m", "64M",
                           "--serial", "pty", "--monitor", mon, NULL };
    FerryTestProc *p = ferry_test_spawn(argv);
    FerryTestMonitor *m = ferry_test_monitor_connect(sock, 10000);
    g_assert_nonnull(m);
    g_autofree char *stop = ferry_test_monitor_cmd(m, "stop", 5000);

    g_assert_true(ferry_test_proc_expect_stderr(p, "serial console on /dev/pts/", 5000));
    g_assert_true(ferry_test_proc_expect_stderr(p, "\n", 5000));
    const char *err = ferry_test_proc_stderr(p);
    const char *at = strstr(err, "serial console on /dev/pts/");
    g_assert_nonnull(at);
    g_autofree char *path = g_strndup(at + strlen("serial console on "), strcspn(at + strlen("serial console on "), "\n"));
    int fd = open(path, O_RDWR | O_NOCTTY);
    g_assert_cmpint(fd, >=, 0);
    /* Reset with the reader attached: the banner comes through the pty. */
    g_autofree char *reset = ferry_test_monitor_cmd(m, "system_reset", 5000);
    g_autofree char *cont = ferry_test_monitor_cmd(m, "cont", 5000);
    g_assert_true(read_until(fd, "OpenSBI v", 20000));
    close(fd);
    ferry_test_monitor_cmd(m, "quit", 2000);
    g_assert_cmpint(ferry_test_proc_wait(p, 10000), ==, 0);
    ferry_test_monitor_free(m);
    ferry_test_proc_free(p);
    g_rmdir(dir);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    g_test_add_func("/chardev/stdio/ctrl-a-x", test_ctrl_a_x);
    g_test_add_func("/chardev/stdio/ctrl-a-c-monitor", test_ctrl_a_c_monitor);
    g_test_add_func("/chardev/monitor-stdio-only", test_monitor_stdio_only);
    g_test_add_func("/chardev/serial-unix", test_serial_unix);
    g_test_add_func("/chardev/serial-pty", test_serial_pty);
    return g_test_run();
}

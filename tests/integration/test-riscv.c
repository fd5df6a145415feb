/* test-riscv.c: the riscv64 virt machine on the software CPU, end to end:
 * OpenSBI from Debian's package, the cross-built Linux test guest, the
 * monitor, power-off, reboot, and bad input. */
#include "../lib/ferry-test-proc.h"

#include <signal.h>
#include <string.h>
#include <glib/gstdio.h>

#define BOOT_TIMEOUT_MS 180000



static void
test_opensbi_banner(gconstpointer data)
{
    guint harts = GPOINTER_TO_UINT(data);
    g_autofree char *smp = g_strdup_printf("%u", harts);
    g_autofree char *count = g_strdup_printf("Platform HART Count       : %u", harts);
    const char *argv[] = { ferry_test_ferryctl(), "run", "--arch", "riscv64", "-m", "64M",
                           "--smp", smp, NULL };
    FerryTestProc *p = ferry_test_spawn(argv);

    ferry_test_expect(p, "OpenSBI v", 20000);
    ferry_test_expect(p, count, 20000);
    ferry_test_expect(p, "Domain0 Next Address      : 0x0000000080200000", 20000);
    ferry_test_proc_kill(p, SIGTERM);
    g_assert_cmpint(ferry_test_proc_wait(p, 10000), ==, 128 + SIGTERM);
    ferry_test_proc_free(p);
}

static void
test_monitor(void)
{
    g_autofree char *dir = g_dir_make_tmp("ferry-mon-XXXXXX", NULL);
    g_autofree char *sock = g_build_filename(dir, "mon.sock", NULL);
    g_autofree char *mon = g_strdup_printf("unix:%s", sock);
    const char *argv[] = { ferry_test_ferryctl(), "run", "--arch", "riscv64", "-m", "64M",
                           "--smp", "2", "--monitor", mon, NULL };
    FerryTestProc *p = ferry_test_spawn(argv);

    ferry_test_expect(p, "OpenSBI v", 20000);
    FerryTestMonitor *m = ferry_test_monitor_connect(sock, 10000);
    if (!m)
        g_test_message("ferryctl stderr: %s", ferry_test_proc_stderr(p));
    g_assert_nonnull(m);
    g_autofree char *st = ferry_test_monitor_cmd(m, "info status", 5000);
    g_assert_cmpstr(st, ==, "VM status: running\n");
    g_autofree char *stop = ferry_test_monitor_cmd(m, "stop", 5000);
    g_autofree char *st2 = ferry_test_monitor_cmd(m, "info status", 5000);
    g_assert_cmpstr(st2, ==, "VM status: paused\n");
    g_autofree char *cpus = ferry_test_monitor_cmd(m, "info cpus", 5000);
    g_assert_nonnull(strstr(cpus, "* CPU #0: pc=0x"));
    g_assert_nonnull(strstr(cpus, "  CPU #1: pc=0x"));
    g_autofree char *regs = ferry_test_monitor_cmd(m, "info registers", 5000);
    g_assert_nonnull(strstr(regs, "CPU#0"));
    g_assert_nonnull(strstr(regs, "CPU#1"));
    g_autofree char *cont = ferry_test_monitor_cmd(m, "cont", 5000);
    g_autofree char *st3 = ferry_test_monitor_cmd(m, "info status", 5000);
    g_assert_cmpstr(st3, ==, "VM status: running\n");
    /* A reset starts the firmware again: a second banner. */
    g_autofree char *reset = ferry_test_monitor_cmd(m, "system_reset", 5000);
    ferry_test_expect(p, "OpenSBI v", 20000);
    g_autofree char *bad = ferry_test_monitor_cmd(m, "launch missiles", 5000);
    g_assert_nonnull(strstr(bad, "unknown command: 'launch'"));
    ferry_test_monitor_free(m);
    /* Clients may come one after another. */
    m = ferry_test_monitor_connect(sock, 10000);
    g_assert_nonnull(m);
    g_autofree char *help = ferry_test_monitor_cmd(m, "help", 5000);
    g_assert_nonnull(strstr(help, "system_powerdown"));
    ferry_test_monitor_cmd(m, "quit", 2000);
    g_assert_cmpint(ferry_test_proc_wait(p, 10000), ==, 0);
    ferry_test_monitor_free(m);
    ferry_test_proc_free(p);
    g_assert_false(g_file_test(sock, G_FILE_TEST_EXISTS));     /* cleaned up */
    g_rmdir(dir);
}

static void
test_linux_boot(gconstpointer data)
{
    guint harts = GPOINTER_TO_UINT(data);
    g_autofree char *kernel = ferry_test_guest_file("riscv64/Image");
    g_autofree char *initrd = kernel ? ferry_test_guest_file("riscv64/initramfs.cpio.gz") : NULL;
    if (!kernel || !initrd)
        return;
    g_autofree char *smp = g_strdup_printf("%u", harts);
    g_autofree char *append = g_strdup_printf("console=ttyS0 guest_selftest=hello,smp,mem guest_expect_cpus=%u", harts);
    g_autofree char *ready = g_strdup_printf("GUEST-READY arch=riscv64 nproc=%u ", harts);
    g_autofree char *smp_ok = g_strdup_printf("SELFTEST smp ok %u", harts);
    const char *argv[] = { ferry_test_ferryctl(), "run", "--arch", "riscv64", "--kernel", kernel,
                           "--initrd", initrd, "--append", append, "-m", "256M", "--smp", smp, NULL };
    gint64 t0 = g_get_monotonic_time();
    FerryTestProc *p = ferry_test_spawn(argv);

    ferry_test_expect(p, ready, BOOT_TIMEOUT_MS);
    g_test_message("GUEST-READY after %.1f s", (g_get_monotonic_time() - t0) / 1e6);
    ferry_test_expect(p, "SELFTEST hello ok", 30000);
    ferry_test_expect(p, smp_ok, 30000);
    ferry_test_expect(p, "SELFTEST mem ok", 30000);
    /* The init powers off: the VM ends with status 0. */
    g_assert_cmpint(ferry_test_proc_wait(p, 60000), ==, 0);
    ferry_test_proc_free(p);
}

static void
test_linux_reboot(void)
{
    g_autofree char *kernel = ferry_test_guest_file("riscv64/Image");
    g_autofree char *initrd = kernel ? ferry_test_guest_file("riscv64/initramfs.cpio.gz") : NULL;
    if (!kernel || !initrd)
        return;
    const char *argv[] = { ferry_test_ferryctl(), "run", "--arch", "riscv64", "--kernel", kernel,
                           "--initrd", initrd, "--append", "console=ttyS0 guest_mode=shell",
                           "-m", "256M", NULL };
    FerryTestProc *p = ferry_test_spawn(argv);

    ferry_test_expect(p, "GUEST-SHELL", BOOT_TIMEOUT_MS);
    ferry_test_proc_write(p, "echo typed-$((6*7))\n");
    ferry_test_expect(p, "typed-42", 30000);
    ferry_test_proc_write(p, "reboot -f\n");
    ferry_test_expect(p, "OpenSBI v", 60000);
    ferry_test_expect(p, "GUEST-SHELL", BOOT_TIMEOUT_MS);
    ferry_test_proc_write(p, "poweroff -f\n");
    g_assert_cmpint(ferry_test_proc_wait(p, 60000), ==, 0);
    ferry_test_proc_free(p);
}

/* A bare S-mode program as a raw binary (loaded at RAM + 2 MiB) and as an
 * ELF: OpenSBI hands over hart id and device tree, SBI SRST powers off. */
static void
test_bare_kernel(gconstpointer data)
{
    g_autofree char *path = g_build_filename(g_getenv("FERRY_BUILD_ROOT"), "tests", "guests",
                                             "rv-micro", data, NULL);
    if (!g_file_test(path, G_FILE_TEST_EXISTS)) {
        g_autofree char *msg = g_strdup_printf("%s not built: install the riscv64 cross binutils "
                                               "(tests/guests/deps.sh) and reconfigure", path);
        if (g_getenv("CI"))
            g_test_fail_printf("%s", msg);
        else
            g_test_skip(msg);
        return;
    }
    const char *argv[] = { ferry_test_ferryctl(), "run", "--arch", "riscv64", "-m", "64M",
                           "--kernel", path, NULL };
    g_autofree char *out = NULL;
    g_assert_cmpint(ferry_test_run(argv, NULL, 30000, &out, NULL), ==, 0);
    g_assert_nonnull(strstr(out, "RV-S-MODE hart=0x0000000000000000 fdt=0x"));
}

/* system_powerdown presses KEY_POWER on the virtio-input power button; the
 * guest's acpid answers by powering off, so the VM ends with status 0. */
static void
test_linux_power_button(void)
{
    g_autofree char *kernel = ferry_test_guest_file("riscv64/Image");
    g_autofree char *initrd = kernel ? ferry_test_guest_file("riscv64/initramfs.cpio.gz") : NULL;
    if (!kernel || !initrd)
        return;
    g_autofree char *dir = g_dir_make_tmp("ferry-pb-XXXXXX", NULL);
    g_autofree char *sock = g_build_filename(dir, "mon.sock", NULL);
    g_autofree char *mon = g_strdup_printf("unix:%s", sock);
    /* The monitor on its own socket: its prompt never splits a console line. */
    const char *argv[] = { ferry_test_ferryctl(), "run", "--arch", "riscv64", "--kernel", kernel,
                           "--initrd", initrd, "--append", "console=ttyS0 guest_mode=shell",
                           "-m", "256M", "--monitor", mon, NULL };
    FerryTestProc *p = ferry_test_spawn(argv);

    ferry_test_expect(p, "input: Ferry Power Button", BOOT_TIMEOUT_MS);
    ferry_test_expect(p, "GUEST-SHELL", BOOT_TIMEOUT_MS);
    FerryTestMonitor *m = ferry_test_monitor_connect(sock, 10000);
    g_assert_nonnull(m);
    /* acpid opens the input device a moment after the shell starts; a
     * press before that is not seen, so press again as a person would. */
    gboolean seen = FALSE;
    for (int i = 0; i < 15 && !seen; i++) {
        g_autofree char *reply = ferry_test_monitor_cmd(m, "system_powerdown", 5000);
        seen = ferry_test_proc_expect(p, "GUEST-POWERBUTTON", 2000);
    }
    g_assert_true(seen);
    g_assert_cmpint(ferry_test_proc_wait(p, 60000), ==, 0);
    ferry_test_monitor_free(m);
    ferry_test_proc_free(p);
    g_rmdir(dir);
}

static void
test_bad_files(void)
{
    g_autofree char *err1 = NULL, *err2 = NULL;
    g_autofree char *x86 = g_build_filename(g_get_tmp_dir(), "bzImage", NULL);
    g_autofree guint8 *fake = g_malloc0(8192);
    memcpy(fake + 0x202, "HdrS", 4);
    g_assert_true(g_file_set_contents(x86, (char *) fake, 8192, NULL));

    const char *a1[] = { ferry_test_ferryctl(), "run", "--arch", "riscv64", "--kernel", x86, NULL };
    g_assert_cmpint(ferry_test_run(a1, NULL, 20000, NULL, &err1), ==, 2);
    g_assert_nonnull(strstr(err1, "is not a RISC-V kernel"));

    const char *a2[] = { ferry_test_ferryctl(), "run", "--arch", "riscv64", "--bios", "/nonexistent/fw.bin", NULL };
    g_assert_cmpint(ferry_test_run(a2, NULL, 20000, NULL, &err2), ==, 2);
    g_assert_nonnull(strstr(err2, "Cannot open firmware /nonexistent/fw.bin"));
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    g_test_add_data_func("/riscv/opensbi/banner-1-hart", GUINT_TO_POINTER(1), test_opensbi_banner);
    g_test_add_data_func("/riscv/opensbi/banner-4-harts", GUINT_TO_POINTER(4), test_opensbi_banner);
    g_test_add_func("/riscv/monitor", test_monitor);
    g_test_add_func("/riscv/bad-files", test_bad_files);
    g_test_add_data_func("/riscv/kernel/raw-s-mode", "hello-s.bin", test_bare_kernel);
    g_test_add_data_func("/riscv/kernel/elf", "hello-s.elf", test_bare_kernel);
    g_test_add_data_func("/riscv/linux/boot-1-hart", GUINT_TO_POINTER(1), test_linux_boot);
    g_test_add_data_func("/riscv/linux/boot-4-harts", GUINT_TO_POINTER(4), test_linux_boot);
    g_test_add_func("/riscv/linux/reboot", test_linux_reboot);
    g_test_add_func("/riscv/linux/power-button", test_linux_power_button);
    return g_test_run();
}

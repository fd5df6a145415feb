/* test-kvm.c: the KVM accelerator and the pc machine, driven by the
 * micro-guests of tests/guests/micro/ (they report what they saw on COM1)
 * and, where this host's KVM can run Linux, Debian's kernel. */
#include "../lib/ferry-test-proc.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>

static gboolean
kvm_or_skip(void)
{
    const char *why = ferry_test_kvm_unusable();
    if (why) {
        g_test_skip(why);
        return FALSE;
    }
    return TRUE;
}

static char *
micro(const char *name)
{
    char *path = ferry_test_micro_guest(name);
    g_assert_nonnull(path);     /* built by meson with the tests */
    return path;
}



/* Runs a micro-guest to its end; returns stdout, asserts the exit status. */
static char *
run_micro(int want_rc, guint timeout_ms, ...)
{
    va_list ap;
    GPtrArray *argv = g_ptr_array_new();
    g_ptr_array_add(argv, (char *) ferry_test_ferryctl());
    g_ptr_array_add(argv, (char *) "run");
    va_start(ap, timeout_ms);
    for (const char *a; (a = va_arg(ap, const char *));)
        g_ptr_array_add(argv, (char *) a);
    va_end(ap);
    g_ptr_array_add(argv, NULL);
    char *out = NULL, *err = NULL;
    int rc = ferry_test_run((const char *const *) argv->pdata, NULL, timeout_ms, &out, &err);
    if (rc != want_rc)
        g_test_message("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", rc, want_rc, out, err);
    g_assert_cmpint(rc, ==, want_rc);
    g_free(err);
    g_ptr_array_free(argv, TRUE);
    return out;
}

static void
assert_line(const char *out, const char *line)
{
    g_autofree char *with_nl = g_strdup_printf("%s\n", line);
    if (!strstr(out, with_nl)) {
        g_test_message("no line '%s' in:\n%s", line, out);
        g_assert_not_reached();
    }
}

static void
test_first_byte_and_poweroff(void)
{
    if (!kvm_or_skip())
        return;
    g_autofree char *bios = micro("micro-io.bin");
    g_autofree char *out = run_micro(0, 20000, "--bios", bios, "-m", "64M", NULL);
    /* Ports and MMIO with no device read as all ones. */
    assert_line(out, "PORT_READ=0xff");
    assert_line(out, "PORT_READ16=0xffff");
    assert_line(out, "PORT_READ32=0xffffffff");
    assert_line(out, "MMIO_READ=0xffffffff");
    assert_line(out, "MMIO_READ64=0xffffffffffffffff");
    assert_line(out, "IO_MISMATCH=0");
    assert_line(out, "IO_ROUNDS=1000");
    assert_line(out, "MICRO-DONE");
}

static void
test_memory_sizes(void)
{
    if (!kvm_or_skip())
        return;
    g_autofree char *bios = micro("micro-smp.bin");
    g_autofree char *o1 = run_micro(0, 20000, "--bios", bios, "-m", "96M", NULL);
    assert_line(o1, "MEM_MB=96");
    /* 5 GiB: 3 GiB below the PCI hole, 2 GiB above 4 GiB. */
    g_autofree char *o2 = run_micro(0, 20000, "--bios", bios, "-m", "5G", NULL);
    assert_line(o2, "MEM_MB=5120");
    assert_line(o2, "MEM_BELOW4G_MB=3072");
    assert_line(o2, "MEM_ABOVE4G_MB=2048");
}

static void
test_smp(gconstpointer data)
{
    guint n = GPOINTER_TO_UINT(data);
    if (!kvm_or_skip())
        return;
    g_autofree char *bios = micro("micro-smp.bin");
    g_autofree char *smp = g_strdup_printf("%u", n);
    g_autofree char *cpus = g_strdup_printf("CPUS=%u", n);
    g_autofree char *ids = n == 1 ? g_strdup("APIC_IDS=0") : g_strdup_printf("APIC_IDS=0-%u", n - 1);
    g_autofree char *out = run_micro(0, 120000, "--bios", bios, "-m", "64M", "--smp", smp, NULL);
    assert_line(out, cpus);
    assert_line(out, ids);
    assert_line(out, "APIC_ID_DUPLICATES=0");
    assert_line(out, "APIC_ID_CPUID_MISMATCH=0");
    assert_line(out, n > 255 ? "APIC_MODE=x2apic" : "APIC_MODE=xapic");
}

static void
test_irq(void)
{
    if (!kvm_or_skip())
        return;
    g_autofree char *bios = micro("micro-irq.bin");
    const char *argv[] = { ferry_test_ferryctl(), "run", "--bios", bios, "-m", "64M", NULL };
    FerryTestProc *p = ferry_test_spawn(argv);
    /* PIT through the in-kernel PIC/IOAPIC, and HLT woken by it. */
    ferry_test_expect(p, "TIMER_IRQ=ok", 20000);
    ferry_test_expect(p, "HLT_WAKE=ok", 20000);
    /* A byte typed on the console raises the UART's receive interrupt. */
    ferry_test_expect(p, "UART_RX_WAIT", 20000);
    ferry_test_proc_write(p, "Z");
    ferry_test_expect(p, "UART_RX_IRQ=ok byte=0x5a", 20000);
    g_assert_cmpint(ferry_test_proc_wait(p, 20000), ==, 0);
    ferry_test_proc_free(p);
}

static void
test_resets(void)
{
    if (!kvm_or_skip())
        return;
    g_autofree char *bios = micro("micro-reset.bin");
    /* 0xCF9, the i8042 and a triple fault each reset the VM; CMOS survives. */
    g_autofree char *out = run_micro(0, 30000, "--bios", bios, "-m", "64M", NULL);
    assert_line(out, "BOOT=1");
    assert_line(out, "BOOT=2");
    assert_line(out, "BOOT=3");
    assert_line(out, "BOOT=4");
    assert_line(out, "RESET-OK");
    /* --no-reboot: the first reset ends the run instead. */
    g_autofree char *once = run_micro(0, 30000, "--bios", bios, "-m", "64M", "--no-reboot", NULL);
    assert_line(once, "BOOT=1");
    g_assert_null(strstr(once, "BOOT=2"));
}

static void
test_kernel_entry(gconstpointer data)
{
    const char *image = data;
    if (!kvm_or_skip())
        return;
    g_autofree char *kernel = micro(image);
    g_autofree char *initrd = g_build_filename(g_get_tmp_dir(), "initrd.img", NULL);
    gsize len = 300001;
    g_autofree guint8 *bytes = g_malloc(len);
    guint32 sum = 0;
    for (gsize i = 0; i < len; i++) {
        bytes[i] = (guint8) (i * 131 + 7);
        sum += bytes[i];
    }
    g_assert_true(g_file_set_contents(initrd, (char *) bytes, len, NULL));
    g_autofree char *out = run_micro(0, 20000, "--kernel", kernel, "--initrd", initrd,
                                     "--append", "console=ttyS0 ferry.test=yes", "-m", "512M",
                                     "--smp", "6", NULL);
    g_autofree char *sumline = g_strdup_printf("INITRD_SIZE=%zu INITRD_SUM=0x%08x", len, sum);
    assert_line(out, g_str_has_suffix(image, ".elf") ? "ENTRY=pvh" : "ENTRY=bzimage64");
    assert_line(out, "CMDLINE=console=ttyS0 ferry.test=yes");
    assert_line(out, sumline);
    assert_line(out, "ACPI_CPUS=6");
    assert_line(out, "ACPI_S5_SLP_TYP=0");
    /* The e820 map: low RAM, the BIOS holes, RAM from 1 MiB to 512 MiB. */
    assert_line(out, "E820 0x0 0x9fc00 1");
    assert_line(out, "E820 0x100000 0x1ff00000 1");
    assert_line(out, "MICRO-DONE");
}

static void
test_monitor_on_kvm(void)
{
    if (!kvm_or_skip())
        return;
    g_autofree char *bios = micro("micro-irq.bin");
    g_autofree char *dir = g_dir_make_tmp("ferry-kvm-XXXXXX", NULL);
    g_autofree char *sock = g_build_filename(dir, "mon.sock", NULL);
    g_autofree char *mon = g_strdup_printf("unix:%s", sock);
    const char *argv[] = { ferry_test_ferryctl(), "run", "--bios", bios, "-m", "64M", "--smp", "2",
                           "--monitor", mon, NULL };
    FerryTestProc *p = ferry_test_spawn(argv);
    ferry_test_expect(p, "UART_RX_WAIT", 20000);
    FerryTestMonitor *m = ferry_test_monitor_connect(sock, 10000);
    g_assert_nonnull(m);
    g_autofree char *st = ferry_test_monitor_cmd(m, "stop", 5000);
    g_autofree char *st2 = ferry_test_monitor_cmd(m, "info status", 5000);
    g_assert_cmpstr(st2, ==, "VM status: paused\n");
    g_autofree char *regs = ferry_test_monitor_cmd(m, "info registers", 5000);
    g_assert_nonnull(strstr(regs, "CPU#0\nRAX="));
    g_assert_nonnull(strstr(regs, "EFER="));
    g_autofree char *cpus = ferry_test_monitor_cmd(m, "info cpus", 5000);
    g_assert_nonnull(strstr(cpus, "* CPU #0: pc=0x"));
    g_assert_nonnull(strstr(cpus, "  CPU #1: pc=0x000000000000fff0 (waiting for INIT)"));
    g_autofree char *cont = ferry_test_monitor_cmd(m, "cont", 5000);
    /* system_reset: the guest starts over (the timer test runs again). */
    g_autofree char *reset = ferry_test_monitor_cmd(m, "system_reset", 5000);
    ferry_test_expect(p, "TIMER_IRQ=ok", 20000);
    ferry_test_expect(p, "UART_RX_WAIT", 20000);
    ferry_test_monitor_cmd(m, "quit", 2000);
    g_assert_cmpint(ferry_test_proc_wait(p, 10000), ==, 0);
    ferry_test_monitor_free(m);
    ferry_test_proc_free(p);
    g_rmdir(dir);
}

static void
test_power_button(void)
{
    if (!kvm_or_skip())
        return;
    g_autofree char *bios = micro("micro-pwrbtn.bin");
    g_autofree char *dir = g_dir_make_tmp("ferry-pwr-XXXXXX", NULL);
    g_autofree char *sock = g_build_filename(dir, "mon.sock", NULL);
    g_autofree char *mon = g_strdup_printf("unix:%s", sock);
    /* The monitor on its own socket, so its prompt never splits a serial line. */
    const char *argv[] = { ferry_test_ferryctl(), "run", "--bios", bios, "-m", "64M",
                           "--monitor", mon, NULL };
    FerryTestProc *p = ferry_test_spawn(argv);
    ferry_test_expect(p, "PWRBTN_WAIT", 20000);
    FerryTestMonitor *m = ferry_test_monitor_connect(sock, 10000);
    g_assert_nonnull(m);
    g_autofree char *reply = ferry_test_monitor_cmd(m, "system_powerdown", 5000);
    ferry_test_expect(p, "PWRBTN=pressed", 10000);
    ferry_test_expect(p, "PWRBTN_CLEARED=yes", 10000);
    /* The guest then powers off through S5: exit 0. */
    g_assert_cmpint(ferry_test_proc_wait(p, 20000), ==, 0);
    ferry_test_monitor_free(m);
    ferry_test_proc_free(p);
    g_rmdir(dir);
}

static void
test_emulation_failure(void)
{
    if (!kvm_or_skip())
        return;
    g_autofree char *bios = micro("micro-emufail.bin");
    const char *argv[] = { ferry_test_ferryctl(), "run", "--bios", bios, "-m", "64M", NULL };
    g_autofree char *out = NULL, *err = NULL;
    int rc = ferry_test_run(argv, NULL, 30000, &out, &err);
    g_assert_nonnull(strstr(out, "EMUFAIL-JUMP"));
    /* Stopped by the engine with a message, not a crash. */
    g_assert_cmpint(rc, ==, 1);
    g_assert_nonnull(strstr(err, "KVM internal error ("));
    g_assert_nonnull(strstr(err, "at RIP 0x"));
    g_assert_nonnull(strstr(err, "this host's KVM cannot run this guest"));
}

/* The first hard disk as the guest's own virtio-blk driver sees it (blk.S):
 * identify, read the host's sector 0, write + flush + read back sector 1,
 * a read past the end, GET_ID. Then the image on the host: sector 1 holds
 * the guest's bytes, or with --snapshot is untouched. */
#define BLK_IMAGE_SIZE  (1024 * 1024)
#define BLK_HOST_FILL   0x5A            /* sector 1 before the guest runs */

static void
test_blk(gconstpointer data)
{
    gboolean snapshot = GPOINTER_TO_UINT(data);
    if (!kvm_or_skip())
        return;
    g_autofree char *bios = micro("micro-blk.bin");
    g_autofree char *dir = g_dir_make_tmp("ferry-blk-XXXXXX", NULL);
    g_assert_nonnull(dir);
    g_autofree char *img = g_build_filename(dir, "disk.raw", NULL);
    g_autofree guint8 *buf = g_malloc0(BLK_IMAGE_SIZE);
    for (guint i = 0; i < 512; i++) {
        buf[i] = 0xF0 - 3 * i;
        buf[512 + i] = BLK_HOST_FILL;
    }
    g_autoptr(GError) error = NULL;
    g_assert_true(g_file_set_contents(img, (const char *) buf, BLK_IMAGE_SIZE, &error));
    g_assert_no_error(error);

    g_autofree char *out = run_micro(0, 30000, "--bios", bios, "-m", "64M", "--hda", img,
                                     snapshot ? "--snapshot" : NULL, NULL);
    assert_line(out, "BLK_MAGIC=0x74726976");
    assert_line(out, "BLK_VERSION=2");
    assert_line(out, "BLK_DEVICE_ID=0x2");
    /* No hdb: its slot is not mapped and reads all ones. */
    assert_line(out, "BLK1_DEVICE_ID=0xffffffff");
    assert_line(out, "BLK_CAPACITY=2048");
    assert_line(out, "BLK_STATUS=0xf");
    GString *read0 = g_string_new("BLK_READ0=");
    for (guint i = 0; i < 16; i++)
        g_string_append_printf(read0, "%02x", buf[i]);
    assert_line(out, read0->str);
    g_string_free(read0, TRUE);
    assert_line(out, "BLK_USED_LEN=513");
    assert_line(out, "BLK_ISR=0x1");
    assert_line(out, "BLK_ISR_ACKED=0x0");
    assert_line(out, "BLK_WRITE=ok");
    assert_line(out, "BLK_FLUSH=ok");
    assert_line(out, "BLK_READBACK=ok");
    assert_line(out, "BLK_OOR_STATUS=1");
    assert_line(out, "BLK_SERIAL=ferry-hda");
    assert_line(out, "BLK_REQUESTS=6");
    assert_line(out, "MICRO-DONE");
    g_assert_null(strstr(out, "BLK_TIMEOUT="));
    g_assert_null(strstr(out, "BLK_ERROR="));

    /* The VM has exited: what reached the file. */
    g_autofree char *after = NULL;
    gsize len = 0;
    g_assert_true(g_file_get_contents(img, &after, &len, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(len, ==, BLK_IMAGE_SIZE);
    g_assert_cmpmem(after, 512, buf, 512);
    for (guint i = 0; i < 512; i++) {
        guint8 want = snapshot ? BLK_HOST_FILL : (guint8) (i * 7 + 3);
        if ((guint8) after[512 + i] != want) {
            g_test_message("sector 1 byte %u is 0x%02x, want 0x%02x", i, (guint8) after[512 + i], want);
            g_assert_not_reached();
        }
    }
    g_unlink(img);
    g_rmdir(dir);
}

/* Debian's kernel with the busybox initramfs: needs a KVM that runs Linux. */
static void
test_linux(gconstpointer data)
{
    guint n = GPOINTER_TO_UINT(data);
    if (!kvm_or_skip())
        return;
    if (ferry_test_kvm_is_software()) {
        g_test_skip("this host's KVM is kvm_pvm (software: no VT-x/AMD-V), which cannot run "
                    "a stock Linux kernel; the full-OS tests run on the riscv64 machine here");
        return;
    }
    g_autofree char *kernel = ferry_test_guest_file("x86_64/vmlinuz");
    g_autofree char *initrd = kernel ? ferry_test_guest_file("x86_64/initramfs.cpio.gz") : NULL;
    if (!kernel || !initrd)
        return;
    g_autofree char *smp = g_strdup_printf("%u", n);
    g_autofree char *append = g_strdup_printf("console=ttyS0 guest_selftest=hello,smp guest_expect_cpus=%u", n);
    g_autofree char *ready = g_strdup_printf("GUEST-READY arch=x86_64 nproc=%u ", n);
    const char *argv[] = { ferry_test_ferryctl(), "run", "--kernel", kernel, "--initrd", initrd,
                           "--append", append, "-m", "1G", "--smp", smp, NULL };
    FerryTestProc *p = ferry_test_spawn(argv);
    ferry_test_expect(p, ready, 120000);
    ferry_test_expect(p, "SELFTEST smp ok", 60000);
    g_assert_cmpint(ferry_test_proc_wait(p, 60000), ==, 0);
    ferry_test_proc_free(p);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    g_test_add_func("/kvm/io-and-poweroff", test_first_byte_and_poweroff);
    g_test_add_func("/kvm/memory-sizes", test_memory_sizes);
    g_test_add_data_func("/kvm/smp/1", GUINT_TO_POINTER(1), test_smp);
    g_test_add_data_func("/kvm/smp/4", GUINT_TO_POINTER(4), test_smp);
    g_test_add_data_func("/kvm/smp/64", GUINT_TO_POINTER(64), test_smp);
    g_test_add_data_func("/kvm/smp/255", GUINT_TO_POINTER(255), test_smp);
    g_test_add_data_func("/kvm/smp/288-x2apic", GUINT_TO_POINTER(288), test_smp);
    g_test_add_func("/kvm/irq", test_irq);
    g_test_add_func("/kvm/resets", test_resets);
    g_test_add_data_func("/kvm/kernel/bzimage", "micro-bzImage", test_kernel_entry);
    g_test_add_data_func("/kvm/kernel/pvh", "micro-pvh.elf", test_kernel_entry);
    g_test_add_func("/kvm/monitor", test_monitor_on_kvm);
    g_test_add_func("/kvm/emulation-failure", test_emulation_failure);
    g_test_add_func("/kvm/power-button", test_power_button);
    g_test_add_data_func("/kvm/blk/write", GUINT_TO_POINTER(FALSE), test_blk);
    g_test_add_data_func("/kvm/blk/snapshot", GUINT_TO_POINTER(TRUE), test_blk);
    g_test_add_data_func("/kvm/linux/1", GUINT_TO_POINTER(1), test_linux);
    g_test_add_data_func("/kvm/linux/4", GUINT_TO_POINTER(4), test_linux);
    return g_test_run();
}

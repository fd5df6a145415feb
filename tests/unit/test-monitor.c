/* test-monitor.c: the monitor's parser and command table, the memory-size
 * syntax of the command line, and the bus's unassigned-access rule. */
#include "vm-private.h"

static void
test_split(void)
{
    g_auto(GStrv) a = ferry_monitor_split("  info   status \r\n");
    g_assert_cmpuint(g_strv_length(a), ==, 2);
    g_assert_cmpstr(a[0], ==, "info");
    g_assert_cmpstr(a[1], ==, "status");
    g_assert_null(ferry_monitor_split(""));
    g_assert_null(ferry_monitor_split(" \t \n"));
    g_auto(GStrv) b = ferry_monitor_split("quit");
    g_assert_cmpuint(g_strv_length(b), ==, 1);
}

static void
test_commands_on_created_vm(void)
{
    g_autofree char *bios = g_build_filename(g_get_tmp_dir(), "b.bin", NULL);
    g_autofree guint8 *z = g_malloc0(65536);
    g_assert_true(g_file_set_contents(bios, (char *) z, 65536, NULL));
    FerryVmConfig c;
    ferry_vm_config_init(&c);
    c.bios_path = bios;
    g_autoptr(GError) error = NULL;
    FerryVm *vm = ferry_vm_new(&c, NULL, NULL, NULL, &error);
    g_assert_no_error(error);
    gboolean quit = FALSE;

    g_autofree char *help = ferry_monitor_execute(vm, "help", &quit);
    for (const char *cmd = "info\0stop\0cont\0system_powerdown\0system_reset\0quit\0"; *cmd; cmd += strlen(cmd) + 1)
        g_assert_nonnull(strstr(help, cmd));
    g_autofree char *st = ferry_monitor_execute(vm, "info status", &quit);
    g_assert_cmpstr(st, ==, "VM status: prelaunch\n");
    g_autofree char *cpus = ferry_monitor_execute(vm, "info cpus", &quit);
    g_assert_nonnull(strstr(cpus, "not running"));
    g_autofree char *bad = ferry_monitor_execute(vm, "frobnicate now", &quit);
    g_assert_cmpstr(bad, ==, "unknown command: 'frobnicate'; type 'help' for the list\n");
    g_autofree char *bad_info = ferry_monitor_execute(vm, "info frob", &quit);
    g_assert_nonnull(strstr(bad_info, "unknown item 'frob'"));
    g_assert_false(quit);
    g_autofree char *q = ferry_monitor_execute(vm, "quit", &quit);
    g_assert_true(quit);
    g_autofree char *empty = ferry_monitor_execute(vm, "   ", &quit);
    g_assert_cmpstr(empty, ==, "");
    ferry_vm_free(vm);
}

static void
test_memory_sizes(void)
{
    guint64 b;
    g_assert_true(ferry_parse_memory_size("512", &b));
    g_assert_cmpuint(b, ==, 512ULL << 20);
    g_assert_true(ferry_parse_memory_size("1G", &b));
    g_assert_cmpuint(b, ==, 1ULL << 30);
    g_assert_true(ferry_parse_memory_size("65536K", &b));
    g_assert_cmpuint(b, ==, 64ULL << 20);
    g_assert_true(ferry_parse_memory_size("2GiB", &b));
    g_assert_cmpuint(b, ==, 2ULL << 30);
    g_assert_false(ferry_parse_memory_size("0", &b));
    g_assert_false(ferry_parse_memory_size("-1", &b));
    g_assert_false(ferry_parse_memory_size("1X", &b));
    g_assert_false(ferry_parse_memory_size("", &b));
    g_assert_false(ferry_parse_memory_size("99999999999999999999", &b));
    g_assert_false(ferry_parse_memory_size("99999999999T", &b));
}

static void
test_bus_unassigned(void)
{
    FerryBus *bus = ferry_bus_new("io");
    guint64 v = 0;
    g_assert_false(ferry_bus_read(bus, 0x1234, 1, &v));
    g_assert_cmphex(v, ==, 0xFF);
    g_assert_false(ferry_bus_read(bus, 0x1234, 4, &v));
    g_assert_cmphex(v, ==, 0xFFFFFFFF);
    g_assert_false(ferry_bus_write(bus, 0x1234, 2, 0));
    ferry_bus_map_ignored(bus, 0x80, 1);
    g_assert_true(ferry_bus_write(bus, 0x80, 1, 0x55));
    g_assert_cmpuint(ferry_bus_unassigned_count(bus), ==, 3);
    ferry_bus_free(bus);
}

static void
test_guest_memory_bounds(void)
{
    FerryGuestMemory mem = { 0 };
    guint8 ram[4096] = { 0 }, buf[16];
    g_assert_true(ferry_guest_memory_add(&mem, 0x1000, sizeof(ram), ram));
    g_assert_false(ferry_guest_memory_add(&mem, 0x1800, 16, ram));      /* overlap */
    g_assert_true(ferry_guest_write(&mem, 0x1000, "abc", 3));
    g_assert_true(ferry_guest_read(&mem, 0x1000, buf, 3));
    g_assert_false(ferry_guest_read(&mem, 0x0FFF, buf, 2));             /* starts outside */
    g_assert_false(ferry_guest_read(&mem, 0x1FFF, buf, 2));             /* runs off the end */
    g_assert_false(ferry_guest_read(&mem, G_MAXUINT64 - 1, buf, 16));   /* wraps */
    g_assert_null(ferry_guest_ptr(&mem, 0x1000, G_MAXUINT64));
    g_assert_null(ferry_guest_ptr(&mem, 0x1000, 0));
    g_assert_nonnull(ferry_guest_ptr(&mem, 0x1000, 4096));
}

/* Stop at once after start, before the engine thread has set Running,
 * then free: must neither hang nor leak a running VM (riscv64: no KVM needed). */
static void
test_stop_right_after_start(void)
{
    if (!g_file_test("/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin", G_FILE_TEST_EXISTS)) {
        g_test_skip("Debian's opensbi package is needed for a riscv64 VM");
        return;
    }
    for (int i = 0; i < 20; i++) {
        FerryVmConfig c;
        ferry_vm_config_init(&c);
        c.arch = FERRY_ARCH_RISCV64;
        c.memory_bytes = 64ULL << 20;
        c.serial = FERRY_SERIAL_NONE;
        g_autoptr(GError) error = NULL;
        FerryVm *vm = ferry_vm_new(&c, NULL, NULL, NULL, &error);
        g_assert_no_error(error);
        g_assert_true(ferry_vm_start(vm, &error));
        ferry_vm_send_simple(vm, i % 2 ? FERRY_VM_CMD_STOP : FERRY_VM_CMD_PAUSE);
        if (i % 3 == 0)
            g_usleep(1000);
        ferry_vm_free(vm);
    }
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    g_test_add_func("/monitor/split", test_split);
    g_test_add_func("/monitor/commands-on-created-vm", test_commands_on_created_vm);
    g_test_add_func("/config/memory-sizes", test_memory_sizes);
    g_test_add_func("/bus/unassigned", test_bus_unassigned);
    g_test_add_func("/guest-memory/bounds", test_guest_memory_bounds);
    g_test_add_func("/vm/stop-right-after-start", test_stop_right_after_start);
    return g_test_run();
}

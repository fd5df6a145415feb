/* ferryctl.c: Ferry's command line. `ferryctl run` starts a VM in this
 * process with its serial console and monitor on the terminal, like
 * qemu-system; later subcommands manage the VM library and disk images.
 *
 * Exit status of `run`: 0 the guest powered off or `quit` was given; 1 the
 * VM was stopped by an error; 2 bad command line, file or host (nothing
 * ran); 128+N killed by signal N. */
#include "ferryctl-run.h"
#include "ferryctl-img.h"
#include "ferryctl-vm.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <glib-unix.h>

#define EXIT_USAGE FERRYCTL_EXIT_USAGE

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

/* "on", "off" and their friends. */
static gboolean
parse_switch(const char *s, gboolean *out)
{
    static const char *const on[] = { "on", "yes", "true", "1" }, *const off[] = { "off", "no", "false", "0" };
    for (guint i = 0; i < G_N_ELEMENTS(on); i++) {
        if (!g_ascii_strcasecmp(s, on[i]) || !g_ascii_strcasecmp(s, off[i])) {
            *out = !g_ascii_strcasecmp(s, on[i]);
            return TRUE;
        }
    }
    return FALSE;
}

/* --drive file=F,format=raw|qcow2,readonly=on|off (",," is a comma in F,
 * as in QEMU). Fills d; NULL, or the problem (caller frees). */
static char *
parse_drive(const char *spec, FerryDriveConfig *d)
{
    g_autoptr(GPtrArray) parts = g_ptr_array_new_with_free_func(g_free);
    GString *cur = g_string_new(NULL);

    for (const char *p = spec; ; p++) {
        if (*p == ',' && p[1] == ',') {
            g_string_append_c(cur, ',');
            p++;
        } else if (*p == ',' || !*p) {
            g_ptr_array_add(parts, g_string_free(cur, FALSE));
            if (!*p)
                break;
            cur = g_string_new(NULL);
        } else {
            g_string_append_c(cur, *p);
        }
    }
    for (guint i = 0; i < parts->len; i++) {
        const char *kv = parts->pdata[i], *eq = strchr(kv, '=');
        if (!eq)
            return g_strdup_printf("'%s' in --drive %s is not KEY=VALUE", kv, spec);
        g_autofree char *key = g_strndup(kv, eq - kv);
        const char *val = eq + 1;
        if (!strcmp(key, "file") && *val) {
            g_free(d->path);
            d->path = g_strdup(val);
        } else if (!strcmp(key, "format") && (!strcmp(val, "raw") || !strcmp(val, "qcow2"))) {
            g_free(d->format);
            d->format = g_strdup(val);
        } else if (!strcmp(key, "readonly") && parse_switch(val, &d->readonly)) {
            /* set */
        } else if ((!strcmp(key, "if") && !strcmp(val, "virtio")) ||
                   (!strcmp(key, "media") && !strcmp(val, "disk"))) {
            /* what Ferry does anyway */
        } else {
            return g_strdup_printf("invalid '%s' in --drive %s: use file=FILE, format=raw|qcow2, "
                                   "readonly=on|off", kv, spec);
        }
    }
    if (!d->path)
        return g_strdup_printf("--drive %s has no file=FILE", spec);
    return NULL;
}

static void
drive_config_clear(FerryDriveConfig *d)
{
    g_clear_pointer(&d->path, g_free);
    g_clear_pointer(&d->format, g_free);
}

static int
cmd_run(int argc, char **argv)
{
    g_autofree char *arch = NULL, *kernel = NULL, *initrd = NULL, *append = NULL, *bios = NULL;
    g_autofree char *memory = NULL, *serial = NULL, *monitor = NULL, *kvm_device = NULL, *accel = NULL;
    gint smp = 1;
    gboolean no_reboot = FALSE, snapshot = FALSE;
    g_autofree char *hda = NULL, *hdb = NULL, *hdc = NULL, *hdd = NULL;
    char **hd[FERRY_MAX_DISKS] = { &hda, &hdb, &hdc, &hdd };
    g_auto(GStrv) drives = NULL;
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
        { "hda", 0, 0, G_OPTION_ARG_FILENAME, &hda, "First hard disk image (vda in the guest)", "FILE" },
        { "hdb", 0, 0, G_OPTION_ARG_FILENAME, &hdb, "Second hard disk image (vdb)", "FILE" },
        { "hdc", 0, 0, G_OPTION_ARG_FILENAME, &hdc, "Third hard disk image (vdc)", "FILE" },
        { "hdd", 0, 0, G_OPTION_ARG_FILENAME, &hdd, "Fourth hard disk image (vdd)", "FILE" },
        { "drive", 0, 0, G_OPTION_ARG_STRING_ARRAY, &drives,
          "A hard disk in the next free slot (repeat, up to 4 in all)", "file=FILE[,format=raw|qcow2][,readonly=on|off]" },
        { "snapshot", 0, 0, G_OPTION_ARG_NONE, &snapshot,
          "Write to temporary overlays, not to the disk images (monitor: commit, discard)", NULL },
        { "kvm-device", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_FILENAME, &kvm_device, "KVM device (default /dev/kvm)", "PATH" },
        { NULL }
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new("- start a virtual machine");
    g_autoptr(GError) error = NULL;
    FerryVmConfig config;
    gboolean serial_on_stdio = FALSE, monitor_on_stdio = FALSE;

    /* The disk options take a value too: hide them (and their values) from
     * the check for a NAME. */
    g_autoptr(GPtrArray) plain = g_ptr_array_new();
    for (int i = 0; i < argc; i++) {
        static const char *const disk_opts[] = { "--hda", "--hdb", "--hdc", "--hdd", "--drive", NULL };
        if (!strcmp(argv[i], "--"))
            for (; i < argc; i++)
                g_ptr_array_add(plain, argv[i]);
        else if (g_strv_contains(disk_opts, argv[i]))
            i++;
        else
            g_ptr_array_add(plain, argv[i]);
    }
    if (ferryctl_vm_run_names_vm(plain->len, (char **) plain->pdata))
        return ferryctl_vm_run(argc, argv);     /* `ferryctl run NAME`: a VM of the library */
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
        serial_on_stdio = TRUE;
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
            monitor_on_stdio = TRUE;
        else if (g_str_has_prefix(monitor, "unix:") && monitor[5])
            config.monitor_path = monitor + 5;
        else
            return usage_error(ctx, "invalid --monitor '%s': use stdio or unix:PATH", monitor);
    }

    for (guint i = 0; i < FERRY_MAX_DISKS; i++)
        config.disks[i].path = g_strdup(*hd[i]);
    guint slot = 0;
    for (guint k = 0; drives && drives[k]; k++) {
        while (slot < FERRY_MAX_DISKS && config.disks[slot].path)
            slot++;
        if (slot == FERRY_MAX_DISKS) {
            for (guint i = 0; i < FERRY_MAX_DISKS; i++)
                drive_config_clear(&config.disks[i]);
            return usage_error(ctx, "too many hard disks: at most %d (--hda..--hdd and --drive together)",
                               FERRY_MAX_DISKS);
        }
        g_autofree char *problem = parse_drive(drives[k], &config.disks[slot]);
        if (problem) {
            for (guint i = 0; i < FERRY_MAX_DISKS; i++)
                drive_config_clear(&config.disks[i]);
            return usage_error(ctx, "%s", problem);
        }
    }
    config.snapshot = snapshot;
    if (snapshot) {
        /* Changes a crashed one-off run left behind: say where they are. */
        g_autoptr(GPtrArray) left = ferry_vm_config_list_leftovers(&config, NULL);
        for (guint i = 0; left && i < left->len; i++) {
            FerryVmLeftover *l = left->pdata[i];
            g_printerr("ferryctl: note: an earlier --snapshot run left %.1f MiB of changes to %s "
                       "in %s (not used by this run; 'ferryctl img commit' writes them, deleting "
                       "the file drops them)\n", l->pending_bytes / 1048576.0, l->base_path,
                       l->overlay_path);
        }
    }

    int status = ferryctl_run_vm(&config, serial_on_stdio, monitor_on_stdio);
    for (guint i = 0; i < FERRY_MAX_DISKS; i++)
        drive_config_clear(&config.disks[i]);
    return status;
}

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} Subcommand;

static const Subcommand subcommands[] = {
    { "run", "start a virtual machine in this process (from flags, or NAME from the library)", cmd_run },
    { "img", "create, inspect, check, convert and commit disk images (as qemu-img)", ferryctl_img_main },
    { "create", "add a VM to the library", ferryctl_vm_create },
    { "list", "list the VMs in the library (--json)", ferryctl_vm_list },
    { "show", "show a VM's settings", ferryctl_vm_show },
    { "edit", "change a VM's settings (KEY=VALUE...)", ferryctl_vm_edit },
    { "clone", "copy a VM", ferryctl_vm_clone },
    { "delete", "remove a VM and the images Ferry created for it", ferryctl_vm_delete },
    { "export", "write a VM as a libvirt domain XML (--libvirt)", ferryctl_vm_export },
    { "import", "add a VM from a libvirt domain XML", ferryctl_vm_import },
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
    /* A file-size limit (ulimit -f) reached by an image write must be an
     * error the disk reports (EFBIG), not the end of the VM. */
    signal(SIGXFSZ, SIG_IGN);
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

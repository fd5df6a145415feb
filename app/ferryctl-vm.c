/* ferryctl-vm.c: `ferryctl create|list|show|edit|clone|delete|run NAME|export|
 * import`: the VM library from the command line, through store/ and the
 * checks of ferry-vm-record.c that the app uses too. Exit statuses: see
 * ferryctl-vm.h. */
#include "ferryctl-vm.h"
#include "ferryctl-run.h"
#include "ferry-vm-libvirt.h"
#include "ferry-vm-record.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib/gstdio.h>

#define EXIT_REFUSED 1
#define EXIT_USAGE   FERRYCTL_EXIT_USAGE

static int
usage(const char *cmd, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static int
usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_printerr("ferryctl %s: %s\nTry 'ferryctl %s --help'.\n", cmd, msg, cmd);
    return EXIT_USAGE;
}

static int
refused(const char *cmd, const GError *error)
{
    g_printerr("ferryctl %s: %s\n", cmd, error->message);
    return EXIT_REFUSED;
}

#define LIBRARY_OPTION(var) \
    { "library", 0, 0, G_OPTION_ARG_FILENAME, &(var), \
      "The VM library (default: $FERRY_LIBRARY, else $XDG_DATA_HOME/ferry/ferry.db)", "PATH" }

/* Parses argv with entries; returns FALSE (after printing why) on a bad command line. */
static gboolean
parse(const char *cmd, const char *params, const char *summary, GOptionEntry *entries,
      int *argc, char ***argv, int *status)
{
    g_autoptr(GOptionContext) ctx = g_option_context_new(params);
    g_autoptr(GError) error = NULL;

    g_option_context_add_main_entries(ctx, entries, NULL);
    if (summary)
        g_option_context_set_summary(ctx, summary);
    if (!g_option_context_parse(ctx, argc, argv, &error)) {
        *status = usage(cmd, "%s", error->message);
        return FALSE;
    }
    return TRUE;
}

static FerryStore *
open_library(const char *cmd, const char *library, int *status)
{
    g_autofree char *path = library ? g_strdup(library) : ferry_library_default_path();
    g_autoptr(GError) error = NULL;
    FerryStore *store = ferry_store_open(path, &error);
    if (!store)
        *status = refused(cmd, error);
    return store;
}

static char *
running_text(const FerryVmRecord *vm)
{
    GPid pid = 0;
    g_autofree char *program = NULL;
    if (!ferry_run_lock_query(vm->uuid, &pid, &program))
        return g_strdup("stopped");
    if (pid > 0)
        return g_strdup_printf("running in %s (pid %d)", program, (int) pid);
    return g_strdup_printf("running in %s", program);
}

/* ---- JSON --------------------------------------------------------------------- */

static void
json_string(GString *s, const char *v)
{
    if (!v) {
        g_string_append(s, "null");
        return;
    }
    g_string_append_c(s, '"');
    for (const guchar *p = (const guchar *) v; *p; p++) {
        switch (*p) {
        case '"': g_string_append(s, "\\\""); break;
        case '\\': g_string_append(s, "\\\\"); break;
        case '\n': g_string_append(s, "\\n"); break;
        case '\r': g_string_append(s, "\\r"); break;
        case '\t': g_string_append(s, "\\t"); break;
        default:
            if (*p < 0x20)
                g_string_append_printf(s, "\\u%04x", *p);
            else
                g_string_append_c(s, *p);
        }
    }
    g_string_append_c(s, '"');
}

static char *
iso_time(gint64 t)
{
    if (!t)
        return NULL;
    g_autoptr(GDateTime) dt = g_date_time_new_from_unix_local(t);
    return dt ? g_date_time_format_iso8601(dt) : NULL;
}

static void
json_vm(GString *s, const FerryVmRecord *vm, const char *indent)
{
    GPid pid = 0;
    g_autofree char *program = NULL;
    gboolean running = ferry_run_lock_query(vm->uuid, &pid, &program);
    g_autofree char *created = iso_time(vm->created), *last_run = iso_time(vm->last_run);
    g_autofree char *memory = ferry_format_memory(vm->memory_bytes);
    g_autofree char *data_dir = ferry_vm_record_data_dir(vm);

#define KEY(k) g_string_append_printf(s, "%s  \"" k "\": ", indent)
    g_string_append(s, "{\n");
    KEY("name"); json_string(s, vm->name); g_string_append(s, ",\n");
    KEY("uuid"); json_string(s, vm->uuid); g_string_append(s, ",\n");
    KEY("os"); json_string(s, vm->os_id); g_string_append(s, ",\n");
    KEY("arch"); json_string(s, vm->arch); g_string_append(s, ",\n");
    KEY("accel"); json_string(s, vm->accel); g_string_append(s, ",\n");
    KEY("memory"); json_string(s, memory); g_string_append(s, ",\n");
    KEY("memory_bytes"); g_string_append_printf(s, "%" G_GUINT64_FORMAT ",\n", vm->memory_bytes);
    KEY("cpus"); g_string_append_printf(s, "%u,\n", vm->vcpus);
    KEY("firmware"); json_string(s, vm->firmware); g_string_append(s, ",\n");
    KEY("kernel"); json_string(s, vm->kernel); g_string_append(s, ",\n");
    KEY("initrd"); json_string(s, vm->initrd); g_string_append(s, ",\n");
    KEY("cmdline"); json_string(s, vm->cmdline); g_string_append(s, ",\n");
    KEY("display"); json_string(s, vm->display); g_string_append(s, ",\n");
    KEY("network"); json_string(s, vm->network); g_string_append(s, ",\n");
    KEY("sound"); g_string_append_printf(s, "%s,\n", vm->sound ? "true" : "false");
    KEY("usb"); g_string_append_printf(s, "%s,\n", vm->usb ? "true" : "false");
    KEY("snapshot"); g_string_append_printf(s, "%s,\n", vm->snapshot_mode ? "true" : "false");
    KEY("drives"); g_string_append(s, "[");
    for (guint i = 0; i < vm->drives->len; i++) {
        const FerryDriveRecord *d = vm->drives->pdata[i];
        g_string_append_printf(s, "%s\n%s    {\"kind\": ", i ? "," : "", indent);
        json_string(s, ferry_drive_kind_to_string(d->kind));
        g_string_append_printf(s, ", \"slot\": %u, \"path\": ", d->slot);
        json_string(s, d->path);
        g_string_append(s, ", \"format\": ");
        json_string(s, d->format);
        g_string_append_printf(s, ", \"readonly\": %s, \"created_by_ferry\": %s}", d->readonly ? "true" : "false",
                               d->created_by_ferry ? "true" : "false");
    }
    if (vm->drives->len)
        g_string_append_printf(s, "\n%s  ", indent);
    g_string_append(s, "],\n");
    KEY("notes"); json_string(s, vm->notes); g_string_append(s, ",\n");
    KEY("created"); json_string(s, created); g_string_append(s, ",\n");
    KEY("last_run"); json_string(s, last_run); g_string_append(s, ",\n");
    KEY("revision"); g_string_append_printf(s, "%" G_GINT64_FORMAT ",\n", vm->revision);
    KEY("data_dir"); json_string(s, data_dir); g_string_append(s, ",\n");
    KEY("state"); json_string(s, running ? "running" : "stopped"); g_string_append(s, ",\n");
    KEY("running_in");
    if (running) {
        g_string_append(s, "{\"program\": ");
        json_string(s, program);
        g_string_append_printf(s, ", \"pid\": %d}\n", (int) pid);
    } else {
        g_string_append(s, "null\n");
    }
    g_string_append_printf(s, "%s}", indent);
#undef KEY
}

/* ---- list / show ----------------------------------------------------------------- */

static void
pad(GString *s, const char *text, guint width)
{
    g_string_append(s, text);
    for (glong n = g_utf8_strlen(text, -1); n < (glong) width; n++)
        g_string_append_c(s, ' ');
}

int
ferryctl_vm_list(int argc, char **argv)
{
    g_autofree char *library = NULL;
    gboolean json = FALSE;
    int status = 0;
    GOptionEntry entries[] = {
        { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON instead of a table", NULL },
        LIBRARY_OPTION(library),
        { NULL }
    };
    g_autoptr(GError) error = NULL;

    if (!parse("list", "- list the VMs in the library", NULL, entries, &argc, &argv, &status))
        return status;
    if (argc > 1)
        return usage("list", "unexpected argument '%s'", argv[1]);
    g_autoptr(FerryStore) store = open_library("list", library, &status);
    if (!store)
        return status;
    g_autoptr(GPtrArray) vms = ferry_store_list_vms(store, &error);
    if (!vms)
        return refused("list", error);

    GString *s = g_string_new(NULL);
    if (json) {
        g_string_append(s, "[");
        for (guint i = 0; i < vms->len; i++) {
            g_string_append(s, i ? ",\n  " : "\n  ");
            json_vm(s, vms->pdata[i], "  ");
        }
        g_string_append(s, vms->len ? "\n]\n" : "]\n");
    } else if (vms->len == 0) {
        g_string_append_printf(s, "No VMs in %s yet: add one with 'ferryctl create NAME' or 'ferryctl import FILE.xml'.\n",
                               ferry_store_get_path(store));
    } else {
        guint w = 4;
        for (guint i = 0; i < vms->len; i++)
            w = MAX(w, (guint) g_utf8_strlen(((FerryVmRecord *) vms->pdata[i])->name, -1));
        pad(s, "NAME", w + 2);
        g_string_append(s, "ARCH     MEMORY  CPUS  STATE\n");
        for (guint i = 0; i < vms->len; i++) {
            const FerryVmRecord *vm = vms->pdata[i];
            g_autofree char *mem = ferry_format_memory(vm->memory_bytes);
            g_autofree char *cpus = g_strdup_printf("%u", vm->vcpus);
            g_autofree char *state = running_text(vm);
            pad(s, vm->name, w + 2);
            pad(s, vm->arch, 9);
            pad(s, mem, 8);
            pad(s, cpus, 6);
            g_string_append_printf(s, "%s\n", state);
        }
    }
    fputs(s->str, stdout);
    g_string_free(s, TRUE);
    return 0;
}

static const char *
on_off(gboolean b)
{
    return b ? "on" : "off";
}

static void
show_line(GString *s, const char *key, const char *value)
{
    g_autofree char *k = g_strdup_printf("%s:", key);
    pad(s, k, 11);
    g_string_append_printf(s, "%s\n", value ? value : "");
}

int
ferryctl_vm_show(int argc, char **argv)
{
    g_autofree char *library = NULL;
    gboolean json = FALSE;
    int status = 0;
    GOptionEntry entries[] = {
        { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
        LIBRARY_OPTION(library),
        { NULL }
    };
    g_autoptr(GError) error = NULL;

    if (!parse("show", "NAME - show a VM's settings", NULL, entries, &argc, &argv, &status))
        return status;
    if (argc != 2)
        return usage("show", argc < 2 ? "which VM? Give its name" : "unexpected argument '%s'", argv[2]);
    g_autoptr(FerryStore) store = open_library("show", library, &status);
    if (!store)
        return status;
    g_autoptr(FerryVmRecord) vm = ferry_store_get_vm(store, argv[1], &error);
    if (!vm)
        return refused("show", error);

    GString *s = g_string_new(NULL);
    if (json) {
        json_vm(s, vm, "");
        g_string_append_c(s, '\n');
    } else {
        g_autofree char *mem = ferry_format_memory(vm->memory_bytes);
        g_autofree char *cpus = g_strdup_printf("%u", vm->vcpus);
        g_autofree char *created = iso_time(vm->created), *last_run = iso_time(vm->last_run);
        g_autofree char *rev = g_strdup_printf("%" G_GINT64_FORMAT, vm->revision);
        g_autofree char *state = running_text(vm);
        g_autofree char *data_dir = ferry_vm_record_data_dir(vm);

        show_line(s, "name", vm->name);
        show_line(s, "uuid", vm->uuid);
        show_line(s, "os", vm->os_id);
        show_line(s, "arch", vm->arch);
        show_line(s, "accel", vm->accel);
        show_line(s, "memory", mem);
        show_line(s, "cpus", cpus);
        show_line(s, "firmware", vm->firmware);
        show_line(s, "kernel", vm->kernel);
        show_line(s, "initrd", vm->initrd);
        show_line(s, "cmdline", vm->cmdline);
        for (FerryDriveKind k = FERRY_DRIVE_DISK; k <= FERRY_DRIVE_CDROM; k++) {
            for (guint slot = 0; slot < ferry_drive_kind_max_slots(k); slot++) {
                const FerryDriveRecord *d = ferry_vm_record_get_drive(vm, k, slot);
                g_autofree char *key = k == FERRY_DRIVE_CDROM ? g_strdup("cdrom")
                                       : g_strdup_printf("%s%u", ferry_drive_kind_to_string(k), slot);
                g_autofree char *value = d ? g_strdup_printf("%s (%s%s%s)", d->path, d->format ? d->format : "probe",
                                                             d->readonly ? ", read-only" : "",
                                                             d->created_by_ferry ? ", created by Ferry" : "")
                                           : NULL;
                if (d || k != FERRY_DRIVE_FLOPPY || !g_strcmp0(vm->arch, "x86_64"))
                    show_line(s, key, value);
            }
        }
        show_line(s, "display", vm->display);
        show_line(s, "network", vm->network);
        show_line(s, "sound", on_off(vm->sound));
        show_line(s, "usb", on_off(vm->usb));
        show_line(s, "snapshot", on_off(vm->snapshot_mode));
        show_line(s, "notes", vm->notes);
        show_line(s, "created", created);
        show_line(s, "last run", last_run ? last_run : "never");
        show_line(s, "revision", rev);
        show_line(s, "state", state);
        show_line(s, "folder", data_dir);
    }
    fputs(s->str, stdout);
    g_string_free(s, TRUE);
    return 0;
}

/* ---- settings (create flags, edit key=value) ---------------------------------------- */

static gboolean
parse_bool(const char *v, gboolean *out)
{
    static const char *const yes[] = { "on", "yes", "true", "1", NULL }, *const no[] = { "off", "no", "false", "0", NULL };
    for (guint i = 0; yes[i]; i++) {
        if (!g_ascii_strcasecmp(v, yes[i])) {
            *out = TRUE;
            return TRUE;
        }
        if (!g_ascii_strcasecmp(v, no[i])) {
            *out = FALSE;
            return TRUE;
        }
    }
    return FALSE;
}

static void
set_str(char **field, const char *value)
{
    g_free(*field);
    *field = value && *value ? g_strdup(value) : NULL;
}

static char *
absolute(const char *path)
{
    return g_path_is_absolute(path) ? g_strdup(path) : g_canonicalize_filename(path, NULL);
}

#define SETTINGS_HELP \
    "Settings: name, os, arch (x86_64|riscv64), accel (default|kvm|soft), memory (512M, 2G), cpus,\n" \
    "firmware, kernel, initrd, cmdline, display (spice|none), network (user|none), sound, usb,\n" \
    "snapshot (on|off), notes; drives: disk=FILE adds a hard disk, disk0..disk3=FILE sets one\n" \
    "(empty removes it; the file stays), disk0.readonly=on, disk0.format=raw|qcow2; the same for\n" \
    "floppy (floppy0, floppy1) and cdrom. An empty value clears a setting."

/* Applies one key=value to vm; FALSE with a usage (2) or refusal (1) status. */
static gboolean
apply_setting(FerryVmRecord *vm, const char *key, const char *value, int *status, GError **error)
{
    static const char *const strings[] = { "os", "firmware", "kernel", "initrd", "cmdline", NULL };
    char **string_fields[] = { &vm->os_id, &vm->firmware, &vm->kernel, &vm->initrd, &vm->cmdline };

    *status = EXIT_USAGE;
    for (guint i = 0; strings[i]; i++) {
        if (!strcmp(key, strings[i])) {
            g_autofree char *v = *value && i >= 1 && i <= 3 ? absolute(value) : g_strdup(value);
            set_str(string_fields[i], v);
            return TRUE;
        }
    }
    if (!strcmp(key, "name")) {
        set_str(&vm->name, value);
    } else if (!strcmp(key, "notes")) {
        g_free(vm->notes);
        vm->notes = g_strdup(value);
    } else if (!strcmp(key, "arch") || !strcmp(key, "accel") || !strcmp(key, "display") || !strcmp(key, "network")) {
        char **f = !strcmp(key, "arch") ? &vm->arch : !strcmp(key, "accel") ? &vm->accel
                   : !strcmp(key, "display") ? &vm->display : &vm->network;
        g_free(*f);
        *f = g_strdup(value);
        if (!strcmp(key, "accel") && !strcmp(value, "tcg")) {
            g_free(*f);
            *f = g_strdup("soft");
        }
    } else if (!strcmp(key, "memory")) {
        if (!ferry_parse_memory_size(value, &vm->memory_bytes)) {
            g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_INVALID,
                        "invalid memory size '%s': use a number of MiB, or N followed by K, M or G (e.g. 512M, 1G)",
                        value);
            return FALSE;
        }
    } else if (!strcmp(key, "cpus") || !strcmp(key, "vcpus") || !strcmp(key, "smp")) {
        char *end = NULL;
        guint64 n = g_ascii_strtoull(value, &end, 10);
        if (!*value || *end || n > G_MAXUINT) {
            g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_INVALID,
                        "invalid number of vCPUs '%s': give a number from 1 to %d", value, FERRY_MAX_CPUS);
            return FALSE;
        }
        vm->vcpus = n;
    } else if (!strcmp(key, "sound") || !strcmp(key, "usb") || !strcmp(key, "snapshot")) {
        gboolean *f = !strcmp(key, "sound") ? &vm->sound : !strcmp(key, "usb") ? &vm->usb : &vm->snapshot_mode;
        if (!parse_bool(value, f)) {
            g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_INVALID,
                        "invalid value '%s' for %s: use on or off", value, key);
            return FALSE;
        }
    } else {
        /* Drives: disk, disk2, disk2.readonly, floppy0.format, cdrom... */
        g_autofree char *base = g_strdup(key);
        char *prop = strchr(base, '.');
        FerryDriveKind kind;
        if (prop)
            *prop++ = '\0';
        gsize n = strspn(base, "abcdefghijklmnopqrstuvwxyz");
        g_autofree char *kname = g_strndup(base, n);
        const char *digits = base + n;
        if (!ferry_drive_kind_from_string(kname, &kind) || (*digits && !g_ascii_isdigit(*digits)) ||
            (prop && strcmp(prop, "readonly") && strcmp(prop, "format"))) {
            g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_INVALID, "unknown setting '%s'", key);
            return FALSE;
        }
        guint max = ferry_drive_kind_max_slots(kind);
        guint64 slot = 0;
        if (*digits) {
            char *end = NULL;
            slot = g_ascii_strtoull(digits, &end, 10);
            if (*end || slot >= max) {
                *status = EXIT_REFUSED;
                if (max == 1)
                    g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_INVALID,
                                "VM '%s' has one %s drive, named '%s' (no number)", vm->name, kname, kname);
                else
                    g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_INVALID,
                                "there is no %s: a VM has at most %u %s%s, %s0 to %s%u", base, max,
                                kind == FERRY_DRIVE_DISK ? "hard disk" : kname, max > 1 ? "s" : "",
                                kname, kname, max - 1);
                return FALSE;
            }
        }
        *status = EXIT_REFUSED;
        if (prop) {
            FerryDriveRecord *d = ferry_vm_record_get_drive(vm, kind, slot);
            if (!d) {
                g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_INVALID,
                            "VM '%s' has no %s: add one first (%s=FILE)", vm->name, base, base);
                return FALSE;
            }
            if (!strcmp(prop, "readonly")) {
                if (!parse_bool(value, &d->readonly)) {
                    *status = EXIT_USAGE;
                    g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_INVALID,
                                "invalid value '%s' for %s: use on or off", value, key);
                    return FALSE;
                }
            } else {
                set_str(&d->format, value);
            }
        } else if (!*digits && kind != FERRY_DRIVE_CDROM) {
            /* disk=FILE: the next free slot */
            if (!*value) {
                *status = EXIT_USAGE;
                g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_INVALID,
                            "%s= needs a file; to remove a %s, empty its slot (%s0=)", key, kname, kname);
                return FALSE;
            }
            g_autofree char *path = absolute(value);
            if (!ferry_vm_record_add_drive(vm, kind, path, NULL, FALSE, error))
                return FALSE;
        } else if (!*value) {
            FerryDriveRecord *d = ferry_vm_record_get_drive(vm, kind, slot);
            if (d && d->created_by_ferry)
                g_printerr("ferryctl: note: the image %s, which Ferry created, is kept: delete it yourself "
                           "if you no longer need it\n", d->path);
            ferry_vm_record_set_drive(vm, kind, slot, NULL, NULL, FALSE);
        } else {
            g_autofree char *path = absolute(value);
            g_autofree char *format = ferry_image_probe_format(path, NULL);
            FerryDriveRecord *old = ferry_vm_record_get_drive(vm, kind, slot);
            gboolean ro = kind == FERRY_DRIVE_CDROM || (old && old->readonly);
            if (kind == FERRY_DRIVE_FLOPPY && !g_strcmp0(vm->arch, "riscv64")) {
                /* add_drive says it best */
                ferry_vm_record_add_drive(vm, kind, path, NULL, FALSE, error);
                return FALSE;
            }
            if (!format) {
                g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_INVALID,
                            "VM '%s': the %s image %s does not exist: create it (ferryctl img create) or "
                            "correct the path", vm->name, kname, path);
                return FALSE;
            }
            ferry_vm_record_set_drive(vm, kind, slot, path, format, ro);
        }
    }
    return TRUE;
}

/* ---- create ---------------------------------------------------------------------------- */

static char *
create_disk_image(const FerryVmRecord *vm, guint64 size, GError **error)
{
    g_autofree char *dir = ferry_vm_record_data_dir(vm);
    if (g_mkdir_with_parents(dir, 0700) < 0) {
        int e = errno;
        g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_FAILED,
                    "Cannot create the folder %s: %s", dir, g_strerror(e));
        return NULL;
    }
    for (guint n = 0; n < 100; n++) {
        g_autofree char *name = g_strdup_printf("disk-%u.img", n);
        char *path = g_build_filename(dir, name, NULL);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 && errno == EEXIST) {
            g_free(path);
            continue;
        }
        if (fd < 0 || ftruncate(fd, size) < 0) {
            int e = errno;
            if (fd >= 0) {
                close(fd);
                unlink(path);
            }
            g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_FAILED,
                        "Cannot create the disk image %s: %s", path, g_strerror(e));
            g_free(path);
            return NULL;
        }
        close(fd);
        return path;
    }
    g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_FAILED, "Too many disk images in %s", dir);
    return NULL;
}

static void
remove_files(GPtrArray *paths)
{
    for (guint i = 0; paths && i < paths->len; i++)
        g_unlink(paths->pdata[i]);
}

int
ferryctl_vm_create(int argc, char **argv)
{
    g_autofree char *library = NULL, *arch = NULL, *accel = NULL, *memory = NULL, *os = NULL, *kernel = NULL;
    g_autofree char *initrd = NULL, *append = NULL, *bios = NULL, *cdrom = NULL, *display = NULL;
    g_autofree char *network = NULL, *notes = NULL;
    g_auto(GStrv) disks = NULL, floppies = NULL, new_disks = NULL;
    gint cpus = 0;
    gboolean sound = FALSE, usb = FALSE, snapshot = FALSE;
    int status = 0;
    GOptionEntry entries[] = {
        { "arch", 0, 0, G_OPTION_ARG_STRING, &arch, "x86_64 (KVM; the default) or riscv64 (software CPU)", "ARCH" },
        { "accel", 0, 0, G_OPTION_ARG_STRING, &accel, "default, kvm or soft", "ACCEL" },
        { "memory", 'm', 0, G_OPTION_ARG_STRING, &memory, "Memory: N[K|M|G], a bare number is MiB (default 1G)", "SIZE" },
        { "smp", 0, 0, G_OPTION_ARG_INT, &cpus, "Number of virtual CPUs (default 1)", "N" },
        { "os", 0, 0, G_OPTION_ARG_STRING, &os, "Operating system id, e.g. debian12", "ID" },
        { "kernel", 0, 0, G_OPTION_ARG_FILENAME, &kernel, "Linux kernel to boot directly", "FILE" },
        { "initrd", 0, 0, G_OPTION_ARG_FILENAME, &initrd, "Initial RAM disk", "FILE" },
        { "append", 0, 0, G_OPTION_ARG_STRING, &append, "Kernel command line", "CMDLINE" },
        { "bios", 0, 0, G_OPTION_ARG_FILENAME, &bios, "Firmware image", "FILE" },
        { "disk", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &disks, "Hard disk image (up to 4; repeat)", "FILE" },
        { "new-disk", 0, 0, G_OPTION_ARG_STRING_ARRAY, &new_disks,
          "Create an empty raw disk image of SIZE in the VM's folder (repeat)", "SIZE" },
        { "floppy", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &floppies, "Floppy image (x86_64, up to 2; repeat)", "FILE" },
        { "cdrom", 0, 0, G_OPTION_ARG_FILENAME, &cdrom, "CD-ROM image", "FILE" },
        { "display", 0, 0, G_OPTION_ARG_STRING, &display, "spice (default) or none", "KIND" },
        { "network", 0, 0, G_OPTION_ARG_STRING, &network, "user (default) or none", "KIND" },
        { "sound", 0, 0, G_OPTION_ARG_NONE, &sound, "Add a sound card", NULL },
        { "usb", 0, 0, G_OPTION_ARG_NONE, &usb, "Add a USB controller", NULL },
        { "snapshot", 0, 0, G_OPTION_ARG_NONE, &snapshot, "Snapshot mode: guest writes go to an overlay", NULL },
        { "notes", 0, 0, G_OPTION_ARG_STRING, &notes, "Free text", "TEXT" },
        LIBRARY_OPTION(library),
        { NULL }
    };
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) created = g_ptr_array_new_with_free_func(g_free);

    if (!parse("create", "NAME - add a VM to the library", NULL, entries, &argc, &argv, &status))
        return status;
    if (argc != 2)
        return usage("create", argc < 2 ? "give the new VM a name" : "unexpected argument '%s'", argv[2]);

    g_autoptr(FerryVmRecord) vm = ferry_vm_record_new(argv[1]);
    struct { const char *key, *value; } settings[] = {
        { "arch", arch }, { "accel", accel }, { "memory", memory }, { "os", os }, { "kernel", kernel },
        { "initrd", initrd }, { "cmdline", append }, { "firmware", bios }, { "display", display },
        { "network", network }, { "notes", notes },
    };
    for (guint i = 0; i < G_N_ELEMENTS(settings); i++) {
        if (settings[i].value && !apply_setting(vm, settings[i].key, settings[i].value, &status, &error))
            return status == EXIT_USAGE ? usage("create", "%s", error->message) : refused("create", error);
    }
    if (cpus < 0 || cpus > FERRY_MAX_CPUS)
        return usage("create", "--smp %d is out of range: choose 1 to %d", cpus, FERRY_MAX_CPUS);
    if (cpus)
        vm->vcpus = cpus;
    vm->sound = sound;
    vm->usb = usb;
    vm->snapshot_mode = snapshot;

    g_autoptr(FerryStore) store = open_library("create", library, &status);
    if (!store)
        return status;
    /* Before any file is made: the name, and the settings without drives. */
    g_autoptr(FerryVmRecord) existing = ferry_store_get_vm(store, vm->name, NULL);
    if (existing) {
        g_printerr("ferryctl create: There is already a VM named '%s' in the library: choose another name, "
                   "or rename or delete that VM first.\n", existing->name);
        return EXIT_REFUSED;
    }
    if (!ferry_vm_record_check(vm, NULL, &error))
        return refused("create", error);

    for (guint i = 0; disks && disks[i]; i++) {
        g_autofree char *path = absolute(disks[i]);
        if (!ferry_vm_record_add_drive(vm, FERRY_DRIVE_DISK, path, NULL, FALSE, &error))
            return refused("create", error);
    }
    for (guint i = 0; floppies && floppies[i]; i++) {
        g_autofree char *path = absolute(floppies[i]);
        if (!ferry_vm_record_add_drive(vm, FERRY_DRIVE_FLOPPY, path, NULL, FALSE, &error))
            return refused("create", error);
    }
    if (cdrom) {
        g_autofree char *path = absolute(cdrom);
        if (!ferry_vm_record_add_drive(vm, FERRY_DRIVE_CDROM, path, NULL, TRUE, &error))
            return refused("create", error);
    }
    for (guint i = 0; new_disks && new_disks[i]; i++) {
        guint64 size;
        if (!ferry_parse_memory_size(new_disks[i], &size)) {
            remove_files(created);
            return usage("create", "invalid disk size '%s': use N followed by M or G (e.g. 8G)", new_disks[i]);
        }
        if (ferry_vm_record_free_slot(vm, FERRY_DRIVE_DISK) < 0) {
            /* The same words as for an image file. */
            ferry_vm_record_add_drive(vm, FERRY_DRIVE_DISK, "(new disk)", NULL, FALSE, &error);
            remove_files(created);
            return refused("create", error);
        }
        char *path = create_disk_image(vm, size, &error);
        if (!path) {
            remove_files(created);
            return refused("create", error);
        }
        g_ptr_array_add(created, path);
        FerryDriveRecord *d = ferry_vm_record_add_drive(vm, FERRY_DRIVE_DISK, path, "raw", FALSE, &error);
        if (!d) {
            remove_files(created);
            return refused("create", error);
        }
        d->created_by_ferry = TRUE;
    }
    if (!ferry_vm_record_check(vm, NULL, &error) || !ferry_store_save_vm(store, vm, &error)) {
        remove_files(created);
        return refused("create", error);
    }
    g_autofree char *mem = ferry_format_memory(vm->memory_bytes);
    g_print("Created VM '%s' (%s, %s, uuid %s).\n", vm->name, vm->arch, mem, vm->uuid);
    for (guint i = 0; i < created->len; i++)
        g_print("Created the disk image %s.\n", (char *) created->pdata[i]);
    return 0;
}

/* ---- edit ----------------------------------------------------------------------------- */

int
ferryctl_vm_edit(int argc, char **argv)
{
    g_autofree char *library = NULL;
    int status = 0;
    GOptionEntry entries[] = {
        LIBRARY_OPTION(library),
        { NULL }
    };
    g_autoptr(GError) error = NULL;

    if (!parse("edit", "NAME KEY=VALUE... - change a VM's settings", SETTINGS_HELP, entries, &argc, &argv, &status))
        return status;
    if (argc < 3)
        return usage("edit", argc < 2 ? "which VM? Give its name, then KEY=VALUE settings"
                                      : "what to change? Give KEY=VALUE settings after the name");
    g_autoptr(FerryStore) store = open_library("edit", library, &status);
    if (!store)
        return status;
    g_autoptr(FerryVmRecord) old = ferry_store_get_vm(store, argv[1], &error);
    if (!old)
        return refused("edit", error);
    g_autoptr(FerryVmRecord) vm = ferry_vm_record_copy(old);

    for (int i = 2; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        if (!eq || eq == argv[i])
            return usage("edit", "'%s' is not KEY=VALUE (e.g. memory=2G)", argv[i]);
        g_autofree char *key = g_strndup(argv[i], eq - argv[i]);
        if (!apply_setting(vm, key, eq + 1, &status, &error)) {
            if (status == EXIT_USAGE)
                return usage("edit", "%s", error->message);
            return refused("edit", error);
        }
    }
    if (!ferry_vm_record_check(vm, old, &error) || !ferry_store_save_vm(store, vm, &error))
        return refused("edit", error);
    GPid pid = 0;
    g_autofree char *program = NULL;
    if (ferry_run_lock_query(vm->uuid, &pid, &program))
        g_printerr("ferryctl edit: note: VM '%s' is running in %s (pid %d): the changes take effect when it "
                   "next starts.\n", vm->name, program, (int) pid);
    return 0;
}

/* ---- clone ------------------------------------------------------------------------------ */

static gboolean
write_all(int fd, const char *p, gsize len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return FALSE;
        p += n;
        len -= n;
    }
    return TRUE;
}

/* Copies an image, leaving holes where the source reads as zeros. */
static gboolean
copy_sparse(const char *from, const char *to, GError **error)
{
    enum { CHUNK = 1 << 20 };
    int in = open(from, O_RDONLY | O_CLOEXEC), out = -1;
    g_autofree char *buf = g_malloc(CHUNK);
    guint64 total = 0;
    int e = 0;

    if (in < 0 || (out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
        e = errno;
        goto out;
    }
    for (;;) {
        ssize_t n = read(in, buf, CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            e = errno;
            goto out;
        }
        if (n == 0)
            break;
        gboolean zero = buf[0] == 0 && memcmp(buf, buf + 1, n - 1) == 0;
        if (zero ? lseek(out, n, SEEK_CUR) < 0 : !write_all(out, buf, n)) {
            e = errno ? errno : EIO;
            goto out;
        }
        total += n;
    }
    if (ftruncate(out, total) < 0 || fsync(out) < 0)
        e = errno;
out:
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    if (e) {
        if (out >= 0)
            g_unlink(to);
        g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_FAILED, "Cannot copy the image %s to %s: %s",
                    from, to, g_strerror(e));
        return FALSE;
    }
    return TRUE;
}

int
ferryctl_vm_clone(int argc, char **argv)
{
    g_autofree char *library = NULL;
    int status = 0;
    GOptionEntry entries[] = {
        LIBRARY_OPTION(library),
        { NULL }
    };
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) copied = g_ptr_array_new_with_free_func(g_free);
    FerryRunLock *lock = NULL;

    if (!parse("clone", "VM NEW-NAME - copy a VM: its settings, and copies of the images Ferry created for it",
               NULL, entries, &argc, &argv, &status))
        return status;
    if (argc != 3)
        return usage("clone", argc < 3 ? "give the VM to copy and the name of the copy" : "unexpected argument '%s'",
                     argv[3]);
    g_autoptr(FerryStore) store = open_library("clone", library, &status);
    if (!store)
        return status;
    g_autoptr(FerryVmRecord) src = ferry_store_get_vm(store, argv[1], &error);
    if (!src)
        return refused("clone", error);
    g_autoptr(FerryVmRecord) vm = ferry_vm_record_copy(src);
    vm->id = 0;
    vm->revision = 0;
    vm->created = 0;
    vm->last_run = 0;
    set_str(&vm->name, argv[2]);
    g_free(vm->uuid);
    vm->uuid = g_uuid_string_random();

    g_autoptr(FerryVmRecord) taken = ferry_store_get_vm(store, argv[2], NULL);
    if (taken) {
        g_printerr("ferryctl clone: There is already a VM named '%s' in the library: choose another name.\n",
                   taken->name);
        return EXIT_REFUSED;
    }
    g_autofree char *dir = ferry_vm_record_data_dir(vm);
    for (guint i = 0; i < vm->drives->len; i++) {
        FerryDriveRecord *d = vm->drives->pdata[i];
        if (!d->created_by_ferry) {
            if (!d->readonly)
                g_printerr("ferryctl clone: note: '%s' shares the image %s with '%s' (Ferry did not create it, so "
                           "it is not copied): do not run both VMs at once.\n", vm->name, d->path, src->name);
            continue;
        }
        /* Copying an image while its VM writes to it gives a torn copy: hold the source still. */
        if (!lock && !(lock = ferry_run_lock_acquire(src, "ferryctl clone", &error))) {
            g_printerr("ferryctl clone: cannot copy the images of a running VM: %s\n", error->message);
            return EXIT_REFUSED;
        }
        g_autofree char *base = g_path_get_basename(d->path);
        char *to = g_build_filename(dir, base, NULL);
        if (g_mkdir_with_parents(dir, 0700) < 0 || !copy_sparse(d->path, to, &error)) {
            if (!error)
                g_set_error(&error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_FAILED, "Cannot create %s: %s", dir,
                            g_strerror(errno));
            g_free(to);
            remove_files(copied);
            g_rmdir(dir);
            ferry_run_lock_release(lock);
            return refused("clone", error);
        }
        g_ptr_array_add(copied, to);
        g_free(d->path);
        d->path = g_strdup(to);
    }
    ferry_run_lock_release(lock);
    if (!ferry_vm_record_check(vm, src, &error) || !ferry_store_save_vm(store, vm, &error)) {
        remove_files(copied);
        g_rmdir(dir);
        return refused("clone", error);
    }
    g_print("Cloned '%s' as '%s' (uuid %s).\n", src->name, vm->name, vm->uuid);
    for (guint i = 0; i < copied->len; i++)
        g_print("Copied the image to %s.\n", (char *) copied->pdata[i]);
    return 0;
}

/* ---- delete ------------------------------------------------------------------------------ */

/* Removes path (a file or a folder, recursively) except the files in keep;
 * TRUE when it is gone. */
static gboolean
remove_tree(const char *path, GHashTable *keep)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT;
    if (g_hash_table_contains(keep, path))
        return FALSE;
    if (S_ISDIR(st.st_mode)) {
        GDir *d = g_dir_open(path, 0, NULL);
        gboolean all = TRUE;
        const char *name;
        while (d && (name = g_dir_read_name(d))) {
            g_autofree char *child = g_build_filename(path, name, NULL);
            all &= remove_tree(child, keep);
        }
        if (d)
            g_dir_close(d);
        return all && g_rmdir(path) == 0;
    }
    return g_unlink(path) == 0;
}

static gboolean
confirm(const char *question)
{
    char line[64];
    fprintf(stderr, "%s [y/N] ", question);
    fflush(stderr);
    if (!fgets(line, sizeof(line), stdin))
        return FALSE;
    g_strstrip(line);
    return !g_ascii_strcasecmp(line, "y") || !g_ascii_strcasecmp(line, "yes");
}

int
ferryctl_vm_delete(int argc, char **argv)
{
    g_autofree char *library = NULL;
    gboolean yes = FALSE, keep_disks = FALSE;
    int status = 0;
    GOptionEntry entries[] = {
        { "yes", 'y', 0, G_OPTION_ARG_NONE, &yes, "Do not ask (needed without a terminal)", NULL },
        { "keep-disks", 0, 0, G_OPTION_ARG_NONE, &keep_disks, "Keep the disk images Ferry created for the VM", NULL },
        LIBRARY_OPTION(library),
        { NULL }
    };
    g_autoptr(GError) error = NULL;

    if (!parse("delete", "NAME - remove a VM from the library, with the images Ferry created for it",
               "Images that Ferry did not create (files you gave with --disk or disk=FILE) are never deleted.",
               entries, &argc, &argv, &status))
        return status;
    if (argc != 2)
        return usage("delete", argc < 2 ? "which VM? Give its name" : "unexpected argument '%s'", argv[2]);
    g_autoptr(FerryStore) store = open_library("delete", library, &status);
    if (!store)
        return status;
    g_autoptr(FerryVmRecord) vm = ferry_store_get_vm(store, argv[1], &error);
    if (!vm)
        return refused("delete", error);

    g_autoptr(GPtrArray) ours = g_ptr_array_new();
    for (guint i = 0; i < vm->drives->len; i++)
        if (((FerryDriveRecord *) vm->drives->pdata[i])->created_by_ferry)
            g_ptr_array_add(ours, ((FerryDriveRecord *) vm->drives->pdata[i])->path);

    if (!yes) {
        if (!isatty(STDIN_FILENO)) {
            g_printerr("ferryctl delete: not deleting VM '%s' without asking, and there is no terminal to ask "
                       "on: add --yes.\n", vm->name);
            return EXIT_USAGE;
        }
        GString *q = g_string_new(NULL);
        g_string_printf(q, "Delete VM '%s'?", vm->name);
        if (ours->len && !keep_disks) {
            g_string_append(q, " The images Ferry created for it go too:");
            for (guint i = 0; i < ours->len; i++)
                g_string_append_printf(q, "\n  %s", (char *) ours->pdata[i]);
            g_string_append(q, "\n");
        }
        gboolean go = confirm(q->str);
        g_string_free(q, TRUE);
        if (!go) {
            g_printerr("Kept VM '%s'.\n", vm->name);
            return EXIT_REFUSED;
        }
    }

    /* Held while deleting, so no program starts the VM halfway. */
    FerryRunLock *lock = ferry_run_lock_acquire(vm, "ferryctl delete", &error);
    if (!lock) {
        g_printerr("ferryctl delete: cannot delete a running VM: %s\n", error->message);
        return EXIT_REFUSED;
    }
    if (!ferry_store_delete_vm(store, vm, &error)) {
        ferry_run_lock_release(lock);
        return refused("delete", error);
    }
    g_print("Deleted VM '%s'.\n", vm->name);

    g_autoptr(GHashTable) keep = g_hash_table_new(g_str_hash, g_str_equal);
    for (guint i = 0; i < vm->drives->len; i++) {
        FerryDriveRecord *d = vm->drives->pdata[i];
        if (!d->created_by_ferry || keep_disks)
            g_hash_table_add(keep, d->path);
    }
    for (guint i = 0; i < ours->len; i++) {
        if (keep_disks)
            g_print("Kept the image %s.\n", (char *) ours->pdata[i]);
        else if (g_unlink(ours->pdata[i]) == 0)
            g_print("Deleted the image %s.\n", (char *) ours->pdata[i]);
        else if (errno != ENOENT)
            g_printerr("ferryctl delete: cannot delete the image %s: %s\n", (char *) ours->pdata[i], g_strerror(errno));
    }
    g_autofree char *dir = ferry_vm_record_data_dir(vm);
    remove_tree(dir, keep);
    ferry_run_lock_release(lock);
    return 0;
}

/* ---- run NAME ------------------------------------------------------------------------------- */

gboolean
ferryctl_vm_run_names_vm(int argc, char **argv)
{
    static const char *const with_value[] = {
        "--arch", "--accel", "--kernel", "--initrd", "--append", "--bios", "--memory", "-m", "--smp",
        "--serial", "--monitor", "--kvm-device", "--library", NULL
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--"))
            return i + 1 < argc;
        if (a[0] != '-' || !a[1])
            return TRUE;
        if (strchr(a, '='))
            continue;
        if (g_strv_contains(with_value, a))
            i++;
    }
    return FALSE;
}

int
ferryctl_vm_run(int argc, char **argv)
{
    g_autofree char *library = NULL, *serial = NULL, *monitor = NULL, *kvm_device = NULL;
    gboolean no_reboot = FALSE, serial_on_stdio = FALSE, monitor_on_stdio = FALSE;
    int status = 0;
    GOptionEntry entries[] = {
        { "serial", 0, 0, G_OPTION_ARG_STRING, &serial, "Serial console: stdio, pty, unix:PATH or none (default stdio)", "DEV" },
        { "monitor", 0, 0, G_OPTION_ARG_STRING, &monitor, "Monitor: stdio or unix:PATH", "DEV" },
        { "no-reboot", 0, 0, G_OPTION_ARG_NONE, &no_reboot, "Exit instead of rebooting", NULL },
        { "kvm-device", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_FILENAME, &kvm_device, "KVM device (default /dev/kvm)", "PATH" },
        LIBRARY_OPTION(library),
        { NULL }
    };
    g_autoptr(GError) error = NULL;
    FerryVmConfig config;

    if (!parse("run", "NAME - start a VM of the library in this process",
               "Serial on stdio: Ctrl-A x quits, Ctrl-A c switches to the monitor. To change the VM's hardware, "
               "use 'ferryctl edit'.", entries, &argc, &argv, &status))
        return status;
    if (argc != 2)
        return usage("run", "unexpected argument '%s': give one VM name, or run a VM from flags (--kernel ...)",
                     argv[2]);
    if (serial && strcmp(serial, "stdio") && strcmp(serial, "none") && strcmp(serial, "pty") &&
        !(g_str_has_prefix(serial, "unix:") && serial[5]))
        return usage("run", "invalid --serial '%s': use stdio, pty, unix:PATH or none", serial);
    if (monitor && strcmp(monitor, "stdio") && !(g_str_has_prefix(monitor, "unix:") && monitor[5]))
        return usage("run", "invalid --monitor '%s': use stdio or unix:PATH", monitor);

    FerryStore *store = open_library("run", library, &status);
    if (!store)
        return EXIT_USAGE;
    g_autoptr(FerryVmRecord) vm = ferry_store_get_vm(store, argv[1], &error);
    if (!vm) {
        ferry_store_close(store);
        g_printerr("ferryctl run: %s\n", error->message);
        return EXIT_USAGE;
    }
    FerryRunLock *lock = ferry_run_lock_acquire(vm, "ferryctl", &error);
    if (!lock || !ferry_vm_record_to_config(vm, &config, &error)) {
        ferry_run_lock_release(lock);
        ferry_store_close(store);
        g_printerr("ferryctl run: %s\n", error->message);
        return EXIT_USAGE;
    }
    if (!ferry_store_set_last_run(store, vm->id, g_get_real_time() / G_USEC_PER_SEC, &error)) {
        g_printerr("ferryctl run: warning: %s\n", error->message);
        g_clear_error(&error);
    }
    ferry_store_close(store);

    if (!serial || !strcmp(serial, "stdio")) {
        config.serial = FERRY_SERIAL_EVENT;
        serial_on_stdio = TRUE;
    } else if (!strcmp(serial, "none")) {
        config.serial = FERRY_SERIAL_NONE;
    } else if (!strcmp(serial, "pty")) {
        config.serial = FERRY_SERIAL_PTY;
    } else {
        config.serial = FERRY_SERIAL_UNIX;
        config.serial_path = g_strdup(serial + 5);
    }
    if (monitor && !strcmp(monitor, "stdio"))
        monitor_on_stdio = TRUE;
    else if (monitor)
        config.monitor_path = g_strdup(monitor + 5);
    config.no_reboot = no_reboot;
    config.kvm_device = g_strdup(kvm_device);

    int rc = ferryctl_run_vm(&config, serial_on_stdio, monitor_on_stdio);
    ferry_vm_config_clear(&config);
    ferry_run_lock_release(lock);
    return rc;
}

/* ---- export / import ------------------------------------------------------------------------ */

int
ferryctl_vm_export(int argc, char **argv)
{
    g_autofree char *library = NULL, *output = NULL;
    gboolean libvirt = FALSE;
    int status = 0;
    GOptionEntry entries[] = {
        { "libvirt", 0, 0, G_OPTION_ARG_NONE, &libvirt, "As a libvirt domain (virsh define FILE)", NULL },
        { "output", 'o', 0, G_OPTION_ARG_FILENAME, &output, "Write to FILE instead of standard output", "FILE" },
        LIBRARY_OPTION(library),
        { NULL }
    };
    g_autoptr(GError) error = NULL;

    if (!parse("export", "NAME --libvirt - write a VM's definition for another VM manager", NULL, entries, &argc,
               &argv, &status))
        return status;
    if (argc != 2)
        return usage("export", argc < 2 ? "which VM? Give its name" : "unexpected argument '%s'", argv[2]);
    if (!libvirt)
        return usage("export", "choose a format: --libvirt (a libvirt domain XML)");
    g_autoptr(FerryStore) store = open_library("export", library, &status);
    if (!store)
        return status;
    g_autoptr(FerryVmRecord) vm = ferry_store_get_vm(store, argv[1], &error);
    if (!vm)
        return refused("export", error);
    g_autofree char *xml = ferry_vm_record_to_libvirt_xml(vm);
    if (output) {
        if (!g_file_set_contents(output, xml, -1, &error))
            return refused("export", error);
    } else {
        fputs(xml, stdout);
    }
    return 0;
}

int
ferryctl_vm_import(int argc, char **argv)
{
    g_autofree char *library = NULL, *name = NULL;
    int status = 0;
    GOptionEntry entries[] = {
        { "name", 0, 0, G_OPTION_ARG_STRING, &name, "Name the VM NAME instead of the domain's name", "NAME" },
        LIBRARY_OPTION(library),
        { NULL }
    };
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) warnings = NULL;
    g_autofree char *xml = NULL;
    gsize len;

    if (!parse("import", "FILE.xml - add a VM from a libvirt domain XML (virsh dumpxml)", NULL, entries, &argc,
               &argv, &status))
        return status;
    if (argc != 2)
        return usage("import", argc < 2 ? "which file? Give a libvirt domain XML" : "unexpected argument '%s'",
                     argv[2]);
    if (!g_file_get_contents(argv[1], &xml, &len, &error))
        return refused("import", error);
    g_autoptr(FerryVmRecord) vm = ferry_vm_record_from_libvirt_xml(xml, len, argv[1], &warnings, &error);
    if (!vm)
        return refused("import", error);
    if (name)
        set_str(&vm->name, name);
    if (!vm->name) {
        g_printerr("ferryctl import: %s has no <name>: import it with --name NAME.\n", argv[1]);
        return EXIT_REFUSED;
    }
    g_autoptr(FerryStore) store = open_library("import", library, &status);
    if (!store)
        return status;
    g_autoptr(FerryVmRecord) same = ferry_store_get_vm_by_uuid(store, vm->uuid, NULL);
    if (same) {
        g_printerr("ferryctl import: note: VM '%s' in the library has the uuid %s already: '%s' gets a new one.\n",
                   same->name, vm->uuid, vm->name);
        g_free(vm->uuid);
        vm->uuid = g_uuid_string_random();
    }
    for (guint i = 0; i < warnings->len; i++)
        g_printerr("ferryctl import: note: %s\n", (char *) warnings->pdata[i]);
    if (!ferry_vm_record_check(vm, NULL, &error) || !ferry_store_save_vm(store, vm, &error))
        return refused("import", error);
    g_print("Imported VM '%s' from %s.\n", vm->name, argv[1]);
    return 0;
}

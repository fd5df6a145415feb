/* ferry-new-vm-assistant.c: the New Virtual Machine assistant: from an ISO,
 * an existing disk image or a Linux kernel + initrd; the architecture is
 * taken from a kernel when it says; name, memory and vCPUs bounded by this
 * host; a new qcow2 disk or none; up to two floppies; a summary. Each page
 * checks itself as the user types (never a dialog after the fact). */
#include "ferry-new-vm-assistant.h"
#include "ferry-file-kind.h"
#include "ferry-vm-record.h"
#include "block/block.h"
#include "ferry-os-detect.h"

#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <unistd.h>

struct _FerryNewVmAssistant {
    GtkAssistant parent_instance;

    GtkWidget *source_page, *hardware_page;
    GtkToggleButton *iso_radio, *disk_radio, *kernel_radio;
    GtkFileChooser *iso_chooser, *disk_chooser, *kernel_chooser, *initrd_chooser;
    GtkEntry *cmdline_entry;
    GtkComboBoxText *arch_combo;
    GtkLabel *source_hint, *source_error;
    GtkEntry *name_entry;
    GtkSpinButton *memory_spin, *vcpus_spin, *disk_spin;
    GtkToggleButton *new_disk_check;
    GtkFileChooser *floppy_a_chooser, *floppy_b_chooser;
    GtkLabel *hardware_hint, *hardware_error;
    GtkLabel *summary_label;
    GtkAdjustment *memory_adjustment, *vcpus_adjustment;

    FerryStore *store;
    GCancellable *detecting;
    char *os_id;              /* from the ISO, for the record */
    char *os_name;
    char *detected_for;       /* the ISO the guess is about */
    gboolean name_edited;
    gboolean setting_name;
    const char *detected_arch;
};

G_DEFINE_FINAL_TYPE(FerryNewVmAssistant, ferry_new_vm_assistant, GTK_TYPE_ASSISTANT)

enum { SIGNAL_CREATED, N_SIGNALS };
static guint signals[N_SIGNALS];

static char *
chooser_path(GtkFileChooser *chooser)
{
    return gtk_file_chooser_get_filename(chooser);
}

static const char *
chosen_arch(FerryNewVmAssistant *self)
{
    const char *id = gtk_combo_box_get_active_id(GTK_COMBO_BOX(self->arch_combo));
    return id ? id : "x86_64";
}

static char *
source_path(FerryNewVmAssistant *self)
{
    if (gtk_toggle_button_get_active(self->iso_radio))
        return chooser_path(self->iso_chooser);
    if (gtk_toggle_button_get_active(self->disk_radio))
        return chooser_path(self->disk_chooser);
    return chooser_path(self->kernel_chooser);
}

/* Proposes a name from the OS or the file: "debian-12.iso" -> "debian-12", made unique. */
static void
propose_name(FerryNewVmAssistant *self)
{
    g_autofree char *path = source_path(self);
    g_autofree char *base = NULL;
    if (self->os_name && gtk_toggle_button_get_active(self->iso_radio))
        base = g_strdup(self->os_name);
    else
        base = path ? g_path_get_basename(path) : g_strdup(_("New VM"));
    char *dot = strrchr(base, '.');
    if (dot && dot != base && !self->os_name)
        *dot = '\0';
    g_autofree char *name = g_strdup(base);
    for (guint i = 2; self->store && i < 1000; i++) {
        g_autoptr(FerryVmRecord) vm = ferry_store_get_vm(self->store, name, NULL);
        if (!vm)
            break;
        g_free(name);
        name = g_strdup_printf("%s %u", base, i);
    }
    self->setting_name = TRUE;
    gtk_entry_set_text(self->name_entry, name);
    self->setting_name = FALSE;
}

static void
set_page_complete(FerryNewVmAssistant *self, GtkWidget *page, GtkLabel *error_label, const char *error)
{
    gtk_label_set_text(error_label, error ? error : "");
    gtk_assistant_set_page_complete(GTK_ASSISTANT(self), page, error == NULL);
}

static void on_source_changed(FerryNewVmAssistant *self);

static void
on_os_detected(GObject *source, GAsyncResult *result, gpointer user_data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(FerryOsGuess) guess = ferry_os_detect_media_finish(result, &error);
    if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        return;
    FerryNewVmAssistant *self = user_data;
    g_clear_object(&self->detecting);
    if (!guess) {
        gtk_label_set_text(self->source_hint, error->message);
        return;
    }
    g_free(self->os_id);
    self->os_id = g_strdup(guess->os_id);
    g_free(self->os_name);
    self->os_name = g_strdup(guess->name);
    g_autofree char *hint = g_strdup_printf(_("Detected %s."), guess->name);
    gtk_label_set_text(self->source_hint, hint);
    if (guess->arch)
        gtk_combo_box_set_active_id(GTK_COMBO_BOX(self->arch_combo), guess->arch);
    /* What the OS recommends, within this host's limits. */
    if (guess->ram)
        gtk_spin_button_set_value(self->memory_spin, MIN(guess->ram >> 20, gtk_adjustment_get_upper(self->memory_adjustment)));
    if (guess->n_cpus)
        gtk_spin_button_set_value(self->vcpus_spin, MIN(guess->n_cpus, gtk_adjustment_get_upper(self->vcpus_adjustment)));
    if (guess->storage) {
        gtk_toggle_button_set_active(self->new_disk_check, TRUE);
        gtk_spin_button_set_value(self->disk_spin, MAX(1, guess->storage >> 30));
    }
    if (!self->name_edited)
        propose_name(self);
}

static void
detect_os(FerryNewVmAssistant *self, const char *path)
{
    if (!g_strcmp0(self->detected_for, path))
        return;
    g_free(self->detected_for);
    self->detected_for = g_strdup(path);
    g_clear_pointer(&self->os_id, g_free);
    g_clear_pointer(&self->os_name, g_free);
    if (self->detecting) {
        g_cancellable_cancel(self->detecting);
        g_clear_object(&self->detecting);
    }
    self->detecting = g_cancellable_new();
    gtk_label_set_text(self->source_hint, _("Looking at the installation media…"));
    ferry_os_detect_media_async(path, self->detecting, on_os_detected, self);
}

static void
on_source_changed(FerryNewVmAssistant *self)
{
    gboolean iso = gtk_toggle_button_get_active(self->iso_radio);
    gboolean disk = gtk_toggle_button_get_active(self->disk_radio);
    gboolean kernel = gtk_toggle_button_get_active(self->kernel_radio);
    g_autofree char *path = source_path(self);
    g_autofree char *initrd = chooser_path(self->initrd_chooser);
    g_autoptr(GError) error = NULL;
    const char *problem = NULL;
    g_autofree char *problem_owned = NULL;

    gtk_widget_set_sensitive(GTK_WIDGET(self->iso_chooser), iso);
    gtk_widget_set_sensitive(GTK_WIDGET(self->disk_chooser), disk);
    gtk_widget_set_sensitive(GTK_WIDGET(self->kernel_chooser), kernel);
    gtk_widget_set_sensitive(GTK_WIDGET(self->initrd_chooser), kernel);
    gtk_widget_set_sensitive(GTK_WIDGET(self->cmdline_entry), kernel);
    gtk_label_set_text(self->source_hint, "");

    if (!path) {
        problem = iso ? _("Choose the ISO image to install from.")
                : disk ? _("Choose the disk image to start from.")
                : _("Choose the kernel to boot.");
    } else {
        const char *arch = NULL;
        FerryFileKind kind = ferry_file_kind_detect_arch(path, &arch, &error);
        g_autofree char *base = g_path_get_basename(path);
        if (kind == FERRY_FILE_UNKNOWN)
            problem = problem_owned = g_strdup_printf(_("Ferry cannot use “%s”: %s."), base, error->message);
        else if (iso && kind != FERRY_FILE_ISO)
            problem = problem_owned = g_strdup_printf(_("“%s” is not an ISO image."), base);
        else if (disk && kind != FERRY_FILE_DISK && kind != FERRY_FILE_FLOPPY)
            problem = problem_owned = g_strdup_printf(_("“%s” is not a disk image."), base);
        else if (kernel && kind != FERRY_FILE_KERNEL)
            problem = problem_owned = g_strdup_printf(_("“%s” is not a Linux kernel."), base);
        else if (kernel && initrd && ferry_file_kind_detect(initrd, NULL) != FERRY_FILE_INITRD)
            problem = _("The initial RAM disk is not a cpio archive.");
        if (!problem && arch && arch != self->detected_arch) {
            /* The kernel says what it runs on: follow it, the user may still change it. */
            self->detected_arch = arch;
            gtk_combo_box_set_active_id(GTK_COMBO_BOX(self->arch_combo), arch);
        }
        if (!problem && arch) {
            g_autofree char *hint = g_strdup_printf(_("This kernel is for %s."),
                                                    !g_strcmp0(arch, "riscv64") ? _("RISC-V 64") : _("x86-64"));
            gtk_label_set_text(self->source_hint, hint);
            if (g_strcmp0(arch, chosen_arch(self)) != 0)
                problem = _("The architecture chosen below does not match the kernel.");
        }
    }
    set_page_complete(self, self->source_page, self->source_error, problem);
    if (!problem && iso)
        detect_os(self, path);
    if (!problem && !self->name_edited)
        propose_name(self);
}

static void
on_hardware_changed(FerryNewVmAssistant *self)
{
    const char *name = gtk_entry_get_text(self->name_entry);
    g_autofree char *problem = NULL;
    gboolean riscv = !g_strcmp0(chosen_arch(self), "riscv64");
    g_autofree char *fa = chooser_path(self->floppy_a_chooser);
    g_autofree char *fb = chooser_path(self->floppy_b_chooser);

    if (!self->setting_name && gtk_widget_has_focus(GTK_WIDGET(self->name_entry)))
        self->name_edited = TRUE;
    gtk_widget_set_sensitive(GTK_WIDGET(self->disk_spin), gtk_toggle_button_get_active(self->new_disk_check));
    gtk_widget_set_sensitive(GTK_WIDGET(self->floppy_a_chooser), !riscv);
    gtk_widget_set_sensitive(GTK_WIDGET(self->floppy_b_chooser), !riscv);
    gtk_label_set_text(self->hardware_hint,
                       riscv ? _("RISC-V machines have no floppy controller.")
                             : _("Memory and virtual CPUs are limited to what this computer has."));

    g_autofree char *trimmed = g_strstrip(g_strdup(name));
    if (!*trimmed)
        problem = g_strdup(_("Give the virtual machine a name."));
    else if (self->store) {
        g_autoptr(FerryVmRecord) other = ferry_store_get_vm(self->store, trimmed, NULL);
        if (other)
            problem = g_strdup_printf(_("A virtual machine named “%s” already exists: choose another name."), trimmed);
    }
    if (!problem && !riscv && (fa || fb)) {
        for (int i = 0; i < 2 && !problem; i++) {
            const char *p = i == 0 ? fa : fb;
            if (p && ferry_file_kind_detect(p, NULL) == FERRY_FILE_UNKNOWN) {
                g_autofree char *base = g_path_get_basename(p);
                problem = g_strdup_printf(_("“%s” is not a floppy image."), base);
            }
        }
    }
    set_page_complete(self, self->hardware_page, self->hardware_error, problem);
}

static FerryVmRecord *
build_record(FerryNewVmAssistant *self)
{
    g_autofree char *name = g_strstrip(g_strdup(gtk_entry_get_text(self->name_entry)));
    FerryVmRecord *vm = ferry_vm_record_new(name);
    g_autofree char *path = source_path(self);
    gboolean riscv = !g_strcmp0(chosen_arch(self), "riscv64");

    g_free(vm->arch);
    vm->arch = g_strdup(chosen_arch(self));
    g_free(vm->accel);
    vm->accel = g_strdup(riscv ? "soft" : "kvm");
    vm->memory_bytes = (guint64) gtk_spin_button_get_value_as_int(self->memory_spin) << 20;
    vm->vcpus = gtk_spin_button_get_value_as_int(self->vcpus_spin);
    if (gtk_toggle_button_get_active(self->kernel_radio)) {
        vm->kernel = g_strdup(path);
        vm->initrd = chooser_path(self->initrd_chooser);
        vm->cmdline = g_strdup(gtk_entry_get_text(self->cmdline_entry));
    } else if (gtk_toggle_button_get_active(self->iso_radio)) {
        ferry_vm_record_set_drive(vm, FERRY_DRIVE_CDROM, 0, path, "raw", TRUE);
        g_free(vm->os_id);
        vm->os_id = g_strdup(self->os_id);
    } else {
        ferry_vm_record_add_drive(vm, FERRY_DRIVE_DISK, path, NULL, FALSE, NULL);
    }
    if (!riscv) {
        g_autofree char *fa = chooser_path(self->floppy_a_chooser);
        g_autofree char *fb = chooser_path(self->floppy_b_chooser);
        if (fa)
            ferry_vm_record_set_drive(vm, FERRY_DRIVE_FLOPPY, 0, fa, "raw", FALSE);
        if (fb)
            ferry_vm_record_set_drive(vm, FERRY_DRIVE_FLOPPY, 1, fb, "raw", FALSE);
    }
    return vm;
}

static void
on_prepare(GtkAssistant *assistant, GtkWidget *page, gpointer user_data)
{
    FerryNewVmAssistant *self = FERRY_NEW_VM_ASSISTANT(assistant);

    if (page == self->hardware_page) {
        on_hardware_changed(self);
        return;
    }
    if (page != GTK_WIDGET(self->summary_label))
        return;
    g_autoptr(FerryVmRecord) vm = build_record(self);
    g_autofree char *mem = g_format_size_full(vm->memory_bytes, G_FORMAT_SIZE_IEC_UNITS);
    GString *s = g_string_new(NULL);
    g_autofree char *name = g_markup_escape_text(vm->name, -1);
    g_string_append_printf(s, "<b>%s</b>\n\n", name);
    g_string_append_printf(s, _("Architecture: %s\n"), !g_strcmp0(vm->arch, "riscv64")
                           ? _("RISC-V 64, on Ferry’s software processor") : _("x86-64, on KVM"));
    g_string_append_printf(s, _("Memory: %s\n"), mem);
    g_string_append_printf(s, ngettext("%u virtual CPU\n", "%u virtual CPUs\n", vm->vcpus), vm->vcpus);
    if (vm->kernel) {
        g_autofree char *k = g_markup_escape_text(vm->kernel, -1);
        g_string_append_printf(s, _("Kernel: %s\n"), k);
        if (vm->initrd) {
            g_autofree char *i = g_markup_escape_text(vm->initrd, -1);
            g_string_append_printf(s, _("Initial RAM disk: %s\n"), i);
        }
    }
    for (guint i = 0; i < vm->drives->len; i++) {
        FerryDriveRecord *d = vm->drives->pdata[i];
        g_autofree char *p = g_markup_escape_text(d->path, -1);
        const char *what = d->kind == FERRY_DRIVE_DISK ? _("Hard disk")
                         : d->kind == FERRY_DRIVE_CDROM ? _("CD-ROM") : _("Floppy");
        g_string_append_printf(s, "%s: %s\n", what, p);
    }
    if (gtk_toggle_button_get_active(self->new_disk_check))
        g_string_append_printf(s, _("New disk: %d GiB (qcow2, grows as it is used)\n"),
                               gtk_spin_button_get_value_as_int(self->disk_spin));
    gtk_label_set_markup(self->summary_label, s->str);
    g_string_free(s, TRUE);
}

static void
show_apply_error(FerryNewVmAssistant *self, const char *message)
{
    /* Back to the page the user can fix it on, with the reason inline. */
    gtk_assistant_previous_page(GTK_ASSISTANT(self));
    set_page_complete(self, self->hardware_page, self->hardware_error, message);
}

static void
on_apply(GtkAssistant *assistant, gpointer user_data)
{
    FerryNewVmAssistant *self = FERRY_NEW_VM_ASSISTANT(assistant);
    g_autoptr(FerryVmRecord) vm = build_record(self);
    g_autoptr(GError) error = NULL;
    g_autofree char *disk_path = NULL;

    if (gtk_toggle_button_get_active(self->new_disk_check)) {
        g_autofree char *dir = ferry_vm_record_data_dir(vm);
        if (g_mkdir_with_parents(dir, 0700) < 0) {
            g_autofree char *msg = g_strdup_printf(_("Cannot create the folder %s: %s"), dir, g_strerror(errno));
            show_apply_error(self, msg);
            return;
        }
        disk_path = g_build_filename(dir, "disk0.qcow2", NULL);
        FerryBlockCreateOptions opts = {
            .format = "qcow2",
            .size = (guint64) gtk_spin_button_get_value_as_int(self->disk_spin) << 30,
        };
        if (!ferry_block_create(disk_path, &opts, &error)) {
            show_apply_error(self, error->message);
            return;
        }
        FerryDriveRecord *d = ferry_vm_record_add_drive(vm, FERRY_DRIVE_DISK, disk_path, "qcow2", FALSE, &error);
        if (!d) {
            g_unlink(disk_path);
            show_apply_error(self, error->message);
            return;
        }
        d->created_by_ferry = TRUE;
    }
    if (!ferry_vm_record_check(vm, NULL, &error) || !ferry_store_save_vm(self->store, vm, &error)) {
        if (disk_path)
            g_unlink(disk_path);
        show_apply_error(self, error->message);
        return;
    }
    g_signal_emit(self, signals[SIGNAL_CREATED], 0, vm->uuid);
}

static void
on_cancel(GtkAssistant *assistant, gpointer user_data)
{
    gtk_widget_destroy(GTK_WIDGET(assistant));
}

static void
on_close(GtkAssistant *assistant, gpointer user_data)
{
    gtk_widget_destroy(GTK_WIDGET(assistant));
}

static void
ferry_new_vm_assistant_dispose(GObject *object)
{
    FerryNewVmAssistant *self = FERRY_NEW_VM_ASSISTANT(object);
    if (self->detecting) {
        g_cancellable_cancel(self->detecting);
        g_clear_object(&self->detecting);
    }
    G_OBJECT_CLASS(ferry_new_vm_assistant_parent_class)->dispose(object);
}

static void
ferry_new_vm_assistant_finalize(GObject *object)
{
    FerryNewVmAssistant *self = FERRY_NEW_VM_ASSISTANT(object);
    g_free(self->os_id);
    g_free(self->os_name);
    g_free(self->detected_for);
    G_OBJECT_CLASS(ferry_new_vm_assistant_parent_class)->finalize(object);
}

static void
ferry_new_vm_assistant_class_init(FerryNewVmAssistantClass *klass)
{
    GtkWidgetClass *widget_class = GTK_WIDGET_CLASS(klass);

    G_OBJECT_CLASS(klass)->dispose = ferry_new_vm_assistant_dispose;
    G_OBJECT_CLASS(klass)->finalize = ferry_new_vm_assistant_finalize;

    signals[SIGNAL_CREATED] = g_signal_new("created", G_TYPE_FROM_CLASS(klass), G_SIGNAL_RUN_LAST,
                                           0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_STRING);
    gtk_widget_class_set_template_from_resource(widget_class, "/org/ferryvm/Ferry/ui/ferry-new-vm-assistant.ui");
#define BIND(x) gtk_widget_class_bind_template_child(widget_class, FerryNewVmAssistant, x)
    BIND(source_page); BIND(hardware_page);
    BIND(iso_radio); BIND(disk_radio); BIND(kernel_radio);
    BIND(iso_chooser); BIND(disk_chooser); BIND(kernel_chooser); BIND(initrd_chooser);
    BIND(cmdline_entry); BIND(arch_combo); BIND(source_hint); BIND(source_error);
    BIND(name_entry); BIND(memory_spin); BIND(vcpus_spin); BIND(disk_spin); BIND(new_disk_check);
    BIND(floppy_a_chooser); BIND(floppy_b_chooser); BIND(hardware_hint); BIND(hardware_error);
    BIND(summary_label); BIND(memory_adjustment); BIND(vcpus_adjustment);
#undef BIND
    gtk_widget_class_bind_template_callback(widget_class, on_source_changed);
    gtk_widget_class_bind_template_callback(widget_class, on_hardware_changed);
    gtk_widget_class_bind_template_callback(widget_class, on_prepare);
    gtk_widget_class_bind_template_callback(widget_class, on_apply);
    gtk_widget_class_bind_template_callback(widget_class, on_cancel);
    gtk_widget_class_bind_template_callback(widget_class, on_close);
}

static void
ferry_new_vm_assistant_init(FerryNewVmAssistant *self)
{
    gtk_widget_init_template(GTK_WIDGET(self));
    /* Bounded by the host: all its memory and (at most) its CPUs x 4. */
    guint64 host_mib = (guint64) sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGE_SIZE) >> 20;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    gtk_adjustment_set_upper(self->memory_adjustment, host_mib);
    gtk_adjustment_set_upper(self->vcpus_adjustment, MIN(MAX(cpus, 1) * 4, 1024));
    gtk_spin_button_set_value(self->vcpus_spin, MIN(MAX(cpus, 1), 2));
    gtk_combo_box_set_active_id(GTK_COMBO_BOX(self->arch_combo), "x86_64");
    gtk_toggle_button_set_active(self->kernel_radio, FALSE);
    gtk_toggle_button_set_active(self->iso_radio, TRUE);
}

FerryNewVmAssistant *
ferry_new_vm_assistant_new(GtkWindow *parent, FerryStore *store, const char *path)
{
    FerryNewVmAssistant *self = g_object_new(FERRY_TYPE_NEW_VM_ASSISTANT, "transient-for", parent, NULL);
    self->store = store;
    if (path) {
        FerryFileKind kind = ferry_file_kind_detect(path, NULL);
        if (kind == FERRY_FILE_KERNEL) {
            gtk_toggle_button_set_active(self->kernel_radio, TRUE);
            gtk_file_chooser_set_filename(self->kernel_chooser, path);
        } else if (kind == FERRY_FILE_DISK || kind == FERRY_FILE_FLOPPY) {
            gtk_toggle_button_set_active(self->disk_radio, TRUE);
            gtk_file_chooser_set_filename(self->disk_chooser, path);
        } else {
            gtk_toggle_button_set_active(self->iso_radio, TRUE);
            gtk_file_chooser_set_filename(self->iso_chooser, path);
        }
    }
    on_source_changed(self);
    return self;
}

void
ferry_new_vm_assistant_set_kernel(FerryNewVmAssistant *self, const char *kernel, const char *initrd,
                                  const char *cmdline)
{
    gtk_toggle_button_set_active(self->kernel_radio, TRUE);
    gtk_file_chooser_set_filename(self->kernel_chooser, kernel);
    if (initrd)
        gtk_file_chooser_set_filename(self->initrd_chooser, initrd);
    if (cmdline)
        gtk_entry_set_text(self->cmdline_entry, cmdline);
    on_source_changed(self);
}

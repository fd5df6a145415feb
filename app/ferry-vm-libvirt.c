/* ferry-vm-libvirt.c: FerryVmRecord <-> libvirt domain XML (libvirt's
 * formatdomain.html; checked with virt-xml-validate's domain schema). The
 * export is deterministic, so export -> import -> export gives the same text. */
#include "ferry-vm-libvirt.h"
#include "ferry-vm-record.h"

#include <stdlib.h>
#include <string.h>

/* ---- export ---------------------------------------------------------------------- */

static void
add_element(GString *s, const char *indent, const char *name, const char *text)
{
    g_autofree char *esc = g_markup_escape_text(text, -1);
    g_string_append_printf(s, "%s<%s>%s</%s>\n", indent, name, esc, name);
}

static const char *
disk_target(const FerryVmRecord *vm, const FerryDriveRecord *d, const char **bus, char *dev)
{
    switch (d->kind) {
    case FERRY_DRIVE_DISK:
        *bus = "virtio";
        g_snprintf(dev, 8, "vd%c", 'a' + d->slot);
        return "disk";
    case FERRY_DRIVE_FLOPPY:
        *bus = "fdc";
        g_snprintf(dev, 8, "fd%c", 'a' + d->slot);
        return "floppy";
    case FERRY_DRIVE_CDROM:
        break;
    }
    if (!g_strcmp0(vm->arch, "riscv64")) {
        *bus = "scsi";
        g_snprintf(dev, 8, "sda");
    } else {
        *bus = "ide";
        g_snprintf(dev, 8, "hdc");
    }
    return "cdrom";
}

char *
ferry_vm_record_to_libvirt_xml(const FerryVmRecord *vm)
{
    g_return_val_if_fail(vm != NULL, NULL);
    gboolean riscv = !g_strcmp0(vm->arch, "riscv64");
    GString *s = g_string_new(NULL);

    g_string_append_printf(s, "<domain type='%s'>\n", riscv ? "qemu" : "kvm");
    add_element(s, "  ", "name", vm->name);
    add_element(s, "  ", "uuid", vm->uuid);
    if (vm->notes && *vm->notes)
        add_element(s, "  ", "description", vm->notes);
    if (vm->os_id || (vm->accel && g_strcmp0(vm->accel, "default")) || vm->snapshot_mode) {
        g_string_append_printf(s, "  <metadata>\n    <ferry:vm xmlns:ferry='%s'>\n", FERRY_LIBVIRT_NS);
        if (vm->os_id) {
            g_autofree char *esc = g_markup_escape_text(vm->os_id, -1);
            g_string_append_printf(s, "      <ferry:os id='%s'/>\n", esc);
        }
        if (vm->accel && g_strcmp0(vm->accel, "default"))
            add_element(s, "      ", "ferry:accel", vm->accel);
        if (vm->snapshot_mode)
            g_string_append(s, "      <ferry:snapshot-mode/>\n");
        g_string_append(s, "    </ferry:vm>\n  </metadata>\n");
    }
    g_string_append_printf(s, "  <memory unit='KiB'>%" G_GUINT64_FORMAT "</memory>\n", vm->memory_bytes >> 10);
    g_string_append_printf(s, "  <vcpu>%u</vcpu>\n", vm->vcpus);
    g_string_append(s, "  <os>\n");
    g_string_append_printf(s, "    <type arch='%s' machine='%s'>hvm</type>\n", vm->arch, riscv ? "virt" : "pc");
    if (vm->firmware) {
        g_autofree char *esc = g_markup_escape_text(vm->firmware, -1);
        g_string_append_printf(s, "    <loader readonly='yes' type='rom'>%s</loader>\n", esc);
    }
    if (vm->kernel)
        add_element(s, "    ", "kernel", vm->kernel);
    if (vm->initrd)
        add_element(s, "    ", "initrd", vm->initrd);
    if (vm->cmdline)
        add_element(s, "    ", "cmdline", vm->cmdline);
    g_string_append(s, "  </os>\n");
    if (!riscv)
        g_string_append(s, "  <features>\n    <acpi/>\n  </features>\n");
    g_string_append(s, "  <devices>\n");
    for (guint i = 0; vm->drives && i < vm->drives->len; i++) {
        const FerryDriveRecord *d = vm->drives->pdata[i];
        const char *bus;
        char dev[8];
        const char *device = disk_target(vm, d, &bus, dev);
        g_autofree char *probed = d->format ? NULL : ferry_image_probe_format(d->path, NULL);
        g_autofree char *path = g_markup_escape_text(d->path, -1);

        g_string_append_printf(s, "    <disk type='file' device='%s'>\n", device);
        g_string_append_printf(s, "      <driver name='qemu' type='%s'/>\n",
                               d->format ? d->format : probed ? probed : "raw");
        g_string_append_printf(s, "      <source file='%s'/>\n", path);
        g_string_append_printf(s, "      <target dev='%s' bus='%s'/>\n", dev, bus);
        if (d->readonly)
            g_string_append(s, "      <readonly/>\n");
        g_string_append(s, "    </disk>\n");
    }
    g_string_append_printf(s, "    <controller type='usb' model='%s'/>\n", vm->usb ? "qemu-xhci" : "none");
    if (!g_strcmp0(vm->network, "user"))
        g_string_append(s, "    <interface type='user'>\n      <model type='virtio'/>\n    </interface>\n");
    g_string_append(s, "    <serial type='pty'>\n      <target port='0'/>\n    </serial>\n");
    g_string_append(s, "    <console type='pty'>\n      <target type='serial' port='0'/>\n    </console>\n");
    if (!g_strcmp0(vm->display, "spice"))
        g_string_append(s, "    <graphics type='spice' autoport='yes'/>\n");
    if (vm->sound)
        g_string_append(s, "    <sound model='ich9'/>\n");
    if (!g_strcmp0(vm->display, "spice"))
        g_string_append_printf(s, "    <video>\n      <model type='%s'/>\n    </video>\n", riscv ? "virtio" : "vga");
    g_string_append(s, "  </devices>\n</domain>\n");
    return g_string_free(s, FALSE);
}

/* ---- import ----------------------------------------------------------------------- */

typedef struct {
    FerryVmRecord *vm;
    const char *origin;
    GPtrArray *warnings;
    GPtrArray *stack;           /* element names, outermost first */
    GString *text;
    char *domain_type;
    char *memory_unit;
    char *ferry_prefix;         /* "ferry:" when <metadata> holds our namespace */
    gboolean saw_domain, saw_memory, saw_vcpu, saw_network, saw_display;
    /* the <disk> being read */
    gboolean in_disk;
    char *disk_type, *disk_device, *disk_format, *disk_source, *disk_target;
    gboolean disk_readonly;
    GPtrArray *pending;         /* FerryDriveRecord* read in document order */
} Import;

static void
warn(Import *im, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void
warn(Import *im, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_ptr_array_add(im->warnings, g_strdup_vprintf(fmt, ap));
    va_end(ap);
}

static const char *
parent(Import *im, guint up)
{
    return im->stack->len > up ? im->stack->pdata[im->stack->len - 1 - up] : "";
}

static gboolean
in_path(Import *im, const char *a, const char *b)
{
    /* The element being handled sits at depth len-1; a is its parent, b its grandparent. */
    return !strcmp(parent(im, 1), a) && (!b || !strcmp(parent(im, 2), b));
}

static const char *
attr(const char **names, const char **values, const char *name)
{
    for (guint i = 0; names[i]; i++)
        if (!strcmp(names[i], name))
            return values[i];
    return NULL;
}

static gboolean
is_ferry(Import *im, const char *element, const char *local)
{
    return im->ferry_prefix && g_str_has_prefix(element, im->ferry_prefix) &&
           !strcmp(element + strlen(im->ferry_prefix), local);
}

static void
on_start(GMarkupParseContext *ctx, const char *element, const char **names, const char **values,
         gpointer user_data, GError **error)
{
    Import *im = user_data;

    g_ptr_array_add(im->stack, g_strdup(element));
    g_string_truncate(im->text, 0);

    if (im->stack->len == 1) {
        if (strcmp(element, "domain")) {
            g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_INVALID,
                        "%s is not a libvirt domain: its outermost element is <%s>, not <domain>. Give the XML "
                        "that 'virsh dumpxml VM' prints.", im->origin, element);
            return;
        }
        im->saw_domain = TRUE;
        im->domain_type = g_strdup(attr(names, values, "type"));
        return;
    }
    if (!strcmp(element, "memory") && im->stack->len == 2) {
        im->memory_unit = g_strdup(attr(names, values, "unit"));
    } else if (!strcmp(element, "type") && in_path(im, "os", "domain")) {
        const char *arch = attr(names, values, "arch");
        if (arch) {
            g_free(im->vm->arch);
            im->vm->arch = g_strdup(arch);
        }
    } else if (in_path(im, "metadata", "domain")) {
        for (guint i = 0; names[i]; i++) {
            if (g_str_has_prefix(names[i], "xmlns:") && !strcmp(values[i], FERRY_LIBVIRT_NS)) {
                g_free(im->ferry_prefix);
                im->ferry_prefix = g_strdup_printf("%s:", names[i] + 6);
            }
        }
    } else if (im->stack->len == 4 && !strcmp(parent(im, 2), "metadata")) {
        if (is_ferry(im, element, "os")) {
            const char *id = attr(names, values, "id");
            g_free(im->vm->os_id);
            im->vm->os_id = g_strdup(id);
        } else if (g_str_has_suffix(element, ":os") && !im->vm->os_id && strstr(parent(im, 1), "libosinfo")) {
            /* virt-manager's OS id; Ferry's own wins when both are there. */
            im->vm->os_id = g_strdup(attr(names, values, "id"));
        } else if (is_ferry(im, element, "snapshot-mode")) {
            im->vm->snapshot_mode = TRUE;
        }
    } else if (!strcmp(element, "disk") && in_path(im, "devices", "domain")) {
        im->in_disk = TRUE;
        im->disk_type = g_strdup(attr(names, values, "type"));
        im->disk_device = g_strdup(attr(names, values, "device"));
        im->disk_readonly = FALSE;
    } else if (im->in_disk && in_path(im, "disk", "devices")) {
        if (!strcmp(element, "driver")) {
            g_free(im->disk_format);
            im->disk_format = g_strdup(attr(names, values, "type"));
        } else if (!strcmp(element, "source")) {
            const char *src = attr(names, values, "file");
            if (!src)
                src = attr(names, values, "dev");
            g_free(im->disk_source);
            im->disk_source = g_strdup(src);
        } else if (!strcmp(element, "target")) {
            g_free(im->disk_target);
            im->disk_target = g_strdup(attr(names, values, "dev"));
        } else if (!strcmp(element, "readonly")) {
            im->disk_readonly = TRUE;
        }
    } else if (in_path(im, "devices", "domain")) {
        if (!strcmp(element, "interface")) {
            const char *type = attr(names, values, "type");
            if (type && strcmp(type, "user"))
                warn(im, "network interface of type '%s' imported as user-mode networking (NAT), the kind Ferry has",
                     type);
            im->saw_network = TRUE;
        } else if (!strcmp(element, "graphics")) {
            const char *type = attr(names, values, "type");
            if (type && strcmp(type, "spice"))
                warn(im, "%s display imported as SPICE, the display Ferry has", type);
            im->saw_display = TRUE;
        } else if (!strcmp(element, "sound")) {
            im->vm->sound = TRUE;
        } else if (!strcmp(element, "controller")) {
            const char *type = attr(names, values, "type"), *model = attr(names, values, "model");
            if (!g_strcmp0(type, "usb") && g_strcmp0(model, "none"))
                im->vm->usb = TRUE;
        }
    }
}

static void
on_text(GMarkupParseContext *ctx, const char *text, gsize len, gpointer user_data, GError **error)
{
    Import *im = user_data;
    g_string_append_len(im->text, text, len);
}

/* libvirt's units (virScaleInteger): none is KiB; "k", "KiB" 1024; "KB" 1000; b, bytes. */
static gboolean
parse_memory(char *text, const char *unit, guint64 *bytes)
{
    guint64 scale = 1024, v;
    char *end = NULL;

    if (unit && *unit) {
        const char *powers = "kmgtpe", *p = strchr(powers, g_ascii_tolower(*unit));
        if (!g_ascii_strcasecmp(unit, "b") || !g_ascii_strcasecmp(unit, "bytes")) {
            scale = 1;
        } else if (p) {
            guint64 base;
            if (!unit[1] || !g_ascii_strcasecmp(unit + 1, "iB"))
                base = 1024;
            else if (!g_ascii_strcasecmp(unit + 1, "B"))
                base = 1000;
            else
                return FALSE;
            scale = 1;
            for (long i = 0; i <= p - powers; i++)
                scale *= base;
        } else {
            return FALSE;
        }
    }
    g_strstrip(text);
    if (!g_ascii_isdigit(*text))
        return FALSE;
    v = g_ascii_strtoull(text, &end, 10);
    if (*end || v == 0 || v > G_MAXUINT64 / scale)
        return FALSE;
    *bytes = v * scale;
    return TRUE;
}

static void
finish_disk(Import *im)
{
    FerryDriveKind kind;
    const char *device = im->disk_device ? im->disk_device : "disk";

    if (!strcmp(device, "disk") || !strcmp(device, "lun"))
        kind = FERRY_DRIVE_DISK;
    else if (!strcmp(device, "floppy"))
        kind = FERRY_DRIVE_FLOPPY;
    else if (!strcmp(device, "cdrom"))
        kind = FERRY_DRIVE_CDROM;
    else {
        warn(im, "a disk of device type '%s' was skipped: Ferry has hard disks, floppies and CD-ROMs", device);
        return;
    }
    if (im->disk_type && strcmp(im->disk_type, "file") && strcmp(im->disk_type, "block")) {
        warn(im, "a %s of source type '%s' (%s) was skipped: Ferry uses image files; copy it to a file and add "
             "it with 'ferryctl edit'", device, im->disk_type, im->disk_target ? im->disk_target : "no target");
        return;
    }
    if (!im->disk_source) {
        if (kind != FERRY_DRIVE_CDROM)
            warn(im, "a %s without a source file was skipped", device);
        return;
    }
    FerryDriveRecord *d = g_new0(FerryDriveRecord, 1);
    d->kind = kind;
    d->path = g_strdup(im->disk_source);
    d->format = im->disk_format && (!strcmp(im->disk_format, "raw") || !strcmp(im->disk_format, "qcow2"))
                    ? g_strdup(im->disk_format) : NULL;
    if (im->disk_format && !d->format)
        warn(im, "image %s has format '%s', which Ferry does not read: convert it to qcow2 (qemu-img convert)",
             d->path, im->disk_format);
    d->readonly = im->disk_readonly || kind == FERRY_DRIVE_CDROM;
    /* Our own export names disks vda..vdd by slot; keep those slots. */
    d->slot = G_MAXUINT;
    if (kind == FERRY_DRIVE_DISK && im->disk_target && strlen(im->disk_target) == 3 &&
        g_str_has_prefix(im->disk_target, "vd") && im->disk_target[2] >= 'a' && im->disk_target[2] <= 'd')
        d->slot = im->disk_target[2] - 'a';
    g_ptr_array_add(im->pending, d);
}

static void
on_end(GMarkupParseContext *ctx, const char *element, gpointer user_data, GError **error)
{
    Import *im = user_data;
    char *text = im->text->str;
    guint depth = im->stack->len;

    if (depth == 2) {
        if (!strcmp(element, "name")) {
            g_free(im->vm->name);
            im->vm->name = g_strstrip(g_strdup(text));
        } else if (!strcmp(element, "uuid")) {
            g_autofree char *u = g_ascii_strdown(g_strstrip(text), -1);
            if (g_uuid_string_is_valid(u)) {
                g_free(im->vm->uuid);
                im->vm->uuid = g_steal_pointer(&u);
            } else {
                warn(im, "the uuid '%s' is not valid: the VM gets a new one", text);
            }
        } else if (!strcmp(element, "description")) {
            g_free(im->vm->notes);
            im->vm->notes = g_strdup(text);
        } else if (!strcmp(element, "memory")) {
            if (!parse_memory(text, im->memory_unit, &im->vm->memory_bytes)) {
                g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_INVALID,
                            "%s: <memory unit='%s'>%s</memory> is not a memory size: correct it (e.g. "
                            "<memory unit='MiB'>512</memory>).", im->origin,
                            im->memory_unit ? im->memory_unit : "KiB", text);
                return;
            }
            im->saw_memory = TRUE;
        } else if (!strcmp(element, "vcpu")) {
            char *end = NULL;
            g_strstrip(text);
            guint64 n = g_ascii_strtoull(text, &end, 10);
            if (!*text || *end || n == 0 || n > G_MAXUINT) {
                g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_INVALID,
                            "%s: <vcpu>%s</vcpu> is not a number of vCPUs: correct it.", im->origin, text);
                return;
            }
            im->vm->vcpus = n;
            im->saw_vcpu = TRUE;
        }
    } else if (depth == 3 && !strcmp(parent(im, 1), "os")) {
        char **field = !strcmp(element, "kernel") ? &im->vm->kernel :
                       !strcmp(element, "initrd") ? &im->vm->initrd :
                       !strcmp(element, "cmdline") ? &im->vm->cmdline :
                       !strcmp(element, "loader") ? &im->vm->firmware : NULL;
        if (field) {
            g_free(*field);
            *field = g_strdup(text);
        }
    } else if (depth == 4 && !strcmp(parent(im, 2), "metadata") && is_ferry(im, element, "accel")) {
        g_free(im->vm->accel);
        im->vm->accel = g_strstrip(g_strdup(text));
    } else if (depth == 3 && im->in_disk && !strcmp(element, "disk")) {
        finish_disk(im);
        im->in_disk = FALSE;
        g_clear_pointer(&im->disk_type, g_free);
        g_clear_pointer(&im->disk_device, g_free);
        g_clear_pointer(&im->disk_format, g_free);
        g_clear_pointer(&im->disk_source, g_free);
        g_clear_pointer(&im->disk_target, g_free);
    }
    g_string_truncate(im->text, 0);
    g_ptr_array_remove_index(im->stack, im->stack->len - 1);
}

static void
drive_free(gpointer p)
{
    FerryDriveRecord *d = p;
    g_free(d->path);
    g_free(d->format);
    g_free(d);
}

/* Puts the drives read into slots: fixed ones first, then the rest in order. */
static gboolean
place_drives(Import *im, GError **error)
{
    static const char *const words[] = { "hard disks", "floppies", "CD-ROMs" };
    for (int pass = 0; pass < 2; pass++) {
        for (guint i = 0; i < im->pending->len; i++) {
            FerryDriveRecord *d = im->pending->pdata[i];
            guint slot = d->slot;
            if ((pass == 0) != (slot != G_MAXUINT))
                continue;
            if (slot == G_MAXUINT || ferry_vm_record_get_drive(im->vm, d->kind, slot)) {
                int free_slot = ferry_vm_record_free_slot(im->vm, d->kind);
                if (free_slot < 0) {
                    guint max = ferry_drive_kind_max_slots(d->kind);
                    g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_INVALID,
                                "%s has more %s than the %u a Ferry VM can have (%s does not fit): remove "
                                "some from the XML and import it again.", im->origin, words[d->kind], max, d->path);
                    return FALSE;
                }
                slot = free_slot;
            }
            ferry_vm_record_set_drive(im->vm, d->kind, slot, d->path, d->format, d->readonly);
        }
    }
    return TRUE;
}

FerryVmRecord *
ferry_vm_record_from_libvirt_xml(const char *xml, gssize len, const char *origin, GPtrArray **warnings,
                                 GError **error)
{
    g_return_val_if_fail(xml != NULL, NULL);
    static const GMarkupParser parser = { on_start, on_end, on_text, NULL, NULL };
    Import im = { 0 };
    GMarkupParseContext *ctx;
    g_autoptr(GError) local = NULL;
    gboolean ok;

    im.origin = origin ? origin : "the XML";
    im.vm = ferry_vm_record_new(NULL);
    im.vm->memory_bytes = 0;
    im.vm->vcpus = 1;
    im.warnings = g_ptr_array_new_with_free_func(g_free);
    im.stack = g_ptr_array_new_with_free_func(g_free);
    im.text = g_string_new(NULL);
    im.pending = g_ptr_array_new_with_free_func(drive_free);

    ctx = g_markup_parse_context_new(&parser, G_MARKUP_PREFIX_ERROR_POSITION, &im, NULL);
    ok = g_markup_parse_context_parse(ctx, xml, len, &local) && g_markup_parse_context_end_parse(ctx, &local);
    g_markup_parse_context_free(ctx);

    if (ok && !im.saw_domain) {
        g_set_error(&local, FERRY_STORE_ERROR, FERRY_STORE_ERROR_INVALID,
                    "%s holds no libvirt <domain>: give the XML that 'virsh dumpxml VM' prints.", im.origin);
        ok = FALSE;
    } else if (!ok && local->domain == G_MARKUP_ERROR) {
        g_autofree char *msg = g_strdup_printf("%s is not well-formed XML (%s): correct it, or export it "
                                               "again with 'virsh dumpxml VM'.", im.origin, local->message);
        g_clear_error(&local);
        g_set_error_literal(&local, FERRY_STORE_ERROR, FERRY_STORE_ERROR_INVALID, msg);
    }
    if (ok && !im.saw_memory) {
        g_set_error(&local, FERRY_STORE_ERROR, FERRY_STORE_ERROR_INVALID,
                    "%s: the domain has no <memory>: add one, e.g. <memory unit='MiB'>512</memory>.", im.origin);
        ok = FALSE;
    }
    if (ok && strcmp(im.vm->arch, "x86_64") && strcmp(im.vm->arch, "riscv64")) {
        g_set_error(&local, FERRY_STORE_ERROR, FERRY_STORE_ERROR_INVALID,
                    "%s describes a %s VM: Ferry runs x86_64 and riscv64 VMs only.", im.origin, im.vm->arch);
        ok = FALSE;
    }
    if (ok && im.domain_type && strcmp(im.domain_type, "kvm") && strcmp(im.domain_type, "qemu"))
        warn(&im, "domain type '%s' imported as a Ferry VM (KVM for x86_64, the software CPU for riscv64)",
             im.domain_type);
    if (ok)
        ok = place_drives(&im, &local);
    if (ok) {
        g_free(im.vm->network);
        im.vm->network = g_strdup(im.saw_network ? "user" : "none");
        g_free(im.vm->display);
        im.vm->display = g_strdup(im.saw_display ? "spice" : "none");
    }

    g_ptr_array_unref(im.stack);
    g_string_free(im.text, TRUE);
    g_ptr_array_unref(im.pending);
    g_free(im.domain_type);
    g_free(im.memory_unit);
    g_free(im.ferry_prefix);
    g_free(im.disk_type);
    g_free(im.disk_device);
    g_free(im.disk_format);
    g_free(im.disk_source);
    g_free(im.disk_target);
    if (!ok) {
        g_propagate_error(error, g_steal_pointer(&local));
        ferry_vm_record_free(im.vm);
        g_ptr_array_unref(im.warnings);
        return NULL;
    }
    if (warnings)
        *warnings = im.warnings;
    else
        g_ptr_array_unref(im.warnings);
    return im.vm;
}

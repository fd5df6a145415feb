/* record.c: FerryVmRecord, FerryDriveRecord and FerrySnapshotRecord as plain
 * data: defaults, copies, and the drive slots of a VM. */
#include "store.h"

#include <string.h>

static void
drive_free(gpointer p)
{
    FerryDriveRecord *d = p;
    if (!d)
        return;
    g_free(d->path);
    g_free(d->format);
    g_free(d);
}

FerryVmRecord *
ferry_vm_record_new(const char *name)
{
    FerryVmRecord *vm = g_new0(FerryVmRecord, 1);

    vm->name = g_strdup(name);
    vm->uuid = g_uuid_string_random();
    vm->arch = g_strdup("x86_64");
    vm->accel = g_strdup("default");
    vm->memory_bytes = 1ULL << 30;
    vm->vcpus = 1;
    vm->display = g_strdup("spice");
    vm->network = g_strdup("user");
    vm->notes = g_strdup("");
    vm->drives = g_ptr_array_new_with_free_func(drive_free);
    return vm;
}

FerryVmRecord *
ferry_vm_record_copy(const FerryVmRecord *vm)
{
    g_return_val_if_fail(vm != NULL, NULL);
    FerryVmRecord *n = g_new0(FerryVmRecord, 1);

    *n = *vm;
    n->name = g_strdup(vm->name);
    n->uuid = g_strdup(vm->uuid);
    n->os_id = g_strdup(vm->os_id);
    n->arch = g_strdup(vm->arch);
    n->accel = g_strdup(vm->accel);
    n->firmware = g_strdup(vm->firmware);
    n->kernel = g_strdup(vm->kernel);
    n->initrd = g_strdup(vm->initrd);
    n->cmdline = g_strdup(vm->cmdline);
    n->display = g_strdup(vm->display);
    n->network = g_strdup(vm->network);
    n->notes = g_strdup(vm->notes);
    n->drives = g_ptr_array_new_with_free_func(drive_free);
    for (guint i = 0; vm->drives && i < vm->drives->len; i++) {
        const FerryDriveRecord *d = vm->drives->pdata[i];
        FerryDriveRecord *c = g_new0(FerryDriveRecord, 1);
        *c = *d;
        c->path = g_strdup(d->path);
        c->format = g_strdup(d->format);
        g_ptr_array_add(n->drives, c);
    }
    return n;
}

void
ferry_vm_record_free(FerryVmRecord *vm)
{
    if (!vm)
        return;
    g_free(vm->name);
    g_free(vm->uuid);
    g_free(vm->os_id);
    g_free(vm->arch);
    g_free(vm->accel);
    g_free(vm->firmware);
    g_free(vm->kernel);
    g_free(vm->initrd);
    g_free(vm->cmdline);
    g_free(vm->display);
    g_free(vm->network);
    g_free(vm->notes);
    if (vm->drives)
        g_ptr_array_unref(vm->drives);
    g_free(vm);
}

FerryDriveRecord *
ferry_vm_record_get_drive(const FerryVmRecord *vm, FerryDriveKind kind, guint slot)
{
    g_return_val_if_fail(vm != NULL, NULL);
    for (guint i = 0; vm->drives && i < vm->drives->len; i++) {
        FerryDriveRecord *d = vm->drives->pdata[i];
        if (d->kind == kind && d->slot == slot)
            return d;
    }
    return NULL;
}

static gint
drive_order(gconstpointer a, gconstpointer b)
{
    const FerryDriveRecord *x = *(FerryDriveRecord *const *) a, *y = *(FerryDriveRecord *const *) b;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    return x->slot < y->slot ? -1 : x->slot > y->slot;
}

FerryDriveRecord *
ferry_vm_record_set_drive(FerryVmRecord *vm, FerryDriveKind kind, guint slot,
                          const char *path, const char *format, gboolean readonly)
{
    g_return_val_if_fail(vm != NULL, NULL);
    if (!vm->drives)
        vm->drives = g_ptr_array_new_with_free_func(drive_free);
    for (guint i = 0; i < vm->drives->len; i++) {
        FerryDriveRecord *d = vm->drives->pdata[i];
        if (d->kind == kind && d->slot == slot) {
            g_ptr_array_remove_index(vm->drives, i);
            break;
        }
    }
    if (!path)
        return NULL;
    FerryDriveRecord *d = g_new0(FerryDriveRecord, 1);
    d->kind = kind;
    d->slot = slot;
    d->path = g_strdup(path);
    d->format = g_strdup(format);
    d->readonly = readonly;
    g_ptr_array_add(vm->drives, d);
    g_ptr_array_sort(vm->drives, drive_order);
    return d;
}

int
ferry_vm_record_free_slot(const FerryVmRecord *vm, FerryDriveKind kind)
{
    for (guint s = 0; s < ferry_drive_kind_max_slots(kind); s++)
        if (!ferry_vm_record_get_drive(vm, kind, s))
            return s;
    return -1;
}

guint
ferry_vm_record_count_drives(const FerryVmRecord *vm, FerryDriveKind kind)
{
    guint n = 0;
    for (guint i = 0; vm->drives && i < vm->drives->len; i++)
        n += ((FerryDriveRecord *) vm->drives->pdata[i])->kind == kind;
    return n;
}

static const char *const kind_names[] = { "disk", "floppy", "cdrom" };

const char *
ferry_drive_kind_to_string(FerryDriveKind kind)
{
    return (guint) kind < G_N_ELEMENTS(kind_names) ? kind_names[kind] : "unknown";
}

gboolean
ferry_drive_kind_from_string(const char *s, FerryDriveKind *out)
{
    for (guint i = 0; s && i < G_N_ELEMENTS(kind_names); i++) {
        if (!strcmp(s, kind_names[i])) {
            *out = i;
            return TRUE;
        }
    }
    return FALSE;
}

guint
ferry_drive_kind_max_slots(FerryDriveKind kind)
{
    switch (kind) {
    case FERRY_DRIVE_DISK:
        return FERRY_STORE_MAX_DISKS;
    case FERRY_DRIVE_FLOPPY:
        return FERRY_STORE_MAX_FLOPPIES;
    case FERRY_DRIVE_CDROM:
        return 1;
    }
    return 0;
}

void
ferry_snapshot_record_free(FerrySnapshotRecord *snap)
{
    if (!snap)
        return;
    g_free(snap->name);
    g_free(snap->description);
    g_free(snap->state_path);
    g_free(snap);
}

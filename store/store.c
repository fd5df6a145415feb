/* store.c: the VM library's connection and typed accessors: VMs with their
 * drives, snapshot records. Statements are prepared once and kept; every
 * write is one IMMEDIATE transaction, and a VM is updated only at the
 * revision it was read at (optimistic concurrency between the app and ferryctl). */
#include "store-private.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <glib/gi18n-lib.h>

G_DEFINE_QUARK(ferry-store-error-quark, ferry_store_error)

typedef enum {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_LIST_VMS,
    ST_GET_VM_BY_NAME,
    ST_GET_VM_BY_ID,
    ST_GET_VM_BY_UUID,
    ST_LIST_DRIVES,
    ST_NAME_TAKEN,
    ST_UUID_TAKEN,
    ST_INSERT_VM,
    ST_UPDATE_VM,
    ST_VM_REVISION,
    ST_DELETE_DRIVES,
    ST_INSERT_DRIVE,
    ST_DELETE_VM,
    ST_SET_LAST_RUN,
    ST_LIST_SNAPSHOTS,
    ST_SNAPSHOT_TAKEN,
    ST_INSERT_SNAPSHOT,
    ST_DELETE_SNAPSHOT,
    ST_DATA_VERSION,
    N_STATEMENTS
} StatementId;

#define VM_COLUMNS "id, name, uuid, os_id, arch, accel, memory_bytes, vcpus, firmware, kernel, initrd, " \
                   "cmdline, display, network, sound, usb, snapshot_mode, notes, created, last_run, revision"

static const char *const statement_sql[N_STATEMENTS] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_LIST_VMS] = "SELECT " VM_COLUMNS " FROM vms ORDER BY name",
    [ST_GET_VM_BY_NAME] = "SELECT " VM_COLUMNS " FROM vms WHERE name = ?1",
    [ST_GET_VM_BY_ID] = "SELECT " VM_COLUMNS " FROM vms WHERE id = ?1",
    [ST_GET_VM_BY_UUID] = "SELECT " VM_COLUMNS " FROM vms WHERE uuid = ?1",
    [ST_LIST_DRIVES] = "SELECT kind, slot, path, format, readonly, created_by_ferry FROM drives WHERE vm_id = ?1 "
                       "ORDER BY CASE kind WHEN 'disk' THEN 0 WHEN 'floppy' THEN 1 ELSE 2 END, slot",
    [ST_NAME_TAKEN] = "SELECT name FROM vms WHERE name = ?1 AND id != ?2",
    [ST_UUID_TAKEN] = "SELECT name FROM vms WHERE uuid = ?1 AND id != ?2",
    [ST_INSERT_VM] = "INSERT INTO vms (name, uuid, os_id, arch, accel, memory_bytes, vcpus, firmware, kernel, "
                     "initrd, cmdline, display, network, sound, usb, snapshot_mode, notes, created, last_run, "
                     "revision) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, "
                     "?17, ?18, ?19, 1)",
    [ST_UPDATE_VM] = "UPDATE vms SET name = ?1, uuid = ?2, os_id = ?3, arch = ?4, accel = ?5, memory_bytes = ?6, "
                     "vcpus = ?7, firmware = ?8, kernel = ?9, initrd = ?10, cmdline = ?11, display = ?12, "
                     "network = ?13, sound = ?14, usb = ?15, snapshot_mode = ?16, notes = ?17, "
                     "revision = revision + 1 WHERE id = ?20 AND revision = ?21",
    [ST_VM_REVISION] = "SELECT revision FROM vms WHERE id = ?1",
    [ST_DELETE_DRIVES] = "DELETE FROM drives WHERE vm_id = ?1",
    [ST_INSERT_DRIVE] = "INSERT INTO drives (vm_id, kind, slot, path, format, readonly, created_by_ferry) "
                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_DELETE_VM] = "DELETE FROM vms WHERE id = ?1 AND revision = ?2",
    [ST_SET_LAST_RUN] = "UPDATE vms SET last_run = ?2 WHERE id = ?1",
    [ST_LIST_SNAPSHOTS] = "SELECT id, vm_id, name, description, state_path, created FROM snapshots "
                          "WHERE vm_id = ?1 ORDER BY created, id",
    [ST_SNAPSHOT_TAKEN] = "SELECT id FROM snapshots WHERE vm_id = ?1 AND name = ?2",
    [ST_INSERT_SNAPSHOT] = "INSERT INTO snapshots (vm_id, name, description, state_path, created) "
                           "VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_DELETE_SNAPSHOT] = "DELETE FROM snapshots WHERE id = ?1",
    [ST_DATA_VERSION] = "PRAGMA data_version",
};

struct FerryStore {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *stmts[N_STATEMENTS];
};

/* ---- errors ------------------------------------------------------------------ */

void
ferry_store_set_sqlite_error(GError **error, sqlite3 *db, int rc, const char *path, const char *doing)
{
    const char *why = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    FerryStoreError code = FERRY_STORE_ERROR_FAILED;
    const char *fix;

    switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        code = FERRY_STORE_ERROR_CORRUPT;
        fix = "The file is damaged or is not a Ferry library: Ferry left it as it is. Move it away or restore "
              "it from a backup, or choose another file with --library or FERRY_LIBRARY.";
        break;
    case SQLITE_FULL:
        fix = "The disk is full: free some space and try again.";
        break;
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_AUTH:
        fix = "Check that you may read and write the file and its folder.";
        break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        fix = "Another program kept the library locked for too long: try again.";
        break;
    case SQLITE_IOERR:
        fix = "The disk reported an error: check it, then try again.";
        break;
    default:
        fix = "Try again; if it keeps failing, report it with this message.";
        break;
    }
    g_set_error(error, FERRY_STORE_ERROR, code, _("Cannot %s the VM library %s: %s. %s"),
                doing, path, why, fix);
}

static gboolean
fail(FerryStore *store, int rc, const char *doing, GError **error)
{
    ferry_store_set_sqlite_error(error, store->db, rc, store->path, doing);
    return FALSE;
}

/* ---- statements ---------------------------------------------------------------- */

static sqlite3_stmt *
stmt(FerryStore *store, StatementId id, GError **error)
{
    sqlite3_stmt *st = store->stmts[id];
    if (!st) {
        int rc = sqlite3_prepare_v3(store->db, statement_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
        if (rc != SQLITE_OK) {
            fail(store, rc, "read", error);
            return NULL;
        }
        store->stmts[id] = st;
    }
    return st;
}

static void
done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

static void
bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

/* Runs a statement that returns no rows. */
static gboolean
run(FerryStore *store, sqlite3_stmt *st, const char *doing, GError **error)
{
    int rc = sqlite3_step(st);
    done(st);
    if (rc != SQLITE_DONE)
        return fail(store, rc, doing, error);
    return TRUE;
}

static gboolean
begin(FerryStore *store, GError **error)
{
    sqlite3_stmt *st = stmt(store, ST_BEGIN, error);
    return st && run(store, st, "write to", error);
}

static gboolean
commit(FerryStore *store, GError **error)
{
    sqlite3_stmt *st = stmt(store, ST_COMMIT, error);
    return st && run(store, st, "write to", error);
}

static void
rollback(FerryStore *store)
{
    if (sqlite3_get_autocommit(store->db))
        return;                 /* SQLite already rolled back (e.g. after SQLITE_FULL) */
    sqlite3_stmt *st = stmt(store, ST_ROLLBACK, NULL);
    if (st) {
        sqlite3_step(st);
        done(st);
    }
}

/* ---- open / close -------------------------------------------------------------------- */

static gboolean
pragma(FerryStore *store, const char *sql, const char *expect, GError **error)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(store->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW && expect && g_ascii_strcasecmp((const char *) sqlite3_column_text(st, 0), expect)) {
            g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_FAILED,
                        _("Cannot use the VM library %s: '%s' gave '%s'. Put the library on a local file "
                        "system (not a network share) and try again."), store->path, sql,
                        sqlite3_column_text(st, 0));
            sqlite3_finalize(st);
            return FALSE;
        }
        if (rc == SQLITE_ROW || rc == SQLITE_DONE)
            rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK)
        return fail(store, rc, "set up", error);
    return TRUE;
}

FerryStore *
ferry_store_open(const char *path, GError **error)
{
    g_return_val_if_fail(path != NULL, NULL);
    struct stat sb;
    FerryStore *store;
    gboolean existed = FALSE;
    int rc;

    if (stat(path, &sb) == 0) {
        existed = sb.st_size > 0;
        if (!S_ISREG(sb.st_mode)) {
            g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_FAILED,
                        _("Cannot use %s as the VM library: it is not a regular file. Choose a file with "
                        "--library or FERRY_LIBRARY."), path);
            return NULL;
        }
        if (!ferry_store_schema_inspect(path, error))
            return NULL;
    } else {
        g_autofree char *dir = g_path_get_dirname(path);
        if (g_mkdir_with_parents(dir, 0700) < 0) {
            int e = errno;
            g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_FAILED,
                        _("Cannot create the folder %s for the VM library: %s. Check that you may write there, "
                        "or choose another file with --library or FERRY_LIBRARY."), dir, g_strerror(e));
            return NULL;
        }
    }

    store = g_new0(FerryStore, 1);
    store->path = g_strdup(path);
    rc = sqlite3_open_v2(path, &store->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        fail(store, rc, "open", error);
        ferry_store_close(store);
        return NULL;
    }
    sqlite3_extended_result_codes(store->db, 1);
    sqlite3_busy_timeout(store->db, 5000);
    /* WAL: readers (the app's list) never wait for a writer (ferryctl edit).
     * FULL: a commit is on disk before the call returns, so "saved" means saved. */
    if (!pragma(store, "PRAGMA journal_mode = WAL", "wal", error) ||
        !pragma(store, "PRAGMA synchronous = FULL", NULL, error) ||
        !pragma(store, "PRAGMA foreign_keys = ON", NULL, error) ||
        (existed && !ferry_store_schema_check(store->db, path, error)) ||
        !ferry_store_schema_migrate(store->db, path, error)) {
        ferry_store_close(store);
        return NULL;
    }
    return store;
}

void
ferry_store_close(FerryStore *store)
{
    if (!store)
        return;
    for (guint i = 0; i < N_STATEMENTS; i++)
        sqlite3_finalize(store->stmts[i]);
    sqlite3_close(store->db);
    g_free(store->path);
    g_free(store);
}

const char *
ferry_store_get_path(FerryStore *store)
{
    g_return_val_if_fail(store != NULL, NULL);
    return store->path;
}

/* ---- VMs ---------------------------------------------------------------------------- */

static char *
col_text(sqlite3_stmt *st, int i)
{
    const char *s = (const char *) sqlite3_column_text(st, i);
    return s ? g_strdup(s) : NULL;
}

static gboolean
load_drives(FerryStore *store, FerryVmRecord *vm, GError **error)
{
    sqlite3_stmt *st = stmt(store, ST_LIST_DRIVES, error);
    int rc;

    if (!st)
        return FALSE;
    sqlite3_bind_int64(st, 1, vm->id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        FerryDriveKind kind;
        const char *k = (const char *) sqlite3_column_text(st, 0);
        if (!ferry_drive_kind_from_string(k, &kind)) {
            g_warning("VM library %s: VM '%s' has a drive of unknown kind '%s'; ignored", store->path,
                      vm->name, k);
            continue;
        }
        FerryDriveRecord *d = ferry_vm_record_set_drive(vm, kind, sqlite3_column_int(st, 1),
                                                        (const char *) sqlite3_column_text(st, 2),
                                                        (const char *) sqlite3_column_text(st, 3),
                                                        sqlite3_column_int(st, 4) != 0);
        d->created_by_ferry = sqlite3_column_int(st, 5) != 0;
    }
    done(st);
    if (rc != SQLITE_DONE)
        return fail(store, rc, "read", error);
    return TRUE;
}

static FerryVmRecord *
row_to_vm(sqlite3_stmt *st)
{
    FerryVmRecord *vm = ferry_vm_record_new(NULL);

    g_clear_pointer(&vm->uuid, g_free);
    g_clear_pointer(&vm->arch, g_free);
    g_clear_pointer(&vm->accel, g_free);
    g_clear_pointer(&vm->display, g_free);
    g_clear_pointer(&vm->network, g_free);
    g_clear_pointer(&vm->notes, g_free);
    vm->id = sqlite3_column_int64(st, 0);
    vm->name = col_text(st, 1);
    vm->uuid = col_text(st, 2);
    vm->os_id = col_text(st, 3);
    vm->arch = col_text(st, 4);
    vm->accel = col_text(st, 5);
    vm->memory_bytes = sqlite3_column_int64(st, 6);
    vm->vcpus = sqlite3_column_int(st, 7);
    vm->firmware = col_text(st, 8);
    vm->kernel = col_text(st, 9);
    vm->initrd = col_text(st, 10);
    vm->cmdline = col_text(st, 11);
    vm->display = col_text(st, 12);
    vm->network = col_text(st, 13);
    vm->sound = sqlite3_column_int(st, 14) != 0;
    vm->usb = sqlite3_column_int(st, 15) != 0;
    vm->snapshot_mode = sqlite3_column_int(st, 16) != 0;
    vm->notes = col_text(st, 17);
    if (!vm->notes)
        vm->notes = g_strdup("");
    vm->created = sqlite3_column_int64(st, 18);
    vm->last_run = sqlite3_column_int64(st, 19);
    vm->revision = sqlite3_column_int64(st, 20);
    return vm;
}

/* Runs a bound VM query; returns the records with their drives. */
static GPtrArray *
query_vms(FerryStore *store, sqlite3_stmt *st, GError **error)
{
    GPtrArray *vms = g_ptr_array_new_with_free_func((GDestroyNotify) ferry_vm_record_free);
    int rc;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        g_ptr_array_add(vms, row_to_vm(st));
    done(st);
    if (rc != SQLITE_DONE) {
        fail(store, rc, "read", error);
        g_ptr_array_unref(vms);
        return NULL;
    }
    for (guint i = 0; i < vms->len; i++) {
        if (!load_drives(store, vms->pdata[i], error)) {
            g_ptr_array_unref(vms);
            return NULL;
        }
    }
    return vms;
}

GPtrArray *
ferry_store_list_vms(FerryStore *store, GError **error)
{
    g_return_val_if_fail(store != NULL, NULL);
    sqlite3_stmt *st = stmt(store, ST_LIST_VMS, error);
    return st ? query_vms(store, st, error) : NULL;
}

static FerryVmRecord *
get_one(FerryStore *store, sqlite3_stmt *st, const char *what, GError **error)
{
    GPtrArray *vms = query_vms(store, st, error);
    FerryVmRecord *vm = NULL;

    if (!vms)
        return NULL;
    if (vms->len == 0)
        g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_NOT_FOUND,
                    _("There is no VM %s in the library %s: 'ferryctl list' shows the VMs there."), what, store->path);
    else
        vm = g_ptr_array_steal_index(vms, 0);
    g_ptr_array_unref(vms);
    return vm;
}

FerryVmRecord *
ferry_store_get_vm(FerryStore *store, const char *name, GError **error)
{
    g_return_val_if_fail(store != NULL && name != NULL, NULL);
    sqlite3_stmt *st = stmt(store, ST_GET_VM_BY_NAME, error);
    if (!st)
        return NULL;
    bind_text(st, 1, name);
    g_autofree char *what = g_strdup_printf("named '%s'", name);
    return get_one(store, st, what, error);
}

FerryVmRecord *
ferry_store_get_vm_by_id(FerryStore *store, gint64 id, GError **error)
{
    g_return_val_if_fail(store != NULL, NULL);
    sqlite3_stmt *st = stmt(store, ST_GET_VM_BY_ID, error);
    if (!st)
        return NULL;
    sqlite3_bind_int64(st, 1, id);
    g_autofree char *what = g_strdup_printf("with id %" G_GINT64_FORMAT, id);
    return get_one(store, st, what, error);
}

FerryVmRecord *
ferry_store_get_vm_by_uuid(FerryStore *store, const char *uuid, GError **error)
{
    g_return_val_if_fail(store != NULL && uuid != NULL, NULL);
    sqlite3_stmt *st = stmt(store, ST_GET_VM_BY_UUID, error);
    if (!st)
        return NULL;
    bind_text(st, 1, uuid);
    g_autofree char *what = g_strdup_printf("with uuid %s", uuid);
    return get_one(store, st, what, error);
}

static gboolean
one_of(const char *s, const char *const *choices)
{
    for (; *choices; choices++)
        if (s && !strcmp(s, *choices))
            return TRUE;
    return FALSE;
}

static gboolean
invalid(GError **error, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static gboolean
invalid(GError **error, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error_literal(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_INVALID, msg);
    return FALSE;
}

/* What the library itself cannot hold; host checks (memory, files) are app/'s. */
static gboolean
check_record(const FerryVmRecord *vm, GError **error)
{
    static const char *const arches[] = { "x86_64", "riscv64", NULL };
    static const char *const accels[] = { "default", "kvm", "soft", NULL };
    static const char *const displays[] = { "spice", "none", NULL };
    static const char *const networks[] = { "user", "none", NULL };
    static const char *const formats[] = { "raw", "qcow2", NULL };

    if (!vm->name || !*vm->name)
        return invalid(error, _("A VM needs a name: give it one."));
    if (!g_utf8_validate(vm->name, -1, NULL) || strlen(vm->name) > 200)
        return invalid(error, _("The VM name '%s' is not usable: choose a name of at most 200 characters."), vm->name);
    for (const char *p = vm->name; *p; p++)
        if ((guchar) *p < 0x20 || *p == 0x7f)
            return invalid(error, _("A VM name cannot contain control characters (tabs, new lines): choose another name."));
    if (g_ascii_isspace(vm->name[0]) || g_ascii_isspace(vm->name[strlen(vm->name) - 1]))
        return invalid(error, _("The VM name '%s' starts or ends with a space: remove it."), vm->name);
    if (!vm->uuid || !g_uuid_string_is_valid(vm->uuid))
        return invalid(error, _("VM '%s' has no valid uuid ('%s'): use the form 8-4-4-4-12 of hex digits."),
                       vm->name, vm->uuid ? vm->uuid : "");
    if (!one_of(vm->arch, arches))
        return invalid(error, _("VM '%s': unknown architecture '%s': choose x86_64 or riscv64."),
                       vm->name, vm->arch ? vm->arch : "");
    if (!one_of(vm->accel, accels))
        return invalid(error, _("VM '%s': unknown accelerator '%s': choose default, kvm or soft."),
                       vm->name, vm->accel ? vm->accel : "");
    if (!one_of(vm->display, displays))
        return invalid(error, _("VM '%s': unknown display '%s': choose spice or none."),
                       vm->name, vm->display ? vm->display : "");
    if (!one_of(vm->network, networks))
        return invalid(error, _("VM '%s': unknown network '%s': choose user or none."),
                       vm->name, vm->network ? vm->network : "");
    if (vm->memory_bytes == 0 || vm->memory_bytes > G_MAXINT64)
        return invalid(error, "VM '%s': memory size %" G_GUINT64_FORMAT " is out of range.", vm->name, vm->memory_bytes);
    if (vm->vcpus == 0)
        return invalid(error, _("VM '%s' needs at least one vCPU."), vm->name);
    for (guint i = 0; vm->drives && i < vm->drives->len; i++) {
        const FerryDriveRecord *d = vm->drives->pdata[i];
        guint max = ferry_drive_kind_max_slots(d->kind);
        if (max == 0)
            return invalid(error, _("VM '%s' has a drive of unknown kind."), vm->name);
        if (d->slot >= max)
            return invalid(error, _("VM '%s': %s slot %u does not exist: a VM has %u %s slot%s (0 to %u)."),
                           vm->name, ferry_drive_kind_to_string(d->kind), d->slot, max,
                           ferry_drive_kind_to_string(d->kind), max > 1 ? "s" : "", max - 1);
        if (!d->path || !*d->path)
            return invalid(error, _("VM '%s': %s %u has no image file: give its path."), vm->name,
                           ferry_drive_kind_to_string(d->kind), d->slot);
        if (d->format && !one_of(d->format, formats))
            return invalid(error, _("VM '%s': image %s has unknown format '%s': choose raw or qcow2."),
                           vm->name, d->path, d->format);
        for (guint j = 0; j < i; j++) {
            const FerryDriveRecord *e = vm->drives->pdata[j];
            if (e->kind == d->kind && e->slot == d->slot)
                return invalid(error, _("VM '%s' has two drives in %s slot %u: remove one."), vm->name,
                               ferry_drive_kind_to_string(d->kind), d->slot);
        }
    }
    return TRUE;
}

/* Is the name (or uuid) used by another VM than id? */
static gboolean
check_taken(FerryStore *store, const FerryVmRecord *vm, GError **error)
{
    sqlite3_stmt *st = stmt(store, ST_NAME_TAKEN, error);
    int rc;

    if (!st)
        return FALSE;
    bind_text(st, 1, vm->name);
    sqlite3_bind_int64(st, 2, vm->id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_EXISTS,
                    _("There is already a VM named '%s' in the library: choose another name, or rename or "
                    "delete that VM first."), sqlite3_column_text(st, 0));
        done(st);
        return FALSE;
    }
    done(st);
    if (rc != SQLITE_DONE)
        return fail(store, rc, "read", error);

    if (!(st = stmt(store, ST_UUID_TAKEN, error)))
        return FALSE;
    bind_text(st, 1, vm->uuid);
    sqlite3_bind_int64(st, 2, vm->id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_EXISTS,
                    _("VM '%s' in the library already has the uuid %s: give '%s' a new uuid."),
                    sqlite3_column_text(st, 0), vm->uuid, vm->name);
        done(st);
        return FALSE;
    }
    done(st);
    if (rc != SQLITE_DONE)
        return fail(store, rc, "read", error);
    return TRUE;
}

static void
bind_vm(sqlite3_stmt *st, const FerryVmRecord *vm)
{
    bind_text(st, 1, vm->name);
    bind_text(st, 2, vm->uuid);
    bind_text(st, 3, vm->os_id);
    bind_text(st, 4, vm->arch);
    bind_text(st, 5, vm->accel);
    sqlite3_bind_int64(st, 6, vm->memory_bytes);
    sqlite3_bind_int(st, 7, vm->vcpus);
    bind_text(st, 8, vm->firmware);
    bind_text(st, 9, vm->kernel);
    bind_text(st, 10, vm->initrd);
    bind_text(st, 11, vm->cmdline);
    bind_text(st, 12, vm->display);
    bind_text(st, 13, vm->network);
    sqlite3_bind_int(st, 14, vm->sound);
    sqlite3_bind_int(st, 15, vm->usb);
    sqlite3_bind_int(st, 16, vm->snapshot_mode);
    bind_text(st, 17, vm->notes ? vm->notes : "");
}

/* Inside a transaction: why the row at vm->id did not match vm->revision. */
static gboolean
revision_error(FerryStore *store, const FerryVmRecord *vm, const char *action, GError **error)
{
    sqlite3_stmt *st = stmt(store, ST_VM_REVISION, error);
    int rc;

    if (!st)
        return FALSE;
    sqlite3_bind_int64(st, 1, vm->id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_CONFLICT,
                    "VM '%s' was changed by another program (Ferry or ferryctl) after this copy of it was "
                    "read (revision %" G_GINT64_FORMAT ", now %" G_GINT64_FORMAT "): it was not %s. Reload "
                    "the VM and make your change again.", vm->name, vm->revision,
                    (gint64) sqlite3_column_int64(st, 0), action);
    else if (rc == SQLITE_DONE)
        g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_NOT_FOUND,
                    _("VM '%s' was deleted by another program (Ferry or ferryctl): it was not %s."), vm->name, action);
    else
        fail(store, rc, "read", error);
    done(st);
    return FALSE;
}

static gboolean
save_drives(FerryStore *store, const FerryVmRecord *vm, GError **error)
{
    sqlite3_stmt *st = stmt(store, ST_DELETE_DRIVES, error);
    if (!st)
        return FALSE;
    sqlite3_bind_int64(st, 1, vm->id);
    if (!run(store, st, "write to", error))
        return FALSE;
    for (guint i = 0; vm->drives && i < vm->drives->len; i++) {
        const FerryDriveRecord *d = vm->drives->pdata[i];
        if (!(st = stmt(store, ST_INSERT_DRIVE, error)))
            return FALSE;
        sqlite3_bind_int64(st, 1, vm->id);
        bind_text(st, 2, ferry_drive_kind_to_string(d->kind));
        sqlite3_bind_int(st, 3, d->slot);
        bind_text(st, 4, d->path);
        bind_text(st, 5, d->format);
        sqlite3_bind_int(st, 6, d->readonly);
        sqlite3_bind_int(st, 7, d->created_by_ferry);
        if (!run(store, st, "write to", error))
            return FALSE;
    }
    return TRUE;
}

gboolean
ferry_store_save_vm(FerryStore *store, FerryVmRecord *vm, GError **error)
{
    g_return_val_if_fail(store != NULL && vm != NULL, FALSE);
    gint64 id = vm->id, created = vm->created ? vm->created : g_get_real_time() / G_USEC_PER_SEC;
    sqlite3_stmt *st;

    if (!check_record(vm, error) || !begin(store, error))
        return FALSE;
    if (!check_taken(store, vm, error))
        goto fail;
    if (vm->id == 0) {
        if (!(st = stmt(store, ST_INSERT_VM, error)))
            goto fail;
        bind_vm(st, vm);
        sqlite3_bind_int64(st, 18, created);
        if (vm->last_run)
            sqlite3_bind_int64(st, 19, vm->last_run);
        if (!run(store, st, "write to", error))
            goto fail;
        vm->id = sqlite3_last_insert_rowid(store->db);
    } else {
        if (!(st = stmt(store, ST_UPDATE_VM, error)))
            goto fail;
        bind_vm(st, vm);
        sqlite3_bind_int64(st, 20, vm->id);
        sqlite3_bind_int64(st, 21, vm->revision);
        if (!run(store, st, "write to", error))
            goto fail;
        if (sqlite3_changes(store->db) != 1) {
            revision_error(store, vm, "saved", error);
            goto fail;
        }
    }
    if (!save_drives(store, vm, error) || !commit(store, error))
        goto fail;
    vm->revision = id == 0 ? 1 : vm->revision + 1;
    vm->created = created;
    return TRUE;

fail:
    rollback(store);
    vm->id = id;
    return FALSE;
}

gboolean
ferry_store_delete_vm(FerryStore *store, const FerryVmRecord *vm, GError **error)
{
    g_return_val_if_fail(store != NULL && vm != NULL, FALSE);
    sqlite3_stmt *st;

    if (!begin(store, error))
        return FALSE;
    if (!(st = stmt(store, ST_DELETE_VM, error)))
        goto fail;
    sqlite3_bind_int64(st, 1, vm->id);
    sqlite3_bind_int64(st, 2, vm->revision);
    if (!run(store, st, "write to", error))
        goto fail;
    if (sqlite3_changes(store->db) != 1) {
        revision_error(store, vm, "deleted", error);
        goto fail;
    }
    if (!commit(store, error))
        goto fail;
    return TRUE;
fail:
    rollback(store);
    return FALSE;
}

gboolean
ferry_store_set_last_run(FerryStore *store, gint64 vm_id, gint64 when, GError **error)
{
    g_return_val_if_fail(store != NULL, FALSE);
    sqlite3_stmt *st = stmt(store, ST_SET_LAST_RUN, error);
    if (!st)
        return FALSE;
    sqlite3_bind_int64(st, 1, vm_id);
    sqlite3_bind_int64(st, 2, when);
    return run(store, st, "write to", error);
}

/* ---- snapshot records ------------------------------------------------------------------ */

GPtrArray *
ferry_store_list_snapshots(FerryStore *store, gint64 vm_id, GError **error)
{
    g_return_val_if_fail(store != NULL, NULL);
    sqlite3_stmt *st = stmt(store, ST_LIST_SNAPSHOTS, error);
    GPtrArray *snaps;
    int rc;

    if (!st)
        return NULL;
    snaps = g_ptr_array_new_with_free_func((GDestroyNotify) ferry_snapshot_record_free);
    sqlite3_bind_int64(st, 1, vm_id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        FerrySnapshotRecord *s = g_new0(FerrySnapshotRecord, 1);
        s->id = sqlite3_column_int64(st, 0);
        s->vm_id = sqlite3_column_int64(st, 1);
        s->name = col_text(st, 2);
        s->description = col_text(st, 3);
        if (!s->description)
            s->description = g_strdup("");
        s->state_path = col_text(st, 4);
        s->created = sqlite3_column_int64(st, 5);
        g_ptr_array_add(snaps, s);
    }
    done(st);
    if (rc != SQLITE_DONE) {
        fail(store, rc, "read", error);
        g_ptr_array_unref(snaps);
        return NULL;
    }
    return snaps;
}

gboolean
ferry_store_add_snapshot(FerryStore *store, FerrySnapshotRecord *snap, GError **error)
{
    g_return_val_if_fail(store != NULL && snap != NULL, FALSE);
    gint64 created = snap->created ? snap->created : g_get_real_time() / G_USEC_PER_SEC;
    sqlite3_stmt *st;
    int rc;

    if (!snap->name || !*snap->name)
        return invalid(error, _("A snapshot needs a name: give it one."));
    if (!begin(store, error))
        return FALSE;
    if (!(st = stmt(store, ST_SNAPSHOT_TAKEN, error)))
        goto fail;
    sqlite3_bind_int64(st, 1, snap->vm_id);
    bind_text(st, 2, snap->name);
    rc = sqlite3_step(st);
    done(st);
    if (rc == SQLITE_ROW) {
        g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_EXISTS,
                    _("The VM already has a snapshot named '%s': choose another name."), snap->name);
        goto fail;
    }
    if (rc != SQLITE_DONE) {
        fail(store, rc, "read", error);
        goto fail;
    }
    if (!(st = stmt(store, ST_INSERT_SNAPSHOT, error)))
        goto fail;
    sqlite3_bind_int64(st, 1, snap->vm_id);
    bind_text(st, 2, snap->name);
    bind_text(st, 3, snap->description ? snap->description : "");
    bind_text(st, 4, snap->state_path);
    sqlite3_bind_int64(st, 5, created);
    rc = sqlite3_step(st);
    done(st);
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_NOT_FOUND,
                    _("The VM of snapshot '%s' is not in the library (deleted by another program?)."), snap->name);
        goto fail;
    }
    if (rc != SQLITE_DONE) {
        fail(store, rc, "write to", error);
        goto fail;
    }
    snap->id = sqlite3_last_insert_rowid(store->db);
    if (!commit(store, error))
        goto fail;
    snap->created = created;
    return TRUE;
fail:
    rollback(store);
    return FALSE;
}

gboolean
ferry_store_delete_snapshot(FerryStore *store, gint64 snapshot_id, GError **error)
{
    g_return_val_if_fail(store != NULL, FALSE);
    sqlite3_stmt *st = stmt(store, ST_DELETE_SNAPSHOT, error);
    if (!st)
        return FALSE;
    sqlite3_bind_int64(st, 1, snapshot_id);
    if (!run(store, st, "write to", error))
        return FALSE;
    if (sqlite3_changes(store->db) == 0) {
        g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_NOT_FOUND,
                    "There is no snapshot with id %" G_GINT64_FORMAT " in the library %s.", snapshot_id, store->path);
        return FALSE;
    }
    return TRUE;
}

gint64
ferry_store_get_data_version(FerryStore *store)
{
    g_return_val_if_fail(store != NULL, -1);
    /* Changes when another connection (another program) commits; our own
     * writes do not move it. */
    sqlite3_stmt *st = stmt(store, ST_DATA_VERSION, NULL);
    gint64 v = -1;
    if (!st)
        return -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    done(st);
    return v;
}

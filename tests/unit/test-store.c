/* test-store.c: the VM library (store/) through its C API: CRUD, revisions
 * and conflicts between two connections, migrations from every older schema
 * (tests/fixtures/store/vN.db), damaged, foreign and newer files left
 * untouched, a writer killed with SIGKILL mid-loop, and the running lock. */
#include "store.h"
#include "../lib/ferry-test-proc.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <sqlite3.h>

static char *
tmp_path(const char *name)
{
    g_mkdir_with_parents(g_get_user_data_dir(), 0700);
    return g_build_filename(g_get_user_data_dir(), name, NULL);
}

static FerryStore *
open_ok(const char *path)
{
    g_autoptr(GError) error = NULL;
    FerryStore *store = ferry_store_open(path, &error);
    g_assert_no_error(error);
    g_assert_nonnull(store);
    return store;
}

static FerryVmRecord *
sample_vm(const char *name)
{
    FerryVmRecord *vm = ferry_vm_record_new(name);
    vm->memory_bytes = 512ULL << 20;
    vm->vcpus = 2;
    vm->kernel = g_strdup("/boot/vmlinuz");
    vm->cmdline = g_strdup("console=ttyS0");
    ferry_vm_record_set_drive(vm, FERRY_DRIVE_DISK, 1, "/images/data.qcow2", "qcow2", FALSE);
    ferry_vm_record_set_drive(vm, FERRY_DRIVE_DISK, 0, "/images/root.img", "raw", FALSE)->created_by_ferry = TRUE;
    ferry_vm_record_set_drive(vm, FERRY_DRIVE_CDROM, 0, "/images/install.iso", NULL, TRUE);
    return vm;
}

/* One integer from SQL run on a separate connection, like another program. */
static gint64
sql_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    gint64 v = -1;
    g_assert_cmpint(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), ==, SQLITE_OK);
    g_assert_cmpint(sqlite3_prepare_v2(db, sql, -1, &st, NULL), ==, SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static char *
sql_text(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    GString *s = g_string_new(NULL);
    g_assert_cmpint(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);
    g_assert_cmpint(sqlite3_prepare_v2(db, sql, -1, &st, NULL), ==, SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW)
        g_string_append_printf(s, "%s\n", sqlite3_column_text(st, 0) ? (const char *) sqlite3_column_text(st, 0) : "NULL");
    sqlite3_finalize(st);
    sqlite3_close(db);
    return g_string_free(s, FALSE);
}

static void
test_new_library(void)
{
    g_autofree char *path = g_build_filename(g_get_user_data_dir(), "deep", "folder", "ferry.db", NULL);
    g_autoptr(FerryStore) store = open_ok(path);

    g_assert_true(g_file_test(path, G_FILE_TEST_IS_REGULAR));
    g_assert_cmpstr(ferry_store_get_path(store), ==, path);
    g_assert_cmpint(sql_int(path, "PRAGMA user_version"), ==, FERRY_STORE_SCHEMA_VERSION);
    g_assert_cmpint(sql_int(path, "PRAGMA application_id"), ==, 0x46655259);
    g_autofree char *mode = sql_text(path, "PRAGMA journal_mode");
    g_assert_cmpstr(mode, ==, "wal\n");
    g_autoptr(GPtrArray) vms = ferry_store_list_vms(store, NULL);
    g_assert_cmpuint(vms->len, ==, 0);
    /* Opening again (a second program) migrates nothing and works. */
    g_autoptr(FerryStore) again = open_ok(path);
}

static void
assert_same_vm(const FerryVmRecord *a, const FerryVmRecord *b)
{
    g_assert_cmpint(a->id, ==, b->id);
    g_assert_cmpstr(a->name, ==, b->name);
    g_assert_cmpstr(a->uuid, ==, b->uuid);
    g_assert_cmpstr(a->os_id, ==, b->os_id);
    g_assert_cmpstr(a->arch, ==, b->arch);
    g_assert_cmpstr(a->accel, ==, b->accel);
    g_assert_cmpuint(a->memory_bytes, ==, b->memory_bytes);
    g_assert_cmpuint(a->vcpus, ==, b->vcpus);
    g_assert_cmpstr(a->firmware, ==, b->firmware);
    g_assert_cmpstr(a->kernel, ==, b->kernel);
    g_assert_cmpstr(a->initrd, ==, b->initrd);
    g_assert_cmpstr(a->cmdline, ==, b->cmdline);
    g_assert_cmpstr(a->display, ==, b->display);
    g_assert_cmpstr(a->network, ==, b->network);
    g_assert_cmpint(a->sound, ==, b->sound);
    g_assert_cmpint(a->usb, ==, b->usb);
    g_assert_cmpint(a->snapshot_mode, ==, b->snapshot_mode);
    g_assert_cmpstr(a->notes, ==, b->notes);
    g_assert_cmpint(a->created, ==, b->created);
    g_assert_cmpint(a->last_run, ==, b->last_run);
    g_assert_cmpint(a->revision, ==, b->revision);
    g_assert_cmpuint(a->drives->len, ==, b->drives->len);
    for (guint i = 0; i < a->drives->len; i++) {
        const FerryDriveRecord *x = a->drives->pdata[i], *y = b->drives->pdata[i];
        g_assert_cmpint(x->kind, ==, y->kind);
        g_assert_cmpuint(x->slot, ==, y->slot);
        g_assert_cmpstr(x->path, ==, y->path);
        g_assert_cmpstr(x->format, ==, y->format);
        g_assert_cmpint(x->readonly, ==, y->readonly);
        g_assert_cmpint(x->created_by_ferry, ==, y->created_by_ferry);
    }
}

static void
test_crud(void)
{
    g_autofree char *path = tmp_path("crud.db");
    g_autoptr(FerryStore) store = open_ok(path);
    g_autoptr(GError) error = NULL;
    g_autoptr(FerryVmRecord) vm = sample_vm("web");

    vm->os_id = g_strdup("debian12");
    vm->notes = (g_free(vm->notes), g_strdup("it's \"quoted\"\nand two lines"));
    vm->sound = TRUE;
    g_assert_true(ferry_store_save_vm(store, vm, &error));
    g_assert_no_error(error);
    g_assert_cmpint(vm->id, >, 0);
    g_assert_cmpint(vm->revision, ==, 1);
    g_assert_cmpint(vm->created, >, 1600000000);

    /* Drives come back ordered by kind then slot, whatever order they were added in. */
    g_autoptr(FerryVmRecord) got = ferry_store_get_vm(store, "WEB", &error);     /* names ignore case */
    g_assert_no_error(error);
    assert_same_vm(got, vm);
    g_assert_cmpstr(((FerryDriveRecord *) got->drives->pdata[0])->path, ==, "/images/root.img");
    g_assert_cmpint(((FerryDriveRecord *) got->drives->pdata[2])->kind, ==, FERRY_DRIVE_CDROM);

    /* Update: revision goes up, drives are replaced. */
    got->memory_bytes = 1ULL << 30;
    ferry_vm_record_set_drive(got, FERRY_DRIVE_DISK, 1, NULL, NULL, FALSE);
    ferry_vm_record_set_drive(got, FERRY_DRIVE_FLOPPY, 0, "/images/dos.img", "raw", FALSE);
    g_assert_true(ferry_store_save_vm(store, got, &error));
    g_assert_cmpint(got->revision, ==, 2);
    g_autoptr(FerryVmRecord) got2 = ferry_store_get_vm_by_id(store, vm->id, &error);
    assert_same_vm(got2, got);
    g_autoptr(FerryVmRecord) by_uuid = ferry_store_get_vm_by_uuid(store, vm->uuid, &error);
    assert_same_vm(by_uuid, got);

    /* A run is not an edit: the revision stays. */
    g_assert_true(ferry_store_set_last_run(store, vm->id, 1700000000, &error));
    g_autoptr(FerryVmRecord) ran = ferry_store_get_vm(store, "web", &error);
    g_assert_cmpint(ran->last_run, ==, 1700000000);
    g_assert_cmpint(ran->revision, ==, 2);

    g_autoptr(FerryVmRecord) other = sample_vm("another");
    g_assert_true(ferry_store_save_vm(store, other, &error));
    g_autoptr(GPtrArray) vms = ferry_store_list_vms(store, &error);
    g_assert_cmpuint(vms->len, ==, 2);
    g_assert_cmpstr(((FerryVmRecord *) vms->pdata[0])->name, ==, "another");
    g_assert_cmpstr(((FerryVmRecord *) vms->pdata[1])->name, ==, "web");

    /* Delete takes the drives with it (foreign keys are on). */
    g_assert_true(ferry_store_delete_vm(store, ran, &error));
    g_assert_no_error(error);
    g_assert_null(ferry_store_get_vm(store, "web", &error));
    g_assert_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_NOT_FOUND);
    g_assert_nonnull(strstr(error->message, "There is no VM named 'web'"));
    g_autofree char *sql = g_strdup_printf("SELECT count(*) FROM drives WHERE vm_id = %" G_GINT64_FORMAT, vm->id);
    g_assert_cmpint(sql_int(path, sql), ==, 0);
}

static void
test_duplicate_and_invalid(void)
{
    g_autofree char *path = tmp_path("dup.db");
    g_autoptr(FerryStore) store = open_ok(path);
    g_autoptr(GError) error = NULL;
    g_autoptr(FerryVmRecord) a = sample_vm("Build Box");
    g_autoptr(FerryVmRecord) b = sample_vm("build box");

    g_assert_true(ferry_store_save_vm(store, a, NULL));
    g_assert_false(ferry_store_save_vm(store, b, &error));
    g_assert_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_EXISTS);
    g_assert_cmpstr(error->message, ==, "There is already a VM named 'Build Box' in the library: choose another "
                                        "name, or rename or delete that VM first.");
    g_assert_cmpint(b->id, ==, 0);
    g_clear_error(&error);

    /* The same uuid twice. */
    g_free(b->name);
    b->name = g_strdup("copy");
    g_free(b->uuid);
    b->uuid = g_strdup(a->uuid);
    g_assert_false(ferry_store_save_vm(store, b, &error));
    g_assert_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_EXISTS);
    g_clear_error(&error);

    struct { const char *field, *value, *message; } cases[] = {
        { "name", "", "A VM needs a name: give it one." },
        { "name", " padded", "The VM name ' padded' starts or ends with a space: remove it." },
        { "arch", "aarch64", "VM 'x': unknown architecture 'aarch64': choose x86_64 or riscv64." },
        { "accel", "hvf", "VM 'x': unknown accelerator 'hvf': choose default, kvm or soft." },
        { "display", "vnc", "VM 'x': unknown display 'vnc': choose spice or none." },
    };
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(FerryVmRecord) vm = sample_vm("x");
        char **f = !strcmp(cases[i].field, "name") ? &vm->name : !strcmp(cases[i].field, "arch") ? &vm->arch
                   : !strcmp(cases[i].field, "accel") ? &vm->accel : &vm->display;
        g_free(*f);
        *f = g_strdup(cases[i].value);
        g_assert_false(ferry_store_save_vm(store, vm, &error));
        g_assert_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_INVALID);
        g_assert_cmpstr(error->message, ==, cases[i].message);
        g_clear_error(&error);
    }
    /* A fifth hard disk has no slot. */
    g_autoptr(FerryVmRecord) five = sample_vm("five");
    ferry_vm_record_set_drive(five, FERRY_DRIVE_DISK, 4, "/images/e.img", "raw", FALSE);
    g_assert_false(ferry_store_save_vm(store, five, &error));
    g_assert_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_INVALID);
    g_assert_cmpstr(error->message, ==, "VM 'five': disk slot 4 does not exist: a VM has 4 disk slots (0 to 3).");
    g_clear_error(&error);
    g_autoptr(FerryVmRecord) fl = sample_vm("floppies");
    ferry_vm_record_set_drive(fl, FERRY_DRIVE_FLOPPY, 2, "/images/c.img", "raw", FALSE);
    g_assert_false(ferry_store_save_vm(store, fl, &error));
    g_assert_cmpstr(error->message, ==, "VM 'floppies': floppy slot 2 does not exist: a VM has 2 floppy slots (0 to 1).");
    g_clear_error(&error);

    g_autoptr(GPtrArray) vms = ferry_store_list_vms(store, NULL);
    g_assert_cmpuint(vms->len, ==, 1);
}

/* Two connections stand for two programs (the app and ferryctl). */
static void
test_conflict(void)
{
    g_autofree char *path = tmp_path("conflict.db");
    g_autoptr(FerryStore) app = open_ok(path);
    g_autoptr(FerryStore) ctl = open_ok(path);
    g_autoptr(GError) error = NULL;
    g_autoptr(FerryVmRecord) vm = sample_vm("shared");

    g_assert_true(ferry_store_save_vm(app, vm, NULL));
    g_autoptr(FerryVmRecord) in_app = ferry_store_get_vm(app, "shared", NULL);
    g_autoptr(FerryVmRecord) in_ctl = ferry_store_get_vm(ctl, "shared", NULL);

    /* The app sees that the library changed under it. */
    gint64 seen = ferry_store_get_data_version(app);
    g_assert_cmpint(ferry_store_get_data_version(app), ==, seen);
    in_ctl->vcpus = 8;
    g_assert_true(ferry_store_save_vm(ctl, in_ctl, &error));
    g_assert_cmpint(ferry_store_get_data_version(app), !=, seen);
    in_app->memory_bytes = 4ULL << 30;
    g_assert_false(ferry_store_save_vm(app, in_app, &error));
    g_assert_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_CONFLICT);
    g_assert_cmpstr(error->message, ==, "VM 'shared' was changed by another program (Ferry or ferryctl) after "
                                        "this copy of it was read (revision 1, now 2): it was not saved. Reload "
                                        "the VM and make your change again.");
    g_clear_error(&error);
    /* Nothing of the refused save reached the file. */
    g_autoptr(FerryVmRecord) now = ferry_store_get_vm(app, "shared", NULL);
    g_assert_cmpuint(now->vcpus, ==, 8);
    g_assert_cmpuint(now->memory_bytes, ==, 512ULL << 20);
    g_assert_cmpint(now->revision, ==, 2);
    g_assert_cmpint(in_app->revision, ==, 1);

    /* Deleting a stale copy is refused too; deleting under the other's feet reports it. */
    g_assert_false(ferry_store_delete_vm(app, in_app, &error));
    g_assert_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_CONFLICT);
    g_clear_error(&error);
    g_assert_true(ferry_store_delete_vm(ctl, in_ctl, &error));
    g_assert_false(ferry_store_save_vm(app, now, &error));
    g_assert_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_NOT_FOUND);
    g_assert_cmpstr(error->message, ==, "VM 'shared' was deleted by another program (Ferry or ferryctl): it was not saved.");
}

static void
test_snapshots(void)
{
    g_autofree char *path = tmp_path("snap.db");
    g_autoptr(FerryStore) store = open_ok(path);
    g_autoptr(GError) error = NULL;
    g_autoptr(FerryVmRecord) vm = sample_vm("snappy");
    FerrySnapshotRecord a = { .name = "before", .description = "clean", .state_path = "/s/1.state" };
    FerrySnapshotRecord b = { .name = "after", .created = 2000000000 };
    FerrySnapshotRecord dup = { .name = "before" };

    g_assert_true(ferry_store_save_vm(store, vm, NULL));
    a.vm_id = b.vm_id = dup.vm_id = vm->id;
    g_assert_true(ferry_store_add_snapshot(store, &a, &error));
    g_assert_true(ferry_store_add_snapshot(store, &b, &error));
    g_assert_false(ferry_store_add_snapshot(store, &dup, &error));
    g_assert_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_EXISTS);
    g_clear_error(&error);

    g_autoptr(GPtrArray) snaps = ferry_store_list_snapshots(store, vm->id, &error);
    g_assert_cmpuint(snaps->len, ==, 2);
    FerrySnapshotRecord *first = snaps->pdata[0];
    g_assert_cmpstr(first->name, ==, "before");
    g_assert_cmpstr(first->description, ==, "clean");
    g_assert_cmpstr(first->state_path, ==, "/s/1.state");
    g_assert_cmpstr(((FerrySnapshotRecord *) snaps->pdata[1])->description, ==, "");

    g_assert_true(ferry_store_delete_snapshot(store, a.id, &error));
    g_assert_false(ferry_store_delete_snapshot(store, a.id, &error));
    g_assert_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_NOT_FOUND);
    g_clear_error(&error);
    g_assert_true(ferry_store_delete_vm(store, vm, &error));
    g_assert_cmpint(sql_int(path, "SELECT count(*) FROM snapshots"), ==, 0);
}

/* ---- migrations ----------------------------------------------------------------- */

static char *
copy_fixture(const char *name)
{
    g_autofree char *src = g_build_filename(g_getenv("FERRY_SOURCE_ROOT"), "tests", "fixtures", "store", name, NULL);
    g_autofree char *data = NULL;
    gsize len;
    char *dst = tmp_path(name);
    g_assert_true(g_file_get_contents(src, &data, &len, NULL));
    g_assert_true(g_file_set_contents(dst, data, len, NULL));
    return dst;
}

static void
test_migrate(gconstpointer data)
{
    guint version = GPOINTER_TO_UINT(data);
    g_autofree char *name = g_strdup_printf("v%u.db", version);
    g_autofree char *path = copy_fixture(name);
    g_autoptr(GError) error = NULL;

    g_assert_cmpint(sql_int(path, "PRAGMA user_version"), ==, version);
    g_autoptr(FerryStore) store = open_ok(path);
    g_assert_cmpint(sql_int(path, "PRAGMA user_version"), ==, FERRY_STORE_SCHEMA_VERSION);

    /* What was stored is still there, as it was. */
    g_autoptr(GPtrArray) vms = ferry_store_list_vms(store, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(vms->len, ==, 2);
    FerryVmRecord *web = vms->pdata[0], *lab = vms->pdata[1];
    g_assert_cmpstr(web->name, ==, "debian-web");
    g_assert_cmpstr(web->uuid, ==, "0b5e7c8a-3d4f-4b6a-9c1e-2f3a4b5c6d7e");
    g_assert_cmpstr(web->os_id, ==, "debian12");
    g_assert_cmpuint(web->memory_bytes, ==, 2ULL << 30);
    g_assert_cmpuint(web->vcpus, ==, 2);
    g_assert_cmpstr(web->cmdline, ==, "console=ttyS0 root=/dev/vda1");
    g_assert_true(web->sound);
    g_assert_cmpstr(web->notes, ==, "web server; notes with 'quotes'");
    g_assert_cmpint(web->last_run, ==, 1700003600);
    g_assert_cmpint(web->revision, ==, 3);
    g_assert_cmpuint(web->drives->len, ==, 3);
    FerryDriveRecord *d0 = web->drives->pdata[0], *cd = web->drives->pdata[2];
    g_assert_cmpstr(d0->path, ==, "/srv/vm/debian-web.qcow2");
    g_assert_cmpstr(d0->format, ==, "qcow2");
    g_assert_true(d0->created_by_ferry);
    g_assert_cmpint(cd->kind, ==, FERRY_DRIVE_CDROM);
    g_assert_true(cd->readonly);
    g_assert_cmpstr(lab->arch, ==, "riscv64");
    g_assert_cmpstr(lab->accel, ==, "soft");
    g_assert_cmpstr(lab->display, ==, "none");

    /* Snapshot records: the fixture's, if it had the table, and new ones. */
    g_autoptr(GPtrArray) snaps = ferry_store_list_snapshots(store, web->id, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(snaps->len, ==, version >= 2 ? 1 : 0);
    FerrySnapshotRecord snap = { .vm_id = lab->id, .name = "fresh" };
    g_assert_true(ferry_store_add_snapshot(store, &snap, &error));

    /* Still writable at the old revision numbers. */
    web->vcpus = 4;
    g_assert_true(ferry_store_save_vm(store, web, &error));
    g_assert_cmpint(web->revision, ==, 4);

    /* The migrated schema is exactly the one a new library gets. */
    g_autofree char *fresh_path = tmp_path("fresh.db");
    g_autoptr(FerryStore) fresh = open_ok(fresh_path);
    const char *schema_sql = "SELECT type || ' ' || name || ': ' || coalesce(sql, '') FROM sqlite_master ORDER BY name";
    g_autofree char *migrated_schema = sql_text(path, schema_sql);
    g_autofree char *fresh_schema = sql_text(fresh_path, schema_sql);
    g_assert_cmpstr(migrated_schema, ==, fresh_schema);
    g_autofree char *check = sql_text(path, "PRAGMA integrity_check");
    g_assert_cmpstr(check, ==, "ok\n");
}

/* ---- files that are not (usable) libraries ---------------------------------------- */

static char *
file_checksum(const char *path)
{
    g_autofree char *data = NULL;
    gsize len = 0;
    g_assert_true(g_file_get_contents(path, &data, &len, NULL));
    return g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *) data, len);
}

static void
assert_refused_unchanged(const char *path, int code, const char *needle)
{
    g_autofree char *before = file_checksum(path);
    g_autoptr(GError) error = NULL;
    g_autofree char *wal = g_strdup_printf("%s-wal", path);

    for (int i = 0; i < 2; i++) {       /* and again: the first refusal changed nothing */
        FerryStore *store = ferry_store_open(path, &error);
        g_assert_null(store);
        g_assert_error(error, FERRY_STORE_ERROR, code);
        g_test_message("%s", error->message);
        g_assert_nonnull(strstr(error->message, path));
        g_assert_nonnull(strstr(error->message, needle));
        g_clear_error(&error);
    }
    g_autofree char *after = file_checksum(path);
    g_assert_cmpstr(before, ==, after);
    g_assert_false(g_file_test(wal, G_FILE_TEST_EXISTS));
}

static void
test_corrupt_random(void)
{
    g_autofree char *path = tmp_path("random.db");
    guint8 junk[8192];
    for (gsize i = 0; i < sizeof(junk); i++)
        junk[i] = g_random_int_range(0, 256);
    g_assert_true(g_file_set_contents(path, (char *) junk, sizeof(junk), NULL));
    assert_refused_unchanged(path, FERRY_STORE_ERROR_CORRUPT, "is not a Ferry VM library: it is not an SQLite database");
}

static void
test_corrupt_text(void)
{
    g_autofree char *path = tmp_path("notes.db");
    g_assert_true(g_file_set_contents(path, "Shopping list\n- bread\n- milk\n", -1, NULL));
    assert_refused_unchanged(path, FERRY_STORE_ERROR_CORRUPT, "Ferry left the file as it is: move it away");
}

static void
test_foreign_sqlite(void)
{
    g_autofree char *path = tmp_path("places.sqlite");
    sqlite3 *db = NULL;
    g_assert_cmpint(sqlite3_open(path, &db), ==, SQLITE_OK);
    g_assert_cmpint(sqlite3_exec(db, "CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT);"
                                     "CREATE TABLE moz_bookmarks (id INTEGER PRIMARY KEY, fk INTEGER);"
                                     "INSERT INTO moz_places (url) VALUES ('https://example.org/');",
                                 NULL, NULL, NULL), ==, SQLITE_OK);
    sqlite3_close(db);
    assert_refused_unchanged(path, FERRY_STORE_ERROR_CORRUPT,
                             "another program's SQLite database (application id 0x00000000, tables: "
                             "moz_bookmarks, moz_places)");
}

static void
test_damaged_library(void)
{
    g_autofree char *path = tmp_path("damaged.db");
    {
        g_autoptr(FerryStore) store = open_ok(path);
        for (int i = 0; i < 40; i++) {
            g_autofree char *name = g_strdup_printf("vm-%02d", i);
            g_autoptr(FerryVmRecord) vm = sample_vm(name);
            g_assert_true(ferry_store_save_vm(store, vm, NULL));
        }
    }
    /* Scribble over the pages after the first (the header stays valid). */
    g_autofree char *data = NULL;
    gsize len;
    g_assert_true(g_file_get_contents(path, &data, &len, NULL));
    g_assert_cmpuint(len, >, 3 * 4096);
    for (gsize i = 4096; i < len; i += 7)
        data[i] = (char) (i * 31);
    g_assert_true(g_file_set_contents(path, data, len, NULL));
    assert_refused_unchanged(path, FERRY_STORE_ERROR_CORRUPT, "Ferry left the file as it is");
}

static void
test_too_new(void)
{
    g_autofree char *path = tmp_path("future.db");
    {
        g_autoptr(FerryStore) store = open_ok(path);
        g_autoptr(FerryVmRecord) vm = sample_vm("keep-me");
        g_assert_true(ferry_store_save_vm(store, vm, NULL));
    }
    g_assert_cmpint(sql_int(path, "PRAGMA user_version = 99"), ==, -1);
    g_autoptr(GError) error = NULL;
    g_assert_null(ferry_store_open(path, &error));
    g_assert_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_TOO_NEW);
    g_autofree char *want = g_strdup_printf("The VM library %s was written by a newer version of Ferry (library "
                                            "version 99; this Ferry knows versions up to %d). Ferry left it as it "
                                            "is: update Ferry to use it, or choose another file with --library or "
                                            "FERRY_LIBRARY.", path, FERRY_STORE_SCHEMA_VERSION);
    g_assert_cmpstr(error->message, ==, want);
    g_clear_error(&error);
    assert_refused_unchanged(path, FERRY_STORE_ERROR_TOO_NEW, "newer version of Ferry");
    g_assert_cmpint(sql_int(path, "PRAGMA user_version"), ==, 99);
    g_assert_cmpint(sql_int(path, "SELECT count(*) FROM vms"), ==, 1);
}

static void
test_not_a_file(void)
{
    g_autoptr(GError) error = NULL;
    g_assert_cmpint(g_mkdir_with_parents(g_get_user_data_dir(), 0700), ==, 0);
    g_assert_null(ferry_store_open(g_get_user_data_dir(), &error));
    g_assert_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_FAILED);
    g_assert_nonnull(strstr(error->message, "it is not a regular file"));
}

/* ---- kill -9 in the middle of writing ------------------------------------------------ */

/* The child: saves the VM over and over, each save (VM row + drives) one
 * transaction, and says which iteration it committed. */
static int
writer_child(const char *path)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(FerryStore) store = ferry_store_open(path, &error);
    if (!store) {
        g_printerr("%s\n", error->message);
        return 1;
    }
    g_autoptr(FerryVmRecord) vm = ferry_store_get_vm(store, "victim", &error);
    for (guint64 i = 1;; i++) {
        g_free(vm->notes);
        vm->notes = g_strdup_printf("%" G_GUINT64_FORMAT, i);
        vm->vcpus = 1 + i % 64;
        for (guint s = 0; s < FERRY_STORE_MAX_DISKS; s++) {
            g_autofree char *p = g_strdup_printf("/images/%" G_GUINT64_FORMAT "-%u.img", i, s);
            ferry_vm_record_set_drive(vm, FERRY_DRIVE_DISK, s, s <= i % 4 ? p : NULL, "raw", FALSE);
        }
        /* and a new VM now and then, so the file keeps growing */
        if (i % 8 == 0) {
            g_autofree char *name = g_strdup_printf("filler-%" G_GUINT64_FORMAT, i);
            g_autoptr(FerryVmRecord) f = sample_vm(name);
            g_free(f->notes);
            f->notes = g_strnfill(2000, 'x');
            if (!ferry_store_save_vm(store, f, &error))
                break;
        }
        if (!ferry_store_save_vm(store, vm, &error))
            break;
        printf("committed %" G_GUINT64_FORMAT "\n", i);
        fflush(stdout);
    }
    g_printerr("%s\n", error->message);
    return 1;
}

static void
test_kill9(gconstpointer data)
{
    guint wait_for = GPOINTER_TO_UINT(data);
    g_autofree char *path = tmp_path("kill9.db");
    {
        g_autoptr(FerryStore) store = open_ok(path);
        g_autoptr(FerryVmRecord) vm = sample_vm("victim");
        g_assert_true(ferry_store_save_vm(store, vm, NULL));
    }
    g_autofree char *self = g_file_read_link("/proc/self/exe", NULL);
    const char *argv[] = { self, "--writer-child", path, NULL };
    g_autoptr(GError) error = NULL;
    FerryTestProc *p = ferry_test_proc_spawn(argv, &error);
    g_assert_no_error(error);
    g_autofree char *mark = g_strdup_printf("committed %u\n", wait_for);
    g_assert_true(ferry_test_proc_expect(p, mark, 60000));
    /* Somewhere in the middle of a transaction, most likely. */
    g_usleep(g_random_int_range(0, 3000));
    ferry_test_proc_kill(p, SIGKILL);
    g_assert_cmpint(ferry_test_proc_wait(p, 10000), ==, 128 + SIGKILL);

    guint64 last = 0;
    g_auto(GStrv) lines = g_strsplit(ferry_test_proc_stdout(p), "\n", -1);
    for (guint i = 0; lines[i]; i++)
        if (g_str_has_prefix(lines[i], "committed "))
            last = g_ascii_strtoull(lines[i] + 10, NULL, 10);
    ferry_test_proc_free(p);
    g_test_message("writer killed after committing %" G_GUINT64_FORMAT " saves", last);
    g_assert_cmpuint(last, >=, wait_for);

    /* The file is sound, and holds the last commit the writer reported, or
     * the one after it (committed, killed before it could say so). */
    g_autofree char *check = sql_text(path, "PRAGMA integrity_check");
    g_assert_cmpstr(check, ==, "ok\n");
    g_autoptr(FerryStore) store = open_ok(path);
    g_autoptr(FerryVmRecord) vm = ferry_store_get_vm(store, "victim", &error);
    g_assert_no_error(error);
    guint64 n = g_ascii_strtoull(vm->notes, NULL, 10);
    g_assert_cmpuint(n, >=, last);
    g_assert_cmpuint(n, <=, last + 1);
    /* All of that commit, none of another: the VM row and its drives agree. */
    g_assert_cmpuint(vm->vcpus, ==, 1 + n % 64);
    g_assert_cmpuint(ferry_vm_record_count_drives(vm, FERRY_DRIVE_DISK), ==, 1 + n % 4);
    for (guint s = 0; s <= n % 4; s++) {
        g_autofree char *want = g_strdup_printf("/images/%" G_GUINT64_FORMAT "-%u.img", n, s);
        g_assert_cmpstr(ferry_vm_record_get_drive(vm, FERRY_DRIVE_DISK, s)->path, ==, want);
    }
    g_assert_nonnull(ferry_vm_record_get_drive(vm, FERRY_DRIVE_CDROM, 0));
    g_assert_cmpint(vm->revision, ==, 1 + (gint64) n);
}

/* ---- the running lock ------------------------------------------------------------------- */

static void
test_run_lock(void)
{
    g_autoptr(FerryVmRecord) vm = sample_vm("locked");
    g_autoptr(GError) error = NULL;
    GPid pid = 0;
    char *program = NULL;

    g_assert_false(ferry_run_lock_query(vm->uuid, &pid, &program));
    FerryRunLock *lock = ferry_run_lock_acquire(vm, "Ferry", &error);
    g_assert_no_error(error);
    g_assert_true(ferry_run_lock_query(vm->uuid, &pid, &program));
    g_assert_cmpint(pid, ==, getpid());
    g_assert_cmpstr(program, ==, "Ferry");
    g_clear_pointer(&program, g_free);
    /* Not twice, not even in the same process. */
    g_assert_null(ferry_run_lock_acquire(vm, "ferryctl", &error));
    g_assert_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_RUNNING);
    g_assert_cmpstr(error->message, ==, "VM 'locked' is already running in this Ferry.");
    g_clear_error(&error);
    ferry_run_lock_release(lock);
    g_assert_false(ferry_run_lock_query(vm->uuid, NULL, NULL));

    /* Held by a child that dies by SIGKILL: the lock dies with it. */
    int ready[2];
    g_assert_cmpint(pipe(ready), ==, 0);
    pid_t child = fork();
    if (child == 0) {
        close(ready[0]);
        FerryRunLock *l = ferry_run_lock_acquire(vm, "ferryctl", NULL);
        if (write(ready[1], l ? "y" : "n", 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    close(ready[1]);
    char c = 0;
    g_assert_cmpint(read(ready[0], &c, 1), ==, 1);
    close(ready[0]);
    g_assert_cmpint(c, ==, 'y');
    g_assert_true(ferry_run_lock_query(vm->uuid, &pid, &program));
    g_assert_cmpint(pid, ==, child);
    g_assert_cmpstr(program, ==, "ferryctl");
    g_clear_pointer(&program, g_free);
    g_assert_null(ferry_run_lock_acquire(vm, "Ferry", &error));
    g_autofree char *want = g_strdup_printf("VM 'locked' is already running in ferryctl (pid %d): a VM runs in one "
                                            "program at a time. Use it there, or stop it there first.", (int) child);
    g_assert_cmpstr(error->message, ==, want);
    g_clear_error(&error);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    g_assert_false(ferry_run_lock_query(vm->uuid, NULL, NULL));
    lock = ferry_run_lock_acquire(vm, "Ferry", &error);
    g_assert_no_error(error);
    ferry_run_lock_release(lock);
}

int
main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--writer-child"))
        return writer_child(argv[2]);

    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    g_test_add_func("/store/open/new-library", test_new_library);
    g_test_add_func("/store/vm/crud", test_crud);
    g_test_add_func("/store/vm/duplicate-and-invalid", test_duplicate_and_invalid);
    g_test_add_func("/store/vm/conflict", test_conflict);
    g_test_add_func("/store/snapshots", test_snapshots);
    for (guint v = 1; v < FERRY_STORE_SCHEMA_VERSION; v++) {
        g_autofree char *name = g_strdup_printf("/store/migrate/from-v%u", v);
        g_test_add_data_func(name, GUINT_TO_POINTER(v), test_migrate);
    }
    /* The current version's fixture opens as it is (the next version migrates it). */
    g_autofree char *current = g_strdup_printf("/store/migrate/v%u-as-is", FERRY_STORE_SCHEMA_VERSION);
    g_test_add_data_func(current, GUINT_TO_POINTER(FERRY_STORE_SCHEMA_VERSION), test_migrate);
    g_test_add_func("/store/bad-file/random-bytes", test_corrupt_random);
    g_test_add_func("/store/bad-file/text-file", test_corrupt_text);
    g_test_add_func("/store/bad-file/other-programs-sqlite", test_foreign_sqlite);
    g_test_add_func("/store/bad-file/damaged-pages", test_damaged_library);
    g_test_add_func("/store/bad-file/newer-schema", test_too_new);
    g_test_add_func("/store/bad-file/folder", test_not_a_file);
    g_test_add_data_func("/store/kill-9/early", GUINT_TO_POINTER(5), test_kill9);
    g_test_add_data_func("/store/kill-9/late", GUINT_TO_POINTER(300), test_kill9);
    g_test_add_func("/store/run-lock", test_run_lock);
    return g_test_run();
}

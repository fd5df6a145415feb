/* schema.c: the VM library's schema, its forward migrations (one SQL string
 * per version, indexed by PRAGMA user_version, one transaction each) and the
 * checks that refuse a damaged, foreign or newer file without writing to it. */
#include "store-private.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <glib/gi18n-lib.h>

/* migrations[v] takes a library from version v to v + 1. Never edit one that
 * has shipped: add the next (and a fixture in tests/fixtures/store/). Enumerated
 * values are checked in C, not with CHECK constraints, so a later version can
 * add one without rebuilding a table. */
static const char *const migrations[] = {
    /* 0 -> 1: VM definitions and their drives. */
    "CREATE TABLE vms ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE COLLATE NOCASE,"
    "  uuid TEXT NOT NULL UNIQUE,"
    "  os_id TEXT,"
    "  arch TEXT NOT NULL,"
    "  accel TEXT NOT NULL DEFAULT 'default',"
    "  memory_bytes INTEGER NOT NULL CHECK (memory_bytes > 0),"
    "  vcpus INTEGER NOT NULL CHECK (vcpus > 0),"
    "  firmware TEXT,"
    "  kernel TEXT,"
    "  initrd TEXT,"
    "  cmdline TEXT,"
    "  display TEXT NOT NULL DEFAULT 'spice',"
    "  network TEXT NOT NULL DEFAULT 'user',"
    "  sound INTEGER NOT NULL DEFAULT 0,"
    "  usb INTEGER NOT NULL DEFAULT 0,"
    "  snapshot_mode INTEGER NOT NULL DEFAULT 0,"
    "  notes TEXT NOT NULL DEFAULT '',"
    "  created INTEGER NOT NULL,"
    "  last_run INTEGER,"
    "  revision INTEGER NOT NULL DEFAULT 1"
    ");"
    "CREATE TABLE drives ("
    "  id INTEGER PRIMARY KEY,"
    "  vm_id INTEGER NOT NULL REFERENCES vms(id) ON DELETE CASCADE,"
    "  kind TEXT NOT NULL,"
    "  slot INTEGER NOT NULL CHECK (slot >= 0),"
    "  path TEXT NOT NULL,"
    "  format TEXT,"
    "  readonly INTEGER NOT NULL DEFAULT 0,"
    "  created_by_ferry INTEGER NOT NULL DEFAULT 0,"
    "  UNIQUE (vm_id, kind, slot)"
    ");",

    /* 1 -> 2: snapshot records (the saved state files live in the VM's folder). */
    "CREATE TABLE snapshots ("
    "  id INTEGER PRIMARY KEY,"
    "  vm_id INTEGER NOT NULL REFERENCES vms(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL,"
    "  description TEXT NOT NULL DEFAULT '',"
    "  state_path TEXT,"
    "  created INTEGER NOT NULL,"
    "  UNIQUE (vm_id, name)"
    ");"
    "CREATE INDEX snapshots_vm ON snapshots(vm_id);",
};

G_STATIC_ASSERT(G_N_ELEMENTS(migrations) == FERRY_STORE_SCHEMA_VERSION);

#define MOVE_AWAY_HINT "Ferry left the file as it is: move it away (Ferry then starts a new, empty library " \
                       "there) or restore it from a backup, or choose another file with --library or FERRY_LIBRARY."

static gboolean
read_header(const char *path, guint8 *head, gsize len, gsize *got, GError **error)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_FAILED,
                    _("Cannot read the VM library %s: %s. Check that you may read it."), path, g_strerror(e));
        return FALSE;
    }
    ssize_t n;
    do
        n = pread(fd, head, len, 0);
    while (n < 0 && errno == EINTR);
    close(fd);
    *got = n > 0 ? n : 0;
    return TRUE;
}

/* One row, one integer column. */
static gboolean
query_int(sqlite3 *db, const char *sql, gint64 *out, int *rc_out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    *rc_out = rc;
    return rc == SQLITE_OK;
}

static char *
list_tables(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    GString *s = g_string_new(NULL);
    guint n = 0;

    if (sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
                           -1, &st, NULL) == SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW) {
            if (n++ < 5)
                g_string_append_printf(s, "%s%s", s->len ? ", " : "", sqlite3_column_text(st, 0));
        }
    }
    sqlite3_finalize(st);
    if (n > 5)
        g_string_append_printf(s, " and %u more", n - 5);
    return g_string_free(s, FALSE);
}

static guint32
be32(const guint8 *p)
{
    return (guint32) p[0] << 24 | (guint32) p[1] << 16 | (guint32) p[2] << 8 | p[3];
}

gboolean
ferry_store_schema_inspect(const char *path, GError **error)
{
    guint8 head[100];
    gsize got = 0;
    sqlite3 *db = NULL;
    gint64 objects = 0;
    int rc;

    if (!read_header(path, head, sizeof(head), &got, error))
        return FALSE;
    if (got == 0)
        return TRUE;                    /* an empty file is an empty database */
    if (got < sizeof(head) || memcmp(head, "SQLite format 3", 16) != 0) {
        g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_CORRUPT,
                    "%s is not a Ferry VM library: it is not an SQLite database (damaged, or another "
                    "program's file). " MOVE_AWAY_HINT, path);
        return FALSE;
    }

    /* The header holds PRAGMA application_id (offset 68) and user_version (60). */
    guint32 app_id = be32(head + 68), version = be32(head + 60);
    if (app_id == FERRY_STORE_APPLICATION_ID) {
        if (version > FERRY_STORE_SCHEMA_VERSION) {
            g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_TOO_NEW,
                        _("The VM library %s was written by a newer version of Ferry (library version %u; this "
                        "Ferry knows versions up to %d). Ferry left it as it is: update Ferry to use it, or "
                        "choose another file with --library or FERRY_LIBRARY."),
                        path, version, FERRY_STORE_SCHEMA_VERSION);
            return FALSE;
        }
        return TRUE;                    /* ours: checked further on the real connection */
    }

    /* Someone else's file, or an empty database: look without touching it
     * (immutable: no locks, no -wal or -shm files beside it). */
    g_autofree char *escaped = g_uri_escape_string(path, "/", FALSE);
    g_autofree char *uri = g_strdup_printf("file:%s?immutable=1", escaped);
    rc = sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL);
    if (rc == SQLITE_OK)
        query_int(db, "SELECT count(*) FROM sqlite_master", &objects, &rc);
    if (rc != SQLITE_OK) {
        g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_CORRUPT,
                    "%s is not a Ferry VM library: SQLite cannot read it (%s). " MOVE_AWAY_HINT,
                    path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return FALSE;
    }
    if (app_id != 0 || version != 0 || objects != 0) {
        g_autofree char *tables = list_tables(db);
        g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_CORRUPT,
                    "%s is not a Ferry VM library: it is another program's SQLite database "
                    "(application id 0x%08x, tables: %s). " MOVE_AWAY_HINT,
                    path, app_id, *tables ? tables : "none");
        sqlite3_close(db);
        return FALSE;
    }
    sqlite3_close(db);
    return TRUE;
}

gboolean
ferry_store_schema_check(sqlite3 *db, const char *path, GError **error)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &st, NULL);

    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && g_strcmp0((const char *) sqlite3_column_text(st, 0), "ok") != 0) {
        /* SQLite lists every damaged cell; the first line says enough. */
        const char *text = (const char *) sqlite3_column_text(st, 0);
        if (g_str_has_prefix(text, "*** ") && strchr(text, '\n'))
            text = strchr(text, '\n') + 1;         /* "*** in database main ***" */
        g_autofree char *first = g_strndup(text, 200);
        char *nl = strchr(first, '\n');
        if (nl)
            *nl = '\0';
        g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_CORRUPT,
                    "The VM library %s is damaged (SQLite's check says: %s). " MOVE_AWAY_HINT, path, first);
        sqlite3_finalize(st);
        return FALSE;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) {
        ferry_store_set_sqlite_error(error, db, rc, path, "check");
        return FALSE;
    }
    return TRUE;
}

static gboolean
exec(sqlite3 *db, const char *sql, const char *path, const char *doing, GError **error)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        ferry_store_set_sqlite_error(error, db, rc, path, doing);
        return FALSE;
    }
    return TRUE;
}

gboolean
ferry_store_schema_migrate(sqlite3 *db, const char *path, GError **error)
{
    gint64 first = -1;

    for (;;) {
        gint64 version = 0, app_id = 0;
        int rc;

        /* IMMEDIATE: two programs opening a new library at once migrate it once. */
        if (!exec(db, "BEGIN IMMEDIATE", path, "update", error))
            return FALSE;
        if (!query_int(db, "PRAGMA user_version", &version, &rc) ||
            !query_int(db, "PRAGMA application_id", &app_id, &rc)) {
            ferry_store_set_sqlite_error(error, db, rc, path, "read");
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return FALSE;
        }
        if (version > FERRY_STORE_SCHEMA_VERSION) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_TOO_NEW,
                        "The VM library %s was just updated by a newer version of Ferry (library version %"
                        G_GINT64_FORMAT "; this Ferry knows up to %d): update Ferry to use it.",
                        path, version, FERRY_STORE_SCHEMA_VERSION);
            return FALSE;
        }
        if (first < 0)
            first = version;
        if (version == FERRY_STORE_SCHEMA_VERSION) {
            if (first > 0 && first < version)
                g_info("Updated the VM library %s from version %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT,
                       path, first, version);
            return exec(db, "COMMIT", path, "update", error);
        }

        g_autofree char *bump = g_strdup_printf("PRAGMA user_version = %" G_GINT64_FORMAT ";"
                                                "PRAGMA application_id = %d;",
                                                version + 1, FERRY_STORE_APPLICATION_ID);
        if (!exec(db, migrations[version], path, "update the schema of", error) ||
            !exec(db, bump, path, "update the schema of", error)) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return FALSE;
        }
        if (!exec(db, "COMMIT", path, "update", error)) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return FALSE;
        }
    }
}

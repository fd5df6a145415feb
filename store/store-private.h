/* store-private.h: shared inside store/ only (schema checks and migrations). */
#pragma once

#include "store.h"

#include <sqlite3.h>

/* 'FeRY': PRAGMA application_id of a Ferry library. */
#define FERRY_STORE_APPLICATION_ID 0x46655259

/* Sets error from db's last error: the file, what was being done, SQLite's
 * words and what the user can do about it. */
void ferry_store_set_sqlite_error(GError **error, sqlite3 *db, int rc, const char *path, const char *doing);

/* Looks at an existing file without writing to it: refuses what is not a
 * Ferry library (CORRUPT) or is newer than this build (TOO_NEW). */
gboolean ferry_store_schema_inspect(const char *path, GError **error);
/* PRAGMA quick_check on an open library: CORRUPT when damaged. */
gboolean ferry_store_schema_check(sqlite3 *db, const char *path, GError **error);
/* Brings db (open read-write) to FERRY_STORE_SCHEMA_VERSION, one transaction per step. */
gboolean ferry_store_schema_migrate(sqlite3 *db, const char *path, GError **error);

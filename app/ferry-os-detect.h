/* ferry-os-detect.h: which operating system an installation image holds,
 * and what it needs, from libosinfo's database (osinfo-db). */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct {
    char *os_id;            /* short id, e.g. "debian12" */
    char *name;             /* "Debian 12" */
    char *arch;             /* "x86_64", "riscv64" or NULL */
    guint64 ram;            /* recommended bytes, 0: unknown */
    guint n_cpus;           /* recommended, 0: unknown */
    guint64 storage;        /* recommended bytes, 0: unknown */
} FerryOsGuess;

void ferry_os_guess_free(FerryOsGuess *guess);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(FerryOsGuess, ferry_os_guess_free)

/* Reads the ISO's volume descriptors on a worker thread (the database takes
 * a moment to load). The result: a guess, or NULL with an error when the
 * media is not known (G_IO_ERROR_NOT_FOUND) or not readable. */
void          ferry_os_detect_media_async(const char *path, GCancellable *cancellable,
                                          GAsyncReadyCallback callback, gpointer user_data);
FerryOsGuess *ferry_os_detect_media_finish(GAsyncResult *result, GError **error);
/* The same, blocking (tests, ferryctl). */
FerryOsGuess *ferry_os_detect_media(const char *path, GError **error);

G_END_DECLS

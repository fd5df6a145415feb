/* store.h: the VM library, Ferry's SQLite database of VM definitions, their
 * drives and snapshot records, and the lock that marks a VM as running.
 *
 * Knows nothing of the engine: app/ turns a FerryVmRecord into a FerryVmConfig.
 * One FerryStore is one connection, used only by the thread that opened it;
 * other processes (the app and ferryctl) may have the same file open at once. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define FERRY_STORE_ERROR (ferry_store_error_quark())
GQuark ferry_store_error_quark(void);

typedef enum {
    FERRY_STORE_ERROR_FAILED = 1,   /* SQLite or the file system failed (the message says how) */
    FERRY_STORE_ERROR_CONFLICT,     /* another program changed the VM since it was read */
    FERRY_STORE_ERROR_NOT_FOUND,    /* no VM (or snapshot) of that name */
    FERRY_STORE_ERROR_EXISTS,       /* the name (or uuid) is taken */
    FERRY_STORE_ERROR_INVALID,      /* a value the library does not take */
    FERRY_STORE_ERROR_CORRUPT,      /* the file is damaged, or not a Ferry library */
    FERRY_STORE_ERROR_TOO_NEW,      /* written by a newer Ferry: left untouched */
    FERRY_STORE_ERROR_RUNNING,      /* the VM is running (in this or another process) */
    FERRY_STORE_ERROR_CANCELLED,    /* the user backed out: no dialog */
} FerryStoreError;

/* The schema version this build writes (PRAGMA user_version). */
#define FERRY_STORE_SCHEMA_VERSION 2

typedef enum {
    FERRY_DRIVE_DISK = 0,           /* slots 0..3 */
    FERRY_DRIVE_FLOPPY,             /* slots 0..1 */
    FERRY_DRIVE_CDROM,              /* slot 0 */
} FerryDriveKind;

#define FERRY_STORE_MAX_DISKS    4
#define FERRY_STORE_MAX_FLOPPIES 2

typedef struct {
    FerryDriveKind kind;
    guint slot;
    char *path;                     /* never NULL */
    char *format;                   /* "raw", "qcow2", or NULL: probe when opened */
    gboolean readonly;
    gboolean created_by_ferry;      /* Ferry made the image: `delete` may remove it */
} FerryDriveRecord;

/* One VM definition, as stored. Strings are owned by the record; NULL means
 * "not set". Enumerations are kept as the strings the user types and shows. */
typedef struct {
    gint64 id;                      /* 0: not in the library yet */
    char *name;
    char *uuid;                     /* lower-case 8-4-4-4-12 */
    char *os_id;                    /* e.g. "debian12", or NULL */
    char *arch;                     /* "x86_64" or "riscv64" */
    char *accel;                    /* "default", "kvm" or "soft" */
    guint64 memory_bytes;
    guint vcpus;
    char *firmware;                 /* flat firmware image, or NULL */
    char *kernel, *initrd, *cmdline;
    char *display;                  /* "spice" or "none" */
    char *network;                  /* "user" or "none" */
    gboolean sound, usb;
    gboolean snapshot_mode;         /* guest writes go to a discardable overlay */
    char *notes;                    /* never NULL ("" when empty) */
    gint64 created;                 /* Unix time */
    gint64 last_run;                /* Unix time, 0: never */
    gint64 revision;                /* bumped by every save; 0 until stored */
    GPtrArray *drives;              /* FerryDriveRecord*, owned, ordered by kind then slot */
} FerryVmRecord;

typedef struct {
    gint64 id;                      /* 0: not stored yet */
    gint64 vm_id;
    char *name;
    char *description;              /* never NULL */
    char *state_path;               /* the saved-state file, or NULL */
    gint64 created;
} FerrySnapshotRecord;

/* ---- records (plain data; no library needed) ----------------------------- */

/* A new definition with defaults (x86_64, 1 GiB, 1 vCPU, SPICE, user network)
 * and a fresh uuid. Caller owns the result. */
FerryVmRecord    *ferry_vm_record_new(const char *name);
FerryVmRecord    *ferry_vm_record_copy(const FerryVmRecord *vm);
void              ferry_vm_record_free(FerryVmRecord *vm);          /* NULL is fine */
/* The drive in (kind, slot), or NULL. */
FerryDriveRecord *ferry_vm_record_get_drive(const FerryVmRecord *vm, FerryDriveKind kind, guint slot);
/* Puts a drive in (kind, slot), replacing what was there; path NULL empties
 * the slot. Returns the drive (owned by vm) or NULL. */
FerryDriveRecord *ferry_vm_record_set_drive(FerryVmRecord *vm, FerryDriveKind kind, guint slot,
                                            const char *path, const char *format, gboolean readonly);
/* The first empty slot of kind, or -1 when all are taken. */
int               ferry_vm_record_free_slot(const FerryVmRecord *vm, FerryDriveKind kind);
guint             ferry_vm_record_count_drives(const FerryVmRecord *vm, FerryDriveKind kind);

const char *ferry_drive_kind_to_string(FerryDriveKind kind);   /* "disk", "floppy", "cdrom" */
gboolean    ferry_drive_kind_from_string(const char *s, FerryDriveKind *out);
guint       ferry_drive_kind_max_slots(FerryDriveKind kind);

void ferry_snapshot_record_free(FerrySnapshotRecord *snap);     /* NULL is fine */

G_DEFINE_AUTOPTR_CLEANUP_FUNC(FerryVmRecord, ferry_vm_record_free)

/* ---- the library ------------------------------------------------------------ */

typedef struct FerryStore FerryStore;

/* Opens (creating it and its folder when missing) the library at path and
 * brings its schema up to date, one transaction per version. A damaged or
 * foreign file (CORRUPT) or one from a newer Ferry (TOO_NEW) is refused and
 * left exactly as it was. Caller owns the result; use it on this thread only. */
FerryStore *ferry_store_open(const char *path, GError **error);
void        ferry_store_close(FerryStore *store);                 /* NULL is fine */
const char *ferry_store_get_path(FerryStore *store);
/* PRAGMA data_version: a number that changes when another connection (another
 * program, such as ferryctl) committed to the library. -1 on error. */
gint64      ferry_store_get_data_version(FerryStore *store);

/* All VMs, by name. Caller owns the array (it frees its records). */
GPtrArray     *ferry_store_list_vms(FerryStore *store, GError **error);
/* The VM named name (case-insensitive), or NULL with NOT_FOUND. Caller owns it. */
FerryVmRecord *ferry_store_get_vm(FerryStore *store, const char *name, GError **error);
FerryVmRecord *ferry_store_get_vm_by_id(FerryStore *store, gint64 id, GError **error);
FerryVmRecord *ferry_store_get_vm_by_uuid(FerryStore *store, const char *uuid, GError **error);

/* Stores vm with its drives in one transaction: inserts it when vm->id is 0
 * (EXISTS when the name or uuid is taken), else updates it only if the stored
 * revision is still vm->revision (CONFLICT: another program changed it;
 * NOT_FOUND: another program deleted it). On success vm->id, vm->revision and
 * vm->created are updated; on failure nothing is written. INVALID for values
 * the library cannot hold (an empty name, an unknown arch, a slot out of
 * range); the host checks (memory, files) are app/'s. */
gboolean ferry_store_save_vm(FerryStore *store, FerryVmRecord *vm, GError **error);
/* Deletes vm, its drives and snapshot records (not any file), if its revision
 * is still vm->revision (CONFLICT otherwise). */
gboolean ferry_store_delete_vm(FerryStore *store, const FerryVmRecord *vm, GError **error);
/* Records a start without touching the revision (a run is not an edit). */
gboolean ferry_store_set_last_run(FerryStore *store, gint64 vm_id, gint64 when, GError **error);

/* Snapshot records of a VM, oldest first. Caller owns the array. */
GPtrArray *ferry_store_list_snapshots(FerryStore *store, gint64 vm_id, GError **error);
/* Inserts snap (EXISTS when the VM already has one of that name); sets snap->id. */
gboolean   ferry_store_add_snapshot(FerryStore *store, FerrySnapshotRecord *snap, GError **error);
gboolean   ferry_store_delete_snapshot(FerryStore *store, gint64 snapshot_id, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(FerryStore, ferry_store_close)

/* ---- the running lock ---------------------------------------------------------
 * A VM runs in at most one process. The lock is an OFD lock on
 * $XDG_RUNTIME_DIR/ferry/running/<uuid>.lock, which holds the pid and the
 * program's name: the kernel drops it when the process dies, however it dies. */

typedef struct FerryRunLock FerryRunLock;

/* Marks vm as running in this process under program ("ferryctl", "Ferry").
 * RUNNING when it already runs elsewhere (or here): the message says where. */
FerryRunLock *ferry_run_lock_acquire(const FerryVmRecord *vm, const char *program, GError **error);
void          ferry_run_lock_release(FerryRunLock *lock);      /* NULL is fine */
/* Is the VM with this uuid running? Then *pid and *program (caller frees; may
 * be NULL) say where; pid is 0 when the holder has not written it yet. */
gboolean      ferry_run_lock_query(const char *uuid, GPid *pid, char **program);

G_END_DECLS

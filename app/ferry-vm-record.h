/* ferry-vm-record.h: between the VM library and the engine, shared by `ferry`
 * and `ferryctl`: where the library and a VM's files live, the checks that
 * depend on this host, and FerryVmRecord -> FerryVmConfig. */
#pragma once

#include <ferry/config.h>
#include "store.h"

G_BEGIN_DECLS

/* The library to use when none is named: $FERRY_LIBRARY, else
 * $XDG_DATA_HOME/ferry/ferry.db. Caller frees. */
char *ferry_library_default_path(void);

/* The VM's own folder, $XDG_DATA_HOME/ferry/vms/<uuid>/ (images Ferry
 * creates, snapshot overlays, saved states). Caller frees; not created here. */
char *ferry_vm_record_data_dir(const FerryVmRecord *vm);

/* "qcow2" or "raw" from the image's first bytes, fixed when a drive is added
 * so a raw image whose guest writes a qcow2 header is never reinterpreted.
 * NULL (with the reason) when the file cannot be read. Caller frees. */
char *ferry_image_probe_format(const char *path, GError **error);

/* Adds an image to the first free slot of kind, probing its format when
 * format is NULL: FERRY_STORE_ERROR_INVALID with what to do for a fifth hard
 * disk, a third floppy, a second CD-ROM, a floppy on riscv64 or a missing
 * file. Returns the drive (owned by vm). */
FerryDriveRecord *ferry_vm_record_add_drive(FerryVmRecord *vm, FerryDriveKind kind, const char *path,
                                            const char *format, gboolean readonly, GError **error);

/* The checks that depend on this host and on files, as
 * FERRY_STORE_ERROR_INVALID with a message a person can act on: memory and
 * vCPUs in range for this host, architecture and accelerator together, no
 * floppy on riscv64, every image file there. previous is the record as
 * stored (NULL for a new VM): files are checked only where they changed, so a
 * VM whose disk is on an unplugged drive can still be edited. */
gboolean ferry_vm_record_check(const FerryVmRecord *vm, const FerryVmRecord *previous, GError **error);

/* Fills config (initialised here; free its strings with
 * ferry_vm_config_clear()) from vm, and creates the VM's folder for its
 * data_dir. Serial, monitor and kvm_device are left to the caller. */
gboolean ferry_vm_record_to_config(const FerryVmRecord *vm, FerryVmConfig *config, GError **error);

/* "512M", "1G", "1536M": the way memory is typed to ferryctl. Caller frees. */
char *ferry_format_memory(guint64 bytes);

G_END_DECLS

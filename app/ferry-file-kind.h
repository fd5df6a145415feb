/* ferry-file-kind.h: what a file dropped on Ferry (or opened with it) is. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
    FERRY_FILE_UNKNOWN = 0,
    FERRY_FILE_ISO,          /* installation media (ISO 9660) */
    FERRY_FILE_DISK,         /* qcow2 or raw disk image */
    FERRY_FILE_FLOPPY,       /* a 1.44 MB floppy image */
    FERRY_FILE_KERNEL,       /* a Linux kernel (bzImage, RISC-V Image, ELF) */
    FERRY_FILE_INITRD,       /* an initial RAM disk (cpio, compressed or not) */
} FerryFileKind;

/* Looks at the file's first bytes. UNKNOWN with error saying why Ferry
 * cannot use it (unreadable, not an image). *arch (may be NULL) gets
 * "x86_64" or "riscv64" when the file says (kernels), else NULL. */
FerryFileKind ferry_file_kind_detect_arch(const char *path, const char **arch, GError **error);
#define ferry_file_kind_detect(path, error) ferry_file_kind_detect_arch((path), NULL, (error))

G_END_DECLS

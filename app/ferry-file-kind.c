/* ferry-file-kind.c: see ferry-file-kind.h. Magic numbers from the formats:
 * ISO 9660 ("CD001" at 0x8001), qcow2 ("QFI\xfb"), the x86 boot protocol
 * ("HdrS" at 0x202), the RISC-V Image header ("RSC\x05" at 0x38), ELF, MBR
 * (0x55AA at 510) and GPT ("EFI PART" at 512), cpio ("070701") and gzip. */
#include "ferry-file-kind.h"

#include <glib/gi18n.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "store.h"

FerryFileKind
ferry_file_kind_detect_arch(const char *path, const char **arch, GError **error)
{
    guint8 head[0x8006] = { 0 };
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (arch)
        *arch = NULL;
    if (fd < 0) {
        g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_INVALID,
                    _("it cannot be read (%s)"), g_strerror(errno));
        return FERRY_FILE_UNKNOWN;
    }
    ssize_t n = read(fd, head, sizeof(head));
    fstat(fd, &st);
    close(fd);
    if (n < 0 || !S_ISREG(st.st_mode)) {
        g_set_error_literal(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_INVALID,
                            _("it is not a regular file"));
        return FERRY_FILE_UNKNOWN;
    }
    if (n >= 0x8006 && !memcmp(head + 0x8001, "CD001", 5))
        return FERRY_FILE_ISO;
    if (n >= 4 && !memcmp(head, "QFI\xfb", 4))
        return FERRY_FILE_DISK;
    if (n >= 0x206 && !memcmp(head + 0x202, "HdrS", 4)) {
        if (arch)
            *arch = "x86_64";
        return FERRY_FILE_KERNEL;
    }
    if (n >= 0x40 && !memcmp(head + 0x38, "RSC\x05", 4)) {
        if (arch)
            *arch = "riscv64";
        return FERRY_FILE_KERNEL;
    }
    if (n >= 20 && !memcmp(head, "\177ELF", 4)) {
        guint16 machine = head[18] | (head[19] << 8);
        if (machine == 62 || machine == 243) {
            if (arch)
                *arch = machine == 62 ? "x86_64" : "riscv64";
            return FERRY_FILE_KERNEL;
        }
        g_set_error_literal(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_INVALID,
                            _("it is a program for a processor Ferry does not emulate"));
        return FERRY_FILE_UNKNOWN;
    }
    if ((n >= 6 && !memcmp(head, "070701", 6)) || (n >= 2 && head[0] == 0x1f && head[1] == 0x8b) ||
        (n >= 6 && !memcmp(head, "\xfd" "7zXZ", 5)) || (n >= 4 && !memcmp(head, "\x28\xb5\x2f\xfd", 4))) {
        return FERRY_FILE_INITRD;
    }
    if (st.st_size == 1474560 || st.st_size == 737280 || st.st_size == 2949120)
        return FERRY_FILE_FLOPPY;
    if ((n >= 512 && head[510] == 0x55 && head[511] == 0xAA) ||
        (n >= 520 && !memcmp(head + 512, "EFI PART", 8)) ||
        g_str_has_suffix(path, ".img") || g_str_has_suffix(path, ".raw")) {
        return FERRY_FILE_DISK;
    }
    g_set_error_literal(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_INVALID,
                        _("it is not a disk image, an installation image (ISO) or a Linux kernel"));
    return FERRY_FILE_UNKNOWN;
}

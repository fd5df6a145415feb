/* fuzz-qcow2.c: libFuzzer target for the qcow2 metadata parser and the
 * paths that follow metadata: open (header, extensions, L1, refcount and
 * snapshot tables), reads (L2 lookups, compressed clusters), check, block
 * status and, on a writable copy, writes, zeroes, discards and a flush.
 * Whatever the bytes, the block layer must return an error, never crash.
 *
 * clang: built by meson as fuzz-qcow2 with -fsanitize=fuzzer; run it as
 *   build/tests/fuzz/fuzz-qcow2 tests/fuzz/corpus/qcow2
 * gcc (CI): replay.c runs every corpus file through it under ASan+UBSan. */
#include "block/block.h"

#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
quiet(const char *domain, GLogLevelFlags level, const char *message, gpointer user_data)
{
}

static int
memfile(const uint8_t *data, size_t size, char *path, size_t path_len)
{
    int fd = memfd_create("fuzz-qcow2", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    for (size_t done = 0; done < size;) {
        ssize_t n = write(fd, data + done, size - done);
        if (n <= 0) {
            close(fd);
            return -1;
        }
        done += n;
    }
    snprintf(path, path_len, "/proc/self/fd/%d", fd);
    return fd;
}

static void
exercise(FerryBlock *bs, gboolean write)
{
    static guint8 buf[256 * 1024];
    guint64 size = ferry_block_get_size(bs);
    const guint64 offsets[] = { 0, size / 3, size / 2, size > sizeof(buf) ? size - sizeof(buf) : 0 };

    for (guint i = 0; i < G_N_ELEMENTS(offsets); i++)
        ferry_block_pread(bs, offsets[i], buf, MIN(sizeof(buf), size - MIN(size, offsets[i])), NULL);
    guint64 off = 0;
    for (guint i = 0; i < 64 && off < size; i++) {
        guint64 len = size - off;
        if (ferry_block_status(bs, off, &len) < 0 || !len)
            break;
        off += len;
    }
    FerryBlockInfo info;
    ferry_block_get_info(bs, &info);
    ferry_block_info_clear(&info);
    if (write && size) {
        memset(buf, 0xa5, sizeof(buf));
        ferry_block_pwrite(bs, 0, buf, MIN(size, 70000), NULL);
        ferry_block_pwrite(bs, size / 2, buf, MIN(size - size / 2, 4096), NULL);
        ferry_block_write_zeroes(bs, 0, MIN(size, 200000), NULL);
        ferry_block_discard(bs, size / 4, MIN(size - size / 4, 1 << 20), NULL);
        ferry_block_flush(bs, NULL);
    }
    FerryBlockCheck check;
    ferry_block_check(bs, &check, FALSE, NULL);
    ferry_block_check_clear(&check);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static gboolean init;
    if (!init) {
        g_log_set_handler("Ferry-Block", G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO, quiet, NULL);
        init = TRUE;
    }
    char path[64];
    /* Read-only, then read-write on a copy of the same bytes. */
    for (int pass = 0; pass < 2; pass++) {
        int fd = memfile(data, size, path, sizeof(path));
        if (fd < 0)
            return 0;
        FerryBlockFlags flags = FERRY_BLOCK_NO_BACKING | FERRY_BLOCK_NO_LOCK |
                                (pass == 0 ? FERRY_BLOCK_READ_ONLY : 0);
        GError *error = NULL;
        FerryBlock *bs = ferry_block_open(path, "qcow2", flags, &error);
        if (bs) {
            exercise(bs, pass == 1);
            ferry_block_close(bs);
        } else {
            g_assert(error != NULL && error->domain == FERRY_BLOCK_ERROR);
            g_error_free(error);
        }
        close(fd);
    }
    return 0;
}

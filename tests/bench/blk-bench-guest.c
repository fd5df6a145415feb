/* blk-bench-guest.c: the in-guest job of tests/bench/block-guest.sh, built there
 * with riscv64-linux-gnu-gcc -static and appended to the test initramfs.
 *
 *   blk-bench DEVICE SEQ_MIB RAND_COUNT
 *
 * On DEVICE, opened O_RDWR | O_DIRECT (no guest page cache), at queue depth 1:
 *   seqr   SEQ_MIB reads of 1 MiB from offset 0
 *   seqw   SEQ_MIB writes of 1 MiB from offset 0 (0xa5 bytes)
 *   randr  RAND_COUNT reads of 4 KiB at offsets 0, S, 2S, ... modulo the device size,
 *          S = 7919 * 4 KiB (the pattern of block-host.sh and qemu-img bench -S)
 *   randw  RAND_COUNT writes of 4 KiB, same offsets
 * Each phase prints BENCH-<PHASE>-START and -END to stderr (the console: the host
 * timestamps them) and is timed with CLOCK_MONOTONIC. No flush in the timed part; an
 * fsync after each write phase is not timed. Last stdout line:
 *   seqr=<MB/s> seqw=<MB/s> randr=<IOPS> randw=<IOPS>
 * (MB = 10^6 bytes). DESTROYS the data on DEVICE. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void
mark(const char *phase, const char *what)
{
    fprintf(stderr, "BENCH-%s-%s\n", phase, what);
}

static double
phase(int fd, const char *name, int write, size_t size, uint64_t step, uint64_t count,
      uint64_t devsize, void *buf)
{
    uint64_t off = 0;
    mark(name, "START");
    double t0 = now();
    for (uint64_t i = 0; i < count; i++) {
        ssize_t r = write ? pwrite(fd, buf, size, off) : pread(fd, buf, size, off);
        if (r != (ssize_t) size) {
            fprintf(stderr, "blk-bench: %s at %llu: %s\n", name, (unsigned long long) off,
                    r < 0 ? strerror(errno) : "short transfer");
            exit(1);
        }
        off = (off + step) % devsize;
    }
    double t = now() - t0;
    mark(name, "END");
    if (write && fsync(fd) < 0) {
        perror("blk-bench: fsync");
        exit(1);
    }
    return t;
}

int
main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: blk-bench DEVICE SEQ_MIB RAND_COUNT\n");
        return 2;
    }
    uint64_t mib = strtoull(argv[2], NULL, 10), n = strtoull(argv[3], NULL, 10), devsize;
    int fd = open(argv[1], O_RDWR | O_DIRECT);
    if (fd < 0 || ioctl(fd, BLKGETSIZE64, &devsize) < 0) {
        perror(argv[1]);
        return 1;
    }
    if (devsize < (mib << 20) || devsize % 4096) {
        fprintf(stderr, "blk-bench: %s is too small\n", argv[1]);
        return 1;
    }
    void *buf;
    if (posix_memalign(&buf, 4096, 1 << 20))
        return 1;
    memset(buf, 0xa5, 1 << 20);
    double seqr = phase(fd, "SEQR", 0, 1 << 20, 1 << 20, mib, devsize, buf);
    double seqw = phase(fd, "SEQW", 1, 1 << 20, 1 << 20, mib, devsize, buf);
    double randr = phase(fd, "RANDR", 0, 4096, 4096ull * 7919, n, devsize, buf);
    double randw = phase(fd, "RANDW", 1, 4096, 4096ull * 7919, n, devsize, buf);
    printf("seqr=%.1f seqw=%.1f randr=%.0f randw=%.0f\n", (mib << 20) / seqr / 1e6,
           (mib << 20) / seqw / 1e6, n / randr, n / randw);
    return 0;
}

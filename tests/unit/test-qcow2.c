/* test-qcow2.c: the block layer without external tools: raw and qcow2
 * drivers against an in-memory reference, refcount growth, backing chains,
 * bad images (each must give a clear error, never a crash), image locks,
 * asynchronous requests, write-behind and snapshot overlays (issue 5,
 * "Build it" and "Bad input"). Interop with qemu-img is in tests/integration/test-img.c. */
#include "block/block.h"
#include "block/block-private.h"
#include "../lib/ferry-test-gates.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *tmpdir;

static char *
tmp_path(const char *name)
{
    return g_build_filename(tmpdir, name, NULL);
}

static FerryBlock *
create_open(const char *name, const char *format, guint64 size, guint32 cluster_size,
            guint refcount_bits, const char *backing)
{
    g_autofree char *path = tmp_path(name);
    g_autoptr(GError) error = NULL;
    FerryBlockCreateOptions o = { .format = format, .size = size, .cluster_size = cluster_size,
                                  .refcount_bits = refcount_bits, .backing_file = backing };
    g_assert_true(ferry_block_create(path, &o, &error));
    g_assert_no_error(error);
    FerryBlock *bs = ferry_block_open(path, format, 0, &error);
    g_assert_no_error(error);
    g_assert_nonnull(bs);
    return bs;
}

static void
assert_clean(FerryBlock *bs)
{
    FerryBlockCheck r;
    g_autoptr(GError) error = NULL;
    g_assert_true(ferry_block_check(bs, &r, FALSE, &error));
    g_assert_no_error(error);
    for (guint i = 0; i < r.messages->len; i++)
        g_test_message("check: %s", (char *) r.messages->pdata[i]);
    g_assert_cmpuint(r.corruptions, ==, 0);
    g_assert_cmpuint(r.leaks, ==, 0);
    g_assert_cmpuint(r.check_errors, ==, 0);
    ferry_block_check_clear(&r);
}

static void
assert_reads(FerryBlock *bs, const guint8 *ref, guint64 size)
{
    g_autofree guint8 *buf = g_malloc(size);
    g_autoptr(GError) error = NULL;
    g_assert_true(ferry_block_pread(bs, 0, buf, size, &error));
    g_assert_no_error(error);
    for (guint64 i = 0; i < size; i++)
        if (buf[i] != ref[i])
            g_error("byte %" G_GUINT64_FORMAT " is 0x%02x, expected 0x%02x", i, buf[i], ref[i]);
}

/* ---- basics ------------------------------------------------------------------------- */

static void
test_unallocated_reads_zero(void)
{
    FerryBlock *bs = create_open("empty.qcow2", "qcow2", 10 << 20, 0, 0, NULL);
    guint8 buf[8192];
    memset(buf, 0xff, sizeof(buf));
    g_assert_true(ferry_block_pread(bs, 5 << 20, buf, sizeof(buf), NULL));
    for (guint i = 0; i < sizeof(buf); i++)
        g_assert_cmpuint(buf[i], ==, 0);
    g_assert_cmpuint(ferry_block_get_size(bs), ==, 10 << 20);
    g_assert_cmpstr(ferry_block_get_format(bs), ==, "qcow2");
    assert_clean(bs);
    ferry_block_close(bs);
}

static void
test_out_of_range(void)
{
    FerryBlock *bs = create_open("range.qcow2", "qcow2", 1 << 20, 0, 0, NULL);
    guint8 buf[512];
    g_autoptr(GError) error = NULL;
    g_assert_false(ferry_block_pread(bs, (1 << 20) - 256, buf, sizeof(buf), &error));
    g_assert_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_INVALID);
    ferry_block_close(bs);
}

static void
test_write_read_back(void)
{
    FerryBlock *bs = create_open("rw.qcow2", "qcow2", 4 << 20, 4096, 0, NULL);
    guint64 size = 4 << 20;
    g_autofree guint8 *ref = g_malloc0(size);
    /* Unaligned, cluster-straddling, multi-cluster, and overwrites. */
    static const struct { guint64 off, len; } w[] = {
        { 0, 512 }, { 100, 7000 }, { 4095, 2 }, { 65536, 65536 * 3 + 17 },
        { (4 << 20) - 5000, 5000 }, { 300000, 1 }, { 100, 50 },
    };
    for (guint i = 0; i < G_N_ELEMENTS(w); i++) {
        g_autofree guint8 *data = g_malloc(w[i].len);
        for (guint64 j = 0; j < w[i].len; j++)
            data[j] = (guint8) (i * 37 + j * 11 + 1);
        g_assert_true(ferry_block_pwrite(bs, w[i].off, data, w[i].len, NULL));
        memcpy(ref + w[i].off, data, w[i].len);
    }
    assert_reads(bs, ref, size);
    /* Zeroes and discards inside one cluster touch only their bytes. */
    g_assert_true(ferry_block_write_zeroes(bs, 66000, 300, NULL));
    memset(ref + 66000, 0, 300);
    g_assert_true(ferry_block_discard(bs, 70000, 300, NULL));
    g_assert_true(ferry_block_write_zeroes(bs, 4096 * 20 + 100, 4096 * 3, NULL));
    memset(ref + 4096 * 20 + 100, 0, 4096 * 3);
    assert_reads(bs, ref, size);
    g_assert_true(ferry_block_flush(bs, NULL));
    assert_clean(bs);
    ferry_block_close(bs);

    g_autofree char *path = tmp_path("rw.qcow2");
    bs = ferry_block_open(path, NULL, FERRY_BLOCK_READ_ONLY, NULL);
    g_assert_nonnull(bs);
    g_assert_cmpstr(ferry_block_get_format(bs), ==, "qcow2");
    assert_reads(bs, ref, size);
    ferry_block_close(bs);
}

/* Random writes, overwrites, discards and zeroes against a reference, with
 * clusters small enough that the file grows past many refcount blocks and
 * the refcount table must move. */
static void
random_io(const char *name, guint32 cluster_size, guint refcount_bits, guint64 size, guint ops)
{
    FerryBlock *bs = create_open(name, "qcow2", size, cluster_size, refcount_bits, NULL);
    g_autofree guint8 *ref = g_malloc0(size);
    g_autofree guint8 *data = g_malloc(256 * 1024);
    GRand *rand = g_rand_new_with_seed(cluster_size * 7 + refcount_bits);

    for (guint i = 0; i < ops; i++) {
        guint kind = g_rand_int_range(rand, 0, 10);
        guint64 len = g_rand_int_range(rand, 1, kind < 7 ? 64 * 1024 : 256 * 1024);
        guint64 off = g_rand_int_range(rand, 0, (gint32) (size - len));
        if (g_rand_boolean(rand))
            off &= ~(guint64) (cluster_size - 1);
        if (kind < 7) {
            guint8 seed = (guint8) g_rand_int(rand);
            for (guint64 j = 0; j < len; j++)
                data[j] = seed + (guint8) j;
            g_assert_true(ferry_block_pwrite(bs, off, data, len, NULL));
            memcpy(ref + off, data, len);
        } else if (kind < 9) {
            g_assert_true(ferry_block_write_zeroes(bs, off, len, NULL));
            memset(ref + off, 0, len);
        } else {
            /* Without a backing file a discarded cluster reads as zeros;
             * partial clusters keep their data. */
            g_assert_true(ferry_block_discard(bs, off, len, NULL));
            guint64 a = (off + cluster_size - 1) & ~(guint64) (cluster_size - 1);
            guint64 b = (off + len) & ~(guint64) (cluster_size - 1);
            if (off + len == size)
                b = size;
            if (b > a)
                memset(ref + a, 0, b - a);
        }
        if (g_rand_int_range(rand, 0, 50) == 0)
            g_assert_true(ferry_block_flush(bs, NULL));
    }
    assert_reads(bs, ref, size);
    g_assert_true(ferry_block_flush(bs, NULL));
    assert_clean(bs);
    ferry_block_close(bs);

    g_autofree char *path = tmp_path(name);
    bs = ferry_block_open(path, "qcow2", 0, NULL);
    g_assert_nonnull(bs);
    assert_reads(bs, ref, size);
    assert_clean(bs);
    ferry_block_close(bs);
    g_rand_free(rand);
}

static void
test_random_io_64k(void)
{
    random_io("rand64k.qcow2", 65536, 16, 64 << 20, 600);
}

static void
test_refcount_growth(void)
{
    /* 512-byte clusters with 64-bit refcounts: 64 clusters per refcount
     * block and 64 blocks per table cluster, so a few MiB of data need
     * dozens of blocks and several table moves. */
    random_io("grow.qcow2", 512, 64, 8 << 20, 1500);
}

static void
test_narrow_refcounts(void)
{
    random_io("rc1.qcow2", 1024, 1, 4 << 20, 800);
    random_io("rc4.qcow2", 4096, 4, 8 << 20, 500);
}

static void
test_raw(void)
{
    FerryBlock *bs = create_open("disk.raw", "raw", 3 << 20, 0, 0, NULL);
    g_autofree guint8 *ref = g_malloc0(3 << 20);
    guint8 data[10000];
    for (guint i = 0; i < sizeof(data); i++)
        data[i] = (guint8) (i * 7);
    g_assert_true(ferry_block_pwrite(bs, 12345, data, sizeof(data), NULL));
    memcpy(ref + 12345, data, sizeof(data));
    g_assert_true(ferry_block_write_zeroes(bs, 13000, 100, NULL));
    memset(ref + 13000, 0, 100);
    g_assert_true(ferry_block_flush(bs, NULL));
    assert_reads(bs, ref, 3 << 20);
    guint64 len = 3 << 20;
    int st = ferry_block_status(bs, 2 << 20, &len);
    g_assert_cmpint(st & FERRY_BLOCK_STATUS_ALLOCATED, !=, 0);
    FerryBlockCheck r;
    g_autoptr(GError) error = NULL;
    g_assert_false(ferry_block_check(bs, &r, FALSE, &error));
    g_assert_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_UNSUPPORTED);
    ferry_block_check_clear(&r);
    ferry_block_close(bs);
}

/* ---- backing files ------------------------------------------------------------------ */

static void
test_backing_chain(void)
{
    guint64 size = 2 << 20;
    g_autofree guint8 *ref = g_malloc0(size);
    guint8 a[3000], b[5000];
    memset(a, 0xaa, sizeof(a));
    memset(b, 0xbb, sizeof(b));

    FerryBlock *base = create_open("chain-base.raw", "raw", size, 0, 0, NULL);
    g_assert_true(ferry_block_pwrite(base, 1000, a, sizeof(a), NULL));
    memcpy(ref + 1000, a, sizeof(a));
    ferry_block_close(base);

    /* Relative names: relative to the image's own folder. */
    FerryBlockCreateOptions o = { .format = "qcow2", .backing_file = "chain-base.raw",
                                  .backing_format = "raw", .cluster_size = 4096 };
    g_autofree char *mid_path = tmp_path("chain-mid.qcow2");
    g_assert_true(ferry_block_create(mid_path, &o, NULL));
    FerryBlock *mid = ferry_block_open(mid_path, NULL, 0, NULL);
    g_assert_nonnull(mid);
    g_assert_cmpuint(ferry_block_get_size(mid), ==, size);  /* from the backing */
    g_assert_true(ferry_block_pwrite(mid, 2500, b, sizeof(b), NULL));
    memcpy(ref + 2500, b, sizeof(b));
    g_assert_true(ferry_block_discard(mid, 1 << 20, 8192, NULL));     /* nothing to drop */
    ferry_block_close(mid);

    FerryBlockCreateOptions o2 = { .format = "qcow2", .backing_file = "chain-mid.qcow2",
                                   .cluster_size = 512 };
    g_autofree char *top_path = tmp_path("chain-top.qcow2");
    g_assert_true(ferry_block_create(top_path, &o2, NULL));
    FerryBlock *top = ferry_block_open(top_path, "qcow2", 0, NULL);
    g_assert_nonnull(top);
    assert_reads(top, ref, size);
    /* A partial write into an unallocated cluster keeps the rest from below. */
    guint8 c[100];
    memset(c, 0xcc, sizeof(c));
    g_assert_true(ferry_block_pwrite(top, 1100, c, sizeof(c), NULL));
    memcpy(ref + 1100, c, sizeof(c));
    /* Zeroes and discards over a backing file read back as zeros. */
    g_assert_true(ferry_block_write_zeroes(top, 2048, 1024, NULL));
    memset(ref + 2048, 0, 1024);
    g_assert_true(ferry_block_discard(top, 4096, 1024, NULL));
    memset(ref + 4096, 0, 1024);
    assert_reads(top, ref, size);
    assert_clean(top);

    FerryBlockInfo info;
    ferry_block_get_info(top, &info);
    g_assert_cmpstr(info.backing_filename, ==, "chain-mid.qcow2");
    g_assert_cmpstr(info.full_backing_filename, ==, mid_path);
    g_assert_cmpstr(info.backing_format, ==, "qcow2");
    ferry_block_info_clear(&info);
    ferry_block_close(top);

    /* The lower layers are untouched. */
    g_autofree char *base_path = tmp_path("chain-base.raw");
    base = ferry_block_open(base_path, "raw", FERRY_BLOCK_READ_ONLY, NULL);
    guint8 chk[3000];
    g_assert_true(ferry_block_pread(base, 1000, chk, sizeof(chk), NULL));
    g_assert_cmpmem(chk, sizeof(chk), a, sizeof(a));
    ferry_block_close(base);
}

static void
test_backing_loop(void)
{
    g_autofree char *a = tmp_path("loop-a.qcow2");
    g_autofree char *b = tmp_path("loop-b.qcow2");
    FerryBlockCreateOptions oa = { .format = "qcow2", .size = 1 << 20, .backing_file = "loop-b.qcow2",
                                   .backing_format = "qcow2", .no_backing_check = TRUE };
    FerryBlockCreateOptions ob = { .format = "qcow2", .size = 1 << 20, .backing_file = "loop-a.qcow2",
                                   .backing_format = "qcow2", .no_backing_check = TRUE };
    g_assert_true(ferry_block_create(a, &oa, NULL));
    g_assert_true(ferry_block_create(b, &ob, NULL));
    g_autoptr(GError) error = NULL;
    FerryBlock *bs = ferry_block_open(a, NULL, FERRY_BLOCK_READ_ONLY, &error);
    g_assert_null(bs);
    g_assert_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_CORRUPT);
    g_assert_nonnull(strstr(error->message, "loops back"));

    /* An image that is its own backing file. */
    g_autofree char *self = tmp_path("loop-self.qcow2");
    FerryBlockCreateOptions os = { .format = "qcow2", .size = 1 << 20,
                                   .backing_file = "loop-self.qcow2", .no_backing_check = TRUE };
    g_assert_true(ferry_block_create(self, &os, NULL));
    g_clear_error(&error);
    g_assert_null(ferry_block_open(self, NULL, FERRY_BLOCK_READ_ONLY, &error));
    g_assert_nonnull(strstr(error->message, "loops back"));
}

static void
test_chain_depth_limit(void)
{
    g_autofree char *base = tmp_path("deep-0.raw");
    FerryBlockCreateOptions o = { .format = "raw", .size = 65536 };
    g_assert_true(ferry_block_create(base, &o, NULL));
    for (guint i = 1; i <= FERRY_BLOCK_MAX_CHAIN + 2; i++) {
        g_autofree char *path = g_strdup_printf("%s/deep-%u.qcow2", tmpdir, i);
        g_autofree char *below = i == 1 ? g_strdup("deep-0.raw") : g_strdup_printf("deep-%u.qcow2", i - 1);
        FerryBlockCreateOptions q = { .format = "qcow2", .size = 65536, .backing_file = below,
                                      .backing_format = i == 1 ? "raw" : "qcow2",
                                      .no_backing_check = TRUE };
        g_assert_true(ferry_block_create(path, &q, NULL));
    }
    g_autofree char *ok = g_strdup_printf("%s/deep-%u.qcow2", tmpdir, FERRY_BLOCK_MAX_CHAIN);
    FerryBlock *bs = ferry_block_open(ok, NULL, FERRY_BLOCK_READ_ONLY, NULL);
    g_assert_nonnull(bs);
    ferry_block_close(bs);
    g_autofree char *deep = g_strdup_printf("%s/deep-%u.qcow2", tmpdir, FERRY_BLOCK_MAX_CHAIN + 2);
    g_autoptr(GError) error = NULL;
    g_assert_null(ferry_block_open(deep, NULL, FERRY_BLOCK_READ_ONLY, &error));
    g_assert_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_UNSUPPORTED);
    g_assert_nonnull(strstr(error->message, "deep"));
}

static void
test_missing_backing(void)
{
    g_autofree char *path = tmp_path("orphan.qcow2");
    FerryBlockCreateOptions o = { .format = "qcow2", .size = 1 << 20,
                                  .backing_file = "no-such-base.raw", .backing_format = "raw",
                                  .no_backing_check = TRUE };
    g_assert_true(ferry_block_create(path, &o, NULL));
    g_autoptr(GError) error = NULL;
    g_assert_null(ferry_block_open(path, NULL, 0, &error));
    g_assert_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_OPEN);
    g_assert_nonnull(strstr(error->message, "no-such-base.raw"));
    /* Without the chain (info, check) it opens. */
    FerryBlock *bs = ferry_block_open(path, NULL, FERRY_BLOCK_NO_BACKING, NULL);
    g_assert_nonnull(bs);
    ferry_block_close(bs);
}

/* ---- bad images ------------------------------------------------------------------------ */

/* A small valid image (512-byte clusters, some data) to damage. Layout:
 * header 0, refcount table 0x200, refcount block 0x400, L1 0x600, then
 * L2 and data. */
static char *
make_victim(const char *name)
{
    g_autofree char *path = tmp_path(name);
    FerryBlockCreateOptions o = { .format = "qcow2", .size = 1 << 20, .cluster_size = 512 };
    g_assert_true(ferry_block_create(path, &o, NULL));
    FerryBlock *bs = ferry_block_open(path, "qcow2", 0, NULL);
    guint8 data[2048];
    memset(data, 0x5a, sizeof(data));
    g_assert_true(ferry_block_pwrite(bs, 0, data, sizeof(data), NULL));
    g_assert_true(ferry_block_pwrite(bs, 700000, data, sizeof(data), NULL));
    ferry_block_close(bs);
    return g_steal_pointer(&path);
}

static void
poke(const char *path, guint64 offset, const void *bytes, gsize len)
{
    int fd = open(path, O_WRONLY);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pwrite(fd, bytes, len, offset), ==, (gssize) len);
    close(fd);
}

static void
poke_be32(const char *path, guint64 offset, guint32 v)
{
    guint32 be = GUINT32_TO_BE(v);
    poke(path, offset, &be, 4);
}

static void
poke_be64(const char *path, guint64 offset, guint64 v)
{
    guint64 be = GUINT64_TO_BE(v);
    poke(path, offset, &be, 8);
}

static guint64
peek_be64(const char *path, guint64 offset)
{
    guint64 be = 0;
    int fd = open(path, O_RDONLY);
    g_assert_cmpint(pread(fd, &be, 8, offset), ==, 8);
    close(fd);
    return GUINT64_FROM_BE(be);
}

static void
expect_open_error(const char *path, FerryBlockFlags flags, int code, const char *needle)
{
    g_autoptr(GError) error = NULL;
    FerryBlock *bs = ferry_block_open(path, NULL, flags, &error);
    if (bs)
        g_error("%s opened, expected an error with '%s'", path, needle);
    g_assert_error(error, FERRY_BLOCK_ERROR, code);
    g_test_message("%s", error->message);
    if (!strstr(error->message, needle))
        g_error("'%s' lacks '%s'", error->message, needle);
    g_assert_nonnull(strstr(error->message, path));
}

static void
test_corrupt_header(void)
{
    g_autofree char *p = make_victim("bad-bits.qcow2");
    poke_be32(p, 20, 40);                       /* cluster_bits */
    expect_open_error(p, FERRY_BLOCK_READ_ONLY, FERRY_BLOCK_ERROR_CORRUPT, "cluster_bits 40");

    g_autofree char *p2 = make_victim("bad-size.qcow2");
    poke_be64(p2, 24, G_GUINT64_CONSTANT(1) << 62);   /* virtual size vs L1 */
    expect_open_error(p2, FERRY_BLOCK_READ_ONLY, FERRY_BLOCK_ERROR_CORRUPT, "L1 entries");

    g_autofree char *p3 = make_victim("bad-l1size.qcow2");
    poke_be32(p3, 36, 0x7fffffff);              /* l1_size */
    expect_open_error(p3, FERRY_BLOCK_READ_ONLY, FERRY_BLOCK_ERROR_UNSUPPORTED, "L1 table");

    g_autofree char *p4 = make_victim("bad-incompat.qcow2");
    poke_be64(p4, 72, 1u << 4 | 1u << 9);       /* extended L2 + unknown bit 9 */
    expect_open_error(p4, FERRY_BLOCK_READ_ONLY, FERRY_BLOCK_ERROR_UNSUPPORTED,
                      "incompatible feature");

    g_autofree char *p5 = make_victim("bad-reftable.qcow2");
    poke_be64(p5, 48, G_GUINT64_CONSTANT(1) << 40);    /* refcount table past the end */
    expect_open_error(p5, FERRY_BLOCK_READ_ONLY, FERRY_BLOCK_ERROR_CORRUPT, "refcount table");

    g_autofree char *p6 = make_victim("bad-version.qcow2");
    poke_be32(p6, 4, 4);
    expect_open_error(p6, FERRY_BLOCK_READ_ONLY, FERRY_BLOCK_ERROR_UNSUPPORTED, "version 4");

    g_autofree char *p7 = make_victim("bad-snapshots.qcow2");
    poke_be32(p7, 60, 3);                       /* nb_snapshots, offset 0x200000 */
    poke_be64(p7, 64, 0x200000);
    expect_open_error(p7, FERRY_BLOCK_READ_ONLY, FERRY_BLOCK_ERROR_CORRUPT, "snapshot table");

    g_autofree char *p8 = make_victim("bad-backing.qcow2");
    poke_be64(p8, 8, 400);                      /* backing name offset + absurd length */
    poke_be32(p8, 16, 5000);
    expect_open_error(p8, FERRY_BLOCK_READ_ONLY, FERRY_BLOCK_ERROR_CORRUPT, "backing file name");

    g_autofree char *p9 = make_victim("encrypted.qcow2");
    poke_be32(p9, 32, 2);
    expect_open_error(p9, FERRY_BLOCK_READ_ONLY, FERRY_BLOCK_ERROR_UNSUPPORTED, "encrypted");

    g_autofree char *p10 = make_victim("marked-corrupt.qcow2");
    poke_be64(p10, 72, 2);
    expect_open_error(p10, 0, FERRY_BLOCK_ERROR_CORRUPT, "marked corrupt");
    FerryBlock *bs = ferry_block_open(p10, NULL, FERRY_BLOCK_READ_ONLY, NULL);
    g_assert_nonnull(bs);       /* read-only is fine */
    ferry_block_close(bs);
}

static void
test_truncated(void)
{
    g_autofree char *p = make_victim("short.qcow2");
    g_assert_cmpint(truncate(p, 40), ==, 0);
    expect_open_error(p, FERRY_BLOCK_READ_ONLY, FERRY_BLOCK_ERROR_CORRUPT, "too short");

    /* Cut inside the L1 table. */
    g_autofree char *p2 = make_victim("short-l1.qcow2");
    g_assert_cmpint(truncate(p2, 0x600 + 4), ==, 0);
    expect_open_error(p2, FERRY_BLOCK_READ_ONLY, FERRY_BLOCK_ERROR_CORRUPT, "L1");

    /* Cut after the metadata: data clusters are gone, the reads fail with
     * a reason rather than inventing data. */
    g_autofree char *p3 = make_victim("short-data.qcow2");
    struct stat st;
    g_assert_cmpint(stat(p3, &st), ==, 0);
    g_assert_cmpint(truncate(p3, st.st_size - 1024), ==, 0);
    FerryBlock *bs = ferry_block_open(p3, NULL, FERRY_BLOCK_READ_ONLY, NULL);
    if (bs) {
        g_autofree guint8 *buf = g_malloc(1 << 20);
        g_autoptr(GError) error = NULL;
        if (!ferry_block_pread(bs, 0, buf, 1 << 20, &error)) {
            g_test_message("%s", error->message);
            g_assert_nonnull(strstr(error->message, "short-data.qcow2"));
        }
        ferry_block_close(bs);
    }
}

static void
test_l1_l2_outside(void)
{
    g_autofree char *p = make_victim("l1-out.qcow2");
    guint64 l1 = peek_be64(p, 40);
    poke_be64(p, l1, G_GUINT64_CONSTANT(0x8000000000000000) | (G_GUINT64_CONSTANT(1) << 45));
    expect_open_error(p, FERRY_BLOCK_READ_ONLY, FERRY_BLOCK_ERROR_CORRUPT, "L1 entry 0");

    /* An L2 entry pointing past the end: reads of it fail with the reason,
     * a writable image gets the corrupt bit and refuses writes. */
    g_autofree char *p2 = make_victim("l2-out.qcow2");
    guint64 l2 = peek_be64(p2, peek_be64(p2, 40)) & G_GUINT64_CONSTANT(0x00fffffffffffe00);
    poke_be64(p2, l2 + 8, G_GUINT64_CONSTANT(0x8000000000000000) | (G_GUINT64_CONSTANT(1) << 40));
    FerryBlock *bs = ferry_block_open(p2, NULL, 0, NULL);
    g_assert_nonnull(bs);
    guint8 buf[1024];
    g_autoptr(GError) error = NULL;
    g_assert_true(ferry_block_pread(bs, 0, buf, 512, NULL));            /* cluster 0 is fine */
    g_assert_false(ferry_block_pread(bs, 512, buf, 512, &error));
    g_assert_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_CORRUPT);
    g_assert_nonnull(strstr(error->message, "past the end of the file"));
    g_clear_error(&error);
    g_assert_false(ferry_block_pwrite(bs, 600, buf, 100, &error));      /* in place: refused */
    g_test_message("%s", error->message);
    g_clear_error(&error);
    g_assert_false(ferry_block_pwrite(bs, 8192, buf, 100, &error));     /* now broken */
    ferry_block_close(bs);
    expect_open_error(p2, 0, FERRY_BLOCK_ERROR_CORRUPT, "marked corrupt");

    FerryBlockCheck r;
    bs = ferry_block_open(p2, NULL, FERRY_BLOCK_READ_ONLY, NULL);
    g_assert_true(ferry_block_check(bs, &r, FALSE, NULL));
    g_assert_cmpuint(r.corruptions, >, 0);
    ferry_block_check_clear(&r);
    ferry_block_close(bs);
}

static void
test_refcount_overflow(void)
{
    /* Two L2 entries naming one data cluster in a 1-bit-refcount image: the
     * cluster needs refcount 2, which 1 bit cannot hold. */
    g_autofree char *path = tmp_path("overflow.qcow2");
    FerryBlockCreateOptions o = { .format = "qcow2", .size = 1 << 20, .cluster_size = 512,
                                  .refcount_bits = 1 };
    g_assert_true(ferry_block_create(path, &o, NULL));
    FerryBlock *bs = ferry_block_open(path, "qcow2", 0, NULL);
    guint8 data[1024];
    memset(data, 1, sizeof(data));
    g_assert_true(ferry_block_pwrite(bs, 0, data, sizeof(data), NULL));
    ferry_block_close(bs);
    guint64 l2 = peek_be64(path, peek_be64(path, 40)) & G_GUINT64_CONSTANT(0x00fffffffffffe00);
    poke_be64(path, l2 + 8, peek_be64(path, l2));
    bs = ferry_block_open(path, NULL, FERRY_BLOCK_READ_ONLY, NULL);
    FerryBlockCheck r;
    g_assert_true(ferry_block_check(bs, &r, FALSE, NULL));
    g_assert_cmpuint(r.corruptions, >, 0);
    gboolean found = FALSE;
    for (guint i = 0; i < r.messages->len; i++)
        found |= strstr(r.messages->pdata[i], "overflow") != NULL;
    g_assert_true(found);
    ferry_block_check_clear(&r);
    ferry_block_close(bs);
}

static void
test_garbage_files(void)
{
    /* Random bytes behind a qcow2 magic: opening and reading must not crash. */
    GRand *rand = g_rand_new_with_seed(5);
    g_autofree char *path = tmp_path("garbage.qcow2");
    for (guint round = 0; round < 300; round++) {
        guint8 buf[4096];
        for (guint i = 0; i < sizeof(buf); i++)
            buf[i] = (guint8) g_rand_int(rand);
        memcpy(buf, "QFI\xfb\0\0\0\3", 8);
        buf[23] = 9 + g_rand_int_range(rand, 0, 4);     /* plausible cluster_bits */
        g_assert_true(g_file_set_contents(path, (char *) buf, 512 << g_rand_int_range(rand, 0, 4), NULL));
        g_autoptr(GError) error = NULL;
        FerryBlock *bs = ferry_block_open(path, NULL, FERRY_BLOCK_READ_ONLY | FERRY_BLOCK_NO_BACKING,
                                          &error);
        if (bs) {
            guint8 out[4096];
            ferry_block_pread(bs, 0, out, MIN(sizeof(out), ferry_block_get_size(bs)), NULL);
            ferry_block_close(bs);
        } else {
            g_assert_nonnull(error);
        }
    }
    g_rand_free(rand);
}

static void
test_unreadable(void)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *missing = tmp_path("does-not-exist.qcow2");
    g_assert_null(ferry_block_open(missing, NULL, 0, &error));
    g_assert_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_OPEN);
    g_assert_nonnull(strstr(error->message, "no such file"));
    g_clear_error(&error);
    g_assert_null(ferry_block_open(tmpdir, NULL, 0, &error));
    g_assert_nonnull(strstr(error->message, "folder"));
    g_clear_error(&error);
    g_assert_null(ferry_block_open(missing, "vmdk", 0, &error));
    g_assert_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_INVALID);
    if (geteuid() != 0) {
        g_autofree char *p = make_victim("noperm.qcow2");
        chmod(p, 0);
        g_clear_error(&error);
        g_assert_null(ferry_block_open(p, NULL, 0, &error));
        g_assert_nonnull(strstr(error->message, "permission denied"));
    }
}

/* ---- locks ------------------------------------------------------------------------------- */

static void
test_locks(void)
{
    FerryBlock *a = create_open("locked.qcow2", "qcow2", 1 << 20, 0, 0, NULL);
    g_autofree char *path = tmp_path("locked.qcow2");
    g_autoptr(GError) error = NULL;
    /* OFD locks belong to the open file, so a second open in this process
     * stands for a second program. */
    g_assert_null(ferry_block_open(path, NULL, 0, &error));
    g_assert_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_LOCKED);
    g_assert_nonnull(strstr(error->message, "in use by another program"));
    g_assert_nonnull(strstr(error->message, "close it first"));
    g_clear_error(&error);
    g_assert_null(ferry_block_open(path, NULL, FERRY_BLOCK_READ_ONLY, &error));
    g_clear_error(&error);
    FerryBlockCreateOptions o = { .format = "raw", .size = 1 };
    g_assert_false(ferry_block_create(path, &o, &error));         /* no truncating it */
    g_assert_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_LOCKED);
    g_clear_error(&error);
    FerryBlock *shared = ferry_block_open(path, NULL, FERRY_BLOCK_READ_ONLY | FERRY_BLOCK_NO_LOCK, NULL);
    g_assert_nonnull(shared);
    ferry_block_close(shared);
    ferry_block_close(a);

    /* Readers share with readers, not with writers. */
    FerryBlock *r1 = ferry_block_open(path, NULL, FERRY_BLOCK_READ_ONLY, NULL);
    FerryBlock *r2 = ferry_block_open(path, NULL, FERRY_BLOCK_READ_ONLY, NULL);
    g_assert_nonnull(r1);
    g_assert_nonnull(r2);
    g_assert_null(ferry_block_open(path, NULL, 0, &error));
    g_assert_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_LOCKED);
    ferry_block_close(r1);
    ferry_block_close(r2);
    a = ferry_block_open(path, NULL, 0, NULL);
    g_assert_nonnull(a);
    ferry_block_close(a);
}

/* ---- async ------------------------------------------------------------------------------- */

typedef struct {
    FerryBlockReq req;
    struct iovec iov[3];
    guint8 *buf;
    int result;
    GThread *thread;
    gint *pending;
} AReq;

static void
areq_done(FerryBlockReq *req, int result)
{
    AReq *a = (AReq *) req;
    a->result = result;
    a->thread = g_thread_self();
    g_atomic_int_dec_and_test(a->pending);
}

static void
async_round(FerryBlock *bs)
{
    enum { N = 64, LEN = 12288 };
    AReq reqs[N];
    gint pending = N;
    for (guint i = 0; i < N; i++) {
        AReq *a = &reqs[i];
        memset(a, 0, sizeof(*a));
        a->buf = g_malloc(LEN);
        memset(a->buf, i + 1, LEN);
        /* Three iovecs of odd sizes per request. */
        a->iov[0] = (struct iovec) { a->buf, 1000 };
        a->iov[1] = (struct iovec) { a->buf + 1000, 5000 };
        a->iov[2] = (struct iovec) { a->buf + 6000, LEN - 6000 };
        a->req = (FerryBlockReq) { .op = FERRY_BLOCK_OP_WRITE, .offset = (guint64) i * LEN,
                                   .iov = a->iov, .niov = 3, .done = areq_done };
        a->pending = &pending;
        ferry_block_submit_async(bs, &a->req);
    }
    ferry_block_drain(bs);
    g_assert_cmpint(g_atomic_int_get(&pending), ==, 0);
    for (guint i = 0; i < N; i++) {
        g_assert_cmpint(reqs[i].result, ==, 0);
        g_assert_true(reqs[i].thread != g_thread_self());
        memset(reqs[i].buf, 0, LEN);
        reqs[i].req.op = FERRY_BLOCK_OP_READ;
    }
    pending = N;
    for (guint i = 0; i < N; i++)
        ferry_block_submit_async(bs, &reqs[i].req);
    ferry_block_drain(bs);
    for (guint i = 0; i < N; i++) {
        g_assert_cmpint(reqs[i].result, ==, 0);
        for (guint j = 0; j < LEN; j++)
            g_assert_cmpuint(reqs[i].buf[j], ==, i + 1);
        g_free(reqs[i].buf);
    }
    /* A request out of range completes with -EINVAL, on the same path. */
    AReq bad = { 0 };
    guint8 b[512];
    bad.iov[0] = (struct iovec) { b, sizeof(b) };
    bad.req = (FerryBlockReq) { .op = FERRY_BLOCK_OP_READ, .offset = ferry_block_get_size(bs),
                                .iov = bad.iov, .niov = 1, .done = areq_done };
    pending = 1;
    bad.pending = &pending;
    ferry_block_submit_async(bs, &bad.req);
    ferry_block_drain(bs);
    g_assert_cmpint(bad.result, ==, -EINVAL);
}

static void
test_async(void)
{
    FerryBlock *q = create_open("async.qcow2", "qcow2", 4 << 20, 4096, 0, NULL);
    async_round(q);
    g_assert_true(ferry_block_flush(q, NULL));
    assert_clean(q);
    ferry_block_close(q);
    FerryBlock *r = create_open("async.raw", "raw", 4 << 20, 0, 0, NULL);
    async_round(r);
    ferry_block_close(r);
}

/* ferry_block_help: an idle thread (a hart in WFI) runs a request that no
 * worker has taken. A driver whose reads at offset 0 wait at a gate holds
 * every worker, so the next request stays queued until the test helps. */
static struct {
    GMutex lock;
    GCond cond;
    gboolean open;
    guint waiting;
} gate;

static int
gate_submit(FerryBlock *bs, FerryBlockReq *req)
{
    if (req->offset == 0) {
        g_mutex_lock(&gate.lock);
        gate.waiting++;
        g_cond_broadcast(&gate.cond);
        while (!gate.open)
            g_cond_wait(&gate.cond, &gate.lock);
        g_mutex_unlock(&gate.lock);
    }
    ferry_iov_memset(req->iov, req->niov, 0, (int) (req->offset / 4096), req->length);
    return 0;
}

static void
gate_close(FerryBlock *bs)
{
}

static const FerryBlockDriver gate_driver = {
    .format = "gate", .submit = gate_submit, .close = gate_close,
};

static void
test_help(void)
{
    FerryBlock *bs = ferry_block_new_virtual(&gate_driver, "gate", 0);
    ferry_block_set_size(bs, 1 << 20);
    gint pending = FERRY_BLOCK_WORKERS + 1;
    AReq reqs[FERRY_BLOCK_WORKERS + 1];
    guint8 bufs[FERRY_BLOCK_WORKERS + 1][4096];

    /* Nothing queued: no help, at once. */
    g_assert_false(ferry_block_help(bs));
    memset(reqs, 0, sizeof(reqs));
    for (guint i = 0; i <= FERRY_BLOCK_WORKERS; i++) {
        reqs[i].iov[0] = (struct iovec) { bufs[i], sizeof(bufs[i]) };
        reqs[i].req = (FerryBlockReq) { .op = FERRY_BLOCK_OP_READ,
                                        .offset = i < FERRY_BLOCK_WORKERS ? 0 : 8192,
                                        .iov = reqs[i].iov, .niov = 1, .done = areq_done };
        reqs[i].pending = &pending;
        ferry_block_submit_async(bs, &reqs[i].req);
        if (i < FERRY_BLOCK_WORKERS) {
            /* wait until a worker holds it at the gate */
            g_mutex_lock(&gate.lock);
            while (gate.waiting <= i)
                g_cond_wait(&gate.cond, &gate.lock);
            g_mutex_unlock(&gate.lock);
        }
    }
    /* Every worker waits at the gate: the last read is queued; the help
     * runs it here, done included, and then there is nothing left. */
    g_assert_true(ferry_block_help(bs));
    g_assert_true(reqs[FERRY_BLOCK_WORKERS].thread == g_thread_self());
    g_assert_cmpint(reqs[FERRY_BLOCK_WORKERS].result, ==, 0);
    g_assert_cmpuint(bufs[FERRY_BLOCK_WORKERS][0], ==, 2);
    g_assert_cmpuint(bufs[FERRY_BLOCK_WORKERS][4095], ==, 2);
    g_assert_cmpint(g_atomic_int_get(&pending), ==, FERRY_BLOCK_WORKERS);
    g_assert_false(ferry_block_help(bs));

    g_mutex_lock(&gate.lock);
    gate.open = TRUE;
    g_cond_broadcast(&gate.cond);
    g_mutex_unlock(&gate.lock);
    ferry_block_drain(bs);
    g_assert_cmpint(g_atomic_int_get(&pending), ==, 0);
    for (guint i = 0; i < FERRY_BLOCK_WORKERS; i++) {
        g_assert_cmpint(reqs[i].result, ==, 0);
        g_assert_true(reqs[i].thread != g_thread_self());
    }
    ferry_block_close(bs);
}

/* ---- overlays ------------------------------------------------------------------------------ */

static void
fill_base(const char *path, guint64 size, guint8 **ref)
{
    FerryBlockCreateOptions o = { .format = "raw", .size = size };
    g_assert_true(ferry_block_create(path, &o, NULL));
    FerryBlock *bs = ferry_block_open(path, "raw", 0, NULL);
    *ref = g_malloc(size);
    for (guint64 i = 0; i < size; i++)
        (*ref)[i] = (guint8) (i / 4096 + 1);
    g_assert_true(ferry_block_pwrite(bs, 0, *ref, size, NULL));
    ferry_block_close(bs);
}

static char *
file_checksum(const char *path)
{
    g_autofree char *data = NULL;
    gsize len;
    g_assert_true(g_file_get_contents(path, &data, &len, NULL));
    return g_compute_checksum_for_data(G_CHECKSUM_SHA256, (guint8 *) data, len);
}

static void
test_overlay(void)
{
    guint64 size = 4 << 20;
    g_autofree char *base = tmp_path("ov-base.raw");
    g_autofree char *dir = tmp_path("vm-data");
    g_autofree guint8 *ref = NULL;
    fill_base(base, size, &ref);
    g_autofree char *sum0 = file_checksum(base);
    g_autoptr(GError) error = NULL;

    FerryBlock *ov = ferry_overlay_open(base, "raw", dir, "hda", FERRY_OVERLAY_REFUSE_LEFTOVER, &error);
    g_assert_no_error(error);
    g_assert_cmpstr(ferry_block_get_format(ov), ==, "overlay");
    g_assert_cmpuint(ferry_block_get_size(ov), ==, size);
    g_assert_true(g_str_has_prefix(ferry_overlay_get_path(ov), dir));
    g_assert_cmpuint(ferry_overlay_pending_bytes(ov), ==, 0);
    assert_reads(ov, ref, size);

    guint8 w[70000];
    memset(w, 0x77, sizeof(w));
    g_assert_true(ferry_block_pwrite(ov, 10000, w, sizeof(w), NULL));
    memcpy(ref + 10000, w, sizeof(w));
    g_assert_true(ferry_block_write_zeroes(ov, 1 << 20, 128 << 10, NULL));
    memset(ref + (1 << 20), 0, 128 << 10);
    g_assert_true(ferry_block_discard(ov, 2 << 20, 64 << 10, NULL));   /* reads zero over a base */
    memset(ref + (2 << 20), 0, 64 << 10);
    assert_reads(ov, ref, size);
    g_assert_cmpuint(ferry_overlay_pending_bytes(ov), >=, sizeof(w) + (192 << 10));
    g_assert_true(ferry_block_flush(ov, NULL));

    /* Nothing reached the base; discard leaves it as it was. */
    g_autofree char *sum1 = file_checksum(base);
    g_assert_cmpstr(sum0, ==, sum1);
    g_assert_true(ferry_overlay_discard(ov, &error));
    g_assert_cmpuint(ferry_overlay_pending_bytes(ov), ==, 0);
    g_autofree guint8 *orig = NULL;
    g_free(ref);
    g_autofree char *ref_path = tmp_path("ov-ref.raw");
    fill_base(ref_path, size, &orig);
    assert_reads(ov, orig, size);
    ref = g_memdup2(orig, size);

    /* Commit: the base holds exactly the writes; the overlay is empty again
     * and snapshot mode goes on. */
    g_assert_true(ferry_block_pwrite(ov, 10000, w, sizeof(w), NULL));
    memcpy(ref + 10000, w, sizeof(w));
    g_assert_true(ferry_block_write_zeroes(ov, 3 << 20, 65536, NULL));
    memset(ref + (3 << 20), 0, 65536);
    g_assert_true(ferry_overlay_commit(ov, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(ferry_overlay_pending_bytes(ov), ==, 0);
    assert_reads(ov, ref, size);
    g_assert_true(ferry_block_pwrite(ov, 0, w, 100, NULL));
    g_assert_cmpuint(ferry_overlay_pending_bytes(ov), >, 0);
    ferry_block_close(ov);

    FerryBlock *b = ferry_block_open(base, "raw", FERRY_BLOCK_READ_ONLY, NULL);
    assert_reads(b, ref, size);
    ferry_block_close(b);

    /* The overlay survives close (a crash): it is a leftover now. */
    g_autoptr(GPtrArray) left = ferry_overlay_list_leftovers(dir, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(left->len, ==, 1);
    FerryOverlayLeftoverInfo *l = left->pdata[0];
    g_assert_cmpstr(l->drive, ==, "hda");
    g_assert_cmpstr(l->base_path, ==, base);
    g_assert_cmpuint(l->pending_bytes, >, 0);
    g_assert_false(l->commit_was_interrupted);

    g_assert_null(ferry_overlay_open(base, "raw", dir, "hda", FERRY_OVERLAY_REFUSE_LEFTOVER, &error));
    g_assert_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_PENDING);
    g_assert_nonnull(strstr(error->message, "commit or discard"));
    g_clear_error(&error);
    ov = ferry_overlay_open(base, "raw", dir, "hda", FERRY_OVERLAY_KEEP_LEFTOVER, &error);
    g_assert_no_error(error);
    guint8 chk[100];
    g_assert_true(ferry_block_pread(ov, 0, chk, 100, NULL));
    g_assert_cmpmem(chk, 100, w, 100);
    /* A second user of the same overlay is refused, and cannot discard it. */
    g_assert_null(ferry_overlay_open(base, "raw", dir, "hda", FERRY_OVERLAY_KEEP_LEFTOVER, &error));
    g_assert_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_LOCKED);
    g_clear_error(&error);
    g_assert_null(ferry_overlay_open(base, "raw", dir, "hda", FERRY_OVERLAY_DISCARD_LEFTOVER, &error));
    g_assert_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_LOCKED);
    g_clear_error(&error);
    g_assert_false(ferry_overlay_discard_leftover(dir, "hda", &error));
    g_assert_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_LOCKED);
    g_clear_error(&error);
    g_assert_true(ferry_block_pread(ov, 0, chk, 100, NULL));
    g_assert_cmpmem(chk, 100, w, 100);
    ferry_block_close(ov);

    g_assert_true(ferry_overlay_commit_leftover(dir, "hda", &error));
    g_assert_no_error(error);
    memcpy(ref, w, 100);
    b = ferry_block_open(base, "raw", FERRY_BLOCK_READ_ONLY, NULL);
    assert_reads(b, ref, size);
    ferry_block_close(b);
    g_autoptr(GPtrArray) none = ferry_overlay_list_leftovers(dir, &error);
    g_assert_cmpuint(none->len, ==, 0);

    /* Discarding a leftover leaves the base alone. */
    ov = ferry_overlay_open(base, "raw", dir, "hdb", FERRY_OVERLAY_REFUSE_LEFTOVER, &error);
    g_assert_true(ferry_block_pwrite(ov, 0, orig, 4096, NULL));
    ferry_block_close(ov);
    g_autofree char *sum2 = file_checksum(base);
    g_assert_true(ferry_overlay_discard_leftover(dir, "hdb", &error));
    g_autofree char *sum3 = file_checksum(base);
    g_assert_cmpstr(sum2, ==, sum3);
    g_autoptr(GPtrArray) none2 = ferry_overlay_list_leftovers(dir, &error);
    g_assert_cmpuint(none2->len, ==, 0);

    g_assert_null(ferry_overlay_open(base, "raw", dir, "../x", FERRY_OVERLAY_KEEP_LEFTOVER, &error));
    g_assert_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_INVALID);
}

static void
test_overlay_base_locked(void)
{
    guint64 size = 1 << 20;
    g_autofree char *base = tmp_path("ovl-base.raw");
    g_autofree char *dir = tmp_path("vm-lock");
    g_autofree guint8 *ref = NULL;
    fill_base(base, size, &ref);
    FerryBlock *ov = ferry_overlay_open(base, "raw", dir, "hda", FERRY_OVERLAY_REFUSE_LEFTOVER, NULL);
    g_assert_nonnull(ov);
    g_autoptr(GError) error = NULL;
    /* The base is held read-only: no writer, readers welcome. */
    g_assert_null(ferry_block_open(base, "raw", 0, &error));
    g_assert_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_LOCKED);
    g_clear_error(&error);
    FerryBlock *reader = ferry_block_open(base, "raw", FERRY_BLOCK_READ_ONLY, NULL);
    g_assert_nonnull(reader);
    /* A commit needs the base to itself: refused, the overlay keeps its data. */
    guint8 w[512];
    memset(w, 9, sizeof(w));
    g_assert_true(ferry_block_pwrite(ov, 0, w, sizeof(w), NULL));
    g_assert_false(ferry_overlay_commit(ov, &error));
    g_assert_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_LOCKED);
    g_clear_error(&error);
    g_assert_cmpuint(ferry_overlay_pending_bytes(ov), >, 0);
    ferry_block_close(reader);
    /* Our read-only lock came back after the failed commit. */
    g_assert_null(ferry_block_open(base, "raw", 0, &error));
    g_clear_error(&error);
    g_assert_true(ferry_overlay_commit(ov, &error));
    g_assert_no_error(error);
    g_assert_null(ferry_block_open(base, "raw", 0, &error));    /* reader's lock again */
    ferry_block_close(ov);
}

/* A commit that died after writing part of the base: the marker makes the
 * next open finish it from the overlay. */
static void
test_overlay_replay(void)
{
    guint64 size = 2 << 20;
    g_autofree char *base = tmp_path("ovr-base.raw");
    g_autofree char *dir = tmp_path("vm-replay");
    g_autofree guint8 *ref = NULL;
    fill_base(base, size, &ref);
    FerryBlock *ov = ferry_overlay_open(base, "raw", dir, "hdc", FERRY_OVERLAY_REFUSE_LEFTOVER, NULL);
    guint8 w[200000];
    for (guint i = 0; i < sizeof(w); i++)
        w[i] = (guint8) (i * 13);
    g_assert_true(ferry_block_pwrite(ov, 300000, w, sizeof(w), NULL));
    memcpy(ref + 300000, w, sizeof(w));
    g_assert_true(ferry_block_flush(ov, NULL));
    ferry_block_close(ov);

    /* What the commit would have done first: the marker, then half the data. */
    g_autofree char *marker = g_build_filename(dir, "hdc-overlay.commit", NULL);
    g_autofree char *overlay = g_build_filename(dir, "hdc-overlay.qcow2", NULL);
    g_autofree char *text = g_strdup_printf("[commit]\noverlay=%s\nbase=%s\nbase-format=raw\n",
                                            overlay, base);
    g_assert_true(g_file_set_contents(marker, text, -1, NULL));
    poke(base, 300000, w, sizeof(w) / 2);

    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) left = ferry_overlay_list_leftovers(dir, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(left->len, ==, 1);
    FerryOverlayLeftoverInfo *l = left->pdata[0];
    g_assert_true(l->commit_was_interrupted);
    g_assert_cmpuint(l->pending_bytes, ==, 0);
    g_assert_false(g_file_test(marker, G_FILE_TEST_EXISTS));
    FerryBlock *b = ferry_block_open(base, "raw", FERRY_BLOCK_READ_ONLY, NULL);
    assert_reads(b, ref, size);
    ferry_block_close(b);
}

/* ---- write-behind ------------------------------------------------------------------------
 * ferry_block_write_behind() takes a may_cache write at once and writes a
 * copy later. These tests make "later" deterministic: gates hold every I/O
 * thread of the image (a request whose completion blocks until the gates
 * open), so a write taken meanwhile is still pending when the next request
 * arrives, as on a host whose disk is busy. */

typedef struct {
    FerryBlockReq req;
    gint *pending;
    int result;
} WbReq;

/* A write of buf the way virtio-blk sends one for a guest that flushes;
 * TRUE when write-behind took it (and the caller may reuse buf at once). */
static gboolean
write_behind(FerryBlock *bs, guint64 offset, guint8 *buf, gsize len)
{
    struct iovec v = { buf, len };
    FerryBlockReq req = { .op = FERRY_BLOCK_OP_WRITE, .offset = offset, .iov = &v, .niov = 1,
                          .may_cache = TRUE };
    return ferry_block_write_behind(bs, &req);
}

static void
fill(guint8 *buf, gsize len, guint seed)
{
    for (gsize i = 0; i < len; i++)
        buf[i] = (guint8) (seed * 29 + i * 7 + (i >> 12) + 1);
}

static void
file_read(const char *path, guint64 offset, guint8 *buf, gsize len)
{
    int fd = open(path, O_RDONLY);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pread(fd, buf, len, offset), ==, (gssize) len);
    close(fd);
}

/* What a guest counts on: a request that comes after a write completed
 * sees it, even while the write still waits for an I/O thread. Each case
 * runs the later request in this thread while the gates hold the write
 * back; another thread opens them 50 ms later. */
typedef enum { LATER_READ, LATER_FLUSH, LATER_WRITE, LATER_ZEROES, LATER_CLOSE } Later;

static void
write_then(gconstpointer data)
{
    enum { LEN = 256 << 10, OFF = 1 << 20 };
    Later later = GPOINTER_TO_INT(data);
    g_autofree char *path = tmp_path("wb-order.raw");
    FerryBlock *bs = create_open("wb-order.raw", "raw", 4 << 20, 0, 0, NULL);
    g_autofree guint8 *data_buf = g_malloc(LEN), *want = g_malloc(LEN), *got = g_malloc(LEN);
    guint8 other[8192];

    FerryBlockReq *gates = gates_close(bs);
    fill(data_buf, LEN, 1);
    memcpy(want, data_buf, LEN);
    g_assert_true(write_behind(bs, OFF, data_buf, LEN));
    memset(data_buf, 0, LEN);                       /* the guest reuses its buffer */
    GThread *opener = g_thread_new("open-gates", open_later, NULL);
    switch (later) {
    case LATER_READ:
        /* The write's last 4 KiB and 4 KiB past it. */
        g_assert_true(ferry_block_pread(bs, OFF + LEN - 4096, got, 8192, NULL));
        g_assert_cmpmem(got, 4096, want + LEN - 4096, 4096);
        break;
    case LATER_FLUSH:
        g_assert_true(ferry_block_flush(bs, NULL));
        file_read(path, OFF, got, LEN);
        g_assert_cmpmem(got, LEN, want, LEN);
        break;
    case LATER_WRITE:
        fill(other, sizeof(other), 2);
        memcpy(want + LEN - 4096, other, 4096);
        g_assert_true(ferry_block_pwrite(bs, OFF + LEN - 4096, other, sizeof(other), NULL));
        break;
    case LATER_ZEROES:
        memset(want + 4096, 0, 8192);
        g_assert_true(ferry_block_write_zeroes(bs, OFF + 4096, 8192, NULL));
        break;
    case LATER_CLOSE:
        break;
    }
    g_thread_join(opener);
    ferry_block_close(bs);
    g_free(gates);
    file_read(path, OFF, got, LEN);
    g_assert_cmpmem(got, LEN, want, LEN);
    unlink(path);
}

static void
wbreq_done(FerryBlockReq *req, int result)
{
    WbReq *w = (WbReq *) req;
    w->result = result;
    g_atomic_int_dec_and_test(w->pending);
}

/* Requests submitted before a write (reads of the same bytes, flushes) are
 * not ordered after it: however many there are, none may wait for it, or
 * they hold every I/O thread and the write never gets one (the disk hangs). */
static void
test_write_behind_earlier_requests(void)
{
    enum { N = 2 * FERRY_BLOCK_WORKERS };
    FerryBlock *bs = create_open("wb-earlier.raw", "raw", 1 << 20, 0, 0, NULL);
    guint8 bufs[N][4096], data[4096];
    struct iovec iov[N];
    WbReq reqs[N];
    gint pending = N;

    FerryBlockReq *gates = gates_close(bs);
    for (guint i = 0; i < N; i++) {
        iov[i] = (struct iovec) { bufs[i], sizeof(bufs[i]) };
        reqs[i] = (WbReq) { .pending = &pending };
        reqs[i].req = (FerryBlockReq) { .op = i % 3 == 2 ? FERRY_BLOCK_OP_FLUSH : FERRY_BLOCK_OP_READ,
                                        .iov = &iov[i], .niov = 1, .done = wbreq_done };
        ferry_block_submit_async(bs, &reqs[i].req);
    }
    fill(data, sizeof(data), 5);
    g_assert_true(write_behind(bs, 0, data, sizeof(data)));
    gates_open();
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (g_atomic_int_get(&pending) > 0) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(1000);
    }
    for (guint i = 0; i < N; i++)
        g_assert_cmpint(reqs[i].result, ==, 0);
    guint8 got[4096];
    g_assert_true(ferry_block_pread(bs, 0, got, sizeof(got), NULL));
    g_assert_cmpmem(got, sizeof(got), data, sizeof(data));
    ferry_block_close(bs);
    g_free(gates);
}

/* A commit folds every write the guest saw complete into the base, also one
 * still pending; a discard drops it with the rest. */
static void
test_overlay_write_behind(void)
{
    enum { LEN = 128 << 10 };
    guint64 size = 2 << 20;
    g_autofree char *base = tmp_path("ovwb-base.raw");
    g_autofree char *dir = tmp_path("vm-wb");
    g_autofree guint8 *ref = NULL;
    fill_base(base, size, &ref);
    g_autoptr(GError) error = NULL;
    guint8 data[LEN], got[LEN];

    FerryBlock *ov = ferry_overlay_open(base, "raw", dir, "hda", FERRY_OVERLAY_REFUSE_LEFTOVER, &error);
    g_assert_no_error(error);
    FerryBlockReq *gates = gates_close(ov);
    fill(data, LEN, 6);
    g_assert_true(write_behind(ov, 65536, data, LEN));
    GThread *opener = g_thread_new("open-gates", open_later, NULL);
    /* `info block pending=` and "committed N MiB" count it: the answer waits
     * for the write to land. */
    g_assert_cmpuint(ferry_overlay_pending_bytes(ov), >=, LEN);
    g_assert_true(ferry_overlay_commit(ov, &error));
    g_assert_no_error(error);
    g_thread_join(opener);
    ferry_block_drain(ov);
    g_free(gates);
    g_assert_cmpuint(ferry_overlay_pending_bytes(ov), ==, 0);
    file_read(base, 65536, got, LEN);
    g_assert_cmpmem(got, LEN, data, LEN);
    memcpy(ref + 65536, data, LEN);
    memset(ref + size - 512, 0, 512);               /* the gates' zeroes, committed too */

    gates = gates_close(ov);
    fill(data, LEN, 7);
    g_assert_true(write_behind(ov, 65536, data, LEN));
    opener = g_thread_new("open-gates", open_later, NULL);
    g_assert_true(ferry_overlay_discard(ov, &error));
    g_assert_no_error(error);
    g_thread_join(opener);
    ferry_block_drain(ov);
    g_free(gates);
    g_assert_cmpuint(ferry_overlay_pending_bytes(ov), ==, 0);
    assert_reads(ov, ref, size);
    ferry_block_close(ov);
    FerryBlock *b = ferry_block_open(base, "raw", FERRY_BLOCK_READ_ONLY, NULL);
    assert_reads(b, ref, size);
    ferry_block_close(b);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    tmpdir = g_dir_make_tmp("ferry-test-qcow2-XXXXXX", NULL);

    g_test_add_func("/block/qcow2/unallocated-reads-zero", test_unallocated_reads_zero);
    g_test_add_func("/block/qcow2/out-of-range", test_out_of_range);
    g_test_add_func("/block/qcow2/write-read-back", test_write_read_back);
    g_test_add_func("/block/qcow2/random-io", test_random_io_64k);
    g_test_add_func("/block/qcow2/refcount-growth", test_refcount_growth);
    g_test_add_func("/block/qcow2/narrow-refcounts", test_narrow_refcounts);
    g_test_add_func("/block/raw/basic", test_raw);
    g_test_add_func("/block/qcow2/backing-chain", test_backing_chain);
    g_test_add_func("/block/qcow2/backing-loop", test_backing_loop);
    g_test_add_func("/block/qcow2/chain-depth-limit", test_chain_depth_limit);
    g_test_add_func("/block/qcow2/missing-backing", test_missing_backing);
    g_test_add_func("/block/qcow2/corrupt-header", test_corrupt_header);
    g_test_add_func("/block/qcow2/truncated", test_truncated);
    g_test_add_func("/block/qcow2/l1-l2-outside", test_l1_l2_outside);
    g_test_add_func("/block/qcow2/refcount-overflow", test_refcount_overflow);
    g_test_add_func("/block/qcow2/garbage", test_garbage_files);
    g_test_add_func("/block/unreadable", test_unreadable);
    g_test_add_func("/block/locks", test_locks);
    g_test_add_func("/block/async", test_async);
    g_test_add_func("/block/help", test_help);
    g_test_add_func("/block/overlay/commit-discard-leftovers", test_overlay);
    g_test_add_func("/block/overlay/base-locked", test_overlay_base_locked);
    g_test_add_func("/block/overlay/replay-interrupted-commit", test_overlay_replay);
    g_test_add_data_func("/block/write-behind/read-waits", GINT_TO_POINTER(LATER_READ), write_then);
    g_test_add_data_func("/block/write-behind/flush-waits", GINT_TO_POINTER(LATER_FLUSH), write_then);
    g_test_add_data_func("/block/write-behind/write-waits", GINT_TO_POINTER(LATER_WRITE), write_then);
    g_test_add_data_func("/block/write-behind/zeroes-wait", GINT_TO_POINTER(LATER_ZEROES), write_then);
    g_test_add_data_func("/block/write-behind/close-writes", GINT_TO_POINTER(LATER_CLOSE), write_then);
    g_test_add_func("/block/write-behind/earlier-requests", test_write_behind_earlier_requests);
    g_test_add_func("/block/overlay/write-behind", test_overlay_write_behind);

    int rc = g_test_run();
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        g_printerr("could not remove %s\n", tmpdir);
    return rc;
}

/* test-img.c: the block layer and `ferryctl img` against Debian's qemu-utils
 * (issue 5, "Tests"): images qemu-img and qemu-io made read back byte for
 * byte; images Ferry wrote pass `qemu-img check` and `qemu-img compare`;
 * `ferryctl img` matches qemu-img; locks keep out a second writer, QEMU's
 * included; corrupt images give an error and no crash; kill -9 during
 * writes and during an overlay commit loses nothing that was flushed; a
 * full disk is an error, not a damaged image. Without qemu-img the tests
 * skip. This program re-runs itself as the child for the kill -9, lock and
 * full-disk cases (see main). */
#include "../lib/ferry-test-proc.h"
#include "block/block.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static char *tmpdir;
static char *self_exe;

static char *
tmp_path(const char *name)
{
    return g_build_filename(tmpdir, name, NULL);
}

static gboolean
need_qemu(void)
{
    static int have = -1;
    if (have < 0) {
        g_autofree char *img = g_find_program_in_path("qemu-img");
        g_autofree char *io = g_find_program_in_path("qemu-io");
        have = img && io;
    }
    if (!have)
        g_test_skip("qemu-img or qemu-io not found (Debian package qemu-utils): interop test skipped");
    return have;
}

/* Runs a command (NULL-terminated arguments); its exit status, and its
 * output in *out / *err when not NULL. */
static int G_GNUC_NULL_TERMINATED
run(char **out, char **err, const char *prog, ...)
{
    va_list ap;
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_ptr_array_add(argv, (char *) prog);
    va_start(ap, prog);
    for (const char *a; (a = va_arg(ap, const char *));)
        g_ptr_array_add(argv, (char *) a);
    va_end(ap);
    g_ptr_array_add(argv, NULL);
    g_autofree char *o = NULL, *e = NULL;
    int rc = ferry_test_run((const char *const *) argv->pdata, NULL, 120000, &o, &e);
    if (rc != 0)
        g_test_message("%s %s -> %d\n%s%s", prog, argv->len > 2 ? (char *) argv->pdata[1] : "",
                       rc, o, e);
    if (out)
        *out = g_steal_pointer(&o);
    if (err)
        *err = g_steal_pointer(&e);
    return rc;
}

#define QEMU_IMG(...) run(NULL, NULL, "qemu-img", __VA_ARGS__, NULL)
#define QEMU_IO(...) run(NULL, NULL, "qemu-io", __VA_ARGS__, NULL)
#define FERRYCTL(out, err, ...) run(out, err, ferry_test_ferryctl(), "img", __VA_ARGS__, NULL)

static GBytes *
read_file(const char *path)
{
    g_autofree char *data = NULL;
    gsize len;
    g_assert_true(g_file_get_contents(path, &data, &len, NULL));
    return g_bytes_new_take(g_steal_pointer(&data), len);
}

/* What qemu-img says the image holds. */
static GBytes *
qemu_raw(const char *image)
{
    g_autofree char *out = g_strdup_printf("%s.qemu-raw", image);
    g_assert_cmpint(QEMU_IMG("convert", "-U", "-O", "raw", image, out), ==, 0);
    GBytes *b = read_file(out);
    unlink(out);
    return b;
}

/* What Ferry says the image holds. */
static GBytes *
ferry_raw(const char *image)
{
    g_autoptr(GError) error = NULL;
    FerryBlock *bs = ferry_block_open(image, NULL, FERRY_BLOCK_READ_ONLY | FERRY_BLOCK_NO_LOCK, &error);
    g_assert_no_error(error);
    gsize size = ferry_block_get_size(bs);
    guint8 *buf = g_malloc(size);
    g_assert_true(ferry_block_pread(bs, 0, buf, size, &error));
    g_assert_no_error(error);
    ferry_block_close(bs);
    return g_bytes_new_take(buf, size);
}

static void
assert_same_bytes(GBytes *a, GBytes *b, const char *what)
{
    gsize la, lb;
    const guint8 *pa = g_bytes_get_data(a, &la), *pb = g_bytes_get_data(b, &lb);
    g_assert_cmpuint(la, ==, lb);
    for (gsize i = 0; i < la; i++)
        if (pa[i] != pb[i])
            g_error("%s: byte %" G_GSIZE_FORMAT " differs (0x%02x vs 0x%02x)", what, i, pa[i], pb[i]);
}

static void
assert_ferry_reads_like_qemu(const char *image)
{
    g_autoptr(GBytes) q = qemu_raw(image);
    g_autoptr(GBytes) f = ferry_raw(image);
    assert_same_bytes(f, q, image);
}

static void
assert_qemu_check_clean(const char *image)
{
    g_autofree char *out = NULL, *err = NULL;
    int rc = run(&out, &err, "qemu-img", "check", "-U", image, NULL);
    if (rc != 0)
        g_error("qemu-img check %s exited %d:\n%s%s", image, rc, out, err);
}

/* ---- images qemu made, read by Ferry ------------------------------------------------------ */

static void
test_read_qemu_images(void)
{
    if (!need_qemu())
        return;
    g_autofree char *empty = tmp_path("q-empty.qcow2");
    g_assert_cmpint(QEMU_IMG("create", "-q", "-f", "qcow2", empty, "64M"), ==, 0);
    assert_ferry_reads_like_qemu(empty);

    /* Data at odd places, an overwrite, zero clusters with and without unmap. */
    g_autofree char *data = tmp_path("q-data.qcow2");
    g_assert_cmpint(QEMU_IMG("create", "-q", "-f", "qcow2", data, "64M"), ==, 0);
    g_assert_cmpint(QEMU_IO("-c", "write -P 0x11 0 1M", "-c", "write -P 0x22 100k 7k",
                            "-c", "write -P 0x33 5000001 300003", "-c", "write -P 0x44 63M 1M",
                            "-c", "write -z 512k 128k", "-c", "write -z -u 2M 256k",
                            "-f", "qcow2", data), ==, 0);
    assert_ferry_reads_like_qemu(data);

    /* Every shape of metadata: tiny and huge clusters, narrow and wide
     * refcounts, version 2, zstd. */
    static const char *const opts[] = {
        "cluster_size=512", "cluster_size=2M", "refcount_bits=1", "refcount_bits=64",
        "compat=0.10", "compression_type=zstd,cluster_size=4096",
    };
    for (guint i = 0; i < G_N_ELEMENTS(opts); i++) {
        g_autofree char *name = g_strdup_printf("q-opt%u.qcow2", i);
        g_autofree char *p = tmp_path(name);
        g_assert_cmpint(QEMU_IMG("create", "-q", "-f", "qcow2", "-o", opts[i], p, "16M"), ==, 0);
        g_assert_cmpint(QEMU_IO("-c", "write -P 0x5a 4095 70000", "-c", "write -P 0xa5 9M 3M",
                                "-f", "qcow2", p), ==, 0);
        assert_ferry_reads_like_qemu(p);
    }

    /* Compressed clusters, zlib and zstd. */
    g_autofree char *src = tmp_path("q-src.raw");
    g_assert_cmpint(QEMU_IMG("create", "-q", "-f", "raw", src, "8M"), ==, 0);
    g_assert_cmpint(QEMU_IO("-c", "write -P 0x61 0 3M", "-c", "write -P 0x62 5M 1500k",
                            "-f", "raw", src), ==, 0);
    /* Some incompressible data too. */
    g_autofree guint8 *noise = g_malloc(200000);
    for (guint i = 0; i < 200000; i++)
        noise[i] = (guint8) g_test_rand_int();
    int fd = open(src, O_WRONLY);
    g_assert_cmpint(pwrite(fd, noise, 200000, 7 << 20), ==, 200000);
    close(fd);
    g_autofree char *zlib = tmp_path("q-zlib.qcow2");
    g_autofree char *zstd = tmp_path("q-zstd.qcow2");
    g_assert_cmpint(QEMU_IMG("convert", "-c", "-O", "qcow2", src, zlib), ==, 0);
    g_assert_cmpint(QEMU_IMG("convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd", src, zstd), ==, 0);
    assert_ferry_reads_like_qemu(zlib);
    assert_ferry_reads_like_qemu(zstd);
    FerryBlock *bs = ferry_block_open(zstd, NULL, FERRY_BLOCK_READ_ONLY, NULL);
    FerryBlockInfo info;
    ferry_block_get_info(bs, &info);
    g_assert_cmpstr(info.compression_type, ==, "zstd");
    ferry_block_info_clear(&info);
    ferry_block_close(bs);

    /* A chain with relative names: raw base, two qcow2 layers, zeroes over
     * backing data. */
    g_autofree char *base = tmp_path("q-base.raw");
    g_autofree char *mid = tmp_path("q-mid.qcow2");
    g_autofree char *top = tmp_path("q-top.qcow2");
    g_assert_cmpint(QEMU_IMG("create", "-q", "-f", "raw", base, "32M"), ==, 0);
    g_assert_cmpint(QEMU_IO("-c", "write -P 0x01 0 32M", "-f", "raw", base), ==, 0);
    g_assert_cmpint(QEMU_IMG("create", "-q", "-f", "qcow2", "-b", "q-base.raw", "-F", "raw", mid), ==, 0);
    g_assert_cmpint(QEMU_IO("-c", "write -P 0x02 1M 1M", "-c", "write -z 4M 64k", "-f", "qcow2", mid), ==, 0);
    g_assert_cmpint(QEMU_IMG("create", "-q", "-f", "qcow2", "-o", "cluster_size=4096",
                             "-b", "q-mid.qcow2", "-F", "qcow2", top), ==, 0);
    g_assert_cmpint(QEMU_IO("-c", "write -P 0x03 1500k 100k", "-c", "write -z 8M 8k",
                            "-c", "discard 12M 64k", "-f", "qcow2", top), ==, 0);
    assert_ferry_reads_like_qemu(top);

    /* Internal snapshots: listed, and the active state reads right after
     * writes that copied shared clusters. */
    g_autofree char *snap = tmp_path("q-snap.qcow2");
    g_assert_cmpint(QEMU_IMG("create", "-q", "-f", "qcow2", snap, "16M"), ==, 0);
    g_assert_cmpint(QEMU_IO("-c", "write -P 0x71 0 2M", "-f", "qcow2", snap), ==, 0);
    g_assert_cmpint(QEMU_IMG("snapshot", "-c", "before", snap), ==, 0);
    g_assert_cmpint(QEMU_IO("-c", "write -P 0x72 1M 64k", "-f", "qcow2", snap), ==, 0);
    g_assert_cmpint(QEMU_IMG("snapshot", "-c", "after", snap), ==, 0);
    assert_ferry_reads_like_qemu(snap);
    bs = ferry_block_open(snap, NULL, FERRY_BLOCK_READ_ONLY, NULL);
    ferry_block_get_info(bs, &info);
    g_assert_cmpuint(info.snapshots->len, ==, 2);
    g_assert_cmpstr(((FerryBlockSnapshot *) info.snapshots->pdata[0])->name, ==, "before");
    g_assert_cmpstr(((FerryBlockSnapshot *) info.snapshots->pdata[1])->name, ==, "after");
    ferry_block_info_clear(&info);
    FerryBlockCheck r;
    g_assert_true(ferry_block_check(bs, &r, FALSE, NULL));
    g_assert_cmpuint(r.corruptions + r.leaks, ==, 0);
    ferry_block_check_clear(&r);
    ferry_block_close(bs);

    /* Ferry's own check agrees with qemu-img on all of them. */
    const char *all[] = { empty, data, zlib, zstd, mid, top, snap };
    for (guint i = 0; i < G_N_ELEMENTS(all); i++) {
        g_autofree char *out = NULL;
        g_assert_cmpint(FERRYCTL(&out, NULL, "check", all[i]), ==, 0);
        g_assert_nonnull(strstr(out, "No errors were found on the image."));
    }
}

/* ---- images Ferry wrote, checked by qemu ---------------------------------------------------- */

static void
random_writes(FerryBlock *bs, FerryBlock *ref, guint64 size, guint32 cluster, guint ops, guint seed)
{
    GRand *rand = g_rand_new_with_seed(seed);
    g_autofree guint8 *data = g_malloc(512 * 1024);
    for (guint i = 0; i < ops; i++) {
        guint kind = g_rand_int_range(rand, 0, 12);
        guint64 len = g_rand_int_range(rand, 1, kind < 8 ? 128 * 1024 : 512 * 1024);
        guint64 off = g_rand_int_range(rand, 0, (gint32) (size - len));
        if (g_rand_boolean(rand))
            off &= ~(guint64) (cluster - 1);
        if (kind < 8) {
            for (guint64 j = 0; j < len; j++)
                data[j] = (guint8) (i + j * 3);
            g_assert_true(ferry_block_pwrite(bs, off, data, len, NULL));
            g_assert_true(ferry_block_pwrite(ref, off, data, len, NULL));
        } else if (kind < 10) {
            g_assert_true(ferry_block_write_zeroes(bs, off, len, NULL));
            g_assert_true(ferry_block_write_zeroes(ref, off, len, NULL));
        } else {
            /* Whole clusters only, so the reference knows what reads zero. */
            guint64 a = (off + cluster - 1) & ~(guint64) (cluster - 1);
            guint64 b = (off + len) & ~(guint64) (cluster - 1);
            if (b > a) {
                g_assert_true(ferry_block_discard(bs, a, b - a, NULL));
                g_assert_true(ferry_block_write_zeroes(ref, a, b - a, NULL));
            }
        }
        if (g_rand_int_range(rand, 0, 40) == 0)
            g_assert_true(ferry_block_flush(bs, NULL));
    }
    g_rand_free(rand);
}

static void
test_ferry_images_pass_qemu(void)
{
    if (!need_qemu())
        return;
    static const struct { guint32 cluster; guint rbits; guint64 size; guint ops; } cases[] = {
        { 65536, 16, 256 << 20, 400 },
        { 4096, 16, 64 << 20, 600 },
        { 512, 64, 16 << 20, 800 },      /* grows past many refcount blocks and tables */
        { 2 << 20, 1, 256 << 20, 100 },
    };
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *name = g_strdup_printf("f-rand%u.qcow2", i);
        g_autofree char *rname = g_strdup_printf("f-rand%u.raw", i);
        g_autofree char *img = tmp_path(name), *refp = tmp_path(rname);
        FerryBlockCreateOptions o = { .format = "qcow2", .size = cases[i].size,
                                      .cluster_size = cases[i].cluster, .refcount_bits = cases[i].rbits };
        FerryBlockCreateOptions r = { .format = "raw", .size = cases[i].size };
        g_assert_true(ferry_block_create(img, &o, NULL));
        g_assert_true(ferry_block_create(refp, &r, NULL));
        FerryBlock *bs = ferry_block_open(img, "qcow2", 0, NULL);
        FerryBlock *ref = ferry_block_open(refp, "raw", 0, NULL);
        random_writes(bs, ref, cases[i].size, cases[i].cluster, cases[i].ops, i + 1);
        ferry_block_close(bs);
        ferry_block_close(ref);
        g_test_message("case %u: %u-byte clusters, %u-bit refcounts", i, cases[i].cluster, cases[i].rbits);
        g_autoptr(GBytes) mine = ferry_raw(img), want = read_file(refp);
        assert_same_bytes(mine, want, "Ferry's reads of its own image");
        assert_qemu_check_clean(img);
        g_assert_cmpint(QEMU_IMG("compare", "-f", "qcow2", "-F", "raw", img, refp), ==, 0);
    }

    /* Writing to qemu's images: over internal snapshots (shared clusters
     * copied first) and over compressed clusters. */
    g_autofree char *snap = tmp_path("f-snap.qcow2");
    g_autofree char *snap_ref = tmp_path("f-snap.raw");
    g_assert_cmpint(QEMU_IMG("create", "-q", "-f", "qcow2", snap, "16M"), ==, 0);
    g_assert_cmpint(QEMU_IO("-c", "write -P 0x71 0 4M", "-f", "qcow2", snap), ==, 0);
    g_assert_cmpint(QEMU_IMG("snapshot", "-c", "s1", snap), ==, 0);
    g_autoptr(GBytes) before = qemu_raw(snap);
    FerryBlock *bs = ferry_block_open(snap, "qcow2", 0, NULL);
    g_assert_nonnull(bs);
    guint8 w[100000];
    memset(w, 0x99, sizeof(w));
    g_assert_true(ferry_block_pwrite(bs, 30000, w, sizeof(w), NULL));
    g_assert_true(ferry_block_write_zeroes(bs, 1 << 20, 1 << 20, NULL));
    g_assert_true(ferry_block_discard(bs, 3 << 20, 65536, NULL));
    ferry_block_close(bs);
    assert_qemu_check_clean(snap);
    g_assert_cmpint(QEMU_IMG("convert", "-U", "-l", "snapshot.name=s1", "-O", "raw", snap, snap_ref), ==, 0);
    g_autoptr(GBytes) s1 = read_file(snap_ref);
    assert_same_bytes(s1, before, "snapshot s1 after Ferry's writes");
    assert_ferry_reads_like_qemu(snap);

    g_autofree char *src = tmp_path("f-csrc.raw");
    g_autofree char *comp = tmp_path("f-comp.qcow2");
    g_assert_cmpint(QEMU_IMG("create", "-q", "-f", "raw", src, "4M"), ==, 0);
    g_assert_cmpint(QEMU_IO("-c", "write -P 0x61 0 4M", "-f", "raw", src), ==, 0);
    g_assert_cmpint(QEMU_IMG("convert", "-c", "-O", "qcow2", src, comp), ==, 0);
    bs = ferry_block_open(comp, "qcow2", 0, NULL);
    g_assert_true(ferry_block_pwrite(bs, 70000, w, 1000, NULL));
    g_assert_true(ferry_block_write_zeroes(bs, 2 << 20, 65536, NULL));
    ferry_block_close(bs);
    FerryBlock *ref = ferry_block_open(src, "raw", 0, NULL);
    g_assert_true(ferry_block_pwrite(ref, 70000, w, 1000, NULL));
    g_assert_true(ferry_block_write_zeroes(ref, 2 << 20, 65536, NULL));
    ferry_block_close(ref);
    assert_qemu_check_clean(comp);
    g_assert_cmpint(QEMU_IMG("compare", comp, src), ==, 0);
}

/* ---- ferryctl img vs qemu-img ------------------------------------------------------------------ */

/* The "key": value lines of an info --output=json, without actual-size
 * (it depends on the file system) and filename. */
static gint
cmp_str(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

static char *
json_lines(const char *json)
{
    g_auto(GStrv) lines = g_strsplit(json, "\n", -1);
    g_autoptr(GPtrArray) keep = g_ptr_array_new();
    for (guint i = 0; lines[i]; i++) {
        char *l = g_strstrip(lines[i]);
        if (*l != '"' || strstr(l, "actual-size") || strstr(l, "\"filename\""))
            continue;
        if (g_str_has_suffix(l, ","))
            l[strlen(l) - 1] = 0;
        g_ptr_array_add(keep, l);
    }
    g_ptr_array_sort(keep, cmp_str);
    g_ptr_array_add(keep, NULL);
    return g_strjoinv("\n", (char **) keep->pdata);
}

static void
assert_info_matches(const char *image)
{
    g_autofree char *fo = NULL, *qo = NULL;
    g_assert_cmpint(FERRYCTL(&fo, NULL, "info", "--output=json", image), ==, 0);
    g_assert_cmpint(run(&qo, NULL, "qemu-img", "info", "--output=json", image, NULL), ==, 0);
    g_autofree char *f = json_lines(fo), *q = json_lines(qo);
    g_assert_cmpstr(f, ==, q);
}

static void
test_ferryctl_create_info(void)
{
    if (!need_qemu())
        return;
    g_autofree char *a = tmp_path("c-ferry.qcow2"), *b = tmp_path("c-qemu.qcow2");
    g_autofree char *fo = NULL, *qo = NULL;
    g_assert_cmpint(FERRYCTL(&fo, NULL, "create", "-f", "qcow2", a, "1.5G"), ==, 0);
    g_assert_cmpint(run(&qo, NULL, "qemu-img", "create", "-f", "qcow2", b, "1.5G", NULL), ==, 0);
    g_autofree char *fo2 = g_strdup(strchr(fo, ','));
    g_autofree char *qo2 = g_strdup(strchr(qo, ','));
    g_assert_cmpstr(fo2, ==, qo2);      /* the "Formatting" line past the name */
    assert_qemu_check_clean(a);
    assert_info_matches(a);
    assert_info_matches(b);

    /* Human output: the same first lines. */
    g_autofree char *fh = NULL, *qh = NULL;
    g_assert_cmpint(FERRYCTL(&fh, NULL, "info", b), ==, 0);
    g_assert_cmpint(run(&qh, NULL, "qemu-img", "info", b, NULL), ==, 0);
    g_assert_true(g_str_has_prefix(fh, "image: "));
    g_assert_nonnull(strstr(fh, "virtual size: 1.5 GiB (1610612736 bytes)"));
    g_assert_nonnull(strstr(qh, "virtual size: 1.5 GiB (1610612736 bytes)"));
    g_assert_nonnull(strstr(fh, "Format specific information:\n    compat: 1.1\n"));

    /* Backing files, options, raw. */
    g_autofree char *top = tmp_path("c-top.qcow2");
    g_assert_cmpint(FERRYCTL(NULL, NULL, "create", "-f", "qcow2", "-b", "c-qemu.qcow2", "-F", "qcow2",
                             "-o", "cluster_size=4096,refcount_bits=8", top), ==, 0);
    assert_qemu_check_clean(top);
    assert_info_matches(top);
    g_autofree char *raw = tmp_path("c.raw");
    g_assert_cmpint(FERRYCTL(NULL, NULL, "create", "-f", "raw", raw, "10M"), ==, 0);
    assert_info_matches(raw);
    g_autofree char *zs = tmp_path("c-zstd.qcow2");
    g_assert_cmpint(FERRYCTL(NULL, NULL, "create", "-f", "qcow2", "-o", "compression_type=zstd", zs, "1M"), ==, 0);
    assert_info_matches(zs);
    assert_qemu_check_clean(zs);

    /* Snapshots listed like qemu-img lists them. */
    g_assert_cmpint(QEMU_IMG("snapshot", "-c", "first", b), ==, 0);
    assert_info_matches(b);
    g_autofree char *fs = NULL, *qs = NULL;
    g_assert_cmpint(FERRYCTL(&fs, NULL, "info", b), ==, 0);
    g_assert_cmpint(run(&qs, NULL, "qemu-img", "info", b, NULL), ==, 0);
    g_assert_nonnull(strstr(fs, "Snapshot list:\nID        TAG               VM SIZE"));
    char *fl = strstr(fs, "\n1 "), *ql = strstr(qs, "\n1 ");
    g_assert_nonnull(fl);
    g_assert_nonnull(ql);
    g_assert_cmpint(strcspn(fl + 1, "\n"), ==, strcspn(ql + 1, "\n"));
    g_assert_cmpint(strncmp(fl, ql, strcspn(ql + 1, "\n")), ==, 0);

    /* Bad arguments. */
    g_autofree char *e1 = NULL, *e2 = NULL, *e3 = NULL;
    g_assert_cmpint(FERRYCTL(NULL, &e1, "create", "-f", "qcow2", a, "12x"), ==, 1);
    g_assert_nonnull(strstr(e1, "invalid image size '12x'"));
    g_assert_cmpint(FERRYCTL(NULL, &e2, "create", "-f", "qcow2", "-o", "cluster_size=1234", a, "1M"), ==, 1);
    g_assert_nonnull(strstr(e2, "cluster size 1234"));
    g_assert_cmpint(FERRYCTL(NULL, &e3, "create", "-f", "vmdk", a, "1M"), ==, 1);
    g_assert_nonnull(strstr(e3, "vmdk"));
}

static void
test_ferryctl_convert_commit(void)
{
    if (!need_qemu())
        return;
    g_autofree char *q = tmp_path("v-src.qcow2"), *base = tmp_path("v-base.qcow2");
    g_assert_cmpint(QEMU_IMG("create", "-q", "-f", "qcow2", base, "32M"), ==, 0);
    g_assert_cmpint(QEMU_IO("-c", "write -P 0x10 0 8M", "-f", "qcow2", base), ==, 0);
    g_assert_cmpint(QEMU_IMG("create", "-q", "-f", "qcow2", "-b", "v-base.qcow2", "-F", "qcow2", q), ==, 0);
    g_assert_cmpint(QEMU_IO("-c", "write -P 0x20 1M 3M", "-c", "write -z 5M 1M", "-c", "write -P 0x21 30M 5k",
                            "-f", "qcow2", q), ==, 0);

    /* qcow2 (with its chain) -> raw, raw -> qcow2, qcow2 -> qcow2. */
    g_autofree char *f_raw = tmp_path("v-f.raw"), *q_raw = tmp_path("v-q.raw");
    g_assert_cmpint(FERRYCTL(NULL, NULL, "convert", "-O", "raw", q, f_raw), ==, 0);
    g_assert_cmpint(QEMU_IMG("convert", "-O", "raw", q, q_raw), ==, 0);
    g_autoptr(GBytes) fb = read_file(f_raw), qb = read_file(q_raw);
    assert_same_bytes(fb, qb, "convert -O raw");
    g_autofree char *f_q = tmp_path("v-f.qcow2");
    g_assert_cmpint(FERRYCTL(NULL, NULL, "convert", "-f", "raw", "-O", "qcow2", f_raw, f_q), ==, 0);
    assert_qemu_check_clean(f_q);
    g_assert_cmpint(QEMU_IMG("compare", f_q, q), ==, 0);
    g_autofree char *f_q2 = tmp_path("v-f2.qcow2");
    g_assert_cmpint(FERRYCTL(NULL, NULL, "convert", "-O", "qcow2", "-o", "cluster_size=512", q, f_q2), ==, 0);
    assert_qemu_check_clean(f_q2);
    g_assert_cmpint(QEMU_IMG("compare", f_q2, q), ==, 0);

    /* commit: the same as qemu-img commit on a copy. */
    g_autofree char *base2 = tmp_path("v-base2.qcow2"), *q2 = tmp_path("v-src2.qcow2");
    g_assert_cmpint(run(NULL, NULL, "cp", base, base2, NULL), ==, 0);
    g_assert_cmpint(QEMU_IMG("create", "-q", "-f", "qcow2", "-b", "v-base2.qcow2", "-F", "qcow2", q2), ==, 0);
    g_assert_cmpint(QEMU_IO("-c", "write -P 0x20 1M 3M", "-c", "write -z 5M 1M", "-c", "write -P 0x21 30M 5k",
                            "-f", "qcow2", q2), ==, 0);
    g_autofree char *out = NULL;
    g_assert_cmpint(FERRYCTL(&out, NULL, "commit", q), ==, 0);
    g_assert_nonnull(strstr(out, "Image committed."));
    g_assert_cmpint(QEMU_IMG("commit", "-q", q2), ==, 0);
    assert_qemu_check_clean(base);
    assert_qemu_check_clean(q);
    g_assert_cmpint(QEMU_IMG("compare", base, base2), ==, 0);
    g_assert_cmpint(QEMU_IMG("compare", q, q2), ==, 0);
    /* The top is empty afterwards. */
    FerryBlock *bs = ferry_block_open(q, "qcow2", FERRY_BLOCK_READ_ONLY | FERRY_BLOCK_NO_BACKING, NULL);
    guint64 len = ferry_block_get_size(bs);
    g_assert_cmpint(ferry_block_status(bs, 0, &len) & FERRY_BLOCK_STATUS_ALLOCATED, ==, 0);
    g_assert_cmpuint(len, ==, ferry_block_get_size(bs));
    ferry_block_close(bs);

    g_autofree char *e = NULL;
    g_assert_cmpint(FERRYCTL(NULL, &e, "commit", base), ==, 1);
    g_assert_nonnull(strstr(e, "no backing file"));
}

/* ---- check: leaks and corruptions ---------------------------------------------------------------- */

static void
poke64(const char *path, guint64 off, guint64 v)
{
    guint64 be = GUINT64_TO_BE(v);
    int fd = open(path, O_WRONLY);
    g_assert_cmpint(pwrite(fd, &be, 8, off), ==, 8);
    close(fd);
}

static void
poke16(const char *path, guint64 off, guint16 v)
{
    guint16 be = GUINT16_TO_BE(v);
    int fd = open(path, O_WRONLY);
    g_assert_cmpint(pwrite(fd, &be, 2, off), ==, 2);
    close(fd);
}

static guint64
peek64(const char *path, guint64 off)
{
    guint64 be = 0;
    int fd = open(path, O_RDONLY);
    g_assert_cmpint(pread(fd, &be, 8, off), ==, 8);
    close(fd);
    return GUINT64_FROM_BE(be);
}

/* A 4 KiB-cluster image with two data clusters; returns the offset of its
 * first refcount block. */
static guint64
small_image(const char *path)
{
    g_assert_cmpint(QEMU_IMG("create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", path, "1M"), ==, 0);
    g_assert_cmpint(QEMU_IO("-c", "write -P 1 0 8k", "-f", "qcow2", path), ==, 0);
    return peek64(path, peek64(path, 48));
}

static void
test_ferryctl_check(void)
{
    if (!need_qemu())
        return;
    /* Leak: a cluster past the data with refcount 1 and no user. */
    g_autofree char *leak = tmp_path("k-leak.qcow2");
    guint64 rb = small_image(leak);
    poke16(leak, rb + 7 * 2, 1);
    int fd = open(leak, O_WRONLY);
    g_assert_cmpint(ftruncate(fd, 8 * 4096), ==, 0);
    close(fd);
    g_autofree char *fo = NULL, *fe = NULL, *qo = NULL;
    int frc = FERRYCTL(&fo, &fe, "check", leak);
    int qrc = run(&qo, NULL, "qemu-img", "check", leak, NULL);
    g_assert_cmpint(qrc, ==, 3);
    g_assert_cmpint(frc, ==, 3);
    g_assert_nonnull(strstr(fe, "Leaked cluster 7 refcount=1 reference=0"));
    g_assert_nonnull(strstr(fo, "1 leaked clusters were found on the image."));
    g_assert_cmpstr(strstr(fo, "2/256"), ==, strstr(qo, "2/256"));     /* same summary */
    g_autofree char *jo = NULL;
    g_assert_cmpint(FERRYCTL(&jo, NULL, "check", "--output=json", leak), ==, 3);
    g_assert_nonnull(strstr(jo, "\"leaks\": 1,"));
    g_autofree char *ro = NULL;
    g_assert_cmpint(FERRYCTL(&ro, NULL, "check", "-r", "leaks", leak), ==, 0);
    g_assert_nonnull(strstr(ro, "1 leaked clusters\n"));
    assert_qemu_check_clean(leak);

    /* Corruption: a data cluster whose refcount is 0. */
    g_autofree char *bad = tmp_path("k-bad.qcow2");
    rb = small_image(bad);
    poke16(bad, rb + 5 * 2, 0);
    g_autofree char *be = NULL, *bo = NULL;
    g_assert_cmpint(run(NULL, NULL, "qemu-img", "check", bad, NULL), ==, 2);
    g_assert_cmpint(FERRYCTL(&bo, &be, "check", bad), ==, 2);
    g_assert_nonnull(strstr(be, "ERROR cluster 5 refcount=0 reference=1"));
    g_assert_nonnull(strstr(bo, "errors were found on the image."));

    /* raw: nothing to check, like qemu-img. */
    g_autofree char *raw = tmp_path("k.raw");
    g_assert_cmpint(QEMU_IMG("create", "-q", "-f", "raw", raw, "1M"), ==, 0);
    g_assert_cmpint(run(NULL, NULL, "qemu-img", "check", raw, NULL), ==, 63);
    g_assert_cmpint(FERRYCTL(NULL, NULL, "check", raw), ==, 63);
}

/* ---- bad input ------------------------------------------------------------------------------- */

static void
assert_refused(const char *path, const char *needle)
{
    const char *const cmds[][3] = { { "info", NULL }, { "check", NULL }, { "convert", "-O" } };
    for (guint i = 0; i < G_N_ELEMENTS(cmds); i++) {
        g_autofree char *err = NULL;
        g_autofree char *out_path = g_strdup_printf("%s.out", path);
        int rc = cmds[i][1] ? FERRYCTL(NULL, &err, cmds[i][0], "-O", "raw", path, out_path)
                            : FERRYCTL(NULL, &err, cmds[i][0], path);
        g_assert_cmpint(rc, >=, 1);
        g_assert_cmpint(rc, <, 64);           /* an exit status, not a signal */
        g_test_message("%s %s: %s", cmds[i][0], path, err);
        if (rc != 2 && !strstr(err, needle))
            g_error("ferryctl img %s %s: '%s' lacks '%s'", cmds[i][0], path, err, needle);
        unlink(out_path);
    }
}

static void
test_corrupt_images(void)
{
    if (!need_qemu())
        return;
    g_autofree char *p1 = tmp_path("b-trunc.qcow2");
    small_image(p1);
    g_assert_cmpint(truncate(p1, 3000), ==, 0);
    assert_refused(p1, "b-trunc.qcow2");

    g_autofree char *p2 = tmp_path("b-l1.qcow2");
    small_image(p2);
    poke64(p2, peek64(p2, 40), G_GUINT64_CONSTANT(0x8000000000000000) | (G_GUINT64_CONSTANT(1) << 44));
    assert_refused(p2, "L1 entry 0");

    g_autofree char *p3 = tmp_path("b-l2.qcow2");
    small_image(p3);
    guint64 l2 = peek64(p3, peek64(p3, 40)) & G_GUINT64_CONSTANT(0x00fffffffffffe00);
    poke64(p3, l2, G_GUINT64_CONSTANT(0x8000000000000000) | (G_GUINT64_CONSTANT(1) << 44));
    g_autofree char *err = NULL, *out = NULL;
    g_autofree char *o3 = tmp_path("b-l2.out");
    g_assert_cmpint(FERRYCTL(NULL, &err, "convert", "-O", "raw", p3, o3), ==, 1);
    g_assert_nonnull(strstr(err, "past the end of the file"));
    g_assert_cmpint(FERRYCTL(&out, NULL, "check", p3), ==, 2);

    g_autofree char *p4 = tmp_path("b-bits.qcow2");
    small_image(p4);
    poke64(p4, 16, (G_GUINT64_CONSTANT(0) << 32) | 99);     /* backing size 0, cluster_bits 99 */
    assert_refused(p4, "cluster_bits 99");

    g_autofree char *p5 = tmp_path("b-feature.qcow2");
    small_image(p5);
    poke64(p5, 72, G_GUINT64_CONSTANT(1) << 20);
    assert_refused(p5, "incompatible feature");

    g_autofree char *p6 = tmp_path("b-size.qcow2");
    small_image(p6);
    poke64(p6, 24, G_GUINT64_CONSTANT(1) << 60);
    assert_refused(p6, "virtual size");

    g_autofree char *p7 = tmp_path("b-rt.qcow2");
    small_image(p7);
    poke64(p7, 48, G_GUINT64_CONSTANT(1) << 50);
    assert_refused(p7, "refcount table");

    g_autofree char *la = tmp_path("b-loop-a.qcow2"), *lb = tmp_path("b-loop-b.qcow2");
    g_assert_cmpint(QEMU_IMG("create", "-q", "-f", "qcow2", lb, "1M"), ==, 0);
    g_assert_cmpint(QEMU_IMG("create", "-q", "-f", "qcow2", "-b", "b-loop-b.qcow2", "-F", "qcow2", la), ==, 0);
    g_assert_cmpint(QEMU_IMG("rebase", "-u", "-f", "qcow2", "-b", "b-loop-a.qcow2", "-F", "qcow2", lb), ==, 0);
    g_autofree char *le = NULL;
    g_autofree char *lo = tmp_path("b-loop.out");
    g_assert_cmpint(FERRYCTL(NULL, &le, "convert", "-O", "raw", la, lo), ==, 1);
    g_assert_nonnull(strstr(le, "loops back"));

    g_autofree char *de = NULL;
    g_assert_cmpint(FERRYCTL(NULL, &de, "info", tmpdir), ==, 1);
    g_assert_nonnull(strstr(de, "folder"));
    g_autofree char *ne = NULL, *missing = tmp_path("b-missing.qcow2");
    g_assert_cmpint(FERRYCTL(NULL, &ne, "info", missing), ==, 1);
    g_assert_nonnull(strstr(ne, "no such file"));
}

/* ---- locks --------------------------------------------------------------------------------- */

/* The child: holds an image open for writing until stdin closes. */
static int
child_hold(const char *path)
{
    g_autoptr(GError) error = NULL;
    FerryBlock *bs = ferry_block_open(path, NULL, 0, &error);
    if (!bs) {
        g_printerr("%s\n", error->message);
        return 1;
    }
    printf("HELD\n");
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0)
        ;
    ferry_block_close(bs);
    return 0;
}

static FerryTestProc *
spawn_self(const char *mode, const char *arg1, const char *arg2, const char *arg3)
{
    const char *argv[] = { self_exe, mode, arg1, arg2, arg3, NULL };
    g_autoptr(GError) error = NULL;
    FerryTestProc *p = ferry_test_proc_spawn(argv, &error);
    g_assert_no_error(error);
    return p;
}

static void
test_locks(void)
{
    if (!need_qemu())
        return;
    g_autofree char *img = tmp_path("l.qcow2");
    g_assert_cmpint(QEMU_IMG("create", "-q", "-f", "qcow2", img, "16M"), ==, 0);

    /* Ferry holds it: a second Ferry and QEMU are refused. */
    FerryTestProc *holder = spawn_self("--hold", img, NULL, NULL);
    g_assert_true(ferry_test_proc_expect(holder, "HELD", 10000));
    g_autofree char *e1 = NULL, *e2 = NULL, *e3 = NULL;
    g_assert_cmpint(FERRYCTL(NULL, &e1, "info", img), ==, 1);
    g_autofree char *pid_text = g_strdup_printf("(pid %d: test-img)", ferry_test_proc_pid(holder));
    g_assert_nonnull(strstr(e1, "is in use by another program"));
    g_assert_nonnull(strstr(e1, pid_text));
    g_assert_nonnull(strstr(e1, "close it first"));
    g_assert_cmpint(FERRYCTL(NULL, NULL, "info", "-U", img), ==, 0);
    g_assert_cmpint(run(NULL, &e2, "qemu-img", "info", img, NULL), ==, 1);
    g_assert_nonnull(strstr(e2, "lock"));
    g_assert_cmpint(run(NULL, &e3, "qemu-io", "-c", "read 0 512", img, NULL), !=, 0);
    g_assert_nonnull(strstr(e3, "lock"));
    ferry_test_proc_close_stdin(holder);
    g_assert_cmpint(ferry_test_proc_wait(holder, 10000), ==, 0);
    ferry_test_proc_free(holder);

    /* QEMU holds it for writing: Ferry names it. */
    const char *qio[] = { "qemu-io", "-f", "qcow2", img, NULL };
    g_autoptr(GError) error = NULL;
    FerryTestProc *q = ferry_test_proc_spawn(qio, &error);
    g_assert_no_error(error);
    ferry_test_proc_write(q, "write -P 1 0 4k\n");
    g_assert_true(ferry_test_proc_expect(q, "wrote", 10000));
    FerryBlock *bs = ferry_block_open(img, NULL, 0, &error);
    g_assert_null(bs);
    g_assert_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_LOCKED);
    g_autofree char *qpid = g_strdup_printf("(pid %d: qemu-io)", ferry_test_proc_pid(q));
    g_assert_nonnull(strstr(error->message, qpid));
    g_clear_error(&error);
    g_assert_null(ferry_block_open(img, NULL, FERRY_BLOCK_READ_ONLY, &error));
    g_clear_error(&error);
    ferry_test_proc_close_stdin(q);
    ferry_test_proc_wait(q, 10000);
    ferry_test_proc_free(q);

    /* QEMU reads it: Ferry may read, not write. */
    const char *qro[] = { "qemu-io", "-r", "-f", "qcow2", img, NULL };
    q = ferry_test_proc_spawn(qro, &error);
    ferry_test_proc_write(q, "read 0 4k\n");
    g_assert_true(ferry_test_proc_expect(q, "read 4096/4096", 10000));
    bs = ferry_block_open(img, NULL, FERRY_BLOCK_READ_ONLY, &error);
    g_assert_no_error(error);
    ferry_block_close(bs);
    g_assert_null(ferry_block_open(img, NULL, 0, &error));
    g_assert_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_LOCKED);
    ferry_test_proc_close_stdin(q);
    ferry_test_proc_wait(q, 10000);
    ferry_test_proc_free(q);
}

/* ---- kill -9 during writes ---------------------------------------------------------------------- */

#define REC_SIZE    4096
#define REC_SLOTS   2048         /* 8 MiB of records, spread over 64 MiB */
#define DISK_SIZE   (64u << 20)

static guint64
slot_offset(guint slot)
{
    /* A fixed scatter, so allocations land all over the L2 tables. */
    return ((guint64) ((slot * 2654435761u) % (DISK_SIZE / REC_SIZE / 2))) * REC_SIZE;
}

static void
make_record(guint8 *buf, guint seq)
{
    memset(buf, (guint8) seq, REC_SIZE);
    snprintf((char *) buf, 32, "REC %08u", seq);
    snprintf((char *) buf + REC_SIZE - 32, 32, "END %08u", seq);
}

/* Record seq's number if buf holds a whole record, else -1. */
static gint64
parse_record(const guint8 *buf)
{
    guint seq, seq2;
    if (sscanf((const char *) buf, "REC %08u", &seq) != 1 ||
        sscanf((const char *) buf + REC_SIZE - 32, "END %08u", &seq2) != 1 || seq != seq2)
        return -1;
    for (guint i = 32; i < REC_SIZE - 32; i++)
        if (buf[i] != (guint8) seq)
            return -1;
    return seq;
}

/* The child: writes numbered records (a slot is rewritten every
 * REC_SLOTS), zeroes and discards a scratch area, flushes every few
 * records and prints FLUSHED <seq> after each flush. */
static int
child_writer(const char *path)
{
    g_autoptr(GError) error = NULL;
    FerryBlock *bs = ferry_block_open(path, NULL, 0, &error);
    if (!bs) {
        g_printerr("%s\n", error->message);
        return 1;
    }
    guint8 buf[REC_SIZE];
    for (guint seq = 0;; seq++) {
        make_record(buf, seq);
        if (!ferry_block_pwrite(bs, slot_offset(seq % REC_SLOTS), buf, REC_SIZE, &error))
            break;
        guint64 scratch = DISK_SIZE / 2 + (seq % 500) * 65536;
        if (seq % 3 == 0 && !ferry_block_pwrite(bs, scratch, buf, REC_SIZE, &error))
            break;
        if (seq % 7 == 0 && !ferry_block_write_zeroes(bs, scratch, 65536, &error))
            break;
        if (seq % 11 == 0 && !ferry_block_discard(bs, scratch, 65536, &error))
            break;
        if (seq % 5 == 4) {
            if (!ferry_block_flush(bs, &error))
                break;
            printf("FLUSHED %u\n", seq);
            fflush(stdout);
        }
    }
    g_printerr("%s\n", error->message);
    return 1;
}

static gint64
last_flushed(const char *out)
{
    gint64 last = -1;
    for (const char *p = out; (p = strstr(p, "FLUSHED ")); p++) {
        const char *nl = strchr(p, '\n');
        if (nl)         /* a line cut by the kill does not count */
            last = g_ascii_strtoll(p + 8, NULL, 10);
    }
    return last;
}

static void
verify_records(const char *img, gint64 flushed)
{
    g_autoptr(GBytes) raw = qemu_raw(img);     /* an independent reader */
    const guint8 *data = g_bytes_get_data(raw, NULL);
    for (guint slot = 0; slot < REC_SLOTS && slot <= flushed; slot++) {
        /* The newest flushed record for this slot, or a later one. */
        gint64 want = slot + (flushed - slot) / REC_SLOTS * REC_SLOTS;
        gint64 got = parse_record(data + slot_offset(slot));
        if (got < want || got % REC_SLOTS != slot)
            g_error("%s: slot %u holds record %" G_GINT64_FORMAT ", expected %" G_GINT64_FORMAT
                    " or later (last flushed %" G_GINT64_FORMAT ")", img, slot, got, want, flushed);
    }
}

static void
test_kill9_writes(void)
{
    if (!need_qemu())
        return;
    guint rounds = g_test_slow() ? 40 : 12;
    for (guint round = 0; round < rounds; round++) {
        g_autofree char *name = g_strdup_printf("kill%u.qcow2", round);
        g_autofree char *img = tmp_path(name);
        const char *cs = round % 2 ? "4096" : "65536";
        g_autofree char *opt = g_strdup_printf("cluster_size=%s", cs);
        g_assert_cmpint(QEMU_IMG("create", "-q", "-f", "qcow2", "-o", opt, img, "64M"), ==, 0);
        FerryTestProc *p = spawn_self("--writer", img, NULL, NULL);
        g_assert_true(ferry_test_proc_expect(p, "FLUSHED", 20000));
        g_usleep(g_test_rand_int_range(10, 700) * 1000);
        ferry_test_proc_kill(p, SIGKILL);
        g_assert_cmpint(ferry_test_proc_wait(p, 10000), ==, 128 + SIGKILL);
        gint64 flushed = last_flushed(ferry_test_proc_stdout(p));
        ferry_test_proc_free(p);
        g_test_message("round %u: killed after record %" G_GINT64_FORMAT, round, flushed);
        g_assert_cmpint(flushed, >=, 4);
        g_autofree char *out = NULL;
        int rc = run(&out, NULL, "qemu-img", "check", img, NULL);
        if (rc != 0 && rc != 3)
            g_error("qemu-img check after kill -9 exited %d:\n%s", rc, out);
        verify_records(img, flushed);
        /* And Ferry goes on writing to it. */
        FerryBlock *bs = ferry_block_open(img, NULL, 0, NULL);
        g_assert_nonnull(bs);
        guint8 buf[REC_SIZE];
        make_record(buf, 1);
        g_assert_true(ferry_block_pwrite(bs, slot_offset(1), buf, REC_SIZE, NULL));
        ferry_block_close(bs);
        rc = run(NULL, NULL, "qemu-img", "check", img, NULL);
        g_assert_true(rc == 0 || rc == 3);
    }
}

/* ---- kill -9 during an overlay commit --------------------------------------------------------------- */

#define OV_SIZE (64u << 20)

static guint8
base_byte(guint64 off)
{
    return (guint8) (off / 65536 * 7 + 1);
}

static guint8
new_byte(guint64 off)
{
    return (guint8) (off / 4096 * 13 + 100);
}

/* Expected base after the commit: every other 64 KiB chunk of the first
 * 48 MiB is the overlay's. */
static gboolean
is_new(guint64 off)
{
    return off < (48u << 20) && (off / 65536) % 2 == 0;
}

/* The child: snapshot mode over base, the writes, then a commit. */
static int
child_committer(const char *base, const char *dir)
{
    g_autoptr(GError) error = NULL;
    FerryBlock *ov = ferry_overlay_open(base, NULL, dir, "hda", FERRY_OVERLAY_DISCARD_LEFTOVER, &error);
    if (!ov) {
        g_printerr("%s\n", error->message);
        return 1;
    }
    g_autofree guint8 *chunk = g_malloc(65536);
    for (guint64 off = 0; off < OV_SIZE; off += 65536) {
        if (!is_new(off))
            continue;
        for (guint i = 0; i < 65536; i++)
            chunk[i] = new_byte(off + i);
        if (!ferry_block_pwrite(ov, off, chunk, 65536, &error))
            return 1;
    }
    if (!ferry_block_flush(ov, &error))
        return 1;
    printf("READY\n");
    fflush(stdout);
    gint64 t0 = g_get_monotonic_time();
    if (!ferry_overlay_commit(ov, &error)) {
        g_printerr("%s\n", error->message);
        return 1;
    }
    printf("COMMITTED %" G_GINT64_FORMAT "\n", (g_get_monotonic_time() - t0) / 1000);
    fflush(stdout);
    ferry_block_close(ov);
    return 0;
}

/* 0: the base as it was; 1: with the whole commit; -1 mixed. */
static int
base_state(const char *base)
{
    g_autoptr(GBytes) raw = qemu_raw(base);
    const guint8 *d = g_bytes_get_data(raw, NULL);
    int state = -2;
    for (guint64 off = 0; off < OV_SIZE; off += 4096) {
        /* A page where the two patterns happen to agree tells nothing. */
        if (!is_new(off) || new_byte(off) == base_byte(off))
            continue;
        int s = d[off] == new_byte(off) ? 1 : d[off] == base_byte(off) ? 0 : -1;
        if (state == -2)
            state = s;
        if (s != state)
            return -1;
    }
    for (guint64 off = 0; off < OV_SIZE; off += 4096)
        if (!is_new(off) && d[off] != base_byte(off))
            return -1;
    return state;
}

static void
make_base(const char *base)
{
    g_assert_cmpint(QEMU_IMG("create", "-q", "-f", "qcow2", base, "64M"), ==, 0);
    FerryBlock *bs = ferry_block_open(base, "qcow2", 0, NULL);
    g_autofree guint8 *chunk = g_malloc(65536);
    for (guint64 off = 0; off < OV_SIZE; off += 65536) {
        memset(chunk, base_byte(off), 65536);
        g_assert_true(ferry_block_pwrite(bs, off, chunk, 65536, NULL));
    }
    ferry_block_close(bs);
}

static void
test_kill9_commit(void)
{
    if (!need_qemu())
        return;
    g_autofree char *base = tmp_path("ck-base.qcow2");
    g_autofree char *dir = tmp_path("ck-vm");
    /* How long does a whole commit take here? */
    make_base(base);
    FerryTestProc *p = spawn_self("--committer", base, dir, NULL);
    g_assert_true(ferry_test_proc_expect(p, "COMMITTED", 60000));
    g_assert_cmpint(ferry_test_proc_wait(p, 10000), ==, 0);
    gint64 ms = g_ascii_strtoll(strstr(ferry_test_proc_stdout(p), "COMMITTED ") + 10, NULL, 10);
    ferry_test_proc_free(p);
    g_assert_cmpint(base_state(base), ==, 1);
    g_test_message("a commit of 24 MiB takes %" G_GINT64_FORMAT " ms", ms);

    guint rounds = g_test_slow() ? 40 : 12, interrupted = 0;
    for (guint round = 0; round < rounds; round++) {
        unlink(base);
        make_base(base);
        p = spawn_self("--committer", base, dir, NULL);
        g_assert_true(ferry_test_proc_expect(p, "READY", 60000));
        g_usleep(g_test_rand_int_range(0, (gint32) (ms * 1200 + 1)));
        ferry_test_proc_kill(p, SIGKILL);
        ferry_test_proc_wait(p, 10000);
        gboolean finished = strstr(ferry_test_proc_stdout(p), "COMMITTED") != NULL;
        ferry_test_proc_free(p);

        /* Ferry looks at the data folder again (the next start): the base
         * holds none or all of the changes, never part. */
        g_autoptr(GError) error = NULL;
        g_autoptr(GPtrArray) left = ferry_overlay_list_leftovers(dir, &error);
        g_assert_no_error(error);
        int state = base_state(base);
        g_test_message("round %u: %s, base %s", round, finished ? "finished" : "killed",
                       state == 1 ? "committed" : state == 0 ? "untouched" : "MIXED");
        g_assert_cmpint(state, >=, 0);
        gboolean replayed = left->len && ((FerryOverlayLeftoverInfo *) left->pdata[0])->commit_was_interrupted;
        interrupted += replayed;
        if (state == 0) {
            /* Killed before the commit began: the changes are pending. */
            g_assert_cmpuint(left->len, ==, 1);
            g_assert_cmpuint(((FerryOverlayLeftoverInfo *) left->pdata[0])->pending_bytes, ==, 24u << 20);
            g_assert_true(ferry_overlay_commit_leftover(dir, "hda", &error));
            g_assert_no_error(error);
            g_assert_cmpint(base_state(base), ==, 1);
        }
        int rc = run(NULL, NULL, "qemu-img", "check", base, NULL);
        g_assert_true(rc == 0 || rc == 3);
    }
    g_test_message("%u of %u kills interrupted a commit", interrupted, rounds);
}

/* ---- a full disk ---------------------------------------------------------------------------------- */

/* The child: a private mount namespace with a 4 MiB tmpfs; writes until the
 * disk is full. Exit 77: no way to mount here. */
static int
child_enospc(const char *mnt)
{
    if (unshare(CLONE_NEWNS) < 0 &&
        (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)) {
        printf("SKIP unshare: %s\n", g_strerror(errno));
        return 77;
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
        mount("tmpfs", mnt, "tmpfs", 0, "size=4m") < 0) {
        printf("SKIP mount: %s\n", g_strerror(errno));
        return 77;
    }
    g_autofree char *img = g_build_filename(mnt, "full.qcow2", NULL);
    g_autoptr(GError) error = NULL;
    FerryBlockCreateOptions o = { .format = "qcow2", .size = 64 << 20, .cluster_size = 4096 };
    if (!ferry_block_create(img, &o, &error))
        return printf("create: %s\n", error->message), 1;
    FerryBlock *bs = ferry_block_open(img, "qcow2", 0, &error);
    guint8 buf[REC_SIZE];
    gint64 flushed = -1;
    guint seq;
    for (seq = 0; seq < REC_SLOTS; seq++) {
        make_record(buf, seq);
        if (!ferry_block_pwrite(bs, slot_offset(seq), buf, REC_SIZE, &error))
            break;
        if (seq % 16 == 15) {
            if (!ferry_block_flush(bs, &error))
                break;
            flushed = seq;
        }
    }
    if (!error || !g_error_matches(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_NO_SPACE))
        return printf("expected a full disk, got %s\n", error ? error->message : "no error"), 1;
    printf("FULL after %u records: %s\n", seq, error->message);
    g_clear_error(&error);
    ferry_block_close(bs);

    /* The image is still sound and holds every flushed record. */
    bs = ferry_block_open(img, "qcow2", FERRY_BLOCK_READ_ONLY, &error);
    if (!bs)
        return printf("reopen: %s\n", error->message), 1;
    for (gint64 s = 0; s <= flushed; s++) {
        if (!ferry_block_pread(bs, slot_offset(s), buf, REC_SIZE, &error) || parse_record(buf) != s)
            return printf("record %" G_GINT64_FORMAT " lost\n", s), 1;
    }
    ferry_block_close(bs);
    g_autofree char *out = NULL;
    int rc = run(&out, NULL, "qemu-img", "check", img, NULL);
    if (rc != 0 && rc != 3)
        return printf("qemu-img check exited %d:\n%s\n", rc, out), 1;
    /* Converting onto the full disk fails cleanly too. */
    g_autofree char *copy = g_build_filename(mnt, "copy.raw", NULL);
    g_autofree char *err = NULL;
    rc = run(NULL, &err, ferry_test_ferryctl(), "img", "convert", "-O", "qcow2", img, copy, NULL);
    if (rc != 1 || !strstr(err, "full"))
        return printf("convert onto a full disk: %d %s\n", rc, err), 1;
    printf("OK %" G_GINT64_FORMAT " flushed\n", flushed);
    return 0;
}

static void
test_enospc(void)
{
    if (!need_qemu())
        return;
    g_autofree char *mnt = tmp_path("mnt");
    g_assert_cmpint(g_mkdir_with_parents(mnt, 0700), ==, 0);
    FerryTestProc *p = spawn_self("--enospc", mnt, NULL, NULL);
    int rc = ferry_test_proc_wait(p, 120000);
    g_test_message("%s%s", ferry_test_proc_stdout(p), ferry_test_proc_stderr(p));
    if (rc == 77) {
        g_autofree char *why = g_strdup_printf("no small file system to fill (%s): ENOSPC test skipped",
                                               g_strstrip(g_strdup(ferry_test_proc_stdout(p))));
        ferry_test_proc_free(p);
        g_test_skip(why);
        return;
    }
    g_assert_cmpint(rc, ==, 0);
    g_assert_nonnull(strstr(ferry_test_proc_stdout(p), "OK"));
    ferry_test_proc_free(p);
}

int
main(int argc, char **argv)
{
    /* Child roles (see the tests that spawn them). */
    if (argc >= 3 && !strcmp(argv[1], "--hold"))
        return child_hold(argv[2]);
    if (argc >= 3 && !strcmp(argv[1], "--writer"))
        return child_writer(argv[2]);
    if (argc >= 4 && !strcmp(argv[1], "--committer"))
        return child_committer(argv[2], argv[3]);
    if (argc >= 3 && !strcmp(argv[1], "--enospc"))
        return child_enospc(argv[2]);

    self_exe = g_file_read_link("/proc/self/exe", NULL);
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    tmpdir = g_dir_make_tmp("ferry-test-img-XXXXXX", NULL);

    g_test_add_func("/img/interop/read-qemu-images", test_read_qemu_images);
    g_test_add_func("/img/interop/ferry-images-pass-qemu-check", test_ferry_images_pass_qemu);
    g_test_add_func("/img/ferryctl/create-info", test_ferryctl_create_info);
    g_test_add_func("/img/ferryctl/convert-commit", test_ferryctl_convert_commit);
    g_test_add_func("/img/ferryctl/check", test_ferryctl_check);
    g_test_add_func("/img/bad-input", test_corrupt_images);
    g_test_add_func("/img/locks", test_locks);
    g_test_add_func("/img/kill9/writes", test_kill9_writes);
    g_test_add_func("/img/kill9/overlay-commit", test_kill9_commit);
    g_test_add_func("/img/enospc", test_enospc);

    int rc = g_test_run();
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        g_printerr("could not remove %s\n", tmpdir);
    return rc;
}

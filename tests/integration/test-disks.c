/* test-disks.c: hard disks end to end on the riscv64 virt machine with the
 * Linux test guest: virtio-blk over virtio-mmio, raw and qcow2 images made
 * and checked by Debian's qemu-img, read-only disks, snapshot mode with
 * commit and discard (monitor and engine API), leftovers of crashed runs,
 * image locks, corrupt images and kill -9 during guest writes. */
#include "../lib/ferry-test-proc.h"

#include <ferry/vm.h>

#include <signal.h>
#include <string.h>
#include <glib/gstdio.h>

#define BOOT_TIMEOUT_MS 180000
#define STEP_TIMEOUT_MS 60000

static char *tmp_root;          /* TMPDIR of this test and its ferryctl runs */

/* ---- helpers ------------------------------------------------------------------ */

static gboolean
have_qemu_img(void)
{
    g_autofree char *path = g_find_program_in_path("qemu-img");
    if (!path)
        g_test_skip("qemu-img not found: install Debian's qemu-utils");
    return path != NULL;
}

static gboolean
guest_files(char **kernel, char **initrd)
{
    *kernel = ferry_test_guest_file("riscv64/Image");
    *initrd = *kernel ? ferry_test_guest_file("riscv64/initramfs.cpio.gz") : NULL;
    return *kernel && *initrd;
}

static char *
test_dir(void)
{
    return g_dir_make_tmp("disks-XXXXXX", NULL);
}

/* Runs qemu-img; returns its exit status, output in *out (may be NULL). */
static int
qemu_img(char **out, const char *first, ...)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    va_list ap;

    g_ptr_array_add(argv, "qemu-img");
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *))
        g_ptr_array_add(argv, (gpointer) a);
    va_end(ap);
    g_ptr_array_add(argv, NULL);
    g_autofree char *err = NULL;
    int rc = ferry_test_run((const char *const *) argv->pdata, NULL, 60000, out, &err);
    if (rc != 0)
        g_test_message("qemu-img %s: exit %d: %s", first, rc, err);
    return rc;
}

static char *
make_image(const char *dir, const char *name, const char *format, const char *size)
{
    char *path = g_build_filename(dir, name, NULL);
    g_assert_cmpint(qemu_img(NULL, "create", "-q", "-f", format, path, size, NULL), ==, 0);
    return path;
}

static char *
sha256_bytes(const void *data, gsize len)
{
    return g_compute_checksum_for_data(G_CHECKSUM_SHA256, data, len);
}

static char *
sha256_file(const char *path)
{
    g_autofree char *data = NULL;
    gsize len;
    g_assert_true(g_file_get_contents(path, &data, &len, NULL));
    return sha256_bytes(data, len);
}

/* The guest's view of an image, as qemu-img converts it to raw. */
static GBytes *
guest_view(const char *image)
{
    g_autofree char *raw = g_strdup_printf("%s.view.raw", image);
    g_assert_cmpint(qemu_img(NULL, "convert", "-U", "-O", "raw", image, raw, NULL), ==, 0);
    char *data;
    gsize len;
    g_assert_true(g_file_get_contents(raw, &data, &len, NULL));
    g_unlink(raw);
    return g_bytes_new_take(data, len);
}

/* qemu-img check: 0 clean, 3 leaked clusters only. */
static int
qemu_img_check(const char *image)
{
    g_autofree char *out = NULL;
    int rc = qemu_img(&out, "check", image, NULL);
    g_test_message("qemu-img check %s: %d\n%s", image, rc, out ? out : "");
    return rc;
}

static void
fill_random(const char *path, gsize len)
{
    g_autofree guint8 *buf = g_malloc(len);
    for (gsize i = 0; i < len; i += 4)
        *(guint32 *) (buf + i) = g_test_rand_int();
    /* Overwrite in place: the file keeps its size. */
    FILE *f = fopen(path, "r+b");
    g_assert_nonnull(f);
    g_assert_cmpuint(fwrite(buf, 1, len, f), ==, len);
    fclose(f);
}

/* argv gets its NULL end here. */
static FerryTestProc *
spawn_argv(GPtrArray *argv)
{
    g_ptr_array_add(argv, NULL);
    return ferry_test_spawn((const char *const *) argv->pdata);
}

/* The rest of the line after `prefix` in the output, or NULL. */
static char *
line_after(const char *out, const char *prefix)
{
    const char *p = strstr(out, prefix);
    if (!p)
        return NULL;
    p += strlen(prefix);
    return g_strndup(p, strcspn(p, "\r\n"));
}

/* ferryctl run for the Linux guest; add disk options after it. */
static GPtrArray *
guest_argv(const char *kernel, const char *initrd, const char *append)
{
    GPtrArray *a = g_ptr_array_new_with_free_func(g_free);
    const char *base[] = { ferry_test_ferryctl(), "run", "--arch", "riscv64", "--kernel", kernel,
                           "--initrd", initrd, "-m", "256M", "--append", NULL };
    for (guint i = 0; base[i]; i++)
        g_ptr_array_add(a, g_strdup(base[i]));
    g_ptr_array_add(a, g_strdup_printf("console=ttyS0 %s", append));
    return a;
}

static void
add_args(GPtrArray *a, ...)
{
    va_list ap;
    va_start(ap, a);
    for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *))
        g_ptr_array_add(a, g_strdup(s));
    va_end(ap);
}

static guint
count_private_folders(void)
{
    g_autoptr(GDir) dir = g_dir_open(tmp_root, 0, NULL);
    const char *name;
    guint n = 0;
    while ((name = g_dir_read_name(dir)))
        n += g_str_has_prefix(name, "ferry-snapshot-");
    return n;
}

/* ---- the guest sees its disks ------------------------------------------------ */

/* Four disks, qcow2 and raw mixed, are vda..vdd in order; the guest tags
 * each with its own name and the host finds "vdb" in hdb's image. */
static void
test_order(void)
{
    g_autofree char *kernel = NULL, *initrd = NULL;
    if (!have_qemu_img() || !guest_files(&kernel, &initrd))
        return;
    g_autofree char *dir = test_dir();
    g_autofree char *a = make_image(dir, "a.qcow2", "qcow2", "16M");
    g_autofree char *b = make_image(dir, "b.raw", "raw", "8M");
    g_autofree char *c = make_image(dir, "c.qcow2", "qcow2", "16M");
    g_autofree char *d = make_image(dir, "d.raw", "raw", "8M");
    g_autofree char *bspec = g_strdup_printf("file=%s,format=raw", b);
    g_autoptr(GPtrArray) argv = guest_argv(kernel, initrd, "guest_selftest=blk-tag");
    add_args(argv, "--hda", a, "--drive", bspec, "--hdc", c, "--hdd", d, NULL);
    FerryTestProc *p = spawn_argv(argv);

    ferry_test_expect(p, "block=vda,vdb,vdc,vdd", BOOT_TIMEOUT_MS);
    ferry_test_expect(p, "SELFTEST blk-tag ok vda,vdb,vdc,vdd", STEP_TIMEOUT_MS);
    g_assert_cmpint(ferry_test_proc_wait(p, STEP_TIMEOUT_MS), ==, 0);
    ferry_test_proc_free(p);

    const char *images[] = { a, b, c, d };
    for (guint i = 0; i < 4; i++) {
        g_autoptr(GBytes) view = guest_view(images[i]);
        g_autofree char *tag = g_strdup_printf("FERRY-TAG vd%c ", 'a' + i);
        g_assert_cmpuint(g_bytes_get_size(view), >=, 512);
        g_assert_cmpmem(g_bytes_get_data(view, NULL), strlen(tag), tag, strlen(tag));
    }
    g_assert_cmpint(qemu_img_check(a), ==, 0);
    g_assert_cmpint(qemu_img_check(c), ==, 0);
}

/* A raw disk read in the guest matches the host's sha256; the guest's
 * pattern written to a qcow2 image made by qemu-img is in the image, which
 * qemu-img check passes. */
static void
test_read_write(void)
{
    g_autofree char *kernel = NULL, *initrd = NULL;
    if (!have_qemu_img() || !guest_files(&kernel, &initrd))
        return;
    g_autofree char *dir = test_dir();
    g_autofree char *raw = make_image(dir, "data.raw", "raw", "32M");
    g_autofree char *q = make_image(dir, "rw.qcow2", "qcow2", "64M");
    fill_random(raw, 1 << 20);
    g_autofree char *raw_sha = NULL;
    {
        g_autofree char *data = NULL;
        gsize len;
        g_assert_true(g_file_get_contents(raw, &data, &len, NULL));
        raw_sha = sha256_bytes(data, 1 << 20);
    }
    g_autofree char *rawspec = g_strdup_printf("file=%s,format=raw", raw);
    g_autofree char *qspec = g_strdup_printf("file=%s,format=qcow2,readonly=off", q);
    g_autoptr(GPtrArray) argv = guest_argv(kernel, initrd,
                                           "guest_selftest=blk-read,blk-rw guest_blkdev=vda,vdb");
    add_args(argv, "--drive", rawspec, "--drive", qspec, NULL);
    FerryTestProc *p = spawn_argv(argv);

    ferry_test_expect(p, "block=vda,vdb", BOOT_TIMEOUT_MS);
    g_autofree char *read_ok = g_strdup_printf("SELFTEST blk-read ok %s /dev/vda", raw_sha);
    ferry_test_expect(p, read_ok, STEP_TIMEOUT_MS);
    ferry_test_expect(p, "SELFTEST blk-rw ok /dev/vdb sectors=131072 sha256=", STEP_TIMEOUT_MS);
    g_assert_cmpint(ferry_test_proc_wait(p, STEP_TIMEOUT_MS), ==, 0);
    g_autofree char *detail = line_after(ferry_test_proc_stdout(p), "sectors=131072 sha256=");
    ferry_test_proc_free(p);

    g_assert_cmpint(qemu_img_check(q), ==, 0);
    g_autoptr(GBytes) view = guest_view(q);
    gsize len;
    const char *data = g_bytes_get_data(view, &len);
    g_assert_cmpuint(len, ==, 64 << 20);
    g_autofree char *start_sha = sha256_bytes(data, 1 << 20);
    g_assert_true(g_str_has_prefix(start_sha, detail));
    /* Every sector of the pattern names itself: sector 5 at the start, the
     * first of the last MiB at the end. */
    g_assert_true(g_str_has_prefix(data, "ferry-blk-rw "));
    g_assert_nonnull(g_strstr_len(data + 5 * 512, 64, " sector 5 "));
    g_assert_nonnull(g_strstr_len(data + (63 << 20), 64, " sector 129024 "));
    /* qemu-img compare agrees with what Ferry's guest wrote. */
    g_autofree char *copy = g_build_filename(dir, "copy.raw", NULL);
    g_assert_true(g_file_set_contents(copy, data, len, NULL));
    g_assert_cmpint(qemu_img(NULL, "compare", "-q", q, copy, NULL), ==, 0);
    /* The raw disk was only read. */
    g_autofree char *raw_sha_after = NULL;
    {
        g_autofree char *d2 = NULL;
        gsize l2;
        g_assert_true(g_file_get_contents(raw, &d2, &l2, NULL));
        raw_sha_after = sha256_bytes(d2, 1 << 20);
    }
    g_assert_cmpstr(raw_sha, ==, raw_sha_after);
}

/* readonly=on: the guest's kernel marks the disk read-only and the device
 * itself fails writes; the image file is untouched. */
static void
test_readonly(void)
{
    g_autofree char *kernel = NULL, *initrd = NULL;
    if (!have_qemu_img() || !guest_files(&kernel, &initrd))
        return;
    g_autofree char *dir = test_dir();
    g_autofree char *raw = make_image(dir, "ro.raw", "raw", "8M");
    fill_random(raw, 1 << 20);
    g_autofree char *before = sha256_file(raw);
    g_autofree char *spec = g_strdup_printf("file=%s,format=raw,readonly=on", raw);
    g_autoptr(GPtrArray) argv = guest_argv(kernel, initrd, "guest_selftest=blk-ro guest_blkdev=vda");
    add_args(argv, "--drive", spec, NULL);
    FerryTestProc *p = spawn_argv(argv);

    ferry_test_expect(p, "SELFTEST blk-ro ok refused /dev/vda kernel device", BOOT_TIMEOUT_MS);
    g_assert_cmpint(ferry_test_proc_wait(p, STEP_TIMEOUT_MS), ==, 0);
    ferry_test_proc_free(p);
    g_autofree char *after = sha256_file(raw);
    g_assert_cmpstr(before, ==, after);
}

/* ---- snapshot mode through the monitor --------------------------------------------- */

/* One --snapshot run: the guest writes its pattern to hda, `info block`
 * shows the overlay and the pending MiB, then `verb` (discard or commit)
 * and quit. Returns the pattern's sha256 prefix from the guest. */
static char *
snapshot_run(const char *kernel, const char *initrd, const char *dir, const char *base,
             const char *ro_disk, const char *verb)
{
    g_autofree char *sock = g_build_filename(dir, "mon.sock", NULL);
    g_autofree char *mon = g_strdup_printf("unix:%s", sock);
    g_autofree char *rospec = g_strdup_printf("file=%s,format=raw,readonly=on", ro_disk);
    g_autoptr(GPtrArray) argv = guest_argv(kernel, initrd,
                                           "guest_selftest=blk-rw guest_blkdev=vda guest_mode=shell");
    add_args(argv, "--hda", base, "--drive", rospec, "--snapshot", "--monitor", mon, NULL);
    g_autofree char *base_sha = sha256_file(base);
    FerryTestProc *p = spawn_argv(argv);

    ferry_test_expect(p, "SELFTEST blk-rw ok /dev/vda sectors=", BOOT_TIMEOUT_MS);
    ferry_test_expect(p, "GUEST-SHELL", STEP_TIMEOUT_MS);
    g_autofree char *detail = line_after(ferry_test_proc_stdout(p), "SELFTEST blk-rw ok /dev/vda sectors=");
    g_autofree char *sha = g_strdup(strstr(detail, "sha256=") + strlen("sha256="));

    /* The guest flushed; still nothing reached the base. */
    g_autofree char *base_sha_running = sha256_file(base);
    g_assert_cmpstr(base_sha, ==, base_sha_running);

    FerryTestMonitor *m = ferry_test_monitor_connect(sock, 10000);
    g_assert_nonnull(m);
    g_autofree char *info = ferry_test_monitor_cmd(m, "info block", 10000);
    g_test_message("info block:\n%s", info);
    g_autofree char *want_hda = g_strdup_printf("hda: %s (qcow2, rw) overlay=%s/ferry-snapshot-",
                                                base, tmp_root);
    g_assert_true(g_str_has_prefix(info, want_hda));
    g_assert_nonnull(strstr(info, "/hda-overlay.qcow2 pending=2.0 MiB\n"));
    g_autofree char *want_hdb = g_strdup_printf("hdb: %s (raw, ro)\n", ro_disk);
    g_assert_nonnull(strstr(info, want_hdb));
    g_autofree char *overlay = line_after(info, "overlay=");
    *strstr(overlay, " pending=") = '\0';
    g_assert_true(g_file_test(overlay, G_FILE_TEST_EXISTS));

    g_autofree char *bad = ferry_test_monitor_cmd(m, "commit hdb", 10000);
    g_assert_nonnull(strstr(bad, "hdb is not in snapshot mode (read-only)"));
    g_autofree char *bad2 = ferry_test_monitor_cmd(m, "discard hdz", 10000);
    g_assert_nonnull(strstr(bad2, "Unknown drive 'hdz'"));

    g_autofree char *reply = ferry_test_monitor_cmd(m, verb, 60000);
    g_test_message("%s: %s", verb, reply);
    if (g_str_has_prefix(verb, "commit"))
        g_assert_true(g_str_has_prefix(reply, "hda: committed 2.0 MiB into "));
    else
        g_assert_cmpstr(reply, ==, "hda: discarded 2.0 MiB\n");
    g_autofree char *info2 = ferry_test_monitor_cmd(m, "info block", 10000);
    g_assert_nonnull(strstr(info2, "/hda-overlay.qcow2 pending=0.0 MiB\n"));
    ferry_test_monitor_cmd(m, "quit", 5000);
    g_assert_cmpint(ferry_test_proc_wait(p, STEP_TIMEOUT_MS), ==, 0);
    ferry_test_monitor_free(m);
    ferry_test_proc_free(p);
    /* A one-off run's overlays go with it. */
    g_assert_false(g_file_test(overlay, G_FILE_TEST_EXISTS));
    g_assert_cmpuint(count_private_folders(), ==, 0);
    return g_steal_pointer(&sha);
}

static void
test_snapshot_monitor(void)
{
    g_autofree char *kernel = NULL, *initrd = NULL;
    if (!have_qemu_img() || !guest_files(&kernel, &initrd))
        return;
    g_autofree char *dir = test_dir();
    g_autofree char *base = make_image(dir, "base.qcow2", "qcow2", "64M");
    g_autofree char *ro = make_image(dir, "ro.raw", "raw", "4M");
    g_autofree char *sha0 = sha256_file(base);

    /* discard: the base stays byte for byte what it was. */
    g_autofree char *p1 = snapshot_run(kernel, initrd, dir, base, ro, "discard");
    g_autofree char *sha1 = sha256_file(base);
    g_assert_cmpstr(sha0, ==, sha1);

    /* commit: the base holds the guest's writes and is a sound image. */
    g_autofree char *p2 = snapshot_run(kernel, initrd, dir, base, ro, "commit all");
    g_autofree char *sha2 = sha256_file(base);
    g_assert_cmpstr(sha0, !=, sha2);
    g_assert_cmpint(qemu_img_check(base), ==, 0);
    g_autoptr(GBytes) view = guest_view(base);
    g_autofree char *start = sha256_bytes(g_bytes_get_data(view, NULL), 1 << 20);
    g_assert_true(g_str_has_prefix(start, p2));
}

/* kill -9 of a --snapshot run: the base is untouched, the next run neither
 * fails nor sees the changes and notes them; the API lists them and
 * discards them. */
static void
test_snapshot_crash(void)
{
    g_autofree char *kernel = NULL, *initrd = NULL;
    if (!have_qemu_img() || !guest_files(&kernel, &initrd))
        return;
    g_autofree char *dir = test_dir();
    g_autofree char *base = make_image(dir, "base.qcow2", "qcow2", "64M");
    g_autofree char *sha0 = sha256_file(base);
    g_autoptr(GPtrArray) argv = guest_argv(kernel, initrd,
                                           "guest_selftest=blk-rw guest_blkdev=vda guest_mode=shell");
    add_args(argv, "--hda", base, "--snapshot", NULL);
    FerryTestProc *p = spawn_argv(argv);
    ferry_test_expect(p, "SELFTEST blk-rw ok", BOOT_TIMEOUT_MS);
    ferry_test_proc_kill(p, SIGKILL);
    g_assert_cmpint(ferry_test_proc_wait(p, STEP_TIMEOUT_MS), ==, 128 + SIGKILL);
    ferry_test_proc_free(p);
    g_autofree char *sha1 = sha256_file(base);
    g_assert_cmpstr(sha0, ==, sha1);
    g_assert_cmpuint(count_private_folders(), ==, 1);

    /* The next run starts clean: blk-read sees zeros, not the pattern. */
    g_autofree char *zeros = g_malloc0(1 << 20);
    g_autofree char *zero_sha = sha256_bytes(zeros, 1 << 20);
    g_autofree char *want = g_strdup_printf("SELFTEST blk-read ok %s /dev/vda", zero_sha);
    g_autoptr(GPtrArray) argv2 = guest_argv(kernel, initrd, "guest_selftest=blk-read guest_blkdev=vda");
    add_args(argv2, "--hda", base, "--snapshot", NULL);
    p = spawn_argv(argv2);
    ferry_test_expect(p, want, BOOT_TIMEOUT_MS);
    g_assert_cmpint(ferry_test_proc_wait(p, STEP_TIMEOUT_MS), ==, 0);
    g_assert_nonnull(strstr(ferry_test_proc_stderr(p), "an earlier --snapshot run left 2.0 MiB of changes"));
    ferry_test_proc_free(p);

    FerryVmConfig config;
    ferry_vm_config_init(&config);
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) left = ferry_vm_config_list_leftovers(&config, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(left->len, ==, 1);
    FerryVmLeftover *l = left->pdata[0];
    g_assert_cmpstr(l->drive, ==, "hda");
    g_assert_true(g_str_has_prefix(l->name, "ferry-snapshot-"));
    g_assert_true(g_str_has_suffix(l->name, "/hda"));
    g_assert_cmpstr(l->base_path, ==, base);
    g_assert_cmpuint(l->pending_bytes, ==, 2 << 20);
    g_assert_true(ferry_vm_config_discard_leftover(&config, l->name, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(count_private_folders(), ==, 0);
    g_autofree char *sha2 = sha256_file(base);
    g_assert_cmpstr(sha0, ==, sha2);
}

/* ---- snapshot mode through the engine API ------------------------------------------ */

typedef struct {
    GString *serial;
    gsize mark;
    FerryVmState state;
    gboolean replied;
    GPtrArray *drives;
    GError *error;
} Api;

static void
api_serial(FerryVm *vm, guint port, GBytes *data, gpointer user_data)
{
    Api *a = user_data;
    gsize len;
    const char *p = g_bytes_get_data(data, &len);
    g_string_append_len(a->serial, p, len);
}

static void
api_state(FerryVm *vm, FerryVmState state, gpointer user_data)
{
    ((Api *) user_data)->state = state;
}

static void
api_drives(FerryVm *vm, GPtrArray *drives, const GError *error, gpointer user_data)
{
    Api *a = user_data;
    a->replied = TRUE;
    g_clear_pointer(&a->drives, g_ptr_array_unref);
    g_clear_error(&a->error);
    if (drives)
        a->drives = g_ptr_array_ref(drives);
    if (error)
        a->error = g_error_copy(error);
}

static void
api_disk(FerryVm *vm, const GError *error, gpointer user_data)
{
    api_drives(vm, NULL, error, user_data);
}

static gboolean
api_wait(Api *a, gboolean (*done)(Api *a, gconstpointer data), gconstpointer data, guint ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64) ms * 1000;
    while (!done(a, data)) {
        if (g_get_monotonic_time() > deadline)
            return FALSE;
        g_main_context_iteration(NULL, FALSE);
        g_usleep(2000);
    }
    return TRUE;
}

static gboolean
serial_has(Api *a, gconstpointer text)
{
    return strstr(a->serial->str, text) != NULL;
}

/* serial_has() for what comes after a->mark. */
static gboolean
serial_has_new(Api *a, gconstpointer text)
{
    return strstr(a->serial->str + MIN(a->mark, a->serial->len), text) != NULL;
}

static void
api_type(FerryVm *vm, Api *a, const char *line)
{
    a->mark = a->serial->len;
    ferry_vm_serial_input(vm, (const guint8 *) line, strlen(line));
}

static gboolean
replied(Api *a, gconstpointer unused)
{
    return a->replied;
}

static gboolean
stopped(Api *a, gconstpointer unused)
{
    return a->state == FERRY_VM_STATE_STOPPED;
}

static void
api_reset(Api *a)
{
    a->replied = FALSE;
    g_clear_pointer(&a->drives, g_ptr_array_unref);
    g_clear_error(&a->error);
}

static FerryVm *
api_start(FerryVmConfig *config, Api *a, const char *cmdline)
{
    static const FerryVmEvents events = { .state_changed = api_state, .serial_output = api_serial };
    g_autoptr(GError) error = NULL;
    g_free(config->cmdline);
    config->cmdline = g_strdup_printf("console=ttyS0 %s", cmdline);
    g_string_truncate(a->serial, 0);
    a->state = FERRY_VM_STATE_CREATED;
    FerryVm *vm = ferry_vm_new(config, NULL, &events, a, &error);
    g_assert_no_error(error);
    g_assert_true(ferry_vm_start(vm, &error));
    g_assert_no_error(error);
    return vm;
}

static void
api_stop(FerryVm *vm, Api *a)
{
    ferry_vm_send_simple(vm, FERRY_VM_CMD_STOP);
    g_assert_true(api_wait(a, stopped, NULL, STEP_TIMEOUT_MS));
    ferry_vm_free(vm);
}

static FerryVmDriveInfo *
api_query(FerryVm *vm, Api *a)
{
    api_reset(a);
    ferry_vm_query_drives(vm, api_drives, a);
    g_assert_true(api_wait(a, replied, NULL, STEP_TIMEOUT_MS));
    g_assert_no_error(a->error);
    g_assert_cmpuint(a->drives->len, ==, 1);
    return a->drives->pdata[0];
}

/* A stored VM (data_dir): the overlay lives in the VM's folder; changes
 * left at the end stay there, are listed as a leftover, never reach the
 * next run (set aside), and are committed through the API; commit and
 * discard of a running VM through the API. */
static void
test_snapshot_api(void)
{
    g_autofree char *kernel = NULL, *initrd = NULL;
    if (!have_qemu_img() || !guest_files(&kernel, &initrd))
        return;
    g_autofree char *dir = test_dir();
    g_autofree char *base = make_image(dir, "base.qcow2", "qcow2", "64M");
    g_autofree char *vmdir = g_build_filename(dir, "vms", "0000-uuid", NULL);
    g_autofree char *sha0 = sha256_file(base);
    Api a = { .serial = g_string_new(NULL) };
    g_autoptr(GError) error = NULL;
    FerryVmConfig config;

    ferry_vm_config_init(&config);
    config.arch = FERRY_ARCH_RISCV64;
    config.memory_bytes = 256 << 20;
    config.kernel_path = g_strdup(kernel);
    config.initrd_path = g_strdup(initrd);
    config.disks[0].path = g_strdup(base);
    config.disks[0].format = g_strdup("qcow2");
    config.snapshot = TRUE;
    config.data_dir = g_strdup(vmdir);
    g_autofree char *overlay = g_build_filename(vmdir, "hda-overlay.qcow2", NULL);

    /* Before start: no disks to commit. */
    FerryVm *vm = ferry_vm_new(&config, NULL, NULL, &a, &error);
    g_assert_no_error(error);
    api_reset(&a);
    ferry_vm_commit_drive(vm, NULL, api_disk, &a);
    g_assert_false(a.replied);          /* never from inside the call */
    g_assert_true(api_wait(&a, replied, NULL, 5000));
    g_assert_error(a.error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_STATE);
    ferry_vm_free(vm);

    /* Run 1: the guest writes; discard through the API, then write again
     * from the shell and end without a decision. */
    vm = api_start(&config, &a, "guest_selftest=blk-rw guest_blkdev=vda guest_mode=shell");
    g_assert_true(api_wait(&a, serial_has, "GUEST-SHELL", BOOT_TIMEOUT_MS));
    g_assert_nonnull(strstr(a.serial->str, "SELFTEST blk-rw ok"));
    FerryVmDriveInfo *d = api_query(vm, &a);
    g_assert_cmpstr(d->drive, ==, "hda");
    g_assert_cmpstr(d->path, ==, base);
    g_assert_cmpstr(d->format, ==, "qcow2");
    g_assert_false(d->readonly);
    g_assert_cmpuint(d->size, ==, 64 << 20);
    g_assert_cmpstr(d->overlay_path, ==, overlay);
    g_assert_cmpuint(d->pending_bytes, ==, 2 << 20);
    api_reset(&a);
    ferry_vm_discard_drive(vm, "hda", api_disk, &a);
    g_assert_true(api_wait(&a, replied, NULL, STEP_TIMEOUT_MS));
    g_assert_no_error(a.error);
    g_assert_cmpuint(api_query(vm, &a)->pending_bytes, ==, 0);
    api_reset(&a);
    ferry_vm_commit_drive(vm, "hdb", api_disk, &a);
    g_assert_true(api_wait(&a, replied, NULL, STEP_TIMEOUT_MS));
    g_assert_error(a.error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID);
    api_type(vm, &a, "sh /selftests/blk-rw\n");
    g_assert_true(api_wait(&a, serial_has_new, "/dev/vda sectors=131072 sha256=", STEP_TIMEOUT_MS));
    g_autofree char *pattern = line_after(a.serial->str + a.mark, "/dev/vda sectors=131072 sha256=");
    g_assert_cmpuint(api_query(vm, &a)->pending_bytes, ==, 2 << 20);
    api_stop(vm, &a);
    g_autofree char *sha1 = sha256_file(base);
    g_assert_cmpstr(sha0, ==, sha1);
    g_assert_true(g_file_test(overlay, G_FILE_TEST_EXISTS));

    g_autoptr(GPtrArray) left = ferry_vm_config_list_leftovers(&config, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(left->len, ==, 1);
    FerryVmLeftover *l = left->pdata[0];
    g_assert_cmpstr(l->name, ==, "hda");
    g_assert_cmpstr(l->overlay_path, ==, overlay);
    g_assert_cmpstr(l->base_path, ==, base);
    g_assert_cmpuint(l->pending_bytes, ==, 2 << 20);
    g_assert_false(l->commit_was_interrupted);

    /* Run 2: starts anyway, and empty; the leftover is set aside and still
     * listed (this run's own overlay is in use, so it is not). */
    vm = api_start(&config, &a, "guest_selftest=hello guest_mode=shell");
    g_assert_true(api_wait(&a, serial_has, "GUEST-SHELL", BOOT_TIMEOUT_MS));
    g_assert_cmpuint(api_query(vm, &a)->pending_bytes, ==, 0);
    g_autoptr(GPtrArray) left2 = ferry_vm_config_list_leftovers(&config, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(left2->len, ==, 1);
    l = left2->pdata[0];
    g_assert_true(g_str_has_prefix(l->name, "hda-"));
    g_assert_cmpstr(l->drive, ==, "hda");
    g_assert_cmpuint(l->pending_bytes, ==, 2 << 20);
    /* Its base is in use (read-only) by this run: no commit now. */
    g_assert_false(ferry_vm_config_commit_leftover(&config, l->name, &error));
    g_assert_nonnull(error);
    g_test_message("commit of a leftover while the base is in use: %s", error->message);
    g_clear_error(&error);
    api_stop(vm, &a);
    g_assert_false(g_file_test(overlay, G_FILE_TEST_EXISTS));     /* empty: removed */

    g_assert_true(ferry_vm_config_commit_leftover(&config, NULL, &error));
    g_assert_no_error(error);
    g_autoptr(GPtrArray) left3 = ferry_vm_config_list_leftovers(&config, &error);
    g_assert_cmpuint(left3->len, ==, 0);
    g_assert_cmpint(qemu_img_check(base), ==, 0);
    g_autoptr(GBytes) view = guest_view(base);
    g_autofree char *start = sha256_bytes(g_bytes_get_data(view, NULL), 1 << 20);
    g_assert_true(g_str_has_prefix(start, pattern));

    /* Run 3: commit while the guest runs, then it reads its data back. */
    vm = api_start(&config, &a, "guest_selftest=blk-rw guest_blkdev=vda guest_mode=shell");
    g_assert_true(api_wait(&a, serial_has, "GUEST-SHELL", BOOT_TIMEOUT_MS));
    g_autofree char *pattern3 = line_after(a.serial->str, "/dev/vda sectors=131072 sha256=");
    api_reset(&a);
    ferry_vm_commit_drive(vm, NULL, api_disk, &a);
    g_assert_true(api_wait(&a, replied, NULL, STEP_TIMEOUT_MS));
    g_assert_no_error(a.error);
    g_assert_cmpuint(api_query(vm, &a)->pending_bytes, ==, 0);
    api_type(vm, &a, "echo 3 >/proc/sys/vm/drop_caches; sh /selftests/blk-read\n");
    g_assert_true(api_wait(&a, serial_has_new, pattern3, STEP_TIMEOUT_MS));
    g_autofree char *read_back = g_strdup(strstr(a.serial->str + a.mark, pattern3));
    read_back[strspn(read_back, "0123456789abcdef")] = '\0';
    api_stop(vm, &a);
    g_assert_cmpint(qemu_img_check(base), ==, 0);
    g_autoptr(GBytes) view3 = guest_view(base);
    g_autofree char *start3 = sha256_bytes(g_bytes_get_data(view3, NULL), 1 << 20);
    g_assert_true(g_str_has_prefix(start3, pattern3));
    g_assert_cmpstr(read_back, ==, start3);     /* what the guest read back after the commit */

    api_reset(&a);
    g_string_free(a.serial, TRUE);
    ferry_vm_config_clear(&config);
}

/* ---- bad images and locks --------------------------------------------------------- */

static void
test_locked(void)
{
    if (!have_qemu_img())
        return;
    g_autofree char *dir = test_dir();
    g_autofree char *img = make_image(dir, "held.qcow2", "qcow2", "16M");
    g_autofree char *sock = g_build_filename(dir, "mon.sock", NULL);
    g_autofree char *mon = g_strdup_printf("unix:%s", sock);
    const char *holder_argv[] = { ferry_test_ferryctl(), "run", "--arch", "riscv64", "-m", "64M",
                                  "--serial", "none", "--hda", img, "--monitor", mon, NULL };
    g_autoptr(GError) error = NULL;
    FerryTestProc *holder = ferry_test_proc_spawn(holder_argv, &error);
    g_assert_no_error(error);
    FerryTestMonitor *m = ferry_test_monitor_connect(sock, 10000);
    g_assert_nonnull(m);
    g_autofree char *info = ferry_test_monitor_cmd(m, "info block", 10000);
    g_assert_nonnull(strstr(info, "(qcow2, rw)"));

    g_autofree char *err = NULL;
    const char *argv[] = { ferry_test_ferryctl(), "run", "--arch", "riscv64", "-m", "64M",
                           "--serial", "none", "--hda", img, NULL };
    g_assert_cmpint(ferry_test_run(argv, NULL, 20000, NULL, &err), ==, 2);
    g_test_message("%s", err);
    g_autofree char *want = g_strdup_printf("Hard disk hda: %s is in use by another program (pid %d",
                                            img, (int) ferry_test_proc_pid(holder));
    g_assert_nonnull(strstr(err, want));
    /* A read-only user is refused too (the holder writes), and snapshot mode. */
    g_autofree char *err2 = NULL, *spec = g_strdup_printf("file=%s,readonly=on", img);
    const char *argv2[] = { ferry_test_ferryctl(), "run", "--arch", "riscv64", "-m", "64M",
                            "--serial", "none", "--drive", spec, "--snapshot", NULL };
    g_assert_cmpint(ferry_test_run(argv2, NULL, 20000, NULL, &err2), ==, 2);
    g_assert_nonnull(strstr(err2, "is in use by another program"));
    /* QEMU's tools see Ferry's lock. */
    g_assert_cmpint(qemu_img(NULL, "info", img, NULL), !=, 0);

    ferry_test_monitor_cmd(m, "quit", 5000);
    ferry_test_monitor_free(m);
    g_assert_cmpint(ferry_test_proc_wait(holder, 10000), ==, 0);
    ferry_test_proc_free(holder);
    g_assert_cmpint(qemu_img(NULL, "info", img, NULL), ==, 0);

    /* While QEMU holds the image, Ferry names it. */
    g_autofree char *qemu = g_find_program_in_path("qemu-system-riscv64");
    if (!qemu) {
        g_test_message("qemu-system-riscv64 not found: QEMU as the holder not tried");
        return;
    }
    g_autofree char *drive = g_strdup_printf("file=%s,format=qcow2,if=none,id=d0", img);
    const char *qargv[] = { qemu, "-M", "virt", "-m", "64M", "-S", "-display", "none", "-serial", "none",
                            "-monitor", "none", "-drive", drive, "-device", "virtio-blk-device,drive=d0", NULL };
    FerryTestProc *q = ferry_test_proc_spawn(qargv, &error);
    g_assert_no_error(error);
    gboolean held = FALSE;
    for (guint i = 0; i < 100 && !held; i++) {
        const char *info_argv[] = { "qemu-img", "info", img, NULL };
        held = ferry_test_run(info_argv, NULL, 10000, NULL, NULL) != 0;
        if (!held)
            g_usleep(100000);
    }
    g_assert_true(held);
    g_autofree char *err3 = NULL;
    g_assert_cmpint(ferry_test_run(argv, NULL, 20000, NULL, &err3), ==, 2);
    g_test_message("%s", err3);
    g_autofree char *want3 = g_strdup_printf("Hard disk hda: %s is in use by another program (pid %d: qemu-system-",
                                             img, (int) ferry_test_proc_pid(q));
    g_assert_nonnull(strstr(err3, want3));
    ferry_test_proc_kill(q, SIGTERM);
    ferry_test_proc_wait(q, 10000);
    ferry_test_proc_free(q);
}

static void
test_corrupt(void)
{
    if (!have_qemu_img())
        return;
    g_autofree char *dir = test_dir();
    g_autofree char *img = make_image(dir, "bad.qcow2", "qcow2", "16M");
    g_autofree char *data = NULL;
    gsize len;
    g_assert_true(g_file_get_contents(img, &data, &len, NULL));
    /* l1_table_offset (header bytes 40..47) far past the end of the file. */
    memcpy(data + 40, "\x00\x00\x7f\x00\x00\x00\x00\x00", 8);
    g_assert_true(g_file_set_contents(img, data, len, NULL));
    g_autofree char *short_img = g_build_filename(dir, "short.qcow2", NULL);
    g_assert_true(g_file_set_contents(short_img, data, 48, NULL));
    g_autofree char *missing = g_build_filename(dir, "missing.qcow2", NULL);

    const char *images[] = { img, short_img, missing };
    const char *words[] = { "L1 table", "", "no such file" };
    for (guint i = 0; i < G_N_ELEMENTS(images); i++) {
        g_autofree char *err = NULL, *spec = g_strdup_printf("file=%s,format=qcow2", images[i]);
        const char *argv[] = { ferry_test_ferryctl(), "run", "--arch", "riscv64", "-m", "64M",
                               "--serial", "none", "--drive", spec, NULL };
        g_assert_cmpint(ferry_test_run(argv, NULL, 20000, NULL, &err), ==, 2);
        g_test_message("%s", err);
        g_autofree char *want = g_strdup_printf("ferryctl: Hard disk hda: Cannot open %s: ", images[i]);
        g_assert_nonnull(strstr(err, want));
        g_assert_nonnull(strstr(err, words[i]));
    }
}

/* kill -9 while the guest writes numbered records, each fsynced before it
 * prints "FLUSHED <seq>": the image passes qemu-img check (leaked clusters
 * at most) and holds every record up to the last one printed. */
static void
test_kill9(void)
{
    g_autofree char *kernel = NULL, *initrd = NULL;
    if (!have_qemu_img() || !guest_files(&kernel, &initrd))
        return;
    guint rounds = g_test_slow() ? 20 : 3;
    g_autofree char *dir = test_dir();
    for (guint round = 0; round < rounds; round++) {
        g_autofree char *name = g_strdup_printf("rec%u.qcow2", round);
        g_autofree char *img = make_image(dir, name, "qcow2", "64M");
        g_autoptr(GPtrArray) argv = guest_argv(kernel, initrd, "guest_selftest=blk-records guest_blkdev=vda");
        add_args(argv, "--hda", img, NULL);
        FerryTestProc *p = spawn_argv(argv);
        guint target = g_test_rand_int_range(5, 300);
        g_autofree char *mark = g_strdup_printf("FLUSHED %u\r\n", target);
        ferry_test_expect(p, mark, BOOT_TIMEOUT_MS);
        ferry_test_proc_kill(p, SIGKILL);
        g_assert_cmpint(ferry_test_proc_wait(p, STEP_TIMEOUT_MS), ==, 128 + SIGKILL);
        const char *out = ferry_test_proc_stdout(p);
        guint last = 0;
        for (const char *s = strstr(out, "FLUSHED "); s; s = strstr(s + 1, "FLUSHED "))
            last = MAX(last, (guint) g_ascii_strtoull(s + 8, NULL, 10));
        ferry_test_proc_free(p);
        g_test_message("round %u: killed after record %u (last printed %u)", round, target, last);

        int rc = qemu_img_check(img);
        g_assert_true(rc == 0 || rc == 3);
        g_autoptr(GBytes) view = guest_view(img);
        gsize len;
        const char *data = g_bytes_get_data(view, &len);
        for (guint seq = 1; seq <= last; seq++) {
            g_autofree char *rec = g_strdup_printf("FERRY-RECORD %u ", seq);
            g_assert_cmpuint((guint64) seq * 4096 + 4096, <=, len);
            if (memcmp(data + (gsize) seq * 4096, rec, strlen(rec)) != 0) {
                g_test_message("record %u missing", seq);
                g_assert_not_reached();
            }
        }
        g_unlink(img);
    }
}

/* In-guest sequential throughput (O_DIRECT, 1 MiB requests), for the record. */
static void
test_speed(void)
{
    g_autofree char *kernel = NULL, *initrd = NULL;
    if (!have_qemu_img() || !guest_files(&kernel, &initrd))
        return;
    g_autofree char *dir = test_dir();
    const char *formats[] = { "raw", "qcow2" };
    for (guint i = 0; i < G_N_ELEMENTS(formats); i++) {
        g_autofree char *name = g_strdup_printf("speed.%s", formats[i]);
        g_autofree char *img = make_image(dir, name, formats[i], "512M");
        g_autoptr(GPtrArray) argv = guest_argv(kernel, initrd,
                                               "guest_selftest=blk-speed guest_blkdev=vda guest_speed_mb=256");
        add_args(argv, "--hda", img, NULL);
        FerryTestProc *p = spawn_argv(argv);
        ferry_test_expect(p, "SELFTEST blk-speed ok ", BOOT_TIMEOUT_MS);
        g_assert_cmpint(ferry_test_proc_wait(p, STEP_TIMEOUT_MS), ==, 0);
        g_autofree char *detail = line_after(ferry_test_proc_stdout(p), "SELFTEST blk-speed ok ");
        g_test_message("%s: guest sequential MB/s: %s", formats[i], detail);
        ferry_test_proc_free(p);
        g_unlink(img);
    }
}

int
main(int argc, char **argv)
{
    /* Private snapshot folders of one-off runs go to TMPDIR: our own, so
     * the tests can count them. Set before GLib caches g_get_tmp_dir(). */
    const char *sys_tmp = g_getenv("TMPDIR") ? g_getenv("TMPDIR") : "/tmp";
    tmp_root = g_build_filename(sys_tmp, "ferry-test-disks-XXXXXX", NULL);
    g_assert_nonnull(g_mkdtemp(tmp_root));
    g_setenv("TMPDIR", tmp_root, TRUE);
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

    g_test_add_func("/disks/order", test_order);
    g_test_add_func("/disks/read-write", test_read_write);
    g_test_add_func("/disks/readonly", test_readonly);
    g_test_add_func("/disks/snapshot/monitor", test_snapshot_monitor);
    g_test_add_func("/disks/snapshot/crash", test_snapshot_crash);
    g_test_add_func("/disks/snapshot/api", test_snapshot_api);
    g_test_add_func("/disks/locked", test_locked);
    g_test_add_func("/disks/corrupt", test_corrupt);
    g_test_add_func("/disks/kill9", test_kill9);
    g_test_add_func("/disks/speed", test_speed);
    int status = g_test_run();
    const char *rm[] = { "rm", "-rf", tmp_root, NULL };
    ferry_test_run(rm, NULL, 60000, NULL, NULL);
    return status;
}

/* test-cli.c: `ferryctl run` refuses bad input with one clear line and exit
 * status 2, and nothing runs (issue: foundation, "Bad input"). */
#include "../lib/ferry-test-proc.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int
run_ctl(char **err, ...)
{
    va_list ap;
    GPtrArray *argv = g_ptr_array_new();
    g_ptr_array_add(argv, (char *) ferry_test_ferryctl());
    va_start(ap, err);
    for (const char *a; (a = va_arg(ap, const char *));)
        g_ptr_array_add(argv, (char *) a);
    va_end(ap);
    g_ptr_array_add(argv, NULL);
    int rc = ferry_test_run((const char *const *) argv->pdata, NULL, 20000, NULL, err);
    g_ptr_array_free(argv, TRUE);
    return rc;
}

static char *
bios_file(gsize size)
{
    char *path = g_build_filename(g_get_tmp_dir(), "bios.bin", NULL);
    g_autofree guint8 *data = g_malloc0(size);
    g_assert_true(g_file_set_contents(path, (char *) data, size, NULL));
    return path;
}

static void
assert_one_line_error(const char *err, const char *needle)
{
    g_assert_nonnull(strstr(err, needle));
    /* One line that names the problem (usage errors add a hint line). */
    g_assert_cmpuint(strlen(err), <, 400);
}

static void
test_no_command(void)
{
    g_autofree char *err = NULL;
    g_assert_cmpint(run_ctl(&err, NULL), ==, 2);
    g_assert_nonnull(strstr(err, "Usage: ferryctl"));
}

static void
test_bad_memory(void)
{
    g_autofree char *bios = bios_file(65536);
    g_autofree char *e1 = NULL, *e2 = NULL, *e3 = NULL;

    g_assert_cmpint(run_ctl(&e1, "run", "--bios", bios, "-m", "0", NULL), ==, 2);
    assert_one_line_error(e1, "invalid memory size '0'");
    g_assert_cmpint(run_ctl(&e2, "run", "--bios", bios, "-m", "lots", NULL), ==, 2);
    assert_one_line_error(e2, "invalid memory size 'lots'");
    g_assert_cmpint(run_ctl(&e3, "run", "--bios", bios, "-m", "64T", NULL), ==, 2);
    assert_one_line_error(e3, "more than this host has");
}

static void
test_bad_smp(void)
{
    g_autofree char *bios = bios_file(65536);
    g_autofree char *e1 = NULL, *e2 = NULL;

    g_assert_cmpint(run_ctl(&e1, "run", "--bios", bios, "--smp", "0", NULL), ==, 2);
    assert_one_line_error(e1, "--smp 0 is out of range");
    g_assert_cmpint(run_ctl(&e2, "run", "--bios", bios, "--smp", "5000", NULL), ==, 2);
    assert_one_line_error(e2, "--smp 5000 is out of range");
}

static void
test_missing_files(void)
{
    g_autofree char *e1 = NULL, *e2 = NULL, *e3 = NULL;

    g_assert_cmpint(run_ctl(&e1, "run", "--kernel", "/nonexistent/bzImage", NULL), ==, 2);
    assert_one_line_error(e1, "Cannot open kernel /nonexistent/bzImage: No such file or directory");
    g_assert_cmpint(run_ctl(&e2, "run", "--bios", "/nonexistent/bios.bin", NULL), ==, 2);
    assert_one_line_error(e2, "Cannot open firmware /nonexistent/bios.bin");
    g_assert_cmpint(run_ctl(&e3, "run", NULL), ==, 2);
    assert_one_line_error(e3, "Nothing to boot");
}

static void
test_bad_options(void)
{
    g_autofree char *e1 = NULL, *e2 = NULL, *e3 = NULL;
    g_autofree char *bios = bios_file(65536);

    g_assert_cmpint(run_ctl(&e1, "run", "--bios", bios, "--serial", "carrier-pigeon", NULL), ==, 2);
    assert_one_line_error(e1, "invalid --serial 'carrier-pigeon'");
    g_assert_cmpint(run_ctl(&e2, "run", "--bios", bios, "--frobnicate", NULL), ==, 2);
    assert_one_line_error(e2, "Unknown option --frobnicate");
    g_assert_cmpint(run_ctl(&e3, "run", "--arch", "vax", "--bios", bios, NULL), ==, 2);
    assert_one_line_error(e3, "unknown architecture 'vax'");
}

static void
test_no_kvm(void)
{
    g_autofree char *bios = bios_file(65536);
    g_autofree char *err = NULL;

    g_assert_cmpint(run_ctl(&err, "run", "--bios", bios, "--kvm-device", "/nonexistent/kvm", NULL), ==, 2);
    assert_one_line_error(err, "KVM is not available on this host");
}

static void
test_kvm_permission(void)
{
    g_autofree char *bios = bios_file(65536);
    g_autofree char *err = NULL;
    g_autofree char *dir = g_build_filename(g_get_tmp_dir(), "kvmperm", NULL);
    g_autofree char *dev = g_build_filename(dir, "kvm", NULL);

    /* A device node the caller may not open: as root, a node root cannot
     * open does not exist, so run ferryctl as "nobody" against /dev/kvm. */
    if (getuid() == 0) {
        if (!g_file_test("/dev/kvm", G_FILE_TEST_EXISTS) || !g_find_program_in_path("setpriv")) {
            g_test_skip("needs /dev/kvm and setpriv to run as another user");
            return;
        }
        g_autofree char *open_dir = g_dir_make_tmp("ferry-perm-XXXXXX", NULL);
        g_autofree char *nbios = g_build_filename(open_dir, "bios.bin", NULL);
        g_autofree guint8 *zeros = g_malloc0(65536);
        g_assert_true(g_file_set_contents(nbios, (char *) zeros, 65536, NULL));
        chmod(open_dir, 0755);
        chmod(nbios, 0644);
        const char *argv[] = { "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                               ferry_test_ferryctl(), "run", "--bios", nbios, NULL };
        int rc = ferry_test_run(argv, NULL, 20000, NULL, &err);
        unlink(nbios);
        rmdir(open_dir);
        if (strstr(err, "Permission denied") && strstr(err, "ferryctl:") == NULL) {
            g_test_skip("the build tree is not readable by 'nobody'");
            return;
        }
        g_assert_cmpint(rc, ==, 2);
    } else {
        if (access("/dev/kvm", R_OK | W_OK) == 0) {
            g_test_skip("this user may open /dev/kvm: nothing to refuse");
            return;
        }
        g_assert_cmpint(run_ctl(&err, "run", "--bios", bios, NULL), ==, 2);
    }
    assert_one_line_error(err, "Add your user to the 'kvm' group");
}

static void
test_bad_bios_size(void)
{
    g_autofree char *bios = bios_file(1000);
    g_autofree char *err = NULL;

    if (ferry_test_kvm_unusable()) {
        g_test_skip(ferry_test_kvm_unusable());
        return;
    }
    g_assert_cmpint(run_ctl(&err, "run", "--bios", bios, NULL), ==, 2);
    assert_one_line_error(err, "must be a non-empty multiple of 4 KiB");
}

static void
test_not_a_kernel(void)
{
    g_autofree char *path = g_build_filename(g_get_tmp_dir(), "notes.txt", NULL);
    g_autofree char *err = NULL;
    g_autofree char *text = g_strnfill(8192, 'x');

    if (ferry_test_kvm_unusable()) {
        g_test_skip(ferry_test_kvm_unusable());
        return;
    }
    g_assert_true(g_file_set_contents(path, text, -1, NULL));
    g_assert_cmpint(run_ctl(&err, "run", "--kernel", path, NULL), ==, 2);
    assert_one_line_error(err, "is not a Linux kernel");
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    g_test_add_func("/cli/no-command", test_no_command);
    g_test_add_func("/cli/run/bad-memory", test_bad_memory);
    g_test_add_func("/cli/run/bad-smp", test_bad_smp);
    g_test_add_func("/cli/run/missing-files", test_missing_files);
    g_test_add_func("/cli/run/bad-options", test_bad_options);
    g_test_add_func("/cli/run/no-kvm", test_no_kvm);
    g_test_add_func("/cli/run/kvm-permission", test_kvm_permission);
    g_test_add_func("/cli/run/bad-bios-size", test_bad_bios_size);
    g_test_add_func("/cli/run/not-a-kernel", test_not_a_kernel);
    return g_test_run();
}

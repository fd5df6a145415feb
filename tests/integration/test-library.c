/* test-library.c: the VM library through `ferryctl` as a user sees it
 * (issue 6): create/list/show/edit/clone/delete, validation messages, libvirt
 * export (virt-xml-validate) and import, two programs editing one VM, the
 * running lock, damaged or foreign library files, and `ferryctl run NAME`
 * booting the test guests from a stored definition. */
#include "../lib/ferry-test-proc.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <sqlite3.h>

#define BOOT_TIMEOUT_MS 180000

static char *
tmp_file(const char *name)
{
    g_mkdir_with_parents(g_get_user_data_dir(), 0700);
    return g_build_filename(g_get_user_data_dir(), name, NULL);
}

static char *
library_path(void)
{
    return tmp_file("library.db");
}

/* Runs ferryctl ARGS... --library <the test's library>; returns the exit status. */
static int
ctl(char **out, char **err, ...)
{
    va_list ap;
    g_autofree char *lib = library_path();
    GPtrArray *argv = g_ptr_array_new();
    g_autofree char *o = NULL, *e = NULL;

    g_ptr_array_add(argv, (char *) ferry_test_ferryctl());
    va_start(ap, err);
    for (const char *a; (a = va_arg(ap, const char *));)
        g_ptr_array_add(argv, (char *) a);
    va_end(ap);
    g_ptr_array_add(argv, "--library");
    g_ptr_array_add(argv, lib);
    g_ptr_array_add(argv, NULL);
    int rc = ferry_test_run((const char *const *) argv->pdata, NULL, 60000, &o, &e);
    g_test_message("ferryctl %s -> %d\n%s%s", (char *) argv->pdata[1], rc, o, e);
    g_ptr_array_free(argv, TRUE);
    if (out)
        *out = g_steal_pointer(&o);
    if (err)
        *err = g_steal_pointer(&e);
    return rc;
}

static void
assert_contains(const char *haystack, const char *needle)
{
    if (!strstr(haystack, needle)) {
        g_test_message("expected to find:\n%s\nin:\n%s", needle, haystack);
        g_assert_not_reached();
    }
}

static char *
make_file(const char *name, gsize size)
{
    char *path = tmp_file(name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(ftruncate(fd, size), ==, 0);
    close(fd);
    return path;
}

static char *
show_value(const char *name, const char *key)
{
    g_autofree char *out = NULL;
    g_assert_cmpint(ctl(&out, NULL, "show", name, NULL), ==, 0);
    g_autofree char *prefix = g_strdup_printf("%s:", key);
    g_auto(GStrv) lines = g_strsplit(out, "\n", -1);
    for (guint i = 0; lines[i]; i++)
        if (g_str_has_prefix(lines[i], prefix))
            return g_strdup(g_strstrip(lines[i] + strlen(prefix)));
    return NULL;
}

static char *
vm_folder(const char *name)
{
    return show_value(name, "folder");
}

/* ---- create, list, show, edit, clone, delete -------------------------------------- */

static void
test_crud(void)
{
    g_autofree char *user_img = make_file("user.img", 1 << 20);
    g_autofree char *out = NULL, *err = NULL;

    g_assert_cmpint(ctl(&out, NULL, "list", NULL), ==, 0);
    assert_contains(out, "No VMs in ");
    g_clear_pointer(&out, g_free);

    g_assert_cmpint(ctl(&out, &err, "create", "web", "-m", "512M", "--smp", "2", "--disk", user_img,
                        "--new-disk", "16M", "--notes", "front end", "--os", "debian12", NULL), ==, 0);
    assert_contains(out, "Created VM 'web' (x86_64, 512M, uuid ");
    g_autofree char *folder = vm_folder("web");
    g_autofree char *new_img = g_build_filename(folder, "disk-0.img", NULL);
    g_autofree char *created_line = g_strdup_printf("Created the disk image %s.", new_img);
    assert_contains(out, created_line);
    g_assert_true(g_str_has_prefix(folder, g_get_user_data_dir()));
    struct stat st;
    g_assert_cmpint(stat(new_img, &st), ==, 0);
    g_assert_cmpint(st.st_size, ==, 16 << 20);
    g_assert_cmpint(st.st_blocks, <, 64);         /* sparse */
    g_clear_pointer(&out, g_free);

    g_assert_cmpint(ctl(&out, NULL, "list", NULL), ==, 0);
    g_assert_cmpstr(out, ==, "NAME  ARCH     MEMORY  CPUS  STATE\n"
                             "web   x86_64   512M    2     stopped\n");
    g_clear_pointer(&out, g_free);

    g_assert_cmpint(ctl(&out, NULL, "show", "web", NULL), ==, 0);
    assert_contains(out, "memory:    512M\n");
    assert_contains(out, "cpus:      2\n");
    assert_contains(out, "os:        debian12\n");
    g_autofree char *disk0 = g_strdup_printf("disk0:     %s (raw)\n", user_img);
    g_autofree char *disk1 = g_strdup_printf("disk1:     %s (raw, created by Ferry)\n", new_img);
    assert_contains(out, disk0);
    assert_contains(out, disk1);
    assert_contains(out, "notes:     front end\n");
    assert_contains(out, "last run:  never\n");
    assert_contains(out, "revision:  1\n");
    assert_contains(out, "state:     stopped\n");
    g_clear_pointer(&out, g_free);

    g_assert_cmpint(ctl(&out, NULL, "list", "--json", NULL), ==, 0);
    assert_contains(out, "\"name\": \"web\"");
    assert_contains(out, "\"memory_bytes\": 536870912");
    assert_contains(out, "\"state\": \"stopped\"");
    assert_contains(out, "\"running_in\": null");
    assert_contains(out, "\"kind\": \"disk\", \"slot\": 1");
    g_assert_true(g_str_has_prefix(out, "[\n  {"));
    g_assert_true(g_str_has_suffix(out, "}\n]\n"));
    g_autofree char *python = g_find_program_in_path("python3");
    if (python) {
        const char *check[] = { python, "-c", "import json, sys; v = json.load(sys.stdin); assert v[0]['cpus'] == 2",
                                NULL };
        g_assert_cmpint(ferry_test_run(check, out, 20000, NULL, NULL), ==, 0);
    }
    g_clear_pointer(&out, g_free);

    /* edit: several keys at once; the revision counts saves */
    g_assert_cmpint(ctl(NULL, NULL, "edit", "web", "memory=1G", "cpus=4", "notes=two words", "sound=on", NULL), ==, 0);
    g_autofree char *mem = show_value("web", "memory"), *cpus = show_value("web", "cpus");
    g_autofree char *notes = show_value("web", "notes"), *sound = show_value("web", "sound");
    g_autofree char *rev = show_value("web", "revision");
    g_assert_cmpstr(mem, ==, "1G");
    g_assert_cmpstr(cpus, ==, "4");
    g_assert_cmpstr(notes, ==, "two words");
    g_assert_cmpstr(sound, ==, "on");
    g_assert_cmpstr(rev, ==, "2");

    /* bad edits change nothing */
    g_assert_cmpint(ctl(NULL, &err, "edit", "web", "colour=blue", NULL), ==, 2);
    assert_contains(err, "ferryctl edit: unknown setting 'colour'");
    g_clear_pointer(&err, g_free);
    g_assert_cmpint(ctl(NULL, &err, "edit", "web", "memory", NULL), ==, 2);
    assert_contains(err, "'memory' is not KEY=VALUE (e.g. memory=2G)");
    g_clear_pointer(&err, g_free);
    g_assert_cmpint(ctl(NULL, &err, "edit", "nosuch", "cpus=1", NULL), ==, 1);
    assert_contains(err, "There is no VM named 'nosuch' in the library");
    g_clear_pointer(&err, g_free);

    /* rename */
    g_assert_cmpint(ctl(NULL, NULL, "edit", "web", "name=site", NULL), ==, 0);
    g_assert_cmpint(ctl(NULL, &err, "show", "web", NULL), ==, 1);
    g_clear_pointer(&err, g_free);

    /* clone: images Ferry made are copied, the user's are shared */
    g_assert_cmpint(ctl(&out, &err, "clone", "site", "copy", NULL), ==, 0);
    assert_contains(out, "Cloned 'site' as 'copy'");
    g_autofree char *shares = g_strdup_printf("'copy' shares the image %s with 'site'", user_img);
    assert_contains(err, shares);
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    g_autofree char *copy_folder = vm_folder("copy");
    g_assert_cmpstr(copy_folder, !=, folder);
    g_autofree char *copy_img = g_build_filename(copy_folder, "disk-0.img", NULL);
    g_autofree char *copy_disk1 = show_value("copy", "disk1");
    g_autofree char *want_disk1 = g_strdup_printf("%s (raw, created by Ferry)", copy_img);
    g_assert_cmpstr(copy_disk1, ==, want_disk1);
    g_assert_true(g_file_test(copy_img, G_FILE_TEST_IS_REGULAR));
    g_autofree char *copy_mem = show_value("copy", "memory");
    g_assert_cmpstr(copy_mem, ==, "1G");

    /* delete: no terminal, no --yes: refused */
    g_assert_cmpint(ctl(NULL, &err, "delete", "site", NULL), ==, 2);
    assert_contains(err, "not deleting VM 'site' without asking, and there is no terminal to ask on: add --yes.");
    g_clear_pointer(&err, g_free);
    g_assert_true(g_file_test(new_img, G_FILE_TEST_EXISTS));

    /* --yes: Ferry's image and folder go, the user's image stays */
    g_assert_cmpint(ctl(&out, NULL, "delete", "site", "--yes", NULL), ==, 0);
    assert_contains(out, "Deleted VM 'site'.");
    g_autofree char *deleted_line = g_strdup_printf("Deleted the image %s.", new_img);
    assert_contains(out, deleted_line);
    g_clear_pointer(&out, g_free);
    g_assert_false(g_file_test(new_img, G_FILE_TEST_EXISTS));
    g_assert_false(g_file_test(folder, G_FILE_TEST_EXISTS));
    g_assert_true(g_file_test(user_img, G_FILE_TEST_EXISTS));

    /* --keep-disks keeps even Ferry's image */
    g_assert_cmpint(ctl(&out, NULL, "delete", "copy", "--yes", "--keep-disks", NULL), ==, 0);
    g_autofree char *kept_line = g_strdup_printf("Kept the image %s.", copy_img);
    assert_contains(out, kept_line);
    g_clear_pointer(&out, g_free);
    g_assert_true(g_file_test(copy_img, G_FILE_TEST_EXISTS));
    g_assert_true(g_file_test(user_img, G_FILE_TEST_EXISTS));

    g_assert_cmpint(ctl(&out, NULL, "list", NULL), ==, 0);
    assert_contains(out, "No VMs in ");
}

/* Runs argv on a new pseudo-terminal, answers the [y/N] question, returns the exit status. */
static int
run_on_pty(const char *const *argv, const char *answer, char **output)
{
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    g_assert_cmpint(master, >=, 0);
    g_assert_cmpint(grantpt(master), ==, 0);
    g_assert_cmpint(unlockpt(master), ==, 0);
    g_autofree char *slave = g_strdup(ptsname(master));
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        int s = open(slave, O_RDWR);
        dup2(s, 0);
        dup2(s, 1);
        dup2(s, 2);
        execv(argv[0], (char **) argv);
        _exit(127);
    }
    GString *seen = g_string_new(NULL);
    gboolean answered = FALSE;
    gint64 deadline = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
    for (;;) {
        struct pollfd pfd = { master, POLLIN, 0 };
        if (g_get_monotonic_time() > deadline)
            break;
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        char buf[512];
        ssize_t n = read(master, buf, sizeof(buf));
        if (n <= 0)
            break;          /* EIO: the child closed the terminal */
        g_string_append_len(seen, buf, n);
        if (!answered && strstr(seen->str, "[y/N] ")) {
            g_assert_cmpint(write(master, answer, strlen(answer)), ==, (ssize_t) strlen(answer));
            answered = TRUE;
        }
    }
    int status;
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    close(master);
    *output = g_string_free(seen, FALSE);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void
test_delete_asks(void)
{
    g_autofree char *lib = library_path();
    g_autofree char *out = NULL;
    g_assert_cmpint(ctl(NULL, NULL, "create", "asked", "--new-disk", "1M", NULL), ==, 0);
    g_autofree char *folder = vm_folder("asked");
    const char *argv[] = { ferry_test_ferryctl(), "delete", "asked", "--library", lib, NULL };

    g_assert_cmpint(run_on_pty(argv, "n\n", &out), ==, 1);
    assert_contains(out, "Delete VM 'asked'? The images Ferry created for it go too:");
    assert_contains(out, "Kept VM 'asked'.");
    g_clear_pointer(&out, g_free);
    g_assert_cmpint(ctl(NULL, NULL, "show", "asked", NULL), ==, 0);

    g_assert_cmpint(run_on_pty(argv, "y\n", &out), ==, 0);
    assert_contains(out, "Deleted VM 'asked'.");
    g_assert_cmpint(ctl(NULL, NULL, "show", "asked", NULL), ==, 1);
    g_assert_false(g_file_test(folder, G_FILE_TEST_EXISTS));
}

/* ---- validation ------------------------------------------------------------------------ */

static void
expect_refused(const char *message, ...)
{
    va_list ap;
    g_autofree char *lib = library_path();
    GPtrArray *argv = g_ptr_array_new();
    g_autofree char *err = NULL;

    g_ptr_array_add(argv, (char *) ferry_test_ferryctl());
    va_start(ap, message);
    for (const char *a; (a = va_arg(ap, const char *));)
        g_ptr_array_add(argv, (char *) a);
    va_end(ap);
    g_ptr_array_add(argv, "--library");
    g_ptr_array_add(argv, lib);
    g_ptr_array_add(argv, NULL);
    int rc = ferry_test_run((const char *const *) argv->pdata, NULL, 30000, NULL, &err);
    g_ptr_array_free(argv, TRUE);
    g_test_message("%s", err);
    g_assert_cmpint(rc, ==, 1);
    assert_contains(err, message);
    /* one message, not a backtrace */
    g_assert_cmpuint(strlen(err), <, 400);
}

static void
test_validation(void)
{
    g_autofree char *a = make_file("a.img", 65536), *b = make_file("b.img", 65536), *c = make_file("c.img", 65536);
    g_autofree char *d = make_file("d.img", 65536), *e = make_file("e.img", 65536);
    g_autofree char *missing = tmp_file("missing.img");
    g_autofree char *msg = NULL;

    g_assert_cmpint(ctl(NULL, NULL, "create", "taken", "-m", "64M", NULL), ==, 0);
    expect_refused("ferryctl create: There is already a VM named 'taken' in the library: choose another name, or "
                   "rename or delete that VM first.", "create", "TAKEN", NULL);
    expect_refused("ferryctl create: VM 'big': 65536G of memory is more than this host has (", "create", "big",
                   "-m", "64T", NULL);
    expect_refused("MiB): choose at most ", "create", "big", "-m", "64T", NULL);
    expect_refused("ferryctl edit: VM 'taken': 0 vCPUs is out of range: choose 1 to 1024.", "edit", "taken",
                   "cpus=0", NULL);
    expect_refused("ferryctl edit: VM 'taken': 2000 vCPUs is out of range: choose 1 to 1024.", "edit", "taken",
                   "cpus=2000", NULL);
    msg = g_strdup_printf("ferryctl create: VM 'five' already has 4 hard disks, the most a VM can have: a fifth "
                          "hard disk (%s) does not fit. Remove one first (disk3= empties slot 3).", e);
    expect_refused(msg, "create", "five", "--disk", a, "--disk", b, "--disk", c, "--disk", d, "--disk", e, NULL);
    g_clear_pointer(&msg, g_free);
    g_assert_cmpint(ctl(NULL, NULL, "edit", "taken", "disk=" , NULL), ==, 2);
    g_autofree char *disk_a = g_strdup_printf("disk=%s", a), *disk_e = g_strdup_printf("disk=%s", e);
    g_assert_cmpint(ctl(NULL, NULL, "edit", "taken", disk_a, disk_a, disk_a, disk_a, NULL), ==, 0);
    expect_refused("ferryctl edit: VM 'taken' already has 4 hard disks, the most a VM can have: a fifth hard disk",
                   "edit", "taken", disk_e, NULL);
    expect_refused("ferryctl edit: there is no disk4: a VM has at most 4 hard disks, disk0 to disk3", "edit",
                   "taken", "disk4=x", NULL);
    msg = g_strdup_printf("ferryctl create: VM 'floppies' already has 2 floppies, the most a VM can have: a third "
                          "floppy (%s) does not fit. Remove one first (floppy1= empties slot 1).", c);
    expect_refused(msg, "create", "floppies", "--floppy", a, "--floppy", b, "--floppy", c, NULL);
    g_clear_pointer(&msg, g_free);
    msg = g_strdup_printf("ferryctl create: VM 'rv' is a riscv64 VM, which has no floppy controller: use a hard "
                          "disk (or a CD-ROM) for %s, or make the VM x86_64.", a);
    expect_refused(msg, "create", "rv", "--arch", "riscv64", "--floppy", a, NULL);
    g_clear_pointer(&msg, g_free);
    /* and when the floppy was there before the architecture changed */
    g_autofree char *floppy_a = g_strdup_printf("floppy=%s", a);
    g_assert_cmpint(ctl(NULL, NULL, "edit", "taken", floppy_a, NULL), ==, 0);
    msg = g_strdup_printf("ferryctl edit: VM 'taken' is a riscv64 VM, which has no floppy controller: remove "
                          "floppy0 (%s), or make the VM x86_64.", a);
    expect_refused(msg, "edit", "taken", "arch=riscv64", NULL);
    g_clear_pointer(&msg, g_free);
    msg = g_strdup_printf("ferryctl create: VM 'lost': the disk image %s does not exist: create it (ferryctl img "
                          "create) or correct the path.", missing);
    expect_refused(msg, "create", "lost", "--disk", missing, NULL);
    g_clear_pointer(&msg, g_free);
    msg = g_strdup_printf("ferryctl create: VM 'nokernel': the kernel %s does not exist: correct the path.", missing);
    expect_refused(msg, "create", "nokernel", "--kernel", missing, NULL);
    g_clear_pointer(&msg, g_free);
    expect_refused("x86_64 VMs run on KVM only: choose the accelerator kvm (or default).", "edit", "taken",
                   "accel=soft", NULL);

    /* None of the refused VMs were stored, and nothing was half-changed. */
    g_autofree char *out = NULL;
    g_assert_cmpint(ctl(&out, NULL, "list", NULL), ==, 0);
    g_assert_cmpstr(out, ==, "NAME   ARCH     MEMORY  CPUS  STATE\n"
                             "taken  x86_64   64M     1     stopped\n");
    g_autofree char *rev = show_value("taken", "revision");
    g_assert_cmpstr(rev, ==, "3");
}

/* ---- libvirt ---------------------------------------------------------------------------- */

static gboolean
libvirt_valid(const char *file)
{
    g_autofree char *tool = g_find_program_in_path("virt-xml-validate");
    if (!tool)
        return FALSE;
    const char *argv[] = { tool, file, "domain", NULL };
    g_autofree char *out = NULL, *err = NULL;
    int rc = ferry_test_run(argv, NULL, 60000, &out, &err);
    if (rc != 0)
        g_test_message("virt-xml-validate %s: %s%s", file, out, err);
    g_assert_cmpint(rc, ==, 0);
    g_autofree char *both = g_strconcat(out, err, NULL);
    assert_contains(both, "validates");
    return TRUE;
}

static void
test_libvirt_round_trip(gconstpointer data)
{
    const char *arch = data;
    gboolean riscv = !strcmp(arch, "riscv64");
    g_autofree char *kernel = make_file("vmlinuz", 4096), *initrd = make_file("initrd.img", 4096);
    g_autofree char *fw = make_file("firmware.bin", 65536);
    g_autofree char *root = make_file("root disk.img", 1 << 20), *data_img = make_file("data.img", 1 << 20);
    g_autofree char *fd = make_file("dos.img", 1474560), *iso = make_file("install.iso", 1 << 20);
    g_autofree char *xml1 = tmp_file("export1.xml"), *xml2 = tmp_file("export2.xml");
    g_autofree char *lib2 = tmp_file("other.db");
    g_autofree char *out = NULL, *err = NULL;

    /* qcow2 magic: the format is found, stored and exported */
    g_assert_true(g_file_set_contents(data_img, "QFI\xfb\0\0\0\3", 8, NULL));
    g_assert_cmpint(ctl(NULL, NULL, "create", "Mover & <Shaker>", "--arch", arch, "-m", "768M", "--smp", "3",
                        "--kernel", kernel, "--initrd", initrd, "--append", "console=ttyS0 quiet msg='hi & bye'",
                        "--disk", root, "--disk", data_img, "--cdrom", iso, "--notes", "moves \"to\" <libvirt>",
                        "--os", "debian12", "--usb", "--sound", "--snapshot", NULL), ==, 0);
    if (!riscv) {
        g_autofree char *floppy = g_strdup_printf("floppy=%s", fd), *bios = g_strdup_printf("firmware=%s", fw);
        g_assert_cmpint(ctl(NULL, NULL, "edit", "Mover & <Shaker>", floppy, bios, "accel=kvm", NULL), ==, 0);
    }
    g_assert_cmpint(ctl(NULL, NULL, "export", "Mover & <Shaker>", "--libvirt", "-o", xml1, NULL), ==, 0);
    g_autofree char *text1 = NULL;
    g_assert_true(g_file_get_contents(xml1, &text1, NULL, NULL));
    g_test_message("%s", text1);
    assert_contains(text1, riscv ? "<domain type='qemu'>" : "<domain type='kvm'>");
    assert_contains(text1, "<name>Mover &amp; &lt;Shaker&gt;</name>");
    assert_contains(text1, "<memory unit='KiB'>786432</memory>");
    assert_contains(text1, "<vcpu>3</vcpu>");
    assert_contains(text1, riscv ? "<type arch='riscv64' machine='virt'>hvm</type>"
                                 : "<type arch='x86_64' machine='pc'>hvm</type>");
    assert_contains(text1, "<cmdline>console=ttyS0 quiet msg=&apos;hi &amp; bye&apos;</cmdline>");
    assert_contains(text1, "<target dev='vda' bus='virtio'/>");
    assert_contains(text1, "<driver name='qemu' type='qcow2'/>");
    assert_contains(text1, "<serial type='pty'>");
    /* stdout works as well as -o */
    g_assert_cmpint(ctl(&out, NULL, "export", "Mover & <Shaker>", "--libvirt", NULL), ==, 0);
    g_assert_cmpstr(out, ==, text1);
    g_clear_pointer(&out, g_free);
    g_assert_cmpint(ctl(NULL, &err, "export", "Mover & <Shaker>", NULL), ==, 2);
    assert_contains(err, "choose a format: --libvirt");
    g_clear_pointer(&err, g_free);

    gboolean validated = libvirt_valid(xml1);

    /* Import into another library, export again: the same XML. */
    const char *imp[] = { ferry_test_ferryctl(), "import", xml1, "--library", lib2, NULL };
    g_assert_cmpint(ferry_test_run(imp, NULL, 30000, &out, &err), ==, 0);
    assert_contains(out, "Imported VM 'Mover & <Shaker>' from ");
    g_assert_cmpstr(err, ==, "");
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    const char *exp[] = { ferry_test_ferryctl(), "export", "Mover & <Shaker>", "--libvirt", "--library", lib2,
                          "-o", xml2, NULL };
    g_assert_cmpint(ferry_test_run(exp, NULL, 30000, NULL, NULL), ==, 0);
    g_autofree char *text2 = NULL;
    g_assert_true(g_file_get_contents(xml2, &text2, NULL, NULL));
    g_assert_cmpstr(text2, ==, text1);

    /* Importing it into the same library: the name is taken; with --name, a new uuid. */
    g_assert_cmpint(ctl(NULL, &err, "import", xml1, NULL), ==, 1);
    assert_contains(err, "There is already a VM named 'Mover & <Shaker>'");
    g_clear_pointer(&err, g_free);
    g_assert_cmpint(ctl(&out, &err, "import", xml1, "--name", "twin", NULL), ==, 0);
    assert_contains(err, "gets a new one");
    g_autofree char *u1 = show_value("Mover & <Shaker>", "uuid"), *u2 = show_value("twin", "uuid");
    g_assert_cmpstr(u1, !=, u2);

    if (!validated)
        g_test_skip("virt-xml-validate not installed (Debian: libvirt-clients): the libvirt schema check was "
                    "skipped; the round trip passed");
}

static void
test_libvirt_import_foreign(void)
{
    g_autofree char *src = g_build_filename(g_getenv("FERRY_SOURCE_ROOT"), "tests", "fixtures", "store",
                                            "virt-manager-debian12.xml", NULL);
    g_autofree char *disk = make_file("debian12.qcow2", 1 << 20), *iso = make_file("debian-12.iso", 1 << 20);
    g_autofree char *text = NULL, *xml = tmp_file("debian12.xml");
    g_autofree char *out = NULL, *err = NULL;

    g_assert_true(g_file_get_contents(src, &text, NULL, NULL));
    g_autoptr(GString) s = g_string_new(text);
    g_string_replace(s, "@DISK@", disk, 0);
    g_string_replace(s, "@ISO@", iso, 0);
    g_assert_true(g_file_set_contents(xml, s->str, -1, NULL));

    g_assert_cmpint(ctl(&out, &err, "import", xml, NULL), ==, 0);
    assert_contains(out, "Imported VM 'debian12'");
    assert_contains(err, "network interface of type 'bridge' imported as user-mode networking");
    assert_contains(err, "vnc display imported as SPICE");
    assert_contains(err, "a disk of source type 'network' (vdb) was skipped");
    g_autofree char *mem = show_value("debian12", "memory"), *cpus = show_value("debian12", "cpus");
    g_autofree char *os = show_value("debian12", "os"), *uuid = show_value("debian12", "uuid");
    g_autofree char *d0 = show_value("debian12", "disk0"), *cd = show_value("debian12", "cdrom");
    g_autofree char *usb = show_value("debian12", "usb"), *net = show_value("debian12", "network");
    g_assert_cmpstr(mem, ==, "2G");
    g_assert_cmpstr(cpus, ==, "2");
    g_assert_cmpstr(os, ==, "http://debian.org/debian/12");
    g_assert_cmpstr(uuid, ==, "4d2c8a9e-7b1f-4e3a-9c5d-6f7a8b9c0d1e");
    g_autofree char *want_d0 = g_strdup_printf("%s (qcow2)", disk), *want_cd = g_strdup_printf("%s (raw, read-only)", iso);
    g_assert_cmpstr(d0, ==, want_d0);
    g_assert_cmpstr(cd, ==, want_cd);
    g_assert_cmpstr(usb, ==, "on");
    g_assert_cmpstr(net, ==, "user");

    /* What cannot be imported says why. */
    g_autofree char *arm = tmp_file("arm.xml"), *junk = tmp_file("junk.xml"), *gone = tmp_file("gone.xml");
    g_assert_true(g_file_set_contents(arm, "<domain type='kvm'><name>pi</name><memory>1024</memory>"
                                           "<os><type arch='aarch64'>hvm</type></os></domain>", -1, NULL));
    g_assert_true(g_file_set_contents(junk, "<domain><name>x</name>", -1, NULL));
    g_assert_true(g_file_set_contents(gone, "<domain type='kvm'><name>gone</name><memory unit='MiB'>256</memory>"
                                            "<devices><disk type='file' device='disk'><source file='/nonexistent/"
                                            "gone.img'/><target dev='vda' bus='virtio'/></disk></devices></domain>",
                                      -1, NULL));
    g_clear_pointer(&err, g_free);
    g_assert_cmpint(ctl(NULL, &err, "import", arm, NULL), ==, 1);
    assert_contains(err, "describes a aarch64 VM: Ferry runs x86_64 and riscv64 VMs only.");
    g_clear_pointer(&err, g_free);
    g_assert_cmpint(ctl(NULL, &err, "import", junk, NULL), ==, 1);
    assert_contains(err, "is not well-formed XML");
    g_clear_pointer(&err, g_free);
    g_assert_cmpint(ctl(NULL, &err, "import", gone, NULL), ==, 1);
    assert_contains(err, "VM 'gone': the disk image /nonexistent/gone.img does not exist");
}

/* ---- two programs, one VM ------------------------------------------------------------------ */

/* The child plays the GTK app: it reads the VM, waits (the user is in a
 * dialog), then saves its change. */
static int
editor_child(const char *library, const char *name)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(FerryStore) store = ferry_store_open(library, &error);
    g_autoptr(FerryVmRecord) vm = store ? ferry_store_get_vm(store, name, &error) : NULL;
    char line[16];

    if (!vm) {
        printf("FAILED %s\n", error->message);
        return 1;
    }
    printf("READ revision %" G_GINT64_FORMAT "\n", vm->revision);
    fflush(stdout);
    if (!fgets(line, sizeof(line), stdin))
        return 1;
    vm->memory_bytes = 3ULL << 30;
    if (!ferry_store_save_vm(store, vm, &error)) {
        printf("REFUSED %d %s\n", error->code, error->message);
        return 3;
    }
    printf("SAVED\n");
    return 0;
}

static void
test_two_programs(void)
{
    g_autofree char *lib = library_path();
    g_autofree char *self = g_file_read_link("/proc/self/exe", NULL);
    g_autoptr(GError) error = NULL;

    g_assert_cmpint(ctl(NULL, NULL, "create", "shared", "-m", "256M", NULL), ==, 0);
    const char *argv[] = { self, "--editor-child", lib, "shared", NULL };
    FerryTestProc *app = ferry_test_proc_spawn(argv, &error);
    g_assert_no_error(error);
    g_assert_true(ferry_test_proc_expect(app, "READ revision 1", 10000));

    /* ferryctl edits while the "app" holds its copy... */
    g_assert_cmpint(ctl(NULL, NULL, "edit", "shared", "cpus=3", NULL), ==, 0);
    /* ...so the app's save is refused, not silently undoing the edit. */
    ferry_test_proc_write(app, "save\n");
    g_assert_cmpint(ferry_test_proc_wait(app, 10000), ==, 3);
    g_autofree char *want = g_strdup_printf("REFUSED %d VM 'shared' was changed by another program (Ferry or "
                                            "ferryctl) after this copy of it was read (revision 1, now 2): it was "
                                            "not saved. Reload the VM and make your change again.",
                                            FERRY_STORE_ERROR_CONFLICT);
    assert_contains(ferry_test_proc_stdout(app), want);
    ferry_test_proc_free(app);
    g_autofree char *cpus = show_value("shared", "cpus"), *mem = show_value("shared", "memory");
    g_assert_cmpstr(cpus, ==, "3");
    g_assert_cmpstr(mem, ==, "256M");

    /* Reloaded, the app's change goes through. */
    app = ferry_test_proc_spawn(argv, &error);
    g_assert_true(ferry_test_proc_expect(app, "READ revision 2", 10000));
    ferry_test_proc_write(app, "save\n");
    g_assert_cmpint(ferry_test_proc_wait(app, 10000), ==, 0);
    ferry_test_proc_free(app);
    g_autofree char *mem2 = show_value("shared", "memory"), *cpus2 = show_value("shared", "cpus");
    g_assert_cmpstr(mem2, ==, "3G");
    g_assert_cmpstr(cpus2, ==, "3");
}

/* ---- the running lock --------------------------------------------------------------------------- */

static FerryTestProc *
spawn_run(const char *name)
{
    g_autofree char *lib = library_path();
    const char *argv[] = { ferry_test_ferryctl(), "run", name, "--library", lib, NULL };
    g_autoptr(GError) error = NULL;
    FerryTestProc *p = ferry_test_proc_spawn(argv, &error);
    g_assert_no_error(error);
    return p;
}

static void
expect_output(FerryTestProc *p, const char *text, guint ms)
{
    if (!ferry_test_proc_expect(p, text, ms)) {
        g_test_message("waiting for '%s'; stdout so far:\n%s\nstderr:\n%s", text, ferry_test_proc_stdout(p),
                       ferry_test_proc_stderr(p));
        g_assert_not_reached();
    }
}

static void
test_running_lock(void)
{
    g_autofree char *out = NULL, *err = NULL;

    /* riscv64 without a kernel runs Debian's OpenSBI and stays up: enough to hold the lock. */
    g_assert_cmpint(ctl(NULL, NULL, "create", "firmware-only", "--arch", "riscv64", "-m", "64M", NULL), ==, 0);
    FerryTestProc *first = spawn_run("firmware-only");
    expect_output(first, "OpenSBI v", 30000);
    GPid pid = ferry_test_proc_pid(first);
    g_autofree char *running = g_strdup_printf("running in ferryctl (pid %d)", (int) pid);

    g_assert_cmpint(ctl(&out, NULL, "list", NULL), ==, 0);
    g_autofree char *row = g_strdup_printf("firmware-only  riscv64  64M     1     %s\n", running);
    assert_contains(out, row);
    g_clear_pointer(&out, g_free);
    g_assert_cmpint(ctl(&out, NULL, "list", "--json", NULL), ==, 0);
    g_autofree char *json = g_strdup_printf("\"running_in\": {\"program\": \"ferryctl\", \"pid\": %d}", (int) pid);
    assert_contains(out, json);
    g_clear_pointer(&out, g_free);
    g_autofree char *state = show_value("firmware-only", "state");
    g_assert_cmpstr(state, ==, running);

    /* Not a second time, from another process. */
    g_autofree char *refusal = g_strdup_printf("ferryctl run: VM 'firmware-only' is already running in ferryctl "
                                               "(pid %d): a VM runs in one program at a time. Use it there, or "
                                               "stop it there first.", (int) pid);
    g_assert_cmpint(ctl(NULL, &err, "run", "firmware-only", NULL), ==, 2);
    assert_contains(err, refusal);
    g_clear_pointer(&err, g_free);
    g_assert_cmpint(ctl(NULL, &err, "delete", "firmware-only", "--yes", NULL), ==, 1);
    assert_contains(err, "cannot delete a running VM");
    g_clear_pointer(&err, g_free);
    /* Editing is fine; it applies at the next start. */
    g_assert_cmpint(ctl(NULL, &err, "edit", "firmware-only", "notes=busy", NULL), ==, 0);
    assert_contains(err, "the changes take effect when it next starts");
    g_clear_pointer(&err, g_free);

    /* kill -9: the lock dies with the process, no stale "running". */
    ferry_test_proc_kill(first, SIGKILL);
    g_assert_cmpint(ferry_test_proc_wait(first, 10000), ==, 128 + SIGKILL);
    ferry_test_proc_free(first);
    g_assert_cmpint(ctl(&out, NULL, "list", NULL), ==, 0);
    assert_contains(out, "firmware-only  riscv64  64M     1     stopped\n");
    g_clear_pointer(&out, g_free);

    /* It starts again; a clean stop frees the lock as well. */
    FerryTestProc *second = spawn_run("firmware-only");
    expect_output(second, "OpenSBI v", 30000);
    ferry_test_proc_kill(second, SIGTERM);
    g_assert_cmpint(ferry_test_proc_wait(second, 10000), ==, 128 + SIGTERM);
    ferry_test_proc_free(second);
    g_autofree char *state2 = show_value("firmware-only", "state");
    g_assert_cmpstr(state2, ==, "stopped");
    g_autofree char *last = show_value("firmware-only", "last run");
    g_assert_cmpstr(last, !=, "never");
}

/* ---- library files that are not usable ------------------------------------------------------------ */

static char *
checksum(const char *path)
{
    g_autofree char *data = NULL;
    gsize len;
    g_assert_true(g_file_get_contents(path, &data, &len, NULL));
    return g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *) data, len);
}

static void
expect_bad_library(const char *path, const char *message)
{
    g_autofree char *before = checksum(path);
    g_autofree char *err = NULL;
    const char *argv[] = { ferry_test_ferryctl(), "list", "--library", path, NULL };
    const char *create[] = { ferry_test_ferryctl(), "create", "x", "--library", path, NULL };

    g_assert_cmpint(ferry_test_run(argv, NULL, 20000, NULL, &err), ==, 1);
    g_test_message("%s", err);
    g_autofree char *named = g_strdup_printf("ferryctl list: %s", message);
    assert_contains(err, path);
    assert_contains(err, message);
    assert_contains(err, "choose another file with --library or FERRY_LIBRARY.");
    g_clear_pointer(&err, g_free);
    g_assert_cmpint(ferry_test_run(create, NULL, 20000, NULL, &err), ==, 1);
    g_autofree char *after = checksum(path);
    g_assert_cmpstr(before, ==, after);
}

static void
test_bad_library_files(void)
{
    g_autofree char *random = tmp_file("random.db"), *text = tmp_file("text.db"), *foreign = tmp_file("foreign.db");
    g_autofree char *newer = tmp_file("newer.db");
    guint8 junk[20000];
    sqlite3 *db = NULL;

    for (gsize i = 0; i < sizeof(junk); i++)
        junk[i] = g_random_int_range(0, 256);
    g_assert_true(g_file_set_contents(random, (char *) junk, sizeof(junk), NULL));
    expect_bad_library(random, "is not a Ferry VM library: it is not an SQLite database (damaged, or another "
                               "program's file). Ferry left the file as it is");

    g_assert_true(g_file_set_contents(text, "[General]\nname=not a database\n", -1, NULL));
    expect_bad_library(text, "is not a Ferry VM library: it is not an SQLite database");

    g_assert_cmpint(sqlite3_open(foreign, &db), ==, SQLITE_OK);
    g_assert_cmpint(sqlite3_exec(db, "PRAGMA application_id = 1234; CREATE TABLE messages (id INTEGER, body TEXT);"
                                     "INSERT INTO messages VALUES (1, 'hi');", NULL, NULL, NULL), ==, SQLITE_OK);
    sqlite3_close(db);
    expect_bad_library(foreign, "is not a Ferry VM library: it is another program's SQLite database (application "
                                "id 0x000004d2, tables: messages)");

    const char *create[] = { ferry_test_ferryctl(), "create", "old-vm", "--library", newer, NULL };
    g_assert_cmpint(ferry_test_run(create, NULL, 20000, NULL, NULL), ==, 0);
    g_assert_cmpint(sqlite3_open(newer, &db), ==, SQLITE_OK);
    g_assert_cmpint(sqlite3_exec(db, "PRAGMA user_version = 7", NULL, NULL, NULL), ==, SQLITE_OK);
    sqlite3_close(db);
    expect_bad_library(newer, "was written by a newer version of Ferry (library version 7; this Ferry knows "
                              "versions up to 2). Ferry left it as it is: update Ferry to use it");
}

/* FERRY_LIBRARY, then $XDG_DATA_HOME/ferry/ferry.db. */
static void
test_library_location(void)
{
    g_autofree char *env_lib = tmp_file("from-env.db");
    g_autofree char *def = g_build_filename(g_get_user_data_dir(), "ferry", "ferry.db", NULL);
    const char *create[] = { ferry_test_ferryctl(), "create", "somewhere", NULL };

    g_setenv("FERRY_LIBRARY", env_lib, TRUE);
    g_assert_cmpint(ferry_test_run(create, NULL, 20000, NULL, NULL), ==, 0);
    g_unsetenv("FERRY_LIBRARY");
    g_assert_true(g_file_test(env_lib, G_FILE_TEST_IS_REGULAR));
    g_assert_false(g_file_test(def, G_FILE_TEST_EXISTS));
    g_assert_cmpint(ferry_test_run(create, NULL, 20000, NULL, NULL), ==, 0);
    g_assert_true(g_file_test(def, G_FILE_TEST_IS_REGULAR));
}

/* ---- ferryctl run NAME boots the test guests ---------------------------------------------------- */

static void
boot_stored(const char *arch, const char *kernel_rel, const char *initrd_rel, const char *memory)
{
    g_autofree char *kernel = ferry_test_guest_file(kernel_rel);
    g_autofree char *initrd = kernel ? ferry_test_guest_file(initrd_rel) : NULL;
    if (!kernel || !initrd)
        return;
    g_assert_cmpint(ctl(NULL, NULL, "create", "guest", "--arch", arch, "-m", memory, "--kernel", kernel,
                        "--initrd", initrd, "--append", "console=ttyS0 guest_selftest=hello", NULL), ==, 0);
    FerryTestProc *p = spawn_run("guest");
    g_autofree char *ready = g_strdup_printf("GUEST-READY arch=%s", arch);
    expect_output(p, ready, BOOT_TIMEOUT_MS);
    expect_output(p, "SELFTEST hello ok", 60000);
    /* The guest powers off: exit status 0, and the lock is gone. */
    g_assert_cmpint(ferry_test_proc_wait(p, 60000), ==, 0);
    ferry_test_proc_free(p);
    g_autofree char *state = show_value("guest", "state"), *last = show_value("guest", "last run");
    g_assert_cmpstr(state, ==, "stopped");
    g_assert_cmpstr(last, !=, "never");
}

static void
test_run_riscv(void)
{
    boot_stored("riscv64", "riscv64/Image", "riscv64/initramfs.cpio.gz", "256M");
}

static void
test_run_x86(void)
{
    const char *why = ferry_test_kvm_unusable();
    if (why) {
        g_test_skip(why);
        return;
    }
    if (ferry_test_kvm_is_software()) {
        g_test_skip("this host's KVM is kvm_pvm (software: no VT-x/AMD-V), which cannot run a stock Linux "
                    "kernel; the stored riscv64 guest boots here instead");
        return;
    }
    boot_stored("x86_64", "x86_64/vmlinuz", "x86_64/initramfs.cpio.gz", "1G");
}

/* A stored disk reaches the engine (config.disks[0]): it boots with it, or
 * the engine names it while disks are not emulated yet. */
static void
test_run_with_disk(void)
{
    g_autofree char *kernel = ferry_test_guest_file("riscv64/Image");
    g_autofree char *initrd = kernel ? ferry_test_guest_file("riscv64/initramfs.cpio.gz") : NULL;
    if (!kernel || !initrd)
        return;
    g_autofree char *img = make_file("guest-disk.img", 8 << 20);
    g_assert_cmpint(ctl(NULL, NULL, "create", "disky", "--arch", "riscv64", "-m", "256M", "--kernel", kernel,
                        "--initrd", initrd, "--append", "console=ttyS0 guest_selftest=hello", "--disk", img,
                        NULL), ==, 0);
    FerryTestProc *p = spawn_run("disky");
    int rc = ferry_test_proc_wait(p, BOOT_TIMEOUT_MS);
    g_test_message("run disky: %d\n%s\n%s", rc, ferry_test_proc_stdout(p), ferry_test_proc_stderr(p));
    if (rc == 2) {
        g_autofree char *named = g_strdup_printf("Hard disks are not emulated by this version of Ferry yet: remove %s", img);
        assert_contains(ferry_test_proc_stderr(p), named);
    } else {
        g_assert_cmpint(rc, ==, 0);
        assert_contains(ferry_test_proc_stdout(p), "SELFTEST hello ok");
    }
    ferry_test_proc_free(p);
    g_autofree char *state = show_value("disky", "state");
    g_assert_cmpstr(state, ==, "stopped");
    /* an unknown VM: nothing runs */
    g_autofree char *err = NULL;
    g_assert_cmpint(ctl(NULL, &err, "run", "nosuch", NULL), ==, 2);
    assert_contains(err, "There is no VM named 'nosuch'");
}

/* GLib's isolated dirs live in this process only (its environment says
 * /dev/null): hand them to the ferryctl processes the test starts. */
typedef struct {
    GTestFunc func;
    GTestDataFunc data_func;
    gconstpointer data;
} Test;

static void
run_test(gconstpointer p)
{
    const Test *t = p;
    g_setenv("XDG_DATA_HOME", g_get_user_data_dir(), TRUE);
    g_setenv("XDG_RUNTIME_DIR", g_get_user_runtime_dir(), TRUE);
    g_unsetenv("FERRY_LIBRARY");
    if (t->func)
        t->func();
    else
        t->data_func(t->data);
}

static void
add(const char *path, GTestFunc func)
{
    Test *t = g_new0(Test, 1);
    t->func = func;
    g_test_add_data_func_full(path, t, run_test, g_free);
}

static void
add_data(const char *path, gconstpointer data, GTestDataFunc func)
{
    Test *t = g_new0(Test, 1);
    t->data_func = func;
    t->data = data;
    g_test_add_data_func_full(path, t, run_test, g_free);
}

int
main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "--editor-child"))
        return editor_child(argv[2], argv[3]);

    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    add("/library/crud", test_crud);
    add("/library/delete-asks-on-a-terminal", test_delete_asks);
    add("/library/validation", test_validation);
    add_data("/library/libvirt/round-trip/x86_64", "x86_64", test_libvirt_round_trip);
    add_data("/library/libvirt/round-trip/riscv64", "riscv64", test_libvirt_round_trip);
    add("/library/libvirt/import-virt-manager", test_libvirt_import_foreign);
    add("/library/two-programs-edit", test_two_programs);
    add("/library/running-lock", test_running_lock);
    add("/library/bad-library-files", test_bad_library_files);
    add("/library/location", test_library_location);
    add("/library/run/riscv64-guest", test_run_riscv);
    add("/library/run/x86_64-guest", test_run_x86);
    add("/library/run/with-disk", test_run_with_disk);
    return g_test_run();
}

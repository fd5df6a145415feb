/* run-lock.c: "this VM is running in process N of program P", as an open file
 * description lock (F_OFD_SETLK) on $XDG_RUNTIME_DIR/ferry/running/<uuid>.lock.
 * The kernel drops the lock with the process, however it ends, so a crash
 * never leaves a VM marked as running. The file holds "pid\nprogram\n". */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib/gi18n-lib.h>

struct FerryRunLock {
    int fd;
    char *path;
};

static char *
lock_path(const char *uuid)
{
    g_autofree char *name = g_strdup_printf("%s.lock", uuid);
    return g_build_filename(g_get_user_runtime_dir(), "ferry", "running", name, NULL);
}

/* Reads the holder's pid and program; the holder writes them just after it
 * takes the lock, so a reader may come in between and find the file empty. */
static void
read_holder(int fd, GPid *pid, char **program)
{
    char buf[256];

    for (int tries = 0; tries < 20; tries++) {
        ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
        if (n > 0) {
            buf[n] = '\0';
            char *nl = strchr(buf, '\n');
            if (nl && strchr(nl + 1, '\n')) {
                *strchr(nl + 1, '\n') = '\0';
                if (pid)
                    *pid = (GPid) g_ascii_strtoll(buf, NULL, 10);
                if (program)
                    *program = g_strdup(nl + 1);
                return;
            }
        }
        g_usleep(10000);
    }
    if (pid)
        *pid = 0;
    if (program)
        *program = g_strdup("another program");
}

/* Is fd's file locked by someone else? */
static gboolean
held_elsewhere(int fd)
{
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
    if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
        return FALSE;
    return fl.l_type != F_UNLCK;
}

gboolean
ferry_run_lock_query(const char *uuid, GPid *pid, char **program)
{
    g_return_val_if_fail(uuid != NULL, FALSE);
    if (!g_uuid_string_is_valid(uuid))
        return FALSE;
    g_autofree char *path = lock_path(uuid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    gboolean running = FALSE;

    if (fd < 0)
        return FALSE;
    if (held_elsewhere(fd)) {
        running = TRUE;
        read_holder(fd, pid, program);
    }
    close(fd);
    return running;
}

FerryRunLock *
ferry_run_lock_acquire(const FerryVmRecord *vm, const char *program, GError **error)
{
    g_return_val_if_fail(vm != NULL && program != NULL, NULL);
    if (!vm->uuid || !g_uuid_string_is_valid(vm->uuid)) {
        g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_INVALID,
                    _("VM '%s' has no valid uuid: it cannot be started."), vm->name);
        return NULL;
    }
    g_autofree char *path = lock_path(vm->uuid);
    g_autofree char *dir = g_path_get_dirname(path);

    if (g_mkdir_with_parents(dir, 0700) < 0) {
        int e = errno;
        g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_FAILED,
                    _("Cannot create %s to mark VM '%s' as running: %s. Check that XDG_RUNTIME_DIR is yours "
                    "and writable."), dir, vm->name, g_strerror(e));
        return NULL;
    }
    for (int tries = 0; tries < 100; tries++) {
        struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
        struct stat by_fd, by_path;
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

        if (fd < 0) {
            int e = errno;
            g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_FAILED,
                        _("Cannot create %s to mark VM '%s' as running: %s."), path, vm->name, g_strerror(e));
            return NULL;
        }
        if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
            int e = errno;
            if (e == EAGAIN || e == EACCES) {
                GPid pid = 0;
                g_autofree char *holder = NULL;
                read_holder(fd, &pid, &holder);
                close(fd);
                if (pid == getpid())
                    g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_RUNNING,
                                _("VM '%s' is already running in this %s."), vm->name, holder);
                else
                    g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_RUNNING,
                                _("VM '%s' is already running in %s (pid %d): a VM runs in one program at a "
                                "time. Use it there, or stop it there first."), vm->name, holder, (int) pid);
                return NULL;
            }
            close(fd);
            g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_FAILED,
                        _("Cannot lock %s to mark VM '%s' as running: %s."), path, vm->name, g_strerror(e));
            return NULL;
        }
        /* A holder that just stopped unlinks the file before it closes it:
         * then we locked a file nobody else will look at, so start again. */
        if (fstat(fd, &by_fd) < 0 || stat(path, &by_path) < 0 ||
            by_fd.st_dev != by_path.st_dev || by_fd.st_ino != by_path.st_ino) {
            close(fd);
            continue;
        }
        g_autofree char *text = g_strdup_printf("%d\n%s\n", (int) getpid(), program);
        if (ftruncate(fd, 0) < 0 || pwrite(fd, text, strlen(text), 0) != (ssize_t) strlen(text)) {
            int e = errno;
            unlink(path);
            close(fd);
            g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_FAILED,
                        _("Cannot write %s to mark VM '%s' as running: %s."), path, vm->name, g_strerror(e));
            return NULL;
        }
        FerryRunLock *lock = g_new0(FerryRunLock, 1);
        lock->fd = fd;
        lock->path = g_steal_pointer(&path);
        return lock;
    }
    g_set_error(error, FERRY_STORE_ERROR, FERRY_STORE_ERROR_FAILED,
                _("Cannot mark VM '%s' as running: its lock file %s keeps changing. Try again."), vm->name, path);
    return NULL;
}

void
ferry_run_lock_release(FerryRunLock *lock)
{
    if (!lock)
        return;
    /* Unlink before close: see the inode check in _acquire. */
    unlink(lock->path);
    close(lock->fd);
    g_free(lock->path);
    g_free(lock);
}

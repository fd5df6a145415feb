/* ferry-test-proc.c: see ferry-test-proc.h. */
#include "ferry-test-proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct FerryTestProc {
    GPid pid;
    int in_fd, out_fd, err_fd;
    GString *out, *err;
    gsize match_end;
    gboolean exited;
    int status;
};

#include <sys/prctl.h>

/* A test that aborts must not leave a VM running. */
static void
die_with_parent(gpointer data)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
}

FerryTestProc *
ferry_test_proc_spawn(const char *const *argv, GError **error)
{
    FerryTestProc *p = g_new0(FerryTestProc, 1);

    if (!g_spawn_async_with_pipes(NULL, (char **) argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_SEARCH_PATH, die_with_parent, NULL,
                                  &p->pid, &p->in_fd, &p->out_fd, &p->err_fd, error)) {
        g_free(p);
        return NULL;
    }
    fcntl(p->out_fd, F_SETFL, O_NONBLOCK);
    fcntl(p->err_fd, F_SETFL, O_NONBLOCK);
    p->out = g_string_new(NULL);
    p->err = g_string_new(NULL);
    return p;
}

static void
drain(int fd, GString *s)
{
    char buf[4096];
    ssize_t n;
    while (fd >= 0 && (n = read(fd, buf, sizeof(buf))) > 0)
        g_string_append_len(s, buf, n);
}

static gboolean
reap(FerryTestProc *p)
{
    if (p->exited)
        return TRUE;
    int st;
    if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
        p->exited = TRUE;
        p->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        drain(p->out_fd, p->out);
        drain(p->err_fd, p->err);
        return TRUE;
    }
    return FALSE;
}

/* Reads whatever comes within ms; returns FALSE once the process exited. */
static gboolean
pump(FerryTestProc *p, int ms)
{
    struct pollfd fds[2] = { { p->out_fd, POLLIN, 0 }, { p->err_fd, POLLIN, 0 } };
    poll(fds, 2, ms);
    drain(p->out_fd, p->out);
    drain(p->err_fd, p->err);
    return !reap(p);
}

gboolean
ferry_test_proc_expect(FerryTestProc *p, const char *text, guint timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64) timeout_ms * 1000;

    for (;;) {
        const char *hit = strstr(p->out->str + p->match_end, text);
        if (hit) {
            p->match_end = hit - p->out->str + strlen(text);
            return TRUE;
        }
        if (p->exited || g_get_monotonic_time() > deadline)
            return FALSE;
        pump(p, 20);
    }
}

gboolean
ferry_test_proc_expect_stderr(FerryTestProc *p, const char *text, guint timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64) timeout_ms * 1000;
    while (!strstr(p->err->str, text)) {
        if (p->exited || g_get_monotonic_time() > deadline)
            return FALSE;
        pump(p, 20);
    }
    return TRUE;
}

void
ferry_test_proc_write(FerryTestProc *p, const char *text)
{
    gsize len = strlen(text);
    while (len > 0) {
        ssize_t n = write(p->in_fd, text, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        text += n;
        len -= n;
    }
}

void
ferry_test_proc_close_stdin(FerryTestProc *p)
{
    if (p->in_fd >= 0)
        close(p->in_fd);
    p->in_fd = -1;
}

int
ferry_test_proc_wait(FerryTestProc *p, guint timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64) timeout_ms * 1000;
    while (pump(p, 20)) {
        if (g_get_monotonic_time() > deadline) {
            kill(p->pid, SIGKILL);
            while (pump(p, 20))
                ;
            return -1;
        }
    }
    return p->status;
}

void
ferry_test_proc_kill(FerryTestProc *p, int sig)
{
    if (!p->exited)
        kill(p->pid, sig);
}

const char *
ferry_test_proc_stdout(FerryTestProc *p)
{
    return p->out->str;
}

const char *
ferry_test_proc_stderr(FerryTestProc *p)
{
    return p->err->str;
}

GPid
ferry_test_proc_pid(FerryTestProc *p)
{
    return p->pid;
}

void
ferry_test_proc_free(FerryTestProc *p)
{
    if (!p)
        return;
    if (!p->exited) {
        kill(p->pid, SIGKILL);
        while (pump(p, 20))
            ;
    }
    ferry_test_proc_close_stdin(p);
    close(p->out_fd);
    close(p->err_fd);
    g_spawn_close_pid(p->pid);
    g_string_free(p->out, TRUE);
    g_string_free(p->err, TRUE);
    g_free(p);
}

int
ferry_test_run(const char *const *argv, const char *input, guint timeout_ms, char **out, char **err)
{
    g_autoptr(GError) error = NULL;
    FerryTestProc *p = ferry_test_proc_spawn(argv, &error);
    g_assert_no_error(error);
    if (input)
        ferry_test_proc_write(p, input);
    ferry_test_proc_close_stdin(p);
    int rc = ferry_test_proc_wait(p, timeout_ms);
    if (out)
        *out = g_strdup(p->out->str);
    if (err)
        *err = g_strdup(p->err->str);
    if (g_test_verbose() || rc < 0)
        g_test_message("%s exited %d\nstdout:\n%s\nstderr:\n%s", argv[0], rc, p->out->str, p->err->str);
    ferry_test_proc_free(p);
    return rc;
}

const char *
ferry_test_ferryctl(void)
{
    const char *p = g_getenv("FERRYCTL");
    g_assert_nonnull(p);
    return p;
}

char *
ferry_test_micro_guest(const char *name)
{
    const char *build = g_getenv("FERRY_BUILD_ROOT");
    g_assert_nonnull(build);
    char *path = g_build_filename(build, "tests", "guests", "micro", name, NULL);
    if (!g_file_test(path, G_FILE_TEST_EXISTS)) {
        g_free(path);
        return NULL;
    }
    return path;
}

const char *
ferry_test_kvm_unusable(void)
{
    if (access("/dev/kvm", F_OK) < 0)
        return "/dev/kvm not available: KVM test skipped";
    if (access("/dev/kvm", R_OK | W_OK) < 0)
        return "no permission on /dev/kvm (join the kvm group): KVM test skipped";
    return NULL;
}

gboolean
ferry_test_kvm_is_software(void)
{
    return g_file_test("/sys/module/kvm_pvm", G_FILE_TEST_EXISTS);
}

char *
ferry_test_guest_file(const char *relpath)
{
    const char *dir = g_getenv("FERRY_GUEST_DIR");
    char *path = dir ? g_build_filename(dir, relpath, NULL) : NULL;

    if (path && g_file_test(path, G_FILE_TEST_EXISTS))
        return path;
    g_autofree char *msg = g_strdup_printf("test guest %s not built (FERRY_GUEST_DIR=%s): "
                                           "run tools/setup.sh test", relpath, dir ? dir : "unset");
    g_free(path);
    if (g_getenv("CI"))
        g_test_fail_printf("%s", msg);
    else
        g_test_skip(msg);
    return NULL;
}

#include <sys/socket.h>
#include <sys/un.h>

struct FerryTestMonitor {
    int fd;
    GString *buf;
};

static gboolean
monitor_read_until_prompt(FerryTestMonitor *m, guint timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64) timeout_ms * 1000;
    while (!g_str_has_suffix(m->buf->str, "(ferry) ")) {
        struct pollfd pfd = { m->fd, POLLIN, 0 };
        if (g_get_monotonic_time() > deadline)
            return FALSE;
        if (poll(&pfd, 1, 50) > 0) {
            char tmp[4096];
            ssize_t n = read(m->fd, tmp, sizeof(tmp));
            if (n <= 0)
                return FALSE;
            g_string_append_len(m->buf, tmp, n);
        }
    }
    return TRUE;
}

FerryTestMonitor *
ferry_test_monitor_connect(const char *path, guint timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64) timeout_ms * 1000;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0) {
            FerryTestMonitor *m = g_new0(FerryTestMonitor, 1);
            m->fd = fd;
            m->buf = g_string_new(NULL);
            if (!monitor_read_until_prompt(m, timeout_ms)) {
                g_test_message("monitor at %s: no prompt; got '%s' (%s)", path, m->buf->str, g_strerror(errno));
                ferry_test_monitor_free(m);
                return NULL;
            }
            g_string_truncate(m->buf, 0);
            return m;
        }
        close(fd);
        if (g_get_monotonic_time() > deadline)
            return NULL;
        g_usleep(20000);
    }
}

char *
ferry_test_monitor_cmd(FerryTestMonitor *m, const char *line, guint timeout_ms)
{
    g_autofree char *l = g_strdup_printf("%s\n", line);
    if (send(m->fd, l, strlen(l), MSG_NOSIGNAL) < 0)
        return NULL;
    g_string_truncate(m->buf, 0);
    if (!monitor_read_until_prompt(m, timeout_ms))
        return NULL;
    g_string_truncate(m->buf, m->buf->len - strlen("(ferry) "));
    return g_strdup(m->buf->str);
}

void
ferry_test_monitor_free(FerryTestMonitor *m)
{
    if (!m)
        return;
    close(m->fd);
    g_string_free(m->buf, TRUE);
    g_free(m);
}

FerryTestProc *
ferry_test_spawn(const char *const *argv)
{
    g_autoptr(GError) error = NULL;
    FerryTestProc *p = ferry_test_proc_spawn(argv, &error);
    g_assert_no_error(error);
    return p;
}

void
ferry_test_expect(FerryTestProc *p, const char *text, guint timeout_ms)
{
    if (!ferry_test_proc_expect(p, text, timeout_ms)) {
        g_test_message("waiting for '%s'; stdout so far:\n%s\nstderr:\n%s", text,
                       ferry_test_proc_stdout(p), ferry_test_proc_stderr(p));
        g_assert_not_reached();
    }
}

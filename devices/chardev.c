/* chardev.c: serial/monitor back ends: none, callback, pty, unix socket. */
#include "chardev.h"

#include <ferry/error.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>
#include <glib-unix.h>
#include <glib/gi18n-lib.h>

struct FerryChardev {
    FerryChardevKind kind;
    char *path;
    GMutex lock;                 /* guards out_fd and the callback */
    int listen_fd;               /* UNIX */
    int io_fd;                   /* PTY master, or the UNIX client; -1 */
    FerryChardevOutputFn out_fn;
    gpointer out_data;
    FerryChardevReceiveFn receive;
    FerryChardevConnectFn connect;
    gpointer fe_data;
    GMainContext *ctx;
    GSource *listen_src, *io_src;
};

static FerryChardev *
chardev_alloc(FerryChardevKind kind)
{
    FerryChardev *chr = g_new0(FerryChardev, 1);
    chr->kind = kind;
    chr->listen_fd = -1;
    chr->io_fd = -1;
    g_mutex_init(&chr->lock);
    return chr;
}

FerryChardev *
ferry_chardev_new_none(void)
{
    return chardev_alloc(FERRY_CHARDEV_NONE);
}

FerryChardev *
ferry_chardev_new_callback(FerryChardevOutputFn fn, gpointer user_data)
{
    FerryChardev *chr = chardev_alloc(FERRY_CHARDEV_CALLBACK);
    chr->out_fn = fn;
    chr->out_data = user_data;
    return chr;
}

FerryChardev *
ferry_chardev_new_pty(GError **error)
{
    int master, slave;
    char name[256];
    struct termios tio;

    if (openpty(&master, &slave, name, NULL, NULL) < 0) {
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_HOST,
                    _("Cannot open a pseudo-terminal: %s"), g_strerror(errno));
        return NULL;
    }
    /* Raw, so the guest sees every byte as typed. */
    if (tcgetattr(slave, &tio) == 0) {
        cfmakeraw(&tio);
        tcsetattr(slave, TCSANOW, &tio);
    }
    /* Keep the slave open so output does not fail with EIO before a client
     * opens it; it is closed with the back end. */
    g_unix_set_fd_nonblocking(master, TRUE, NULL);
    fcntl(master, F_SETFD, FD_CLOEXEC);
    fcntl(slave, F_SETFD, FD_CLOEXEC);
    FerryChardev *chr = chardev_alloc(FERRY_CHARDEV_PTY);
    chr->io_fd = master;
    chr->listen_fd = slave;
    chr->path = g_strdup(name);
    return chr;
}

FerryChardev *
ferry_chardev_new_unix(const char *path, GError **error)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct stat st;
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                    _("Socket path %s is too long (at most %zu bytes): choose a shorter path"),
                    path, sizeof(sa.sun_path) - 1);
        return NULL;
    }
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                        _("Cannot listen at %s: a file that is not a socket is there; "
                        "choose another path"), path);
            return NULL;
        }
        unlink(path);
    }
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                    _("Cannot listen at %s: %s"), path, g_strerror(err));
        return NULL;
    }
    FerryChardev *chr = chardev_alloc(FERRY_CHARDEV_UNIX);
    chr->listen_fd = fd;
    chr->path = g_strdup(path);
    return chr;
}

FerryChardevKind
ferry_chardev_get_kind(FerryChardev *chr)
{
    return chr->kind;
}

const char *
ferry_chardev_get_path(FerryChardev *chr)
{
    return chr->path;
}

void
ferry_chardev_set_frontend(FerryChardev *chr, FerryChardevReceiveFn receive,
                           FerryChardevConnectFn connect, gpointer user_data)
{
    chr->receive = receive;
    chr->connect = connect;
    chr->fe_data = user_data;
}

static void
drop_source(GSource **src)
{
    if (*src) {
        g_source_destroy(*src);
        g_source_unref(*src);
        *src = NULL;
    }
}

static gboolean on_io(gint fd, GIOCondition cond, gpointer data);

static void
watch_io(FerryChardev *chr)
{
    chr->io_src = g_unix_fd_source_new(chr->io_fd, G_IO_IN | G_IO_HUP | G_IO_ERR);
    g_source_set_callback(chr->io_src, G_SOURCE_FUNC(on_io), chr, NULL);
    g_source_attach(chr->io_src, chr->ctx);
}

static void
client_gone(FerryChardev *chr)
{
    g_mutex_lock(&chr->lock);
    close(chr->io_fd);
    chr->io_fd = -1;
    g_mutex_unlock(&chr->lock);
    if (chr->connect)
        chr->connect(FALSE, chr->fe_data);
}

static gboolean
on_io(gint fd, GIOCondition cond, gpointer data)
{
    FerryChardev *chr = data;
    guint8 buf[4096];
    ssize_t n = read(fd, buf, sizeof(buf));

    if (n > 0) {
        if (chr->receive)
            chr->receive(buf, n, chr->fe_data);
        return G_SOURCE_CONTINUE;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return G_SOURCE_CONTINUE;
    if (chr->kind == FERRY_CHARDEV_UNIX) {
        g_source_unref(chr->io_src);
        chr->io_src = NULL;
        client_gone(chr);
        return G_SOURCE_REMOVE;
    }
    /* A pty whose last reader closed reports HUP until someone opens it
     * again: stop watching briefly instead of spinning. */
    if (chr->kind == FERRY_CHARDEV_PTY) {
        g_usleep(50000);
        return G_SOURCE_CONTINUE;
    }
    return G_SOURCE_CONTINUE;
}

static gboolean
client_hung_up(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };
    if (poll(&p, 1, 0) <= 0)
        return FALSE;
    if (p.revents & (POLLHUP | POLLRDHUP | POLLERR))
        return TRUE;
    char c;
    return recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

static gboolean
on_accept(gint fd, GIOCondition cond, gpointer data)
{
    FerryChardev *chr = data;
    int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (c < 0)
        return G_SOURCE_CONTINUE;
    if (chr->io_fd >= 0 && client_hung_up(chr->io_fd)) {
        /* The previous client left and we have not read its EOF yet. */
        drop_source(&chr->io_src);
        client_gone(chr);
    }
    if (chr->io_fd >= 0) {
        /* One client at a time; the next may connect when this one leaves. */
        static const char busy[] = "Another client is connected; try again later.\n";
        (void) !send(c, busy, sizeof(busy) - 1, MSG_NOSIGNAL);
        close(c);
        return G_SOURCE_CONTINUE;
    }
    g_mutex_lock(&chr->lock);
    chr->io_fd = c;
    g_mutex_unlock(&chr->lock);
    watch_io(chr);
    if (chr->connect)
        chr->connect(TRUE, chr->fe_data);
    return G_SOURCE_CONTINUE;
}

void
ferry_chardev_attach(FerryChardev *chr, GMainContext *ctx)
{
    chr->ctx = ctx;
    if (chr->kind == FERRY_CHARDEV_UNIX) {
        chr->listen_src = g_unix_fd_source_new(chr->listen_fd, G_IO_IN);
        g_source_set_callback(chr->listen_src, G_SOURCE_FUNC(on_accept), chr, NULL);
        g_source_attach(chr->listen_src, ctx);
    } else if (chr->kind == FERRY_CHARDEV_PTY) {
        watch_io(chr);
    }
}

void
ferry_chardev_detach(FerryChardev *chr)
{
    drop_source(&chr->listen_src);
    drop_source(&chr->io_src);
    chr->ctx = NULL;
}

void
ferry_chardev_free(FerryChardev *chr)
{
    if (!chr)
        return;
    ferry_chardev_detach(chr);
    if (chr->io_fd >= 0)
        close(chr->io_fd);
    if (chr->listen_fd >= 0)
        close(chr->listen_fd);
    if (chr->kind == FERRY_CHARDEV_UNIX && chr->path)
        unlink(chr->path);
    g_mutex_clear(&chr->lock);
    g_free(chr->path);
    g_free(chr);
}

void
ferry_chardev_write(FerryChardev *chr, const guint8 *data, gsize len)
{
    if (!chr || len == 0)
        return;
    g_mutex_lock(&chr->lock);
    if (chr->kind == FERRY_CHARDEV_CALLBACK) {
        if (chr->out_fn)
            chr->out_fn(data, len, chr->out_data);
    } else if (chr->io_fd >= 0) {
        while (len > 0) {
            /* send() on a socket: a client that went away must not raise SIGPIPE. */
            ssize_t n = chr->kind == FERRY_CHARDEV_UNIX ? send(chr->io_fd, data, len, MSG_NOSIGNAL)
                                                        : write(chr->io_fd, data, len);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;          /* nobody reads fast enough: drop, never block the vCPU */
            data += n;
            len -= n;
        }
    }
    g_mutex_unlock(&chr->lock);
}

typedef struct {
    FerryChardev *chr;
    GBytes *bytes;
} Input;

static gboolean
deliver_input(gpointer data)
{
    Input *in = data;
    gsize len;
    const guint8 *p = g_bytes_get_data(in->bytes, &len);
    if (in->chr->receive)
        in->chr->receive(p, len, in->chr->fe_data);
    return G_SOURCE_REMOVE;
}

static void
free_input(gpointer data)
{
    Input *in = data;
    g_bytes_unref(in->bytes);
    g_free(in);
}

void
ferry_chardev_input(FerryChardev *chr, const guint8 *data, gsize len)
{
    if (!chr || len == 0)
        return;
    if (!chr->ctx) {
        if (chr->receive)
            chr->receive(data, len, chr->fe_data);
        return;
    }
    Input *in = g_new0(Input, 1);
    in->chr = chr;
    in->bytes = g_bytes_new(data, len);
    g_main_context_invoke_full(chr->ctx, G_PRIORITY_DEFAULT, deliver_input, in, free_input);
}

/* chardev.h: character back ends for serial ports and the monitor.
 *
 * A back end carries bytes between a front end (the 16550 UART, the monitor)
 * and the outside: nothing, an engine event (the UI), a pseudo-terminal, or a
 * unix socket that Ferry listens on. Output may be written from any thread;
 * input arrives on the GMainContext given to ferry_chardev_attach().
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
    FERRY_CHARDEV_NONE,
    FERRY_CHARDEV_CALLBACK,     /* output to a function; input by ferry_chardev_input() */
    FERRY_CHARDEV_PTY,
    FERRY_CHARDEV_UNIX,         /* listen at a path, one client at a time */
} FerryChardevKind;

typedef struct FerryChardev FerryChardev;

typedef void (*FerryChardevOutputFn)(const guint8 *data, gsize len, gpointer user_data);
typedef void (*FerryChardevReceiveFn)(const guint8 *data, gsize len, gpointer user_data);
/* A client connected to (TRUE) or left (FALSE) a socket back end. */
typedef void (*FerryChardevConnectFn)(gboolean connected, gpointer user_data);

FerryChardev *ferry_chardev_new_none(void);
FerryChardev *ferry_chardev_new_callback(FerryChardevOutputFn fn, gpointer user_data);
/* Opens a pseudo-terminal in raw mode; ferry_chardev_get_path() names the slave. */
FerryChardev *ferry_chardev_new_pty(GError **error);
/* Listens at path (an old socket file there is replaced; any other file is an error). */
FerryChardev *ferry_chardev_new_unix(const char *path, GError **error);
void          ferry_chardev_free(FerryChardev *chr);              /* NULL is fine */

FerryChardevKind ferry_chardev_get_kind(FerryChardev *chr);
const char      *ferry_chardev_get_path(FerryChardev *chr);       /* pty or socket path */

/* The front end. receive is called on the attached context. */
void ferry_chardev_set_frontend(FerryChardev *chr, FerryChardevReceiveFn receive,
                                FerryChardevConnectFn connect, gpointer user_data);
/* Starts watching fds on ctx (the engine thread's). */
void ferry_chardev_attach(FerryChardev *chr, GMainContext *ctx);
void ferry_chardev_detach(FerryChardev *chr);

/* Any thread. Never blocks: with no reader the bytes are dropped. */
void ferry_chardev_write(FerryChardev *chr, const guint8 *data, gsize len);
/* Feeds input as if it came from outside (CALLBACK kind); any thread, the
 * front end sees it on the attached context. */
void ferry_chardev_input(FerryChardev *chr, const guint8 *data, gsize len);

G_END_DECLS

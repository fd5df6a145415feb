/* overlay.c: snapshot mode. The disk the guest sees is a qcow2 overlay file
 * in the VM's data folder whose backing image is the base disk; the base is
 * opened read-only and written only by a commit. A commit is journalled by a
 * marker file so a crash part-way is finished at the next open (see
 * block.h, "Snapshot overlays"). */
#include "block-private.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib/gi18n-lib.h>

typedef struct {
    GMutex lock;                    /* one commit or discard at a time */
    GRWLock swap;                   /* inner, for readers outside requests (pending, status) */
    FerryBlock *inner;              /* qcow2 on the overlay file; backing = base */
    char *data_dir, *drive;
    char *overlay_path, *marker_path;
    char *base_path, *base_format;
} Overlay;

static inline Overlay *
O(FerryBlock *bs)
{
    return bs->opaque;
}

static char *
overlay_file(const char *data_dir, const char *drive)
{
    g_autofree char *name = g_strdup_printf("%s-overlay.qcow2", drive);
    return g_build_filename(data_dir, name, NULL);
}

static char *
marker_file(const char *data_dir, const char *drive)
{
    g_autofree char *name = g_strdup_printf("%s-overlay.commit", drive);
    return g_build_filename(data_dir, name, NULL);
}

static gboolean
valid_drive(const char *drive, GError **error)
{
    gboolean ok = drive && *drive && strlen(drive) < 32;
    for (const char *p = drive; ok && *p; p++)
        ok = g_ascii_isalnum(*p) || *p == '-' || *p == '_';
    if (!ok)
        g_set_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_INVALID,
                    _("Invalid drive name '%s': use hda, hdb, hdc or hdd."), drive ? drive : "");
    return ok;
}

static void
sync_dir(const char *path)
{
    g_autofree char *dir = g_path_get_dirname(path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Writes a new empty overlay over base at path, atomically (a crash leaves
 * the old file or the new one). */
static gboolean
create_overlay(const char *path, const char *base_path, const char *base_format, guint64 size,
               GError **error)
{
    g_autofree char *tmp = g_strdup_printf("%s.tmp", path);
    FerryBlockCreateOptions o = {
        .format = "qcow2",
        .size = size,
        .backing_file = base_path,
        .backing_format = base_format,
        .no_backing_check = TRUE,
    };
    if (!ferry_block_create(tmp, &o, error))
        return FALSE;
    if (rename(tmp, path) < 0) {
        ferry_file_set_error(error, errno, path, "create");
        unlink(tmp);
        return FALSE;
    }
    sync_dir(path);
    return TRUE;
}

static gboolean
write_marker(const char *marker, const char *overlay, const char *base, const char *base_format,
             GError **error)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_key_file_set_string(kf, "commit", "overlay", overlay);
    g_key_file_set_string(kf, "commit", "base", base);
    g_key_file_set_string(kf, "commit", "base-format", base_format);
    gsize len;
    g_autofree char *data = g_key_file_to_data(kf, &len, NULL);
    g_autofree char *tmp = g_strdup_printf("%s.tmp", marker);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int r = fd < 0 ? -errno : ferry_file_pwrite(fd, data, len, 0);
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    if (fd >= 0)
        close(fd);
    if (r == 0 && rename(tmp, marker) < 0)
        r = -errno;
    if (r < 0) {
        unlink(tmp);
        ferry_file_set_error(error, r, marker, "write");
        return FALSE;
    }
    sync_dir(marker);
    return TRUE;
}

static void
remove_marker(const char *marker)
{
    unlink(marker);
    sync_dir(marker);
}

/* Finishes the commit a marker records: copies the (untouched) overlay into
 * the base again, then empties the overlay and removes the marker. */
static gboolean
replay_commit(const char *data_dir, const char *drive, GError **error)
{
    g_autofree char *marker = marker_file(data_dir, drive);
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GError) err = NULL;
    if (!g_key_file_load_from_file(kf, marker, G_KEY_FILE_NONE, &err)) {
        g_set_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_CORRUPT,
                    _("Cannot finish the interrupted commit of %s recorded in %s: %s. Check the "
                    "base image and remove the file."), drive, marker, err->message);
        return FALSE;
    }
    g_autofree char *overlay = g_key_file_get_string(kf, "commit", "overlay", NULL);
    g_autofree char *base = g_key_file_get_string(kf, "commit", "base", NULL);
    g_autofree char *base_format = g_key_file_get_string(kf, "commit", "base-format", NULL);
    if (!overlay || !base || !base_format) {
        g_set_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_CORRUPT,
                    _("Cannot finish the interrupted commit of %s: %s is incomplete. Check the "
                    "base image and remove the file."), drive, marker);
        return FALSE;
    }
    FerryBlock *top = ferry_block_open(overlay, "qcow2",
                                       FERRY_BLOCK_READ_ONLY | FERRY_BLOCK_NO_BACKING, error);
    if (!top)
        return FALSE;
    FerryBlock *dst = ferry_block_open(base, base_format, 0, error);
    gboolean ok = dst && ferry_block_copy_top(top, dst, error) &&
                  create_overlay(overlay, base, base_format, ferry_block_get_size(dst), error);
    ferry_block_close(dst);
    ferry_block_close(top);
    if (ok) {
        remove_marker(marker);
        g_message("%s: finished the commit of %s into %s that was interrupted", drive, overlay, base);
    }
    return ok;
}

/* ---- the driver ------------------------------------------------------------------ */

static int
overlay_submit(FerryBlock *bs, FerryBlockReq *req)
{
    FerryBlock *inner = O(bs)->inner;
    if (!inner)
        return ferry_block_report(bs, "the overlay could not be reopened after a commit");
    return inner->drv->submit(inner, req);
}

static gboolean
overlay_open_unused(FerryBlock *bs, int fd, FerryBlockFlags flags, GError **error)
{
    g_set_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_INVALID,
                _("Snapshot overlays are opened with ferry_overlay_open()."));
    return FALSE;
}

static void
overlay_free(Overlay *o)
{
    ferry_block_close(o->inner);
    g_free(o->data_dir);
    g_free(o->drive);
    g_free(o->overlay_path);
    g_free(o->marker_path);
    g_free(o->base_path);
    g_free(o->base_format);
    g_mutex_clear(&o->lock);
    g_rw_lock_clear(&o->swap);
    g_free(o);
}

static void
overlay_close(FerryBlock *bs)
{
    overlay_free(O(bs));
    bs->opaque = NULL;
}

static void
overlay_get_info(FerryBlock *bs, FerryBlockInfo *info)
{
    Overlay *o = O(bs);
    info->backing_filename = g_strdup(o->base_path);
    info->full_backing_filename = g_strdup(o->base_path);
    info->backing_format = g_strdup(o->base_format);
    struct stat st;
    if (stat(o->overlay_path, &st) == 0)
        info->actual_size = (guint64) st.st_blocks * 512;
}

static int
overlay_block_status(FerryBlock *bs, guint64 offset, guint64 *len)
{
    Overlay *o = O(bs);
    g_rw_lock_reader_lock(&o->swap);
    int r = o->inner ? ferry_block_status(o->inner, offset, len) : -EIO;
    g_rw_lock_reader_unlock(&o->swap);
    return r;
}

const FerryBlockDriver ferry_block_overlay = {
    .format = "overlay",
    .open = overlay_open_unused,
    .submit = overlay_submit,
    .close = overlay_close,
    .get_info = overlay_get_info,
    .block_status = overlay_block_status,
};

/* ---- API ------------------------------------------------------------------------- */

static gboolean
pending_error(GError **error, const char *drive, const char *overlay, guint64 pending)
{
    g_set_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_PENDING,
                _("%s has %.1f MiB of uncommitted changes from an earlier run in %s: commit or "
                "discard them first."), drive, pending / 1048576.0, overlay);
    return FALSE;
}

FerryBlock *
ferry_overlay_open(const char *base_path, const char *base_format, const char *data_dir,
                   const char *drive, FerryOverlayLeftover leftover, GError **error)
{
    g_return_val_if_fail(base_path && data_dir, NULL);
    if (!valid_drive(drive, error))
        return NULL;
    if (g_mkdir_with_parents(data_dir, 0700) < 0) {
        ferry_file_set_error(error, errno, data_dir, "create the folder");
        return NULL;
    }
    g_autofree char *marker = marker_file(data_dir, drive);
    if (g_file_test(marker, G_FILE_TEST_EXISTS) && !replay_commit(data_dir, drive, error))
        return NULL;

    g_autofree char *abs_base = g_canonicalize_filename(base_path, NULL);
    g_autofree char *path = overlay_file(data_dir, drive);
    FerryBlock *base = NULL, *inner = NULL;

    if (g_file_test(path, G_FILE_TEST_EXISTS) && leftover != FERRY_OVERLAY_DISCARD_LEFTOVER) {
        g_autofree char *old_base = NULL, *old_format = NULL;
        if (!ferry_qcow2_read_backing(path, &old_base, &old_format, error))
            return NULL;
        if (!old_base || strcmp(old_base, abs_base)) {
            g_set_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_PENDING,
                        _("%s: %s holds changes for another base image (%s), not %s: commit or "
                        "discard them first."), drive, path, old_base ? old_base : "none", abs_base);
            return NULL;
        }
        if (leftover == FERRY_OVERLAY_REFUSE_LEFTOVER) {
            FerryBlock *probe = ferry_block_open(path, "qcow2",
                                                 FERRY_BLOCK_READ_ONLY | FERRY_BLOCK_NO_BACKING |
                                                 FERRY_BLOCK_NO_LOCK, error);
            if (!probe)
                return NULL;
            guint64 pending = ferry_qcow2_allocated_bytes(probe);
            ferry_block_close(probe);
            if (pending) {
                pending_error(error, drive, path, pending);
                return NULL;
            }
        }
    }

    if (g_file_test(path, G_FILE_TEST_EXISTS) && leftover == FERRY_OVERLAY_DISCARD_LEFTOVER) {
        /* Not one a running VM is using. */
        int fd = open(path, O_RDWR | O_CLOEXEC);
        gboolean free_to_go = fd < 0 || ferry_block_lock_fd(fd, path, TRUE, error);
        if (fd >= 0)
            close(fd);
        if (!free_to_go)
            return NULL;
    }
    base = ferry_block_open(abs_base, base_format, FERRY_BLOCK_READ_ONLY, error);
    if (!base)
        return NULL;
    const char *fmt = ferry_block_get_format(base);
    if (!g_file_test(path, G_FILE_TEST_EXISTS) || leftover == FERRY_OVERLAY_DISCARD_LEFTOVER) {
        if (!create_overlay(path, abs_base, fmt, ferry_block_get_size(base), error))
            goto fail;
    }
    inner = ferry_block_open(path, "qcow2", FERRY_BLOCK_NO_BACKING, error);
    if (!inner)
        goto fail;
    if (ferry_block_get_size(inner) != ferry_block_get_size(base)) {
        g_set_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_PENDING,
                    "%s: %s was made for a base of %" G_GUINT64_FORMAT " bytes but %s has %"
                    G_GUINT64_FORMAT ": commit or discard it first.", drive, path,
                    ferry_block_get_size(inner), abs_base, ferry_block_get_size(base));
        goto fail;
    }
    ferry_block_swap_backing(inner, base);

    Overlay *o = g_new0(Overlay, 1);
    g_mutex_init(&o->lock);
    g_rw_lock_init(&o->swap);
    o->inner = inner;
    o->data_dir = g_strdup(data_dir);
    o->drive = g_strdup(drive);
    o->overlay_path = g_steal_pointer(&path);
    o->marker_path = g_steal_pointer(&marker);
    o->base_path = g_strdup(abs_base);
    o->base_format = g_strdup(fmt);
    FerryBlock *bs = ferry_block_new_virtual(&ferry_block_overlay, abs_base, 0);
    bs->opaque = o;
    ferry_block_set_size(bs, ferry_block_get_size(base));
    return bs;

fail:
    ferry_block_close(inner);
    ferry_block_close(base);
    return NULL;
}

/* Replaces the overlay file with an empty one and reopens it over base
 * (which it takes). On failure the old inner is kept. */
static gpointer
close_in_background(gpointer data)
{
    ferry_block_close(data);
    return NULL;
}

static gboolean
restart_overlay(Overlay *o, FerryBlock *base, GError **error)
{
    if (!create_overlay(o->overlay_path, o->base_path, o->base_format,
                        ferry_block_get_size(base), error))
        return FALSE;
    g_rw_lock_writer_lock(&o->swap);
    FerryBlock *old_base = ferry_block_swap_backing(o->inner, NULL);
    /* The old overlay's file is already replaced (a new inode under the same
     * name) and holds nothing anyone needs; closing it frees its pages, which
     * takes tens of ms for hundreds of MiB. Nobody has to wait for that. */
    FerryBlock *old_inner = o->inner;
    GThread *closer = g_thread_try_new("ferry-overlay-close", close_in_background, old_inner, NULL);
    if (closer)
        g_thread_unref(closer);
    else
        ferry_block_close(old_inner);
    o->inner = ferry_block_open(o->overlay_path, "qcow2", FERRY_BLOCK_NO_BACKING, error);
    if (old_base != base)
        ferry_block_close(old_base);
    if (o->inner)
        ferry_block_swap_backing(o->inner, base);
    else
        ferry_block_close(base);
    g_rw_lock_writer_unlock(&o->swap);
    return o->inner != NULL;
}

gboolean
ferry_overlay_commit(FerryBlock *bs, GError **error)
{
    g_return_val_if_fail(bs && bs->drv == &ferry_block_overlay, FALSE);
    Overlay *o = O(bs);
    gboolean ok = FALSE;
    g_mutex_lock(&o->lock);
    ferry_block_quiesce_begin(bs);
    if (!o->inner) {
        g_set_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_FAILED,
                    _("%s: the overlay is not open."), o->drive);
        goto out;
    }
    /* The overlay must be whole on disk before the marker says "replay it". */
    if (!ferry_block_flush(o->inner, error) ||
        !write_marker(o->marker_path, o->overlay_path, o->base_path, o->base_format, error))
        goto out;

    /* Upgrade the base to read-write: our reader's locks would refuse our
     * own writer, so drop them for the moment of the open. */
    FerryBlock *base_ro = o->inner->backing;
    ferry_block_unlock_fd(base_ro->fd);
    FerryBlock *base_rw = ferry_block_open(o->base_path, o->base_format, 0, error);
    if (!base_rw) {
        if (!ferry_block_lock_fd(base_ro->fd, o->base_path, FALSE, NULL))
            g_message("%s: could not lock %s again after a failed commit", o->drive, o->base_path);
        remove_marker(o->marker_path);
        goto out;
    }
    gboolean copied = ferry_block_copy_top(o->inner, base_rw, error);
    /* Back to a reader's locks; base_rw serves reads from now on. */
    ferry_block_lock_downgrade(base_rw->fd);
    base_rw->flags |= FERRY_BLOCK_READ_ONLY;
    if (!copied) {
        /* The base may be half written: the marker stays, so the next
         * commit or open finishes it. Reads stay right meanwhile: every
         * cluster written to the base is still allocated in the overlay. */
        ferry_block_close(ferry_block_swap_backing(o->inner, base_rw));
        g_prefix_error(error, _("%s: the commit could not finish and will be retried at the next "
                       "commit or start: "), o->drive);
        goto out;
    }
    if (!restart_overlay(o, base_rw, error)) {
        if (o->inner)
            ferry_block_close(ferry_block_swap_backing(o->inner, base_rw));
        goto out;
    }
    remove_marker(o->marker_path);
    ok = TRUE;
out:
    ferry_block_quiesce_end(bs);
    g_mutex_unlock(&o->lock);
    return ok;
}

gboolean
ferry_overlay_discard(FerryBlock *bs, GError **error)
{
    g_return_val_if_fail(bs && bs->drv == &ferry_block_overlay, FALSE);
    Overlay *o = O(bs);
    gboolean ok = FALSE;
    g_mutex_lock(&o->lock);
    ferry_block_quiesce_begin(bs);
    if (g_file_test(o->marker_path, G_FILE_TEST_EXISTS)) {
        g_set_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_PENDING,
                    _("%s: an earlier commit did not finish and %s holds part of it: commit "
                    "again instead of discarding."), o->drive, o->base_path);
    } else if (o->inner) {
        ok = restart_overlay(o, o->inner->backing, error);
    }
    ferry_block_quiesce_end(bs);
    g_mutex_unlock(&o->lock);
    return ok;
}

guint64
ferry_overlay_pending_bytes(FerryBlock *bs)
{
    g_return_val_if_fail(bs && bs->drv == &ferry_block_overlay, 0);
    Overlay *o = O(bs);
    /* Writes the guest saw finish count even while write-behind still holds
     * them (a commit folds them in). Not o->lock: the answer must not wait
     * for a commit (while one runs, nothing is in write-behind). */
    ferry_block_settle(bs);
    g_rw_lock_reader_lock(&o->swap);
    guint64 n = o->inner ? ferry_qcow2_allocated_bytes(o->inner) : 0;
    g_rw_lock_reader_unlock(&o->swap);
    return n;
}

const char *
ferry_overlay_get_path(FerryBlock *bs)
{
    g_return_val_if_fail(bs && bs->drv == &ferry_block_overlay, NULL);
    return O(bs)->overlay_path;
}

/* ---- leftovers ------------------------------------------------------------------ */

static void
leftover_free(gpointer p)
{
    FerryOverlayLeftoverInfo *l = p;
    g_free(l->drive);
    g_free(l->overlay_path);
    g_free(l->base_path);
    g_free(l->base_format);
    g_free(l);
}

GPtrArray *
ferry_overlay_list_leftovers(const char *data_dir, GError **error)
{
    GPtrArray *list = g_ptr_array_new_with_free_func(leftover_free);
    g_autoptr(GDir) dir = g_dir_open(data_dir, 0, NULL);
    if (!dir)
        return list;
    g_autoptr(GPtrArray) drives = g_ptr_array_new_with_free_func(g_free);
    const char *name;
    while ((name = g_dir_read_name(dir))) {
        if (g_str_has_suffix(name, "-overlay.qcow2"))
            g_ptr_array_add(drives, g_strndup(name, strlen(name) - strlen("-overlay.qcow2")));
        else if (g_str_has_suffix(name, "-overlay.commit"))
            g_ptr_array_add(drives, g_strndup(name, strlen(name) - strlen("-overlay.commit")));
    }
    g_ptr_array_sort(drives, (GCompareFunc) g_strcmp0);
    for (guint i = 0; i < drives->len; i++) {
        const char *drive = drives->pdata[i];
        if (i && !strcmp(drive, drives->pdata[i - 1]))
            continue;
        g_autofree char *marker = marker_file(data_dir, drive);
        g_autofree char *path = overlay_file(data_dir, drive);
        gboolean interrupted = g_file_test(marker, G_FILE_TEST_EXISTS);
        if (interrupted && !replay_commit(data_dir, drive, error)) {
            g_ptr_array_unref(list);
            return NULL;
        }
        g_autoptr(GError) err = NULL;
        /* Locked: a running VM's overlay, not a leftover. */
        FerryBlock *bs = ferry_block_open(path, "qcow2",
                                          FERRY_BLOCK_READ_ONLY | FERRY_BLOCK_NO_BACKING, &err);
        if (!bs && g_error_matches(err, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_LOCKED))
            continue;
        if (!bs) {
            g_propagate_error(error, g_steal_pointer(&err));
            g_ptr_array_unref(list);
            return NULL;
        }
        FerryOverlayLeftoverInfo *l = g_new0(FerryOverlayLeftoverInfo, 1);
        FerryBlockInfo info;
        ferry_block_get_info(bs, &info);
        l->drive = g_strdup(drive);
        l->overlay_path = g_strdup(path);
        l->base_path = g_strdup(info.full_backing_filename);
        l->base_format = g_strdup(info.backing_format);
        l->pending_bytes = ferry_qcow2_allocated_bytes(bs);
        l->commit_was_interrupted = interrupted;
        ferry_block_info_clear(&info);
        ferry_block_close(bs);
        g_ptr_array_add(list, l);
    }
    return list;
}

gboolean
ferry_overlay_commit_leftover(const char *data_dir, const char *drive, GError **error)
{
    if (!valid_drive(drive, error))
        return FALSE;
    g_autofree char *marker = marker_file(data_dir, drive);
    g_autofree char *path = overlay_file(data_dir, drive);
    if (g_file_test(marker, G_FILE_TEST_EXISTS) && !replay_commit(data_dir, drive, error))
        return FALSE;
    g_autofree char *base = NULL, *format = NULL;
    if (!ferry_qcow2_read_backing(path, &base, &format, error))
        return FALSE;
    if (!base) {
        g_set_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_CORRUPT,
                    _("Cannot commit %s: %s names no base image. Discard it."), drive, path);
        return FALSE;
    }
    FerryBlock *bs = ferry_overlay_open(base, format, data_dir, drive,
                                        FERRY_OVERLAY_KEEP_LEFTOVER, error);
    if (!bs)
        return FALSE;
    gboolean ok = ferry_overlay_commit(bs, error);
    ferry_block_close(bs);
    if (ok) {
        unlink(path);
        sync_dir(path);
    }
    return ok;
}

gboolean
ferry_overlay_discard_leftover(const char *data_dir, const char *drive, GError **error)
{
    if (!valid_drive(drive, error))
        return FALSE;
    g_autofree char *marker = marker_file(data_dir, drive);
    g_autofree char *path = overlay_file(data_dir, drive);
    /* A half-done commit cannot be undone: finishing it is the only way
     * to a base that is not mixed. */
    if (g_file_test(marker, G_FILE_TEST_EXISTS) && !replay_commit(data_dir, drive, error))
        return FALSE;
    if (!g_file_test(path, G_FILE_TEST_EXISTS))
        return TRUE;
    /* Refuse an overlay a running VM holds; a damaged one can go. */
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd >= 0 && !ferry_block_lock_fd(fd, path, TRUE, error)) {
        close(fd);
        return FALSE;
    }
    gboolean ok = unlink(path) == 0;
    if (!ok)
        ferry_file_set_error(error, errno, path, "remove");
    if (fd >= 0)
        close(fd);
    sync_dir(path);
    return ok;
}

/* vm-disks.c: a VM's hard disks (hda..hdd): opening the images, directly or
 * under a snapshot overlay (devices/block/overlay.c), the private folder of
 * a one-off snapshot run, leftovers of earlier runs, the disk jobs of the
 * API (query, commit, discard) and the monitor's `info block`, `commit`
 * and `discard`. The machines put the opened disks on virtio-blk. */
#include "vm-private.h"

#include "../devices/block/block.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <glib/gi18n-lib.h>

#define PRIVATE_PREFIX "ferry-snapshot-"

static const char *const drive_names[FERRY_MAX_DISKS] = { "hda", "hdb", "hdc", "hdd" };

/* Block layer errors as the engine reports them: the message stays, the
 * code says whose problem it is. */
static void
propagate_block_error(GError **error, GError *local, const char *prefix)
{
    int code = FERRY_ENGINE_ERROR_INVALID;

    if (local->domain == FERRY_BLOCK_ERROR) {
        switch (local->code) {
        case FERRY_BLOCK_ERROR_CANCELLED:
            code = FERRY_ENGINE_ERROR_CANCELLED;
            break;
        case FERRY_BLOCK_ERROR_FAILED:
        case FERRY_BLOCK_ERROR_NO_SPACE:
        case FERRY_BLOCK_ERROR_LOCKED:
        case FERRY_BLOCK_ERROR_READ_ONLY:
            code = FERRY_ENGINE_ERROR_HOST;
            break;
        default:
            break;
        }
    }
    if (prefix)
        g_set_error(error, FERRY_ENGINE_ERROR, code, "%s%s", prefix, local->message);
    else
        g_set_error_literal(error, FERRY_ENGINE_ERROR, code, local->message);
    g_error_free(local);
}

/* Guest bytes an image's own layer holds (the overlay's changes). */
static guint64
own_bytes(FerryBlock *bs)
{
    guint64 size = ferry_block_get_size(bs), off = 0, total = 0;

    while (off < size) {
        guint64 len = size - off;
        int st = ferry_block_status(bs, off, &len);
        if (st < 0 || len == 0)
            break;
        if (st & FERRY_BLOCK_STATUS_ALLOCATED)
            total += len;
        off += len;
    }
    return total;
}

static char *
overlay_file(const char *dir, const char *drive)
{
    g_autofree char *name = g_strdup_printf("%s-overlay.qcow2", drive);
    return g_build_filename(dir, name, NULL);
}

static char *
marker_file(const char *dir, const char *drive)
{
    g_autofree char *name = g_strdup_printf("%s-overlay.commit", drive);
    return g_build_filename(dir, name, NULL);
}

/* Before a run opens its overlay for `drive` in dir: an overlay in use by
 * another program refuses the start; one holding changes from an earlier
 * run is renamed out of the way, so it neither blocks this run nor leaks
 * into it, and stays listed as a leftover. (A half-done commit is not
 * touched here: ferry_overlay_open() finishes it.) */
static gboolean
clear_overlay_slot(const char *dir, const char *drive, GError **error)
{
    g_autofree char *path = overlay_file(dir, drive);
    g_autofree char *marker = marker_file(dir, drive);
    GError *local = NULL;

    if (!g_file_test(path, G_FILE_TEST_EXISTS) || g_file_test(marker, G_FILE_TEST_EXISTS))
        return TRUE;
    FerryBlock *probe = ferry_block_open(path, "qcow2", FERRY_BLOCK_READ_ONLY | FERRY_BLOCK_NO_BACKING,
                                         &local);
    if (!probe && g_error_matches(local, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_LOCKED)) {
        g_autofree char *prefix = g_strdup_printf("Hard disk %s: its snapshot overlay: ", drive);
        propagate_block_error(error, local, prefix);
        return FALSE;
    }
    /* A damaged overlay is set aside too: it may still hold something. */
    guint64 pending = probe ? own_bytes(probe) : 1;
    ferry_block_close(probe);
    g_clear_error(&local);
    if (pending == 0)
        return TRUE;

    g_autoptr(GDateTime) now = g_date_time_new_now_local();
    g_autofree char *stamp = g_date_time_format(now, "%Y%m%d-%H%M%S");
    for (guint n = 0; n < 100; n++) {
        g_autofree char *aside_drive = n ? g_strdup_printf("%s-%s-%u", drive, stamp, n)
                                         : g_strdup_printf("%s-%s", drive, stamp);
        g_autofree char *aside = overlay_file(dir, aside_drive);
        if (g_file_test(aside, G_FILE_TEST_EXISTS))
            continue;
        if (rename(path, aside) < 0) {
            g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_HOST,
                        _("Hard disk %s: cannot set aside the changes an earlier run left in %s: %s"),
                        drive, path, g_strerror(errno));
            return FALSE;
        }
        g_message("%s: the changes an earlier run left in %s were set aside as %s: commit or "
                  "discard them (they are listed as leftovers)", drive, path, aside);
        return TRUE;
    }
    g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_HOST,
                _("Hard disk %s: too many leftover overlays in %s: commit or discard them"), drive, dir);
    return FALSE;
}

gboolean
ferry_vm_disks_open(FerryVm *vm, GError **error)
{
    const FerryVmConfig *c = vm->config;
    gboolean any_overlay = FALSE;

    for (guint i = 0; i < FERRY_MAX_DISKS; i++)
        any_overlay |= c->snapshot && c->disks[i].path && !c->disks[i].readonly;
    if (any_overlay && !vm->snapshot_dir) {
        if (c->data_dir) {
            if (g_mkdir_with_parents(c->data_dir, 0700) < 0) {
                g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_HOST,
                            _("Cannot create the VM's folder %s for its snapshot overlays: %s"),
                            c->data_dir, g_strerror(errno));
                return FALSE;
            }
            vm->snapshot_dir = g_strdup(c->data_dir);
        } else {
            GError *local = NULL;
            vm->snapshot_dir = g_dir_make_tmp(PRIVATE_PREFIX "XXXXXX", &local);
            if (!vm->snapshot_dir) {
                g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_HOST,
                            _("Cannot create a folder for the snapshot overlays: %s; set TMPDIR "
                            "to a writable folder"), local->message);
                g_error_free(local);
                return FALSE;
            }
            vm->snapshot_dir_private = TRUE;
        }
    }

    for (guint i = 0; i < FERRY_MAX_DISKS; i++) {
        const FerryDriveConfig *dc = &c->disks[i];
        FerryVmDisk *d = &vm->disks[i];
        GError *local = NULL;

        g_strlcpy(d->name, drive_names[i], sizeof(d->name));
        if (!dc->path || d->bs)
            continue;
        d->readonly = dc->readonly;
        d->overlay = c->snapshot && !dc->readonly;
        if (d->overlay) {
            if (!clear_overlay_slot(vm->snapshot_dir, d->name, error))
                return FALSE;
            d->bs = ferry_overlay_open(dc->path, dc->format, vm->snapshot_dir, d->name,
                                       FERRY_OVERLAY_DISCARD_LEFTOVER, &local);
        } else {
            d->bs = ferry_block_open(dc->path, dc->format, dc->readonly ? FERRY_BLOCK_READ_ONLY : 0,
                                     &local);
        }
        if (!d->bs) {
            g_autofree char *prefix = g_strdup_printf("Hard disk %s: ", d->name);
            propagate_block_error(error, local, prefix);
            return FALSE;
        }
        if (d->overlay) {
            FerryBlockInfo info = { 0 };
            ferry_block_get_info(d->bs, &info);
            d->format = g_strdup(info.backing_format ? info.backing_format : "raw");
            ferry_block_info_clear(&info);
        } else {
            d->format = g_strdup(ferry_block_get_format(d->bs));
        }
        if (ferry_block_get_size(d->bs) < 512)
            g_message("Hard disk %s: %s is smaller than one sector: the guest sees an empty disk",
                      d->name, dc->path);
    }
    return TRUE;
}

void
ferry_vm_disks_drain(FerryVm *vm)
{
    for (guint i = 0; i < FERRY_MAX_DISKS; i++)
        if (vm->disks[i].bs)
            ferry_block_drain(vm->disks[i].bs);
}

gboolean
ferry_vm_disks_help(FerryVm *vm)
{
    for (guint i = 0; i < FERRY_MAX_DISKS; i++)
        if (vm->disks[i].bs && ferry_block_help(vm->disks[i].bs))
            return TRUE;
    return FALSE;
}

void
ferry_vm_disks_close(FerryVm *vm)
{
    g_mutex_lock(&vm->disk_jobs_lock);
    GThreadPool *jobs = g_steal_pointer(&vm->disk_jobs);
    g_mutex_unlock(&vm->disk_jobs_lock);
    if (jobs)
        g_thread_pool_free(jobs, FALSE, TRUE);      /* finishes queued jobs too */

    for (guint i = 0; i < FERRY_MAX_DISKS; i++) {
        FerryVmDisk *d = &vm->disks[i];
        if (!d->bs)
            continue;
        guint64 pending = d->overlay ? ferry_overlay_pending_bytes(d->bs) : 0;
        g_autofree char *path = d->overlay ? g_strdup(ferry_overlay_get_path(d->bs)) : NULL;
        ferry_block_close(g_steal_pointer(&d->bs));
        g_clear_pointer(&d->format, g_free);
        /* A stored VM keeps an overlay with changes (the next start lists
         * it); an empty one is of no use. */
        if (path && !vm->snapshot_dir_private && pending == 0) {
            g_autofree char *marker = marker_file(vm->snapshot_dir, d->name);
            if (!g_file_test(marker, G_FILE_TEST_EXISTS))
                g_unlink(path);
        }
    }
    if (vm->snapshot_dir && vm->snapshot_dir_private) {
        /* A one-off run ends: its changes go with it. A commit that was cut
         * short is finished first (discard_leftover does that), so the
         * base never stays half written. */
        for (guint i = 0; i < FERRY_MAX_DISKS; i++) {
            GError *local = NULL;
            if (!ferry_overlay_discard_leftover(vm->snapshot_dir, drive_names[i], &local)) {
                g_message("%s", local->message);
                g_error_free(local);
            }
        }
        if (g_rmdir(vm->snapshot_dir) < 0)
            g_message("Cannot remove the snapshot folder %s: %s", vm->snapshot_dir, g_strerror(errno));
    }
    g_clear_pointer(&vm->snapshot_dir, g_free);
    vm->snapshot_dir_private = FALSE;
}

/* ---- commit and discard ---------------------------------------------------------- */

/* The disks `drive` names: one ("hda".."hdd"), or with NULL or "all" every
 * disk in snapshot mode. FALSE with an error when there is none. */
static gboolean
select_disks(FerryVm *vm, const char *drive, const char *verb, gboolean chosen[FERRY_MAX_DISKS],
             GError **error)
{
    gboolean all = !drive || !strcmp(drive, "all"), any = FALSE;

    for (guint i = 0; i < FERRY_MAX_DISKS; i++) {
        FerryVmDisk *d = &vm->disks[i];
        chosen[i] = FALSE;
        if (!all && strcmp(drive, drive_names[i]))
            continue;
        if (!all && !d->bs) {
            g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                        _("There is no hard disk %s"), drive);
            return FALSE;
        }
        if (!all && !d->overlay) {
            g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                        _("%s is not in snapshot mode (%s): nothing to %s"), drive,
                        d->readonly ? "read-only" : "its writes go to the image directly", verb);
            return FALSE;
        }
        chosen[i] = d->bs && d->overlay;
        any |= chosen[i];
    }
    if (!all && !any) {
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                    _("Unknown drive '%s': choose all, hda, hdb, hdc or hdd"), drive);
        return FALSE;
    }
    if (!any) {
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                    _("No hard disk is in snapshot mode: nothing to %s"), verb);
        return FALSE;
    }
    return TRUE;
}

/* Commits (or discards) the chosen disks in order; a line per disk in out
 * (may be NULL). Stops at the first failure. Any thread but a block worker. */
static gboolean
fold_disks(FerryVm *vm, const char *drive, gboolean commit, GString *out, GError **error)
{
    gboolean chosen[FERRY_MAX_DISKS];

    if (!select_disks(vm, drive, commit ? "commit" : "discard", chosen, error))
        return FALSE;
    for (guint i = 0; i < FERRY_MAX_DISKS; i++) {
        FerryVmDisk *d = &vm->disks[i];
        GError *local = NULL;
        if (!chosen[i])
            continue;
        guint64 pending = ferry_overlay_pending_bytes(d->bs);
        gint64 t0 = g_get_monotonic_time();
        gboolean ok = commit ? ferry_overlay_commit(d->bs, &local) : ferry_overlay_discard(d->bs, &local);
        if (!ok) {
            g_autofree char *prefix = g_strdup_printf("%s: ", d->name);
            propagate_block_error(error, local, prefix);
            return FALSE;
        }
        if (out && commit)
            g_string_append_printf(out, "%s: committed %.1f MiB into %s in %.2f s\n", d->name,
                                   pending / 1048576.0, vm->config->disks[i].path,
                                   (g_get_monotonic_time() - t0) / 1e6);
        else if (out)
            g_string_append_printf(out, "%s: discarded %.1f MiB\n", d->name, pending / 1048576.0);
    }
    return TRUE;
}

static gboolean
disks_usable(FerryVm *vm, GError **error)
{
    if (ferry_vm_state_locked_get(vm) == FERRY_VM_STATE_CREATED) {
        g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_STATE,
                    _("The VM has not started, so its disks are not open: commit or discard the "
                    "changes of earlier runs as leftovers"));
        return FALSE;
    }
    return TRUE;
}

static void
fold_text(FerryVm *vm, const char *drive, gboolean commit, GString *out)
{
    g_autoptr(GError) error = NULL;

    if (!disks_usable(vm, &error) || !fold_disks(vm, drive, commit, out, &error))
        g_string_append_printf(out, "%s\n", error->message);
}

void
ferry_vm_disks_commit_text(FerryVm *vm, const char *drive, GString *out)
{
    fold_text(vm, drive, TRUE, out);
}

void
ferry_vm_disks_discard_text(FerryVm *vm, const char *drive, GString *out)
{
    fold_text(vm, drive, FALSE, out);
}

/* ---- listing ---------------------------------------------------------------------- */

void
ferry_vm_drive_info_free(FerryVmDriveInfo *info)
{
    if (!info)
        return;
    g_free(info->drive);
    g_free(info->path);
    g_free(info->format);
    g_free(info->overlay_path);
    g_free(info);
}

static GPtrArray *
list_drives(FerryVm *vm)
{
    GPtrArray *list = g_ptr_array_new_with_free_func((GDestroyNotify) ferry_vm_drive_info_free);

    for (guint i = 0; i < FERRY_MAX_DISKS; i++) {
        FerryVmDisk *d = &vm->disks[i];
        if (!d->bs)
            continue;
        FerryVmDriveInfo *info = g_new0(FerryVmDriveInfo, 1);
        info->drive = g_strdup(d->name);
        info->path = g_strdup(vm->config->disks[i].path);
        info->format = g_strdup(d->format);
        info->readonly = d->readonly;
        info->size = ferry_block_get_size(d->bs);
        if (d->overlay) {
            info->overlay_path = g_strdup(ferry_overlay_get_path(d->bs));
            info->pending_bytes = ferry_overlay_pending_bytes(d->bs);
        }
        g_ptr_array_add(list, info);
    }
    return list;
}

void
ferry_vm_disks_info(FerryVm *vm, GString *out)
{
    const FerryVmConfig *c = vm->config;
    gboolean any = FALSE;

    for (guint i = 0; i < FERRY_MAX_DISKS; i++) {
        FerryVmDisk *d = &vm->disks[i];
        if (!c->disks[i].path)
            continue;
        any = TRUE;
        if (!d->bs) {
            g_string_append_printf(out, "%s: %s (not open)\n", drive_names[i], c->disks[i].path);
            continue;
        }
        g_string_append_printf(out, "%s: %s (%s, %s)", d->name, c->disks[i].path, d->format,
                               d->readonly ? "ro" : "rw");
        if (d->overlay)
            g_string_append_printf(out, " overlay=%s pending=%.1f MiB", ferry_overlay_get_path(d->bs),
                                   ferry_overlay_pending_bytes(d->bs) / 1048576.0);
        g_string_append_c(out, '\n');
    }
    if (!any)
        g_string_append(out, "No hard disks\n");
}

/* ---- disk jobs of the API ------------------------------------------------------------ */

typedef enum { JOB_QUERY, JOB_COMMIT, JOB_DISCARD } JobKind;

typedef struct {
    FerryVm *vm;
    JobKind kind;
    char *drive;
    FerryVmDrivesReply drives_reply;
    FerryVmDiskReply disk_reply;
    gpointer user_data;
    GPtrArray *drives;
    GError *error;
} Job;

static void
job_free(gpointer data)
{
    Job *job = data;
    g_free(job->drive);
    if (job->drives)
        g_ptr_array_unref(job->drives);
    g_clear_error(&job->error);
    ferry_vm_unref(job->vm);
    g_free(job);
}

static gboolean
job_reply(gpointer data)
{
    Job *job = data;
    FerryVm *vm = job->vm;

    if (!vm->alive)
        return G_SOURCE_REMOVE;
    if (job->kind == JOB_QUERY) {
        if (job->drives_reply)
            job->drives_reply(vm, job->error ? NULL : job->drives, job->error, job->user_data);
    } else if (job->disk_reply) {
        job->disk_reply(vm, job->error, job->user_data);
    }
    return G_SOURCE_REMOVE;
}

/* Always through the context's loop, never from inside the call that
 * queued the job: callers must not see their callback re-entered. */
static void
post_reply(Job *job)
{
    GSource *src = g_idle_source_new();
    g_source_set_priority(src, G_PRIORITY_DEFAULT);
    g_source_set_callback(src, job_reply, job, job_free);
    g_source_attach(src, job->vm->caller_ctx);
    g_source_unref(src);
}

static void
run_job(gpointer data, gpointer user_data)
{
    Job *job = data;
    FerryVm *vm = job->vm;

    if (disks_usable(vm, &job->error)) {
        switch (job->kind) {
        case JOB_QUERY:
            job->drives = list_drives(vm);
            break;
        case JOB_COMMIT:
        case JOB_DISCARD:
            fold_disks(vm, job->drive, job->kind == JOB_COMMIT, NULL, &job->error);
            break;
        }
    }
    post_reply(job);
}

static void
queue_job(FerryVm *vm, JobKind kind, const char *drive, FerryVmDrivesReply drives_reply,
          FerryVmDiskReply disk_reply, gpointer user_data)
{
    Job *job = g_new0(Job, 1);
    job->vm = ferry_vm_ref(vm);
    job->kind = kind;
    job->drive = g_strdup(drive);
    job->drives_reply = drives_reply;
    job->disk_reply = disk_reply;
    job->user_data = user_data;

    if (!disks_usable(vm, &job->error)) {
        post_reply(job);
        return;
    }
    g_mutex_lock(&vm->disk_jobs_lock);
    if (!vm->disk_jobs)
        vm->disk_jobs = g_thread_pool_new(run_job, NULL, 1, FALSE, NULL);
    g_thread_pool_push(vm->disk_jobs, job, NULL);
    g_mutex_unlock(&vm->disk_jobs_lock);
}

void
ferry_vm_query_drives(FerryVm *vm, FerryVmDrivesReply reply, gpointer user_data)
{
    g_return_if_fail(vm != NULL);
    queue_job(vm, JOB_QUERY, NULL, reply, NULL, user_data);
}

void
ferry_vm_commit_drive(FerryVm *vm, const char *drive, FerryVmDiskReply reply, gpointer user_data)
{
    g_return_if_fail(vm != NULL);
    queue_job(vm, JOB_COMMIT, drive, NULL, reply, user_data);
}

void
ferry_vm_discard_drive(FerryVm *vm, const char *drive, FerryVmDiskReply reply, gpointer user_data)
{
    g_return_if_fail(vm != NULL);
    queue_job(vm, JOB_DISCARD, drive, NULL, reply, user_data);
}

/* ---- leftovers --------------------------------------------------------------------- */

void
ferry_vm_leftover_free(FerryVmLeftover *l)
{
    if (!l)
        return;
    g_free(l->name);
    g_free(l->drive);
    g_free(l->overlay_path);
    g_free(l->base_path);
    g_free(l);
}

/* Adds the leftovers with changes found in dir; names get "<folder>/" in
 * front for a one-off run's folder. */
static gboolean
add_leftovers(GPtrArray *out, const char *dir, const char *folder, GError **error)
{
    GError *local = NULL;
    g_autoptr(GPtrArray) found = ferry_overlay_list_leftovers(dir, &local);

    if (!found) {
        propagate_block_error(error, local, NULL);
        return FALSE;
    }
    for (guint i = 0; i < found->len; i++) {
        FerryOverlayLeftoverInfo *f = found->pdata[i];
        if (f->pending_bytes == 0 && !f->commit_was_interrupted)
            continue;
        FerryVmLeftover *l = g_new0(FerryVmLeftover, 1);
        l->name = folder ? g_strdup_printf("%s/%s", folder, f->drive) : g_strdup(f->drive);
        l->drive = g_strndup(f->drive, strcspn(f->drive, "-"));
        l->overlay_path = g_strdup(f->overlay_path);
        l->base_path = g_strdup(f->base_path);
        l->pending_bytes = f->pending_bytes;
        l->commit_was_interrupted = f->commit_was_interrupted;
        g_ptr_array_add(out, l);
    }
    return TRUE;
}

GPtrArray *
ferry_vm_config_list_leftovers(const FerryVmConfig *config, GError **error)
{
    g_return_val_if_fail(config != NULL, NULL);
    GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify) ferry_vm_leftover_free);

    if (config->data_dir) {
        if (!add_leftovers(out, config->data_dir, NULL, error))
            g_clear_pointer(&out, g_ptr_array_unref);
        return out;
    }
    /* One-off runs: folders of runs that did not end cleanly. A running
     * one's overlays are locked and not listed. */
    const char *tmp = g_get_tmp_dir();
    g_autoptr(GDir) dir = g_dir_open(tmp, 0, NULL);
    const char *name;
    while (dir && (name = g_dir_read_name(dir))) {
        if (!g_str_has_prefix(name, PRIVATE_PREFIX))
            continue;
        g_autofree char *path = g_build_filename(tmp, name, NULL);
        GError *local = NULL;
        if (!g_file_test(path, G_FILE_TEST_IS_DIR) || g_file_test(path, G_FILE_TEST_IS_SYMLINK))
            continue;
        if (!add_leftovers(out, path, name, &local)) {
            g_message("%s", local->message);
            g_error_free(local);
        }
    }
    return out;
}

/* The folder and drive a leftover name stands for. */
static gboolean
resolve_leftover(const FerryVmConfig *config, const char *name, char **dir, char **drive,
                 GError **error)
{
    const char *slash = strchr(name, '/');

    if (config->data_dir && !slash) {
        *dir = g_strdup(config->data_dir);
        *drive = g_strdup(name);
        return TRUE;
    }
    if (!config->data_dir && slash && g_str_has_prefix(name, PRIVATE_PREFIX) &&
        !strchr(slash + 1, '/') && !strstr(name, "..")) {
        g_autofree char *folder = g_strndup(name, slash - name);
        *dir = g_build_filename(g_get_tmp_dir(), folder, NULL);
        *drive = g_strdup(slash + 1);
        return TRUE;
    }
    g_set_error(error, FERRY_ENGINE_ERROR, FERRY_ENGINE_ERROR_INVALID,
                _("Unknown leftover '%s': use a name from the list of leftovers"), name);
    return FALSE;
}

static gboolean
fold_leftover(const FerryVmConfig *config, const char *name, gboolean commit, GError **error)
{
    if (!name) {
        g_autoptr(GPtrArray) all = ferry_vm_config_list_leftovers(config, error);
        if (!all)
            return FALSE;
        for (guint i = 0; i < all->len; i++) {
            FerryVmLeftover *l = all->pdata[i];
            if (!fold_leftover(config, l->name, commit, error))
                return FALSE;
        }
        return TRUE;
    }

    g_autofree char *dir = NULL, *drive = NULL;
    GError *local = NULL;
    if (!resolve_leftover(config, name, &dir, &drive, error))
        return FALSE;
    gboolean ok = commit ? ferry_overlay_commit_leftover(dir, drive, &local)
                         : ferry_overlay_discard_leftover(dir, drive, &local);
    if (!ok) {
        propagate_block_error(error, local, NULL);
        return FALSE;
    }
    if (!config->data_dir)
        g_rmdir(dir);       /* the folder of a one-off run goes once it is empty */
    return TRUE;
}

gboolean
ferry_vm_config_commit_leftover(const FerryVmConfig *config, const char *name, GError **error)
{
    g_return_val_if_fail(config != NULL, FALSE);
    return fold_leftover(config, name, TRUE, error);
}

gboolean
ferry_vm_config_discard_leftover(const FerryVmConfig *config, const char *name, GError **error)
{
    g_return_val_if_fail(config != NULL, FALSE);
    return fold_leftover(config, name, FALSE, error);
}

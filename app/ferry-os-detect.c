/* ferry-os-detect.c: see ferry-os-detect.h. */
#include "ferry-os-detect.h"

#include <glib/gi18n.h>
#include <osinfo/osinfo.h>

void
ferry_os_guess_free(FerryOsGuess *guess)
{
    if (!guess)
        return;
    g_free(guess->os_id);
    g_free(guess->name);
    g_free(guess->arch);
    g_free(guess);
}

static OsinfoDb *
shared_db(GError **error)
{
    static GMutex lock;
    static OsinfoDb *db;

    g_mutex_lock(&lock);
    if (!db) {
        OsinfoLoader *loader = osinfo_loader_new();
        GError *local = NULL;
        osinfo_loader_process_default_path(loader, &local);
        if (local) {
            g_propagate_error(error, local);
            g_object_unref(loader);
            g_mutex_unlock(&lock);
            return NULL;
        }
        db = g_object_ref(osinfo_loader_get_db(loader));
        g_object_unref(loader);
    }
    g_mutex_unlock(&lock);
    return db;
}

static const char *
our_arch(const char *osinfo_arch)
{
    if (!g_strcmp0(osinfo_arch, "x86_64") || !g_strcmp0(osinfo_arch, "i686") || !g_strcmp0(osinfo_arch, "i386"))
        return "x86_64";
    if (!g_strcmp0(osinfo_arch, "riscv64"))
        return "riscv64";
    return NULL;
}

/* The recommended resources for arch (or for all), else the minimum. */
static void
fill_resources(OsinfoOs *os, const char *arch, FerryOsGuess *g)
{
    OsinfoResourcesList *lists[2] = { osinfo_os_get_recommended_resources(os), osinfo_os_get_minimum_resources(os) };
    for (int l = 0; l < 2; l++) {
        for (int i = 0; lists[l] && i < osinfo_list_get_length(OSINFO_LIST(lists[l])); i++) {
            OsinfoResources *r = OSINFO_RESOURCES(osinfo_list_get_nth(OSINFO_LIST(lists[l]), i));
            const char *a = osinfo_resources_get_architecture(r);
            if (g_strcmp0(a, "all") != 0 && g_strcmp0(a, arch) != 0)
                continue;
            if (!g->ram && osinfo_resources_get_ram(r) > 0)
                g->ram = osinfo_resources_get_ram(r);
            if (!g->n_cpus && osinfo_resources_get_n_cpus(r) > 0)
                g->n_cpus = osinfo_resources_get_n_cpus(r);
            if (!g->storage && osinfo_resources_get_storage(r) > 0)
                g->storage = osinfo_resources_get_storage(r);
        }
        if (lists[l])
            g_object_unref(lists[l]);
    }
}

FerryOsGuess *
ferry_os_detect_media(const char *path, GError **error)
{
    OsinfoDb *db = shared_db(error);
    if (!db)
        return NULL;
    OsinfoMedia *media = osinfo_media_create_from_location(path, NULL, error);
    if (!media)
        return NULL;
    FerryOsGuess *g = NULL;
    if (osinfo_db_identify_media(db, media)) {
        OsinfoOs *os = osinfo_media_get_os(media);
        if (os) {
            g = g_new0(FerryOsGuess, 1);
            g->os_id = g_strdup(osinfo_product_get_short_id(OSINFO_PRODUCT(os)));
            g->name = g_strdup(osinfo_product_get_name(OSINFO_PRODUCT(os)));
            const char *arch = osinfo_media_get_architecture(media);
            g->arch = g_strdup(our_arch(arch));
            fill_resources(os, arch, g);
            g_object_unref(os);
        }
    }
    g_object_unref(media);
    if (!g) {
        g_autofree char *base = g_path_get_basename(path);
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                    _("The operating system on “%s” is not known to Ferry"), base);
    }
    return g;
}

static void
detect_thread(GTask *task, gpointer source, gpointer data, GCancellable *cancellable)
{
    GError *error = NULL;
    FerryOsGuess *g = ferry_os_detect_media(data, &error);
    if (g)
        g_task_return_pointer(task, g, (GDestroyNotify) ferry_os_guess_free);
    else
        g_task_return_error(task, error);
}

void
ferry_os_detect_media_async(const char *path, GCancellable *cancellable,
                            GAsyncReadyCallback callback, gpointer user_data)
{
    GTask *task = g_task_new(NULL, cancellable, callback, user_data);
    g_task_set_task_data(task, g_strdup(path), g_free);
    g_task_run_in_thread(task, detect_thread);
    g_object_unref(task);
}

FerryOsGuess *
ferry_os_detect_media_finish(GAsyncResult *result, GError **error)
{
    return g_task_propagate_pointer(G_TASK(result), error);
}

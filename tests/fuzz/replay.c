/* replay.c: runs files through LLVMFuzzerTestOneInput without libFuzzer,
 * so a gcc build with AddressSanitizer and UBSan replays the corpus in CI.
 * Arguments: files or folders (every file in them). Exit 0 when all ran. */
#include <glib.h>
#include <stdint.h>
#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static gint
by_name(gconstpointer a, gconstpointer b)
{
    return g_strcmp0(*(char *const *) a, *(char *const *) b);
}

static int
run_file(const char *path)
{
    g_autofree char *data = NULL;
    gsize len;
    g_autoptr(GError) error = NULL;
    if (!g_file_get_contents(path, &data, &len, &error)) {
        fprintf(stderr, "replay: %s\n", error->message);
        return 1;
    }
    fprintf(stderr, "replay: %s (%" G_GSIZE_FORMAT " bytes)\n", path, len);
    LLVMFuzzerTestOneInput((const uint8_t *) data, len);
    return 0;
}

int
main(int argc, char **argv)
{
    guint n = 0;
    int failed = 0;
    for (int i = 1; i < argc; i++) {
        if (g_file_test(argv[i], G_FILE_TEST_IS_DIR)) {
            g_autoptr(GDir) dir = g_dir_open(argv[i], 0, NULL);
            g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
            const char *name;
            while (dir && (name = g_dir_read_name(dir)))
                g_ptr_array_add(names, g_build_filename(argv[i], name, NULL));
            g_ptr_array_sort(names, by_name);
            for (guint k = 0; k < names->len; k++, n++)
                failed |= run_file(names->pdata[k]);
        } else {
            failed |= run_file(argv[i]);
            n++;
        }
    }
    fprintf(stderr, "replay: %u inputs, no crash\n", n);
    return failed || n == 0;
}

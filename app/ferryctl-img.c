/* ferryctl-img.c: `ferryctl img create|info|check|convert|commit`, the
 * block layer (devices/block) as a command line. Arguments, output and exit
 * status follow Debian's qemu-img 7.2 so habits and scripts carry over:
 * `info --output=json` has qemu-img's keys, `check` exits 0 (clean), 2
 * (corruptions), 3 (leaks) or 63 (nothing to check), every other failure 1. */
#include "ferryctl-img.h"

#include "block/block.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define EXIT_ERR 1

static const char usage_text[] =
    "Usage: ferryctl img COMMAND [OPTIONS...]\n"
    "\n"
    "Commands (as qemu-img):\n"
    "  create [-q] [-f FMT] [-b BACKING [-F BACKING_FMT]] [-u] [-o OPTIONS] FILE [SIZE]\n"
    "  info [-f FMT] [--output=human|json] [-U] FILE\n"
    "  check [-q] [-f FMT] [--output=human|json] [-r leaks|all] [-U] FILE\n"
    "  convert [-q] [-f FMT] [-O OUTPUT_FMT] [-o OPTIONS] [-U] INPUT OUTPUT\n"
    "  commit [-q] [-f FMT] [-d] FILE\n"
    "\n"
    "FMT is raw or qcow2. SIZE is in bytes, or with a k, M, G, T, P or E suffix.\n"
    "-o takes cluster_size, refcount_bits, compression_type, backing_file, backing_fmt,\n"
    "compat=1.1, lazy_refcounts=off, extended_l2=off, preallocation=off.\n"
    "-U opens images other programs are using (may show inconsistent data).\n";

static int G_GNUC_PRINTF(1, 2)
err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    fprintf(stderr, "ferryctl img: %s\n", msg);
    return EXIT_ERR;
}

static int
gerr(const GError *error)
{
    return err("%s", error->message);
}

static int
usage(void)
{
    fputs(usage_text, stderr);
    return EXIT_ERR;
}

/* qemu-img's sizes: bytes, or a number (fractions too) with k/K, M, G, T,
 * P, E (binary) or b (bytes). */
static gboolean
parse_size(const char *s, guint64 *out)
{
    char *end;
    if (!s || !*s || *s == '-')
        return FALSE;
    errno = 0;
    double v = g_ascii_strtod(s, &end);
    if (errno || end == s || v < 0)
        return FALSE;
    double mul = 1;
    if (*end) {
        const char *units = "bkmgtpe";
        const char *u = strchr(units, g_ascii_tolower(*end));
        if (!u || end[1])
            return FALSE;
        mul = ldexp(1, 10 * (int) (u - units));
    }
    if (mul == 1 && strchr(s, '.'))
        return FALSE;
    double bytes = v * mul;
    if (bytes >= 18446744073709551616.0)
        return FALSE;
    *out = (guint64) bytes;
    return TRUE;
}

/* qemu-img's human sizes: three significant digits, binary units. */
static char *
size_to_str(guint64 v)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
    guint i = 0;
    double d = v;
    while (d >= 1000 && i < G_N_ELEMENTS(units) - 1) {
        d /= 1024;
        i++;
    }
    return g_strdup_printf("%0.3g %s", d, units[i]);
}

/* -o a=b,c=d into opts. */
static gboolean
parse_options(const char *s, FerryBlockCreateOptions *opts, char **owned_backing,
              char **owned_backing_fmt, char **owned_ctype)
{
    g_auto(GStrv) parts = g_strsplit(s, ",", -1);
    for (guint i = 0; parts[i]; i++) {
        if (!*parts[i])
            continue;
        char *eq = strchr(parts[i], '=');
        if (!eq) {
            err("invalid option '%s': use NAME=VALUE", parts[i]);
            return FALSE;
        }
        *eq = 0;
        const char *k = parts[i], *v = eq + 1;
        guint64 n;
        if (!strcmp(k, "cluster_size")) {
            if (!parse_size(v, &n) || n > G_MAXUINT32) {
                err("invalid cluster_size '%s'", v);
                return FALSE;
            }
            opts->cluster_size = (guint32) n;
        } else if (!strcmp(k, "refcount_bits")) {
            if (!parse_size(v, &n) || n > 64) {
                err("invalid refcount_bits '%s'", v);
                return FALSE;
            }
            opts->refcount_bits = (guint) n;
        } else if (!strcmp(k, "compression_type")) {
            g_free(*owned_ctype);
            opts->compression_type = *owned_ctype = g_strdup(v);
        } else if (!strcmp(k, "backing_file")) {
            g_free(*owned_backing);
            opts->backing_file = *owned_backing = g_strdup(v);
        } else if (!strcmp(k, "backing_fmt")) {
            g_free(*owned_backing_fmt);
            opts->backing_format = *owned_backing_fmt = g_strdup(v);
        } else if (!strcmp(k, "compat")) {
            if (strcmp(v, "1.1") && strcmp(v, "v3")) {
                err("compat=%s is not supported: Ferry writes version 3 (compat=1.1) images only", v);
                return FALSE;
            }
        } else if (!strcmp(k, "lazy_refcounts") || !strcmp(k, "extended_l2")) {
            if (strcmp(v, "off")) {
                err("%s=%s is not supported: only off", k, v);
                return FALSE;
            }
        } else if (!strcmp(k, "preallocation")) {
            if (strcmp(v, "off")) {
                err("preallocation=%s is not supported: only off", v);
                return FALSE;
            }
        } else if (!strcmp(k, "size")) {
            if (!parse_size(v, &opts->size)) {
                err("invalid size '%s'", v);
                return FALSE;
            }
        } else {
            err("unknown option '%s'", k);
            return FALSE;
        }
    }
    return TRUE;
}

/* ---- create ------------------------------------------------------------------------ */

static int
cmd_create(int argc, char **argv)
{
    FerryBlockCreateOptions opts = { .format = "raw" };
    g_autofree char *o_backing = NULL, *o_backing_fmt = NULL, *o_ctype = NULL;
    gboolean quiet = FALSE;
    int c;
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    while ((c = getopt_long(argc, argv, "+hqf:b:F:uo:", longopts, NULL)) != -1) {
        switch (c) {
        case 'q': quiet = TRUE; break;
        case 'f': opts.format = optarg; break;
        case 'b': opts.backing_file = optarg; break;
        case 'F': opts.backing_format = optarg; break;
        case 'u': opts.no_backing_check = TRUE; break;
        case 'o':
            if (!parse_options(optarg, &opts, &o_backing, &o_backing_fmt, &o_ctype))
                return EXIT_ERR;
            break;
        case 'h': fputs(usage_text, stdout); return 0;
        default: return usage();
        }
    }
    if (optind >= argc)
        return err("create: expecting an image file name");
    const char *file = argv[optind++];
    gboolean have_size = opts.size != 0;
    if (optind < argc) {
        if (!parse_size(argv[optind], &opts.size))
            return err("invalid image size '%s': use bytes, or a number with k, M, G, T, P or E",
                       argv[optind]);
        have_size = TRUE;
        optind++;
    }
    if (optind < argc)
        return err("create: unexpected argument '%s'", argv[optind]);
    if (strcmp(opts.format, "raw") && strcmp(opts.format, "qcow2"))
        return err("unknown format '%s': use raw or qcow2", opts.format);
    if (!have_size && !opts.backing_file)
        return err("%s: image creation needs a size", file);

    g_autoptr(GError) error = NULL;
    if (!ferry_block_create(file, &opts, &error))
        return gerr(error);
    if (!quiet) {
        /* The size may have come from the backing file. */
        FerryBlock *bs = ferry_block_open(file, opts.format, FERRY_BLOCK_READ_ONLY |
                                          FERRY_BLOCK_NO_LOCK | FERRY_BLOCK_NO_BACKING, NULL);
        if (bs)
            opts.size = ferry_block_get_size(bs);
        ferry_block_close(bs);
        if (!strcmp(opts.format, "qcow2"))
            printf("Formatting '%s', fmt=qcow2 cluster_size=%u extended_l2=off compression_type=%s "
                   "size=%" G_GUINT64_FORMAT "%s%s%s%s lazy_refcounts=off refcount_bits=%u\n", file,
                   opts.cluster_size ? opts.cluster_size : 65536,
                   opts.compression_type ? opts.compression_type : "zlib", opts.size,
                   opts.backing_file ? " backing_file=" : "",
                   opts.backing_file ? opts.backing_file : "",
                   opts.backing_format ? " backing_fmt=" : "",
                   opts.backing_format ? opts.backing_format : "",
                   opts.refcount_bits ? opts.refcount_bits : 16);
        else
            printf("Formatting '%s', fmt=raw size=%" G_GUINT64_FORMAT "\n", file, opts.size);
    }
    return 0;
}

/* ---- info -------------------------------------------------------------------------- */

static void
json_string(GString *out, const char *s)
{
    g_string_append_c(out, '"');
    for (const guchar *p = (const guchar *) s; *p; p++) {
        switch (*p) {
        case '"': g_string_append(out, "\\\""); break;
        case '\\': g_string_append(out, "\\\\"); break;
        case '\n': g_string_append(out, "\\n"); break;
        case '\t': g_string_append(out, "\\t"); break;
        case '\r': g_string_append(out, "\\r"); break;
        default:
            if (*p < 0x20)
                g_string_append_printf(out, "\\u%04x", *p);
            else
                g_string_append_c(out, *p);
        }
    }
    g_string_append_c(out, '"');
}

static void
print_info_json(const FerryBlockInfo *info)
{
    g_autoptr(GString) j = g_string_new("{\n");
    if (info->snapshots && info->snapshots->len) {
        g_string_append(j, "    \"snapshots\": [\n");
        for (guint i = 0; i < info->snapshots->len; i++) {
            FerryBlockSnapshot *sn = info->snapshots->pdata[i];
            g_string_append(j, "        {\n");
            if (sn->icount != G_MAXUINT64)
                g_string_append_printf(j, "            \"icount\": %" G_GUINT64_FORMAT ",\n", sn->icount);
            g_string_append_printf(j, "            \"vm-clock-nsec\": %" G_GUINT64_FORMAT ",\n",
                                   sn->vm_clock_nsec % 1000000000);
            g_string_append(j, "            \"name\": ");
            json_string(j, sn->name);
            g_string_append_printf(j, ",\n            \"date-sec\": %" G_GINT64_FORMAT ",\n"
                                   "            \"date-nsec\": %u,\n"
                                   "            \"vm-clock-sec\": %" G_GUINT64_FORMAT ",\n"
                                   "            \"id\": ",
                                   sn->date_sec, sn->date_nsec, sn->vm_clock_nsec / 1000000000);
            json_string(j, sn->id);
            g_string_append_printf(j, ",\n            \"vm-state-size\": %" G_GUINT64_FORMAT "\n"
                                   "        }%s\n", sn->vm_state_size,
                                   i + 1 < info->snapshots->len ? "," : "");
        }
        g_string_append(j, "    ],\n");
    }
    if (info->backing_format) {
        g_string_append(j, "    \"backing-filename-format\": ");
        json_string(j, info->backing_format);
        g_string_append(j, ",\n");
    }
    g_string_append_printf(j, "    \"virtual-size\": %" G_GUINT64_FORMAT ",\n    \"filename\": ",
                           info->virtual_size);
    json_string(j, info->filename);
    g_string_append(j, ",\n");
    if (info->cluster_size)
        g_string_append_printf(j, "    \"cluster-size\": %u,\n", info->cluster_size);
    g_string_append(j, "    \"format\": ");
    json_string(j, info->format);
    g_string_append_printf(j, ",\n    \"actual-size\": %" G_GUINT64_FORMAT ",\n", info->actual_size);
    if (info->compat) {
        g_string_append_printf(j,
            "    \"format-specific\": {\n"
            "        \"type\": \"qcow2\",\n"
            "        \"data\": {\n"
            "            \"compat\": \"%s\",\n"
            "            \"compression-type\": \"%s\",\n"
            "            \"lazy-refcounts\": %s,\n"
            "            \"refcount-bits\": %u,\n"
            "            \"corrupt\": %s,\n"
            "            \"extended-l2\": %s\n"
            "        }\n"
            "    },\n",
            info->compat, info->compression_type, info->lazy_refcounts ? "true" : "false",
            info->refcount_bits, info->corrupt ? "true" : "false",
            info->extended_l2 ? "true" : "false");
    }
    if (info->backing_filename) {
        g_string_append(j, "    \"full-backing-filename\": ");
        json_string(j, info->full_backing_filename);
        g_string_append(j, ",\n    \"backing-filename\": ");
        json_string(j, info->backing_filename);
        g_string_append(j, ",\n");
    }
    g_string_append_printf(j, "    \"dirty-flag\": %s\n}\n", info->dirty ? "true" : "false");
    fputs(j->str, stdout);
}

static void
print_info_human(const FerryBlockInfo *info)
{
    g_autofree char *vsize = size_to_str(info->virtual_size);
    g_autofree char *dsize = size_to_str(info->actual_size);
    printf("image: %s\nfile format: %s\nvirtual size: %s (%" G_GUINT64_FORMAT " bytes)\n"
           "disk size: %s\n", info->filename, info->format, vsize, info->virtual_size, dsize);
    if (info->cluster_size)
        printf("cluster_size: %u\n", info->cluster_size);
    if (info->backing_filename) {
        if (strcmp(info->backing_filename, info->full_backing_filename))
            printf("backing file: %s (actual path: %s)\n", info->backing_filename,
                   info->full_backing_filename);
        else
            printf("backing file: %s\n", info->backing_filename);
        if (info->backing_format)
            printf("backing file format: %s\n", info->backing_format);
    }
    if (info->snapshots && info->snapshots->len) {
        printf("Snapshot list:\n%-9s %-17s %7s%20s%13s%11s\n", "ID", "TAG", "VM SIZE", "DATE",
               "VM CLOCK", "ICOUNT");
        for (guint i = 0; i < info->snapshots->len; i++) {
            FerryBlockSnapshot *sn = info->snapshots->pdata[i];
            g_autofree char *vm = size_to_str(sn->vm_state_size);
            char date[32] = "";
            time_t t = (time_t) sn->date_sec;
            struct tm tm;
            if (localtime_r(&t, &tm))
                strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
            guint64 ms = sn->vm_clock_nsec / 1000000;
            g_autofree char *clock = g_strdup_printf("%02" G_GUINT64_FORMAT ":%02u:%02u.%03u",
                                                     ms / 3600000, (guint) (ms / 60000 % 60),
                                                     (guint) (ms / 1000 % 60), (guint) (ms % 1000));
            g_autofree char *icount = sn->icount == G_MAXUINT64 ? g_strdup("")
                                      : g_strdup_printf("%" G_GUINT64_FORMAT, sn->icount);
            printf("%-9s %-17s %7s%20s%13s%11s\n", sn->id, sn->name, vm, date, clock, icount);
        }
    }
    if (info->compat)
        printf("Format specific information:\n    compat: %s\n    compression type: %s\n"
               "    lazy refcounts: %s\n    refcount bits: %u\n    corrupt: %s\n"
               "    extended l2: %s\n", info->compat, info->compression_type,
               info->lazy_refcounts ? "true" : "false", info->refcount_bits,
               info->corrupt ? "true" : "false", info->extended_l2 ? "true" : "false");
}

enum { OPT_OUTPUT = 256, OPT_BACKING_CHAIN };

static gboolean
parse_output(const char *v, gboolean *json)
{
    if (!strcmp(v, "json"))
        *json = TRUE;
    else if (!strcmp(v, "human"))
        *json = FALSE;
    else
        return FALSE;
    return TRUE;
}

static int
cmd_info(int argc, char **argv)
{
    const char *format = NULL;
    gboolean json = FALSE, force_share = FALSE;
    int c;
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "output", required_argument, NULL, OPT_OUTPUT },
        { "force-share", no_argument, NULL, 'U' },
        { "backing-chain", no_argument, NULL, OPT_BACKING_CHAIN },
        { NULL, 0, NULL, 0 },
    };
    while ((c = getopt_long(argc, argv, "+hf:U", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': format = optarg; break;
        case 'U': force_share = TRUE; break;
        case OPT_OUTPUT:
            if (!parse_output(optarg, &json))
                return err("--output must be human or json");
            break;
        case OPT_BACKING_CHAIN:
            return err("--backing-chain is not supported yet");
        case 'h': fputs(usage_text, stdout); return 0;
        default: return usage();
        }
    }
    if (optind != argc - 1)
        return err("info: expecting one image file name");
    g_autoptr(GError) error = NULL;
    FerryBlock *bs = ferry_block_open(argv[optind], format,
                                      FERRY_BLOCK_READ_ONLY | FERRY_BLOCK_NO_BACKING |
                                      (force_share ? FERRY_BLOCK_NO_LOCK : 0), &error);
    if (!bs)
        return gerr(error);
    FerryBlockInfo info;
    ferry_block_get_info(bs, &info);
    if (json)
        print_info_json(&info);
    else
        print_info_human(&info);
    ferry_block_info_clear(&info);
    ferry_block_close(bs);
    return 0;
}

/* ---- check -------------------------------------------------------------------------- */

static void
print_check(const char *file, const char *format, const FerryBlockCheck *r, gboolean json)
{
    if (json) {
        printf("{\n    \"image-end-offset\": %" G_GUINT64_FORMAT ",\n"
               "    \"total-clusters\": %" G_GUINT64_FORMAT ",\n", r->image_end_offset,
               r->total_clusters);
        if (r->corruptions)
            printf("    \"corruptions\": %" G_GUINT64_FORMAT ",\n", r->corruptions);
        printf("    \"check-errors\": %" G_GUINT64_FORMAT ",\n", r->check_errors);
        if (r->leaks)
            printf("    \"leaks\": %" G_GUINT64_FORMAT ",\n", r->leaks);
        if (r->leaks_fixed)
            printf("    \"leaks-fixed\": %" G_GUINT64_FORMAT ",\n", r->leaks_fixed);
        g_autoptr(GString) name = g_string_new(NULL);
        json_string(name, file);
        printf("    \"allocated-clusters\": %" G_GUINT64_FORMAT ",\n"
               "    \"filename\": %s,\n    \"format\": \"%s\"\n}\n", r->allocated_clusters,
               name->str, format);
        return;
    }
    if (!r->corruptions && !r->leaks && !r->check_errors) {
        printf("No errors were found on the image.\n");
    } else {
        if (r->corruptions)
            printf("\n%" G_GUINT64_FORMAT " errors were found on the image.\nData may be "
                   "corrupted, or further writes to the image may corrupt it.\n", r->corruptions);
        if (r->leaks)
            printf("\n%" G_GUINT64_FORMAT " leaked clusters were found on the image.\nThis means "
                   "waste of disk space, but no harm to data.\n", r->leaks);
        if (r->check_errors)
            printf("\n%" G_GUINT64_FORMAT " internal errors have occurred during the check.\n",
                   r->check_errors);
    }
    if (r->total_clusters)
        printf("%" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT " = %0.2f%% allocated, %0.2f%% "
               "fragmented, %0.2f%% compressed clusters\n", r->allocated_clusters,
               r->total_clusters, r->allocated_clusters * 100.0 / r->total_clusters,
               r->allocated_clusters ? r->fragmented_clusters * 100.0 / r->allocated_clusters : 0,
               r->allocated_clusters ? r->compressed_clusters * 100.0 / r->allocated_clusters : 0);
    if (r->image_end_offset)
        printf("Image end offset: %" G_GUINT64_FORMAT "\n", r->image_end_offset);
}

static int
check_status(const FerryBlockCheck *r)
{
    if (r->check_errors)
        return 1;
    if (r->corruptions)
        return 2;
    if (r->leaks)
        return 3;
    return 0;
}

static int
cmd_check(int argc, char **argv)
{
    const char *format = NULL, *repair = NULL;
    gboolean json = FALSE, force_share = FALSE, quiet = FALSE;
    int c;
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "output", required_argument, NULL, OPT_OUTPUT },
        { "repair", required_argument, NULL, 'r' },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    while ((c = getopt_long(argc, argv, "+hqf:r:U", longopts, NULL)) != -1) {
        switch (c) {
        case 'q': quiet = TRUE; break;
        case 'f': format = optarg; break;
        case 'r':
            if (strcmp(optarg, "leaks") && strcmp(optarg, "all"))
                return err("-r must be leaks or all");
            repair = optarg;
            break;
        case 'U': force_share = TRUE; break;
        case OPT_OUTPUT:
            if (!parse_output(optarg, &json))
                return err("--output must be human or json");
            break;
        case 'h': fputs(usage_text, stdout); return 0;
        default: return usage();
        }
    }
    if (optind != argc - 1)
        return err("check: expecting one image file name");
    if (repair && force_share)
        return err("-r and -U cannot be used together: a repair needs the image to itself");
    const char *file = argv[optind];
    g_autoptr(GError) error = NULL;
    FerryBlockFlags flags = FERRY_BLOCK_NO_BACKING | (repair ? 0 : FERRY_BLOCK_READ_ONLY) |
                            (force_share ? FERRY_BLOCK_NO_LOCK : 0);
    FerryBlock *bs = ferry_block_open(file, format, flags, &error);
    if (!bs && repair && error->code == FERRY_BLOCK_ERROR_CORRUPT) {
        /* A marked-corrupt or dirty image: open it read-only for the report. */
        g_clear_error(&error);
        bs = ferry_block_open(file, format, flags | FERRY_BLOCK_READ_ONLY, &error);
        repair = NULL;
        if (bs)
            fprintf(stderr, "ferryctl img: %s cannot be repaired by Ferry (only leaked clusters "
                    "can): use 'qemu-img check -r all'. Checking only.\n", file);
    }
    if (!bs)
        return gerr(error);
    FerryBlockCheck r;
    if (!ferry_block_check(bs, &r, repair != NULL, &error)) {
        ferry_block_check_clear(&r);
        ferry_block_close(bs);
        if (error->code == FERRY_BLOCK_ERROR_UNSUPPORTED) {
            err("This image format does not support checks");
            return 63;
        }
        return gerr(error);
    }
    for (guint i = 0; i < r.messages->len; i++)
        if (!quiet || !g_str_has_prefix(r.messages->pdata[i], "Repairing"))
            fprintf(stderr, "%s\n", (char *) r.messages->pdata[i]);
    if (repair && r.leaks_fixed) {
        if (!quiet)
            printf("The following inconsistencies were found and repaired:\n\n"
                   "    %" G_GUINT64_FORMAT " leaked clusters\n    0 corruptions\n\n"
                   "Double checking the fixed image now...\n", r.leaks_fixed);
        ferry_block_check_clear(&r);
        if (!ferry_block_check(bs, &r, FALSE, &error)) {
            ferry_block_close(bs);
            return gerr(error);
        }
        for (guint i = 0; i < r.messages->len; i++)
            fprintf(stderr, "%s\n", (char *) r.messages->pdata[i]);
    }
    if (!quiet || json)
        print_check(file, ferry_block_get_format(bs), &r, json);
    int status = check_status(&r);
    ferry_block_check_clear(&r);
    ferry_block_close(bs);
    return status;
}

/* ---- convert ------------------------------------------------------------------------- */

#define CONVERT_CHUNK (2u << 20)

static gboolean
all_zero(const guint8 *p, gsize n)
{
    for (gsize i = 0; i < n; i++)
        if (p[i])
            return FALSE;
    return TRUE;
}

static int
cmd_convert(int argc, char **argv)
{
    const char *in_fmt = NULL;
    FerryBlockCreateOptions opts = { .format = "raw" };
    g_autofree char *o_backing = NULL, *o_backing_fmt = NULL, *o_ctype = NULL;
    gboolean force_share = FALSE, progress = FALSE;
    int c;
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    while ((c = getopt_long(argc, argv, "+hqpf:O:o:Uc", longopts, NULL)) != -1) {
        switch (c) {
        case 'q': break;
        case 'p': progress = TRUE; break;
        case 'f': in_fmt = optarg; break;
        case 'O': opts.format = optarg; break;
        case 'o':
            if (!parse_options(optarg, &opts, &o_backing, &o_backing_fmt, &o_ctype))
                return EXIT_ERR;
            break;
        case 'U': force_share = TRUE; break;
        case 'c': return err("convert: compressed output (-c) is not supported yet");
        case 'h': fputs(usage_text, stdout); return 0;
        default: return usage();
        }
    }
    if (argc - optind != 2)
        return err("convert: expecting one input and one output file name");
    if (opts.backing_file)
        return err("convert: an output backing file is not supported; the output is flattened");
    if (strcmp(opts.format, "raw") && strcmp(opts.format, "qcow2"))
        return err("unknown output format '%s': use raw or qcow2", opts.format);
    const char *in_file = argv[optind], *out_file = argv[optind + 1];
    g_autoptr(GError) error = NULL;

    FerryBlock *in = ferry_block_open(in_file, in_fmt,
                                      FERRY_BLOCK_READ_ONLY | (force_share ? FERRY_BLOCK_NO_LOCK : 0),
                                      &error);
    if (!in)
        return gerr(error);
    opts.size = ferry_block_get_size(in);
    FerryBlock *out = NULL;
    g_autofree guint8 *buf = g_malloc(CONVERT_CHUNK);
    int status = EXIT_ERR;
    if (!ferry_block_create(out_file, &opts, &error) ||
        !(out = ferry_block_open(out_file, opts.format, 0, &error)))
        goto out;
    guint64 size = opts.size;
    for (guint64 off = 0; off < size;) {
        guint64 len = MIN(CONVERT_CHUNK, size - off);
        int st = ferry_block_status(in, off, &len);
        if (st < 0) {
            char *why = ferry_block_last_error(in);
            err("Cannot read %s: %s", in_file, why ? why : g_strerror(-st));
            g_free(why);
            goto out;
        }
        if (!(st & FERRY_BLOCK_STATUS_ZERO)) {
            if (!ferry_block_pread(in, off, buf, len, &error))
                goto out;
            /* Fresh output reads as zeros: write only what is not. */
            for (guint64 p = 0; p < len;) {
                guint64 n = MIN(65536 - ((off + p) & 65535), len - p);
                if (!all_zero(buf + p, n)) {
                    guint64 q = p + n;
                    while (q < len) {
                        guint64 m = MIN(65536, len - q);
                        if (all_zero(buf + q, m))
                            break;
                        q += m;
                    }
                    if (!ferry_block_pwrite(out, off + p, buf + p, q - p, &error))
                        goto out;
                    n = q - p;
                }
                p += n;
            }
        }
        off += len;
        if (progress)
            fprintf(stderr, "    (%.2f/100%%)\r", off * 100.0 / size);
    }
    if (!ferry_block_flush(out, &error))
        goto out;
    if (progress)
        fprintf(stderr, "    (100.00/100%%)\n");
    status = 0;
out:
    if (error)
        gerr(error);
    ferry_block_close(out);
    ferry_block_close(in);
    return status;
}

/* ---- commit --------------------------------------------------------------------------- */

static int
cmd_commit(int argc, char **argv)
{
    const char *format = NULL;
    gboolean keep = FALSE, quiet = FALSE;
    int c;
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    while ((c = getopt_long(argc, argv, "+hqf:dp", longopts, NULL)) != -1) {
        switch (c) {
        case 'q': quiet = TRUE; break;
        case 'f': format = optarg; break;
        case 'd': keep = TRUE; break;
        case 'p': break;
        case 'h': fputs(usage_text, stdout); return 0;
        default: return usage();
        }
    }
    if (optind != argc - 1)
        return err("commit: expecting one image file name");
    g_autoptr(GError) error = NULL;
    if (!ferry_block_commit_image(argv[optind], format, keep, &error))
        return gerr(error);
    if (!quiet)
        printf("Image committed.\n");
    return 0;
}

/* ---- dispatch --------------------------------------------------------------------------- */

int
ferryctl_img_main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
    } cmds[] = {
        { "create", cmd_create },
        { "info", cmd_info },
        { "check", cmd_check },
        { "convert", cmd_convert },
        { "commit", cmd_commit },
    };
    if (argc < 2)
        return usage();
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(usage_text, stdout);
        return 0;
    }
    for (guint i = 0; i < G_N_ELEMENTS(cmds); i++) {
        if (!strcmp(argv[1], cmds[i].name)) {
            optind = 1;
            opterr = 1;
            return cmds[i].run(argc - 1, argv + 1);
        }
    }
    err("unknown command '%s'", argv[1]);
    return usage();
}

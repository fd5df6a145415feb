/* qcow2.c: the qcow2 image format (QEMU's docs/interop/qcow2.txt): version 2
 * read, version 3 read and write; L1/L2 mapping, refcounts with allocation
 * and growth, backing files, zero clusters, compressed clusters (zlib, zstd)
 * read, internal snapshots listed, and `check`.
 *
 * Crash safety (kill -9 or power loss leaves leaks at most, and every write
 * before a completed flush): a cluster's refcount is written before any L2
 * entry can point at it; L2 and L1 updates stay in memory until a flush (or
 * an L2 cache eviction) writes them, after an fdatasync that makes the data
 * and refcounts they point at durable; clusters an update stops pointing at
 * are freed only after that update is on disk. */
#include "block-private.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>
#include <glib/gi18n-lib.h>

#define QCOW2_MAGIC             0x514649fbu     /* "QFI\xfb" */

#define OFLAG_COPIED            (G_GUINT64_CONSTANT(1) << 63)
#define OFLAG_COMPRESSED        (G_GUINT64_CONSTANT(1) << 62)
#define OFLAG_ZERO              G_GUINT64_CONSTANT(1)
#define L1E_OFFSET_MASK         G_GUINT64_CONSTANT(0x00fffffffffffe00)
#define L1E_RESERVED_MASK       G_GUINT64_CONSTANT(0x7f000000000001ff)
#define L2E_OFFSET_MASK         G_GUINT64_CONSTANT(0x00fffffffffffe00)
#define L2E_STD_RESERVED_MASK   G_GUINT64_CONSTANT(0x3f000000000001fe)
#define REFT_OFFSET_MASK        G_GUINT64_CONSTANT(0xfffffffffffffe00)
#define MAX_HOST_OFFSET         (G_GUINT64_CONSTANT(1) << 56)

#define INCOMPAT_DIRTY          (1u << 0)
#define INCOMPAT_CORRUPT        (1u << 1)
#define INCOMPAT_DATA_FILE      (1u << 2)
#define INCOMPAT_COMPRESSION    (1u << 3)
#define INCOMPAT_EXTL2          (1u << 4)
#define INCOMPAT_KNOWN          0x1fu
#define COMPAT_LAZY_REFCOUNTS   (1u << 0)

#define EXT_END                 0x00000000u
#define EXT_BACKING_FORMAT      0xe2792acau
#define EXT_FEATURE_TABLE       0x6803f857u
#define EXT_BITMAPS             0x23852875u
#define EXT_CRYPTO              0x0537be77u
#define EXT_DATA_FILE           0x44415441u

#define HEADER_V2_LENGTH        72
#define HEADER_V3_LENGTH        104
#define HEADER_LENGTH_WRITTEN   112             /* with compression_type, padded */

#define MIN_CLUSTER_BITS        9
#define MAX_CLUSTER_BITS        21              /* 2 MiB, QEMU's limit */
#define MAX_L1_BYTES            (32u << 20)     /* QEMU's limits, so what it can open we can */
#define MAX_REFTABLE_BYTES      (8u << 20)
#define MAX_SNAPSHOTS           65536
#define MAX_SNAPSHOT_TABLE      (64u << 20)
#define MAX_BACKING_NAME        1023
#define L2_CACHE_BYTES          (4u << 20)
#define RB_CACHE_SLOTS          32
#define MAX_ALLOC_RUN           512             /* clusters written by one pwritev */

typedef struct {
    guint64 offset;                 /* host offset of the table; 0: free slot */
    guint64 *table;                 /* big-endian, as on disk */
    guint64 lru;
    guint dirty_lo, dirty_hi;       /* dirty entries [lo, hi) */
} L2Slot;

typedef struct {
    guint64 offset;
    guint8 *data;
    guint64 lru;
} RbSlot;

typedef struct {
    guint64 cluster;
    guint64 count;
} FreeRun;

typedef struct {
    FerryBlockSnapshot pub;
    guint64 l1_offset;
    guint32 l1_size;
} Snapshot;

typedef struct {
    GMutex lock;                    /* everything below */
    FerryBlock *bs;
    int fd;
    gboolean writable;
    gboolean broken;                /* metadata trouble found while writing: no more writes */

    guint32 version;
    guint cluster_bits;
    guint64 cluster_size;
    guint l2_bits;
    guint64 l2_entries;
    guint64 size;
    guint64 incompat, compat, autoclear;
    guint32 header_length;
    guint8 compression_type;        /* 0 zlib, 1 zstd */
    char *backing_name, *backing_format;

    guint64 l1_offset;
    guint32 l1_size;
    guint64 *l1;                    /* host order */
    guint32 l1_dirty_lo, l1_dirty_hi;

    guint64 rt_offset;
    guint32 rt_clusters;
    guint64 rt_entries;
    guint64 *rt;                    /* host order */
    guint refcount_order, refcount_bits;
    guint64 rb_entries;             /* refcounts per refcount block */
    guint64 refcount_max;

    GArray *snapshots;              /* Snapshot */
    guint64 snapshots_offset, snapshots_size;
    gboolean has_bitmaps;
    guint32 nb_bitmaps;
    guint64 bitmap_dir_offset, bitmap_dir_size;

    L2Slot *l2_cache;
    guint l2_slots;
    RbSlot rb_cache[RB_CACHE_SLOTS];
    guint64 lru_clock;

    guint64 file_size;              /* bytes, kept up to date by our writes */
    guint64 end_cluster;            /* nothing at or past this cluster is in use */
    guint64 free_hint;              /* no free cluster below this */
    GArray *pending_free;           /* FreeRun: freed once the L1/L2 change is durable */

    guint8 *cbuf;                   /* compressed cluster input */
    guint8 *dbuf;                   /* its decompressed cluster */
    guint64 dbuf_entry;             /* the L2 entry dbuf holds, 0: none */
    z_stream zs;
    gboolean zs_ready;
    ZSTD_DCtx *zctx;
} Qcow2;

static inline Qcow2 *
Q(FerryBlock *bs)
{
    return bs->opaque;
}

static inline guint64
round_up(guint64 v, guint64 align)
{
    return (v + align - 1) / align * align;
}

static inline guint64
size_to_clusters(Qcow2 *s, guint64 bytes)
{
    return (bytes + s->cluster_size - 1) >> s->cluster_bits;
}

static int
corrupt(Qcow2 *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* Metadata that cannot be right: -EIO with the reason. On a writable image
 * the corrupt bit is set so neither we nor QEMU write it again before a
 * repair (qemu-img check -r all). */
static int
corrupt(Qcow2 *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (s->writable && !s->broken) {
        guint8 be[8];
        s->broken = TRUE;
        s->incompat |= INCOMPAT_CORRUPT;
        ferry_put_be64(be, s->incompat);
        if (ferry_file_pwrite(s->fd, be, 8, 72) == 0)
            ferry_file_sync(s->fd);
    }
    return ferry_block_report(s->bs, "%s (corrupt image: check it with 'qemu-img check')", msg);
}

/* ---- refcounts ----------------------------------------------------------------- */

static guint64
rb_entry_get(Qcow2 *s, const guint8 *block, guint64 i)
{
    switch (s->refcount_bits) {
    case 64: return ferry_be64(block + i * 8);
    case 32: return ferry_be32(block + i * 4);
    case 16: return ferry_be16(block + i * 2);
    case 8:  return block[i];
    default: {
        guint per = 8 / s->refcount_bits;
        guint shift = (i % per) * s->refcount_bits;
        return (block[i / per] >> shift) & ((1u << s->refcount_bits) - 1);
    }
    }
}

static void
rb_entry_set(Qcow2 *s, guint8 *block, guint64 i, guint64 v)
{
    switch (s->refcount_bits) {
    case 64: ferry_put_be64(block + i * 8, v); break;
    case 32: ferry_put_be32(block + i * 4, (guint32) v); break;
    case 16: ferry_put_be16(block + i * 2, (guint16) v); break;
    case 8:  block[i] = (guint8) v; break;
    default: {
        guint per = 8 / s->refcount_bits;
        guint shift = (i % per) * s->refcount_bits;
        guint mask = ((1u << s->refcount_bits) - 1) << shift;
        block[i / per] = (block[i / per] & ~mask) | ((v << shift) & mask);
        break;
    }
    }
}

/* Byte range of block holding entries [first, first + n). */
static void
rb_byte_range(Qcow2 *s, guint64 first, guint64 n, guint64 *lo, guint64 *len)
{
    guint64 a = first * s->refcount_bits / 8;
    guint64 b = ((first + n) * s->refcount_bits + 7) / 8;
    *lo = a;
    *len = b - a;
}

static int
rb_load(Qcow2 *s, guint64 offset, RbSlot **out)
{
    RbSlot *victim = &s->rb_cache[0];
    for (guint i = 0; i < RB_CACHE_SLOTS; i++) {
        RbSlot *slot = &s->rb_cache[i];
        if (slot->offset == offset && slot->data) {
            slot->lru = ++s->lru_clock;
            *out = slot;
            return 0;
        }
        if (slot->lru < victim->lru)
            victim = slot;
    }
    if (offset & (s->cluster_size - 1) || offset + s->cluster_size > s->file_size)
        return corrupt(s, "refcount block at 0x%" G_GINT64_MODIFIER "x is outside the file", offset);
    if (!victim->data)
        victim->data = g_malloc(s->cluster_size);
    victim->offset = 0;
    int r = ferry_file_pread(s->fd, victim->data, s->cluster_size, offset);
    if (r < 0)
        return r;
    victim->offset = offset;
    victim->lru = ++s->lru_clock;
    *out = victim;
    return 0;
}

static void
rb_forget(Qcow2 *s, guint64 offset)
{
    for (guint i = 0; i < RB_CACHE_SLOTS; i++)
        if (s->rb_cache[i].offset == offset)
            s->rb_cache[i].offset = 0;
}

static int
refcount_get(Qcow2 *s, guint64 cluster, guint64 *rc)
{
    guint64 idx = cluster / s->rb_entries;
    *rc = 0;
    if (idx >= s->rt_entries || !s->rt[idx])
        return 0;
    RbSlot *slot;
    int r = rb_load(s, s->rt[idx], &slot);
    if (r < 0)
        return r;
    *rc = rb_entry_get(s, slot->data, cluster % s->rb_entries);
    return 0;
}

/* Adds delta to (or, with set, sets to value) the refcounts of clusters
 * [cluster, cluster + n), writing each touched refcount block through.
 * Every block must exist. */
static int
refcount_change(Qcow2 *s, guint64 cluster, guint64 n, gint64 delta, gboolean set)
{
    while (n) {
        guint64 idx = cluster / s->rb_entries;
        guint64 first = cluster % s->rb_entries;
        guint64 k = MIN(n, s->rb_entries - first);
        if (idx >= s->rt_entries || !s->rt[idx])
            return corrupt(s, "cluster %" G_GUINT64_FORMAT " has no refcount block", cluster);
        RbSlot *slot;
        int r = rb_load(s, s->rt[idx], &slot);
        if (r < 0)
            return r;
        for (guint64 i = first; i < first + k; i++) {
            guint64 old = rb_entry_get(s, slot->data, i);
            guint64 v = set ? (guint64) delta : old + delta;
            if (!set && delta < 0 && old < (guint64) -delta)
                return corrupt(s, "refcount of cluster %" G_GUINT64_FORMAT " would drop below 0",
                               idx * s->rb_entries + i);
            if (v > s->refcount_max)
                return corrupt(s, "refcount of cluster %" G_GUINT64_FORMAT " overflows %u bits",
                               idx * s->rb_entries + i, s->refcount_bits);
            rb_entry_set(s, slot->data, i, v);
        }
        guint64 lo, len;
        rb_byte_range(s, first, k, &lo, &len);
        r = ferry_file_pwrite(s->fd, slot->data + lo, len, s->rt[idx] + lo);
        if (r < 0) {
            rb_forget(s, s->rt[idx]);
            return r;
        }
        if (!set && delta < 0)
            for (guint64 i = first; i < first + k; i++)
                if (rb_entry_get(s, slot->data, i) == 0)
                    s->free_hint = MIN(s->free_hint, idx * s->rb_entries + i);
        cluster += k;
        n -= k;
    }
    return 0;
}

static void
note_file_end(Qcow2 *s, guint64 end)
{
    s->file_size = MAX(s->file_size, end);
    s->end_cluster = MAX(s->end_cluster, size_to_clusters(s, end));
}

/* A new refcount block for block index idx, placed at the first cluster of
 * the range it describes (all of which have refcount 0 while it is missing),
 * so it can hold its own refcount. */
static int
alloc_refcount_block(Qcow2 *s, guint64 idx)
{
    guint64 cluster = idx * s->rb_entries;
    guint64 offset = cluster << s->cluster_bits;
    if (cluster == 0)
        return corrupt(s, _("the first refcount block is missing"));
    if (offset >= MAX_HOST_OFFSET)
        return -EFBIG;
    g_autofree guint8 *block = g_malloc0(s->cluster_size);
    rb_entry_set(s, block, 0, 1);
    int r = ferry_file_pwrite(s->fd, block, s->cluster_size, offset);
    if (r == 0)
        r = ferry_file_sync(s->fd);     /* the block before the table entry naming it */
    if (r < 0)
        return r;
    note_file_end(s, offset + s->cluster_size);
    guint8 be[8];
    ferry_put_be64(be, offset);
    r = ferry_file_pwrite(s->fd, be, 8, s->rt_offset + idx * 8);
    if (r < 0)
        return r;
    s->rt[idx] = offset;
    return 0;
}

/* Moves the refcount table to the end of the file, big enough for block
 * index need_idx, with new refcount blocks for its own clusters. The old
 * table is freed only after the header points at the new one. */
static int
grow_refcount_table(Qcow2 *s, guint64 need_idx)
{
    guint64 per_cluster = s->cluster_size / 8;
    guint64 entries = round_up(MAX(need_idx + 1, s->rt_entries * 2), per_cluster);
    guint64 start = s->end_cluster, T, B = 0, end;
    g_autoptr(GArray) new_blocks = g_array_new(FALSE, FALSE, sizeof(guint64));

    for (;;) {
        T = entries / per_cluster;
        for (;;) {
            end = start + T + B;
            guint64 need = 0;
            for (guint64 b = start / s->rb_entries; b <= (end - 1) / s->rb_entries; b++)
                if (b >= s->rt_entries || !s->rt[b])
                    need++;
            if (need <= B)
                break;
            B = need;
        }
        if ((end - 1) / s->rb_entries < entries)
            break;
        entries = round_up((end - 1) / s->rb_entries + 1, per_cluster);
    }
    if (entries * 8 > MAX_REFTABLE_BYTES || (end << s->cluster_bits) > MAX_HOST_OFFSET)
        return -EFBIG;

    g_autofree guint64 *rt = g_new0(guint64, entries);
    memcpy(rt, s->rt, s->rt_entries * 8);
    /* New blocks take the clusters after the table, in index order. */
    guint64 next = start + T;
    for (guint64 b = start / s->rb_entries; b <= (end - 1) / s->rb_entries; b++) {
        if (b < s->rt_entries && s->rt[b])
            continue;
        rt[b] = next++ << s->cluster_bits;
        g_array_append_val(new_blocks, b);
    }
    g_assert(next <= end);
    end = next;
    g_autofree guint8 *block = g_malloc(s->cluster_size);
    for (guint i = 0; i < new_blocks->len; i++) {
        guint64 b = g_array_index(new_blocks, guint64, i);
        memset(block, 0, s->cluster_size);
        for (guint64 c = MAX(start, b * s->rb_entries); c < MIN(end, (b + 1) * s->rb_entries); c++)
            rb_entry_set(s, block, c - b * s->rb_entries, 1);
        int r = ferry_file_pwrite(s->fd, block, s->cluster_size, rt[b]);
        if (r < 0)
            return r;
    }
    /* Clusters of the new area that existing blocks describe. */
    for (guint64 c = start; c < end;) {
        guint64 b = c / s->rb_entries;
        guint64 k = MIN(end, (b + 1) * s->rb_entries) - c;
        if (b < s->rt_entries && s->rt[b]) {
            int r = refcount_change(s, c, k, 1, TRUE);
            if (r < 0)
                return r;
        }
        c += k;
    }
    g_autofree guint8 *table = g_malloc0(T * s->cluster_size);
    for (guint64 i = 0; i < entries; i++)
        ferry_put_be64(table + i * 8, rt[i]);
    int r = ferry_file_pwrite(s->fd, table, T * s->cluster_size, start << s->cluster_bits);
    if (r == 0)
        r = ferry_file_sync(s->fd);
    if (r < 0)
        return r;
    note_file_end(s, end << s->cluster_bits);

    guint8 hdr[12];
    ferry_put_be64(hdr, start << s->cluster_bits);
    ferry_put_be32(hdr + 8, (guint32) T);
    r = ferry_file_pwrite(s->fd, hdr, sizeof(hdr), 48);
    if (r == 0)
        r = ferry_file_sync(s->fd);
    if (r < 0)
        return r;

    guint64 old_offset = s->rt_offset, old_clusters = s->rt_clusters;
    g_free(s->rt);
    s->rt = g_steal_pointer(&rt);
    s->rt_entries = entries;
    s->rt_offset = start << s->cluster_bits;
    s->rt_clusters = (guint32) T;
    return refcount_change(s, old_offset >> s->cluster_bits, old_clusters, -1, FALSE);
}

static gboolean
range_hits(Qcow2 *s, guint64 cluster, guint64 n, guint64 offset, guint64 bytes)
{
    if (!bytes)
        return FALSE;
    guint64 first = offset >> s->cluster_bits, last = (offset + bytes - 1) >> s->cluster_bits;
    return cluster <= last && first < cluster + n;
}

/* Clusters a corrupt refcount calls free may be the header or a table:
 * never hand those out (the tables a flush rewrites most of all). */
static gboolean
overlaps_metadata(Qcow2 *s, guint64 cluster, guint64 n)
{
    return cluster == 0 ||
           range_hits(s, cluster, n, s->l1_offset, (guint64) s->l1_size * 8) ||
           range_hits(s, cluster, n, s->rt_offset, (guint64) s->rt_clusters * s->cluster_size) ||
           range_hits(s, cluster, n, s->snapshots_offset, s->snapshots_size);
}

/* Allocates up to n contiguous clusters (refcount 1) at the first free
 * spot: *offset is the first, *got how many (all n when got is NULL). */
static int
alloc_clusters(Qcow2 *s, guint64 n, guint64 *offset, guint64 *got)
{
    for (;;) {
        guint64 c = s->free_hint, rc = 0;
        while (c < s->end_cluster) {
            int r = refcount_get(s, c, &rc);
            if (r < 0)
                return r;
            if (rc == 0)
                break;
            c++;
        }
        s->free_hint = c;       /* everything below is in use */
        guint64 start = c, k = 1;
        if (got) {
            while (k < n && start + k < s->end_cluster) {
                int r = refcount_get(s, start + k, &rc);
                if (r < 0)
                    return r;
                if (rc)
                    break;
                k++;
            }
            if (start + k >= s->end_cluster)
                k = n;          /* past everything in use: all free */
        } else {
            k = n;
            for (guint64 i = 1; i < n && start + i < s->end_cluster; i++) {
                int r = refcount_get(s, start + i, &rc);
                if (r < 0)
                    return r;
                if (rc) {
                    /* Not enough room here: take the end of the file. */
                    start = s->end_cluster;
                    break;
                }
            }
        }
        if ((start + k) << s->cluster_bits > MAX_HOST_OFFSET)
            return -EFBIG;
        gboolean changed = FALSE;
        for (guint64 b = start / s->rb_entries; b <= (start + k - 1) / s->rb_entries; b++) {
            int r = 0;
            if (b >= s->rt_entries)
                r = grow_refcount_table(s, b);
            else if (!s->rt[b])
                r = alloc_refcount_block(s, b);
            else
                continue;
            if (r < 0)
                return r;
            changed = TRUE;
            break;
        }
        if (changed)
            continue;
        if (overlaps_metadata(s, start, k))
            return corrupt(s, "clusters %" G_GUINT64_FORMAT "..%" G_GUINT64_FORMAT " have refcount 0 "
                           "but hold metadata", start, start + k - 1);
        int r = refcount_change(s, start, k, 1, TRUE);
        if (r < 0)
            return r;
        s->end_cluster = MAX(s->end_cluster, start + k);
        if (start == s->free_hint)
            s->free_hint = start + k;
        *offset = start << s->cluster_bits;
        if (got)
            *got = k;
        return 0;
    }
}

/* Undoes alloc_clusters for clusters nothing points at yet. */
static void
unalloc_clusters(Qcow2 *s, guint64 offset, guint64 n)
{
    refcount_change(s, offset >> s->cluster_bits, n, 0, TRUE);
    s->free_hint = MIN(s->free_hint, offset >> s->cluster_bits);
}

/* Clusters an L2 entry holds, freed once the change away from it is durable. */
static void
defer_free_entry(Qcow2 *s, guint64 entry)
{
    FreeRun run = { 0, 0 };
    if (entry & OFLAG_COMPRESSED) {
        guint x = 62 - (s->cluster_bits - 8);
        guint64 coff = entry & ((G_GUINT64_CONSTANT(1) << x) - 1);
        guint64 nsec = ((entry & ~OFLAG_COPIED & ~OFLAG_COMPRESSED) >> x) + 1;
        guint64 end = (coff & ~G_GUINT64_CONSTANT(511)) + nsec * 512;
        run.cluster = coff >> s->cluster_bits;
        run.count = ((end - 1) >> s->cluster_bits) - run.cluster + 1;
    } else if (entry & L2E_OFFSET_MASK) {
        run.cluster = (entry & L2E_OFFSET_MASK) >> s->cluster_bits;
        run.count = 1;
    }
    if (!run.count)
        return;
    if (s->pending_free->len) {
        FreeRun *last = &g_array_index(s->pending_free, FreeRun, s->pending_free->len - 1);
        if (last->cluster + last->count == run.cluster) {
            last->count += run.count;
            return;
        }
    }
    g_array_append_val(s->pending_free, run);
}

/* ---- L1 / L2 ----------------------------------------------------------------------- */

static int
l2_writeback(Qcow2 *s, L2Slot *slot)
{
    if (slot->dirty_lo >= slot->dirty_hi)
        return 0;
    int r = ferry_file_pwrite(s->fd, slot->table + slot->dirty_lo,
                              (slot->dirty_hi - slot->dirty_lo) * 8,
                              slot->offset + slot->dirty_lo * 8);
    if (r == 0)
        slot->dirty_lo = slot->dirty_hi = 0;
    return r;
}

/* The cached L2 table at offset (loading it). */
static int
l2_load(Qcow2 *s, guint64 offset, gboolean fresh, L2Slot **out)
{
    L2Slot *victim = &s->l2_cache[0];
    for (guint i = 0; i < s->l2_slots; i++) {
        L2Slot *slot = &s->l2_cache[i];
        if (slot->offset == offset && slot->table) {
            slot->lru = ++s->lru_clock;
            *out = slot;
            return 0;
        }
        if (slot->lru < victim->lru)
            victim = slot;
    }
    if (offset & (s->cluster_size - 1) || offset + s->cluster_size > s->file_size)
        return corrupt(s, "L2 table at 0x%" G_GINT64_MODIFIER "x is outside the file", offset);
    if (victim->dirty_lo < victim->dirty_hi) {
        /* What the evicted entries point at must be durable before them. */
        int r = ferry_file_sync(s->fd);
        if (r == 0)
            r = l2_writeback(s, victim);
        if (r < 0)
            return r;
    }
    if (!victim->table)
        victim->table = g_malloc(s->cluster_size);
    victim->offset = 0;
    if (fresh) {
        memset(victim->table, 0, s->cluster_size);
    } else {
        int r = ferry_file_pread(s->fd, victim->table, s->cluster_size, offset);
        if (r < 0)
            return r;
    }
    victim->offset = offset;
    victim->lru = ++s->lru_clock;
    victim->dirty_lo = victim->dirty_hi = 0;
    *out = victim;
    return 0;
}

/* The L2 entry of guest cluster gc (0 when its table is missing). */
static int
l2_entry(Qcow2 *s, guint64 gc, guint64 *entry)
{
    guint64 l1i = gc >> s->l2_bits;
    *entry = 0;
    if (l1i >= s->l1_size || !(s->l1[l1i] & L1E_OFFSET_MASK))
        return 0;
    L2Slot *slot;
    int r = l2_load(s, s->l1[l1i] & L1E_OFFSET_MASK, FALSE, &slot);
    if (r < 0)
        return r;
    *entry = GUINT64_FROM_BE(slot->table[gc & (s->l2_entries - 1)]);
    return 0;
}

static void
l1_mark_dirty(Qcow2 *s, guint32 i)
{
    if (s->l1_dirty_lo >= s->l1_dirty_hi) {
        s->l1_dirty_lo = i;
        s->l1_dirty_hi = i + 1;
    } else {
        s->l1_dirty_lo = MIN(s->l1_dirty_lo, i);
        s->l1_dirty_hi = MAX(s->l1_dirty_hi, i + 1);
    }
}

/* The L2 table for L1 index l1i, ready to be changed: allocated if
 * missing, copied if shared with a snapshot (refcount > 1). */
static int
l2_for_write(Qcow2 *s, guint64 l1i, L2Slot **out)
{
    guint64 l1e = s->l1[l1i];
    guint64 old = l1e & L1E_OFFSET_MASK;
    if (old && (l1e & OFLAG_COPIED))
        return l2_load(s, old, FALSE, out);

    g_autofree guint64 *copy = NULL;
    if (old) {
        L2Slot *slot;
        int r = l2_load(s, old, FALSE, &slot);
        if (r < 0)
            return r;
        copy = g_memdup2(slot->table, s->cluster_size);
    }
    guint64 offset;
    int r = alloc_clusters(s, 1, &offset, NULL);
    if (r < 0)
        return r;
    /* The new table's content goes to disk now; the L1 entry naming it
     * waits for the next flush. */
    if (copy) {
        r = ferry_file_pwrite(s->fd, copy, s->cluster_size, offset);
    } else {
        r = ferry_file_write_zeroes(s->fd, offset, s->cluster_size, FALSE);
        if (r == 0 && offset + s->cluster_size > s->file_size) {
            /* fallocate may leave the size short of the new cluster. */
            struct stat st;
            if (fstat(s->fd, &st) == 0 && (guint64) st.st_size < offset + s->cluster_size)
                r = ftruncate(s->fd, offset + s->cluster_size) < 0 ? -errno : 0;
        }
    }
    if (r < 0) {
        unalloc_clusters(s, offset, 1);
        return r;
    }
    note_file_end(s, offset + s->cluster_size);
    L2Slot *slot;
    r = l2_load(s, offset, TRUE, &slot);
    if (r < 0)
        return r;
    /* The cluster may be a freed table still cached: its content is ours now. */
    if (copy)
        memcpy(slot->table, copy, s->cluster_size);
    else
        memset(slot->table, 0, s->cluster_size);
    slot->dirty_lo = slot->dirty_hi = 0;
    s->l1[l1i] = offset | OFLAG_COPIED;
    l1_mark_dirty(s, (guint32) l1i);
    if (old)
        defer_free_entry(s, old);
    *out = slot;
    return 0;
}

static void
l2_set(L2Slot *slot, guint idx, guint64 entry)
{
    slot->table[idx] = GUINT64_TO_BE(entry);
    if (slot->dirty_lo >= slot->dirty_hi) {
        slot->dirty_lo = idx;
        slot->dirty_hi = idx + 1;
    } else {
        slot->dirty_lo = MIN(slot->dirty_lo, idx);
        slot->dirty_hi = MAX(slot->dirty_hi, idx + 1);
    }
}

/* ---- flush -------------------------------------------------------------------------- */

static int
flush_locked(Qcow2 *s)
{
    gboolean l2_dirty = FALSE;
    for (guint i = 0; i < s->l2_slots; i++)
        l2_dirty |= s->l2_cache[i].offset && s->l2_cache[i].dirty_lo < s->l2_cache[i].dirty_hi;
    gboolean l1_dirty = s->l1_dirty_lo < s->l1_dirty_hi;

    /* Data and refcounts first, then the tables that point at them. */
    int r = ferry_file_sync(s->fd);
    if (r < 0 || (!l2_dirty && !l1_dirty && !s->pending_free->len))
        return r;
    for (guint i = 0; i < s->l2_slots && r == 0; i++)
        if (s->l2_cache[i].offset)
            r = l2_writeback(s, &s->l2_cache[i]);
    if (r == 0 && l1_dirty) {
        g_autofree guint64 *be = g_new(guint64, s->l1_dirty_hi - s->l1_dirty_lo);
        for (guint32 i = s->l1_dirty_lo; i < s->l1_dirty_hi; i++)
            be[i - s->l1_dirty_lo] = GUINT64_TO_BE(s->l1[i]);
        if (l2_dirty)
            r = ferry_file_sync(s->fd);
        if (r == 0)
            r = ferry_file_pwrite(s->fd, be, (s->l1_dirty_hi - s->l1_dirty_lo) * 8,
                                  s->l1_offset + (guint64) s->l1_dirty_lo * 8);
        if (r == 0)
            s->l1_dirty_lo = s->l1_dirty_hi = 0;
    }
    if (r == 0)
        r = ferry_file_sync(s->fd);
    if (r < 0)
        return r;
    /* Nothing on disk points at these any more. */
    for (guint i = 0; i < s->pending_free->len; i++) {
        FreeRun *run = &g_array_index(s->pending_free, FreeRun, i);
        r = refcount_change(s, run->cluster, run->count, -1, FALSE);
        if (r < 0)
            break;
        for (guint i2 = 0; i2 < s->l2_slots; i2++) {
            guint64 o = s->l2_cache[i2].offset;
            if (o && o >> s->cluster_bits >= run->cluster &&
                o >> s->cluster_bits < run->cluster + run->count)
                s->l2_cache[i2].offset = 0;
        }
        /* Give the space back to the host, a run of free clusters at a time. */
        guint64 hole = 0, holes = 0;
        for (guint64 c = run->cluster; c <= run->cluster + run->count; c++) {
            guint64 rc = 1;
            if (c < run->cluster + run->count && refcount_get(s, c, &rc) == 0 && rc == 0) {
                if (!holes++)
                    hole = c;
                continue;
            }
            if (holes)
                fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                          hole << s->cluster_bits, holes << s->cluster_bits);
            holes = 0;
        }
    }
    g_array_set_size(s->pending_free, 0);
    return r;
}

/* ---- compressed clusters ----------------------------------------------------------- */

static int
decompress(Qcow2 *s, guint64 entry)
{
    if (s->dbuf_entry == entry)
        return 0;
    guint x = 62 - (s->cluster_bits - 8);
    guint64 coff = entry & ((G_GUINT64_CONSTANT(1) << x) - 1);
    guint64 nsec = ((entry & ~OFLAG_COPIED & ~OFLAG_COMPRESSED) >> x) + 1;
    guint64 csize = nsec * 512 - (coff & 511);
    if (coff >= s->file_size)
        return corrupt(s, "compressed cluster at 0x%" G_GINT64_MODIFIER "x is past the end of the file",
                       coff);
    csize = MIN(csize, s->file_size - coff);
    if (!s->cbuf)
        s->cbuf = g_malloc(2 * s->cluster_size + 512);
    if (!s->dbuf)
        s->dbuf = g_malloc(s->cluster_size);
    int r = ferry_file_pread(s->fd, s->cbuf, csize, coff);
    if (r < 0)
        return r;
    s->dbuf_entry = 0;
    if (s->compression_type == 0) {
        if (!s->zs_ready) {
            if (inflateInit2(&s->zs, -15) != Z_OK)
                return -ENOMEM;
            s->zs_ready = TRUE;
        } else {
            inflateReset(&s->zs);
        }
        s->zs.next_in = s->cbuf;
        s->zs.avail_in = (uInt) csize;
        s->zs.next_out = s->dbuf;
        s->zs.avail_out = (uInt) s->cluster_size;
        int zr = inflate(&s->zs, Z_FINISH);
        if ((zr != Z_STREAM_END && zr != Z_BUF_ERROR && zr != Z_OK) || s->zs.avail_out != 0)
            return corrupt(s, "compressed cluster at 0x%" G_GINT64_MODIFIER "x does not inflate", coff);
    } else {
        if (!s->zctx && !(s->zctx = ZSTD_createDCtx()))
            return -ENOMEM;
        ZSTD_DCtx_reset(s->zctx, ZSTD_reset_session_only);
        ZSTD_inBuffer in = { s->cbuf, csize, 0 };
        ZSTD_outBuffer out = { s->dbuf, s->cluster_size, 0 };
        while (out.pos < out.size) {
            size_t zr = ZSTD_decompressStream(s->zctx, &out, &in);
            if (ZSTD_isError(zr) || (in.pos == in.size && out.pos < out.size && zr != 0) ||
                (zr == 0 && out.pos < out.size))
                return corrupt(s, "compressed cluster at 0x%" G_GINT64_MODIFIER "x does not decompress",
                               coff);
        }
    }
    s->dbuf_entry = entry;
    return 0;
}

/* ---- reading --------------------------------------------------------------------- */

typedef enum { SEG_ZERO, SEG_HOST, SEG_BACKING } SegKind;

typedef struct {
    SegKind kind;
    guint64 iov_off;
    guint64 len;
    guint64 where;          /* host offset or guest offset in the backing */
} Seg;

static void
plan_add(GArray *plan, SegKind kind, guint64 iov_off, guint64 len, guint64 where)
{
    if (plan->len) {
        Seg *last = &g_array_index(plan, Seg, plan->len - 1);
        if (last->kind == kind && last->iov_off + last->len == iov_off &&
            (kind == SEG_ZERO || last->where + last->len == where)) {
            last->len += len;
            return;
        }
    }
    Seg seg = { kind, iov_off, len, where };
    g_array_append_val(plan, seg);
}

typedef enum { CL_UNALLOCATED, CL_ZERO, CL_NORMAL, CL_COMPRESSED } ClusterKind;

static int
classify(Qcow2 *s, guint64 entry, guint64 *host)
{
    if (entry & OFLAG_COMPRESSED)
        return CL_COMPRESSED;
    if (s->version >= 3 && (entry & OFLAG_ZERO))
        return CL_ZERO;
    *host = entry & L2E_OFFSET_MASK;
    if (!*host)
        return CL_UNALLOCATED;
    if (entry & L2E_STD_RESERVED_MASK)
        return corrupt(s, "L2 entry 0x%" G_GINT64_MODIFIER "x has reserved bits set", entry);
    if (*host & (s->cluster_size - 1))
        return corrupt(s, "data cluster at 0x%" G_GINT64_MODIFIER "x is not cluster-aligned", *host);
    if (*host >= s->file_size)
        return corrupt(s, "data cluster at 0x%" G_GINT64_MODIFIER "x is past the end of the file",
                       *host);
    return CL_NORMAL;
}

/* Reads from the backing image; past its end reads zeros. */
static int
read_backing(FerryBlock *backing, guint64 offset, const struct iovec *iov, int niov,
             guint64 iov_off, guint64 len)
{
    guint64 bsize = ferry_block_get_size(backing);
    guint64 n = offset < bsize ? MIN(len, bsize - offset) : 0;
    if (n < len)
        ferry_iov_memset(iov, niov, iov_off + n, 0, len - n);
    if (!n)
        return 0;
    g_autofree struct iovec *v = NULL;
    int nv = ferry_iov_slice(iov, niov, iov_off, n, &v);
    guint8 *bounce = NULL;
    int r;
    if (nv == 1) {
        r = ferry_block_pread(backing, offset, v[0].iov_base, n, NULL) ? 0 : -EIO;
    } else {
        bounce = g_malloc(n);
        r = ferry_block_pread(backing, offset, bounce, n, NULL) ? 0 : -EIO;
        if (r == 0)
            ferry_iov_from_buf(iov, niov, iov_off, bounce, n);
        g_free(bounce);
    }
    return r;
}

static int
qcow2_read(FerryBlock *bs, guint64 offset, const struct iovec *iov, int niov, guint64 len)
{
    Qcow2 *s = Q(bs);
    g_autoptr(GArray) plan = g_array_new(FALSE, FALSE, sizeof(Seg));
    guint64 done = 0;
    int r = 0;

    g_mutex_lock(&s->lock);
    FerryBlock *backing = bs->backing;
    while (done < len && r == 0) {
        guint64 off = offset + done;
        guint64 in = off & (s->cluster_size - 1);
        guint64 n = MIN(len - done, s->cluster_size - in);
        guint64 entry, host = 0;
        r = l2_entry(s, off >> s->cluster_bits, &entry);
        if (r < 0)
            break;
        int kind = classify(s, entry, &host);
        switch (kind) {
        case CL_UNALLOCATED:
            plan_add(plan, backing ? SEG_BACKING : SEG_ZERO, done, n, off);
            break;
        case CL_ZERO:
            plan_add(plan, SEG_ZERO, done, n, 0);
            break;
        case CL_NORMAL:
            plan_add(plan, SEG_HOST, done, n, host + in);
            break;
        case CL_COMPRESSED:
            r = decompress(s, entry);
            if (r == 0)
                ferry_iov_from_buf(iov, niov, done, s->dbuf + in, n);
            break;
        default:
            r = kind;
        }
        done += n;
    }
    g_mutex_unlock(&s->lock);

    /* The data moves without the lock: clusters a plan names stay put until
     * a flush frees them, and a read racing a discard of the same range may
     * see either content. */
    for (guint i = 0; i < plan->len && r == 0; i++) {
        Seg *seg = &g_array_index(plan, Seg, i);
        g_autofree struct iovec *v = NULL;
        int nv;
        switch (seg->kind) {
        case SEG_ZERO:
            ferry_iov_memset(iov, niov, seg->iov_off, 0, seg->len);
            break;
        case SEG_HOST:
            nv = ferry_iov_slice(iov, niov, seg->iov_off, seg->len, &v);
            r = ferry_file_preadv(s->fd, v, nv, seg->where);
            break;
        case SEG_BACKING:
            r = read_backing(backing, seg->where, iov, niov, seg->iov_off, seg->len);
            break;
        }
    }
    return r;
}

/* The current content of guest cluster gc (entry is its L2 entry) into buf. */
static int
read_cluster_locked(Qcow2 *s, guint64 gc, guint64 entry, guint8 *buf)
{
    guint64 host = 0;
    int kind = classify(s, entry, &host);
    guint64 guest = gc << s->cluster_bits;
    struct iovec v = { buf, s->cluster_size };
    switch (kind) {
    case CL_UNALLOCATED:
        if (s->bs->backing)
            return read_backing(s->bs->backing, guest, &v, 1, 0, s->cluster_size);
        /* fall through */
    case CL_ZERO:
        memset(buf, 0, s->cluster_size);
        return 0;
    case CL_NORMAL:
        return ferry_file_pread(s->fd, buf, s->cluster_size, host);
    case CL_COMPRESSED: {
        int r = decompress(s, entry);
        if (r == 0)
            memcpy(buf, s->dbuf, s->cluster_size);
        return r;
    }
    }
    return kind;
}

/* ---- writing ------------------------------------------------------------------------ */

static inline gboolean
in_place(Qcow2 *s, guint64 entry)
{
    return (entry & OFLAG_COPIED) && !(entry & OFLAG_COMPRESSED) && !(entry & OFLAG_ZERO) &&
           (entry & L2E_OFFSET_MASK);
}

/* Writes [offset, offset + len) from iov (at iov_off), or zeros when iov is
 * NULL. Lock held. */
static int
write_locked(Qcow2 *s, guint64 offset, const struct iovec *iov, int niov, guint64 iov_off,
             guint64 len)
{
    g_autofree guint8 *zeros = NULL;
    struct iovec zv = { NULL, 0 };
    if (!iov) {
        zv.iov_len = MIN(len, 1u << 20);
        zv.iov_base = zeros = g_malloc0(zv.iov_len);
    }
    guint64 done = 0;
    while (done < len) {
        guint64 off = offset + done;
        guint64 gc = off >> s->cluster_bits;
        guint64 in = off & (s->cluster_size - 1);
        guint64 l1i = gc >> s->l2_bits;
        guint64 entry;
        int r = l2_entry(s, gc, &entry);
        if (r < 0)
            return r;

        if (in_place(s, entry)) {
            /* Overwrite: extend over clusters that follow on both sides. */
            guint64 host = entry & L2E_OFFSET_MASK;
            if (host & (s->cluster_size - 1) || host >= s->file_size)
                return corrupt(s, "data cluster at 0x%" G_GINT64_MODIFIER "x is outside the file",
                               host);
            guint64 n = MIN(len - done, s->cluster_size - in);
            while (done + n < len && ((gc + 1) >> s->l2_bits) == l1i && n < (8u << 20)) {
                guint64 e2;
                r = l2_entry(s, gc + 1, &e2);
                if (r < 0)
                    return r;
                if (!in_place(s, e2) || (e2 & L2E_OFFSET_MASK) != host + (n + in))
                    break;
                gc++;
                n += MIN(len - done - n, s->cluster_size);
            }
            if (iov) {
                g_autofree struct iovec *v = NULL;
                int nv = ferry_iov_slice(iov, niov, iov_off + done, n, &v);
                r = ferry_file_pwritev(s->fd, v, nv, host + in);
            } else {
                r = ferry_file_write_zeroes(s->fd, host + in, n, FALSE);
            }
            if (r < 0)
                return r;
            done += n;
            continue;
        }

        /* Allocation: a run of clusters in one L2 table that all need new
         * clusters, written with one pwritev. */
        L2Slot *slot;
        r = l2_for_write(s, l1i, &slot);
        if (r < 0)
            return r;
        guint64 first = gc;
        guint64 end = offset + len;
        guint64 last_gc = (end - 1) >> s->cluster_bits;
        guint64 k = 1;
        while (first + k <= last_gc && k < MAX_ALLOC_RUN && ((first + k) >> s->l2_bits) == l1i) {
            guint64 e2 = GUINT64_FROM_BE(slot->table[(first + k) & (s->l2_entries - 1)]);
            if (in_place(s, e2))
                break;
            k++;
        }
        /* Allocation touches refcount blocks only: slot stays cached. */
        guint64 host;
        r = alloc_clusters(s, k, &host, &k);
        if (r < 0)
            return r;
        guint64 run_end = MIN((first + k) << s->cluster_bits, end);
        guint64 data_len = run_end - off;
        guint64 tail_end = (first + k) << s->cluster_bits;
        g_autofree guint8 *head = NULL, *tail = NULL;
        GArray *vec = g_array_new(FALSE, FALSE, sizeof(struct iovec));
        if (in) {
            head = g_malloc(s->cluster_size);
            r = read_cluster_locked(s, first, GUINT64_FROM_BE(slot->table[first & (s->l2_entries - 1)]),
                                    head);
            struct iovec hv = { head, in };
            g_array_append_val(vec, hv);
        }
        if (r == 0) {
            if (iov) {
                g_autofree struct iovec *v = NULL;
                int nv = ferry_iov_slice(iov, niov, iov_off + done, data_len, &v);
                g_array_append_vals(vec, v, nv);
            } else {
                for (guint64 z = 0; z < data_len; z += zv.iov_len) {
                    struct iovec piece = { zeros, MIN(zv.iov_len, data_len - z) };
                    g_array_append_val(vec, piece);
                }
            }
        }
        if (r == 0 && run_end < tail_end) {
            guint64 lgc = first + k - 1;
            guint64 tin = run_end & (s->cluster_size - 1);
            tail = g_malloc(s->cluster_size);
            r = read_cluster_locked(s, lgc, GUINT64_FROM_BE(slot->table[lgc & (s->l2_entries - 1)]),
                                    tail);
            struct iovec tv = { tail + tin, s->cluster_size - tin };
            g_array_append_val(vec, tv);
        }
        if (r == 0)
            r = ferry_file_pwritev(s->fd, (struct iovec *) vec->data, vec->len, host);
        g_array_free(vec, TRUE);
        if (r < 0) {
            unalloc_clusters(s, host, k);
            return r;
        }
        note_file_end(s, host + (k << s->cluster_bits));
        for (guint64 i = 0; i < k; i++) {
            guint idx = (first + i) & (s->l2_entries - 1);
            guint64 old = GUINT64_FROM_BE(slot->table[idx]);
            l2_set(slot, idx, (host + (i << s->cluster_bits)) | OFLAG_COPIED);
            defer_free_entry(s, old);
        }
        s->dbuf_entry = 0;
        done += data_len;
    }
    return 0;
}

/* Write zeroes (discard FALSE) or discard [offset, offset + len). */
static int
zero_locked(Qcow2 *s, guint64 offset, guint64 len, gboolean discard)
{
    guint64 cs = s->cluster_size;
    guint64 head = MIN(len, (cs - (offset & (cs - 1))) & (cs - 1));
    int r;
    if (head) {
        if (!discard && (r = write_locked(s, offset, NULL, 0, 0, head)) < 0)
            return r;
        offset += head;
        len -= head;
    }
    if (!len)
        return 0;
    g_assert((offset & (cs - 1)) == 0);
    guint64 tail = len & (cs - 1);
    guint64 full = len - tail;
    /* The disk's last, partial cluster counts as whole. */
    if (tail && offset + len == s->size) {
        full += tail;
        tail = 0;
    }
    gboolean backing = s->bs->backing != NULL || s->backing_name != NULL;
    guint64 want = (discard && !backing) ? 0 : OFLAG_ZERO;
    for (guint64 gc = offset >> s->cluster_bits; gc < (offset + full + cs - 1) >> s->cluster_bits;) {
        guint64 l1i = gc >> s->l2_bits;
        guint64 next_table = (l1i + 1) << s->l2_bits;
        guint64 stop = MIN(next_table, (offset + full + cs - 1) >> s->cluster_bits);
        if (!(s->l1[l1i] & L1E_OFFSET_MASK) && !backing) {
            gc = stop;              /* reads as zeros already */
            continue;
        }
        L2Slot *slot;
        r = l2_for_write(s, l1i, &slot);
        if (r < 0)
            return r;
        for (; gc < stop; gc++) {
            guint idx = gc & (s->l2_entries - 1);
            guint64 old = GUINT64_FROM_BE(slot->table[idx]);
            if (old == want || (!backing && old == 0))
                continue;
            l2_set(slot, idx, want);
            defer_free_entry(s, old);
        }
    }
    s->dbuf_entry = 0;
    if (tail && !discard)
        return write_locked(s, offset + full, NULL, 0, 0, tail);
    return 0;
}

static int
qcow2_submit(FerryBlock *bs, FerryBlockReq *req)
{
    Qcow2 *s = Q(bs);
    int r;
    if (req->op == FERRY_BLOCK_OP_READ)
        return qcow2_read(bs, req->offset, req->iov, req->niov, req->length);

    g_mutex_lock(&s->lock);
    if (s->broken && req->op != FERRY_BLOCK_OP_FLUSH) {
        g_mutex_unlock(&s->lock);
        return ferry_block_report(bs, "the image was found corrupt and takes no more writes");
    }
    switch (req->op) {
    case FERRY_BLOCK_OP_WRITE:
        r = write_locked(s, req->offset, req->iov, req->niov, 0, req->length);
        break;
    case FERRY_BLOCK_OP_FLUSH:
        r = s->writable ? flush_locked(s) : 0;
        break;
    case FERRY_BLOCK_OP_DISCARD:
        r = zero_locked(s, req->offset, req->length, TRUE);
        break;
    case FERRY_BLOCK_OP_WRITE_ZEROES:
        r = zero_locked(s, req->offset, req->length, FALSE);
        break;
    default:
        r = -EINVAL;
    }
    g_mutex_unlock(&s->lock);
    return r;
}

static int
qcow2_block_status(FerryBlock *bs, guint64 offset, guint64 *len)
{
    Qcow2 *s = Q(bs);
    int status = -1;
    guint64 done = 0;
    g_mutex_lock(&s->lock);
    while (done < *len) {
        guint64 off = offset + done;
        guint64 n = MIN(*len - done, s->cluster_size - (off & (s->cluster_size - 1)));
        guint64 entry, host;
        int st;
        guint64 l1i = off >> (s->cluster_bits + s->l2_bits);
        if (l1i < s->l1_size && !(s->l1[l1i] & L1E_OFFSET_MASK)) {
            /* No L2 table: its whole range is unallocated. */
            guint64 table_end = (l1i + 1) << (s->cluster_bits + s->l2_bits);
            n = MIN(*len - done, table_end - off);
        }
        int r = l2_entry(s, off >> s->cluster_bits, &entry);
        if (r < 0) {
            status = r;
            break;
        }
        if (entry & OFLAG_COMPRESSED)
            st = FERRY_BLOCK_STATUS_ALLOCATED | FERRY_BLOCK_STATUS_DATA;
        else if (s->version >= 3 && (entry & OFLAG_ZERO))
            st = FERRY_BLOCK_STATUS_ALLOCATED | FERRY_BLOCK_STATUS_ZERO;
        else if ((host = entry & L2E_OFFSET_MASK))
            st = FERRY_BLOCK_STATUS_ALLOCATED | FERRY_BLOCK_STATUS_DATA;
        else
            st = bs->backing ? 0 : FERRY_BLOCK_STATUS_ZERO;
        if (status >= 0 && st != status)
            break;
        status = st;
        done += n;
    }
    g_mutex_unlock(&s->lock);
    if (status >= 0)
        *len = done;
    return status;
}

/* ---- opening ---------------------------------------------------------------------------- */

static gboolean
qcow2_probe(const guint8 *head, gsize len)
{
    /* Any version: a newer qcow2 must fail as such, not open as raw. */
    return len >= 8 && ferry_be32(head) == QCOW2_MAGIC;
}

static gboolean G_GNUC_PRINTF(3, 4)
fail(GError **error, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error_literal(error, FERRY_BLOCK_ERROR, code, msg);
    return FALSE;
}

/* The name of an incompatible feature bit, from the image's feature table. */
static char *
feature_name(const guint8 *table, gsize len, guint type, guint bit)
{
    for (gsize i = 0; i + 48 <= len; i += 48)
        if (table[i] == type && table[i + 1] == bit)
            return g_strndup((const char *) table + i + 2, 46);
    return NULL;
}

static gboolean
in_file(Qcow2 *s, guint64 offset, guint64 len)
{
    return offset <= s->file_size && len <= s->file_size - offset;
}

static gboolean
read_snapshots(Qcow2 *s, guint32 nb, GError **error)
{
    const char *fn = s->bs->filename;
    guint64 pos = s->snapshots_offset;
    s->snapshots = g_array_new(FALSE, TRUE, sizeof(Snapshot));
    if (!nb)
        return TRUE;
    if (nb > MAX_SNAPSHOTS)
        return fail(error, FERRY_BLOCK_ERROR_CORRUPT,
                    _("Cannot open %s: it claims %u internal snapshots (at most %d). The image is "
                    "corrupt: check it with 'qemu-img check'."), fn, nb, MAX_SNAPSHOTS);
    if (pos & (s->cluster_size - 1))
        return fail(error, FERRY_BLOCK_ERROR_CORRUPT,
                    _("Cannot open %s: its snapshot table is not cluster-aligned. The image is "
                    "corrupt: check it with 'qemu-img check'."), fn);
    for (guint32 i = 0; i < nb; i++) {
        guint8 h[40];
        if (!in_file(s, pos, sizeof(h)) || pos - s->snapshots_offset > MAX_SNAPSHOT_TABLE ||
            ferry_file_pread(s->fd, h, sizeof(h), pos) < 0)
            return fail(error, FERRY_BLOCK_ERROR_CORRUPT,
                        _("Cannot open %s: its snapshot table runs past the end of the file. The "
                        "image is truncated or corrupt."), fn);
        Snapshot sn = { 0 };
        sn.l1_offset = ferry_be64(h);
        sn.l1_size = ferry_be32(h + 8);
        guint16 id_len = ferry_be16(h + 12), name_len = ferry_be16(h + 14);
        sn.pub.date_sec = ferry_be32(h + 16);
        sn.pub.date_nsec = ferry_be32(h + 20);
        sn.pub.vm_clock_nsec = ferry_be64(h + 24);
        sn.pub.vm_state_size = ferry_be32(h + 32);
        guint32 extra_len = ferry_be32(h + 36);
        sn.pub.icount = G_MAXUINT64;
        guint64 entry_len = 40 + (guint64) extra_len + id_len + name_len;
        if (extra_len > 1024 || !in_file(s, pos, entry_len))
            return fail(error, FERRY_BLOCK_ERROR_CORRUPT,
                        _("Cannot open %s: snapshot %u's entry is too long or past the end of the "
                        "file. The image is corrupt: check it with 'qemu-img check'."), fn, i + 1);
        g_autofree guint8 *rest = g_malloc(entry_len - 40 + 1);
        if (ferry_file_pread(s->fd, rest, entry_len - 40, pos + 40) < 0)
            return fail(error, FERRY_BLOCK_ERROR_FAILED, _("Cannot read %s."), fn);
        if (extra_len >= 8)
            sn.pub.vm_state_size = ferry_be64(rest);
        if (extra_len >= 16)
            sn.pub.disk_size = ferry_be64(rest + 8);
        if (extra_len >= 24)
            sn.pub.icount = ferry_be64(rest + 16);
        sn.pub.id = g_strndup((char *) rest + extra_len, id_len);
        sn.pub.name = g_strndup((char *) rest + extra_len + id_len, name_len);
        g_array_append_val(s->snapshots, sn);
        if ((sn.l1_offset & (s->cluster_size - 1)) || (guint64) sn.l1_size * 8 > MAX_L1_BYTES ||
            !in_file(s, sn.l1_offset, (guint64) sn.l1_size * 8))
            return fail(error, FERRY_BLOCK_ERROR_CORRUPT,
                        _("Cannot open %s: snapshot '%s' has an L1 table outside the file. The "
                        "image is corrupt: check it with 'qemu-img check'."), fn, sn.pub.name);
        pos += round_up(entry_len, 8);
    }
    s->snapshots_size = pos - s->snapshots_offset;
    return TRUE;
}

static void
snapshots_free(GArray *a)
{
    if (!a)
        return;
    for (guint i = 0; i < a->len; i++) {
        Snapshot *sn = &g_array_index(a, Snapshot, i);
        g_free(sn->pub.id);
        g_free(sn->pub.name);
    }
    g_array_free(a, TRUE);
}

static void
qcow2_free(Qcow2 *s)
{
    g_free(s->l1);
    g_free(s->rt);
    g_free(s->backing_name);
    g_free(s->backing_format);
    snapshots_free(s->snapshots);
    for (guint i = 0; s->l2_cache && i < s->l2_slots; i++)
        g_free(s->l2_cache[i].table);
    g_free(s->l2_cache);
    for (guint i = 0; i < RB_CACHE_SLOTS; i++)
        g_free(s->rb_cache[i].data);
    if (s->pending_free)
        g_array_free(s->pending_free, TRUE);
    g_free(s->cbuf);
    g_free(s->dbuf);
    if (s->zs_ready)
        inflateEnd(&s->zs);
    ZSTD_freeDCtx(s->zctx);
    g_mutex_clear(&s->lock);
    g_free(s);
}

static char *
resolve_backing(const char *image, const char *backing)
{
    if (g_path_is_absolute(backing))
        return g_strdup(backing);
    g_autofree char *dir = g_path_get_dirname(image);
    if (!strcmp(dir, "."))
        return g_strdup(backing);
    return g_build_filename(dir, backing, NULL);
}

static gboolean
parse_header(Qcow2 *s, GError **error)
{
    FerryBlock *bs = s->bs;
    const char *fn = bs->filename;
    guint8 h[HEADER_V3_LENGTH + 8] = { 0 };
    struct stat st;

    if (fstat(s->fd, &st) < 0)
        return fail(error, FERRY_BLOCK_ERROR_FAILED, _("Cannot open %s: %s."), fn, g_strerror(errno));
    s->file_size = st.st_size;
    if (s->file_size < HEADER_V2_LENGTH)
        return fail(error, FERRY_BLOCK_ERROR_CORRUPT,
                    "Cannot open %s: the file is too short for a qcow2 header (%" G_GUINT64_FORMAT
                    " bytes). It is truncated.", fn, s->file_size);
    if (ferry_file_pread(s->fd, h, sizeof(h), 0) < 0)
        return fail(error, FERRY_BLOCK_ERROR_FAILED, _("Cannot read %s: %s."), fn, g_strerror(errno));
    if (ferry_be32(h) != QCOW2_MAGIC)
        return fail(error, FERRY_BLOCK_ERROR_INVALID,
                    _("Cannot open %s: it is not a qcow2 image. Give its real format (-f raw?)."), fn);
    s->version = ferry_be32(h + 4);
    if (s->version != 2 && s->version != 3)
        return fail(error, FERRY_BLOCK_ERROR_UNSUPPORTED,
                    _("Cannot open %s: qcow2 version %u is not supported (2 and 3 are)."), fn, s->version);
    guint64 backing_offset = ferry_be64(h + 8);
    guint32 backing_size = ferry_be32(h + 16);
    s->cluster_bits = ferry_be32(h + 20);
    s->size = ferry_be64(h + 24);
    guint32 crypt = ferry_be32(h + 32);
    s->l1_size = ferry_be32(h + 36);
    s->l1_offset = ferry_be64(h + 40);
    s->rt_offset = ferry_be64(h + 48);
    s->rt_clusters = ferry_be32(h + 56);
    guint32 nb_snapshots = ferry_be32(h + 60);
    s->snapshots_offset = ferry_be64(h + 64);
    if (s->version >= 3) {
        s->incompat = ferry_be64(h + 72);
        s->compat = ferry_be64(h + 80);
        s->autoclear = ferry_be64(h + 88);
        s->refcount_order = ferry_be32(h + 96);
        s->header_length = ferry_be32(h + 100);
    } else {
        s->refcount_order = 4;
        s->header_length = HEADER_V2_LENGTH;
    }

    if (s->cluster_bits < MIN_CLUSTER_BITS || s->cluster_bits > MAX_CLUSTER_BITS)
        return fail(error, FERRY_BLOCK_ERROR_CORRUPT,
                    _("Cannot open %s: cluster_bits %u is out of range (%d to %d). The image is "
                    "corrupt."), fn, s->cluster_bits, MIN_CLUSTER_BITS, MAX_CLUSTER_BITS);
    s->cluster_size = G_GUINT64_CONSTANT(1) << s->cluster_bits;
    s->l2_bits = s->cluster_bits - 3;
    s->l2_entries = s->cluster_size / 8;
    if (s->version >= 3 && (s->header_length < HEADER_V3_LENGTH || s->header_length % 8 ||
                            s->header_length > s->cluster_size))
        return fail(error, FERRY_BLOCK_ERROR_CORRUPT,
                    _("Cannot open %s: header length %u is invalid. The image is corrupt."),
                    fn, s->header_length);
    if (s->refcount_order > 6)
        return fail(error, FERRY_BLOCK_ERROR_CORRUPT,
                    _("Cannot open %s: refcount order %u is invalid (at most 6). The image is "
                    "corrupt."), fn, s->refcount_order);
    s->refcount_bits = 1u << s->refcount_order;
    s->rb_entries = s->cluster_size * 8 / s->refcount_bits;
    s->refcount_max = s->refcount_bits == 64 ? G_MAXUINT64
                                             : (G_GUINT64_CONSTANT(1) << s->refcount_bits) - 1;

    g_autofree guint8 *c0 = g_malloc0(s->cluster_size);
    if (ferry_file_pread(s->fd, c0, s->cluster_size, 0) < 0)
        return fail(error, FERRY_BLOCK_ERROR_FAILED, _("Cannot read %s: %s."), fn, g_strerror(errno));

    /* Header extensions (after the header, within the first cluster). */
    const guint8 *features = NULL;
    gsize features_len = 0;
    for (guint64 pos = s->header_length; pos + 8 <= s->cluster_size;) {
        guint32 type = ferry_be32(c0 + pos), len = ferry_be32(c0 + pos + 4);
        if (type == EXT_END)
            break;
        if (len > s->cluster_size - pos - 8)
            return fail(error, FERRY_BLOCK_ERROR_CORRUPT,
                        _("Cannot open %s: header extension 0x%08x runs past the first cluster. "
                        "The image is corrupt."), fn, type);
        const guint8 *data = c0 + pos + 8;
        switch (type) {
        case EXT_BACKING_FORMAT:
            g_free(s->backing_format);
            s->backing_format = g_strndup((const char *) data, MIN(len, 32));
            break;
        case EXT_FEATURE_TABLE:
            features = data;
            features_len = len;
            break;
        case EXT_BITMAPS:
            if (len >= 24) {
                s->has_bitmaps = TRUE;
                s->nb_bitmaps = ferry_be32(data);
                s->bitmap_dir_size = ferry_be64(data + 8);
                s->bitmap_dir_offset = ferry_be64(data + 16);
            }
            break;
        case EXT_DATA_FILE:
            return fail(error, FERRY_BLOCK_ERROR_UNSUPPORTED,
                        _("Cannot open %s: it keeps its data in an external file, which Ferry does "
                        "not support. Convert it with 'qemu-img convert -O qcow2'."), fn);
        default:
            break;
        }
        pos += 8 + round_up(len, 8);
    }

    guint64 unknown = s->incompat & ~(guint64) INCOMPAT_KNOWN;
    if (unknown) {
        guint bit = (guint) __builtin_ctzll(unknown);
        g_autofree char *name = feature_name(features, features_len, 0, bit);
        return fail(error, FERRY_BLOCK_ERROR_UNSUPPORTED,
                    _("Cannot open %s: it uses an incompatible feature Ferry does not know (bit %u%s%s%s). "
                    "Convert it with 'qemu-img convert -O qcow2'."), fn, bit,
                    name ? ": '" : "", name ? name : "", name ? "'" : "");
    }
    if (s->incompat & INCOMPAT_DATA_FILE)
        return fail(error, FERRY_BLOCK_ERROR_UNSUPPORTED,
                    _("Cannot open %s: it keeps its data in an external file, which Ferry does not "
                    "support. Convert it with 'qemu-img convert -O qcow2'."), fn);
    if (s->incompat & INCOMPAT_EXTL2)
        return fail(error, FERRY_BLOCK_ERROR_UNSUPPORTED,
                    _("Cannot open %s: it uses extended L2 entries (subclusters), which Ferry does "
                    "not support. Convert it with 'qemu-img convert -O qcow2'."), fn);
    if (s->incompat & INCOMPAT_COMPRESSION) {
        if (s->header_length <= 104)
            return fail(error, FERRY_BLOCK_ERROR_CORRUPT,
                        _("Cannot open %s: it says it has a compression type but its header is too "
                        "short for one. The image is corrupt."), fn);
        s->compression_type = c0[104];
        if (s->compression_type != 1)
            return fail(error, FERRY_BLOCK_ERROR_UNSUPPORTED,
                        _("Cannot open %s: compression type %u is not supported (zlib and zstd are)."),
                        fn, s->compression_type);
    } else if (s->header_length > 104 && c0[104] != 0) {
        return fail(error, FERRY_BLOCK_ERROR_CORRUPT,
                    _("Cannot open %s: it names compression type %u without the feature bit. The "
                    "image is corrupt."), fn, c0[104]);
    }
    if (crypt)
        return fail(error, FERRY_BLOCK_ERROR_UNSUPPORTED,
                    _("Cannot open %s: it is encrypted, which Ferry does not support. Decrypt it "
                    "with 'qemu-img convert -O qcow2'."), fn);
    if (s->writable && s->version < 3)
        return fail(error, FERRY_BLOCK_ERROR_UNSUPPORTED,
                    _("Cannot open %s for writing: it is a version 2 (compat=0.10) qcow2 image, "
                    "which Ferry only reads. Upgrade it with 'qemu-img amend -o compat=1.1 %s' "
                    "or open it read-only."), fn, fn);
    if (s->writable && (s->incompat & INCOMPAT_CORRUPT))
        return fail(error, FERRY_BLOCK_ERROR_CORRUPT,
                    _("Cannot open %s for writing: it is marked corrupt. Repair it with "
                    "'qemu-img check -r all %s' or open it read-only."), fn, fn);
    if (s->writable && (s->incompat & INCOMPAT_DIRTY))
        return fail(error, FERRY_BLOCK_ERROR_CORRUPT,
                    _("Cannot open %s for writing: it was not closed cleanly (lazy refcounts) and "
                    "its refcounts need a rebuild. Run 'qemu-img check -r all %s' first."), fn, fn);

    /* Sizes and tables. */
    guint64 coverage = s->l2_entries << s->cluster_bits;
    guint64 need_l1 = s->size / coverage + (s->size % coverage != 0);
    if ((guint64) s->l1_size * 8 > MAX_L1_BYTES)
        return fail(error, FERRY_BLOCK_ERROR_UNSUPPORTED,
                    _("Cannot open %s: its L1 table (%u entries) is larger than %u MiB. The image "
                    "is corrupt or too large."), fn, s->l1_size, MAX_L1_BYTES >> 20);
    if (need_l1 > s->l1_size)
        return fail(error, FERRY_BLOCK_ERROR_CORRUPT,
                    "Cannot open %s: its virtual size (%" G_GUINT64_FORMAT " bytes) needs %"
                    G_GUINT64_FORMAT " L1 entries but it has %u. The image is corrupt.",
                    fn, s->size, need_l1, s->l1_size);
    if (s->l1_size && ((s->l1_offset & (s->cluster_size - 1)) ||
                       !in_file(s, s->l1_offset, (guint64) s->l1_size * 8)))
        return fail(error, FERRY_BLOCK_ERROR_CORRUPT,
                    "Cannot open %s: its L1 table (at 0x%" G_GINT64_MODIFIER "x) is misaligned "
                    "or past the end of the file. The image is truncated or corrupt.",
                    fn, s->l1_offset);
    if (!s->rt_clusters || (guint64) s->rt_clusters * s->cluster_size > MAX_REFTABLE_BYTES ||
        (s->rt_offset & (s->cluster_size - 1)) ||
        !in_file(s, s->rt_offset, (guint64) s->rt_clusters * s->cluster_size))
        return fail(error, FERRY_BLOCK_ERROR_CORRUPT,
                    "Cannot open %s: its refcount table (at 0x%" G_GINT64_MODIFIER "x, %u "
                    "clusters) is empty, too large, misaligned or past the end of the file. The "
                    "image is truncated or corrupt.", fn, s->rt_offset, s->rt_clusters);
    if (backing_offset) {
        if (backing_size > MAX_BACKING_NAME || backing_size == 0 ||
            backing_offset >= s->cluster_size || backing_size > s->cluster_size - backing_offset)
            return fail(error, FERRY_BLOCK_ERROR_CORRUPT,
                        _("Cannot open %s: its backing file name is too long or outside the first "
                        "cluster. The image is corrupt."), fn);
        s->backing_name = g_strndup((const char *) c0 + backing_offset, backing_size);
    }

    s->l1 = g_new0(guint64, MAX(s->l1_size, 1));
    if (s->l1_size) {
        if (ferry_file_pread(s->fd, s->l1, (guint64) s->l1_size * 8, s->l1_offset) < 0)
            return fail(error, FERRY_BLOCK_ERROR_FAILED, _("Cannot read %s: %s."), fn, g_strerror(errno));
        for (guint32 i = 0; i < s->l1_size; i++) {
            s->l1[i] = GUINT64_FROM_BE(s->l1[i]);
            guint64 off = s->l1[i] & L1E_OFFSET_MASK;
            if (off && ((off & (s->cluster_size - 1)) || !in_file(s, off, s->cluster_size)))
                return fail(error, FERRY_BLOCK_ERROR_CORRUPT,
                            "Cannot open %s: L1 entry %u points to 0x%" G_GINT64_MODIFIER "x, "
                            "misaligned or past the end of the file. The image is truncated or "
                            "corrupt: check it with 'qemu-img check'.", fn, i, off);
        }
    }
    s->rt_entries = (guint64) s->rt_clusters * s->cluster_size / 8;
    s->rt = g_new(guint64, s->rt_entries);
    if (ferry_file_pread(s->fd, s->rt, s->rt_entries * 8, s->rt_offset) < 0)
        return fail(error, FERRY_BLOCK_ERROR_FAILED, _("Cannot read %s: %s."), fn, g_strerror(errno));
    for (guint64 i = 0; i < s->rt_entries; i++) {
        s->rt[i] = GUINT64_FROM_BE(s->rt[i]);
        guint64 off = s->rt[i] & REFT_OFFSET_MASK;
        if ((s->rt[i] & ~REFT_OFFSET_MASK) || (off & (s->cluster_size - 1)) ||
            (off && !in_file(s, off, s->cluster_size)))
            return fail(error, FERRY_BLOCK_ERROR_CORRUPT,
                        "Cannot open %s: refcount table entry %" G_GUINT64_FORMAT " points to 0x%"
                        G_GINT64_MODIFIER "x, misaligned or past the end of the file. The image "
                        "is truncated or corrupt.", fn, i, s->rt[i]);
    }
    if (!read_snapshots(s, nb_snapshots, error))
        return FALSE;
    if (s->has_bitmaps && (s->bitmap_dir_offset & (s->cluster_size - 1) ||
                           s->bitmap_dir_size > MAX_SNAPSHOT_TABLE ||
                           !in_file(s, s->bitmap_dir_offset, s->bitmap_dir_size)))
        s->has_bitmaps = FALSE;     /* only check uses it; QEMU repairs it */
    return TRUE;
}

static gboolean
qcow2_open(FerryBlock *bs, int fd, FerryBlockFlags flags, GError **error)
{
    Qcow2 *s = g_new0(Qcow2, 1);
    g_mutex_init(&s->lock);
    s->bs = bs;
    s->fd = fd;
    s->writable = !(flags & FERRY_BLOCK_READ_ONLY);
    s->pending_free = g_array_new(FALSE, FALSE, sizeof(FreeRun));
    bs->opaque = s;
    if (!parse_header(s, error))
        goto fail;

    s->l2_slots = (guint) CLAMP(L2_CACHE_BYTES / s->cluster_size, 16, 64);
    s->l2_cache = g_new0(L2Slot, s->l2_slots);
    s->end_cluster = size_to_clusters(s, s->file_size);

    if (s->writable && s->autoclear) {
        /* Bits for features we do not keep up to date (bitmaps) must go
         * before our first write, so QEMU knows they are stale. */
        guint8 be[8] = { 0 };
        int r = ferry_file_pwrite(fd, be, 8, 88);
        if (r == 0)
            r = ferry_file_sync(fd);
        if (r < 0) {
            ferry_file_set_error(error, r, bs->filename, "write");
            goto fail;
        }
        s->autoclear = 0;
    }

    if (s->backing_name && !(flags & FERRY_BLOCK_NO_BACKING)) {
        if (g_str_has_prefix(s->backing_name, "json:")) {
            fail(error, FERRY_BLOCK_ERROR_UNSUPPORTED,
                 _("Cannot open %s: its backing file is given as JSON options, which Ferry does not "
                 "support. Rebase it onto a plain file name with 'qemu-img rebase'."), bs->filename);
            goto fail;
        }
        g_autofree char *path = resolve_backing(bs->filename, s->backing_name);
        FerryBlockFlags bflags = FERRY_BLOCK_READ_ONLY | (flags & FERRY_BLOCK_NO_LOCK);
        g_autoptr(GError) err = NULL;
        FerryBlock *backing = ferry_block_open_child(path, s->backing_format, bflags, bs, &err);
        if (!backing) {
            if (err->code == FERRY_BLOCK_ERROR_OPEN)
                g_set_error(error, FERRY_BLOCK_ERROR, FERRY_BLOCK_ERROR_OPEN,
                            _("Cannot open %s: its backing file %s cannot be opened (%s)"),
                            bs->filename, path, err->message);
            else
                g_propagate_error(error, g_steal_pointer(&err));
            goto fail;
        }
        ferry_block_swap_backing(bs, backing);
    }
    ferry_block_set_size(bs, s->size);
    return TRUE;

fail:
    qcow2_free(s);
    bs->opaque = NULL;
    return FALSE;
}

static void
qcow2_close(FerryBlock *bs)
{
    Qcow2 *s = Q(bs);
    if (!s)
        return;
    if (s->writable) {
        int r = flush_locked(s);
        if (r < 0)
            g_message("%s: could not write its metadata on close: %s", bs->filename, g_strerror(-r));
    }
    qcow2_free(s);
    bs->opaque = NULL;
}

/* ---- info ---------------------------------------------------------------------------- */

static void
qcow2_get_info(FerryBlock *bs, FerryBlockInfo *info)
{
    Qcow2 *s = Q(bs);
    g_mutex_lock(&s->lock);
    info->cluster_size = (guint32) s->cluster_size;
    if (s->backing_name) {
        info->backing_filename = g_strdup(s->backing_name);
        info->full_backing_filename = resolve_backing(bs->filename, s->backing_name);
        info->backing_format = g_strdup(s->backing_format);
    }
    info->dirty = (s->incompat & INCOMPAT_DIRTY) != 0;
    info->corrupt = (s->incompat & INCOMPAT_CORRUPT) != 0;
    info->extended_l2 = (s->incompat & INCOMPAT_EXTL2) != 0;
    info->lazy_refcounts = (s->compat & COMPAT_LAZY_REFCOUNTS) != 0;
    info->compat = g_strdup(s->version >= 3 ? "1.1" : "0.10");
    info->compression_type = g_strdup(s->compression_type == 1 ? "zstd" : "zlib");
    info->refcount_bits = s->refcount_bits;
    for (guint i = 0; i < s->snapshots->len; i++) {
        Snapshot *sn = &g_array_index(s->snapshots, Snapshot, i);
        FerryBlockSnapshot *out = g_new(FerryBlockSnapshot, 1);
        *out = sn->pub;
        out->id = g_strdup(sn->pub.id);
        out->name = g_strdup(sn->pub.name);
        g_ptr_array_add(info->snapshots, out);
    }
    g_mutex_unlock(&s->lock);
}

guint64
ferry_qcow2_allocated_bytes(FerryBlock *bs)
{
    Qcow2 *s = Q(bs);
    guint64 clusters = 0;
    g_mutex_lock(&s->lock);
    for (guint32 i = 0; i < s->l1_size; i++) {
        if (!(s->l1[i] & L1E_OFFSET_MASK))
            continue;
        L2Slot *slot;
        if (l2_load(s, s->l1[i] & L1E_OFFSET_MASK, FALSE, &slot) < 0)
            continue;
        for (guint64 j = 0; j < s->l2_entries; j++)
            if (slot->table[j])
                clusters++;
    }
    g_mutex_unlock(&s->lock);
    return MIN(clusters << s->cluster_bits, s->size);
}

/* ---- check ----------------------------------------------------------------------------- */

typedef struct {
    Qcow2 *s;
    FerryBlockCheck *res;
    guint32 *refs;                  /* references per host cluster (saturating) */
    guint64 nb_clusters;
} Check;

static void G_GNUC_PRINTF(2, 3)
check_msg(Check *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    /* A badly broken image could produce millions; the counts stay exact. */
    if (c->res->messages->len < 10000)
        g_ptr_array_add(c->res->messages, msg);
    else
        g_free(msg);
}

static void
check_ref(Check *c, guint64 offset, guint64 len, const char *what)
{
    if (!len)
        return;
    guint64 first = offset >> c->s->cluster_bits;
    guint64 last = (offset + len - 1) >> c->s->cluster_bits;
    if (offset + len < offset || last >= c->nb_clusters) {
        check_msg(c, "ERROR %s at offset 0x%" G_GINT64_MODIFIER "x is past the end of the image file",
                  what, offset);
        c->res->corruptions++;
        return;
    }
    for (guint64 i = first; i <= last; i++)
        if (c->refs[i] < G_MAXUINT32)
            c->refs[i]++;
}

static void
check_l1(Check *c, guint64 l1_offset, guint32 l1_size, gboolean active)
{
    Qcow2 *s = c->s;
    g_autofree guint64 *l1 = g_new0(guint64, MAX(l1_size, 1));
    g_autofree guint64 *l2 = g_new(guint64, s->l2_entries);
    guint64 prev_host = 0;

    if (l1_size && ferry_file_pread(s->fd, l1, (guint64) l1_size * 8, l1_offset) < 0) {
        c->res->check_errors++;
        return;
    }
    for (guint32 i = 0; i < l1_size; i++) {
        guint64 l1e = GUINT64_FROM_BE(l1[i]);
        guint64 l2off = l1e & L1E_OFFSET_MASK;
        if (!l2off)
            continue;
        if (l2off & (s->cluster_size - 1)) {
            check_msg(c, "ERROR l2_offset=%" G_GINT64_MODIFIER "x: Table is not cluster aligned; "
                      "L1 entry corrupted", l2off);
            c->res->corruptions++;
            continue;
        }
        if ((l2off >> s->cluster_bits) >= c->nb_clusters) {
            check_msg(c, "ERROR l2_offset=%" G_GINT64_MODIFIER "x: L2 table is past the end of "
                      "the image file", l2off);
            c->res->corruptions++;
            continue;
        }
        check_ref(c, l2off, s->cluster_size, "L2 table");
        if (active) {
            guint64 rc = 0;
            refcount_get(s, l2off >> s->cluster_bits, &rc);
            if ((rc == 1) != ((l1e & OFLAG_COPIED) != 0)) {
                check_msg(c, "ERROR OFLAG_COPIED L2 cluster: l1_index=%u l1_entry=%"
                          G_GINT64_MODIFIER "x refcount=%" G_GUINT64_FORMAT, i, l1e, rc);
                c->res->corruptions++;
            }
        }
        if (ferry_file_pread(s->fd, l2, s->cluster_size, l2off) < 0) {
            c->res->check_errors++;
            continue;
        }
        for (guint64 j = 0; j < s->l2_entries; j++) {
            guint64 e = GUINT64_FROM_BE(l2[j]);
            if (e & OFLAG_COMPRESSED) {
                guint x = 62 - (s->cluster_bits - 8);
                guint64 coff = e & ((G_GUINT64_CONSTANT(1) << x) - 1);
                guint64 nsec = ((e & ~OFLAG_COPIED & ~OFLAG_COMPRESSED) >> x) + 1;
                guint64 start = coff & ~G_GUINT64_CONSTANT(511);
                if (e & OFLAG_COPIED) {
                    check_msg(c, "ERROR: coffset=0x%" G_GINT64_MODIFIER "x: copied flag must "
                              "never be set for compressed clusters", coff);
                    c->res->corruptions++;
                }
                check_ref(c, start, nsec * 512, "compressed cluster");
                if (active) {
                    c->res->allocated_clusters++;
                    c->res->compressed_clusters++;
                    c->res->fragmented_clusters++;
                }
                continue;
            }
            guint64 host = e & L2E_OFFSET_MASK;
            gboolean zero = s->version >= 3 && (e & OFLAG_ZERO);
            if (e & L2E_STD_RESERVED_MASK) {
                check_msg(c, "ERROR: L2 entry 0x%" G_GINT64_MODIFIER "x has reserved bits set", e);
                c->res->corruptions++;
            }
            if (!host)
                continue;
            if (host & (s->cluster_size - 1)) {
                check_msg(c, "ERROR offset=%" G_GINT64_MODIFIER "x: Cluster is not properly "
                          "aligned; L2 entry corrupted", host);
                c->res->corruptions++;
                continue;
            }
            check_ref(c, host, s->cluster_size, "data cluster");
            if (active) {
                if (!zero) {
                    c->res->allocated_clusters++;
                    if (prev_host && host != prev_host + s->cluster_size)
                        c->res->fragmented_clusters++;
                    prev_host = host;
                }
                guint64 rc = 0;
                refcount_get(s, host >> s->cluster_bits, &rc);
                if ((rc == 1) != ((e & OFLAG_COPIED) != 0)) {
                    check_msg(c, "ERROR OFLAG_COPIED data cluster: l2_entry=%" G_GINT64_MODIFIER
                              "x refcount=%" G_GUINT64_FORMAT, e, rc);
                    c->res->corruptions++;
                }
            }
        }
    }
}

static gboolean
qcow2_check(FerryBlock *bs, FerryBlockCheck *res, gboolean repair_leaks, GError **error)
{
    Qcow2 *s = Q(bs);
    Check c = { s, res, NULL, 0 };
    gboolean ok = TRUE;
    g_mutex_lock(&s->lock);
    if (s->writable) {
        int r = flush_locked(s);
        if (r < 0) {
            ferry_file_set_error(error, r, bs->filename, "write");
            g_mutex_unlock(&s->lock);
            return FALSE;
        }
    }
    struct stat st;
    if (fstat(s->fd, &st) == 0)
        s->file_size = MAX(s->file_size, (guint64) st.st_size);
    c.nb_clusters = size_to_clusters(s, s->file_size);
    c.refs = g_try_new0(guint32, MAX(c.nb_clusters, 1));
    if (!c.refs) {
        g_mutex_unlock(&s->lock);
        return fail(error, FERRY_BLOCK_ERROR_FAILED, _("Cannot check %s: not enough memory."),
                    bs->filename);
    }

    check_ref(&c, 0, s->cluster_size, "header");
    check_ref(&c, s->l1_offset, (guint64) s->l1_size * 8, "L1 table");
    check_l1(&c, s->l1_offset, s->l1_size, TRUE);
    for (guint i = 0; i < s->snapshots->len; i++) {
        Snapshot *sn = &g_array_index(s->snapshots, Snapshot, i);
        check_ref(&c, sn->l1_offset, (guint64) sn->l1_size * 8, "snapshot L1 table");
        check_l1(&c, sn->l1_offset, sn->l1_size, FALSE);
    }
    check_ref(&c, s->snapshots_offset, s->snapshots_size, "snapshot table");
    check_ref(&c, s->rt_offset, (guint64) s->rt_clusters * s->cluster_size, "refcount table");
    for (guint64 i = 0; i < s->rt_entries; i++)
        if (s->rt[i])
            check_ref(&c, s->rt[i], s->cluster_size, "refcount block");
    if (s->has_bitmaps) {
        g_autofree guint8 *dir = g_malloc(MAX(s->bitmap_dir_size, 1));
        check_ref(&c, s->bitmap_dir_offset, s->bitmap_dir_size, "bitmap directory");
        if (ferry_file_pread(s->fd, dir, s->bitmap_dir_size, s->bitmap_dir_offset) == 0) {
            for (guint64 pos = 0; pos + 24 <= s->bitmap_dir_size;) {
                guint64 toff = ferry_be64(dir + pos);
                guint32 tsize = ferry_be32(dir + pos + 8);
                guint16 name_len = ferry_be16(dir + pos + 18);
                guint32 extra = ferry_be32(dir + pos + 20);
                check_ref(&c, toff, (guint64) tsize * 8, "bitmap table");
                if ((guint64) tsize * 8 <= MAX_L1_BYTES && in_file(s, toff, (guint64) tsize * 8)) {
                    g_autofree guint64 *t = g_new(guint64, MAX(tsize, 1));
                    if (ferry_file_pread(s->fd, t, (guint64) tsize * 8, toff) == 0)
                        for (guint32 k = 0; k < tsize; k++) {
                            guint64 e = GUINT64_FROM_BE(t[k]) & L2E_OFFSET_MASK;
                            if (e)
                                check_ref(&c, e, s->cluster_size, "bitmap data");
                        }
                }
                pos += round_up(24 + (guint64) extra + name_len, 8);
            }
        }
    }

    guint64 last_used = 0;
    for (guint64 i = 0; i < c.nb_clusters; i++) {
        guint64 rc = 0;
        if (refcount_get(s, i, &rc) < 0) {
            res->check_errors++;
            continue;
        }
        if (rc)
            last_used = i + 1;
        if (rc == c.refs[i])
            continue;
        if (rc > c.refs[i]) {
            if (repair_leaks) {
                check_msg(&c, "Repairing cluster %" G_GUINT64_FORMAT " refcount=%" G_GUINT64_FORMAT
                          " reference=%u", i, rc, c.refs[i]);
                if (refcount_change(s, i, 1, c.refs[i], TRUE) == 0) {
                    res->leaks_fixed++;
                    if (!c.refs[i] && last_used == i + 1)
                        last_used = 0;
                    continue;
                }
            }
            check_msg(&c, "Leaked cluster %" G_GUINT64_FORMAT " refcount=%" G_GUINT64_FORMAT
                      " reference=%u", i, rc, c.refs[i]);
            res->leaks++;
        } else {
            check_msg(&c, "ERROR cluster %" G_GUINT64_FORMAT " refcount=%" G_GUINT64_FORMAT
                      " reference=%u%s", i, rc, c.refs[i],
                      c.refs[i] > s->refcount_max ? " (reference count overflow)" : "");
            res->corruptions++;
        }
    }
    if (repair_leaks && res->leaks_fixed) {
        ferry_file_sync(s->fd);
        /* Find the end again: repaired clusters at the end no longer count. */
        last_used = 0;
        for (guint64 i = 0; i < c.nb_clusters; i++) {
            guint64 rc = 0;
            if (refcount_get(s, i, &rc) == 0 && rc)
                last_used = i + 1;
        }
        s->free_hint = 0;
    }
    res->image_end_offset = last_used << s->cluster_bits;
    res->total_clusters = size_to_clusters(s, s->size);
    g_free(c.refs);
    g_mutex_unlock(&s->lock);
    return ok;
}

/* ---- creating ---------------------------------------------------------------------------- */

static const struct {
    guint8 type, bit;
    const char *name;
} feature_table[] = {
    { 0, 0, "dirty bit" },
    { 0, 1, "corrupt bit" },
    { 0, 2, "external data file" },
    { 0, 3, "compression type" },
    { 0, 4, "extended L2 entries" },
    { 1, 0, "lazy refcounts" },
    { 2, 0, "bitmaps" },
    { 2, 1, "raw external data" },
};

static gboolean
qcow2_create(const char *filename, int fd, const FerryBlockCreateOptions *opts, GError **error)
{
    guint64 cs = opts->cluster_size ? opts->cluster_size : 65536;
    guint rbits = opts->refcount_bits ? opts->refcount_bits : 16;
    guint8 ctype = 0;
    guint64 size = opts->size;
    g_autofree char *backing_format = g_strdup(opts->backing_format);

    if (cs < 512 || cs > (2u << 20) || (cs & (cs - 1)))
        return fail(error, FERRY_BLOCK_ERROR_INVALID,
                    "Cannot create %s: cluster size %" G_GUINT64_FORMAT " is invalid. Use a power "
                    "of two from 512 to 2M.", filename, cs);
    if (rbits > 64 || (rbits & (rbits - 1)))
        return fail(error, FERRY_BLOCK_ERROR_INVALID,
                    _("Cannot create %s: refcount width %u is invalid. Use 1, 2, 4, 8, 16, 32 or 64."),
                    filename, rbits);
    if (opts->compression_type && !strcmp(opts->compression_type, "zstd"))
        ctype = 1;
    else if (opts->compression_type && strcmp(opts->compression_type, "zlib"))
        return fail(error, FERRY_BLOCK_ERROR_INVALID,
                    _("Cannot create %s: compression type '%s' is unknown. Use zlib or zstd."),
                    filename, opts->compression_type);
    if (opts->backing_file) {
        if (strlen(opts->backing_file) > MAX_BACKING_NAME)
            return fail(error, FERRY_BLOCK_ERROR_INVALID,
                        _("Cannot create %s: the backing file name is longer than %d bytes."),
                        filename, MAX_BACKING_NAME);
        if (!opts->no_backing_check || !size) {
            g_autofree char *path = resolve_backing(filename, opts->backing_file);
            FerryBlock *b = ferry_block_open(path, backing_format,
                                             FERRY_BLOCK_READ_ONLY | FERRY_BLOCK_NO_LOCK, error);
            if (!b)
                return FALSE;
            if (!size)
                size = ferry_block_get_size(b);
            if (!backing_format)
                backing_format = g_strdup(ferry_block_get_format(b));
            ferry_block_close(b);
        }
    }

    guint bits = (guint) __builtin_ctzll(cs);
    guint64 l2_entries = cs / 8;
    guint64 coverage = l2_entries * cs;
    guint64 l1_size = size / coverage + (size % coverage != 0);
    if (l1_size * 8 > MAX_L1_BYTES || size > (G_GUINT64_CONSTANT(1) << 61))
        return fail(error, FERRY_BLOCK_ERROR_INVALID,
                    "Cannot create %s: %" G_GUINT64_FORMAT " bytes is too large for %" G_GUINT64_FORMAT
                    "-byte clusters. Use a larger cluster size (-o cluster_size=2M).",
                    filename, size, cs);
    guint64 l1_clusters = (l1_size * 8 + cs - 1) / cs;
    guint64 rb_entries = cs * 8 / rbits;
    guint64 rt_clusters = 1, rb_count = 1;
    for (;;) {
        guint64 total = 1 + rt_clusters + rb_count + l1_clusters;
        guint64 need_rb = (total + rb_entries - 1) / rb_entries;
        guint64 need_rt = (need_rb * 8 + cs - 1) / cs;
        if (need_rb == rb_count && need_rt == rt_clusters)
            break;
        rb_count = need_rb;
        rt_clusters = need_rt;
    }
    guint64 total = 1 + rt_clusters + rb_count + l1_clusters;
    guint64 rt_off = cs, rb_off = rt_off + rt_clusters * cs, l1_off = rb_off + rb_count * cs;

    /* Header cluster. */
    g_autofree guint8 *h = g_malloc0(cs);
    ferry_put_be32(h, QCOW2_MAGIC);
    ferry_put_be32(h + 4, 3);
    ferry_put_be32(h + 20, bits);
    ferry_put_be64(h + 24, size);
    ferry_put_be32(h + 36, (guint32) l1_size);
    ferry_put_be64(h + 40, l1_off);
    ferry_put_be64(h + 48, rt_off);
    ferry_put_be32(h + 56, (guint32) rt_clusters);
    ferry_put_be64(h + 72, ctype ? INCOMPAT_COMPRESSION : 0);
    ferry_put_be32(h + 96, (guint32) __builtin_ctz(rbits));
    ferry_put_be32(h + 100, HEADER_LENGTH_WRITTEN);
    h[104] = ctype;
    guint64 pos = HEADER_LENGTH_WRITTEN;
    gsize blen = opts->backing_file ? strlen(opts->backing_file) : 0;
    if (backing_format) {
        gsize flen = strlen(backing_format);
        ferry_put_be32(h + pos, EXT_BACKING_FORMAT);
        ferry_put_be32(h + pos + 4, (guint32) flen);
        memcpy(h + pos + 8, backing_format, flen);
        pos += 8 + round_up(flen, 8);
    }
    gsize ftlen = G_N_ELEMENTS(feature_table) * 48;
    if (pos + 8 + ftlen + 8 + blen <= cs) {
        ferry_put_be32(h + pos, EXT_FEATURE_TABLE);
        ferry_put_be32(h + pos + 4, (guint32) ftlen);
        for (guint i = 0; i < G_N_ELEMENTS(feature_table); i++) {
            guint8 *e = h + pos + 8 + i * 48;
            e[0] = feature_table[i].type;
            e[1] = feature_table[i].bit;
            memcpy(e + 2, feature_table[i].name, strlen(feature_table[i].name));
        }
        pos += 8 + ftlen;
    }
    pos += 8;       /* end of extensions: type 0, length 0 */
    if (blen) {
        if (pos + blen > cs)
            return fail(error, FERRY_BLOCK_ERROR_INVALID,
                        "Cannot create %s: the backing file name does not fit in a %" G_GUINT64_FORMAT
                        "-byte cluster. Use a larger cluster size.", filename, cs);
        memcpy(h + pos, opts->backing_file, blen);
        ferry_put_be64(h + 8, pos);
        ferry_put_be32(h + 16, (guint32) blen);
    }

    /* Refcount table and blocks: every cluster of the new file has refcount 1. */
    g_autofree guint8 *rt = g_malloc0(rt_clusters * cs);
    for (guint64 i = 0; i < rb_count; i++)
        ferry_put_be64(rt + i * 8, rb_off + i * cs);
    g_autofree guint8 *rb = g_malloc0(rb_count * cs);
    Qcow2 tmp = { .refcount_bits = rbits };
    for (guint64 c = 0; c < total; c++)
        rb_entry_set(&tmp, rb + (c / rb_entries) * cs, c % rb_entries, 1);

    int r = 0;
    if (ftruncate(fd, 0) < 0 || ftruncate(fd, total * cs) < 0)
        r = -errno;
    if (r == 0)
        r = ferry_file_pwrite(fd, rt, rt_clusters * cs, rt_off);
    if (r == 0)
        r = ferry_file_pwrite(fd, rb, rb_count * cs, rb_off);
    if (r == 0)
        r = ferry_file_sync(fd);
    /* The header last: until it is there the file is not an image. */
    if (r == 0)
        r = ferry_file_pwrite(fd, h, cs, 0);
    if (r < 0) {
        ferry_file_set_error(error, r, filename, "create");
        return FALSE;
    }
    return TRUE;
}

gboolean
ferry_qcow2_create_empty_like(FerryBlock *bs, const char *new_path, GError **error)
{
    Qcow2 *s = Q(bs);
    FerryBlockCreateOptions o = {
        .format = "qcow2",
        .size = s->size,
        .backing_file = s->backing_name,
        .backing_format = s->backing_format,
        .cluster_size = (guint32) s->cluster_size,
        .refcount_bits = s->refcount_bits,
        .compression_type = s->compression_type == 1 ? "zstd" : NULL,
        .no_backing_check = TRUE,
    };
    return ferry_block_create(new_path, &o, error);
}

gboolean
ferry_qcow2_read_backing(const char *path, char **backing, char **backing_format, GError **error)
{
    FerryBlock *bs = ferry_block_open(path, "qcow2",
                                      FERRY_BLOCK_READ_ONLY | FERRY_BLOCK_NO_LOCK |
                                      FERRY_BLOCK_NO_BACKING, error);
    if (!bs)
        return FALSE;
    Qcow2 *s = Q(bs);
    *backing = s->backing_name ? resolve_backing(path, s->backing_name) : NULL;
    *backing_format = g_strdup(s->backing_format);
    ferry_block_close(bs);
    return TRUE;
}

const FerryBlockDriver ferry_block_qcow2 = {
    .format = "qcow2",
    .probe = qcow2_probe,
    .open = qcow2_open,
    .submit = qcow2_submit,
    .close = qcow2_close,
    .create = qcow2_create,
    .get_info = qcow2_get_info,
    .check = qcow2_check,
    .block_status = qcow2_block_status,
};

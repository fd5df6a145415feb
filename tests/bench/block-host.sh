#!/bin/bash
# Block layer on the host, no VM and no CPU emulation (issue 5's first benchmark):
# Ferry's raw and qcow2 drivers and the snapshot overlay vs `qemu-img bench` on the same
# files, and the file system's own figure (fio) on the raw file; the cost of creating an
# overlay (target < 10 ms) and of committing N MiB (target >= 0.8x the file system's
# sequential write speed, dd with fdatasync).
#
# usage: tests/bench/block-host.sh [BUILD_DIR]
# env: RUNS (default 5) interleaved rounds; IMG_MIB (1024) image size; SEQ_COUNT (1024)
#      1 MiB requests per sequential run; RAND_COUNT (65536) 4 KiB requests per random run;
#      COMMIT_MIB (256); CREATE_RUNS (21); BENCH_DIR (a mktemp -d under ${TMPDIR:-/tmp}:
#      the file system measured); QEMU_IMG (qemu-img).
#      PIN=CPU runs everything on that one host CPU (taskset -c): no cross-CPU wake-ups
#      between threads (a diagnostic; the default lets the scheduler place them).
#
# Cache mode: the host page cache on every side (Ferry's drivers have no O_DIRECT mode):
# qemu-img bench -t writeback, fio --direct=0 --invalidate=0. Every request is at queue
# depth 1. The offsets are qemu-img bench's: 0, STEP, 2*STEP, ... modulo the image size;
# "seq" is STEP = SIZE = 1 MiB, "rand" is SIZE 4 KiB with STEP 7919 * 4 KiB (a prime
# number of blocks: one pass visits every block once in a scattered order). fio's random
# figures use its own random offsets (randread/randwrite, psync, same file).
# Before every timed run the files are synced (sync FILE), not timed, so that no run pays
# for the dirty pages of the one before. The raw and qcow2 files are cached in 4 KiB
# page-cache folios both (see "Both files start in the page cache" below).
#
# Ferry runs through tests/bench/block-host.c (built here with cc against
# BUILD_DIR/devices/block/libferry-block.a), in two modes:
#   sync   ferry_block_submit() in the calling thread: the driver alone
#   async  ferry_block_submit_async() and a wait for its completion: the block layer's
#          worker threads, the path virtio-blk takes (qemu-img bench goes through QEMU's
#          thread pool the same way: -i threads)
# Rows: raw = a 1 GiB raw file of random bytes; qcow2 = the same converted by qemu-img
# (every cluster allocated: reads and overwrites); qcow2 new = an empty qcow2 made by
# `qemu-img create` before each run (allocating writes); overlay = a new, empty snapshot
# overlay over the raw file before each run (Ferry: ferry_overlay_open, as --snapshot does;
# QEMU: `qemu-img create -f qcow2 -b base.raw -F raw`): reads go through to the base,
# writes allocate.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
bench_pin "$@"
build=${1:-${FERRY_BUILD:-$top/build}}
runs=${RUNS:-5}
img_mib=${IMG_MIB:-1024}
seq_count=${SEQ_COUNT:-1024}
rand_count=${RAND_COUNT:-65536}
commit_mib=${COMMIT_MIB:-256}
create_runs=${CREATE_RUNS:-21}
qemu_img=${QEMU_IMG:-qemu-img}
lib=$build/devices/block/libferry-block.a

need_cmd python3 "apt-get install python3"
need_cmd cc "apt-get install gcc"
pkg-config --exists glib-2.0 zlib libzstd 2>/dev/null ||
    missing+=("pkg-config glib-2.0 zlib libzstd (apt-get install pkg-config libglib2.0-dev zlib1g-dev libzstd-dev)")
need_file "$lib" "ninja -C $build"
need_cmd "$qemu_img" "apt-get install qemu-utils"
need_cmd qemu-io "apt-get install qemu-utils"
need_cmd fio "apt-get install fio"
check_missing

tmp=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-block.XXXXXX")}
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
# Linked now: a rebuild of BUILD_DIR during the run cannot change the code under test.
cc -O2 -Wall -o "$tmp/block-host" "$here/block-host.c" -I"$top/devices/block" "$lib" \
    $(pkg-config --cflags --libs glib-2.0 zlib libzstd) -lpthread ||
    { echo "block-host.sh: building block-host.c failed" >&2; exit 1; }
bh=$tmp/block-host
dirty=$(git -C "$top" status --porcelain -- devices/block 2>/dev/null | wc -l)
build_id="block layer: $lib, objects sha256 $(cat "$lib.p"/*.o 2>/dev/null | sha256sum | cut -c1-12), source HEAD $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)$( [ "$dirty" != 0 ] && echo " + $dirty uncommitted file(s) in devices/block")"

base=$tmp/base.raw full=$tmp/full.qcow2 new=$tmp/new.qcow2 ov=$tmp/ov.qcow2 ovdir=$tmp/ovdir
echo "block-host: writing a ${img_mib} MiB raw image of random bytes and its qcow2 copy in $tmp" >&2
head -c $((img_mib << 20)) /dev/urandom >"$base" &&
    "$qemu_img" convert -f raw -O qcow2 "$base" "$full" || exit 1
# Both files start in the page cache, put there the same way. How a file's pages got
# there decides what a 4 KiB write into them costs: `head` writes the raw file in small
# writes (4 KiB folios), qemu-img convert the qcow2 in big ones (64 KiB-1 MiB folios on
# kernels with large folios, as ext4 on 6.x), and a buffered 4 KiB write into a large
# folio walks the buffer heads of all its blocks (ext4_block_write_begin): 10.6 vs 1.6 µs
# per 4 KiB write with the same syscall, which made qcow2 overwrites look 6x slower than
# raw ones. So both are dropped from the cache and read back in 4 KiB reads without
# readahead: 4 KiB folios in both.
python3 - "$base" "$full" <<'EOF' || exit 1
import os, sys
for name in sys.argv[1:]:
    fd = os.open(name, os.O_RDONLY)
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
    off = 0
    while len(os.pread(fd, 4096, off)) == 4096:
        off += 4096
    os.close(fd)
EOF

seq_s=1048576 rand_s=4096 rand_step=$((4096 * 7919))
# Rows: TARGET:RW:KIND
rows="raw:read:seq raw:write:seq raw:read:rand raw:write:rand
qcow2:read:seq qcow2:write:seq qcow2:read:rand qcow2:write:rand
new:write:seq new:write:rand
overlay:read:seq overlay:write:seq overlay:read:rand overlay:write:rand"

prepare() { # TARGET SIDE: a fresh image where the row wants one; sync the files (not timed)
    case $1 in
        new) rm -f "$new"; "$qemu_img" create -q -f qcow2 "$new" "${img_mib}M" || exit 1 ;;
        overlay) rm -rf "$ovdir" "$ov"; mkdir -p "$ovdir"
                 [ "$2" = qemu ] && { "$qemu_img" create -q -f qcow2 -b "$base" -F raw "$ov" || exit 1; } ;;
    esac
    sync "$base" "$full" && { [ ! -e "$new" ] || sync "$new"; }
}

one() { # SIDE TARGET RW KIND -> appends MB/s (seq) or IOPS (rand) to $tmp/res.TARGET.RW.KIND.SIDE
    local side=$1 target=$2 rw=$3 kind=$4 s step n file fmt out secs
    if [ "$kind" = seq ]; then s=$seq_s step=$seq_s n=$seq_count; else s=$rand_s step=$rand_step n=$rand_count; fi
    case $target in
        raw) file=$base fmt=raw ;;
        qcow2) file=$full fmt=qcow2 ;;
        new) file=$new fmt=qcow2 ;;
        overlay) file=$base fmt=overlay ;;
    esac
    prepare "$target" "$side"
    case $side in
        sync|async)
            out=$("$bh" bench "$fmt" "$file" "$side" "$rw" "$s" "$step" "$n" "$ovdir") ||
                { echo "block-host.sh: Ferry $side $target $rw $kind failed" >&2; exit 1; }
            secs=$(sed -n 's/^seconds=//p' <<<"$out") ;;
        qemu)
            [ "$target" = overlay ] && file=$ov fmt=qcow2
            out=$("$qemu_img" bench -f "$fmt" -t writeback -d 1 -s "$s" -S "$step" -c "$n" \
                  $( [ "$rw" = write ] && echo "-w --pattern=165") "$file" 2>&1) ||
                { echo "block-host.sh: qemu-img bench $target $rw $kind failed: $out" >&2; exit 1; }
            secs=$(sed -n 's/^Run completed in \([0-9.]*\) seconds.*/\1/p' <<<"$out") ;;
        fs)
            local frw=$rw; [ "$kind" = rand ] && frw=rand$rw
            fio --name=fs --filename="$base" --rw="$frw" --bs="$s" --ioengine=psync --iodepth=1 \
                --direct=0 --invalidate=0 --size="${img_mib}M" --io_size=$((s * n)) \
                --buffer_pattern=0xa5 --output-format=json --output="$tmp/fio.json" >/dev/null 2>"$tmp/fio.err" ||
                { echo "block-host.sh: fio $frw failed: $(cat "$tmp/fio.err")" >&2; exit 1; }
            secs=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1]))["jobs"][0][sys.argv[2]]; print(j["io_bytes"] / j["bw_bytes"])' "$tmp/fio.json" "$rw") ;;
    esac
    [ -n "$secs" ] || { echo "block-host.sh: no time from $side $target $rw $kind: $out" >&2; exit 1; }
    python3 -c "s=$secs; print('%.4g' % ($s * $n / s / 1e6 if '$kind' == 'seq' else $n / s))" \
        >>"$tmp/res.$target.$rw.$kind.$side"
}

load0=$(cut -d' ' -f1-3 /proc/loadavg)
t_start=$(date -u '+%Y-%m-%d %H:%M UTC')
echo "block-host: $runs rounds; load average at start: $load0" >&2
for r in $(seq 1 "$runs"); do
    for row in $rows; do
        IFS=: read -r target rw kind <<<"$row"
        for side in sync async qemu; do one $side "$target" "$rw" "$kind"; done
        [ "$target" = raw ] && one fs raw "$rw" "$kind"
    done
    echo "  round $r/$runs done" >&2
done

# Overlay creation: Ferry's ferry_overlay_open in a new folder (creates, fsyncs); QEMU's
# counterpart is the qemu-img create process (no fsync; wall time with the exec).
echo "block-host: overlay creation x $create_runs" >&2
"$bh" overlay-create "$base" "$tmp/create" "$create_runs" >"$tmp/create.ferry" || exit 1
rm -rf "$tmp/create"
for i in $(seq 1 "$create_runs"); do
    rm -f "$ov"
    python3 -c 'import subprocess,sys,time; t=time.monotonic(); subprocess.run(sys.argv[1:], check=True); print("%.6f" % (time.monotonic()-t))' \
        "$qemu_img" create -q -f qcow2 -b "$base" -F raw "$ov" >>"$tmp/create.qemu" || exit 1
done

# Commit of COMMIT_MIB MiB, interleaved with the file system's own sequential write of the
# same bytes to the same file (dd, 1 MiB, fdatasync at the end) and qemu-img commit.
echo "block-host: commit of $commit_mib MiB x $runs" >&2
walltime() { python3 -c 'import subprocess,sys,time; t=time.monotonic(); r=subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE); sys.exit(r.stderr.decode()) if r.returncode else print("%.6f" % (time.monotonic()-t))' "$@"; }
for r in $(seq 1 "$runs"); do
    rm -rf "$ovdir"; mkdir -p "$ovdir"; sync "$base"
    out=$("$bh" commit "$base" "$ovdir" "$commit_mib") || exit 1
    python3 -c "print('%.4g' % ($commit_mib * 1.048576 / $(sed -n 's/^seconds=//p' <<<"$out")))" >>"$tmp/commit.ferry"
    sync "$base"
    t=$(walltime dd if=/dev/zero of="$base" bs=1M count="$commit_mib" conv=notrunc,fdatasync) || exit 1
    python3 -c "print('%.4g' % ($commit_mib * 1.048576 / $t))" >>"$tmp/commit.fs"
    rm -f "$ov"; "$qemu_img" create -q -f qcow2 -b "$base" -F raw "$ov" &&
        qemu-io -f qcow2 -c "write -P 0x5a 0 ${commit_mib}M" "$ov" >/dev/null || exit 1
    sync "$ov" "$base"
    t=$(walltime "$qemu_img" commit -q -f qcow2 -t writeback "$ov") || exit 1
    python3 -c "print('%.4g' % ($commit_mib * 1.048576 / $t))" >>"$tmp/commit.qemu"
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

med() { $br stats <"$1" | cut -d' ' -f1; }
mr() { $br stats <"$1" | awk '{ printf "%s (%s-%s)", $1, $2, $3 }'; }
pairs() { paste -d' ' "$1" "$2" | awk '{ print $1 / $2 }' | $br stats | cut -d' ' -f1; }
verdict() { python3 -c "r=$1; print('met' if r >= 1.0 else 'not met (within 5%)' if r >= 0.95 else '**NOT met**')"; }

echo
echo "## block-host: $t_start, $runs rounds, queue depth 1, host page cache (writeback) on every side${pinned}"
echo "load average: $load0 at start, $load1 at end ($(getconf _NPROCESSORS_ONLN) CPUs)"
echo "$build_id; $("$qemu_img" --version | head -1)"
echo "file system: $(findmnt -n -o FSTYPE,SOURCE,OPTIONS --target "$tmp" | cut -c1-60), image ${img_mib} MiB in $tmp"
echo "requests per run: seq $seq_count x 1 MiB, rand $rand_count x 4 KiB"
echo
echo "| figure | Ferry sync median (min-max) | Ferry async median (min-max) | qemu-img bench median (min-max) | file system (fio) | per-pair sync/QEMU | per-pair async/QEMU | target async >= 1.0x QEMU |"
echo "|---|---|---|---|---|---|---|---|"
for row in $rows; do
    IFS=: read -r target rw kind <<<"$row"
    p=$tmp/res.$target.$rw.$kind
    case $target in raw) tl=raw ;; qcow2) tl="qcow2 (allocated)" ;; new) tl="qcow2 (new, allocating)" ;; overlay) tl="overlay over raw" ;; esac
    [ "$kind" = seq ] && unit="MB/s, 1 MiB" || unit="IOPS, 4 KiB"
    fs=-; [ -f "$p.fs" ] && fs=$(mr "$p.fs")
    pa=$(pairs "$p.async" "$p.qemu")
    printf '| %s %s %s (%s) | %s | %s | %s | %s | %s | %s | %s |\n' "$tl" "$kind" "$rw" "$unit" \
        "$(mr "$p.sync")" "$(mr "$p.async")" "$(mr "$p.qemu")" "$fs" "$(pairs "$p.sync" "$p.qemu")" "$pa" "$(verdict "$pa")"
done
echo
echo "Mean latency at queue depth 1 (µs, 1e6 / median IOPS):"
echo
echo "| figure | Ferry sync | Ferry async | qemu-img bench | file system (fio) |"
echo "|---|---|---|---|---|"
for row in $rows; do
    IFS=: read -r target rw kind <<<"$row"
    [ "$kind" = rand ] || continue
    p=$tmp/res.$target.$rw.$kind
    lat() { [ -f "$1" ] && python3 -c "print('%.1f' % (1e6 / $(med "$1")))" || echo -; }
    printf '| %s 4 KiB %s | %s | %s | %s | %s |\n' "$target" "$rw" "$(lat "$p.sync")" "$(lat "$p.async")" "$(lat "$p.qemu")" "$(lat "$p.fs")"
done
echo
cf=$(med "$tmp/create.ferry"); cq=$(med "$tmp/create.qemu")
echo "| overlay and commit | Ferry median (min-max) | QEMU median (min-max) | file system | target | met |"
echo "|---|---|---|---|---|---|"
printf '| create an empty overlay over the %s MiB raw image (ms, %s runs) | %s | %s (qemu-img create process) | - | < 10 ms | %s |\n' \
    "$img_mib" "$create_runs" "$($br stats --scale 1000 <"$tmp/create.ferry" | awk '{ printf "%s (%s-%s)", $1, $2, $3 }')" \
    "$($br stats --scale 1000 <"$tmp/create.qemu" | awk '{ printf "%s (%s-%s)", $1, $2, $3 }')" \
    "$(python3 -c "print('yes' if $cf < 0.010 else '**NO**')")"
cr=$(pairs "$tmp/commit.ferry" "$tmp/commit.fs")
printf '| commit %s MiB into the raw base, with its fdatasync (MB/s) | %s | %s (qemu-img commit process) | %s (dd conv=fdatasync) | >= 0.8x file system | %s (per-pair %s; vs QEMU %s) |\n' \
    "$commit_mib" "$(mr "$tmp/commit.ferry")" "$(mr "$tmp/commit.qemu")" "$(mr "$tmp/commit.fs")" \
    "$(python3 -c "print('yes' if $cr >= 0.8 else '**NO**')")" "$cr" "$(pairs "$tmp/commit.ferry" "$tmp/commit.qemu")"

#!/bin/bash
# Disks seen from inside a riscv64 guest (issue 5's second benchmark): Ferry's virtio-blk
# (virtio-mmio) vs QEMU's virtio-blk-device on `qemu-system-riscv64 -M virt`, same kernel,
# initramfs, firmware and image file, both with the host page cache (QEMU
# cache=writeback; Ferry's raw driver always uses the page cache), and the host's own
# figure on the same file (fio, page cache). Target: Ferry >= 1.0x QEMU on every figure.
#
# usage: tests/bench/block-guest.sh [BUILD_DIR [GUEST_DIR]]
#   GUEST_DIR  holds Image and initramfs.cpio.gz
#              (default $XDG_CACHE_HOME/ferry-guests/latest/riscv64, or $FERRY_GUESTS/riscv64)
# env: RUNS (default 5) rounds, each Ferry, QEMU, fio; IMG_MIB (1024) image size;
#      SEQ_MIB (512) MiB per sequential phase; RAND_COUNT (16384) 4 KiB requests per
#      random phase; OPENSBI (/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin);
#      QEMU (qemu-system-riscv64); BENCH_DIR (a mktemp -d under ${TMPDIR:-/tmp}).
#      PIN=CPU runs everything on that one host CPU (taskset -c): no cross-CPU wake-ups
#      between threads (a diagnostic; the default lets the scheduler place them).
#
# The guest job is tests/bench/blk-bench-guest.c, built with riscv64-linux-gnu-gcc -static
# and added with a /selftests/blk-bench script as a second cpio archive appended to the
# cached initramfs. On /dev/vda with O_DIRECT (no guest page cache), queue depth 1:
# sequential read then write of SEQ_MIB MiB in 1 MiB requests, then RAND_COUNT 4 KiB reads
# and writes at offsets k * 7919 * 4 KiB modulo the disk size (as block-host.sh). Each
# phase is timed by the guest's CLOCK_MONOTONIC and, as a check, by the host between the
# phase's marker lines on the console. No flush is timed (an fsync follows each write
# phase). One hart, -m 256M:
#   Ferry: FERRY_OPENSBI=fw_dynamic.bin ferryctl run --arch riscv64 --kernel Image
#            --initrd bench.cpio.gz --append "console=ttyS0 guest_selftest=blk-bench ..."
#            -m 256M --hda disk.raw
#   QEMU:  qemu-system-riscv64 -M virt -bios fw_dynamic.bin -kernel Image -initrd bench.cpio.gz
#            -append "..." -m 256M -nographic -no-reboot -global virtio-mmio.force-legacy=false
#            -drive file=disk.raw,if=none,id=d0,format=raw,cache=writeback
#            -device virtio-blk-device,drive=d0
#   host:  fio --rw=read|write|randread|randwrite --bs=1M|4k --ioengine=psync --iodepth=1
#            --direct=0 --invalidate=0 on disk.raw, the same amounts
# disk.raw is IMG_MIB MiB of random bytes, synced (not timed) before every run.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
bench_pin "$@"
build=${1:-${FERRY_BUILD:-$top/build}}
runs=${RUNS:-5}
img_mib=${IMG_MIB:-1024}
seq_mib=${SEQ_MIB:-512}
rand_n=${RAND_COUNT:-16384}

need_riscv_guest "${2:-}"
need_cmd riscv64-linux-gnu-gcc "apt-get install gcc-riscv64-linux-gnu"
need_cmd fio "apt-get install fio"
check_missing

tmp=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-blkguest.XXXXXX")}
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
# Copies, so a rebuild of BUILD_DIR or of the guest cache during the run changes nothing.
cp "$ferryctl" "$tmp/ferryctl" && ferryctl=$tmp/ferryctl
cp "$guests/Image" "$tmp/Image" && cp "$fw" "$tmp/fw_dynamic.bin" || exit 1
build_id="ferryctl sha256 $(sha256sum "$ferryctl" | cut -c1-12), source HEAD $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)"

mkdir -p "$tmp/extra/selftests"
riscv64-linux-gnu-gcc -static -O2 -Wall -o "$tmp/extra/blk-bench" "$here/blk-bench-guest.c" ||
    { echo "block-guest.sh: building blk-bench-guest.c failed" >&2; exit 1; }
cat >"$tmp/extra/selftests/blk-bench" <<'EOF'
#!/bin/sh
# Benchmark job for tests/bench/block-guest.sh (markers on stderr: the console).
/blk-bench "/dev/${guest_blkdev:-vda}" "${guest_bench_seq_mib:-512}" "${guest_bench_rand:-16384}"
EOF
(cd "$tmp/extra" && printf 'selftests/blk-bench\nblk-bench\n' | cpio -o -H newc -R 0:0 --quiet | gzip -9) \
    >"$tmp/extra.cpio.gz" && cat "$guests/initramfs.cpio.gz" "$tmp/extra.cpio.gz" >"$tmp/bench.cpio.gz" ||
    { echo "block-guest.sh: building the benchmark initramfs failed" >&2; exit 1; }
append="console=ttyS0 guest_selftest=blk-bench guest_blkdev=vda guest_bench_seq_mib=$seq_mib guest_bench_rand=$rand_n"

disk=$tmp/disk.raw
echo "block-guest: writing a ${img_mib} MiB raw image of random bytes in $tmp" >&2
head -c $((img_mib << 20)) /dev/urandom >"$disk" && cat "$disk" >/dev/null || exit 1

phases="seqr seqw randr randw"
marks=()
for p in $phases; do
    P=$(tr a-z A-Z <<<"$p")
    marks+=(--mark "${p}_start=^BENCH-$P-START" --mark "${p}_end=^BENCH-$P-END")
done
marks+=(--mark selftest='^SELFTEST blk-bench')

one() { # SIDE N
    local side=$1 n=$2 out log cmd p s e detail
    log=$tmp/$side.$n.log
    sync "$disk"
    if [ "$side" = ferry ]; then
        cmd=(env FERRY_OPENSBI="$tmp/fw_dynamic.bin" "$ferryctl" run --arch riscv64 --kernel "$tmp/Image"
             --initrd "$tmp/bench.cpio.gz" --append "$append" -m 256M --hda "$disk")
    else
        cmd=("$qemu" -M virt -bios "$tmp/fw_dynamic.bin" -kernel "$tmp/Image" -initrd "$tmp/bench.cpio.gz"
             -append "$append" -m 256M -nographic -no-reboot -global virtio-mmio.force-legacy=false
             -drive "file=$disk,if=none,id=d0,format=raw,cache=writeback" -device virtio-blk-device,drive=d0)
    fi
    out=$($br run --timeout 900 --log "$log" --errlog "$log.err" "${marks[@]}" -- "${cmd[@]}")
    get() { sed -n "s/^$1=//p" <<<"$out"; }
    if [ "$(get rc)" != 0 ] || ! grep -q '^SELFTEST blk-bench ok' "$log" || [ -z "$(get mark_randw_end_s)" ]; then
        echo "block-guest.sh: $side run $n failed (status $(get rc)); its output:" >&2
        cat "$log" "$log.err" >&2
        exit 1
    fi
    detail=$(grep -a '^SELFTEST blk-bench ok' "$log" | tr -d '\r')
    for p in $phases; do
        sed -n "s/.* $p=\([0-9.]*\).*/\1/p" <<<"$detail" >>"$tmp/$side.$p"
        s=$(get mark_${p}_start_s); e=$(get mark_${p}_end_s)
        case $p in
            seq*) python3 -c "print('%.1f' % ($seq_mib * 1.048576 / ($e - $s)))" ;;
            *) python3 -c "print('%.0f' % ($rand_n / ($e - $s)))" ;;
        esac >>"$tmp/$side.$p.host"
    done
}

fio_one() { # PHASE
    local p=$1 rw bs io
    case $p in
        seqr) rw=read bs=1048576 io=$((seq_mib << 20)) ;;
        seqw) rw=write bs=1048576 io=$((seq_mib << 20)) ;;
        randr) rw=randread bs=4096 io=$((rand_n * 4096)) ;;
        randw) rw=randwrite bs=4096 io=$((rand_n * 4096)) ;;
    esac
    sync "$disk"
    fio --name=host --filename="$disk" --rw=$rw --bs=$bs --ioengine=psync --iodepth=1 --direct=0 \
        --invalidate=0 --size="${img_mib}M" --io_size=$io --buffer_pattern=0xa5 \
        --output-format=json --output="$tmp/fio.json" >/dev/null 2>"$tmp/fio.err" ||
        { echo "block-guest.sh: fio $rw failed: $(cat "$tmp/fio.err")" >&2; exit 1; }
    python3 -c 'import json,sys
j = json.load(open(sys.argv[1]))["jobs"][0][sys.argv[2]]
print("%.1f" % (j["bw_bytes"] / 1e6) if sys.argv[3] == "seq" else "%.0f" % j["iops"])' \
        "$tmp/fio.json" "${rw#rand}" "${p%[rw]}" >>"$tmp/host.$p"
}

load0=$(cut -d' ' -f1-3 /proc/loadavg)
t_start=$(date -u '+%Y-%m-%d %H:%M UTC')
echo "block-guest: $runs rounds; load average at start: $load0" >&2
for n in $(seq 1 "$runs"); do
    one ferry "$n"
    one qemu "$n"
    for p in $phases; do fio_one $p; done
    echo "  round $n/$runs done" >&2
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

med() { $br stats <"$1" | cut -d' ' -f1; }
mr() { $br stats <"$1" | awk '{ printf "%s (%s-%s)", $1, $2, $3 }'; }
pairs() { paste -d' ' "$1" "$2" | awk '{ print $1 / $2 }' | $br stats | cut -d' ' -f1; }

echo
echo "## block-guest: $t_start, $runs rounds (Ferry, QEMU, host fio), 1 hart, -m 256M, queue depth 1, O_DIRECT in the guest, host page cache below${pinned}"
echo "load average: $load0 at start, $load1 at end ($(getconf _NPROCESSORS_ONLN) CPUs)"
echo "$build_id; $("$qemu" --version | head -1)"
echo "image: ${img_mib} MiB raw on $(findmnt -n -o FSTYPE,SOURCE --target "$tmp" | tr -s ' '); per run: ${seq_mib} MiB sequential, $rand_n x 4 KiB random"
echo
echo "| figure (guest clock) | Ferry median (min-max) | QEMU median (min-max) | host, fio on the file | Ferry/QEMU (medians) | per-pair Ferry/QEMU | per-pair, host-timed markers | Ferry/host | target >= 1.0x QEMU |"
echo "|---|---|---|---|---|---|---|---|---|"
for p in $phases; do
    case $p in
        seqr) label="sequential read, 1 MiB (MB/s)" ;;
        seqw) label="sequential write, 1 MiB (MB/s)" ;;
        randr) label="random read, 4 KiB (IOPS)" ;;
        randw) label="random write, 4 KiB (IOPS)" ;;
    esac
    f=$(med "$tmp/ferry.$p"); q=$(med "$tmp/qemu.$p"); h=$(med "$tmp/host.$p"); pp=$(pairs "$tmp/ferry.$p" "$tmp/qemu.$p")
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$(mr "$tmp/ferry.$p")" "$(mr "$tmp/qemu.$p")" \
        "$(mr "$tmp/host.$p")" "$(python3 -c "print('%.2f' % ($f / $q))")" "$pp" \
        "$(pairs "$tmp/ferry.$p.host" "$tmp/qemu.$p.host")" "$(python3 -c "print('%.3f' % ($f / $h))")" \
        "$(python3 -c "r=$pp; print('met' if r >= 1.0 else 'not met (within 5%)' if r >= 0.95 else '**NOT met**')")"
done
echo
echo "Mean latency at queue depth 1 (µs, 1e6 / median IOPS): random read Ferry $(python3 -c "print('%.0f' % (1e6 / $(med "$tmp/ferry.randr")))"), QEMU $(python3 -c "print('%.0f' % (1e6 / $(med "$tmp/qemu.randr")))"), host $(python3 -c "print('%.1f' % (1e6 / $(med "$tmp/host.randr")))"); random write Ferry $(python3 -c "print('%.0f' % (1e6 / $(med "$tmp/ferry.randw")))"), QEMU $(python3 -c "print('%.0f' % (1e6 / $(med "$tmp/qemu.randw")))"), host $(python3 -c "print('%.1f' % (1e6 / $(med "$tmp/host.randw")))")."

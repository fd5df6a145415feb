#!/bin/bash
# RISC-V 64 software CPU vs QEMU TCG (issue 4's benchmarks): the same kernel, initramfs
# and OpenSBI firmware; time to the guest's GUEST-READY line, and CPU-bound jobs in the
# guest timed from the host between marker lines. Targets: boot within 3x QEMU's time,
# the CPU-bound job within 10x.
#
# usage: tests/bench/riscv-boot.sh [BUILD_DIR [GUEST_DIR]]
#   GUEST_DIR  holds Image and initramfs.cpio.gz
#              (default $XDG_CACHE_HOME/ferry-guests/latest/riscv64, or $FERRY_GUESTS/riscv64)
# env: RUNS (default 5) pairs, interleaved Ferry, QEMU, Ferry, QEMU, ...
#      OPENSBI (default /usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin)
#      BENCH_MIB (default 32) MiB hashed, BENCH_AWK (default 1000000) awk loop iterations
#      QEMU (default qemu-system-riscv64)
#
# The jobs: the cached initramfs with one more self-test, /selftests/bench-cpu, added as a
# second gzip'd cpio archive appended to it (the kernel unpacks concatenated archives):
#   BENCH-CPU-START  head -c 32M /dev/zero | sha256sum   BENCH-CPU-END   (busybox, compiled C)
#   BENCH-AWK-START  busybox awk integer loop, 1e6 turns BENCH-AWK-END   (an interpreter)
# The marker lines go to the console through stderr; the init then prints
# "SELFTEST bench-cpu ok sha256-32MiB=<hash> awk=<n>" and powers off.
#   Ferry: FERRY_OPENSBI=fw_dynamic.bin ferryctl run --arch riscv64 --kernel Image
#            --initrd bench.cpio.gz --append "console=ttyS0 guest_selftest=bench-cpu" -m 256M
#   QEMU:  qemu-system-riscv64 -M virt -bios fw_dynamic.bin -kernel Image -initrd bench.cpio.gz
#            -append "console=ttyS0 guest_selftest=bench-cpu" -m 256M -nographic -no-reboot
# One more Ferry run with --monitor reads the harts' instret at each marker ("info cpus"):
# guest instructions per job, hence MIPS (QEMU's MIPS = the same count / QEMU's time;
# QEMU's own instret is not an instruction count without -icount).
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
build=${1:-${FERRY_BUILD:-$top/build}}
runs=${RUNS:-5}
mib=${BENCH_MIB:-32}
awkn=${BENCH_AWK:-1000000}

need_riscv_guest "${2:-}"
need_cmd gzip "apt-get install gzip"
have_rvas=1
for t in riscv64-linux-gnu-as riscv64-linux-gnu-ld; do command -v $t >/dev/null || have_rvas=0; done
[ -f "$top/tests/riscv/bench-loop.S" ] || have_rvas=0
check_missing

tmp=$(mktemp -d /tmp/ferry-bench-riscv.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# A copy of ferryctl (it links only system libraries), so a rebuild of BUILD_DIR during
# the run cannot change the binary under test.
cp "$ferryctl" "$tmp/ferryctl" && ferryctl=$tmp/ferryctl
build_id="ferryctl sha256 $(sha256sum "$ferryctl" | cut -c1-12), source HEAD $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)"
# Copies, so a guest rebuild under the cache's "latest" link cannot change them mid-run.
cp "$guests/Image" "$tmp/Image"
cp "$fw" "$tmp/fw_dynamic.bin"
mkdir -p "$tmp/extra/selftests"
cat >"$tmp/extra/selftests/bench-cpu" <<'EOF'
#!/bin/sh
# Benchmark job for tests/bench/riscv-boot.sh: marker lines on the console (stderr).
n=${guest_bench_mib:-32}
echo "BENCH-CPU-START" >&2
h=$(head -c $((n * 1048576)) /dev/zero | sha256sum)
echo "BENCH-CPU-END" >&2
echo "BENCH-AWK-START" >&2
a=$(awk -v n="${guest_bench_awk:-1000000}" 'BEGIN { s = 0; for (i = 0; i < n; i++) s = (s * 31 + i) % 1000003; print s }')
echo "BENCH-AWK-END" >&2
l=-
if [ -x /bench-loop ]; then
    echo "BENCH-LOOP-START" >&2
    /bench-loop; l=$?
    echo "BENCH-LOOP-END" >&2
fi
echo "sha256-${n}MiB=${h%% *} awk=$a loop=$l"
EOF
chmod 755 "$tmp/extra/selftests/bench-cpu"
files=selftests/bench-cpu
jobs="cpu awk"
if [ $have_rvas = 1 ]; then
    riscv64-linux-gnu-as -o "$tmp/bench-loop.o" "$top/tests/riscv/bench-loop.S" &&
        riscv64-linux-gnu-ld -o "$tmp/extra/bench-loop" "$tmp/bench-loop.o" ||
        { echo "riscv-boot.sh: building bench-loop failed" >&2; exit 1; }
    files="$files
bench-loop"
    jobs="cpu awk loop"
else
    echo "riscv-boot.sh: no riscv64-linux-gnu-as/ld (apt-get install binutils-riscv64-linux-gnu): skipping the integer-loop job" >&2
fi
(cd "$tmp/extra" && echo "$files" | cpio -o -H newc -R 0:0 --quiet | gzip -9) >"$tmp/extra.cpio.gz" &&
    cat "$guests/initramfs.cpio.gz" "$tmp/extra.cpio.gz" >"$tmp/bench.cpio.gz" ||
    { echo "riscv-boot.sh: building the benchmark initramfs failed" >&2; exit 1; }
append="console=ttyS0 guest_selftest=bench-cpu guest_bench_mib=$mib guest_bench_awk=$awkn"

marks=(--mark ready='^GUEST-READY' --mark cpu_start='^BENCH-CPU-START' --mark cpu_end='^BENCH-CPU-END'
       --mark awk_start='^BENCH-AWK-START' --mark awk_end='^BENCH-AWK-END'
       --mark loop_start='^BENCH-LOOP-START' --mark loop_end='^BENCH-LOOP-END'
       --mark selftest='^SELFTEST bench-cpu')

one() { # SIDE N [monitor]
    local side=$1 n=$2 out log cmd extra=() k s e
    log=$tmp/$side.$n.log
    if [ "$side" = ferry ]; then
        cmd=(env FERRY_OPENSBI="$tmp/fw_dynamic.bin" "$ferryctl" run --arch riscv64 --kernel "$tmp/Image"
             --initrd "$tmp/bench.cpio.gz" --append "$append" -m 256M)
        if [ "${3:-}" = monitor ]; then
            cmd+=(--monitor "unix:$tmp/mon.sock")
            extra=(--monitor "$tmp/mon.sock" --instret-at ready --instret-at cpu_start --instret-at cpu_end
                   --instret-at awk_start --instret-at awk_end --instret-at loop_start --instret-at loop_end)
        fi
    else
        cmd=("$qemu" -M virt -bios "$tmp/fw_dynamic.bin" -kernel "$tmp/Image" -initrd "$tmp/bench.cpio.gz"
             -append "$append" -m 256M -nographic -no-reboot)
    fi
    out=$($br run --timeout 900 --log "$log" --errlog "$log.err" "${marks[@]}" "${extra[@]}" -- "${cmd[@]}")
    get() { sed -n "s/^$1=//p" <<<"$out"; }
    if [ "$(get rc)" != 0 ] || ! grep -q '^SELFTEST bench-cpu ok' "$log" || [ -z "$(get mark_awk_end_s)" ]; then
        echo "riscv-boot.sh: $side run $n failed (status $(get rc)); its output:" >&2
        cat "$log" "$log.err" >&2
        exit 1
    fi
    grep '^SELFTEST bench-cpu ok' "$log" | tr -d '\r' >>"$tmp/$side.detail"
    if [ "${3:-}" = monitor ]; then
        echo "$out" >"$tmp/mips.out"
        return 0
    fi
    get first_byte_s >>"$tmp/$side.first"
    get mark_ready_s >>"$tmp/$side.ready"
    for k in $jobs; do
        s=$(get mark_${k}_start_s); e=$(get mark_${k}_end_s)
        python3 -c "print($e - $s)" >>"$tmp/$side.$k"
    done
}

load0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "riscv-boot: $runs interleaved pairs; load average at start: $load0" >&2
for n in $(seq 1 "$runs"); do
    one ferry "$n"
    one qemu "$n"
    echo "  pair $n/$runs done" >&2
done
one ferry mips monitor
load1=$(cut -d' ' -f1-3 /proc/loadavg)
if [ "$(sort -u "$tmp/ferry.detail" "$tmp/qemu.detail" | wc -l)" != 1 ]; then
    echo "riscv-boot.sh: the guests' results differ:" >&2
    sort "$tmp/ferry.detail" "$tmp/qemu.detail" | uniq -c >&2
    exit 1
fi

med() { $br stats <"$1" | cut -d' ' -f1; }
range() { $br stats <"$1" | awk '{ printf "%s-%s", $2, $3 }'; }
pairs() { paste -d' ' "$tmp/ferry.$1" "$tmp/qemu.$1" | awk '{ print $1 / $2 }' | $br stats | cut -d' ' -f1; }

echo
echo "## riscv-boot: $(date -u '+%Y-%m-%d %H:%M UTC'), $runs pairs, 1 hart, -m 256M"
echo "load average: $load0 at start, $load1 at end ($(nproc) CPUs)"
echo "$build_id"
echo "guest result (identical on both): $(head -1 "$tmp/ferry.detail")"
echo
echo "| seconds | Ferry median (min-max) | QEMU TCG median (min-max) | Ferry/QEMU (medians) | median of per-pair Ferry/QEMU | target | met |"
echo "|---|---|---|---|---|---|---|"
for k in first ready $jobs; do
    f=$(med "$tmp/ferry.$k"); q=$(med "$tmp/qemu.$k")
    case $k in
        first) label="start to first serial byte (OpenSBI banner)"; target=- ;;
        ready) label="start to GUEST-READY"; target=3 ;;
        cpu) label="sha256sum of $mib MiB (busybox)"; target=10 ;;
        awk) label="busybox awk loop, $awkn turns"; target=10 ;;
        loop) label="integer loop, 10^9 instructions (tests/riscv/bench-loop.S)"; target=10 ;;
    esac
    printf '| %s | %s (%s) | %s (%s) | %s | %s | %s |\n' "$label" "$f" "$(range "$tmp/ferry.$k")" \
        "$q" "$(range "$tmp/qemu.$k")" "$(python3 -c "print('%.2f' % ($f / $q))")" "$(pairs "$k")" \
        "$( [ $target = - ] && echo "- | -" || python3 -c "print('<= %sx | %s' % ($target, 'yes' if $f / $q <= $target else 'NO'))")"
done

# MIPS from the instrumented Ferry run.
get() { sed -n "s/^$1=//p" "$tmp/mips.out"; }
echo
echo "| guest instructions (Ferry's instret, read at the host's sight of each marker: +-a few ms) | count | Ferry MIPS (instrumented run) | QEMU MIPS (same count / QEMU median; rough for the boot) |"
echo "|---|---|---|---|"
python3 - "$(get instret_ready)" "$(get mark_ready_s)" "$(med "$tmp/qemu.ready")" <<'EOF'
import sys
n, t, q = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
print("| reset to GUEST-READY | %d | %.0f | %.0f |" % (n, n / t / 1e6, n / q / 1e6))
EOF
for k in $jobs; do
    python3 - "$k" "$(get instret_${k}_start)" "$(get instret_${k}_end)" "$(get mark_${k}_start_s)" \
        "$(get mark_${k}_end_s)" "$(med "$tmp/qemu.$k")" <<'EOF'
import sys
k, i0, i1, t0, t1, q = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
n = i1 - i0
print("| %s job | %d | %.0f | %.0f |" % ({"cpu": "sha256sum", "awk": "awk loop", "loop": "integer loop"}[k], n, n / (t1 - t0) / 1e6, n / q / 1e6))
EOF
done

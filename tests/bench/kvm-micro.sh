#!/bin/bash
# KVM micro-guest benchmark, Ferry vs QEMU, the same image (issue 3, benchmark 1):
#   (a) time from process start to the first serial byte on stdout,
#   (b) port-I/O and MMIO exits (round trips guest -> host -> guest) per second.
#
# usage: tests/bench/kvm-micro.sh [BUILD_DIR [MICRO_DIR]]
#   BUILD_DIR  meson build dir (default: build next to this repo's top, or $FERRY_BUILD)
#   MICRO_DIR  where micro-io-bench.bin is (default BUILD_DIR/tests/guests/micro)
# env: RUNS (default 5) pairs, run interleaved Ferry, QEMU, Ferry, QEMU, ...
#      HELLO_RUNS (default 3 x RUNS) pairs for the startup-only figure (a run takes ~0.1 s)
#      QEMU_MACHINE (default q35; pc works too), QEMU (default qemu-system-x86_64)
#
# Ferry:  ferryctl run --bios micro-io-bench.bin -m 64M --serial stdio
# QEMU:   qemu-system-x86_64 -accel kvm -M q35 -bios micro-io-bench.bin -m 64M -nographic
#           -no-reboot -device isa-debug-exit,iobase=0xf4
# The guest powers off through Ferry's ACPI PM1a_CNT (0x604) and, 100 ms later, through
# QEMU's isa-debug-exit, whose status (0 << 1) | 1 = 1 is normalised to 0 here.
# (QEMU reads unassigned MMIO as 0, Ferry as all ones: irrelevant for timing.)
#
# A second, startup-only figure uses a 6-line guest built here from the micro-guest
# sources (needs as, ld, objcopy) that prints "HELLO" first thing after reaching long
# mode: micro-io-bench.bin makes 2,000 port exits before its first line.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
build=${1:-${FERRY_BUILD:-$top/build}}
micro=${2:-$build/tests/guests/micro}
runs=${RUNS:-5}
hello_runs=${HELLO_RUNS:-$((3 * runs))}
machine=${QEMU_MACHINE:-q35}
qemu=${QEMU:-qemu-system-x86_64}
ferryctl=$build/app/ferryctl
image=$micro/micro-io-bench.bin

need_cmd python3 "apt-get install python3"
need_exec "$ferryctl" "ninja -C $build"
need_file "$image" "ninja -C $build"
need_cmd "$qemu" "apt-get install qemu-system-x86"
[ -r /dev/kvm ] && [ -w /dev/kvm ] || missing+=("read/write access to /dev/kvm (kvm group)")
check_missing
have_as=1
for t in as ld objcopy; do command -v $t >/dev/null || have_as=0; done

tmp=$(mktemp -d /tmp/ferry-bench-micro.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# A copy of ferryctl (it links only system libraries), so a rebuild of BUILD_DIR during
# the run cannot change the binary under test.
cp "$ferryctl" "$tmp/ferryctl" && ferryctl=$tmp/ferryctl
build_id="ferryctl sha256 $(sha256sum "$ferryctl" | cut -c1-12), source HEAD $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)"

if [ $have_as = 1 ]; then
    src=$top/tests/guests/micro
    cat >"$tmp/hello.S" <<'EOF'
        .include "bios.inc"
        .section .text
        .code64
main:
        PRINTLN "HELLO"
        ret
EOF
    ldflags=
    ld --no-warn-rwx-segments --version >/dev/null 2>&1 && ldflags=--no-warn-rwx-segments
    as --64 -I "$src" -o "$tmp/hello.o" "$tmp/hello.S" &&
        ld $ldflags -m elf_x86_64 -T "$src/bios.ld" -o "$tmp/hello.elf" "$tmp/hello.o" &&
        objcopy -O binary "$tmp/hello.elf" "$tmp/hello.bin" || have_as=0
else
    echo "kvm-micro.sh: as/ld/objcopy not found (binutils): skipping the startup-only figure" >&2
fi

vm_cmd() { # SIDE IMAGE -> the array cmd
    if [ "$1" = ferry ]; then
        cmd=("$ferryctl" run --bios "$2" -m 64M --serial stdio)
    else
        # shellcheck disable=SC2054 # the comma is part of -device ...,iobase=0xf4
        cmd=("$qemu" -accel kvm -M "$machine" -bios "$2" -m 64M -nographic -no-reboot
             -device isa-debug-exit,iobase=0xf4)
    fi
}

# one SIDE TAG IMAGE: run once, append figures to $tmp/SIDE.TAG.<figure>
one() {
    local side=$1 tag=$2 img=$3 n=$4 out log rc cmd
    log=$tmp/$side.$tag.$n.log
    vm_cmd "$side" "$img"
    out=$($br run --timeout 180 --log "$log" --errlog "$log.err" \
        --mark pio_start='^BENCH-PIO-START' --mark pio_end='^BENCH-PIO-END' \
        --mark mmio_start='^BENCH-MMIO-START' --mark mmio_end='^BENCH-MMIO-END' \
        --mark done='^MICRO-DONE' -- "${cmd[@]}")
    get() { sed -n "s/^$1=//p" <<<"$out"; }
    rc=$(get rc)
    [ "$side" = qemu ] && [ "$rc" = 1 ] && rc=0   # isa-debug-exit: (0 << 1) | 1
    if [ "$rc" != 0 ] || [ -z "$(get mark_done_s)" ]; then
        echo "kvm-micro.sh: $side $tag run $n failed (status $rc); its output:" >&2
        cat "$log" "$log.err" >&2
        exit 1
    fi
    get first_byte_s >>"$tmp/$side.$tag.first"
    [ "$tag" = io ] || return 0
    local kind lk iters ns s e
    for kind in pio mmio; do
        lk=$(tr "[:lower:]" "[:upper:]" <<<"$kind")
        read -r iters ns < <(sed -n "s/^BENCH-$lk-RESULT iters=\([0-9]*\) exits=[0-9]* ns=\([0-9]*\).*/\1 \2/p" "$log")
        s=$(get mark_${kind}_start_s); e=$(get mark_${kind}_end_s)
        [ -n "$iters" ] && [ -n "$ns" ] && [ -n "$s" ] && [ -n "$e" ] || {
            echo "kvm-micro.sh: $side run $n: no BENCH-$lk lines" >&2; cat "$log" >&2; exit 1; }
        python3 -c "print(2 * $iters / ($ns / 1e9))" >>"$tmp/$side.$kind.guest"
        python3 -c "print(2 * $iters / ($e - $s))" >>"$tmp/$side.$kind.host"
    done
}

load0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "kvm-micro: $runs interleaved pairs, QEMU -M $machine; load average at start: $load0" >&2
for n in $(seq 1 "$runs"); do
    one ferry io "$image" "$n"
    one qemu io "$image" "$n"
    echo "  pair $n/$runs done" >&2
done
if [ $have_as = 1 ]; then
    for n in $(seq 1 "$hello_runs"); do
        one ferry hello "$tmp/hello.bin" "$n"
        one qemu hello "$tmp/hello.bin" "$n"
    done
fi
load1=$(cut -d' ' -f1-3 /proc/loadavg)

med() { $br stats "${@:2}" <"$1" | cut -d' ' -f1; }
range() { $br stats "${@:2}" <"$1" | awk '{ printf "%s-%s", $2, $3 }'; }
ratio() { python3 -c "print('%.2f' % ($1 / $2))"; }
pairs() { paste -d' ' "$tmp/ferry.$1" "$tmp/qemu.$1" | awk '{ print $1 / $2 }' | $br stats | cut -d' ' -f1; }

row() { # label file-suffix unit-scale better(lower|higher)
    local f q
    f=$(med "$tmp/ferry.$2" --scale "$3"); q=$(med "$tmp/qemu.$2" --scale "$3")
    printf '| %s | %s (%s) | %s (%s) | %s | %s | %s |\n' "$1" \
        "$f" "$(range "$tmp/ferry.$2" --scale "$3")" "$q" "$(range "$tmp/qemu.$2" --scale "$3")" \
        "$(ratio "$f" "$q")" "$(pairs "$2")" \
        "$(python3 -c "f, q, r = $f, $q, $(pairs "$2"); ferry = f < q if '$4' == 'lower' else f > q
print('tie (within 5%)' if 0.95 <= r <= 1.05 else 'Ferry better' if ferry else 'QEMU better')")"
}

echo
echo "## kvm-micro: $(date -u '+%Y-%m-%d %H:%M UTC'), $runs pairs ($hello_runs for hello), QEMU -M $machine"
echo "load average: $load0 at start, $load1 at end ($(nproc) CPUs)"
echo "$build_id"
echo
echo "| figure | Ferry median (min-max) | QEMU median (min-max) | Ferry/QEMU (medians) | median of per-pair Ferry/QEMU | verdict |"
echo "|---|---|---|---|---|---|"
row "first serial byte, micro-io-bench.bin (ms)" io.first 1000 lower
[ $have_as = 1 ] && row "first serial byte, hello guest (ms)" hello.first 1000 lower
row "port I/O exits/s, guest TSC (thousands)" pio.guest 0.001 higher
row "port I/O exits/s, host-timed markers (thousands)" pio.host 0.001 higher
row "MMIO exits/s, guest TSC (thousands)" mmio.guest 0.001 higher
row "MMIO exits/s, host-timed markers (thousands)" mmio.host 0.001 higher

#!/bin/bash
# Host memory of the VM process beyond guest RAM, Ferry vs QEMU -M microvm (issue 3,
# benchmark 2). Target: below QEMU, and below 5 MiB (Firecracker's published figure).
#
# usage: tests/bench/rss.sh [BUILD_DIR]
# env: RUNS (default 5) pairs, interleaved; SETTLE seconds between the guest's ready
#      line and the sample (default 1); QEMU (default qemu-system-x86_64)
#
# The guest, built here from the micro-guest sources (needs as, ld, objcopy), goes to long
# mode like every micro-guest, prints IDLE-READY and halts with interrupts off: both VMs
# then sit at the same steady point. Each gets -m 64M; neither pre-touches guest RAM.
#   Ferry:  ferryctl run --bios idle.bin -m 64M --serial stdio
#   QEMU:   qemu-system-x86_64 -accel kvm -M microvm -bios idle.bin -m 64M -nographic -no-reboot
# Sampled from /proc/PID/status (VmRSS, RssAnon, RssFile), smaps_rollup (Pss) and
# smaps: the Rss of the 64 MiB guest-RAM mapping is what the guest (and KVM on its
# behalf) touched; "beyond guest RAM" = VmRSS minus that. QEMU backs guest RAM with
# transparent huge pages, so its guest-RAM Rss is 2 MiB for the same touched pages.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${1:-${FERRY_BUILD:-$top/build}}
runs=${RUNS:-5}
settle=${SETTLE:-1}
qemu=${QEMU:-qemu-system-x86_64}
ferryctl=$build/app/ferryctl
src=$top/tests/guests/micro
br="python3 $here/benchrun.py"

missing=()
command -v python3 >/dev/null || missing+=("python3 (apt-get install python3)")
[ -x "$ferryctl" ] || missing+=("$ferryctl (ninja -C $build)")
command -v "$qemu" >/dev/null || missing+=("$qemu (apt-get install qemu-system-x86)")
for t in as ld objcopy; do command -v $t >/dev/null || missing+=("$t (apt-get install binutils)"); done
[ -f "$src/bios.inc" ] || missing+=("$src/bios.inc")
[ -r /dev/kvm ] && [ -w /dev/kvm ] || missing+=("read/write access to /dev/kvm (kvm group)")
if [ ${#missing[@]} -gt 0 ]; then
    printf 'rss.sh: missing: %s\n' "${missing[@]}" >&2
    exit 2
fi

tmp=$(mktemp -d /tmp/ferry-bench-rss.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# A copy of ferryctl (it links only system libraries), so a rebuild of BUILD_DIR during
# the run cannot change the binary under test.
cp "$ferryctl" "$tmp/ferryctl" && ferryctl=$tmp/ferryctl
build_id="ferryctl sha256 $(sha256sum "$ferryctl" | cut -c1-12), source HEAD $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)"

cat >"$tmp/idle.S" <<'EOF'
        .include "bios.inc"
        .section .text
        .code64
main:
        PRINTLN "IDLE-READY"
        call    serial_drain
        cli
1:      hlt
        jmp     1b
EOF
ldflags=
ld --no-warn-rwx-segments --version >/dev/null 2>&1 && ldflags=--no-warn-rwx-segments
as --64 -I "$src" -o "$tmp/idle.o" "$tmp/idle.S" &&
    ld $ldflags -m elf_x86_64 -T "$src/bios.ld" -o "$tmp/idle.elf" "$tmp/idle.o" &&
    objcopy -O binary "$tmp/idle.elf" "$tmp/idle.bin" || { echo "rss.sh: building the idle guest failed" >&2; exit 1; }

one() { # SIDE N
    local side=$1 n=$2 out log cmd k
    log=$tmp/$side.$n.log
    if [ "$side" = ferry ]; then
        cmd=("$ferryctl" run --bios "$tmp/idle.bin" -m 64M --serial stdio)
    else
        cmd=("$qemu" -accel kvm -M microvm -bios "$tmp/idle.bin" -m 64M -nographic -no-reboot)
    fi
    out=$($br run --timeout 60 --log "$log" --errlog "$log.err" --mark ready='^IDLE-READY' \
        --rss-at ready --rss-delay "$settle" --ram-mb 64 --stop-at ready -- "${cmd[@]}")
    if ! grep -q '^rss_kb=[0-9]' <<<"$out"; then
        echo "rss.sh: $side run $n never reached IDLE-READY; its output:" >&2
        cat "$log" "$log.err" >&2
        exit 1
    fi
    for k in rss_kb rss_anon_kb rss_file_kb pss_kb guest_ram_rss_kb threads; do
        sed -n "s/^$k=//p" <<<"$out" >>"$tmp/$side.$k"
    done
    python3 -c "print($(sed -n 's/^rss_kb=//p' <<<"$out") - $(sed -n 's/^guest_ram_rss_kb=//p' <<<"$out"))" \
        >>"$tmp/$side.beyond_kb"
}

load0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "rss: $runs interleaved pairs; load average at start: $load0" >&2
for n in $(seq 1 "$runs"); do
    one ferry "$n"
    one qemu "$n"
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

med() { $br stats <"$1" | cut -d' ' -f1; }
range() { $br stats <"$1" | awk '{ printf "%s-%s", $2, $3 }'; }

echo
echo "## rss: $(date -u '+%Y-%m-%d %H:%M UTC'), $runs pairs, -m 64M, sampled ${settle}s after IDLE-READY"
echo "load average: $load0 at start, $load1 at end ($(nproc) CPUs)"
echo "$build_id"
echo
echo "| KiB | Ferry median (min-max) | QEMU microvm median (min-max) | Ferry/QEMU |"
echo "|---|---|---|---|"
for k in beyond_kb rss_kb guest_ram_rss_kb rss_anon_kb rss_file_kb pss_kb threads; do
    f=$(med "$tmp/ferry.$k"); q=$(med "$tmp/qemu.$k")
    label=$k
    case $k in
        beyond_kb) label="**VmRSS beyond guest RAM**" ;;
        rss_kb) label="VmRSS (raw)" ;;
        guest_ram_rss_kb) label="Rss of the 64 MiB guest-RAM mapping" ;;
        rss_anon_kb) label="RssAnon" ;;
        rss_file_kb) label="RssFile (shared libraries, binary)" ;;
        pss_kb) label="Pss" ;;
        threads) label="threads (count)" ;;
    esac
    printf '| %s | %s (%s) | %s (%s) | %s |\n' "$label" "$f" "$(range "$tmp/ferry.$k")" \
        "$q" "$(range "$tmp/qemu.$k")" "$(python3 -c "print('%.2f' % ($f / $q) if $q else 'NA')")"
done
f=$(med "$tmp/ferry.beyond_kb"); q=$(med "$tmp/qemu.beyond_kb")
echo
python3 -c "
f, q = $f, $q
print('target (beyond guest RAM below QEMU and below 5 MiB = 5120 KiB): '
      + ('met' if f < q and f < 5120 else 'NOT met') + ' (Ferry %d KiB, QEMU %d KiB)' % (f, q))"

#!/bin/bash
# Boot the built guests under Debian's QEMU (TCG) and check the init contract:
# GUEST-READY, SELFTEST lines, clean power-off, the power button. A reference
# for what Ferry must show with the same guests, and timings to compare with.
#
#   tests/guests/qemu-check.sh [GUEST_DIR]   (default: what build.sh prints)
#
# Needs `tests/guests/deps.sh --validate` (qemu-system-misc, qemu-system-x86,
# opensbi, socat). Exits non-zero if any check failed.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
G=${1:-$("$HERE/build.sh")} || exit 1
SBI=$G/riscv64/fw_dynamic.bin
T=$(mktemp -d /tmp/ferry-qemu-check.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0

ok()  { echo "ok    $*"; pass=$((pass + 1)); }
bad() { echo "FAIL  $*"; fail=$((fail + 1)); }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# boot NAME TIMEOUT QEMU-ARGS...: run QEMU with the serial port in $T/NAME.log and
# a monitor on $T/NAME.mon, in the background; sets QPID, T0.
boot() {
    local name=$1 tmo=$2; shift 2
    rm -f "$T/$name.log" "$T/$name.mon" "$T/$name.rc"
    T0=$(now)
    ( timeout "$tmo" "$@" -display none -serial "file:$T/$name.log" \
          -monitor "unix:$T/$name.mon,server,nowait" >"$T/$name.qemu" 2>&1
      echo $? >"$T/$name.rc" ) &
    QPID=$!
}
# wait_for NAME PATTERN TIMEOUT: wait until the serial log has PATTERN; prints seconds.
wait_for() {
    local i
    for ((i = 0; i < $3 * 20; i++)); do
        grep -q "$2" "$T/$1.log" 2>/dev/null && { since "$T0"; return 0; }
        [ -e "$T/$1.rc" ] && break
        sleep 0.05
    done
    return 1
}
monitor() { echo "$2" | socat - "UNIX-CONNECT:$T/$1.mon" >/dev/null 2>&1; }

# check_run NAME EXPECT... : after QEMU exited, check its log.
check_run() {
    local name=$1 rc e; shift
    wait "$QPID"
    rc=$(cat "$T/$name.rc" 2>/dev/null)
    tr -d '\r' <"$T/$name.log" >"$T/$name.tmp" && mv "$T/$name.tmp" "$T/$name.log"
    for e in "$@"; do
        if grep -qx -- "$e" "$T/$name.log"; then ok "$name: $e"; else bad "$name: no line '$e'"; fi
    done
    if [ "$rc" = 0 ] && grep -q '^GUEST-POWEROFF' "$T/$name.log"; then
        ok "$name: powered off, QEMU exited 0 after $(since "$T0") s"
    else
        bad "$name: QEMU exit $rc (124 = timeout), log $T/$name.log kept"; trap - EXIT
    fi
}

RV=(qemu-system-riscv64 -M virt -bios "$SBI" -kernel "$G/riscv64/Image"
    -initrd "$G/riscv64/initramfs.cpio.gz")
X86=(qemu-system-x86_64 -accel tcg -no-reboot -kernel "$G/x86_64/vmlinuz"
     -initrd "$G/x86_64/initramfs.cpio.gz")

truncate -s 64M "$T/d0.img" "$T/d1.img"
head -c 1048576 "$G/x86_64/vmlinuz" | dd of="$T/d0.img" conv=notrunc status=none
D0SUM=$(head -c 1048576 "$T/d0.img" | sha256sum | cut -d' ' -f1)

# 1. riscv64, 1 hart
boot rv-smp1 120 "${RV[@]}" -smp 1 -m 256 \
    -append "console=ttyS0 guest_selftest=hello,smp,mem,nope guest_expect_cpus=1"
s=$(wait_for rv-smp1 '^GUEST-READY' 60) && ok "rv-smp1: GUEST-READY after $s s" || bad "rv-smp1: no GUEST-READY"
check_run rv-smp1 "SELFTEST hello ok hello from riscv64" "SELFTEST smp ok 1" "SELFTEST nope fail unknown-test"
grep -q '^GUEST-READY arch=riscv64 nproc=1 mem_kb=[0-9]* block=none$' "$T/rv-smp1.log" \
    && ok "rv-smp1: GUEST-READY fields" || bad "rv-smp1: GUEST-READY fields"

# 2. riscv64, 4 harts, two virtio-blk disks
boot rv-smp4 180 "${RV[@]}" -smp 4 -m 512 \
    -drive "file=$T/d0.img,if=none,id=d0,format=raw" -device virtio-blk-device,drive=d0 \
    -drive "file=$T/d1.img,if=none,id=d1,format=raw" -device virtio-blk-device,drive=d1 \
    -append "console=ttyS0 guest_selftest=smp,mem,blk-read,blk-rw guest_expect_cpus=4 guest_blkdev=vda,vdb"
s=$(wait_for rv-smp4 '^GUEST-READY' 60) && ok "rv-smp4: GUEST-READY after $s s" || bad "rv-smp4: no GUEST-READY"
check_run rv-smp4 "SELFTEST smp ok 4" "SELFTEST blk-read ok $D0SUM /dev/vda"
grep -q '^GUEST-READY arch=riscv64 nproc=4 .* block=vda,vdb$' "$T/rv-smp4.log" && ok "rv-smp4: block=vda,vdb" || bad "rv-smp4: block list"
grep -q '^SELFTEST blk-rw ok /dev/vdb sectors=131072 ' "$T/rv-smp4.log" && ok "rv-smp4: blk-rw ok" || bad "rv-smp4: blk-rw"
grep -q '^SELFTEST mem ok [0-9]*$' "$T/rv-smp4.log" && ok "rv-smp4: mem ok" || bad "rv-smp4: mem"
head -c 64 "$T/d1.img" | grep -q '^ferry-blk-rw ' && ok "rv-smp4: blk-rw pattern on the host image" || bad "rv-smp4: blk-rw pattern not on disk"

# 3. riscv64 power button: KEY_POWER from a virtio keyboard (QEMU's virt machine
#    has no power button; virtio-input needs the non-legacy virtio-mmio).
boot rv-pwr 120 "${RV[@]}" -smp 2 -m 256 -global virtio-mmio.force-legacy=false \
    -device virtio-keyboard-device -append "console=ttyS0 guest_mode=shell"
s=$(wait_for rv-pwr '^GUEST-SHELL' 60) && ok "rv-pwr: GUEST-SHELL after $s s" || bad "rv-pwr: no GUEST-SHELL"
sleep 1; monitor rv-pwr "sendkey power"
check_run rv-pwr "GUEST-POWERBUTTON"

# 4. x86_64 (TCG), 2 CPUs, two virtio-blk-pci disks
boot x86 300 "${X86[@]}" -smp 2 -m 512 \
    -drive "file=$T/d0.img,if=none,id=d0,format=raw" -device virtio-blk-pci,drive=d0 \
    -drive "file=$T/d1.img,if=none,id=d1,format=raw" -device virtio-blk-pci,drive=d1 \
    -append "console=ttyS0 guest_selftest=hello,smp,mem,blk-read,blk-rw guest_expect_cpus=2"
s=$(wait_for x86 '^GUEST-READY' 240) && ok "x86: GUEST-READY after $s s" || bad "x86: no GUEST-READY"
check_run x86 "SELFTEST hello ok hello from x86_64" "SELFTEST smp ok 2" "SELFTEST blk-read ok $D0SUM /dev/vda"
grep -q '^GUEST-READY arch=x86_64 nproc=2 .* block=vda,vdb$' "$T/x86.log" && ok "x86: block=vda,vdb" || bad "x86: block list"
grep -q '^SELFTEST blk-rw ok /dev/vdb ' "$T/x86.log" && ok "x86: blk-rw ok" || bad "x86: blk-rw"

# 5. x86_64 ACPI power button (system_powerdown) in shell mode
boot x86-pwr 300 "${X86[@]}" -smp 1 -m 512 -append "console=ttyS0 guest_mode=shell"
s=$(wait_for x86-pwr '^GUEST-SHELL' 240) && ok "x86-pwr: GUEST-SHELL after $s s" || bad "x86-pwr: no GUEST-SHELL"
sleep 1; monitor x86-pwr system_powerdown
check_run x86-pwr "GUEST-POWERBUTTON"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]

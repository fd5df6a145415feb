#!/bin/bash
# Run every micro-guest under Debian's QEMU (KVM) and check its report.
# usage: qemu-validate.sh [DIR-WITH-BUILT-GUESTS]   (default: build into a temp dir)
# Needs qemu-system-x86 and /dev/kvm.  Under QEMU the bios guests stop through
# isa-debug-exit (exit status 1); the kernels power off through ACPI (status 0).
set -u
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -ge 1 ]; then
    g=$1
else
    g=$(mktemp -d)
    "$here/build.sh" "$g" >/dev/null || exit 1
fi
log=$(mktemp -d)
pass=0
fail=0
Q="qemu-system-x86_64 -accel kvm -nodefaults -display none -serial stdio"
Q="$Q -device isa-debug-exit,iobase=0xf4 -no-user-config"

ok()  { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }

# check NAME OUTFILE PATTERN... : every (extended regex, whole line) pattern must match a line
check() {
    local name=$1 out=$2 p
    shift 2
    for p in "$@"; do
        if grep -Eqx -- "$p" "$out"; then ok "$name: $p"; else bad "$name: $p (see $out)"; fi
    done
}

# run NAME SECONDS QEMU-ARGS... : output in $log/NAME.out, wall time in $log/NAME.time
run() {
    local name=$1 secs=$2 t0 t1
    shift 2
    t0=$(date +%s.%N)
    timeout "$secs" $Q "$@" </dev/null >"$log/$name.out" 2>"$log/$name.err"
    echo $? >"$log/$name.rc"
    t1=$(date +%s.%N)
    printf '%.2f' "$(echo "$t1 - $t0" | bc)" >"$log/$name.time"
    tr -d '\r' <"$log/$name.out" >"$log/$name.tmp" && mv "$log/$name.tmp" "$log/$name.out"
}

rc_is() { # NAME EXPECTED
    local rc
    rc=$(cat "$log/$1.rc")
    if [ "$rc" = "$2" ]; then ok "$1: exit $rc"; else bad "$1: exit $rc, expected $2"; fi
}

for spec in "1 256" "4 8G" "64 1G" "255 512"; do
    set -- $spec
    run smp-$1 60 -M q35 -bios "$g/micro-smp.bin" -smp "$1" -m "$2"
    mem=$(echo "$2" | sed 's/G$/*1024/' | bc)
    hi=$(( $1 - 1 )); ids=$([ "$1" = 1 ] && echo 0 || echo "0-$hi")
    check smp-$1 "$log/smp-$1.out" "MEM_MB=$mem" "CPUS=$1" "APIC_IDS=$ids" \
        "APIC_ID_DUPLICATES=0" "APIC_ID_CPUID_MISMATCH=0" "APIC_MODE=xapic" MICRO-DONE
    rc_is smp-$1 1
    echo "     smp-$1: $(grep SMP_WAIT_MS "$log/smp-$1.out"), QEMU wall $(cat "$log/smp-$1.time") s"
done
run smp-x2-255 60 -M q35 -bios "$g/micro-smp-x2apic.bin" -smp 255 -m 512
check smp-x2-255 "$log/smp-x2-255.out" "CPUS=255" "APIC_IDS=0-254" "APIC_MODE=x2apic" MICRO-DONE
run smp-x2-288 60 -M q35,kernel-irqchip=split -device intel-iommu,intremap=on,eim=on \
    -bios "$g/micro-smp-x2apic.bin" -smp 288 -m 512
check smp-x2-288 "$log/smp-x2-288.out" "CPUS=288" "APIC_IDS=0-287" "APIC_MODE=x2apic" \
    "APIC_ID_DUPLICATES=0" "APIC_ID_CPUID_MISMATCH=0" MICRO-DONE
echo "     smp-x2-288: $(grep SMP_WAIT_MS "$log/smp-x2-288.out"), QEMU wall $(cat "$log/smp-x2-288.time") s"
run smp-pc-8 60 -M pc -bios "$g/micro-smp.bin" -smp 8 -m 5G
check smp-pc-8 "$log/smp-pc-8.out" "MEM_MB=5120" "CPUS=8" "APIC_IDS=0-7" MICRO-DONE

run io 60 -M q35 -bios "$g/micro-io.bin" -m 128
# QEMU reads unassigned MMIO as 0; Ferry must give all ones.
check io "$log/io.out" "PORT_READ=0xff" "PORT_READ16=0xffff" "PORT_READ32=0xffffffff" \
    "MMIO_READ=0x(00000000|ffffffff)" "IO_MISMATCH=0" "IO_ROUNDS=1000" MICRO-DONE
run io-bench 120 -M q35 -bios "$g/micro-io-bench.bin" -m 128
check io-bench "$log/io-bench.out" BENCH-PIO-START BENCH-PIO-END BENCH-MMIO-START BENCH-MMIO-END \
    "BENCH-PIO-RESULT iters=[0-9]+ exits=[0-9]+ ns=[0-9]+ ns_per_exit=[0-9]+" MICRO-DONE
grep RESULT "$log/io-bench.out" | sed 's/^/     /'

# irq: send one byte once the guest asks for it
coproc QIRQ { timeout 60 $Q -M q35 -bios "$g/micro-irq.bin" -m 128 2>/dev/null; }
irq_pid=$QIRQ_PID
: >"$log/irq.out"
while IFS= read -r line <&"${QIRQ[0]}"; do
    line=${line%$'\r'}
    echo "$line" >>"$log/irq.out"
    [ "$line" = UART_RX_WAIT ] && printf 'Z' >&"${QIRQ[1]}"
done
wait "$irq_pid" 2>/dev/null
check irq "$log/irq.out" "TIMER_IRQ=ok ticks=[0-9]+" HLT_WAKE=ok "UART_RX_IRQ=ok byte=0x5a" \
    "IOAPIC_TIMER_IRQ=ok ticks=[0-9]+ pin=[02+]+" "IOAPIC_UART_IRQ=ok iir=0x.." MICRO-DONE

for m in q35 pc; do
    run reset-$m 60 -M $m -bios "$g/micro-reset.bin" -m 128
    check reset-$m "$log/reset-$m.out" BOOT=1 BOOT=2 BOOT=3 BOOT=4 RAM_PRESERVED=yes RESET-OK MICRO-DONE
    if grep -q RESET-FAILED "$log/reset-$m.out"; then bad "reset-$m: RESET-FAILED"; fi
done

if python3 "$here/check_bzimage.py" "$g/micro-bzImage" >"$log/hdr.out"; then ok "bzImage header"; else bad "bzImage header (see $log/hdr.out)"; fi
head -c 100000 /dev/urandom >"$log/initrd"
sum=$(python3 -c "import sys; print('0x%08x' % (sum(open(sys.argv[1],'rb').read()) & 0xffffffff))" "$log/initrd")

run bz-real 60 -M q35 -kernel "$g/micro-bzImage" -append "x" -m 256
check bz-real "$log/bz-real.out" REALMODE-ENTRY
rc_is bz-real 0

run bz-chain 60 -M q35 -kernel "$g/micro-bzImage-chain" -initrd "$log/initrd" \
    -append "console=ttyS0 ferry=micro" -m 256 -smp 3
check bz-chain "$log/bz-chain.out" REALMODE-ENTRY ENTRY32 ENTRY=bzimage64 BOOT_PARAMS_HDR=ok \
    "CMDLINE=console=ttyS0 ferry=micro" "E820 0x0 0x9fc00 1" "E820 0x100000 0x[0-9a-f]+ 1" \
    "INITRD_SIZE=100000 INITRD_SUM=$sum" "ACPI_CPUS=3" "ACPI_PM1A_CNT=0x604" MICRO-DONE
rc_is bz-chain 0

run bz-chain-noinitrd 60 -M pc -kernel "$g/micro-bzImage-chain" -m 256
check bz-chain-noinitrd "$log/bz-chain-noinitrd.out" "CMDLINE=" "INITRD_SIZE=0 INITRD_SUM=none" "ACPI_CPUS=1" MICRO-DONE
rc_is bz-chain-noinitrd 0

run pvh 60 -M q35 -kernel "$g/micro-pvh.elf" -initrd "$log/initrd" -append "pvh ferry" -m 256 -smp 2
check pvh "$log/pvh.out" ENTRY=pvh PVH_START_INFO=ok "CMDLINE=pvh ferry" "E820 0x0 0x9fc00 1" \
    "INITRD_SIZE=100000 INITRD_SUM=$sum" "ACPI_CPUS=2" "ACPI_ROOT=(RSDT|XSDT)" MICRO-DONE
rc_is pvh 0

run pvh-microvm 60 -M microvm -kernel "$g/micro-pvh.elf" -append "mvm" -m 256 -smp 4
check pvh-microvm "$log/pvh-microvm.out" ENTRY=pvh "CMDLINE=mvm" "ACPI_ROOT=XSDT" "ACPI_CPUS=4" MICRO-DONE

echo "logs: $log"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]

#!/bin/sh
# Build the Ferry micro-guests by hand: tests/guests/micro/build.sh OUTDIR
# (meson.build in this folder does the same at build time).
set -eu
out=${1:?usage: build.sh OUTDIR}
src=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
AS=${AS:-as}
LD=${LD:-ld}
OBJCOPY=${OBJCOPY:-objcopy}
LDFLAGS=
if "$LD" --no-warn-rwx-segments --version >/dev/null 2>&1; then LDFLAGS=--no-warn-rwx-segments; fi

bios() { # name source [as args...]
    name=$1; s=$2; shift 2
    "$AS" --64 -I "$src" "$@" -o "$out/$name.o" "$src/$s"
    "$LD" $LDFLAGS -m elf_x86_64 -T "$src/bios.ld" -o "$out/$name.elf" "$out/$name.o"
    "$OBJCOPY" -O binary "$out/$name.elf" "$out/micro-$name.bin"
}

bios smp        smp.S
bios smp-x2apic smp.S   --defsym FORCE_X2APIC=1
bios io         io.S
bios io-bench   io.S    --defsym BENCH_ITERS=${BENCH_ITERS:-100000}
bios irq        irq.S
bios reset      reset.S
bios blk        blk.S

"$AS" --64 -I "$src" -o "$out/bzimage.o" "$src/bzimage.S"
"$LD" $LDFLAGS -m elf_x86_64 -T "$src/bzimage.ld" -o "$out/bzimage.elf" "$out/bzimage.o"
"$OBJCOPY" -O binary "$out/bzimage.elf" "$out/micro-bzImage"

"$AS" --64 -I "$src" --defsym RM_CHAIN=1 -o "$out/bzimage-chain.o" "$src/bzimage.S"
"$LD" $LDFLAGS -m elf_x86_64 -T "$src/bzimage.ld" -o "$out/bzimage-chain.elf" "$out/bzimage-chain.o"
"$OBJCOPY" -O binary "$out/bzimage-chain.elf" "$out/micro-bzImage-chain"

"$AS" --64 -I "$src" -o "$out/pvh.o" "$src/pvh.S"
"$LD" $LDFLAGS -m elf_x86_64 -T "$src/pvh.ld" -o "$out/micro-pvh.elf" "$out/pvh.o"
echo "micro-guests built in $out"

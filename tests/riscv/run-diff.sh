#!/bin/sh
# Differential tests of Ferry's RV64GC hart against Debian's qemu-riscv64 (user mode):
# builds rv-run and the test programs, runs each program under both, compares outputs.
#   tests/riscv/run-diff.sh [BUILD_DIR]
# Env: RV_RUN (a prebuilt rv-run, e.g. from meson), CC, RV_CC, QEMU_RISCV64, RANDOM_SEEDS.
# Needs gcc-riscv64-linux-gnu and qemu-user.  Exit status 0 only if every output matches.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${1:-${TMPDIR:-/tmp}/ferry-rv-diff}
mkdir -p "$out"
CC=${CC:-gcc}
RV_CC=${RV_CC:-riscv64-linux-gnu-gcc}
QEMU=${QEMU_RISCV64:-qemu-riscv64}
SEEDS=${RANDOM_SEEDS:-"1 2 3 4 5 6 7 8"}
RVFLAGS="-march=rv64gc -mabi=lp64d -static -nostdlib -ffreestanding -fno-builtin -O2"

for tool in "$RV_CC" "$QEMU"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "run-diff: $tool not found: install gcc-riscv64-linux-gnu and qemu-user" >&2
        exit 2
    fi
done

if [ -z "${RV_RUN:-}" ]; then
    RV_RUN="$out/rv-run"
    # shellcheck disable=SC2046
    $CC -O2 -g -std=gnu11 -Wall -I"$top/engine" $(pkg-config --cflags glib-2.0) \
        "$top/engine/cpu-riscv.c" "$top/engine/cpu-riscv-fpu.c" "$top/engine/cpu-riscv-jit.c" "$here/rv-run.c" \
        $(pkg-config --libs glib-2.0) -o "$RV_RUN" || exit 2
fi
$CC -O2 -Wall -o "$out/gen-random" "$here/gen-random.c" || exit 2

passed=0
failed=0
compare() {   # name elf [rv-run options...]
    name=$1; elf=$2; shift 2
    if [ ! -s "$out/$(basename "$elf").qemu" ]; then
        "$QEMU" "$elf" > "$out/$(basename "$elf").qemu"
        echo "exit $?" >> "$out/$(basename "$elf").qemu"
    fi
    "$RV_RUN" "$@" "$elf" > "$out/$name.ferry"
    echo "exit $?" >> "$out/$name.ferry"
    if cmp -s "$out/$(basename "$elf").qemu" "$out/$name.ferry"; then
        echo "ok $name"
        passed=$((passed + 1))
    else
        echo "FAIL $name (diff $out/$(basename "$elf").qemu $out/$name.ferry):"
        diff "$out/$(basename "$elf").qemu" "$out/$name.ferry" | head -n 10
        failed=$((failed + 1))
    fi
}

rm -f "$out"/*.qemu
for t in t-int t-amo t-fp; do
    $RV_CC $RVFLAGS -o "$out/$t" "$here/rt.S" "$here/$t.c" -lgcc || exit 2
done
$RV_CC $RVFLAGS -o "$out/t-rvc" "$here/rt.S" "$here/dump.c" "$here/t-rvc.S" -lgcc || exit 2
$RV_CC $RVFLAGS -o "$out/bench-mix" "$here/rt.S" "$here/bench-mix.c" -lgcc || exit 2
for seed in $SEEDS; do
    "$out/gen-random" "$seed" 300 > "$out/random-$seed.S" || exit 2
    $RV_CC $RVFLAGS -o "$out/random-$seed" "$here/rt.S" "$here/dump.c" "$out/random-$seed.S" -lgcc || exit 2
done

for t in t-int t-amo t-fp t-rvc bench-mix; do
    compare "$t" "$out/$t"
done
for seed in $SEEDS; do
    compare "random-$seed" "$out/random-$seed"
done
# the same programs with the MMU on (identity map, A/D set by the hart) and in S and M mode
compare t-int-u-sv39 "$out/t-int" -p u -v sv39
compare t-amo-s-sv48 "$out/t-amo" -p s -v sv48
compare t-rvc-u-sv48 "$out/t-rvc" -p u -v sv48
compare t-int-m "$out/t-int" -p m
set -- $SEEDS
s1=$1; s2=${2:-$1}; s3=${3:-$1}; s4=${4:-$1}
compare "random-$s1-s-sv39" "$out/random-$s1" -p s -v sv39
compare "random-$s2-u-sv48" "$out/random-$s2" -p u -v sv48
# the portable soft-float path (the x86-64 build normally uses SSE for + - * / sqrt fma)
export FERRY_RV_SOFTFLOAT=1
compare t-fp-softfloat "$out/t-fp"
compare "random-$s3-softfloat" "$out/random-$s3"
compare "random-$s4-softfloat" "$out/random-$s4"
unset FERRY_RV_SOFTFLOAT

echo "riscv-diff: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

# common.sh: what the benchmark scripts share; sourced after `set -u`, with
# `here` (this folder) set. Not a benchmark itself.

top=$(cd "$here/../.." && pwd)
br="python3 $here/benchrun.py"
missing=()

# With PIN=CPU, runs the calling script again under `taskset -c CPU` (once), so every
# process of the benchmark shares that host CPU; sets `pinned` for the report header.
bench_pin() {
    if [ -n "${PIN:-}" ] && [ -z "${FERRY_BENCH_PINNED:-}" ]; then
        command -v taskset >/dev/null ||
            { echo "$(basename "$0"): PIN needs taskset (util-linux)" >&2; exit 2; }
        FERRY_BENCH_PINNED=1 exec taskset -c "$PIN" "$0" "$@"
    fi
    pinned=${PIN:+, all processes pinned to host CPU $PIN (taskset)}
}

# need_cmd CMD HINT / need_file PATH HINT / need_exec PATH HINT: note what is missing.
need_cmd() { command -v "$1" >/dev/null || missing+=("$1 ($2)"); }
need_file() { [ -f "$1" ] || missing+=("$1 ($2)"); }
need_exec() { [ -x "$1" ] || missing+=("$1 ($2)"); }

# The riscv64 guest benchmarks: sets guests (from GUEST_DIR, the first argument given),
# fw, qemu and ferryctl, and notes what of them is missing.
need_riscv_guest() {
    guests=${1:-${FERRY_GUESTS:-${XDG_CACHE_HOME:-$HOME/.cache}/ferry-guests/latest}/riscv64}
    fw=${OPENSBI:-/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin}
    qemu=${QEMU:-qemu-system-riscv64}
    ferryctl=$build/app/ferryctl
    need_cmd python3 "apt-get install python3"
    need_exec "$ferryctl" "ninja -C $build"
    need_file "$guests/Image" "tests/guests/build.sh"
    need_file "$guests/initramfs.cpio.gz" "tests/guests/build.sh"
    need_file "$fw" "apt-get install opensbi"
    need_cmd "$qemu" "apt-get install qemu-system-misc"
    need_cmd cpio "apt-get install cpio"
}

# Exits with status 2 and the list when something is missing.
check_missing() {
    [ ${#missing[@]} -eq 0 ] && return 0
    local m
    for m in "${missing[@]}"; do
        echo "$(basename "$0"): missing: $m" >&2
    done
    exit 2
}

#!/bin/bash
# app-startup.sh: time from `ferry` starting to its library window drawn with
# 100 VMs in the library (issue 7: target under 300 ms). Runs under Xvfb.
#   tests/bench/app-startup.sh [BUILD_DIR] [RUNS]
set -eu
build=${1:-$(cd "$(dirname "$0")/../.." && pwd)/build}
runs=${2:-7}
for tool in xvfb-run; do
    command -v $tool >/dev/null || { echo "app-startup: $tool is missing (apt-get install xvfb)" >&2; exit 2; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export FERRY_LIBRARY=$tmp/library.db XDG_RUNTIME_DIR=$tmp/run GSETTINGS_BACKEND=memory
mkdir -p "$XDG_RUNTIME_DIR"
for i in $(seq 1 100); do
    "$build/app/ferryctl" create "vm-$i" --arch riscv64 -m 256M >/dev/null
done
echo "## app-startup: $(date -u '+%Y-%m-%d %H:%M UTC'), $runs runs, 100 VMs"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
times=()
for r in $(seq 1 "$runs"); do
    line=$(FERRY_REPORT_STARTUP=quit xvfb-run -a "$build/app/ferry" 2>&1 | grep FERRY-STARTUP)
    ms=${line#*ms=}; ms=${ms%% *}
    times+=("$ms")
    echo "run $r: $line"
done
printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "median %.1f ms (min %.1f, max %.1f); target < 300 ms: %s\n", a[int((NR+1)/2)], a[1], a[NR], (a[int((NR+1)/2)] < 300 ? "met" : "NOT met")}'

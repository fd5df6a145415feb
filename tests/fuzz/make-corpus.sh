#!/bin/sh
# make-corpus.sh: rebuilds the qcow2 seed corpus (corpus/qcow2/) with
# Debian's qemu-img and qemu-io (package qemu-utils). Small clusters keep
# the files small; each seed shows the parser one feature.
set -eu
out=$(cd "$(dirname "$0")" && pwd)/corpus/qcow2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

img() { qemu-img create -q -f qcow2 -o "$1" "$2" "$3"; }
io() { f=$1; shift; for c in "$@"; do set -- "$@" -c "$c"; shift; done; qemu-io -f qcow2 "$@" "$f" >/dev/null; }

img cluster_size=512 empty-512.qcow2 1M
img cluster_size=512 data-512.qcow2 1M
io data-512.qcow2 "write -P 0x11 0 3k" "write -P 0x22 700k 1500" "write -P 0x33 1023k 1k"
img cluster_size=512 zero-512.qcow2 1M
io zero-512.qcow2 "write -P 0x44 0 4k" "write -z 1k 2k" "write -z -u 3k 512"
img cluster_size=512,refcount_bits=1 refcount1-512.qcow2 1M
io refcount1-512.qcow2 "write -P 0x55 0 2k"
img cluster_size=512,refcount_bits=64 refcount64-512.qcow2 1M
io refcount64-512.qcow2 "write -P 0x66 5k 2k"
img cluster_size=512,compat=0.10 v2-512.qcow2 1M
io v2-512.qcow2 "write -P 0x77 0 2k"
qemu-img create -q -f raw base.raw 1M
qemu-img create -q -f qcow2 -o cluster_size=512 -b base.raw -F raw backing-512.qcow2
io backing-512.qcow2 "write -P 0x88 1k 1k" "write -z 4k 1k"
img cluster_size=512 snapshot-512.qcow2 1M
io snapshot-512.qcow2 "write -P 0x99 0 2k"
qemu-img snapshot -c first snapshot-512.qcow2
io snapshot-512.qcow2 "write -P 0x9a 512 512"
qemu-img create -q -f raw src.raw 64k
qemu-io -f raw -c "write -P 0x61 0 20k" -c "write -P 0x62 40k 8k" src.raw >/dev/null
qemu-img convert -c -O qcow2 -o cluster_size=512 src.raw compressed-zlib-512.qcow2
qemu-img convert -c -O qcow2 -o cluster_size=4096,compression_type=zstd src.raw compressed-zstd-4k.qcow2
img cluster_size=512 bitmap-512.qcow2 1M
qemu-img bitmap --add bitmap-512.qcow2 b0
io bitmap-512.qcow2 "write -P 0xab 0 1k"
img cluster_size=4096 data-4k.qcow2 4M
io data-4k.qcow2 "write -P 0xcd 100 10000" "write -P 0xce 3M 5000"

mkdir -p "$out"
for f in *.qcow2; do cp "$f" "$out/$f"; done
ls -l "$out"

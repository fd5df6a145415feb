#!/bin/sh
# tools/setup.sh run|test: the two README commands for a fresh Debian 12 machine.
#
#   run   install the build dependencies, build Ferry, build (or take from the
#         cache) the test guests, put a RISC-V test VM in the library when it
#         is empty, and start the Ferry desktop app
#   test  install the build and test dependencies, build, build the test
#         guests, and run every test (meson test)
#
# Needs root for apt-get (uses sudo when not root). Guest images are cached
# outside the build tree (tests/guests/build.sh says where).
set -eu

mode=${1:-}
case "$mode" in
    run|test) ;;
    *) echo "usage: tools/setup.sh run|test" >&2; exit 2 ;;
esac

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

BUILD_PKGS="gcc pkg-config meson ninja-build binutils gettext libglib2.0-dev libfdt-dev libsqlite3-dev
  zlib1g-dev libzstd-dev libgtk-3-dev libvte-2.91-dev desktop-file-utils appstream opensbi
  adwaita-icon-theme librsvg2-common libosinfo-1.0-dev osinfo-db"
TEST_PKGS="acpica-tools libvirt-clients qemu-utils xvfb xauth imagemagick util-linux genisoimage qemu-user"

install_pkgs() {
    need=""
    for p in "$@"; do
        st=$(dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null || true)
        [ "$st" = installed ] || need="$need $p"
    done
    [ -z "$need" ] && return 0
    echo "setup: installing$need" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null 2>&1 || {
        as_root apt-get update -qq >/dev/null
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
    }
}

build() {
    if [ -f build/build.ninja ]; then
        meson setup --reconfigure build >/dev/null
    else
        meson setup build >/dev/null
    fi
    ninja -C build
}

if [ "$mode" = run ]; then
    install_pkgs $BUILD_PKGS
    as_root tests/guests/deps.sh
    build
    guests=$(tests/guests/build.sh)
    # A first VM to try: the RISC-V test guest (a busybox shell), which runs
    # on Ferry's own processor on any computer.
    if [ -z "$(build/app/ferryctl list --json 2>/dev/null | tr -d '[:space:][]')" ]; then
        build/app/ferryctl create "RISC-V test guest" --arch riscv64 -m 512M --smp 2 \
            --kernel "$guests/riscv64/Image" --initrd "$guests/riscv64/initramfs.cpio.gz" \
            --append "console=ttyS0 guest_mode=shell" >/dev/null
    fi
    exec build/app/ferry
fi

install_pkgs $BUILD_PKGS $TEST_PKGS
as_root tests/guests/deps.sh
build
FERRY_GUEST_DIR=$(tests/guests/build.sh)
# Debian's own kernel for the loader's test of a real bzImage.
FERRY_TEST_BZIMAGE=$FERRY_GUEST_DIR/x86_64/vmlinuz
export FERRY_GUEST_DIR FERRY_TEST_BZIMAGE
meson test -C build --print-errorlogs

#!/bin/bash
# Build (or take from the cache) the guests Ferry's tests boot, and print the
# directory that holds them:
#   riscv64/Image               kernel cross-built from Debian's linux-source-6.1
#   riscv64/initramfs.cpio.gz   busybox cross-built (static) from Debian's source + init
#   riscv64/fw_dynamic.bin      OpenSBI from Debian's opensbi (fw_jump.bin too)
#   x86_64/vmlinuz              Debian's linux-image-6.1.*-amd64 kernel
#   x86_64/initramfs.cpio.gz    Debian's busybox-static + needed modules + init
#   MANIFEST                    package versions and cache keys
#
#   tests/guests/build.sh [OUTDIR]     OUTDIR gets symlinks riscv64/, x86_64/, MANIFEST
#
# Needs what tests/guests/deps.sh installs (run that once as root). No root here.
# Cache: ${FERRY_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferry-guests}, one
# entry per part keyed by the Debian package versions it uses and a hash of the
# recipe (the shell function that builds it) and the repo files it reads.
# Entries are built in a temporary directory and renamed into place at the end.
# Progress goes to stderr; stdout is only the final path.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${FERRY_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferry-guests}
JOBS=${FERRY_GUEST_JOBS:-$(nproc)}
OUTDIR=${1:-}
RV_CROSS=riscv64-linux-gnu-
# Modules the x86_64 init loads (Debian builds them as modules); dependencies
# are added from modules.dep.
X86_MODULES="virtio_pci virtio_mmio virtio_blk virtio_net virtio_console
  virtio_input virtio-rng evdev button crc32c_generic crc32c-intel ext4"

log() { echo "build.sh: $*" >&2; }
die() { echo "build.sh: error: $*" >&2; exit 1; }
sha() { sha256sum | cut -c1-16; }

# Run a build step quietly into a log file; on failure show its tail.
run_logged() {
    local logf=$1; shift
    if ! "$@" >>"$logf" 2>&1; then
        echo "build.sh: step failed: $*" >&2
        tail -n 40 "$logf" >&2
        return 1
    fi
}

# ---------------------------------------------------------------- prerequisites
missing=""
for t in ${RV_CROSS}gcc ${RV_CROSS}readelf make gcc bc flex bison cpio gzip \
         xz sha256sum dpkg-deb dpkg-source apt-get depmod flock; do
    command -v "$t" >/dev/null 2>&1 || missing="$missing $t"
done
[ -e /usr/src/linux-source-6.1.tar.xz ] || missing="$missing /usr/src/linux-source-6.1.tar.xz"
[ -z "$missing" ] || die "missing:$missing (run tests/guests/deps.sh as root)"

# ---------------------------------------------------------------- versions
installed_ver() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo none; }
V_LINUX_SRC=$(installed_ver linux-source-6.1)
V_RV_GCC="$(installed_ver gcc-riscv64-linux-gnu)/$(${RV_CROSS}gcc -dumpfullversion)"
V_RV_BINUTILS=$(installed_ver binutils-riscv64-linux-gnu)
V_RV_LIBC=$(installed_ver libc6-dev-riscv64-cross)
V_BUSYBOX_SRC=$(apt-get source --print-uris -qq busybox 2>/dev/null \
                | sed -n "s/^'[^']*' busybox_\([^ ]*\)\.dsc .*/\1/p" | head -n1)
[ -n "$V_BUSYBOX_SRC" ] || die "apt-get source busybox: no source package (run tests/guests/deps.sh as root)"
# One apt-cache call (each costs ~0.5 s): linux-image-amd64's Depends names
# the versioned kernel package with its exact version.
APT_SHOW=$(apt-cache show --no-all-versions linux-image-amd64 busybox-static opensbi 2>/dev/null || true)
show_field() { # PACKAGE FIELD
    awk -v p="$1" -v f="$2:" '$1 == "Package:" { cur = $2 } cur == p && $1 == f { sub(/^[^:]*: /, ""); print; exit }' <<<"$APT_SHOW"
}
read -r X86_KPKG V_X86_KERNEL < <(show_field linux-image-amd64 Depends \
    | sed -n 's/.*\(linux-image-6\.1[^ ,]*-amd64\) (= \([^)]*\)).*/\1 \2/p') || true
V_BUSYBOX_STATIC=$(show_field busybox-static Version)
V_OPENSBI=$(show_field opensbi Version)
[ -n "${X86_KPKG:-}" ] && [ -n "${V_X86_KERNEL:-}" ] \
    || die "cannot resolve linux-image-amd64 to a linux-image-6.1*-amd64 package and version"
[ -n "$V_BUSYBOX_STATIC" ] && [ -n "$V_OPENSBI" ] \
    || die "apt-cache knows no busybox-static or opensbi (run tests/guests/deps.sh as root)"

recipe() { declare -f "$@" | sha; }

mkdir -p "$CACHE/parts"

# ---------------------------------------------------------------- part machinery
# part DEST FUNC: unless DEST exists, run FUNC OUT WORK in a fresh temporary
# directory (OUT to fill, WORK to work in) and rename OUT to DEST.
# A part is built in a background job with its own process group (set -m), so
# that a signal to build.sh stops the whole build at once, not after it.
WORKDIRS=()
CHILD=
cleanup() { local d; for d in "${WORKDIRS[@]}"; do rm -rf "$d"; done; }
on_signal() {
    if [ -n "$CHILD" ]; then
        kill -TERM -- "-$CHILD" 2>/dev/null
        wait "$CHILD" 2>/dev/null
    fi
    exit 130
}
trap cleanup EXIT
trap on_signal INT TERM HUP

part() {
    local dest=$1 func=$2 name=${1##*/}
    [ -d "$dest" ] && return 0
    local tmp
    tmp=$(mktemp -d "$CACHE/tmp.$name.XXXXXX")
    WORKDIRS+=("$tmp")
    mkdir "$tmp/out" "$tmp/work"
    log "building $name (log: $tmp/work/build.log)"
    local t0=$SECONDS
    # Not "( ... ) || die": bash would then ignore set -e inside FUNC.
    local rc=0
    set -m
    (set -e; cd "$tmp/work"; "$func" "$tmp/out" "$tmp/work") </dev/null 9>&- &
    CHILD=$!
    set +m
    wait "$CHILD" || rc=$?
    CHILD=
    [ "$rc" = 0 ] || die "building $name failed (see the log above)"
    mv -T "$tmp/out" "$dest" || die "cannot move $name into the cache"
    rm -rf "$tmp"
    log "built $name in $((SECONDS - t0)) s"
}

# ---------------------------------------------------------------- riscv64 kernel
build_rv_kernel() {
    local out=$1 work=$2 logf=$2/build.log
    local make=(make -C "$work/linux" ARCH=riscv CROSS_COMPILE=$RV_CROSS
                KBUILD_BUILD_USER=ferry KBUILD_BUILD_HOST=ferry
                "KBUILD_BUILD_TIMESTAMP=linux-source $V_LINUX_SRC")
    mkdir "$work/linux"
    run_logged "$logf" tar -xf /usr/src/linux-source-6.1.tar.xz -C "$work/linux" --strip-components=1
    run_logged "$logf" "${make[@]}" allnoconfig
    run_logged "$logf" env -C "$work/linux" ARCH=riscv CROSS_COMPILE=$RV_CROSS \
        scripts/kconfig/merge_config.sh -m .config "$HERE/riscv64.config"
    run_logged "$logf" "${make[@]}" olddefconfig
    # Every line of the fragment must have survived.
    local l bad=""
    while IFS= read -r l; do
        case $l in
            CONFIG_*=*) grep -qxF "$l" "$work/linux/.config" || bad="$bad ${l}" ;;
            "# CONFIG_"*" is not set")
                l=${l#\# }; l=${l%% *}
                if grep -q "^$l=" "$work/linux/.config"; then bad="$bad $l=n"; fi ;;
        esac
    done <"$HERE/riscv64.config"
    [ -z "$bad" ] || { echo "build.sh: riscv64.config lines not in the final .config:$bad" >&2; return 1; }
    run_logged "$logf" "${make[@]}" -j"$JOBS" Image
    cp "$work/linux/arch/riscv/boot/Image" "$out/Image"
    cp "$work/linux/.config" "$out/config"
    # Host tool used below to write initramfs archives with device nodes, no root needed.
    cp "$work/linux/usr/gen_init_cpio" "$out/gen_init_cpio"
}

# ---------------------------------------------------------------- riscv64 busybox
build_rv_busybox() {
    local out=$1 work=$2 logf=$2/build.log
    run_logged "$logf" apt-get source -q busybox
    local src
    src=$(find "$work" -maxdepth 1 -type d -name 'busybox-*' | head -n1)
    [ -n "$src" ] || { echo "build.sh: apt-get source busybox gave no tree" >&2; return 1; }
    run_logged "$logf" make -C "$src" defconfig
    # Static, cross-compiled; tc does not build against 6.x kernel headers (CBQ).
    sed -i -e 's/^# CONFIG_STATIC is not set$/CONFIG_STATIC=y/' \
           -e 's/^CONFIG_TC=y$/# CONFIG_TC is not set/' \
           -e "s/^CONFIG_CROSS_COMPILER_PREFIX=.*/CONFIG_CROSS_COMPILER_PREFIX=\"$RV_CROSS\"/" \
           "$src/.config"
    run_logged "$logf" sh -c 'yes "" | make -C "$1" oldconfig' sh "$src"
    local c
    for c in CONFIG_STATIC=y CONFIG_ACPID=y CONFIG_CTTYHACK=y CONFIG_SETSID=y \
             CONFIG_SHA256SUM=y CONFIG_POWEROFF=y CONFIG_ASH=y; do
        grep -qx "$c" "$src/.config" || { echo "build.sh: busybox config lacks $c" >&2; return 1; }
    done
    run_logged "$logf" make -C "$src" -j"$JOBS" busybox
    if ${RV_CROSS}readelf -l "$src/busybox" | grep -q INTERP; then
        echo "build.sh: riscv64 busybox is not static" >&2; return 1
    fi
    ${RV_CROSS}readelf -h "$src/busybox" | grep -q RISC-V \
        || { echo "build.sh: riscv64 busybox is not a RISC-V binary" >&2; return 1; }
    cp "$src/busybox" "$out/busybox"
    cp "$src/.config" "$out/busybox.config"
}

# ---------------------------------------------------------------- riscv64 OpenSBI
build_rv_opensbi() {
    local out=$1 work=$2 logf=$2/build.log
    run_logged "$logf" apt-get download -q "opensbi=$V_OPENSBI"
    run_logged "$logf" dpkg-deb -x opensbi_*.deb root
    local f
    for f in fw_dynamic.bin fw_jump.bin; do
        cp "root/usr/lib/riscv64-linux-gnu/opensbi/generic/$f" "$out/$f"
    done
}

# ---------------------------------------------------------------- x86_64 kernel + modules
build_x86_kernel() {
    local out=$1 work=$2 logf=$2/build.log
    run_logged "$logf" apt-get download -q "$X86_KPKG=$V_X86_KERNEL"
    run_logged "$logf" dpkg-deb -x "$X86_KPKG"_*.deb root
    local kver
    kver=$(ls root/lib/modules | head -n1)
    [ -n "$kver" ] || { echo "build.sh: no modules in $X86_KPKG" >&2; return 1; }
    cp "root/boot/vmlinuz-$kver" "$out/vmlinuz"
    cp "root/boot/config-$kver" "$out/config"
    # The package ships no modules.dep (postinst runs depmod): make it here.
    run_logged "$logf" depmod -b "$work/root" "$kver"
    # Load order: each module after everything it depends on (modules.dep
    # lists a module's whole dependency chain, the one to load first last).
    # Modules built into this kernel need no file.
    awk -v want="$X86_MODULES" '
        function base(p,  b) { b = p; sub(/.*\//, "", b); sub(/\.ko.*$/, "", b); gsub(/-/, "_", b); return b }
        function add(p) { if (!(p in seen)) { seen[p] = 1; order[n++] = p } }
        FILENAME ~ /modules\.builtin$/ { builtin[base($1)] = 1; next }
        { sub(/:$/, "", $1); path[base($1)] = $1; line[$1] = $0 }
        END {
            k = split(want, w, /[ \t\n]+/)
            for (i = 1; i <= k; i++) {
                m = w[i]; gsub(/-/, "_", m)
                if (m == "" || m in builtin) continue
                if (!(m in path)) { print "MISSING " w[i]; continue }
                p = path[m]; c = split(line[p], d, " ")
                for (j = c; j >= 2; j--) add(d[j])
                add(p)
            }
            for (i = 0; i < n; i++) print order[i]
        }' "root/lib/modules/$kver/modules.builtin" "root/lib/modules/$kver/modules.dep" >load-order
    if grep -q '^MISSING' load-order; then
        echo "build.sh: modules not found in $X86_KPKG: $(grep '^MISSING' load-order | tr '\n' ' ')" >&2
        return 1
    fi
    mkdir -p "$out/modules"
    local p
    while read -r p; do
        mkdir -p "$out/modules/$kver/$(dirname "$p")"
        case $p in
            *.ko) cp "root/lib/modules/$kver/$p" "$out/modules/$kver/$p" ;;
            *.ko.xz) xz -dc "root/lib/modules/$kver/$p" >"$out/modules/$kver/${p%.xz}" ;;
            *.ko.zst) zstd -qdc "root/lib/modules/$kver/$p" >"$out/modules/$kver/${p%.zst}" ;;
            *) echo "build.sh: unexpected module file $p" >&2; return 1 ;;
        esac
        echo "$kver/${p%.ko*}.ko" >>"$out/modules/load-order"
    done <load-order
}

# ---------------------------------------------------------------- x86_64 busybox
build_x86_busybox() {
    local out=$1 work=$2 logf=$2/build.log
    run_logged "$logf" apt-get download -q "busybox-static=$V_BUSYBOX_STATIC"
    run_logged "$logf" dpkg-deb -x busybox-static_*.deb root
    cp root/bin/busybox "$out/busybox"
}

# ---------------------------------------------------------------- initramfs + final entry
# Stage a root tree, then describe it to gen_init_cpio (files owned by root,
# plus /dev/console), gzip it.
make_initramfs() {
    local stage=$1 dest=$2 spec=$1.spec p rel mode
    mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,root,mnt,var/log}
    mkdir -p "$stage/etc/acpi/PWRF" "$stage/selftests"
    cp "$HERE/init" "$stage/init"
    cp "$HERE"/selftests/* "$stage/selftests/"
    cp "$HERE/power-button" "$stage/etc/acpi/PWRF/00000080"
    chmod 755 "$stage/init" "$stage"/selftests/* "$stage/etc/acpi/PWRF/00000080"
    chmod 755 "$stage/bin/busybox"
    ln -sf busybox "$stage/bin/sh"
    {
        echo "nod /dev/console 0600 0 0 c 5 1"
        (cd "$stage" && find . -mindepth 1 | LC_ALL=C sort) | while read -r p; do
            rel=${p#.}
            mode=$(stat -c %a "$stage/$p")
            if [ -L "$stage/$p" ]; then
                echo "slink $rel $(readlink "$stage/$p") 777 0 0"
            elif [ -d "$stage/$p" ]; then
                [ "$rel" = /tmp ] && mode=1777
                echo "dir $rel $mode 0 0"
            else
                echo "file $rel $stage/$p $mode 0 0"
            fi
        done
    } >"$spec"
    # Fixed timestamps: the same inputs give the same archive.
    find "$stage" -exec touch -h -d @1 {} +
    "$P_RV_KERNEL/gen_init_cpio" -t 1 "$spec" | gzip -9n >"$dest"
}

build_final() {
    local out=$1 work=$2
    mkdir -p "$out/riscv64" "$out/x86_64"
    # riscv64
    cp "$P_RV_KERNEL/Image" "$P_RV_KERNEL/config" "$out/riscv64/"
    cp "$P_RV_OPENSBI"/fw_*.bin "$out/riscv64/"
    mkdir -p "$work/rv/bin"
    cp "$P_RV_BUSYBOX/busybox" "$work/rv/bin/busybox"
    make_initramfs "$work/rv" "$out/riscv64/initramfs.cpio.gz"
    # x86_64
    cp "$P_X86_KERNEL/vmlinuz" "$P_X86_KERNEL/config" "$out/x86_64/"
    mkdir -p "$work/x86/bin" "$work/x86/lib"
    cp "$P_X86_BUSYBOX/busybox" "$work/x86/bin/busybox"
    cp -r "$P_X86_KERNEL/modules" "$work/x86/lib/modules"
    make_initramfs "$work/x86" "$out/x86_64/initramfs.cpio.gz"
    {
        echo "linux-source-6.1 $V_LINUX_SRC"
        echo "gcc-riscv64-linux-gnu $V_RV_GCC"
        echo "binutils-riscv64-linux-gnu $V_RV_BINUTILS"
        echo "libc6-dev-riscv64-cross $V_RV_LIBC"
        echo "busybox(source) $V_BUSYBOX_SRC"
        echo "opensbi $V_OPENSBI"
        echo "$X86_KPKG $V_X86_KERNEL"
        echo "busybox-static $V_BUSYBOX_STATIC"
        echo "x86_64 modules: $(tr '\n' ' ' <"$P_X86_KERNEL/modules/load-order")"
        echo "parts: ${P_RV_KERNEL##*/} ${P_RV_BUSYBOX##*/} ${P_RV_OPENSBI##*/} ${P_X86_KERNEL##*/} ${P_X86_BUSYBOX##*/}"
    } >"$out/MANIFEST"
}

# ---------------------------------------------------------------- keys, then build
P_RV_KERNEL=$CACHE/parts/rv-kernel-$( { echo "$V_LINUX_SRC $V_RV_GCC $V_RV_BINUTILS"
    recipe build_rv_kernel run_logged; cat "$HERE/riscv64.config"; } | sha)
P_RV_BUSYBOX=$CACHE/parts/rv-busybox-$( { echo "$V_BUSYBOX_SRC $V_RV_GCC $V_RV_BINUTILS $V_RV_LIBC"
    recipe build_rv_busybox run_logged; } | sha)
P_RV_OPENSBI=$CACHE/parts/rv-opensbi-$( { echo "$V_OPENSBI"; recipe build_rv_opensbi run_logged; } | sha)
P_X86_KERNEL=$CACHE/parts/x86-kernel-$( { echo "$X86_KPKG $V_X86_KERNEL $X86_MODULES"
    recipe build_x86_kernel run_logged; } | sha)
P_X86_BUSYBOX=$CACHE/parts/x86-busybox-$( { echo "$V_BUSYBOX_STATIC"; recipe build_x86_busybox run_logged; } | sha)
FINAL=$CACHE/guests-$( { for p in "$P_RV_KERNEL" "$P_RV_BUSYBOX" "$P_RV_OPENSBI" "$P_X86_KERNEL" "$P_X86_BUSYBOX"; do
        echo "${p##*/}"; done
    recipe build_final make_initramfs
    cd "$HERE" && for f in init power-button selftests/*; do echo "$f"; cat "$f"; done; } | sha)

if [ ! -d "$FINAL" ]; then
    # One builder at a time; whoever waited finds the entry built.
    exec 9>"$CACHE/.lock"
    flock 9
    # Under the lock, any temporary directory is left over from a killed build.
    rm -rf "$CACHE"/tmp.*
    part "$P_RV_KERNEL" build_rv_kernel
    part "$P_RV_BUSYBOX" build_rv_busybox
    part "$P_RV_OPENSBI" build_rv_opensbi
    part "$P_X86_KERNEL" build_x86_kernel
    part "$P_X86_BUSYBOX" build_x86_busybox
    part "$FINAL" build_final
    ln -sfn "${FINAL##*/}" "$CACHE/latest.tmp" && mv -T "$CACHE/latest.tmp" "$CACHE/latest"
    exec 9>&-
fi

if [ -n "$OUTDIR" ]; then
    mkdir -p "$OUTDIR"
    for f in riscv64 x86_64 MANIFEST; do
        ln -sfnT "$FINAL/$f" "$OUTDIR/$f"
    done
fi
echo "$FINAL"

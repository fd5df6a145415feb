#!/bin/sh
# Install what tests/guests/build.sh needs (Debian 12 "bookworm", run as root).
# Idempotent and quiet: does nothing when everything is already there.
#
#   tests/guests/deps.sh              build dependencies only
#   tests/guests/deps.sh --validate   also QEMU + OpenSBI, to boot the guests by hand
set -eu

BUILD_PKGS="make gcc libc6-dev bc flex bison perl libssl-dev libelf-dev cpio
  gzip xz-utils dpkg-dev kmod ca-certificates
  gcc-riscv64-linux-gnu binutils-riscv64-linux-gnu libc6-dev-riscv64-cross
  linux-source-6.1"
VALIDATE_PKGS="qemu-system-misc qemu-system-x86 qemu-utils opensbi socat"

pkgs=$BUILD_PKGS
[ "${1:-}" = "--validate" ] && pkgs="$pkgs $VALIDATE_PKGS"

if [ "$(id -u)" != 0 ]; then
    echo "deps.sh: must run as root" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log() { echo "deps.sh: $*" >&2; }

updated=0
apt_update() {
    [ $updated = 1 ] && return 0
    log "apt-get update"
    apt-get update -qq >/dev/null
    updated=1
}

# Fresh machine without package lists: update once first.
if ! apt-get indextargets --format '$(IDENTIFIER)' 2>/dev/null | grep -qx Packages \
   || ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then
    apt_update
fi

# --- deb-src entries (for `apt-get source busybox`) ---------------------------
# For every bookworm* "deb" suite apt knows, make sure a matching "deb-src"
# exists; otherwise write one file mirroring the deb entries' URIs and suites.
SRC_FILE=/etc/apt/sources.list.d/ferry-deb-src.sources
find_missing() {
    local targets t
    targets=$(apt-get indextargets --format '$(TARGET_OF)|$(IDENTIFIER)|$(REPO_URI)|$(RELEASE)|$(COMPONENT)' 2>/dev/null | sort -u)
    missing=""
    for t in $(echo "$targets" | awk -F'|' '$1=="deb" && $2=="Packages" && $4 ~ /^bookworm/ {print $3"|"$4"|"$5}'); do
        echo "$targets" | grep -qF "deb-src|Sources|$t" || missing="$missing $t"
    done
}
find_missing
if [ -n "$missing" ] && [ $updated = 0 ]; then
    # Maybe configured but never fetched.
    apt_update
    find_missing
fi
if [ -n "$missing" ]; then
    if [ ! -e "$SRC_FILE" ]; then
        log "adding deb-src entries in $SRC_FILE"
        keyring=/usr/share/keyrings/debian-archive-keyring.gpg
        {
            echo "# Added by ferry tests/guests/deps.sh: source packages for the test guests."
            for t in $missing; do
                uri=${t%%|*}; rest=${t#*|}; suite=${rest%%|*}; comp=${rest#*|}
                echo "Types: deb-src"
                echo "URIs: $uri"
                echo "Suites: $suite"
                echo "Components: $comp"
                [ -r "$keyring" ] && echo "Signed-By: $keyring"
                echo
            done
        } >"$SRC_FILE.tmp"
        mv "$SRC_FILE.tmp" "$SRC_FILE"
    fi
    updated=0
    apt_update
fi

# --- packages -----------------------------------------------------------------
need=""
for p in $pkgs; do
    st=$(dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$st" = installed ] || need="$need $p"
done
if [ -n "$need" ]; then
    log "installing:$need"
    apt-get install -y -qq --no-install-recommends $need >/dev/null 2>&1 || {
        apt_update
        apt-get install -y -qq --no-install-recommends $need >/dev/null
    }
fi
exit 0

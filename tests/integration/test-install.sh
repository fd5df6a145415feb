#!/bin/sh
# test-install.sh: `meson install` into a temporary DESTDIR installs a working
# app: both programs, the desktop file (desktop-file-validate), the AppStream
# metainfo (appstreamcli validate), the GSettings schema, the icons, the MIME
# types and the French catalogue, whose strings really are French.
#
# Usage: test-install.sh [BUILD_DIR]   (default: $MESON_BUILD_ROOT)
# Exit: 0 pass, 77 skip (a tool is missing), 1 fail.

set -u

BUILD=${1:-${MESON_BUILD_ROOT:-}}
if [ -z "$BUILD" ] || [ ! -d "$BUILD/meson-info" ]; then
    echo "test-install: give the meson build folder as the first argument (or set MESON_BUILD_ROOT)" >&2
    exit 1
fi
BUILD=$(cd "$BUILD" && pwd)

for tool in meson python3 desktop-file-validate appstreamcli glib-compile-schemas msgunfmt gettext; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: test-install needs $tool, which is not installed"
        exit 77
    fi
done

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/ferry-install.XXXXXX") || fail "cannot create a temporary folder"
trap 'rm -rf "$TMP"' EXIT INT TERM
DEST=$TMP/root

# The installation folders this build was configured with.
dirs=$(meson introspect "$BUILD" --buildoptions | python3 -c '
import json, sys
opts = {o["name"]: o["value"] for o in json.load(sys.stdin)}
prefix = opts["prefix"]
for key in ("bindir", "datadir", "localedir"):
    value = opts[key]
    print(value if value.startswith("/") else prefix.rstrip("/") + "/" + value)
') || fail "cannot read the build options of $BUILD (meson introspect)"
BINDIR=$(echo "$dirs" | sed -n 1p)
DATADIR=$(echo "$dirs" | sed -n 2p)
LOCALEDIR=$(echo "$dirs" | sed -n 3p)

# The build is already up to date under `meson test`; do not run ninja from a test.
if ! meson install -C "$BUILD" --no-rebuild --destdir "$DEST" >"$TMP/install.log" 2>&1; then
    cat "$TMP/install.log" >&2
    fail "meson install --destdir failed (log above)"
fi

need_file() {
    [ -f "$DEST$1" ] || fail "meson install did not install $1"
}

# Programs.
for prog in ferry ferryctl; do
    need_file "$BINDIR/$prog"
    [ -x "$DEST$BINDIR/$prog" ] || fail "$BINDIR/$prog is installed but not executable"
done
FERRY_LIBRARY="$TMP/library.db" "$DEST$BINDIR/ferryctl" list >"$TMP/ferryctl.log" 2>&1 ||
    { cat "$TMP/ferryctl.log" >&2; fail "the installed ferryctl does not run ('ferryctl list' on an empty library)"; }
# The installed app looks for its catalogue where it was installed.
grep -aqF "$LOCALEDIR" "$DEST$BINDIR/ferry" ||
    fail "the installed ferry does not look for translations in $LOCALEDIR"

# Desktop file, translated and valid.
DESKTOP=$DATADIR/applications/org.ferryvm.Ferry.desktop
need_file "$DESKTOP"
desktop-file-validate "$DEST$DESKTOP" || fail "desktop-file-validate rejects the installed $DESKTOP"
grep -q '^Comment\[fr\]=' "$DEST$DESKTOP" || fail "the installed $DESKTOP has no French Comment (po/fr.po not merged)"

# AppStream metainfo, translated and valid.
METAINFO=$DATADIR/metainfo/org.ferryvm.Ferry.metainfo.xml
need_file "$METAINFO"
appstreamcli validate --no-net "$DEST$METAINFO" ||
    fail "appstreamcli validate --no-net rejects the installed $METAINFO"
grep -q 'xml:lang="fr"' "$DEST$METAINFO" || fail "the installed $METAINFO has no French text (po/fr.po not merged)"

# GSettings schema (compiled by the post-install step on the real system).
SCHEMAS=$DATADIR/glib-2.0/schemas
need_file "$SCHEMAS/org.ferryvm.Ferry.gschema.xml"
glib-compile-schemas --strict --dry-run "$DEST$SCHEMAS" || fail "the installed schema does not compile"

# Icons and MIME types.
need_file "$DATADIR/icons/hicolor/scalable/apps/org.ferryvm.Ferry.svg"
need_file "$DATADIR/icons/hicolor/symbolic/apps/org.ferryvm.Ferry-symbolic.svg"
need_file "$DATADIR/mime/packages/org.ferryvm.Ferry-mime.xml"
if command -v xmllint >/dev/null 2>&1; then
    xmllint --noout "$DEST$DATADIR/mime/packages/org.ferryvm.Ferry-mime.xml" || fail "the installed MIME xml is not well-formed"
fi

# The French catalogue: installed, and its strings are French.
MO=$LOCALEDIR/fr/LC_MESSAGES/ferry.mo
need_file "$MO"
msgunfmt "$DEST$MO" >"$TMP/fr.po" 2>&1 || fail "msgunfmt cannot read the installed $MO"
grep -q '^msgstr "Éteindre"$' "$TMP/fr.po" || fail "the installed $MO has no translation for “Shut Down”"
got=$(TEXTDOMAINDIR="$DEST$LOCALEDIR" LANGUAGE=fr LC_ALL=C.UTF-8 gettext -d ferry "Shut Down")
[ "$got" = "Éteindre" ] || fail "gettext -d ferry \"Shut Down\" with LANGUAGE=fr gives \"$got\", not \"Éteindre\""
got=$(TEXTDOMAINDIR="$DEST$LOCALEDIR" LANGUAGE=fr LC_ALL=C.UTF-8 gettext -d ferry "Create and run virtual machines")
[ "$got" = "Créer et exécuter des machines virtuelles" ] ||
    fail "gettext -d ferry with LANGUAGE=fr gives \"$got\" for “Create and run virtual machines”"

echo "PASS: meson install put a complete, translated Ferry into $DEST (removed on exit)"
exit 0

#!/usr/bin/env bash
# fetch-pe-fixtures.sh - real PE32+ images from Debian for the PE parser's tests.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: fetch-pe-fixtures.sh

Download Debian's libwine package (apt-get download), unpack its x86_64
ntoskrnl.exe (wine's kernel, a PE32+ DLL built by mingw) with dpkg-deb and leave
it in ${HVP_GUEST_DIR:-/var/lib/hvpatch-test}/pe-fixtures/:

  ntoskrnl.exe   /usr/lib/x86_64-linux-gnu/wine/x86_64-windows/ntoskrnl.exe
  package        the package and version it came from
  sha256         its checksum

Idempotent: a file already present is kept. The directory path is printed on
stdout as the last line; progress goes to stderr. tests/unit/test-pe.c finds it
through HVP_PE_DIR (scripts/test.sh sets it).
USAGE
}

die() { echo "fetch-pe-fixtures.sh: error: $*" >&2; exit 1; }
log() { echo "fetch-pe-fixtures.sh: $*" >&2; }

case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    "") ;;
    *) die "unknown argument: $1 (try --help)" ;;
esac

pkg=libwine
member=./usr/lib/x86_64-linux-gnu/wine/x86_64-windows/ntoskrnl.exe
dir=${HVP_GUEST_DIR:-/var/lib/hvpatch-test}/pe-fixtures
(umask 022 && mkdir -p "$dir")
exec 9>"$dir/.lock"
flock 9

if [ ! -s "$dir/ntoskrnl.exe" ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    chmod 755 "$tmp"
    if getent passwd _apt >/dev/null; then chown _apt "$tmp" 2>/dev/null || true; fi
    if ! apt-cache show "$pkg" >/dev/null 2>&1; then
        [ "$(id -u)" -eq 0 ] || die "apt-cache does not know $pkg (run as root so apt-get update can run)"
        log "$pkg unknown to apt-cache; running apt-get update"
        apt-get update >&2 || die "apt-get update failed"
    fi
    log "downloading $pkg"
    (cd "$tmp" && apt-get download "$pkg" >&2) || die "apt-get download $pkg failed"
    deb=$(ls "$tmp"/"$pkg"_*.deb)
    mkdir -p "$tmp/x"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/x" "$member" || die "$pkg has no $member"
    install -m 644 "$tmp/x/$member" "$dir/ntoskrnl.exe.new"
    dpkg-deb -f "$deb" Package Version | tr '\n' ' ' >"$dir/package"
    echo >>"$dir/package"
    mv "$dir/ntoskrnl.exe.new" "$dir/ntoskrnl.exe"
fi
(cd "$dir" && sha256sum ntoskrnl.exe >sha256)
log "$(cat "$dir/package" 2>/dev/null || true) sha256 $(cut -c1-16 "$dir/sha256")"
echo "$dir"

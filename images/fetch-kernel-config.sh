#!/usr/bin/env bash
# fetch-kernel-config.sh - the config of the kernel a Debian suite's linux-image-amd64
# points to, without touching the host's apt setup.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: fetch-kernel-config.sh [--refresh] [SUITE]

SUITE: bookworm, trixie, sid, ... (default: trixie). Runs apt-get update and
apt-get download against a private sources list for SUITE (its own lists and
cache under the cache folder: the host's /etc/apt, lists and archives stay
untouched), takes the config-<version> file out of the kernel package
(boot/ in 6.x packages, usr/lib/modules/<version>/ or boot/ in linux-binary-*
7.x packages) and keeps it as

  ${HVP_GUEST_DIR:-/var/lib/hvpatch-test}/kconfigs/SUITE/config-<version>

Idempotent: a config already fetched for SUITE is reused without network;
--refresh asks the archive again (a newer kernel's config is added beside it). Prints the config's path as the last line on stdout; progress goes to
stderr. Needs root the first time (apt-get download drops to _apt).

Used by the tests that compile patch objects for several kernels, with
images/kernel-cflags.sh turning the config into compiler flags.
USAGE
}

die() { echo "fetch-kernel-config.sh: error: $*" >&2; exit 1; }
log() { echo "fetch-kernel-config.sh: $*" >&2; }

suite=trixie refresh=0
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --refresh) refresh=1 ;;
        -*) die "unknown option $1 (try --help)" ;;
        *) suite=$1 ;;
    esac
    shift
done
case "$suite" in
    *[!a-z0-9-]*|'') die "bad suite name: $suite" ;;
esac

base=${HVP_GUEST_DIR:-/var/lib/hvpatch-test}/kconfigs/$suite
(umask 022 && mkdir -p "$base")
exec 9>"$base/.lock"
flock 9

cached=$(find "$base" -maxdepth 1 -name 'config-*' -type f 2>/dev/null | sort -V | tail -n1)
if [ "$refresh" = 0 ] && [ -n "$cached" ]; then
    echo "$cached"
    exit 0
fi

apt=$base/apt
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/sources.list.d"
cat >"$apt/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main
SRC
aptopts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=$apt/sources.list.d"
         -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache"
         -o "APT::Architectures=amd64" -o "Acquire::Languages=none")
log "apt-get update for $suite (private lists in $apt)"
apt-get "${aptopts[@]}" update >&2 || die "apt-get update for $suite failed"

# linux-image-amd64 -> linux-image-<version> (6.x) or linux-binary-<version> (7.x)
pkg=$(apt-cache "${aptopts[@]}" depends linux-image-amd64 2>/dev/null |
      awk '$1 == "Depends:" && $2 ~ /^linux-(image|binary)-[0-9]/ { print $2; exit }')
[ -n "$pkg" ] || die "linux-image-amd64 in $suite names no linux-image-<version> or linux-binary-<version>"
log "$suite: linux-image-amd64 -> $pkg"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
if getent passwd _apt >/dev/null; then chown _apt "$tmp" 2>/dev/null || true; fi
# 7.x: linux-image-<version> is a small package depending on linux-binary-<version> (the
# image) and linux-base-<version>; the config is in one of them.
cands=$pkg
for dep in $(apt-cache "${aptopts[@]}" depends "$pkg" 2>/dev/null |
             awk '$1 == "Depends:" && $2 ~ /^linux-(binary|base)-[0-9]/ { print $2 }'); do
    cands="$cands $dep"
done
cfg=
for p in $cands; do
    log "downloading $p"
    (cd "$tmp" && apt-get "${aptopts[@]}" download "$p" >&2) || die "apt-get download $p failed"
    mkdir -p "$tmp/x-$p"
    dpkg-deb -x "$tmp/$p"_*.deb "$tmp/x-$p" || die "dpkg-deb -x $p failed"
    rm -f "$tmp/$p"_*.deb
    cfg=$(find "$tmp/x-$p" \( -path "$tmp/x-$p/boot/config-*" -o -path "$tmp/x-$p/usr/lib/modules/*/config" \) \
          -type f | head -n1)
    [ -z "$cfg" ] || break
done
[ -n "$cfg" ] || die "none of $cands has boot/config-* or usr/lib/modules/*/config"
version=${pkg#linux-image-}
version=${version#linux-binary-}
grep -q '^CONFIG_X86_64=y' "$cfg" || die "$cfg is not an x86-64 kernel config"
install -m 644 "$cfg" "$base/config-$version"
echo "$base/config-$version"

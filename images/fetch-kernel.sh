#!/usr/bin/env bash
# fetch-kernel.sh - download and unpack Debian's current guest kernel.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: fetch-kernel.sh [--suite SUITE] [--dbg-map] [FLAVOUR]

Download the kernel that Debian's linux-image-[FLAVOUR-]amd64 meta package
currently points to (FLAVOUR: amd64 (default), cloud, rt) in SUITE, unpack it
and leave in ${HVP_GUEST_DIR:-/var/lib/hvpatch-test}/kernel-<version>/:

  --suite SUITE  bookworm (Debian 12, 6.1), trixie (Debian 13, 6.12), sid
                 (unstable, 7.x) or any other suite name of deb.debian.org;
                 default: the host's own (VERSION_CODENAME in /etc/os-release).
                 Another suite than the host's gets its own apt lists under
                 ${HVP_GUEST_DIR}/apt/SUITE/ (the host's apt is not touched);
                 they are refreshed when missing, older than a day, or when the
                 package they name is gone from the mirror.

  vmlinuz     the bzImage (EFI stub) to boot
  vmlinux     the decompressed kernel ELF taken from the bzImage payload
              (stripped: no symbols; Debian's payload is xz)
  vmlinux.relocs  the relocation table appended to vmlinux in the payload
  config      the kernel config
  System.map  as shipped in the package: for Debian this is a one-line
              placeholder; with --dbg-map it is replaced by the real map
              from linux-image-<version>-dbg (an ~850 MB download)
  version     the kernel release (uname -r)
  suite       the suite it came from

Since 7.x Debian splits the kernel: linux-image-<version> is empty and
linux-binary-<version> (vmlinuz) and linux-base-<version> (config, System.map)
hold the files under /usr/lib/modules/<version>/; both layouts are handled.

Idempotent: files already present are kept. The directory path is printed
on stdout as the last line; progress goes to stderr.
USAGE
}

die() { echo "fetch-kernel.sh: error: $*" >&2; exit 1; }
log() { echo "fetch-kernel.sh: $*" >&2; }

flavour=amd64 dbg_map=0 suite=
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --dbg-map) dbg_map=1 ;;
        --suite) [ $# -ge 2 ] || die "--suite needs a suite name"; suite=$2; shift ;;
        --suite=*) suite=${1#--suite=} ;;
        amd64|cloud|rt) flavour=$1 ;;
        *) die "unknown argument: $1 (try --help)" ;;
    esac
    shift
done
case "$flavour" in
    amd64) meta=linux-image-amd64 ;;
    *) meta=linux-image-$flavour-amd64 ;;
esac

host_suite=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
[ -n "$suite" ] || suite=$host_suite
[ -n "$suite" ] || die "cannot tell the host's suite (no VERSION_CODENAME in /etc/os-release): give --suite"
case "$suite" in
    *[!a-z0-9-]*) die "bad suite name '$suite' (letters, digits and '-' only)" ;;
esac
guest_dir=${HVP_GUEST_DIR:-/var/lib/hvpatch-test}

# --- apt for the suite: the host's own, or a private one ---------------------
apt_opts=()
if [ "$suite" != "$host_suite" ]; then
    adir=$guest_dir/apt/$suite
    mkdir -p "$adir/lists/partial" "$adir/cache/archives/partial"
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    [ -r "$keyring" ] || die "no $keyring (package debian-archive-keyring)"
    echo "deb [signed-by=$keyring] http://deb.debian.org/debian $suite main" >"$adir/sources.list"
    apt_opts=(-o "Dir::Etc::SourceList=$adir/sources.list" -o Dir::Etc::SourceParts=/dev/null
              -o "Dir::State::Lists=$adir/lists" -o "Dir::Cache=$adir/cache")
fi
apt_update() {
    [ "$(id -u)" -eq 0 ] || die "cannot update apt's lists for $suite (run as root)"
    log "apt-get update ($suite)"
    apt-get -q "${apt_opts[@]}" update >&2 || die "apt-get update for $suite failed"
    [ ${#apt_opts[@]} -eq 0 ] || touch "$adir/updated"
}
if [ ${#apt_opts[@]} -gt 0 ] && ! find "$adir/updated" -mmin -1440 2>/dev/null | grep -q .; then
    apt_update
fi

# --- which kernel package does the meta package point to? ---------------
target() { apt-cache "${apt_opts[@]}" depends "$meta" 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'; }
pkg=$(target || true)
if [ -z "$pkg" ]; then
    log "$meta unknown to apt-cache ($suite)"
    apt_update
    pkg=$(target || true)
    [ -n "$pkg" ] || die "apt-cache depends $meta gives no linux-image-<version> dependency in $suite"
fi
version=${pkg#linux-image-}
dir=${HVP_GUEST_DIR:-/var/lib/hvpatch-test}/kernel-$version
log "$suite: $meta -> $pkg ($dir)"
(umask 022 && mkdir -p "$dir")      # readable by QEMU (libvirt-qemu)
exec 9>"$dir/.lock"
flock 9    # concurrent runs (parallel tests) wait for the first one

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
if getent passwd _apt >/dev/null; then chown _apt "$tmp" 2>/dev/null || true; fi   # apt-get download drops to _apt

# apt-get download PKG into $tmp and unpack (only the paths given) into $tmp/x
fetch_deb() {
    local p=$1; shift
    log "downloading $p"
    if ! (cd "$tmp" && apt-get -q "${apt_opts[@]}" download "$p" >&2); then
        # The lists may name a version the mirror no longer has (sid moves fast).
        apt_update
        (cd "$tmp" && apt-get -q "${apt_opts[@]}" download "$p" >&2) || die "apt-get download $p ($suite) failed"
    fi
    mkdir -p "$tmp/x"
    if [ $# -eq 0 ]; then
        dpkg-deb -x "$tmp/$p"_*.deb "$tmp/x" || die "dpkg-deb -x failed"
    else
        dpkg-deb --fsys-tarfile "$tmp/$p"_*.deb | tar -x -C "$tmp/x" "$@" || die "extracting $* from $p failed"
    fi
}

# --- vmlinuz, System.map, config --------------------------------------------
if [ ! -s "$dir/vmlinuz" ] || [ ! -s "$dir/config" ] || [ ! -s "$dir/System.map" ]; then
    fetch_deb "$pkg"
    if [ -s "$tmp/x/boot/vmlinuz-$version" ]; then
        from=$tmp/x/boot name=-$version                  # one package, files in /boot
    else                                                 # 7.x: linux-binary + linux-base
        fetch_deb "linux-binary-$version"
        fetch_deb "linux-base-$version"
        from=$tmp/x/usr/lib/modules/$version name=
    fi
    for f in vmlinuz System.map config; do
        [ -s "$from/$f$name" ] || die "$pkg has no $f (looked in ${from#"$tmp/x"})"
        install -m 644 "$from/$f$name" "$dir/$f"
    done
    echo "$version" >"$dir/version"
fi
[ -s "$dir/version" ] || echo "$version" >"$dir/version"
echo "$suite" >"$dir/suite"

if [ "$dbg_map" = 1 ] && [ "$(wc -l <"$dir/System.map")" -le 1 ]; then
    fetch_deb "$pkg-dbg" "./usr/lib/debug/boot/System.map-$version"
    install -m 644 "$tmp/x/usr/lib/debug/boot/System.map-$version" "$dir/System.map"
fi
if [ "$(wc -l <"$dir/System.map")" -le 1 ]; then
    log "note: $dir/System.map is Debian's placeholder (use --dbg-map for the real one)"
fi

# --- vmlinux from the bzImage payload -------------------------------------
le() { od -An -t"u$2" -j "$1" -N "$2" "$3" | tr -d ' '; }   # little-endian uint at offset
if [ ! -s "$dir/vmlinux" ]; then
    z=$dir/vmlinuz
    [ "$(od -An -c -j 0x202 -N 4 "$z" | tr -d ' ')" = HdrS ] || die "$z: no bzImage setup header"
    setup_sects=$(le 0x1f1 1 "$z"); [ "$setup_sects" -ne 0 ] || setup_sects=4
    poff=$(le 0x248 4 "$z"); plen=$(le 0x24c 4 "$z")
    start=$(( (setup_sects + 1) * 512 + poff ))
    log "payload at $start, $plen bytes"
    dd if="$z" of="$tmp/payload" bs=64K iflag=skip_bytes,count_bytes skip="$start" count="$plen" status=none
    # The last 4 bytes are the decompressed size (appended by the kernel build;
    # for gzip they are the stream's own ISIZE field).
    size=$(le $((plen - 4)) 4 "$tmp/payload")
    magic=$(od -An -tx1 -N 6 "$tmp/payload" | tr -d ' ')
    case "$magic" in
        1f8b*)        fmt=gzip  cmd=(gzip -dc) ;;
        fd377a585a00) fmt=xz    cmd=(xz -dc --single-stream) ;;
        28b52ffd*)    fmt=zstd  cmd=(zstd -dcq) ;;
        425a68*)      fmt=bzip2 cmd=(bzip2 -dc) ;;
        02214c18*)    fmt=lz4   cmd=(lz4 -dc) ;;
        5d0000*)      fmt=lzma  cmd=(xz -dc --format=lzma) ;;
        *) die "$z: unknown payload compression (magic $magic)" ;;
    esac
    command -v "${cmd[0]}" >/dev/null || die "need ${cmd[0]} to decompress the $fmt payload"
    log "payload is $fmt, decompressed size $size"
    [ "$fmt" = gzip ] || truncate -s $((plen - 4)) "$tmp/payload"
    "${cmd[@]}" <"$tmp/payload" >"$tmp/vmlinux.all" || die "$fmt decompression failed"
    [ "$(stat -c %s "$tmp/vmlinux.all")" -eq "$size" ] || die "decompressed size differs from the size in the payload"
    [ "$(od -An -c -N 4 "$tmp/vmlinux.all" | tr -d ' ')" = '177ELF' ] || die "decompressed payload is not an ELF"
    # vmlinux.bin is followed by the relocation table (CONFIG_X86_NEED_RELOCS):
    # cut at the end of the ELF's section header table, which objcopy puts last.
    elf_end=$(( $(le 0x28 8 "$tmp/vmlinux.all") + $(le 0x3a 2 "$tmp/vmlinux.all") * $(le 0x3c 2 "$tmp/vmlinux.all") ))
    [ "$elf_end" -le "$size" ] || die "ELF header says the file ends at $elf_end, past $size"
    head -c "$elf_end" "$tmp/vmlinux.all" >"$tmp/vmlinux"
    tail -c +$((elf_end + 1)) "$tmp/vmlinux.all" >"$dir/vmlinux.relocs"
    chmod 644 "$tmp/vmlinux" "$dir/vmlinux.relocs"
    mv "$tmp/vmlinux" "$dir/vmlinux"
    echo "$fmt" >"$dir/compression"
fi

echo "$dir"

#!/usr/bin/env bash
# build-initramfs.sh - build the busybox initramfs of the hvpatch test guests.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: build-initramfs.sh [-o OUTPUT]

Build a busybox initramfs (cpio newc, gzip) for the test guests. Default
OUTPUT: ${HVP_GUEST_DIR:-/var/lib/hvpatch-test}/initramfs.cpio.gz. The path
is printed on stdout.

Guest side protocol:
  - /dev/ttyS0 (console): "HVP-READY" once /proc, /sys, /dev are mounted
    and the command channel is listening.
  - /dev/ttyS1 (raw, no echo): each non-empty line received is run with
    `sh -c` (stdin /dev/null, stdout+stderr to ttyS1), then
    "HVP-END <status>" is written on a line of its own.
USAGE
}

die() { echo "build-initramfs.sh: error: $*" >&2; exit 1; }

out=${HVP_GUEST_DIR:-/var/lib/hvpatch-test}/initramfs.cpio.gz
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        -o) [ $# -ge 2 ] || die "-o needs a path"; out=$2; shift ;;
        *) die "unknown argument: $1 (try --help)" ;;
    esac
    shift
done

busybox=/bin/busybox
[ -x "$busybox" ] || busybox=$(command -v busybox || true)
[ -n "$busybox" ] || die "busybox not found (apt-get install busybox-static)"
# The guest has no libraries: busybox must be static.
if ldd "$busybox" >/dev/null 2>&1; then die "$busybox is dynamically linked; install busybox-static"; fi
command -v cpio >/dev/null || die "cpio not found"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,root}
cp "$busybox" "$root/bin/busybox"
# /dev/console lets the kernel give /init its stdio (needs root; /init copes without).
mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || true

cat >"$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
# real addresses in /proc/kallsyms (root has CAP_SYSLOG anyway)
echo 0 >/proc/sys/kernel/kptr_restrict 2>/dev/null
cd /
# The command channel runs in a child of PID 1, never in PID 1 itself. Orphaned processes
# (anything a command leaves running in the background) are re-parented to PID 1, and
# their SIGCHLD, arriving while ash's `read` is part way through a line, makes ash start
# that line over: the bytes read so far are lost, and the rest runs as a command on its
# own (1 line in ~40 while background sleeps exited, on a TCG guest). PID 1 only reaps.
first=first
while :; do
    /bin/sh /bin/hvp-channel $first
    first=
    sleep 1
done
INIT
cat >"$root/bin/hvp-channel" <<'CHANNEL'
#!/bin/busybox sh
# hvp-channel [first] - the command channel on /dev/ttyS1 (see build-initramfs.sh --help).
# Returns when the tty cannot be opened or read; /init starts it again.
exec 3<>/dev/ttyS1 || exit 1
# raw: no echo, no CR/LF translation, no line length limit; clocal: ignore carrier
stty raw -echo clocal 115200 <&3
[ "$1" = first ] && echo HVP-READY >/dev/ttyS0
while IFS= read -r line <&3; do
    [ -n "$line" ] || continue      # hosts send a newline first to end any stale fragment
    sh -c "$line" </dev/null >&3 2>&1
    echo "HVP-END $?" >&3
done
CHANNEL
chmod 755 "$root/init" "$root/bin/hvp-channel"

(umask 022 && mkdir -p "$(dirname "$out")")
tmp_out=$(mktemp "$out.XXXXXX")
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -9n) >"$tmp_out" \
    || { rm -f "$tmp_out"; die "cpio/gzip failed"; }
chmod 644 "$tmp_out"
mv "$tmp_out" "$out"    # atomic: guests being started keep a whole file
echo "$out"

#!/usr/bin/env bash
# build-esp.sh - a small EFI system partition image that boots a Debian kernel through
# the signed chain real Gen2 guests use: Debian's shim (signed by Microsoft's UEFI CA),
# Debian's signed GRUB, the Debian-signed kernel and the test initramfs.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: build-esp.sh --kernel-dir DIR --initrd FILE -o IMAGE [--cmdline 'ARGS']

  Writes IMAGE: a FAT disk image (no partition table, as OVMF reads a whole-disk
  FAT volume) holding
    /EFI/BOOT/BOOTX64.EFI      shimx64.efi.signed   (package shim-signed)
    /EFI/BOOT/grubx64.efi      grubx64.efi.signed   (package grub-efi-amd64-signed)
    /EFI/BOOT/grub.cfg, /EFI/debian/grub.cfg        boot /vmlinuz at once
    /vmlinuz, /initrd.img      DIR/vmlinuz (Debian-signed) and FILE
  Under OVMF with Microsoft's keys enrolled (OVMF_CODE_4M.ms.fd + OVMF_VARS_4M.ms.fd)
  the firmware checks shim, shim checks GRUB, GRUB (through shim) checks the kernel:
  the guest kernel then records Secure Boot as enabled and locks itself down.

  The two signed packages are downloaded with `apt-get download` into
  ${HVP_GUEST_DIR:-/var/lib/hvpatch-test}/esp/ and unpacked there, never installed:
  their install scripts would try to set up the host's own boot loader.
  Needs mtools and dosfstools (images/setup-host.sh installs them).
  Default cmdline: "console=ttyS0 quiet no_timer_check".
USAGE
}

die() { echo "build-esp.sh: error: $*" >&2; exit 1; }

kdir='' initrd='' out='' cmdline='console=ttyS0 quiet no_timer_check'
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
    esac
    [ $# -ge 2 ] || die "$1 needs a value (try --help)"
    case "$1" in
        --kernel-dir) kdir=$2 ;;
        --initrd) initrd=$2 ;;
        -o) out=$2 ;;
        --cmdline) cmdline=$2 ;;
        *) die "unknown option $1 (try --help)" ;;
    esac
    shift 2
done
[ -n "$kdir" ] && [ -n "$initrd" ] && [ -n "$out" ] || { usage >&2; exit 2; }
[ -r "$kdir/vmlinuz" ] || die "no vmlinuz in '$kdir'"
[ -r "$initrd" ] || die "initramfs '$initrd' not readable"
[[ "$cmdline" != *$'\n'* && "$cmdline" != *'"'* ]] || die "--cmdline may not hold newlines or double quotes"
for t in mkfs.vfat mmd mcopy; do
    command -v "$t" >/dev/null || die "$t not found (apt-get install mtools dosfstools)"
done

cache=${HVP_GUEST_DIR:-/var/lib/hvpatch-test}/esp
mkdir -p "$cache/debs"
shim=$cache/root/usr/lib/shim/shimx64.efi.signed
grub=$cache/root/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed
if [ ! -s "$shim" ] || [ ! -s "$grub" ]; then
    echo "build-esp.sh: downloading shim-signed and grub-efi-amd64-signed (unpacked, not installed)" >&2
    # apt's _apt user drops privileges to download; give it a folder it may write
    dl=$(mktemp -d) && chmod 755 "$dl" && chown _apt: "$dl" 2>/dev/null || true
    (cd "$dl" && apt-get download -q shim-signed grub-efi-amd64-signed >/dev/null) \
        || die "apt-get download shim-signed grub-efi-amd64-signed failed"
    rm -rf "$cache/root.new" && mkdir "$cache/root.new"
    for deb in "$dl"/*.deb; do
        dpkg-deb -x "$deb" "$cache/root.new" || die "unpacking $deb failed"
        mv -f "$deb" "$cache/debs/"
    done
    rm -rf "$dl" "$cache/root" && mv "$cache/root.new" "$cache/root"
    [ -s "$shim" ] && [ -s "$grub" ] || die "the packages hold no $shim or $grub"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'set timeout=0\nlinux /vmlinuz %s\ninitrd /initrd.img\nboot\n' "$cmdline" >"$tmp/grub.cfg"
# room for the kernel, the initramfs and the boot files, plus a margin; in KiB
need=$(( ( $(stat -Lc %s "$kdir/vmlinuz") + $(stat -Lc %s "$initrd") + $(stat -Lc %s "$shim") \
          + $(stat -Lc %s "$grub") ) / 1024 + 8192 ))
rm -f "$tmp/esp.img"
mkfs.vfat -C -n HVPESP "$tmp/esp.img" "$need" >/dev/null || die "mkfs.vfat failed"
export MTOOLS_SKIP_CHECK=1
i=$tmp/esp.img
mmd -i "$i" ::/EFI ::/EFI/BOOT ::/EFI/debian
mcopy -i "$i" "$shim" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$i" "$grub" ::/EFI/BOOT/grubx64.efi
# GRUB's built-in prefix is /EFI/debian; loaded from /EFI/BOOT it may look beside itself
mcopy -i "$i" "$tmp/grub.cfg" ::/EFI/BOOT/grub.cfg
mcopy -i "$i" "$tmp/grub.cfg" ::/EFI/debian/grub.cfg
mcopy -i "$i" "$kdir/vmlinuz" ::/vmlinuz
mcopy -i "$i" "$initrd" ::/initrd.img
mv -f "$i" "$out"

#!/usr/bin/env bash
# guest.sh - create, use and destroy hvpatch test guests (libvirt, qemu:///system).
set -euo pipefail
shopt -u patsub_replacement 2>/dev/null || true   # bash 5.2: '&' literal in ${x//p/r}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
state_root=${HVP_GUEST_DIR:-/var/lib/hvpatch-test}
virsh=(virsh -q -c qemu:///system)

usage() {
    cat <<'USAGE'
Usage:
  guest.sh create NAME [--paging 4|5] [--kaslr on|off] [--memory MiB] [--vcpus N]
                       [--xml-extra FILE] [--kernel-dir DIR] [--timeout SEC]
      Define and start a UEFI (OVMF, q35) guest booting the Debian kernel
      directly with the busybox initramfs; wait for HVP-READY on its console.
      --paging 5 adds <cpu mode='maximum'/> (LA57); 4 (default) has no <cpu>.
      --kaslr off adds nokaslr. --xml-extra inserts FILE inside <devices>.
      Defaults: --paging 4 --kaslr on --memory 256 --vcpus 2 --timeout 120,
      --kernel-dir from fetch-kernel.sh (downloaded if needed).
  guest.sh destroy NAME      destroy + undefine --nvram, remove state (absent: ok)
  guest.sh run NAME 'CMD'    run CMD in the guest, print its output, exit with its status
                             (255: the command channel failed)
  guest.sh paths NAME        print the guest's state dir, console log and socket

State lives in ${HVP_GUEST_DIR:-/var/lib/hvpatch-test}/guests/NAME/
(console.log, cmd.sock, VARS.fd, domain.xml, boot-seconds).
USAGE
}

die() { echo "guest.sh: error: $*" >&2; exit 1; }
log() { echo "guest.sh: $*" >&2; }

check_name() {
    [[ "${1:-}" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || die "bad or missing guest NAME '${1:-}'"
}

domain_exists() { "${virsh[@]}" dominfo "$1" >/dev/null 2>&1; }

cmd_destroy() {
    local name=$1 keep_state=${2:-0}
    if domain_exists "$name"; then
        "${virsh[@]}" destroy "$name" >/dev/null 2>&1 || true     # fails if not running: fine
        "${virsh[@]}" undefine "$name" --nvram >/dev/null || die "virsh undefine $name failed"
        log "destroyed $name"
    fi
    [ "$keep_state" = 1 ] || rm -rf "${state_root:?}/guests/$name"
}

cmd_create() {
    local name=$1; shift
    local paging=4 kaslr=on memory=256 vcpus=2 extra='' kdir=${HVP_KERNEL_DIR:-} timeout=120
    while [ $# -gt 0 ]; do
        [ $# -ge 2 ] || die "$1 needs a value"
        case "$1" in
            --paging) paging=$2 ;;
            --kaslr) kaslr=$2 ;;
            --memory) memory=$2 ;;
            --vcpus) vcpus=$2 ;;
            --xml-extra) extra=$2 ;;
            --kernel-dir) kdir=$2 ;;
            --timeout) timeout=$2 ;;
            *) die "unknown option $1 (try --help)" ;;
        esac
        shift 2
    done
    [[ "$paging" =~ ^[45]$ ]] || die "--paging must be 4 or 5"
    [[ "$kaslr" =~ ^(on|off)$ ]] || die "--kaslr must be on or off"
    [[ "$memory" =~ ^[0-9]+$ && "$vcpus" =~ ^[0-9]+$ && "$timeout" =~ ^[0-9]+$ ]] \
        || die "--memory, --vcpus and --timeout take integers"
    [ -z "$extra" ] || [ -r "$extra" ] || die "--xml-extra file '$extra' not readable"
    domain_exists "$name" && die "domain $name already exists (guest.sh destroy $name)"

    [ -n "$kdir" ] || kdir=$("$here/fetch-kernel.sh" | tail -n 1)
    [ -r "$kdir/vmlinuz" ] || die "no vmlinuz in '$kdir'"
    local initrd=$state_root/initramfs.cpio.gz
    [ -s "$initrd" ] && [ "$initrd" -nt "$here/build-initramfs.sh" ] \
        || "$here/build-initramfs.sh" -o "$initrd" >/dev/null
    local loader=/usr/share/OVMF/OVMF_CODE_4M.fd vars=/usr/share/OVMF/OVMF_VARS_4M.fd
    [ -r "$loader" ] && [ -r "$vars" ] || die "OVMF firmware missing ($loader; apt-get install ovmf)"

    # QEMU runs as libvirt-qemu: it must be able to create the socket, log and nvram here.
    local st=$state_root/guests/$name qemu_user=libvirt-qemu
    id "$qemu_user" >/dev/null 2>&1 || qemu_user=root
    rm -rf "$st"
    (umask 022 && mkdir -p "$state_root/guests")   # new folders only: others' modes are theirs
    mkdir "$st"
    chown "$qemu_user:" "$st"
    chmod 770 "$st"

    local type=qemu cmdline="console=ttyS0 quiet" cpu=""
    [ -e /dev/kvm ] && type=kvm
    [ "$kaslr" = off ] && cmdline+=" nokaslr"
    [ "$paging" = 5 ] && cpu="  <cpu mode='maximum'/>"
    local xml
    xml=$(<"$here/domain.xml.in")
    xml=${xml//@NAME@/$name};       xml=${xml//@TYPE@/$type}
    xml=${xml//@MEMORY@/$memory};   xml=${xml//@VCPUS@/$vcpus}
    xml=${xml//@LOADER@/$loader};   xml=${xml//@VARS_TEMPLATE@/$vars}
    xml=${xml//@STATE@/$st};        xml=${xml//@KERNEL@/$kdir/vmlinuz}
    xml=${xml//@INITRD@/$initrd};   xml=${xml//@CMDLINE@/$cmdline}
    xml=${xml//@CPU@/$cpu}
    if [ -n "$extra" ]; then xml=${xml//@EXTRA@/$(<"$extra")}; else xml=${xml//@EXTRA@/}; fi
    printf '%s\n' "$xml" >"$st/domain.xml"

    "${virsh[@]}" define "$st/domain.xml" >/dev/null || die "virsh define failed ($st/domain.xml)"
    local t0=$EPOCHREALTIME
    if ! "${virsh[@]}" start "$name" >/dev/null; then
        cmd_destroy "$name" 1
        die "virsh start $name failed (XML: $st/domain.xml; log: /var/log/libvirt/qemu/$name.log)"
    fi
    local deadline=$((SECONDS + timeout)) i=0
    until grep -qa HVP-READY "$st/console.log" 2>/dev/null; do
        if ((SECONDS >= deadline)) || { ((++i % 10 == 0)) && [ "$("${virsh[@]}" domstate "$name" 2>/dev/null)" != running ]; }; then
            local why="no HVP-READY within ${timeout}s"
            ((SECONDS >= deadline)) || why="domain is $("${virsh[@]}" domstate "$name" 2>/dev/null || echo gone)"
            {
                echo "guest.sh: error: $name: $why; last console lines ($st/console.log):"
                # drop OVMF's terminal escapes; show the kernel's last words
                sed 's/\x1b\[[0-9;=?]*[A-Za-z]//g' "$st/console.log" 2>/dev/null | tail -n 30 | sed 's/^/  | /'
                [ -s "$st/console.log" ] || echo "  (console log is empty)"
                echo "  (QEMU's own log: /var/log/libvirt/qemu/$name.log)"
            } >&2
            cmd_destroy "$name" 1
            exit 1
        fi
        sleep 0.2
    done
    local secs
    secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
    echo "$secs" >"$st/boot-seconds"
    log "$name ready in ${secs}s (type=$type, paging=$paging, kaslr=$kaslr)"
}

cmd_run() {
    local name=$1; shift
    [ $# -eq 1 ] || die "usage: guest.sh run NAME 'CMD'"
    local lib=$here/../tests/live/guestlib.py
    [ -r "$lib" ] || die "$lib not found"
    exec python3 "$lib" run "$name" "$1"
}

[ $# -ge 1 ] || { usage >&2; exit 2; }
sub=$1; shift
case "$sub" in
    -h|--help|help) usage; exit 0 ;;
    create|destroy|run|paths) ;;
    *) die "unknown command '$sub' (try --help)" ;;
esac
check_name "${1:-}"
name=$1; shift
case "$sub" in
    create) [ "$(id -u)" -eq 0 ] || die "create must run as root"; cmd_create "$name" "$@" ;;
    destroy) [ $# -eq 0 ] || die "destroy takes only NAME"; cmd_destroy "$name" ;;
    run) cmd_run "$name" "$@" ;;
    paths) st=$state_root/guests/$name; printf '%s\n' "$st" "$st/console.log" "$st/cmd.sock" ;;
esac

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
                       [--xml-extra FILE] [--kernel-dir DIR] [--timeout SEC] [--patch-area]
                       [--boot direct|esp] [--secure-boot on|off]
      Define and start a UEFI (OVMF, q35) guest booting the Debian kernel
      directly with the busybox initramfs; wait for HVP-READY on its console.
      --boot esp boots it the way installed Gen2 guests do instead: OVMF's Secure
      Boot build (SMM, OVMF_CODE_4M.ms.fd) starts Debian's signed shim and GRUB from
      a small EFI system partition (images/build-esp.sh), GRUB the signed kernel.
      --secure-boot on|off (implies --boot esp unless --boot direct is given, default
      off): the firmware's variables with Microsoft's keys enrolled and Secure Boot on
      (OVMF_VARS_4M.ms.fd), or none. With --boot direct, QEMU still loads the kernel
      under that firmware (which starts it unverified: docs/policy.md).
      An esp guest gets 512 MiB unless --memory says otherwise (GRUB could not
      place the kernel in 256).
      --paging 5 gives the guest LA57 (<cpu mode='maximum'/> under TCG,
      'host-passthrough' under KVM); 4 (default) has no <cpu>.
      --kaslr off adds nokaslr. --xml-extra inserts FILE inside <devices>
      (@UUID@ in it becomes the domain's UUID, e.g. <shmem name='hvpatch-area-@UUID@'>).
      --patch-area gives the domain its own read-only patch area before its first
      boot (`hvpatch area add`; $HVPATCH, default build/cli/hvpatch, with
      $HVPATCH_STATE_DIR): kernels without slack after _etext (6.12) need it for
      redirects. destroy removes it (`hvpatch area remove`).
      Defaults: --paging 4 --kaslr on --memory 256 --vcpus 2 --timeout 120,
      --kernel-dir from fetch-kernel.sh (downloaded if needed).
  guest.sh accel [--paging 4|5]
      Print the accelerator a guest would get and why: "kvm|tcg<TAB>REASON"
      (probes KVM if that was not done yet).
  guest.sh destroy NAME      destroy + undefine --nvram, remove state (absent: ok)
  guest.sh run NAME 'CMD'    run CMD in the guest, print its output, exit with its status
                             (255: the command channel failed)
  guest.sh paths NAME        print the guest's state dir, console log and socket

Accelerator (environment):
  HVP_ACCEL=auto (default)   KVM only if a KVM guest has really booted on this host:
                             without /dev/kvm TCG at once; otherwise one probe boot of a
                             small guest under type='kvm' (HVP_KVM_PROBE_TIMEOUT, 60 s),
                             its verdict and reason cached in STATE/kvm-probe and probed
                             again when QEMU's version, the host kernel or the device
                             changes. A 5-level guest runs under TCG without la57 in
                             /proc/cpuinfo. A guest that fails under KVM is retried once
                             under TCG (and the verdict dropped: the next guest probes).
                             Every choice is logged with its reason.
  HVP_ACCEL=kvm              KVM or an error saying why not (exit 1).
  HVP_ACCEL=tcg              TCG (type='qemu').   Anything else: exit 2.
  HVP_KVM_DEVICE, HVP_CPUINFO  test hooks: the device checked instead of /dev/kvm,
                             the file searched for la57 instead of /proc/cpuinfo.
  HVP_ACCEL_LOG              file each create appends "NAME ACCEL PAGING SECONDS REASON"
                             to (tab-separated; default STATE/accel.log).

STATE is ${HVP_GUEST_DIR:-/var/lib/hvpatch-test}; per guest STATE/guests/NAME/
(console.log, cmd.sock, VARS.fd, domain.xml, boot-seconds, accel).
USAGE
}

die() { echo "guest.sh: error: $*" >&2; exit 1; }
log() { echo "guest.sh: $*" >&2; }

check_name() {
    [[ "${1:-}" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || die "bad or missing guest NAME '${1:-}'"
}

domain_exists() { "${virsh[@]}" dominfo "$1" >/dev/null 2>&1; }

hvpatch_bin() { echo "${HVPATCH:-$here/../build/cli/hvpatch}"; }

cmd_destroy() {
    local name=$1 keep_state=${2:-0}
    if domain_exists "$name"; then
        local uuid
        uuid=$("${virsh[@]}" domuuid "$name" 2>/dev/null || true)
        "${virsh[@]}" destroy "$name" >/dev/null 2>&1 || true     # fails if not running: fine
        # its read-only patch area (guest.sh create --patch-area): the file goes with it
        if "${virsh[@]}" dumpxml --inactive "$name" 2>/dev/null | grep -q 'hvpatch-area' &&
           [ -x "$(hvpatch_bin)" ]; then
            "$(hvpatch_bin)" area remove "$name" >/dev/null 2>&1 || log "warning: hvpatch area remove $name failed"
        fi
        "${virsh[@]}" undefine "$name" --nvram >/dev/null || die "virsh undefine $name failed"
        # a per-domain patch-area shmem (<shmem name='hvpatch-area-UUID'>) outlives the domain
        [[ "$uuid" =~ ^[0-9a-f-]{36}$ ]] && rm -f "/dev/shm/hvpatch-area-$uuid"
        log "destroyed $name"
    fi
    [ "$keep_state" = 1 ] || rm -rf "${state_root:?}/guests/$name"
}

# ---- accelerator: HVP_ACCEL=auto|kvm|tcg ------------------------------------------------
# auto uses KVM only when a KVM guest has really booted on this host: one probe boot, its
# verdict cached in $accel_cache and keyed by QEMU's version, the host kernel and the device.
accel_mode=${HVP_ACCEL:-auto}
kvm_dev=${HVP_KVM_DEVICE:-/dev/kvm}          # test hook: the device whose presence is checked
cpuinfo=${HVP_CPUINFO:-/proc/cpuinfo}        # test hook: where la57 is looked for
probe_timeout=${HVP_KVM_PROBE_TIMEOUT:-60}
accel_cache=$state_root/kvm-probe
accel_log=${HVP_ACCEL_LOG:-$state_root/accel.log}
patch_area=0                                 # create --patch-area
boot_mode='' secure_boot=''                  # create --boot, --secure-boot

check_accel_mode() {
    case "$accel_mode" in
        auto|kvm|tcg) ;;
        *) echo "guest.sh: usage error: HVP_ACCEL must be auto, kvm or tcg (not '$accel_mode')" >&2; exit 2 ;;
    esac
    [[ "$probe_timeout" =~ ^[1-9][0-9]*$ ]] || die "HVP_KVM_PROBE_TIMEOUT must be a positive integer"
}

# One line, at most 300 characters, control characters and runs of blanks squeezed;
# virsh's "error: Failed to start domain X" lines dropped (the next line says why).
one_line() {
    grep -avE '^error: Failed to (define|start) domain' | sed 's/^error: //' \
        | tr -s '\n\r\t ' '    ' | sed 's/^ //; s/ $//' | cut -c1-300
}

# The first line of QEMU's log for NAME, since its last start, that says what went wrong
# (e.g. "KVM internal error. Suberror: 1", "error: failed to set MSR 0x10a"); empty if none.
qemu_log_reason() {
    local f=/var/log/libvirt/qemu/$1.log
    [ -r "$f" ] || return 0
    awk '/^[0-9-]+ [0-9:.+]+: starting up /{ n = 0 } { line[++n] = $0 }
         END { for (i = 1; i <= n; i++) print line[i] }' "$f" 2>/dev/null \
        | grep -avE '^(LC_ALL=|[0-9-]+ [0-9:.+]+: )' \
        | grep -aiE 'error|fail|abort|assert|emulation' | head -n 1 \
        | sed -E 's/^[0-9-]+T[0-9:.]+Z //' | one_line
}

probe_key() {
    local q dev
    q=$(qemu-system-x86_64 --version 2>/dev/null | head -n 1) || true
    dev=$(stat -Lc '%F %t:%T' "$kvm_dev" 2>/dev/null) || dev=absent
    printf 'qemu=%s; kernel=%s %s; device=%s (%s)' "${q:-none}" "$(uname -r)" "$(uname -v)" "$kvm_dev" "$dev"
}

cache_field() { sed -n "s/^$1=//p" "$accel_cache" 2>/dev/null | head -n 1; }

# Sets kvm_ok (1: a KVM guest boots here) and kvm_reason. Probes at most once per cache key.
kvm_verdict() {
    kvm_ok=0
    if [ ! -e "$kvm_dev" ]; then
        kvm_reason="no $kvm_dev"
        return 0
    fi
    local key lockfd
    key=$(probe_key)
    mkdir -p "$state_root"
    exec {lockfd}>"$accel_cache.lock"
    flock -w $((probe_timeout + 120)) "$lockfd" || die "cannot lock $accel_cache.lock (another probe hangs?)"
    if [ -s "$accel_cache" ] && [ "$(cache_field key)" = "$key" ]; then
        kvm_reason=$(cache_field reason)
        [ "$(cache_field verdict)" = kvm ] && kvm_ok=1
        log "KVM verdict from $accel_cache (probed $(cache_field probed)): $(cache_field verdict): $kvm_reason"
    else
        [ "$(id -u)" -eq 0 ] || die "probing KVM needs root"
        # A failure of libvirt itself says nothing about KVM: no verdict is cached then.
        "${virsh[@]}" version >/dev/null 2>&1 || die "libvirt (qemu:///system) does not answer: cannot probe KVM"
        local probe=hvp-kvmprobe-$$ verdict=tcg
        # shellcheck disable=SC2064  # $probe is fixed now
        trap "cmd_destroy '$probe' >/dev/null 2>&1" EXIT     # also when cut short
        log "probing KVM: booting $probe under type='kvm' (at most ${probe_timeout}s; $kvm_dev exists)"
        if boot_guest "$probe" kvm 4 on 256 1 '' "$probe_timeout" quiet; then
            verdict=kvm kvm_ok=1
            kvm_reason="a KVM test guest booted to HVP-READY in $(<"$state_root/guests/$probe/boot-seconds")s"
        else
            kvm_reason="a KVM test guest did not boot: $boot_err"
        fi
        cmd_destroy "$probe" >/dev/null 2>&1 || true
        trap - EXIT
        printf 'key=%s\nverdict=%s\nreason=%s\nprobed=%s\n' "$key" "$verdict" "$kvm_reason" \
            "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$accel_cache.tmp"
        mv -f "$accel_cache.tmp" "$accel_cache"
        log "KVM probe: $verdict: $kvm_reason (cached in $accel_cache)"
    fi
    exec {lockfd}>&-
}

# Sets accel (kvm or tcg) and accel_why for a guest of the given paging; dies for HVP_ACCEL=kvm
# on a host that cannot.
choose_accel() {
    local paging=$1
    if [ "$accel_mode" = tcg ]; then
        accel=tcg accel_why="HVP_ACCEL=tcg"
        return 0
    fi
    kvm_verdict
    if [ "$kvm_ok" != 1 ]; then
        [ "$accel_mode" = auto ] || die "HVP_ACCEL=kvm, but KVM cannot run guests here: $kvm_reason"
        accel=tcg accel_why="KVM not usable: $kvm_reason"
    elif [ "$paging" = 5 ] && ! grep -qw la57 "$cpuinfo" 2>/dev/null; then
        local why="a 5-level guest needs LA57 under KVM and the host CPU has no la57 ($cpuinfo)"
        [ "$accel_mode" = auto ] || die "HVP_ACCEL=kvm, but $why"
        accel=tcg accel_why=$why
    else
        accel=kvm accel_why="KVM works here: $kvm_reason"
    fi
}

# Kernel, initramfs and firmware for the guests: sets kdir, initrd, loader, vars.
prepare_assets() {
    [ -n "$kdir" ] || kdir=$("$here/fetch-kernel.sh" | tail -n 1)
    [ -r "$kdir/vmlinuz" ] || die "no vmlinuz in '$kdir'"
    initrd=$state_root/initramfs.cpio.gz
    [ -s "$initrd" ] && [ "$initrd" -nt "$here/build-initramfs.sh" ] \
        || "$here/build-initramfs.sh" -o "$initrd" >/dev/null
    loader=/usr/share/OVMF/OVMF_CODE_4M.fd vars=/usr/share/OVMF/OVMF_VARS_4M.fd
    if secure_firmware; then
        # the Secure Boot build (it needs SMM); its variables decide whether Secure Boot is on
        loader=/usr/share/OVMF/OVMF_CODE_4M.ms.fd
        if [ "$secure_boot" = on ]; then vars=/usr/share/OVMF/OVMF_VARS_4M.ms.fd; fi
    fi
    [ -r "$loader" ] && [ -r "$vars" ] || die "OVMF firmware missing ($loader, $vars; apt-get install ovmf)"
}

# OVMF's Secure Boot build: for the signed chain, or when --secure-boot was asked for.
secure_firmware() { [ "$boot_mode" = esp ] || [ -n "$secure_boot" ]; }

# The <os> boot lines, features, disk and loader mode for the boot mode: sets osboot, smm,
# disk, secure. An esp guest gets its own copy of the partition (QEMU locks the file).
boot_parts() {
    local st=$1 cmdline=$2
    if [ "$boot_mode" != esp ]; then
        osboot="    <kernel>$kdir/vmlinuz</kernel>
    <initrd>$initrd</initrd>
    <cmdline>$cmdline</cmdline>"
        smm='' disk='' secure=no
        if secure_firmware; then smm="<smm state='on'/>" secure=yes; fi
        return 0
    fi
    "$here/build-esp.sh" --kernel-dir "$kdir" --initrd "$initrd" --cmdline "$cmdline" -o "$st/esp.img" \
        || return 1
    chown "$qemu_user:" "$st/esp.img"
    osboot="    <boot dev='hd'/>" smm="<smm state='on'/>" secure=yes
    disk="    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='$st/esp.img'/>
      <target dev='sda' bus='sata'/>
    </disk>"
}

# boot_guest NAME kvm|tcg PAGING KASLR MEMORY VCPUS EXTRA TIMEOUT [quiet]
# Define, start and wait for HVP-READY. On failure: the domain is destroyed (its state
# folder kept), boot_err holds one line saying why, and 1 is returned; unless quiet, the
# console's last lines go to stderr.
boot_guest() {
    local name=$1 accel=$2 paging=$3 kaslr=$4 memory=$5 vcpus=$6 extra=$7 timeout=$8 quiet=${9:-}
    # QEMU runs as libvirt-qemu: it must be able to create the socket, log and nvram here.
    local st=$state_root/guests/$name
    qemu_user=libvirt-qemu
    id "$qemu_user" >/dev/null 2>&1 || qemu_user=root
    rm -rf "$st"
    (umask 022 && mkdir -p "$state_root/guests")   # new folders only: others' modes are theirs
    mkdir "$st"
    chown "$qemu_user:" "$st"
    chmod 770 "$st"

    # no_timer_check: a vCPU starved by a loaded host (TCG) failed the kernel's IO-APIC timer
    # check ("IO-APIC + timer doesn't work!", a panic); the timer works, the check is timing.
    local type=qemu cmdline="console=ttyS0 quiet no_timer_check" cpu=""
    [ "$accel" = kvm ] && type=kvm
    [ "$kaslr" = off ] && cmdline+=" nokaslr"
    # 5-level: the guest needs LA57. Under KVM host-passthrough (what real hosts run; LA57
    # comes from the host CPU, checked by choose_accel); TCG has no host CPU to pass through.
    if [ "$paging" = 5 ]; then
        if [ "$type" = kvm ]; then cpu="  <cpu mode='host-passthrough'/>"; else cpu="  <cpu mode='maximum'/>"; fi
    fi
    local osboot smm disk secure
    if ! boot_parts "$st" "$cmdline"; then
        boot_err="building the EFI system partition failed"
        return 1
    fi
    # The UUID is chosen here so that --xml-extra can name per-domain objects (@UUID@).
    local xml uuid
    uuid=$(</proc/sys/kernel/random/uuid)
    xml=$(<"$here/domain.xml.in")
    xml=${xml//@NAME@/$name};       xml=${xml//@TYPE@/$type}
    xml=${xml//@UUID@/$uuid}
    xml=${xml//@MEMORY@/$memory};   xml=${xml//@VCPUS@/$vcpus}
    xml=${xml//@LOADER@/$loader};   xml=${xml//@VARS_TEMPLATE@/$vars}
    xml=${xml//@STATE@/$st};        xml=${xml//@OSBOOT@/$osboot}
    xml=${xml//@SMM@/$smm};         xml=${xml//@DISK@/$disk}
    xml=${xml//@SECURE@/$secure};   xml=${xml//@CPU@/$cpu}
    if [ -n "$extra" ]; then
        local extra_xml
        extra_xml=$(<"$extra")
        xml=${xml//@EXTRA@/${extra_xml//@UUID@/$uuid}}
    else
        xml=${xml//@EXTRA@/}
    fi
    printf '%s\n' "$xml" >"$st/domain.xml"

    local err
    if ! err=$("${virsh[@]}" define "$st/domain.xml" 2>&1 >/dev/null); then
        boot_err="virsh define failed: $(one_line <<<"$err")"
        [ -n "$quiet" ] || log "error: $name: $boot_err ($st/domain.xml)"
        return 1
    fi
    if [ "$patch_area" = 1 ] && ! err=$("$(hvpatch_bin)" area add "$name" 2>&1 >/dev/null); then
        boot_err="hvpatch area add failed: $(one_line <<<"$err")"
        [ -n "$quiet" ] || log "error: $name: $boot_err"
        cmd_destroy "$name" 1 >/dev/null
        return 1
    fi
    local t0=$EPOCHREALTIME
    if ! err=$("${virsh[@]}" start "$name" 2>&1 >/dev/null); then
        boot_err="virsh start failed: $(one_line <<<"$err")"
        [ -n "$quiet" ] || log "error: $name: $boot_err (XML: $st/domain.xml; log: /var/log/libvirt/qemu/$name.log)"
        cmd_destroy "$name" 1 >/dev/null
        return 1
    fi
    local deadline=$((SECONDS + timeout)) i=0 state
    until grep -qa HVP-READY "$st/console.log" 2>/dev/null; do
        state=running
        if ((SECONDS < deadline && ++i % 10 == 0)); then     # every 2 s: still running?
            state=$("${virsh[@]}" domstate "$name" 2>/dev/null | head -n 1)
        fi
        if ((SECONDS >= deadline)) || [ "$state" != running ]; then
            local why="no HVP-READY within ${timeout}s" q
            ((SECONDS >= deadline)) || why="domain is ${state:-gone} before HVP-READY"
            q=$(qemu_log_reason "$name")
            boot_err="$why${q:+; QEMU: $q}"
            if [ -z "$quiet" ]; then
                {
                    echo "guest.sh: error: $name (type=$type): $boot_err; last console lines ($st/console.log):"
                    # drop OVMF's terminal escapes; show the kernel's last words
                    sed 's/\x1b\[[0-9;=?]*[A-Za-z]//g' "$st/console.log" 2>/dev/null | tail -n 30 | sed 's/^/  | /'
                    [ -s "$st/console.log" ] || echo "  (console log is empty)"
                    echo "  (QEMU's own log: /var/log/libvirt/qemu/$name.log)"
                } >&2
            fi
            cmd_destroy "$name" 1 >/dev/null
            return 1
        fi
        sleep 0.2
    done
    awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f\n", b - a }' >"$st/boot-seconds"
}

cmd_accel() {
    local paging=4
    while [ $# -gt 0 ]; do
        [ $# -ge 2 ] || die "$1 needs a value"
        case "$1" in
            --paging) paging=$2 ;;
            *) die "unknown option $1 (try --help)" ;;
        esac
        shift 2
    done
    [[ "$paging" =~ ^[45]$ ]] || die "--paging must be 4 or 5"
    if [ "$accel_mode" != tcg ] && [ -e "$kvm_dev" ]; then
        kdir=${HVP_KERNEL_DIR:-}
        prepare_assets
    fi
    choose_accel "$paging"
    printf '%s\t%s\n' "$accel" "$accel_why"
}

cmd_create() {
    local name=$1; shift
    local paging=4 kaslr=on memory=256 vcpus=2 extra='' timeout=120 memory_set=0
    kdir=${HVP_KERNEL_DIR:-}
    patch_area=0
    while [ $# -gt 0 ]; do
        if [ "$1" = --patch-area ]; then
            patch_area=1; shift; continue
        fi
        [ $# -ge 2 ] || die "$1 needs a value"
        case "$1" in
            --paging) paging=$2 ;;
            --kaslr) kaslr=$2 ;;
            --memory) memory=$2; memory_set=1 ;;
            --vcpus) vcpus=$2 ;;
            --xml-extra) extra=$2 ;;
            --kernel-dir) kdir=$2 ;;
            --timeout) timeout=$2 ;;
            --boot) boot_mode=$2 ;;
            --secure-boot) secure_boot=$2 ;;
            *) die "unknown option $1 (try --help)" ;;
        esac
        shift 2
    done
    [[ "$paging" =~ ^[45]$ ]] || die "--paging must be 4 or 5"
    [[ "$kaslr" =~ ^(on|off)$ ]] || die "--kaslr must be on or off"
    if [ -z "$boot_mode" ]; then
        boot_mode=direct
        [ -z "$secure_boot" ] || boot_mode=esp
    fi
    [[ "$boot_mode" =~ ^(direct|esp)$ ]] || die "--boot must be direct or esp"
    [[ "$secure_boot" =~ ^(on|off|)$ ]] || die "--secure-boot must be on or off"
    [ "$boot_mode" = direct ] || [ "$memory_set" = 1 ] || memory=512
    [[ "$memory" =~ ^[0-9]+$ && "$vcpus" =~ ^[0-9]+$ && "$timeout" =~ ^[0-9]+$ ]] \
        || die "--memory, --vcpus and --timeout take integers"
    [ -z "$extra" ] || [ -r "$extra" ] || die "--xml-extra file '$extra' not readable"
    domain_exists "$name" && die "domain $name already exists (guest.sh destroy $name)"
    [ "$patch_area" = 0 ] || [ -x "$(hvpatch_bin)" ] || die "--patch-area needs hvpatch: $(hvpatch_bin) (set HVPATCH)"
    prepare_assets

    choose_accel "$paging"
    log "$name: accelerator $accel ($accel_why)"
    local st=$state_root/guests/$name
    if ! boot_guest "$name" "$accel" "$paging" "$kaslr" "$memory" "$vcpus" "$extra" "$timeout"; then
        if [ "$accel" != kvm ] || [ "$accel_mode" != auto ]; then
            die "$name did not boot under $accel: $boot_err"
        fi
        log "$name failed under KVM ($boot_err); retrying once under TCG (HVP_ACCEL=auto)"
        # KVM may have stopped working since the probe: the next guest probes again.
        if [ -e "$accel_cache" ]; then
            rm -f "$accel_cache"
            log "dropped the cached KVM verdict ($accel_cache): the next guest probes again"
        fi
        accel=tcg accel_why="retried under TCG after KVM failed: $boot_err"
        boot_guest "$name" tcg "$paging" "$kaslr" "$memory" "$vcpus" "$extra" "$timeout" \
            || die "$name did not boot under TCG either: $boot_err"
    fi
    local secs
    secs=$(<"$st/boot-seconds")
    printf 'accel=%s\nreason=%s\n' "$accel" "$accel_why" >"$st/accel"
    # The run's record of guests and accelerators (scripts/test.sh prints it at its end).
    { mkdir -p "$(dirname "$accel_log")" && printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$accel" \
        "$paging" "$secs" "$accel_why" >>"$accel_log"; } 2>/dev/null \
        || log "warning: cannot append to $accel_log"
    local how="boot=$boot_mode"
    [ -z "$secure_boot" ] || how+=", secure boot $secure_boot"
    log "$name ready in ${secs}s (accelerator=$accel, paging=$paging, kaslr=$kaslr, $how)"
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
    accel) check_accel_mode; cmd_accel "$@"; exit 0 ;;
    *) die "unknown command '$sub' (try --help)" ;;
esac
check_name "${1:-}"
name=$1; shift
case "$sub" in
    create) check_accel_mode; [ "$(id -u)" -eq 0 ] || die "create must run as root"; cmd_create "$name" "$@" ;;
    destroy) [ $# -eq 0 ] || die "destroy takes only NAME"; cmd_destroy "$name" ;;
    run) cmd_run "$name" "$@" ;;
    paths) st=$state_root/guests/$name; printf '%s\n' "$st" "$st/console.log" "$st/cmd.sock" ;;
esac

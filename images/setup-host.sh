#!/usr/bin/env bash
# setup-host.sh - install the host packages hvpatch needs and start libvirt.
# Idempotent; run as root on Debian 12. See images/README.md.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: setup-host.sh [--help]

As root: install (with apt-get) the packages needed to build hvpatch and to
run its test guests, then make sure libvirtd and virtlogd are running and
answer on qemu:///system. apt is skipped entirely when every package is
already installed, so reruns are fast.

Environment: HVP_LIBVIRT_WAIT  seconds to wait for libvirtd (default 30)
USAGE
}

case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    "") ;;
    *) echo "setup-host.sh: unknown argument: $1 (try --help)" >&2; exit 2 ;;
esac

die() { echo "setup-host.sh: error: $*" >&2; exit 1; }
log() { echo "setup-host.sh: $*" >&2; }

[ "$(id -u)" -eq 0 ] || die "must run as root"

PACKAGES=(
    build-essential cmake pkg-config clang
    libvirt-dev libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients
    qemu-system-x86 qemu-utils ovmf
    libcapstone-dev libcmocka-dev libxml2-dev libxml2-utils libsodium-dev libjson-c-dev libsystemd-dev
    zlib1g-dev   # gzip'd kernel configs (hvpatch pack --kernel-config /proc/config.gz copies)
    libbpf-dev  # BTF parsing (vmi/btf.c: the guest kernel's own BTF from its memory)
    busybox-static cpio minisign xz-utils zstd python3
    lz4     # the cloud kernel flavour's payload is lz4 (fetch-kernel.sh cloud)
    mtools dosfstools   # the EFI system partition of Secure Boot test guests (build-esp.sh)
    prometheus  # promtool only (hvpatchd's metrics in the tests); its server is disabled below
    chromium    # hvpatch report --html is checked in a real headless browser (test_report.py)
    cockpit-ws cockpit-bridge   # the Cockpit page (cockpit/, test_cockpit.py); its socket is disabled below
    ansible openssh-server  # the hvpatch.hvpatch collection over real SSH (ansible/, test_ansible.py)
    python3-jsonschema  # the tests validate every --json document against docs/schemas/
)

# test_cockpit.py drives the page with playwright-core, which needs Node.js: Debian's
# when the host has none (a host with another Node.js, e.g. nodesource's, keeps it)
command -v node >/dev/null && command -v npm >/dev/null || PACKAGES+=(nodejs npm)

# --- packages -------------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$st" = installed ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
    log "all ${#PACKAGES[@]} packages already installed"
else
    log "missing packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Update the package lists once: try installing first, update only on failure
    # or when the lists have never been fetched.
    if ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; then
        apt-get update || die "apt-get update failed"
        apt-get install -y "${missing[@]}" || die "apt-get install failed"
    elif ! apt-get install -y "${missing[@]}"; then
        log "install failed with current lists; running apt-get update once and retrying"
        apt-get update || die "apt-get update failed"
        apt-get install -y "${missing[@]}" || die "apt-get install failed"
    fi
fi

# Debian's prometheus package is installed for promtool: the server it enables would
# listen on :9090 for nothing. Stopped and disabled (idempotent; no systemd: nothing started it).
if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] && command -v systemctl >/dev/null &&
    systemctl is-enabled --quiet prometheus 2>/dev/null; then
    systemctl disable --now prometheus || log "could not disable prometheus.service"
fi

# cockpit-ws is installed for test_cockpit.py, which starts its own cockpit-ws: the socket
# the package enables would serve :9090 for nothing. Disabled like prometheus above.
if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] && command -v systemctl >/dev/null &&
    systemctl is-enabled --quiet cockpit.socket 2>/dev/null; then
    systemctl disable --now cockpit.socket || log "could not disable cockpit.socket"
fi

# openssh-server is installed for sshd's binary: test_ansible.py starts its own sshd on
# loopback. A host that had no ssh server before does not get one listening on :22 from
# this script (disabled only when this run installed it: an existing sshd is the host's).
if [[ " ${missing[*]} " == *" openssh-server "* ]] && [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] &&
    command -v systemctl >/dev/null; then
    systemctl disable --now ssh.service ssh.socket 2>/dev/null || log "could not disable ssh.service"
fi

# --- libvirt daemons -------------------------------------------------------
# is a process with this command name running? (/proc only: a minimal Debian has no procps)
running() {
    local f comm
    for f in /proc/[0-9]*/comm; do
        read -r comm 2>/dev/null <"$f" && [ "$comm" = "$1" ] && return 0
    done
    return 1
}
if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] && command -v systemctl >/dev/null; then
    for u in virtlogd libvirtd; do
        systemctl is-active --quiet "$u" || systemctl start "$u" || die "systemctl start $u failed"
    done
else
    running virtlogd || virtlogd -d || die "could not start virtlogd"
    running libvirtd || libvirtd -d || die "could not start libvirtd"
fi

wait_s=${HVP_LIBVIRT_WAIT:-30}
for ((i = 0; i < wait_s * 2; i++)); do
    if virsh -c qemu:///system version >/dev/null 2>&1; then
        log "libvirt is up: $(virsh -c qemu:///system version 2>/dev/null | grep -i 'running hypervisor' || true)"
        exit 0
    fi
    sleep 0.5
done
virsh -c qemu:///system version >&2 || true
die "libvirtd did not answer on qemu:///system within ${wait_s}s (is it running? see /var/log/libvirt/)"

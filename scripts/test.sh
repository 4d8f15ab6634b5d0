#!/usr/bin/env bash
# test.sh - the whole test suite, from a fresh Debian 12 machine, as root:
# host packages and libvirt (images/setup-host.sh), the build with -Werror,
# Debian's real kernel as a fixture (images/fetch-kernel.sh), then every test
# through CTest: unit (cmocka), fuzz corpus replays, and live tests that boot
# real UEFI guests under libvirt. Then the unit tests again under ASan+UBSan.
#
# Usage: scripts/test.sh [-L LABEL] [CTEST-ARGS...]   e.g. -L unit to skip guests
# Env:   HVP_ACCEL  auto (default): guests use KVM only if a KVM guest really boots on
#                   this host (images/guest.sh probes once and caches the verdict), else
#                   TCG; kvm: KVM or an error; tcg: TCG. At the end a summary lists every
#                   guest booted in this run and the accelerator it ran under.
#        HVP_BUILD  build folder (default build/);  HVP_SKIP_SANITIZERS=1: no ASan run
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${HVP_BUILD:-$top/build}
log() { echo "test.sh: $*" >&2; }

case "${1:-}" in
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
case "${HVP_ACCEL:=auto}" in
    auto|kvm|tcg) export HVP_ACCEL ;;
    *) log "usage error: HVP_ACCEL must be auto, kvm or tcg (not '$HVP_ACCEL')"; exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || { log "must run as root (it installs packages and starts libvirt)"; exit 1; }

# Every guest booted in this run (images/guest.sh appends NAME ACCEL PAGING SECONDS REASON).
runs=${HVP_GUEST_DIR:-/var/lib/hvpatch-test}/runs
mkdir -p "$runs"
HVP_ACCEL_LOG=$runs/test-$(date -u +%Y%m%dT%H%M%SZ)-$$.accel
export HVP_ACCEL_LOG
: >"$HVP_ACCEL_LOG"
accel_summary() {
    local n
    n=$(wc -l <"$HVP_ACCEL_LOG")
    [ "$n" -gt 0 ] || { log "guests booted in this run: none"; return 0; }
    log "guests booted in this run: $n ($(cut -f2 "$HVP_ACCEL_LOG" | sort | uniq -c \
        | awk '{ printf "%s%s under %s", sep, $1, $2; sep = ", " }'))"
    awk -F'\t' '{ printf "  %-28s %s  %s-level  %6ss  %s\n", $1, $2, $3, $4, $5 }' "$HVP_ACCEL_LOG" >&2
    log "(list: $HVP_ACCEL_LOG)"
}

"$top/images/setup-host.sh"

log "building in $build"
# The tests run under Debian's python3 (python3-jsonschema), not one first in PATH.
py=()
[ -x /usr/bin/python3 ] && py=(-DPython3_EXECUTABLE=/usr/bin/python3)
cmake -S "$top" -B "$build" -DHVP_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo "${py[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)"

# The kernel the unit tests decode and the guests boot: Debian's own (the host's suite),
# and the newer suites' for tests/live/test_kernels.py and test-kallsyms-SUITE.
HVP_KERNEL_DIR=$("$top/images/fetch-kernel.sh" | tail -n 1)
export HVP_KERNEL_DIR
log "kernel fixture: $HVP_KERNEL_DIR"
for suite in trixie sid; do
    var=HVP_KERNEL_DIR_${suite^^}
    dir=$("$top/images/fetch-kernel.sh" --suite "$suite" | tail -n 1)
    export "$var=$dir"
    log "kernel fixture ($suite): $dir"
done
# The accelerator the guests will get (HVP_ACCEL=kvm on a host that cannot: stop here).
for paging in 4 5; do
    choice=$("$top/images/guest.sh" accel --paging "$paging") || { log "HVP_ACCEL=$HVP_ACCEL: no accelerator"; exit 1; }
    log "accelerator for $paging-level guests: ${choice%%$'\t'*} (${choice#*$'\t'}); HVP_ACCEL=$HVP_ACCEL"
done
# Real PE32+ images (wine's ntoskrnl.exe) for the PE parser's tests.
HVP_PE_DIR=$("$top/images/fetch-pe-fixtures.sh" | tail -n 1)
export HVP_PE_DIR
log "PE fixtures: $HVP_PE_DIR"
# The kallsyms tests' oracle: each kernel's own /proc/kallsyms (boots a guest once, cached).
for dir in "$HVP_KERNEL_DIR" "$HVP_KERNEL_DIR_TRIXIE" "$HVP_KERNEL_DIR_SID"; do
    "$top/images/capture-kallsyms.sh" "$dir" >/dev/null
done

status=0
(cd "$build" && ctest --output-on-failure --timeout 1800 "$@") || status=$?

if [ "$status" -eq 0 ] && [ "${HVP_SKIP_SANITIZERS:-0}" != 1 ]; then
    log "unit and fuzz-replay tests under AddressSanitizer + UBSan"
    san=$build-asan
    cmake -S "$top" -B "$san" -DHVP_WERROR=ON -DCMAKE_BUILD_TYPE=ASan "${py[@]}" >/dev/null
    cmake --build "$san" -j"$(nproc)"
    (cd "$san" && ctest --output-on-failure -L 'unit|fuzz') || status=$?
fi
accel_summary
exit "$status"

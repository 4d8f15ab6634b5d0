#!/usr/bin/env bash
# demo.sh - hvpatch end to end on a fresh Debian 12 machine, as root:
# host packages and libvirt, the build, a UEFI test guest (5-level paging, KASLR),
# a demo hotpatch signed with minisign and authorized by a policy, applied while
# the guest runs, checked from inside the guest, reverted. The guest is destroyed
# at the end and on any failure; the exit status is non-zero on any failure.
#
# Usage: scripts/demo.sh [--suite SUITE]
#        --suite  the Debian suite whose kernel the guest boots: bookworm (12, 6.1),
#                 trixie (13, 6.12), sid (7.x); default the host's (images/fetch-kernel.sh)
# Env:   HVP_DEMO_GUEST  guest name (default hvp-demo)
#        HVP_DEMO_DIR    demo state folder, emptied first (default /var/lib/hvpatch-demo):
#                        keys, bundle, policy, and hvpatch's own state (HVPATCH_STATE_DIR)
#        HVP_BUILD       build folder (default build/ in the source tree)
#        HVP_ACCEL       auto (default): KVM only if a KVM guest really boots on this host
#                        (probed once, cached), else TCG; kvm: KVM or an error; tcg: TCG.
#                        The accelerator the guest ran under, and why, is printed.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
guest=${HVP_DEMO_GUEST:-hvp-demo}
demo=${HVP_DEMO_DIR:-/var/lib/hvpatch-demo}
build=${HVP_BUILD:-$top/build}
hvpatch=$build/cli/hvpatch
virsh=(virsh -q -c qemu:///system)
created=0
accel=''

case "${1:-}" in
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
suite=
while [ $# -gt 0 ]; do
    case "$1" in
        --suite) [ $# -ge 2 ] || { echo "demo.sh: --suite needs a suite name" >&2; exit 2; }
                 suite=$2; shift 2 ;;
        --suite=*) suite=${1#--suite=}; shift ;;
        *) echo "demo.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
done

section() { printf '\n==== %s ====\n' "$*"; }
# Show a command (quoted as a shell would need it), then run it.
show() { printf '$'; printf ' %q' "$@"; printf '\n'; }
run() { show "$@"; "$@"; }
# The same with the output kept in a log, shown only if the command fails.
run_logged() {
    local log=$1; shift
    show "$@"
    "$@" >"$log" 2>&1 || { tail -n 40 "$log" >&2; return 1; }
}
die() { echo "demo.sh: FAILED: $*" >&2; exit 1; }

finish() {
    local rc=$?
    trap - EXIT INT TERM
    if [ "$created" = 1 ]; then
        section "Cleaning up: destroying the guest $guest"
        "$top/images/guest.sh" destroy "$guest" || rc=1
    fi
    if [ "$rc" -eq 0 ]; then
        section "Demo passed${accel:+ (the guest ran under $accel)}"
    else
        echo >&2
        echo "demo.sh: the demo FAILED (exit $rc); see the output above" >&2
    fi
    exit "$rc"
}
case "${HVP_ACCEL:=auto}" in
    auto|kvm|tcg) export HVP_ACCEL ;;
    *) echo "demo.sh: usage error: HVP_ACCEL must be auto, kvm or tcg (not '$HVP_ACCEL')" >&2; exit 2 ;;
esac
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages, starts libvirt and boots a guest)"
[[ "$guest" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || die "bad guest name '$guest'"

section "1. Host: packages and libvirt (images/setup-host.sh)"
run "$top/images/setup-host.sh"
if "${virsh[@]}" dominfo "$guest" >/dev/null 2>&1; then
    die "a domain named $guest exists already; not touching it (remove it: images/guest.sh destroy $guest)"
fi

section "2. Build (cmake, RelWithDebInfo)"
buildlog=$(mktemp /tmp/hvpatch-demo-build.XXXXXX)
run_logged "$buildlog" cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
run_logged "$buildlog" make -C "$build" -j"$(nproc)" hvpatch
rm -f "$buildlog"
[ -x "$hvpatch" ] || die "no $hvpatch after the build"
run "$hvpatch" --version

section "3. A UEFI test guest: $guest (5-level paging, KASLR, its own read-only patch area) booting Debian's ${suite:-default} kernel"
rm -rf "${demo:?}"
mkdir -p "$demo"
chmod 711 "$demo"                           # QEMU opens the patch area under state/areas
export HVPATCH_STATE_DIR=$demo/state        # hvpatch's records, journals and locks for this demo
kdir=$("$top/images/fetch-kernel.sh" ${suite:+--suite "$suite"} | tail -n 1)
echo "kernel: $(cat "$kdir/version") ($(cat "$kdir/suite" 2>/dev/null || echo "${suite:-host}")): $kdir"
created=1
run env HVPATCH="$hvpatch" "$top/images/guest.sh" create "$guest" --paging 5 --kaslr on --kernel-dir "$kdir" --patch-area
# Which accelerator the guest runs under (HVP_ACCEL), and why: guest.sh's record of it.
accel_file=$("$top/images/guest.sh" paths "$guest" | head -n 1)/accel
accel=$(sed -n 's/^accel=//p' "$accel_file")
[[ "$accel" =~ ^(kvm|tcg)$ ]] || die "no accelerator recorded in $accel_file"
echo "accelerator: $accel ($(sed -n 's/^reason=//p' "$accel_file")); HVP_ACCEL=$HVP_ACCEL"

section "4. What runs in the guest, read from the host: hvpatch inspect"
run "$hvpatch" inspect "$guest"
build_id=$("$hvpatch" --json inspect "$guest" | python3 -c 'import json,sys; print(json.load(sys.stdin)["kernel"]["build_id"])')
[[ "$build_id" =~ ^[0-9a-f]{16,128}$ ]] || die "no build id from hvpatch inspect"
echo "running kernel build id: $build_id"

section "5. The demo hotpatch for this build (images/demo/build-demo.sh)"
run env HVPATCH="$hvpatch" "$top/images/demo/build-demo.sh" --build-id "$build_id" --config "$kdir/config" -o "$demo/bundle"
bundle=$demo/bundle/demo-version.hvp

section "6. A signing key (minisign, no password) and the signature"
run minisign -G -W -p "$demo/demo.pub" -s "$demo/demo.key" </dev/null
run minisign -S -s "$demo/demo.key" -m "$bundle" -t "hvpatch demo: /proc/version marker for $build_id" </dev/null
run cat "$bundle.minisig"

section "7. The policy: trust this key for the demo series, on this guest, now"
policy=$demo/policy.xml
cat >"$policy" <<EOF
<?xml version="1.0"?>
<!-- hvpatch demo policy (docs/policy.md) -->
<policy version="1">
  <key name="demo">
    <public-key-file>demo.pub</public-key-file>
    <may-sign series="demo-*"/>
  </key>
  <group name="demo">
    <select name="$guest"/>
    <require uefi="yes"/>
    <window/>                                <!-- any day, any time -->
    <baseline name="demo-baseline" current="yes">
      <kernel build-id="$build_id" description="the kernel $guest runs"/>
    </baseline>
  </group>
</policy>
EOF
run cat "$policy"
run "$hvpatch" verify --policy "$policy" "$bundle"

guest_view() {
    echo "(the guest's own view, through the test command channel of images/guest.sh run;"
    echo " that channel exists only to show what the guest sees: hvpatch itself needs no agent in the guest)"
    run "$top/images/guest.sh" run "$guest" 'cat /proc/version'
}

section "8. Inside the guest, before: /proc/version"
before=$(guest_view)
printf '%s\n' "$before"
[[ "$before" != *"[hvpatch: hotpatched]"* ]] || die "the marker is there before the patch"

section "9. Dry run: hvpatch check"
run "$hvpatch" --policy "$policy" check "$guest" "$bundle"

section "10. Apply while the guest runs: hvpatch apply (verify, authorize, plan, pause, write, resume)"
run "$hvpatch" --policy "$policy" apply "$guest" "$bundle"

section "11. Inside the guest, after apply: /proc/version"
after=$(guest_view)
printf '%s\n' "$after"
[[ "$after" == *"[hvpatch: hotpatched]"* ]] || die "the marker is not in /proc/version after apply"

section "12. hvpatch status (memory compared, compliance under the policy)"
run "$hvpatch" --policy "$policy" status "$guest"

section "13. Revert: hvpatch revert"
run "$hvpatch" revert "$guest" demo-version-1

section "14. Inside the guest, after revert: /proc/version"
reverted=$(guest_view)
printf '%s\n' "$reverted"
[[ "$reverted" != *"[hvpatch: hotpatched]"* ]] || die "the marker is still there after revert"
[ "$(tail -n 1 <<<"$reverted")" = "$(tail -n 1 <<<"$before")" ] || die "/proc/version differs from before the patch"
run "$hvpatch" --policy "$policy" status "$guest"

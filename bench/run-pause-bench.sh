#!/usr/bin/env bash
# run-pause-bench.sh - the pause-window benchmark on a fresh 2-vCPU test guest.
#
#   bench/run-pause-bench.sh [-n ROUNDS] [--paging 4|5] [--baseline HVPATCH] [--keep] [BUILD_DIR]
#
# Boots a UEFI TCG guest (images/guest.sh, 2 vCPUs, KASLR, with the patch-area device:
# reverted code is retired, so the rounds after the slack fills go there), builds the
# redirect demo bundle for its kernel, and runs BUILD_DIR/bench/bench-pause: ROUNDS (default 30)
# interleaved rounds of a QMP stop+cont pair (through libvirt's passthrough: libvirt
# owns QEMU's QMP socket) and an hvpatch apply and revert of the one-site redirect.
# --baseline adds an apply and a revert with another hvpatch binary (an older build)
# to every round. Prints every sample and the medians; docs/benchmarks.md ("Pause
# window") holds the figures of a run. Needs root.
# Env: HVP_KERNEL_DIR, HVPATCH (default BUILD_DIR/cli/hvpatch).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
rounds=30 paging=4 keep=0 build=$repo/build baseline=()
while [ $# -gt 0 ]; do
    case $1 in
        -n) rounds=$2; shift 2 ;;
        --paging) paging=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        --baseline) baseline=(-B "$2"); shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        -*) echo "run-pause-bench.sh: unknown option $1" >&2; exit 2 ;;
        *) build=$(cd "$1" && pwd); shift ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "run-pause-bench.sh: needs root" >&2; exit 1; }
export HVPATCH=${HVPATCH:-$build/cli/hvpatch}
bench=$build/bench/bench-pause
[ -x "$HVPATCH" ] && [ -x "$bench" ] || { echo "run-pause-bench.sh: build hvpatch and bench-pause in $build" >&2; exit 1; }

name=hvp-tp-bench-$$
work=$(mktemp -d /tmp/hvp-pause-bench.XXXXXX)
export HVPATCH_STATE_DIR=$work/state
cleanup() {
    [ "$keep" = 1 ] || "$repo/images/guest.sh" destroy "$name" || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Reverted code stays in its area (retired) until the guest boots again: the slack holds
# a few rounds, the patch-area device the rest (apply's --area auto).
echo "<shmem name='hvpatch-area-@UUID@'><model type='ivshmem-plain'/><size unit='M'>2</size></shmem>" >"$work/shmem.xml"
"$repo/images/guest.sh" create "$name" --paging "$paging" --vcpus 2 --xml-extra "$work/shmem.xml"
build_id=$("$HVPATCH" --json inspect "$name" | python3 -c 'import json, sys; print(json.load(sys.stdin)["kernel"]["build_id"])')
"$repo/images/demo/build-demo.sh" --build-id "$build_id" -o "$work" >/dev/null
echo "host: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(virsh -q -c qemu:///system list | wc -l) running domains"
echo "guest: $name, $paging-level paging, 2 vCPUs, TCG; $("$HVPATCH" --version)"
"$bench" -n "$rounds" "${baseline[@]}" "$name" "$work/demo-version.hvp" demo-version-1 2> >(grep -v 'insecure-unsigned' >&2)

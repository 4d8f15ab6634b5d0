#!/usr/bin/env bash
# run-revert-soak.sh - the revert-under-load soak (issue 13) on a fresh test guest.
#
#   bench/run-revert-soak.sh [-n CYCLES] [--json FILE] [BUILD_DIR]
#
# Runs tests/live/test_revert_load.py's cycles test with HVP_REVERT_SOAK=1 and
# CYCLES (default 1000) cycles: a 4-level KASLR UEFI guest (2 vCPUs, TCG, with the
# patch-area device) runs busy loops on every vCPU reading /proc/loadavg and
# /proc/cmdline, while each cycle applies a redirect of loadavg_proc_show, replaces
# it by a newer sequence of its series (cumulative: the old code is retired), reverts
# that, then applies and reverts a replace site of cmdline_proc_show. At the end the
# guest's console must show no Oops/BUG and its taint must be 0. Prints the figures
# (cycles, oopses, seconds, ms per cycle, pause window median and max) that
# docs/benchmarks.md ("Revert under load") holds; --json writes them to FILE.
# Needs root. Env: HVP_KERNEL_DIR, HVPATCH (default BUILD_DIR/cli/hvpatch).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
cycles=1000 build=$repo/build json=
while [ $# -gt 0 ]; do
    case $1 in
        -n) cycles=$2; shift 2 ;;
        --json) json=$2; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        -*) echo "run-revert-soak.sh: unknown option $1" >&2; exit 2 ;;
        *) build=$(cd "$1" && pwd); shift ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "run-revert-soak.sh: needs root" >&2; exit 1; }
export HVPATCH=${HVPATCH:-$build/cli/hvpatch}
[ -x "$HVPATCH" ] || { echo "run-revert-soak.sh: build hvpatch in $build" >&2; exit 1; }
echo "host: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(virsh -q -c qemu:///system list | wc -l) running domains"
echo "hvpatch: $("$HVPATCH" version 2>/dev/null || true); $cycles soak cycles"
HVP_REVERT_SOAK=1 HVP_REVERT_CYCLES=$cycles HVP_REVERT_JSON=$json \
    python3 "$repo/tests/live/test_revert_load.py" RevertUnderLoad.test_2_cycles_under_load

#!/usr/bin/env bash
# run-live-benches.sh - boot a throwaway guest, run the live benchmarks on it, destroy it.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: bench/run-live-benches.sh [--paging 4|5] [--build DIR]

As root: boot a UEFI test guest (images/guest.sh create, KASLR on; default
--paging 5), run the live benchmarks against it and print their figures:
  bench-inspect DOMAIN      inspect end to end in-process (open + attach), 20 runs
  bench-translate DOMAIN    uncached vs cached translations over 1,000+ kernel
                            addresses; hvp_mmu_read of 16 MiB vs memcpy
then destroy the guest (also on failure or ^C). The benchmarks come from
--build DIR (default: build/, or $HVP_BUILD), built if missing.
Environment: HVP_KERNEL_DIR (skip the kernel fetch), HVP_GUEST_DIR (guest state).
USAGE
}

die() { echo "run-live-benches.sh: error: $*" >&2; exit 1; }
log() { echo "run-live-benches.sh: $*" >&2; }

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${HVP_BUILD:-$top/build}
paging=5
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --paging) [ $# -ge 2 ] || die "--paging needs 4 or 5"; paging=$2; shift ;;
        --build) [ $# -ge 2 ] || die "--build needs a folder"; build=$2; shift ;;
        *) die "unknown argument $1 (try --help)" ;;
    esac
    shift
done
[[ "$paging" =~ ^[45]$ ]] || die "--paging must be 4 or 5"
[ "$(id -u)" -eq 0 ] || die "must run as root (it boots a guest under qemu:///system)"

# The benchmarks that take a DOMAIN, in the order they run.
benches=(bench-inspect bench-translate)
if ! for b in "${benches[@]}"; do [ -x "$build/bench/$b" ] || exit 1; done; then
    log "building ${benches[*]} in $build"
    [ -f "$build/CMakeCache.txt" ] || cmake -S "$top" -B "$build" >/dev/null
    make -C "$build" -j2 "${benches[@]}" >/dev/null
fi

name=hvp-bench-$$
trap '"$top/images/guest.sh" destroy "$name" >/dev/null 2>&1 || true' EXIT
trap 'exit 130' INT TERM
"$top/images/guest.sh" create "$name" --paging "$paging" >&2
sleep 5         # let the guest settle after HVP-READY (its init still runs briefly)

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(uname -n): $(nproc) CPUs, guest $name ($paging-level paging," \
     "$(virsh -q -c qemu:///system dumpxml "$name" | sed -n "s/.*<domain type='\([a-z]*\)'.*/\1/p"))"
for b in "${benches[@]}"; do
    echo "## $b $name"
    "$build/bench/$b" "$name" || die "$b $name failed"
done

#!/usr/bin/env bash
# run-report-bench.sh - how `hvpatch report` scales: N guests against 1.
#
#   bench/run-report-bench.sh [-n GUESTS] [-r ROUNDS] [--keep] [BUILD_DIR]
#
# Boots GUESTS (default 8) UEFI test guests at once (images/guest.sh, 4-level paging,
# KASLR, TCG unless HVP_ACCEL says otherwise), then, ROUNDS times (default 5),
# interleaved: `hvpatch report --json` over one of them, and over all of them with
# --parallel 1, 4 and GUESTS. Prints every sample, the medians and the ratios
# (N guests / 1 guest); docs/benchmarks.md ("Compliance report") holds the figures of
# a run. Then the HTML page of all of them goes through a real headless Chromium: the
# counts it shows are checked and a screenshot is kept in $HVP_ARTIFACT_DIR (default
# BUILD_DIR/test-artifacts/report-GUESTS.png). Every guest is read in full (open,
# attach: kallsyms, hvp_op_state), as status reads it; no policy, so every guest is
# "unmanaged". Needs root.
# Env: HVP_KERNEL_DIR, HVPATCH (default BUILD_DIR/cli/hvpatch).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
guests=8 rounds=5 keep=0 build=$repo/build
while [ $# -gt 0 ]; do
    case $1 in
        -n) guests=$2; shift 2 ;;
        -r) rounds=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        -*) echo "run-report-bench.sh: unknown option $1" >&2; exit 2 ;;
        *) build=$(cd "$1" && pwd); shift ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "run-report-bench.sh: needs root" >&2; exit 1; }
export HVPATCH=${HVPATCH:-$build/cli/hvpatch}
[ -x "$HVPATCH" ] || { echo "run-report-bench.sh: build hvpatch in $build" >&2; exit 1; }

prefix=hvp-rep-bench-$$
work=$(mktemp -d /tmp/hvp-report-bench.XXXXXX)
export HVPATCH_STATE_DIR=$work/state
mkdir -m 0700 "$HVPATCH_STATE_DIR"
names=()
for i in $(seq -w 1 "$guests"); do names+=("$prefix-$i"); done
cleanup() {
    if [ "$keep" != 1 ]; then
        for n in "${names[@]}"; do "$repo/images/guest.sh" destroy "$n" >/dev/null 2>&1 || true; done
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t0=$(date +%s)
pids=()
for n in "${names[@]}"; do
    "$repo/images/guest.sh" create "$n" --paging 4 --kaslr on --timeout 600 >"$work/$n.log" 2>&1 &
    pids+=($!)
done
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { cat "$work/${names[$i]}.log" >&2; echo "run-report-bench.sh: ${names[$i]} did not boot" >&2; exit 1; }
done
echo "booted $guests guests in $(( $(date +%s) - t0 )) s"
echo "host: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(virsh -q -c qemu:///system list | wc -l) running domains"
echo "hvpatch: $("$HVPATCH" --version)"

# one sample: wall seconds of one report, checked to have read every guest it names
sample() {     # LABEL EXPECTED-ROWS ARGS...
    local label=$1 want=$2; shift 2
    local s e
    s=$(date +%s.%N)
    "$HVPATCH" --json report "$@" >"$work/out.json" || [ $? -eq 0 ]
    e=$(date +%s.%N)
    python3 - "$work/out.json" "$want" <<'PY' || exit 1
import json, sys
doc = json.load(open(sys.argv[1]))
rows = doc["domains"]
bad = [r for r in rows if r["verdict"] == "error"]
if len(rows) != int(sys.argv[2]) or bad:
    sys.exit(f"report read {len(rows)} rows, {len(bad)} errors: {bad[:1]}")
PY
    echo "$label $(echo "$e - $s" | bc)" | tee -a "$work/samples"
}

for r in $(seq "$rounds"); do
    sample one 1 --domains "${names[0]}"
    sample all-p1 "$guests" --domains "$prefix-*" --parallel 1
    sample all-p4 "$guests" --domains "$prefix-*" --parallel 4
    sample "all-p$guests" "$guests" --domains "$prefix-*" --parallel "$guests"
done

# The page of the N guests in a real headless Chromium: the counts as the page shows them
# after its script ran, and a screenshot kept beside the live test's.
artifacts=${HVP_ARTIFACT_DIR:-$build/test-artifacts}
mkdir -p "$artifacts"
"$HVPATCH" report --domains "$prefix-*" --html "$artifacts/report-$guests.html" >/dev/null || true
if command -v chromium >/dev/null; then
    chrome=(chromium --headless --no-sandbox --disable-gpu --no-first-run --hide-scrollbars
            --user-data-dir="$work/chromium" --run-all-compositor-stages-before-draw --virtual-time-budget=3000)
    "${chrome[@]}" --dump-dom "file://$artifacts/report-$guests.html" 2>/dev/null >"$work/dom.html"
    python3 - "$work/dom.html" "$guests" <<'PY' || exit 1
import re, sys
dom = open(sys.argv[1]).read()
shown = re.search(r'id="count-unmanaged">(\d+)<', dom)
recount = re.search(r'class="rc" data-verdict="unmanaged">unmanaged=(\d+)<', dom)
if not shown or not recount or int(shown.group(1)) != int(sys.argv[2]) or int(recount.group(1)) != int(sys.argv[2]):
    sys.exit(f"the page does not show {sys.argv[2]} unmanaged guests")
print(f"chromium: the page shows {shown.group(1)} unmanaged guests (its script recounted {recount.group(1)})")
PY
    "${chrome[@]}" --window-size=1400,$((420 + 90 * guests)) --screenshot="$artifacts/report-$guests.png" \
        "file://$artifacts/report-$guests.html" >/dev/null 2>&1
    echo "screenshot: $artifacts/report-$guests.png"
else
    echo "chromium not found: no screenshot (images/setup-host.sh installs it)"
fi

python3 - "$work/samples" "$guests" <<'PY'
import statistics, sys
s = {}
for line in open(sys.argv[1]):
    k, v = line.split()
    s.setdefault(k, []).append(float(v))
n = sys.argv[2]
med = {k: statistics.median(v) for k, v in s.items()}
print(f"medians over {len(s['one'])} rounds (s):", ", ".join(f"{k} {v:.3f}" for k, v in med.items()))
for k in med:
    if k != "one":
        print(f"ratio {k} ({n} guests) / one (1 guest): {med[k] / med['one']:.2f}")
PY

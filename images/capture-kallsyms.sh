#!/usr/bin/env bash
# capture-kallsyms.sh - record a kernel's own /proc/kallsyms, as offsets from _text.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: capture-kallsyms.sh [KERNEL_DIR]

Boot a throwaway guest of the kernel in KERNEL_DIR (default: $HVP_KERNEL_DIR,
else what images/fetch-kernel.sh prints), read the guest's /proc/kallsyms,
and save its core-kernel lines (no [module] column), in the guest's order, as
KERNEL_DIR/kallsyms-offsets.txt; then destroy the guest. As root.

File format: lines starting with '#' are comments (provenance: release, GNU
build id, symbol count); every other line is
    printf "%x %c %s\n" OFFSET TYPE NAME
where OFFSET is the symbol's address minus the address of _text in the same
guest (so it holds for any KASLR base), except for type 'A' lines (per-cpu
symbols, absolute values that KASLR does not move): their first field is the
value itself. The script checks that every other symbol lies at or above
_text and every 'A' value below it, so the two never mix.

Idempotent: when the file exists and is not empty nothing is done. The path
of the file is printed on stdout; progress goes to stderr.
USAGE
}

die() { echo "capture-kallsyms.sh: error: $*" >&2; exit 1; }
log() { echo "capture-kallsyms.sh: $*" >&2; }

case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option $1 (try --help)" ;;
esac
[ $# -le 1 ] || die "too many arguments (try --help)"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
kdir=${1:-${HVP_KERNEL_DIR:-}}
[ -n "$kdir" ] || kdir=$("$here/fetch-kernel.sh" | tail -n 1)
[ -r "$kdir/vmlinuz" ] && [ -s "$kdir/version" ] || die "'$kdir' is not a kernel directory of fetch-kernel.sh"
out=$kdir/kallsyms-offsets.txt

exec 9>"$kdir/.capture-lock"
flock 9         # a concurrent run captures; this one then finds the file
if [ -s "$out" ]; then
    log "$out present"
    echo "$out"
    exit 0
fi
[ "$(id -u)" -eq 0 ] || die "must run as root (it boots a guest under qemu:///system)"

name=hvp-kallsyms-capture-$$
cleanup() { "$here/guest.sh" destroy "$name" >/dev/null 2>&1 || true; rm -f "$out.tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

log "booting $name from $kdir"
"$here/guest.sh" create "$name" --kernel-dir "$kdir" --paging 4 >&2

python3 - "$here/../tests/live" "$name" "$kdir" "$out.tmp" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import guestlib

name, kdir, path = sys.argv[2:5]
g = guestlib.Guest(name)
want = open(f"{kdir}/version").read().strip()
release = g.uname_r()
if release != want:
    sys.exit(f"capture-kallsyms.sh: error: guest runs {release}, {kdir}/version says {want}")
build_id = g.build_id()
syms = [(a, t, n) for a, t, n, mod in g.kallsyms(timeout=600) if mod is None]
text = [a for a, t, n in syms if n == "_text"]
if len(text) != 1:
    sys.exit(f"capture-kallsyms.sh: error: _text appears {len(text)} times in /proc/kallsyms")
text = text[0]
if len(syms) < 1000 or sum(1 for a, _, _ in syms if a) < len(syms) // 2:
    sys.exit(f"capture-kallsyms.sh: error: /proc/kallsyms has {len(syms)} symbols, mostly at 0 (kptr_restrict?)")
lines = []
for a, t, n in syms:
    if (t == "A") != (a < text):
        sys.exit(f"capture-kallsyms.sh: error: {a:016x} {t} {n}: type 'A' symbols must lie below _text "
                 f"({text:016x}) and no other symbol may")
    lines.append("%x %s %s\n" % (a if t == "A" else a - text, t, n))
with open(path, "w") as f:
    f.write("# /proc/kallsyms of a guest running this kernel: its core-kernel lines, in order.\n"
            "# Written by images/capture-kallsyms.sh (see its --help). Lines: \"%x %c %s\" =\n"
            "# offset from _text, type, name; type A lines (absolute per-cpu) hold the value itself.\n"
            f"# release {release}\n# build-id {build_id}\n# symbols {len(lines)}\n")
    f.writelines(lines)
print(f"capture-kallsyms.sh: {len(lines)} symbols, _text was {text:#x} in the guest", file=sys.stderr)
PY
chmod 644 "$out.tmp"
mv "$out.tmp" "$out"
echo "$out"

#!/usr/bin/env bash
# fetch-kernel-config.sh - the config of the kernel a Debian suite's linux-image-amd64
# points to: fetch-kernel.sh --suite SUITE's kernel folder, its config file.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: fetch-kernel-config.sh [SUITE]

SUITE: bookworm, trixie, sid, ... (default: trixie). Fetches (or reuses) that suite's
kernel with images/fetch-kernel.sh --suite SUITE (its own apt lists: the host's apt
stays untouched) and prints the path of its config, KERNEL_DIR/config, as the last
line on stdout; progress goes to stderr. Needs root the first time.

Used by the tests that compile patch objects for several kernels, with
images/kernel-cflags.sh turning the config into compiler flags.
USAGE
}

suite=trixie
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        -*) echo "fetch-kernel-config.sh: error: unknown option $1 (try --help)" >&2; exit 1 ;;
        *) suite=$1 ;;
    esac
    shift
done
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=$("$here/fetch-kernel.sh" --suite "$suite" | tail -n 1)
[ -s "$dir/config" ] || { echo "fetch-kernel-config.sh: error: no config in $dir" >&2; exit 1; }
echo "$dir/config"

#!/bin/sh
# Build the demo bundles for a Debian kernel (6.1, 6.12, 7.x: linux-image-*-amd64).
#
#   build-demo.sh --build-id HEX [--banner TEXT] [--sequence N] [--config FILE]
#                 [--cmdline-bytes HEX] [-o OUTDIR]
#
# --build-id      the target kernel's GNU build id (`hvpatch --json inspect DOMAIN`,
#                 kernel.build_id)
# --banner        its banner (kernel.banner), optional: the bundle then names it too
# --config        the target kernel's config (boot/config-* of its package, or the
#                 guest's /proc/config.gz): the patch object is compiled with the flags
#                 images/kernel-cflags.sh derives from it, and `hvpatch pack` checks the
#                 object against it. Default: $HVP_KERNEL_DIR/config when set
#                 (images/fetch-kernel.sh leaves it there); without either, Debian
#                 12's 6.1 flags (a note says so)
# --cmdline-bytes the first bytes of cmdline_proc_show in the guest, hex (e.g. from
#                 `hvpatch read DOMAIN cmdline_proc_show 64`); builds the replace demo
#                 too, at the offset of its `mov esi, 0xa` (be 0a 00 00 00)
# Writes OUTDIR/demo-version.hvp (and demo-cmdline.hvp); sign each with
#   minisign -S -s KEY -m OUTDIR/demo-version.hvp
# Env: HVPATCH (the hvpatch binary), CC (gcc), HVP_KERNEL_DIR.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=.
build_id=
banner=
sequence=1
cmdline_hex=
config=
while [ $# -gt 0 ]; do
        case $1 in
        --build-id) build_id=$2; shift 2 ;;
        --banner) banner=$2; shift 2 ;;
        --sequence) sequence=$2; shift 2 ;;
        --cmdline-bytes) cmdline_hex=$2; shift 2 ;;
        --config) config=$2; shift 2 ;;
        -o) out=$2; shift 2 ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "build-demo.sh: unknown argument $1" >&2; exit 2 ;;
        esac
done
[ -n "$build_id" ] || { echo "build-demo.sh: --build-id is required" >&2; exit 2; }
HVPATCH=${HVPATCH:-hvpatch}
CC=${CC:-gcc}
mkdir -p "$out"

if [ -z "$config" ] && [ -n "${HVP_KERNEL_DIR:-}" ] && [ -r "$HVP_KERNEL_DIR/config" ]; then
        config=$HVP_KERNEL_DIR/config
fi
if [ -n "$config" ]; then
        CFLAGS="$("$here/../kernel-cflags.sh" --cc "$CC" "$config") -Wall -Werror"
else
        echo "build-demo.sh: note: no --config and no \$HVP_KERNEL_DIR/config: using Debian 12's 6.1" \
             "flags (retpoline, rethunk, SLS, no IBT); give the target kernel's config for any other" >&2
        # What images/kernel-cflags.sh derives from Debian 12's 6.1 config (config-6.1.0-*-amd64).
        CFLAGS="-O2 -std=gnu11 -mcmodel=kernel -fno-pic -fno-PIE -ffreestanding -fno-builtin -nostdlib
                -fno-common -fno-strict-aliasing -fno-delete-null-pointer-checks
                -fno-asynchronous-unwind-tables -mno-red-zone -mno-sse -mno-mmx -mno-sse2 -mno-3dnow
                -mno-avx -mno-80387 -mno-fp-ret-in-387 -mskip-rax-setup -mpreferred-stack-boundary=3
                -falign-jumps=1 -falign-loops=1 -fno-stack-protector -mno-sse4a
                -mindirect-branch=thunk-extern -mindirect-branch-register -mindirect-branch-cs-prefix
                -mfunction-return=thunk-extern -mharden-sls=all -fcf-protection=none -fno-jump-tables
                -ftrivial-auto-var-init=zero -Wall -Werror"
fi
# shellcheck disable=SC2086
$CC $CFLAGS -c "$here/version_hotpatch.c" -o "$out/version_hotpatch.o"

xml_escape() {
        printf '%s' "$1" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g'
}
banner_element=
if [ -n "$banner" ]; then
        banner_element="
    <banner>$(xml_escape "$banner")</banner>"
fi
fill() {
        # $1 template, $2 output, $3 offset
        awk -v id="$build_id" -v seq="$sequence" -v ban="$banner_element" -v off="${3:-}" '{
                gsub(/@BUILD_ID@/, id); gsub(/@SEQUENCE@/, seq); gsub(/@OFFSET@/, off)
                i = index($0, "@BANNER_ELEMENT@")
                if (i) $0 = substr($0, 1, i - 1) ban substr($0, i + 16)
                print }' "$1" > "$2"
}

fill "$here/manifest.xml.in" "$out/manifest.xml"
pack() {        # pack MANIFEST BUNDLE: checked against the config when there is one
        if [ -n "$config" ]; then
                "$HVPATCH" pack --kernel-config "$config" "$1" -o "$2"
        else
                "$HVPATCH" pack "$1" -o "$2"
        fi
}
pack "$out/manifest.xml" "$out/demo-version.hvp"

if [ -n "$cmdline_hex" ]; then
        hex=$(printf '%s' "$cmdline_hex" | tr -d ' \n' | tr 'A-F' 'a-f')
        # byte offsets of "be 0a 00 00 00" (mov esi, 0xa) at even hex positions
        offsets=$(printf '%s\n' "$hex" | awk '{
                for (i = 1; i + 9 <= length($0); i += 2)
                        if (substr($0, i, 10) == "be0a000000") print (i - 1) / 2 }')
        count=$(printf '%s\n' "$offsets" | grep -c . || true)
        if [ "$count" -ne 1 ]; then
                echo "build-demo.sh: want exactly one 'mov esi, 0xa' in cmdline_proc_show, found $count" >&2
                exit 1
        fi
        fill "$here/manifest-cmdline.xml.in" "$out/manifest-cmdline.xml" "$offsets"
        pack "$out/manifest-cmdline.xml" "$out/demo-cmdline.hvp"
fi

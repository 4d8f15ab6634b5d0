#!/bin/sh
# kernel-cflags.sh - gcc flags for a patch object that fits a given x86-64 kernel build.
#
#   kernel-cflags.sh [--explain] [--cc CC] CONFIG
#
# CONFIG: the kernel's config: Debian's /boot/config-<version> (in the linux-image
# package; images/fetch-kernel.sh keeps it as $HVP_KERNEL_DIR/config), a build tree's
# .config, the guest's /proc/config.gz (gzip'd configs are read with gzip -dc), or the
# kernel image itself (a vmlinux ELF) where it embeds its config (CONFIG_IKCONFIG).
# Prints the flags on one line on stdout. --explain writes, on stderr, which config
# option gave which flag and what was left out and why. CC (default: $CC or gcc) is
# asked whether it has the options only some compilers have.
# Exit 1: CONFIG unreadable, not an x86-64 config, or the compiler lacks a flag a
# mitigation of the kernel needs (the object could not match the kernel then).
#
# The mapping follows arch/x86/Makefile and Makefile of Linux 6.1, 6.12 and 7.2
# (Debian 12, 13 and sid) - see docs/bundle.md, "Building a patch object for a target
# kernel". Left out on purpose: -pg/-mfentry (patch code is not traced),
# -fpatchable-function-entry (CONFIG_CALL_PADDING: the padding is where the kernel puts
# call-depth thunks and FineIBT preambles at boot, only for its own functions), the
# stack protector (its canary moved: %gs:40 in 6.1 and 6.12, __ref_stack_chk_guard in 7.x).
set -eu

explain=0
cc=${CC:-gcc}
config=
while [ $# -gt 0 ]; do
        case $1 in
        --explain) explain=1; shift ;;
        --cc) [ $# -ge 2 ] || { echo "kernel-cflags.sh: --cc needs a value" >&2; exit 2; }
              cc=$2; shift 2 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        -*) echo "kernel-cflags.sh: unknown option $1" >&2; exit 2 ;;
        *) [ -z "$config" ] || { echo "kernel-cflags.sh: one CONFIG only" >&2; exit 2; }
           config=$1; shift ;;
        esac
done
[ -n "$config" ] || { echo "usage: kernel-cflags.sh [--explain] [--cc CC] CONFIG" >&2; exit 2; }
[ -r "$config" ] || { echo "kernel-cflags.sh: $config: cannot read" >&2; exit 1; }

note() { [ "$explain" = 0 ] || echo "kernel-cflags.sh: $*" >&2; }
die() { echo "kernel-cflags.sh: $*" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
magic=$(od -An -tx1 -N4 "$config" | tr -d ' ')
case $magic in
1f8b*)
        gzip -dc <"$config" >"$tmp/config" 2>/dev/null || die "$config: gzip data that does not decompress" ;;
7f454c46)
        # A kernel image (vmlinux; images/fetch-kernel.sh leaves it beside the config): the
        # config it embeds with CONFIG_IKCONFIG (gzip'd between IKCFG_ST and IKCFG_ED).
        off=$(grep -abo -m1 'IKCFG_ST' "$config" | head -n1 | cut -d: -f1)
        [ -n "$off" ] || die "$config: a kernel image without an embedded config (CONFIG_IKCONFIG is" \
                             "not set, as in Debian's kernels): give the config-* file of its package"
        # gzip stops at the end of its stream and warns about what follows: status 2
        tail -c +"$((off + 9))" "$config" | gzip -dc >"$tmp/config" 2>/dev/null || [ $? -eq 2 ] ||
                die "$config: its embedded config does not decompress" ;;
*)
        cp "$config" "$tmp/config" ;;
esac
grep -q '^CONFIG_X86_64=y$' "$tmp/config" || die "$config: not an x86-64 kernel config (no CONFIG_X86_64=y)"

# the first of the given options that is =y (CONFIG_NAME), or nothing
on() {
        for o in "$@"; do
                grep -q "^CONFIG_$o=y\$" "$tmp/config" && { echo "CONFIG_$o"; return 0; }
        done
        return 0
}
value() { sed -n "s/^CONFIG_$1=\\([0-9][0-9]*\\)\$/\\1/p" "$tmp/config" | head -n1; }
cc_has() { "$cc" -Werror "$@" -c -x c /dev/null -o /dev/null >/dev/null 2>&1; }

cc_has -O2 || die "compiler '$cc' does not run"
clang=n
"$cc" --version 2>/dev/null | grep -qi clang && clang=y

release=$(sed -n 's/^# Linux\/x86 \([^ ]*\) Kernel Configuration$/\1/p' "$tmp/config" | head -n1)
note "config of Linux ${release:-(version not in the header)}, built by $(sed -n 's/^CONFIG_CC_VERSION_TEXT="\(.*\)"$/\1/p' "$tmp/config")"

# Every x86-64 kernel: the kernel code model and ABI rules (arch/x86/Makefile, Makefile).
flags="-O2 -std=gnu11 -mcmodel=kernel -fno-pic -fno-PIE -ffreestanding -fno-builtin -nostdlib
-fno-common -fno-strict-aliasing -fno-delete-null-pointer-checks -fno-asynchronous-unwind-tables
-mno-red-zone -mno-sse -mno-mmx -mno-sse2 -mno-3dnow -mno-avx -mno-80387 -mno-fp-ret-in-387
-mskip-rax-setup -mpreferred-stack-boundary=3 -falign-jumps=1 -falign-loops=1 -fno-stack-protector"
if cc_has -mno-sse4a; then flags="$flags -mno-sse4a"; fi     # 7.x adds it; harmless before

add() { flags="$flags $*"; }
need() {        # need OPTION-TEXT FLAG...: the compiler must have the flags
        why=$1; shift
        cc_has "$@" || die "$why needs '$*', which $cc does not accept: use a newer compiler"
        add "$@"
        note "$why: $*"
}

jump_tables=n
o=$(on RETPOLINE MITIGATION_RETPOLINE)
if [ -n "$o" ]; then
        if [ "$clang" = y ]; then
                need "$o" -mretpoline-external-thunk
        else
                need "$o" -mindirect-branch=thunk-extern -mindirect-branch-register
        fi
        if cc_has -mindirect-branch-cs-prefix; then
                add -mindirect-branch-cs-prefix
                note "$o: -mindirect-branch-cs-prefix (gcc >= 12, clang >= 15)"
        else
                note "$o: $cc lacks -mindirect-branch-cs-prefix: left out" \
                     "(it only lets the kernel rewrite its own thunk calls; patch code works without)"
        fi
        jump_tables=y
else
        note "no retpolines: indirect calls and jumps stay plain"
fi
o=$(on RETHUNK MITIGATION_RETHUNK)
if [ -n "$o" ]; then
        need "$o" -mfunction-return=thunk-extern
else
        note "no return thunk: plain ret"
fi
o=$(on SLS MITIGATION_SLS)
if [ -n "$o" ]; then
        need "$o" -mharden-sls=all
fi
if [ -n "$(on X86_KERNEL_IBT)" ]; then
        need "CONFIG_X86_KERNEL_IBT" -fcf-protection=branch
        note "CONFIG_X86_KERNEL_IBT: functions whose address is taken start with endbr64"
        jump_tables=y
else
        if cc_has -fcf-protection=none; then add -fcf-protection=none; fi
        note "no CONFIG_X86_KERNEL_IBT: -fcf-protection=none (an endbr64 would be harmless: a NOP there)"
fi
if [ "$jump_tables" = y ]; then
        add -fno-jump-tables
        note "retpolines or IBT: -fno-jump-tables (a jump table is an indirect jmp; under IBT a notrack one)"
fi
align=$(value FUNCTION_ALIGNMENT)
if [ -n "$align" ] && [ "$align" -gt 0 ]; then
        # The kernel prefers gcc 14's -fmin-function-alignment and falls back to this.
        add "-falign-functions=$align"
        note "CONFIG_FUNCTION_ALIGNMENT=$align: -falign-functions=$align"
fi
if [ -n "$(on INIT_STACK_ALL_ZERO)" ]; then
        if cc_has -ftrivial-auto-var-init=zero; then add -ftrivial-auto-var-init=zero
        else note "CONFIG_INIT_STACK_ALL_ZERO: $cc lacks -ftrivial-auto-var-init=zero (gcc >= 12): left out"; fi
elif [ -n "$(on INIT_STACK_ALL_PATTERN)" ]; then
        if cc_has -ftrivial-auto-var-init=pattern; then add -ftrivial-auto-var-init=pattern
        else note "CONFIG_INIT_STACK_ALL_PATTERN: $cc lacks -ftrivial-auto-var-init=pattern: left out"; fi
fi
if [ -n "$(on ZERO_CALL_USED_REGS)" ]; then
        if cc_has -fzero-call-used-regs=used-gpr; then add -fzero-call-used-regs=used-gpr
        else note "CONFIG_ZERO_CALL_USED_REGS: $cc lacks -fzero-call-used-regs: left out"; fi
fi
if cc_has -fzero-init-padding-bits=all; then
        add -fzero-init-padding-bits=all        # 7.x's Makefile, through cc-option
else
        note "$cc lacks -fzero-init-padding-bits=all (gcc >= 15; 7.x kernels use it where the compiler has it):" \
             "left out, padding bits of initialised structs may hold stale stack bytes"
fi
if [ -n "$(on CALL_PADDING)" ]; then
        note "CONFIG_CALL_PADDING ($(value FUNCTION_PADDING_BYTES) bytes): no -fpatchable-function-entry:" \
             "the kernel fills that padding at boot for its own functions only"
fi
o=$(on CALL_DEPTH_TRACKING MITIGATION_CALL_DEPTH_TRACKING)
if [ -n "$o" ]; then
        note "$o: no compiler flag (the kernel rewrites its calls at boot);" \
             "patch code returns through __x86_return_thunk"
fi
if [ -n "$(on STACKPROTECTOR)" ]; then
        note "CONFIG_STACKPROTECTOR: -fno-stack-protector (the canary's place differs between kernels)"
fi
if [ -n "$(on CC_IS_CLANG)" ] && [ "$clang" = n ]; then
        note "the kernel was built by clang, the patch by $cc: the flags above are gcc's spelling of the same"
fi
# shellcheck disable=SC2086 # one line, single spaces
echo $flags

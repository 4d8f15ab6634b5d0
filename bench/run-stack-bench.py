#!/usr/bin/env python3
"""run-stack-bench.py - what the stack check costs, for 60, 600 and 6,000 guest tasks.

    bench/run-stack-bench.py [-n ROUNDS] [--tasks 60,600,6000] [--memory MiB] [--keep NAME]

As root: boots a UEFI TCG test guest (images/guest.sh via tests/live/guestlib.py,
2 vCPUs, 4-level paging, KASLR, --memory MiB, default 2048), builds a one-site replace
bundle for its kernel (the replace demo: cmdline_proc_show's `mov esi, 0xa`), and for
each task count spawns busybox `sleep` processes in the guest until it has that many
tasks (ps's count: threads and idle tasks included), then runs ROUNDS (default 10)
interleaved rounds of:
    apply --stack-check auto   (the check on: before_pause_ms, in_pause_ms, pause_ms)
    revert
    apply --stack-check off    (pause_ms without it)
    revert
and prints the medians; docs/benchmarks.md ("Stack check") holds the figures of a run.
Env: HVP_KERNEL_DIR, HVPATCH (default build/cli/hvpatch).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "live"))
import guestlib  # noqa: E402


def hvpatch_exe():
    exe = os.environ.get("HVPATCH", "build/cli/hvpatch")
    return exe if os.path.isabs(exe) else os.path.join(guestlib.REPO, exe)


def hv(*args):
    p = subprocess.run([hvpatch_exe(), "--json"] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=600)
    out = json.loads(p.stdout) if p.stdout.strip() else None
    if p.returncode != 0:
        raise RuntimeError(f"hvpatch {' '.join(map(str, args))}: exit {p.returncode}: {out} {p.stderr[-300:]}")
    return out


def task_count(name):
    return len(hv("ps", name))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=10)
    ap.add_argument("--tasks", default="60,600,6000")
    ap.add_argument("--memory", type=int, default=2048)
    ap.add_argument("--keep", help="use this running guest, do not destroy it")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run-stack-bench.py: needs root")
    work = tempfile.mkdtemp(prefix="hvp-stack-bench-")
    os.environ.setdefault("HVPATCH_STATE_DIR", os.path.join(work, "state"))
    os.makedirs(os.environ["HVPATCH_STATE_DIR"], mode=0o700, exist_ok=True)
    name = a.keep or f"hvp-cons-bench-{os.getpid()}"
    g = guestlib.Guest(name) if a.keep else guestlib.Guest.create(name, paging=4, memory=a.memory)
    try:
        insns = hv("disasm", name, "cmdline_proc_show", 128)
        off = [int(i["addr"], 16) for i in insns if i["bytes"] == "be0a000000"]
        base = int(insns[0]["addr"], 16)
        xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<patch xmlns="urn:hvpatch:manifest:1" id="bench-1" series="bench" sequence="1">
  <target os="linux"><build-id>{g.build_id()}</build-id></target>
  <sites><replace symbol="cmdline_proc_show" offset="{off[0] - base}" expected="be 0a 00 00 00"
                  new="be 21 00 00 00"/></sites>
</patch>
"""
        with open(os.path.join(work, "b.xml"), "w") as f:
            f.write(xml)
        bundle = os.path.join(work, "b.hvp")
        subprocess.run([hvpatch_exe(), "pack", os.path.join(work, "b.xml"), "-o", bundle], check=True,
                       stdout=subprocess.DEVNULL)
        print(f"host: {os.cpu_count()} CPUs, load {open('/proc/loadavg').read().split()[:3]}")
        print(f"guest: {name}, 2 vCPUs, TCG, {a.memory} MiB")
        print("tasks | before pause (ms) | in pause (ms) | in-pause checked/scanned | pause on (ms) | pause off (ms)")
        for want in (int(x) for x in a.tasks.split(",")):
            have = task_count(name)
            while have < want:
                n = min(want - have, 500)
                g.check(f"i=0; while [ $i -lt {n} ]; do sleep 36000 >/dev/null 2>&1 & i=$((i+1)); done",
                        timeout=600)
                have = task_count(name)
            pre, inp, on, off_ms, chk = [], [], [], [], []
            for _ in range(a.n):
                r = hv("apply", "--insecure-unsigned", name, bundle)
                pre.append(r["stack_check"]["before_pause_ms"])
                inp.append(r["stack_check"]["in_pause_ms"])
                chk.append((r["stack_check"]["in_pause_checked"], r["stack_check"]["in_pause_scanned"]))
                on.append(r["pause_ms"])
                hv("revert", name, "bench-1")
                r = hv("apply", "--insecure-unsigned", "--stack-check", "off", name, bundle)
                off_ms.append(r["pause_ms"])
                hv("revert", name, "bench-1")
            med = statistics.median
            print(f"{have:5d} | {med(pre):8.2f} | {med(inp):8.3f} | {chk[-1][0]}/{chk[-1][1]} | "
                  f"{med(on):8.2f} | {med(off_ms):8.2f}", flush=True)
    finally:
        if not a.keep:
            g.destroy()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()

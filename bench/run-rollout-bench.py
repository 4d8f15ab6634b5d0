#!/usr/bin/env python3
"""Benchmark: wall time of one rollout over N live guests at --parallel 1 vs --parallel P.

    bench/run-rollout-bench.py [--guests 8] [--parallel 4] [--rounds 2] [--health 3]

Boots N guests at once (4-level, KASLR, TCG here), builds and signs the demo bundle
(images/demo/build-demo.sh: /proc/version gets a marker) with a fresh minisign key and
a policy that trusts it, then per round: `hvpatch rollout --rings 1,50%,100%` at
--parallel 1 and at --parallel P (the order alternates between rounds), each with the
health gate (--health SECONDS) after every apply. After each rollout every guest must
show the marker in its own /proc/version, and is reverted before the next one.
Prints one JSON object per rollout and a summary with the medians and their ratio.
Not a test: no pass/fail on timings (the host is shared and noisy).

Environment: HVPATCH (default build/cli/hvpatch), HVP_KERNEL_DIR, HVP_GUEST_DIR, CC.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "live"))
import guestlib  # noqa: E402

REPO = guestlib.REPO
MARKER = " [hvpatch: hotpatched]"


def hvpatch_exe():
    exe = os.environ.get("HVPATCH", "build/cli/hvpatch")
    return exe if os.path.isabs(exe) else os.path.join(REPO, exe)


def boot(names):
    guests, errors = {}, []

    def one(name):
        try:
            guests[name] = guestlib.Guest.create(name, paging=4, kaslr=True, kernel_dir=guestlib.kernel_dir(),
                                                 timeout=900)
        except BaseException as e:     # noqa: B902: reported below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return [guests[n] for n in names]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--guests", type=int, default=8)
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--health", type=int, default=3)
    a = ap.parse_args()

    tag = f"hvp-robench-{os.getpid()}"
    names = [f"{tag}-{i}" for i in range(a.guests)]
    tmp = tempfile.mkdtemp(prefix="hvp-robench.")
    work, state = os.path.join(tmp, "work"), os.path.join(tmp, "state")
    os.mkdir(work, 0o700)
    os.mkdir(state, 0o700)
    os.chmod(tmp, 0o755)
    env = dict(os.environ, HVPATCH=hvpatch_exe(), HVPATCH_STATE_DIR=state)
    guests = []
    try:
        t0 = time.monotonic()
        guests = boot(names)
        print(json.dumps({"event": "booted", "guests": a.guests, "seconds": round(time.monotonic() - t0, 1)}),
              flush=True)
        build_id = guests[0].build_id()
        guestlib.minisign(work, "-G", "-W", "-p", "b.pub", "-s", "b.key")
        subprocess.run([os.path.join(REPO, "images", "demo", "build-demo.sh"), "--build-id", build_id, "-o",
                        os.path.join(work, "good")], check=True, stdout=subprocess.DEVNULL, env=env)
        bundle = os.path.join(work, "good", "demo-version.hvp")
        guestlib.minisign(work, "-S", "-s", "b.key", "-m", bundle, "-t", "bench")
        policy = os.path.join(work, "policy.xml")
        with open(policy, "w") as f:
            f.write(f'''<?xml version="1.0"?>
<policy version="1">
  <key name="b"><public-key-file>b.pub</public-key-file><may-sign series="*"/></key>
  <group name="bench"><select name="{tag}-*"/><window/>
    <baseline name="current" current="yes"><kernel build-id="{build_id}"/></baseline></group>
</policy>
''')
        times = {1: [], a.parallel: []}
        for rnd in range(a.rounds):
            order = [1, a.parallel] if rnd % 2 == 0 else [a.parallel, 1]
            for par in order:
                st = os.path.join(work, f"state-{rnd}-{par}.json")
                argv = [hvpatch_exe(), "--policy", policy, "rollout", "--json", "--domains", f"{tag}-*",
                        "--rings", "1,50%,100%", "--parallel", str(par), "--health", str(a.health),
                        "--state", st, bundle]
                t = time.monotonic()
                p = subprocess.run(argv, capture_output=True, text=True, cwd=work, env=env, timeout=3600)
                secs = time.monotonic() - t
                if p.returncode != 0:
                    raise RuntimeError(f"rollout exit {p.returncode}: {p.stdout[-2000:]} {p.stderr[-2000:]}")
                events = [json.loads(line) for line in p.stdout.splitlines()]
                rings = sum(1 for e in events if e["event"] == "ring-start")
                pauses = [e["pause_ms"] for e in events if e["event"] == "guest" and e.get("pause_ms") is not None]
                seen = sum(MARKER in g.check("cat /proc/version") for g in guests)
                if seen != a.guests:
                    raise RuntimeError(f"only {seen} of {a.guests} guests show the patch")
                times[par].append(secs)
                print(json.dumps({"event": "rollout", "round": rnd + 1, "parallel": par, "seconds": round(secs, 2),
                                  "rings": rings, "patched_seen_in_guest": seen,
                                  "pause_ms_max": max(pauses) if pauses else None}), flush=True)
                for n in names:
                    subprocess.run([hvpatch_exe(), "--policy", policy, "revert", n, "demo-version-1"], check=True,
                                   stdout=subprocess.DEVNULL, cwd=work, env=env)
        m1, mp = statistics.median(times[1]), statistics.median(times[a.parallel])
        print(json.dumps({"event": "summary", "guests": a.guests, "health_seconds": a.health,
                          "median_parallel_1_s": round(m1, 2), f"median_parallel_{a.parallel}_s": round(mp, 2),
                          "ratio": round(m1 / mp, 2), "load": os.getloadavg()[0]}), flush=True)
    finally:
        for n in names:
            guestlib.Guest(n).destroy()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""hvpatchd's benchmarks on real guests (issue 9); the figures go to docs/benchmarks.md.

    bench/run-daemon-benches.py [--only reboot,stall,idle] [--reboots 10] [--stall-rounds 5]
                                [--stall-ms 6000] [--idle-guests 4] [--idle-seconds 600]
                                [--idle-intervals 60,0] [BUILD_DIR]

reboot  one guest, hvpatchd scoped to it (--domains) with a signed one-patch catalog; the
        guest reboots --reboots times (sysrq b). Each time: the daemon's own figures, from
        the reboot event to "kernel up" (the kernel's system_state reads SYSTEM_RUNNING)
        and from "kernel up" to the end of the sync that applied the patch again
        (daemon-status: kernel_up_seconds, kernel_up_to_patched_seconds), the host's view
        (reboot sent -> the daemon's apply count moves, polled every 50 ms), and the
        guest's /proc/version showing the patch. Median and max.
stall   the same guest, the daemon stopped: a busy loop in the guest (bench/guest-stall.c,
        a 1 KiB static binary sent over the command channel) reads CLOCK_MONOTONIC for
        --stall-ms and reports its largest gap between two reads; rounds without an apply,
        with `hvpatch apply` and with `hvpatch revert` in the middle of the loop, beside
        the pause window hvpatch reports (pause_ms).
idle    --idle-guests guests, all patched by one daemon scoped to them; its CPU time
        (utime + stime of /proc/PID/stat) over --idle-seconds of nothing happening, once per
        --verify-interval in --idle-intervals (0: no periodic check, events only).

Needs root, libvirt, minisign, gcc; HVP_KERNEL_DIR (images/fetch-kernel.sh). Guests are
named hvp-mx-*-PID and destroyed at the end. Prints the figures and a JSON summary line.
"""

import argparse
import base64
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "live"))
import guestlib  # noqa: E402

MARKER = "[hvpatch: hotpatched]"
PID = os.getpid()
GLOB = f"hvp-mx-*-{PID}"
TICK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(msg, flush=True)


def context():
    load = open("/proc/loadavg").read().split()[:3]
    doms = subprocess.run(guestlib.VIRSH + ["list", "--name"], capture_output=True, text=True).stdout.split()
    return {"cpus": os.cpu_count(), "load": " ".join(load), "running_domains": len(doms),
            "time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}


class Daemon:
    def __init__(self, build, work, catalog, policy, state, interval, tag):
        self.sock = os.path.join(work, f"hvpatchd-{tag}.sock")
        self.log = os.path.join(work, f"hvpatchd-{tag}.log")
        self.args = [os.path.join(build, "daemon", "hvpatchd"), "-v", "--domains", GLOB, "--catalog", catalog,
                     "--policy", policy, "--state-dir", state, "--socket", self.sock,
                     "--verify-interval", str(interval), "--metrics-listen", "127.0.0.1:0"]
        self.logf = open(self.log, "a")
        self.p = subprocess.Popen(self.args, stdout=self.logf, stderr=self.logf)
        t0 = time.monotonic()
        while self.status() is None:
            if self.p.poll() is not None or time.monotonic() - t0 > 30:
                raise RuntimeError(f"hvpatchd did not start: {open(self.log).read()[-2000:]}")
            time.sleep(0.1)

    def status(self):
        """daemon-status straight from the socket (no hvpatch process: polled at 20 Hz)."""
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect(self.sock)
            buf = b""
            while True:
                c = s.recv(65536)
                if not c:
                    break
                buf += c
            s.close()
            return json.loads(buf)
        except (OSError, ValueError):
            return None

    def domain(self, name):
        for d in (self.status() or {}).get("domains", []):
            if d["domain"] == name:
                return d
        return None

    def cpu_seconds(self):
        f = open(f"/proc/{self.p.pid}/stat").read()
        fields = f[f.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / TICK      # utime, stime (fields 14, 15)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            self.p.wait(120)
        self.logf.close()


def wait_for(what, cond, timeout, step=0.5):
    t0 = time.monotonic()
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


def patched(g):
    return g.check("cat /proc/version").strip().endswith(MARKER)


def summary(xs):
    return {"n": len(xs), "median": round(statistics.median(xs), 3), "min": round(min(xs), 3),
            "max": round(max(xs), 3)} if xs else {"n": 0}


def bench_reboot(a, env, name, d, g):
    results = []
    for i in range(a.reboots):
        before = d.domain(name)["applies"]
        t_sent = time.monotonic()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(g.sock)
        s.sendall(b"\necho b > /proc/sysrq-trigger\n")
        time.sleep(0.3)
        s.close()
        dom = wait_for("the patch back", lambda: (lambda x: x if x and x["applies"] > before else None)(
            d.domain(name)), 600, step=0.05)
        t_applied_host = time.monotonic()
        t_applied = t_applied_host - t_sent
        wait_for("HVP-READY", lambda: g.ready_count() >= i + 2, 600)
        seen = patched(g)
        # The guest's own clock: its kernel logs "Run /init as init process" right after it set
        # SYSTEM_RUNNING; the apply's moment in guest uptime is its uptime now less the host
        # seconds since the daemon's count moved (TCG's guest clock runs at the host's rate).
        out = g.check("cat /proc/uptime; dmesg | grep -m1 'Run /init as init process'")
        t_now = time.monotonic()
        uptime = float(out.split()[0])
        m = re.search(r"\[\s*([0-9.]+)\]\s*Run /init as init process", out)
        guest_up_to_patched = uptime - (t_now - t_applied_host) - float(m.group(1)) if m else None
        r = {"kernel_up_s": dom["kernel_up_seconds"], "up_to_patched_s": dom["kernel_up_to_patched_seconds"],
             "guest_init_to_patched_s": guest_up_to_patched, "host_reboot_to_applied_s": t_applied,
             "pause_ms": dom["last_pause_ms"], "seen_in_guest": seen, "applies": dom["applies"] - before}
        results.append(r)
        log(f"reboot {i + 1}/{a.reboots}: kernel up {r['kernel_up_s']:.2f}s after the reboot event, patched "
            f"{r['up_to_patched_s']:.3f}s later (pause {r['pause_ms']:.2f} ms); guest clock: /init ran "
            f"{guest_up_to_patched if guest_up_to_patched is not None else float('nan'):.2f}s before the apply "
            f"(+-0.1); host: reboot sent -> applied {t_applied:.2f}s; in the guest: "
            f"{'patched' if seen else 'NOT PATCHED'}; applies {r['applies']}")
    gi = [r["guest_init_to_patched_s"] for r in results if r["guest_init_to_patched_s"] is not None]
    return {"rounds": results, "up_to_patched_s": summary([r["up_to_patched_s"] for r in results]),
            "guest_init_to_patched_s": summary(gi),
            "kernel_up_s": summary([r["kernel_up_s"] for r in results]),
            "host_reboot_to_applied_s": summary([r["host_reboot_to_applied_s"] for r in results]),
            "all_seen_in_guest": all(r["seen_in_guest"] for r in results),
            "all_applied_once": all(r["applies"] == 1 for r in results)}


def build_stall(work):
    out = os.path.join(work, "guest-stall")
    subprocess.run([os.environ.get("CC", "gcc"), "-static", "-nostdlib", "-Os", "-fno-stack-protector",
                    "-fno-asynchronous-unwind-tables", "-fno-pie", "-no-pie", "-Wl,--build-id=none", "-Wl,-N",
                    "-Wl,--no-warn-rwx-segments", "-s", "-o", out, os.path.join(HERE, "guest-stall.c")], check=True)
    return out


def find_key(o, key):
    if isinstance(o, dict):
        if key in o:
            return o[key]
        for v in o.values():
            r = find_key(v, key)
            if r is not None:
                return r
    if isinstance(o, list):
        for v in o:
            r = find_key(v, key)
            if r is not None:
                return r
    return None


def bench_stall(a, env, name, g, work, policy, bundle):
    binary = build_stall(work)
    b64 = base64.b64encode(open(binary, "rb").read()).decode()
    g.check(f"echo {b64} | base64 -d > /tmp/guest-stall && chmod 755 /tmp/guest-stall")
    hv = [env["HVPATCH"], "--json", "--policy", policy]

    def loop():
        out = g.check(f"/tmp/guest-stall {a.stall_ms}", timeout=a.stall_ms / 1000 + 120)
        m = re.search(r"reads (\d+) max_gap_us (\d+) at_ms (\d+) over_1ms (\d+) over_10ms (\d+)", out)
        if not m:
            raise RuntimeError(f"guest-stall said {out!r}")
        return dict(zip(("reads", "max_gap_us", "at_ms", "over_1ms", "over_10ms"), map(int, m.groups())))

    def with_op(cmd):
        box = {}
        t = threading.Thread(target=lambda: box.update(loop()))
        t.start()
        time.sleep(a.stall_ms / 3000)           # a third into the loop (the channel's own start-up)
        if cmd == "suspend":                    # the calibration: a pause of known length by libvirt
            virsh = guestlib.VIRSH
            t0 = time.monotonic()
            subprocess.run(virsh + ["suspend", name], check=True, capture_output=True)
            try:
                time.sleep(0.5)
            finally:
                subprocess.run(virsh + ["resume", name], check=True, capture_output=True)
            box["pause_ms"] = (time.monotonic() - t0) * 1000
            t.join()
            return box
        p = subprocess.run(hv + cmd, capture_output=True, text=True, timeout=300, env=env)
        t.join()
        if p.returncode != 0:
            raise RuntimeError(f"hvpatch {' '.join(cmd)}: {p.stdout} {p.stderr}")
        box["pause_ms"] = find_key(json.loads(p.stdout), "pause_ms")
        return box

    if patched(g):
        subprocess.run(hv + ["revert", name, "demo-version-1"], check=True, capture_output=True, env=env)
    clocksource = g.check("cat /sys/devices/system/clocksource/clocksource0/current_clocksource").strip()
    log(f"stall: the guest's clocksource is {clocksource}")
    # Does the guest's clock run on while its vCPUs are stopped? A 0.5 s suspend shows it.
    calib = with_op("suspend")
    log(f"stall calibration: a {calib['pause_ms']:.0f} ms virsh suspend/resume shows in the guest as a max gap of "
        f"{calib['max_gap_us'] / 1000:.2f} ms (at {calib['at_ms']} ms)")
    rounds = []
    for i in range(a.stall_rounds):
        r = {"idle": loop(), "apply": with_op(["apply", name, bundle])}
        if not patched(g):
            raise RuntimeError("the apply did not show in the guest")
        r["revert"] = with_op(["revert", name, "demo-version-1"])
        rounds.append(r)
        log(f"stall {i + 1}/{a.stall_rounds}: max gap without {r['idle']['max_gap_us'] / 1000:.2f} ms; "
            f"with apply {r['apply']['max_gap_us'] / 1000:.2f} ms at {r['apply']['at_ms']} ms "
            f"(pause_ms {r['apply']['pause_ms']:.2f}); with revert {r['revert']['max_gap_us'] / 1000:.2f} ms "
            f"(pause_ms {r['revert']['pause_ms']:.2f}); reads {r['idle']['reads']}/{r['apply']['reads']}")
    return {"rounds": rounds, "clocksource": clocksource, "calibration_suspend": calib,
            **{f"{k}_max_gap_ms": summary([r[k]["max_gap_us"] / 1000 for r in rounds])
               for k in ("idle", "apply", "revert")},
            **{f"{k}_pause_ms": summary([r[k]["pause_ms"] for r in rounds]) for k in ("apply", "revert")}}


def bench_idle(a, env, build, work, catalog, policy, state):
    names = [f"hvp-mx-idle{k}-{PID}" for k in range(1, a.idle_guests + 1)]
    # one after the other: four TCG boots at once on a loaded 2-core host miss any timeout
    for n in names:
        g = guestlib.Guest.create(n, paging=4, kaslr=True, timeout=900)
        log(f"guest {n}: booted in {g.boot_seconds}s (TCG)")
    out = {"guests": len(names), "windows": []}
    for interval in a.idle_intervals:
        d = Daemon(build, work, catalog, policy, state, interval, f"idle{interval}")
        try:
            wait_for("every idle guest patched", lambda: all(
                (d.domain(n) or {}).get("applied") == 1 and (d.domain(n) or {}).get("phase") == "idle"
                for n in names), 900, step=1)
            time.sleep(5)
            c0, t0, checks0 = d.cpu_seconds(), time.monotonic(), d.status()["checks"]
            ctx0 = context()
            time.sleep(a.idle_seconds)
            c1, t1, st = d.cpu_seconds(), time.monotonic(), d.status()
            w = {"verify_interval": interval, "seconds": round(t1 - t0, 1), "cpu_seconds": round(c1 - c0, 3),
                 "cpu_percent": round(100 * (c1 - c0) / (t1 - t0), 4), "checks": st["checks"] - checks0,
                 "jobs": sum(x["jobs"] for x in st["domains"]), "context_start": ctx0, "context_end": context()}
            out["windows"].append(w)
            log(f"idle, {len(names)} guests, --verify-interval {interval}: {w['cpu_seconds']:.2f} s of CPU over "
                f"{w['seconds']:.0f} s = {w['cpu_percent']:.3f}% ({w['checks']} periodic checks; load "
                f"{ctx0['load']} -> {w['context_end']['load']})")
        finally:
            d.stop()
    for n in names:
        guestlib.Guest(n).destroy()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build", nargs="?", default=os.path.join(REPO, "build"))
    ap.add_argument("--only", default="reboot,stall,idle")
    ap.add_argument("--reboots", type=int, default=10)
    ap.add_argument("--stall-rounds", type=int, default=5)
    ap.add_argument("--stall-ms", type=int, default=6000)
    ap.add_argument("--idle-guests", type=int, default=4)
    ap.add_argument("--idle-seconds", type=int, default=600)
    ap.add_argument("--idle-intervals", default="60,0")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    a = ap.parse_args()
    a.idle_intervals = [int(x) for x in a.idle_intervals.split(",") if x]
    only = set(a.only.split(","))
    if os.geteuid() != 0:
        sys.exit("run-daemon-benches.py: needs root")
    build = os.path.abspath(a.build)
    env = dict(os.environ, HVPATCH=os.path.join(build, "cli", "hvpatch"), HVP_KERNEL_DIR=guestlib.kernel_dir())
    os.environ.update(HVP_KERNEL_DIR=env["HVP_KERNEL_DIR"])
    work = tempfile.mkdtemp(prefix="hvp-mx-bench-")
    os.chmod(work, 0o755)
    state = os.path.join(work, "state")
    catalog = os.path.join(work, "catalog")
    os.mkdir(catalog)
    os.environ["HVPATCH_STATE_DIR"] = env["HVPATCH_STATE_DIR"] = state
    name = f"hvp-mx-bench-{PID}"
    made = []
    result = {"context": context(), "hvpatch": subprocess.run([env["HVPATCH"], "--version"], capture_output=True,
                                                               text=True).stdout.strip()}
    try:
        out = subprocess.run(["readelf", "-n", os.path.join(env["HVP_KERNEL_DIR"], "vmlinux")], capture_output=True,
                             text=True, check=True).stdout
        build_id = re.search(r"Build ID:\s*([0-9a-f]+)", out).group(1)
        guestlib.minisign(work, "-G", "-W", "-p", "rel.pub", "-s", "rel.key")
        subprocess.run([os.path.join(REPO, "images", "demo", "build-demo.sh"), "--build-id", build_id, "-o",
                        os.path.join(work, "demo")], check=True, stdout=subprocess.DEVNULL, env=env)
        bundle = os.path.join(catalog, "demo-version.hvp")
        shutil.copy(os.path.join(work, "demo", "demo-version.hvp"), bundle)
        guestlib.minisign(work, "-S", "-s", "rel.key", "-m", bundle, "-t", "bench")
        policy = os.path.join(work, "policy.xml")
        with open(policy, "w") as f:
            f.write(f'''<?xml version="1.0"?>
<policy version="1">
  <key name="rel"><public-key-file>{work}/rel.pub</public-key-file><may-sign series="demo-*"/></key>
  <group name="bench">
    <select name="{GLOB}"/>
    <window/>
    <baseline name="current" current="yes"><kernel build-id="{build_id}"/></baseline>
  </group>
</policy>
''')
        log(f"host: {result['context']}; {result['hvpatch']}")
        if only & {"reboot", "stall"}:
            d = Daemon(build, work, catalog, policy, state, 60, "reboot")
            made.append(name)
            g = guestlib.Guest.create(name, paging=4, kaslr=True)
            log(f"guest {name}: booted in {g.boot_seconds}s (TCG)")
            try:
                wait_for("the first apply", lambda: (d.domain(name) or {}).get("applied") == 1, 600)
                wait_for("the patch in the guest", lambda: patched(g), 120)
                if "reboot" in only and a.reboots:
                    result["reboot"] = bench_reboot(a, env, name, d, g)
            finally:
                d.stop()
            if "stall" in only and a.stall_rounds:
                result["stall"] = bench_stall(a, env, name, g, work, policy, bundle)
            g.destroy()
            made.remove(name)
        if "idle" in only and a.idle_guests:
            made += [f"hvp-mx-idle{k}-{PID}" for k in range(1, a.idle_guests + 1)]
            result["idle"] = bench_idle(a, env, build, work, catalog, policy, state)
            made = [m for m in made if not m.startswith("hvp-mx-idle")]
        result["context_end"] = context()
        print("RESULT " + json.dumps(result), flush=True)
    finally:
        for n in made:
            try:
                guestlib.Guest(n).destroy()
            except Exception as e:         # noqa: BLE001
                log(f"destroying {n}: {e}")
        if a.keep:
            log(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

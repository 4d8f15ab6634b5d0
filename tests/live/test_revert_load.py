#!/usr/bin/env python3
"""Live: apply and revert under load never change code a task may still run (issue 13).

One 4-level KASLR UEFI guest (2 vCPUs) with the patch-area device. Inside it,
busy loops on every vCPU read /proc/loadavg without pause, while the host
applies and reverts a redirect of loadavg_proc_show over and over. A task that
is inside the new code (it called seq_printf and will return into it) when a
revert runs must still find that code: revert restores the 5-byte entry only
and retires the code. Oracles hvpatch does not control: the guest's dmesg
(no Oops, no BUG), /proc/sys/kernel/tainted (0), whether every load loop is
still alive, what /proc/loadavg shows, and QEMU's xp of the area.

  test_1_slack_fills_then_enospc  revert keeps the code: the slack area (a few
      hundred bytes) fills, then apply fails with ENOSPC saying the room left;
      status (--json) lists the retired ranges and the room of each area.
  test_2_cycles_under_load        HVP_REVERT_CYCLES (default 100) apply/revert
      cycles under load (the slack being full, the code goes to the device area);
      with HVP_REVERT_SOAK=1 each cycle also replaces the series by a newer
      sequence (cumulative) and applies and reverts a replace site of
      cmdline_proc_show under a /proc/cmdline loop (bench/run-revert-soak.sh).
  test_3_reboot_fresh_area        a new boot starts with fresh areas.

Before the fix (revert wrote the filler back over the code) the guest oopsed at the
second cycle, returning into zeros (docs/benchmarks.md, "Revert under load").

    python3 tests/live/test_revert_load.py      # last line: "N passed, M failed"

Needs root, libvirt, gcc. Environment: HVPATCH, HVP_KERNEL_DIR, HVP_REVERT_CYCLES,
HVP_REVERT_SOAK, HVP_REVERT_JSON (write the figures there as JSON).
"""

import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib  # noqa: E402
import kcflags  # noqa: E402

IMAGES = os.path.join(guestlib.REPO, "images")
NAME = f"hvp-retire-rl-{os.getpid()}"
SHMEM_XML = "<shmem name='hvpatch-area-@UUID@'><model type='ivshmem-plain'/><size unit='M'>2</size></shmem>\n"
CYCLES = int(os.environ.get("HVP_REVERT_CYCLES", "100"))
SOAK = os.environ.get("HVP_REVERT_SOAK") == "1"
MARKER = " hvp\n"
ENV = {}
FIGURES = {}
NOTES = []


# A replacement of fs/proc/loadavg.c's loadavg_proc_show: the load figures, then
# a marker. It calls out (get_avenrun, seq_printf) many times, so that a task
# reading /proc/loadavg spends most of its time in a callee that will return into
# the replacement: the hazard this test is about, made frequent.
LOADAVG_C = r"""
struct seq_file;
extern void seq_printf(struct seq_file *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
extern void get_avenrun(unsigned long *loads, unsigned long offset, int shift);

#define FIXED_1 (1ul << 11)
#define LOAD_INT(x) ((x) >> 11)
#define LOAD_FRAC(x) LOAD_INT(((x) & (FIXED_1 - 1)) * 100)

int hvp_loadavg_show(struct seq_file *m, void *v)
{
        unsigned long a[3];

        get_avenrun(a, FIXED_1 / 200, 0);
        seq_printf(m, "%lu.%02lu %lu.%02lu %lu.%02lu 0/0 SEQ", LOAD_INT(a[0]), LOAD_FRAC(a[0]),
                   LOAD_INT(a[1]), LOAD_FRAC(a[1]), LOAD_INT(a[2]), LOAD_FRAC(a[2]));
        for (int i = 0; i < 16; i++)
                seq_printf(m, " %lu.%02lu", LOAD_INT(a[i % 3]), LOAD_FRAC(a[i % 3]));
        seq_printf(m, " hvp\n");
        return 0;
}
"""

# Busy loops, one pinned to each vCPU per kind (the builtin read: no fork, the
# most calls per second; cat: a new task each time), pids in /tmp/hvp-load.pids.
LOAD_START = r"""
rm -f /tmp/hvp-load.pids
n=$(nproc)
i=0
while [ $i -lt $n ]; do
  taskset -c $i sh -c 'while :; do read l < /proc/loadavg; done' </dev/null >/dev/null 2>&1 &
  echo $! >> /tmp/hvp-load.pids
  taskset -c $i sh -c 'while :; do cat /proc/loadavg; done' </dev/null >/dev/null 2>&1 &
  echo $! >> /tmp/hvp-load.pids
  EXTRA
  i=$((i + 1))
done
cat /tmp/hvp-load.pids | wc -l
"""
CMDLINE_LOOP = ("taskset -c $i sh -c 'while :; do read l < /proc/cmdline; done' </dev/null >/dev/null 2>&1 & "
                "echo $! >> /tmp/hvp-load.pids")
LOAD_ALIVE = "n=0; for p in $(cat /tmp/hvp-load.pids); do kill -0 $p 2>/dev/null && n=$((n + 1)); done; echo $n"
LOAD_STOP = "for p in $(cat /tmp/hvp-load.pids); do kill $p 2>/dev/null; done; rm -f /tmp/hvp-load.pids; true"
OOPS = re.compile(r"Oops|BUG:|general protection|invalid opcode|RIP: 0010:_etext|Call Trace")


def hvpatch_exe():
    exe = os.environ.get("HVPATCH", "build/cli/hvpatch")
    return exe if os.path.isabs(exe) else os.path.join(guestlib.REPO, exe)


def hv(*args, timeout=120):
    """`hvpatch --json ARGS`: (returncode, parsed stdout or None, stderr)."""
    p = subprocess.run([hvpatch_exe(), "--json"] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=timeout)
    try:
        out = guestlib.validate_json(json.loads(p.stdout), args) if p.stdout.strip() else None
    except ValueError:
        raise AssertionError(f"hvpatch {args}: stdout not JSON: {p.stdout[:300]!r}") from None
    return p.returncode, out, p.stderr


def pack(d, name, xml):
    path = os.path.join(d, name + ".xml")
    with open(path, "w") as f:
        f.write(xml)
    subprocess.run([hvpatch_exe(), "pack", path, "-o", os.path.join(d, name + ".hvp")], check=True,
                   stdout=subprocess.DEVNULL)
    return os.path.join(d, name + ".hvp")


def loadavg_bundle(d, build_id, seq):
    src = os.path.join(d, f"loadavg{seq}.c")
    with open(src, "w") as f:
        f.write(LOADAVG_C.replace("SEQ", str(seq)))
    obj = os.path.join(d, f"loadavg{seq}.o")
    subprocess.run([os.environ.get("CC", "gcc")] + kcflags.patch_cflags() + ["-c", src, "-o", obj], check=True)
    return pack(d, f"loadavg-{seq}", f"""<?xml version="1.0" encoding="UTF-8"?>
<patch xmlns="urn:hvpatch:manifest:1" id="loadavg-{seq}" series="loadavg" sequence="{seq}">
  <target os="linux"><build-id>{build_id}</build-id></target>
  <object name="loadavg.o" file="{obj}"/>
  <sites>
    <redirect symbol="loadavg_proc_show" object="loadavg.o" function="hvp_loadavg_show"/>
  </sites>
</patch>
""")


def setUpModule():
    if os.geteuid() != 0:
        raise RuntimeError("live tests need root (libvirt qemu:///system, /proc/PID/mem)")
    for tool in ("virsh", os.environ.get("CC", "gcc")):
        if not shutil.which(tool):
            raise RuntimeError(f"{tool} not found")
    if not os.access(hvpatch_exe(), os.X_OK):
        raise RuntimeError(f"hvpatch binary not found: {hvpatch_exe()} (build it, or set HVPATCH)")
    subprocess.run([os.path.join(IMAGES, "setup-host.sh")], check=True, stdout=subprocess.DEVNULL)
    ENV["work"] = tempfile.mkdtemp(prefix="hvp-rl-")
    os.environ["HVPATCH_STATE_DIR"] = os.path.join(ENV["work"], "state")
    xml = os.path.join(ENV["work"], "shmem.xml")
    with open(xml, "w") as f:
        f.write(SHMEM_XML)
    ENV["guest"] = g = guestlib.Guest.create(NAME, paging=4, kaslr=True, xml_extra=xml, timeout=600,
                                             kernel_dir=guestlib.kernel_dir())
    build_id = g.build_id()
    d = ENV["work"]
    ENV["b1"] = loadavg_bundle(d, build_id, 1)
    ENV["b2"] = loadavg_bundle(d, build_id, 2)
    rc, rd, err = hv("read", NAME, "cmdline_proc_show", 64)
    if rc != 0:
        raise RuntimeError(f"hvpatch read: {rd} {err}")
    subprocess.run([os.path.join(IMAGES, "demo", "build-demo.sh"), "--build-id", build_id, "--cmdline-bytes",
                    rd["hex"], "-o", os.path.join(d, "demo")], check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, HVPATCH=hvpatch_exe()))
    ENV["cmdline"] = os.path.join(d, "demo", "demo-cmdline.hvp")
    tainted = g.check("cat /proc/sys/kernel/tainted").strip()
    if tainted != "0":
        raise RuntimeError(f"the guest is tainted ({tainted}) before any patch: the taint check would mean nothing")


def tearDownModule():
    if ENV.get("guest"):
        try:
            ENV["guest"].destroy()
        except guestlib.GuestError as e:
            print(f"cleanup: {e}", file=sys.stderr)
        ENV.pop("guest")
    if ENV.get("work"):
        shutil.rmtree(ENV["work"], ignore_errors=True)


class RevertUnderLoad(unittest.TestCase):
    def setUp(self):
        self.g = ENV["guest"]
        for p in self.status()["patches"]:      # whatever an earlier test left applied
            hv("revert", NAME, p["id"])

    def apply(self, bundle, *opts):
        rc, out, err = hv("apply", "--insecure-unsigned", *opts, NAME, bundle)
        self.assertEqual(rc, 0, f"apply {os.path.basename(bundle)}: {out} {err}")
        return out

    def revert(self, pid):
        rc, out, err = hv("revert", NAME, pid)
        self.assertEqual(rc, 0, f"revert {pid}: {out} {err}")
        return out

    def status(self):
        rc, st, err = hv("status", NAME)
        self.assertEqual(rc, 0, f"status: {st} {err}")
        return st

    def oopses(self):
        return [line for line in self.g.check("dmesg", timeout=60).splitlines() if OOPS.search(line)]

    def console(self, since=0):
        """The guest's serial console from byte since: oopses land there even when the guest dies."""
        try:
            with open(self.g.console_log, "rb") as f:
                f.seek(since)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def assert_healthy(self, what):
        bad = self.oopses()
        self.assertEqual(bad, [], f"{what}: the guest's dmesg has {len(bad)} oops lines: {bad[:12]}")
        self.assertEqual(self.g.check("cat /proc/sys/kernel/tainted").strip(), "0", f"{what}: kernel tainted")

    def area(self, st, kind):
        areas = {a["kind"]: a for a in st.get("areas", [])}
        self.assertIn(kind, areas, f"status --json has no {kind} area: {st.get('areas')}")
        return areas[kind]

    def test_1_slack_fills_then_enospc(self):
        """Revert keeps (retires) the code: the slack fills, then a clear ENOSPC."""
        g = self.g
        cycles, last_err = 0, None
        ranges = []
        while cycles < 64:
            rc, out, err = hv("apply", "--insecure-unsigned", "--area", "slack", NAME, ENV["b1"])
            if rc != 0:
                last_err = out
                break
            self.assertTrue(g.check("cat /proc/loadavg").endswith(MARKER))
            code = [w for w in self.status()["patches"][0]["writes"] if w["kind"] == "area"]
            ranges.append((int(code[0]["va"], 16), sum(w["len"] for w in code)))
            self.revert("loadavg-1")
            self.assertFalse(g.check("cat /proc/loadavg").endswith(MARKER))
            # The code is still there after the revert (QEMU's view): retired, not erased.
            va, n = ranges[-1]
            rc, rd, err = hv("read", NAME, hex(va), min(n, 64))
            self.assertEqual(rc, 0, rd)
            gpa = g.gva2gpa(va)
            xp = bytes(int(b, 16) for b in re.findall(r"\b0x([0-9a-f]{2})\b",
                                                      g.hmp("xp /%dxb 0x%x" % (min(n, 64), gpa))))
            self.assertEqual(xp, bytes.fromhex(rd["hex"]))
            self.assertNotEqual(set(xp), {xp[0]}, f"cycle {cycles}: the code at 0x{va:x} was erased by revert")
            cycles += 1
        self.assertIsNotNone(last_err, "64 apply/revert cycles and the slack never filled: revert erases code "
                                       "that a task may still run")
        self.assertGreater(cycles, 0, f"not even one apply fitted the slack: {last_err}")
        FIGURES["slack_cycles"] = cycles
        # No two cycles placed code in the same bytes.
        for i, (a, n) in enumerate(ranges):
            for b, m in ranges[:i]:
                self.assertFalse(a < b + m and b < a + n, f"0x{a:x}+{n} reuses 0x{b:x}+{m}")
        self.assertEqual(rc, 1, last_err)
        self.assertRegex(last_err["error"], r"no room for \d+ bytes in the slack area: (\d+) bytes left")
        left = int(re.search(r": (\d+) bytes left", last_err["error"]).group(1))

        st = self.status()
        self.assertEqual(st["patches"], [])
        slack = self.area(st, "slack")
        self.assertEqual(slack["room"], left, slack)
        self.assertEqual(len(slack["retired"]), cycles, slack)
        self.assertEqual(sorted((int(r["va"], 16), r["len"]) for r in slack["retired"]), sorted(ranges))
        for r in slack["retired"]:
            self.assertEqual(r["patch_id"], "loadavg-1")
            self.assertEqual(r["state"], "code", r)       # memory still holds the code
        rc, text = guestlib.hvpatch("status", NAME, json=False)
        self.assertEqual(rc, 0, text)
        self.assertRegex(text, r"area:\s+slack .* %d bytes left, %d retired ranges" % (left, cycles))
        # check says the same before anything is paused.
        rc, chk, err = hv("check", "--insecure-unsigned", "--area", "slack", NAME, ENV["b1"])
        self.assertEqual(rc, 1, chk)
        self.assertFalse(chk["would_apply"])
        self.assertRegex(json.dumps(chk["reasons"]), r"bytes left")
        self.assert_healthy("after the slack filled")

    def test_2_cycles_under_load(self):
        g = self.g
        extra = CMDLINE_LOOP if SOAK else ""
        retired0 = sum(len(a["retired"]) for a in self.status()["areas"])
        nloops = int(g.check(LOAD_START.replace("EXTRA", extra)).strip())
        self.assertGreaterEqual(nloops, 4)
        console0 = len(self.console())
        pauses, t0, done, failure, alive = [], time.monotonic(), 0, None, -1
        try:
            for i in range(CYCLES):
                out = self.apply(ENV["b1"])
                pauses.append(out["pause_ms"])
                if SOAK:                        # a cumulative replace, then a replace site
                    out = self.apply(ENV["b2"])
                    self.assertEqual(out["replaced"], "loadavg-1")
                    pauses.append(out["pause_ms"])
                    pauses.append(self.revert("loadavg-2")["pause_ms"])
                    pauses.append(self.apply(ENV["cmdline"])["pause_ms"])
                    pauses.append(self.revert("demo-cmdline-1")["pause_ms"])
                else:
                    pauses.append(self.revert("loadavg-1")["pause_ms"])
                done = i + 1
                if OOPS.search(self.console(console0)):     # a local file: cheap
                    FIGURES["first_oops_by_cycle"] = done
                    break
            alive = int(g.check(LOAD_ALIVE).strip())
        except (AssertionError, guestlib.GuestError) as e:
            failure = e                 # the guest may be dead: look at its console first
        elapsed = time.monotonic() - t0
        try:
            g.run(LOAD_STOP)
        except guestlib.GuestError:
            pass
        bad = [line for line in self.console(console0).splitlines() if OOPS.search(line)]
        FIGURES.update(cycles=done, oopses=sum("Oops" in b for b in bad), seconds=round(elapsed, 1),
                       ms_per_cycle=round(1000 * elapsed / max(done, 1), 1), soak=SOAK, loops=nloops,
                       loops_alive=alive)
        if pauses:
            FIGURES.update(pause_median_ms=round(statistics.median(pauses), 3), pause_max_ms=round(max(pauses), 3))
        print(f"\nfigures: {json.dumps(FIGURES)}", file=sys.stderr)
        self.assertEqual(bad, [], f"after {done} cycles the guest's console has {len(bad)} oops lines: {bad[:16]}")
        if failure:
            raise failure
        self.assertEqual(done, CYCLES)
        self.assertEqual(alive, nloops, "a load loop died (killed by an oops?)")
        self.assert_healthy(f"after {done} cycles")
        st = self.status()
        self.assertEqual(st["patches"], [])
        redirects = CYCLES * (2 if SOAK else 1)
        self.assertEqual(sum(len(a["retired"]) for a in st["areas"]) - retired0, redirects,
                         "every revert (and replace) retires the redirect's code, and only that")
        device = self.area(st, "device")
        self.assertLess(device["room"], device["len"])

    def test_3_reboot_fresh_area(self):
        """A new boot starts with fresh areas: the retired ranges of the old boot are released."""
        g = self.g
        for kind in ("slack", "device"):       # run alone: retire something first
            if not self.area(self.status(), kind)["retired"]:
                self.apply(ENV["b1"], "--area", kind)
                self.revert("loadavg-1")
        before = self.status()
        self.assertTrue(self.area(before, "slack")["retired"], "nothing retired to release")
        old_device = [r for r in self.record()["retired"] if self.in_device(before, r)]
        self.assertTrue(old_device, "no device code retired before the reboot")
        base0 = before["kernel_base"]
        g.reboot(timeout=900)           # a loaded host slows TCG boots a lot
        st = self.status()
        self.assertNotEqual(st["kernel_base"], base0, "KASLR gave the same base (rare): run again")
        slack = self.area(st, "slack")
        self.assertEqual(slack["retired"], [], slack)
        self.assertEqual(slack["room"], slack["len"], slack)
        self.apply(ENV["b1"], "--area", "slack")
        self.assertTrue(g.check("cat /proc/loadavg").endswith(MARKER))
        self.revert("loadavg-1")
        self.assertEqual(len(self.area(self.status(), "slack")["retired"]), 1)

        # The device is host memory: code retired there in the old boot is still in the
        # BAR. The first patch placing code there erases it in its window.
        stale = [r for r in self.record()["retired"] if r["released_by"] == "boot"]
        self.assertEqual(len(stale), len(old_device), "device code of the old boot not kept for erasure")
        for r in old_device[:3]:
            self.assertEqual(self.xp(int(r["gpa"], 16), 16), bytes.fromhex(r["code"])[:16])
        self.apply(ENV["b1"], "--area", "device")
        self.assertTrue(g.check("cat /proc/loadavg").endswith(MARKER))
        for r in old_device[:3]:
            self.assertEqual(self.xp(int(r["gpa"], 16), 16), bytes(16), "code of the old boot not erased")
        self.revert("loadavg-1")
        self.apply(ENV["b1"], "--area", "device")       # its prune drops the erased ranges
        self.revert("loadavg-1")
        self.assertEqual([r for r in self.record()["retired"] if r["released_by"]], [])
        self.assertEqual(len(self.area(self.status(), "device")["retired"]), 2)
        NOTES.append(f"reboot: {len(old_device)} device ranges of the old boot erased "
                     f"({len(stale)} marked before the first device apply)")
        self.assert_healthy("after the reboot")

    def record(self):
        """The domain's record file, as hvpatch wrote it."""
        path = glob.glob(os.path.join(os.environ["HVPATCH_STATE_DIR"], "domains", "*.json"))[0]
        with open(path) as f:
            return json.load(f)

    def xp(self, gpa, n):
        out = self.g.hmp("xp /%dxb 0x%x" % (n, gpa))
        return bytes(int(b, 16) for b in re.findall(r"\b0x([0-9a-f]{2})\b", out))[:n]

    @staticmethod
    def in_device(st, r):
        dev = [a for a in st["areas"] if a["kind"] == "device"]
        return bool(dev) and not (int(r["va"], 16) < int(dev[0]["start"], 16)
                                  or int(r["va"], 16) >= int(dev[0]["start"], 16) + dev[0]["len"])


def main():
    t0 = time.monotonic()
    suite = unittest.defaultTestLoader.loadTestsFromNames(sys.argv[1:], sys.modules[__name__]) if sys.argv[1:] \
        else unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    try:
        result = unittest.TextTestRunner(verbosity=2).run(suite)
    finally:
        tearDownModule()
    print(f"figures: {json.dumps(FIGURES)}")
    for n in NOTES:
        print("note:", n)
    if os.environ.get("HVP_REVERT_JSON"):
        with open(os.environ["HVP_REVERT_JSON"], "w") as f:
            json.dump(FIGURES, f)
    print(f"runtime {time.monotonic() - t0:.0f}s")
    bad = {getattr(t, "test_case", t).id() for t, _ in result.failures + result.errors}
    bad |= {t.id() for t, _ in result.skipped}
    print(f"{max(result.testsRun - len(bad), 0)} passed, {len(bad)} failed")
    return 0 if not bad and result.wasSuccessful() and result.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main())

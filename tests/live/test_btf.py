#!/usr/bin/env python3
"""The guest kernel's BTF read from its memory, and what hvpatch reads with it:
`hvpatch ps` and `hvpatch dmesg`, on a 4-level and a 5-level guest (KASLR on), against
oracles inside the guest:

  * ps     == the guest's own /proc: every thread (/proc/TGID/task/TID) with the same
              pid, tgid and comm, and nothing else but the idle tasks, pid 0
              (swapper/0 .. swapper/N-1, one per vCPU, listed first), which /proc
              does not list. The task set changes while we look (kworkers come and
              go), and the guest cannot be paused while it answers. So each attempt
              takes a /proc snapshot S1, then `hvpatch ps` (which pauses the guest for
              its walk), then a snapshot S2; it counts only when S1 == S2 (nothing
              changed around the walk) and then ps must equal them exactly. The reading
              command itself is known and left out: the snapshot is one `sh -c` made
              of shell builtins only (glob, read), so its only process is that shell,
              whose pid ($$) it prints; it has exited before hvpatch reads (the guest's
              command loop waits for it before it answers). Up to 6 attempts: a broken
              ps fails every one.
              /proc/PID/comm is not task->comm for two kinds of kernel threads: a
              workqueue worker shows "kworker/0:1-events" (the work's description
              after '-' or '+'), a kernel thread whose name was cut to 15 characters
              shows its full name. ps prints task->comm (what /proc/PID/stat's
              kernel side starts from), so /proc's comm must be it, or it followed by
              '-'/'+' and more (workers), or longer than it when it is 15 characters.
  * ps --json: an array of objects with pid, tgid, comm, state, cpu; states are ps
              letters, cpu < the vCPU count; the guest is running afterwards (never
              left paused); a guest paused by someone else (virsh suspend) is read
              and stays paused.
  * dmesg  == the guest's own `dmesg` (busybox: the syslog buffer), line for line: with
              G1 taken before and G2 after, G1 is a prefix of hvpatch's lines and those
              are a prefix of G2 (the log only grows); a line written to /dev/kmsg just
              before shows up with its level stripped, as dmesg shows it.
  * dmesg --json: records whose texts, split on newlines, are the same lines.
  * inspect's boot_security (Secure Boot, EFI boot, lockdown from guest memory) ==
              the guest kernel's own "secureboot: Secure boot ..." log line,
              /sys/firmware/efi, and /sys/kernel/security/lockdown before and after
              the guest raises its lockdown to integrity (run last: it cannot be undone).
              A guest booted with Secure Boot on is not here: a directly loaded Debian
              kernel does not pass OVMF's signature check without shim (issue 10).

    python3 tests/live/test_btf.py        # last line: "N passed, M failed"

Needs root, libvirt and the kernel (images/fetch-kernel.sh; env HVP_KERNEL_DIR skips
the fetch). Env HVPATCH: the hvpatch binary (default build/cli/hvpatch).
"""

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib  # noqa: E402

PREFIX = "hvp-btf-"
ATTEMPTS = 6
CREATED = []
TMP = {}
KERNEL = {}
TIMINGS = []

# Shell builtins only: the snapshot adds exactly one process, the sh -c itself ($$).
SNAPSHOT = ('echo "self $$"; for t in /proc/[0-9]*/task/[0-9]*; do c=; '
            'read -r c < "$t/comm" 2>/dev/null || continue; p=${t#/proc/}; '
            'echo "${p%%/*} ${t##*/} $c"; done')


def hvpatch(*args, json=True, timeout=300):
    exe = os.environ.get("HVPATCH", "build/cli/hvpatch")
    if not os.path.isabs(exe) and os.sep in exe:
        exe = os.path.join(guestlib.REPO, exe)
    argv = [exe] + (["--json"] if json else []) + [str(a) for a in args]
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise guestlib.GuestError(f"hvpatch binary not found: {exe} (build it, or set HVPATCH)") from None
    out = p.stdout
    if json:
        try:
            out = guestlib.validate_json(guestlib.jsonlib.loads(p.stdout), args)
        except ValueError as e:
            raise AssertionError(f"hvpatch {' '.join(argv[1:])}: exit {p.returncode}, stdout is not JSON "
                                 f"({e}): {p.stdout[:300]!r}; stderr: {p.stderr[-300:]!r}") from None
    return p.returncode, out, p.stderr


def hvpatch_ok(*args, **kw):
    rc, out, err = hvpatch(*args, **kw)
    if rc != 0:
        raise AssertionError(f"hvpatch {' '.join(map(str, args))} exited {rc}: {err.strip()[-500:]} {out!s:.300}")
    return out


def proc_comm_matches(proc, comm):
    """Whether /proc/PID/comm `proc` is what the kernel shows for task->comm `comm`."""
    if proc == comm:
        return True
    if proc.startswith(comm) and len(proc) > len(comm):
        return proc[len(comm)] in "-+" or len(comm) == 15
    return False


def comm_key(proc):
    """A /proc comm without a worker's description (which changes as it works)."""
    if proc.startswith("kworker/"):
        return re.split(r"[-+]", proc, maxsplit=1)[0]
    return proc


def setUpModule():
    if os.geteuid() != 0:
        raise RuntimeError("live BTF tests need root (libvirt qemu:///system)")
    subprocess.run([os.path.join(guestlib.REPO, "images", "setup-host.sh")], check=True,
                   stdout=subprocess.DEVNULL)
    KERNEL["dir"] = guestlib.kernel_dir()
    TMP["dir"] = tempfile.mkdtemp(prefix="hvp-btf-")
    os.environ["HVPATCH_STATE_DIR"] = TMP["dir"]


def tearDownModule():
    if TMP.get("dir"):
        shutil.rmtree(TMP["dir"], ignore_errors=True)


class BtfBase:
    paging = None

    @classmethod
    def setUpClass(cls):
        cls.name = f"{PREFIX}{cls.paging}-{os.getpid()}"
        CREATED.append(cls.name)
        cls.g = guestlib.Guest.create(cls.name, paging=cls.paging, kaslr=True, kernel_dir=KERNEL["dir"])
        TIMINGS.append(f"{cls.paging}-level: boot to HVP-READY {cls.g.boot_seconds}s")

    @classmethod
    def tearDownClass(cls):
        cls.g.destroy()

    def snapshot(self):
        """{tid: (tgid, comm)} of every thread in the guest's /proc but the reading shell."""
        out = self.g.check(SNAPSHOT, timeout=120)
        lines = out.splitlines()
        self.assertTrue(lines and lines[0].startswith("self "), f"snapshot output: {out[:200]!r}")
        me = lines[0].split()[1]
        snap = {}
        for line in lines[1:]:
            f = line.split(" ", 2)
            if len(f) == 3 and f[1] != me and f[0] != me:
                snap[int(f[1])] = (int(f[0]), f[2])
        self.assertGreater(len(snap), 20, f"too few tasks in /proc: {out[:300]!r}")
        return snap

    def vcpus(self):
        v = hvpatch_ok("inspect", self.name)["vcpus"]
        return v if isinstance(v, int) else len(v)

    def domstate(self):
        return subprocess.run(guestlib.VIRSH + ["domstate", self.name], capture_output=True,
                              text=True).stdout.strip()

    def test_ps_equals_proc(self):
        tried = []
        for attempt in range(ATTEMPTS):
            s1 = self.snapshot()
            t0 = time.monotonic()
            tasks = hvpatch_ok("ps", self.name)
            took = time.monotonic() - t0
            s2 = self.snapshot()
            k1 = {k: (v[0], comm_key(v[1])) for k, v in s1.items()}
            k2 = {k: (v[0], comm_key(v[1])) for k, v in s2.items()}
            if k1 != k2:
                tried.append(f"attempt {attempt + 1}: /proc changed around the walk "
                             f"({sorted(set(k1) ^ set(k2))[:10]})")
                continue
            idle = [t["comm"] for t in tasks if t["pid"] == 0]
            self.assertEqual(idle, [f"swapper/{i}" for i in range(self.vcpus())],
                             "pid 0: one idle task per CPU, first")
            got = {t["pid"]: (t["tgid"], t["comm"]) for t in tasks if t["pid"] != 0}
            self.assertEqual(len(got) + len(idle), len(tasks), "a pid listed twice")
            diffs = []
            for tid in sorted(set(got) | set(s1)):
                if tid not in got:
                    diffs.append(f"{tid} {s1[tid]} only in /proc")
                elif tid not in s1:
                    diffs.append(f"{tid} {got[tid]} only in hvpatch ps")
                elif got[tid][0] != s1[tid][0] or not proc_comm_matches(s1[tid][1], got[tid][1]):
                    diffs.append(f"{tid}: /proc {s1[tid]}, hvpatch ps {got[tid]}")
            if not diffs:
                TIMINGS.append(f"{self.paging}-level: ps of {len(tasks)} tasks in {took:.2f}s "
                               f"(attempt {attempt + 1})")
                return
            tried.append(f"attempt {attempt + 1}: " + "; ".join(diffs[:8]))
        self.fail("hvpatch ps never matched a stable /proc:\n  " + "\n  ".join(tried))

    def test_ps_json_fields_and_running_after(self):
        tasks = hvpatch_ok("ps", self.name)
        self.assertIsInstance(tasks, list)
        vcpus = self.vcpus()
        self.assertGreater(hvpatch_ok("inspect", self.name)["kernel"]["btf_size"], 1 << 20)
        for t in tasks:
            for key in ("pid", "tgid", "comm", "state", "cpu", "stack", "task"):
                self.assertIn(key, t)
            self.assertIn(t["state"], list("RSDTtXZPI"), t)
            self.assertTrue(0 <= t["cpu"] < vcpus, t)
            # the kernel half: 0xffff8... with 4-level paging, 0xff... with 5-level
            self.assertGreaterEqual(int(t["stack"], 16), 0xff00000000000000, t)
            self.assertGreaterEqual(int(t["task"], 16), 0xff00000000000000, t)
        by_pid = {t["pid"]: t for t in tasks}
        self.assertEqual(by_pid[1]["comm"], "init")
        self.assertEqual(by_pid[2]["comm"], "kthreadd")
        self.assertEqual(self.domstate(), "running")
        text = hvpatch_ok("ps", self.name, json=False)
        self.assertRegex(text.splitlines()[0], r"^\s+PID\s+TGID S\s+CPU")
        self.assertTrue(any(re.search(r"\s2\s+2 \S .* kthreadd$", line) for line in text.splitlines()), text[:500])
        # A guest paused by someone else is read as it is and stays paused.
        subprocess.run(guestlib.VIRSH + ["suspend", self.name], check=True, capture_output=True)
        try:
            self.assertEqual(self.domstate(), "paused")
            paused_walk = hvpatch_ok("ps", self.name)
            self.assertEqual(self.domstate(), "paused")
        finally:
            subprocess.run(guestlib.VIRSH + ["resume", self.name], capture_output=True)
        self.assertEqual({t["pid"] for t in paused_walk if t["pid"] < 3}, {0, 1, 2})
        self.assertEqual(self.domstate(), "running")
        # --no-pause reads the running guest: the same processes (kworkers may differ).
        unpaused = hvpatch_ok("ps", "--no-pause", self.name)
        self.assertEqual({t["pid"] for t in unpaused if t["pid"] < 3}, {0, 1, 2})

    def test_dmesg_equals_guest(self):
        marker = f"hvpatch-btf-test-{secrets.token_hex(6)}"
        self.g.check(f"echo '<4>{marker} one' > /dev/kmsg")
        for attempt in range(3):
            g1 = self.g.check("dmesg", timeout=120).splitlines()
            ours = hvpatch_ok("dmesg", self.name, json=False).splitlines()
            g2 = self.g.check("dmesg", timeout=120).splitlines()
            if ours[:len(g1)] == g1 and g2[:len(ours)] == ours:
                break
        else:
            first = next((i for i, (a, b) in enumerate(zip(ours, g1)) if a != b), min(len(ours), len(g1)))
            self.fail(f"hvpatch dmesg ({len(ours)} lines) is not between the guest's dmesg before "
                      f"({len(g1)}) and after ({len(g2)}); first difference at line {first + 1}: "
                      f"hvpatch {ours[first:first + 1]!r}, guest {g1[first:first + 1]!r}")
        self.assertGreater(len(g1), 100)
        self.assertRegex(ours[0], r"^\[    0\.000000\] Linux version ")
        self.assertTrue(any(re.fullmatch(r"\[\s*\d+\.\d{6}\] " + marker + " one", line) for line in ours),
                        f"{marker} not in hvpatch dmesg")
        records = hvpatch_ok("dmesg", self.name)
        lines = [line for r in records for line in r["text"].split("\n")]
        texts = [re.sub(r"^\[\s*\d+\.\d{6}\] ", "", line) for line in ours]
        self.assertEqual(lines[:len(texts)], texts)
        # printk.time off: neither the guest's dmesg nor hvpatch's prints the time.
        self.g.check("echo N > /sys/module/printk/parameters/time")
        try:
            g1 = self.g.check("dmesg", timeout=120).splitlines()
            untimed = hvpatch_ok("dmesg", self.name, json=False).splitlines()
        finally:
            self.g.check("echo Y > /sys/module/printk/parameters/time")
        self.assertEqual(untimed[:len(g1)], g1)
        self.assertTrue(untimed[0].startswith("Linux version "), untimed[0])
        mine = [r for r in records if r["text"] == f"{marker} one"]
        self.assertEqual(len(mine), 1)
        self.assertEqual(mine[0]["level"], 4)
        self.assertEqual(self.domstate(), "running")

    def test_zz_boot_security_from_memory(self):
        """Last (zz): it raises the guest's lockdown, which nothing can lower again."""
        guest_sb = re.search(r"secureboot: Secure boot (\w+)", self.g.check("dmesg"))
        self.assertIsNotNone(guest_sb, "the guest kernel logged no 'secureboot:' line")
        efi = self.g.run("test -d /sys/firmware/efi")[0] == 0
        self.g.check("mkdir -p /sys/kernel/security; mountpoint -q /sys/kernel/security || "
                     "mount -t securityfs none /sys/kernel/security")
        level = lambda: re.search(r"\[(\w+)\]", self.g.check("cat /sys/kernel/security/lockdown")).group(1)
        before = level()
        sec = hvpatch_ok("inspect", self.name)["boot_security"]
        self.assertEqual(sec["secure_boot"], guest_sb.group(1))
        self.assertEqual(sec["efi_boot"], efi)
        self.assertEqual(sec["lockdown"], before)
        self.assertEqual(before, "none")
        self.g.check("echo integrity > /sys/kernel/security/lockdown")
        self.assertEqual(level(), "integrity")
        sec = hvpatch_ok("inspect", self.name)["boot_security"]
        self.assertEqual(sec["lockdown"], "integrity")
        self.assertGreater(sec["lockdown_raw"], 0)
        text = hvpatch_ok("inspect", self.name, json=False)
        self.assertRegex(text, rf"secure boot: +{guest_sb.group(1)}, EFI boot; lockdown: integrity")


class Paging4(BtfBase, unittest.TestCase):
    paging = 4


class Paging5(BtfBase, unittest.TestCase):
    paging = 5


def main():
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    t0 = time.monotonic()
    try:
        result = unittest.TextTestRunner(verbosity=2).run(suite)
    finally:
        for name in CREATED:
            guestlib.Guest(name).destroy()
    for line in TIMINGS:
        print(line)
    print(f"total {time.monotonic() - t0:.0f}s")
    failed = len(result.failures) + len(result.errors)
    in_tests = sum(1 for t, _ in result.failures + result.errors if isinstance(t, unittest.TestCase))
    passed = result.testsRun - in_tests - len(result.skipped)
    print(f"{passed} passed, {failed} failed")
    return 0 if result.wasSuccessful() and not result.skipped else 1


if __name__ == "__main__":
    sys.exit(main())

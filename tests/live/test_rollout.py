#!/usr/bin/env python3
"""hvpatch rollout over three live guests (rings 1,50%,100%: one guest per ring, parallel 2).

The guests (4-level paging, KASLR) are shared by the cases, in order; each case leaves
them unpatched. Keys and signatures come from the real minisign; the policy trusts the
key for the three guests. The bundles are test_health.py's: good is
images/demo/build-demo.sh's demo-version (/proc/version gets a marker), warn redirects
loadavg_proc_show to a body that WARNs (test_health.WARN_C), triggered by a loop reading
/proc/loadavg inside every guest while the health gate watches.

  1. the good bundle reaches every guest: the marker in each guest's /proc/version;
  2. the warn bundle fails the health gate on the first ring's guest: the rollout halts
     (exit 6), the other guests are untouched (loadavg_proc_show's bytes in their memory
     compared before and after, no patch recorded, their state 'pending');
  3. the good bundle again (parallel 1), the rollout killed (SIGKILL) while the second
     guest's health gate watches (memory patched, state 'running'), then run again: it
     resumes, the first guest is not touched (no event, its record's applied_at
     unchanged), the second is read and found applied (not applied again: applied_at
     unchanged), the third is applied; every guest ends patched once;
  4. on a terminal (a pty): each guest's line updated in place;
  5. --revert-on-halt: the warn bundle over rings 2,100%, only the first guest WARNs: the
     ring halts and the second guest, patched, is reverted;
  6. --rings @GROUP,...: a ring per policy group, in the order named.

Oracles hvpatch does not control: the guests' /proc/version and /proc/loadavg (through
the test command channel).

    python3 tests/live/test_rollout.py     # last line: "N passed, M failed"

Environment: HVPATCH (default build/cli/hvpatch), HVP_KERNEL_DIR, HVP_GUEST_DIR, CC.
Must run as root with libvirt (it fails, not skips, otherwise).
"""

import json
import os
import pty
import shutil
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib  # noqa: E402
import test_health  # noqa: E402  (its WARN bundle's source and the loops)

REPO = guestlib.REPO
VERSION_MARKER = " [hvpatch: hotpatched]"
WATCH = 20


hvpatch_exe = guestlib.hvpatch_exe


def setUpModule():
    if os.geteuid() != 0:
        raise RuntimeError("live rollout test needs root (libvirt qemu:///system)")
    for tool in ("minisign", "virsh", os.environ.get("CC", "gcc")):
        if not shutil.which(tool):
            raise RuntimeError(f"{tool} not found (images/setup-host.sh installs it)")
    if not os.access(hvpatch_exe(), os.X_OK):
        raise RuntimeError(f"{hvpatch_exe()} not found (build it, or set HVPATCH)")
    subprocess.run([os.path.join(REPO, "images", "setup-host.sh")], check=True, stdout=subprocess.DEVNULL)


class RolloutLive(unittest.TestCase):
    names = []

    @classmethod
    def setUpClass(cls):
        cls.ws = guestlib.Workspace("hvp-ro-rollout.", dirs=("work", "state"))
        cls.tmp, cls.work, cls.state = cls.ws.root, cls.ws.work, cls.ws.state
        try:
            cls.prepare()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def prepare(cls):
        # the three guests boot at once
        cls.names = [f"hvp-ro-{os.getpid()}-{c}" for c in "abc"]
        cls.g = guestlib.boot_guests(cls.names, paging=4, kaslr=True, kernel_dir=guestlib.kernel_dir())
        ids = {g.build_id() for g in cls.g}
        if len(ids) != 1:
            raise RuntimeError(f"the guests run different kernels: {ids}")
        cls.build_id = ids.pop()

        _, key = guestlib.minisign_keypair(cls.work, "ro")
        cls.good = guestlib.demo_bundle(cls.build_id, os.path.join(cls.work, "good"))
        guestlib.minisign_sign(key, cls.good, "good")

        cls.warn = test_health.build_warn_bundle(cls.work, cls.build_id, "ro-loadavg",
                                                 "loadavg_proc_show WARNs (the rollout's halting test)",
                                                 os.path.join(cls.work, "warn.hvp"))
        guestlib.minisign_sign(key, cls.warn, "warn")

        cls.policy = guestlib.write_policy(os.path.join(cls.work, "policy.xml"), guestlib.policy_key("ro", "ro.pub"),
                                           guestlib.policy_group("ro-rollout", f"hvp-ro-{os.getpid()}-*", cls.build_id))

    @classmethod
    def tearDownClass(cls):
        try:
            for n in cls.names:
                guestlib.Guest(n).destroy()
        finally:
            cls.ws.cleanup()

    # -- helpers ---------------------------------------------------------------
    def env(self):
        return dict(os.environ, HVPATCH_STATE_DIR=self.state)

    def hv(self, *args):
        p = subprocess.run([hvpatch_exe(), "--json", "--policy", self.policy] + [str(a) for a in args],
                           capture_output=True, text=True, timeout=600, env=self.env())
        try:
            return p.returncode, guestlib.validate_json(json.loads(p.stdout), args), p.stderr
        except ValueError:
            self.fail(f"hvpatch {args}: not JSON (exit {p.returncode}): {p.stdout!r} {p.stderr!r}")

    def rollout_argv(self, bundle, state, *extra):
        return ([hvpatch_exe(), "--policy", self.policy, "rollout", "--json", "--domains", f"hvp-ro-{os.getpid()}-*",
                 "--rings", "1,50%,100%", "--parallel", "2", "--state", state] + [str(a) for a in extra] + [bundle])

    def rollout(self, bundle, state, *extra):
        """(exit code, events) of a rollout with --json: one JSON object per line."""
        p = subprocess.run(self.rollout_argv(bundle, state, *extra), capture_output=True, text=True, timeout=1800,
                           env=self.env())
        try:
            events = guestlib.validate_json_lines(p.stdout)
        except (ValueError, AssertionError):
            self.fail(f"rollout: not valid JSON lines (exit {p.returncode}): {p.stdout!r} {p.stderr!r}")
        return p.returncode, events, p.stderr

    def applied(self, name):
        rc, st, err = self.hv("status", name)
        self.assertEqual(rc, 0, f"{st} {err}")
        return {p["id"]: p for p in st["patches"] if p["state"] == "applied"}

    def revert_all(self, patch_id):
        for n in self.names:
            if patch_id in self.applied(n):
                rc, out, err = self.hv("revert", n, patch_id)
                self.assertEqual(rc, 0, f"{out} {err}")

    # -- the cases, in order on the three guests ----------------------------------
    def test_1_good_bundle_reaches_every_guest(self):
        state = os.path.join(self.work, "good-1.json")
        rc, ev, err = self.rollout(self.good, state, "--health", 3, "--soak", 1)
        self.assertEqual(rc, 0, f"{ev} {err}")
        rings = [e for e in ev if e["event"] == "ring-start"]
        self.assertEqual([r["guests"] for r in rings], [[n] for n in self.names])
        done = [e for e in ev if e["event"] == "guest"]
        self.assertEqual(sorted(e["domain"] for e in done), self.names)
        self.assertTrue(all(e["status"] == "done" and "applied demo-version-1" in e["detail"] for e in done), done)
        summary = ev[-1]
        self.assertEqual(summary["event"], "summary")
        self.assertEqual(summary["counts"]["done"], 3, summary)
        self.assertFalse(summary["halted"])
        for g in self.g:
            self.assertIn(VERSION_MARKER, g.check("cat /proc/version"), g.name)
        # run again: finished, nothing touched
        rc, ev2, err = self.rollout(self.good, state, "--health", 3)
        self.assertEqual(rc, 0, f"{ev2} {err}")
        self.assertEqual([e for e in ev2 if e["event"] == "guest"], [])
        self.assertTrue(ev2[-1]["resumed"])
        self.revert_all("demo-version-1")
        for g in self.g:
            self.assertNotIn(VERSION_MARKER, g.check("cat /proc/version"), g.name)

    def test_2_warning_bundle_halts_after_the_first_ring(self):
        state = os.path.join(self.work, "warn.json")
        before = {n: self.hv("read", n, "loadavg_proc_show", 64)[1] for n in self.names[1:]}
        for g in self.g:
            g.check(test_health.LOOP_START)
        try:
            rc, ev, err = self.rollout(self.warn, state, "--health", WATCH)
        finally:
            for g in self.g:
                g.check(test_health.LOOP_STOP)
        self.assertEqual(rc, 6, f"{ev} {err}")
        guests = [e for e in ev if e["event"] == "guest"]
        self.assertEqual([(e["domain"], e["status"], e["code"], e["exit"]) for e in guests],
                         [(self.names[0], "failed", "health", 6)], guests)
        self.assertEqual([e["ring"] for e in ev if e["event"] == "ring-start"], [1])
        ends = [e for e in ev if e["event"] == "ring-end"]
        self.assertEqual(len(ends), 1)
        self.assertTrue(ends[0]["halted"])
        self.assertTrue(ev[-1]["halted"])
        self.assertEqual(ev[-1]["counts"]["pending"], 2, ev[-1])
        # the other guests: memory as it was, nothing recorded, still pending in the state
        for n in self.names[1:]:
            self.assertEqual(self.hv("read", n, "loadavg_proc_show", 64)[1], before[n], n)
            self.assertEqual(self.applied(n), {}, n)
        for g in self.g:
            self.assertNotIn("hvp-warn", g.check("cat /proc/loadavg"), g.name)
        with open(state) as f:
            st = json.load(f)
        self.assertEqual([g["status"] for g in st["guests"]], ["failed", "pending", "pending"])
        # halted stays halted
        rc, ev2, err = self.rollout(self.warn, state, "--health", WATCH)
        self.assertEqual(rc, 6, f"{ev2} {err}")
        self.assertEqual([e for e in ev2 if e["event"] == "guest"], [])
        self.assertIn("halted earlier", err)
        rc, out, err = self.hv("bad", "clear", "--all")
        self.assertEqual(rc, 0, f"{out} {err}")

    def test_3_killed_and_resumed_applies_nothing_twice(self):
        """Killed while the second guest is in its health gate (applied, state 'running'),
        then run again: the first guest is not touched, the second is read and found
        applied (code 'resumed'), the third is applied; every guest holds the patch once."""
        state = os.path.join(self.work, "good-3.json")
        p = subprocess.Popen(self.rollout_argv(self.good, state, "--health", WATCH, "--parallel", 1),
                             stdout=subprocess.PIPE, text=True, env=self.env())
        first = None
        try:
            for line in p.stdout:
                e = guestlib.validate_json_lines(line)[0]
                if e["event"] == "guest":
                    first = e
                    break
            self.assertIsNotNone(first, "the rollout ended before any guest was done")
            self.assertEqual((first["domain"], first["status"]), (self.names[0], "done"), first)
            # the second guest: wait until its memory holds the patch (its gate watches WATCH s)
            deadline = time.monotonic() + 600
            while VERSION_MARKER not in self.g[1].check("cat /proc/version"):
                self.assertIsNone(p.poll(), "the rollout ended before the second guest was patched")
                self.assertLess(time.monotonic(), deadline, "the second guest was not patched in time")
                time.sleep(0.5)
            p.send_signal(signal.SIGKILL)
        finally:
            p.kill()
            p.wait()
        self.assertEqual(p.returncode, -signal.SIGKILL)
        with open(state) as f:
            st = json.load(f)
        self.assertEqual([g["status"] for g in st["guests"]], ["done", "running", "pending"], st)
        recs = {n: self.applied(n).get("demo-version-1") for n in self.names[:2]}
        self.assertTrue(all(recs.values()), recs)
        self.assertEqual(self.applied(self.names[2]), {})

        rc, ev, err = self.rollout(self.good, state, "--health", 3)
        self.assertEqual(rc, 0, f"{ev} {err}")
        self.assertTrue(ev[-1]["resumed"])
        self.assertEqual(ev[-1]["counts"]["done"], 3, ev[-1])
        guests = {e["domain"]: e for e in ev if e["event"] == "guest"}
        print(f"\n  state after the kill: {[g['status'] for g in st['guests']]}; resumed: "
              f"{[(n, e['code'], e['detail'][:40]) for n, e in guests.items()]}", file=sys.stderr)
        self.assertEqual(sorted(guests), self.names[1:])
        self.assertEqual(guests[self.names[1]]["code"], "resumed", guests)
        self.assertIn("applied demo-version-1", guests[self.names[2]]["detail"])
        # the first two guests' record entries are the same ones (not applied again)
        for n in self.names[:2]:
            self.assertEqual(self.applied(n)["demo-version-1"]["applied_at"], recs[n]["applied_at"], n)
        for g in self.g:
            self.assertEqual(list(self.applied(g.name)), ["demo-version-1"], g.name)
            self.assertEqual(g.check("cat /proc/version").count(VERSION_MARKER), 1, g.name)
        self.revert_all("demo-version-1")

    def test_4_terminal_lines_update_in_place(self):
        """On a terminal (a pty as stdout): one line per guest of the ring, redrawn in place
        (cursor up, erase line), ending with each guest done; the summary in words."""
        state = os.path.join(self.work, "tty.json")
        argv = [a for a in self.rollout_argv(self.good, state, "--health", 0) if a != "--json"]
        master, slave = pty.openpty()
        try:
            p = subprocess.Popen(argv, stdout=slave, stderr=subprocess.PIPE, text=True, env=self.env())
            os.close(slave)
            out = b""
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:         # EIO: the other end is closed
                    break
                if not chunk:
                    break
                out += chunk
            err = p.communicate(timeout=600)[1]
        finally:
            os.close(master)
        text = out.decode(errors="replace")
        self.assertEqual(p.returncode, 0, f"{text!r} {err}")
        for ring in (1, 2, 3):
            self.assertIn(f"ring {ring}/3: 1 guest", text)
        self.assertIn("\x1b[1A", text)             # back up over the ring's one line ...
        self.assertIn("\r\x1b[2K", text)           # ... erased and drawn again
        for n in self.names:
            self.assertRegex(text, rf"{n} +running +applying")
            self.assertRegex(text, rf"{n} +done +applied demo-version-1")
        self.assertIn("rollout finished: 3 guests in 3 rings: 3 done, 0 skipped, 0 failed", text)
        for g in self.g:
            self.assertIn(VERSION_MARKER, g.check("cat /proc/version"), g.name)
        self.revert_all("demo-version-1")

    def test_5_revert_on_halt(self):
        """The warn bundle over rings 2,100% with --revert-on-halt, the WARN loop only in
        the first guest: it fails its gate, the ring halts, and the second guest, which
        passed (no loop: no WARN), is reverted by the halt. The third is untouched."""
        state = os.path.join(self.work, "revert.json")
        self.g[0].check(test_health.LOOP_START)
        try:
            argv = self.rollout_argv(self.warn, state, "--health", WATCH, "--revert-on-halt")
            argv[argv.index("1,50%,100%")] = "2,100%"
            p = subprocess.run(argv, capture_output=True, text=True, timeout=1800, env=self.env())
        finally:
            self.g[0].check(test_health.LOOP_STOP)
        ev = guestlib.validate_json_lines(p.stdout)
        self.assertEqual(p.returncode, 6, f"{ev} {p.stderr}")
        guests = [e for e in ev if e["event"] == "guest"]
        by = {}
        for e in guests:
            by.setdefault(e["domain"], []).append(e)
        self.assertEqual(sorted(by), self.names[:2], guests)
        self.assertEqual([(e["status"], e["code"]) for e in by[self.names[0]]], [("failed", "health")])
        second = by[self.names[1]]
        print(f"\n  second guest: {[(e['status'], e['code'], e['detail'][:50]) for e in second]}", file=sys.stderr)
        if second[0]["status"] == "done":
            # applied, passed its gate, then reverted when the ring halted
            self.assertEqual([e["status"] for e in second], ["done", "reverted"], second)
        else:
            # its apply started after the first guest's gate marked the bundle bad
            self.assertEqual((second[0]["status"], second[0]["code"]), ("failed", "marked-bad"), second)
        self.assertTrue(ev[-1]["halted"])
        for n in self.names:
            self.assertEqual(self.applied(n), {}, n)
        for g in self.g:
            self.assertNotIn("hvp-warn", g.check("cat /proc/loadavg"), g.name)
        with open(state) as f:
            self.assertEqual(json.load(f)["guests"][2]["status"], "pending")
        rc, out, err = self.hv("bad", "clear", "--all")
        self.assertEqual(rc, 0, f"{out} {err}")

    def test_6_rings_by_policy_group(self):
        """--rings @GROUP,...: a ring per policy group in the order named (the policy puts
        the first guest in ro-first, the others in ro-rest; named the other way round)."""
        pid = os.getpid()
        policy = guestlib.write_policy(os.path.join(self.work, "groups.xml"), guestlib.policy_key("ro", "ro.pub"),
                                       guestlib.policy_group("ro-first", f"hvp-ro-{pid}-a", self.build_id),
                                       guestlib.policy_group("ro-rest", f"hvp-ro-{pid}-*", self.build_id))
        argv = self.rollout_argv(self.good, os.path.join(self.work, "groups.json"), "--health", 0)
        argv[argv.index("1,50%,100%")] = "@ro-rest,@ro-first"
        argv[argv.index(self.policy)] = policy
        p = subprocess.run(argv, capture_output=True, text=True, timeout=1800, env=self.env())
        ev = guestlib.validate_json_lines(p.stdout)
        self.assertEqual(p.returncode, 0, f"{ev} {p.stderr}")
        self.assertEqual([e["guests"] for e in ev if e["event"] == "ring-start"],
                         [self.names[1:], self.names[:1]])
        self.assertEqual(ev[-1]["counts"]["done"], 3, ev[-1])
        for g in self.g:
            self.assertIn(VERSION_MARKER, g.check("cat /proc/version"), g.name)
        self.revert_all("demo-version-1")

def main():
    result = unittest.TextTestRunner(verbosity=2).run(unittest.defaultTestLoader.loadTestsFromModule(
        sys.modules[__name__]))
    return guestlib.summary(result)


if __name__ == "__main__":
    sys.exit(main())

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
  3. the good bundle again, the rollout killed (SIGKILL) once the first guest is done,
     then run again: it resumes, the first guest is not touched again (its record's
     applied_at unchanged, no event for it), every guest ends patched once.

Oracles hvpatch does not control: the guests' /proc/version and /proc/loadavg (through
the test command channel).

    python3 tests/live/test_rollout.py     # last line: "N passed, M failed"

Environment: HVPATCH (default build/cli/hvpatch), HVP_KERNEL_DIR, HVP_GUEST_DIR, CC.
Must run as root with libvirt (it fails, not skips, otherwise).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib  # noqa: E402
import kcflags  # noqa: E402
import test_health  # noqa: E402  (its WARN bundle's source and the loops)

REPO = guestlib.REPO
BUILD_DEMO = os.path.join(REPO, "images", "demo", "build-demo.sh")
VERSION_MARKER = " [hvpatch: hotpatched]"
WATCH = 20


def hvpatch_exe():
    exe = os.environ.get("HVPATCH", "build/cli/hvpatch")
    return exe if os.path.isabs(exe) else os.path.join(REPO, exe)


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
        cls.tmp = tempfile.mkdtemp(prefix="hvp-ro-rollout.")
        try:
            cls.prepare()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def boot_all(cls):
        """Boot the three guests at once (each guest.sh create is independent)."""
        cls.names = [f"hvp-ro-{os.getpid()}-{c}" for c in "abc"]
        guests, errors = {}, []

        def boot(name):
            try:
                guests[name] = guestlib.Guest.create(name, paging=4, kaslr=True, kernel_dir=guestlib.kernel_dir())
            except BaseException as e:     # noqa: B902: reported below
                errors.append(e)

        threads = [threading.Thread(target=boot, args=(n,)) for n in cls.names]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        cls.g = [guests[n] for n in cls.names]

    @classmethod
    def prepare(cls):
        cls.work = os.path.join(cls.tmp, "work")
        cls.state = os.path.join(cls.tmp, "state")
        for d in (cls.work, cls.state):
            os.mkdir(d, 0o700)
        os.chmod(cls.tmp, 0o755)
        cls.boot_all()
        ids = {g.build_id() for g in cls.g}
        if len(ids) != 1:
            raise RuntimeError(f"the guests run different kernels: {ids}")
        cls.build_id = ids.pop()

        guestlib.minisign(cls.work, "-G", "-W", "-p", "ro.pub", "-s", "ro.key")
        env = dict(os.environ, HVPATCH=hvpatch_exe())
        subprocess.run([BUILD_DEMO, "--build-id", cls.build_id, "-o", os.path.join(cls.work, "good")], check=True,
                       stdout=subprocess.DEVNULL, env=env)
        cls.good = os.path.join(cls.work, "good", "demo-version.hvp")
        guestlib.minisign(cls.work, "-S", "-s", "ro.key", "-m", cls.good, "-t", "good")

        src, obj = os.path.join(cls.work, "warn.c"), os.path.join(cls.work, "warn.o")
        with open(src, "w") as f:
            f.write(test_health.WARN_C)
        subprocess.run([os.environ.get("CC", "gcc")] + kcflags.patch_cflags() + ["-c", src, "-o", obj], check=True)
        manifest = os.path.join(cls.work, "warn.xml")
        with open(manifest, "w") as f:
            f.write(f"""<?xml version="1.0" encoding="UTF-8"?>
<patch xmlns="urn:hvpatch:manifest:1" id="ro-loadavg-1" series="ro-loadavg" sequence="1">
  <description>loadavg_proc_show WARNs (the rollout's halting test)</description>
  <target os="linux"><build-id>{cls.build_id}</build-id></target>
  <object name="warn.o" file="{obj}"/>
  <sites>
    <redirect symbol="loadavg_proc_show" object="warn.o" function="hvp_loadavg_warn"/>
  </sites>
</patch>
""")
        cls.warn = os.path.join(cls.work, "warn.hvp")
        subprocess.run([hvpatch_exe(), "pack", "--kernel-config", kcflags.kernel_config(), manifest, "-o", cls.warn],
                       check=True, stdout=subprocess.DEVNULL)
        guestlib.minisign(cls.work, "-S", "-s", "ro.key", "-m", cls.warn, "-t", "warn")

        cls.policy = os.path.join(cls.work, "policy.xml")
        with open(cls.policy, "w") as f:
            f.write(f'''<?xml version="1.0"?>
<policy version="1">
  <key name="ro"><public-key-file>ro.pub</public-key-file><may-sign series="*"/></key>
  <group name="ro-rollout">
    <select name="hvp-ro-{os.getpid()}-*"/>
    <window/>
    <baseline name="current" current="yes"><kernel build-id="{cls.build_id}"/></baseline>
  </group>
</policy>
''')

    @classmethod
    def tearDownClass(cls):
        try:
            for n in cls.names:
                guestlib.Guest(n).destroy()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    # -- helpers ---------------------------------------------------------------
    def env(self):
        return dict(os.environ, HVPATCH_STATE_DIR=self.state)

    def hv(self, *args):
        p = subprocess.run([hvpatch_exe(), "--json", "--policy", self.policy] + [str(a) for a in args],
                           capture_output=True, text=True, timeout=600, env=self.env())
        try:
            return p.returncode, json.loads(p.stdout), p.stderr
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
            events = [json.loads(line) for line in p.stdout.splitlines()]
        except ValueError:
            self.fail(f"rollout: not JSON lines (exit {p.returncode}): {p.stdout!r} {p.stderr!r}")
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
        rc, ev, err = self.rollout(self.good, state, "--health", 3)
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
        state = os.path.join(self.work, "good-3.json")
        p = subprocess.Popen(self.rollout_argv(self.good, state, "--health", 3, "--parallel", 1), stdout=subprocess.PIPE,
                             text=True, env=self.env())
        first = None
        try:
            for line in p.stdout:
                e = json.loads(line)
                if e["event"] == "guest":
                    first = e
                    p.send_signal(signal.SIGKILL)
                    break
        finally:
            p.kill()
            p.wait()
        self.assertIsNotNone(first, "the rollout ended before any guest was done")
        self.assertEqual((first["domain"], first["status"]), (self.names[0], "done"), first)
        with open(state) as f:
            st = json.load(f)
        self.assertEqual(st["guests"][0]["status"], "done")
        self.assertIn(st["guests"][1]["status"], ("pending", "running"))
        first_rec = self.applied(self.names[0])["demo-version-1"]

        rc, ev, err = self.rollout(self.good, state, "--health", 3)
        self.assertEqual(rc, 0, f"{ev} {err}")
        self.assertTrue(ev[-1]["resumed"])
        self.assertEqual(ev[-1]["counts"]["done"], 3, ev[-1])
        guests = [e for e in ev if e["event"] == "guest"]
        self.assertNotIn(self.names[0], [e["domain"] for e in guests])
        self.assertEqual(sorted(e["domain"] for e in guests), self.names[1:])
        print(f"\n  state after the kill: {[g['status'] for g in st['guests']]}; resumed: "
              f"{[(e['domain'], e['code'], e['detail'][:40]) for e in guests]}", file=sys.stderr)
        # the first guest's record entry is the same one (not applied again); every guest has it once
        self.assertEqual(self.applied(self.names[0])["demo-version-1"]["applied_at"], first_rec["applied_at"])
        for g in self.g:
            self.assertEqual(list(self.applied(g.name)), ["demo-version-1"], g.name)
            self.assertEqual(g.check("cat /proc/version").count(VERSION_MARKER), 1, g.name)
        self.revert_all("demo-version-1")


def main():
    result = unittest.TextTestRunner(verbosity=2).run(unittest.defaultTestLoader.loadTestsFromModule(
        sys.modules[__name__]))
    return guestlib.summary(result)


if __name__ == "__main__":
    sys.exit(main())

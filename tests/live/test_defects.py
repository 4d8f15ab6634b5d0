#!/usr/bin/env python3
"""Live: the defects of issue 7 (item 2) on one real guest.

One 4-level UEFI guest with KASLR and the patch-area device
(<shmem name='hvpatch-area-UUID'>, the per-domain name), unsigned test bundles (--insecure-unsigned) except
where the policy is the point:

  * status lists every patch area the guest has: the slack and the device;
  * revert: a failed record update is an error (exit 1, JSON error), both after a
    revert (journal kept, recover records it) and when the patch is no longer in
    memory (the record keeps the entry, it is not said to be dropped);
  * the journal's phase: "window" when hvpatch dies inside the pause window (the
    guest is left paused, recover takes the pause over), "resumed" when it dies
    after it (the guest runs, recover records without pausing);
  * a patch calling a static function the kernel defines twice is refused with the
    name and both addresses; pinned (<pin>), it would apply;
  * more applied series than the old 64-entry copy held all reach the policy: an
    older bundle of the 70th series is refused as a rollback by the policy.

Oracles hvpatch does not control: the guest's /proc/version and /proc/kallsyms
(test channel), virsh domstate, the record and journal files as written.

    python3 tests/live/test_defects.py

Needs root, libvirt, gcc, minisign. Environment: HVPATCH (the binary), HVP_KERNEL_DIR.
"""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib  # noqa: E402
import kcflags  # noqa: E402

REPO = guestlib.REPO
BUILD_DEMO = os.path.join(REPO, "images/demo/build-demo.sh")
MARKER = " [hvpatch: hotpatched]"
SHMEM_XML = "<shmem name='hvpatch-area-@UUID@'><model type='ivshmem-plain'/><size unit='M'>2</size></shmem>\n"
NAME = f"hvp-defects-{os.getpid()}"


def hvpatch_exe():
    exe = os.environ.get("HVPATCH", "build/cli/hvpatch")
    return exe if os.path.isabs(exe) else os.path.join(REPO, exe)


def hv(*args, fault=None, timeout=180):
    """`hvpatch --json ARGS`: (returncode, parsed stdout or None, stderr)."""
    env = dict(os.environ)
    env.pop("HVPATCH_FAULT_AT", None)
    if fault:
        env["HVPATCH_FAULT_AT"] = fault
    p = subprocess.run([hvpatch_exe(), "--json"] + [str(a) for a in args], env=env,
                       capture_output=True, text=True, timeout=timeout)
    try:
        out = guestlib.validate_json(json.loads(p.stdout), args) if p.stdout.strip() else None
    except ValueError:
        raise AssertionError(f"hvpatch {' '.join(map(str, args))}: stdout not JSON: {p.stdout[:500]!r}")
    return p.returncode, out, p.stderr


def domstate(name):
    return subprocess.run(guestlib.VIRSH + ["domstate", name], capture_output=True, text=True).stdout.strip()


class Defects(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hvp-defects-")
        cls.state = os.path.join(cls.tmp, "state")
        os.environ["HVPATCH_STATE_DIR"] = cls.state
        xml = os.path.join(cls.tmp, "shmem.xml")
        with open(xml, "w") as f:
            f.write(SHMEM_XML)
        cls.g = None
        try:
            cls.g = guestlib.Guest.create(NAME, paging=4, kaslr=True, xml_extra=xml)
            rc, info, err = hv("inspect", NAME)
            assert rc == 0, (info, err)
            cls.build_id = info["kernel"]["build_id"]
            cls.orig_version = cls.g.proc_version()
            demo = os.path.join(cls.tmp, "demo")
            subprocess.run([BUILD_DEMO, "--build-id", cls.build_id, "-o", demo], check=True,
                           capture_output=True, env=dict(os.environ, HVPATCH=hvpatch_exe()))
            cls.demo = os.path.join(demo, "demo-version.hvp")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            guestlib.Guest(NAME).destroy()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    # -- helpers -----------------------------------------------------------------
    def record_path(self):
        paths = glob.glob(os.path.join(self.state, "domains", "*.json"))
        self.assertEqual(len(paths), 1, paths)
        return paths[0]

    def record(self):
        with open(self.record_path()) as f:
            return json.load(f)

    def write_record(self, rec):
        with open(self.record_path(), "w") as f:
            json.dump(rec, f)

    def journal(self):
        paths = glob.glob(os.path.join(self.state, "domains", "*.journal"))
        if not paths:
            return None
        with open(paths[0]) as f:
            return json.load(f)

    def apply_demo(self):
        rc, out, err = hv("apply", "--insecure-unsigned", NAME, self.demo)
        self.assertEqual(rc, 0, (out, err))
        self.assertEqual(self.g.proc_version(), self.orig_version + MARKER)

    def revert_demo(self):
        rc, out, err = hv("revert", NAME, "demo-version-1")
        self.assertEqual(rc, 0, (out, err))
        self.assertEqual(self.g.proc_version(), self.orig_version)

    def setUp(self):
        # every test starts from a guest with nothing applied and nothing interrupted,
        # whatever a failed test before it left
        rc, out, err = hv("recover", NAME)
        self.assertEqual(rc, 0, (out, err))
        rc, st, err = hv("status", NAME)
        self.assertEqual(rc, 0, (st, err))
        for p in st["patches"]:
            rc, out, err = hv("revert", NAME, p["id"])
            self.assertEqual(rc, 0, (out, err))
        rc, st, err = hv("status", NAME)
        self.assertEqual(rc, 0, (st, err))
        self.assertFalse(st["interrupted"])
        self.assertEqual(st["patches"], [])
        self.assertEqual(domstate(NAME), "running")

    # -- patch areas -------------------------------------------------------------
    def test_patch_areas(self):
        rc, st, err = hv("status", NAME)
        self.assertEqual(rc, 0, err)
        kinds = [a["kind"] for a in st["areas"]]
        self.assertEqual(kinds, ["slack", "device"])
        slack, device = st["areas"]
        self.assertEqual(int(slack["start"], 16), self.g.symbol("_etext"))
        self.assertEqual(slack["len"], 4096 - (self.g.symbol("_etext") & 0xfff))
        self.assertEqual(device["len"], 2 << 20)
        self.assertFalse(device["mapped"])      # mapped by the first patch that needs it

    # -- revert and the record ----------------------------------------------------
    def test_revert_record_failure(self):
        self.apply_demo()
        rc, out, err = hv("revert", NAME, "demo-version-1", fault="error:record-save")
        self.assertEqual(rc, 1, (out, err))
        self.assertIn("injected fault", out["error"])
        self.assertIn("recover", out["error"])
        self.assertEqual(out["code"], 1)
        # memory was reverted; the record was not updated: the journal says so
        self.assertEqual(self.g.proc_version(), self.orig_version)
        self.assertEqual(self.journal()["phase"], "resumed")
        rc, st, _ = hv("status", NAME)
        self.assertTrue(st["interrupted"])
        rc, out, err = hv("recover", NAME)
        self.assertEqual(rc, 0, (out, err))
        self.assertIn("recorded it", out["summary"])
        rc, st, _ = hv("status", NAME)
        self.assertEqual(st["patches"], [])
        self.assertFalse(st["interrupted"])

    def test_revert_dropped_record_failure(self):
        self.apply_demo()
        saved = self.record()
        forged = json.loads(json.dumps(saved))
        # another kernel instance (as after a reboot): the patch is "dropped"
        base = int(forged["applied"][0]["plan"]["kernel_base"], 16)
        forged["applied"][0]["plan"]["kernel_base"] = "0x%x" % (base + 0x200000)
        self.write_record(forged)
        try:
            rc, out, err = hv("revert", NAME, "demo-version-1", fault="error:record-save")
            self.assertEqual(rc, 1, (out, err))
            self.assertIn("dropping its record failed", out["error"])
            self.assertIn("injected fault", out["error"])
            self.assertNotIn("dropped its record", out["error"])
            self.assertEqual([e["plan"]["patch_id"] for e in self.record()["applied"]], ["demo-version-1"])
            rc, out, err = hv("revert", NAME, "demo-version-1")
            self.assertEqual(rc, 1, (out, err))
            self.assertIn("dropped its record", out["error"])
            self.assertEqual(self.record()["applied"], [])
        finally:
            self.write_record(saved)
        self.revert_demo()

    # -- the journal's phase, with the real backend --------------------------------
    def test_journal_phase_window(self):
        rc, _, err = hv("apply", "--insecure-unsigned", NAME, self.demo, fault="written")
        self.assertEqual(rc, -signal.SIGKILL, err)
        self.assertEqual(self.journal()["phase"], "window")
        self.assertEqual(domstate(NAME), "paused")          # the dead process's pause
        rc, out, err = hv("recover", NAME)
        self.assertEqual(rc, 0, (out, err))
        self.assertIn("had completed: recorded it", out["summary"])
        self.assertIn("the guest runs again", out["summary"])
        self.assertEqual(domstate(NAME), "running")
        self.assertIsNone(self.journal())
        self.revert_demo()

    def test_journal_phase_resumed(self):
        rc, _, err = hv("apply", "--insecure-unsigned", NAME, self.demo, fault="resumed")
        self.assertEqual(rc, -signal.SIGKILL, err)
        self.assertEqual(self.journal()["phase"], "resumed")
        self.assertEqual(domstate(NAME), "running")
        rc, out, err = hv("recover", NAME)
        self.assertEqual(rc, 0, (out, err))
        self.assertIn("the guest resumed: recorded it", out["summary"])
        self.assertNotIn("runs again", out["summary"])
        self.assertEqual(domstate(NAME), "running")
        self.assertEqual(self.g.proc_version(), self.orig_version + MARKER)
        self.revert_demo()

    # -- names the kernel defines twice -------------------------------------------
    def duplicated_static(self):
        """A static function name the guest's own /proc/kallsyms lists at two addresses."""
        seen = {}
        for addr, typ, name, mod in self.g.kallsyms():
            if mod is None:
                seen.setdefault(name, []).append((addr, typ))
        for name in sorted(seen):
            copies = seen[name]
            if (len(copies) == 2 and {t for _, t in copies} == {"t"} and copies[0][0] != copies[1][0]
                    and name.replace("_", "a").isalnum()):
                return name, sorted(a for a, _ in copies)
        self.fail("no static function defined twice in /proc/kallsyms")

    def test_ambiguous_import(self):
        name, addrs = self.duplicated_static()
        text = self.g.symbol("_text")
        work = os.path.join(self.tmp, "amb")
        os.makedirs(work, exist_ok=True)
        with open(os.path.join(work, "amb.c"), "w") as f:
            f.write(f"struct seq_file;\nextern int {name}(void);\n"
                    f"int hvp_amb(struct seq_file *m, void *v) {{ return {name}() + 1; }}\n")
        subprocess.run(["gcc"] + kcflags.patch_cflags() + ["-c", "amb.c", "-o", "amb.o"], cwd=work,
                       check=True)

        def bundle(pin):
            with open(os.path.join(work, "manifest.xml"), "w") as f:
                f.write(f'<patch xmlns="urn:hvpatch:manifest:1" id="amb-1" series="amb" sequence="1">'
                        f'<target os="linux"><build-id>{self.build_id}</build-id></target>'
                        f'<object name="amb.o" file="amb.o"/>{pin}'
                        f'<sites><redirect symbol="version_proc_show" object="amb.o" function="hvp_amb"/>'
                        f'</sites></patch>\n')
            out = os.path.join(work, "amb.hvp")
            rc, res, err = hv("pack", os.path.join(work, "manifest.xml"), "-o", out)
            self.assertEqual(rc, 0, (res, err))
            return out

        rc, out, err = hv("check", "--insecure-unsigned", NAME, bundle(""))
        self.assertEqual(rc, 1, (out, err))
        self.assertFalse(out["would_apply"])
        reasons = " ".join(r["reason"] for r in out["reasons"] if r["stage"] == "plan")
        self.assertIn(f"{name} is defined 2 times", reasons)
        for a in addrs:
            self.assertIn("0x%x (_text+0x%x)" % (a, a - text), reasons)

        # pinned to the second copy: it would apply (not applied: it would call the wrong code for real)
        pin = f'<pin symbol="{name}" near="_text" offset="0x{addrs[1] - text:x}"/>'
        rc, out, err = hv("check", "--insecure-unsigned", NAME, bundle(pin))
        self.assertEqual(rc, 0, (out, err))
        self.assertTrue(out["would_apply"])
        # a pin off by one byte is refused: it must name one of the addresses
        pin = f'<pin symbol="{name}" near="_text" offset="0x{addrs[1] - text + 1:x}"/>'
        rc, out, err = hv("check", "--insecure-unsigned", NAME, bundle(pin))
        self.assertEqual(rc, 1, (out, err))
        self.assertIn("not one of its addresses", json.dumps(out["reasons"]))

    # -- every applied series reaches the policy ------------------------------------
    def test_many_series_reach_policy(self):
        work = os.path.join(self.tmp, "pol")
        os.makedirs(work, exist_ok=True)
        subprocess.run(["minisign", "-G", "-W", "-p", "k.pub", "-s", "k.key"], cwd=work, check=True,
                       stdin=subprocess.DEVNULL, capture_output=True)
        signed = os.path.join(work, "demo-version.hvp")
        shutil.copy(self.demo, signed)
        subprocess.run(["minisign", "-S", "-s", "k.key", "-m", signed], cwd=work, check=True,
                       stdin=subprocess.DEVNULL, capture_output=True)
        policy = os.path.join(work, "policy.xml")
        with open(policy, "w") as f:
            f.write(f'''<?xml version="1.0"?>
<policy version="1">
  <key name="k"><public-key-file>k.pub</public-key-file><may-sign series="*"/></key>
  <group name="defects"><select name="{NAME}"/><window/>
    <baseline name="b" current="yes"><kernel build-id="{self.build_id}"/></baseline></group>
</policy>
''')
        self.apply_demo()
        saved = self.record()
        forged = json.loads(json.dumps(saved))
        real = forged["applied"][0]
        real["plan"]["seq"] = 5                                 # demo-version is at sequence 5
        forged["applied"] = []
        for i in range(69):                                     # 69 other series before it
            e = json.loads(json.dumps(real))
            e["plan"]["patch_id"] = f"other-{i}"
            e["plan"]["series"] = f"other-{i}"
            forged["applied"].append(e)
        forged["applied"].append(real)
        self.write_record(forged)
        try:
            rc, out, err = hv("--policy", policy, "check", NAME, signed)
            self.assertEqual(rc, 3, (out, err))
            codes = [(r["stage"], r.get("code")) for r in out["reasons"]]
            self.assertIn(("policy", "rollback"), codes, out["reasons"])
        finally:
            self.write_record(saved)
        self.revert_demo()


if __name__ == "__main__":
    unittest.main(verbosity=2)

#!/usr/bin/env python3
"""The live tests' shared setup helpers in tests/live/guestlib.py, without a guest.

  * Workspace: its folders and their modes, $HVPATCH_STATE_DIR set and put back, cleanup;
  * boot_guests: order kept, all or nothing (a failure destroys the guests that booted and
    names every failure), with Guest.create/destroy replaced by stand-ins;
  * minisign_keypair / minisign_sign: the real minisign, checked with `minisign -V`;
  * demo_bundle + write_policy/policy_key/policy_group: the real build-demo.sh for a made-up
    build id, then the real `hvpatch --policy P --json verify` takes the bundle signed by
    the policy's key and refuses one signed by another key (exit 3); a hostile name in a
    policy is escaped (the file parses and keeps the name).

    python3 tests/unit/test_guestlib_setup.py HVPATCH     # last line: "N passed, M failed"

minisign or gcc missing: those cases skip (fail under CI=true), exit 77.
"""

import os
import stat
import subprocess
import sys
import threading
import unittest
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "live"))
import guestlib  # noqa: E402

FAKE_BID = "0123456789abcdef0123456789abcdef01234567"


def need(tool):
    if not guestlib.shutil.which(tool):
        raise unittest.SkipTest(f"{tool} not found (images/setup-host.sh installs it)")


class WorkspaceTest(unittest.TestCase):
    def test_folders_modes_env_cleanup(self):
        old = os.environ.get("HVPATCH_STATE_DIR")
        os.environ["HVPATCH_STATE_DIR"] = "/before"
        try:
            ws = guestlib.Workspace("hvp-gl-unit.", set_state_env=True)
            try:
                self.assertEqual(os.environ["HVPATCH_STATE_DIR"], ws.state)
                self.assertEqual(ws.env(X="1")["HVPATCH_STATE_DIR"], ws.state)
                self.assertEqual(ws.env(X="1")["X"], "1")
                for d, mode in ((ws.root, 0o755), (ws.work, 0o755), (ws.catalog, 0o755), (ws.state, 0o700)):
                    self.assertTrue(os.path.isdir(d), d)
                    self.assertEqual(stat.S_IMODE(os.stat(d).st_mode), mode, d)
                self.assertEqual(ws.path("work"), ws.work)
            finally:
                ws.cleanup()
            self.assertFalse(os.path.exists(ws.root))
            self.assertEqual(os.environ["HVPATCH_STATE_DIR"], "/before")
        finally:
            if old is None:
                os.environ.pop("HVPATCH_STATE_DIR", None)
            else:
                os.environ["HVPATCH_STATE_DIR"] = old

    def test_env_untouched_without_set_state_env(self):
        before = os.environ.get("HVPATCH_STATE_DIR")
        ws = guestlib.Workspace("hvp-gl-unit.", dirs=("work", "state-A"))
        try:
            self.assertEqual(os.environ.get("HVPATCH_STATE_DIR"), before)
            self.assertEqual(stat.S_IMODE(os.stat(ws.state_A).st_mode), 0o700)
            self.assertFalse(hasattr(ws, "catalog"))
        finally:
            ws.cleanup()
        self.assertEqual(os.environ.get("HVPATCH_STATE_DIR"), before)


class BootGuestsTest(unittest.TestCase):
    """Guest.create / Guest.destroy replaced: what boot_guests does with their results."""

    def setUp(self):
        self.created, self.destroyed, self.fail = [], [], set()
        self.lock = threading.Lock()
        orig_create, orig_destroy = guestlib.Guest.create, guestlib.Guest.destroy

        def create(cls, name, **kw):
            if name in self.fail:
                raise guestlib.GuestError(f"boot of {name} broke")
            g = cls(name)
            g.kw = kw
            with self.lock:
                self.created.append(name)
            return g

        def destroy(g):
            with self.lock:
                self.destroyed.append(g.name)

        guestlib.Guest.create = classmethod(create)
        guestlib.Guest.destroy = destroy
        self.addCleanup(setattr, guestlib.Guest, "create", orig_create)
        self.addCleanup(setattr, guestlib.Guest, "destroy", orig_destroy)

    def test_order_and_options(self):
        gs = guestlib.boot_guests(["c", "a", "b"], paging=5, kaslr=False)
        self.assertEqual([g.name for g in gs], ["c", "a", "b"])
        self.assertEqual([g.kw for g in gs], [{"paging": 5, "kaslr": False}] * 3)
        self.assertEqual(self.destroyed, [])

    def test_one_fails_others_destroyed(self):
        self.fail = {"b"}
        with self.assertRaises(guestlib.GuestError) as cm:
            guestlib.boot_guests(["a", "b", "c"])
        self.assertIn("boot of b broke", str(cm.exception))
        self.assertEqual(sorted(self.destroyed), ["a", "c"])

    def test_every_failure_named(self):
        self.fail = {"a", "c"}
        with self.assertRaises(guestlib.GuestError) as cm:
            guestlib.boot_guests(["a", "b", "c"])
        self.assertIn("a: boot of a broke", str(cm.exception))
        self.assertIn("c: boot of c broke", str(cm.exception))
        self.assertEqual(self.destroyed, ["b"])

    def test_duplicate_names_refused(self):
        with self.assertRaises(ValueError):
            guestlib.boot_guests(["a", "a"])
        self.assertEqual(self.created, [])


class SigningPolicyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        need("minisign")
        cls.ws = guestlib.Workspace("hvp-gl-unit.")
        cls.addClassCleanup(cls.ws.cleanup)

    def test_keypair_and_signature(self):
        pub, key = guestlib.minisign_keypair(self.ws.work, "k1")
        self.assertEqual((pub, key), (os.path.join(self.ws.work, "k1.pub"), os.path.join(self.ws.work, "k1.key")))
        f = os.path.join(self.ws.catalog, "file.bin")
        with open(f, "wb") as fh:
            fh.write(b"payload")
        sig = guestlib.minisign_sign(key, f, "a comment")
        self.assertEqual(sig, f + ".minisig")
        with open(sig) as fh:
            self.assertIn("trusted comment: a comment", fh.read())
        ok = subprocess.run(["minisign", "-Vm", f, "-p", pub], capture_output=True)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        with open(f, "ab") as fh:
            fh.write(b"x")
        bad = subprocess.run(["minisign", "-Vm", f, "-p", pub], capture_output=True)
        self.assertNotEqual(bad.returncode, 0)

    def test_policy_escapes_names(self):
        hostile = "g<i>&\"'*"
        path = guestlib.write_policy(os.path.join(self.ws.work, "p.xml"), guestlib.policy_key("k", "k.pub", "demo-*"),
                                     guestlib.policy_group("grp", hostile, FAKE_BID, extra='<require secure-boot="yes"/>'))
        root = ET.parse(path).getroot()
        self.assertEqual(root.tag, "policy")
        self.assertEqual(root.find("key/may-sign").get("series"), "demo-*")
        self.assertEqual(root.find("group/select").get("name"), hostile)
        self.assertEqual([c.tag for c in root.find("group")], ["select", "require", "window", "baseline"])
        self.assertEqual(root.find("group/baseline/kernel").get("build-id"), FAKE_BID)

    def test_demo_bundle_verified_by_policy(self):
        need(os.environ.get("CC", "gcc"))
        bundle = guestlib.demo_bundle(FAKE_BID, os.path.join(self.ws.work, "s3"), sequence=3)
        self.assertEqual(bundle, os.path.join(self.ws.work, "s3", "demo-version.hvp"))
        _, rel = guestlib.minisign_keypair(self.ws.work, "rel")
        _, other = guestlib.minisign_keypair(self.ws.work, "other")
        guestlib.minisign_sign(rel, bundle, "good")
        policy = guestlib.write_policy(os.path.join(self.ws.work, "policy.xml"),
                                       guestlib.policy_key("rel", "rel.pub", "demo-*"),
                                       guestlib.policy_group("g", "nobody", FAKE_BID))
        rc, doc = guestlib.hvpatch("--policy", policy, "verify", bundle)
        self.assertEqual(rc, 0, doc)
        self.assertEqual(doc["patch_id"], "demo-version-3", doc)
        guestlib.minisign_sign(other, bundle, "foreign")
        rc, doc = guestlib.hvpatch("--policy", policy, "verify", bundle)
        self.assertEqual(rc, 3, doc)


def main():
    if len(sys.argv) > 1:
        os.environ["HVPATCH"] = os.path.abspath(sys.argv.pop(1))
    result = unittest.TextTestRunner(verbosity=2).run(
        unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__]))
    return guestlib.summary(result)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Desired state on a live guest: `hvpatch plan` and `hvpatch sync` with a catalog folder.

One guest (4-level paging, KASLR), shared by every case. Keys and signatures are made by
the real minisign; the bundles come from images/demo/build-demo.sh for the build id the
guest reports. The catalog holds
  * good.hvp       demo-version seq 1, signed by the trusted key: the one to apply;
  * unsigned.hvp   demo-version seq 2, no .minisig: would win if it were taken;
  * corrupt.hvp    demo-version seq 3 cut short, then signed: the signature holds, the
                   bundle does not parse;
  * tampered.hvp   demo-version seq 4 with one byte changed after signing;
  * notes.txt      not a bundle: ignored.
A demo-cmdline patch applied by hand (`hvpatch apply`) is not in the catalog: plan
reports it unmanaged, sync leaves it. Then the records travel with the guest: they are
in its live libvirt metadata (beside an element the operator put in the namespace),
and after `virsh save`, the loss of the local state folder and `virsh restore`, status
still knows both patches, sync applies nothing twice and a revert still works.

Oracles hvpatch does not control: the guest's own /proc/version and /proc/cmdline
(through the test command channel) and the guest-physical pages of the patched
functions and of the patch area, read with QEMU's monitor (HMP xp): a dry run and a
second sync must leave them byte for byte.

    python3 tests/live/test_sync.py     # last line: "N passed, M failed"

Environment: HVPATCH (binary, default build/cli/hvpatch), HVP_KERNEL_DIR, HVP_GUEST_DIR.
Must run as root with libvirt (it fails, not skips, otherwise).
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib  # noqa: E402

REPO = guestlib.REPO
MARKER = " [hvpatch: hotpatched]"
PAGE = 4096
NS = "urn:hvpatch:libvirt-metadata:1"


hvpatch_exe = guestlib.hvpatch_exe


def hmp_bytes(out):
    data = bytearray()
    for line in out.splitlines():
        if ":" not in line:
            continue
        for word in line.split(":", 1)[1].split():
            data += struct.pack("<Q", int(word, 16))
    return bytes(data)


def setUpModule():
    if os.geteuid() != 0:
        raise RuntimeError("live sync test needs root (libvirt qemu:///system)")
    for tool in ("minisign", "virsh", os.environ.get("CC", "gcc")):
        if not shutil.which(tool):
            raise RuntimeError(f"{tool} not found (images/setup-host.sh installs it)")
    if not os.access(hvpatch_exe(), os.X_OK):
        raise RuntimeError(f"hvpatch binary not found: {hvpatch_exe()} (build it, or set HVPATCH)")
    subprocess.run([os.path.join(REPO, "images", "setup-host.sh")], check=True, stdout=subprocess.DEVNULL)


class SyncLive(unittest.TestCase):
    name = None

    @classmethod
    def setUpClass(cls):
        cls.ws = guestlib.Workspace("hvp-lib9-sync.")
        cls.tmp, cls.work, cls.state, cls.catalog = cls.ws.root, cls.ws.work, cls.ws.state, cls.ws.catalog
        try:
            cls.prepare()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def prepare(cls):
        cls.name = f"hvp-lib9-sync-{os.getpid()}"
        cls.g, = guestlib.boot_guests([cls.name], paging=4, kaslr=True)
        cls.build_id = cls.g.build_id()

        syms = {}
        for line in cls.g.check("grep -E ' (_etext|version_proc_show|cmdline_proc_show)$' "
                                "/proc/kallsyms").splitlines():
            f = line.split()
            syms[f[2]] = int(f[0], 16)
        cls.pages = []
        for va in sorted({syms["version_proc_show"] & ~(PAGE - 1), syms["cmdline_proc_show"] & ~(PAGE - 1),
                          syms["_etext"] & ~(PAGE - 1)}):
            gpa = cls.g.gva2gpa(va)
            if gpa is None:
                raise guestlib.GuestError(f"{va:#x} unmapped according to QEMU")
            cls.pages.append(gpa)
        cmdline = cls.g.gva2gpa(syms["cmdline_proc_show"])
        head = hmp_bytes(cls.g.hmp("xp /8xg 0x%x" % cmdline))

        pub, key = guestlib.minisign_keypair(cls.work, "rel")
        for seq in (1, 2, 3, 4):
            guestlib.demo_bundle(cls.build_id, os.path.join(cls.work, f"s{seq}"), sequence=seq)
        guestlib.demo_bundle(cls.build_id, os.path.join(cls.work, "cmd"), cmdline_bytes=head.hex())
        cls.hand = os.path.join(cls.work, "cmd", "demo-cmdline.hvp")
        guestlib.minisign_sign(key, cls.hand, "by hand")

        def place(seq, name):
            dst = os.path.join(cls.catalog, name)
            shutil.copy(os.path.join(cls.work, f"s{seq}", "demo-version.hvp"), dst)
            return dst

        guestlib.minisign_sign(key, place(1, "good.hvp"), "good")
        place(2, "unsigned.hvp")
        corrupt = place(3, "corrupt.hvp")
        with open(corrupt, "r+b") as f:
            f.truncate(os.path.getsize(corrupt) // 2)
        guestlib.minisign_sign(key, corrupt, "corrupt")
        tampered = place(4, "tampered.hvp")
        guestlib.minisign_sign(key, tampered, "tampered")
        with open(tampered, "r+b") as f:
            f.seek(200)
            b = f.read(1)
            f.seek(200)
            f.write(bytes([b[0] ^ 1]))
        with open(os.path.join(cls.catalog, "notes.txt"), "w") as f:
            f.write("not a bundle\n")

        cls.policy = guestlib.write_policy(os.path.join(cls.work, "policy.xml"),
                                           guestlib.policy_key("rel", "rel.pub", "demo-*"),
                                           guestlib.policy_group("lib9-sync", cls.name, cls.build_id))
        cls.orig_version = cls.g.check("cat /proc/version")
        cls.orig_cmdline = cls.g.check("cat /proc/cmdline")

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.name:
                guestlib.Guest(cls.name).destroy()
        finally:
            cls.ws.cleanup()

    # -- helpers ---------------------------------------------------------------

    def hv(self, *args):
        """hvpatch --json --policy POLICY ARGS: (exit code, parsed stdout, stderr)."""
        argv = [hvpatch_exe(), "--json", "--policy", self.policy] + [str(a) for a in args]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=600,
                           env=dict(os.environ, HVPATCH_STATE_DIR=self.state))
        try:
            return p.returncode, guestlib.validate_json(json.loads(p.stdout), args), p.stderr
        except ValueError:
            self.fail(f"hvpatch {' '.join(map(str, args))}: not one JSON document (exit {p.returncode}): "
                      f"{p.stdout!r} {p.stderr!r}")

    def snapshot(self):
        return [hmp_bytes(self.g.hmp("xp /512xg 0x%x" % gpa)) for gpa in self.pages]

    def plan(self):
        rc, out, err = self.hv("plan", "--catalog", self.catalog, self.name)
        self.assertEqual(rc, 0, f"{out} {err}")
        return out

    def series(self, plan, name):
        got = [s for s in plan["series"] if s["series"] == name]
        self.assertEqual(len(got), 1, plan)
        return got[0]

    def patches(self):
        rc, st, err = self.hv("status", self.name)
        self.assertEqual(rc, 0, f"{st} {err}")
        return {(p["series"], p["seq"], p["state"]) for p in st["patches"]}

    def assert_catalog_errors(self, doc):
        errors = {e["file"]: e["error"] for e in doc["catalog_errors"]}
        self.assertEqual(set(errors), {"unsigned.hvp", "corrupt.hvp", "tampered.hvp"}, doc["catalog_errors"])
        self.assertIn("not signed", errors["unsigned.hvp"])
        self.assertIn("not a valid bundle", errors["corrupt.hvp"])
        self.assertIn("signature refused", errors["tampered.hvp"])

    def virsh(self, *args, timeout=300):
        p = subprocess.run(guestlib.VIRSH + list(args), capture_output=True, text=True, timeout=timeout)
        self.assertEqual(p.returncode, 0, f"virsh {' '.join(args)}: {p.stderr}")
        return p.stdout

    # -- the cases, in order on the one guest ------------------------------------
    def test_1_plan_dry_run_sync_again(self):
        # An element the operator put in hvpatch's metadata namespace: the records must keep it.
        self.virsh("metadata", self.name, "--live", "--uri", NS, "--key", "hvpatch", "--set",
                   "<group>lib9-kept</group>")
        # A demo-cmdline patch applied by hand: not in the catalog.
        rc, out, err = self.hv("apply", self.name, self.hand)
        self.assertEqual(rc, 0, f"{out} {err}")
        self.assertNotEqual(self.g.check("cat /proc/cmdline"), self.orig_cmdline)

        plan = self.plan()
        self.assert_catalog_errors(plan)
        self.assertEqual(plan["compliance"]["verdict"], "compliant")
        dv = self.series(plan, "demo-version")
        self.assertEqual(dv["action"], "apply", dv)
        self.assertEqual(dv["desired"]["file"], "good.hvp")
        self.assertEqual(dv["desired"]["seq"], 1)
        self.assertIsNone(dv["actual"])
        dc = self.series(plan, "demo-cmdline")
        self.assertEqual(dc["action"], "unmanaged", dc)
        self.assertIsNone(dc["desired"])
        self.assertEqual(dc["actual"]["state"], "applied")

        # Dry run: the same plan, nothing written (QEMU's view of every page the apply touches).
        before = self.snapshot()
        rc, out, err = self.hv("sync", "--dry-run", "--catalog", self.catalog, self.name)
        self.assertEqual(rc, 0, f"{out} {err}")
        self.assertTrue(out["dry_run"])
        self.assertEqual([(s["series"], s["result"]) for s in out["domains"][0]["steps"]],
                         [("demo-version", "dry-run")])
        self.assertEqual(self.snapshot(), before, "sync --dry-run changed guest memory")
        self.assertEqual(self.g.check("cat /proc/version"), self.orig_version)
        self.assertEqual(self.patches(), {("demo-cmdline", 1, "applied")})

        # Sync: the good bundle applies, seen inside the guest; the hand-made patch stays.
        rc, out, err = self.hv("sync", "--catalog", self.catalog, self.name)
        self.assertEqual(rc, 0, f"{out} {err}")
        self.assert_catalog_errors(out)
        steps = out["domains"][0]["steps"]
        self.assertEqual([(s["series"], s["result"], s["patch_id"]) for s in steps],
                         [("demo-version", "applied", "demo-version-1")], steps)
        self.assertGreater(steps[0]["pause_ms"], 0)
        self.assertEqual(self.g.check("cat /proc/version"), self.orig_version.rstrip("\n") + MARKER + "\n")
        self.assertNotEqual(self.g.check("cat /proc/cmdline"), self.orig_cmdline)
        self.assertEqual(self.patches(), {("demo-cmdline", 1, "applied"), ("demo-version", 1, "applied")})

        # Converged: plan says nothing, a second sync does nothing and changes no byte.
        self.assertEqual(self.series(self.plan(), "demo-version")["action"], "nothing")
        before = self.snapshot()
        rc, out, err = self.hv("sync", "--catalog", self.catalog, self.name)
        self.assertEqual(rc, 0, f"{out} {err}")
        self.assertEqual(out["domains"][0]["steps"], [])
        self.assertEqual(self.snapshot(), before, "a second sync changed guest memory")
        self.assertEqual(self.patches(), {("demo-cmdline", 1, "applied"), ("demo-version", 1, "applied")})

    def test_3_records_travel_with_save_restore(self):
        """The records are in the live metadata; a restore on a host without them adopts them."""
        want = {("demo-cmdline", 1, "applied"), ("demo-version", 1, "applied")}
        self.assertEqual(self.patches(), want, "test_1 leaves two patches applied")
        meta = self.virsh("metadata", self.name, "--live", "--uri", NS)
        self.assertIn("lib9-kept", meta, "the operator's element in the namespace was lost")
        self.assertIn("records", meta)
        for pid in ("demo-cmdline-1", "demo-version-1"):
            self.assertIn(pid, meta)

        image = os.path.join(self.tmp, "saved.img")
        self.virsh("save", self.name, image, timeout=600)
        try:
            # Another host, or a lost state folder: no local record at all.
            shutil.rmtree(os.path.join(self.state, "domains"))
        finally:
            self.virsh("restore", image, timeout=600)
        os.unlink(image)
        self.assertEqual(self.patches(), want, "status after save/restore lost a patch")
        plan = self.plan()
        self.assertEqual(self.series(plan, "demo-version")["action"], "nothing", plan)
        self.assertEqual(self.series(plan, "demo-cmdline")["action"], "unmanaged", plan)
        before = self.snapshot()
        rc, out, err = self.hv("sync", "--catalog", self.catalog, self.name)
        self.assertEqual(rc, 0, f"{out} {err}")
        self.assertEqual(out["domains"][0]["steps"], [], "applied twice after a restore")
        self.assertEqual(self.snapshot(), before)
        self.assertEqual(self.g.check("cat /proc/version", timeout=120), self.orig_version.rstrip("\n") + MARKER + "\n")
        # A revert still has every byte it needs (the adopted record), and updates the metadata.
        rc, out, err = self.hv("revert", self.name, "demo-version-1")
        self.assertEqual(rc, 0, f"{out} {err}")
        self.assertEqual(self.g.check("cat /proc/version"), self.orig_version)
        meta = self.virsh("metadata", self.name, "--live", "--uri", NS)
        self.assertNotIn("demo-version-1", meta.split("retired")[0])
        self.assertIn("demo-cmdline-1", meta)

    def test_2_errors(self):
        # No such catalog folder: an error, in JSON; an unknown domain: the same.
        rc, out, _ = self.hv("plan", "--catalog", os.path.join(self.tmp, "missing"), self.name)
        self.assertEqual(rc, 1)
        self.assertIn("catalog", out["error"])
        rc, out, _ = self.hv("sync", "--catalog", self.catalog, "hvp-lib9-no-such-domain")
        self.assertNotEqual(rc, 0)
        self.assertIn("error", out)
        # No policy: refused (exit 3), as apply is.
        p = subprocess.run([hvpatch_exe(), "--json", "--policy", os.path.join(self.tmp, "none.xml"), "sync",
                            "--catalog", self.catalog, self.name], capture_output=True, text=True,
                           env=dict(os.environ, HVPATCH_STATE_DIR=self.state))
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
        # A state folder others can write is not trusted: refused (exit 3), as by status.
        unsafe = os.path.join(self.tmp, "unsafe-state")
        os.mkdir(unsafe)
        os.chmod(unsafe, 0o777)
        p = subprocess.run([hvpatch_exe(), "--json", "--policy", self.policy, "plan", "--catalog", self.catalog,
                            self.name], capture_output=True, text=True, env=dict(os.environ, HVPATCH_STATE_DIR=unsafe))
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
        self.assertIn(unsafe, guestlib.validate_json(json.loads(p.stdout), ["plan"])["error"])


def main():
    result = unittest.TextTestRunner(verbosity=2).run(unittest.defaultTestLoader.loadTestsFromModule(
        sys.modules[__name__]))
    return guestlib.summary(result)


if __name__ == "__main__":
    sys.exit(main())

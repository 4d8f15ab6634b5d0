#!/usr/bin/env python3
"""Live: the deprecated shared-memory device patch area (include/hvpatch/area.h).

A 5-level KASLR guest first booted with the formerly documented shared name
<shmem name='hvpatch-area'>: hvpatch no longer uses it (every domain naming it
shares /dev/shm/hvpatch-area). Redefined with its per-domain name
hvpatch-area-UUID and restarted: the demo redirect placed with --area device runs
from the device's BAR, mapped into a free 2 MiB kernel slot by one PDE that
hvpatch writes from the host. Oracles: the guest's own /proc/version, QEMU's
gva2gpa, info mtree and xp. A 4-level guest without the device: --area device is
refused and no byte changes. The recommended read-only area: test_area_ro.py.
"""
import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib  # noqa: E402
from guestlib import hvpatch  # noqa: E402

REPO = guestlib.REPO
MARKER = "[hvpatch: hotpatched]"
SHMEM_XML = "<shmem name='hvpatch-area'><model type='ivshmem-plain'/><size unit='M'>2</size></shmem>\n"
GUESTS = []
PID = os.getpid()


def virsh(*args):
    return subprocess.run(guestlib.VIRSH + list(args), check=True, capture_output=True, text=True).stdout


def restart(g, timeout=300):
    """Power-cycle the domain so that its persistent definition takes effect."""
    import time
    subprocess.run(guestlib.VIRSH + ["destroy", g.name], capture_output=True)
    virsh("start", g.name)
    t0 = time.monotonic()
    while g.ready_count() < 1:
        if time.monotonic() - t0 > timeout:
            raise guestlib.GuestError(f"{g.name}: no HVP-READY within {timeout}s of the restart")
        time.sleep(0.5)
    g.check("true")


def build_demo(build_id, outdir):
    subprocess.run([os.path.join(REPO, "images/demo/build-demo.sh"), "--build-id", build_id, "-o", outdir],
                   check=True, capture_output=True, env=dict(os.environ))
    return os.path.join(outdir, "demo-version.hvp")


def xp_bytes(g, gpa, n):
    """n bytes of guest-physical memory as QEMU itself shows them (HMP xp)."""
    out = g.hmp("xp /%dxb 0x%x" % (n, gpa))
    return bytes(int(b, 16) for b in re.findall(r"\b0x([0-9a-f]{2})\b", out))[:n]


def bar_of(g):
    """The BAR of the ivshmem device per QEMU's flat memory view."""
    m = re.search(r"([0-9a-f]+)-([0-9a-f]+) \(prio \d+, ram\): shmmem-", g.hmp("info mtree -f"))
    return (int(m.group(1), 16), int(m.group(2), 16) + 1) if m else None


class DeviceArea(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hvp-area-")
        os.environ["HVPATCH_STATE_DIR"] = os.path.join(cls.tmp, "state")
        xml = os.path.join(cls.tmp, "shmem.xml")
        with open(xml, "w") as f:
            f.write(SHMEM_XML)
        name = f"hvp-ta-dev-{PID}"
        GUESTS.append(name)
        cls.g = guestlib.Guest.create(name, paging=5, xml_extra=xml)
        rc, info = hvpatch("inspect", cls.g.name)
        assert rc == 0, info
        cls.info = info
        cls.bundle = build_demo(info["kernel"]["build_id"], os.path.join(cls.tmp, "demo"))
        # The shared name is not a patch area any more.
        rc, cls.shared_out = hvpatch("apply", "--insecure-unsigned", "--area", "device", cls.g.name, cls.bundle)
        cls.shared_rc = rc
        rc, show = hvpatch("area", "show", cls.g.name)
        assert rc == 0, show
        cls.shared_show = show
        uuid = virsh("domuuid", cls.g.name).strip()
        xml = virsh("dumpxml", "--inactive", cls.g.name).replace("name='hvpatch-area'",
                                                                 f"name='hvpatch-area-{uuid}'")
        path = os.path.join(cls.tmp, "dom.xml")
        with open(path, "w") as f:
            f.write(xml)
        virsh("define", path)
        restart(cls.g)
        rc, info = hvpatch("inspect", cls.g.name)   # a new boot: KASLR moved the kernel
        assert rc == 0, info
        cls.info = info

    @classmethod
    def tearDownClass(cls):
        cls.g.destroy()

    def test_shared_name_ignored(self):
        self.assertEqual(self.shared_rc, 1, self.shared_out)
        self.assertIn("no patch-area device", self.shared_out["error"])
        self.assertTrue(self.shared_show["legacy_shmem"] and self.shared_show["legacy_shared_name"])

    def test_apply_from_device(self):
        g = self.g
        original = g.proc_version()
        bar = bar_of(g)
        self.assertIsNotNone(bar, "QEMU maps no ivshmem BAR")
        self.assertEqual(bar[1] - bar[0], 2 << 20)

        rc, first = hvpatch("apply", "--insecure-unsigned", "--area", "device", g.name, self.bundle)
        self.assertEqual(rc, 0, first)
        self.assertIn(MARKER, g.proc_version())

        rc, st = hvpatch("status", g.name)
        self.assertEqual(rc, 0, st)
        (patch,) = st["patches"]
        self.assertEqual(patch["state"], "applied")
        area = [w for w in patch["writes"] if w["kind"] == "area"]
        self.assertTrue(area)
        va = int(area[0]["va"], 16)
        # The code's address is in the kernel image range, outside the image itself.
        self.assertTrue(0xffffffff80000000 <= va < 0xffffffffc0000000)
        base, end = int(self.info["kernel"]["base"], 16), int(self.info["kernel"]["image_end"], 16)
        self.assertFalse(base <= va < end)
        # QEMU's own walk of the guest's tables lands in the BAR, as hvpatch says.
        gpa = g.gva2gpa(va)
        self.assertIsNotNone(gpa)
        self.assertTrue(bar[0] <= gpa < bar[1], hex(gpa))
        rc, tr = hvpatch("translate", g.name, hex(va))
        self.assertEqual(rc, 0, tr)
        self.assertEqual(int(tr[0]["pa"], 16), gpa)
        self.assertEqual(tr[0]["page_size"], 2 << 20)
        self.assertNotIn("w", tr[0]["flags"])           # mapped read-only, executable
        self.assertIn("x", tr[0]["flags"])
        rc, rd = hvpatch("read", g.name, hex(va), "32")
        self.assertEqual(rc, 0, rd)
        self.assertEqual(bytes.fromhex(rd["hex"]), xp_bytes(g, gpa, 32))

        rc, out = hvpatch("revert", g.name, patch["id"])
        self.assertEqual(rc, 0, out)
        self.assertEqual(g.proc_version(), original)
        # The code stays in the BAR, retired: a task may still run it (issue 13).
        self.assertEqual(xp_bytes(g, gpa, 32), bytes.fromhex(rd["hex"]))
        rc, st = hvpatch("status", g.name)
        (dev,) = [a for a in st["areas"] if a["kind"] == "device"]
        self.assertEqual([(int(r["va"], 16), r["state"]) for r in dev["retired"]], [(va, "code")])

        # Again: the slot still maps the BAR, so no page-table write this time; the new
        # code goes elsewhere in the area.
        rc, second = hvpatch("apply", "--insecure-unsigned", "--area", "device", g.name, self.bundle)
        self.assertEqual(rc, 0, second)
        self.assertEqual(second["writes"], first["writes"] - 1)
        rc, st = hvpatch("status", g.name)
        (again,) = [w for w in st["patches"][0]["writes"] if w["kind"] == "area"][:1]
        self.assertNotEqual(int(again["va"], 16), va)
        self.assertIn(MARKER, g.proc_version())
        rc, out = hvpatch("revert", g.name, patch["id"])
        self.assertEqual(rc, 0, out)
        self.assertEqual(g.proc_version(), original)


class NoDevice(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hvp-area-")
        os.environ["HVPATCH_STATE_DIR"] = os.path.join(cls.tmp, "state")
        name = f"hvp-ta-plain-{PID}"
        GUESTS.append(name)
        cls.g = guestlib.Guest.create(name, paging=4)

    @classmethod
    def tearDownClass(cls):
        cls.g.destroy()

    def test_device_refused_nothing_written(self):
        g = self.g
        rc, info = hvpatch("inspect", g.name)
        self.assertEqual(rc, 0, info)
        bundle = build_demo(info["kernel"]["build_id"], os.path.join(self.tmp, "demo"))
        pages = []
        for sym in ("version_proc_show", "_etext"):
            va = g.symbol(sym) & ~0xfff
            pages.append(g.gva2gpa(va))
        before = [xp_bytes(g, p, 4096) for p in pages]
        rc, out = hvpatch("apply", "--insecure-unsigned", "--area", "device", g.name, bundle)
        self.assertEqual(rc, 1, out)
        self.assertIn("no patch-area device", out["error"])
        self.assertEqual([xp_bytes(g, p, 4096) for p in pages], before)
        rc, st = hvpatch("status", g.name)
        self.assertEqual(st["patches"], [])


def main():
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    try:
        result = unittest.TextTestRunner(verbosity=2).run(suite)
    finally:
        for name in GUESTS:
            guestlib.Guest(name).destroy()
    failed = len(result.failures) + len(result.errors)
    print(f"{result.testsRun - failed} passed, {failed} failed")
    return 0 if result.wasSuccessful() and result.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Live: the per-domain read-only patch area (include/hvpatch/area.h "nvdimm",
docs/security.md, `hvpatch area add`).

Two guests, each given its own area by `hvpatch area add` and restarted:
  * the demo redirect placed with --area device runs from the area (the guest's
    /proc/version changes);
  * the guest itself writes over the code with busybox devmem at the area's
    guest-physical address: the bytes stay identical, read from the host both in
    the file and through QEMU (HMP xp), and the patch keeps working;
  * a revert leaves the code in place (append-only: retired, unreachable);
  * the two QEMU processes share no backing object (no (device, inode) both map
    shared);
  * last, a forged shared backing (guest B redefined onto guest A's file) is
    refused when hvpatch opens either guest, and no byte of the file changes.
"""
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib  # noqa: E402
from guestlib import hvpatch  # noqa: E402

REPO = guestlib.REPO
MARKER = "[hvpatch: hotpatched]"
AREA_SIZE = 2 << 20
GUESTS = []
PID = os.getpid()


def build_demo(build_id, outdir):
    subprocess.run([os.path.join(REPO, "images/demo/build-demo.sh"), "--build-id", build_id, "-o", outdir],
                   check=True, capture_output=True, env=dict(os.environ))
    return os.path.join(outdir, "demo-version.hvp")


def xp_bytes(g, gpa, n):
    out = g.hmp("xp /%dxb 0x%x" % (n, gpa))
    return bytes(int(b, 16) for b in re.findall(r"\b0x([0-9a-f]{2})\b", out))[:n]


def virsh(*args):
    return subprocess.run(guestlib.VIRSH + list(args), check=True, capture_output=True, text=True).stdout


def restart(g, timeout=600):
    """Power-cycle the domain so that its persistent definition takes effect."""
    subprocess.run(guestlib.VIRSH + ["destroy", g.name], capture_output=True)
    virsh("start", g.name)
    t0 = time.monotonic()
    while g.ready_count() < 1:
        if time.monotonic() - t0 > timeout:
            raise guestlib.GuestError(f"{g.name}: no HVP-READY within {timeout}s of the restart")
        time.sleep(0.5)
    g.check("true")


def qemu_pid(g):
    with open(f"/run/libvirt/qemu/{g.name}.pid") as f:
        return int(f.read().strip())


def shared_backings(pid):
    """{(dev, inode): path} of the file mappings the process maps shared."""
    out = {}
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) >= 5 and parts[1].endswith("s") and parts[4] != "0":
                out[(parts[3], parts[4])] = parts[5].strip() if len(parts) > 5 else ""
    return out


def read_guest_u64(g, gpa):
    return int.from_bytes(xp_bytes(g, gpa, 8), "little")


def pde_of(g, va):
    """(guest-physical address, value) of the PDE mapping va, walked with QEMU's xp."""
    regs = g.registers()
    la57 = bool(regs["CR4"] & (1 << 12))
    table = regs["CR3"] & 0x000ffffffffff000
    for shift in ([48] if la57 else []) + [39, 30, 21]:
        entry_gpa = table + ((va >> shift) & 511) * 8
        entry = read_guest_u64(g, entry_gpa)
        if shift == 21:
            return entry_gpa, entry
        assert entry & 1, f"level {shift} not present"
        table = entry & 0x000ffffffffff000


def write_guest_u64(g, gpa, value):
    """Write guest RAM from the host at QEMU's own host address for gpa (gpa2hva)."""
    m = re.search(r"is (0x[0-9a-f]+)", g.hmp("gpa2hva 0x%x" % gpa))
    hva = int(m.group(1), 16)
    with open(f"/proc/{qemu_pid(g)}/mem", "r+b", buffering=0) as f:
        f.seek(hva)
        f.write(value.to_bytes(8, "little"))


def file_bytes(path, off, n):
    with open(path, "rb") as f:
        f.seek(off)
        return f.read(n)


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class ReadOnlyArea(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hvp-area-ro-")
        os.chmod(cls.tmp, 0o755)
        os.environ["HVPATCH_STATE_DIR"] = os.path.join(cls.tmp, "state")
        cls.a_name, cls.b_name = f"hvp-aro-a-{PID}", f"hvp-aro-b-{PID}"
        GUESTS.extend([cls.a_name, cls.b_name])
        cls.a = guestlib.Guest.create(cls.a_name, paging=5, timeout=600)
        cls.b = guestlib.Guest.create(cls.b_name, paging=4, timeout=600)
        cls.added = {}
        for g in (cls.a, cls.b):
            rc, out = hvpatch("area", "add", g.name)
            assert rc == 0, out
            cls.added[g.name] = out
            restart(g)
        rc, info = hvpatch("inspect", cls.a.name)
        assert rc == 0, info
        cls.bundle = build_demo(info["kernel"]["build_id"], os.path.join(cls.tmp, "demo"))

    @classmethod
    def tearDownClass(cls):
        for g in (cls.a, cls.b):
            g.destroy()

    def test_a_add_and_show(self):
        for g in (self.a, self.b):
            added = self.added[g.name]
            self.assertTrue(added["changed"])
            self.assertTrue(added["effective_at_next_boot"])        # it was running when added
            self.assertTrue(added["file"].endswith(added["uuid"] + ".area"), added["file"])
            st = os.lstat(added["file"])
            self.assertEqual((st.st_uid, st.st_mode & 0o777, st.st_size), (0, 0o644, AREA_SIZE))
            rc, show = hvpatch("area", "show", g.name)
            self.assertEqual(rc, 0, show)
            self.assertTrue(show["configured"] and show["active"] and show["file_ok"], show)
            self.assertEqual(show["size"], AREA_SIZE)
            # Adding again changes nothing.
            rc, again = hvpatch("area", "add", g.name)
            self.assertEqual(rc, 0, again)
            self.assertFalse(again["changed"])
        self.assertNotEqual(self.added[self.a.name]["file"], self.added[self.b.name]["file"])

    def test_b_guest_cannot_write_the_code(self):
        g = self.a
        path = self.added[g.name]["file"]
        original = g.proc_version()
        rc, out = hvpatch("apply", "--insecure-unsigned", "--area", "device", g.name, self.bundle)
        self.assertEqual(rc, 0, out)
        self.assertIn(MARKER, g.proc_version())
        rc, st = hvpatch("status", g.name)
        self.assertEqual(rc, 0, st)
        (patch,) = st["patches"]
        self.assertEqual(patch["state"], "applied")
        (code,) = [w for w in patch["writes"] if w["kind"] == "area"]
        va, n = int(code["va"], 16), code["len"]
        gpa = g.gva2gpa(va)                     # QEMU's own walk of the guest's tables
        rc, show = hvpatch("area", "show", g.name)
        base = int(show["gpa"], 16)
        self.assertTrue(base <= gpa < base + AREA_SIZE, hex(gpa))
        off = gpa - base
        before = file_bytes(path, off, n)
        self.assertNotEqual(before, b"\xcc" * n)
        self.assertEqual(xp_bytes(g, gpa, n), before)
        rc, tr = hvpatch("translate", g.name, hex(va))
        self.assertNotIn("w", tr[0]["flags"])

        # The guest attacks its own patch code: 32-bit and 8-bit writes over it.
        out = g.check("busybox devmem 0x%x 32 0x0b0f0b0f; busybox devmem 0x%x 8 0xc3; busybox devmem 0x%x 32"
                      % (gpa, gpa + 4, gpa))
        self.assertEqual(int(out.split()[-1], 16), int.from_bytes(before[:4], "little"))
        self.assertEqual(file_bytes(path, off, n), before)
        self.assertEqual(xp_bytes(g, gpa, n), before)
        self.assertIn(MARKER, g.proc_version())             # still runs the patch code
        rc, st = hvpatch("status", g.name)
        self.assertEqual(st["patches"][0]["state"], "applied")

        # Revert: the jump goes, the code stays (append-only), unreachable.
        rc, out = hvpatch("revert", g.name, patch["id"])
        self.assertEqual(rc, 0, out)
        self.assertEqual(g.proc_version(), original)
        self.assertEqual(file_bytes(path, off, n), before)
        # Again: new code goes to fresh bytes, never over the retired code.
        rc, out = hvpatch("apply", "--insecure-unsigned", "--area", "device", g.name, self.bundle)
        self.assertEqual(rc, 0, out)
        self.assertIn(MARKER, g.proc_version())
        rc, st = hvpatch("status", g.name)
        (code2,) = [w for w in st["patches"][0]["writes"] if w["kind"] == "area"]
        self.assertGreaterEqual(int(code2["va"], 16), va + n)
        self.assertEqual(file_bytes(path, off, n), before)
        rc, out = hvpatch("revert", g.name, patch["id"])
        self.assertEqual(rc, 0, out)

    def test_b2_remapped_slot_detected(self):
        """The guest owns its page tables: pointing the slot elsewhere shows in status."""
        g = self.a
        rc, out = hvpatch("apply", "--insecure-unsigned", "--area", "device", g.name, self.bundle)
        self.assertEqual(rc, 0, out)
        rc, st = hvpatch("status", g.name)
        (patch,) = st["patches"]
        (code,) = [w for w in patch["writes"] if w["kind"] == "area"]
        pde_gpa, pde = pde_of(g, int(code["va"], 16))
        self.assertEqual(pde & 0x81, 0x81)                  # present, 2 MiB page
        # What a hostile guest kernel does with its own tables, done here from the host
        # (the guest's /dev/mem cannot reach RAM under STRICT_DEVMEM): the slot now maps
        # other guest memory (its first 2 MiB). Nothing calls the patched function meanwhile.
        write_guest_u64(g, pde_gpa, (pde & ~0x000fffffffe00000) | 0x0)
        try:
            rc, st = hvpatch("status", g.name)
            self.assertEqual(rc, 0, st)
            self.assertEqual(st["patches"][0]["state"], "foreign")
            (w,) = [w for w in st["patches"][0]["writes"] if w["kind"] == "area"]
            self.assertTrue(w.get("remapped"), w)
        finally:
            write_guest_u64(g, pde_gpa, pde)
        rc, st = hvpatch("status", g.name)
        self.assertEqual(st["patches"][0]["state"], "applied")
        self.assertIn(MARKER, g.proc_version())
        rc, out = hvpatch("revert", g.name, patch["id"])
        self.assertEqual(rc, 0, out)

    def test_c_no_shared_memory(self):
        pa, pb = qemu_pid(self.a), qemu_pid(self.b)
        sa, sb = shared_backings(pa), shared_backings(pb)
        self.assertIn(self.added[self.a.name]["file"], sa.values())
        self.assertIn(self.added[self.b.name]["file"], sb.values())
        self.assertEqual(set(sa) & set(sb), set(), "backing objects both QEMU processes map shared")

    def test_d_forged_shared_backing_refused(self):
        a_file, b_file = self.added[self.a.name]["file"], self.added[self.b.name]["file"]
        xml = virsh("dumpxml", "--inactive", self.b.name).replace(b_file, a_file)
        with open(os.path.join(self.tmp, "b.xml"), "w") as f:
            f.write(xml)
        virsh("define", os.path.join(self.tmp, "b.xml"))
        restart(self.b)
        self.assertIn(a_file, shared_backings(qemu_pid(self.b)).values())
        digest = sha(a_file)
        for g in (self.a, self.b):
            rc, out = hvpatch("apply", "--insecure-unsigned", "--area", "device", g.name, self.bundle)
            self.assertEqual(rc, 3, out)                    # refused
            self.assertIn("also mapped by process", out["error"])
        self.assertEqual(sha(a_file), digest)
        self.assertNotIn(MARKER, self.b.proc_version())


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

#!/usr/bin/env python3
"""Self-test of the test-guest tooling (images/*.sh, guestlib.py).

Boots a 4-level and a 5-level paging guest with KASLR, one after the other
(never more than one guest of ours at a time), and checks them against
independent oracles: the fetched kernel files, the guest's own /proc and
QEMU's monitor. Needs root, libvirt and network for the first kernel fetch.

    python3 tests/live/test_guest_boot.py        # last line: "N passed, M failed"

Environment: HVP_KERNEL_DIR (skip the fetch), HVP_GUEST_DIR (state).
"""

import os
import re
import struct
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib  # noqa: E402

IMAGES = os.path.join(guestlib.REPO, "images")
KERNEL = {}          # filled by setUpModule: dir, version, build_id
BOOT_TIMES = {}      # paging -> seconds to HVP-READY
ACCELS = {}          # paging -> (accelerator the guest ran under, guest.sh's reason)
CREATED = []         # guests to destroy however the run ends (even on ^C)


def elf_build_id(path):
    """GNU build id from the .notes section of a (stripped) vmlinux ELF."""
    with open(path, "rb") as f:
        ehdr = f.read(64)
        if ehdr[:4] != b"\x7fELF":
            raise ValueError(f"{path}: not an ELF")
        shoff, = struct.unpack_from("<Q", ehdr, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", ehdr, 0x3a)
        f.seek(shoff)
        shdrs = [struct.unpack_from("<IIQQQQ", f.read(shentsize)) for _ in range(shnum)]
        # (name, type, flags, addr, offset, size)
        f.seek(shdrs[shstrndx][4])
        strtab = f.read(shdrs[shstrndx][5])
        for name, _type, _flags, _addr, off, size in shdrs:
            if strtab[name:strtab.index(b"\0", name)] == b".notes":
                f.seek(off)
                return guestlib.parse_build_id(f.read(size))
    return None


def hmp_bytes(out):
    """Bytes of an HMP x/xp dump ("ADDR: 0x48 0x8d ..." lines)."""
    return bytes(int(b, 16) for line in out.splitlines() if ":" in line
                 for b in line.split(":", 1)[1].split())


def setUpModule():
    if os.geteuid() != 0:
        # CI has everything these tests need: a missing prerequisite is a failure, not a skip.
        raise RuntimeError("live guest tests need root (libvirt qemu:///system)")
    subprocess.run([os.path.join(IMAGES, "setup-host.sh")], check=True, stdout=subprocess.DEVNULL)
    kdir = guestlib.kernel_dir()
    with open(os.path.join(kdir, "version")) as f:
        KERNEL["version"] = f.read().strip()
    KERNEL["dir"] = kdir
    KERNEL["build_id"] = elf_build_id(os.path.join(kdir, "vmlinux"))


class BootBase:
    paging = None

    @classmethod
    def setUpClass(cls):
        name = f"hvp-selftest{cls.paging}-{os.getpid()}"
        CREATED.append(name)
        # guest.sh's choice for this paging (cached verdict: no second probe), before the boot
        cls.expected_accel = guestlib.accel_choice(cls.paging)[:2]
        cls.g = guestlib.Guest.create(name, paging=cls.paging, kaslr=True, kernel_dir=KERNEL["dir"])
        BOOT_TIMES[cls.paging] = cls.g.boot_seconds
        ACCELS[cls.paging] = (cls.g.accel, cls.g.accel_reason)

    @classmethod
    def tearDownClass(cls):
        cls.g.destroy()     # before the next class boots its guest: one at a time

    def test_ready_marker_on_console(self):
        with open(self.g.console_log, "rb") as f:
            self.assertIn(b"HVP-READY", f.read())

    def test_accelerator(self):
        """The domain runs under the accelerator guest.sh chose (HVP_ACCEL), and says why."""
        accel, reason = self.expected_accel
        mode = os.environ.get("HVP_ACCEL", "auto")
        self.assertEqual(self.g.accel, accel, f"guest.sh accel said {accel} ({reason})")
        self.assertEqual(self.g.accel_reason, reason)
        self.assertIn(f"accelerator {accel} ({reason})", self.g.create_log)
        self.assertIn(f"ready in {self.g.boot_seconds}s (accelerator={accel}, paging={self.paging}",
                      self.g.create_log)
        if mode == "tcg":
            self.assertEqual((accel, reason), ("tcg", "HVP_ACCEL=tcg"))
        elif not os.path.exists(os.environ.get("HVP_KVM_DEVICE", "/dev/kvm")):
            self.assertEqual(accel, "tcg")
            self.assertIn("no /dev/kvm", reason)
        # the XML guest.sh defined: the CPU mode that gives a 5-level guest LA57 on each
        # accelerator (libvirt's own dumpxml adds a <cpu mode='custom'> qemu64 for none)
        with open(os.path.join(self.g.dir, "domain.xml")) as f:
            xml = f.read()
        self.assertIn(f"<domain type='{'kvm' if accel == 'kvm' else 'qemu'}'>", xml)
        cpu = re.search(r"<cpu\b[^>]*\bmode=['\"]([\w-]+)['\"]", xml)
        if self.paging == 5:
            self.assertEqual(cpu and cpu.group(1), "host-passthrough" if accel == "kvm" else "maximum")
        else:
            self.assertIsNone(cpu, "a 4-level guest must not get the host's LA57")

    def test_command_channel(self):
        self.assertEqual(self.g.run("echo 'a b'; printf c"), (0, "a b\nc"))
        self.assertEqual(self.g.run("exit 7")[0], 7)
        self.assertEqual(self.g.run("if then")[0], 2)   # syntax error: sh's status

    def test_uname_matches_fetched_kernel(self):
        self.assertEqual(self.g.uname_r(), KERNEL["version"])
        self.assertIn(KERNEL["version"], self.g.proc_version())

    def test_build_id_matches_vmlinux(self):
        self.assertIsNotNone(KERNEL["build_id"])
        self.assertEqual(self.g.build_id(), KERNEL["build_id"])

    def test_cr4_la57(self):
        cr4s = [int(v, 16) for v in re.findall(r"\bCR4=([0-9a-fA-F]+)", self.g.hmp("info registers -a"))]
        self.assertEqual(len(cr4s), 2, "expected two vCPUs")
        for cr4 in cr4s:
            self.assertEqual(bool(cr4 & (1 << 12)), self.paging == 5, f"CR4={cr4:#x}")

    def test_kallsyms_kaslr_and_gva2gpa(self):
        syms = self.g.kallsyms()
        self.assertGreater(len(syms), 50000)
        nonzero = sum(1 for a, _, _, _ in syms if a)
        self.assertGreater(nonzero, len(syms) * 0.9, "kallsyms addresses hidden?")
        text = [a for a, t, n, _ in syms if n == "_text"]
        self.assertEqual(len(text), 1)
        text = text[0]
        self.assertEqual(text, self.g.symbol("_text"))
        self.assertTrue(self.g.kaslr_moved(text), "KASLR is off")
        self.assertEqual(text % 0x200000, 0, "kernel base not 2 MiB aligned")
        gpa = self.g.gva2gpa(text)
        self.assertIsNotNone(gpa, "_text unmapped according to QEMU")
        # the same bytes through the virtual and the physical path
        x = hmp_bytes(self.g.hmp("x /16xb 0x%x" % text))
        xp = hmp_bytes(self.g.hmp("xp /16xb 0x%x" % gpa))
        self.assertEqual(len(x), 16)
        self.assertEqual(x, xp)
        self.assertIsNone(self.g.gva2gpa(0x1000))   # no user mapping at page 1


class Boot4Level(BootBase, unittest.TestCase):
    paging = 4


class Boot5Level(BootBase, unittest.TestCase):
    paging = 5


def main():
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    try:
        result = unittest.TextTestRunner(verbosity=2).run(suite)
    finally:
        for name in CREATED:
            guestlib.Guest(name).destroy()      # no-op when already gone
    for p in sorted(BOOT_TIMES):
        accel, why = ACCELS.get(p, ("?", "?"))
        print(f"boot to HVP-READY, {p}-level paging: {BOOT_TIMES[p]}s under {accel} ({why})")
    return guestlib.summary(result)


if __name__ == "__main__":
    sys.exit(main())

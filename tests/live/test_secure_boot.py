#!/usr/bin/env python3
"""Secure Boot as the guest kernel saw it, read from memory, on real signed boot chains.

Three guests under OVMF's Secure Boot build (issue 10 item 5):
  on      shim (Microsoft-signed) -> GRUB (Debian-signed) -> the Debian-signed kernel, from
          an EFI system partition, with Microsoft's keys enrolled and Secure Boot on;
  off     the same chain with an empty key store;
  direct  Secure Boot on, but QEMU loads the kernel (<os><kernel>): OVMF starts it through
          its legacy loader, unverified, and the kernel still records Secure Boot as on.
hvpatch's reading (inspect, status: boot_security) is checked against each guest's own
/sys/kernel/security/lockdown and boot log; the policy's <require secure-boot="yes"/>
must pass only the verified chain.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib  # noqa: E402
from guestlib import Guest, hvpatch  # noqa: E402

TAG = f"hvp-sb-{os.getpid()}"
KINDS = {
    "on": ["--secure-boot", "on"],
    "off": ["--secure-boot", "off"],
    "direct": ["--secure-boot", "on", "--boot", "direct"],
}


def create(name, args, out, errors):
    """guest.sh create with extra options (Guest.create has no boot options)."""
    timeout = int(os.environ.get("HVP_BOOT_TIMEOUT", "300"))
    cmd = [guestlib.GUEST_SH, "create", name, "--timeout", str(timeout)] + args
    kdir = os.environ.get("HVP_KERNEL_DIR")
    if kdir:
        cmd += ["--kernel-dir", kdir]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=2 * timeout + 300)
    except subprocess.TimeoutExpired:
        Guest(name).destroy()
        errors.append(f"{name}: guest.sh create timed out")
        return
    if p.returncode != 0:
        errors.append(f"{name}: guest.sh create failed (exit {p.returncode}):\n{p.stderr.strip()}")
        return
    out[name] = Guest(name)


class SecureBoot(unittest.TestCase):
    guests = {}

    @classmethod
    def setUpClass(cls):
        for tool in ("mkfs.vfat", "mcopy"):
            if not shutil.which(tool):
                raise unittest.SkipTest(f"{tool} not found (images/setup-host.sh installs mtools, dosfstools)")
        cls.tmp = tempfile.mkdtemp(prefix="hvp-sb-")
        created, errors, threads = {}, [], []
        for kind, args in KINDS.items():        # the three boots share the machine's cores
            t = threading.Thread(target=create, args=(f"{TAG}-{kind}", args, created, errors))
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        cls.guests = {k: created.get(f"{TAG}-{k}") for k in KINDS}
        if errors:
            cls.tearDownClass()
            raise guestlib.GuestError("\n".join(errors))
        subprocess.run(["minisign", "-G", "-W", "-p", "k.pub", "-s", "k.key"], cwd=cls.tmp, check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @classmethod
    def tearDownClass(cls):
        for g in cls.guests.values():
            if g:
                g.destroy()
        shutil.rmtree(getattr(cls, "tmp", ""), ignore_errors=True)

    def guest_view(self, kind):
        """What the guest itself says: its lockdown level and its boot log's Secure Boot line."""
        g = self.guests[kind]
        lockdown = g.check("mount -t securityfs none /sys/kernel/security 2>/dev/null; "
                           "cat /sys/kernel/security/lockdown").strip()
        level = lockdown[lockdown.index("[") + 1:lockdown.index("]")]
        log = g.check("dmesg | grep -i 'secureboot: secure boot' || true")
        sb = "enabled" if "Secure boot enabled" in log else "disabled" if "Secure boot disabled" in log else "?"
        return sb, level

    def policy(self, kind):
        """A policy requiring Secure Boot for this guest, with its running kernel as baseline."""
        rc, ins = hvpatch("inspect", self.guests[kind].name)
        self.assertEqual(rc, 0, ins)
        path = os.path.join(self.tmp, f"{kind}.xml")
        with open(path, "w") as f:
            f.write(f'''<?xml version="1.0"?>
<policy version="1">
  <key name="k"><public-key-file>{self.tmp}/k.pub</public-key-file><may-sign series="*"/></key>
  <group name="sb">
    <select name="{self.guests[kind].name}"/>
    <require uefi="yes" secure-boot="yes"/>
    <window/>
    <baseline name="now" current="yes"><kernel build-id="{ins["kernel"]["build_id"]}"/></baseline>
  </group>
</policy>
''')
        return path

    def check_kind(self, kind, want_sb, want_lockdown):
        sb, level = self.guest_view(kind)
        self.assertEqual((sb, level), (want_sb, want_lockdown), f"{kind}: the guest's own view")
        rc, ins = hvpatch("inspect", self.guests[kind].name)
        self.assertEqual(rc, 0, ins)
        bs = ins["boot_security"]
        self.assertEqual((bs["secure_boot"], bs["lockdown"], bs["efi_boot"]), (sb, level, True), bs)
        rc, st = hvpatch("status", self.guests[kind].name)
        self.assertEqual(rc, 0, st)
        self.assertEqual(st["boot_security"], bs)
        print(f"{kind}: guest says {sb}/{level}; hvpatch says {bs['secure_boot']}/{bs['lockdown']}")

    def compliance(self, kind):
        rc, st = hvpatch("--policy", self.policy(kind), "status", self.guests[kind].name)
        self.assertEqual(rc, 0, st)
        return st["compliance"]

    def test_on(self):
        self.check_kind("on", "enabled", "integrity")
        c = self.compliance("on")
        self.assertNotIn("no-secure-boot", [r["code"] for r in c["reasons"]], c)
        self.assertNotEqual(c["verdict"], "refuse", c)

    def test_off(self):
        self.check_kind("off", "disabled", "none")
        c = self.compliance("off")
        self.assertEqual(c["verdict"], "refuse", c)
        texts = [r["reason"] for r in c["reasons"] if r["code"] == "no-secure-boot"]
        self.assertTrue(texts and "guest kernel booted without it" in texts[0], c)

    def test_direct_kernel_unverified(self):
        # the firmware's Secure Boot is on, and the kernel (wrongly) trusts it
        self.check_kind("direct", "enabled", "integrity")
        c = self.compliance("direct")
        self.assertEqual(c["verdict"], "refuse", c)
        texts = [r["reason"] for r in c["reasons"] if r["code"] == "no-secure-boot"]
        self.assertTrue(texts and "loaded by QEMU" in texts[0], c)


def main():
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(SecureBoot)
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    sys.exit(guestlib.summary(result))


if __name__ == "__main__":
    main()

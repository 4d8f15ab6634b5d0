#!/usr/bin/env python3
"""The accelerator choice of images/guest.sh (HVP_ACCEL=auto|kvm|tcg), on real libvirt.

A KVM device that exists but cannot run guests is made real with the test hook
HVP_KVM_DEVICE=/dev/null: guest.sh then probes by booting a guest under
type='kvm', and on a host whose own KVM cannot run guests (no /dev/kvm, or one
that fails) libvirt really refuses or QEMU really fails. On a host whose KVM
works the same probe boots, and the tests expect that instead.

Everything runs in a private state folder (HVP_GUEST_DIR) so the host's own
cached verdict is left alone. At most one TCG guest boots (the retry test).

    python3 tests/live/test_accel.py        # last line: "N passed, M failed"
"""

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib  # noqa: E402

ENV = {}             # for guest.sh: the private state folder, the kernel
HOST = {}            # accel/reason of this host's own KVM (probed in the private folder)
CREATED = []
PROBE_TIMEOUT = 60   # guest.sh's default HVP_KVM_PROBE_TIMEOUT
UNUSABLE = "/dev/null"


def guest_sh(*args, env=None, timeout=PROBE_TIMEOUT + 300):
    """Run images/guest.sh with ENV + env; returns (rc, stdout, stderr, seconds)."""
    t0 = time.monotonic()
    p = subprocess.run([guestlib.GUEST_SH] + list(args), capture_output=True, text=True,
                       env={**os.environ, **ENV, **(env or {})}, timeout=timeout)
    return p.returncode, p.stdout, p.stderr, time.monotonic() - t0


def cache_path():
    return os.path.join(ENV["HVP_GUEST_DIR"], "kvm-probe")


def read_cache():
    with open(cache_path()) as f:
        return dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)


def write_cache(fields):
    with open(cache_path(), "w") as f:
        for k in ("key", "verdict", "reason", "probed"):
            f.write(f"{k}={fields[k]}\n")


def setUpModule():
    if os.geteuid() != 0:
        raise RuntimeError("live guest tests need root (libvirt qemu:///system)")
    subprocess.run([os.path.join(guestlib.REPO, "images", "setup-host.sh")], check=True,
                   stdout=subprocess.DEVNULL)
    kdir = guestlib.kernel_dir()             # before HVP_GUEST_DIR changes: the shared kernel
    root = os.environ.get("HVP_GUEST_DIR", "/var/lib/hvpatch-test")
    os.makedirs(root, exist_ok=True)
    priv = os.path.join(root, f"accel-test-{os.getpid()}")
    os.mkdir(priv)
    os.chmod(priv, 0o755)                    # QEMU (libvirt-qemu) reaches guests/NAME/ below
    os.environ.update(HVP_GUEST_DIR=priv, HVP_KERNEL_DIR=kdir)   # guestlib.Guest's folder too
    ENV.update(HVP_GUEST_DIR=priv, HVP_KERNEL_DIR=kdir, HVP_ACCEL="auto")
    # This host's own KVM, probed like guest.sh always does (no /dev/kvm: instant).
    accel, reason, _ = guestlib.accel_choice(4, env={"HVP_ACCEL": "auto"})
    HOST.update(accel=accel, reason=reason)
    print(f"this host: {accel} ({reason})", file=sys.stderr)


def tearDownModule():
    for name in CREATED:
        guestlib.Guest(name).destroy()
    if ENV.get("HVP_GUEST_DIR"):
        shutil.rmtree(ENV["HVP_GUEST_DIR"], ignore_errors=True)


class Accel(unittest.TestCase):
    def setUp(self):
        if os.path.exists(cache_path()):
            os.remove(cache_path())

    def probe_unusable(self):
        """auto with HVP_KVM_DEVICE=/dev/null, no cache: the probe runs. Returns (accel, reason)."""
        rc, out, err, _ = guest_sh("accel", env={"HVP_KVM_DEVICE": UNUSABLE, "HVP_ACCEL": "auto"})
        self.assertEqual(rc, 0, err)
        self.assertIn(f"probing KVM: booting hvp-kvmprobe-", err)
        accel, _, reason = out.rstrip("\n").partition("\t")
        return accel, reason

    def test_bad_mode_is_usage_error(self):
        for args in (["accel"], ["create", "hvp-accel-never-booted"]):
            rc, out, err, _ = guest_sh(*args, env={"HVP_ACCEL": "KVM"})
            self.assertEqual(rc, 2, err)
            self.assertIn("HVP_ACCEL must be auto, kvm or tcg (not 'KVM')", err)
            self.assertEqual(out, "")
        r = subprocess.run(guestlib.VIRSH + ["dominfo", "hvp-accel-never-booted"], capture_output=True)
        self.assertNotEqual(r.returncode, 0, "a domain was defined despite the usage error")

    def test_tcg_forced(self):
        rc, out, err, _ = guest_sh("accel", env={"HVP_ACCEL": "tcg", "HVP_KVM_DEVICE": UNUSABLE})
        self.assertEqual((rc, out), (0, "tcg\tHVP_ACCEL=tcg\n"), err)
        self.assertNotIn("probing", err)
        self.assertFalse(os.path.exists(cache_path()), "HVP_ACCEL=tcg probed KVM")

    def test_auto_without_device(self):
        dev = "/nonexistent/kvm"
        rc, out, err, secs = guest_sh("accel", env={"HVP_ACCEL": "auto", "HVP_KVM_DEVICE": dev})
        self.assertEqual((rc, out), (0, f"tcg\tKVM not usable: no {dev}\n"), err)
        self.assertNotIn("probing", err)
        self.assertFalse(os.path.exists(cache_path()), "probed although there is no device")
        # HVP_ACCEL=kvm: an error with the reason, and no domain left behind
        name = f"hvp-accel-nodev-{os.getpid()}"
        rc, out, err, _ = guest_sh("create", name, env={"HVP_ACCEL": "kvm", "HVP_KVM_DEVICE": dev})
        self.assertEqual(rc, 1, err)
        self.assertIn(f"HVP_ACCEL=kvm, but KVM cannot run guests here: no {dev}", err)
        r = subprocess.run(guestlib.VIRSH + ["dominfo", name], capture_output=True)
        self.assertNotEqual(r.returncode, 0, f"{name} was defined")

    def test_unusable_device_probed_once_then_cached_and_reprobed_on_key_change(self):
        accel, reason = self.probe_unusable()
        if HOST["accel"] == "tcg":
            self.assertEqual(accel, "tcg")
            self.assertTrue(reason.startswith("KVM not usable: a KVM test guest did not boot: "), reason)
        else:                       # this host's KVM works: the probe guest booted under it
            self.assertEqual(accel, "kvm")
            self.assertRegex(reason, r"booted to HVP-READY in [0-9.]+s")
        c = read_cache()
        self.assertEqual(c["verdict"], accel)
        self.assertTrue(reason.endswith(c["reason"]), (reason, c["reason"]))
        self.assertIn(f"device={UNUSABLE} (character special file", c["key"])
        self.assertIn("qemu=QEMU emulator version", c["key"])
        self.assertIn(f"kernel={os.uname().release} ", c["key"])
        content, mtime = open(cache_path()).read(), os.stat(cache_path()).st_mtime_ns

        # Second call: the cached verdict, no probe (no probe line, the file untouched).
        time.sleep(1.1)
        rc, out, err, _ = guest_sh("accel", env={"HVP_KVM_DEVICE": UNUSABLE, "HVP_ACCEL": "auto"})
        self.assertEqual((rc, out), (0, f"{accel}\t{reason}\n"), err)
        self.assertNotIn("probing KVM", err)
        self.assertIn(f"KVM verdict from {cache_path()} (probed {c['probed']})", err)
        self.assertEqual(open(cache_path()).read(), content)
        self.assertEqual(os.stat(cache_path()).st_mtime_ns, mtime)

        # A cache written under another QEMU version: probed again, the key made current.
        write_cache(dict(c, key=c["key"].replace("qemu=QEMU emulator version", "qemu=QEMU emulator version 0.1-old; was"),
                         reason="stale reason from another QEMU"))
        rc, out, err, _ = guest_sh("accel", env={"HVP_KVM_DEVICE": UNUSABLE, "HVP_ACCEL": "auto"})
        self.assertEqual(rc, 0, err)
        self.assertIn("probing KVM", err)
        self.assertNotIn("stale reason", out)
        self.assertEqual(read_cache()["key"], c["key"])
        # Another device (it appeared, or is another one): probed again too.
        rc, out, err, _ = guest_sh("accel", env={"HVP_KVM_DEVICE": "/dev/zero", "HVP_ACCEL": "auto"})
        self.assertEqual(rc, 0, err)
        self.assertIn("probing KVM", err)
        self.assertIn("device=/dev/zero (character special file 1:5)", read_cache()["key"])

    def test_kvm_mode_on_unusable_host_is_a_bounded_error(self):
        accel, reason = self.probe_unusable()
        if accel == "kvm":
            # This host's KVM works, so /dev/null is no unusable device here: the
            # verdict-based refusal below needs a host that cannot.
            self.assertEqual(HOST["accel"], "kvm")
            return
        name = f"hvp-accel-kvmmode-{os.getpid()}"
        CREATED.append(name)
        for cached in (True, False):     # the cached verdict, then a fresh probe
            if not cached:
                os.remove(cache_path())
            rc, out, err, secs = guest_sh("create", name, "--timeout", "60",
                                          env={"HVP_ACCEL": "kvm", "HVP_KVM_DEVICE": UNUSABLE},
                                          timeout=PROBE_TIMEOUT + 240)
            self.assertEqual(rc, 1, err)
            self.assertIn("guest.sh: error: HVP_ACCEL=kvm, but KVM cannot run guests here: "
                          + reason[len("KVM not usable: "):], err)
            self.assertLess(secs, PROBE_TIMEOUT + 200)
            r = subprocess.run(guestlib.VIRSH + ["dominfo", name], capture_output=True)
            self.assertNotEqual(r.returncode, 0, f"{name} was defined")

    def test_5level_without_la57(self):
        """A KVM verdict (cached; written here, no KVM needed) and a host CPU without la57."""
        self.probe_unusable()
        write_cache(dict(read_cache(), verdict="kvm", reason="faked by test_accel"))
        env = {"HVP_KVM_DEVICE": UNUSABLE, "HVP_CPUINFO": "/dev/null"}
        rc, out, err, _ = guest_sh("accel", "--paging", "5", env=dict(env, HVP_ACCEL="auto"))
        self.assertEqual((rc, out), (0, "tcg\ta 5-level guest needs LA57 under KVM and the host "
                                        "CPU has no la57 (/dev/null)\n"), err)
        rc, out, err, _ = guest_sh("accel", "--paging", "4", env=dict(env, HVP_ACCEL="auto"))
        self.assertEqual((rc, out), (0, "kvm\tKVM works here: faked by test_accel\n"), err)
        rc, out, err, _ = guest_sh("create", f"hvp-accel-la57-{os.getpid()}", "--paging", "5",
                                   env=dict(env, HVP_ACCEL="kvm"))
        self.assertEqual(rc, 1, err)
        self.assertIn("HVP_ACCEL=kvm, but a 5-level guest needs LA57 under KVM", err)
        # The host's real cpuinfo with la57 in it: 5-level may use KVM.
        with open("/proc/cpuinfo") as f:
            has_la57 = re.search(r"\bla57\b", f.read()) is not None
        rc, out, err, _ = guest_sh("accel", "--paging", "5", env={"HVP_KVM_DEVICE": UNUSABLE})
        self.assertEqual(out.split("\t")[0], "kvm" if has_la57 else "tcg", out + err)

    def test_retry_once_under_tcg(self):
        """auto, a KVM verdict, and a guest that then fails under KVM: retried once under TCG."""
        self.probe_unusable()
        write_cache(dict(read_cache(), verdict="kvm", reason="faked by test_accel"))
        name = f"hvp-accel-retry-{os.getpid()}"
        CREATED.append(name)
        g = guestlib.Guest.create(name, paging=4,
                                  env={"HVP_KVM_DEVICE": UNUSABLE, "HVP_ACCEL": "auto"})
        try:
            if HOST["accel"] == "kvm":      # /dev/null's KVM verdict is true here: no failure
                self.assertEqual(g.accel, "kvm")
                self.assertNotIn("retrying", g.create_log)
                return
            self.assertIn(f"guest.sh: {name}: accelerator kvm (KVM works here: faked by test_accel)",
                          g.create_log)
            self.assertRegex(g.create_log, rf"guest\.sh: {name} failed under KVM \(.+\); "
                                           r"retrying once under TCG \(HVP_ACCEL=auto\)")
            self.assertEqual(g.accel, "tcg")
            self.assertTrue(g.accel_reason.startswith("retried under TCG after KVM failed: "),
                            g.accel_reason)
            self.assertIn(f"{name} ready in", g.create_log)
            self.assertIn("accelerator=tcg", g.create_log)
            self.assertIn(f"dropped the cached KVM verdict ({cache_path()})", g.create_log)
            self.assertFalse(os.path.exists(cache_path()), "the KVM verdict KVM just failed is still cached")
            self.assertEqual(g.check("echo up"), "up\n")
            # guest.sh's run log: scripts/test.sh's (HVP_ACCEL_LOG), else STATE/accel.log
            log = os.environ.get("HVP_ACCEL_LOG") or os.path.join(ENV["HVP_GUEST_DIR"], "accel.log")
            with open(log) as f:
                rows = [line.rstrip("\n").split("\t") for line in f]
            mine = [r for r in rows if r[0] == name]
            self.assertEqual(len(mine), 1, rows)
            self.assertEqual(mine[0][1:3], ["tcg", "4"])
            self.assertEqual(mine[0][4], g.accel_reason)
        finally:
            g.destroy()


class SkipIsNoPass(unittest.TestCase):
    """The live tests' mains (guestlib.summary): a skip is never reported as a pass."""

    def run_boot_main_on_a_skip(self, ci):
        import test_guest_boot

        class Skipping(unittest.TestCase):
            def test_prerequisite(self):
                self.skipTest("synthetic: a prerequisite is missing")
        Skipping.__module__ = "no_module_fixtures"      # test_guest_boot's own are not run
        loader = unittest.defaultTestLoader
        saved_load, saved_ci = loader.loadTestsFromModule, os.environ.pop("CI", None)
        loader.loadTestsFromModule = lambda module: unittest.TestSuite([Skipping("test_prerequisite")])
        if ci:
            os.environ["CI"] = "true"
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = test_guest_boot.main()
            # loud: the skip and its reason on stderr, the count on the last line
            self.assertIn("SKIPPED: no_module_fixtures.", err.getvalue())
            self.assertIn(": synthetic: a prerequisite is missing", err.getvalue())
            self.assertEqual(out.getvalue().splitlines()[-1],
                             "0 passed, 1 failed" if ci else "0 passed, 0 failed, 1 skipped")
            return rc
        finally:
            loader.loadTestsFromModule = saved_load
            os.environ.pop("CI", None)
            if saved_ci is not None:
                os.environ["CI"] = saved_ci

    def test_guest_boot_main_on_a_skip(self):
        self.assertEqual(self.run_boot_main_on_a_skip(ci=False), guestlib.SKIP_EXIT)   # CTest: Skipped
        self.assertEqual(self.run_boot_main_on_a_skip(ci=True), 1)                     # CI: failed


def main():
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    try:
        result = unittest.TextTestRunner(verbosity=2).run(suite)
    finally:
        for name in CREATED:
            guestlib.Guest(name).destroy()
    return guestlib.summary(result)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Baseline moves for host-booted kernels, on a live guest: `hvpatch plan` and `sync`.

One guest boots kernel A (Debian 12's, <os><kernel> as images/guest.sh defines it). The
policies have two baselines: "old" lists A's build id, "new" (current) lists kernel B's
(Debian 13's, images/fetch-kernel.sh --suite trixie) and names B's vmlinuz and the
initramfs guest.sh builds (<baseline kernel= initrd=>). Cases, in order:
  * no window allows reboots, or the reboot window is not open now: plan says
    reboot-required and when it moves; sync moves nothing: the persistent domain XML,
    the QEMU process and the running kernel (the guest's own /proc/version) are as before;
  * a window allowing reboots, sync --dry-run: plan and sync show
    "move-baseline: A -> B, reboot"; nothing changes;
  * sync: the guest is moved: it comes back running B (its own /proc/version and
    `hvpatch inspect`), its persistent XML names B's image, a new QEMU process runs it,
    the move is audited (action=move-baseline), and the sync after it saw B compliant;
  * sync again: nothing to move, the QEMU process is the same;
  * hvpatchd, with a policy whose current baseline is A again: the daemon moves the guest
    back by itself (the same library call), and it runs A.
The disk-booted case (no <os><kernel>: reported only) is a unit test on domain XML
(tests/unit/test-move.c).

Oracles hvpatch does not control: the guest's /proc/version through the test command
channel, `virsh dumpxml --inactive`, QEMU's pid file, the syslog datagrams (the audit
namespace of test_policy.py).

    python3 tests/live/test_baseline_move.py     # last line: "N passed, M failed"

Environment: HVPATCH, HVPATCHD (binaries), HVP_KERNEL_DIR, HVP_KERNEL_DIR_TRIXIE, HVP_GUEST_DIR.
Must run as root with libvirt (it fails, not skips, otherwise).
"""

import datetime
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib  # noqa: E402
from test_policy import Audit  # noqa: E402  (syslog datagrams in a private /dev)

REPO = guestlib.REPO
VIRSH = ["virsh", "-q", "-c", "qemu:///system"]


def hvpatch_exe():
    exe = os.environ.get("HVPATCH", "build/cli/hvpatch")
    if not os.path.isabs(exe):
        exe = os.path.join(REPO, exe)
    return exe


def read_text(path):
    with open(path, errors="replace") as f:
        return f.read()


def hvpatchd_exe():
    exe = os.environ.get("HVPATCHD", "build/daemon/hvpatchd")
    if not os.path.isabs(exe):
        exe = os.path.join(REPO, exe)
    return exe


def vmlinux_build_id(path):
    """The GNU build id in an ELF vmlinux's PT_NOTE segments (our own reading)."""
    with open(path, "rb") as f:
        ehdr = f.read(64)
        if ehdr[:4] != b"\x7fELF" or ehdr[4] != 2:
            raise RuntimeError(f"{path}: not an ELF64 file")
        phoff, = struct.unpack_from("<Q", ehdr, 32)
        phentsize, phnum = struct.unpack_from("<HH", ehdr, 54)
        for i in range(min(phnum, 64)):
            f.seek(phoff + i * phentsize)
            p_type, _, p_offset, _, _, p_filesz = struct.unpack("<IIQQQQ", f.read(40))
            if p_type != 4 or p_filesz > 1 << 20:
                continue
            f.seek(p_offset)
            bid = guestlib.parse_build_id(f.read(p_filesz))
            if bid:
                return bid
    raise RuntimeError(f"{path}: no GNU build id note")


def weekday_in(days):
    when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days)
    return ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[when.weekday()]


def setUpModule():
    if os.geteuid() != 0:
        raise RuntimeError("live baseline-move test needs root (libvirt qemu:///system)")
    if not shutil.which("virsh") or not shutil.which("unshare"):
        raise RuntimeError("virsh and unshare are needed (images/setup-host.sh installs them)")
    if not os.access(hvpatch_exe(), os.X_OK):
        raise RuntimeError(f"hvpatch binary not found: {hvpatch_exe()} (build it, or set HVPATCH)")
    subprocess.run([os.path.join(REPO, "images", "setup-host.sh")], check=True, stdout=subprocess.DEVNULL)


POLICY = """<policy version='1'>
  <group name='farm'>
    <select name='{name}'/>
    <window/>
{reboot}
    <baseline name='new' current='{new_current}' kernel='{kernel}' initrd='{initrd}'>
      <kernel build-id='{bid_b}'/>
    </baseline>
    <baseline name='old' current='{old_current}' kernel='{kernel_a}' initrd='{initrd}'>
      <kernel build-id='{bid_a}'/>
    </baseline>
  </group>
</policy>
"""


class BaselineMove(unittest.TestCase):
    name = None
    g = None
    audit = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hvp-bm-move.")
        try:
            cls.prepare()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def prepare(cls):
        cls.kdir_a = guestlib.kernel_dir()
        cls.kdir_b = guestlib.kernel_dir_for("trixie")
        cls.bid_a = vmlinux_build_id(os.path.join(cls.kdir_a, "vmlinux"))
        cls.bid_b = vmlinux_build_id(os.path.join(cls.kdir_b, "vmlinux"))
        if cls.bid_a == cls.bid_b:
            raise RuntimeError(f"{cls.kdir_a} and {cls.kdir_b} are the same build: a move needs two")
        cls.kernel_b = os.path.join(cls.kdir_b, "vmlinuz")
        cls.initrd = os.path.join(os.environ.get("HVP_GUEST_DIR", "/var/lib/hvpatch-test"), "initramfs.cpio.gz")
        cls.state = os.path.join(cls.tmp, "state")
        cls.catalog = os.path.join(cls.tmp, "catalog")
        os.mkdir(cls.state)
        os.mkdir(cls.catalog)
        os.mkdir(os.path.join(cls.tmp, "audit"))
        cls.audit = Audit(os.path.join(cls.tmp, "audit"))
        cls.name = f"hvp-bm-move-{os.getpid()}"
        cls.g = guestlib.Guest.create(cls.name, paging=4, kaslr=True, kernel_dir=cls.kdir_a)
        if not os.path.exists(cls.initrd):
            raise RuntimeError(f"no {cls.initrd}: guest.sh builds it")
        with open(os.path.join(cls.kdir_a, "version")) as f:
            cls.release_a = f.read().strip()
        with open(os.path.join(cls.kdir_b, "version")) as f:
            cls.release_b = f.read().strip()
        cls.write_policy("closed.xml", "")
        # reboots allowed in a window that is not open now (in three days, for one minute)
        cls.write_policy("later.xml", f"    <window days='{weekday_in(3)}' start='00:00' end='00:01' reboot='yes'/>")
        cls.write_policy("open.xml", "    <reboot allow='yes' shutdown-timeout='3'/>")
        cls.write_policy("back.xml", "    <reboot allow='yes' shutdown-timeout='3'/>", back=True)

    @classmethod
    def write_policy(cls, file, reboot, back=False):
        with open(os.path.join(cls.tmp, file), "w") as f:
            f.write(POLICY.format(name=cls.name, reboot=reboot, kernel=cls.kernel_b, initrd=cls.initrd,
                                  new_current="no" if back else "yes", old_current="yes" if back else "no",
                                  bid_a=cls.bid_a, bid_b=cls.bid_b,
                                  kernel_a=os.path.join(cls.kdir_a, "vmlinuz")))

    @classmethod
    def tearDownClass(cls):
        if cls.g:
            try:
                cls.g.destroy()
            except Exception as e:  # noqa: BLE001
                print(f"warning: destroying {cls.name}: {e}", file=sys.stderr)
        elif cls.name:
            subprocess.run([os.path.join(REPO, "images", "guest.sh"), "destroy", cls.name],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if cls.audit:
            cls.audit.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # -- helpers -------------------------------------------------------------
    def hv(self, *args, policy, json_out=False, timeout=900):
        argv = [hvpatch_exe()] + (["--json"] if json_out else []) + ["--policy", os.path.join(self.tmp, policy)]
        argv += [str(a) for a in args]
        env = dict(os.environ, HVPATCH_STATE_DIR=self.state, HVP_AUDIT_DIR=self.audit.dir)
        self.audit.drain()
        p = subprocess.run(self.audit.wrap(argv), env=env, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr, [a for a in self.audit.drain() if "hvpatch-audit" in a]

    def hvj(self, *args, policy, timeout=900):
        rc, out, err, audit = self.hv(*args, policy=policy, json_out=True, timeout=timeout)
        try:
            return rc, guestlib.validate_json(json.loads(out), args), err, audit
        except ValueError:
            self.fail(f"hvpatch {' '.join(map(str, args))}: not one JSON document (exit {rc}): {out!r} {err!r}")

    def inactive_xml(self):
        return subprocess.run(VIRSH + ["dumpxml", "--inactive", self.name], capture_output=True, text=True,
                              check=True).stdout

    def qemu_pid(self):
        with open(f"/run/libvirt/qemu/{self.name}.pid") as f:
            return int(f.read().strip())

    def snapshot(self):
        """What a move would change: the definition, the process, the running kernel."""
        return self.inactive_xml(), self.qemu_pid(), self.g.proc_version()

    def assert_unchanged(self, before, what):
        xml, pid, version = self.snapshot()
        self.assertEqual(xml, before[0], f"{what}: the persistent domain XML changed")
        self.assertEqual(pid, before[1], f"{what}: the QEMU process was replaced")
        self.assertEqual(version, before[2], f"{what}: the guest runs another kernel")
        self.assertIn(self.release_a, version)

    def wait_channel(self, timeout=300):
        """After a restart: the guest's command channel answers again (HVP-READY)."""
        t0 = time.monotonic()
        while True:
            try:
                status, out = self.g.run("cat /proc/version", timeout=10)
                if status == 0:
                    return out.strip()
            except Exception:  # noqa: BLE001  (socket not there yet, guest still booting)
                pass
            if time.monotonic() - t0 > timeout:
                self.fail(f"{self.name}: no command channel within {timeout}s of the move")
            time.sleep(1)

    # -- cases ---------------------------------------------------------------
    def test_1_no_reboot_window(self):
        before = self.snapshot()
        self.assertIn(os.path.join(self.kdir_a, "vmlinuz"), before[0])
        rc, plan, err, _ = self.hvj("plan", self.name, "--catalog", self.catalog, policy="closed.xml")
        self.assertEqual(rc, 0, err)
        self.assertEqual(plan["compliance"]["verdict"], "reboot-required")
        self.assertEqual(plan["move"]["action"], "waits")
        self.assertIn("allows reboots", plan["move"]["note"])
        self.assertEqual(plan["move"]["to"]["kernel"], self.kernel_b)
        self.assertFalse(plan["move"]["reboot_now"])
        rc, out, err, audit = self.hv("plan", self.name, "--catalog", self.catalog, policy="later.xml")
        self.assertEqual(rc, 0, err)
        self.assertIn("reboot-required (moves at the next reboot window: " + weekday_in(3) + " 00:00-00:01 UTC)",
                      out)
        rc, res, err, audit = self.hvj("sync", self.name, "--catalog", self.catalog, policy="later.xml")
        self.assertEqual(rc, 0, err)
        dom = res["domains"][0]
        self.assertEqual(dom["move"]["action"], "waits")
        self.assertEqual(dom["move_result"]["result"], "waiting")
        self.assertFalse([a for a in audit if "move-baseline" in a], audit)
        self.assert_unchanged(before, "sync outside a reboot window")

    def test_2_dry_run(self):
        before = self.snapshot()
        rc, out, err, _ = self.hv("plan", self.name, "--catalog", self.catalog, policy="open.xml")
        self.assertEqual(rc, 0, err)
        self.assertIn(f"move-baseline: {self.release_a} -> {self.release_b} (baseline old -> new), reboot", out)
        rc, out, err, audit = self.hv("sync", "--dry-run", self.name, "--catalog", self.catalog, policy="open.xml")
        self.assertEqual(rc, 0, err)
        self.assertIn("dry run, not done", out)
        rc, res, err, audit = self.hvj("sync", "--dry-run", self.name, "--catalog", self.catalog,
                                       policy="open.xml")
        self.assertEqual(rc, 0, err)
        dom = res["domains"][0]
        self.assertEqual(dom["move"]["action"], "move")
        self.assertEqual(dom["move"]["from"]["release"], self.release_a)
        self.assertEqual(dom["move"]["to"]["release"], self.release_b)
        self.assertEqual(dom["move_result"]["result"], "dry-run")
        self.assertFalse([a for a in audit if "move-baseline" in a], audit)
        self.assert_unchanged(before, "sync --dry-run")

    def test_3_move(self):
        pid = self.qemu_pid()
        t0 = time.monotonic()
        rc, res, err, audit = self.hvj("sync", self.name, "--catalog", self.catalog, policy="open.xml")
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, f"{err}\n{json.dumps(res, indent=1)}")
        dom = res["domains"][0]
        mr = dom["move_result"]
        self.assertEqual(mr["result"], "moved", mr)
        self.assertTrue(mr["redefined"] and mr["restarted"] and mr["kernel_up"] and mr["in_baseline"], mr)
        self.assertFalse(mr["rolled_back"])
        # the busybox guest ignores ACPI: destroyed after the 3 s shutdown-timeout
        self.assertTrue(mr["destroyed"], mr)
        self.assertGreaterEqual(mr["shutdown_seconds"], 3.0)
        self.assertIn(self.release_b, mr["banner"])
        self.assertEqual(mr["build_id"], self.bid_b)
        # then synced: the sync after the move saw kernel B, compliant with the new baseline
        self.assertEqual(dom["after"]["build_id"], self.bid_b)
        self.assertEqual(dom["after"]["compliance"]["verdict"], "compliant")
        self.assertIsNone(dom["after"]["move"])
        moves = [a for a in audit if "action=move-baseline" in a]
        self.assertEqual(len(moves), 1, audit)
        self.assertIn(f'domain="{self.name}"', moves[0])
        self.assertIn("result=ok", moves[0])
        print(f"  move took {took:.1f} s (shutdown {mr['shutdown_seconds']:.1f} s, "
              f"kernel up {mr['kernel_up_seconds']:.1f} s)", file=sys.stderr)
        # oracles hvpatch does not control
        version = self.wait_channel()
        self.assertIn(self.release_b, version)
        self.assertEqual(self.g.build_id(), self.bid_b)
        self.assertNotEqual(self.qemu_pid(), pid)
        xml = self.inactive_xml()
        self.assertIn(f"<kernel>{self.kernel_b}</kernel>", xml)
        self.assertIn(f"<initrd>{self.initrd}</initrd>", xml)
        self.assertNotIn(os.path.join(self.kdir_a, "vmlinuz"), xml)
        rc, ins, err, _ = self.hvj("inspect", self.name, policy="open.xml")
        self.assertEqual(rc, 0, err)
        self.assertIn(self.release_b, ins["kernel"]["banner"])
        self.assertEqual(ins["kernel"]["build_id"], self.bid_b)

    def test_4_again_nothing(self):
        before = (self.inactive_xml(), self.qemu_pid(), self.g.proc_version())
        self.assertIn(self.release_b, before[2])
        rc, res, err, audit = self.hvj("sync", self.name, "--catalog", self.catalog, policy="open.xml")
        self.assertEqual(rc, 0, err)
        dom = res["domains"][0]
        self.assertEqual(dom["compliance"]["verdict"], "compliant")
        self.assertIsNone(dom["move"])
        self.assertNotIn("move_result", dom)
        self.assertEqual((self.inactive_xml(), self.qemu_pid(), self.g.proc_version()), before)

    def test_5_daemon_moves_back(self):
        if not os.access(hvpatchd_exe(), os.X_OK):
            self.fail(f"hvpatchd binary not found: {hvpatchd_exe()} (build it, or set HVPATCHD)")
        pid = self.qemu_pid()
        sock = os.path.join(self.tmp, "hvpatchd.sock")
        log = os.path.join(self.tmp, "hvpatchd.log")
        with open(log, "w") as logf:
            p = subprocess.Popen([hvpatchd_exe(), "-v", "--domains", self.name, "--catalog", self.catalog,
                                  "--policy", os.path.join(self.tmp, "back.xml"), "--state-dir", self.state,
                                  "--socket", sock, "--verify-interval", "5"], stdout=logf, stderr=logf)
            try:
                t0 = time.monotonic()
                # the daemon's start-up check finds the guest reboot-required (it runs B, the
                # policy's current baseline is A) and moves it; the new kernel, seen inside
                while True:
                    self.assertIsNone(p.poll(), f"hvpatchd exited {p.returncode}")
                    if os.path.exists(f"/run/libvirt/qemu/{self.name}.pid") and self.qemu_pid() != pid:
                        break
                    if time.monotonic() - t0 > 300:
                        self.fail("hvpatchd did not restart the guest within 300 s")
                    time.sleep(1)
                version = self.wait_channel()
                self.assertIn(self.release_a, version)
                self.assertEqual(self.g.build_id(), self.bid_a)
                while "moved to baseline old" not in read_text(log):
                    if time.monotonic() - t0 > 600:
                        self.fail("hvpatchd did not report the move")
                    time.sleep(1)
            finally:
                p.send_signal(signal.SIGTERM)
                rc = p.wait(120)
        text = read_text(log)
        self.assertEqual(rc, 0, text[-2000:])
        self.assertIn("move-baseline: " + self.release_b + " -> " + self.release_a, text)
        self.assertNotIn("baseline move failed", text)
        self.assertIn(f"<kernel>{os.path.join(self.kdir_a, 'vmlinuz')}</kernel>", self.inactive_xml())


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    n = result.testsRun
    bad = len(result.failures) + len(result.errors)
    print(f"{n - bad} passed, {bad} failed")
    sys.exit(1 if bad or n == 0 else 0)

#!/usr/bin/env python3
"""The core cases on Debian's newer kernels: 13's 6.12 (trixie) and sid's 7.x.

Debian 12's 6.1 is covered case by case by test_introspection.py and
test_patching.py; this file runs their core on the other suites' kernels, each
on a 4-level and a 5-level paging guest with KASLR (booted two at a time), with
oracles hvpatch does not control:

  * inspect   == the guest's /proc/version, the build id in /sys/kernel/notes,
                 _text from /proc/kallsyms, CR4.LA57 from QEMU (HMP)
  * symbols   == the guest's own /proc/kallsyms (every core-kernel line, in order)
  * translate == QEMU's gva2gpa for kernel text, rodata, data and the direct map
  * a redirect (the /proc/version demo; IBT entry: endbr64 + nop5, the jump after
    the endbr64) and a replace (the /proc/cmdline demo) seen inside the guest, then
    reverted: the guest's output and every byte of the sites as before (HMP xp); while
    applied, the new code runs without a WARN or a new taint flag (the guest's dmesg and
    /proc/sys/kernel/tainted: its returns go the way the kernel's own do)

6.12 has no slack after _etext: its guests get their own read-only patch area
(guest.sh create --patch-area) and the redirect must land there; 7.x has slack.
The demo objects are compiled for each kernel from its own config (build-demo.sh
--config, images/kernel-cflags.sh).

    python3 tests/live/test_kernels.py            # last line: "N passed, M failed"
    HVP_KERNEL_SUITES=sid python3 tests/live/test_kernels.py

Needs root, libvirt, gcc. Environment: HVPATCH (the binary), HVP_KERNEL_DIR_TRIXIE,
HVP_KERNEL_DIR_SID (else images/fetch-kernel.sh --suite fetches them),
HVP_KERNEL_SUITES (default "trixie sid").
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib  # noqa: E402

IMAGES = os.path.join(guestlib.REPO, "images")
PREFIX = "hvp-tk-"
MARKER = " [hvpatch: hotpatched]"
PAGE = 4096
LA57 = 1 << 12
HMP_BATCH = 100
HAVE_CONFIG = True        # build-demo.sh --config: the objects are compiled for each kernel

CREATED = []
ENV = {}
NOTES = []


def hvpatch_exe():
    exe = os.environ.get("HVPATCH", "build/cli/hvpatch")
    return exe if os.path.isabs(exe) else os.path.join(guestlib.REPO, exe)


def hv(*args, timeout=300):
    """hvpatch --json ARGS: (exit code, parsed stdout or None, stderr)."""
    import json
    p = subprocess.run([hvpatch_exe(), "--json"] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=timeout)
    try:
        out = guestlib.validate_json(json.loads(p.stdout), args) if p.stdout.strip() else None
    except ValueError:
        out = None
    return p.returncode, out, p.stderr


def hv_text(*args, timeout=300):
    p = subprocess.run([hvpatch_exe()] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


class Kernel:
    """One suite's kernel and its two guests."""

    def __init__(self, suite):
        self.suite = suite
        self.dir = guestlib.kernel_dir_for(suite)
        with open(os.path.join(self.dir, "version")) as f:
            self.version = f.read().strip()
        self.guests = {}


def boot_pair(k):
    """Boot k's 4- and 5-level guests at once; 6.12 (no slack) with its own patch area."""
    errors = []
    area = k.version.startswith("6.12")

    def boot(paging):
        name = f"{PREFIX}{k.suite}-{paging}l-{os.getpid()}"
        try:
            k.guests[paging] = guestlib.Guest.create(name, paging=paging, kaslr=True, kernel_dir=k.dir,
                                                     patch_area=area)
        except Exception as e:      # noqa: BLE001 - reported below
            errors.append(f"{name}: {e}")

    CREATED.extend(f"{PREFIX}{k.suite}-{p}l-{os.getpid()}" for p in (4, 5))
    threads = [threading.Thread(target=boot, args=(p,)) for p in (4, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError("; ".join(errors))
    for p in (4, 5):
        NOTES.append(f"{k.suite} ({k.version}) {p}-level guest booted in {k.guests[p].boot_seconds}s "
                     f"under {k.guests[p].accel}")


def destroy_pair(k):
    for g in k.guests.values():
        try:
            g.destroy()
        except guestlib.GuestError as e:
            print(f"cleanup: {e}", file=sys.stderr)
    k.guests.clear()


def destroy_all():
    for name in CREATED:
        try:
            guestlib.Guest(name).destroy()
        except guestlib.GuestError as e:
            print(f"cleanup: {e}", file=sys.stderr)


def setUpModule():
    if os.geteuid() != 0:
        raise RuntimeError("live tests need root (libvirt qemu:///system, /proc/PID/mem)")
    for tool in ("virsh", os.environ.get("CC", "gcc")):
        if not shutil.which(tool):
            raise RuntimeError(f"{tool} not found")
    if not os.access(hvpatch_exe(), os.X_OK):
        raise RuntimeError(f"hvpatch binary not found: {hvpatch_exe()} (build it, or set HVPATCH)")
    ENV["work"] = tempfile.mkdtemp(prefix="hvp-tk-")
    os.chmod(ENV["work"], 0o755)    # QEMU (libvirt-qemu) opens the patch-area files inside
    ENV["state_dir"] = os.path.join(ENV["work"], "state")
    os.environ["HVPATCH_STATE_DIR"] = ENV["state_dir"]     # guest.sh --patch-area and hvpatch
    os.environ.setdefault("HVPATCH", hvpatch_exe())


def tearDownModule():
    destroy_all()
    if ENV.get("work"):
        shutil.rmtree(ENV["work"], ignore_errors=True)


class KernelCase:
    """The core cases on one suite's kernel; a subclass names the suite."""
    suite = None
    k = None

    @classmethod
    def setUpClass(cls):
        wanted = os.environ.get("HVP_KERNEL_SUITES", "trixie sid").split()
        if cls.suite not in wanted:
            raise unittest.SkipTest(f"{cls.suite} not in HVP_KERNEL_SUITES={' '.join(wanted)}")
        cls.k = Kernel(cls.suite)
        boot_pair(cls.k)

    @classmethod
    def tearDownClass(cls):
        if cls.k:
            destroy_pair(cls.k)

    def each(self):
        for p in (4, 5):
            with self.subTest(paging=p):
                yield p, self.k.guests[p]

    def test_1_inspect(self):
        for p, g in self.each():
            rc, out, err = hv("inspect", g.name)
            self.assertEqual(rc, 0, err)
            kern = out["kernel"]
            self.assertEqual(kern["banner"], g.proc_version())
            self.assertEqual(kern["build_id"], g.build_id())
            self.assertIn(self.k.version, kern["banner"])
            self.assertEqual(int(str(kern["base"]), 0), g.symbol("_text"))
            cr4 = g.registers()["CR4"]
            self.assertEqual(bool(cr4 & LA57), p == 5, f"CR4 0x{cr4:x}")
            self.assertEqual(out["paging"], f"{p}-level")

    def proc_kallsyms(self, g):
        """The guest's /proc/kallsyms core lines as ("%016x", type, name): from the copy
        images/capture-kallsyms.sh took of this kernel's own (offsets from _text, moved
        to this guest's _text), else read from this guest (slower: the serial line)."""
        path = os.path.join(self.k.dir, "kallsyms-offsets.txt")
        if not os.path.exists(path):
            return [("%016x" % a, t, n) for a, t, n, mod in g.kallsyms() if mod is None], "this guest"
        text = g.symbol("_text")
        lines = []
        with open(path) as f:
            for line in f:
                if line.startswith("#"):
                    continue
                off, t, n = line.split()[:3]
                lines.append(("%016x" % (int(off, 16) if t == "A" else text + int(off, 16)), t, n))
        return lines, "capture-kallsyms.sh"

    def test_2_symbols_equal_proc_kallsyms(self):
        for p, g in self.each():
            rc, text, err = hv_text("symbols", g.name, timeout=600)
            self.assertEqual(rc, 0, err)
            ours = [tuple(line.split()[:3]) for line in text.splitlines()]
            theirs, source = self.proc_kallsyms(g)
            self.assertGreater(len(theirs), 100000)
            self.assertEqual(len(ours), len(theirs))
            diff = [(i, a, b) for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]
            self.assertEqual(diff[:5], [], f"{len(diff)} lines differ")
            NOTES.append(f"{self.suite} {p}-level: {len(ours)} symbols, equal to /proc/kallsyms ({source})")

    def test_3_translate_equals_qemu(self):
        names = ["_text", "_etext", "version_proc_show", "linux_banner", "init_task", "jiffies",
                 "__start_rodata", "kallsyms_names"]
        for p, g in self.each():
            vas = []
            for n in names:
                base = g.symbol(n)
                vas += [base + i * 0x1000 for i in range(0, 8)]
            rc, out, err = hv("translate", g.name, *["0x%x" % va for va in vas])
            self.assertEqual(rc, 0, err)
            got = {int(e["va"], 0): (int(e["pa"], 0) if e.get("pa") is not None else None) for e in out}
            for va in vas:
                self.assertEqual(got.get(va), g.gva2gpa(va), f"0x{va:x}")

    def build_demo(self, g, d):
        rc, out, err = hv("read", g.name, "cmdline_proc_show", 64)
        self.assertEqual(rc, 0, err)
        qemu = g.xp(g.gva2gpa(g.symbol("cmdline_proc_show")), 64)
        self.assertEqual(bytes.fromhex(out["hex"]), qemu)
        subprocess.run([os.path.join(IMAGES, "demo", "build-demo.sh"), "--build-id", g.build_id(),
                        *(["--config", os.path.join(self.k.dir, "config")] if HAVE_CONFIG else []),
                        "--cmdline-bytes", qemu.hex(), "-o", d],
                       env=dict(os.environ, HVPATCH=hvpatch_exe()), check=True, stdout=subprocess.DEVNULL)
        return os.path.join(d, "demo-version.hvp"), os.path.join(d, "demo-cmdline.hvp")

    def test_4_redirect_and_replace_seen_inside_then_reverted(self):
        for p, g in self.each():
            d = tempfile.mkdtemp(dir=ENV["work"])
            version, cmdline = self.build_demo(g, d)
            entry = g.symbol("version_proc_show")
            cmd_at = g.symbol("cmdline_proc_show")
            entry_gpa, cmd_gpa = g.gva2gpa(entry), g.gva2gpa(cmd_at)
            before = (g.xp(entry_gpa, 16), g.xp(cmd_gpa, 64))
            self.assertEqual(before[0][:4], bytes.fromhex("f30f1efa"), "entry: endbr64 (IBT)")
            self.assertEqual(before[0][4:9], bytes.fromhex("0f1f440000"), "then the ftrace nop5")
            orig_version, orig_cmdline = g.proc_version(), g.check("cat /proc/cmdline")
            tainted = g.check("cat /proc/sys/kernel/tainted").strip()
            log_lines = len(g.check("dmesg").splitlines())

            rc, vout, err = hv("apply", "--insecure-unsigned", g.name, version)
            self.assertEqual(rc, 0, f"{vout} {err}")
            rc, out, err = hv("apply", "--insecure-unsigned", g.name, cmdline)
            self.assertEqual(rc, 0, f"{out} {err}")
            self.assertEqual(g.proc_version(), orig_version + MARKER)
            self.assertNotEqual(g.check("cat /proc/cmdline"), orig_cmdline)
            # The new code ran (twice) and returned the way the kernel's own code does: no
            # "Unpatched return thunk in use" WARN (6.12, 7.x), no taint, nothing logged.
            new_log = g.check("dmesg").splitlines()[log_lines:]
            self.assertEqual(g.check("cat /proc/sys/kernel/tainted").strip(), tainted, new_log)
            self.assertEqual([l for l in new_log if "WARNING" in l or "thunk" in l or "BUG" in l], [])
            after = g.xp(entry_gpa, 16)
            self.assertEqual(after[:4], before[0][:4], "the endbr64 stays")
            self.assertEqual(after[4], 0xe9, "jmp rel32 after the endbr64")
            target = entry + 9 + int.from_bytes(after[5:9], "little", signed=True)
            rc, st, err = hv("status", g.name)
            self.assertEqual(rc, 0, err)
            areas = st.get("areas", [])
            inside = [a for a in areas if int(str(a["start"]), 0) <= target < int(str(a["start"]), 0) + a["len"]]
            self.assertTrue(inside, f"jump target 0x{target:x} outside every area {areas}")
            kind = inside[0]["kind"]
            if self.k.version.startswith("6.12"):
                self.assertNotEqual(kind, "slack", "6.12 has no slack: the domain's own area")
            NOTES.append(f"{self.suite} {p}-level: redirect through {kind} area, "
                         f"pause window {vout.get('pause_ms', 0) if vout else 0:.3f} ms")

            for pid in ("demo-version-1", "demo-cmdline-1"):
                rc, out, err = hv("revert", g.name, pid)
                self.assertEqual(rc, 0, err)
            self.assertEqual(g.proc_version(), orig_version)
            self.assertEqual(g.check("cat /proc/cmdline"), orig_cmdline)
            self.assertEqual((g.xp(entry_gpa, 16), g.xp(cmd_gpa, 64)), before)


class Trixie(KernelCase, unittest.TestCase):
    suite = "trixie"


class Sid(KernelCase, unittest.TestCase):
    suite = "sid"


def main():
    def on_signal(signum, frame):
        destroy_all()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    argv = [sys.argv[0]] + sys.argv[1:]
    prog = unittest.main(argv=argv, exit=False, verbosity=2)
    for n in NOTES:
        print(n)
    sys.exit(guestlib.summary(prog.result))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The health gate on a live guest: a bundle whose new code WARNs is reverted, marked bad
for the kernel build and not applied again until the mark is cleared; a good bundle passes.

One guest (4-level paging, KASLR, a pvpanic device), shared by every case, in order; the
last one crashes it through its pvpanic device.
Keys and signatures come from the real minisign, the policy trusts the key for the guest.
The bundles:
  * good:  images/demo/build-demo.sh's demo-version (/proc/version gets a marker);
  * warn:  hg-loadavg seq 1, a redirect of loadavg_proc_show whose new body makes the
           kernel WARN: it calls the kernel's own __warn_printk (the "cut here" line and
           the message) and __warn, the function the kernel's WARN path ends in (report_bug
           calls it for a WARN's bug-table entry; it prints "WARNING: CPU: N PID: N at ...",
           dumps the stack, honours panic_on_warn and sets TAINT_WARN through add_taint).
           A ud2 with a __bug_table entry cannot be made: the table is the kernel image's
           and the patch area is outside it, so a ud2 there would be an invalid-opcode oops.
           Then it prints a loadavg-like line ending in "hvp-warn".
The WARN is triggered from inside the guest by a loop reading /proc/loadavg while
`hvpatch apply --health` watches, and again while hvpatchd's gate watches (the last case:
the guest then has TAINT_WARN already, so the gate sees the WARN in the kernel log).

Oracles hvpatch does not control: the guest's own /proc/loadavg, /proc/version,
/proc/sys/kernel/tainted and dmesg (through the test command channel).

    python3 tests/live/test_health.py     # last line: "N passed, M failed"

Environment: HVPATCH, HVPATCHD (binaries, default build/cli/hvpatch, build/daemon/hvpatchd),
HVP_KERNEL_DIR, HVP_GUEST_DIR, CC.
Must run as root with libvirt (it fails, not skips, otherwise).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib  # noqa: E402
import kcflags  # noqa: E402

REPO = guestlib.REPO
VERSION_MARKER = " [hvpatch: hotpatched]"
TAINT_WARN = 1 << 9
WATCH = 20          # seconds apply --health watches (it returns at the first failure)

WARN_C = r"""
struct seq_file;
struct pt_regs;
struct warn_args;

/* fs/seq_file.c */
extern void seq_printf(struct seq_file *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* kernel/panic.c (6.1): what WARN() prints first, and where every WARN ends */
extern void __warn_printk(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern void __warn(const char *file, int line, void *caller, unsigned taint, struct pt_regs *regs,
                   struct warn_args *args);

#define TAINT_WARN 9

int hvp_loadavg_warn(struct seq_file *m, void *v)
{
        __warn_printk("hvpatch health test: loadavg_proc_show WARNs\n");
        __warn((const char *)0, 0, __builtin_return_address(0), TAINT_WARN, (struct pt_regs *)0,
               (struct warn_args *)0);
        seq_printf(m, "0.00 0.00 0.00 0/0 0 hvp-warn\n");
        return 0;
}
"""

PVPANIC_XML = "<panic model='isa'><address type='isa' iobase='0x505'/></panic>\n"

LOOP_START = ("(while :; do cat /proc/loadavg > /dev/null; sleep 0.2; done) </dev/null >/dev/null 2>&1 & "
              "echo $! > /tmp/hg-loop.pid")
LOOP_STOP = "kill $(cat /tmp/hg-loop.pid) 2>/dev/null; rm -f /tmp/hg-loop.pid; true"


hvpatch_exe = guestlib.hvpatch_exe
hvpatchd_exe = guestlib.hvpatchd_exe


def build_warn_bundle(work, build_id, series, description, out):
    """Compile WARN_C in WORK and pack it into OUT: patch SERIES-1 for kernel BUILD_ID, a
    redirect of loadavg_proc_show to hvp_loadavg_warn (test_rollout uses it too)."""
    src, obj = os.path.join(work, "warn.c"), os.path.join(work, "warn.o")
    with open(src, "w") as f:
        f.write(WARN_C)
    subprocess.run([os.environ.get("CC", "gcc")] + kcflags.patch_cflags() + ["-c", src, "-o", obj], check=True)
    manifest = os.path.join(work, "warn.xml")
    with open(manifest, "w") as f:
        f.write(f"""<?xml version="1.0" encoding="UTF-8"?>
<patch xmlns="urn:hvpatch:manifest:1" id="{series}-1" series="{series}" sequence="1">
  <description>{description}</description>
  <target os="linux"><build-id>{build_id}</build-id></target>
  <object name="warn.o" file="{obj}"/>
  <sites>
    <redirect symbol="loadavg_proc_show" object="warn.o" function="hvp_loadavg_warn"/>
  </sites>
</patch>
""")
    subprocess.run([hvpatch_exe(), "pack", "--kernel-config", kcflags.kernel_config(), manifest, "-o", out],
                   check=True, stdout=subprocess.DEVNULL)
    return out


def setUpModule():
    if os.geteuid() != 0:
        raise RuntimeError("live health test needs root (libvirt qemu:///system)")
    for tool in ("minisign", "virsh", os.environ.get("CC", "gcc")):
        if not shutil.which(tool):
            raise RuntimeError(f"{tool} not found (images/setup-host.sh installs it)")
    for exe in (hvpatch_exe(), hvpatchd_exe()):
        if not os.access(exe, os.X_OK):
            raise RuntimeError(f"{exe} not found (build it, or set HVPATCH / HVPATCHD)")
    subprocess.run([os.path.join(REPO, "images", "setup-host.sh")], check=True, stdout=subprocess.DEVNULL)


class HealthLive(unittest.TestCase):
    name = None

    @classmethod
    def setUpClass(cls):
        cls.ws = guestlib.Workspace("hvp-hg-health.")
        cls.tmp, cls.work, cls.state, cls.catalog = cls.ws.root, cls.ws.work, cls.ws.state, cls.ws.catalog
        try:
            cls.prepare()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def prepare(cls):
        extra = os.path.join(cls.work, "pvpanic.xml")
        with open(extra, "w") as f:
            f.write(PVPANIC_XML)
        cls.name = f"hvp-hg-health-{os.getpid()}"
        cls.g, = guestlib.boot_guests([cls.name], paging=4, kaslr=True, xml_extra=extra,
                                      kernel_dir=guestlib.kernel_dir())
        cls.build_id = cls.g.build_id()
        syms = cls.g.check("grep -E ' (__warn|__warn_printk|loadavg_proc_show)$' /proc/kallsyms")
        for sym in ("__warn", "__warn_printk", "loadavg_proc_show"):
            if f" {sym}\n" not in syms + "\n":
                raise RuntimeError(f"the guest kernel has no {sym} in /proc/kallsyms: {syms!r}")

        _, key = guestlib.minisign_keypair(cls.work, "hg")
        cls.good = guestlib.demo_bundle(cls.build_id, os.path.join(cls.work, "good"))
        guestlib.minisign_sign(key, cls.good, "good")

        cls.warn = build_warn_bundle(cls.work, cls.build_id, "hg-loadavg", "loadavg_proc_show WARNs (the health gate's test)",
                                     os.path.join(cls.catalog, "warn.hvp"))
        guestlib.minisign_sign(key, cls.warn, "warn")

        cls.policy = guestlib.write_policy(os.path.join(cls.work, "policy.xml"), guestlib.policy_key("hg", "hg.pub"),
                                           guestlib.policy_group("hg-health", cls.name, cls.build_id))
        cls.orig_loadavg_tail = cls.g.check("cat /proc/loadavg").split()[-1]
        tainted = int(cls.g.check("cat /proc/sys/kernel/tainted").strip())
        if tainted & TAINT_WARN:
            raise RuntimeError(f"the guest has TAINT_WARN before any patch ({tainted}): the test would mean nothing")

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.name:
                guestlib.Guest(cls.name).destroy()
        finally:
            cls.ws.cleanup()

    # -- helpers ---------------------------------------------------------------

    def argv(self, *args):
        return [hvpatch_exe(), "--json", "--policy", self.policy] + [str(a) for a in args]

    def env(self):
        return dict(os.environ, HVPATCH_STATE_DIR=self.state)

    def hv(self, *args):
        """hvpatch --json --policy POLICY ARGS: (exit code, parsed stdout, stderr)."""
        p = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=600, env=self.env())
        try:
            return p.returncode, guestlib.validate_json(json.loads(p.stdout), args), p.stderr
        except ValueError:
            self.fail(f"hvpatch {' '.join(map(str, args))}: not one JSON document (exit {p.returncode}): "
                      f"{p.stdout!r} {p.stderr!r}")

    def patches(self):
        rc, st, err = self.hv("status", self.name)
        self.assertEqual(rc, 0, f"{st} {err}")
        return {p["id"] for p in st["patches"] if p["state"] == "applied"}

    def loadavg(self):
        return self.g.check("cat /proc/loadavg")

    def tainted(self):
        return int(self.g.check("cat /proc/sys/kernel/tainted").strip())

    def series(self, doc, name):
        got = [s for s in doc["series"] if s["series"] == name]
        self.assertEqual(len(got), 1, doc)
        return got[0]

    # -- the cases, in order on the one guest ------------------------------------
    def test_1_good_bundle_passes(self):
        rc, out, err = self.hv("apply", "--health", 3, self.name, self.good)
        self.assertEqual(rc, 0, f"{out} {err}")
        h = out["health"]
        self.assertEqual(h["result"], "pass", h)
        self.assertGreaterEqual(h["seconds"], 2.9, h)
        self.assertGreater(h["polls"], 1, h)
        self.assertTrue(h["pvpanic"], h)
        self.assertEqual(h["state"], "running", h)
        self.assertEqual(h["taint"]["new"], "0x0", h)
        print(f"\n  pass: {h['polls']} looks in {h['seconds']:.2f} s", file=sys.stderr)
        self.assertIn(VERSION_MARKER, self.g.check("cat /proc/version"))
        self.assertEqual(self.patches(), {"demo-version-1"})
        rc, out, err = self.hv("revert", self.name, "demo-version-1")
        self.assertEqual(rc, 0, f"{out} {err}")
        self.assertNotIn(VERSION_MARKER, self.g.check("cat /proc/version"))

    def test_2_warning_bundle_reverted_and_marked(self):
        before = self.tainted()
        self.assertFalse(before & TAINT_WARN)
        self.assertNotIn("hvp-warn", self.loadavg())
        self.g.check(LOOP_START)
        try:
            t0 = time.monotonic()
            p = subprocess.run(self.argv("apply", "--health", WATCH, self.name, self.warn), capture_output=True,
                               text=True, timeout=600, env=self.env())
            took = time.monotonic() - t0
        finally:
            self.g.check(LOOP_STOP)
        self.assertEqual(p.returncode, 6, f"{p.stdout} {p.stderr}")
        out = guestlib.validate_json(json.loads(p.stdout), ["apply"])
        self.assertEqual(out["code"], 6, out)
        self.assertIn("health gate failed", out["error"])
        h = out["health"]
        self.assertEqual(h["result"], "fail", h)
        # the taint flag, or the report's first line if a look fell between the two
        self.assertIn(h["kind"], ("taint", "log"), h)
        self.assertIn("W (warn)" if h["kind"] == "taint" else "WARNING: CPU:", h["reason"])
        self.assertIn("W:warn", h["taint"]["new_flags"], h)
        self.assertEqual(int(h["taint"]["before"], 16), before, h)
        self.assertLess(h["seconds"], WATCH, h)             # it stopped at the failure
        self.assertTrue(any("WARNING: CPU:" in line for line in h["log"]), h["log"])
        self.assertTrue(any("hvpatch health test: loadavg_proc_show WARNs" in line for line in h["log"]), h["log"])
        self.assertTrue(h["reverted"], h)
        self.assertTrue(h["marked_bad"], h)
        self.assertLess(took, WATCH + 120)
        print(f"\n  WARN seen after {h['seconds']:.2f} s of watch ({h['polls']} looks), apply --health took "
              f"{took:.1f} s; {len(h['log'])} guest lines quoted, the first: {h['log'][:3]}", file=sys.stderr)
        # the guest's own view: the old loadavg_proc_show runs again, the WARN happened
        self.assertNotIn("hvp-warn", self.loadavg())
        self.assertEqual(self.loadavg().split()[-1].isdigit(), True)
        self.assertTrue(self.tainted() & TAINT_WARN)
        dmesg = self.g.check("dmesg")
        self.assertIn("hvpatch health test: loadavg_proc_show WARNs", dmesg)
        self.assertIn("WARNING: CPU:", dmesg)
        self.assertEqual(self.patches(), set())
        # the mark, on disk and listed
        mark = os.path.join(self.state, "bad", self.build_id.lower(), "hg-loadavg-1.json")
        self.assertTrue(os.path.isfile(mark), mark)
        rc, marks, err = self.hv("bad", "list")
        self.assertEqual(rc, 0, err)
        self.assertEqual([(m["build_id"], m["patch_id"], m["domain"], m["kind"]) for m in marks],
                         [(self.build_id.lower(), "hg-loadavg-1", self.name, "taint")])

    def test_3_marked_bundle_not_applied_again(self):
        rc, out, err = self.hv("apply", "--health", 3, self.name, self.warn)
        self.assertEqual(rc, 3, f"{out} {err}")
        self.assertEqual(out["reason_code"], "marked-bad", out)
        self.assertIn("marked bad", out["error"])
        self.assertIn("hvpatch bad clear", out["error"])
        self.assertEqual(out["bad_mark"]["patch_id"], "hg-loadavg-1")
        rc, out, err = self.hv("check", self.name, self.warn)
        self.assertEqual(rc, 3, f"{out} {err}")
        self.assertIn("marked-bad", [r.get("code") for r in out["reasons"]], out)
        rc, plan, err = self.hv("plan", "--catalog", self.catalog, self.name)
        self.assertEqual(rc, 0, f"{plan} {err}")
        s = self.series(plan, "hg-loadavg")
        self.assertEqual(s["action"], "marked-bad", s)
        self.assertEqual(s["marked_bad"]["patch_id"], "hg-loadavg-1", s)
        self.assertIsNone(s["desired"], s)
        rc, out, err = self.hv("sync", "--health", 3, "--catalog", self.catalog, self.name)
        self.assertEqual(rc, 0, f"{out} {err}")
        self.assertEqual(out["domains"][0]["steps"], [], out)
        self.assertEqual(self.patches(), set())
        self.assertNotIn("hvp-warn", self.loadavg())

    def test_4_cleared_mark_lets_it_apply(self):
        rc, out, err = self.hv("bad", "clear", self.build_id, "hg-loadavg-2")
        self.assertEqual(rc, 1, f"{out} {err}")                 # no such mark
        rc, out, err = self.hv("bad", "clear", self.build_id, "hg-loadavg-1")
        self.assertEqual(rc, 0, f"{out} {err}")
        self.assertEqual(out["cleared"], 1, out)
        rc, marks, err = self.hv("bad", "list")
        self.assertEqual((rc, marks), (0, []), err)
        rc, plan, err = self.hv("plan", "--catalog", self.catalog, self.name)
        self.assertEqual(self.series(plan, "hg-loadavg")["action"], "apply", plan)
        rc, out, err = self.hv("apply", self.name, self.warn)       # no gate: the operator's choice
        self.assertEqual(rc, 0, f"{out} {err}")
        self.assertIsNone(out["health"], out)
        self.assertIn("hvp-warn", self.loadavg())
        rc, out, err = self.hv("revert", self.name, "hg-loadavg-1")
        self.assertEqual(rc, 0, f"{out} {err}")
        self.assertNotIn("hvp-warn", self.loadavg())

    def test_5_daemon_reverts_marks_and_does_not_apply_again(self):
        """hvpatchd's sync runs the gate: the guest already has TAINT_WARN, so the gate sees the
        new WARN in the kernel log; reverted, marked, counted, and the periodic checks after it
        apply nothing."""
        self.assertTrue(self.tainted() & TAINT_WARN)    # from the cases before: no new flag possible
        sock = os.path.join(self.work, "hvpatchd.sock")
        log = os.path.join(self.work, "hvpatchd.log")
        args = [hvpatchd_exe(), "-v", "--domains", self.name, "--catalog", self.catalog, "--policy", self.policy,
                "--state-dir", self.state, "--socket", sock, "--verify-interval", "3", "--health", "8"]

        def status():
            p = subprocess.run([hvpatch_exe(), "--json", "daemon-status", "--socket", sock], capture_output=True,
                               text=True, timeout=30)
            if p.returncode != 0:
                return None
            doms = [d for d in guestlib.validate_json(json.loads(p.stdout), ["daemon-status"])["domains"] if d["domain"] == self.name]
            return doms[0] if doms else None

        def tail():
            with open(log) as f:
                return "".join(f.readlines()[-30:])

        self.g.check(LOOP_START)
        logf = open(log, "a")
        d = subprocess.Popen(args, stdout=logf, stderr=logf)
        try:
            t0 = time.monotonic()
            dom = None
            while time.monotonic() - t0 < 300:
                self.assertIsNone(d.poll(), tail())
                dom = status()
                if dom and dom["health_failures"] >= 1:
                    break
                time.sleep(0.5)
            self.assertIsNotNone(dom, tail())
            print(f"\n  hvpatchd: health gate failed {time.monotonic() - t0:.1f} s after its start", file=sys.stderr)
            self.assertEqual(dom["health_failures"], 1, f"{dom}\n{tail()}")
            self.assertEqual(dom["health"]["result"], "fail", dom)
            self.assertEqual(dom["health"]["patch_id"], "hg-loadavg-1", dom)
            self.assertIn("WARNING: CPU:", dom["health"]["reason"], dom)
            self.assertEqual(dom["applies"], 0, dom)
            self.assertNotIn("hvp-warn", self.loadavg())
            self.assertEqual(self.patches(), set())
            rc, marks, err = self.hv("bad", "list", self.build_id)
            self.assertEqual([(m["patch_id"], m["kind"]) for m in marks], [("hg-loadavg-1", "log")], marks)
            text = subprocess.run([hvpatch_exe(), "daemon-status", "--socket", sock], capture_output=True,
                                  text=True, timeout=30).stdout
            self.assertIn("health gate: 1 failed; last: fail for hg-loadavg-1: the guest kernel logged", text)
            # periodic checks go on and leave it out
            jobs = dom["jobs"]
            t1 = time.monotonic()
            while time.monotonic() - t1 < 120 and dom["jobs"] < jobs + 2:
                time.sleep(0.5)
                dom = status()
            self.assertGreaterEqual(dom["jobs"], jobs + 2, tail())
            print(f"  hvpatchd: 2 more jobs in {time.monotonic() - t1:.1f} s, nothing applied", file=sys.stderr)
            self.assertEqual((dom["applies"], dom["health_failures"]), (0, 1), dom)
            self.assertNotIn("hvp-warn", self.loadavg())
            self.assertEqual(self.patches(), set())
            with open(log) as f:
                self.assertIn("health gate failed for hg-loadavg-1", f.read())
        finally:
            d.send_signal(signal.SIGTERM)
            try:
                rc = d.wait(60)
            finally:
                logf.close()
                self.g.check(LOOP_STOP)
        self.assertEqual(rc, 0, tail())

    def test_6_pvpanic_crash_marked_not_reverted(self):
        """Last: the guest is lost. It signals a panic through its pvpanic device (a write of 1 to
        I/O port 0x505, what the kernel's pvpanic driver writes when it panics; the test guests'
        initramfs loads no modules, so the guest writes it itself): QEMU reports the panic and
        libvirt destroys the domain (<on_crash>destroy</on_crash>): shut off (crashed). The gate
        fails, writes nothing to a guest that is gone, marks the bundle bad."""
        p = subprocess.Popen(self.argv("apply", "--health", 120, self.name, self.good), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=self.env())
        try:
            t0 = time.monotonic()
            while VERSION_MARKER not in self.g.check("cat /proc/version"):
                self.assertIsNone(p.poll(), "apply ended before the patch was seen in the guest")
                self.assertLess(time.monotonic() - t0, 300, "the patch never showed in /proc/version")
                time.sleep(0.2)
            try:        # the guest is gone before it can answer: the channel closes
                self.g.run("printf '\\001' | dd of=/dev/port bs=1 seek=1285 count=1", timeout=20)
            except guestlib.GuestError:
                pass
            out, err = p.communicate(timeout=300)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 6, f"{out} {err}")
        h = guestlib.validate_json(json.loads(out), ["apply"])["health"]
        self.assertEqual(h["result"], "fail", h)
        self.assertEqual(h["kind"], "crashed", h)
        self.assertIn("shut off (crashed)", h["reason"])
        self.assertIn("pvpanic", h["reason"])
        self.assertLess(h["seconds"], 120, h)
        self.assertFalse(h["reverted"], h)
        self.assertIn("does not run", h["revert_error"])
        self.assertTrue(h["marked_bad"], h)
        state = subprocess.run(guestlib.VIRSH + ["domstate", "--reason", self.name], capture_output=True,
                               text=True, timeout=60).stdout.strip()
        self.assertEqual(state, "shut off (crashed)")
        rc, marks, err = self.hv("bad", "list", self.build_id)
        self.assertIn(("demo-version-1", "crashed"), [(m["patch_id"], m["kind"]) for m in marks], marks)


def main():
    result = unittest.TextTestRunner(verbosity=2).run(unittest.defaultTestLoader.loadTestsFromModule(
        sys.modules[__name__]))
    return guestlib.summary(result)


if __name__ == "__main__":
    sys.exit(main())

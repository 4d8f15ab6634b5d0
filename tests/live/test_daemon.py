#!/usr/bin/env python3
"""hvpatchd on a live guest: patches come back after boots and tampering, by themselves.

One hvpatchd (its own catalog, policy, state folder and status socket, a 3 s periodic
check) and one guest (4-level paging, KASLR) that boots after the daemon started:

  1. the guest boots: the daemon sees it start, waits for its kernel to be up (the
     kernel's own system_state), syncs the catalog's bundle; /proc/version in the guest
     shows the patch. The catalog also holds an unsigned and a corrupt bundle: skipped.
  2. the guest reboots (sysrq b): the patch is back after the new kernel is up, once.
  3. a second bundle (a replace site, /proc/cmdline) enters the catalog and SIGHUP
     makes the daemon apply it; then QEMU's gdbstub (not hvpatch) writes the original
     bytes back over that site (at the guest-physical address QEMU's gva2gpa gives):
     the daemon reports it once (daemon-status, its log, the audit) and applies it again.
  4. SIGTERM while the daemon waits for a rebooting guest: it exits within seconds,
     the guest is not paused, no journal is left; a new daemon brings the patch back.
  5. a daemon restart over a patched guest applies nothing twice.
  6. the metrics, as the file and over HTTP (--metrics-listen 127.0.0.1:0, the port the
     kernel chose read from daemon-status): a real GET, `promtool check metrics` on both,
     the guest's numbers in them (checked against what the test did: after the tampering
     of 3 and again after the restarts of 4 and 5); 404 and 405; a non-loopback address
     refused at start.

Oracles hvpatch does not control: the guest's own /proc/version (the test command
channel), virsh domstate, QEMU's gdbstub for the tampering.

    python3 tests/live/test_daemon.py     # last line: "N passed, M failed"

Environment: HVPATCH, HVPATCHD (binaries; default build/cli/hvpatch, build/daemon/hvpatchd),
HVP_KERNEL_DIR. Root with libvirt, minisign, gcc.
"""

import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib  # noqa: E402

REPO = guestlib.REPO
MARKER = " [hvpatch: hotpatched]"
FTRACE_NOP = bytes.fromhex("0f1f440000")
INTERVAL = 3            # the daemon's periodic check, seconds
DOMAIN_GLOB = f"hvp-td-{os.getpid()}"   # the daemon leaves every other domain of the host alone
PATCH_BACK = 120        # seconds a patch may take to come back (TCG on a loaded host)


HVPATCH = guestlib.hvpatch_exe()
HVPATCHD = guestlib.hvpatchd_exe()


def build_id_of(vmlinux):
    out = subprocess.run(["readelf", "-n", vmlinux], capture_output=True, text=True, check=True).stdout
    m = re.search(r"Build ID:\s*([0-9a-f]+)", out)
    if not m:
        raise RuntimeError(f"no build id in {vmlinux}")
    return m.group(1)


def gdb_packet(payload):
    return b"$" + payload + b"#" + b"%02x" % (sum(payload) % 256)


class Gdb:
    """The smallest GDB remote-protocol client: packets in and out, acks skipped."""

    def __init__(self, port, timeout=20):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def packet(self):
        while True:
            i = self.buf.find(b"$")
            if i >= 0:
                j = self.buf.find(b"#", i)
                if j >= 0 and len(self.buf) >= j + 3:
                    payload = self.buf[i + 1:j]
                    self.buf = self.buf[j + 3:]
                    self.s.sendall(b"+")
                    return payload
            chunk = self.s.recv(4096)
            if not chunk:
                raise AssertionError("gdbstub closed the connection")
            self.buf += chunk

    def ask(self, payload):
        """Send a request; its reply (stop replies still in flight from the stop are skipped)."""
        self.s.sendall(gdb_packet(payload))
        while True:
            reply = self.packet()
            if payload == b"?" or not reply[:1] in (b"T", b"S"):
                return reply

    def close(self):
        self.s.close()


def gdb_write(port, gpa, data):
    """Write guest-physical memory through QEMU's gdbstub ('M' in QEMU's physical memory
    mode), as a debugger would; the guest runs on."""
    g = Gdb(port)
    try:
        g.ask(b"?")                     # the stop reason: the stub stopped the guest
        mode = g.ask(b"Qqemu.PhyMemMode:1")
        if mode != b"OK":
            raise AssertionError(f"gdbstub refused physical memory mode: {mode!r}")
        reply = g.ask(b"M%x,%x:%s" % (gpa, len(data), data.hex().encode()))
        g.s.sendall(gdb_packet(b"c"))   # continue: no reply until the guest stops again
        time.sleep(0.3)
        return reply
    finally:
        g.close()


class Daemon:
    def __init__(self, work, catalog, policy, state):
        self.sock = os.path.join(work, "hvpatchd.sock")
        self.metrics = os.path.join(work, "hvpatch.prom")
        self.log = os.path.join(work, "hvpatchd.log")
        self.args = [HVPATCHD, "-v", "--domains", DOMAIN_GLOB, "--catalog", catalog, "--policy", policy, "--state-dir", state,
                     "--socket", self.sock, "--metrics-file", self.metrics, "--metrics-listen", "127.0.0.1:0",
                     "--verify-interval", str(INTERVAL)]
        self.p = None

    def start(self):
        self.logf = open(self.log, "a")
        self.p = subprocess.Popen(self.args, stdout=self.logf, stderr=self.logf)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 30:
            if self.p.poll() is not None:
                raise AssertionError(f"hvpatchd exited {self.p.returncode}: {self.tail()}")
            if self.status(quiet=True):
                return
            time.sleep(0.2)
        raise AssertionError(f"hvpatchd did not answer on {self.sock}: {self.tail()}")

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if not self.p or self.p.poll() is not None:
            return self.p.returncode if self.p else None
        self.p.send_signal(sig)
        try:
            return self.p.wait(timeout)
        finally:
            self.logf.close()

    def status(self, quiet=False):
        p = subprocess.run([HVPATCH, "--json", "daemon-status", "--socket", self.sock], capture_output=True,
                           text=True, timeout=30)
        if p.returncode != 0:
            if quiet:
                return None
            raise AssertionError(f"daemon-status: {p.stdout} {p.stderr}")
        return guestlib.validate_json(json.loads(p.stdout), ["daemon-status"])

    def domain(self, name):
        for d in (self.status() or {}).get("domains", []):
            if d["domain"] == name:
                return d
        return None

    def url(self, path="/metrics"):
        addr = self.status()["metrics_listen"]
        if not addr or not addr.startswith("127.0.0.1:"):
            raise AssertionError(f"daemon-status names no loopback metrics endpoint: {addr!r}")
        return f"http://{addr}{path}"

    def scrape(self, path="/metrics", method="GET"):
        """A real HTTP request to the endpoint: (status, content type, body)."""
        req = urllib.request.Request(self.url(path), method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.headers.get("Content-Type"), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type"), e.read().decode()

    def tail(self, n=40):
        try:
            with open(self.log) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


class DaemonLive(unittest.TestCase):
    name = None
    d = None

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise RuntimeError("live daemon test needs root (libvirt qemu:///system)")
        for tool in ("minisign", "virsh", "readelf", os.environ.get("CC", "gcc")):
            if not shutil.which(tool):
                raise RuntimeError(f"{tool} not found (images/setup-host.sh installs it)")
        for b in (HVPATCH, HVPATCHD):
            if not os.access(b, os.X_OK):
                raise RuntimeError(f"{b} not found: build it (cmake --build build)")
        # state/ is left for hvpatchd to make
        cls.ws = guestlib.Workspace("hvp-td-", dirs=("work", "catalog"))
        cls.tmp, cls.work, cls.catalog = cls.ws.root, cls.ws.work, cls.ws.catalog
        cls.state = cls.ws.path("state")
        try:
            cls.prepare()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def prepare(cls):
        cls.name = f"hvp-td-{os.getpid()}"
        kdir = guestlib.kernel_dir()
        build_id = build_id_of(os.path.join(kdir, "vmlinux"))
        _, cls.key = guestlib.minisign_keypair(cls.work, "rel")
        s = [guestlib.demo_bundle(build_id, os.path.join(cls.work, f"s{seq}"), sequence=seq,
                                  env={"HVP_KERNEL_DIR": kdir}) for seq in (1, 2, 3)]
        good = os.path.join(cls.catalog, "good.hvp")
        shutil.copy(s[0], good)
        guestlib.minisign_sign(cls.key, good, "good")
        shutil.copy(s[1], os.path.join(cls.catalog, "unsigned.hvp"))
        corrupt = os.path.join(cls.catalog, "corrupt.hvp")
        shutil.copy(s[2], corrupt)
        with open(corrupt, "r+b") as f:
            f.truncate(os.path.getsize(corrupt) // 2)
        guestlib.minisign_sign(cls.key, corrupt, "corrupt")
        cls.policy = guestlib.write_policy(os.path.join(cls.work, "policy.xml"),
                                           guestlib.policy_key("rel", "rel.pub", "demo-*"),
                                           guestlib.policy_group("daemon-test", cls.name, build_id))
        os.environ["HVPATCH_STATE_DIR"] = cls.state
        cls.d = Daemon(cls.work, cls.catalog, cls.policy, cls.state)
        cls.d.start()
        cls.t_create = time.monotonic()
        cls.g = guestlib.Guest.create(cls.name, paging=4, kaslr=True)

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.d:
                LAST_LOG.append(cls.d.tail(80))
                cls.d.stop(signal.SIGKILL if cls.d.p and cls.d.p.poll() is None else signal.SIGTERM)
            if cls.name:
                guestlib.Guest(cls.name).destroy()
        finally:
            cls.ws.cleanup()

    # -- helpers ---------------------------------------------------------------
    def promtool(self, text, what):
        if not shutil.which("promtool"):
            if os.environ.get("CI") == "true":
                self.fail("promtool not found under CI=true (images/setup-host.sh installs prometheus)")
            self.skipTest("promtool not found (apt-get install prometheus)")
        self.assertTrue(text.strip(), what)
        p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, f"promtool on {what}: {p.stdout} {p.stderr}\n{text}")

    def hv(self, *args):
        p = subprocess.run([HVPATCH, "--json", "--policy", self.policy] + [str(a) for a in args],
                           capture_output=True, text=True, timeout=300)
        return p.returncode, (guestlib.validate_json(json.loads(p.stdout), args) if p.stdout.strip() else None), p.stderr

    def patched(self):
        return self.g.check("cat /proc/version").strip().endswith(MARKER.strip())

    def wait_patched(self, want=True, timeout=PATCH_BACK):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.patched() == want:
                took = time.monotonic() - t0
                if want:
                    self.wait_job_done()
                return took
            time.sleep(1)
        self.fail(f"/proc/version {'never showed' if want else 'still shows'} the patch within {timeout}s; "
                  f"daemon: {self.d.domain(self.name)}\n{self.d.tail()}")

    def wait_job_done(self, timeout=PATCH_BACK):
        """The job that applied is over (its health gate watches the guest after the apply)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            dom = self.d.domain(self.name)
            if dom and dom["phase"] not in ("working", "waiting-for-kernel"):
                return
            time.sleep(0.2)
        self.fail(f"the daemon's job did not end within {timeout}s: {self.d.domain(self.name)}\n{self.d.tail()}")

    def status_patches(self):
        rc, st, err = self.hv("status", self.name)
        self.assertEqual(rc, 0, f"{st} {err}")
        return st["patches"]

    def domstate(self):
        return subprocess.run(guestlib.VIRSH + ["domstate", self.name], capture_output=True,
                              text=True).stdout.strip()

    def journals(self):
        return glob.glob(os.path.join(self.state, "domains", "*.journal"))

    # -- tests -------------------------------------------------------------------
    def test_1_boot_synced(self):
        secs = self.wait_patched()
        NOTES.append(f"patched {time.monotonic() - self.t_create:.1f}s after create "
                     f"({secs:.1f}s after HVP-READY; boot {self.g.boot_seconds}s)")
        st = self.d.status()
        self.assertEqual((st["catalog_bundles"], st["catalog_usable"]), (3, 1), st)
        dom = self.d.domain(self.name)
        self.assertEqual(dom["verdict"], "allow", dom)
        self.assertEqual(dom["applied"], 1, dom)
        self.assertGreater(dom["kernel_up_seconds"], 0, dom)
        patches = self.status_patches()
        self.assertEqual([(p["id"], p["state"]) for p in patches], [("demo-version-1", "applied")])
        log = self.d.tail(400)
        self.assertIn("unsigned.hvp skipped", log)
        self.assertIn("corrupt.hvp skipped", log)

    def test_2_reboot_patch_back(self):
        self.wait_patched()
        applies = self.d.domain(self.name)["applies"]
        self.g.reboot()
        secs = self.wait_patched()
        dom = self.d.domain(self.name)
        NOTES.append(f"after a reboot: patched {secs:.1f}s after HVP-READY; kernel up "
                     f"{dom['kernel_up_seconds']:.1f}s after the reboot event, patched "
                 f"{dom['kernel_up_to_patched_seconds']:.2f}s after that")
        self.assertEqual(dom["applies"], applies + 1, dom)
        self.assertGreater(dom["kernel_up_to_patched_seconds"], 0, dom)
        self.assertLess(dom["kernel_up_to_patched_seconds"], PATCH_BACK, dom)
        patches = self.status_patches()
        self.assertEqual([(p["id"], p["state"]) for p in patches], [("demo-version-1", "applied")])

    def test_3_sighup_then_tamper_detected_and_repaired(self):
        self.wait_patched()
        # A second series, a replace site (/proc/cmdline), enters the catalog: SIGHUP.
        cmd_va = self.g.symbol("cmdline_proc_show")
        code = self.g.xp(self.g.gva2gpa(cmd_va), 64)
        out = os.path.join(self.work, "cmd")
        guestlib.demo_bundle(self.g.build_id(), out, cmdline_bytes=code.hex())
        bundle = os.path.join(self.catalog, "cmdline.hvp")
        shutil.copy(os.path.join(out, "demo-cmdline.hvp"), bundle)
        guestlib.minisign_sign(self.key, bundle, "cmdline")
        orig_cmdline = self.g.check("cat /proc/cmdline")
        self.d.p.send_signal(signal.SIGHUP)
        t0 = time.monotonic()
        while self.g.check("cat /proc/cmdline") == orig_cmdline:
            if time.monotonic() - t0 > PATCH_BACK:
                self.fail(f"the catalog's new bundle was not applied after SIGHUP\n{self.d.tail()}")
            time.sleep(1)
        self.assertEqual(self.d.status()["catalog_usable"], 2)
        patched_cmdline = self.g.check("cat /proc/cmdline")

        # QEMU's gdbstub writes the original bytes back over the replaced site.
        dom = self.d.domain(self.name)
        site = [w for p in self.status_patches() if p["id"] == "demo-cmdline-1" for w in p["writes"]]
        self.assertEqual([w["kind"] for w in site], ["site"])
        va, n = int(site[0]["va"], 16), site[0]["len"]
        old = code[va - cmd_va:va - cmd_va + n]
        port = 20000 + os.getpid() % 20000
        self.g.hmp(f"gdbserver tcp:127.0.0.1:{port}")
        try:
            reply = gdb_write(port, self.g.gva2gpa(va), old)
        finally:
            self.g.hmp("gdbserver none")
        self.assertEqual(reply, b"OK")
        if self.domstate() != "running":       # the stub stops the guest while a debugger is on
            subprocess.run(guestlib.VIRSH + ["resume", self.name], capture_output=True)
            self.fail(f"the guest was left {self.domstate()} by the test's gdbstub write")
        t0 = time.monotonic()
        while time.monotonic() - t0 < PATCH_BACK:
            now = self.d.domain(self.name)
            if now["tampered"] > dom["tampered"]:
                break
            time.sleep(0.5)
        else:
            self.fail(f"no tampering seen: {self.d.domain(self.name)}\n{self.d.tail()}")
        while self.g.check("cat /proc/cmdline") != patched_cmdline:
            if time.monotonic() - t0 > PATCH_BACK:
                self.fail(f"the tampered patch was not applied again\n{self.d.tail()}")
            time.sleep(1)
        self.wait_job_done()
        now = self.d.domain(self.name)
        self.assertEqual(now["tampered"], dom["tampered"] + 1, now)   # reported once, not at every check
        self.assertEqual(now["applied"], 2, now)
        self.assertIn("demo-cmdline-1 tampered with", self.d.tail(300))
        NOTES.append(f"tampering: seen and repaired, patch back {time.monotonic() - t0:.1f}s after the write")

        # The metrics say the same, over HTTP: the tampering, the applies, their latencies.
        status, ctype, text = self.d.scrape()
        self.assertEqual(status, 200)
        self.assertEqual(ctype, "text/plain; version=0.0.4; charset=utf-8")
        self.promtool(text, "the scrape after tampering")
        m = parse_metrics(text)
        now = self.d.domain(self.name)
        lbl = (("domain", self.name),)
        self.assertEqual(m[("hvpatch_domain_tamper_events_total", lbl)], now["tampered"])
        self.assertGreaterEqual(now["tampered"], 1)
        self.assertEqual(m[("hvpatch_domain_applies_total", lbl)], now["applies"])
        self.assertEqual(m[("hvpatch_domain_applied_patches", lbl)], 2)
        self.assertEqual(m[("hvpatch_health_failures_total", lbl)], 0)
        self.assertAlmostEqual(m[("hvpatch_domain_last_pause_seconds", lbl)], now["last_pause_ms"] / 1000, places=5)
        self.assertGreater(m[("hvpatch_domain_last_pause_seconds", lbl)], 0)
        # boot, reboot, SIGHUP and the repair each applied one patch in a sync of its own; a sync
        # whose apply failed (the daemon's check can meet the test's gdbstub still open) counts too
        count = m[("hvpatch_apply_duration_seconds_count", ())]
        self.assertGreaterEqual(count, now["applies"], text)
        self.assertLessEqual(count, now["applies"] + now["failures"], text)
        self.assertGreaterEqual(now["applies"], 4)
        self.assertEqual(m[("hvpatch_apply_duration_seconds_bucket", (("le", "+Inf"),))], count)
        self.assertGreater(m[("hvpatch_apply_duration_seconds_sum", ())], 0)
        buckets = sorted((float(dict(k[1])["le"]), v) for k, v in m.items()
                         if k[0] == "hvpatch_apply_duration_seconds_bucket")
        self.assertEqual([v for _, v in buckets], sorted(v for _, v in buckets))    # cumulative
        self.assertEqual(m[("hvpatch_domain_compliance", lbl + (("verdict", "allow"),))], 1)
        NOTES.append(f"metrics after tampering: {count:.0f} applies, mean sync "
                     f"{m[('hvpatch_apply_duration_seconds_sum', ())] / count:.2f}s")

    def test_4_sigterm_while_busy(self):
        self.wait_patched()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.g.sock)
        s.sendall(b"\necho b > /proc/sysrq-trigger\n")
        time.sleep(0.5)
        s.close()
        t0 = time.monotonic()
        phase = None
        while time.monotonic() - t0 < 60:
            phase = self.d.domain(self.name)["phase"]
            if phase in ("waiting-for-kernel", "working"):
                break
            time.sleep(0.1)
        self.assertIn(phase, ("waiting-for-kernel", "working"))
        t1 = time.monotonic()
        rc = self.d.stop(signal.SIGTERM, timeout=60)
        took = time.monotonic() - t1
        self.assertEqual(rc, 0, self.d.tail())
        NOTES.append(f"SIGTERM while {phase}: exited in {took:.2f}s")
        self.assertLess(took, 30)
        self.assertEqual(self.domstate(), "running")
        self.assertEqual(self.journals(), [])
        self.assertFalse(os.path.exists(self.d.sock))
        # The guest finishes its boot without a daemon; a new one patches it again.
        t2 = time.monotonic()
        while self.g.ready_count() < 3 and time.monotonic() - t2 < 300:
            time.sleep(0.5)
        self.d.start()
        self.wait_patched()

    def test_5_restart_applies_nothing_twice(self):
        self.wait_patched()
        self.assertEqual(self.d.stop(), 0)
        self.d.start()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60:
            dom = self.d.domain(self.name)
            if dom and dom["jobs"] >= 2:            # the start-up check and a periodic one
                break
            time.sleep(0.5)
        dom = self.d.domain(self.name)
        self.assertGreaterEqual(dom["jobs"], 2, dom)
        self.assertEqual(dom["applies"], 0, dom)
        self.assertEqual(dom["applied"], 2, dom)
        self.assertIn(dom["last_result"], ("converged, nothing to do",), dom)
        patches = self.status_patches()
        self.assertEqual(len(patches), 2, patches)

    def test_6_metrics(self):
        self.wait_patched()
        # the state after the restarts of 4 and 5: both patches held, nothing applied since
        t0 = time.monotonic()
        while not os.path.exists(self.d.metrics) and time.monotonic() - t0 < 30:
            time.sleep(0.5)
        with open(self.d.metrics) as f:
            file_text = f.read()
        status, ctype, text = self.d.scrape()
        self.assertEqual(status, 200)
        self.assertEqual(ctype, "text/plain; version=0.0.4; charset=utf-8")
        for what, t in (("the metrics file", file_text), ("the scrape", text)):
            self.promtool(t, what)
            m = parse_metrics(t)
            lbl = (("domain", self.name),)
            self.assertEqual(m[("hvpatch_domain_applied_patches", lbl)], 2, what)
            self.assertEqual(m[("hvpatch_domain_compliance", lbl + (("verdict", "allow"),))], 1, what)
            self.assertEqual(m[("hvpatch_domain_compliance", lbl + (("verdict", "refuse"),))], 0, what)
            self.assertEqual(m[("hvpatch_domain_applies_total", lbl)], 0, what)     # a restart: nothing twice
            self.assertEqual(m[("hvpatch_domain_tamper_events_total", lbl)], 0, what)
            self.assertEqual(m[("hvpatch_apply_duration_seconds_count", ())], 0, what)
            # only this test's domain: the daemon is scoped with --domains
            self.assertEqual({dict(k[1]).get("domain") for k in m if dict(k[1]).get("domain")}, {self.name}, what)
        status, ctype, body = self.d.scrape(method="HEAD")
        self.assertEqual((status, body), (200, ""))
        self.assertEqual(self.d.scrape("/")[0], 404)
        self.assertEqual(self.d.scrape("/metricsx")[0], 404)
        self.assertEqual(self.d.scrape(method="POST")[0], 405)
        # a non-loopback address is refused before anything starts
        p = subprocess.run([HVPATCHD, "--metrics-listen", "0.0.0.0:9", "--domains", DOMAIN_GLOB, "--catalog",
                            self.catalog, "--policy", self.policy], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("not a loopback address", p.stderr)


def parse_metrics(text):
    """Prometheus text: {(name, ((label, value), ...)): float} (label values unescaped)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)', line)
        if not m:
            raise AssertionError(f"not a sample line: {line!r}")
        labels = tuple((k, re.sub(r'\\(.)', lambda x: "\n" if x.group(1) == "n" else x.group(1), v))
                       for k, v in re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        key = (m.group(1), labels)
        if key in out:
            raise AssertionError(f"sample twice: {line!r}")
        out[key] = float(m.group(3))
    return out

NOTES = []
LAST_LOG = []           # the daemon's log tail, kept when the class ends


def main():
    def on_signal(signum, frame):
        DaemonLive.tearDownClass()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    prog = unittest.main(argv=sys.argv, exit=False, verbosity=2)
    for n in NOTES:
        print(n)
    if not prog.result.wasSuccessful() and LAST_LOG:
        print("hvpatchd's log (last lines):\n" + LAST_LOG[-1], file=sys.stderr)
    sys.exit(guestlib.summary(prog.result))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""`hvpatch report` on live guests: the host's compliance report in every format.

Three test guests (4-level paging, KASLR) boot at once, and two domains that cannot be
read sit beside them:
  * A  patched with the signed demo-version bundle (minisign), in a group whose current
       baseline is its kernel: compliant, one patch applied, intact;
  * B  in a group that knows its kernel only as an older baseline: reboot-required;
  * C  in no group: unmanaged; with a second policy, in a group that requires Secure
       Boot (the test guests boot without it): refused;
  * OFF   defined, never started: a row "shut-off"; its name is markup (<i>, <b>, &, quotes)
          that must stay text in the page and be escaped in the Prometheus labels;
  * FW    started paused at the reset vector (no kernel, paging off): a row "error"
          with the reason, not an abort. (The test pauses it; hvpatch only reads it.)
Oracles: `hvpatch status` per guest (build id, patches, compliance), what the test did
(which bundle it applied, which policy), the guest's own /proc/version (the patch is
live), promtool (`promtool check metrics`) for the Prometheus text, and a real headless
Chromium for the HTML page: the DOM after its script ran (`--dump-dom`: the counts as
written, the counts the page's script recounted from the rows, the sort order) and a
screenshot kept as an artifact in $HVP_ARTIFACT_DIR (default build/test-artifacts/).
Then tampering (QEMU's gdbstub writes the original bytes back over the patched site)
shows as "tampered", and a health-gate bad mark (STATE/bad/BUILD/PATCH.json) as
"marked-bad".

    python3 tests/live/test_report.py     # last line: "N passed, M failed"

Environment: HVPATCH (binary, default build/cli/hvpatch), HVP_KERNEL_DIR, HVP_GUEST_DIR,
HVP_ARTIFACT_DIR. Must run as root with libvirt (it fails, not skips, otherwise);
promtool (Debian's prometheus) and chromium are skipped with a reason when missing,
a failure under CI=true.
"""

import html
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import xml.sax.saxutils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib  # noqa: E402

REPO = guestlib.REPO
MARKER = " [hvpatch: hotpatched]"
CI = os.environ.get("CI") == "true"
TAG = f"hvp-rep-{os.getpid()}"
VERDICTS = ["compliant", "reboot-required", "unmanaged", "refused", "error", "shut-off"]


hvpatch_exe = guestlib.hvpatch_exe


def artifact_dir():
    d = os.environ.get("HVP_ARTIFACT_DIR")
    if not d:
        d = os.path.join(os.environ.get("HVP_BUILD_DIR", os.path.join(REPO, "build")), "test-artifacts")
    os.makedirs(d, exist_ok=True)
    return d


def need(tool, why):
    """The path of tool, or skip (fail under CI=true) saying why it is needed."""
    path = shutil.which(tool)
    if not path:
        msg = f"{tool} not found ({why}; images/setup-host.sh installs it)"
        if CI:
            raise AssertionError(msg)
        raise unittest.SkipTest(msg)
    return path


def virsh(*args, check=True):
    p = subprocess.run(guestlib.VIRSH + list(args), capture_output=True, text=True, timeout=120)
    if check and p.returncode != 0:
        raise guestlib.GuestError(f"virsh {' '.join(args)}: {p.stderr.strip()}")
    return p


def gdb_packet(payload):
    return b"$" + payload + b"#" + b"%02x" % (sum(payload) % 256)


def gdb_write(port, gpa, data):
    """Write guest-physical memory through QEMU's gdbstub ('M' in its physical memory
    mode), as a debugger would, then let the guest run on."""
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    buf = b""

    def packet():
        nonlocal buf
        while True:
            i = buf.find(b"$")
            j = buf.find(b"#", i) if i >= 0 else -1
            if i >= 0 and j >= 0 and len(buf) >= j + 3:
                payload, buf = buf[i + 1:j], buf[j + 3:]
                s.sendall(b"+")
                return payload
            chunk = s.recv(4096)
            if not chunk:
                raise AssertionError("gdbstub closed the connection")
            buf += chunk

    def ask(payload):
        s.sendall(gdb_packet(payload))
        while True:
            reply = packet()
            if payload == b"?" or reply[:1] not in (b"T", b"S"):
                return reply

    try:
        ask(b"?")
        if ask(b"Qqemu.PhyMemMode:1") != b"OK":
            raise AssertionError("gdbstub refused physical memory mode")
        reply = ask(b"M%x,%x:%s" % (gpa, len(data), data.hex().encode()))
        s.sendall(gdb_packet(b"c"))
        time.sleep(0.3)
        return reply
    finally:
        s.close()


def setUpModule():
    if os.geteuid() != 0:
        raise RuntimeError("live report test needs root (libvirt qemu:///system)")
    for tool in ("minisign", "virsh", os.environ.get("CC", "gcc")):
        if not shutil.which(tool):
            raise RuntimeError(f"{tool} not found (images/setup-host.sh installs it)")
    if not os.access(hvpatch_exe(), os.X_OK):
        raise RuntimeError(f"hvpatch binary not found: {hvpatch_exe()} (build it, or set HVPATCH)")
    subprocess.run([os.path.join(REPO, "images", "setup-host.sh")], check=True, stdout=subprocess.DEVNULL)


# A domain with no kernel and no disk: SeaBIOS, started paused at the reset vector.
BARE_XML = """<domain type='qemu'>
  <name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices/>
</domain>
"""


class ReportLive(unittest.TestCase):
    guests = ()
    extra = ()

    @classmethod
    def setUpClass(cls):
        cls.ws = guestlib.Workspace("hvp-rep.", dirs=("work", "state"))
        cls.tmp, cls.work, cls.state = cls.ws.root, cls.ws.work, cls.ws.state
        try:
            cls.prepare()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def prepare(cls):
        cls.A, cls.B, cls.C = (f"{TAG}-a", f"{TAG}-b", f"{TAG}-c")
        # OFF's name is hostile markup (libvirt takes any name without '/')
        cls.OFF, cls.FW = f"{TAG}-off<i>x<b>&\"'", f"{TAG}-fw"
        cls.guests = guestlib.boot_guests([cls.A, cls.B, cls.C], paging=4, kaslr=True)
        cls.ga, cls.gb, cls.gc = cls.guests
        cls.build_id = cls.ga.build_id()
        for g in (cls.gb, cls.gc):
            if g.build_id() != cls.build_id:
                raise guestlib.GuestError("the guests run different kernels")

        cls.extra = [cls.OFF, cls.FW]
        for name in cls.extra:
            path = os.path.join(cls.work, f"bare-{len(os.listdir(cls.work))}.xml")
            with open(path, "w") as f:
                f.write(BARE_XML.format(name=xml.sax.saxutils.escape(name, {'"': "&quot;"})))
            virsh("define", path)
        virsh("start", "--paused", cls.FW)

        _, key = guestlib.minisign_keypair(cls.work, "rel")
        cls.bundle = guestlib.demo_bundle(cls.build_id, os.path.join(cls.work, "s1"))
        guestlib.minisign_sign(key, cls.bundle, "report test")
        fake = "f" * 40
        groups = guestlib.policy_group("rep-ok", cls.A, cls.build_id) + f'''  <group name="rep-old"><select name="{cls.B}"/><window/>
    <baseline name="2026-12" current="yes"><kernel build-id="{fake}"/></baseline>
    <baseline name="2026-06"><kernel build-id="{cls.build_id}"/></baseline></group>
'''
        refuse = guestlib.policy_group("rep-sb", cls.C, cls.build_id, extra='<require secure-boot="yes"/>')
        cls.policy = cls.write_policy("policy.xml", groups)
        cls.policy_sb = cls.write_policy("policy-sb.xml", groups + refuse)

        cls.orig_version = cls.ga.check("cat /proc/version")
        rc, out, err = cls.hv_cls(["apply", cls.A, cls.bundle])
        if rc != 0:
            raise guestlib.GuestError(f"apply failed (exit {rc}): {out} {err}")
        if not cls.ga.check("cat /proc/version").rstrip("\n").endswith(MARKER):
            raise guestlib.GuestError("the demo patch is not live in guest A")

    @classmethod
    def write_policy(cls, name, groups):
        return guestlib.write_policy(os.path.join(cls.work, name), guestlib.policy_key("rel", "rel.pub", "demo-*"), groups)

    @classmethod
    def tearDownClass(cls):
        try:
            for name in cls.extra:
                virsh("destroy", name, check=False)
                virsh("undefine", name, check=False)
            for g in cls.guests:
                g.destroy()
        finally:
            cls.ws.cleanup()

    # -- helpers ---------------------------------------------------------------

    @classmethod
    def hv_cls(cls, args, policy=None, json_out=True):
        argv = [hvpatch_exe()] + (["--json"] if json_out else []) + ["--policy", policy or cls.policy]
        p = subprocess.run(argv + [str(a) for a in args], capture_output=True, text=True, timeout=900,
                           env=dict(os.environ, HVPATCH_STATE_DIR=cls.state))
        out = p.stdout
        if json_out:
            try:
                out = guestlib.validate_json(json.loads(p.stdout), args)
            except ValueError:
                raise AssertionError(f"hvpatch {' '.join(map(str, args))}: not one JSON document "
                                     f"(exit {p.returncode}): {p.stdout!r} {p.stderr!r}") from None
        return p.returncode, out, p.stderr

    def hv(self, *args, policy=None, json_out=True):
        return self.hv_cls(list(args), policy=policy, json_out=json_out)

    def report(self, *extra, policy=None, domains=None):
        """report --json over this test's domains: (exit code, document)."""
        rc, out, err = self.hv("report", "--domains", domains or f"{TAG}-*", *extra, policy=policy)
        self.assertIn("domains", out, err)
        return rc, out

    def rows(self, doc):
        return {d["domain"]: d for d in doc["domains"]}

    def status(self, name):
        rc, st, err = self.hv("status", name)
        self.assertEqual(rc, 0, f"{st} {err}")
        return st

    # -- cases -----------------------------------------------------------------
    def test_1_json_rows_and_counts(self):
        rc, doc = self.report()
        rows = self.rows(doc)
        self.assertEqual(sorted(rows), sorted([self.A, self.B, self.C, self.OFF, self.FW]), doc)
        self.assertEqual([d["domain"] for d in doc["domains"]], sorted(rows))     # sorted by domain
        self.assertEqual(doc["counts"], {"compliant": 1, "reboot-required": 1, "unmanaged": 1, "refused": 0,
                                         "error": 1, "shut-off": 1}, doc)
        self.assertEqual(rc, 1, "a guest that cannot be read makes the exit code 1")
        self.assertEqual(doc["exit_code"], 1)

        a, b, c = rows[self.A], rows[self.B], rows[self.C]
        self.assertEqual((a["verdict"], a["group"], a["baseline"]), ("compliant", "rep-ok", "current"))
        self.assertEqual(b["verdict"], "reboot-required")
        self.assertEqual(b["baseline"], "2026-06")
        self.assertIn("old-baseline", [r["code"] for r in b["reasons"]], b)
        self.assertEqual(c["verdict"], "unmanaged")
        self.assertIn("no-group", [r["code"] for r in c["reasons"]], c)
        for r in (a, b, c):
            self.assertEqual(r["build_id"], self.build_id)
            self.assertEqual(r["os"], "linux")
            self.assertEqual(r["state"], "running")
        self.assertEqual(a["kernel"], self.ga.uname_r())
        self.assertTrue(a["banner"].startswith("Linux version " + a["kernel"]))

        # A: the bundle the test applied, as status reports it
        self.assertEqual(len(a["patches"]), 1, a)
        p = a["patches"][0]
        self.assertEqual((p["id"], p["series"], p["seq"], p["key"], p["state"], p["marked_bad"]),
                         ("demo-version-1", "demo-version", 1, "rel", "applied", False))
        self.assertEqual((a["applied"], a["tamper"], a["health"]), (1, "intact", "-"))
        for r in (b, c):
            self.assertEqual((r["patches"], r["applied"], r["tamper"]), ([], 0, "-"))

        # each guest as `hvpatch status` reports it
        for name in (self.A, self.B, self.C):
            st, r = self.status(name), rows[name]
            self.assertEqual(st["build_id"], r["build_id"])
            self.assertEqual(st["uuid"], r["uuid"])
            verdict = {"refuse": "refused"}.get(st["compliance"]["verdict"], st["compliance"]["verdict"])
            self.assertEqual(verdict, r["verdict"], name)
            self.assertEqual(st["compliance"]["group"], r["group"] or "")
            self.assertEqual([(x["id"], x["series"], x["seq"], x["key"], x["state"], x["applied_at"])
                              for x in st["patches"]],
                             [(x["id"], x["series"], x["seq"], x["key"], x["state"], x["applied_at"])
                              for x in r["patches"]], name)
            if st["patches"]:
                self.assertAlmostEqual(st["patches"][0]["pause_ms"], r["patches"][0]["pause_ms"], places=3)

        off, fw = rows[self.OFF], rows[self.FW]
        self.assertEqual((off["verdict"], off["state"]), ("shut-off", "shut-off"))
        self.assertEqual((fw["verdict"], fw["state"]), ("error", "paused"))
        self.assertTrue(fw["error"].startswith("finding the kernel: "), fw)
        self.assertEqual(fw["code"], 1)
        # the report paused nothing and resumed nothing: FW is still paused by the test,
        # the test guests still run
        self.assertEqual(virsh("domstate", self.FW).stdout.strip(), "paused")
        for name in (self.A, self.B, self.C):
            self.assertEqual(virsh("domstate", name).stdout.strip(), "running")

    def test_2_table_and_exit_codes(self):
        rc, text, err = self.hv("report", "--domains", f"{self.A},{self.B},{self.C}", "--parallel", "2",
                                json_out=False)
        self.assertEqual(rc, 3, "reboot-required, no error: exit 3\n" + text + err)
        lines = text.splitlines()
        self.assertTrue(lines[0].startswith("DOMAIN "), text)
        doms = [ln.split()[0] for ln in lines[1:] if ln and not ln.startswith((" ", "counts:"))]
        self.assertEqual(doms, [self.A, self.B, self.C], text)
        row_a = next(ln for ln in lines if ln.startswith(self.A))
        self.assertEqual(row_a.split()[1:3], ["compliant", self.ga.uname_r()], row_a)
        self.assertIn("patch demo-version-1: series demo-version, seq 1, key rel, applied ", text)
        self.assertIn("counts: 1 compliant, 1 reboot-required, 1 unmanaged, 0 refused, 0 error, 0 shut-off "
                      "(3 domains,", text)
        rc, _, err = self.hv("report", "--domains", self.A, json_out=False)
        self.assertEqual(rc, 0, err)
        rc, _, err = self.hv("report", "--domains", self.C, json_out=False)
        self.assertEqual(rc, 0, "unmanaged does not change the exit code: " + err)
        rc, out, _ = self.hv("report", "--parallel", "0")
        self.assertEqual((rc, out.get("code")), (2, 2), out)
        rc, out, _ = self.hv("report", "--prometheus")      # with --json
        self.assertEqual((rc, out.get("code")), (2, 2), out)
        # --policy after the command: the same as before it (C is refused under policy_sb)
        rc, out, err = self.hv("report", "--domains", self.C, "--policy", self.policy_sb)
        self.assertEqual((rc, self.rows(out)[self.C]["verdict"]), (3, "refused"), err)

    def test_3_refused_by_policy(self):
        rc, doc = self.report(policy=self.policy_sb, domains=f"{self.A},{self.C}")
        rows = self.rows(doc)
        self.assertEqual(rows[self.C]["verdict"], "refused", rows[self.C])
        self.assertIn("secure-boot", ",".join(r["code"] for r in rows[self.C]["reasons"]), rows[self.C])
        self.assertEqual(doc["counts"]["refused"], 1)
        self.assertEqual(rc, 3)
        st = self.hv("status", self.C, policy=self.policy_sb)[1]
        self.assertEqual(st["compliance"]["verdict"], "refuse")

    def test_4_prometheus(self):
        promtool = need("promtool", "it checks the Prometheus text (Debian's prometheus package)")
        rc, text, err = self.hv("report", "--domains", f"{TAG}-*", "--prometheus", json_out=False)
        self.assertEqual(rc, 1, err)
        p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, f"promtool: {p.stdout} {p.stderr}\n{text}")
        self.assertIn(f'hvpatch_report_domain_verdict{{domain="{self.A}",verdict="compliant"}} 1\n', text)
        self.assertIn(f'hvpatch_report_domain_verdict{{domain="{self.B}",verdict="reboot-required"}} 1\n', text)
        self.assertIn(f'hvpatch_report_domain_verdict{{domain="{self.FW}",verdict="error"}} 1\n', text)
        off = self.OFF.replace('"', '\\"')
        self.assertIn(f'hvpatch_report_domain_verdict{{domain="{off}",verdict="shut-off"}} 1\n', text)
        self.assertIn(f'hvpatch_report_domain_applied_patches{{domain="{self.A}"}} 1\n', text)
        self.assertIn(f'hvpatch_report_domain_tampered{{domain="{self.A}"}} 0\n', text)
        self.assertRegex(text, r'hvpatch_report_domain_patch_info\{domain="%s",patch_id="demo-version-1",'
                               r'series="demo-version",seq="1",key="rel",state="applied",marked_bad="no"\} 1\n'
                               % re.escape(self.A))
        for v, n in (("compliant", 1), ("reboot-required", 1), ("unmanaged", 1), ("refused", 0), ("error", 1),
                     ("shut-off", 1)):
            self.assertIn(f'hvpatch_report_domains{{verdict="{v}"}} {n}\n', text)

    def chromium(self, page, fragment="", screenshot=None):
        """The DOM of page after its script ran, in a real headless Chromium (or a screenshot)."""
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        if not exe:
            need("chromium", "the HTML report is checked in a real browser (Debian's chromium package)")
        profile = tempfile.mkdtemp(prefix="chromium.", dir=self.tmp)
        argv = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
                f"--user-data-dir={profile}", "--window-size=1400,1100",
                # paint everything before the capture (else rows below the first screen came out half drawn)
                "--run-all-compositor-stages-before-draw", "--virtual-time-budget=3000"]
        argv += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
        p = subprocess.run(argv + ["file://" + page + fragment], capture_output=True, text=True, timeout=180)
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        return p.stdout

    def test_5_html_in_chromium(self):
        page = os.path.join(self.work, "report.html")
        rc, doc = self.report("--html", page)
        self.assertEqual(rc, 1)
        self.assertEqual(doc["html"], page)
        with open(page) as f:
            src = f.read()
        self.assertNotRegex(src, r"(?i)\b(src|href)\s*=\s*[\"']?(https?:)?//", "the page loads nothing")
        self.assertIn(html.escape(self.OFF, quote=True).replace("&#x27;", "&#39;"), src)

        dom = self.chromium(page, "#sort=0-desc")
        self.assertIn('data-ready="1"', dom, "the page's script did not run")
        # the hostile name stayed text: no element came of it
        self.assertNotRegex(dom, r"<(i|b)>", "a domain name injected markup")
        self.assertIn("off&lt;i&gt;x&lt;b&gt;&amp;", dom)
        for v in VERDICTS:      # the counts as written, and as the script recounted them from the rows
            m = re.search(r'id="count-%s">(\d+)<' % v, dom)
            self.assertIsNotNone(m, v)
            self.assertEqual(int(m.group(1)), doc["counts"][v], v)
            m = re.search(r'class="bar-count" data-verdict="%s"[^>]*>(\d+)<' % v, dom)
            self.assertEqual(int(m.group(1)), doc["counts"][v], v)
            seen = re.search(r'class="rc" data-verdict="%s">%s=(\d+)<' % (v, v), dom)
            self.assertEqual(int(seen.group(1)) if seen else 0, doc["counts"][v], v)
        order = [html.unescape(n) for n in re.findall(r"<tr class=\"v-[a-z-]+\" data-verdict=\"[a-z-]+\">"
                                                      r"<td data-sort=\"([^\"]*)\"", dom)]
        self.assertEqual(order, sorted(order, reverse=True), "#sort=0-desc: by domain, descending")
        self.assertEqual(sorted(order), sorted(d["domain"] for d in doc["domains"]))
        self.assertIn('aria-sort="descending"', dom)
        fw = re.search(r'<tr class="v-error".*?</tr>', dom, re.S)
        self.assertIn("finding the kernel: ", fw.group(0))

        shot = os.path.join(artifact_dir(), "report.png")
        self.chromium(page, screenshot=shot)
        with open(shot, "rb") as f:
            head = f.read(24)
        self.assertEqual(head[:8], b"\x89PNG\r\n\x1a\n")
        self.assertEqual(int.from_bytes(head[16:20], "big"), 1400)     # the window's width
        shutil.copy(page, os.path.join(artifact_dir(), "report.html"))
        print(f"report screenshot: {shot}", file=sys.stderr)

    def test_6_tamper_and_bad_mark(self):
        # a bad mark of the health gate for A's build (its format: STATE/bad/BUILD/PATCH.json)
        marks = os.path.join(self.state, "bad", self.build_id)
        os.makedirs(marks, 0o700)
        os.chmod(os.path.join(self.state, "bad"), 0o700)
        with open(os.path.join(marks, "demo-version-1.json"), "w") as f:
            json.dump({"build_id": self.build_id, "patch_id": "demo-version-1", "series": "demo-version", "seq": 1,
                       "domain": self.A, "at": 1700000000, "kind": "taint", "reason": "W (warn)"}, f)
        try:
            rc, doc = self.report(domains=self.A)
            a = self.rows(doc)[self.A]
            self.assertEqual(a["health"], "marked-bad")
            self.assertEqual(a["bad_marks"], [{"patch_id": "demo-version-1", "kind": "taint", "at": 1700000000}])
            self.assertTrue(a["patches"][0]["marked_bad"])
        finally:
            shutil.rmtree(os.path.join(self.state, "bad"))

        # QEMU's gdbstub writes the original bytes back over the patched site: tampered
        st = self.status(self.A)
        sites = [w for w in st["patches"][0]["writes"] if w["kind"] == "site"]
        self.assertTrue(sites, st)
        va, n = int(sites[0]["va"], 16), sites[0]["len"]
        with open(os.path.join(self.state, "domains", f"{st['uuid']}.json")) as f:
            record = json.load(f)
        old = None
        for e in record["applied"]:
            for w in e["plan"]["writes"]:
                if int(w["va"], 16) == va and not w["area"]:
                    old = bytes.fromhex(w["old"])
        self.assertIsNotNone(old, f"no original bytes for {va:#x} in the record")
        port = 20000 + os.getpid() % 20000
        self.ga.hmp(f"gdbserver tcp:127.0.0.1:{port}")
        try:
            self.assertEqual(gdb_write(port, self.ga.gva2gpa(va), old), b"OK")
        finally:
            self.ga.hmp("gdbserver none")
        self.assertEqual(virsh("domstate", self.A).stdout.strip(), "running")
        rc, doc = self.report(domains=self.A)
        a = self.rows(doc)[self.A]
        self.assertEqual((a["tamper"], a["patches"][0]["state"]), ("tampered", "foreign"), a)
        self.assertEqual(self.status(self.A)["patches"][0]["state"], "foreign")
        self.assertEqual(self.ga.check("cat /proc/version"), self.orig_version, "the original code runs again")


def main():
    prog = unittest.main(argv=sys.argv, exit=False, verbosity=2)
    sys.exit(guestlib.summary(prog.result))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Trust and policy on a live guest: signed bundles, the policy file, refusals, audit.

One UEFI guest (4-level paging, KASLR). Keys and signatures are made by the real
minisign (`minisign -G -W`, `minisign -S -t`); the policies are written here in the
format of docs/policy.md; the demo bundles come from images/demo/build-demo.sh.

Oracles hvpatch does not control:
  * the guest's own /proc/version, /proc/kallsyms and /sys/kernel/notes (build id),
    read through the test command channel;
  * QEMU's monitor: `gva2gpa` for the physical pages, `xp` for their bytes. Every
    refusal is checked to write ZERO bytes: the page holding the target function's
    entry and the slack page after _etext (where new code goes) are read with HMP
    before and after and must be identical;
  * the audit trail: hvpatch writes it with syslog(3) to /dev/log. These sandboxes run
    no syslog daemon, so each hvpatch here runs in a private mount namespace whose
    /dev is a tmpfs of symlinks to the real /dev plus /dev/log -> a unix datagram
    socket this test listens on. Nothing outside the namespace changes, a real
    syslog daemon (if any) is not disturbed, and concurrent runs cannot collide.

    python3 tests/live/test_policy.py     # last line: "N passed, M failed"

Environment: HVPATCH (binary, default build/cli/hvpatch), HVP_KERNEL_DIR, HVP_GUEST_DIR.
Must run as root with libvirt (it fails, not skips, otherwise).
"""

import base64
import datetime
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib  # noqa: E402

REPO = guestlib.REPO
BUILD_DEMO = os.path.join(REPO, "images", "demo", "build-demo.sh")
MARKER = " [hvpatch: hotpatched]"
CREATED = []        # guests to destroy however the run ends (even on ^C)

# Each hvpatch runs in a private mount namespace with its own /dev (see the docstring).
NS_SCRIPT = r'''set -e
mkdir -p "$HVP_AUDIT_DIR/realdev"
mount --rbind /dev "$HVP_AUDIT_DIR/realdev"
mount -t tmpfs -o mode=755,size=64k hvp-dev /dev
ln -s "$HVP_AUDIT_DIR"/realdev/* /dev/
ln -sf "$HVP_AUDIT_DIR/log" /dev/log
exec "$@"
'''


def hvpatch_exe():
    exe = os.environ.get("HVPATCH", "build/cli/hvpatch")
    if not os.path.isabs(exe):
        exe = os.path.join(REPO, exe)
    return exe


def hmp_bytes(out):
    """Bytes of an HMP `xp /Nxg` dump ("ADDR: 0x0123456789abcdef 0x..." lines), little-endian."""
    data = bytearray()
    for line in out.splitlines():
        if ":" not in line:
            continue
        for word in line.split(":", 1)[1].split():
            data += struct.pack("<Q", int(word, 16))
    return bytes(data)


class Audit:
    """A unix datagram socket standing in for /dev/log inside hvpatch's namespace."""

    def __init__(self, folder):
        self.dir = folder
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(os.path.join(folder, "log"))
        self.sock.setblocking(False)
        self.script = os.path.join(folder, "ns.sh")
        with open(self.script, "w") as f:
            f.write(NS_SCRIPT)

    def wrap(self, argv):
        return ["unshare", "--mount", "--propagation", "private", "sh", self.script] + argv

    def drain(self):
        """The syslog messages received since the last call, as text."""
        lines = []
        while True:
            try:
                lines.append(self.sock.recv(65536).decode(errors="replace"))
            except BlockingIOError:
                return lines

    def close(self):
        self.sock.close()


def weekday_in(days):
    """The policy's name (docs/policy.md) of the UTC weekday `days` days from now."""
    when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days)
    return ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[when.weekday()]


def container_offsets(data):
    """Where things are in a bundle (docs/bundle.md, container version 1), by our own reading:
    {"header": off, "table": off, "manifest": (off, size), "payload": (off, size)}."""
    magic, version, hsize, esize, count, total = struct.unpack_from("<8sIIIIQ", data, 0)
    assert magic == b"HVPBNDL1" and hsize == 64 and esize == 128 and total == len(data), "not a bundle"
    entries = []
    for i in range(count):
        e = hsize + i * esize
        name = data[e:e + 64].rstrip(b"\0").decode()
        off, size = struct.unpack_from("<QQ", data, e + 64)
        entries.append((name, off, size))
    assert entries[0][0] == "manifest.xml" and len(entries) >= 2
    return {"header": 8, "table": hsize + esize + 80 + 3,     # inside entry 1's SHA-256
            "manifest": entries[0][1:], "payload": entries[1][1:]}


def setUpModule():
    if os.geteuid() != 0:
        raise RuntimeError("live policy test needs root (libvirt qemu:///system, mount namespaces)")
    for tool in ("minisign", "unshare", "virsh"):
        if not shutil.which(tool):
            raise RuntimeError(f"{tool} not found (images/setup-host.sh installs it)")
    if not os.access(hvpatch_exe(), os.X_OK):
        raise RuntimeError(f"hvpatch binary not found: {hvpatch_exe()} (build it, or set HVPATCH)")
    subprocess.run([os.path.join(REPO, "images", "setup-host.sh")], check=True, stdout=subprocess.DEVNULL)


class PolicyLive(unittest.TestCase):
    """Everything shares one guest; each test leaves it with nothing applied."""
    name = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hvp-tq-policy.")
        cls.g = cls.audit = None
        try:
            cls.prepare()
        except BaseException:       # tearDownClass is not called when setUpClass fails
            cls.tearDownClass()
            raise

    @classmethod
    def prepare(cls):
        cls.work = os.path.join(cls.tmp, "work")
        os.mkdir(cls.work)
        cls.state = os.path.join(cls.tmp, "state")
        os.mkdir(cls.state)
        os.makedirs(os.path.join(cls.tmp, "audit"))
        cls.audit = Audit(os.path.join(cls.tmp, "audit"))
        cls.name = f"hvp-tq-pol4-{os.getpid()}"
        CREATED.append(cls.name)
        cls.g = guestlib.Guest.create(cls.name, paging=4, kaslr=True)

        # What the guest says of itself: the oracles.
        cls.build_id = cls.g.build_id()
        cls.version = cls.g.proc_version()
        entry = cls.g.symbol("version_proc_show")
        etext = cls.g.symbol("_etext")
        cls.entry, cls.etext = entry, etext
        cls.page_vas = sorted({entry & ~0xfff, (entry + 15) & ~0xfff, etext & ~0xfff})
        cls.pages = []                                  # guest-physical pages to watch
        for va in cls.page_vas:
            gpa = cls.g.gva2gpa(va)
            if gpa is None:
                raise guestlib.GuestError(f"{va:#x} unmapped according to QEMU")
            cls.pages.append(gpa & ~0xfff)

        # Keys: the trusted one, a second trusted one, an untrusted one.
        for k in ("rel", "lab", "evil"):
            cls.minisign("-G", "-W", "-p", f"{k}.pub", "-s", f"{k}.key")
        # Bundles: sequence 1 and 2 for the running kernel, one for another build.
        other = cls.build_id[::-1] if cls.build_id[::-1] != cls.build_id else "ab" * 20
        for sub, seq, bid in (("s1", 1, cls.build_id), ("s2", 2, cls.build_id), ("other", 1, other)):
            subprocess.run([BUILD_DEMO, "--build-id", bid, "--sequence", str(seq), "-o", cls.path(sub)],
                           check=True, stdout=subprocess.DEVNULL, env=dict(os.environ, HVPATCH=hvpatch_exe()))
            cls.minisign("-S", "-s", "rel.key", "-m", f"{sub}/demo-version.hvp", "-t", f"demo {sub} seq {seq}")
        cls.s1 = cls.path("s1/demo-version.hvp")
        cls.s2 = cls.path("s2/demo-version.hvp")
        with open(cls.s1, "rb") as f:
            cls.s1_bytes = f.read()
        with open(cls.s1 + ".minisig", "rb") as f:
            cls.s1_sig = f.read()
        cls.policy("good.xml")
        cls.initial = cls.snapshot()

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.name:
                guestlib.Guest(cls.name).destroy()      # absent: fine
        finally:
            if cls.audit:
                cls.audit.close()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    # -- helpers ---------------------------------------------------------------
    @classmethod
    def path(cls, rel):
        return os.path.join(cls.work, rel)

    @classmethod
    def minisign(cls, *args):
        subprocess.run(["minisign"] + list(args), cwd=cls.work, check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    @classmethod
    def policy(cls, name, require='uefi="yes"', window="<window/>", baselines=None, keys=None, select=None):
        """Write a policy (docs/policy.md) into the work folder; returns its path."""
        if baselines is None:
            baselines = f'<baseline name="current-6.1" current="yes"><kernel build-id="{cls.build_id}"/></baseline>'
        if keys is None:
            keys = '<key name="rel"><public-key-file>rel.pub</public-key-file><may-sign series="demo-*"/></key>'
        text = f'''<?xml version="1.0"?>
<policy version="1">
  {keys}
  <group name="other"><select name="hvp-tq-nobody-*"/><window/>
    <baseline name="x" current="yes"><kernel build-id="0000000000000000"/></baseline></group>
  <group name="tq-live">
    <select name="{select or cls.name}"/>
    <require {require}/>
    {window}
    {baselines}
  </group>
</policy>
'''
        p = cls.path(name)
        with open(p, "w") as f:
            f.write(text)
        return p

    @classmethod
    def snapshot(cls):
        """The watched guest-physical pages, read by QEMU (HMP xp), not by hvpatch."""
        return [hmp_bytes(cls.g.hmp("xp /512xg 0x%x" % gpa)) for gpa in cls.pages]

    def hv(self, *args, policy="good.xml", json_out=False):
        """Run hvpatch (in the audit namespace). Returns (rc, stdout, stderr, audit lines)."""
        argv = [hvpatch_exe()] + (["--json"] if json_out else [])
        if policy:
            argv += ["--policy", self.path(policy)]
        argv += [str(a) for a in args]
        env = dict(os.environ, HVPATCH_STATE_DIR=self.state, HVP_AUDIT_DIR=self.audit.dir)
        self.audit.drain()
        p = subprocess.run(self.audit.wrap(argv), cwd=self.work, env=env, capture_output=True, text=True,
                           timeout=180)
        return p.returncode, p.stdout, p.stderr, [a for a in self.audit.drain() if "hvpatch-audit" in a]

    def hvj(self, *args, policy="good.xml"):
        rc, out, err, audit = self.hv(*args, policy=policy, json_out=True)
        try:
            return rc, guestlib.validate_json(json.loads(out), args), audit
        except ValueError:
            self.fail(f"hvpatch {' '.join(map(str, args))}: not one JSON document (exit {rc}): {out!r} {err!r}")

    def assert_restored(self, what):
        """Every watched byte as at the start, but retired patch-area code (status lists it:
        a revert leaves it in place), which must still hold code, not the filler."""
        retired = [(self.g.gva2gpa(int(r["va"], 16)), r["len"])
                   for a in self.status()["areas"] for r in a["retired"]]
        now = self.snapshot()
        for page, before, after in zip(self.pages, self.initial, now):
            diff = [i for i in range(len(before)) if before[i] != after[i]
                    and not any(gpa <= page + i < gpa + n for gpa, n in retired)]
            self.assertEqual(diff[:8], [], f"{what}: page 0x{page:x} not restored at these offsets")
        for gpa, n in retired:
            page = gpa & ~0xfff
            if page in self.pages and gpa + n <= page + 0x1000:
                code = now[self.pages.index(page)][gpa - page:gpa - page + n]
                self.assertGreater(len(set(code)), 1, f"{what}: retired code at gpa 0x{gpa:x} was erased")

    def status(self, policy="good.xml"):
        rc, st, _ = self.hvj("status", self.name, policy=policy)
        self.assertEqual(rc, 0, st)
        return st

    def setUp(self):
        # Every test starts with nothing applied (a failed test may have left something).
        st = self.status()
        for p in st["patches"]:
            self.hv("revert", self.name, p["id"], policy=None)
        if st["patches"]:
            self.assertEqual(self.status()["patches"], [])

    def assert_audit(self, lines, action, result, *words):
        self.assertEqual(len(lines), 1, f"want one audit line, got {lines}")
        line = lines[0]
        self.assertRegex(line, r"^<\d+>")                       # a syslog datagram
        self.assertIn("hvpatch", line.split("hvpatch-audit")[0])  # ident
        self.assertIn(f"action={action} ", line)
        self.assertIn(f'domain="{self.name}"', line)
        self.assertIn(f"result={result}", line)
        for w in words:
            self.assertIn(w, line)

    def assert_refused(self, bundle, *reason_words, policy="good.xml", applied=(), audit=True):
        """apply and check refuse with exit 3 and the reason; zero bytes written; audited."""
        before = self.snapshot()
        rc, out, err, lines = self.hv("apply", self.name, bundle, policy=policy)
        self.assertEqual(rc, 3, f"apply exit {rc}: {out} {err}")
        for w in reason_words:
            self.assertIn(w, err)
        self.assertEqual(out, "")
        if audit:
            self.assert_audit(lines, "refuse", "error", reason_words[0])
        rc, res, _ = self.hvj("check", self.name, bundle, policy=policy)
        self.assertEqual(rc, 3, res)
        self.assertFalse(res["would_apply"])
        text = " | ".join(r["reason"] for r in res["reasons"])
        for w in reason_words:
            self.assertIn(w, text)
        after = self.snapshot()
        for i, (a, b) in enumerate(zip(before, after)):
            self.assertEqual(a, b, f"guest page {self.pages[i]:#x} changed by a refused apply")
        st = self.status()
        self.assertEqual([(p["series"], p["seq"]) for p in st["patches"]], list(applied))
        return res

    def bad_copy(self, name, data=None, sig=None):
        """A copy of bundle s1 (or data) with its signature (or sig: None keeps it, b"" drops it)."""
        p = self.path(f"bad/{name}.hvp")
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(self.s1_bytes if data is None else data)
        if sig != b"":
            with open(p + ".minisig", "wb") as f:
                f.write(self.s1_sig if sig is None else sig)
        return p

    # -- the eligible path -------------------------------------------------------
    def test_eligible_apply_status_revert(self):
        self.assertNotIn(MARKER, self.g.proc_version())
        self.assert_restored("before the test")

        # verify (no guest) reads the manifest from the signed bytes
        rc, v, _ = self.hvj("verify", self.s1, policy="good.xml")
        self.assertEqual(rc, 0, v)
        self.assertEqual((v["key_name"], v["trusted_comment"]), ("rel", "demo s1 seq 1"))
        self.assertEqual((v["patch_id"], v["series"], v["sequence"]), ("demo-version-1", "demo-version", 1))
        self.assertEqual(v["target_build_id"], self.build_id)
        self.assertEqual([(s["kind"], s["symbol"]) for s in v["sites"]], [("redirect", "version_proc_show")])

        rc, c, _ = self.hvj("check", self.name, self.s1)
        self.assertEqual(rc, 0, c)
        self.assertTrue(c["would_apply"])
        self.assertEqual(c["reasons"], [])
        self.assertEqual(c["key"], "rel")

        rc, out, err, lines = self.hv("apply", self.name, self.s1)
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"pause window: \d+\.\d+ ms")
        self.assert_audit(lines, "apply", "ok", 'bundle="demo-version-1"', "seq=1", 'key="rel"', "pause_ms=")
        self.assertEqual(self.g.proc_version(), self.version + MARKER)
        # the watched pages are where the writes went: the entry page and the slack page
        after = self.snapshot()
        changed = {self.page_vas[i] for i in range(len(after)) if after[i] != self.initial[i]}
        self.assertEqual(changed, {self.entry & ~0xfff, self.etext & ~0xfff})

        st = self.status()
        self.assertEqual(st["build_id"], self.build_id)
        comp = st["compliance"]
        self.assertEqual((comp["verdict"], comp["group"], comp["baseline"]), ("compliant", "tq-live", "current-6.1"))
        self.assertFalse(comp["reboot_required"])
        self.assertEqual([(p["id"], p["series"], p["seq"], p["key"], p["state"]) for p in st["patches"]],
                         [("demo-version-1", "demo-version", 1, "rel", "applied")])
        for w in st["patches"][0]["writes"]:
            va = int(w["va"], 16)
            if w["kind"] == "site":
                self.assertTrue(self.entry <= va < self.entry + 16, w)
            else:
                self.assertTrue(self.etext <= va and va + w["len"] <= (self.etext | 0xfff) + 1, w)

        rc, out, err, lines = self.hv("revert", self.name, "demo-version-1")
        self.assertEqual(rc, 0, err)
        self.assert_audit(lines, "revert", "ok", 'bundle="demo-version-1"')
        self.assertEqual(self.g.proc_version(), self.version)
        self.assert_restored("revert")
        self.assertEqual(self.status()["patches"], [])

    def test_sequence_newer_replaces_older_refused(self):
        rc, out, err, lines = self.hv("apply", self.name, self.s2)
        self.assertEqual(rc, 0, err)
        self.assert_audit(lines, "apply", "ok", 'bundle="demo-version-2"', "seq=2")
        self.assertEqual(self.g.proc_version(), self.version + MARKER)
        applied = [("demo-version", 2)]
        self.assert_refused(self.s1, "older than the applied 2", "no rollback", applied=applied)
        self.assert_refused(self.s2, "already applied", applied=applied)
        self.assertEqual(self.g.proc_version(), self.version + MARKER)
        rc, _, err, _ = self.hv("revert", self.name, "demo-version-2")
        self.assertEqual(rc, 0, err)
        self.assert_restored("revert of the cumulative patch")

    # -- signatures ----------------------------------------------------------------
    def test_unsigned(self):
        self.assert_refused(self.bad_copy("unsigned", sig=b""), "not signed")

    def test_untrusted_key(self):
        p = self.bad_copy("evil", sig=b"")
        self.minisign("-S", "-s", "evil.key", "-m", p)
        self.assert_refused(p, "not a trusted key")

    def test_bundle_changed_after_signing(self):
        where = container_offsets(self.s1_bytes)
        man_off, man_size = where["manifest"]
        pay_off, pay_size = where["payload"]
        positions = {"header": where["header"], "table": where["table"],
                     "manifest": man_off + man_size // 2, "payload": pay_off + pay_size // 2,
                     "last-byte": len(self.s1_bytes) - 1}
        for label, pos in positions.items():
            with self.subTest(flip=label, offset=pos):
                data = bytearray(self.s1_bytes)
                data[pos] ^= 0x10
                self.assert_refused(self.bad_copy(f"flip-{label}", data=bytes(data)),
                                    "signature over the file does not verify")

    def test_signature_file_truncated_or_padded(self):
        cases = {"half": self.s1_sig[:len(self.s1_sig) // 2], "minus5": self.s1_sig[:-5],
                 "empty": b"", "extra-line": self.s1_sig + b"\ngarbage\n", "nul-pad": self.s1_sig + b"\0" * 32,
                 "dup": self.s1_sig + b"\n" + self.s1_sig}
        for label, sig in cases.items():
            with self.subTest(sig=label):
                p = self.bad_copy(f"sig-{label}")
                with open(p + ".minisig", "wb") as f:
                    f.write(sig)
                self.assert_refused(p, "signature refused")

    def test_trusted_comment_edited(self):
        lines = self.s1_sig.split(b"\n")
        self.assertTrue(lines[2].startswith(b"trusted comment: "))
        lines[2] = lines[2] + b" (approved)"
        self.assert_refused(self.bad_copy("tc", sig=b"\n".join(lines)), "trusted comment does not verify")

    def test_key_id_changed(self):
        lines = self.s1_sig.split(b"\n")
        raw = bytearray(base64.b64decode(lines[1]))
        self.assertEqual(len(raw), 74)
        with open(self.path("lab.pub"), "rb") as f:
            lab_id = base64.b64decode(f.read().split(b"\n")[1])[2:10]
        for label, key_id, words in (("unknown", bytes([raw[2] ^ 1]) + bytes(raw[3:10]), "not a trusted key"),
                                     ("other-trusted", lab_id, "signature over the file does not verify")):
            with self.subTest(key_id=label):
                raw2 = bytearray(raw)
                raw2[2:10] = key_id
                lines2 = list(lines)
                lines2[1] = base64.b64encode(bytes(raw2))
                keys = ('<key name="rel"><public-key-file>rel.pub</public-key-file><may-sign series="*"/></key>'
                        '<key name="lab"><public-key-file>lab.pub</public-key-file><may-sign series="*"/></key>')
                self.policy("two-keys.xml", keys=keys)
                self.assert_refused(self.bad_copy(f"keyid-{label}", sig=b"\n".join(lines2)), words,
                                    policy="two-keys.xml")

    # -- policy ------------------------------------------------------------------------
    def test_policy_fails_schema(self):
        self.policy("schema.xml", require='uefi="maybe"')
        self.assert_refused(self.s1, "unusable policy", "fails the schema", policy="schema.xml")
        # a policy missing its required <window> fails too
        self.policy("nowindow.xml", window="")
        self.assert_refused(self.s1, "unusable policy", policy="nowindow.xml")

    def test_bundle_for_another_build(self):
        self.assert_refused(self.path("other/demo-version.hvp"), "built for kernel", self.build_id)

    def test_outside_window(self):
        # a whole day two days from now (UTC): now is outside it whatever the hour
        day = weekday_in(2)
        self.policy("closed.xml", window=f'<window days="{day}" tz="UTC"/>')
        self.assert_refused(self.s1, "outside every maintenance window", policy="closed.xml")

    def test_guest_not_eligible_secure_boot(self):
        xml = guestlib._check(guestlib.VIRSH + ["dumpxml", self.name], 30, "dumpxml")
        self.assertRegex(xml, r"<loader[^>]*secure=.no.")    # the premise: no Secure Boot
        self.policy("sb.xml", require='uefi="yes" secure-boot="yes"')
        self.assert_refused(self.s1, "requires Secure Boot", policy="sb.xml")
        self.assertEqual(self.status(policy="sb.xml")["compliance"]["verdict"], "refuse")

    def test_outdated_baseline_reboot_required(self):
        newer = "5a" * 20
        self.policy("outdated.xml", baselines=(
            f'<baseline name="2026-12" current="yes"><kernel build-id="{newer}"/></baseline>'
            f'<baseline name="2026-06"><kernel build-id="{self.build_id}"/></baseline>'))
        self.assert_refused(self.s1, "reboot required", policy="outdated.xml")
        rc, out, err, _ = self.hv("check", self.name, self.s1, policy="outdated.xml")
        self.assertEqual(rc, 3)
        self.assertIn("reboot required", out)
        comp = self.status(policy="outdated.xml")["compliance"]
        self.assertEqual((comp["verdict"], comp["baseline"]), ("reboot-required", "2026-06"))
        self.assertTrue(comp["reboot_required"])
        self.assertEqual([r["code"] for r in comp["reasons"]], ["old-baseline"])
        rc, out, _, _ = self.hv("status", self.name, policy="outdated.xml")
        self.assertEqual(rc, 0)
        self.assertIn("REBOOT REQUIRED", out)

    def test_unknown_kernel_unmanaged(self):
        self.policy("unknown.xml", baselines='<baseline name="b" current="yes"><kernel build-id="'
                    + "5a" * 20 + '"/></baseline>')
        self.assert_refused(self.s1, "unmanaged", policy="unknown.xml")
        comp = self.status(policy="unknown.xml")["compliance"]
        self.assertEqual(comp["verdict"], "unmanaged")
        self.assertFalse(comp["reboot_required"])
        # no group selects the guest: unmanaged too
        self.policy("nogroup.xml", select="hvp-tq-elsewhere")
        self.assert_refused(self.s1, "unmanaged", policy="nogroup.xml")

    def test_check_lists_every_reason(self):
        p = self.bad_copy("evil-closed", sig=b"")
        self.minisign("-S", "-s", "evil.key", "-m", p)
        day = weekday_in(3)
        self.policy("closed-sb.xml", window=f'<window days="{day}"/>', require='uefi="yes" secure-boot="yes"')
        res = self.assert_refused(p, "not a trusted key", policy="closed-sb.xml")
        stages = [r["stage"] for r in res["reasons"]]
        codes = [r.get("code") for r in res["reasons"]]
        self.assertIn("signature", stages)
        self.assertIn("outside-window", codes)
        self.assertIn("no-secure-boot", codes)
        self.assertGreaterEqual(len(res["reasons"]), 3, res["reasons"])


def main():
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    try:
        result = unittest.TextTestRunner(verbosity=2).run(suite)
    finally:
        for name in CREATED:
            try:
                guestlib.Guest(name).destroy()      # no-op when already gone
            except guestlib.GuestError as e:
                print(f"cleanup: {e}", file=sys.stderr)
    # a test with several failing subtests counts once
    failed_ids = {getattr(t, "test_case", t).id() for t, _ in result.failures + result.errors}
    failed = len(failed_ids)
    skipped = len(result.skipped)
    passed = max(result.testsRun - failed - skipped, 0)
    if result.testsRun == 0 and failed == 0:
        failed = 1
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 1 if failed or skipped else 0


if __name__ == "__main__":
    sys.exit(main())

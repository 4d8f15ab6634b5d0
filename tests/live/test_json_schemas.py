#!/usr/bin/env python3
"""Every --json document of hvpatch, on a real guest, against docs/schemas/.

One guest (4-level paging, KASLR), shared by every case. Keys and signatures are made by
the real minisign; the bundles come from images/demo/build-demo.sh for the build id the
guest reports. Each command of cli/main.c runs with --json at least once, successes and
failures alike: introspection (inspect, symbols, translate with an address that does not
translate, read, disasm, ps, dmesg), verify, pack, version, check (would apply; would not,
with the policy's reason codes), apply (applied with the health gate; refused by policy:
the error document), status, revert, recover, rollout (JSON lines), plan and sync with a
catalog (dry run and real), report, bad list and clear, area show, daemon-status (no
daemon: the error document; then an hvpatchd scoped to this guest with --domains) and
an unknown domain. guestlib's hvpatch(json=True) validates each document against the
schema its "schema" field names (jsonschemas.py); rollout's lines and the daemon's status
go through guestlib.validate_json_lines / validate_json here.

The last case asserts that every docs/schemas/*.schema.json was exercised by at least one
validated document (so that no schema rots), and that documents with a field taken away
or of the wrong type do not validate (the validator bites).

    python3 tests/live/test_json_schemas.py     # last line: "N passed, M failed"

Environment: HVPATCH, HVPATCHD (binaries, default build/cli/hvpatch, build/daemon/hvpatchd),
HVP_KERNEL_DIR, HVP_GUEST_DIR, CC. Needs root, libvirt, minisign and the jsonschema
module of the python3 that runs it (it fails, not skips, without them).
"""

import copy
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
import jsonschemas  # noqa: E402

REPO = guestlib.REPO
HVPATCH = guestlib.hvpatch_exe()
HVPATCHD = guestlib.hvpatchd_exe()


def setUpModule():
    if os.geteuid() != 0:
        raise RuntimeError("live schema test needs root (libvirt qemu:///system)")
    for tool in ("minisign", "virsh", os.environ.get("CC", "gcc")):
        if not shutil.which(tool):
            raise RuntimeError(f"{tool} not found (images/setup-host.sh installs it)")
    for b in (HVPATCH, HVPATCHD):
        if not os.access(b, os.X_OK):
            raise RuntimeError(f"{b} not built (build it, or set HVPATCH / HVPATCHD)")
    try:
        import jsonschema  # noqa: F401
    except ImportError:
        raise RuntimeError(f"no jsonschema module for {sys.executable}: this test validates with it "
                           "(apt-get install python3-jsonschema)") from None
    subprocess.run([os.path.join(REPO, "images", "setup-host.sh")], check=True, stdout=subprocess.DEVNULL)


class JsonSchemas(unittest.TestCase):
    name = None

    @classmethod
    def setUpClass(cls):
        # $HVPATCH_STATE_DIR points at its state/ for every hvpatch of this test
        cls.ws = guestlib.Workspace("hvp-schemas12.", set_state_env=True)
        cls.tmp, cls.work, cls.state, cls.catalog = cls.ws.root, cls.ws.work, cls.ws.state, cls.ws.catalog
        try:
            cls.prepare()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def prepare(cls):
        cls.name = f"hvp-schemas12-{os.getpid()}"
        cls.g, = guestlib.boot_guests([cls.name], paging=4, kaslr=True)
        cls.build_id = cls.g.build_id()
        cls.version_va = cls.g.symbol("version_proc_show")

        cls.good = guestlib.demo_bundle(cls.build_id, os.path.join(cls.work, "s1"), sequence=1)
        s2 = guestlib.demo_bundle(cls.build_id, os.path.join(cls.work, "s2"), sequence=2)
        cls.manifest = os.path.join(cls.work, "s1", "manifest.xml")
        _, rel = guestlib.minisign_keypair(cls.work, "rel")
        _, other = guestlib.minisign_keypair(cls.work, "other")
        guestlib.minisign_sign(rel, cls.good, "good")
        cls.foreign = os.path.join(cls.work, "foreign.hvp")
        shutil.copy(cls.good, cls.foreign)
        guestlib.minisign_sign(other, cls.foreign, "signed by a key the policy does not know")
        seq2 = os.path.join(cls.catalog, "v2.hvp")
        shutil.copy(s2, seq2)
        guestlib.minisign_sign(rel, seq2, "v2")
        with open(os.path.join(cls.catalog, "broken.hvp"), "wb") as f:
            f.write(b"not a bundle")

        key = guestlib.policy_key("rel", "rel.pub", "demo-*")
        cls.policy = guestlib.write_policy(os.path.join(cls.work, "policy.xml"), key,
                                           guestlib.policy_group("schemas12", cls.name, cls.build_id))
        cls.nogroup = guestlib.write_policy(os.path.join(cls.work, "nogroup.xml"), key)

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.name:
                guestlib.Guest(cls.name).destroy()
        finally:
            cls.ws.cleanup()

    def hv(self, *args, rc=0, policy=True, timeout=600):
        """hvpatch --json [--policy POLICY] ARGS, validated by guestlib; the exit code must be rc."""
        pre = ["--policy", self.policy] if policy is True else ["--policy", policy] if policy else []
        got, doc = guestlib.hvpatch(*pre, *args, timeout=timeout)
        self.assertEqual(got, rc, f"hvpatch {' '.join(map(str, args))}: {json.dumps(doc)[:1500]}")
        return doc

    def error_doc(self, doc, code):
        self.assertEqual(doc["schema"], "urn:hvpatch:error:1", doc)
        self.assertEqual(doc["code"], code, doc)

    # -- the cases ---------------------------------------------------------------
    def test_1_introspection(self):
        doc = self.hv("inspect", self.name)
        self.assertEqual(doc["schema"], "urn:hvpatch:inspect:1")
        self.assertEqual(doc["kernel"]["build_id"], self.build_id)
        syms = self.hv("symbols", self.name, "^version_proc_show$")
        self.assertEqual([int(s["addr"], 16) for s in syms], [self.version_va])
        tr = self.hv("translate", self.name, hex(self.version_va), "0x10")
        self.assertIsNotNone(tr[0]["pa"])
        self.assertIsNone(tr[1]["pa"], tr)      # the null page does not translate: pa null, error
        self.assertIn("error", tr[1])
        rd = self.hv("read", self.name, "version_proc_show", 16)
        self.assertEqual(len(rd["hex"]), 32)
        self.assertTrue(self.hv("disasm", self.name, "version_proc_show", 32))
        self.assertTrue(any(t["pid"] == 1 for t in self.hv("ps", self.name)))
        self.assertTrue(self.hv("dmesg", self.name))

    def test_2_bundles_and_version(self):
        v = self.hv("verify", self.good)
        self.assertEqual(v["patch_id"], "demo-version-1")
        p = self.hv("pack", self.manifest, "-o", os.path.join(self.work, "repacked.hvp"), policy=False)
        self.assertEqual(p["id"], "demo-version-1")
        self.error_doc(self.hv("verify", self.foreign, rc=3), 3)
        self.assertTrue(self.hv("version", policy=False)["version"])
        self.error_doc(self.hv("status", f"no-such-domain-{os.getpid()}", rc=1, policy=False), 1)
        self.error_doc(self.hv("no-such-command", rc=2, policy=False), 2)

    def test_3_check_and_refusals(self):
        ok = self.hv("check", self.name, self.good)
        self.assertTrue(ok["would_apply"], ok)
        no = self.hv("check", self.name, self.good, rc=3, policy=self.nogroup)
        self.assertFalse(no["would_apply"])
        self.assertIn("no-group", [r.get("code") for r in no["reasons"]], no)
        self.error_doc(self.hv("apply", self.name, self.foreign, rc=3), 3)

    def test_4_apply_status_revert_recover(self):
        doc = self.hv("apply", "--health", 2, self.name, self.good)
        self.assertEqual(doc["patch_id"], "demo-version-1")
        self.assertEqual(doc["health"]["result"], "pass", doc)
        st = self.hv("status", self.name)
        self.assertEqual([(p["id"], p["state"]) for p in st["patches"]], [("demo-version-1", "applied")])
        again = self.hv("check", self.name, self.good, rc=3)
        self.assertFalse(again["would_apply"])
        rv = self.hv("revert", self.name, "demo-version-1")
        self.assertEqual(rv["reverted"], "demo-version-1")
        rec = self.hv("recover", self.name)
        self.assertFalse(rec["recovered"], rec)

    def test_5_rollout_json_lines(self):
        argv = [HVPATCH, "--policy", self.policy, "rollout", "--json", "--domains", self.name,
                "--rings", "1", "--state", os.path.join(self.work, "rollout-state"), self.good]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=900)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        events = guestlib.validate_json_lines(p.stdout)
        self.assertEqual([e["event"] for e in events], ["ring-start", "guest", "ring-end", "summary"], events)
        self.assertEqual(events[1]["status"], "done", events)
        # a failure before the rollout starts: the error document
        p = subprocess.run([HVPATCH, "--policy", self.policy, "rollout", "--json", "--domains",
                            f"no-such-{os.getpid()}-*", self.good], capture_output=True, text=True, timeout=300)
        self.assertNotEqual(p.returncode, 0)
        self.error_doc(guestlib.validate_json_lines(p.stdout)[0], p.returncode)

    def test_6_plan_sync(self):
        plan = self.hv("plan", "--catalog", self.catalog, self.name)
        self.assertEqual([(s["series"], s["action"]) for s in plan["series"]], [("demo-version", "replace")], plan)
        self.assertEqual(len(plan["catalog_errors"]), 1, plan)
        dry = self.hv("sync", "--catalog", self.catalog, "--dry-run", self.name)
        self.assertEqual(dry["domains"][0]["steps"][0]["result"], "dry-run", dry)
        done = self.hv("sync", "--catalog", self.catalog, self.name)
        self.assertEqual(done["domains"][0]["steps"][0]["result"], "applied", done)

    def test_7_report_bad_area(self):
        rep = self.hv("report", "--domains", self.name)
        self.assertEqual([r["domain"] for r in rep["domains"]], [self.name])
        self.assertEqual(self.hv("bad", "list", policy=False), [])
        self.assertEqual(self.hv("bad", "clear", "--all", policy=False)["cleared"], 0)
        area = self.hv("area", "show", self.name, policy=False)
        self.assertEqual(area["action"], "show")

    def test_8_daemon_status(self):
        sock = os.path.join(self.work, "hvpatchd.sock")
        self.error_doc(self.hv("daemon-status", "--socket", sock, rc=1, policy=False), 1)
        log = open(os.path.join(self.work, "hvpatchd.log"), "a")
        d = subprocess.Popen([HVPATCHD, "--domains", self.name, "--catalog", self.catalog, "--policy", self.policy,
                              "--state-dir", self.state, "--socket", sock, "--verify-interval", "3"],
                             stdout=log, stderr=log)
        try:
            doc, t0 = None, time.monotonic()
            while time.monotonic() - t0 < 120:
                self.assertIsNone(d.poll(), "hvpatchd exited")
                p = subprocess.run([HVPATCH, "--json", "daemon-status", "--socket", sock], capture_output=True,
                                   text=True, timeout=30)
                if p.returncode == 0:
                    doc = guestlib.validate_json(json.loads(p.stdout), ["daemon-status"])
                    if doc["domains"]:
                        break
                time.sleep(1)
            self.assertIsNotNone(doc, "hvpatchd never answered")
            self.assertEqual([x["domain"] for x in doc["domains"]], [self.name], doc)
        finally:
            d.send_signal(signal.SIGTERM)
            try:
                d.wait(60)
            except subprocess.TimeoutExpired:
                d.kill()
                d.wait()
            log.close()

    def test_9_every_schema_exercised_and_the_validator_bites(self):
        seen = jsonschemas.seen()
        missing = sorted(set(jsonschemas.document_ids()) - seen)
        self.assertFalse(missing, f"schema files no document of this test exercised: {missing}")

        st = self.hv("status", self.name)
        for what, bad in (("patches removed", {k: v for k, v in st.items() if k != "patches"}),
                          ("kernel_base not an address", dict(st, kernel_base="0XFFFF")),
                          ("interrupted a string", dict(st, interrupted="no")),
                          ("a patch state outside the enum", self.with_patch_state(st, "half-applied")),
                          ("schema of another major", dict(st, schema="urn:hvpatch:status:2"))):
            with self.assertRaises(AssertionError, msg=what):
                guestlib.validate_json(bad, ["status"])
        guestlib.validate_json(st, ["status"])      # and the original still does

    @staticmethod
    def with_patch_state(st, state):
        st = copy.deepcopy(st)
        st["patches"][0]["state"] = state
        return st


def main():
    result = unittest.TextTestRunner(verbosity=2).run(unittest.defaultTestLoader.loadTestsFromModule(
        sys.modules[__name__]))
    return guestlib.summary(result)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The hvpatch.hvpatch Ansible collection (ansible/) without guests.

  * ansible-doc renders every module (DOCUMENTATION, EXAMPLES, RETURN parse);
  * the modules' decisions and errors against a stand-in hvpatch (a script that
    answers each command with a canned JSON document and logs its command lines):
    the documents without "schema" (hvpatch before the field) are read, schema
    major 1 is read, major 2 and a malformed schema fail clearly; a missing
    binary, output that is not JSON, and an error document with its exit code
    fail with hvpatch's own words and the code's meaning; hvpatch_patch
    changes nothing and never runs apply when status shows the bundle's patch
    applied, runs check (never apply) in check mode, and fails a refusal with
    every reason check gives.

The live test (tests/live/test_ansible.py) runs the same modules over real SSH
against real guests and the real hvpatch.

    python3 tests/unit/test_ansible_collection.py   # last line: "N passed, M failed"

Needs ansible (images/setup-host.sh installs it); without it the test is skipped
(exit 77), under CI=true it fails.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
COLLECTION = os.path.join(REPO, "ansible")
MODULES = ["hvpatch_patch", "hvpatch_facts", "hvpatch_sync", "hvpatch_rollout"]

# The stand-in: answers "hvpatch --json [-c URI] [--policy P] COMMAND ..." from the
# scenario file ($FAKE_SCENARIO: {COMMAND: {"rc": N, "out": "..."}}), logs argv.
FAKE = r'''#!/usr/bin/python3
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps(args) + "\n")
rest = [a for a in args if a != "--json"]
while rest and rest[0] in ("-c", "--policy"):
    rest = rest[2:]
with open(os.environ["FAKE_SCENARIO"]) as f:
    sc = json.load(f)
a = sc.get(rest[0] if rest else "", {"rc": 2, "out": json.dumps({"error": "unexpected", "code": 2})})
sys.stdout.write(a["out"])
sys.exit(a["rc"])
'''


PYTHON = None       # the interpreter ansible is installed for (its scripts' #! line)


def setUpModule():
    global PYTHON
    exe = shutil.which("ansible-doc")
    if not exe:
        raise unittest.SkipTest("ansible not installed (images/setup-host.sh installs it)")
    with open(exe) as f:
        line = f.readline()
    PYTHON = line[2:].split()[0] if line.startswith("#!") else "/usr/bin/python3"


class Collection(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hvp-ansible-unit.")
        ns = os.path.join(cls.tmp, "ansible_collections", "hvpatch")
        os.makedirs(ns)
        os.symlink(COLLECTION, os.path.join(ns, "hvpatch"))
        cls.fake = os.path.join(cls.tmp, "hvpatch")
        with open(cls.fake, "w") as f:
            f.write(FAKE)
        os.chmod(cls.fake, 0o755)
        cls.log = os.path.join(cls.tmp, "log")
        cls.scenario = os.path.join(cls.tmp, "scenario.json")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def env(self):
        return dict(os.environ, ANSIBLE_COLLECTIONS_PATH=self.tmp, PYTHONPATH=self.tmp,
                    FAKE_LOG=self.log, FAKE_SCENARIO=self.scenario, ANSIBLE_NOCOLOR="1")

    def module(self, name, scenario, check_mode=False, **params):
        """Run one module as Ansible would (args file); returns (result, commands hvpatch got)."""
        with open(self.scenario, "w") as f:
            json.dump({k: {"rc": v[0], "out": v[1] if isinstance(v[1], str) else json.dumps(v[1])}
                       for k, v in scenario.items()}, f)
        open(self.log, "w").close()
        params.setdefault("hvpatch", self.fake)
        args = dict(params, _ansible_check_mode=check_mode)
        argfile = os.path.join(self.tmp, "args.json")
        with open(argfile, "w") as f:
            json.dump({"ANSIBLE_MODULE_ARGS": args}, f)
        p = subprocess.run([PYTHON, os.path.join(COLLECTION, "plugins", "modules", name + ".py"), argfile],
                           capture_output=True, text=True, env=self.env(), timeout=60)
        try:
            res = json.loads(p.stdout)
        except ValueError:
            self.fail(f"{name}: no JSON result: {p.stdout!r} {p.stderr!r}")
        with open(self.log) as f:
            calls = [json.loads(line) for line in f]
        return res, calls

    # -- ansible-doc -----------------------------------------------------------
    def test_ansible_doc_renders_every_module(self):
        p = subprocess.run(["ansible-doc", "-l", "hvpatch.hvpatch"], capture_output=True, text=True,
                           env=self.env(), timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        for m in MODULES:
            self.assertIn("hvpatch.hvpatch." + m, p.stdout)
            d = subprocess.run(["ansible-doc", "hvpatch.hvpatch." + m], capture_output=True, text=True,
                               env=self.env(), timeout=120)
            self.assertEqual(d.returncode, 0, f"{m}: {d.stderr}")
            self.assertNotIn("ERROR", d.stderr, m)
            for section in ("OPTIONS", "EXAMPLES", "RETURN VALUES", "- hvpatch\n", "- policy\n"):
                self.assertIn(section, d.stdout, f"{m}: no {section!r}")
            j = subprocess.run(["ansible-doc", "--json", "hvpatch.hvpatch." + m], capture_output=True, text=True,
                               env=self.env(), timeout=120)
            doc = json.loads(j.stdout)["hvpatch.hvpatch." + m]
            self.assertTrue(doc["doc"]["description"], m)
            self.assertTrue(doc["examples"].strip(), m)
            self.assertTrue(doc["return"], m)

    # -- errors ------------------------------------------------------------------
    def test_missing_binary(self):
        res, _ = self.module("hvpatch_facts", {}, hvpatch=os.path.join(self.tmp, "no-such-hvpatch"))
        self.assertTrue(res.get("failed"), res)
        self.assertIn("hvpatch binary not found", res["msg"])
        res, _ = self.module("hvpatch_facts", {}, hvpatch="hvpatch-not-in-path-xyz")
        self.assertTrue(res.get("failed"), res)
        self.assertIn("not found in PATH", res["msg"])

    def test_output_not_json(self):
        res, _ = self.module("hvpatch_facts", {"report": (0, "domain  state\nweb-1 running\n")})
        self.assertTrue(res.get("failed"), res)
        self.assertIn("not JSON", res["msg"])

    def test_error_document_and_exit_code(self):
        res, _ = self.module("hvpatch_patch", {"verify": (1, {"error": "demo.hvp: No such file or directory",
                                                               "code": 1})},
                             bundle="/x/demo.hvp", state="absent", domains=["web-1"])
        self.assertTrue(res.get("failed"), res)
        self.assertIn("demo.hvp: No such file or directory", res["msg"])
        self.assertEqual((res["rc"], res["exit_meaning"]), (1, "error"))

    def test_schema_major(self):
        report = {"host": "h", "domains": [], "counts": {}, "exit_code": 0}
        for schema, ok in ((None, True), ("urn:hvpatch:report:1", True), ("urn:hvpatch:report:2", False),
                           ("hvpatch-report-v1", False)):
            doc = dict(report) if schema is None else dict(report, schema=schema)
            res, _ = self.module("hvpatch_facts", {"report": (0, doc)})
            if ok:
                self.assertFalse(res.get("failed"), res)
                self.assertEqual(res["ansible_facts"]["hvpatch"]["host"], "h")
            else:
                self.assertTrue(res.get("failed"), (schema, res))
                self.assertIn(schema, res["msg"])
        res, _ = self.module("hvpatch_facts", {"report": (1, {"schema": "urn:hvpatch:error:2", "error": "x",
                                                               "code": 1})})
        self.assertIn("major version 2", res["msg"])

    # -- hvpatch_patch's decisions ---------------------------------------------------
    VERIFY = (0, {"patch_id": "demo-version-1", "series": "demo-version", "sequence": 1})

    def status(self, *patches):
        return (0, {"domain": "web-1", "patches": [{"id": i, "series": s, "seq": q, "state": st}
                                                  for i, s, q, st in patches]})

    def names(self, calls):
        return [[a for a in c if a not in ("--json",)][0] for c in calls]

    def test_present_already_applied_changes_nothing(self):
        res, calls = self.module("hvpatch_patch", {"verify": self.VERIFY, "status": self.status(
            ("demo-version-1", "demo-version", 1, "applied"))}, bundle="/b.hvp", domains=["web-1"])
        self.assertFalse(res.get("failed"), res)
        self.assertFalse(res["changed"])
        self.assertEqual(res["guests"][0]["action"], "already-applied")
        self.assertEqual(self.names(calls), ["verify", "status"])

    def test_present_superseded_and_dropped(self):
        res, calls = self.module("hvpatch_patch", {"verify": self.VERIFY, "status": self.status(
            ("demo-version-2", "demo-version", 2, "applied"))}, bundle="/b.hvp", domains=["web-1"])
        self.assertEqual((res["changed"], res["guests"][0]["action"]), (False, "superseded"), res)
        # a record whose patch is no longer in memory (rebooted) does not count: apply
        res, calls = self.module("hvpatch_patch", {"verify": self.VERIFY, "status": self.status(
            ("demo-version-1", "demo-version", 1, "dropped")), "apply": (0, {"patch_id": "demo-version-1",
                                                                            "pause_ms": 3.5})},
            bundle="/b.hvp", domains=["web-1"], health=5)
        self.assertTrue(res["changed"], res)
        self.assertEqual(res["guests"][0]["pause_ms"], 3.5)
        self.assertEqual(calls[-1][-5:], ["apply", "--health", "5", "web-1", "/b.hvp"])

    def test_check_mode_runs_check_never_apply(self):
        res, calls = self.module("hvpatch_patch", {"verify": self.VERIFY, "status": self.status(),
                                                   "check": (0, {"would_apply": True, "writes": 2, "reasons": []})},
                                 check_mode=True, bundle="/b.hvp", domains=["web-1"])
        self.assertTrue(res["changed"], res)
        self.assertEqual(res["guests"][0]["action"], "would-apply")
        self.assertEqual(self.names(calls), ["verify", "status", "check"])

    def test_refusal_fails_with_every_reason(self):
        reasons = [{"stage": "signature", "reason": "key not trusted", "code": "untrusted-key"},
                   {"stage": "policy", "reason": "outside the maintenance window", "code": "outside-window"}]
        res, calls = self.module("hvpatch_patch", {
            "verify": self.VERIFY, "status": self.status(),
            "apply": (3, {"error": "key not trusted", "code": 3}),
            "check": (3, {"would_apply": False, "reasons": reasons})}, bundle="/b.hvp", domains=["web-1"])
        self.assertTrue(res.get("failed"), res)
        self.assertEqual((res["rc"], res["exit_meaning"]), (3, "refused"))
        self.assertIn("key not trusted", res["msg"])
        self.assertIn("outside the maintenance window (outside-window)", res["msg"])
        self.assertEqual(res["reasons"], reasons)
        self.assertEqual(self.names(calls), ["verify", "status", "apply", "check"])

    def test_absent(self):
        res, calls = self.module("hvpatch_patch", {"verify": self.VERIFY, "status": self.status()},
                                 bundle="/b.hvp", state="absent", domains=["web-1"])
        self.assertEqual((res["changed"], res["guests"][0]["action"]), (False, "not-applied"), res)
        res, calls = self.module("hvpatch_patch", {"status": self.status(
            ("demo-version-1", "demo-version", 1, "applied")), "revert": (0, {"reverted": "demo-version-1",
                                                                            "pause_ms": 2.0})},
            patch_id="demo-version-1", state="absent", domains=["web-1"])
        self.assertTrue(res["changed"], res)
        self.assertEqual(calls[-1][-3:], ["revert", "web-1", "demo-version-1"])

    def test_domains_glob_from_report(self):
        # hvpatch report selects by the globs (--domains), the module keeps the running ones
        rep = {"host": "h", "domains": [{"domain": "web-1", "state": "running"},
                                        {"domain": "web-2", "state": "shut off"}]}
        res, calls = self.module("hvpatch_patch", {"verify": self.VERIFY, "report": (3, rep),
                                                   "status": self.status()},
                                 check_mode=True, bundle="/b.hvp", state="absent", domains=["web-*", "db-?"])
        self.assertEqual(res["domains"], ["web-1"], res)
        self.assertEqual(calls[1][-3:], ["report", "--domains", "web-*,db-?"])
        # a glob with a comma cannot go through --domains: every domain, matched here
        rep["domains"].append({"domain": "db,1", "state": "running"})
        rep["domains"].append({"domain": "x", "state": "running"})
        res, calls = self.module("hvpatch_patch", {"verify": self.VERIFY, "report": (0, rep),
                                                   "status": self.status()},
                                 check_mode=True, bundle="/b.hvp", state="absent", domains=["db,*", "web-?"])
        self.assertEqual(res["domains"], ["db,1", "web-1"], res)
        self.assertEqual(calls[1][-1], "report")

    def test_rollout_changed_and_halt(self):
        lines = [{"event": "ring-start", "ring": 1, "rings": 1, "guests": ["a"]},
                 {"event": "guest", "ring": 1, "domain": "a", "status": "done", "code": None, "exit": 0,
                  "detail": "applied demo-version-1", "pause_ms": 4.0},
                 {"event": "summary", "halted": False, "exit": 0, "counts": {"done": 1}}]
        res, calls = self.module("hvpatch_rollout", {"rollout": (0, "\n".join(json.dumps(x) for x in lines) + "\n")},
                                 bundle="/b.hvp", rings="1,100%", parallel=2)
        self.assertTrue(res["changed"], res)
        self.assertIn("--rings", calls[0])
        lines[1].update(status="failed", code="health", exit=6, pause_ms=None, detail="WARN in the log")
        lines[2].update(halted=True, exit=6)
        res, _ = self.module("hvpatch_rollout", {"rollout": (6, "\n".join(json.dumps(x) for x in lines) + "\n")},
                             bundle="/b.hvp")
        self.assertTrue(res.get("failed"), res)
        self.assertIn("halted", res["msg"])
        self.assertIn("WARN in the log", res["msg"])

    def test_sync_check_mode_is_dry_run(self):
        doc = {"domain": "web-1", "steps": [{"series": "s", "patch_id": "s-1", "action": "apply",
                                             "result": "dry-run"}], "catalog": "/c", "catalog_errors": []}
        res, calls = self.module("hvpatch_sync", {"sync": (0, doc)}, check_mode=True, catalog="/c",
                                 domains=["web-1"])
        self.assertTrue(res["changed"], res)
        self.assertIn("--dry-run", calls[0])
        doc["steps"] = []
        res, calls = self.module("hvpatch_sync", {"sync": (0, doc)}, catalog="/c", domains=["web-1"])
        self.assertFalse(res["changed"], res)
        self.assertNotIn("--dry-run", calls[0])


def main():
    result = unittest.TextTestRunner(verbosity=2).run(unittest.defaultTestLoader.loadTestsFromModule(
        sys.modules[__name__]))
    ci = os.environ.get("CI") == "true"
    bad = len(result.failures) + len(result.errors)
    skipped = len(result.skipped)
    for t, why in result.skipped:
        print(f"SKIPPED: {t.id()}: {why}", file=sys.stderr)
    if ci:
        bad += skipped
        skipped = 0
    print(f"{result.testsRun - bad - skipped} passed, {bad} failed" + (f", {skipped} skipped" if skipped else ""))
    return 1 if bad else (77 if skipped else 0)


if __name__ == "__main__":
    sys.exit(main())

# -*- coding: utf-8 -*-
# Copyright: hvpatch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running `hvpatch --json` for the hvpatch.hvpatch modules.

Every module goes through Hvpatch.run(): the binary is resolved once, the
command line always carries --json, stdout must be one JSON document (or,
for rollout, one per line), and a document that names its schema
("schema": "urn:hvpatch:COMMAND:MAJOR") must be of the major version this
collection was written for. Human output is never parsed. Nothing here
re-implements hvpatch's own work (verify, authorize, plan, write, record):
the modules only decide which hvpatch command to run and read its answer.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import fnmatch
import json
import os
import re

# The major version of hvpatch's --json documents this collection reads.
SCHEMA_MAJOR = 1

# hvpatch's exit codes (README.md, "Exit codes").
EXIT_MEANINGS = {
    0: "ok",
    1: "error",
    2: "usage",
    3: "refused",
    4: "guest busy, retry",
    5: "a patch site does not hold the expected bytes",
    6: "the health gate failed",
}

_SCHEMA = re.compile(r"urn:hvpatch:([a-z][a-z0-9-]*):([0-9]+)\Z")
_GLOB = re.compile(r"[*?\[]")

# Options every module takes (the doc fragment hvpatch.hvpatch.common documents them).
COMMON_ARGS = dict(
    hvpatch=dict(type="str", default="hvpatch"),
    uri=dict(type="str"),
    policy=dict(type="path"),
    state_dir=dict(type="path"),
)


class HvpatchError(Exception):
    """hvpatch could not be run, or its answer could not be read, or it failed.

    rc: hvpatch's exit code (None when it did not run); doc: its JSON
    document, when it printed one."""

    def __init__(self, msg, rc=None, doc=None, argv=None, stderr=None):
        Exception.__init__(self, msg)
        self.msg = msg
        self.rc = rc
        self.doc = doc
        self.argv = argv
        self.stderr = stderr

    def result(self):
        """Keyword arguments for module.fail_json()."""
        r = dict(msg=self.msg)
        if self.rc is not None:
            r["rc"] = self.rc
            r["exit_meaning"] = exit_meaning(self.rc)
        if self.doc is not None:
            r["hvpatch_output"] = self.doc
        if self.argv:
            r["cmd"] = self.argv
        if self.stderr:
            r["stderr"] = self.stderr[-4000:]
        return r


def exit_meaning(rc):
    if rc is None:
        return None
    if rc < 0:
        return "killed by signal %d" % -rc
    return EXIT_MEANINGS.get(rc, "unknown exit code")


def check_schema(doc, what):
    """Raise HvpatchError if doc names a schema this collection does not read.

    Documents without "schema" (hvpatch before the field existed) are accepted."""
    if not isinstance(doc, dict) or "schema" not in doc:
        return
    s = doc["schema"]
    m = _SCHEMA.match(s) if isinstance(s, str) else None
    if not m:
        raise HvpatchError("hvpatch %s: unrecognised schema %r (expected urn:hvpatch:COMMAND:%d)"
                           % (what, s, SCHEMA_MAJOR), doc=doc)
    if int(m.group(2)) != SCHEMA_MAJOR:
        raise HvpatchError("hvpatch %s answered with schema %s, major version %s; this collection "
                           "reads major version %d only: use a collection made for this hvpatch"
                           % (what, s, m.group(2), SCHEMA_MAJOR), doc=doc)


def is_glob(name):
    return bool(_GLOB.search(name))


def match_any(name, patterns):
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


class Hvpatch:
    """One hvpatch binary with the options common to every call."""

    def __init__(self, module):
        self.module = module
        p = module.params
        self.uri = p.get("uri")
        self.policy = p.get("policy")
        self.env = {}
        if p.get("state_dir"):
            self.env["HVPATCH_STATE_DIR"] = p["state_dir"]
        self.binary = self._resolve(p.get("hvpatch") or "hvpatch")

    def _resolve(self, name):
        if os.sep in name:
            if not os.path.isfile(name):
                raise HvpatchError("hvpatch binary not found: %s (set the module's hvpatch option "
                                   "to its path)" % name)
            if not os.access(name, os.X_OK):
                raise HvpatchError("hvpatch binary is not executable: %s" % name)
            return name
        path = self.module.get_bin_path(name)
        if not path:
            raise HvpatchError("hvpatch binary %r not found in PATH on this host (install hvpatch, "
                               "or set the module's hvpatch option to its path)" % name)
        return path

    def argv(self, args, policy=True):
        a = [self.binary, "--json"]
        if self.uri:
            a += ["-c", self.uri]
        if policy and self.policy:
            a += ["--policy", self.policy]
        return a + [str(x) for x in args]

    def _exec(self, argv):
        rc, out, err = self.module.run_command(argv, environ_update=self.env or None)
        return rc, out or "", err or ""

    def run(self, what, args, ok=(0,), policy=True):
        """Run `hvpatch --json ... ARGS`; return (rc, doc, stderr).

        doc is the parsed JSON document. Raises HvpatchError when stdout is
        not one JSON object, when its schema is of another major version, or
        when rc is not in ok (msg: hvpatch's own error text and the exit code)."""
        argv = self.argv(args, policy)
        rc, out, err = self._exec(argv)
        doc = self._parse(what, rc, out, err, argv)
        if rc not in ok:
            raise HvpatchError(self.failure_text(what, rc, doc, err), rc=rc, doc=doc, argv=argv,
                               stderr=err)
        return rc, doc, err

    def run_lines(self, what, args, policy=True):
        """Run a command that prints JSON lines (rollout --json); return (rc, docs, stderr)."""
        argv = self.argv(args, policy)
        rc, out, err = self._exec(argv)
        docs = []
        for n, line in enumerate(out.splitlines(), 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except ValueError as e:
                raise HvpatchError("hvpatch %s: line %d of its output is not JSON (%s): %r"
                                   % (what, n, e, line[:300]), rc=rc, argv=argv, stderr=err)
            if not isinstance(d, dict):
                raise HvpatchError("hvpatch %s: line %d is not a JSON object" % (what, n), rc=rc,
                                   argv=argv, stderr=err)
            check_schema(d, what)
            docs.append(d)
        return rc, docs, err

    def _parse(self, what, rc, out, err, argv):
        if not out.strip():
            raise HvpatchError("hvpatch %s printed no JSON (exit %d: %s)%s"
                               % (what, rc, exit_meaning(rc), ": " + err.strip()[-500:] if err.strip() else ""),
                               rc=rc, argv=argv, stderr=err)
        try:
            doc = json.loads(out)
        except ValueError as e:
            raise HvpatchError("hvpatch %s: its output is not JSON (%s): %r" % (what, e, out[:300]),
                               rc=rc, argv=argv, stderr=err)
        if not isinstance(doc, dict):
            raise HvpatchError("hvpatch %s: its JSON is not an object" % what, rc=rc, argv=argv, stderr=err)
        check_schema(doc, what)
        return doc

    @staticmethod
    def failure_text(what, rc, doc, err):
        text = None
        if isinstance(doc, dict):
            text = doc.get("error")
        if not text and err:
            text = err.strip().splitlines()[-1] if err.strip() else None
        return "hvpatch %s failed (exit %d: %s): %s" % (what, rc, exit_meaning(rc), text or "no message")

    # -- the commands the modules share --------------------------------------
    def report(self, patterns=None):
        """`hvpatch --json report`: the host's domains (rows), whatever their verdict.

        report exits 1 or 3 when a guest could not be read or is not compliant:
        the document is still the report. patterns: keep only domains matching one."""
        args = ["report"]
        # hvpatch reads only the domains asked for (report --domains GLOB,GLOB); a
        # pattern with a comma cannot be passed so: then every domain, filtered here
        narrow = bool(patterns) and not any("," in x for x in patterns)
        if narrow:
            args += ["--domains", ",".join(patterns)]
        rc, doc, err = self.run("report", args, ok=(0, 1, 3))
        if "domains" not in doc or not isinstance(doc["domains"], list):
            raise HvpatchError(self.failure_text("report", rc, doc, err), rc=rc, doc=doc)
        if patterns and not narrow:
            doc["domains"] = [d for d in doc["domains"] if isinstance(d, dict)
                              and match_any(d.get("domain", ""), patterns)]
        return rc, doc

    def domains(self, names):
        """The domains to work on: names as given when none is a glob, else the
        running domains (from report) matching any of them; None or []: every
        running domain."""
        if names and not any(is_glob(n) for n in names):
            return list(names)
        _, rep = self.report(names or None)
        return sorted(d["domain"] for d in rep["domains"] if d.get("state") == "running")

#!/usr/bin/env python3
"""docs/schemas/ against the code, without a guest.

    check-json-schemas.py HVPATCH REPO

  * every schema file is a valid JSON Schema 2020-12 whose $id is urn:hvpatch:NAME:MAJOR
    for its file NAME.schema.json, and an object document's schema requires "schema" as
    that $id (const);
  * the version table in cli/common.c (the one place the numbers live) and the files agree
    both ways, and every command of cli/main.c has its documents' schema;
  * documents hvpatch prints here validate: version, bad list (empty and with a mark),
    bad clear, verify and pack of a bundle made here (minisign), and the error document
    (unknown command, unknown domain on libvirt's test driver, no daemon); a document
    with a field taken away or of the wrong type does not (the validator bites).

Exit 77 (skip) without the jsonschema module or minisign, except under CI=true (failure).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HVPATCH, REPO = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(REPO, "tests", "live"))
import jsonschemas  # noqa: E402

CI = os.environ.get("CI") == "true"
failures = []


def fail(msg):
    failures.append(msg)
    print(f"FAIL: {msg}", file=sys.stderr)


def skip(why):
    if CI:
        print(f"FAIL (CI=true): {why}", file=sys.stderr)
        sys.exit(1)
    print(f"SKIPPED: {why}", file=sys.stderr)
    sys.exit(77)


try:
    import jsonschema
except ImportError:
    skip(f"no jsonschema module for {sys.executable} (apt-get install python3-jsonschema)")
for tool in ("minisign", "gcc"):
    if not shutil.which(tool):
        skip(f"{tool} not found (images/setup-host.sh installs it)")


def run(*args, state=None, rc=0):
    env = dict(os.environ, HVPATCH_STATE_DIR=state or os.path.join(tmp, "state"))
    p = subprocess.run([HVPATCH, "--json"] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=120, env=env, cwd=tmp)
    if p.returncode != rc:
        fail(f"hvpatch {' '.join(map(str, args))}: exit {p.returncode}, wanted {rc}: {p.stdout} {p.stderr}")
    try:
        doc = json.loads(p.stdout)
    except ValueError:
        fail(f"hvpatch {' '.join(map(str, args))}: stdout is not one JSON document: {p.stdout!r}")
        return None
    try:
        jsonschemas.check(doc, jsonschemas.command_of(args))
    except AssertionError as e:
        fail(f"hvpatch {' '.join(map(str, args))}: {e}")
    return doc


def bites(doc, what):
    """doc must NOT validate."""
    try:
        jsonschemas.check(doc, "ps" if isinstance(doc, list) else None)
    except AssertionError:
        return
    fail(f"a document with {what} validated: {json.dumps(doc)[:300]}")


# --- the files ----------------------------------------------------------------------
ids = jsonschemas.document_ids()
for sid, fname in ids.items():
    s = jsonschemas.schemas()[sid]
    try:
        jsonschema.Draft202012Validator.check_schema(s)
    except jsonschema.SchemaError as e:
        fail(f"{fname}: not a valid 2020-12 schema: {e.message}")
    m = re.fullmatch(r"urn:hvpatch:([a-z-]+):([1-9][0-9]*)", sid)
    if not m or f"{m.group(1)}.schema.json" != fname and f"{m.group(1)}.v{m.group(2)}.schema.json" != fname:
        fail(f"{fname}: $id {sid} does not name the file (urn:hvpatch:NAME:MAJOR for NAME.schema.json)")
    if s.get("$schema") != "https://json-schema.org/draft/2020-12/schema":
        fail(f"{fname}: $schema is not draft 2020-12")
    if s.get("type") == "object":
        if s["properties"].get("schema") != {"const": sid} or "schema" not in s.get("required", []):
            fail(f"{fname}: does not require \"schema\": const {sid}")
    elif s.get("type") == "array":
        if m and m.group(1) not in jsonschemas.ARRAY_COMMANDS:
            fail(f"{fname}: an array document jsonschemas.ARRAY_COMMANDS does not list")
    else:
        fail(f"{fname}: neither an object nor an array document")
jsonschema.Draft202012Validator.check_schema(jsonschemas.schemas()[jsonschemas.COMMON_ID])

# --- the version table in cli/common.c, the command table in cli/main.c ------------------
with open(os.path.join(REPO, "cli", "common.c")) as f:
    src = f.read()
table = src[src.index("json_schemas[] = {"):]
table = dict((n, int(v)) for n, v in re.findall(r'\{ "([a-z-]+)", ([0-9]+) \}', table[:table.index("};")]))
in_code = {f"urn:hvpatch:{n}:{v}" for n, v in table.items()}
if in_code != set(ids):
    fail(f"cli/common.c's versions and docs/schemas/ differ: only in the code {sorted(in_code - set(ids))}, "
         f"only in files {sorted(set(ids) - in_code)}")
with open(os.path.join(REPO, "cli", "main.c")) as f:
    commands = re.findall(r'^        \{ "([a-z-]+)", "', f.read(), re.M)
if len(commands) < 20:
    fail(f"cli/main.c: found only {len(commands)} commands")
special = {"bad": ("bad-list", "bad-clear"), "rollout": ("rollout-event",)}
for cmd in commands:
    for name in special.get(cmd, (cmd,)):
        if name not in table:
            fail(f"command {cmd}: no schema version for {name} in cli/common.c")

# --- documents hvpatch prints -------------------------------------------------------
tmp = tempfile.mkdtemp(prefix="hvp-schemas12-unit.")
try:
    os.mkdir(os.path.join(tmp, "state"), 0o700)
    doc = run("version")
    if doc:
        bites({k: v for k, v in doc.items() if k != "version"}, "version removed")
        bites(dict(doc, version=1), "version a number")
        bites(dict(doc, schema="urn:hvpatch:version:99"), "an unknown schema id")
        bites({k: v for k, v in doc.items() if k != "schema"}, "no schema field")
        # version lists every document's id: the table's, the arrays' included
        want_map = {n: f"urn:hvpatch:{n}:{v}" for n, v in table.items()}
        if doc.get("schemas") != want_map:
            fail(f"version --json lists {doc.get('schemas')!r}, cli/common.c's table says {want_map!r}")
        bites(dict(doc, schemas={k: v for k, v in want_map.items() if k != "symbols"}), "an id missing from schemas")
    run("bad", "list")
    run("bad", "clear", "--all")
    run("bogus-command", rc=2)
    doc = run("-c", "test:///default", "status", "no-such-domain-schemas12", rc=1)
    if doc:
        bites(dict(doc, code="1"), "code a string")
        bites({k: v for k, v in doc.items() if k != "error"}, "error removed")
    run("daemon-status", "--socket", os.path.join(tmp, "no-daemon.sock"), rc=1)

    # a mark of the health gate (STATE/bad/BUILD/PATCH.json), listed
    build = "ab" * 20
    os.makedirs(os.path.join(tmp, "state", "bad", build), 0o700)
    os.chmod(os.path.join(tmp, "state", "bad"), 0o700)
    with open(os.path.join(tmp, "state", "bad", build, "demo-version-1.json"), "w") as f:
        json.dump({"build_id": build, "patch_id": "demo-version-1", "series": "demo-version", "seq": 1,
                   "domain": "d", "at": 1700000000, "kind": "taint", "reason": "W (warn)"}, f)
    marks = run("bad", "list")
    if marks is not None and len(marks) != 1:
        fail(f"bad list: wanted the one mark: {marks}")
    if marks:
        bites([dict(marks[0], seq="1")], "bad mark seq a string (as ps: a wrong item)")

    # pack and verify a bundle built here (the demo bundle for a made-up build id)
    env = dict(os.environ, HVPATCH=HVPATCH)
    subprocess.run([os.path.join(REPO, "images", "demo", "build-demo.sh"), "--build-id", build,
                    "-o", os.path.join(tmp, "demo")], check=True, stdout=subprocess.DEVNULL, env=env, cwd=tmp)
    man = os.path.join(tmp, "demo", "manifest.xml")
    if not os.path.exists(man):     # build-demo.sh's manifest: take what it wrote
        man = next(os.path.join(tmp, "demo", n) for n in sorted(os.listdir(os.path.join(tmp, "demo")))
                   if n.endswith(".xml"))
    packed = run("pack", man, "-o", os.path.join(tmp, "again.hvp"))
    if packed:
        bites(dict(packed, sha256="XYZ"), "a sha256 that is not hex")
        bites({k: v for k, v in packed.items() if k != "sites"}, "sites removed")
    subprocess.run(["minisign", "-G", "-W", "-p", "k.pub", "-s", "k.key"], cwd=tmp, check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["minisign", "-S", "-s", "k.key", "-m", "again.hvp"], cwd=tmp, check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run("verify", "--key", "k.pub", "again.hvp")
    run("verify", "--key", "k.pub", os.path.join(tmp, "demo", "demo-version.hvp"), rc=3)
finally:
    shutil.rmtree(tmp, ignore_errors=True)

seen = jsonschemas.seen()
want = {"urn:hvpatch:version:1", "urn:hvpatch:bad-list:1", "urn:hvpatch:bad-clear:1", "urn:hvpatch:error:1",
        "urn:hvpatch:pack:1", "urn:hvpatch:verify:1"}
if not want <= seen:
    fail(f"not validated: {sorted(want - seen)}")
print(f"{len(ids)} schema files, {len(seen)} documents kinds validated; "
      f"{'FAILED: ' + str(len(failures)) if failures else 'all good'}")
sys.exit(1 if failures else 0)

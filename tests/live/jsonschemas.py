"""Validation of hvpatch's --json documents against docs/schemas/ (JSON Schema 2020-12).

Every object document names its schema in its "schema" field ("urn:hvpatch:NAME:MAJOR",
the $id of docs/schemas/NAME.schema.json); a top-level array (symbols, translate, disasm,
dmesg, ps, bad list) is version 1 of its command's schema, which the caller names.

    validate(doc, command=None)     raises SchemaError (an AssertionError) on a violation
    validate_lines(text)            the same for JSON lines (rollout --json)
    command_of(argv)                the schema name of an hvpatch argv ("bad list" -> "bad-list")
    seen()                          the schema ids validated so far in this process

Needs the jsonschema module (Debian: python3-jsonschema, under /usr/bin/python3). Without it
validation is skipped with one warning, except under CI=true, where that is an error.
With $HVP_SCHEMA_LOG set, each validated id is appended to that file (a line each).
"""

import glob
import json
import os
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCHEMA_DIR = os.path.join(REPO, "docs", "schemas")
COMMON_ID = "urn:hvpatch:common:1"
# Commands whose document is a top-level array (no room for a schema field).
ARRAY_COMMANDS = ("symbols", "translate", "disasm", "dmesg", "ps", "bad-list")
# Global options of hvpatch that take a value.
_VALUE_OPTS = ("-c", "--connect", "--policy")


class SchemaError(AssertionError):
    """A document does not validate, or names no known schema."""


_schemas = None         # id -> schema
_validators = {}        # id -> validator
_seen = set()
_warned = False


def available():
    """True if the jsonschema module imports; raises under CI=true if it does not."""
    global _warned
    try:
        import jsonschema  # noqa: F401
        return True
    except ImportError:
        if os.environ.get("CI") == "true":
            raise SchemaError(f"the jsonschema module is missing under {sys.executable} "
                              "(apt-get install python3-jsonschema; CI must validate --json output)") from None
        if not _warned:
            print(f"WARNING: no jsonschema module for {sys.executable}: --json output is not validated "
                  "(apt-get install python3-jsonschema)", file=sys.stderr)
            _warned = True
        return False


def schemas():
    """Every schema of docs/schemas/ by its $id (the common definitions included)."""
    global _schemas
    if _schemas is None:
        found = {}
        for path in sorted(glob.glob(os.path.join(SCHEMA_DIR, "*.json"))):
            with open(path) as f:
                s = json.load(f)
            sid = s.get("$id")
            if not sid or sid in found:
                raise SchemaError(f"{path}: missing or duplicate $id {sid!r}")
            found[sid] = s
        _schemas = found
    return _schemas


def document_ids():
    """$id of every docs/schemas/*.schema.json (the documents, not the common definitions)."""
    out = {}
    for path in sorted(glob.glob(os.path.join(SCHEMA_DIR, "*.schema.json"))):
        with open(path) as f:
            out[json.load(f)["$id"]] = os.path.basename(path)
    return out


def _validator(sid):
    if sid in _validators:
        return _validators[sid]
    import jsonschema
    all_ = schemas()
    schema = all_[sid]
    try:
        from referencing import Registry, Resource          # jsonschema >= 4.18
        from referencing.jsonschema import DRAFT202012
        registry = Registry().with_resources(
            [(i, Resource.from_contents(s, default_specification=DRAFT202012)) for i, s in all_.items()])
        v = jsonschema.Draft202012Validator(schema, registry=registry)
    except ImportError:                                      # Debian 12: jsonschema 4.10
        resolver = jsonschema.RefResolver(base_uri=sid, referrer=schema, store=dict(all_))
        v = jsonschema.Draft202012Validator(schema, resolver=resolver)
    _validators[sid] = v
    return v


def command_of(argv):
    """The schema name of the documents `hvpatch ARGV` prints, or None (no command)."""
    args = [str(a) for a in argv]
    i = 0
    while i < len(args):
        a = args[i]
        if a in _VALUE_OPTS:
            i += 2
            continue
        if a.startswith("-"):
            i += 1
            continue
        if a == "bad":
            return "bad-list" if i + 1 < len(args) and args[i + 1] == "list" else "bad-clear"
        if a == "rollout":
            return "rollout-event"
        return a
    return None


def _note(sid):
    _seen.add(sid)
    log = os.environ.get("HVP_SCHEMA_LOG")
    if log:
        with open(log, "a") as f:
            f.write(sid + "\n")


def check(doc, command=None):
    """Validate doc; return its schema id. Raises SchemaError (even without jsonschema, for
    a missing or unknown schema id); returns None if jsonschema is missing (outside CI)."""
    if isinstance(doc, list):
        if command not in ARRAY_COMMANDS:
            raise SchemaError(f"a top-level JSON array from command {command!r}, which documents an object "
                              f"(arrays: {', '.join(ARRAY_COMMANDS)})")
        sid = f"urn:hvpatch:{command}:1"
    elif isinstance(doc, dict):
        sid = doc.get("schema")
        if not isinstance(sid, str):
            raise SchemaError(f"document has no \"schema\" field (command {command!r}): {json.dumps(doc)[:300]}")
    else:
        raise SchemaError(f"document is neither an object nor an array: {doc!r:.200}")
    if sid not in schemas() or sid == COMMON_ID:
        raise SchemaError(f"document names an unknown schema {sid!r} (none in docs/schemas/ has that $id)")
    if not available():
        return None
    errors = sorted(_validator(sid).iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  at /{'/'.join(str(p) for p in e.absolute_path)}: {e.message[:300]}" for e in errors[:8]]
        raise SchemaError(f"--json document does not validate against {sid} "
                          f"(docs/schemas/{sid.split(':')[2]}.schema.json), {len(errors)} error(s):\n"
                          + "\n".join(lines) + f"\ndocument: {json.dumps(doc)[:1500]}")
    _note(sid)
    return sid


def validate(doc, command=None):
    """check(), for callers that only want the exception."""
    check(doc, command)
    return doc


def validate_lines(text, command="rollout-event"):
    """Parse JSON lines (rollout --json) and validate each; returns the parsed objects. A
    document printed pretty over several lines (the error document) is taken whole."""
    out = []
    text = text.strip()
    if not text:
        return out
    if not text.startswith("{\n"):
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except ValueError as e:
                raise SchemaError(f"JSON line {n} is not JSON ({e}): {line[:300]!r}") from None
            check(doc, command)
            out.append(doc)
        return out
    doc = json.loads(text)
    check(doc, command)
    return [doc]


def seen():
    return set(_seen)

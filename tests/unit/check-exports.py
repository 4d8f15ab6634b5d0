#!/usr/bin/env python3
"""libhvpatch.so exports exactly the functions declared in include/hvpatch/*.h.

check-exports.py LIBRARY INCLUDE_DIR MAP_FILE

Fails on any symbol `nm -D --defined-only` shows that no public header declares (an
internal leaking out), on any declared function the library does not export, and on
a version script (MAP_FILE) that lists other names than the headers declare.
"""
import re
import subprocess
import sys
from pathlib import Path


def declared(include_dir):
    """Names of the functions and extern variables declared in the public headers."""
    names = set()
    for header in sorted(Path(include_dir).glob("*.h")):
        text = header.read_text()
        text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
        text = re.sub(r"//[^\n]*", " ", text)
        text = re.sub(r"^[ \t]*#[^\n]*(?:\\\n[^\n]*)*", " ", text, flags=re.M)
        text = text.replace('extern "C" {', " ")
        text = re.sub(r"static\s+inline[^{;]*\{", "{", text)
        depth, top = 0, []
        for c in text:         # keep file scope only: struct bodies and inline bodies go
            if c == "{":
                depth += 1
                top.append(" ")
            elif c == "}":
                depth = max(depth - 1, 0)
                top.append(";" if depth == 0 else " ")
            else:
                top.append(c if depth == 0 else " ")
        for stmt in "".join(top).split(";"):
            stmt = " ".join(stmt.split())
            if not stmt or stmt.startswith("typedef"):
                continue
            m = re.match(r"^(?:extern\s+)?[^()]*?\b([A-Za-z_]\w*)\s*\((?!\s*\*)", stmt)
            if m:
                names.add(m.group(1))
                continue
            m = re.match(r"^extern\s+.*?\b([A-Za-z_]\w*)\s*(?:\[[^\]]*\])?$", stmt)
            if m:
                names.add(m.group(1))
    return names


def exported(library):
    out = subprocess.run(["nm", "-D", "--defined-only", library], capture_output=True, text=True,
                         check=True).stdout
    names = set()
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[1] not in ("A",):       # A: the version node itself
            names.add(fields[2].split("@")[0])
    return names


def mapped(map_file):
    text = re.sub(r"/\*.*?\*/", " ", Path(map_file).read_text(), flags=re.S)
    body = re.search(r"global:(.*?)local:", text, flags=re.S)
    return {n.strip() for n in body.group(1).split(";") if n.strip()} if body else set()


def main():
    library, include_dir, map_file = sys.argv[1:4]
    decl, exp, listed = declared(include_dir), exported(library), mapped(map_file)
    if len(decl) < 50:
        print(f"FAIL: only {len(decl)} declarations found in {include_dir}: the header parser is broken")
        return 1
    failed = False
    for what, names in (("exported but declared in no public header (a leak)", exp - decl),
                        ("declared in include/hvpatch/ but not exported", decl - exp),
                        (f"listed in {map_file} but declared nowhere", listed - decl),
                        (f"declared but missing from {map_file}", decl - listed)):
        if names:
            failed = True
            print(f"FAIL: {len(names)} {what}: {' '.join(sorted(names))}")
    print(f"{len(exp)} exported, {len(decl)} declared, {len(listed)} in the version script")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

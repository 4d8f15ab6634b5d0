#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hvpatch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: hvpatch_sync
short_description: Converge a host's guests to the desired patch state of a catalog
description:
  - Runs C(hvpatch --json sync [--catalog DIR] DOMAIN|--all) on the target host. For every guest,
    each series whose newest usable bundle in the catalog folder is not in memory goes through
    hvpatch's whole apply pipeline (signature, policy, plan, one pause window, audit), and a
    reboot-required guest booting a host-provided kernel may be moved to its baseline's image
    inside a window that allows reboots (docs/operations.md, "Desired state", "Baseline moves").
  - Never removes a patch (but one hvpatch just applied that fails the health gate).
  - Idempotent, C(changed) only when a series was applied (or a guest moved); a converged host
    reports C(changed=false).
  - Check mode runs C(sync --dry-run) (the plan, nothing written) and reports C(changed) when
    something would be applied or moved.
  - Fails with hvpatch's exit code (C(rc)) and each failed step's error when a guest could not be
    converged (refused, busy, site mismatch, health gate, unreadable).
version_added: "0.1.0"
author:
  - hvpatch contributors
extends_documentation_fragment:
  - hvpatch.hvpatch.common
options:
  catalog:
    description:
      - The catalog folder of signed bundles on the target host; hvpatch's default
        C(/var/lib/hvpatch/catalog) when unset.
    type: path
  domains:
    description:
      - The guests (names or UUIDs) or shell-style globs matched against the host's running
        domains. Default every running domain (C(sync --all)).
    type: list
    elements: str
    default: []
  health:
    description:
      - The health gate after every apply (C(sync --health SECONDS)).
    type: int
requirements:
  - hvpatch on the target host.
seealso:
  - module: hvpatch.hvpatch.hvpatch_patch
  - module: hvpatch.hvpatch.hvpatch_rollout
'''

EXAMPLES = r'''
- name: Every guest to the catalog's desired state
  hvpatch.hvpatch.hvpatch_sync:
    catalog: /srv/hvpatch/catalog
    health: 30

- name: What would sync do on the db guests?
  hvpatch.hvpatch.hvpatch_sync:
    catalog: /srv/hvpatch/catalog
    domains: ["db-*"]
  check_mode: true
  register: plan
'''

RETURN = r'''
catalog:
  description: The catalog folder hvpatch read.
  returned: when hvpatch answered
  type: str
catalog_errors:
  description: Bundles of the catalog hvpatch could not use, each C({file, error}).
  returned: when hvpatch answered
  type: list
  elements: dict
domains:
  description:
    - One entry per guest, hvpatch sync's document for it (domain, build_id, compliance, series
      with desired and actual patch, move, steps), or C({domain, error, code}) for a guest it
      could not read.
  returned: always
  type: list
  elements: dict
applied:
  description: The steps that applied a patch (check mode, would apply), each C({domain, series, patch_id, action, pause_ms}).
  returned: always
  type: list
  elements: dict
failed_steps:
  description: The steps that failed, each C({domain, series, patch_id, code, error}).
  returned: always
  type: list
  elements: dict
rc:
  description: hvpatch sync's exit code (0 converged or waiting for a window).
  returned: always
  type: int
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.hvpatch.hvpatch.plugins.module_utils.hvpatch import (
    COMMON_ARGS, Hvpatch, HvpatchError, exit_meaning)


def main():
    argument_spec = dict(
        catalog=dict(type="path"),
        domains=dict(type="list", elements="str", default=[]),
        health=dict(type="int"),
    )
    argument_spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    result = dict(changed=False, domains=[], applied=[], failed_steps=[], rc=0)
    try:
        hv = Hvpatch(module)
        opts = ["sync"]
        if p["catalog"]:
            opts += ["--catalog", p["catalog"]]
        if module.check_mode:
            opts += ["--dry-run"]
        if p["health"]:
            opts += ["--health", p["health"]]
        if p["domains"]:
            targets = [[d] for d in hv.domains(p["domains"])]
        else:
            targets = [["--all"]]
        worst = 0
        for t in targets:
            rc, doc, err = hv.run("sync %s" % t[0], opts + t, ok=range(0, 256))
            if "domains" in doc and isinstance(doc["domains"], list):
                docs = doc["domains"]
            elif "domain" in doc:
                docs = [doc]
            else:
                # an error document: sync could not start (no catalog, no policy, usage)
                raise HvpatchError(Hvpatch.failure_text("sync", rc, doc, err), rc=rc, doc=doc)
            result["catalog"] = doc.get("catalog")
            result["catalog_errors"] = doc.get("catalog_errors")
            for d in docs:
                result["domains"].append(d)
                name = d.get("domain")
                for s in d.get("steps") or []:
                    entry = dict(domain=name, series=s.get("series"), patch_id=s.get("patch_id"),
                                 action=s.get("action"))
                    r = s.get("result")
                    if r == "applied" or (module.check_mode and r == "dry-run"):
                        entry["pause_ms"] = s.get("pause_ms")
                        result["applied"].append(entry)
                        result["changed"] = True
                    elif r == "failed":
                        entry.update(code=s.get("code"), error=s.get("error"))
                        result["failed_steps"].append(entry)
                mr = d.get("move_result") or {}
                if mr.get("result") == "moved" or (module.check_mode and mr.get("result") == "dry-run"):
                    result["changed"] = True
                if d.get("error") and "steps" not in d:
                    result["failed_steps"].append(dict(domain=name, code=d.get("code"), error=d.get("error")))
            if rc and not worst:
                worst = rc
        result["rc"] = worst
        if worst:
            why = "; ".join("%s%s: %s" % (f["domain"], " " + f["series"] if f.get("series") else "",
                                          f.get("error")) for f in result["failed_steps"])
            module.fail_json(msg="hvpatch sync did not converge every guest (exit %d: %s)%s"
                             % (worst, exit_meaning(worst), ": " + why if why else ""),
                             exit_meaning=exit_meaning(worst), **result)
    except HvpatchError as e:
        result.update(e.result())
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

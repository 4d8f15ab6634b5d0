#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hvpatch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: hvpatch_rollout
short_description: Roll one bundle over the guests of a host, ring by ring
description:
  - Runs C(hvpatch rollout --json BUNDLE ...) on the target host. The bundle goes to the host's
    running guests ring by ring (cumulative sizes, or a ring per policy group), several at once,
    each through hvpatch's whole apply pipeline with the health gate; a ring with more failures
    than allowed halts the rollout. Progress is kept in hvpatch's state file, so running the task
    again resumes an interrupted rollout and touches no finished guest.
  - This is the rollout B(within) one host. Across hosts, rings are the play's C(serial) with
    C(max_fail_percentage) (see the collection's playbooks/rollout.yml).
  - C(changed) when a guest was patched (or reverted by C(revert_on_halt)) in this run; a
    finished rollout run again reports C(changed=false).
  - Fails with hvpatch's exit code (C(rc)) when a guest failed or the rollout halted, naming the
    failed guests and why.
  - Check mode is not supported (hvpatch rollout has no dry run), the task is skipped. Use
    M(hvpatch.hvpatch.hvpatch_patch) in check mode to see what would change.
version_added: "0.1.0"
author:
  - hvpatch contributors
extends_documentation_fragment:
  - hvpatch.hvpatch.common
options:
  bundle:
    description: The signed bundle on the target host.
    type: path
    required: true
  sig:
    description: Its signature file when not C(BUNDLE.minisig).
    type: path
  domains:
    description:
      - Only running domains whose names match one of these globs (C(--domains GLOB,...)).
        Default all; the policy decides which it manages.
    type: list
    elements: str
    default: []
  rings:
    description:
      - Cumulative ring sizes, N guests or P% (C(--rings 1,10%,100%)), or C(@GROUP,...) for a
        ring per policy group. hvpatch's default when unset.
    type: str
  parallel:
    description: Guests patched at once within a ring (1..64).
    type: int
  health:
    description: The health gate's seconds after each apply (hvpatch's default 10; 0 none).
    type: int
  soak:
    description: Seconds to wait after each ring before reading its guests again.
    type: int
  max_failures:
    description: Failures a ring may have without halting (default 0).
    type: int
  revert_on_halt:
    description: Revert the halting ring's patched guests.
    type: bool
    default: false
  state_file:
    description: hvpatch's rollout state file (default in the state folder, named by the bundle's sha256).
    type: path
requirements:
  - hvpatch on the target host.
seealso:
  - module: hvpatch.hvpatch.hvpatch_patch
  - module: hvpatch.hvpatch.hvpatch_sync
'''

EXAMPLES = r'''
- name: Roll the fix over this host's guests, canary first
  hvpatch.hvpatch.hvpatch_rollout:
    bundle: /srv/hvpatch/CVE-2026-1234-1.hvp
    rings: "1,10%,100%"
    parallel: 4
    health: 30
    soak: 60
  register: ro

- name: One ring per policy group
  hvpatch.hvpatch.hvpatch_rollout:
    bundle: /srv/hvpatch/CVE-2026-1234-1.hvp
    rings: "@canary,@web,@db"
    revert_on_halt: true
'''

RETURN = r'''
summary:
  description: The rollout's summary event (patch_id, bundle_sha256, guests, rings, counts, halted, resumed, state, exit).
  returned: when the rollout ran
  type: dict
events:
  description: Every JSON line of C(hvpatch rollout --json) (ring-start, guest, ring-end, summary).
  returned: when the rollout ran
  type: list
  elements: dict
guests:
  description: The guest events of this run, each C({ring, domain, status, code, exit, detail, pause_ms}).
  returned: when the rollout ran
  type: list
  elements: dict
halted:
  description: Whether the rollout halted.
  returned: when the rollout ran
  type: bool
rc:
  description: hvpatch rollout's exit code (0 every guest done or skipped, 6 halted on a health gate, else the first failure's).
  returned: always
  type: int
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.hvpatch.hvpatch.plugins.module_utils.hvpatch import (
    COMMON_ARGS, Hvpatch, HvpatchError, exit_meaning)


def main():
    argument_spec = dict(
        bundle=dict(type="path", required=True),
        sig=dict(type="path"),
        domains=dict(type="list", elements="str", default=[]),
        rings=dict(type="str"),
        parallel=dict(type="int"),
        health=dict(type="int"),
        soak=dict(type="int"),
        max_failures=dict(type="int"),
        revert_on_halt=dict(type="bool", default=False),
        state_file=dict(type="path"),
    )
    argument_spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=False)
    p = module.params
    result = dict(changed=False, rc=0)
    try:
        hv = Hvpatch(module)
        args = ["rollout", "--json"]
        for opt, flag in (("domains", "--domains"), ("rings", "--rings"), ("parallel", "--parallel"),
                          ("health", "--health"), ("soak", "--soak"), ("max_failures", "--max-failures"),
                          ("sig", "--sig"), ("state_file", "--state")):
            v = p[opt]
            if v is None or v == []:
                continue
            args += [flag, ",".join(v) if isinstance(v, list) else v]
        if p["revert_on_halt"]:
            args.append("--revert-on-halt")
        args.append(p["bundle"])
        rc, events, err = hv.run_lines("rollout", args)
        result["rc"] = rc
        if len(events) == 1 and "error" in events[0] and "event" not in events[0]:
            raise HvpatchError(Hvpatch.failure_text("rollout", rc, events[0], err), rc=rc, doc=events[0])
        summaries = [e for e in events if e.get("event") == "summary"]
        if not summaries:
            raise HvpatchError("hvpatch rollout gave no summary (exit %d: %s)%s"
                               % (rc, exit_meaning(rc), ": " + err.strip()[-500:] if err.strip() else ""),
                               rc=rc, stderr=err)
        guests = [e for e in events if e.get("event") == "guest"]
        result.update(events=events, summary=summaries[-1], guests=guests,
                      halted=bool(summaries[-1].get("halted")))
        result["changed"] = any(g.get("pause_ms") is not None or g.get("status") == "reverted" for g in guests)
        if rc != 0:
            bad = ["%s: %s%s" % (g.get("domain"), g.get("status"), " (%s) %s" % (g.get("code"), g.get("detail"))
                                 if g.get("code") or g.get("detail") else "")
                   for g in guests if g.get("status") in ("failed", "reverted")]
            module.fail_json(msg="hvpatch rollout %s (exit %d: %s)%s"
                             % ("halted" if result["halted"] else "failed", rc, exit_meaning(rc),
                                ": " + "; ".join(bad) if bad else (": " + err.strip()[-500:] if err.strip() else "")),
                             exit_meaning=exit_meaning(rc), **result)
    except HvpatchError as e:
        result.update(e.result())
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

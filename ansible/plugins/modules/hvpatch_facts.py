#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hvpatch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: hvpatch_facts
short_description: The hvpatch state of a host's guests as facts
description:
  - Reads every domain of the host with C(hvpatch --json report) (in parallel, inside hvpatch), giving
    OS, kernel, build id, compliance verdict under the policy, applied patches, tamper state,
    health-gate bad marks, counts; and, with C(status) or C(inspect), C(hvpatch --json status)
    and C(hvpatch --json inspect) of each running guest.
  - Sets C(ansible_facts.hvpatch). Changes nothing; runs the same in check mode.
  - A guest that is not compliant or could not be read is a fact, not a failure (C(verdict),
    C(error) in its entry); the task fails only when hvpatch cannot report at all, or when
    C(status)/C(inspect) of a running guest fails.
version_added: "0.1.0"
author:
  - hvpatch contributors
extends_documentation_fragment:
  - hvpatch.hvpatch.common
options:
  domains:
    description:
      - Shell-style globs (or names); only matching domains are reported. Default all.
    type: list
    elements: str
    default: []
  status:
    description:
      - Also run C(hvpatch --json status DOMAIN) on each running guest reported (patches with the
        state of each write in memory, patch areas, compliance, boot security).
    type: bool
    default: false
  inspect:
    description:
      - Also run C(hvpatch --json inspect DOMAIN) on each running guest reported (paging mode,
        kernel base, KASLR offset, banner, build id, vCPUs).
    type: bool
    default: false
requirements:
  - hvpatch on the target host.
seealso:
  - module: hvpatch.hvpatch.hvpatch_patch
'''

EXAMPLES = r'''
- name: Gather hvpatch facts
  hvpatch.hvpatch.hvpatch_facts:
    policy: /etc/hvpatch/policy.xml

- name: Guests that are not compliant
  ansible.builtin.debug:
    msg: "{{ ansible_facts.hvpatch.domains | dict2items | rejectattr('value.verdict', 'in', ['compliant', 'shut-off']) | map(attribute='key') }}"

- name: Status and inspect of the web guests too
  hvpatch.hvpatch.hvpatch_facts:
    domains: ["web-*"]
    status: true
    inspect: true
'''

RETURN = r'''
ansible_facts:
  description: The facts.
  returned: always
  type: dict
  contains:
    hvpatch:
      description: The host's hvpatch state.
      type: dict
      contains:
        host:
          description: The host's name, as hvpatch report gives it.
          type: str
        generated_at:
          description: When the report was read (Unix time).
          type: int
        policy:
          description: The policy file used, null without one (every guest then C(unmanaged)).
          type: str
        counts:
          description: Domains per verdict (compliant, reboot-required, unmanaged, refused, error, shut-off).
          type: dict
        exit_code:
          description: The exit code C(hvpatch report) gave (0 all compliant, 3 one reboot-required or refused, 1 one unreadable).
          type: int
        running:
          description: The names of the running domains reported.
          type: list
          elements: str
        domains:
          description:
            - One entry per domain, keyed by name; each is the domain's row of
              C(hvpatch --json report) (domain, uuid, state, verdict, os, kernel, banner,
              build_id, group, baseline, reasons, patches, applied, tamper, health, bad_marks,
              error), plus C(status) and C(inspect) (those commands' documents) when asked.
          type: dict
          sample:
            web-1:
              state: running
              verdict: compliant
              build_id: 0b3f...
              applied: 1
              patches:
                - {id: demo-version-1, series: demo-version, seq: 1, state: applied}
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.hvpatch.hvpatch.plugins.module_utils.hvpatch import (
    COMMON_ARGS, Hvpatch, HvpatchError)


def main():
    argument_spec = dict(
        domains=dict(type="list", elements="str", default=[]),
        status=dict(type="bool", default=False),
        inspect=dict(type="bool", default=False),
    )
    argument_spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    try:
        hv = Hvpatch(module)
        rc, rep = hv.report(p["domains"] or None)
        doms = {}
        running = []
        for row in rep["domains"]:
            name = row.get("domain")
            if not isinstance(name, str):
                continue
            doms[name] = row
            if row.get("state") == "running":
                running.append(name)
        for name in sorted(running):
            if p["status"]:
                doms[name]["status"] = hv.run("status %s" % name, ["status", name])[1]
            if p["inspect"]:
                doms[name]["inspect"] = hv.run("inspect %s" % name, ["inspect", name], policy=False)[1]
        facts = dict(host=rep.get("host"), generated_at=rep.get("generated_at"), policy=rep.get("policy"),
                     counts=rep.get("counts"), exit_code=rep.get("exit_code", rc), running=sorted(running),
                     domains=doms)
    except HvpatchError as e:
        module.fail_json(**e.result())
    module.exit_json(changed=False, ansible_facts=dict(hvpatch=facts))


if __name__ == "__main__":
    main()

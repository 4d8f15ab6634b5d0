#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hvpatch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: hvpatch_patch
short_description: Apply or revert a signed hvpatch bundle on the guests of a host
description:
  - Live-patches the kernels of the running QEMU/KVM guests of the host it runs on with a signed
    hvpatch bundle (C(state=present)), or reverts the bundle's patch (C(state=absent)).
  - Every guest goes through hvpatch's whole pipeline (signature, policy, plan, one pause
    window, audit); the module only chooses the command and reads hvpatch's JSON answer.
  - Idempotent. Before anything, C(hvpatch --json status DOMAIN) says which patches each guest
    holds. C(present) changes nothing on a guest whose memory holds the bundle's patch, or a
    later patch of its series; C(absent) changes nothing on a guest that does not hold it.
  - In check mode nothing is written. C(present) runs C(hvpatch --json check DOMAIN BUNDLE)
    (the dry run of apply) and reports C(changed) when a guest would be patched; a guest the
    apply would refuse fails the task with every reason check gives. C(absent) reports which
    guests would be reverted.
  - A refusal (bad or untrusted signature, the policy's verdict, another kernel build, a bundle
    marked bad), a busy guest, a site mismatch or a failed health gate fails the task with
    hvpatch's reasons and its exit code (C(rc)). The module stops at the first guest that fails;
    the guests done before it are in C(guests).
version_added: "0.1.0"
author:
  - hvpatch contributors
extends_documentation_fragment:
  - hvpatch.hvpatch.common
options:
  bundle:
    description:
      - The signed bundle (C(NAME.hvp), with C(NAME.hvp.minisig) beside it, or C(sig)) on the
        target host.
      - Required with C(state=present). With C(state=absent) the patch to revert is the bundle's
        (read with C(hvpatch --json verify)), unless C(patch_id) names it.
    type: path
  sig:
    description:
      - The bundle's minisign signature file, when it is not C(BUNDLE.minisig).
    type: path
  patch_id:
    description:
      - With C(state=absent), the patch id to revert (as C(hvpatch status) shows it) instead of
        the bundle's.
    type: str
  domains:
    description:
      - The guests (libvirt domain names or UUIDs), or shell-style globs matched against the names
        of the host's running domains (from C(hvpatch --json report)).
      - Default every running domain of the host. Names without glob characters are used as
        given; one that does not exist or is not running fails the task.
    type: list
    elements: str
    default: []
  state:
    description:
      - C(present) applies the bundle where its patch is not in memory; C(absent) reverts it
        where it is.
    type: str
    choices: [present, absent]
    default: present
  health:
    description:
      - The health gate (C(hvpatch apply --health SECONDS)) after each apply. A guest that fails
        it is reverted by hvpatch, the bundle is marked bad for its kernel build, and the task
        fails (C(rc=6)). 0 or unset, no gate.
    type: int
requirements:
  - hvpatch on the target host.
seealso:
  - module: hvpatch.hvpatch.hvpatch_facts
  - module: hvpatch.hvpatch.hvpatch_rollout
  - module: hvpatch.hvpatch.hvpatch_sync
'''

EXAMPLES = r'''
- name: Apply the fix to every running guest of the host
  hvpatch.hvpatch.hvpatch_patch:
    bundle: /srv/hvpatch/CVE-2026-1234-1.hvp
    policy: /etc/hvpatch/policy.xml
    health: 30

- name: Only the web guests, with the binary from a non-standard place
  hvpatch.hvpatch.hvpatch_patch:
    bundle: /srv/hvpatch/demo-version.hvp
    domains: ["web-*", db-1]
    hvpatch: /opt/hvpatch/bin/hvpatch
  environment:
    HVPATCH_STATE_DIR: /var/lib/hvpatch

- name: What would change? (nothing is written)
  hvpatch.hvpatch.hvpatch_patch:
    bundle: /srv/hvpatch/demo-version.hvp
  check_mode: true
  register: would

- name: Revert it everywhere
  hvpatch.hvpatch.hvpatch_patch:
    bundle: /srv/hvpatch/demo-version.hvp
    state: absent

- name: Revert by patch id (no bundle at hand)
  hvpatch.hvpatch.hvpatch_patch:
    patch_id: demo-version-1
    domains: [web-1]
    state: absent
'''

RETURN = r'''
patch_id:
  description: The bundle's patch id (or C(patch_id)).
  returned: when known
  type: str
  sample: demo-version-1
series:
  description: The bundle's series.
  returned: when the bundle could be verified
  type: str
  sample: demo-version
sequence:
  description: The bundle's sequence number in its series.
  returned: when the bundle could be verified
  type: int
  sample: 1
domains:
  description: The guests the module worked on, in order.
  returned: always
  type: list
  elements: str
  sample: [web-1, web-2]
guests:
  description: One entry per guest handled (up to and including the one that failed).
  returned: always
  type: list
  elements: dict
  contains:
    domain:
      description: The guest.
      type: str
      sample: web-1
    action:
      description:
        - What happened. C(applied), C(would-apply), C(already-applied), C(superseded) (a
          later patch of the series is applied), C(reverted), C(would-revert), C(not-applied),
          C(refused) or C(failed).
      type: str
      sample: applied
    changed:
      description: Whether this guest was (in check mode, would be) changed.
      type: bool
    patch_id:
      description: The patch id concerned.
      type: str
      sample: demo-version-1
    pause_ms:
      description: The pause window of the apply or revert in milliseconds (the vCPUs stopped).
      type: float
      sample: 12.4
    replaced:
      description: The earlier patch of the series the apply replaced, if any.
      type: str
    health:
      description: The health gate's verdict (hvpatch apply's C(health) object), with C(health).
      type: dict
    writes:
      description: The number of writes (check mode, from hvpatch check).
      type: int
    reasons:
      description:
        - Why hvpatch refused, each C({stage, reason, code}) as C(hvpatch --json check) lists
          them (code only for policy reasons, e.g. C(outside-window), C(marked-bad)).
      type: list
      elements: dict
    rc:
      description: hvpatch's exit code for this guest's apply, revert or check.
      type: int
    applied:
      description: The patch ids whose state is C(applied) in the guest's status before the module acted.
      type: list
      elements: str
rc:
  description: hvpatch's exit code when the task failed (3 refused, 4 busy, 5 site mismatch, 6 health gate, 1 error).
  returned: failure
  type: int
  sample: 3
exit_meaning:
  description: The meaning of C(rc) per hvpatch's README.
  returned: failure
  type: str
  sample: refused
reasons:
  description: The failing guest's reasons (see C(guests[].reasons)).
  returned: failure, when hvpatch gave reasons
  type: list
  elements: dict
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.hvpatch.hvpatch.plugins.module_utils.hvpatch import (
    COMMON_ARGS, Hvpatch, HvpatchError, exit_meaning)


def applied_patches(hv, domain):
    """(applied ids, {series: highest applied seq}) from hvpatch --json status."""
    _, st, _ = hv.run("status %s" % domain, ["status", domain])
    patches = st.get("patches")
    if not isinstance(patches, list):
        raise HvpatchError("hvpatch status %s: no patches list in its JSON" % domain, doc=st)
    ids, series = [], {}
    for p in patches:
        if isinstance(p, dict) and p.get("state") == "applied":
            ids.append(p.get("id"))
            s, q = p.get("series"), p.get("seq")
            if isinstance(q, int) and (s not in series or q > series[s]):
                series[s] = q
    return ids, series


def bundle_identity(hv, bundle, sig):
    """(rc, doc) of hvpatch --json verify BUNDLE (under the policy: the same trust as apply)."""
    args = ["verify"] + (["--sig", sig] if sig else []) + [bundle]
    rc, doc, _ = hv.run("verify", args, ok=(0, 1, 3))
    return rc, doc


def check(hv, domain, bundle, sig):
    args = ["check"] + (["--sig", sig] if sig else []) + [domain, bundle]
    rc, doc, err = hv.run("check %s" % domain, args, ok=(0, 1, 3, 4, 5))
    return rc, doc, err


def reasons_text(reasons):
    return "; ".join("[%s] %s%s" % (r.get("stage", "?"), r.get("reason", "?"),
                                    " (%s)" % r["code"] if r.get("code") else "")
                     for r in reasons if isinstance(r, dict))


def main():
    argument_spec = dict(
        bundle=dict(type="path"),
        sig=dict(type="path"),
        patch_id=dict(type="str"),
        domains=dict(type="list", elements="str", default=[]),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        health=dict(type="int"),
    )
    argument_spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_if=[("state", "present", ["bundle"])],
                           required_one_of=[("bundle", "patch_id")])
    p = module.params
    result = dict(changed=False, domains=[], guests=[])

    def fail(msg, **kw):
        result.update(kw)
        module.fail_json(msg=msg, **result)

    try:
        hv = Hvpatch(module)
        if p["health"] is not None and p["health"] < 0:
            fail("health: seconds must be 0 or more")
        # Which patch the bundle holds: verify reads it under the same policy apply uses.
        ident, vrc = None, None
        if p["bundle"]:
            vrc, vdoc = bundle_identity(hv, p["bundle"], p["sig"])
            if vrc == 0:
                ident = vdoc
                result.update(patch_id=vdoc.get("patch_id"), series=vdoc.get("series"),
                              sequence=vdoc.get("sequence"))
            elif p["state"] == "absent" and not p["patch_id"]:
                fail(Hvpatch.failure_text("verify", vrc, vdoc, ""), rc=vrc, exit_meaning=exit_meaning(vrc),
                     hvpatch_output=vdoc)
            # present with a bundle verify does not accept: apply (or check) below refuses it
            # and says every reason why.
        if p["patch_id"]:
            result["patch_id"] = p["patch_id"]
        pid = result.get("patch_id")

        domains = hv.domains(p["domains"])
        result["domains"] = domains
        for dom in domains:
            g = dict(domain=dom, changed=False, patch_id=pid)
            result["guests"].append(g)
            ids, series = [], {}
            if pid:
                ids, series = applied_patches(hv, dom)
                g["applied"] = ids
            if p["state"] == "absent":
                if pid not in ids:
                    g["action"] = "not-applied"
                    continue
                if module.check_mode:
                    g.update(action="would-revert", changed=True)
                    result["changed"] = True
                    continue
                rc, doc, err = hv.run("revert %s" % dom, ["revert", dom, pid], ok=range(0, 256))
                g["rc"] = rc
                if rc != 0:
                    g["action"] = "failed"
                    fail(Hvpatch.failure_text("revert %s" % dom, rc, doc, err), rc=rc,
                         exit_meaning=exit_meaning(rc), hvpatch_output=doc)
                g.update(action="reverted", changed=True, pause_ms=doc.get("pause_ms"))
                result["changed"] = True
                continue

            # state: present
            if ident is not None:
                if pid in ids:
                    g["action"] = "already-applied"
                    continue
                s, q = ident.get("series"), ident.get("sequence")
                if s in series and isinstance(q, int) and series[s] > q:
                    g["action"] = "superseded"
                    continue
            if module.check_mode or ident is None:
                # check: the dry run of apply, every reason at once. Also when verify
                # refused the bundle, so that the failure names every reason.
                rc, doc, err = check(hv, dom, p["bundle"], p["sig"])
                reasons = doc.get("reasons") or []
                g.update(rc=rc, reasons=reasons, writes=doc.get("writes"))
                if doc.get("patch_id"):
                    g["patch_id"] = doc["patch_id"]
                if rc == 0 and doc.get("would_apply") and module.check_mode:
                    g.update(action="would-apply", changed=True)
                    result["changed"] = True
                    continue
                if rc != 0 or not doc.get("would_apply"):
                    g["action"] = "refused" if rc == 3 else "failed"
                    why = reasons_text(reasons) or doc.get("error") or "no reason given"
                    fail("hvpatch would not apply %s to %s (exit %d: %s): %s"
                         % (p["bundle"], dom, rc, exit_meaning(rc), why),
                         rc=rc if rc else 1, exit_meaning=exit_meaning(rc if rc else 1), reasons=reasons)
                # verify refused but check would apply: let apply decide (one pipeline)
            args = ["apply"] + (["--sig", p["sig"]] if p["sig"] else [])
            if p["health"]:
                args += ["--health", p["health"]]
            rc, doc, err = hv.run("apply %s" % dom, args + [dom, p["bundle"]], ok=range(0, 256))
            g["rc"] = rc
            if rc == 0:
                g.update(action="applied", changed=True, patch_id=doc.get("patch_id", pid),
                         pause_ms=doc.get("pause_ms"), replaced=doc.get("replaced"),
                         health=doc.get("health"))
                result["changed"] = True
                continue
            # Failed: the error document, and for refusals and mismatches every reason (check).
            g.update(action="refused" if rc == 3 else "failed", health=doc.get("health"),
                     pause_ms=doc.get("pause_ms"))
            if rc == 6:
                result["changed"] = True        # applied, then reverted by the gate
            msg = Hvpatch.failure_text("apply %s" % dom, rc, doc, err)
            if rc in (3, 5):
                crc, cdoc, _ = check(hv, dom, p["bundle"], p["sig"])
                reasons = cdoc.get("reasons") or []
                if reasons:
                    g["reasons"] = reasons
                    msg += "; every reason (hvpatch check): " + reasons_text(reasons)
            fail(msg, rc=rc, exit_meaning=exit_meaning(rc), reasons=g.get("reasons", []), hvpatch_output=doc)
    except HvpatchError as e:
        result.update(e.result())
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

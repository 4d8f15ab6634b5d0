# -*- coding: utf-8 -*-
# Copyright: hvpatch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options every hvpatch.hvpatch module takes."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options:
  hvpatch:
    description:
      - The hvpatch binary on the target host, a name looked up in C(PATH) or a path.
      - The module fails with a clear message when it is missing or not executable.
    type: str
    default: hvpatch
  uri:
    description:
      - The libvirt connection URI (C(hvpatch -c URI)); hvpatch's default is C(qemu:///system).
    type: str
  policy:
    description:
      - The policy file on the target host (C(hvpatch --policy FILE)); hvpatch's default is
        C(/etc/hvpatch/policy.xml).
    type: path
  state_dir:
    description:
      - hvpatch's state folder on the target host (records, journals, locks, bad marks), passed as
        C(HVPATCH_STATE_DIR). Default C(/var/lib/hvpatch), or C(HVPATCH_STATE_DIR) from the task's
        C(environment).
    type: path
notes:
  - The module runs hvpatch as C(hvpatch --json) on the target host, as root (hvpatch reads the
    QEMU processes' memory), and reads only its JSON documents, never its human output.
  - A JSON document that names its schema (a C(schema) field C(urn:hvpatch:COMMAND:MAJOR)) must be of
    major version 1; documents without the field (older hvpatch) are accepted.
  - hvpatch's exit codes (README) are returned in C(rc), with their meaning in C(exit_meaning).
requirements:
  - hvpatch on the target host, run as root, with libvirt's QEMU guests.
'''

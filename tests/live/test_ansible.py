#!/usr/bin/env python3
"""The hvpatch.hvpatch Ansible collection (ansible/) over real SSH on live guests.

The test starts its own sshd (/usr/sbin/sshd -D -f CONFIG: a loopback port, its own host
key, root by key only, a fresh client key pair; the system's ssh configuration is not
touched) and an inventory whose hosts are reached through it on different loopback
addresses: hostA (127.0.0.1, guest a) and hostB (127.0.0.2, guests b and c), each with its
own hvpatch state folder (HVPATCH_STATE_DIR through the play's environment), the policy
and the hvpatch binary of the build. Three guests (4-level paging, KASLR) are booted at
once and shared by the cases, in order. The bundle is images/demo/build-demo.sh's
demo-version (/proc/version gets a marker), signed with the real minisign; the policy
trusts the key for the three guests. Every run is `ansible-playbook` of the collection's
example ansible/playbooks/rollout.yml (rings serial [1, 50%, 100%], max_fail_percentage 0)
with ANSIBLE_COLLECTIONS_PATH at a temporary ansible_collections/hvpatch/hvpatch -> ansible/.

  1. --check: the PLAY RECAP says changed=1 on both hosts, each guest "would-apply";
     nothing written: version_proc_show's bytes in each guest's memory (hvpatch read)
     are the same before and after, status shows no patch, /proc/version is unchanged;
  2. the real run: changed=1 on both hosts, the marker in every guest's /proc/version;
  3. the same run again: changed=0 on both hosts;
  4. state=absent: changed=1 on both, the marker gone from every guest; again: changed=0;
  5. a refusal (hostA with a policy that trusts another key): the task fails, its message
     holds every reason `hvpatch --json check` gives and rc 3; the guest is unpatched;
  6. rings: four hosts (A: a, B: b, C: a under the refusing policy, D: c; serial gives
     rings [A], [B, C], [D]): C's refusal in ring 2 stops the play, D's guest c is not
     touched (no task ran for hostD, no patch in c); with max_fail_percentage 50 the same
     run goes on to ring 3 (c patched) and hostA and hostB report changed=0;
  7. the other modules on one host each: hvpatch_sync with a catalog folder holding the
     bundle (check mode: would apply, nothing written; then applied; then changed=false)
     and hvpatch_rollout over guests b and c (rings 1,100%: both done; again: changed=false);
  8. ansible-doc renders every module of the collection.

Oracles hvpatch does not control: the guests' /proc/version (test command channel),
ansible-playbook's PLAY RECAP and task lines.

    python3 tests/live/test_ansible.py     # last line: "N passed, M failed"

Environment: HVPATCH (default build/cli/hvpatch), HVP_KERNEL_DIR, HVP_GUEST_DIR, CC.
Must run as root with libvirt, ansible and openssh-server (it fails, not skips, otherwise).
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib  # noqa: E402

REPO = guestlib.REPO
COLLECTION = os.path.join(REPO, "ansible")
PLAYBOOK = os.path.join(COLLECTION, "playbooks", "rollout.yml")
MODULES = ["hvpatch_patch", "hvpatch_facts", "hvpatch_sync", "hvpatch_rollout"]
VERSION_MARKER = " [hvpatch: hotpatched]"
SSHD = "/usr/sbin/sshd"
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


hvpatch_exe = guestlib.hvpatch_exe


def setUpModule():
    if os.geteuid() != 0:
        raise RuntimeError("live ansible test needs root (libvirt qemu:///system, sshd)")
    for tool in ("minisign", "virsh", "ansible-playbook", "ansible-doc", "ssh", "ssh-keygen", SSHD,
                 os.environ.get("CC", "gcc")):
        if not shutil.which(tool):
            raise RuntimeError(f"{tool} not found (images/setup-host.sh installs it)")
    if not os.access(hvpatch_exe(), os.X_OK):
        raise RuntimeError(f"{hvpatch_exe()} not found (build it, or set HVPATCH)")
    subprocess.run([os.path.join(REPO, "images", "setup-host.sh")], check=True, stdout=subprocess.DEVNULL)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class AnsibleLive(unittest.TestCase):
    names = []
    sshd = None

    @classmethod
    def setUpClass(cls):
        cls.ws = guestlib.Workspace("hvp-ans.", dirs=("work", "state-A", "state-B", "state-C"))
        cls.tmp, cls.work = cls.ws.root, cls.ws.work
        cls.state = {h: cls.ws.path("state-" + h) for h in ("A", "B", "C")}
        try:
            cls.prepare()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.sshd:
                cls.sshd.terminate()
                try:
                    cls.sshd.wait(10)
                except subprocess.TimeoutExpired:
                    cls.sshd.kill()
                    cls.sshd.wait()
            for n in cls.names:
                guestlib.Guest(n).destroy()
        finally:
            cls.ws.cleanup()

    # -- setup -------------------------------------------------------------------
    @classmethod
    def prepare(cls):
        # sshd first: it runs while the guests boot (all three at once)
        cls.start_sshd()
        cls.names = [f"hvp-ans-{os.getpid()}-{c}" for c in "abc"]
        cls.g = {n[-1]: g for n, g in zip(cls.names, guestlib.boot_guests(
            cls.names, paging=4, kaslr=True, kernel_dir=guestlib.kernel_dir()))}
        ids = {g.build_id() for g in cls.g.values()}
        if len(ids) != 1:
            raise RuntimeError(f"the guests run different kernels: {ids}")
        build_id = ids.pop()

        _, key = guestlib.minisign_keypair(cls.work, "ans")
        guestlib.minisign_keypair(cls.work, "other")
        cls.bundle = guestlib.demo_bundle(build_id, os.path.join(cls.work, "good"))
        guestlib.minisign_sign(key, cls.bundle, "ansible")
        group = guestlib.policy_group("ans", f"hvp-ans-{os.getpid()}-*", build_id)
        cls.policy = guestlib.write_policy(os.path.join(cls.work, "policy.xml"),
                                           guestlib.policy_key("ans", "ans.pub"), group)
        # trusts another key only (under the name "ans")
        cls.refusing = guestlib.write_policy(os.path.join(cls.work, "refusing.xml"),
                                             guestlib.policy_key("ans", "other.pub"), group)

        # the collection where ansible finds it: ansible_collections/hvpatch/hvpatch -> ansible/
        cls.colls = os.path.join(cls.tmp, "collections")
        os.makedirs(os.path.join(cls.colls, "ansible_collections", "hvpatch"))
        os.symlink(COLLECTION, os.path.join(cls.colls, "ansible_collections", "hvpatch", "hvpatch"))
        for d in ("home", "cp", "remote"):
            os.mkdir(os.path.join(cls.tmp, d), 0o700)
        open(os.path.join(cls.tmp, "ansible.cfg"), "w").close()     # no ansible.cfg of the caller's applies
        n = cls.names
        cls.inv = cls.inventory("main", [("hostA", "127.0.0.1", [n[0]], "A", cls.policy),
                                         ("hostB", "127.0.0.2", [n[1], n[2]], "B", cls.policy)])
        cls.rings_inv = cls.inventory("rings", [("hostA", "127.0.0.1", [n[0]], "A", cls.policy),
                                                ("hostB", "127.0.0.2", [n[1]], "B", cls.policy),
                                                ("hostC", "127.0.0.3", [n[0]], "C", cls.refusing),
                                                ("hostD", "127.0.0.4", [n[2]], "B", cls.policy)])

    @classmethod
    def start_sshd(cls):
        d = os.path.join(cls.tmp, "ssh")
        os.mkdir(d, 0o700)
        cls.ssh_dir = d
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hvp-ans-host",
                        "-f", os.path.join(d, "host_key")], check=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hvp-ans-client",
                        "-f", os.path.join(d, "client_key")], check=True)
        shutil.copy(os.path.join(d, "client_key.pub"), os.path.join(d, "authorized_keys"))
        cls.port = free_port()
        with open(os.path.join(d, "host_key.pub")) as f:
            hostkey = " ".join(f.read().split()[:2])
        with open(os.path.join(d, "known_hosts"), "w") as f:
            for i in range(1, 5):
                f.write(f"[127.0.0.{i}]:{cls.port} {hostkey}\n")
        conf = os.path.join(d, "sshd_config")
        with open(conf, "w") as f:
            f.write(f"""Port {cls.port}
ListenAddress 127.0.0.1
ListenAddress 127.0.0.2
ListenAddress 127.0.0.3
ListenAddress 127.0.0.4
HostKey {d}/host_key
PidFile {d}/sshd.pid
AuthorizedKeysFile {d}/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxStartups 50
MaxSessions 50
Subsystem sftp /usr/lib/openssh/sftp-server
""")
        # sshd's privilege separation folder (Debian's init creates it at boot; no init here)
        os.makedirs("/run/sshd", 0o755, exist_ok=True)
        cls.sshd = subprocess.Popen([SSHD, "-D", "-e", "-f", conf], stderr=open(os.path.join(d, "sshd.log"), "w"))
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.4", cls.port), 1).close()
                break
            except OSError:
                if cls.sshd.poll() is not None or time.monotonic() > deadline:
                    with open(os.path.join(d, "sshd.log")) as f:
                        raise RuntimeError(f"sshd did not start: {f.read()[-2000:]}")
                time.sleep(0.2)

    @classmethod
    def inventory(cls, name, hosts):
        """An INI inventory: group hypervisors, each host with its address, guests, state folder, policy."""
        lines = ["[hypervisors]"]
        for host, addr, domains, state, policy in hosts:
            lines.append(f"{host} ansible_host={addr} hvpatch_domains='{json.dumps(domains)}' "
                         f"hvpatch_policy={policy} "
                         f"hvpatch_environment='{json.dumps({'HVPATCH_STATE_DIR': cls.state[state]})}'")
        lines += ["", "[hypervisors:vars]",
                  "ansible_user=root", f"ansible_port={cls.port}",
                  f"ansible_ssh_private_key_file={cls.ssh_dir}/client_key",
                  f"ansible_ssh_common_args='-o UserKnownHostsFile={cls.ssh_dir}/known_hosts "
                  "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -F /dev/null'",
                  "ansible_python_interpreter=/usr/bin/python3",
                  f"hvpatch_binary={hvpatch_exe()}", ""]
        path = os.path.join(cls.tmp, name + ".ini")
        with open(path, "w") as f:
            f.write("\n".join(lines))
        return path

    # -- helpers ---------------------------------------------------------------------
    def env(self):
        t = self.tmp
        return dict(os.environ, ANSIBLE_COLLECTIONS_PATH=self.colls, ANSIBLE_HOME=os.path.join(t, "home"),
                    ANSIBLE_LOCAL_TEMP=os.path.join(t, "home", "tmp"), ANSIBLE_REMOTE_TEMP=os.path.join(t, "remote"),
                    ANSIBLE_SSH_CONTROL_PATH_DIR=os.path.join(t, "cp"), ANSIBLE_NOCOLOR="1",
                    ANSIBLE_FORCE_COLOR="0", ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_HOST_KEY_CHECKING="True",
                    ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_CONFIG=os.path.join(t, "ansible.cfg"),
                    ANSIBLE_PIPELINING="True", ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks")

    def play(self, inventory=None, *extra, check=False, limit=None, expect_rc=0):
        """ansible-playbook rollout.yml; returns (output, {host: (ok, changed, unreachable, failed)})."""
        argv = ["ansible-playbook", "-i", inventory or self.inv, PLAYBOOK, "-e", f"hvpatch_bundle={self.bundle}"]
        for e in extra:
            argv += ["-e", e]
        if check:
            argv.append("--check")
        if limit:
            argv += ["--limit", limit]
        t0 = time.monotonic()
        p = subprocess.run(argv, capture_output=True, text=True, timeout=1200, env=self.env(), cwd=self.tmp)
        out = p.stdout + p.stderr
        print(f"\n  ansible-playbook {' '.join(argv[5:]) or '(real run)'}: exit {p.returncode} in "
              f"{time.monotonic() - t0:.1f} s", file=sys.stderr)
        prof = [line for line in out.split("PLAY RECAP")[-1].splitlines() if re.search(r" -+ \d+\.\d+s$", line)]
        print("\n".join("    " + line for line in prof[:6]), file=sys.stderr)
        self.assertEqual(p.returncode, expect_rc, out[-6000:])
        recap = {m.group(1): tuple(int(x) for x in m.groups()[1:]) for m in RECAP.finditer(out.split("PLAY RECAP")[-1])}
        return out, recap

    def changed(self, recap):
        return {h: v[1] for h, v in recap.items()}

    def hv(self, state, *args):
        p = subprocess.run([hvpatch_exe(), "--json", "--policy", self.policy] + [str(a) for a in args],
                           capture_output=True, text=True, timeout=600, env=dict(os.environ, HVPATCH_STATE_DIR=state))
        try:
            return p.returncode, json.loads(p.stdout)
        except ValueError:
            self.fail(f"hvpatch {args}: not JSON (exit {p.returncode}): {p.stdout!r} {p.stderr!r}")

    def owner_state(self, c):
        return self.state["A" if c == "a" else "B"]

    def applied(self, c):
        rc, st = self.hv(self.owner_state(c), "status", self.g[c].name)
        self.assertEqual(rc, 0, st)
        return [p["id"] for p in st["patches"] if p["state"] == "applied"]

    def site(self, c):
        rc, doc = self.hv(self.owner_state(c), "read", self.g[c].name, "version_proc_show", 32)
        self.assertEqual(rc, 0, doc)
        return doc["hex"]

    def patched(self, c):
        return VERSION_MARKER in self.g[c].check("cat /proc/version")

    # -- the cases, in order ---------------------------------------------------------
    def test_1_check_mode_changes_nothing(self):
        before = {c: self.site(c) for c in self.g}
        out, recap = self.play(check=True)
        self.assertEqual(self.changed(recap), {"hostA": 1, "hostB": 1}, out[-3000:])
        for n in self.names:
            self.assertRegex(out, rf'"{n}",\s*"would-apply"')
        for c in self.g:
            self.assertEqual(self.site(c), before[c], c)
            self.assertEqual(self.applied(c), [], c)
            self.assertFalse(self.patched(c), c)

    def test_2_apply_on_every_guest(self):
        before = {c: self.site(c) for c in self.g}
        out, recap = self.play()
        self.assertEqual(self.changed(recap), {"hostA": 1, "hostB": 1}, out[-3000:])
        for n in self.names:
            self.assertRegex(out, rf'"{n}",\s*"applied"')
        for c in self.g:
            self.assertTrue(self.patched(c), c)
            self.assertEqual(self.applied(c), ["demo-version-1"], c)
            self.assertNotEqual(self.site(c), before[c], c)

    def test_3_second_run_changes_nothing(self):
        out, recap = self.play()
        self.assertEqual(self.changed(recap), {"hostA": 0, "hostB": 0}, out[-3000:])
        for n in self.names:
            self.assertRegex(out, rf'"{n}",\s*"already-applied"')
        for c in self.g:
            self.assertEqual(self.g[c].check("cat /proc/version").count(VERSION_MARKER), 1, c)

    def test_4_absent_reverts_then_changes_nothing(self):
        out, recap = self.play(None, "hvpatch_state=absent")
        self.assertEqual(self.changed(recap), {"hostA": 1, "hostB": 1}, out[-3000:])
        for c in self.g:
            self.assertFalse(self.patched(c), c)
            self.assertEqual(self.applied(c), [], c)
        out, recap = self.play(None, "hvpatch_state=absent")
        self.assertEqual(self.changed(recap), {"hostA": 0, "hostB": 0}, out[-3000:])
        for n in self.names:
            self.assertRegex(out, rf'"{n}",\s*"not-applied"')

    def test_5_refusal_fails_with_hvpatch_reasons(self):
        name = self.g["a"].name
        p = subprocess.run([hvpatch_exe(), "--json", "--policy", self.refusing, "check", name, self.bundle],
                           capture_output=True, text=True, timeout=600,
                           env=dict(os.environ, HVPATCH_STATE_DIR=self.state["A"]))
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
        reasons = [r["reason"] for r in json.loads(p.stdout)["reasons"]]
        self.assertTrue(reasons)
        out, recap = self.play(None, f"hvpatch_policy={self.refusing}", limit="hostA", expect_rc=2)
        self.assertEqual(recap["hostA"][3], 1, recap)
        m = re.search(r"^fatal: \[hostA\]: FAILED! => (\{.*\})$", out, re.M)
        self.assertIsNotNone(m, out[-3000:])
        res = json.loads(m.group(1))
        print(f"\n  refusal: {res['msg']}", file=sys.stderr)
        self.assertEqual((res["rc"], res["exit_meaning"]), (3, "refused"))
        for r in reasons:
            self.assertIn(r, res["msg"])
        self.assertEqual([r["reason"] for r in res["reasons"]], reasons)
        self.assertNotIn("hostB", recap)
        self.assertFalse(self.patched("a"))
        self.assertEqual(self.applied("a"), [])

    def test_6_rings_stop_after_a_failing_ring(self):
        site_c = self.site("c")
        out, recap = self.play(self.rings_inv, expect_rc=2)
        rollout = out.split("PLAY [Roll the bundle out in rings]")[-1].split("PLAY RECAP")[0]
        print(f"\n  rings: {self.changed(recap)}; failed: {[h for h, v in recap.items() if v[3]]}", file=sys.stderr)
        self.assertEqual(recap["hostA"][1:4], (1, 0, 0), recap)     # ring 1
        self.assertEqual(recap["hostB"][1:4], (1, 0, 0), recap)     # ring 2, beside the refusal
        self.assertEqual(recap["hostC"][3], 1, recap)               # ring 2: refused
        self.assertIn("[hostC]", rollout)
        self.assertNotIn("[hostD]", rollout)                        # ring 3 never ran
        self.assertTrue(self.patched("a"))
        self.assertTrue(self.patched("b"))
        self.assertFalse(self.patched("c"))
        self.assertEqual(self.applied("c"), [])
        self.assertEqual(self.site("c"), site_c)
        # tolerating half a ring's failures, the same play goes on to ring 3
        out, recap = self.play(self.rings_inv, "hvpatch_max_fail_percentage=50", expect_rc=2)
        self.assertEqual(self.changed(recap)["hostA"], 0, recap)
        self.assertEqual(self.changed(recap)["hostB"], 0, recap)
        self.assertEqual(recap["hostC"][3], 1, recap)
        self.assertEqual(recap["hostD"][1:4], (1, 0, 0), recap)
        self.assertTrue(self.patched("c"))

    def adhoc(self, host, module, args, check=False):
        """`ansible HOST -m hvpatch.hvpatch.MODULE -a ARGS` (JSON callback); returns the module's result."""
        argv = ["ansible", "-i", self.inv, host, "-m", "hvpatch.hvpatch." + module, "-a", json.dumps(args)]
        if check:
            argv.append("--check")
        env = dict(self.env(), ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json",
                   ANSIBLE_CALLBACKS_ENABLED="")     # stdout: the JSON document only
        p = subprocess.run(argv, capture_output=True, text=True, timeout=1200, env=env, cwd=self.tmp)
        try:
            doc = json.loads(p.stdout)
            return doc["plays"][0]["tasks"][0]["hosts"][host]
        except (ValueError, KeyError, IndexError):
            self.fail(f"ansible {module}: exit {p.returncode}: {p.stdout[-3000:]} {p.stderr[-2000:]}")

    def test_7_sync_and_rollout_modules(self):
        """hvpatch_sync (a catalog holding the bundle) on hostA, hvpatch_rollout on hostB: check
        mode changes nothing, a run patches, a second run changes nothing."""
        for c in self.g:       # test 6 left every guest patched
            rc, out = self.hv(self.owner_state(c), "revert", self.g[c].name, "demo-version-1")
            self.assertEqual(rc, 0, out)
            self.assertFalse(self.patched(c), c)
        catalog = os.path.join(self.tmp, "catalog")
        os.mkdir(catalog)
        for f in (self.bundle, self.bundle + ".minisig"):
            shutil.copy(f, catalog)
        common = dict(hvpatch=hvpatch_exe(), policy=self.policy, state_dir=self.state["A"])
        sync = dict(common, catalog=catalog, domains=[self.g["a"].name])
        res = self.adhoc("hostA", "hvpatch_sync", sync, check=True)
        self.assertTrue(res["changed"], res)
        self.assertEqual([(x["domain"], x["patch_id"]) for x in res["applied"]], [(self.g["a"].name, "demo-version-1")])
        self.assertFalse(self.patched("a"))
        res = self.adhoc("hostA", "hvpatch_sync", sync)
        self.assertTrue(res["changed"], res)
        self.assertIsNotNone(res["applied"][0]["pause_ms"], res)
        self.assertTrue(self.patched("a"))
        res = self.adhoc("hostA", "hvpatch_sync", sync)
        self.assertFalse(res["changed"], res)
        self.assertEqual(res["applied"], [])

        rollout = dict(common, bundle=self.bundle, domains=[f"hvp-ans-{os.getpid()}-[bc]"], rings="1,100%",
                       health=0, state_dir=self.state["B"], state_file=os.path.join(self.tmp, "rollout.json"))
        res = self.adhoc("hostB", "hvpatch_rollout", rollout)
        self.assertTrue(res["changed"], res)
        self.assertEqual(sorted((g["domain"], g["status"]) for g in res["guests"]),
                         [(self.g["b"].name, "done"), (self.g["c"].name, "done")], res)
        self.assertEqual(res["summary"]["counts"]["done"], 2, res)
        self.assertTrue(self.patched("b") and self.patched("c"))
        res = self.adhoc("hostB", "hvpatch_rollout", rollout)
        self.assertFalse(res["changed"], res)
        self.assertEqual(res["guests"], [])

    def test_8_ansible_doc_renders_every_module(self):
        for m in MODULES:
            p = subprocess.run(["ansible-doc", "hvpatch.hvpatch." + m], capture_output=True, text=True,
                               timeout=120, env=self.env(), cwd=self.tmp)
            self.assertEqual(p.returncode, 0, f"{m}: {p.stderr}")
            for section in ("OPTIONS", "EXAMPLES", "RETURN VALUES"):
                self.assertIn(section, p.stdout, m)


def main():
    result = unittest.TextTestRunner(verbosity=2).run(unittest.defaultTestLoader.loadTestsFromModule(
        sys.modules[__name__]))
    return guestlib.summary(result)


if __name__ == "__main__":
    sys.exit(main())

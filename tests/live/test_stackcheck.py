#!/usr/bin/env python3
"""The stack check on a real guest (Debian 12's 6.1, 4-level paging, KASLR on): no
task may hold a return address inside a range being changed (issue 10, item 3).

One guest, the cases in order:

  * a `sleep 600` in the guest is parked in do_nanosleep, which called schedule():
    its kernel stack holds the return address just after that call. A replace site
    made of that call and the instruction after it (re-encoded: `mov rdi, rbx` as
    48 8b fb instead of 48 89 df, the same instruction, so the guest behaves the same
    whatever happens) is refused with exit 4, and --json's busy_task names the sleep's
    pid, its comm and the address: the call's end, computed here from the disassembly
    and the guest's own /proc/kallsyms (schedule), not from hvpatch's check. No byte
    changes (QEMU's xp), the guest runs. `check` says the same first (a "stack" reason,
    exit 4, busy_task) and, with --stack-check off, would apply.
  * once the sleep is killed, the same bundle applies (its second site, the replace
    demo, makes /proc/cmdline end in '!': seen in the guest), the stack check's figures
    are in the JSON, and a new sleep runs through the patched bytes.
  * revert changes the same ranges back: with a new sleep parked there it is refused
    (exit 4, naming it); after the kill it reverts, /proc/cmdline ends in a newline again.
  * --stack-check off applies whatever the stacks hold, with a warning in the JSON;
    --stack-check require with a kernel that has BTF runs the check (refused again).
  * consistency="function" (a replace of just the instruction after that call, which
    starts at the sleep's return address): refused (exit 4, naming the sleep, the range
    starting at do_nanosleep) while the sleep is parked; without the attribute the same
    site applies then (a task resuming at a range's first byte is no hazard) and reverts;
    after the kill the function-consistent bundle applies; its revert is refused while a
    new sleep is parked in the function (the guard is kept in the record), then reverts.

    python3 tests/live/test_stackcheck.py      # last line: "N passed, M failed"

Needs root, libvirt and the kernel (images/fetch-kernel.sh; env HVP_KERNEL_DIR skips the
fetch). Env HVPATCH: the hvpatch binary (default build/cli/hvpatch).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib  # noqa: E402

PREFIX = "hvp-cons-st-"
CREATED = []
ENV = {}

# Register-to-register ALU/mov with a direction bit: op r/m, r (op) == op r, r/m (op ^ 2)
# with ModRM's reg and r/m swapped (and REX.R with REX.B): the same instruction.
SWAPPABLE = {0x01, 0x03, 0x09, 0x0b, 0x11, 0x13, 0x19, 0x1b, 0x21, 0x23, 0x29, 0x2b,
             0x31, 0x33, 0x39, 0x3b, 0x89, 0x8b}


def reencode(b):
    """Another encoding of the same reg-reg instruction, or None."""
    rex = None
    if len(b) == 3 and 0x40 <= b[0] <= 0x4f:
        rex, b = b[0], b[1:]
    if len(b) != 2 or b[0] not in SWAPPABLE or b[1] >> 6 != 3:
        return None
    reg, rm = (b[1] >> 3) & 7, b[1] & 7
    out = bytes([b[0] ^ 2, 0xc0 | (rm << 3) | reg])
    if rex is not None:
        r, x, bb = (rex >> 2) & 1, (rex >> 1) & 1, rex & 1
        out = bytes([(rex & 0xf8) | (bb << 2) | (x << 1) | r]) + out
    return out


def hvpatch_exe():
    exe = os.environ.get("HVPATCH", "build/cli/hvpatch")
    return exe if os.path.isabs(exe) else os.path.join(guestlib.REPO, exe)


def hv(*args, timeout=180):
    """`hvpatch --json ARGS`: (returncode, parsed stdout, stderr)."""
    p = subprocess.run([hvpatch_exe(), "--json"] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=timeout)
    try:
        out = guestlib.validate_json(json.loads(p.stdout), args) if p.stdout.strip() else None
    except ValueError:
        raise AssertionError(f"hvpatch {' '.join(map(str, args))}: stdout not JSON: {p.stdout[:400]!r}")
    return p.returncode, out, p.stderr


def xp(g, va, n):
    """n bytes at va as QEMU reads them (its own translation, HMP gva2gpa and xp)."""
    gpa = g.gva2gpa(va)
    if gpa is None:
        raise AssertionError(f"QEMU cannot translate 0x{va:x}")
    return g.xp(gpa, n)


def setUpModule():
    if os.geteuid() != 0:
        raise RuntimeError("live stack-check tests need root (libvirt qemu:///system)")
    subprocess.run([os.path.join(guestlib.REPO, "images", "setup-host.sh")], check=True,
                   stdout=subprocess.DEVNULL)
    ENV["kernel"] = guestlib.kernel_dir()
    ENV["tmp"] = tempfile.mkdtemp(prefix="hvp-cons-st-")
    os.environ["HVPATCH_STATE_DIR"] = os.path.join(ENV["tmp"], "state")
    os.makedirs(os.environ["HVPATCH_STATE_DIR"], mode=0o700)


def tearDownModule():
    if ENV.get("tmp"):
        shutil.rmtree(ENV["tmp"], ignore_errors=True)


class StackCheck(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.name = f"{PREFIX}{os.getpid()}"
        CREATED.append(cls.name)
        cls.g = guestlib.Guest.create(cls.name, paging=4, kaslr=True, kernel_dir=ENV["kernel"])
        g = cls.g
        syms = {}
        for line in g.check("grep -E ' (schedule|do_nanosleep|cmdline_proc_show)$' /proc/kallsyms").splitlines():
            f = line.split()
            syms[f[2]] = int(f[0], 16)
        for s in ("schedule", "do_nanosleep", "cmdline_proc_show"):
            if s not in syms:
                raise AssertionError(f"{s} not in the guest's /proc/kallsyms")
        cls.syms = syms
        # The call to schedule() in do_nanosleep and the instruction after it.
        rc, insns, err = hv("disasm", cls.name, "do_nanosleep", 400)
        if rc != 0:
            raise AssertionError(f"hvpatch disasm: {err}")
        cls.site = None
        for a, b in zip(insns, insns[1:]):
            if a["mnemonic"] == "call" and a["operands"].strip() == "0x%x" % syms["schedule"]:
                nb = bytes.fromhex(b["bytes"])
                alt = reencode(nb)
                if alt:
                    call = bytes.fromhex(a["bytes"])
                    cls.site = (int(a["addr"], 16), call + nb, call + alt, int(a["addr"], 16) + len(call))
                    break
        if not cls.site:
            raise AssertionError("no call to schedule() followed by a re-encodable instruction in do_nanosleep "
                                 "(another kernel build? the test knows Debian 12's 6.1)")
        rc, insns, err = hv("disasm", cls.name, "cmdline_proc_show", 128)
        cmd = [i for i in insns if i["bytes"] == "be0a000000"]
        if rc != 0 or len(cmd) != 1:
            raise AssertionError("no single `mov esi, 0xa` in cmdline_proc_show")
        cls.cmdline_va = int(cmd[0]["addr"], 16)
        build_id = g.build_id()
        start, old, new, ret = cls.site
        xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<patch xmlns="urn:hvpatch:manifest:1" id="cons-1" series="cons" sequence="1">
  <target os="linux"><build-id>{build_id}</build-id></target>
  <sites>
    <replace symbol="do_nanosleep" offset="{start - syms['do_nanosleep']}" expected="{old.hex(' ')}"
             new="{new.hex(' ')}"/>
    <replace symbol="cmdline_proc_show" offset="{cls.cmdline_va - syms['cmdline_proc_show']}"
             expected="be 0a 00 00 00" new="be 21 00 00 00"/>
  </sites>
</patch>
"""
        path = os.path.join(ENV["tmp"], "cons.xml")
        with open(path, "w") as f:
            f.write(xml)
        cls.bundle = os.path.join(ENV["tmp"], "cons.hvp")
        subprocess.run([hvpatch_exe(), "pack", path, "-o", cls.bundle], check=True, stdout=subprocess.DEVNULL)

    def start_sleep(self):
        out = self.g.check("sleep 600 >/dev/null 2>&1 & echo $!").strip()
        pid = int(out.splitlines()[-1])
        # parked: its wchan is the nanosleep path (schedule() itself is not shown)
        for _ in range(50):
            wchan = self.g.run(f"cat /proc/{pid}/wchan")[1].strip()
            if wchan in ("hrtimer_nanosleep", "do_nanosleep"):
                return pid
            time.sleep(0.1)
        self.fail(f"sleep {pid} did not park in the nanosleep path (wchan {wchan!r})")

    def kill(self, pid):
        for i in range(50):
            if i % 10 == 0:     # again every second, in case the first kill came too early
                self.g.run(f"kill {pid}")
            if self.g.run(f"test -d /proc/{pid} && echo alive")[1].strip() != "alive":
                return
            time.sleep(0.1)
        self.fail(f"sleep {pid} did not exit")

    def assert_busy(self, rc, out, pid, what):
        self.assertEqual(rc, 4, f"{what}: {out}")
        self.assertIn("busy_task", out, out)
        bt = out["busy_task"]
        self.assertEqual(bt["pid"], pid, out)
        self.assertEqual(bt["comm"], "sleep", out)
        self.assertEqual(int(bt["address"], 16), self.site[3], out)     # just after the call
        self.assertEqual(bt["symbol"], "do_nanosleep+0x%x" % (self.site[3] - self.syms["do_nanosleep"]), out)
        self.assertIn(f"task {pid} (sleep)", out["error"])

    def site_bytes(self):
        return xp(self.g, self.site[0], len(self.site[1])), xp(self.g, self.cmdline_va, 5)

    def test_1_refused_while_a_task_sleeps_inside(self):
        pid = self.start_sleep()
        before = self.site_bytes()
        self.assertEqual(before, (self.site[1], bytes.fromhex("be0a000000")))
        # check (the dry run) takes apply's look before the pause: a "stack" reason, exit 4
        rc, out, err = hv("check", "--insecure-unsigned", self.name, self.bundle)
        self.assertEqual(rc, 4, f"check: {out}")
        self.assertFalse(out["would_apply"], out)
        self.assertEqual([r["stage"] for r in out["reasons"]], ["stack"], out)
        self.assertIn(f"task {pid} (sleep)", out["reasons"][0]["reason"], out)
        self.assertEqual((out["busy_task"]["pid"], out["busy_task"]["comm"]), (pid, "sleep"), out)
        self.assertEqual(int(out["busy_task"]["address"], 16), self.site[3], out)
        self.assertTrue(out["stack_check"]["enabled"], out)
        # without the stack check nothing else stands in the way
        rc, out, err = hv("check", "--insecure-unsigned", "--stack-check", "off", self.name, self.bundle)
        self.assertEqual((rc, out["would_apply"], out["reasons"]), (0, True, []), out)
        self.assertFalse(out["stack_check"]["enabled"], out)
        self.assertEqual(self.site_bytes(), before, "bytes changed by a check")
        rc, out, err = hv("apply", "--insecure-unsigned", self.name, self.bundle)
        self.assert_busy(rc, out, pid, "apply")
        self.assertIn("5 attempts", out["error"])
        self.assertEqual(self.site_bytes(), before, "bytes changed by a refused apply")
        self.assertEqual(subprocess.run(guestlib.VIRSH + ["domstate", self.name], capture_output=True,
                                        text=True).stdout.strip(), "running")
        # --stack-check require: the kernel has BTF, so the check runs and refuses the same way
        rc, out, err = hv("apply", "--insecure-unsigned", "--stack-check", "require", self.name, self.bundle)
        self.assert_busy(rc, out, pid, "apply --stack-check require")
        self.__class__.pid = pid

    def test_2_applies_once_the_task_left(self):
        self.kill(self.pid)
        rc, out, err = hv("check", "--insecure-unsigned", self.name, self.bundle)
        self.assertEqual((rc, out["would_apply"], out["reasons"]), (0, True, []), out)
        self.assertNotIn("busy_task", out)
        self.assertGreater(out["stack_check"]["tasks"], 10, out)
        rc, out, err = hv("apply", "--insecure-unsigned", self.name, self.bundle)
        self.assertEqual(rc, 0, f"{out} {err}")
        sc = out["stack_check"]
        self.assertTrue(sc["enabled"], out)
        self.assertGreater(sc["tasks"], 10, out)
        self.assertGreater(sc["before_pause_scanned"], 0, out)
        self.assertGreaterEqual(sc["in_pause_checked"], sc["tasks"], out)
        self.assertLess(sc["in_pause_ms"], out["pause_ms"], out)
        self.assertNotIn("warnings", out)
        self.assertEqual(self.site_bytes(), (self.site[2], bytes.fromhex("be21000000")))
        self.assertTrue(self.g.check("cat /proc/cmdline").rstrip("\n").endswith("!"),
                        "the replace demo's behaviour is not seen in the guest")
        # the patched call site runs: a sleep goes through it and returns
        self.assertEqual(self.g.check("sleep 1 && echo slept").strip(), "slept")
        print(f"\n  apply: pause {out['pause_ms']:.2f} ms, stack check {sc['tasks']} tasks, "
              f"{sc['before_pause_ms']:.2f} ms before the pause, {sc['in_pause_ms']:.3f} ms in it", file=sys.stderr)

    def test_3_revert_is_checked_too(self):
        pid = self.start_sleep()           # parked in the patched bytes now
        rc, out, err = hv("revert", self.name, "cons-1")
        self.assert_busy(rc, out, pid, "revert")
        self.assertEqual(self.site_bytes(), (self.site[2], bytes.fromhex("be21000000")))
        self.kill(pid)
        rc, out, err = hv("revert", self.name, "cons-1")
        self.assertEqual(rc, 0, f"{out} {err}")
        self.assertTrue(out["stack_check"]["enabled"], out)
        self.assertEqual(self.site_bytes(), (self.site[1], bytes.fromhex("be0a000000")))
        self.assertTrue(self.g.check("cat /proc/cmdline").endswith("\n"))

    def test_4_off_applies_with_a_warning(self):
        pid = self.start_sleep()
        rc, out, err = hv("apply", "--insecure-unsigned", "--stack-check", "off", self.name, self.bundle)
        self.assertEqual(rc, 0, f"{out} {err}")
        self.assertFalse(out["stack_check"]["enabled"], out)
        self.assertIn("off", out["stack_check"]["reason"])
        self.assertTrue(any("stack check was off" in w for w in out["warnings"]), out)
        self.kill(pid)
        rc, out, err = hv("revert", self.name, "cons-1")
        self.assertEqual(rc, 0, f"{out} {err}")
        rc, out, err = hv("apply", "--insecure-unsigned", "--stack-check", "sometimes", self.name, self.bundle)
        self.assertEqual(rc, 2, out)

    def bundle_after_call(self, consistency):
        """A bundle re-encoding only the instruction after the call to schedule(), which
        starts at the sleeping task's return address (no hit for its bytes: a task
        resuming at a range's first byte runs the new instruction whole)."""
        start, old, new, ret = self.site
        attr = f' consistency="{consistency}"' if consistency else ""
        tag = consistency or "default"
        xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<patch xmlns="urn:hvpatch:manifest:1" id="cons-{tag}" series="cons-{tag}" sequence="1">
  <target os="linux"><build-id>{self.g.build_id()}</build-id></target>
  <sites>
    <replace symbol="do_nanosleep" offset="{ret - self.syms['do_nanosleep']}"
             expected="{old[ret - start:].hex(' ')}" new="{new[ret - start:].hex(' ')}"{attr}/>
  </sites>
</patch>
"""
        path = os.path.join(ENV["tmp"], f"cons-{tag}.xml")
        with open(path, "w") as f:
            f.write(xml)
        bundle = os.path.join(ENV["tmp"], f"cons-{tag}.hvp")
        subprocess.run([hvpatch_exe(), "pack", path, "-o", bundle], check=True, stdout=subprocess.DEVNULL)
        return bundle

    def test_5_consistency_function_guards_the_whole_function(self):
        start, old, new, ret = self.site
        after = old[ret - start:]
        fn_bundle = self.bundle_after_call("function")
        site_bundle = self.bundle_after_call(None)
        pid = self.start_sleep()
        # consistency="function": the sleep's return address is in do_nanosleep's body
        rc, out, err = hv("apply", "--insecure-unsigned", self.name, fn_bundle)
        self.assert_busy(rc, out, pid, "apply consistency=function")
        self.assertIn("inside the range 0x%x.." % self.syms["do_nanosleep"], out["error"])
        self.assertEqual(xp(self.g, ret, len(after)), after, "bytes changed by a refused apply")
        # the same site with the default consistency: the bytes written are no hazard
        rc, out, err = hv("apply", "--insecure-unsigned", self.name, site_bundle)
        self.assertEqual(rc, 0, f"{out} {err}")
        self.assertEqual(xp(self.g, ret, len(after)), new[ret - start:])
        rc, out, err = hv("revert", self.name, "cons-default")
        self.assertEqual(rc, 0, f"{out} {err}")
        self.assertEqual(xp(self.g, ret, len(after)), after)
        # once the task has left the function, consistency=function applies and reverts
        self.kill(pid)
        rc, out, err = hv("apply", "--insecure-unsigned", self.name, fn_bundle)
        self.assertEqual(rc, 0, f"{out} {err}")
        self.assertEqual(xp(self.g, ret, len(after)), new[ret - start:])
        self.assertEqual(self.g.check("sleep 1 && echo slept").strip(), "slept")
        # the guard is in the record: the revert waits for a task in the function too
        pid = self.start_sleep()
        rc, out, err = hv("revert", self.name, "cons-function")
        self.assert_busy(rc, out, pid, "revert consistency=function")
        self.assertEqual(xp(self.g, ret, len(after)), new[ret - start:])
        self.kill(pid)
        rc, out, err = hv("revert", self.name, "cons-function")
        self.assertEqual(rc, 0, f"{out} {err}")
        self.assertEqual(xp(self.g, ret, len(after)), after)


def main():
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    try:
        result = unittest.TextTestRunner(verbosity=2).run(suite)
    finally:
        for name in CREATED:
            guestlib.Guest(name).destroy()
    return guestlib.summary(result)


if __name__ == "__main__":
    sys.exit(main())

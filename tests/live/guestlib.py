"""Helpers for hvpatch's live tests: boot, drive and inspect test guests.

Stdlib only. The guests are built by images/guest.sh (busybox initramfs,
Debian kernel, OVMF); this module talks to them through

  * the command channel: serial port 1, a unix socket on the host. The
    guest's /init reads one line, runs it with `sh -c`, writes the output and
    then "HVP-END <status>". The tty is raw and does not echo; should echo
    or CR/LF translation come back anyway, it is stripped here.
  * libvirt's HMP passthrough (virsh qemu-monitor-command --hmp), an
    oracle independent of hvpatch.

Framing: each command is sent as a newline followed by
    echo HVP-BEGIN <nonce>; eval "$(echo <base64 of CMD> | base64 -d)"
so any CMD (quotes, newlines) fits on one line, its exit status is eval's,
and output left over from an earlier command that timed out (which comes
before our HVP-BEGIN line) is skipped, and so is an echo of the command
line. If the HVP-BEGIN line ends in CR LF the tty translates newlines and
CR LF is turned back into LF in the output; on the raw tty output is
passed through byte for byte. The output is what lies between the
"HVP-BEGIN <nonce>" line and the next "HVP-END <status>" line. When the
output does not end in a newline the marker follows it on the same line;
the output then is everything before the marker.

Accelerator: guest.sh chooses it from HVP_ACCEL=auto|kvm|tcg (default auto; see
images/README.md), which the live tests pass on from their environment; Guest.accel
says which one a guest runs under ('kvm' or 'tcg', from its domain XML) and
Guest.accel_reason why; accel_choice() asks guest.sh without booting a guest.

Shared setup of the live tests (see "shared setup" below): Workspace (a temporary
work/, state/ (0700), catalog/; $HVPATCH_STATE_DIR), boot_guests (several guests at
once, all or nothing), demo_bundle (images/demo/build-demo.sh), minisign_keypair and
minisign_sign (the real minisign), policy_key, policy_group and write_policy (a policy
file), hvpatch_exe and hvpatchd_exe (the binaries under test). tests/unit/
test_guestlib_setup.py checks them without a guest.

Command line (used by `images/guest.sh run`):
    python3 guestlib.py run NAME 'CMD'
"""

import base64
import json as jsonlib
import os
import re
import secrets
import socket
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import xml.sax.saxutils

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GUEST_SH = os.path.join(REPO, "images", "guest.sh")
VIRSH = ["virsh", "-q", "-c", "qemu:///system"]
NON_KASLR_TEXT = 0xffffffff81000000     # _text without KASLR (x86-64)
NON_KASLR_PHYS = 0x1000000              # its physical address then (CONFIG_PHYSICAL_START)

_END = re.compile(rb"HVP-END (\d+)\r?\n")


class GuestError(Exception):
    """A guest could not be created, reached or understood."""


def state_dir(name):
    return os.path.join(os.environ.get("HVP_GUEST_DIR", "/var/lib/hvpatch-test"), "guests", name)


def _check(cmd, timeout, what):
    """Run cmd; return its stdout; raise GuestError with stderr on failure or timeout."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise GuestError(f"{what}: timed out after {timeout}s: {' '.join(cmd)}") from None
    except OSError as e:
        raise GuestError(f"{what}: cannot run {cmd[0]}: {e}") from None
    if p.returncode != 0:
        raise GuestError(f"{what} failed (exit {p.returncode}): {p.stderr.strip() or p.stdout.strip()}")
    return p.stdout


def channel_run(sock_path, cmd, timeout=30.0):
    """Run cmd through the command channel at sock_path. Returns (status, output bytes)."""
    nonce = secrets.token_hex(8)
    # The leading newline ends any fragment of an earlier, interrupted send
    # (QEMU may pass on part of what a client that gave up had written); a
    # truncated wrapper always has an open quote, so it is a harmless syntax error.
    wrapped = '\necho HVP-BEGIN %s; eval "$(echo %s | base64 -d)"\n' % (
        nonce, base64.b64encode(cmd.encode()).decode())
    begin = re.compile(rb"(?:^|\n)HVP-BEGIN " + nonce.encode() + rb"\r?\n")
    deadline = time.monotonic() + timeout

    def left():
        t = deadline - time.monotonic()
        if t <= 0:
            raise TimeoutError
        return t

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    buf = bytearray()
    try:
        try:
            s.settimeout(left())
            s.connect(sock_path)
            s.sendall(wrapped.encode())
            start = None
            pos = 0             # markers cannot start before pos: scan only new bytes
            while True:
                if start is None:
                    m = begin.search(buf, pos)
                    if m:
                        start = pos = m.end()
                        # "\r\n" here means the tty is not raw (onlcr): undo it below
                        cooked = m.group(0).endswith(b"\r\n")
                if start is not None:
                    m = _END.search(buf, pos)
                    if m:
                        out = bytes(buf[start:m.start()])
                        if cooked:
                            out = out.replace(b"\r\n", b"\n")
                        return int(m.group(1)), out
                pos = max(pos, len(buf) - 64)
                s.settimeout(left())
                chunk = s.recv(65536)
                if not chunk:
                    raise GuestError(f"command channel {sock_path} closed by QEMU")
                buf += chunk
        except (TimeoutError, socket.timeout):
            if not buf:
                got = "nothing received: guest hung or not booted, or another client holds the socket"
            else:
                got = f"last bytes received: {bytes(buf[-300:]).decode(errors='replace')!r}"
            raise GuestError(f"command {cmd!r} gave no HVP-END within {timeout}s ({got})") from None
        except FileNotFoundError:
            raise GuestError(f"no command channel socket {sock_path} (guest not running?)") from None
        except ConnectionError as e:
            raise GuestError(f"command channel {sock_path}: {e}") from None
    finally:
        s.close()


class Guest:
    """A running test guest. Use Guest.create() to boot one, Guest(name) to attach."""

    def __init__(self, name):
        self.name = name
        self.dir = state_dir(name)
        self.sock = os.path.join(self.dir, "cmd.sock")
        self.console_log = os.path.join(self.dir, "console.log")
        self.boot_seconds = None     # set by create(): seconds from start to HVP-READY
        self.create_log = ""         # set by create(): guest.sh's messages (accelerator choice...)

    # -- lifecycle ---------------------------------------------------------
    @classmethod
    def create(cls, name, paging=4, kaslr=True, memory=None, xml_extra=None,
               kernel_dir=None, timeout=None, env=None, patch_area=False):
        """Define and boot guest NAME; returns once HVP-READY was seen.

        patch_area: give it its own read-only patch area before it boots (guest.sh
        create --patch-area; needs $HVPATCH_STATE_DIR as the tests' hvpatch uses).
        The accelerator is guest.sh's choice (HVP_ACCEL=auto|kvm|tcg in the environment,
        or in env: extra variables for guest.sh); g.accel says which one ran.
        timeout: seconds to HVP-READY (default $HVP_BOOT_TIMEOUT, else 300: a TCG boot
        took 150 s on a loaded 2-core host)."""
        if timeout is None:
            timeout = int(os.environ.get("HVP_BOOT_TIMEOUT", "300"))
        if paging not in (4, 5):
            raise ValueError("paging must be 4 or 5")
        cmd = [GUEST_SH, "create", name, "--paging", str(paging),
               "--kaslr", "on" if kaslr else "off", "--timeout", str(timeout)]
        if memory:
            cmd += ["--memory", str(memory)]
        if xml_extra:
            cmd += ["--xml-extra", xml_extra]
        if patch_area:
            cmd += ["--patch-area"]
        kernel_dir = kernel_dir or os.environ.get("HVP_KERNEL_DIR")
        if kernel_dir:
            cmd += ["--kernel-dir", kernel_dir]
        g = cls(name)
        try:
            p = subprocess.run(cmd, capture_output=True, text=True,
                               env={**os.environ, **(env or {})},
                               timeout=2 * timeout + 300)  # + a TCG retry, kernel fetch, initramfs
        except BaseException:       # timeout, ^C: guest.sh was cut short, clean up after it
            g.destroy()
            raise
        if p.returncode != 0:       # guest.sh cleaned up (and may refuse an existing NAME)
            raise GuestError(f"guest.sh create {name} failed (exit {p.returncode}):\n{p.stderr.strip()}")
        g.create_log = p.stderr
        try:
            with open(os.path.join(g.dir, "boot-seconds")) as f:
                g.boot_seconds = float(f.read())
        except (OSError, ValueError):
            pass
        return g

    @property
    def accel(self):
        """The accelerator the domain runs under, from its XML: 'kvm' or 'tcg' (type='qemu')."""
        xml = _check(VIRSH + ["dumpxml", self.name], 30, f"virsh dumpxml {self.name}")
        m = re.search(r"<domain\b[^>]*\btype=['\"](\w+)['\"]", xml)
        if not m:
            raise GuestError(f"{self.name}: no <domain type=...> in its XML")
        return {"kvm": "kvm", "qemu": "tcg"}.get(m.group(1), m.group(1))

    @property
    def accel_reason(self):
        """Why guest.sh chose that accelerator (its state file 'accel'), or None."""
        try:
            with open(os.path.join(self.dir, "accel")) as f:
                for line in f:
                    if line.startswith("reason="):
                        return line[len("reason="):].rstrip("\n")
        except OSError:
            pass
        return None

    def destroy(self):
        """Destroy and undefine the domain and remove its state (absent: fine)."""
        _check([GUEST_SH, "destroy", self.name], 60, f"guest.sh destroy {self.name}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.destroy()
        return False

    # -- command channel -----------------------------------------------------
    def run_bytes(self, cmd, timeout=30):
        """Run cmd in the guest; returns (status, output bytes)."""
        return channel_run(self.sock, cmd, timeout)

    def run(self, cmd, timeout=30):
        """Run cmd in the guest; returns (status, output str)."""
        status, out = self.run_bytes(cmd, timeout)
        return status, out.decode(errors="replace")

    def check(self, cmd, timeout=30):
        """Run cmd; return its output; raise GuestError if its status is not 0."""
        status, out = self.run(cmd, timeout)
        if status != 0:
            raise GuestError(f"guest command {cmd!r} exited {status}: {out[-500:]}")
        return out

    def ready_count(self):
        """How many times HVP-READY appears on the console (once per boot)."""
        try:
            with open(self.console_log, "rb") as f:
                return f.read().count(b"HVP-READY")
        except OSError:
            return 0

    def reboot(self, timeout=180):
        """Reboot from inside (sysrq 'b': an immediate reset, as a crash reboot would be).

        virsh reboot asks by ACPI, which the busybox init does not answer; sysrq goes
        through the same QEMU reset and OVMF direct kernel boot as a power cycle,
        in the same QEMU process (the console log and channel socket stay). The
        command never returns, so it is sent without waiting for HVP-END. Returns
        the seconds until HVP-READY was seen again."""
        before = self.ready_count()
        t0 = time.monotonic()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(10)
            s.connect(self.sock)
            s.sendall(b"\necho b > /proc/sysrq-trigger\n")
            time.sleep(0.5)         # let QEMU pass the line on before we hang up
        except OSError as e:
            raise GuestError(f"cannot send the reboot to {self.name}: {e}") from None
        finally:
            s.close()
        while self.ready_count() <= before:
            if time.monotonic() - t0 > timeout:
                raise GuestError(f"{self.name}: no HVP-READY within {timeout}s of the reboot")
            time.sleep(0.2)
        return time.monotonic() - t0

    def kallsyms(self, timeout=300):
        """The guest's /proc/kallsyms as [(addr, type, name, module or None)].

        Sent gzip'd and base64-encoded: about 5x fewer bytes over the serial line."""
        b64 = self.check("gzip -c /proc/kallsyms | base64", timeout)
        import gzip
        text = gzip.decompress(base64.b64decode(b64)).decode(errors="replace")
        syms = []
        for line in text.splitlines():
            f = line.split()
            if len(f) < 3:
                continue
            mod = f[3].strip("[]") if len(f) > 3 else None
            syms.append((int(f[0], 16), f[1], f[2], mod))
        if not syms:
            raise GuestError("empty /proc/kallsyms")
        return syms

    def symbol(self, name):
        """Address of one symbol from /proc/kallsyms (cheap: grep in the guest)."""
        out = self.check(f"grep -m1 ' {name}$' /proc/kallsyms")
        return int(out.split()[0], 16)

    def proc_version(self):
        return self.check("cat /proc/version").strip()

    def uname_r(self):
        return self.check("uname -r").strip()

    def build_id(self):
        """GNU build id (hex str) from the ELF notes in /sys/kernel/notes."""
        raw = bytes.fromhex("".join(self.check("od -An -v -tx1 /sys/kernel/notes").split()))
        bid = parse_build_id(raw)
        if bid is None:
            raise GuestError("no GNU build-id note in /sys/kernel/notes")
        return bid

    # -- monitor -----------------------------------------------------------
    def hmp(self, cmd, timeout=30):
        """Run an HMP command through libvirt; returns its text output."""
        out = _check(VIRSH + ["qemu-monitor-command", self.name, "--hmp", cmd], timeout,
                     f"HMP {cmd!r} on {self.name}")
        if out.startswith("unknown command"):     # HMP reports this as success
            raise GuestError(f"HMP {cmd!r}: {out.strip()}")
        return out

    def registers(self):
        """'info registers' of vCPU 0 as {name: int} (RIP, CR0, CR3, CR4, EFER, ...)."""
        regs = {}
        for k, v in re.findall(r"\b([A-Z][A-Z0-9]*)\s*=\s*([0-9a-fA-F]+)\b", self.hmp("info registers")):
            regs.setdefault(k, int(v, 16))
        return regs

    def xp(self, gpa, n):
        """n bytes of guest-physical memory at gpa, as QEMU reads them (HMP xp)."""
        data = hmp_bytes(self.hmp("xp /%dxb 0x%x" % (n, gpa)))
        if len(data) != n:
            raise GuestError(f"xp 0x{gpa:x} gave {len(data)} bytes, not {n}")
        return data

    def gva2gpa(self, va):
        """Guest-physical address of va per QEMU (vCPU 0's page tables), or None if unmapped."""
        out = self.hmp("gva2gpa 0x%x" % va)
        m = re.search(r"gpa:\s*(0x[0-9a-fA-F]+)", out)
        if m:
            return int(m.group(1), 16)
        if "Unmapped" in out:
            return None
        raise GuestError(f"unexpected gva2gpa output: {out.strip()!r}")

    def kaslr_moved(self, text):
        """Whether KASLR moved the kernel whose _text is text: its virtual or its physical
        address differs from the default. Either alone may stay put by chance (virtual:
        1 boot in ~480 picks offset 0: seen once in a CI run), both at once far more rarely."""
        return text != NON_KASLR_TEXT or self.gva2gpa(text) != NON_KASLR_PHYS


def hmp_bytes(out):
    """Bytes of an HMP xp dump: "ADDR: 0x.. 0x.." lines, each value little-endian of its width."""
    data = bytearray()
    for line in out.splitlines():
        if ":" not in line:
            continue
        for v in line.split(":", 1)[1].split():
            digits = v[2:] if v.startswith("0x") else v
            data += int(digits, 16).to_bytes(len(digits) // 2, "little")
    return bytes(data)


def minisign(cwd, *args):
    """Run minisign in cwd (key generation -W: no password), quietly; raises on failure."""
    subprocess.run(["minisign"] + list(args), cwd=cwd, check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def hvpatch_exe():
    """The hvpatch binary the tests run: $HVPATCH (relative: to the repo), else build/cli/hvpatch."""
    exe = os.environ.get("HVPATCH", "build/cli/hvpatch")
    return exe if os.path.isabs(exe) else os.path.join(REPO, exe)


def hvpatchd_exe():
    """The hvpatchd binary: $HVPATCHD (relative: to the repo), else build/daemon/hvpatchd."""
    exe = os.environ.get("HVPATCHD", "build/daemon/hvpatchd")
    return exe if os.path.isabs(exe) else os.path.join(REPO, exe)


# -- shared setup of the live tests --------------------------------------------------------
# A test class typically does, in setUpClass:
#     cls.ws = guestlib.Workspace("hvp-NAME.")            # tmp/{work,state,catalog}
#     cls.g = guestlib.boot_guests([f"hvp-NAME-{os.getpid()}"])[0]
#     bundle = guestlib.demo_bundle(cls.g.build_id(), cls.ws.path("work", "s1"))
#     pub, key = guestlib.minisign_keypair(cls.ws.work, "rel")
#     guestlib.minisign_sign(key, bundle, "good")
#     guestlib.write_policy(path, guestlib.policy_key("rel", pub, "demo-*"),
#                           guestlib.policy_group("grp", name, build_id))
# and tearDownClass destroys its guests (by name: Guest(n).destroy(), absent is fine)
# before cls.ws.cleanup().

class Workspace:
    """A temporary folder for one test class, removed by cleanup().

    Holds the subfolders named in dirs (default work/, state/, catalog/), as attributes of
    the same name (ws.work, ws.state, ...) and absolute paths. state-like folders (every
    name starting with "state") are made mode 0700, as hvpatch wants its state folder; the
    others and the root 0755 (QEMU and helpers running as other users may read there).
    set_state_env: point $HVPATCH_STATE_DIR at state/ for every hvpatch this process
    starts; cleanup() puts the old value back. env(**extra): os.environ with
    HVPATCH_STATE_DIR=state/ and extra, for one child."""

    def __init__(self, prefix, dirs=("work", "state", "catalog"), set_state_env=False):
        self.root = tempfile.mkdtemp(prefix=prefix)
        self._old_state = os.environ.get("HVPATCH_STATE_DIR")
        self._set_env = False
        try:
            os.chmod(self.root, 0o755)
            for d in dirs:
                path = os.path.join(self.root, d)
                os.mkdir(path)
                os.chmod(path, 0o700 if d.startswith("state") else 0o755)
                setattr(self, d.replace("-", "_"), path)
            if set_state_env:
                os.environ["HVPATCH_STATE_DIR"] = self.state
                self._set_env = True
        except BaseException:
            self.cleanup()
            raise

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def env(self, **extra):
        return dict(os.environ, HVPATCH_STATE_DIR=self.state, **extra)

    def cleanup(self):
        if self._set_env:
            if self._old_state is None:
                os.environ.pop("HVPATCH_STATE_DIR", None)
            else:
                os.environ["HVPATCH_STATE_DIR"] = self._old_state
            self._set_env = False
        shutil.rmtree(self.root, ignore_errors=True)


def boot_guests(names, **kw):
    """Boot the guests NAMES at once (one thread each: every guest.sh create is independent),
    each with Guest.create(name, **kw). All or nothing: if any fails, the others are
    destroyed and GuestError names every failure (an interrupt is raised as it is).
    Returns the Guest objects in the order of names."""
    names = list(names)
    if len(set(names)) != len(names):
        raise ValueError(f"boot_guests: duplicate names in {names}")
    booted, errors = {}, []

    def boot(name):
        try:
            booted[name] = Guest.create(name, **kw)
        except BaseException as e:      # noqa: B902: reported below, in the main thread
            errors.append((name, e))

    threads = [threading.Thread(target=boot, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        for g in booted.values():
            try:
                g.destroy()
            except GuestError:
                pass
        for _, e in errors:
            if not isinstance(e, Exception):    # KeyboardInterrupt, SystemExit
                raise e
        if len(errors) == 1:
            raise errors[0][1]
        raise GuestError("; ".join(f"{n}: {e}" for n, e in errors))
    return [booted[n] for n in names]


BUILD_DEMO = os.path.join(REPO, "images", "demo", "build-demo.sh")


def demo_bundle(build_id, out_dir, sequence=None, cmdline_bytes=None, env=None):
    """Build the demo bundles for kernel build id BUILD_ID into OUT_DIR with
    images/demo/build-demo.sh (--sequence N, --cmdline-bytes HEX when given; the tests'
    hvpatch packs them; env: more variables for it, e.g. HVP_KERNEL_DIR). Returns
    OUT_DIR/demo-version.hvp (with cmdline_bytes, there is OUT_DIR/demo-cmdline.hvp too).
    Raises CalledProcessError on failure."""
    cmd = [BUILD_DEMO, "--build-id", build_id]
    if sequence is not None:
        cmd += ["--sequence", str(sequence)]
    if cmdline_bytes is not None:
        cmd += ["--cmdline-bytes", cmdline_bytes]
    subprocess.run(cmd + ["-o", out_dir], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "HVPATCH": hvpatch_exe(), **(env or {})})
    return os.path.join(out_dir, "demo-version.hvp")


def minisign_keypair(directory, name):
    """A new minisign key pair DIRECTORY/NAME.pub, DIRECTORY/NAME.key (no password).
    Returns (pub path, secret key path)."""
    minisign(directory, "-G", "-W", "-p", name + ".pub", "-s", name + ".key")
    return os.path.join(directory, name + ".pub"), os.path.join(directory, name + ".key")


def minisign_sign(key, path, comment):
    """Sign PATH with the secret KEY (trusted comment COMMENT); returns PATH.minisig."""
    minisign(os.path.dirname(os.path.abspath(path)), "-S", "-s", os.path.abspath(key),
             "-m", os.path.abspath(path), "-t", comment)
    return path + ".minisig"


def _attr(value):
    return xml.sax.saxutils.escape(str(value), {'"': "&quot;"})


def policy_key(name, pub, may_sign="*"):
    """A policy <key> element: NAME, its public key file PUB (relative: to the policy's
    folder), allowed to sign the series matching MAY_SIGN."""
    return (f'  <key name="{_attr(name)}"><public-key-file>{_attr(pub)}</public-key-file>'
            f'<may-sign series="{_attr(may_sign)}"/></key>\n')


def policy_group(name, select, build_id, extra=""):
    """A policy <group> NAME selecting the guests whose name matches SELECT, any time
    (<window/>), with one current baseline: kernel BUILD_ID. extra: more XML in the group
    (e.g. '<require secure-boot="yes"/>'), placed before the window."""
    return (f'  <group name="{_attr(name)}">\n'
            f'    <select name="{_attr(select)}"/>\n'
            + (f"    {extra}\n" if extra else "")
            + "    <window/>\n"
            f'    <baseline name="current" current="yes"><kernel build-id="{_attr(build_id)}"/></baseline>\n'
            "  </group>\n")


def write_policy(path, *parts):
    """Write a policy file PATH holding the elements PARTS (policy_key(), policy_group() or
    XML text of its own). Returns PATH."""
    with open(path, "w") as f:
        f.write('<?xml version="1.0"?>\n<policy version="1">\n' + "".join(parts) + "</policy>\n")
    return path


def kernel_dir():
    """The Debian kernel the guests boot: $HVP_KERNEL_DIR, else images/fetch-kernel.sh's."""
    kdir = os.environ.get("HVP_KERNEL_DIR")
    if not kdir:
        out = _check([os.path.join(REPO, "images", "fetch-kernel.sh")], 900, "fetch-kernel.sh")
        kdir = out.strip().splitlines()[-1]
    return kdir


SUITES = ("bookworm", "trixie", "sid")


def kernel_dir_for(suite):
    """The kernel of a Debian suite: $HVP_KERNEL_DIR_<SUITE> (scripts/test.sh sets them),
    else images/fetch-kernel.sh --suite SUITE (downloads it once, then cached)."""
    kdir = os.environ.get("HVP_KERNEL_DIR_" + suite.upper())
    if not kdir:
        out = _check([os.path.join(REPO, "images", "fetch-kernel.sh"), "--suite", suite], 900,
                     f"fetch-kernel.sh --suite {suite}")
        kdir = out.strip().splitlines()[-1]
    return kdir


def accel_choice(paging=4, env=None, timeout=None):
    """What guest.sh would choose for a guest now: (accel, reason, stderr).

    Probes KVM (one bounded boot) if no cached verdict fits. env: extra variables."""
    env = dict(os.environ, **(env or {}))
    if timeout is None:
        timeout = int(env.get("HVP_KVM_PROBE_TIMEOUT", "60")) + 300
    try:
        p = subprocess.run([GUEST_SH, "accel", "--paging", str(paging)], capture_output=True,
                           text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise GuestError(f"guest.sh accel: timed out after {timeout}s") from None
    if p.returncode != 0:
        raise GuestError(f"guest.sh accel failed (exit {p.returncode}): {p.stderr.strip()}")
    accel, _, reason = p.stdout.rstrip("\n").partition("\t")
    if accel not in ("kvm", "tcg") or not reason:
        raise GuestError(f"guest.sh accel: unexpected output {p.stdout!r}")
    return accel, reason, p.stderr


def parse_build_id(notes):
    """Find the NT_GNU_BUILD_ID note in a blob of ELF notes; return its hex desc or None."""
    off = 0
    while off + 12 <= len(notes):
        namesz, descsz, ntype = struct.unpack_from("<III", notes, off)
        off += 12
        name = notes[off:off + namesz]
        off += (namesz + 3) & ~3
        desc = notes[off:off + descsz]
        off += (descsz + 3) & ~3
        if off > len(notes):
            break
        if ntype == 3 and name.rstrip(b"\0") == b"GNU":
            return desc.hex()
    return None


def hvpatch(*args, json=True, timeout=120):
    """Run the hvpatch CLI (env HVPATCH, default build/cli/hvpatch in the repo).

    With json=True, --json is passed and stdout parsed: returns (rc, object).
    Otherwise returns (rc, stdout text). stderr is passed through to ours."""
    exe = os.environ.get("HVPATCH", "build/cli/hvpatch")
    if not os.path.isabs(exe) and os.sep in exe:
        exe = os.path.join(REPO, exe)
    argv = [exe] + (["--json"] if json else []) + [str(a) for a in args]
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, text=True, timeout=timeout)
    except FileNotFoundError:
        raise GuestError(f"hvpatch binary not found: {exe} (build it, or set HVPATCH)") from None
    except subprocess.TimeoutExpired:
        raise GuestError(f"hvpatch timed out after {timeout}s: {' '.join(argv)}") from None
    if not json:
        return p.returncode, p.stdout
    try:
        doc = jsonlib.loads(p.stdout)
    except ValueError as e:
        raise GuestError(f"hvpatch {' '.join(argv[1:])}: exit {p.returncode}, "
                         f"stdout is not JSON ({e}): {p.stdout[:500]!r}") from None
    validate_json(doc, args)
    return p.returncode, doc


def validate_json(doc, argv):
    """Check a parsed `hvpatch --json ARGV...` document against docs/schemas/ (the schema its
    "schema" field names; a top-level array: its command's). Raises AssertionError with the
    violations. For tests that run hvpatch themselves; hvpatch(json=True) does it already."""
    import jsonschemas
    jsonschemas.check(doc, jsonschemas.command_of(argv))
    return doc


def validate_json_lines(text):
    """Parse and check `hvpatch rollout --json` output (JSON lines); returns the objects."""
    import jsonschemas
    return jsonschemas.validate_lines(text)


SKIP_EXIT = 77      # CTest's SKIP_RETURN_CODE for the live tests (tests/CMakeLists.txt)


def summary(result, out=None):
    """Print a unittest result's last line "N passed, M failed[, K skipped]"; return the exit code.

    A skip says why, loudly, on stderr. Under CI=true (CI has every prerequisite) a skip
    is a failure; elsewhere a run with skips and no failure exits SKIP_EXIT, which CTest
    reports as "Skipped", not "Passed"."""
    ci = os.environ.get("CI") == "true"
    for test, why in result.skipped:
        print(f"SKIPPED: {test.id()}: {why}" + (" (a failure under CI=true)" if ci else ""),
              file=sys.stderr)
    bad = {getattr(t, "test_case", t).id() for t, _ in result.failures + result.errors}
    skipped = {t.id() for t, _ in result.skipped}
    if ci:
        bad |= skipped
        skipped = set()
    passed = max(result.testsRun - len(bad) - len(skipped), 0)
    print(f"{passed} passed, {len(bad)} failed" + (f", {len(skipped)} skipped" if skipped else ""),
          file=out or sys.stdout)
    if bad or result.unexpectedSuccesses:
        return 1
    return SKIP_EXIT if skipped else 0


def _main(argv):
    if len(argv) == 4 and argv[1] == "run":
        try:
            status, out = Guest(argv[2]).run_bytes(argv[3])
        except GuestError as e:
            print(f"guestlib: error: {e}", file=sys.stderr)
            return 255
        sys.stdout.buffer.write(out)
        return status
    print("usage: guestlib.py run NAME 'CMD'", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv))

#!/usr/bin/env python3
"""Guest introspection on real guests: inspect, symbols, translate, read, disasm.

Boots a 4-level and a 5-level paging guest with KASLR (one after the other)
and checks what hvpatch reads from the host against oracles it does not
control:

  * symbols    == the guest's own /proc/kallsyms (core kernel lines, in order)
  * translate  == QEMU's HMP gva2gpa for 1,000+ kernel addresses from text,
                  rodata, data, bss, init, the direct map, the module area,
                  and addresses nothing maps (both must say "not mapped")
  * inspect    == /proc/version, the build id in /sys/kernel/notes, _text,
                  _stext, _etext from /proc/kallsyms, CR4.LA57 from HMP; the page
                  table it walks == gva2gpa of init_top_pgt (the kernel's own)
  * read       == HMP xp at gva2gpa of the symbol; disasm's bytes == HMP xp
  * --core FILE of a `virsh dump --memory-only` of the same guest gives the
    same answers as the live guest
  * errors: no such domain, a shut-off domain, a truncated core, an unmapped
    read: exit 1, a clear message, and {"error": ...} with --json.

    python3 tests/live/test_introspection.py    # last line: "N passed, M failed"

Needs root, libvirt and the kernel (images/fetch-kernel.sh; env HVP_KERNEL_DIR
skips the fetch). Env HVPATCH: the hvpatch binary (default build/cli/hvpatch).
"""

import collections
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib  # noqa: E402

IMAGES = os.path.join(guestlib.REPO, "images")
NON_KASLR_TEXT = guestlib.NON_KASLR_TEXT
MODULES_VADDR = 0xffffffffc0000000     # the kernel image's 1 GiB ends here (x86-64)
PREFIX = "hvp-ti-"
N_ADDRESSES = 1200          # >= 1,000 translations compared per guest
HMP_BATCH = 200             # gva2gpa commands per virsh process

KERNEL = {}                 # dir, set by setUpModule
CREATED = []                # guests to destroy however the run ends (also on ^C)
TMP = {}                    # "dir": scratch folder (core dumps), "state": HVPATCH_STATE_DIR
TIMINGS = []                # lines printed at the end


def hvpatch(*args, json=True, stdin=None, timeout=300):
    """Run hvpatch; returns (exit code, stdout, stderr); stdout parsed when json."""
    exe = os.environ.get("HVPATCH", "build/cli/hvpatch")
    if not os.path.isabs(exe) and os.sep in exe:
        exe = os.path.join(guestlib.REPO, exe)
    argv = [exe] + (["--json"] if json else []) + [str(a) for a in args]
    try:
        p = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise guestlib.GuestError(f"hvpatch binary not found: {exe} (build it, or set HVPATCH)") from None
    out = p.stdout
    if json:
        try:
            out = guestlib.validate_json(guestlib.jsonlib.loads(p.stdout), args)
        except ValueError as e:
            raise AssertionError(f"hvpatch {' '.join(argv[1:])[:200]}: exit {p.returncode}, stdout is not "
                                 f"JSON ({e}): {p.stdout[:300]!r}; stderr: {p.stderr[-300:]!r}") from None
    return p.returncode, out, p.stderr


def hvpatch_ok(*args, **kw):
    rc, out, err = hvpatch(*args, **kw)
    if rc != 0:
        raise AssertionError(f"hvpatch {' '.join(map(str, args))[:200]} exited {rc}: {err.strip()[-500:]}")
    return out


def hmp_bytes(out):
    """Bytes of an HMP x/xp /Nxb dump ("ADDR: 0x48 0x8d ..." lines)."""
    return bytes(int(b, 16) for line in out.splitlines() if ":" in line
                 for b in line.split(":", 1)[1].split())


def hmp_gva2gpa_many(domain, vas):
    """QEMU's gva2gpa for each va (None: unmapped), in batches of HMP_BATCH.

    One virsh process runs a batch: "qemu-monitor-command ...; echo @@E<i>; ..."
    (still one HMP command per address: gva2gpa takes one)."""
    result = []
    for start in range(0, len(vas), HMP_BATCH):
        chunk = vas[start:start + HMP_BATCH]
        cmds = "; ".join(f"qemu-monitor-command {domain} --hmp 'gva2gpa {va:#x}'; echo @@E{i}"
                         for i, va in enumerate(chunk))
        out = guestlib._check(guestlib.VIRSH + [cmds], 120, f"HMP gva2gpa batch on {domain}")
        parts = re.split(r"@@E(\d+)", out)
        # parts = [out0, "0", out1, "1", ..., outN-1, "N-1", tail]
        if len(parts) != 2 * len(chunk) + 1 or [int(x) for x in parts[1::2]] != list(range(len(chunk))):
            raise AssertionError(f"HMP batch output does not have {len(chunk)} answers: {out[:300]!r}")
        for va, text in zip(chunk, parts[0::2]):
            m = re.fullmatch(r"\s*gpa:\s*(0x[0-9a-fA-F]+)\s*", text)
            if m:
                result.append(int(m.group(1), 16))
            elif text.strip() == "Unmapped":
                result.append(None)
            else:
                raise AssertionError(f"unexpected gva2gpa {va:#x} output: {text!r}")
    return result


def first_differences(got, want, show=5):
    """A readable account of where two lists of (addr, type, name) differ."""
    fmt = lambda s: "%016x %s %s" % s     # noqa: E731
    lines = [f"hvpatch has {len(got)} symbols, /proc/kallsyms {len(want)}"]
    diffs = [i for i in range(max(len(got), len(want)))
             if i >= len(got) or i >= len(want) or got[i] != want[i]][:show]
    for i in diffs:
        g = fmt(got[i]) if i < len(got) else "(none)"
        w = fmt(want[i]) if i < len(want) else "(none)"
        lines.append(f"  line {i + 1}: hvpatch {g!r}  /proc/kallsyms {w!r}")
    cg, cw = collections.Counter(got), collections.Counter(want)
    only_g, only_w = list((cg - cw).elements()), list((cw - cg).elements())
    lines.append(f"  as multisets: {len(only_g)} only in hvpatch, {len(only_w)} only in /proc/kallsyms")
    lines += [f"    only hvpatch: {fmt(s)}" for s in sorted(only_g)[:show]]
    lines += [f"    only kallsyms: {fmt(s)}" for s in sorted(only_w)[:show]]
    return "\n".join(lines)


def elf_loads_end(path):
    """End of the last PT_LOAD's bytes in an ELF64 file (read with struct, not hvpatch)."""
    with open(path, "rb") as f:
        eh = f.read(64)
        phoff, = struct.unpack_from("<Q", eh, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", eh, 0x36)
        f.seek(phoff)
        ph = f.read(phentsize * phnum)
    ends = [off + filesz for ptype, off, filesz in
            (struct.unpack_from("<I4xQ16xQ", ph, i * phentsize) for i in range(phnum)) if ptype == 1]
    if not ends:
        raise AssertionError(f"{path}: no PT_LOAD")
    return max(ends)


def parse_symbols(text):
    syms = []
    for line in text.splitlines():
        f = line.split()
        if len(f) != 3 or len(f[1]) != 1:
            raise AssertionError(f"hvpatch symbols: line not in /proc/kallsyms format: {line!r}")
        syms.append((int(f[0], 16), f[1], f[2]))
    return syms


def setUpModule():
    # Not root or no libvirt: a failure, not a skip (CI has everything).
    if os.geteuid() != 0:
        raise RuntimeError("live introspection tests need root (libvirt qemu:///system)")
    subprocess.run([os.path.join(IMAGES, "setup-host.sh")], check=True, stdout=subprocess.DEVNULL)
    kdir = guestlib.kernel_dir()
    KERNEL["dir"] = kdir
    TMP["dir"] = tempfile.mkdtemp(prefix="hvp-ti-")
    TMP["state"] = os.path.join(TMP["dir"], "state")
    os.mkdir(TMP["state"])
    os.environ["HVPATCH_STATE_DIR"] = TMP["state"]


def tearDownModule():
    if TMP.get("dir"):
        shutil.rmtree(TMP["dir"], ignore_errors=True)


class IntrospectionBase:
    """One guest per subclass; expensive facts are computed once and cached
    (a failure too, so a broken step fails each test that needs it, once)."""
    paging = None

    @classmethod
    def setUpClass(cls):
        cls.name = f"{PREFIX}{cls.paging}-{os.getpid()}"
        cls._memo = {}
        CREATED.append(cls.name)
        cls.g = guestlib.Guest.create(cls.name, paging=cls.paging, kaslr=True, kernel_dir=KERNEL["dir"])
        TIMINGS.append(f"{cls.paging}-level: boot to HVP-READY {cls.g.boot_seconds}s")

    @classmethod
    def tearDownClass(cls):
        cls.g.destroy()         # before the next class boots its guest
        core = cls._memo.get("core")
        if isinstance(core, str) and os.path.exists(core):
            os.unlink(core)

    def fact(self, key, compute):
        memo = type(self)._memo
        if key not in memo:
            try:
                memo[key] = compute()
            except Exception as e:          # noqa: BLE001 - re-raised for every user
                memo[key] = e
        if isinstance(memo[key], Exception):
            raise memo[key]
        return memo[key]

    def timed(self, what, fn):
        t0 = time.monotonic()
        r = fn()
        TIMINGS.append(f"{self.paging}-level: {what}: {time.monotonic() - t0:.2f}s")
        return r

    # -- facts -------------------------------------------------------------
    def kallsyms(self):
        """Core-kernel lines of the guest's /proc/kallsyms: [(addr, type, name)] in order."""
        return self.fact("kallsyms", lambda: [
            (a, t, n) for a, t, n, mod in self.timed("/proc/kallsyms transfer", self.g.kallsyms)
            if mod is None])

    def ksym(self, name):
        hits = [a for a, _, n in self.kallsyms() if n == name]
        self.assertEqual(len(hits), 1, f"{name} in /proc/kallsyms {len(hits)} times")
        return hits[0]

    def addresses(self):
        return self.fact("addresses", self._pick_addresses)

    def _pick_addresses(self):
        """Kernel addresses with their kind: symbols (and points inside them) of
        every section, the init area, the direct map, the module area, unmapped ones."""
        rng = random.Random(0x5eed + self.paging)
        syms = self.kallsyms()
        ranges = {
            "text": ("_stext", "_etext"), "rodata": ("__start_rodata", "__end_rodata"),
            "data": ("_sdata", "_edata"), "bss": ("__bss_start", "__bss_stop"),
            "init": ("__init_begin", "__init_end"),
        }
        quota = {"text": 320, "rodata": 220, "data": 220, "bss": 170, "init": 60}
        picked = []
        for kind, (lo_name, hi_name) in ranges.items():
            lo, hi = self.ksym(lo_name), self.ksym(hi_name)
            inside = sorted({a for a, _, _ in syms if lo <= a < hi})
            self.assertGreater(len(inside), quota[kind] // 2, f"few symbols in {kind}")
            for a in rng.sample(inside, min(quota[kind], len(inside))):
                # half at the symbol, half a little inside it (still below hi)
                va = a if rng.random() < 0.5 else min(a + rng.randrange(1, 256), hi - 1)
                picked.append((kind, va))
        # the direct map: page_offset_base read by QEMU (HMP x), not by hvpatch
        pob = int.from_bytes(hmp_bytes(self.g.hmp("x /8xb %#x" % self.ksym("page_offset_base"))), "little")
        self.assertEqual(pob >> 47 if self.paging == 4 else pob >> 56, (1 << 17) - 1 if self.paging == 4 else 0xff,
                         f"page_offset_base {pob:#x} is not a kernel address")
        for i in range(100):       # RAM is 256 MiB: the last ten lie past it
            pa = rng.randrange(0, 256 << 20) if i < 90 else (256 << 20) + rng.randrange(0, 1 << 30)
            picked.append(("directmap", pob + pa))
        # the module area: whatever the kernel put there (no modules are loaded)
        picked += [("modules", MODULES_VADDR + i * 0x100000 + 0x123) for i in range(30)]
        # nothing maps these: past _end up to the module area (the kernel clears
        # the PMDs after its image at boot: cleanup_highmap), user space, and
        # non-canonical addresses, 110 in all
        end = (self.ksym("_end") + (2 << 20) - 1) & ~((2 << 20) - 1)
        room = (MODULES_VADDR - end) // 80 & ~0xfff
        unmapped = [end + i * min(room, 0x101000) for i in range(80)] if room else []
        unmapped += [0x1000 * (i + 1) * 7 for i in range(20)]
        unmapped += [0x0000800000000000 + i * 0x1000 for i in range(5)]
        unmapped += [0xdead000000000000 + i * 0x1000 for i in range(110 - len(unmapped))]
        picked += [("unmapped", va) for va in unmapped]
        self.assertGreaterEqual(len(picked), 1000)
        return picked

    def hmp_translations(self):
        vas = [va for _, va in self.addresses()]
        return self.fact("hmp", lambda: self.timed(f"HMP gva2gpa x{len(vas)} (batches of {HMP_BATCH})",
                                                   lambda: hmp_gva2gpa_many(self.name, vas)))

    def translate(self, *target):
        """hvpatch --json translate TARGET - over all addresses, as [pa or None]."""
        vas = [va for _, va in self.addresses()]
        out = self.timed(f"hvpatch translate {target[0]} x{len(vas)}",
                         lambda: hvpatch_ok("translate", *target, "-", stdin="".join(f"{va:#x}\n" for va in vas)))
        self.assertEqual(len(out), len(vas), "one answer per address")
        pas = []
        for va, o in zip(vas, out):
            self.assertEqual(int(o["va"], 16), va)
            if o["pa"] is None:
                self.assertTrue(o.get("error"), f"{va:#x}: no pa and no error")
                pas.append(None)
                continue
            pa, ps = int(o["pa"], 16), o["page_size"]
            self.assertIn(ps, (4096, 2 << 20, 1 << 30))
            self.assertEqual(pa & (ps - 1), va & (ps - 1), f"{va:#x} -> {pa:#x}: offset in page differs")
            pas.append(pa)
        return pas

    def live_translations(self):
        return self.fact("live-translate", lambda: self.translate(self.name))

    def core(self):
        """A `virsh dump --memory-only --format elf` of the guest (path)."""
        def dump():
            path = os.path.join(TMP["dir"], f"{self.name}.core")
            self.timed("virsh dump --memory-only", lambda: guestlib._check(
                guestlib.VIRSH + ["dump", "--memory-only", "--format", "elf", self.name, path], 300, "virsh dump"))
            return path
        return self.fact("core", dump)

    def inspect_live(self):
        return self.fact("inspect", lambda: hvpatch_ok("inspect", self.name))

    # -- tests -------------------------------------------------------------
    def test_symbols_equal_proc_kallsyms(self):
        want = self.kallsyms()
        text = self.timed("hvpatch symbols", lambda: hvpatch_ok("symbols", self.name, json=False))
        got = parse_symbols(text)
        self.assertGreater(len(want), 50000)
        if got != want:
            self.fail("symbols differ from /proc/kallsyms:\n" + first_differences(got, want))

    def test_translate_equals_gva2gpa(self):
        picked = self.addresses()
        want = self.hmp_translations()
        got = self.live_translations()
        bad = [(k, va, g, w) for (k, va), g, w in zip(picked, got, want) if g != w]
        fmt = lambda p: "not mapped" if p is None else f"{p:#x}"     # noqa: E731
        self.assertFalse(bad, f"{len(bad)} of {len(picked)} translations differ from gva2gpa, first: " +
                         "; ".join(f"{k} {va:#x}: hvpatch {fmt(g)}, QEMU {fmt(w)}" for k, va, g, w in bad[:8]))
        # the sample holds both outcomes in quantity, and each kind behaves as expected
        by_kind = collections.Counter((k, w is not None) for (k, _), w in zip(picked, want))
        for kind in ("text", "rodata", "data", "bss", "directmap"):    # RAM has holes
            self.assertGreaterEqual(by_kind[(kind, True)], 80, f"{kind}: {by_kind}")
        self.assertEqual(by_kind[("unmapped", True)], 0, f"{by_kind}")
        self.assertEqual(by_kind[("unmapped", False)], 110, f"{by_kind}")
        self.assertGreaterEqual(len(picked), 1000)
        TIMINGS.append(f"{self.paging}-level: translations compared: {len(picked)} "
                       f"({sum(1 for w in want if w is None)} not mapped); {dict(by_kind)}")

    def test_attach_walks_the_kernels_own_table(self):
        # a vCPU's CR3 belongs to whatever process ran there and is freed when it exits:
        # the attach hands out init_mm's table, where QEMU finds init_top_pgt. Two busy
        # loops keep both vCPUs in user processes, so no CR3 is that table by chance.
        pids = self.g.check("for i in 1 2; do sh -c 'while :; do :; done' >/dev/null 2>&1 & echo $!; done").split()
        try:
            time.sleep(1)
            o = hvpatch_ok("inspect", self.name)
        finally:
            self.g.run("kill " + " ".join(pids))
        pt, root = o["page_table"], int(o["page_table"]["root"], 16)
        self.assertEqual(pt["source"], "init_top_pgt", o)
        self.assertEqual(root, self.g.gva2gpa(self.ksym("init_top_pgt")), o)
        self.assertNotEqual(int(o["cr3"], 16) & ~0x1fff, root & ~0x1fff, f"a vCPU was not busy: {o}")
        # it maps the kernel half only: a user address is not mapped in it
        out = hvpatch_ok("translate", self.name, "init_top_pgt", "0x400000")
        self.assertEqual(int(out[0]["pa"], 16), root)
        self.assertIsNone(out[1]["pa"], out)

    def test_translate_symbols_as_arguments(self):
        vps, ban = self.ksym("version_proc_show"), self.ksym("linux_banner")
        out = hvpatch_ok("translate", self.name, "version_proc_show", "linux_banner+0x10", "0x1000")
        self.assertEqual([int(o["va"], 16) for o in out], [vps, ban + 0x10, 0x1000])
        self.assertEqual(int(out[0]["pa"], 16), self.g.gva2gpa(vps))
        self.assertEqual(int(out[1]["pa"], 16), self.g.gva2gpa(ban + 0x10))
        self.assertIsNone(out[2]["pa"])
        self.assertIsNone(self.g.gva2gpa(0x1000))
        self.assertIn("not present", out[2]["error"])

    def test_inspect_matches_guest(self):
        o = self.inspect_live()
        k = o["kernel"]
        text = self.ksym("_text")
        self.assertTrue(self.g.kaslr_moved(text), "KASLR is off in the guest")
        self.assertEqual(k["banner"], self.g.proc_version())
        self.assertEqual(k["build_id"], self.g.build_id())
        self.assertEqual(int(k["base"], 16), text)
        self.assertEqual(int(k["kaslr_offset"], 16), text - NON_KASLR_TEXT)
        self.assertEqual(int(k["text_start"], 16), self.ksym("_stext"))
        self.assertEqual(int(k["text_end"], 16), self.ksym("_etext"))
        self.assertEqual(int(k["image_end"], 16), self.ksym("_end"))
        cr4 = self.g.registers()["CR4"]
        self.assertEqual(bool(cr4 & (1 << 12)), self.paging == 5, f"CR4={cr4:#x}")
        self.assertEqual(o["paging"], "5-level" if cr4 & (1 << 12) else "4-level")
        self.assertEqual(o["vcpus"], 2)
        self.assertEqual(o["os"], "linux")
        TIMINGS.append(f"{self.paging}-level: inspect took {o.get('elapsed_ms', 0):.0f} ms in hvpatch")

    def test_core_inspect_equals_live(self):
        live = self.inspect_live()
        core = hvpatch_ok("inspect", "--core", self.core())
        self.assertEqual(core["backend"], "core")
        for key in ("base", "kaslr_offset", "text_start", "text_end", "image_end", "banner", "build_id", "symbols"):
            self.assertEqual(core["kernel"][key], live["kernel"][key], key)
        for key in ("os", "paging", "vcpus"):
            self.assertEqual(core[key], live[key], key)
        self.assertEqual(core["kernel"]["banner"], self.g.proc_version())

    def test_core_symbols_equal_proc_kallsyms(self):
        want = self.kallsyms()
        got = parse_symbols(hvpatch_ok("symbols", "--core", self.core(), json=False))
        if got != want:
            self.fail("symbols from the core differ from /proc/kallsyms:\n" + first_differences(got, want))

    def test_core_translate_equals_live_and_gva2gpa(self):
        picked = self.addresses()
        core = self.translate("--core", self.core())
        live, hmp = self.live_translations(), self.hmp_translations()
        bad = [(k, va, c, lv, h) for (k, va), c, lv, h in zip(picked, core, live, hmp) if not c == lv == h]
        self.assertFalse(bad, f"{len(bad)} translations from the core differ, first: " +
                         "; ".join(f"{k} {va:#x}: core {c}, live {lv}, QEMU {h}" for k, va, c, lv, h in bad[:8]))

    def test_core_truncated_fails_clearly(self):
        core = self.core()
        size = os.path.getsize(core)
        # in the ELF header, the program headers, the notes, mid-RAM, and one
        # byte short of the last PT_LOAD (QEMU pads the file a little after it)
        for cut in (40, 100, 1000, size // 2, elf_loads_end(core) - 1):
            path = os.path.join(TMP["dir"], "truncated.core")
            with open(core, "rb") as src, open(path, "wb") as dst:
                left = cut
                while left:
                    buf = src.read(min(left, 1 << 22))
                    dst.write(buf)
                    left -= len(buf)
            for args in (("inspect", "--core", path), ("symbols", "--core", path)):
                rc, out, _ = hvpatch(*args)
                self.assertEqual(rc, 1, f"{args[0]} of a core cut at {cut} of {size} bytes: exit {rc}")
                self.assertRegex(out["error"], r"(?i)past the end|truncated|short|too small|end of (the )?file",
                                 f"cut at {cut}")
            rc, out, err = hvpatch("inspect", "--core", path, json=False)
            self.assertEqual((rc, out), (1, ""))
            self.assertIn(path, err)
            os.unlink(path)

    def test_read_equals_hmp_xp(self):
        for sym in ("linux_banner", "version_proc_show", "init_uts_ns"):
            va = self.ksym(sym)
            o = hvpatch_ok("read", self.name, sym, 64)
            self.assertEqual(int(o["addr"], 16), va)
            self.assertEqual(o["len"], 64)
            gpa = self.g.gva2gpa(va)
            self.assertIsNotNone(gpa, f"{sym} unmapped per QEMU")
            xp = hmp_bytes(self.g.hmp("xp /64xb %#x" % gpa))
            self.assertEqual(len(xp), 64)
            self.assertEqual(bytes.fromhex(o["hex"]), xp, f"read {sym} 64 != HMP xp at {gpa:#x}")
        self.assertTrue(bytes.fromhex(hvpatch_ok("read", self.name, "linux_banner", 64)["hex"])
                        .startswith(b"Linux version "))

    def test_read_unmapped_fails_clearly(self):
        va = (self.ksym("_end") + (2 << 20) - 1 & ~((2 << 20) - 1)) + (64 << 20)
        self.assertIsNone(self.g.gva2gpa(va))
        rc, out, _ = hvpatch("read", self.name, "%#x" % va, 16)
        self.assertEqual(rc, 1)
        self.assertIn("error", out)
        self.assertRegex(out["error"], r"not present|not mapped|unmapped")
        self.assertIn("%x" % va, out["error"])
        rc, out, err = hvpatch("read", self.name, "%#x" % va, 16, json=False)
        self.assertEqual(rc, 1)
        self.assertEqual(out, "", "nothing but data on stdout")
        self.assertRegex(err, r"not present|not mapped|unmapped")

    def test_disasm_version_proc_show(self):
        va = self.ksym("version_proc_show")
        text = hvpatch_ok("disasm", self.name, "version_proc_show", json=False)
        lines = [ln for ln in text.splitlines() if ln.strip()]
        self.assertGreaterEqual(len(lines), 4, text)
        self.assertEqual(int(lines[0].split()[0], 16), va, f"first line: {lines[0]!r}")
        self.assertRegex(text, r"\bret\b")
        insns = hvpatch_ok("disasm", self.name, "version_proc_show")
        self.assertEqual(int(insns[0]["addr"], 16), va)
        code = b"".join(bytes.fromhex(i["bytes"].replace(" ", "")) for i in insns)
        # contiguous, and the bytes are the guest's per QEMU
        for a, b in zip(insns, insns[1:]):
            self.assertEqual(int(a["addr"], 16) + len(bytes.fromhex(a["bytes"].replace(" ", ""))), int(b["addr"], 16))
        xp = hmp_bytes(self.g.hmp("xp /%dxb %#x" % (len(code), self.g.gva2gpa(va))))
        self.assertEqual(code, xp)


class Introspection4Level(IntrospectionBase, unittest.TestCase):
    paging = 4


class Introspection5Level(IntrospectionBase, unittest.TestCase):
    paging = 5


class Errors(unittest.TestCase):
    """Failures that need no running guest of ours."""

    def assert_clear_error(self, args, pattern):
        rc, out, _ = hvpatch(*args)
        self.assertEqual(rc, 1, f"hvpatch {args}: exit {rc}")
        self.assertIsInstance(out, dict)
        self.assertIn("error", out)
        self.assertRegex(out["error"], pattern)
        rc, out, err = hvpatch(*args, json=False)
        self.assertEqual(rc, 1)
        self.assertEqual(out, "")
        self.assertRegex(err, pattern)

    def test_no_such_domain(self):
        name = f"{PREFIX}absent-{os.getpid()}"
        for cmd in ("inspect", "symbols"):
            self.assert_clear_error((cmd, name), rf"(?i)no (such )?domain.*{re.escape(name)}|"
                                                 rf"{re.escape(name)}.*(not found|does not exist)")

    def test_shut_off_domain(self):
        name = f"{PREFIX}off-{os.getpid()}"
        xml = os.path.join(TMP["dir"], "off.xml")
        with open(xml, "w") as f:
            f.write(f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
                    "<os><type arch='x86_64' machine='q35'>hvm</type></os></domain>\n")
        guestlib._check(guestlib.VIRSH + ["define", xml], 60, "virsh define")
        try:
            for cmd in ("inspect", "symbols", "translate"):
                args = (cmd, name, "0x1000") if cmd == "translate" else (cmd, name)
                self.assert_clear_error(args, r"not running")
        finally:
            guestlib._check(guestlib.VIRSH + ["undefine", name], 60, "virsh undefine")

    def test_empty_or_missing_core(self):
        path = os.path.join(TMP["dir"], "empty.core")
        open(path, "wb").close()
        self.assert_clear_error(("inspect", "--core", path), r"(?i)core|ELF|short|truncated|empty")
        missing = os.path.join(TMP["dir"], "no-such.core")
        self.assert_clear_error(("inspect", "--core", missing), r"(?i)no such file|not found|cannot open")


def main():
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))   # CTest timeout: still clean up
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    t0 = time.monotonic()
    try:
        result = unittest.TextTestRunner(verbosity=2).run(suite)
    finally:
        for name in CREATED:
            guestlib.Guest(name).destroy()      # no-op when already gone
    for line in TIMINGS:
        print(line)
    print(f"total {time.monotonic() - t0:.0f}s")
    failed = len(result.failures) + len(result.errors)
    # errors of setUpModule/setUpClass are not among testsRun
    in_tests = sum(1 for t, _ in result.failures + result.errors if isinstance(t, unittest.TestCase))
    passed = result.testsRun - in_tests - len(result.skipped)
    print(f"{passed} passed, {failed} failed")
    return 0 if result.wasSuccessful() and not result.skipped else 1


if __name__ == "__main__":
    sys.exit(main())

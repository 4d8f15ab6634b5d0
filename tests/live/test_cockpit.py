#!/usr/bin/env python3
"""The Cockpit page (cockpit/) on a live guest, in a real headless Chromium.

The plugin is staged with `cmake --install` into a temporary DESTDIR (the install rule
itself), Debian's cockpit-ws serves it (`--no-tls --local-session=cockpit-bridge`, as
root, on a free port of 127.0.0.1) and Chromium, driven by playwright-core through
tests/live/cockpit_driver.js, opens /cockpit/@localhost/hvpatch/index.html. The page's
settings file /etc/hvpatch/cockpit.json points at this test's hvpatch, policy, catalog and
state folder: cockpit-ws runs in a mount namespace of its own where an overlay over /etc
holds it (the host's /etc is untouched; without overlay support the settings go into the
browser's storage and the file's case is skipped, a failure under CI=true).

One test guest (4-level paging, KASLR) in a group of the policy; a catalog with the
demo-version bundle signed by the policy's key and a copy signed by an untrusted key;
beside it a shut-off domain whose name is markup with an onerror handler. The page must:
  * list the guest with its verdict (compliant) and kernel (the guest's own uname -r and
    build id), the hostile name as text (no element, no script ran);
  * Check: "would apply";
  * Apply the untrusted copy: refused (exit 3), every reason with its stage and code
    (signer-unknown) shown, nothing changed in the guest;
  * Apply the signed bundle: busy while it runs, then the patch listed with its pause
    window (the one `hvpatch status` recorded), and the guest's /proc/version carries
    the demo marker; Revert: the row empties and the guest's /proc/version is the
    original again;
  * under a second policy whose group requires Secure Boot: the verdict "refused" with
    the codes `hvpatch status` gives, and a catalog offering nothing, saying why;
  * a missing hvpatch, one printing no JSON: an error on the page, no rows;
  * a document of another schema major (urn:hvpatch:report:2) gives a clear error,
    one of major 1 is shown as usual (an hvpatch wrapper adds the field).
Screenshots go to $HVP_ARTIFACT_DIR (default build/test-artifacts/cockpit-*.png).

    python3 tests/live/test_cockpit.py     # last line: "N passed, M failed"

Environment: HVPATCH (default build/cli/hvpatch), HVP_BUILD_DIR (default build/, for
cmake --install), HVP_KERNEL_DIR, HVP_GUEST_DIR, HVP_ARTIFACT_DIR, HVP_NODE_DIR (where
playwright-core is installed with npm when missing, default /var/lib/hvpatch-test/node),
HVP_CHROMIUM (default chromium from PATH). Must run as root with libvirt; cockpit-ws,
node and chromium missing: skipped with the reason (a failure under CI=true).
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import xml.sax.saxutils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib  # noqa: E402

REPO = guestlib.REPO
DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cockpit_driver.js")
COCKPIT_WS = "/usr/lib/cockpit/cockpit-ws"
MARKER = " [hvpatch: hotpatched]"
CI = os.environ.get("CI") == "true"
TAG = f"hvp-cockpit-{os.getpid()}"
URL_PATH = "/cockpit/@localhost/hvpatch/index.html"
# libvirt takes any name without '/': markup that would run a script if it became HTML
HOSTILE = TAG + '-off<img src=x onerror="window.hvpInjected=1"><b>&amp;"\'<i>x'


def build_dir():
    return os.environ.get("HVP_BUILD_DIR", os.path.join(REPO, "build"))


def hvpatch_exe():
    exe = os.environ.get("HVPATCH", os.path.join(build_dir(), "cli", "hvpatch"))
    return exe if os.path.isabs(exe) else os.path.join(REPO, exe)


def artifact_dir():
    d = os.environ.get("HVP_ARTIFACT_DIR") or os.path.join(build_dir(), "test-artifacts")
    os.makedirs(d, exist_ok=True)
    return d


def missing(what):
    """A prerequisite is missing: skip saying why (a failure under CI=true)."""
    msg = f"{what} (images/setup-host.sh installs it)"
    if CI:
        raise RuntimeError(msg)
    raise unittest.SkipTest(msg)


def virsh(*args, check=True):
    p = subprocess.run(guestlib.VIRSH + list(args), capture_output=True, text=True, timeout=120)
    if check and p.returncode != 0:
        raise guestlib.GuestError(f"virsh {' '.join(args)}: {p.stderr.strip()}")
    return p


def js(s):
    """A Python value as a JavaScript literal."""
    return json.dumps(s)


def playwright_dir():
    """playwright-core's module folder, installed with npm into HVP_NODE_DIR when missing."""
    prefix = os.environ.get("HVP_NODE_DIR", os.path.join(
        os.environ.get("HVP_GUEST_DIR", "/var/lib/hvpatch-test"), "node"))
    mod = os.path.join(prefix, "node_modules", "playwright-core")
    if not os.path.isfile(os.path.join(mod, "package.json")):
        if not shutil.which("npm"):
            missing("npm not found: it installs playwright-core")
        os.makedirs(prefix, exist_ok=True)
        p = subprocess.run(["npm", "install", "--prefix", prefix, "--no-audit", "--no-fund", "playwright-core@1"],
                           capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"npm install playwright-core failed: {p.stderr[-2000:]}")
    return mod


class Browser:
    """cockpit_driver.js: one JSON request per line, one answer per line."""

    def __init__(self, env):
        self.p = subprocess.Popen(["node", DRIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env=env, start_new_session=True)
        first = self._answer(120)
        if not first.get("ok"):
            raise RuntimeError(f"the browser did not start: {first}")

    def _answer(self, timeout):
        import select
        r, _, _ = select.select([self.p.stdout], [], [], timeout)
        if not r:
            raise AssertionError(f"the browser driver gave no answer within {timeout}s")
        line = self.p.stdout.readline()
        if not line:
            raise AssertionError(f"the browser driver ended (exit {self.p.poll()})")
        return json.loads(line)

    def call(self, op, timeout=30, **kw):
        kw.update(op=op, timeout=int(timeout * 1000))
        self.p.stdin.write(json.dumps(kw) + "\n")
        self.p.stdin.flush()
        a = self._answer(timeout + 30)
        if not a.get("ok"):
            raise AssertionError(f"browser {op} {kw.get('selector') or kw.get('js') or ''}: {a.get('error')}")
        return a.get("result")

    def eval(self, expr):
        return self.call("eval", js=expr)

    def wait(self, expr, timeout=180):
        return self.call("wait", js=expr, timeout=timeout)

    def close(self):
        if self.p.poll() is None:
            try:
                self.call("quit", timeout=20)
                self.p.wait(timeout=20)
            except (AssertionError, OSError, subprocess.TimeoutExpired, ValueError):
                pass
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def pids_with_env(marker):
    """Processes whose environment holds marker (the bridges our cockpit-ws started)."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                if marker.encode() in f.read().split(b"\0"):
                    found.append(int(d))
        except OSError:
            pass
    return found


def setUpModule():
    if os.geteuid() != 0:
        raise RuntimeError("live cockpit test needs root (libvirt qemu:///system, cockpit-ws as root)")
    for tool in ("minisign", "virsh", "cmake", os.environ.get("CC", "gcc")):
        if not shutil.which(tool):
            raise RuntimeError(f"{tool} not found (images/setup-host.sh installs it)")
    if not os.access(hvpatch_exe(), os.X_OK):
        raise RuntimeError(f"hvpatch binary not found: {hvpatch_exe()} (build it, or set HVPATCH)")
    if not os.access(COCKPIT_WS, os.X_OK) or not shutil.which("cockpit-bridge"):
        missing("cockpit-ws or cockpit-bridge not installed (Debian's cockpit-ws, cockpit-bridge)")
    if not shutil.which("node"):
        missing("node not found (Node.js drives the browser with playwright-core)")
    if not (os.environ.get("HVP_CHROMIUM") or shutil.which("chromium")):
        missing("chromium not found (Debian's chromium)")
    subprocess.run([os.path.join(REPO, "images", "setup-host.sh")], check=True, stdout=subprocess.DEVNULL)


class CockpitLive(unittest.TestCase):
    guest = None
    ws = None
    browser = None
    defined = ()

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hvp-cockpit.")
        os.chmod(cls.tmp, 0o755)
        try:
            cls.prepare()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def prepare(cls):
        work, state = os.path.join(cls.tmp, "work"), os.path.join(cls.tmp, "state")
        cls.work, cls.state = work, state
        os.mkdir(work)
        os.mkdir(state, 0o700)
        cls.catalog = os.path.join(work, "catalog")
        os.mkdir(cls.catalog)
        pw = playwright_dir()

        cls.name = f"{TAG}-a"
        cls.guest = guestlib.Guest.create(cls.name, paging=4, kaslr=True)
        cls.build_id = cls.guest.build_id()
        cls.release = cls.guest.uname_r()
        cls.orig_version = cls.guest.proc_version()

        # a shut-off domain with a hostile name
        path = os.path.join(work, "off.xml")
        with open(path, "w") as f:
            f.write("<domain type='qemu'><name>%s</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
                    "<os><type arch='x86_64' machine='q35'>hvm</type></os><devices/></domain>\n"
                    % xml.sax.saxutils.escape(HOSTILE, {'"': "&quot;"}))
        virsh("define", path)
        cls.defined = [HOSTILE]

        # the catalog: the demo bundle signed by the policy's key, a copy signed by another
        pub, key = guestlib.minisign_keypair(work, "rel")
        _, evil = guestlib.minisign_keypair(work, "evil")
        out = guestlib.demo_bundle(cls.build_id, os.path.join(work, "out"), env={"HVPATCH": hvpatch_exe()})
        cls.bundle = os.path.join(cls.catalog, "demo-version.hvp")
        cls.evil = os.path.join(cls.catalog, "evil-version.hvp")
        shutil.copy(out, cls.bundle)
        shutil.copy(out, cls.evil)
        guestlib.minisign_sign(key, cls.bundle, "cockpit test")
        guestlib.minisign_sign(evil, cls.evil, "cockpit test (untrusted)")
        cls.policy = guestlib.write_policy(os.path.join(work, "policy.xml"), guestlib.policy_key("rel", pub, "demo-*"),
                                           guestlib.policy_group("ck", cls.name, cls.build_id))

        # a second policy whose group refuses the guest: it requires Secure Boot, which the
        # test guests boot without
        cls.policy_sb = guestlib.write_policy(
            os.path.join(work, "policy-sb.xml"), guestlib.policy_key("rel", pub, "demo-*"),
            guestlib.policy_group("ck-sb", cls.name, cls.build_id, extra='<require secure-boot="yes"/>'))

        # hvpatch wrappers for the schema cases: add "schema": "urn:hvpatch:COMMAND:MAJOR"
        for major in (1, 2):
            w = os.path.join(work, f"hvpatch-schema{major}")
            with open(w, "w") as f:
                f.write(f'''#!/usr/bin/python3
import json, subprocess, sys
p = subprocess.run([{hvpatch_exe()!r}] + sys.argv[1:], capture_output=True, text=True)
cmd = next((a for a in sys.argv[1:] if a in ("report", "plan", "check", "apply", "revert", "status")), "x")
doc = json.loads(p.stdout)
doc["schema"] = "urn:hvpatch:%s:{major}" % ("error" if "error" in doc and "domains" not in doc else cmd)
sys.stdout.write(json.dumps(doc))
sys.stderr.write(p.stderr)
sys.exit(p.returncode)
''')
            os.chmod(w, 0o755)

        # stage the plugin with its install rule
        stage = os.path.join(cls.tmp, "stage")
        p = subprocess.run(["cmake", "--install", build_dir(), "--component", "Unspecified"],
                           capture_output=True, text=True, timeout=300, env=dict(os.environ, DESTDIR=stage))
        if p.returncode != 0:
            raise RuntimeError(f"cmake --install failed: {p.stderr}")
        dest = "/usr/share/cockpit/hvpatch"
        with open(os.path.join(build_dir(), "CMakeCache.txt")) as f:
            m = re.search(r"^HVP_COCKPIT_DIR:PATH=(.*)$", f.read(), re.M)
            if m:
                dest = m.group(1)
        cls.plugin = stage + dest
        for f in ("manifest.json", "index.html", "hvpatch.js", "hvpatch.css"):
            if not os.path.isfile(os.path.join(cls.plugin, f)):
                raise RuntimeError(f"cmake --install did not stage {f} in {cls.plugin}")
        if os.path.basename(os.path.dirname(cls.plugin)) != "cockpit":
            raise RuntimeError(f"HVP_COCKPIT_DIR {dest} is not a cockpit/ folder: cockpit-bridge would not find it")
        data_dir = os.path.dirname(os.path.dirname(cls.plugin))

        # cockpit-ws on a free port; the bridge runs as root and finds the staged plugin
        cls.marker = f"HVP_COCKPIT_TEST={TAG}"
        home = os.path.join(cls.tmp, "home")
        os.mkdir(home)
        env = dict(os.environ, XDG_DATA_DIRS=f"{data_dir}:/usr/local/share:/usr/share", HOME=home,
                   HVP_COCKPIT_TEST=TAG)
        cls.port = free_port()
        ws = [COCKPIT_WS, "--no-tls", "--address", "127.0.0.1", "--port", str(cls.port),
              "--local-session=cockpit-bridge"]
        # The page's settings file, /etc/hvpatch/cockpit.json, with this test's paths: cockpit-ws
        # and its bridges run in a mount namespace of their own where an overlay over /etc
        # holds it (the host's /etc is not touched). Where that cannot be mounted the
        # settings go into the browser's storage instead (as the page's form keeps them).
        cls.settings = {"hvpatch": hvpatch_exe(), "policy": cls.policy, "catalog": cls.catalog,
                        "connect": "qemu:///system", "state_dir": state, "domains": f"{TAG}-*"}
        upper = os.path.join(cls.tmp, "etc-upper")
        os.makedirs(os.path.join(upper, "hvpatch"))
        with open(os.path.join(upper, "hvpatch", "cockpit.json"), "w") as f:
            json.dump(cls.settings, f)
        mount = ("mount -t overlay overlay -o lowerdir=/etc,upperdir=%s,workdir=%s /etc"
                 % (upper, os.path.join(cls.tmp, "etc-work-%s")))
        unshare = ["unshare", "--mount", "--propagation", "private", "sh", "-c"]
        os.mkdir(os.path.join(cls.tmp, "etc-work-probe"))
        os.mkdir(os.path.join(cls.tmp, "etc-work-ws"))
        probe = subprocess.run(unshare + [mount % "probe" + " && cat /etc/hvpatch/cockpit.json"],
                               capture_output=True, text=True, timeout=60) if shutil.which("unshare") else None
        cls.config_file_why = None
        if probe and probe.returncode == 0 and json.loads(probe.stdout) == cls.settings:
            ws = unshare + [mount % "ws" + ' && exec "$@"', "sh"] + ws
        else:
            cls.config_file_why = ("no overlay over /etc in a mount namespace: "
                                   + (probe.stderr.strip() if probe else "no unshare"))
        cls.ws_log = open(os.path.join(cls.tmp, "cockpit-ws.log"), "w")
        cls.ws = subprocess.Popen(ws, stdout=cls.ws_log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        cls.url = f"http://127.0.0.1:{cls.port}{URL_PATH}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", cls.port), timeout=2):
                    break
            except OSError:
                if cls.ws.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"cockpit-ws did not listen on {cls.port}: {cls.ws_text()}")
                time.sleep(0.2)

        benv = dict(os.environ, HVP_PLAYWRIGHT=pw, HVP_COCKPIT_TEST=TAG,
                    HVP_CHROMIUM=os.environ.get("HVP_CHROMIUM") or shutil.which("chromium"))
        cls.browser = Browser(benv)
        if cls.config_file_why:
            cls.browser.call("goto", url=f"http://127.0.0.1:{cls.port}/cockpit/@localhost/hvpatch/manifest.json")
            cls.browser.eval("localStorage.setItem('hvpatch-cockpit-settings', %s), true"
                             % js(json.dumps(cls.settings)))
        cls.browser.call("goto", url=cls.url)
        cls.browser.wait("document.body.dataset.state === 'ready'", timeout=240)

    @classmethod
    def ws_text(cls):
        try:
            with open(os.path.join(cls.tmp, "cockpit-ws.log")) as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.browser:
                cls.browser.close()
            if cls.ws:
                if cls.ws.poll() is None:
                    os.killpg(cls.ws.pid, signal.SIGTERM)
                    try:
                        cls.ws.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        os.killpg(cls.ws.pid, signal.SIGKILL)
                        cls.ws.wait()
                cls.ws_log.close()
                # bridges (and anything they ran) that left the process group
                for pid in pids_with_env(cls.marker):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            for name in cls.defined:
                virsh("undefine", name, check=False)
            if cls.guest:
                cls.guest.destroy()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    # -- helpers ---------------------------------------------------------------
    def hv(self, *args):
        p = subprocess.run([hvpatch_exe(), "--json", "--policy", self.policy] + list(args), capture_output=True,
                           text=True, timeout=600, env=dict(os.environ, HVPATCH_STATE_DIR=self.state))
        return p.returncode, json.loads(p.stdout)

    def row_js(self, name=None):
        """A JS expression: the <tr> of guest name (dataset.domain is exact text)."""
        return ("Array.from(document.querySelectorAll('tr.hvp-guest')).find(r => r.dataset.domain === %s)"
                % js(name or self.name))

    def row_text(self, name=None):
        return self.browser.eval("(%s || {innerText: null}).innerText" % self.row_js(name))

    def result_js(self):
        return "(%s).nextElementSibling.querySelector('.hvp-result')" % self.row_js()

    def choose(self, bundle):
        """Choose bundle in the row's select, as a user does (the change event included)."""
        b = self.browser
        b.eval("(() => { const s = (%s).querySelector('select.hvp-bundle'); s.value = %s; "
               "s.dispatchEvent(new Event('change')); return s.value; })()" % (self.row_js(), js(bundle)))
        self.assertEqual(b.eval("(%s).querySelector('select.hvp-bundle').value" % self.row_js()), bundle,
                         "the catalog offers the bundle")

    def ask(self, button):
        """Click the row's apply or revert button; returns the question the page asks first."""
        b = self.browser
        b.eval("(%s).querySelector(%s).click(), true" % (self.row_js(), js(button)))
        b.wait("!!(%s).nextElementSibling.querySelector('.hvp-result-confirm button.hvp-confirm')" % self.row_js())
        return b.eval("(%s).nextElementSibling.querySelector('.hvp-result-confirm .hvp-result-title').textContent"
                      % self.row_js())

    def run_action(self, button, bundle=None, timeout=300):
        """Choose bundle, click the row's button (and confirm an apply or revert); wait until
        the row is idle with a result. self.question: what the page asked, or None."""
        b = self.browser
        if bundle:
            self.choose(bundle)
        self.question = None
        if "hvp-apply" in button or "hvp-revert" in button:
            self.question = self.ask(button)
            b.eval("(%s).nextElementSibling.querySelector('button.hvp-confirm').click(), true" % self.row_js())
        else:
            b.eval("(%s).querySelector(%s).click(), true" % (self.row_js(), js(button)))
        busy = b.eval("(() => { const r = %s; return {cls: r.classList.contains('hvp-is-busy'), "
                      "text: r.querySelector('.hvp-busy').textContent, "
                      "disabled: Array.from(r.querySelectorAll('button')).every(x => x.disabled)}; })()"
                      % self.row_js())
        b.wait("(() => { const r = %s; return r && !r.classList.contains('hvp-is-busy') && "
               "document.body.dataset.state !== 'loading' && "
               "r.nextElementSibling.querySelector('.hvp-result'); })()" % self.row_js(), timeout=timeout)
        # a refresh of the row (after apply/revert) reloads the catalog: wait for it
        b.wait("(%s).querySelector('select.hvp-bundle').options[0].textContent !== 'loading catalog…'"
               % self.row_js(), timeout=timeout)
        res = b.eval("(() => { const x = %s; return {kind: x.className, action: x.dataset.action, "
                     "text: x.innerText, codes: Array.from(x.querySelectorAll('.hvp-reason-code')).map(c => c.textContent), "
                     "stages: Array.from(x.querySelectorAll('.hvp-reason-stage')).map(c => c.textContent)}; })()"
                     % self.result_js())
        return busy, res

    def screenshot(self, name):
        shot = os.path.join(artifact_dir(), f"cockpit-{name}.png")
        self.browser.call("screenshot", path=shot)
        with open(shot, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        print(f"cockpit screenshot: {shot}", file=sys.stderr)

    def assertNoPageErrors(self):
        errs = [e for e in self.browser.call("errors") if "Note that 'script-src' was not explicitly set" not in e]
        self.assertEqual(errs, [], "script errors in the page")

    # -- cases -----------------------------------------------------------------
    def test_0_config_file(self):
        if self.config_file_why:
            if CI:
                self.fail(self.config_file_why)
            self.skipTest(self.config_file_why)
        b = self.browser
        self.assertEqual(b.eval("document.getElementById('settings-source').textContent"),
                         "Defaults from /etc/hvpatch/cockpit.json.", "no overrides in the browser")
        for k, v in self.settings.items():
            self.assertEqual(b.eval("document.querySelector('#settings [name=%s]').value" % js(k)), v, k)
        self.assertIsNone(b.eval("localStorage.getItem('hvpatch-cockpit-settings')"))

    def test_1_rows(self):
        b = self.browser
        self.assertEqual(b.eval("document.getElementById('page-error').hidden"), True,
                         b.eval("document.getElementById('page-error').textContent"))
        names = b.eval("Array.from(document.querySelectorAll('tr.hvp-guest')).map(r => r.dataset.domain)")
        self.assertEqual(sorted(names), sorted([self.name, HOSTILE]))
        row = b.eval("(() => { const r = %s; return {verdict: r.querySelector('.hvp-badge').textContent, "
                     "kernel: r.querySelector('.hvp-kernel').textContent, "
                     "build: r.querySelector('.hvp-col-kernel [title]:not(.hvp-kernel)').title, "
                     "patches: r.querySelector('.hvp-col-patches').textContent, "
                     "bundle: r.querySelector('select.hvp-bundle').value, "
                     "options: Array.from(r.querySelectorAll('select.hvp-bundle option')).map(o => o.value).filter(v => v)}; })()"
                     % self.row_js())
        self.assertEqual(row["verdict"], "compliant")
        self.assertEqual(row["kernel"], self.release, "the kernel the guest itself reports")
        self.assertEqual(row["build"], "build id " + self.build_id)
        self.assertEqual(row["patches"], "none")
        self.assertEqual(row["bundle"], self.bundle, "the catalog's desired bundle is preselected")
        self.assertEqual(sorted(row["options"]), sorted([self.bundle, self.evil]), "the catalog, as plan lists it")
        summary = b.eval("document.getElementById('summary').textContent")
        self.assertEqual(summary, "2 guests: 1 compliant, 1 shut-off")

        # the hostile name stayed text: its row shows it verbatim, no element came of it, no script ran
        self.assertEqual(b.eval("(%s).querySelector('.hvp-guest-name').textContent" % self.row_js(HOSTILE)),
                         HOSTILE)
        self.assertEqual(b.eval("document.querySelectorAll('#guests img, #guests b, #guests i').length"), 0)
        self.assertIsNone(b.eval("window.hvpInjected === undefined ? null : window.hvpInjected"))
        self.assertIn("shut-off", self.row_text(HOSTILE))
        self.assertEqual(b.eval("(%s).querySelector('button.hvp-apply').disabled" % self.row_js(HOSTILE)), True,
                         "no actions on a guest that does not run")
        self.screenshot("list")
        self.assertNoPageErrors()

    def test_2_check(self):
        busy, res = self.run_action("button.hvp-check", self.bundle)
        self.assertTrue(busy["cls"] and busy["disabled"], busy)
        self.assertIn("Checking", busy["text"])
        self.assertEqual(res["action"], "check")
        self.assertIn("hvp-result-success", res["kind"], res)
        self.assertIn("demo-version-1 would apply", res["text"])
        self.assertEqual(self.guest.proc_version(), self.orig_version, "check changes nothing")

    def test_3_refused_apply(self):
        busy, res = self.run_action("button.hvp-apply", self.evil)
        self.assertIn("Applying", busy["text"])
        self.assertIn("hvp-result-danger", res["kind"], res)
        self.assertIn("Apply refused (exit 3: refused)", res["text"])
        self.assertIn("not a trusted key", res["text"])
        # every reason with its stage and code, as check --json gives them
        rc, chk = self.hv("check", self.name, self.evil)
        self.assertEqual(rc, 3)
        self.assertEqual(res["codes"], [r["code"] for r in chk["reasons"] if r.get("code")])
        self.assertIn("signer-unknown", res["codes"])
        self.assertEqual(res["stages"], [r["stage"] for r in chk["reasons"]])
        self.assertIn("signature", res["stages"])
        self.assertEqual(self.guest.proc_version(), self.orig_version, "a refused apply changes nothing")
        self.assertIn("none", self.row_text())
        self.screenshot("refused")

    def test_4_apply_and_revert(self):
        # Apply asks first; Cancel leaves the guest as it was
        self.choose(self.bundle)
        question = self.ask("button.hvp-apply")
        self.assertEqual(question, f"Apply demo-version-1 to {self.name}?")
        self.screenshot("confirm")
        self.browser.eval("(%s).nextElementSibling.querySelector('button.hvp-cancel').click(), true" % self.row_js())
        self.assertTrue(self.browser.eval("(%s).nextElementSibling.hidden" % self.row_js()), "the question stays")
        time.sleep(1)
        self.assertEqual(self.guest.proc_version(), self.orig_version, "a cancelled apply changes nothing")
        rc, st = self.hv("status", self.name)
        self.assertEqual([p["id"] for p in st["patches"] if p["state"] == "applied"], [], st)

        busy, res = self.run_action("button.hvp-apply", self.bundle)
        self.assertTrue(busy["cls"] and busy["disabled"], busy)
        self.assertIn("hvp-result-success", res["kind"], res)
        self.assertIn("Applied demo-version-1", res["text"])
        # the row now lists the patch and the pause window hvpatch recorded
        patches = self.browser.eval("Array.from((%s).querySelectorAll('li.hvp-patch')).map(p => p.dataset.patch)"
                                    % self.row_js())
        self.assertEqual(patches, ["demo-version-1"])
        pause = self.browser.eval("(%s).querySelector('.hvp-pause').textContent" % self.row_js())
        rc, st = self.hv("status", self.name)
        self.assertEqual(rc, 0, st)
        self.assertEqual([p["id"] for p in st["patches"]], ["demo-version-1"])
        ms = st["patches"][0]["pause_ms"]
        self.assertEqual(pause, ("%.2f ms" if ms < 10 else "%.1f ms") % ms)
        self.assertIn("Pause window: " + pause, res["text"])
        # seen inside the guest
        self.assertEqual(self.guest.proc_version(), self.orig_version + MARKER)
        self.screenshot("applied")

        busy, res = self.run_action("li.hvp-patch button.hvp-revert")
        self.assertEqual(self.question, f"Revert demo-version-1 on {self.name}?")
        self.assertTrue(busy["cls"] and busy["disabled"], busy)
        self.assertIn("Reverting demo-version-1", busy["text"])
        self.assertEqual(res["action"], "revert")
        self.assertIn("hvp-result-success", res["kind"], res)
        self.assertIn("Reverted demo-version-1", res["text"])
        self.assertEqual(self.browser.eval("(%s).querySelectorAll('li.hvp-patch').length" % self.row_js()), 0)
        self.assertEqual(self.guest.proc_version(), self.orig_version, "the original code runs again")
        rc, st = self.hv("status", self.name)
        self.assertEqual([p["id"] for p in st["patches"] if p["state"] == "applied"], [], st)
        self.assertNoPageErrors()

    def configure(self, **changes):
        """Change settings through the page's form; wait for the page to reload its data."""
        b = self.browser
        if b.eval("document.getElementById('settings').hidden"):
            b.call("click", selector="#settings-toggle")
        for k, v in changes.items():
            b.call("fill", selector=f'#settings [name="{k}"]', value=v)
        b.call("click", selector="#settings-save")
        b.wait("document.body.dataset.state === 'ready'", timeout=240)

    def test_5_policy_refuses(self):
        """Under a policy whose group refuses the guest: the verdict with its reason codes, and
        a catalog that offers nothing to apply, saying why."""
        b = self.browser
        try:
            self.configure(policy=self.policy_sb)
            p = subprocess.run([hvpatch_exe(), "--json", "--policy", self.policy_sb, "status", self.name],
                               capture_output=True, text=True, timeout=600,
                               env=dict(os.environ, HVPATCH_STATE_DIR=self.state))
            st = json.loads(p.stdout)     # the oracle, under the same policy
            self.assertEqual(st["compliance"]["verdict"], "refuse", st)
            want = [r["code"] for r in st["compliance"]["reasons"]]
            self.assertIn("no-secure-boot", want)
            row = b.eval("(() => { const r = %s; return {verdict: r.querySelector('.hvp-badge').textContent, "
                         "codes: Array.from(r.querySelectorAll('.hvp-col-verdict .hvp-reason-code'))"
                         ".map(c => c.textContent)}; })()" % self.row_js())
            self.assertEqual(row, {"verdict": "refused", "codes": want})

            # the catalog offers nothing to apply: plan's series says why (disabled), nothing chosen
            sel = b.eval("(() => { const s = (%s).querySelector('select.hvp-bundle'); return {value: s.value, "
                         "disabled: Array.from(s.options).filter(o => o.disabled).map(o => o.textContent)}; })()"
                         % self.row_js())
            self.assertEqual(sel["value"], "", sel)
            self.assertTrue(any(t.startswith("demo-version — nothing: ") and "no-secure-boot" in t
                                for t in sel["disabled"]), sel)
            # with no bundle chosen, Check and Apply are off
            self.assertEqual(b.eval("Array.from((%s).querySelectorAll('button.hvp-check, button.hvp-apply'))"
                                    ".map(x => x.disabled)" % self.row_js()), [True, True])
            self.assertEqual(self.guest.proc_version(), self.orig_version, "nothing was applied")
            self.screenshot("policy-refused")
        finally:
            self.configure(policy=self.policy)
        self.assertIn("compliant", self.row_text())
        self.assertNoPageErrors()

    def test_6_schema(self):
        b = self.browser
        try:
            self.configure(hvpatch=os.path.join(self.work, "hvpatch-schema2"))
            err = b.eval("document.getElementById('page-error').hidden ? null : "
                         "document.getElementById('page-error').textContent")
            self.assertIsNotNone(err, "a document of schema major 2 was accepted")
            self.assertIn("urn:hvpatch:report:2", err)
            self.assertIn("major version 1", err)
            self.assertEqual(b.eval("document.querySelectorAll('tr.hvp-guest').length"), 0)
            self.screenshot("schema")

            # a program that is not there, one that prints no JSON: said so, nothing misread
            for exe, want in (("/nonexistent/hvpatch", "cannot run /nonexistent/hvpatch"),
                              ("/bin/true", "hvpatch report gave no JSON document (exit 0)")):
                self.configure(hvpatch=exe)
                self.assertIn(want, b.eval("document.getElementById('page-error').textContent"))
                self.assertEqual(b.eval("document.getElementById('page-error').hidden"), False)
                self.assertEqual(b.eval("document.querySelectorAll('tr.hvp-guest').length"), 0)

            self.configure(hvpatch=os.path.join(self.work, "hvpatch-schema1"))
            self.assertEqual(b.eval("document.getElementById('page-error').hidden"), True,
                             b.eval("document.getElementById('page-error').textContent"))
            self.assertIn("compliant", self.row_text())
            self.assertEqual(b.eval("(%s).querySelector('select.hvp-bundle').value" % self.row_js()), self.bundle,
                             "plan's document with a schema field")
            busy, res = self.run_action("button.hvp-check", self.bundle)
            self.assertIn("would apply", res["text"])
        finally:
            self.configure(hvpatch=hvpatch_exe())
        self.assertNoPageErrors()


def main():
    prog = unittest.main(argv=sys.argv, exit=False, verbosity=2)
    sys.exit(guestlib.summary(prog.result))


if __name__ == "__main__":
    main()

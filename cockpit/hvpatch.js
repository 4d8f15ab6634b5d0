/*
 * Hotpatches: hvpatch's guests in Cockpit.
 *
 * Everything this page knows comes from `hvpatch --json ...` run through
 * cockpit.spawn (report for the list, plan for what the catalog offers, check,
 * apply, revert); it never parses hvpatch's human output. Every string that
 * comes from hvpatch (guest names, kernel releases, reasons: guest-provided and
 * hostile) is put into the page as text (textContent), never as markup.
 *
 * Settings: /etc/hvpatch/cockpit.json (read with cockpit.file) gives the host's
 * defaults; the settings form keeps overrides in this browser's localStorage.
 */
(function () {
    "use strict";

    const CONFIG_FILE = "/etc/hvpatch/cockpit.json";
    const STORAGE_KEY = "hvpatch-cockpit-settings";
    const SCHEMA_MAJOR = 1;
    const DEFAULTS = Object.freeze({
        hvpatch: "hvpatch",             // looked up in the bridge's PATH
        policy: "/etc/hvpatch/policy.xml",
        catalog: "/var/lib/hvpatch/catalog",
        connect: "qemu:///system",
        state_dir: "",                  // "": hvpatch's default (/var/lib/hvpatch)
        domains: "",                    // report --domains GLOB; "": every domain
    });
    const KEYS = Object.keys(DEFAULTS);
    const MAX_CONCURRENT_PLANS = 2;

    // README's exit codes
    const EXIT_MEANING = {
        0: "ok",
        1: "error",
        2: "usage",
        3: "refused",
        4: "guest busy: retry",
        5: "a patch site does not hold the expected bytes",
        6: "applied, then the health gate failed",
    };
    const VERDICTS = ["compliant", "reboot-required", "unmanaged", "refused", "error", "shut-off"];

    let fileDefaults = { ...DEFAULTS };
    let configSource = null;           // CONFIG_FILE when it was read
    let settings = { ...DEFAULTS };
    const guests = new Map();          // domain name -> { row, resultRow, data, busy, plan }

    // -- small DOM helpers (text only) ---------------------------------------
    function el(tag, opts, children) {
        const e = document.createElement(tag);
        if (opts) {
            if (opts.cls)
                e.className = opts.cls;
            if (opts.text !== undefined && opts.text !== null)
                e.textContent = String(opts.text);
            if (opts.title)
                e.title = String(opts.title);
            if (opts.attrs)
                for (const k of Object.keys(opts.attrs))
                    e.setAttribute(k, String(opts.attrs[k]));
        }
        for (const c of children || [])
            if (c)
                e.appendChild(c);
        return e;
    }

    function str(v) {
        return v === undefined || v === null ? "" : String(v);
    }

    function showPageError(msg) {
        const box = document.getElementById("page-error");
        if (msg) {
            box.textContent = msg;
            box.hidden = false;
        } else {
            box.textContent = "";
            box.hidden = true;
        }
    }

    // -- settings ----------------------------------------------------------------
    function sanitizeSettings(obj) {
        const out = {};
        if (!obj || typeof obj !== "object")
            return out;
        for (const k of KEYS)
            if (typeof obj[k] === "string")
                out[k] = obj[k].trim();
        return out;
    }

    function loadStored() {
        try {
            return sanitizeSettings(JSON.parse(window.localStorage.getItem(STORAGE_KEY) || "{}"));
        } catch (e) {
            return {};
        }
    }

    function loadConfigFile() {
        const f = cockpit.file(CONFIG_FILE, { syntax: JSON });
        return f.read()
                .then(function (content) {
                    f.close();
                    fileDefaults = { ...DEFAULTS, ...sanitizeSettings(content) };
                    configSource = content ? CONFIG_FILE : null;
                }, function (ex) {
                    f.close();
                    fileDefaults = { ...DEFAULTS };
                    configSource = null;
                    showPageError(CONFIG_FILE + ": " + (ex.message || cockpit.message(ex)) + " (using the defaults)");
                });
    }

    function applySettings() {
        const stored = loadStored();
        settings = { ...fileDefaults, ...stored };
        for (const k of KEYS)
            document.querySelector('#settings [name="' + k + '"]').value = settings[k];
        const src = [];
        src.push(configSource ? "Defaults from " + configSource + "." : "Built-in defaults (no " + CONFIG_FILE + ").");
        if (Object.keys(stored).length)
            src.push("Overridden in this browser: " + Object.keys(stored).join(", ") + ".");
        document.getElementById("settings-source").textContent = src.join(" ");
    }

    function saveSettings(ev) {
        ev.preventDefault();
        const form = {};
        for (const k of KEYS) {
            const v = document.querySelector('#settings [name="' + k + '"]').value.trim();
            if (v !== fileDefaults[k])
                form[k] = v;
        }
        if (!form.hvpatch && !fileDefaults.hvpatch) {
            showPageError("The hvpatch binary cannot be empty.");
            return;
        }
        window.localStorage.setItem(STORAGE_KEY, JSON.stringify(form));
        applySettings();
        document.getElementById("settings").hidden = true;
        document.getElementById("settings-toggle").setAttribute("aria-expanded", "false");
        refreshAll();
    }

    function resetSettings() {
        window.localStorage.removeItem(STORAGE_KEY);
        applySettings();
        refreshAll();
    }

    // -- running hvpatch -----------------------------------------------------------
    /*
     * Run `hvpatch --json ARGS`; resolves (never rejects) to
     *   { doc, exit, error }: doc the JSON document or null, exit hvpatch's exit code
     *   (null when it did not run), error a message when the document is missing,
     *   unreadable or of a schema this page does not know.
     */
    function hvpatch(command, args) {
        const argv = [settings.hvpatch || "hvpatch", "--json"];
        if (settings.connect)
            argv.push("-c", settings.connect);
        if (settings.policy)
            argv.push("--policy", settings.policy);
        argv.push(command, ...args);
        const opts = { superuser: "try", err: "message" };
        if (settings.state_dir)
            opts.environ = ["HVPATCH_STATE_DIR=" + settings.state_dir];

        return new Promise(function (resolve) {
            cockpit.spawn(argv, opts).then(function (out) {
                resolve(parseDocument(command, out, 0, ""));
            }, function (ex, out) {
                if (ex && ex.problem) {     // did not run: not found, access denied, ...
                    resolve({ doc: null, exit: null,
                              error: "cannot run " + argv[0] + ": " + cockpit.message(ex) });
                    return;
                }
                const code = ex && typeof ex.exit_status === "number" ? ex.exit_status : null;
                resolve(parseDocument(command, out, code, ex ? str(ex.message) : ""));
            });
        });
    }

    function parseDocument(command, out, exit, stderr) {
        let doc;
        try {
            doc = JSON.parse(str(out));
        } catch (e) {
            doc = undefined;
        }
        if (!doc || typeof doc !== "object" || Array.isArray(doc)) {
            let msg = "hvpatch " + command + " gave no JSON document (exit " + str(exit) + ")";
            if (stderr)
                msg += ": " + stderr.trim().slice(-2000);
            return { doc: null, exit, error: msg };
        }
        // A document may name its schema: "urn:hvpatch:COMMAND:MAJOR". Older hvpatch
        // versions have no such field; that is fine. Another major is not.
        if (doc.schema !== undefined) {
            const m = /^urn:hvpatch:([a-z0-9-]+):([0-9]+)$/.exec(str(doc.schema));
            if (!m)
                return { doc: null, exit, error: "hvpatch " + command + " answered with an unknown schema " +
                         JSON.stringify(str(doc.schema).slice(0, 200)) };
            if (Number(m[2]) !== SCHEMA_MAJOR)
                return { doc: null, exit, error: "hvpatch " + command + " answered with schema " + m[0] +
                         ": this page understands major version " + SCHEMA_MAJOR +
                         " only (update the Hotpatches page or hvpatch)" };
        }
        return { doc, exit, error: null };
    }

    function exitText(code) {
        if (code === null || code === undefined)
            return "did not run";
        return "exit " + code + (EXIT_MEANING[code] ? ": " + EXIT_MEANING[code] : "");
    }

    // -- the table -------------------------------------------------------------------
    function verdictBadge(verdict) {
        const v = VERDICTS.includes(verdict) ? verdict : "other";
        return el("span", { cls: "hvp-badge hvp-verdict-" + v, text: verdict || "?" });
    }

    function lastPause(patches) {
        let best = null;
        for (const p of patches || []) {
            if (typeof p.pause_ms !== "number")
                continue;
            if (!best || str(p.applied_at) > str(best.applied_at))
                best = p;
        }
        return best;
    }

    function formatTime(t) {
        if (typeof t === "number" && isFinite(t) && t > 0 && t < 1e11)
            return new Date(t * 1000).toISOString().replace("T", " ").replace(/:\d\d\.\d+Z$/, " UTC");
        return str(t);
    }

    function formatMs(ms) {
        return (ms < 10 ? ms.toFixed(2) : ms.toFixed(1)) + " ms";
    }

    function buildRow(d) {
        const name = str(d.domain);
        const g = guests.get(name) || { busy: false, plan: null, result: null };
        g.data = d;
        guests.set(name, g);

        const row = el("tr", { cls: "hvp-guest", attrs: { "data-verdict": VERDICTS.includes(d.verdict) ? d.verdict : "other" } });
        row.dataset.domain = name;      // a property, never markup

        // guest
        row.appendChild(el("td", { cls: "hvp-col-guest" }, [
            el("div", { cls: "hvp-guest-name", text: name }),
            el("div", { cls: "hvp-muted hvp-small", text: [d.state, d.group ? "group " + d.group : "",
                d.baseline ? "baseline " + d.baseline : ""].filter(Boolean).join(" · ") }),
        ]));

        // verdict and why
        const vcell = el("td", { cls: "hvp-col-verdict" }, [verdictBadge(str(d.verdict))]);
        if (d.tamper && d.tamper !== "-" && d.tamper !== "intact")
            vcell.appendChild(el("span", { cls: "hvp-badge hvp-verdict-refused", text: str(d.tamper) }));
        if (d.health && d.health !== "-")
            vcell.appendChild(el("span", { cls: "hvp-badge hvp-verdict-reboot-required", text: str(d.health) }));
        const why = [];
        for (const r of Array.isArray(d.reasons) ? d.reasons : [])
            why.push(reasonItem(r));
        if (d.error)
            why.push(el("li", { text: str(d.error) }));
        if (why.length)
            vcell.appendChild(el("ul", { cls: "hvp-reasons hvp-small" }, why));
        row.appendChild(vcell);

        // kernel
        const kcell = el("td", { cls: "hvp-col-kernel" });
        if (d.kernel || d.build_id) {
            kcell.appendChild(el("div", { cls: "hvp-kernel", text: str(d.kernel) || "?", title: str(d.banner) }));
            if (d.build_id)
                kcell.appendChild(el("div", { cls: "hvp-muted hvp-small hvp-mono", text: "build " + str(d.build_id).slice(0, 16) + "…",
                    title: "build id " + str(d.build_id) }));
        } else {
            kcell.appendChild(el("span", { cls: "hvp-muted", text: "—" }));
        }
        row.appendChild(kcell);

        // patches, each with its revert
        const pcell = el("td", { cls: "hvp-col-patches" });
        const patches = Array.isArray(d.patches) ? d.patches : [];
        if (!patches.length)
            pcell.appendChild(el("span", { cls: "hvp-muted", text: "none" }));
        const list = el("ul", { cls: "hvp-patches" });
        for (const p of patches) {
            const item = el("li", { cls: "hvp-patch" });
            item.dataset.patch = str(p.id);
            item.appendChild(el("span", { cls: "hvp-patch-id hvp-mono", text: str(p.id) }));
            const meta = [p.state, p.key ? "key " + p.key : "", p.applied_at ? "applied " + formatTime(p.applied_at) : ""];
            if (p.marked_bad)
                meta.push("marked bad");
            item.appendChild(el("span", { cls: "hvp-muted hvp-small", text: " " + meta.filter(Boolean).join(" · ") }));
            const rb = el("button", { cls: "hvp-btn hvp-btn-small hvp-btn-danger hvp-revert", text: "Revert",
                attrs: { type: "button" } });
            rb.addEventListener("click", function () {
                confirmAction(name, "revert", "Revert " + str(p.id) + " on " + name + "?", "Revert",
                    function () { revert(name, str(p.id)) });
            });
            item.appendChild(rb);
            list.appendChild(item);
        }
        if (patches.length)
            pcell.appendChild(list);
        row.appendChild(pcell);

        // last pause window
        const lp = lastPause(patches);
        row.appendChild(el("td", { cls: "hvp-col-pause" }, [
            lp ? el("span", { cls: "hvp-pause", text: formatMs(Number(lp.pause_ms)), title: "patch " + str(lp.id) })
                : el("span", { cls: "hvp-muted", text: "—" }),
        ]));

        // actions
        const acell = el("td", { cls: "hvp-col-actions" });
        const running = d.state === "running";
        const select = el("select", { cls: "hvp-bundle", attrs: { "aria-label": "Bundle from the catalog" } });
        select.appendChild(el("option", { text: running ? "loading catalog…" : "(not running)", attrs: { value: "" } }));
        // Check and Apply need a bundle chosen (setBusy keeps them off while none is)
        const check = el("button", { cls: "hvp-btn hvp-check hvp-needs-bundle", text: "Check", attrs: { type: "button" } });
        const apply = el("button", { cls: "hvp-btn hvp-btn-primary hvp-apply hvp-needs-bundle", text: "Apply",
            attrs: { type: "button" } });
        check.addEventListener("click", function () { runBundleAction(name, "check") });
        apply.addEventListener("click", function () {
            const bundle = select.value;
            const opt = select.selectedOptions[0];
            const label = (opt && opt.dataset.label) || bundle;
            confirmAction(name, "apply", "Apply " + label + " to " + name + "?", "Apply",
                function () { runBundleAction(name, "apply", bundle) });
        });
        select.addEventListener("change", function () { setBusy(name, guests.get(name).busy) });
        const busy = el("span", { cls: "hvp-busy", attrs: { role: "status" } });
        acell.appendChild(el("div", { cls: "hvp-actions" }, [select, check, apply]));
        acell.appendChild(busy);
        row.appendChild(acell);

        const resultRow = el("tr", { cls: "hvp-result-row" });
        const resultCell = el("td", { attrs: { colspan: 6 } });
        resultRow.appendChild(resultCell);
        resultRow.hidden = true;

        g.row = row;
        g.resultRow = resultRow;
        g.select = select;
        g.busyEl = busy;
        if (g.plan)
            fillPlan(g);
        if (g.result)
            showResult(name, g.result);
        setBusy(name, g.busy);
        return g;
    }

    function reasonItem(r) {
        const li = el("li", { cls: "hvp-reason" });
        if (r && typeof r === "object") {
            if (r.stage)
                li.appendChild(el("span", { cls: "hvp-reason-stage", text: str(r.stage) }));
            if (r.code)
                li.appendChild(el("code", { cls: "hvp-reason-code", text: str(r.code) }));
            li.appendChild(el("span", { cls: "hvp-reason-text", text: str(r.reason || r.message || r.text) }));
        } else {
            li.appendChild(el("span", { cls: "hvp-reason-text", text: str(r) }));
        }
        return li;
    }

    function setBusy(name, what) {
        const g = guests.get(name);
        if (!g)
            return;
        g.busy = what || false;
        if (!g.row)
            return;
        g.row.classList.toggle("hvp-is-busy", !!g.busy);
        g.row.setAttribute("aria-busy", g.busy ? "true" : "false");
        const noBundle = !g.select || !g.select.value;
        for (const b of g.row.querySelectorAll("button, select"))
            b.disabled = !!g.busy || (g.data.state !== "running") || (noBundle && b.classList.contains("hvp-needs-bundle"));
        g.busyEl.textContent = g.busy ? g.busy + "…" : "";
        if (g.busy)
            g.busyEl.prepend(el("span", { cls: "hvp-spinner", attrs: { "aria-hidden": "true" } }));
    }

    // -- the catalog per guest: plan --catalog DIR DOMAIN ------------------------------
    function fillPlan(g) {
        const sel = g.select;
        sel.textContent = "";
        const res = g.plan;
        if (res.error || !res.doc) {
            sel.appendChild(el("option", { text: "catalog: " + (res.error || exitText(res.exit)), attrs: { value: "" } }));
            sel.title = res.error || "";
            return;
        }
        const doc = res.doc;
        const dir = str(doc.catalog) || settings.catalog;
        const seen = new Set();
        let preferred = null;
        const series = Array.isArray(doc.series) ? doc.series : [];
        const none = el("option", { text: "(nothing to apply)", attrs: { value: "" } });
        sel.appendChild(none);
        for (const s of series) {
            if (!s || typeof s !== "object")
                continue;
            if (!s.desired || !s.desired.file) {
                // nothing desired in this series (refused by the policy, applied, ...): say why
                sel.appendChild(el("option", { text: str(s.series) + " — " + str(s.action) +
                    (s.note ? ": " + str(s.note).slice(0, 200) : ""), attrs: { value: "", disabled: "" } }));
                continue;
            }
            const file = str(s.desired.file);
            if (seen.has(file))
                continue;
            seen.add(file);
            const opt = el("option", { text: str(s.desired.patch_id) + " — " + str(s.action) +
                (s.outside_window ? " (outside the window)" : ""), attrs: { value: dir + "/" + file } });
            opt.dataset.label = str(s.desired.patch_id);
            sel.appendChild(opt);
            if (!preferred && (s.action === "apply" || s.action === "replace"))
                preferred = opt;
        }
        for (const e of Array.isArray(doc.catalog_errors) ? doc.catalog_errors : []) {
            const file = str(e && e.file);
            if (!file || seen.has(file))
                continue;
            seen.add(file);
            const opt = el("option", { text: file + " — skipped: " + str(e.error).slice(0, 120),
                attrs: { value: dir + "/" + file } });
            opt.dataset.label = file;
            sel.appendChild(opt);
        }
        if (sel.options.length === 1)
            none.textContent = doc.error ? str(doc.error) : "(nothing in " + dir + " for this kernel)";
        if (preferred)
            preferred.selected = true;
        else
            none.selected = true;
    }

    function loadPlans(names) {
        const queue = names.slice();
        function next() {
            const name = queue.shift();
            if (name === undefined)
                return Promise.resolve();
            const g = guests.get(name);
            if (!g || g.data.state !== "running")
                return next();
            return hvpatch("plan", ["--catalog", settings.catalog, name]).then(function (res) {
                // plan exits 3 for an unmanaged or refused guest and still lists the catalog
                if (!res.error && res.doc && res.doc.error && !res.doc.series && !res.doc.catalog_errors)
                    res.error = str(res.doc.error) + " (" + exitText(res.exit) + ")";
                g.plan = res;
                if (g.select) {
                    fillPlan(g);
                    setBusy(name, g.busy);      // a bundle may be chosen now
                }
                return next();
            });
        }
        const workers = [];
        for (let i = 0; i < MAX_CONCURRENT_PLANS; i++)
            workers.push(next());
        return Promise.all(workers);
    }

    // -- actions -----------------------------------------------------------------
    function showResult(name, result) {
        const g = guests.get(name);
        g.result = result;
        if (!g.resultRow)
            return;
        const cell = g.resultRow.firstChild;
        cell.textContent = "";
        const box = el("div", { cls: "hvp-result hvp-result-" + result.kind, attrs: { role: "status" } });
        box.dataset.action = result.action;
        box.appendChild(el("div", { cls: "hvp-result-title", text: result.title }));
        if (result.lines)
            for (const line of result.lines)
                box.appendChild(el("div", { cls: "hvp-small", text: line }));
        if (result.reasons && result.reasons.length)
            box.appendChild(el("ul", { cls: "hvp-reasons" }, result.reasons.map(reasonItem)));
        const close = el("button", { cls: "hvp-btn hvp-btn-small hvp-btn-link hvp-dismiss", text: "Dismiss",
            attrs: { type: "button" } });
        close.addEventListener("click", function () {
            g.result = null;
            g.resultRow.hidden = true;
        });
        box.appendChild(close);
        cell.appendChild(box);
        g.resultRow.hidden = false;
    }

    function describe(action, res) {
        const doc = res.doc || {};
        const what = { check: "Check", apply: "Apply", revert: "Revert" }[action];
        if (res.error)
            return { action, kind: "danger", title: what + " failed: " + res.error, lines: [], reasons: [] };
        const reasons = Array.isArray(doc.reasons) ? doc.reasons.slice() : [];
        if (!reasons.length && doc.reason_code)     // apply's one refusal with a code (marked-bad)
            reasons.push({ stage: action, code: doc.reason_code, reason: doc.error });
        const lines = [];
        if (typeof doc.pause_ms === "number")
            lines.push("Pause window: " + formatMs(doc.pause_ms));
        if (doc.busy_task && typeof doc.busy_task === "object")
            lines.push("Busy task: " + str(doc.busy_task.comm) + " (pid " + str(doc.busy_task.pid) + ")");
        if (Array.isArray(doc.warnings))
            for (const w of doc.warnings)
                lines.push("Warning: " + str(typeof w === "object" ? (w.reason || w.message || JSON.stringify(w)) : w));
        if (res.exit === 0) {
            let title;
            if (action === "check")
                title = "Check: " + str(doc.patch_id || "the bundle") + " would apply";
            else if (action === "apply")
                title = "Applied " + str(doc.patch_id || "the bundle");
            else
                title = "Reverted " + str(doc.patch_id || "");
            return { action, kind: "success", title, lines, reasons };
        }
        let title = what + (res.exit === 3 ? " refused" : " failed") + " (" + exitText(res.exit) + ")";
        if (doc.error && !reasons.length)
            title += ": " + str(doc.error);
        else if (doc.error)
            lines.unshift(str(doc.error));
        return { action, kind: res.exit === 4 ? "warning" : "danger", title, lines, reasons };
    }

    /*
     * Apply and revert pause the guest and change its kernel: the result row asks
     * first, with what will happen; only its confirm button goes on.
     */
    function confirmAction(name, action, question, okText, onOk) {
        const g = guests.get(name);
        g.result = null;
        const cell = g.resultRow.firstChild;
        cell.textContent = "";
        const ok = el("button", { cls: "hvp-btn hvp-btn-small hvp-confirm" + (action === "revert" ? " hvp-btn-danger" : " hvp-btn-primary"),
            text: okText, attrs: { type: "button" } });
        const cancel = el("button", { cls: "hvp-btn hvp-btn-small hvp-cancel", text: "Cancel", attrs: { type: "button" } });
        const box = el("div", { cls: "hvp-result hvp-result-confirm", attrs: { role: "alertdialog", "aria-label": question } }, [
            el("div", { cls: "hvp-result-title", text: question }),
            el("div", { cls: "hvp-small", text: "hvpatch pauses the guest's vCPUs for a few milliseconds while it writes; " +
                (action === "revert" ? "the code stays in the patch area until the guest reboots." :
                    "the policy and the signature are checked first.") }),
            el("div", { cls: "hvp-confirm-actions" }, [ok, cancel]),
        ]);
        box.dataset.action = "confirm-" + action;
        ok.addEventListener("click", function () {
            g.resultRow.hidden = true;
            onOk();
        });
        cancel.addEventListener("click", function () {
            cell.textContent = "";
            g.resultRow.hidden = true;
        });
        cell.appendChild(box);
        g.resultRow.hidden = false;
        ok.focus();
    }

    function runBundleAction(name, action, chosen) {
        const g = guests.get(name);
        const bundle = chosen !== undefined ? chosen : (g.select ? g.select.value : "");
        if (!bundle) {
            showResult(name, { action, kind: "warning", title: "Choose a bundle from the catalog first.", reasons: [] });
            return;
        }
        setBusy(name, action === "check" ? "Checking" : "Applying");
        hvpatch(action, [name, bundle]).then(function (res) {
            const result = describe(action, res);
            // apply stops at its first refusal; check lists every reason with its stage
            // and code: ask it, so the page shows them all
            if (action === "apply" && !res.error && (res.exit === 3 || res.exit === 5) && !result.reasons.length) {
                setBusy(name, "Collecting the reasons");
                return hvpatch("check", [name, bundle]).then(function (chk) {
                    if (!chk.error && chk.doc && Array.isArray(chk.doc.reasons) && chk.doc.reasons.length) {
                        result.reasons = chk.doc.reasons;
                        result.lines.push("Every reason, as hvpatch check reports them:");
                    }
                    return result;
                });
            }
            return result;
        }).then(function (result) {
            setBusy(name, false);
            showResult(name, result);
            if (action === "apply")
                return refreshGuest(name);
        });
    }

    function revert(name, patchId) {
        setBusy(name, "Reverting " + patchId);
        hvpatch("revert", [name, patchId]).then(function (res) {
            setBusy(name, false);
            const r = describe("revert", res);
            if (res.exit === 0 && !res.doc.patch_id)
                r.title = "Reverted " + patchId;
            showResult(name, r);
            return refreshGuest(name);
        });
    }

    // -- loading -------------------------------------------------------------------
    function renderAll(domains) {
        const body = document.getElementById("guest-rows");
        body.textContent = "";
        const names = new Set();
        for (const d of domains) {
            const g = buildRow(d);
            names.add(str(d.domain));
            body.appendChild(g.row);
            body.appendChild(g.resultRow);
        }
        for (const name of Array.from(guests.keys()))
            if (!names.has(name))
                guests.delete(name);
    }

    function summarize(doc) {
        const c = doc.counts || {};
        const parts = VERDICTS.filter(v => c[v]).map(v => c[v] + " " + v);
        const n = Array.isArray(doc.domains) ? doc.domains.length : 0;
        return n + " guest" + (n === 1 ? "" : "s") + (parts.length ? ": " + parts.join(", ") : "");
    }

    function reportArgs(domains) {
        const args = [];
        if (domains)
            args.push("--domains", domains);
        return args;
    }

    let refreshing = null;
    let refreshAgain = false;          // settings changed while a refresh ran
    function refreshAll() {
        if (refreshing) {
            refreshAgain = true;
            return refreshing;
        }
        const btn = document.getElementById("refresh");
        btn.disabled = true;
        document.body.setAttribute("data-state", "loading");
        document.getElementById("summary").textContent = "Reading the guests…";
        refreshing = hvpatch("report", reportArgs(settings.domains)).then(function (res) {
            // report exits 1 (a guest unreadable) or 3 (reboot-required, refused) with its document
            if (res.error || !res.doc || !Array.isArray(res.doc.domains)) {
                showPageError(res.error || ("hvpatch report: " + str(res.doc && res.doc.error) + " (" + exitText(res.exit) + ")"));
                document.getElementById("summary").textContent = "";
                renderAll([]);
                return;
            }
            showPageError(null);
            renderAll(res.doc.domains);
            document.getElementById("summary").textContent = summarize(res.doc);
            document.body.setAttribute("data-state", "plans");
            return loadPlans(res.doc.domains.map(d => str(d.domain)));
        }).finally(function () {
            btn.disabled = false;
            refreshing = null;
            if (refreshAgain) {
                refreshAgain = false;
                refreshAll();
            } else {
                document.body.setAttribute("data-state", "ready");
            }
        });
        return refreshing;
    }

    /* After an action: read this guest again (report --domains NAME) and its plan. */
    function refreshGuest(name) {
        const g = guests.get(name);
        setBusy(name, "Reading");
        return hvpatch("report", ["--domains", name]).then(function (res) {
            const docs = res.doc && Array.isArray(res.doc.domains) ? res.doc.domains : [];
            const d = docs.find(x => str(x.domain) === name);
            if (res.error || !d) {
                setBusy(name, false);
                showPageError(res.error || ("could not read " + name + " again: " + exitText(res.exit)));
                return;
            }
            const oldRow = g.row;
            const oldResult = g.resultRow;
            g.busy = false;
            buildRow(d);
            oldRow.replaceWith(g.row);
            oldResult.replaceWith(g.resultRow);
            return loadPlans([name]);
        });
    }

    function init() {
        document.getElementById("refresh").addEventListener("click", refreshAll);
        const toggle = document.getElementById("settings-toggle");
        toggle.addEventListener("click", function () {
            const form = document.getElementById("settings");
            form.hidden = !form.hidden;
            toggle.setAttribute("aria-expanded", form.hidden ? "false" : "true");
        });
        document.getElementById("settings").addEventListener("submit", saveSettings);
        document.getElementById("settings-reset").addEventListener("click", resetSettings);
        loadConfigFile().then(function () {
            applySettings();
            refreshAll();
        });
    }

    if (document.readyState === "loading")
        document.addEventListener("DOMContentLoaded", init);
    else
        init();
}());

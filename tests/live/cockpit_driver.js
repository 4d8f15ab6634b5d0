// A headless Chromium driven line by line, for test_cockpit.py.
//
// Reads one JSON request per line on stdin, answers one JSON line on stdout:
//   {"op": "goto", "url": U}               open U
//   {"op": "click", "selector": S}          click the element S (CSS)
//   {"op": "fill", "selector": S, "value": V}
//   {"op": "select", "selector": S, "value": V}   choose an <option> by value
//   {"op": "wait", "js": EXPR, "timeout": MS}      until EXPR (a JS expression) is truthy
//   {"op": "eval", "js": EXPR}              the value of EXPR (JSON-serializable)
//   {"op": "screenshot", "path": P}         the whole page as PNG
//   {"op": "errors"}                        the page's script errors and console errors so far
//   {"op": "quit"}
// Answer: {"ok": true, "result": ...} or {"ok": false, "error": "..."}.
// Environment: HVP_PLAYWRIGHT (the playwright-core module folder), HVP_CHROMIUM.
"use strict";

const { chromium } = require(process.env.HVP_PLAYWRIGHT || "playwright-core");
const readline = require("readline");

function answer(obj) {
    process.stdout.write(JSON.stringify(obj) + "\n");
}

async function main() {
    const browser = await chromium.launch({
        executablePath: process.env.HVP_CHROMIUM || "/usr/bin/chromium",
        headless: true,
        args: ["--no-sandbox", "--disable-gpu"],
    });
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const errors = [];
    page.on("pageerror", e => errors.push("pageerror: " + String(e)));
    page.on("console", m => { if (m.type() === "error") errors.push("console: " + m.text()); });
    page.on("dialog", d => { errors.push("dialog: " + d.message()); d.dismiss(); });
    answer({ ok: true, result: "ready" });

    const rl = readline.createInterface({ input: process.stdin });
    for await (const line of rl) {
        let req;
        try {
            req = JSON.parse(line);
        } catch (e) {
            answer({ ok: false, error: "bad request: " + String(e) });
            continue;
        }
        try {
            let result = null;
            const timeout = req.timeout || 30000;
            switch (req.op) {
            case "goto":
                await page.goto(req.url, { timeout });
                break;
            case "click":
                await page.click(req.selector, { timeout });
                break;
            case "fill":
                await page.fill(req.selector, req.value, { timeout });
                break;
            case "select":
                result = await page.selectOption(req.selector, req.value, { timeout });
                break;
            case "wait": {
                // polled with evaluate (the page's CSP forbids the eval waitForFunction uses)
                const end = Date.now() + timeout;
                while (!await page.evaluate(req.js)) {
                    if (Date.now() > end)
                        throw new Error("timed out after " + timeout + " ms waiting for " + req.js);
                    await new Promise(r => setTimeout(r, 200));
                }
                break;
            }
            case "eval":
                result = await page.evaluate(req.js);
                break;
            case "screenshot":
                await page.screenshot({ path: req.path, fullPage: true });
                break;
            case "errors":
                result = errors.slice();
                break;
            case "quit":
                answer({ ok: true, result: null });
                await browser.close();
                return;
            default:
                throw new Error("unknown op " + req.op);
            }
            answer({ ok: true, result: result === undefined ? null : result });
        } catch (e) {
            answer({ ok: false, error: String(e && e.message ? e.message : e).slice(0, 4000) });
        }
    }
    await browser.close();
}

main().catch(e => {
    answer({ ok: false, error: "driver: " + String(e && e.stack ? e.stack : e) });
    process.exit(1);
});

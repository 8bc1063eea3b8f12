// ui_test.mjs — the dashboard (/ui) in headless Chromium (Debian's
// chromium, driven by playwright-core) against a real `variet serve` with
// two stopped roles, "fast" and "balanced" (scripts/ui-test.sh sets it up):
// the page loads with its files from the binary, shows both roles stopped,
// their memory bars and balanced's tuning plots; the log panel follows
// fast's backend log; a chat request for fast (sent by this test) starts
// the role and the page shows its state change and the new log lines as
// they stream; a screenshot is saved. With VARIET_KEY the gateway has an
// api_key: the page must ask for it, refuse a wrong one, and keep the right
// one across a reload. Prints one line per check and a summary; exits 1 if
// any check failed.
//   VARIET_URL (http://127.0.0.1:PORT), VARIET_KEY, VARIET_CHROMIUM, VARIET_UI_SHOT
import { chromium } from "playwright-core";

const base = process.env.VARIET_URL;
const key = process.env.VARIET_KEY || "";
const exe = process.env.VARIET_CHROMIUM || "/usr/bin/chromium";
const shot = process.env.VARIET_UI_SHOT || "ui-dashboard.png";
if (!base) {
  console.error("ui_test: set VARIET_URL (http://127.0.0.1:PORT)");
  process.exit(2);
}
const mode = key ? "[api_key] " : "";
let passed = 0;
let failed = 0;

function expect(cond, what) {
  if (!cond) throw new Error(`expected ${what}`);
}

async function check(name, fn) {
  const t0 = performance.now();
  try {
    const note = await fn();
    passed++;
    console.log(`ok   ${mode}${name} (${(performance.now() - t0).toFixed(0)} ms)${note ? ": " + note : ""}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${mode}${name}: ${e && e.stack ? e.stack : e}`);
  }
}

const browser = await chromium.launch({ executablePath: exe, args: ["--no-sandbox"] });
const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
const page = await context.newPage();
const pageErrors = [];
page.on("pageerror", (e) => pageErrors.push(String(e)));
page.on("console", (m) => { if (m.type() === "error") pageErrors.push(m.text()); });
const state = (role) => page.locator(`#roles tr[data-role="${role}"] .state`);

try {
  await check("GET /ui loads the page from the binary", async () => {
    const r = await page.goto(base + "/ui");
    expect(r.status() === 200, `200, got ${r.status()}`);
    expect((await r.headerValue("content-security-policy") || "").includes("script-src 'self'"), "a CSP");
    expect(await page.title() === "Variet dashboard", "the page's title");
    return `ETag ${await r.headerValue("etag")}`;
  });

  if (key) {
    await check("asks for the API key (/status answered 401)", async () => {
      await page.locator("#key-dialog").waitFor({ state: "visible", timeout: 10000 });
      expect(await page.locator("#roles tbody tr").count() === 0, "no role shown without the key");
    });
    await check("refuses a wrong key and asks again", async () => {
      await page.fill("#key-input", key + "-wrong");
      await page.click("#key-submit");
      await page.locator("#key-dialog").waitFor({ state: "visible", timeout: 10000 });
      await page.waitForFunction(() => /refused/.test(document.getElementById("key-why").textContent), null,
        { timeout: 10000 });
    });
    await check("takes the right key", async () => {
      await page.fill("#key-input", key);
      await page.click("#key-submit");
      await page.locator("#key-dialog").waitFor({ state: "hidden", timeout: 10000 });
    });
  }

  await check("shows two roles, both stopped", async () => {
    await state("fast").waitFor({ timeout: 15000 });
    await state("balanced").waitFor({ timeout: 15000 });
    const rows = await page.locator("#roles tbody tr").count();
    expect(rows === 2, `2 rows, got ${rows}`);
    const f = await state("fast").textContent(), b = await state("balanced").textContent();
    expect(f === "stopped" && b === "stopped", `both stopped, got ${f} / ${b}`);
    const names = await page.locator("#roles tbody .role-sub").allTextContents();
    expect(names.some((t) => t.includes("Fast (tiny llama)")), `display names shown: ${names}`);
    expect(await page.locator("#conn").getAttribute("data-ok") === "true", "the connection marked live");
  });

  if (key) {
    await check("keeps the key across a reload (sessionStorage)", async () => {
      await page.reload();
      await state("fast").waitFor({ timeout: 15000 });
      expect(await page.locator("#key-dialog").isHidden(), "no second prompt");
    });
  }

  await check("memory bars per device (predicted; nothing measured yet)", async () => {
    const dev = page.locator('#memory .device[data-device="CPU"]');
    await dev.waitFor({ timeout: 10000 });
    const rows = await dev.locator(".bar-row").count();
    expect(rows === 2, `a bar row per role, got ${rows}`);
    const w = await dev.locator('.bar-row[data-role="fast"] .bar.plan > span').evaluate((e) => e.style.width);
    expect(parseFloat(w) > 0, `a predicted bar for fast, width ${w}`);
  });

  await check("tuning plots for the tuned role, a note for the other", async () => {
    const img = page.locator('#tune .tune-role[data-role="balanced"] img.plot-trials');
    await img.waitFor({ timeout: 15000 });
    await page.waitForFunction(() => {
      const i = document.querySelector('#tune .tune-role[data-role="balanced"] img.plot-trials');
      return i && i.complete && i.naturalWidth > 0;
    }, null, { timeout: 15000 });
    const fr = await page.locator('#tune .tune-role[data-role="balanced"] img.plot-frontier').count();
    expect(fr === 1, "a frontier plot");
    const note = await page.locator('#tune .tune-role[data-role="fast"]').textContent();
    expect(/not tuned yet/.test(note) && note.includes("tune-fast.json"), `fast's note: ${note}`);
  });

  await check("the log panel follows fast (empty: never started)", async () => {
    await page.waitForFunction(() => document.getElementById("log-state").dataset.following === "fast", null,
      { timeout: 10000 });
    const sel = await page.locator("#log-role").inputValue();
    expect(sel === "fast", `fast selected, got ${sel}`);
  });

  let before = "";
  await check("a chat request starts fast: the page shows the state change", async () => {
    before = await page.locator("#log").textContent();
    expect(!/print_timing/.test(before), "no request's lines in the log before the request");
    const seen = new Set([await state("fast").textContent()]);
    const watch = (async () => {
      for (let i = 0; i < 600 && !seen.has("ready"); i++) {
        seen.add(await state("fast").textContent());
        await page.waitForTimeout(50);
      }
    })();
    const headers = { "Content-Type": "application/json" };
    if (key) headers.Authorization = "Bearer " + key;
    const r = await fetch(base + "/v1/chat/completions", {
      method: "POST",
      headers,
      body: JSON.stringify({ model: "fast", messages: [{ role: "user", content: "Hello!" }], max_tokens: 8 }),
    });
    expect(r.status === 200, `the request answered 200, got ${r.status}`);
    await watch;
    expect(seen.has("stopped") && seen.has("ready"), `stopped then ready, saw ${[...seen].join(", ")}`);
    const other = await state("balanced").textContent();
    expect(other === "stopped", `balanced still stopped, got ${other}`);
    const loads = await page.locator('#roles tr[data-role="fast"] td.loads').textContent();
    expect(loads === "1", `1 load shown, got ${loads}`);
    return [...seen].join(" → ");
  });

  await check("the log panel streamed fast's new lines", async () => {
    await page.waitForFunction(() => /print_timing|all slots are idle/.test(document.getElementById("log").textContent),
      null, { timeout: 15000 });
    const text = await page.locator("#log").textContent();
    expect(text.length > before.length, "more text than before the request");
    expect(/listening on|server is listening|main: model loaded/.test(text), "the load's lines");
    expect(await page.locator("#log-state").getAttribute("data-following") === "fast", "still following");
    return `${text.split("\n").length} lines`;
  });

  await check("the measured memory bar appears after the load", async () => {
    await page.waitForFunction(() => {
      const s = document.querySelector('#memory .device[data-device="CPU"] .bar-row[data-role="fast"] .bar.meas > span');
      return s && parseFloat(s.style.width) > 0;
    }, null, { timeout: 10000 });
  });

  await check("screenshot", async () => {
    await page.screenshot({ path: shot, fullPage: true });
    return shot;
  });

  await check("no script errors on the page", async () => {
    // the answers the page expects (the wrong key's 401, fast's 404 for
    // its tuning history) are logged by the browser as failed loads
    const real = pageErrors.filter((e) => !/^Failed to load resource: the server responded with a status of (401|404)/.test(e));
    expect(real.length === 0, `none, got: ${real.join(" | ")}`);
  });
} finally {
  await browser.close();
}

console.log(`ui: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);

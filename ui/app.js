// app.js — the Variet dashboard (plain JS, no framework, nothing fetched
// from elsewhere). Every second it reads /status (roles, state, memory,
// queues, last load, errors) and /metrics (request and token counters,
// turned into rates between two reads); it follows one role's backend log
// with fetch() on /roles/NAME/logs?follow=1 (EventSource cannot send the
// API key) and shows each role's tuning plots, SVG rendered by the gateway
// from tune-ROLE.json with the same code as the retuning log. With an
// api_key the gateway answers 401: the page asks for the key once and keeps
// it in sessionStorage (this tab only). Data is put on the page as text,
// never as HTML.
"use strict";

const KEY_STORE = "variet-api-key";
const POLL_MS = 1000;
const TUNE_MS = 30000;
const LOG_MAX_CHARS = 200000;

let apiKey = sessionStorage.getItem(KEY_STORE) || "";
let waitingForKey = false;
let prev = null;          // {t, roles: {name: {req, tin, tout}}}: the last counters
let roleNames = [];
let logCtl = null;        // AbortController of the log stream
let logRole = "";
let tuneAt = 0, tuneFor = "";
const blobUrls = [];

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of kids) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

// Replace e's children with kids, leaving out null and undefined ones.
function put(e, ...kids) {
  e.replaceChildren(...kids.filter((k) => k !== null && k !== undefined));
}

function authHeaders() {
  return apiKey ? { Authorization: "Bearer " + apiKey } : {};
}

function api(path, opts) {
  return fetch(path, Object.assign({ headers: authHeaders(), cache: "no-store" }, opts || {}));
}

function mib(bytes) {
  if (!(bytes > 0)) return "0 MiB";
  const m = bytes / 1048576;
  return m >= 1024 ? (m / 1024).toFixed(2) + " GiB" : m.toFixed(m >= 100 ? 0 : 1) + " MiB";
}

function rate(v) {
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

function setConn(ok, why) {
  const c = $("conn");
  c.dataset.ok = ok ? "true" : "false";
  c.textContent = ok ? "live" : why || "offline";
}

// ---- the API key ----

function askKey(why) {
  waitingForKey = true;
  $("key-why").textContent = why;
  $("key-dialog").hidden = false;
  $("key-input").value = "";
  $("key-input").focus();
}

$("key-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  apiKey = $("key-input").value.trim();
  sessionStorage.setItem(KEY_STORE, apiKey);
  $("key-dialog").hidden = true;
  waitingForKey = false;
  tuneFor = "";
  if (logRole) followLog(logRole);
  poll();
});

// ---- /metrics: the counters the rates come from ----

function parseMetrics(text) {
  const roles = {};
  const get = (r) => (roles[r] = roles[r] || { req: 0, tin: 0, tout: 0 });
  for (const line of text.split("\n")) {
    const m = /^(variet_requests_total|variet_tokens_total)\{([^}]*)\}\s+(\S+)$/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of m[2].matchAll(/(\w+)="([^"]*)"/g)) labels[l[1]] = l[2];
    if (!labels.role) continue;
    const v = Number(m[3]) || 0;
    const r = get(labels.role);
    if (m[1] === "variet_requests_total") r.req += v;
    else if (labels.direction === "in") r.tin += v;
    else if (labels.direction === "out") r.tout += v;
  }
  return { t: performance.now() / 1000, roles };
}

function rates(now, name) {
  const cur = now.roles[name];
  const old = prev && prev.roles[name];
  const dt = prev ? now.t - prev.t : 0;
  if (!cur || !old || dt <= 0) return null;
  return {
    req: Math.max(0, cur.req - old.req) / dt,
    tin: Math.max(0, cur.tin - old.tin) / dt,
    tout: Math.max(0, cur.tout - old.tout) / dt,
  };
}

// ---- roles ----

function lastLoad(r) {
  const l = r.last_load;
  if (!l) return "—";
  const parts = [];
  if (l.seconds > 0) parts.push(l.seconds.toFixed(1) + " s");
  if (l.n_ctx) parts.push("n_ctx " + l.n_ctx);
  if (l.n_ubatch) parts.push("ub " + l.n_ubatch);
  if (l.flash_attn) parts.push("fa " + l.flash_attn);
  for (const d of l.devices || []) {
    const tot = d.model_mib + d.kv_mib + d.rs_mib + d.compute_mib + (d.output_mib || 0);
    parts.push(d.device + " " + tot.toFixed(1) + " MiB");
  }
  if (l.oom) parts.push("OOM on " + l.oom.device + " (" + l.oom.mib.toFixed(0) + " MiB)");
  return parts.join(" · ");
}

function renderRoles(st, now) {
  const body = $("roles").tBodies[0];
  const names = Object.keys(st.roles);
  for (const tr of [...body.rows]) if (!st.roles[tr.dataset.role]) tr.remove();
  for (const name of names) {
    const r = st.roles[name];
    let tr = body.querySelector(`tr[data-role="${CSS.escape(name)}"]`);
    if (!tr) {
      tr = el("tr", { "data-role": name });
      for (const c of ["name", "st", "inflight", "queued", "reqs", "toks", "loads", "load", "err"])
        tr.append(el("td", { class: c }));
      body.append(tr);
    }
    const c = (k) => tr.querySelector("td." + k);
    const sub = [r.display_name && r.display_name !== name ? r.display_name : "",
      (r.aliases || []).length ? "aliases " + r.aliases.join(", ") : ""].filter(Boolean).join(" · ");
    put(c("name"), el("div", { class: "role-name" }, name), sub ? el("div", { class: "role-sub" }, sub) : null);
    const badge = el("span", { class: "state", "data-state": r.state }, r.state);
    const up = r.state === "ready" && r.uptime_s ? el("div", { class: "role-sub" }, "up " + Math.round(r.uptime_s) + " s") : null;
    put(c("st"), badge, up);
    c("inflight").textContent = r.inflight + " / " + r.max_concurrent;
    c("queued").textContent = r.queued + " / " + r.queue_size;
    const rt = rates(now, name);
    c("reqs").textContent = rt ? rate(rt.req) : "—";
    c("toks").textContent = rt ? rate(rt.tin) + " · " + rate(rt.tout) : "—";
    c("loads").textContent = r.loads;
    c("load").textContent = lastLoad(r);
    put(c("err"), r.last_error ? el("span", { class: "error" }, r.last_error) : "—");
    for (const k of ["inflight", "queued", "reqs", "toks", "loads"]) c(k).classList.add("num");
  }
  return names;
}

// ---- memory: a bar per device, planner vs load report ----

function renderMemory(st) {
  const devices = [];
  for (const r of Object.values(st.roles))
    for (const d of Object.keys(r.memory_plan_bytes || {})) if (!devices.includes(d)) devices.push(d);
  const out = [];
  for (const dev of devices) {
    const rows = [];
    let max = 0, sumPlan = 0, sumMeas = 0;
    for (const [name, r] of Object.entries(st.roles)) {
      const p = (r.memory_plan_bytes || {})[dev] || 0;
      const m = r.memory_measured_bytes ? r.memory_measured_bytes[dev] || 0 : null;
      if (!p && !m) continue;
      rows.push({ name, p, m, loaded: r.state === "ready" || r.state === "loading" });
      max = Math.max(max, p, m || 0);
      if (r.state === "ready" || r.state === "loading") { sumPlan += p; sumMeas += m || 0; }
    }
    if (!rows.length) continue;
    const block = el("div", { class: "device", "data-device": dev },
      el("h3", {}, dev, " ", el("span", { class: "muted" }, "loaded now: predicted " + mib(sumPlan) + ", measured " + mib(sumMeas))));
    for (const row of rows) {
      const w = (v) => (max > 0 ? Math.max(0.5, (100 * v) / max) : 0) + "%";
      const plan = el("div", { class: "bar plan", title: "predicted " + mib(row.p) }, el("span"));
      plan.firstChild.style.width = w(row.p);
      const meas = el("div", { class: "bar meas", title: row.m === null ? "not measured yet" : "measured " + mib(row.m) }, el("span"));
      meas.firstChild.style.width = row.m === null ? "0%" : w(row.m);
      block.append(el("div", { class: "bar-row", "data-role": row.name },
        el("span", {}, row.name, row.loaded ? "" : " (not loaded)"),
        el("div", {}, plan, meas),
        el("span", { class: "muted" }, mib(row.p) + " / " + (row.m === null ? "—" : mib(row.m)))));
    }
    out.push(block);
  }
  $("memory").replaceChildren(...(out.length ? out : [el("span", { class: "muted" }, "no role has a memory estimate")]));
}

// ---- the backend log, streamed ----

function appendLog(text) {
  const pre = $("log");
  const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  let s = pre.textContent + text;
  if (s.length > LOG_MAX_CHARS) s = s.slice(s.length - LOG_MAX_CHARS);
  pre.textContent = s;
  if (atEnd) pre.scrollTop = pre.scrollHeight;
}

async function followLog(role) {
  if (logCtl) logCtl.abort();
  const ctl = new AbortController();
  logCtl = ctl;
  logRole = role;
  $("log").textContent = "";
  const state = $("log-state");
  state.textContent = "connecting…";
  try {
    const r = await fetch("/roles/" + encodeURIComponent(role) + "/logs?follow=1&tail=200",
      { headers: authHeaders(), signal: ctl.signal, cache: "no-store" });
    if (!r.ok) {
      state.textContent = "HTTP " + r.status;
      if (r.status === 401) return; // poll() asks for the key, then restarts this
    } else {
      state.textContent = "following " + role;
      state.dataset.following = role;
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        appendLog(dec.decode(value, { stream: true }));
      }
      state.textContent = "stream ended";
    }
  } catch (e) {
    if (ctl.signal.aborted) return;
    state.textContent = "stream lost: " + (e.message || e);
  }
  delete state.dataset.following;
  if (!ctl.signal.aborted) setTimeout(() => { if (logCtl === ctl) followLog(role); }, 2000);
}

function renderLogChoice(names) {
  const sel = $("log-role");
  const have = [...sel.options].map((o) => o.value).join("\n");
  if (have !== names.join("\n")) {
    sel.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
    if (names.includes(logRole)) sel.value = logRole;
  }
  if (!logRole && names.length) followLog(names[0]);
}

$("log-role").addEventListener("change", (ev) => followLog(ev.target.value));

// ---- tuning plots (SVG from the gateway) ----

async function tunePlot(role, plot) {
  const r = await api("/roles/" + encodeURIComponent(role) + "/tune?plot=" + plot);
  if (!r.ok) {
    let msg = "HTTP " + r.status;
    try { msg = (await r.json()).error.message; } catch (e) { /* not JSON */ }
    return { error: msg, status: r.status };
  }
  const url = URL.createObjectURL(await r.blob());
  blobUrls.push(url);
  return { url };
}

async function renderTune(names) {
  const now = performance.now();
  const key = names.join("\n");
  if (key === tuneFor && now - tuneAt < TUNE_MS) return;
  tuneFor = key;
  tuneAt = now;
  const old = blobUrls.splice(0);
  const blocks = [];
  for (const name of names) {
    const trials = await tunePlot(name, "trials");
    const block = el("div", { class: "tune-role", "data-role": name }, el("h3", {}, name));
    if (trials.error) {
      block.append(el("div", { class: "muted" }, trials.status === 404 ? "not tuned yet: " + trials.error : trials.error));
    } else {
      const frontier = await tunePlot(name, "frontier");
      block.append(el("img", { src: trials.url, alt: name + ": t/s per trial", className: "plot-trials" }));
      if (frontier.url) block.append(el("img", { src: frontier.url, alt: name + ": context frontier", className: "plot-frontier" }));
    }
    blocks.push(block);
  }
  $("tune").replaceChildren(...blocks);
  for (const u of old) URL.revokeObjectURL(u);
}

// ---- the loop ----

async function poll() {
  if (waitingForKey) return;
  try {
    const r = await api("/status");
    if (r.status === 401) {
      setConn(false, "API key needed");
      askKey(apiKey ? "The gateway refused that key; enter its api_key." :
        "This gateway has an api_key. Enter it once; it is kept for this browser tab only.");
      return;
    }
    if (!r.ok) throw new Error("/status answered HTTP " + r.status);
    const st = await r.json();
    const m = await api("/metrics");
    const now = parseMetrics(m.ok ? await m.text() : "");
    $("gateway").textContent = "pid " + st.pid + " · port " + st.port + " · up " + Math.round(st.uptime_s) +
      " s · " + st.config;
    roleNames = renderRoles(st, now);
    prev = now;
    renderMemory(st);
    renderLogChoice(roleNames);
    setConn(true);
    renderTune(roleNames).catch(() => { tuneFor = ""; });
  } catch (e) {
    setConn(false, "offline: " + (e.message || e));
  } finally {
    if (!waitingForKey) {
      clearTimeout(poll.timer);
      poll.timer = setTimeout(poll, POLL_MS);
    }
  }
}

poll();

// Switchyard's operator console: plain JavaScript, no build step, no network beyond this
// router's admin listener. Every second it reads the admin API (reads need no token) and
// redraws; actions ask for confirmation, send the admin token as a bearer header (never in a
// URL or cookie) and show the API's answer. The token lives in sessionStorage: this tab only.
"use strict";

const KEY = "switchyard.admin_token";
const HISTORY = 120; // samples kept per backend for its sparkline (two minutes)
const sparks = new Map(); // backend id -> [rps, ...]

const $ = (id) => document.getElementById(id);
const token = () => sessionStorage.getItem(KEY);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return node;
}

function say(text, ok) {
  const box = $("message");
  box.hidden = false;
  box.textContent = text;
  box.className = "message " + (ok ? "ok" : "bad");
}

async function read(path) {
  const resp = await fetch(path, { cache: "no-store", signal: AbortSignal.timeout(3000) });
  if (!resp.ok) throw new Error(`${path}: ${resp.status}`);
  return resp.json();
}

// An action: confirm, send with the token, show the answer.
async function act(what, method, path, body) {
  if (!token()) return say("Enter the admin token to act.", false);
  if (!window.confirm(`${what}?`)) return;
  const init = { method, headers: { Authorization: `Bearer ${token()}` } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp, text;
  try {
    resp = await fetch(path, init);
    text = await resp.text();
  } catch (err) {
    return say(`${what}: the router did not answer (${err})`, false);
  }
  let shown = text;
  try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* not JSON */ }
  if (resp.status === 401 || resp.status === 403) {
    sessionStorage.removeItem(KEY);
    drawAuth();
    refresh();
    return say(`${what}: refused (${resp.status}) — the admin token is not (or no longer) this node's; it is forgotten, nothing changed.\n${shown}`, false);
  }
  say(`${what}: ${resp.status}\n${shown}`, resp.ok);
  refresh();
}

function button(label, what, method, path, body) {
  return el("button", { class: "act", type: "button", disabled: !token(), onclick: () => act(what, method, path, body) }, label);
}

// Asks for a number: `null` when the operator cancels; refuses a blank or a non-number.
function askNumber(question, fallback) {
  const answer = window.prompt(question, fallback);
  if (answer === null) return null;
  const value = answer.trim() === "" ? NaN : Number(answer);
  if (!Number.isFinite(value) || value < 0) {
    say(`${JSON.stringify(answer)} is not a number: nothing sent`, false);
    return null;
  }
  return value;
}

// A button that asks for a number first (a drain's deadline, a weight).
function askButton(label, question, fallback, build) {
  return el("button", {
    class: "act", type: "button", disabled: !token(),
    onclick: () => {
      const value = askNumber(question, fallback);
      if (value === null) return;
      const [what, method, path, body] = build(value);
      act(what, method, path, body);
    },
  }, label);
}

// A drain asks two numbers: its deadline, then the spread its sessions are moved over.
function drainButton(backend) {
  return el("button", {
    class: "act", type: "button", disabled: !token(),
    onclick: () => {
      const deadline = askNumber(`Drain ${backend}: close whatever is still open after how many seconds?`, "60");
      if (deadline === null) return;
      if (deadline <= 0) return say("a drain's deadline is a number of seconds above 0: nothing sent", false);
      const spread = askNumber(`Move ${backend}'s sessions over how many seconds (at most ${deadline})?`, String(Math.min(10, deadline)));
      if (spread === null) return;
      if (spread > deadline) return say(`the spread is 0 to ${deadline} seconds: nothing sent`, false);
      act(`Drain ${backend} (deadline ${deadline} s, sessions moved over ${spread} s)`, "POST",
        `/admin/v1/backends/${encodeURIComponent(backend)}/drain`, { deadline_s: deadline, spread_s: spread });
    },
  }, "Drain");
}

function spark(values) {
  const w = 100, h = 20, max = Math.max(1, ...values);
  const step = values.length > 1 ? w / (values.length - 1) : w;
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(h - (v / max) * (h - 2) - 1).toFixed(1)}`).join(" ");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points);
  svg.append(line);
  return svg;
}

function num(x, digits) {
  return x === null || x === undefined ? "–" : Number(x).toFixed(digits);
}

function drawNode(status) {
  $("node").textContent = `region ${status.region} · v${status.version} · up ${status.uptime_s} s · ` +
    `${status.backends} backends · ${status.sessions} sessions · ${status.inflight} in flight · ` +
    `sessions in ${status.session_store}` + (status.cluster === null ? "" : status.cluster ? " (cluster up)" : " (cluster down)");
}

function drawRegions(regions) {
  const body = $("regions").tBodies[0];
  body.replaceChildren(...regions.map((r) => el("tr", {},
    el("td", {}, r.name + (r.local ? " (this node)" : "")),
    el("td", {}, el("span", { class: "state " + (r.healthy === false ? "down" : "up") }, r.healthy === false ? "unhealthy" : "healthy")),
    el("td", { class: "num" }, r.load === undefined ? "–" : num(r.load, 2)),
    el("td", {}, r.evacuating ? "evacuating" : "–"),
    el("td", {},
      r.evacuating
        ? button("Unevacuate", `Unevacuate region ${r.name}`, "POST", `/admin/v1/regions/${encodeURIComponent(r.name)}/unevacuate`)
        : askButton("Evacuate", `Evacuate region ${r.name}: spread the moves over how many seconds?`, "10",
          (s) => [`Evacuate region ${r.name} over ${s} s`, "POST", `/admin/v1/regions/${encodeURIComponent(r.name)}/evacuate`, { spread_s: s }])),
  )));
}

function drawPools(pools) {
  const root = $("pools");
  const progress = [];
  const present = new Set(pools.flatMap((p) => p.backends.map((b) => b.id)));
  for (const id of [...sparks.keys()]) if (!present.has(id)) sparks.delete(id);
  root.replaceChildren(...pools.map((p) => {
    const rows = p.backends.map((b) => {
      const seen = sparks.get(b.id) || [];
      seen.push(b.rps || 0);
      if (seen.length > HISTORY) seen.shift();
      sparks.set(b.id, seen);
      if (b.state === "draining") {
        const left = b.drain_left_s === null || b.drain_left_s === undefined ? "" : `, deadline in ${Math.ceil(b.drain_left_s)} s`;
        progress.push(`draining ${b.id} (${p.id}): ${b.sessions} session(s), ${b.inflight} request(s) left${left}`);
      }
      if (b.slow_start) progress.push(`slow start ${b.id} (${p.id}): at ${b.weight_percent} % of its weight`);
      const held = b.health && b.health.held_down;
      const weight = b.weight_percent < 100 ? `${b.configured_weight} (${b.weight_percent} %)` : String(b.configured_weight);
      const drained = b.state === "draining" || b.state === "drained";
      const id = encodeURIComponent(b.id);
      return el("tr", { "data-backend": b.id },
        el("td", {}, b.id),
        el("td", {},
          el("span", { class: "state " + b.state, "data-field": "state" }, b.state),
          held ? el("span", { class: "state down", title: "its checks pass again; flap damping holds it down a while" }, "held down") : "",
          b.slow_start ? el("span", { class: "state unknown" }, "slow start") : ""),
        el("td", { class: "num", "data-field": "weight" }, weight),
        el("td", { class: "num" }, b.inflight),
        el("td", { class: "num", "data-field": "sessions" }, b.sessions),
        el("td", { class: "num" }, num(b.rps, 1)),
        el("td", {}, spark(seen)),
        el("td", { class: "num" }, num(b.error_rate, 2)),
        el("td", { class: "num" }, num(b.p99_ms, 1)),
        el("td", {},
          drained
            ? button("Undrain", `Undrain ${b.id}`, "POST", `/admin/v1/backends/${id}/undrain`)
            : drainButton(b.id),
          " ",
          askButton("Weight", `New weight for ${b.id} (1-10000)`, String(b.configured_weight),
            (w) => [`Set ${b.id}'s weight to ${w}`, "PUT", `/admin/v1/backends/${id}/weight`, { weight: Math.round(w) }])),
      );
    });
    return el("div", { class: "pool", "data-pool": p.id },
      el("h3", {}, `${p.id} · ${p.algorithm}` + (p.panic ? " · PANIC MODE (routing across all backends)" : "")),
      el("table", {},
        el("thead", {}, el("tr", {}, ...["Backend", "State", "Weight", "In flight", "Sessions", "Req/s", "Last 2 min", "Errors %", "p99 ms", ""].map((h) => el("th", {}, h)))),
        el("tbody", {}, ...rows)));
  }));
  $("progress").replaceChildren(...(progress.length ? progress.map((t) => el("li", {}, t)) : [el("li", { class: "quiet" }, "nothing")]));
}

function drawRollouts(list) {
  const body = $("rollouts").tBodies[0];
  if (!list.rollouts.length) {
    body.replaceChildren(el("tr", {}, el("td", { class: "quiet", colspan: 7 }, "none" + (list.held ? ` — ${list.held}` : ""))));
    return;
  }
  body.replaceChildren(...list.rollouts.map((r) => {
    const id = encodeURIComponent(r.id);
    const active = r.phase === "running" || r.phase === "paused";
    return el("tr", {},
      el("td", {}, r.id),
      el("td", {}, r.route),
      el("td", {}, `${r.baseline} → ${r.canary}`),
      el("td", {}, r.phase + (r.held ? " (held: Redis)" : "")),
      el("td", { class: "num" }, `${num(r.percent, 1)} %`),
      el("td", {}, r.window ? r.window.reason : "–"),
      el("td", {},
        r.phase === "running" ? button("Pause", `Pause rollout ${r.id}`, "POST", `/admin/v1/rollouts/${id}/pause`) : "",
        r.phase === "paused" ? button("Resume", `Resume rollout ${r.id}`, "POST", `/admin/v1/rollouts/${id}/resume`) : "",
        active ? button("Promote", `Promote rollout ${r.id} (the canary takes everything)`, "POST", `/admin/v1/rollouts/${id}/promote`) : "",
        active ? button("Roll back", `Roll back rollout ${r.id}`, "POST", `/admin/v1/rollouts/${id}/rollback`) : ""));
  }));
}

function drawAuth() {
  const has = Boolean(token());
  const state = $("auth-state");
  state.textContent = has ? "token in use: actions enabled" : "read-only: enter the admin token to act";
  state.className = "auth-state" + (has ? " ok" : "");
  $("reload").disabled = !has;
  document.querySelectorAll("button.act").forEach((b) => { b.disabled = !has; });
}

let busy = false;
let pressing = false; // a redraw between a button's press and release would lose the click
document.addEventListener("pointerdown", () => { pressing = true; });
document.addEventListener("pointerup", () => { pressing = false; setTimeout(refresh, 0); });
document.addEventListener("pointercancel", () => { pressing = false; });

// Each view from its own call: one that fails (or times out) leaves the others live.
async function refresh() {
  if (busy || pressing) return;
  busy = true;
  try {
    const [status, regions, pools, rollouts] = await Promise.allSettled([
      read("/admin/v1/status"), read("/admin/v1/regions"), read("/admin/v1/pools"), read("/admin/v1/rollouts"),
    ]);
    const failed = [];
    const draw = (result, fn, what) => {
      if (result.status === "fulfilled") fn(result.value);
      else failed.push(`${what}: ${result.reason && result.reason.message ? result.reason.message : result.reason}`);
    };
    draw(status, drawNode, "status");
    draw(regions, (v) => drawRegions(v.regions || []), "regions");
    draw(pools, (v) => drawPools(v.pools || []), "pools");
    draw(rollouts, drawRollouts, "rollouts");
    if (failed.length) $("node").textContent = `cannot read the admin API (${failed.join("; ")})`;
    drawAuth();
  } finally {
    busy = false;
  }
}

// A token is checked before it is kept: a wrong one is refused here and changes nothing.
async function useToken(candidate) {
  let verdict = null;
  try {
    const resp = await fetch("/admin/v1/auth", { method: "POST", headers: { Authorization: `Bearer ${candidate}` } });
    verdict = resp.ok ? await resp.json() : { valid: false, message: `status ${resp.status}` };
  } catch (err) {
    verdict = { valid: false, message: String(err) };
  }
  if (verdict.valid === true) {
    sessionStorage.setItem(KEY, candidate);
    say("Token accepted: actions are enabled in this tab.", true);
  } else {
    sessionStorage.removeItem(KEY);
    say(`Wrong admin token: nothing changed, actions stay disabled (${verdict.message}).`, false);
  }
  drawAuth();
  refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  // `switchyard demo` links here with `#token=…`: a fragment never reaches the server. Taken,
  // checked, then removed from the address bar.
  const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromLink) {
    history.replaceState(null, "", location.pathname);
    useToken(fromLink);
  }
  $("auth").addEventListener("submit", (e) => {
    e.preventDefault();
    const candidate = $("token").value.trim();
    $("token").value = "";
    if (candidate) useToken(candidate);
  });
  $("forget-token").addEventListener("click", () => { sessionStorage.removeItem(KEY); say("Token forgotten: read-only.", true); drawAuth(); refresh(); });
  $("reload").addEventListener("click", () => act("Reload the config file", "POST", "/admin/v1/reload"));
  refresh();
  setInterval(refresh, 1000);
});

"use strict";
// The ops console over the API (docs/console.md). The session cookie is HttpOnly; changes
// carry the session's CSRF token, which the page keeps in memory only (GET /auth/me gives it
// again after a reload). Alert changes arrive as server-sent events from /console/events.

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) =>
  ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const LANG_KEY = "stocksense.console.lang";
const SEVERITIES = ["critical", "major", "minor", "warning", "info"];
const DAY_MS = 86400000;

let lang = chooseLanguage();
let me = null;
let csrf = "";
let tab = "summary";
let alerts = [];
let openAlertId = null;
let source = null;

// -- language -----------------------------------------------------------------------------

function chooseLanguage() {
  const saved = localStorage.getItem(LANG_KEY);
  if (saved in MESSAGES) return saved;
  for (const tag of navigator.languages || [navigator.language || ""]) {
    const primary = String(tag).toLowerCase().split("-")[0];
    if (primary in MESSAGES) return primary;
  }
  // The server's reading of Accept-Language, for a browser that names neither.
  return document.documentElement.dataset.lang in MESSAGES ? document.documentElement.dataset.lang : "en";
}

function t(key, vars = {}) {
  const text = MESSAGES[lang][key] ?? MESSAGES.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

function translatePage() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.title = t("title");
  $$("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  $("#lang").textContent = t("lang.switch");
  $("#lang").lang = lang === "zh" ? "en" : "zh-CN";
}

function setLanguage(next) {
  lang = next;
  localStorage.setItem(LANG_KEY, next);
  translatePage();
  if (me) { showMe(); refresh(); if (openAlertId !== null) openAlert(openAlertId); }
}

const locale = () => (lang === "zh" ? "zh-CN" : "en-GB");
const when = (ms) => (ms ? new Date(ms).toLocaleString(locale(),
  {year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit"}) : "");
const day = (ms) => (ms ? new Date(ms).toLocaleDateString(locale(),
  {year: "numeric", month: "2-digit", day: "2-digit"}) : "—");
const num = (x, digits = 2) => (x === null || x === undefined ? "—"
  : Number(x).toLocaleString(locale(), {maximumFractionDigits: digits}));
const sev = (s) => `<span class="sev ${esc(s)}">${esc(t("sev." + s))}</span>`;
// A card on a phone shows each cell as its label beside one block of content.
const cell = (label, html, cls = "") => `<td data-label="${esc(t(label))}" class="${cls}"><div>${html}</div></td>`;
const none = (cols, key) => `<tr class="empty"><td colspan="${cols}">${esc(t(key))}</td></tr>`;

// -- calls --------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

async function api(path, options = {}) {
  const headers = {"Content-Type": "application/json"};
  if (options.method && options.method !== "GET") headers["X-CSRF-Token"] = csrf;
  let response;
  try {
    response = await fetch(path, {headers, credentials: "same-origin", ...options});
  } catch (err) {
    throw new ApiError(0, err.message);
  }
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail ?? body);
    const error = new ApiError(response.status, detail);
    error.retryAfter = response.headers.get("Retry-After");
    if (response.status === 401 && path !== "/auth/login" && path !== "/auth/me") {
      signedOut(t("signed_out"));
    }
    throw error;
  }
  return response.status === 204 ? null : response.json();
}

function explain(err, {page = false} = {}) {
  if (err.status === 403) {
    const role = me ? t("role." + me.role) : "?";
    return `${t(page ? "forbidden.page" : "forbidden", {role})} (${err.detail})`;
  }
  if (err.status === 0) return t("error.network", {detail: err.detail});
  return t("error", {status: err.status, detail: err.detail ?? err.message});
}

function notify(text, kind = "ok") {
  const box = $("#notice");
  box.textContent = text;
  box.className = kind;
  box.hidden = !text;
}

async function act(fn) {
  try {
    notify("");
    const done = await fn();
    if (done) notify(done, "ok");
    await refresh();
    return true;
  } catch (err) {
    if (err.status !== 401) notify(explain(err), "error");
    return false;
  }
}

// -- sign-in ------------------------------------------------------------------------------

function showMe() {
  const sites = me.sites.length ? me.sites.join(", ") : t("sites.all");
  $("#me").textContent = `${me.name} · ${t("role." + me.role)} · ${sites}`;
}

function signedIn(who) {
  me = who;
  csrf = who.csrf_token || "";
  showMe();
  $("#whoami").hidden = false; $("#tabs").hidden = false; $("#live").hidden = false;
  $("#login").hidden = true; $("main").hidden = false;
  const target = location.hash.match(/^#alert-(\d+)$/);
  if (target) { $("#show-cleared").checked = true; show("alerts"); openAlert(Number(target[1])); }
  else show(tab);
  listen();
}

function signedOut(message = "") {
  me = null; csrf = "";
  if (source) { source.close(); source = null; }
  closeSheet();
  $("#whoami").hidden = true; $("#tabs").hidden = true; $("#live").hidden = true;
  $("#login").hidden = false; $("main").hidden = true;
  $("#login-error").textContent = message;
}

$("#login").onsubmit = async (event) => {
  event.preventDefault();
  $("#login-error").textContent = "";
  try {
    const who = await api("/auth/login", {method: "POST", body: JSON.stringify({
      username: $("#username").value.trim(), password: $("#password").value})});
    $("#password").value = "";
    signedIn(who);
  } catch (err) {
    $("#login-error").textContent = err.status === 401 ? t("login.wrong")
      : err.status === 429 ? t("login.throttled", {s: err.retryAfter ?? "?"}) : explain(err);
  }
};

$("#logout").onclick = async () => {
  await api("/auth/logout", {method: "POST"}).catch(() => null);
  signedOut();
};

$("#lang").onclick = () => setLanguage(lang === "zh" ? "en" : "zh");

// -- views --------------------------------------------------------------------------------

function show(name) {
  tab = name;
  $$("#tabs button").forEach((b) => b.classList.toggle("on", b.dataset.tab === name));
  $$("main section").forEach((s) => { s.hidden = s.id !== name; });
  notify("");
  refresh();
}

$$("#tabs button").forEach((b) => { b.onclick = () => show(b.dataset.tab); });
$$("[data-goto]").forEach((el) => { el.onclick = () => show(el.dataset.goto); });

async function refresh() {
  if (!me) return;
  try {
    await loaders[tab]();
  } catch (err) {
    if (err.status !== 401) notify(explain(err, {page: true}), "error");
  }
}

async function loadSummary() {
  const [active, stock, skus, lots, waiting] = await Promise.all([
    api("/alerts?state=active&limit=1000"),
    api("/inventory/stock"),
    api("/inventory/skus"),
    api("/inventory/lots"),
    api("/requisitions?state=submitted"),
  ]);
  $("#sum-alerts").textContent = active.length;
  $("#sum-severity").innerHTML = SEVERITIES.map((s) =>
    `<li>${sev(s)} <b data-severity="${s}">${active.filter((a) => a.severity === s).length}</b></li>`).join("");
  const rows = stockRows(stock, skus, {}, lots);
  $("#sum-stockouts").textContent = rows.filter((r) => r.status === "out").length;
  $("#sum-below-min").textContent = rows.filter((r) => r.status === "low").length;
  $("#sum-awaiting").textContent = waiting.length;
}

function alertRow(a) {
  const where = [a.site, a.zone].filter(Boolean).join(" / ");
  const acked = a.acked_by ? `<div class="muted">${esc(t("alert.acked_by", {who: a.acked_by}))}</div>` : "";
  const flags = [a.silenced_by ? t("alert.silenced") : "",
    a.ack_overdue_at || a.resolve_overdue_at ? t("alert.overdue") : ""].filter(Boolean);
  const actions = [
    `<button data-open="${a.id}">${esc(t("alert.details"))}</button>`,
    a.state === "active" && !a.acked_by ? `<button class="primary" data-ack="${a.id}">${esc(t("alert.ack"))}</button>` : "",
    a.state === "active" ? `<button data-silence="${a.id}">${esc(t("alert.silence"))}</button>` : "",
  ].join("");
  return `<tr id="alert-${a.id}" data-alert="${a.id}" class="${a.id === openAlertId ? "target" : ""}">
    ${cell("alert.severity", sev(a.severity))}
    ${cell("alert.title", `<b>#${a.id} ${esc(a.title || a.type)}</b><div class="msg">${esc(a.message)}</div>`)}
    ${cell("alert.where", esc(where))}
    ${cell("alert.raised", esc(when(a.raised_at)))}
    ${cell("alert.owner", esc(a.owner ?? t("alert.no_owner")))}
    ${cell("alert.state", esc(t("state." + a.state)) + (flags.length ? ` <span class="flag">${esc(flags.join(", "))}</span>` : "") + acked)}
    <td class="actions">${actions}</td></tr>`;
}

function renderAlerts() {
  $("#alerts tbody").innerHTML = alerts.map(alertRow).join("") || none(7, "alerts.none");
}

async function loadAlerts() {
  const query = $("#show-cleared").checked ? "limit=200" : "state=active&limit=200";
  const [found, silences] = await Promise.all([api(`/alerts?${query}`), api("/alerts/silences")]);
  alerts = found;
  renderAlerts();
  $("#silences-list tbody").innerHTML = silences.map((s) => `<tr data-silence-row="${s.id}">
    ${cell("#", `<b>#${s.id}</b>`)}
    ${cell("silences.match", esc([s.site, s.zone, s.type].map((x) => x ?? t("silences.any")).join(" / ")))}
    ${cell("silences.until", esc(when(s.ends_at)))}
    ${cell("silences.by", esc(s.created_by))}
    ${cell("silence.reason", esc(s.reason))}
    <td class="actions"><button data-unsilence="${s.id}">${esc(t("silences.end"))}</button></td>
  </tr>`).join("") || none(6, "silences.none");
}

$("#silences-list tbody").onclick = (event) => {
  const button = event.target.closest("button[data-unsilence]");
  if (!button) return;
  const id = Number(button.dataset.unsilence);
  act(async () => {
    await api(`/alerts/silences/${id}`, {method: "DELETE"});
    return t("silences.ended", {id});
  });
};

$("#alerts tbody").onclick = (event) => {
  const button = event.target.closest("button");
  if (!button) return;
  if (button.dataset.ack) ack(Number(button.dataset.ack));
  else if (button.dataset.open) openAlert(Number(button.dataset.open));
  else if (button.dataset.silence) openAlert(Number(button.dataset.silence), {silence: true});
};
$("#show-cleared").onchange = refresh;

function ack(id) {
  return act(async () => {
    await api(`/alerts/${id}/ack`, {method: "POST", body: "{}"});
    if (openAlertId === id) await openAlert(id);
    return t("alert.acked", {id});
  });
}

// Stock per site and SKU. A SKU a site has lots of (or KPI figures for) but no stock row is
// listed with nothing on hand: that is a stock-out too.
function stockRows(levels, skus, kpis, lots) {
  const catalog = new Map(skus.map((s) => [s.sku, s]));
  const groups = new Map();
  const known = [...lots.map((l) => ({site: l.site, sku: l.sku})),
    ...Object.keys(kpis).map((key) => ({site: key.split("|")[0], sku: key.split("|")[1]}))];
  for (const {site, sku} of known) {
    groups.set(`${site}|${sku}`, {site, sku, qty: 0, locations: []});
  }
  for (const level of levels) {
    const key = `${level.site}|${level.sku}`;
    const row = groups.get(key) ?? {site: level.site, sku: level.sku, qty: 0, locations: []};
    row.qty += level.qty;
    row.locations.push(`${level.location}: ${num(level.qty)}`);
    groups.set(key, row);
  }
  return [...groups.values()].map((row) => {
    const sku = catalog.get(row.sku) ?? {};
    const min = sku.min_qty ?? 0;
    const max = sku.max_qty ?? 0;
    const status = row.qty <= 0 ? "out" : min > 0 && row.qty < min ? "low"
      : max > 0 && row.qty > max ? "high" : "ok";
    return {...row, name: sku.name ?? "", min, max, status, dos: kpis[`${row.site}|${row.sku}`]};
  }).sort((a, b) => a.site.localeCompare(b.site) || a.sku.localeCompare(b.sku));
}

async function loadStock() {
  const [levels, skus, lots, snapshots] = await Promise.all([
    api("/inventory/stock"), api("/inventory/skus"), api("/inventory/lots"), api("/kpi"),
  ]);
  const kpis = {};
  for (const site of snapshots) {
    for (const s of site.skus) kpis[`${site.site}|${s.sku}`] = s.days_of_supply;
  }
  const rows = stockRows(levels, skus, kpis, lots);
  $("#stock tbody").innerHTML = rows.map((r) => `<tr class="status-${r.status}">
    ${cell("stock.site", esc(r.site))}
    ${cell("stock.sku", `<b>${esc(r.sku)}</b>${r.name ? `<div class="muted">${esc(r.name)}</div>` : ""}`)}
    ${cell("stock.qty", `<b>${num(r.qty)}</b>`, "num")}
    ${cell("stock.min", num(r.min), "num")}
    ${cell("stock.max", num(r.max), "num")}
    ${cell("stock.dos", r.dos === null || r.dos === undefined ? "—" : esc(t("days", {n: num(r.dos, 1)})), "num")}
    ${cell("stock.locations", esc(r.locations.join(" · ")))}
    ${cell("stock.status", `<span class="status ${r.status}">${esc(t("stock." + r.status))}</span>`)}
    <td class="actions"><button data-pick="${esc(r.site)}|${esc(r.sku)}">${esc(t("stock.pick"))}</button></td>
  </tr>`).join("") || none(9, "stock.none");
}

$("#stock tbody").onclick = (event) => {
  const button = event.target.closest("button[data-pick]");
  if (!button) return;
  const [site, sku] = button.dataset.pick.split("|");
  show("picks");
  $("#pick-site").value = site; $("#pick-sku").value = sku; $("#pick-qty").focus();
};

function lotStatus(lot, now) {
  const removal = lot.removal_at ?? lot.expiration_at;
  if (lot.expiration_at && lot.expiration_at <= now) return "expired";
  if (removal && removal <= now) return "remove";
  if (removal && removal - now <= 7 * DAY_MS) return "due";
  return "ok";
}

async function loadLots() {
  const lots = await api("/inventory/lots?in_stock=true");
  const now = Date.now();
  $("#lots tbody").innerHTML = lots.map((l) => {
    const status = lotStatus(l, now);
    return `<tr class="lot-${status}">
      ${cell("lot.lot", `<b>${esc(l.lot)}</b>`)}
      ${cell("stock.sku", esc(l.sku))}
      ${cell("lot.where", esc(`${l.site} / ${l.location}`))}
      ${cell("stock.qty", num(l.qty), "num")}
      ${cell("lot.received", esc(day(l.received_at)))}
      ${cell("lot.best_before", esc(day(l.best_before_at)))}
      ${cell("lot.expiration", esc(day(l.expiration_at)))}
      ${cell("lot.removal", esc(day(l.removal_at)))}
      ${cell("stock.status", `<span class="status ${status}">${esc(t("lot." + status))}</span>`)}
    </tr>`;
  }).join("") || none(9, "lots.none");
}

async function loadRequisitions() {
  const query = $("#show-all-reqs").checked ? "" : "state=submitted";
  const [reqs, suggestions] = await Promise.all([api(`/requisitions?${query}`), api("/inventory/suggestions")]);
  reqs.reverse();
  $("#requisitions tbody").innerHTML = reqs.map((r) => {
    const approved = r.approvals.filter((a) => a.decision === "approved").map((a) => a.approver);
    const pending = r.state === "submitted";
    return `<tr data-requisition="${r.id}">
      ${cell("#", `<b>#${r.id}</b>`)}
      ${cell("stock.site", esc(r.site))}
      ${cell("stock.sku", esc(r.sku))}
      ${cell("pick.qty", num(r.qty), "num")}
      ${cell("req.amount", `${num(r.amount)} ${esc(r.currency)}`, "num")}
      ${cell("req.requested_by", esc(r.requested_by))}
      ${cell("req.approvals", `${approved.length} / ${r.approvals_required}${approved.length ? ` <span class="muted">(${esc(approved.join(", "))})</span>` : ""}`)}
      ${cell("alert.state", esc(t("req.state." + r.state)))}
      <td class="actions">${pending ? `<button class="primary" data-approve="${r.id}">${esc(t("req.approve"))}</button>
        <button data-reject="${r.id}">${esc(t("req.reject"))}</button>` : ""}</td>
    </tr>`;
  }).join("") || none(9, "req.none");
  const next = {suggested: ["ordered", "cancelled"], ordered: ["received", "cancelled"]};
  $("#suggestions-list tbody").innerHTML = suggestions.map((s) => `<tr data-suggestion="${s.id}">
    ${cell("#", `<b>#${s.id}</b>`)}
    ${cell("stock.site", esc(s.site))}
    ${cell("stock.sku", esc(s.sku))}
    ${cell("pick.qty", num(s.qty), "num")}
    ${cell("sugg.why", esc(s.reason))}
    ${cell("alert.state", esc(t("sugg." + s.state)))}
    <td class="actions">${(next[s.state] || []).map((step) =>
      `<button data-step="${step}" data-id="${s.id}">${esc(t("sugg.step." + step))}</button>`).join("")}</td>
  </tr>`).join("") || none(7, "sugg.none");
}

$("#suggestions-list tbody").onclick = (event) => {
  const button = event.target.closest("button[data-step]");
  if (!button) return;
  const id = Number(button.dataset.id);
  act(async () => {
    const done = await api(`/inventory/suggestions/${id}/${button.dataset.step}`, {method: "POST", body: "{}"});
    return t("sugg.done", {id, state: t("sugg." + done.state)});
  });
};

$("#requisitions tbody").onclick = (event) => {
  const button = event.target.closest("button");
  if (!button) return;
  if (button.dataset.approve) {
    const id = Number(button.dataset.approve);
    act(async () => {
      const done = await api(`/requisitions/${id}/approve`, {method: "POST", body: "{}"});
      return t("req.done", {id, state: t("req.state." + done.state)});
    });
  } else if (button.dataset.reject) {
    const id = Number(button.dataset.reject);
    const comment = prompt(t("req.reject_reason"));
    if (!comment) return;
    act(async () => {
      const done = await api(`/requisitions/${id}/reject`, {method: "POST", body: JSON.stringify({comment})});
      return t("req.done", {id, state: t("req.state." + done.state)});
    });
  }
};
$("#show-all-reqs").onchange = refresh;

async function loadPicks() {
  const picks = await api("/inventory/picks?limit=50");
  picks.reverse();
  $("#picks tbody").innerHTML = picks.map((p) => `<tr>
    ${cell("pick.time", esc(when(p.ts)))}
    ${cell("stock.site", esc(p.site))}
    ${cell("stock.sku", esc(p.sku))}
    ${cell("pick.qty", num(p.qty), "num")}
    ${cell("pick.by", esc(p.recorded_by))}
    ${cell("stock.status", esc(p.status))}
  </tr>`).join("") || none(6, "pick.none");
}

$("#pick-form").onsubmit = (event) => {
  event.preventDefault();
  const pick = {
    site: $("#pick-site").value.trim(), sku: $("#pick-sku").value.trim(),
    qty: Number($("#pick-qty").value), ts: Date.now(),
    // The pick's idempotency key: a double tap records it once.
    ref: `console-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`,
  };
  const location = $("#pick-location").value.trim();
  if (location) pick.location = location;
  act(async () => {
    await api("/inventory/picks", {method: "POST", body: JSON.stringify(pick)});
    $("#pick-qty").value = "";
    return t("pick.done", {qty: num(pick.qty), sku: pick.sku, site: pick.site});
  });
};

const loaders = {summary: loadSummary, alerts: loadAlerts, stock: loadStock, lots: loadLots,
  requisitions: loadRequisitions, picks: loadPicks};

// -- one alert: detail, timeline, silence -------------------------------------------------

function fact(label, value) {
  return value === null || value === undefined || value === "" ? ""
    : `<dt>${esc(t(label))}</dt><dd>${esc(value)}</dd>`;
}

function alertInfo(a) {
  return `<h2>${sev(a.severity)} #${a.id} ${esc(a.title || a.type)}</h2>
    <p class="msg">${esc(a.message)}</p>
    <dl>
      ${fact("alert.state", t("state." + a.state))}
      ${fact("alert.where", [a.site, a.zone].filter(Boolean).join(" / "))}
      ${fact("alert.type", a.type)}
      ${fact("alert.source", a.source)}
      ${fact("alert.owner", a.owner ?? t("alert.no_owner"))}
      ${fact("alert.raised", when(a.raised_at))}
      ${fact("alert.value", a.value === null ? null : num(a.value))}
      ${fact("alert.peak", a.peak_value === null || a.peak_value === undefined ? null : num(a.peak_value))}
      ${fact("alert.threshold", a.threshold === null ? null : num(a.threshold))}
      ${fact("alert.ack_due", a.acked_at ? null : when(a.ack_due_at))}
      ${fact("alert.acked_by", a.acked_by ? t("alert.acked_by", {who: a.acked_by}) + " · " + when(a.acked_at) : null)}
      ${fact("alert.resolve_due", a.state === "active" ? when(a.resolve_due_at) : null)}
      ${fact("alert.cleared", when(a.cleared_at))}
      ${fact("alert.resolved_by", a.resolved_by)}
      ${fact("alert.cause", a.cause)}
      ${fact("alert.note", a.resolution_note)}
    </dl>
    <div class="actions">${a.state === "active" && !a.acked_by
      ? `<button class="primary" id="sheet-ack">${esc(t("alert.ack"))}</button>` : ""}</div>`;
}

function eventLine(e) {
  const template = MESSAGES.en["event." + e.event];
  const label = template ? t("event." + e.event, {note: e.note ?? ""}) : e.event;
  const note = e.note && !(template ?? "").includes("{note}") ? `<div class="muted">${esc(e.note)}</div>` : "";
  return `<li><time>${esc(when(e.at))}</time> <b>${esc(label)}</b>${e.actor ? ` · ${esc(e.actor)}` : ""}${note}</li>`;
}

function timeline(events) {
  return `<h3>${esc(t("alert.timeline"))}</h3>` + (events.length
    ? `<ol class="timeline">${events.map(eventLine).join("")}</ol>`
    : `<p class="muted">${esc(t("alert.no_events"))}</p>`);
}

function silenceForm(a) {
  const where = `${a.site}/${a.zone ?? "*"}`;
  return `<form id="silence-form" class="panel">
    <h3>${esc(t("silence.title", {type: a.type, where}))}</h3>
    <label><span>${esc(t("silence.duration"))}</span><select id="silence-duration">
      <option value="3600">${esc(t("silence.h1"))}</option>
      <option value="14400">${esc(t("silence.h4"))}</option>
      <option value="86400">${esc(t("silence.h24"))}</option></select></label>
    <label><span>${esc(t("silence.reason"))}</span><input id="silence-reason" required maxlength="500"></label>
    <button type="submit">${esc(t("silence.submit"))}</button>
  </form>`;
}

async function openAlert(id, {silence = false} = {}) {
  openAlertId = id;
  $$("#alerts tr.target").forEach((tr) => tr.classList.remove("target"));
  $(`#alert-${id}`)?.classList.add("target");
  let a, events;
  try {
    [a, events] = await Promise.all([api(`/alerts/${id}`), api(`/alerts/${id}/events`)]);
  } catch (err) {
    if (err.status !== 401) notify(explain(err, {page: true}), "error");
    return;
  }
  if (openAlertId !== id) return;
  const content = $("#sheet-content");
  const reason = $("#silence-reason")?.value ?? "";
  content.innerHTML = `<div id="alert-info">${alertInfo(a)}</div>
    <div id="alert-timeline">${timeline(events)}</div>
    ${a.state === "active" ? silenceForm(a) : ""}`;
  if (reason && $("#silence-reason")) $("#silence-reason").value = reason;
  $("#sheet").hidden = false;
  $("#sheet-ack")?.addEventListener("click", () => ack(id));
  const form = $("#silence-form");
  if (form) {
    form.onsubmit = (event) => {
      event.preventDefault();
      act(async () => {
        const made = await api("/alerts/silences", {method: "POST", body: JSON.stringify({
          site: a.site, zone: a.zone, type: a.type,
          duration_s: Number($("#silence-duration").value), reason: $("#silence-reason").value})});
        closeSheet();
        return t("silence.done", {time: when(made.ends_at)});
      });
    };
    if (silence) $("#silence-reason").focus();
  }
}

async function refreshOpenAlert(a) {
  // Only the facts and the timeline: a half-typed silence reason stays as it is.
  const events = await api(`/alerts/${a.id}/events`).catch(() => null);
  if (openAlertId !== a.id || $("#sheet").hidden) return;
  $("#alert-info").innerHTML = alertInfo(a);
  $("#sheet-ack")?.addEventListener("click", () => ack(a.id));
  if (events) $("#alert-timeline").innerHTML = timeline(events);
}

function closeSheet() {
  openAlertId = null;
  $("#sheet").hidden = true;
  $("#sheet-content").innerHTML = "";
  $$("#alerts tr.target").forEach((tr) => tr.classList.remove("target"));
  if (location.hash.startsWith("#alert-")) history.replaceState(null, "", location.pathname);
}

$("#sheet-close").onclick = closeSheet;
$("#sheet").onclick = (event) => { if (event.target.id === "sheet") closeSheet(); };
document.addEventListener("keydown", (event) => { if (event.key === "Escape") closeSheet(); });

// -- live updates -------------------------------------------------------------------------

let offlineTimer = null;
function setLive(on) {
  clearTimeout(offlineTimer);
  const mark = () => {
    $("#live").className = on ? "live on" : "live off";
    $("#live").textContent = t(on ? "live.on" : "live.off");
  };
  // Each stream ends after a while and the browser reconnects at once: no flicker for that.
  if (on) mark(); else offlineTimer = setTimeout(mark, 3000);
}

let summaryTimer = null;
function alertChanged(a) {
  if (tab === "alerts") {
    const index = alerts.findIndex((x) => x.id === a.id);
    const wanted = $("#show-cleared").checked || a.state === "active";
    if (index >= 0 && wanted) alerts[index] = a;
    else if (index >= 0) alerts.splice(index, 1);
    else if (wanted) alerts.unshift(a);
    renderAlerts();
  } else if (tab === "summary") {
    clearTimeout(summaryTimer);
    summaryTimer = setTimeout(refresh, 300);
  }
  if (openAlertId === a.id) refreshOpenAlert(a);
}

function listen() {
  if (source) source.close();
  let first = true;
  source = new EventSource("/console/events");
  source.addEventListener("ready", () => {
    setLive(true);
    // A reconnect may have missed changes in between: read the view again.
    if (!first) refresh();
    first = false;
  });
  source.addEventListener("alert", (event) => alertChanged(JSON.parse(event.data)));
  source.onerror = () => {
    setLive(false);
    if (source && source.readyState === EventSource.CLOSED) {
      // Refused (signed out, or the server is away): find out which, then try again.
      api("/auth/me").then(() => setTimeout(() => me && listen(), 5000),
        (err) => { if (err.status === 401) signedOut(t("signed_out")); else setTimeout(() => me && listen(), 5000); });
    }
  };
}

translatePage();
api("/auth/me").then(signedIn, () => signedOut());

// NetSpectra live console: plain JavaScript on the API's own HTTP/JSON routes (docs/api.md).
// The token lives in sessionStorage and travels only in the Authorization header (never in a
// URL), so the Server-Sent Events streams are read with fetch() rather than EventSource, which
// cannot send headers.
"use strict";

const TOKEN_KEY = "netspectra-token";
const S = { token: sessionStorage.getItem(TOKEN_KEY) || "", source: "", last: "1h", paused: false,
            live: false, win: null, streams: [], charts: {}, alerts: new Map(), poll: null, seq: 0 };
const $ = (id) => document.getElementById(id);

class AuthError extends Error {}

function auth() { return S.token ? { Authorization: "Bearer " + S.token } : {}; }

async function api(path, body) {
  const opts = { headers: auth() };
  if (body !== undefined) {
    opts.method = "POST";
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  if (r.status === 401 || r.status === 403) { showLogin("The API refused the token."); throw new AuthError(); }
  if (!r.ok) {
    const e = await r.json().catch(() => ({}));
    const err = new Error(e.error || r.statusText);
    err.status = r.status;
    throw err;
  }
  return r.json();
}

// ---- numbers with units ----------------------------------------------------------------------
function si(v, unit, digits = 3) {
  if (v === null || v === undefined || isNaN(v)) return "–";
  const units = ["", "k", "M", "G", "T", "P"];
  let i = 0;
  while (Math.abs(v) >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  const text = i === 0 && Number.isInteger(v) ? String(v) : v.toPrecision(digits);
  return `${text} ${units[i]}${unit}`.trim();
}
const bytes = (v) => si(v, "B");
const count = (v) => Number(v).toLocaleString("en-US");
const when = (ms) => new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
function span(text) {
  const m = /^(\d+)([smhdw])$/.exec(text);
  return m ? Number(m[1]) * { s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7, w: 6.048e8 }[m[2]] : 3.6e6;
}
function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
function addrLink(a) { return `<a class="addr" href="#/host/${encodeURIComponent(a)}">${esc(a)}</a>`; }

// ---- sign in -------------------------------------------------------------------------------
function showLogin(message) {
  stopStreams();
  for (const el of document.querySelectorAll(".page")) el.hidden = true;
  $("controls").hidden = true;
  $("banner").hidden = true;
  $("login").hidden = false;
  $("login-error").hidden = !message;
  $("login-error").textContent = message || "";
}

async function boot() {
  const r = await fetch("/v1/health", { headers: auth() });
  if (r.status === 401 || r.status === 403) { showLogin(S.token ? "That token is not accepted." : ""); return; }
  $("login").hidden = true;
  $("controls").hidden = false;
  await loadSources();
  route();
  startStreams();
}

$("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  S.token = $("token").value.trim();
  sessionStorage.setItem(TOKEN_KEY, S.token);
  $("token").value = "";
  boot().catch(report);
});
$("logout").addEventListener("click", () => {
  S.token = "";
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin("");
});

// ---- sources, range, pause -------------------------------------------------------------------
async function loadSources() {
  const s = await api("/v1/sources");
  S.live = s.redis;
  const all = [...s.live, ...s.stored.filter((x) => !s.live.includes(x))];
  $("source").innerHTML = all.map((x) => `<option value="${esc(x)}">${esc(x)}</option>`).join("");
  if (!all.includes(S.source)) S.source = all[0] || "";
  $("source").value = S.source;
  banner(S.live ? "" : "Live data is off: this API has no Redis. Showing history from ClickHouse.");
  if (!all.length) banner("No data yet: start an engine (or ingest a capture) and this page fills in.");
}
$("source").addEventListener("change", () => {
  S.source = $("source").value;
  S.win = null;
  S.alerts.clear();
  route();
  startStreams();            // the alert stream follows one source
});
$("range").addEventListener("change", () => { S.last = $("range").value; route(); });
$("pause").addEventListener("click", () => {
  S.paused = !S.paused;
  $("pause").setAttribute("aria-pressed", String(S.paused));
  $("pause").textContent = S.paused ? "Resume" : "Pause";
  if (!S.paused) route();
});

function banner(text, cls = "") {
  $("banner").hidden = !text;
  $("banner").textContent = text;
  $("banner").className = "banner " + cls;
}

// ---- pages ---------------------------------------------------------------------------------
function route() {
  const [, page, arg] = (location.hash || "#/now").split("/");
  for (const el of document.querySelectorAll(".page")) el.hidden = el.id !== "page-" + page;
  if (!$("page-" + page)) { location.hash = "#/now"; return; }
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === page);
  const load = { now: loadNow, host: () => loadHost(decodeURIComponent(arg || "")), alerts: loadAlerts }[page];
  load().catch(report);
}
window.addEventListener("hashchange", route);

function report(e) {
  if (e instanceof AuthError) return;
  console.error(e);
  banner(`The API answered: ${e.message}`);
}

const q = (o) => new URLSearchParams(o).toString();

async function newestWindow() {
  S.win = await api(`/v1/live/window?${q({ source: S.source })}`);
  return S.win;
}

// Each load draws only if no newer one started meanwhile (another source, range or page):
// answers to older questions can arrive last.
function fresh() {
  const seq = ++S.seq;
  return () => seq === S.seq;
}

async function loadNow() {
  if (!S.source) return;
  const current = fresh();
  let w, series;
  try {
    [w, series] = await Promise.all([api(`/v1/live/window?${q({ source: S.source })}`),
                                     api(`/v1/live/series?${q({ source: S.source, last: S.last })}`)]);
  } catch (e) {
    if (e.status === 404 && current()) { $("window-line").textContent = "No window yet for this source."; return; }
    throw e;
  }
  if (!current()) return;
  S.win = w;
  const sec = w.seconds || 1;
  $("tile-bps").textContent = si(w.bytes * 8 / sec, "bit/s");
  $("tile-pps").textContent = si(w.packets / sec, "p/s");
  $("tile-fps").textContent = si(w.flows / sec, "/s");
  $("tile-hosts").textContent = w.live ? count(w.hosts) : "–";
  $("tile-late").textContent = count(w.late_packets);
  const line = $("window-line");
  Object.assign(line.dataset, { source: w.source, start: w.window_start_ms, packets: w.packets, bytes: w.bytes,
                                flows: w.flows });
  line.textContent = `Newest window ${when(w.window_start_ms)} (${sec} s${w.complete ? "" : ", incomplete"}): ` +
    `${count(w.packets)} packets, ${bytes(w.bytes)} (${count(w.bytes)} bytes), ${count(w.flows)} flows` +
    (w.live ? "" : " — from the store, not live");
  rankTable("talkers", w.talkers.map((r) => [addrLink(r.key), r.value, r.key]), bytes);
  rankTable("flows", w.flows_top.map((r) => [flowText(r.key), r.value, r.key]), bytes);
  rankTable("protocols", w.protocols.map((p) => [esc(p.name), p.bytes, p.name, `${count(p.packets)} p`]), bytes);
  rankTable("ports", w.ports.map((p) => [esc(p.port), p.bytes, p.port, `${count(p.packets)} p`]), bytes);
  rankTable("spreaders", w.spreaders.map((r) => [addrLink(r.key), r.value, r.key]), (v) => count(Math.round(v)));
  rankTable("fan-in", w.fan_in.map((r) => [addrLink(r.key), r.value, r.key]), (v) => count(Math.round(v)));
  const bad = Object.entries(w.status).filter(([k]) => !["frames", "ok", "ip_packets"].includes(k));
  rankTable("status", bad.map(([k, v]) => [esc(k), v, k]), count);
  const t = series.windows.map((p) => p.start_ms / 1000);
  const rate = (f) => series.windows.map((p) => f(p) / (p.seconds || 1));
  chart("chart-bps", [t, rate((p) => p.bytes * 8)], [{ label: "bits/s", stroke: "#1f6feb", fill: "#1f6feb22" }], "bit/s");
  chart("chart-pps", [t, rate((p) => p.packets), rate((p) => p.flows)],
        [{ label: "packets/s", stroke: "#2e7d32" }, { label: "flows/s", stroke: "#b26a00" }], "/s");
}

function flowText(key) {
  const [src, sport, dst, dport, proto] = key.split(" ");
  return `${addrLink(src)}:${esc(sport)} → ${addrLink(dst)}:${esc(dport)} <small>${esc(proto)}</small>`;
}

// rows: [html, value, key, extra?]; the bar shows the value against the largest
function rankTable(id, rows, fmt) {
  const el = $(id);
  if (!rows.length) { el.innerHTML = `<tr><td class="empty">none</td></tr>`; return; }
  const top = Math.max(...rows.map((r) => r[1])) || 1;
  el.innerHTML = rows.map(([html, v, key, extra]) =>
    `<tr data-key="${esc(key)}" data-value="${v}"><td class="key">${html}` +
    `<span class="bar" style="width:${(100 * v / top).toFixed(1)}%"></span></td>` +
    (extra ? `<td class="num">${extra}</td>` : "") + `<td class="num">${fmt(v)}</td></tr>`).join("");
}

function chart(id, data, series, unit) {
  const el = $(id);
  const width = Math.max(el.clientWidth, 280);
  let c = S.charts[id];
  if (!c || c.series.length !== series.length + 1) {
    if (c) c.destroy();
    el.innerHTML = "";
    const axis = { stroke: getComputedStyle(document.body).color, grid: { stroke: "#8884" } };
    c = S.charts[id] = new uPlot({
      width, height: 220, series: [{}, ...series.map((s) => ({ ...s, value: (u, v) => si(v, unit) }))],
      axes: [{ ...axis }, { ...axis, size: 70, values: (u, vals) => vals.map((v) => si(v, unit)) }],
      scales: { x: { time: true } }, tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
    }, data, el);
  } else {
    c.setData(data);
  }
}
window.addEventListener("resize", () => {
  for (const [id, c] of Object.entries(S.charts)) c.setSize({ width: Math.max($(id).clientWidth, 280), height: 220 });
});

async function hostRange() {
  const w = S.win || await newestWindow();
  const end = w.window_start_ms + Math.max(1, Math.round(w.seconds)) * 1000;
  return { start_ms: Math.max(0, end - span(S.last)), end_ms: end, seconds: Math.max(1, Math.round(w.seconds)) };
}

async function loadHost(addr) {
  const current = fresh();
  $("host-title").textContent = addr;
  const r = await hostRange();
  const range = { start_ms: r.start_ms, end_ms: r.end_ms };
  const agg = (filter, extra) => api("/v1/flows/aggregate", { range, filter: { source: S.source, ...filter }, ...extra });
  const [sent, recv, peers, ports, out, inb, alerts, names, tls] = await Promise.all([
    agg({ src: [addr] }, { bucket_seconds: r.seconds }),
    agg({ dst: [addr] }, { bucket_seconds: r.seconds }),
    agg({ src: [addr] }, { group_by: ["dst"], limit: 10 }),
    agg({ src: [addr] }, { group_by: ["proto", "dport"], limit: 10 }),
    agg({ src: [addr] }, { group_by: ["src", "sport", "dst", "dport", "proto"], limit: 10 }),
    agg({ dst: [addr] }, { group_by: ["src", "sport", "dst", "dport", "proto"], limit: 10 }),
    api(`/v1/alerts?${q({ address: addr, start_ms: r.end_ms - 7 * 8.64e7, end_ms: r.end_ms + 1 })}`),
    api("/v1/names", { range, addresses: [addr], source: S.source, limit: 10 }),
    // its connections' TLS/QUIC server names (a record's own, or its connection's: both directions)
    agg({ src: [addr] }, { group_by: ["tls_sni"], limit: 11 }),
  ]);
  if (!current()) return;
  const times = [...new Set([...sent.groups, ...recv.groups].map((g) => g.bucket_ms))].sort((a, b) => a - b);
  const at = (groups) => { const m = new Map(groups.map((g) => [g.bucket_ms, g.bytes])); return times.map((t) => m.get(t) || 0); };
  chart("chart-host", [times.map((t) => t / 1000), at(sent.groups), at(recv.groups)],
        [{ label: "sent (B)", stroke: "#1f6feb" }, { label: "received (B)", stroke: "#2e7d32" }], "B");
  rankTable("host-peers", peers.groups.map((g) => [addrLink(g.dst), g.bytes, g.dst, `${count(g.packets)} p`]), bytes);
  rankTable("host-ports", ports.groups.map((g) => [`${g.proto}/${g.dport}`, g.bytes, `${g.proto}/${g.dport}`,
                                                    `${count(g.flows)} flows`]), bytes);
  const flows = [...out.groups, ...inb.groups].map((g) => [flowText(`${g.src} ${g.sport} ${g.dst} ${g.dport} ${g.proto}`),
    g.bytes, `${g.src} ${g.sport} ${g.dst} ${g.dport} ${g.proto}`, `${count(g.packets)} p`]);
  rankTable("host-flows", flows.sort((a, b) => b[1] - a[1]), bytes);
  alertTable("host-alerts", alerts.alerts);
  // the record's owner, and the question asked when a CNAME chain led there
  rankTable("host-names", names.names.map((n) => [esc(n.name) + (n.query === n.name ? "" : ` <small>${esc(n.query)}</small>`),
                                                  n.answers, n.name]), count);
  rankTable("host-tls", tls.groups.filter((g) => g.tls_sni).slice(0, 10).map((g) => [esc(g.tls_sni), g.bytes, g.tls_sni,
                                                                                     `${count(g.flows)} flows`]), bytes);
}

async function loadAlerts() {
  const r = await hostRange().catch(() => ({ end_ms: Date.now() }));
  const got = await api(`/v1/alerts?${q({ source: S.source, start_ms: r.end_ms - 7 * 8.64e7, end_ms: r.end_ms + 1 })}`);
  for (const a of got.alerts) if (!S.alerts.has(a.id) || S.alerts.get(a.id).last_seen_ms <= a.last_seen_ms) S.alerts.set(a.id, a);
  renderAlerts();
}

function renderAlerts() {
  const list = [...S.alerts.values()].filter((a) => !S.source || a.source === S.source);
  list.sort((a, b) => (a.state === b.state ? b.first_seen_ms - a.first_seen_ms : a.state === "firing" ? -1 : 1));
  alertTable("alerts", list);
  $("alerts-note").textContent = S.live ? "live" : "from the store";
}

function alertTable(id, alerts) {
  const el = $(id);
  if (!alerts.length) { el.innerHTML = `<tr><td class="empty">no alerts</td></tr>`; return; }
  el.innerHTML = "<tr><th>state</th><th>severity</th><th>rule</th><th>entity</th><th class=num>value</th>" +
    "<th class=num>threshold</th><th>first seen</th><th>evidence</th></tr>" + alerts.map((a) => {
      const entity = Object.entries(a.entity).map(([k, v]) => `${esc(k)} ${["src", "dst"].includes(k) ? addrLink(v) : esc(v)}`).join(", ");
      return `<tr data-id="${esc(a.id)}" data-rule="${esc(a.rule)}" data-state="${esc(a.state)}"><td>${esc(a.state)}</td>` +
        `<td class="sev-${esc(a.severity)}">${esc(a.severity)}</td><td>${esc(a.rule)}</td><td>${entity}</td>` +
        `<td class="num">${count(Math.round(a.value))}</td><td class="num">${count(Math.round(a.threshold))}</td>` +
        `<td>${when(a.first_seen_ms)}</td><td class="key" title="${esc(a.evidence_json)}">${esc(a.evidence_json.slice(0, 80))}</td></tr>`;
    }).join("");
}

// ---- live updates: Server-Sent Events read with fetch, reconnecting by themselves ---------------
function stopStreams() {
  for (const c of S.streams) { c.stopped = true; c.abort.abort(); }
  S.streams = [];
  clearInterval(S.poll);
}

function startStreams() {
  stopStreams();
  if (!S.live) {             // no Redis: history only, refreshed now and then
    S.poll = setInterval(() => { if (!S.paused) route(); }, 30000);
    return;
  }
  follow("/v1/live/stream", (ev) => {
    const d = JSON.parse(ev.data);
    if (ev.event !== "window" || S.paused) return;
    if (!$("source").querySelector(`option[value="${CSS.escape(d.source)}"]`)) loadSources().catch(report);
    if (d.source === S.source && location.hash.startsWith("#/now") || location.hash === "") loadNow().catch(report);
  });
  follow(() => `/v1/alerts/stream?${q({ source: S.source })}`, (ev) => {
    if (ev.event !== "alert") return;
    const change = JSON.parse(ev.data);
    S.alerts.set(change.alert.id, change.alert);
    if (location.hash.startsWith("#/alerts") && !S.paused) renderAlerts();
  });
}

async function follow(path, onEvent) {
  const ctrl = { stopped: false, abort: new AbortController() };
  S.streams.push(ctrl);
  let delay = 1000;
  while (!ctrl.stopped) {
    try {
      const r = await fetch(typeof path === "function" ? path() : path, { headers: auth(), signal: ctrl.abort.signal });
      if (r.status === 401 || r.status === 403) { showLogin("The API refused the token."); return; }
      if (r.ok) {
        banner(S.paused ? "" : "", "");
        delay = 1000;
        const reader = r.body.getReader();
        const dec = new TextDecoder();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let i;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const ev = { event: "message", data: "" };
            for (const line of block.split("\n")) {
              if (line.startsWith("event: ")) ev.event = line.slice(7);
              else if (line.startsWith("data: ")) ev.data += line.slice(6);
            }
            if (ev.data) { try { onEvent(ev); } catch (e) { report(e); } }
          }
        }
      }
    } catch (e) {
      if (ctrl.stopped) return;
    }
    if (ctrl.stopped) return;
    banner("Live updates interrupted: reconnecting…");
    await new Promise((res) => setTimeout(res, delay));
    delay = Math.min(delay * 2, 10000);
    if (!ctrl.stopped) route();          // catch up on what was missed
  }
}

boot().catch(report);

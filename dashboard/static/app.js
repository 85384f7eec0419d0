// logmesh dashboard: three SSE streams (graph, tail, status) drawn with uPlot
// and plain DOM. No build step; every stream reconnects by itself.
"use strict";

const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "panic"];
const LEVEL_COLORS = { trace: "#9aa0a6", debug: "#5f9e7f", info: "#2a7ae2", warn: "#d99a00", error: "#d33b2c", fatal: "#9b2fd1", panic: "#000000" };
const NODE_COLORS = ["#2a7ae2", "#d33b2c", "#2c8a4b", "#d99a00", "#9b2fd1", "#2b6f77", "#c2185b", "#6d4c41"];
const MAX_POINTS = 600, MAX_ROWS = 500, MAX_PENDING = 2000;

// State exposed for people poking in the console (and the browser test).
const lm = window.logmesh = { levelsChart: null, nodesChart: null, samples: 0, tailLines: 0, dropped: 0, streams: {} };
const $ = (sel) => document.querySelector(sel);

// ---- SSE with reconnection ----
// EventSource retries by itself after a dropped connection (the server sends
// "retry: 1000"); when the browser gives up (readyState CLOSED, e.g. logd was
// down at the retry) we open a new one.
function stream(name, url, handlers) {
  let es = null, stopped = false;
  const open = () => {
    es = new EventSource(url, { withCredentials: true });
    es.onopen = () => { lm.streams[name] = true; showConn(); };
    es.onerror = () => {
      lm.streams[name] = false; showConn();
      if (es.readyState === EventSource.CLOSED && !stopped) setTimeout(() => { if (!stopped) open(); }, 1000);
    };
    for (const [ev, fn] of Object.entries(handlers)) {
      es.addEventListener(ev, (m) => { try { fn(JSON.parse(m.data)); } catch (e) { console.error(name, ev, e); } });
    }
  };
  open();
  return { close() { stopped = true; es.close(); lm.streams[name] = false; showConn(); } };
}

function showConn() {
  const vals = Object.values(lm.streams), up = vals.filter(Boolean).length;
  const el = $("#conn");
  el.textContent = up === vals.length && up > 0 ? "live" : `reconnecting (${up}/${vals.length})`;
  el.className = "conn " + (up === vals.length && up > 0 ? "on" : "off");
}

// ---- graphs ----
const graphData = { x: [], levels: LEVELS.map(() => []), nodes: new Map() };
let drawPending = false;

function chartOpts(el, series) {
  return {
    width: Math.max(300, el.clientWidth - 4), height: 200,
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
    axes: [{}, { label: "events/s", size: 60 }],
    legend: { live: false },
    series: [{}].concat(series),
  };
}

function makeLevelsChart() {
  const el = $("#chart-levels");
  const series = LEVELS.map((l) => ({ label: l, stroke: LEVEL_COLORS[l], width: 1.5, points: { show: false } }));
  lm.levelsChart = new uPlot(chartOpts(el, series), [graphData.x].concat(graphData.levels), el);
}

function makeNodesChart() {
  const el = $("#chart-nodes");
  if (lm.nodesChart) lm.nodesChart.destroy();
  const names = [...graphData.nodes.keys()];
  const series = names.map((n, i) => ({ label: n, stroke: NODE_COLORS[i % NODE_COLORS.length], width: 1.5, points: { show: false } }));
  lm.nodesChart = new uPlot(chartOpts(el, series), [graphData.x].concat(names.map((n) => graphData.nodes.get(n))), el);
}

function addSample(s) {
  graphData.x.push(s.t);
  LEVELS.forEach((l, i) => graphData.levels[i].push(s.levels[i] || 0));
  let newNode = false;
  for (const name of Object.keys(s.nodes || {})) {
    if (!graphData.nodes.has(name)) {
      graphData.nodes.set(name, new Array(graphData.x.length - 1).fill(null));
      newNode = true;
    }
  }
  for (const [name, arr] of graphData.nodes) arr.push(s.nodes && name in s.nodes ? s.nodes[name] : null);
  if (graphData.x.length > MAX_POINTS) {
    graphData.x.shift();
    graphData.levels.forEach((a) => a.shift());
    for (const arr of graphData.nodes.values()) arr.shift();
  }
  lm.samples++;
  return newNode;
}

function redraw(rebuildNodes) {
  if (rebuildNodes) makeNodesChart();
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(() => {
    drawPending = false;
    lm.levelsChart.setData([graphData.x].concat(graphData.levels));
    lm.nodesChart.setData([graphData.x].concat([...graphData.nodes.values()]));
  });
}

function startGraph() {
  makeLevelsChart();
  makeNodesChart();
  stream("graph", "/api/v1/graph", {
    history(h) {
      graphData.x.length = 0;
      graphData.levels.forEach((a) => (a.length = 0));
      graphData.nodes.clear();
      for (const s of h.samples) addSample(s);
      redraw(true);
    },
    sample(s) { redraw(addSample(s)); },
  });
  window.addEventListener("resize", () => {
    for (const [c, el] of [[lm.levelsChart, "#chart-levels"], [lm.nodesChart, "#chart-nodes"]]) {
      c.setSize({ width: Math.max(300, $(el).clientWidth - 4), height: 200 });
    }
  });
}

// ---- live tail ----
let tailStream = null, paused = false, pending = [];

function filters() {
  return { level: $("#f-level").value, service: $("#f-service").value.trim(), node: $("#f-node").value.trim(), regex: $("#f-regex").value };
}

function jsRegex(src) { try { return src ? new RegExp(src) : null; } catch (e) { return null; } }

function rowMatches(row, f, re) {
  if (f.level && LEVELS.indexOf(row.dataset.level) < LEVELS.indexOf(f.level)) return false;
  if (f.service && row.dataset.service !== f.service) return false;
  if (f.node && row.dataset.node !== f.node) return false;
  if (re && !re.test(row.dataset.line)) return false;
  return true;
}

function fmtTime(ms) { return new Date(ms).toISOString().slice(11, 23); }

function addRow(ev) {
  const tail = $("#tail");
  const atBottom = tail.scrollTop + tail.clientHeight >= tail.scrollHeight - 4;
  let msg = "";
  try { const o = JSON.parse(ev.line); msg = o.message || o.msg || ""; } catch (e) { /* show the raw line */ }
  const row = document.createElement("div");
  row.className = "row";
  Object.assign(row.dataset, { level: ev.level || "", service: ev.service, node: ev.node, line: ev.line });
  const span = (cls, text) => { const s = document.createElement("span"); s.className = cls; s.textContent = text; return s; };
  row.append(span("t", fmtTime(ev.t)), " ", span("n", ev.node), " ", span("s", ev.service), " ",
    span("lv lv-" + (ev.level || "none"), ev.level || "-"), " ", msg ? span("m", msg + "  ") : "", span("muted", ev.line));
  tail.append(row);
  lm.tailLines++;
  while (tail.childElementCount > MAX_ROWS) tail.firstElementChild.remove();
  if (atBottom) tail.scrollTop = tail.scrollHeight;
}

function showTailInfo() {
  $("#tail-info").textContent = (paused ? `paused, ${pending.length} new` : "") + (lm.dropped ? ` · ${lm.dropped} lost (browser too slow)` : "");
}

function openTail() {
  if (tailStream) tailStream.close();
  const f = filters(), q = new URLSearchParams({ format: "sse" });
  for (const k of ["level", "service", "node", "regex"]) if (f[k]) q.set(k, f[k]);
  // Rows already shown obey the new filter too.
  const re = jsRegex(f.regex);
  for (const row of $("#tail").children) row.classList.toggle("hidden", !rowMatches(row, f, re));
  tailStream = stream("tail", "/api/v1/stream?" + q, {
    log(ev) {
      if (paused) { if (pending.length < MAX_PENDING) pending.push(ev); showTailInfo(); return; }
      addRow(ev);
    },
    dropped(d) { lm.dropped = d.dropped; showTailInfo(); },
  });
}

function startTail() {
  let debounce = null;
  const refilter = () => { clearTimeout(debounce); debounce = setTimeout(openTail, 250); };
  $("#f-level").addEventListener("change", openTail);
  for (const id of ["#f-service", "#f-node", "#f-regex"]) $(id).addEventListener("input", refilter);
  $("#filters").addEventListener("submit", (e) => { e.preventDefault(); openTail(); });
  $("#pause").addEventListener("click", () => {
    paused = !paused;
    $("#pause").textContent = paused ? "Resume" : "Pause";
    if (!paused) { for (const ev of pending) addRow(ev); pending = []; }
    showTailInfo();
  });
  $("#clear").addEventListener("click", () => { $("#tail").textContent = ""; pending = []; showTailInfo(); });
  openTail();
}

// ---- status tables ----
function fillTable(id, rows, emptyText, cells) {
  const body = $(id + " tbody"), cols = $(id + " thead tr").childElementCount;
  body.textContent = "";
  if (!rows || rows.length === 0) {
    const tr = body.insertRow(), td = tr.insertCell();
    td.colSpan = cols; td.className = "empty"; td.textContent = emptyText;
    return;
  }
  for (const r of rows) {
    const tr = body.insertRow();
    for (const c of cells(r)) {
      const td = tr.insertCell();
      if (c instanceof Node) td.append(c); else td.textContent = c == null ? "" : String(c);
    }
  }
}

function ago(t) {
  if (!t) return "";
  const s = (Date.now() - new Date(t).getTime()) / 1000;
  return s < 1 ? "now" : s < 120 ? `${Math.round(s)} s ago` : new Date(t).toLocaleTimeString();
}

function progress(done, total, label) {
  const wrap = document.createElement("span"), p = document.createElement("progress");
  p.max = Math.max(total, 1); p.value = Math.min(done, p.max);
  wrap.append(p, " " + label);
  return wrap;
}

function headers(h) {
  const s = document.createElement("span");
  s.className = "hdr";
  s.textContent = Object.entries(h || {}).map(([k, v]) => `${k}=${v}`).join("  ");
  return s;
}

function bytes(n) { return n >= 1 << 20 ? (n / (1 << 20)).toFixed(1) + " MiB" : n >= 1024 ? (n / 1024).toFixed(1) + " KiB" : n + " B"; }

function renderStatus(st) {
  fillTable("#peers", st.peers, st.peers ? "no peers yet" : "mesh not available",
    (p) => [p.name, p.endpoint, (p.groups || []).join(", "), headers(p.headers), ago(p.last_seen)]);
  const tm = st.timers;
  fillTable("#timers", tm && tm.schedules, tm ? "no schedules" : "timer service not available",
    (s) => [s.name, s.kind, s.spec, s.scope, s.next ? new Date(s.next).toLocaleTimeString() : "", s.fired, s.missed]);
  const sh = st.shipping;
  fillTable("#shipping", sh && sh.transfers, sh ? `nothing shipped yet (${bytes(sh.bytes_shipped)} in total)` : "shipping not available",
    (t) => [t.path, t.peer, t.error ? "error: " + t.error : progress(t.sent, t.size, `${bytes(t.sent)} / ${bytes(t.size)}${t.done ? " ✓" : ""}`)]);
  fillTable("#batches", st.batches, st.batches ? "no batches" : "Harmony not available",
    (b) => [b.id, b.workers, b.error ? "error: " + b.error : progress(b.done, b.tasks, `${b.done} / ${b.tasks}${b.ended ? " ✓" : ""}`), b.resent]);
  $("#clock").textContent = new Date(st.server.time).toLocaleTimeString();
}

function startStatus() { stream("status", "/api/v1/status", { status: renderStatus }); }

startGraph();
startTail();
startStatus();

// The two pages with charts, and where their data comes from (the contract with the server):
//   - the run page's JSON island #run-metrics-data:
//       {run_id, after_seq, history_url, created_at_ms, started_at_ms, series: [SeriesHistory]}
//     the compare page's #compare-data:
//       {metric, runs: [{run_id, label, url, history_url, started_at_ms?, series: SeriesHistory}]}
//     SeriesHistory: {name, points_total, from_step, to_step, level (0 = raw points),
//       line: [[step, value, at_ms]], envelope: [[step_lo, step_hi, min, max]] (one per bucket
//       when level > 0), nonfinite: [[step, "nan"|"inf"|"-inf", at_ms]],
//       last: [step, value] | null, best: [step, value] | null, best_is: "min"|"max"|""}
//   - live points: #run-events[data-run-events] holds the SSE connection (hx-sse:connect,
//     opened with ?after=<after_seq>); htmx 4 dispatches each named `metrics` event on it as a
//     DOM event whose detail.data is {"points":[{seq, name, step, value, kind?, at}]}. Points
//     whose seq is not above the highest seq held are dropped, so nothing is drawn twice.
//   - zoom: GET {history_url}?name=&from=&to= for a downsampled series, answered with one
//     SeriesHistory for that window (chart.js, Zoom; source.js, fetchWindow).
//   - the compare page's live runs: a run whose island entry has events_url has not ended
//     (live is its status in words). The page opens an EventSource on that URL (the run
//     page's stream, continuing after the island's last point), adds the compared metric's
//     points of each `metrics` event, and closes it on `done`, when the run has ended.
// Metrics that no chart names get a chart of their own, cloned from
// <template data-chart-template> when their first point arrives.

import { Source } from "./source.js";
import { Chart } from "./chart.js";
import { wireControls } from "./controls.js";
import { sources, charts, state, schedule, dirtyAll, resetState } from "./state.js";

var WAIT_EMPTY = "No metrics were recorded for this run.";
var NO_DATA_AFTER_MS = 2500; // an ended run with no points by then has none

function readIsland(id) {
  var el = document.getElementById(id);
  if (!el) return null;
  try {
    return JSON.parse(el.textContent);
  } catch (e) {
    return null;
  }
}

// sourceFor finds or makes the source of a metric, and a chart for it if no chart names it.
function sourceFor(name, h) {
  var src = sources.get(name);
  if (src) return src;
  src = new Source(name, name, h, state.page.historyURL, state.page.origin);
  sources.set(name, src);
  var owner = null;
  charts.forEach(function (c) {
    c.lines.forEach(function (l) { if (l.key === name) owner = c; });
  });
  if (!owner) owner = addDynamicChart(name);
  if (owner) owner.dirty = true;
  return src;
}

var DYNAMIC_COLORS = ["chart-c6", "chart-c8", "chart-c3", "chart-c4", "chart-c5", "chart-c7", "chart-c2", "chart-c1"];

function addDynamicChart(name) {
  var tpl = document.querySelector("template[data-chart-template]");
  var row = document.querySelector("[data-chart-row]");
  if (!tpl || !row) return null;
  var fig = tpl.content.firstElementChild.cloneNode(true);
  fig.setAttribute("data-chart", name);
  fig.setAttribute("data-testid", "chart-" + name);
  fig.hidden = true;
  var title = fig.querySelector("[data-chart-title]");
  if (title) title.textContent = name;
  var plot = fig.querySelector("[data-chart-plot]");
  if (plot) plot.setAttribute("data-chart-label", name);
  var key = fig.querySelector("[data-series]");
  key.setAttribute("data-series", name);
  key.querySelector(".chart-key-label").textContent = name;
  var sw = key.querySelector(".chart-swatch");
  sw.className = "chart-swatch " + DYNAMIC_COLORS[state.dynamicCount++ % DYNAMIC_COLORS.length];
  row.appendChild(fig);
  var c = new Chart(fig, "dynamic");
  c.title = name;
  c.addLine(name, key);
  charts.push(c);
  return c;
}

function ingest(points) {
  if (!Array.isArray(points)) return;
  points.forEach(function (p) {
    if (!p || typeof p.name !== "string" || !p.name || typeof p.step !== "number") return;
    if (typeof p.seq === "number") {
      if (p.seq <= state.lastSeq) return;
      state.lastSeq = p.seq;
    }
    var src = sourceFor(p.name, null);
    var at = typeof p.at === "number" ? p.at : Date.now();
    var kind = p.kind && p.kind !== "finite" ? p.kind : "";
    if (!kind && (typeof p.value !== "number" || !isFinite(p.value))) kind = "nan";
    if (kind) src.addNonFinite(p.step, kind, at);
    else src.add(p.step, p.value, at);
    charts.forEach(function (c) { if (c.lineFor(src)) c.dirty = true; });
  });
  // The placeholders follow whether any metric has arrived.
  charts.forEach(function (c) { if (c.kind === "placeholder") c.dirty = true; });
  schedule();
}

// After the live panel is swapped in: copy its status badge into the page header, and, for
// an ended run whose history brought no points, say so instead of waiting forever.
function afterPanel() {
  var panel = document.querySelector("#run-live .run-live-panel");
  if (!panel) return;
  var tpl = panel.querySelector("template[data-header-status]");
  var slot = document.querySelector("[data-run-status]");
  if (tpl && slot) slot.replaceChildren(tpl.content.cloneNode(true));
  if (panel.hasAttribute("data-final")) setTimeout(markEmpty, NO_DATA_AFTER_MS);
}

// markEmpty replaces "Waiting for the first metrics…" once no more can come; the loss
// chart says so, and the other empty charts go.
function markEmpty() {
  state.ended = true;
  charts.forEach(function (c) {
    c.dirty = true;
    var text = c.wait && c.wait.querySelector("[data-chart-wait-text]");
    if (c.hasData() || !text) return;
    text.textContent = WAIT_EMPTY;
    c.el.classList.add("is-empty");
  });
  schedule();
}

function initRun(el) {
  var island = readIsland("run-metrics-data") || {};
  var created = typeof island.created_at_ms === "number" ? island.created_at_ms : null;
  var started = typeof island.started_at_ms === "number" ? island.started_at_ms : null;
  var page = { kind: "run", el: el, historyURL: typeof island.history_url === "string" ? island.history_url : "", origin: started != null ? started : created };
  state.page = page;
  state.lastSeq = typeof island.after_seq === "number" ? island.after_seq : 0;
  document.querySelectorAll("[data-run-charts] [data-chart]").forEach(function (fig) {
    var kind = fig.classList.contains("chart-main") ? "main" : fig.hasAttribute("data-chart-optional") ? "optional" : "placeholder";
    var c = new Chart(fig, kind);
    fig.querySelectorAll("[data-series]").forEach(function (key) { c.addLine(key.getAttribute("data-series"), key); });
    charts.push(c);
  });
  var series = Array.isArray(island.series) ? island.series : [];
  series.forEach(function (h) {
    if (h && typeof h.name === "string" && h.name) sourceFor(h.name, h);
  });
  // Relative time without a start: count from the first point held.
  if (page.origin == null) {
    var first = Infinity;
    sources.forEach(function (s) { if (s.base.t.length && s.base.t[0] != null) first = Math.min(first, s.base.t[0]); });
    if (first !== Infinity) {
      page.origin = first;
      sources.forEach(function (s) { s.origin = first; });
    }
  }
  wireControls(document.querySelector("[data-run-charts]") || document);
  el.addEventListener("metrics", function (e) {
    var msg;
    try {
      msg = JSON.parse(e.detail && e.detail.data);
    } catch (err) {
      return; // not JSON: nothing to draw
    }
    var current = state.page;
    if (current && current.origin == null && msg && Array.isArray(msg.points) && msg.points.length && typeof msg.points[0].at === "number") {
      current.origin = msg.points[0].at;
      sources.forEach(function (s) { s.origin = current.origin; });
    }
    ingest(msg && msg.points);
  });
  el.addEventListener("htmx:after:swap", afterPanel);
  // The server sends `done` after the last points of an ended run (hx-sse:close="done").
  el.addEventListener("done", markEmpty);
  dirtyAll(false);
}

// The compare page --------------------------------------------------------------------------

var COMPARE_COLORS = ["chart-c1", "chart-c2", "chart-c3", "chart-c4", "chart-c5", "chart-c6", "chart-c7", "chart-c8"];

function initCompare(el) {
  var island = readIsland("compare-data") || {};
  state.page = { kind: "compare", el: el };
  var fig = el.querySelector("[data-chart]");
  var body = el.querySelector("[data-compare-legend]");
  var rowTpl = el.querySelector("template[data-compare-row]");
  if (!fig) return;
  var c = new Chart(fig, "compare");
  c.valueHead = el.querySelector("[data-legend-value-head]");
  var runs = Array.isArray(island.runs) ? island.runs : [];
  var live = [];
  runs.forEach(function (r, i) {
    if (!r) return;
    var key = String(r.run_id);
    var h = r.series || null;
    var origin = typeof r.started_at_ms === "number" ? r.started_at_ms : null;
    var src = new Source(key, island.metric || (h && h.name) || "", h, r.history_url, origin);
    if (origin == null && src.base.t.length) src.origin = src.base.t[0];
    sources.set(key, src);
    var row = null;
    if (rowTpl && body) {
      row = rowTpl.content.firstElementChild.cloneNode(true);
      var a = row.querySelector("a");
      a.textContent = r.label || "Run " + key;
      if (typeof r.url === "string" && r.url.charAt(0) === "/") a.setAttribute("href", r.url);
      row.querySelector(".chart-swatch").classList.add(COMPARE_COLORS[i % COMPARE_COLORS.length]);
      row.setAttribute("data-run", key);
      if (!src.hasData()) row.classList.add("is-empty");
      body.appendChild(row);
    }
    c.addLine(key, row, { label: r.label || key });
    if (typeof r.events_url === "string" && r.events_url.charAt(0) === "/") {
      live.push({ key: key, url: r.events_url, status: typeof r.live === "string" && r.live ? r.live : "Running", row: row });
    }
  });
  charts.push(c);
  wireControls(el);
  if (!c.hasData() && c.wait) {
    var text = c.wait.querySelector("[data-chart-wait-text]");
    if (text) text.textContent = live.length ? "Waiting for the first points\u2026" : "None of these runs recorded " + (island.metric || "this metric") + ".";
    if (!live.length) c.el.classList.add("is-empty");
  }
  live.forEach(function (l) { followRun(c, l); });
  dirtyAll(false);
}

// followRun adds a live run's new points of the compared metric to the compare chart, from
// its event stream, until the run ends; its "running" marks go then.
function followRun(chart, l) {
  var src = sources.get(l.key), metric = src.name, lastSeq = 0;
  var badge = l.row && l.row.querySelector("[data-compare-live]");
  if (badge) {
    badge.textContent = l.status;
    badge.hidden = false;
  }
  var es = new EventSource(l.url);
  state.streams.push(es);
  es.addEventListener("metrics", function (e) {
    var msg;
    try {
      msg = JSON.parse(e.data);
    } catch (err) {
      return; // not JSON: nothing to draw
    }
    var pts = msg && Array.isArray(msg.points) ? msg.points : [];
    var added = false;
    pts.forEach(function (p) {
      if (!p || typeof p.step !== "number") return;
      // A reconnect resumes after Last-Event-ID; a point seen already is not added twice.
      if (typeof p.seq === "number") {
        if (p.seq <= lastSeq) return;
        lastSeq = p.seq;
      }
      if (p.name !== metric) return;
      var at = typeof p.at === "number" ? p.at : Date.now();
      if (src.origin == null) src.origin = at;
      var kind = p.kind && p.kind !== "finite" ? p.kind : "";
      if (!kind && (typeof p.value !== "number" || !isFinite(p.value))) kind = "nan";
      if (kind) src.addNonFinite(p.step, kind, at);
      else src.add(p.step, p.value, at);
      added = true;
    });
    if (!added) return;
    if (l.row) l.row.classList.remove("is-empty");
    chart.el.classList.remove("is-empty");
    chart.dirty = true;
    schedule();
  });
  // The run has ended and everything is sent: close, or EventSource would reconnect.
  es.addEventListener("done", function () {
    es.close();
    var i = state.streams.indexOf(es);
    if (i >= 0) state.streams.splice(i, 1);
    document.querySelectorAll('[data-compare-live="' + l.key + '"]').forEach(function (b) { b.hidden = true; });
    if (badge) badge.hidden = true;
  });
}

// initCharts sets up the charts of the page in the document, once per page: the run page
// (#run-events[data-run-events]) or the compare page ([data-compare]). A page that arrives
// through an htmx swap calls it again; the same page's element is left as it is.
export function initCharts() {
  if (typeof uPlot === "undefined") return;
  var run = document.querySelector("[data-run-events]");
  var cmp = document.querySelector("[data-compare]");
  var el = run || cmp;
  // A page swapped away: its charts and streams go with it.
  if (!el && state.page && !state.page.el.isConnected) resetState();
  if (!el || (state.page && state.page.el === el)) return;
  resetState();
  if (run) initRun(run);
  else initCompare(cmp);
}

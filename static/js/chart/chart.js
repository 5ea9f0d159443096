// Chart is one figure[data-chart] and its uPlot: the series it draws (one legend entry each),
// turned into uPlot's columns, series and bands in the current x-axis mode, log scale and
// smoothing; the legend and hover line; the NaN/Inf markers; and its part of a zoom (the
// window in steps, and the finer data it asks the server for).
//
// Per series: the line (faint when smoothing is on, with the EMA-smoothed line over it), the
// min–max band of downsampled buckets (so a spike inside a bucket stays visible), and red
// markers for NaN and ±Inf (the legend counts them). The legend shows the value under the
// cursor, or the last one, and the best (min or max, as the server says).

import { KIND_TEXT, count, compact, formatValue, unitOf, duration, clock } from "./format.js";
import { tickFormatter, logFilter, xTicks, axisSize } from "./axes.js";
import { cssVar, withAlpha, lineColor } from "./colors.js";
import { timeAt, ema } from "./source.js";
import { drawMarks, markNear } from "./markers.js";
import { drawRuleMarks } from "./rule-marks.js";
import { drawSnapshotMarks } from "./snapshot-marks.js";
import { sources, charts, state, schedule, anyData } from "./state.js";
import { settings, zoomAll, resetAll } from "./controls.js";

export function Chart(el, kind) {
  this.el = el;
  this.kind = kind; // "main", "placeholder", "optional", "dynamic", "compare"
  this.id = el.getAttribute("data-chart");
  var titleEl = el.querySelector("[data-chart-title]");
  this.title = titleEl ? titleEl.textContent.trim() : this.id;
  this.plot = el.querySelector("[data-chart-plot]");
  this.wait = el.querySelector("[data-chart-wait]");
  this.loadingEl = el.querySelector("[data-chart-loading]");
  this.foot = el.querySelector("[data-chart-foot]");
  this.note = el.querySelector("[data-chart-note]");
  this.stepLabel = el.querySelector("[data-legend-step]");
  this.nfChip = el.querySelector("[data-legend-nonfinite]");
  this.valueHead = null; // the compare legend's "Last" column heading
  this.main = el.classList.contains("chart-main");
  this.lines = [];
  this.u = null;
  this.sig = "";
  this.meta = [];
  this.marks = [];
  this.xsteps = [];
  this.win = null;
  this.fetchId = 0;
  this.pending = 0;
  this.failed = false;
  this.dirty = true;
  this.hover = null;
  var self = this;
  if (window.ResizeObserver && this.plot) {
    this.ro = new ResizeObserver(function () { self.resize(); });
    this.ro.observe(this.plot);
  }
  if (this.plot) {
    this.plot.addEventListener("keydown", function (e) { self.onKey(e); });
    this.label();
  }
}

var X_WORDS = { step: "training step", relative: "relative time", wall: "wall-clock time" };

// label names the plot area for assistive technology after the x axis it draws now:
// "Loss by relative time" (the name comes from data-chart-label).
Chart.prototype.label = function () {
  if (!this.plot) return;
  var name = this.plot.getAttribute("data-chart-label") || this.title;
  this.plot.setAttribute("aria-label", name + " by " + (X_WORDS[settings.x] || X_WORDS.step));
};

// addLine attaches a series: its key and legend entry (swatch, value, best).
Chart.prototype.addLine = function (key, keyEl, opts) {
  opts = opts || {};
  this.lines.push({
    key: key,
    keyEl: keyEl,
    label: opts.label || (keyEl && keyEl.querySelector(".chart-key-label") ? keyEl.querySelector(".chart-key-label").textContent : key),
    swatch: keyEl ? keyEl.querySelector(".chart-swatch") : null,
    valueEl: keyEl ? keyEl.querySelector("[data-legend-value]") : null,
    bestEl: keyEl ? keyEl.querySelector("[data-legend-best]") : null,
    pointsEl: keyEl ? keyEl.querySelector("[data-legend-points]") : null,
    axis: keyEl && keyEl.getAttribute("data-axis") === "y2" ? "y2" : "y",
    zoom: null
  });
};

Chart.prototype.lineFor = function (src) {
  for (var i = 0; i < this.lines.length; i++) {
    if (sources.get(this.lines[i].key) === src) return this.lines[i];
  }
  return null;
};

Chart.prototype.viewOf = function (line) {
  var src = sources.get(line.key);
  return src ? src.describe(line.zoom) : null;
};

Chart.prototype.active = function () {
  return this.lines.filter(function (l) {
    var s = sources.get(l.key);
    return s && s.hasData();
  });
};

Chart.prototype.hasData = function () {
  return this.active().length > 0;
};

Chart.prototype.destroy = function () {
  if (this.u) this.u.destroy();
  this.u = null;
  this.sig = "";
  if (this.ro) this.ro.disconnect();
};

Chart.prototype.resize = function () {
  if (!this.u) return;
  var w = this.plot.clientWidth, h = this.plot.clientHeight;
  if (w > 0 && h > 0 && (w !== this.u.width || h !== this.u.height)) this.u.setSize({ width: w, height: h });
};

// xOf gives the x of each point in the current x-axis mode; null where its time is unknown.
function xMapper(src) {
  if (settings.x === "step") return function (step) { return step; };
  var origin = src.origin;
  if (settings.x === "relative") return function (step, at) { return at == null || origin == null ? null : (at - origin) / 1000; };
  return function (step, at) { return at == null ? null : at / 1000; };
}

// prepare turns the active lines into uPlot's aligned columns, series options and bands.
Chart.prototype.prepare = function (active) {
  var chart = this, log = settings.log, w = settings.smooth, smooth = w > 0;
  var tables = [], meta = [null], marks = [], xsteps = [], sig = [settings.x, log ? 1 : 0, smooth ? 1 : 0];
  var axes = { y: false, y2: false };
  active.forEach(function (line) { axes[line.axis] = true; });
  var onlyY2 = axes.y2 && !axes.y;
  active.forEach(function (line, li) {
    var src = sources.get(line.key);
    var v = src.view(line.zoom);
    var xOf = xMapper(src);
    var scale = onlyY2 ? "y" : line.axis;
    var xs = [], ys = [], steps = [];
    var asc = true;
    for (var i = 0; i < v.s.length; i++) {
      var x = xOf(v.s[i], v.t[i]);
      if (x == null) continue;
      if (xs.length && x < xs[xs.length - 1]) asc = false;
      xs.push(x);
      ys.push(log && !(v.v[i] > 0) ? null : v.v[i]);
      steps.push(v.s[i]);
    }
    if (!asc) {
      var order = xs.map(function (_, i) { return i; }).sort(function (a, b) { return xs[a] - xs[b]; });
      xs = order.map(function (i) { return xs[i]; });
      ys = order.map(function (i) { return ys[i]; });
      steps = order.map(function (i) { return steps[i]; });
    }
    xsteps.push({ x: xs, s: steps });
    // Evaluation metrics come every few hundred steps: their dots show where they were taken.
    var sparse = /^eval_/.test(src.name);
    // The band first, so the lines draw over it.
    if (v.env.length && v.level > 0) {
      var ex = [], hi = [], lo = [];
      v.env.forEach(function (b) {
        var t0 = settings.x === "step" ? null : timeAt(v, b[0]);
        var t1 = settings.x === "step" ? null : timeAt(v, b[1]);
        var x0 = xOf(b[0], t0), x1 = xOf(b[1], t1);
        if (x0 == null || x1 == null) return;
        var mn = log && !(b[2] > 0) ? (b[3] > 0 ? b[3] : null) : b[2];
        var mx = log && !(b[3] > 0) ? null : b[3];
        ex.push(x0, x1);
        hi.push(mx, mx);
        lo.push(mn, mn);
      });
      if (ex.length) {
        if (!isSorted(ex)) {
          var ord = ex.map(function (_, i) { return i; }).sort(function (a, b) { return ex[a] - ex[b]; });
          ex = ord.map(function (i) { return ex[i]; });
          hi = ord.map(function (i) { return hi[i]; });
          lo = ord.map(function (i) { return lo[i]; });
        }
        tables.push([ex, hi, lo]);
        meta.push({ line: line, li: li, role: "hi", scale: scale }, { line: line, li: li, role: "lo", scale: scale });
        sig.push(li + "b");
      }
    }
    var table = [xs, ys];
    meta.push({ line: line, li: li, role: "raw", scale: scale, sparse: sparse, hover: !smooth });
    if (smooth) {
      table.push(ema(ys, w));
      meta.push({ line: line, li: li, role: "smooth", scale: scale, hover: true });
    }
    tables.push(table);
    sig.push(line.key + ":" + scale + (sparse ? "s" : ""));
    v.nf.forEach(function (p) {
      var at = p.at != null ? p.at : settings.x === "step" ? null : timeAt(v, p.step);
      var x = xOf(p.step, at);
      if (x != null) marks.push({ x: x, kind: p.kind, step: p.step, line: line });
    });
    line.drawn = v;
    line.inWindow = 0;
    if (chart.win) {
      for (var q = 0; q < steps.length; q++) if (steps[q] >= chart.win.from && steps[q] <= chart.win.to) line.inWindow++;
      line.inWindow += v.nf.filter(function (p) { return p.step >= chart.win.from && p.step <= chart.win.to; }).length;
    }
    line.xs = { x: xs, s: steps };
  });
  // A chart whose series only have NaN/Inf still needs an x axis for the markers.
  if (!tables.some(function (t) { return t[0].length; }) && marks.length) {
    tables.push([marks.map(function (m) { return m.x; }).sort(function (a, b) { return a - b; })]);
  }
  var data = tables.length ? uPlot.join(tables) : [[]];
  this.meta = meta;
  this.marks = marks;
  this.xsteps = xsteps;
  this.axesUsed = { y2: axes.y2 && !onlyY2 };
  return { data: data, sig: sig.join("|") + (this.axesUsed.y2 ? "|y2" : "") };
};

function isSorted(a) {
  for (var i = 1; i < a.length; i++) if (a[i] < a[i - 1]) return false;
  return true;
}

// build makes a fresh uPlot with the page's current colours and settings.
Chart.prototype.build = function (data) {
  var chart = this;
  var axisColor = cssVar("--text-3") || "#6b6b78";
  var gridColor = cssVar("--border") || "#e4e4ea";
  var font = "11px " + getComputedStyle(document.body).fontFamily;
  var axis = { stroke: axisColor, font: font, grid: { stroke: gridColor, width: 1 }, ticks: { stroke: gridColor, width: 1, size: 4 }, gap: 4 };
  var smooth = settings.smooth > 0, log = settings.log;
  var width = this.main ? 2 : 1.5;
  var series = [{ label: "x" }];
  var bands = [];
  var firstRaw = true;
  this.meta.forEach(function (m, si) {
    if (!m) return;
    var color = lineColor(m.line);
    var s = { label: m.line.label + " " + m.role, scale: m.scale, spanGaps: false, points: { show: false } };
    if (m.role === "hi" || m.role === "lo") {
      s.stroke = withAlpha(color, 0.45);
      s.width = 1;
      if (m.role === "hi") bands.push({ series: [si, si + 1], fill: withAlpha(color, 0.14) });
    } else if (m.role === "raw") {
      s.stroke = smooth ? withAlpha(color, 0.3) : color;
      s.width = smooth ? 1 : width;
      // Dots on the points once there are few enough in view to tell apart.
      s.points = { show: fewInView, size: m.sparse ? 5 : 4, fill: smooth ? withAlpha(color, 0.5) : color, stroke: smooth ? withAlpha(color, 0.5) : color };
      var banded = chart.meta.some(function (o) { return o && o.line === m.line && o.role === "hi"; });
      if (firstRaw && chart.main && !smooth && !banded && !m.sparse && chart.kind !== "compare") s.fill = withAlpha(color, 0.08);
      firstRaw = false;
    } else {
      s.stroke = color;
      s.width = width;
    }
    series.push(s);
  });
  var xAxis = Object.assign({}, axis, { size: 30 });
  var xScale = { time: settings.x === "wall" };
  if (settings.x !== "step") xScale.range = function (u, min, max) { return chart.xRange(u, min, max); };
  Object.assign(xAxis, xTicks(settings.x));
  var unitY = "", unitY2 = "";
  this.meta.forEach(function (m) {
    if (!m) return;
    var u = unitOf(sources.get(m.line.key).name);
    if (m.scale === "y2") unitY2 = u; else unitY = unitY || u;
  });
  var yScale = log ? { distr: 3, log: 10 } : {};
  var yAxis = function (scale, unit, extra) {
    var a = Object.assign({}, axis, { scale: scale, values: tickFormatter(unit, log), size: axisSize, space: chart.main ? 30 : 22 }, extra);
    if (log) {
      a.filter = logFilter;
      a.grid = Object.assign({}, a.grid, { filter: logFilter });
      a.ticks = Object.assign({}, a.ticks, { filter: logFilter });
    }
    return a;
  };
  var axes = [xAxis, yAxis("y", unitY, {})];
  var scales = { x: xScale, y: Object.assign({}, yScale) };
  if (this.axesUsed.y2) {
    scales.y2 = Object.assign({}, yScale);
    axes.push(yAxis("y2", unitY2, { side: 1, grid: { show: false } }));
  }
  var meta = this.meta;
  var opts = {
    width: Math.max(100, this.plot.clientWidth),
    height: Math.max(80, this.plot.clientHeight),
    legend: { show: false },
    padding: [10, this.axesUsed.y2 ? 4 : 14, 0, 0],
    scales: scales,
    cursor: {
      y: false,
      sync: { key: state.page && state.page.kind === "compare" ? "tunelab-compare" : "tunelab-run" },
      drag: { x: true, y: false, setScale: false },
      points: {
        size: 7,
        show: function (u, si) {
          if (!meta[si] || !meta[si].hover) return false;
          var pt = document.createElement("div");
          pt.className = "chart-cursor-pt";
          return pt;
        }
      }
    },
    axes: axes,
    series: series,
    bands: bands,
    hooks: {
      setCursor: [function (u) { chart.onCursor(u); }],
      setSelect: [function (u) { chart.onSelect(u); }],
      draw: [function (u) { chart.drawMarks(u); }]
    }
  };
  if (this.u) this.u.destroy();
  this.u = new uPlot(opts, data, this.plot);
  this.u.over.addEventListener("dblclick", resetAll);
  if (this.win) this.u.setScale("x", { min: this.win.x0, max: this.win.x1 });
  else if (state.groupWin) this.zoomTo(state.groupWin.x0, state.groupWin.x1); // a chart that appeared while zoomed
};

// xRange is the x range of a time axis. Points of one batch share their time, and uPlot
// widens a span of one instant itself before this sees it (on a time scale by a thousand
// days: the points at the left edge under ticks "1 Jan 1 Jan"), so out of a zoom the range
// comes from the points drawn: their span, or a minute around a span under a second (from 0
// in relative time when the points are that early). A zoom window stays as it is.
Chart.prototype.xRange = function (u, min, max) {
  var xs = u.data && u.data[0], n = xs ? xs.length : 0;
  if (this.win || min == null || max == null || !n) return [min, max];
  var lo = xs[0], hi = xs[n - 1];
  if (hi - lo >= 1) return [lo, hi];
  var mid = (lo + hi) / 2;
  lo = settings.x === "relative" && mid >= 0 ? Math.max(0, mid - 30) : mid - 30;
  return [lo, lo + 60];
};

// fewInView: a series' dots show when it has at most one point per 8 px in view.
function fewInView(u, si, i0, i1) {
  var ys = u.data[si], room = u.bbox.width / (uPlot.pxRatio || 1) / 8, n = 0;
  if (i0 == null || i1 == null) return false;
  for (var i = i0; i <= i1; i++) {
    if (ys[i] != null && ++n > room) return false;
  }
  return n > 0;
}

// draw brings the chart up to date: a new uPlot when what it draws changed shape (a series
// appeared, a setting changed), otherwise new data in the existing one.
Chart.prototype.draw = function () {
  this.dirty = false;
  var active = this.active();
  this.updateVisibility(active.length > 0);
  if (!active.length) {
    this.legend();
    return;
  }
  if (this.wait) this.wait.hidden = true;
  this.el.classList.add("is-ready");
  var p = this.prepare(active);
  if (!this.u || p.sig !== this.sig) {
    this.sig = p.sig;
    this.build(p.data);
  } else if (this.win) {
    this.u.setData(p.data, false);
    this.u.setScale("x", { min: this.win.x0, max: this.win.x1 });
  } else {
    this.u.setData(p.data, true);
  }
  this.legend();
  this.footnote();
};

// updateVisibility: the loss chart always shows; the other fixed charts wait as
// placeholders until the first metrics arrive, then show only if they have points.
Chart.prototype.updateVisibility = function (has) {
  var show;
  if (this.kind === "main" || this.kind === "compare") show = true;
  else if (this.kind === "placeholder") show = has || (!anyData() && !state.ended);
  else show = has;
  if (this.el.hidden === show) this.el.hidden = !show;
  var self = this;
  this.lines.forEach(function (l) {
    if (!l.keyEl || self.kind === "compare") return;
    var s = sources.get(l.key);
    var hide = has && !(s && s.hasData());
    if (l.keyEl.hidden !== hide) l.keyEl.hidden = hide;
  });
};

// legend shows each series' value under the cursor, or its last one, and its best.
Chart.prototype.legend = function () {
  var chart = this, u = this.u, idx = u && this.hover != null ? this.hover : null;
  var nf = 0, kinds = {};
  this.lines.forEach(function (line) {
    var src = sources.get(line.key);
    if (!src) return;
    var text = "\u2013", bad = false;
    if (idx != null) {
      var si = chart.seriesIndex(line, "raw");
      var di = si > 0 && u.cursor.idxs ? u.cursor.idxs[si] : null;
      var val = si > 0 && di != null ? u.data[si][di] : null;
      text = formatValue(val, src.unit);
    } else {
      var ls = src.lastShown();
      text = ls.text;
      bad = ls.bad;
    }
    if (line.valueEl) {
      line.valueEl.textContent = text;
      line.valueEl.classList.toggle("is-bad", bad);
    }
    if (line.bestEl) {
      if (src.best && src.bestIs) {
        var best = formatValue(src.best[1], src.unit);
        line.bestEl.textContent = chart.kind === "compare" ? best : "best " + best;
        line.bestEl.title = (src.bestIs === "min" ? "Lowest" : "Highest") + ", at step " + count(src.best[0]);
        line.bestEl.hidden = false;
      } else if (chart.kind === "compare") {
        line.bestEl.textContent = "\u2013";
      } else {
        line.bestEl.hidden = true;
      }
    }
    if (line.pointsEl) line.pointsEl.textContent = src.hasData() ? count(src.total()) : "\u2013";
    var n = src.nfCount();
    nf += n;
    src.base.nf.concat(src.liveNF).forEach(function (p) { kinds[p.kind] = (kinds[p.kind] || 0) + 1; });
  });
  if (this.nfChip) {
    if (nf) {
      var parts = Object.keys(kinds).map(function (k) { return count(kinds[k]) + " " + KIND_TEXT[k]; });
      this.nfChip.textContent = parts.join(" \u00b7 ");
      this.nfChip.title = "Non-finite values reported (marked in red on the chart)";
    }
    this.nfChip.hidden = !nf;
  }
  if (this.stepLabel) this.stepLabel.textContent = idx != null ? this.hoverText(idx) : "";
  if (this.valueHead) this.valueHead.textContent = idx != null ? "At cursor" : "Last";
  this.stepLabel && this.stepLabel.classList.toggle("is-bad", idx != null && !!this.hoverMark);
};

Chart.prototype.seriesIndex = function (line, role) {
  for (var i = 1; i < this.meta.length; i++) {
    if (this.meta[i] && this.meta[i].line === line && this.meta[i].role === role) return i;
  }
  return -1;
};

// hoverText says where the cursor is: the step of the point the legend shows, and its
// time in the time modes; or the NaN/Inf marker under the cursor.
Chart.prototype.hoverText = function (idx) {
  var u = this.u;
  if (this.hoverMark) return KIND_TEXT[this.hoverMark.kind] + " at step " + count(this.hoverMark.step);
  var x = u.data[0][idx], step = null;
  var lines = this.active();
  for (var i = 0; i < lines.length; i++) {
    var si = this.seriesIndex(lines[i], "raw");
    var di = si > 0 && u.cursor.idxs ? u.cursor.idxs[si] : null;
    if (di == null || !lines[i].xs) continue;
    var j = binarySearch(lines[i].xs.x, u.data[0][di]);
    if (j >= 0) {
      x = u.data[0][di];
      step = lines[i].xs.s[j];
      break;
    }
  }
  if (x == null) return "";
  if (settings.x === "step") return "step " + count(step != null ? step : x);
  var when = settings.x === "relative" ? duration(x, true) : clock(x * 1000);
  return step == null ? when : when + " \u00b7 step " + count(step);
};

function binarySearch(a, x) {
  var lo = 0, hi = a.length - 1;
  while (lo <= hi) {
    var mid = (lo + hi) >> 1;
    if (a[mid] === x) return mid;
    if (a[mid] < x) lo = mid + 1; else hi = mid - 1;
  }
  return -1;
}

Chart.prototype.onCursor = function (u) {
  this.hover = u.cursor.idx == null || u.cursor.left < 0 ? null : u.cursor.idx;
  this.hoverMark = null;
  if (this.hover != null && this.marks.length) {
    this.hoverMark = markNear(u, this.marks, u.cursor.left);
  }
  this.legend();
};

// drawMarks draws the NaN/Inf markers over the plot (a uPlot draw hook).
Chart.prototype.drawMarks = function (u) {
  drawMarks(u, this.marks);
  drawRuleMarks(u, settings.x);
  drawSnapshotMarks(u, settings.x);
};

// Zoom ---------------------------------------------------------------------------------------
//
// Dragging across a chart zooms every chart of the page to that window (they share the x
// axis; in the time modes the window becomes steps through the points held) and asks the
// server for each downsampled series in that window (Source.prototype.fetchWindow), drawing
// that finer answer for the window (series held at full resolution need no request). A
// double-click or the toolbar's "Reset zoom" goes back to the whole run (island + live
// points).

// The keys, on a focused plot area: + and - zoom in and out around the middle of the window,
// the arrows move it by a quarter of its width, Home or 0 goes back to the whole run. They
// go through zoomAll and resetAll as a drag and a double-click do, so a key zoom asks for
// the finer data too.
var KEY_ACTIONS = { "+": "in", "=": "in", "-": "out", "_": "out", "\u2212": "out",
  ArrowLeft: "left", ArrowRight: "right", Home: "reset", "0": "reset" };

Chart.prototype.onKey = function (e) {
  if (e.altKey || e.ctrlKey || e.metaKey) return;
  var act = KEY_ACTIONS[e.key];
  if (!act || !this.u) return;
  e.preventDefault();
  this.keyZoom(act);
};

Chart.prototype.keyZoom = function (act) {
  if (act === "reset") {
    if (state.groupWin) resetAll();
    return;
  }
  var sx = this.u.scales.x;
  var x0 = state.groupWin ? state.groupWin.x0 : sx.min, x1 = state.groupWin ? state.groupWin.x1 : sx.max;
  if (x0 == null || x1 == null || !(x1 > x0)) return;
  var full = this.fullRange() || [sx.min, sx.max];
  var w = x1 - x0, mid = (x0 + x1) / 2, lo, hi;
  if (act === "in") {
    // Down to a few steps (or a tenth of a second) wide.
    var least = settings.x === "step" ? 4 : 0.1;
    if (w <= least) return;
    w = Math.max(least, w / 2);
    lo = mid - w / 2;
    hi = mid + w / 2;
  } else if (act === "out") {
    if (!state.groupWin) return;
    lo = mid - w;
    hi = mid + w;
  } else {
    if (!state.groupWin) return; // the whole run is in view: nowhere to move
    var d = (act === "left" ? -w : w) / 4;
    lo = x0 + d;
    hi = x1 + d;
  }
  // Keep the window over the run's points.
  if (lo < full[0]) {
    hi = Math.min(full[1], hi + (full[0] - lo));
    lo = full[0];
  }
  if (hi > full[1]) {
    lo = Math.max(full[0], lo - (hi - full[1]));
    hi = full[1];
  }
  if (lo <= full[0] && hi >= full[1]) resetAll(); // zoomed out to the whole run
  else if (hi > lo && (lo !== x0 || hi !== x1)) zoomAll(lo, hi);
};

// fullRange is the x extent of every point the chart holds (island and live), in the
// current x-axis units, whatever the zoom; null when it holds none.
Chart.prototype.fullRange = function () {
  var lo = Infinity, hi = -Infinity;
  this.active().forEach(function (line) {
    var src = sources.get(line.key), v = src.view(null), xOf = xMapper(src);
    for (var i = 0; i < v.s.length; i++) {
      var x = xOf(v.s[i], v.t[i]);
      if (x == null) continue;
      if (x < lo) lo = x;
      if (x > hi) hi = x;
    }
  });
  return hi > lo ? [lo, hi] : null;
};

// A drag on one chart shows its selection on the others too (cursor sync), mapped onto
// their x range: a sliver where that range is wider. Every chart clears its own, or the
// sliver would stay behind over the zoomed chart.
Chart.prototype.onSelect = function (u) {
  if (!u.select || !u.select.width) return;
  var wide = u.select.width >= 4;
  var x0 = u.posToVal(u.select.left, "x"), x1 = u.posToVal(u.select.left + u.select.width, "x");
  u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
  if (wide) zoomAll(x0, x1);
};

// stepsIn converts an x window to steps. In the time modes it goes through the points the
// page draws (every chart's, since they share the x axis), so all charts ask for the same
// steps; a window between two points takes each series' points on either side, from the
// series that have points on both sides if any do (the steps of different metrics are
// not in one time order: a metric that arrived later starts again at step 0).
Chart.prototype.stepsIn = function (x0, x1) {
  if (settings.x === "step") return { from: Math.max(0, Math.floor(x0)), to: Math.ceil(x1) };
  var from = Infinity, to = -Infinity, near = [];
  charts.forEach(function (c) {
    c.xsteps.forEach(function (xs) {
      var before = -Infinity, after = Infinity;
      for (var i = 0; i < xs.x.length; i++) {
        var x = xs.x[i], st = xs.s[i];
        if (x >= x0 && x <= x1) {
          if (st < from) from = st;
          if (st > to) to = st;
        } else if (x < x0) {
          if (st > before) before = st;
        } else if (st < after) {
          after = st;
        }
      }
      if (before !== -Infinity || after !== Infinity) near.push([before, after]);
    });
  });
  if (from === Infinity) {
    var both = near.filter(function (n) { return n[0] !== -Infinity && n[1] !== Infinity; });
    (both.length ? both : near).forEach(function (n) {
      var lo = n[0] === -Infinity ? n[1] : n[0], hi = n[1] === Infinity ? n[0] : n[1];
      from = Math.min(from, lo, hi);
      to = Math.max(to, lo, hi);
    });
    if (from === Infinity) return null;
  }
  return { from: from, to: to };
};

Chart.prototype.zoomTo = function (x0, x1) {
  var st = this.stepsIn(x0, x1);
  if (!st) return;
  this.win = { x0: x0, x1: x1, from: st.from, to: st.to };
  var chart = this, id = ++this.fetchId;
  this.failed = false;
  this.pending = 0;
  this.active().forEach(function (line) {
    var src = sources.get(line.key);
    // Every point is already here: no need to ask.
    var v = src.view(null);
    if (!src.url || v.level === 0) {
      line.zoom = { from: st.from, to: st.to, level: 0, data: null };
      return;
    }
    line.zoom = { from: st.from, to: st.to, level: v.level, data: null };
    chart.pending++;
    src.fetchWindow(st.from, st.to)
      .then(function (data) {
        if (id !== chart.fetchId || line.zoom == null) return;
        line.zoom = { from: st.from, to: st.to, data: data };
      })
      .catch(function () {
        if (id === chart.fetchId) chart.failed = true;
      })
      .then(function () {
        if (id !== chart.fetchId) return;
        chart.pending--;
        chart.loading(chart.pending > 0);
        chart.dirty = true;
        schedule();
      });
  });
  this.loading(this.pending > 0);
  if (this.u) this.u.setScale("x", { min: x0, max: x1 });
  this.dirty = true;
  schedule();
};

Chart.prototype.resetZoom = function () {
  if (!this.win) return;
  this.win = null;
  this.fetchId++;
  this.pending = 0;
  this.failed = false;
  this.loading(false);
  this.lines.forEach(function (l) { l.zoom = null; });
  this.dirty = true;
  if (this.u) {
    // new data with the scales reset to the whole run
    var p = this.prepare(this.active());
    this.u.setData(p.data, true);
    this.legend();
    this.footnote();
    this.dirty = false;
  }
  schedule();
};

Chart.prototype.loading = function (on) {
  this.el.classList.toggle("is-loading", on);
  if (this.loadingEl) this.loadingEl.hidden = !on;
  this.footnote();
};

// footnote says how the data is drawn: every point, or buckets with their range shaded,
// and what a zoom shows. Small charts say it in a few words.
Chart.prototype.footnote = function () {
  if (!this.foot) return;
  var text = "", biggest = null, inWindow = 0, short = !this.main;
  this.active().forEach(function (line) {
    var v = line.drawn;
    if (v && (!biggest || (v.total || 0) > (biggest.total || 0))) biggest = v;
    if (line.inWindow) inWindow += line.inWindow;
  });
  if (this.win) {
    var range = "Steps " + count(this.win.from) + "\u2013" + count(this.win.to);
    if (this.pending > 0) text = "Loading detail\u2026";
    else if (this.failed) text = "Could not load more detail; showing the overview.";
    else if (!inWindow) text = "No points in this range.";
    else if (biggest && biggest.level > 0) text = short ? compact(biggest.total) + " points in range, min\u2013max shaded." : range + ": " + count(biggest.s.length) + " buckets of " + count(biggest.total) + " points, each bucket\u2019s min\u2013max range shaded.";
    else text = short ? "Every point." : range + ": every point.";
  } else if (biggest && biggest.level > 0) {
    text = short ? compact(biggest.total) + " points, min\u2013max shaded." : count(biggest.total) + " points, drawn as " + count(biggest.s.length) + " with each bucket\u2019s min\u2013max range shaded.";
  }
  this.note.textContent = text;
  this.foot.hidden = !text;
};


// The charts of the run page and the compare page. Loaded with `defer` after uPlot, only on
// pages that have charts (views.Page.Charts); no inline code, no eval, and no style
// attributes in markup (uPlot and this file size and colour things through the CSSOM, which
// the CSP allows), so it runs under the strict CSP.
//
// Data (the contract with the server):
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
//   - zoom: dragging across a chart zooms every chart of the page to that window (they share
//     the x axis; in the time modes the window becomes steps through the points held) and asks
//     GET {history_url}?name=&from=&to= for each downsampled series, drawing that finer answer
//     for the window (series held at full resolution need no request). A double-click or the
//     toolbar's "Reset zoom" goes back to the whole run (island + live points).
//
// Drawing: one uPlot per chart (figure[data-chart]); its legend entries [data-series] name the
// metrics it draws and carry the swatch whose colour the line takes. Per series: the line
// (faint when smoothing is on, with the EMA-smoothed line over it), the min–max band of
// downsampled buckets (so a spike inside a bucket stays visible), and red markers for NaN and
// ±Inf (the legend counts them). The legend shows the value under the cursor, or the last
// one, and the best (min or max, as the server says). Metrics that no chart names get a chart
// of their own, cloned from <template data-chart-template> when their first point arrives.
//
// The controls ([data-chart-controls]: x axis step / relative time / wall time, log scale,
// smoothing) apply to every chart and are remembered in localStorage.
//
// Test hooks, window.tunelabCharts:
//   points(name)  how many line points are held for a metric (run page) or a run id (compare):
//                 the island's line plus the live points
//   charts()      the titles of the charts shown ("Loss", "GPU", or the metric's own name)
//   lastSeq()     the highest point seq held (run page): after_seq, then the live points'
//   view(name)    {from, to, level} of what is drawn for that metric / run id now; while a
//                 zoom's request is under way, the window with the overview's level
//   runs()        the run ids on the compare chart
//   xRange(name)  [min, max] of the x scale of the chart that draws that metric / run id, in
//                 the x axis' units (steps, seconds since the start, or Unix seconds); null
//                 when no chart draws it yet
(function () {
  "use strict";

  var WAIT_EMPTY = "No metrics were recorded for this run.";
  var NO_DATA_AFTER_MS = 2500; // an ended run with no points by then has none
  var LIVE_THIN_OVER = 6000; // live points past the island are bucketed above this many
  var LIVE_BUCKETS = 2000;
  var SETTINGS_KEY = "tunelab.charts";

  var settings = loadSettings();
  var sources = new Map(); // key -> Source (metric name on the run page, run id on compare)
  var charts = [];
  var page = null; // {kind: "run"|"compare", el, origin, ...}
  var lastSeq = 0;
  var frame = 0;
  var dynamicCount = 0;
  var ended = false; // the run has ended and sent everything: placeholders stop waiting

  window.tunelabCharts = {
    points: function (name) {
      var s = sources.get(String(name));
      return s ? s.count() : 0;
    },
    charts: function () {
      return charts.filter(function (c) { return !c.el.hidden && c.el.isConnected; }).map(function (c) { return c.title; });
    },
    lastSeq: function () { return lastSeq; },
    view: function (name) {
      var s = sources.get(String(name));
      if (!s) return null;
      for (var i = 0; i < charts.length; i++) {
        var line = charts[i].lineFor(s);
        if (line) return charts[i].viewOf(line);
      }
      return s.describe(null);
    },
    runs: function () {
      return page && page.kind === "compare" ? Array.from(sources.keys()) : [];
    },
    xRange: function (name) {
      var s = sources.get(String(name));
      if (!s) return null;
      for (var i = 0; i < charts.length; i++) {
        var c = charts[i];
        if (c.lineFor(s) && c.u) {
          var x = c.u.scales.x;
          return x.min == null || x.max == null ? null : [x.min, x.max];
        }
      }
      return null;
    }
  };

  // Settings ----------------------------------------------------------------------------------

  function loadSettings() {
    var s = { x: "step", log: false, smooth: 0 };
    try {
      var saved = JSON.parse(window.localStorage.getItem(SETTINGS_KEY) || "{}");
      if (saved.x === "step" || saved.x === "relative" || saved.x === "wall") s.x = saved.x;
      s.log = saved.log === true;
      if (typeof saved.smooth === "number" && saved.smooth >= 0 && saved.smooth < 1) s.smooth = saved.smooth;
    } catch (e) {
      // private mode or bad JSON: the defaults
    }
    return s;
  }

  function saveSettings() {
    try {
      window.localStorage.setItem(SETTINGS_KEY, JSON.stringify(settings));
    } catch (e) {
      // not stored: they last for this page
    }
  }

  // Formatting --------------------------------------------------------------------------------

  // trimZeros turns "2.3100" into "2.31" and "5.00e-4" into "5e-4".
  function trimZeros(s) {
    return s.replace(/(\.\d*?)0+(e|$)/, "$1$2").replace(/\.(e|$)/, "$1");
  }

  function expo(v, digits) {
    return trimZeros(v.toExponential(digits)).replace("e-", "e\u2212").replace("e+", "e");
  }

  function count(n) {
    return Math.round(n).toLocaleString("en");
  }

  // compact writes 1200 as "1.2k" and 3400000 as "3.4M".
  function compact(v) {
    var a = Math.abs(v);
    if (a >= 1e9) return trimZeros((v / 1e9).toFixed(a >= 1e10 ? 0 : 1)) + "B";
    if (a >= 1e6) return trimZeros((v / 1e6).toFixed(a >= 1e7 ? 0 : 1)) + "M";
    if (a >= 1e3) return trimZeros((v / 1e3).toFixed(a >= 1e4 ? 0 : 1)) + "k";
    return String(v);
  }

  function bytes(v) {
    var a = Math.abs(v);
    if (a >= 1073741824) return trimZeros((v / 1073741824).toFixed(1)) + " GiB";
    if (a >= 1048576) return trimZeros((v / 1048576).toFixed(0)) + " MiB";
    return compact(v);
  }

  // unitOf says how a metric's values read: percent (utilisation), memory, or plain numbers.
  function unitOf(name) {
    if (/util/i.test(name)) return "pct";
    if (/mem/i.test(name)) return "mem";
    return "";
  }

  // A value in the legend: four significant digits, exponents for tiny values, thousands
  // separators for large ones.
  function formatValue(v, unit) {
    if (v == null || !isFinite(v)) return "\u2013";
    var a = Math.abs(v);
    if (unit === "mem" && a >= 1048576) return bytes(v);
    var s;
    if (a === 0) s = "0";
    else if (a >= 10000) s = count(v);
    else if (a < 0.001) s = expo(v, 2);
    else s = trimZeros(v.toPrecision(4));
    return unit === "pct" ? s + "%" : s;
  }

  var KIND_TEXT = { nan: "NaN", inf: "+Inf", "-inf": "\u2212Inf" };

  // Axis tick labels: precision from the tick spacing, "k" for thousands, exponents when the
  // whole axis is tiny (learning rates), short forms on a log axis.
  function tickFormatter(unit, log) {
    return function (u, splits, axisIdx, space, foundIncr) {
      var max = 0;
      var incr = foundIncr || (splits.length > 1 ? Math.abs(splits[1] - splits[0]) : 1);
      splits.forEach(function (v) { if (v != null) max = Math.max(max, Math.abs(v)); });
      return splits.map(function (v) {
        if (v == null) return "";
        if (v === 0) return "0";
        if (unit === "mem" && max >= 1048576) return bytes(v);
        var s;
        if (log) {
          s = shortNum(v);
        } else if (max >= 10000) {
          s = trimZeros((v / 1000).toFixed(incr >= 1000 ? 0 : 1)) + "k";
        } else if (max < 0.01) {
          s = expo(v, 2);
        } else {
          var d = Math.max(0, Math.min(6, -Math.floor(Math.log10(incr) + 1e-9)));
          s = trimZeros(v.toFixed(d));
        }
        return unit === "pct" ? s + "%" : s;
      });
    };
  }

  // Step labels: "250k", "1.2M", or the whole number when the ticks are too close for that
  // ("1,000,020" on a chart of the last few steps of a long run).
  function stepTicks(u, splits, axisIdx, space, foundIncr) {
    var incr = foundIncr || (splits.length > 1 ? Math.abs(splits[1] - splits[0]) : 1);
    return splits.map(function (v) {
      if (v == null) return "";
      if (v < 1000) return String(v);
      var unit = v >= 1e6 ? 1e6 : 1e3;
      var d = Math.max(0, Math.ceil(Math.log10(unit / incr) - 1e-9));
      if (d > 2) return count(v);
      return trimZeros((v / unit).toFixed(d)) + (unit === 1e6 ? "M" : "k");
    });
  }

  // shortNum writes a log-axis tick in two significant digits: 0.5, 20, 3k, 1e−5.
  function shortNum(v) {
    var n = Number(v.toPrecision(2)), a = Math.abs(n);
    if (a >= 1000) return compact(n);
    if (a < 0.01) return expo(v, 0);
    return String(n);
  }

  function isDecade(v) {
    var l = Math.log10(Math.abs(v));
    return Math.abs(l - Math.round(l)) < 1e-6;
  }

  // logFilter thins a log axis: decades only once there are several (every second or third
  // when they would crowd), with 2 and 5 between them when the axis spans little.
  function logFilter(u, splits) {
    var h = u.bbox.height / (uPlot.pxRatio || 1);
    var decades = splits.filter(function (v) { return v > 0 && isDecade(v); });
    var room = Math.max(2, Math.floor(h / 20));
    var every = Math.max(1, Math.ceil(decades.length / room));
    var minors = decades.length <= 2 && h >= 90;
    return splits.map(function (v) {
      if (!(v > 0)) return null;
      if (isDecade(v)) return Math.round(Math.log10(v)) % every === 0 ? v : null;
      var lead = Math.round(v / Math.pow(10, Math.floor(Math.log10(v) + 1e-9)));
      return minors && (lead === 2 || lead === 5) ? v : null;
    });
  }

  // wallTicks writes wall-clock ticks on one line: "14:05", "14:05:30", "14:05:30.25" (a zoom
  // under a couple of seconds), or "23 Nov".
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  function wallTicks(u, splits, axisIdx, space, foundIncr) {
    var incr = foundIncr || (splits.length > 1 ? splits[1] - splits[0] : 60);
    return splits.map(function (v) {
      if (v == null) return "";
      var d = new Date(v * 1000);
      if (incr >= 86400) return d.getDate() + " " + MONTHS[d.getMonth()];
      if (incr < 1) {
        var digits = incr >= 0.1 ? 1 : incr >= 0.01 ? 2 : 3, p = Math.pow(10, digits), k = Math.round(v * p);
        var frac = String(k % p);
        while (frac.length < digits) frac = "0" + frac;
        return clock(Math.floor(k / p) * 1000) + "." + frac;
      }
      var t = clock(v * 1000);
      return incr >= 60 ? t.slice(0, 5) : t;
    });
  }

  // duration writes seconds as "45s", "12m", "3m20s", "2h", "2h05m", "1d 4h".
  function duration(sec, precise) {
    var s = Math.round(Math.abs(sec));
    var sign = sec < 0 ? "\u2212" : "";
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    var pad = function (n) { return n < 10 ? "0" + n : String(n); };
    if (d) return sign + d + "d" + (h ? " " + h + "h" : "");
    if (h) return sign + h + "h" + (m || precise ? pad(m) + "m" : "");
    if (m) return sign + m + "m" + (r || precise ? pad(r) + "s" : "");
    return sign + r + "s";
  }

  function relTicks(u, splits) {
    return splits.map(function (v) { return v == null ? "" : v === 0 ? "0" : duration(v); });
  }

  var REL_INCRS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];
  var STEP_INCRS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000, 20000, 25000, 50000,
    100000, 200000, 250000, 500000, 1e6, 2e6, 2.5e6, 5e6, 1e7, 2e7, 5e7, 1e8];

  // Wall-clock ticks fall on whole seconds (uPlot's own steps from a second up): half-second
  // ticks would read "14:05:30 14:05:30". Only a zoom to under a couple of seconds gets finer
  // ones, labelled with their fraction.
  var WALL_INCRS = (function () {
    var m = 60, h = 3600, d = 86400, mo = 30 * d, y = 365 * d;
    return [1, 2, 5, 10, 15, 30, m, 2 * m, 5 * m, 10 * m, 15 * m, 30 * m, h, 2 * h, 3 * h, 4 * h, 6 * h, 8 * h, 12 * h,
      d, 2 * d, 3 * d, 4 * d, 5 * d, 6 * d, 7 * d, 8 * d, 9 * d, 10 * d, 15 * d, mo, 2 * mo, 3 * mo, 4 * mo, 6 * mo, y, 2 * y, 5 * y, 10 * y];
  })();
  var SUBSECOND_INCRS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5];

  function wallIncrs(u, axisIdx, min, max) {
    return max - min >= 2 ? WALL_INCRS : SUBSECOND_INCRS.concat(WALL_INCRS);
  }

  function clock(ms) {
    var d = new Date(ms);
    var pad = function (n) { return n < 10 ? "0" + n : String(n); };
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }

  // Colours -----------------------------------------------------------------------------------

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  // withAlpha turns "rgb(r, g, b)" into "rgba(r, g, b, a)".
  function withAlpha(color, a) {
    var m = /^rgba?\(([^)]+)\)$/.exec(color);
    if (!m) return color;
    var parts = m[1].split(",").slice(0, 3);
    return "rgba(" + parts.join(",") + "," + a + ")";
  }

  // Series data -------------------------------------------------------------------------------

  // hist normalises a SeriesHistory from the server into column arrays.
  function hist(h) {
    var o = { s: [], v: [], t: [], env: [], nf: [], level: 0, from: null, to: null, total: 0, last: null, best: null, bestIs: "" };
    if (!h || typeof h !== "object") return o;
    var line = Array.isArray(h.line) ? h.line : [];
    var sorted = true;
    for (var i = 0; i < line.length; i++) {
      var p = line[i];
      if (!p || typeof p[0] !== "number" || typeof p[1] !== "number" || !isFinite(p[1])) continue;
      if (o.s.length && p[0] < o.s[o.s.length - 1]) sorted = false;
      o.s.push(p[0]);
      o.v.push(p[1]);
      o.t.push(typeof p[2] === "number" ? p[2] : null);
    }
    if (!sorted) sortColumns(o);
    (Array.isArray(h.envelope) ? h.envelope : []).forEach(function (b) {
      if (b && typeof b[0] === "number" && typeof b[2] === "number" && typeof b[3] === "number") {
        o.env.push([b[0], typeof b[1] === "number" ? b[1] : b[0], b[2], b[3]]);
      }
    });
    (Array.isArray(h.nonfinite) ? h.nonfinite : []).forEach(function (p) {
      if (p && typeof p[0] === "number") o.nf.push({ step: p[0], kind: KIND_TEXT[p[1]] ? p[1] : "nan", at: typeof p[2] === "number" ? p[2] : null });
    });
    o.level = typeof h.level === "number" ? h.level : 0;
    o.from = typeof h.from_step === "number" ? h.from_step : o.s.length ? o.s[0] : null;
    o.to = typeof h.to_step === "number" ? h.to_step : o.s.length ? o.s[o.s.length - 1] : null;
    o.total = typeof h.points_total === "number" ? h.points_total : o.s.length + o.nf.length;
    o.last = Array.isArray(h.last) && typeof h.last[1] === "number" ? h.last : null;
    o.best = Array.isArray(h.best) && typeof h.best[1] === "number" ? h.best : null;
    o.bestIs = h.best_is === "min" || h.best_is === "max" ? h.best_is : "";
    return o;
  }

  function sortColumns(o) {
    var idx = o.s.map(function (_, i) { return i; });
    idx.sort(function (a, b) { return o.s[a] - o.s[b]; });
    o.s = idx.map(function (i) { return o.s[i]; });
    o.v = idx.map(function (i) { return o.v[i]; });
    o.t = idx.map(function (i) { return o.t[i]; });
  }

  // guessBest is which way is better for a metric the server said nothing about.
  function guessBest(name) {
    if (/loss|error|perplexity|ppl|wer|cer/i.test(name)) return "min";
    if (/acc|reward|f1|score|bleu|rouge|auc|precision|recall/i.test(name)) return "max";
    return "";
  }

  // Source is one series: the island's history of one metric (of one run), plus the points
  // that arrived live after it.
  function Source(key, name, h, url, origin) {
    this.key = key;
    this.name = name;
    this.url = url || "";
    this.origin = origin; // ms that "relative time" counts from
    this.base = hist(h);
    this.live = { s: [], v: [], t: [] };
    this.liveNF = [];
    this.last = this.base.last;
    this.best = this.base.best;
    this.bestIs = this.base.bestIs || (h ? "" : guessBest(name));
    this.lastNF = null;
    var self = this;
    this.base.nf.forEach(function (p) { self.noteNF(p); });
    this.unit = unitOf(name);
  }

  Source.prototype.count = function () {
    return this.base.s.length + this.live.s.length;
  };

  // total is every point of the series, drawn or not.
  Source.prototype.total = function () {
    return this.base.total + this.live.s.length + this.liveNF.length;
  };

  Source.prototype.nfCount = function () {
    return this.base.nf.length + this.liveNF.length;
  };

  Source.prototype.hasData = function () {
    return this.count() > 0 || this.nfCount() > 0;
  };

  Source.prototype.noteNF = function (p) {
    if (!this.lastNF || p.step >= this.lastNF.step) this.lastNF = p;
  };

  Source.prototype.lastStep = function () {
    var l = this.live.s;
    if (l.length) return l[l.length - 1];
    return this.base.s.length ? this.base.s[this.base.s.length - 1] : null;
  };

  // add keeps the live points sorted by step (nearly always a push); a repeated step replaces.
  Source.prototype.add = function (step, value, at) {
    var l = this.live, n = l.s.length;
    if (!n || l.s[n - 1] < step) {
      l.s.push(step);
      l.v.push(value);
      l.t.push(at);
    } else {
      var lo = 0, hi = n;
      while (lo < hi) {
        var mid = (lo + hi) >> 1;
        if (l.s[mid] < step) lo = mid + 1; else hi = mid;
      }
      if (l.s[lo] === step) {
        l.v[lo] = value;
        l.t[lo] = at;
      } else {
        l.s.splice(lo, 0, step);
        l.v.splice(lo, 0, value);
        l.t.splice(lo, 0, at);
      }
    }
    if (!this.last || step >= this.last[0]) this.last = [step, value];
    if (this.bestIs && (!this.best || (this.bestIs === "min" ? value < this.best[1] : value > this.best[1]))) {
      this.best = [step, value];
    }
  };

  Source.prototype.addNonFinite = function (step, kind, at) {
    var p = { step: step, kind: KIND_TEXT[kind] ? kind : "nan", at: at };
    this.liveNF.push(p);
    this.noteNF(p);
  };

  // lastShown is the legend's "last" value: the last finite value, or the kind of a later
  // non-finite one (a run whose loss went NaN says so).
  Source.prototype.lastShown = function () {
    if (this.lastNF && (!this.last || this.lastNF.step > this.last[0])) return { text: KIND_TEXT[this.lastNF.kind], bad: true };
    return { text: this.last ? formatValue(this.last[1], this.unit) : "\u2013", bad: false };
  };

  // view is what to draw: the whole series, or the finer answer for a zoom window.
  Source.prototype.view = function (zoom) {
    var b = this.base, l = this.live;
    if (zoom && zoom.data) {
      var z = zoom.data, out = { s: z.s.slice(), v: z.v.slice(), t: z.t.slice(), env: z.env, nf: z.nf.slice(), level: z.level, from: zoom.from, to: zoom.to, total: z.total };
      var after = z.s.length ? z.s[z.s.length - 1] : zoom.from - 1;
      for (var i = 0; i < l.s.length; i++) {
        if (l.s[i] > after && l.s[i] <= zoom.to) {
          out.s.push(l.s[i]);
          out.v.push(l.v[i]);
          out.t.push(l.t[i]);
        }
      }
      this.liveNF.forEach(function (p) { if (p.step > after && p.step <= zoom.to) out.nf.push(p); });
      return out;
    }
    var v = { s: b.s, v: b.v, t: b.t, env: b.env, nf: b.nf.concat(this.liveNF), level: b.level, total: b.total + l.s.length + this.liveNF.length };
    if (l.s.length) {
      var tail = l;
      var env = b.env;
      if (l.s.length > LIVE_THIN_OVER) {
        var thin = bucket(l, LIVE_BUCKETS);
        tail = thin;
        env = b.env.concat(thin.env);
        v.level = Math.max(v.level, 1);
      }
      if (!b.s.length || tail.s[0] > b.s[b.s.length - 1]) {
        v = { s: b.s.concat(tail.s), v: b.v.concat(tail.v), t: b.t.concat(tail.t), env: env, nf: v.nf, level: v.level, total: v.total };
      } else {
        var m = merge(b, tail);
        v = { s: m.s, v: m.v, t: m.t, env: env, nf: v.nf, level: v.level, total: v.total };
      }
    }
    v.from = b.from != null ? Math.min(b.from, v.s.length ? v.s[0] : b.from) : v.s.length ? v.s[0] : null;
    v.to = v.s.length ? Math.max(b.to != null ? b.to : -Infinity, v.s[v.s.length - 1]) : b.to;
    return v;
  };

  Source.prototype.describe = function (zoom) {
    if (zoom) return { from: zoom.from, to: zoom.to, level: zoom.data ? zoom.data.level : zoom.level };
    var v = this.view(null);
    return { from: v.from, to: v.to, level: v.level };
  };

  // merge joins two step-sorted column sets; on a repeated step the second wins.
  function merge(a, b) {
    var o = { s: [], v: [], t: [] }, i = 0, j = 0;
    while (i < a.s.length || j < b.s.length) {
      var take;
      if (j >= b.s.length) take = 0;
      else if (i >= a.s.length) take = 1;
      else if (a.s[i] < b.s[j]) take = 0;
      else if (a.s[i] > b.s[j]) take = 1;
      else { i++; take = 1; }
      var c = take ? b : a, k = take ? j++ : i++;
      o.s.push(c.s[k]);
      o.v.push(c.v[k]);
      o.t.push(c.t[k]);
    }
    return o;
  }

  // bucket thins a long run of live points into n buckets: each keeps its last point for the
  // line and its min and max for the band, as the server's downsampling does.
  function bucket(c, n) {
    var o = { s: [], v: [], t: [], env: [] };
    var len = c.s.length, size = Math.ceil(len / n);
    for (var i = 0; i < len; i += size) {
      var end = Math.min(len, i + size), lo = Infinity, hi = -Infinity;
      for (var k = i; k < end; k++) {
        if (c.v[k] < lo) lo = c.v[k];
        if (c.v[k] > hi) hi = c.v[k];
      }
      o.s.push(c.s[end - 1]);
      o.v.push(c.v[end - 1]);
      o.t.push(c.t[end - 1]);
      o.env.push([c.s[i], c.s[end - 1], lo, hi]);
    }
    return o;
  }

  // timeAt estimates the wall time of a step from the points around it.
  function timeAt(v, step) {
    var s = v.s, t = v.t, n = s.length;
    if (!n) return null;
    var lo = 0, hi = n;
    while (lo < hi) {
      var mid = (lo + hi) >> 1;
      if (s[mid] < step) lo = mid + 1; else hi = mid;
    }
    if (lo < n && s[lo] === step) return t[lo];
    var a = lo - 1, b = lo;
    if (a < 0) return t[b];
    if (b >= n) return t[a];
    if (t[a] == null || t[b] == null) return t[a] != null ? t[a] : t[b];
    return t[a] + (t[b] - t[a]) * (step - s[a]) / (s[b] - s[a]);
  }

  // ema is the debiased exponential moving average TensorBoard draws; nulls stay gaps.
  function ema(ys, w) {
    var out = new Array(ys.length), acc = 0, n = 0;
    for (var i = 0; i < ys.length; i++) {
      var y = ys[i];
      if (y == null) {
        out[i] = y;
        continue;
      }
      acc = acc * w + (1 - w) * y;
      n++;
      out[i] = acc / (1 - Math.pow(w, n));
    }
    return out;
  }

  // Charts ------------------------------------------------------------------------------------

  // Chart is one figure[data-chart] and its uPlot.
  function Chart(el, kind) {
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
  }

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
    if (settings.x === "step") {
      xAxis.values = stepTicks;
      xAxis.incrs = STEP_INCRS;
      xAxis.space = 70;
    } else if (settings.x === "relative") {
      xAxis.values = relTicks;
      xAxis.incrs = REL_INCRS;
      xAxis.space = 60;
    } else {
      xAxis.values = wallTicks;
      xAxis.incrs = wallIncrs;
      xAxis.space = 60;
    }
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
        sync: { key: page && page.kind === "compare" ? "tunelab-compare" : "tunelab-run" },
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
    else if (groupWin) this.zoomTo(groupWin.x0, groupWin.x1); // a chart that appeared while zoomed
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

  function lineColor(line) {
    return line.swatch ? getComputedStyle(line.swatch).backgroundColor : cssVar("--chart-1");
  }

  // fewInView: a series' dots show when it has at most one point per 8 px in view.
  function fewInView(u, si, i0, i1) {
    var ys = u.data[si], room = u.bbox.width / (uPlot.pxRatio || 1) / 8, n = 0;
    if (i0 == null || i1 == null) return false;
    for (var i = i0; i <= i1; i++) {
      if (ys[i] != null && ++n > room) return false;
    }
    return n > 0;
  }

  // Width of the y axis from its longest label.
  function axisSize(u, values) {
    if (!values) return 40;
    var longest = 0;
    values.forEach(function (s) { longest = Math.max(longest, String(s).length); });
    return Math.max(34, Math.ceil(longest * 6.5) + 16);
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
    else if (this.kind === "placeholder") show = has || (!anyData() && !ended);
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

  function anyData() {
    for (var s of sources.values()) if (s.hasData()) return true;
    return false;
  }

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
      var left = u.cursor.left, best = 6;
      for (var i = 0; i < this.marks.length; i++) {
        var d = Math.abs(u.valToPos(this.marks[i].x, "x") - left);
        if (d < best) {
          best = d;
          this.hoverMark = this.marks[i];
        }
      }
    }
    this.legend();
  };

  // drawMarks puts a red marker at each NaN/Inf: a dashed line through the plot, and a
  // triangle at the top (NaN, +Inf) or bottom (-Inf). One per pixel column at most.
  Chart.prototype.drawMarks = function (u) {
    if (!this.marks.length) return;
    var ctx = u.ctx, box = u.bbox, r = uPlot.pxRatio || 1;
    var color = cssVar("--danger") || "#c52b2b";
    var seen = new Set();
    ctx.save();
    ctx.beginPath();
    ctx.rect(box.left, box.top, box.width, box.height);
    ctx.clip();
    this.marks.forEach(function (m) {
      var x = Math.round(u.valToPos(m.x, "x", true));
      if (x < box.left - 1 || x > box.left + box.width + 1) return;
      var key = m.kind + x;
      if (seen.has(key)) return;
      seen.add(key);
      var down = m.kind === "-inf";
      ctx.strokeStyle = color;
      ctx.globalAlpha = 0.5;
      ctx.lineWidth = r;
      ctx.setLineDash([3 * r, 3 * r]);
      ctx.beginPath();
      ctx.moveTo(x + 0.5, box.top);
      ctx.lineTo(x + 0.5, box.top + box.height);
      ctx.stroke();
      ctx.globalAlpha = 1;
      ctx.setLineDash([]);
      ctx.fillStyle = color;
      var s = 5 * r, y = down ? box.top + box.height : box.top;
      ctx.beginPath();
      if (m.kind === "nan") {
        // a diamond
        ctx.moveTo(x, y);
        ctx.lineTo(x + s, y + s);
        ctx.lineTo(x, y + 2 * s);
        ctx.lineTo(x - s, y + s);
      } else if (down) {
        ctx.moveTo(x - s, y - 1.6 * s);
        ctx.lineTo(x + s, y - 1.6 * s);
        ctx.lineTo(x, y);
      } else {
        ctx.moveTo(x - s, y + 1.6 * s);
        ctx.lineTo(x + s, y + 1.6 * s);
        ctx.lineTo(x, y);
      }
      ctx.closePath();
      ctx.fill();
    });
    ctx.restore();
  };

  // Zoom ---------------------------------------------------------------------------------------

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
      var url = src.url + (src.url.indexOf("?") < 0 ? "?" : "&") + "name=" + encodeURIComponent(src.name) +
        "&from=" + st.from + "&to=" + st.to;
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(new Error("HTTP " + r.status)); })
        .then(function (h) {
          if (id !== chart.fetchId || line.zoom == null) return;
          line.zoom = { from: st.from, to: st.to, data: hist(h) };
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

  // Zooming is for the whole page: the charts share their x axis (uPlot syncs the drag
  // across them), so one window, one status line in the toolbar and one reset.
  var groupWin = null;

  function zoomAll(x0, x1) {
    if (groupWin && Math.abs(groupWin.x0 - x0) + Math.abs(groupWin.x1 - x1) < (x1 - x0) * 0.02) return;
    groupWin = { x0: x0, x1: x1 };
    charts.forEach(function (c) { if (c.u) c.zoomTo(x0, x1); });
    zoomStatus();
  }

  function resetAll() {
    groupWin = null;
    charts.forEach(function (c) { c.resetZoom(); });
    zoomStatus();
  }

  // zoomStatus shows "Zoomed to steps a–b" and the reset button in the toolbar.
  function zoomStatus() {
    var from = Infinity, to = -Infinity;
    charts.forEach(function (c) {
      if (!c.win) return;
      from = Math.min(from, c.win.from);
      to = Math.max(to, c.win.to);
    });
    var on = groupWin && from !== Infinity;
    document.querySelectorAll("[data-chart-controls]").forEach(function (box) {
      var z = box.querySelector("[data-chart-zoom]"), hint = box.querySelector("[data-chart-hint]");
      var text = box.querySelector("[data-chart-zoom-text]");
      if (text) text.textContent = on ? "Zoomed to steps " + count(from) + "\u2013" + count(to) : "";
      if (z) z.hidden = !on;
      if (hint) hint.hidden = !!on;
    });
  }

  // Scheduling --------------------------------------------------------------------------------

  function schedule() {
    if (frame) return;
    frame = requestAnimationFrame(function () {
      frame = 0;
      charts.forEach(function (c) { if (c.dirty && c.el.isConnected) c.draw(); });
    });
  }

  function dirtyAll(rebuild) {
    charts.forEach(function (c) {
      if (rebuild && c.u) {
        c.u.destroy();
        c.u = null;
        c.sig = "";
      }
      c.dirty = true;
    });
    schedule();
  }

  // Controls ----------------------------------------------------------------------------------

  function wireControls(root) {
    root.querySelectorAll("[data-chart-controls]").forEach(function (box) {
      var x = box.querySelector('[data-control="x"]');
      var log = box.querySelector('[data-control="log"]');
      var smooth = box.querySelector('[data-control="smooth"]');
      var out = box.querySelector("[data-control-value]");
      var show = function () { if (out) out.textContent = settings.smooth ? settings.smooth.toFixed(2) : "0"; };
      if (x) {
        x.value = settings.x;
        x.addEventListener("change", function () {
          settings.x = x.value;
          saveSettings();
          groupWin = null;
          charts.forEach(function (c) {
            c.win = null;
            c.fetchId++;
            c.pending = 0;
            c.loading(false);
            c.lines.forEach(function (l) { l.zoom = null; });
          });
          dirtyAll(true);
          zoomStatus();
        });
      }
      var resetBtn = box.querySelector("[data-chart-zoom-reset]");
      if (resetBtn) resetBtn.addEventListener("click", resetAll);
      if (log) {
        log.checked = settings.log;
        log.addEventListener("change", function () {
          settings.log = log.checked;
          saveSettings();
          dirtyAll(true);
        });
      }
      if (smooth) {
        smooth.value = String(settings.smooth);
        show();
        smooth.addEventListener("input", function () {
          settings.smooth = Math.max(0, Math.min(0.99, parseFloat(smooth.value) || 0));
          show();
          dirtyAll(false);
        });
        smooth.addEventListener("change", saveSettings);
      }
    });
  }

  // The run page ------------------------------------------------------------------------------

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
    src = new Source(name, name, h, page.historyURL, page.origin);
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
    if (plot) plot.setAttribute("aria-label", name + " by training step");
    var key = fig.querySelector("[data-series]");
    key.setAttribute("data-series", name);
    key.querySelector(".chart-key-label").textContent = name;
    var sw = key.querySelector(".chart-swatch");
    sw.className = "chart-swatch " + DYNAMIC_COLORS[dynamicCount++ % DYNAMIC_COLORS.length];
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
        if (p.seq <= lastSeq) return;
        lastSeq = p.seq;
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
    ended = true;
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
    page = { kind: "run", el: el, historyURL: typeof island.history_url === "string" ? island.history_url : "", origin: started != null ? started : created };
    lastSeq = typeof island.after_seq === "number" ? island.after_seq : 0;
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
      if (page && page.origin == null && msg && Array.isArray(msg.points) && msg.points.length && typeof msg.points[0].at === "number") {
        page.origin = msg.points[0].at;
        sources.forEach(function (s) { s.origin = page.origin; });
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
    page = { kind: "compare", el: el };
    var fig = el.querySelector("[data-chart]");
    var body = el.querySelector("[data-compare-legend]");
    var rowTpl = el.querySelector("template[data-compare-row]");
    if (!fig) return;
    var c = new Chart(fig, "compare");
    c.valueHead = el.querySelector("[data-legend-value-head]");
    var runs = Array.isArray(island.runs) ? island.runs : [];
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
    });
    charts.push(c);
    wireControls(el);
    if (!c.hasData() && c.wait) {
      var text = c.wait.querySelector("[data-chart-wait-text]");
      if (text) text.textContent = "None of these runs recorded " + (island.metric || "this metric") + ".";
      c.el.classList.add("is-empty");
    }
    dirtyAll(false);
  }

  // Set-up ------------------------------------------------------------------------------------

  function reset() {
    charts.forEach(function (c) { c.destroy(); });
    charts = [];
    sources.clear();
    page = null;
    groupWin = null;
    lastSeq = 0;
    dynamicCount = 0;
    ended = false;
  }

  function init() {
    if (typeof uPlot === "undefined") return;
    var run = document.querySelector("[data-run-events]");
    var cmp = document.querySelector("[data-compare]");
    var el = run || cmp;
    if (!el || (page && page.el === el)) return;
    reset();
    if (run) initRun(run);
    else initCompare(cmp);
  }

  if (window.matchMedia) {
    var dark = window.matchMedia("(prefers-color-scheme: dark)");
    if (dark.addEventListener) dark.addEventListener("change", function () { dirtyAll(true); });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
  // A page that arrives through an htmx swap rather than a page load.
  document.addEventListener("htmx:after:swap", init);
})();

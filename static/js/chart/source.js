// Series data: a metric's history from the server (the page's JSON island, or the answer to a
// zoom's request) normalised into column arrays, the points that arrive live after it, and
// what to draw of both.

import { KIND_TEXT, formatValue, unitOf } from "./format.js";

var LIVE_THIN_OVER = 6000; // live points past the island are bucketed above this many
var LIVE_BUCKETS = 2000;

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
export function Source(key, name, h, url, origin) {
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

// fetchWindow asks the server for the series between two steps, at the finest level it
// serves for that window: GET {history_url}?name=&from=&to=. It resolves to the history in
// columns (as hist gives) and rejects when the request fails.
Source.prototype.fetchWindow = function (from, to) {
  var url = this.url + (this.url.indexOf("?") < 0 ? "?" : "&") + "name=" + encodeURIComponent(this.name) +
    "&from=" + from + "&to=" + to;
  return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(function (r) { return r.ok ? r.json() : Promise.reject(new Error("HTTP " + r.status)); })
    .then(hist);
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
export function timeAt(v, step) {
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
export function ema(ys, w) {
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


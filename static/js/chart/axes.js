// Axis ticks for uPlot: where they fall (increments) and how they read, per x-axis mode and
// for linear or log y axes. uPlot is the global of js/uPlot.iife.min.js.

import { compact, count, duration, clock, expo, bytes, trimZeros } from "./format.js";

// Axis tick labels: precision from the tick spacing, "k" for thousands, exponents when the
// whole axis is tiny (learning rates), short forms on a log axis.
export function tickFormatter(unit, log) {
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
export function logFilter(u, splits) {
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

// xTicks is the x axis' labels, increments and spacing for an x-axis mode: "step",
// "relative" (seconds since the start) or "wall" (Unix seconds).
export function xTicks(mode) {
  if (mode === "step") return { values: stepTicks, incrs: STEP_INCRS, space: 70 };
  if (mode === "relative") return { values: relTicks, incrs: REL_INCRS, space: 60 };
  return { values: wallTicks, incrs: wallIncrs, space: 60 };
}

// axisSize is the width of a y axis from its longest label.
export function axisSize(u, values) {
  if (!values) return 40;
  var longest = 0;
  values.forEach(function (s) { longest = Math.max(longest, String(s).length); });
  return Math.max(34, Math.ceil(longest * 6.5) + 16);
}

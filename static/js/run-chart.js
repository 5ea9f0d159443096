// The charts of the run page and the compare page: the entry of the ES modules under
// js/chart/. Loaded as a module (so after the deferred uPlot, whose global it uses) only on
// pages that have charts (views.Page.Charts). No inline code, no eval, and no style attributes
// in markup (uPlot and these modules size and colour things through the CSSOM, which the CSP
// allows), so it runs under the strict CSP. The static package rewrites the relative import
// specifiers to the imported modules' hashed URLs when it hashes the files (static/modules.go).
//
// The modules, each with its own part of the story:
//   chart/pages.js     the run and compare pages: the JSON islands, the live points (SSE),
//                      charts for metrics no chart names, the end of a run
//   chart/source.js    one series: history and live points in columns, what to draw, and
//                      the finer history a zoom asks the server for
//   chart/chart.js     one figure and its uPlot: series, bands, legend, hover, zoom window
//   chart/markers.js   the NaN/±Inf markers
//   chart/controls.js  x-axis mode, log scale, smoothing (remembered), page-wide zoom/reset
//   chart/axes.js      tick positions and labels
//   chart/format.js    numbers and times as the legend writes them
//   chart/colors.js    colours from the stylesheet
//   chart/state.js     what the page's charts share, and the redraw per animation frame
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
//   streams()     how many live runs' event streams the compare page has open

import { initCharts } from "./chart/pages.js";
import { sources, charts, state, dirtyAll } from "./chart/state.js";

window.tunelabCharts = {
  points: function (name) {
    var s = sources.get(String(name));
    return s ? s.count() : 0;
  },
  charts: function () {
    return charts.filter(function (c) { return !c.el.hidden && c.el.isConnected; }).map(function (c) { return c.title; });
  },
  lastSeq: function () { return state.lastSeq; },
  view: function (name) {
    var s = sources.get(String(name));
    if (!s) return null;
    for (var i = 0; i < charts.length; i++) {
      var line = charts[i].lineFor(s);
      if (line) return charts[i].viewOf(line);
    }
    return s.describe(null);
  },
  streams: function () { return state.streams.length; },
  runs: function () {
    return state.page && state.page.kind === "compare" ? Array.from(sources.keys()) : [];
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

// The theme's colours are read when a uPlot is built: a new theme, new uPlots.
if (window.matchMedia) {
  var dark = window.matchMedia("(prefers-color-scheme: dark)");
  if (dark.addEventListener) dark.addEventListener("change", function () { dirtyAll(true); });
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", initCharts);
} else {
  initCharts();
}
// A page that arrives through an htmx swap rather than a page load.
document.addEventListener("htmx:after:swap", initCharts);

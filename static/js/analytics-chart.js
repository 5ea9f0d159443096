// The admin analytics page's chart: page views and visitors per day, drawn with uPlot from
// the JSON in the element's data-analytics-chart (no inline script, so it runs under the CSP).
import { cssVar } from "./chart/colors.js";

function draw(el) {
  var data = JSON.parse(el.getAttribute("data-analytics-chart"));
  var accent = cssVar("--accent") || "#4f46e5";
  var second = cssVar("--success") || "#15803d";
  var grid = cssVar("--border") || "#e4e4ea";
  var text = cssVar("--text-2") || "#4e4e5a";
  var axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
  var opts = {
    width: el.clientWidth,
    height: 240,
    scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(4, max)]; } } },
    axes: [Object.assign({}, axis), Object.assign({ values: function (u, vals) { return vals.map(function (v) { return v === Math.round(v) ? v : ""; }); } }, axis)],
    series: [
      {},
      { label: "Page views", stroke: accent, width: 2, points: { show: true, size: 4 } },
      { label: "Visitors", stroke: second, width: 2, dash: [6, 4], points: { show: false } },
    ],
  };
  var plot = new window.uPlot(opts, [data.days, data.views, data.visitors], el);
  new ResizeObserver(function () {
    plot.setSize({ width: el.clientWidth, height: 240 });
  }).observe(el);
}

document.querySelectorAll("[data-analytics-chart]").forEach(draw);

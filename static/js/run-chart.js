// The run page's live charts. Loaded with `defer` after uPlot, only on pages that have
// charts (views.Page.Charts); no inline code, no eval, and no style attributes in markup
// (uPlot sizes its canvas through the CSSOM, which the CSP allows), so it runs under the
// strict CSP.
//
// How it fits together (views/run_page.templ):
//   - #run-events[data-run-events] holds the SSE connection (hx-sse:connect). htmx 4
//     dispatches each named `metrics` event on it as a DOM event whose detail.data is JSON:
//     {"points":[{"id":1,"name":"loss","step":10,"value":2.31}, ...]}.
//   - each figure[data-chart] is one chart: its legend entries [data-series="loss"] name the
//     metrics it draws (and carry the swatch whose colour the line takes), [data-chart-plot]
//     is where uPlot draws, [data-chart-wait] the placeholder shown until points arrive.
//   - points are kept per metric name, keyed by step. A chart aligns its series on one sorted
//     step index, with null where a metric has no point at a step (eval_loss comes every N
//     steps); spanGaps draws those as one line.
//   - redraws happen at most once per animation frame; charts follow their box's width
//     (ResizeObserver) and take their colours from the CSS variables, so they are redrawn
//     when the colour scheme changes.
//   - unnamed SSE messages swap the live panel (htmx does that); after each swap the
//     header's status badge is copied from the panel's <template data-header-status>.
//   - a `done` event (sent after an ended run's last points; hx-sse:close="done" closes the
//     stream) turns the placeholder of a chart without points into "No metrics were recorded".
//
// window.tunelabCharts.points(name) returns how many points the page holds for a metric,
// for tests.
(function () {
  "use strict";

  var WAIT_EMPTY = "No metrics were recorded for this run.";
  var NO_DATA_AFTER_MS = 2500; // without a `done` event: an ended run with no points by then has none

  var store = Object.create(null); // metric name -> Map(step -> value)
  var charts = [];
  var frame = 0;
  var source = null;

  window.tunelabCharts = {
    points: function (name) {
      var m = store[name];
      return m ? m.size : 0;
    }
  };

  // Formatting -----------------------------------------------------------------------------

  // trimZeros turns "2.3100" into "2.31" and "5.00e-4" into "5e-4".
  function trimZeros(s) {
    return s.replace(/(\.\d*?)0+(e|$)/, "$1$2").replace(/\.(e|$)/, "$1");
  }

  function expo(v, digits) {
    return trimZeros(v.toExponential(digits)).replace("e-", "e\u2212").replace("e+", "e");
  }

  // A value in the legend: four significant digits, exponents for tiny values, thousands
  // separators for large ones.
  function formatValue(v) {
    if (v == null || !isFinite(v)) return "\u2013";
    var a = Math.abs(v);
    if (a === 0) return "0";
    if (a >= 10000) return Math.round(v).toLocaleString("en");
    if (a < 0.001) return expo(v, 2);
    return trimZeros(v.toPrecision(4));
  }

  // Axis tick labels: precision from the tick spacing, "k" for thousands, exponents when the
  // whole axis is tiny (learning rates).
  function tickValues(u, splits) {
    var max = 0;
    var incr = splits.length > 1 ? Math.abs(splits[1] - splits[0]) : 1;
    splits.forEach(function (v) { max = Math.max(max, Math.abs(v)); });
    return splits.map(function (v) {
      if (v == null) return "";
      if (v === 0) return "0";
      if (max >= 10000) return trimZeros((v / 1000).toFixed(incr >= 1000 ? 0 : 1)) + "k";
      if (max < 0.01) return expo(v, 2);
      var d = Math.max(0, Math.min(6, -Math.floor(Math.log10(incr) + 1e-9)));
      return trimZeros(v.toFixed(d));
    });
  }

  function stepValues(u, splits) {
    return splits.map(function (v) {
      return v >= 10000 ? trimZeros((v / 1000).toFixed(1)) + "k" : String(v);
    });
  }

  // Width of the y axis from its longest label.
  function axisSize(u, values) {
    if (!values) return 40;
    var longest = 0;
    values.forEach(function (s) { longest = Math.max(longest, String(s).length); });
    return Math.max(34, Math.ceil(longest * 6.5) + 16);
  }

  // Colours ---------------------------------------------------------------------------------

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  // withAlpha turns "rgb(r, g, b)" into "rgba(r, g, b, a)", for the fill under a line.
  function withAlpha(color, a) {
    var m = /^rgba?\(([^)]+)\)$/.exec(color);
    if (!m) return color;
    var parts = m[1].split(",").slice(0, 3);
    return "rgba(" + parts.join(",") + "," + a + ")";
  }

  // Charts ----------------------------------------------------------------------------------

  function setupChart(el) {
    var chart = {
      id: el.getAttribute("data-chart"),
      el: el,
      plot: el.querySelector("[data-chart-plot]"),
      wait: el.querySelector("[data-chart-wait]"),
      stepLabel: el.querySelector("[data-legend-step]"),
      main: el.classList.contains("chart-main"),
      series: [],
      steps: [],
      known: new Set(),
      u: null,
      dirty: false,
      zoomed: false,
      hover: null
    };
    el.querySelectorAll("[data-series]").forEach(function (key) {
      chart.series.push({
        name: key.getAttribute("data-series"),
        label: key.querySelector(".chart-key-label").textContent,
        swatch: key.querySelector(".chart-swatch"),
        value: key.querySelector("[data-legend-value]")
      });
    });
    if (window.ResizeObserver && chart.plot) {
      new ResizeObserver(function () { resize(chart); }).observe(chart.plot);
    }
    return chart;
  }

  function hasSeries(chart, name) {
    for (var i = 0; i < chart.series.length; i++) {
      if (chart.series[i].name === name) return true;
    }
    return false;
  }

  // insertStep keeps the chart's step index sorted; steps nearly always arrive in order, so
  // the common case is one comparison and a push.
  function insertStep(chart, step) {
    if (chart.known.has(step)) return;
    chart.known.add(step);
    var s = chart.steps;
    if (!s.length || s[s.length - 1] < step) {
      s.push(step);
      return;
    }
    var lo = 0, hi = s.length;
    while (lo < hi) {
      var mid = (lo + hi) >> 1;
      if (s[mid] < step) lo = mid + 1; else hi = mid;
    }
    s.splice(lo, 0, step);
  }

  function columns(chart) {
    var data = [chart.steps];
    chart.series.forEach(function (s) {
      var m = store[s.name];
      data.push(chart.steps.map(function (step) {
        return m && m.has(step) ? m.get(step) : null;
      }));
    });
    return data;
  }

  function build(chart, data) {
    var axisColor = cssVar("--text-3") || "#6b6b78";
    var gridColor = cssVar("--border") || "#e4e4ea";
    var font = "11px " + getComputedStyle(document.body).fontFamily;
    var axis = {
      stroke: axisColor,
      font: font,
      grid: { stroke: gridColor, width: 1 },
      ticks: { stroke: gridColor, width: 1, size: 4 },
      gap: 4
    };
    var series = [{ label: "Step" }];
    chart.series.forEach(function (s, i) {
      var color = getComputedStyle(s.swatch).backgroundColor;
      var sparse = s.name.indexOf("eval_") === 0;
      series.push({
        label: s.label,
        stroke: color,
        width: chart.main ? 2 : 1.5,
        spanGaps: true,
        fill: i === 0 && !sparse ? withAlpha(color, 0.08) : undefined,
        points: sparse ? { show: true, size: 5, fill: color } : { show: false }
      });
    });
    var opts = {
      width: Math.max(100, chart.plot.clientWidth),
      height: Math.max(80, chart.plot.clientHeight),
      legend: { show: false },
      padding: [10, 12, 0, 0],
      scales: { x: { time: false } },
      cursor: {
        sync: { key: "tunelab-run" },
        drag: { x: true, y: false },
        points: { size: 7 }
      },
      axes: [
        Object.assign({}, axis, {
          size: 30,
          values: stepValues,
          incrs: [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000, 20000, 50000, 100000, 200000, 500000, 1000000]
        }),
        Object.assign({}, axis, { values: tickValues, size: axisSize, space: chart.main ? 30 : 20 })
      ],
      series: series,
      hooks: {
        setCursor: [function (u) {
          chart.hover = u.cursor.idx == null ? null : u.cursor.idx;
          legend(chart);
        }],
        setSelect: [function (u) {
          if (u.select.width > 0) chart.zoomed = true;
        }]
      }
    };
    chart.u = new uPlot(opts, data, chart.plot);
    chart.u.over.addEventListener("dblclick", function () { chart.zoomed = false; });
  }

  function resize(chart) {
    if (!chart.u) return;
    var w = chart.plot.clientWidth, h = chart.plot.clientHeight;
    if (w > 0 && h > 0 && (w !== chart.u.width || h !== chart.u.height)) {
      chart.u.setSize({ width: w, height: h });
    }
  }

  // legend shows each series' value at the hovered step, or its latest value.
  function legend(chart) {
    var data = chart.u ? chart.u.data : null;
    if (!data) return;
    var idx = chart.hover;
    chart.series.forEach(function (s, i) {
      var ys = data[i + 1], v = null;
      if (idx != null) {
        v = ys[idx];
      } else {
        for (var j = ys.length - 1; j >= 0; j--) {
          if (ys[j] != null) { v = ys[j]; break; }
        }
      }
      s.value.textContent = formatValue(v);
    });
    if (chart.stepLabel) {
      var step = idx != null ? data[0][idx] : data[0][data[0].length - 1];
      chart.stepLabel.textContent = step == null ? "" : "step " + step.toLocaleString("en");
    }
  }

  function draw(chart) {
    chart.dirty = false;
    if (!chart.steps.length) return;
    var data = columns(chart);
    if (!chart.u) {
      chart.el.hidden = false;
      chart.el.classList.add("is-ready");
      if (chart.wait) chart.wait.hidden = true;
      build(chart, data);
    } else {
      chart.u.setData(data, !chart.zoomed);
    }
    legend(chart);
  }

  function schedule() {
    if (frame) return;
    frame = requestAnimationFrame(function () {
      frame = 0;
      charts.forEach(function (c) { if (c.dirty) draw(c); });
    });
  }

  function ingest(points) {
    if (!Array.isArray(points)) return;
    points.forEach(function (p) {
      if (!p || typeof p.name !== "string" || typeof p.step !== "number" || typeof p.value !== "number") return;
      var m = store[p.name] || (store[p.name] = new Map());
      m.set(p.step, p.value);
      charts.forEach(function (c) {
        if (hasSeries(c, p.name)) {
          insertStep(c, p.step);
          c.dirty = true;
        }
      });
    });
    schedule();
  }

  // Rebuild every chart with the current colours (the colour scheme changed).
  function restyle() {
    charts.forEach(function (c) {
      if (!c.u) return;
      c.u.destroy();
      c.u = null;
      c.dirty = true;
    });
    schedule();
  }

  // The live panel ---------------------------------------------------------------------------

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

  // markEmpty replaces "Waiting for the first metrics…" once no more can come.
  function markEmpty() {
    charts.forEach(function (c) {
      var text = c.wait && c.wait.querySelector("[data-chart-wait-text]");
      if (c.steps.length || !text) return;
      text.textContent = WAIT_EMPTY;
      c.el.classList.add("is-empty");
    });
  }

  // Set-up ------------------------------------------------------------------------------------

  function init() {
    var el = document.querySelector("[data-run-events]");
    if (!el || el === source || typeof uPlot === "undefined") return;
    source = el;
    charts = [];
    Object.keys(store).forEach(function (k) { delete store[k]; });
    document.querySelectorAll("[data-chart]").forEach(function (c) { charts.push(setupChart(c)); });

    el.addEventListener("metrics", function (e) {
      var msg;
      try {
        msg = JSON.parse(e.detail && e.detail.data);
      } catch (err) {
        return; // not JSON: nothing to draw
      }
      ingest(msg && msg.points);
    });
    el.addEventListener("htmx:after:swap", afterPanel);
    // The server sends `done` after the last points of an ended run (hx-sse:close="done").
    el.addEventListener("done", markEmpty);
  }

  if (window.matchMedia) {
    var dark = window.matchMedia("(prefers-color-scheme: dark)");
    if (dark.addEventListener) dark.addEventListener("change", restyle);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
  // A run page that arrives through an htmx swap rather than a page load.
  document.addEventListener("htmx:after:swap", init);
})();

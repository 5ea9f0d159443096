// The chart controls ([data-chart-controls]): the x axis (step, relative time, wall time),
// log scale and smoothing, which apply to every chart of the page and are remembered in
// localStorage; and the page's zoom, with its status line and reset button (always there,
// disabled while the charts show the whole run).

import { count } from "./format.js";
import { charts, state, dirtyAll } from "./state.js";

var SETTINGS_KEY = "tunelab.charts";

// settings are the controls' values, read by every chart as it draws: x "step" | "relative" |
// "wall", log, smooth (the EMA weight, 0 for none).
export var settings = loadSettings();

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

// Zooming is for the whole page: the charts share their x axis (uPlot syncs the drag
// across them), so one window, one status line in the toolbar and one reset.
export function zoomAll(x0, x1) {
  var win = state.groupWin;
  if (win && Math.abs(win.x0 - x0) + Math.abs(win.x1 - x1) < (x1 - x0) * 0.02) return;
  state.groupWin = { x0: x0, x1: x1 };
  charts.forEach(function (c) { if (c.u) c.zoomTo(x0, x1); });
  zoomStatus();
}

export function resetAll() {
  // The reset button is about to be disabled: its focus goes to the first chart instead
  // of falling to the page.
  var focused = document.activeElement;
  var fromButton = focused && focused.hasAttribute && focused.hasAttribute("data-chart-zoom-reset");
  state.groupWin = null;
  charts.forEach(function (c) { c.resetZoom(); });
  zoomStatus();
  if (fromButton) {
    var first = charts.filter(function (c) { return c.plot && !c.el.hidden && c.el.isConnected; })[0];
    if (first) first.plot.focus();
  }
}

// zoomStatus says "Zoomed to steps a–b" in the toolbar and enables its reset button.
function zoomStatus() {
  var from = Infinity, to = -Infinity;
  charts.forEach(function (c) {
    if (!c.win) return;
    from = Math.min(from, c.win.from);
    to = Math.max(to, c.win.to);
  });
  var on = state.groupWin && from !== Infinity;
  document.querySelectorAll("[data-chart-controls]").forEach(function (box) {
    var z = box.querySelector("[data-chart-zoom]"), btn = box.querySelector("[data-chart-zoom-reset]");
    var text = box.querySelector("[data-chart-zoom-text]");
    if (text) text.textContent = on ? "Zoomed to steps " + count(from) + "\u2013" + count(to) : "";
    if (z) z.classList.toggle("is-zoomed", !!on);
    if (btn) {
      btn.disabled = !on;
      btn.setAttribute("aria-disabled", on ? "false" : "true");
    }
  });
}

// wireControls sets the controls under root to the remembered settings and makes them apply.
export function wireControls(root) {
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
        // A window in the old x units means nothing in the new ones.
        state.groupWin = null;
        charts.forEach(function (c) {
          c.win = null;
          c.fetchId++;
          c.pending = 0;
          c.loading(false);
          c.lines.forEach(function (l) { l.zoom = null; });
          c.label();
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

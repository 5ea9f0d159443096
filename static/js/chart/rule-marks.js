// Metric rule markers: each rule that fired on the run (the run page lists them, each
// li[data-rule-mark] with its step and time) is drawn on every chart as a solid amber line
// with a flag at the top, at its step (time modes: at when it fired). A firing without a
// step (stale metrics) shows only on the absolute time axis.

import { cssVar } from "./colors.js";

var marks = null;

function ruleMarks() {
  if (marks) return marks;
  marks = [];
  document.querySelectorAll("[data-rule-mark]").forEach(function (el) {
    var step = el.dataset.step === "" ? null : Number(el.dataset.step);
    var at = Number(el.dataset.at);
    marks.push({ step: step, at: at });
  });
  return marks;
}

// drawRuleMarks is called from a chart's draw hook with the x-axis mode.
export function drawRuleMarks(u, mode) {
  var list = ruleMarks();
  if (!list.length) return;
  var ctx = u.ctx, box = u.bbox, r = uPlot.pxRatio || 1;
  var color = cssVar("--warn") || "#b45309";
  ctx.save();
  ctx.beginPath();
  ctx.rect(box.left, box.top, box.width, box.height);
  ctx.clip();
  list.forEach(function (m) {
    var v = mode === "step" ? m.step : mode === "relative" ? null : m.at / 1000;
    if (v == null) return;
    var x = Math.round(u.valToPos(v, "x", true));
    if (x < box.left - 1 || x > box.left + box.width + 1) return;
    ctx.strokeStyle = color;
    ctx.lineWidth = 2 * r;
    ctx.beginPath();
    ctx.moveTo(x, box.top);
    ctx.lineTo(x, box.top + box.height);
    ctx.stroke();
    ctx.fillStyle = color;
    ctx.fillRect(x, box.top, 9 * r, 6 * r);
  });
  ctx.restore();
}

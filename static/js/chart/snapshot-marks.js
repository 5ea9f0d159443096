// Snapshot markers: each snapshot the checkpoint leaderboard lists (tr[data-snapshot-mark]
// with its step and save time) is drawn on every chart as a thin dotted line with a small
// triangle on the x axis, at its step (time modes: when it was saved). Drawn like the rule
// markers (rule-marks.js); read on every draw, since snapshots arrive while a run runs.

import { cssVar } from "./colors.js";

function snapshotMarks() {
  var out = [];
  document.querySelectorAll("[data-snapshot-mark]").forEach(function (el) {
    out.push({ step: Number(el.dataset.markStep), at: Number(el.dataset.markAt) });
  });
  return out;
}

// drawSnapshotMarks is called from a chart's draw hook with the x-axis mode.
export function drawSnapshotMarks(u, mode) {
  var list = snapshotMarks();
  if (!list.length || mode === "relative") return;
  var ctx = u.ctx, box = u.bbox, r = uPlot.pxRatio || 1;
  var color = cssVar("--accent") || "#4f46e5";
  var bottom = box.top + box.height;
  ctx.save();
  ctx.beginPath();
  ctx.rect(box.left - 6 * r, box.top, box.width + 12 * r, box.height);
  ctx.clip();
  list.forEach(function (m) {
    var v = mode === "step" ? m.step : m.at / 1000;
    var x = Math.round(u.valToPos(v, "x", true));
    if (x < box.left - 1 || x > box.left + box.width + 1) return;
    ctx.strokeStyle = color;
    ctx.globalAlpha = 0.45;
    ctx.lineWidth = r;
    ctx.setLineDash([2 * r, 3 * r]);
    ctx.beginPath();
    ctx.moveTo(x, box.top);
    ctx.lineTo(x, bottom);
    ctx.stroke();
    ctx.globalAlpha = 1;
    ctx.setLineDash([]);
    ctx.fillStyle = color;
    ctx.beginPath();
    ctx.moveTo(x - 5 * r, bottom);
    ctx.lineTo(x + 5 * r, bottom);
    ctx.lineTo(x, bottom - 7 * r);
    ctx.closePath();
    ctx.fill();
  });
  ctx.restore();
}

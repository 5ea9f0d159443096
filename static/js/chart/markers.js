// NaN and ±Inf markers: they have no y, so they are drawn over the plot at their x rather than
// as points of a series. A mark is {x, kind: "nan"|"inf"|"-inf", step, line}.

import { cssVar } from "./colors.js";

// markNear is the mark within 6 px of the cursor's left position, the nearest; null if none.
export function markNear(u, marks, left) {
  var found = null, best = 6;
  for (var i = 0; i < marks.length; i++) {
    var d = Math.abs(u.valToPos(marks[i].x, "x") - left);
    if (d < best) {
      best = d;
      found = marks[i];
    }
  }
  return found;
}

// drawMarks puts a red marker at each NaN/Inf: a dashed line through the plot, and a
// triangle at the top (NaN, +Inf) or bottom (-Inf). One per pixel column at most.
export function drawMarks(u, marks) {
  if (!marks.length) return;
  var ctx = u.ctx, box = u.bbox, r = uPlot.pxRatio || 1;
  var color = cssVar("--danger") || "#c52b2b";
  var seen = new Set();
  ctx.save();
  ctx.beginPath();
  ctx.rect(box.left, box.top, box.width, box.height);
  ctx.clip();
  marks.forEach(function (m) {
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
}

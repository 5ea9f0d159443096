// What the charts of one page share: the series, the charts, the page's own facts, the zoom
// window, and the one redraw per animation frame. The arrays and objects are kept and
// emptied on a new page, never replaced, so every module holds the same ones.

export var sources = new Map(); // key -> Source (metric name on the run page, run id on compare)
export var charts = []; // Chart, in page order

export var state = {
  page: null, // {kind: "run"|"compare", el, historyURL?, origin?}
  lastSeq: 0, // the highest point seq held (run page)
  ended: false, // the run has ended and sent everything: placeholders stop waiting
  groupWin: null, // the page's zoom window {x0, x1} in x-axis units, null when not zoomed
  dynamicCount: 0, // charts cloned for metrics no chart names, for their colours
  streams: [] // the compare page's EventSources of live runs, closed with the page
};

var frame = 0;

// schedule redraws the charts marked dirty, once, on the next animation frame.
export function schedule() {
  if (frame) return;
  frame = requestAnimationFrame(function () {
    frame = 0;
    charts.forEach(function (c) { if (c.dirty && c.el.isConnected) c.draw(); });
  });
}

// dirtyAll redraws every chart; rebuild makes new uPlots (a setting or the theme changed).
export function dirtyAll(rebuild) {
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

// anyData says whether any series of the page has a point.
export function anyData() {
  for (var s of sources.values()) if (s.hasData()) return true;
  return false;
}

// resetState forgets the previous page: its charts are destroyed first.
export function resetState() {
  charts.forEach(function (c) { c.destroy(); });
  charts.length = 0;
  sources.clear();
  state.page = null;
  state.groupWin = null;
  state.lastSeq = 0;
  state.dynamicCount = 0;
  state.ended = false;
  state.streams.forEach(function (es) { es.close(); });
  state.streams.length = 0;
}

// tunelab's first-party analytics. The layout loads this file only for visitors who accepted
// analytics (the server also refuses events without that consent in the signed cookie). It
// sets no cookie and writes no storage; each event goes with navigator.sendBeacon to this
// server's /analytics/event:
//   - a page view when the page loads (path and the referring page),
//   - a click on any element marked data-track="name",
//   - on leaving the page, how far down it was scrolled, in percent.
(function () {
  "use strict";
  if (!navigator.sendBeacon) return;

  function send(event) {
    event.p = location.pathname;
    navigator.sendBeacon("/analytics/event", JSON.stringify(event));
  }

  send({ k: "view", r: document.referrer });

  document.addEventListener("click", function (e) {
    var el = e.target instanceof Element ? e.target.closest("[data-track]") : null;
    if (el) send({ k: "click", t: el.getAttribute("data-track") });
  }, true);

  var deepest = 0;
  function measure() {
    var doc = document.documentElement;
    var seen = window.scrollY + window.innerHeight;
    var pct = doc.scrollHeight > 0 ? Math.round(100 * seen / doc.scrollHeight) : 100;
    deepest = Math.max(deepest, Math.min(100, pct));
  }
  measure();
  window.addEventListener("scroll", measure, { passive: true });

  var reported = false;
  function leave() {
    if (reported) return;
    reported = true;
    send({ k: "scroll", d: deepest });
  }
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") leave();
  });
  window.addEventListener("pagehide", leave);
})();

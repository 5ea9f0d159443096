// tunelab's own JavaScript. Loaded with `defer` from the layout; no inline scripts, no eval,
// and no inline styles (state is shown with classes from static/css/app/), so it runs under a strict CSP.
//
// It does these things:
//   1. on a phone the main nav is one row that scrolls sideways: the current item is scrolled
//      into view on load, and the row's data-more says on which side more items wait, so the
//      stylesheet fades that edge (a hint that "Settings" is there, not cut off);
//   2. toasts in #toasts close after about 6 seconds, or at once with their × button;
//   3. when htmx cannot reach the server (`htmx:error`: network failure, timeout), it adds an
//      error toast so the person knows their click did not go through;
//   4. dataset upload forms (form[data-upload]) are sent with XMLHttpRequest so a progress
//      bar can follow the upload; without JavaScript they are plain multipart POSTs;
//   5. confirmations (details.confirm, such as "Delete…") close with Escape, and focus goes
//      back to the button that opened them; a live update (htmx morph) keeps one open;
//   6. copy buttons ([data-copy-target]) copy the text of the element they name.
//
// Focus after a form re-renders needs no code here: htmx 4 focuses the [autofocus] element of
// swapped-in content, and the views put autofocus on the first field with an error.
(function () {
  "use strict";

  // Centre the current nav item when the nav overflows (only the phone layout does). Only the
  // nav's own scrollLeft changes, so the page itself never jumps.
  var nav = document.querySelector("[data-nav-scroll]");
  if (!nav) return;
  var current = nav.querySelector('[aria-current="page"]');
  if (current && nav.scrollWidth > nav.clientWidth) {
    nav.scrollLeft = current.offsetLeft - (nav.clientWidth - current.offsetWidth) / 2;
  }

  // Mark the sides that hold more items: "left", "right", "left right", or none.
  function markMore() {
    var more = [];
    if (nav.scrollLeft > 1) more.push("left");
    if (nav.scrollLeft + nav.clientWidth < nav.scrollWidth - 1) more.push("right");
    if (more.length) nav.setAttribute("data-more", more.join(" "));
    else nav.removeAttribute("data-more");
  }
  markMore();
  nav.addEventListener("scroll", markMore, { passive: true });
  window.addEventListener("resize", markMore);
})();

(function () {
  "use strict";

  var TOAST_MS = 6000;
  var NETWORK_ERROR = "Network error: check your connection and try again.";
  var region = document.getElementById("toasts");
  if (!region) return;

  // Fade a toast out, then remove it.
  function dismiss(toast) {
    if (!toast.isConnected || toast.classList.contains("is-leaving")) return;
    toast.classList.add("is-leaving");
    setTimeout(function () { toast.remove(); }, 200);
  }

  // Close a toast after TOAST_MS, waiting while the pointer or keyboard focus is on it.
  function schedule(toast) {
    if (toast.dataset.scheduled) return;
    toast.dataset.scheduled = "1";
    (function wait() {
      setTimeout(function () {
        if (toast.matches(":hover, :focus-within")) wait();
        else dismiss(toast);
      }, TOAST_MS);
    })();
  }

  function scheduleAll() {
    region.querySelectorAll(".toast").forEach(schedule);
  }

  // The × button on any toast, including ones the server swaps in later.
  region.addEventListener("click", function (e) {
    var button = e.target.closest(".toast-close");
    if (button) dismiss(button.closest(".toast"));
  });

  // Toasts rendered with the page, and toasts added later (htmx out-of-band swaps, or below).
  scheduleAll();
  new MutationObserver(scheduleAll).observe(region, { childList: true });

  // The "alert" icon of views/components (a circle with "!"), as SVG elements.
  function alertIcon() {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    var attrs = { "class": "toast-icon", viewBox: "0 0 24 24", fill: "none", stroke: "currentColor",
      "stroke-width": "2", "stroke-linecap": "round", "stroke-linejoin": "round", "aria-hidden": "true" };
    Object.keys(attrs).forEach(function (k) { svg.setAttribute(k, attrs[k]); });
    var circle = document.createElementNS(ns, "circle");
    circle.setAttribute("cx", "12");
    circle.setAttribute("cy", "12");
    circle.setAttribute("r", "10");
    var mark = document.createElementNS(ns, "path");
    mark.setAttribute("d", "M12 8v4M12 16h.01");
    svg.append(circle, mark);
    return svg;
  }

  // Build the same markup as views.ToastView, with DOM calls rather than HTML strings.
  function addErrorToast(message) {
    var existing = region.querySelectorAll(".toast-error .toast-message");
    for (var i = 0; i < existing.length; i++) {
      if (existing[i].textContent === message) return; // one is enough
    }
    var toast = document.createElement("div");
    toast.className = "toast toast-error";
    toast.setAttribute("role", "alert");
    toast.dataset.testid = "toast";

    var icon = alertIcon();

    var text = document.createElement("p");
    text.className = "toast-message";
    text.textContent = message;

    var close = document.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", "Dismiss notification");
    close.textContent = "\u00D7";

    toast.append(icon, text, close);
    region.append(toast);
  }

  // htmx 4 event names are colon style; `htmx:error` means the request never got an answer.
  document.addEventListener("htmx:error", function () {
    addErrorToast(NETWORK_ERROR);
  });

  // Other scripts (the upload below) ask for an error toast with this event.
  document.addEventListener("tunelab:error", function (e) {
    addErrorToast(e.detail || NETWORK_ERROR);
  });
})();

(function () {
  "use strict";

  var FAILED = "The upload failed on the server's side. Please try again in a moment.";
  var NETWORK_ERROR = "Network error: check your connection and try again.";

  function toast(message) {
    document.dispatchEvent(new CustomEvent("tunelab:error", { detail: message }));
  }

  // Show the progress bar at pct (0..100) with its label (the percentage, or text such as
  // "Checking…"); pct null hides both again.
  function setProgress(form, pct, text) {
    var bar = form.querySelector("progress");
    var label = form.querySelector("[data-upload-percent]");
    if (bar) { bar.hidden = pct === null; bar.value = pct || 0; }
    if (label) { label.hidden = pct === null; label.textContent = text || pct + "%"; }
  }

  function setBusy(form, busy) {
    form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = busy; });
    form.setAttribute("aria-busy", busy ? "true" : "false");
  }

  // Swap in the #upload-form of a full page the server answered with (the file was refused:
  // its problems, or the error beside the file field), then focus its [autofocus] element.
  // Returns false when the answer holds no such form.
  function replaceForm(form, html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var fresh = doc.getElementById("upload-form");
    if (!fresh) return false;
    form.replaceWith(fresh);
    var target = fresh.querySelector("[autofocus]");
    if (target) target.focus();
    return true;
  }

  // One listener for every upload form, so a swapped-in form needs no re-binding.
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (!(form instanceof HTMLFormElement) || !form.matches("form[data-upload]")) return;
    if (!window.FormData || !window.DOMParser) return; // let the browser post it
    e.preventDefault();
    if (form.getAttribute("aria-busy") === "true") return;

    var xhr = new XMLHttpRequest();
    xhr.open(form.method || "post", form.action);
    xhr.upload.onprogress = function (ev) {
      if (ev.lengthComputable) setProgress(form, Math.round((ev.loaded / ev.total) * 100));
    };
    // All sent: the server now reads every line before it answers.
    xhr.upload.onload = function () { setProgress(form, 100, "Checking\u2026"); };
    xhr.onload = function () {
      // A 303 to the new dataset (or elsewhere), followed by XHR: go there.
      if (xhr.responseURL && xhr.responseURL !== form.action) {
        window.location.assign(xhr.responseURL);
        return;
      }
      setBusy(form, false);
      if ((xhr.status === 422 || xhr.status === 413 || xhr.status === 429) && replaceForm(form, xhr.responseText)) return;
      setProgress(form, null);
      toast(xhr.status >= 500 ? FAILED : "The upload was refused (" + xhr.status + "). Please try again.");
    };
    xhr.onerror = function () {
      setBusy(form, false);
      setProgress(form, null);
      toast(NETWORK_ERROR);
    };
    setBusy(form, true);
    setProgress(form, 0);
    xhr.send(new FormData(form));
  });
})();

(function () {
  "use strict";

  // A snapshot's "Delete…" button (views/snapshots.templ) opens the page's one confirmation
  // dialog as a modal: the dialog lives outside the live panel, which the SSE stream
  // replaces, so it stays open while the run goes on. The button carries the form's action
  // and the step to name; Escape, or "Keep it" (method=dialog), closes it unsent.
  document.addEventListener("click", function (e) {
    var button = e.target.closest("[data-snapshot-delete]");
    if (!button) return;
    var dialog = document.getElementById("snapshot-delete-dialog");
    if (!dialog || typeof dialog.showModal !== "function") return;
    dialog.querySelector("[data-snapshot-delete-form]").setAttribute("action", button.getAttribute("data-snapshot-delete"));
    dialog.querySelector("[data-snapshot-delete-step]").textContent = button.getAttribute("data-snapshot-step");
    dialog.showModal();
  });
  // Escape closes the open confirmation that holds focus (or the last one opened) and
  // puts focus back on its button.
  document.addEventListener("keydown", function (e) {
    if (e.key !== "Escape" || e.defaultPrevented) return;
    var open = document.activeElement && document.activeElement.closest("details.confirm[open]");
    if (!open) {
      var all = document.querySelectorAll("details.confirm[open]");
      open = all.length ? all[all.length - 1] : null;
    }
    if (!open) return;
    e.preventDefault();
    open.removeAttribute("open");
    var summary = open.querySelector("summary");
    if (summary) summary.focus();
  });

  // A live update morphs the run page in place: an element the person opened (a
  // confirmation) stays open, whatever the server's copy says.
  if (window.htmx && htmx.registerExtension) {
    htmx.registerExtension("tunelab-keep-open", {
      htmx_before_morph_attr: function (elt, detail) {
        if (detail && detail.attrName === "open" && (elt.tagName === "DETAILS" || elt.tagName === "DIALOG")) return false;
      }
    });
  }
})();

(function () {
  "use strict";

  // [data-copy-target="id"] copies the text of #id, then says so for a moment.
  document.addEventListener("click", function (e) {
    var button = e.target.closest && e.target.closest("[data-copy-target]");
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-copy-target"));
    if (!source || !navigator.clipboard) return;
    var text = (source.value !== undefined ? source.value : source.textContent).trim();
    var label = button.querySelector("[data-copy-label]") || button;
    var before = label.textContent;
    navigator.clipboard.writeText(text).then(function () {
      label.textContent = "Copied";
      button.classList.add("is-copied");
      setTimeout(function () { label.textContent = before; button.classList.remove("is-copied"); }, 2000);
    }, function () {
      document.dispatchEvent(new CustomEvent("tunelab:error", { detail: "Could not copy; select the text and copy it by hand." }));
    });
  });

  // Copy buttons are hidden without JavaScript (they would do nothing); show them.
  document.querySelectorAll("[data-copy-target][hidden]").forEach(function (b) { b.hidden = false; });
})();

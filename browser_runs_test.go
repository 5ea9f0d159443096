package main

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestBrowserRun: sample dataset -> run form -> a real run on the local backend, watched
// live: the progress bar and the loss chart move, then succeeded and a snapshot to download.
func TestBrowserRun(t *testing.T) {
	findChromium(t)
	env := runEnv(t)
	addr, _ := startServerWith(t, env, t.TempDir())
	b := newBrowser(t, "http://"+addr)
	b.desktop()
	b.signUpInBrowser("runner@example.com", "correct horse battery staple")

	b.open("/datasets", http.StatusOK)
	b.do("use the chat sample", chromedp.Click(chromedp.CSS(`[data-testid=sample-chat] button, button[data-testid=sample-chat]`), chromedp.NodeVisible))
	b.waitFor("the sample's page", `/^\/datasets\/\d+$/.test(location.pathname)`)

	b.open("/runs/new", http.StatusOK)
	b.waitFor("the run form", has(`form [name=epochs]`)+" && "+htmxReady)
	b.checkClean("run form")
	b.screenshot("20-run-form")
	// A shorter run than the default so the test stays quick; everything else as offered.
	b.do("set epochs", chromedp.SetValue(chromedp.CSS(`form [name=epochs]`), "15", chromedp.NodeVisible))
	b.do("start the run", chromedp.Click(chromedp.CSS(`[data-testid=start-run]`), chromedp.NodeVisible))
	b.waitFor("the run page", `/^\/runs\/\d+$/.test(location.pathname) && `+has(`[data-testid=run-live-panel]`))

	// Live: the panel is swapped in over SSE with progress, and the chart gets points.
	b.waitForWithin("training under way", `document.querySelector("[data-testid=run-live-panel]").dataset.status === "running" &&
		window.tunelabCharts && window.tunelabCharts.points("loss") > 0 &&
		!/^[—-]?$/.test(document.querySelector("[data-testid=live-progress]").textContent.trim())`, 60*time.Second)
	midPoints := eval[int](b, `window.tunelabCharts.points("loss")`)
	midProgress := b.text(`[data-testid=live-progress]`)
	b.screenshot("21-run-live")

	// Live updates morph the page in place: an open confirmation stays open and keeps focus
	// while the progress moves; Escape closes it and focus returns to its button.
	eval[bool](b, `window.samePage = true`)
	b.do("open the cancel confirmation", chromedp.Click(chromedp.CSS(`#run-cancel-open`), chromedp.NodeVisible))
	b.do("focus its button", chromedp.Focus(chromedp.CSS(`#run-cancel-open`)))
	openedAt := b.text(`[data-testid=live-progress]`)
	b.waitForWithin("a live update", `document.querySelector("[data-testid=live-progress]").textContent !== `+strconv.Quote(openedAt), 30*time.Second)
	if !eval[bool](b, `document.querySelector("#run-cancel").open && document.activeElement && document.activeElement.id === "run-cancel-open"`) {
		t.Error("a live update closed the cancel confirmation or moved focus off its button")
	}
	if !eval[bool](b, `document.querySelector("[data-testid=log-tail]").getAttribute("role") === "log"`) {
		t.Error("the log tail is not a role=log region")
	}
	// Focus inside the live panel survives an update too.
	b.do("focus the log", chromedp.Focus(chromedp.CSS(`[data-testid=log-tail]`)))
	logAt := b.text(`[data-testid=live-progress]`)
	b.waitForWithin("another live update", `document.querySelector("[data-testid=live-progress]").textContent !== `+strconv.Quote(logAt), 30*time.Second)
	if !eval[bool](b, `document.activeElement === document.querySelector("[data-testid=log-tail]")`) {
		t.Error("a live update moved focus off the log tail")
	}
	b.do("back to the confirmation", chromedp.Focus(chromedp.CSS(`#run-cancel-open`)))
	b.do("press Escape", chromedp.KeyEvent(kb.Escape))
	if !eval[bool](b, `!document.querySelector("#run-cancel").open && document.activeElement.id === "run-cancel-open"`) {
		t.Error("Escape did not close the confirmation, or focus did not return to its button")
	}

	b.waitForWithin("the run to succeed", `document.querySelector("[data-testid=run-live-panel]").dataset.status === "succeeded"`, 2*time.Minute)
	// The header follows the status without a reload: Cancel goes, Retry comes, and the
	// polite live region names the new status.
	b.waitFor("the header's actions to follow", `window.samePage === true && `+has(`#run-actions [data-testid=retry]`)+` && !document.querySelector("#run-actions [data-testid=cancel]")`)
	if got := b.text(`[data-testid=run-announce]`); !strings.Contains(got, "Succeeded") {
		t.Errorf("live region = %q", got)
	}
	if got := b.text(`#run-header-status`); !strings.Contains(got, "Succeeded") {
		t.Errorf("header status = %q", got)
	}
	b.waitFor("the last points", `window.tunelabCharts.points("loss") > `+strconv.Itoa(midPoints))
	if got := b.text(`[data-testid=live-progress]`); got == midProgress {
		t.Errorf("progress did not move: still %q", got)
	}
	if n := eval[int](b, `window.tunelabCharts.points("eval_loss")`); n < 2 {
		t.Errorf("the chart holds %d eval_loss points", n)
	}
	if !b.visible(`[data-testid=run-charts] canvas`) {
		t.Error("no chart is drawn")
	}
	if n := eval[int](b, `document.querySelectorAll("[data-testid=snapshot-row]").length`); n < 1 {
		t.Fatal("no snapshot listed")
	}
	// The snapshot downloads (same-origin fetch with the session cookie).
	size, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`(async () => {
  const a = document.querySelector("[data-testid=snapshot-download]");
  const r = await fetch(a.href);
  return r.ok ? (await r.arrayBuffer()).byteLength : -r.status;
})()`, chromedp.EvalAwaitPromise))
	if err != nil || size <= 8 {
		t.Errorf("snapshot download gave %d (%v)", size, err)
	}
	if txt := b.text(`[data-testid=run-timeline]`); !strings.Contains(txt, "Succeeded") || !strings.Contains(txt, "Running") {
		t.Errorf("timeline = %q", txt)
	}
	b.checkClean("run page")
	b.screenshot("22-run-succeeded")
	b.phoneFits("run page")
	// At 390 px the nav is one row that scrolls: an item past an edge is never hidden without
	// a hint; that edge fades (data-more names it), and scrolling there reveals it.
	if missing := eval[string](b, `(() => {
		const nav = document.querySelector("[data-testid=nav]"), box = nav.getBoundingClientRect(), more = nav.dataset.more || "";
		return [...nav.querySelectorAll("a")].filter(a => {
			const r = a.getBoundingClientRect();
			return (r.right > box.right + 0.5 && !more.includes("right")) || (r.left < box.left - 0.5 && !more.includes("left"));
		}).map(a => a.textContent.trim()).join(", ");
	})()`); missing != "" {
		t.Errorf("at 390px these nav items are off the edge with no hint: %s", missing)
	}
	if eval[bool](b, `(() => { const n = document.querySelector("[data-testid=nav]"); return n.scrollWidth > n.clientWidth; })()`) {
		if more := eval[string](b, `document.querySelector("[data-testid=nav]").dataset.more || ""`); !strings.Contains(more, "right") {
			t.Errorf("the phone nav overflows but does not mark its right edge (data-more=%q)", more)
		}
		eval[bool](b, `(() => { const n = document.querySelector("[data-testid=nav]"); n.scrollLeft = n.scrollWidth; return true; })()`)
		b.waitFor("the nav to mark its left edge once scrolled to the end", `(document.querySelector("[data-testid=nav]").dataset.more || "") === "left"`)
		eval[bool](b, `(() => { const n = document.querySelector("[data-testid=nav]"); n.scrollLeft = 0; return true; })()`)
	}
	b.screenshot("23-run-phone")
	b.desktop()

	b.open("/runs", http.StatusOK)
	b.waitFor("the run list", has(`[data-testid=run-row][data-status=succeeded]`))
	b.checkClean("run list")
	b.screenshot("24-run-list")
}

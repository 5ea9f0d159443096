package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// statusRecorderJS runs in every document before its scripts: it notes each status the
// run header shows, in order, so a status that lasts a moment (Cancelling) is not missed
// between two polls.
const statusRecorderJS = `(() => {
  window.__runStatuses = [];
  const note = () => {
    const el = document.querySelector("#run-header-status");
    const s = el ? el.textContent.trim() : "";
    if (s && window.__runStatuses[window.__runStatuses.length - 1] !== s) window.__runStatuses.push(s);
  };
  document.addEventListener("DOMContentLoaded", () => {
    note();
    new MutationObserver(note).observe(document.body, {subtree: true, childList: true, characterData: true});
  });
})();`

// journeyViewport is one screen size the journey is walked at.
type journeyViewport struct {
	name          string
	width, height int64
	phone         bool
}

// TestBrowserJourney walks a new person's first session, once on a desktop and once on a
// phone: sign up, add a dataset, start a run, cancel it (Cancelling, then Cancelled, and
// Retry without a reload), retry it to success, compare the two runs, then billing and
// settings. Each step checks what the page says, that nothing overflows the phone, and
// that the browser reported no errors or CSP violations, and saves journey-*.png.
func TestBrowserJourney(t *testing.T) {
	findChromium(t)
	addr, _ := startServerWith(t, runEnv(t), t.TempDir())
	for _, vp := range []journeyViewport{
		{name: "desktop", width: 1280, height: 800},
		{name: "phone", width: 390, height: 844, phone: true},
	} {
		t.Run(vp.name, func(t *testing.T) { walkJourney(t, "http://"+addr, vp) })
	}
}

func walkJourney(t *testing.T, base string, vp journeyViewport) {
	start := time.Now()
	b := newBrowserWithin(t, base, 5*time.Minute)
	if _, err := chromedp.Call(b.ctx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: statusRecorderJS}); err != nil {
		t.Fatalf("add the status recorder: %v", err)
	}
	if vp.phone {
		b.do("phone viewport", chromedp.EmulateViewport(vp.width, vp.height,
			chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait))
	} else {
		b.do("desktop viewport", chromedp.EmulateViewport(vp.width, vp.height))
	}
	n := 0
	// step checks the page as it stands and saves its screenshot.
	step := func(name string, allow ...func(browserIssue) bool) {
		t.Helper()
		n++
		b.checkClean(name, allow...)
		if w := eval[int](b, `window.innerWidth`); w != int(vp.width) {
			t.Errorf("%s: the window is %dpx wide, want %d", name, w, vp.width)
		}
		if over := eval[int](b, `document.documentElement.scrollWidth - document.documentElement.clientWidth`); over > 0 {
			t.Errorf("%s at %dpx: the page scrolls sideways by %dpx", name, vp.width, over)
		}
		// Nothing visible may stick out of the viewport (a wide table scrolls in its own box).
		if out := eval[string](b, `(() => {
			const w = document.documentElement.clientWidth, out = [];
			for (const el of document.querySelectorAll("main *, header *")) {
				const r = el.getBoundingClientRect();
				if (r.width === 0 || r.height === 0 || r.right <= w + 1) continue;
				if (el.closest("details:not([open]) > :not(summary)") || getComputedStyle(el).visibility === "hidden") continue;
				let clipped = false;
				for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
					const o = getComputedStyle(p).overflowX;
					if (o === "auto" || o === "scroll" || o === "hidden" || o === "clip") { clipped = true; break; }
				}
				if (!clipped) out.push((el.dataset.testid || el.tagName.toLowerCase() + "." + el.className) + " to " + Math.round(r.right) + "px");
			}
			return out.slice(0, 5).join("; ");
		})()`); out != "" {
			t.Errorf("%s at %dpx: elements past the right edge: %s", name, vp.width, out)
		}
		// A live update may have just moved a progress bar: let finite transitions end.
		b.waitFor("transitions to end", `document.getAnimations().every(a => a.effect.getTiming().iterations === Infinity || a.playState !== "running")`)
		b.screenshot(fmt.Sprintf("journey-%s-%02d-%s", vp.name, n, name))
	}
	email := "journey-" + vp.name + "@example.com"

	// Sign up: the form names the current terms version, and the dashboard greets a new
	// account with its first-run guide.
	b.open("/signup", http.StatusOK)
	b.waitFor("the sign-up form and htmx", has(`[data-testid=signup-form]`)+" && "+htmxReady)
	if got := b.text(`[data-testid=signup-form]`); !strings.Contains(got, "2026-11-29") {
		t.Errorf("the sign-up form does not name terms version 2026-11-29: %.300q", got)
	}
	step("signup")
	b.do("sign up",
		chromedp.SendKeys(chromedp.CSS(`[data-testid=signup-form] input[name=email]`), email, chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=signup-form] input[name=password]`), "correct horse battery staple", chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=signup-form] input[name=accept_terms]`), chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=signup-form] button[type=submit]`), chromedp.NodeVisible))
	b.waitFor("the dashboard", pathIs("/")+" && "+has(`[data-testid=dashboard]`))
	if vp.phone {
		// The header has no room for the email on a phone; the dashboard names it.
		if got := b.text(`[data-testid=dashboard] .account-line`); got != email {
			t.Errorf("the dashboard says signed in as %q", got)
		}
		if !b.visible(`[data-testid=empty-state] [data-testid=cta-upload]`) || !b.visible(`[data-testid=empty-state] [data-testid=cta-run]`) {
			t.Error("the first-run guide's actions are not visible on a phone")
		}
	} else {
		b.checkDashboard(email, true)
	}
	if got := b.text(`[data-testid=stat-gpu]`); !strings.Contains(got, "Compute time") || strings.Contains(got, "GPU") {
		t.Errorf("the dashboard's time figure on a CPU backend reads %q", got)
	}
	step("dashboard")

	// A dataset: the desktop uploads a file, the phone adds the chat sample.
	b.open("/datasets", http.StatusOK)
	b.waitFor("the datasets page", has(`[data-testid=upload-form]`)+" && "+has(`[data-testid=empty-state]`)+" && "+htmxReady)
	if got := b.text(`[data-testid=format-chat]`); strings.Contains(got, "QLoRA") || !strings.Contains(got, "LoRA or full") {
		t.Errorf("the chat format says %q; this backend offers LoRA and full for chat data", got)
	}
	step("datasets-empty")
	if vp.phone {
		b.do("use the chat sample", chromedp.Click(chromedp.CSS(`[data-testid=sample-chat] button, button[data-testid=sample-chat]`), chromedp.NodeVisible))
	} else {
		file := filepath.Join(t.TempDir(), "greetings.jsonl")
		var lines strings.Builder
		// Enough rows for a few dozen steps: the cancel lands mid-run and the charts draw lines.
		for i := range 400 {
			fmt.Fprintf(&lines, `{"messages":[{"role":"user","content":"Say hello to guest number %d"},{"role":"assistant","content":"Hello guest %d, nice to meet you."}]}`+"\n", i, i)
		}
		if err := os.WriteFile(file, []byte(lines.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		b.do("upload a dataset",
			chromedp.SetUploadFiles(chromedp.CSS(`[data-testid=upload-form] input[name=file]`), []string{file}),
			chromedp.Click(chromedp.CSS(`[data-testid=upload-form] button[type=submit]`), chromedp.NodeVisible))
	}
	b.waitFor("the dataset's page", `/^\/datasets\/\d+$/.test(location.pathname) && `+has(`[data-testid=histogram]`))
	if rows := eval[int](b, `document.querySelectorAll("[data-testid=preview-row]").length`); rows == 0 {
		t.Error("the dataset page previews no rows")
	}
	if got := b.text(`[data-testid=format-badge]`); got != "Chat" {
		t.Errorf("dataset format badge = %q, want Chat", got)
	}
	step("dataset")
	// The delete confirmation opens in place, inside the screen, and closes again.
	b.do("open the delete confirmation", chromedp.Click(chromedp.CSS(`[data-testid=delete-dataset-open]`), chromedp.NodeVisible))
	b.waitFor("the confirmation", `document.querySelector("#dataset-delete").open`)
	if !b.visible(`[data-testid=delete-dataset]`) {
		t.Error("the delete confirmation shows no delete button")
	}
	step("dataset-delete-confirm")
	b.do("close the delete confirmation", chromedp.Click(chromedp.CSS(`[data-testid=delete-dataset-open]`), chromedp.NodeVisible))
	b.waitFor("the confirmation to close", `!document.querySelector("#dataset-delete").open`)

	// Start a small run: a few dozen steps, long enough to cancel mid-run (the sample has
	// fewer rows than the upload, so it trains more epochs).
	epochs := "1"
	if vp.phone {
		epochs = "3"
	}
	b.open("/runs/new", http.StatusOK)
	b.waitFor("the run form", has(`form [name=epochs]`)+" && "+htmxReady)
	step("run-form")
	b.do("set the epochs", chromedp.SetValue(chromedp.CSS(`form [name=epochs]`), epochs, chromedp.NodeVisible))
	b.do("start the run", chromedp.Click(chromedp.CSS(`[data-testid=start-run]`), chromedp.NodeVisible))
	b.waitFor("the run page", `/^\/runs\/\d+$/.test(location.pathname) && `+has(`[data-testid=run-live-panel]`))
	firstRun := eval[string](b, `location.pathname`)
	firstName := liveText(b, `[data-testid=run-name]`)
	b.waitForWithin("training under way", `document.querySelector("[data-testid=run-live-panel]").dataset.status === "running" && `+
		has(`#run-actions [data-testid=cancel]`), 90*time.Second)
	step("run-running")

	// Cancel: the page says Cancelling until the worker confirms, then Cancelled, and the
	// header offers Retry without a reload.
	b.do("open the cancel confirmation", chromedp.Click(chromedp.CSS(`#run-cancel-open`), chromedp.NodeVisible))
	b.waitFor("the confirmation", `document.querySelector("#run-cancel").open`)
	step("run-cancel-confirm")
	// The cancel posts and comes back to this run's page: a new document, marked once loaded.
	eval[bool](b, `window.beforeCancel = true`)
	b.do("confirm the cancel", chromedp.Click(chromedp.CSS(`[data-testid=cancel-confirm]`), chromedp.NodeVisible))
	b.waitFor("the run page after the cancel", `window.beforeCancel === undefined && `+pathIs(firstRun)+` && `+has(`[data-testid=run-live-panel]`))
	eval[bool](b, `window.samePage = true`)
	b.waitForWithin("Cancelled, and Retry in the header", `window.samePage === true && document.querySelector("#run-header-status").textContent.includes("Cancelled") && `+
		has(`#run-actions [data-testid=retry]`)+` && !document.querySelector("#run-actions [data-testid=cancel]")`, 30*time.Second)
	if seen := eval[[]string](b, `window.__runStatuses`); len(seen) < 2 || seen[0] != "Cancelling" || seen[len(seen)-1] != "Cancelled" {
		t.Errorf("after the cancel the header showed %q, want Cancelling then Cancelled", seen)
	}
	if got := liveText(b, `[data-testid=run-reason]`); !strings.Contains(got, "cancelled") {
		t.Errorf("the cancelled run's callout says %q", got)
	}
	step("run-cancelled")

	// Retry: a new run with the same settings, which trains to the end.
	b.do("retry", chromedp.Click(chromedp.CSS(`#run-actions [data-testid=retry]`), chromedp.NodeVisible))
	b.waitFor("the retried run's page", `/^\/runs\/\d+$/.test(location.pathname) && location.pathname !== `+fmt.Sprintf("%q", firstRun)+` && `+has(`[data-testid=retry-of]`))
	secondRun := eval[string](b, `location.pathname`)
	secondName := liveText(b, `[data-testid=run-name]`)
	b.waitForWithin("the retry to succeed", `document.querySelector("[data-testid=run-live-panel]").dataset.status === "succeeded" && `+
		has(`#run-actions [data-testid=retry]`), 3*time.Minute)
	b.waitFor("the loss chart", `window.tunelabCharts && window.tunelabCharts.points("loss") > 0`)
	if !b.visible(`[data-testid=run-charts] canvas`) {
		t.Error("the succeeded run draws no chart")
	}
	if got := liveText(b, `[data-testid=live-progress]`); !strings.Contains(got, "steps") {
		t.Errorf("progress of the succeeded run = %q", got)
	}
	if got := liveText(b, `[data-testid=live-gpu]`); got == "" || got == "—" {
		t.Errorf("the succeeded run shows no compute time: %q", got)
	}
	if nSnap := eval[int](b, `document.querySelectorAll("[data-testid=snapshot-row]").length`); nSnap < 1 {
		t.Error("the succeeded run lists no snapshot")
	}
	if got := liveText(b, `#run-header-status`); !strings.Contains(got, "Succeeded") {
		t.Errorf("header status = %q", got)
	}
	step("run-succeeded")

	// The run list shows both, and compares them.
	b.open("/runs", http.StatusOK)
	b.waitFor("the run list", has(`[data-testid=run-row][data-status=succeeded]`)+` && `+has(`[data-testid=run-row][data-status=cancelled]`)+" && "+htmxReady)
	if got := eval[string](b, `document.querySelector("[data-testid=time-col]").textContent.trim()`); got != "Compute time" {
		t.Errorf("the run list's time column is %q", got)
	}
	step("run-list")
	tap(b, "tick the first run", `[data-testid=run-row]:nth-of-type(1) [data-testid=compare-check]`)
	tap(b, "tick the second run", `[data-testid=run-row]:nth-of-type(2) [data-testid=compare-check]`)
	tap(b, "compare", `[data-testid=compare-selected]`)
	b.waitFor("the comparison", pathIs("/compare")+` && `+has(`[data-testid=compare-chart]`))
	// Each run has a legend row, or (the cancelled one may have stopped before its first
	// loss) is named as having no line.
	b.waitFor("the legend", has(`[data-testid=compare-row]`))
	legend := b.text(`[data-testid=compare-chart]`)
	for _, name := range []string{firstName, secondName} {
		if !strings.Contains(legend, name) {
			t.Errorf("the comparison does not name %q: %.500q", name, legend)
		}
	}
	if rows := eval[int](b, `document.querySelectorAll("[data-testid=compare-row]").length`); rows != 2 &&
		!strings.Contains(b.text(`[data-testid=compare-missing]`), firstName) {
		t.Errorf("%d legend rows, and the cancelled run %q is not named as having no line", rows, firstName)
	}
	b.waitFor("the comparison chart", `(() => { const c = document.querySelector("[data-testid=chart-compare] canvas"); return c && c.getBoundingClientRect().width > 0; })()`)
	for _, run := range []string{firstRun, secondRun} {
		if !eval[bool](b, fmt.Sprintf(`location.search.includes("run=%s")`, strings.TrimPrefix(run, "/runs/"))) {
			t.Errorf("the comparison does not include %s: %s", run, eval[string](b, `location.search`))
		}
	}
	step("compare")

	// Billing (off: no Stripe key on this server): the time used, and no promise of payment.
	b.open("/billing", http.StatusOK)
	b.waitFor("the billing page", has(`[data-testid=billing-off]`))
	if got := b.text(`[data-testid=billing]`); !strings.Contains(got, "every run is free") || strings.Contains(got, "GPU") ||
		strings.Contains(strings.ToLower(got), "billed") {
		t.Errorf("billing says %.400q", got)
	}
	if got := b.text(`[data-testid=stat-gpu] .stat-value`); got == "" || got == "—" {
		t.Errorf("billing shows no time used: %q", got)
	}
	step("billing")

	// Settings: the account and the terms version accepted at sign-up.
	b.open("/settings", http.StatusOK)
	b.waitFor("the settings page", has(`[data-testid=settings]`))
	if got := b.text(`[data-testid=account-email]`); got != email {
		t.Errorf("settings email = %q", got)
	}
	if got := b.text(`[data-testid=account-terms]`); got != "Version 2026-11-29" {
		t.Errorf("settings terms = %q", got)
	}
	step("settings")
	t.Logf("%s journey took %s", vp.name, time.Since(start).Round(time.Millisecond))
}

// tap clicks an element after scrolling it to the middle of the screen, where no sticky
// header covers it (chromedp scrolls it only just into view).
func tap(b *browser, what, sel string) {
	b.t.Helper()
	if !eval[bool](b, fmt.Sprintf(`(() => { const el = document.querySelector(%q); if (!el) return false; el.scrollIntoView({block: "center"}); return true; })()`, sel)) {
		b.t.Fatalf("%s: no %s", what, sel)
	}
	b.do(what, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// liveText is the trimmed text of the element that matches sel, read in one evaluation:
// the run page's live updates replace nodes, so a node found first and read after may be
// gone.
func liveText(b *browser, sel string) string {
	b.t.Helper()
	v := eval[string](b, fmt.Sprintf(`(() => { const el = document.querySelector(%q); return el ? el.innerText.trim() : "\u0000missing"; })()`, sel))
	if v == "\x00missing" {
		b.t.Fatalf("no %s on the page", sel)
	}
	return v
}

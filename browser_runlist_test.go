package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"tunelab/store"
)

// TestBrowserRunListAtScale: 60 runs with names and tags; the list shows 50 with an Older
// link, filters swap only the table and update the address, a live run's row is replaced
// in place (the rows around it stay the same DOM nodes), the run page edits the name,
// tags and notes (422 beside the field, then saved), and compare shows the settings side
// by side. Screenshots: 40 to 45.
func TestBrowserRunListAtScale(t *testing.T) {
	findChromium(t)
	dir := t.TempDir()
	addr, _ := startServerWith(t, nil, dir)
	b := newBrowser(t, "http://"+addr)
	b.desktop()
	const email = "scale@example.com"
	b.signUpInBrowser(email, "correct horse battery staple")
	b.open("/datasets", http.StatusOK)
	b.do("use the chat sample", chromedp.Click(chromedp.CSS(`[data-testid=sample-chat] button, button[data-testid=sample-chat]`), chromedp.NodeVisible))
	b.waitFor("the sample's page", `/^\/datasets\/\d+$/.test(location.pathname)`)

	st := openStore(t, dir)
	ctx := context.Background()
	var first int64
	for i := range 59 {
		method := store.MethodLoRA
		if i%4 == 0 {
			method = store.MethodFull
		}
		id, _ := manualRun(t, st, email, method)
		if first == 0 {
			first = id
		}
		if _, err := st.FinishRun(ctx, id, store.RunSucceeded, "", time.Now()); err != nil {
			t.Fatal(err)
		}
		if i%5 == 0 {
			run, _ := st.RunByID(ctx, id)
			tags := []string{"sweep", fmt.Sprintf("lr-%d", i%3)}
			if err := st.SetRunLabels(ctx, run.UserID, id, store.RunLabels{Name: fmt.Sprintf("sweep %02d", i), Tags: tags}); err != nil {
				t.Fatal(err)
			}
		}
	}
	live, token := manualRun(t, st, email, "lora")
	liveRow := fmt.Sprintf("#run-row-%d", live)

	b.open("/runs", http.StatusOK)
	b.waitFor("the first page", `document.querySelectorAll("[data-testid=run-row]").length === 50 && `+has(`[data-testid=page-older]`)+" && "+htmxReady)
	b.checkClean("run list")
	b.screenshot("40-run-list-page")
	b.phoneFits("run list")
	b.screenshot("46-run-list-phone")
	b.desktop()

	// A heartbeat moves the live run: its row is swapped in place, the others are not.
	b.do("mark a finished row", chromedp.Evaluate[chromedp.Void](`document.querySelectorAll("[data-testid=run-row]")[3].dataset.mark = "kept"`))
	b.do("tick the live run for compare", chromedp.Click(chromedp.CSS(liveRow+` [data-testid=compare-check]`), chromedp.NodeVisible))
	if _, err := st.Heartbeat(ctx, live, 1_000_000, 2_000_000); err != nil {
		t.Fatal(err)
	}
	b.waitForWithin("the live row to update", `(document.querySelector("`+liveRow+` .progress-text")||{}).textContent.includes("1,000,000")`, 15*time.Second)
	if got := eval[string](b, `document.querySelectorAll("[data-testid=run-row]")[3].dataset.mark || ""`); got != "kept" {
		t.Error("the live refresh replaced rows that did not change")
	}
	if !eval[bool](b, `document.querySelector("`+liveRow+` [data-testid=compare-check]").checked`) {
		t.Error("the live refresh unticked the run's compare box")
	}
	if _, err := st.FinishRun(ctx, live, store.RunSucceeded, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	_ = token
	b.waitForWithin("the finished row", `document.querySelector("`+liveRow+`").dataset.status === "succeeded"`, 15*time.Second)
	b.waitForWithin("the polling to stop", `!document.querySelector("#runs-live[hx-get]")`, 15*time.Second)

	// Filters: htmx swaps the table and puts the query in the address.
	b.do("filter by method", chromedp.SetValue(chromedp.CSS(`#runs-method`), "full", chromedp.NodeVisible))
	b.do("apply", chromedp.Click(chromedp.CSS(`[data-testid=filter-apply]`), chromedp.NodeVisible))
	b.waitFor("the full runs", `location.search.includes("method=full") && document.querySelectorAll("[data-testid=run-row]").length === 15 &&
		[...document.querySelectorAll("[data-testid=run-method]")].every(e => e.textContent === "Full")`)
	b.do("search by name", chromedp.SetValue(chromedp.CSS(`#runs-q`), "sweep", chromedp.NodeVisible))
	b.do("apply", chromedp.Click(chromedp.CSS(`[data-testid=filter-apply]`), chromedp.NodeVisible))
	b.waitFor("the named full runs", `location.search.includes("q=sweep") && document.querySelectorAll("[data-testid=run-row]").length === 3`)
	b.checkClean("filtered run list")
	b.screenshot("41-run-list-filtered")

	// Pages are plain links.
	b.open("/runs", http.StatusOK)
	b.do("older", chromedp.Click(chromedp.CSS(`[data-testid=page-older]`), chromedp.NodeVisible))
	b.waitFor("the second page", `location.search.includes("before=") && document.querySelectorAll("[data-testid=run-row]").length === 10 && `+has(`[data-testid=page-newer]`))

	// Names, tags and notes on the run page.
	b.open(fmt.Sprintf("/runs/%d", first), http.StatusOK)
	b.waitFor("the run page", has(`[data-testid=run-edit]`)+" && "+htmxReady)
	b.do("open the editor", chromedp.Click(chromedp.CSS(`[data-testid=run-edit] summary`), chromedp.NodeVisible))
	b.do("too long a name", chromedp.SetValue(chromedp.CSS(`[data-testid=edit-name]`), strings.Repeat("n", 101), chromedp.NodeVisible))
	b.do("bad tag", chromedp.SetValue(chromedp.CSS(`[data-testid=edit-tags]`), "good, Not/Good", chromedp.NodeVisible))
	b.do("save", chromedp.Click(chromedp.CSS(`[data-testid=edit-save]`), chromedp.NodeVisible))
	b.waitFor("the messages", has(`[data-testid=error-name]`)+" && "+has(`[data-testid=error-tags]`))
	b.screenshot("42-run-edit-refused")
	b.do("name", chromedp.SetValue(chromedp.CSS(`[data-testid=edit-name]`), "baseline, small lr", chromedp.NodeVisible))
	b.do("tags", chromedp.SetValue(chromedp.CSS(`[data-testid=edit-tags]`), "baseline, lr-3e-3", chromedp.NodeVisible))
	b.do("notes", chromedp.SetValue(chromedp.CSS(`[data-testid=edit-notes]`), "The first sweep point.", chromedp.NodeVisible))
	b.do("save", chromedp.Click(chromedp.CSS(`[data-testid=edit-save]`), chromedp.NodeVisible))
	b.waitFor("the saved labels", `document.querySelector("[data-testid=run-name]").textContent === "baseline, small lr" && `+has(`[data-testid=run-notes]`))
	if txt := b.text(`[data-testid=run-labels] [data-testid=run-tags]`); !strings.Contains(txt, "lr-3e-3") {
		t.Errorf("tags shown: %q", txt)
	}
	b.checkClean("run page", expectedStatus("/edit", 422))
	b.screenshot("43-run-labels")

	b.open(fmt.Sprintf("/compare?run=%d&run=%d", first, first+1), http.StatusOK)
	b.waitFor("the configuration table", has(`[data-testid=config-differs]`))
	b.checkClean("compare")
	b.screenshot("44-compare-configs")

	b.open("/", http.StatusOK)
	b.waitFor("the dashboard", has(`[data-testid=runs-by-status]`))
	b.checkClean("dashboard")
	b.screenshot("45-dashboard-counts")
}

package main

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestBrowserSnapshotDeleteAndContinue: a short real run, then its snapshot's Delete…
// opens a modal dialog that Escape closes untouched, "Continue from this snapshot" opens
// the prefilled form, and confirming the dialog deletes the snapshot.
func TestBrowserSnapshotDeleteAndContinue(t *testing.T) {
	findChromium(t)
	addr, _ := startServerWith(t, runEnv(t), t.TempDir())
	b := newBrowser(t, "http://"+addr)
	b.desktop()
	b.signUpInBrowser("snapshots@example.com", "correct horse battery staple")
	b.open("/datasets", http.StatusOK)
	b.do("use the chat sample", chromedp.Click(chromedp.CSS(`[data-testid=sample-chat] button, button[data-testid=sample-chat]`), chromedp.NodeVisible))
	b.waitFor("the sample's page", `/^\/datasets\/\d+$/.test(location.pathname)`)
	b.open("/runs/new", http.StatusOK)
	b.waitFor("the run form", has(`form [name=epochs]`)+" && "+htmxReady)
	b.do("set epochs", chromedp.SetValue(chromedp.CSS(`form [name=epochs]`), "2", chromedp.NodeVisible))
	b.do("start the run", chromedp.Click(chromedp.CSS(`[data-testid=start-run]`), chromedp.NodeVisible))
	b.waitFor("the run page", `/^\/runs\/\d+$/.test(location.pathname) && `+has(`[data-testid=run-live-panel]`))
	b.waitForWithin("the run to succeed", `document.querySelector("[data-testid=run-live-panel]").dataset.status === "succeeded" && `+
		has(`[data-testid=snapshot-delete]`), 2*time.Minute)
	runPath := eval[string](b, `location.pathname`)
	b.screenshot("59-snapshot-actions")
	if !eval[bool](b, `(() => {
  const card = document.querySelector("[data-testid=run-snapshots]").getBoundingClientRect();
  return [...document.querySelectorAll("[data-testid=snapshot-row] a, [data-testid=snapshot-row] button")]
    .every(el => el.getBoundingClientRect().right <= card.right + 0.5);
})()`) {
		t.Error("a snapshot's actions stick out of the card")
	}

	dialogOpen := `document.getElementById("snapshot-delete-dialog").open`
	b.do("open the delete dialog", chromedp.Click(chromedp.CSS(`[data-testid=snapshot-delete]`), chromedp.NodeVisible))
	b.waitFor("the dialog", dialogOpen+` && document.querySelector("[data-snapshot-delete-step]").textContent !== ""`)
	b.screenshot("60-snapshot-delete-dialog")
	b.do("press Escape", chromedp.KeyEvent(kb.Escape))
	b.waitFor("the dialog to close", "!"+dialogOpen)
	if n := eval[int](b, `document.querySelectorAll("[data-testid=snapshot-row]").length`); n < 1 {
		t.Fatal("Escape deleted the snapshot")
	}
	b.do("open it again", chromedp.Click(chromedp.CSS(`[data-testid=snapshot-delete]`), chromedp.NodeVisible))
	b.waitFor("the dialog", dialogOpen)
	b.do("keep it", chromedp.Click(chromedp.CSS(`[data-testid=snapshot-delete-cancel]`), chromedp.NodeVisible))
	b.waitFor("the dialog to close", "!"+dialogOpen)
	b.checkClean("snapshot dialog")

	b.do("continue from the snapshot", chromedp.Click(chromedp.CSS(`[data-testid=snapshot-continue]`), chromedp.NodeVisible))
	b.waitFor("the prefilled form", `location.pathname === "/runs/new" && `+has(`[data-testid=continue-from] input[name=init_snapshot_id]`)+
		` && document.querySelector("form [name=epochs]").value === "2"`)
	b.screenshot("61-continue-form")
	b.checkClean("continue form")

	b.open(runPath, http.StatusOK)
	b.waitFor("the run page", has(`[data-testid=snapshot-delete]`))
	n := eval[int](b, `document.querySelectorAll("[data-testid=snapshot-row]").length`)
	b.do("open the delete dialog", chromedp.Click(chromedp.CSS(`[data-testid=snapshot-delete]`), chromedp.NodeVisible))
	b.waitFor("the dialog", dialogOpen)
	b.do("confirm", chromedp.Click(chromedp.CSS(`[data-testid=snapshot-delete-confirm]`), chromedp.NodeVisible))
	b.waitFor("one snapshot fewer", `document.querySelectorAll("[data-testid=snapshot-row]").length === `+strconv.Itoa(n-1)+` && !`+dialogOpen)
	b.checkClean("after deleting a snapshot")
}

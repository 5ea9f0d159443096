package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserCheckpoints: a short real run with the built-in trainer, then "Evaluate all"
// on its run page: the leaderboard refreshes itself until every snapshot is scored and
// marks the best one.
func TestBrowserCheckpoints(t *testing.T) {
	findChromium(t)
	addr, _ := startServerWith(t, runEnv(t), t.TempDir())
	b := newBrowser(t, "http://"+addr)
	b.desktop()
	b.open("/signup", http.StatusOK)
	b.do("reject analytics", chromedp.Click(chromedp.CSS(`[data-testid=consent-reject]`), chromedp.NodeVisible))
	b.waitFor("the banner to go", "!("+has(`[data-testid=consent-banner]`)+")")
	b.signUpInBrowser("checkpoints@example.com", "correct horse battery staple")
	b.open("/datasets", http.StatusOK)
	b.do("use the chat sample", chromedp.Click(chromedp.CSS(`[data-testid=sample-chat] button, button[data-testid=sample-chat]`), chromedp.NodeVisible))
	b.waitFor("the sample's page", `/^\/datasets\/\d+$/.test(location.pathname)`)
	b.open("/runs/new", http.StatusOK)
	b.waitFor("the run form", has(`form [name=epochs]`)+" && "+htmxReady)
	b.do("set epochs", chromedp.SetValue(chromedp.CSS(`form [name=epochs]`), "2", chromedp.NodeVisible))
	b.do("snapshot often", chromedp.SetValue(chromedp.CSS(`form [name=snapshot_every]`), "10", chromedp.NodeVisible))
	b.do("start the run", chromedp.Click(chromedp.CSS(`[data-testid=start-run]`), chromedp.NodeVisible))
	b.waitFor("the run page", `/^\/runs\/\d+$/.test(location.pathname) && `+has(`[data-testid=run-live-panel]`))
	b.waitForWithin("the run to succeed", `document.querySelector("[data-testid=run-live-panel]").dataset.status === "succeeded" && `+
		has(`[data-testid=snapshot-delete]`), 2*time.Minute)
	b.open(eval[string](b, `location.pathname`), http.StatusOK) // the leaderboard lists the snapshots saved since
	b.waitFor("the leaderboard", has(`[data-testid=evaluate-all]`)+" && "+htmxReady)
	b.do("evaluate all", chromedp.Click(chromedp.CSS(`[data-testid=evaluate-all]`), chromedp.NodeVisible))
	b.waitForWithin("every snapshot scored and the best marked", has(`[data-testid=checkpoint-best]`)+` && `+
		`document.querySelectorAll("[data-testid=checkpoint-evaluate]").length === document.querySelectorAll("[data-testid=checkpoint-row]").length`, 2*time.Minute)
	rows := eval[int](b, `document.querySelectorAll("[data-testid=checkpoint-row]").length`)
	t.Logf("%d snapshots on the leaderboard; best: %s", rows, b.text(`tr.checkpoint-best`))
	if rows < 2 {
		t.Errorf("leaderboard has %d rows, want the periodic snapshots and the final one", rows)
	}

	if marks := eval[int](b, `document.querySelectorAll("[data-snapshot-mark]").length`); marks != rows {
		t.Errorf("%d snapshot markers for the charts, want %d", marks, rows)
	}
	b.screenshot("65-run-checkpoints")
	b.checkClean("checkpoint leaderboard")
	b.phoneFits("checkpoint leaderboard")
	b.screenshot("66-run-checkpoints-phone")
}

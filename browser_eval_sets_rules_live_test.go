package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// idleWorker is a local worker command that starts and then only waits: its run stays
// starting, with the run page's stream open, and never logs a metric of its own.
func idleWorker(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "idle-worker")
	if err := os.WriteFile(path, []byte("#!/bin/sh\nexec sleep 300\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBrowserRuleBannerLive: with the default rule "loss becomes NaN: notify me", the run
// page is open when the person's own code logs a NaN loss through the metrics API; the
// banner appears over the page's stream, without a reload (a marker set on the page
// before survives), and the timeline notes the firing.
func TestBrowserRuleBannerLive(t *testing.T) {
	findChromium(t)
	dir := t.TempDir()
	addr, _ := startServerWith(t, map[string]string{"TUNELAB_LOCAL_WORKER": idleWorker(t), "TUNELAB_HEARTBEAT_TIMEOUT": "1h"}, dir)
	b := newBrowser(t, "http://"+addr)
	b.desktop()
	b.open("/signup", http.StatusOK)
	b.do("reject analytics", chromedp.Click(chromedp.CSS(`[data-testid=consent-reject]`), chromedp.NodeVisible))
	b.waitFor("the banner to go", "!("+has(`[data-testid=consent-banner]`)+")")
	b.signUpInBrowser("rules-live@example.com", "correct horse battery staple")

	b.open("/settings/rules", http.StatusOK)
	b.waitFor("the rules form", has(`[data-testid=rules-form]`))
	b.do("notify on a NaN loss",
		chromedp.Click(chromedp.CSS(`[data-testid=nan_loss-on]`), chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=rules-save]`), chromedp.NodeVisible))
	b.waitFor("saved", has(`[data-testid=rules-saved]`))

	b.open("/datasets", http.StatusOK)
	b.do("use the chat sample", chromedp.Click(chromedp.CSS(`[data-testid=sample-chat] button, button[data-testid=sample-chat]`), chromedp.NodeVisible))
	b.waitFor("the sample's page", `/^\/datasets\/\d+$/.test(location.pathname)`)
	b.open("/runs/new", http.StatusOK)
	b.waitFor("the run form", has(`form [name=epochs]`)+" && "+htmxReady)
	b.do("start the run", chromedp.Click(chromedp.CSS(`[data-testid=start-run]`), chromedp.NodeVisible))
	b.waitFor("the run page", `/^\/runs\/\d+$/.test(location.pathname) && `+has(`[data-testid=run-live-panel]`)+" && "+htmxReady)
	b.waitForWithin("the worker to start", `document.querySelector("[data-testid=run-live-panel]").dataset.status === "starting"`, time.Minute)
	if b.visible(`[data-testid=rule-banner]`) {
		t.Fatal("a banner before any rule fired")
	}
	eval[bool](b, `(window.tunelabNoReload = "still here", true)`) // a reload would lose it
	runID, err := strconv.ParseInt(strings.TrimPrefix(eval[string](b, `location.pathname`), "/runs/"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}

	// The person's own code logs a NaN loss with an API key.
	st := openStore(t, dir)
	run, err := st.RunByID(context.Background(), runID)
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := st.CreateAPIKey(context.Background(), run.UserID, "notebook", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", fmt.Sprintf("http://%s/api/v1/runs/%d/metrics", addr, runID), strings.NewReader(`{"points":[{"name":"loss","step":3,"value":"NaN"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics: %d", resp.StatusCode)
	}

	b.waitForWithin("the banner, live", has(`[data-testid=rule-banner]`), 30*time.Second)
	if mark := eval[string](b, `String(window.tunelabNoReload)`); mark != "still here" {
		t.Fatalf("the page was reloaded (marker %q)", mark)
	}
	if banner := b.text(`[data-testid=rule-banner]`); !strings.Contains(banner, "Loss became NaN at step 3") || !strings.Contains(banner, "Mailed you") {
		t.Errorf("the banner says %q", banner)
	}
	b.waitFor("the timeline note", `[...document.querySelectorAll("[data-testid=timeline-item]")].some(e => e.textContent.includes("Rule fired: loss became NaN at step 3"))`)
	if n := eval[int](b, `document.querySelectorAll("#run-rules").length`); n != 1 {
		t.Errorf("%d #run-rules elements, want 1", n)
	}
	b.checkClean("rule banner live")
	b.screenshot("rules-banner-live")
}

// TestBrowserEvalOnUploadedDataset: a short real run on the chat sample, then its
// snapshots evaluated on another of the person's datasets (the completion sample) picked
// as the leaderboard's eval set: every snapshot is scored there and the best marked, while
// the run's held-out set stays unscored.
func TestBrowserEvalOnUploadedDataset(t *testing.T) {
	findChromium(t)
	addr, _ := startServerWith(t, runEnv(t), t.TempDir())
	b := newBrowser(t, "http://"+addr)
	b.desktop()
	b.open("/signup", http.StatusOK)
	b.do("reject analytics", chromedp.Click(chromedp.CSS(`[data-testid=consent-reject]`), chromedp.NodeVisible))
	b.waitFor("the banner to go", "!("+has(`[data-testid=consent-banner]`)+")")
	b.signUpInBrowser("eval-sets@example.com", "correct horse battery staple")
	for _, sample := range []string{"completion", "chat"} { // the chat sample last: the run form picks the newest
		b.open("/datasets", http.StatusOK)
		b.do("use the "+sample+" sample", chromedp.Click(chromedp.CSS(`button[data-testid=sample-`+sample+`]`), chromedp.NodeVisible))
		b.waitFor("the sample's page", `/^\/datasets\/\d+$/.test(location.pathname)`)
	}
	b.open("/runs/new", http.StatusOK)
	b.waitFor("the run form", has(`form [name=epochs]`)+" && "+htmxReady)
	b.do("train on the chat sample", chromedp.SetValue(chromedp.CSS(`form [name=dataset_id]`), eval[string](b,
		`[...document.querySelectorAll("form [name=dataset_id] option")].find(o => o.textContent.includes("Capitals")).value`), chromedp.NodeVisible))
	b.do("set epochs", chromedp.SetValue(chromedp.CSS(`form [name=epochs]`), "2", chromedp.NodeVisible))
	b.do("snapshot often", chromedp.SetValue(chromedp.CSS(`form [name=snapshot_every]`), "10", chromedp.NodeVisible))
	b.do("start the run", chromedp.Click(chromedp.CSS(`[data-testid=start-run]`), chromedp.NodeVisible))
	b.waitFor("the run page", `/^\/runs\/\d+$/.test(location.pathname) && `+has(`[data-testid=run-live-panel]`))
	runPath := eval[string](b, `location.pathname`)
	b.waitForWithin("the run to succeed", `document.querySelector("[data-testid=run-live-panel]").dataset.status === "succeeded" && `+
		has(`[data-testid=snapshot-delete]`), 2*time.Minute)
	b.open(runPath, http.StatusOK)
	b.waitFor("the leaderboard", has(`[data-testid=checkpoints-set]`)+" && "+htmxReady)
	set := eval[string](b, `[...document.querySelectorAll("[data-testid=checkpoints-set] option")].find(o => o.textContent.includes("English")).value`)
	b.do("pick the completion sample as the eval set",
		chromedp.SetValue(chromedp.CSS(`[data-testid=checkpoints-set]`), set, chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=checkpoints-show]`), chromedp.NodeVisible))
	b.waitFor("the leaderboard on the dataset", `new URLSearchParams(location.search).get("set") === "`+set+`" && `+has(`[data-testid=evaluate-all]`)+" && "+htmxReady)
	if note := b.text(`[data-testid=run-checkpoints] .card-description`); !strings.Contains(note, "English–French words") {
		t.Errorf("the leaderboard's note says %q", note)
	}
	b.do("evaluate all on it", chromedp.Click(chromedp.CSS(`[data-testid=evaluate-all]`), chromedp.NodeVisible))
	b.waitForWithin("every snapshot scored on the dataset and the best marked", `new URLSearchParams(location.search).get("set") === "`+set+`" && `+
		has(`[data-testid=checkpoint-best]`)+` && document.querySelectorAll("[data-testid=checkpoint-evaluate]").length === document.querySelectorAll("[data-testid=checkpoint-row]").length`, 2*time.Minute)
	if rows := eval[int](b, `document.querySelectorAll("[data-testid=checkpoint-row]").length`); rows < 2 {
		t.Errorf("%d snapshots on the leaderboard", rows)
	}
	t.Logf("best on the dataset: %s", b.text(`tr.checkpoint-best`))
	b.checkClean("leaderboard on an uploaded dataset")
	b.screenshot("eval-set-dataset")
	b.phoneFits("leaderboard on an uploaded dataset")
	b.screenshot("eval-set-dataset-phone")
	card, err := chromedp.Run(b.ctx, chromedp.Screenshot(chromedp.CSS(`[data-testid=run-checkpoints]`), chromedp.NodeVisible))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.outDir, "eval-set-dataset-phone-card.png"), card, 0o644); err != nil {
		t.Fatal(err)
	}
	b.desktop()

	b.open(runPath+"?set=heldout", http.StatusOK)
	b.waitFor("the held-out set", has(`[data-testid=checkpoint-row]`))
	if has := eval[bool](b, has(`[data-testid=checkpoint-best]`)+` || `+has(`[data-testid=checkpoint-status]`)); has {
		t.Error("the held-out set shows scores it never had")
	}
}

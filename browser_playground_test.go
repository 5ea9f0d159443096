package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserPlayground: a short real run with the built-in trainer, then the playground
// compares its snapshot with the untrained base on one chat prompt: both answers stream
// in (several chunks each) and end with their status; the history offers the prompt again.
func TestBrowserPlayground(t *testing.T) {
	findChromium(t)
	addr, _ := startServerWith(t, runEnv(t), t.TempDir())
	b := newBrowser(t, "http://"+addr)
	b.desktop()
	b.open("/signup", http.StatusOK)
	b.do("reject analytics", chromedp.Click(chromedp.CSS(`[data-testid=consent-reject]`), chromedp.NodeVisible))
	b.waitFor("the banner to go", "!("+has(`[data-testid=consent-banner]`)+")")
	b.signUpInBrowser("playground@example.com", "correct horse battery staple")
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

	b.do("open the playground", chromedp.Click(chromedp.CSS(`[data-testid=nav-playground]`), chromedp.NodeVisible))
	b.waitFor("the playground", pathIs("/playground")+" && "+has(`[data-testid=playground-form]`)+" && "+htmxReady)
	b.screenshot("62-playground-empty")
	snapshot := eval[string](b, `[...document.querySelectorAll("#model_a option")].find(o => o.value.startsWith("snapshot:")).value`)
	b.do("fill the form",
		chromedp.SetValue(chromedp.CSS(`#model_a`), snapshot, chromedp.NodeVisible),
		chromedp.SetValue(chromedp.CSS(`#model_b`), "base:tunelab/byte-mlp-small", chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=mode-chat]`), chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.CSS(`#prompt`), "What is the capital of France?", chromedp.NodeVisible),
		chromedp.SetValue(chromedp.CSS(`#temperature`), "0", chromedp.NodeVisible),
		chromedp.SetValue(chromedp.CSS(`#max_tokens`), "200", chromedp.NodeVisible))
	b.do("generate", chromedp.Click(chromedp.CSS(`[data-testid=playground-generate]`), chromedp.NodeVisible))
	ended := func(slot string) string {
		return has(`[data-testid=playground-status-`+slot+`] [data-testid=playground-end]`) + ` && ` +
			`document.querySelectorAll("[data-testid=playground-text-` + slot + `] span").length > 1`
	}
	b.waitForWithin("both answers to stream in and end", `location.search.startsWith("?run=") && `+ended("a")+" && "+ended("b"), time.Minute)
	for _, slot := range []string{"a", "b"} {
		status := b.text(`[data-testid=playground-status-` + slot + `]`)
		text := eval[string](b, `document.querySelector("[data-testid=playground-text-`+slot+`]").textContent`)
		t.Logf("answer %s: %q (%s)", slot, text, status)
		if text == "" || !strings.Contains(status, " bytes") {
			t.Errorf("answer %s did not arrive: %q %q", slot, text, status)
		}
	}
	if n := eval[int](b, `document.querySelectorAll("[data-testid=playground-history-row]").length`); n != 1 {
		t.Errorf("history has %d rows, want 1", n)
	}
	b.screenshot("63-playground-compare")
	b.checkClean("playground compare")

	b.do("run it again from the history", chromedp.Click(chromedp.CSS(`[data-testid=playground-rerun]`), chromedp.NodeVisible))
	b.waitForWithin("the answers again", ended("a")+" && "+ended("b"), time.Minute)
	b.phoneFits("playground")
	b.screenshot("64-playground-phone")
	b.checkClean("playground on a phone")
}

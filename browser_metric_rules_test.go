package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"tunelab/store"
)

// A default metric rule set on the settings page ("grad norm above 0.000001: notify and
// stop", which the built-in trainer passes at its first logged step) stops a real run on
// the built-in worker cleanly: it ends cancelled with the rule's reason and a final
// snapshot, the run page shows the banner, the timeline note and the chart marker, and a
// mail is queued.
func TestBrowserMetricRuleStopsARun(t *testing.T) {
	findChromium(t)
	dir := t.TempDir()
	addr, _ := startServerWith(t, runEnv(t), dir)
	b := newBrowser(t, "http://"+addr)
	b.desktop()
	b.open("/signup", http.StatusOK)
	b.do("reject analytics", chromedp.Click(chromedp.CSS(`[data-testid=consent-reject]`), chromedp.NodeVisible))
	b.waitFor("the banner to go", "!("+has(`[data-testid=consent-banner]`)+")")
	const email = "rules@example.com"
	b.signUpInBrowser(email, "correct horse battery staple")

	b.open("/settings", http.StatusOK)
	b.waitFor("the metric rules section", has(`[data-testid=settings-rules] [data-testid=rules-link]`))
	b.screenshot("rules-settings-section")

	b.open("/settings/rules", http.StatusOK)
	b.waitFor("the rules form", has(`[data-testid=rules-form]`))
	b.do("turn on grad norm above, stop only (no action: refused)",
		chromedp.Click(chromedp.CSS(`[data-testid=grad_norm_above-on]`), chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=grad_norm_above-notify]`), chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=rules-save]`), chromedp.NodeVisible))
	b.waitFor("the refusal", has(`[data-testid=rules-error]`))
	if msg := b.text(`[data-testid=rules-error]`); !strings.Contains(msg, "is on but does nothing") {
		t.Errorf("refusal says %q", msg)
	}
	b.screenshot("rules-settings-refused")
	b.do("notify and stop at a tiny grad norm",
		chromedp.SetValue(chromedp.CSS(`[data-testid=grad_norm_above-value]`), "0.000001", chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=grad_norm_above-notify]`), chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=grad_norm_above-stop]`), chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=rules-save]`), chromedp.NodeVisible))
	b.waitFor("saved", has(`[data-testid=rules-saved]`))
	b.checkClean("rules page", func(is browserIssue) bool { // the refused form above answered 400, as it should
		return strings.Contains(is.Text, "status of 400") && strings.HasSuffix(is.URL, "/settings/rules")
	})
	b.screenshot("rules-settings")

	b.open("/datasets", http.StatusOK)
	b.do("use the chat sample", chromedp.Click(chromedp.CSS(`[data-testid=sample-chat] button, button[data-testid=sample-chat]`), chromedp.NodeVisible))
	b.waitFor("the sample's page", `/^\/datasets\/\d+$/.test(location.pathname)`)
	b.open("/runs/new", http.StatusOK)
	b.waitFor("the run form", has(`form [name=epochs]`)+" && "+htmxReady)
	b.do("set epochs", chromedp.SetValue(chromedp.CSS(`form [name=epochs]`), "1000", chromedp.NodeVisible))
	if note := b.text(`[data-testid=run-form-rules]`); !strings.Contains(note, "grad norm too high") {
		t.Errorf("the run form says %q about rules", note)
	}
	b.screenshot("rules-run-form")
	b.do("start the run", chromedp.Click(chromedp.CSS(`[data-testid=start-run]`), chromedp.NodeVisible))
	b.waitFor("the run page", `/^\/runs\/\d+$/.test(location.pathname) && `+has(`[data-testid=run-live-panel]`))
	runPath := eval[string](b, `location.pathname`)
	b.waitForWithin("the run to be stopped by the rule", `document.querySelector("[data-testid=run-live-panel]").dataset.status === "cancelled"`, 2*time.Minute)
	b.open(runPath, http.StatusOK)
	b.waitForWithin("the final snapshot", has(`[data-testid=snapshot-final]`), 30*time.Second)
	b.waitFor("the banner and a drawn chart", has(`[data-testid=rule-banner]`)+` && document.querySelector("[data-testid=run-charts] canvas")`)
	if reason := b.text(`[data-testid=run-reason]`); !strings.Contains(reason, "Stopped by rule: grad norm reached") {
		t.Errorf("the run page says %q", reason)
	}
	if banner := b.text(`[data-testid=rule-banner]`); !strings.Contains(banner, "Grad norm reached") || !strings.Contains(banner, "Stopped the run") {
		t.Errorf("the banner says %q", banner)
	}
	if !eval[bool](b, `[...document.querySelectorAll("[data-testid=run-timeline] li, [data-testid=run-timeline] [data-status]")].some(e => e.textContent.includes("Rule fired: grad norm reached"))`) {
		t.Error("the timeline does not mark the firing")
	}
	b.checkClean("run stopped by a rule")
	b.screenshot("rules-run-stopped")

	b.open("/settings/rules", http.StatusOK)
	b.waitFor("the rules form", has(`[data-testid=rules-form]`))
	b.phoneFits("rules page")
	b.screenshot("rules-settings-phone")
	b.desktop()

	st := openStore(t, dir)
	mails, err := st.RecentMail(context.Background(), 50)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range mails {
		if m.Kind == store.MailRuleFired && m.To == email {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d rule mails, want 1", n)
	}
}

package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserDeploy: a short real run with the built-in trainer, Deploy on its snapshot,
// and the deployments page lists it as live with its model id and a curl example; Stop
// marks it stopped.
func TestBrowserDeploy(t *testing.T) {
	findChromium(t)
	addr, _ := startServerWith(t, runEnv(t), t.TempDir())
	b := newBrowser(t, "http://"+addr)
	b.desktop()
	b.open("/signup", http.StatusOK)
	b.do("reject analytics", chromedp.Click(chromedp.CSS(`[data-testid=consent-reject]`), chromedp.NodeVisible))
	b.waitFor("the banner to go", "!("+has(`[data-testid=consent-banner]`)+")")
	b.signUpInBrowser("deploy@example.com", "correct horse battery staple")
	b.open("/datasets", http.StatusOK)
	b.do("use the chat sample", chromedp.Click(chromedp.CSS(`[data-testid=sample-chat] button, button[data-testid=sample-chat]`), chromedp.NodeVisible))
	b.waitFor("the sample's page", `/^\/datasets\/\d+$/.test(location.pathname)`)
	b.open("/runs/new", http.StatusOK)
	b.waitFor("the run form", has(`form [name=epochs]`)+" && "+htmxReady)
	b.do("set epochs", chromedp.SetValue(chromedp.CSS(`form [name=epochs]`), "2", chromedp.NodeVisible))
	b.do("start the run", chromedp.Click(chromedp.CSS(`[data-testid=start-run]`), chromedp.NodeVisible))
	b.waitFor("the run page", `/^\/runs\/\d+$/.test(location.pathname) && `+has(`[data-testid=run-live-panel]`))
	b.waitForWithin("the run to succeed", `document.querySelector("[data-testid=run-live-panel]").dataset.status === "succeeded" && `+
		has(`[data-testid=snapshot-deploy]`), 2*time.Minute)
	// The Checkpoints card, empty when the page opened, lists the snapshot without a reload.
	b.waitFor("the checkpoints card to list the snapshot", has(`#checkpoints-live [data-testid=run-checkpoints][data-snapshots="1"] [data-testid=checkpoint-row]`))
	b.screenshot("66-run-snapshot-deploy")

	b.do("deploy", chromedp.Click(chromedp.CSS(`[data-testid=snapshot-deploy]`), chromedp.NodeVisible))
	b.waitFor("the deployments page", pathIs("/deployments")+" && "+has(`[data-testid=deployment-row]`))
	model := b.text(`[data-testid=deployment-model]`)
	curl := b.text(`[data-testid=deployment-curl]`)
	if !strings.HasPrefix(model, "tl-") || !strings.Contains(curl, `"model": "`+model+`"`) || b.text(`[data-testid=deployment-status]`) != "Live" {
		t.Errorf("deployment %q, curl %q", model, curl)
	}
	b.screenshot("67-deployments")
	b.checkClean("deployments")
	b.do("stop", chromedp.Click(chromedp.CSS(`[data-testid=deployment-stop]`), chromedp.NodeVisible))
	// Read the status in the same evaluation as the wait: chromedp's node queries can still
	// see the page from before the form's navigation for a moment.
	b.waitFor("the deployment to show as stopped", `(document.querySelector("[data-testid=deployment-status]") || {}).textContent?.trim() === "Stopped" && !`+
		has(`[data-testid=deployment-stop]`))
	b.phoneFits("deployments")
}

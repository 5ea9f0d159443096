package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// signUpInBrowser creates an account through the sign-up form and waits for the dashboard.
func (b *browser) signUpInBrowser(email, password string) {
	b.open("/signup", http.StatusOK)
	b.waitFor("the sign-up form and htmx", has(`[data-testid=signup-form]`)+" && "+htmxReady)
	b.do("sign up",
		chromedp.SendKeys(chromedp.CSS(`[data-testid=signup-form] input[name=email]`), email, chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=signup-form] input[name=password]`), password, chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=signup-form] input[name=accept_terms]`), chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=signup-form] button[type=submit]`), chromedp.NodeVisible))
	b.waitFor("the dashboard", pathIs("/")+" && "+has(`[data-testid=dashboard]`))
}

func TestBrowserDatasetUpload(t *testing.T) {
	findChromium(t)
	base := startServer(t)
	b := newBrowser(t, base)
	b.desktop()
	b.signUpInBrowser("data@example.com", "correct horse battery staple")

	dir := t.TempDir()
	var good, bad strings.Builder
	for i := range 30 {
		fmt.Fprintf(&good, `{"prompt":"Count to %d","completion":" %s"}`+"\n", i, strings.Repeat("one ", i+1))
	}
	bad.WriteString(good.String())
	bad.WriteString(`{"prompt":"x","completion":""}` + "\n")
	goodFile, badFile := filepath.Join(dir, "counting.jsonl"), filepath.Join(dir, "broken.jsonl")
	os.WriteFile(goodFile, []byte(good.String()), 0o600)
	os.WriteFile(badFile, []byte(bad.String()), 0o600)

	b.open("/datasets", http.StatusOK)
	b.waitFor("the upload form", has(`[data-testid=upload-form]`)+" && "+has(`[data-testid=sample-chat]`))
	b.checkClean("empty datasets page")
	b.screenshot("10-datasets-empty")

	// A broken file: the problems appear in place with their line, and nothing is saved.
	b.do("upload a broken file",
		chromedp.SetUploadFiles(chromedp.CSS(`[data-testid=upload-form] input[name=file]`), []string{badFile}),
		chromedp.Click(chromedp.CSS(`[data-testid=upload-form] button[type=submit]`), chromedp.NodeVisible))
	b.waitFor("the upload problems", has(`[data-testid=upload-problem]`))
	if got := b.text(`[data-testid=upload-problem]`); !strings.Contains(got, "line 31") || !strings.Contains(got, "empty") {
		t.Errorf("first problem = %q, want line 31 and that the completion is empty", got)
	}
	if !eval[bool](b, pathIs("/datasets")) || eval[bool](b, has(`[data-testid=dataset-row]`)) {
		t.Error("a broken upload left the page or was listed")
	}
	b.checkClean("upload problems", expectedStatus("/datasets", http.StatusUnprocessableEntity))
	b.screenshot("11-datasets-problems")

	// A good file: progress, then the dataset's page with its statistics.
	b.do("upload a good file",
		chromedp.SetUploadFiles(chromedp.CSS(`[data-testid=upload-form] input[name=file]`), []string{goodFile}),
		chromedp.Click(chromedp.CSS(`[data-testid=upload-form] button[type=submit]`), chromedp.NodeVisible))
	b.waitFor("the dataset page", `/^\/datasets\/\d+$/.test(location.pathname) && `+has(`[data-testid=histogram]`))
	if got := b.text(`[data-testid=dataset]`); !strings.Contains(got, "counting") || !strings.Contains(got, "30") {
		t.Errorf("dataset page does not show the name and 30 rows: %.300q", got)
	}
	if n := eval[int](b, `document.querySelectorAll("[data-testid=preview-row]").length`); n != 5 {
		t.Errorf("%d preview rows, want 5", n)
	}
	b.checkClean("dataset page")
	b.screenshot("12-dataset-detail")
	b.phoneFits("dataset page")
	b.screenshot("13-dataset-detail-phone")
	b.desktop()

	// A sample, from the list.
	b.open("/datasets", http.StatusOK)
	b.do("use the chat sample", chromedp.Click(chromedp.CSS(`[data-testid=sample-chat] button, button[data-testid=sample-chat]`), chromedp.NodeVisible))
	b.waitFor("the sample's page", `/^\/datasets\/\d+$/.test(location.pathname) && `+has(`[data-testid=histogram]`))
	b.open("/datasets", http.StatusOK)
	if n := eval[int](b, `document.querySelectorAll("[data-testid=dataset-row]").length`); n != 2 {
		t.Errorf("%d datasets listed, want 2", n)
	}
	b.checkClean("datasets list")
	b.screenshot("14-datasets-list")
}

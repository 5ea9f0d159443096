package main

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// A person closes their account from Settings, is signed out, signs in again and sees the
// offer to reopen; the pages are screenshotted (desktop and phone).
func TestBrowserCloseAndReopenAccount(t *testing.T) {
	findChromium(t)
	base := startServer(t)
	b := newBrowser(t, base)
	b.desktop()
	const email, password = "close@example.com", "correct horse battery staple"

	b.open("/signup", http.StatusOK)
	b.waitFor("the sign-up form", has(`[data-testid=signup-form]`)+" && "+htmxReady)
	b.do("sign up",
		chromedp.SendKeys(chromedp.CSS(`[data-testid=signup-form] input[name=email]`), email, chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=signup-form] input[name=password]`), password, chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=signup-form] input[name=accept_terms]`), chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=signup-form] button[type=submit]`), chromedp.NodeVisible),
	)
	b.waitFor("the dashboard", pathIs("/")+" && "+has(`[data-testid=dashboard]`))
	b.open("/settings", http.StatusOK)
	b.do("open close account", chromedp.Click(chromedp.CSS(`[data-testid=link-close]`), chromedp.NodeVisible))
	b.waitFor("the close page", pathIs("/settings/close")+" && "+has(`[data-testid=close-form]`))
	b.checkClean("close page")
	b.screenshot("account-close-desktop")
	b.phoneFits("Close account")
	b.screenshot("account-close-phone")
	b.desktop()
	b.do("close",
		chromedp.SendKeys(chromedp.CSS(`#close_password`), password, chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=close-submit]`), chromedp.NodeVisible),
	)
	b.waitFor("the closed page", has(`[data-testid=account-closed]`))
	b.screenshot("account-closed")

	b.open("/signin", http.StatusOK)
	b.waitFor("the sign-in form", has(`[data-testid=signin-form]`)+" && "+htmxReady)
	b.do("sign in again",
		chromedp.SendKeys(chromedp.CSS(`[data-testid=signin-form] input[name=email]`), email, chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=signin-form] input[name=password]`), password, chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=signin-form] button[type=submit]`), chromedp.NodeVisible),
	)
	b.waitFor("the reopen offer", pathIs("/account/reopen")+" && "+has(`[data-testid=reopen-form]`))
	b.checkClean("reopen page")
	b.screenshot("account-reopen")
	b.do("reopen", chromedp.Click(chromedp.CSS(`[data-testid=reopen-submit]`), chromedp.NodeVisible))
	b.waitFor("the dashboard again", pathIs("/")+" && "+has(`[data-testid=dashboard]`))
	b.open("/settings/activity", http.StatusOK)
	b.waitFor("the activity log", has(`[data-testid=audit-row]`))
	b.screenshot("account-activity")
}

// A person asks for a data export; the page shows it being built, then ready.
func TestBrowserExportFromSettings(t *testing.T) {
	findChromium(t)
	dir := t.TempDir()
	addr, _ := startServerWith(t, nil, dir)
	base := "http://" + addr
	b := newBrowser(t, base)
	b.desktop()
	const email, password = "export@example.com", "correct horse battery staple"
	b.open("/signup", http.StatusOK)
	b.waitFor("the sign-up form", has(`[data-testid=signup-form]`)+" && "+htmxReady)
	b.do("sign up",
		chromedp.SendKeys(chromedp.CSS(`[data-testid=signup-form] input[name=email]`), email, chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=signup-form] input[name=password]`), password, chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=signup-form] input[name=accept_terms]`), chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=signup-form] button[type=submit]`), chromedp.NodeVisible),
	)
	b.waitFor("the dashboard", pathIs("/")+" && "+has(`[data-testid=dashboard]`))
	b.open("/settings", http.StatusOK)
	b.screenshot("settings-your-data")
	b.do("open export", chromedp.Click(chromedp.CSS(`[data-testid=link-export]`), chromedp.NodeVisible))
	b.waitFor("the export page", pathIs("/settings/export")+" && "+has(`[data-testid=export-form]`))
	b.checkClean("export page")
	b.screenshot("export-ask")
	b.do("ask for an export",
		chromedp.SendKeys(chromedp.CSS(`#export_password`), password, chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=export-submit]`), chromedp.NodeVisible),
	)
	b.waitFor("the export ready", pathIs("/settings/export")+` && document.querySelector('[data-testid=export-state]') && document.querySelector('[data-testid=export-state]').textContent.includes('Ready')`)
	b.checkClean("export ready")
	b.screenshot("export-ready")
	b.phoneFits("Export")
	b.screenshot("export-ready-phone")

	// The mailed link opens a page with the download button; opening it spends nothing.
	b.desktop()
	link := outboxLink(t, dir, "data_export_ready", regexp.MustCompile(`/settings/export/download/[0-9a-f]{64}`))
	for range 2 {
		b.open(link, http.StatusOK)
		b.waitFor("the download page", has(`[data-testid=export-download-form]`))
	}
	if got := b.text(`[data-testid=export-download-submit]`); !strings.Contains(got, "Download the ZIP") {
		t.Fatalf("download button = %q", got)
	}
	b.checkClean("export download page")
	b.screenshot("export-download")
}

// outboxLink waits for the newest outbox mail of kind and returns the path of the link
// in it that re matches.
func outboxLink(t *testing.T, dir, kind string, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(dir, "outbox", "*-"+kind+".eml"))
		for i := len(files) - 1; i >= 0; i-- {
			data, _ := os.ReadFile(files[i])
			if _, text, _ := mailParts(t, data); re.FindString(text) != "" {
				return re.FindString(text)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s mail with a link in %s: %v", kind, dir, files)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

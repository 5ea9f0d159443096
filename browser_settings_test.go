package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// A person makes an API key in Settings, copies it from the page, and a script uses it;
// the new Settings pages fit a phone, and the banner asks to confirm the address.
func TestBrowserAPIKeyFromSettings(t *testing.T) {
	findChromium(t)
	base := startServer(t)
	b := newBrowser(t, base)
	b.desktop()

	b.open("/signup", http.StatusOK)
	b.waitFor("the sign-up form", has(`[data-testid=signup-form]`)+" && "+htmxReady)
	b.do("sign up",
		chromedp.SendKeys(chromedp.CSS(`[data-testid=signup-form] input[name=email]`), "ada@example.com", chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=signup-form] input[name=password]`), "correct horse battery staple", chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=signup-form] input[name=accept_terms]`), chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=signup-form] button[type=submit]`), chromedp.NodeVisible),
	)
	b.waitFor("the dashboard", pathIs("/")+" && "+has(`[data-testid=dashboard]`))
	if !b.visible(`[data-testid=verify-banner]`) {
		t.Error("no banner asking to confirm the address")
	}

	b.open("/settings", http.StatusOK)
	b.do("open the API keys", chromedp.Click(chromedp.CSS(`[data-testid=api-keys-link]`), chromedp.NodeVisible))
	b.waitFor("the API keys page", pathIs("/settings/api-keys")+" && "+has(`[data-testid=api-key-form]`))
	b.checkClean("API keys page")
	b.do("make a key",
		chromedp.SendKeys(chromedp.CSS(`[data-testid=api-key-name]`), "laptop", chromedp.NodeVisible),
		chromedp.SetValue(chromedp.CSS(`[data-testid=api-key-expires]`), "30"),
		chromedp.Click(chromedp.CSS(`[data-testid=api-key-submit]`), chromedp.NodeVisible),
	)
	b.waitFor("the new key", pathIs("/settings/api-keys")+" && "+has(`[data-testid=api-key]`))
	key := b.text(`[data-testid=api-key]`)
	if !strings.HasPrefix(key, "tl_") || len(key) != 35 {
		t.Fatalf("key on the page: %q", key)
	}
	if !b.visible(`[data-testid=copy-api-key]`) {
		t.Error("the copy button is hidden")
	}
	b.checkClean("new key shown")
	b.screenshot("api-keys-desktop")
	b.phoneFits("API keys")
	b.screenshot("api-keys-phone")
	b.desktop()

	// A script uses it.
	req, _ := http.NewRequest("GET", base+"/api/v1/runs", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var list struct {
		Runs []json.RawMessage `json:"runs"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &list) != nil || list.Runs == nil {
		t.Fatalf("API with the key: %d %s", resp.StatusCode, body)
	}

	// Revoke: the key stops working.
	b.open("/settings/api-keys", http.StatusOK)
	if eval[bool](b, has(`[data-testid=api-key]`)) {
		t.Error("a reload shows the key again")
	}
	b.do("revoke", chromedp.Click(chromedp.CSS(`[data-testid=api-key-revoke]`), chromedp.NodeVisible))
	b.waitFor("the revoked notice", has(`[data-testid=api-key-revoked]`))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("revoked key: %d", resp.StatusCode)
	}

	b.open("/settings/email", http.StatusOK)
	b.checkClean("email preferences")
	b.phoneFits("email preferences")
	b.screenshot("email-prefs-phone")
	b.desktop()
	b.open("/password/forgot", http.StatusOK)
	b.checkClean("forgot password page")
	b.screenshot("forgot-password-desktop")
}

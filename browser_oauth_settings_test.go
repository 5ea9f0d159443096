package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
)

// fakeGitHub answers like GitHub's OAuth app endpoints and REST API for one person, who
// approves at once: authorize redirects straight back with a code (PKCE checked).
func fakeGitHub(t *testing.T, email string) *httptest.Server {
	var mu sync.Mutex
	challenges := map[string]string{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login/oauth/authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		mu.Lock()
		challenges["code-1"] = q.Get("code_challenge")
		mu.Unlock()
		back, _ := url.Parse(q.Get("redirect_uri"))
		back.RawQuery = url.Values{"code": {"code-1"}, "state": {q.Get("state")}}.Encode()
		http.Redirect(w, r, back.String(), http.StatusFound)
	})
	mux.HandleFunc("POST /login/oauth/access_token", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		mu.Lock()
		ok := challenges[r.PostForm.Get("code")] == base64.RawURLEncoding.EncodeToString(sum[:])
		mu.Unlock()
		if !ok {
			http.Error(w, `{"error":"bad_verification_code"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "gho_test", "token_type": "bearer", "scope": "read:user,user:email"})
	})
	mux.HandleFunc("GET /api/user", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"id": 583231, "login": "octocat", "name": "Mona Octocat"})
	})
	mux.HandleFunc("GET /api/user/emails", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode([]map[string]any{{"email": email, "primary": true, "verified": true}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// TestBrowserGitHubSignUpAndSettings signs up with "Continue with GitHub" in headless
// Chromium, then uses the Profile and Sign-in methods sections of Settings; screenshots of
// the sign-in page and of Settings on desktop and phone.
func TestBrowserGitHubSignUpAndSettings(t *testing.T) {
	findChromium(t)
	gh := fakeGitHub(t, "mona@example.com")
	addr, _ := startServerWith(t, map[string]string{
		"TUNELAB_GITHUB_CLIENT_ID": "test-client", "TUNELAB_GITHUB_CLIENT_SECRET": "test-secret",
		"TUNELAB_GITHUB_AUTH_URL": gh.URL + "/login/oauth/authorize", "TUNELAB_GITHUB_TOKEN_URL": gh.URL + "/login/oauth/access_token",
		"TUNELAB_GITHUB_API_URL": gh.URL + "/api",
	}, t.TempDir())
	// The browser uses the server's public URL, the host GitHub sends it back to.
	_, port, _ := net.SplitHostPort(addr)
	b := newBrowser(t, "http://localhost:"+port)
	b.desktop()

	b.open("/signin", http.StatusOK)
	b.waitFor("the GitHub button", has(`[data-testid=oauth-github]`))
	b.checkClean("sign-in page")
	b.screenshot("oauth-01-signin-desktop")
	b.phoneFits("sign-in page")
	b.screenshot("oauth-02-signin-phone")
	b.desktop()

	b.do("continue with GitHub", chromedp.Click(chromedp.CSS(`[data-testid=oauth-github]`), chromedp.NodeVisible))
	b.waitFor("the create-account page", pathIs("/signin/oauth/confirm")+" && "+has(`[data-testid=oauth-create-form]`))
	b.checkClean("create account page")
	b.screenshot("oauth-03-create-account")
	b.do("accept the terms and create",
		chromedp.Click(chromedp.CSS(`[data-testid=oauth-create-form] input[name=accept_terms]`), chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=oauth-create-submit]`), chromedp.NodeVisible),
	)
	b.waitFor("the dashboard", pathIs("/")+" && "+has(`[data-testid=dashboard]`))
	if got := b.text(`[data-testid=user-email]`); got != "Mona Octocat" {
		t.Errorf("header shows %q, want the name GitHub gave", got)
	}

	b.open("/settings", http.StatusOK)
	b.waitFor("the sign-in methods", has(`[data-testid=sign-in-methods]`)+" && "+htmxReady)
	if !b.visible(`[data-testid=unlink-blocked-github]`) || b.visible(`[data-testid=unlink-github]`) {
		t.Error("Settings offers to unlink the only way to sign in")
	}
	eval[bool](b, `(document.querySelector("[data-testid=display-name]").value = "", true)`)
	b.do("rename",
		chromedp.SendKeys(chromedp.CSS(`[data-testid=display-name]`), "Mona", chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=name-submit]`), chromedp.NodeVisible),
	)
	b.waitFor("the saved name", has(`[data-testid=name-saved]`))
	if got := b.text(`[data-testid=user-email]`); got != "Mona" {
		t.Errorf("header shows %q after renaming, want Mona", got)
	}
	b.waitFor("htmx", htmxReady)
	b.do("ask for a new email",
		chromedp.SendKeys(chromedp.CSS(`[data-testid=new-email]`), "mona@new.example", chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=email-submit]`), chromedp.NodeVisible),
	)
	b.waitFor("the pending change", has(`[data-testid=email-pending]`))
	if !strings.Contains(b.text(`[data-testid=email-pending]`), "mona@new.example") {
		t.Error("the pending change does not name the new address")
	}
	b.checkClean("settings")
	b.screenshot("oauth-04-settings-desktop")
	b.phoneFits("settings")
	b.screenshot("oauth-05-settings-phone")
	b.desktop()

	// A password makes GitHub unlinkable; unlinking goes through the real form.
	b.open("/settings", http.StatusOK)
	b.waitFor("the set-password form", has(`[data-testid=password-form]`)+" && "+htmxReady)
	b.do("set a password",
		chromedp.SendKeys(chromedp.CSS(`[data-testid=password-form] input[name=new_password]`), "a long new passphrase", chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=password-submit]`), chromedp.NodeVisible),
	)
	b.waitFor("the saved password", has(`[data-testid=password-saved]`))
	b.open("/settings", http.StatusOK)
	b.do("unlink GitHub", chromedp.Click(chromedp.CSS(`[data-testid=unlink-github]`), chromedp.NodeVisible))
	b.waitFor("the unlinked notice", has(`[data-testid=sign-in-methods-notice]`))
	b.do("link GitHub again", chromedp.Click(chromedp.CSS(`[data-testid=link-github]`), chromedp.NodeVisible))
	b.waitFor("linked again", has(`[data-testid=unlink-github]`)+" && "+has(`[data-testid=sign-in-methods-notice]`))
	b.checkClean("linked again")
	b.screenshot("oauth-06-settings-linked")

	b.open("/settings/email", http.StatusOK)
	b.waitFor("the mail preferences", has(`[data-testid=product-mails]`))
	if eval[bool](b, `document.querySelector("[data-testid=product-mails]").checked`) {
		t.Error("product updates are on by default")
	}
	b.checkClean("mail preferences")
	b.screenshot("oauth-07-mail-prefs-desktop")
	b.phoneFits("mail preferences")
	b.screenshot("oauth-08-mail-prefs-phone")
}

package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"tunelab/handlers"
	"tunelab/store"
	"tunelab/store/storetest"
)

// TestEmailChangeAndNewDeviceMailsOverSMTP runs the whole server against the in-process
// SMTP server: a change of email is confirmed by following the link in the mail the new
// address gets, the old address is told, and a sign-in from another browser is mailed.
func TestEmailChangeAndNewDeviceMailsOverSMTP(t *testing.T) {
	smtpURL, inbox := startSMTP(t, 0)
	addr, _ := startServerWith(t, map[string]string{"TUNELAB_SMTP_URL": smtpURL}, t.TempDir())
	base := "http://" + addr
	newClient := func() *http.Client {
		jar, _ := cookiejar.New(nil)
		return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	post := func(c *http.Client, path string, form url.Values, ua string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("User-Agent", ua)
		r, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r
	}
	const firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	const chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"
	ada := newClient()
	if r := post(ada, "/signup", url.Values{"email": {"ada@example.com"}, "password": {"an old long passphrase"}, "accept_terms": {"yes"}}, firefox); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign up: %d", r.StatusCode)
	}
	inbox.next(t) // the address confirmation

	if r := post(ada, "/settings/profile/email", url.Values{"new_email": {"ada@new.example"}, "password": {"an old long passphrase"}}, firefox); r.StatusCode != http.StatusOK {
		t.Fatalf("ask change: %d", r.StatusCode)
	}
	m := inbox.next(t)
	_, text, _ := mailParts(t, m.Data)
	link := regexp.MustCompile(`https?://[^\s"<>]+/settings/email/confirm\?token=([A-Za-z0-9_-]+)`).FindStringSubmatch(text)
	if len(m.To) != 1 || m.To[0] != "ada@new.example" || link == nil {
		t.Fatalf("confirm mail to %v:\n%s", m.To, text)
	}
	page, err := newClient().Get(link[0])
	if err != nil || page.StatusCode != http.StatusOK {
		t.Fatalf("confirm page: %v", err)
	}
	page.Body.Close()
	if r := post(newClient(), "/settings/email/confirm", url.Values{"token": {link[1]}}, firefox); r.StatusCode != http.StatusOK {
		t.Fatalf("confirm: %d", r.StatusCode)
	}
	told := inbox.next(t)
	if h, text, _ := mailParts(t, told.Data); told.To[0] != "ada@example.com" || h.Get("Subject") != "Your tunelab email was changed" || !strings.Contains(text, "ada@new.example") {
		t.Fatalf("old address told: %v %q\n%s", told.To, h.Get("Subject"), text)
	}

	// Another browser signs in with the new address: a new device.
	if r := post(newClient(), "/signin", url.Values{"email": {"ada@new.example"}, "password": {"an old long passphrase"}}, chrome); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %d", r.StatusCode)
	}
	dev := inbox.next(t)
	if h, text, _ := mailParts(t, dev.Data); dev.To[0] != "ada@new.example" || h.Get("Subject") != "New sign-in to your tunelab account" ||
		!strings.Contains(text, "Chrome on Windows") || h.Get("List-Unsubscribe") != "" {
		t.Fatalf("new device mail: %v %q\n%s", dev.To, h.Get("Subject"), text)
	}
}

// TestNonEssentialMailCarriesOneClickUnsubscribe checks the headers of RFC 8058 on a mail
// with an unsubscribe link, as the SMTP server receives it.
func TestNonEssentialMailCarriesOneClickUnsubscribe(t *testing.T) {
	smtpURL, inbox := startSMTP(t, 0)
	sc, err := parseSMTPURL(smtpURL)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, _ := storetest.OpenDir(t, dir, store.Options{Argon2: storetest.CheapArgon2})
	ctx := context.Background()
	link := "https://tune.example/mail/unsubscribe?l=run_mails&s=abc&u=1"
	if _, err := st.EnqueueMail(ctx, store.NewMail{Kind: store.MailRunEnded, To: "bob@example.com", Subject: "Your run a succeeded",
		Text: "text\n", HTML: "<p>html</p>", Unsubscribe: link}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.EnqueueMail(ctx, store.NewMail{Kind: store.MailPasswordChanged, To: "bob@example.com", Subject: "essential",
		Text: "text\n", HTML: "<p>html</p>"}); err != nil {
		t.Fatal(err)
	}
	m := newMailSender(st, sc, dir, mail.Address{Address: "noreply@tune.example"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.sendDue(ctx)
	h, _, _ := mailParts(t, inbox.next(t).Data)
	if h.Get("List-Unsubscribe") != "<"+link+">" || h.Get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click" {
		t.Fatalf("headers: List-Unsubscribe %q, List-Unsubscribe-Post %q", h.Get("List-Unsubscribe"), h.Get("List-Unsubscribe-Post"))
	}
	if h, _, _ := mailParts(t, inbox.next(t).Data); h.Get("List-Unsubscribe") != "" || h.Get("List-Unsubscribe-Post") != "" {
		t.Fatal("an essential mail carries unsubscribe headers")
	}
	if list, _ := st.RecentMail(ctx, 2); list[0].Unsubscribe != "" || list[1].Unsubscribe != "" {
		t.Fatal("the unsubscribe link outlived the delivery")
	}
}

func TestOAuthConfigFromEnv(t *testing.T) {
	var errs []error
	env := func(m map[string]string) func(k, def string) string {
		return func(k, def string) string {
			if v, ok := m[k]; ok {
				return v
			}
			return def
		}
	}
	c := oauthFromEnv(env(nil), &errs)
	if c.Google.Enabled() || c.GitHub.Enabled() || len(errs) != 0 {
		t.Fatalf("unset: %+v %v", c, errs)
	}
	c = oauthFromEnv(env(map[string]string{"TUNELAB_GITHUB_CLIENT_ID": "id", "TUNELAB_GITHUB_CLIENT_SECRET": "secret"}), &errs)
	if !c.GitHub.Enabled() || c.Google.Enabled() || len(errs) != 0 {
		t.Fatalf("GitHub only: %+v %v", c, errs)
	}
	if p := handlers.GitHubEndpoints(c.GitHub); p.AuthURL != "https://github.com/login/oauth/authorize" || p.APIURL != "https://api.github.com" {
		t.Fatalf("GitHub defaults: %+v", p)
	}
	oauthFromEnv(env(map[string]string{"TUNELAB_GOOGLE_CLIENT_ID": "id", "TUNELAB_GOOGLE_ISSUER": "ftp://x"}), &errs)
	if len(errs) != 2 {
		t.Fatalf("want 2 errors (secret missing, bad URL), got %v", errs)
	}
}

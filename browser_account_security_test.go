package main

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// appCode is what an authenticator app shows for secret at t.
func appCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestBrowserTwoFactorAndSessions enrols TOTP from Settings with the manual key, signs out,
// signs in with a code and then with a recovery code, and signs out another session from
// the sessions page; screenshots of Settings on desktop and phone.
func TestBrowserTwoFactorAndSessions(t *testing.T) {
	findChromium(t)
	base := startServer(t)
	b := newBrowser(t, base)
	b.desktop()
	const (
		email    = "grace@example.com"
		password = "correct horse battery staple"
	)

	b.open("/signup", http.StatusOK)
	b.waitFor("the sign-up form and htmx", has(`[data-testid=signup-form]`)+" && "+htmxReady)
	b.do("sign up",
		chromedp.SendKeys(chromedp.CSS(`[data-testid=signup-form] input[name=email]`), email, chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=signup-form] input[name=password]`), password, chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=signup-form] input[name=accept_terms]`), chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=signup-form] button[type=submit]`), chromedp.NodeVisible),
	)
	b.waitFor("the dashboard", pathIs("/")+" && "+has(`[data-testid=dashboard]`))

	b.open("/settings", http.StatusOK)
	b.waitFor("the security card", has(`[data-testid=security]`))
	b.checkClean("settings")
	b.screenshot("security-01-settings-desktop")
	b.phoneFits("settings")
	b.screenshot("security-02-settings-phone")
	b.desktop()

	// Enrol: password, then the manual key into "the app", then one code.
	b.do("open two-factor settings", chromedp.Click(chromedp.CSS(`[data-testid=link-2fa]`), chromedp.NodeVisible))
	b.waitFor("the set-up form", pathIs("/settings/2fa")+" && "+has(`[data-testid=begin-form]`))
	b.do("confirm the password",
		chromedp.SendKeys(chromedp.CSS(`[data-testid=begin-form] input[name=password]`), password, chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=begin-submit]`), chromedp.NodeVisible),
	)
	b.waitFor("the QR code and the manual key", has(`[data-testid=totp-key]`)+` && document.querySelector("[data-testid=totp-qr]").complete && document.querySelector("[data-testid=totp-qr]").naturalWidth >= 200`)
	b.checkClean("two-factor set-up")
	b.screenshot("security-03-2fa-scan-desktop")
	b.phoneFits("two-factor set-up")
	b.screenshot("security-04-2fa-scan-phone")
	b.desktop()
	secret := strings.ReplaceAll(b.text(`[data-testid=totp-key]`), " ", "")
	enrolledAt := time.Now()
	b.do("type the first code",
		chromedp.SendKeys(chromedp.CSS(`[data-testid=confirm-form] input[name=code]`), appCode(t, secret, enrolledAt), chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=confirm-submit]`), chromedp.NodeVisible),
	)
	b.waitFor("the recovery codes", has(`[data-testid=recovery-code]`))
	codes := eval[[]string](b, `[...document.querySelectorAll("[data-testid=recovery-code]")].map(e => e.textContent.trim())`)
	if len(codes) != 10 {
		t.Fatalf("%d recovery codes shown, want 10", len(codes))
	}
	b.checkClean("recovery codes")
	b.screenshot("security-05-recovery-codes-desktop")
	b.phoneFits("recovery codes")
	b.screenshot("security-06-recovery-codes-phone")
	b.desktop()

	signInWith := func(what, code string) {
		t.Helper()
		b.do("sign out", chromedp.Click(chromedp.CSS(`[data-testid=signout]`), chromedp.NodeVisible))
		b.waitFor("the sign-in page", pathIs("/signin")+" && "+has(`[data-testid=signin-form]`)+" && "+htmxReady)
		b.do("type the password",
			chromedp.SendKeys(chromedp.CSS(`[data-testid=signin-form] input[name=email]`), email, chromedp.NodeVisible),
			chromedp.SendKeys(chromedp.CSS(`[data-testid=signin-form] input[name=password]`), password, chromedp.NodeVisible),
			chromedp.Click(chromedp.CSS(`[data-testid=signin-form] button[type=submit]`), chromedp.NodeVisible),
		)
		b.waitFor("the code form", pathIs("/signin/2fa")+" && "+has(`[data-testid=signin-code-form]`))
		b.do("type "+what,
			chromedp.SendKeys(chromedp.CSS(`[data-testid=signin-code-form] input[name=code]`), code, chromedp.NodeVisible),
			chromedp.Click(chromedp.CSS(`[data-testid=signin-code-submit]`), chromedp.NodeVisible),
		)
		b.waitFor("the dashboard after "+what, pathIs("/")+" && "+has(`[data-testid=dashboard]`))
		b.checkClean("signed in with " + what)
	}
	// The enrolment code's step is spent; the next step's code is within the window.
	signInWith("a code", appCode(t, secret, enrolledAt.Add(30*time.Second)))
	signInWith("a recovery code", codes[0])

	// Another device signs in (with a recovery code), then is signed out from here.
	jar, _ := cookiejar.New(nil)
	other := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(path string, form url.Values) *http.Response {
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
		resp, err := other.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if r := post("/signin", url.Values{"email": {email}, "password": {password}}); r.Header.Get("Location") != "/signin/2fa" {
		t.Fatalf("other device, password: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	if r := post("/signin/2fa", url.Values{"code": {codes[1]}}); r.Header.Get("Location") != "/" {
		t.Fatalf("other device, recovery code: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	otherGet := func() int {
		resp, err := other.Get(base + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := otherGet(); s != http.StatusOK {
		t.Fatalf("other device not signed in: %d", s)
	}

	b.open("/settings/sessions", http.StatusOK)
	b.waitFor("two sessions", `document.querySelectorAll("[data-testid=session-row]").length === 2`)
	if eval[bool](b, `!document.querySelector("[data-testid=session-row]").querySelector("[data-testid=session-current]")`) {
		t.Error("this browser's session is not listed first")
	}
	if got := b.text(`[data-testid=session-row]:not(:has([data-testid=session-current])) td`); got != "Firefox on Linux" {
		t.Errorf("the other session's device = %q, want Firefox on Linux", got)
	}
	b.checkClean("sessions")
	b.screenshot("security-07-sessions-desktop")
	b.phoneFits("sessions")
	b.screenshot("security-08-sessions-phone")
	b.desktop()
	b.do("sign out the other session", chromedp.Click(chromedp.CSS(`[data-testid=session-revoke]`), chromedp.NodeVisible))
	b.waitFor("one session left", has(`[data-testid=notice]`)+` && document.querySelectorAll("[data-testid=session-row]").length === 1`)
	if s := otherGet(); s != http.StatusSeeOther {
		t.Fatalf("the signed-out device still gets / with %d", s)
	}
	b.checkClean("after signing out the other session")
}

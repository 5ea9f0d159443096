package handlers

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"tunelab/store"
)

var resetLink = regexp.MustCompile(`/password/reset\?token=([A-Za-z0-9_-]{43})`)

// queuedMails returns the mails waiting for the sender but sign-up's verification mails,
// and marks them all sent.
func (ts *testServer) queuedMails() []store.Mail {
	ts.t.Helper()
	return ts.queuedMailsOf(func(m store.Mail) bool { return m.Kind != store.MailVerifyEmail })
}

func (ts *testServer) queuedMailsOf(keep func(store.Mail) bool) []store.Mail {
	ts.t.Helper()
	ms, err := ts.store.DueMail(context.Background(), 100)
	if err != nil {
		ts.t.Fatal(err)
	}
	var out []store.Mail
	for _, m := range ms {
		ts.store.MailSent(context.Background(), m.ID, "test")
		if keep(m) {
			out = append(out, m)
		}
	}
	return out
}

func (ts *testServer) askReset(email string) response {
	ts.t.Helper()
	return ts.do(ts.client(), "POST", "/password/forgot", url.Values{"email": {email}}, nil)
}

func TestForgotPasswordAnswersTheSameForUnknownEmails(t *testing.T) {
	ts := newTestServer(t, Config{})
	ts.signUp("known@example.com")
	known, unknown := ts.askReset("known@example.com"), ts.askReset("nobody@example.com")
	if known.status != http.StatusSeeOther || unknown.status != known.status || known.header.Get("Location") != unknown.header.Get("Location") {
		t.Fatalf("answers differ: %d %q / %d %q", known.status, known.header.Get("Location"), unknown.status, unknown.header.Get("Location"))
	}
	if page := ts.do(ts.client(), "GET", known.header.Get("Location"), nil, nil); !strings.Contains(page.body, `data-testid="forgot-sent"`) {
		t.Fatal("no neutral notice")
	}
	mails := ts.queuedMails()
	if len(mails) != 1 || mails[0].To != "known@example.com" || mails[0].Kind != store.MailPasswordReset || !resetLink.MatchString(mails[0].Text) || !resetLink.MatchString(mails[0].HTML) {
		t.Fatalf("mails: %+v", mails)
	}
	if r := ts.do(ts.client(), "POST", "/password/forgot", url.Values{"email": {"not an email"}}, nil); r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, `data-testid="email-error"`) {
		t.Fatalf("bad email: %d", r.status)
	}
	if ts.eventCount(store.EventPasswordResetAsked) != 2 {
		t.Fatal("requests not recorded")
	}
	// Three requests an hour per email, known or not; the fourth is refused the same way.
	for _, email := range []string{"known@example.com", "nobody@example.com"} {
		for range 2 {
			ts.askReset(email)
		}
		if r := ts.askReset(email); r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
			t.Fatalf("fourth request for %s: %d", email, r.status)
		}
	}
	if n := len(ts.queuedMails()); n != 2 {
		t.Fatalf("%d more mails, want 2 (the limited request sends none)", n)
	}
}

func TestPasswordResetFlow(t *testing.T) {
	ts := newTestServer(t, Config{})
	ada := ts.signUp("ada@example.com")
	other := ts.client()
	ts.do(other, "POST", "/signin", url.Values{"email": {"ada@example.com"}, "password": {testPassword}}, nil)

	ts.askReset("ada@example.com")
	m := resetLink.FindStringSubmatch(ts.queuedMails()[0].Text)
	link := m[0]
	visitor := ts.client()
	form := ts.do(visitor, "GET", link, nil, nil)
	if form.status != 200 || !strings.Contains(form.body, `data-testid="reset-form"`) || !strings.Contains(form.body, "ada@example.com") || form.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("reset page: %d", form.status)
	}
	// A weak password: the form again, the link still good.
	if r := ts.do(visitor, "POST", "/password/reset", url.Values{"token": {m[1]}, "new_password": {"password"}}, nil); r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, `data-testid="new-password-error"`) {
		t.Fatalf("weak password: %d", r.status)
	}
	done := ts.do(visitor, "POST", "/password/reset?token="+m[1], url.Values{"new_password": {"a brand new long passphrase"}}, nil)
	if done.status != http.StatusSeeOther || done.header.Get("Location") != "/signin?reset=1" {
		t.Fatalf("reset: %d %q", done.status, done.header.Get("Location"))
	}
	// Nobody is signed in by it, and every session of the account has ended.
	if r := ts.do(visitor, "GET", "/", nil, nil); r.status != http.StatusSeeOther {
		t.Fatalf("the reset signed the visitor in: %d", r.status)
	}
	for _, c := range []*http.Client{ada, other} {
		if r := ts.do(c, "GET", "/settings", nil, nil); r.status != http.StatusSeeOther {
			t.Fatalf("a session survived the reset: %d", r.status)
		}
	}
	if r := ts.do(visitor, "GET", "/signin?reset=1", nil, nil); !strings.Contains(r.body, "Sign in with the new password") {
		t.Fatal("no notice on the sign-in page")
	}
	if r := ts.do(ts.client(), "POST", "/signin", url.Values{"email": {"ada@example.com"}, "password": {testPassword}}, nil); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("old password: %d", r.status)
	}
	if r := ts.do(ts.client(), "POST", "/signin", url.Values{"email": {"ada@example.com"}, "password": {"a brand new long passphrase"}}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("new password: %d", r.status)
	}
	changed := ts.queuedMails()
	if len(changed) != 1 || changed[0].Kind != store.MailPasswordChanged || !strings.Contains(changed[0].Text, "reset with a link") {
		t.Fatalf("password changed mail: %+v", changed)
	}
	// Used, wrong and expired links are refused.
	for name, tok := range map[string]string{"used": m[1], "wrong": strings.Repeat("A", 43), "empty": ""} {
		if r := ts.do(ts.client(), "GET", "/password/reset?token="+tok, nil, nil); r.status != http.StatusBadRequest || !strings.Contains(r.body, `data-testid="reset-invalid"`) {
			t.Errorf("GET %s link: %d", name, r.status)
		}
		if r := ts.do(ts.client(), "POST", "/password/reset", url.Values{"token": {tok}, "new_password": {"yet another long passphrase"}}, nil); r.status != http.StatusBadRequest {
			t.Errorf("POST %s link: %d", name, r.status)
		}
	}
	ts.askReset("ada@example.com")
	late := resetLink.FindStringSubmatch(ts.queuedMails()[0].Text)
	ts.advance(30 * time.Minute)
	if r := ts.do(ts.client(), "POST", "/password/reset", url.Values{"token": {late[1]}, "new_password": {"yet another long passphrase"}}, nil); r.status != http.StatusBadRequest {
		t.Fatalf("expired link: %d", r.status)
	}
	if ts.eventCount(store.EventPasswordReset) != 1 {
		t.Fatal("reset not recorded")
	}
}

func TestPasswordChangeInSettingsIsMailed(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("ada@example.com")
	r := ts.do(c, "POST", "/settings/password", url.Values{"current_password": {testPassword}, "new_password": {"a brand new long passphrase"}}, nil)
	if r.status != 200 {
		t.Fatalf("change: %d", r.status)
	}
	mails := ts.queuedMails()
	if len(mails) != 1 || mails[0].To != "ada@example.com" || mails[0].Kind != store.MailPasswordChanged || !strings.Contains(mails[0].Text, "changed in Settings") {
		t.Fatalf("mails: %+v", mails)
	}
	if r := ts.do(ts.admin("root@example.com"), "GET", "/admin", nil, nil); !strings.Contains(r.body, `data-testid="admin-mail"`) || !strings.Contains(r.body, "Your tunelab password was changed") {
		t.Fatal("the admin outbox does not list the mail")
	}
}

func TestBadResetLinksAreRateLimited(t *testing.T) {
	ts := newTestServer(t, Config{})
	for i := range 20 {
		if r := ts.do(ts.client(), "POST", "/password/reset", url.Values{"token": {"x"}, "new_password": {"whatever long passphrase"}}, nil); r.status != http.StatusBadRequest {
			t.Fatalf("attempt %d: %d", i, r.status)
		}
	}
	if r := ts.do(ts.client(), "POST", "/password/reset", url.Values{"token": {"x"}, "new_password": {"whatever long passphrase"}}, nil); r.status != http.StatusTooManyRequests {
		t.Fatalf("21st bad link: %d", r.status)
	}
}

func TestEmailVerificationBannerAndLink(t *testing.T) {
	ts := newTestServer(t, Config{})
	ada := ts.signUp("ada@example.com")
	mails := ts.queuedMailsOf(func(m store.Mail) bool { return m.Kind == store.MailVerifyEmail })
	link := regexp.MustCompile(`/email/verify\?token=([A-Za-z0-9_-]{43})`)
	if len(mails) != 1 || mails[0].To != "ada@example.com" || !link.MatchString(mails[0].Text) || !link.MatchString(mails[0].HTML) {
		t.Fatalf("verification mail: %+v", mails)
	}
	first := link.FindStringSubmatch(mails[0].Text)[1]
	for _, path := range []string{"/", "/runs", "/settings"} {
		if r := ts.do(ada, "GET", path, nil, nil); !strings.Contains(r.body, `data-testid="verify-banner"`) {
			t.Fatalf("%s: no banner", path)
		}
	}
	// Send it again: a new link, a notice; three an hour.
	if r := ts.do(ada, "POST", "/email/verify/resend", url.Values{}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("resend: %d", r.status)
	}
	if r := ts.do(ada, "GET", "/", nil, nil); !strings.Contains(r.body, "We sent a new link to ada@example.com.") {
		t.Fatal("no notice after resend")
	}
	again := ts.queuedMailsOf(func(m store.Mail) bool { return m.Kind == store.MailVerifyEmail })
	if len(again) != 1 {
		t.Fatalf("resend queued %d mails", len(again))
	}
	for range 2 {
		ts.do(ada, "POST", "/email/verify/resend", url.Values{}, nil)
	}
	ts.do(ada, "POST", "/email/verify/resend", url.Values{}, nil)
	if n := len(ts.queuedMailsOf(func(m store.Mail) bool { return true })); n != 2 {
		t.Fatalf("%d more mails, want 2 (the fourth is limited)", n)
	}
	// The link shows a button; only the POST confirms. Wrong and used links are refused.
	if r := ts.do(ts.client(), "GET", "/email/verify?token="+first, nil, nil); r.status != 200 || !strings.Contains(r.body, `data-testid="verify-form"`) {
		t.Fatalf("verify page: %d", r.status)
	}
	if r := ts.do(ada, "GET", "/", nil, nil); !strings.Contains(r.body, `data-testid="verify-banner"`) {
		t.Fatal("a GET confirmed the address")
	}
	if r := ts.do(ts.client(), "POST", "/email/verify", url.Values{"token": {"wrong"}}, nil); r.status != http.StatusBadRequest {
		t.Fatalf("wrong token: %d", r.status)
	}
	if r := ts.do(ts.client(), "POST", "/email/verify", url.Values{"token": {first}}, nil); r.status != 200 || !strings.Contains(r.body, `data-testid="verify-done"`) {
		t.Fatalf("confirm: %d", r.status)
	}
	if r := ts.do(ada, "GET", "/", nil, nil); strings.Contains(r.body, `data-testid="verify-banner"`) {
		t.Fatal("banner after confirming")
	}
	if r := ts.do(ts.client(), "GET", "/email/verify?token="+first, nil, nil); r.status != http.StatusBadRequest || !strings.Contains(r.body, `data-testid="verify-invalid"`) {
		t.Fatalf("used link: %d", r.status)
	}
	if ts.eventCount(store.EventEmailVerified) != 1 {
		t.Fatal("verification not recorded")
	}
}

func TestRunMailsFollowThePreference(t *testing.T) {
	ts, c, runA, tokA, runB, tokB := workerSetup(t)
	ts.queuedMailsOf(func(store.Mail) bool { return false }) // the sign-up's confirmation
	if r := ts.do(c, "GET", "/settings", nil, nil); !strings.Contains(r.body, `href="/settings/email"`) {
		t.Fatal("Settings does not link to the email preferences")
	}
	if r := ts.do(c, "GET", "/settings/email", nil, nil); r.status != 200 || !strings.Contains(r.body, `data-testid="run-mails"`) || !strings.Contains(r.body, "checked") {
		t.Fatalf("preferences page: %d, run mails not on by default", r.status)
	}
	ts.post(runA, "heartbeat", tokA, `{"step":1,"total_steps":10}`)
	ts.post(runA, "metrics", tokA, `{"points":[{"name":"loss","step":1,"value":2.5},{"name":"loss","step":10,"value":0.4321}]}`)
	ts.advance(90 * time.Second)
	if r := ts.post(runA, "finish", tokA, `{"status":"succeeded"}`); r.status != 200 {
		t.Fatalf("finish: %d %s", r.status, r.body)
	}
	mails := ts.queuedMails()
	if len(mails) != 1 || mails[0].Kind != store.MailRunEnded || mails[0].To != "worker@example.com" ||
		!strings.Contains(mails[0].Subject, "succeeded") || !strings.Contains(mails[0].Text, "Final loss: 0.4321") ||
		!strings.Contains(mails[0].Text, "Duration: 1 min 30 s") || !strings.Contains(mails[0].HTML, "/settings/email") {
		t.Fatalf("run mail: %+v", mails)
	}
	// Turned off: no mail for the next run.
	if r := ts.do(c, "POST", "/settings/email", url.Values{}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("save: %d", r.status)
	}
	if r := ts.do(c, "GET", "/settings/email?saved=1", nil, nil); strings.Contains(r.body, "checked") || !strings.Contains(r.body, `data-testid="mail-prefs-saved"`) {
		t.Fatal("preference not saved")
	}
	if r := ts.post(runB, "finish", tokB, `{"status":"failed","reason":"out of memory"}`); r.status != 200 {
		t.Fatalf("finish: %d", r.status)
	}
	if n := len(ts.queuedMails()); n != 0 {
		t.Fatalf("%d mails with run mails off", n)
	}
}

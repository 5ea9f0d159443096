package handlers

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"tunelab/store"
)

const (
	firefoxUA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	safariUA  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)

func mailsOfKind(ms []store.Mail, kind string) []store.Mail {
	var out []store.Mail
	for _, m := range ms {
		if m.Kind == kind {
			out = append(out, m)
		}
	}
	return out
}

func TestNewDeviceMail(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.client()
	ua := map[string]string{"User-Agent": firefoxUA}
	if r := ts.do(c, "POST", "/signup", signUpValues("dev@example.com"), ua); r.status != http.StatusSeeOther {
		t.Fatalf("sign up: %d", r.status)
	}
	ts.signOutClient(c)
	signIn := func(headers map[string]string) {
		t.Helper()
		if r := ts.do(ts.client(), "POST", "/signin", url.Values{"email": {"dev@example.com"}, "password": {testPassword}}, headers); r.status != http.StatusSeeOther {
			t.Fatalf("sign in: %d", r.status)
		}
	}
	// The device the account was made on is not new.
	signIn(ua)
	if got := mailsOfKind(ts.queuedMails(), store.MailNewDevice); len(got) != 0 {
		t.Fatalf("new-device mail for the sign-up's own device: %+v", got)
	}
	// Another browser is; the mail names it, and only the first time.
	signIn(map[string]string{"User-Agent": safariUA})
	got := mailsOfKind(ts.queuedMails(), store.MailNewDevice)
	if len(got) != 1 || got[0].To != "dev@example.com" || !strings.Contains(got[0].Text, "Safari on iOS") ||
		!strings.Contains(got[0].Text, "127.0.0.0/24") || !strings.Contains(got[0].Text, "/settings/sessions") {
		t.Fatalf("new-device mail: %+v", got)
	}
	signIn(map[string]string{"User-Agent": safariUA})
	if again := mailsOfKind(ts.queuedMails(), store.MailNewDevice); len(again) != 0 {
		t.Fatal("a known device was mailed about again")
	}
}

func TestTwoFactorChangesAreMailed(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("tf@example.com")
	secret, _ := ts.enrolTOTP(c)
	on := mailsOfKind(ts.queuedMails(), store.MailTwoFactor)
	if len(on) != 1 || !strings.Contains(on[0].Subject, "turned on") {
		t.Fatalf("2FA on mail: %+v", on)
	}
	r := ts.do(c, "POST", "/settings/2fa", url.Values{"action": {"disable"}, "password": {testPassword}, "code": {totpCode(t, secret, ts.clock())}}, nil)
	if r.status != http.StatusOK {
		t.Fatalf("disable: %d", r.status)
	}
	off := mailsOfKind(ts.queuedMails(), store.MailTwoFactor)
	if len(off) != 1 || !strings.Contains(off[0].Subject, "turned off") || off[0].Unsubscribe != "" {
		t.Fatalf("2FA off mail: %+v", off)
	}
}

var unsubscribeLinkRE = regexp.MustCompile(`https?://[^\s"<>]+/mail/unsubscribe\?[^\s"<>]+`)

func TestProductUpdatesOffByDefault(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("prefs@example.com")
	page := ts.do(c, "GET", "/settings/email", nil, nil)
	if !strings.Contains(page.body, `data-testid="product-mails"`) {
		t.Fatal("no product updates choice")
	}
	prefs := func() store.MailPrefs {
		u, _ := ts.store.UserByEmail(t.Context(), "prefs@example.com")
		p, err := ts.store.GetMailPrefs(t.Context(), u.ID)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if p := prefs(); p.ProductMails || !p.RunMails {
		t.Fatalf("defaults: %+v", p)
	}
	ts.do(c, "POST", "/settings/email", url.Values{"run_mails": {"on"}, "product_mails": {"on"}}, nil)
	if p := prefs(); !p.ProductMails || !p.RunMails {
		t.Fatalf("after turning both on: %+v", p)
	}
}

func TestRunMailUnsubscribesInOneClick(t *testing.T) {
	ts, c, runA, tokA, runB, tokB := workerSetup(t)
	ts.queuedMails()
	ts.post(runA, "heartbeat", tokA, `{"step":1,"total_steps":10}`)
	if r := ts.post(runA, "finish", tokA, `{"status":"succeeded"}`); r.status != 200 {
		t.Fatalf("finish: %d", r.status)
	}
	mails := ts.queuedMails()
	if len(mails) != 1 || mails[0].Unsubscribe == "" {
		t.Fatalf("run mail without an unsubscribe link: %+v", mails)
	}
	link := mails[0].Unsubscribe
	if !strings.Contains(mails[0].Text, link) || !strings.Contains(mails[0].HTML, strings.ReplaceAll(link, "&", "&amp;")) {
		t.Fatal("the unsubscribe link is not in the mail's text and HTML")
	}
	if unsubscribeLinkRE.FindString(mails[0].Text) != link {
		t.Fatalf("link %q not found as such in the text", link)
	}
	path := strings.TrimPrefix(link, ts.URL)

	// Tampered links do nothing.
	u, _ := url.Parse(path)
	for _, change := range []func(q url.Values){
		func(q url.Values) { q.Set("s", strings.Repeat("A", 43)) },
		func(q url.Values) { q.Set("l", store.ListProductMails) },
		func(q url.Values) { q.Set("u", "999") },
	} {
		q := u.Query()
		change(q)
		if r := ts.do(ts.client(), "POST", u.Path+"?"+q.Encode(), url.Values{"List-Unsubscribe": {"One-Click"}}, nil); r.status != http.StatusNotFound {
			t.Errorf("tampered link %s: %d", q.Encode(), r.status)
		}
	}
	// GET asks (a mail scanner changes nothing), with no sign-in.
	stranger := ts.client()
	if r := ts.do(stranger, "GET", path, nil, nil); r.status != http.StatusOK || !strings.Contains(r.body, `data-testid="unsubscribe-form"`) {
		t.Fatalf("confirm page: %d\n%s", r.status, r.body)
	}
	owner, _ := ts.store.UserByEmail(t.Context(), "worker@example.com")
	if on, _ := ts.store.RunMails(t.Context(), owner.ID); !on {
		t.Fatal("GET unsubscribed")
	}
	// The mail client's one-click POST (RFC 8058), without cookies.
	if r := ts.do(stranger, "POST", path, url.Values{"List-Unsubscribe": {"One-Click"}}, nil); r.status != http.StatusOK || !strings.Contains(r.body, `data-testid="unsubscribe-done"`) {
		t.Fatalf("one-click POST: %d", r.status)
	}
	if s := ts.do(c, "GET", "/settings/email", nil, nil); strings.Contains(s.body, "checked") {
		t.Fatal("run mails still on after unsubscribing")
	}
	if r := ts.post(runB, "finish", tokB, `{"status":"failed","reason":"oom"}`); r.status != 200 {
		t.Fatalf("finish: %d", r.status)
	}
	if n := len(ts.queuedMails()); n != 0 {
		t.Fatalf("%d run mails after unsubscribing", n)
	}
	if ts.countEvents(t, store.EventUnsubscribed) != 1 {
		t.Error("no unsubscribed event")
	}
}

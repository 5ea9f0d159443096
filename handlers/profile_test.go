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

var emailChangeLink = regexp.MustCompile(`/settings/email/confirm\?token=([A-Za-z0-9_-]{43})`)

func TestDisplayName(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("named@example.com")
	for _, bad := range []string{strings.Repeat("n", store.MaxDisplayNameLen+1), "Ada\x07Lovelace"} {
		r := ts.do(c, "POST", "/settings/profile/name", url.Values{"display_name": {bad}}, nil)
		if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, `data-testid="name-error"`) {
			t.Errorf("name %q: %d", bad, r.status)
		}
	}
	r := ts.do(c, "POST", "/settings/profile/name", url.Values{"display_name": {"  Ada Lovelace "}}, nil)
	if r.status != http.StatusOK || !strings.Contains(r.body, `data-testid="name-saved"`) || !strings.Contains(r.body, `title="named@example.com">Ada Lovelace<`) {
		t.Fatalf("save name: %d, or the header does not show it at once\n%s", r.status, r.body)
	}
	page := ts.do(c, "GET", "/settings", nil, nil)
	if !strings.Contains(page.body, `value="Ada Lovelace"`) || !strings.Contains(page.body, `data-testid="user-email" title="named@example.com">Ada Lovelace<`) {
		t.Fatal("name not shown in Settings and the header")
	}
	if ts.countEvents(t, store.EventProfileChanged) != 1 {
		t.Error("no profile_changed event")
	}
}

func TestEmailChangeTakesEffectOnlyAfterTheLink(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("old@example.com")
	ts.queuedMails()
	for _, tc := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"new_email": {"new@example.com"}, "password": {"not my password!"}}, `data-testid="email-password-error"`},
		{url.Values{"new_email": {"not an address"}, "password": {testPassword}}, `data-testid="new-email-error"`},
		{url.Values{"new_email": {"OLD@example.com"}, "password": {testPassword}}, "already your email"},
	} {
		r := ts.do(c, "POST", "/settings/profile/email", tc.form, nil)
		if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, tc.want) {
			t.Errorf("%v: %d, want 422 with %s", tc.form, r.status, tc.want)
		}
	}
	if n := len(ts.queuedMails()); n != 0 {
		t.Fatalf("%d mails after refused changes", n)
	}
	r := ts.do(c, "POST", "/settings/profile/email", url.Values{"new_email": {"New@Example.com"}, "password": {testPassword}}, nil)
	if r.status != http.StatusOK || !strings.Contains(r.body, `data-testid="email-pending"`) {
		t.Fatalf("ask change: %d\n%s", r.status, r.body)
	}
	mails := ts.queuedMails()
	if len(mails) != 1 || mails[0].To != "new@example.com" || mails[0].Kind != store.MailEmailChangeConfirm {
		t.Fatalf("mails: %+v", mails)
	}
	m := emailChangeLink.FindStringSubmatch(mails[0].Text)
	if m == nil || !strings.Contains(mails[0].HTML, m[0]) {
		t.Fatalf("no link in the mail:\n%s", mails[0].Text)
	}
	if ts.signedInAs(c) != "old@example.com" {
		t.Fatal("the email changed before the link was opened")
	}
	// Opening the link (a mail scanner would) changes nothing; the button does, once,
	// without needing this browser's session.
	other := ts.client()
	if p := ts.do(other, "GET", m[0], nil, nil); p.status != http.StatusOK || !strings.Contains(p.body, "new@example.com") || ts.signedInAs(c) != "old@example.com" {
		t.Fatalf("confirm page: %d, or GET changed the email", p.status)
	}
	if p := ts.do(other, "POST", "/settings/email/confirm", url.Values{"token": {m[1]}}, nil); p.status != http.StatusOK || !strings.Contains(p.body, `data-testid="email-change-done"`) {
		t.Fatalf("confirm: %d\n%s", p.status, p.body)
	}
	if ts.signedInAs(c) != "new@example.com" {
		t.Fatal("the email did not change")
	}
	told := ts.queuedMails()
	if len(told) != 1 || told[0].To != "old@example.com" || told[0].Kind != store.MailEmailChanged || !strings.Contains(told[0].Text, "new@example.com") {
		t.Fatalf("old address not told: %+v", told)
	}
	if p := ts.do(other, "POST", "/settings/email/confirm", url.Values{"token": {m[1]}}, nil); p.status != http.StatusNotFound {
		t.Fatalf("link used twice: %d", p.status)
	}
	// The new address signs in; it counts as verified (the link reached it).
	if r := ts.do(ts.client(), "POST", "/signin", url.Values{"email": {"new@example.com"}, "password": {testPassword}}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("sign in with the new address: %d", r.status)
	}
	u, _ := ts.store.UserByEmail(context.Background(), "new@example.com")
	if ok, _ := ts.store.EmailVerified(context.Background(), u.ID); !ok {
		t.Error("the new address is not marked verified")
	}

	// An expired link, and a link replaced by a newer one, do nothing.
	ts.do(c, "POST", "/settings/profile/email", url.Values{"new_email": {"third@example.com"}, "password": {testPassword}}, nil)
	first := emailChangeLink.FindStringSubmatch(ts.queuedMails()[0].Text)[1]
	ts.do(c, "POST", "/settings/profile/email", url.Values{"new_email": {"fourth@example.com"}, "password": {testPassword}}, nil)
	second := emailChangeLink.FindStringSubmatch(ts.queuedMails()[0].Text)[1]
	if p := ts.do(other, "POST", "/settings/email/confirm", url.Values{"token": {first}}, nil); p.status != http.StatusNotFound {
		t.Fatalf("replaced link: %d", p.status)
	}
	ts.advance(store.EmailChangeTTL + time.Minute)
	if p := ts.do(other, "GET", "/settings/email/confirm?token="+second, nil, nil); p.status != http.StatusNotFound {
		t.Fatalf("expired link page: %d", p.status)
	}
	if p := ts.do(other, "POST", "/settings/email/confirm", url.Values{"token": {second}}, nil); p.status != http.StatusNotFound {
		t.Fatalf("expired link: %d", p.status)
	}
	if now, _ := ts.store.UserByID(context.Background(), u.ID); now.Email != "new@example.com" {
		t.Fatalf("a dead link changed the email to %s", now.Email)
	}
	if ts.countEvents(t, store.EventEmailChanged) != 1 || ts.countEvents(t, store.EventEmailChangeRequested) != 3 {
		t.Error("email change events missing")
	}
}

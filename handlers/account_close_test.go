package handlers

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"tunelab/store"
)

// TestCloseAccountEndToEnd: closing needs the password; it signs out every browser,
// revokes the API key, cancels the queued run and stops the running one (its worker hears
// it), and hides everything; signing in within 14 days offers to reopen; after them the
// account signs in no more. The activity log records each step.
func TestCloseAccountEndToEnd(t *testing.T) {
	ts, laptop, runA, tokA, _, _ := workerSetup(t)
	ctx := context.Background()
	ds := ts.datasetFor(laptop, completionLines(20))
	queued := ts.startRun(laptop, runValues(ds))
	phone := ts.client()
	signIn := func(c *http.Client) response {
		return ts.do(c, "POST", "/signin", url.Values{"email": {"worker@example.com"}, "password": {testPassword}}, nil)
	}
	if r := signIn(phone); r.status != http.StatusSeeOther {
		t.Fatalf("phone sign in: %d", r.status)
	}
	u, err := ts.store.Authenticate(ctx, "worker@example.com", testPassword)
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := ts.store.CreateAPIKey(ctx, u.ID, "script", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	apiCall := func() int {
		return ts.do(ts.client(), "GET", "/api/v1/runs", nil, map[string]string{"Authorization": "Bearer " + key}).status
	}
	if s := apiCall(); s != http.StatusOK {
		t.Fatalf("API key before closing: %d", s)
	}

	page := ts.do(laptop, "GET", "/settings/close", nil, nil)
	for _, want := range []string{`data-testid="close-form"`, "14 days", "90 days", "GPU time per run", "Audit log entries"} {
		if !strings.Contains(page.body, want) {
			t.Fatalf("close page lacks %q:\n%s", want, page.body)
		}
	}
	if strings.Contains(page.body, "Stripe references") {
		t.Fatal("the close page names Stripe with billing off")
	}
	if r := ts.do(laptop, "POST", "/settings/close", url.Values{"password": {"not the password"}}, nil); r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, `data-testid="password-error"`) {
		t.Fatalf("close with a wrong password: %d", r.status)
	}
	if r := ts.do(laptop, "GET", "/runs", nil, nil); r.status != http.StatusOK {
		t.Fatalf("a wrong password closed the account: %d", r.status)
	}
	r := ts.do(laptop, "POST", "/settings/close", url.Values{"password": {testPassword}}, nil)
	if r.status != http.StatusOK || !strings.Contains(r.body, "Your account is closed") || !strings.Contains(r.body, `data-testid="reopen-until"`) {
		t.Fatalf("close: %d\n%s", r.status, r.body)
	}
	for name, c := range map[string]*http.Client{"laptop": laptop, "phone": phone} {
		if r := ts.do(c, "GET", "/runs", nil, nil); r.status != http.StatusSeeOther {
			t.Fatalf("%s still signed in after closing: %d", name, r.status)
		}
	}
	if s := apiCall(); s != http.StatusUnauthorized {
		t.Fatalf("API key after closing: %d, want 401", s)
	}
	if run, _ := ts.store.RunByID(ctx, queued); run.Status != store.RunCancelled {
		t.Fatalf("queued run after closing: %s", run.Status)
	}
	if hb := ts.post(runA, "heartbeat", tokA, `{"step":1,"total_steps":10}`); !strings.Contains(hb.body, `"cancel":true`) {
		t.Fatalf("running run's worker was not told to stop: %d %s", hb.status, hb.body)
	}

	// Signing in again within the window: the reopen page, not a session.
	// (Only an hour on: sessions' expiry is in real time, so days on the fake clock would
	// expire them; the store's tests reopen on day 13.)
	again := ts.client()
	ts.advance(time.Hour)
	if r := signIn(again); r.status != http.StatusSeeOther || r.header.Get("Location") != "/account/reopen" {
		t.Fatalf("sign in to a closed account: %d %q", r.status, r.header.Get("Location"))
	}
	if r := ts.do(again, "GET", "/runs", nil, nil); r.status != http.StatusSeeOther {
		t.Fatalf("a closed account got a session before reopening: %d", r.status)
	}
	reopen := ts.do(again, "GET", "/account/reopen", nil, nil)
	if !strings.Contains(reopen.body, "Your account is closed") || !strings.Contains(reopen.body, `data-testid="reopen-form"`) {
		t.Fatalf("reopen page:\n%s", reopen.body)
	}
	if r := ts.do(ts.client(), "POST", "/account/reopen", nil, nil); r.status != http.StatusSeeOther || r.header.Get("Location") != "/signin" {
		t.Fatalf("reopen without signing in: %d %q", r.status, r.header.Get("Location"))
	}
	if r := ts.do(again, "POST", "/account/reopen", nil, nil); r.status != http.StatusSeeOther || r.header.Get("Location") != "/" {
		t.Fatalf("reopen: %d %q", r.status, r.header.Get("Location"))
	}
	if r := ts.do(again, "GET", "/runs", nil, nil); r.status != http.StatusOK {
		t.Fatalf("after reopening: %d", r.status)
	}
	activity := ts.do(again, "GET", "/settings/activity", nil, nil)
	if strings.Count(activity.body, `data-testid="audit-row"`) != 2 || !strings.Contains(activity.body, "Account closed") || !strings.Contains(activity.body, "Account reopened") {
		t.Fatalf("activity log:\n%s", activity.body)
	}

	// Closed again and past the window: the account signs in no more.
	if r := ts.do(again, "POST", "/settings/close", url.Values{"password": {testPassword}}, nil); r.status != http.StatusOK {
		t.Fatalf("close again: %d", r.status)
	}
	ts.advance(store.ReopenWindow + time.Hour)
	if r := signIn(ts.client()); r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, "email or password is not right") {
		t.Fatalf("sign in after the window: %d", r.status)
	}
}

// TestCloseAccountNeedsTheCodeWithTwoFactor: with two-factor sign-in on, closing needs a
// right code as well as the password, and the reopen offer comes after the code.
func TestCloseAccountNeedsTheCodeWithTwoFactor(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("two@example.com")
	secret, _ := ts.enrolTOTP(c)
	page := ts.do(c, "GET", "/settings/close", nil, nil)
	if !strings.Contains(page.body, `name="code"`) {
		t.Fatal("close form has no code field with two-factor sign-in on")
	}
	if r := ts.do(c, "POST", "/settings/close", url.Values{"password": {testPassword}, "code": {"000000"}}, nil); r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, `data-testid="code-error"`) {
		t.Fatalf("close with a wrong code: %d", r.status)
	}
	ts.advance(31 * time.Second)
	if r := ts.do(c, "POST", "/settings/close", url.Values{"password": {testPassword}, "code": {totpCode(t, secret, ts.clock())}}, nil); r.status != http.StatusOK {
		t.Fatalf("close with password and code: %d\n%s", r.status, r.body)
	}
	b := ts.client()
	if r := ts.do(b, "POST", "/signin", url.Values{"email": {"two@example.com"}, "password": {testPassword}}, nil); r.header.Get("Location") != "/signin/2fa" {
		t.Fatalf("sign in: %d %q, want the code step first", r.status, r.header.Get("Location"))
	}
	ts.advance(31 * time.Second)
	if r := ts.do(b, "POST", "/signin/2fa", url.Values{"code": {totpCode(t, secret, ts.clock())}}, nil); r.header.Get("Location") != "/account/reopen" {
		t.Fatalf("after the code: %d %q, want the reopen page", r.status, r.header.Get("Location"))
	}
}

// TestAuditLogOnAdminPageAndOnlyOwnInSettings: a dataset delete is on the admin's audit
// log and on its owner's activity page, not on another person's.
func TestAuditLogOnAdminPageAndOnlyOwnInSettings(t *testing.T) {
	ts := newTestServer(t, Config{})
	ada := ts.signUp("ada@example.com")
	bob := ts.signUp("bob@example.com")
	ds := ts.datasetFor(ada, completionLines(20))
	if r := ts.do(ada, "POST", "/datasets/"+ds+"/delete", nil, nil); r.status != http.StatusSeeOther {
		t.Fatalf("delete dataset: %d", r.status)
	}
	target := fmt.Sprintf("dataset %s", ds)
	if r := ts.do(ada, "GET", "/settings/activity", nil, nil); !strings.Contains(r.body, "Dataset deleted") || !strings.Contains(r.body, target) {
		t.Fatalf("owner's activity:\n%s", r.body)
	}
	if r := ts.do(bob, "GET", "/settings/activity", nil, nil); strings.Contains(r.body, "Dataset deleted") || !strings.Contains(r.body, "Nothing recorded yet") {
		t.Fatalf("another person's activity shows it:\n%s", r.body)
	}
	admin := ts.admin("root@example.com")
	r := ts.do(admin, "GET", "/admin", nil, nil)
	if !strings.Contains(r.body, `data-testid="admin-audit"`) || !strings.Contains(r.body, "Dataset deleted") || !strings.Contains(r.body, "ada@example.com") {
		t.Fatalf("admin audit log:\n%s", r.body)
	}
	if s := ts.do(ada, "GET", "/settings", nil, nil); !strings.Contains(s.body, `href="/settings/activity"`) || !strings.Contains(s.body, `href="/settings/close"`) {
		t.Fatal("Settings has no links to the activity log and closing")
	}
}

// TestLegalPagesSayWhatClosingDoes: the Terms and Privacy pages state the reopen window and
// the purge limit the code uses, and what is kept.
func TestLegalPagesSayWhatClosingDoes(t *testing.T) {
	reopen := fmt.Sprintf("%d days", int(store.ReopenWindow/(24*time.Hour)))
	purge := fmt.Sprintf("within %d days of closing", int(store.AccountPurgeLimit/(24*time.Hour)))
	for _, ts := range []*testServer{newTestServer(t, Config{}), newBillingServer(t)} {
		for path, id := range map[string]string{"/terms": "terms-closing", "/privacy": "privacy-closing"} {
			body := ts.do(ts.client(), "GET", path, nil, nil).body
			i := strings.Index(body, `data-testid="`+id+`"`)
			if i < 0 {
				t.Fatalf("%s has no closing text", path)
			}
			text := strings.Join(strings.Fields(body[i:min(len(body), i+1500)]), " ")
			for _, want := range []string{"in Settings", reopen, purge, "GPU time each run used", "anonymous account number"} {
				if !strings.Contains(text, want) {
					t.Errorf("%s closing text lacks %q: %s", path, want, text)
				}
			}
			if strings.Contains(text, " ,") {
				t.Errorf("%s: stray space before a comma: %s", path, text)
			}
		}
	}
}

package handlers

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"tunelab/store"
)

func signInFrom(ts *testServer, email, ip string) (*http.Client, response) {
	ts.t.Helper()
	c := ts.client()
	r := ts.do(c, "POST", "/signin", url.Values{"email": {email}, "password": {testPassword}}, map[string]string{"X-Forwarded-For": ip})
	return c, r
}

// Security events carry the country of their address; the review filters them, counts
// failures by account and by address, and lists a sign-in from a country not seen before.
func TestSecurityReviewWithCountries(t *testing.T) {
	ts, _ := newGeoTestServer(t)
	ctx := context.Background()
	if _, err := ts.store.CreateUser(ctx, store.NewUser{Email: "root@example.com", Password: testPassword, IsAdmin: true, TermsVersion: TermsVersion}); err != nil {
		t.Fatal(err)
	}
	admin, _ := signInFrom(ts, "root@example.com", "192.0.2.1")
	ts.do(ts.client(), "POST", "/signup", signUpValues("traveller@example.com"), map[string]string{"X-Forwarded-For": "192.0.2.20"})
	signInFrom(ts, "traveller@example.com", "192.0.2.21")   // DE again: not new
	signInFrom(ts, "traveller@example.com", "198.51.100.5") // JP: new
	for range 3 {
		ts.do(ts.client(), "POST", "/signin", url.Values{"email": {"traveller@example.com"}, "password": {"wrong guess here"}},
			map[string]string{"X-Forwarded-For": "203.0.113.9"})
	}
	events, err := ts.store.SearchSecurityEvents(ctx, store.SecurityFilter{Email: "traveller@example.com", Kind: store.EventSignIn})
	if err != nil || len(events) != 2 || events[0].Country != "JP" || events[1].Country != "DE" || events[0].IP != "198.51.100.5" {
		t.Fatalf("sign-ins with countries: %+v %v", events, err)
	}
	r := ts.do(admin, "GET", "/admin/security", nil, nil)
	if r.status != 200 {
		t.Fatalf("review: %d", r.status)
	}
	newCountry := r.body[strings.Index(r.body, `data-testid="new-country"`):]
	newCountry = newCountry[:strings.Index(newCountry, "</section>")]
	if !strings.Contains(newCountry, "198.51.100.5") || strings.Contains(newCountry, "192.0.2.21") {
		t.Errorf("new-country sign-ins wrong:\n%s", newCountry)
	}
	for _, want := range []string{`href="/admin/security?account=traveller%40example.com"`, `href="/admin/security?ip=203.0.113.9"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("failures table lacks %s", want)
		}
	}
	// Filters: by IP, by kind and by date; a bad date says what to write.
	r = ts.do(admin, "GET", "/admin/security?ip=203.0.113.9&kind=signin_failed", nil, nil)
	if n := strings.Count(eventsSection(r.body), `data-testid="review-event"`); n != 3 || !strings.Contains(r.body, ">BR<") {
		t.Errorf("filter by IP and kind: %d rows", n)
	}
	tomorrow := time.Now().AddDate(0, 0, 1).Format(time.DateOnly)
	if r := ts.do(admin, "GET", "/admin/security?from="+tomorrow, nil, nil); strings.Count(eventsSection(r.body), `data-testid="review-event"`) != 0 {
		t.Error("a from date in the future still lists events")
	}
	if r := ts.do(admin, "GET", "/admin/security?from=yesterday", nil, nil); r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, "must be a date like") {
		t.Errorf("bad date: %d", r.status)
	}
	if r := ts.do(admin, "GET", "/admin/security?kind=nope", nil, nil); r.status != http.StatusUnprocessableEntity {
		t.Errorf("bad kind: %d", r.status)
	}
}

// Suspending ends the account's sessions and unfinished runs and refuses its sign-ins and
// API keys; unsuspending lets it sign in again. Both are security events.
func TestSuspendAccount(t *testing.T) {
	ts := newTestServer(t, Config{})
	ctx := context.Background()
	admin := ts.admin("root@example.com")
	member := ts.signUp("suspect@example.com")
	ds := ts.datasetFor(member, completionLines(20))
	runID := ts.startRun(member, runValues(ds))
	u, _ := ts.store.Authenticate(ctx, "suspect@example.com", testPassword)
	id := strconv.FormatInt(u.ID, 10)

	r := ts.do(admin, "POST", "/admin/accounts/"+id+"/suspend", nil, nil)
	if r.status != http.StatusSeeOther {
		t.Fatalf("suspend: %d %s", r.status, r.body)
	}
	if r := ts.do(admin, "GET", "/admin/security", nil, nil); !strings.Contains(r.body, "suspect@example.com is suspended") || !strings.Contains(r.body, `data-testid="suspended-badge"`) {
		t.Error("the review does not say the account is suspended")
	}
	if r := ts.do(member, "GET", "/runs", nil, nil); r.status != http.StatusSeeOther {
		t.Fatalf("the suspended session still works: %d", r.status)
	}
	run, err := ts.store.RunByID(ctx, runID)
	if err != nil || run.Status != store.RunCancelled {
		t.Fatalf("run after suspension: %s %v", run.Status, err)
	}
	_, r = signInFrom(ts, "suspect@example.com", "192.0.2.1")
	if r.status != http.StatusForbidden || !strings.Contains(r.body, "suspended") {
		t.Fatalf("sign-in while suspended: %d", r.status)
	}
	if r := ts.do(admin, "POST", "/admin/accounts/1/suspend", nil, nil); r.status != http.StatusBadRequest {
		t.Errorf("an admin suspended themself: %d", r.status)
	}
	if r := ts.do(admin, "POST", "/admin/accounts/999/suspend", nil, nil); r.status != http.StatusNotFound {
		t.Errorf("unknown account: %d", r.status)
	}
	if r := ts.do(admin, "POST", "/admin/accounts/"+id+"/unsuspend", nil, nil); r.status != http.StatusSeeOther {
		t.Fatalf("unsuspend: %d", r.status)
	}
	if _, r := signInFrom(ts, "suspect@example.com", "192.0.2.1"); r.status != http.StatusSeeOther {
		t.Fatalf("sign-in after unsuspend: %d", r.status)
	}
	var kinds []string
	events, _ := ts.store.SearchSecurityEvents(ctx, store.SecurityFilter{Email: "suspect@example.com"})
	for _, e := range events {
		kinds = append(kinds, e.Kind)
	}
	got := strings.Join(kinds, ",")
	if !strings.HasPrefix(got, "signin,account_unsuspended,signin_suspended,account_suspended") {
		t.Errorf("events, newest first: %s", got)
	}
}

// eventsSection is the review's filtered events card.
func eventsSection(body string) string {
	s := body[strings.Index(body, `data-testid="review-events"`):]
	return s[:strings.Index(s, "</section>")]
}

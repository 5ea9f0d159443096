package handlers

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"tunelab/store"
)

func TestSignUpRefusesBadInputAndSavesNothing(t *testing.T) {
	ts := newTestServer(t, Config{})
	ts.signUp("taken@example.com")
	cases := []struct {
		name     string
		form     url.Values
		testid   string
		wantText string
	}{
		{"too short", url.Values{"email": {"a@example.com"}, "password": {"short"}, "accept_terms": {"yes"}}, "password-error", "at least 8 characters"},
		{"common password", url.Values{"email": {"a@example.com"}, "password": {"iloveyou"}, "accept_terms": {"yes"}}, "password-error", "commonly used passwords"},
		{"common password any case", url.Values{"email": {"a@example.com"}, "password": {"Password123"}, "accept_terms": {"yes"}}, "password-error", "commonly used passwords"},
		{"bad email", url.Values{"email": {"not-an-email"}, "password": {testPassword}, "accept_terms": {"yes"}}, "email-error", "name@example.com"},
		{"terms not accepted", url.Values{"email": {"a@example.com"}, "password": {testPassword}}, "terms-error", "Accept the terms"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ts.client()
			r := ts.do(c, "POST", "/signup", tc.form, nil)
			if r.status != http.StatusUnprocessableEntity {
				t.Fatalf("status = %d, want 422", r.status)
			}
			// The message stands beside its field.
			re := regexp.MustCompile(`data-testid="` + tc.testid + `"[^>]*>[^<]*` + regexp.QuoteMeta(tc.wantText))
			if !re.MatchString(r.body) {
				t.Fatalf("no %q message containing %q in\n%s", tc.testid, tc.wantText, r.body)
			}
			if strings.Contains(r.body, tc.form.Get("password")) && tc.form.Get("password") != "" {
				t.Fatal("the password was echoed back into the page")
			}
			if sessionCookie(c, ts.URL) != "" {
				t.Fatal("a failed sign-up started a session")
			}
		})
	}
	if n := ts.userCount(); n != 1 {
		t.Fatalf("%d accounts exist, want only the first one", n)
	}
}

func TestSignUpRecordsTermsVersion(t *testing.T) {
	ts := newTestServer(t, Config{})
	ts.signUp("terms@example.com")
	u, err := ts.store.Authenticate(context.Background(), "terms@example.com", testPassword)
	if err != nil {
		t.Fatal(err)
	}
	if u.TermsVersion != TermsVersion || time.Since(u.TermsAcceptedAt) > time.Minute {
		t.Fatalf("terms version %q accepted at %v", u.TermsVersion, u.TermsAcceptedAt)
	}
}

var nonceAttr = regexp.MustCompile(`nonce="[^"]*"`)

func TestWrongPasswordAndUnknownEmailAnsweredAlike(t *testing.T) {
	ts := newTestServer(t, Config{})
	ts.signUp("known@example.com")
	wrong := ts.do(ts.client(), "POST", "/signin", url.Values{"email": {"known@example.com"}, "password": {"not the password"}}, nil)
	unknown := ts.do(ts.client(), "POST", "/signin", url.Values{"email": {"nobody@example.com"}, "password": {"not the password"}}, nil)
	if wrong.status != http.StatusUnprocessableEntity || unknown.status != wrong.status {
		t.Fatalf("statuses %d and %d, want both 422", wrong.status, unknown.status)
	}
	normalise := func(s, email string) string {
		return nonceAttr.ReplaceAllString(strings.ReplaceAll(s, email, "EMAIL"), "")
	}
	if a, b := normalise(wrong.body, "known@example.com"), normalise(unknown.body, "nobody@example.com"); a != b {
		t.Fatalf("bodies differ:\n%s\n---\n%s", a, b)
	}
	if !strings.Contains(wrong.body, badCredentials) {
		t.Fatal("the failure message is missing")
	}
	for _, h := range []string{"Set-Cookie", "Retry-After", "Location"} {
		if wrong.header.Get(h) != unknown.header.Get(h) {
			t.Fatalf("header %s differs", h)
		}
	}
}

func TestSessionCookieChangesAtSignInAndDiesAtSignOut(t *testing.T) {
	ts := newTestServer(t, Config{})
	ts.signUp("s@example.com")
	c := ts.client()
	// A token planted before sign-in (session fixation) must not survive it.
	u, _ := url.Parse(ts.URL)
	c.Jar.SetCookies(u, []*http.Cookie{{Name: "tunelab_session", Value: "planted-by-attacker"}})
	r := ts.do(c, "POST", "/signin", url.Values{"email": {"s@example.com"}, "password": {testPassword}}, nil)
	if r.status != http.StatusSeeOther {
		t.Fatalf("sign in: %d", r.status)
	}
	first := sessionCookie(c, ts.URL)
	if first == "" || first == "planted-by-attacker" {
		t.Fatalf("session cookie after sign-in = %q", first)
	}
	ck := r.header.Get("Set-Cookie")
	for _, want := range []string{"HttpOnly", "SameSite=Lax", "Path=/"} {
		if !strings.Contains(ck, want) {
			t.Errorf("Set-Cookie %q lacks %s", ck, want)
		}
	}
	// Signing in again renews the token too, and the old one is dead.
	ts.do(c, "POST", "/signin", url.Values{"email": {"s@example.com"}, "password": {testPassword}}, nil)
	second := sessionCookie(c, ts.URL)
	if second == first || second == "" {
		t.Fatal("token not renewed on a second sign-in")
	}
	if r := replay(ts, first, "/"); r.status != http.StatusSeeOther {
		t.Fatalf("replayed pre-renewal cookie: status %d, want 303 to sign-in", r.status)
	}
	if r := replay(ts, second, "/"); r.status != http.StatusOK {
		t.Fatalf("current cookie: status %d", r.status)
	}

	out := ts.do(c, "POST", "/signout", nil, nil)
	if out.status != http.StatusSeeOther || out.header.Get("Location") != "/signin?signed_out=1" {
		t.Fatalf("sign out: %d %q", out.status, out.header.Get("Location"))
	}
	if !strings.Contains(out.header.Get("Clear-Site-Data"), `"cookies"`) {
		t.Fatalf("Clear-Site-Data = %q", out.header.Get("Clear-Site-Data"))
	}
	// The cookie choice goes with the session even where Clear-Site-Data is ignored.
	consentCleared := false
	for _, ck := range (&http.Response{Header: out.header}).Cookies() {
		consentCleared = consentCleared || ck.Name == consentCookieName(false) && ck.MaxAge < 0
	}
	if !consentCleared {
		t.Fatalf("sign out does not clear the consent cookie: %v", out.header.Values("Set-Cookie"))
	}
	if r := replay(ts, second, "/"); r.status != http.StatusSeeOther || r.header.Get("Location") != "/signin" {
		t.Fatalf("cookie replayed after sign-out: status %d location %q", r.status, r.header.Get("Location"))
	}
}

// replay sends a request carrying only the given session cookie.
func replay(ts *testServer, token, path string) response {
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return ts.do(c, "GET", path, nil, map[string]string{"Cookie": "tunelab_session=" + token})
}

func TestSessionTimeouts(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("idle@example.com")
	token := sessionCookie(c, ts.URL)
	// Absolute lifetime: scs keeps the deadline inside the session data.
	data, found, err := ts.store.Sessions().Find(token)
	if err != nil || !found {
		t.Fatalf("session not stored: %v", err)
	}
	deadline, _, err := (scs.GobCodec{}).Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if left := time.Until(deadline); left > sessionLifetime || left < sessionLifetime-time.Minute {
		t.Fatalf("session deadline in %v, want 24 h", left)
	}
	// Idle timeout: the stored expiry is an hour ahead and is honoured.
	ts.advance(59 * time.Minute)
	if r := ts.do(c, "GET", "/", nil, nil); r.status != http.StatusOK {
		t.Fatalf("active within the idle timeout: %d", r.status)
	}
	ts.advance(61 * time.Minute)
	if r := ts.do(c, "GET", "/", nil, nil); r.status != http.StatusSeeOther {
		t.Fatalf("after 61 idle minutes: status %d, want 303", r.status)
	}
}

func TestCrossSitePostRejected(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("csrf@example.com")
	cases := []struct {
		name    string
		path    string
		form    url.Values
		headers map[string]string
		want    int
	}{
		{"cross-site sign-in", "/signin", url.Values{"email": {"csrf@example.com"}, "password": {testPassword}}, map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"cross-site password change", "/settings/password", url.Values{"current_password": {testPassword}, "new_password": {"evil new passphrase"}}, map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"foreign origin sign-out", "/signout", nil, map[string]string{"Origin": "https://evil.example"}, 403},
		{"same-origin passes", "/settings/password", url.Values{"current_password": {"wrong one"}, "new_password": {"evil new passphrase"}}, map[string]string{"Sec-Fetch-Site": "same-origin"}, 422},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.do(c, "POST", tc.path, tc.form, tc.headers)
			if r.status != tc.want {
				t.Fatalf("status = %d, want %d", r.status, tc.want)
			}
			if tc.want == 403 && !strings.Contains(r.body, "another site") {
				t.Fatal("the 403 page does not explain what happened")
			}
		})
	}
	if _, err := ts.store.Authenticate(context.Background(), "csrf@example.com", testPassword); err != nil {
		t.Fatal("a refused cross-site request changed the password")
	}
	if r := ts.do(c, "GET", "/", nil, nil); r.status != http.StatusOK {
		t.Fatal("a refused cross-site sign-out signed the user out")
	}
}

func TestSignInRateLimits(t *testing.T) {
	ts := newTestServer(t, Config{})
	ts.signUp("target@example.com")
	ts.signUp("other@example.com")
	attempt := func(email, password string) response {
		return ts.do(ts.client(), "POST", "/signin", url.Values{"email": {email}, "password": {password}}, nil)
	}
	for i := range 10 {
		if r := attempt("target@example.com", "wrong guess"); r.status != http.StatusUnprocessableEntity {
			t.Fatalf("attempt %d: status %d", i+1, r.status)
		}
	}
	known, _ := ts.lastSleep()
	// Per account the failures slow, they never block: the right password still works.
	if r := attempt("TARGET@example.com", testPassword); r.status != http.StatusSeeOther {
		t.Fatalf("11th attempt with the right password: status %d", r.status)
	}
	// An unknown email is slowed exactly like a known one.
	for range 10 {
		attempt("ghost@example.com", "wrong guess")
	}
	if unknown, _ := ts.lastSleep(); unknown != known || known == 0 {
		t.Fatalf("waits after 10 failures: known account %s, unknown %s", known, unknown)
	}
	// The per-IP cap (30 attempts a window) refuses everything from this address.
	for range 9 {
		attempt("someone@example.com", "wrong guess")
	}
	if r := attempt("other@example.com", testPassword); r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("per-IP limit not reached: %d", r.status)
	}
	// After the window the address may try again.
	ts.advance(16 * time.Minute)
	if r := attempt("target@example.com", testPassword); r.status != http.StatusSeeOther {
		t.Fatalf("after the window: status %d", r.status)
	}
	events, _ := ts.store.RecentSecurityEvents(context.Background(), 200)
	limited := 0
	for _, e := range events {
		if e.Kind == store.EventRateLimited {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("rate-limited attempts were not recorded")
	}
}

func TestSignUpRateLimitPerIP(t *testing.T) {
	ts := newTestServer(t, Config{})
	for i := range 10 {
		ts.do(ts.client(), "POST", "/signup", url.Values{"email": {fmt.Sprintf("x%d@example.com", i)}, "password": {"short"}}, nil)
	}
	r := ts.do(ts.client(), "POST", "/signup", signUpValues("fresh@example.com"), nil)
	if r.status != http.StatusTooManyRequests || !strings.Contains(r.body, "Too many attempts") {
		t.Fatalf("11th sign-up: %d", r.status)
	}
	if ts.userCount() != 0 {
		t.Fatal("a rate-limited sign-up created an account")
	}
}

func TestSecurityEventsRecorded(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("ev@example.com")
	ts.do(c, "POST", "/signout", nil, nil)
	ts.do(ts.client(), "POST", "/signin", url.Values{"email": {"ev@example.com"}, "password": {"bad password!"}}, map[string]string{"User-Agent": "probe/1.0"})
	ts.do(ts.client(), "POST", "/signin", url.Values{"email": {"ev@example.com"}, "password": {testPassword}}, nil)
	events, err := ts.store.RecentSecurityEvents(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for i := len(events) - 1; i >= 0; i-- {
		e := events[i]
		kinds = append(kinds, e.Kind)
		if e.IP != "127.0.0.1" || e.Email != "ev@example.com" {
			t.Errorf("event %+v lacks IP or email", e)
		}
	}
	want := []string{store.EventSignUp, store.EventSignOut, store.EventSignInFailed, store.EventSignIn}
	if strings.Join(kinds, ",") != strings.Join(want, ",") {
		t.Fatalf("events = %v, want %v", kinds, want)
	}
	if events[1].UserAgent != "probe/1.0" {
		t.Fatalf("user agent of the failure = %q", events[1].UserAgent)
	}
	admin := ts.admin("boss@example.com")
	r := ts.do(admin, "GET", "/admin", nil, nil)
	if !strings.Contains(r.body, "Failed sign-in") || !strings.Contains(r.body, "probe/1.0") {
		t.Fatal("the admin page does not show the failed sign-in")
	}
}

func TestChangePasswordSignsOutOtherSessions(t *testing.T) {
	ts := newTestServer(t, Config{})
	laptop := ts.signUp("pw@example.com")
	phone := ts.client()
	ts.do(phone, "POST", "/signin", url.Values{"email": {"pw@example.com"}, "password": {testPassword}}, nil)
	before := sessionCookie(laptop, ts.URL)

	bad := ts.do(laptop, "POST", "/settings/password", url.Values{"current_password": {"not it"}, "new_password": {"a brand new passphrase"}}, map[string]string{"HX-Request": "true"})
	if bad.status != http.StatusUnprocessableEntity || !strings.Contains(bad.body, `data-testid="current-error"`) || strings.Contains(bad.body, "<html") {
		t.Fatalf("wrong current password: status %d\n%s", bad.status, bad.body)
	}
	ok := ts.do(laptop, "POST", "/settings/password", url.Values{"current_password": {testPassword}, "new_password": {"a brand new passphrase"}}, map[string]string{"HX-Request": "true"})
	if ok.status != http.StatusOK || !strings.Contains(ok.body, `data-testid="password-saved"`) {
		t.Fatalf("change: status %d\n%s", ok.status, ok.body)
	}
	if sessionCookie(laptop, ts.URL) == before {
		t.Fatal("session token not renewed after the password change")
	}
	if r := ts.do(laptop, "GET", "/", nil, nil); r.status != http.StatusOK {
		t.Fatal("the session that changed the password was signed out")
	}
	if r := ts.do(phone, "GET", "/", nil, nil); r.status != http.StatusSeeOther {
		t.Fatal("the other session survived the password change")
	}
}

// cookieExpires matches a Set-Cookie expiry date.
var cookieExpires = regexp.MustCompile(`Expires=[^;]*`)

func TestSignUpForAnExistingEmailAnswersLikeANewOne(t *testing.T) {
	ts := newTestServer(t, Config{})
	ts.signUp("taken@example.com")
	cookieShape := func(r response) string {
		ck := r.header.Get("Set-Cookie")
		name, rest, _ := strings.Cut(ck, "=")
		_, attrs, _ := strings.Cut(rest, ";")
		// The expiry is "now + lifetime": two answers a second apart differ there by the
		// clock, not by anything a stranger learns.
		attrs = cookieExpires.ReplaceAllString(attrs, "Expires=WHEN")
		return name + "=VALUE;" + attrs
	}
	shape := func(r response) string {
		var keys []string
		for k := range r.header {
			if k != "Date" {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		return fmt.Sprintf("%d location=%q hx=%q headers=%v cookie=%s body=%q", r.status, r.header.Get("Location"),
			r.header.Get("HX-Redirect"), keys, cookieShape(r), nonceAttr.ReplaceAllString(r.body, ""))
	}
	for i, headers := range []map[string]string{nil, {"HX-Request": "true"}} {
		newcomer, stranger := ts.client(), ts.client()
		fresh := ts.do(newcomer, "POST", "/signup", signUpValues(fmt.Sprintf("new%d@example.com", i)), headers)
		taken := ts.do(stranger, "POST", "/signup", url.Values{"email": {"Taken@Example.com"}, "password": {"a stranger's own phrase"},
			"accept_terms": {"yes"}}, headers)
		if a, b := shape(fresh), shape(taken); a != b || sessionCookie(stranger, ts.URL) == "" {
			t.Fatalf("a taken email is answered differently:\nnew:   %s\ntaken: %s", a, b)
		}
		// The new person is signed in; the stranger is not, and the account is untouched.
		if r := ts.do(newcomer, "GET", "/", nil, nil); r.status != http.StatusOK {
			t.Fatalf("the new account is not signed in: %d", r.status)
		}
		if r := ts.do(stranger, "GET", "/", nil, nil); r.status != http.StatusSeeOther || r.header.Get("Location") != "/signin" {
			t.Fatalf("the stranger reached %d %q", r.status, r.header.Get("Location"))
		}
		if r := ts.do(stranger, "GET", "/signin", nil, nil); !strings.Contains(r.body, `value="taken@example.com"`) || !strings.Contains(r.body, "Sign in to continue.") {
			t.Fatalf("the sign-in page does not offer the email:\n%s", r.body)
		}
	}
	if _, err := ts.store.Authenticate(context.Background(), "taken@example.com", testPassword); err != nil {
		t.Fatal("the owner's password changed")
	}
	if _, err := ts.store.Authenticate(context.Background(), "taken@example.com", "a stranger's own phrase"); err == nil {
		t.Fatal("the stranger's password works")
	}
	if n := ts.userCount(); n != 3 {
		t.Fatalf("%d accounts, want 3", n)
	}
	events, _ := ts.store.RecentSecurityEvents(context.Background(), 10)
	existing := 0
	for _, e := range events {
		if e.Kind == store.EventSignUpExisting && e.Email == "Taken@Example.com" {
			existing++
		}
	}
	if existing != 2 {
		t.Fatalf("%d sign-up-with-a-registered-email events, want 2: %+v", existing, events)
	}
}

// A refused sign-up lists every problem in one role=alert summary at the top, each linked
// to its field, besides the messages beside the fields.
func TestSignUpErrorsHaveAnAlertSummary(t *testing.T) {
	ts := newTestServer(t, Config{})
	r := ts.do(ts.client(), "POST", "/signup", url.Values{"email": {"not-an-email"}, "password": {"short"}}, nil)
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("status %d", r.status)
	}
	summary := regexp.MustCompile(`(?s)<div class="alert alert-danger error-summary" role="alert" data-testid="error-summary">.*?</ul>`).FindString(r.body)
	if summary == "" {
		t.Fatalf("no role=alert summary:\n%s", r.body)
	}
	for _, want := range []string{"There are 3 problems", `href="#email"`, `href="#password"`, `href="#accept_terms"`} {
		if !strings.Contains(summary, want) {
			t.Errorf("the summary lacks %q:\n%s", want, summary)
		}
	}
}

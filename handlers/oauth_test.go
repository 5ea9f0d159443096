package handlers

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"tunelab/store"
)

// oauthServer is a test server with Google and GitHub both pointed at in-process providers.
func oauthServer(t *testing.T) (*testServer, *fakeIdP, *fakeIdP) {
	t.Helper()
	var ts *testServer
	clock := func() time.Time { return ts.clock() }
	google, github := newFakeIdP(t, clock), newFakeIdP(t, clock)
	ts = newTestServer(t, Config{OAuth: OAuthConfig{Google: google.provider(), GitHub: github.provider()}})
	return ts, google, github
}

// authorize starts a flow (GET sign-in, or the Settings link form with POST) and lets the
// provider answer; it returns the callback path the provider sends the browser to.
func (ts *testServer) authorize(c *http.Client, method, start string) string {
	ts.t.Helper()
	var form url.Values
	if method == "POST" {
		form = url.Values{}
	}
	r := ts.do(c, method, start, form, nil)
	if r.status != http.StatusSeeOther {
		ts.t.Fatalf("%s %s: %d\n%s", method, start, r.status, r.body)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(r.header.Get("Location"))
	if err != nil {
		ts.t.Fatal(err)
	}
	resp.Body.Close()
	back := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(back, ts.URL+"/signin/oauth/") {
		ts.t.Fatalf("provider answered %d %q", resp.StatusCode, back)
	}
	return strings.TrimPrefix(back, ts.URL)
}

// oauthSignIn runs a whole sign-in with provider and returns the callback's answer.
func (ts *testServer) oauthSignIn(c *http.Client, provider string) response {
	ts.t.Helper()
	return ts.do(c, "GET", ts.authorize(c, "GET", "/signin/oauth/"+provider), nil, nil)
}

func (ts *testServer) signedInAs(c *http.Client) string {
	ts.t.Helper()
	r := ts.do(c, "GET", "/settings", nil, nil)
	if r.status != http.StatusOK {
		return ""
	}
	i := strings.Index(r.body, `data-testid="account-email">`)
	rest := r.body[i+len(`data-testid="account-email">`):]
	return rest[:strings.Index(rest, "<")]
}

func (ts *testServer) identities(email string) []store.Identity {
	ts.t.Helper()
	u, err := ts.store.UserByEmail(context.Background(), email)
	if err != nil {
		ts.t.Fatal(err)
	}
	ids, err := ts.store.Identities(context.Background(), u.ID)
	if err != nil {
		ts.t.Fatal(err)
	}
	return ids
}

func TestOAuthButtonsOnlyWhenConfigured(t *testing.T) {
	plain := newTestServer(t, Config{})
	for _, path := range []string{"/signin", "/signup"} {
		if r := plain.do(plain.client(), "GET", path, nil, nil); strings.Contains(r.body, "oauth-buttons") {
			t.Errorf("%s shows provider buttons with none configured", path)
		}
	}
	if r := plain.do(plain.client(), "GET", "/signin/oauth/google", nil, nil); r.status != http.StatusNotFound {
		t.Errorf("start of an unconfigured provider: %d, want 404", r.status)
	}
	ts, _, _ := oauthServer(t)
	for _, path := range []string{"/signin", "/signup"} {
		r := ts.do(ts.client(), "GET", path, nil, nil)
		if !strings.Contains(r.body, `data-testid="oauth-google"`) || !strings.Contains(r.body, `data-testid="oauth-github"`) {
			t.Errorf("%s lacks the provider buttons", path)
		}
	}
}

func TestOAuthStateCookie(t *testing.T) {
	ts, _, _ := oauthServer(t)
	r := ts.do(ts.client(), "GET", "/signin/oauth/google", nil, nil)
	loc, _ := url.Parse(r.header.Get("Location"))
	q := loc.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("nonce") == "" || q.Get("state") == "" || q.Get("scope") != "openid email" {
		t.Fatalf("authorize URL lacks PKCE, nonce, state or minimal scopes: %s", loc)
	}
	ck := r.header.Get("Set-Cookie")
	for _, want := range []string{"tunelab_oauth=", "HttpOnly", "SameSite=Lax", "Max-Age=600", "Path=/"} {
		if !strings.Contains(ck, want) {
			t.Errorf("state cookie %q lacks %s", ck, want)
		}
	}
	if strings.Contains(ck, q.Get("state")) || strings.Contains(ck, q.Get("nonce")) {
		t.Error("the state cookie shows the state or nonce in the clear")
	}
	// Over HTTPS: __Host- prefix and Secure.
	var secure *testServer
	idp := newFakeIdP(t, func() time.Time { return secure.clock() })
	secure = newTestServer(t, Config{Secure: true, OAuth: OAuthConfig{Google: idp.provider()}})
	ck = secure.do(secure.client(), "GET", "/signin/oauth/google", nil, nil).header.Get("Set-Cookie")
	if !strings.HasPrefix(ck, "__Host-tunelab_oauth=") || !strings.Contains(ck, "; Secure") || strings.Contains(ck, "Domain=") {
		t.Errorf("state cookie over HTTPS: %q", ck)
	}
}

func TestOAuthCreatesAccountAfterTerms(t *testing.T) {
	ts, google, _ := oauthServer(t)
	google.setPerson(idpPerson{Sub: "g-100", Email: "New@Example.com", Verified: true, Name: "Ada Lovelace"})
	c := ts.client()
	r := ts.oauthSignIn(c, "google")
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/signin/oauth/confirm" {
		t.Fatalf("callback: %d %q\n%s", r.status, r.header.Get("Location"), r.body)
	}
	page := ts.do(c, "GET", "/signin/oauth/confirm", nil, nil)
	if !strings.Contains(page.body, `data-testid="oauth-create-form"`) {
		t.Fatalf("no create form:\n%s", page.body)
	}
	if r := ts.do(c, "POST", "/signin/oauth/confirm", url.Values{}, nil); r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, `data-testid="terms-error"`) {
		t.Fatalf("create without the terms: %d", r.status)
	}
	if ts.userCount() != 0 {
		t.Fatal("an account was made before the terms were accepted")
	}
	if r := ts.do(c, "POST", "/signin/oauth/confirm", url.Values{"accept_terms": {"yes"}}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("create: %d\n%s", r.status, r.body)
	}
	if got := ts.signedInAs(c); got != "new@example.com" {
		t.Fatalf("signed in as %q", got)
	}
	u, _ := ts.store.UserByEmail(context.Background(), "new@example.com")
	if verified, _ := ts.store.EmailVerified(context.Background(), u.ID); !verified || u.DisplayName != "Ada Lovelace" {
		t.Errorf("verified %v name %q", verified, u.DisplayName)
	}
	// A second sign-in goes straight in.
	ts.signOutClient(c)
	if r := ts.oauthSignIn(c, "google"); r.status != http.StatusSeeOther || r.header.Get("Location") != "/" {
		t.Fatalf("second sign-in: %d %q", r.status, r.header.Get("Location"))
	}
	if ts.countEvents(t, store.EventOAuthSignIn) != 1 || ts.countEvents(t, store.EventOAuthLinked) != 1 {
		t.Error("events of the OAuth sign-up and sign-in missing")
	}
	// No password: the password form signs nobody in.
	if r := ts.do(ts.client(), "POST", "/signin", url.Values{"email": {"new@example.com"}, "password": {""}}, nil); r.status == http.StatusSeeOther {
		t.Error("an empty password signed in an account made through Google")
	}
}

func TestOAuthStateMismatchAndReuse(t *testing.T) {
	ts, google, _ := oauthServer(t)
	google.setPerson(idpPerson{Sub: "g-1", Email: "a@example.com", Verified: true})

	// Another flow's state: refused.
	c := ts.client()
	cb := ts.authorize(c, "GET", "/signin/oauth/google")
	u, _ := url.Parse(cb)
	q := u.Query()
	q.Set("state", "forged-"+q.Get("state"))
	u.RawQuery = q.Encode()
	if r := ts.do(c, "GET", u.String(), nil, nil); r.status != http.StatusBadRequest || !strings.Contains(r.body, "does not belong") {
		t.Fatalf("state mismatch: %d\n%s", r.status, r.body)
	}
	// The cookie went with the failed try: the right state no longer works either.
	if r := ts.do(c, "GET", cb, nil, nil); r.status != http.StatusBadRequest {
		t.Fatalf("callback after the cookie was spent: %d", r.status)
	}
	// No cookie at all (a callback this browser never started).
	if r := ts.do(ts.client(), "GET", cb, nil, nil); r.status != http.StatusBadRequest {
		t.Fatalf("callback without the cookie: %d", r.status)
	}

	// A replay: the same cookie and answer a second time.
	c2 := ts.client()
	cb2 := ts.authorize(c2, "GET", "/signin/oauth/google")
	base, _ := url.Parse(ts.URL)
	saved := c2.Jar.Cookies(base)
	if r := ts.do(c2, "GET", cb2, nil, nil); r.status != http.StatusSeeOther {
		t.Fatalf("first callback: %d\n%s", r.status, r.body)
	}
	replay := ts.client()
	replay.Jar.SetCookies(base, saved)
	if r := ts.do(replay, "GET", cb2, nil, nil); r.status != http.StatusBadRequest || !strings.Contains(r.body, "already used") {
		t.Fatalf("replayed state: %d\n%s", r.status, r.body)
	}

	// Older than 10 minutes.
	c3 := ts.client()
	cb3 := ts.authorize(c3, "GET", "/signin/oauth/google")
	ts.advance(11 * time.Minute)
	if r := ts.do(c3, "GET", cb3, nil, nil); r.status != http.StatusBadRequest {
		t.Fatalf("expired state: %d", r.status)
	}
	if ts.countEvents(t, store.EventOAuthFailed) < 4 {
		t.Errorf("%d refused callbacks recorded, want at least 4", ts.countEvents(t, store.EventOAuthFailed))
	}
}

func TestOAuthIDTokenChecks(t *testing.T) {
	ts, google, _ := oauthServer(t)
	google.setPerson(idpPerson{Sub: "g-2", Email: "b@example.com", Verified: true})
	for _, tc := range []struct {
		name  string
		spoil func(p *fakeIdP)
	}{
		{"wrong nonce", func(p *fakeIdP) { p.wrongNonce = true }},
		{"expired ID token", func(p *fakeIdP) { p.expired = true }},
		{"another client's ID token", func(p *fakeIdP) { p.wrongAud = true }},
	} {
		google.spoil(tc.spoil)
		c := ts.client()
		r := ts.oauthSignIn(c, "google")
		if r.status != http.StatusBadRequest || !strings.Contains(r.body, "did not check out") {
			t.Errorf("%s: %d\n%s", tc.name, r.status, r.body)
		}
		if ts.signedInAs(c) != "" || ts.do(c, "GET", "/signin/oauth/confirm", nil, nil).header.Get("Location") != "/signin" {
			t.Errorf("%s: the refused token got somewhere", tc.name)
		}
	}
	// Unspoiled, the same provider account gets through.
	if r := ts.oauthSignIn(ts.client(), "google"); r.status != http.StatusSeeOther {
		t.Fatalf("good token: %d\n%s", r.status, r.body)
	}
}

func TestOAuthLinksExistingAccountOnlyWithVerifiedEmailAndPassword(t *testing.T) {
	ts, google, github := oauthServer(t)
	ts.signUp("owner@example.com")

	// GitHub says the address is not verified: no link, no password form.
	github.setPerson(idpPerson{Sub: "4242", Email: "owner@example.com", Verified: false})
	c := ts.client()
	if r := ts.oauthSignIn(c, "github"); r.status != http.StatusSeeOther {
		t.Fatalf("callback: %d\n%s", r.status, r.body)
	}
	page := ts.do(c, "GET", "/signin/oauth/confirm", nil, nil)
	if !strings.Contains(page.body, `data-testid="oauth-blocked"`) || strings.Contains(page.body, `name="password"`) {
		t.Fatalf("unverified email offered linking:\n%s", page.body)
	}
	if r := ts.do(c, "POST", "/signin/oauth/confirm", url.Values{"password": {testPassword}}, nil); r.status != http.StatusConflict {
		t.Fatalf("posting a password for an unverified email: %d", r.status)
	}
	if ids := ts.identities("owner@example.com"); len(ids) != 0 || ts.signedInAs(c) != "" {
		t.Fatalf("unverified email linked (%v) or signed in", ids)
	}

	// Google says it is verified: linked only after the account's password.
	google.setPerson(idpPerson{Sub: "g-owner", Email: "owner@example.com", Verified: true})
	c = ts.client()
	ts.oauthSignIn(c, "google")
	page = ts.do(c, "GET", "/signin/oauth/confirm", nil, nil)
	if !strings.Contains(page.body, `data-testid="oauth-link-form"`) {
		t.Fatalf("no link form:\n%s", page.body)
	}
	if r := ts.do(c, "POST", "/signin/oauth/confirm", url.Values{"password": {"not the password at all"}}, nil); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("wrong password: %d", r.status)
	}
	if len(ts.identities("owner@example.com")) != 0 {
		t.Fatal("linked after a wrong password")
	}
	if r := ts.do(c, "POST", "/signin/oauth/confirm", url.Values{"password": {testPassword}}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("right password: %d\n%s", r.status, r.body)
	}
	if ids := ts.identities("owner@example.com"); len(ids) != 1 || ids[0].Provider != "google" || ids[0].Subject != "g-owner" {
		t.Fatalf("identities after linking: %+v", ids)
	}
	if ts.signedInAs(c) != "owner@example.com" {
		t.Fatal("not signed in after linking")
	}

	// Then Google alone signs in, in a fresh browser.
	fresh := ts.client()
	if r := ts.oauthSignIn(fresh, "google"); r.status != http.StatusSeeOther || r.header.Get("Location") != "/" {
		t.Fatalf("sign in after linking: %d %q", r.status, r.header.Get("Location"))
	}
	if ts.signedInAs(fresh) != "owner@example.com" {
		t.Fatal("Google did not sign in the linked account")
	}
}

func TestLinkAndUnlinkInSettings(t *testing.T) {
	ts, google, github := oauthServer(t)
	// An account made through GitHub: its only way in.
	github.setPerson(idpPerson{Sub: "777", Email: "solo@example.com", Verified: true, Name: "Solo"})
	c := ts.client()
	ts.oauthSignIn(c, "github")
	if r := ts.do(c, "POST", "/signin/oauth/confirm", url.Values{"accept_terms": {"yes"}}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("create: %d", r.status)
	}
	s := ts.do(c, "GET", "/settings", nil, nil)
	if !strings.Contains(s.body, `data-testid="unlink-blocked-github"`) || strings.Contains(s.body, `data-testid="unlink-github"`) ||
		!strings.Contains(s.body, "Set a password") {
		t.Fatalf("Settings offers to unlink the only sign-in, or no set-password form:\n%s", s.body)
	}
	// Refused even when posted directly.
	ts.do(c, "POST", "/settings/sign-in-methods/github/unlink", url.Values{}, nil)
	s = ts.do(c, "GET", "/settings", nil, nil)
	if !strings.Contains(s.body, `data-testid="sign-in-methods-error"`) || len(ts.identities("solo@example.com")) != 1 {
		t.Fatal("the last way to sign in was unlinked")
	}

	// Link Google from Settings, then GitHub may go.
	google.setPerson(idpPerson{Sub: "g-solo", Email: "other-address@gmail.com", Verified: true})
	cb := ts.authorize(c, "POST", "/settings/sign-in-methods/google/link")
	if r := ts.do(c, "GET", cb, nil, nil); r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/settings") {
		t.Fatalf("link callback: %d %q\n%s", r.status, r.header.Get("Location"), r.body)
	}
	if len(ts.identities("solo@example.com")) != 2 {
		t.Fatal("Google not linked")
	}
	if r := ts.do(c, "POST", "/settings/sign-in-methods/github/unlink", url.Values{}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("unlink: %d", r.status)
	}
	ids := ts.identities("solo@example.com")
	if len(ids) != 1 || ids[0].Provider != "google" {
		t.Fatalf("after unlinking GitHub: %+v", ids)
	}
	// Google is now the last one.
	ts.do(c, "POST", "/settings/sign-in-methods/google/unlink", url.Values{}, nil)
	if len(ts.identities("solo@example.com")) != 1 {
		t.Fatal("the last provider was unlinked")
	}
	// Two-factor sign-in needs a password first; the form says so.
	if r := ts.do(c, "POST", "/settings/2fa", url.Values{"action": {"begin"}, "password": {""}}, nil); r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, "no password yet") {
		t.Fatalf("2FA without a password: %d", r.status)
	}
	// A password makes it unlinkable.
	if r := ts.do(c, "POST", "/settings/password", url.Values{"new_password": {testPassword}}, nil); r.status != http.StatusOK {
		t.Fatalf("set password: %d\n%s", r.status, r.body)
	}
	ts.do(c, "POST", "/settings/sign-in-methods/google/unlink", url.Values{}, nil)
	if len(ts.identities("solo@example.com")) != 0 {
		t.Fatal("unlink refused though a password is set")
	}
	if r := ts.do(ts.client(), "POST", "/signin", url.Values{"email": {"solo@example.com"}, "password": {testPassword}}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("sign in with the new password: %d", r.status)
	}
	for _, k := range []string{store.EventOAuthLinked, store.EventOAuthUnlinked, store.EventPasswordSet} {
		if ts.countEvents(t, k) == 0 {
			t.Errorf("no %s event", k)
		}
	}

	// A GitHub account linked to another tunelab account cannot be linked here too.
	other := ts.signUp("other@example.com")
	github.setPerson(idpPerson{Sub: "888", Email: "x@example.com", Verified: true})
	ts.do(other, "GET", ts.authorize(other, "POST", "/settings/sign-in-methods/github/link"), nil, nil)
	ts.do(c, "GET", ts.authorize(c, "POST", "/settings/sign-in-methods/github/link"), nil, nil)
	if s := ts.do(c, "GET", "/settings", nil, nil); !strings.Contains(s.body, "already linked to another tunelab account") {
		t.Fatal("linking a provider account that belongs to another account was not refused")
	}
}

func TestTwoFactorAfterOAuth(t *testing.T) {
	ts, google, _ := oauthServer(t)
	c := ts.signUp("two@example.com")
	secret, _ := ts.enrolTOTP(c)
	google.setPerson(idpPerson{Sub: "g-two", Email: "elsewhere@example.com", Verified: true})
	ts.do(c, "GET", ts.authorize(c, "POST", "/settings/sign-in-methods/google/link"), nil, nil)
	if len(ts.identities("two@example.com")) != 1 {
		t.Fatal("not linked")
	}
	ts.signOutClient(c)

	fresh := ts.client()
	r := ts.oauthSignIn(fresh, "google")
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/signin/2fa" {
		t.Fatalf("OAuth sign-in with 2FA on: %d %q", r.status, r.header.Get("Location"))
	}
	if ts.signedInAs(fresh) != "" {
		t.Fatal("signed in before the code")
	}
	if r := ts.do(fresh, "POST", "/signin/2fa", url.Values{"code": {totpCode(t, secret, ts.clock())}}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("code: %d\n%s", r.status, r.body)
	}
	if ts.signedInAs(fresh) != "two@example.com" || ts.countEvents(t, store.EventOAuthSignIn) != 1 {
		t.Fatal("not signed in with Google and a code")
	}
}

func TestGitHubNeedsAVerifiedPrimaryEmailForANewAccount(t *testing.T) {
	ts, _, github := oauthServer(t)
	github.setPerson(idpPerson{Sub: "999", Email: "unverified@example.com", Verified: false})
	c := ts.client()
	ts.oauthSignIn(c, "github")
	page := ts.do(c, "GET", "/signin/oauth/confirm", nil, nil)
	if !strings.Contains(page.body, `data-testid="oauth-blocked"`) {
		t.Fatalf("an unverified GitHub email may make an account:\n%s", page.body)
	}
	ts.do(c, "POST", "/signin/oauth/confirm", url.Values{"accept_terms": {"yes"}}, nil)
	if ts.userCount() != 0 {
		t.Fatal("account made from an unverified email")
	}
}

func TestLegalPagesNameProviderSignInWhenConfigured(t *testing.T) {
	ts, _, _ := oauthServer(t)
	policy := ts.do(ts.client(), "GET", "/cookies", nil, nil).body
	if !strings.Contains(policy, "<code>tunelab_oauth</code>") || !strings.Contains(policy, "uses three") {
		t.Error("the cookie policy does not list the provider sign-in cookie")
	}
	privacy := ts.do(ts.client(), "GET", "/privacy", nil, nil).body
	terms := ts.do(ts.client(), "GET", "/terms", nil, nil).body
	if !strings.Contains(privacy, "Sign-in with Google and GitHub") || !strings.Contains(terms, "or with your Google or GitHub account") {
		t.Error("the privacy policy or terms do not name provider sign-in")
	}
}

func TestSettingsLetsLinkFormsReachTheProviders(t *testing.T) {
	ts, google, _ := oauthServer(t)
	c := ts.signUp("csp@example.com")
	r := ts.do(c, "GET", "/settings", nil, nil)
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' "+google.URL) {
		t.Fatalf("Settings CSP does not let the Link form go to the provider: %s", csp)
	}
	if r := ts.do(c, "GET", "/runs", nil, nil); strings.Contains(r.header.Get("Content-Security-Policy"), google.URL) {
		t.Error("pages without Link forms allow the provider as a form target")
	}
}

// TestSuspendedAccountCannotSignInWithAProvider: suspension holds on every way in, the
// provider's callback included (the password path has its own test).
func TestSuspendedAccountCannotSignInWithAProvider(t *testing.T) {
	ts, google, _ := oauthServer(t)
	c := ts.signUp("held@example.com")
	google.setPerson(idpPerson{Sub: "g-held", Email: "held@example.com", Verified: true})
	ts.do(c, "GET", ts.authorize(c, "POST", "/settings/sign-in-methods/google/link"), nil, nil)
	if len(ts.identities("held@example.com")) != 1 {
		t.Fatal("not linked")
	}
	ts.signOutClient(c)
	u, err := ts.store.UserByEmail(context.Background(), "held@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.store.SuspendAccount(context.Background(), u.ID, u.ID); err != nil {
		t.Fatal(err)
	}
	fresh := ts.client()
	ts.oauthSignIn(fresh, "google")
	if got := ts.signedInAs(fresh); got != "" {
		t.Fatalf("a suspended account signed in with Google as %q", got)
	}
	if ts.countEvents(t, store.EventSignInSuspended) != 1 {
		t.Fatal("the refused sign-in was not recorded")
	}
}

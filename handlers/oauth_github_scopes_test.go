package handlers

import (
	"net/url"
	"testing"
)

// TestOAuthGitHubAsksMinimalScopes: GitHub sign-in asks only for the person's profile and
// e-mail addresses (read:user user:email), with PKCE and a state, nothing that reaches
// repositories or organisations.
func TestOAuthGitHubAsksMinimalScopes(t *testing.T) {
	ts, _, _ := oauthServer(t)
	r := ts.do(ts.client(), "GET", "/signin/oauth/github", nil, nil)
	loc, err := url.Parse(r.header.Get("Location"))
	if err != nil || loc.Host == "" {
		t.Fatalf("GitHub sign-in does not redirect to the provider: %d %q", r.status, r.header.Get("Location"))
	}
	q := loc.Query()
	if got := q.Get("scope"); got != "read:user user:email" {
		t.Errorf("GitHub scopes = %q, want exactly %q", got, "read:user user:email")
	}
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("state") == "" {
		t.Errorf("GitHub authorize URL lacks PKCE or state: %s", loc)
	}
}

package main

import (
	"fmt"
	"strings"

	"tunelab/handlers"
)

// oauthFromEnv reads the sign-in providers: each is on when both its client id and secret
// are set. The endpoint variables exist for tests and proxies; by default the real
// Google and GitHub endpoints are used.
func oauthFromEnv(env func(k, def string) string, errs *[]error) handlers.OAuthConfig {
	url := func(k string) string {
		v := strings.TrimRight(env(k, ""), "/")
		if v != "" && !strings.HasPrefix(v, "https://") && !strings.HasPrefix(v, "http://") {
			*errs = append(*errs, fmt.Errorf("%s=%q: must start with https:// (or http:// for a local test provider)", k, v))
		}
		return v
	}
	g := handlers.OAuthProvider{
		ClientID: env("TUNELAB_GOOGLE_CLIENT_ID", ""), ClientSecret: env("TUNELAB_GOOGLE_CLIENT_SECRET", ""),
		AuthURL: url("TUNELAB_GOOGLE_AUTH_URL"), TokenURL: url("TUNELAB_GOOGLE_TOKEN_URL"),
		Issuer: url("TUNELAB_GOOGLE_ISSUER"), JWKSURL: url("TUNELAB_GOOGLE_JWKS_URL"),
	}
	gh := handlers.OAuthProvider{
		ClientID: env("TUNELAB_GITHUB_CLIENT_ID", ""), ClientSecret: env("TUNELAB_GITHUB_CLIENT_SECRET", ""),
		AuthURL: url("TUNELAB_GITHUB_AUTH_URL"), TokenURL: url("TUNELAB_GITHUB_TOKEN_URL"), APIURL: url("TUNELAB_GITHUB_API_URL"),
	}
	for _, p := range []struct {
		name string
		p    handlers.OAuthProvider
	}{{"GOOGLE", g}, {"GITHUB", gh}} {
		if (p.p.ClientID == "") != (p.p.ClientSecret == "") {
			*errs = append(*errs, fmt.Errorf("set both TUNELAB_%s_CLIENT_ID and TUNELAB_%s_CLIENT_SECRET, or neither", p.name, p.name))
		}
	}
	return handlers.OAuthConfig{Google: g, GitHub: gh}
}

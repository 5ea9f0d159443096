package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"tunelab/store"
)

// OAuthProvider configures sign-in with one provider. It is off unless both the client
// id and secret are set. The endpoints default to the real provider's; tests point them
// at an in-process one.
type OAuthProvider struct {
	ClientID     string
	ClientSecret string
	AuthURL      string
	TokenURL     string
	// Google (OpenID Connect): the ID token's expected issuer and the provider's keys.
	Issuer  string
	JWKSURL string
	// GitHub: the REST API the user and emails are read from.
	APIURL string
}

// Enabled says whether the provider is configured.
func (p OAuthProvider) Enabled() bool { return p.ClientID != "" && p.ClientSecret != "" }

// OAuthConfig is the sign-in providers (TUNELAB_GOOGLE_*, TUNELAB_GITHUB_*).
type OAuthConfig struct {
	Google OAuthProvider
	GitHub OAuthProvider
}

// GoogleEndpoints fills in Google's endpoints where p leaves them empty.
func GoogleEndpoints(p OAuthProvider) OAuthProvider {
	p.AuthURL = cmpOr(p.AuthURL, "https://accounts.google.com/o/oauth2/v2/auth")
	p.TokenURL = cmpOr(p.TokenURL, "https://oauth2.googleapis.com/token")
	p.Issuer = cmpOr(p.Issuer, "https://accounts.google.com")
	p.JWKSURL = cmpOr(p.JWKSURL, "https://www.googleapis.com/oauth2/v3/certs")
	return p
}

// GitHubEndpoints fills in GitHub's endpoints where p leaves them empty.
func GitHubEndpoints(p OAuthProvider) OAuthProvider {
	p.AuthURL = cmpOr(p.AuthURL, "https://github.com/login/oauth/authorize")
	p.TokenURL = cmpOr(p.TokenURL, "https://github.com/login/oauth/access_token")
	p.APIURL = strings.TrimRight(cmpOr(p.APIURL, "https://api.github.com"), "/")
	return p
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// oauthProfile is what a provider says about the person who signed in.
type oauthProfile struct {
	Provider      string
	Subject       string // Google's "sub", GitHub's numeric id: the stable key of the link
	Email         string
	EmailVerified bool
	Name          string
}

// oauthClient is one configured provider.
type oauthClient struct {
	name     string // store.ProviderGoogle or store.ProviderGitHub
	label    string // "Google", "GitHub"
	conf     oauth2.Config
	verifier *oidc.IDTokenVerifier // Google: checks signature, issuer, audience and expiry
	apiURL   string                // GitHub
	http     *http.Client
}

// oauthHTTP bounds every call to a provider.
var oauthHTTP = &http.Client{Timeout: 15 * time.Second}

func newGoogleClient(p OAuthProvider, now func() time.Time) *oauthClient {
	p = GoogleEndpoints(p)
	keys := oidc.NewRemoteKeySet(oidc.ClientContext(context.Background(), oauthHTTP), p.JWKSURL)
	return &oauthClient{
		name: store.ProviderGoogle, label: "Google", http: oauthHTTP,
		conf: oauth2.Config{ClientID: p.ClientID, ClientSecret: p.ClientSecret, Scopes: []string{oidc.ScopeOpenID, "email"},
			Endpoint: oauth2.Endpoint{AuthURL: p.AuthURL, TokenURL: p.TokenURL, AuthStyle: oauth2.AuthStyleInParams}},
		verifier: oidc.NewVerifier(p.Issuer, keys, &oidc.Config{ClientID: p.ClientID, Now: now,
			SupportedSigningAlgs: []string{oidc.RS256, oidc.ES256}}),
	}
}

func newGitHubClient(p OAuthProvider) *oauthClient {
	p = GitHubEndpoints(p)
	return &oauthClient{
		name: store.ProviderGitHub, label: "GitHub", http: oauthHTTP, apiURL: p.APIURL,
		conf: oauth2.Config{ClientID: p.ClientID, ClientSecret: p.ClientSecret, Scopes: []string{"read:user", "user:email"},
			Endpoint: oauth2.Endpoint{AuthURL: p.AuthURL, TokenURL: p.TokenURL, AuthStyle: oauth2.AuthStyleInParams}},
	}
}

// errOAuthRefused is a callback whose answer does not check out (a wrong nonce, an ID
// token that is expired or not for us): the person is told to try again.
var errOAuthRefused = errors.New("the provider's answer did not check out")

// profile exchanges the code (with the PKCE verifier) and reads who signed in. For
// Google the ID token is verified against the provider's keys and must carry nonce.
func (c *oauthClient) profile(ctx context.Context, conf oauth2.Config, code, pkce, nonce string) (oauthProfile, error) {
	ctx = context.WithValue(ctx, oauth2.HTTPClient, c.http)
	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(pkce))
	if err != nil {
		return oauthProfile{}, fmt.Errorf("exchange code: %w", err)
	}
	if c.verifier != nil {
		return c.googleProfile(ctx, tok, nonce)
	}
	return c.githubProfile(ctx, tok)
}

func (c *oauthClient) googleProfile(ctx context.Context, tok *oauth2.Token, nonce string) (oauthProfile, error) {
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return oauthProfile{}, fmt.Errorf("%w: no ID token", errOAuthRefused)
	}
	idt, err := c.verifier.Verify(oidc.ClientContext(ctx, c.http), raw)
	if err != nil {
		return oauthProfile{}, fmt.Errorf("%w: %v", errOAuthRefused, err)
	}
	if nonce == "" || idt.Nonce != nonce {
		return oauthProfile{}, fmt.Errorf("%w: the ID token's nonce is not this sign-in's", errOAuthRefused)
	}
	var claims struct {
		Email         string `json:"email"`
		EmailVerified bool   `json:"email_verified"`
		Name          string `json:"name"`
	}
	if err := idt.Claims(&claims); err != nil {
		return oauthProfile{}, fmt.Errorf("%w: claims: %v", errOAuthRefused, err)
	}
	if idt.Subject == "" {
		return oauthProfile{}, fmt.Errorf("%w: no subject", errOAuthRefused)
	}
	return oauthProfile{Provider: c.name, Subject: idt.Subject, Email: claims.Email, EmailVerified: claims.EmailVerified, Name: claims.Name}, nil
}

// githubProfile reads the user (its numeric id is the subject) and the verified primary
// email; GitHub's own "email" field is whatever the person made public, so it is not used.
func (c *oauthClient) githubProfile(ctx context.Context, tok *oauth2.Token) (oauthProfile, error) {
	var user struct {
		ID    int64  `json:"id"`
		Login string `json:"login"`
		Name  string `json:"name"`
	}
	if err := c.githubGet(ctx, tok, "/user", &user); err != nil {
		return oauthProfile{}, err
	}
	if user.ID <= 0 {
		return oauthProfile{}, fmt.Errorf("%w: no user id", errOAuthRefused)
	}
	var emails []struct {
		Email    string `json:"email"`
		Primary  bool   `json:"primary"`
		Verified bool   `json:"verified"`
	}
	if err := c.githubGet(ctx, tok, "/user/emails", &emails); err != nil {
		return oauthProfile{}, err
	}
	p := oauthProfile{Provider: c.name, Subject: strconv.FormatInt(user.ID, 10), Name: cmpOr(user.Name, user.Login)}
	for _, e := range emails {
		if e.Primary {
			p.Email, p.EmailVerified = e.Email, e.Verified
		}
	}
	return p, nil
}

func (c *oauthClient) githubGet(ctx context.Context, tok *oauth2.Token, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, "GET", c.apiURL+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	tok.SetAuthHeader(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("github %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("github %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("github %s: status %d", path, resp.StatusCode)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("github %s: %w", path, err)
	}
	return nil
}

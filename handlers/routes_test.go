package handlers

import (
	"net/http"
	"strings"
	"testing"

	"tunelab/static"
)

func TestRoutes(t *testing.T) {
	ts := newTestServer(t, Config{})
	clients := map[string]*http.Client{
		"anon":  ts.client(),
		"user":  ts.signUp("user@example.com"),
		"admin": ts.admin("root@example.com"),
	}
	cases := []struct {
		name            string
		as              string
		method, path    string
		wantStatus      int
		wantLocation    string
		wantContains    []string
		wantNotContains []string
	}{
		{"dashboard needs sign-in", "anon", "GET", "/", 303, "/signin", nil, nil},
		{"runs needs sign-in and comes back", "anon", "GET", "/runs", 303, "/signin?next=%2Fruns", nil, nil},
		{"settings needs sign-in", "anon", "GET", "/settings", 303, "/signin?next=%2Fsettings", nil, nil},
		{"sign-up page", "anon", "GET", "/signup", 200, "", []string{`data-testid="signup-form"`, `name="accept_terms"`, TermsVersion}, []string{`data-testid="nav"`}},
		{"sign-in page", "anon", "GET", "/signin", 200, "", []string{`data-testid="signin-form"`, `name="password"`}, nil},
		{"signed-out notice", "anon", "GET", "/signin?signed_out=1", 200, "", []string{`data-testid="flash"`, "You have signed out."}, nil},
		{"next kept on sign-in form", "anon", "GET", "/signin?next=%2Fbilling", 200, "", []string{`name="next"`, `value="/billing"`}, nil},
		{"foreign next dropped", "anon", "GET", "/signin?next=%2F%2Fevil.example", 200, "", nil, []string{"evil.example"}},
		{"terms", "anon", "GET", "/terms", 200, "", []string{`data-testid="terms"`, TermsVersion, "crypto"}, nil},
		{"privacy", "anon", "GET", "/privacy", 200, "", []string{`data-testid="privacy"`, "argon2id", "90 days"}, nil},
		{"cookie policy", "anon", "GET", "/cookies", 200, "", []string{`data-testid="cookies"`, "tunelab_session"}, nil},
		{"cookie settings", "anon", "GET", "/cookies/settings", 200, "", []string{`data-testid="cookie-settings"`, "Strictly necessary"}, nil},
		{"footer links", "anon", "GET", "/terms", 200, "", []string{`href="/terms"`, `href="/privacy"`, `href="/cookies"`, `href="/cookies/settings"`}, nil},
		{"unknown page", "anon", "GET", "/no/such/page", 404, "", []string{"Page not found"}, nil},
		{"health", "anon", "GET", "/healthz", 200, "", []string{`"status":"ok"`}, nil},
		{"static asset", "anon", "GET", static.Stylesheets()[0], 200, "", nil, nil},
		{"signed-in user skips sign-up", "user", "GET", "/signup", 303, "/", nil, nil},
		{"dashboard empty state", "user", "GET", "/", 200, "", []string{`data-testid="dashboard"`, `data-testid="empty-state"`, "Upload a dataset", "Start a run", `href="/datasets"`, `data-testid="user-email"`, "user@example.com"}, []string{`href="/admin"`}},
		{"nav", "user", "GET", "/", 200, "", []string{`href="/runs"`, `href="/datasets"`, `href="/billing"`, `href="/settings"`, `data-testid="signout"`}, nil},
		{"runs", "user", "GET", "/runs", 200, "", []string{"No runs yet"}, nil},
		{"datasets", "user", "GET", "/datasets", 200, "", []string{"messages", "completion", "chosen"}, nil},
		{"billing", "user", "GET", "/billing", 200, "", []string{"Billing is off on this server"}, nil},
		{"settings", "user", "GET", "/settings", 200, "", []string{"user@example.com", `data-testid="password-form"`, TermsVersion}, nil},
		{"admin hidden from users", "user", "GET", "/admin", 404, "", []string{"Page not found"}, nil},
		{"admin page", "admin", "GET", "/admin", 200, "", []string{`data-testid="admin"`, "user@example.com", "root@example.com"}, nil},
		{"admin nav for admins", "admin", "GET", "/", 200, "", []string{`href="/admin"`}, nil},
		{"GET does not sign out", "user", "GET", "/signout", 404, "", nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.do(clients[tc.as], tc.method, tc.path, nil, nil)
			if r.status != tc.wantStatus {
				t.Fatalf("status = %d, want %d\n%s", r.status, tc.wantStatus, r.body)
			}
			if tc.wantLocation != "" && r.header.Get("Location") != tc.wantLocation {
				t.Fatalf("Location = %q, want %q", r.header.Get("Location"), tc.wantLocation)
			}
			for _, s := range tc.wantContains {
				if !strings.Contains(r.body, s) {
					t.Errorf("body lacks %q", s)
				}
			}
			for _, s := range tc.wantNotContains {
				if strings.Contains(r.body, s) {
					t.Errorf("body contains %q", s)
				}
			}
		})
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"":                     "/",
		"/runs":                "/runs",
		"/runs/7?tab=logs":     "/runs/7?tab=logs",
		"//evil.example/x":     "/",
		"/\\evil.example":      "/",
		"https://evil.example": "/",
		"javascript:alert(1)":  "/",
		"runs":                 "/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

package handlers

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

var (
	scriptTag = regexp.MustCompile(`<script\b[^>]*>`)
	cspNonce  = regexp.MustCompile(`script-src [^;]*'nonce-([A-Za-z0-9+/=]{22,})'`)
)

func TestEveryHTMLPageHasStrictCSPWithFreshNonce(t *testing.T) {
	ts := newTestServer(t, Config{})
	user := ts.signUp("csp@example.com")
	anon := ts.client()
	pages := []struct {
		c    *http.Client
		path string
	}{
		{anon, "/signup"}, {anon, "/signin"}, {anon, "/terms"}, {anon, "/privacy"}, {anon, "/cookies"},
		{anon, "/cookies/settings"}, {anon, "/missing"}, {user, "/"}, {user, "/runs"}, {user, "/datasets"},
		{user, "/billing"}, {user, "/settings"}, {user, "/admin"},
	}
	seen := map[string]string{}
	for _, p := range pages {
		for range 2 {
			r := ts.do(p.c, "GET", p.path, nil, nil)
			if !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
				t.Fatalf("%s: content type %q", p.path, r.header.Get("Content-Type"))
			}
			csp := r.header.Get("Content-Security-Policy")
			m := cspNonce.FindStringSubmatch(csp)
			if m == nil {
				t.Fatalf("%s: CSP %q has no script nonce", p.path, csp)
			}
			nonce := m[1]
			if prev, dup := seen[nonce]; dup {
				t.Fatalf("%s reused the nonce of %s", p.path, prev)
			}
			seen[nonce] = p.path
			scriptSrc := strings.SplitN(strings.SplitN(csp, "script-src", 2)[1], ";", 2)[0]
			if strings.Contains(scriptSrc, "unsafe-inline") || strings.Contains(scriptSrc, "unsafe-eval") {
				t.Fatalf("%s: script-src allows unsafe code: %q", p.path, scriptSrc)
			}
			for _, d := range []string{"default-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'", "form-action 'self'", "style-src 'self'"} {
				if !strings.Contains(csp, d) {
					t.Errorf("%s: CSP lacks %q", p.path, d)
				}
			}
			tags := scriptTag.FindAllString(r.body, -1)
			if len(tags) == 0 {
				t.Fatalf("%s: no script tags", p.path)
			}
			for _, tag := range tags {
				if !strings.Contains(tag, `nonce="`+nonce+`"`) || !strings.Contains(tag, `src="/static/`) {
					t.Errorf("%s: script tag %s lacks this request's nonce or is inline", p.path, tag)
				}
			}
			for _, bad := range []string{" style=", "<style", " onclick=", " onload=", "hx-on"} {
				if strings.Contains(r.body, bad) {
					t.Errorf("%s: page contains %q, which the CSP forbids", p.path, bad)
				}
			}
			for h, want := range map[string]string{
				"X-Content-Type-Options":     "nosniff",
				"Referrer-Policy":            "strict-origin-when-cross-origin",
				"Cross-Origin-Opener-Policy": "same-origin",
				"Cache-Control":              "no-store",
			} {
				if got := r.header.Get(h); got != want {
					t.Errorf("%s: %s = %q, want %q", p.path, h, got, want)
				}
			}
			if !strings.Contains(r.body, `"mode":"same-origin"`) {
				t.Errorf("%s: htmx is not limited to same-origin requests", p.path)
			}
		}
	}
}

func TestHTMXGetsFragmentsAndRedirects(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.client()
	full := ts.do(c, "GET", "/signup", nil, nil)
	frag := ts.do(c, "GET", "/signup", nil, map[string]string{"HX-Request": "true"})
	boosted := ts.do(c, "GET", "/signup", nil, map[string]string{"HX-Request": "true", "HX-Boosted": "true"})
	restore := ts.do(c, "GET", "/signup", nil, map[string]string{"HX-Request": "true", "HX-History-Restore-Request": "true"})
	if !strings.Contains(full.body, "<html") || !strings.Contains(boosted.body, "<html") || !strings.Contains(restore.body, "<html") {
		t.Fatal("a plain, boosted or history-restore request did not get the whole page")
	}
	if strings.Contains(frag.body, "<html") || !strings.HasPrefix(strings.TrimSpace(frag.body), `<form id="signup-form"`) {
		t.Fatalf("htmx request did not get the bare form:\n%s", frag.body)
	}
	for _, r := range []response{full, frag} {
		if !strings.Contains(strings.Join(r.header.Values("Vary"), ","), "HX-Request") {
			t.Fatal("Vary: HX-Request missing")
		}
	}
	bad := ts.do(c, "POST", "/signup", url.Values{"email": {"h@example.com"}, "password": {"short"}, "accept_terms": {"yes"}}, map[string]string{"HX-Request": "true"})
	if bad.status != http.StatusUnprocessableEntity || strings.Contains(bad.body, "<html") || !strings.Contains(bad.body, `data-testid="password-error"`) {
		t.Fatalf("htmx form error: status %d\n%s", bad.status, bad.body)
	}
	if !strings.Contains(bad.body, `value="h@example.com"`) {
		t.Fatal("the re-rendered form lost what was typed")
	}
	ok := ts.do(c, "POST", "/signup", signUpValues("h@example.com"), map[string]string{"HX-Request": "true"})
	if ok.header.Get("HX-Redirect") != "/" || ok.status != http.StatusNoContent {
		t.Fatalf("htmx success: status %d HX-Redirect %q", ok.status, ok.header.Get("HX-Redirect"))
	}
	// A signed-out htmx request is sent to sign-in by HX-Redirect, not a swapped page.
	anon := ts.do(ts.client(), "GET", "/runs", nil, map[string]string{"HX-Request": "true"})
	if anon.header.Get("HX-Redirect") != "/signin?next=%2Fruns" {
		t.Fatalf("signed-out htmx: HX-Redirect %q", anon.header.Get("HX-Redirect"))
	}
}

func TestErrorsAreCleanPagesOrToasts(t *testing.T) {
	a := &app{log: slog.New(slog.NewTextHandler(io.Discard, nil)), cfg: Config{}}
	boom := a.recoverPanics(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("database password is hunter2")
	}))
	for _, htmx := range []bool{false, true} {
		req := httptest.NewRequest("GET", "/x", nil)
		if htmx {
			req.Header.Set("HX-Request", "true")
		}
		rec := httptest.NewRecorder()
		boom.ServeHTTP(rec, req)
		body := rec.Body.String()
		if rec.Code != http.StatusInternalServerError || strings.Contains(body, "hunter2") {
			t.Fatalf("htmx=%v: status %d, internal text leaked: %v", htmx, rec.Code, strings.Contains(body, "hunter2"))
		}
		if !strings.Contains(body, "Something went wrong") {
			t.Fatalf("htmx=%v: no generic message", htmx)
		}
		if htmx && (rec.Header().Get("HX-Retarget") != "#toasts" || !strings.Contains(body, `data-testid="toast"`)) {
			t.Fatal("an htmx error is not sent to the toast region")
		}
		if !htmx && !strings.Contains(body, "<html") {
			t.Fatal("a page error is not a whole page")
		}
	}
}

func TestSecureDeploymentCookieAndHSTS(t *testing.T) {
	ts := newTestServer(t, Config{Secure: true})
	r := ts.do(ts.client(), "POST", "/signup", signUpValues("tls@example.com"), nil)
	ck := r.header.Get("Set-Cookie")
	for _, want := range []string{"__Host-tunelab_session=", "Secure", "HttpOnly", "SameSite=Lax", "Path=/"} {
		if !strings.Contains(ck, want) {
			t.Errorf("Set-Cookie %q lacks %q", ck, want)
		}
	}
	if strings.Contains(ck, "Domain=") {
		t.Error("a __Host- cookie must not set Domain")
	}
	if hsts := r.header.Get("Strict-Transport-Security"); !strings.Contains(hsts, "max-age=63072000") || !strings.Contains(hsts, "includeSubDomains") {
		t.Errorf("HSTS = %q", hsts)
	}
	plain := newTestServer(t, Config{})
	if h := plain.do(plain.client(), "GET", "/signin", nil, nil).header.Get("Strict-Transport-Security"); h != "" {
		t.Errorf("plain HTTP deployment sent HSTS %q", h)
	}
}

package handlers

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"github.com/a-h/templ"

	"tunelab/store"
)

// chain applies middleware in the order listed: chain{a, b}.then(h) == a(b(h)).
type chain []func(http.Handler) http.Handler

func (c chain) then(h http.Handler) http.Handler {
	for i := len(c) - 1; i >= 0; i-- {
		h = c[i](h)
	}
	return h
}

func (c chain) thenFunc(h http.HandlerFunc) http.Handler { return c.then(h) }

// extend returns a new chain with more middleware after c's.
func (c chain) extend(more ...func(http.Handler) http.Handler) chain {
	return append(append(chain{}, c...), more...)
}

// recoverPanics turns a panic into a logged 500.
func (a *app) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				w.Header().Set("Connection", "close")
				a.serverError(w, r, fmt.Errorf("panic: %v\n%s", v, debug.Stack()))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// statusRecorder remembers the status and size written, for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach Flush and deadlines (SSE).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// logRequests writes one line per request. It logs the path without the query string,
// and no headers, so tokens and cookies never reach the log.
func (a *app) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		a.log.InfoContext(r.Context(), "request", "method", r.Method, "path", r.URL.Path,
			"status", rec.status, "bytes", rec.bytes, "duration_ms", time.Since(start).Milliseconds())
	})
}

// securityHeaders sets the headers every response carries, and a fresh CSP nonce that
// templ stamps on the page's script tags.
func (a *app) securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nonce := newNonce()
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy(nonce))
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
		if a.cfg.Secure {
			h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		next.ServeHTTP(w, r.WithContext(templ.WithNonce(r.Context(), nonce)))
	})
}

// contentSecurityPolicy allows only our own files and scripts carrying this request's
// nonce: no inline script or style, no eval, no plugins, no framing, no <base> tricks.
func contentSecurityPolicy(nonce string) string {
	return "default-src 'self'; script-src 'self' 'nonce-" + nonce + "'; style-src 'self'; " +
		"img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; " +
		"base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
}

// stripeFormTargets are where the billing page's forms end up: their 303 leads to Stripe's
// hosted Checkout and customer portal, which browsers check against form-action.
const stripeFormTargets = " https://checkout.stripe.com https://billing.stripe.com"

// newNonce returns 128 random bits, base64.
func newNonce() string {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand)
	return base64.StdEncoding.EncodeToString(b)
}

// crossOriginProtection refuses cross-site state-changing requests (CSRF) with a 403 page.
func (a *app) crossOriginProtection(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.forbidden(w, r, "This form was sent from another site, so it was refused. Open the page on this site and try again.")
	}))
	return cop.Handler(next)
}

// maxFormBytes caps the body of every form; dataset uploads and the APIs have their own caps.
const maxFormBytes = 64 << 10

// limitForm reads a request's form with its body capped at maxFormBytes, answering 413
// when it is larger (and 400 when it cannot be read at all).
func (a *app) limitForm(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead || r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		err := r.ParseForm()
		if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && ct == "multipart/form-data" {
			err = r.ParseMultipartForm(maxFormBytes)
		}
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			a.errorPage(w, r, http.StatusRequestEntityTooLarge, "The form is too large",
				fmt.Sprintf("A form may hold at most %d KiB. Shorten what you entered, then send it again.", maxFormBytes>>10))
		case err != nil:
			a.badRequest(w, r, "The form could not be read; reload the page and try again.")
		default:
			next.ServeHTTP(w, r)
		}
	})
}

type ctxKey int

const userKey ctxKey = 0

func userFrom(ctx context.Context) (store.User, bool) {
	u, ok := ctx.Value(userKey).(store.User)
	return u, ok
}

// loadUser puts the signed-in user, if any, in the request context.
func (a *app) loadUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := a.sessions.GetInt64(r.Context(), store.SessionUserKey)
		if id == 0 {
			next.ServeHTTP(w, r)
			return
		}
		u, err := a.store.UserByID(r.Context(), id)
		if errors.Is(err, store.ErrNotFound) || (err == nil && !u.ClosedAt.IsZero()) {
			// The account is gone or closed: end the session rather than trust it.
			a.sessions.Destroy(r.Context())
			next.ServeHTTP(w, r)
			return
		}
		if err != nil {
			a.serverError(w, r, err)
			return
		}
		a.touchSession(r, u.ID)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey, u)))
	})
}

// requireAuth sends people who are not signed in to the sign-in page, back here after.
func (a *app) requireAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := userFrom(r.Context()); !ok {
			target := "/signin"
			if r.Method == http.MethodGet && r.URL.Path != "/" {
				target += "?next=" + url.QueryEscape(r.URL.RequestURI())
			}
			redirect(w, r, target)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// requireAdmin answers 404 to everyone but admins, so the admin area is not advertised.
func (a *app) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, ok := userFrom(r.Context()); !ok || !u.IsAdmin {
			a.notFound(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// clientIP is the address the request came from: the TCP peer, or behind a trusted
// proxy the last X-Forwarded-For entry (the one the proxy itself added).
func (a *app) clientIP(r *http.Request) string {
	if a.cfg.TrustProxy {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			parts := strings.Split(xff, ",")
			if ip := net.ParseIP(strings.TrimSpace(parts[len(parts)-1])); ip != nil {
				return ip.String()
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// safeNext keeps only local paths, so ?next= cannot send people to another site.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.IsAbs() || u.Host != "" {
		return "/"
	}
	return next
}

package handlers

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"tunelab/store"
	"tunelab/views"
)

// TermsVersion is the version of the Terms of Service the sign-up form asks people to
// accept; it is recorded with each account. Bump it whenever views/legal.templ changes.
const TermsVersion = "2026-11-23"

func signUpForm() views.SignUpForm {
	return views.SignUpForm{TermsVersion: TermsVersion, MinPassword: store.MinPasswordLen, MaxPassword: store.MaxPasswordLen}
}

func (a *app) showSignUp(w http.ResponseWriter, r *http.Request) {
	if _, ok := userFrom(r.Context()); ok {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	f := signUpForm()
	a.renderWith(w, r, http.StatusOK, a.page(r, "Create your account", "signup"), views.SignUpPage(f), views.SignUpFormFragment(f))
}

func (a *app) createAccount(w http.ResponseWriter, r *http.Request) {
	f := signUpForm()
	f.Email = r.PostFormValue("email")
	f.AcceptTerms = r.PostFormValue("accept_terms") != ""
	p := a.page(r, "Create your account", "signup")
	fail := func(status int) {
		a.renderWith(w, r, status, p, views.SignUpPage(f), views.SignUpFormFragment(f))
	}

	ip := a.clientIP(r)
	email, _ := store.NormalizeEmail(f.Email)
	if wait, limited := a.checkLimits(a.limits.signUpIP, ip, a.limits.signUpAccount, email); limited {
		a.recordEvent(r, store.EventRateLimited, 0, f.Email)
		f.FormError = tooManyAttempts(wait)
		w.Header().Set("Retry-After", retryAfter(wait))
		fail(http.StatusTooManyRequests)
		return
	}
	a.limits.signUpIP.hit(ip)
	if email != "" {
		a.limits.signUpAccount.hit(email)
	}

	nu := store.NewUser{Email: f.Email, Password: r.PostFormValue("password")}
	if f.AcceptTerms {
		nu.TermsVersion = TermsVersion
	}
	u, err := a.store.CreateUser(r.Context(), nu)
	var verr *store.ValidationError
	switch {
	case errors.As(err, &verr):
		f.EmailError = verr.Fields["email"]
		f.PasswordError = verr.Fields["password"]
		f.TermsError = verr.Fields["accept_terms"]
		fail(http.StatusUnprocessableEntity)
		return
	case errors.Is(err, store.ErrEmailTaken):
		f.EmailError = "An account with this email already exists. Sign in instead, or use another address."
		fail(http.StatusUnprocessableEntity)
		return
	case err != nil:
		a.serverError(w, r, err)
		return
	}
	a.recordEvent(r, store.EventSignUp, u.ID, u.Email)
	if err := a.startSession(r, u); err != nil {
		a.serverError(w, r, err)
		return
	}
	redirect(w, r, "/")
}

func (a *app) showSignIn(w http.ResponseWriter, r *http.Request) {
	if _, ok := userFrom(r.Context()); ok {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	f := views.SignInForm{Next: safeNextOrEmpty(r.URL.Query().Get("next"))}
	p := a.page(r, "Sign in", "signin")
	if r.URL.Query().Has("signed_out") {
		f.Notice = "You have signed out."
	}
	a.renderWith(w, r, http.StatusOK, p, views.SignInPage(f), views.SignInFormFragment(f))
}

// badCredentials is the one message for an unknown email and a wrong password.
const badCredentials = "The email or password is not right. Check both and try again."

func (a *app) signIn(w http.ResponseWriter, r *http.Request) {
	f := views.SignInForm{Email: r.PostFormValue("email"), Next: safeNextOrEmpty(r.PostFormValue("next"))}
	p := a.page(r, "Sign in", "signin")
	fail := func(status int) {
		a.renderWith(w, r, status, p, views.SignInPage(f), views.SignInFormFragment(f))
	}

	ip := a.clientIP(r)
	email, _ := store.NormalizeEmail(f.Email)
	if wait, limited := a.checkLimits(a.limits.signInIP, ip, a.limits.signInAccount, email); limited {
		a.recordEvent(r, store.EventRateLimited, 0, f.Email)
		f.Error = tooManyAttempts(wait)
		w.Header().Set("Retry-After", retryAfter(wait))
		fail(http.StatusTooManyRequests)
		return
	}
	a.limits.signInIP.hit(ip)

	u, err := a.store.Authenticate(r.Context(), f.Email, r.PostFormValue("password"))
	if errors.Is(err, store.ErrBadCredentials) {
		if email != "" {
			a.limits.signInAccount.hit(email)
		}
		a.recordEvent(r, store.EventSignInFailed, 0, f.Email)
		f.Error = badCredentials
		fail(http.StatusUnprocessableEntity)
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.limits.signInAccount.reset(email)
	if err := a.startSession(r, u); err != nil {
		a.serverError(w, r, err)
		return
	}
	a.recordEvent(r, store.EventSignIn, u.ID, u.Email)
	redirect(w, r, safeNext(f.Next))
}

// startSession gives the browser a new session token (no fixation) for u.
func (a *app) startSession(r *http.Request, u store.User) error {
	if err := a.sessions.RenewToken(r.Context()); err != nil {
		return fmt.Errorf("renew session token: %w", err)
	}
	a.sessions.Put(r.Context(), store.SessionUserKey, u.ID)
	return nil
}

func (a *app) signOut(w http.ResponseWriter, r *http.Request) {
	if u, ok := userFrom(r.Context()); ok {
		a.recordEvent(r, store.EventSignOut, u.ID, u.Email)
	}
	// Destroy deletes the session row, so the old cookie is dead even if replayed.
	if err := a.sessions.Destroy(r.Context()); err != nil {
		a.serverError(w, r, err)
		return
	}
	w.Header().Set("Clear-Site-Data", `"cache", "cookies", "storage"`)
	redirect(w, r, "/signin?signed_out=1")
}

// checkLimits checks the per-IP and per-account limiters; the account key may be empty.
func (a *app) checkLimits(byIP *limiter, ip string, byAccount *limiter, account string) (time.Duration, bool) {
	if blocked, wait := byIP.blocked(ip); blocked {
		return wait, true
	}
	if account != "" {
		if blocked, wait := byAccount.blocked(account); blocked {
			return wait, true
		}
	}
	return 0, false
}

func tooManyAttempts(wait time.Duration) string {
	mins := int(math.Ceil(wait.Minutes()))
	if mins <= 1 {
		return "Too many attempts. Wait a minute, then try again."
	}
	return fmt.Sprintf("Too many attempts. Wait %d minutes, then try again.", mins)
}

func retryAfter(wait time.Duration) string {
	return fmt.Sprint(int(math.Ceil(wait.Seconds())))
}

// recordEvent stores a security event; a failure to record is logged, not shown.
func (a *app) recordEvent(r *http.Request, kind string, userID int64, email string) {
	err := a.store.RecordSecurityEvent(r.Context(), store.SecurityEvent{
		Kind: kind, UserID: userID, Email: strings.TrimSpace(email), IP: a.clientIP(r), UserAgent: r.UserAgent(),
	})
	if err != nil {
		a.log.ErrorContext(r.Context(), "record security event", "kind", kind, "err", err)
	}
}

func safeNextOrEmpty(next string) string {
	if s := safeNext(next); s != "/" {
		return s
	}
	return ""
}

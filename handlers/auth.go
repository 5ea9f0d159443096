package handlers

import (
	"context"
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
const TermsVersion = "2026-11-29"

func signUpForm() views.SignUpForm {
	return views.SignUpForm{TermsVersion: TermsVersion, MinPassword: store.MinPasswordLen, MaxPassword: store.MaxPasswordLen}
}

func (a *app) showSignUp(w http.ResponseWriter, r *http.Request) {
	if _, ok := userFrom(r.Context()); ok {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	f := signUpForm()
	f.OAuth = a.oauthButtons("")
	a.renderWith(w, r, http.StatusOK, a.page(r, "Create your account", "signup"), views.SignUpPage(f), views.SignUpFormFragment(f))
}

func (a *app) createAccount(w http.ResponseWriter, r *http.Request) {
	f := signUpForm()
	f.OAuth = a.oauthButtons("")
	f.Email = r.PostFormValue("email")
	f.AcceptTerms = r.PostFormValue("accept_terms") != ""
	p := a.page(r, "Create your account", "signup")
	fail := func(status int) {
		a.renderWith(w, r, status, p, views.SignUpPage(f), views.SignUpFormFragment(f))
	}

	ip := limitKey(a.clientIP(r))
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
	var u store.User
	ok, err := a.hashing(w, r, func() (err error) { u, err = a.passwords.CreateUser(r.Context(), nu); return err })
	if !ok {
		return
	}
	var verr *store.ValidationError
	switch {
	case errors.As(err, &verr):
		f.EmailError = verr.Fields["email"]
		f.PasswordError = verr.Fields["password"]
		f.TermsError = verr.Fields["accept_terms"]
		fail(http.StatusUnprocessableEntity)
		return
	case errors.Is(err, store.ErrEmailTaken):
		// Answered exactly as a new account is (the same hashing work, a new session
		// token, the same redirect), so the form does not tell strangers who has an
		// account. The session holds no account: "/" sends the person on to sign in.
		a.recordEvent(r, store.EventSignUpExisting, 0, f.Email)
		if err := a.sessions.RenewToken(r.Context()); err != nil {
			a.serverError(w, r, err)
			return
		}
		a.sessions.Put(r.Context(), signInEmailKey, email)
		redirect(w, r, "/")
		return
	case err != nil:
		a.serverError(w, r, err)
		return
	}
	a.recordEvent(r, store.EventSignUp, u.ID, u.Email)
	if err := a.mailVerification(r, u); err != nil {
		a.log.ErrorContext(r.Context(), "queue verification mail", "user", u.ID, "err", err) // the banner offers another
	}
	if err := a.startSession(r, u); err != nil {
		a.serverError(w, r, err)
		return
	}
	a.noteDevice(r, u, false) // the account's first device: no "new device" mail
	redirect(w, r, "/")
}

// signInEmailKey holds, in a session without an account, the email a sign-up was tried
// with: the sign-in page offers it. signInNoticeKey holds a one-off notice for it.
const (
	signInEmailKey  = "signin_email"
	signInNoticeKey = "signin_notice"
)

func (a *app) showSignIn(w http.ResponseWriter, r *http.Request) {
	if _, ok := userFrom(r.Context()); ok {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	f := views.SignInForm{Next: safeNextOrEmpty(r.URL.Query().Get("next"))}
	f.OAuth = a.oauthButtons(f.Next)
	p := a.page(r, "Sign in", "signin")
	if r.URL.Query().Has("signed_out") {
		f.Notice = "You have signed out."
	}
	if r.URL.Query().Has("reset") {
		f.Notice = "Your password is changed and every session signed out. Sign in with the new password."
	}
	if n := a.sessions.PopString(r.Context(), signInNoticeKey); n != "" {
		f.Notice = n
	}
	if email := a.sessions.PopString(r.Context(), signInEmailKey); email != "" {
		f.Email = email
		f.Notice = "Sign in to continue."
	}
	a.renderWith(w, r, http.StatusOK, p, views.SignInPage(f), views.SignInFormFragment(f))
}

// badCredentials is the one message for an unknown email and a wrong password.
const badCredentials = "The email or password is not right. Check both and try again."

func (a *app) signIn(w http.ResponseWriter, r *http.Request) {
	f := views.SignInForm{Email: r.PostFormValue("email"), Next: safeNextOrEmpty(r.PostFormValue("next"))}
	f.OAuth = a.oauthButtons(f.Next)
	p := a.page(r, "Sign in", "signin")
	fail := func(status int) {
		a.renderWith(w, r, status, p, views.SignInPage(f), views.SignInFormFragment(f))
	}

	// The hard cap is per client address; failures for an email only slow it down, so
	// guessing from many addresses cannot lock the owner out.
	ip := limitKey(a.clientIP(r))
	email, _ := store.NormalizeEmail(f.Email)
	if blocked, wait := a.limits.signInIP.blocked(ip); blocked {
		a.recordEvent(r, store.EventRateLimited, 0, f.Email)
		f.Error = tooManyAttempts(wait)
		w.Header().Set("Retry-After", retryAfter(wait))
		fail(http.StatusTooManyRequests)
		return
	}
	a.limits.signInIP.hit(ip)
	if email != "" {
		if d := signInDelay(a.limits.signInFailures.count(email)); d > 0 {
			if err := a.sleep(r.Context(), d); err != nil {
				return // the client gave up waiting
			}
		}
	}

	var u store.User
	ok, err := a.hashing(w, r, func() (err error) {
		u, err = a.passwords.Authenticate(r.Context(), f.Email, r.PostFormValue("password"))
		return err
	})
	if !ok {
		return
	}
	if errors.Is(err, store.ErrBadCredentials) {
		if email != "" {
			a.limits.signInFailures.hit(email)
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
	if !u.ClosedAt.IsZero() && !a.store.CanReopen(u.ClosedAt) {
		// Past the reopen window the account is as good as gone: the same answer as none.
		f.Error = badCredentials
		fail(http.StatusUnprocessableEntity)
		return
	}
	a.limits.signInFailures.reset(email)
	if a.refuseSuspended(r, u, func(msg string) { f.Error = msg; fail(http.StatusForbidden) }) {
		return
	}
	a.completeSignIn(w, r, u, "", f.Next)
}

// startSession gives the browser a new session token (no fixation) for u.
func (a *app) startSession(r *http.Request, u store.User) error {
	if err := a.sessions.RenewToken(r.Context()); err != nil {
		return fmt.Errorf("renew session token: %w", err)
	}
	a.sessions.Put(r.Context(), store.SessionUserKey, u.ID)
	a.touchSession(r, u.ID)
	a.linkConsent(r, u.ID)
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
	if u, ok := userFrom(r.Context()); ok {
		a.signOuts.notify(u.ID) // this session's live streams end now
	}
	w.Header().Set("Clear-Site-Data", `"cache", "cookies", "storage"`)
	// Browsers honour Clear-Site-Data only over HTTPS (or on localhost): the cookie choice
	// is cleared by name too, as the cookie policy says.
	http.SetCookie(w, &http.Cookie{Name: consentCookieName(a.cfg.Secure), Path: "/", MaxAge: -1,
		Secure: a.cfg.Secure, HttpOnly: true, SameSite: http.SameSiteLaxMode})
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

// maxConcurrentHashes bounds password hashing at once: argon2id takes 19 MiB a hash, so a
// burst of sign-ins waits its turn rather than exhausting memory.
const maxConcurrentHashes = 4

// hashWait is how long a request waits for a hashing turn before it is answered 503.
const hashWait = 10 * time.Second

// hashing runs fn, which hashes a password, once one of the hashing turns is free, and
// returns fn's error. When no turn frees up in time it answers 503 itself, and when the
// client gives up it answers nothing; ok is false then.
func (a *app) hashing(w http.ResponseWriter, r *http.Request, fn func() error) (ok bool, err error) {
	wait := time.NewTimer(hashWait)
	defer wait.Stop()
	select {
	case a.hashSlots <- struct{}{}:
	case <-r.Context().Done():
		return false, nil
	case <-wait.C:
		w.Header().Set("Retry-After", "5")
		a.errorPage(w, r, http.StatusServiceUnavailable, "The server is busy",
			"Many people are signing in at once. Wait a few seconds, then send the form again.")
		return false, nil
	}
	defer func() { <-a.hashSlots }()
	return true, fn()
}

// sleepContext waits for d, or until ctx ends.
func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
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
		Country: a.geo.Country(a.clientIP(r)),
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

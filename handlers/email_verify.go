package handlers

import (
	"errors"
	"net/http"
	"strconv"

	"tunelab/store"
	"tunelab/views"
)

// Email verification: a link is mailed at sign-up; until it is followed every page shows
// a banner that can send it again. Following the link shows a button; the POST confirms.

// flashKey holds a one-off notice for the next page of a signed-in person.
const flashKey = "flash"

// mailVerification queues a verification link to the account's address.
func (a *app) mailVerification(r *http.Request, u store.User) error {
	token, err := a.store.CreateEmailVerification(r.Context(), u.ID)
	if err != nil {
		return err
	}
	m := views.MailVerify{Email: u.Email, Link: a.linkBase(r) + "/email/verify?token=" + token}
	return a.queueMail(r, store.MailVerifyEmail, u.Email, "Confirm your email address", views.VerifyMailText(m), views.VerifyMailHTML(m))
}

func (a *app) showVerifyEmail(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	p := views.VerifyEmail{Token: r.URL.Query().Get("token")}
	page := a.page(r, "Confirm your email", "signin")
	u, err := a.store.EmailVerificationUser(r.Context(), p.Token)
	switch {
	case errors.Is(err, store.ErrVerifyInvalid):
		p.Invalid = true
		a.render(w, r, http.StatusBadRequest, page, views.VerifyEmailPage(p))
		return
	case err != nil:
		a.serverError(w, r, err)
		return
	}
	p.Email = u.Email
	a.render(w, r, http.StatusOK, page, views.VerifyEmailPage(p))
}

func (a *app) verifyEmail(w http.ResponseWriter, r *http.Request) {
	p := views.VerifyEmail{}
	u, err := a.store.VerifyEmail(r.Context(), r.PostFormValue("token"))
	switch {
	case errors.Is(err, store.ErrVerifyInvalid):
		p.Invalid = true
		a.render(w, r, http.StatusBadRequest, a.page(r, "Confirm your email", "signin"), views.VerifyEmailPage(p))
		return
	case err != nil:
		a.serverError(w, r, err)
		return
	}
	a.recordEvent(r, store.EventEmailVerified, u.ID, u.Email)
	p.Verified, p.Email = true, u.Email
	// Built after the change, so the banner is already gone on this page.
	a.render(w, r, http.StatusOK, a.page(r, "Email confirmed", "signin"), views.VerifyEmailPage(p))
}

// resendVerification mails a new link (three an hour per account).
func (a *app) resendVerification(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	key := strconv.FormatInt(u.ID, 10)
	if blocked, wait := a.limits.verifyResend.blocked(key); blocked {
		w.Header().Set("Retry-After", retryAfter(wait))
		a.sessions.Put(r.Context(), flashKey, "A link was sent a moment ago; check your mail (and its spam folder). "+tooManyAttempts(wait))
		redirect(w, r, "/")
		return
	}
	verified, err := a.store.EmailVerified(r.Context(), u.ID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if !verified {
		a.limits.verifyResend.hit(key)
		if err := a.mailVerification(r, u); err != nil {
			a.serverError(w, r, err)
			return
		}
	}
	a.sessions.Put(r.Context(), flashKey, "We sent a new link to "+u.Email+".")
	redirect(w, r, "/")
}

package handlers

import (
	"errors"
	"net/http"

	"tunelab/store"
	"tunelab/views"
)

// Password reset: a link by mail, single use, 30 minutes. The answer to a request never
// says whether the address has an account, and a reset never signs anyone in: every
// session ends and the person signs in as usual (with any second factor).

func (a *app) showForgotPassword(w http.ResponseWriter, r *http.Request) {
	f := views.ForgotPassword{Sent: r.URL.Query().Has("sent")}
	a.render(w, r, http.StatusOK, a.page(r, "Reset your password", "signin"), views.ForgotPasswordPage(f))
}

// requestPasswordReset mails a reset link when the address has an account, and answers
// the same (a redirect to the neutral notice) when it has none.
func (a *app) requestPasswordReset(w http.ResponseWriter, r *http.Request) {
	f := views.ForgotPassword{Email: r.PostFormValue("email")}
	p := a.page(r, "Reset your password", "signin")
	email, msg := store.NormalizeEmail(f.Email)
	if msg != "" {
		f.EmailError = msg
		a.render(w, r, http.StatusUnprocessableEntity, p, views.ForgotPasswordPage(f))
		return
	}
	ip := limitKey(a.clientIP(r))
	if wait, limited := a.checkLimits(a.limits.forgotIP, ip, a.limits.forgotAccount, email); limited {
		a.recordEvent(r, store.EventRateLimited, 0, email)
		w.Header().Set("Retry-After", retryAfter(wait))
		f.FormError = tooManyAttempts(wait)
		a.render(w, r, http.StatusTooManyRequests, p, views.ForgotPasswordPage(f))
		return
	}
	a.limits.forgotIP.hit(ip)
	a.limits.forgotAccount.hit(email)
	u, err := a.store.UserByEmail(r.Context(), email)
	switch {
	case errors.Is(err, store.ErrNotFound):
		a.recordEvent(r, store.EventPasswordResetAsked, 0, email)
	case err != nil:
		a.serverError(w, r, err)
		return
	default:
		token, err := a.store.CreatePasswordReset(r.Context(), u.ID)
		if err != nil {
			a.serverError(w, r, err)
			return
		}
		m := views.MailReset{Email: u.Email, Link: a.linkBase(r) + "/password/reset?token=" + token,
			Minutes: int(store.PasswordResetTTL.Minutes())}
		if err := a.queueMail(r, store.MailPasswordReset, u.Email, "Reset your tunelab password",
			views.PasswordResetMailText(m), views.PasswordResetMailHTML(m)); err != nil {
			a.serverError(w, r, err)
			return
		}
		a.recordEvent(r, store.EventPasswordResetAsked, u.ID, u.Email)
	}
	redirect(w, r, "/password/forgot?sent=1")
}

func resetForm() views.ResetPassword {
	return views.ResetPassword{MinPassword: store.MinPasswordLen, MaxPassword: store.MaxPasswordLen}
}

// showResetPassword shows the new-password form for a live link, or says it does not work.
func (a *app) showResetPassword(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	f := resetForm()
	f.Token = r.URL.Query().Get("token")
	p := a.page(r, "Choose a new password", "signin")
	u, err := a.store.PasswordResetUser(r.Context(), f.Token)
	switch {
	case errors.Is(err, store.ErrResetInvalid):
		f.Invalid = true
		a.render(w, r, http.StatusBadRequest, p, views.ResetPasswordPage(f))
		return
	case err != nil:
		a.serverError(w, r, err)
		return
	}
	f.Email = u.Email
	a.render(w, r, http.StatusOK, p, views.ResetPasswordPage(f))
}

// resetPassword sets the new password, ends every session of the account, mails the
// address, and sends the person to sign in.
func (a *app) resetPassword(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	f := resetForm()
	f.Token = r.FormValue("token") // the form's field, or ?token= as in the link
	p := a.page(r, "Choose a new password", "signin")
	ip := limitKey(a.clientIP(r))
	if blocked, wait := a.limits.resetIP.blocked(ip); blocked {
		a.recordEvent(r, store.EventRateLimited, 0, "password reset")
		w.Header().Set("Retry-After", retryAfter(wait))
		f.Invalid = true
		a.render(w, r, http.StatusTooManyRequests, p, views.ResetPasswordPage(f))
		return
	}
	var u store.User
	ok, err := a.hashing(w, r, func() error {
		var err error
		u, err = a.store.ResetPassword(r.Context(), f.Token, r.PostFormValue("new_password"))
		return err
	})
	if !ok {
		return
	}
	var verr *store.ValidationError
	switch {
	case errors.Is(err, store.ErrResetInvalid):
		a.limits.resetIP.hit(ip)
		f.Invalid = true
		a.render(w, r, http.StatusBadRequest, p, views.ResetPasswordPage(f))
		return
	case errors.As(err, &verr):
		if owner, err := a.store.PasswordResetUser(r.Context(), f.Token); err == nil {
			f.Email = owner.Email
		}
		f.NewError = verr.Fields["new_password"]
		a.render(w, r, http.StatusUnprocessableEntity, p, views.ResetPasswordPage(f))
		return
	case err != nil:
		a.serverError(w, r, err)
		return
	}
	a.signOuts.notify(u.ID) // live streams of the ended sessions stop now
	a.recordEvent(r, store.EventPasswordReset, u.ID, u.Email)
	a.mailPasswordChanged(r, u, "reset with a link sent to this address")
	redirect(w, r, "/signin?reset=1")
}

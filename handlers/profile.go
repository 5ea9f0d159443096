package handlers

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/a-h/templ"

	"tunelab/store"
	"tunelab/views"
)

// The Profile section of Settings: a display name, and a change of email that takes
// effect only when a link mailed to the new address is opened.

func (a *app) profileForm(r *http.Request, u store.User) (views.ProfileForm, error) {
	p := views.ProfileForm{DisplayName: u.DisplayName, Email: u.Email, MaxName: store.MaxDisplayNameLen}
	pending, err := a.store.PendingEmailChange(r.Context(), u.ID)
	if err != nil {
		return p, err
	}
	p.PendingEmail = pending
	if p.AskPassword, err = a.store.HasPassword(r.Context(), u.ID); err != nil {
		return p, err
	}
	return p, nil
}

// renderProfile answers a profile form: the form alone to htmx, else the whole page.
func (a *app) renderProfile(w http.ResponseWriter, r *http.Request, status int, u store.User, p views.ProfileForm, fragment templ.Component) {
	acc, pf, err := a.settingsView(r, u)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	acc.Profile = p
	a.allowProviderForms(w, r)
	a.renderWith(w, r, status, a.page(r, "Settings", "settings"), views.SettingsPage(acc, pf), fragment)
}

func (a *app) saveDisplayName(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	p, err := a.profileForm(r, u)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	p.DisplayName = r.PostFormValue("display_name")
	name, err := a.store.SetDisplayName(r.Context(), u.ID, p.DisplayName)
	var verr *store.ValidationError
	if errors.As(err, &verr) {
		p.NameError = verr.Fields["display_name"]
		a.renderProfile(w, r, http.StatusUnprocessableEntity, u, p, views.ProfileNameForm(p))
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.recordEvent(r, store.EventProfileChanged, u.ID, u.Email)
	u.DisplayName, p.DisplayName, p.NameSaved = name, name, true
	r = r.WithContext(context.WithValue(r.Context(), userKey, u)) // the header shows the new name
	a.renderProfile(w, r, http.StatusOK, u, p, views.ProfileNameForm(p))
}

// requestEmailChange checks the password (when the account has one) and mails a link to
// the new address. Nothing changes until the link is opened.
func (a *app) requestEmailChange(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	p, err := a.profileForm(r, u)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	show := func(status int) { a.renderProfile(w, r, status, u, p, views.ProfileEmailForm(p)) }
	key := strconv.FormatInt(u.ID, 10)
	if blocked, wait := a.limits.passwordChange.blocked(key); blocked {
		p.EmailError = tooManyAttempts(wait)
		w.Header().Set("Retry-After", retryAfter(wait))
		show(http.StatusTooManyRequests)
		return
	}
	if p.AskPassword {
		ok, err := a.hashing(w, r, func() error {
			_, err := a.passwords.Authenticate(r.Context(), u.Email, r.PostFormValue("password"))
			return err
		})
		if !ok {
			return
		}
		if errors.Is(err, store.ErrBadCredentials) {
			a.limits.passwordChange.hit(key)
			p.PassError = "That is not your current password."
			show(http.StatusUnprocessableEntity)
			return
		}
		if err != nil {
			a.serverError(w, r, err)
			return
		}
	}
	token, email, err := a.store.CreateEmailChange(r.Context(), u.ID, r.PostFormValue("new_email"))
	var verr *store.ValidationError
	if errors.As(err, &verr) {
		p.EmailError = verr.Fields["new_email"]
		show(http.StatusUnprocessableEntity)
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	m := views.MailEmailChange{OldEmail: u.Email, NewEmail: email, Link: a.linkBase(r) + "/settings/email/confirm?token=" + token,
		Minutes: strconv.Itoa(int(store.EmailChangeTTL.Minutes()))}
	if err := a.queueMail(r, store.MailEmailChangeConfirm, email, "Confirm your new tunelab email",
		views.EmailChangeMailText(m), views.EmailChangeMailHTML(m)); err != nil {
		a.serverError(w, r, err)
		return
	}
	a.limits.passwordChange.reset(key)
	a.recordEvent(r, store.EventEmailChangeRequested, u.ID, u.Email)
	p.PendingEmail, p.EmailSent = email, true
	show(http.StatusOK)
}

// showEmailChange is the page the link opens: a button, so that a mail scanner opening
// the link changes nothing. It needs no sign-in: the token is the proof.
func (a *app) showEmailChange(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	c := views.EmailChangeConfirm{Token: token}
	status := http.StatusOK
	_, email, err := a.store.EmailChangeFor(r.Context(), token)
	switch {
	case errors.Is(err, store.ErrEmailChangeInvalid):
		c.Invalid, status = true, http.StatusNotFound
	case err != nil:
		a.serverError(w, r, err)
		return
	}
	c.NewEmail = email
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	a.render(w, r, status, a.page(r, "Confirm your new email", "settings"), views.EmailChangePage(c))
}

func (a *app) confirmEmailChange(w http.ResponseWriter, r *http.Request) {
	ip := limitKey(a.clientIP(r))
	if blocked, wait := a.limits.resetIP.blocked(ip); blocked {
		w.Header().Set("Retry-After", retryAfter(wait))
		a.errorPage(w, r, http.StatusTooManyRequests, "Too many attempts", tooManyAttempts(wait))
		return
	}
	before, after, err := a.store.ConfirmEmailChange(r.Context(), r.PostFormValue("token"))
	if errors.Is(err, store.ErrEmailChangeInvalid) {
		a.limits.resetIP.hit(ip)
		a.render(w, r, http.StatusNotFound, a.page(r, "Confirm your new email", "settings"), views.EmailChangePage(views.EmailChangeConfirm{Invalid: true}))
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.recordEvent(r, store.EventEmailChanged, after.ID, after.Email)
	m := views.MailEmailChanged{OldEmail: before.Email, NewEmail: after.Email, When: a.mailTime(), ForgotLink: a.linkBase(r) + "/password/forgot"}
	if err := a.queueMail(r, store.MailEmailChanged, before.Email, "Your tunelab email was changed",
		views.EmailChangedMailText(m), views.EmailChangedMailHTML(m)); err != nil {
		a.log.ErrorContext(r.Context(), "queue email changed mail", "user", after.ID, "err", err)
	}
	a.render(w, r, http.StatusOK, a.page(r, "Email changed", "settings"), views.EmailChangePage(views.EmailChangeConfirm{Done: true, NewEmail: after.Email}))
}

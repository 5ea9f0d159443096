package handlers

import (
	"errors"
	"net/http"
	"strconv"

	"tunelab/store"
	"tunelab/views"
)

func account(u store.User) views.Account {
	return views.Account{
		Email:        u.Email,
		MemberSince:  u.CreatedAt.Format("2 January 2006"),
		TermsVersion: u.TermsVersion,
		IsAdmin:      u.IsAdmin,
	}
}

// settingsView is everything the Settings page shows for u: the account with each
// section's view, and the password form. A one-off notice of a link or unlink is taken.
func (a *app) settingsView(r *http.Request, u store.User) (views.Account, views.PasswordForm, error) {
	acc := account(u)
	st, err := a.store.TOTPState(r.Context(), u.ID)
	if err != nil {
		return acc, views.PasswordForm{}, err
	}
	acc.TwoFactorOn = st.Enabled
	if acc.Profile, err = a.profileForm(r, u); err != nil {
		return acc, views.PasswordForm{}, err
	}
	if acc.SignIn, err = a.signInMethods(r, u); err != nil {
		return acc, views.PasswordForm{}, err
	}
	acc.SignIn.Notice = a.sessions.PopString(r.Context(), settingsNoticeKey)
	acc.SignIn.Error = a.sessions.PopString(r.Context(), settingsErrorKey)
	pf := views.PasswordForm{MinPassword: store.MinPasswordLen, MaxPassword: store.MaxPasswordLen, NoPassword: !acc.SignIn.HasPassword}
	return acc, pf, nil
}

func (a *app) showSettings(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	acc, pf, err := a.settingsView(r, u)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.allowProviderForms(w, r)
	a.render(w, r, http.StatusOK, a.page(r, "Settings", "settings"), views.SettingsPage(acc, pf))
}

// changePassword checks the current password, stores the new one, and signs out every
// other session of the account (this one gets a new token). An account made through a
// provider sets its first password here without a current one.
func (a *app) changePassword(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	acc, pf, err := a.settingsView(r, u)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	p := a.page(r, "Settings", "settings")
	render := func(status int) {
		a.allowProviderForms(w, r)
		a.renderWith(w, r, status, p, views.SettingsPage(acc, pf), views.PasswordFormFragment(pf))
	}
	key := strconv.FormatInt(u.ID, 10)
	if blocked, wait := a.limits.passwordChange.blocked(key); blocked {
		pf.FormError = tooManyAttempts(wait)
		w.Header().Set("Retry-After", retryAfter(wait))
		render(http.StatusTooManyRequests)
		return
	}
	first := pf.NoPassword
	ok, err := a.hashing(w, r, func() error {
		if first {
			return a.store.SetFirstPassword(r.Context(), u.ID, r.PostFormValue("new_password"))
		}
		return a.store.ChangePassword(r.Context(), u.ID, r.PostFormValue("current_password"), r.PostFormValue("new_password"))
	})
	if !ok {
		return
	}
	var verr *store.ValidationError
	switch {
	case errors.As(err, &verr):
		pf.CurrentError = verr.Fields["current_password"]
		pf.NewError = verr.Fields["new_password"]
		if pf.CurrentError != "" {
			a.limits.passwordChange.hit(key)
		}
		render(http.StatusUnprocessableEntity)
		return
	case errors.Is(err, store.ErrHasPassword), errors.Is(err, store.ErrNoPassword):
		pf.FormError = "Your password was set or removed meanwhile. Reload the page and try again."
		render(http.StatusConflict)
		return
	case err != nil:
		a.serverError(w, r, err)
		return
	}
	// A privilege-relevant change: new token here, every other session ended.
	if err := a.sessions.RenewToken(r.Context()); err != nil {
		a.serverError(w, r, err)
		return
	}
	if _, err := a.store.DeleteUserSessions(r.Context(), u.ID, a.sessions.Token(r.Context())); err != nil {
		a.serverError(w, r, err)
		return
	}
	a.signOuts.notify(u.ID)
	a.limits.passwordChange.reset(key)
	if first {
		a.recordEvent(r, store.EventPasswordSet, u.ID, u.Email)
		a.mailPasswordChanged(r, u, "set in Settings")
	} else {
		a.recordEvent(r, store.EventPasswordChanged, u.ID, u.Email)
		a.mailPasswordChanged(r, u, "changed in Settings")
	}
	pf.Saved, pf.NoPassword = true, false
	render(http.StatusOK)
}

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

// settingsAccount is account(u) with whether two-factor sign-in is on (shown as off when
// that cannot be read, and logged).
func (a *app) settingsAccount(r *http.Request, u store.User) views.Account {
	acc := account(u)
	st, err := a.store.TOTPState(r.Context(), u.ID)
	if err != nil {
		a.log.ErrorContext(r.Context(), "two-factor state", "err", err)
	}
	acc.TwoFactorOn = st.Enabled
	return acc
}

func passwordForm() views.PasswordForm {
	return views.PasswordForm{MinPassword: store.MinPasswordLen, MaxPassword: store.MaxPasswordLen}
}

func (a *app) showSettings(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	pf := passwordForm()
	acc := a.settingsAccount(r, u)
	a.render(w, r, http.StatusOK, a.page(r, "Settings", "settings"), views.SettingsPage(acc, pf))
}

// changePassword checks the current password, stores the new one, and signs out every
// other session of the account (this one gets a new token).
func (a *app) changePassword(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	pf := passwordForm()
	acc := a.settingsAccount(r, u)
	p := a.page(r, "Settings", "settings")
	render := func(status int) {
		a.renderWith(w, r, status, p, views.SettingsPage(acc, pf), views.PasswordFormFragment(pf))
	}
	key := strconv.FormatInt(u.ID, 10)
	if blocked, wait := a.limits.passwordChange.blocked(key); blocked {
		pf.FormError = tooManyAttempts(wait)
		w.Header().Set("Retry-After", retryAfter(wait))
		render(http.StatusTooManyRequests)
		return
	}
	ok, err := a.hashing(w, r, func() error {
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
	a.recordEvent(r, store.EventPasswordChanged, u.ID, u.Email)
	a.mailPasswordChanged(r, u, "changed in Settings")
	pf.Saved = true
	render(http.StatusOK)
}

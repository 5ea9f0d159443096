package handlers

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"tunelab/billing"
	"tunelab/store"
	"tunelab/views"
)

// Closing and reopening an account (PRODUCT.md promise 4; the purge is store.Purge).

// A closed account that signs in again with the right password (and code) holds only
// these keys in its session, never store.SessionUserKey, until it chooses to reopen.
const (
	reopenUserKey = "reopen_user"
	reopenAtKey   = "reopen_at" // Unix ms of the sign-in
	reopenTTL     = 10 * time.Minute
)

const closedTime = "2 January 2006, 15:04 UTC"

// keptRecords is what stays after a closed account is purged (the tombstone's records).
var keptRecords = []views.KeptRecord{
	{What: "GPU time per run", Why: "Seconds of GPU time each run used, with the run's number and dates: the usage record, kept as tax law requires."},
	{What: "Audit log entries", Why: "Which action was taken on which numbered item and when, never its content."},
}

// keptStripe is kept too when billing is on.
var keptStripe = views.KeptRecord{What: "Stripe references", Why: "The Stripe customer and subscription ids, so invoices Stripe holds can be matched; Stripe keeps the invoices themselves."}

func (a *app) closeView(r *http.Request, u store.User) (views.CloseAccount, error) {
	c := views.CloseAccount{ReopenDays: int(store.ReopenWindow / (24 * time.Hour)), PurgeDays: int(store.AccountPurgeLimit / (24 * time.Hour)), Kept: keptRecords}
	st, err := a.store.TOTPState(r.Context(), u.ID)
	if err != nil {
		return c, err
	}
	c.TwoFactorOn = st.Enabled
	if a.billing.Enabled() {
		c.Kept = append(append([]views.KeptRecord{}, keptRecords...), keptStripe)
		acct, err := a.store.BillingAccount(r.Context(), u.ID)
		if err != nil {
			return c, err
		}
		if acct.SubscriptionID != "" && acct.SubscriptionStatus != "canceled" && !acct.PeriodEnd.IsZero() {
			c.Subscription = "Your subscription is not renewed: it ends on " + acct.PeriodEnd.Format("2 January 2006") +
				", the end of the period already paid for."
		}
	}
	return c, nil
}

func (a *app) showCloseAccount(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	c, err := a.closeView(r, u)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.render(w, r, http.StatusOK, a.page(r, "Close account", "settings"), views.CloseAccountPage(c))
}

// closeAccount checks the password (and code), ends the subscription at the period's
// end, closes the account, and signs this browser out.
func (a *app) closeAccount(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	c, err := a.closeView(r, u)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	p := a.page(r, "Close account", "settings")
	show := func(status int) { a.render(w, r, status, p, views.CloseAccountPage(c)) }
	if !a.reauthenticate(w, r, u, c.TwoFactorOn, &c.PasswordError, &c.CodeError, &c.FormError, show) {
		return
	}
	// Stripe first: when it cannot be reached nothing has changed yet, and the person can
	// try again.
	if err := a.billing.CancelAtPeriodEnd(r.Context(), u.ID); errors.Is(err, billing.ErrStripe) {
		a.log.ErrorContext(r.Context(), "cancel subscription on close", "err", err)
		c.FormError = "Stripe could not be reached to end your subscription, so nothing was changed. Try again in a minute."
		show(http.StatusServiceUnavailable)
		return
	} else if err != nil {
		a.serverError(w, r, err)
		return
	}
	closed, err := a.store.CloseAccount(r.Context(), u.ID, u.ID)
	if err != nil && !errors.Is(err, store.ErrAccountClosed) {
		a.serverError(w, r, err)
		return
	}
	for _, id := range closed.Runs {
		a.publish(statusEvent(id))
	}
	if len(closed.Runs) > 0 {
		a.wake() // the dispatcher stops the running ones now
	}
	a.recordEvent(r, store.EventAccountClosed, u.ID, u.Email)
	if err := a.sessions.Destroy(r.Context()); err != nil {
		a.serverError(w, r, err)
		return
	}
	a.signOuts.notify(u.ID) // every live stream of the account ends now
	w.Header().Set("Clear-Site-Data", `"cache", "cookies", "storage"`)
	until := a.now().Add(store.ReopenWindow).UTC().Format(closedTime)
	a.render(w, r, http.StatusOK, a.page(r, "Account closed", "signin"), views.AccountClosedPage(views.AccountClosed{ReopenUntil: until}))
}

// closedGate stops a sign-in of a closed account before it gets a session: the browser
// goes to the reopen page instead. It reports whether it answered.
func (a *app) closedGate(w http.ResponseWriter, r *http.Request, u store.User) bool {
	if u.ClosedAt.IsZero() {
		return false
	}
	if err := a.sessions.RenewToken(r.Context()); err != nil {
		a.serverError(w, r, err)
		return true
	}
	a.sessions.Put(r.Context(), reopenUserKey, u.ID)
	a.sessions.Put(r.Context(), reopenAtKey, a.now().UnixMilli())
	redirect(w, r, "/account/reopen")
	return true
}

// reopenable returns the closed account this session signed in as, if it still can be
// reopened; otherwise it answers (back to sign-in) and returns false.
func (a *app) reopenable(w http.ResponseWriter, r *http.Request) (store.User, bool) {
	id := a.sessions.GetInt64(r.Context(), reopenUserKey)
	at := time.UnixMilli(a.sessions.GetInt64(r.Context(), reopenAtKey))
	if id == 0 || a.now().Sub(at) > reopenTTL {
		redirect(w, r, "/signin")
		return store.User{}, false
	}
	u, err := a.store.UserByID(r.Context(), id)
	if err != nil || u.ClosedAt.IsZero() {
		a.sessions.Remove(r.Context(), reopenUserKey)
		redirect(w, r, "/signin")
		return store.User{}, false
	}
	return u, true
}

func (a *app) showReopen(w http.ResponseWriter, r *http.Request) {
	u, ok := a.reopenable(w, r)
	if !ok {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	until := u.ClosedAt.Add(store.ReopenWindow).Format(closedTime)
	a.render(w, r, http.StatusOK, a.page(r, "Account closed", "signin"), views.AccountClosedPage(views.AccountClosed{ReopenUntil: until, Reopen: true}))
}

func (a *app) reopenAccount(w http.ResponseWriter, r *http.Request) {
	u, ok := a.reopenable(w, r)
	if !ok {
		return
	}
	if err := a.store.ReopenAccount(r.Context(), u.ID); errors.Is(err, store.ErrAccountClosed) {
		a.sessions.Remove(r.Context(), reopenUserKey)
		a.render(w, r, http.StatusConflict, a.page(r, "Account closed", "signin"), views.AccountClosedPage(views.AccountClosed{
			ReopenUntil: u.ClosedAt.Add(store.ReopenWindow).Format(closedTime),
			FormError:   "The days to reopen this account have passed; it is being deleted.",
		}))
		return
	} else if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.sessions.Remove(r.Context(), reopenUserKey)
	a.sessions.Remove(r.Context(), reopenAtKey)
	u.ClosedAt = time.Time{}
	if err := a.startSession(r, u); err != nil {
		a.serverError(w, r, err)
		return
	}
	a.recordEvent(r, store.EventAccountReopened, u.ID, u.Email)
	redirect(w, r, "/")
}

// reauthenticate checks the password, and the code when two-factor sign-in is on, before a
// weighty step (closing, exporting). On a wrong one it sets the field's error, shows the
// page and returns false. Wrong tries count against the account like on the 2FA page.
func (a *app) reauthenticate(w http.ResponseWriter, r *http.Request, u store.User, twoFactorOn bool, passwordErr, codeErr, formErr *string, show func(int)) bool {
	key := strconv.FormatInt(u.ID, 10)
	if blocked, wait := a.limits.totpAccount.blocked(key); blocked {
		a.recordEvent(r, store.EventRateLimited, u.ID, u.Email)
		*formErr = tooManyAttempts(wait)
		w.Header().Set("Retry-After", retryAfter(wait))
		show(http.StatusTooManyRequests)
		return false
	}
	ok, err := a.hashing(w, r, func() error {
		_, err := a.passwords.Authenticate(r.Context(), u.Email, r.PostFormValue("password"))
		return err
	})
	if !ok {
		return false
	}
	if errors.Is(err, store.ErrBadCredentials) {
		a.limits.totpAccount.hit(key)
		*passwordErr = "That is not your password."
		show(http.StatusUnprocessableEntity)
		return false
	}
	if err != nil {
		a.serverError(w, r, err)
		return false
	}
	if twoFactorOn {
		code := strings.ReplaceAll(strings.TrimSpace(r.PostFormValue("code")), " ", "")
		if err := a.store.VerifyTOTP(r.Context(), a.vault, u.ID, code); errors.Is(err, store.ErrBadCode) {
			a.limits.totpAccount.hit(key)
			a.recordEvent(r, store.EventTOTPFailed, u.ID, u.Email)
			*codeErr = badCode
			show(http.StatusUnprocessableEntity)
			return false
		} else if err != nil {
			a.serverError(w, r, err)
			return false
		}
	}
	a.limits.totpAccount.reset(key)
	return true
}

package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"tunelab/store"
	"tunelab/views"
)

const suspendedMessage = "This account is suspended. Contact the operator of this server to ask why, or to have it restored."

// refuseSuspended stops a suspended account's sign-in (recording it) and shows msg through
// show; it reports whether it did.
func (a *app) refuseSuspended(r *http.Request, u store.User, show func(msg string)) bool {
	suspended, err := a.store.AccountSuspended(r.Context(), u.ID)
	if err != nil {
		a.log.ErrorContext(r.Context(), "account suspended", "err", err)
		suspended = true // fail closed
	}
	if suspended {
		a.recordEvent(r, store.EventSignInSuspended, u.ID, u.Email)
		show(suspendedMessage)
	}
	return suspended
}

// refuseSuspendedAPI answers 403 to a suspended account's API key.
func (a *app) refuseSuspendedAPI(w http.ResponseWriter, r *http.Request, userID int64) bool {
	suspended, err := a.store.AccountSuspended(r.Context(), userID)
	if err != nil {
		a.workerServerError(w, r, err)
		return true
	}
	if suspended {
		apiError(w, http.StatusForbidden, "account_suspended", suspendedMessage)
	}
	return suspended
}

// reviewWindow is how far back the failure counts and new-country sign-ins look.
const reviewWindow = 7 * 24 * time.Hour

// showAdminSecurity is the security review: filtered events, failures by account and by
// address, sign-ins from a new country, and suspending accounts.
func (a *app) showAdminSecurity(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	v := views.AdminSecurity{Filter: views.SecurityFilterForm{
		Email: q.Get("account"), IP: q.Get("ip"), Kind: q.Get("kind"), From: q.Get("from"), To: q.Get("to")},
	}
	f := store.SecurityFilter{Email: v.Filter.Email, IP: v.Filter.IP, Limit: 200}
	if v.Filter.Kind != "" {
		if _, ok := eventKinds[v.Filter.Kind]; !ok {
			v.Filter.Error = "Choose an event kind from the list."
		}
		f.Kind = v.Filter.Kind
	}
	for _, d := range []struct {
		raw, name string
		into      *time.Time
		add       int
	}{{v.Filter.From, "From", &f.From, 0}, {v.Filter.To, "To", &f.To, 1}} {
		if d.raw == "" {
			continue
		}
		t, err := time.Parse(time.DateOnly, d.raw)
		if err != nil {
			v.Filter.Error = d.name + " must be a date like 2026-11-29."
			continue
		}
		*d.into = t.AddDate(0, 0, d.add) // "to" includes its whole day
	}
	for _, k := range store.EventKinds {
		v.Kinds = append(v.Kinds, views.KindOption{Value: k, Label: eventLabel(k), Selected: k == v.Filter.Kind})
	}
	status := http.StatusOK
	if v.Filter.Error != "" {
		status = http.StatusUnprocessableEntity
	} else {
		events, err := a.store.SearchSecurityEvents(ctx, f)
		if err != nil {
			a.serverError(w, r, err)
			return
		}
		v.Events = securityRows(events)
	}
	var failKinds []string
	for k := range failureKinds {
		failKinds = append(failKinds, k)
	}
	since := a.now().Add(-reviewWindow)
	byAccount, byIP, err := a.store.SecurityFailures(ctx, failKinds, since)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	for _, c := range byAccount {
		v.ByAccount = append(v.ByAccount, views.FailureRow{Key: c.Key, Count: strconv.FormatInt(c.Count, 10), Last: c.Last.Format(adminTime),
			Href: "/admin/security?account=" + url.QueryEscape(c.Key)})
	}
	for _, c := range byIP {
		v.ByIP = append(v.ByIP, views.FailureRow{Key: c.Key, Count: strconv.FormatInt(c.Count, 10), Last: c.Last.Format(adminTime),
			Href: "/admin/security?ip=" + url.QueryEscape(c.Key)})
	}
	fresh, err := a.store.NewCountrySignIns(ctx, since, 50)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	v.NewCountry = securityRows(fresh)
	users, _, err := a.store.ListUsers(ctx, 200)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	suspended, err := a.store.SuspendedAccounts(ctx)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	me, _ := userFrom(ctx)
	for _, u := range users {
		row := views.AccountRow{ID: strconv.FormatInt(u.ID, 10), Email: u.Email, IsAdmin: u.IsAdmin, Self: u.ID == me.ID}
		if at, ok := suspended[u.ID]; ok {
			row.Suspended, row.Since = true, at.Format(adminTime)
		}
		v.Accounts = append(v.Accounts, row)
	}
	a.render(w, r, status, a.page(r, "Security review", "admin"), views.AdminSecurityPage(v))
}

func securityRows(events []store.SecurityEvent) []views.SecurityEventRow {
	out := make([]views.SecurityEventRow, 0, len(events))
	for _, e := range events {
		out = append(out, views.SecurityEventRow{
			When: e.CreatedAt.Format(adminTime), Kind: eventLabel(e.Kind), Email: e.Email, IP: e.IP, UserAgent: e.UserAgent,
			Country: countryLabel(e.Country), Failure: failureKinds[e.Kind],
		})
	}
	return out
}

// countryLabel shows an unknown country in words.
func countryLabel(cc string) string {
	if cc == "" {
		return "unknown"
	}
	return cc
}

// accountByPath reads {id} of an admin account action; an unknown id is a 404.
func (a *app) accountByPath(w http.ResponseWriter, r *http.Request) (store.User, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		a.notFound(w, r)
		return store.User{}, false
	}
	u, err := a.store.UserByID(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		a.notFound(w, r)
		return store.User{}, false
	}
	if err != nil {
		a.serverError(w, r, err)
		return store.User{}, false
	}
	return u, true
}

// suspendAccount blocks an account: its sessions end at once (live streams too), its
// unfinished runs are cancelled the way the person's own Cancel does, and it cannot sign in.
func (a *app) suspendAccount(w http.ResponseWriter, r *http.Request) {
	me, _ := userFrom(r.Context())
	u, ok := a.accountByPath(w, r)
	if !ok {
		return
	}
	if u.ID == me.ID {
		a.badRequest(w, r, "You cannot suspend your own account: another admin has to.")
		return
	}
	if err := a.store.SuspendAccount(r.Context(), u.ID, me.ID); err != nil {
		a.serverError(w, r, err)
		return
	}
	a.signOuts.notify(u.ID)
	ids, err := a.store.UnfinishedRunIDs(r.Context(), u.ID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	for _, id := range ids {
		if _, err := a.store.CancelRun(r.Context(), u.ID, id); err != nil && !errors.Is(err, store.ErrRunFinished) && !errors.Is(err, store.ErrNotFound) {
			a.serverError(w, r, err)
			return
		}
		a.publish(statusEvent(id))
	}
	if len(ids) > 0 {
		a.wake()
	}
	a.recordEvent(r, store.EventAccountSuspended, u.ID, u.Email)
	a.sessions.Put(r.Context(), flashKey, fmt.Sprintf("%s is suspended: signed out everywhere, %s cancelled.", u.Email, runsWord(len(ids))))
	redirect(w, r, "/admin/security")
}

func runsWord(n int) string {
	if n == 1 {
		return "1 run"
	}
	return fmt.Sprintf("%d runs", n)
}

// unsuspendAccount lets an account sign in again; cancelled runs stay cancelled.
func (a *app) unsuspendAccount(w http.ResponseWriter, r *http.Request) {
	u, ok := a.accountByPath(w, r)
	if !ok {
		return
	}
	was, err := a.store.UnsuspendAccount(r.Context(), u.ID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	msg := u.Email + " was not suspended."
	if was {
		a.recordEvent(r, store.EventAccountUnsuspended, u.ID, u.Email)
		msg = u.Email + " can sign in again."
	}
	a.sessions.Put(r.Context(), flashKey, msg)
	redirect(w, r, "/admin/security")
}

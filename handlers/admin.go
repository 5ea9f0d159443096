package handlers

import (
	"net/http"

	"tunelab/store"
	"tunelab/views"
)

var eventKinds = map[string]string{
	store.EventSignUp:          "Sign-up",
	store.EventSignIn:          "Sign-in",
	store.EventSignInFailed:    "Failed sign-in",
	store.EventSignOut:         "Sign-out",
	store.EventPasswordChanged: "Password changed",
	store.EventRateLimited:     "Rate limited",
}

const adminTime = "2006-01-02 15:04 UTC"

func (a *app) showAdmin(w http.ResponseWriter, r *http.Request) {
	users, total, err := a.store.ListUsers(r.Context(), 50)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	events, err := a.store.RecentSecurityEvents(r.Context(), 50)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	o := views.AdminOverview{UserCount: total}
	for _, u := range users {
		o.Users = append(o.Users, views.AdminUserRow{Email: u.Email, Created: u.CreatedAt.Format(adminTime), IsAdmin: u.IsAdmin})
	}
	for _, e := range events {
		o.Events = append(o.Events, views.SecurityEventRow{
			When: e.CreatedAt.Format(adminTime), Kind: eventKinds[e.Kind], Email: e.Email, IP: e.IP, UserAgent: e.UserAgent,
			Failure: e.Kind == store.EventSignInFailed || e.Kind == store.EventRateLimited,
		})
	}
	a.render(w, r, http.StatusOK, a.page(r, "Admin", "admin"), views.AdminPage(o))
}

package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"tunelab/store"
	"tunelab/views"
)

// API keys in Settings: make one (shown once, after a redirect), list them, revoke one.

// apiKeyExpiries are the expiry choices, in days; "" never expires.
var apiKeyExpiries = []views.APIKeyExpiry{
	{Value: "", Label: "Never"}, {Value: "7", Label: "In 7 days"}, {Value: "30", Label: "In 30 days"},
	{Value: "90", Label: "In 90 days"}, {Value: "365", Label: "In a year"},
}

// Session keys that carry a new key (and its name) from the POST that made it to the one
// GET that shows it, and the name of a key just revoked.
const (
	newAPIKeySession     = "new_api_key"
	newAPIKeyNameSession = "new_api_key_name"
	revokedKeySession    = "revoked_api_key"
)

const apiKeyTime = "2 Jan 2006 15:04"

func (a *app) apiKeysPage(r *http.Request, u store.User, form views.APIKeyForm) (views.APIKeys, error) {
	keys, err := a.store.APIKeys(r.Context(), u.ID)
	if err != nil {
		return views.APIKeys{}, err
	}
	form.Options = apiKeyExpiries
	base := a.baseURL(r) + "/api/v1"
	p := views.APIKeys{Form: form, Endpoint: base,
		DocsCurl: "curl -H 'Authorization: Bearer tl_YOUR_KEY' " + base + "/runs"}
	now := a.now()
	for _, k := range keys {
		row := views.APIKeyRow{ID: k.ID, Name: k.Name, Prefix: k.Prefix, Created: k.CreatedAt.Format(apiKeyTime),
			LastUsed: "Never", Expires: "Never", Status: "Active", Tone: "success", Active: k.Active(now),
			RevokeURL: fmt.Sprintf("/settings/api-keys/%d/revoke", k.ID)}
		if !k.LastUsedAt.IsZero() {
			row.LastUsed = k.LastUsedAt.Format(apiKeyTime)
		}
		if !k.ExpiresAt.IsZero() {
			row.Expires = k.ExpiresAt.Format(apiKeyTime)
		}
		switch {
		case !k.RevokedAt.IsZero():
			row.Status, row.Tone = "Revoked", "neutral"
		case k.Expired(now):
			row.Status, row.Tone = "Expired", "warn"
		}
		p.Keys = append(p.Keys, row)
	}
	return p, nil
}

// baseURL is the server's address as the person reaches it.
func (a *app) baseURL(r *http.Request) string {
	scheme := "http"
	if a.cfg.Secure || r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// showAPIKeys lists the keys; right after one was made it shows that key, once (taken out
// of the session as it is shown, so a reload does not show it again).
func (a *app) showAPIKeys(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	p, err := a.apiKeysPage(r, u, views.APIKeyForm{})
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	p.NewKey = a.sessions.PopString(r.Context(), newAPIKeySession)
	p.NewName = a.sessions.PopString(r.Context(), newAPIKeyNameSession)
	p.RevokedOK = a.sessions.PopString(r.Context(), revokedKeySession)
	if p.NewKey != "" {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set(noCompressHeader, "1") // a secret is never compressed (BREACH)
	}
	a.render(w, r, http.StatusOK, a.page(r, "API keys", "settings"), views.APIKeysPage(p))
}

// createAPIKey makes a key and redirects to the page that shows it once: a reload of that
// page neither re-posts nor makes another key.
func (a *app) createAPIKey(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	form := views.APIKeyForm{Name: r.PostFormValue("name"), Expires: r.PostFormValue("expires")}
	var expires time.Time
	if !slices.ContainsFunc(apiKeyExpiries, func(e views.APIKeyExpiry) bool { return e.Value == form.Expires }) {
		form.ExpiresError = "Choose one of the expiry options."
	} else if days, err := strconv.Atoi(form.Expires); err == nil {
		expires = a.now().Add(time.Duration(days) * 24 * time.Hour)
	}
	var k store.APIKey
	var secret string
	var err error
	if form.ExpiresError == "" {
		k, secret, err = a.store.CreateAPIKey(r.Context(), u.ID, form.Name, expires)
	}
	var verr *store.ValidationError
	if errors.As(err, &verr) {
		form.NameError, form.ExpiresError = verr.Fields["name"], verr.Fields["expires"]
	} else if err != nil {
		a.serverError(w, r, err)
		return
	}
	if form.NameError != "" || form.ExpiresError != "" {
		p, err := a.apiKeysPage(r, u, form)
		if err != nil {
			a.serverError(w, r, err)
			return
		}
		a.render(w, r, http.StatusUnprocessableEntity, a.page(r, "API keys", "settings"), views.APIKeysPage(p))
		return
	}
	a.recordEvent(r, store.EventAPIKeyCreated, u.ID, fmt.Sprintf("%s (%s…)", k.Name, k.Prefix))
	a.sessions.Put(r.Context(), newAPIKeySession, secret)
	a.sessions.Put(r.Context(), newAPIKeyNameSession, k.Name)
	redirect(w, r, "/settings/api-keys")
}

// revokeAPIKey stops one of the person's keys; another person's id is a 404.
func (a *app) revokeAPIKey(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		a.notFound(w, r)
		return
	}
	k, err := a.store.RevokeAPIKey(r.Context(), u.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		a.notFound(w, r)
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.recordEvent(r, store.EventAPIKeyRevoked, u.ID, fmt.Sprintf("%s (%s…)", k.Name, k.Prefix))
	a.sessions.Put(r.Context(), revokedKeySession, k.Name)
	redirect(w, r, "/settings/api-keys")
}

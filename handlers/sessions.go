package handlers

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"tunelab/store"
	"tunelab/views"
)

// touchSession notes the request's session on the person's sessions page (device,
// address, last seen). A failure is logged; the request goes on.
func (a *app) touchSession(r *http.Request, userID int64) {
	token := a.sessions.Token(r.Context())
	if token == "" {
		return
	}
	if err := a.store.TouchSessionDevice(r.Context(), token, userID, r.UserAgent(), a.clientIP(r)); err != nil {
		a.log.WarnContext(r.Context(), "touch session device", "err", err)
	}
}

// deviceName reads a browser and an operating system from a user agent, simply.
func deviceName(ua string) string {
	browser := "Unknown browser"
	for _, b := range []struct{ token, name string }{
		{"Edg/", "Edge"}, {"OPR/", "Opera"}, {"Firefox/", "Firefox"}, {"Chrome/", "Chrome"},
		{"CriOS/", "Chrome"}, {"FxiOS/", "Firefox"}, {"Safari/", "Safari"}, {"curl/", "curl"},
	} {
		if strings.Contains(ua, b.token) {
			browser = b.name
			break
		}
	}
	os := ""
	for _, o := range []struct{ token, name string }{
		{"Windows", "Windows"}, {"iPhone", "iOS"}, {"iPad", "iPadOS"}, {"Android", "Android"},
		{"CrOS", "ChromeOS"}, {"Mac OS X", "macOS"}, {"Macintosh", "macOS"}, {"Linux", "Linux"},
	} {
		if strings.Contains(ua, o.token) {
			os = o.name
			break
		}
	}
	if os == "" {
		return browser
	}
	return browser + " on " + os
}

func (a *app) showSessions(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	a.renderSessions(w, r, u, a.sessions.PopString(r.Context(), sessionsNoticeKey))
}

// sessionsNoticeKey holds the one-off notice of the sessions page after a revoke.
const sessionsNoticeKey = "sessions_notice"

func (a *app) renderSessions(w http.ResponseWriter, r *http.Request, u store.User, notice string) {
	list, err := a.store.ListSessionDevices(r.Context(), u.ID, a.sessions.Token(r.Context()))
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	v := views.Sessions{Notice: notice}
	for _, d := range list {
		v.Items = append(v.Items, views.SessionItem{
			ID:        strconv.FormatInt(d.ID, 10),
			Device:    deviceName(d.UserAgent),
			UserAgent: d.UserAgent,
			IP:        d.IP,
			LastSeen:  d.LastSeen.Format("2 Jan 2006 15:04 UTC"),
			Created:   d.CreatedAt.Format("2 Jan 2006 15:04 UTC"),
			Current:   d.Current,
		})
	}
	a.render(w, r, http.StatusOK, a.page(r, "Sessions", "settings"), views.SessionsPage(v))
}

// revokeSession signs out one of the person's sessions; another person's id is a 404.
// Revoking this browser's own session signs it out.
func (a *app) revokeSession(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		a.notFound(w, r)
		return
	}
	current, err := a.store.SessionIsCurrent(r.Context(), u.ID, id, a.sessions.Token(r.Context()))
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if current {
		a.signOut(w, r)
		return
	}
	err = a.store.RevokeSession(r.Context(), u.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		a.notFound(w, r)
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.signOuts.notify(u.ID) // the revoked session's live streams end now
	a.recordEvent(r, store.EventSessionRevoked, u.ID, u.Email)
	a.sessions.Put(r.Context(), sessionsNoticeKey, "That session was signed out.")
	redirect(w, r, "/settings/sessions")
}

// revokeOtherSessions signs out every session of the person but this one.
func (a *app) revokeOtherSessions(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	n, err := a.store.DeleteUserSessions(r.Context(), u.ID, a.sessions.Token(r.Context()))
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.signOuts.notify(u.ID)
	a.recordEvent(r, store.EventSessionsRevokedOthers, u.ID, u.Email)
	notice := "Every other session was signed out."
	if n == 0 {
		notice = "There were no other sessions."
	}
	a.sessions.Put(r.Context(), sessionsNoticeKey, notice)
	redirect(w, r, "/settings/sessions")
}

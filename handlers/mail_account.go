package handlers

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/a-h/templ"

	"tunelab/store"
	"tunelab/views"
)

// mailTime is the time of an event as mails write it.
func (a *app) mailTime() string { return a.now().UTC().Format("2 January 2006 at 15:04 UTC") }

// networkOf is the client address's prefix: IPv4 /24, IPv6 /48. A device is a browser
// family on a network, so a new phone on the home Wi-Fi is new, but a new lease is not.
func networkOf(ip string) string {
	addr := net.ParseIP(ip)
	switch {
	case addr == nil:
		return "unknown network"
	case addr.To4() != nil:
		return addr.Mask(net.CIDRMask(24, 32)).String() + "/24"
	default:
		return addr.Mask(net.CIDRMask(48, 128)).String() + "/48"
	}
}

// noteDevice records the sign-in's device; mail says whether a new one is mailed about
// (false right after sign-up, where the device is the account's first).
func (a *app) noteDevice(r *http.Request, u store.User, mail bool) {
	device, network := deviceName(r.UserAgent()), networkOf(a.clientIP(r))
	isNew, err := a.store.NoteSignInDevice(r.Context(), u.ID, device+" | "+network)
	if err != nil {
		a.log.ErrorContext(r.Context(), "note sign-in device", "user", u.ID, "err", err)
		return
	}
	if !isNew || !mail {
		return
	}
	base := a.linkBase(r)
	m := views.MailNewDevice{Email: u.Email, Device: device, Network: network, When: a.mailTime(),
		SessionsLink: base + "/settings/sessions", ForgotLink: base + "/password/forgot"}
	if err := a.queueMail(r, store.MailNewDevice, u.Email, "New sign-in to your tunelab account",
		views.NewDeviceMailText(m), views.NewDeviceMailHTML(m)); err != nil {
		a.log.ErrorContext(r.Context(), "queue new device mail", "user", u.ID, "err", err)
	}
}

// mailTwoFactor tells the account two-factor sign-in was turned on or off.
func (a *app) mailTwoFactor(r *http.Request, u store.User, on bool) {
	base := a.linkBase(r)
	m := views.MailTwoFactor{Email: u.Email, On: on, When: a.mailTime(), SettingsLink: base + "/settings/2fa", ForgotLink: base + "/password/forgot"}
	if err := a.queueMail(r, store.MailTwoFactor, u.Email, views.TwoFactorSubject(on),
		views.TwoFactorMailText(m), views.TwoFactorMailHTML(m)); err != nil {
		a.log.ErrorContext(r.Context(), "queue two-factor mail", "user", u.ID, "err", err)
	}
}

// One-click unsubscribe: every non-essential mail carries a link signed with a key
// derived from the server's secret (HMAC-SHA256 over the account and the list), so it
// works without signing in and cannot be made for another account or list.

func (a *app) unsubscribeSig(userID int64, list string) string {
	mac := hmac.New(sha256.New, a.unsubKey)
	mac.Write([]byte("unsubscribe\x00" + strconv.FormatInt(userID, 10) + "\x00" + list))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// unsubscribeLink is the list's one-click link for the account.
func (a *app) unsubscribeLink(r *http.Request, userID int64, list string) string {
	q := url.Values{"u": {strconv.FormatInt(userID, 10)}, "l": {list}, "s": {a.unsubscribeSig(userID, list)}}
	return a.linkBase(r) + "/mail/unsubscribe?" + q.Encode()
}

// queueListMail queues a non-essential mail of list to u, with its unsubscribe link in
// the body (the templates show it) and in the List-Unsubscribe headers.
// list names which preference the link turns off (it is part of unsub).
func (a *app) queueListMail(r *http.Request, u store.User, list, kind, subject, unsub, text string, html templ.Component) error {
	if unsub == "" {
		return fmt.Errorf("%s mail of list %s without an unsubscribe link", kind, list)
	}
	return a.enqueue(r, store.NewMail{Kind: kind, To: u.Email, Subject: subject, Text: text, Unsubscribe: unsub}, html)
}

// unsubscribeRequest reads and checks a link's account and list.
func (a *app) unsubscribeRequest(r *http.Request) (int64, string, bool) {
	q := r.URL.Query()
	id, err := strconv.ParseInt(q.Get("u"), 10, 64)
	list := q.Get("l")
	if err != nil || id <= 0 || !slices.Contains(store.MailLists, list) || len(a.unsubKey) == 0 {
		return 0, "", false
	}
	if !hmac.Equal([]byte(q.Get("s")), []byte(a.unsubscribeSig(id, list))) {
		return 0, "", false
	}
	return id, list, true
}

func listLabel(list string) string {
	if list == store.ListProductMails {
		return "product update mails"
	}
	return "mails about your runs ending"
}

// showUnsubscribe asks to confirm (a GET changes nothing: mail scanners open links).
func (a *app) showUnsubscribe(w http.ResponseWriter, r *http.Request) {
	v := views.Unsubscribe{Action: r.URL.RequestURI()}
	id, list, ok := a.unsubscribeRequest(r)
	status := http.StatusOK
	if !ok {
		v.Invalid, status = true, http.StatusNotFound
	} else if u, err := a.store.UserByID(r.Context(), id); err != nil {
		v.Invalid, status = true, http.StatusNotFound
	} else {
		v.Email, v.List = u.Email, listLabel(list)
	}
	w.Header().Set("Referrer-Policy", "no-referrer")
	a.render(w, r, status, a.page(r, "Unsubscribe", ""), views.UnsubscribePage(v))
}

// unsubscribe turns the list off: the confirm page's button, or a mail client's
// one-click POST (RFC 8058, body "List-Unsubscribe=One-Click").
func (a *app) unsubscribe(w http.ResponseWriter, r *http.Request) {
	id, list, ok := a.unsubscribeRequest(r)
	if !ok {
		a.render(w, r, http.StatusNotFound, a.page(r, "Unsubscribe", ""), views.UnsubscribePage(views.Unsubscribe{Invalid: true}))
		return
	}
	u, err := a.store.UserByID(r.Context(), id)
	if err == nil {
		err = a.store.Unsubscribe(r.Context(), id, list)
	}
	if errors.Is(err, store.ErrNotFound) {
		a.render(w, r, http.StatusNotFound, a.page(r, "Unsubscribe", ""), views.UnsubscribePage(views.Unsubscribe{Invalid: true}))
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.recordEvent(r, store.EventUnsubscribed, u.ID, u.Email)
	a.render(w, r, http.StatusOK, a.page(r, "Unsubscribed", ""), views.UnsubscribePage(views.Unsubscribe{Done: true, Email: u.Email, List: listLabel(list)}))
}

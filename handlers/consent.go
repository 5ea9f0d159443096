package handlers

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/sessions"

	"tunelab/store"
	"tunelab/views"
)

// Consent versions. Bumping ConsentBannerVersion (or setting Config.ConsentVersion) asks
// everyone again; ConsentTextVersion names the wording of the banner and the cookie pages.
const (
	ConsentBannerVersion = "2026-11-29"
	ConsentTextVersion   = "2026-11-29"
	// consentMaxAge is how long a choice (consent or refusal) holds before the banner asks
	// again: about 6 months (CNIL: keep both about 6 months; Garante: no re-asking sooner).
	consentMaxAge = 182 * 24 * time.Hour
)

// consentCookieName is the signed cookie that holds the choice; __Host- when it can be Secure.
func consentCookieName(secure bool) string {
	if secure {
		return "__Host-tunelab_consent"
	}
	return "tunelab_consent"
}

// consentState is what a request's visitor has chosen about optional cookies and analytics.
type consentState struct {
	Decided   bool      // a choice of this banner version, younger than consentMaxAge
	Analytics bool      // analytics granted
	ID        string    // the proof row of the choice
	Source    string    // store.ConsentFrom*
	At        time.Time // when it was chosen
	GPC       bool      // the request carries Sec-GPC: 1
	GPCNotice bool      // this response is the one that turned GPC into a refusal: the banner says so
}

type consentKey struct{}

// newConsentCookies is the gorilla/sessions store of the consent cookie: signed with an HMAC
// (not encrypted: it holds nothing secret), HttpOnly, SameSite=Lax, six months.
func newConsentCookies(key []byte, secure bool) *sessions.CookieStore {
	if len(key) == 0 {
		key = make([]byte, 32)
		rand.Read(key) // tests: one key per server is enough
	}
	cs := sessions.NewCookieStore(key)
	cs.Options = &sessions.Options{Path: "/", MaxAge: int(consentMaxAge / time.Second), Secure: secure, HttpOnly: true, SameSite: http.SameSiteLaxMode}
	cs.MaxAge(int(consentMaxAge / time.Second))
	return cs
}

func (a *app) consentVersion() string {
	if a.cfg.ConsentVersion != "" {
		return a.cfg.ConsentVersion
	}
	return ConsentBannerVersion
}

// fresh reports whether a choice made at t under version still holds.
func (a *app) fresh(version string, t time.Time) bool {
	return version == a.consentVersion() && a.now().Sub(t) < consentMaxAge && !t.After(a.now().Add(time.Minute))
}

// readConsentCookie returns the choice in the signed cookie; a missing, forged, malformed,
// expired or outdated cookie is no choice.
func (a *app) readConsentCookie(r *http.Request) (consentState, bool) {
	if a.consentCookies == nil { // an app built by hand in a test
		return consentState{}, false
	}
	sess, err := a.consentCookies.Get(r, consentCookieName(a.cfg.Secure))
	if err != nil || sess.IsNew {
		return consentState{}, false
	}
	id, _ := sess.Values["id"].(string)
	version, _ := sess.Values["v"].(string)
	analytics, _ := sess.Values["a"].(bool)
	at, _ := sess.Values["at"].(int64)
	source, _ := sess.Values["src"].(string)
	when := time.Unix(at, 0)
	if id == "" || !a.fresh(version, when) {
		return consentState{}, false
	}
	return consentState{Decided: true, Analytics: analytics, ID: id, Source: source, At: when}, true
}

// writeConsentCookie stores a choice in the signed cookie.
func (a *app) writeConsentCookie(w http.ResponseWriter, r *http.Request, c store.ConsentRecord) error {
	sess, _ := a.consentCookies.New(r, consentCookieName(a.cfg.Secure)) // a bad old cookie is replaced
	sess.Values["id"] = c.ID
	sess.Values["v"] = c.BannerVersion
	sess.Values["a"] = c.Analytics
	sess.Values["at"] = c.CreatedAt.Unix()
	sess.Values["src"] = c.Source
	return sess.Save(r, w)
}

// consentFrom is the state of the request's visitor, as the consent middleware found it; on
// a route without that middleware (an upload), as the cookie says.
func (a *app) consentFrom(r *http.Request) consentState {
	if c, ok := r.Context().Value(consentKey{}).(consentState); ok {
		return c
	}
	c, _ := a.readConsentCookie(r)
	c.GPC = r.Header.Get("Sec-GPC") == "1"
	return c
}

// loadConsent works out the visitor's choice for every page request: the cookie; else, for
// a signed-in person, the choice on their account (written back into this browser's
// cookie); else Sec-GPC: 1, recorded once as a refusal (source gpc). Without any of these
// the page shows the banner and nothing optional runs.
func (a *app) loadConsent(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gpc := r.Header.Get("Sec-GPC") == "1"
		c, ok := a.readConsentCookie(r)
		if !ok && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			c = a.restoreConsent(w, r, gpc)
		}
		c.GPC = gpc
		if gpc && c.Source == store.ConsentFromGPC {
			c.Analytics = false // the signal refuses; only an explicit opt-in overrides it
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), consentKey{}, c)))
	})
}

// restoreConsent finds a choice that is not in the cookie yet: the account's, or GPC.
func (a *app) restoreConsent(w http.ResponseWriter, r *http.Request, gpc bool) consentState {
	ctx := r.Context()
	if u, ok := userFrom(ctx); ok {
		rec, err := a.store.AccountConsent(ctx, u.ID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			a.log.WarnContext(ctx, "account consent", "err", err)
		}
		if err == nil && a.fresh(rec.BannerVersion, rec.CreatedAt) {
			if err := a.writeConsentCookie(w, r, rec); err != nil {
				a.log.WarnContext(ctx, "consent cookie", "err", err)
			}
			return consentState{Decided: true, Analytics: rec.Analytics, ID: rec.ID, Source: rec.Source, At: rec.CreatedAt}
		}
	}
	if !gpc {
		return consentState{}
	}
	rec, err := a.recordConsent(r, false, store.ConsentFromGPC, "")
	if err != nil {
		a.log.WarnContext(ctx, "record gpc consent", "err", err)
		return consentState{Decided: true, Source: store.ConsentFromGPC, GPCNotice: true}
	}
	if err := a.writeConsentCookie(w, r, rec); err != nil {
		a.log.WarnContext(ctx, "consent cookie", "err", err)
	}
	return consentState{Decided: true, ID: rec.ID, Source: rec.Source, At: rec.CreatedAt, GPCNotice: true}
}

func (a *app) recordConsent(r *http.Request, analytics bool, source, previous string) (store.ConsentRecord, error) {
	var uid int64
	if u, ok := userFrom(r.Context()); ok {
		uid = u.ID
	}
	return a.store.RecordConsent(r.Context(), store.ConsentRecord{BannerVersion: a.consentVersion(), TextVersion: ConsentTextVersion,
		Analytics: analytics, Source: source, PreviousID: previous, UserID: uid})
}

// linkConsent puts this browser's choice on the account that just signed in, so it follows
// the person to a new browser.
func (a *app) linkConsent(r *http.Request, userID int64) {
	if c, ok := a.readConsentCookie(r); ok {
		if err := a.store.LinkConsent(r.Context(), c.ID, userID); err != nil {
			a.log.WarnContext(r.Context(), "link consent", "err", err)
		}
	}
}

// consentPage is the layout's part: the banner while nothing is decided (or the one-time GPC
// notice), and the analytics script only with consent.
func (a *app) consentPage(r *http.Request) (*views.ConsentBanner, string) {
	c := a.consentFrom(r)
	back := r.URL.Path // without the query: it may carry a ?next= the banner must not echo
	switch {
	case c.GPCNotice:
		return &views.ConsentBanner{Return: safeNext(back), GPCNotice: true}, ""
	case !c.Decided && r.URL.Path == "/cookies/settings":
		return nil, "" // that page is the full dialog already
	case !c.Decided:
		return &views.ConsentBanner{Return: safeNext(back)}, ""
	case c.Analytics:
		return nil, analyticsScript()
	}
	return nil, ""
}

// Choices the consent form sends.
const (
	choiceAccept = "accept" // everything
	choiceReject = "reject" // only what is strictly necessary
	choiceSave   = "save"   // what the checkboxes say
)

// saveConsent records a choice from the banner or the cookie settings page, proof row
// first, then the cookie, and goes back where the person was.
func (a *app) saveConsent(w http.ResponseWriter, r *http.Request) {
	var analytics bool
	switch r.PostFormValue("choice") {
	case choiceAccept:
		analytics = true
	case choiceReject:
		analytics = false
	case choiceSave:
		switch r.PostFormValue("analytics") {
		case "", "off":
		case "on":
			analytics = true
		default:
			a.badRequest(w, r, `The analytics choice must be "on" or left unticked. Reload the page and choose again.`)
			return
		}
	default:
		a.badRequest(w, r, "Choose Accept all, Reject all or Save choices. Reload the page and choose again.")
		return
	}
	prev, hadChoice := a.readConsentCookie(r)
	source := store.ConsentFromBanner
	if r.PostFormValue("from") == "settings" {
		source = store.ConsentFromSettings
	}
	if hadChoice && prev.Analytics && !analytics {
		source = store.ConsentFromWithdrawal
	}
	rec, err := a.recordConsent(r, analytics, source, prev.ID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if err := a.writeConsentCookie(w, r, rec); err != nil {
		a.serverError(w, r, err)
		return
	}
	back := safeNext(r.PostFormValue("return"))
	if source != store.ConsentFromBanner {
		back = "/cookies/settings?saved=1"
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// cookieSettings is the view of the person's current choice for the settings page.
func (a *app) cookieSettings(r *http.Request) views.CookieChoice {
	c := a.consentFrom(r)
	ch := views.CookieChoice{Decided: c.Decided, Analytics: c.Analytics, GPC: c.GPC, Saved: r.URL.Query().Get("saved") == "1"}
	if c.Decided && !c.At.IsZero() {
		ch.When = c.At.UTC().Format("2 January 2006, 15:04 UTC")
		ch.Until = c.At.Add(consentMaxAge).UTC().Format("2 January 2006")
	}
	switch {
	case !c.Decided:
		ch.Summary = "You have not chosen yet, so analytics are off."
	case c.Analytics:
		ch.Summary = "Analytics are on: you accepted them."
	case c.Source == store.ConsentFromGPC:
		ch.Summary = "Analytics are off: your browser sends Global Privacy Control, which counts as a refusal."
	default:
		ch.Summary = "Analytics are off: you refused them."
	}
	if u, ok := userFrom(r.Context()); ok {
		ch.SignedIn = u.ID != 0
	}
	return ch
}

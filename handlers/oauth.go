package handlers

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/gorilla/sessions"
	"golang.org/x/oauth2"

	"tunelab/store"
)

// Sign-in with Google or GitHub. The start of a sign-in keeps its state, PKCE verifier
// and nonce in a short-lived cookie, signed and encrypted (gorilla/sessions with a hash
// key and a block key derived from the server's secret): HttpOnly, SameSite=Lax (the
// provider's redirect back is a cross-site top-level GET), 10 minutes. The callback
// deletes it and also remembers the state as spent, so a replayed cookie is refused.

// oauthStateTTL is how long a started sign-in waits for the provider's answer.
const oauthStateTTL = 10 * time.Minute

// maxSpentStates bounds the memory of spent states (each is kept oauthStateTTL).
const maxSpentStates = 100_000

// Intents of a started flow.
const (
	intentSignIn = "signin"
	intentLink   = "link" // a signed-in person links a provider in Settings
)

type oauthState struct {
	store     *sessions.CookieStore
	name      string
	mu        sync.Mutex
	spent     map[[32]byte]time.Time // hashes of used states, until they would have expired
	providers map[string]*oauthClient
	order     []string // providers in the order they are shown
}

func newOAuthState(cfg OAuthConfig, vault *store.Vault, secure bool, now func() time.Time) *oauthState {
	st := &oauthState{spent: map[[32]byte]time.Time{}, providers: map[string]*oauthClient{}, name: "tunelab_oauth"}
	if cfg.Google.Enabled() {
		st.providers[store.ProviderGoogle] = newGoogleClient(cfg.Google, now)
		st.order = append(st.order, store.ProviderGoogle)
	}
	if cfg.GitHub.Enabled() {
		st.providers[store.ProviderGitHub] = newGitHubClient(cfg.GitHub)
		st.order = append(st.order, store.ProviderGitHub)
	}
	if len(st.order) == 0 || vault == nil {
		st.providers, st.order = map[string]*oauthClient{}, nil
		return st
	}
	if secure {
		st.name = "__Host-tunelab_oauth"
	}
	cs := sessions.NewCookieStore(vault.DeriveKey("oauth state cookie hash"), vault.DeriveKey("oauth state cookie block"))
	cs.MaxAge(int(oauthStateTTL.Seconds()))
	cs.Options.Path = "/"
	cs.Options.HttpOnly = true
	cs.Options.Secure = secure
	cs.Options.SameSite = http.SameSiteLaxMode
	st.store = cs
	return st
}

// spend marks a state used; false when it was used before.
func (s *oauthState) spend(state string, now time.Time) bool {
	h := sha256.Sum256([]byte(state))
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, until := range s.spent {
		if now.After(until) {
			delete(s.spent, k)
		}
	}
	if _, used := s.spent[h]; used {
		return false
	}
	if len(s.spent) >= maxSpentStates {
		return false // a flood of callbacks: refuse rather than grow without bound
	}
	s.spent[h] = now.Add(oauthStateTTL)
	return true
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// redirectConf is the provider's config with this server's callback URL.
func (a *app) redirectConf(r *http.Request, c *oauthClient) oauth2.Config {
	conf := c.conf
	conf.RedirectURL = a.linkBase(r) + "/signin/oauth/" + c.name + "/callback"
	return conf
}

// startOAuth sends the browser to the provider: GET /signin/oauth/{provider} signs in,
// the Settings form (POST .../link) links the provider to the signed-in account.
func (a *app) startOAuth(w http.ResponseWriter, r *http.Request) {
	c := a.oauth.providers[r.PathValue("provider")]
	if c == nil {
		a.notFound(w, r)
		return
	}
	// The provider sends the browser back to the public URL; the flow's cookie must be set
	// on that host, so a sign-in started under another name (127.0.0.1 for localhost)
	// starts again there.
	if base, err := url.Parse(a.cfg.BaseURL); err == nil && base.Host != "" && base.Host != r.Host && r.Method == http.MethodGet {
		http.Redirect(w, r, a.cfg.BaseURL+r.URL.RequestURI(), http.StatusSeeOther)
		return
	}
	intent, next := intentSignIn, safeNextOrEmpty(r.URL.Query().Get("next"))
	var userID int64
	if r.Method == http.MethodPost {
		u, ok := userFrom(r.Context())
		if !ok {
			redirect(w, r, "/signin")
			return
		}
		intent, userID, next = intentLink, u.ID, ""
	} else if _, ok := userFrom(r.Context()); ok {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	sess, _ := a.oauth.store.New(r, a.oauth.name) // a bad old cookie is simply replaced
	state, nonce, pkce := randomToken(), randomToken(), oauth2.GenerateVerifier()
	sess.Values["provider"] = c.name
	sess.Values["state"] = state
	sess.Values["nonce"] = nonce
	sess.Values["pkce"] = pkce
	sess.Values["intent"] = intent
	sess.Values["user"] = userID
	sess.Values["next"] = next
	sess.Values["at"] = a.now().UnixMilli()
	if err := sess.Save(r, w); err != nil {
		a.serverError(w, r, err)
		return
	}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(pkce)}
	if c.verifier != nil {
		opts = append(opts, oidc.Nonce(nonce))
	}
	conf := a.redirectConf(r, c)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, conf.AuthCodeURL(state, opts...), http.StatusSeeOther)
}

// startedFlow is a started sign-in read back from its cookie.
type startedFlow struct {
	provider, state, nonce, pkce, intent, next string
	userID                                     int64
	at                                         time.Time
}

// takeFlow reads the flow's cookie and deletes it (single use); ok is false when there
// is none, or it cannot be read.
func (a *app) takeFlow(w http.ResponseWriter, r *http.Request) (startedFlow, bool) {
	sess, err := a.oauth.store.Get(r, a.oauth.name)
	if err != nil || sess.IsNew {
		return startedFlow{}, false
	}
	str := func(k string) string { s, _ := sess.Values[k].(string); return s }
	f := startedFlow{provider: str("provider"), state: str("state"), nonce: str("nonce"), pkce: str("pkce"),
		intent: str("intent"), next: str("next")}
	f.userID, _ = sess.Values["user"].(int64)
	at, _ := sess.Values["at"].(int64)
	f.at = time.UnixMilli(at)
	sess.Options.MaxAge = -1
	sess.Values = map[any]any{}
	sess.Save(r, w)
	return f, f.state != ""
}

// oauthCallback is where the provider sends the browser back.
func (a *app) oauthCallback(w http.ResponseWriter, r *http.Request) {
	c := a.oauth.providers[r.PathValue("provider")]
	if c == nil {
		a.notFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	flow, ok := a.takeFlow(w, r)
	q := r.URL.Query()
	refuse := func(reason, message string) {
		a.log.WarnContext(r.Context(), "oauth callback refused", "provider", c.name, "reason", reason)
		a.recordEvent(r, store.EventOAuthFailed, flow.userID, "")
		a.oauthProblem(w, r, c, flow.intent, message)
	}
	switch {
	case !ok:
		refuse("no state cookie", "This sign-in was not started here, or took longer than 10 minutes. Start again.")
		return
	case flow.provider != c.name || subtle.ConstantTimeCompare([]byte(flow.state), []byte(q.Get("state"))) != 1:
		refuse("state mismatch", "This answer from "+c.label+" does not belong to the sign-in this browser started. Start again.")
		return
	case a.now().Sub(flow.at) > oauthStateTTL || a.now().Sub(flow.at) < -time.Minute:
		refuse("state expired", "This sign-in took longer than 10 minutes. Start again.")
		return
	case !a.oauth.spend(flow.state, a.now()):
		refuse("state reused", "This sign-in was already used. Start again.")
		return
	case q.Get("error") != "":
		a.oauthProblem(w, r, c, flow.intent, "You did not allow tunelab to use your "+c.label+" account, so nothing changed.")
		return
	case q.Get("code") == "":
		refuse("no code", c.label+" did not send a sign-in code. Start again.")
		return
	}
	prof, err := c.profile(r.Context(), a.redirectConf(r, c), q.Get("code"), flow.pkce, flow.nonce)
	if errors.Is(err, errOAuthRefused) {
		refuse(err.Error(), c.label+"'s answer did not check out, so you are not signed in. Start again.")
		return
	}
	if err != nil {
		a.log.ErrorContext(r.Context(), "oauth exchange", "provider", c.name, "err", err)
		a.oauthProblem(w, r, c, flow.intent, "tunelab could not reach "+c.label+" just now. Try again in a minute.")
		return
	}
	if flow.intent == intentLink {
		a.finishLink(w, r, c, flow, prof)
		return
	}
	a.finishOAuthSignIn(w, r, c, prof, flow.next)
}

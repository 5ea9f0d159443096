package handlers

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// fakeIdP is an in-process OAuth 2.0 / OpenID Connect provider: authorize, token, JWKS,
// and GitHub's user and emails API. It checks PKCE and the client's credentials, and
// signs real RS256 ID tokens; the test sets who signs in and how the next token is
// spoiled.
type fakeIdP struct {
	*httptest.Server
	t      testing.TB
	key    *rsa.PrivateKey
	signer jose.Signer
	now    func() time.Time

	mu     sync.Mutex
	person idpPerson
	codes  map[string]idpGrant
	tokens map[string]idpPerson
	// Spoil the next ID token.
	wrongNonce bool
	expired    bool
	wrongAud   bool
}

type idpPerson struct {
	Sub      string
	Email    string
	Verified bool
	Name     string
}

type idpGrant struct {
	challenge, nonce, redirect string
	person                     idpPerson
}

const (
	idpClientID     = "tunelab-test-client"
	idpClientSecret = "test-secret-not-real"
)

func newFakeIdP(t testing.TB, now func() time.Time) *fakeIdP {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "test-key"))
	if err != nil {
		t.Fatal(err)
	}
	p := &fakeIdP{t: t, key: key, signer: signer, now: now, codes: map[string]idpGrant{}, tokens: map[string]idpPerson{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	mux.HandleFunc("GET /jwks", p.jwks)
	mux.HandleFunc("GET /api/user", p.githubUser)
	mux.HandleFunc("GET /api/user/emails", p.githubEmails)
	p.Server = httptest.NewServer(mux)
	t.Cleanup(p.Close)
	return p
}

// provider is the configuration tunelab gets for this provider.
func (p *fakeIdP) provider() OAuthProvider {
	return OAuthProvider{ClientID: idpClientID, ClientSecret: idpClientSecret, AuthURL: p.URL + "/authorize",
		TokenURL: p.URL + "/token", Issuer: p.URL, JWKSURL: p.URL + "/jwks", APIURL: p.URL + "/api"}
}

func (p *fakeIdP) setPerson(per idpPerson) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.person = per
}

func (p *fakeIdP) spoil(f func(p *fakeIdP)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

func (p *fakeIdP) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != idpClientID || q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" ||
		q.Get("code_challenge") == "" || q.Get("state") == "" {
		http.Error(w, "bad authorize request: "+r.URL.RawQuery, http.StatusBadRequest)
		return
	}
	code := randomToken()
	p.mu.Lock()
	p.codes[code] = idpGrant{challenge: q.Get("code_challenge"), nonce: q.Get("nonce"), redirect: q.Get("redirect_uri"), person: p.person}
	p.mu.Unlock()
	back, _ := url.Parse(q.Get("redirect_uri"))
	bq := back.Query()
	bq.Set("code", code)
	bq.Set("state", q.Get("state"))
	back.RawQuery = bq.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func (p *fakeIdP) token(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	p.mu.Lock()
	defer p.mu.Unlock()
	g, ok := p.codes[r.PostForm.Get("code")]
	delete(p.codes, r.PostForm.Get("code"))
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	switch {
	case !ok:
		http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
		return
	case base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge:
		http.Error(w, `{"error":"invalid_grant","error_description":"PKCE"}`, http.StatusBadRequest)
		return
	case r.PostForm.Get("client_id") != idpClientID || r.PostForm.Get("client_secret") != idpClientSecret || r.PostForm.Get("redirect_uri") != g.redirect:
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	}
	access := randomToken()
	p.tokens[access] = g.person
	now := p.now()
	claims := map[string]any{"iss": p.URL, "aud": idpClientID, "sub": g.person.Sub, "email": g.person.Email,
		"email_verified": g.person.Verified, "name": g.person.Name, "nonce": g.nonce,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	if p.wrongNonce {
		claims["nonce"] = "not-the-nonce"
	}
	if p.expired {
		claims["iat"], claims["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
	}
	if p.wrongAud {
		claims["aud"] = "another-client"
	}
	p.wrongNonce, p.expired, p.wrongAud = false, false, false
	payload, _ := json.Marshal(claims)
	jws, err := p.signer.Sign(payload)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	idToken, _ := jws.CompactSerialize()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"access_token": access, "token_type": "Bearer", "expires_in": 3600, "id_token": idToken})
}

func (p *fakeIdP) jwks(w http.ResponseWriter, r *http.Request) {
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &p.key.PublicKey, KeyID: "test-key", Algorithm: "RS256", Use: "sig"}}}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(set)
}

func (p *fakeIdP) bearer(w http.ResponseWriter, r *http.Request) (idpPerson, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	per, ok := p.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	if !ok {
		http.Error(w, `{"message":"Bad credentials"}`, http.StatusUnauthorized)
	}
	return per, ok
}

func (p *fakeIdP) githubUser(w http.ResponseWriter, r *http.Request) {
	per, ok := p.bearer(w, r)
	if !ok {
		return
	}
	id, _ := strconv.ParseInt(per.Sub, 10, 64)
	json.NewEncoder(w).Encode(map[string]any{"id": id, "login": "octo", "name": per.Name, "email": nil})
}

func (p *fakeIdP) githubEmails(w http.ResponseWriter, r *http.Request) {
	per, ok := p.bearer(w, r)
	if !ok {
		return
	}
	json.NewEncoder(w).Encode([]map[string]any{
		{"email": "secondary@example.org", "primary": false, "verified": true},
		{"email": per.Email, "primary": true, "verified": per.Verified},
	})
}

// Package handlers is tunelab's HTTP layer: the route table, middleware, and one file per
// area. Handlers parse input, call the store, and render views; rules live elsewhere.
package handlers

import (
	"cmp"
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/gorilla/sessions"

	"tunelab/billing"
	"tunelab/geoip"
	"tunelab/gpu"
	"tunelab/store"
)

// passwordStore is the part of the store that hashes passwords: signing up and signing
// in. Tests wrap it to count concurrent hashes; everything else uses the store itself.
type passwordStore interface {
	CreateUser(ctx context.Context, nu store.NewUser) (store.User, error)
	Authenticate(ctx context.Context, email, password string) (store.User, error)
}

// Runs is how the HTTP layer reaches the run machinery.
type Runs struct {
	Backend gpu.Catalogue // what the run form offers (one backend, or a gpu.Pool of several)
	Queue   Queue         // the dispatcher: queue spots and the backends report; nil: none shown
	Hub     *gpu.Hub      // live updates for run pages
	Wake    func()        // tells the dispatcher to look at the queue now
	// HeartbeatInterval is what workers are told; MaxSnapshotBytes caps one upload.
	HeartbeatInterval time.Duration
	MaxSnapshotBytes  int64
}

// Queue is what the run page and the admin page learn from the dispatcher.
type Queue interface {
	Spot(ctx context.Context, runID int64) (gpu.QueueSpot, bool, error)
	Report(ctx context.Context) (gpu.QueueReport, error)
}

// Config is the part of the server configuration the HTTP layer needs.
type Config struct {
	// Secure is true when people reach the server over HTTPS (TLS here or at a proxy):
	// cookies get Secure and the __Host- prefix, and responses carry HSTS.
	Secure bool
	// TrustProxy takes the client IP from the last X-Forwarded-For entry.
	TrustProxy bool
	// Operator and Contact name who runs this instance on the legal pages.
	Operator string
	Contact  string
	// MaxUploadBytes caps a dataset upload (default 100 MB).
	MaxUploadBytes int64
	// Per-account quotas (TUNELAB_QUOTA_*); 0: no limit.
	QueuedRunsQuota   int   // queued runs a person may have waiting
	StreamsQuota      int   // live run streams (SSE) a person may hold open at once
	DatasetQuotaBytes int64 // bytes of stored datasets per person
	// DatasetRetention is how long a dataset is kept after its last run ended, as the
	// Privacy Policy states it (default store.DefaultDatasetRetention).
	DatasetRetention time.Duration
	// MetricsToken is the operator's bearer token for GET /metrics; empty: no endpoint.
	MetricsToken string
	// BaseURL is the public URL that links in mails start with ("https://tune.example.com");
	// empty: the request's own address (tests).
	BaseURL string
	// OAuth is sign-in with Google or GitHub; each is off unless configured.
	OAuth OAuthConfig
	// ConsentVersion is the cookie banner's version (default ConsentBannerVersion); a new
	// value asks every visitor again.
	ConsentVersion string
}

// Deps is everything New wires together.
type Deps struct {
	Store        *store.Store
	SessionStore scs.Store
	Vault        *store.Vault // encrypted files: datasets, snapshots
	Logger       *slog.Logger
	Config       Config
	Runs         Runs
	// Billing is plans, Checkout, the portal and Stripe's webhooks; nil: billing off
	// (every run free) over the same store.
	Billing *billing.Service
	// Stopping is closed when the server starts shutting down: long-lived streams (SSE)
	// end then, so a graceful shutdown does not wait for viewers to leave. nil: never. It
	// also ends the periodic stale-metrics check of metric rules, which runs only when set.
	Stopping <-chan struct{}
	// Streams counts the live streams taken over from net/http (they outlive their
	// request; liveStream): after Stopping is closed and the server shut down, waiting
	// for it lets the last ones finish before the store closes. nil: not waited for.
	Streams *sync.WaitGroup
	// Mail reaches the mail sender; zero: mails wait in the queue for a sender.
	Mail Mail
	Now  func() time.Time // nil: time.Now
	// Sleep waits before answering a throttled sign-in; nil: a real sleep that ends early
	// when the request does.
	Sleep func(ctx context.Context, d time.Duration) error
	// GeoIP gives the country of an address (analytics, security events); nil: unknown.
	GeoIP *geoip.DB
	// ConsentKey signs the consent cookie; empty: a random key per process (tests).
	ConsentKey []byte
}

// DefaultMaxUploadBytes is the dataset upload cap when none is configured.
const DefaultMaxUploadBytes = 100_000_000

// Session timeouts (ASVS 7.3): idle 1 h, absolute 24 h.
const (
	sessionIdle     = time.Hour
	sessionLifetime = 24 * time.Hour
)

type app struct {
	evals     *evaluator // wakes the snapshot evaluation loop
	store     *store.Store
	passwords passwordStore // the store, unless a test counts password hashes
	vault     *store.Vault
	sessions  *scs.SessionManager
	log       *slog.Logger
	cfg       Config
	now       func() time.Time
	limits    *rateLimits
	runs      Runs
	stopping  <-chan struct{}
	detached  *sync.WaitGroup // live streams taken over from net/http (liveStream)
	billing   *billing.Service
	mail      Mail

	// Sign-in throttling, the password-hashing bound, and the live streams' session watch.
	sleep     func(ctx context.Context, d time.Duration) error // waits before a throttled sign-in answer
	hashSlots chan struct{}                                    // one token per password hash in progress
	signOuts  *signOuts                                        // wakes live streams when a session may have ended
	streams   streamCounts                                     // open live streams per person (StreamsQuota)
	ops       *opsMetrics
	oauth     *oauthState // sign-in with Google or GitHub
	unsubKey  []byte      // signs one-click unsubscribe links

	// Consent, analytics and the country of an address.
	consentCookies *sessions.CookieStore
	salt           *visitorSalt
	beacons        *limiter // analytics events per client address
	geo            *geoip.DB

	rules      ruleWatch       // metric rules of live runs (metric_rules_watch.go)
	playground playgroundSlots // playground answers generating per person
	deployed   deployCache     // models loaded for /v1 (openai_generate.go)
}

// New returns the whole HTTP handler of a tunelab server.
func New(d Deps) http.Handler { return newApp(d).routes() }

// newApp wires the dependencies together, filling in defaults.
func newApp(d Deps) *app {
	now := d.Now
	if now == nil {
		now = time.Now
	}
	if d.Config.MaxUploadBytes <= 0 {
		d.Config.MaxUploadBytes = DefaultMaxUploadBytes
	}
	sm := scs.New()
	sm.Store = d.SessionStore
	sm.IdleTimeout = sessionIdle
	sm.Lifetime = sessionLifetime
	sm.Cookie.Name = sessionCookieName(d.Config.Secure)
	sm.Cookie.HttpOnly = true
	sm.Cookie.SameSite = http.SameSiteLaxMode
	sm.Cookie.Secure = d.Config.Secure
	sm.Cookie.Path = "/"
	sm.Cookie.Domain = ""
	a := &app{
		store:     d.Store,
		passwords: d.Store,
		vault:     d.Vault,
		sessions:  sm,
		log:       d.Logger,
		cfg:       d.Config,
		now:       now,
		limits:    newRateLimits(now),
		runs:      d.Runs,
		stopping:  d.Stopping,
		detached:  cmp.Or(d.Streams, &sync.WaitGroup{}),
		ops:       newOpsMetrics(d.Store, d.Config.MetricsToken),
		billing:   d.Billing,
		mail:      d.Mail,

		consentCookies: newConsentCookies(d.ConsentKey, d.Config.Secure),
		salt:           &visitorSalt{},
		beacons:        newLimiter(beaconsPerMinute, time.Minute, now),
		geo:            d.GeoIP,
	}
	a.oauth = newOAuthState(d.Config.OAuth, d.Vault, d.Config.Secure, now)
	if d.Vault != nil {
		a.unsubKey = d.Vault.DeriveKey("mail unsubscribe links")
	}
	if a.billing == nil {
		a.billing = billing.New(billing.Config{Store: d.Store, Logger: d.Logger})
	}
	a.billing.SetNoticeSender(a.sendBillingNotice)
	a.sleep, a.hashSlots, a.signOuts = d.Sleep, make(chan struct{}, maxConcurrentHashes), newSignOuts()
	if a.sleep == nil {
		a.sleep = sleepContext
	}
	if a.runs.HeartbeatInterval <= 0 {
		a.runs.HeartbeatInterval = 5 * time.Second
	}
	if a.runs.MaxSnapshotBytes <= 0 {
		a.runs.MaxSnapshotBytes = 1 << 30
	}
	if a.runs.Hub == nil {
		a.runs.Hub = gpu.NewHub()
	}
	sm.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) { a.serverError(w, r, err) }
	go a.resumeExports() // exports a restart cut short
	a.evals = &evaluator{wake: make(chan struct{}, 1)}
	if d.Store != nil {
		go a.runEvaluations()
	} // snapshot evaluations, queued ones and those a restart cut short
	if d.Stopping != nil {
		go a.watchStaleRules(d.Stopping)      // metric rules: no new metric for N minutes
		go a.watchFineTuneDeploys(d.Stopping) // deploy on success of /v1 fine-tuning jobs
	}
	return a
}

// sessionCookieName uses the __Host- prefix whenever the cookie can be Secure, which
// pins it to this host and path "/".
func sessionCookieName(secure bool) string {
	if secure {
		return "__Host-tunelab_session"
	}
	return "tunelab_session"
}

// publish sends a live update to the run's viewers.
func (a *app) publish(e gpu.Event) { a.runs.Hub.Publish(e) }

// wake tells the dispatcher something changed (a run queued, cancelled, finished).
func (a *app) wake() {
	if a.runs.Wake != nil {
		a.runs.Wake()
	}
}

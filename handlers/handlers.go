// Package handlers is tunelab's HTTP layer: the route table, middleware, and one file per
// area. Handlers parse input, call the store, and render views; rules live elsewhere.
package handlers

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/alexedwards/scs/v2"

	"tunelab/billing"
	"tunelab/gpu"
	"tunelab/store"
)

// Store is what the handlers need from the database.
type Store interface {
	Ping(ctx context.Context) error
	CreateUser(ctx context.Context, nu store.NewUser) (store.User, error)
	Authenticate(ctx context.Context, email, password string) (store.User, error)
	UserByID(ctx context.Context, id int64) (store.User, error)
	ChangePassword(ctx context.Context, userID int64, current, next string) error
	ListUsers(ctx context.Context, limit int) ([]store.User, int, error)
	DeleteUserSessions(ctx context.Context, userID int64, keepToken string) (int64, error)
	RecordSecurityEvent(ctx context.Context, e store.SecurityEvent) error
	RecentSecurityEvents(ctx context.Context, limit int) ([]store.SecurityEvent, error)
	CreateDataset(ctx context.Context, v *store.Vault, nd store.NewDataset) (store.Dataset, error)
	Dataset(ctx context.Context, userID, id int64) (store.Dataset, error)
	Datasets(ctx context.Context, userID int64) ([]store.Dataset, error)
	DeleteDataset(ctx context.Context, userID, id int64) error
	DatasetByID(ctx context.Context, id int64) (store.Dataset, error)

	CreateRun(ctx context.Context, nr store.NewRun) (store.Run, error)
	Run(ctx context.Context, userID, id int64) (store.Run, error)
	RunByID(ctx context.Context, id int64) (store.Run, error)
	Runs(ctx context.Context, userID int64) ([]store.Run, error)
	RunEvents(ctx context.Context, runID int64) ([]store.RunEvent, error)
	CancelRun(ctx context.Context, userID, id int64) (store.Run, error)
	StopRun(ctx context.Context, id int64, note string) error
	DeleteRun(ctx context.Context, userID, id int64) error
	RunTokenHash(ctx context.Context, id int64) ([]byte, error)
	RunIDForToken(ctx context.Context, tokenHash []byte) (int64, error)
	Heartbeat(ctx context.Context, id int64, step, totalSteps int) (bool, error)
	FinishRun(ctx context.Context, id int64, status, reason string, end time.Time) (store.Run, error)
	AppendMetrics(ctx context.Context, runID int64, pts []store.MetricPoint) ([]store.MetricPoint, error)
	MetricsAfter(ctx context.Context, runID, afterSeq int64, limit int) ([]store.MetricPoint, error)
	RunMetricSeq(ctx context.Context, runID int64) (int64, error)
	LatestMetricStep(ctx context.Context, runID int64, name string) (step int, at time.Time, ok bool, err error)
	MetricSeries(ctx context.Context, runID int64) ([]store.Series, error)
	MetricHistory(ctx context.Context, runID int64, name string, from, to *int, maxPoints int) (store.History, error)
	ExportMetrics(ctx context.Context, runID int64, fn func(store.MetricPoint) error) error
	SetRunIngestToken(ctx context.Context, userID, runID int64, hash []byte) error
	RunForIngestToken(ctx context.Context, hash []byte) (int64, error)
	AppendLogs(ctx context.Context, runID int64, lines []string) ([]store.LogLine, error)
	LogTail(ctx context.Context, runID int64, n int) ([]store.LogLine, error)
	CreateSnapshot(ctx context.Context, v *store.Vault, ns store.NewSnapshot, r io.Reader) (store.Snapshot, error)
	Snapshots(ctx context.Context, userID, runID int64) ([]store.Snapshot, error)
	Snapshot(ctx context.Context, userID, runID, id int64) (store.Snapshot, error)
	SnapshotAtStep(ctx context.Context, runID int64, step int) (store.Snapshot, error)
	snapshotStore
	runListStore
}

// Runs is how the HTTP layer reaches the run machinery.
type Runs struct {
	Backend gpu.Backend // what the run form offers; its name goes into runs.backend
	Hub     *gpu.Hub    // live updates for run pages
	Wake    func()      // tells the dispatcher to look at the queue now
	// HeartbeatInterval is what workers are told; MaxSnapshotBytes caps one upload.
	HeartbeatInterval time.Duration
	MaxSnapshotBytes  int64
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
	DatasetQuotaBytes int64 // bytes of stored datasets per person
	// DatasetRetention is how long a dataset is kept after its last run ended, as the
	// Privacy Policy states it (default store.DefaultDatasetRetention).
	DatasetRetention time.Duration
}

// Deps is everything New wires together.
type Deps struct {
	Store        Store
	SessionStore scs.Store
	Vault        *store.Vault // encrypted files: datasets, snapshots
	Logger       *slog.Logger
	Config       Config
	Runs         Runs
	// Billing is plans, Checkout, the portal and Stripe's webhooks; nil: billing off
	// (every run free) over the same store.
	Billing *billing.Service
	// Stopping is closed when the server starts shutting down: long-lived streams (SSE)
	// end then, so a graceful shutdown does not wait for viewers to leave. nil: never.
	Stopping <-chan struct{}
	Now      func() time.Time // nil: time.Now
	// Sleep waits before answering a throttled sign-in; nil: a real sleep that ends early
	// when the request does.
	Sleep func(ctx context.Context, d time.Duration) error
}

// DefaultMaxUploadBytes is the dataset upload cap when none is configured.
const DefaultMaxUploadBytes = 100_000_000

// Session timeouts (ASVS 7.3): idle 1 h, absolute 24 h.
const (
	sessionIdle     = time.Hour
	sessionLifetime = 24 * time.Hour
)

type app struct {
	store    Store
	vault    *store.Vault
	sessions *scs.SessionManager
	log      *slog.Logger
	cfg      Config
	now      func() time.Time
	limits   *rateLimits
	runs     Runs
	billing  *billing.Service
	stopping <-chan struct{}

	// Sign-in throttling, the password-hashing bound, and the live streams' session watch.
	sleep     func(ctx context.Context, d time.Duration) error // waits before a throttled sign-in answer
	hashSlots chan struct{}                                    // one token per password hash in progress
	signOuts  *signOuts                                        // wakes live streams when a session may have ended
}

// New returns the whole HTTP handler of a tunelab server.
func New(d Deps) http.Handler {
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
		store:    d.Store,
		vault:    d.Vault,
		sessions: sm,
		log:      d.Logger,
		cfg:      d.Config,
		now:      now,
		limits:   newRateLimits(now),
		runs:     d.Runs,
		billing:  d.Billing,
		stopping: d.Stopping,
	}
	if a.billing == nil {
		bs, _ := d.Store.(billing.Store)
		a.billing = billing.New(billing.Config{Store: bs, Logger: d.Logger})
	}
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
	return a.routes()
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

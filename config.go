package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"tunelab/billing"
	"tunelab/gpu"
	"tunelab/handlers"
	"tunelab/store"
)

// config is the whole server configuration, from TUNELAB_* variables and flags (flags win).
type config struct {
	Addr      string
	DataDir   string
	Env       string // "development" or "production"
	SecretKey string // base64 of 32 bytes
	// OldSecretKey (TUNELAB_OLD_SECRET_KEY) is the previous key while a key rotation runs
	// (rotate_key.go): read with, never written with.
	OldSecretKey string
	BaseURL      string
	Backends     []string // TUNELAB_BACKEND (or TUNELAB_BACKENDS): "local", or a comma list such as "local,slurm"
	TLSCert      string
	TLSKey       string
	TrustProxy   bool
	Operator     string
	Contact      string
	LogLevel     slog.Level
	MaxUploadMB  int64

	// Runs.
	LocalSlots        int           // jobs the local backend runs at once
	LocalWorker       []string      // command the local backend starts; "--server URL --run ID" is appended
	WorkerURL         string        // where workers reach this server; default http(s)://127.0.0.1:port
	HeartbeatInterval time.Duration // how often workers are told to send a heartbeat
	HeartbeatTimeout  time.Duration // a running run silent this long is failed
	DatasetRetention  time.Duration // a dataset is deleted this long after its last run ended

	// Per-account quotas; 0 turns one off.
	QuotaQueuedRuns   int   // queued runs a person may have waiting
	QuotaStreams      int   // live run streams a person may hold open at once
	QuotaDatasetBytes int64 // bytes of stored datasets per person
	// Metric quotas: a batch that would take a run past one is refused whole (422).
	QuotaSeriesPerRun int   // distinct metric names a run may log
	QuotaPointsPerRun int64 // points a run may store

	MetricsToken string // operator bearer token for GET /metrics (Prometheus); empty: no endpoint

	HTTP  httpBackendConfig    // the http backend (TUNELAB_HTTP_*), when TUNELAB_BACKEND names it
	Slurm slurmBackendConfig   // the slurm backend (TUNELAB_SLURM_*), likewise
	OAuth handlers.OAuthConfig // sign-in with Google or GitHub (oauth_config.go)
	// GeoIPDB is the GeoLite2-format country database (TUNELAB_GEOIP_DB, default
	// DATA_DIR/geoip/country.mmdb); a missing file: every country is unknown.
	GeoIPDB string
	// ConsentVersion is the cookie banner's version (TUNELAB_CONSENT_VERSION); a new value
	// asks every visitor again. Empty: the built-in version.
	ConsentVersion string

	// Mail: over SMTP when set, else as files in DATA_DIR/outbox.
	SMTP     *smtpConfig
	MailFrom mail.Address

	// Billing: off without a Stripe secret key (every run is free then).
	Stripe       billing.StripeConfig
	Plans        billing.Plans // TUNELAB_PLANS, or the built-in Free plan
	BillingGrace time.Duration // new runs still start this long after a failed payment
	// MeterInterval is how often a running run's GPU seconds reach the usage ledger.
	MeterInterval time.Duration

	// PythonWorker is used when LocalWorker is the single word "python" (config_python.go).
	PythonWorker gpu.PythonWorker
}

func (c config) production() bool { return c.Env == "production" }

// secure is true when browsers reach us over HTTPS, here or through a proxy.
func (c config) secure() bool { return c.TLSCert != "" || strings.HasPrefix(c.BaseURL, "https://") }

func (c config) publicURL(addr net.Addr) string {
	if c.BaseURL != "" {
		return c.BaseURL
	}
	scheme := "http"
	if c.TLSCert != "" {
		scheme = "https"
	}
	_, port, _ := net.SplitHostPort(addr.String())
	return scheme + "://localhost:" + port
}

func loadConfig(name string, args []string, getenv func(string) string) (config, error) {
	env := func(k, def string) string {
		if v := strings.TrimSpace(getenv(k)); v != "" {
			return v
		}
		return def
	}
	c := config{
		Addr:         env("TUNELAB_ADDR", ":8080"),
		DataDir:      env("TUNELAB_DATA_DIR", "./data"),
		Env:          env("TUNELAB_ENV", "development"),
		SecretKey:    getenv("TUNELAB_SECRET_KEY"),
		OldSecretKey: getenv("TUNELAB_OLD_SECRET_KEY"),
		BaseURL:      strings.TrimRight(env("TUNELAB_BASE_URL", ""), "/"),
		TLSCert:      env("TUNELAB_TLS_CERT", ""),
		TLSKey:       env("TUNELAB_TLS_KEY", ""),
		Operator:     env("TUNELAB_OPERATOR", ""),
		Contact:      env("TUNELAB_CONTACT", ""),

		MetricsToken: env("TUNELAB_METRICS_TOKEN", ""),
		GeoIPDB:      env("TUNELAB_GEOIP_DB", ""),

		ConsentVersion: env("TUNELAB_CONSENT_VERSION", ""),
	}
	var errs []error
	if v := env("TUNELAB_TRUST_PROXY", "false"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("TUNELAB_TRUST_PROXY=%q: use true or false", v))
		}
		c.TrustProxy = b
	}
	c.MaxUploadMB = intEnv(env, "TUNELAB_MAX_UPLOAD_MB", int64(100), 1, 100_000, "megabytes", &errs)
	c.LocalSlots = intEnv(env, "TUNELAB_LOCAL_SLOTS", 1, 1, 64, "jobs at once", &errs)
	c.QuotaSeriesPerRun = intEnv(env, "TUNELAB_QUOTA_SERIES_PER_RUN", store.DefaultSeriesPerRun, 1, 1_000_000, "metric names a run", &errs)
	c.QuotaPointsPerRun = intEnv(env, "TUNELAB_QUOTA_POINTS_PER_RUN", int64(store.DefaultPointsPerRun), 1, 1_000_000_000_000, "points a run", &errs)
	c.LocalWorker = strings.Fields(env("TUNELAB_LOCAL_WORKER", ""))
	c.PythonWorker = pythonWorkerConfig(env)
	c.WorkerURL = strings.TrimRight(env("TUNELAB_WORKER_URL", ""), "/")
	if c.WorkerURL != "" && !strings.HasPrefix(c.WorkerURL, "http://") && !strings.HasPrefix(c.WorkerURL, "https://") {
		errs = append(errs, fmt.Errorf("TUNELAB_WORKER_URL=%q: must start with http:// or https://", c.WorkerURL))
	}
	c.HeartbeatInterval = durationEnv(env, "TUNELAB_HEARTBEAT_INTERVAL", 5*time.Second, time.Second, time.Hour, &errs)
	c.HeartbeatTimeout = durationEnv(env, "TUNELAB_HEARTBEAT_TIMEOUT", 60*time.Second, 2*time.Second, 24*time.Hour, &errs)
	c.DatasetRetention = durationEnv(env, "TUNELAB_DATASET_RETENTION", store.DefaultDatasetRetention, time.Hour, 10*365*24*time.Hour, &errs)
	c.QuotaQueuedRuns = intEnv(env, "TUNELAB_QUOTA_QUEUED_RUNS", store.DefaultQuotaQueuedRuns, 0, 1_000_000, "runs", &errs)
	c.QuotaStreams = intEnv(env, "TUNELAB_QUOTA_STREAMS", handlers.DefaultStreamsQuota, 0, 100_000, "open live streams", &errs)
	c.QuotaDatasetBytes = store.DefaultQuotaDatasetBytes
	if v := env("TUNELAB_QUOTA_DATASET_BYTES", ""); v != "" {
		n, err := parseBytes(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("TUNELAB_QUOTA_DATASET_BYTES=%q: %w", v, err))
		}
		c.QuotaDatasetBytes = n
	}
	c.Stripe = billing.StripeConfig{
		SecretKey:     getenv("TUNELAB_STRIPE_SECRET_KEY"),
		WebhookSecret: getenv("TUNELAB_STRIPE_WEBHOOK_SECRET"),
		APIURL:        strings.TrimRight(env("TUNELAB_STRIPE_API_URL", ""), "/"),
	}
	if c.Stripe.APIURL != "" && !strings.HasPrefix(c.Stripe.APIURL, "http://") && !strings.HasPrefix(c.Stripe.APIURL, "https://") {
		errs = append(errs, fmt.Errorf("TUNELAB_STRIPE_API_URL=%q: must start with http:// or https:// (leave it empty for Stripe itself)", c.Stripe.APIURL))
	}
	if c.Stripe.Enabled() && c.Stripe.WebhookSecret == "" {
		errs = append(errs, errors.New("TUNELAB_STRIPE_WEBHOOK_SECRET is required with TUNELAB_STRIPE_SECRET_KEY (the whsec_… of the endpoint /stripe/webhook), or subscriptions never reach tunelab"))
	}
	if v := env("TUNELAB_SMTP_URL", ""); v != "" {
		sc, err := parseSMTPURL(v)
		if err != nil {
			// The URL may hold a password: the message never repeats it.
			errs = append(errs, fmt.Errorf("TUNELAB_SMTP_URL: %w (use smtp://user:password@host:587 or smtps://user:password@host:465)", err))
		}
		c.SMTP = sc
	}
	c.MailFrom = mail.Address{Name: "tunelab", Address: "tunelab@localhost"}
	if v := env("TUNELAB_MAIL_FROM", ""); v != "" {
		a, err := mail.ParseAddress(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("TUNELAB_MAIL_FROM=%q: use an address such as \"tunelab <noreply@example.com>\"", v))
		} else {
			c.MailFrom = *a
		}
	}
	c.OAuth = oauthFromEnv(env, &errs)
	c.MeterInterval = durationEnv(env, "TUNELAB_METER_INTERVAL", store.DefaultMeterInterval, time.Minute, 24*time.Hour, &errs)
	c.BillingGrace = durationEnv(env, "TUNELAB_BILLING_GRACE", billing.DefaultGrace, time.Minute, 90*24*time.Hour, &errs)
	c.Plans = billing.DefaultPlans()
	if v := env("TUNELAB_PLANS", ""); v != "" {
		p, err := billing.LoadPlans(v)
		if err != nil {
			errs = append(errs, err)
		}
		c.Plans = p
	}
	if c.HeartbeatTimeout < 2*c.HeartbeatInterval {
		errs = append(errs, fmt.Errorf("TUNELAB_HEARTBEAT_TIMEOUT (%s) must be at least twice TUNELAB_HEARTBEAT_INTERVAL (%s), or one late heartbeat fails a healthy run",
			c.HeartbeatTimeout, c.HeartbeatInterval))
	}
	if err := c.LogLevel.UnmarshalText([]byte(env("TUNELAB_LOG_LEVEL", "info"))); err != nil {
		errs = append(errs, fmt.Errorf("TUNELAB_LOG_LEVEL: use debug, info, warn or error"))
	}

	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen address")
	fs.StringVar(&c.DataDir, "data", c.DataDir, "data directory")
	if err := fs.Parse(args); err != nil {
		return config{}, fmt.Errorf("%s: %w (flags: --addr ADDR, --data DIR)", name, err)
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("%s: unexpected argument %q", name, fs.Arg(0))
	}

	switch c.Env {
	case "development", "production":
	default:
		errs = append(errs, fmt.Errorf("TUNELAB_ENV=%q: use development or production", c.Env))
	}
	c.Backends, errs = backendList(getenv, errs)
	errs = c.loadBackendSettings(env, errs)
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("set both TUNELAB_TLS_CERT and TUNELAB_TLS_KEY, or neither"))
	}
	if c.BaseURL != "" && !strings.HasPrefix(c.BaseURL, "http://") && !strings.HasPrefix(c.BaseURL, "https://") {
		errs = append(errs, fmt.Errorf("TUNELAB_BASE_URL=%q: must start with http:// or https://", c.BaseURL))
	}
	if c.production() && c.SecretKey == "" {
		errs = append(errs, errors.New("TUNELAB_SECRET_KEY is required when TUNELAB_ENV=production (generate one with: head -c 32 /dev/urandom | base64)"))
	}
	if c.production() && !c.secure() {
		errs = append(errs, errors.New("TUNELAB_ENV=production needs HTTPS, so that session cookies are always Secure: "+
			"serve TLS directly with TUNELAB_TLS_CERT and TUNELAB_TLS_KEY, or behind a TLS proxy set TUNELAB_BASE_URL=https://… (and TUNELAB_TRUST_PROXY=true)"))
	}
	if c.SecretKey != "" {
		if _, err := decodeKey(c.SecretKey); err != nil {
			errs = append(errs, fmt.Errorf("TUNELAB_SECRET_KEY: %w", err))
		}
	}
	if c.OldSecretKey != "" {
		if _, err := decodeKey(c.OldSecretKey); err != nil {
			errs = append(errs, fmt.Errorf("TUNELAB_OLD_SECRET_KEY: %w", err))
		} else if c.SecretKey == "" {
			errs = append(errs, errors.New("TUNELAB_OLD_SECRET_KEY needs the new key in TUNELAB_SECRET_KEY"))
		}
	}
	if len(errs) > 0 {
		return config{}, errors.Join(errs...)
	}
	return c, nil
}

func decodeKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, errors.New("not valid base64 (generate one with: head -c 32 /dev/urandom | base64)")
	}
	if len(k) != 32 {
		return nil, fmt.Errorf("decodes to %d bytes, want 32 (generate one with: head -c 32 /dev/urandom | base64)", len(k))
	}
	return k, nil
}

func dbPath(dataDir string) string        { return filepath.Join(dataDir, "tunelab.db") }
func secretKeyPath(dataDir string) string { return filepath.Join(dataDir, "secret.key") }

// loadSecretKey returns the configured key. Outside production, without one, it reads the
// key generated earlier into the data dir, or generates it there (mode 0600).
func loadSecretKey(c config) (key []byte, generated bool, err error) {
	if c.SecretKey != "" {
		k, err := decodeKey(c.SecretKey)
		return k, false, err
	}
	if c.production() {
		return nil, false, errors.New("TUNELAB_SECRET_KEY is required in production")
	}
	path := secretKeyPath(c.DataDir)
	if b, err := os.ReadFile(path); err == nil {
		k, err := decodeKey(string(b))
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", path, err)
		}
		return k, false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("read secret key: %w", err)
	}
	k := make([]byte, 32)
	rand.Read(k)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("write secret key: %w", err)
	}
	_, werr := f.WriteString(base64.StdEncoding.EncodeToString(k) + "\n")
	if err := errors.Join(werr, f.Close()); err != nil {
		return nil, false, fmt.Errorf("write secret key: %w", err)
	}
	return k, true, nil
}

// durationEnv reads a Go duration ("90s", "2m") within [lo, hi].
// intEnv reads a whole number between lo and hi (lo 0 means "0 turns it off" where the
// caller says so in what), or def when the variable is unset.
func intEnv[T int | int64](env func(k, def string) string, key string, def, lo, hi T, what string, errs *[]error) T {
	v := env(key, "")
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || T(n) < lo || T(n) > hi || int64(T(n)) != n {
		limits := fmt.Sprintf("from %d to %d", lo, hi)
		if lo == 0 {
			limits = fmt.Sprintf("from 0 (no limit) to %d", hi)
		}
		*errs = append(*errs, fmt.Errorf("%s=%q: use a whole number of %s %s", key, v, what, limits))
		return def
	}
	return T(n)
}

func durationEnv(env func(k, def string) string, key string, def, lo, hi time.Duration, errs *[]error) time.Duration {
	v := env(key, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d > hi {
		*errs = append(*errs, fmt.Errorf("%s=%q: use a duration such as 30s or 2m, from %s to %s", key, v, lo, hi))
		return def
	}
	return d
}

// workerURL is the base URL local workers call back on.
func (c config) workerURL(addr net.Addr) string {
	if c.WorkerURL != "" {
		return c.WorkerURL
	}
	scheme := "http"
	if c.TLSCert != "" {
		scheme = "https"
	}
	_, port, _ := net.SplitHostPort(addr.String())
	return scheme + "://127.0.0.1:" + port
}

// parseBytes reads a size: a whole number of bytes, or one with a decimal unit (kB, MB,
// GB, TB: powers of 1000), as in "5GB" or "500 MB". 0 means no limit.
func parseBytes(v string) (int64, error) {
	s := strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(v), " ", ""))
	unit := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, unit = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/unit {
		return 0, errors.New("use a size such as 5GB, 500MB or a whole number of bytes (0: no limit)")
	}
	return n * unit, nil
}

// Command tunelab is a self-hostable platform for fine-tuning large language models:
// one binary that serves the web app and API over one SQLite file.
package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"tunelab/billing"
	"tunelab/geoip"
	"tunelab/gpu"
	"tunelab/handlers"
	"tunelab/store"
	"tunelab/trainer"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "tunelab:", err)
		os.Exit(1)
	}
}

// run is the whole program; main only wires it to the process.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		cfg, err := loadConfig("serve", args, getenv)
		if err != nil {
			return err
		}
		return serve(ctx, cfg, stdout, nil)
	case "worker":
		return runWorker(ctx, args, getenv, stdout)
	case "admin":
		return runAdmin(ctx, args, getenv, stdin, stdout)
	case "backup":
		return runBackup(ctx, args, getenv, stdout, time.Now)
	case "restore":
		return runRestore(ctx, args, getenv, stdout, time.Now)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		return fmt.Errorf("unknown command %q\n\n%s", cmd, usage)
	}
}

const usage = `Usage:
  tunelab [serve] [--addr ADDR] [--data DIR]      serve the web app (default)
  tunelab worker --server URL --run ID            run one training job (token in TUNELAB_RUN_TOKEN)
  tunelab admin create-user --email E --password-stdin [--admin]
  tunelab admin rotate-key [--data DIR]          re-encrypt under TUNELAB_SECRET_KEY (old key in TUNELAB_OLD_SECRET_KEY)
  tunelab backup [--data DIR] BACKUP_DIR          back up while serving; prunes backups older than 21 days
  tunelab restore [--data DIR] BACKUP_DIR/tunelab-TIME   restore (server stopped, no database in DIR)

Configuration comes from TUNELAB_* environment variables; see README.md.
`

// serve runs the HTTP server until ctx ends, then shuts down gracefully. When ready is
// not nil it receives the listening address (tests use port 0).
func serve(ctx context.Context, cfg config, stdout io.Writer, ready chan<- string) error {
	log := newLogger(cfg, stdout)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	key, generated, err := loadSecretKey(cfg)
	if err != nil {
		return err
	}
	if generated {
		log.Warn("generated a new secret key for development; set TUNELAB_SECRET_KEY in production",
			"file", secretKeyPath(cfg.DataDir))
	}
	vault, err := store.NewVault(filepath.Join(cfg.DataDir, "files"), key)
	if err != nil {
		return err
	}
	if err := withOldKey(vault, cfg, log); err != nil {
		return err
	}

	geoPath := cfg.GeoIPDB
	if geoPath == "" {
		geoPath = filepath.Join(cfg.DataDir, "geoip", "country.mmdb")
	}
	geo, geoOK, err := geoip.Open(geoPath)
	if err != nil {
		return err
	}
	defer geo.Close()
	if geoOK {
		log.Info("country database loaded", "file", geoPath)
	} else {
		log.Info("no country database: countries are unknown (go tool task geoip fetches one)", "file", geoPath)
	}

	st, err := store.Open(ctx, dbPath(cfg.DataDir), store.Options{MeterInterval: cfg.MeterInterval,
		Quotas: store.Quotas{SeriesPerRun: cfg.QuotaSeriesPerRun, PointsPerRun: cfg.QuotaPointsPerRun}})
	if err != nil {
		return err
	}
	defer st.Close()

	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second, // SSE streams clear their own deadline
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("load TLS certificate: %w", err)
		}
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	if srv.TLSConfig != nil {
		ln = tls.NewListener(ln, srv.TLSConfig)
	}

	hub := gpu.NewHub()
	backends, err := newBackends(ctx, cfg, log)
	if err != nil {
		ln.Close()
		return err
	}
	// Every GPU type a backend offers must have a price in every plan, or runs on it
	// would be free by omission.
	var gpuTypes []string
	for _, b := range backends {
		for _, g := range b.Offer().GPUTypes {
			if !slices.Contains(gpuTypes, g.ID) {
				gpuTypes = append(gpuTypes, g.ID)
			}
		}
	}
	if err := cfg.Plans.CheckGPUTypes(gpuTypes); err != nil {
		ln.Close()
		return fmt.Errorf("TUNELAB_PLANS: %w", err)
	}
	bill := billing.New(billing.Config{Store: st, Stripe: cfg.Stripe, Plans: cfg.Plans, BaseURL: cfg.publicURL(ln.Addr()), Logger: log, Grace: cfg.BillingGrace})
	if !bill.Enabled() {
		log.Info("billing is off (no TUNELAB_STRIPE_SECRET_KEY): every run is free")
	}
	dispatcher := gpu.NewDispatcher(gpu.DispatcherConfig{
		Store: st, Backends: backends, Hub: hub, Logger: log,
		ServerURL:        cfg.workerURL(ln.Addr()),
		HeartbeatTimeout: cfg.HeartbeatTimeout,
		StopGrace:        gpu.StopGraceFor(cfg.HeartbeatInterval),
	})
	streams, stopStreams := context.WithCancel(context.Background())
	defer stopStreams()
	srv.RegisterOnShutdown(stopStreams)
	var detachedStreams sync.WaitGroup // live streams outside net/http's count; see Shutdown below
	mailer := newMailSender(st, cfg.SMTP, cfg.DataDir, cfg.MailFrom, log)
	handler := handlers.New(handlers.Deps{
		Store:        st,
		SessionStore: st.Sessions(),
		Vault:        vault,
		Logger:       log,
		Config: handlers.Config{
			Secure:         cfg.secure(),
			TrustProxy:     cfg.TrustProxy,
			Operator:       cfg.Operator,
			Contact:        cfg.Contact,
			MaxUploadBytes: cfg.MaxUploadMB * 1_000_000,

			DatasetRetention:  cfg.DatasetRetention,
			QueuedRunsQuota:   cfg.QuotaQueuedRuns,
			StreamsQuota:      cfg.QuotaStreams,
			DatasetQuotaBytes: cfg.QuotaDatasetBytes,
			MetricsToken:      cfg.MetricsToken,
			BaseURL:           cfg.publicURL(ln.Addr()),
			OAuth:             cfg.OAuth,
			ConsentVersion:    cfg.ConsentVersion,
		},
		GeoIP:      geo,
		ConsentKey: deriveKey(key, "tunelab consent cookie"),
		Mail:       handlers.Mail{Wake: mailer.Wake, Mode: mailer.Mode(), Relay: mailer.Relayed()},
		Runs:       handlers.Runs{Backend: dispatcher.Pool(), Queue: dispatcher, Hub: hub, Wake: dispatcher.Wake, HeartbeatInterval: cfg.HeartbeatInterval},
		Billing:    bill,
		Stopping:   streams.Done(),
		Streams:    &detachedStreams,
	})
	srv.Handler = handler

	// GPU seconds reach Stripe through the meter-event outbox (billing on only).
	meterCtx, stopMeter := context.WithCancel(ctx)
	// Billing mails (payment failed, runs paused, paused lifted) are swept for beside it.
	var billingLoops sync.WaitGroup
	billingLoops.Go(func() { bill.RunMeterSender(meterCtx, nil) })
	billingLoops.Go(func() { bill.RunNotices(meterCtx) })
	defer func() { stopMeter(); billingLoops.Wait() }()
	// Mail leaves through the queue: over SMTP, or into DATA_DIR/outbox.
	mailCtx, stopMail := context.WithCancel(ctx)
	mailDone := make(chan struct{})
	go func() { defer close(mailDone); mailer.Run(mailCtx) }()
	defer func() { stopMail(); <-mailDone }()
	go housekeeping(ctx, st, vault, store.PurgeOptions{DatasetRetention: cfg.DatasetRetention, WorkerLogDir: filepath.Join(cfg.DataDir, "workers")}, log)
	// Workers are separate processes that outlive a server restart; the dispatcher
	// reconciles with them when it starts again.
	dispatchDone := make(chan struct{})
	go func() {
		defer close(dispatchDone)
		if err := dispatcher.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("dispatcher stopped", "err", err)
		}
	}()
	defer func() { <-dispatchDone }()

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("tunelab is serving", "addr", ln.Addr().String(), "url", cfg.publicURL(ln.Addr()), "data", cfg.DataDir, "env", cfg.Env)
	if ready != nil {
		ready <- ln.Addr().String()
	}

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	// Shutdown does not wait for connections taken over by live streams; they end on
	// Stopping, and must be done with the store before it closes. One stuck writing to a
	// viewer that stopped reading is not waited for past the shutdown's deadline.
	streamsDone := make(chan struct{})
	go func() { detachedStreams.Wait(); close(streamsDone) }()
	select {
	case <-streamsDone:
	case <-shutdownCtx.Done():
		log.Warn("live streams still open at the shutdown deadline")
	}
	return nil
}

// deriveKey makes a key for one purpose from the server's secret key, so a leak of one
// (a cookie signing key) says nothing about the other.
func deriveKey(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// housekeeping removes expired sessions, security telemetry past its retention, and
// deleted or expired runs, snapshots and datasets, worker logs of purged runs and
// half-written uploads (store.Purge): at start-up, then hourly.
func housekeeping(ctx context.Context, st *store.Store, vault *store.Vault, purge store.PurgeOptions, log *slog.Logger) {
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	for {
		if n, err := st.DeleteExpiredSessions(ctx); err != nil {
			log.Error("delete expired sessions", "err", err)
		} else if n > 0 {
			log.Info("deleted expired sessions", "count", n)
		}
		if n, err := st.PurgeSecurityEvents(ctx); err != nil {
			log.Error("purge security events", "err", err)
		} else if n > 0 {
			log.Info("purged security events past retention", "count", n)
		}
		if n, err := st.PurgeAnalytics(ctx); err != nil {
			log.Error("purge analytics", "err", err)
		} else if n > 0 {
			log.Info("folded raw analytics past retention into daily counts", "count", n)
		}
		if n, err := st.PurgeMailAndLinks(ctx); err != nil {
			log.Error("purge mail records", "err", err)
		} else if n > 0 {
			log.Info("purged old mail records and expired links", "count", n)
		}
		if rep, err := st.Purge(ctx, vault, purge); err != nil {
			log.Error("purge deleted data", "err", err)
		} else if rep != (store.PurgeReport{}) {
			log.Info("purged deleted data", "runs", rep.Runs, "snapshots", rep.Snapshots,
				"datasets", rep.Datasets, "expired_datasets", rep.ExpiredDatasets,
				"worker_logs", rep.WorkerLogs, "stale_uploads", rep.Uploads,
				"closed_accounts", rep.Accounts, "expired_exports", rep.Exports)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func newLogger(cfg config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.production() {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// builtinCatalogue is what the local backend offers: the built-in CPU trainer's models and
// its default settings, as the run form shows them.
func builtinCatalogue() ([]gpu.Model, gpu.Defaults) {
	models := make([]gpu.Model, len(trainer.BaseModels))
	for i, m := range trainer.BaseModels {
		models[i] = gpu.Model{ID: m.ID, Name: m.Name, About: m.About}
	}
	d := trainer.DefaultConfig()
	return models, gpu.Defaults{
		Epochs:          d.Epochs,
		LearningRate:    d.LearningRate,
		BatchSize:       d.BatchSize,
		LoRARank:        d.LoRARank,
		LoRAAlpha:       d.LoRAAlpha,
		MaxSeqLen:       d.MaxSeqLen,
		Seed:            d.Seed,
		ValidationSplit: d.EvalFraction * 100,
		SnapshotEvery:   d.SnapshotEvery,
	}
}

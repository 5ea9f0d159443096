package gpu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"tunelab/store"
)

// DispatcherConfig wires a dispatcher; zero durations take their defaults.
type DispatcherConfig struct {
	Store     *store.Store
	Backend   Backend
	Hub       *Hub         // may be nil
	Logger    *slog.Logger // slog.Default() when nil
	ServerURL string       // what workers are told to call

	HeartbeatTimeout time.Duration // default 60 s: a running run silent for longer is failed
	StartTimeout     time.Duration // default 10 min: a run starting for longer is failed
	CancelGrace      time.Duration // default 30 s: after a cancel request, stop the job ourselves
	// StopGrace is how long a worker asked to stop cleanly has to upload its final snapshot
	// and finish before the stop becomes a plain cancel; default StopGraceFor(5 s).
	StopGrace time.Duration
	Poll      time.Duration // default 1 s
	Now       func() time.Time
}

// Dispatcher moves queued runs onto its backend and follows them until they end: it fails
// runs whose worker died or went silent, and stops jobs whose run was cancelled or deleted.
type Dispatcher struct {
	c    DispatcherConfig
	log  *slog.Logger
	wake chan struct{}

	passMu sync.Mutex // one pass at a time, whoever calls
	// cancelSeen is when a pass first saw each run's cancel (or delete) request; the
	// grace runs from there. Kept in memory: a restart only restarts the grace.
	cancelSeen map[int64]time.Time
}

// NewDispatcher fills in defaults.
func NewDispatcher(c DispatcherConfig) *Dispatcher {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.HeartbeatTimeout, 60*time.Second)
	def(&c.StartTimeout, 10*time.Minute)
	def(&c.CancelGrace, 30*time.Second)
	def(&c.StopGrace, StopGraceFor(5*time.Second))
	def(&c.Poll, time.Second)
	if c.Now == nil {
		c.Now = time.Now
	}
	log := c.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("backend", c.Backend.Name())
	return &Dispatcher{c: c, log: log, wake: make(chan struct{}, 1), cancelSeen: map[int64]time.Time{}}
}

// Run reconciles once, then makes a pass every Poll or on Wake until ctx is done.
func (d *Dispatcher) Run(ctx context.Context) error {
	if err := d.Reconcile(ctx); err != nil && ctx.Err() == nil {
		d.log.Error("reconciling unfinished runs failed", "err", err)
	}
	t := time.NewTicker(d.c.Poll)
	defer t.Stop()
	for {
		if err := d.Tick(ctx); err != nil && ctx.Err() == nil {
			d.log.Error("dispatcher pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-d.wake:
		}
	}
}

// Wake asks for a pass soon (a run was queued, or a cancel or delete was asked); it never
// blocks.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Reconcile follows every unfinished run once, as at start-up: whatever happened while the
// server was down (workers that finished, died or never started) is settled here.
func (d *Dispatcher) Reconcile(ctx context.Context) error {
	d.passMu.Lock()
	defer d.passMu.Unlock()
	runs, err := d.c.Store.UnfinishedRuns(ctx, d.c.Backend.Name())
	if err != nil {
		return err
	}
	live, err := d.follow(ctx, runs)
	d.log.Info(fmt.Sprintf("reconciled %d unfinished runs", len(runs)), "still_unfinished", live)
	return err
}

// Tick is one pass: follow every unfinished run, then claim queued runs into free slots.
func (d *Dispatcher) Tick(ctx context.Context) error {
	d.passMu.Lock()
	defer d.passMu.Unlock()
	runs, err := d.c.Store.UnfinishedRuns(ctx, d.c.Backend.Name())
	if err != nil {
		return err // without the count of busy slots, claiming could overfill them
	}
	live, err := d.follow(ctx, runs)
	if ctx.Err() != nil {
		return errors.Join(err, ctx.Err())
	}
	return errors.Join(err, d.claim(ctx, live))
}

// claim starts queued runs while fewer than Slots runs are unfinished.
func (d *Dispatcher) claim(ctx context.Context, live int) error {
	name, slots := d.c.Backend.Name(), d.c.Backend.Offer().Slots
	for live < slots {
		token, hash := NewRunToken()
		r, ok, err := d.c.Store.ClaimQueuedRun(ctx, name, hash)
		if err != nil || !ok {
			return err
		}
		jobID, err := d.c.Backend.Submit(ctx, Job{RunID: r.ID, ServerURL: d.c.ServerURL, Token: token})
		if err != nil && ctx.Err() != nil {
			// Shutting down: not the run's fault. It stays starting with no job, and the
			// next start requeues it.
			return ctx.Err()
		}
		if err != nil {
			d.log.Warn("could not start a worker", "run", r.ID, "err", err)
			reason := fmt.Sprintf("the %s backend could not start the worker: %v", name, err)
			if err := d.finish(ctx, r.ID, store.RunFailed, reason, d.c.Now()); err != nil {
				return err
			}
			continue
		}
		if err := d.c.Store.SetRunJob(ctx, r.ID, jobID); err != nil {
			// Unrecorded, the job would run unfollowed while the next pass requeues the
			// run (its token dies then): stop it now.
			_ = d.c.Backend.Cancel(ctx, jobID)
			return err
		}
		d.log.Info("run submitted", "run", r.ID, "job", jobID)
		d.publish(r.ID)
		live++
	}
	return nil
}

// finish ends a run unless it ended meanwhile (the worker's own finish stands).
func (d *Dispatcher) finish(ctx context.Context, runID int64, status store.RunStatus, reason string, end time.Time) error {
	_, err := d.c.Store.FinishRun(ctx, runID, status, reason, end)
	if errors.Is(err, store.ErrRunFinished) {
		return nil
	}
	if err != nil {
		return err
	}
	d.log.Info("run ended", "run", runID, "status", status, "reason", reason)
	d.publish(runID)
	return nil
}

func (d *Dispatcher) publish(runID int64) {
	if d.c.Hub != nil {
		d.c.Hub.Publish(Event{RunID: runID, Kind: EventStatus})
	}
}

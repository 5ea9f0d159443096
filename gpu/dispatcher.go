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
	Store *store.Store
	// Backends are every place runs can go, in the order routing prefers them; Backend
	// is the shorthand for one.
	Backends  []Backend
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

// Dispatcher moves queued runs onto its backends, taking turns between people (fairQueue),
// and follows them until they end: it fails runs whose worker died or went silent, and
// stops jobs whose run was cancelled or deleted.
type Dispatcher struct {
	c        DispatcherConfig
	log      *slog.Logger
	wake     chan struct{}
	backends []Backend
	byName   map[string]Backend
	pool     *Pool
	health   *healthBook

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
	d := &Dispatcher{c: c, log: log, wake: make(chan struct{}, 1), cancelSeen: map[int64]time.Time{},
		byName: map[string]Backend{}, health: newHealthBook()}
	for _, b := range append([]Backend{c.Backend}, c.Backends...) {
		if b != nil && d.byName[b.Name()] == nil {
			d.backends = append(d.backends, b)
			d.byName[b.Name()] = b
		}
	}
	if len(d.backends) == 0 {
		panic("gpu: a dispatcher needs at least one backend")
	}
	d.pool = NewPool(d.backends...)
	return d
}

// Pool is the dispatcher's backends as one catalogue, for the run form.
func (d *Dispatcher) Pool() *Pool { return d.pool }

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
	var errs []error
	for _, b := range d.backends {
		d.refresh(ctx, b)
		runs, err := d.c.Store.UnfinishedRuns(ctx, b.Name())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		live, err := d.follow(ctx, b, runs)
		d.log.Info(fmt.Sprintf("reconciled %d unfinished runs", len(runs)), "backend", b.Name(), "still_unfinished", len(live))
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Tick is one pass: follow every unfinished run, then claim queued runs into free slots.
func (d *Dispatcher) Tick(ctx context.Context) error {
	d.passMu.Lock()
	defer d.passMu.Unlock()
	var errs []error
	live := map[string]int{}
	var unfinished []store.Run
	seen := map[int64]bool{}
	for _, b := range d.backends {
		d.refresh(ctx, b)
		runs, err := d.c.Store.UnfinishedRuns(ctx, b.Name())
		if err != nil {
			// Without the count of busy slots, claiming could overfill them.
			errs = append(errs, err)
			live[b.Name()] = -1
			continue
		}
		for _, r := range runs {
			seen[r.ID] = true
		}
		still, err := d.follow(ctx, b, runs)
		errs = append(errs, err)
		live[b.Name()] = len(still)
		unfinished = append(unfinished, still...)
	}
	d.forgetCancels(seen)
	errs = append(errs, d.followDeployments(ctx))
	if ctx.Err() != nil {
		return errors.Join(append(errs, ctx.Err())...)
	}
	return errors.Join(append(errs, d.claim(ctx, live, unfinished))...)
}

// claim starts queued runs into free slots, taking turns between people; each run goes to
// a backend with a free slot that offers its GPU type (the one it was recorded on first).
// live is each backend's count of unfinished runs (-1: unknown, claim nothing there).
func (d *Dispatcher) claim(ctx context.Context, live map[string]int, unfinished []store.Run) error {
	free := map[string]int{}
	offers := map[string]Offer{}
	any := false
	for _, b := range d.backends {
		o := b.Offer()
		offers[b.Name()] = o
		// An unhealthy backend (its provider or cluster unreachable) takes no new runs:
		// they wait in the queue rather than fail on a submit that cannot work.
		if n := live[b.Name()]; n >= 0 && o.Slots > n && d.healthy(b.Name()) {
			free[b.Name()] = o.Slots - n
			any = true
		}
	}
	if !any {
		return nil
	}
	queued, err := d.c.Store.QueuedRuns(ctx)
	if err != nil || len(queued) == 0 {
		return err
	}
	turns, err := d.c.Store.QueueTurns(ctx)
	if err != nil {
		return err
	}
	q := newFairQueue(queued, unfinished, turns)
	target := func(r store.Run) Backend { return d.placeFor(r, offers, free) }
	for {
		i := q.next(func(r store.Run) bool { return target(r) != nil })
		if i < 0 {
			return nil
		}
		b := target(q.runs[i])
		r := q.take(i, d.c.Now())
		token, hash := NewRunToken()
		r, ok, err := d.c.Store.ClaimRun(ctx, r.ID, b.Name(), hash)
		if err != nil {
			return err
		}
		if !ok {
			continue // cancelled or deleted since the list was read
		}
		free[b.Name()]--
		jobID, err := b.Submit(ctx, Job{RunID: r.ID, ServerURL: d.c.ServerURL, Token: token, Config: r.Config})
		if err != nil && ctx.Err() != nil {
			// Shutting down: not the run's fault. It stays starting with no job, and the
			// next start requeues it.
			return ctx.Err()
		}
		if err != nil {
			d.log.Warn("could not start a worker", "backend", b.Name(), "run", r.ID, "err", err)
			reason := fmt.Sprintf("the %s backend could not start the worker: %v", b.Name(), err)
			if err := d.finish(ctx, r.ID, store.RunFailed, reason, d.c.Now()); err != nil {
				return err
			}
			continue
		}
		if err := d.c.Store.SetRunJob(ctx, r.ID, jobID); err != nil {
			// Unrecorded, the job would run unfollowed while the next pass requeues the
			// run (its token dies then): stop it now.
			_ = b.Cancel(ctx, jobID)
			return err
		}
		d.log.Info("run submitted", "backend", b.Name(), "run", r.ID, "job", jobID)
		d.publish(r.ID)
	}
}

// placeFor is the backend a queued run would start on now: the one it was recorded on
// when that has a free slot and still fits, else the first that does; nil when none.
func (d *Dispatcher) placeFor(r store.Run, offers map[string]Offer, free map[string]int) Backend {
	if b := d.byName[r.Backend]; b != nil && free[r.Backend] > 0 && fits(offers[r.Backend], r.Config) {
		return b
	}
	for _, b := range d.backends {
		if free[b.Name()] > 0 && fits(offers[b.Name()], r.Config) {
			return b
		}
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

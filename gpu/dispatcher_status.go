package gpu

import (
	"context"
	"sync"
	"time"

	"tunelab/store"
)

// healthBook remembers each backend's last refresh: when and what went wrong.
type healthBook struct {
	mu sync.Mutex
	m  map[string]health
}

type health struct {
	checked time.Time
	err     error
}

func newHealthBook() *healthBook { return &healthBook{m: map[string]health{}} }

// refresh asks a Refresher backend to bring its offer up to date and records its health.
// A backend that needs no refresh (local) is healthy whenever the server runs.
func (d *Dispatcher) refresh(ctx context.Context, b Backend) {
	var err error
	if r, ok := b.(Refresher); ok {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = r.Refresh(rctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			d.log.Warn("backend unhealthy", "backend", b.Name(), "err", err)
		}
	}
	d.health.mu.Lock()
	d.health.m[b.Name()] = health{checked: d.c.Now(), err: err}
	d.health.mu.Unlock()
}

// healthy says whether the backend's last refresh went well.
func (d *Dispatcher) healthy(name string) bool {
	d.health.mu.Lock()
	defer d.health.mu.Unlock()
	return d.health.m[name].err == nil
}

// BackendReport is one backend as the admin page shows it.
type BackendReport struct {
	Name     string
	Checked  time.Time // last health check; zero before the first pass
	Problem  string    // "" when healthy
	Slots    int       // jobs at once
	Running  int       // runs starting or running on it
	Queued   int       // queued runs it could take (a run another backend can take counts for both)
	GPUTypes []GPUType
}

// QueueReport is the whole queue: every backend and the runs waiting.
type QueueReport struct {
	Backends []BackendReport
	Queued   int // queued runs in all
	People   int // people with a queued run
	Stranded int // queued runs no configured backend can take
}

// Report describes every backend and the queue, for the admin page.
func (d *Dispatcher) Report(ctx context.Context) (QueueReport, error) {
	queued, err := d.c.Store.QueuedRuns(ctx)
	if err != nil {
		return QueueReport{}, err
	}
	rep := QueueReport{Queued: len(queued)}
	people := map[int64]bool{}
	offers := make([]Offer, len(d.backends))
	for i, b := range d.backends {
		offers[i] = b.Offer()
	}
	counts := make([]int, len(d.backends))
	for _, r := range queued {
		people[r.UserID] = true
		placed := false
		for i := range d.backends {
			if fits(offers[i], r.Config) {
				counts[i]++
				placed = true
			}
		}
		if !placed {
			rep.Stranded++
		}
	}
	rep.People = len(people)
	for i, b := range d.backends {
		runs, err := d.c.Store.UnfinishedRuns(ctx, b.Name())
		if err != nil {
			return QueueReport{}, err
		}
		d.health.mu.Lock()
		h := d.health.m[b.Name()]
		d.health.mu.Unlock()
		br := BackendReport{Name: b.Name(), Checked: h.checked, Slots: offers[i].Slots, Running: len(runs),
			Queued: counts[i], GPUTypes: offers[i].GPUTypes}
		if h.err != nil {
			br.Problem = h.err.Error()
		}
		rep.Backends = append(rep.Backends, br)
	}
	return rep, nil
}

// unfinishedRuns lists every configured backend's starting and running runs.
func (d *Dispatcher) unfinishedRuns(ctx context.Context) (map[string][]store.Run, error) {
	out := map[string][]store.Run{}
	for _, b := range d.backends {
		runs, err := d.c.Store.UnfinishedRuns(ctx, b.Name())
		if err != nil {
			return nil, err
		}
		out[b.Name()] = runs
	}
	return out, nil
}

package gpu

import (
	"context"
	"slices"
	"time"

	"tunelab/store"
)

// DefaultRunGuess is how long a run is assumed to take on a backend where none has
// succeeded yet.
const DefaultRunGuess = 10 * time.Minute

// QueueSpot is where a queued run stands: how many runs start before it and when it
// should start.
type QueueSpot struct {
	Position int       // 1: it starts in the next free slot it fits
	Start    time.Time // estimated start; zero when no backend that fits has a slot
	// What the estimate rests on: runs running now end when their progress says (or
	// after a typical run when they show none yet), and each queued run takes a typical
	// run's time: the median of the backend's recent successful runs (Samples of them),
	// DefaultRunGuess when there are none.
	Running int
	Typical time.Duration // of the backend the run is expected to start on
	Samples int           // successful runs the typical time is the median of
}

// Spot estimates where a queued run stands by playing the fair queue forward: each slot
// frees when its run is expected to end and takes the next run the queue would choose
// for that backend. ok is false when the run is not queued.
func (d *Dispatcher) Spot(ctx context.Context, runID int64) (spot QueueSpot, ok bool, err error) {
	queued, err := d.c.Store.QueuedRuns(ctx)
	if err != nil || !slices.ContainsFunc(queued, func(r store.Run) bool { return r.ID == runID }) {
		return QueueSpot{}, false, err
	}
	turns, err := d.c.Store.QueueTurns(ctx)
	if err != nil {
		return QueueSpot{}, false, err
	}
	unfinished, err := d.unfinishedRuns(ctx)
	if err != nil {
		return QueueSpot{}, false, err
	}
	recent, err := d.c.Store.RecentRunDurations(ctx, 200)
	if err != nil {
		return QueueSpot{}, false, err
	}
	typical := func(backend string) (time.Duration, int) {
		ds := slices.Clone(recent[backend])
		if len(ds) == 0 {
			return DefaultRunGuess, 0
		}
		slices.Sort(ds)
		return ds[len(ds)/2], len(ds)
	}

	now := d.c.Now()
	type slot struct {
		b      Backend
		offer  Offer
		freeAt time.Time
		user   int64 // whose run holds it; 0 when free
		dead   bool  // nothing left in the queue fits it
	}
	var slots []*slot
	var all []store.Run
	for _, b := range d.backends {
		o := b.Offer()
		runs := unfinished[b.Name()]
		all = append(all, runs...)
		spot.Running += len(runs)
		typ, _ := typical(b.Name())
		for _, r := range runs {
			slots = append(slots, &slot{b: b, offer: o, freeAt: now.Add(remaining(r, typ, now)), user: r.UserID})
		}
		for k := len(runs); k < o.Slots; k++ {
			slots = append(slots, &slot{b: b, offer: o, freeAt: now})
		}
	}
	q := newFairQueue(queued, all, turns)
	for pos := 1; ; {
		var s *slot
		for _, c := range slots {
			if !c.dead && (s == nil || c.freeAt.Before(s.freeAt)) {
				s = c
			}
		}
		if s == nil {
			spot.Position = pos // no slot that fits it ever frees: no start time to give
			return spot, true, nil
		}
		t := s.freeAt
		for _, c := range slots {
			if c.user != 0 && !c.freeAt.After(t) {
				q.done(c.user)
				c.user = 0
			}
		}
		i := q.next(func(r store.Run) bool { return fits(s.offer, r.Config) })
		if i < 0 {
			s.dead = true
			continue
		}
		r := q.take(i, t)
		typ, n := typical(s.b.Name())
		if r.ID == runID {
			spot.Position, spot.Start, spot.Typical, spot.Samples = pos, t, typ, n
			return spot, true, nil
		}
		pos++
		s.freeAt, s.user = t.Add(typ), r.UserID
	}
}

// remaining is how much longer an unfinished run should take: from its progress when it
// has made some, else a typical run less what it has run so far.
func remaining(r store.Run, typical time.Duration, now time.Time) time.Duration {
	if r.FirstHeartbeat.IsZero() {
		return typical
	}
	elapsed := now.Sub(r.FirstHeartbeat)
	if r.Step > 0 && r.TotalSteps > 0 {
		if r.Step >= r.TotalSteps {
			return 0
		}
		return time.Duration(float64(elapsed) * float64(r.TotalSteps-r.Step) / float64(r.Step))
	}
	return max(typical-elapsed, 0)
}

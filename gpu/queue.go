package gpu

import (
	"slices"
	"time"

	"tunelab/store"
)

// fairQueue chooses which queued run starts next, taking turns between people: the next
// run is the oldest of the person with the fewest runs starting or running, and among
// those of the person whose last run started longest ago (never first). So one person's
// 20 queued runs do not starve another's one: that one starts in the next free slot.
type fairQueue struct {
	runs   []store.Run         // still queued, oldest first
	active map[int64]int       // person -> runs starting or running
	turn   map[int64]time.Time // person -> when their last run started
	last   time.Time           // the latest turn handed out, so turns given at one instant keep their order
}

func newFairQueue(queued []store.Run, unfinished []store.Run, turns map[int64]time.Time) *fairQueue {
	q := &fairQueue{runs: slices.Clone(queued), active: map[int64]int{}, turn: map[int64]time.Time{}}
	for _, r := range unfinished {
		q.active[r.UserID]++
	}
	for u, t := range turns {
		q.turn[u] = t
		if t.After(q.last) {
			q.last = t
		}
	}
	return q
}

// next is the index of the run to start next among those ok accepts, or -1.
func (q *fairQueue) next(ok func(store.Run) bool) int {
	best := -1
	for i, r := range q.runs {
		if ok(r) && (best < 0 || q.before(r, q.runs[best])) {
			best = i
		}
	}
	return best
}

// before says whether run a goes before run b.
func (q *fairQueue) before(a, b store.Run) bool {
	if a.UserID != b.UserID {
		if na, nb := q.active[a.UserID], q.active[b.UserID]; na != nb {
			return na < nb
		}
		if ta, tb := q.turn[a.UserID], q.turn[b.UserID]; !ta.Equal(tb) {
			return ta.Before(tb)
		}
	}
	return a.ID < b.ID
}

// take removes run i from the queue as started at the given time and gives its person
// their turn.
func (q *fairQueue) take(i int, at time.Time) store.Run {
	r := q.runs[i]
	q.runs = slices.Delete(q.runs, i, i+1)
	q.active[r.UserID]++
	if !at.After(q.last) {
		at = q.last.Add(time.Nanosecond)
	}
	q.turn[r.UserID], q.last = at, at
	return r
}

// done frees a person's running slot (the estimate's simulation, when a run ends).
func (q *fairQueue) done(userID int64) {
	if q.active[userID] > 0 {
		q.active[userID]--
	}
}

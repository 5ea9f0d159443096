package handlers

import (
	"fmt"
	"net/http"
	"sync"
)

// DefaultStreamsQuota is how many live run streams one person may hold open at once when
// none is configured: a few browsers with a few tabs each. Each open stream holds a
// connection, a hub subscription and a buffer on the server.
const DefaultStreamsQuota = 32

// streamCounts counts the open live streams of each person.
type streamCounts struct {
	mu   sync.Mutex
	open map[int64]int
}

// acquire takes one of the person's stream places; limit 0 means no limit. release gives
// it back and must be called once when ok.
func (c *streamCounts) acquire(userID int64, limit int) (release func(), ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if limit > 0 && c.open[userID] >= limit {
		return nil, false
	}
	if c.open == nil {
		c.open = map[int64]int{}
	}
	c.open[userID]++
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.open[userID]--; c.open[userID] <= 0 {
			delete(c.open, userID)
		}
	}, true
}

// refuseStream answers a stream past the person's quota: 429, so the browser's EventSource
// backs off and tries again once another of their pages has closed.
func (a *app) refuseStream(w http.ResponseWriter, r *http.Request) {
	a.ops.streamsRefused.Inc()
	w.Header().Set("Retry-After", "30")
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, fmt.Sprintf("You have %d live run pages open, the most one account may watch at once (TUNELAB_QUOTA_STREAMS). Close some tabs of run pages and this one reconnects.", a.cfg.StreamsQuota), http.StatusTooManyRequests)
}

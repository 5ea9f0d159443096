package handlers

import (
	"sync"
	"time"
)

// limiter counts events per key in a sliding window. It throttles rather than locks out:
// a key is blocked only until its oldest counted event leaves the window.
type limiter struct {
	mu     sync.Mutex
	limit  int
	window time.Duration
	now    func() time.Time
	hits   map[string][]time.Time
	calls  int
}

// maxLimiterKeys bounds memory under a flood of distinct keys.
const maxLimiterKeys = 100_000

func newLimiter(limit int, window time.Duration, now func() time.Time) *limiter {
	return &limiter{limit: limit, window: window, now: now, hits: map[string][]time.Time{}}
}

// blocked reports whether key is over its limit, and when it may try again.
func (l *limiter) blocked(key string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	recent := l.prune(key, now)
	if len(recent) < l.limit {
		return false, 0
	}
	return true, recent[0].Add(l.window).Sub(now)
}

// hit counts one event for key.
func (l *limiter) hit(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.hits[key] = append(l.prune(key, now), now)
	if l.calls++; l.calls%1024 == 0 || len(l.hits) > maxLimiterKeys {
		l.sweep(now)
	}
}

// reset forgets key (a successful sign-in clears its failures).
func (l *limiter) reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.hits, key)
}

func (l *limiter) prune(key string, now time.Time) []time.Time {
	ts := l.hits[key]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= l.window {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(l.hits, key)
		return nil
	}
	l.hits[key] = ts
	return ts
}

func (l *limiter) sweep(now time.Time) {
	for k := range l.hits {
		l.prune(k, now)
	}
	// Still too many live keys: drop the lot rather than grow without bound.
	if len(l.hits) > maxLimiterKeys {
		l.hits = map[string][]time.Time{}
	}
}

// rateLimits are the documented limits on account endpoints (README, "Rate limits").
type rateLimits struct {
	signInIP       *limiter // sign-in attempts per client IP
	signInAccount  *limiter // failed sign-ins per email (known or not)
	signUpIP       *limiter // sign-up attempts per client IP
	signUpAccount  *limiter // sign-up attempts per email
	passwordChange *limiter // failed current-password checks per account
	workerAuthIP   *limiter // worker API requests with a bad token per client IP
}

func newRateLimits(now func() time.Time) *rateLimits {
	return &rateLimits{
		signInIP:       newLimiter(30, 15*time.Minute, now),
		signInAccount:  newLimiter(10, 15*time.Minute, now),
		signUpIP:       newLimiter(10, time.Hour, now),
		signUpAccount:  newLimiter(5, time.Hour, now),
		passwordChange: newLimiter(10, 15*time.Minute, now),
		workerAuthIP:   newLimiter(60, time.Minute, now),
	}
}

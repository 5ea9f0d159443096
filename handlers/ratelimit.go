package handlers

import (
	"net"
	"slices"
	"sync"
	"time"
)

// limiter counts events per key in a sliding window. It throttles rather than locks out:
// a key is blocked only until its oldest counted event leaves the window.
type limiter struct {
	mu      sync.Mutex
	limit   int
	window  time.Duration
	now     func() time.Time
	hits    map[string][]time.Time // per key, oldest first, at most limit entries
	calls   int
	maxKeys int
}

// maxLimiterKeys bounds memory under a flood of distinct keys.
const maxLimiterKeys = 100_000

func newLimiter(limit int, window time.Duration, now func() time.Time) *limiter {
	return &limiter{limit: limit, window: window, now: now, hits: map[string][]time.Time{}, maxKeys: maxLimiterKeys}
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

// count returns how many events key has in the window (at most the limit).
func (l *limiter) count(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.prune(key, l.now()))
}

// hit counts one event for key. Only the newest limit events are kept: they are all
// blocked and count need, so a key hammered without end holds bounded memory.
func (l *limiter) hit(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	ts := append(l.prune(key, now), now)
	if len(ts) > l.limit {
		ts = slices.Delete(ts, 0, len(ts)-l.limit)
	}
	l.hits[key] = ts
	if l.calls++; l.calls%1024 == 0 || len(l.hits) > l.maxKeys {
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

// sweep drops expired keys; if too many live keys remain, it evicts those whose latest
// event is oldest, down to 90 % of the bound (so eviction runs once per many new keys).
// The keys just counted, such as an address that is hammering now, stay.
func (l *limiter) sweep(now time.Time) {
	for k := range l.hits {
		l.prune(k, now)
	}
	if len(l.hits) <= l.maxKeys {
		return
	}
	type entry struct {
		key  string
		last time.Time
	}
	all := make([]entry, 0, len(l.hits))
	for k, ts := range l.hits {
		all = append(all, entry{k, ts[len(ts)-1]})
	}
	slices.SortFunc(all, func(a, b entry) int { return a.last.Compare(b.last) })
	for _, e := range all[:len(all)-l.maxKeys*9/10] {
		delete(l.hits, e.key)
	}
}

// limitKey is the rate-limit key of a client address: IPv4 addresses as they are, IPv6
// addresses by their /64 (one subscriber usually holds a whole /64).
func limitKey(ip string) string {
	addr := net.ParseIP(ip)
	if addr == nil || addr.To4() != nil {
		return ip
	}
	return (&net.IPNet{IP: addr.Mask(net.CIDRMask(64, 128)), Mask: net.CIDRMask(64, 128)}).String()
}

// rateLimits are the documented limits (README, "Rate limits"). Keys holding a client
// address go through limitKey.
type rateLimits struct {
	signInIP       *limiter // sign-in attempts per client address: the hard cap
	signInFailures *limiter // failed sign-ins per email (known or not): they slow, never block
	signUpIP       *limiter // sign-up attempts per client address
	signUpAccount  *limiter // sign-up attempts per email
	passwordChange *limiter // failed current-password checks per account
	tokenRun       *limiter // failed API token checks per client address and run
	tokenIP        *limiter // failed API token checks per client address, over all runs
	totpAccount    *limiter // wrong two-factor codes (and passwords on the 2FA page) per account
	totpIP         *limiter // wrong two-factor codes at sign-in per client address
	forgotIP       *limiter // password reset requests per client address
	forgotAccount  *limiter // password reset requests per email (known or not)
	resetIP        *limiter // bad reset links posted per client address
	verifyResend   *limiter // verification mails asked again per account
}

func newRateLimits(now func() time.Time) *rateLimits {
	return &rateLimits{
		signInIP:       newLimiter(30, 15*time.Minute, now),
		signInFailures: newLimiter(signInSlowAfter+8, 15*time.Minute, now),
		signUpIP:       newLimiter(10, time.Hour, now),
		signUpAccount:  newLimiter(5, time.Hour, now),
		passwordChange: newLimiter(10, 15*time.Minute, now),
		tokenRun:       newLimiter(60, time.Minute, now),
		tokenIP:        newLimiter(600, time.Minute, now),
		totpAccount:    newLimiter(5, 15*time.Minute, now),
		totpIP:         newLimiter(20, 15*time.Minute, now),
		forgotIP:       newLimiter(10, time.Hour, now),
		forgotAccount:  newLimiter(3, time.Hour, now),
		resetIP:        newLimiter(20, 15*time.Minute, now),
		verifyResend:   newLimiter(3, time.Hour, now),
	}
}

// Sign-in slow-down: after signInSlowAfter failures for an email within 15 minutes, every
// attempt for it (the right password included) is answered only after a delay that
// doubles from half a second with each further failure, up to signInMaxDelay.
const (
	signInSlowAfter = 5
	signInMaxDelay  = 5 * time.Second
)

// signInDelay is the wait before answering a sign-in for an email with this many recent
// failures.
func signInDelay(failures int) time.Duration {
	if failures < signInSlowAfter {
		return 0
	}
	d := 500 * time.Millisecond
	for range failures - signInSlowAfter {
		if d *= 2; d >= signInMaxDelay {
			return signInMaxDelay
		}
	}
	return d
}

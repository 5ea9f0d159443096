package handlers

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tunelab/store"
	"tunelab/store/storetest"
)

func TestWorkerBadTokensNeverLimitARealWorker(t *testing.T) {
	ts, _, runA, tokA, runB, tokB := workerSetup(t)
	bad := strings.Repeat("cd", 16)
	// A stranger at the workers' own address floods run A with bad tokens; the real
	// worker's heartbeats keep answering 200 throughout.
	limited := 0
	for i := range 200 {
		r := ts.post(runA, "heartbeat", bad, `{"step":1,"total_steps":10}`)
		switch r.status {
		case http.StatusUnauthorized:
		case http.StatusTooManyRequests:
			limited++
			if r.header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
		default:
			t.Fatalf("bad token %d: %d %s", i, r.status, r.body)
		}
		if i%10 == 0 {
			if r := ts.post(runA, "heartbeat", tokA, `{"step":1,"total_steps":10}`); r.status != http.StatusOK {
				t.Fatalf("real heartbeat after %d bad tokens: %d %s", i+1, r.status, r.body)
			}
		}
	}
	if limited != 200-60 {
		t.Fatalf("%d bad tokens were limited, want all but the first 60", limited)
	}
	// Failures on run A do not slow bad tokens on run B (keyed by address and run) ...
	if r := ts.post(runB, "heartbeat", bad, `{"step":1,"total_steps":10}`); r.status != http.StatusUnauthorized {
		t.Fatalf("run B after run A's flood: %d", r.status)
	}
	// ... but the address has a cap over all runs, which still never stops a valid token.
	for i := range 600 {
		ts.post(int64(1000+i/50), "heartbeat", bad, `{}`)
	}
	if r := ts.post(runB, "heartbeat", bad, `{}`); r.status != http.StatusTooManyRequests {
		t.Fatalf("address over its cap on all runs: %d", r.status)
	}
	if r := ts.post(runB, "heartbeat", tokB, `{"step":1,"total_steps":10}`); r.status != http.StatusOK {
		t.Fatalf("real heartbeat on run B: %d", r.status)
	}
	if r := ts.post(runA, "metrics", tokA, `{"points":[{"name":"loss","step":1,"value":1}]}`); r.status != http.StatusOK {
		t.Fatalf("real metrics: %d", r.status)
	}
}

func TestSignInThrottlesWithoutLockout(t *testing.T) {
	ts := newTestServer(t, Config{TrustProxy: true})
	ts.signUp("owner@example.com")
	from := func(ip, email, password string) response {
		return ts.do(ts.client(), "POST", "/signin", url.Values{"email": {email}, "password": {password}},
			map[string]string{"X-Forwarded-For": ip})
	}
	// 50 wrong guesses from ten addresses: each answered, none refused, each slower.
	for i := range 50 {
		if r := from(fmt.Sprintf("10.0.0.%d", i%10+1), "OWNER@example.com", fmt.Sprintf("guess %d", i)); r.status != http.StatusUnprocessableEntity {
			t.Fatalf("guess %d: %d", i+1, r.status)
		}
	}
	if d, n := ts.lastSleep(); d != signInMaxDelay || n != 50-signInSlowAfter {
		t.Fatalf("last wait %s after %d waits, want %s after %d", d, n, signInMaxDelay, 50-signInSlowAfter)
	}
	// The owner, from elsewhere, with the right password: signed in after the delay.
	r := from("192.0.2.7", "owner@example.com", testPassword)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/" {
		t.Fatalf("owner locked out: %d %s", r.status, r.body)
	}
	if d, n := ts.lastSleep(); d != signInMaxDelay || n != 50-signInSlowAfter+1 {
		t.Fatalf("the owner's sign-in waited %s (%d waits)", d, n)
	}
	// A success clears the account's failures: no more waiting.
	from("192.0.2.7", "owner@example.com", "one typo")
	if _, n := ts.lastSleep(); n != 50-signInSlowAfter+1 {
		t.Fatal("still slowed after a successful sign-in")
	}
	// The hard cap is per address: the 31st attempt in 15 minutes is refused outright,
	// even with the right password, and says when to come back.
	for i := range 30 {
		from("10.9.9.9", fmt.Sprintf("someone%d@example.com", i), "wrong guess")
	}
	r = from("10.9.9.9", "owner@example.com", testPassword)
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || !strings.Contains(r.body, "Too many attempts") {
		t.Fatalf("31st attempt from one address: %d Retry-After %q", r.status, r.header.Get("Retry-After"))
	}
	// The addresses of one IPv6 /64 share the cap.
	for i := range 30 {
		from(fmt.Sprintf("2001:db8:1:2::%x", i+1), "v6@example.com", "wrong guess")
	}
	if r := from("2001:db8:1:2:ffff::1", "owner@example.com", testPassword); r.status != http.StatusTooManyRequests {
		t.Fatalf("another address of the same /64: %d", r.status)
	}
	if r := from("2001:db8:1:3::1", "owner@example.com", testPassword); r.status != http.StatusSeeOther {
		t.Fatalf("the next /64: %d", r.status)
	}
}

func TestSignInDelayGrowsToItsCap(t *testing.T) {
	for failures, want := range map[int]time.Duration{0: 0, 4: 0, 5: 500 * time.Millisecond, 6: time.Second,
		7: 2 * time.Second, 8: 4 * time.Second, 9: 5 * time.Second, 1000: 5 * time.Second} {
		if got := signInDelay(failures); got != want {
			t.Errorf("signInDelay(%d) = %s, want %s", failures, got, want)
		}
	}
}

func TestLimiterEvictsOldestKeysWhenFull(t *testing.T) {
	now := time.Unix(0, 0)
	l := newLimiter(3, time.Hour, func() time.Time { return now })
	l.maxKeys = 100
	for i := range 100 {
		l.hit(fmt.Sprint("old-", i))
		now = now.Add(time.Second)
	}
	for range 3 {
		l.hit("attacker")
	}
	for i := range 50 {
		l.hit(fmt.Sprint("new-", i))
		now = now.Add(time.Second)
	}
	if b, _ := l.blocked("attacker"); !b {
		t.Fatal("filling the limiter unblocked a recent offender")
	}
	if n := len(l.hits); n > 100 {
		t.Fatalf("%d keys held, bound is 100", n)
	}
	if l.count("old-0") != 0 || l.count("new-49") != 1 || l.count("old-99") != 1 {
		t.Fatalf("evicted the wrong keys: old-0 %d, old-99 %d, new-49 %d", l.count("old-0"), l.count("old-99"), l.count("new-49"))
	}
}

func TestLimiterKeepsBoundedHitsPerKey(t *testing.T) {
	now := time.Unix(0, 0)
	l := newLimiter(10, time.Hour, func() time.Time { return now })
	for range 10_000 {
		l.hit("k")
		now = now.Add(time.Millisecond)
	}
	if n := len(l.hits["k"]); n != 10 {
		t.Fatalf("%d timestamps held for one key, want 10", n)
	}
	if b, _ := l.blocked("k"); !b {
		t.Fatal("not blocked")
	}
}

func TestLimitKeyGroupsIPv6By64(t *testing.T) {
	for ip, want := range map[string]string{
		"192.0.2.1":                 "192.0.2.1",
		"2001:db8:1:2:3:4:5:6":      "2001:db8:1:2::/64",
		"2001:db8:1:2::ffff":        "2001:db8:1:2::/64",
		"::ffff:192.0.2.1":          "::ffff:192.0.2.1",
		"not an address":            "not an address",
		"2001:db8:aaaa:bbbb:cccc::": "2001:db8:aaaa:bbbb::/64",
	} {
		if got := limitKey(ip); got != want {
			t.Errorf("limitKey(%q) = %q, want %q", ip, got, want)
		}
	}
}

func TestFormBodiesAreCapped(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("forms@example.com")
	big := strings.Repeat("x", maxFormBytes)
	for _, tc := range []struct {
		path string
		form url.Values
	}{
		{"/signin", url.Values{"email": {"forms@example.com"}, "password": {big}}},
		{"/signup", url.Values{"email": {"x@example.com"}, "password": {big}, "accept_terms": {"yes"}}},
		{"/runs", url.Values{"dataset_id": {"1"}, "base_model": {big}}},
		{"/settings/password", url.Values{"current_password": {big}, "new_password": {"whatever it is"}}},
	} {
		r := ts.do(c, "POST", tc.path, tc.form, nil)
		if r.status != http.StatusRequestEntityTooLarge || !strings.Contains(r.body, "at most 64 KiB") {
			t.Errorf("POST %s with a %d-byte body: %d", tc.path, len(tc.form.Encode()), r.status)
		}
	}
	// Just under the cap the form is read as usual.
	r := ts.do(ts.client(), "POST", "/signin", url.Values{"email": {"forms@example.com"}, "password": {big[:maxFormBytes-100]}}, nil)
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, badCredentials) {
		t.Fatalf("a form under the cap: %d", r.status)
	}
	// Dataset uploads keep their own, much larger cap.
	content := completionLines(4000)
	if len(content) < 2*maxFormBytes {
		t.Fatalf("test dataset is only %d bytes", len(content))
	}
	ts.datasetFor(c, content)
}

// hashCounter wraps the store's password-hashing calls and notes how many run at once.
type hashCounter struct {
	passwordStore
	now, peak atomic.Int64
}

func (h *hashCounter) track() func() {
	n := h.now.Add(1)
	for p := h.peak.Load(); n > p && !h.peak.CompareAndSwap(p, n); p = h.peak.Load() {
	}
	time.Sleep(30 * time.Millisecond) // hold the turn long enough for others to pile up
	return func() { h.now.Add(-1) }
}

func (h *hashCounter) Authenticate(ctx context.Context, email, password string) (store.User, error) {
	defer h.track()()
	return h.passwordStore.Authenticate(ctx, email, password)
}

func (h *hashCounter) CreateUser(ctx context.Context, nu store.NewUser) (store.User, error) {
	defer h.track()()
	return h.passwordStore.CreateUser(ctx, nu)
}

func TestPasswordHashingIsBounded(t *testing.T) {
	st, vault := storetest.OpenTemp(t)
	hc := &hashCounter{passwordStore: st}
	a := newApp(Deps{Store: st, SessionStore: st.Sessions(), Vault: vault,
		Logger: slog.New(slog.DiscardHandler), Runs: Runs{Backend: fakeBackend{}}, Config: Config{TrustProxy: true}})
	a.passwords = hc
	srv := httptest.NewServer(a.routes())
	defer srv.Close()

	var wg sync.WaitGroup
	statuses := make(chan int, 24)
	for i := range 24 {
		wg.Go(func() {
			path, form := "/signin", url.Values{"email": {fmt.Sprintf("p%d@example.com", i)}, "password": {"not the password"}}
			if i%2 == 0 {
				path, form = "/signup", signUpValues(fmt.Sprintf("p%d@example.com", i))
			}
			req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.1.0.%d", i)) // clear of the per-address caps
			resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		})
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusSeeOther && s != http.StatusUnprocessableEntity {
			t.Errorf("status %d", s)
		}
	}
	if p := hc.peak.Load(); p > maxConcurrentHashes || p < 2 {
		t.Fatalf("%d hashes ran at once, want 2 to %d", p, maxConcurrentHashes)
	}
}

package trainer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func testClient(t *testing.T, h http.HandlerFunc, patience time.Duration) (*client, *syncBuffer) {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	var log syncBuffer
	lw := &lineWriter{w: &log}
	c, err := newClient(WorkerOptions{Server: srv.URL, RunID: 3, Token: fakeToken, Patience: patience},
		func(format string, args ...any) { lw.line(fmt.Sprintf(format, args...)) })
	if err != nil {
		t.Fatal(err)
	}
	return c, &log
}

func TestClientDoesNotRetryClientErrors(t *testing.T) {
	var calls atomic.Int32
	c, _ := testClient(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		fakeError(w, http.StatusBadRequest, "invalid_field", "points[3].value must be a finite number")
	}, time.Minute)
	err := c.postJSON(context.Background(), "send metrics", "/metrics", map[string]int{"x": 1}, nil)
	if err == nil || !strings.Contains(err.Error(), "points[3].value must be a finite number") || retryable(err) {
		t.Errorf("err = %v, want the server's message, not retryable", err)
	}
	if calls.Load() != 1 {
		t.Errorf("%d calls, want 1", calls.Load())
	}
}

func TestClientRetriesBrokenConnections(t *testing.T) {
	var calls atomic.Int32
	c, log := testClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+fakeToken || r.URL.Path != "/api/v1/worker/runs/3/heartbeat" {
			t.Errorf("request %s with Authorization %q", r.URL.Path, r.Header.Get("Authorization"))
		}
		if calls.Add(1) == 1 {
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close() // as a restarting server would
			return
		}
		fakeJSON(w, http.StatusOK, map[string]bool{"cancel": true})
	}, time.Minute)
	var reply struct {
		Cancel bool `json:"cancel"`
	}
	if err := c.postJSON(context.Background(), "send a heartbeat", "/heartbeat", map[string]int{"step": 0}, &reply); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 2 || !reply.Cancel {
		t.Errorf("%d calls, reply %+v; want a retry that read the answer", calls.Load(), reply)
	}
	if !strings.Contains(log.String(), "send a heartbeat: could not reach the server") || strings.Contains(log.String(), fakeToken) {
		t.Errorf("operator log %q", log.String())
	}
}

func TestClientGivesUpAfterPatience(t *testing.T) {
	var calls atomic.Int32
	c, _ := testClient(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		fakeError(w, http.StatusServiceUnavailable, "internal", "Try again later.")
	}, 300*time.Millisecond)
	started := time.Now()
	err := c.getJSON(context.Background(), "get the job", "/job", &struct{}{})
	if err == nil || !strings.Contains(err.Error(), "gave up after") || !strings.Contains(err.Error(), "503") {
		t.Errorf("err = %v", err)
	}
	if calls.Load() < 2 || time.Since(started) > 3*time.Second {
		t.Errorf("%d calls in %v; want retries until about 300ms", calls.Load(), time.Since(started))
	}
}

func TestClientStopsRetryingWhenCancelled(t *testing.T) {
	c, _ := testClient(t, func(w http.ResponseWriter, r *http.Request) {
		fakeError(w, http.StatusTooManyRequests, "rate_limited", "Slow down.")
	}, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.getJSON(ctx, "get the job", "/job", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the context's", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"3":                             3 * time.Second,
		" 0 ":                           0,
		"-4":                            0,
		"soon":                          0,
		"99999999999":                   24 * time.Hour, // capped
		"Fri, 02 Jan 2026 03:04:15 GMT": 10 * time.Second,
		"Fri, 02 Jan 2026 03:00:00 GMT": 0,
	} {
		if got := parseRetryAfter(v, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestClientSendsTheTokenOnlyToItsServer(t *testing.T) {
	c, _ := testClient(t, func(http.ResponseWriter, *http.Request) {}, time.Minute)
	if u, err := c.resolve("/api/v1/worker/runs/3/dataset?which=eval"); err != nil || !strings.HasPrefix(u, c.server.String()) {
		t.Errorf("resolve(path) = %q, %v", u, err)
	}
	if _, err := c.resolve("https://elsewhere.example/dataset"); err == nil {
		t.Error("a dataset URL on another host was accepted")
	}
}

package gpu

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tunelab/store"
)

// newHTTPBackend is a backend for the provider whose waits between tries are recorded,
// not slept.
func newHTTPBackend(t *testing.T, url, token string, edit func(*HTTPConfig)) (*HTTPBackend, *[]time.Duration) {
	t.Helper()
	cfg := HTTPConfig{URL: url, Token: token, Image: "ghcr.io/example/tunelab:1", GPUTypes: []string{"a100"}, Slots: 2, Timeout: 2 * time.Second}
	if edit != nil {
		edit(&cfg)
	}
	h, err := NewHTTP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	waits := &[]time.Duration{}
	h.sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		*waits = append(*waits, d)
		mu.Unlock()
		return ctx.Err()
	}
	return h, waits
}

func a100Job(runID int64) Job {
	return Job{RunID: runID, ServerURL: "https://tunelab.example", Token: "0123456789abcdef0123456789abcdef", Config: store.RunConfig{GPUType: "a100"}}
}

func TestHTTPBackendSubmitsFollowsAndCancelsJobs(t *testing.T) {
	p, srv := newProvider(t)
	h, _ := newHTTPBackend(t, srv.URL, p.token, nil)
	ctx := context.Background()
	if err := h.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if o := h.Offer(); len(o.GPUTypes) != 1 || o.GPUTypes[0].Name != "NVIDIA A100 80GB" || !strings.Contains(o.GPUTypes[0].About, "3 free") || o.Slots != 2 {
		t.Fatalf("offer %+v", o)
	}
	id, err := h.Submit(ctx, a100Job(12))
	if err != nil {
		t.Fatal(err)
	}
	sub := p.jobs[id].submit
	if sub.Env[RunTokenEnv] != "0123456789abcdef0123456789abcdef" || sub.GPUType != "a100" || sub.Image != "ghcr.io/example/tunelab:1" ||
		!slices.Equal(sub.Command, []string{"tunelab", "worker", "--server", "https://tunelab.example", "--run", "12"}) {
		t.Fatalf("submitted %+v", sub)
	}
	if strings.Contains(strings.Join(sub.Command, " "), "0123456789abcdef") {
		t.Fatal("the run token is on the command line")
	}
	if st, err := h.Status(ctx, id); err != nil || st.State != JobRunning {
		t.Fatalf("status %+v %v", st, err)
	}
	if err := h.Cancel(ctx, id); err != nil {
		t.Fatal(err)
	}
	if st, _ := h.Status(ctx, id); st.State != JobExited || st.Detail != "the provider says the job cancelled: cancelled by the client" {
		t.Fatalf("after cancel %+v", st)
	}
	// A job the provider never heard of: cancelling it is not an error, its status unknown.
	if err := h.Cancel(ctx, "pj-404"); err != nil {
		t.Fatalf("cancel of an unknown job: %v", err)
	}
	if st, err := h.Status(ctx, "pj-404"); err != nil || st.State != JobUnknown {
		t.Fatalf("status of an unknown job %+v %v", st, err)
	}
}

func TestHTTPBackendRetriesServerErrorsWithBackoff(t *testing.T) {
	p, srv := newProvider(t)
	h, waits := newHTTPBackend(t, srv.URL, p.token, nil)
	p.fail5xx = 2
	id, err := h.Submit(context.Background(), a100Job(1))
	if err != nil || id == "" {
		t.Fatalf("submit after two 503s: %q %v", id, err)
	}
	if p.jobCount() != 1 || p.count("POST /v1/jobs") != 3 || !slices.Equal(*waits, []time.Duration{500 * time.Millisecond, time.Second}) {
		t.Fatalf("jobs %d, posts %d, waits %v", p.jobCount(), p.count("POST /v1/jobs"), *waits)
	}
	// A provider down for longer than the tries: the error says what it answered.
	p.fail5xx = 10
	_, err = h.Submit(context.Background(), a100Job(2))
	if err == nil || !strings.Contains(err.Error(), "503 unavailable: the scheduler is restarting") || !errors.Is(err, ErrBackend) {
		t.Fatalf("err %v", err)
	}
	if p.count("POST /v1/jobs") != 3+4 {
		t.Fatalf("%d posts, want 4 tries for the second submit", p.count("POST /v1/jobs")-3)
	}
}

func TestHTTPBackendRefusedTokenIsNotRetried(t *testing.T) {
	p, srv := newProvider(t)
	h, waits := newHTTPBackend(t, srv.URL, "wrong-token", nil)
	err := h.Refresh(context.Background())
	if err == nil || !strings.Contains(err.Error(), "401 unauthenticated") || strings.Contains(err.Error(), "wrong-token") {
		t.Fatalf("err %v", err)
	}
	if p.count("GET /v1/offer") != 1 || len(*waits) != 0 {
		t.Fatalf("a 401 was retried: %d requests", p.count("GET /v1/offer"))
	}
}

func TestHTTPBackendTimesOutASlowProvider(t *testing.T) {
	p, srv := newProvider(t)
	h, waits := newHTTPBackend(t, srv.URL, p.token, func(c *HTTPConfig) { c.Timeout = 50 * time.Millisecond; c.Attempts = 2 })
	p.delay = time.Minute // far past the timeout: the request is abandoned, not awaited
	_, err := h.Status(context.Background(), "pj-1")
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want a timeout", err)
	}
	if p.count("GET /v1/jobs/pj-1") != 2 || len(*waits) != 1 {
		t.Fatalf("%d tries, %d waits", p.count("GET /v1/jobs/pj-1"), len(*waits))
	}
}

func TestHTTPBackendLostSubmitReplyGetsTheSameJob(t *testing.T) {
	p, srv := newProvider(t)
	h, _ := newHTTPBackend(t, srv.URL, p.token, nil)
	p.dropReply = 1
	id, err := h.Submit(context.Background(), a100Job(7))
	if err != nil {
		t.Fatal(err)
	}
	if p.jobCount() != 1 || p.count("POST /v1/jobs") != 2 || id != "pj-1" {
		t.Fatalf("job %q; provider holds %d jobs after %d submits", id, p.jobCount(), p.count("POST /v1/jobs"))
	}
	// Another claim of the run (a new token) is a new job.
	j := a100Job(7)
	j.Token = "ffffffffffffffffffffffffffffffff"
	if id2, err := h.Submit(context.Background(), j); err != nil || id2 == id {
		t.Fatalf("a new claim got %q (%v)", id2, err)
	}
}

func TestHTTPBackendHealthNamesGPUTypesTheProviderLacks(t *testing.T) {
	p, srv := newProvider(t)
	h, _ := newHTTPBackend(t, srv.URL, p.token, func(c *HTTPConfig) { c.GPUTypes = []string{"a100", "h100"} })
	err := h.Refresh(context.Background())
	if err == nil || !strings.Contains(err.Error(), "does not offer h100") {
		t.Fatalf("err %v", err)
	}
	if _, err := NewHTTP(HTTPConfig{URL: "gpus.example", GPUTypes: []string{"a100"}}); err == nil || !strings.Contains(err.Error(), "http://") {
		t.Fatalf("a URL without scheme: %v", err)
	}
}

func TestHTTPJobLostByTheProviderFailsTheRunWithItsReason(t *testing.T) {
	f := newFixture(t)
	p, srv := newProvider(t)
	h, _ := newHTTPBackend(t, srv.URL, p.token, nil)
	d := f.dispatcher(h, nil)
	lost, unknown := f.queueGPU("http", "a100"), f.queueGPU("http", "a100")
	f.tick(d)
	r := f.wantStatus(lost, store.RunStarting, "")
	other := f.wantStatus(unknown, store.RunStarting, "")
	p.setJob(r.JobID, "failed", "host lost: spot instance reclaimed")
	p.mu.Lock()
	delete(p.jobs, other.JobID) // the provider forgot this one altogether
	p.mu.Unlock()
	f.tick(d)
	f.wantStatus(lost, store.RunFailed, "the worker process stopped before the run finished (the provider says the job failed: host lost: spot instance reclaimed)")
	f.wantStatus(unknown, store.RunFailed, "the worker process stopped before the run finished (the http backend no longer knows job "+other.JobID+")")
}

func TestQueuedRunsWaitWhileTheProviderIsUnreachable(t *testing.T) {
	f := newFixture(t)
	p, srv := newProvider(t)
	h, _ := newHTTPBackend(t, srv.URL, p.token, func(c *HTTPConfig) { c.RefreshEvery = time.Nanosecond })
	d := f.dispatcher(h, nil)
	id := f.queueGPU("http", "a100")
	p.mu.Lock()
	p.fail5xx = 4 // the offer fails all its tries
	p.mu.Unlock()
	f.tick(d)
	f.wantStatus(id, store.RunQueued, "")
	if p.count("POST /v1/jobs") != 0 {
		t.Fatal("a run was submitted to a provider that did not answer")
	}
	rep, _ := d.Report(f.ctx)
	if !strings.Contains(rep.Backends[0].Problem, "503") {
		t.Fatalf("report %+v", rep.Backends[0])
	}
	f.tick(d) // the provider answers again
	f.wantStatus(id, store.RunStarting, "")
}

package handlers

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tunelab/billing"
	"tunelab/gpu"
	"tunelab/store"
	"tunelab/store/storetest"
)

// testServer is the real handler over a real temporary SQLite file, with a clock the
// test can move.
type testServer struct {
	*httptest.Server
	t        testing.TB
	store    *store.Store
	logs     *lockedBuffer
	vaultDir string
	mu       sync.Mutex
	now      time.Time
	hub      *gpu.Hub
	wakes    atomic.Int64
	slept    []time.Duration // throttled sign-ins' waits, recorded instead of slept
}

// fakeBackend offers what the run form needs; handler tests drive runs through the store
// and the worker API themselves (the gpu package and the end-to-end tests cover real jobs).
type fakeBackend struct{}

func (fakeBackend) Name() string { return "local" }
func (fakeBackend) Offer() gpu.Offer {
	return gpu.Offer{
		Models:   []gpu.Model{{ID: "tunelab/byte-mlp-small", Name: "Byte MLP small"}, {ID: "tunelab/byte-mlp-base", Name: "Byte MLP base"}},
		Methods:  []store.Method{store.MethodLoRA, store.MethodDPO, store.MethodFull},
		GPUTypes: []gpu.GPUType{{ID: "cpu", Name: "This machine's CPU"}},
		Slots:    1,
		Defaults: gpu.Defaults{Epochs: 2, LearningRate: 3e-3, BatchSize: 16, LoRARank: 16, LoRAAlpha: 32, MaxSeqLen: 512, Seed: 42, ValidationSplit: 10},
	}
}
func (fakeBackend) Submit(context.Context, gpu.Job) (string, error) { return "", errors.New("fake") }
func (fakeBackend) Status(context.Context, string) (gpu.JobStatus, error) {
	return gpu.JobStatus{State: gpu.JobUnknown}, nil
}
func (fakeBackend) Cancel(context.Context, string) error { return nil }

// lockedBuffer collects the server's log lines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (ts *testServer) clock() time.Time {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.now
}

// sleep records a throttled sign-in's wait and returns at once.
func (ts *testServer) sleep(_ context.Context, d time.Duration) error {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.slept = append(ts.slept, d)
	return nil
}

// lastSleep is the latest recorded wait, and how many there were.
func (ts *testServer) lastSleep() (time.Duration, int) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if len(ts.slept) == 0 {
		return 0, 0
	}
	return ts.slept[len(ts.slept)-1], len(ts.slept)
}

func (ts *testServer) advance(d time.Duration) {
	ts.mu.Lock()
	ts.now = ts.now.Add(d)
	ts.mu.Unlock()
}

// cheap hashing keeps the many sign-ups fast; store tests cover the production cost.
var testArgon2 = storetest.CheapArgon2

func newTestServer(t testing.TB, cfg Config, storeOpts ...func(*store.Options)) *testServer {
	t.Helper()
	return newTestServerWith(t, cfg, nil, storeOpts...)
}

// newTestServerWith is newTestServer with a billing service made over its store (nil:
// billing off).
func newTestServerWith(t testing.TB, cfg Config, mkBilling func(*store.Store, func() time.Time) *billing.Service, storeOpts ...func(*store.Options)) *testServer {
	t.Helper()
	return newTestServerRuns(t, cfg, mkBilling, nil, storeOpts...)
}

// newTestServerRuns is newTestServerWith whose run machinery editRuns may change (a
// real dispatcher over fake backends).
func newTestServerRuns(t testing.TB, cfg Config, mkBilling func(*store.Store, func() time.Time) *billing.Service,
	editRuns func(*Runs, *store.Store, func() time.Time), storeOpts ...func(*store.Options)) *testServer {
	t.Helper()
	ts := &testServer{t: t, now: time.Now(), logs: &lockedBuffer{}}
	dir := t.TempDir()
	opts := store.Options{Argon2: testArgon2, Now: ts.clock}
	for _, o := range storeOpts {
		o(&opts)
	}
	st, vault := storetest.OpenDir(t, dir, opts)
	ts.store = st
	ts.vaultDir = filepath.Join(dir, storetest.VaultDir)
	ts.hub = gpu.NewHub()
	runs := Runs{Backend: fakeBackend{}, Hub: ts.hub, Wake: func() { ts.wakes.Add(1) }, HeartbeatInterval: 5 * time.Second, MaxSnapshotBytes: 1 << 20}
	if editRuns != nil {
		editRuns(&runs, st, ts.clock)
	}
	var bill *billing.Service
	if mkBilling != nil {
		bill = mkBilling(st, ts.clock)
	}
	h := New(Deps{Store: st, SessionStore: st.Sessions(), Vault: vault, Logger: slog.New(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Config: cfg, Runs: runs, Now: ts.clock, Sleep: ts.sleep, Billing: bill})
	ts.Server = httptest.NewServer(h)
	t.Cleanup(ts.Close) // before the store closes: cleanups run last first
	return ts
}

// client is a browser-like client with its own cookie jar that does not follow
// redirects, so tests see every 303.
func (ts *testServer) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

type response struct {
	status int
	header http.Header
	body   string
}

func (ts *testServer) do(c *http.Client, method, path string, form url.Values, headers map[string]string) response {
	ts.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, ts.URL+path, body)
	if err != nil {
		ts.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

const testPassword = "a quiet orange giraffe"

func signUpValues(email string) url.Values {
	return url.Values{"email": {email}, "password": {testPassword}, "accept_terms": {"yes"}}
}

// signUp creates an account and returns a client signed in as it.
func (ts *testServer) signUp(email string) *http.Client {
	ts.t.Helper()
	c := ts.client()
	r := ts.do(c, "POST", "/signup", signUpValues(email), nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/" {
		ts.t.Fatalf("sign up %s: status %d location %q\n%s", email, r.status, r.header.Get("Location"), r.body)
	}
	return c
}

// admin creates an admin account directly in the store and signs it in.
func (ts *testServer) admin(email string) *http.Client {
	ts.t.Helper()
	if _, err := ts.store.CreateUser(context.Background(), store.NewUser{Email: email, Password: testPassword, IsAdmin: true, TermsVersion: TermsVersion}); err != nil {
		ts.t.Fatal(err)
	}
	c := ts.client()
	if r := ts.do(c, "POST", "/signin", url.Values{"email": {email}, "password": {testPassword}}, nil); r.status != http.StatusSeeOther {
		ts.t.Fatalf("admin sign in: %d", r.status)
	}
	return c
}

func (ts *testServer) userCount() int {
	_, n, err := ts.store.ListUsers(context.Background(), 1)
	if err != nil {
		ts.t.Fatal(err)
	}
	return n
}

func sessionCookie(c *http.Client, rawURL string) string {
	u, _ := url.Parse(rawURL)
	for _, ck := range c.Jar.Cookies(u) {
		if strings.HasSuffix(ck.Name, "tunelab_session") {
			return ck.Value
		}
	}
	return ""
}

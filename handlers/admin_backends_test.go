package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"tunelab/gpu"
	"tunelab/store"
)

// clusterBackend offers a GPU the run form's fake local backend does not, and can be
// unhealthy.
type clusterBackend struct {
	fakeBackend
	down error
}

func (clusterBackend) Name() string { return "cluster" }
func (clusterBackend) Offer() gpu.Offer {
	o := fakeBackend{}.Offer()
	o.GPUTypes = []gpu.GPUType{{ID: "a100", Name: "NVIDIA A100"}}
	o.Slots = 2
	return o
}
func (b clusterBackend) Refresh(context.Context) error { return b.down }

// queueServer is a test server whose run machinery is a real dispatcher over the fake
// local backend (one slot) and an unreachable cluster.
func queueServer(t *testing.T) (*testServer, *gpu.Dispatcher) {
	var d *gpu.Dispatcher
	ts := newTestServerRuns(t, Config{}, nil, func(r *Runs, st *store.Store, now func() time.Time) {
		d = gpu.NewDispatcher(gpu.DispatcherConfig{Store: st, Logger: slog.New(slog.DiscardHandler), ServerURL: "http://x", Now: now,
			Backends: []gpu.Backend{fakeBackend{}, clusterBackend{down: errors.New("GET https://gpus.example/v1/offer: connection refused")}}})
		r.Backend, r.Queue = d.Pool(), d
	})
	return ts, d
}

func TestRunFormOffersEveryBackendsGPUTypesAndRoutes(t *testing.T) {
	ts, _ := queueServer(t)
	c := ts.signUp("ada@example.com")
	ds := ts.datasetFor(c, completionLines(12))
	form := ts.do(c, "GET", "/runs/new", nil, nil)
	if !strings.Contains(form.body, `value="a100"`) || !strings.Contains(form.body, `value="cpu"`) {
		t.Fatalf("the run form does not offer both backends' GPU types:\n%s", form.body)
	}
	if !strings.Contains(form.body, `<strong data-testid="backend">local or cluster</strong> backend`) {
		t.Fatalf("the run form does not say the run goes to one of the backends:\n%s", form.body)
	}
	v := runValues(ds)
	v.Set("gpu_type", "a100")
	id := ts.startRun(c, v)
	run, err := ts.store.RunByID(context.Background(), id)
	if err != nil || run.Backend != "cluster" {
		t.Fatalf("a100 run recorded on %q (%v)", run.Backend, err)
	}
	v.Set("gpu_type", "h100")
	r := ts.do(c, "POST", "/runs", v, nil)
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, "h100") {
		t.Fatalf("an unknown GPU type: %d\n%s", r.status, r.body)
	}
}

func TestRunPageShowsQueuePositionAndEstimate(t *testing.T) {
	ts, d := queueServer(t)
	c := ts.signUp("ada@example.com")
	ds := ts.datasetFor(c, completionLines(12))
	first, second := ts.startRun(c, runValues(ds)), ts.startRun(c, runValues(ds))
	page := ts.do(c, "GET", fmt.Sprint("/runs/", second), nil, nil)
	for _, want := range []string{"Position 2 in the queue: 1 run starts before it.", "Estimated start: in about 10 min", "an assumed 10 min a run"} {
		if !strings.Contains(page.body, want) {
			t.Fatalf("queued run page lacks %q:\n%s", want, page.body)
		}
	}
	page = ts.do(c, "GET", fmt.Sprint("/runs/", first), nil, nil)
	if !strings.Contains(page.body, "Next in the queue") || !strings.Contains(page.body, "Estimated start: now") {
		t.Fatalf("first run's page:\n%s", page.body)
	}
	_ = d
}

func TestAdminBackendsPageShowsHealthCapacityAndQueue(t *testing.T) {
	ts, d := queueServer(t)
	c := ts.signUp("ada@example.com")
	ds := ts.datasetFor(c, completionLines(12))
	v := runValues(ds)
	v.Set("gpu_type", "a100")
	ts.startRun(c, v)
	if got := ts.do(c, "GET", "/admin/backends", nil, nil); got.status != http.StatusForbidden && got.status != http.StatusNotFound {
		t.Fatalf("a member sees /admin/backends: %d", got.status)
	}
	admin := ts.admin("root@example.com")
	page := ts.do(admin, "GET", "/admin/backends", nil, nil)
	if page.status != http.StatusOK || !strings.Contains(page.body, "Not checked yet") || strings.Count(page.body, `data-testid="backend-row"`) != 2 {
		t.Fatalf("before a pass: %d\n%s", page.status, page.body)
	}
	_ = d.Reconcile(context.Background()) // checks health; claims nothing

	page = ts.do(admin, "GET", "/admin/backends", nil, nil)
	for _, want := range []string{"Healthy", "Unhealthy", "connection refused", "2 jobs at once", "1 job at once", "a100"} {
		if !strings.Contains(page.body, want) {
			t.Fatalf("admin backends page lacks %q:\n%s", want, page.body)
		}
	}
	if !strings.Contains(ts.do(admin, "GET", "/admin", nil, nil).body, `href="/admin/backends"`) {
		t.Fatal("the admin page does not link to the backends page")
	}
}

// httpish is a backend named http: the privacy policy names the remote provider.
type httpish struct{ clusterBackend }

func (httpish) Name() string { return "http" }

func TestPrivacyPolicyNamesTheRemoteProviderOnlyWithTheHTTPBackend(t *testing.T) {
	for _, tc := range []struct {
		backends []gpu.Backend
		want     []string
		not      string
	}{
		{[]gpu.Backend{fakeBackend{}}, []string{"Nobody outside this server", "this server itself"}, "remote GPU provider"},
		{[]gpu.Backend{fakeBackend{}, httpish{}}, []string{"A remote GPU provider the operator has chosen runs training jobs",
			"this server itself (worker processes on this machine) and a remote GPU provider the operator has chosen"}, "Nobody outside this server"},
	} {
		ts := newTestServerRuns(t, Config{}, nil, func(r *Runs, st *store.Store, now func() time.Time) {
			r.Backend = gpu.NewPool(tc.backends...)
		})
		page := ts.do(ts.client(), "GET", "/privacy", nil, nil).body
		for _, w := range tc.want {
			if !strings.Contains(page, w) {
				t.Errorf("%d backends: the privacy policy lacks %q", len(tc.backends), w)
			}
		}
		if strings.Contains(page, tc.not) {
			t.Errorf("%d backends: the privacy policy says %q", len(tc.backends), tc.not)
		}
	}
}

// The privacy policy names each outside party only when this server is set up to use it
// (a bare server: nobody; with billing: Stripe). The mail server and sign-in providers are
// checked on the view (views/legal_processors_test.go).
func TestPrivacyPolicyNamesOnlyConfiguredOutsideParties(t *testing.T) {
	bare := newTestServer(t, Config{})
	page := bare.do(bare.client(), "GET", "/privacy", nil, nil).body
	if !strings.Contains(page, `data-testid="legal-processors-none"`) || !strings.Contains(page, "mails stay on this server") {
		t.Fatalf("a server with no outside services: %s", page)
	}
	for _, no := range []string{"legal-processor-stripe", "legal-processor-mail", "legal-processor-signin"} {
		if strings.Contains(page, no) {
			t.Errorf("a server with no outside services names %s", no)
		}
	}
	billed := newBillingServer(t)
	page = billed.do(billed.client(), "GET", "/privacy", nil, nil).body
	if !strings.Contains(page, `data-testid="legal-processor-stripe"`) || strings.Contains(page, "legal-processors-none") {
		t.Fatalf("a server with billing does not name Stripe among who handles data: %s", page)
	}
}

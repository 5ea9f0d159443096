package billing

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tunelab/billing/stripemock"
	"tunelab/store"
)

// recorder sits between billing and stripe-mock: it records every meter event sent and
// can play an unreachable Stripe.
type recorder struct {
	*httptest.Server
	down   atomic.Bool
	mu     sync.Mutex
	events []url.Values
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	sm := stripemock.Shared(t)
	target, _ := url.Parse(sm.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	r := &recorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.down.Load() {
			http.Error(w, `{"error":{"message":"unavailable"}}`, http.StatusServiceUnavailable)
			return
		}
		if req.URL.Path == "/v1/billing/meter_events" {
			b, _ := io.ReadAll(req.Body)
			form, _ := url.ParseQuery(string(b))
			r.mu.Lock()
			r.events = append(r.events, form)
			r.mu.Unlock()
			req.Body = io.NopCloser(bytes.NewReader(b))
		}
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) sent() (ids []string, seconds int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		ids = append(ids, e.Get("identifier"))
		var v int64
		for _, c := range e.Get("payload[value]") {
			v = v*10 + int64(c-'0')
		}
		seconds += v
	}
	return ids, seconds
}

// meterFixture is a fixture whose Stripe is the recorder, with Ada subscribed.
func meterFixture(t *testing.T) (*fixture, *recorder) {
	t.Helper()
	rec := newRecorder(t)
	f := newFixtureAt(t, rec.URL)
	f.svc.sc = newStripeClientRetries(f.svc.cfg, 0)
	ctx := context.Background()
	f.st.SetStripeCustomer(ctx, f.ada.ID, "cus_ada")
	now := f.clock.now().Unix()
	if err := f.deliver(t, "evt_sub", "customer.subscription.created", now, subscriptionObject("sub_1", "cus_ada", "active", "price_pro_m", now)); err != nil {
		t.Fatal(err)
	}
	return f, rec
}

func (f *fixture) ledgerSeconds(t *testing.T, u store.User) int64 {
	t.Helper()
	runs, err := f.st.UsageBetween(context.Background(), u.ID, time.Time{}, f.clock.now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, r := range runs {
		n += r.Seconds
	}
	return n
}

func TestMeterSecondsSentEqualTheLedger(t *testing.T) {
	f, rec := meterFixture(t)
	ctx := context.Background()
	for _, secs := range []int{61, 3600, 7, 0} {
		f.run(t, f.ada, secs)
	}
	f.run(t, f.bob, 100) // no subscription: nothing to bill
	n, err := f.svc.SendDueMeterEvents(ctx)
	if err != nil || n != 3 {
		t.Fatalf("sent %d, %v; want the 3 non-empty rows", n, err)
	}
	ids, secs := rec.sent()
	if secs != f.ledgerSeconds(t, f.ada) || secs != 3668 {
		t.Fatalf("seconds sent %d, ledger %d", secs, f.ledgerSeconds(t, f.ada))
	}
	if len(ids) != 3 || ids[0] == ids[1] {
		t.Fatalf("identifiers %v", ids)
	}
	// Nothing is sent twice.
	if n, _ := f.svc.SendDueMeterEvents(ctx); n != 0 {
		t.Fatalf("second pass sent %d", n)
	}
	if ids2, _ := rec.sent(); len(ids2) != 3 {
		t.Fatalf("second pass re-sent: %v", ids2)
	}
	o, _ := f.st.MeterOutbox(ctx)
	if o.Sent != 3 || o.SentSeconds != 3668 || o.Free != 1 || o.Empty != 1 || o.Pending != 0 {
		t.Fatalf("outbox %+v", o)
	}
}

func TestMeterStripeUnreachableKeepsAndSendsLater(t *testing.T) {
	f, rec := meterFixture(t)
	ctx := context.Background()
	f.run(t, f.ada, 120)
	f.run(t, f.ada, 30)
	rec.down.Store(true)
	if n, err := f.svc.SendDueMeterEvents(ctx); n != 0 || err != nil {
		t.Fatalf("sent %d %v while Stripe is down", n, err)
	}
	o, _ := f.st.MeterOutbox(ctx)
	if o.Pending != 2 || o.PendingSeconds != 150 || o.LastError == "" {
		t.Fatalf("outbox while down: %+v", o)
	}
	rec.down.Store(false)
	if n, _ := f.svc.SendDueMeterEvents(ctx); n != 0 {
		t.Fatal("retried before the backoff")
	}
	f.clock.advance(backoff(1))
	if n, err := f.svc.SendDueMeterEvents(ctx); n != 2 || err != nil {
		t.Fatalf("after recovery sent %d %v", n, err)
	}
	if _, secs := rec.sent(); secs != 150 || secs != f.ledgerSeconds(t, f.ada) {
		t.Fatalf("seconds sent %d", secs)
	}
	if backoff(1) != 5*time.Second || backoff(3) != 20*time.Second || backoff(50) != 30*time.Minute {
		t.Fatalf("backoff %v %v %v", backoff(1), backoff(3), backoff(50))
	}
}

func TestMeterCrashBetweenSendAndRecordResendsTheSameIdentifier(t *testing.T) {
	f, rec := meterFixture(t)
	ctx := context.Background()
	f.run(t, f.ada, 42)
	crash := errors.New("killed")
	f.svc.afterSend = func(store.MeterEvent) error { return crash }
	if _, err := f.svc.SendDueMeterEvents(ctx); !errors.Is(err, crash) {
		t.Fatalf("err = %v", err)
	}
	// The restarted server sends the row again, under the same identifier.
	f.svc.afterSend = nil
	if n, err := f.svc.SendDueMeterEvents(ctx); n != 1 || err != nil {
		t.Fatalf("after restart sent %d %v", n, err)
	}
	ids, _ := rec.sent()
	if len(ids) != 2 || ids[0] != ids[1] || ids[0] != "run_1_1" {
		t.Fatalf("identifiers sent %v; a re-send must reuse the first", ids)
	}
}

func TestMeterUsageTooOldIsFlaggedNotDropped(t *testing.T) {
	f, rec := meterFixture(t)
	ctx := context.Background()
	f.clock.advance(-40 * 24 * time.Hour)
	f.run(t, f.ada, 90)
	f.clock.advance(40 * 24 * time.Hour)
	if n, err := f.svc.SendDueMeterEvents(ctx); n != 0 || err != nil {
		t.Fatalf("sent %d %v", n, err)
	}
	if ids, _ := rec.sent(); len(ids) != 0 {
		t.Fatalf("sent %v", ids)
	}
	if o, _ := f.st.MeterOutbox(ctx); o.TooOld != 1 || o.Pending != 0 {
		t.Fatalf("outbox %+v", o)
	}
}

// Usage that Stripe has not acknowledged for more than MeterBacklogAlert is logged as an
// error, at most once an hour, while it lasts.
func TestMeterBacklogPastSixHoursIsLogged(t *testing.T) {
	f, rec := meterFixture(t)
	var logs bytes.Buffer
	f.svc.log = slog.New(slog.NewTextHandler(&logs, nil))
	ctx := context.Background()
	f.run(t, f.ada, 120)
	rec.down.Store(true)
	f.svc.SendDueMeterEvents(ctx)
	warned := f.svc.WarnMeterBacklog(ctx, time.Time{})
	if !warned.IsZero() || strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("fresh usage was alerted on: %s", logs.String())
	}
	f.clock.advance(MeterBacklogAlert + time.Minute)
	warned = f.svc.WarnMeterBacklog(ctx, warned)
	if warned.IsZero() || strings.Count(logs.String(), "level=ERROR") != 1 || !strings.Contains(logs.String(), "gpu_seconds=120") {
		t.Fatalf("usage waiting past 6 h: %s", logs.String())
	}
	f.clock.advance(30 * time.Minute)
	warned = f.svc.WarnMeterBacklog(ctx, warned)
	f.clock.advance(31 * time.Minute)
	f.svc.WarnMeterBacklog(ctx, warned)
	if n := strings.Count(logs.String(), "level=ERROR"); n != 2 {
		t.Fatalf("%d alerts in 61 minutes past the first, want one more an hour later", n)
	}
}

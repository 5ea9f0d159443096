package handlers

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"tunelab/billing"
	"tunelab/billing/stripemock"
	"tunelab/gpu"
	"tunelab/store"
	"tunelab/trainer/protocol"
)

// gpuDeployment is a Pro subscriber's GPU deployment under billing, with its worker's
// token.
type gpuDeployment struct {
	ts        *testServer
	c         *http.Client
	acct      store.BillingAccount
	uid       int64
	runID     int64
	snapshot  int64
	deploy    store.Deployment
	workerTok string
}

// newGPUDeployment subscribes email to Pro (grace: how long new runs still start after a
// failed payment; 0 the default), runs before, then deploys a stored GPU snapshot.
func newGPUDeployment(t *testing.T, email string, grace time.Duration, before func(ts *testServer, c *http.Client)) *gpuDeployment {
	t.Helper()
	sm := stripemock.Shared(t)
	plans, err := billing.ParsePlans([]byte(testPlans))
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServerRuns(t, Config{}, func(st *store.Store, now func() time.Time) *billing.Service {
		return billing.New(billing.Config{Store: st, Plans: plans, BaseURL: "http://tunelab.test", Now: now, Grace: grace,
			Stripe: billing.StripeConfig{SecretKey: "sk_test_123", WebhookSecret: testWebhookSecret, APIURL: sm.URL}})
	}, func(r *Runs, _ *store.Store, _ func() time.Time) { r.Backend = gpuOfferBackend{} })
	ctx := context.Background()
	c, acct, _ := ts.proSubscriber(email)
	before(ts, c)
	sid := ts.storedSnapshot(t, c, "Qwen/Qwen2.5-0.5B", append([]byte("PK\x03\x04"), bytes.Repeat([]byte("a"), 64)...), "application/zip")
	uid := ts.userByEmail(email).ID
	sn, _ := ts.store.PlaygroundSnapshotByID(ctx, uid, sid)
	if r := ts.do(c, "POST", fmt.Sprintf("/runs/%d/snapshots/%d/deploy", sn.RunID, sid), nil, nil); r.status != http.StatusSeeOther {
		t.Fatalf("deploy: %d", r.status)
	}
	deps, _ := ts.store.Deployments(ctx, uid)
	token, hash := gpu.NewRunToken()
	ts.store.SetDeploymentToken(ctx, deps[0].ID, hash)
	return &gpuDeployment{ts: ts, c: c, acct: acct, uid: uid, runID: sn.RunID, snapshot: sid, deploy: deps[0], workerTok: token}
}

// beat sends the worker's heartbeat and reports whether the server asked it to stop.
func (g *gpuDeployment) beat(t *testing.T) bool {
	t.Helper()
	var rep protocol.ServeHeartbeatReply
	wantAnswer(t, "heartbeat", g.ts.workerCall("POST", fmt.Sprintf("%s%d/heartbeat", protocol.DeployPathPrefix, g.deploy.ID), g.workerTok,
		strings.NewReader(`{"url":"http://127.0.0.1:9","healthy":true,"detail":""}`), nil), http.StatusOK, &rep)
	return rep.Stop
}

// A GPU deployment counts against the monthly cap like a running run, its time not yet in
// the ledger included: its heartbeat says stop once the cap is reached, and the
// Deployments page says why.
func TestMonthlyCapStopsAGPUDeployment(t *testing.T) {
	g := newGPUDeployment(t, "cap-deploy@example.com", 0, func(ts *testServer, c *http.Client) {
		if r := ts.do(c, "POST", "/billing/cap", url.Values{"monthly_cap_usd": {"0.10"}}, nil); r.status != http.StatusSeeOther {
			t.Fatalf("set cap: %d", r.status)
		}
	})
	ts, c := g.ts, g.c
	g.beat(t)
	// 600 s included, then $0.000125 a second: $0.10 is reached at 1400 s.
	ts.advance(1390 * time.Second)
	if g.beat(t) {
		t.Fatal("stopped under the cap")
	}
	ts.advance(20 * time.Second)
	if !g.beat(t) {
		t.Fatal("not stopped at the monthly cap")
	}
	if r := ts.do(c, "GET", "/deployments", nil, nil); !strings.Contains(r.body, ">Stopping<") || !strings.Contains(r.body, "Stopped at your monthly cap of $0.10") {
		t.Fatalf("the page does not say the cap stopped it:\n%s", r.body)
	}
	// Past the cap, deploying again on a GPU is refused like a new run.
	ts.workerCall("POST", fmt.Sprintf("%s%d/finish", protocol.DeployPathPrefix, g.deploy.ID), g.workerTok, strings.NewReader(`{"status":"stopped","reason":""}`), nil)
	if r := ts.do(c, "POST", fmt.Sprintf("/runs/%d/snapshots/%d/deploy", g.runID, g.snapshot), nil, nil); r.status != http.StatusPaymentRequired || !strings.Contains(r.body, "monthly cap") {
		t.Fatalf("deploying past the cap: %d", r.status)
	}
	if deps, _ := ts.store.Deployments(context.Background(), g.uid); len(deps) != 1 {
		t.Fatalf("a deployment was recorded past the cap: %d", len(deps))
	}
}

// A failed payment stops a GPU deployment once the grace period ends, as it stops a
// running run (the terms say so), and the Deployments page says why.
func TestFailedPaymentStopsAGPUDeploymentAfterTheGrace(t *testing.T) {
	g := newGPUDeployment(t, "late-deploy@example.com", 30*time.Minute, func(*testServer, *http.Client) {})
	g.beat(t)
	inv := map[string]any{"id": "in_1", "object": "invoice", "customer": g.acct.CustomerID}
	g.ts.webhook(testWebhookSecret, time.Now(), "evt_f", "invoice.payment_failed", g.ts.clock().Unix(), inv)
	g.ts.advance(20 * time.Minute)
	if g.beat(t) {
		t.Fatal("stopped during the grace period")
	}
	g.ts.advance(11 * time.Minute)
	if !g.beat(t) {
		t.Fatal("not stopped once the grace period ended")
	}
	if r := g.ts.do(g.c, "GET", "/deployments", nil, nil); !strings.Contains(r.body, ">Stopping<") || !strings.Contains(r.body, "grace period has ended") {
		t.Fatalf("the page does not say the failed payment stopped it:\n%s", r.body)
	}
}

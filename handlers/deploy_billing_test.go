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

// A GPU deployment counts against the monthly cap like a running run, its time not yet in
// the ledger included: its heartbeat says stop once the cap is reached, and the
// Deployments page says why.
func TestMonthlyCapStopsAGPUDeployment(t *testing.T) {
	sm := stripemock.Shared(t)
	plans, err := billing.ParsePlans([]byte(testPlans))
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServerRuns(t, Config{}, func(st *store.Store, now func() time.Time) *billing.Service {
		return billing.New(billing.Config{Store: st, Plans: plans, BaseURL: "http://tunelab.test", Now: now,
			Stripe: billing.StripeConfig{SecretKey: "sk_test_123", WebhookSecret: testWebhookSecret, APIURL: sm.URL}})
	}, func(r *Runs, _ *store.Store, _ func() time.Time) { r.Backend = gpuOfferBackend{} })
	ctx := context.Background()
	const email = "cap-deploy@example.com"
	c, _, _ := ts.proSubscriber(email)
	if r := ts.do(c, "POST", "/billing/cap", url.Values{"monthly_cap_usd": {"0.10"}}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("set cap: %d", r.status)
	}
	sid := ts.storedSnapshot(t, c, "Qwen/Qwen2.5-0.5B", append([]byte("PK\x03\x04"), bytes.Repeat([]byte("a"), 64)...), "application/zip")
	uid := ts.userByEmail(email).ID
	sn, _ := ts.store.PlaygroundSnapshotByID(ctx, uid, sid)
	if r := ts.do(c, "POST", fmt.Sprintf("/runs/%d/snapshots/%d/deploy", sn.RunID, sid), nil, nil); r.status != http.StatusSeeOther {
		t.Fatalf("deploy: %d", r.status)
	}
	deps, _ := ts.store.Deployments(ctx, uid)
	d := deps[0]
	token, hash := gpu.NewRunToken()
	ts.store.SetDeploymentToken(ctx, d.ID, hash)
	beat := func() bool {
		t.Helper()
		var rep protocol.ServeHeartbeatReply
		wantAnswer(t, "heartbeat", ts.workerCall("POST", fmt.Sprintf("%s%d/heartbeat", protocol.DeployPathPrefix, d.ID), token,
			strings.NewReader(`{"url":"http://127.0.0.1:9","healthy":true,"detail":""}`), nil), http.StatusOK, &rep)
		return rep.Stop
	}
	beat()
	// 600 s included, then $0.000125 a second: $0.10 is reached at 1400 s.
	ts.advance(1390 * time.Second)
	if beat() {
		t.Fatal("stopped under the cap")
	}
	ts.advance(20 * time.Second)
	if !beat() {
		t.Fatal("not stopped at the monthly cap")
	}
	if r := ts.do(c, "GET", "/deployments", nil, nil); !strings.Contains(r.body, ">Stopping<") || !strings.Contains(r.body, "Stopped at your monthly cap of $0.10") {
		t.Fatalf("the page does not say the cap stopped it:\n%s", r.body)
	}
	// Past the cap, deploying again on a GPU is refused like a new run.
	ts.workerCall("POST", fmt.Sprintf("%s%d/finish", protocol.DeployPathPrefix, d.ID), token, strings.NewReader(`{"status":"stopped","reason":""}`), nil)
	if r := ts.do(c, "POST", fmt.Sprintf("/runs/%d/snapshots/%d/deploy", sn.RunID, sid), nil, nil); r.status != http.StatusPaymentRequired || !strings.Contains(r.body, "monthly cap") {
		t.Fatalf("deploying past the cap: %d", r.status)
	}
	if deps, _ := ts.store.Deployments(ctx, uid); len(deps) != 1 {
		t.Fatalf("a deployment was recorded past the cap: %d", len(deps))
	}
}

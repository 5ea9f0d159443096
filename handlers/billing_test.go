package handlers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"tunelab/billing"
	"tunelab/billing/stripemock"
	"tunelab/gpu"
	"tunelab/store"
	"tunelab/trainer/protocol"
)

func TestMain(m *testing.M) {
	code := m.Run()
	stripemock.Stop()
	os.Exit(code)
}

const (
	testWebhookSecret = "whsec_handlers_test"
	testPlans         = `{
  "plans": [
    {"id": "pro", "name": "Pro", "monthly_usd": "29", "annual_usd": "290",
     "stripe_monthly_price": "price_pro_m", "stripe_annual_price": "price_pro_y",
     "included_gpu_seconds": 600, "usd_per_gpu_second": {"cpu": "0.000125"},
     "stripe_monthly_metered_prices": {"cpu": "price_cpu_m"}, "stripe_annual_metered_prices": {"cpu": "price_cpu_y"}}
  ],
  "stripe_meter_events": {"cpu": "tunelab_gpu_seconds_cpu"}
}`
)

// newBillingServer is a test server with billing on, against the shared stripe-mock.
func newBillingServer(t *testing.T) *testServer {
	t.Helper()
	return newBillingServerGrace(t, 0)
}

// newBillingServerGrace is newBillingServer with a grace period after a failed payment
// (sessions last at most a day, so tests that pass the grace period use a short one).
func newBillingServerGrace(t *testing.T, grace time.Duration) *testServer {
	t.Helper()
	sm := stripemock.Shared(t)
	plans, err := billing.ParsePlans([]byte(testPlans))
	if err != nil {
		t.Fatal(err)
	}
	if err := plans.CheckGPUTypes([]string{"cpu"}); err != nil {
		t.Fatal(err)
	}
	return newTestServerWith(t, Config{}, func(st *store.Store, now func() time.Time) *billing.Service {
		return billing.New(billing.Config{Store: st, Plans: plans, BaseURL: "http://tunelab.test", Now: now, Grace: grace,
			Stripe: billing.StripeConfig{SecretKey: "sk_test_123", WebhookSecret: testWebhookSecret, APIURL: sm.URL}})
	})
}

func (ts *testServer) userByEmail(email string) store.User {
	ts.t.Helper()
	users, _, _ := ts.store.ListUsers(context.Background(), 100)
	for _, u := range users {
		if u.Email == email {
			return u
		}
	}
	ts.t.Fatalf("no user %s", email)
	return store.User{}
}

// finishedRun gives the person a run that used secs GPU seconds, through the store.
func (ts *testServer) finishedRun(c *http.Client, secs int) int64 {
	ts.t.Helper()
	ctx := context.Background()
	id := ts.startRun(c, runValues(ts.datasetFor(c, completionLines(20))))
	h := sha256.Sum256([]byte(fmt.Sprint("tok", id)))
	if _, ok, err := ts.store.ClaimQueuedRun(ctx, "local", h[:]); !ok || err != nil {
		ts.t.Fatalf("claim: %v %v", ok, err)
	}
	ts.store.Heartbeat(ctx, id, 0, 10)
	ts.advance(time.Duration(secs) * time.Second)
	if _, err := ts.store.FinishRun(ctx, id, store.RunSucceeded, "", ts.clock()); err != nil {
		ts.t.Fatal(err)
	}
	return id
}

// proSubscriber signs email up and subscribes it to Pro, monthly, as Stripe would: Checkout,
// then the customer.subscription.created webhook. It returns the person's client, billing
// account and the webhook's time.
func (ts *testServer) proSubscriber(email string) (*http.Client, store.BillingAccount, int64) {
	ts.t.Helper()
	c := ts.signUp(email)
	ts.do(c, "POST", "/billing/checkout", url.Values{"plan": {"pro"}, "interval": {"monthly"}}, nil)
	acct, err := ts.store.BillingAccount(context.Background(), ts.userByEmail(email).ID)
	if err != nil {
		ts.t.Fatal(err)
	}
	now := ts.clock().Unix()
	ts.webhook(testWebhookSecret, time.Now(), "evt_s", "customer.subscription.created", now, subscription("sub_1", acct.CustomerID, "active", "price_pro_m", now))
	return c, acct, now
}

// webhook posts a signed Stripe event the way Stripe does: no cookie, no Origin.
func (ts *testServer) webhook(secret string, signedAt time.Time, id, typ string, created int64, object any) response {
	ts.t.Helper()
	raw, _ := json.Marshal(object)
	body, _ := json.Marshal(map[string]any{"id": id, "object": "event", "type": typ, "created": created,
		"api_version": stripe.APIVersion, "data": map[string]any{"object": json.RawMessage(raw)}})
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: signedAt})
	req, _ := http.NewRequest("POST", ts.URL+"/stripe/webhook", strings.NewReader(string(sp.Payload)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", sp.Header)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	fmt.Fprint(&b, resp.Status)
	return response{status: resp.StatusCode, header: resp.Header, body: b.String()}
}

func subscription(id, customer, status, price string, start int64) map[string]any {
	return map[string]any{"id": id, "object": "subscription", "customer": customer, "status": status,
		"current_period_start": start, "current_period_end": start + 30*86400,
		"items": map[string]any{"object": "list", "data": []any{
			map[string]any{"id": "si_1", "object": "subscription_item", "price": map[string]any{"id": price, "object": "price"}}}}}
}

func TestBillingOffSaysEveryRunIsFree(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("off@example.com")
	ts.finishedRun(c, 90)
	r := ts.do(c, "GET", "/billing", nil, nil)
	for _, want := range []string{`data-testid="billing-off"`, "every run is free", "1 min 30 s", "$0.00"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("billing page lacks %q", want)
		}
	}
	for _, never := range []string{`data-testid="plans"`, "/billing/checkout", "manage-billing", `data-testid="invoices"`} {
		if strings.Contains(r.body, never) {
			t.Errorf("billing page offers %q while billing is off", never)
		}
	}
	if r := ts.do(c, "POST", "/billing/checkout", url.Values{"plan": {"pro"}, "interval": {"monthly"}}, nil); r.status != http.StatusNotFound {
		t.Errorf("checkout with billing off: %d", r.status)
	}
	if r := ts.webhook(testWebhookSecret, time.Now(), "evt_1", "invoice.paid", 1, map[string]any{}); r.status != http.StatusNotFound {
		t.Errorf("webhook with billing off: %d", r.status)
	}
}

func TestBillingCheckoutAndPortalRedirectToStripe(t *testing.T) {
	ts := newBillingServer(t)
	c := ts.signUp("pay@example.com")
	r := ts.do(c, "GET", "/billing", nil, nil)
	for _, want := range []string{`data-testid="plan-pro"`, "$29", "/ month", `name="interval" value="monthly"`, `data-testid="plan-current"`, "Free"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("billing page lacks %q", want)
		}
	}
	if strings.Contains(r.body, "manage-billing") {
		t.Error("the portal is offered before there is a customer")
	}
	if r := ts.do(c, "GET", "/billing?interval=annual", nil, nil); !strings.Contains(r.body, "$290") || !strings.Contains(r.body, `name="interval" value="annual"`) {
		t.Error("the annual toggle does not show annual prices")
	}
	// No card field anywhere on the page: Checkout collects it.
	for _, never := range []string{"card_number", "cc-number", `autocomplete="cc-`} {
		if strings.Contains(r.body, never) {
			t.Errorf("the billing page has a card field (%q)", never)
		}
	}
	if r := ts.do(c, "POST", "/billing/portal", url.Values{}, nil); r.status != http.StatusBadRequest {
		t.Errorf("portal without a customer: %d", r.status)
	}
	r = ts.do(c, "POST", "/billing/checkout", url.Values{"plan": {"pro"}, "interval": {"annual"}}, nil)
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "https://checkout.stripe.com/") {
		t.Fatalf("checkout: %d %q", r.status, r.header.Get("Location"))
	}
	for _, bad := range []url.Values{{"plan": {"free"}, "interval": {"monthly"}}, {"plan": {"pro"}, "interval": {"weekly"}}, {"plan": {"gold"}}} {
		if r := ts.do(c, "POST", "/billing/checkout", bad, nil); r.status != http.StatusBadRequest {
			t.Errorf("checkout %v: %d", bad, r.status)
		}
	}
	checkoutURL := r.header.Get("Location")
	r = ts.do(c, "POST", "/billing/portal", url.Values{}, nil)
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "https://") {
		t.Fatalf("portal: %d %q", r.status, r.header.Get("Location"))
	}
	// Browsers check a form's redirect against form-action: the billing page allows Stripe's
	// hosted Checkout and portal (billing.stripe.com; stripe-mock's portal fixture has a
	// development host instead).
	csp := ts.do(c, "GET", "/billing", nil, nil).header.Get("Content-Security-Policy")
	u, _ := url.Parse(checkoutURL)
	if !strings.Contains(csp, "form-action 'self' https://"+u.Host+" https://billing.stripe.com") {
		t.Errorf("the billing page's CSP does not let its forms reach Stripe: %s", csp)
	}
	if strings.Contains(ts.logs.String(), r.header.Get("Location")) {
		t.Error("the portal URL, a bearer credential, was logged")
	}
	// A cross-site form cannot start a checkout.
	if r := ts.do(c, "POST", "/billing/checkout", url.Values{"plan": {"pro"}, "interval": {"monthly"}}, map[string]string{"Sec-Fetch-Site": "cross-site"}); r.status != http.StatusForbidden {
		t.Errorf("cross-site checkout: %d", r.status)
	}
	// Signed out: to the sign-in page.
	if r := ts.do(ts.client(), "POST", "/billing/checkout", url.Values{"plan": {"pro"}, "interval": {"monthly"}}, nil); r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/signin") {
		t.Errorf("signed-out checkout: %d %q", r.status, r.header.Get("Location"))
	}
}

func TestStripeWebhookEndpoint(t *testing.T) {
	ts := newBillingServer(t)
	c := ts.signUp("hook@example.com")
	ts.do(c, "POST", "/billing/checkout", url.Values{"plan": {"pro"}, "interval": {"monthly"}}, nil)
	u := ts.userByEmail("hook@example.com")
	acct, _ := ts.store.BillingAccount(context.Background(), u.ID)
	cus := acct.CustomerID
	now := time.Now().Unix()
	sub := subscription("sub_1", cus, "active", "price_pro_m", now-60)

	if r := ts.webhook("whsec_wrong", time.Now(), "evt_a", "customer.subscription.created", now, sub); r.status != http.StatusBadRequest {
		t.Fatalf("bad signature: %d", r.status)
	}
	if r := ts.webhook(testWebhookSecret, time.Now().Add(-10*time.Minute), "evt_a", "customer.subscription.created", now, sub); r.status != http.StatusBadRequest {
		t.Fatalf("stale signature: %d", r.status)
	}
	if a, _ := ts.store.BillingAccount(context.Background(), u.ID); a.SubscriptionStatus != "" {
		t.Fatalf("a rejected webhook changed the account: %+v", a)
	}
	if !strings.Contains(ts.logs.String(), "stripe webhook signature failure") {
		t.Error("signature failures are not logged")
	}
	for range 2 {
		if r := ts.webhook(testWebhookSecret, time.Now(), "evt_a", "customer.subscription.created", now, sub); r.status != http.StatusOK {
			t.Fatalf("good webhook: %d", r.status)
		}
	}
	// Subscribed: a second Checkout is refused (two subscriptions would bill twice); the
	// other plans switch through the portal.
	if r := ts.do(c, "POST", "/billing/checkout", url.Values{"plan": {"pro"}, "interval": {"annual"}}, nil); r.status != http.StatusConflict {
		t.Errorf("second checkout: %d", r.status)
	}
	ts.finishedRun(c, 3000) // 2400 s past the 600 included, at $0.000125
	r := ts.do(c, "GET", "/billing", nil, nil)
	for _, want := range []string{`data-testid="plan-name">Pro<`, "Monthly", "Active", "manage-billing", "$0.30", "Your plan", `data-testid="invoice"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("subscribed billing page lacks %q", want)
		}
	}
	// The operator sees the usage waiting in the metering outbox (no sender runs here).
	adminPage := ts.do(ts.admin("ops@example.com"), "GET", "/admin", nil, nil).body
	if !strings.Contains(adminPage, `data-testid="outbox-pending">1 row, 50 min 00 s<`) {
		t.Errorf("admin page lacks the pending outbox row")
	}
	// The reconciliation flags the month: 50 min in the ledger, none acknowledged yet.
	for _, want := range []string{`data-testid="reconcile-ledger">50 min 00 s<`, `data-testid="reconcile-sent">0 s<`,
		"50 min 00 s not acknowledged", `data-testid="reconcile-detail">50 min 00 s waiting to send<`} {
		if !strings.Contains(adminPage, want) {
			t.Errorf("admin reconciliation lacks %q", want)
		}
	}
	// Another person sees none of it: their own plan, no runs, no invoices, no portal.
	other := ts.signUp("other@example.com")
	r = ts.do(other, "GET", "/billing", nil, nil)
	for _, never := range []string{`data-testid="billing-run"`, `data-testid="invoice"`, "manage-billing", "$0.30"} {
		if strings.Contains(r.body, never) {
			t.Errorf("another person's billing page shows %q", never)
		}
	}
	if r := ts.do(other, "POST", "/billing/portal", url.Values{}, nil); r.status != http.StatusBadRequest {
		t.Errorf("another person's portal: %d", r.status)
	}
	// A payment failure shows on the page; paying clears it.
	inv := map[string]any{"id": "in_1", "object": "invoice", "customer": cus}
	ts.webhook(testWebhookSecret, time.Now(), "evt_f", "invoice.payment_failed", now+10, inv)
	if r := ts.do(c, "GET", "/billing", nil, nil); !strings.Contains(r.body, `data-testid="payment-failed"`) {
		t.Error("a failed payment is not shown")
	}
	ts.webhook(testWebhookSecret, time.Now(), "evt_p", "invoice.paid", now+20, inv)
	if r := ts.do(c, "GET", "/billing", nil, nil); strings.Contains(r.body, `data-testid="payment-failed"`) {
		t.Error("paying did not clear the failure")
	}
}

func TestFailedPaymentBannerAndPausedRuns(t *testing.T) {
	ts := newBillingServerGrace(t, 30*time.Minute)
	const email = "late@example.com"
	c, acct, now := ts.proSubscriber(email)
	ds := ts.datasetFor(c, completionLines(20))
	inv := map[string]any{"id": "in_1", "object": "invoice", "customer": acct.CustomerID}
	ts.webhook(testWebhookSecret, time.Now(), "evt_f", "invoice.payment_failed", now, inv)
	// The banner is on every page; runs still start during the grace period.
	for _, path := range []string{"/", "/runs", "/datasets", "/settings"} {
		if r := ts.do(c, "GET", path, nil, nil); !strings.Contains(r.body, `data-testid="billing-banner"`) {
			t.Errorf("%s lacks the failed-payment banner", path)
		}
	}
	first := ts.startRun(c, runValues(ds))
	// After the grace period: the form says why and links to billing; POST /runs is refused.
	ts.advance(30 * time.Minute)
	if r := ts.do(c, "GET", "/runs/new", nil, nil); !strings.Contains(r.body, `data-testid="run-blocked"`) || !strings.Contains(r.body, "grace period has ended") {
		t.Error("the run form does not say runs are paused")
	}
	before := ts.runCount(email)
	if r := ts.do(c, "POST", "/runs", runValues(ds), nil); r.status != http.StatusPaymentRequired || !strings.Contains(r.body, "Manage card and invoices") {
		t.Errorf("POST /runs while paused: %d", r.status)
	}
	if r := ts.do(c, "POST", fmt.Sprintf("/runs/%d/retry", first), url.Values{}, nil); r.status != http.StatusPaymentRequired {
		t.Errorf("retry while paused: %d", r.status)
	}
	if ts.runCount(email) != before {
		t.Fatal("a run was queued while paused")
	}
	// Paying lifts it at once.
	ts.webhook(testWebhookSecret, time.Now(), "evt_p", "invoice.paid", ts.clock().Unix(), inv)
	ts.startRun(c, runValues(ds))
	if r := ts.do(c, "GET", "/runs", nil, nil); strings.Contains(r.body, `data-testid="billing-banner"`) {
		t.Error("the banner outlived the payment")
	}
}

func TestRunFormEstimatesTimeAndCost(t *testing.T) {
	ts := newBillingServer(t)
	c := ts.signUp("estimate@example.com")
	ds := ts.datasetFor(c, completionLines(20))
	r := ts.do(c, "GET", "/runs/new", nil, nil)
	if !strings.Contains(r.body, `data-testid="run-estimate"`) || !strings.Contains(r.body, "a default speed") || !strings.Contains(r.body, "Covered by your included time (Free)") {
		t.Fatalf("the run form has no estimate:\n%s\n%s", r.body, ts.logs.String())
	}
	est := func(epochs string) string {
		r := ts.do(c, "GET", "/runs/estimate?"+url.Values{"dataset_id": {ds}, "epochs": {epochs}, "base_model": {"tunelab/byte-mlp-small"}, "gpu_type": {"cpu"}}.Encode(), nil, map[string]string{"HX-Request": "true"})
		if r.status != http.StatusOK {
			t.Fatalf("estimate: %d", r.status)
		}
		return r.body
	}
	one, three := est("1"), est("3")
	if one == three || !strings.Contains(three, "× 3 epochs") {
		t.Fatalf("the estimate does not follow the epochs:\n%s\n%s", one, three)
	}
	if strings.Contains(est("0"), "estimate-time") {
		t.Error("an estimate for 0 epochs")
	}
	// Another person's dataset id gives no estimate (and says nothing about it).
	other := ts.signUp("other-estimate@example.com")
	if r := ts.do(other, "GET", "/runs/estimate?dataset_id="+ds+"&epochs=2", nil, nil); strings.Contains(r.body, "estimate-time") {
		t.Error("an estimate from another person's dataset")
	}
	// Once a run of the model finished, its measured speed is used.
	id := ts.finishedRun(c, 10)
	if body := est("1"); !strings.Contains(body, "measured on 1 finished run") {
		t.Errorf("after a finished run %d: %s", id, body)
	}
}

func TestBudgetStopsTheRunAndTheTimelineSaysWhy(t *testing.T) {
	ts := newBillingServer(t)
	const email = "budget@example.com"
	c, _, _ := ts.proSubscriber(email)
	ds := ts.datasetFor(c, completionLines(20))
	if r := ts.do(c, "GET", "/runs/new", nil, nil); !strings.Contains(r.body, `name="budget_usd"`) {
		t.Fatal("the run form offers no budget")
	}
	v := runValues(ds)
	v.Set("budget_usd", "ten")
	if r := ts.do(c, "POST", "/runs", v, nil); r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, "is not an amount in US dollars") {
		t.Fatalf("bad budget: %d", r.status)
	}
	v.Set("budget_usd", "0.10") // 600 s included, then 800 s at $0.000125
	id := ts.startRun(c, v)
	token, hash := gpu.NewRunToken()
	if _, ok, err := ts.store.ClaimQueuedRun(context.Background(), "local", hash); !ok || err != nil {
		t.Fatalf("claim: %v %v", ok, err)
	}
	beat := func() bool {
		r := ts.post(id, "heartbeat", token, `{"step": 1, "total_steps": 100}`)
		if r.status != http.StatusOK {
			t.Fatalf("heartbeat: %d %s", r.status, r.body)
		}
		return strings.Contains(r.body, `"stop":{"reason":`)
	}
	if beat() {
		t.Fatal("stopped at the start")
	}
	ts.advance(799 * time.Second)
	if beat() {
		t.Fatal("stopped before the budget")
	}
	// The run page shows the cost so far the way /billing counts it (600 s included, then
	// $0.000125 a second) and the projected total from the steps done (1 of 100).
	if r := ts.do(c, "GET", fmt.Sprintf("/runs/%d", id), nil, nil); !strings.Contains(r.body, `data-testid="live-cost">$0.02 of about $9.91<`) {
		t.Errorf("the run page's live cost is missing or wrong")
	}
	ts.advance(601 * time.Second)
	if !beat() {
		t.Fatal("not stopped at the budget")
	}
	ts.finishStopped(t, c, id, token)
	r := ts.do(c, "GET", fmt.Sprintf("/runs/%d", id), nil, nil)
	if !strings.Contains(r.body, "Stopped at the run&#39;s budget cap of $0.10: $0.10 spent") {
		t.Error("the run page does not say the budget stopped it")
	}
}

// finishStopped plays a worker asked to stop cleanly: a final snapshot of its weights,
// then finish as cancelled with the stop's reason. The run page must then say it was
// cancelled, why, and list the snapshot.
func (ts *testServer) finishStopped(t *testing.T, c *http.Client, id int64, token string) {
	t.Helper()
	r := ts.post(id, "heartbeat", token, `{"step": 1, "total_steps": 100}`)
	var reply protocol.HeartbeatReply
	if err := json.Unmarshal([]byte(r.body), &reply); err != nil || reply.Stop == nil || reply.Cancel {
		t.Fatalf("no stop in %s", r.body)
	}
	weights := bytes.Repeat([]byte("weights at the stop "), 64)
	sum := sha256.Sum256(weights)
	if r := ts.workerCall("PUT", fmt.Sprintf("/api/v1/worker/runs/%d/snapshots/1", id), token, bytes.NewReader(weights), map[string]string{
		"Content-Type": "application/octet-stream", protocol.HeaderSnapshotSHA256: hex.EncodeToString(sum[:]), protocol.HeaderSnapshotFinal: "true"}); r.status != http.StatusCreated {
		t.Fatalf("final snapshot: %d %s", r.status, r.body)
	}
	body, _ := json.Marshal(protocol.Finish{Status: protocol.StatusCancelled, Reason: reply.Stop.Reason})
	if r := ts.post(id, "finish", token, string(body)); r.status != http.StatusOK {
		t.Fatalf("finish: %d %s", r.status, r.body)
	}
	run, err := ts.store.RunByID(context.Background(), id)
	if err != nil || run.Status != store.RunCancelled || run.Reason != reply.Stop.Reason {
		t.Fatalf("run after the stop: %+v %v", run, err)
	}
	snaps, err := ts.store.Snapshots(context.Background(), run.UserID, id)
	if err != nil || len(snaps) != 1 || !snaps[0].Final {
		t.Fatalf("snapshots after the stop: %+v %v", snaps, err)
	}
	page := ts.do(c, "GET", fmt.Sprintf("/runs/%d", id), nil, nil).body
	if !strings.Contains(page, fmt.Sprintf("/runs/%d/snapshots/%d/download", id, snaps[0].ID)) {
		t.Error("the run page does not offer the final snapshot")
	}
}

func TestRunningRunStoppedWhenPaymentGraceEnds(t *testing.T) {
	ts := newBillingServerGrace(t, 30*time.Minute)
	const email = "stop@example.com"
	c, acct, _ := ts.proSubscriber(email)
	id := ts.startRun(c, runValues(ts.datasetFor(c, completionLines(20))))
	token, hash := gpu.NewRunToken()
	ts.store.ClaimQueuedRun(context.Background(), "local", hash)
	beat := func() bool {
		r := ts.post(id, "heartbeat", token, `{"step": 1, "total_steps": 100}`)
		return strings.Contains(r.body, `"stop":{"reason":`)
	}
	if beat() {
		t.Fatal("stopped while paid up")
	}
	ts.webhook(testWebhookSecret, time.Now(), "evt_f", "invoice.payment_failed", ts.clock().Unix(), map[string]any{"id": "in_1", "object": "invoice", "customer": acct.CustomerID})
	ts.advance(10 * time.Minute)
	if beat() {
		t.Fatal("stopped inside the grace period")
	}
	ts.advance(21 * time.Minute)
	if !beat() {
		t.Fatal("still running after the grace period")
	}
	ts.finishStopped(t, c, id, token)
	if r := ts.do(c, "GET", fmt.Sprintf("/runs/%d", id), nil, nil); !strings.Contains(r.body, "payment failed on ") || !strings.Contains(r.body, "grace period has ended") {
		t.Error("the run page does not say why the run stopped")
	}
	// Paying lifts it at once: new runs start again.
	ts.webhook(testWebhookSecret, time.Now(), "evt_p", "invoice.paid", ts.clock().Unix(), map[string]any{"id": "in_1", "object": "invoice", "customer": acct.CustomerID})
	ts.startRun(c, runValues(ts.datasetFor(c, completionLines(20))))
}

func TestMonthlyCapRefusesNewRunsAndStopsRunningOnes(t *testing.T) {
	ts := newBillingServer(t)
	const email = "cap@example.com"
	c, _, _ := ts.proSubscriber(email)
	if r := ts.do(c, "POST", "/billing/cap", url.Values{"monthly_cap_usd": {"lots"}}, nil); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("bad cap: %d", r.status)
	}
	if r := ts.do(c, "POST", "/billing/cap", url.Values{"monthly_cap_usd": {"0.10"}}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("set cap: %d", r.status)
	}
	if r := ts.do(c, "GET", "/billing", nil, nil); !strings.Contains(r.body, `data-testid="monthly-cap-now">Current cap: $0.10 a period<`) {
		t.Fatal("the billing page does not show the cap")
	}
	ds := ts.datasetFor(c, completionLines(20))
	// A running run: 600 s included, then $0.000125 a second; $0.10 is reached at 1400 s.
	id := ts.startRun(c, runValues(ds))
	token, hash := gpu.NewRunToken()
	ts.store.ClaimQueuedRun(context.Background(), "local", hash)
	beat := func() bool {
		r := ts.post(id, "heartbeat", token, `{"step": 1, "total_steps": 100}`)
		return strings.Contains(r.body, `"stop":{"reason":`)
	}
	beat()
	ts.advance(1390 * time.Second)
	if beat() {
		t.Fatal("stopped under the cap")
	}
	ts.advance(20 * time.Second)
	if !beat() {
		t.Fatal("not stopped at the monthly cap")
	}
	ts.finishStopped(t, c, id, token)
	if r := ts.do(c, "GET", fmt.Sprintf("/runs/%d", id), nil, nil); !strings.Contains(r.body, "Stopped at your monthly cap of $0.10: $0.10 spent this period") {
		t.Error("the run page does not say the cap stopped the run")
	}
	if r := ts.do(c, "POST", "/runs", runValues(ds), nil); r.status != http.StatusPaymentRequired || !strings.Contains(r.body, "monthly cap of $0.10 is reached") {
		t.Errorf("a new run past the cap: %d", r.status)
	}
	// Removing the cap lets runs start again.
	ts.do(c, "POST", "/billing/cap", url.Values{"monthly_cap_usd": {""}}, nil)
	ts.startRun(c, runValues(ds))
}

// The Terms and Privacy pages say what this server does about payment: with Stripe set
// up, how plans, metering and failed payments work and what billing data is kept; without
// it, that nothing is charged.
func TestLegalPagesFollowWhetherBillingIsOn(t *testing.T) {
	on := newBillingServerGrace(t, 48*time.Hour)
	off := newTestServer(t, Config{})
	for _, tc := range []struct {
		name       string
		ts         *testServer
		path       string
		want, miss []string
	}{
		{"terms, billing on", on, "/terms", []string{"subscriptions handled by Stripe", "never on this server", "metered per second", "new runs still start for 2 days"}, []string{"does not charge"}},
		{"privacy, billing on", on, "/privacy", []string{"Stripe customer and subscription identifiers", "card details go to Stripe only"}, []string{"has no billing"}},
		{"terms, billing off", off, "/terms", []string{"does not charge for anything"}, []string{"Stripe"}},
		{"privacy, billing off", off, "/privacy", []string{"has no billing"}, []string{"Stripe"}},
	} {
		text := visibleText(tc.ts.do(tc.ts.client(), "GET", tc.path, nil, nil).body)
		for _, w := range tc.want {
			if !strings.Contains(text, w) {
				t.Errorf("%s: lacks %q", tc.name, w)
			}
		}
		for _, w := range tc.miss {
			if strings.Contains(text, w) {
				t.Errorf("%s: says %q", tc.name, w)
			}
		}
	}
}

// Usage waiting for Stripe past billing.MeterBacklogAlert (6 h) raises an alert on the
// admin page; fresher usage does not.
func TestMeterBacklogAlertOnTheAdminPage(t *testing.T) {
	ts := newBillingServer(t)
	// The usage is made 6 h in the past, so the sessions (whose expiry the real clock sets)
	// still hold once the test clock has moved on to now.
	ts.advance(-billing.MeterBacklogAlert - time.Minute)
	const email = "metered@example.com"
	c, _, _ := ts.proSubscriber(email)
	ts.finishedRun(c, 900)
	page := ts.do(ts.admin("ops@example.com"), "GET", "/admin", nil, nil).body
	if !strings.Contains(page, `data-testid="outbox-pending">1 row`) || strings.Contains(page, `data-testid="outbox-backlog"`) {
		t.Fatalf("fresh usage waiting: want the pending row and no alert:\n%s", page)
	}
	ts.advance(billing.MeterBacklogAlert + time.Minute)
	page = ts.do(ts.admin("ops2@example.com"), "GET", "/admin", nil, nil).body
	if !strings.Contains(page, `data-testid="outbox-backlog"`) || !strings.Contains(page, "more than 6 hours") {
		t.Fatalf("usage waiting past 6 h raises no alert:\n%s", page)
	}
}

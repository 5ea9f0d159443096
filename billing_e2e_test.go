package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tunelab/billing/stripemock"
	"tunelab/store"
)

// The whole billing path on a real server and a real stripe-mock: Checkout, the signed
// webhook that subscribes, a run whose worker finishes through the worker API, and its GPU
// seconds acknowledged by Stripe through the meter outbox, as many as the ledger holds.
func TestBillingEndToEnd(t *testing.T) {
	sm := stripemock.Shared(t)
	dir := t.TempDir()
	plans := filepath.Join(t.TempDir(), "plans.json")
	os.WriteFile(plans, []byte(browserPlans), 0o600)
	const whsec = "whsec_e2e"
	addr, _ := startServerWith(t, map[string]string{"TUNELAB_STRIPE_SECRET_KEY": "sk_test_123", "TUNELAB_STRIPE_WEBHOOK_SECRET": whsec,
		"TUNELAB_STRIPE_API_URL": sm.URL, "TUNELAB_PLANS": plans}, dir)
	base := "http://" + addr
	a := newAppClient(t, base)
	const email = "e2e-billing@example.com"
	a.signUpWithSample(email)
	st, loc := a.post("/billing/checkout", url.Values{"plan": {"pro"}, "interval": {"monthly"}})
	if st != http.StatusSeeOther || !strings.HasPrefix(loc, "https://checkout.stripe.com/") {
		t.Fatalf("checkout: %d %q", st, loc)
	}
	db := openStore(t, dir)
	ctx := context.Background()
	users, _, _ := db.ListUsers(ctx, 10)
	acct, err := db.BillingAccount(ctx, users[0].ID)
	if err != nil || !strings.HasPrefix(acct.CustomerID, "cus_") {
		t.Fatalf("customer: %+v %v", acct, err)
	}
	now := time.Now().Unix()
	stripeEvent(t, base, whsec, "evt_e2e_sub", "customer.subscription.created", map[string]any{"id": "sub_e2e", "object": "subscription",
		"customer": acct.CustomerID, "status": "active", "current_period_start": now - 60, "current_period_end": now + 30*86400,
		"items": map[string]any{"object": "list", "data": []any{map[string]any{"id": "si", "object": "subscription_item",
			"price": map[string]any{"id": "price_pro_m", "object": "price"}}}}})
	if _, body, _ := a.get("/billing"); !strings.Contains(string(body), `data-testid="plan-name">Pro<`) {
		t.Fatal("the webhook did not subscribe")
	}

	// A run that used 3 s of GPU time, finished by its worker over the worker API.
	start := time.Now().Add(-3 * time.Second)
	past, err := store.Open(ctx, filepath.Join(dir, "tunelab.db"), store.Options{Now: func() time.Time { return start }})
	if err != nil {
		t.Fatal(err)
	}
	id, token := manualRun(t, past, email, "lora")
	past.Close()
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/api/v1/worker/runs/%d/finish", base, id), strings.NewReader(`{"status": "succeeded"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("finish: %v %v", resp, err)
	}
	resp.Body.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		o, err := db.MeterOutbox(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if o.Sent == 1 {
			usage, _ := db.RunUsage(ctx, id)
			if len(usage) != 1 || o.SentSeconds != usage[0].Seconds || o.SentSeconds < 3 {
				t.Fatalf("sent %d s, ledger %+v", o.SentSeconds, usage)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the meter event was not acknowledged: %+v", o)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

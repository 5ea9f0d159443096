package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"tunelab/billing/stripemock"
	"tunelab/store"
)

const browserPlans = `{
  "plans": [
    {"id": "free", "name": "Free", "included_gpu_seconds": 3600},
    {"id": "pro", "name": "Pro", "monthly_usd": "29", "annual_usd": "290",
     "stripe_monthly_price": "price_pro_m", "stripe_annual_price": "price_pro_y",
     "included_gpu_seconds": 36000, "usd_per_gpu_second": {"cpu": "0.00012"},
     "stripe_monthly_metered_prices": {"cpu": "price_cpu_m"}, "stripe_annual_metered_prices": {"cpu": "price_cpu_y"}},
    {"id": "team", "name": "Team", "monthly_usd": "99", "annual_usd": "990",
     "stripe_monthly_price": "price_team_m", "stripe_annual_price": "price_team_y",
     "included_gpu_seconds": 180000, "usd_per_gpu_second": {"cpu": "0.0001"},
     "stripe_monthly_metered_prices": {"cpu": "price_cpu_tm"}, "stripe_annual_metered_prices": {"cpu": "price_cpu_ty"}}
  ],
  "stripe_meter_events": {"cpu": "tunelab_gpu_seconds_cpu"}
}`

// billedRun gives the person a finished run that used secs GPU seconds, ending now.
func billedRun(t *testing.T, dir, email string, secs int) {
	t.Helper()
	ctx := context.Background()
	start := time.Now().Add(-time.Duration(secs) * time.Second)
	st, err := store.Open(ctx, filepath.Join(dir, "tunelab.db"), store.Options{Now: func() time.Time { return start }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	id, _ := manualRun(t, st, email, "lora")
	if _, err := st.FinishRun(ctx, id, store.RunSucceeded, "", time.Now()); err != nil {
		t.Fatal(err)
	}
}

// stripeEvent posts a signed Stripe event to the server as Stripe would.
func stripeEvent(t *testing.T, base, secret, id, typ string, object any) {
	t.Helper()
	raw, _ := json.Marshal(object)
	body, _ := json.Marshal(map[string]any{"id": id, "object": "event", "type": typ, "created": time.Now().Unix(),
		"api_version": stripe.APIVersion, "data": map[string]any{"object": json.RawMessage(raw)}})
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: time.Now()})
	req, _ := http.NewRequest("POST", base+"/stripe/webhook", strings.NewReader(string(sp.Payload)))
	req.Header.Set("Stripe-Signature", sp.Header)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("webhook %s: %d", typ, resp.StatusCode)
	}
}

func TestBrowserBilling(t *testing.T) {
	findChromium(t)
	sm := stripemock.Shared(t)
	dir := t.TempDir()
	plans := filepath.Join(t.TempDir(), "plans.json")
	os.WriteFile(plans, []byte(browserPlans), 0o600)
	const whsec = "whsec_browser"
	addr, _ := startServerWith(t, map[string]string{"TUNELAB_STRIPE_SECRET_KEY": "sk_test_123", "TUNELAB_STRIPE_WEBHOOK_SECRET": whsec,
		"TUNELAB_STRIPE_API_URL": sm.URL, "TUNELAB_PLANS": plans}, dir)
	base := "http://" + addr
	b := newBrowser(t, base)
	b.desktop()
	const email = "billing@example.com"
	b.signUpInBrowser(email, "correct horse battery staple")
	b.open("/datasets", http.StatusOK)
	b.do("use the chat sample", chromedp.Click(chromedp.CSS(`[data-testid=sample-chat] button, button[data-testid=sample-chat]`), chromedp.NodeVisible))
	b.waitFor("the sample's page", `/^\/datasets\/\d+$/.test(location.pathname)`)
	billedRun(t, dir, email, 1500)

	// The run form estimates time and cost, and follows the epochs as they change.
	b.open("/runs/new", http.StatusOK)
	b.waitFor("the estimate", has(`[data-testid=estimate-time]`)+" && "+htmxReady)
	before := b.text(`[data-testid=run-estimate]`)
	if !strings.Contains(before, "measured on 1 finished run") {
		t.Errorf("estimate = %q", before)
	}
	b.do("set 9 epochs", chromedp.SetValue(chromedp.CSS(`#run-form input[name=epochs]`), "9", chromedp.NodeVisible))
	if !eval[bool](b, `document.querySelector('#run-form input[name=epochs]').dispatchEvent(new Event('change', {bubbles: true}))`) {
		t.Fatal("the change event was cancelled")
	}
	b.waitFor("the estimate for 9 epochs", `document.querySelector('[data-testid=run-estimate]').textContent.includes('× 9 epochs')`)
	b.checkClean("run form estimate")
	b.screenshot("run-form-estimate")

	// The free plan: its included hour, the time used, the paid plans to choose from.
	b.open("/billing", http.StatusOK)
	b.waitFor("the billing page", has(`[data-testid=plan-pro]`))
	if got := b.text(`[data-testid=plan-name]`); got != "Free" {
		t.Fatalf("plan = %q", got)
	}
	if got := b.text(`[data-testid=stat-gpu] .stat-value, [data-testid=stat-gpu]`); !strings.Contains(got, "25 min 00 s") {
		t.Errorf("GPU time stat = %q", got)
	}
	b.checkClean("billing page (free)")
	b.screenshot("billing-free")

	// Choosing a plan posts the form; the server answers with Stripe's Checkout URL.
	b.do("annual prices", chromedp.Click(chromedp.CSS(`[data-testid=interval-annual]`), chromedp.NodeVisible))
	b.waitFor("annual prices", `location.search === "?interval=annual" && document.querySelector('[data-testid=plan-pro]').textContent.includes("$290")`)

	// Choosing Pro (annual) posts the form and the browser follows the server's 303 to the
	// Checkout page stripe-mock made (unreachable here, so the history shows where it went).
	b.do("choose Pro", chromedp.Click(chromedp.CSS(`[data-testid=choose-pro]`), chromedp.NodeVisible))
	deadline := time.Now().Add(15 * time.Second)
	for {
		h, err := chromedp.Call(b.ctx, page.GetNavigationHistory, cdp.Empty{})
		if err == nil && h.CurrentIndex >= 0 && int(h.CurrentIndex) < len(h.Entries) &&
			strings.HasPrefix(h.Entries[h.CurrentIndex].URL, "https://checkout.stripe.com/") {
			break
		}
		if time.Now().After(deadline) {
			var urls []string
			for _, e := range h.Entries {
				urls = append(urls, e.URL)
			}
			t.Fatalf("not sent to Stripe Checkout: at %d of %v, %v", h.CurrentIndex, urls, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.rec.take() // the unreachable Checkout page's network errors

	// Stripe confirms the subscription by webhook; the page shows the plan, period and cost.
	st := openStore(t, dir)
	users, _, _ := st.ListUsers(context.Background(), 10)
	cus, err := st.SetStripeCustomer(context.Background(), users[0].ID, "cus_browser")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Add(-2 * time.Hour).Unix()
	stripeEvent(t, base, whsec, "evt_sub", "customer.subscription.created", map[string]any{"id": "sub_b", "object": "subscription",
		"customer": cus, "status": "active", "current_period_start": now, "current_period_end": now + 30*86400,
		"items": map[string]any{"object": "list", "data": []any{map[string]any{"id": "si", "object": "subscription_item",
			"price": map[string]any{"id": "price_pro_m", "object": "price"}}}}})
	billedRun(t, dir, email, 36000-1500+2*3600) // 2 h past the 10 h included
	b.open("/billing", http.StatusOK)
	b.waitFor("the Pro plan", `document.querySelector('[data-testid=plan-name]').textContent === "Pro"`)
	if got := b.text(`[data-testid=stat-cost]`); !strings.Contains(got, "$0.86") { // 7200 s x $0.00012
		t.Errorf("cost = %q", got)
	}
	b.checkClean("billing page (pro)")
	b.screenshot("billing-pro")
	b.phoneFits("/billing")
	b.screenshot("billing-pro-phone")
}

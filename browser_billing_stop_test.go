package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"tunelab/billing/stripemock"
)

// stopPlans (TOML) prices the CPU at a cent a second from the first one, so a budget of
// cents is reached within seconds of training.
const stopPlans = `
[[plans]]
id = "free"
name = "Free"
included_gpu_seconds = 3600

[[plans]]
id = "pro"
name = "Pro"
monthly_usd = "29"
annual_usd = "290"
stripe_monthly_price = "price_pro_m"
stripe_annual_price = "price_pro_y"
included_gpu_seconds = 0
usd_per_gpu_second = { cpu = "0.01" }
stripe_monthly_metered_prices = { cpu = "price_cpu_m" }
stripe_annual_metered_prices = { cpu = "price_cpu_y" }

[stripe_meter_events]
cpu = "tunelab_gpu_seconds_cpu"
`

// A run on the built-in trainer with a small budget cap: the run list shows its cost live,
// the run page warns that the projection passes the cap, and at the cap the worker stops
// cleanly: the run ends saying why, with a final snapshot to download.
func TestBrowserBudgetCapStopsARunWithAFinalSnapshot(t *testing.T) {
	findChromium(t)
	sm := stripemock.Shared(t)
	dir := t.TempDir()
	plans := filepath.Join(t.TempDir(), "plans.toml")
	os.WriteFile(plans, []byte(stopPlans), 0o600)
	const whsec = "whsec_browser_stop"
	env := runEnv(t)
	for k, v := range map[string]string{"TUNELAB_STRIPE_SECRET_KEY": "sk_test_123", "TUNELAB_STRIPE_WEBHOOK_SECRET": whsec,
		"TUNELAB_STRIPE_API_URL": sm.URL, "TUNELAB_PLANS": plans} {
		env[k] = v
	}
	addr, _ := startServerWith(t, env, dir)
	base := "http://" + addr
	b := newBrowser(t, base)
	b.desktop()
	const email = "budget-stop@example.com"
	b.signUpInBrowser(email, "correct horse battery staple")
	b.open("/datasets", http.StatusOK)
	b.do("use the chat sample", chromedp.Click(chromedp.CSS(`[data-testid=sample-chat] button, button[data-testid=sample-chat]`), chromedp.NodeVisible))
	b.waitFor("the sample's page", `/^\/datasets\/\d+$/.test(location.pathname)`)

	// Subscribed to Pro (as Stripe's webhook says after Checkout).
	st := openStore(t, dir)
	users, _, _ := st.ListUsers(context.Background(), 10)
	cus, err := st.SetStripeCustomer(context.Background(), users[0].ID, "cus_budget")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Add(-time.Hour).Unix()
	stripeEvent(t, base, whsec, "evt_sub", "customer.subscription.created", map[string]any{"id": "sub_budget", "object": "subscription",
		"customer": cus, "status": "active", "current_period_start": now, "current_period_end": now + 30*86400,
		"items": map[string]any{"object": "list", "data": []any{map[string]any{"id": "si", "object": "subscription_item",
			"price": map[string]any{"id": "price_pro_m", "object": "price"}}}}})

	// A long run (1000 epochs) with a budget of $0.20: 20 s at $0.01.
	b.open("/runs/new", http.StatusOK)
	b.waitFor("the run form", has(`form [name=epochs]`)+" && "+htmxReady)
	b.do("set epochs", chromedp.SetValue(chromedp.CSS(`form [name=epochs]`), "1000", chromedp.NodeVisible))
	b.do("set the budget", chromedp.SetValue(chromedp.CSS(`form [name=budget_usd]`), "0.20", chromedp.NodeVisible))
	b.do("start the run", chromedp.Click(chromedp.CSS(`[data-testid=start-run]`), chromedp.NodeVisible))
	b.waitFor("the run page", `/^\/runs\/\d+$/.test(location.pathname) && `+has(`[data-testid=run-live-panel]`))
	runPath := eval[string](b, `location.pathname`)
	// At this pace the run would cost far more than its cap: the page warns, and shows the
	// cost so far and the projection.
	b.waitForWithin("the budget warning", has(`[data-testid=budget-warning]`)+
		` && document.querySelector("[data-testid=live-cost]").textContent.includes("of about")`, 60*time.Second)
	b.screenshot("budget-run-live-warning")

	// While it trains: the run list's live cost (so far, and projected at the end).
	b.open("/runs", http.StatusOK)
	b.waitForWithin("the run list's live cost", has(`[data-testid=run-cost]`)+
		` && document.querySelector("[data-testid=run-cost]").textContent.includes("of about")`, 60*time.Second)
	b.checkClean("run list with live cost")
	b.screenshot("budget-run-list-live-cost")

	// The run page: its cost, then the stop at the cap and why.
	b.open(runPath, http.StatusOK)
	b.waitForWithin("the run to be stopped at its budget", `document.querySelector("[data-testid=run-live-panel]").dataset.status === "cancelled"`, 2*time.Minute)
	b.waitForWithin("the final snapshot", has(`[data-testid=snapshot-final]`), 30*time.Second)
	reason := b.text(`[data-testid=run-reason]`)
	if !strings.Contains(reason, "This run was stopped") || !strings.Contains(reason, "Stopped at the run's budget cap of $0.20: $0.2") {
		t.Errorf("the run page says %q", reason)
	}
	if badge := b.text(`[data-testid=live-status]`); !strings.Contains(badge, "Stopped") {
		t.Errorf("the status badge of a run stopped at its budget says %q, want Stopped", badge)
	}
	if !eval[bool](b, `[...document.querySelectorAll("[data-testid=run-timeline] li, [data-testid=run-timeline] [data-status]")].some(e => e.textContent.includes("budget cap"))`) {
		t.Error("the timeline does not say why the run stopped")
	}
	if n := eval[int](b, `document.querySelectorAll("[data-testid=snapshot-row] [data-testid=snapshot-download]").length`); n < 1 {
		t.Error("the final snapshot cannot be downloaded")
	}
	b.checkClean("stopped run page")
	b.screenshot("budget-run-stopped")

	// /billing lists the run and its cost.
	b.open("/billing", http.StatusOK)
	b.waitFor("the Pro plan", `document.querySelector('[data-testid=plan-name]').textContent === "Pro"`)
	b.checkClean("billing page after the stop")
	b.screenshot("budget-billing")

	// The operator's reconciliation: once the meter sender has posted the run's seconds to
	// (stripe-mock's) Stripe, the ledger and the acknowledged seconds match.
	const ops, opsPassword = "ops@example.com", "an operator passphrase"
	var out strings.Builder
	if err := run(context.Background(), []string{"admin", "create-user", "--email", ops, "--password-stdin", "--admin", "--data", dir},
		envMap(nil), strings.NewReader(opsPassword+"\n"), &out); err != nil {
		t.Fatal(err)
	}
	b.do("sign out", chromedp.Click(chromedp.CSS(`[data-testid=signout]`), chromedp.NodeVisible))
	b.waitFor("the sign-in page", pathIs("/signin")+" && "+has(`[data-testid=signin-form]`)+" && "+htmxReady)
	b.do("sign in as the operator",
		chromedp.SendKeys(chromedp.CSS(`[data-testid=signin-form] input[name=email]`), ops, chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=signin-form] input[name=password]`), opsPassword, chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=signin-form] button[type=submit]`), chromedp.NodeVisible))
	b.waitFor("signed in", `!location.pathname.startsWith("/signin")`)
	for deadline := time.Now().Add(30 * time.Second); ; {
		b.open("/admin", http.StatusOK)
		b.waitFor("the reconciliation", has(`[data-testid=reconcile-row]`))
		if b.text(`[data-testid=reconcile-status]`) == "Matches" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reconciliation still differs: %q", b.text(`[data-testid=reconcile-row]`))
		}
		time.Sleep(time.Second)
	}
	if row := b.text(`[data-testid=reconcile-row]`); !strings.Contains(row, "cus_budget") || !strings.Contains(row, email) {
		t.Errorf("reconciliation row = %q", row)
	}
	b.checkClean("admin page with the reconciliation")
	b.screenshot("budget-admin-reconciliation")
}

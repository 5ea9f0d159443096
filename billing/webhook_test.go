package billing

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"tunelab/store"
)

// deliver signs and hands one event to the service, as POST /stripe/webhook does.
func (f *fixture) deliver(t *testing.T, id, typ string, created int64, object any) error {
	t.Helper()
	body, sig := signed(t, testWhsec, time.Now(), id, typ, created, object)
	return f.svc.HandleWebhook(context.Background(), body, sig)
}

func (f *fixture) account(t *testing.T, u store.User) store.BillingAccount {
	t.Helper()
	a, err := f.st.BillingAccount(context.Background(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestWebhookSignatureAndAge(t *testing.T) {
	f := newFixtureAt(t, "http://127.0.0.1:1") // Stripe is never called here
	ctx := context.Background()
	if _, err := f.st.SetStripeCustomer(ctx, f.ada.ID, "cus_ada"); err != nil {
		t.Fatal(err)
	}
	sub := subscriptionObject("sub_1", "cus_ada", "active", "price_pro_m", time.Now().Unix())
	for _, c := range []struct {
		name   string
		secret string
		at     time.Time
		tamper bool
	}{
		{"wrong secret", "whsec_other", time.Now(), false},
		{"ten minutes old", testWhsec, time.Now().Add(-10 * time.Minute), false},
		{"body changed after signing", testWhsec, time.Now(), true},
	} {
		body, sig := signed(t, c.secret, c.at, "evt_bad_"+strings.ReplaceAll(c.name, " ", "_"), "customer.subscription.created", time.Now().Unix(), sub)
		if c.tamper {
			body = []byte(strings.Replace(string(body), "price_pro_m", "price_pro_y", 1))
		}
		if err := f.svc.HandleWebhook(ctx, body, sig); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: err = %v, want ErrBadSignature", c.name, err)
		}
	}
	if err := f.svc.HandleWebhook(ctx, []byte(`{}`), ""); !errors.Is(err, ErrBadSignature) {
		t.Errorf("no signature: %v", err)
	}
	if a := f.account(t, f.ada); a.SubscriptionStatus != "" || a.SubscriptionID != "" {
		t.Fatalf("a rejected event changed the account: %+v", a)
	}
	if seen, _ := f.st.StripeEventSeen(ctx, "evt_bad_wrong_secret"); seen {
		t.Fatal("a rejected event was recorded")
	}
}

func TestWebhookSubscriptionLifecycle(t *testing.T) {
	f := newFixtureAt(t, "http://127.0.0.1:1")
	ctx := context.Background()
	f.st.SetStripeCustomer(ctx, f.ada.ID, "cus_ada")
	start := time.Now().Add(-time.Hour).Unix()
	cs := map[string]any{"id": "cs_1", "object": "checkout.session", "mode": "subscription", "status": "complete",
		"payment_status": "paid", "customer": "cus_ada", "subscription": "sub_1", "client_reference_id": "1"}
	if err := f.deliver(t, "evt_1", "checkout.session.completed", start, cs); err != nil {
		t.Fatal(err)
	}
	if a := f.account(t, f.ada); a.SubscriptionID != "sub_1" || a.SubscriptionStatus != "active" {
		t.Fatalf("after checkout: %+v", a)
	}
	if err := f.deliver(t, "evt_2", "customer.subscription.updated", start+5, subscriptionObject("sub_1", "cus_ada", "active", "price_pro_y", start)); err != nil {
		t.Fatal(err)
	}
	a := f.account(t, f.ada)
	if pl, iv := f.svc.PlanOf(a); pl.ID != "pro" || iv != "annual" || a.PeriodStart.Unix() != start {
		t.Fatalf("plan = %s %s, account %+v", pl.ID, iv, a)
	}
	// A failed payment marks the account; paying clears it.
	inv := map[string]any{"id": "in_1", "object": "invoice", "customer": "cus_ada"}
	f.deliver(t, "evt_3", "invoice.payment_failed", start+10, inv)
	if a := f.account(t, f.ada); a.PaymentFailedAt.Unix() != start+10 {
		t.Fatalf("after payment_failed: %+v", a)
	}
	f.deliver(t, "evt_4", "invoice.paid", start+20, inv)
	if a := f.account(t, f.ada); !a.PaymentFailedAt.IsZero() {
		t.Fatalf("after invoice.paid: %+v", a)
	}
	f.deliver(t, "evt_5", "customer.subscription.deleted", start+30, subscriptionObject("sub_1", "cus_ada", "canceled", "price_pro_y", start))
	a = f.account(t, f.ada)
	if pl, iv := f.svc.PlanOf(a); pl.ID != "hobby" || iv != "" || a.SubscriptionStatus != "canceled" {
		t.Fatalf("after deleted: plan %s, %+v", pl.ID, a)
	}
	// Bob's account is untouched by all of it.
	if b := f.account(t, f.bob); b.SubscriptionStatus != "" || b.CustomerID != "" {
		t.Fatalf("bob changed: %+v", b)
	}
	// Events tunelab does not act on are accepted and recorded once.
	if err := f.deliver(t, "evt_6", "customer.created", start, map[string]any{"id": "cus_x", "object": "customer"}); err != nil {
		t.Fatal(err)
	}
}

func TestWebhookDuplicateHasOneEffect(t *testing.T) {
	f := newFixtureAt(t, "http://127.0.0.1:1")
	ctx := context.Background()
	f.st.SetStripeCustomer(ctx, f.ada.ID, "cus_ada")
	now := time.Now().Unix()
	f.deliver(t, "evt_sub", "customer.subscription.created", now, subscriptionObject("sub_1", "cus_ada", "active", "price_pro_m", now))
	inv := map[string]any{"id": "in_1", "object": "invoice", "customer": "cus_ada"}
	if err := f.deliver(t, "evt_fail", "invoice.payment_failed", now+10, inv); err != nil {
		t.Fatal(err)
	}
	if err := f.deliver(t, "evt_paid", "invoice.paid", now+20, inv); err != nil {
		t.Fatal(err)
	}
	// Redelivering the older failure (same id) must not mark the paid account again.
	if err := f.deliver(t, "evt_fail", "invoice.payment_failed", now+10, inv); err != nil {
		t.Fatalf("duplicate answered %v; Stripe would retry it for days", err)
	}
	if a := f.account(t, f.ada); !a.PaymentFailedAt.IsZero() {
		t.Fatalf("the duplicate had a second effect: %+v", a)
	}
	// Same for a subscription event delivered twice after a newer one.
	f.deliver(t, "evt_upd", "customer.subscription.updated", now+30, subscriptionObject("sub_1", "cus_ada", "past_due", "price_pro_m", now))
	f.deliver(t, "evt_sub", "customer.subscription.created", now, subscriptionObject("sub_1", "cus_ada", "active", "price_pro_m", now))
	if a := f.account(t, f.ada); a.SubscriptionStatus != "past_due" {
		t.Fatalf("status = %q, want past_due", a.SubscriptionStatus)
	}
}

func TestWebhookOutOfOrderNewestWins(t *testing.T) {
	f := newFixtureAt(t, "http://127.0.0.1:1")
	ctx := context.Background()
	f.st.SetStripeCustomer(ctx, f.ada.ID, "cus_ada")
	now := time.Now().Unix()
	// updated(active) arrives before created(incomplete), in a later second and in the same one.
	for i, created := range []int64{now + 1, now} {
		f.st.SetStripeCustomer(ctx, f.bob.ID, "cus_bob")
		cus := []string{"cus_ada", "cus_bob"}[i]
		u := []store.User{f.ada, f.bob}[i]
		f.deliver(t, "evt_upd_"+cus, "customer.subscription.updated", created, subscriptionObject("sub_"+cus, cus, "active", "price_pro_m", now))
		f.deliver(t, "evt_new_"+cus, "customer.subscription.created", now, subscriptionObject("sub_"+cus, cus, "incomplete", "price_pro_m", now))
		if a := f.account(t, u); a.SubscriptionStatus != "active" {
			t.Fatalf("%s: status = %q, want active (the newest event)", cus, a.SubscriptionStatus)
		}
	}
	// invoice.paid then a late, older payment_failed: still paid.
	inv := map[string]any{"id": "in_1", "object": "invoice", "customer": "cus_ada"}
	f.deliver(t, "evt_paid", "invoice.paid", now+50, inv)
	f.deliver(t, "evt_failed_old", "invoice.payment_failed", now+40, inv)
	if a := f.account(t, f.ada); !a.PaymentFailedAt.IsZero() {
		t.Fatalf("an older failure overrode a newer payment: %+v", a)
	}
}

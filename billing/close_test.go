package billing

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestCancelAtPeriodEndOnClose: closing an account asks Stripe (stripe-mock) to end a
// subscription in force at the period's end; with no subscription it calls nothing.
func TestCancelAtPeriodEndOnClose(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.st.SetStripeCustomer(ctx, f.ada.ID, "cus_ada")
	start := time.Now().Add(-time.Hour).Unix()
	if err := f.deliver(t, "evt_c1", "customer.subscription.created", start, subscriptionObject("sub_close", "cus_ada", "active", "price_pro_m", start)); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.CancelAtPeriodEnd(ctx, f.ada.ID); err != nil {
		t.Fatalf("cancel at period end through stripe-mock: %v", err)
	}
	// Stripe unreachable: no subscription means no call, so no error; a subscription in
	// force means the call is made, and its failure is reported.
	off := newFixtureAt(t, "http://127.0.0.1:1")
	if err := off.svc.CancelAtPeriodEnd(ctx, off.bob.ID); err != nil {
		t.Fatalf("no subscription: %v, want no Stripe call", err)
	}
	off.st.SetStripeCustomer(ctx, off.ada.ID, "cus_ada")
	if err := off.deliver(t, "evt_c2", "customer.subscription.created", start, subscriptionObject("sub_close", "cus_ada", "active", "price_pro_m", start)); err != nil {
		t.Fatal(err)
	}
	if err := off.svc.CancelAtPeriodEnd(ctx, off.ada.ID); !errors.Is(err, ErrStripe) {
		t.Fatalf("Stripe down: %v, want ErrStripe", err)
	}
	if err := New(Config{Store: f.st}).CancelAtPeriodEnd(ctx, f.ada.ID); err != nil {
		t.Fatalf("billing off: %v", err)
	}
}

package billing

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestRunBlockAfterGraceAndOnAFreePlanUsedUp(t *testing.T) {
	f := newFixtureAt(t, "http://127.0.0.1:1")
	ctx := context.Background()
	f.st.SetStripeCustomer(ctx, f.ada.ID, "cus_ada")
	now := f.clock.now().Unix()
	f.deliver(t, "evt_sub", "customer.subscription.created", now, subscriptionObject("sub_1", "cus_ada", "active", "price_pro_m", now))
	if b, _ := f.svc.RunBlock(ctx, f.ada.ID); b.Blocked() {
		t.Fatalf("blocked while paid up: %s", b.Reason)
	}
	inv := map[string]any{"id": "in_1", "object": "invoice", "customer": "cus_ada"}
	f.deliver(t, "evt_fail", "invoice.payment_failed", now, inv)
	if b, _ := f.svc.RunBlock(ctx, f.ada.ID); b.Blocked() {
		t.Fatal("blocked inside the grace period")
	}
	if n, _ := f.svc.Notice(ctx, f.ada.ID); !strings.Contains(n, "Update your card by") {
		t.Fatalf("notice = %q", n)
	}
	f.clock.advance(DefaultGrace)
	b, _ := f.svc.RunBlock(ctx, f.ada.ID)
	if !b.Blocked() || !b.Portal || !strings.Contains(b.Reason, "3-day grace period") {
		t.Fatalf("after the grace period: %+v", b)
	}
	// Paying lifts it at once.
	f.deliver(t, "evt_paid", "invoice.paid", f.clock.now().Unix(), inv)
	if b, _ := f.svc.RunBlock(ctx, f.ada.ID); b.Blocked() {
		t.Fatalf("still blocked after paying: %s", b.Reason)
	}
	if n, _ := f.svc.Notice(ctx, f.ada.ID); n != "" {
		t.Fatalf("notice after paying: %q", n)
	}
	// Bob, on the free plan (1800 s included), is stopped once they are used.
	f.run(t, f.bob, 1799)
	if b, _ := f.svc.RunBlock(ctx, f.bob.ID); b.Blocked() {
		t.Fatal("blocked with free time left")
	}
	f.run(t, f.bob, 1)
	if b, _ := f.svc.RunBlock(ctx, f.bob.ID); !b.Blocked() || b.Portal || !strings.Contains(b.Reason, "training time the Hobby plan includes") {
		t.Fatalf("free plan used up: %+v", b)
	}
	// Billing off: never blocked.
	off := New(Config{Store: f.st, Plans: f.plans, Now: f.clock.now})
	if b, _ := off.RunBlock(ctx, f.bob.ID); b.Blocked() {
		t.Fatal("blocked with billing off")
	}
	if graceWords(36*time.Hour) != "36-hour" {
		t.Fatal(graceWords(36 * time.Hour))
	}
}

package billing

import (
	"context"
	"strings"
	"testing"
	"time"
)

// StopReason: a free plan's running run is stopped once the period's included time is
// used up, its live seconds counted; a paid run at its budget cap (past the included
// time); nothing with billing off.
func TestStopReasonForAFreePlanUsedUpAndABudgetCap(t *testing.T) {
	f := newFixtureAt(t, "http://127.0.0.1:1")
	ctx := context.Background()
	f.run(t, f.bob, 1000)
	live := f.startRun(t, f.bob, 0)
	f.clock.advance(799 * time.Second)
	if why, err := f.svc.StopReason(ctx, f.reread(t, live.ID)); err != nil || why != "" {
		t.Fatalf("free time left: %q %v", why, err)
	}
	f.clock.advance(time.Second)
	why, err := f.svc.StopReason(ctx, f.reread(t, live.ID))
	if err != nil || !strings.HasPrefix(why, "Stopped: the Hobby plan's included training time for this period is used up") {
		t.Fatalf("free time used up: %q %v", why, err)
	}
	off := New(Config{Store: f.st, Plans: f.plans, Now: f.clock.now})
	if why, _ := off.StopReason(ctx, f.reread(t, live.ID)); why != "" {
		t.Fatalf("billing off stops a run: %q", why)
	}

	// Ada on Pro (36,000 s included, then $0.000125 a second) with a run capped at $0.10:
	// the cap counts the run's cost as /billing does, so 800 s past the included time.
	f.st.SetStripeCustomer(ctx, f.ada.ID, "cus_ada")
	now := f.clock.now().Unix()
	f.deliver(t, "evt_sub", "customer.subscription.created", now, subscriptionObject("sub_1", "cus_ada", "active", "price_pro_m", now))
	capped := f.startRun(t, f.ada, 10)
	f.clock.advance((36000 + 799) * time.Second)
	if why, _ := f.svc.StopReason(ctx, f.reread(t, capped.ID)); why != "" {
		t.Fatalf("under the budget: %q", why)
	}
	f.clock.advance(time.Second)
	if why, _ := f.svc.StopReason(ctx, f.reread(t, capped.ID)); why != "Stopped at the run's budget cap of $0.10: $0.10 spent" {
		t.Fatalf("at the budget: %q", why)
	}
}

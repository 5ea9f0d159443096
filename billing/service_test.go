package billing

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestCheckoutCreatesTheCustomerOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	url, err := f.svc.Checkout(ctx, f.ada.ID, f.ada.Email, "pro", "annual")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(url, "https://") {
		t.Fatalf("checkout url = %q", url)
	}
	cus := f.account(t, f.ada).CustomerID
	if !strings.HasPrefix(cus, "cus_") {
		t.Fatalf("customer = %q", cus)
	}
	if _, err := f.svc.Checkout(ctx, f.ada.ID, f.ada.Email, "pro", "monthly"); err != nil {
		t.Fatal(err)
	}
	if again := f.account(t, f.ada).CustomerID; again != cus {
		t.Fatalf("a second checkout made another customer: %q then %q", cus, again)
	}
	for _, c := range [][2]string{{"hobby", "monthly"}, {"gold", "monthly"}, {"pro", "weekly"}} {
		if _, err := f.svc.Checkout(ctx, f.ada.ID, f.ada.Email, c[0], c[1]); !errors.Is(err, ErrUnknownPlan) {
			t.Errorf("%v: %v", c, err)
		}
	}
	// The portal needs a customer: Bob has none yet.
	if _, err := f.svc.Portal(ctx, f.bob.ID); !errors.Is(err, ErrNoCustomer) {
		t.Fatalf("bob's portal: %v", err)
	}
	if u, err := f.svc.Portal(ctx, f.ada.ID); err != nil || !strings.HasPrefix(u, "https://") {
		t.Fatalf("portal = %q %v", u, err)
	}
}

func TestOverviewChargesPastIncludedSeconds(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.st.SetStripeCustomer(ctx, f.ada.ID, "cus_ada")
	now := f.clock.now().Unix()
	if err := f.deliver(t, "evt_1", "customer.subscription.created", now, subscriptionObject("sub_1", "cus_ada", "active", "price_pro_m", now-60)); err != nil {
		t.Fatal(err)
	}
	// Pro includes 36000 s and charges $0.000125 per cpu second past them.
	f.run(t, f.ada, 30000)
	f.run(t, f.ada, 10000)
	f.run(t, f.bob, 999) // not Ada's
	o, err := f.svc.Overview(ctx, f.ada.ID)
	if err != nil {
		t.Fatal(err)
	}
	if o.Plan.ID != "pro" || o.Interval != "monthly" || o.PeriodStart.Unix() != now-60 {
		t.Fatalf("plan %s %s period %v", o.Plan.ID, o.Interval, o.PeriodStart)
	}
	if len(o.Lines) != 2 || o.UsedSeconds != 40000 || o.IncludedLeft != 0 {
		t.Fatalf("lines %+v used %d left %d", o.Lines, o.UsedSeconds, o.IncludedLeft)
	}
	if o.Lines[1].Included != 6000 || o.Lines[1].Billed != 4000 || o.Cost.USD() != "$0.50" {
		t.Fatalf("line %+v cost %s", o.Lines[1], o.Cost.USD())
	}
	// stripe-mock's fixture is one draft invoice (no hosted page until finalized).
	if len(o.Invoices) == 0 || o.InvoicesFailed || o.Invoices[0].AmountDue != 1000 {
		t.Fatalf("invoices = %+v failed=%v", o.Invoices, o.InvoicesFailed)
	}
	// Bob is on the free plan: his time counts against its included seconds, at no cost.
	ob, _ := f.svc.Overview(ctx, f.bob.ID)
	if ob.Plan.ID != "hobby" || ob.UsedSeconds != 999 || ob.IncludedLeft != 801 || ob.Cost != 0 || len(ob.Invoices) != 0 {
		t.Fatalf("bob: %+v", ob)
	}
}

func TestBillingOffWithoutAKey(t *testing.T) {
	f := newFixtureAt(t, "http://127.0.0.1:1")
	off := New(Config{Store: f.st, Plans: f.plans})
	if off.Enabled() {
		t.Fatal("enabled without a key")
	}
	ctx := context.Background()
	if _, err := off.Checkout(ctx, f.ada.ID, f.ada.Email, "pro", "monthly"); !errors.Is(err, ErrOff) {
		t.Fatal(err)
	}
	if err := off.HandleWebhook(ctx, []byte("{}"), "t=1,v1=x"); !errors.Is(err, ErrOff) {
		t.Fatal(err)
	}
	f.run(t, f.ada, 5000)
	o, err := off.Overview(ctx, f.ada.ID)
	if err != nil || o.Enabled || o.Cost != 0 || o.UsedSeconds != 5000 {
		t.Fatalf("%+v %v", o, err)
	}
}

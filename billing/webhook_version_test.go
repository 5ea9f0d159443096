package billing

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"
)

// TestWebhookOtherAPIVersionIsAppliedWithWarning: an event Stripe sends with another
// api_version than the one tunelab is pinned to is still applied (rejecting it would make
// Stripe retry it for days), and a warning names both versions so the operator can act.
func TestWebhookOtherAPIVersionIsAppliedWithWarning(t *testing.T) {
	f := newFixtureAt(t, "http://127.0.0.1:1") // Stripe is never called here
	var logs bytes.Buffer
	f.svc.log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := context.Background()
	if _, err := f.st.SetStripeCustomer(ctx, f.ada.ID, "cus_ada"); err != nil {
		t.Fatal(err)
	}
	const other = "2020-08-27"
	if other == stripe.APIVersion {
		t.Fatal("the test's other version is tunelab's own")
	}
	raw, _ := json.Marshal(subscriptionObject("sub_v", "cus_ada", "active", "price_pro_m", time.Now().Unix()))
	body, _ := json.Marshal(map[string]any{"id": "evt_other_version", "object": "event", "type": "customer.subscription.created",
		"created": time.Now().Unix(), "api_version": other, "data": map[string]any{"object": json.RawMessage(raw)}})
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: testWhsec, Timestamp: time.Now()})
	if err := f.svc.HandleWebhook(ctx, sp.Payload, sp.Header); err != nil {
		t.Fatalf("an event of another API version was refused: %v", err)
	}
	if a := f.account(t, f.ada); a.SubscriptionID != "sub_v" || a.SubscriptionStatus != "active" {
		t.Fatalf("the event was not applied: %+v", a)
	}
	var warn string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "level=WARN") && strings.Contains(line, "evt_other_version") {
			warn = line
		}
	}
	if warn == "" {
		t.Fatalf("no warning about the API version; logs:\n%s", logs.String())
	}
	for _, v := range []string{other, stripe.APIVersion} {
		if !strings.Contains(warn, v) {
			t.Errorf("the warning does not name version %s: %s", v, warn)
		}
	}

	// Our own version: applied, no warning.
	logs.Reset()
	if err := f.deliver(t, "evt_same_version", "customer.subscription.updated", time.Now().Unix()+1,
		subscriptionObject("sub_v", "cus_ada", "active", "price_pro_m", time.Now().Unix())); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("an event of tunelab's own API version was warned about:\n%s", logs.String())
	}
}

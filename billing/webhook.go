package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"tunelab/store"
)

// ErrBadSignature is returned for a webhook whose signature is wrong, missing or older
// than the tolerance; nothing was changed.
var ErrBadSignature = errors.New("billing: webhook signature is not valid")

// WebhookTolerance is how old a signed webhook may be (Stripe's default).
const WebhookTolerance = 300 * time.Second

// Ranks order subscription events of the same second (see store.Subscription.Rank).
const (
	rankCreated  = 1
	rankCheckout = 2
	rankUpdated  = 3
	rankDeleted  = 4
)

// HandleWebhook checks the signature over the raw body and applies the event. Events
// carrying another API version than ours (stripe.APIVersion) are still applied: the
// fields read here are the same across versions, and rejecting them would make Stripe
// retry them for days. A duplicate returns nil and changes nothing.
func (s *Service) HandleWebhook(ctx context.Context, payload []byte, signature string) error {
	if !s.Enabled() || s.cfg.WebhookSecret == "" {
		return ErrOff
	}
	ev, err := webhook.ConstructEventWithOptions(payload, signature, s.cfg.WebhookSecret, webhook.ConstructEventOptions{
		Tolerance: WebhookTolerance, IgnoreAPIVersionMismatch: true,
	})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	if ev.APIVersion != "" && ev.APIVersion != stripe.APIVersion {
		s.log.Warn("stripe webhook from another API version; applying the fields tunelab reads", "event", ev.ID, "api_version", ev.APIVersion, "tunelab_api_version", stripe.APIVersion)
	}
	ch, ok, err := s.change(ev)
	if err != nil {
		return err
	}
	rec := store.StripeEvent{ID: ev.ID, Type: string(ev.Type), Created: ev.Created}
	if !ok {
		// Not an event tunelab acts on: recorded so it is seen once.
		ch = store.BillingChange{}
	}
	applied, err := s.st.ApplyStripeEvent(ctx, rec, ch)
	if errors.Is(err, store.ErrDuplicateEvent) {
		s.log.Info("stripe webhook already applied", "event", ev.ID, "type", ev.Type)
		return nil
	}
	if err != nil {
		return err
	}
	s.log.Info("stripe webhook", "event", ev.ID, "type", ev.Type, "applied", applied)
	return nil
}

// change reads what an event changes; ok is false for events tunelab does not act on.
func (s *Service) change(ev stripe.Event) (store.BillingChange, bool, error) {
	bad := func(err error) (store.BillingChange, bool, error) {
		return store.BillingChange{}, false, fmt.Errorf("billing: read %s %s: %w", ev.Type, ev.ID, err)
	}
	switch ev.Type {
	case "checkout.session.completed":
		var cs stripe.CheckoutSession
		if err := json.Unmarshal(ev.Data.Raw, &cs); err != nil {
			return bad(err)
		}
		if cs.Mode != stripe.CheckoutSessionModeSubscription || cs.Customer == nil || cs.Subscription == nil {
			return store.BillingChange{}, false, nil
		}
		uid, _ := strconv.ParseInt(cs.ClientReferenceID, 10, 64)
		ch := store.BillingChange{CustomerID: cs.Customer.ID, UserID: uid}
		if cs.Status == stripe.CheckoutSessionStatusComplete && cs.PaymentStatus != stripe.CheckoutSessionPaymentStatusUnpaid {
			ch.Subscription = &store.Subscription{ID: cs.Subscription.ID, Status: "active", Rank: rankCheckout}
			if p := s.priceIn(cs.Subscription); p != "" {
				ch.Subscription.PriceID = p
			}
		}
		return ch, true, nil
	case "customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted":
		var sub stripe.Subscription
		if err := json.Unmarshal(ev.Data.Raw, &sub); err != nil {
			return bad(err)
		}
		if sub.Customer == nil {
			return store.BillingChange{}, false, nil
		}
		st := &store.Subscription{ID: sub.ID, Status: string(sub.Status), PriceID: s.priceIn(&sub), CancelAtPeriodEnd: sub.CancelAtPeriodEnd}
		if sub.CurrentPeriodStart > 0 && sub.CurrentPeriodEnd > sub.CurrentPeriodStart {
			st.PeriodStart, st.PeriodEnd = time.Unix(sub.CurrentPeriodStart, 0).UTC(), time.Unix(sub.CurrentPeriodEnd, 0).UTC()
		}
		switch ev.Type {
		case "customer.subscription.created":
			st.Rank = rankCreated
		case "customer.subscription.updated":
			st.Rank = rankUpdated
		default:
			st.Rank, st.Status = rankDeleted, "canceled"
		}
		return store.BillingChange{CustomerID: sub.Customer.ID, Subscription: st}, true, nil
	case "invoice.paid", "invoice.payment_failed":
		var inv stripe.Invoice
		if err := json.Unmarshal(ev.Data.Raw, &inv); err != nil {
			return bad(err)
		}
		if inv.Customer == nil {
			return store.BillingChange{}, false, nil
		}
		failed := ev.Type == "invoice.payment_failed"
		return store.BillingChange{CustomerID: inv.Customer.ID, PaymentFailed: &failed}, true, nil
	}
	return store.BillingChange{}, false, nil
}

// priceIn is the subscription's plan price: the first item priced by a plan.
func (s *Service) priceIn(sub *stripe.Subscription) string {
	if sub == nil || sub.Items == nil {
		return ""
	}
	for _, it := range sub.Items.Data {
		if it.Price != nil {
			if _, _, ok := s.plans.ByPrice(it.Price.ID); ok {
				return it.Price.ID
			}
		}
	}
	return ""
}

package billing

import (
	"context"
	"fmt"

	"github.com/stripe/stripe-go/v76"
)

// CancelAtPeriodEnd asks Stripe to end the person's subscription at the end of the period
// already paid for, when they close their account. Nothing to do when billing is off or
// there is no subscription in force. Stripe's webhook then records the change as usual.
func (s *Service) CancelAtPeriodEnd(ctx context.Context, userID int64) error {
	if !s.Enabled() {
		return nil
	}
	a, err := s.st.BillingAccount(ctx, userID)
	if err != nil {
		return err
	}
	if a.SubscriptionID == "" || !subscribed(a.SubscriptionStatus) || a.CancelAtPeriodEnd {
		return nil
	}
	p := &stripe.SubscriptionParams{CancelAtPeriodEnd: stripe.Bool(true)}
	p.Context = ctx
	if _, err := s.sc.Subscriptions.Update(a.SubscriptionID, p); err != nil {
		return fmt.Errorf("%w: cancel subscription at period end: %v", ErrStripe, err)
	}
	return nil
}

package billing

import (
	"context"
	"fmt"
	"time"
)

// DefaultGrace is how long after a failed payment new runs still start.
const DefaultGrace = 72 * time.Hour

// Block says why a person may not start a new run now; the zero Block allows it.
type Block struct {
	Reason string // shown on the run form, beside a link to the billing page
	Portal bool   // fixing it means updating the card in Stripe's portal
}

// Blocked reports whether Block stops new runs.
func (b Block) Blocked() bool { return b.Reason != "" }

// RunBlock decides whether the person may start a run: with billing off always; else not
// once a failed payment is older than the grace period (or Stripe marked the subscription
// unpaid), and not on a free plan whose included GPU time this period is used up.
// Paying (invoice.paid) or subscribing lifts it at once.
func (s *Service) RunBlock(ctx context.Context, userID int64) (Block, error) {
	if !s.Enabled() {
		return Block{}, nil
	}
	a, err := s.st.BillingAccount(ctx, userID)
	if err != nil {
		return Block{}, err
	}
	now := s.now()
	if !a.PaymentFailedAt.IsZero() && now.Sub(a.PaymentFailedAt) >= s.grace {
		return Block{Portal: true, Reason: fmt.Sprintf("New runs are paused: your payment failed on %s and the %s grace period has ended. Update your card under Billing → Manage card and invoices; runs start again as soon as the invoice is paid.",
			a.PaymentFailedAt.UTC().Format("2 Jan 2006"), graceWords(s.grace))}, nil
	}
	if a.SubscriptionStatus == "unpaid" {
		return Block{Portal: true, Reason: "New runs are paused: your subscription is unpaid. Update your card under Billing → Manage card and invoices; runs start again as soon as the invoice is paid."}, nil
	}
	pl, _ := s.PlanOf(a)
	start, end := Period(a, now)
	runs, err := s.st.UsageBetween(ctx, userID, start, end)
	if err != nil {
		return Block{}, err
	}
	_, used, _, cost := Charge(pl, runs)
	if capped := Nanodollars(a.MonthlyCapCents) * 10_000_000; !pl.Free && capped > 0 && cost >= capped {
		return Block{Reason: fmt.Sprintf("Your monthly cap of %s is reached (%s this period). Raise or remove it on the Billing page to start runs before the period renews on %s.",
			capped.USD(), cost.USD(), end.UTC().Format("2 Jan 2006"))}, nil
	}
	if !pl.Free {
		return Block{}, nil
	}
	if used >= pl.IncludedSeconds {
		return Block{Reason: fmt.Sprintf("You have used the training time the %s plan includes this period; it renews on %s. Choose a plan on the Billing page to keep training now.",
			pl.Name, end.UTC().Format("2 Jan 2006"))}, nil
	}
	return Block{}, nil
}

// Notice is the banner every page shows after a failed payment ("" when none).
func (s *Service) Notice(ctx context.Context, userID int64) (string, error) {
	if !s.Enabled() {
		return "", nil
	}
	a, err := s.st.BillingAccount(ctx, userID)
	if err != nil || a.PaymentFailedAt.IsZero() {
		return "", err
	}
	until := a.PaymentFailedAt.Add(s.grace)
	if s.now().Before(until) {
		return fmt.Sprintf("Your last payment failed. Update your card by %s to keep starting runs.", until.UTC().Format("2 Jan 2006 15:04 MST")), nil
	}
	return "Your last payment failed and new runs are paused. Update your card to start runs again.", nil
}

// GraceWords writes a grace period as an adjective: "3-day", "36-hour", "30-minute".
func GraceWords(d time.Duration) string { return graceWords(d) }

func graceWords(d time.Duration) string {
	if d%(24*time.Hour) == 0 && d >= 48*time.Hour {
		return fmt.Sprintf("%d-day", d/(24*time.Hour))
	}
	if d < time.Hour {
		return fmt.Sprintf("%d-minute", int(d.Minutes()))
	}
	return fmt.Sprintf("%d-hour", int(d.Hours()))
}

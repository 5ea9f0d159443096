package billing

import (
	"context"
	"fmt"
	"time"

	"tunelab/store"
)

// Caps stop a run when what it has spent reaches them, not when the projected total at
// its ETA does: a projection from the first steps is rough, and stopping on it would end
// runs that finish under the cap. The run page warns as soon as the projection passes the
// cap, and a stopped run keeps a final snapshot of its weights.

// StopReason says, in words for the run's owner, why a running run must stop cleanly now:
// its own budget cap reached (its cost so far counted as /billing counts it: the period's
// earlier runs use the included time first), the monthly cap reached, a payment failed past its grace
// period (or an unpaid subscription), or a free plan's included time used up. "" lets it
// run. The run's live seconds count.
func (s *Service) StopReason(ctx context.Context, run store.Run) (string, error) {
	if !s.Enabled() || run.Final() {
		return "", nil
	}
	a, err := s.st.BillingAccount(ctx, run.UserID)
	if err != nil {
		return "", err
	}
	now := s.now()
	if !a.PaymentFailedAt.IsZero() && now.Sub(a.PaymentFailedAt) >= s.grace {
		return fmt.Sprintf("Stopped: your payment failed on %s and the %s grace period has ended",
			a.PaymentFailedAt.UTC().Format("2 Jan 2006"), graceWords(s.grace)), nil
	}
	if a.SubscriptionStatus == "unpaid" {
		return "Stopped: your subscription is unpaid", nil
	}
	pl, _ := s.PlanOf(a)
	live := int64(run.GPUTime(now) / time.Second)
	start, end := Period(a, now)
	runs, err := s.st.UsageBetween(ctx, run.UserID, start, end)
	if err != nil {
		return "", err
	}
	book := &CostBook{plan: pl, runs: runs, now: now}
	if run.Config.BudgetCents > 0 && !pl.Free {
		spent, _ := book.Run(run, live)
		if budget := Cents(run.Config.BudgetCents); spent >= budget {
			return fmt.Sprintf("Stopped at the run's budget cap of %s: %s spent", budget.USD(), spent.USD()), nil
		}
	}
	rs := make([]store.RunUsage, 0, len(runs)+1)
	for _, r := range runs {
		if r.RunID != run.ID || r.Serving { // a deployment's time is not the run's own
			rs = append(rs, r)
		}
	}
	rs = append(rs, store.RunUsage{RunID: run.ID, GPUType: run.Config.GPUType, Seconds: live})
	_, used, _, cost := Charge(pl, rs)
	if capped := Cents(a.MonthlyCapCents); !pl.Free && capped > 0 && cost >= capped {
		return fmt.Sprintf("Stopped at your monthly cap of %s: %s spent this period", capped.USD(), cost.USD()), nil
	}
	if pl.Free && used >= pl.IncludedSeconds {
		return fmt.Sprintf("Stopped: the %s plan's included training time for this period is used up (it renews on %s)",
			pl.Name, end.UTC().Format("2 Jan 2006")), nil
	}
	return "", nil
}

// Cents is an amount in US cents as Nanodollars.
func Cents(c int64) Nanodollars { return Nanodollars(c) * 10_000_000 }

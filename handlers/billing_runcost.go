package handlers

import (
	"fmt"
	"net/http"
	"time"

	"tunelab/billing"
	"tunelab/store"
)

// projectedSeconds is a run's GPU seconds at its end, from the pace of the steps done so
// far; a run that is not running (or has no step yet) projects what it has.
func projectedSeconds(run store.Run, step int, now time.Time) int64 {
	live := int64(run.GPUTime(now) / time.Second)
	if run.Status == store.RunRunning && step > 0 && run.TotalSteps > step {
		return live * int64(run.TotalSteps) / int64(step)
	}
	return live
}

// costText is a run's cost so far, with the projected total while more is to come:
// "$0.42", or "$0.42 of about $1.10".
func costText(spent, total billing.Nanodollars) string {
	if total > spent {
		return spent.USD() + " of about " + total.USD()
	}
	return spent.USD()
}

// budgetWarning says, while a run with a budget cap runs, that at its pace it will pass
// the cap (caps stop a run at what it spent, not at the projection: billing/stop.go).
func budgetWarning(book *billing.CostBook, run store.Run, projected int64) string {
	if book == nil || run.Final() || run.StopReason != "" || run.CancelRequested {
		return ""
	}
	at, over := book.OverBudgetAt(run, projected)
	if !over {
		return ""
	}
	return fmt.Sprintf("At this pace the run will cost about %s, past its budget cap of %s. It will be stopped at the cap, with a final snapshot of its weights.",
		at.USD(), billing.Cents(run.Config.BudgetCents).USD())
}

// liveCosts opens the person's cost book for the run list's live rows (those with time
// running), with their GPU types; nothing when billing is off or no row is live.
func (a *app) liveCosts(r *http.Request, runs []store.Run, now time.Time) (*billing.CostBook, map[int64]string, error) {
	var ids []int64
	for _, run := range runs {
		if !run.Final() && !run.FirstHeartbeat.IsZero() {
			ids = append(ids, run.ID)
		}
	}
	u, ok := userFrom(r.Context())
	if len(ids) == 0 || !ok || !a.billing.Enabled() {
		return nil, nil, nil
	}
	book, err := a.billing.Costs(r.Context(), u.ID, now)
	if err != nil {
		return nil, nil, err
	}
	types, err := a.store.RunGPUTypes(r.Context(), u.ID, ids)
	return book, types, err
}

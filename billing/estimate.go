package billing

import (
	"context"
	"time"

	"tunelab/store"
)

// DefaultTokensPerSecond is the training throughput assumed for a base model on a GPU type
// before any run of them has finished; after that, the measured one is used.
const DefaultTokensPerSecond = 1000

// EstimateStore is what the estimate needs beyond Store.
type EstimateStore interface {
	Throughput(ctx context.Context, model, gpuType string) (tokens, seconds int64, runs int, err error)
}

// Estimate is what a run is expected to take and cost before it starts.
type Estimate struct {
	Tokens      int64 // dataset tokens x epochs
	Seconds     int64 // GPU seconds at the throughput
	TokensPerS  int64
	LearnedFrom int // finished runs the throughput comes from; 0: the default
	Enabled     bool
	Plan        Plan
	Covered     int64       // seconds the included time left covers
	Billed      int64       // seconds past it
	Cost        Nanodollars // Billed at the plan's price for the GPU type
}

// EstimateRun estimates a run of datasetTokens x epochs on a model and GPU type for the
// person: duration from measured throughput, cost from their plan and the included time
// they have left this period.
func (s *Service) EstimateRun(ctx context.Context, userID, datasetTokens int64, epochs int, model, gpuType string) (Estimate, error) {
	e := Estimate{Tokens: datasetTokens * int64(max(epochs, 0)), TokensPerS: DefaultTokensPerSecond, Enabled: s.Enabled()}
	if es, ok := s.st.(EstimateStore); ok {
		tok, secs, runs, err := es.Throughput(ctx, model, gpuType)
		if err != nil {
			return e, err
		}
		if runs > 0 && secs > 0 {
			e.TokensPerS, e.LearnedFrom = max(tok/secs, 1), runs
		}
	}
	e.Seconds = (e.Tokens + e.TokensPerS - 1) / e.TokensPerS
	a, err := s.st.BillingAccount(ctx, userID)
	if err != nil {
		return e, err
	}
	e.Plan, _ = s.PlanOf(a)
	start, end := Period(a, s.now())
	runs, err := s.st.UsageBetween(ctx, userID, start, end)
	if err != nil {
		return e, err
	}
	_, _, left, _ := Charge(e.Plan, runs)
	e.Covered = min(e.Seconds, max(left, 0))
	e.Billed = e.Seconds - e.Covered
	if e.Enabled && !e.Plan.Free {
		e.Cost = Nanodollars(e.Billed) * e.Plan.PerSecond[gpuType]
	}
	return e, nil
}

// Duration is the estimate as a duration.
func (e Estimate) Duration() time.Duration { return time.Duration(e.Seconds) * time.Second }

// RunCost is what a run costs so far, and at a projected total of seconds, the way the
// billing page counts it: the period's runs oldest first use up the included time, and
// this run's seconds are its live ones. ok is false when billing is off.
func (s *Service) RunCost(ctx context.Context, run store.Run, now time.Time, projected int64) (spent, total Nanodollars, ok bool, err error) {
	book, err := s.Costs(ctx, run.UserID, now)
	if err != nil || book == nil {
		return 0, 0, false, err
	}
	spent, total = book.Run(run, projected)
	return spent, total, true, nil
}

// CostBook prices one person's runs against their plan and this period's usage, read
// once: a page of runs costs two queries, not two a run.
type CostBook struct {
	plan Plan
	runs []store.RunUsage
	now  time.Time
}

// Costs opens the person's cost book at now; nil when billing is off.
func (s *Service) Costs(ctx context.Context, userID int64, now time.Time) (*CostBook, error) {
	if !s.Enabled() {
		return nil, nil
	}
	a, err := s.st.BillingAccount(ctx, userID)
	if err != nil {
		return nil, err
	}
	pl, _ := s.PlanOf(a)
	start, end := Period(a, now)
	runs, err := s.st.UsageBetween(ctx, userID, start, end)
	if err != nil {
		return nil, err
	}
	return &CostBook{plan: pl, runs: runs, now: now}, nil
}

// Run is what run costs so far (its live seconds) and at projected seconds.
func (b *CostBook) Run(run store.Run, projected int64) (spent, total Nanodollars) {
	live := int64(run.GPUTime(b.now) / time.Second)
	costAt := func(secs int64) Nanodollars {
		rs := make([]store.RunUsage, 0, len(b.runs)+1)
		for _, r := range b.runs {
			if r.RunID != run.ID || r.Serving { // a deployment's time is not the run's own
				rs = append(rs, r)
			}
		}
		rs = append(rs, store.RunUsage{RunID: run.ID, GPUType: run.Config.GPUType, Seconds: secs})
		lines, _, _, _ := Charge(b.plan, rs)
		return lines[len(lines)-1].Cost
	}
	return costAt(live), costAt(max(projected, live))
}

// OverBudgetAt says whether a run with a budget cap would pass it at projected seconds
// (its cost counted as the cap counts it), and what it would cost then.
func (b *CostBook) OverBudgetAt(run store.Run, projected int64) (Nanodollars, bool) {
	if b.plan.Free || run.Config.BudgetCents <= 0 {
		return 0, false
	}
	_, at := b.Run(run, projected)
	return at, at > Cents(run.Config.BudgetCents)
}
